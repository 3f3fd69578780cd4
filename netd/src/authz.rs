//! Who may restrict, release or query which cgroup: pure decisions on facts
//! the helper gathered itself (the caller's uid from the bus daemon, the
//! cgroup's owner from `fstat` on the opened fd), never on anything the
//! caller said about itself.

use cgsplit_core::scope::user_manager_cgroup;

use crate::cgroupfs::CgroupPath;
use crate::error::{Error, Result};

/// Who is asking, as the bus daemon reports it
/// (`org.freedesktop.DBus.GetConnectionUnixUser` and
/// `GetConnectionUnixProcessID` on the message's sender), or the CLI's own
/// credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The caller's uid.
    pub uid: u32,
    /// The caller's pid in the helper's pid namespace, when known. Used only
    /// to find the caller's own cgroup; a vanished pid fails closed.
    pub pid: Option<u32>,
}

/// May `caller_uid` act on the cgroup at `path` (relative to the root) whose
/// directory is owned by `owner`?
///
/// - the root cgroup: never (that would filter the whole machine);
/// - root (uid 0): any other cgroup;
/// - anyone else: only a cgroup strictly beneath their own
///   `/user.slice/user-<uid>.slice/user@<uid>.service` (systemd's delegated
///   user tree) whose directory they own.
pub fn may_target(caller_uid: u32, path: &CgroupPath, owner: u32) -> Result<()> {
    if path.is_root() {
        return Err(Error::AccessDenied(
            "refusing the root cgroup: that would filter the whole machine; name a game's scope"
                .into(),
        ));
    }
    if caller_uid == 0 {
        return Ok(());
    }
    let home = user_manager_cgroup(caller_uid);
    if !path.is_beneath(&home) {
        return Err(Error::AccessDenied(format!(
            "uid {caller_uid} may only restrict cgroups inside its own user manager {home}/, not {path}"
        )));
    }
    if owner != caller_uid {
        return Err(Error::AccessDenied(format!(
            "cgroup {path} is owned by uid {owner}, not by the caller (uid {caller_uid}); only a cgroup the caller owns can be restricted"
        )));
    }
    Ok(())
}

/// The refusal when the caller's own cgroup (or an ancestor) is restricted
/// and it asks for a release: a filtered game must not lift its own filter.
pub fn restricted_caller(caller: &Caller, cgroup: &CgroupPath) -> Error {
    Error::AccessDenied(format!(
        "the caller (uid {}, pid {}) runs in {cgroup}, which is network-restricted; a restricted process cannot lift a restriction — release it from outside the game",
        caller.uid,
        caller.pid.map_or_else(|| "?".into(), |p| p.to_string())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> CgroupPath {
        CgroupPath::parse(s).unwrap()
    }

    const SCOPE: &str =
        "/user.slice/user-1000.slice/user@1000.service/games.slice/cgsplit-620.scope";

    #[test]
    fn owner_inside_own_tree_is_allowed() {
        may_target(1000, &p(SCOPE), 1000).unwrap();
        may_target(1000, &p(&format!("{SCOPE}/game/sub")), 1000).unwrap();
    }

    #[test]
    fn other_trees_owners_and_the_root_are_refused() {
        for (uid, path, owner, needle) in [
            (1001, SCOPE, 1000, "inside its own user manager"),
            (1000, SCOPE, 0, "owned by uid 0"),
            (1000, SCOPE, 1001, "owned by uid 1001"),
            (
                1000,
                "/user.slice/user-1000.slice/user@1000.service",
                1000,
                "inside its own",
            ),
            (1000, "/user.slice/user-1000.slice", 1000, "inside its own"),
            (
                1000,
                "/system.slice/cgsplit-620.scope",
                1000,
                "inside its own",
            ),
            (
                1000,
                "/user.slice/user-1000.slice/user@1000.serviceX/a",
                1000,
                "inside its own",
            ),
            (0, "/", 0, "root cgroup"),
            (1000, "/", 1000, "root cgroup"),
        ] {
            let err = may_target(uid, &p(path), owner).unwrap_err();
            assert!(matches!(err, Error::AccessDenied(_)), "{path}");
            assert!(err.to_string().contains(needle), "{path}: {err}");
        }
    }

    #[test]
    fn root_may_target_any_cgroup_but_the_root() {
        may_target(0, &p(SCOPE), 1000).unwrap();
        may_target(0, &p("/system.slice/x.service"), 0).unwrap();
    }
}
