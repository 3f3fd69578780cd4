//! `cgsplit provision` / `cgsplit release` against a real, private
//! `systemd --user` (one testbed run per test; no mocks).
//!
//! Needs root and the workspace's binaries built first:
//! `cargo build --workspace --bins && cargo test -p cgsplit-tests --test companion`.
//! Skips (prints `skipping: …`) on hosts that cannot run the testbed, unless
//! `CI` is set.

use std::collections::HashMap;
use std::process::Output;

use cgsplit_core::AppId;
use cgsplit_core::scope;
use cgsplit_tests::bins::bin;
use cgsplit_tests::fixtures::{get, vars};
use cgsplit_tests::testbed::Testbed;

const APP: u32 = 620;

fn app() -> AppId {
    AppId::new(APP).unwrap()
}

/// Runs `script` as the test uid with `$CGSPLIT` pointing at the companion
/// (as the testbed exposes it: `$CGSPLIT_BIN`) and
/// shell helpers defined; `None` when the host cannot run the testbed.
fn run(script: &str) -> Option<Output> {
    // Fail early, with the build command, when the companion is not built.
    bin("cgsplit");
    let tb = Testbed::or_skip()?;
    let prelude = r#"
CGSPLIT="$CGSPLIT_BIN/cgsplit"
# pids of live keeper processes (argv: cgsplit-keeper keeper), space-separated
keepers() {
    for p in /proc/[0-9]*; do
        [ "$(tr '\0' ' ' < "$p/cmdline" 2>/dev/null)" = "cgsplit-keeper keeper " ] && printf '%s ' "${p#/proc/}"
    done
}
# contents of a cgroup.procs file on one line
procs() { tr '\n' ' ' < "$1/cgroup.procs" 2>/dev/null || echo MISSING; }
echo "uid=$TESTBED_UID"
"#;
    let out = tb.run_sh(&format!("{prelude}\n{script}"));
    assert_ne!(
        out.status.code(),
        Some(125),
        "the testbed itself failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(out)
}

fn uid(v: &HashMap<String, String>, out: &Output) -> u32 {
    get(v, "uid", out).parse().expect("uid is a number")
}

#[test]
fn provision_creates_a_delegated_scope_with_keeper_and_game_leaves() {
    let Some(out) = run(r#"
        stdout=$("$CGSPLIT" provision --app 620 2>$HOME/err); echo "rc=$?"
        echo "stdout=$stdout"
        echo "stdout_lines=$(printf '%s' "$stdout" | grep -c '')"
        echo "stderr=$(cat $HOME/err)"
        S="/sys/fs/cgroup$stdout"
        echo "keepers=$(keepers)"
        echo "keeper_procs=$(procs "$S/keeper")"
        echo "root_procs=$(procs "$S")"
        [ -d "$S/game" ] && echo "game_dir=yes"
        # The uid can move itself into game/ (Delegate=yes chowned it).
        echo "game_join=$( (echo 0 > "$S/game/cgroup.procs" && cat /proc/self/cgroup) 2>&1 | tail -n1)"
        systemctl --user show cgsplit-620.scope -p Delegate -p Slice -p ActiveState
    "#) else {
        return;
    };
    let v = vars(&out);
    let uid = uid(&v, &out);
    assert_eq!(
        get(&v, "rc", &out),
        "0",
        "stderr: {}",
        get(&v, "stderr", &out)
    );
    assert_eq!(get(&v, "stdout", &out), scope::scope_cgroup(uid, app()));
    assert_eq!(get(&v, "stdout_lines", &out), "1");
    assert_eq!(get(&v, "stderr", &out), "");
    let keepers: Vec<&str> = get(&v, "keepers", &out).split_whitespace().collect();
    assert_eq!(keepers.len(), 1, "exactly one keeper process: {keepers:?}");
    assert_eq!(get(&v, "keeper_procs", &out).trim(), keepers[0]);
    assert_eq!(
        get(&v, "root_procs", &out).trim(),
        "",
        "scope root must be empty"
    );
    assert_eq!(get(&v, "game_dir", &out), "yes");
    assert_eq!(
        get(&v, "game_join", &out),
        format!("0::{}", scope::game_cgroup(uid, app()))
    );
    assert_eq!(get(&v, "Delegate", &out), "yes");
    assert_eq!(get(&v, "Slice", &out), scope::GAMES_SLICE);
    assert_eq!(get(&v, "ActiveState", &out), "active");
}

#[test]
fn second_provision_prints_the_same_path_and_adds_no_keeper() {
    let Some(out) = run(r#"
        first=$("$CGSPLIT" provision --app 620); echo "rc1=$?"
        k1=$(keepers)
        second=$("$CGSPLIT" provision --app 620 2>$HOME/err); echo "rc2=$?"
        echo "first=$first"
        echo "second=$second"
        echo "stderr2=$(cat $HOME/err)"
        echo "keepers1=$k1"
        echo "keepers2=$(keepers)"
        echo "keeper_procs=$(procs "/sys/fs/cgroup$second/keeper")"
    "#) else {
        return;
    };
    let v = vars(&out);
    let uid = uid(&v, &out);
    assert_eq!(get(&v, "rc1", &out), "0");
    assert_eq!(
        get(&v, "rc2", &out),
        "0",
        "stderr: {}",
        get(&v, "stderr2", &out)
    );
    assert_eq!(get(&v, "first", &out), scope::scope_cgroup(uid, app()));
    assert_eq!(get(&v, "second", &out), get(&v, "first", &out));
    assert_eq!(get(&v, "stderr2", &out), "");
    let k1 = get(&v, "keepers1", &out).trim();
    assert_eq!(k1.split_whitespace().count(), 1, "{k1}");
    assert_eq!(get(&v, "keepers2", &out).trim(), k1, "no second keeper");
    assert_eq!(get(&v, "keeper_procs", &out).trim(), k1);
}

#[test]
fn release_stops_the_scope_and_removes_its_cgroup() {
    let Some(out) = run(r#"
        S="/sys/fs/cgroup$("$CGSPLIT" provision --app 620)"; echo "rc1=$?"
        [ -d "$S/keeper" ] && echo "before=present"
        "$CGSPLIT" release --app 620 >$HOME/out 2>$HOME/err; echo "rc2=$?"
        echo "stdout=$(cat $HOME/out)"
        echo "stderr=$(cat $HOME/err)"
        [ -e "$S" ] && echo "after=present" || echo "after=gone"
        echo "keepers=$(keepers)"
        echo "state=$(systemctl --user is-active cgsplit-620.scope)"
    "#) else {
        return;
    };
    let v = vars(&out);
    assert_eq!(get(&v, "rc1", &out), "0");
    assert_eq!(get(&v, "before", &out), "present");
    assert_eq!(
        get(&v, "rc2", &out),
        "0",
        "stderr: {}",
        get(&v, "stderr", &out)
    );
    assert_eq!(get(&v, "stdout", &out), "");
    assert_eq!(get(&v, "stderr", &out), "");
    assert_eq!(get(&v, "after", &out), "gone");
    assert_eq!(
        get(&v, "keepers", &out).trim(),
        "",
        "the keeper dies with the scope"
    );
    assert_eq!(get(&v, "state", &out), "inactive");
}

#[test]
fn release_of_an_unknown_app_succeeds_and_says_nothing_to_release() {
    let Some(out) = run(r#"
        "$CGSPLIT" release --app 621 >$HOME/out 2>$HOME/err; echo "rc=$?"
        echo "stdout=$(cat $HOME/out)"
        echo "stderr=$(cat $HOME/err)"
        echo "stderr_lines=$(grep -c '' $HOME/err)"
    "#) else {
        return;
    };
    let v = vars(&out);
    assert_eq!(get(&v, "rc", &out), "0");
    assert_eq!(get(&v, "stdout", &out), "");
    assert_eq!(
        get(&v, "stderr", &out),
        format!(
            "cgsplit: {} is not loaded: nothing to release",
            scope::scope_unit(AppId::new(621).unwrap())
        )
    );
    assert_eq!(get(&v, "stderr_lines", &out), "1");
}

#[test]
fn no_session_bus_is_one_line_naming_the_address() {
    let Some(out) = run(r#"
        DBUS_SESSION_BUS_ADDRESS=unix:path=/nonexistent "$CGSPLIT" provision --app 620 >$HOME/out 2>$HOME/err; echo "rc=$?"
        echo "stdout=$(cat $HOME/out)"
        echo "stderr=$(cat $HOME/err)"
        echo "stderr_lines=$(grep -c '' $HOME/err)"
        echo "keepers=$(keepers)"
    "#) else {
        return;
    };
    let v = vars(&out);
    assert_ne!(get(&v, "rc", &out), "0");
    assert_eq!(get(&v, "stdout", &out), "");
    assert_eq!(get(&v, "stderr_lines", &out), "1");
    let err = get(&v, "stderr", &out);
    assert!(
        err.starts_with(
            "cgsplit: error: cannot connect to the session bus at unix:path=/nonexistent:"
        ),
        "{err}"
    );
    assert!(err.contains("systemctl --user"), "{err}");
    assert_eq!(get(&v, "keepers", &out).trim(), "", "no keeper left behind");
}

#[test]
fn a_bus_without_systemd_is_reported_as_no_user_manager() {
    // A second, private session bus that systemd is not connected to.
    let Some(out) = run(r#"
        addr=$(dbus-daemon --session --fork --print-address --address=unix:path=$XDG_RUNTIME_DIR/other-bus)
        DBUS_SESSION_BUS_ADDRESS="$addr" "$CGSPLIT" provision --app 620 >$HOME/out 2>$HOME/err; echo "rc=$?"
        echo "addr=$addr"
        echo "stderr=$(cat $HOME/err)"
        echo "stderr_lines=$(grep -c '' $HOME/err)"
        echo "keepers=$(keepers)"
    "#) else {
        return;
    };
    let v = vars(&out);
    assert_ne!(get(&v, "rc", &out), "0");
    let err = get(&v, "stderr", &out);
    let addr = get(&v, "addr", &out);
    assert!(addr.starts_with("unix:path=/run/user/"), "{addr}");
    assert!(
        err.starts_with(&format!(
            "cgsplit: error: no systemd user manager on the session bus at {addr} (org.freedesktop.DBus.Error."
        )),
        "{err}"
    );
    assert_eq!(get(&v, "stderr_lines", &out), "1");
    assert_eq!(get(&v, "keepers", &out).trim(), "", "no keeper left behind");
}

#[test]
fn provision_resets_a_failed_scope_and_says_so() {
    // A scope of the same name that fails (RuntimeMaxSec ran out) and, without
    // CollectMode=inactive-or-failed, stays loaded as `failed`.
    let Some(out) = run(r#"
        systemd-run --user --quiet --scope --unit=cgsplit-620.scope -p RuntimeMaxSec=200ms sleep 30 2>/dev/null
        # systemd-run returns when sleep is killed; the unit may still be
        # `deactivating` for a moment before it settles in `failed`.
        for i in $(seq 100); do
            [ "$(systemctl --user is-active cgsplit-620.scope)" = deactivating ] || break
            sleep 0.05
        done
        echo "before=$(systemctl --user is-active cgsplit-620.scope)"
        stdout=$("$CGSPLIT" provision --app 620 2>$HOME/err); echo "rc=$?"
        echo "stdout=$stdout"
        echo "stderr=$(cat $HOME/err)"
        echo "after=$(systemctl --user is-active cgsplit-620.scope)"
        echo "keeper_procs=$(procs "/sys/fs/cgroup$stdout/keeper")"
        echo "keepers=$(keepers)"
    "#) else {
        return;
    };
    let v = vars(&out);
    let uid = uid(&v, &out);
    assert_eq!(get(&v, "before", &out), "failed");
    assert_eq!(
        get(&v, "rc", &out),
        "0",
        "stderr: {}",
        get(&v, "stderr", &out)
    );
    assert_eq!(get(&v, "stdout", &out), scope::scope_cgroup(uid, app()));
    assert_eq!(
        get(&v, "stderr", &out),
        format!(
            "cgsplit: {} had failed; reset it and created it again",
            scope::scope_unit(app())
        )
    );
    assert_eq!(get(&v, "after", &out), "active");
    assert_eq!(
        get(&v, "keeper_procs", &out).trim(),
        get(&v, "keepers", &out).trim()
    );
}
