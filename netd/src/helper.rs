//! The helper's three operations — restrict, release, status — with every
//! check in order: parse, resolve safely, authorize, act all-or-none, mark.
//! Shared by the D-Bus service and the root CLI. Every BPF effect goes
//! through [`cgsplit_bpf::Filter`].

use std::collections::HashSet;

use cgsplit_bpf::Filter;
use cgsplit_core::policy::{NetworkPolicy, POLICY_XATTR};
use serde_json::json;

use crate::authz::{self, Caller};
use crate::cgroupfs::{Cgroup, CgroupPath, CgroupRoot};
use crate::error::{Error, Result};

/// Default cap on restricted cgroups per owner uid (one per running game is
/// the normal case; the cap bounds the pins and map entries per user).
pub const DEFAULT_MAX_PER_UID: usize = cgsplit_bpf::DEFAULT_MAX_PER_UID;

/// What [`Helper::restrict`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restricted {
    /// The filter was attached now.
    Attached,
    /// The cgroup was restricted already; its allow-list now matches the
    /// policy (the filter's in-place replace) and the xattr was rewritten.
    Updated,
}

/// The helper's state: the cgroup2 root and the loaded filter.
pub struct Helper {
    root: CgroupRoot,
    filter: Filter,
}

impl Helper {
    /// A helper over `root` with `filter` loaded, allowing each owner uid at
    /// most `max_per_uid` restricted cgroups (the filter counts them by the
    /// owner of the cgroup directory).
    pub fn new(root: CgroupRoot, mut filter: Filter, max_per_uid: usize) -> Self {
        filter.set_max_per_uid(max_per_uid);
        Self { root, filter }
    }

    /// The cgroup2 root request paths are relative to.
    pub fn root(&self) -> &CgroupRoot {
        &self.root
    }

    /// Attaches the filter with `policy` (text form, [`NetworkPolicy`]) to
    /// `cgroup` (a cgroup path), then sets the `user.cgsplit.policy` xattr;
    /// if the xattr cannot be set the filter is detached again (all or
    /// none). Changing the policy of a restricted cgroup is refused when the
    /// caller runs inside a restricted cgroup itself (it could widen its own
    /// allow-list).
    ///
    /// Errors: bad policy/path ([`Error::InvalidArgs`]); refusals
    /// ([`Error::AccessDenied`], [`Error::NoSuchCgroup`], [`Error::NotACgroup`]);
    /// [`Error::AlreadyRestricted`] (inside or above a restricted cgroup);
    /// [`Error::LimitExceeded`]; [`Error::Failed`].
    pub fn restrict(&mut self, caller: &Caller, cgroup: &str, policy: &str) -> Result<Restricted> {
        let policy: NetworkPolicy = policy
            .parse()
            .map_err(|e: cgsplit_core::policy::PolicyError| Error::InvalidArgs(e.to_string()))?;
        if !policy.is_restricted() {
            return Err(Error::InvalidArgs(format!(
                "policy `full` needs no filter; to lift a restriction of {cgroup}, call Release"
            )));
        }
        let cg = self.open_authorized(caller, cgroup)?;
        let old = self
            .filter
            .status(cg.id())
            .map_err(|e| bpf_err(e, &cg))?
            .map(|s| s.attached.policy);
        if old.as_ref().is_some_and(|o| *o != policy) {
            self.check_caller_unrestricted(caller)?;
        }
        match self.filter.restrict(cg.fd(), &policy) {
            // Scopes of games that ended are gone but still counted until
            // their pins are collected: collect, then try once more.
            Err(cgsplit_bpf::Error::TooMany { .. }) => {
                self.gc()?;
                self.filter.restrict(cg.fd(), &policy)
            }
            r => r,
        }
        .map_err(|e| bpf_err(e, &cg))?;
        if let Err(e) = self.mark(&cg, &policy) {
            return Err(match self.filter.release(cg.id()) {
                Ok(_) => e,
                Err(u) => Error::Failed(format!(
                    "{}; and detaching again failed too: {u} — run `cgsplit-netd detach --cgroup {}` as root",
                    e.message(),
                    cg.disk().display()
                )),
            });
        }
        Ok(if old.is_some() {
            Restricted::Updated
        } else {
            Restricted::Attached
        })
    }

    /// Detaches the filter from `cgroup` and removes its xattr. Refused when
    /// `check_caller` and the caller's own cgroup (from `/proc/<pid>/cgroup`)
    /// or one of its ancestors is restricted, or the caller's pid is unknown.
    /// Returns whether a filter was attached (releasing an unrestricted
    /// cgroup is not an error: it only clears a stale xattr).
    pub fn release(&mut self, caller: &Caller, cgroup: &str, check_caller: bool) -> Result<bool> {
        let cg = self.open_authorized(caller, cgroup)?;
        if check_caller {
            self.check_caller_unrestricted(caller)?;
        }
        let was = self.filter.release(cg.id()).map_err(|e| bpf_err(e, &cg))?;
        cg.remove_policy_xattr()
            .map_err(|e| Error::io(&format!("remove the {POLICY_XATTR} xattr of"), cg.disk(), e))?;
        Ok(was)
    }

    /// The state of `cgroup` as JSON; the schema is documented at
    /// `NETD_INTERFACE` in `cgsplit_core::policy`. The same authorization as
    /// [`Helper::restrict`]: counters show what a user's game tried to
    /// reach, which is theirs to see.
    pub fn status(&self, caller: &Caller, cgroup: &str) -> Result<serde_json::Value> {
        let cg = self.open_authorized(caller, cgroup)?;
        let st = self.filter.status(cg.id()).map_err(|e| bpf_err(e, &cg))?;
        let xattr = cg
            .policy_xattr()
            .map_err(|e| Error::io("read the xattrs of", cg.disk(), e))?;
        let mut v = json!({
            "cgroup": cg.path().as_str(),
            "cgroup_id": cg.id(),
            "restricted": st.is_some(),
            "policy": st.as_ref().map(|s| s.attached.policy.to_string()),
            "xattr": xattr,
            "counters": null,
            "recent": [],
        });
        if let Some(s) = st {
            let c = s.counters;
            v["counters"] = json!({
                "ingress_packets": c.ingress_packets,
                "ingress_bytes": c.ingress_bytes,
                "egress_packets": c.egress_packets,
                "egress_bytes": c.egress_bytes,
                "connect_refused": c.connect_refused,
                "sendmsg_refused": c.sendmsg_refused,
                "events_suppressed": c.events_suppressed,
                "events_lost": c.events_lost,
            });
            v["recent"] = s
                .recent
                .iter()
                .map(|r| {
                    json!({
                        "hook": r.hook.name(),
                        "addr": r.addr.to_string(),
                        "port": r.port,
                        "protocol": r.protocol,
                        "pid": r.task.as_ref().map(|t| t.0),
                        "comm": r.task.as_ref().map(|t| t.1.clone()),
                        "monotonic_ns": r.monotonic_ns,
                    })
                })
                .collect();
        }
        Ok(v)
    }

    /// Drops pins of cgroups that are gone; how many.
    pub fn gc(&mut self) -> Result<usize> {
        self.filter
            .gc()
            .map_err(|e| Error::Failed(format!("collecting stale pins: {e}")))
    }

    fn open_authorized(&self, caller: &Caller, cgroup: &str) -> Result<Cgroup> {
        let path = CgroupPath::parse(cgroup)?;
        // Refuse by path alone before touching the file system, so a caller
        // learns nothing about cgroups outside its own tree.
        authz::may_target(caller.uid, &path, caller.uid)?;
        let cg = self.root.open(&path)?;
        authz::may_target(caller.uid, cg.path(), cg.owner())?;
        Ok(cg)
    }

    fn mark(&self, cg: &Cgroup, policy: &NetworkPolicy) -> Result<()> {
        cg.set_policy_xattr(&policy.to_string()).map_err(|e| {
            if e.raw_os_error() == Some(nix::errno::Errno::ENOENT as i32) {
                Error::NoSuchCgroup(format!(
                    "cgroup {} vanished while the filter was being attached; nothing is left attached",
                    cg.path()
                ))
            } else {
                let hint = if e.raw_os_error() == Some(nix::errno::Errno::EACCES as i32) {
                    " (a user's directory needs CAP_DAC_OVERRIDE)"
                } else {
                    ""
                };
                Error::Failed(format!(
                    "cannot set the {POLICY_XATTR} xattr on {}: {e}{hint}; the filter was detached again",
                    cg.disk().display()
                ))
            }
        })
    }

    fn restricted_ids(&self) -> Result<HashSet<u64>> {
        Ok(self
            .filter
            .list()
            .map_err(|e| Error::Failed(format!("listing restricted cgroups: {e}")))?
            .into_iter()
            .map(|a| a.cgroup_id)
            .collect())
    }

    fn check_caller_unrestricted(&self, caller: &Caller) -> Result<()> {
        let unknown = || {
            Error::AccessDenied(format!(
                "cannot tell which cgroup the caller (uid {}) runs in, so it may not lift or widen a restriction",
                caller.uid
            ))
        };
        let pid = caller.pid.ok_or_else(unknown)?;
        let own = self.root.cgroup_of_pid(pid).ok_or_else(unknown)?;
        let restricted = self.restricted_ids()?;
        let ids = self.root.ancestor_ids(&own).ok_or_else(unknown)?;
        if ids.iter().any(|id| restricted.contains(id)) {
            return Err(authz::restricted_caller(caller, &own));
        }
        Ok(())
    }
}

/// The filter library's error as the helper's, naming the cgroup.
fn bpf_err(e: cgsplit_bpf::Error, cg: &Cgroup) -> Error {
    use cgsplit_bpf::Error as B;
    let path = cg.path();
    match e {
        B::CgroupGone { .. } => Error::NoSuchCgroup(format!(
            "cgroup {path} vanished before the filter was attached; nothing is attached"
        )),
        B::TooMany { uid, max } => Error::LimitExceeded(format!(
            "uid {uid} already has {max} restricted cgroups (the limit); release one, e.g. of a game that is no longer running"
        )),
        B::Nested { relation, .. } => Error::AlreadyRestricted(format!(
            "cgroup {path} is {relation} another restricted cgroup; restrict the game's scope itself, once"
        )),
        B::NotCgroup2 => Error::NotACgroup(format!("{path} is not a cgroup2 directory")),
        e @ B::NotPermitted { .. } => Error::Failed(format!(
            "{e} (cgsplit-netd needs CAP_BPF and CAP_NET_ADMIN)"
        )),
        e => Error::Failed(format!("cgroup {path}: {e}")),
    }
}
