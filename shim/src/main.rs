//! `cgsplit-shim`: joins the game's pre-provisioned cgroup leaf, then runs the game.
//!
//! ```text
//! cgsplit-shim [OPTIONS] -- CMD [ARGS...]                     (launch options, before %command%)
//! cgsplit-shim [OPTIONS] [--chain] compat VERB [--] CMD...    (compatibility tool entry point)
//! ```
//!
//! Options and verbs: [`args`]. The leaf is `DIR/game` with `--scope DIR`;
//! otherwise it is `cgsplit_core::scope::game_cgroup(getuid(), app)`, with the
//! app id from `--app` or the environment (`SteamAppId`, `STEAM_COMPAT_APP_ID`,
//! `SteamGameId`), found on disk through the cgroup2 mounts of
//! `/proc/self/mountinfo` (pure v2, hybrid, or flatpak's bind mount of a
//! granted directory). The shim writes `0` to the leaf's `cgroup.procs` and
//! execs CMD with PATH search, arguments byte for byte (never re-split).
//!
//! It runs inside the Steam flatpak, so it uses no D-Bus, no systemd tools and
//! no NSS (no user or host name lookups): static glibc cannot load them there.
//!
//! # Process model
//!
//! Without post-exit work the shim joins and execs: the game keeps the
//! shim's pid and its exit status is the game's own. With `--kill-steam`
//! it forks ([`supervise`]): the child joins and execs, the parent stays in
//! its own cgroup, forwards SIGINT/SIGTERM/SIGHUP, waits for the game's whole
//! tree, asks Steam to shut down and exits with the game's status.
//!
//! # Steam's containers
//!
//! In the launch-option form the command may start with Steam's wrappers,
//! some of which relaunch the game out of the shim's process tree (a
//! pressure-vessel container, a new systemd scope). The shim joins first,
//! then runs the command with a second copy of itself inserted after the
//! innermost such wrapper; that copy (`--inner`) joins only when it is not
//! in `game/` already: see [`reinsert`].
//!
//! # Policy
//!
//! Fail-open by default: when the leaf cannot be joined one `cgsplit-shim:`
//! line says why and the game runs anyway, outside its scope. Fail-closed
//! with a restricted `--network` policy unless `--allow-network`: see [`gate`].
//! Lines go to stderr and to `$XDG_STATE_HOME/cgsplit/shim.log` ([`log`]).
//!
//! # Exit status
//!
//! | status | when |
//! |--------|------|
//! | the game's | CMD ran (128 + signal when it was killed, in the fork model) |
//! | 0   | `--help`; a path verb answered |
//! | 1   | a path verb's answer could not be written (stdout closed or broken) |
//! | 2   | usage error: bad option or value, no `--`, no command (a usage line follows) |
//! | 3   | unknown compat verb (without `--chain`) |
//! | 4   | refused: `--network` given and not enforced, or a launch shape the shim cannot follow (fail-closed) |
//! | 125 | the shim itself failed (fork, pipe) |
//! | 126 | CMD exists but cannot be executed (EACCES, ENOEXEC, …) |
//! | 127 | CMD not found (ENOENT) |
//!
//! # Start-up
//!
//! The shim has its own C `main` (`no_main`): Rust's runtime start-up would
//! put `/dev/null` on closed fds 0–2 for good, so a game given a closed
//! stdout would get `/dev/null` instead, and a path answer written to it
//! would be lost without an error. Here closed fds get `/dev/null` with
//! close-on-exec ([`guard_stdio`]): the shim's own files cannot land on them,
//! and the game still starts with them closed. SIGPIPE is ignored as the
//! runtime would (a broken stderr must not kill the shim before the game
//! runs); std's exec restores its default action for the game.

#![cfg_attr(not(test), no_main)]
// The test harness brings its own main, so the entry path is unused there.
#![cfg_attr(test, allow(dead_code))]

mod args;
mod gate;
mod join;
mod log;
mod procscan;
mod reinsert;
mod report;
mod steampipe;
mod supervise;
mod target;

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, exit};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;
use nix::unistd::getuid;

use args::{Invocation, Parsed, USAGE};
use log::warn;
use target::Target;

/// Exit status when a path verb's answer cannot be written.
const EXIT_OUTPUT: i32 = 1;
/// Exit status for a usage error.
const EXIT_USAGE: i32 = 2;
/// Exit status for a compat verb the shim does not handle.
const EXIT_UNSUPPORTED_VERB: i32 = 3;
/// Exit status when a `--network` policy cannot be proven (fail-closed).
pub(crate) const EXIT_REFUSED: i32 = 4;
/// Exit status when the shim itself fails before the game could start
/// (the wrapper convention of env(1) and timeout(1)).
pub(crate) const EXIT_INTERNAL: i32 = 125;
/// Where the cgroup2 mounts are listed.
const MOUNTINFO: &str = "/proc/self/mountinfo";

/// The process entry point (see "Start-up"): the C runtime calls it; std's
/// `env::args_os` still works because glibc hands argv to std's initialiser.
#[cfg(not(test))]
#[unsafe(no_mangle)]
pub extern "C" fn main(
    _argc: nix::libc::c_int,
    _argv: *const *const nix::libc::c_char,
) -> nix::libc::c_int {
    let closed = guard_stdio();
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler code.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigIgn,
        )
    };
    run(closed)
}

fn run(closed: [bool; 3]) -> ! {
    let parsed = match args::parse(std::env::args_os().skip(1)) {
        Ok(p) => p,
        Err(e) => {
            warn(&report::line(&e));
            if e.is_unsupported_verb() {
                exit(EXIT_UNSUPPORTED_VERB);
            }
            warn(USAGE);
            exit(EXIT_USAGE);
        }
    };
    match parsed {
        Parsed::Help => {
            let mut text = USAGE.as_bytes().to_vec();
            text.push(b'\n');
            print_or_exit(&text, closed[1], "the usage text");
            exit(0)
        }
        Parsed::Answer(paths) => {
            let mut text = Vec::new();
            for p in &paths {
                text.extend_from_slice(p.as_bytes());
                text.push(b'\n');
            }
            print_or_exit(&text, closed[1], "the path answer");
            exit(0)
        }
        Parsed::Forward(cmd) => exec_or_exit(&cmd),
        Parsed::Launch(inv) => launch(&inv),
    }
}

fn launch(inv: &Invocation) -> ! {
    let uid = getuid().as_raw();
    let target = find_target(inv, uid);
    let mut inv = inv.clone();
    if inv.inner {
        // Only the outer instance asks Steam to quit: it is the one that
        // sees the whole launch end.
        inv.kill_steam = false;
    } else {
        let app = target
            .as_ref()
            .ok()
            .and_then(|t| t.app)
            .or(inv.app)
            .or_else(|| target::app_id_from_env(|k| std::env::var_os(k)).ok());
        inv.command = match outermost(&inv, app) {
            Ok(c) => c,
            Err(refusal) => {
                warn(&refusal);
                exit(EXIT_REFUSED);
            }
        };
    }
    let inv = &inv;
    if let Err(r) = gate::before_join(inv, &target) {
        warn(&r.0);
        exit(EXIT_REFUSED);
    }
    if inv.kill_steam {
        supervise::run(inv, &target, uid);
    }
    if let Err(r) = gate::join_and_prove(inv, &target, uid) {
        warn(&r.0);
        exit(EXIT_REFUSED);
    }
    exec_or_exit(&inv.command)
}

/// The command the outer instance runs: `inv.command`, with the inner shim
/// inserted after Steam's innermost relaunching wrapper in the launch-option
/// form ([`reinsert`]). Says in one line each which scope variables of
/// Steam's are on and what it cannot follow. A shape it cannot follow may
/// let the game leave `game/` after the outer join, so under a restricted
/// `--network` that is a refusal (`Err`, the line to print) unless
/// `--allow-network`.
fn outermost(inv: &Invocation, app: Option<cgsplit_core::AppId>) -> Result<Vec<OsString>, String> {
    use reinsert::Plan;
    let plan = if inv.compat || inv.no_reinsert {
        Plan::Keep
    } else {
        reinsert::plan(&inv.command)
    };
    for (var, what) in reinsert::SCOPE_VARS {
        if std::env::var_os(var).is_some_and(|v| reinsert::scope_var_on(&v)) {
            warn(&report::line(reinsert::scope_var_line(
                var, what, &plan, inv.compat,
            )));
        }
    }
    let (command, problem) = match plan {
        Plan::Keep | Plan::AlreadyInside => (inv.command.clone(), None),
        Plan::Unknown(why) => (
            inv.command.clone(),
            Some(format!("{why}; the shim stays outermost")),
        ),
        Plan::Insert { at, stray, .. } => {
            let argv0 = std::env::args_os().next();
            match reinsert::shim_path(argv0.as_deref(), || std::fs::read_link("/proc/self/exe")) {
                Ok(shim) => {
                    let stray = stray.map(|i| {
                        format!(
                            "`{}` (word {i} of the command) relaunches the game but is not right \
                             after Steam's other wrappers; the re-inserted shim runs before it",
                            inv.command[i].to_string_lossy()
                        )
                    });
                    let words = reinsert::inner_words(&shim, inv, app);
                    (reinsert::insert(&inv.command, at, words), stray)
                }
                Err(why) => (
                    inv.command.clone(),
                    Some(format!(
                        "cannot re-insert the shim after Steam's wrapper: {why}; the shim stays \
                         outermost"
                    )),
                ),
            }
        }
    };
    let Some(why) = problem else {
        return Ok(command);
    };
    let why = format!("{why}, so a wrapper that relaunches the game may take it out of game/");
    if inv
        .network
        .as_ref()
        .is_some_and(cgsplit_core::NetworkPolicy::is_restricted)
    {
        gate::refuse_or_warn(inv, why).map_err(|r| r.0)?;
    } else {
        warn(&report::line(why));
    }
    Ok(command)
}

/// The leaf to join, or the reason there is none.
fn find_target(inv: &Invocation, uid: u32) -> Result<Target, String> {
    if let Some(dir) = &inv.scope {
        let mut t = Target::in_scope(dir);
        t.app = inv.app.or(t.app);
        return Ok(t);
    }
    let app = match inv.app {
        Some(a) => a,
        None => target::app_id_from_env(|k| std::env::var_os(k)).map_err(|e| e.to_string())?,
    };
    let text =
        std::fs::read_to_string(MOUNTINFO).map_err(|e| format!("cannot read {MOUNTINFO}: {e}"))?;
    target::locate(uid, app, &text).map_err(|e| e.to_string())
}

/// Replaces the shim with `cmd` (execvp: PATH search, same environment);
/// returns only on failure. std's exec also resets SIGPIPE (which the Rust
/// runtime ignores) to its default and clears the signal mask.
pub(crate) fn exec(cmd: &[OsString]) -> std::io::Error {
    Command::new(&cmd[0]).args(&cmd[1..]).exec()
}

/// The failure line for `err` and the shell's exit code for it (126/127).
pub(crate) fn exec_failed_exit(program: &OsStr, err: std::io::Error) -> ! {
    let errno = Errno::from_raw(err.raw_os_error().unwrap_or(0));
    warn(&report::exec_failed(program, errno));
    exit(report::exec_exit_code(errno))
}

/// [`exec`], or the failure line and exit 126/127.
pub(crate) fn exec_or_exit(cmd: &[OsString]) -> ! {
    let err = exec(cmd);
    exec_failed_exit(&cmd[0], err)
}

/// Makes sure fds 0–2 are open so no file the shim opens (a cgroup.procs,
/// the log) can land on them and receive stray output: each closed one gets
/// `/dev/null` with close-on-exec, so the game still starts with it closed.
/// Returns which were closed.
fn guard_stdio() -> [bool; 3] {
    let mut closed = [false; 3];
    for (fd, c) in closed.iter_mut().enumerate() {
        // SAFETY: F_GETFD only reads the descriptor's flags; no memory is passed.
        let flags = unsafe { nix::libc::fcntl(fd as i32, nix::libc::F_GETFD) };
        if flags == -1 && Errno::last() == Errno::EBADF {
            *c = true;
            // Lowest free number: it becomes `fd` because the lower ones are open.
            let _ = open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
                .map(std::mem::forget);
        }
    }
    closed
}

/// Writes `text` to stdout, or prints why it could not and exits 1.
fn print_or_exit(text: &[u8], stdout_closed: bool, what: &str) {
    let res = if stdout_closed {
        Err(std::io::Error::from_raw_os_error(nix::libc::EBADF))
    } else {
        let mut out = std::io::stdout().lock();
        out.write_all(text).and_then(|()| out.flush())
    };
    if let Err(e) = res {
        warn(&report::line(format_args!(
            "cannot write {what} to stdout: {e}"
        )));
        exit(EXIT_OUTPUT);
    }
}
