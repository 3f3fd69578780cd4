//! The fork model, used when there is work after the game (`--kill-steam`).
//!
//! The shim becomes a child subreaper (prctl(2) `PR_SET_CHILD_SUBREAPER`),
//! blocks SIGINT/SIGTERM/SIGHUP/SIGCHLD and reads them from a signalfd, then
//! forks. The child joins `game/` (and proves the network filter) and execs
//! the game; the parent stays in its own cgroup — otherwise `game/` could
//! never become empty — forwards SIGINT, SIGTERM and SIGHUP sent to it (not a
//! terminal's, which reach the game directly) to the child and
//! reaps every process reparented to it.
//!
//! When the child has exited, the parent waits until the game has ended for
//! good: no descendants left (orphans of the game are reparented to us), the
//! leaf's `cgroup.events` says `populated 0` (watched with inotify, re-read
//! every [`POLL`]), and no other visible process carries `SteamAppId=<N>`
//! ([`crate::procscan`]). Then it writes the shutdown request
//! ([`crate::steampipe`]) and exits with the game's status: its exit code,
//! or 128 + the signal that killed it.
//!
//! A signal that arrives after the child has exited cancels the shutdown
//! request: whoever sent it wants the launch to end, not Steam to quit.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::process::exit;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, pipe2};

use crate::args::Invocation;
use crate::target::Target;
use crate::{EXIT_REFUSED, exec_or_exit, log::warn};
use crate::{gate, join, procscan, report, steampipe};

/// How often the end-of-game conditions are re-checked without an event.
pub const POLL: Duration = Duration::from_millis(200);

/// Signals passed on to the game.
const FORWARDED: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

/// Runs the game in a child and does the post-exit work; never returns.
pub fn run(inv: &Invocation, target: &Result<Target, String>, uid: u32) -> ! {
    // Orphans of the game come to us, so "no children left" means "the game's
    // tree has ended", also when the leaf could not be joined.
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let mut mask = SigSet::empty();
    for s in FORWARDED {
        mask.add(s);
    }
    mask.add(Signal::SIGCHLD);
    let mut old = SigSet::empty();
    if let Err(e) = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), Some(&mut old)) {
        warn(&report::line(format_args!(
            "cannot block signals ({e}); running the game without post-exit work"
        )));
        exec_in_place(inv, target, uid);
    }
    let sfd = match SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK) {
        Ok(s) => s,
        Err(e) => {
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
            warn(&report::line(format_args!(
                "cannot create a signalfd ({e}); running the game without post-exit work"
            )));
            exec_in_place(inv, target, uid);
        }
    };
    // The child writes one byte here when it exits without exec'ing the game;
    // a successful exec closes it empty (O_CLOEXEC).
    let (status_r, status_w) = match pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => fatal(format_args!("cannot create a pipe: {e}")),
    };
    // SAFETY: the shim is single-threaded; the child only makes system calls
    // and allocations of its own before exec or exit.
    match unsafe { fork() } {
        Err(e) => fatal(format_args!("cannot fork: {e}")),
        Ok(ForkResult::Child) => {
            drop(sfd);
            drop(status_r);
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
            child(inv, target, uid, status_w)
        }
        Ok(ForkResult::Parent { child }) => {
            drop(status_w);
            parent(inv, target, child, sfd, status_r)
        }
    }
}

/// Without the means to supervise: join, prove, exec (the game keeps our pid).
fn exec_in_place(inv: &Invocation, target: &Result<Target, String>, uid: u32) -> ! {
    if let Err(r) = gate::join_and_prove(inv, target, uid) {
        warn(&r.0);
        exit(EXIT_REFUSED);
    }
    exec_or_exit(&inv.command)
}

fn child(inv: &Invocation, target: &Result<Target, String>, uid: u32, status: OwnedFd) -> ! {
    let tell = |b: u8| {
        let _ = nix::unistd::write(&status, &[b]);
    };
    if let Err(r) = gate::join_and_prove(inv, target, uid) {
        warn(&r.0);
        tell(b'R');
        exit(EXIT_REFUSED);
    }
    // exec_or_exit only returns by exiting; say first that the game never ran.
    let err = crate::exec(&inv.command);
    tell(b'E');
    crate::exec_failed_exit(&inv.command[0], err)
}

fn fatal(what: std::fmt::Arguments<'_>) -> ! {
    warn(&report::line(what));
    exit(crate::EXIT_INTERNAL)
}

/// The shell's number for a wait status: the code, or 128 + signal.
fn status_code(st: WaitStatus) -> Option<i32> {
    match st {
        WaitStatus::Exited(_, c) => Some(c),
        WaitStatus::Signaled(_, s, _) => Some(128 + s as i32),
        _ => None,
    }
}

/// Reaps every exited child without blocking; returns the status of `game`
/// if it was among them. `false` in the second slot: no children remain.
fn reap(game: Pid) -> (Option<i32>, bool) {
    let mut code = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return (code, true),
            Ok(st) => {
                if st.pid() == Some(game) {
                    code = status_code(st).or(code);
                }
            }
            Err(Errno::EINTR) => {}
            Err(_) => return (code, false), // ECHILD
        }
    }
}

/// `si_code` of a signal the kernel generated itself, e.g. SIGINT from a
/// terminal's Ctrl-C or SIGHUP from its hangup (uapi `asm-generic/siginfo.h`).
const SI_KERNEL: i32 = 0x80;

/// A signal read from the signalfd (not SIGCHLD).
struct Received {
    signal: Signal,
    /// Generated by the kernel for a terminal (`SI_KERNEL`): it went to the
    /// whole foreground process group, which the game shares with the shim,
    /// so the game has it already and passing it on would deliver a second Ctrl-C.
    from_terminal: bool,
}

/// Drains the signalfd.
fn signals(sfd: &mut SignalFd) -> Vec<Received> {
    let mut out = Vec::new();
    while let Ok(Some(info)) = sfd.read_signal() {
        if let Ok(signal) = Signal::try_from(info.ssi_signo as i32)
            && signal != Signal::SIGCHLD
        {
            out.push(Received {
                signal,
                from_terminal: info.ssi_code == SI_KERNEL,
            });
        }
    }
    out
}

fn parent(
    inv: &Invocation,
    target: &Result<Target, String>,
    game: Pid,
    mut sfd: SignalFd,
    status_r: OwnedFd,
) -> ! {
    // 1. Until the game process itself exits: forward signals, reap orphans.
    let code = loop {
        let mut fds = [PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, PollTimeout::NONE);
        for r in signals(&mut sfd) {
            if !r.from_terminal {
                let _ = kill(game, r.signal);
            }
        }
        if let (Some(code), _) = reap(game) {
            break code;
        }
    };
    let mut note = [0u8; 1];
    let ran = !matches!(std::fs::File::from(status_r).read(&mut note), Ok(1));
    if !ran || !inv.kill_steam {
        exit(code);
    }
    // 2. Until the game has ended for good.
    let leaf = target.as_ref().ok().map(|t| t.leaf.clone());
    let app = target.as_ref().ok().and_then(|t| t.app).or(inv.app);
    if !wait_for_end(&mut sfd, game, leaf.as_deref(), app.map(|a| a.get())) {
        warn(&report::line(
            "a signal arrived while waiting for the game's processes to end; not asking Steam to shut down",
        ));
        exit(code);
    }
    // 3. The request.
    match steampipe::pipe_path(std::env::var_os("HOME")) {
        None => warn(&report::line(
            "HOME is not set: cannot find ~/.steam/steam.pipe; not asking Steam to shut down",
        )),
        Some(pipe) => match steampipe::request_shutdown(&pipe, steampipe::WRITE_TIMEOUT) {
            steampipe::Outcome::Sent => warn(&report::line(format_args!(
                "the game has ended; asked Steam to shut down through {}",
                pipe.display()
            ))),
            steampipe::Outcome::NotRunning(why) => warn(&report::line(format_args!(
                "the game has ended; Steam is not running ({why}), nothing to shut down"
            ))),
            steampipe::Outcome::Failed(why) => warn(&report::line(format_args!(
                "could not ask Steam to shut down: {why}"
            ))),
        },
    }
    exit(code)
}

/// Waits until no child is left, `leaf` is unpopulated and no other process
/// carries `SteamAppId=<app>`; `false` when a forwarded signal interrupts.
fn wait_for_end(sfd: &mut SignalFd, game: Pid, leaf: Option<&Path>, app: Option<u32>) -> bool {
    let inotify = leaf.and_then(|l| {
        let ino = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).ok()?;
        ino.add_watch(&l.join(join::EVENTS), AddWatchFlags::IN_MODIFY)
            .ok()?;
        Some(ino)
    });
    let me = std::process::id();
    let mut said = false;
    loop {
        let (_, children_left) = reap(game);
        let leaf_busy = leaf.is_some_and(|l| join::populated(l).unwrap_or(false));
        let others = match app {
            Some(a) if !children_left && !leaf_busy => procscan::blockers(&procscan::scan(a), me),
            _ => Vec::new(),
        };
        if !children_left && !leaf_busy && others.is_empty() {
            return true;
        }
        if !said {
            said = true;
            let why = if children_left {
                "processes the game started are still running".to_owned()
            } else if leaf_busy {
                format!(
                    "{} still has processes",
                    leaf.map_or(String::new(), |l| l.display().to_string())
                )
            } else {
                format!("processes {others:?} still carry the game's SteamAppId")
            };
            warn(&report::line(format_args!(
                "the game process exited; waiting before asking Steam to shut down: {why}"
            )));
        }
        let ms = u16::try_from(POLL.as_millis()).unwrap_or(u16::MAX);
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if let Some(ino) = &inotify {
            fds.push(PollFd::new(ino.as_fd(), PollFlags::POLLIN));
        }
        let _ = poll(&mut fds, PollTimeout::from(ms));
        if let Some(ino) = &inotify {
            let _ = ino.read_events();
        }
        if !signals(sfd).is_empty() {
            return false;
        }
    }
}
