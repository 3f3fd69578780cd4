//! Locating the workspace's built binaries from a running test.
//!
//! Integration tests run as `<target>/<profile>/deps/<test>-<hash>`; the
//! workspace's binaries sit next to `deps/` in `<target>/<profile>/`. This
//! follows `CARGO_TARGET_DIR` and the profile automatically, because it starts
//! from the test executable itself.
//!
//! Cargo only builds binaries of the package under test for its integration
//! tests, so binaries of other packages (`cgsplit` from `cgsplit-companion`)
//! must be built first: `cargo build --workspace --bins`.

use std::path::PathBuf;

/// `<target>/<profile>/`: the directory of the current executable, or its
/// parent when the executable is in `deps/` (integration and unit tests).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().expect("executable has a parent").to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().expect("deps has a parent").to_path_buf()
    } else {
        dir
    }
}

/// The built binary `name` in [`target_dir`], if it exists.
pub fn try_bin(name: &str) -> Option<PathBuf> {
    let p = target_dir().join(name);
    p.is_file().then_some(p)
}

/// The built binary `name` (e.g. `cgsplit`, `cgsplit-testbed`, `fake-steam`).
///
/// Panics, naming the path and the build command, when it is not built.
pub fn bin(name: &str) -> PathBuf {
    try_bin(name).unwrap_or_else(|| {
        panic!(
            "{} is not built; run `cargo build --workspace --bins` (same profile and \
             CARGO_TARGET_DIR) before the tests",
            target_dir().join(name).display()
        )
    })
}

/// The built binary `name` as a command inside a testbed run sees it:
/// `<TARGET_MOUNT>/<profile>/<name>` (the testbed bind-mounts the target
/// directory there). Use it in testbed scripts instead of a host path: the
/// checkout may sit below a directory the test uid cannot search (CI clones
/// under `/root`, mode 0700). Panics like [`bin`] when it is not built.
pub fn testbed_bin(name: &str) -> PathBuf {
    bin(name);
    let dir = target_dir();
    let profile = dir.file_name().expect("<target>/<profile> has a name");
    PathBuf::from(crate::runner::inner::TARGET_MOUNT)
        .join(profile)
        .join(name)
}
