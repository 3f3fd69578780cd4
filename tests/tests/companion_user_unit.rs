//! `cgsplit-install --user-unit` against a real `systemd --user`: the
//! shipped `cgsplit.service` is written to `~/.config/systemd/user/`,
//! enabled through `systemctl --user enable`, starts (`cgsplit up` as
//! ExecStartPre, then the watcher), and `--uninstall` disables and removes it,
//! stops the scopes and revokes the flatpak grant.

use cgsplit_tests::fixtures::{demo_home, first_var, shared_tempdir, show};
use cgsplit_tests::testbed;

#[test]
fn installer_enables_the_user_unit_and_uninstall_removes_it() {
    let Some(bed) = testbed::Testbed::or_skip() else {
        return;
    };
    // The static shim must exist; the script uses its bind-mounted path
    // ($CGSPLIT_SHIM): the test uid may not search the checkout (CI clones
    // under /root, mode 0700).
    let Some(_) = testbed::static_shim_or_skip() else {
        return;
    };
    cgsplit_tests::bins::bin("cgsplit");
    cgsplit_tests::bins::bin("cgsplit-install");
    let tmp = shared_tempdir("cgsplit-unit-");
    let home = tmp.path().join("home");
    demo_home(&home);
    let out = bed.home(&home).run_sh(
        r#"
        U=$HOME/.config/systemd/user
        mkdir -p $HOME/.config/cgsplit && printf '[games.620]\ncpu_weight = 77\n' > $HOME/.config/cgsplit/config.toml
        mkdir -p $U && echo '# my own edit' > $U/cgsplit.service
        "$CGSPLIT_BIN/cgsplit-install" --game 620 --shim "$CGSPLIT_SHIM" --user-unit >$HOME/i.log 2>&1; echo "install=$?"
        echo "backup=$(cat $U/cgsplit.service.cgsplit-bak)"
        echo "install_log=$(grep '^cgsplit-install:' $HOME/i.log)"
        echo "bin=$CGSPLIT_BIN"
        echo "exec=$(grep '^ExecStart=' $U/cgsplit.service)"
        echo "enabled=$(systemctl --user is-enabled cgsplit.service)"
        systemctl --user start cgsplit.service; echo "start=$?"
        echo "scope=$(systemctl --user is-active cgsplit-620.scope)"
        echo "weight=$(systemctl --user show -P CPUWeight cgsplit-620.scope)"
        echo "granted=$(flatpak --user override --show com.valvesoftware.Steam | sed -n 's/^filesystems=//p')"
        "$CGSPLIT_BIN/cgsplit-install" --uninstall >$HOME/u.log 2>&1; echo "uninstall=$?"
        echo "unit_file=$(test -e $U/cgsplit.service && echo present || echo gone)"
        echo "wants=$(test -e $U/default.target.wants/cgsplit.service && echo present || echo gone)"
        echo "service_after=$(systemctl --user is-active cgsplit.service)"
        echo "scope_after=$(systemctl --user is-active cgsplit-620.scope)"
        echo "granted_after=$(flatpak --user override --show com.valvesoftware.Steam | sed -n 's/^filesystems=//p')"
        "#,
    );
    let diag = show(&out);
    let get = |k: &str| first_var(&out, k);
    assert_eq!(get("install"), "0", "{diag}");
    assert!(
        get("install_log").starts_with("cgsplit-install: installed and enabled "),
        "{diag}"
    );
    assert_eq!(
        get("exec"),
        format!("ExecStart={}/cgsplit watch", get("bin"))
    );
    assert_eq!(get("backup"), "# my own edit", "the edited unit is kept");
    assert_eq!(get("enabled"), "enabled", "{diag}");
    assert_eq!(get("start"), "0", "{diag}");
    assert_eq!(get("scope"), "active", "{diag}");
    assert_eq!(get("weight"), "77");
    assert!(get("granted").ends_with("/games.slice;"), "{diag}");
    assert_eq!(get("uninstall"), "0", "{diag}");
    assert_eq!(get("unit_file"), "gone");
    assert_eq!(get("wants"), "gone");
    assert_eq!(get("service_after"), "inactive");
    assert_eq!(get("scope_after"), "inactive", "{diag}");
    assert!(get("granted_after").starts_with('!'), "revoked: {diag}");
}
