//! The wrappers Steam puts in front of a game, recognised in an argv.
//!
//! Steam replaces `%command%` with a chain of wrappers, each ending its own
//! arguments with `--` and running the rest (STEAM.md §2, from public Steam
//! logs): its reaper (`…/ubuntu12_32/reaper SteamLaunch AppId=N -- …`),
//! `…/ubuntu12_32/steam-launch-wrapper -- …`, and a Steam Linux Runtime entry
//! point (`…/SteamLinuxRuntime_sniper/_v2-entry-point --verb=waitforexitandrun -- …`,
//! `…/scout-on-soldier-entry-point-v2 -- …`). The order of the first two
//! changes between client versions. A runtime entry point starts a
//! pressure-vessel container, and with `STEAM_LAUNCH_WRAPPER_SCOPE=1`
//! steam-launch-wrapper starts the rest in a new systemd scope: either way
//! the game is no longer a plain descendant of a process that joined our
//! scope, so the shim re-inserts itself right after the innermost wrapper's
//! `--` ([`Chain::insert_at`]).
//!
//! Only command positions are examined (argv\[0\] and the word after each
//! recognised wrapper's `--`), so a game argument that happens to be named
//! `reaper` is never taken for a wrapper. A relaunching wrapper's absolute
//! path found anywhere else (e.g. `gamemoderun` written between the shim and
//! `%command%`) is reported as [`Chain::stray`]: a shape the shim does not
//! follow, so it warns instead of guessing.

/// A wrapper Steam inserts in front of the game.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wrapper {
    /// `reaper SteamLaunch AppId=N --`: Steam's subreaper (no container).
    Reaper,
    /// `steam-launch-wrapper --`: may start the rest in a new systemd scope.
    LaunchWrapper,
    /// `_v2-entry-point [--verb=…] --` or `scout-on-soldier-entry-point-v2 --`:
    /// a Steam Linux Runtime container (pressure-vessel).
    RuntimeEntryPoint,
}

impl Wrapper {
    /// The wrapper a program path names (by its file name), if any.
    pub fn of(program: &str) -> Option<Self> {
        match program.rsplit('/').next().unwrap_or(program) {
            "reaper" => Some(Self::Reaper),
            "steam-launch-wrapper" => Some(Self::LaunchWrapper),
            "_v2-entry-point" | "scout-on-soldier-entry-point-v2" => Some(Self::RuntimeEntryPoint),
            _ => None,
        }
    }

    /// Whether the rest of the chain may leave the process tree of whoever
    /// ran this wrapper (a container or a new scope), so that the shim must
    /// run again after it.
    pub fn relaunches(self) -> bool {
        !matches!(self, Self::Reaper)
    }
}

/// The wrappers found at the front of an argv.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chain {
    /// Each recognised wrapper with the argv index of its program.
    pub wrappers: Vec<(Wrapper, usize)>,
    /// Index right after the `--` of the innermost recognised wrapper that
    /// [relaunches](Wrapper::relaunches), where a second shim goes; `None`
    /// when there is none (then the outer shim is enough).
    pub insert_at: Option<usize>,
    /// A recognised wrapper whose `--` is missing: the shape is not one we
    /// know, so [`Chain::insert_at`] is `None`, and the caller stays outermost
    /// and warns. Holds the wrapper's argv index.
    pub unterminated: Option<usize>,
    /// The index of an absolute path naming a wrapper that
    /// [relaunches](Wrapper::relaunches), after the recognised chain but not
    /// at a command position (`/usr/bin/gamemoderun /…/reaper SteamLaunch
    /// AppId=N -- /…/_v2-entry-point --verb=… -- game`): a wrapper in front of
    /// Steam's own ones hides them. [`Chain::insert_at`] ignores it; the
    /// caller stays outermost and warns. The first such index; `None` when
    /// there is none or the chain is [unterminated](Chain::unterminated).
    pub stray: Option<usize>,
}

/// Finds Steam's wrappers at the front of `argv` (the command the shim is
/// about to run, program first).
pub fn parse<S: AsRef<str>>(argv: &[S]) -> Chain {
    let mut chain = Chain::default();
    let mut pos = 0;
    while let Some(w) = argv.get(pos).and_then(|p| Wrapper::of(p.as_ref())) {
        chain.wrappers.push((w, pos));
        let Some(dashes) = argv[pos + 1..].iter().position(|a| a.as_ref() == "--") else {
            chain.unterminated = Some(pos);
            chain.insert_at = None;
            break;
        };
        pos += 1 + dashes + 1;
        if w.relaunches() {
            chain.insert_at = Some(pos);
        }
    }
    if chain.unterminated.is_none() {
        // Past the last recognised wrapper's `--` (or from the start): only
        // absolute paths, so a game argument that is a bare word never counts.
        chain.stray = argv.iter().enumerate().skip(pos).find_map(|(i, a)| {
            let a = a.as_ref();
            (a.starts_with('/') && Wrapper::of(a).is_some_and(Wrapper::relaunches)).then_some(i)
        });
    }
    chain
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| a.to_string()).collect()
    }

    const REAPER: &str = "/home/u/.local/share/Steam/ubuntu12_32/reaper";
    const SLW: &str = "/home/u/.local/share/Steam/ubuntu12_32/steam-launch-wrapper";
    const SNIPER: &str =
        "/home/u/.local/share/Steam/steamapps/common/SteamLinuxRuntime_sniper/_v2-entry-point";
    const PROTON: &str = "/mnt/games lib/steamapps/common/Proton 9.0 (Beta)/proton";

    #[test]
    fn shapes_from_public_steam_logs() {
        // 2021 (rfvgyhn/min-ed-launcher#26): reaper → soldier → Proton.
        let a = argv(&[
            REAPER,
            "SteamLaunch",
            "AppId=359320",
            "--",
            "/s/SteamLinuxRuntime_soldier/_v2-entry-point",
            "--verb=waitforexitandrun",
            "--",
            "/s/common/Proton 6.3/proton",
            "waitforexitandrun",
            "/g/EDLaunch.exe",
            "/Steam",
        ]);
        let c = parse(&a);
        assert_eq!(
            c.wrappers,
            [(Wrapper::Reaper, 0), (Wrapper::RuntimeEntryPoint, 4)]
        );
        assert_eq!(c.insert_at, Some(7));
        assert_eq!(a[7], "/s/common/Proton 6.3/proton");

        // Recent (umu-launcher PR #496): reaper → steam-launch-wrapper → sniper.
        let a = argv(&[
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
            "waitforexitandrun",
            "/g/game.exe",
            "",
        ]);
        let c = parse(&a);
        assert_eq!(c.wrappers.len(), 3);
        assert_eq!(c.insert_at, Some(9));
        assert_eq!(a[9], PROTON);

        // 2026 (steam-for-linux#12971): steam-launch-wrapper → reaper → sniper.
        let a = argv(&[
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
        ]);
        let c = parse(&a);
        assert_eq!(
            c.wrappers,
            [
                (Wrapper::LaunchWrapper, 0),
                (Wrapper::Reaper, 2),
                (Wrapper::RuntimeEntryPoint, 6)
            ]
        );
        assert_eq!(c.insert_at, Some(9));
        assert_eq!(c.unterminated, None);
    }

    #[test]
    fn reaper_alone_needs_no_second_shim() {
        let a = argv(&[
            REAPER,
            "SteamLaunch",
            "AppId=435400",
            "--",
            "/t/stl",
            "waitforexitandrun",
            "/g/x.exe",
        ]);
        let c = parse(&a);
        assert_eq!(c.wrappers, [(Wrapper::Reaper, 0)]);
        assert_eq!(c.insert_at, None);
    }

    #[test]
    fn launch_wrapper_alone_relaunches() {
        let c = parse(&argv(&[SLW, "--", "/g/game"]));
        assert_eq!(c.insert_at, Some(2));
    }

    #[test]
    fn only_command_positions_count() {
        // A plain game whose arguments look like wrappers.
        let c = parse(&argv(&["/g/game", "reaper", "--", "_v2-entry-point", "--"]));
        assert_eq!(c, Chain::default());
        // Scout on soldier.
        let c = parse(&argv(&[
            "/s/scout-on-soldier-entry-point-v2",
            "--",
            "/g/game",
        ]));
        assert_eq!(c.insert_at, Some(2));
    }

    #[test]
    fn unknown_shapes_are_reported_not_guessed() {
        let c = parse(&argv(&[REAPER, "SteamLaunch", "AppId=1", SNIPER]));
        assert_eq!(c.unterminated, Some(0));
        assert_eq!(c.insert_at, None);
        let c = parse(&argv(&[SLW, "--", SNIPER, "--verb=run"]));
        assert_eq!(c.unterminated, Some(2));
        assert_eq!(c.insert_at, None, "an unknown shape: stay outermost");
        assert_eq!(parse::<&str>(&[]), Chain::default());
    }

    #[test]
    fn wrappers_hidden_behind_another_program_are_stray() {
        // `<shim> -- gamemoderun %command%`: Steam's wrappers are not at a command position.
        let a = argv(&[
            "/usr/bin/gamemoderun",
            REAPER,
            "SteamLaunch",
            "AppId=1",
            "--",
            SNIPER,
            "--verb=waitforexitandrun",
            "--",
            PROTON,
        ]);
        let c = parse(&a);
        assert_eq!(c.wrappers, []);
        assert_eq!(c.insert_at, None);
        assert_eq!(
            c.stray,
            Some(5),
            "the reaper does not relaunch; the entry point does"
        );
        // Behind a recognised reaper, the same.
        let a = argv(&[
            REAPER,
            "SteamLaunch",
            "AppId=1",
            "--",
            "mangohud",
            SLW,
            "--",
            "/g/game",
        ]);
        let c = parse(&a);
        assert_eq!(c.insert_at, None);
        assert_eq!(c.stray, Some(5));
        // A stray after a recognised relaunching wrapper keeps the insertion
        // point of the recognised one but is still reported.
        let a = argv(&[SLW, "--", "env", "X=1", SNIPER, "--", "/g/game"]);
        let c = parse(&a);
        assert_eq!((c.insert_at, c.stray), (Some(2), Some(4)));
        // Bare words and unterminated chains report none.
        assert_eq!(parse(&argv(&["/g/game", "_v2-entry-point"])).stray, None);
        assert_eq!(parse(&argv(&[SLW, "/x/_v2-entry-point"])).stray, None);
    }
}
