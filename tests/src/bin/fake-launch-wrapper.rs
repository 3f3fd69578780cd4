//! Stand-in for Steam's `steam-launch-wrapper`: `fake-launch-wrapper -- CMD [ARGS…]`
//! (tests install it under the name `steam-launch-wrapper`, which is how the
//! shim recognises it; STEAM.md §2).
//!
//! With `STEAM_LAUNCH_WRAPPER_SCOPE` set to anything but empty or `0` it does
//! what that variable asks of the real wrapper (issue 7, "Why"): it runs the
//! rest in a new transient scope of the user manager, through
//! `systemd-run --user --scope --quiet -- CMD…`, so CMD leaves the cgroup of
//! whoever ran the wrapper. Otherwise it execs CMD in place.
//!
//! Prints one `fake-launch-wrapper:` line on stderr saying which it does.
//! Exits 125 on a bad command line, 127 when the exec fails.

use std::os::unix::process::CommandExt;
use std::process::Command;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some("--") || args.len() < 2 {
        eprintln!("usage: steam-launch-wrapper -- CMD [ARGS...]");
        std::process::exit(125);
    }
    let cmd = &args[1..];
    let scoped =
        std::env::var("STEAM_LAUNCH_WRAPPER_SCOPE").is_ok_and(|v| !v.is_empty() && v != "0");
    let mut c = if scoped {
        let mut c = Command::new("systemd-run");
        c.args(["--user", "--scope", "--quiet", "--"]).args(cmd);
        c
    } else {
        let mut c = Command::new(&cmd[0]);
        c.args(&cmd[1..]);
        c
    };
    eprintln!(
        "fake-launch-wrapper: pid={} runs{}: {cmd:?}",
        std::process::id(),
        if scoped { " in a new scope" } else { "" }
    );
    let e = c.exec();
    eprintln!("fake-launch-wrapper: cannot run {cmd:?}: {e}");
    std::process::exit(127);
}
