//! Stand-in for Steam's `reaper`: `fake-reaper SteamLaunch AppId=N -- CMD [ARGS…]`.
//!
//! Like the real one (Steam compatibility tool interface, "Native Linux Steam
//! games"; STEAM.md §2) it makes itself a child subreaper
//! (`PR_SET_CHILD_SUBREAPER`), runs CMD as a child, and stays until every
//! descendant has exited, reaping orphans reparented to it. Exits with CMD's
//! status (128 + signal when CMD was killed); 125 on a bad command line.

use std::process::Command;

use nix::errno::Errno;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

fn usage() -> ! {
    eprintln!("usage: fake-reaper SteamLaunch AppId=N -- CMD [ARGS...]");
    std::process::exit(125);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(sep) = args.iter().position(|a| a == "--") else {
        usage()
    };
    if args.first().map(String::as_str) != Some("SteamLaunch")
        || !args[..sep].iter().any(|a| a.starts_with("AppId="))
        || sep + 1 >= args.len()
    {
        usage();
    }
    nix::sys::prctl::set_child_subreaper(true).expect("fake-reaper: PR_SET_CHILD_SUBREAPER");
    let child = Command::new(&args[sep + 1])
        .args(&args[sep + 2..])
        .spawn()
        .unwrap_or_else(|e| {
            eprintln!("fake-reaper: cannot run {}: {e}", args[sep + 1]);
            std::process::exit(127)
        });
    let game = Pid::from_raw(child.id() as i32);
    let mut code = 1;
    loop {
        match waitpid(None, None) {
            Ok(WaitStatus::Exited(p, c)) if p == game => code = c,
            Ok(WaitStatus::Signaled(p, s, _)) if p == game => code = 128 + s as i32,
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => break, // ECHILD: every descendant has exited
        }
    }
    std::process::exit(code);
}
