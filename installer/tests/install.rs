//! End-to-end runs of the built `cgsplit-install` against a throw-away
//! Steam tree (a copy of `demo/steam`), with `HOME` and `XDG_STATE_HOME`
//! pointed at a temp dir.
//!
//! The full install path needs a real static shim: `$CGSPLIT_TEST_STATIC_SHIM`
//! or `target/x86_64-unknown-linux-gnu/shim/cgsplit-shim` (`cargo build-shim`).
//! Without one those tests print `skipping: …` (and fail when `CI` is set);
//! the refusal of a dynamic shim (`/bin/true`) is always tested.

use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use keyvalues_parser::{Obj, PartialVdf};

const BIN: &str = env!("CARGO_BIN_EXE_cgsplit-install");
const WS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

struct Steam {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    root: PathBuf,
    state: PathBuf,
}

impl Steam {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home dir");
        let root = home.join(".local/share/Steam");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(home.join(".steam")).unwrap();
        copy_dir(&Path::new(WS).join("demo/steam"), &root);
        std::os::unix::fs::symlink(&root, home.join(".steam/root")).unwrap();
        let lf = root.join("steamapps/libraryfolders.vdf");
        let text = fs::read_to_string(&lf).unwrap();
        fs::write(&lf, text.replace("@STEAM_ROOT@", root.to_str().unwrap())).unwrap();
        let state = tmp.path().join("state");
        Steam {
            _tmp: tmp,
            home,
            root,
            state,
        }
    }

    fn localconfig(&self, account: u32) -> PathBuf {
        self.root
            .join(format!("userdata/{account}/config/localconfig.vdf"))
    }

    fn tool_dir(&self) -> PathBuf {
        self.root.join("compatibilitytools.d/cgsplit")
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = Command::new(BIN)
            .args(args)
            .env("HOME", &self.home)
            .env("XDG_STATE_HOME", &self.state)
            .env_remove("CGSPLIT_SHIM")
            .output()
            .unwrap();
        eprintln!(
            "$ cgsplit-install {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

fn copy_dir(from: &Path, to: &Path) {
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

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A real static shim, or `None` after printing why (panics under `CI`).
fn static_shim() -> Option<PathBuf> {
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

fn tree(bytes: &[u8]) -> PartialVdf<'static> {
    keyvalues_parser::parse(std::str::from_utf8(bytes).unwrap())
        .unwrap()
        .into_owned()
}

/// Takes `Software/Valve/Steam/apps/<app>/LaunchOptions` out of the tree
/// (case-insensitively), pruning blocks left empty; returns its value.
fn take_launch_options(v: &mut PartialVdf<'_>, app: u32) -> Option<String> {
    fn go(obj: &mut Obj<'_>, path: &[&str]) -> Option<String> {
        let (first, rest) = path.split_first()?;
        let key = obj.keys().find(|k| k.eq_ignore_ascii_case(first))?.clone();
        if rest.is_empty() {
            return obj
                .remove(&key)?
                .into_iter()
                .next()
                .map(|v| v.unwrap_str().into_owned());
        }
        let inner = obj
            .get_mut(&key)?
            .iter_mut()
            .find_map(|v| v.get_mut_obj())?;
        let got = go(inner, rest);
        if inner.is_empty() {
            obj.remove(&key);
        }
        got
    }
    let app = app.to_string();
    go(
        v.value.get_mut_obj().unwrap(),
        &["Software", "Valve", "Steam", "apps", &app, "LaunchOptions"],
    )
}

#[test]
fn dynamic_shim_is_refused_and_nothing_is_written() {
    let s = Steam::new();
    let lc = s.localconfig(39734273);
    let before = fs::read(&lc).unwrap();
    let out = s.run(&["--game", "620", "--shim", "/bin/true"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("/bin/true") && err.contains("dynamically linked"),
        "{err}"
    );
    assert!(err.contains("cargo build-shim"), "{err}");
    assert!(
        err.contains("target/x86_64-unknown-linux-gnu/shim/cgsplit-shim"),
        "{err}"
    );
    assert_eq!(fs::read(&lc).unwrap(), before);
    assert!(!s.tool_dir().exists());
    assert!(!s.state.exists());
    // A missing shim names every place tried.
    let out = s.run(&["--game", "620", "--shim", "/nonexistent/cgsplit-shim"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("/nonexistent/cgsplit-shim"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn install_twice_then_remove_is_byte_exact() {
    let Some(shim) = static_shim() else { return };
    let shim = shim.to_str().unwrap();
    let s = Steam::new();
    let lc = s.localconfig(39734273);
    let before = fs::read(&lc).unwrap();

    let out = s.run(&["--game", "620", "--shim", shim]);
    assert!(out.status.success());
    let o = stdout(&out);
    let shim_dest = s.tool_dir().join("cgsplit-shim");
    // "home dir" has a space: the shim path is single-quoted.
    let want = format!(
        "DEMO_GREETING='hello from Steam' '{}' -- %command% -novid",
        shim_dest.display()
    );
    assert!(
        o.contains(&format!(
            "LaunchOptions for app 620: \"DEMO_GREETING='hello from Steam' %command% -novid\" -> {want:?}"
        )),
        "{o}"
    );
    assert!(o.contains("Portal 2"), "{o}");
    // The backup next to the file holds the old bytes.
    let backup = lc.with_file_name("localconfig.vdf.cgsplit-bak");
    assert!(
        o.contains(&format!("previous version kept as {}", backup.display())),
        "{o}"
    );
    assert_eq!(fs::read(&backup).unwrap(), before);

    // Compatibility tool files.
    let tool = fs::read_to_string(s.tool_dir().join("compatibilitytool.vdf")).unwrap();
    let v = tree(tool.as_bytes());
    let t = v.value.get_obj().unwrap()["compat_tools"][0]
        .get_obj()
        .unwrap()["cgsplit"][0]
        .get_obj()
        .unwrap();
    assert_eq!(t["install_path"][0].get_str(), Some("."));
    assert_eq!(t["from_oslist"][0].get_str(), Some("linux"));
    assert_eq!(t["to_oslist"][0].get_str(), Some("linux"));
    assert_eq!(
        t["display_name"][0].get_str(),
        Some(concat!(
            "cgsplit ",
            env!("CARGO_PKG_VERSION"),
            " (own cgroup scope)"
        ))
    );
    let m = fs::read_to_string(s.tool_dir().join("toolmanifest.vdf")).unwrap();
    let m = tree(m.as_bytes());
    let m = m.value.get_obj().unwrap();
    assert_eq!(m["version"][0].get_str(), Some("2"));
    assert_eq!(
        m["commandline"][0].get_str(),
        Some("/cgsplit-shim compat %verb% --")
    );
    assert_eq!(fs::read(&shim_dest).unwrap(), fs::read(shim).unwrap());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&shim_dest).unwrap().permissions().mode() & 0o777,
        0o755
    );

    // localconfig.vdf: same tree except the key.
    let after = fs::read(&lc).unwrap();
    let (mut a, mut b) = (tree(&before), tree(&after));
    let old_v = take_launch_options(&mut a, 620);
    let new_v = take_launch_options(&mut b, 620);
    assert_eq!(a, b);
    assert_eq!(
        old_v.as_deref(),
        Some("DEMO_GREETING='hello from Steam' %command% -novid")
    );
    assert_eq!(new_v.as_deref(), Some(want.as_str()));

    // Twice: nothing changes.
    let state_file = s.state.join("cgsplit/launch-options.vdf");
    let state1 = fs::read(&state_file).unwrap();
    let out = s.run(&["--game", "620", "--shim", shim]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("(unchanged)"));
    assert!(!stdout(&out).contains("Wrote"));
    assert_eq!(fs::read(&lc).unwrap(), after);
    assert_eq!(fs::read(&state_file).unwrap(), state1);

    // Remove: byte-identical, tool gone, record gone.
    let out = s.run(&["--remove", "--game", "620"]);
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("restored byte for byte"),
        "{}",
        stdout(&out)
    );
    assert_eq!(fs::read(&lc).unwrap(), before);
    assert!(!s.tool_dir().exists());
    assert!(!state_file.exists());
}

#[test]
fn created_blocks_are_removed_again_and_steamid64_is_accepted() {
    let Some(shim) = static_shim() else { return };
    let s = Steam::new();
    // The corpus file with no `apps` block at all, as this account's file.
    let lc = s.localconfig(39734273);
    let mexus =
        fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(
            "tests/fixtures/corpus/mexus__steam-vdf-parser__tests__fixtures__localconfig.vdf",
        ))
        .unwrap();
    fs::write(&lc, &mexus).unwrap();
    let out = s.run(&[
        "--game",
        "620",
        "--account",
        "76561198000000001",
        "--shim",
        shim.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("(key created)"));
    let after = fs::read(&lc).unwrap();
    let (mut a, mut b) = (tree(&mexus), tree(&after));
    assert_eq!(take_launch_options(&mut a, 620), None);
    assert!(
        take_launch_options(&mut b, 620)
            .unwrap()
            .ends_with("cgsplit-shim' -- %command%")
    );
    assert_eq!(a, b);
    let out = s.run(&["--remove", "--game", "620", "--account", "39734273"]);
    assert!(out.status.success());
    assert_eq!(fs::read(&lc).unwrap(), mexus);

    // The lowercase valve/steam account: blocks created under them.
    let lc2 = s.localconfig(39735049);
    let before2 = fs::read(&lc2).unwrap();
    let out = s.run(&[
        "--game",
        "620",
        "--account",
        "39735049",
        "--shim",
        shim.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("UserLocalConfigStore/Software/valve/steam/apps/620/LaunchOptions")
    );
    let out = s.run(&["--remove", "--game", "620", "--account", "39735049"]);
    assert!(out.status.success());
    assert_eq!(fs::read(&lc2).unwrap(), before2);
}

#[test]
fn hand_edited_value_is_left_alone_on_remove() {
    let Some(shim) = static_shim() else { return };
    let s = Steam::new();
    let lc = s.localconfig(39734273);
    assert!(
        s.run(&["--game", "620", "--shim", shim.to_str().unwrap()])
            .status
            .success()
    );
    let text = fs::read_to_string(&lc).unwrap();
    let edited = text.replace(
        "DEMO_GREETING='hello from Steam' '",
        "DEMO_GREETING='hi' mangohud '",
    );
    assert_ne!(edited, text);
    fs::write(&lc, &edited).unwrap();
    let out = s.run(&["--remove", "--game", "620"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("changed by hand"), "{}", stdout(&out));
    // The user's value (with our shim in it) stays exactly as they left it.
    assert_eq!(fs::read_to_string(&lc).unwrap(), edited);
    assert!(!s.state.join("cgsplit/launch-options.vdf").exists());
}

#[test]
fn refuses_while_steam_is_running() {
    let s = Steam::new();
    let pipe = s.home.join(".steam/steam.pipe");
    nix::unistd::mkfifo(&pipe, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let _reader = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(&pipe)
        .unwrap();
    let lc = s.localconfig(39734273);
    let before = fs::read(&lc).unwrap();
    // The Steam check comes before the shim check, so any shim path will do.
    for args in [
        &["--game", "620", "--shim", "/bin/true"][..],
        &["--remove", "--game", "620"],
    ] {
        let out = s.run(args);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("Steam is running (")
                && stderr(&out).contains("quit Steam first, or pass --stop-steam"),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(fs::read(&lc).unwrap(), before);
    assert!(!s.tool_dir().exists());
}

#[test]
fn account_problems_list_what_was_found() {
    let s = Steam::new();
    fs::remove_file(s.root.join("config/loginusers.vdf")).unwrap();
    let out = s.run(&["--game", "620", "--shim", "/bin/true"]);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains("loginusers.vdf is missing") && e.contains("[39734273, 39735049]"),
        "{e}"
    );

    fs::write(
        s.root.join("config/loginusers.vdf"),
        "\"users\" { \"76561198000000001\" { \"Timestamp\" \"9\" } \"76561198000000777\" { \"Timestamp\" \"9\" } }",
    )
    .unwrap();
    let out = s.run(&["--game", "620", "--shim", "/bin/true"]);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains("76561198000000001") && e.contains("76561198000000777"),
        "{e}"
    );
    assert!(e.contains("--account"), "{e}");

    let out = s.run(&["--game", "620", "--account", "12345", "--shim", "/bin/true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("account 12345"), "{}", stderr(&out));

    let out = s.run(&["--game", "620", "--steam-root", "/nonexistent"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("/nonexistent"), "{}", stderr(&out));
}

#[test]
fn bad_localconfig_and_usage() {
    let Some(shim) = static_shim() else { return };
    let s = Steam::new();
    let lc = s.localconfig(39734273);
    fs::write(
        &lc,
        b"\"UserLocalConfigStore\"\n{\n\t\"Software\" \"unterminated\n",
    )
    .unwrap();
    let before = fs::read(&lc).unwrap();
    let out = s.run(&["--game", "620", "--shim", shim.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains("localconfig.vdf") && e.contains("unterminated quoted string"),
        "{e}"
    );
    assert_eq!(fs::read(&lc).unwrap(), before);
    assert_eq!(s.run(&["--game", "abc"]).status.code(), Some(2));
    assert_eq!(s.run(&["--game", "0"]).status.code(), Some(2));
    assert_eq!(s.run(&[]).status.code(), Some(2));
}
