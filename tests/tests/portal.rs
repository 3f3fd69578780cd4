//! Issue 7 against the real flatpak portal: inside the offline flatpak
//! sandbox ([`cgsplit_tests::flatpak`], a stand-in `com.valvesoftware.Steam`
//! with `--socket=session-bus`), the static pressure-vessel stand-in
//! `fake-pressure-vessel` relaunches the game through the real
//! `/usr/libexec/flatpak-portal` (`org.freedesktop.portal.Flatpak.Spawn`,
//! D-Bus activated as `flatpak-portal.service` by the testbed's real
//! `systemd --user`). `xdg-document-portal.service` is masked in the test
//! user manager: the portal's `flatpak run` asks for it, and without FUSE it
//! hangs for many seconds here.
//!
//! Shows, each time for **the game's pid** (found on the host by its command
//! line, and as the game itself reads `/proc/self/cgroup`):
//! - the subsandbox lands in a new `app-flatpak-com.valvesoftware.Steam-<n>.scope`,
//!   not Steam's own, outside `game/`, and the `games.slice` grant reaches it;
//! - the shim run inside the subsandbox (innermost, as the compatibility
//!   tool runs it) puts the game in `game/`;
//! - with no shim in the subsandbox, the watcher (`cgsplit watch`) adopts
//!   the game into `game/` (a `network = full` game);
//! - with `network = localhost` (real `cgsplit-netd` attaching the filter),
//!   the watcher refuses to adopt and says so; the game stays outside;
//! - with the portal masked, the stand-in says so and runs the game itself,
//!   and the shim in front of it (launch options) puts it in `game/`;
//! - every `Spawn` returns within 2 s.
//!
//! Needs root, `cargo build --workspace --bins`, `cargo build-shim` and the
//! static stand-in (`scripts/setup` builds both).

use std::fs;
use std::path::Path;
use std::process::Output;

use cgsplit_tests::fixtures::{SH_WAIT_FOR, vars};
use cgsplit_tests::flatpak::{App, Kit, PortalSteam};
use cgsplit_tests::testbed::{Testbed, sh};

const APP: &str = "com.valvesoftware.Steam";

/// The game: `game OUT TAG SLICE [WAIT]`. Records its pid, its cgroup at
/// start, whether `games.slice` is visible; then, if WAIT is set, waits up
/// to WAIT × 50 ms for its cgroup to become a `game` leaf (adoption); records
/// its cgroup again and stays until the host has looked (`TAG.seen`).
const GAME: &str = r#"#!/bin/sh
out=$1; tag=$2; slice=$3; wait=${4:-0}
cg() { sed -n 's/^0:://p' /proc/self/cgroup; }
[ -d "$slice" ] && vis=visible || vis=missing
echo "pid=$$ start=$(cg) slice=$vis appid=$SteamAppId" > "$out/$tag.start"
i=0; while [ $i -lt $wait ]; do case "$(cg)" in */game) break;; esac; i=$((i+1)); sleep 0.05; done
echo "end=$(cg) polls=$i" > "$out/$tag.end.tmp"; mv "$out/$tag.end.tmp" "$out/$tag.end"
j=0; until [ -e "$out/$tag.seen" ] || [ $j -ge 200 ]; do j=$((j+1)); sleep 0.05; done
"#;

/// Shell functions for the host side of a testbed script.
const HOST_FNS: &str = r#"
# The host pid of the game run with TAG: its command line starts with the
# game script (the stand-in and flatpak's own processes carry it later).
game_pid() { for d in /proc/[0-9]*; do
  { tr '\0' ' ' < $d/cmdline; } 2>/dev/null | grep -q "^/bin/sh /app/bin/game $out $1 " && echo ${d#/proc/}; done; }
# Runs one launch (tag $1, then the command inside the Steam sandbox) and
# reports the game's pid, where the host sees it and what the game saw.
launch() { tag=$1; shift
  RUN "$@" >"$out/$tag.pv.out" 2>"$out/$tag.pv.err" & pv=$!
  wait_for test -e "$out/$tag.end" || echo "$tag.timeout=1"
  p=$(game_pid $tag)
  echo "$tag.hostpid=$p"
  echo "$tag.hostcg=$(sed -n 's/^0:://p' /proc/$p/cgroup)"
  echo "$tag.in_game=$(grep -cx "$p" "$SCOPE/game/cgroup.procs")"
  # The sandbox the stand-in runs in (Steam's), for comparison.
  q=$(for d in /proc/[0-9]*; do { tr '\0' ' ' < $d/cmdline; } 2>/dev/null | grep -q "^fake-pressure-vessel .* $out $tag " && echo ${d#/proc/}; done)
  echo "$tag.steam_scope=$(sed -n 's/^0:://p' /proc/$q/cgroup 2>/dev/null)"
  touch "$out/$tag.seen"; wait $pv; echo "$tag.rc=$?"
  echo "$tag.$(cat "$out/$tag.start")"; echo "$tag.$(cat "$out/$tag.end")"
  echo "$tag.spawn_ms=$(sed -n 's/.*spawn-ms=\([0-9]*\).*/\1/p' "$out/$tag.pv.err")"
  echo "$tag.pv_err=$(grep -v spawn-ms "$out/$tag.pv.err" | grep -v '^F: ' | tr '\n' '|')"
}
"#;

/// The Steam stand-in with `steam` (runs its arguments) and `game`; the
/// pressure-vessel stand-in as `/usr/bin/fake-pressure-vessel`.
fn setup() -> Option<(Testbed, PortalSteam)> {
    PortalSteam::build_or_skip(
        "cgsplit-portal-",
        "fake-pressure-vessel",
        App::new(APP)
            .script("steam", "#!/bin/sh\nexec \"$@\"\n")
            .script("game", GAME)
            .command("steam"),
    )
}

/// The script's preamble: install, mask the document portal, write
/// `config`, `cgsplit up` (grants `games.slice`), grant OUT; `RUN` runs a
/// command in a new Steam sandbox with `SteamAppId=620`.
fn preamble(s: &PortalSteam, config: &str, before_up: &str) -> String {
    format!(
        r#"set -u
out={out}
{SH_WAIT_FOR}
{host_fns}
{install}
systemctl --user mask xdg-document-portal.service >/dev/null 2>&1 || exit 94
{before_up}
C="$CGSPLIT_BIN/cgsplit"
mkdir -p $HOME/.config/cgsplit && printf '{config}' > $HOME/.config/cgsplit/config.toml
"$C" up >$HOME/up.out 2>$HOME/up.err || {{ cat $HOME/up.err >&2; exit 91; }}
SLICE=/sys/fs/cgroup/user.slice/user-$TESTBED_UID.slice/user@$TESTBED_UID.service/games.slice
SCOPE=$SLICE/cgsplit-620.scope
echo "scope=${{SCOPE#/sys/fs/cgroup}}"
flatpak --user override --filesystem="$out" {app} || exit 92
RUN() {{ {run} "$@"; }}
"#,
        out = sh(&s.out),
        install = s.kit.install_script(),
        app = APP,
        run = Kit::run_cmd(APP, &["--env=SteamAppId=620"]),
        host_fns = HOST_FNS,
    )
}

struct Report {
    v: std::collections::HashMap<String, String>,
    diag: String,
}

impl Report {
    fn new(out: &Output, files: &[(&str, &Path)]) -> Self {
        let mut diag = format!(
            "stdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for (name, p) in files {
            diag.push_str(&format!(
                "\n--- {name}\n{}",
                fs::read_to_string(p).unwrap_or_default()
            ));
        }
        Report { v: vars(out), diag }
    }

    fn get(&self, k: &str) -> &str {
        self.v
            .get(k)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no {k}=\n{}", self.diag))
    }

    /// The game's own record `TAG.start` holds several `k=v` words.
    fn word(&self, key: &str, w: &str) -> String {
        let line = self.get(key);
        // `TAG.pid=… start=… …`: the value of key is the first word.
        let full = format!("{}={line}", key.rsplit('.').next().unwrap());
        full.split(' ')
            .find_map(|x| x.strip_prefix(w)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {w}= in {full}\n{}", self.diag))
            .to_owned()
    }

    /// Asserts the launch `tag` ran, its Spawn (if any) took < 2 s, and
    /// returns (host cgroup of the game's pid, whether it is in game/).
    fn launch(&self, tag: &str) -> (String, bool) {
        assert!(
            !self.v.contains_key(&format!("{tag}.timeout")),
            "{tag}: the game did not report\n{}",
            self.diag
        );
        assert_eq!(self.get(&format!("{tag}.rc")), "0", "{tag}\n{}", self.diag);
        assert!(
            !self.get(&format!("{tag}.hostpid")).is_empty(),
            "{tag}: no game pid on the host\n{}",
            self.diag
        );
        assert_eq!(
            self.word(&format!("{tag}.pid"), "appid"),
            "620",
            "{}",
            self.diag
        );
        let cg = self.get(&format!("{tag}.hostcg")).to_owned();
        (cg, self.get(&format!("{tag}.in_game")) == "1")
    }

    fn spawn_ms(&self, tag: &str) -> u64 {
        let ms = self.get(&format!("{tag}.spawn_ms"));
        ms.parse()
            .unwrap_or_else(|_| panic!("{tag}: no Spawn timing {ms:?}\n{}", self.diag))
    }
}

fn is_subsandbox(cg: &str, steam_scope: &str) -> bool {
    let name = cg.rsplit('/').next().unwrap_or("");
    name.starts_with(&format!("app-flatpak-{APP}-"))
        && name.ends_with(".scope")
        && cg != steam_scope
}

#[test]
fn portal_subsandbox_game_reaches_game_leaf_through_the_shim_or_adoption() {
    let Some((bed, s)) = setup() else { return };
    let script = format!(
        r#"{pre}
# A: the game alone through the portal, no watcher: outside game/.
launch A fake-pressure-vessel -- /app/bin/game $out A $SLICE
# B: the shim inside the subsandbox (innermost): the game joins game/.
launch B fake-pressure-vessel -- cgsplit-shim -- /app/bin/game $out B $SLICE
# C: the watcher adopts a game that no shim placed.
"$C" watch >$HOME/watch.log 2>&1 & w=$!
sleep 0.3
launch C fake-pressure-vessel -- /app/bin/game $out C $SLICE 60
kill $w; cp $HOME/watch.log $out/watch.log
# D: the portal is not there: the stand-in says so and runs the game
# itself; the shim in front of it (launch options) places the game.
systemctl --user mask flatpak-portal.service >/dev/null 2>&1
systemctl --user stop flatpak-portal.service >/dev/null 2>&1
launch D cgsplit-shim -- fake-pressure-vessel -- /app/bin/game $out D $SLICE
"#,
        pre = preamble(&s, "[games.620]\\n", ""),
    );
    let out = bed.system_bus().timeout_secs(90).run_sh(&script);
    let watch_log = s.out.join("watch.log");
    let r = Report::new(&out, &[("watch.log", &watch_log)]);
    assert!(out.status.success(), "{}", r.diag);
    let leaf = format!("{}/game", r.get("scope"));
    let steam_scope = r.get("A.steam_scope").to_owned();
    assert!(
        steam_scope.ends_with(".scope") && steam_scope.contains("/app-flatpak-"),
        "Steam's sandbox scope: {steam_scope}\n{}",
        r.diag
    );

    // A: a new app-flatpak scope, outside game/; the grant reached it.
    let (cg, in_game) = r.launch("A");
    assert!(is_subsandbox(&cg, &steam_scope), "A: {cg}\n{}", r.diag);
    assert!(!in_game, "{}", r.diag);
    assert_eq!(
        r.word("A.pid", "start"),
        cg,
        "the game sees the same cgroup"
    );
    assert_eq!(
        r.word("A.pid", "slice"),
        "visible",
        "the portal's flatpak run reloads the games.slice override\n{}",
        r.diag
    );

    // B: the shim inside the subsandbox put the game's pid in game/.
    let (cg, in_game) = r.launch("B");
    assert_eq!(cg, leaf, "B\n{}", r.diag);
    assert!(
        in_game,
        "B: the game's host pid is in game/cgroup.procs\n{}",
        r.diag
    );
    assert_eq!(r.word("B.pid", "start"), leaf, "joined before the game ran");

    // C: adopted by the watcher.
    let (cg, in_game) = r.launch("C");
    assert_eq!(cg, leaf, "C\n{}", r.diag);
    assert!(in_game, "{}", r.diag);
    assert_eq!(r.word("C.end", "end"), leaf, "the game sees itself moved");
    let log = fs::read_to_string(&watch_log).unwrap_or_default();
    let pid = r.get("C.hostpid");
    assert!(
        log.lines()
            .any(|l| l.contains(&format!("adopted pid {pid} (game) in "))
                && l.contains("/app-flatpak-com.valvesoftware.Steam-")
                && l.contains("(SteamAppId=620) into game/")),
        "the watcher logged the adoption of pid {pid}\n{}",
        r.diag
    );
    eprintln!(
        "adoption: the game saw itself in game/ after {} polls of 50 ms",
        r.word("C.end", "polls")
    );

    // D: no portal; the game still starts and the outer shim placed it.
    let (cg, in_game) = r.launch("D");
    assert_eq!(cg, leaf, "D\n{}", r.diag);
    assert!(in_game, "{}", r.diag);
    let err = r.get("D.pv_err");
    assert!(
        err.contains(
            "the flatpak portal org.freedesktop.portal.Flatpak is not reachable on the session bus"
        ) && err.contains("running /app/bin/game in this sandbox instead"),
        "D: {err}\n{}",
        r.diag
    );

    for t in ["A", "B", "C"] {
        let ms = r.spawn_ms(t);
        assert!(ms < 2000, "{t}: Spawn took {ms} ms\n{}", r.diag);
        eprintln!("{t}: Spawn returned in {ms} ms");
    }
}

#[test]
fn localhost_game_that_only_adoption_could_place_is_refused() {
    let Some((bed, s)) = setup() else { return };
    cgsplit_tests::bins::bin("cgsplit-netd");
    let script = format!(
        r#"{pre}
"$C" watch >$HOME/watch.log 2>&1 & w=$!
wait_for grep -q watching $HOME/watch.log
echo "policy=$(getfattr --absolute-names -n user.cgsplit.policy --only-values "$SCOPE")"
# L: the game alone through the portal: the watcher must not adopt it.
launch L fake-pressure-vessel -- /app/bin/game $out L $SLICE 30
kill $w; cp $HOME/watch.log $out/watch.log
# S: the shim inside the subsandbox (innermost) places the game itself.
launch S fake-pressure-vessel -- cgsplit-shim -- /app/bin/game $out S $SLICE
"#,
        pre = preamble(
            &s,
            "[games.620]\\nnetwork = \"localhost\"\\n",
            "wait_for busctl --system status io.github.cgsplit.Netd1 >/dev/null 2>&1 || exit 95",
        ),
    );
    let out = bed.with_netd().timeout_secs(90).run_sh(&script);
    let watch_log = s.out.join("watch.log");
    let r = Report::new(&out, &[("watch.log", &watch_log)]);
    assert!(out.status.success(), "{:?}\n{}", out.status, r.diag);
    assert_eq!(r.get("policy"), "localhost", "{}", r.diag);
    let steam_scope = r.get("L.steam_scope").to_owned();
    let (cg, in_game) = r.launch("L");
    assert!(is_subsandbox(&cg, &steam_scope), "L: {cg}\n{}", r.diag);
    assert!(!in_game, "not adopted\n{}", r.diag);
    assert_eq!(r.word("L.end", "end"), cg, "still outside after 1.5 s");
    let pid = r.get("L.hostpid");
    let log = fs::read_to_string(&watch_log).unwrap_or_default();
    let line = log
        .lines()
        .find(|l| l.contains(&format!("not adopting pid {pid} (game) in ")))
        .unwrap_or_else(|| panic!("no refusal for pid {pid}\n{}", r.diag));
    assert!(
        line.contains("cannot enforce the restricted network policy")
            && line.contains("cgsplit compatibility tool"),
        "{line}"
    );
    assert_eq!(
        log.matches(&format!("{cg} (SteamAppId=620)")).count(),
        1,
        "one report for the subsandbox, not one per child process\n{}",
        r.diag
    );
    assert!(!log.contains("adopted pid"), "nothing adopted\n{}", r.diag);
    assert!(r.spawn_ms("L") < 2000, "{}", r.diag);

    // S: with the shim innermost, the game runs in the filtered game/.
    let leaf = format!("{}/game", r.get("scope"));
    let (cg, in_game) = r.launch("S");
    assert_eq!(cg, leaf, "S\n{}", r.diag);
    assert!(in_game, "{}", r.diag);
    assert_eq!(r.word("S.pid", "start"), leaf, "joined before the game ran");
    assert!(r.spawn_ms("S") < 2000, "{}", r.diag);
}
