//! The inner half: PID 1 of a new pid, mount and cgroup namespace. Sets up
//! what logind and `user@.service` would, runs `systemd --user` as the uid,
//! then the command.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::mount::{MsFlags, mount};
use nix::sys::signal::Signal;

use super::journal::{self, Tail};
use super::sys::{self, Account};
use super::{CLIENT_LEAF, Config, Error, PATH, SYSTEMD, exit_code};

/// How long systemd gets to create `$XDG_RUNTIME_DIR/bus`.
pub const BUS_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the first call to `org.freedesktop.systemd1` may take (it starts
/// dbus-daemon through `dbus.socket`, then waits for systemd to join the bus).
pub const MANAGER_TIMEOUT: Duration = Duration::from_secs(15);
/// How long systemd gets to exit after SIGTERM before SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);

struct Ctx {
    acct: Account,
    target: Target,
    home: PathBuf,
    runtime: PathBuf,
    service_cg: PathBuf,
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
    fn base_env(&self) -> Vec<(String, String)> {
        vec![
            ("HOME".into(), self.home.display().to_string()),
            ("USER".into(), self.acct.name.clone()),
            ("LOGNAME".into(), self.acct.name.clone()),
            ("XDG_RUNTIME_DIR".into(), self.runtime.display().to_string()),
            ("PATH".into(), PATH.into()),
        ]
    }

    fn client_env(&self) -> Vec<(String, String)> {
        let mut env = self.base_env();
        env.push((
            "DBUS_SESSION_BUS_ADDRESS".into(),
            format!("unix:path={}/bus", self.runtime.display()),
        ));
        if let Some(a) = &self.system_bus {
            env.push(("DBUS_SYSTEM_BUS_ADDRESS".into(), a.clone()));
        }
        env.push(("CGSPLIT_BIN".into(), self.target.bin.display().to_string()));
        env.push((
            "CGSPLIT_SHIM".into(),
            self.target.shim.display().to_string(),
        ));
        env
    }

    /// `keep` plus our background children, for [`sys::reap_orphans`].
    fn keep(&self, keep: &[u32]) -> Vec<u32> {
        keep.iter().chain(&self.keep).copied().collect()
    }

    fn ids(&self) -> Option<(u32, u32)> {
        Some((self.acct.uid, self.acct.gid))
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

/// Where [`bind_target`] mounts the cargo target directory.
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

/// Runs the inner half; returns the command's exit code (128 + signal).
/// Must be PID 1 of a fresh pid namespace with private mounts and its own
/// cgroup namespace (the outer half's `unshare`).
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
    let acct = sys::account_of(uid);
    let gid = acct.gid;

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
    let tail = journal::listen(cfg.log.as_deref())?;
    let target = bind_target()?;

    // What logind + user@.service would do: the delegated service cgroup and
    // the runtime directory, owned by the user.
    let service_cg = Path::new("/sys/fs/cgroup")
        .join(cgsplit_core::scope::user_manager_cgroup(uid).trim_start_matches('/'));
    fs::create_dir_all(&service_cg).map_err(Error::io("create cgroup", &service_cg))?;
    sys::chown_recursive(&service_cg, uid, gid)?;
    let runtime = PathBuf::from(format!("/run/user/{uid}"));
    sys::mkdir_owned(&runtime, uid, gid, 0o700)?;
    let home = match &cfg.home {
        Some(h) => {
            fs::create_dir_all(h).map_err(Error::io("create directory", h))?;
            h.clone()
        }
        None => PathBuf::from("/run/cgsplit-testbed-home"),
    };
    fs::create_dir_all(&home).map_err(Error::io("create directory", &home))?;
    sys::chown_recursive(&home, uid, gid)?;

    let mut cx = Ctx {
        acct,
        target,
        home,
        runtime,
        service_cg,
        tail,
        t0,
        verbose: cfg.verbose,
        system_bus: None,
        keep: Vec::new(),
    };
    cx.note("namespace ready");

    let mut background = Vec::new();
    let result = start_root_side(&mut cx, cfg, &mut background).and_then(|()| {
        let mut systemd = start_systemd(&cx, cfg.log.is_some())?;
        let sd_pid = systemd.id();
        let result = run_with_systemd(&cx, cfg, &mut systemd);
        stop_systemd(&mut systemd, sd_pid);
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
        let mut env = cx.client_env();
        env.retain(|(k, _)| k != "DBUS_SESSION_BUS_ADDRESS" && k != "XDG_RUNTIME_DIR");
        env.retain(|(k, _)| k != "HOME" && k != "USER" && k != "LOGNAME");
        cmd.args(["-c", script])
            .env_clear()
            .env("HOME", "/root")
            .envs(env)
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

fn start_systemd(cx: &Ctx, debug: bool) -> Result<Child, Error> {
    let procs = sys::open_procs(&cx.service_cg)?;
    let mut cmd = sys::command_in(SYSTEMD, procs, cx.ids());
    cmd.arg("--user")
        .env_clear()
        .envs(cx.base_env())
        .env("SYSTEMD_LOG_TARGET", "journal")
        .env("SYSTEMD_LOG_LEVEL", if debug { "debug" } else { "info" })
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd.spawn().map_err(|source| Error::Spawn {
        what: format!("{SYSTEMD} --user"),
        source,
    })
}

fn systemd_failed(cx: &Ctx, what: String) -> Error {
    // Give the listener a moment to record systemd's last words.
    std::thread::sleep(Duration::from_millis(50));
    Error::Systemd {
        what,
        journal: cx.tail.text(),
    }
}

fn run_with_systemd(cx: &Ctx, cfg: &Config, systemd: &mut Child) -> Result<i32, Error> {
    let sd_pid = systemd.id();
    // 1. The session bus socket (dbus.socket, started by systemd).
    let bus = cx.runtime.join("bus");
    let end = Instant::now() + BUS_TIMEOUT;
    while !bus.exists() {
        if let Ok(Some(st)) = systemd.try_wait() {
            return Err(systemd_failed(
                cx,
                format!("exited ({st}) before {} appeared", bus.display()),
            ));
        }
        if Instant::now() >= end {
            return Err(systemd_failed(
                cx,
                format!(
                    "did not create {} within {} s",
                    bus.display(),
                    BUS_TIMEOUT.as_secs()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    cx.note("bus socket");

    // 2. The client leaf inside the delegated tree.
    let app_slice = cx.service_cg.join("app.slice");
    let leaf = cx.service_cg.join(CLIENT_LEAF);
    fs::create_dir_all(&leaf).map_err(Error::io("create cgroup", &leaf))?;
    sys::chown_recursive(&app_slice, cx.acct.uid, cx.acct.gid)?;

    // 3. Wait until the manager itself answers on the bus. The first
    //    connection starts dbus-daemon; systemd joins the bus once dbus.service
    //    runs, and the daemon holds calls to org.freedesktop.systemd1 until then.
    //    Like a desktop session, where the manager is on the bus long before any app.
    let mut ping = sys::command_in("busctl", sys::open_procs(&leaf)?, cx.ids());
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
    .envs(cx.client_env())
    .current_dir("/")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut p = ping.spawn().map_err(|source| Error::Spawn {
        what: "busctl".into(),
        source,
    })?;
    let ping_pid = p.id();
    let st = sys::wait_timeout(&mut p, MANAGER_TIMEOUT + Duration::from_secs(1), || {
        sys::reap_orphans(&cx.keep(&[sd_pid, ping_pid]))
    });
    let ok = matches!(st, Some(s) if s.success());
    if !ok {
        sys::signal(&p, Signal::SIGKILL);
        let out = p.wait_with_output().ok();
        let err = out
            .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_owned())
            .unwrap_or_default();
        return Err(systemd_failed(
            cx,
            format!("did not answer on the session bus (busctl Ping: {err})"),
        ));
    }
    cx.note("manager on the bus");

    // 4. The command.
    let mut cmd = sys::command_in(&cfg.cmd[0], sys::open_procs(&leaf)?, cx.ids());
    cmd.args(&cfg.cmd[1..])
        .env_clear()
        .envs(cx.client_env())
        .envs(cfg.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&cx.home);
    let mut child = cmd.spawn().map_err(|source| Error::Spawn {
        what: cfg.cmd[0].to_string_lossy().into_owned(),
        source,
    })?;
    drop(cmd);
    cx.note("command started");
    let cid = child.id();
    let mut sd_reported = false;
    loop {
        if let Some(st) = sys::wait_timeout(&mut child, Duration::from_millis(200), || {
            sys::reap_orphans(&cx.keep(&[sd_pid, cid]))
        }) {
            return Ok(exit_code(st));
        }
        if !sd_reported && let Ok(Some(st)) = systemd.try_wait() {
            sd_reported = true;
            eprintln!(
                "cgsplit-testbed: warning: systemd --user exited ({st}) while the command runs\n\
                 --- last systemd messages ---\n{}",
                cx.tail.text()
            );
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
