//! Small fixtures shared by the integration tests in `tests/tests/`.
//!
//! - Reading a testbed script's report: scripts print `key=value` lines (and
//!   `key=value` words inside a line); [`vars`], [`get`], [`first_var`] and
//!   [`field`] read them back, [`show`] formats a run's output for an assertion message.
//! - Polling in a testbed script: [`SH_WAIT_FOR`], [`SH_WAIT_FOR_COUNT`].
//! - Directories the testbed's uid can use: [`shared_tempdir`] (0755, it
//!   reads from it) and [`report_dir`] (0777, it writes into it).
//! - Steam trees: [`copy_demo_steam`] (the repo's `demo/steam`, the real
//!   formats of `/work/shared/corpus`), [`demo_home`] (that tree as a native
//!   install lays it out), [`sniper_runtime`] (Steam Linux Runtime 3.0
//!   installed in a library), [`localconfig`] (a `localconfig.vdf` with app
//!   620's launch options), and the file helpers [`write_file`], [`copy_dir`],
//!   [`readable_by_all`].

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `key=value` lines of a script's stdout (split at the first `=`, the
/// value's trailing whitespace trimmed; a later line wins over an earlier
/// one with the same key). Lines without `=` are ignored.
pub fn vars(out: &Output) -> HashMap<String, String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_end().to_owned()))
        .collect()
}

/// A run's stdout and stderr, labelled, for an assertion message.
pub fn show(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The value of `k` in `v` (from [`vars`] of `out`). Panics, showing the
/// whole output, when the script did not print `k=`.
pub fn get<'a>(v: &'a HashMap<String, String>, k: &str, out: &Output) -> &'a str {
    v.get(k)
        .map(String::as_str)
        .unwrap_or_else(|| panic!("no `{k}=` in the script output\n{}", show(out)))
}

/// The value of the first `k=` line of `out`'s stdout, as printed (not
/// trimmed; unlike [`vars`], an earlier line wins). Panics, showing the whole
/// output, when there is none.
pub fn first_var(out: &Output, k: &str) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .find(|(kk, _)| *kk == k)
        .map(|(_, v)| v.to_owned())
        .unwrap_or_else(|| panic!("no {k}=\n{}", show(out)))
}

/// The value of the space-separated word `key=value` in `line`, e.g.
/// `field("game pid=7 cgroup=/x", "pid")` is `"7"`. Panics, naming the key
/// and the line, when there is no such word.
pub fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split(' ')
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

/// Shell (also busybox sh, inside a flatpak sandbox) defining `wait_for
/// CMD…`: runs CMD every 50 ms until it succeeds, at most 200 times (about
/// 10 s), and returns 1 when it never did. One line, no newline: put it on
/// a line of its own in a testbed script, before the first use.
pub const SH_WAIT_FOR: &str = "wait_for() { i=0; until \"$@\"; do i=$((i+1)); [ $i -ge 200 ] && return 1; sleep 0.05; done; }";

/// Shell defining `wait_for CMD…` like [`SH_WAIT_FOR`], but it prints how
/// many tries failed (200: it gave up) and returns 0, for scripts that report
/// the count (`echo "k=$(wait_for …)"`) and let the test judge it.
pub const SH_WAIT_FOR_COUNT: &str = "wait_for() { i=0; until \"$@\"; do i=$((i+1)); [ $i -ge 200 ] && break; sleep 0.05; done; echo $i; }";

/// A new temporary directory `<tmp>/<prefix>XXXXXX`, made mode 0755 so the
/// testbed's unprivileged uid can reach what the test puts there (tempfile
/// creates it 0700). Removed when the returned guard drops.
pub fn shared_tempdir(prefix: &str) -> tempfile::TempDir {
    let tmp = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    tmp
}

/// Creates `dir` (and its parents) and makes it mode 0777: a directory the
/// testbed's uid writes its reports into (that uid's number is only known
/// inside the run). Returns `dir`.
pub fn report_dir(dir: PathBuf) -> PathBuf {
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

/// Writes `text` to `path` with permission bits `mode` (e.g. 0o755 for a
/// script), creating the parent directories.
pub fn write_file(path: &Path, text: &str, mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Copies the contents of directory `from` into the existing directory
/// `to`, recursively (file modes kept by `fs::copy`; symlinks followed).
pub fn copy_dir(from: &Path, to: &Path) {
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            fs::create_dir_all(&t).unwrap();
            copy_dir(&e.path(), &t);
        } else {
            fs::copy(e.path(), &t).unwrap();
        }
    }
}

/// Makes each of `paths` (recursively) readable, and its directories
/// searchable, by every uid (`chmod -R a+rX`): the testbed's uid copies or
/// runs them. Panics when `chmod` fails.
pub fn readable_by_all(paths: &[&Path]) {
    let st = Command::new("chmod")
        .args(["-R", "a+rX"])
        .args(paths)
        .status()
        .unwrap();
    assert!(st.success(), "chmod -R a+rX {paths:?}: {st}");
}

/// Writes a `localconfig.vdf` at `path` whose only launch options are
/// `options` for app 620 (`UserLocalConfigStore/Software/Valve/Steam/apps/
/// 620/LaunchOptions`, `\` and `"` escaped as Steam's KeyValues text does;
/// `shared/reference/STEAM.md` §4).
pub fn localconfig(path: &Path, options: &str) {
    let escaped = options.replace('\\', "\\\\").replace('"', "\\\"");
    fs::write(
        path,
        format!(
            "\"UserLocalConfigStore\"\n{{\n\t\"Software\"\n\t{{\n\t\t\"Valve\"\n\t\t{{\n\t\t\t\"Steam\"\n\t\t\t{{\n\t\t\t\t\"apps\"\n\t\t\t\t{{\n\t\t\t\t\t\"620\"\n\t\t\t\t\t{{\n\t\t\t\t\t\t\"LaunchOptions\"\t\t\"{escaped}\"\n\t\t\t\t\t}}\n\t\t\t\t}}\n\t\t\t}}\n\t\t}}\n\t}}\n}}\n"
        ),
    )
    .unwrap();
}

/// The repo's demo Steam tree, `demo/steam` (one account, app 620 with
/// launch options, `libraryfolders.vdf` with an `@STEAM_ROOT@` placeholder).
pub fn demo_steam() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../demo/steam")
}

/// Creates `to` and copies the demo Steam tree ([`demo_steam`]) into it.
pub fn copy_demo_steam(to: &Path) {
    fs::create_dir_all(to).unwrap();
    copy_dir(&demo_steam(), to);
}

/// Copies the demo Steam tree into `home` the way a native install lays it
/// out: `~/.local/share/Steam` (copied with `cp -a`) with `~/.steam/root`
/// pointing at it. Returns the Steam root.
pub fn demo_home(home: &Path) -> PathBuf {
    let steam = home.join(".local/share/Steam");
    fs::create_dir_all(&steam).unwrap();
    fs::create_dir_all(home.join(".steam")).unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", demo_steam().display()))
        .arg(&steam)
        .status()
        .unwrap();
    assert!(st.success());
    std::os::unix::fs::symlink(&steam, home.join(".steam/root")).unwrap();
    steam
}

/// Installs "Steam Linux Runtime 3.0 (sniper)" (app 1628350) in the library
/// at `root`: its `steamapps/appmanifest_1628350.acf` and
/// `steamapps/common/SteamLinuxRuntime_sniper/toolmanifest.vdf` whose
/// `commandline` is `/_v2-entry-point --verb=%verb% --` (`shared/reference/STEAM.md` §2).
/// Returns the runtime's directory; the caller puts an `_v2-entry-point`
/// stand-in there.
pub fn sniper_runtime(root: &Path) -> PathBuf {
    write_file(
        &root.join("steamapps/appmanifest_1628350.acf"),
        "\"AppState\"\n{\n\t\"appid\"\t\t\"1628350\"\n\t\"name\"\t\t\"Steam Linux Runtime 3.0 (sniper)\"\n}\n",
        0o644,
    );
    let runtime = root.join("steamapps/common/SteamLinuxRuntime_sniper");
    write_file(
        &runtime.join("toolmanifest.vdf"),
        "\"manifest\"\n{\n\t\"version\"\t\t\"2\"\n\t\"commandline\"\t\t\"/_v2-entry-point --verb=%verb% --\"\n}\n",
        0o644,
    );
    runtime
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_finds_the_word_and_not_a_longer_key() {
        assert_eq!(field("game pid=7 ppid=1 cgroup=/a b", "pid"), "7");
        assert_eq!(field("game pid=7 ppid=1 cgroup=/a", "cgroup"), "/a");
        assert_eq!(field("x pidx=3 pid=", "pid"), "");
    }
}
