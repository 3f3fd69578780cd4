//! What the installer's integration tests share: a copy of the demo Steam
//! tree in a throw-away home, running the built `cgsplit-install` against it,
//! and a static ELF to register as the shim.

#![allow(dead_code)] // each test file uses its own subset

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_cgsplit-install");
/// The workspace root.
pub const WS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// Copies the directory tree `from` into `to` (which exists).
pub fn copy_dir(from: &Path, to: &Path) {
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            fs::create_dir_all(&dest).unwrap();
            copy_dir(&e.path(), &dest);
        } else {
            fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// `home/.local/share/Steam` holding a copy of `demo/steam`, with
/// `home/.steam/root` pointing at it, as a native install lays it out.
/// Returns the Steam root.
pub fn demo_root(home: &Path) -> PathBuf {
    let root = home.join(".local/share/Steam");
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(home.join(".steam")).unwrap();
    copy_dir(&Path::new(WS).join("demo/steam"), &root);
    std::os::unix::fs::symlink(&root, home.join(".steam/root")).unwrap();
    root
}

/// `cgsplit-install ARGS` with `HOME=home`, XDG dirs below it (state in
/// `state`) and none of the test hooks inherited.
pub fn install_cmd(home: &Path, state: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .env("HOME", home)
        .env("XDG_STATE_HOME", state)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env_remove("CGSPLIT_SHIM")
        .env_remove("CGSPLIT_INSTALL_CRASH_AT");
    c
}

/// Runs [`install_cmd`], echoing the command and its output to stderr (shown
/// when a test fails).
pub fn run_install(home: &Path, state: &Path, args: &[&str]) -> Output {
    let out = install_cmd(home, state, args).output().unwrap();
    eprintln!(
        "$ cgsplit-install {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A static ELF the installer accepts as the shim (`$CGSPLIT_TEST_STATIC_SHIM`,
/// the built static shim, or Debian's busybox-static), or `None` after
/// printing why (panics under `CI`).
pub fn static_shim() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("CGSPLIT_TEST_STATIC_SHIM")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    candidates.push(Path::new(WS).join("target/x86_64-unknown-linux-gnu/shim/cgsplit-shim"));
    // Any static ELF passes the installer's check; Debian's busybox-static
    // (installed by scripts/setup) is one.
    candidates.push(PathBuf::from("/bin/busybox"));
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(t).join("x86_64-unknown-linux-gnu/shim/cgsplit-shim"));
    }
    for c in &candidates {
        if let Ok(b) = fs::read(c)
            && cgsplit_install::elf::check_static(&b).is_ok()
        {
            return Some(c.clone());
        }
    }
    let why = format!("skipping: no static shim among {candidates:?} (run `cargo build-shim`)");
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("{why}");
    None
}
