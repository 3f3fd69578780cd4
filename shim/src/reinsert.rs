//! Innermost placement in the launch-option form (issue 7 item 2): a second
//! shim after the innermost wrapper of Steam's that relaunches the game.
//!
//! In launch options the shim runs before `%command%`, and `%command%` starts
//! with Steam's own wrappers ([`cgsplit_core::chain`], STEAM.md §2). Two of
//! them can take the game out of the process tree of whoever joined
//! `game/`: a Steam Linux Runtime entry point (pressure-vessel's container;
//! in flatpak Steam a portal `Spawn` into a new `app-flatpak-…` scope, on
//! native Steam a new systemd scope with `PRESSURE_VESSEL_SYSTEMD_SCOPE=1`),
//! and `steam-launch-wrapper` with `STEAM_LAUNCH_WRAPPER_SCOPE=1` (a new
//! systemd scope). So the outer shim joins `game/` first, as always, and
//! runs the command with itself inserted right after the innermost such
//! wrapper's `--`:
//!
//! ```text
//! outer:  cgsplit-shim [OPTIONS] -- reaper SteamLaunch AppId=N -- …/_v2-entry-point --verb=waitforexitandrun -- …/proton waitforexitandrun game.exe
//! runs:   reaper SteamLaunch AppId=N -- …/_v2-entry-point --verb=waitforexitandrun -- cgsplit-shim [FORWARDED] --inner -- …/proton waitforexitandrun game.exe
//! ```
//!
//! The inner instance joins only when it is not in `game/` already
//! ([`crate::gate::already_in`]). Forwarded: `--scope` and `--app` (the
//! outer's resolved app id, so a container that drops Steam's variables does
//! not lose it), `--network` and `--allow-network` (the inner one proves the
//! filter again, from where the game really runs). Not forwarded:
//! `--kill-steam` — only the outer instance may ask Steam to quit, after
//! `game/` is empty and no process carries the app id.
//!
//! # The inserted path
//!
//! The inner shim must be reachable inside the container. It is the path the
//! outer shim was started with (`argv[0]`), when that is absolute; only a
//! relative `argv[0]` (found through `PATH`, or `./cgsplit-shim`) is replaced
//! by `/proc/self/exe`, which names the file with every symlink resolved.
//! This assumes that the container shows that path at the same place:
//! pressure-vessel shares the Steam installation and, unless told to give
//! the game a private home, the home directory with the container, and
//! `cgsplit-install` puts the shim under the Steam root
//! (`compatibilitytools.d/cgsplit/cgsplit-shim`); in flatpak Steam the
//! portal's subsandbox is the same app with the same filesystem view. That
//! is an assumption checked here only against stand-ins (bwrap with `/`
//! shared read-only), not against a real pressure-vessel. A shim kept
//! elsewhere (e.g. `/usr/local/bin`) may not be visible in a Steam Linux
//! Runtime container; then the entry point cannot start it, says so in
//! its own words, and the game does not start: use the installer's copy.
//!
//! # Shapes the shim does not follow
//!
//! A recognised wrapper with no `--` after it ([`Chain::unterminated`]) or a
//! relaunching wrapper behind another program ([`Chain::stray`], e.g.
//! `gamemoderun` written between the shim and `%command%`): the shim stays
//! outermost and says so in one line. In the compatibility-tool form there
//! is nothing to re-insert: a required tool (the runtime) is the outer one,
//! so the shim already runs inside the container.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use cgsplit_core::AppId;
use cgsplit_core::chain::{self, Chain, Wrapper};

use crate::args::Invocation;

/// The marker option of the re-inserted instance.
pub const INNER: &str = "--inner";

/// What the outer shim does with the command it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// No wrapper of Steam's that relaunches: run the command as it is.
    Keep,
    /// Insert the inner shim at this argv index of the command (right after
    /// the `--` of `wrapper`, the innermost one that relaunches).
    Insert {
        /// Index in the command where the inner shim's words go.
        at: usize,
        /// The wrapper whose `--` it follows.
        wrapper: Wrapper,
        /// A relaunching wrapper found further in, not at a command
        /// position ([`Chain::stray`]): the inner shim runs before it.
        stray: Option<usize>,
    },
    /// A shape the shim does not follow: stay outermost; the text says why.
    Unknown(String),
    /// cgsplit already runs right after the innermost relaunching wrapper
    /// (its compatibility tool's shim or Proton launcher, [`CGSPLIT_PROGRAMS`]):
    /// nothing to insert.
    AlreadyInside,
}

/// File names of cgsplit's own programs that join `game/` when they run:
/// the shim, and the launcher of the installer's "cgsplit + Proton" entries
/// (`cgsplit-install`'s `compat_tool::CHAIN`), which runs the shim.
pub const CGSPLIT_PROGRAMS: [&str; 2] = [cgsplit_core::launch::SHIM_NAME, "cgsplit-chain"];

/// The plan for `command` (the launch-option form's command, program first).
/// Non-UTF-8 words are matched lossily; only program names and `--` matter.
pub fn plan(command: &[OsString]) -> Plan {
    let words: Vec<std::borrow::Cow<'_, str>> =
        command.iter().map(|w| w.to_string_lossy()).collect();
    let c: Chain = chain::parse(&words);
    if let Some(i) = c.unterminated {
        return Plan::Unknown(format!(
            "`{}` (word {i} of the command) has no `--` after it, a launch command shape \
             cgsplit does not know",
            words[i]
        ));
    }
    match (c.insert_at, c.stray) {
        (Some(at), None)
            if words
                .get(at)
                .is_some_and(|w| CGSPLIT_PROGRAMS.contains(&w.rsplit('/').next().unwrap_or(w))) =>
        {
            Plan::AlreadyInside
        }
        (Some(at), stray) => {
            let wrapper = c
                .wrappers
                .iter()
                .rev()
                .find(|(w, _)| w.relaunches())
                .map_or(Wrapper::RuntimeEntryPoint, |(w, _)| *w);
            Plan::Insert { at, wrapper, stray }
        }
        (None, Some(i)) => Plan::Unknown(format!(
            "`{}` (word {i} of the command) is not right after the shim's `--` or after another \
             wrapper of Steam's (is a program such as gamemoderun written between the shim and \
             %command%?)",
            words[i]
        )),
        (None, None) => Plan::Keep,
    }
}

/// The path of the shim to insert: `argv0` when absolute, else what `exe`
/// (reading `/proc/self/exe`) gives.
pub fn shim_path(
    argv0: Option<&OsStr>,
    exe: impl FnOnce() -> std::io::Result<PathBuf>,
) -> Result<OsString, String> {
    match argv0 {
        Some(a) if a.as_encoded_bytes().starts_with(b"/") => Ok(a.to_owned()),
        _ => exe()
            .map(PathBuf::into_os_string)
            .map_err(|e| format!("cannot read /proc/self/exe ({e}) for the relative argv[0]")),
    }
}

/// The inner instance's words: `shim [FORWARDED] --inner --` (see the module docs).
pub fn inner_words(shim: &OsStr, inv: &Invocation, app: Option<AppId>) -> Vec<OsString> {
    let mut w = vec![shim.to_owned()];
    if let Some(scope) = &inv.scope {
        w.push("--scope".into());
        w.push(scope.clone().into_os_string());
    }
    if let Some(app) = inv.app.or(app) {
        w.push("--app".into());
        w.push(app.to_string().into());
    }
    if let Some(policy) = &inv.network {
        w.push("--network".into());
        w.push(policy.to_string().into());
    }
    if inv.allow_network {
        w.push("--allow-network".into());
    }
    w.push(INNER.into());
    w.push("--".into());
    w
}

/// `command` with `words` inserted at index `at` (every other word kept, byte for byte).
pub fn insert(command: &[OsString], at: usize, words: Vec<OsString>) -> Vec<OsString> {
    let mut out = Vec::with_capacity(command.len() + words.len());
    out.extend_from_slice(&command[..at]);
    out.extend(words);
    out.extend_from_slice(&command[at..]);
    out
}

/// The scope variables of Steam's wrappers that move the game into a new
/// systemd scope, with what they do (issue 7, "Why").
pub const SCOPE_VARS: [(&str, &str); 2] = [
    (
        "PRESSURE_VESSEL_SYSTEMD_SCOPE",
        "pressure-vessel moves the game's container",
    ),
    (
        "STEAM_LAUNCH_WRAPPER_SCOPE",
        "steam-launch-wrapper moves the game",
    ),
];

/// Whether a scope variable's value turns it on: set, not empty, not `0`.
pub fn scope_var_on(value: &OsStr) -> bool {
    !value.is_empty() && value != "0"
}

/// The one line about a scope variable that is on: what it does and what
/// cgsplit does about it, given how this instance runs.
pub fn scope_var_line(var: &str, what: &str, plan: &Plan, compat: bool) -> String {
    let answer = if compat {
        "this shim runs as a compatibility tool inside that chain and joins game/ from there"
            .to_owned()
    } else {
        match plan {
            Plan::Insert { .. } => {
                "cgsplit-shim re-inserts itself after Steam's wrapper so the game joins game/ \
                 again"
                    .to_owned()
            }
            Plan::AlreadyInside => {
                "cgsplit's compatibility tool runs after it and joins game/ from there".to_owned()
            }
            Plan::Keep | Plan::Unknown(_) => {
                "the shim is not re-inserted after it, so only the companion's adoption can move \
                 the game back (adoption never satisfies --network)"
                    .to_owned()
            }
        }
    };
    format!("{var} is set: {what} into a new systemd scope, out of cgsplit's; {answer}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use cgsplit_core::NetworkPolicy;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    const SHIM: &str = "/home/ü/.local/share/Steam/compatibilitytools.d/cgsplit/cgsplit-shim";
    const REAPER: &str = "/home/ü/.local/share/Steam/ubuntu12_32/reaper";
    const SLW: &str = "/home/ü/.local/share/Steam/ubuntu12_32/steam-launch-wrapper";
    const SNIPER: &str =
        "/home/ü/.local/share/Steam/steamapps/common/SteamLinuxRuntime_sniper/_v2-entry-point";
    const SOLDIER: &str = "/mnt/lib two/steamapps/common/SteamLinuxRuntime_soldier/_v2-entry-point";
    const SCOUT: &str = "/s/SteamLinuxRuntime/scout-on-soldier-entry-point-v2";
    const PROTON: &str = "/mnt/lib two/steamapps/common/Proton 9.0/proton";

    fn inv(app: Option<u32>) -> Invocation {
        Invocation {
            app: app.and_then(AppId::new),
            ..Invocation::default()
        }
    }

    /// The re-inserted command for `cmd`, with a plain `--inner --` instance.
    fn rewritten(cmd: &[&str]) -> Vec<OsString> {
        let cmd = os(cmd);
        let Plan::Insert { at, .. } = plan(&cmd) else {
            panic!("no insertion for {cmd:?}: {:?}", plan(&cmd))
        };
        insert(&cmd, at, inner_words(SHIM.as_ref(), &inv(None), None))
    }

    #[test]
    fn the_three_orderings_from_public_steam_logs() {
        let game = [
            "waitforexitandrun",
            "/g/Elite Dangerous/EDLaunch.exe",
            "",
            "/novr",
            "ünï 🎮",
        ];
        // 2021 (rfvgyhn/min-ed-launcher#26): reaper → soldier → Proton.
        let mut cmd = vec![
            REAPER,
            "SteamLaunch",
            "AppId=359320",
            "--",
            SOLDIER,
            "--verb=waitforexitandrun",
            "--",
            PROTON,
        ];
        cmd.extend(game);
        let mut want = cmd[..7].to_vec();
        want.extend([SHIM, "--inner", "--", PROTON]);
        want.extend(game);
        assert_eq!(rewritten(&cmd), os(&want));

        // Recent (umu-launcher PR #496): reaper → steam-launch-wrapper → sniper.
        let mut cmd = vec![
            REAPER,
            "SteamLaunch",
            "AppId=204100",
            "--",
            SLW,
            "--",
            SNIPER,
            "--verb=waitforexitandrun",
            "--",
            PROTON,
        ];
        cmd.extend(game);
        let mut want = cmd[..9].to_vec();
        want.extend([SHIM, "--inner", "--", PROTON]);
        want.extend(game);
        assert_eq!(rewritten(&cmd), os(&want));

        // 2026 (steam-for-linux#12971): steam-launch-wrapper → reaper → sniper, a native game.
        let cmd = [
            SLW,
            "--",
            REAPER,
            "SteamLaunch",
            "AppId=1",
            "--",
            SNIPER,
            "--verb=waitforexitandrun",
            "--",
            "/g/native game/run.sh",
            "--",
            "",
        ];
        let mut want = cmd[..9].to_vec();
        want.extend([SHIM, "--inner", "--", "/g/native game/run.sh", "--", ""]);
        assert_eq!(rewritten(&cmd), os(&want));
        assert!(matches!(
            plan(&os(&cmd)),
            Plan::Insert {
                at: 9,
                wrapper: Wrapper::RuntimeEntryPoint,
                stray: None
            }
        ));
    }

    #[test]
    fn launch_wrapper_and_scout_entry_points() {
        // steam-launch-wrapper alone (a native game without a runtime).
        let cmd = [
            REAPER,
            "SteamLaunch",
            "AppId=1",
            "--",
            SLW,
            "--",
            "/g/game",
            "-x",
        ];
        assert_eq!(
            rewritten(&cmd),
            os(&[
                REAPER,
                "SteamLaunch",
                "AppId=1",
                "--",
                SLW,
                "--",
                SHIM,
                "--inner",
                "--",
                "/g/game",
                "-x"
            ])
        );
        assert!(matches!(
            plan(&os(&cmd)),
            Plan::Insert {
                wrapper: Wrapper::LaunchWrapper,
                ..
            }
        ));
        // Scout on soldier.
        let cmd = [
            REAPER,
            "SteamLaunch",
            "AppId=1",
            "--",
            SCOUT,
            "--",
            "/g/game",
        ];
        assert_eq!(
            rewritten(&cmd),
            os(&[
                REAPER,
                "SteamLaunch",
                "AppId=1",
                "--",
                SCOUT,
                "--",
                SHIM,
                "--inner",
                "--",
                "/g/game"
            ])
        );
    }

    #[test]
    fn nothing_to_insert_when_cgsplit_already_runs_inside() {
        // The installer's tool entries: the runtime is the outer tool, so
        // `%command%` already has cgsplit right after the entry point.
        for next in [
            "/home/ü/.local/share/Steam/compatibilitytools.d/cgsplit-sniper/cgsplit-shim",
            "/s/compatibilitytools.d/cgsplit-proton-9-0/cgsplit-chain",
        ] {
            let cmd = [
                REAPER,
                "SteamLaunch",
                "AppId=1",
                "--",
                SNIPER,
                "--verb=waitforexitandrun",
                "--",
                next,
                "compat",
                "waitforexitandrun",
                "--",
                "/g/game",
            ];
            assert_eq!(plan(&os(&cmd)), Plan::AlreadyInside, "{next}");
        }
        // Not when a stray wrapper follows (then it is the unknown shape's turn).
        let cmd = [SLW, "--", SHIM, "--", SNIPER, "--", "/g/game"];
        assert!(matches!(
            plan(&os(&cmd)),
            Plan::Insert { stray: Some(4), .. }
        ));
        let l = scope_var_line(
            "PRESSURE_VESSEL_SYSTEMD_SCOPE",
            "x",
            &Plan::AlreadyInside,
            false,
        );
        assert!(l.contains("compatibility tool runs after it"), "{l}");
    }

    #[test]
    fn nothing_to_do_without_a_relaunching_wrapper() {
        for cmd in [
            &[REAPER, "SteamLaunch", "AppId=1", "--", "/g/game"][..],
            &["/g/game", "--", "_v2-entry-point", "reaper"],
            &["/g/game", ""],
        ] {
            assert_eq!(plan(&os(cmd)), Plan::Keep, "{cmd:?}");
        }
    }

    #[test]
    fn unknown_shapes_stay_outermost_with_a_reason() {
        let Plan::Unknown(why) = plan(&os(&[
            REAPER,
            "SteamLaunch",
            "AppId=1",
            SNIPER,
            "--verb=run",
        ])) else {
            panic!()
        };
        assert!(
            why.starts_with(&format!("`{REAPER}` (word 0 of the command) has no `--`")),
            "{why}"
        );
        let Plan::Unknown(why) = plan(&os(&[
            "/usr/bin/gamemoderun",
            REAPER,
            "SteamLaunch",
            "AppId=1",
            "--",
            SNIPER,
            "--",
            "/g/game",
        ])) else {
            panic!()
        };
        assert!(
            why.contains(&format!("`{SNIPER}` (word 5 of the command)")),
            "{why}"
        );
        assert!(why.contains("gamemoderun"), "{why}");
        // Behind a recognised one: insert there, and report the stray.
        assert_eq!(
            plan(&os(&[SLW, "--", "/usr/bin/env", SNIPER, "--", "/g/game"])),
            Plan::Insert {
                at: 2,
                wrapper: Wrapper::LaunchWrapper,
                stray: Some(3)
            }
        );
    }

    #[test]
    fn non_utf8_words_survive_the_insertion() {
        use std::os::unix::ffi::OsStrExt;
        let weird = OsStr::from_bytes(b"/g/\xff game").to_owned();
        let cmd = vec![OsString::from(SLW), "--".into(), weird.clone(), "".into()];
        let Plan::Insert { at, .. } = plan(&cmd) else {
            panic!()
        };
        let out = insert(&cmd, at, inner_words(SHIM.as_ref(), &inv(None), None));
        assert_eq!(out[5], weird);
        assert_eq!(out[6], "");
        assert_eq!(out.len(), 7);
    }

    #[test]
    fn forwarded_options() {
        let i = Invocation {
            scope: Some("/sys/fs/cgroup/a b/cgsplit-620.scope".into()),
            network: Some("localhost".parse::<NetworkPolicy>().unwrap()),
            allow_network: true,
            kill_steam: true,
            ..Invocation::default()
        };
        assert_eq!(
            inner_words("/s/cgsplit-shim".as_ref(), &i, AppId::new(620)),
            os(&[
                "/s/cgsplit-shim",
                "--scope",
                "/sys/fs/cgroup/a b/cgsplit-620.scope",
                "--app",
                "620",
                "--network",
                "localhost",
                "--allow-network",
                "--inner",
                "--"
            ]),
            "--kill-steam stays with the outer instance"
        );
        // An explicit --app wins over the resolved one.
        assert_eq!(
            inner_words("/s".as_ref(), &inv(Some(440)), AppId::new(620)),
            os(&["/s", "--app", "440", "--inner", "--"])
        );
        assert_eq!(
            inner_words("/s".as_ref(), &inv(None), None),
            os(&["/s", "--inner", "--"])
        );
    }

    #[test]
    fn the_inserted_path() {
        let exe = || Ok(PathBuf::from("/real/cgsplit-shim"));
        let no_exe = || Err(std::io::Error::from_raw_os_error(2));
        let abs = OsStr::new("/home/me/.steam/root/compatibilitytools.d/cgsplit/cgsplit-shim");
        assert_eq!(
            shim_path(Some(abs), no_exe),
            Ok(abs.to_owned()),
            "kept, symlinks and all"
        );
        for rel in ["cgsplit-shim", "./cgsplit-shim", "bin/cgsplit-shim", ""] {
            assert_eq!(
                shim_path(Some(OsStr::new(rel)), exe),
                Ok("/real/cgsplit-shim".into()),
                "{rel}"
            );
        }
        assert_eq!(shim_path(None, exe), Ok("/real/cgsplit-shim".into()));
        assert!(
            shim_path(Some(OsStr::new("x")), no_exe)
                .unwrap_err()
                .contains("/proc/self/exe")
        );
    }

    #[test]
    fn scope_variables() {
        assert!(scope_var_on(OsStr::new("1")));
        assert!(!scope_var_on(OsStr::new("0")));
        assert!(!scope_var_on(OsStr::new("")));
        let l = scope_var_line(
            "STEAM_LAUNCH_WRAPPER_SCOPE",
            SCOPE_VARS[1].1,
            &Plan::Keep,
            false,
        );
        assert!(l.starts_with("STEAM_LAUNCH_WRAPPER_SCOPE is set: steam-launch-wrapper moves the game into a new systemd scope"), "{l}");
        assert!(l.contains("adoption"), "{l}");
        let p = Plan::Insert {
            at: 2,
            wrapper: Wrapper::LaunchWrapper,
            stray: None,
        };
        assert!(scope_var_line("X", "x", &p, false).contains("re-inserts itself"));
        assert!(scope_var_line("X", "x", &p, true).contains("compatibility tool"));
    }
}
