//! Stand-in game: reports where it and a child it forks run.
//!
//! `fake-game [ARGS…]` prints, on stdout and (when `FAKE_GAME_REPORT` names a
//! file) appended to that file, one line each:
//!
//! ```text
//! game pid=<pid> cgroup=<path from /proc/self/cgroup>
//! child pid=<pid> cgroup=<path> parent=<game pid>
//! argv <json-ish list of the game's arguments>
//! env SteamAppId=<value or ->
//! ```
//!
//! The child is a real child process of the game (it re-runs this binary with
//! `--child`), so a test can check that the whole process tree lands in the
//! `game/` leaf, judging by the game itself and never by the shim.
//! Exits 0, or the number given by `FAKE_GAME_EXIT`.
//!
//! With `FAKE_GAME_ORPHAN_MS=<ms>` the game also starts a second child it
//! does not wait for (a launcher leaving the real game behind). That child
//! sleeps `<ms>`, then reports
//! `orphan pid=<pid> cgroup=<path> watched=<empty|nonempty|missing>`, where
//! `watched` describes the file named by `FAKE_GAME_WATCH` at that moment
//! (e.g. where a test copies what arrives on steam.pipe), and exits.

use std::io::Write;
use std::process::Command;

fn own_cgroup() -> String {
    // cgroup v2 line: `0::/path`. On a hybrid host there are v1 lines too.
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or("?")
        .to_owned()
}

fn report(line: &str) {
    println!("{line}");
    if let Some(path) = std::env::var_os("FAKE_GAME_REPORT") {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("fake-game: cannot open {}: {e}", path.display()));
        writeln!(f, "{line}").expect("fake-game: write report");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--orphan") {
        let ms = args.get(1).and_then(|m| m.parse().ok()).unwrap_or(0);
        std::thread::sleep(std::time::Duration::from_millis(ms));
        let watched = match std::env::var_os("FAKE_GAME_WATCH").map(std::fs::metadata) {
            Some(Ok(m)) if m.len() > 0 => "nonempty",
            Some(Ok(_)) => "empty",
            _ => "missing",
        };
        report(&format!(
            "orphan pid={} cgroup={} watched={watched}",
            std::process::id(),
            own_cgroup()
        ));
        return;
    }
    if args.first().map(String::as_str) == Some("--child") {
        report(&format!(
            "child pid={} cgroup={} parent={}",
            std::process::id(),
            own_cgroup(),
            args.get(1).map_or("?", String::as_str)
        ));
        return;
    }
    report(&format!(
        "game pid={} cgroup={}",
        std::process::id(),
        own_cgroup()
    ));
    let status = Command::new(std::env::current_exe().expect("fake-game: current_exe"))
        .arg("--child")
        .arg(std::process::id().to_string())
        .status()
        .expect("fake-game: spawn child");
    assert!(status.success(), "fake-game: child failed: {status}");
    if let Ok(ms) = std::env::var("FAKE_GAME_ORPHAN_MS") {
        // Not waited for: it outlives the game.
        #[allow(clippy::zombie_processes)]
        Command::new(std::env::current_exe().expect("fake-game: current_exe"))
            .arg("--orphan")
            .arg(ms)
            .spawn()
            .expect("fake-game: spawn orphan");
    }
    report(&format!("argv {args:?}"));
    report(&format!(
        "env SteamAppId={}",
        std::env::var("SteamAppId").unwrap_or_else(|_| "-".into())
    ));
    let code = std::env::var("FAKE_GAME_EXIT")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    std::process::exit(code);
}
