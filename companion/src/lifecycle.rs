//! `cgsplit up` / `cgsplit down` / `cgsplit watch`: every configured game's
//! scope, the anchor that keeps `games.slice` alive, and a watcher that
//! recreates what vanished.
//!
//! The anchor is `cgsplit-anchor.scope` in `games.slice`, holding one keeper
//! process: systemd removes a slice's cgroup when its last unit goes, and a
//! flatpak `--filesystem` grant of a path that does not exist when Steam
//! starts is silently skipped (see [`crate::flatpak`]). Its name cannot clash
//! with a game's (`cgsplit-<number>.scope`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use cgsplit_config::Config;
use cgsplit_core::AppId;
use cgsplit_core::scope::{GAMES_SLICE, parse_scope_unit, scope_unit};
use zbus::zvariant::Value;

use crate::error::Error;
use crate::systemd::UserManager;
use crate::{NetdLink, Provisioned, Released, adopt, keeper, log};

/// Unit name of the scope that keeps `games.slice` alive.
pub const ANCHOR_UNIT: &str = "cgsplit-anchor.scope";

/// Glob matching every scope cgsplit creates (games and the anchor).
pub const SCOPES_GLOB: &str = "cgsplit-*.scope";

/// Makes sure the anchor scope is active (reset and recreated if failed or
/// gone). Returns whether it was created now.
pub fn ensure_anchor(mgr: &UserManager) -> Result<bool, Error> {
    match mgr.unit_state(ANCHOR_UNIT)? {
        Some(s) if s.active_state == "active" => return Ok(false),
        Some(s) if s.active_state == "failed" => mgr.reset_failed(ANCHOR_UNIT)?,
        _ => {}
    }
    let mut k = keeper::spawn()?;
    let props: Vec<(&str, Value<'_>)> = vec![
        (
            "Description",
            Value::from("cgsplit: keeps games.slice alive for flatpak grants"),
        ),
        ("PIDs", Value::from(vec![k.id()])),
        ("Slice", Value::from(GAMES_SLICE)),
        ("CollectMode", Value::from("inactive-or-failed")),
    ];
    match mgr.start_transient(ANCHOR_UNIT, &props, crate::START_TIMEOUT) {
        Ok(()) => Ok(true),
        // A concurrent `up` made it first: theirs is as good as ours.
        Err(Error::Call { ref name, .. }) if name == crate::systemd::UNIT_EXISTS => {
            keeper::kill(&mut k);
            Ok(false)
        }
        Err(e) => {
            keeper::kill(&mut k);
            Err(e)
        }
    }
}

/// The marker `cgsplit down` leaves in `$XDG_RUNTIME_DIR/cgsplit/` so a
/// running watcher does not bring the scopes back; `cgsplit up` removes it.
pub fn paused_marker() -> Option<PathBuf> {
    std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(&d).join("cgsplit").join("down"))
}

fn set_paused(paused: bool) {
    let Some(m) = paused_marker() else { return };
    if paused {
        let _ = std::fs::create_dir_all(m.parent().expect("has parent"));
        let _ = std::fs::write(&m, b"");
    } else {
        let _ = std::fs::remove_file(&m);
    }
}

fn is_paused() -> bool {
    paused_marker().is_some_and(|m| m.exists())
}

/// What `up` did for each part.
pub struct UpReport {
    /// Whether the anchor was created now (or why it failed).
    pub anchor: Result<bool, Error>,
    /// Each configured game, in app id order.
    pub games: Vec<(AppId, Result<Provisioned, Error>)>,
    /// The host directory of `games.slice`, when it could be found.
    pub slice_dir: Option<PathBuf>,
}

impl UpReport {
    /// Whether every part succeeded.
    pub fn ok(&self) -> bool {
        self.anchor.is_ok() && self.games.iter().all(|(_, r)| r.is_ok())
    }
}

/// Provisions the anchor and every game of `config`; one game's failure does
/// not stop the others (each result is reported).
pub fn up(mgr: &UserManager, config: &Config, mountinfo: &str, netd: &mut NetdLink) -> UpReport {
    set_paused(false);
    let anchor = ensure_anchor(mgr);
    if let Err(Error::NoUserManager { .. } | Error::NoSessionBus { .. }) = anchor {
        // Every game would fail the same way: report it once.
        return UpReport {
            anchor,
            games: Vec::new(),
            slice_dir: None,
        };
    }
    let slice_dir = slice_dir(mgr, mountinfo);
    let games = config
        .games()
        .iter()
        .map(|g| (g.app, crate::provision_with(mgr, g, mountinfo, netd)))
        .collect();
    UpReport {
        anchor,
        games,
        slice_dir,
    }
}

/// The host directory of `games.slice` (from the slice's `ControlGroup`).
pub fn slice_dir(mgr: &UserManager, mountinfo: &str) -> Option<PathBuf> {
    let s = mgr.unit_state(GAMES_SLICE).ok()??;
    let cg = mgr.slice_control_group(GAMES_SLICE, &s.path).ok()?;
    if cg.is_empty() {
        return None;
    }
    cgsplit_core::mountinfo::cgroup_dir(mountinfo, &cg)
}

/// One unit `down` stopped, with the outcome.
pub type Stopped = (String, Result<Released, Error>);

/// Stops every `cgsplit-*.scope` (games first, the anchor last), asking the
/// helper to lift network filters it set (best effort: the cgroup goes away
/// with the scope anyway). Also pauses a running watcher.
pub fn down(
    mgr: &UserManager,
    mountinfo: &str,
    netd: &mut NetdLink,
) -> Result<Vec<Stopped>, Error> {
    set_paused(true);
    let mut units = mgr.list_units(SCOPES_GLOB)?;
    units.sort_by_key(|u| u.name == ANCHOR_UNIT);
    let mut out = Vec::new();
    for u in units {
        if u.name != ANCHOR_UNIT && parse_scope_unit(&u.name).is_none() {
            continue;
        }
        if u.name != ANCHOR_UNIT
            && let Ok(cg) = mgr.control_group(&u.name, &u.path)
            && let Some(dir) = cgsplit_core::mountinfo::cgroup_dir(mountinfo, &cg)
            && crate::recorded_policy(&dir).is_some()
            && let Err(e) = netd.get().and_then(|n| n.release(&cg))
        {
            log::warn(&format!("{}: {e}", u.name));
        }
        let r = match mgr.stop(&u.name, crate::STOP_TIMEOUT) {
            Err(Error::Call { ref name, .. }) if name == crate::systemd::NO_SUCH_UNIT => {
                Ok(Released::NotLoaded)
            }
            Err(e) => Err(e),
            Ok(()) => Ok(Released::Stopped),
        };
        out.push((u.name, r));
    }
    Ok(out)
}

/// Something the watcher reacts to.
enum Event {
    /// A unit was removed (its name).
    Removed(String),
    /// A unit was loaded (its name): a new scope may hold a game to adopt.
    New(String),
    /// The signal stream ended (the bus went away).
    Closed,
}

/// How often the watcher re-checks on its own, as a safety net for a missed
/// signal and to notice a changed config file.
pub const WATCH_PERIOD: Duration = Duration::from_secs(5);

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Runs forever: on `UnitRemoved` of a configured game's scope or the anchor
/// (keeper killed, scope stopped by hand), provisions it again, with the
/// network policy confirmed before `game/` exists; at start and every
/// [`WATCH_PERIOD`] re-checks all of them and, when the config file changed,
/// reloads it and applies new limits with `SetUnitProperties`. Adopts game
/// processes that started outside their `game/` leaf ([`crate::adopt`]):
/// every [`WATCH_PERIOD`], and every [`adopt::HOT_POLL`] for
/// [`adopt::HOT_WINDOW`] after `UnitNew` of a scope that is not cgsplit's.
/// Does nothing while `cgsplit down` has paused it. Returns only when the
/// bus connection ends.
pub fn watch(mgr: &UserManager, config_path: &Path, mountinfo: &str) -> Result<(), Error> {
    let m = mgr.manager_proxy()?;
    mgr.subscribe("")?;
    let bus_err = |method: &'static str| {
        move |e| Error::Bus {
            method,
            unit: String::new(),
            source: Box::new(e),
        }
    };
    let removed = m.receive_unit_removed().map_err(bus_err("UnitRemoved"))?;
    let new = m.receive_unit_new().map_err(bus_err("UnitNew"))?;
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for sig in removed {
            if let Ok(a) = sig.args()
                && tx.send(Event::Removed(a.id.clone())).is_err()
            {
                return;
            }
        }
        let _ = tx.send(Event::Closed);
    });
    std::thread::spawn(move || {
        for sig in new {
            if let Ok(a) = sig.args()
                && tx2.send(Event::New(a.id.clone())).is_err()
            {
                return;
            }
        }
        let _ = tx2.send(Event::Closed);
    });
    let uid = nix::unistd::getuid().as_raw();
    let mut adopter = adopt::Adopter::default();
    let mut targets: BTreeMap<AppId, adopt::Target> = BTreeMap::new();
    let mut hot_until = Instant::now();
    let mut last_full: Option<Instant> = None;

    let mut netd = NetdLink::default();
    let mut config = load_or_keep(config_path, None);
    let mut seen = mtime(config_path);
    log::info(&format!(
        "watching {} game scope(s) from {}",
        config.games.len(),
        config_path.display()
    ));
    loop {
        let now = Instant::now();
        let full_in = last_full.map_or(Duration::ZERO, |t| {
            WATCH_PERIOD.saturating_sub(now.duration_since(t))
        });
        let wait = if hot_until > now {
            full_in.min(adopt::HOT_POLL)
        } else {
            full_in
        };
        let ev = if wait.is_zero() {
            Err(mpsc::RecvTimeoutError::Timeout)
        } else {
            rx.recv_timeout(wait)
        };
        if let Ok(Event::Closed) | Err(mpsc::RecvTimeoutError::Disconnected) = ev {
            return Err(Error::Bus {
                method: "UnitRemoved",
                unit: String::new(),
                source: Box::new(zbus::Error::InputOutput(
                    std::io::Error::new(std::io::ErrorKind::BrokenPipe, "bus closed").into(),
                )),
            });
        }
        reap_keepers();
        if is_paused() {
            continue;
        }
        if mtime(config_path) != seen {
            seen = mtime(config_path);
            config = load_or_keep(config_path, Some(config));
        }
        let apps: Vec<AppId> = match &ev {
            Ok(Event::Removed(id)) if id == ANCHOR_UNIT => Vec::new(),
            Ok(Event::Removed(id)) => match parse_scope_unit(id) {
                Some(app) if config.games.contains_key(&app) => {
                    targets.remove(&app);
                    vec![app]
                }
                _ => continue,
            },
            Ok(Event::New(id)) => {
                if id.ends_with(".scope") && !id.starts_with("cgsplit-") {
                    hot_until = Instant::now() + adopt::HOT_WINDOW;
                    adopt_pass(&mut adopter, uid, &targets);
                }
                continue;
            }
            _ if last_full.is_some_and(|t| t.elapsed() < WATCH_PERIOD) => {
                // A hot-window poll: adoption only.
                adopt_pass(&mut adopter, uid, &targets);
                continue;
            }
            _ => {
                last_full = Some(Instant::now());
                targets.retain(|a, _| config.games.contains_key(a));
                config.games.keys().copied().collect()
            }
        };
        if let Err(e) = ensure_anchor(mgr) {
            log::warn(&format!("{ANCHOR_UNIT}: {e}"));
        }
        for app in apps {
            let game = config.game(app);
            let p = crate::provision_with(mgr, &game, mountinfo, &mut netd);
            if let Ok(p) = &p {
                targets.insert(
                    app,
                    adopt::Target {
                        control_group: p.control_group.clone(),
                        dir: p.dir.clone(),
                        restricted: game.network.is_restricted(),
                    },
                );
            }
            match p {
                Ok(p) if p.outcome != crate::Outcome::Reused => {
                    log::info(&format!("{}: recreated at {}", p.unit, p.control_group))
                }
                Ok(p) if !p.updated.is_empty() => log::info(&format!(
                    "{}: limits changed: {}",
                    p.unit,
                    p.updated.join(", ")
                )),
                Ok(_) => {}
                Err(e) => log::warn(&format!("{}: {e}", scope_unit(app))),
            }
        }
        adopt_pass(&mut adopter, uid, &targets);
    }
}

/// One adoption scan of `/proc`, each outcome logged (adopted: info;
/// refused for a restricted policy: error; failed: warning).
fn adopt_pass(adopter: &mut adopt::Adopter, uid: u32, targets: &BTreeMap<AppId, adopt::Target>) {
    for a in adopter.pass(Path::new("/proc"), uid, targets) {
        let unit = match &a {
            adopt::Action::Adopted(s) | adopt::Action::Refused(s) | adopt::Action::Failed(s, _) => {
                scope_unit(s.app)
            }
        };
        let msg = adopt::describe(&a, &unit);
        match a {
            adopt::Action::Adopted(_) => log::info(&msg),
            adopt::Action::Refused(_) => log::error(&msg),
            adopt::Action::Failed(..) => log::warn(&msg),
        }
    }
}

/// Reaps keepers this watcher started that have since died (their scope was
/// stopped or they were killed), so they do not linger as zombies in a
/// long-running watcher. The watcher has no other children.
fn reap_keepers() {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    while let Ok(s) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if s == WaitStatus::StillAlive {
            break;
        }
    }
}

fn load_or_keep(path: &Path, old: Option<Config>) -> Config {
    match Config::load(path) {
        Ok(c) => {
            if old.is_some() {
                log::info(&format!("reloaded {}", path.display()));
            }
            c
        }
        Err(e) => {
            log::warn(&format!("{e}; keeping the previous settings"));
            old.unwrap_or_default()
        }
    }
}
