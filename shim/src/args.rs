//! The shim's command line, parsed without touching the system.
//!
//! Two forms (both end in the game's command, passed on byte for byte):
//!
//! ```text
//! cgsplit-shim [--scope DIR] -- CMD [ARGS…]                  launch options, before %command%
//! cgsplit-shim [--scope DIR] compat VERB [--] CMD [ARGS…]    compatibility tool entry point
//! ```
//!
//! In the compat form Steam appends the next command of the chain right after
//! the verb, with no `--` of its own (Steam compatibility tool interface, "Tool
//! manifest"); a manifest may put one there (`/cgsplit-shim compat %verb% --`),
//! so one `--` after the verb is accepted and dropped.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// How to call the shim: one line per form.
pub const USAGE: &str = "usage: cgsplit-shim [--scope DIR] -- CMD [ARGS...]\n   or: cgsplit-shim [--scope DIR] compat waitforexitandrun|run [--] CMD [ARGS...]";

/// Compat verbs that join the scope and run the command: `waitforexitandrun`
/// (the game) and `run` (install scripts, setup steps).
pub const JOIN_VERBS: [&str; 2] = ["waitforexitandrun", "run"];

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Join a scope and exec a command.
    Run(Invocation),
    /// `-h` / `--help`: print [`USAGE`] and exit 0.
    Help,
}

/// A join-then-exec request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// `--scope DIR`: the scope directory on disk, the one holding `game/`, e.g.
    /// `/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/games.slice/cgsplit-620.scope`.
    /// `None`: derive it from the app id in the environment.
    pub scope: Option<PathBuf>,
    /// The command to exec, program first, exactly as received; never empty.
    pub command: Vec<OsString>,
}

/// Why the command line is not one the shim can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgsError {
    /// Nothing to run: no `--`, or nothing after it or after the verb.
    MissingCommand,
    /// A word where an option, `--` or `compat` was expected.
    ExpectedDashDash(OsString),
    /// An option the shim does not know.
    UnknownOption(OsString),
    /// `--scope` at the end of the line, or `--scope ""`.
    MissingScope,
    /// `compat` with nothing after it.
    MissingVerb,
    /// A compat verb other than [`JOIN_VERBS`], e.g. `getcompatpath`.
    UnsupportedVerb(OsString),
}

impl fmt::Display for ArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingCommand => write!(f, "no command to run (expected `-- CMD [ARGS...]`)"),
            Self::ExpectedDashDash(w) => write!(
                f,
                "unexpected `{}`: put `--` before the command",
                w.to_string_lossy()
            ),
            Self::UnknownOption(o) => write!(f, "unknown option `{}`", o.to_string_lossy()),
            Self::MissingScope => write!(f, "`--scope` needs a directory"),
            Self::MissingVerb => write!(f, "`compat` needs a verb (waitforexitandrun or run)"),
            Self::UnsupportedVerb(v) => write!(
                f,
                "compat verb `{}` is not supported yet (only waitforexitandrun and run join a scope)",
                v.to_string_lossy()
            ),
        }
    }
}

/// Parses the arguments after the program name (`std::env::args_os().skip(1)`).
///
/// Options come before `--` or `compat`; everything after is the command and
/// is never looked at, so a game argument such as `--scope` or `compat` is
/// passed on. `--scope DIR` and `--scope=DIR` are both accepted; the last one wins.
pub fn parse<I>(args: I) -> Result<Parsed, ArgsError>
where
    I: IntoIterator<Item = OsString>,
{
    let mut it = args.into_iter();
    let mut scope = None;
    loop {
        let Some(arg) = it.next() else {
            return Err(ArgsError::MissingCommand);
        };
        let bytes = arg.as_bytes();
        if arg == "--" {
            break;
        } else if arg == "-h" || arg == "--help" {
            return Ok(Parsed::Help);
        } else if arg == "--scope" {
            scope = Some(scope_value(it.next())?);
        } else if let Some(v) = bytes.strip_prefix(b"--scope=") {
            scope = Some(scope_value(Some(OsStr::from_bytes(v).to_owned()))?);
        } else if arg == "compat" {
            let verb = it.next().ok_or(ArgsError::MissingVerb)?;
            if !JOIN_VERBS.iter().any(|v| verb == *v) {
                // A later issue adds getcompatpath/getnativepath (path translation
                // for Proton-style chains); until then the shim refuses them.
                return Err(ArgsError::UnsupportedVerb(verb));
            }
            let mut rest = it.peekable();
            if rest.peek().is_some_and(|a| a == "--") {
                rest.next();
            }
            return invocation(scope, rest.collect());
        } else if bytes.starts_with(b"-") {
            return Err(ArgsError::UnknownOption(arg));
        } else {
            return Err(ArgsError::ExpectedDashDash(arg));
        }
    }
    invocation(scope, it.collect())
}

fn scope_value(v: Option<OsString>) -> Result<PathBuf, ArgsError> {
    match v {
        Some(v) if !v.is_empty() => Ok(v.into()),
        _ => Err(ArgsError::MissingScope),
    }
}

fn invocation(scope: Option<PathBuf>, command: Vec<OsString>) -> Result<Parsed, ArgsError> {
    if command.is_empty() {
        return Err(ArgsError::MissingCommand);
    }
    Ok(Parsed::Run(Invocation { scope, command }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    fn run(v: &[&str]) -> Invocation {
        match parse(os(v)) {
            Ok(Parsed::Run(i)) => i,
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
        ];
        let mut v = vec!["--"];
        v.extend(cmd);
        assert_eq!(run(&v).command, os(&cmd));
    }

    #[test]
    fn non_utf8_bytes_pass_through() {
        let weird = OsStr::from_bytes(b"\xff\xfe x").to_owned();
        let args = vec![OsString::from("--"), OsString::from("g"), weird.clone()];
        let Ok(Parsed::Run(i)) = parse(args) else {
            panic!()
        };
        assert_eq!(i.command[1], weird);
    }

    #[test]
    fn compat_form_with_and_without_separator() {
        for verb in JOIN_VERBS {
            let i = run(&["compat", verb, "/tool/run", "a"]);
            assert_eq!(i.command, os(&["/tool/run", "a"]));
            let i = run(&["compat", verb, "--", "/tool/run", "a"]);
            assert_eq!(i.command, os(&["/tool/run", "a"]));
        }
        // Only one `--` is dropped: a chained tool's own separator stays.
        let i = run(&["compat", "run", "--", "--", "x"]);
        assert_eq!(i.command, os(&["--", "x"]));
        // Options before `compat`.
        let i = run(&["--scope", "/s", "compat", "waitforexitandrun", "g"]);
        assert_eq!(i.scope, Some(PathBuf::from("/s")));
    }

    #[test]
    fn compat_verbs() {
        assert_eq!(
            err(&["compat", "getcompatpath", "C:\\x"]),
            ArgsError::UnsupportedVerb("getcompatpath".into())
        );
        assert_eq!(
            err(&["compat", "WaitForExitAndRun", "g"]),
            ArgsError::UnsupportedVerb("WaitForExitAndRun".into())
        );
        assert_eq!(err(&["compat"]), ArgsError::MissingVerb);
        let msg = ArgsError::UnsupportedVerb("getnativepath".into()).to_string();
        assert!(msg.contains("`getnativepath` is not supported"), "{msg}");
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
        assert_eq!(err(&["--scope"]), ArgsError::MissingScope);
        assert_eq!(err(&["--scope", "", "--", "g"]), ArgsError::MissingScope);
        assert_eq!(err(&["--scope=", "--", "g"]), ArgsError::MissingScope);
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
