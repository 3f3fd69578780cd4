//! Where the shim's lines go: stderr (Steam's log, or the terminal) and,
//! when it can be opened, the file `$XDG_STATE_HOME/cgsplit/shim.log`
//! (`$HOME/.local/state/cgsplit/shim.log` when `XDG_STATE_HOME` is unset,
//! XDG Base Directory spec 0.8). Inside the Steam flatpak that is the app's
//! own state directory, `~/.var/app/com.valvesoftware.Steam/.local/state`.
//!
//! Each file line is `<UTC time> [<pid>] <line>`. A log that cannot be
//! written never stops the game: errors are dropped.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// The log file's name inside `$XDG_STATE_HOME/cgsplit/`.
pub const LOG_FILE: &str = "shim.log";

static FILE: OnceLock<Option<File>> = OnceLock::new();

/// `$XDG_STATE_HOME/cgsplit/shim.log` (absolute `XDG_STATE_HOME` only, as
/// the spec requires), else `$HOME/.local/state/cgsplit/shim.log`.
pub fn log_path(get: impl Fn(&str) -> Option<std::ffi::OsString>) -> Option<PathBuf> {
    let state = get("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            get("HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .map(|h| h.join(".local/state"))
        })?;
    Some(state.join("cgsplit").join(LOG_FILE))
}

fn open() -> Option<File> {
    let path = log_path(|k| std::env::var_os(k))?;
    let dir = path.parent()?;
    // Private, like the installer's state directory next to it.
    let _ = DirBuilder::new().recursive(true).mode(0o700).create(dir);
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&path)
        .ok()
}

/// Prints `line` on stderr and appends it to the log file.
pub fn warn(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
    if let Some(mut f) = FILE.get_or_init(open).as_ref() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // One write call per line, so lines of parallel shims do not interleave (O_APPEND).
        let text = format!("{} [{}] {line}\n", utc(now), std::process::id());
        let _ = f.write_all(text.as_bytes());
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the Unix epoch. Written out
/// here because a date crate would double the static binary for one line;
/// the day-to-date step is Howard Hinnant's `civil_from_days`
/// (<https://howardhinnant.github.io/date_algorithms.html>).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(utc(1_796_083_200), "2026-12-01T00:00:00Z");
        assert_eq!(utc(4_102_444_800), "2100-01-01T00:00:00Z");
    }

    #[test]
    fn path_follows_xdg() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        assert_eq!(
            log_path(env(&[("XDG_STATE_HOME", "/s"), ("HOME", "/h")])),
            Some(PathBuf::from("/s/cgsplit/shim.log"))
        );
        assert_eq!(
            log_path(env(&[("XDG_STATE_HOME", "rel"), ("HOME", "/h")])),
            Some(PathBuf::from("/h/.local/state/cgsplit/shim.log"))
        );
        assert_eq!(log_path(env(&[("HOME", "")])), None);
        assert_eq!(log_path(env(&[])), None);
    }
}
