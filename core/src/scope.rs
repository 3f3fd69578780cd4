//! The fixed cgroup layout and unit names.
//!
//! Every game gets one transient scope under one slice of the user's systemd
//! manager:
//!
//! ```text
//! <cgroup2 mount>/user.slice/user-<uid>.slice/user@<uid>.service/games.slice/cgsplit-<appid>.scope/
//!     keeper/   the keeper process that keeps the scope alive
//!     game/     where game processes go
//! ```
//!
//! The names are deterministic on purpose: a flatpak `--filesystem` grant must
//! name the path before Steam starts and stay valid across logins, and the shim
//! must derive it with no D-Bus. systemd names the cgroup of a unit after the
//! unit and nests slices by their `-` separated prefix (systemd.slice(5)), so
//! `games.slice` sits directly under `user@<uid>.service`.
//!
//! The scope has `Delegate=yes`; under cgroup v2's "no internal process" rule
//! (kernel `Documentation/admin-guide/cgroup-v2.rst`) processes of a delegated
//! scope that also has children must live in leaves, hence `keeper/` and `game/`.

use std::fmt;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Unit name of the slice every game scope lives in.
pub const GAMES_SLICE: &str = "games.slice";
/// Prefix of a game scope's unit name: `cgsplit-<appid>.scope`.
pub const SCOPE_PREFIX: &str = "cgsplit-";
/// Suffix of a scope's unit name.
pub const SCOPE_SUFFIX: &str = ".scope";
/// Leaf holding the keeper process (a scope with no pids is refused; an empty one stops).
pub const KEEPER_LEAF: &str = "keeper";
/// Leaf game processes are moved into.
pub const GAME_LEAF: &str = "game";

/// A Steam app id: the decimal number Steam puts in `SteamAppId`,
/// `STEAM_COMPAT_APP_ID` and `SteamGameId`, e.g. `620` for Portal 2.
///
/// Zero is refused: `STEAM_COMPAT_APP_ID=0` is what Steam sets for non-Steam
/// shortcuts (Steam compatibility tool interface, "Environment"), which have
/// no stable id to name a scope after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AppId(NonZeroU32);

impl AppId {
    /// Wraps a non-zero app id.
    pub fn new(id: u32) -> Option<Self> {
        NonZeroU32::new(id).map(Self)
    }

    /// The numeric id.
    pub fn get(self) -> u32 {
        self.0.get()
    }
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Why a string is not an app id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppIdError {
    /// The text that was given.
    pub input: String,
}

impl fmt::Display for AppIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not a Steam app id: expected a decimal number from 1 to 4294967295 (e.g. 620)",
            self.input
        )
    }
}

impl std::error::Error for AppIdError {}

impl FromStr for AppId {
    type Err = AppIdError;

    /// Parses plain ASCII decimal digits only (no sign, no spaces, no leading zeros
    /// except none at all), so one app id has exactly one spelling and one scope name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || AppIdError {
            input: s.to_owned(),
        };
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.starts_with('0') {
            return Err(err());
        }
        s.parse::<u32>().ok().and_then(AppId::new).ok_or_else(err)
    }
}

/// Unit name of the scope of `app`: `cgsplit-620.scope`.
pub fn scope_unit(app: AppId) -> String {
    format!("{SCOPE_PREFIX}{app}{SCOPE_SUFFIX}")
}

/// The app id of a scope unit name made by [`scope_unit`], or `None`.
pub fn parse_scope_unit(unit: &str) -> Option<AppId> {
    unit.strip_prefix(SCOPE_PREFIX)?
        .strip_suffix(SCOPE_SUFFIX)?
        .parse()
        .ok()
}

/// Cgroup path (as systemd's `ControlGroup` property spells it, relative to
/// the cgroup2 root) of the user manager of `uid`:
/// `/user.slice/user-1000.slice/user@1000.service`.
pub fn user_manager_cgroup(uid: u32) -> String {
    format!("/user.slice/user-{uid}.slice/user@{uid}.service")
}

/// Cgroup path of `games.slice` in the user manager of `uid`.
pub fn slice_cgroup(uid: u32) -> String {
    format!("{}/{GAMES_SLICE}", user_manager_cgroup(uid))
}

/// Cgroup path of the scope of `app` for `uid`.
pub fn scope_cgroup(uid: u32, app: AppId) -> String {
    format!("{}/{}", slice_cgroup(uid), scope_unit(app))
}

/// Cgroup path of the `game/` leaf of `app` for `uid`: what the shim joins.
pub fn game_cgroup(uid: u32, app: AppId) -> String {
    format!("{}/{GAME_LEAF}", scope_cgroup(uid, app))
}

/// Cgroup path of the `keeper/` leaf of `app` for `uid`.
pub fn keeper_cgroup(uid: u32, app: AppId) -> String {
    format!("{}/{KEEPER_LEAF}", scope_cgroup(uid, app))
}

/// A cgroup path parsed back into the layout: which user and which game it
/// belongs to, and which leaf (if any) below the scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopePath {
    /// The uid whose user manager owns the scope.
    pub uid: u32,
    /// The game.
    pub app: AppId,
    /// What follows the scope directory: `""` for the scope itself, `"game"`,
    /// `"keeper"`, or deeper (`"game/sub"`).
    pub rest: String,
}

/// Parses a cgroup path such as a line of `/proc/<pid>/cgroup` (`0::/user.slice/…`
/// without the `0::`) or a `ControlGroup` property back into the layout.
/// Returns `None` for anything outside it.
pub fn parse_scope_cgroup(path: &str) -> Option<ScopePath> {
    let mut parts = path.trim_start_matches('/').split('/');
    if parts.next()? != "user.slice" {
        return None;
    }
    let uid: u32 = parts
        .next()?
        .strip_prefix("user-")?
        .strip_suffix(".slice")?
        .parse()
        .ok()?;
    let service = parts.next()?;
    if service != format!("user@{uid}.service") || parts.next()? != GAMES_SLICE {
        return None;
    }
    let app = parse_scope_unit(parts.next()?)?;
    let rest = parts.collect::<Vec<_>>().join("/");
    Some(ScopePath { uid, app, rest })
}

/// Joins a cgroup path (absolute in the cgroup hierarchy, e.g. `/user.slice/…`)
/// under a directory on disk, e.g. the cgroup2 mount point.
///
/// Unlike `Path::join`, an absolute `cgroup` does not throw `dir` away.
pub fn join_cgroup(dir: &Path, cgroup: &str) -> PathBuf {
    let rel = cgroup.trim_start_matches('/');
    if rel.is_empty() {
        dir.to_path_buf()
    } else {
        dir.join(rel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(n: u32) -> AppId {
        AppId::new(n).unwrap()
    }

    #[test]
    fn app_id_parses_only_canonical_decimal() {
        assert_eq!("620".parse::<AppId>().unwrap().get(), 620);
        assert_eq!("4294967295".parse::<AppId>().unwrap().get(), u32::MAX);
        for bad in [
            "",
            "0",
            "0620",
            "-1",
            "+620",
            " 620",
            "62a",
            "4294967296",
            "６２０",
        ] {
            let err = bad.parse::<AppId>().unwrap_err();
            assert_eq!(err.input, bad);
            assert!(err.to_string().contains("not a Steam app id"), "{err}");
        }
    }

    #[test]
    fn names_follow_the_layout() {
        assert_eq!(scope_unit(app(620)), "cgsplit-620.scope");
        assert_eq!(
            scope_cgroup(1000, app(620)),
            "/user.slice/user-1000.slice/user@1000.service/games.slice/cgsplit-620.scope"
        );
        assert_eq!(
            game_cgroup(1000, app(620)),
            "/user.slice/user-1000.slice/user@1000.service/games.slice/cgsplit-620.scope/game"
        );
        assert_eq!(
            keeper_cgroup(61234, app(1)),
            "/user.slice/user-61234.slice/user@61234.service/games.slice/cgsplit-1.scope/keeper"
        );
    }

    #[test]
    fn scope_unit_round_trips() {
        for n in [1, 620, 1_628_350, u32::MAX] {
            assert_eq!(parse_scope_unit(&scope_unit(app(n))), Some(app(n)));
        }
        for bad in [
            "cgsplit-0.scope",
            "cgsplit-620.service",
            "app-620.scope",
            "cgsplit-.scope",
            "cgsplit-06.scope",
        ] {
            assert_eq!(parse_scope_unit(bad), None, "{bad}");
        }
    }

    #[test]
    fn scope_cgroup_parses_back() {
        let p = parse_scope_cgroup(&game_cgroup(1000, app(620))).unwrap();
        assert_eq!(
            p,
            ScopePath {
                uid: 1000,
                app: app(620),
                rest: "game".into()
            }
        );
        let p = parse_scope_cgroup(&scope_cgroup(7, app(9))).unwrap();
        assert_eq!(p.rest, "");
        let deep = format!("{}/sub/x", game_cgroup(5, app(3)));
        assert_eq!(parse_scope_cgroup(&deep).unwrap().rest, "game/sub/x");
        for bad in [
            "/",
            "/user.slice/user-1000.slice/user@1001.service/games.slice/cgsplit-620.scope",
            "/user.slice/user-1000.slice/user@1000.service/app.slice/cgsplit-620.scope",
            "/user.slice/user-1000.slice/user@1000.service/games.slice/other.scope",
            "/system.slice/games.slice/cgsplit-620.scope",
        ] {
            assert_eq!(parse_scope_cgroup(bad), None, "{bad}");
        }
    }

    #[test]
    fn join_cgroup_keeps_the_mount() {
        let m = Path::new("/sys/fs/cgroup/unified");
        assert_eq!(
            join_cgroup(m, "/user.slice/a"),
            PathBuf::from("/sys/fs/cgroup/unified/user.slice/a")
        );
        assert_eq!(join_cgroup(m, "/"), m.to_path_buf());
    }
}
