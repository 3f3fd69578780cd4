//! Where the companion's log lines go: with `JOURNAL_STREAM` naming its
//! stderr (what systemd sets for a unit whose stderr is the journal), each
//! line carries a syslog priority prefix (`<3>` error, sd-daemon(3)); with
//! `JOURNAL_STREAM` naming something else, or unset, lines are plain
//! `cgsplit: …`. No user manager needed: a bus that does not exist makes an
//! error line.

use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};

fn run(journal_stream: Option<&str>, stderr: &std::path::Path) -> String {
    let mut c = Command::new(cgsplit_tests::bins::bin("cgsplit"));
    c.args(["release", "--app", "620"])
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .env_remove("JOURNAL_STREAM")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(stderr).unwrap());
    if let Some(j) = journal_stream {
        c.env("JOURNAL_STREAM", j);
    }
    let st = c.status().unwrap();
    assert_eq!(st.code(), Some(1));
    std::fs::read_to_string(stderr).unwrap()
}

#[test]
fn lines_get_a_priority_only_when_stderr_is_the_journal_stream() {
    let d = tempfile::tempdir().unwrap();
    let err = d.path().join("stderr");
    std::fs::write(&err, "").unwrap();
    // JOURNAL_STREAM names the file that will be our stderr (same inode:
    // File::create truncates, it does not replace).
    let m = std::fs::metadata(&err).unwrap();
    let ours = format!("{}:{}", m.dev(), m.ino());
    let text = run(Some(&ours), &err);
    assert!(
        text.starts_with(
            "<3>error: cannot connect to the session bus at unix:path=/nonexistent/bus"
        ),
        "{text}"
    );
    let other = format!("{}:{}", m.dev(), m.ino() + 1);
    let text = run(Some(&other), &err);
    assert!(
        text.starts_with("cgsplit: error: cannot connect to the session bus"),
        "{text}"
    );
    let text = run(None, &err);
    assert!(text.starts_with("cgsplit: error: "), "{text}");
}
