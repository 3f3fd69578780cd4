//! Log lines: to the journal when running under systemd, else to stderr.
//!
//! systemd connects a service's stderr to the journal and sets
//! `JOURNAL_STREAM=<dev>:<inode>` of that stream (systemd.exec(5),
//! "Environment variables in spawned processes"). When stderr is that stream,
//! a line starting with `<N>` gets syslog priority N (sd-daemon(3),
//! `SD_WARNING` = `<4>`, `SD_INFO` = `<6>`), so no journal client library is
//! needed. Otherwise lines go to stderr prefixed `cgsplit: `.

use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;

/// Whether stderr is the journal stream named by `JOURNAL_STREAM`.
pub fn stderr_is_journal() -> bool {
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    dev.parse() == Ok(meta.dev()) && ino.parse() == Ok(meta.ino())
}

fn line(prio: u8, kind: &str, msg: &str) {
    let text = if stderr_is_journal() {
        format!("<{prio}>{kind}{msg}\n")
    } else {
        format!("cgsplit: {kind}{msg}\n")
    };
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// An informational line (priority 6).
pub fn info(msg: &str) {
    line(6, "", msg);
}

/// A warning (priority 4), prefixed `warning: `.
pub fn warn(msg: &str) {
    line(4, "warning: ", msg);
}

/// An error (priority 3), prefixed `error: `.
pub fn error(msg: &str) {
    line(3, "error: ", msg);
}
