//! `cgsplit up/down/watch/status/run/config check` against a real, private
//! `systemd --user` run as an unprivileged uid (one testbed run per test).
//!
//! Needs root and the workspace's binaries built first:
//! `cargo build --workspace --bins && cargo test -p cgsplit-tests --test companion_lifecycle`.
//! Skips on hosts that cannot run the testbed, unless `CI` is set.

use std::collections::HashMap;
use std::process::Output;

use cgsplit_core::AppId;
use cgsplit_core::scope;
use cgsplit_tests::bins::bin;
use cgsplit_tests::fixtures::{SH_WAIT_FOR_COUNT, get, show, vars};
use cgsplit_tests::testbed::Testbed;

/// Shell helpers shared by every script: `$CGSPLIT`, `$CFG` (the default
/// config path), `keepers`, `procs`, `scope_dir APP`; [`run_in`] adds
/// `wait_for CMD…` ([`SH_WAIT_FOR_COUNT`]).
const PRELUDE: &str = r#"
CGSPLIT="$CGSPLIT_BIN/cgsplit"
CFG="$HOME/.config/cgsplit/config.toml"
mkdir -p "$HOME/.config/cgsplit"
keepers() {
    for p in /proc/[0-9]*; do
        [ "$(tr '\0' ' ' < "$p/cmdline" 2>/dev/null)" = "cgsplit-keeper keeper " ] && printf '%s ' "${p#/proc/}"
    done
}
procs() { tr '\n' ' ' < "$1/cgroup.procs" 2>/dev/null || echo MISSING; }
scope_dir() { echo "/sys/fs/cgroup/user.slice/user-$TESTBED_UID.slice/user@$TESTBED_UID.service/games.slice/cgsplit-$1.scope"; }
echo "uid=$TESTBED_UID"
echo "home=$HOME"
"#;

fn tb() -> Option<Testbed> {
    bin("cgsplit");
    Testbed::or_skip()
}

fn run_in(tb: Testbed, script: &str) -> Output {
    let out = tb.run_sh(&format!("{PRELUDE}{SH_WAIT_FOR_COUNT}\n{script}"));
    assert_ne!(
        out.status.code(),
        Some(125),
        "the testbed itself failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn run(script: &str) -> Option<Output> {
    Some(run_in(tb()?, script))
}

fn app(n: u32) -> AppId {
    AppId::new(n).unwrap()
}

#[test]
fn up_is_idempotent_sets_limits_and_down_releases_everything() {
    let Some(out) = run(r#"
        cat > "$CFG" <<'EOF'
[defaults]
memory_high = "6G"
cpu_weight = 200

[games.620]
memory_max = "8G"
tasks_max = 512

[games.70]
memory_max = "50%"
EOF
        "$CGSPLIT" up --no-flatpak >$HOME/up1 2>$HOME/up1.err; echo "up1=$?"
        k1=$(keepers)
        "$CGSPLIT" up --no-flatpak >$HOME/up2 2>$HOME/up2.err; echo "up2=$?"
        echo "keepers1=$k1"
        echo "keepers2=$(keepers)"
        echo "up2_620=$(grep cgsplit-620.scope $HOME/up2)"
        echo "up2_err=$(cat $HOME/up2.err)"
        for p in MemoryHigh MemoryMax CPUWeight TasksMax Delegate Slice ActiveState; do
            echo "620_$p=$(systemctl --user show -P $p cgsplit-620.scope)"
        done
        echo "70_MemoryMax=$(systemctl --user show -P MemoryMax cgsplit-70.scope)"
        echo "anchor=$(systemctl --user is-active cgsplit-anchor.scope)"
        # The same figures over the D-Bus API (org.freedesktop.systemd1.Scope).
        U=$(busctl --user call org.freedesktop.systemd1 /org/freedesktop/systemd1 \
            org.freedesktop.systemd1.Manager GetUnit s cgsplit-620.scope | cut -d'"' -f2)
        echo "dbus_MemoryMax=$(busctl --user get-property org.freedesktop.systemd1 $U org.freedesktop.systemd1.Scope MemoryMax)"
        echo "dbus_CPUWeight=$(busctl --user get-property org.freedesktop.systemd1 $U org.freedesktop.systemd1.Scope CPUWeight)"
        S=$(scope_dir 620)
        [ -d "$S/game" ] && echo "game_leaf=yes"
        echo "keeper_leaf=$(procs $S/keeper)"
        echo "mem_total_kb=$(awk '/MemTotal/ {print $2}' /proc/meminfo)"

        # Runtime change: new limits go out with SetUnitProperties.
        sed -i 's/cpu_weight = 200/cpu_weight = 300/; s/tasks_max = 512/tasks_max = 1024/' "$CFG"
        "$CGSPLIT" up --no-flatpak >$HOME/up3 2>&1; echo "up3=$?"
        echo "up3_620=$(grep cgsplit-620.scope $HOME/up3)"
        echo "after_CPUWeight=$(systemctl --user show -P CPUWeight cgsplit-620.scope)"
        echo "after_TasksMax=$(systemctl --user show -P TasksMax cgsplit-620.scope)"
        echo "keepers3=$(keepers)"

        "$CGSPLIT" down >$HOME/down1 2>&1; echo "down1=$?"
        "$CGSPLIT" down >$HOME/down2 2>&1; echo "down2=$?"
        echo "down1_lines=$(sort $HOME/down1 | tr '\n' ' ')"
        echo "down2_out=$(cat $HOME/down2)"
        echo "left=$(systemctl --user list-units --all --no-legend 'cgsplit-*' | wc -l)"
        echo "keepers4=$(keepers)"
        [ -e "$S" ] && echo "scope_dir=present" || echo "scope_dir=gone"
    "#) else {
        return;
    };
    let v = vars(&out);
    let uid: u32 = get(&v, "uid", &out).parse().unwrap();
    assert_eq!(get(&v, "up1", &out), "0", "{}", show(&out));
    assert_eq!(get(&v, "up2", &out), "0", "{}", show(&out));
    // anchor + two games, and the second `up` adds none.
    let k1 = get(&v, "keepers1", &out);
    assert_eq!(k1.split_whitespace().count(), 3, "{}", show(&out));
    assert_eq!(get(&v, "keepers2", &out), k1);
    assert_eq!(
        get(&v, "up2_620", &out),
        format!(
            "cgsplit-620.scope: up to date: {}",
            scope::scope_cgroup(uid, app(620))
        )
    );
    assert_eq!(get(&v, "up2_err", &out), "");
    assert_eq!(get(&v, "620_MemoryHigh", &out), (6u64 << 30).to_string());
    assert_eq!(get(&v, "620_MemoryMax", &out), (8u64 << 30).to_string());
    assert_eq!(get(&v, "620_CPUWeight", &out), "200");
    assert_eq!(get(&v, "620_TasksMax", &out), "512");
    assert_eq!(get(&v, "620_Delegate", &out), "yes");
    assert_eq!(get(&v, "620_Slice", &out), "games.slice");
    assert_eq!(get(&v, "620_ActiveState", &out), "active");
    // 50% of physical memory, as systemd computes it (MemTotal is close but
    // not identical to what systemd's physical_memory() sees): within 1%.
    let half: f64 = get(&v, "70_MemoryMax", &out).parse().unwrap();
    let total = get(&v, "mem_total_kb", &out).parse::<f64>().unwrap() * 1024.0;
    assert!(
        (half / total - 0.5).abs() < 0.01,
        "MemoryMax of 50% = {half}, MemTotal = {total}"
    );
    assert_eq!(get(&v, "anchor", &out), "active");
    assert_eq!(get(&v, "dbus_MemoryMax", &out), format!("t {}", 8u64 << 30));
    assert_eq!(get(&v, "dbus_CPUWeight", &out), "t 200");
    assert_eq!(get(&v, "game_leaf", &out), "yes");
    assert_eq!(get(&v, "keeper_leaf", &out).split_whitespace().count(), 1);

    assert_eq!(get(&v, "up3", &out), "0", "{}", show(&out));
    assert_eq!(
        get(&v, "up3_620", &out),
        format!(
            "cgsplit-620.scope: limits changed (CPUWeight, TasksMax): {}",
            scope::scope_cgroup(uid, app(620))
        )
    );
    assert_eq!(get(&v, "after_CPUWeight", &out), "300");
    assert_eq!(get(&v, "after_TasksMax", &out), "1024");
    assert_eq!(
        get(&v, "keepers3", &out),
        k1,
        "a runtime change keeps the scopes"
    );

    assert_eq!(get(&v, "down1", &out), "0", "{}", show(&out));
    assert_eq!(get(&v, "down2", &out), "0", "{}", show(&out));
    assert_eq!(
        get(&v, "down1_lines", &out),
        "cgsplit-620.scope: stopped cgsplit-70.scope: stopped cgsplit-anchor.scope: stopped"
    );
    assert_eq!(get(&v, "down2_out", &out), "");
    assert_eq!(get(&v, "left", &out), "0");
    assert_eq!(get(&v, "keepers4", &out).trim(), "");
    assert_eq!(get(&v, "scope_dir", &out), "gone");
}

#[test]
fn watcher_recreates_a_scope_whose_keeper_was_killed_and_applies_config_changes() {
    let Some(out) = run(r#"
        printf '[games.620]\ncpu_weight = 50\n' > "$CFG"
        "$CGSPLIT" up --no-flatpak >/dev/null 2>&1; echo "up=$?"
        "$CGSPLIT" watch 2>$HOME/watch.log & W=$!
        S=$(scope_dir 620)
        K1=$(cat $S/keeper/cgroup.procs)
        # Let the watcher subscribe before the scope goes away.
        wait_for grep -q watching $HOME/watch.log >/dev/null
        kill -9 $K1
        recreated() { K2=$(cat $S/keeper/cgroup.procs 2>/dev/null); [ -n "$K2" ] && [ "$K2" != "$K1" ] && [ -d $S/game ]; }
        echo "tries=$(wait_for recreated)"
        K2=$(cat $S/keeper/cgroup.procs)
        echo "k1=$K1"
        echo "k2=$K2"
        echo "state=$(systemctl --user is-active cgsplit-620.scope)"
        echo "weight=$(systemctl --user show -P CPUWeight cgsplit-620.scope)"
        # The second keeper is the watcher's own child: once it is killed and
        # replaced, the watcher has reaped it (no zombie left in /proc).
        K1=$K2; kill -9 $K2
        echo "tries3=$(wait_for recreated)"
        echo "zombie=$(test -e /proc/$K1 && cat /proc/$K1/stat | cut -d' ' -f3 || echo gone)"
        printf '[games.620]\ncpu_weight = 70\n' > "$CFG"
        changed() { [ "$(systemctl --user show -P CPUWeight cgsplit-620.scope)" = 70 ]; }
        echo "tries2=$(wait_for changed)"
        echo "weight2=$(systemctl --user show -P CPUWeight cgsplit-620.scope)"
        # `down` pauses the watcher: the scope stays gone.
        "$CGSPLIT" down >/dev/null 2>&1
        sleep 0.5
        echo "after_down=$(systemctl --user is-active cgsplit-620.scope)"
        kill $W
        echo "log=$(tr '\n' '|' < $HOME/watch.log)"
    "#) else {
        return;
    };
    let v = vars(&out);
    assert_eq!(get(&v, "up", &out), "0", "{}", show(&out));
    let tries: u32 = get(&v, "tries", &out).parse().unwrap();
    assert!(tries < 200, "not recreated within 10 s\n{}", show(&out));
    assert_ne!(get(&v, "k1", &out), get(&v, "k2", &out));
    assert_eq!(get(&v, "state", &out), "active");
    assert_eq!(get(&v, "weight", &out), "50", "recreated with its limits");
    assert!(
        get(&v, "tries3", &out).parse::<u32>().unwrap() < 200,
        "{}",
        show(&out)
    );
    assert_eq!(get(&v, "zombie", &out), "gone", "{}", show(&out));
    let tries2: u32 = get(&v, "tries2", &out).parse().unwrap();
    assert!(tries2 < 200, "config change not applied\n{}", show(&out));
    assert_eq!(get(&v, "weight2", &out), "70");
    assert_eq!(get(&v, "after_down", &out), "inactive", "{}", show(&out));
    let log = get(&v, "log", &out);
    assert!(log.contains("cgsplit-620.scope: recreated at"), "{log}");
    assert!(log.contains("limits changed: CPUWeight"), "{log}");
}

#[test]
fn up_resets_a_failed_scope_name() {
    let Some(out) = run(r#"
        printf '[games.620]\n' > "$CFG"
        systemd-run --user --quiet --scope --unit=cgsplit-620.scope -p RuntimeMaxSec=200ms sleep 30 2>/dev/null
        # The unit may still be `deactivating` for a moment before `failed`.
        for i in $(seq 100); do
            [ "$(systemctl --user is-active cgsplit-620.scope)" = deactivating ] || break
            sleep 0.05
        done
        echo "before=$(systemctl --user is-active cgsplit-620.scope)"
        "$CGSPLIT" up --no-flatpak >$HOME/out 2>&1; echo "rc=$?"
        echo "out=$(grep 620 $HOME/out)"
        echo "after=$(systemctl --user is-active cgsplit-620.scope)"
    "#) else {
        return;
    };
    let v = vars(&out);
    assert_eq!(get(&v, "before", &out), "failed");
    assert_eq!(get(&v, "rc", &out), "0", "{}", show(&out));
    assert!(
        get(&v, "out", &out).starts_with("cgsplit-620.scope: was failed; reset and created: "),
        "{}",
        show(&out)
    );
    assert_eq!(get(&v, "after", &out), "active");
}

#[test]
fn run_keeps_the_exit_status_forwards_signals_and_tears_down() {
    let Some(out) = run(r#"
        printf '[games.620]\n' > "$CFG"
        "$CGSPLIT" run --no-flatpak -- sh -c 'echo "cg=$(grep ^0:: /proc/self/cgroup)"; exit 7' >$HOME/out 2>$HOME/err
        echo "rc=$?"
        echo "inner=$(grep ^cg= $HOME/out | cut -d= -f2-)"
        echo "game_during=$(grep cgsplit-620 $HOME/out)"
        echo "after_game=$(systemctl --user is-active cgsplit-620.scope)"
        echo "after_steam=$(systemctl --user list-units --all --no-legend 'app-cgsplit-steam-*' | wc -l)"
        echo "after_anchor=$(systemctl --user is-active cgsplit-anchor.scope)"
        # SIGTERM to cgsplit reaches the command once; its status is kept.
        "$CGSPLIT" run --no-flatpak -- sh -c 'trap "echo got-term >>$HOME/term; exit 9" TERM; echo ready >$HOME/ready; sleep 30 & wait' >/dev/null 2>&1 &
        R=$!
        wait_for test -e $HOME/ready >/dev/null
        kill -TERM $R; wait $R; echo "rc2=$?"
        echo "term_count=$(grep -c got-term $HOME/term)"
        # A command that does not exist: 127, like a shell.
        "$CGSPLIT" run --no-flatpak -- /nonexistent/steam >/dev/null 2>$HOME/err3; echo "rc3=$?"
        echo "err3=$(grep error: $HOME/err3)"
        # A scope that was there before `run` stays after it.
        "$CGSPLIT" up --no-flatpak >/dev/null 2>&1
        "$CGSPLIT" run --no-flatpak -- true >/dev/null 2>&1; echo "rc4=$?"
        echo "kept=$(systemctl --user is-active cgsplit-620.scope)"
    "#) else {
        return;
    };
    let v = vars(&out);
    let uid: u32 = get(&v, "uid", &out).parse().unwrap();
    assert_eq!(get(&v, "rc", &out), "7", "{}", show(&out));
    let inner = get(&v, "inner", &out);
    let prefix =
        format!("0::/user.slice/user-{uid}.slice/user@{uid}.service/app.slice/app-cgsplit-steam-");
    assert!(
        inner.starts_with(&prefix) && inner.ends_with(".scope"),
        "{inner}"
    );
    assert!(
        get(&v, "game_during", &out).starts_with("cgsplit-620.scope: created:"),
        "{}",
        show(&out)
    );
    assert_eq!(get(&v, "after_game", &out), "inactive");
    assert_eq!(get(&v, "after_steam", &out), "0");
    assert_eq!(get(&v, "after_anchor", &out), "inactive");
    assert_eq!(get(&v, "rc2", &out), "9", "{}", show(&out));
    assert_eq!(get(&v, "term_count", &out), "1", "forwarded exactly once");
    assert_eq!(get(&v, "rc3", &out), "127");
    assert_eq!(
        get(&v, "err3", &out),
        "cgsplit: error: cannot execute \"/nonexistent/steam\": not found or not executable"
    );
    assert_eq!(get(&v, "rc4", &out), "0");
    assert_eq!(get(&v, "kept", &out), "active");
}

#[test]
fn status_prints_a_table_and_json_with_na_for_what_the_host_cannot_say() {
    let Some(out) = run(r#"
        printf '[defaults]\nmemory_max = "8G"\n[games.620]\ncpu_weight = 500\n[games.70]\n' > "$CFG"
        "$CGSPLIT" up --no-flatpak >/dev/null 2>&1
        "$CGSPLIT" release --app 70 2>/dev/null
        S=$(scope_dir 620)
        sh -c 'echo 0 > '"$S"'/game/cgroup.procs; exec sleep 30' & G=$!
        wait_for grep -q . $S/game/cgroup.procs >/dev/null
        "$CGSPLIT" status > $HOME/table 2>&1; echo "rc=$?"
        "$CGSPLIT" status --json > $HOME/json 2>&1; echo "rc_json=$?"
        echo "has_memory_controller=$(grep -c memory $S/cgroup.controllers)"
        echo "table_begin"; cat $HOME/table; echo "table_end"
        echo "json=$(tr -d ' \n' < $HOME/json)"
        kill $G
    "#) else {
        return;
    };
    let v = vars(&out);
    assert_eq!(get(&v, "rc", &out), "0", "{}", show(&out));
    assert_eq!(get(&v, "rc_json", &out), "0", "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let table: Vec<&str> = stdout
        .lines()
        .skip_while(|l| *l != "table_begin")
        .skip(1)
        .take_while(|l| *l != "table_end")
        .collect();
    eprintln!("{}", table.join("\n"));
    let cols = |app: &str| -> Vec<&str> {
        table
            .iter()
            .find(|l| l.starts_with(&format!("{app} ")))
            .unwrap_or_else(|| panic!("no row for {app}:\n{}", table.join("\n")))
            .split_whitespace()
            .collect()
    };
    let no_memory = get(&v, "has_memory_controller", &out) == "0";
    let r620 = cols("620");
    assert_eq!(
        &r620[..4],
        ["620", "cgsplit-620.scope", "active", "1"],
        "{r620:?}"
    );
    if no_memory {
        // This host kind: no memory controller in the v2 tree.
        assert_eq!(r620[4], "n/a", "memory.current is unknown, not 0");
        assert_eq!(r620[6], "8G*", "limit set but flagged as not enforced");
    }
    assert_eq!(r620[5], "infinity");
    assert_eq!(r620[7], "500");
    assert_eq!(r620[9], "full");
    let r70 = cols("70");
    assert_eq!(
        r70,
        [
            "70",
            "cgsplit-70.scope",
            "not",
            "loaded",
            "n/a",
            "n/a",
            "n/a",
            "n/a",
            "n/a",
            "n/a/n/a",
            "full"
        ]
    );
    let json = get(&v, "json", &out);
    assert!(
        json.contains(r#""app":620,"scope":"cgsplit-620.scope","state":"active""#),
        "{json}"
    );
    if no_memory {
        assert!(json.contains(r#""memory_current":null"#), "{json}");
        assert!(json.contains(r#""memory_controller":false"#), "{json}");
    }
    assert!(
        json.contains(&format!(r#""memory_max":{}"#, 8u64 << 30)),
        "{json}"
    );
    assert!(json.contains(r#""state":"notloaded""#), "{json}");
}

#[test]
fn bad_config_is_one_line_naming_line_and_key_and_provisions_nothing() {
    let Some(out) = run(r#"
        printf '[games.620]\ncpu_weight = 100\n\n[games.portal]\nmemory_max = "1G"\n' > "$CFG"
        "$CGSPLIT" config check >$HOME/c1 2>&1; echo "check=$?"
        echo "check_out=$(cat $HOME/c1)"
        "$CGSPLIT" up --no-flatpak >$HOME/u1 2>&1; echo "up=$?"
        echo "up_out=$(cat $HOME/u1)"
        echo "units=$(systemctl --user list-units --all --no-legend 'cgsplit-*' | wc -l)"
        echo "keepers=$(keepers)"
        printf '[games.620]\nmemory_max = "12X"\nnetwork = "localhost"\n' > $HOME/other.toml
        "$CGSPLIT" config check --config $HOME/other.toml >$HOME/c2 2>&1; echo "check2=$?"
        echo "check2_out=$(cat $HOME/c2)"
        printf '[games.620]\nmemory_max = "4G"\nnetwork = ["192.168.1.0/24"]\nkill_steam_on_exit = true\n' > "$CFG"
        "$CGSPLIT" config check >$HOME/c3 2>&1; echo "check3=$?"
        echo "check3_out=$(tr '\n' '|' < $HOME/c3)"
    "#) else {
        return;
    };
    let v = vars(&out);
    assert_eq!(get(&v, "check", &out), "1");
    assert_eq!(
        get(&v, "check_out", &out),
        "cgsplit: error: /run/cgsplit-testbed-home/.config/cgsplit/config.toml:4:8: games.portal: \
         `portal` is not a Steam app id: expected a decimal number from 1 to 4294967295 (e.g. 620); \
         name the table after the game's app id, e.g. [games.620]"
            .replace("/run/cgsplit-testbed-home", &home(&v, &out))
    );
    assert_eq!(get(&v, "up", &out), "1");
    assert_eq!(get(&v, "up_out", &out), get(&v, "check_out", &out));
    assert_eq!(get(&v, "units", &out), "0", "nothing half-provisioned");
    assert_eq!(get(&v, "keepers", &out).trim(), "");
    assert_eq!(get(&v, "check2", &out), "1");
    let c2 = get(&v, "check2_out", &out);
    assert!(
        c2.contains("other.toml:2:14: games.620.memory_max: `12X` is not a size"),
        "{c2}"
    );
    assert_eq!(get(&v, "check3", &out), "0");
    let c3 = get(&v, "check3_out", &out);
    assert!(
        c3.contains("|620: memory_high=- memory_max=4294967296 cpu_weight=- tasks_max=- network=localhost,192.168.1.0/24 kill_steam_on_exit=true|"),
        "{c3}"
    );
    assert!(
        c3.contains("shim flags (written into launch options): --network localhost,192.168.1.0/24 --kill-steam"),
        "{c3}"
    );
}

fn home(v: &HashMap<String, String>, out: &Output) -> String {
    get(v, "home", out).to_owned()
}

#[test]
fn restricted_game_without_the_helper_gets_no_game_leaf() {
    // Fail closed: the system bus exists but nobody owns io.github.cgsplit.Netd1,
    // or there is no system bus at all.
    let Some(tb) = tb() else { return };
    let out = run_in(
        tb.system_bus(),
        r#"
        printf '[games.620]\nnetwork = "localhost"\n[games.70]\n' > "$CFG"
        "$CGSPLIT" up --no-flatpak >$HOME/out 2>$HOME/err; echo "rc=$?"
        echo "err=$(grep error: $HOME/err)"
        echo "err_lines=$(grep -c error: $HOME/err)"
        S=$(scope_dir 620)
        [ -d $S/keeper ] && echo "keeper=yes"
        [ -e $S/game ] && echo "game=present" || echo "game=absent"
        [ -d $(scope_dir 70)/game ] && echo "other_game=present"
        DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent "$CGSPLIT" provision --app 620 >/dev/null 2>$HOME/err2; echo "rc2=$?"
        echo "err2=$(cat $HOME/err2)"
        [ -e $S/game ] && echo "game2=present" || echo "game2=absent"
        # The explicit override lifts it: the leaf appears.
        "$CGSPLIT" provision --app 620 --network full >/dev/null 2>&1; echo "rc3=$?"
        [ -d $S/game ] && echo "game3=present"
        # Going back to restricted with an empty leaf removes it again.
        "$CGSPLIT" provision --app 620 >/dev/null 2>&1; echo "rc4=$?"
        [ -e $S/game ] && echo "game4=present" || echo "game4=absent"
        "$CGSPLIT" status > $HOME/st 2>&1
        echo "status_620=$(grep '^620 ' $HOME/st)"
    "#,
    );
    let v = vars(&out);
    assert_eq!(get(&v, "rc", &out), "1", "{}", show(&out));
    let err = get(&v, "err", &out);
    assert_eq!(get(&v, "err_lines", &out), "1", "{err}");
    assert!(
        err.starts_with("cgsplit: error: app 620: cgsplit-620.scope: network policy `localhost` not enforced, so /sys/fs/cgroup/"),
        "{err}"
    );
    assert!(
        err.contains("/game was not created and the game will not start: cgsplit-netd Restrict("),
        "{err}"
    );
    assert!(
        err.contains("org.freedesktop.DBus.Error.ServiceUnknown"),
        "{err}"
    );
    assert!(err.contains("is cgsplit-netd installed"), "{err}");
    assert_eq!(get(&v, "keeper", &out), "yes");
    assert_eq!(get(&v, "game", &out), "absent");
    assert_eq!(
        get(&v, "other_game", &out),
        "present",
        "other games unaffected"
    );
    assert_eq!(get(&v, "rc2", &out), "1");
    let err2 = get(&v, "err2", &out);
    assert!(
        err2.contains("cannot reach the system bus (unix:path=/nonexistent) to ask cgsplit-netd"),
        "{err2}"
    );
    assert_eq!(get(&v, "game2", &out), "absent");
    assert_eq!(get(&v, "rc3", &out), "0");
    assert_eq!(get(&v, "game3", &out), "present");
    assert_eq!(get(&v, "rc4", &out), "1");
    assert_eq!(get(&v, "game4", &out), "absent");
    let st = get(&v, "status_620", &out);
    assert!(st.ends_with("localhost (NOT enforced)"), "{st}");
}

#[test]
fn the_shipped_user_unit_runs_up_and_keeps_watch() {
    // Passed as text: the checkout may sit below a directory the test uid
    // cannot search (CI clones under /root, mode 0700).
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../companion/systemd/cgsplit.service"),
    )
    .expect("companion/systemd/cgsplit.service");
    let Some(tb) = tb() else { return };
    let out = run_in(
        tb.env("UNIT_TEXT", unit),
        r#"
        printf '[games.620]\ncpu_weight = 42\n' > "$CFG"
        mkdir -p $HOME/.config/systemd/user
        printf '%s\n' "$UNIT_TEXT" | sed "s|@CGSPLIT@|$CGSPLIT|g" > $HOME/.config/systemd/user/cgsplit.service
        systemctl --user daemon-reload
        systemctl --user start cgsplit.service; echo "start=$?"
        echo "service=$(systemctl --user is-active cgsplit.service)"
        echo "scope=$(systemctl --user is-active cgsplit-620.scope)"
        echo "weight=$(systemctl --user show -P CPUWeight cgsplit-620.scope)"
        echo "anchor=$(systemctl --user is-active cgsplit-anchor.scope)"
        S=$(scope_dir 620)
        K1=$(cat $S/keeper/cgroup.procs)
        kill -9 $K1
        recreated() { K2=$(cat $S/keeper/cgroup.procs 2>/dev/null); [ -n "$K2" ] && [ "$K2" != "$K1" ]; }
        echo "tries=$(wait_for recreated)"
        echo "scope2=$(systemctl --user is-active cgsplit-620.scope)"
    "#,
    );
    let v = vars(&out);
    assert_eq!(get(&v, "start", &out), "0", "{}", show(&out));
    assert_eq!(get(&v, "service", &out), "active");
    assert_eq!(
        get(&v, "scope", &out),
        "active",
        "ExecStartPre ran before the unit counted as started"
    );
    assert_eq!(get(&v, "weight", &out), "42");
    assert_eq!(get(&v, "anchor", &out), "active");
    let tries: u32 = get(&v, "tries", &out).parse().unwrap();
    assert!(tries < 200, "{}", show(&out));
    assert_eq!(get(&v, "scope2", &out), "active");
}

/// `APP SCOPE STATE PIDS …` rows (first column numeric) of a `cgsplit
/// status` table printed between `<tag>_begin` and `<tag>_end` lines (the
/// second uid's lines carry the testbed's `second: ` prefix).
fn table_rows(out: &Output, tag: &str) -> Vec<Vec<String>> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (begin, end) = (format!("{tag}_begin"), format!("{tag}_end"));
    stdout
        .lines()
        .map(|l| l.strip_prefix("second: ").unwrap_or(l))
        .skip_while(|l| *l != begin)
        .skip(1)
        .take_while(|l| *l != end)
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|c| c.parse::<u32>().is_ok())
        })
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

#[test]
fn two_uids_each_up_twice_see_only_their_own_scopes_and_cannot_touch_the_others() {
    // Two unprivileged uids (cgsplit-test and cgsplit-test2, created if
    // absent), each with its own systemd --user, run concurrently and take
    // turns through marker files in $TESTBED_SHARED:
    //   A: up, up (620, CPUWeight 300), a game process in its leaf → a-up
    //   B: up, up (620 CPUWeight 50, 400) → b-up; tries A's leaf and bus
    //   A: status while B's scopes run → a-status
    //   B: status, down → b-down
    //   A: its scope, keeper and game process are untouched; status again.
    let Some(tb) = tb() else { return };
    let second = format!(
        "{PRELUDE}{SH_WAIT_FOR_COUNT}\n{}",
        r#"
        mark() { : > "$TESTBED_SHARED/$1"; }
        echo "b_wait_a=$(wait_for test -e $TESTBED_SHARED/a-up)"
        printf '[games.620]\ncpu_weight = 50\n[games.400]\n' > "$CFG"
        "$CGSPLIT" up --no-flatpak >$HOME/up1 2>&1; echo "b_up1=$?"
        inv1=$(systemctl --user show -P InvocationID cgsplit-620.scope cgsplit-400.scope | tr '\n' ' ')
        keep1="$(procs $(scope_dir 620)/keeper) $(procs $(scope_dir 400)/keeper)"
        "$CGSPLIT" up --no-flatpak >$HOME/up2 2>&1; echo "b_up2=$?"
        echo "b_up1_out=$(sort $HOME/up1 | tr '\n' '|')"
        echo "b_up2_out=$(sort $HOME/up2 | tr '\n' '|')"
        echo "b_same_units=$([ "$inv1" = "$(systemctl --user show -P InvocationID cgsplit-620.scope cgsplit-400.scope | tr '\n' ' ')" ] && echo yes)"
        echo "b_same_keepers=$([ "$keep1" = "$(procs $(scope_dir 620)/keeper) $(procs $(scope_dir 400)/keeper)" ] && echo yes)"
        echo "b_units=$(systemctl --user list-units --all --no-legend --plain 'cgsplit-*' | awk '{print $1}' | sort | tr '\n' ' ')"
        mark b-up
        # A's game leaf is A's (Delegate=yes chowned it to A): no way in.
        A_S=/sys/fs/cgroup/user.slice/user-$TESTBED_UID1.slice/user@$TESTBED_UID1.service/games.slice/cgsplit-620.scope
        o=$(sh -c "echo \$\$ > $A_S/game/cgroup.procs" 2>&1); r=$?; echo "b_join=$(echo $o) rc=$r"
        o=$(sh -c "echo \$\$ > $A_S/cgroup.procs" 2>&1); r=$?; echo "b_join_scope=$(echo $o) rc=$r"
        # A's session bus (so A's manager) is closed to B.
        o=$(DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/$TESTBED_UID1/bus "$CGSPLIT" down 2>&1); r=$?; echo "b_down_a=$(echo $o) rc=$r"
        echo "b_wait_status=$(wait_for test -e $TESTBED_SHARED/a-status)"
        "$CGSPLIT" status >$HOME/table 2>&1; echo "b_status=$?"
        echo "b_table_begin"; cat $HOME/table; echo "b_table_end"
        "$CGSPLIT" down >$HOME/down 2>&1; echo "b_down=$?"
        echo "b_down_out=$(sort $HOME/down | tr '\n' '|')"
        echo "b_units_after=$(systemctl --user list-units --all --no-legend 'cgsplit-*' | wc -l)"
        mark b-down
        "#
    );
    let out = run_in(
        tb.second_sh(second),
        r#"
        mark() { : > "$TESTBED_SHARED/$1"; }
        printf '[games.620]\ncpu_weight = 300\n' > "$CFG"
        "$CGSPLIT" up --no-flatpak >$HOME/up1 2>&1; echo "a_up1=$?"
        inv1=$(systemctl --user show -P InvocationID cgsplit-620.scope)
        S=$(scope_dir 620)
        keep1=$(procs $S/keeper)
        "$CGSPLIT" up --no-flatpak >$HOME/up2 2>&1; echo "a_up2=$?"
        echo "a_up1_out=$(sort $HOME/up1 | tr '\n' '|')"
        echo "a_up2_out=$(sort $HOME/up2 | tr '\n' '|')"
        echo "a_same_units=$([ "$inv1" = "$(systemctl --user show -P InvocationID cgsplit-620.scope)" ] && echo yes)"
        echo "a_same_keepers=$([ "$keep1" = "$(procs $S/keeper)" ] && echo yes)"
        sh -c 'echo 0 > '"$S"'/game/cgroup.procs; exec sleep 60' & G=$!
        wait_for grep -q . $S/game/cgroup.procs >/dev/null
        mark a-up
        echo "a_wait_b=$(wait_for test -e $TESTBED_SHARED/b-up)"
        "$CGSPLIT" status >$HOME/table 2>&1; echo "a_status=$?"
        echo "a_table_begin"; cat $HOME/table; echo "a_table_end"
        echo "a_units=$(systemctl --user list-units --all --no-legend --plain 'cgsplit-*' | awk '{print $1}' | sort | tr '\n' ' ')"
        mark a-status
        echo "a_wait_down=$(wait_for test -e $TESTBED_SHARED/b-down)"
        echo "a_state=$(systemctl --user is-active cgsplit-620.scope cgsplit-anchor.scope | tr '\n' ' ')"
        echo "a_same_unit_after=$([ "$inv1" = "$(systemctl --user show -P InvocationID cgsplit-620.scope)" ] && echo yes)"
        echo "a_same_keeper_after=$([ "$keep1" = "$(procs $S/keeper)" ] && echo yes)"
        echo "a_game_after=$([ "$(procs $S/game)" = "$G " ] && echo yes)"
        "$CGSPLIT" status >$HOME/table2 2>&1; echo "a_status2=$?"
        echo "a_table2_begin"; cat $HOME/table2; echo "a_table2_end"
        kill $G
        "$CGSPLIT" down >/dev/null 2>&1
        "#,
    );
    let v = vars(&out);
    let b = |k: &str| get(&v, &format!("second: {k}"), &out).to_owned();
    let ua: u32 = get(&v, "uid", &out).parse().unwrap();
    let ub: u32 = b("uid").parse().unwrap();
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        ua != 0 && ub != 0 && ua != ub,
        "two unprivileged uids: {ua}, {ub}"
    );
    for (k, val) in [
        ("a_wait_b", get(&v, "a_wait_b", &out).to_owned()),
        ("a_wait_down", get(&v, "a_wait_down", &out).to_owned()),
        ("b_wait_a", b("b_wait_a")),
        ("b_wait_status", b("b_wait_status")),
    ] {
        assert!(
            val.parse::<u32>().unwrap() < 200,
            "{k} timed out\n{}",
            show(&out)
        );
    }
    let cg = |uid, app| scope::scope_cgroup(uid, AppId::new(app).unwrap());

    // Both `up` twice: the second creates nothing and keeps the same units and keepers.
    assert_eq!(get(&v, "a_up1", &out), "0", "{}", show(&out));
    assert_eq!(get(&v, "a_up2", &out), "0", "{}", show(&out));
    assert_eq!(b("b_up1"), "0", "{}", show(&out));
    assert_eq!(b("b_up2"), "0", "{}", show(&out));
    assert_eq!(
        get(&v, "a_up2_out", &out),
        format!("cgsplit-620.scope: up to date: {}|", cg(ua, 620))
    );
    assert_eq!(
        b("b_up2_out"),
        format!(
            "cgsplit-400.scope: up to date: {}|cgsplit-620.scope: up to date: {}|",
            cg(ub, 400),
            cg(ub, 620)
        )
    );
    assert!(
        get(&v, "a_up1_out", &out).contains(&cg(ua, 620)),
        "{}",
        show(&out)
    );
    assert!(b("b_up1_out").contains(&cg(ub, 400)), "{}", show(&out));
    for k in ["a_same_units", "a_same_keepers"] {
        assert_eq!(get(&v, k, &out), "yes", "{k}\n{}", show(&out));
    }
    for k in ["b_same_units", "b_same_keepers"] {
        assert_eq!(b(k), "yes", "{k}\n{}", show(&out));
    }

    // Each manager holds only its own uid's units, and each `status` shows
    // only its own scopes: A's 620 (CPUWeight 300, its game process), never
    // B's 400; B's 620 (CPUWeight 50, no process) and 400.
    assert_eq!(
        get(&v, "a_units", &out),
        "cgsplit-620.scope cgsplit-anchor.scope"
    );
    assert_eq!(
        b("b_units"),
        "cgsplit-400.scope cgsplit-620.scope cgsplit-anchor.scope"
    );
    assert_eq!(get(&v, "a_status", &out), "0", "{}", show(&out));
    assert_eq!(b("b_status"), "0", "{}", show(&out));
    let brief = |rows: Vec<Vec<String>>| -> Vec<String> {
        // APP STATE PIDS CPU-W
        rows.iter()
            .map(|r| format!("{} {} {} {}", r[0], r[2], r[3], r[7]))
            .collect()
    };
    assert_eq!(
        brief(table_rows(&out, "a_table")),
        ["620 active 1 300"],
        "{}",
        show(&out)
    );
    assert_eq!(
        brief(table_rows(&out, "b_table")),
        ["400 active 0 -", "620 active 0 50"],
        "{}",
        show(&out)
    );

    // B can neither move a process into A's scope nor reach A's manager.
    for k in ["b_join", "b_join_scope"] {
        let s = b(k);
        assert!(
            s.contains("Permission denied") && s.ends_with("rc=2"),
            "{k}: {s}"
        );
    }
    let s = b("b_down_a");
    assert!(
        s.starts_with(&format!(
            "cgsplit: error: cannot connect to the session bus at unix:path=/run/user/{ua}/bus"
        )) && s.contains("Permission denied")
            && s.ends_with("rc=1"),
        "{s}"
    );

    // B's `down` releases B's scopes only.
    assert_eq!(b("b_down"), "0", "{}", show(&out));
    assert_eq!(
        b("b_down_out"),
        "cgsplit-400.scope: stopped|cgsplit-620.scope: stopped|cgsplit-anchor.scope: stopped|"
    );
    assert_eq!(b("b_units_after"), "0");
    assert_eq!(get(&v, "a_state", &out), "active active");
    for k in ["a_same_unit_after", "a_same_keeper_after", "a_game_after"] {
        assert_eq!(get(&v, k, &out), "yes", "{k}\n{}", show(&out));
    }
    assert_eq!(get(&v, "a_status2", &out), "0", "{}", show(&out));
    assert_eq!(
        brief(table_rows(&out, "a_table2")),
        ["620 active 1 300"],
        "{}",
        show(&out)
    );
}

#[test]
fn up_without_a_user_manager_is_one_line_and_starts_nothing() {
    let Some(out) = run(r#"
        printf '[games.620]\n[games.70]\n' > "$CFG"
        addr=$(dbus-daemon --session --fork --print-address --address=unix:path=$XDG_RUNTIME_DIR/other-bus)
        DBUS_SESSION_BUS_ADDRESS="$addr" "$CGSPLIT" up >$HOME/out 2>$HOME/err; echo "rc=$?"
        echo "stdout=$(cat $HOME/out)"
        echo "err=$(cat $HOME/err)"
        echo "err_lines=$(grep -c '' $HOME/err)"
        echo "keepers=$(keepers)"
    "#) else {
        return;
    };
    let v = vars(&out);
    assert_eq!(get(&v, "rc", &out), "1", "{}", show(&out));
    assert_eq!(get(&v, "stdout", &out), "");
    assert_eq!(get(&v, "err_lines", &out), "1", "{}", show(&out));
    assert!(
        get(&v, "err", &out).starts_with(
            "cgsplit: error: cgsplit-anchor.scope: no systemd user manager on the session bus at unix:path=/run/user/"
        ),
        "{}",
        show(&out)
    );
    assert_eq!(get(&v, "keepers", &out).trim(), "", "no keeper left behind");
}
