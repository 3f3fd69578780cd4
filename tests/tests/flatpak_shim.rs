//! The static shim inside a real flatpak sandbox (issue 6, "Tests"): an
//! offline runtime holding only busybox and the static shim, no host
//! libraries ([`cgsplit_tests::flatpak`]); a stand-in for
//! `com.valvesoftware.Steam` installed `--user` on a real `systemd --user`
//! with a private system bus; the scope provisioned by `cgsplit provision`
//! and granted with `flatpak --user override --filesystem=<scope dir>`.
//!
//! Judged by the game's pid: the game (busybox sh) reports its sandbox pid
//! `$$` and `/proc/self/cgroup`; inside, the kernel's `game/cgroup.procs`
//! lists that pid; outside, a host pid in `game/cgroup.procs` has that
//! sandbox pid as the last `NSpid` entry. With `--kill-steam` and Steam's
//! `--persist=.steam`, the shutdown line reaches the FIFO the host sees at
//! `~/.var/app/<id>/.steam/steam.pipe`, and the shim's log lands in the
//! app's state directory. With `network = localhost` recorded on the scope
//! and no filter attached, the shim in the sandbox refuses to start the game.

use std::fs;

use cgsplit_core::scope::GAME_LEAF;
use cgsplit_tests::fixtures::{field, report_dir, shared_tempdir};
use cgsplit_tests::flatpak::{App, Kit, Runtime};
use cgsplit_tests::testbed::{self, Testbed, sh};

const APP: &str = "com.valvesoftware.Steam";
const SHUTDOWN_LINE: &str = "'~/.steam/root/ubuntu12_32/steam' '-shutdown'\n";

/// Steam stand-in: runs its first argument as Steam runs a launch line.
const STEAM: &str = "#!/bin/sh\nexec /bin/sh -c \"$1\"\n";

/// The game: busybox sh only. `$1` is the game leaf as the sandbox sees it.
const GAME: &str = r#"#!/bin/sh
echo "game pid=$$ cgroup=$(sed -n 's/^0:://p' /proc/self/cgroup)"
echo "leaf-procs $(tr '\n' ' ' < "$1/cgroup.procs")"
sh -c 'echo "child pid=$$ cgroup=$(sed -n "s/^0:://p" /proc/self/cgroup)"'
if [ -e /lib/x86_64-linux-gnu/libc.so.6 ] || [ -e /usr/lib/x86_64-linux-gnu/libc.so.6 ]; then echo "hostlibs=present"; else echo "hostlibs=none"; fi
echo ready
sleep 1
exit 7
"#;

#[test]
fn shim_joins_the_granted_scope_inside_the_sandbox() {
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
    let tmp = shared_tempdir("cgsplit-flatpak-");
    let kit = Kit::build(
        tmp.path(),
        &Runtime::new().bin(&shim, "cgsplit-shim"),
        &[App::new(APP)
            .script("steam", STEAM)
            .script("game", GAME)
            .command("steam")
            .finish_arg("--persist=.steam")],
    )
    .expect("build the flatpak repo");
    let out = report_dir(tmp.path().join("out"));

    let script = format!(
        r#"set -u
out={out}
{install}
scope=$("$CGSPLIT_BIN/cgsplit" provision --app 620 2>"$out/provision.log") || exit 91
echo "$scope" >"$out/scope"
dir="/sys/fs/cgroup$scope"
flatpak --user override --filesystem="$dir" {app} || exit 92
# Steam's ~/.steam is persisted under ~/.var/app/<id>; its FIFO with a reader.
pipe="$HOME/.var/app/{app}/.steam/steam.pipe"
mkdir -p "${{pipe%/*}}" && mkfifo "$pipe"
cat <>"$pipe" >"$out/pipe" & reader=$!
{run} "cgsplit-shim --kill-steam -- /app/bin/game $dir/{leaf}" >"$out/game.out" 2>"$out/game.err" &
fp=$!
i=0; until grep -q '^ready' "$out/game.out" 2>/dev/null; do i=$((i+1)); [ $i -gt 200 ] && break; sleep 0.05; done
# The host's view while the game runs: pids in game/ and their sandbox pids.
for p in $(cat "$dir/{leaf}/cgroup.procs"); do
  echo "host $p nspid=$(awk '/^NSpid:/ {{print $NF}}' /proc/$p/status)"
done >"$out/outside"
wait $fp; echo $? >"$out/rc"
sleep 0.3; kill $reader
cp "$HOME/.var/app/{app}/.local/state/cgsplit/shim.log" "$out/shim.log" 2>/dev/null
# network = localhost recorded on the scope, no filter attached: the shim in
# the sandbox reads the xattr through the bind mount, joins, and refuses.
setfattr -n user.cgsplit.policy -v localhost "$dir" || exit 93
{run} "cgsplit-shim --network localhost -- /app/bin/game $dir/{leaf}" >"$out/closed.out" 2>"$out/closed.err"
echo $? >"$out/closed.rc"
"#,
        out = sh(&out),
        install = kit.install_script(),
        app = APP,
        run = Kit::run_cmd(APP, &["--env=SteamAppId=620"]),
        leaf = GAME_LEAF,
    );
    let run = bed.system_bus().run_sh(&script);
    let read = |n: &str| fs::read_to_string(out.join(n)).unwrap_or_default();
    let diag = || {
        format!(
            "--- game.out\n{}--- game.err\n{}--- provision.log\n{}--- testbed stderr\n{}",
            read("game.out"),
            read("game.err"),
            read("provision.log"),
            String::from_utf8_lossy(&run.stderr)
        )
    };
    assert!(
        run.status.success(),
        "script failed ({:?})\n{}",
        run.status,
        diag()
    );
    let leaf = format!("{}/{GAME_LEAF}", read("scope").trim());
    let game_out = read("game.out");
    let line = |who: &str| {
        game_out
            .lines()
            .find(|l| l.starts_with(who))
            .unwrap_or_else(|| panic!("no {who} line\n{}", diag()))
            .to_owned()
    };
    assert_eq!(read("rc"), "7\n", "the game's status\n{}", diag());
    let game = line("game ");
    let game_pid = field(&game, "pid").to_owned();
    assert_eq!(field(&game, "cgroup"), leaf, "{}", diag());
    assert_eq!(field(&line("child "), "cgroup"), leaf, "{}", diag());
    assert_eq!(
        line("hostlibs="),
        "hostlibs=none",
        "the sandbox must hold no host libraries"
    );
    // Inside: the kernel lists the game's sandbox pid in game/.
    let inside: Vec<String> = line("leaf-procs ")
        .split_whitespace()
        .skip(1)
        .map(str::to_owned)
        .collect();
    assert!(
        inside.contains(&game_pid),
        "pid {game_pid} not in {inside:?}\n{}",
        diag()
    );
    // Outside: a host pid in game/ is the game (its innermost pid is $$).
    let outside = read("outside");
    assert!(
        outside.lines().any(|l| field(l, "nspid") == game_pid),
        "no host pid in game/ with NSpid …{game_pid}:\n{outside}\n{}",
        diag()
    );
    // The shim inside the sandbox asked Steam (the FIFO under ~/.var/app) to quit.
    assert_eq!(read("pipe"), SHUTDOWN_LINE, "{}", diag());
    assert!(
        read("game.err").contains("asked Steam to shut down"),
        "{}",
        diag()
    );
}
