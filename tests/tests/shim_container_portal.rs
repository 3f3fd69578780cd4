//! The shim's re-insertion in launch options (issue 7 item 2) through the
//! real flatpak portal: in flatpak Steam a Steam Linux Runtime entry point
//! (pressure-vessel) relaunches the game with
//! `org.freedesktop.portal.Flatpak.Spawn`, into a new
//! `app-flatpak-com.valvesoftware.Steam-<n>.scope` that is not a descendant
//! of the process that joined `game/`.
//!
//! Inside the offline flatpak sandbox ([`cgsplit_tests::flatpak`], a stand-in
//! `com.valvesoftware.Steam` with `--socket=session-bus`), the static
//! `fake-pressure-vessel` is installed as `/usr/bin/_v2-entry-point`, so the
//! launch line is the shape Steam builds:
//! `cgsplit-shim -- _v2-entry-point --verb=waitforexitandrun -- /app/bin/game …`.
//! The outer shim joins `game/` in Steam's sandbox and inserts itself after
//! the entry point's `--`; the portal runs the inner copy in the
//! subsandbox, which is not in `game/` and joins (the `games.slice` grant
//! reaches the subsandbox: the portal's `flatpak run` reloads the
//! overrides). With `--no-reinsert` the game stays in the subsandbox's
//! scope: the control. Run twice: without a network policy, and with
//! `network = localhost` and the real `cgsplit-netd` attaching the filter,
//! where the inner copy proves it again from inside the subsandbox.
//!
//! Judged by the game's pid: the game records its own `/proc/self/cgroup`,
//! and the host finds its pid (by command line) in `game/cgroup.procs`.
//! `xdg-document-portal.service` is masked (no FUSE here, it would hang the
//! portal's `flatpak run`). Needs root, `cargo build --workspace --bins`,
//! `cargo build-shim` and the static stand-in (`scripts/setup` builds it).

use std::collections::HashMap;

use cgsplit_tests::fixtures::{SH_WAIT_FOR, show, vars};
use cgsplit_tests::flatpak::{App, Kit, PortalSteam};
use cgsplit_tests::testbed::sh;

const APP: &str = "com.valvesoftware.Steam";

/// The game: `game OUT TAG`. Records its pid and cgroup, then stays until
/// the host has looked (`TAG.seen`, at most 10 s).
const GAME: &str = r#"#!/bin/sh
out=$1; tag=$2
echo "pid=$$ cgroup=$(sed -n 's/^0:://p' /proc/self/cgroup) appid=$SteamAppId" > "$out/$tag.game"
j=0; until [ -e "$out/$tag.seen" ] || [ $j -ge 200 ]; do j=$((j+1)); sleep 0.05; done
"#;

/// Runs the three launches (`abs`, `rel`, `ctl`) with `shim_opts` in front
/// of the shim's `--`, app 620 configured with `config` (TOML text, `\n`
/// escaped for printf); with `netd`, the real `cgsplit-netd` serves on a
/// private system bus and the run is in a private network namespace.
/// Asserts what both policies share and returns the script's `k=v` lines.
fn three_launches(config: &str, shim_opts: &str, netd: bool) -> Option<HashMap<String, String>> {
    let (bed, s) = PortalSteam::build_or_skip(
        "cgsplit-shim-portal-",
        "_v2-entry-point",
        App::new(APP)
            .script("steam", "#!/bin/sh\nexec \"$@\"\n")
            .script("game", GAME)
            .command("steam"),
    )?;
    if netd {
        cgsplit_tests::bins::bin("cgsplit-netd");
    }

    let script = format!(
        r#"set -u
out={out}
{install}
systemctl --user mask xdg-document-portal.service >/dev/null 2>&1 || exit 94
{SH_WAIT_FOR}
{wait_netd}
mkdir -p $HOME/.config/cgsplit && printf '{config}' > $HOME/.config/cgsplit/config.toml
"$CGSPLIT_BIN/cgsplit" up >$HOME/up.out 2>$HOME/up.err || {{ cat $HOME/up.err >&2; exit 91; }}
SCOPE=/sys/fs/cgroup/user.slice/user-$TESTBED_UID.slice/user@$TESTBED_UID.service/games.slice/cgsplit-620.scope
echo "scope=${{SCOPE#/sys/fs/cgroup}}"
echo "policy=$(getfattr --absolute-names -n user.cgsplit.policy --only-values "$SCOPE" 2>/dev/null || echo none)"
flatpak --user override --filesystem="$out" {app} || exit 92
# launch TAG CMD…: runs CMD in a new Steam sandbox, reports the game's host
# pid, its cgroup on the host and whether game/cgroup.procs lists it.
launch() {{ tag=$1; shift
  {run} "$@" >"$out/$tag.out" 2>"$out/$tag.err" & steam=$!
  wait_for test -e "$out/$tag.game" || echo "$tag.timeout=1"
  p=$(for d in /proc/[0-9]*; do {{ tr '\0' ' ' < $d/cmdline; }} 2>/dev/null | grep -q "^/bin/sh /app/bin/game $out $tag " && echo ${{d#/proc/}}; done)
  echo "$tag.hostpid=$p"
  echo "$tag.hostcg=$(sed -n 's/^0:://p' /proc/$p/cgroup)"
  echo "$tag.in_game=$(grep -cx "$p" "$SCOPE/game/cgroup.procs")"
  touch "$out/$tag.seen"; wait $steam; echo "$tag.rc=$?"
  echo "$tag.$(cat "$out/$tag.game")"
  echo "$tag.err=$(grep -v '^F: ' "$out/$tag.err" | tr '\n' '|')"
}}
launch abs /usr/bin/cgsplit-shim {shim_opts} -- /usr/bin/_v2-entry-point --verb=waitforexitandrun -- /app/bin/game $out abs
launch rel cgsplit-shim {shim_opts} -- _v2-entry-point --verb=waitforexitandrun -- /app/bin/game $out rel
launch ctl cgsplit-shim {shim_opts} --no-reinsert -- _v2-entry-point --verb=waitforexitandrun -- /app/bin/game $out ctl
"$CGSPLIT_BIN/cgsplit" down >/dev/null 2>&1
"#,
        out = sh(&s.out),
        install = s.kit.install_script(),
        app = APP,
        run = Kit::run_cmd(APP, &["--env=SteamAppId=620"]),
        wait_netd = if netd {
            "wait_for busctl --system status io.github.cgsplit.Netd1 >/dev/null 2>&1 || exit 95\n\
             echo netd=up"
        } else {
            ""
        },
    );
    let bed = if netd {
        bed.with_netd()
    } else {
        bed.system_bus()
    };
    let run = bed.timeout_secs(90).run_sh(&script);
    let v = vars(&run);
    let diag = show(&run);
    let get = |k: &str| {
        v.get(k)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no {k}=\n{diag}"))
    };
    assert!(run.status.success(), "{diag}");
    // `TAG.pid=<n> cgroup=<path> appid=<id>`: the game's own record.
    let word = |tag: &str, w: &str| -> String {
        let full = format!("pid={}", get(&format!("{tag}.pid")));
        full.split(' ')
            .find_map(|x| x.strip_prefix(w)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {w}= in {full}\n{diag}"))
            .to_owned()
    };
    for tag in ["abs", "rel", "ctl"] {
        assert!(
            !v.contains_key(&format!("{tag}.timeout")),
            "{tag}: the game did not report\n{diag}"
        );
        assert_eq!(get(&format!("{tag}.rc")), "0", "{tag}\n{diag}");
        assert!(!get(&format!("{tag}.hostpid")).is_empty(), "{tag}\n{diag}");
        assert_eq!(word(tag, "appid"), "620", "{tag}\n{diag}");
        // The stand-in really went through the portal.
        assert!(
            get(&format!("{tag}.err")).contains("fake-pressure-vessel: spawn-ms="),
            "{tag}: no Spawn\n{diag}"
        );
    }
    Some(v)
}

/// `game/` of app 620 as the script printed it.
fn leaf(v: &HashMap<String, String>) -> String {
    format!("{}/game", v["scope"])
}

/// Re-inserted (`abs`: the shim by its absolute path; `rel`: found through
/// PATH, so `/proc/self/exe` names the copy): the game's pid is in `game/`,
/// seen from the host and by the game, and neither shim said anything.
fn assert_reinserted_in_game(v: &HashMap<String, String>) {
    for tag in ["abs", "rel"] {
        assert_eq!(v[&format!("{tag}.hostcg")], leaf(v), "{tag}: {v:#?}");
        assert_eq!(v[&format!("{tag}.in_game")], "1", "{tag}: {v:#?}");
        assert!(
            v[&format!("{tag}.pid")].contains(&format!(" cgroup={} ", leaf(v))),
            "{tag}: {v:#?}"
        );
        assert!(
            !v[&format!("{tag}.err")].contains("cgsplit-shim:"),
            "{tag}: the shims said nothing: {v:#?}"
        );
    }
}

/// Without the re-insertion (`ctl`): the portal's new scope, outside `game/`.
fn assert_control_outside(v: &HashMap<String, String>) {
    let cg = &v["ctl.hostcg"];
    assert!(
        cg.rsplit('/')
            .next()
            .is_some_and(|n| n.starts_with(&format!("app-flatpak-{APP}-")) && n.ends_with(".scope")),
        "ctl: {cg}: {v:#?}"
    );
    assert_eq!(v["ctl.in_game"], "0", "{v:#?}");
}

#[test]
fn launch_options_reinsertion_follows_the_portal_into_the_subsandbox() {
    let Some(v) = three_launches("[games.620]\\n", "", false) else {
        return;
    };
    assert_reinserted_in_game(&v);
    assert_control_outside(&v);
}

/// `network = localhost` with the real filter: the inner copy proves it
/// again inside the subsandbox and the game runs filtered in `game/`. The
/// control shows why the inner proof matters: the outer shim alone proved
/// the filter in `game/`, and the game then ran outside it, unfiltered.
#[test]
fn network_localhost_is_proven_again_inside_the_subsandbox() {
    let Some(v) = three_launches(
        "[games.620]\\nnetwork = \"localhost\"\\n",
        "--network localhost",
        true,
    ) else {
        return;
    };
    assert_eq!(v.get("netd").map(String::as_str), Some("up"), "{v:#?}");
    assert_eq!(v["policy"], "localhost", "the filter is attached: {v:#?}");
    assert_reinserted_in_game(&v);
    assert_control_outside(&v);
}
