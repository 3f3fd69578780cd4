//! Pure rules shared by every cgsplit binary.
//!
//! Nothing in this crate touches the file system, makes a syscall or talks
//! D-Bus: it builds and parses names and strings. The shim links it too, so
//! it stays dependency-free (std only).
//!
//! - [`chain`]: Steam's wrappers (reaper, steam-launch-wrapper, runtime entry
//!   points) at the front of a game's argv, and where a second shim goes.
//! - [`scope`]: the fixed cgroup layout (`games.slice/cgsplit-<appid>.scope/{keeper,game}`)
//!   and the unit names behind it.
//! - [`mountinfo`]: finding the directory of a cgroup from `/proc/self/mountinfo` text,
//!   on pure v2, hybrid (`/sys/fs/cgroup/unified`) and flatpak bind-mounted views.
//! - [`launch`]: Steam launch options: POSIX-shell quoting and placing the shim
//!   immediately before `%command%`.
//! - [`policy`]: the network policy's text form (config, launch line, helper
//!   API, `user.cgsplit.policy` xattr) and the helper's D-Bus names.

pub mod chain;
pub mod launch;
pub mod mountinfo;
pub mod policy;
pub mod scope;

pub use policy::NetworkPolicy;
pub use scope::AppId;
