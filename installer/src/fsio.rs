//! The only module that writes files.
//!
//! - [`write_atomic`]: temp file in the target's directory, same mode (and
//!   owner), write, fsync, rename over the target, fsync the directory. A
//!   symlinked path is followed so the link stays and its target is replaced
//!   (cargo `paths::write_atomic`; `~/.steam/steam` is often a symlink).
//! - [`replace_checked`]: re-reads the file first and refuses if it changed
//!   since it was read for planning; keeps `<file>.cgsplit-bak` (a hard link
//!   to the old inode, made before the rename, so no copy of a 10 MB file),
//!   rotated to `.cgsplit-bak.1` and `.cgsplit-bak.2`.
//! - [`crash_point`]: the test hook `CGSPLIT_INSTALL_CRASH_AT=<point>`: at
//!   that point the process stops itself (`SIGSTOP`) so a test can kill it
//!   with `SIGKILL` there. Points: `tool-written`, `state-written`,
//!   `temp-half-written`, `temp-written`, `temp-synced`, `backup-linked`,
//!   `renamed`. Unset in normal use; it only ever stops, never writes.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{Error, IoContext, Result};

/// Reads a whole file.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).ctx("read", path)
}

/// Reads a whole file; `None` if it does not exist.
pub fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).ctx("read", path),
    }
}

/// Creates `dir` and its parents; new directories get `mode`.
pub fn create_dir_all(dir: &Path, mode: u32) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .ctx("create directory", dir)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx("fsync directory", dir)
}

/// The file a path finally names: symlinks followed, the file itself need
/// not exist (its directory must).
fn resolve(path: &Path) -> Result<PathBuf> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => fs::canonicalize(path).ctx("resolve symlink", path),
        _ => Ok(path.to_path_buf()),
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Environment variable of the crash-injection test hook (see the module doc).
pub const CRASH_ENV: &str = "CGSPLIT_INSTALL_CRASH_AT";

/// The test hook: when `$CGSPLIT_INSTALL_CRASH_AT` equals `point`, say so on
/// stderr and stop this process with `SIGSTOP` (the test then `SIGKILL`s it,
/// which is `kill -9` at exactly this point). Does nothing otherwise.
pub fn crash_point(point: &str) {
    if std::env::var_os(CRASH_ENV).is_some_and(|v| v == point) {
        eprintln!("cgsplit-install: test hook: stopping at crash point {point}");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGSTOP);
    }
}

/// Suffix of the backup kept next to a rewritten Steam file.
pub const BACKUP_SUFFIX: &str = ".cgsplit-bak";
/// How many backups are kept: `.cgsplit-bak`, `.cgsplit-bak.1`, `.cgsplit-bak.2`.
pub const BACKUPS_KEPT: usize = 3;

/// `<file>.cgsplit-bak` (`n` = 0) or `<file>.cgsplit-bak.<n>`.
pub fn backup_path(file: &Path, n: usize) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(BACKUP_SUFFIX);
    if n > 0 {
        name.push(format!(".{n}"));
    }
    PathBuf::from(name)
}

/// Removes temp files a killed run left for `target` (`.<name>.cgsplit-<pid>-<n>.tmp`
/// whose pid is not running).
fn remove_stale_temps(dir: &Path, name: &str) {
    let prefix = format!(".{name}.cgsplit-");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let f = e.file_name();
        let Some(f) = f.to_str() else { continue };
        let Some(rest) = f.strip_prefix(&prefix).and_then(|r| r.strip_suffix(".tmp")) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        let alive = pid == std::process::id() as i32
            || nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        if !alive {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Atomically replaces (or creates) `path` with `bytes`. An existing file
/// keeps its permission bits and owner; a new one gets `new_mode`.
/// Returns the path actually written (the symlink target if `path` is one).
///
/// Errors: [`Error::Io`] naming the step and file; the temp file is removed.
pub fn write_atomic(path: &Path, bytes: &[u8], new_mode: u32) -> Result<PathBuf> {
    write_atomic_inner(path, bytes, new_mode, false, false)
}

/// Like [`write_atomic`], but the result always gets `mode` (for files
/// cgsplit owns, such as the shim copy, mode 0755).
pub fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<PathBuf> {
    write_atomic_inner(path, bytes, mode, true, false)
}

/// Rotates the backups of `target` and hard-links the current file as
/// `<target>.cgsplit-bak` (a copy where the file system has no hard links).
fn link_backup(target: &Path, dir: &Path) -> Result<()> {
    for n in (1..BACKUPS_KEPT).rev() {
        let from = backup_path(target, n - 1);
        if fs::symlink_metadata(&from).is_ok() {
            fs::rename(&from, backup_path(target, n)).ctx("rotate backup", &from)?;
        }
    }
    let bak = backup_path(target, 0);
    if let Err(e) = fs::hard_link(target, &bak) {
        if e.kind() == std::io::ErrorKind::NotFound {
            return Ok(());
        }
        fs::copy(target, &bak).ctx("back up (copy)", &bak)?;
        File::open(&bak)
            .and_then(|f| f.sync_all())
            .ctx("fsync", &bak)?;
    }
    sync_dir(dir)
}

fn write_atomic_inner(
    path: &Path,
    bytes: &[u8],
    new_mode: u32,
    force: bool,
    backup: bool,
) -> Result<PathBuf> {
    let target = resolve(path)?;
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let name = target
        .file_name()
        .ok_or_else(|| Error::NonUtf8Path(target.clone()))?
        .to_string_lossy()
        .into_owned();
    let old = match fs::metadata(&target) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).ctx("stat", &target),
    };
    let mode = match &old {
        Some(m) if !force => m.permissions().mode() & 0o7777,
        _ => new_mode,
    };
    let tmp = dir.join(format!(
        ".{name}.cgsplit-{}-{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    remove_stale_temps(&dir, &name);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .ctx("create temp file", &tmp)?;
        let half = bytes.len() / 2;
        f.write_all(&bytes[..half]).ctx("write", &tmp)?;
        if backup {
            crash_point("temp-half-written");
        }
        f.write_all(&bytes[half..]).ctx("write", &tmp)?;
        if backup {
            crash_point("temp-written");
        }
        if let Some(m) = &old {
            let mine = f.metadata().ctx("stat", &tmp)?;
            if (mine.uid(), mine.gid()) != (m.uid(), m.gid()) {
                std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid()))
                    .ctx("keep the owner of", &target)?;
            }
        }
        f.set_permissions(fs::Permissions::from_mode(mode))
            .ctx("set mode of", &tmp)?;
        f.sync_all().ctx("fsync", &tmp)?;
        drop(f);
        if backup {
            crash_point("temp-synced");
            link_backup(&target, &dir)?;
            crash_point("backup-linked");
        }
        fs::rename(&tmp, &target).ctx("rename temp file over", &target)?;
        if backup {
            crash_point("renamed");
        }
        sync_dir(&dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| target)
}

/// True when the file at `path` holds exactly `expected` (compared in
/// 64 KiB chunks, so a 10 MB file is not read into memory twice).
///
/// Errors: [`Error::Io`] when it cannot be read.
pub fn holds(path: &Path, expected: &[u8]) -> Result<bool> {
    use std::io::Read;
    let mut f = File::open(path).ctx("read", path)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut at = 0;
    loop {
        let n = f.read(&mut buf).ctx("read", path)?;
        if n == 0 {
            return Ok(at == expected.len());
        }
        if at + n > expected.len() || buf[..n] != expected[at..at + n] {
            return Ok(false);
        }
        at += n;
    }
}

/// Replaces a Steam user file: re-reads `path` and refuses with
/// [`Error::ChangedMeanwhile`] unless it still holds `expected`, then
/// writes `bytes` as [`write_atomic`] does, with the old file kept as
/// `<path>.cgsplit-bak` (older backups rotated).
pub fn replace_checked(path: &Path, expected: &[u8], bytes: &[u8]) -> Result<PathBuf> {
    if !holds(path, expected)? {
        return Err(Error::ChangedMeanwhile(path.to_path_buf()));
    }
    write_atomic_inner(path, bytes, 0o600, false, true)
}

/// Checks, before anything is written, that `path` could be replaced: the
/// file is not read-only (no write bit: someone protected it, e.g. against
/// Steam overwriting it) and its directory is writable for this user.
///
/// Errors: [`Error::ReadOnly`], [`Error::Io`].
pub fn check_writable(path: &Path) -> Result<()> {
    let target = resolve(path)?;
    if let Ok(m) = fs::metadata(&target)
        && m.permissions().mode() & 0o222 == 0
    {
        return Err(Error::ReadOnly(target));
    }
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK)
        .map_err(std::io::Error::from)
        .ctx("write into directory", dir)
}

/// Removes a file; fine if it is already gone.
pub fn remove_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).ctx("remove", path),
        _ => Ok(()),
    }
}

/// Removes an empty directory; `false` (no error) if it is not empty or gone.
pub fn remove_dir_if_empty(path: &Path) -> Result<bool> {
    match fs::remove_dir(path) {
        Ok(()) => Ok(true),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::DirectoryNotEmpty
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(e).ctx("remove directory", path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_keeps_mode_and_follows_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real.vdf");
        fs::write(&real, b"old").unwrap();
        fs::set_permissions(&real, fs::Permissions::from_mode(0o640)).unwrap();
        let link = d.path().join("link.vdf");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let written = write_atomic(&link, b"new", 0o600).unwrap();
        assert_eq!(written, fs::canonicalize(&real).unwrap());
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(&real).unwrap(), b"new");
        assert_eq!(
            fs::metadata(&real).unwrap().permissions().mode() & 0o777,
            0o640
        );
        let fresh = d.path().join("fresh");
        write_atomic(&fresh, b"x", 0o755).unwrap();
        assert_eq!(
            fs::metadata(&fresh).unwrap().permissions().mode() & 0o777,
            0o755
        );
        // No temp files left behind.
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
    }

    #[test]
    fn replace_checked_refuses_a_changed_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        fs::write(&p, b"a").unwrap();
        assert!(matches!(
            replace_checked(&p, b"b", b"c"),
            Err(Error::ChangedMeanwhile(_))
        ));
        assert_eq!(fs::read(&p).unwrap(), b"a");
        replace_checked(&p, b"a", b"c").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"c");
    }
}
