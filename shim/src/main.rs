//! `cgsplit-shim`: joins the game's pre-provisioned cgroup leaf, then execs the game.
//!
//! ```text
//! cgsplit-shim [--scope DIR] -- CMD [ARGS...]                  (launch options, before %command%)
//! cgsplit-shim [--scope DIR] compat VERB [--] CMD [ARGS...]    (compatibility tool entry point)
//! ```
//!
//! The leaf is `DIR/game` with `--scope DIR`; otherwise it is
//! `cgsplit_core::scope::game_cgroup(getuid(), app)`, with the app id from
//! `SteamAppId`, `STEAM_COMPAT_APP_ID` or `SteamGameId`, found on disk through
//! the cgroup2 mounts of `/proc/self/mountinfo` (pure v2, hybrid, or flatpak's
//! bind mount of a granted directory). The shim writes `0` to the leaf's
//! `cgroup.procs` and execs CMD with PATH search, arguments byte for byte.
//!
//! It runs inside the Steam flatpak, so it uses no D-Bus, no systemd tools and
//! no NSS (no user or host name lookups): static glibc cannot load them there.
//!
//! Fail-open: when the leaf cannot be joined (no app id, no cgroup2 mount
//! showing it, ENOENT, EACCES, …) one `cgsplit-shim:` line on stderr says why
//! and the game runs anyway, outside its scope.
//!
//! # Exit status
//!
//! | status | when |
//! |--------|------|
//! | the game's | CMD was exec'd (the shim process *is* the game from then on) |
//! | 0   | `--help` |
//! | 2   | usage error: bad option, no `--`, no command (a usage line follows) |
//! | 3   | `compat` verb other than `waitforexitandrun` or `run` (not supported yet) |
//! | 126 | CMD exists but cannot be executed (EACCES, ENOEXEC, …) |
//! | 127 | CMD not found (ENOENT) |

mod args;
mod join;
mod report;
mod target;

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, exit};

use nix::errno::Errno;
use nix::unistd::getuid;

use args::{ArgsError, Invocation, Parsed, USAGE};
use target::Target;

/// Exit status for a usage error.
const EXIT_USAGE: i32 = 2;
/// Exit status for a compat verb the shim does not handle yet.
const EXIT_UNSUPPORTED_VERB: i32 = 3;
/// Where the cgroup2 mounts are listed.
const MOUNTINFO: &str = "/proc/self/mountinfo";

fn main() {
    let inv = match args::parse(std::env::args_os().skip(1)) {
        Ok(Parsed::Run(inv)) => inv,
        Ok(Parsed::Help) => {
            let _ = writeln!(std::io::stdout(), "{USAGE}");
            exit(0);
        }
        Err(e @ ArgsError::UnsupportedVerb(_)) => {
            warn(&report::line(e));
            exit(EXIT_UNSUPPORTED_VERB);
        }
        Err(e) => {
            warn(&report::line(e));
            warn(USAGE);
            exit(EXIT_USAGE);
        }
    };
    let uid = getuid().as_raw();
    match find_target(&inv, uid) {
        Ok(t) => {
            if let Err(e) = join::join(&t.leaf) {
                warn(&report::join_failed(&e, uid, t.app));
            }
        }
        Err(line) => warn(&line),
    }
    exec(&inv.command)
}

/// The leaf to join, or the line saying why there is none.
fn find_target(inv: &Invocation, uid: u32) -> Result<Target, String> {
    if let Some(dir) = &inv.scope {
        return Ok(Target::in_scope(dir));
    }
    let app = target::app_id_from_env(|k| std::env::var_os(k)).map_err(report::not_joined)?;
    let text = std::fs::read_to_string(MOUNTINFO)
        .map_err(|e| report::not_joined(format_args!("cannot read {MOUNTINFO}: {e}")))?;
    target::locate(uid, app, &text).map_err(report::not_joined)
}

/// Replaces the shim with `cmd` (execvp: PATH search, same environment).
/// std's exec also resets SIGPIPE, which the Rust runtime ignores, to its default.
fn exec(cmd: &[OsString]) -> ! {
    let err = Command::new(&cmd[0]).args(&cmd[1..]).exec();
    let errno = Errno::from_raw(err.raw_os_error().unwrap_or(0));
    warn(&report::exec_failed(&cmd[0], errno));
    exit(report::exec_exit_code(errno))
}

/// Prints a line on stderr; a broken stderr must not stop the game from running.
fn warn(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}
