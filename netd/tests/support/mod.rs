//! Test fixture for cgsplit-netd: a throw-away cgroup tree standing in for
//! the whole hierarchy (netd runs with `--cgroup-root` pointing at it), two
//! unprivileged test users with a fake delegated `user@<uid>.service` each,
//! a private mount namespace (held by a `sleep`) with its own bpffs and a
//! trap mount, a private system `dbus-daemon` that includes the shipped
//! policy file, and the helper serving on it as root.
//!
//! Everything is removed on drop; processes are ended by pid.

#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const NETD: &str = env!("CARGO_BIN_EXE_cgsplit-netd");
pub const SHIPPED_POLICY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/dbus/io.github.cgsplit.Netd1.conf"
);
pub const SHIPPED_ACTIVATION: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/dbus/io.github.cgsplit.Netd1.service"
);
pub const DEST: &str = "io.github.cgsplit.Netd1";
pub const PATH: &str = "/io/github/cgsplit/Netd1";

/// Why this host cannot run these tests, or `None`.
fn unsupported() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root (cgroups, bpf, users)".into());
    }
    for tool in [
        "dbus-daemon",
        "dbus-send",
        "setpriv",
        "unshare",
        "nsenter",
        "useradd",
        "socat",
        "ip",
        "timeout",
    ] {
        if !Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            return Some(format!("{tool} is not installed"));
        }
    }
    if cgroup2_mount().is_none() {
        return Some("no cgroup2 mount".into());
    }
    None
}

/// `Some(())` when the tests can run; otherwise prints `skipping: …` or,
/// with `CI` set, panics.
pub fn can_run() -> Option<()> {
    let Some(reason) = unsupported() else {
        return Some(());
    };
    if std::env::var_os("CI").is_some() {
        panic!("{reason}, and CI is set: failing instead of skipping");
    }
    eprintln!("skipping: {reason}");
    None
}

pub fn cgroup2_mount() -> Option<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").ok()?;
    cgsplit_core::mountinfo::cgroup2_mounts(&text)
        .into_iter()
        .rev()
        .find(|m| m.root == "/")
        .map(|m| m.mount_point)
}

/// uid and gid of system user `name`, created if absent.
pub fn ensure_user(name: &str) -> (u32, u32) {
    let lookup = || -> Option<(u32, u32)> {
        let id = |flag: &str| -> Option<u32> {
            let o = Command::new("id").args([flag, name]).output().ok()?;
            String::from_utf8(o.stdout).ok()?.trim().parse().ok()
        };
        Some((id("-u")?, id("-g")?))
    };
    // Parallel tests may race to create it: useradd exits 9 when another
    // won, 10 while another holds the lock on /etc/passwd (possible on a
    // fresh CI machine, where no test user exists yet); retry until it exists.
    for _ in 0..50 {
        if let Some(ids) = lookup() {
            return ids;
        }
        let st = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ])
            .status();
        if matches!(st.map(|s| s.code()), Ok(Some(10))) {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    lookup().unwrap_or_else(|| panic!("cannot create test user {name}"))
}

static SEQ: AtomicU32 = AtomicU32::new(0);

fn sh(script: &str) -> Output {
    Command::new("timeout")
        .args(["30", "sh", "-c", script])
        .output()
        .unwrap()
}

fn must(script: &str) {
    let o = sh(script);
    assert!(
        o.status.success(),
        "{script}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A test user with a fake delegated tree.
#[derive(Debug, Clone)]
pub struct User {
    pub name: &'static str,
    pub uid: u32,
    pub gid: u32,
}

impl User {
    /// `/user.slice/user-<uid>.slice/user@<uid>.service`
    pub fn manager(&self) -> String {
        cgsplit_core::scope::user_manager_cgroup(self.uid)
    }
    /// The cgroup path of this user's scope of `app`.
    pub fn scope(&self, app: u32) -> String {
        format!("{}/games.slice/cgsplit-{app}.scope", self.manager())
    }
}

/// The whole fixture.
pub struct Env {
    pub tmp: tempfile::TempDir,
    /// Test cgroup root on disk, e.g. /sys/fs/cgroup/unified/cgsplit-netdtest-9-0.
    pub root: PathBuf,
    pub a: User,
    pub b: User,
    pub bus: String,
    holder: Child,
    dbus: Child,
    netd: Option<Child>,
    pub netd_log: Arc<Mutex<Vec<String>>>,
    max_per_uid: usize,
}

impl Env {
    /// Sets everything up and starts the helper.
    pub fn start(max_per_uid: usize) -> Self {
        let mut env = Self::without_netd(max_per_uid);
        env.start_netd();
        env
    }

    /// Sets everything up but the helper (bus, users, cgroups, holder).
    pub fn without_netd(max_per_uid: usize) -> Self {
        let (ua, ga) = ensure_user("cgsplit-neta");
        let (ub, gb) = ensure_user("cgsplit-netb");
        let a = User {
            name: "cgsplit-neta",
            uid: ua,
            gid: ga,
        };
        let b = User {
            name: "cgsplit-netb",
            uid: ub,
            gid: gb,
        };
        let tmp = tempfile::Builder::new()
            .prefix("cgsplit-netdtest-")
            .tempdir()
            .unwrap();
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let root = cgroup2_mount().unwrap().join(format!(
            "cgsplit-netdtest-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        // Fake delegated trees: user@<uid>.service and below chowned to the
        // user, as systemd's Delegate= does; the slices above stay root's.
        for u in [&a, &b] {
            for app in [620, 621, 622, 666] {
                fs::create_dir_all(cgsplit_core::scope::join_cgroup(
                    &root,
                    &format!("{}/game", u.scope(app)),
                ))
                .unwrap();
            }
            must(&format!(
                "chown -R {}:{} {}",
                u.uid,
                u.gid,
                cgsplit_core::scope::join_cgroup(&root, &u.manager()).display()
            ));
        }
        fs::create_dir_all(root.join("system.slice/root-owned.scope")).unwrap();
        // A cgroup of A's that is root-owned (inside A's tree, wrong owner).
        fs::create_dir_all(cgsplit_core::scope::join_cgroup(
            &root,
            &format!("{}/games.slice/rootowned.scope", a.manager()),
        ))
        .unwrap();

        let bpffs = tmp.path().join("bpffs");
        fs::create_dir(&bpffs).unwrap();
        // The trap: a tmpfs mounted on A's cgsplit-666.scope (only inside the
        // holder's mount namespace), holding a symlink to B's scope and a
        // plain directory.
        let trap = cgsplit_core::scope::join_cgroup(&root, &a.scope(666));
        let b620 = cgsplit_core::scope::join_cgroup(&root, &b.scope(620));
        let script = format!(
            "mount -t tmpfs none {trap} && ln -s {b620} {trap}/link && mkdir {trap}/plain; echo ready; exec sleep 3600",
            trap = trap.display(),
            b620 = b620.display()
        );
        let mut holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "mount namespace holder failed");

        let sock = tmp.path().join("bus");
        let bus = format!("unix:path={}", sock.display());
        let conf = tmp.path().join("bus.conf");
        let services = tmp.path().join("system-services");
        fs::create_dir(&services).unwrap();
        fs::write(
            services.join("io.github.cgsplit.Netd1.service"),
            activation_file(&root, &bpffs),
        )
        .unwrap();
        fs::write(&conf, bus_config(&sock, &services)).unwrap();
        // In the holder's mount namespace, so a helper the bus activates
        // pins in the test's bpffs and sees the trap mount.
        let dbus = Command::new("nsenter")
            .args([
                "-t",
                &holder.id().to_string(),
                "--mount",
                "--",
                "dbus-daemon",
            ])
            .arg(format!("--config-file={}", conf.display()))
            .arg("--nofork")
            .arg("--nopidfile")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        wait_for(|| sock.exists(), "the dbus-daemon socket");

        Env {
            tmp,
            root,
            a,
            b,
            bus,
            holder,
            dbus,
            netd: None,
            netd_log: Arc::default(),
            max_per_uid,
        }
    }

    /// Starts the helper inside the holder's mount namespace (so its bpffs
    /// outlives it) and waits until it owns its name.
    pub fn start_netd(&mut self) {
        assert!(self.netd.is_none());
        let mut child = Command::new("nsenter")
            .args(["-t", &self.holder.id().to_string(), "--mount", "--"])
            .arg(NETD)
            .arg("--cgroup-root")
            .arg(&self.root)
            .arg("--bpffs")
            .arg(self.tmp.path().join("bpffs"))
            .args(["serve", "--address", &self.bus, "--max-per-uid"])
            .arg(self.max_per_uid.to_string())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = child.stderr.take().unwrap();
        let log = self.netd_log.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if line.contains("ready") {
                    let _ = tx.send(());
                }
                log.lock().unwrap().push(line);
            }
        });
        self.netd = Some(child);
        if rx.recv_timeout(Duration::from_secs(20)).is_err() {
            panic!(
                "cgsplit-netd did not get ready: {:?}",
                self.netd_log.lock().unwrap()
            );
        }
    }

    /// The pid of whoever owns the helper's name (the bus daemon says),
    /// without activating it.
    pub fn name_owner_pid(&self) -> Option<u32> {
        let o = sh(&format!(
            "dbus-send --bus={} --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
             org.freedesktop.DBus.GetConnectionUnixProcessID string:{DEST}",
            self.bus
        ));
        let out = String::from_utf8_lossy(&o.stdout);
        out.split_whitespace().last()?.parse().ok()
    }

    /// Ends the bus daemon (by pid).
    pub fn kill_bus(&mut self) {
        let _ = self.dbus.kill();
        let _ = self.dbus.wait();
    }

    /// Waits up to `secs` for the helper to exit on its own; its status.
    pub fn netd_exit(&mut self, secs: u64) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let child = self.netd.as_mut()?;
        while Instant::now() < deadline {
            if let Some(st) = child.try_wait().unwrap() {
                self.netd = None;
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Ends the helper (SIGTERM by pid) and reaps it.
    pub fn stop_netd(&mut self) {
        if let Some(mut c) = self.netd.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = c.wait();
        }
    }

    /// Runs `cgsplit-netd --cgroup-root <root> --bpffs <tmp>/bpffs ARGS…`
    /// inside the holder's mount namespace, as root with the capability
    /// bounding set reduced by `drop_caps` (setpriv syntax, e.g.
    /// `-bpf,-net_admin`), or as `user`.
    pub fn cli(&self, user: Option<&User>, drop_caps: Option<&str>, args: &[&str]) -> Output {
        let mut cmd = Command::new("timeout");
        cmd.args([
            "30",
            "nsenter",
            "-t",
            &self.holder.id().to_string(),
            "--mount",
            "--",
        ]);
        if let Some(u) = user {
            cmd.arg("setpriv")
                .arg(format!("--reuid={}", u.uid))
                .arg(format!("--regid={}", u.gid))
                .arg("--clear-groups");
        }
        if let Some(caps) = drop_caps {
            cmd.arg("setpriv").arg(format!("--bounding-set={caps}"));
        }
        cmd.arg(NETD)
            .arg("--cgroup-root")
            .arg(&self.root)
            .arg("--bpffs")
            .arg(self.tmp.path().join("bpffs"))
            .args(args)
            .output()
            .unwrap()
    }

    /// A cgroup path's directory on disk.
    pub fn dir(&self, cgroup: &str) -> PathBuf {
        cgsplit_core::scope::join_cgroup(&self.root, cgroup)
    }

    /// Calls `method` with string `args` as `user` (None: root) through the
    /// bus, optionally from inside cgroup `from` (a cgroup path). Returns
    /// `Ok(reply text)` or `Err(stderr)`, which starts with
    /// `Error <D-Bus error name>: <message>`.
    pub fn call(
        &self,
        user: Option<&User>,
        from: Option<&str>,
        method: &str,
        args: &[&str],
    ) -> Result<String, String> {
        let mut script = String::new();
        if let Some(cg) = from {
            script += &format!("echo $$ > '{}/cgroup.procs' && ", self.dir(cg).display());
        }
        if let Some(u) = user {
            script += &format!(
                "exec setpriv --reuid={} --regid={} --clear-groups ",
                u.uid, u.gid
            );
        } else {
            script += "exec ";
        }
        script += &format!(
            "dbus-send --bus={} --print-reply --reply-timeout=20000 --dest={DEST} {PATH} {DEST}.{method}",
            self.bus
        );
        for a in args {
            script += &format!(" 'string:{a}'");
        }
        let o = sh(&script);
        if o.status.success() {
            Ok(String::from_utf8_lossy(&o.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&o.stderr).into_owned())
        }
    }

    /// Status of `cgroup` asked by root, parsed.
    pub fn status(&self, cgroup: &str) -> serde_json::Value {
        self.status_as(None, cgroup)
    }

    /// Status of `cgroup` asked by `user` (None: root), parsed.
    pub fn status_as(&self, user: Option<&User>, cgroup: &str) -> serde_json::Value {
        let out = self
            .call(user, None, "Status", &[cgroup])
            .unwrap_or_else(|e| panic!("Status of {cgroup}: {e}"));
        // dbus-send prints `   string "<json>"`, the JSON unescaped.
        let start = out.find("string \"").expect("a string reply") + 8;
        let json = &out[start..out.rfind('"').unwrap()];
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"))
    }

    /// The `user.cgsplit.policy` xattr of a cgroup, read directly.
    pub fn xattr(&self, cgroup: &str) -> Option<String> {
        let mut buf = vec![0u8; 4096];
        match rustix::fs::getxattr(self.dir(cgroup).as_path(), "user.cgsplit.policy", &mut buf) {
            Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(rustix::io::Errno::NODATA) => None,
            Err(e) => panic!("getxattr {cgroup}: {e}"),
        }
    }

    /// From a process in `cgroup`'s `game/` leaf, in a fresh network
    /// namespace with a default route: `connect()` a UDP socket to
    /// 192.0.2.1:9 (socat UDP-CONNECT; a UDP connect sends nothing).
    /// Returns socat's stderr on failure, `Ok` when the connect worked.
    pub fn probe(&self, cgroup: &str) -> Result<(), String> {
        let script = format!(
            "ip link set lo up && ip link add v0 type veth peer name v1 && ip addr add 198.18.0.1/24 dev v0 && \
             ip link set v0 up && ip link set v1 up && ip route add default via 198.18.0.2 && \
             echo $$ > '{}/game/cgroup.procs' && exec socat -u /dev/null UDP-CONNECT:192.0.2.1:9",
            self.dir(cgroup).display()
        );
        let o = Command::new("timeout")
            .args(["20", "unshare", "--net", "sh", "-c", &script])
            .output()
            .unwrap();
        if o.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&o.stderr).into_owned())
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.stop_netd();
        if let Some(pid) = self.name_owner_pid() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        for c in [&mut self.dbus, &mut self.holder] {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Deepest first; cgroups can read as populated for a moment after
        // their last process exited.
        let mut dirs: Vec<PathBuf> = walk(&self.root);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs.iter().chain(std::iter::once(&self.root)) {
            let deadline = Instant::now() + Duration::from_secs(5);
            while fs::remove_dir(d).is_err() && d.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.push(e.path());
                out.extend(walk(&e.path()));
            }
        }
    }
    out
}

fn wait_for(mut f: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A system bus configuration: Debian's default system policy (deny method
/// calls and name ownership unless a service file punches a hole) plus the
/// shipped `io.github.cgsplit.Netd1.conf`, listening on `sock`.
/// The shipped activation file, with its `Exec=` binary replaced by the
/// built one plus this test's `--cgroup-root`/`--bpffs` (the rest of the
/// line, `serve`, is the shipped one).
fn activation_file(root: &Path, bpffs: &Path) -> String {
    let shipped = fs::read_to_string(SHIPPED_ACTIVATION).unwrap();
    let installed = "Exec=/usr/local/sbin/cgsplit-netd ";
    assert!(shipped.contains(installed), "{shipped}");
    shipped.replace(
        installed,
        &format!(
            "Exec={NETD} --cgroup-root {} --bpffs {} ",
            root.display(),
            bpffs.display()
        ),
    )
}

fn bus_config(sock: &Path, services: &Path) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={sock}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
  <servicedir>{services}</servicedir>
  <include>{policy}</include>
</busconfig>
"#,
        sock = sock.display(),
        services = services.display(),
        policy = SHIPPED_POLICY
    )
}
