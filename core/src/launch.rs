//! Steam launch options: placing the shim immediately before `%command%`.
//!
//! Facts (Steam compatibility tool interface, "Launch options"; STEAM.md §3):
//! - `%command%` is replaced by the whole command Steam built (reaper,
//!   runtime entry points, compatibility tools, the game); text before it
//!   (env assignments, wrappers such as `gamemoderun`, `gamescope --`) runs
//!   first, text after it is appended as game arguments.
//! - options without `%command%` are appended: `--debug` ≡ `%command% --debug`.
//! - the line is run by `/bin/sh -c`, so it uses POSIX-shell quoting.
//!
//! cgsplit inserts `'<shim>' [FLAGS] --` right before the first `%command%`:
//! wrappers written before it stay outside the scope, the game goes inside.

use std::borrow::Cow;
use std::ops::Range;

/// The token Steam replaces with the game's command line.
pub const COMMAND: &str = "%command%";

/// File name of the shim binary; [`find_shim`] recognises any path ending in it.
pub const SHIM_NAME: &str = "cgsplit-shim";

/// Quotes `s` for POSIX `sh` so it is one word with exactly this value.
///
/// Words made only of `[A-Za-z0-9_@%+=:,./-]` stay as they are; anything else
/// is put in single quotes, with `'` written as `'\''`.
pub fn sh_quote(s: &str) -> Cow<'_, str> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(format!("'{}'", s.replace('\'', r"'\''")))
    }
}

/// The text cgsplit puts before `%command%`: the quoted shim path, its flags
/// (each quoted), then `--`. E.g. `'/home/me/.steam/root/compatibilitytools.d/cgsplit/cgsplit-shim' --`.
pub fn shim_prefix(shim: &str, flags: &[&str]) -> String {
    let mut out = sh_quote(shim).into_owned();
    for f in flags {
        out.push(' ');
        out.push_str(&sh_quote(f));
    }
    out.push_str(" --");
    out
}

/// Launch options with the shim placed before `%command%`.
///
/// - `""` → `<prefix> %command%`
/// - `gamemoderun %command% -novid` → `gamemoderun <prefix> %command% -novid`
/// - `-novid` (no `%command%`) → `<prefix> %command% -novid`
/// - already wrapped with exactly `prefix` → unchanged (idempotent);
///   wrapped by another shim path or flags → that invocation is replaced.
pub fn wrap(options: &str, prefix: &str) -> String {
    let insert = format!("{prefix} ");
    if let Some(span) = find_shim(options) {
        if options[span.clone()] == insert {
            return options.to_owned();
        }
        return format!("{}{insert}{}", &options[..span.start], &options[span.end..]);
    }
    match options.find(COMMAND) {
        Some(at) => format!("{}{insert}{}", &options[..at], &options[at..]),
        None if options.trim().is_empty() => format!("{insert}{COMMAND}"),
        None => format!("{insert}{COMMAND} {options}"),
    }
}

/// Launch options with a shim invocation found by [`find_shim`] removed;
/// `None` when there is none. A result of exactly `%command%` becomes `""`
/// (that is what [`wrap`] makes of empty options).
///
/// This is a best-effort inverse: exact restores use the value recorded when
/// the options were wrapped.
pub fn unwrap(options: &str) -> Option<String> {
    let span = find_shim(options)?;
    let out = format!("{}{}", &options[..span.start], &options[span.end..]);
    Some(if out == COMMAND { String::new() } else { out })
}

/// Byte range of a shim invocation placed before the first `%command%`: from
/// the start of a word whose last path component is `cgsplit-shim` up to
/// (not including) `%command%`, provided the last word before `%command%` is
/// `--` and it is followed by one space. `None` otherwise, or when the text
/// before `%command%` does not lex as shell words (an open quote).
pub fn find_shim(options: &str) -> Option<Range<usize>> {
    let at = options.find(COMMAND)?;
    let words = shell_words(&options[..at])?;
    let last = words.last()?;
    if last.value != "--" || &options[last.span.end..at] != " " {
        return None;
    }
    let shim = words
        .iter()
        .rev()
        .find(|w| w.value == SHIM_NAME || w.value.ends_with(&format!("/{SHIM_NAME}")))?;
    Some(shim.span.start..at)
}

/// One shell word: its unquoted value and where it stands in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Word {
    value: String,
    span: Range<usize>,
}

/// Splits `s` into words by POSIX-shell rules for blanks, `'…'`, `"…"` and
/// backslash. Expansions (`$x`) are kept literally. `None` on an open quote
/// or a trailing backslash.
fn shell_words(s: &str) -> Option<Vec<Word>> {
    let mut words = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c == ' ' || c == '\t' || c == '\n' {
            chars.next();
            continue;
        }
        let mut value = String::new();
        let mut end = start;
        while let Some(&(_, c)) = chars.peek() {
            match c {
                ' ' | '\t' | '\n' => break,
                '\'' => {
                    chars.next();
                    loop {
                        let (_, c) = chars.next()?;
                        if c == '\'' {
                            break;
                        }
                        value.push(c);
                    }
                }
                '"' => {
                    chars.next();
                    loop {
                        let (_, c) = chars.next()?;
                        match c {
                            '"' => break,
                            '\\' => {
                                let (_, n) = chars.next()?;
                                if !"$`\"\\\n".contains(n) {
                                    value.push('\\');
                                }
                                value.push(n);
                            }
                            c => value.push(c),
                        }
                    }
                }
                '\\' => {
                    chars.next();
                    let (_, n) = chars.next()?;
                    value.push(n);
                }
                c => {
                    chars.next();
                    value.push(c);
                }
            }
            end = chars.peek().map_or(s.len(), |&(j, _)| j);
        }
        words.push(Word {
            value,
            span: start..end,
        });
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIM: &str = "/home/me/.local/share/Steam/compatibilitytools.d/cgsplit/cgsplit-shim";

    fn prefix() -> String {
        shim_prefix(SHIM, &[])
    }

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("abc/def-1.2"), "abc/def-1.2");
        assert_eq!(sh_quote(""), "''");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote("$HOME"), "'$HOME'");
        assert_eq!(sh_quote(r"C:\x"), r"'C:\x'");
        assert_eq!(
            shim_prefix("/p q/cgsplit-shim", &["--network", "localhost"]),
            "'/p q/cgsplit-shim' --network localhost --"
        );
    }

    #[test]
    fn quoted_words_read_back_as_the_original() {
        for s in [
            "plain",
            "a b",
            "it's",
            "$x `y` \"z\"",
            "back\\slash",
            "ünï côdé",
            "\t",
        ] {
            let words = shell_words(&sh_quote(s)).unwrap();
            assert_eq!(words.len(), 1, "{s}");
            assert_eq!(words[0].value, s);
        }
    }

    #[test]
    fn wrap_cases() {
        let p = prefix();
        let cases: &[(&str, String)] = &[
            ("", format!("{p} %command%")),
            ("%command%", format!("{p} %command%")),
            ("-novid -console", format!("{p} %command% -novid -console")),
            (
                "gamemoderun %command% -novid",
                format!("gamemoderun {p} %command% -novid"),
            ),
            (
                "DXVK_HUD=1 LD_PRELOAD=$LD_PRELOAD:/usr/\\$LIB/x.so mangohud %command%",
                format!(
                    "DXVK_HUD=1 LD_PRELOAD=$LD_PRELOAD:/usr/\\$LIB/x.so mangohud {p} %command%"
                ),
            ),
            (
                "gamescope -w 1280 -h 720 -- %command% +map \"c1 a0\"",
                format!("gamescope -w 1280 -h 720 -- {p} %command% +map \"c1 a0\""),
            ),
            (
                "\"/games/My Tools/run it.sh\" %command%",
                format!("\"/games/My Tools/run it.sh\" {p} %command%"),
            ),
        ];
        for (before, after) in cases {
            assert_eq!(&wrap(before, &p), after, "wrapping {before:?}");
            // Idempotent.
            assert_eq!(&wrap(after, &p), after, "rewrapping {after:?}");
        }
    }

    #[test]
    fn unwrap_inverts_wrap_where_it_can() {
        let p = prefix();
        for before in [
            "",
            "gamemoderun %command% -novid",
            "A='x y' %command%",
            "%command% -a \"b c\"",
        ] {
            assert_eq!(
                unwrap(&wrap(before, &p)).as_deref(),
                Some(before),
                "{before:?}"
            );
        }
        assert_eq!(unwrap("gamemoderun %command%"), None);
        assert_eq!(unwrap("-novid"), None);
    }

    #[test]
    fn another_shim_path_or_flags_is_replaced_not_doubled() {
        let old = format!(
            "mangohud {} %command%",
            shim_prefix("/old place/cgsplit-shim", &[])
        );
        let p = shim_prefix(SHIM, &["--network", "localhost"]);
        assert_eq!(wrap(&old, &p), format!("mangohud {p} %command%"));
    }

    #[test]
    fn find_shim_needs_the_double_dash_right_before_command() {
        assert!(find_shim("cgsplit-shim -- %command%").is_some());
        assert!(find_shim("'/a b/cgsplit-shim' --scope /x -- %command%").is_some());
        assert_eq!(find_shim("cgsplit-shim %command%"), None);
        assert_eq!(find_shim("/x/not-cgsplit-shim -- %command%"), None);
        assert_eq!(find_shim("'open quote cgsplit-shim -- %command%"), None);
        assert_eq!(find_shim("cgsplit-shim --  %command%"), None);
    }
}
