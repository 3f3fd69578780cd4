//! `cgsplit-install` renders one tool entry per Steam Linux Runtime and one
//! "cgsplit + <Proton>" entry per Proton it finds (issue 7, item 1), each in
//! its own `compatibilitytools.d/cgsplit-*/` directory; a Proton without
//! `toolmanifest.vdf` or needing a runtime nobody installed gets a warning
//! naming the path and no entry; entries of Protons that are gone are
//! removed on the next install; `--uninstall` removes every entry.
//!
//! The binary runs against a temp home holding a copy of `demo/steam` plus a
//! second library (a path with spaces) in `libraryfolders.vdf`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

/// Proton 9's manifest as shipped (STEAM.md §2).
const PROTON: &str = "\"manifest\"\n{\n  \"version\" \"2\"\n  \"commandline\" \"/proton %verb%\"\n  \"require_tool_appid\" \"1628350\"\n  \"use_sessions\" \"1\"\n  \"compatmanager_layer_name\" \"proton\"\n}\n";

fn write(p: &Path, text: &str) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

struct Tree {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    root: PathBuf,
    lib2: PathBuf,
    state: PathBuf,
}

impl Tree {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        let root = common::demo_root(&home);
        let lib2 = tmp.path().join("Second Library");
        fs::create_dir_all(lib2.join("steamapps/common")).unwrap();
        write(
            &root.join("steamapps/libraryfolders.vdf"),
            &format!(
                "\"libraryfolders\"\n{{\n\t\"0\"\n\t{{\n\t\t\"path\"\t\t\"{}\"\n\t}}\n\t\"1\"\n\t{{\n\t\t\"path\"\t\t\"{}\"\n\t}}\n}}\n",
                root.display(),
                lib2.display()
            ),
        );
        let state = tmp.path().join("state");
        Tree {
            _tmp: tmp,
            home,
            root,
            lib2,
            state,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        common::run_install(&self.home, &self.state, args)
    }

    fn tools(&self) -> PathBuf {
        self.root.join("compatibilitytools.d")
    }

    fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.tools())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

/// The shim to register, as an argument.
fn shim() -> Option<String> {
    common::static_shim().map(|p| p.to_str().unwrap().to_owned())
}

fn manifest(dir: &Path) -> std::collections::BTreeMap<String, String> {
    let text = fs::read_to_string(dir.join("toolmanifest.vdf")).unwrap();
    let v = keyvalues_parser::parse(&text).unwrap();
    assert_eq!(v.key, "manifest");
    v.value
        .get_obj()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.to_string(), v[0].get_str().unwrap().to_owned()))
        .collect()
}

fn tool(dir: &Path) -> (String, std::collections::BTreeMap<String, String>) {
    let text = fs::read_to_string(dir.join("compatibilitytool.vdf")).unwrap();
    let v = keyvalues_parser::parse(&text).unwrap();
    let tools = v.value.get_obj().unwrap()["compat_tools"][0]
        .get_obj()
        .unwrap();
    assert_eq!(tools.len(), 1, "one tool per directory: {text}");
    let (name, t) = tools.iter().next().unwrap();
    let fields = t[0]
        .get_obj()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.to_string(), v[0].get_str().unwrap().to_owned()))
        .collect();
    (name.to_string(), fields)
}

#[test]
fn one_entry_per_runtime_and_proton_with_warnings_then_uninstall_removes_all() {
    let Some(shim) = shim() else { return };
    let t = Tree::new();
    // Runtimes: sniper in the Steam root's library, soldier in the second one.
    write(
        &t.root.join("steamapps/appmanifest_1628350.acf"),
        "\"AppState\"\n{\n\t\"appid\"\t\t\"1628350\"\n}\n",
    );
    write(
        &t.lib2.join("steamapps/appmanifest_1391110.acf"),
        "\"AppState\"\n{\n\t\"appid\"\t\t\"1391110\"\n}\n",
    );
    // Proton 9.0 (Beta) in the second library.
    let p9 = t.lib2.join("steamapps/common/Proton 9.0 (Beta)");
    write(&p9.join("proton"), "#!/bin/sh\n");
    write(&p9.join("toolmanifest.vdf"), PROTON);
    // Proton 7.0 (soldier) in the root library.
    let p7 = t.root.join("steamapps/common/Proton 7.0");
    write(&p7.join("proton"), "#!/bin/sh\n");
    write(
        &p7.join("toolmanifest.vdf"),
        &PROTON
            .replace("1628350", "1391110")
            .replace("\"use_sessions\" \"1\"\n", ""),
    );
    // GE-Proton in compatibilitytools.d.
    let ge = t.tools().join("GE-Proton9-20");
    write(&ge.join("proton"), "#!/bin/sh\n");
    write(&ge.join("toolmanifest.vdf"), PROTON);
    write(
        &ge.join("compatibilitytool.vdf"),
        "\"compatibilitytools\"\n{\n  \"compat_tools\"\n  {\n    \"GE-Proton9-20\"\n    {\n      \"install_path\" \".\"\n      \"display_name\" \"GE-Proton9-20\"\n      \"from_oslist\" \"windows\"\n      \"to_oslist\" \"linux\"\n    }\n  }\n}\n",
    );
    // Bad input: no toolmanifest.vdf; a runtime (arm64, 3810310) not installed.
    let bare = t.lib2.join("steamapps/common/Proton 5.0");
    write(&bare.join("proton"), "#!/bin/sh\n");
    let arm = t.root.join("steamapps/common/Proton 10.0 ARM");
    write(&arm.join("proton"), "#!/bin/sh\n");
    write(
        &arm.join("toolmanifest.vdf"),
        &PROTON.replace("1628350", "3810310"),
    );
    // A user's own directory that happens to start with cgsplit-: untouched.
    write(&t.tools().join("cgsplit-mine/notes.txt"), "mine");

    let out = t.run(&["--game", "620", "--shim", &shim]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning: ")).collect();
    assert_eq!(warnings.len(), 2, "{err}");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains(&format!("{} has no toolmanifest.vdf", bare.display()))),
        "{err}"
    );
    assert!(
        warnings.iter().any(|w| w.contains(&format!(
            "{}/toolmanifest.vdf requires app 3810310, which is not installed",
            arm.display()
        ))),
        "{err}"
    );
    assert_eq!(
        t.entries(),
        vec![
            "GE-Proton9-20",
            "cgsplit",
            "cgsplit-ge-proton9-20",
            "cgsplit-mine",
            "cgsplit-proton-7-0",
            "cgsplit-proton-9-0-beta",
            "cgsplit-sniper",
            "cgsplit-soldier",
        ]
    );
    let shim_bytes = fs::read(&shim).unwrap();
    // Plain entry: unchanged shape.
    let plain = t.tools().join("cgsplit");
    let m = manifest(&plain);
    assert_eq!(m["commandline"], "/cgsplit-shim compat %verb% --");
    assert!(!m.contains_key("require_tool_appid"));
    // Runtime entries: the same command line, requiring that runtime.
    for (dir, id, rt) in [
        (
            "cgsplit-sniper",
            "1628350",
            "Steam Linux Runtime 3.0 (sniper)",
        ),
        (
            "cgsplit-soldier",
            "1391110",
            "Steam Linux Runtime 2.0 (soldier)",
        ),
    ] {
        let d = t.tools().join(dir);
        let m = manifest(&d);
        assert_eq!(m["version"], "2");
        assert_eq!(m["commandline"], "/cgsplit-shim compat %verb% --");
        assert_eq!(m["require_tool_appid"], id);
        let (name, f) = tool(&d);
        assert_eq!(name, dir);
        assert_eq!(f["install_path"], ".");
        assert_eq!(f["from_oslist"], "linux");
        assert!(f["display_name"].contains(rt), "{f:?}");
        assert_eq!(fs::read(d.join("cgsplit-shim")).unwrap(), shim_bytes);
        assert!(!d.join("cgsplit-chain").exists());
    }
    // Proton entries: Proton's runtime, use_sessions and layer name; windows → linux.
    for (dir, proton, id, sessions, name) in [
        (
            "cgsplit-proton-9-0-beta",
            &p9,
            "1628350",
            true,
            "Proton 9.0 (Beta)",
        ),
        ("cgsplit-proton-7-0", &p7, "1391110", false, "Proton 7.0"),
        (
            "cgsplit-ge-proton9-20",
            &ge,
            "1628350",
            true,
            "GE-Proton9-20",
        ),
    ] {
        let d = t.tools().join(dir);
        let m = manifest(&d);
        assert_eq!(m["version"], "2");
        assert_eq!(m["commandline"], "/cgsplit-chain %verb%");
        assert_eq!(m["require_tool_appid"], id);
        assert_eq!(
            m.get("use_sessions").map(String::as_str),
            sessions.then_some("1")
        );
        assert_eq!(m["compatmanager_layer_name"], "proton");
        let (tn, f) = tool(&d);
        assert_eq!(tn, dir);
        assert_eq!(f["from_oslist"], "windows");
        assert_eq!(f["to_oslist"], "linux");
        assert_eq!(f["display_name"], format!("cgsplit + {name}"));
        let chain = d.join("cgsplit-chain");
        assert_eq!(
            fs::metadata(&chain).unwrap().permissions().mode() & 0o777,
            0o755
        );
        assert_eq!(fs::read(d.join("cgsplit-shim")).unwrap(), shim_bytes);
        // The launcher passes Proton's path as one word: run it with a shim
        // stand-in that prints its argv, one per line.
        let probe = tempfile::tempdir().unwrap();
        let copy = probe.path().join("entry dir");
        fs::create_dir_all(&copy).unwrap();
        fs::copy(&chain, copy.join("cgsplit-chain")).unwrap();
        let fake = copy.join("cgsplit-shim");
        fs::write(
            &fake,
            "#!/bin/sh\nfor a; do printf '[%s]\\n' \"$a\"; done\n",
        )
        .unwrap();
        fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
        let o = Command::new(copy.join("cgsplit-chain"))
            .args(["waitforexitandrun", "/games/My Game/game.exe", "-x y"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            format!(
                "[--chain]\n[compat]\n[waitforexitandrun]\n[--]\n[{}/proton]\n[waitforexitandrun]\n[/games/My Game/game.exe]\n[-x y]\n",
                proton.display()
            )
        );
    }

    let list = t.run(&["--list"]);
    assert!(
        String::from_utf8_lossy(&list.stdout).contains(
            "cgsplit tools: cgsplit,cgsplit-ge-proton9-20,cgsplit-proton-7-0,cgsplit-proton-9-0-beta,cgsplit-sniper,cgsplit-soldier"
        ),
        "{}",
        String::from_utf8_lossy(&list.stdout)
    );
    // A second install changes nothing.
    let again = t.run(&["--game", "620", "--shim", &shim]);
    assert!(again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("(unchanged)"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    // Proton 7.0 uninstalled in Steam: its entry goes on the next install.
    fs::remove_dir_all(&p7).unwrap();
    let out = t.run(&["--game", "620", "--shim", &shim]);
    assert!(out.status.success());
    assert!(!t.tools().join("cgsplit-proton-7-0").exists());
    assert!(t.tools().join("cgsplit-proton-9-0-beta").exists());

    // --uninstall removes every entry, and nothing else.
    let out = t.run(&["--uninstall"]);
    assert!(out.status.success());
    assert_eq!(t.entries(), vec!["GE-Proton9-20", "cgsplit-mine"]);
    assert_eq!(
        fs::read_to_string(t.tools().join("cgsplit-mine/notes.txt")).unwrap(),
        "mine"
    );
    assert!(ge.join("proton").exists() && p9.join("proton").exists());
}

#[test]
fn remove_of_the_last_game_removes_every_entry_and_no_runtime_means_plain_only() {
    let Some(shim) = shim() else { return };
    let t = Tree::new();
    let out = t.run(&["--game", "620", "--shim", &shim]);
    assert!(out.status.success());
    // No runtime, no Proton: only the plain entry.
    assert_eq!(t.entries(), vec!["cgsplit"]);
    // A runtime appears; the next install adds its entry.
    write(
        &t.lib2.join("steamapps/appmanifest_1070560.acf"),
        "\"AppState\" { }",
    );
    let out = t.run(&["--game", "620", "--shim", &shim]);
    assert!(out.status.success());
    assert_eq!(t.entries(), vec!["cgsplit", "cgsplit-scout"]);
    assert_eq!(
        manifest(&t.tools().join("cgsplit-scout"))["require_tool_appid"],
        "1070560"
    );
    let out = t.run(&["--remove", "--game", "620"]);
    assert!(out.status.success());
    assert!(t.entries().is_empty(), "{:?}", t.entries());
}
