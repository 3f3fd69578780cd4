//! Resolving a caller's cgroup path to an opened cgroup2 directory, safely,
//! and the `user.cgsplit.policy` xattr on it.
//!
//! The helper runs as root and a caller names the cgroup, so the name is
//! untrusted: it is checked lexically ([`CgroupPath::parse`]: absolute, no
//! `..`, no `.`, no empty parts), then opened with `openat2(2)` from an
//! `O_PATH` fd of the cgroup2 root with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS
//! | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV` (Linux 5.6), so no symlink, magic
//! link, mount crossing or escape is followed even if the tree changes between
//! the check and the open. Every later check (directory, cgroup2 magic,
//! owner) is made on the opened fd, never on the path again.

use std::fs;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use cgsplit_core::mountinfo;
use cgsplit_core::policy::POLICY_XATTR;
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::{Mode, SFlag, fstat};
use nix::sys::statfs::{CGROUP2_SUPER_MAGIC, fstatfs};

use crate::error::{Error, Result, not_beneath};

/// Longest cgroup path accepted (PATH_MAX).
pub const CGROUP_PATH_MAX: usize = 4096;

/// A cgroup path as `/proc/<pid>/cgroup` and systemd's `ControlGroup`
/// property spell it: absolute in the hierarchy, e.g.
/// `/user.slice/user-1000.slice/user@1000.service/games.slice/cgsplit-620.scope`;
/// `/` is the root. Parsed strictly: no `.`/`..`, no empty part (`//`), no
/// trailing `/`, no NUL, at most [`CGROUP_PATH_MAX`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CgroupPath(String);

impl CgroupPath {
    /// Checks `s` as described on the type; the error names the path and the
    /// rule it broke.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::InvalidArgs(format!(
                "cgroup path {s:?} {why}: give it as /proc/self/cgroup shows it, e.g. /user.slice/user-1000.slice/user@1000.service/games.slice/cgsplit-620.scope"
            ))
        };
        if s.len() > CGROUP_PATH_MAX {
            return Err(bad("is too long"));
        }
        if s.contains('\0') {
            return Err(bad("contains a NUL byte"));
        }
        let Some(rest) = s.strip_prefix('/') else {
            return Err(bad("is not absolute (it must start with /)"));
        };
        if rest.is_empty() {
            return Ok(Self("/".into()));
        }
        for part in rest.split('/') {
            match part {
                "" => return Err(bad("has an empty component (// or a trailing /)")),
                "." => return Err(bad("has a `.` component")),
                ".." => return Err(bad("has a `..` component")),
                _ => {}
            }
        }
        Ok(Self(s.to_owned()))
    }

    /// The path text, starting with `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the root of the hierarchy (`/`).
    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The path relative to the root, for `openat2`: `.` for the root.
    fn relative(&self) -> &str {
        match &self.0[1..] {
            "" => ".",
            rel => rel,
        }
    }

    /// Whether this path lies strictly beneath the directory `dir` (a cgroup
    /// path such as `/user.slice/user-1000.slice/user@1000.service`).
    pub fn is_beneath(&self, dir: &str) -> bool {
        let dir = dir.trim_end_matches('/');
        self.0
            .strip_prefix(dir)
            .is_some_and(|rest| rest.len() > 1 && rest.starts_with('/'))
    }

    /// This path and each of its ancestors, deepest first, ending with `/`.
    pub fn ancestors(&self) -> Vec<CgroupPath> {
        let mut out = vec![self.clone()];
        let mut cur = self.0.as_str();
        while cur != "/" {
            cur = match cur.rfind('/') {
                Some(0) | None => "/",
                Some(i) => &cur[..i],
            };
            out.push(Self(cur.to_owned()));
        }
        out
    }
}

impl std::fmt::Display for CgroupPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The cgroup2 hierarchy as the helper sees it: the mount, and the directory
/// that cgroup paths in requests are relative to (normally the same; a test
/// root with `--cgroup-root`).
#[derive(Debug)]
pub struct CgroupRoot {
    mount: OwnedFd,
    mount_point: PathBuf,
    root: OwnedFd,
    root_dir: PathBuf,
}

impl CgroupRoot {
    /// The cgroup2 mount this process sees (the last cgroup2 line of
    /// `/proc/self/mountinfo` whose root is `/`: `/sys/fs/cgroup` on pure
    /// v2 systems, `/sys/fs/cgroup/unified` on hybrid ones, or a namespace's
    /// own mount), used as the root of request paths.
    pub fn discover() -> Result<Self> {
        let mount_point = cgroup2_mount_point()?;
        let mount = open_dir_path(&mount_point)?;
        check_cgroup2(mount.as_fd(), &mount_point)?;
        let root = nix::unistd::dup(mount.as_fd())
            .map_err(|e| Error::io("duplicate the fd of", &mount_point, e))?;
        Ok(Self {
            mount,
            root_dir: mount_point.clone(),
            mount_point,
            root,
        })
    }

    /// Like [`CgroupRoot::discover`], but request paths are relative to `dir`,
    /// a cgroup directory beneath the mount (for tests: a throw-away
    /// `/sys/fs/cgroup/unified/cgsplit-netdtest-*` standing in for the whole
    /// hierarchy, as a cgroup namespace would).
    pub fn at(dir: &Path) -> Result<Self> {
        let mount_point = cgroup2_mount_point()?;
        let mount = open_dir_path(&mount_point)?;
        check_cgroup2(mount.as_fd(), &mount_point)?;
        let prefix = fs_path_to_cgroup(dir, &mount_point)?;
        let root = open_beneath(mount.as_fd(), &prefix, OFlag::O_PATH, &mount_point)?;
        check_cgroup2(root.as_fd(), dir)?;
        Ok(Self {
            mount,
            mount_point,
            root,
            root_dir: dir.to_path_buf(),
        })
    }

    /// The directory request paths are relative to.
    pub fn root_dir(&self) -> &Path {
        &self.root_dir
    }

    /// The cgroup path of a directory on disk beneath [`Self::root_dir`]
    /// (the CLI's `--cgroup DIR`); lexical, no symlink is followed.
    pub fn cgroup_of_dir(&self, dir: &Path) -> Result<CgroupPath> {
        fs_path_to_cgroup(dir, &self.root_dir)
    }

    /// Opens `path` (relative to the root) as described in the module docs
    /// and checks it is a cgroup2 directory. Errors: [`Error::NoSuchCgroup`],
    /// [`Error::AccessDenied`] for a symlink or mount crossing,
    /// [`Error::NotACgroup`].
    pub fn open(&self, path: &CgroupPath) -> Result<Cgroup> {
        let disk = cgsplit_core::scope::join_cgroup(&self.root_dir, path.as_str());
        let fd = open_beneath(
            self.root.as_fd(),
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            &self.root_dir,
        )?;
        check_cgroup2(fd.as_fd(), &disk)?;
        let st = fstat(fd.as_fd()).map_err(|e| Error::io("stat", &disk, e))?;
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFDIR {
            return Err(Error::NotACgroup(format!(
                "{} is not a directory",
                disk.display()
            )));
        }
        Ok(Cgroup {
            fd,
            path: path.clone(),
            disk,
            id: st.st_ino,
            owner: st.st_uid,
        })
    }

    /// The cgroup of process `pid` from `/proc/<pid>/cgroup` (its `0::`
    /// line), relative to the mount; `None` when the process is gone or
    /// its cgroup lies outside this process's cgroup namespace.
    pub fn cgroup_of_pid(&self, pid: u32) -> Option<CgroupPath> {
        let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let line = text.lines().find_map(|l| l.strip_prefix("0::"))?;
        CgroupPath::parse(line.trim_end_matches(" (deleted)")).ok()
    }

    /// Cgroup ids (inode numbers) of `path` (relative to the *mount*, as
    /// [`Self::cgroup_of_pid`] returns it) and of each of its ancestors.
    /// Programs attached to any of them apply to `path`. `None` when one of
    /// them cannot be opened (the caller then counts as unknown: fail closed).
    pub fn ancestor_ids(&self, path: &CgroupPath) -> Option<Vec<u64>> {
        path.ancestors()
            .iter()
            .map(|p| {
                let fd =
                    open_beneath(self.mount.as_fd(), p, OFlag::O_PATH, &self.mount_point).ok()?;
                fstat(fd.as_fd()).ok().map(|st| st.st_ino)
            })
            .collect()
    }
}

/// An opened cgroup2 directory, checked.
#[derive(Debug)]
pub struct Cgroup {
    fd: OwnedFd,
    path: CgroupPath,
    disk: PathBuf,
    id: u64,
    owner: u32,
}

impl Cgroup {
    /// The directory fd (`O_RDONLY | O_DIRECTORY`), for attaching programs.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The cgroup path relative to the root.
    pub fn path(&self) -> &CgroupPath {
        &self.path
    }

    /// Where it is on disk, for messages.
    pub fn disk(&self) -> &Path {
        &self.disk
    }

    /// The cgroup id: on cgroup2 the directory's inode number is the id BPF
    /// helpers such as `bpf_get_current_cgroup_id()` return (kernfs node id).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The uid owning the directory (systemd's delegation chowns a user's
    /// subtree to the user, systemd.resource-control(5) `Delegate=`).
    pub fn owner(&self) -> u32 {
        self.owner
    }

    /// Sets [`POLICY_XATTR`] to `value` (the policy's text form).
    pub fn set_policy_xattr(&self, value: &str) -> std::io::Result<()> {
        rustix::fs::fsetxattr(
            &self.fd,
            POLICY_XATTR,
            value.as_bytes(),
            rustix::fs::XattrFlags::empty(),
        )
        .map_err(std::io::Error::from)
    }

    /// Removes [`POLICY_XATTR`]; absent is fine.
    pub fn remove_policy_xattr(&self) -> std::io::Result<()> {
        match rustix::fs::fremovexattr(&self.fd, POLICY_XATTR) {
            Ok(()) | Err(rustix::io::Errno::NODATA) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The value of [`POLICY_XATTR`], `None` when absent.
    pub fn policy_xattr(&self) -> std::io::Result<Option<String>> {
        let mut buf = vec![0u8; 4096];
        match rustix::fs::fgetxattr(&self.fd, POLICY_XATTR, &mut buf) {
            Ok(n) => Ok(Some(String::from_utf8_lossy(&buf[..n]).into_owned())),
            Err(rustix::io::Errno::NODATA) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

fn resolve_flags() -> ResolveFlag {
    ResolveFlag::RESOLVE_BENEATH
        | ResolveFlag::RESOLVE_NO_SYMLINKS
        | ResolveFlag::RESOLVE_NO_MAGICLINKS
        | ResolveFlag::RESOLVE_NO_XDEV
}

fn open_beneath(
    dir: BorrowedFd<'_>,
    path: &CgroupPath,
    flags: OFlag,
    base: &Path,
) -> Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(resolve_flags());
    let disk = cgsplit_core::scope::join_cgroup(base, path.as_str());
    openat2(dir, path.relative(), how).map_err(|e| match e {
        Errno::ENOENT => Error::NoSuchCgroup(format!(
            "no cgroup {path} (looked for {}); is the game's scope running?",
            disk.display()
        )),
        Errno::ELOOP => Error::AccessDenied(format!(
            "cgroup path {path} goes through a symlink ({}); the helper never follows symlinks",
            disk.display()
        )),
        Errno::EXDEV => Error::AccessDenied(format!(
            "cgroup path {path} leaves the cgroup2 tree at {} (a mount point on the way)",
            base.display()
        )),
        Errno::ENOTDIR => Error::NotACgroup(format!(
            "{} is not a cgroup directory (not a directory)",
            disk.display()
        )),
        Errno::ENOSYS => Error::Failed(
            "the kernel has no openat2(2) (Linux 5.6+ is needed for safe path resolution)".into(),
        ),
        e => Error::io("open", &disk, e),
    })
}

fn open_dir_path(path: &Path) -> Result<OwnedFd> {
    nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open the cgroup2 mount", path, e))
}

fn check_cgroup2(fd: BorrowedFd<'_>, disk: &Path) -> Result<()> {
    let fs = fstatfs(fd).map_err(|e| Error::io("statfs", disk, e))?;
    if fs.filesystem_type() != CGROUP2_SUPER_MAGIC {
        return Err(Error::NotACgroup(format!(
            "{} is not on a cgroup2 file system (statfs magic {:#x}); give a cgroup v2 directory",
            disk.display(),
            fs.filesystem_type().0
        )));
    }
    Ok(())
}

fn cgroup2_mount_point() -> Result<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::io("read", Path::new("/proc/self/mountinfo"), e))?;
    mountinfo::cgroup2_mounts(&text)
        .into_iter()
        .rev()
        .find(|m| m.root == "/")
        .map(|m| m.mount_point)
        .ok_or_else(|| {
            Error::Failed(
                "no cgroup2 file system is mounted (looked for a cgroup2 line with root / in /proc/self/mountinfo)".into(),
            )
        })
}

/// Lexically turns `dir` (absolute, or relative to the working directory)
/// into a cgroup path below `base`; `..` is refused, `.` dropped.
fn fs_path_to_cgroup(dir: &Path, base: &Path) -> Result<CgroupPath> {
    let abs = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Error::io("find the working directory for", dir, e))?
            .join(dir)
    };
    let rel = abs.strip_prefix(base).map_err(|_| not_beneath(dir, base))?;
    let mut out = String::new();
    for c in rel.components() {
        match c {
            Component::Normal(p) => {
                out.push('/');
                out.push_str(p.to_str().ok_or_else(|| {
                    Error::InvalidArgs(format!("{} is not valid UTF-8", dir.display()))
                })?);
            }
            Component::CurDir => {}
            _ => {
                return Err(Error::InvalidArgs(format!(
                    "{} has a `..` component; give the cgroup directory directly",
                    dir.display()
                )));
            }
        }
    }
    CgroupPath::parse(if out.is_empty() { "/" } else { &out })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_paths_are_parsed_strictly() {
        for ok in ["/", "/a", "/user.slice/user-1.slice/x.scope", "/a/..b/c.."] {
            assert_eq!(CgroupPath::parse(ok).unwrap().as_str(), ok);
        }
        for (bad, why) in [
            ("", "not absolute"),
            ("a/b", "not absolute"),
            ("/a/../b", "`..`"),
            ("/..", "`..`"),
            ("/a/./b", "`.`"),
            ("//a", "empty component"),
            ("/a/", "empty component"),
            ("/a\0b", "NUL"),
        ] {
            let err = CgroupPath::parse(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        let long = format!("/{}", "a".repeat(CGROUP_PATH_MAX));
        assert!(CgroupPath::parse(&long).is_err());
    }

    #[test]
    fn beneath_means_strictly_inside() {
        let p = CgroupPath::parse("/user.slice/user-5.slice/user@5.service/games.slice").unwrap();
        assert!(p.is_beneath("/user.slice/user-5.slice/user@5.service"));
        assert!(p.is_beneath("/user.slice/user-5.slice/user@5.service/"));
        assert!(!p.is_beneath("/user.slice/user-5.slice/user@5.service/games.slice"));
        assert!(!p.is_beneath("/user.slice/user-5.slice/user@5.serv"));
        let q = CgroupPath::parse("/user.slice/user-5.slice/user@5.service2/x").unwrap();
        assert!(!q.is_beneath("/user.slice/user-5.slice/user@5.service"));
    }

    #[test]
    fn ancestors_end_at_the_root() {
        let p = CgroupPath::parse("/a/b/c").unwrap();
        let a: Vec<String> = p.ancestors().iter().map(|p| p.to_string()).collect();
        assert_eq!(a, ["/a/b/c", "/a/b", "/a", "/"]);
        assert_eq!(CgroupPath::parse("/").unwrap().ancestors().len(), 1);
    }

    // The resolution flags themselves, on an ordinary directory (cgroupfs
    // has no symlinks; the D-Bus tests reach one only through a mount).
    #[test]
    fn openat2_refuses_symlinks_dotdot_and_mount_crossings() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("a/b")).unwrap();
        std::os::unix::fs::symlink(t.path().join("a/b"), t.path().join("a/link")).unwrap();
        std::os::unix::fs::symlink("b", t.path().join("a/rel")).unwrap();
        let root = open_dir_path(t.path()).unwrap();
        let open = |p: &str| {
            open_beneath(
                root.as_fd(),
                &CgroupPath(p.into()),
                OFlag::O_RDONLY,
                t.path(),
            )
        };
        open("/a/b").unwrap();
        for link in ["/a/link", "/a/rel", "/a/link/"] {
            let err = open(link).unwrap_err();
            assert!(matches!(err, Error::AccessDenied(_)), "{link}: {err:?}");
            assert!(
                err.message().contains("symlink"),
                "{link}: {}",
                err.message()
            );
        }
        // `..` never gets past CgroupPath::parse; beneath the root it is
        // refused by the kernel too.
        let err = open("/a/../..").unwrap_err();
        assert!(
            err.message().contains("leaves the cgroup2 tree"),
            "{}",
            err.message()
        );
        assert!(matches!(open("/nope").unwrap_err(), Error::NoSuchCgroup(_)));
        fs::write(t.path().join("a/file"), "").unwrap();
        assert!(matches!(open("/a/file").unwrap_err(), Error::NotACgroup(_)));
        // /proc is another mount: crossing into it is refused.
        let slash = open_dir_path(Path::new("/")).unwrap();
        let err = open_beneath(
            slash.as_fd(),
            &CgroupPath("/proc/self".into()),
            OFlag::O_RDONLY,
            Path::new("/"),
        )
        .unwrap_err();
        assert!(
            err.message().contains("leaves the cgroup2 tree"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn a_plain_directory_is_not_a_cgroup() {
        let t = tempfile::tempdir().unwrap();
        let fd = open_dir_path(t.path()).unwrap();
        let err = check_cgroup2(fd.as_fd(), t.path()).unwrap_err();
        assert!(matches!(err, Error::NotACgroup(_)), "{err:?}");
        assert!(
            err.message().contains("not on a cgroup2 file system"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn dirs_on_disk_map_to_cgroup_paths() {
        let base = Path::new("/sys/fs/cgroup/unified");
        let p = fs_path_to_cgroup(Path::new("/sys/fs/cgroup/unified/a/./b"), base).unwrap();
        assert_eq!(p.as_str(), "/a/b");
        assert!(
            fs_path_to_cgroup(Path::new("/sys/fs/cgroup/unified"), base)
                .unwrap()
                .is_root()
        );
        let err = fs_path_to_cgroup(Path::new("/sys/fs/cgroup/unified/a/../b"), base).unwrap_err();
        assert!(err.to_string().contains("`..`"), "{err}");
        let err = fs_path_to_cgroup(Path::new("/tmp/x"), base).unwrap_err();
        assert!(err.to_string().contains("not beneath"), "{err}");
    }
}
