//! The shim's command line, parsed without touching the system.
//!
//! Two forms (both end in a command that is passed on byte for byte):
//!
//! ```text
//! cgsplit-shim [OPTIONS] -- CMD [ARGS…]                    launch options, before %command%
//! cgsplit-shim [OPTIONS] compat VERB [--] CMD [ARGS…]      compatibility tool `commandline`
//! ```
//!
//! In the compat form Steam appends the next command of the chain right after
//! the verb, with no `--` of its own (Steam compatibility tool interface,
//! "Command-line"); a manifest may put one there (`/cgsplit-shim compat %verb% --`),
//! so one `--` after the verb is accepted and dropped.
//!
//! # Verbs
//!
//! `%verb%` is `waitforexitandrun` for the game and `run` for install scripts
//! and setup steps (interface doc, "Native Linux Steam games", "Windows games
//! with an install script"): both join the scope and run the command.
//!
//! `getcompatpath` and `getnativepath` are not in the interface doc; Proton
//! implements them (STEAM.md §2: Linux path → Windows path via `winepath -w`,
//! and back) and prints the answer on stdout. cgsplit's own entry is a
//! linux → linux tool (`from_oslist`/`to_oslist` both `linux`), where the
//! compat path and the native path of a file are the same path, so the shim
//! answers with each path argument unchanged, one per line, and joins nothing.
//!
//! With `--chain` the command after the verb is the next compatibility tool
//! (the "cgsplit + Proton" entries): every verb other than `run` and
//! `waitforexitandrun` (`getcompatpath`, `runinprefix`, `destroyprefix`, …)
//! is forwarded unchanged by exec'ing that command, without joining the scope.
//! Without `--chain`, any other verb is refused (exit 3).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use cgsplit_core::{AppId, NetworkPolicy};

/// How to call the shim.
pub const USAGE: &str = "\
usage: cgsplit-shim [OPTIONS] -- CMD [ARGS...]
   or: cgsplit-shim [OPTIONS] [--chain] compat VERB [--] CMD [ARGS...]
options: --scope DIR        the scope directory holding game/ (default: derived from the app id)
         --app N            the Steam app id (default: SteamAppId, STEAM_COMPAT_APP_ID, SteamGameId)
         --network POLICY   refuse to run unless the scope's filter enforces POLICY (e.g. localhost)
         --allow-network    with --network: warn instead of refusing
         --kill-steam       after the game and everything it started have exited, ask Steam to quit
         --no-reinsert      do not re-insert the shim after Steam's wrappers (debugging)
         --inner            set by the shim on the copy it re-inserts (not for launch lines)
verbs:   waitforexitandrun, run (join and run); getcompatpath, getnativepath (print the path);
         with --chain every other verb is passed to CMD unchanged";

/// The verbs that join the scope and run the command.
pub const LAUNCH_VERBS: [&str; 2] = ["waitforexitandrun", "run"];

/// The path-translation verbs answered by a linux → linux tool (see module docs).
pub const PATH_VERBS: [&str; 2] = ["getcompatpath", "getnativepath"];

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Join a scope and run a command (launch options, `run`, `waitforexitandrun`).
    Launch(Invocation),
    /// `getcompatpath`/`getnativepath` on a linux → linux tool: print these
    /// paths unchanged, one per line.
    Answer(Vec<OsString>),
    /// `--chain` with a verb that does not launch the game: exec this command
    /// unchanged, joining nothing.
    Forward(Vec<OsString>),
    /// `-h` / `--help`: print [`USAGE`] and exit 0.
    Help,
}

/// A join-then-run request and its per-game policy (written into the launch
/// line by the installer: the flatpak sandbox cannot read the host's config).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Invocation {
    /// `--scope DIR`: the scope directory on disk, the one holding `game/`, e.g.
    /// `/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/games.slice/cgsplit-620.scope`.
    /// `None`: derive it from the app id.
    pub scope: Option<PathBuf>,
    /// `--app N`: the app id; `None`: read it from the environment.
    pub app: Option<AppId>,
    /// `--network POLICY` in `cgsplit_core::policy`'s text form.
    pub network: Option<NetworkPolicy>,
    /// `--allow-network`: a policy that cannot be proven only warns.
    pub allow_network: bool,
    /// `--kill-steam`: ask Steam to shut down after the game has ended.
    /// Dropped for the compat verb `run`: Steam uses it for install scripts
    /// and setup steps, and runs the game itself afterwards with
    /// `waitforexitandrun` (interface doc, "Windows games with an install
    /// script"), so quitting Steam after a `run` would stop it before the game.
    pub kill_steam: bool,
    /// `--inner`: this instance was re-inserted by an outer shim after one of
    /// Steam's wrappers ([`crate::reinsert`]). It joins only when it is not
    /// in `game/` already, inserts nothing, and never asks Steam to quit.
    pub inner: bool,
    /// `--no-reinsert`: stay outermost even when a wrapper of Steam's that
    /// relaunches the game follows (for debugging and tests).
    pub no_reinsert: bool,
    /// The compatibility-tool form (`compat VERB`): the shim already runs
    /// inside Steam's chain, so nothing is re-inserted.
    pub compat: bool,
    /// The command to run, program first, exactly as received; never empty.
    pub command: Vec<OsString>,
}

/// Why the command line is not one the shim can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgsError {
    /// Nothing to run: no `--`, or nothing after it or after the verb.
    MissingCommand,
    /// A path verb with no path after it.
    MissingPath(OsString),
    /// A word where an option, `--` or `compat` was expected.
    ExpectedDashDash(OsString),
    /// An option the shim does not know.
    UnknownOption(OsString),
    /// An option that needs a value got none (or an empty one), e.g. `--scope`.
    MissingValue(&'static str),
    /// `--app` with something that is not an app id.
    BadAppId(String),
    /// `--network` with something that is not a policy.
    BadNetwork(String),
    /// `--chain` in the launch-option form.
    ChainWithoutCompat,
    /// `compat` with nothing after it.
    MissingVerb,
    /// A compat verb the shim does not handle (without `--chain`).
    UnsupportedVerb(OsString),
}

impl ArgsError {
    /// Whether this is an unsupported verb (exit 3) rather than a usage error (exit 2).
    pub fn is_unsupported_verb(&self) -> bool {
        matches!(self, Self::UnsupportedVerb(_))
    }
}

impl fmt::Display for ArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingCommand => write!(f, "no command to run (expected `-- CMD [ARGS...]`)"),
            Self::MissingPath(v) => write!(
                f,
                "compat verb `{}` needs a path to translate",
                v.to_string_lossy()
            ),
            Self::ExpectedDashDash(w) => write!(
                f,
                "unexpected `{}`: put `--` before the command",
                w.to_string_lossy()
            ),
            Self::UnknownOption(o) => write!(f, "unknown option `{}`", o.to_string_lossy()),
            Self::MissingValue(o) => write!(f, "`{o}` needs a value"),
            Self::BadAppId(e) => write!(f, "--app: {e}"),
            Self::BadNetwork(e) => write!(f, "--network: {e}"),
            Self::ChainWithoutCompat => {
                write!(f, "`--chain` only applies to the `compat VERB` form")
            }
            Self::MissingVerb => write!(
                f,
                "`compat` needs a verb (waitforexitandrun, run, getcompatpath, getnativepath)"
            ),
            Self::UnsupportedVerb(v) => write!(
                f,
                "unknown compat verb `{}`: this tool runs Linux programs and handles \
                 waitforexitandrun, run, getcompatpath and getnativepath (Proton verbs such as \
                 runinprefix need an entry that chains to Proton)",
                v.to_string_lossy()
            ),
        }
    }
}

/// Parses the arguments after the program name (`std::env::args_os().skip(1)`).
///
/// Options come before `--` or `compat`; everything after is the command and
/// is never looked at, so a game argument such as `--scope` or `compat` is
/// passed on. `--opt VALUE` and `--opt=VALUE` are both accepted; the last one wins.
pub fn parse<I>(args: I) -> Result<Parsed, ArgsError>
where
    I: IntoIterator<Item = OsString>,
{
    let mut it = args.into_iter();
    let mut inv = Invocation::default();
    let mut chain = false;
    loop {
        let Some(arg) = it.next() else {
            return Err(ArgsError::MissingCommand);
        };
        let bytes = arg.as_bytes();
        let (name, inline) = match bytes.iter().position(|&b| b == b'=') {
            Some(i) if bytes.starts_with(b"--") => (
                OsStr::from_bytes(&bytes[..i]),
                Some(OsStr::from_bytes(&bytes[i + 1..]).to_owned()),
            ),
            _ => (arg.as_os_str(), None),
        };
        let mut value = |opt: &'static str| -> Result<OsString, ArgsError> {
            match inline.clone().or_else(|| it.next()) {
                Some(v) if !v.is_empty() => Ok(v),
                _ => Err(ArgsError::MissingValue(opt)),
            }
        };
        match name.as_bytes() {
            b"--" => break,
            b"-h" | b"--help" => return Ok(Parsed::Help),
            b"--scope" => inv.scope = Some(value("--scope")?.into()),
            b"--app" => {
                let v = value("--app")?;
                let app = v
                    .to_str()
                    .ok_or_else(|| ArgsError::BadAppId(format!("{v:?} is not a number")))?
                    .parse::<AppId>()
                    .map_err(|e| ArgsError::BadAppId(e.to_string()))?;
                inv.app = Some(app);
            }
            b"--network" => {
                let v = value("--network")?;
                let policy = v
                    .to_str()
                    .ok_or_else(|| ArgsError::BadNetwork(format!("{v:?} is not text")))?
                    .parse::<NetworkPolicy>()
                    .map_err(|e| ArgsError::BadNetwork(e.to_string()))?;
                inv.network = Some(policy);
            }
            b"--allow-network" if inline.is_none() => inv.allow_network = true,
            b"--kill-steam" if inline.is_none() => inv.kill_steam = true,
            b"--chain" if inline.is_none() => chain = true,
            b"--inner" if inline.is_none() => inv.inner = true,
            b"--no-reinsert" if inline.is_none() => inv.no_reinsert = true,
            b"compat" => return compat(inv, chain, it),
            _ if bytes.starts_with(b"-") => return Err(ArgsError::UnknownOption(arg)),
            _ => return Err(ArgsError::ExpectedDashDash(arg)),
        }
    }
    if chain {
        return Err(ArgsError::ChainWithoutCompat);
    }
    launch(inv, it.collect())
}

/// The rest of the line after `compat`: the verb, an optional `--`, the command.
fn compat(
    inv: Invocation,
    chain: bool,
    it: impl Iterator<Item = OsString>,
) -> Result<Parsed, ArgsError> {
    let mut it = it.peekable();
    let verb = it.next().ok_or(ArgsError::MissingVerb)?;
    if it.peek().is_some_and(|a| a == "--") {
        it.next();
    }
    let rest: Vec<OsString> = it.collect();
    let is = |set: &[&str]| set.iter().any(|v| verb == *v);
    if is(&LAUNCH_VERBS) {
        let mut inv = inv;
        inv.compat = true;
        if verb == "run" {
            inv.kill_steam = false;
        }
        launch(inv, rest)
    } else if chain {
        if rest.is_empty() {
            return Err(ArgsError::MissingCommand);
        }
        Ok(Parsed::Forward(rest))
    } else if is(&PATH_VERBS) {
        if rest.is_empty() {
            return Err(ArgsError::MissingPath(verb));
        }
        Ok(Parsed::Answer(rest))
    } else {
        Err(ArgsError::UnsupportedVerb(verb))
    }
}

fn launch(mut inv: Invocation, command: Vec<OsString>) -> Result<Parsed, ArgsError> {
    if command.is_empty() {
        return Err(ArgsError::MissingCommand);
    }
    inv.command = command;
    Ok(Parsed::Launch(inv))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    fn run(v: &[&str]) -> Invocation {
        match parse(os(v)) {
            Ok(Parsed::Launch(i)) => i,
            other => panic!("{v:?} gave {other:?}"),
        }
    }

    fn err(v: &[&str]) -> ArgsError {
        parse(os(v)).expect_err(&format!("{v:?} should fail"))
    }

    #[test]
    fn launch_option_form() {
        let i = run(&["--", "/g/game", "-novid"]);
        assert_eq!(i.scope, None);
        assert_eq!(i.command, os(&["/g/game", "-novid"]));
        assert!(!i.kill_steam && !i.allow_network && i.network.is_none() && i.app.is_none());

        let i = run(&["--scope", "/s/cgsplit-620.scope", "--", "game"]);
        assert_eq!(i.scope, Some(PathBuf::from("/s/cgsplit-620.scope")));
        assert_eq!(i.command, os(&["game"]));

        let i = run(&["--scope=/a b", "--", "game"]);
        assert_eq!(i.scope, Some(PathBuf::from("/a b")));

        // Last --scope wins.
        let i = run(&["--scope", "/x", "--scope=/y", "--", "g"]);
        assert_eq!(i.scope, Some(PathBuf::from("/y")));
    }

    #[test]
    fn policy_options() {
        let i = run(&[
            "--app",
            "620",
            "--network",
            "localhost,10.1.2.3/8",
            "--allow-network",
            "--kill-steam",
            "--",
            "g",
        ]);
        assert_eq!(i.app, AppId::new(620));
        assert_eq!(
            i.network.as_ref().map(ToString::to_string).as_deref(),
            Some("localhost,10.0.0.0/8")
        );
        assert!(i.allow_network && i.kill_steam);

        let i = run(&["--network=localhost", "--", "g"]);
        assert!(i.network.is_some_and(|p| p.is_restricted()));
        let i = run(&["--network", "full", "--", "g"]);
        assert_eq!(i.network, Some(NetworkPolicy::Full));
        let i = run(&["--app=440", "--", "g"]);
        assert_eq!(i.app, AppId::new(440));
    }

    #[test]
    fn placement_switches() {
        let i = run(&["--", "g"]);
        assert!(!i.inner && !i.no_reinsert && !i.compat);
        let i = run(&["--app", "620", "--inner", "--", "g"]);
        assert!(i.inner && !i.no_reinsert);
        let i = run(&["--no-reinsert", "--", "g", "--inner"]);
        assert!(!i.inner && i.no_reinsert);
        assert_eq!(i.command, os(&["g", "--inner"]));
        assert!(run(&["compat", "waitforexitandrun", "g"]).compat);
        assert!(run(&["compat", "run", "g"]).compat);
        assert_eq!(
            err(&["--inner=1", "--", "g"]),
            ArgsError::UnknownOption("--inner=1".into())
        );
    }

    #[test]
    fn bad_policy_values() {
        assert!(matches!(
            err(&["--app", "abc", "--", "g"]),
            ArgsError::BadAppId(_)
        ));
        let e = err(&["--app", "0620", "--", "g"]).to_string();
        assert!(e.starts_with("--app: `0620` is not a Steam app id"), "{e}");
        assert!(matches!(
            err(&["--app", "0", "--", "g"]),
            ArgsError::BadAppId(_)
        ));
        let e = err(&["--network", "offline", "--", "g"]).to_string();
        assert!(
            e.contains("--network: unknown network policy \"offline\""),
            "{e}"
        );
        let e = err(&["--network", "localhost,10.0.0.0/33", "--", "g"]).to_string();
        assert!(e.contains("prefix longer than 32"), "{e}");
        assert_eq!(err(&["--network"]), ArgsError::MissingValue("--network"));
        assert_eq!(
            err(&["--app=", "--", "g"]),
            ArgsError::MissingValue("--app")
        );
        // Switches take no value.
        assert_eq!(
            err(&["--kill-steam=yes", "--", "g"]),
            ArgsError::UnknownOption("--kill-steam=yes".into())
        );
    }

    #[test]
    fn everything_after_the_separator_is_the_command_untouched() {
        let cmd = [
            "/bin/printf",
            "",
            "a b",
            "'q'",
            "\"dq\"",
            "ünï",
            "--",
            "--scope",
            "compat",
            "-h",
            "--kill-steam",
        ];
        let mut v = vec!["--"];
        v.extend(cmd);
        assert_eq!(run(&v).command, os(&cmd));
        // Same after a compat verb.
        let mut v = vec!["compat", "waitforexitandrun"];
        v.extend(cmd);
        assert_eq!(run(&v).command, os(&cmd));
    }

    #[test]
    fn non_utf8_bytes_pass_through() {
        let weird = OsStr::from_bytes(b"\xff\xfe x").to_owned();
        let args = vec![OsString::from("--"), OsString::from("g"), weird.clone()];
        let Ok(Parsed::Launch(i)) = parse(args) else {
            panic!()
        };
        assert_eq!(i.command[1], weird);
    }

    #[test]
    fn compat_form_with_and_without_separator() {
        for verb in LAUNCH_VERBS {
            let i = run(&["compat", verb, "/tool/run", "a"]);
            assert_eq!(i.command, os(&["/tool/run", "a"]));
            let i = run(&["compat", verb, "--", "/tool/run", "a"]);
            assert_eq!(i.command, os(&["/tool/run", "a"]));
        }
        // Only one `--` is dropped: a chained tool's own separator stays.
        let i = run(&["compat", "run", "--", "--", "x"]);
        assert_eq!(i.command, os(&["--", "x"]));
        // Options before `compat`.
        let i = run(&[
            "--scope",
            "/s",
            "--kill-steam",
            "compat",
            "waitforexitandrun",
            "g",
        ]);
        assert_eq!(i.scope, Some(PathBuf::from("/s")));
        assert!(i.kill_steam);
    }

    #[test]
    fn path_verbs_answer_without_chain() {
        for verb in PATH_VERBS {
            assert_eq!(
                parse(os(&["compat", verb, "/home/me/a b.sav"])),
                Ok(Parsed::Answer(os(&["/home/me/a b.sav"])))
            );
            assert_eq!(
                parse(os(&["compat", verb, "--", "/x", ""])),
                Ok(Parsed::Answer(os(&["/x", ""])))
            );
            assert_eq!(err(&["compat", verb]), ArgsError::MissingPath(verb.into()));
        }
    }

    #[test]
    fn chain_forwards_every_other_verb_and_launches_on_launch_verbs() {
        let proton = ["/p/Proton 9.0/proton", "getcompatpath", "/home/me/x"];
        for verb in [
            "getcompatpath",
            "getnativepath",
            "runinprefix",
            "destroyprefix",
            "newverb",
        ] {
            let mut v = vec!["--chain", "compat", verb, "--"];
            v.extend(proton);
            assert_eq!(parse(os(&v)), Ok(Parsed::Forward(os(&proton))), "{verb}");
        }
        let i = run(&[
            "--chain",
            "compat",
            "waitforexitandrun",
            "/p/proton",
            "waitforexitandrun",
            "g.exe",
        ]);
        assert_eq!(i.command, os(&["/p/proton", "waitforexitandrun", "g.exe"]));
        assert_eq!(
            err(&["--chain", "compat", "runinprefix"]),
            ArgsError::MissingCommand
        );
        assert_eq!(err(&["--chain", "--", "g"]), ArgsError::ChainWithoutCompat);
    }

    #[test]
    fn unknown_verbs_are_refused() {
        for verb in ["runinprefix", "destroyprefix", "WaitForExitAndRun", ""] {
            let e = err(&["compat", verb, "g"]);
            assert_eq!(e, ArgsError::UnsupportedVerb(verb.into()));
            assert!(e.is_unsupported_verb());
        }
        assert_eq!(err(&["compat"]), ArgsError::MissingVerb);
        let msg = ArgsError::UnsupportedVerb("runinprefix".into()).to_string();
        assert!(
            msg.starts_with("unknown compat verb `runinprefix`"),
            "{msg}"
        );
    }

    #[test]
    fn missing_command() {
        for v in [
            &[][..],
            &["--"],
            &["--scope", "/s"],
            &["--scope", "/s", "--"],
            &["compat", "run"],
            &["compat", "waitforexitandrun", "--"],
        ] {
            assert_eq!(err(v), ArgsError::MissingCommand, "{v:?}");
        }
    }

    #[test]
    fn bad_options_and_words() {
        assert_eq!(err(&["--scope"]), ArgsError::MissingValue("--scope"));
        assert_eq!(
            err(&["--scope", "", "--", "g"]),
            ArgsError::MissingValue("--scope")
        );
        assert_eq!(
            err(&["--scope=", "--", "g"]),
            ArgsError::MissingValue("--scope")
        );
        assert_eq!(
            err(&["--net", "--", "g"]),
            ArgsError::UnknownOption("--net".into())
        );
        assert_eq!(
            err(&["/bin/game", "x"]),
            ArgsError::ExpectedDashDash("/bin/game".into())
        );
        assert!(
            ArgsError::ExpectedDashDash("/bin/game".into())
                .to_string()
                .contains("`/bin/game`")
        );
    }

    #[test]
    fn help() {
        assert_eq!(parse(os(&["--help"])), Ok(Parsed::Help));
        assert_eq!(parse(os(&["--scope", "/s", "-h"])), Ok(Parsed::Help));
        // After the separator it is the game's.
        assert_eq!(run(&["--", "g", "--help"]).command, os(&["g", "--help"]));
    }
}
