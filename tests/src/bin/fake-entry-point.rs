//! Stand-in for a Steam Linux Runtime entry point (`_v2-entry-point`, which
//! starts pressure-vessel): `fake-entry-point [--verb=VERB] -- CMD [ARGS…]`
//! (tests install it under the name `_v2-entry-point`; STEAM.md §2).
//!
//! Runs CMD in a bubblewrap container shaped like pressure-vessel's as far as
//! cgsplit can tell: the host's `/` shared read-only, `/sys` read-only (so a
//! write to any `cgroup.procs` fails with `EROFS`), its own `/dev` and
//! `/proc`, and — pressure-vessel's default — the host's pid namespace:
//!
//! ```text
//! bwrap --ro-bind / / --ro-bind /sys /sys --dev /dev --proc /proc [--bind P P]… [--unshare-pid] -- CMD…
//! ```
//!
//! The variables pressure-vessel reads, as far as they matter here:
//! - `PRESSURE_VESSEL_FILESYSTEMS_RW=P1:P2…`: paths shared read-write
//!   (`--bind`), e.g. where a test's report goes, or a cgroup directory;
//! - `PRESSURE_VESSEL_SHARE_PID=0`: a pid namespace of the container's own;
//! - `PRESSURE_VESSEL_SYSTEMD_SCOPE` set (not empty, not `0`): the container
//!   first moves into a new transient scope of the user manager
//!   (`systemd-run --user --scope --quiet -- bwrap …`), out of the cgroup
//!   of whoever ran the entry point.
//!
//! Prints one `fake-entry-point:` line on stderr with the command it runs.
//! Exits 125 on a bad command line, 127 when the exec fails; otherwise the
//! container's status is CMD's (exec all the way).

use std::os::unix::process::CommandExt;
use std::process::Command;

fn on(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| !v.is_empty() && v != "0")
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a.starts_with("--verb=")) {
        args.remove(0);
    }
    if args.first().map(String::as_str) != Some("--") || args.len() < 2 {
        eprintln!("usage: _v2-entry-point [--verb=VERB] -- CMD [ARGS...]");
        std::process::exit(125);
    }
    let cmd = &args[1..];
    let mut argv: Vec<String> = Vec::new();
    if on("PRESSURE_VESSEL_SYSTEMD_SCOPE") {
        argv.extend(["systemd-run", "--user", "--scope", "--quiet", "--"].map(String::from));
    }
    argv.extend(
        [
            "bwrap",
            "--ro-bind",
            "/",
            "/",
            "--ro-bind",
            "/sys",
            "/sys",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
        ]
        .map(String::from),
    );
    for p in std::env::var("PRESSURE_VESSEL_FILESYSTEMS_RW")
        .unwrap_or_default()
        .split(':')
        .filter(|p| !p.is_empty())
    {
        argv.extend(["--bind".to_owned(), p.to_owned(), p.to_owned()]);
    }
    if std::env::var("PRESSURE_VESSEL_SHARE_PID").is_ok_and(|v| v == "0") {
        argv.push("--unshare-pid".to_owned());
    }
    argv.push("--".to_owned());
    argv.extend(cmd.iter().cloned());
    eprintln!(
        "fake-entry-point: pid={} runs: {argv:?}",
        std::process::id()
    );
    let e = Command::new(&argv[0]).args(&argv[1..]).exec();
    eprintln!("fake-entry-point: cannot run {}: {e}", argv[0]);
    std::process::exit(127);
}
