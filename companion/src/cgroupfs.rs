//! The only place the companion touches cgroupfs: creating the `keeper/` and
//! `game/` leaves of a delegated scope and moving pids into them.
//!
//! Every function takes the scope's directory on disk (found from
//! `/proc/self/mountinfo` with [`cgsplit_core::mountinfo::cgroup_dir`]), so the
//! tests point it at a temporary directory with fake control files.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use cgsplit_core::scope::{GAME_LEAF, KEEPER_LEAF};

/// A failed cgroupfs operation: what was attempted, on which path, and the OS error.
#[derive(Debug, thiserror::Error)]
#[error("cannot {op} {path}: {source}")]
pub struct CgroupfsError {
    /// What was attempted, e.g. `create cgroup` or `move pid 4242 into`.
    pub op: String,
    /// The directory or control file, e.g. `…/cgsplit-620.scope/keeper/cgroup.procs`.
    pub path: PathBuf,
    /// The OS error (EACCES: not delegated to us; ESRCH: the pid is gone;
    /// EBUSY: the no-internal-process rule, kernel cgroup-v2.rst).
    pub source: io::Error,
}

/// The two leaves of a provisioned scope, as directories on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaves {
    /// `<scope dir>/keeper`.
    pub keeper: PathBuf,
    /// `<scope dir>/game`.
    pub game: PathBuf,
}

/// Makes `scope_dir` follow the layout of [`cgsplit_core::scope`]: creates
/// `keeper/`, moves `keeper_pid` (if given) and every other pid still in the
/// scope root into it, then creates `game/`.
///
/// Order matters: under cgroup v2's no-internal-process rule the root of a
/// delegated scope must be empty before its children get processes, so the
/// root is emptied before `game/` exists. Existing leaves are kept, so this is
/// idempotent. Fails with the path on any mkdir, read or write error.
pub fn ensure_layout(scope_dir: &Path, keeper_pid: Option<u32>) -> Result<Leaves, CgroupfsError> {
    let leaves = ensure_keeper(scope_dir, keeper_pid)?;
    mkdir_leaf(&leaves.game)?;
    Ok(leaves)
}

/// The first half of [`ensure_layout`]: creates `keeper/` and empties the
/// scope root into it, but does not create `game/` (the caller does, once a
/// network policy is in place). Returns both leaves' paths.
pub fn ensure_keeper(scope_dir: &Path, keeper_pid: Option<u32>) -> Result<Leaves, CgroupfsError> {
    let keeper = scope_dir.join(KEEPER_LEAF);
    let game = scope_dir.join(GAME_LEAF);
    mkdir_leaf(&keeper)?;
    let mut pids = read_procs(scope_dir)?;
    if let Some(pid) = keeper_pid
        && !pids.contains(&pid)
    {
        pids.insert(0, pid);
    }
    for pid in pids {
        move_pid(&keeper, pid)?;
    }
    Ok(Leaves { keeper, game })
}

/// Creates the cgroup directory `dir`; an existing one is fine.
pub fn mkdir_leaf(dir: &Path) -> Result<(), CgroupfsError> {
    match fs::create_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(CgroupfsError {
            op: "create cgroup".into(),
            path: dir.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// The pids in `<dir>/cgroup.procs`, in file order (one decimal pid a line).
pub fn read_procs(dir: &Path) -> Result<Vec<u32>, CgroupfsError> {
    let path = dir.join("cgroup.procs");
    let text = fs::read_to_string(&path).map_err(|source| CgroupfsError {
        op: "read".into(),
        path: path.clone(),
        source,
    })?;
    Ok(parse_procs(&text))
}

/// Parses `cgroup.procs` text; lines that are not a pid are skipped.
pub fn parse_procs(text: &str) -> Vec<u32> {
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// Moves process `pid` into cgroup `dir` by writing it to `<dir>/cgroup.procs`
/// (one pid per write(2), kernel cgroup-v2.rst "Processes").
pub fn move_pid(dir: &Path, pid: u32) -> Result<(), CgroupfsError> {
    let path = dir.join("cgroup.procs");
    let err = |source| CgroupfsError {
        op: format!("move pid {pid} into"),
        path: path.clone(),
        source,
    };
    let mut f = OpenOptions::new().write(true).open(&path).map_err(err)?;
    f.write_all(pid.to_string().as_bytes()).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_scope(root_procs: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("cgroup.procs"), root_procs).unwrap();
        d
    }

    #[test]
    fn parse_procs_skips_junk() {
        assert_eq!(parse_procs("12\n345\n\nx\n 7 \n"), vec![12, 345, 7]);
        assert!(parse_procs("").is_empty());
    }

    #[test]
    fn layout_creates_both_leaves_and_moves_the_keeper() {
        let d = fake_scope("");
        // A real cgroupfs creates cgroup.procs with the directory; fake it by
        // letting the first write create the file.
        fs::create_dir(d.path().join("keeper")).unwrap();
        fs::write(d.path().join("keeper/cgroup.procs"), "").unwrap();
        let leaves = ensure_layout(d.path(), Some(4242)).unwrap();
        assert_eq!(leaves.keeper, d.path().join("keeper"));
        assert_eq!(leaves.game, d.path().join("game"));
        assert!(leaves.game.is_dir());
        assert_eq!(
            fs::read_to_string(d.path().join("keeper/cgroup.procs")).unwrap(),
            "4242"
        );
    }

    #[test]
    fn layout_is_idempotent() {
        let d = fake_scope("");
        fs::create_dir(d.path().join("keeper")).unwrap();
        fs::write(d.path().join("keeper/cgroup.procs"), "").unwrap();
        ensure_layout(d.path(), None).unwrap();
        ensure_layout(d.path(), None).unwrap();
        assert!(d.path().join("game").is_dir());
        // Nothing was in the root, so nothing was written.
        assert_eq!(
            fs::read_to_string(d.path().join("keeper/cgroup.procs")).unwrap(),
            ""
        );
    }

    #[test]
    fn errors_name_the_path() {
        let d = fake_scope("");
        // No keeper/cgroup.procs in a plain directory: the move fails, naming it.
        let err = ensure_layout(d.path(), Some(1)).unwrap_err();
        let want = d.path().join("keeper/cgroup.procs");
        assert_eq!(err.path, want);
        assert!(err.to_string().contains(&*want.to_string_lossy()), "{err}");
        assert!(err.to_string().contains("move pid 1"), "{err}");
        // game/ is not created when the root could not be emptied.
        assert!(!d.path().join("game").exists());
    }

    #[test]
    fn missing_scope_dir_is_reported() {
        let err = read_procs(Path::new("/nonexistent/cgsplit")).unwrap_err();
        assert_eq!(err.path, Path::new("/nonexistent/cgsplit/cgroup.procs"));
        assert_eq!(err.source.kind(), io::ErrorKind::NotFound);
    }
}
