//! `cgsplit run -- CMD…`: provision, start CMD (Steam) in its own transient
//! scope under the user manager, forward signals, keep its exit status, tear
//! down what this run provisioned.
//!
//! Why a scope of its own: a Steam started from a tty login sits in logind's
//! `session-N.scope`, outside `user@<uid>.service`, where the shim's write to
//! a game leaf's `cgroup.procs` fails with EACCES (the common ancestor,
//! `user-<uid>.slice`, is root's; kernel cgroup-v2.rst "Delegation
//! Containment"). A scope started with `PIDs=` moves CMD into
//! `app.slice/app-cgsplit-steam-<pid>.scope`; when the user manager may not
//! move it itself, systemd asks the system manager (`AttachProcessesToUnit`,
//! systemd `src/core/cgroup.c`). The name follows systemd's
//! `docs/DESKTOP_ENVIRONMENTS.md` convention `app-<launcher>-<id>-<random>`.
//!
//! CMD is forked by us and held at a gate (a pipe) until its scope exists,
//! so it never runs a single instruction outside it. It gets its own process
//! group, so a terminal's Ctrl-C reaches it once, through our forwarding.

use std::ffi::{CString, OsString};
use std::os::fd::AsRawFd as _;
use std::os::unix::ffi::OsStrExt as _;

use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, pthread_sigmask};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};
use zbus::zvariant::Value;

use crate::error::Error;
use crate::systemd::UserManager;

/// The signals forwarded to CMD.
pub const FORWARDED: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

fn forwarded_set() -> SigSet {
    let mut s = SigSet::empty();
    for sig in FORWARDED {
        s.add(sig);
    }
    s
}

/// Blocks the forwarded signals in the calling thread; call first in `main`
/// before any thread (zbus starts some) exists, so every thread inherits the
/// mask and only [`run_in_scope`]'s waiter thread receives them.
pub fn block_forwarded_signals() {
    let _ = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&forwarded_set()), None);
}

/// Unit name of CMD's scope: `app-cgsplit-steam-<pid>.scope`.
pub fn steam_scope_unit(pid: u32) -> String {
    format!("app-cgsplit-steam-{pid}.scope")
}

/// The exit code a shell would report for `status`: the code, or 128 + the
/// signal number for a process killed by a signal.
pub fn exit_code(status: WaitStatus) -> i32 {
    match status {
        WaitStatus::Exited(_, c) => c,
        WaitStatus::Signaled(_, s, _) => 128 + s as i32,
        _ => 1,
    }
}

/// Forks CMD (`argv[0]` looked up in `PATH` by `execvp`), starts
/// `app-cgsplit-steam-<pid>.scope` in `app.slice` with it, lets it run,
/// forwards SIGINT/SIGTERM/SIGHUP to it, and returns its wait status once it
/// exited. The scope is stopped afterwards (anything CMD left behind is
/// killed by systemd). [`block_forwarded_signals`] must have run first.
///
/// Errors: an empty or NUL-containing argv, fork failure, and the scope not
/// starting (then CMD is killed before it ran).
pub fn run_in_scope(mgr: &UserManager, argv: &[OsString]) -> Result<WaitStatus, Error> {
    let bad = |m: String| Error::Run { message: m };
    let cargs: Vec<CString> = argv
        .iter()
        .map(|a| CString::new(a.as_bytes()).map_err(|_| bad(format!("{a:?} contains a NUL byte"))))
        .collect::<Result<_, _>>()?;
    let Some(prog) = cargs.first().cloned() else {
        return Err(bad("no command given: use `cgsplit run -- steam …`".into()));
    };
    let exec_failed = format!(
        "cgsplit: error: cannot execute {:?}: not found or not executable\n",
        argv[0]
    );
    let (gate_r, gate_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| bad(format!("pipe: {e}")))?;
    let mask = forwarded_set();
    // SAFETY: between fork and exec the child calls only async-signal-safe
    // functions (close, read, setpgid, sigprocmask, execvp, _exit) on data
    // prepared before the fork.
    let child = match unsafe { fork() } {
        Err(e) => return Err(bad(format!("fork: {e}"))),
        Ok(ForkResult::Child) => {
            let _ = nix::unistd::close(gate_w.as_raw_fd());
            let mut b = [0u8; 1];
            // Wait for the parent: one byte means go, EOF means give up.
            if !matches!(nix::unistd::read(&gate_r, &mut b), Ok(1)) {
                unsafe { nix::libc::_exit(125) };
            }
            let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
            let _ = pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&mask), None);
            let _ = nix::unistd::execvp(&prog, &cargs);
            let _ = nix::unistd::write(std::io::stderr(), exec_failed.as_bytes());
            unsafe { nix::libc::_exit(127) };
        }
        Ok(ForkResult::Parent { child }) => child,
    };
    drop(gate_r);
    let pid = child.as_raw() as u32;
    let unit = steam_scope_unit(pid);
    let props: Vec<(&str, Value<'_>)> = vec![
        (
            "Description",
            Value::from(format!("cgsplit run: {}", argv[0].to_string_lossy())),
        ),
        ("PIDs", Value::from(vec![pid])),
        ("Slice", Value::from("app.slice")),
        ("CollectMode", Value::from("inactive-or-failed")),
    ];
    if let Err(e) = mgr.start_transient(&unit, &props, crate::START_TIMEOUT) {
        drop(gate_w); // EOF: the child exits 125 without running CMD.
        let _ = waitpid(child, None);
        return Err(e);
    }
    if nix::unistd::write(&gate_w, b"g").is_err() {
        let _ = kill(child, Signal::SIGKILL);
    }
    drop(gate_w);

    // Forward signals from a thread; the main thread waits for CMD.
    std::thread::spawn(move || {
        loop {
            if let Ok(sig) = mask.wait() {
                let _ = kill(child, sig);
            }
        }
    });
    let status = loop {
        match waitpid(child, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(bad(format!("waitpid {pid}: {e}"))),
            Ok(s @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => break s,
            Ok(_) => continue,
        }
    };
    // What CMD left behind (Steam's helpers) goes with its scope.
    match mgr.stop(&unit, crate::STOP_TIMEOUT) {
        Ok(()) | Err(Error::JobFailed { .. }) => {}
        Err(Error::Call { ref name, .. }) if name == crate::systemd::NO_SUCH_UNIT => {}
        Err(e) => crate::log::warn(&format!("{unit}: {e}")),
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell() {
        let p = Pid::from_raw(1);
        assert_eq!(exit_code(WaitStatus::Exited(p, 3)), 3);
        assert_eq!(
            exit_code(WaitStatus::Signaled(p, Signal::SIGTERM, false)),
            143
        );
        assert_eq!(steam_scope_unit(42), "app-cgsplit-steam-42.scope");
    }
}
