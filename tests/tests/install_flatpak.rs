//! `cgsplit-install` for a flatpak Steam, then the lines it wrote, run inside
//! the real flatpak sandbox (issue 3, item 7: "the shim copy must be
//! reachable from inside the flatpak sandbox for flatpak Steam"; issue 7,
//! item 1 for the Proton entry).
//!
//! As the test uid on a real `systemd --user` with a private system bus:
//! a Steam root at `~/.var/app/com.valvesoftware.Steam/.local/share/Steam`
//! (a copy of `demo/steam`, plus a Proton stand-in in its
//! `steamapps/common`); `cgsplit-install --game 620` finds it by itself and
//! puts its tools and shim copies there. The offline flatpak runtime holds
//! busybox only — no shim, no host libraries — so the shim that runs in the
//! sandbox can only be the installer's copy, reached at the same path through
//! the app's own `~/.var/app/<id>` directory. Then, in the sandbox (the Steam
//! stand-in runs each line with `/bin/sh -c`, as Steam does):
//!
//! 1. the game's `LaunchOptions` exactly as written to `localconfig.vdf`, with
//!    `%command%` replaced by a busybox game;
//! 2. the plain entry's `toolmanifest.vdf` `commandline` (first word under the
//!    entry's directory, `%verb%` → `waitforexitandrun`) + the game;
//! 3. the "cgsplit + Proton" entry's `commandline` + the game: its launcher,
//!    the shim, then the Proton stand-in, then the game.
//!
//! Each time the game reports its sandbox pid `$$` and `/proc/self/cgroup`,
//! and lists the kernel's `game/cgroup.procs` as the sandbox sees it: the pid
//! must be in the granted `game/` leaf.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use cgsplit_core::scope::GAME_LEAF;
use cgsplit_tests::fixtures::{
    copy_demo_steam, field, readable_by_all, report_dir, shared_tempdir,
};
use cgsplit_tests::flatpak::{App, Kit, Runtime};
use cgsplit_tests::testbed::{self, Testbed, sh};

const APP: &str = "com.valvesoftware.Steam";

/// Steam stand-in: runs its first argument as Steam runs a launch line.
const STEAM: &str = "#!/bin/sh\nexec /bin/sh -c \"$1\"\n";

/// The game: busybox sh only. `$1` is the game leaf as the sandbox sees it.
const GAME: &str = r#"#!/bin/sh
echo "game pid=$$ cgroup=$(sed -n 's/^0:://p' /proc/self/cgroup) args=$*"
echo "leaf-procs $(tr '\n' ' ' < "$1/cgroup.procs")"
"#;

/// A Proton stand-in: runs the command after the verb (busybox sh).
const PROTON: &str = "#!/bin/sh\necho \"proton verb=$1\" >&2\nshift\nexec \"$@\"\n";

/// A third-party-style Proton manifest (no required runtime: the sandbox
/// here has no Steam Linux Runtime to wrap it in).
const PROTON_MANIFEST: &str = "\"manifest\"\n{\n  \"version\" \"2\"\n  \"commandline\" \"/proton %verb%\"\n  \"compatmanager_layer_name\" \"proton\"\n}\n";

#[test]
fn installed_lines_run_the_shim_copy_inside_the_flatpak_sandbox() {
    let Some(bed) = Testbed::or_skip() else {
        return;
    };
    let Some(shim) = testbed::static_shim_or_skip() else {
        return;
    };
    if !Kit::available_or_skip() {
        return;
    }
    cgsplit_tests::bins::bin("cgsplit");
    cgsplit_tests::bins::bin("cgsplit-install");
    let tmp = shared_tempdir("cgsplit-install-flatpak-");
    let t = tmp.path();
    // No shim in the runtime: only the installer's copy can run.
    let kit = Kit::build(
        t,
        &Runtime::new(),
        &[App::new(APP)
            .script("steam", STEAM)
            .script("game", GAME)
            .command("steam")],
    )
    .expect("build the flatpak repo");
    // The Steam tree the test uid copies into its flatpak Steam root.
    let tree = t.join("steam-tree");
    copy_demo_steam(&tree);
    let proton = tree.join("steamapps/common/Proton 9.0 (Beta)");
    fs::create_dir_all(&proton).unwrap();
    fs::write(proton.join("proton"), PROTON).unwrap();
    fs::set_permissions(proton.join("proton"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(proton.join("toolmanifest.vdf"), PROTON_MANIFEST).unwrap();
    let shim_copy = t.join("cgsplit-shim");
    fs::copy(&shim, &shim_copy).unwrap();
    readable_by_all(&[&tree, &shim_copy]);
    let out = report_dir(t.join("out"));

    let script = format!(
        r#"set -u
out={out}
{install}
root="$HOME/.var/app/{app}/.local/share/Steam"
mkdir -p "$root" && cp -R {tree}/. "$root/" || exit 94
sed -i "s|@STEAM_ROOT@|$root|" "$root/steamapps/libraryfolders.vdf"
"$CGSPLIT_BIN/cgsplit-install" --game 620 --shim {shim} >"$out/install.out" 2>"$out/install.err" || exit 95
ls "$root/compatibilitytools.d" >"$out/entries"
# 1. The launch options exactly as written, %command% → the game.
grep -h '"LaunchOptions"' "$root"/userdata/*/config/localconfig.vdf | grep cgsplit-shim | head -n1 \
  | sed 's/^[[:space:]]*"LaunchOptions"[[:space:]]*"//; s/"[[:space:]]*$//; s/\\"/"/g; s/\\\\/\\/g' >"$out/options"
# 2./3. An entry's commandline: first word under its directory, %verb% → waitforexitandrun.
cmdline() {{
  c=$(sed -n 's/^[[:space:]]*"commandline"[[:space:]]*"\(.*\)"[[:space:]]*$/\1/p' "$1/toolmanifest.vdf")
  printf "'%s'%s" "$1" "$(printf %s "$c" | sed 's/%verb%/waitforexitandrun/g')"
}}
cmdline "$root/compatibilitytools.d/cgsplit" >"$out/plain"
cmdline "$root/compatibilitytools.d/cgsplit-proton-9-0-beta" >"$out/proton"
scope=$("$CGSPLIT_BIN/cgsplit" provision --app 620 2>"$out/provision.log") || exit 91
echo "$scope" >"$out/scope"
dir="/sys/fs/cgroup$scope"
flatpak --user override --filesystem="$dir" {app} || exit 92
game="/app/bin/game $dir/{leaf}"
for c in options plain proton; do
  line=$(cat "$out/$c")
  case $c in options) line=$(printf %s "$line" | sed "s|%command%|$game|") ;; *) line="$line $game" ;; esac
  printf '%s\n' "$line" >"$out/line.$c"
  {run} "$line" >"$out/game.$c" 2>"$out/err.$c"
  echo $? >"$out/rc.$c"
done
"$CGSPLIT_BIN/cgsplit" release --app 620 >/dev/null 2>&1
"#,
        out = sh(&out),
        install = kit.install_script(),
        app = APP,
        tree = sh(&tree),
        shim = sh(&shim_copy),
        run = Kit::run_cmd(APP, &["--env=SteamAppId=620"]),
        leaf = GAME_LEAF,
    );
    let run = bed.system_bus().run_sh(&script);
    let read = |n: &str| fs::read_to_string(out.join(n)).unwrap_or_default();
    let diag = |c: &str| {
        format!(
            "--- line.{c}\n{}--- game.{c}\n{}--- err.{c}\n{}--- install.out\n{}--- install.err\n{}--- provision.log\n{}--- testbed stderr\n{}",
            read(&format!("line.{c}")),
            read(&format!("game.{c}")),
            read(&format!("err.{c}")),
            read("install.out"),
            read("install.err"),
            read("provision.log"),
            String::from_utf8_lossy(&run.stderr)
        )
    };
    assert!(
        run.status.success(),
        "script failed ({:?})\n{}",
        run.status,
        diag("options")
    );
    let entries = read("entries");
    assert!(
        entries.lines().any(|l| l == "cgsplit")
            && entries.lines().any(|l| l == "cgsplit-proton-9-0-beta"),
        "{entries}\n{}",
        diag("options")
    );
    let flatpak_tools = format!("/.var/app/{APP}/.local/share/Steam/compatibilitytools.d/");
    let leaf = format!("{}/{GAME_LEAF}", read("scope").trim());
    for c in ["options", "plain", "proton"] {
        let line = read(&format!("line.{c}"));
        assert!(line.contains(&flatpak_tools), "{c}: {}", diag(c));
        assert_eq!(read(&format!("rc.{c}")), "0\n", "{c}: {}", diag(c));
        let report = read(&format!("game.{c}"));
        let game = report
            .lines()
            .find(|l| l.starts_with("game "))
            .unwrap_or_else(|| panic!("{c}: the game did not run\n{}", diag(c)));
        let pid = field(game, "pid");
        assert_eq!(field(game, "cgroup"), leaf, "{c}: {}", diag(c));
        let procs: Vec<&str> = report
            .lines()
            .find_map(|l| l.strip_prefix("leaf-procs "))
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        assert!(
            procs.contains(&pid),
            "{c}: pid {pid} not in game/cgroup.procs {procs:?}\n{}",
            diag(c)
        );
    }
    // The launch options kept what the user had around %command%.
    let options = read("line.options");
    assert!(
        options.starts_with("DEMO_GREETING='hello from Steam' ")
            && options.contains("/compatibilitytools.d/cgsplit/cgsplit-shim")
            && options.contains(" -- /app/bin/game "),
        "{options}"
    );
    assert!(
        read("game.options").contains(" -novid"),
        "{}",
        diag("options")
    );
    // The Proton entry went through Proton with Steam's verb.
    assert!(
        read("err.proton").contains("proton verb=waitforexitandrun"),
        "{}",
        diag("proton")
    );
}
