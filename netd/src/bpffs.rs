//! The BPF file system the filter's links and maps are pinned in, and the
//! capabilities the helper needs.
//!
//! systemd mounts a bpffs at `/sys/fs/bpf` at boot; machines whose PID 1 is
//! not systemd have none, so the helper mounts one there itself. Pins live in
//! `<bpffs>/cgsplit`, so filters and counters outlive a helper restart
//! (not a reboot). Tests pass their own `--bpffs` inside a private mount
//! namespace and never touch the host's.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Where the BPF file system is mounted by default.
pub const DEFAULT_BPFFS: &str = "/sys/fs/bpf";
/// The directory below the bpffs that holds cgsplit's pins.
pub const PIN_DIR: &str = "cgsplit";

/// Makes sure `dir` is a bpffs (mounting one there, `mode=0700`, when it is
/// not; `cgsplit_bpf::sys::mount_bpffs_if_absent`) and returns the pin root
/// `<dir>/cgsplit`.
pub fn ensure_bpffs(dir: &Path) -> Result<PathBuf> {
    cgsplit_bpf::sys::mount_bpffs_if_absent(dir).map_err(|e| {
        Error::Failed(format!(
            "{} is not a BPF file system and mounting one there failed: {e} (needs CAP_SYS_ADMIN; or mount it yourself: mount -t bpf bpf {})",
            dir.display(),
            dir.display()
        ))
    })?;
    // Filter::load creates it (mode 0700) and checks it is on the bpffs.
    Ok(dir.join(PIN_DIR))
}

/// Capability numbers (linux/capability.h).
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Which of the capabilities loading and attaching the filter needs this
/// process lacks in its effective set (`CapEff` in `/proc/self/status`,
/// proc(5)). Measured on Linux 6.18 with `setpriv --bounding-set`:
///
/// - CAP_BPF: `BPF_PROG_LOAD`/`BPF_MAP_CREATE`;
/// - CAP_NET_ADMIN: attaching cgroup_skb and cgroup sock_addr programs;
/// - CAP_PERFMON: the verifier refuses `bpf_get_current_comm` in the
///   sock_addr programs without it ("program of this type cannot use
///   helper"); the refusal events record the process's comm.
///
/// CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON (kernels before 5.8
/// know only it). Not checked here: CAP_DAC_OVERRIDE, needed to set the
/// policy xattr on a directory a user owns; without it the attach is undone
/// and the error says so.
pub fn missing_caps() -> Vec<&'static str> {
    let eff = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0);
    let has = |c: u32| eff & (1u64 << c) != 0;
    let mut out = Vec::new();
    if !has(CAP_BPF) && !has(CAP_SYS_ADMIN) {
        out.push("CAP_BPF");
    }
    if !has(CAP_NET_ADMIN) {
        out.push("CAP_NET_ADMIN");
    }
    if !has(CAP_PERFMON) && !has(CAP_SYS_ADMIN) {
        out.push("CAP_PERFMON");
    }
    out
}

/// [`missing_caps`] as one error, or `Ok`.
pub fn check_caps() -> Result<()> {
    let missing = missing_caps();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::Failed(format!(
        "lacks {} (BPF not permitted): run it as root, or from cgsplit-netd.service whose CapabilityBoundingSet grants them",
        missing.join(", ")
    )))
}
