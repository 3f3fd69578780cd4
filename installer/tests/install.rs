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

mod common;
use common::{BIN, WS, copy_dir, static_shim};

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
        let root = common::demo_root(&home);
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

    fn cmd(&self, args: &[&str]) -> Command {
        common::install_cmd(&self.home, &self.state, args)
    }

    fn run(&self, args: &[&str]) -> Output {
        common::run_install(&self.home, &self.state, args)
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
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

// ---------------------------------------------------------------------
// Issue 3: layouts, accounts, libraries, undo, Steam running, compat tool,
// shortcuts, dry run, crash safety, bad input, per-game flags.
// ---------------------------------------------------------------------

/// Every file under `dir`: relative path → (bytes or link target, mode).
fn snapshot(dir: &Path) -> std::collections::BTreeMap<PathBuf, (Vec<u8>, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = std::collections::BTreeMap::new();
    fn walk(base: &Path, d: &Path, out: &mut std::collections::BTreeMap<PathBuf, (Vec<u8>, u32)>) {
        let Ok(rd) = fs::read_dir(d) else { return };
        for e in rd {
            let e = e.unwrap();
            let p = e.path();
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(base).unwrap().to_path_buf();
            let mode = m.permissions().mode();
            if m.file_type().is_symlink() {
                let t = fs::read_link(&p).unwrap();
                out.insert(rel, (t.into_os_string().into_encoded_bytes(), mode));
            } else if m.is_dir() {
                out.insert(rel, (b"<dir>".to_vec(), mode));
                walk(base, &p, out);
            } else if m.file_type().is_fifo() {
                out.insert(rel, (b"<fifo>".to_vec(), mode));
            } else {
                out.insert(
                    rel,
                    (
                        fs::read(&p).unwrap_or_else(|_| b"<unreadable>".to_vec()),
                        mode,
                    ),
                );
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

use std::os::unix::fs::FileTypeExt;

fn shim_arg() -> Option<String> {
    static_shim().map(|p| p.to_str().unwrap().to_owned())
}

/// A home with Steam roots at the given places (relative to `$HOME`), each a
/// copy of the demo tree; `links` are (link, target) pairs relative to `$HOME`.
fn home_with(roots: &[&str], links: &[(&str, &str)]) -> Steam {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    for r in roots {
        let root = home.join(r);
        fs::create_dir_all(&root).unwrap();
        copy_dir(&Path::new(WS).join("demo/steam"), &root);
        let lf = root.join("steamapps/libraryfolders.vdf");
        let text = fs::read_to_string(&lf).unwrap();
        fs::write(&lf, text.replace("@STEAM_ROOT@", root.to_str().unwrap())).unwrap();
    }
    for (link, target) in links {
        let l = home.join(link);
        fs::create_dir_all(l.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(home.join(target), &l).unwrap();
    }
    let root = home.join(roots[0]);
    let state = tmp.path().join("state");
    Steam {
        _tmp: tmp,
        home,
        root,
        state,
    }
}

const FLATPAK: &str = ".var/app/com.valvesoftware.Steam/.local/share/Steam";

#[test]
fn discovery_of_every_layout_and_list() {
    // (roots, links, expected rows: (root rel, kind, via count))
    type Case<'a> = (
        &'a str,
        &'a [&'a str],
        &'a [(&'a str, &'a str)],
        &'a [(&'a str, &'a str, usize)],
    );
    let cases: &[Case] = &[
        (
            "native with ~/.steam/root and ~/.steam/steam links",
            &[".local/share/Steam"],
            &[
                (".steam/root", ".local/share/Steam"),
                (".steam/steam", ".local/share/Steam"),
            ],
            &[(".local/share/Steam", "native (~/.steam/root)", 3)],
        ),
        (
            "Debian package",
            &[".steam/debian-installation"],
            &[
                (".steam/root", ".steam/debian-installation"),
                (".steam/steam", ".steam/debian-installation"),
            ],
            &[(".steam/debian-installation", "native (~/.steam/root)", 3)],
        ),
        (
            "flatpak with its data/Steam link",
            &[FLATPAK],
            &[(
                ".var/app/com.valvesoftware.Steam/data",
                ".var/app/com.valvesoftware.Steam/.local/share",
            )],
            &[(FLATPAK, "flatpak", 2)],
        ),
        (
            "snap",
            &["snap/steam/common/.local/share/Steam"],
            &[],
            &[("snap/steam/common/.local/share/Steam", "snap", 1)],
        ),
        (
            "native and flatpak side by side",
            &[".local/share/Steam", FLATPAK],
            &[(".steam/root", ".local/share/Steam")],
            &[
                (".local/share/Steam", "native (~/.steam/root)", 2),
                (FLATPAK, "flatpak", 1),
            ],
        ),
    ];
    for (name, roots, links, rows) in cases {
        let s = home_with(roots, links);
        let out = s.run(&["--list"]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let o = stdout(&out);
        let lines: Vec<&str> = o.lines().skip(1).collect();
        // Two accounts per root (userdata/0 is not one).
        assert_eq!(lines.len(), rows.len() * 2, "{name}:\n{o}");
        for (root, kind, via) in *rows {
            let canon = fs::canonicalize(s.home.join(root)).unwrap();
            let mine: Vec<&&str> = lines
                .iter()
                .filter(|l| l.starts_with(&format!("{} ", canon.display())))
                .collect();
            assert_eq!(mine.len(), 2, "{name}: {root}\n{o}");
            assert!(mine[0].contains(kind), "{name}: {kind}\n{o}");
            let via_list = mine[0]
                .split("via ")
                .nth(1)
                .unwrap()
                .split(';')
                .next()
                .unwrap();
            assert_eq!(via_list.split(", ").count(), *via, "{name}: via count\n{o}");
            assert!(
                o.contains("39734273")
                    && o.contains("76561198000000001")
                    && o.contains("demo_gamer"),
                "{o}"
            );
            assert!(mine.iter().any(|l| l.contains("MostRecent")), "{name}\n{o}");
        }
    }
}

#[test]
fn tool_goes_into_every_root_and_launch_options_into_the_steam_root_one() {
    let Some(shim) = shim_arg() else { return };
    let s = home_with(
        &[".local/share/Steam", FLATPAK],
        &[(".steam/root", ".local/share/Steam")],
    );
    let flat = s.home.join(FLATPAK);
    let flat_lc = flat.join("userdata/39734273/config/localconfig.vdf");
    let flat_before = fs::read(&flat_lc).unwrap();
    // The game is installed in the native root only.
    fs::remove_file(flat.join("steamapps/appmanifest_620.acf")).unwrap();
    let out = s.run(&["--game", "620", "--shim", &shim]);
    assert!(out.status.success(), "{}", stderr(&out));
    for root in [&s.root, &flat] {
        let t = root.join("compatibilitytools.d/cgsplit");
        assert_eq!(
            fs::read(t.join("cgsplit-shim")).unwrap(),
            fs::read(&shim).unwrap()
        );
        assert!(t.join("compatibilitytool.vdf").exists());
    }
    assert_eq!(fs::read(&flat_lc).unwrap(), flat_before);
    let v = localconfig_value(&s.localconfig(39734273), 620).unwrap();
    assert!(
        v.contains(&format!(
            "{}/compatibilitytools.d/cgsplit/cgsplit-shim",
            s.root.display()
        )),
        "{v}"
    );
    let o = stdout(&out);
    assert!(
        o.contains(&format!(
            "{}/compatibilitytools.d/cgsplit, {}/compatibilitytools.d/cgsplit",
            s.root.display(),
            flat.display()
        )),
        "{o}"
    );
}

#[test]
fn several_roots_with_the_game_ask_for_one_and_steam_root_picks() {
    let Some(shim) = shim_arg() else { return };
    let s = home_with(
        &[".local/share/Steam", FLATPAK],
        &[(".steam/root", ".local/share/Steam")],
    );
    let flat = s.home.join(FLATPAK);
    let before = snapshot(&s.home);
    let out = s.run(&["--game", "620", "--shim", &shim]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("several Steam roots") && stderr(&out).contains("--steam-root"),
        "{}",
        stderr(&out)
    );
    assert_eq!(snapshot(&s.home), before, "nothing touched");
    let out = s.run(&[
        "--game",
        "620",
        "--shim",
        &shim,
        "--steam-root",
        flat.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lc = flat.join("userdata/39734273/config/localconfig.vdf");
    let v = localconfig_value(&lc, 620).unwrap();
    // The flatpak sandbox sees ~/.var/app/com.valvesoftware.Steam at the same
    // path, so the shim path in the launch line is reachable inside it.
    assert!(
        v.contains(&format!(
            "{}/compatibilitytools.d/cgsplit/cgsplit-shim",
            flat.display()
        )),
        "{v}"
    );
    assert!(
        !s.root.join("compatibilitytools.d").exists(),
        "only the chosen root"
    );
}

fn localconfig_value(lc: &Path, app: u32) -> Option<String> {
    let mut t = tree(&fs::read(lc).unwrap());
    take_launch_options(&mut t, app)
}

#[test]
fn accounts_either_id_form_and_all_accounts() {
    let Some(shim) = shim_arg() else { return };
    let s = Steam::new();
    let (a, b) = (s.localconfig(39734273), s.localconfig(39735049));
    let (a0, b0) = (fs::read(&a).unwrap(), fs::read(&b).unwrap());
    // SteamID64 of 39735049 = 76561197960265728 + 39735049.
    let out = s.run(&[
        "--game",
        "620",
        "--shim",
        &shim,
        "--account",
        "76561198000000777",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Account: 39735049 (SteamID64 76561198000000777; --account)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(fs::read(&a).unwrap(), a0);
    assert_ne!(fs::read(&b).unwrap(), b0);
    let out = s.run(&["--game", "620", "--shim", &shim, "--all-accounts"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        localconfig_value(&a, 620)
            .unwrap()
            .contains("cgsplit-shim' -- %command%")
    );
    assert!(
        localconfig_value(&b, 620)
            .unwrap()
            .contains("cgsplit-shim' -- %command%")
    );
    let out = s.run(&["--remove", "--game", "620"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::read(&a).unwrap(), a0);
    assert_eq!(fs::read(&b).unwrap(), b0);
    assert_eq!(
        s.run(&["--game", "620", "--account", "1", "--all-accounts"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn library_folders_give_the_name_or_a_warning() {
    let Some(shim) = shim_arg() else { return };
    let s = Steam::new();
    // Move the manifest into a second library listed in libraryfolders.vdf.
    let lib = s.home.join("Games/SteamLibrary");
    fs::create_dir_all(lib.join("steamapps")).unwrap();
    fs::rename(
        s.root.join("steamapps/appmanifest_620.acf"),
        lib.join("steamapps/appmanifest_620.acf"),
    )
    .unwrap();
    let lf = s.root.join("steamapps/libraryfolders.vdf");
    let text = fs::read_to_string(&lf).unwrap();
    let text = text.trim_end().strip_suffix('}').unwrap().to_owned()
        + &format!(
            "\t\"1\"\n\t{{\n\t\t\"path\"\t\t\"{}\"\n\t\t\"apps\"\n\t\t{{\n\t\t\t\"620\"\t\t\"1\"\n\t\t}}\n\t}}\n}}\n",
            lib.display()
        );
    fs::write(&lf, text).unwrap();
    let out = s.run(&["--game", "620", "--shim", &shim]);
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("Game 620: Portal 2 (")
            && stdout(&out).contains("Games/SteamLibrary/steamapps/appmanifest_620.acf"),
        "{}",
        stdout(&out)
    );
    // A game with no manifest anywhere: a warning, not a failure.
    let out = s.run(&["--game", "570", "--shim", &shim]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("warning: no appmanifest_570.acf in")
            && stderr(&out).contains("Games/SteamLibrary/steamapps"),
        "{}",
        stderr(&out)
    );
}

fn fifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
}

#[test]
fn stop_steam_asks_through_the_pipe_and_waits() {
    use std::io::BufRead;
    let Some(shim) = shim_arg() else { return };
    let s = Steam::new();
    let pipe = s.home.join(".steam/steam.pipe");
    fifo(&pipe);
    // A stand-in Steam: reads the pipe, exits (closes it) a moment after a
    // shutdown request, as Steam does.
    let reader = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(&pipe)
        .unwrap();
    let steam = std::thread::spawn(move || {
        let mut r = std::io::BufReader::new(reader);
        let mut line = String::new();
        for _ in 0..200 {
            match r.read_line(&mut line) {
                Ok(_) if line.ends_with('\n') => break,
                _ => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(1500));
        line
    });
    let out = s.run(&["--game", "620", "--shim", &shim, "--stop-steam"]);
    let line = steam.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        line,
        format!("'{}/ubuntu12_32/steam' '-shutdown'\n", s.root.display())
    );
    let o = stdout(&out);
    assert!(
        o.contains("Asked Steam to shut down")
            && o.contains("waiting for Steam to exit… 1 s")
            && o.contains("Steam has shut down"),
        "{o}"
    );
    assert!(
        localconfig_value(&s.localconfig(39734273), 620)
            .unwrap()
            .contains("cgsplit-shim")
    );

    // A Steam that does not exit: bounded wait, then a refusal; nothing written.
    let s = Steam::new();
    let pipe = s.home.join(".steam/steam.pipe");
    fifo(&pipe);
    let _stuck = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(&pipe)
        .unwrap();
    let before = snapshot(&s.home);
    let out = s.run(&[
        "--game",
        "620",
        "--shim",
        &shim,
        "--stop-steam",
        "--stop-timeout",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("still running 1 s after the shutdown request"),
        "{}",
        stderr(&out)
    );
    assert_eq!(snapshot(&s.home), before);

    // A pipe nobody reads (Steam not running): nothing is written into it
    // (that would start nothing, but a later Steam would read a stale
    // shutdown request) and the install goes ahead.
    let s = Steam::new();
    let pipe = s.home.join(".steam/steam.pipe");
    fifo(&pipe);
    let out = s.run(&["--game", "620", "--shim", &shim, "--stop-steam"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains("Asked Steam"));
    let r = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(&pipe)
        .unwrap();
    let mut buf = [0u8; 16];
    use std::io::Read;
    assert_eq!(
        (&r).read(&mut buf).unwrap_or(0),
        0,
        "nothing was queued in the pipe"
    );
}

fn write_appinfo(s: &Steam) {
    fs::create_dir_all(s.root.join("appcache")).unwrap();
    fs::write(
        s.root.join("appcache/appinfo.vdf"),
        cgsplit_install::steam::appinfo::render(
            29,
            &[
                (620, "windows,macos,linux", "Portal 2"),
                (730, "windows", "Counter-Strike 2"),
            ],
        ),
    )
    .unwrap();
    fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/steam/config.vdf"),
        s.root.join("config/config.vdf"),
    )
    .unwrap();
}

#[test]
fn set_compat_tool_only_for_native_games_and_remove_restores_config_vdf() {
    let Some(shim) = shim_arg() else { return };
    let s = Steam::new();
    write_appinfo(&s);
    let cfg = s.root.join("config/config.vdf");
    let cfg0 = fs::read(&cfg).unwrap();
    let lc0 = fs::read(s.localconfig(39734273)).unwrap();

    // A Windows game: refused, nothing touched.
    let before = snapshot(&s.home);
    let out = s.run(&["--game", "730", "--shim", &shim, "--set-compat-tool"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("only for native Linux games")
            && stderr(&out).contains("oslist")
            && stderr(&out).contains("\"windows\""),
        "{}",
        stderr(&out)
    );
    assert_eq!(snapshot(&s.home), before);

    // A native game: CompatToolMapping created in the lowercase-`valve` file.
    let out = s.run(&["--game", "620", "--shim", &shim, "--set-compat-tool"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("native Linux game"),
        "{}",
        stdout(&out)
    );
    let text = fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("\t\t\t\t\"CompatToolMapping\"\n\t\t\t\t{\n\t\t\t\t\t\"620\"\n\t\t\t\t\t{\n\t\t\t\t\t\t\"name\"\t\t\"cgsplit\"\n\t\t\t\t\t\t\"config\"\t\t\"\"\n\t\t\t\t\t\t\"priority\"\t\t\"250\"\n\t\t\t\t\t}\n\t\t\t\t}\n"), "{text}");
    assert_eq!(
        fs::read(cfg.with_file_name("config.vdf.cgsplit-bak")).unwrap(),
        cfg0
    );
    assert_eq!(
        fs::read(s.localconfig(39734273)).unwrap(),
        lc0,
        "launch options untouched"
    );
    assert!(stdout(&out).contains("restart"), "{}", stdout(&out));
    // --native overrides for a game appinfo does not call native.
    let out = s.run(&[
        "--game",
        "730",
        "--shim",
        &shim,
        "--set-compat-tool",
        "--native",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Remove both: byte for byte, CompatToolMapping gone again.
    assert!(s.run(&["--remove", "--game", "730"]).status.success());
    let out = s.run(&["--remove", "--game", "620"]);
    assert!(out.status.success());
    assert_eq!(fs::read(&cfg).unwrap(), cfg0);

    // An existing mapping (Proton chosen by the user) comes back exactly.
    let with = String::from_utf8(cfg0.clone()).unwrap().replace(
        "\t\t\t\t\"SurveyDate\"",
        "\t\t\t\t\"CompatToolMapping\"\n\t\t\t\t{\n\t\t\t\t\t\"620\"\n\t\t\t\t\t{\n\t\t\t\t\t\t\"name\"\t\t\"proton_9\"\n\t\t\t\t\t\t\"config\"\t\t\"\"\n\t\t\t\t\t\t\"Priority\"\t\t\"250\"\n\t\t\t\t\t}\n\t\t\t\t}\n\t\t\t\t\"SurveyDate\"",
    );
    fs::write(&cfg, &with).unwrap();
    assert!(
        s.run(&["--game", "620", "--shim", &shim, "--set-compat-tool"])
            .status
            .success()
    );
    assert!(
        fs::read_to_string(&cfg)
            .unwrap()
            .contains("\"name\"\t\t\"cgsplit\"")
    );
    assert!(s.run(&["--remove", "--game", "620"]).status.success());
    assert_eq!(fs::read_to_string(&cfg).unwrap(), with);

    // Changed in Steam since: left alone, and said so.
    assert!(
        s.run(&["--game", "620", "--shim", &shim, "--set-compat-tool"])
            .status
            .success()
    );
    let changed = fs::read_to_string(&cfg).unwrap().replace(
        "\"name\"\t\t\"cgsplit\"",
        "\"name\"\t\t\"proton_experimental\"",
    );
    fs::write(&cfg, &changed).unwrap();
    let out = s.run(&["--remove", "--game", "620"]);
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("changed since cgsplit wrote it"),
        "{}",
        stdout(&out)
    );
    assert_eq!(fs::read_to_string(&cfg).unwrap(), changed);
}

#[test]
fn non_steam_shortcut_ids_are_refused() {
    let s = Steam::new();
    let before = snapshot(&s.home);
    let out = s.run(&["--game", "3000000000", "--shim", "/bin/busybox"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("non-Steam shortcut") && stderr(&out).contains("shortcuts.vdf"),
        "{}",
        stderr(&out)
    );
    assert_eq!(snapshot(&s.home), before);
}

#[test]
fn dry_run_prints_unified_diffs_and_changes_nothing() {
    let Some(shim) = shim_arg() else { return };
    let s = Steam::new();
    let before = snapshot(&s.home);
    let out = s.run(&["--game", "620", "--shim", &shim, "--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let o = stdout(&out);
    let lc = s.localconfig(39734273);
    assert!(
        o.contains(&format!(
            "--- a{}\n+++ b{}\n@@ ",
            lc.display(),
            lc.display()
        )),
        "{o}"
    );
    assert!(o.contains("-\t\t\t\t\t\t\"LaunchOptions\"\t\t\"DEMO_GREETING='hello from Steam' %command% -novid\"\n+\t\t\t\t\t\t\"LaunchOptions\"\t\t\"DEMO_GREETING='hello from Steam' '"), "{o}");
    assert!(
        o.contains("+++ b")
            && o.contains("compatibilitytool.vdf")
            && o.contains("binary ")
            && o.contains("launch-options.vdf"),
        "{o}"
    );
    assert!(o.contains("Dry run: nothing was written."));
    assert_eq!(snapshot(&s.home), before);
    assert!(!s.state.exists());
    // And for --remove and --uninstall after a real install.
    assert!(s.run(&["--game", "620", "--shim", &shim]).status.success());
    let installed = snapshot(&s.home);
    for args in [
        &["--remove", "--game", "620", "--dry-run"][..],
        &["--uninstall", "--dry-run"],
    ] {
        let out = s.run(args);
        assert!(out.status.success());
        assert!(stdout(&out).contains("+\t\t\t\t\t\t\"LaunchOptions\"\t\t\"DEMO_GREETING='hello from Steam' %command% -novid\""), "{}", stdout(&out));
        assert_eq!(snapshot(&s.home), installed);
    }
}

/// Waits until `pid` is stopped (state `T` in /proc/<pid>/stat) or gone.
fn wait_stopped(pid: u32) -> bool {
    for _ in 0..500 {
        match fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(st) => {
                let state = st
                    .rsplit(')')
                    .next()
                    .unwrap()
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .to_owned();
                if state == "T" || state == "t" {
                    return true;
                }
                if state == "Z" {
                    return false;
                }
            }
            Err(_) => return false,
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

#[test]
fn kill_9_at_every_write_step_leaves_old_or_new_and_a_rerun_completes() {
    let Some(shim) = shim_arg() else { return };
    // The expected result, from an undisturbed run.
    let clean = Steam::new();
    let lc_before = fs::read(clean.localconfig(39734273)).unwrap();
    assert!(
        clean
            .run(&["--game", "620", "--shim", &shim])
            .status
            .success()
    );
    let lc_after = fs::read(clean.localconfig(39734273)).unwrap();
    assert_ne!(lc_before, lc_after);
    for point in [
        "tool-written",
        "state-written",
        "temp-half-written",
        "temp-written",
        "temp-synced",
        "backup-linked",
        "renamed",
    ] {
        let s = Steam::new();
        let lc = s.localconfig(39734273);
        let mut child = s
            .cmd(&["--game", "620", "--shim", &shim])
            .env("CGSPLIT_INSTALL_CRASH_AT", point)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        assert!(
            wait_stopped(child.id()),
            "{point}: the installer never reached the crash point"
        );
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "{point}");
        // The same result in this tree (the shim path names its root).
        let lc_after = String::from_utf8(lc_after.clone())
            .unwrap()
            .replace(clean.root.to_str().unwrap(), s.root.to_str().unwrap())
            .into_bytes();
        let now = fs::read(&lc).unwrap();
        assert!(
            now == lc_before || now == lc_after,
            "{point}: partial localconfig.vdf"
        );
        let expect_new = matches!(point, "renamed");
        assert_eq!(now == lc_after, expect_new, "{point}");
        // The file still parses, whichever it is.
        tree(&now);
        // A rerun finishes the job; --remove then restores the original.
        let out = s.run(&["--game", "620", "--shim", &shim]);
        assert!(out.status.success(), "{point}: {}", stderr(&out));
        assert_eq!(fs::read(&lc).unwrap(), lc_after, "{point}");
        let leftovers: Vec<_> = fs::read_dir(lc.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(
            leftovers.is_empty(),
            "{point}: temp files left: {leftovers:?}"
        );
        let out = s.run(&["--remove", "--game", "620"]);
        assert!(out.status.success(), "{point}: {}", stderr(&out));
        assert_eq!(fs::read(&lc).unwrap(), lc_before, "{point}");
    }
}

/// Runs `args` with the crash hook at `point`, SIGKILLs it there.
fn kill_at(s: &Steam, args: &[&str], point: &str) {
    let mut child = s
        .cmd(args)
        .env("CGSPLIT_INSTALL_CRASH_AT", point)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_stopped(child.id()), "{point}: never reached");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
}

#[test]
fn kill_9_during_remove_never_leaves_a_launch_line_without_its_shim() {
    let Some(shim) = shim_arg() else { return };
    // 620 has launch options; 570 has no app block (cgsplit creates one).
    for (app, point) in ["620", "570"].into_iter().flat_map(|a| {
        ["state-written", "temp-written", "backup-linked", "renamed"].map(move |p| (a, p))
    }) {
        let s = Steam::new();
        let lc = s.localconfig(39734273);
        let before = fs::read(&lc).unwrap();
        assert!(s.run(&["--game", app, "--shim", &shim]).status.success());
        kill_at(&s, &["--remove", "--game", app], point);
        let now = fs::read(&lc).unwrap();
        let wrapped = localconfig_value(&lc, app.parse().unwrap())
            .is_some_and(|v| v.contains("cgsplit-shim"));
        assert!(now == before || wrapped, "{point}: partial file");
        if wrapped {
            assert!(
                s.tool_dir().join("cgsplit-shim").exists(),
                "{point}: launch line points at a removed shim"
            );
        }
        let out = s.run(&["--remove", "--game", app]);
        assert!(out.status.success(), "{app} {point}: {}", stderr(&out));
        assert_eq!(fs::read(&lc).unwrap(), before, "{app} {point}");
        assert!(!s.tool_dir().exists(), "{app} {point}");
    }
}

#[test]
fn backups_rotate_and_keep_three() {
    let Some(shim) = shim_arg() else { return };
    let s = Steam::new();
    let lc = s.localconfig(39734273);
    let mut versions = vec![fs::read(&lc).unwrap()];
    for flag in ["--one", "--two", "--three", "--four"] {
        assert!(
            s.run(&["--game", "620", "--shim", &shim, "--shim-flag", flag])
                .status
                .success()
        );
        versions.push(fs::read(&lc).unwrap());
    }
    let bak = |n: usize| {
        let name = if n == 0 {
            "localconfig.vdf.cgsplit-bak".to_owned()
        } else {
            format!("localconfig.vdf.cgsplit-bak.{n}")
        };
        fs::read(lc.with_file_name(name)).unwrap()
    };
    assert_eq!(bak(0), versions[3]);
    assert_eq!(bak(1), versions[2]);
    assert_eq!(bak(2), versions[1]);
    assert!(!lc.with_file_name("localconfig.vdf.cgsplit-bak.3").exists());
}

#[test]
fn bad_input_table_one_clear_error_nothing_touched() {
    let Some(shim) = shim_arg() else { return };
    type Setup = fn(&Steam) -> Vec<String>;
    let lc_rel = "userdata/39734273/config/localconfig.vdf";
    let cases: Vec<(&str, Setup, &[&str], i32)> = vec![
        (
            "truncated localconfig.vdf",
            |s| {
                let lc = s.localconfig(39734273);
                let b = fs::read(&lc).unwrap();
                fs::write(&lc, &b[..b.len() * 2 / 3]).unwrap();
                vec![]
            },
            &["localconfig.vdf:", "nothing was written"],
            1,
        ),
        (
            "unbalanced localconfig.vdf",
            |s| {
                let lc = s.localconfig(39734273);
                let t = fs::read_to_string(&lc).unwrap().replacen(
                    "\t\t\"Valve\"\n\t\t{\n",
                    "\t\t\"Valve\"\n\t\t{\n\t\t}\n",
                    1,
                );
                fs::write(&lc, t).unwrap();
                vec![]
            },
            &["localconfig.vdf:", "unexpected '}'"],
            1,
        ),
        (
            "binary data where text VDF is expected",
            |s| {
                let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus/WilliamVenner__steamlocate-rs__tests__assets__shortcuts_different_key_case.vdf");
                fs::copy(src, s.localconfig(39734273)).unwrap();
                vec![]
            },
            &["localconfig.vdf: binary data at byte 0 (line 1)"],
            1,
        ),
        (
            "unreadable localconfig.vdf (a directory)",
            |s| {
                let lc = s.localconfig(39734273);
                fs::remove_file(&lc).unwrap();
                fs::create_dir(&lc).unwrap();
                vec![]
            },
            &["cannot read", "localconfig.vdf"],
            1,
        ),
        (
            "read-only localconfig.vdf",
            |s| {
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(s.localconfig(39734273), fs::Permissions::from_mode(0o444))
                    .unwrap();
                vec![]
            },
            &["localconfig.vdf is read-only", "chmod u+w"],
            1,
        ),
        (
            "userdata without config/",
            |s| {
                fs::remove_dir_all(s.root.join("userdata/39734273/config")).unwrap();
                vec![]
            },
            &["userdata/39734273 has no config/ directory"],
            1,
        ),
        (
            "two roots that are one directory through a symlink",
            |s| {
                let link = s.home.join("steam-link");
                std::os::unix::fs::symlink(&s.root, &link).unwrap();
                vec![
                    "--steam-root".into(),
                    s.root.to_str().unwrap().into(),
                    "--steam-root".into(),
                    link.to_str().unwrap().into(),
                ]
            },
            &["are the same directory"],
            1,
        ),
        (
            "an app id that is not a number",
            |_| vec!["--game".into(), "portal2".into()],
            &["--game \"portal2\" is not a number"],
            2,
        ),
        (
            "truncated loginusers.vdf",
            |s| {
                let p = s.root.join("config/loginusers.vdf");
                let b = fs::read(&p).unwrap();
                fs::write(&p, &b[..b.len() / 2]).unwrap();
                vec![]
            },
            &["loginusers.vdf"],
            1,
        ),
        (
            "unbalanced config.vdf with --set-compat-tool",
            |s| {
                write_appinfo(s);
                let p = s.root.join("config/config.vdf");
                let t = fs::read_to_string(&p).unwrap().replace(
                    "\"SurveyDate\"\t\t\"2024-11-02\"",
                    "\"SurveyDate\"\t\t\"2024-11-02",
                );
                fs::write(&p, t).unwrap();
                vec!["--set-compat-tool".into()]
            },
            &["config.vdf:", "unterminated quoted string"],
            1,
        ),
    ];
    let _ = lc_rel;
    for (name, setup, want, code) in cases {
        let s = Steam::new();
        let mut args: Vec<String> = setup(&s);
        if !args.iter().any(|a| a == "--game") {
            args.extend(["--game".into(), "620".into()]);
        }
        args.extend(["--shim".into(), shim.clone()]);
        let before = snapshot(&s.home);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = s.run(&argv);
        assert_eq!(out.status.code(), Some(code), "{name}: {}", stderr(&out));
        let e = stderr(&out);
        assert_eq!(e.lines().count(), 1, "{name}: one line\n{e}");
        for w in want {
            assert!(e.contains(w), "{name}: missing {w:?} in\n{e}");
        }
        assert_eq!(snapshot(&s.home), before, "{name}: a file was touched");
        assert!(!s.state.exists(), "{name}: state written");
    }
}

#[test]
fn error_lines_point_at_the_line() {
    let Some(shim) = shim_arg() else { return };
    let s = Steam::new();
    let lc = s.localconfig(39734273);
    let t = fs::read_to_string(&lc).unwrap();
    // Line 5 becomes a `{` with no key before it.
    let mut lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines[4], "\t\t\"Permissions\"\t\t\"1\"");
    lines[4] = "\t\t{";
    fs::write(&lc, lines.join("\n") + "\n").unwrap();
    let out = s.run(&["--game", "620", "--shim", &shim]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!(
            "{}:5:3: not valid KeyValues text: '{{' without a key",
            lc.display()
        )),
        "{}",
        stderr(&out)
    );
}

#[test]
fn per_game_flags_from_config_toml_are_written_and_rewritten() {
    let Some(shim) = shim_arg() else { return };
    let s = Steam::new();
    let lc = s.localconfig(39734273);
    let before = fs::read(&lc).unwrap();
    let cfg = s.home.join(".config/cgsplit/config.toml");
    fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    fs::write(&cfg, "[games.620]\nnetwork = \"localhost\"\n").unwrap();
    let out = s.run(&["--game", "620", "--shim", &shim]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = localconfig_value(&lc, 620).unwrap();
    assert!(
        v.ends_with("cgsplit-shim' --network localhost -- %command% -novid"),
        "{v}"
    );
    // The config changes: running again rewrites the flags in place.
    fs::write(&cfg, "[games.620]\nkill_steam_on_exit = true\n").unwrap();
    let out = s.run(&["--game", "620", "--shim", &shim, "--shim-flag", "--verbose"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = localconfig_value(&lc, 620).unwrap();
    assert!(
        v.ends_with("cgsplit-shim' --kill-steam --verbose -- %command% -novid"),
        "{v}"
    );
    assert!(v.starts_with("DEMO_GREETING='hello from Steam' '"), "{v}");
    // Remove still restores the very first value.
    assert!(s.run(&["--remove", "--game", "620"]).status.success());
    assert_eq!(fs::read(&lc).unwrap(), before);
    // A broken config.toml is an error naming it, before anything is written.
    fs::write(&cfg, "[games.620]\nnetwork = 5\n").unwrap();
    let snap = snapshot(&s.home);
    let out = s.run(&["--game", "620", "--shim", &shim]);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("config.toml"), "{}", stderr(&out));
    assert_eq!(snapshot(&s.home), snap);
}

#[test]
fn uninstall_undoes_every_game_and_root() {
    let Some(shim) = shim_arg() else { return };
    let s = Steam::new();
    write_appinfo(&s);
    let before = snapshot(&s.home);
    assert!(
        s.run(&["--game", "620", "--shim", &shim, "--all-accounts"])
            .status
            .success()
    );
    assert!(s.run(&["--game", "400", "--shim", &shim]).status.success());
    assert!(
        s.run(&["--game", "620", "--shim", &shim, "--set-compat-tool"])
            .status
            .success()
    );
    let out = s.run(&["--uninstall"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let after = snapshot(&s.home);
    // Everything is as before except the backups cgsplit left next to the files.
    let strip = |m: std::collections::BTreeMap<PathBuf, (Vec<u8>, u32)>| {
        m.into_iter()
            .filter(|(p, _)| {
                !p.to_string_lossy().contains(".cgsplit-bak")
                    && !p.ends_with("compatibilitytools.d")
            })
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    assert_eq!(strip(after), strip(before));
    assert!(!s.tool_dir().exists());
    assert!(!s.state.join("cgsplit/launch-options.vdf").exists());
}

#[test]
fn unreadable_file_for_the_user_is_one_error_naming_it() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let Some(shim) = shim_arg() else { return };
    if !nix::unistd::Uid::effective().is_root() {
        // As an ordinary user the tree below is ours already; chmod 000
        // then makes it unreadable for us, which is the same case.
        eprintln!("not root: testing with the current user");
    }
    let s = Steam::new();
    let lc = s.localconfig(39734273);
    // A copy of the binary and shim the test user can run, and a tree it owns.
    let tmp = s.home.parent().unwrap();
    let bin = tmp.join("cgsplit-install");
    fs::copy(BIN, &bin).unwrap();
    let shim_copy = tmp.join("shim");
    fs::copy(&shim, &shim_copy).unwrap();
    let nobody = nix::unistd::Uid::from_raw(65534);
    let nogroup = nix::unistd::Gid::from_raw(65534);
    let root = nix::unistd::Uid::effective().is_root();
    if root {
        let mut stack = vec![tmp.to_path_buf()];
        while let Some(p) = stack.pop() {
            nix::unistd::fchownat(
                nix::fcntl::AT_FDCWD,
                &p,
                Some(nobody),
                Some(nogroup),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .unwrap();
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.extend(fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            }
        }
    }
    fs::set_permissions(&lc, fs::Permissions::from_mode(0o000)).unwrap();
    let before = snapshot(&s.home);
    let mut cmd = Command::new(&bin);
    cmd.args(["--game", "620", "--shim", shim_copy.to_str().unwrap()])
        .env_clear()
        .env("HOME", &s.home)
        .env("XDG_STATE_HOME", &s.state)
        .env("XDG_CONFIG_HOME", s.home.join(".config"));
    if root {
        cmd.uid(65534).gid(65534);
    }
    let out = cmd.output().unwrap();
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.contains(&format!("cannot read {}: Permission denied", lc.display())),
        "{e}"
    );
    assert_eq!(snapshot(&s.home), before);
}
