//! The shim's cgroupfs effects: moving itself into a leaf, reading the
//! leaf's `cgroup.events` and the scope's policy xattr.
//!
//! Writing `0` to a cgroup's `cgroup.procs` moves the writing process (kernel
//! `Documentation/admin-guide/cgroup-v2.rst`, "Processes"). `0` rather than
//! our pid because inside flatpak the shim is in its own pid namespace and the
//! kernel reads the number in the writer's namespace. The permission check
//! uses the credentials of open(), and also needs write access to the common
//! ancestor's `cgroup.procs` at write() (SYSTEM.md §1), so both steps can fail.

use std::ffi::CString;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::statfs::{CGROUP2_SUPER_MAGIC, statfs};

/// The control file written to move a process.
pub const PROCS: &str = "cgroup.procs";
/// The control file telling whether a cgroup subtree has processes
/// (`populated 0|1`, cgroup-v2.rst "Core Interface Files"); it is modified
/// (inotify `IN_MODIFY`) when the value changes.
pub const EVENTS: &str = "cgroup.events";

/// The move failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinError {
    /// A system call on `cgroup.procs` failed.
    Io {
        /// The file written, e.g. `/sys/fs/cgroup/unified/…/cgsplit-620.scope/game/cgroup.procs`.
        path: PathBuf,
        /// Which step failed: `"open"` or `"write"`.
        op: &'static str,
        /// What the kernel said.
        errno: Errno,
    },
    /// The directory exists but is not on a cgroup2 file system (e.g. a
    /// `--scope` under `/tmp`, or a cgroup v1 hierarchy).
    NotCgroup2 {
        /// The directory checked (the scope, or the leaf itself).
        dir: PathBuf,
    },
}

/// Moves the calling process into the cgroup directory `leaf` by writing `0`
/// to `leaf/cgroup.procs`. Never creates anything: a missing leaf is `ENOENT`.
///
/// When the leaf's parent (the scope) exists, it must be on cgroup2
/// (`statfs` magic `CGROUP2_SUPER_MAGIC`): a plain directory with a file
/// named `cgroup.procs` in it is refused rather than written to.
pub fn join(leaf: &Path) -> Result<(), JoinError> {
    let dir = leaf.parent().unwrap_or(leaf);
    if let Ok(fs) = statfs(dir)
        && fs.filesystem_type() != CGROUP2_SUPER_MAGIC
    {
        return Err(JoinError::NotCgroup2 {
            dir: dir.to_owned(),
        });
    }
    let path = leaf.join(PROCS);
    let fail = |op, e: std::io::Error| JoinError::Io {
        path: path.clone(),
        op,
        errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
    };
    let mut file = OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| fail("open", e))?;
    file.write_all(b"0").map_err(|e| fail("write", e))
}

/// Whether the calling process already is in the cgroup `leaf`: its pid is
/// listed in `leaf/cgroup.procs`. The kernel shows the pids there in the
/// reader's pid namespace (cgroup-v2.rst, "cgroup.procs"), so this holds in
/// a container with a pid namespace of its own too, and it needs only read
/// access: it works where `/sys` is mounted read-only (pressure-vessel).
/// A `leaf` that is not on cgroup2 (a plain directory given with `--scope`)
/// holds nobody.
pub fn is_member(leaf: &Path) -> std::io::Result<bool> {
    if statfs(leaf)?.filesystem_type() != CGROUP2_SUPER_MAGIC {
        return Ok(false);
    }
    let me = std::process::id().to_string();
    let text = std::fs::read_to_string(leaf.join(PROCS))?;
    Ok(text.lines().any(|l| l.trim() == me))
}

/// This process's cgroup v2 path from `/proc/self/cgroup` (the `0::` line,
/// relative to its cgroup namespace's root, cgroups(7)), e.g.
/// `/user.slice/…/games.slice/cgsplit-620.scope/game`.
pub fn own_cgroup() -> std::io::Result<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup")?;
    parse_own_cgroup(&text).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "/proc/self/cgroup has no cgroup v2 (`0::`) line",
        )
    })
}

/// The path of the `0::` line of a `/proc/<pid>/cgroup` text.
pub fn parse_own_cgroup(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_owned)
}

/// Whether the cgroup `dir` has processes in its subtree: the `populated`
/// key of its `cgroup.events`. A missing cgroup has none (`Ok(false)`).
pub fn populated(dir: &Path) -> std::io::Result<bool> {
    match std::fs::read_to_string(dir.join(EVENTS)) {
        Ok(text) => Ok(parse_populated(&text).unwrap_or(true)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The `populated` value of a `cgroup.events` text (`populated 1\nfrozen 0\n`).
pub fn parse_populated(events: &str) -> Option<bool> {
    events.lines().find_map(|l| match l.split_once(' ') {
        Some(("populated", v)) => Some(v.trim() != "0"),
        _ => None,
    })
}

/// The value of the extended attribute `name` on `path`: `Ok(None)` when it
/// is not set (`ENODATA`). cgroupfs holds `user.*` xattrs since Linux 5.7.
pub fn xattr(path: &Path, name: &str) -> Result<Option<Vec<u8>>, Errno> {
    let cpath = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let cname = CString::new(name).map_err(|_| Errno::EINVAL)?;
    // Policy texts are short; 4 KiB is the size limit of one xattr value on most file systems.
    let mut buf = vec![0u8; 4096];
    // std and nix have no getxattr; this is the one libc call for it.
    // SAFETY: both strings are NUL-terminated and live across the call; the
    // buffer pointer and length describe `buf`, which the kernel writes at most `len` bytes into.
    let n = unsafe {
        nix::libc::getxattr(
            cpath.as_ptr(),
            cname.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return match Errno::last() {
            Errno::ENODATA => Ok(None),
            e => Err(e),
        };
    }
    buf.truncate(n as usize);
    Ok(Some(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cgroup_line() {
        let hybrid = "1:cpu:/\n0::/user.slice/a b/game\n";
        assert_eq!(
            parse_own_cgroup(hybrid).as_deref(),
            Some("/user.slice/a b/game")
        );
        assert_eq!(parse_own_cgroup("1:name=systemd:/\n"), None);
        assert!(own_cgroup().is_ok_and(|c| c.starts_with('/')));
    }

    #[test]
    fn populated_key() {
        assert_eq!(parse_populated("populated 1\nfrozen 0\n"), Some(true));
        assert_eq!(parse_populated("populated 0\nfrozen 0\n"), Some(false));
        assert_eq!(parse_populated("frozen 0\n"), None);
        assert_eq!(parse_populated(""), None);
    }

    #[test]
    fn a_plain_directory_is_not_a_cgroup() {
        let dir = tempfile::tempdir().unwrap();
        let leaf = dir.path().join("game");
        std::fs::create_dir(&leaf).unwrap();
        std::fs::write(leaf.join(PROCS), "").unwrap();
        assert_eq!(
            join(&leaf),
            Err(JoinError::NotCgroup2 {
                dir: dir.path().to_owned()
            })
        );
        // Nothing was written.
        assert_eq!(std::fs::read(leaf.join(PROCS)).unwrap(), b"");
    }

    #[test]
    fn a_plain_file_listing_our_pid_is_no_membership() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(PROCS), format!("{}\n", std::process::id())).unwrap();
        assert!(!is_member(dir.path()).unwrap());
        assert!(is_member(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn missing_xattr_is_none() {
        let dir = tempfile::tempdir().unwrap();
        match xattr(dir.path(), "user.cgsplit.policy") {
            Ok(None) => {}
            // tmpfs without user xattrs on old kernels
            Err(Errno::EOPNOTSUPP) => {}
            other => panic!("{other:?}"),
        }
    }
}
