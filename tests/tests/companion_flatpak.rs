//! The companion's flatpak grant against a real offline flatpak sandbox
//! ([`cgsplit_tests::flatpak`]: busybox runtime, stand-in
//! `com.valvesoftware.Steam` installed `--user`) on a real `systemd --user`.
//!
//! Shows: `cgsplit up` grants `games.slice` with `flatpak --user override`
//! and records it; a process inside the sandbox moves itself into the game
//! leaf by writing `0` to `cgroup.procs`; after the scope is released and
//! recreated while the sandbox runs, the new leaf is reachable through the
//! slice grant; a sandbox started while `games.slice` did not exist cannot
//! see it, and `cgsplit up` says so; `cgsplit down --revoke` takes the grant
//! back.

use cgsplit_tests::fixtures::{SH_WAIT_FOR_COUNT, first_var, report_dir, shared_tempdir, show};
use cgsplit_tests::flatpak::{App, Kit, Runtime};
use cgsplit_tests::testbed::{Testbed, sh};

const APP: &str = "com.valvesoftware.Steam";

/// The sandboxed "Steam": joins the game leaf `$2/cgsplit-620.scope/game`
/// ($2 = games.slice as the host names it) in a child, twice: once at start,
/// once after the host touched `$1/recreated`. Reports each time.
const STEAM: &str = r#"#!/bin/sh
out=$1; slice=$2
join() { sh -c 'echo 0 > "$1/cgsplit-620.scope/game/cgroup.procs" && sed -n "s/^0:://p" /proc/self/cgroup' - "$slice" 2>&1; }
[ -d "$slice" ] && echo "slice=visible" >> "$out/sandbox" || echo "slice=missing" >> "$out/sandbox"
[ "${3:-}" = probe-only ] && { sleep 3; exit 0; }
echo "join1=$(join)" >> "$out/sandbox"
echo ready >> "$out/sandbox"
i=0; until [ -e "$out/recreated" ]; do i=$((i+1)); [ $i -gt 200 ] && break; sleep 0.05; done
echo "join2=$(join)" >> "$out/sandbox"
"#;

#[test]
fn slice_grant_reaches_recreated_scopes_and_a_missing_path_is_reported() {
    let Some(bed) = Testbed::or_skip() else {
        return;
    };
    if !Kit::available_or_skip() {
        return;
    }
    cgsplit_tests::bins::bin("cgsplit");
    let tmp = shared_tempdir("cgsplit-compfp-");
    let kit = Kit::build(
        tmp.path(),
        &Runtime::new(),
        &[App::new(APP).script("steam", STEAM).command("steam")],
    )
    .expect("build the flatpak repo");
    let out = report_dir(tmp.path().join("out"));
    let filesystem = format!("--filesystem={}", out.display());

    let script = format!(
        r#"set -u
out={out}
{install}
C="$CGSPLIT_BIN/cgsplit"
mkdir -p $HOME/.config/cgsplit && printf '[games.620]\n' > $HOME/.config/cgsplit/config.toml
SLICE=/sys/fs/cgroup/user.slice/user-$TESTBED_UID.slice/user@$TESTBED_UID.service/games.slice
echo "host_slice=$SLICE"
{SH_WAIT_FOR_COUNT}

# 1. Slice missing when the sandbox starts: flatpak skips the grant silently;
#    `cgsplit up` (which creates the slice) warns about the blind sandbox.
flatpak --user override --filesystem="$SLICE" {app}
{run} "$out" "$SLICE" probe-only & blind=$!
echo "blind_started=$(wait_for grep -q slice= $out/sandbox 2>/dev/null)"
"$C" up >/dev/null 2>$HOME/up0.err; echo "up0=$?"
echo "up0_warn=$(grep -c 'cannot see' $HOME/up0.err)"
echo "up0_warn_text=$(grep 'cannot see' $HOME/up0.err)"
wait $blind
echo "blind_saw=$(sed -n 1p $out/sandbox)"
"$C" down --revoke >/dev/null 2>&1; echo "down0=$?"
flatpak --user override --reset {app}
rm -f $out/sandbox

# 2. `up` grants the slice and records it.
"$C" up >$HOME/up1 2>$HOME/up1.err; echo "up1=$?"
echo "up1_err=$(tr '\n' '|' < $HOME/up1.err)"
echo "override=$(flatpak --user override --show {app} | sed -n 's/^filesystems=//p')"
echo "recorded=$(cat $HOME/.local/state/cgsplit/flatpak-grants | tr '\t' ' ')"
"$C" up >/dev/null 2>$HOME/up2.err; echo "up2=$?"
echo "up2_err=$(cat $HOME/up2.err)"

# 3. A sandbox process joins the leaf; the scope is recreated while the
#    sandbox runs; a new process joins the new leaf through the slice grant.
{run} "$out" "$SLICE" & fp=$!
echo "ready_tries=$(wait_for grep -q ready $out/sandbox 2>/dev/null)"
ino1=$(stat -c %i $SLICE/cgsplit-620.scope)
"$C" release --app 620; "$C" up >/dev/null 2>&1
ino2=$(stat -c %i $SLICE/cgsplit-620.scope)
[ "$ino1" != "$ino2" ] && echo "recreated_dir=new"
touch $out/recreated
wait $fp; echo "fp=$?"
cat $out/sandbox

# 4. Revoke.
"$C" down --revoke >$HOME/down 2>&1; echo "down=$?"
echo "down_out=$(grep revoked $HOME/down)"
echo "override_after=$(flatpak --user override --show {app} | sed -n 's/^filesystems=//p')"
echo "recorded_after=$(cat $HOME/.local/state/cgsplit/flatpak-grants | wc -l)"
"#,
        out = sh(&out),
        install = kit.install_script(),
        app = APP,
        run = Kit::run_cmd(APP, &[&filesystem]),
    );
    let run = bed.system_bus().run_sh(&script);
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    let diag = show(&run);
    eprintln!("{diag}");
    assert!(run.status.success(), "{diag}");
    let get = |k: &str| -> String {
        stdout
            .lines()
            .filter_map(|l| l.split_once('='))
            .filter(|(kk, _)| *kk == k)
            .map(|(_, v)| v.to_owned())
            .next_back()
            .unwrap_or_else(|| panic!("no {k}=\n{diag}"))
    };
    let slice = get("host_slice");
    let uid = slice
        .split("user-")
        .nth(1)
        .and_then(|s| s.split('.').next())
        .unwrap()
        .to_owned();
    let leaf = format!(
        "/user.slice/user-{uid}.slice/user@{uid}.service/games.slice/cgsplit-620.scope/game"
    );

    // 1. Missing at start.
    assert_eq!(get("blind_saw"), "slice=missing", "{diag}");
    assert_eq!(get("up0"), "0", "{diag}");
    assert_eq!(get("up0_warn"), "1", "{diag}");
    let w = get("up0_warn_text");
    assert!(
        w.starts_with("cgsplit: warning: the running com.valvesoftware.Steam sandbox (instance "),
        "{w}"
    );
    assert!(
        w.contains(&format!("cannot see {slice}: it started before")),
        "{w}"
    );
    assert!(w.contains("until Steam is restarted"), "{w}");
    assert!(!w.contains("  "), "one clean line: {w}");

    // 2. Grant.
    assert_eq!(get("up1"), "0", "{diag}");
    assert!(
        get("up1_err").contains(&format!("granted {slice} to {APP} (flatpak override)")),
        "{diag}"
    );
    assert_eq!(get("override"), format!("{slice};"));
    assert_eq!(get("recorded"), format!("{APP} {slice}"));
    assert_eq!(get("up2"), "0");
    assert_eq!(get("up2_err"), "", "a second up grants nothing new");

    // 3. Inside the sandbox, before and after the scope was recreated.
    assert!(stdout.contains("slice=visible"), "{diag}");
    assert_eq!(get("join1"), leaf, "{diag}");
    assert_eq!(get("recreated_dir"), "new", "{diag}");
    assert_eq!(
        get("join2"),
        leaf,
        "the recreated leaf is reachable through the slice grant\n{diag}"
    );
    assert_eq!(get("fp"), "0");

    // 4. Revoke: flatpak records the undo as a `!path` entry.
    assert_eq!(get("down"), "0");
    assert_eq!(get("down_out"), format!("revoked flatpak grant of {slice}"));
    assert_eq!(get("override_after"), format!("!{slice};"));
    assert_eq!(get("recorded_after"), "0");
}

#[test]
fn unwritable_override_and_missing_flatpak_get_clear_messages() {
    let Some(bed) = Testbed::or_skip() else {
        return;
    };
    if !Kit::available_or_skip() {
        return;
    }
    cgsplit_tests::bins::bin("cgsplit");
    let out = bed.run_sh(
        r#"
        C="$CGSPLIT_BIN/cgsplit"
        mkdir -p $HOME/.config/cgsplit && printf '[games.620]\n' > $HOME/.config/cgsplit/config.toml
        REC=$HOME/.local/state/cgsplit/flatpak-grants
        # The override directory cannot be written: `up` fails loudly, the
        # game is still provisioned, nothing is recorded as granted.
        mkdir -p $HOME/.local/share/flatpak/overrides && chmod 500 $HOME/.local/share/flatpak/overrides
        "$C" up >/dev/null 2>$HOME/e1; echo "up1=$?"
        echo "e1=$(grep error: $HOME/e1)"
        echo "game=$(systemctl --user is-active cgsplit-620.scope)"
        echo "recorded1=$(cat $REC 2>/dev/null | wc -l)"
        chmod 700 $HOME/.local/share/flatpak/overrides
        "$C" up >/dev/null 2>&1; echo "up2=$?"
        echo "recorded2=$(cat $REC | wc -l)"
        # No flatpak on PATH: `up` needs no grant (a native Steam); a recorded
        # grant that cannot be revoked is an error.
        mkdir $HOME/bin; for t in systemctl busctl; do ln -s "$(command -v $t)" $HOME/bin/; done
        PATH=$HOME/bin "$C" up >/dev/null 2>$HOME/e3; echo "up3=$?"
        echo "e3=$(cat $HOME/e3)"
        PATH=$HOME/bin "$C" down --revoke >/dev/null 2>$HOME/e4; echo "down4=$?"
        echo "e4=$(grep error: $HOME/e4)"
        "#,
    );
    let diag = show(&out);
    let get = |k: &str| first_var(&out, k);
    assert_eq!(get("up1"), "1", "{diag}");
    let e1 = get("e1");
    assert!(
        e1.starts_with("cgsplit: error: flatpak grant: `flatpak --user override --filesystem=/sys/fs/cgroup/user.slice/")
            && e1.contains(&format!("/games.slice {APP}` failed (exit status: 1): ")),
        "{e1}"
    );
    assert_eq!(get("game"), "active", "{diag}");
    assert_eq!(get("recorded1"), "0", "a failed grant is not recorded");
    assert_eq!(get("up2"), "0", "{diag}");
    assert_eq!(get("recorded2"), "1");
    assert_eq!(get("up3"), "0", "{diag}");
    assert_eq!(get("e3"), "", "no flatpak: nothing to grant, nothing said");
    assert_eq!(get("down4"), "1", "{diag}");
    assert!(
        get("e4").starts_with("cgsplit: error: flatpak is not installed (no `flatpak` on PATH): "),
        "{diag}"
    );
}
