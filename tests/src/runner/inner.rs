//! The inner half: PID 1 of a new pid, mount and cgroup namespace. Sets up
//! what logind and `user@.service` would, runs `systemd --user` as the uid,
//! then the command.
//!
//! ## A second user ([`Config::second_user`])
//!
//! The second uid gets the same: `user.slice/user-<uid2>.slice/user@<uid2>.service`
//! (chowned to it), `/run/user/<uid2>` (0700), a home at [`HOME2`] and its own
//! `systemd --user`; both managers boot in parallel and each must answer a
//! `busctl --user … Ping` as its own uid before anything runs. Both log to the
//! same journal listener, so a failure report may show the other's messages.
//!
//! The command cannot switch uid, so the second user runs its own script,
//! [`Config::second_cmd`] (`/bin/sh -c`), started right after the command,
//! concurrently, from `user@<uid2>.service/app.slice/cgsplit-testbed` with
//! uid2's `HOME`, `USER`, `XDG_RUNTIME_DIR` and `DBUS_SESSION_BUS_ADDRESS`.
//!
//! - Both (and root daemons) see `TESTBED_SHARED` = [`SHARED_DIR`] (mode 1777),
//!   `TESTBED_UID1`, `TESTBED_UID2`, and `TESTBED_UID` = their own uid.
//!   They synchronise through marker files there (write a temp file, then
//!   `mv` it into place; poll for it with a bounded loop).
//! - The second's stdout and stderr go to `$TESTBED_SHARED/second.out` and
//!   `second.err`; when it exits its exit code is written to `second.rc`
//!   (atomically), so the command can wait for it and read its output.
//! - The run waits for both. If the second still runs [`SECOND_GRACE`] after
//!   the command ended, its leaf is killed (`cgroup.kill`).
//! - Then its stdout and stderr are relayed after the command's, on the run's
//!   stdout and stderr, each line prefixed `second: `. The run's exit code is
//!   the command's, or the second's when the command's is 0.
//! - Both managers are stopped (SIGTERM, SIGKILL after [`STOP_TIMEOUT`]).

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::mount::{MsFlags, mount};
use nix::sys::signal::Signal;

use super::journal::{self, Tail};
use super::sys::{self, Account};
use super::{CLIENT_LEAF, Config, Error, PATH, SHARED_DIR, SYSTEMD, exit_code};

/// How long systemd gets to create `$XDG_RUNTIME_DIR/bus`.
pub const BUS_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the first call to `org.freedesktop.systemd1` may take (it starts
/// dbus-daemon through `dbus.socket`, then waits for systemd to join the bus).
pub const MANAGER_TIMEOUT: Duration = Duration::from_secs(15);
/// How long systemd gets to exit after SIGTERM before SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// One user as logind + `user@.service` would prepare it: the delegated
/// service cgroup, the runtime directory and a home, all owned by the uid.
struct User {
    acct: Account,
    home: PathBuf,
    runtime: PathBuf,
    service_cg: PathBuf,
}

impl User {
    /// Creates `user.slice/user-<uid>.slice/user@<uid>.service` (chowned to
    /// the uid), `/run/user/<uid>` (0700) and `home` (chowned, recursively).
    fn prepare(uid: u32, home: PathBuf) -> Result<Self, Error> {
        let acct = sys::account_of(uid);
        let gid = acct.gid;
        let service_cg = Path::new("/sys/fs/cgroup")
            .join(cgsplit_core::scope::user_manager_cgroup(uid).trim_start_matches('/'));
        fs::create_dir_all(&service_cg).map_err(Error::io("create cgroup", &service_cg))?;
        sys::chown_recursive(&service_cg, uid, gid)?;
        let runtime = PathBuf::from(format!("/run/user/{uid}"));
        sys::mkdir_owned(&runtime, uid, gid, 0o700)?;
        fs::create_dir_all(&home).map_err(Error::io("create directory", &home))?;
        sys::chown_recursive(&home, uid, gid)?;
        Ok(User {
            acct,
            home,
            runtime,
            service_cg,
        })
    }

    /// What `user@.service` gives the manager.
    fn base_env(&self) -> Vec<(String, String)> {
        vec![
            ("HOME".into(), self.home.display().to_string()),
            ("USER".into(), self.acct.name.clone()),
            ("LOGNAME".into(), self.acct.name.clone()),
            ("XDG_RUNTIME_DIR".into(), self.runtime.display().to_string()),
            ("PATH".into(), PATH.into()),
        ]
    }

    /// The client leaf [`CLIENT_LEAF`] in this user's delegated tree.
    fn leaf(&self) -> PathBuf {
        self.service_cg.join(CLIENT_LEAF)
    }

    fn ids(&self) -> Option<(u32, u32)> {
        Some((self.acct.uid, self.acct.gid))
    }
}

struct Ctx {
    user: User,
    /// The second user ([`Config::second_user`]).
    user2: Option<User>,
    target: Target,
    tail: Tail,
    t0: Instant,
    verbose: bool,
    /// `DBUS_SYSTEM_BUS_ADDRESS`, when a private system bus runs.
    system_bus: Option<String>,
    /// Pids of our own background children (system bus, root daemons), so
    /// the orphan reaper leaves them to their owners.
    keep: Vec<u32>,
}

impl Ctx {
    /// Environment every process we start gets, whatever its uid.
    fn common_env(&self) -> Vec<(String, String)> {
        let mut env = vec![("PATH".into(), PATH.into())];
        if let Some(a) = &self.system_bus {
            env.push(("DBUS_SYSTEM_BUS_ADDRESS".into(), a.clone()));
        }
        env.push(("CGSPLIT_BIN".into(), self.target.bin.display().to_string()));
        env.push((
            "CGSPLIT_SHIM".into(),
            self.target.shim.display().to_string(),
        ));
        env.push(("TESTBED_SHARED".into(), SHARED_DIR.into()));
        env.push(("TESTBED_UID1".into(), self.user.acct.uid.to_string()));
        if let Some(u2) = &self.user2 {
            env.push(("TESTBED_UID2".into(), u2.acct.uid.to_string()));
        }
        env
    }

    /// A client of `u`'s user manager: its base environment, its session
    /// bus, and [`Ctx::common_env`].
    fn client_env(&self, u: &User) -> Vec<(String, String)> {
        let mut env = u.base_env();
        env.push((
            "DBUS_SESSION_BUS_ADDRESS".into(),
            format!("unix:path={}/bus", u.runtime.display()),
        ));
        env.extend(self.common_env());
        env
    }

    /// The prepared users, first then second.
    fn users(&self) -> impl Iterator<Item = &User> {
        std::iter::once(&self.user).chain(self.user2.as_ref())
    }

    /// `keep` plus our background children, for [`sys::reap_orphans`].
    fn keep(&self, keep: &[u32]) -> Vec<u32> {
        keep.iter().chain(&self.keep).copied().collect()
    }

    fn note(&self, what: &str) {
        if self.verbose {
            eprintln!(
                "cgsplit-testbed: {what} after {} ms",
                self.t0.elapsed().as_millis()
            );
        }
    }
}

/// Where the command finds the workspace's binaries inside the namespace.
struct Target {
    /// `CGSPLIT_BIN`: `<target>/<profile>` as seen from inside.
    bin: PathBuf,
    /// `CGSPLIT_SHIM`: the static shim built by `cargo build-shim`.
    shim: PathBuf,
}

/// Where `bind_target` mounts the cargo target directory.
pub const TARGET_MOUNT: &str = "/run/cgsplit-target";

/// Bind-mounts the cargo target directory holding this binary
/// (`<target>/<profile>/cgsplit-testbed`) at [`TARGET_MOUNT`], so the
/// unprivileged test uid reaches the built binaries even when the checkout
/// sits below a directory it cannot search (a clone under `/root`, say).
fn bind_target() -> Result<Target, Error> {
    let exe = std::env::current_exe().map_err(Error::io("resolve", "/proc/self/exe"))?;
    let profile_dir = exe.parent().unwrap_or(Path::new("/"));
    let profile = profile_dir.file_name().unwrap_or_default();
    let target = profile_dir.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(TARGET_MOUNT).map_err(Error::io("create directory", TARGET_MOUNT))?;
    mount(
        Some(target),
        TARGET_MOUNT,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(Error::sys(format!(
        "bind-mount {} on {TARGET_MOUNT}",
        target.display()
    )))?;
    let root = Path::new(TARGET_MOUNT);
    Ok(Target {
        bin: root.join(profile),
        shim: root.join(crate::testbed::STATIC_SHIM),
    })
}

/// Runs the inner half; returns the command's exit code (128 + signal), or,
/// if that is 0, the second command's. Must be PID 1 of a fresh pid namespace
/// with private mounts and its own cgroup namespace (the outer half's `unshare`).
pub fn run(cfg: &Config) -> Result<i32, Error> {
    let t0 = Instant::now();
    if std::process::id() != 1 {
        return Err(Error::Unsupported(
            "--inner must run as PID 1 of a new pid namespace (use cgsplit-testbed without --inner)".into(),
        ));
    }
    let uid = cfg
        .uid
        .ok_or_else(|| Error::Unsupported("--inner needs --uid".into()))?;
    let uid2 = match (cfg.second_user || cfg.second_cmd.is_some(), cfg.uid2) {
        (false, _) => None,
        (true, Some(u2)) if u2 != uid => Some(u2),
        (true, _) => {
            return Err(Error::Unsupported(
                "--inner --second-user needs a --uid2 other than --uid".into(),
            ));
        }
    };

    // A pure cgroup2 view rooted at our run's cgroup, and a private /run.
    mount(
        Some("none"),
        "/sys/fs/cgroup",
        Some("cgroup2"),
        MsFlags::empty(),
        None::<&str>,
    )
    .map_err(Error::sys("mount cgroup2 on /sys/fs/cgroup"))?;
    mount(
        Some("none"),
        "/run",
        Some("tmpfs"),
        MsFlags::empty(),
        Some("mode=755"),
    )
    .map_err(Error::sys("mount tmpfs on /run"))?;
    // Without it systemd --user exits: "system has not been booted with systemd".
    fs::create_dir_all("/run/systemd/system")
        .map_err(Error::io("create directory", "/run/systemd/system"))?;
    let shared = Path::new(SHARED_DIR);
    fs::create_dir_all(shared).map_err(Error::io("create directory", shared))?;
    fs::set_permissions(shared, fs::Permissions::from_mode(0o1777))
        .map_err(Error::io("chmod", shared))?;
    let tail = journal::listen(cfg.log.as_deref())?;
    let target = bind_target()?;

    // What logind + user@.service would do, per user.
    let home = cfg
        .home
        .clone()
        .unwrap_or_else(|| PathBuf::from("/run/cgsplit-testbed-home"));
    let user = User::prepare(uid, home)?;
    let user2 = uid2
        .map(|u2| User::prepare(u2, PathBuf::from(HOME2)))
        .transpose()?;

    let mut cx = Ctx {
        user,
        user2,
        target,
        tail,
        t0,
        verbose: cfg.verbose,
        system_bus: None,
        keep: Vec::new(),
    };
    cx.note("namespace ready");

    let mut background = Vec::new();
    let result = start_root_side(&mut cx, cfg, &mut background).and_then(|()| {
        // Both managers boot in parallel; each is stopped by its pid.
        let mut managers = Vec::new();
        let started = cx.users().try_for_each(|u| {
            managers.push(start_systemd(u, cfg.log.is_some())?);
            Ok(())
        });
        let result = started.and_then(|()| run_with_systemd(&cx, cfg, &mut managers));
        stop_managers(&mut managers);
        result
    });
    // Root daemons first, the bus last; by pid, newest first.
    for mut child in background.into_iter().rev() {
        let pid = child.id();
        stop_systemd(&mut child, pid);
    }
    result
}

/// `lo` up (with `--net`), the private system bus, and the root daemons; each
/// started child is pushed to `background` and its pid to `cx.keep`.
fn start_root_side(cx: &mut Ctx, cfg: &Config, background: &mut Vec<Child>) -> Result<(), Error> {
    if cfg.net {
        let st = std::process::Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .map_err(|source| Error::Spawn {
                what: "ip link set lo up".into(),
                source,
            })?;
        if !st.success() {
            return Err(Error::Unsupported(format!(
                "`ip link set lo up` failed: {st}"
            )));
        }
    }
    if cfg.system_bus || cfg.system_bus_config.is_some() {
        let sock = Path::new(super::SYSTEM_BUS_SOCKET);
        let dir = sock.parent().unwrap_or(Path::new("/run"));
        fs::create_dir_all(dir).map_err(Error::io("create directory", dir))?;
        let cg = Path::new("/sys/fs/cgroup/system.slice/dbus.service");
        fs::create_dir_all(cg).map_err(Error::io("create cgroup", cg))?;
        let mut cmd = sys::command_in("dbus-daemon", sys::open_procs(cg)?, None);
        match &cfg.system_bus_config {
            Some(c) => cmd.arg(format!("--config-file={}", c.display())),
            None => cmd.arg("--system"),
        };
        let address = format!("unix:path={}", sock.display());
        cmd.args(["--nofork", "--nopidfile", &format!("--address={address}")])
            .env_clear()
            .env("PATH", PATH)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let mut child = cmd.spawn().map_err(|source| Error::Spawn {
            what: "dbus-daemon (system bus)".into(),
            source,
        })?;
        let end = Instant::now() + BUS_TIMEOUT;
        while !sock.exists() {
            if let Ok(Some(st)) = child.try_wait() {
                return Err(Error::Unsupported(format!(
                    "the private system bus (dbus-daemon) exited ({st}) before {} appeared",
                    sock.display()
                )));
            }
            if Instant::now() >= end {
                sys::signal(&child, Signal::SIGKILL);
                let _ = child.wait();
                return Err(Error::Unsupported(format!(
                    "the private system bus did not create {} within {} s",
                    sock.display(),
                    BUS_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        cx.keep.push(child.id());
        background.push(child);
        cx.system_bus = Some(address);
        cx.note("system bus");
    }
    for (n, script) in cfg.root_daemons.iter().enumerate() {
        let cg = PathBuf::from(format!(
            "/sys/fs/cgroup/system.slice/cgsplit-testbed-root-{n}"
        ));
        fs::create_dir_all(&cg).map_err(Error::io("create cgroup", &cg))?;
        let mut cmd = sys::command_in("/bin/sh", sys::open_procs(&cg)?, None);
        cmd.args(["-c", script])
            .env_clear()
            .env("HOME", "/root")
            .envs(cx.common_env())
            .envs(cfg.env.iter().map(|(k, v)| (k, v)))
            .current_dir("/")
            .stdin(Stdio::null());
        let child = cmd.spawn().map_err(|source| Error::Spawn {
            what: format!("root daemon `{script}`"),
            source,
        })?;
        cx.keep.push(child.id());
        background.push(child);
        cx.note("root daemon started");
    }
    Ok(())
}

fn start_systemd(u: &User, debug: bool) -> Result<Child, Error> {
    let procs = sys::open_procs(&u.service_cg)?;
    let mut cmd = sys::command_in(SYSTEMD, procs, u.ids());
    cmd.arg("--user")
        .env_clear()
        .envs(u.base_env())
        .env("SYSTEMD_LOG_TARGET", "journal")
        .env("SYSTEMD_LOG_LEVEL", if debug { "debug" } else { "info" })
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd.spawn().map_err(|source| Error::Spawn {
        what: format!("{SYSTEMD} --user (uid {})", u.acct.uid),
        source,
    })
}

fn systemd_failed(cx: &Ctx, u: &User, what: String) -> Error {
    // Give the listener a moment to record systemd's last words.
    std::thread::sleep(Duration::from_millis(50));
    Error::Systemd {
        what: format!("(uid {}) {what}", u.acct.uid),
        journal: cx.tail.text(),
    }
}

/// Waits for `u`'s session bus socket (`dbus.socket`, started by systemd),
/// then creates `u`'s client leaf inside its delegated tree.
fn wait_bus(cx: &Ctx, u: &User, systemd: &mut Child) -> Result<(), Error> {
    let bus = u.runtime.join("bus");
    let end = Instant::now() + BUS_TIMEOUT;
    while !bus.exists() {
        if let Ok(Some(st)) = systemd.try_wait() {
            return Err(systemd_failed(
                cx,
                u,
                format!("exited ({st}) before {} appeared", bus.display()),
            ));
        }
        if Instant::now() >= end {
            return Err(systemd_failed(
                cx,
                u,
                format!(
                    "did not create {} within {} s",
                    bus.display(),
                    BUS_TIMEOUT.as_secs()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let leaf = u.leaf();
    fs::create_dir_all(&leaf).map_err(Error::io("create cgroup", &leaf))?;
    sys::chown_recursive(&u.service_cg.join("app.slice"), u.acct.uid, u.acct.gid)
}

/// Starts `busctl --user call … Ping` to `u`'s manager from `u`'s leaf. The
/// first connection starts dbus-daemon; systemd joins the bus once
/// dbus.service runs, and the daemon holds calls to org.freedesktop.systemd1
/// until then. Like a desktop session, where the manager is on the bus long
/// before any app.
fn spawn_ping(cx: &Ctx, u: &User) -> Result<Child, Error> {
    let mut ping = sys::command_in("busctl", sys::open_procs(&u.leaf())?, u.ids());
    ping.args([
        "--user",
        &format!("--timeout={}", MANAGER_TIMEOUT.as_secs()),
        "call",
        "org.freedesktop.systemd1",
        "/org/freedesktop/systemd1",
        "org.freedesktop.DBus.Peer",
        "Ping",
    ])
    .env_clear()
    .envs(cx.client_env(u))
    .current_dir("/")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    ping.spawn().map_err(|source| Error::Spawn {
        what: "busctl".into(),
        source,
    })
}

/// Where the second user's home is (a fresh directory on the private `/run`).
pub const HOME2: &str = "/run/cgsplit-testbed-home2";

/// How long the second command may run on after the command has exited
/// before its leaf is killed (`cgroup.kill`).
pub const SECOND_GRACE: Duration = Duration::from_secs(10);

/// The second command's stdout, stderr and exit code (written when it has
/// exited), in [`SHARED_DIR`].
pub const SECOND_FILES: [&str; 3] = ["second.out", "second.err", "second.rc"];

/// The second command, started as the second uid.
struct Second {
    child: Child,
    rc: Option<i32>,
}

impl Second {
    fn spawn(cx: &Ctx, u: &User, script: &str, env: &[(String, String)]) -> Result<Self, Error> {
        let stdio = |name: &str| {
            let p = Path::new(SHARED_DIR).join(name);
            fs::File::create(&p).map_err(Error::io("create", p))
        };
        let mut cmd = sys::command_in("/bin/sh", sys::open_procs(&u.leaf())?, u.ids());
        cmd.args(["-c", script])
            .env_clear()
            .envs(cx.client_env(u))
            .env("TESTBED_UID", u.acct.uid.to_string())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(&u.home)
            .stdin(Stdio::null())
            .stdout(stdio(SECOND_FILES[0])?)
            .stderr(stdio(SECOND_FILES[1])?);
        let child = cmd.spawn().map_err(|source| Error::Spawn {
            what: format!("the second command (uid {})", u.acct.uid),
            source,
        })?;
        Ok(Second { child, rc: None })
    }

    /// Records the exit code and writes it to `second.rc` (temp + rename, so
    /// a reader never sees it half-written).
    fn exited(&mut self, st: std::process::ExitStatus) {
        let rc = exit_code(st);
        self.rc = Some(rc);
        let dir = Path::new(SHARED_DIR);
        let tmp = dir.join(".second.rc.tmp");
        if fs::write(&tmp, format!("{rc}\n")).is_ok() {
            let _ = fs::rename(&tmp, dir.join(SECOND_FILES[2]));
        }
    }
}

/// Copies `file` to `to`, each line prefixed with `second: `.
fn relay(file: &str, mut to: impl std::io::Write) {
    let text = fs::read(Path::new(SHARED_DIR).join(file)).unwrap_or_default();
    for line in String::from_utf8_lossy(&text).lines() {
        let _ = writeln!(to, "second: {line}");
    }
    let _ = to.flush();
}

fn run_with_systemd(cx: &Ctx, cfg: &Config, managers: &mut [Child]) -> Result<i32, Error> {
    let users: Vec<&User> = cx.users().collect();
    let mut tracked: Vec<u32> = managers.iter().map(Child::id).collect();
    // 1. The session bus sockets and client leaves.
    for (u, sd) in users.iter().zip(managers.iter_mut()) {
        wait_bus(cx, u, sd)?;
    }
    cx.note("bus socket");

    // 2. Wait until each manager itself answers on its bus (pinged in parallel).
    let mut pings = Vec::new();
    for u in &users {
        let p = spawn_ping(cx, u)?;
        tracked.push(p.id());
        pings.push(p);
    }
    for (u, mut p) in users.iter().zip(pings) {
        let st = sys::wait_timeout(&mut p, MANAGER_TIMEOUT + Duration::from_secs(1), || {
            sys::reap_orphans(&cx.keep(&tracked))
        });
        if !matches!(st, Some(s) if s.success()) {
            sys::signal(&p, Signal::SIGKILL);
            let out = p.wait_with_output().ok();
            let err = out
                .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_owned())
                .unwrap_or_default();
            return Err(systemd_failed(
                cx,
                u,
                format!("did not answer on the session bus (busctl Ping: {err})"),
            ));
        }
    }
    cx.note("manager on the bus");

    // 3. The command, and the second command concurrently.
    let u = &cx.user;
    let mut cmd = sys::command_in(&cfg.cmd[0], sys::open_procs(&u.leaf())?, u.ids());
    cmd.args(&cfg.cmd[1..])
        .env_clear()
        .envs(cx.client_env(u))
        .env("TESTBED_UID", u.acct.uid.to_string())
        .envs(cfg.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&u.home);
    let mut child = cmd.spawn().map_err(|source| Error::Spawn {
        what: cfg.cmd[0].to_string_lossy().into_owned(),
        source,
    })?;
    drop(cmd);
    tracked.push(child.id());
    cx.note("command started");
    let mut second = match (&cx.user2, &cfg.second_cmd) {
        (Some(u2), Some(script)) => {
            let s = Second::spawn(cx, u2, script, &cfg.env);
            if s.is_err() {
                sys::signal(&child, Signal::SIGKILL);
                let _ = child.wait();
            }
            let s = s?;
            tracked.push(s.child.id());
            cx.note("second command started");
            Some(s)
        }
        _ => None,
    };

    // 4. Wait for both; the second gets SECOND_GRACE after the first is done.
    let mut first = None;
    let mut grace_end = None;
    let mut sd_reported = vec![false; managers.len()];
    loop {
        if first.is_none()
            && let Ok(Some(st)) = child.try_wait()
        {
            first = Some(exit_code(st));
            grace_end = Some(Instant::now() + SECOND_GRACE);
        }
        if let Some(s) = &mut second
            && s.rc.is_none()
            && let Ok(Some(st)) = s.child.try_wait()
        {
            s.exited(st);
        }
        let second_done = second.as_ref().is_none_or(|s| s.rc.is_some());
        if let Some(code) = first
            && second_done
        {
            return Ok(finish(cx, code, second.as_ref()));
        }
        if let (Some(end), Some(s)) = (grace_end, &mut second)
            && Instant::now() >= end
        {
            eprintln!(
                "cgsplit-testbed: the second command still ran {} s after the command ended; killing its cgroup",
                SECOND_GRACE.as_secs()
            );
            if let Some(u2) = &cx.user2 {
                let _ = fs::write(u2.leaf().join("cgroup.kill"), "1");
            }
            sys::signal(&s.child, Signal::SIGKILL);
            if let Ok(st) = s.child.wait() {
                s.exited(st);
            }
            return Ok(finish(cx, first.unwrap_or(1), second.as_ref()));
        }
        sys::reap_orphans(&cx.keep(&tracked));
        for ((m, reported), u) in managers.iter_mut().zip(&mut sd_reported).zip(&users) {
            if !*reported && let Ok(Some(st)) = m.try_wait() {
                *reported = true;
                eprintln!(
                    "cgsplit-testbed: warning: systemd --user (uid {}) exited ({st}) while the command runs\n\
                     --- last systemd messages ---\n{}",
                    u.acct.uid,
                    cx.tail.text()
                );
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Relays the second command's output (prefixed `second: `) after the
/// command's, and picks the run's exit code: the command's, or if that is 0
/// the second command's.
fn finish(cx: &Ctx, first: i32, second: Option<&Second>) -> i32 {
    let Some(s) = second else { return first };
    relay(SECOND_FILES[0], std::io::stdout().lock());
    relay(SECOND_FILES[1], std::io::stderr().lock());
    let rc = s.rc.unwrap_or(1);
    if rc != 0 {
        eprintln!(
            "cgsplit-testbed: the second command (uid {}) exited with status {rc}",
            cx.user2.as_ref().map_or(0, |u| u.acct.uid)
        );
    }
    if first != 0 { first } else { rc }
}

/// SIGTERM to every manager at once, then for each: a wait of up to
/// [`STOP_TIMEOUT`] (from the signal) and SIGKILL; by pid.
fn stop_managers(managers: &mut [Child]) {
    let pids: Vec<u32> = managers.iter().map(Child::id).collect();
    for m in managers.iter_mut() {
        if let Ok(None) = m.try_wait() {
            sys::signal(m, Signal::SIGTERM);
        }
    }
    let end = Instant::now() + STOP_TIMEOUT;
    for m in managers.iter_mut() {
        let left = end.saturating_duration_since(Instant::now());
        if sys::wait_timeout(m, left, || sys::reap_orphans(&pids)).is_none() {
            sys::signal(m, Signal::SIGKILL);
            let _ = m.wait();
        }
    }
}

/// SIGTERM, then SIGKILL after [`STOP_TIMEOUT`]; by pid, never a wait-for-any.
fn stop_systemd(systemd: &mut Child, sd_pid: u32) {
    if let Ok(Some(_)) = systemd.try_wait() {
        return;
    }
    sys::signal(systemd, Signal::SIGTERM);
    if sys::wait_timeout(systemd, STOP_TIMEOUT, || sys::reap_orphans(&[sd_pid])).is_none() {
        sys::signal(systemd, Signal::SIGKILL);
        let _ = systemd.wait();
    }
}
