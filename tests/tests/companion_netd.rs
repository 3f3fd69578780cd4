//! The companion with the real privileged helper: `cgsplit-netd serve` runs
//! as root on a private system bus (the shipped D-Bus policy included) inside
//! the testbed, in a private network namespace; the companion runs as the
//! unprivileged test uid under a real `systemd --user`.
//!
//! Shows: `up` asks the helper and creates `game/` only after it confirmed;
//! the filter is really attached (a UDP connect from the leaf to TEST-NET-1
//! fails with EPERM, loopback is reached); a scope recreated by the watcher
//! after its keeper was killed is restricted again before its `game/` exists;
//! `status` shows the helper's counters and the refused destination; going
//! back to `full` releases the filter.
//!
//! Needs root and `cargo build --workspace --bins` first.

use cgsplit_tests::bins::bin;
use cgsplit_tests::fixtures::{SH_WAIT_FOR_COUNT, show, vars};
use cgsplit_tests::testbed::Testbed;

#[test]
fn restricted_game_gets_its_leaf_only_after_the_helper_attached_also_when_recreated() {
    for b in ["cgsplit", "cgsplit-netd", "cgsplit-netprobe"] {
        bin(b);
    }
    let Some(tb) = Testbed::or_skip() else { return };
    let out = tb
        .with_netd()
        .run_sh(&format!(
            "{SH_WAIT_FOR_COUNT}{}",
            r#"
        C="$CGSPLIT_BIN/cgsplit"; P="$CGSPLIT_BIN/cgsplit-netprobe"
        CFG=$HOME/.config/cgsplit/config.toml; mkdir -p $HOME/.config/cgsplit
        S=/sys/fs/cgroup/user.slice/user-$TESTBED_UID.slice/user@$TESTBED_UID.service/games.slice/cgsplit-620.scope
        quiet() { "$@" >/dev/null 2>&1; }
        policy() { getfattr --absolute-names -n user.cgsplit.policy --only-values "$S" 2>/dev/null || echo none; }
        probe() { "$P" --join "$S/game" "$1" | cut -f2; }
        echo "netd_wait=$(wait_for quiet busctl --system status io.github.cgsplit.Netd1)"

        printf '[games.620]\nnetwork = "localhost"\n' > "$CFG"
        "$C" up --no-flatpak >$HOME/up 2>&1; echo "up=$?"
        echo "up_out=$(grep 620 $HOME/up)"
        echo "policy1=$(policy)"
        echo "probe_remote1=$(probe udp-connect:192.0.2.1:9)"
        echo "probe_loopback1=$(probe tcp:127.0.0.1:1)"

        "$C" watch 2>$HOME/watch.log & W=$!
        wait_for grep -q watching $HOME/watch.log >/dev/null
        K1=$(cat $S/keeper/cgroup.procs)
        kill -9 $K1
        recreated() { K2=$(cat $S/keeper/cgroup.procs 2>/dev/null); [ -n "$K2" ] && [ "$K2" != "$K1" ] && [ -d $S/game ]; }
        echo "recreate_tries=$(wait_for recreated)"
        echo "policy2=$(policy)"
        echo "probe_remote2=$(probe udp-connect:192.0.2.1:9)"
        kill $W

        "$C" status > $HOME/st 2>&1
        echo "status=$(grep '^620 ' $HOME/st)"

        printf '[games.620]\nnetwork = "full"\n' > "$CFG"
        "$C" up --no-flatpak >/dev/null 2>&1; echo "up_full=$?"
        echo "policy3=$(policy)"
        echo "probe_remote3=$(probe udp-connect:192.0.2.1:9)"
        "$C" down >/dev/null 2>&1; echo "down=$?"
        echo "netd_log=$(grep -c Attached /run/netd.log)"
        "#
        ));
    assert_ne!(out.status.code(), Some(125), "{}", show(&out));
    let v = vars(&out);
    let get = |k: &str| {
        v.get(k)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no {k}=\n{}", show(&out)))
    };
    assert!(
        get("netd_wait").parse::<u32>().unwrap() < 200,
        "{}",
        show(&out)
    );
    assert_eq!(get("up"), "0", "{}", show(&out));
    assert!(get("up_out").starts_with("cgsplit-620.scope: created:"));
    assert_eq!(get("policy1"), "localhost");
    assert_eq!(get("probe_remote1"), "EPERM", "{}", show(&out));
    assert_eq!(
        get("probe_loopback1"),
        "ECONNREFUSED",
        "loopback reached (nothing listens)"
    );
    assert!(
        get("recreate_tries").parse::<u32>().unwrap() < 200,
        "{}",
        show(&out)
    );
    assert_eq!(
        get("policy2"),
        "localhost",
        "restricted again on recreation"
    );
    assert_eq!(get("probe_remote2"), "EPERM", "{}", show(&out));
    let st = get("status");
    eprintln!("status row: {st}");
    assert!(st.contains("localhost (enforced) dropped="), "{st}");
    assert!(st.contains(" refused=1 last=192.0.2.1:9/udp"), "{st}");
    assert_eq!(get("up_full"), "0", "{}", show(&out));
    assert_eq!(get("policy3"), "none", "released");
    assert_ne!(get("probe_remote3"), "EPERM", "{}", show(&out));
    assert_eq!(get("down"), "0");
    assert_eq!(get("netd_log"), "2", "one attach per creation");
}
