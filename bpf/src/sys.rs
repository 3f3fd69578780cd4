//! The few system calls aya 0.14 does not expose: reading a pinned cgroup
//! link's target cgroup (aya's `LinkInfo` hides the `cgroup` member of
//! `bpf_link_info`, and `FdLink` gives no access to its fd), file-system
//! magic checks and mounting a bpffs.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::libc;

/// `BPF_FS_MAGIC` (include/uapi/linux/magic.h).
pub const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
/// `CGROUP2_SUPER_MAGIC` (include/uapi/linux/magic.h).
pub const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

const BPF_OBJ_GET: libc::c_long = 7;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

fn bpf(cmd: libc::c_long, attr: &mut [u64], size: usize) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a zero-initialised, 8-byte aligned buffer at least
    // `size` bytes long laid out as the kernel's `union bpf_attr` member for
    // `cmd`; the kernel reads/writes within `size` bytes only.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), size) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Opens a pinned BPF object (`BPF_OBJ_GET`).
pub fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // struct { __aligned_u64 pathname; __u32 bpf_fd; __u32 file_flags; }
    let mut attr = [0u64; 2];
    attr[0] = c.as_ptr() as u64;
    let fd = bpf(BPF_OBJ_GET, &mut attr, 16)?;
    // SAFETY: BPF_OBJ_GET returned a new file descriptor we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The cgroup id a cgroup bpf_link is attached to, from
/// `BPF_OBJ_GET_INFO_BY_FD`: `bpf_link_info.cgroup.cgroup_id`, which the
/// kernel reports as 0 once the cgroup was removed and the link auto-detached
/// (kernel/bpf/cgroup.c `bpf_cgroup_link_fill_link_info`).
pub fn cgroup_link_target(link: BorrowedFd<'_>) -> io::Result<u64> {
    // struct bpf_link_info { u32 type, id, prog_id; union (8-aligned, at 16)
    // { struct { u64 cgroup_id; u32 attach_type; } cgroup; ... } }
    let mut info = [0u64; 32];
    // struct { __u32 bpf_fd; __u32 info_len; __aligned_u64 info; }
    let mut attr = [0u64; 2];
    attr[0] = u64::from(link.as_raw_fd() as u32) | ((std::mem::size_of_val(&info) as u64) << 32);
    attr[1] = info.as_mut_ptr() as u64;
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr, 16)?;
    const BPF_LINK_TYPE_CGROUP: u64 = 3;
    if info[0] & 0xffff_ffff != BPF_LINK_TYPE_CGROUP {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "pinned object is not a cgroup bpf_link",
        ));
    }
    Ok(info[2])
}

/// `f_type` of the file system holding `path` (statfs(2)).
pub fn fs_magic(path: &Path) -> io::Result<i64> {
    let st = nix::sys::statfs::statfs(path).map_err(io::Error::from)?;
    Ok(st.filesystem_type().0 as i64)
}

/// `f_type` of the file system holding `fd` (fstatfs(2)).
pub fn fd_fs_magic(fd: BorrowedFd<'_>) -> io::Result<i64> {
    let st = nix::sys::statfs::fstatfs(fd).map_err(io::Error::from)?;
    Ok(st.filesystem_type().0 as i64)
}

/// Mounts a bpffs (mode 0700) on `dir` unless one is mounted there already.
/// Returns whether it mounted one.
pub fn mount_bpffs_if_absent(dir: &Path) -> io::Result<bool> {
    std::fs::create_dir_all(dir)?;
    if fs_magic(dir)? == BPF_FS_MAGIC {
        return Ok(false);
    }
    nix::mount::mount(
        Some("bpf"),
        dir,
        Some("bpf"),
        nix::mount::MsFlags::MS_NOSUID
            | nix::mount::MsFlags::MS_NODEV
            | nix::mount::MsFlags::MS_NOEXEC,
        Some("mode=0700"),
    )
    .map_err(io::Error::from)?;
    Ok(true)
}

/// Whether the cgroup directory `fd` still exists: a removed cgroup's
/// directory fd stays open but its files are gone (openat → ENOENT).
pub fn cgroup_alive(fd: BorrowedFd<'_>) -> io::Result<bool> {
    match nix::fcntl::openat(
        fd,
        "cgroup.procs",
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    ) {
        Ok(_fd) => Ok(true),
        Err(nix::errno::Errno::ENOENT) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// When `fd` is an O_PATH fd, the same directory reopened O_RDONLY |
/// O_DIRECTORY through `/proc/self/fd/N` (which reopens the inode the fd
/// holds, without a path walk); `None` for any other fd.
pub fn reopen_if_o_path(fd: BorrowedFd<'_>) -> io::Result<Option<OwnedFd>> {
    let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL).map_err(io::Error::from)?;
    if flags & libc::O_PATH == 0 {
        return Ok(None);
    }
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let f = nix::fcntl::open(
        path.as_str(),
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(io::Error::from)?;
    Ok(Some(f))
}

/// The capabilities [`crate::Filter`] needs that the effective set lacks
/// (`CapEff:` of /proc/self/status): CAP_BPF (39), CAP_NET_ADMIN (12),
/// CAP_PERFMON (38) (include/uapi/linux/capability.h).
pub fn missing_capabilities() -> io::Result<Vec<&'static str>> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no CapEff line"))?;
    Ok(
        [("CAP_BPF", 39), ("CAP_NET_ADMIN", 12), ("CAP_PERFMON", 38)]
            .into_iter()
            .filter(|(_, bit)| eff & (1u64 << bit) == 0)
            .map(|(name, _)| name)
            .collect(),
    )
}
