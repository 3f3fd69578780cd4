//! Host-side adoption (issue 7, item 4): the fallback for game processes
//! that start outside their scope's `game/` leaf.
//!
//! In flatpak Steam, pressure-vessel relaunches a Steam Linux Runtime game
//! through the flatpak portal's `Spawn`; flatpak puts that subsandbox in a new
//! `app-flatpak-<app>-<n>.scope` (SYSTEM.md §6), which is not a descendant of
//! anything that joined `game/`. On native Steam, `STEAM_LAUNCH_WRAPPER_SCOPE=1`
//! and `PRESSURE_VESSEL_SYSTEMD_SCOPE=1` do the same through `systemd-run
//! --user --scope` (a new `run-*.scope` or `app-*.scope`). When no shim ran
//! innermost, the game then runs without its limits.
//!
//! The watcher finds such processes ([`strays`]): processes of the user's
//! uid, inside the user manager's cgroup tree (`…/user@<uid>.service/`) but
//! outside `games.slice`, whose app id is that of a configured game. The app
//! id comes from the process's environment (`SteamAppId=N`, else
//! `STEAM_COMPAT_APP_ID=N`, both set by Steam for everything it launches —
//! Steam compatibility tool interface), read from `/proc/<pid>/environ` where
//! readable, else from a command-line word `AppId=N` (Steam's `reaper
//! SteamLaunch AppId=N --`). That includes launch helpers in Steam's own
//! scope (the reaper, pressure-vessel's wrapper), which carry the same id;
//! the Steam client has none. Each is moved by writing its host pid to the
//! game's `game/cgroup.procs` ([`crate::cgroupfs::move_pid`]); both cgroups
//! are in the user's delegated `user@<uid>.service` subtree, so the kernel
//! allows it (cgroup-v2.rst "Delegation Containment").
//!
//! **Network.** Adoption happens after the process started: sockets it
//! opened before are not filtered, so moving it never satisfies a restricted
//! policy (`network = localhost` or an allow-list). For such a game a stray
//! is *not* adopted: it is reported once per cgroup as an error naming the
//! pid, its cgroup and the fix (run the shim innermost, as the compatibility tool, so
//! the game joins `game/` and the shim checks the filter before the game
//! starts). The companion does not kill it either: the container helpers
//! around a correctly placed game (pressure-vessel's adverb, the launch
//! wrapper, `flatpak-spawn`) carry the same app id outside `game/`, and
//! killing them would end a game that is filtered. A game that escaped its
//! restricted leaf is therefore visible in the journal, not silently moved
//! into a filter it already bypassed.
//!
//! **When.** On `UnitNew` of any scope that is not cgsplit's (the subsandbox
//! or launch-wrapper scope appears before its game runs), the watcher scans
//! every [`HOT_POLL`] for [`HOT_WINDOW`]; otherwise every
//! [`crate::lifecycle::WATCH_PERIOD`]. The kernel gives no event for a fork
//! into an existing cgroup (`cgroup.events` reports only populated
//! transitions), so a bounded poll after the signal is the cheapest reliable
//! trigger.

use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cgsplit_core::AppId;
use cgsplit_core::scope::GAMES_SLICE;

use crate::cgroupfs;

/// How often the watcher scans while [`HOT_WINDOW`] runs after a new scope.
pub const HOT_POLL: Duration = Duration::from_millis(100);

/// How long after `UnitNew` of a foreign scope the watcher scans every
/// [`HOT_POLL`]: the portal's `flatpak run` creates the scope first and
/// starts the game 0.1–0.3 s later on the test machines.
pub const HOT_WINDOW: Duration = Duration::from_secs(3);

/// Environment variables Steam sets to the app id for everything a launch
/// starts (Steam compatibility tool interface; STEAM.md §2), in the order
/// they are trusted.
pub const ENV_KEYS: [&str; 2] = ["SteamAppId", "STEAM_COMPAT_APP_ID"];

/// Where a stray's app id was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// `/proc/<pid>/environ`, this variable.
    Environ(&'static str),
    /// `/proc/<pid>/cmdline`, a word `AppId=N` (the environment was unreadable).
    Cmdline,
}

/// A process of a configured game found outside `games.slice`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stray {
    /// Its pid as the companion sees it (the host pid).
    pub pid: u32,
    /// The game it belongs to.
    pub app: AppId,
    /// Its cgroup, e.g. `/user.slice/…/app.slice/app-flatpak-com.valvesoftware.Steam-89.scope`.
    pub cgroup: String,
    /// Its executable name (`/proc/<pid>/comm`), for messages.
    pub comm: String,
    /// Where the app id came from.
    pub marker: Marker,
}

/// The app id in a `/proc/<pid>/environ` image (NUL-separated `KEY=VALUE`):
/// the first of [`ENV_KEYS`] present with a valid app id, with its key.
pub fn app_from_environ(environ: &[u8]) -> Option<(AppId, &'static str)> {
    ENV_KEYS.iter().find_map(|key| {
        environ.split(|b| *b == 0).find_map(|kv| {
            let v = kv.strip_prefix(key.as_bytes())?.strip_prefix(b"=")?;
            let app = std::str::from_utf8(v).ok()?.parse().ok()?;
            Some((app, *key))
        })
    })
}

/// The app id in a `/proc/<pid>/cmdline` image (NUL-separated words): a
/// whole word `AppId=N`, as in `reaper SteamLaunch AppId=620 -- …`.
pub fn app_from_cmdline(cmdline: &[u8]) -> Option<AppId> {
    cmdline.split(|b| *b == 0).find_map(|w| {
        let v = w.strip_prefix(b"AppId=")?;
        std::str::from_utf8(v).ok()?.parse().ok()
    })
}

/// The cgroup v2 path in a `/proc/<pid>/cgroup` image (the `0::` line).
pub fn unified_cgroup(text: &str) -> Option<&str> {
    text.lines().find_map(|l| l.strip_prefix("0::"))
}

/// The user manager's cgroup (`…/user@<uid>.service`) of a game scope's
/// `ControlGroup` (`…/user@<uid>.service/games.slice/cgsplit-N.scope`).
pub fn manager_root(scope_cgroup: &str) -> Option<&str> {
    let i = scope_cgroup.find(&format!("/{GAMES_SLICE}/"))?;
    Some(&scope_cgroup[..i])
}

/// Whether a stray in `cgroup` is one to look at: inside `manager_root`
/// (moves from elsewhere fail with EACCES), not in `games.slice` (another
/// game's scope, or ours).
pub fn in_scope_of_adoption(cgroup: &str, manager_root: &str) -> bool {
    let Some(rest) = cgroup.strip_prefix(manager_root) else {
        return false;
    };
    rest.starts_with('/')
        && !rest.starts_with(&format!("/{GAMES_SLICE}/"))
        && rest != "/games.slice"
}

/// Every process under `proc_root` (normally `/proc`) owned by `uid`, in a
/// cgroup [`in_scope_of_adoption`] for `manager_root`, whose app id is one
/// of `apps`. Processes that vanish while read are skipped; the caller's own
/// pid is never returned.
pub fn strays(proc_root: &Path, manager_root: &str, uid: u32, apps: &[AppId]) -> Vec<Stray> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let p = e.path();
        if std::fs::metadata(&p).map(|m| m.uid()).ok() != Some(uid) {
            continue;
        }
        let Ok(cg) = std::fs::read_to_string(p.join("cgroup")) else {
            continue;
        };
        let Some(cg) = unified_cgroup(&cg) else {
            continue;
        };
        if !in_scope_of_adoption(cg, manager_root) {
            continue;
        }
        let found = match std::fs::read(p.join("environ")) {
            Ok(env) => app_from_environ(&env).map(|(a, k)| (a, Marker::Environ(k))),
            Err(_) => std::fs::read(p.join("cmdline"))
                .ok()
                .and_then(|c| app_from_cmdline(&c))
                .map(|a| (a, Marker::Cmdline)),
        };
        let Some((app, marker)) = found else { continue };
        if !apps.contains(&app) {
            continue;
        }
        let comm = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
        out.push(Stray {
            pid,
            app,
            cgroup: cg.to_owned(),
            comm: comm.trim_end().to_owned(),
            marker,
        });
    }
    out
}

/// A configured game as the adopter sees it.
#[derive(Debug, Clone)]
pub struct Target {
    /// The scope's `ControlGroup`.
    pub control_group: String,
    /// The scope's directory on disk (its `game/` leaf is the destination).
    pub dir: PathBuf,
    /// Whether its network policy is restricted: then strays are refused.
    pub restricted: bool,
}

/// What one [`Adopter::pass`] did with one stray.
#[derive(Debug)]
pub enum Action {
    /// Moved into `game/`.
    Adopted(Stray),
    /// Not moved: the game's network policy is restricted (reported once
    /// per game and cgroup).
    Refused(Stray),
    /// The move failed (EACCES, ESRCH, …): the error.
    Failed(Stray, cgroupfs::CgroupfsError),
}

/// Adoption state kept by the watcher across passes: which refusals were
/// already reported.
#[derive(Debug, Default)]
pub struct Adopter {
    /// (game, cgroup) pairs whose strays were refused and reported; kept
    /// while that cgroup still holds a stray, so a refused game's children
    /// (each a new pid) do not repeat the message.
    refused: HashSet<(AppId, String)>,
}

impl Adopter {
    /// Scans `proc_root` for strays of `targets` (all scopes of one user
    /// manager) and adopts or refuses each. Returns what it did; a refusal
    /// is returned once per game and cgroup (for its first stray by pid),
    /// again only after that cgroup held no stray for a pass.
    pub fn pass(
        &mut self,
        proc_root: &Path,
        uid: u32,
        targets: &BTreeMap<AppId, Target>,
    ) -> Vec<Action> {
        let Some(root) = targets
            .values()
            .find_map(|t| manager_root(&t.control_group))
        else {
            return Vec::new();
        };
        let apps: Vec<AppId> = targets.keys().copied().collect();
        let mut found = strays(proc_root, root, uid, &apps);
        found.sort_by_key(|s| s.pid);
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for s in found {
            let t = &targets[&s.app];
            if t.restricted {
                let key = (s.app, s.cgroup.clone());
                if self.refused.insert(key.clone()) {
                    out.push(Action::Refused(s));
                }
                seen.insert(key);
                continue;
            }
            let leaf = t.dir.join(cgsplit_core::scope::GAME_LEAF);
            match cgroupfs::move_pid(&leaf, s.pid) {
                Ok(()) => out.push(Action::Adopted(s)),
                // Exited between the scan and the move: nothing to adopt.
                Err(e) if e.source.raw_os_error() == Some(nix::libc::ESRCH) => {}
                Err(e) => out.push(Action::Failed(s, e)),
            }
        }
        self.refused.retain(|k| seen.contains(k));
        out
    }
}

/// The one-line journal message for `a`, naming the scope unit `unit`.
pub fn describe(a: &Action, unit: &str) -> String {
    let what = |s: &Stray| {
        let from = match s.marker {
            Marker::Environ(k) => format!("{k}={}", s.app),
            Marker::Cmdline => format!("AppId={} in its command line", s.app),
        };
        format!("pid {} ({}) in {} ({from})", s.pid, s.comm, s.cgroup)
    };
    match a {
        Action::Adopted(s) => format!("{unit}: adopted {} into game/", what(s)),
        Action::Refused(s) => format!(
            "{unit}: not adopting {} nor other processes of the game there: it started outside game/, so its network was not \
             filtered from the start and moving it cannot enforce the restricted network \
             policy; run the game through the cgsplit compatibility tool (the shim joins \
             game/ inside the container before the game starts)",
            what(s)
        ),
        Action::Failed(s, e) => format!("{unit}: cannot adopt {}: {e}", what(s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(n: u32) -> AppId {
        AppId::new(n).unwrap()
    }

    #[test]
    fn app_id_from_environ_prefers_steam_app_id() {
        let env = b"PATH=/usr/bin\0STEAM_COMPAT_APP_ID=440\0SteamAppId=620\0";
        assert_eq!(app_from_environ(env), Some((app(620), "SteamAppId")));
        let env = b"STEAM_COMPAT_APP_ID=440\0HOME=/x\0";
        assert_eq!(
            app_from_environ(env),
            Some((app(440), "STEAM_COMPAT_APP_ID"))
        );
        // Not a prefix match on the key; 0 and non-numbers are no app id.
        assert_eq!(app_from_environ(b"XSteamAppId=620\0SteamAppIdX=1\0"), None);
        assert_eq!(app_from_environ(b"SteamAppId=0\0"), None);
        assert_eq!(app_from_environ(b"SteamAppId=\0SteamAppId=abc"), None);
        // An invalid first value does not hide a valid later key.
        assert_eq!(
            app_from_environ(b"SteamAppId=x\0STEAM_COMPAT_APP_ID=7\0"),
            Some((app(7), "STEAM_COMPAT_APP_ID"))
        );
    }

    #[test]
    fn app_id_from_reaper_cmdline() {
        let c =
            b"/home/u/.steam/root/ubuntu12_32/reaper\0SteamLaunch\0AppId=1091500\0--\0/x/game\0";
        assert_eq!(app_from_cmdline(c), Some(app(1091500)));
        assert_eq!(app_from_cmdline(b"game\0--env=SteamAppId=620\0"), None);
        assert_eq!(app_from_cmdline(b"game\0AppId=\0"), None);
    }

    #[test]
    fn only_the_user_tree_outside_games_slice_is_scanned() {
        let scope = "/user.slice/user-1000.slice/user@1000.service/games.slice/cgsplit-620.scope";
        let root = manager_root(scope).unwrap();
        assert_eq!(root, "/user.slice/user-1000.slice/user@1000.service");
        let yes = [
            "/user.slice/user-1000.slice/user@1000.service/app.slice/app-flatpak-com.valvesoftware.Steam-89.scope",
            "/user.slice/user-1000.slice/user@1000.service/app.slice/run-u12.scope",
        ];
        let no = [
            "/user.slice/user-1000.slice/user@1000.service/games.slice/cgsplit-620.scope/game",
            "/user.slice/user-1000.slice/user@1000.service/games.slice/cgsplit-440.scope/game",
            "/user.slice/user-1000.slice/user@10000.service/app.slice/x.scope",
            "/user.slice/user-1000.slice/session-2.scope",
            "/user.slice/user-1000.slice/user@1000.service",
        ];
        for c in yes {
            assert!(in_scope_of_adoption(c, root), "{c}");
        }
        for c in no {
            assert!(!in_scope_of_adoption(c, root), "{c}");
        }
        assert_eq!(manager_root("/app.slice/x.scope"), None);
    }

    #[test]
    fn unified_line_is_found_in_hybrid_proc_cgroup() {
        let t = "12:pids:/user.slice\n1:name=systemd:/user.slice/x\n0::/user.slice/y.scope\n";
        assert_eq!(unified_cgroup(t), Some("/user.slice/y.scope"));
        assert_eq!(unified_cgroup("1:name=systemd:/\n"), None);
    }
}
