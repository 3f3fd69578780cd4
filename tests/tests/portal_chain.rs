//! Issue 7, the two portal cases the other portal tests leave open, through
//! the real `flatpak-portal` (`org.freedesktop.portal.Flatpak.Spawn`,
//! D-Bus activated by the testbed's real `systemd --user`) inside the real
//! offline flatpak sandbox ([`cgsplit_tests::flatpak`], a stand-in
//! `com.valvesoftware.Steam` with `--socket=session-bus`;
//! `xdg-document-portal.service` masked: without FUSE it hangs the portal's
//! `flatpak run`).
//!
//! 1. **The compatibility-tool chain with a runtime entry.** The real
//!    `cgsplit-install` renders its tool entries into the app's Steam root
//!    `~/.var/app/<id>/.local/share/Steam`, where `appmanifest_1628350.acf`
//!    makes it write the runtime entry `cgsplit-sniper` (`require_tool_appid
//!    1628350`). Inside the Steam sandbox the app's busybox `steam` assembles
//!    the command line as Steam does for a tool that requires another
//!    (steam-compat-tool-interface.md: the required tool outermost, each
//!    v2 `commandline`'s first word under its tool's directory, `%verb%` →
//!    `waitforexitandrun`): `SteamLinuxRuntime_sniper/_v2-entry-point
//!    --verb=waitforexitandrun -- cgsplit-sniper/cgsplit-shim compat
//!    waitforexitandrun -- <game>`. The entry point there is the static
//!    `fake-pressure-vessel`, which relaunches the rest through the portal;
//!    the installer's shim copy runs innermost, in the subsandbox, and
//!    **the game's pid** must be in the granted `game/`.
//! 2. **`network = localhost` refuses when only adoption would have
//!    worked.** The real `cgsplit-netd` attaches the filter (scope xattr
//!    `localhost`); the launch options `cgsplit-shim --network localhost --
//!    _v2-entry-point … -- <game>` re-insert the shim, but the stand-in
//!    passes `Spawn`'s SANDBOX flag (`FLATPAK_SPAWN_FLAGS_SANDBOX = 1 << 2`),
//!    so the portal's `flatpak run --sandbox` drops the app's filesystem
//!    overrides and the `games.slice` grant does not reach the subsandbox:
//!    the inner shim refuses (exit 4, one `cgsplit-shim:` line), the game
//!    never runs, and the running `cgsplit watch` adopts nothing into the
//!    filtered `game/` (it reports the control's game as not adopted).
//!    Control: the same without `--network`: the game runs outside `game/`,
//!    with one warning (fail-open). And the way out: the same restricted
//!    launch with the slice directory passed as `sandbox-expose-fd`: the
//!    inner shim joins and proves the filter, the game's pid is in `game/`.
//! 3. **What such a subsandbox sees** (for the lead's notes): a probe run
//!    with the SANDBOX flag reports whether `games.slice` is visible, its
//!    `/proc/self/cgroup` and its cgroup mounts; then the same with the
//!    slice directory passed as `sandbox-expose-fd` and as `sandbox-expose`
//!    (the portal's two ways to share a path with a SANDBOX subsandbox).
//!    Found with flatpak 1.14.10: the SANDBOX subsandbox has no cgroup2
//!    mount at all (`/sys/fs` absent); `sandbox-expose-fd` of the slice
//!    directory makes it visible and writable; `sandbox-expose` cannot name
//!    it (its names are resolved under `~/.var/app/<id>/sandbox`: the
//!    absolute path is refused with `EXDEV`, `games.slice` is `ENOENT`).
//!
//! A SANDBOX subsandbox cannot write to the test's output directory (no
//! overrides), so the game reports on its stdout — the stand-in hands its
//! own stdin/stdout/stderr to `Spawn` — and waits on its stdin (a FIFO the
//! host closes once it has looked). The game's host pid is found by its
//! command line. Each `Spawn` must return within 2 s.
//!
//! Needs root, `cargo build --workspace --bins`, `cargo build-shim` and the
//! static stand-in (`scripts/setup` builds both).

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::process::Output;

use cgsplit_core::scope::GAME_LEAF;
use cgsplit_tests::fixtures::{
    SH_WAIT_FOR, copy_demo_steam, readable_by_all, sniper_runtime, vars,
};
use cgsplit_tests::flatpak::{App, Kit, PortalSteam};
use cgsplit_tests::testbed::{Testbed, sh};

const APP: &str = "com.valvesoftware.Steam";

/// Steam stand-in. `steam tool RUNTIME_DIR ENTRY_DIR GAME…` builds Steam's
/// command line for the tool in ENTRY_DIR that requires the runtime in
/// RUNTIME_DIR (interface doc: the required tool first, then the tool that
/// requires it, then the game; a v2 `commandline` is relative to its tool's
/// directory; `%verb%` is the verb). `steam sh LINE` runs a launch line.
/// Either way the line goes to `/bin/sh -c`, as Steam runs it, and is
/// printed first on stderr as `steam: LINE`.
const STEAM: &str = r#"#!/bin/sh
cmdline() {
  c=$(sed -n 's/^[[:space:]]*"commandline"[[:space:]]*"\(.*\)"[[:space:]]*$/\1/p' "$1/toolmanifest.vdf")
  [ -n "$c" ] || { echo "steam: no commandline in $1/toolmanifest.vdf" >&2; exit 125; }
  printf "'%s'%s" "$1" "$(printf %s "$c" | sed 's/%verb%/waitforexitandrun/g')"
}
case $1 in
  tool) rt=$(cmdline "$2") || exit; entry=$(cmdline "$3") || exit; shift 3; line="$rt $entry $*" ;;
  sh) line=$2 ;;
  *) echo "steam: tool|sh" >&2; exit 125 ;;
esac
echo "steam: $line" >&2
exec /bin/sh -c "$line"
"#;

/// The game: `game TAG SLICE`. Reports on stdout (a SANDBOX subsandbox
/// cannot write elsewhere), then waits for EOF on stdin (at most 10 s).
const GAME: &str = r#"#!/bin/sh
[ -d "$2" ] && vis=visible || vis=missing
echo "game tag=$1 pid=$$ cgroup=$(sed -n 's/^0:://p' /proc/self/cgroup) slice=$vis appid=$SteamAppId"
read -t 10 _ || true
"#;

/// The probe: `probe SLICE`. What a subsandbox sees of the cgroup tree.
const PROBE: &str = r#"#!/bin/sh
[ -d "$1" ] && vis=visible || vis=missing
echo "probe.slice=$vis"
echo "probe.cgroup=$(sed -n 's/^0:://p' /proc/self/cgroup)"
echo "probe.cgroup_mounts=$(grep -c ' - cgroup2 ' /proc/self/mountinfo)"
echo "probe.sys=$(ls /sys 2>&1 | tr '\n' ' ')"
[ -w "$1" ] && echo probe.writable=yes || echo probe.writable=no
"#;

/// Host-side shell functions of a testbed script. `launch TAG ARGS…` runs
/// `steam ARGS…` in a new Steam sandbox with stdin from a FIFO, waits for
/// the game's report or the end of the run, reports the game's host pid,
/// its host cgroup and whether `game/cgroup.procs` lists it, then closes
/// the FIFO and reports the exit status.
const HOST_FNS: &str = r#"
game_pid() { for d in /proc/[0-9]*; do
  { tr '\0' ' ' < $d/cmdline; } 2>/dev/null | grep -q "^/bin/sh /app/bin/game $1 " && echo ${d#/proc/}; done; }
reported_or_done() { grep -q "^game tag=$1 " "$out/$1.out" 2>/dev/null || ! kill -0 $2 2>/dev/null; }
launch() { tag=$1; shift
  rm -f "$out/$tag.fifo"; mkfifo -m 666 "$out/$tag.fifo"
  RUN "$@" <"$out/$tag.fifo" >"$out/$tag.out" 2>"$out/$tag.err" & r=$!
  exec 3>"$out/$tag.fifo"
  wait_for reported_or_done $tag $r || echo "$tag.timeout=1"
  p=$(game_pid $tag)
  echo "$tag.hostpid=$p"
  if [ -n "$p" ]; then
    echo "$tag.hostcg=$(sed -n 's/^0:://p' /proc/$p/cgroup)"
    echo "$tag.in_game=$(grep -cx "$p" "$SCOPE/game/cgroup.procs")"
    # HOLD=1: keep the game until the watcher has reported on it.
    [ -z "${HOLD:-}" ] || wait_for grep -q "adopting pid $p " $HOME/watch.log || echo "$tag.unseen=1"
  fi
  exec 3>&-; wait $r; echo "$tag.rc=$?"
  echo "$tag.game=$(sed -n "s/^game tag=$tag //p" "$out/$tag.out")"
  echo "$tag.spawn_ms=$(sed -n 's/.*spawn-ms=\([0-9]*\).*/\1/p' "$out/$tag.err" | head -n1)"
  echo "$tag.shim_lines=$(grep -c '^cgsplit-shim:' "$out/$tag.err")"
  echo "$tag.err=$(grep -v '^F: ' "$out/$tag.err" | tr '\n' '|')"
}
"#;

/// Builds the repo: busybox runtime with the static shim as
/// `/usr/bin/cgsplit-shim` and the stand-in as `/usr/bin/_v2-entry-point`;
/// the app with `steam`, `game` and `probe`.
fn setup(prefix: &str) -> Option<(Testbed, PortalSteam)> {
    PortalSteam::build_or_skip(
        prefix,
        "_v2-entry-point",
        App::new(APP)
            .script("steam", STEAM)
            .script("game", GAME)
            .script("probe", PROBE)
            .command("steam"),
    )
}

/// Install, mask the document portal, `before` (e.g. wait for netd), write
/// `config`, `between` (e.g. the installer), `cgsplit up` (grants
/// `games.slice` to the app), grant OUT. `RUN` runs the app's `steam` with
/// `SteamAppId=620`; `SLICE` and `SCOPE` are host paths.
fn preamble(s: &PortalSteam, config: &str, before: &str, between: &str) -> String {
    format!(
        r#"set -u
out={out}
{SH_WAIT_FOR}
{host_fns}
{install}
systemctl --user mask xdg-document-portal.service >/dev/null 2>&1 || exit 94
{before}
C="$CGSPLIT_BIN/cgsplit"
mkdir -p $HOME/.config/cgsplit && printf '{config}' > $HOME/.config/cgsplit/config.toml
{between}
"$C" up >$HOME/up.out 2>$HOME/up.err || {{ cat $HOME/up.err >&2; exit 91; }}
SLICE=/sys/fs/cgroup/user.slice/user-$TESTBED_UID.slice/user@$TESTBED_UID.service/games.slice
SCOPE=$SLICE/cgsplit-620.scope
echo "scope=${{SCOPE#/sys/fs/cgroup}}"
echo "policy=$(getfattr --absolute-names -n user.cgsplit.policy --only-values "$SCOPE" 2>/dev/null || echo none)"
flatpak --user override --filesystem="$out" {app} || exit 92
RUN() {{ {run} "$@"; }}
"#,
        out = sh(&s.out),
        host_fns = HOST_FNS,
        install = s.kit.install_script(),
        app = APP,
        run = Kit::run_cmd(APP, &["--env=SteamAppId=620"]),
    )
}

struct Report {
    v: HashMap<String, String>,
    diag: String,
}

impl Report {
    fn new(out: &Output, files: &[(&str, PathBuf)]) -> Self {
        let v = vars(out);
        let mut diag = format!(
            "status: {:?}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for (name, p) in files {
            diag.push_str(&format!(
                "\n--- {name}\n{}",
                fs::read_to_string(p).unwrap_or_default()
            ));
        }
        Report { v, diag }
    }

    fn get(&self, k: &str) -> &str {
        self.v
            .get(k)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no {k}=\n{}", self.diag))
    }

    /// A word `w=…` of the game's own report for `tag`.
    fn game(&self, tag: &str, w: &str) -> String {
        let line = self.get(&format!("{tag}.game"));
        line.split(' ')
            .find_map(|x| x.strip_prefix(w)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("{tag}: no {w}= in {line:?}\n{}", self.diag))
            .to_owned()
    }

    /// The launch went through the portal and `Spawn` returned within 2 s.
    fn spawned_in_time(&self, tag: &str) {
        let ms: u64 = self
            .get(&format!("{tag}.spawn_ms"))
            .parse()
            .unwrap_or_else(|_| panic!("{tag}: no Spawn\n{}", self.diag));
        assert!(ms < 2000, "{tag}: Spawn took {ms} ms\n{}", self.diag);
        eprintln!("{tag}: Spawn returned in {ms} ms");
    }

    /// The game ran (its report, a host pid, app id 620, exit 0); returns
    /// (its host cgroup, whether `game/cgroup.procs` lists its pid).
    fn ran(&self, tag: &str) -> (String, bool) {
        assert!(
            !self.v.contains_key(&format!("{tag}.timeout")),
            "{tag}: timed out\n{}",
            self.diag
        );
        assert_eq!(self.get(&format!("{tag}.rc")), "0", "{tag}\n{}", self.diag);
        assert!(
            !self.get(&format!("{tag}.hostpid")).is_empty(),
            "{tag}: no game pid on the host\n{}",
            self.diag
        );
        assert_eq!(self.game(tag, "appid"), "620", "{tag}\n{}", self.diag);
        (
            self.get(&format!("{tag}.hostcg")).to_owned(),
            self.get(&format!("{tag}.in_game")) == "1",
        )
    }
}

/// A cgroup path's last component is a portal subsandbox's scope.
fn is_app_scope(cg: &str) -> bool {
    let name = cg.rsplit('/').next().unwrap_or("");
    name.starts_with(&format!("app-flatpak-{APP}-")) && name.ends_with(".scope")
}

#[test]
fn runtime_tool_entry_runs_the_shim_innermost_in_the_portal_subsandbox() {
    let Some((bed, s)) = setup("cgsplit-portal-chain-tool-") else {
        return;
    };
    cgsplit_tests::bins::bin("cgsplit-install");
    let t = s.tmp.path();
    // The Steam tree the test uid copies into the app's Steam root: the
    // demo tree, sniper installed, its entry point the portal stand-in.
    let tree = t.join("steam-tree");
    copy_demo_steam(&tree);
    let runtime = sniper_runtime(&tree);
    fs::copy(&s.pv, runtime.join("_v2-entry-point")).unwrap();
    let shim_copy = t.join("cgsplit-shim");
    fs::copy(&s.shim, &shim_copy).unwrap();
    readable_by_all(&[&tree, &shim_copy]);

    let between = format!(
        r#"root="$HOME/.var/app/{app}/.local/share/Steam"
mkdir -p "$root" && cp -R {tree}/. "$root/" || exit 93
sed -i "s|@STEAM_ROOT@|$root|" "$root/steamapps/libraryfolders.vdf"
"$CGSPLIT_BIN/cgsplit-install" --game 620 --shim {shim} >"$out/install.out" 2>"$out/install.err" || exit 95
echo "entries=$(ls "$root/compatibilitytools.d" | tr '\n' ' ')"
echo "require=$(grep require_tool_appid "$root/compatibilitytools.d/cgsplit-sniper/toolmanifest.vdf" | tr -s ' \t"' ' ')"
echo "entry_cmdline=$(grep commandline "$root/compatibilitytools.d/cgsplit-sniper/toolmanifest.vdf" | tr -s ' \t"' ' ')"
"#,
        app = APP,
        tree = sh(&tree),
        shim = sh(&shim_copy),
    );
    let script = format!(
        r#"{pre}
launch T tool "$root/steamapps/common/SteamLinuxRuntime_sniper" "$root/compatibilitytools.d/cgsplit-sniper" /app/bin/game T $SLICE
"$C" down >/dev/null 2>&1
"#,
        pre = preamble(&s, "[games.620]\\n", "", &between),
    );
    let run = bed.system_bus().timeout_secs(90).run_sh(&script);
    let r = Report::new(
        &run,
        &[
            ("install.out", s.out.join("install.out")),
            ("install.err", s.out.join("install.err")),
            ("T.err", s.out.join("T.err")),
        ],
    );
    assert!(run.status.success(), "{}", r.diag);
    assert!(
        r.get("entries").split(' ').any(|e| e == "cgsplit-sniper"),
        "the installer wrote the sniper entry\n{}",
        r.diag
    );
    assert_eq!(r.get("require").trim(), "require_tool_appid 1628350");
    assert_eq!(
        r.get("entry_cmdline").trim(),
        "commandline /cgsplit-shim compat %verb% --"
    );
    let leaf = format!("{}/{GAME_LEAF}", r.get("scope"));
    let (cg, in_game) = r.ran("T");
    assert_eq!(cg, leaf, "T: the game's pid is in game/\n{}", r.diag);
    assert!(in_game, "T: game/cgroup.procs lists it\n{}", r.diag);
    assert_eq!(r.game("T", "cgroup"), leaf, "the game sees itself there");
    assert_eq!(r.game("T", "slice"), "visible", "{}", r.diag);
    r.spawned_in_time("T");
    // The line Steam ran: the runtime outermost, the entry's shim inside.
    let err = r.get("T.err");
    let line = err
        .split('|')
        .find_map(|l| l.strip_prefix("steam: "))
        .unwrap_or_else(|| panic!("{}", r.diag));
    let (outer, inner) = line
        .split_once("/SteamLinuxRuntime_sniper'/_v2-entry-point --verb=waitforexitandrun -- ")
        .unwrap_or_else(|| panic!("runtime not outermost: {line}"));
    assert!(
        !outer.contains("cgsplit-shim") && !outer.contains("compatibilitytools.d"),
        "{line}"
    );
    assert!(
        inner.starts_with("'") && inner.contains(&format!("/.var/app/{APP}/.local/share/Steam/compatibilitytools.d/cgsplit-sniper'/cgsplit-shim compat waitforexitandrun -- /app/bin/game T ")),
        "{line}"
    );
    assert_eq!(
        r.get("T.shim_lines"),
        "0",
        "the shim said nothing\n{}",
        r.diag
    );
}

#[test]
fn localhost_refuses_when_the_sandbox_flag_keeps_the_leaf_from_the_subsandbox() {
    let Some((bed, s)) = setup("cgsplit-portal-chain-sandbox-") else {
        return;
    };
    cgsplit_tests::bins::bin("cgsplit-netd");
    let ep = "_v2-entry-point --verb=waitforexitandrun --";
    let script = format!(
        r#"{pre}
"$C" watch >$HOME/watch.log 2>&1 & w=$!
wait_for grep -q watching $HOME/watch.log || exit 96
SB=FAKE_PV_SPAWN_FLAGS=4
# R: restricted launch options; the SANDBOX subsandbox cannot reach game/.
launch R sh "$SB cgsplit-shim --network localhost -- {ep} /app/bin/game R $SLICE"
# W (control): the same without --network: fail-open.
HOLD=1; launch W sh "$SB cgsplit-shim -- {ep} /app/bin/game W $SLICE"; HOLD=
# X: R with the slice directory handed to the subsandbox as sandbox-expose-fd.
launch X sh "$SB FAKE_PV_SANDBOX_EXPOSE_FD=$SLICE cgsplit-shim --network localhost -- {ep} /app/bin/game X $SLICE"
sleep 0.3
kill $w; wait $w; cp $HOME/watch.log $out/watch.log
# 3: what a SANDBOX subsandbox sees, then with the slice offered to it.
probe() {{ tag=$1; shift
  RUN sh "$* _v2-entry-point -- /app/bin/probe $SLICE" >"$out/$tag.out" 2>"$out/$tag.err" </dev/null
  echo "$tag.rc=$?"
  sed "s/^probe\./$tag./" "$out/$tag.out"
  echo "$tag.err=$(grep -v '^F: ' "$out/$tag.err" | tr '\n' '|')"
}}
probe P0 ""
probe P1 "$SB"
probe P2 "$SB FAKE_PV_SANDBOX_EXPOSE_FD=$SLICE"
probe P3 "$SB FAKE_PV_SANDBOX_EXPOSE=$SLICE"
probe P4 "$SB FAKE_PV_SANDBOX_EXPOSE=games.slice"
"$C" down >/dev/null 2>&1
"#,
        pre = preamble(
            &s,
            "[games.620]\\nnetwork = \"localhost\"\\n",
            "wait_for busctl --system status io.github.cgsplit.Netd1 >/dev/null 2>&1 || exit 95",
            "",
        ),
    );
    let run = bed.with_netd().timeout_secs(90).run_sh(&script);
    let r = Report::new(
        &run,
        &[
            ("watch.log", s.out.join("watch.log")),
            ("R.err", s.out.join("R.err")),
            ("W.err", s.out.join("W.err")),
        ],
    );
    assert!(run.status.success(), "{}", r.diag);
    assert_eq!(
        r.get("policy"),
        "localhost",
        "the filter is attached\n{}",
        r.diag
    );
    let leaf = format!("{}/{GAME_LEAF}", r.get("scope"));

    // R: refused by the inner shim, the game never ran.
    assert!(!r.v.contains_key("R.timeout"), "{}", r.diag);
    assert_eq!(r.get("R.rc"), "4", "R: the inner shim refuses\n{}", r.diag);
    assert_eq!(r.get("R.game"), "", "R: the game must not run\n{}", r.diag);
    assert_eq!(r.get("R.hostpid"), "", "R: no game process\n{}", r.diag);
    assert_eq!(r.get("R.shim_lines"), "1", "R: one line\n{}", r.diag);
    r.spawned_in_time("R");
    let err = r.get("R.err");
    let refusal = err
        .split('|')
        .find(|l| l.starts_with("cgsplit-shim:"))
        .unwrap();
    eprintln!("R: {refusal}");

    // W: the control runs, outside game/, in the portal's new scope, with
    // one warning.
    let (cg, in_game) = r.ran("W");
    assert!(is_app_scope(&cg), "W: {cg}\n{}", r.diag);
    assert_ne!(cg, leaf);
    assert!(!in_game, "{}", r.diag);
    assert_eq!(r.game("W", "slice"), "missing", "{}", r.diag);
    assert_eq!(r.get("W.shim_lines"), "1", "W: one warning\n{}", r.diag);
    assert!(
        r.get("W.err")
            .contains("running the game outside its scope"),
        "{}",
        r.diag
    );
    r.spawned_in_time("W");

    // The watcher adopted nothing into the filtered game/.
    let log = fs::read_to_string(s.out.join("watch.log")).unwrap_or_default();
    assert!(log.contains("watching"), "{}", r.diag);
    assert!(!log.contains("adopted pid"), "nothing adopted\n{}", r.diag);
    let wpid = r.get("W.hostpid");
    let refused = log
        .lines()
        .find(|l| l.contains(&format!("not adopting pid {wpid} (game) in ")))
        .unwrap_or_else(|| {
            panic!(
                "the watcher saw the control game and refused it\n{}",
                r.diag
            )
        });
    eprintln!("W: watcher: {refused}");

    // X: `sandbox-expose-fd` of the slice directory (an O_PATH fd the
    // portal validates and turns into `--filesystem=<path>`) reaches the
    // SANDBOX subsandbox: the inner shim joins and proves the filter there.
    let (cg, in_game) = r.ran("X");
    assert_eq!(cg, leaf, "X\n{}", r.diag);
    assert!(in_game, "X\n{}", r.diag);
    assert_eq!(r.game("X", "cgroup"), leaf, "joined before the game ran");
    assert_eq!(r.get("X.shim_lines"), "0", "X\n{}", r.diag);
    r.spawned_in_time("X");

    // 3: without the SANDBOX flag the grant reaches the subsandbox; with
    // it, not.
    assert_eq!(r.get("P0.rc"), "0", "{}", r.diag);
    assert_eq!(r.get("P0.slice"), "visible", "{}", r.diag);
    assert_eq!(r.get("P1.rc"), "0", "{}", r.diag);
    assert_eq!(r.get("P1.slice"), "missing", "{}", r.diag);
    assert_eq!(r.get("P1.cgroup_mounts"), "0", "{}", r.diag);
    // `sandbox-expose-fd` (an O_PATH fd of the slice directory) reaches it,
    // read-write (X used it to join).
    assert_eq!(r.get("P2.rc"), "0", "{}", r.diag);
    assert_eq!(r.get("P2.slice"), "visible", "{}", r.diag);
    assert_eq!(r.get("P2.writable"), "yes", "{}", r.diag);
    // `sandbox-expose` takes names under the caller's instance directory
    // (`~/.var/app/<id>/sandbox`), not host paths: the portal refuses the
    // slice's absolute path and finds no `games.slice` there.
    for p in ["P3", "P4"] {
        assert_eq!(r.get(&format!("{p}.rc")), "126", "{p}\n{}", r.diag);
        assert!(
            r.get(&format!("{p}.err"))
                .contains("fake-pressure-vessel: Spawn failed: "),
            "{p}\n{}",
            r.diag
        );
    }
    for p in ["P0", "P1", "P2", "P3", "P4"] {
        eprintln!(
            "{p}: rc={} slice={} writable={} cgroup_mounts={} sys=[{}] cgroup={} err={}",
            r.get(&format!("{p}.rc")),
            r.v.get(&format!("{p}.slice")).map_or("-", String::as_str),
            r.v.get(&format!("{p}.writable"))
                .map_or("-", String::as_str),
            r.v.get(&format!("{p}.cgroup_mounts"))
                .map_or("-", String::as_str),
            r.v.get(&format!("{p}.sys")).map_or("-", String::as_str),
            r.v.get(&format!("{p}.cgroup")).map_or("-", String::as_str),
            r.get(&format!("{p}.err")),
        );
    }
}
