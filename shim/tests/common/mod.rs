//! Helpers shared by the shim's integration tests: cgroups under the cgroup2
//! mount, running the built shim, reading its output.

#![allow(dead_code)]

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::Duration;

use cgsplit_core::mountinfo::cgroup2_mounts;

pub const SHIM: &str = env!("CARGO_BIN_EXE_cgsplit-shim");
pub const APP_ID_VARS: [&str; 3] = ["SteamAppId", "STEAM_COMPAT_APP_ID", "SteamGameId"];
pub const NOBODY: u32 = 65534;

/// The mount point of a cgroup2 mount showing the whole hierarchy, if this
/// test may use it (root, cgroup2 mounted). Otherwise prints why and returns
/// `None`, or panics when `CI` is set.
pub fn cgroup2_root() -> Option<PathBuf> {
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

/// The cgroup2 mount point from [`cgroup2_root`], or `return` from the test.
#[macro_export]
macro_rules! cgroup2_or_skip {
    () => {
        match $crate::common::cgroup2_root() {
            Some(root) => root,
            None => return,
        }
    };
}

/// A fresh `cgsplit-shimtest-<pid>-<n>/scope[/game]` tree; rmdir'd deepest
/// first on drop. Moves nothing back: the shim's processes have exited by then.
pub struct TestCgroup {
    /// `cgsplit-shimtest-<pid>-<n>`, relative to the cgroup2 root.
    pub name: String,
    /// Created directories, outermost first.
    pub dirs: Vec<PathBuf>,
}

impl TestCgroup {
    pub fn new(mount: &Path, with_game: bool) -> Self {
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

    pub fn scope(&self) -> &Path {
        &self.dirs[1]
    }

    pub fn game(&self) -> PathBuf {
        self.scope().join("game")
    }

    /// How `/proc/<pid>/cgroup` spells the game leaf: `0::/cgsplit-shimtest-…/scope/game`.
    pub fn game_line(&self) -> String {
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

pub struct Out {
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Out {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// stderr must be exactly one `cgsplit-shim:` line; returns it.
    pub fn one_line(&self) -> &str {
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "stderr: {:?}", self.stderr);
        assert!(lines[0].starts_with("cgsplit-shim: "), "{:?}", lines[0]);
        lines[0]
    }
}

/// The shim with `args`, without any of Steam's app id variables from the
/// environment the tests run in.
pub fn shim<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Command {
    shim_at(Path::new(SHIM), args)
}

/// A copy of the shim another uid can execute: the checkout (and so the
/// target directory) may sit below a directory only root can search, such as
/// a clone under `/root`. Removed with the returned directory.
pub fn shim_for_others() -> (tempfile::TempDir, PathBuf) {
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

pub fn shim_at<S: AsRef<OsStr>>(exe: &Path, args: impl IntoIterator<Item = S>) -> Command {
    let mut c = Command::new(exe);
    c.args(args);
    for v in APP_ID_VARS {
        c.env_remove(v);
    }
    // No log file unless a test asks for one (`XDG_STATE_HOME`).
    c.env_remove("HOME").env_remove("XDG_STATE_HOME");
    c
}

pub fn run(c: &mut Command) -> Out {
    let o = c.output().expect("spawn cgsplit-shim");
    Out {
        code: o.status.code(),
        stdout: o.stdout,
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

pub fn scope_args(cg: &TestCgroup) -> Vec<OsString> {
    vec!["--scope".into(), cg.scope().as_os_str().to_owned()]
}

/// The `0::` line of `/proc/<pid>/cgroup` output.
pub fn v2_line(text: &str) -> &str {
    text.lines()
        .find(|l| l.starts_with("0::"))
        .unwrap_or_else(|| panic!("no 0:: line in {text:?}"))
}
