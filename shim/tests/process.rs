//! The shim's process model, policies and bad input, against real kernel
//! cgroups (cgroup v2), real signals and a real FIFO.
//!
//! Needs root and a cgroup2 mount, like `join.rs`; tests that need neither
//! say so. App ids are unique per test (`unique_app`): the end-of-game check
//! scans every visible process for `SteamAppId=<N>`, and tests run in parallel.

mod common;

use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// What `steam -shutdown` writes into steam.pipe (STEAM.md §5).
const SHUTDOWN_LINE: &[u8] = b"'~/.steam/root/ubuntu12_32/steam' '-shutdown'\n";

/// An app id no other test (or process) uses: 3_000_000_000 + pid * 16 + n.
fn unique_app() -> u32 {
    static N: AtomicU32 = AtomicU32::new(0);
    3_000_000_000 + (std::process::id() % 60_000_000) * 16 + N.fetch_add(1, Ordering::Relaxed)
}

/// A private `$HOME` with `.steam/steam.pipe` as a FIFO (no reader yet).
struct SteamHome {
    dir: tempfile::TempDir,
}

impl SteamHome {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("cgsplit-shimtest-home-")
            .tempdir()
            .unwrap();
        fs::create_dir(dir.path().join(".steam")).unwrap();
        nix::unistd::mkfifo(
            &dir.path().join(".steam/steam.pipe"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        Self { dir }
    }

    fn home(&self) -> &Path {
        self.dir.path()
    }

    fn pipe(&self) -> PathBuf {
        self.home().join(".steam/steam.pipe")
    }

    /// A reader, as a running Steam client holds one (non-blocking, so the
    /// test can drain it once the shim is gone).
    fn reader(&self) -> fs::File {
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(self.pipe())
            .unwrap()
    }
}

/// Everything the FIFO received (the writer has closed it by now).
fn drain(mut r: fs::File) -> Vec<u8> {
    let mut got = Vec::new();
    let _ = r.read_to_end(&mut got);
    got
}

fn with_scope(cg: &TestCgroup, args: &[&str]) -> Vec<OsString> {
    let mut v = scope_args(cg);
    v.extend(args.iter().map(OsString::from));
    v
}

fn own_v2() -> String {
    v2_line(&fs::read_to_string("/proc/self/cgroup").unwrap()).to_owned()
}

#[test]
fn fork_model_game_in_leaf_shim_stays_outside() {
    let mount = cgroup2_or_skip!();
    let cg = TestCgroup::new(&mount, true);
    let home = SteamHome::new();
    // The game prints its own cgroup, then its parent's: the shim that stayed.
    let args = with_scope(
        &cg,
        &[
            "--kill-steam",
            "--",
            "/bin/sh",
            "-c",
            "cat /proc/self/cgroup; echo --; cat /proc/$PPID/cgroup",
        ],
    );
    let out = run(shim(&args).env("HOME", home.home()));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let stdout = out.stdout();
    let (game, parent) = stdout.split_once("--\n").unwrap();
    assert_eq!(v2_line(game), cg.game_line());
    assert_eq!(v2_line(parent), own_v2(), "the shim must not sit in game/");
    assert!(
        out.stderr.contains("Steam is not running"),
        "{}",
        out.stderr
    );
}

#[test]
fn fork_model_exit_status_is_the_games() {
    let mount = cgroup2_or_skip!();
    let cg = TestCgroup::new(&mount, true);
    let home = SteamHome::new();
    for (script, code) in [
        ("exit 7", 7),
        ("kill -KILL $$", 137),
        ("kill -TERM $$", 143),
    ] {
        let args = with_scope(&cg, &["--kill-steam", "--", "/bin/sh", "-c", script]);
        let out = run(shim(&args).env("HOME", home.home()));
        assert_eq!(out.code, Some(code), "{script}: {}", out.stderr);
    }
}

/// Starts the shim with `--kill-steam` and a game that traps SIGINT, SIGTERM
/// and SIGHUP; returns once the game said it is ready.
fn trapping_game(
    cg: &TestCgroup,
    home: &SteamHome,
) -> (Child, BufReader<std::process::ChildStdout>) {
    let script = "for s in INT TERM HUP; do trap \"echo got-$s; exit 42\" $s; done; \
                  echo ready; while :; do sleep 0.02; done";
    let args = with_scope(cg, &["--kill-steam", "--", "/bin/sh", "-c", script]);
    let mut child = shim(&args)
        .env("HOME", home.home())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    (child, out)
}

#[test]
fn signals_are_forwarded_to_the_game() {
    let mount = cgroup2_or_skip!();
    let cg = TestCgroup::new(&mount, true);
    let home = SteamHome::new();
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        let (mut child, mut out) = trapping_game(&cg, &home);
        kill(Pid::from_raw(child.id() as i32), sig).unwrap();
        let st = child.wait().unwrap();
        let mut rest = String::new();
        out.read_to_string(&mut rest).unwrap();
        let name = &sig.as_str()[3..];
        assert_eq!(rest, format!("got-{name}\n"), "{sig}");
        assert_eq!(
            st.code(),
            Some(42),
            "{sig}: the shim exits with the game's status"
        );
    }
}

#[test]
fn shutdown_waits_for_orphans_and_arrives_once() {
    let mount = cgroup2_or_skip!();
    let cg = TestCgroup::new(&mount, true);
    let home = SteamHome::new();
    let reader = home.reader();
    let marks = home.home().join("marks");
    // The game forks a child that outlives it, then exits 3. When the child
    // ends it records whether the request had already arrived.
    let script =
        r#"( sleep 0.5; if [ -s "$1" ]; then echo early; else echo late; fi > "$2" ) & exit 3"#;
    let seen = home.home().join("seen");
    let app = unique_app().to_string();
    let mut args = with_scope(
        &cg,
        &[
            "--app",
            &app,
            "--kill-steam",
            "--",
            "/bin/sh",
            "-c",
            script,
            "sh",
        ],
    );
    args.push(seen.clone().into());
    args.push(marks.clone().into());
    // A copy of whatever arrives, for the orphan to look at.
    let copier = std::thread::spawn({
        let seen = seen.clone();
        let mut reader = reader.try_clone().unwrap();
        move || {
            let end = Instant::now() + Duration::from_secs(10);
            let mut got = Vec::new();
            while Instant::now() < end {
                let mut buf = [0u8; 256];
                match reader.read(&mut buf) {
                    Ok(0) if !got.is_empty() => break,
                    Ok(n) if n > 0 => {
                        got.extend_from_slice(&buf[..n]);
                        fs::write(&seen, &got).unwrap();
                    }
                    _ => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            got
        }
    });
    let t0 = Instant::now();
    let out = run(shim(&args).env("HOME", home.home()));
    let took = t0.elapsed();
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    assert!(
        took >= Duration::from_millis(500),
        "returned after {took:?}"
    );
    assert_eq!(
        fs::read_to_string(&marks).unwrap(),
        "late\n",
        "request before the orphan ended"
    );
    let got = copier.join().unwrap();
    assert_eq!(got, SHUTDOWN_LINE, "exactly one shutdown line");
    assert!(
        out.stderr.contains("asked Steam to shut down"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("waiting before asking Steam"),
        "{}",
        out.stderr
    );
    drop(reader);
}

#[test]
fn no_reader_means_no_request_and_no_hang() {
    let mount = cgroup2_or_skip!();
    let cg = TestCgroup::new(&mount, true);
    let home = SteamHome::new();
    let args = with_scope(&cg, &["--kill-steam", "--", "/bin/sh", "-c", "exit 5"]);
    let out = run(Command::new("timeout")
        .arg("10")
        .arg(SHIM)
        .args(&args)
        .env_remove("SteamAppId")
        .env("HOME", home.home()));
    assert_eq!(out.code, Some(5), "{}", out.stderr);
    assert!(out.stderr.contains("has no reader"), "{}", out.stderr);
    // Nothing is buffered in the FIFO for a later reader.
    let reader = home.reader();
    assert_eq!(drain(reader), b"");
}

#[test]
fn a_process_carrying_the_app_id_outside_the_leaf_delays_shutdown() {
    let mount = cgroup2_or_skip!();
    let cg = TestCgroup::new(&mount, true);
    let home = SteamHome::new();
    let reader = home.reader();
    let app = unique_app().to_string();
    // Stands in for a game relaunched elsewhere (portal subsandbox): not our
    // descendant, not in game/, SteamAppId set.
    let mut other = Command::new("/bin/sleep")
        .arg("0.7")
        .env("SteamAppId", &app)
        .spawn()
        .unwrap();
    let args = with_scope(&cg, &["--app", &app, "--kill-steam", "--", "/bin/true"]);
    let out = run(shim(&args).env("HOME", home.home()));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        other.try_wait().unwrap().is_some(),
        "the shim asked Steam to quit while a SteamAppId={app} process ran"
    );
    assert!(
        out.stderr.contains("still carry the game's SteamAppId"),
        "{}",
        out.stderr
    );
    assert_eq!(drain(reader), SHUTDOWN_LINE);
}

fn setxattr(dir: &Path, value: &str) {
    let st = Command::new("setfattr")
        .args(["-n", "user.cgsplit.policy", "-v", value])
        .arg(dir)
        .status()
        .expect("setfattr (package attr)");
    assert!(st.success());
}

#[test]
fn network_policy_fails_closed() {
    let mount = cgroup2_or_skip!();
    let cg = TestCgroup::new(&mount, true);
    let marker = tempfile::NamedTempFile::new().unwrap();
    let game = format!("echo ran > {}", marker.path().display());
    let launch = |extra: &[&str]| {
        let mut a = vec!["--network", "localhost"];
        a.extend(extra);
        a.extend(["--", "/bin/sh", "-c", &game]);
        fs::write(marker.path(), "").unwrap();
        let out = run(&mut shim(with_scope(&cg, &a)));
        (out, fs::read_to_string(marker.path()).unwrap())
    };

    // No xattr: nothing was attached.
    let (out, ran) = launch(&[]);
    assert_eq!(out.code, Some(4), "{}", out.stderr);
    assert_eq!(ran, "", "the game must not run");
    let line = out.one_line();
    assert!(
        line.starts_with("cgsplit-shim: refusing to run the game: "),
        "{line}"
    );
    assert!(line.contains("has no user.cgsplit.policy xattr"), "{line}");

    // A different policy recorded.
    setxattr(cg.scope(), "localhost,10.0.0.0/8");
    let (out, ran) = launch(&[]);
    assert_eq!((out.code, ran.as_str()), (Some(4), ""), "{}", out.stderr);
    let line = out.one_line();
    assert!(
        line.contains("user.cgsplit.policy=`localhost,10.0.0.0/8`"),
        "{line}"
    );
    assert!(line.contains("--network localhost"), "{line}");

    // The xattr says localhost but no filter is attached: the proof fails.
    setxattr(cg.scope(), "localhost");
    let (out, ran) = launch(&[]);
    assert_eq!((out.code, ran.as_str()), (Some(4), ""), "{}", out.stderr);
    assert!(
        out.one_line().contains("UDP connect() to 192.0.2.1:9"),
        "{}",
        out.stderr
    );

    // The same in the fork model: refused, and no shutdown request.
    let home = SteamHome::new();
    let reader = home.reader();
    fs::write(marker.path(), "").unwrap();
    let out = run(shim(with_scope(
        &cg,
        &[
            "--network",
            "localhost",
            "--kill-steam",
            "--",
            "/bin/sh",
            "-c",
            &game,
        ],
    ))
    .env("HOME", home.home()));
    assert_eq!(out.code, Some(4), "{}", out.stderr);
    assert_eq!(fs::read_to_string(marker.path()).unwrap(), "");
    assert_eq!(drain(reader), b"", "a refused launch must not stop Steam");

    // --allow-network: one warning, the game runs in game/.
    let (out, ran) = launch(&["--allow-network"]);
    assert_eq!(
        (out.code, ran.as_str()),
        (Some(0), "ran\n"),
        "{}",
        out.stderr
    );
    assert!(
        out.one_line()
            .ends_with("running the game anyway because of --allow-network")
    );

    // --network full needs no filter.
    let out = run(&mut shim(with_scope(
        &cg,
        &["--network", "full", "--", "/bin/true"],
    )));
    assert_eq!(out.code, Some(0));
    assert_eq!(out.stderr, "");
}

#[test]
fn network_policy_refuses_a_missing_scope() {
    let mount = cgroup2_or_skip!();
    let cg = TestCgroup::new(&mount, false);
    let out = run(&mut shim(with_scope(
        &cg,
        &["--network", "localhost", "--", "/bin/echo", "ran"],
    )));
    assert_eq!(out.code, Some(4), "{}", out.stderr);
    assert_eq!(out.stdout(), "");
    // No scope directory at all: the xattr cannot be read.
    let cg2 = TestCgroup::new(&mount, false);
    let gone = cg2.scope().join("nope");
    let out = run(&mut shim([
        "--scope".as_ref(),
        gone.as_os_str(),
        "--network".as_ref(),
        "localhost".as_ref(),
        "--".as_ref(),
        "/bin/true".as_ref(),
    ]));
    assert_eq!(out.code, Some(4));
    assert!(out.one_line().contains("ENOENT"), "{}", out.stderr);
}

// Below: no cgroups needed.

#[test]
fn scope_outside_cgroup2_warns_or_refuses() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("game")).unwrap();
    fs::write(dir.path().join("game/cgroup.procs"), "").unwrap();
    let scope = dir.path().as_os_str();
    let out = run(&mut shim([
        "--scope".as_ref(),
        scope,
        "--".as_ref(),
        "/bin/echo".as_ref(),
        "ran".as_ref(),
    ]));
    assert_eq!(out.code, Some(0));
    assert_eq!(out.stdout(), "ran\n");
    assert!(
        out.one_line().contains("not on a cgroup2 file system"),
        "{}",
        out.stderr
    );
    assert_eq!(fs::read(dir.path().join("game/cgroup.procs")).unwrap(), b"");

    let out = run(&mut shim([
        "--scope".as_ref(),
        scope,
        "--network".as_ref(),
        "localhost".as_ref(),
        "--".as_ref(),
        "/bin/echo".as_ref(),
        "ran".as_ref(),
    ]));
    assert_eq!(out.code, Some(4));
    assert_eq!(out.stdout(), "");
}

#[test]
fn path_verbs_answer_unchanged() {
    for verb in ["getcompatpath", "getnativepath"] {
        let out = run(&mut shim([
            "compat",
            verb,
            "--",
            "/home/me/Spiel ü/a'b.sav",
        ]));
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        assert_eq!(out.stdout(), "/home/me/Spiel ü/a'b.sav\n");
        assert_eq!(out.stderr, "");
    }
}

#[test]
fn chain_forwards_other_verbs_without_joining() {
    let out = run(&mut shim([
        "--chain",
        "--scope",
        "/nonexistent/cgsplit-620.scope",
        "compat",
        "runinprefix",
        "--",
        "/bin/echo",
        "proton",
        "runinprefix",
        "x y",
    ]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout(), "proton runinprefix x y\n");
    assert_eq!(out.stderr, "", "no join was attempted");
}

/// The shim with fd 1 closed.
fn closed_stdout(c: &mut Command) -> &mut Command {
    // SAFETY: close(2) is async-signal-safe.
    unsafe {
        c.pre_exec(|| {
            nix::libc::close(1);
            Ok(())
        })
    }
}

#[test]
fn stdout_closed_by_the_caller() {
    // The game sees stdout closed, as it was given, and runs.
    let out = run(closed_stdout(&mut shim([
        "--",
        "/bin/sh",
        "-c",
        "if echo x 2>/dev/null; then echo open >&2; else echo closed >&2; fi; exit 9",
    ])));
    assert_eq!(out.code, Some(9));
    assert!(out.stderr.ends_with("closed\n"), "{}", out.stderr);
    // An answer that cannot be written is an error, not a silent success.
    let out = run(closed_stdout(&mut shim(["compat", "getcompatpath", "/x"])));
    assert_eq!(out.code, Some(1));
    assert!(
        out.one_line()
            .contains("cannot write the path answer to stdout"),
        "{}",
        out.stderr
    );
}

#[test]
fn sigpipe() {
    // A broken stderr does not stop the game: the warning is lost, the game runs.
    let mut c = shim([
        "--scope",
        "/nonexistent/cgsplit-620.scope",
        "--",
        "/bin/sh",
        "-c",
        "exit 6",
    ]);
    let mut child = c
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    assert_eq!(child.wait().unwrap().code(), Some(6));

    // The game gets SIGPIPE's default action back (Rust ignores it): `yes`
    // writing into a pipe nobody reads dies of SIGPIPE, in both models.
    let home = SteamHome::new();
    for fork in [false, true] {
        let mut args = vec!["--scope", "/nonexistent/cgsplit-620.scope"];
        if fork {
            args.push("--kill-steam");
        }
        args.extend(["--", "/bin/sh", "-c", "sleep 0.1; exec yes"]);
        let mut child = shim(&args)
            .env("HOME", home.home())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let st = child.wait().unwrap();
        if fork {
            assert_eq!(st.code(), Some(128 + 13), "fork model: {st}");
        } else {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(st.signal(), Some(13), "exec model: {st}");
        }
    }
}

#[test]
fn log_file_gets_the_lines() {
    let state = tempfile::tempdir().unwrap();
    let out = run(shim([
        "--scope",
        "/nonexistent/cgsplit-620.scope",
        "--",
        "/bin/true",
    ])
    .env("XDG_STATE_HOME", state.path()));
    assert_eq!(out.code, Some(0));
    let line = out.one_line().to_owned();
    let log = fs::read_to_string(state.path().join("cgsplit/shim.log")).unwrap();
    let (stamp, rest) = log.trim_end().split_once(' ').unwrap();
    assert_eq!(stamp.len(), "2026-11-29T10:45:31Z".len(), "{log}");
    assert!(stamp.ends_with('Z'));
    assert!(rest.ends_with(&line), "{log}");
    assert!(rest.starts_with('['), "{log}");
    // Unwritable: stderr only, the game runs.
    let out = run(shim([
        "--scope",
        "/nonexistent/cgsplit-620.scope",
        "--",
        "/bin/true",
    ])
    .env("XDG_STATE_HOME", "/proc/cgsplit-nope"));
    assert_eq!(out.code, Some(0));
    out.one_line();
}

#[test]
fn bad_app_id_is_a_usage_error() {
    let out = run(&mut shim(["--app", "portal2", "--", "/bin/true"]));
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr
            .starts_with("cgsplit-shim: --app: `portal2` is not a Steam app id"),
        "{}",
        out.stderr
    );
    // In the environment it is skipped with a warning: the game still runs.
    let out = run(shim(["--", "/bin/echo", "ran"]).env("SteamAppId", "portal2"));
    assert_eq!(out.code, Some(0));
    assert!(
        out.one_line().contains("SteamAppId=`portal2`"),
        "{}",
        out.stderr
    );
}

#[test]
fn empty_command() {
    // Nothing after `--`: a usage error.
    let out = run(&mut shim(["--"]));
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.starts_with("cgsplit-shim: no command to run"),
        "{}",
        out.stderr
    );
    // An empty program name: not found, like a shell's `""`.
    let out = run(&mut shim([
        "--scope",
        "/nonexistent/cgsplit-620.scope",
        "--",
        "",
    ]));
    assert_eq!(out.code, Some(127), "{}", out.stderr);
    assert!(
        out.stderr
            .lines()
            .last()
            .unwrap()
            .contains("not found (ENOENT"),
        "{}",
        out.stderr
    );
}

#[test]
fn no_shutdown_after_a_setup_step() {
    // `compat run` is an install script; Steam runs the game after it.
    let mount = cgroup2_or_skip!();
    let cg = TestCgroup::new(&mount, true);
    let home = SteamHome::new();
    let reader = home.reader();
    let args = with_scope(&cg, &["--kill-steam", "compat", "run", "--", "/bin/true"]);
    let out = run(shim(&args).env("HOME", home.home()));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stderr, "");
    assert_eq!(drain(reader), b"", "Steam must stay up for the game");
    // The same line with waitforexitandrun (the game) does ask.
    let reader = home.reader();
    let args = with_scope(
        &cg,
        &[
            "--kill-steam",
            "compat",
            "waitforexitandrun",
            "--",
            "/bin/true",
        ],
    );
    let out = run(shim(&args).env("HOME", home.home()));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(drain(reader), SHUTDOWN_LINE);
}
