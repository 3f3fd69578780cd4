//! Entering the game's leaf, fail-open or fail-closed.
//!
//! Without `--network` (or with `--network full`) every problem is one
//! warning line and the game runs outside its scope (fail-open): the shim
//! must never be the reason a game does not start.
//!
//! With a restricted `--network` policy the game runs only when all of
//! these hold, checked in this order (fail-closed, issue 6 item 3):
//!
//! 1. the leaf is known (app id, cgroup2 mount) — else refuse;
//! 2. the scope directory carries the xattr [`POLICY_XATTR`] whose value is
//!    the policy's text form, byte for byte equal to the `--network` one (the
//!    privileged helper sets it after attaching the filter) — else refuse;
//! 3. the process joined `game/` — else refuse;
//! 4. the proof: from inside `game/`, a UDP `connect()` to [`PROOF_ADDR`]
//!    fails with `EPERM` (the `cgroup/connect4` program's verdict; a UDP
//!    connect sends no packet) — anything else (success, `ENETUNREACH`, …)
//!    means no filter of ours answered, so refuse.
//!
//! `--allow-network` turns each refusal into a warning.

use std::fmt;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;

use cgsplit_core::policy::{POLICY_XATTR, PROOF_ADDR};
use cgsplit_core::scope::game_cgroup;
use cgsplit_core::{AppId, NetworkPolicy};
use nix::errno::Errno;

use crate::args::Invocation;
use crate::join;
use crate::log::warn;
use crate::report;
use crate::target::Target;

/// The launch must not go on: the line to print (already formatted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

/// What the proof saw, when it was not the filter's `EPERM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofFailure {
    /// `connect()` succeeded: nothing filters this cgroup.
    Connected,
    /// `socket()` or `connect()` failed with another errno.
    Errno(&'static str, Errno),
}

impl fmt::Display for ProofFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connected => write!(
                f,
                "a UDP connect() to {PROOF_ADDR} from inside game/ succeeded, so no network \
                 filter is attached (is cgsplit-netd running?)"
            ),
            Self::Errno(op, e) => write!(
                f,
                "a UDP {op}() to {PROOF_ADDR} from inside game/ failed with {e:?} ({}) instead \
                 of the filter's EPERM",
                e.desc()
            ),
        }
    }
}

/// The proof of item 4: `Ok` when the kernel answers `connect()` to
/// [`PROOF_ADDR`] with `EPERM`. std binds the socket to `0.0.0.0:0` first;
/// cgsplit's filter has no bind hooks (`bpf/c`), so only `cgroup/connect4` decides.
pub fn prove_filter() -> Result<(), ProofFailure> {
    let errno = |e: std::io::Error| Errno::from_raw(e.raw_os_error().unwrap_or(0));
    let any = SocketAddr::from(([0, 0, 0, 0], 0));
    let sock = UdpSocket::bind(any).map_err(|e| ProofFailure::Errno("bind", errno(e)))?;
    match sock.connect(PROOF_ADDR) {
        Ok(()) => Err(ProofFailure::Connected),
        Err(e) => match errno(e) {
            Errno::EPERM => Ok(()),
            other => Err(ProofFailure::Errno("connect", other)),
        },
    }
}

/// Item 2: the scope's xattr against the wanted policy; the reason when they differ.
pub fn check_xattr(scope: &Path, want: &NetworkPolicy) -> Result<(), String> {
    let want = want.to_string();
    match join::xattr(scope, POLICY_XATTR) {
        Ok(Some(v)) if v == want.as_bytes() => Ok(()),
        Ok(Some(v)) => Err(format!(
            "{} has {POLICY_XATTR}=`{}` but the launch line asks for --network {want}; \
             re-provision the scope with the game's current policy",
            scope.display(),
            String::from_utf8_lossy(&v)
        )),
        Ok(None) => Err(format!(
            "{} has no {POLICY_XATTR} xattr: no network filter was attached to this scope \
             (provision it with network = {want}, with cgsplit-netd running)",
            scope.display()
        )),
        Err(e) => Err(format!(
            "cannot read {POLICY_XATTR} on {}: {e:?} ({})",
            scope.display(),
            e.desc()
        )),
    }
}

/// Checks that need not be inside `game/` (items 1 and 2); run before a fork
/// so a refusal costs no child process. `target` is the leaf or the reason
/// there is none (already a full fail-open line from `report::not_joined`,
/// or the bare reason).
pub fn before_join(inv: &Invocation, target: &Result<Target, String>) -> Result<(), Refused> {
    let Some(policy) = inv.network.as_ref().filter(|p| p.is_restricted()) else {
        return Ok(());
    };
    let why = match target {
        Err(why) => why.clone(),
        Ok(t) => match check_xattr(t.scope(), policy) {
            Ok(()) => return Ok(()),
            Err(why) => why,
        },
    };
    refuse_or_warn(inv, why)
}

/// Joins the leaf (item 3) and proves the filter (item 4), in the process
/// that will exec the game. Fail-open problems are printed here.
///
/// Every instance first checks whether it is in `game/` already
/// ([`already_in`]) and then writes nothing: on native Steam
/// pressure-vessel's container is a descendant of a shim that joined
/// outside it (launch options), and its `/sys` is read-only, so the write
/// of the inner copy ([`crate::reinsert`]) or of the compatibility tool's
/// shim would fail with `EROFS` for no reason (and refuse the game under
/// `--network`). The inner copy that is not in `game/` was moved out by
/// Steam's wrapper; it joins, and a failure is said with that context
/// (warning, or a refusal under a restricted `--network`).
pub fn join_and_prove(
    inv: &Invocation,
    target: &Result<Target, String>,
    uid: u32,
) -> Result<(), Refused> {
    let restricted = inv
        .network
        .as_ref()
        .is_some_and(NetworkPolicy::is_restricted);
    let already = already_in(target, uid, inv.app);
    let t = match target {
        Ok(t) => t,
        Err(_) if already => return Ok(()),
        Err(why) => {
            // A restricted policy was refused or allowed in `before_join`.
            if inv.network.as_ref().is_none_or(|p| !p.is_restricted()) {
                warn(&report::not_joined(why));
            }
            return Ok(());
        }
    };
    if !already && let Err(e) = join::join(&t.leaf) {
        let why = report::join_error(&e, uid, t.app);
        let why = if inv.inner {
            report::moved_out(&why)
        } else {
            why
        };
        if !restricted {
            warn(&report::not_joined(why));
            return Ok(());
        }
        return refuse_or_warn(inv, why);
    }
    if restricted && let Err(f) = prove_filter() {
        return refuse_or_warn(inv, f.to_string());
    }
    Ok(())
}

/// Whether this process is in the game's leaf already: listed in the
/// leaf's `cgroup.procs` ([`join::is_member`]); when the leaf cannot be
/// read (no cgroup2 mount shows it here), whether `/proc/self/cgroup` names
/// the leaf the app id gives ([`game_cgroup`]).
pub fn already_in(target: &Result<Target, String>, uid: u32, app: Option<AppId>) -> bool {
    if let Ok(t) = target
        && let Ok(member) = join::is_member(&t.leaf)
    {
        return member;
    }
    let app = target.as_ref().ok().and_then(|t| t.app).or(app);
    match (app, join::own_cgroup()) {
        (Some(app), Ok(own)) => own == game_cgroup(uid, app),
        _ => false,
    }
}

/// A fail-closed problem: refused, or only a warning under `--allow-network`.
pub fn refuse_or_warn(inv: &Invocation, why: String) -> Result<(), Refused> {
    if inv.allow_network {
        warn(&report::allowed_anyway(&why));
        Ok(())
    } else {
        Err(Refused(report::refused(&why)))
    }
}
