//! Stand-in for pressure-vessel inside the Steam flatpak:
//! `fake-pressure-vessel -- CMD [ARGS…]` relaunches CMD through the flatpak
//! portal, as pressure-vessel does for a Steam Linux Runtime container in
//! flatpak Steam (issue 7; SYSTEM.md §6 "Subsandboxes").
//!
//! It calls `org.freedesktop.portal.Flatpak.Spawn(ay cwd, aay argv, a{uh} fds,
//! a{ss} envs, u flags, a{sv} options) → u pid` on the session bus
//! (`/org/freedesktop/portal/Flatpak`, flatpak's `data/org.freedesktop.portal.Flatpak.xml`)
//! with flags 0 — no `SANDBOX` flag, so the portal runs `flatpak run` of the
//! calling app again, in a new `app-flatpak-<app>-<n>.scope` — passing its own
//! stdin/stdout/stderr and its whole environment (`SteamAppId`,
//! `STEAM_COMPAT_APP_ID`, …), then waits for `SpawnExited` of that pid and
//! exits with CMD's status.
//!
//! Options for experiments (environment, all unset by default):
//! - `FAKE_PV_SPAWN_FLAGS=<u32>`: `Spawn`'s `flags` instead of 0, e.g. `4`
//!   = `FLATPAK_SPAWN_FLAGS_SANDBOX` (`1 << 2` in flatpak's `FlatpakSpawnFlags`,
//!   flatpak-portal.h / flatpak-xdg-utils `flatpak-spawn.c`): the portal runs
//!   `flatpak run --sandbox`, a subsandbox without the app's filesystem
//!   permissions or overrides;
//! - `FAKE_PV_SANDBOX_EXPOSE=<name>[:<name>…]`: option `sandbox-expose`
//!   (`as`, names the portal resolves itself, only with the SANDBOX flag);
//! - `FAKE_PV_SANDBOX_EXPOSE_FD=<path>[:<path>…]`: each path opened `O_PATH`
//!   and passed as option `sandbox-expose-fd` (`ah`, exposed read-write).
//!
//! With any of them set, an error answer to `Spawn` is final: one line
//! `fake-pressure-vessel: Spawn failed: <D-Bus error>` and exit 126 (the
//! experiment is about what the portal accepts, so nothing runs instead).
//!
//! On stderr it prints one line `fake-pressure-vessel: spawn-ms=<ms> pid=<pid>`
//! (how long `Spawn` took, the pid the portal returned) so tests can assert
//! the call returned in time.
//!
//! When the portal cannot be reached (not running, not activatable, no
//! session bus) it says so in one line naming the bus name and the D-Bus
//! error, then runs CMD itself in this sandbox (the game still starts; it is
//! then a descendant of this process). Exit status: CMD's (128 + signal when
//! killed); 125 on a bad command line; 127 when CMD cannot be run.
//!
//! It must run inside the busybox test sandbox, so it is built static
//! (`scripts/setup`: `--target x86_64-unknown-linux-gnu` with `+crt-static`).

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::time::Instant;

use zbus::zvariant::{Fd, Value};

const PORTAL: &str = "org.freedesktop.portal.Flatpak";
const PATH: &str = "/org/freedesktop/portal/Flatpak";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(sep) = args.iter().position(|a| a == "--") else {
        eprintln!("usage: fake-pressure-vessel -- CMD [ARGS...]");
        std::process::exit(125);
    };
    let argv = &args[sep + 1..];
    if argv.is_empty() {
        eprintln!("usage: fake-pressure-vessel -- CMD [ARGS...]");
        std::process::exit(125);
    }
    let opts = match SpawnOpts::from_env() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("fake-pressure-vessel: {e}");
            std::process::exit(125);
        }
    };
    match spawn(argv, &opts) {
        Ok(Ok(status)) => std::process::exit(status),
        Ok(Err(e)) => {
            eprintln!("fake-pressure-vessel: lost track of the spawned game: {e}");
            std::process::exit(1);
        }
        Err(e) if opts.experiment => {
            eprintln!("fake-pressure-vessel: Spawn failed: {e}");
            std::process::exit(126);
        }
        Err(e) => {
            eprintln!(
                "fake-pressure-vessel: the flatpak portal {PORTAL} is not reachable on the \
                 session bus ({e}); running {} in this sandbox instead",
                argv[0]
            );
            let err = std::process::Command::new(&argv[0]).args(&argv[1..]).exec();
            eprintln!("fake-pressure-vessel: cannot run {}: {err}", argv[0]);
            std::process::exit(127);
        }
    }
}

/// `Spawn`'s flags and sandbox options from the `FAKE_PV_*` environment.
#[derive(Default)]
struct SpawnOpts {
    flags: u32,
    expose: Vec<String>,
    expose_fd: Vec<std::fs::File>,
    /// Any option was set.
    experiment: bool,
}

impl SpawnOpts {
    fn from_env() -> Result<Self, String> {
        let mut o = SpawnOpts::default();
        if let Ok(f) = std::env::var("FAKE_PV_SPAWN_FLAGS") {
            o.flags = f
                .parse()
                .map_err(|_| format!("FAKE_PV_SPAWN_FLAGS={f:?} is not a u32"))?;
            o.experiment = true;
        }
        if let Ok(names) = std::env::var("FAKE_PV_SANDBOX_EXPOSE") {
            o.expose = names.split(':').map(str::to_owned).collect();
            o.experiment = true;
        }
        if let Ok(paths) = std::env::var("FAKE_PV_SANDBOX_EXPOSE_FD") {
            for p in paths.split(':') {
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(nix::libc::O_PATH)
                    .open(p)
                    .map_err(|e| format!("FAKE_PV_SANDBOX_EXPOSE_FD: cannot open {p}: {e}"))?;
                o.expose_fd.push(f);
            }
            o.experiment = true;
        }
        Ok(o)
    }
}

/// Spawns `argv` through the portal and waits for it. The outer error: the
/// portal could not be asked (nothing was started); the inner one: it was
/// started but its exit was not seen.
fn spawn(argv: &[String], opts: &SpawnOpts) -> zbus::Result<zbus::Result<i32>> {
    let conn = zbus::blocking::Connection::session()?;
    let proxy = zbus::blocking::Proxy::new(&conn, PORTAL, PATH, PORTAL)?;
    // Subscribe before the call: the child may exit before we listen.
    let mut exited = proxy.receive_signal("SpawnExited")?;
    let cwd = std::env::current_dir()
        .map(|d| d.as_os_str().as_bytes().to_vec())
        .unwrap_or_else(|_| b"/".to_vec());
    let c = |s: &[u8]| {
        let mut v = s.to_vec();
        v.push(0); // bytestrings are NUL-terminated (flatpak-portal.c)
        v
    };
    let cwd = c(&cwd);
    let argv: Vec<Vec<u8>> = argv.iter().map(|a| c(a.as_bytes())).collect();
    let (stdin, stdout, stderr) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
    let fds: HashMap<u32, Fd<'_>> = HashMap::from([
        (0, Fd::from(stdin.as_fd())),
        (1, Fd::from(stdout.as_fd())),
        (2, Fd::from(stderr.as_fd())),
    ]);
    let envs: HashMap<String, String> = std::env::vars().collect();
    let mut options: HashMap<&str, Value<'_>> = HashMap::new();
    if !opts.expose.is_empty() {
        options.insert("sandbox-expose", Value::from(opts.expose.clone()));
    }
    if !opts.expose_fd.is_empty() {
        let handles: Vec<Fd<'_>> = opts.expose_fd.iter().map(|f| Fd::from(f.as_fd())).collect();
        options.insert("sandbox-expose-fd", Value::from(handles));
    }
    let t = Instant::now();
    let pid: u32 = proxy.call("Spawn", &(cwd, argv, fds, envs, opts.flags, options))?;
    eprintln!(
        "fake-pressure-vessel: spawn-ms={} pid={pid}",
        t.elapsed().as_millis()
    );
    Ok(wait(&mut exited, pid))
}

fn wait(exited: &mut zbus::blocking::proxy::SignalIterator<'_>, pid: u32) -> zbus::Result<i32> {
    for sig in exited {
        let (p, status): (u32, u32) = sig.body().deserialize()?;
        if p != pid {
            continue;
        }
        // A wait(2) status (flatpak-portal.c child_watch_died).
        let code = if status & 0x7f == 0 {
            ((status >> 8) & 0xff) as i32
        } else {
            128 + (status & 0x7f) as i32
        };
        return Ok(code);
    }
    Err(zbus::Error::Failure(
        "the bus connection closed before SpawnExited".into(),
    ))
}
