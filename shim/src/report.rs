//! Every line the shim prints about a problem, and the exit codes of exec
//! failures: pure, so the wording is tested without provoking each errno.
//!
//! Each message is one line starting `cgsplit-shim:`, so it stands out in
//! Steam's log among the game's own output.

use std::ffi::OsStr;
use std::fmt::Display;

use cgsplit_core::AppId;
use nix::errno::Errno;

use crate::join::JoinError;

/// Exit status when the command to exec does not exist (shell convention).
pub const EXIT_NOT_FOUND: i32 = 127;
/// Exit status when the command exists but cannot be executed (shell convention).
pub const EXIT_CANNOT_EXEC: i32 = 126;

/// `cgsplit-shim: <what>`, on one line: newlines (e.g. in a path) are shown as `\n`.
pub fn line(what: impl Display) -> String {
    format!("cgsplit-shim: {what}").replace('\n', "\\n")
}

/// A problem that keeps the game out of its scope; the game runs anyway (fail-open).
pub fn not_joined(why: impl Display) -> String {
    line(format_args!("{why}; running the game outside its scope"))
}

/// A problem that keeps the game from running at all (fail-closed):
/// `--network` was given and cannot be proven.
pub fn refused(why: impl Display) -> String {
    line(format_args!(
        "refusing to run the game: {why} (add --allow-network to run it without the guarantee)"
    ))
}

/// A fail-closed problem overridden by `--allow-network`.
pub fn allowed_anyway(why: impl Display) -> String {
    line(format_args!(
        "{why}; running the game anyway because of --allow-network"
    ))
}

/// Why joining failed, with what it means for a cgsplit user (`uid` of this
/// process; `app` when known, for the provisioning hint). No suffix: callers
/// add "running outside its scope" ([`not_joined`]) or refuse ([`refused`]).
pub fn join_error(e: &JoinError, uid: u32, app: Option<AppId>) -> String {
    match e {
        JoinError::Io { path, op, errno } => format!(
            "cannot join {} ({op} failed: {errno:?}, {}): {}",
            path.display(),
            errno.desc(),
            errno_meaning(*errno, uid, app),
        ),
        JoinError::NotCgroup2 { dir } => format!(
            "cannot join {}: not on a cgroup2 file system; --scope must name the scope's \
             directory under the cgroup2 mount (e.g. /sys/fs/cgroup/user.slice/user-{uid}.slice/\
             user@{uid}.service/games.slice/cgsplit-N.scope)",
            dir.display()
        ),
    }
}

/// The inner instance's context for a join failure: after Steam's wrapper
/// the game is not in `game/` — the wrapper moved it into a new scope or
/// container, or the outer shim could not join either (then its own line
/// came first).
pub fn moved_out(why: impl Display) -> String {
    format!("after Steam's wrapper the game is outside game/, and the re-inserted shim {why}")
}

/// [`join_error`] as a fail-open line.
#[cfg(test)]
pub fn join_failed(e: &JoinError, uid: u32, app: Option<AppId>) -> String {
    not_joined(join_error(e, uid, app))
}

/// What an errno from opening or writing `cgroup.procs` means here
/// (kernel/cgroup/cgroup.c, cgroup-v2.rst; SYSTEM.md §1).
pub fn errno_meaning(errno: Errno, uid: u32, app: Option<AppId>) -> String {
    let app = app.map_or_else(|| "N".to_owned(), |a| a.to_string());
    match errno {
        Errno::ENOENT => format!(
            "scope not provisioned (run `cgsplit provision --app {app}`) or not granted to the flatpak sandbox"
        ),
        Errno::EACCES => format!(
            "this process is not inside user@{uid}.service (e.g. Steam started from a tty's login session)"
        ),
        Errno::EROFS => "the cgroup file system is read-only here (a sandbox or container mounted it without write access)".into(),
        Errno::EPERM => "the kernel refused the move (the leaf is the root of this process's cgroup namespace, or a security module denied it)".into(),
        Errno::EBUSY => "the leaf has controllers enabled in cgroup.subtree_control, so it is not a leaf (no-internal-process rule)".into(),
        Errno::EOPNOTSUPP => "the leaf is a threaded or domain-invalid cgroup; a process cannot move in whole".into(),
        Errno::ENODEV => "the cgroup is being removed (its scope stopped)".into(),
        Errno::ENOTDIR => "a path component is not a directory: --scope must name the scope directory (the one holding game/)".into(),
        Errno::ESRCH => "the kernel could not find this process (pid namespace confusion)".into(),
        _ => "unexpected error".into(),
    }
}

/// Exit status for a failed exec of the game: 127 for `ENOENT`, else 126.
pub fn exec_exit_code(errno: Errno) -> i32 {
    if errno == Errno::ENOENT {
        EXIT_NOT_FOUND
    } else {
        EXIT_CANNOT_EXEC
    }
}

/// The line for a failed exec of `cmd`.
pub fn exec_failed(cmd: &OsStr, errno: Errno) -> String {
    let what = if errno == Errno::ENOENT {
        "not found"
    } else {
        "cannot be executed"
    };
    line(format_args!(
        "{}: {what} ({:?}, {})",
        cmd.to_string_lossy(),
        errno,
        errno.desc()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn err(errno: Errno) -> JoinError {
        JoinError::Io {
            path: PathBuf::from("/c/cgsplit-620.scope/game/cgroup.procs"),
            op: "open",
            errno,
        }
    }

    #[test]
    fn not_cgroup2_names_the_directory_and_the_fix() {
        let e = JoinError::NotCgroup2 {
            dir: PathBuf::from("/tmp/x"),
        };
        let m = join_failed(&e, 1000, None);
        assert!(
            m.starts_with("cgsplit-shim: cannot join /tmp/x: not on a cgroup2"),
            "{m}"
        );
        assert!(m.contains("user@1000.service/games.slice"), "{m}");
        assert!(m.ends_with("running the game outside its scope"), "{m}");
    }

    #[test]
    fn refusal_lines() {
        let m = refused("no filter");
        assert_eq!(
            m,
            "cgsplit-shim: refusing to run the game: no filter (add --allow-network to run it \
             without the guarantee)"
        );
        assert!(allowed_anyway("no filter").ends_with("because of --allow-network"));
    }

    #[test]
    fn enoent_names_path_errno_and_the_fix() {
        let m = join_failed(&err(Errno::ENOENT), 1000, AppId::new(620));
        assert_eq!(
            m,
            "cgsplit-shim: cannot join /c/cgsplit-620.scope/game/cgroup.procs (open failed: ENOENT, \
             No such file or directory): scope not provisioned (run `cgsplit provision --app 620`) \
             or not granted to the flatpak sandbox; running the game outside its scope"
        );
        let m = join_failed(&err(Errno::ENOENT), 1000, None);
        assert!(m.contains("--app N`"), "{m}");
    }

    #[test]
    fn eacces_names_the_user_manager() {
        let m = join_failed(&err(Errno::EACCES), 1000, None);
        assert!(m.contains("EACCES"), "{m}");
        assert!(m.contains("not inside user@1000.service"), "{m}");
    }

    #[test]
    fn every_errno_has_one_line() {
        for e in [
            Errno::ENOENT,
            Errno::EACCES,
            Errno::EROFS,
            Errno::EPERM,
            Errno::EBUSY,
            Errno::EOPNOTSUPP,
            Errno::ENODEV,
            Errno::ENOTDIR,
            Errno::ESRCH,
            Errno::EIO,
        ] {
            let m = join_failed(&err(e), 0, None);
            assert!(m.starts_with("cgsplit-shim: cannot join /c/"), "{m}");
            assert!(m.contains(&format!("{e:?}")), "{m}");
            assert!(!m.contains('\n'), "{m}");
        }
        assert!(errno_meaning(Errno::EBUSY, 0, None).contains("subtree_control"));
        assert!(errno_meaning(Errno::EROFS, 0, None).contains("read-only"));
    }

    #[test]
    fn newlines_are_escaped() {
        assert_eq!(line("a\nb"), "cgsplit-shim: a\\nb");
    }

    #[test]
    fn exec_failures() {
        assert_eq!(exec_exit_code(Errno::ENOENT), 127);
        assert_eq!(exec_exit_code(Errno::EACCES), 126);
        assert_eq!(exec_exit_code(Errno::ENOEXEC), 126);
        assert_eq!(
            exec_failed(OsStr::new("/no/game"), Errno::ENOENT),
            "cgsplit-shim: /no/game: not found (ENOENT, No such file or directory)"
        );
        assert!(
            exec_failed(OsStr::new("/etc/passwd"), Errno::EACCES)
                .contains("cannot be executed (EACCES")
        );
    }
}
