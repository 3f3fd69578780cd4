//! `cgsplit`: the host-side companion that gives Steam games their own
//! delegated systemd scopes in the user's manager.
//!
//! - [`provision`] (`cgsplit provision --app 620`) makes sure
//!   `games.slice/cgsplit-620.scope` exists and is active with the game's
//!   limits (from `cgsplit-config`), a keeper process in `keeper/` and — once
//!   a restricted network policy is attached by `cgsplit-netd` — an empty
//!   `game/` leaf; [`release`] stops it.
//! - [`lifecycle`]: `cgsplit up` / `down` / `watch` for every configured game,
//!   plus the anchor scope that keeps `games.slice` alive.
//! - [`adopt`]: the watcher's fallback that moves a game's processes started
//!   outside `game/` (flatpak portal subsandboxes, `systemd-run --scope`
//!   launch wrappers) into it — never for a restricted network policy.
//! - [`status`]: the per-game table and JSON.
//! - [`run`]: `cgsplit run -- steam …` in its own scope.
//! - [`flatpak`]: the `games.slice` grant to the Steam flatpak.
//!
//! Names and layout come from [`cgsplit_core::scope`]. The user manager's
//! D-Bus API is confined to [`systemd`], the helper's to [`netd`], cgroupfs
//! writes to [`cgroupfs`], log lines to [`log`].

pub mod adopt;
pub mod cgroupfs;
pub mod error;
pub mod flatpak;
pub mod keeper;
pub mod lifecycle;
pub mod log;
pub mod netd;
pub mod run;
pub mod status;
pub mod systemd;

use std::path::{Path, PathBuf};
use std::time::Duration;

use cgsplit_config::{GameConfig, UnitProperty};
use cgsplit_core::AppId;
use cgsplit_core::policy::POLICY_XATTR;
use cgsplit_core::scope::scope_unit;

pub use error::Error;
use systemd::{UNIT_EXISTS, UserManager};

/// How long `provision` waits for the start job's `JobRemoved`. Starting a
/// scope takes 2–4 ms on the test machines (TEST-ENVIRONMENT.md).
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long `release` waits for the stop job. Longer than systemd's default
/// `TimeoutStopSec=90s` (SIGTERM, then SIGKILL for processes that ignore it),
/// which the scope keeps.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(120);

/// What `provision` found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The scope was created now.
    Created,
    /// The scope was already active; only its leaves were checked.
    Reused,
    /// The scope was `failed`; it was reset and created again.
    RecreatedAfterFailure,
}

/// The result of a successful `provision`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    /// The unit, e.g. `cgsplit-620.scope`.
    pub unit: String,
    /// Its `ControlGroup`, e.g.
    /// `/user.slice/user-1000.slice/user@1000.service/games.slice/cgsplit-620.scope`.
    pub control_group: String,
    /// The scope directory on disk, e.g. `/sys/fs/cgroup/<control_group>`.
    pub dir: PathBuf,
    /// The keeper started now (`None` when the scope was reused).
    pub keeper_pid: Option<u32>,
    /// Whether the scope was created, reused or recreated.
    pub outcome: Outcome,
    /// When `control_group` differs from [`cgsplit_core::scope::scope_cgroup`]
    /// for our uid, the path the shim would derive (it must then be told
    /// otherwise): `Some(expected)`.
    pub layout_mismatch: Option<String>,
    /// Limit properties changed with `SetUnitProperties` on a reused scope.
    pub updated: Vec<String>,
}

/// The result of a successful `release`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Released {
    /// The scope was stopped (its processes were killed, its cgroup removed).
    Stopped,
    /// No such unit was loaded: there was nothing to release.
    NotLoaded,
}

/// What to do with an existing unit, decided from its `ActiveState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Not loaded, or loaded but `inactive`: create it.
    Create,
    /// `active` (or `reloading`): reuse it.
    Reuse,
    /// `failed`: `ResetFailedUnit`, then create.
    ResetThenCreate,
    /// `activating`/`deactivating`: refuse, it is changing state.
    Busy,
}

/// Decides what `provision` does with a unit in `active_state` (`None`: not loaded).
pub fn plan(active_state: Option<&str>) -> Plan {
    match active_state {
        None | Some("inactive") => Plan::Create,
        Some("active" | "reloading") => Plan::Reuse,
        Some("failed") => Plan::ResetThenCreate,
        Some(_) => Plan::Busy,
    }
}

/// Makes sure the scope of `game.app` exists, is active, has the limits of
/// `game` and its `keeper/` and `game/` leaves, connecting to the user manager
/// named by the environment (and, for a restricted network policy, to
/// `cgsplit-netd` on the system bus).
///
/// Idempotent: an active scope is reused (no second keeper) and its limits
/// are brought in line with `game` through `SetUnitProperties`. A `failed`
/// one is reset and created again; a vanished one is created again. On
/// creation a keeper (`<exe> keeper`, see [`keeper`]) is started, put in the
/// scope with `PIDs=`, then moved into `keeper/`.
///
/// Network (fail closed): for a restricted policy, `game/` is created only
/// after the helper confirmed `Restrict` — on first creation and on every
/// recreation. If the helper is missing or refuses, the error says so and
/// the game has no leaf (an empty stale `game/` is removed).
///
/// Errors: no bus / no user manager, D-Bus errors by name, a start job that
/// does not end in `done`, cgroupfs errors with their path, [`Error::Network`].
pub fn provision(game: &GameConfig) -> Result<Provisioned, Error> {
    let mgr = UserManager::connect()?;
    let mountinfo = read_mountinfo()?;
    provision_with(&mgr, game, &mountinfo, &mut NetdLink::default())
}

/// A lazily opened connection to `cgsplit-netd`: opened at the first game
/// whose policy needs it, so `up` without restricted games needs no system bus.
#[derive(Default)]
pub struct NetdLink(Option<netd::Netd>);

impl NetdLink {
    /// The connection, opening it on first use.
    pub fn get(&mut self) -> Result<&netd::Netd, netd::NetdError> {
        if self.0.is_none() {
            self.0 = Some(netd::Netd::connect()?);
        }
        Ok(self.0.as_ref().expect("just set"))
    }
}

/// [`provision`] against an existing connection and given mountinfo text.
pub fn provision_with(
    mgr: &UserManager,
    game: &GameConfig,
    mountinfo: &str,
    netd: &mut NetdLink,
) -> Result<Provisioned, Error> {
    let app = game.app;
    let unit = scope_unit(app);
    let limits = game.unit_properties();
    let mut outcome = Outcome::Created;
    // At most twice: a concurrent provision may create the unit between our
    // GetUnit and StartTransientUnit (UnitExists); then reuse what it made.
    for _ in 0..2 {
        let state = mgr.unit_state(&unit)?;
        match plan(state.as_ref().map(|s| s.active_state.as_str())) {
            Plan::Reuse => {
                let path = state.expect("Reuse implies a loaded unit").path;
                let updated = update_limits(mgr, &unit, &path, game)?;
                let mut p = finish(
                    mgr,
                    &unit,
                    &path,
                    mountinfo,
                    None,
                    Outcome::Reused,
                    game,
                    netd,
                )?;
                p.updated = updated;
                return Ok(p);
            }
            Plan::Busy => {
                let s = state.expect("Busy implies a loaded unit");
                return Err(Error::UnitBusy {
                    unit,
                    state: s.active_state,
                    sub_state: s.sub_state,
                });
            }
            Plan::ResetThenCreate => {
                mgr.reset_failed(&unit)?;
                if let Some(s) = mgr.unit_state(&unit)?
                    && s.active_state == "failed"
                {
                    return Err(Error::StuckFailed { unit });
                }
                outcome = Outcome::RecreatedAfterFailure;
            }
            Plan::Create => {}
        }

        let mut keeper = keeper::spawn()?;
        let pid = keeper.id();
        let props = systemd::scope_properties(app, pid, &limits);
        match mgr.start_transient(&unit, &props, START_TIMEOUT) {
            Ok(()) => {}
            Err(Error::Call { ref name, .. }) if name == UNIT_EXISTS => {
                keeper::kill(&mut keeper);
                continue;
            }
            Err(e) => {
                keeper::kill(&mut keeper);
                return Err(e);
            }
        }
        let path = match mgr.unit_state(&unit)? {
            Some(s) => s.path,
            None => {
                keeper::kill(&mut keeper);
                return Err(Error::JobFailed {
                    verb: "start",
                    unit,
                    job: String::new(),
                    result: "unit vanished right after its start job".into(),
                });
            }
        };
        // The keeper is not waited for: it must outlive this process.
        drop(keeper);
        return finish(mgr, &unit, &path, mountinfo, Some(pid), outcome, game, netd);
    }
    Err(Error::Call {
        method: "StartTransientUnit",
        unit,
        name: UNIT_EXISTS.into(),
        message: "the unit kept appearing and disappearing while provisioning".into(),
    })
}

/// The properties to set on a running scope so it matches `game`: every
/// configured limit whose current value differs, plus resets to systemd's
/// "no limit" for memory limits and CPU weight the config no longer sets.
/// Percentages (`…Scale`) are always sent: systemd stores them converted to
/// bytes of the host's memory, so they cannot be compared here.
pub fn limit_changes(game: &GameConfig, now: &systemd::ScopeFigures) -> Vec<UnitProperty> {
    use cgsplit_config::PropertyValue::U64;
    let want = game.unit_properties();
    let has = |name: &str| want.iter().any(|(k, _)| k.starts_with(name));
    let mut out = Vec::new();
    for (k, v) in &want {
        let cur = match k.as_str() {
            "MemoryHigh" => now.memory_high,
            "MemoryMax" => now.memory_max,
            "CPUWeight" => now.cpu_weight,
            "TasksMax" => now.tasks_max,
            _ => {
                out.push((k.clone(), *v));
                continue;
            }
        };
        if U64(cur.unwrap_or(u64::MAX)) != *v {
            out.push((k.clone(), *v));
        }
    }
    for (name, cur) in [
        ("MemoryHigh", now.memory_high),
        ("MemoryMax", now.memory_max),
        ("CPUWeight", now.cpu_weight),
    ] {
        if !has(name) && cur.is_some() {
            out.push((name.to_owned(), U64(u64::MAX)));
        }
    }
    out
}

fn update_limits(
    mgr: &UserManager,
    unit: &str,
    path: &zbus::zvariant::OwnedObjectPath,
    game: &GameConfig,
) -> Result<Vec<String>, Error> {
    let now = mgr.scope_figures(unit, path)?;
    let changes = limit_changes(game, &now);
    if !changes.is_empty() {
        mgr.set_properties(unit, &changes)?;
    }
    // Percentages are re-sent every time (see `limit_changes`), so they are
    // not reported as changes.
    Ok(changes
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| !k.ends_with("Scale"))
        .collect())
}

/// The policy the helper recorded on the scope directory (the
/// `user.cgsplit.policy` xattr), `None` when absent or unreadable.
pub fn recorded_policy(scope_dir: &Path) -> Option<String> {
    xattr::get(scope_dir, POLICY_XATTR)
        .ok()
        .flatten()
        .and_then(|v| String::from_utf8(v).ok())
}

#[allow(clippy::too_many_arguments)]
fn finish(
    mgr: &UserManager,
    unit: &str,
    path: &zbus::zvariant::OwnedObjectPath,
    mountinfo: &str,
    keeper_pid: Option<u32>,
    outcome: Outcome,
    game: &GameConfig,
    netd: &mut NetdLink,
) -> Result<Provisioned, Error> {
    let control_group = mgr.control_group(unit, path)?;
    if control_group.is_empty() {
        return Err(Error::NoControlGroup { unit: unit.into() });
    }
    let dir = cgsplit_core::mountinfo::cgroup_dir(mountinfo, &control_group).ok_or_else(|| {
        Error::CgroupNotMounted {
            unit: unit.into(),
            cgroup: control_group.clone(),
        }
    })?;
    let leaves = cgroupfs::ensure_keeper(&dir, keeper_pid)?;
    let want = game.network.to_string();
    let recorded = recorded_policy(&dir);
    if game.network.is_restricted() {
        // A new scope has no xattr, so every creation and recreation asks
        // the helper. On a reused scope the helper's xattr (set only after
        // it attached) saves a round trip; Restrict is idempotent anyway.
        if recorded.as_deref() != Some(want.as_str()) {
            let confirmed = netd.get().and_then(|n| n.restrict(&control_group, &want));
            if let Err(source) = confirmed {
                // Fail closed: no leaf for the shim to join. An empty stale
                // leaf from an earlier, unrestricted provision goes too.
                let _ = std::fs::remove_dir(&leaves.game);
                return Err(Error::Network {
                    unit: unit.into(),
                    policy: want,
                    leaf: leaves.game,
                    source: Box::new(source),
                });
            }
        }
    } else if recorded.is_some() {
        // The config went back to `full`: lift the filter (best effort; a
        // filter left behind is stricter, never looser).
        if let Err(e) = netd.get().and_then(|n| n.release(&control_group)) {
            log::warn(&format!("{unit}: network filter left in place: {e}"));
        }
    }
    cgroupfs::mkdir_leaf(&leaves.game)?;
    let expected = cgsplit_core::scope::scope_cgroup(nix::unistd::getuid().as_raw(), game.app);
    Ok(Provisioned {
        unit: unit.into(),
        layout_mismatch: (expected != control_group).then_some(expected),
        control_group,
        dir,
        keeper_pid,
        outcome,
        updated: Vec::new(),
    })
}

/// Stops the scope of `app` and waits for the stop job.
///
/// A unit that is not loaded is not an error: [`Released::NotLoaded`] (the
/// caller wanted it gone and it is). Errors: no bus / no user manager, D-Bus
/// errors by name, a stop job that does not end in `done`.
pub fn release(app: AppId) -> Result<Released, Error> {
    release_with(&UserManager::connect()?, app)
}

/// [`release`] against an existing connection.
pub fn release_with(mgr: &UserManager, app: AppId) -> Result<Released, Error> {
    let unit = scope_unit(app);
    if mgr.unit_state(&unit)?.is_none() {
        return Ok(Released::NotLoaded);
    }
    match mgr.stop(&unit, STOP_TIMEOUT) {
        // Garbage-collected between GetUnit and StopUnit.
        Err(Error::Call { ref name, .. }) if name == systemd::NO_SUCH_UNIT => {
            Ok(Released::NotLoaded)
        }
        Err(e) => Err(e),
        Ok(()) => Ok(Released::Stopped),
    }
}

/// `/proc/self/mountinfo`, where the cgroup2 mount is looked up.
pub const MOUNTINFO: &str = "/proc/self/mountinfo";

fn read_mountinfo() -> Result<String, Error> {
    std::fs::read_to_string(MOUNTINFO).map_err(|source| Error::Read {
        path: Path::new(MOUNTINFO).into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_follows_active_state() {
        assert_eq!(plan(None), Plan::Create);
        assert_eq!(plan(Some("inactive")), Plan::Create);
        assert_eq!(plan(Some("active")), Plan::Reuse);
        assert_eq!(plan(Some("reloading")), Plan::Reuse);
        assert_eq!(plan(Some("failed")), Plan::ResetThenCreate);
        assert_eq!(plan(Some("deactivating")), Plan::Busy);
        assert_eq!(plan(Some("activating")), Plan::Busy);
    }

    #[test]
    fn errors_are_one_line_and_name_what_failed() {
        let e = Error::Call {
            method: "StartTransientUnit",
            unit: "cgsplit-620.scope".into(),
            name: UNIT_EXISTS.into(),
            message: "Unit cgsplit-620.scope already exists.".into(),
        };
        let s = e.to_string();
        assert!(s.contains("org.freedesktop.systemd1.UnitExists"), "{s}");
        assert!(s.contains("cgsplit-620.scope"), "{s}");
        let e = Error::NoBusAddress.to_string();
        assert!(!e.contains('\n'));
        assert!(e.contains("systemctl --user"), "{e}");
        let e = Error::StuckFailed {
            unit: "cgsplit-1.scope".into(),
        };
        assert!(e.to_string().contains("reset-failed cgsplit-1.scope"));
    }
}
