//! Runs the built `cgsplit-shim` against real kernel cgroups (cgroup v2).
//!
//! Needs root and a cgroup2 mount (on the test VMs: `/sys/fs/cgroup/unified`).
//! Without them the cgroup tests print why and pass, unless `CI` is set, in
//! which case they fail. Each test makes its own `cgsplit-shimtest-<pid>-<n>/
//! scope/game` tree at the cgroup2 root and removes it on drop.

mod common;

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt;

use common::*;

#[test]
fn joins_the_game_leaf() {
    let mount = cgroup2_or_skip!();
    let cg = TestCgroup::new(&mount, true);
    let mut args = scope_args(&cg);
    args.extend(["--", "/bin/cat", "/proc/self/cgroup"].map(OsString::from));
    let out = run(&mut shim(args));
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert_eq!(out.stderr, "");
    assert_eq!(v2_line(&out.stdout()), cg.game_line());
}

#[test]
fn exit_status_is_the_games() {
    let mount = cgroup2_or_skip!();
    let cg = TestCgroup::new(&mount, true);
    let mut args = scope_args(&cg);
    args.extend(["--", "/bin/sh", "-c", "exit 7"].map(OsString::from));
    let out = run(&mut shim(args));
    assert_eq!(out.code, Some(7), "stderr: {}", out.stderr);
    assert_eq!(out.stderr, "");
}

#[test]
fn children_of_the_game_are_in_the_leaf_too() {
    let mount = cgroup2_or_skip!();
    let cg = TestCgroup::new(&mount, true);
    let mut args = scope_args(&cg);
    // The shell prints its pid, then a forked cat lists the leaf's processes,
    // then a forked cat prints its own cgroup.
    let script = r#"echo "$$"; /bin/cat "$1/cgroup.procs"; /bin/cat /proc/self/cgroup & wait"#;
    args.extend(["--", "/bin/sh", "-c", script, "sh"].map(OsString::from));
    args.push(cg.game().into_os_string());
    let out = run(&mut shim(args));
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    let stdout = out.stdout();
    let mut lines = stdout.lines();
    let sh_pid = lines.next().unwrap().to_owned();
    let procs: Vec<&str> = lines
        .by_ref()
        .take_while(|l| !l.starts_with("0::"))
        .collect();
    assert!(
        procs.contains(&sh_pid.as_str()),
        "{sh_pid} not in {procs:?}"
    );
    assert!(
        procs.len() >= 2,
        "the forked cat should be listed too: {procs:?}"
    );
    assert_eq!(v2_line(&stdout), cg.game_line());
}

#[test]
fn arguments_arrive_byte_exact() {
    let mount = cgroup2_or_skip!();
    let cg = TestCgroup::new(&mount, true);
    let words: Vec<OsString> = [
        &b""[..],
        b"a b",
        b"  two  spaces ",
        b"it's",
        b"\"dq\"",
        b"\xc3\xbcn\xc3\xaf c\xc3\xb4d\xc3\xa9",
        b"$HOME `id` *",
        b"back\\slash\\n",
        b"tab\there\nnewline",
        b"--",
        b"--scope",
        b"",
        b"\xff\xfe not utf-8",
    ]
    .iter()
    .map(|b| OsStr::from_bytes(b).to_owned())
    .collect();
    let mut args = scope_args(&cg);
    args.extend(["--", "/bin/printf", "[%s]"].map(OsString::from));
    args.extend(words.iter().cloned());
    let out = run(&mut shim(args));
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert_eq!(out.stderr, "");
    let mut want = Vec::new();
    for w in &words {
        want.push(b'[');
        want.extend_from_slice(w.as_bytes());
        want.push(b']');
    }
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&want)
    );
    assert_eq!(out.stdout, want);
}

#[test]
fn missing_leaf_warns_and_runs_the_game() {
    let mount = cgroup2_or_skip!();
    let cg = TestCgroup::new(&mount, false);
    let mut args = scope_args(&cg);
    args.extend(["--", "/bin/cat", "/proc/self/cgroup"].map(OsString::from));
    let out = run(&mut shim(args));
    assert_eq!(out.code, Some(0));
    let line = out.one_line();
    let procs = cg.game().join("cgroup.procs");
    assert!(line.contains(&procs.display().to_string()), "{line}");
    assert!(line.contains("ENOENT"), "{line}");
    assert!(line.contains("scope not provisioned"), "{line}");
    // The game ran, where the shim was started.
    let own = fs::read_to_string("/proc/self/cgroup").unwrap();
    assert_eq!(v2_line(&out.stdout()), v2_line(&own));
}

#[test]
fn leaf_not_writable_for_another_uid_warns_and_runs_the_game() {
    let mount = cgroup2_or_skip!();
    let cg = TestCgroup::new(&mount, true);
    let mut args = scope_args(&cg);
    args.extend(["--", "/bin/echo", "ran"].map(OsString::from));
    let (_bin, exe) = shim_for_others();
    // Root-owned leaf: refused at open().
    let out = run(shim_at(&exe, &args).uid(NOBODY).gid(NOBODY));
    assert_eq!(out.code, Some(0));
    assert_eq!(out.stdout(), "ran\n");
    let line = out.one_line();
    assert!(line.contains("open failed: EACCES"), "{line}");
    assert!(
        line.contains(&cg.game().join("cgroup.procs").display().to_string()),
        "{line}"
    );
    assert!(
        line.contains(&format!("not inside user@{NOBODY}.service")),
        "{line}"
    );

    // Leaf handed to the uid but the common ancestor is root's: refused at write().
    chown(cg.game(), Some(NOBODY), Some(NOBODY)).unwrap();
    chown(cg.game().join("cgroup.procs"), Some(NOBODY), Some(NOBODY)).unwrap();
    let out = run(shim_at(&exe, &args).uid(NOBODY).gid(NOBODY));
    assert_eq!(out.code, Some(0));
    assert_eq!(out.stdout(), "ran\n");
    let line = out.one_line();
    assert!(line.contains("write failed: EACCES"), "{line}");
}

#[test]
fn compat_form_with_and_without_separator() {
    let mount = cgroup2_or_skip!();
    for sep in [&[][..], &["--"]] {
        let cg = TestCgroup::new(&mount, true);
        let mut args = scope_args(&cg);
        args.extend(["compat", "waitforexitandrun"].map(OsString::from));
        args.extend(sep.iter().map(OsString::from));
        args.extend(["/bin/cat", "/proc/self/cgroup"].map(OsString::from));
        let out = run(&mut shim(&args));
        assert_eq!(out.code, Some(0), "{args:?}: {}", out.stderr);
        assert_eq!(out.stderr, "");
        assert_eq!(v2_line(&out.stdout()), cg.game_line(), "{args:?}");
    }
}

#[test]
fn env_mode_names_the_derived_leaf() {
    let mount = cgroup2_or_skip!();
    let leaf =
        mount.join("user.slice/user-0.slice/user@0.service/games.slice/cgsplit-620.scope/game");
    if leaf.exists() {
        eprintln!("skipping: {} exists on this host", leaf.display());
        return;
    }
    let out = run(shim(["--", "/bin/echo", "ran"]).env("SteamAppId", "620"));
    assert_eq!(out.code, Some(0));
    assert_eq!(out.stdout(), "ran\n");
    let line = out.one_line();
    let procs = leaf.join("cgroup.procs");
    assert!(
        line.contains(&format!("{} (open failed: ENOENT", procs.display())),
        "{line}"
    );
    assert!(line.contains("cgsplit provision --app 620"), "{line}");

    // The compat form reads STEAM_COMPAT_APP_ID for install scripts (no SteamAppId).
    let out = run(shim(["compat", "run", "/bin/echo", "ran"]).env("STEAM_COMPAT_APP_ID", "620"));
    assert_eq!(out.code, Some(0));
    assert!(out.one_line().contains(&procs.display().to_string()));
}

// The tests below need neither root nor cgroups.

#[test]
fn non_steam_shortcut_has_no_app_id_and_runs_anyway() {
    let out = run(shim(["compat", "waitforexitandrun", "/bin/echo", "ran"])
        .env("STEAM_COMPAT_APP_ID", "0")
        .env("SteamGameId", "13346791552837468160"));
    assert_eq!(out.code, Some(0));
    assert_eq!(out.stdout(), "ran\n");
    let line = out.one_line();
    assert!(line.contains("no Steam app id"), "{line}");
    assert!(
        line.contains("SteamGameId=`13346791552837468160`"),
        "{line}"
    );
}

#[test]
fn unknown_compat_verb_is_refused() {
    let out = run(&mut shim(["compat", "runinprefix", "/bin/echo", "ran"]));
    assert_eq!(out.code, Some(3));
    assert_eq!(out.stdout(), "", "the command must not run");
    assert!(out.one_line().contains("unknown compat verb `runinprefix`"));
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &[][..],
        &["--"],
        &["/bin/echo", "x"],
        &["--bogus", "--", "x"],
    ] {
        let out = run(&mut shim(args));
        assert_eq!(out.code, Some(2), "{args:?}");
        assert_eq!(out.stdout(), "");
        assert!(out.stderr.starts_with("cgsplit-shim: "), "{}", out.stderr);
        assert!(out.stderr.contains("usage: cgsplit-shim"), "{}", out.stderr);
    }
}

#[test]
fn exec_failures_use_shell_exit_codes() {
    let dir = std::env::temp_dir().join(format!("cgsplit-shimtest-exec-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let not_exec = dir.join("game.sh");
    fs::write(&not_exec, "#!/bin/sh\n").unwrap();

    let cases: [(&OsStr, i32, &str); 3] = [
        (OsStr::new("/nonexistent/game"), 127, "not found (ENOENT"),
        (
            OsStr::new("cgsplit-no-such-game-on-path"),
            127,
            "not found (ENOENT",
        ),
        (not_exec.as_os_str(), 126, "cannot be executed (EACCES"),
    ];
    // No app id: a warning line comes first, then the exec failure. PATH is
    // fixed: execvp reports EACCES, not ENOENT, when a PATH entry is unsearchable.
    let outs: Vec<Out> = cases
        .iter()
        .map(|(cmd, _, _)| run(shim([OsStr::new("--"), cmd]).env("PATH", "/usr/bin:/bin")))
        .collect();
    fs::remove_dir_all(&dir).unwrap();
    for ((cmd, code, what), out) in cases.iter().zip(outs) {
        assert_eq!(out.code, Some(*code), "{cmd:?}: {}", out.stderr);
        let last = out.stderr.lines().last().unwrap();
        assert!(last.starts_with("cgsplit-shim: "), "{last}");
        assert!(last.contains(&*cmd.to_string_lossy()), "{last}");
        assert!(last.contains(what), "{last}");
    }
}

#[test]
fn path_is_searched() {
    let out = run(shim(["--", "printf", "%s|", "a b"]).env("PATH", "/nonexistent:/usr/bin:/bin"));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout(), "a b|");
}
