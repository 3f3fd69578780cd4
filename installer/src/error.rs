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

/// Everything `cgsplit-install` can fail with. Nothing has been written to
/// `localconfig.vdf` when one of these is returned, except
/// [`Error::Io`] during the final write (the backup path is printed before).
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
    /// localconfig.vdf is malformed or the edit failed its checks.
    #[error(
        "{path}: {source}; nothing was written (fix the file or restore it from Steam Cloud/backup, then retry)"
    )]
    LocalConfig {
        /// The localconfig.vdf.
        path: PathBuf,
        /// What is wrong.
        source: LocalConfigError,
    },
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
    /// Steam is running for this user.
    #[error(
        "Steam is running; quit Steam first (it overwrites localconfig.vdf on exit) [{0} has a reader]"
    )]
    SteamRunning(PathBuf),
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
    /// No home or state directory.
    #[error("cannot determine the home directory ($HOME unset)")]
    NoHome,
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
