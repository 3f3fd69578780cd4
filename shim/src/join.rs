//! The shim's one cgroupfs effect: moving itself into a leaf.
//!
//! Writing `0` to a cgroup's `cgroup.procs` moves the writing process (kernel
//! `Documentation/admin-guide/cgroup-v2.rst`, "Processes"). `0` rather than
//! our pid because inside flatpak the shim is in its own pid namespace and the
//! kernel reads the number in the writer's namespace. The permission check
//! uses the credentials of open(), and also needs write access to the common
//! ancestor's `cgroup.procs` at write() (SYSTEM.md §1), so both steps can fail.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

/// The control file written to move a process.
pub const PROCS: &str = "cgroup.procs";

/// The move failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinError {
    /// The file written, e.g. `/sys/fs/cgroup/unified/…/cgsplit-620.scope/game/cgroup.procs`.
    pub path: PathBuf,
    /// Which step failed: `"open"` or `"write"`.
    pub op: &'static str,
    /// What the kernel said.
    pub errno: Errno,
}

/// Moves the calling process into the cgroup directory `leaf` by writing `0`
/// to `leaf/cgroup.procs`. Never creates anything: a missing leaf is `ENOENT`.
pub fn join(leaf: &Path) -> Result<(), JoinError> {
    let path = leaf.join(PROCS);
    let fail = |op, e: std::io::Error| JoinError {
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
