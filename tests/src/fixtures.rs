//! Small fixtures shared by the integration tests in `tests/tests/`.
//!
//! - Reading a testbed script's report: scripts print `key=value` lines (and
//!   `key=value` words inside a line); [`vars`], [`get`] and [`field`] read
//!   them back, [`show`] formats a run's output for an assertion message.

use std::collections::HashMap;
use std::process::Output;

/// The `key=value` lines of a script's stdout (split at the first `=`, the
/// value's trailing whitespace trimmed; a later line wins over an earlier
/// one with the same key). Lines without `=` are ignored.
pub fn vars(out: &Output) -> HashMap<String, String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_end().to_owned()))
        .collect()
}

/// A run's stdout and stderr, labelled, for an assertion message.
pub fn show(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The value of `k` in `v` (from [`vars`] of `out`). Panics, showing the
/// whole output, when the script did not print `k=`.
pub fn get<'a>(v: &'a HashMap<String, String>, k: &str, out: &Output) -> &'a str {
    v.get(k)
        .map(String::as_str)
        .unwrap_or_else(|| panic!("no `{k}=` in the script output\n{}", show(out)))
}

/// The value of the space-separated word `key=value` in `line`, e.g.
/// `field("game pid=7 cgroup=/x", "pid")` is `"7"`. Panics, naming the key
/// and the line, when there is no such word.
pub fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split(' ')
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_finds_the_word_and_not_a_longer_key() {
        assert_eq!(field("game pid=7 ppid=1 cgroup=/a b", "pid"), "7");
        assert_eq!(field("game pid=7 ppid=1 cgroup=/a", "cgroup"), "/a");
        assert_eq!(field("x pidx=3 pid=", "pid"), "");
    }
}
