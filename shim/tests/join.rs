//! Runs the built `cgsplit-shim` against real kernel cgroups (cgroup v2).
//!
//! Needs root and a cgroup2 mount (on the test VMs: `/sys/fs/cgroup/unified`).
//! Without them the cgroup tests print why and pass, unless `CI` is set, in
//! which case they fail. Each test makes its own `cgsplit-shimtest-<pid>-<n>/
//! scope/game` tree at the cgroup2 root and removes it on drop.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::Duration;

use cgsplit_core::mountinfo::cgroup2_mounts;

const SHIM: &str = env!("CARGO_BIN_EXE_cgsplit-shim");
const APP_ID_VARS: [&str; 3] = ["SteamAppId", "STEAM_COMPAT_APP_ID", "SteamGameId"];
const NOBODY: u32 = 65534;

/// The mount point of a cgroup2 mount showing the whole hierarchy, if this
/// test may use it (root, cgroup2 mounted). Otherwise prints why and returns
/// `None`, or panics when `CI` is set.
fn cgroup2_root() -> Option<PathBuf> {
    let reason = if !nix::unistd::geteuid().is_root() {
        "not root: moving processes between cgroups needs it".to_owned()
    } else {
        let text = fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
        match cgroup2_mounts(&text).into_iter().find(|m| m.root == "/") {
            Some(m) => return Some(m.mount_point),
            None => "no cgroup2 mount with root `/` in /proc/self/mountinfo".to_owned(),
        }
    };
    if std::env::var_os("CI").is_some() {
        panic!(
            "cannot run the cgroup tests: {reason} (CI is set, so this fails instead of skipping)"
        );
    }
    eprintln!("skipping: {reason}");
    None
}

macro_rules! cgroup2_or_skip {
    () => {
        match cgroup2_root() {
            Some(root) => root,
            None => return,
        }
    };
}

/// A fresh `cgsplit-shimtest-<pid>-<n>/scope[/game]` tree; rmdir'd deepest
/// first on drop. Moves nothing back: the shim's processes have exited by then.
struct TestCgroup {
    /// `cgsplit-shimtest-<pid>-<n>`, relative to the cgroup2 root.
    name: String,
    /// Created directories, outermost first.
    dirs: Vec<PathBuf>,
}

impl TestCgroup {
    fn new(mount: &Path, with_game: bool) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "cgsplit-shimtest-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let top = mount.join(&name);
        let mut dirs = vec![top.clone(), top.join("scope")];
        if with_game {
            dirs.push(top.join("scope/game"));
        }
        let mut cg = Self {
            name,
            dirs: Vec::new(),
        };
        for d in dirs {
            fs::create_dir(&d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
            cg.dirs.push(d);
        }
        cg
    }

    fn scope(&self) -> &Path {
        &self.dirs[1]
    }

    fn game(&self) -> PathBuf {
        self.scope().join("game")
    }

    /// How `/proc/<pid>/cgroup` spells the game leaf: `0::/cgsplit-shimtest-…/scope/game`.
    fn game_line(&self) -> String {
        format!("0::/{}/scope/game", self.name)
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for d in self.dirs.iter().rev() {
            // A cgroup can read as populated for a moment after its last process exits.
            for attempt in 0.. {
                match fs::remove_dir(d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == ErrorKind::NotFound => break,
                    Err(e) if attempt >= 100 => {
                        eprintln!("leaving {}: {e}", d.display());
                        break;
                    }
                    Err(_) => sleep(Duration::from_millis(20)),
                }
            }
        }
    }
}

struct Out {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

impl Out {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// stderr must be exactly one `cgsplit-shim:` line; returns it.
    fn one_line(&self) -> &str {
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "stderr: {:?}", self.stderr);
        assert!(lines[0].starts_with("cgsplit-shim: "), "{:?}", lines[0]);
        lines[0]
    }
}

/// The shim with `args`, without any of Steam's app id variables from the
/// environment the tests run in.
fn shim<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Command {
    shim_at(Path::new(SHIM), args)
}

/// A copy of the shim another uid can execute: the checkout (and so the
/// target directory) may sit below a directory only root can search, such as
/// a clone under `/root`. Removed with the returned directory.
fn shim_for_others() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("cgsplit-shimtest-bin-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.path().join("cgsplit-shim");
    std::fs::copy(SHIM, &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, copy)
}

fn shim_at<S: AsRef<OsStr>>(exe: &Path, args: impl IntoIterator<Item = S>) -> Command {
    let mut c = Command::new(exe);
    c.args(args);
    for v in APP_ID_VARS {
        c.env_remove(v);
    }
    c
}

fn run(c: &mut Command) -> Out {
    let o = c.output().expect("spawn cgsplit-shim");
    Out {
        code: o.status.code(),
        stdout: o.stdout,
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn scope_args(cg: &TestCgroup) -> Vec<OsString> {
    vec!["--scope".into(), cg.scope().as_os_str().to_owned()]
}

/// The `0::` line of `/proc/<pid>/cgroup` output.
fn v2_line(text: &str) -> &str {
    text.lines()
        .find(|l| l.starts_with("0::"))
        .unwrap_or_else(|| panic!("no 0:: line in {text:?}"))
}

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
    let out = run(&mut shim(["compat", "getcompatpath", "/bin/echo", "ran"]));
    assert_eq!(out.code, Some(3));
    assert_eq!(out.stdout(), "", "the command must not run");
    assert!(
        out.one_line()
            .contains("`getcompatpath` is not supported yet")
    );
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
