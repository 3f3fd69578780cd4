//! Which cgroup leaf to join, decided without touching the system: the
//! environment comes in as a getter, mountinfo as text.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use cgsplit_core::AppId;
use cgsplit_core::mountinfo::cgroup_dir;
use cgsplit_core::scope::{GAME_LEAF, game_cgroup, parse_scope_unit};

/// Environment variables Steam puts the app id in, in the order they are
/// trusted (Steam compatibility tool interface, "Environment"):
///
/// - `SteamAppId`: set only for the game itself;
/// - `STEAM_COMPAT_APP_ID`: also set for install scripts (`compat run`), `0`
///   for non-Steam shortcuts;
/// - `SteamGameId`: read by Proton; for non-Steam shortcuts it is a 64-bit
///   number that is no app id, so it does not parse as one and is skipped.
pub const APP_ID_VARS: [&str; 3] = ["SteamAppId", "STEAM_COMPAT_APP_ID", "SteamGameId"];

/// The leaf the shim joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The `game/` directory on disk, e.g.
    /// `/sys/fs/cgroup/unified/user.slice/…/games.slice/cgsplit-620.scope/game`.
    pub leaf: PathBuf,
    /// The game's app id, when known (for hints such as `cgsplit provision --app 620`).
    pub app: Option<AppId>,
}

impl Target {
    /// The scope directory: the leaf's parent (it carries the policy xattr).
    pub fn scope(&self) -> &Path {
        self.leaf.parent().unwrap_or(&self.leaf)
    }

    /// The `game/` leaf of a scope directory given with `--scope`. The app id
    /// is read off the directory name when it is `cgsplit-<appid>.scope`.
    pub fn in_scope(scope: &Path) -> Self {
        let app = scope
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(parse_scope_unit);
        Self {
            leaf: scope.join(GAME_LEAF),
            app,
        }
    }
}

/// No variable of [`APP_ID_VARS`] holds an app id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoAppId {
    /// The variables that were set, with their values, in [`APP_ID_VARS`] order.
    pub seen: Vec<(&'static str, OsString)>,
}

impl fmt::Display for NoAppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.seen.is_empty() {
            return write!(
                f,
                "no Steam app id: SteamAppId, STEAM_COMPAT_APP_ID and SteamGameId are unset \
                 (not started by Steam?); give the shim `--scope DIR`"
            );
        }
        let seen: Vec<String> = self
            .seen
            .iter()
            .map(|(k, v)| format!("{k}=`{}`", v.to_string_lossy()))
            .collect();
        write!(
            f,
            "no Steam app id in {}: a non-Steam shortcut has none; give the shim `--scope DIR`",
            seen.join(", ")
        )
    }
}

/// The app id from the first of [`APP_ID_VARS`] that parses as an [`AppId`]
/// (`0`, empty, negative, non-decimal and over-`u32` values are skipped).
pub fn app_id_from_env(get: impl Fn(&str) -> Option<OsString>) -> Result<AppId, NoAppId> {
    let mut seen = Vec::new();
    for var in APP_ID_VARS {
        let Some(value) = get(var) else { continue };
        if let Some(app) = value.to_str().and_then(|s| s.parse::<AppId>().ok()) {
            return Ok(app);
        }
        seen.push((var, value));
    }
    Err(NoAppId { seen })
}

/// No cgroup2 mount in mountinfo shows the cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotMounted {
    /// The wanted cgroup, e.g. `/user.slice/…/cgsplit-620.scope/game`.
    pub cgroup: String,
}

impl fmt::Display for NotMounted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no cgroup2 mount in /proc/self/mountinfo shows {}: inside flatpak the scope must be \
             granted (`flatpak override --user --filesystem=<scope dir> com.valvesoftware.Steam`), \
             elsewhere cgroup2 is not mounted",
            self.cgroup
        )
    }
}

/// The `game/` leaf of `app` for `uid` ([`game_cgroup`]), found on disk
/// through the cgroup2 mounts listed in `mountinfo` (text of `/proc/self/mountinfo`).
pub fn locate(uid: u32, app: AppId, mountinfo: &str) -> Result<Target, NotMounted> {
    let cgroup = game_cgroup(uid, app);
    match cgroup_dir(mountinfo, &cgroup) {
        Some(leaf) => Ok(Target {
            leaf,
            app: Some(app),
        }),
        None => Err(NotMounted { cgroup }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| OsString::from(v))
        }
    }

    fn app(n: u32) -> AppId {
        AppId::new(n).unwrap()
    }

    #[test]
    fn env_precedence() {
        let all = [
            ("SteamAppId", "620"),
            ("STEAM_COMPAT_APP_ID", "440"),
            ("SteamGameId", "570"),
        ];
        assert_eq!(app_id_from_env(env(&all)), Ok(app(620)));
        assert_eq!(app_id_from_env(env(&all[1..])), Ok(app(440)));
        assert_eq!(app_id_from_env(env(&all[2..])), Ok(app(570)));
        // Install scripts: no SteamAppId, STEAM_COMPAT_APP_ID set.
        assert_eq!(
            app_id_from_env(env(&[("STEAM_COMPAT_APP_ID", "205710")])),
            Ok(app(205710))
        );
    }

    #[test]
    fn unusable_values_are_skipped() {
        let e = [
            ("SteamAppId", ""),
            ("STEAM_COMPAT_APP_ID", "0"),
            ("SteamGameId", "620"),
        ];
        assert_eq!(app_id_from_env(env(&e)), Ok(app(620)));
        let e = [("SteamAppId", " 620"), ("STEAM_COMPAT_APP_ID", "440")];
        assert_eq!(app_id_from_env(env(&e)), Ok(app(440)));
    }

    #[test]
    fn non_steam_shortcut_has_no_app_id() {
        let e = [
            ("STEAM_COMPAT_APP_ID", "0"),
            ("SteamGameId", "13346791552837468160"),
        ];
        let err = app_id_from_env(env(&e)).unwrap_err();
        assert_eq!(
            err.seen,
            vec![
                ("STEAM_COMPAT_APP_ID", OsString::from("0")),
                ("SteamGameId", OsString::from("13346791552837468160")),
            ]
        );
        let msg = err.to_string();
        assert!(
            msg.starts_with(
                "no Steam app id in STEAM_COMPAT_APP_ID=`0`, SteamGameId=`13346791552837468160`"
            ),
            "{msg}"
        );
        assert!(msg.contains("--scope DIR"), "{msg}");

        let msg = app_id_from_env(env(&[])).unwrap_err().to_string();
        assert!(msg.contains("are unset (not started by Steam?)"), "{msg}");
    }

    #[test]
    fn locate_through_mountinfo() {
        let hybrid =
            "27 26 0:25 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw\n";
        let t = locate(0, app(620), hybrid).unwrap();
        assert_eq!(
            t.leaf,
            PathBuf::from(
                "/sys/fs/cgroup/unified/user.slice/user-0.slice/user@0.service/games.slice/cgsplit-620.scope/game"
            )
        );
        assert_eq!(t.app, Some(app(620)));

        let v1_only = "28 26 0:26 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        let err = locate(1000, app(620), v1_only).unwrap_err();
        assert_eq!(
            err.cgroup,
            "/user.slice/user-1000.slice/user@1000.service/games.slice/cgsplit-620.scope/game"
        );
        assert!(err.to_string().contains("--filesystem="), "{err}");
    }

    #[test]
    fn scope_dir_gives_the_game_leaf_and_maybe_the_app() {
        let t = Target::in_scope(Path::new("/c/games.slice/cgsplit-620.scope"));
        assert_eq!(
            t.leaf,
            PathBuf::from("/c/games.slice/cgsplit-620.scope/game")
        );
        assert_eq!(t.app, Some(app(620)));
        let t = Target::in_scope(Path::new("/tmp/scope/"));
        assert_eq!(t.leaf, PathBuf::from("/tmp/scope/game"));
        assert_eq!(t.app, None);
    }
}
