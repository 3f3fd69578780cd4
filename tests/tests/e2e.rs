//! The walking skeleton, end to end, against real parts:
//! demo Steam tree → `cgsplit-install --game 620` → `cgsplit provision --app 620`
//! on a real `systemd --user` (private namespaces, real D-Bus, real cgroup v2)
//! → a Steam-style launch (`fake-steam`: `%command%` substituted, `/bin/sh -c`,
//! Steam's env) through the static shim → the game **and its child** are in
//! `…/games.slice/cgsplit-620.scope/game`, also when launched through the
//! registered compatibility tool's `toolmanifest.vdf` commandline → release →
//! `--remove` → `localconfig.vdf` byte-identical to the original.

use std::path::{Path, PathBuf};

use cgsplit_core::launch::{shim_prefix, wrap};
use cgsplit_core::scope::{GAME_LEAF, parse_scope_cgroup};
use cgsplit_tests::fixtures::{self, field, shared_tempdir};
use cgsplit_tests::testbed;

const ACCOUNT: &str = "39734273";
const DEMO_OPTIONS: &str = "DEMO_GREETING='hello from Steam' %command% -novid";

/// The demo Steam tree in `home` as a native install lays it out
/// ([`fixtures::demo_home`]), with `fake-game` as Portal 2's binary.
fn demo_home(home: &Path) -> PathBuf {
    let steam = fixtures::demo_home(home);
    let game_dir = steam.join("steamapps/common/Portal 2");
    std::fs::create_dir_all(&game_dir).unwrap();
    std::fs::copy(
        env!("CARGO_BIN_EXE_fake-game"),
        game_dir.join("portal2_linux"),
    )
    .unwrap();
    steam
}

#[test]
fn install_provision_launch_release_remove() {
    let Some(bed) = testbed::Testbed::or_skip() else {
        return;
    };
    let Some(shim) = testbed::static_shim_or_skip() else {
        return;
    };
    let tmp = shared_tempdir("cgsplit-e2e-");
    let home = tmp.path().join("home");
    let steam = demo_home(&home);
    let out = home.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let lc_rel = format!("userdata/{ACCOUNT}/config/localconfig.vdf");
    let original = std::fs::read(steam.join(&lc_rel)).unwrap();

    let script = format!(
        r#"set -u
bin=$CGSPLIT_BIN; shim=$CGSPLIT_SHIM; out={out}
root=$(readlink -f "$HOME/.steam/root")
lc="$root/{lc_rel}"
cp "$lc" "$out/localconfig.orig"
"$bin/cgsplit-install" --game 620 --shim "$shim" >"$out/install.log" 2>&1; echo $? >"$out/install.rc"
cp "$lc" "$out/localconfig.installed"
cp -a "$root/compatibilitytools.d/cgsplit" "$out/tool.installed"
"$bin/cgsplit-install" --game 620 --shim "$shim" >>"$out/install.log" 2>&1; echo $? >>"$out/install.rc"
cp "$lc" "$out/localconfig.installed2"
"$bin/cgsplit" provision --app 620 >"$out/scope" 2>"$out/provision.log"; echo $? >"$out/provision.rc"
scope=$(cat "$out/scope")
FAKE_GAME_REPORT="$out/report" "$bin/fake-steam" --localconfig "$lc" --app 620 --root "$root" \
    -- "$root/steamapps/common/Portal 2/portal2_linux" 'arg with space' >"$out/launch.log" 2>&1
echo $? >"$out/launch.rc"
# The same game chosen to run under the cgsplit compatibility tool, with the
# user's original launch options: the tool's own entry point joins the scope.
FAKE_GAME_REPORT="$out/report.tool" "$bin/fake-steam" --localconfig "$out/localconfig.orig" --app 620 \
    --root "$root" --tool "$root/compatibilitytools.d/cgsplit" \
    -- "$root/steamapps/common/Portal 2/portal2_linux" >"$out/launch.tool.log" 2>&1
echo $? >"$out/launch.tool.rc"
cat "/sys/fs/cgroup$scope/keeper/cgroup.procs" >"$out/keeper.procs"
"$bin/cgsplit" release --app 620 >"$out/release.log" 2>&1; echo $? >"$out/release.rc"
if [ -e "/sys/fs/cgroup$scope" ]; then echo present; else echo gone; fi >"$out/after-release"
"$bin/cgsplit-install" --remove --game 620 >"$out/remove.log" 2>&1; echo $? >"$out/remove.rc"
"#,
        out = testbed::sh(&out),
    );
    let run = bed.home(&home).run_sh(&script);
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap_or_default();
    let logs = || {
        [
            "install.log",
            "provision.log",
            "launch.log",
            "release.log",
            "remove.log",
        ]
        .iter()
        .map(|n| format!("--- {n}\n{}", read(n)))
        .collect::<String>()
    };
    assert!(run.status.success(), "testbed failed: {run:?}\n{}", logs());
    assert_eq!(read("install.rc"), "0\n0\n", "{}", logs());
    assert_eq!(read("provision.rc"), "0\n", "{}", logs());

    // The scope: the fixed layout, for app 620.
    let scope = read("scope").trim().to_owned();
    let parsed = parse_scope_cgroup(&scope).unwrap_or_else(|| panic!("scope {scope:?}"));
    assert_eq!(parsed.app.get(), 620);
    assert_eq!(parsed.rest, "");
    let game_leaf = format!("{scope}/{GAME_LEAF}");

    // The launch options the installer wrote: the shim copy inside the
    // compatibility tool directory, immediately before %command%.
    let tool = steam
        .canonicalize()
        .unwrap()
        .join("compatibilitytools.d/cgsplit");
    let shim_copy = tool.join("cgsplit-shim");
    let snapshot = out.join("tool.installed");
    assert_eq!(
        std::fs::read(snapshot.join("cgsplit-shim")).unwrap(),
        std::fs::read(&shim).unwrap(),
        "the tool directory holds a copy of the static shim"
    );
    let manifest = std::fs::read_to_string(snapshot.join("toolmanifest.vdf")).unwrap();
    assert!(manifest.contains("%verb%"), "{manifest}");
    assert!(snapshot.join("compatibilitytool.vdf").is_file());
    let installed = read("localconfig.installed");
    let want = wrap(DEMO_OPTIONS, &shim_prefix(shim_copy.to_str().unwrap(), &[]));
    let escaped = want.replace('\\', "\\\\").replace('"', "\\\"");
    let orig_text = String::from_utf8(original.clone()).unwrap();
    let changed: Vec<(&str, &str)> = orig_text
        .lines()
        .zip(installed.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(orig_text.lines().count(), installed.lines().count());
    assert_eq!(
        changed,
        vec![(
            "\t\t\t\t\t\t\"LaunchOptions\"\t\t\"DEMO_GREETING='hello from Steam' %command% -novid\"",
            format!("\t\t\t\t\t\t\"LaunchOptions\"\t\t\"{escaped}\"").as_str()
        )],
        "only app 620's LaunchOptions line may change"
    );
    assert_eq!(
        installed,
        read("localconfig.installed2"),
        "install is idempotent"
    );

    // The game, judged by the game itself, and its child.
    assert_eq!(read("launch.rc"), "0\n", "{}", logs());
    let report = read("report");
    let game = report
        .lines()
        .find(|l| l.starts_with("game "))
        .unwrap_or_else(|| panic!("no game line in report: {report}\n{}", logs()));
    let child = report
        .lines()
        .find(|l| l.starts_with("child "))
        .unwrap_or_else(|| panic!("no child line in report: {report}"));
    assert_eq!(
        field(game, "cgroup"),
        game_leaf,
        "game not in game/: {report}"
    );
    assert_eq!(
        field(child, "cgroup"),
        game_leaf,
        "child not in game/: {report}"
    );
    assert_eq!(field(child, "parent"), field(game, "pid"));
    assert!(
        report.contains(r#"argv ["arg with space", "-novid"]"#),
        "{report}"
    );
    assert!(report.contains("env SteamAppId=620"), "{report}");

    // Through the compatibility tool's commandline (toolmanifest.vdf), too.
    assert_eq!(read("launch.tool.rc"), "0\n", "{}", read("launch.tool.log"));
    let report = read("report.tool");
    for who in ["game ", "child "] {
        let line = report
            .lines()
            .find(|l| l.starts_with(who))
            .unwrap_or_else(|| panic!("no {who}line: {report}\n{}", read("launch.tool.log")));
        assert_eq!(field(line, "cgroup"), game_leaf, "via the tool: {report}");
    }
    assert!(
        read("launch.tool.log").contains("compat waitforexitandrun --"),
        "{}",
        read("launch.tool.log")
    );

    // The keeper kept the scope alive from its own leaf.
    let keeper = read("keeper.procs");
    assert_eq!(keeper.lines().count(), 1, "keeper/cgroup.procs: {keeper:?}");

    // Release stops the scope; --remove restores the file byte for byte.
    assert_eq!(read("release.rc"), "0\n", "{}", logs());
    assert_eq!(read("after-release"), "gone\n");
    assert_eq!(read("remove.rc"), "0\n", "{}", logs());
    assert!(
        std::fs::read(steam.join(&lc_rel)).unwrap() == original,
        "localconfig.vdf differs from the original after --remove"
    );
    assert!(
        !tool.exists(),
        "--remove of the last game removes the tool directory"
    );
}
