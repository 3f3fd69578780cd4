//! The built shim's re-insertion after Steam's wrappers (issue 7 item 2),
//! observed from the command it really runs: the wrappers are stand-ins
//! named as Steam names them (`_v2-entry-point`, `steam-launch-wrapper`)
//! that print the argv they were given (symlinks to `/bin/echo`, so the
//! shim's exec is real). No cgroup is needed: with no app id the shim warns
//! once and runs the command (fail-open), and that line is filtered out.

mod common;

use std::ffi::OsString;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use common::*;

/// `_v2-entry-point` and `steam-launch-wrapper` stand-ins in a directory
/// whose name has a space, each printing its arguments.
struct Wrappers {
    dir: tempfile::TempDir,
}

impl Wrappers {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("cgsplit-shimtest-wrappers ")
            .tempdir()
            .unwrap();
        for name in ["_v2-entry-point", "steam-launch-wrapper", "reaper"] {
            std::os::unix::fs::symlink("/bin/echo", dir.path().join(name)).unwrap();
        }
        Self { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }
}

/// The shim's stderr without the fail-open line about the missing app id.
fn warnings(out: &Out) -> Vec<String> {
    out.stderr
        .lines()
        .filter(|l| !l.contains("no Steam app id"))
        .map(str::to_owned)
        .collect()
}

fn canonical_shim() -> PathBuf {
    fs::canonicalize(SHIM).unwrap()
}

#[test]
fn inserted_after_the_innermost_relaunching_wrapper() {
    let w = Wrappers::new();
    let (entry, slw) = (w.path("_v2-entry-point"), w.path("steam-launch-wrapper"));
    // steam-launch-wrapper → entry point: the inner shim goes after the entry
    // point's `--`; the wrapper stand-in prints the rest (echo takes no `--`).
    let out = run(shim([
        "--app",
        "620",
        "--",
        &slw,
        "--",
        &entry,
        "--verb=waitforexitandrun",
        "--",
        "/g/Proton 9.0/proton",
        "waitforexitandrun",
        "ü.exe",
    ])
    .env_remove("STEAM_LAUNCH_WRAPPER_SCOPE")
    .env_remove("PRESSURE_VESSEL_SYSTEMD_SCOPE"));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout(),
        format!(
            "-- {entry} --verb=waitforexitandrun -- {SHIM} --app 620 --inner -- /g/Proton 9.0/proton waitforexitandrun ü.exe\n"
        )
    );
}

#[test]
fn a_relative_argv0_is_replaced_by_proc_self_exe() {
    let w = Wrappers::new();
    let entry = w.path("_v2-entry-point");
    let out = run(shim(["--", &entry, "--", "game"]).arg0("cgsplit-shim"));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout(),
        format!("-- {} --inner -- game\n", canonical_shim().display())
    );
}

#[test]
fn the_app_id_from_the_environment_is_forwarded() {
    // Also when no leaf is found (no scope provisioned here): a container
    // that drops Steam's variables must not lose it.
    let w = Wrappers::new();
    let entry = w.path("_v2-entry-point");
    let out = run(shim(["--", &entry, "--", "game"]).env("SteamAppId", "4000000001"));
    assert_eq!(
        out.stdout(),
        format!("-- {SHIM} --app 4000000001 --inner -- game\n"),
        "{}",
        out.stderr
    );
}

#[test]
fn options_forwarded_and_kill_steam_kept_by_the_outer_instance() {
    let w = Wrappers::new();
    let entry = w.path("_v2-entry-point");
    let scope = "/nonexistent/cgsplit-620.scope";
    let out = run(&mut shim([
        "--scope",
        scope,
        "--allow-network",
        "--network",
        "localhost",
        "--",
        &entry,
        "--",
        "game",
    ]));
    // Refusals are warnings under --allow-network; the command runs.
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout(),
        format!(
            "-- {SHIM} --scope {scope} --app 620 --network localhost --allow-network --inner -- game\n"
        )
    );
}

#[test]
fn no_insertion_without_a_relaunching_wrapper_in_compat_form_or_when_off() {
    let w = Wrappers::new();
    let (entry, reaper) = (w.path("_v2-entry-point"), w.path("reaper"));
    for args in [
        vec!["--", &reaper, "SteamLaunch", "AppId=1", "--", "game"],
        vec!["--no-reinsert", "--", &entry, "--", "game"],
        vec!["compat", "waitforexitandrun", &entry, "--", "game"],
        vec!["--inner", "--", &entry, "--", "game"],
    ] {
        let out = run(&mut shim(&args));
        assert_eq!(out.code, Some(0), "{args:?}: {}", out.stderr);
        let rest = args.iter().skip_while(|a| **a != reaper && **a != entry);
        let want: Vec<&str> = rest.skip(1).copied().collect();
        assert_eq!(out.stdout(), format!("{}\n", want.join(" ")), "{args:?}");
        assert_eq!(warnings(&out), Vec::<String>::new(), "{args:?}");
    }
}

#[test]
fn unknown_shapes_warn_once_and_stay_outermost() {
    let w = Wrappers::new();
    let (entry, slw) = (w.path("_v2-entry-point"), w.path("steam-launch-wrapper"));
    // A wrapper with no `--`.
    let out = run(&mut shim(["--", &slw, &entry, "--verb=run"]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout(), format!("{entry} --verb=run\n"));
    let l = warnings(&out);
    assert_eq!(l.len(), 1, "{l:?}");
    assert!(
        l[0].starts_with(&format!(
            "cgsplit-shim: `{slw}` (word 0 of the command) has no `--` after it"
        )) && l[0].contains("the shim stays outermost"),
        "{l:?}"
    );
    // A program between the shim and Steam's wrappers.
    let out = run(&mut shim(["--", "/bin/echo", &entry, "--", "game"]));
    assert_eq!(out.stdout(), format!("{entry} -- game\n"));
    let l = warnings(&out);
    assert_eq!(l.len(), 1, "{l:?}");
    assert!(
        l[0].contains("(word 1 of the command) is not right after"),
        "{l:?}"
    );
}

#[test]
fn unknown_shapes_are_refused_under_a_restricted_network_policy() {
    let w = Wrappers::new();
    let entry = w.path("_v2-entry-point");
    let cmd = ["--", "/bin/echo", &entry, "--", "game"];
    let mut args = vec!["--network", "localhost"];
    args.extend(cmd);
    let out = run(&mut shim(&args));
    assert_eq!(out.code, Some(4), "{}", out.stderr);
    assert_eq!(out.stdout(), "", "the command must not run");
    let l = out.one_line();
    assert!(
        l.starts_with(&format!(
            "cgsplit-shim: refusing to run the game: `{entry}` (word 1 of the command) is not right after"
        )) && l.contains("may take it out of game/"),
        "{l}"
    );
    // --allow-network: a warning, and the command runs (outside any scope here).
    let mut args = vec!["--network", "localhost", "--allow-network"];
    args.extend(cmd);
    let out = run(&mut shim(&args));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout(), format!("{entry} -- game\n"));
    assert!(
        out.stderr.lines().next().is_some_and(
            |l| l.contains("is not right after") && l.contains("because of --allow-network")
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn scope_variables_get_one_line_from_the_outer_instance_only() {
    let w = Wrappers::new();
    let slw = w.path("steam-launch-wrapper");
    let out = run(shim(["--", &slw, "--", "game"]).env("STEAM_LAUNCH_WRAPPER_SCOPE", "1"));
    let l = warnings(&out);
    assert_eq!(l.len(), 1, "{l:?}");
    assert!(
        l[0].starts_with("cgsplit-shim: STEAM_LAUNCH_WRAPPER_SCOPE is set: steam-launch-wrapper moves the game into a new systemd scope")
            && l[0].contains("re-inserts itself"),
        "{l:?}"
    );
    let out = run(shim(["--inner", "--", "/bin/true"])
        .env("STEAM_LAUNCH_WRAPPER_SCOPE", "1")
        .env("PRESSURE_VESSEL_SYSTEMD_SCOPE", "1"));
    assert_eq!(warnings(&out), Vec::<String>::new());
    let out = run(shim(["compat", "waitforexitandrun", "/bin/true"])
        .env("PRESSURE_VESSEL_SYSTEMD_SCOPE", "1")
        .env("STEAM_LAUNCH_WRAPPER_SCOPE", "0"));
    let l = warnings(&out);
    assert_eq!(l.len(), 1, "{l:?}");
    assert!(
        l[0].contains("PRESSURE_VESSEL_SYSTEMD_SCOPE is set")
            && l[0].contains("runs as a compatibility tool"),
        "{l:?}"
    );
}

/// A private `$HOME` with `.steam/steam.pipe` as a FIFO and a reader on it.
fn steam_home() -> (tempfile::TempDir, fs::File) {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = tempfile::Builder::new()
        .prefix("cgsplit-shimtest-home-")
        .tempdir()
        .unwrap();
    fs::create_dir(dir.path().join(".steam")).unwrap();
    let pipe = dir.path().join(".steam/steam.pipe");
    nix::unistd::mkfifo(&pipe, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let reader = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(&pipe)
        .unwrap();
    (dir, reader)
}

fn drain(mut r: fs::File) -> Vec<u8> {
    use std::io::Read;
    let mut got = Vec::new();
    let _ = r.read_to_end(&mut got);
    got
}

#[test]
fn the_inner_instance_never_asks_steam_to_quit() {
    for (inner, want) in [
        (
            false,
            &b"'~/.steam/root/ubuntu12_32/steam' '-shutdown'\n"[..],
        ),
        (true, b""),
    ] {
        let (home, reader) = steam_home();
        let mut args: Vec<OsString> = vec!["--kill-steam".into()];
        if inner {
            args.push("--inner".into());
        }
        args.extend(["--".into(), "/bin/true".into()]);
        let out = run(shim(&args).env("HOME", home.path()));
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        assert_eq!(drain(reader), want, "inner={inner}: {}", out.stderr);
    }
}
