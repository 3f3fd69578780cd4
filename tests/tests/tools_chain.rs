//! A "cgsplit + Proton" tool entry rendered by the real `cgsplit-install`,
//! run by the Steam stand-in on a real `systemd --user` (issue 7, item 1):
//! the entry requires the runtime Proton requires, so the runtime stand-in
//! is the OUTER tool and the entry's launcher runs inside its container:
//! `<runtime>/_v2-entry-point --verb=waitforexitandrun --
//! <entry>/cgsplit-chain waitforexitandrun <game>` →
//! `cgsplit-shim --chain compat waitforexitandrun -- '<Proton>/proton'
//! waitforexitandrun <game>`.
//!
//! The runtime stand-in is a container like pressure-vessel's: `bwrap` with
//! `/usr` and `/etc` read-only, `/sys` read-only, a private `/tmp`, the home
//! directory, and exactly the paths pressure-vessel shares from the
//! environment (`wrap.c` `known_required_env`: `STEAM_COMPAT_*` paths and
//! `PRESSURE_VESSEL_FILESYSTEMS_RO/RW`). Proton lives in a second library,
//! and Proton's directory is not in `STEAM_COMPAT_TOOL_PATHS` (Steam lists
//! the entry and the runtime only). Cases:
//!
//! - A: the game is in the second library too, so Steam lists that library
//!   in `STEAM_COMPAT_LIBRARY_PATHS` ("containing the game", interface doc):
//!   the container reaches Proton, the game runs, and **the game's pid** (its
//!   own report) is in `game/`;
//! - B: the game is in the Steam root's library and nothing shares the
//!   second one: the launcher says which path is not visible and which
//!   launch option shares it, exits 127, the game never starts;
//! - C: B with that launch option (`STEAM_COMPAT_MOUNTS=<Proton dir>`): the
//!   game runs in `game/`;
//! - D (control): A without the scope directory in
//!   `PRESSURE_VESSEL_FILESYSTEMS_RW`: `/sys` is read-only in the container,
//!   the inner shim's write fails with `EROFS` and the game runs outside its
//!   scope (fail-open, one `cgsplit-shim:` line).
//!
//! `/sys` being read-only in pressure-vessel's container, A–C share the scope
//! directory read-write with `PRESSURE_VESSEL_FILESYSTEMS_RW` (issue 7, item
//! 3 names it; whether the real pressure-vessel accepts a cgroup path there
//! is not verified here). Without it, on native Steam only the outer shim of
//! the launch options (which `cgsplit-install --game N` also writes) puts
//! the game in its scope; D shows the inner one cannot.
//!
//! Needs root, bwrap, the workspace's binaries (`cargo build --workspace
//! --bins`) and the static shim (`cargo build-shim`).

use std::fs;
use std::path::Path;
use std::process::Command;

use cgsplit_core::scope::GAME_LEAF;
use cgsplit_tests::fixtures::{
    copy_demo_steam, field, readable_by_all, report_dir, shared_tempdir, sniper_runtime, write_file,
};
use cgsplit_tests::testbed::{self, Testbed, sh};

/// Proton 9's `toolmanifest.vdf` as shipped (STEAM.md §2).
const PROTON_MANIFEST: &str = "\"manifest\"\n{\n  \"version\" \"2\"\n  \"commandline\" \"/proton %verb%\"\n  \"require_tool_appid\" \"1628350\"\n  \"use_sessions\" \"1\"\n  \"compatmanager_layer_name\" \"proton\"\n}\n";

/// Proton stand-in: says what it got, then runs the game after the verb.
const PROTON: &str = "#!/bin/sh\necho \"proton verb=$1 tool_paths=$STEAM_COMPAT_TOOL_PATHS\" >&2\nshift\nexec \"$@\"\n";

/// The runtime's entry point: a pressure-vessel-like container (see module docs).
const ENTRY_POINT: &str = r#"#!/bin/bash
case "$1" in --verb=*) shift ;; *) echo "runtime: no --verb" >&2; exit 125 ;; esac
[ "$1" = -- ] && shift
args=(--die-with-parent --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib
      --symlink usr/lib64 /lib64 --symlink usr/sbin /sbin --ro-bind /etc /etc
      --proc /proc --dev /dev --ro-bind /sys /sys --tmpfs /tmp)
[ -n "${HOME:-}" ] && [ -d "$HOME" ] && args+=(--bind "$HOME" "$HOME")
for var in STEAM_COMPAT_CLIENT_INSTALL_PATH STEAM_COMPAT_DATA_PATH STEAM_COMPAT_INSTALL_PATH \
           STEAM_COMPAT_LIBRARY_PATHS STEAM_COMPAT_MOUNTS STEAM_COMPAT_SHADER_PATH \
           STEAM_COMPAT_TOOL_PATHS PRESSURE_VESSEL_FILESYSTEMS_RO PRESSURE_VESSEL_FILESYSTEMS_RW; do
  IFS=: read -ra paths <<<"${!var:-}"
  for p in "${paths[@]}"; do
    [ -e "$p" ] || continue
    if [ "$var" = PRESSURE_VESSEL_FILESYSTEMS_RO ]; then args+=(--ro-bind "$p" "$p"); else args+=(--bind "$p" "$p"); fi
  done
done
echo "runtime stand-in: container for: $*" >&2
exec bwrap "${args[@]}" -- "$@"
"#;

fn bwrap_or_skip() -> bool {
    if Path::new("/usr/bin/bwrap").is_file() {
        return true;
    }
    let why = "skipping: no /usr/bin/bwrap (apt-get install bubblewrap)";
    assert!(std::env::var_os(testbed::CI_VAR).is_none(), "{why}");
    eprintln!("{why}");
    false
}

#[test]
fn proton_entry_runs_proton_from_a_second_library_inside_the_runtime_container() {
    let Some(bed) = Testbed::or_skip() else {
        return;
    };
    let Some(static_shim) = testbed::static_shim_or_skip() else {
        return;
    };
    if !bwrap_or_skip() {
        return;
    }
    cgsplit_tests::bins::bin("cgsplit");
    let install = cgsplit_tests::bins::bin("cgsplit-install");
    let tmp = shared_tempdir("cgsplit-tools-chain-");
    let t = tmp.path();

    // The Steam root (a copy of the demo tree) and a second library.
    let root = t.join("Steam");
    copy_demo_steam(&root);
    let lib2 = t.join("Second Library");
    write_file(
        &root.join("steamapps/libraryfolders.vdf"),
        &format!(
            "\"libraryfolders\"\n{{\n\t\"0\"\n\t{{\n\t\t\"path\"\t\t\"{}\"\n\t}}\n\t\"1\"\n\t{{\n\t\t\"path\"\t\t\"{}\"\n\t}}\n}}\n",
            root.display(),
            lib2.display()
        ),
        0o644,
    );
    // sniper in the root's library, its entry point the container stand-in.
    let runtime = sniper_runtime(&root);
    write_file(&runtime.join("_v2-entry-point"), ENTRY_POINT, 0o755);
    // Proton in the second library.
    let proton = lib2.join("steamapps/common/Proton 9.0 (Beta)");
    write_file(&proton.join("proton"), PROTON, 0o755);
    write_file(&proton.join("toolmanifest.vdf"), PROTON_MANIFEST, 0o644);
    // Two games: one in each library.
    let game2 = lib2.join("steamapps/common/Game Two/game");
    let game1 = root.join("steamapps/common/Portal 2/portal2");
    for g in [&game2, &game1] {
        fs::create_dir_all(g.parent().unwrap()).unwrap();
        fs::copy(env!("CARGO_BIN_EXE_fake-game"), g).unwrap();
    }
    readable_by_all(&[&root, &lib2]);

    // The real installer renders the entries (Steam is not running: no pipe).
    let home = t.join("installer-home");
    fs::create_dir_all(&home).unwrap();
    let out = Command::new(&install)
        .args(["--game", "620", "--steam-root"])
        .arg(&root)
        .arg("--shim")
        .arg(&static_shim)
        .env("HOME", &home)
        .env("XDG_STATE_HOME", home.join("state"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cgsplit-install: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let entry = root.join("compatibilitytools.d/cgsplit-proton-9-0-beta");
    assert!(
        entry.join("cgsplit-chain").is_file(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Steam's launch without launch options: only the tool entry acts.
    let plain = t.join("localconfig.plain.vdf");
    write_file(
        &plain,
        "\"UserLocalConfigStore\"\n{\n\t\"Software\"\n\t{\n\t\t\"Valve\"\n\t\t{\n\t\t\t\"Steam\"\n\t\t\t{\n\t\t\t\t\"apps\"\n\t\t\t\t{\n\t\t\t\t}\n\t\t\t}\n\t\t}\n\t}\n}\n",
        0o644,
    );
    let out_dir = report_dir(t.join("out"));

    let script = format!(
        r#"set -u
out={out}; steam={steam}; root={root}
scope=$("$CGSPLIT_BIN/cgsplit" provision --app 620 2>"$out/provision.log") || exit 91
echo "$scope" >"$out/scope"
export PRESSURE_VESSEL_FILESYSTEMS_RW="/sys/fs/cgroup$scope:$out"
launch() {{ # case library install-dir game [extra env...]
  c=$1 lib=$2 dir=$3 game=$4; shift 4
  env STEAM_COMPAT_LIBRARY_PATHS="$lib" STEAM_COMPAT_INSTALL_PATH="$dir" FAKE_GAME_REPORT="$out/report.$c" "$@" \
    "$steam" --localconfig {plain} --app 620 --root "$root" --tool {entry} --library-tool 1628350={runtime} \
    -- "$game" 'a b' >"$out/launch.$c.log" 2>&1
  echo $? >"$out/rc.$c"
}}
launch a "$root/steamapps:"{lib2}/steamapps {game2dir} {game2}
launch b "$root/steamapps" {game1dir} {game1}
launch c "$root/steamapps" {game1dir} {game1} STEAM_COMPAT_MOUNTS={proton}
# D: as pressure-vessel does by default: /sys read-only, the scope not shared.
launch d "$root/steamapps:"{lib2}/steamapps {game2dir} {game2} PRESSURE_VESSEL_FILESYSTEMS_RW="$out"
"$CGSPLIT_BIN/cgsplit" release --app 620 >/dev/null 2>&1
"#,
        out = sh(&out_dir),
        // The path the test uid sees inside the testbed (not the checkout's).
        steam = sh(&cgsplit_tests::bins::testbed_bin("fake-steam")),
        root = sh(&root),
        plain = sh(&plain),
        entry = sh(&entry),
        runtime = sh(&runtime),
        lib2 = sh(&lib2),
        game2dir = sh(game2.parent().unwrap()),
        game2 = sh(&game2),
        game1dir = sh(game1.parent().unwrap()),
        game1 = sh(&game1),
        proton = sh(&proton),
    );
    let run = bed.run_sh(&script);
    let read = |n: &str| fs::read_to_string(out_dir.join(n)).unwrap_or_default();
    let logs = |c: &str| {
        format!(
            "--- launch.{c}.log\n{}--- provision.log\n{}--- testbed stderr\n{}",
            read(&format!("launch.{c}.log")),
            read("provision.log"),
            String::from_utf8_lossy(&run.stderr)
        )
    };
    assert!(run.status.success(), "testbed: {run:?}\n{}", logs("a"));
    let leaf = format!("{}/{GAME_LEAF}", read("scope").trim());

    for c in ["a", "c"] {
        assert_eq!(read(&format!("rc.{c}")), "0\n", "case {c}\n{}", logs(c));
        let report = read(&format!("report.{c}"));
        let game = report
            .lines()
            .find(|l| l.starts_with("game "))
            .unwrap_or_else(|| panic!("case {c}: the game did not run\n{}", logs(c)));
        assert_eq!(
            field(game, "cgroup"),
            leaf,
            "case {c}: the game's pid {} is not in game/\n{}",
            field(game, "pid"),
            logs(c)
        );
        let child = report.lines().find(|l| l.starts_with("child ")).unwrap();
        assert_eq!(field(child, "cgroup"), leaf, "case {c}\n{}", logs(c));
        assert!(report.contains(r#"argv ["a b"]"#), "case {c}: {report}");
        let log = read(&format!("launch.{c}.log"));
        // The runtime is the outer tool, the entry's launcher the inner one.
        let line = log
            .lines()
            .find(|l| l.starts_with("fake-steam: app 620: /bin/sh -c "))
            .unwrap_or_else(|| panic!("{log}"));
        let (before, after) = line
            .split_once("/_v2-entry-point --verb=waitforexitandrun -- ")
            .unwrap_or_else(|| panic!("runtime not outermost: {line}"));
        assert!(!before.contains("cgsplit-chain"), "{line}");
        assert!(
            after.contains("/cgsplit-chain waitforexitandrun "),
            "{line}"
        );
        assert!(log.contains("runtime stand-in: container for: "), "{log}");
        // Proton got Steam's verb, and its directory was not a tool path.
        let p = log
            .lines()
            .find(|l| l.starts_with("proton verb="))
            .unwrap_or_else(|| panic!("Proton did not run\n{log}"));
        assert!(p.starts_with("proton verb=waitforexitandrun "), "{p}");
        assert!(!p.contains("Proton 9.0"), "{p}");
        assert!(p.contains("cgsplit-proton-9-0-beta"), "{p}");
    }
    // B: not visible, said once, nothing ran.
    assert_eq!(read("rc.b"), "127\n", "{}", logs("b"));
    assert_eq!(read("report.b"), "", "the game must not run");
    let log_b = read("launch.b.log");
    let lines: Vec<&str> = log_b.lines().filter(|l| l.starts_with("cgsplit")).collect();
    assert_eq!(lines.len(), 1, "{log_b}");
    assert!(
        lines[0].starts_with(&format!(
            "cgsplit: {}/proton (Proton 9.0 (Beta)) is not visible here.",
            proton.display()
        )),
        "{log_b}"
    );
    assert!(
        lines[0].contains(&format!("STEAM_COMPAT_MOUNTS={} %command%", sh(&proton))),
        "{log_b}"
    );
    // D (control): the container is real: with the scope not shared, the
    // inner shim's write fails with EROFS, it says so once and the game runs
    // outside its scope (fail-open, no network policy asked for).
    assert_eq!(read("rc.d"), "0\n", "{}", logs("d"));
    let log_d = read("launch.d.log");
    let game = read("report.d");
    let game = game
        .lines()
        .find(|l| l.starts_with("game "))
        .unwrap_or_else(|| panic!("D: the game did not run\n{log_d}"));
    assert_ne!(field(game, "cgroup"), leaf, "{log_d}");
    let shim: Vec<&str> = log_d
        .lines()
        .filter(|l| l.starts_with("cgsplit-shim:"))
        .collect();
    assert_eq!(shim.len(), 1, "{log_d}");
    assert!(shim[0].contains("EROFS"), "{log_d}");
}
