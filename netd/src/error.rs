//! Every way a request to the helper can fail, and the D-Bus error name each
//! one travels under (`io.github.cgsplit.Netd1.Error.<Variant>`), so callers
//! match on the name, not on the message text.

use std::path::Path;

/// Prefix of the helper's D-Bus error names.
pub const ERROR_PREFIX: &str = "io.github.cgsplit.Netd1.Error";

/// A refused or failed request. The `String` of each variant is the whole
/// message shown to the user: it names the cgroup, policy or file and says
/// what to do.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "io.github.cgsplit.Netd1.Error")]
pub enum Error {
    /// A transport-level D-Bus failure (the bus, not the request).
    #[zbus(error)]
    ZBus(zbus::Error),
    /// The policy text or cgroup path is malformed (unknown policy, bad CIDR,
    /// a path that is not absolute, has `..`, `.`, empty parts or NUL).
    InvalidArgs(String),
    /// The caller may not act on this cgroup: not its owner, outside its
    /// `user@<uid>.service`, a symlink or a mount crossing on the way, or the
    /// caller itself runs inside a restricted cgroup (for Release or a policy
    /// change).
    AccessDenied(String),
    /// No cgroup at that path, or it vanished while the helper worked on it.
    NoSuchCgroup(String),
    /// The path resolves to something that is not a cgroup2 directory.
    NotACgroup(String),
    /// The owner already has the maximum number of restricted cgroups.
    LimitExceeded(String),
    /// The cgroup lies inside (or above) another restricted cgroup.
    AlreadyRestricted(String),
    /// The helper cannot load or attach the filter (no CAP_BPF, no bpffs,
    /// a kernel refusal), or could not set the policy xattr; nothing was
    /// left attached.
    Failed(String),
}

impl Error {
    /// The message alone, without the D-Bus error name (for the CLI).
    pub fn message(&self) -> String {
        match self {
            Self::ZBus(e) => e.to_string(),
            e => zbus::DBusError::description(e)
                .unwrap_or_default()
                .to_owned(),
        }
    }

    /// An I/O failure of `op` on `path`, as [`Error::Failed`].
    pub fn io(op: &str, path: &std::path::Path, err: impl std::fmt::Display) -> Self {
        Self::Failed(format!("cannot {op} {}: {err}", path.display()))
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A path given on the command line that is not beneath the cgroup2 root.
pub fn not_beneath(path: &Path, root: &Path) -> Error {
    Error::InvalidArgs(format!(
        "{} is not beneath the cgroup2 root {}: give a cgroup directory such as {}/user.slice/user-1000.slice/user@1000.service/games.slice/cgsplit-620.scope",
        path.display(),
        root.display(),
        root.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_documented_prefix() {
        for (e, n) in [
            (Error::InvalidArgs(String::new()), "InvalidArgs"),
            (Error::AccessDenied(String::new()), "AccessDenied"),
            (Error::NoSuchCgroup(String::new()), "NoSuchCgroup"),
            (Error::NotACgroup(String::new()), "NotACgroup"),
            (Error::LimitExceeded(String::new()), "LimitExceeded"),
            (Error::AlreadyRestricted(String::new()), "AlreadyRestricted"),
            (Error::Failed("why".into()), "Failed"),
        ] {
            assert_eq!(
                zbus::DBusError::name(&e).as_str(),
                format!("{ERROR_PREFIX}.{n}")
            );
        }
        assert_eq!(Error::Failed("why".into()).message(), "why");
    }
}
