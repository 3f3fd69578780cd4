//! Asking a running Steam client to shut down through its command FIFO,
//! `~/.steam/steam.pipe`, without ever starting Steam.
//!
//! `steam -shutdown` with Steam already running forwards its command line
//! into this FIFO: steam-runtime-tools' `_srt_steam_command_via_pipe` opens
//! it `O_WRONLY|O_NONBLOCK` (`ENOENT`/`ENXIO` ⇒ "Steam is not running") and
//! writes one line, each argument shell-quoted, the first being the client
//! binary: `'~/.steam/root/ubuntu12_32/steam' '-shutdown'` (STEAM.md §5,
//! steam-runtime-tools `steam-runtime-tools/utils.c`). Running `steam
//! -shutdown` itself would start Steam when it is not running
//! (steam-for-linux#6825), which is why the shim writes the line itself.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// The FIFO's path below `$HOME` (`$STEAMCONFIG/steam.pipe` in `steam.sh`,
/// `STEAMCONFIG=~/.steam`). Inside the Steam flatpak `~/.steam` is the app's
/// persisted copy, the same one the sandboxed client reads.
pub const PIPE: &str = ".steam/steam.pipe";

/// The exact line a second `steam -shutdown` writes (module docs).
pub const SHUTDOWN_LINE: &[u8] = b"'~/.steam/root/ubuntu12_32/steam' '-shutdown'\n";

/// How long a full FIFO may keep the shim waiting before it gives up.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// `$HOME/.steam/steam.pipe`, when `HOME` is an absolute path.
pub fn pipe_path(home: Option<std::ffi::OsString>) -> Option<PathBuf> {
    let home = PathBuf::from(home?);
    home.is_absolute().then(|| home.join(PIPE))
}

/// What became of the request.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The whole line was written to a FIFO with a reader.
    Sent,
    /// Steam is not running: no FIFO (`ENOENT`) or no reader (`ENXIO`).
    NotRunning(String),
    /// Something is wrong with the FIFO; nothing (or not all) was written.
    Failed(String),
}

/// Writes [`SHUTDOWN_LINE`] to the FIFO at `path` if and only if a reader
/// has it open, waiting at most `timeout` for room in a full FIFO.
pub fn request_shutdown(path: &Path, timeout: Duration) -> Outcome {
    let file = match OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Outcome::NotRunning(format!("{} does not exist", path.display()));
        }
        Err(e) if e.raw_os_error() == Some(nix::libc::ENXIO) => {
            return Outcome::NotRunning(format!("{} has no reader", path.display()));
        }
        Err(e) => return Outcome::Failed(format!("cannot open {}: {e}", path.display())),
    };
    match file.metadata() {
        Ok(m) if m.file_type().is_fifo() => {}
        // Opening a regular file O_WRONLY does not truncate it; nothing is written.
        _ => return Outcome::Failed(format!("{} is not a FIFO", path.display())),
    }
    let end = Instant::now() + timeout;
    let mut left = SHUTDOWN_LINE;
    while !left.is_empty() {
        match (&file).write(left) {
            Ok(n) => left = &left[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let wait = end.saturating_duration_since(Instant::now());
                if wait.is_zero() {
                    return Outcome::Failed(format!(
                        "{} stayed full for {} s",
                        path.display(),
                        timeout.as_secs()
                    ));
                }
                let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
                let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLOUT)];
                let _ = poll(&mut fds, PollTimeout::from(ms));
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Outcome::Failed(format!("cannot write {}: {e}", path.display())),
        }
    }
    Outcome::Sent
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;

    fn fifo(dir: &Path) -> PathBuf {
        let p = dir.join("steam.pipe");
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        p
    }

    #[test]
    fn no_fifo_and_no_reader_mean_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("steam.pipe");
        assert!(matches!(
            request_shutdown(&p, WRITE_TIMEOUT),
            Outcome::NotRunning(m) if m.ends_with("does not exist")
        ));
        let p = fifo(dir.path());
        assert!(matches!(
            request_shutdown(&p, WRITE_TIMEOUT),
            Outcome::NotRunning(m) if m.ends_with("has no reader")
        ));
    }

    #[test]
    fn a_reader_gets_the_line_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = fifo(dir.path());
        let mut reader = OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(&p)
            .unwrap();
        assert_eq!(request_shutdown(&p, WRITE_TIMEOUT), Outcome::Sent);
        let mut got = Vec::new();
        reader.read_to_end(&mut got).unwrap();
        assert_eq!(got, SHUTDOWN_LINE);
    }

    #[test]
    fn a_regular_file_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("steam.pipe");
        std::fs::write(&p, "keep").unwrap();
        assert!(matches!(
            request_shutdown(&p, WRITE_TIMEOUT),
            Outcome::Failed(m) if m.ends_with("is not a FIFO")
        ));
        assert_eq!(std::fs::read(&p).unwrap(), b"keep");
    }

    #[test]
    fn pipe_path_needs_an_absolute_home() {
        assert_eq!(
            pipe_path(Some("/home/me".into())),
            Some(PathBuf::from("/home/me/.steam/steam.pipe"))
        );
        assert_eq!(pipe_path(Some("".into())), None);
        assert_eq!(pipe_path(None), None);
    }
}
