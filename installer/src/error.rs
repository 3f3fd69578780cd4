//! The installer's error type. Every variant says what was attempted, on
//! which file, and what to do about it, in one line.

use std::io;
use std::path::PathBuf;

use crate::elf::ElfError;
use crate::state::StateError;
use crate::steam::localconfig::LocalConfigError;
use crate::steam::loginusers::LoginUsersError;

/// Commands to build the static shim, quoted in shim errors.
pub const BUILD_SHIM: &str = "build it with `cargo build-shim` (output: target/x86_64-unknown-linux-gnu/shim/cgsplit-shim) and pass it with --shim PATH";

/// Everything `cgsplit-install` can fail with. Every input is read and
/// checked before the first write, so nothing has been written when one of
/// these is returned, except [`Error::Io`] or [`Error::ChangedMeanwhile`]
/// during the writes themselves (each file is then either old or new, and
/// the previous version of a Steam file is kept as `<file>.cgsplit-bak`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file operation failed.
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// What was attempted, e.g. `read`, `rename over`.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A Steam text VDF file (localconfig.vdf, config.vdf) is malformed or
    /// the edit failed its checks.
    #[error(
        "{}{}: {source}; nothing was written (fix the file or restore it from a backup, then retry)",
        path.display(),
        line.map_or(String::new(), |(l, c)| format!(":{l}:{c}"))
    )]
    LocalConfig {
        /// The file.
        path: PathBuf,
        /// 1-based line and column of the problem, when known.
        line: Option<(usize, usize)>,
        /// What is wrong.
        source: LocalConfigError,
    },
    /// A file that must be text VDF holds binary data.
    #[error(
        "{path}: binary data at byte {offset} (line {line}), expected a text VDF file; nothing was written (is this the right file?)"
    )]
    Binary {
        /// The file.
        path: PathBuf,
        /// Offset of the first NUL byte followed by more data.
        offset: usize,
        /// Its 1-based line.
        line: usize,
    },
    /// A file cgsplit would replace has no write permission.
    #[error(
        "{0} is read-only (no write permission bit); cgsplit does not replace a file someone protected: make it writable (chmod u+w) and retry; nothing was written"
    )]
    ReadOnly(PathBuf),
    /// A request cgsplit refuses, with the reason and what to do instead.
    #[error("{0}")]
    Refused(String),
    /// localconfig.vdf does not exist.
    #[error("{0} does not exist; start Steam once with this account, quit it, then retry")]
    NoLocalConfig(PathBuf),
    /// loginusers.vdf could not be used to pick an account.
    #[error("{path}: {source}; accounts in {userdata}: [{accounts}]; pass --account ID")]
    LoginUsers {
        /// The loginusers.vdf.
        path: PathBuf,
        /// What is wrong.
        source: LoginUsersError,
        /// `<root>/userdata`.
        userdata: PathBuf,
        /// Account directories found there.
        accounts: String,
    },
    /// No account directory could be chosen.
    #[error("{0}")]
    Account(String),
    /// No Steam root.
    #[error("no Steam root found: tried {tried}{found}; pass --steam-root DIR")]
    NoSteamRoot {
        /// What was tried, with why it failed.
        tried: String,
        /// Other Steam installs noticed, as `; found …`.
        found: String,
    },
    /// The shim cannot be used.
    #[error(
        "shim {path} is unusable: {source}; a dynamic shim cannot run inside the Steam flatpak; {BUILD_SHIM}"
    )]
    Shim {
        /// The shim file.
        path: PathBuf,
        /// Why.
        source: ElfError,
    },
    /// No shim file found.
    #[error("no cgsplit-shim found (tried {0}); {BUILD_SHIM}")]
    ShimNotFound(String),
    /// The state file is unreadable.
    #[error("state file {path}: {source}; move it away to start over")]
    State {
        /// The state file.
        path: PathBuf,
        /// What is wrong.
        source: StateError,
    },
    /// A path that must be stored as text is not UTF-8.
    #[error("path {0} is not valid UTF-8; cgsplit cannot record or quote it")]
    NonUtf8Path(PathBuf),
    /// The file changed between reading and writing.
    #[error(
        "{0} changed while cgsplit-install was running (is Steam starting?); nothing was written, retry"
    )]
    ChangedMeanwhile(PathBuf),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds `op` and `path` to an [`io::Error`].
pub trait IoContext<T> {
    /// Wraps the error as [`Error::Io`].
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io {
            op,
            path: path.into(),
            source,
        })
    }
}
