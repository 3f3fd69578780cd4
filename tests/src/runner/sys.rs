//! Small host helpers for the runner: users, recursive chown, cgroup trees,
//! spawning as another uid, waiting for one pid with a timeout.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{PermissionsExt as _, chown};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::{Gid, Pid, Uid};

use super::Error;

/// A passwd entry's ids and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Login name, e.g. `cgsplit-test`.
    pub name: String,
    /// uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
}

/// Finds an account in `/etc/passwd`-format `text` by name or uid.
pub fn find_account(text: &str, by: &dyn Fn(&Account) -> bool) -> Option<Account> {
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        let a = Account {
            name: (*f.first()?).to_owned(),
            uid: f.get(2)?.parse().ok()?,
            gid: f.get(3)?.parse().ok()?,
        };
        by(&a).then_some(a)
    })
}

fn passwd() -> String {
    fs::read_to_string("/etc/passwd").unwrap_or_default()
}

/// The account with `uid`, or a nameless stand-in (name = the number, gid = uid).
/// Reads `/etc/passwd` directly: no NSS.
pub fn account_of(uid: u32) -> Account {
    find_account(&passwd(), &|a| a.uid == uid).unwrap_or(Account {
        name: uid.to_string(),
        uid,
        gid: uid,
    })
}

/// The system user `name`, created with `useradd --system --no-create-home
/// --shell /usr/sbin/nologin` if it does not exist. Parallel runs may race to
/// create it: a failed useradd is retried while `/etc/passwd` is locked, and
/// accepted when the user then exists.
pub fn ensure_system_user(name: &str) -> Result<Account, Error> {
    let err = |detail: String| Error::User {
        user: name.to_owned(),
        detail,
    };
    for attempt in 0..50 {
        if let Some(a) = find_account(&passwd(), &|a| a.name == name) {
            return Ok(a);
        }
        let out = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ])
            .output()
            .map_err(|e| err(format!("cannot run useradd: {e}")))?;
        // 9: exists (another run won the race); 10: cannot lock /etc/passwd.
        match out.status.code() {
            Some(0 | 9) => continue,
            Some(10) if attempt < 49 => std::thread::sleep(Duration::from_millis(100)),
            _ => {
                return Err(err(format!(
                    "useradd failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
        }
    }
    Err(err("still missing after useradd".into()))
}

/// `chown -R uid:gid path` (does not follow symlinks).
pub fn chown_recursive(path: &Path, uid: u32, gid: u32) -> Result<(), Error> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(Error::io("chown", path))?;
    let meta = fs::symlink_metadata(path).map_err(Error::io("stat", path))?;
    if meta.is_dir() {
        for e in fs::read_dir(path).map_err(Error::io("list", path))? {
            let e = e.map_err(Error::io("list", path))?;
            chown_recursive(&e.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// `mkdir -p dir`, then `chown uid:gid` and `chmod mode` on `dir` itself.
pub fn mkdir_owned(dir: &Path, uid: u32, gid: u32, mode: u32) -> Result<(), Error> {
    fs::create_dir_all(dir).map_err(Error::io("create directory", dir))?;
    chown(dir, Some(uid), Some(gid)).map_err(Error::io("chown", dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode)).map_err(Error::io("chmod", dir))
}

/// Opens `<cgroup>/cgroup.procs` for writing (O_CLOEXEC). Cgroup migration
/// permissions are checked with the opener's credentials (kernel ≥ 5.16), so
/// a child that drops privileges can still write `0` to it in `pre_exec`.
pub fn open_procs(cgroup: &Path) -> Result<File, Error> {
    let p = cgroup.join("cgroup.procs");
    OpenOptions::new()
        .write(true)
        .open(&p)
        .map_err(Error::io("open", p))
}

/// A command that, in the child before exec, moves itself into the cgroup of
/// `procs` (by writing `0`) and then, if `ids` is given, drops to that uid/gid
/// with no supplementary groups (setgroups, setresgid, setresuid; in that order,
/// since setgroups needs root). Only async-signal-safe syscalls run in the child.
pub fn command_in(program: impl AsRef<OsStr>, procs: File, ids: Option<(u32, u32)>) -> Command {
    let mut cmd = Command::new(program);
    // SAFETY: the closure only makes raw syscalls (write, setgroups, setresgid,
    // setresuid) on data owned by the closure; no allocation or locking.
    unsafe {
        cmd.pre_exec(move || {
            nix::unistd::write(&procs, b"0")?;
            if let Some((uid, gid)) = ids {
                let (u, g) = (Uid::from_raw(uid), Gid::from_raw(gid));
                nix::unistd::setgroups(&[])?;
                nix::unistd::setresgid(g, g, g)?;
                nix::unistd::setresuid(u, u, u)?;
            }
            Ok(())
        });
    }
    cmd
}

/// Waits for `child` (by its pid) for at most `timeout`; `None` if it is still
/// running then. Polls every few ms; calls `between` each round (the inner
/// half reaps orphans there).
pub fn wait_timeout(
    child: &mut Child,
    timeout: Duration,
    mut between: impl FnMut(),
) -> Option<std::process::ExitStatus> {
    let end = Instant::now() + timeout;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        between();
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends `sig` to `child` by pid (ignoring "already gone").
pub fn signal(child: &Child, sig: Signal) {
    let _ = nix::sys::signal::kill(Pid::from_raw(child.id() as i32), sig);
}

/// Reaps exited children that are not in `keep` (orphans re-parented to us as
/// PID 1), without blocking and without touching the ones in `keep`: peeks with
/// `waitid(P_ALL, WNOHANG|WNOWAIT)` and then reaps that one pid.
pub fn reap_orphans(keep: &[u32]) {
    loop {
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        let Some(pid) = waitid(Id::All, flags).ok().and_then(|s| s.pid()) else {
            return;
        };
        if keep.contains(&(pid.as_raw() as u32)) {
            // A tracked child exited; its owner reaps it with try_wait.
            return;
        }
        let _ = waitpid(pid, Some(WaitPidFlag::WNOHANG));
    }
}

/// Every directory under `root` (inclusive), deepest first.
pub fn dirs_deepest_first(root: &Path) -> Vec<PathBuf> {
    fn walk(d: &Path, depth: usize, out: &mut Vec<(usize, PathBuf)>) {
        if let Ok(rd) = fs::read_dir(d) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&e.path(), depth + 1, out);
                }
            }
        }
        out.push((depth, d.to_path_buf()));
    }
    let mut out = Vec::new();
    walk(root, 0, &mut out);
    out.sort_by_key(|e| std::cmp::Reverse(e.0));
    out.into_iter().map(|(_, p)| p).collect()
}

/// Kills every process in the cgroup tree `root` (`cgroup.kill`, kernel ≥ 5.14)
/// and removes its directories deepest first, retrying for up to `patience`
/// (a cgroup reads as populated until its last task is fully gone).
pub fn remove_cgroup_tree(root: &Path, patience: Duration) -> Result<(), Error> {
    if !root.exists() {
        return Ok(());
    }
    let _ = fs::write(root.join("cgroup.kill"), "1");
    let end = Instant::now() + patience;
    loop {
        let mut last = None;
        for d in dirs_deepest_first(root) {
            if let Err(e) = fs::remove_dir(&d)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                last = Some((d, e));
            }
        }
        match last {
            None => return Ok(()),
            Some((d, e)) if Instant::now() >= end => {
                return Err(Error::Io {
                    op: "remove cgroup",
                    path: d,
                    source: e,
                });
            }
            Some(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Exit status of a [`WaitStatus`] as a shell reports it (128 + signal).
pub fn wait_status_code(s: WaitStatus) -> Option<i32> {
    match s {
        WaitStatus::Exited(_, c) => Some(c),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        cgsplit-test:x:996:995::/home/cgsplit-test:/usr/sbin/nologin\n\
        broken line\n";

    #[test]
    fn passwd_lookup() {
        let a = find_account(PASSWD, &|a| a.name == "cgsplit-test").unwrap();
        assert_eq!((a.uid, a.gid), (996, 995));
        assert_eq!(find_account(PASSWD, &|a| a.uid == 0).unwrap().name, "root");
        assert_eq!(find_account(PASSWD, &|a| a.uid == 5), None);
    }

    #[test]
    fn deepest_first_order() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("a/b/c")).unwrap();
        fs::create_dir_all(d.path().join("x")).unwrap();
        let v = dirs_deepest_first(d.path());
        assert_eq!(v.len(), 5);
        assert_eq!(v[0], d.path().join("a/b/c"));
        assert_eq!(v.last().unwrap(), d.path());
        let pos = |p: &str| v.iter().position(|q| *q == d.path().join(p)).unwrap();
        assert!(pos("a/b") < pos("a"));
    }
}
