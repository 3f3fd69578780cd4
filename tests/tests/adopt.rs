//! Host-side adoption on native Steam's path (issue 7, item 4): a launch
//! wrapper that puts the game in its own `systemd-run --user --scope` (what
//! `STEAM_LAUNCH_WRAPPER_SCOPE=1` / `PRESSURE_VESSEL_SYSTEMD_SCOPE=1` do) on
//! a real `systemd --user`, with `cgsplit watch` running.
//!
//! Shows, for **the game's pid**: a game of a configured app (`SteamAppId`
//! in its environment) started in a new scope is moved into its `game/`
//! leaf; a process of an app that is not configured, and one without an app
//! id, are left where they are. The flatpak portal's subsandbox and the
//! restricted-network refusal are in `portal.rs`.
//!
//! Needs root and `cargo build --workspace --bins`.

use std::collections::HashMap;

use cgsplit_tests::fixtures::{SH_WAIT_FOR, show};
use cgsplit_tests::testbed::Testbed;

/// `game.sh TAG WAIT`: records its pid and cgroup, waits up to WAIT × 50 ms
/// to find itself in a `game` leaf, records its cgroup again, then stays
/// until the host has looked.
const GAME: &str = r#"
tag=$1; wait=$2
cg() { sed -n 's/^0:://p' /proc/self/cgroup; }
echo "$$ $(cg)" > "$HOME/$tag.start"
i=0; while [ $i -lt $wait ]; do case "$(cg)" in */game) break;; esac; i=$((i+1)); sleep 0.05; done
echo "$(cg) $i" > "$HOME/$tag.end.tmp"; mv "$HOME/$tag.end.tmp" "$HOME/$tag.end"
j=0; until [ -e "$HOME/$tag.seen" ] || [ $j -ge 200 ]; do j=$((j+1)); sleep 0.05; done
"#;

#[test]
fn watcher_adopts_a_configured_game_from_a_systemd_run_scope_and_nothing_else() {
    let Some(bed) = Testbed::or_skip() else {
        return;
    };
    cgsplit_tests::bins::bin("cgsplit");
    let script = format!(
        r#"set -u
cat > $HOME/game.sh <<'EOF'
{GAME}
EOF
{SH_WAIT_FOR}
C="$CGSPLIT_BIN/cgsplit"
mkdir -p $HOME/.config/cgsplit && printf '[games.620]\n' > $HOME/.config/cgsplit/config.toml
"$C" up --no-flatpak >/dev/null 2>$HOME/up.err || {{ cat $HOME/up.err >&2; exit 91; }}
LEAF=/sys/fs/cgroup/user.slice/user-$TESTBED_UID.slice/user@$TESTBED_UID.service/games.slice/cgsplit-620.scope/game
echo "leaf=${{LEAF#/sys/fs/cgroup}}"
"$C" watch >$HOME/watch.log 2>&1 & w=$!
wait_for grep -q watching $HOME/watch.log || exit 92
# A launch wrapper's scope per game; env as Steam sets it.
SteamAppId=620 systemd-run --user --scope --quiet sh $HOME/game.sh N 60 & n=$!
SteamAppId=999 systemd-run --user --scope --quiet sh $HOME/game.sh X 20 & x=$!
env -u SteamAppId systemd-run --user --scope --quiet sh $HOME/game.sh Z 20 & z=$!
for t in N X Z; do
  wait_for test -e $HOME/$t.end || echo "$t.timeout=1"
  p=$(cut -d' ' -f1 $HOME/$t.start)
  echo "$t.pid=$p"
  echo "$t.start=$(cut -d' ' -f2 $HOME/$t.start)"
  echo "$t.end=$(cut -d' ' -f1 $HOME/$t.end)"
  echo "$t.polls=$(cut -d' ' -f2 $HOME/$t.end)"
  echo "$t.in_game=$(grep -cx "$p" $LEAF/cgroup.procs)"
  touch $HOME/$t.seen
done
wait $n $x $z
kill $w
echo "log_n=$(grep "adopted pid $(cut -d' ' -f1 $HOME/N.start) " $HOME/watch.log | tail -1)"
cat $HOME/watch.log >&2
"#
    );
    let out = bed.timeout_secs(60).run_sh(&script);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let diag = show(&out);
    assert!(out.status.success(), "{:?}\n{diag}", out.status);
    let v: HashMap<&str, &str> = stdout.lines().filter_map(|l| l.split_once('=')).collect();
    let get = |k: &str| *v.get(k).unwrap_or_else(|| panic!("no {k}=\n{diag}"));
    for t in ["N", "X", "Z"] {
        assert!(!v.contains_key(format!("{t}.timeout").as_str()), "{diag}");
    }
    // The game's pid is systemd-run's (it execs the command once its scope
    // exists): the watcher may adopt it before or after the exec, so the
    // game's own record may already say game/.
    for t in ["X", "Z"] {
        let start = get(&format!("{t}.start"));
        let name = start.rsplit('/').next().unwrap();
        assert!(
            name.starts_with("run-") && name.ends_with(".scope"),
            "{t} started in its own systemd-run scope: {start}\n{diag}"
        );
    }
    let leaf = get("leaf");
    // The configured game's pid: moved into game/.
    assert_eq!(get("N.end"), leaf, "{diag}");
    assert_eq!(get("N.in_game"), "1", "{diag}");
    // Adopted before systemd-run moved itself into its scope, or after.
    let line = get("log_n");
    assert!(
        line.ends_with("(SteamAppId=620) into game/") && line.contains("/app.slice/"),
        "{line}\n{diag}"
    );
    eprintln!(
        "adopted from a systemd-run scope: the game saw itself in game/ after {} polls of 50 ms",
        get("N.polls")
    );
    // Not configured / no app id: left alone.
    for t in ["X", "Z"] {
        assert_eq!(get(&format!("{t}.end")), get(&format!("{t}.start")), "{t}");
        assert_eq!(get(&format!("{t}.in_game")), "0", "{t}\n{diag}");
    }
    // Only N's processes: its pid (as systemd-run, possibly also before
    // systemd-run moved itself into its new scope, and again as the game)
    // and its children.
    let log = String::from_utf8_lossy(&out.stderr);
    for l in log.lines().filter(|l| l.contains("adopted pid")) {
        assert!(l.ends_with("(SteamAppId=620) into game/"), "{l}\n{diag}");
        assert!(
            !l.contains(&format!("pid {} ", get("X.pid")))
                && !l.contains(&format!("pid {} ", get("Z.pid"))),
            "{l}"
        );
    }
}

#[test]
fn watcher_refuses_to_adopt_a_localhost_game_from_a_systemd_run_scope() {
    let Some(bed) = Testbed::or_skip() else {
        return;
    };
    for b in ["cgsplit", "cgsplit-netd"] {
        cgsplit_tests::bins::bin(b);
    }
    let script = format!(
        r#"set -u
cat > $HOME/game.sh <<'EOF'
{GAME}
EOF
{SH_WAIT_FOR}
wait_for busctl --system status io.github.cgsplit.Netd1 >/dev/null 2>&1 || exit 95
C="$CGSPLIT_BIN/cgsplit"
mkdir -p $HOME/.config/cgsplit && printf '[games.620]\nnetwork = "localhost"\n' > $HOME/.config/cgsplit/config.toml
"$C" up --no-flatpak >/dev/null 2>$HOME/up.err || {{ cat $HOME/up.err >&2; exit 91; }}
LEAF=/sys/fs/cgroup/user.slice/user-$TESTBED_UID.slice/user@$TESTBED_UID.service/games.slice/cgsplit-620.scope/game
echo "leaf_exists=$(test -d $LEAF && echo yes)"
"$C" watch >$HOME/watch.log 2>&1 & w=$!
wait_for grep -q watching $HOME/watch.log || exit 92
SteamAppId=620 systemd-run --user --scope --quiet sh $HOME/game.sh N 30 & n=$!
wait_for test -e $HOME/N.end || echo "N.timeout=1"
p=$(cut -d' ' -f1 $HOME/N.start)
echo "N.pid=$p"
echo "N.start=$(cut -d' ' -f2 $HOME/N.start)"
echo "N.end=$(cut -d' ' -f1 $HOME/N.end)"
echo "N.in_game=$(grep -cx "$p" $LEAF/cgroup.procs)"
touch $HOME/N.seen
wait $n
kill $w
cat $HOME/watch.log >&2
"#
    );
    let out = bed.with_netd().timeout_secs(60).run_sh(&script);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let diag = format!("stdout:\n{stdout}\nstderr:\n{log}");
    assert!(out.status.success(), "{:?}\n{diag}", out.status);
    let v: HashMap<&str, &str> = stdout.lines().filter_map(|l| l.split_once('=')).collect();
    let get = |k: &str| *v.get(k).unwrap_or_else(|| panic!("no {k}=\n{diag}"));
    assert_eq!(get("leaf_exists"), "yes", "the helper attached the filter");
    assert!(!v.contains_key("N.timeout"), "{diag}");
    // Not adopted: the game's pid stayed in its systemd-run scope.
    assert_eq!(get("N.in_game"), "0", "{diag}");
    assert_eq!(get("N.end"), get("N.start"), "{diag}");
    let scope = get("N.start").rsplit('/').next().unwrap();
    assert!(
        scope.starts_with("run-") && scope.ends_with(".scope"),
        "{diag}"
    );
    assert!(!log.contains("adopted pid"), "{diag}");
    // Refused once for its scope, naming a pid there and the fix.
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("not adopting pid"))
        .collect();
    let here: Vec<&&str> = refusals
        .iter()
        .filter(|l| l.contains(&format!("{} (SteamAppId=620)", get("N.start"))))
        .collect();
    assert_eq!(
        here.len(),
        1,
        "one report for the scope, not one per child\n{diag}"
    );
    assert!(
        here[0].contains(&format!("not adopting pid {} ", get("N.pid")))
            && here[0].contains("cannot enforce the restricted network policy")
            && here[0].contains("cgsplit compatibility tool"),
        "{diag}"
    );
}
