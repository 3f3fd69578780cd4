//! The shim end to end on a real `systemd --user` (private namespaces, real
//! D-Bus, real cgroup v2), launched by the Steam stand-in the two ways Steam
//! does it (issue 6, "Tests"):
//!
//! - **compatibility-tool chain**: the cgsplit tool requires a runtime
//!   (`require_tool_appid 1628350`), so the runtime stand-in is the OUTER
//!   tool: `<runtime>/_v2-entry-point --verb=waitforexitandrun --
//!   <cgsplit>/cgsplit-shim --kill-steam compat waitforexitandrun -- <game>`;
//! - **launch options**: `<shim> --kill-steam -- %command%`, where Steam's
//!   `%command%` starts with its reaper: `<shim> … -- <reaper> SteamLaunch
//!   AppId=620 -- <game>`.
//!
//! The game forks a child it waits for and an orphan it does not. Judged by
//! the game's own reports (pid, `/proc/self/cgroup`), never by the shim's:
//! game, child and orphan are in `game/`; the shutdown line arrives on the
//! test FIFO at `~/.steam/steam.pipe` exactly once, after the orphan ended.
//! With no reader on the FIFO: no request, no hang. With `--network
//! localhost`, an xattr saying `localhost` and no filter attached: refused,
//! the game never starts.
//!
//! Needs root, the workspace's binaries (`cargo build --workspace --bins`)
//! and the static shim (`cargo build-shim`).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use cgsplit_core::scope::GAME_LEAF;
use cgsplit_tests::fixtures::{field, localconfig, report_dir, shared_tempdir};
use cgsplit_tests::testbed::{self, Testbed, sh};

/// What `steam -shutdown` writes into steam.pipe (STEAM.md §5).
const SHUTDOWN_LINE: &str = "'~/.steam/root/ubuntu12_32/steam' '-shutdown'\n";

fn line<'a>(report: &'a str, who: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.starts_with(who))
        .unwrap_or_else(|| panic!("no `{who}` line in report:\n{report}"))
}

fn write_exec(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn steam_chains_kill_steam_and_fail_closed() {
    let Some(bed) = Testbed::or_skip() else {
        return;
    };
    let Some(static_shim) = testbed::static_shim_or_skip() else {
        return;
    };
    cgsplit_tests::bins::bin("cgsplit");
    let tmp = shared_tempdir("cgsplit-e2e-shim-");
    let root = tmp.path();

    // The cgsplit tool: the static shim and a manifest requiring the runtime.
    let tool = root.join("compatibilitytools.d/cgsplit");
    fs::create_dir_all(&tool).unwrap();
    let shim = tool.join("cgsplit-shim");
    fs::copy(&static_shim, &shim).unwrap();
    fs::write(
        tool.join("toolmanifest.vdf"),
        "\"manifest\"\n{\n\t\"version\"\t\t\"2\"\n\t\"commandline\"\t\t\"/cgsplit-shim --kill-steam compat %verb% --\"\n\t\"require_tool_appid\"\t\t\"1628350\"\n}\n",
    )
    .unwrap();
    // The runtime stand-in (SteamLinuxRuntime_sniper's entry point): stays the
    // parent of what it runs, as pressure-vessel does.
    let runtime = root.join("steamapps/common/SteamLinuxRuntime_sniper");
    fs::create_dir_all(&runtime).unwrap();
    fs::write(
        runtime.join("toolmanifest.vdf"),
        "\"manifest\"\n{\n\t\"version\"\t\t\"2\"\n\t\"commandline\"\t\t\"/_v2-entry-point --verb=%verb% --\"\n}\n",
    )
    .unwrap();
    write_exec(
        &runtime.join("_v2-entry-point"),
        "#!/bin/sh\ncase \"$1\" in --verb=*) shift ;; *) echo \"runtime: no --verb\" >&2; exit 125 ;; esac\n[ \"$1\" = -- ] && shift\necho \"runtime stand-in pid=$$ runs: $*\" >&2\n\"$@\"\n",
    );
    let game_dir = root.join("steamapps/common/Portal 2");
    fs::create_dir_all(&game_dir).unwrap();
    let game = game_dir.join("portal2_linux");
    fs::copy(env!("CARGO_BIN_EXE_fake-game"), &game).unwrap();
    let reaper = root.join("ubuntu12_32/reaper");
    fs::create_dir_all(reaper.parent().unwrap()).unwrap();
    fs::copy(env!("CARGO_BIN_EXE_fake-reaper"), &reaper).unwrap();
    // The path the test uid sees inside the testbed (not the checkout's).
    let steam = cgsplit_tests::bins::testbed_bin("fake-steam");

    let no_options = root.join("localconfig.plain.vdf");
    localconfig(&no_options, "");
    let wrapped = root.join("localconfig.wrapped.vdf");
    localconfig(
        &wrapped,
        &format!("{} --kill-steam -- %command% -novid", sh(&shim)),
    );
    let closed = root.join("localconfig.closed.vdf");
    localconfig(
        &closed,
        &format!("{} --network localhost -- %command%", sh(&shim)),
    );
    let out = report_dir(root.join("out"));

    let script = format!(
        r#"set -u
out={out}; steam={steam}; game={game}
scope=$("$CGSPLIT_BIN/cgsplit" provision --app 620 2>"$out/provision.log"); echo $? >"$out/provision.rc"
echo "$scope" >"$out/scope"
mkdir -p "$HOME/.steam" && mkfifo "$HOME/.steam/steam.pipe"
# Steam's side of steam.pipe: a reader that never sees EOF (it holds a write end too).
listen() {{ cat <>"$HOME/.steam/steam.pipe" >"$out/$1" & reader=$!; }}
stop() {{ sleep 0.3; kill "$reader"; }}

# A: the compatibility-tool chain, runtime outermost.
listen pipe.chain
FAKE_GAME_ORPHAN_MS=700 FAKE_GAME_WATCH="$out/pipe.chain" FAKE_GAME_REPORT="$out/report.chain" \
  "$steam" --localconfig {plain} --app 620 --tool {tool} --library-tool 1628350={runtime} -- "$game" 'a b' \
  >"$out/launch.chain.log" 2>&1; echo $? >"$out/rc.chain"
stop

# B: launch options, the reaper stand-in inside %command%.
listen pipe.options
FAKE_GAME_ORPHAN_MS=700 FAKE_GAME_WATCH="$out/pipe.options" FAKE_GAME_REPORT="$out/report.options" FAKE_GAME_EXIT=3 \
  "$steam" --localconfig {wrapped} --app 620 --reaper {reaper} -- "$game" \
  >"$out/launch.options.log" 2>&1; echo $? >"$out/rc.options"
stop

# C: Steam not running: the FIFO has no reader.
FAKE_GAME_REPORT="$out/report.noreader" timeout 20 "$steam" --localconfig {wrapped} --app 620 --reaper {reaper} -- "$game" \
  >"$out/launch.noreader.log" 2>&1; echo $? >"$out/rc.noreader"

# D: network = localhost recorded on the scope, nothing attached.
setfattr -n user.cgsplit.policy -v localhost "/sys/fs/cgroup$scope" 2>"$out/setfattr.log"; echo $? >"$out/setfattr.rc"
FAKE_GAME_REPORT="$out/report.closed" "$steam" --localconfig {closed} --app 620 -- "$game" \
  >"$out/launch.closed.log" 2>&1; echo $? >"$out/rc.closed"
"$CGSPLIT_BIN/cgsplit" release --app 620 >/dev/null 2>&1
"#,
        out = sh(&out),
        steam = sh(&steam),
        game = sh(&game),
        plain = sh(&no_options),
        tool = sh(&tool),
        runtime = sh(&runtime),
        wrapped = sh(&wrapped),
        reaper = sh(&reaper),
        closed = sh(&closed),
    );
    let run = bed.net().run_sh(&script);
    let read = |n: &str| fs::read_to_string(out.join(n)).unwrap_or_default();
    let logs = |n: &str| {
        format!(
            "--- {n}\n{}\n--- testbed stderr\n{}",
            read(n),
            String::from_utf8_lossy(&run.stderr)
        )
    };
    assert!(
        run.status.success(),
        "testbed: {run:?}\n{}",
        logs("provision.log")
    );
    assert_eq!(read("provision.rc"), "0\n", "{}", logs("provision.log"));
    let leaf = format!("{}/{GAME_LEAF}", read("scope").trim());

    for case in ["chain", "options"] {
        let log = logs(&format!("launch.{case}.log"));
        let want_rc = if case == "options" { "3\n" } else { "0\n" };
        assert_eq!(read(&format!("rc.{case}")), want_rc, "{case}: {log}");
        let report = read(&format!("report.{case}"));
        let game = line(&report, "game ");
        let child = line(&report, "child ");
        let orphan = line(&report, "orphan ");
        for (who, l) in [("game", game), ("child", child), ("orphan", orphan)] {
            assert_eq!(
                field(l, "cgroup"),
                leaf,
                "{case}: {who} not in game/: {report}\n{log}"
            );
        }
        assert_eq!(field(child, "parent"), field(game, "pid"));
        assert_eq!(
            field(orphan, "watched"),
            "empty",
            "{case}: the shutdown request arrived before the orphan ended\n{log}"
        );
        assert_eq!(
            read(&format!("pipe.{case}")),
            SHUTDOWN_LINE,
            "{case}: exactly one shutdown line\n{log}"
        );
        assert!(log.contains("asked Steam to shut down"), "{case}: {log}");
    }
    let chain_log = read("launch.chain.log");
    // The runtime is the outer tool: its entry point runs the shim.
    let outer = chain_log
        .lines()
        .find(|l| l.starts_with("fake-steam: app 620: /bin/sh -c "))
        .unwrap_or_else(|| panic!("{chain_log}"));
    let (before, after) = outer
        .split_once("/_v2-entry-point --verb=waitforexitandrun -- ")
        .unwrap_or_else(|| panic!("runtime not outermost: {outer}"));
    assert!(!before.contains("compat waitforexitandrun"), "{outer}");
    assert!(
        after.contains("/cgsplit-shim --kill-steam compat waitforexitandrun -- "),
        "{outer}"
    );
    assert!(chain_log.contains("runtime stand-in pid="), "{chain_log}");
    assert!(
        read("report.chain").contains(r#"argv ["a b"]"#),
        "{}",
        read("report.chain")
    );
    assert!(read("report.options").contains(r#"argv ["-novid"]"#));

    // C: no reader, no request, no hang; the game ran in its leaf.
    assert_eq!(
        read("rc.noreader"),
        "0\n",
        "{}",
        logs("launch.noreader.log")
    );
    assert!(
        read("launch.noreader.log").contains("has no reader"),
        "{}",
        logs("launch.noreader.log")
    );
    assert_eq!(
        field(line(&read("report.noreader"), "game "), "cgroup"),
        leaf
    );

    // D: refused before the game started.
    assert_eq!(read("setfattr.rc"), "0\n", "{}", logs("setfattr.log"));
    assert_eq!(read("rc.closed"), "4\n", "{}", logs("launch.closed.log"));
    assert_eq!(read("report.closed"), "", "the game must not run");
    let closed_log = read("launch.closed.log");
    let refusal: Vec<&str> = closed_log
        .lines()
        .filter(|l| l.starts_with("cgsplit-shim:"))
        .collect();
    assert_eq!(refusal.len(), 1, "{closed_log}");
    assert!(
        refusal[0]
            .starts_with("cgsplit-shim: refusing to run the game: a UDP connect() to 192.0.2.1:9"),
        "{closed_log}"
    );
}
