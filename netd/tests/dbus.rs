//! cgsplit-netd's authorization through a real private `dbus-daemon` that
//! includes the shipped policy file, with callers of two unprivileged uids
//! (`setpriv` + `dbus-send`), the helper running as root with
//! `--cgroup-root` at a throw-away cgroup tree and its own bpffs in a private
//! mount namespace. Real kernel cgroups and BPF; the traffic check runs in a
//! private network namespace.

mod support;

use support::{Env, can_run};

fn err_name(e: &str) -> &str {
    e.trim_start_matches("Error ")
        .split(':')
        .next()
        .unwrap_or("")
}

fn refused(r: Result<String, String>, name: &str, needle: &str) {
    let e = r.expect_err("the call should be refused");
    assert_eq!(
        err_name(&e),
        format!("io.github.cgsplit.Netd1.Error.{name}"),
        "{e}"
    );
    assert!(e.contains(needle), "{e:?} lacks {needle:?}");
}

fn assert_untouched(env: &Env, cgroup: &str) {
    let st = env.status(cgroup);
    assert_eq!(st["restricted"], false, "{cgroup}: {st}");
    assert_eq!(env.xattr(cgroup), None, "{cgroup}");
}

#[test]
fn refusals_leave_nothing_attached() {
    let Some(()) = can_run() else { return };
    let env = Env::start(64);
    let (a, b) = (&env.a, &env.b);
    let a620 = a.scope(620);
    let b620 = b.scope(620);

    // A on B's scope.
    refused(
        env.call(Some(a), None, "Restrict", &[&b620, "localhost"]),
        "AccessDenied",
        "inside its own user manager",
    );
    // A on a root-owned cgroup, outside and inside A's own tree.
    refused(
        env.call(
            Some(a),
            None,
            "Restrict",
            &["/system.slice/root-owned.scope", "localhost"],
        ),
        "AccessDenied",
        "inside its own user manager",
    );
    let rootowned = format!("{}/games.slice/rootowned.scope", a.manager());
    refused(
        env.call(Some(a), None, "Restrict", &[&rootowned, "localhost"]),
        "AccessDenied",
        "owned by uid 0",
    );
    // `..` out of A's tree into B's.
    let dotdot = format!(
        "{}/../../user-{}.slice/user@{}.service/games.slice/cgsplit-620.scope",
        a.manager(),
        b.uid,
        b.uid
    );
    refused(
        env.call(Some(a), None, "Restrict", &[&dotdot, "localhost"]),
        "InvalidArgs",
        "`..`",
    );
    // A symlink (on a file system mounted inside A's tree) into B's tree.
    let link = format!("{}/link", a.scope(666));
    refused(
        env.call(Some(a), None, "Restrict", &[&link, "localhost"]),
        "AccessDenied",
        "leaves the cgroup2 tree",
    );
    // A non-cgroup directory: a plain tmpfs dir, and a file-system path.
    let plain = format!("{}/plain", a.scope(666));
    refused(
        env.call(Some(a), None, "Restrict", &[&plain, "localhost"]),
        "AccessDenied",
        "leaves the cgroup2 tree",
    );
    refused(
        env.call(Some(a), None, "Restrict", &["/tmp", "localhost"]),
        "AccessDenied",
        "not /tmp",
    );
    refused(
        env.call(None, None, "Restrict", &["/tmp", "localhost"]),
        "NoSuchCgroup",
        "no cgroup /tmp",
    );
    refused(
        env.call(Some(a), None, "Restrict", &["tmp/x", "localhost"]),
        "InvalidArgs",
        "not absolute",
    );
    // The root cgroup, even for root.
    refused(
        env.call(None, None, "Restrict", &["/", "localhost"]),
        "AccessDenied",
        "root cgroup",
    );
    // Bad policies.
    refused(
        env.call(Some(a), None, "Restrict", &[&a620, "offline"]),
        "InvalidArgs",
        "unknown network policy \"offline\"",
    );
    refused(
        env.call(Some(a), None, "Restrict", &[&a620, "localhost,10.0.0.0/33"]),
        "InvalidArgs",
        "malformed CIDR",
    );
    refused(
        env.call(Some(a), None, "Restrict", &[&a620, "full"]),
        "InvalidArgs",
        "call Release",
    );
    // B may neither release nor read A's.
    refused(
        env.call(Some(b), None, "Release", &[&a620]),
        "AccessDenied",
        "inside its own",
    );
    refused(
        env.call(Some(b), None, "Status", &[&a620]),
        "AccessDenied",
        "inside its own",
    );

    // The shipped bus policy: only root may own the helper's name.
    let own = format!(
        "dbus-send --bus={} --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
         org.freedesktop.DBus.RequestName string:io.github.cgsplit.Netd1 uint32:4",
        env.bus
    );
    let o = std::process::Command::new("setpriv")
        .args([
            &format!("--reuid={}", a.uid),
            &format!("--regid={}", a.gid),
            "--clear-groups",
            "sh",
            "-c",
            &own,
        ])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "uid {} could request the name", a.uid);
    assert!(e.contains("org.freedesktop.DBus.Error.AccessDenied"), "{e}");

    for cg in [
        &a620,
        &b620,
        &rootowned,
        &"/system.slice/root-owned.scope".to_string(),
    ] {
        assert_untouched(&env, cg);
    }
    // The helper logged each refusal with the uid the bus reported.
    let log = env.netd_log.lock().unwrap().join("\n");
    assert!(log.contains(&format!("by uid={} ", a.uid)), "{log}");
    assert!(log.contains("refused"), "{log}");
}

#[test]
fn owner_restricts_releases_and_a_restart_keeps_the_filter() {
    let Some(()) = can_run() else { return };
    let mut env = Env::start(2);
    let a = env.a.clone();
    let a620 = a.scope(620);

    // Unfiltered first: the UDP connect works.
    env.probe(&a620).expect("UDP connect before Restrict");

    env.call(Some(&a), None, "Restrict", &[&a620, "localhost"])
        .unwrap();
    assert_eq!(env.xattr(&a620).as_deref(), Some("localhost"));
    let st = env.status(&a620);
    assert_eq!(st["restricted"], true, "{st}");
    assert_eq!(st["policy"], "localhost", "{st}");
    assert_eq!(st["xattr"], "localhost", "{st}");
    let e = env.probe(&a620).expect_err("UDP connect after Restrict");
    assert!(e.contains("Operation not permitted"), "{e}");
    // The owner sees what its game tried to reach.
    let st = env.status_as(Some(&a), &a620);
    assert_eq!(st["counters"]["connect_refused"], 1, "{st}");
    let recent = st["recent"].as_array().unwrap();
    assert!(
        recent.iter().any(|r| r["addr"] == "192.0.2.1"
            && r["port"] == 9
            && r["protocol"] == 17
            && r["comm"] == "socat"),
        "{st}"
    );
    // The same policy again is fine.
    env.call(Some(&a), None, "Restrict", &[&a620, "localhost"])
        .unwrap();
    // A cgroup nested in a restricted one is refused.
    refused(
        env.call(
            Some(&a),
            None,
            "Restrict",
            &[&format!("{a620}/game"), "localhost"],
        ),
        "AlreadyRestricted",
        "inside another restricted cgroup",
    );
    // From inside the restricted scope, A can neither widen the policy...
    let game = format!("{a620}/game");
    refused(
        env.call(
            Some(&a),
            Some(&game),
            "Restrict",
            &[&a620, "localhost,192.0.2.0/24"],
        ),
        "AccessDenied",
        "network-restricted",
    );
    assert_eq!(env.xattr(&a620).as_deref(), Some("localhost"));
    env.probe(&a620).expect_err("still filtered");
    // ...but from outside it can change it.
    env.call(
        Some(&a),
        None,
        "Restrict",
        &[&a620, "localhost,192.0.2.0/24"],
    )
    .unwrap();
    assert_eq!(env.xattr(&a620).as_deref(), Some("localhost,192.0.2.0/24"));
    env.probe(&a620)
        .expect("192.0.2.1 is on the allow-list now");
    env.call(Some(&a), None, "Restrict", &[&a620, "localhost"])
        .unwrap();
    env.probe(&a620).expect_err("filtered again");

    // The per-uid cap (2 here).
    env.call(Some(&a), None, "Restrict", &[&a.scope(621), "localhost"])
        .unwrap();
    refused(
        env.call(Some(&a), None, "Restrict", &[&a.scope(622), "localhost"]),
        "LimitExceeded",
        "already has 2 restricted cgroups",
    );
    assert_untouched(&env, &a.scope(622));
    // A game whose scope ended (its cgroup removed, never released) stops
    // counting once the kernel has let go of the cgroup.
    std::fs::remove_dir(env.dir(&format!("{}/game", a.scope(621)))).unwrap();
    std::fs::remove_dir(env.dir(&a.scope(621))).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut tries = 0;
    loop {
        tries += 1;
        match env.call(Some(&a), None, "Restrict", &[&a.scope(622), "localhost"]) {
            Ok(_) => break,
            Err(e) if e.contains("LimitExceeded") && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            Err(e) => panic!("{e}"),
        }
    }
    eprintln!("restricting a third scope after removing one took {tries} tries");
    env.call(Some(&a), None, "Release", &[&a.scope(622)])
        .unwrap();

    // A restart keeps the pinned filter.
    env.stop_netd();
    let e = env
        .probe(&a620)
        .expect_err("filter while the helper is down");
    assert!(e.contains("Operation not permitted"), "{e}");
    env.start_netd();
    let st = env.status(&a620);
    assert_eq!(st["restricted"], true, "after restart: {st}");
    assert_eq!(st["policy"], "localhost", "{st}");

    // From inside the restricted scope, A cannot lift it.
    refused(
        env.call(Some(&a), Some(&format!("{a620}/game")), "Release", &[&a620]),
        "AccessDenied",
        "network-restricted",
    );
    assert_eq!(env.status(&a620)["restricted"], true);

    // From outside it can; the filter and the xattr are gone.
    env.call(Some(&a), None, "Release", &[&a620]).unwrap();
    assert_untouched(&env, &a620);
    env.probe(&a620).expect("UDP connect after Release");
    // Releasing again is not an error.
    env.call(Some(&a), None, "Release", &[&a620]).unwrap();
}

#[test]
fn the_helper_exits_when_it_loses_the_bus() {
    let Some(()) = can_run() else { return };
    let mut env = Env::start(64);
    env.kill_bus();
    let st = env
        .netd_exit(10)
        .expect("cgsplit-netd still runs without its bus");
    assert!(!st.success(), "{st:?}");
    std::thread::sleep(std::time::Duration::from_millis(100));
    let log = env.netd_log.lock().unwrap().join("\n");
    assert!(log.contains("lost the bus"), "{log}");
}

#[test]
fn the_bus_activates_the_helper_on_the_first_call() {
    let Some(()) = can_run() else { return };
    let env = Env::without_netd(64);
    assert_eq!(env.name_owner_pid(), None, "nobody owns the name yet");
    let a620 = env.a.scope(620);
    env.call(Some(&env.a), None, "Restrict", &[&a620, "localhost"])
        .expect("Restrict through an activated helper");
    assert_eq!(env.xattr(&a620).as_deref(), Some("localhost"));
    let pid = env
        .name_owner_pid()
        .expect("the activated helper owns the name");
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(exe.ends_with("cgsplit-netd"), "{}", exe.display());
    env.call(Some(&env.a), None, "Release", &[&a620]).unwrap();
    assert_eq!(env.xattr(&a620), None);
}
