//! The keeper: a process that does nothing but exist, so the scope it anchors
//! stays alive with no game running (an empty scope stops and its cgroup is
//! deleted; systemd `scope.c` `scope_notify_cgroup_empty_event`).
//!
//! It is this same binary re-run as `cgsplit keeper` (`argv[0]` `cgsplit-keeper`
//! so `ps` shows what it is). It calls setsid(2) so it leaves the caller's
//! session and terminal, has stdio on /dev/null and cwd `/`, and pauses until
//! a signal kills it: systemd sends SIGTERM when the scope is stopped.

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::error::Error;

/// The `argv[1]` that turns the binary into the keeper. Not an argh subcommand,
/// so it does not show in `--help`.
pub const KEEPER_ARG: &str = "keeper";

/// Starts the keeper as a child of this process and returns it. The caller
/// must not wait for it on success: it is meant to outlive the CLI.
pub fn spawn() -> Result<Child, Error> {
    let exe = std::env::current_exe().map_err(|source| Error::Keeper {
        exe: PathBuf::from("/proc/self/exe"),
        source,
    })?;
    Command::new(&exe)
        .arg0("cgsplit-keeper")
        .arg(KEEPER_ARG)
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| Error::Keeper { exe, source })
}

/// Kills (SIGKILL) and reaps a keeper that was started but is not needed.
pub fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The keeper's main: default signal handling, setsid, then pause forever.
///
/// A signal mask and ignored dispositions survive exec(2), so the keeper
/// resets both: `cgsplit run` blocks SIGTERM while it starts keepers, and a
/// shell's background job ignores SIGINT; systemd's SIGTERM at `stop` must
/// end the keeper at once, not after `TimeoutStopSec=`.
pub fn run() -> ! {
    use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, pthread_sigmask, signal};
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: SIG_DFL installs no handler code.
        let _ = unsafe { signal(sig, SigHandler::SigDfl) };
    }
    let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    // Fails only if already a group leader, which a fresh child is not.
    let _ = nix::unistd::setsid();
    loop {
        nix::unistd::pause();
    }
}
