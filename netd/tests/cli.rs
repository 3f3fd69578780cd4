//! The root-only CLI (`attach`/`detach`/`status`) against real cgroups and
//! BPF, and its errors for bad input: not root, unknown policy, malformed
//! CIDR, a cgroup that does not exist, a path outside the cgroup2 root or
//! with `..`, and no CAP_BPF/CAP_NET_ADMIN — each one line, nothing attached.

mod support;

use std::process::Output;

use support::{Env, can_run};

fn fails_with(o: Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.starts_with("cgsplit-netd: "), "{err}");
    assert!(err.contains(needle), "{err:?} lacks {needle:?}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
}

#[test]
fn cli_attach_status_detach() {
    let Some(()) = can_run() else { return };
    let env = Env::without_netd(64);
    let a620 = env.a.scope(620);
    let dir = env.dir(&a620).display().to_string();

    let o = env.cli(
        None,
        None,
        &["attach", "--cgroup", &dir, "--policy", "localhost"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("attached localhost"));
    assert_eq!(env.xattr(&a620).as_deref(), Some("localhost"));
    let e = env.probe(&a620).expect_err("filtered after attach");
    assert!(e.contains("Operation not permitted"), "{e}");

    let o = env.cli(None, None, &["status", "--cgroup", &dir]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(st["restricted"], true, "{st}");
    assert_eq!(st["policy"], "localhost", "{st}");
    assert_eq!(st["cgroup"], a620.as_str(), "{st}");
    assert!(
        st["counters"]["connect_refused"].as_u64().unwrap() >= 1,
        "the probe's refused connect is counted: {st}"
    );

    let o = env.cli(None, None, &["detach", "--cgroup", &dir]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("detached"));
    assert_eq!(env.xattr(&a620), None);
    env.probe(&a620).expect("unfiltered after detach");
}

#[test]
fn cli_bad_input_gets_one_clear_line_and_attaches_nothing() {
    let Some(()) = can_run() else { return };
    let env = Env::without_netd(64);
    let a620 = env.a.scope(620);
    let dir = env.dir(&a620).display().to_string();
    let attach = |policy: &str, cgroup: &str| {
        vec!["attach", "--cgroup", cgroup, "--policy", policy]
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let run = |user, caps, args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        env.cli(user, caps, &args)
    };

    fails_with(
        run(Some(&env.a), None, attach("localhost", &dir)),
        "must run as root",
    );
    fails_with(
        run(None, None, attach("offline", &dir)),
        "unknown network policy \"offline\"",
    );
    fails_with(
        run(None, None, attach("localhost,10.0.0.0/33", &dir)),
        "malformed CIDR \"10.0.0.0/33\"",
    );
    fails_with(
        run(None, None, attach("localhost,lan", &dir)),
        "malformed CIDR \"lan\"",
    );
    let gone = env.dir(&env.a.scope(999)).display().to_string();
    fails_with(run(None, None, attach("localhost", &gone)), "no cgroup");
    fails_with(
        run(None, None, attach("localhost", "/tmp")),
        "is not beneath the cgroup2 root",
    );
    let dotdot = format!("{}/../cgsplit-621.scope", dir);
    fails_with(run(None, None, attach("localhost", &dotdot)), "`..`");
    fails_with(
        run(
            None,
            Some("-bpf,-net_admin,-sys_admin"),
            attach("localhost", &dir),
        ),
        "lacks CAP_BPF, CAP_NET_ADMIN (BPF not permitted)",
    );
    fails_with(
        run(None, Some("-perfmon,-sys_admin"), attach("localhost", &dir)),
        "lacks CAP_PERFMON",
    );
    // No bpffs yet and no CAP_SYS_ADMIN to mount one.
    fails_with(
        run(
            None,
            Some("-all,+bpf,+net_admin,+perfmon"),
            attach("localhost", &dir),
        ),
        "is not a BPF file system and mounting one there failed",
    );
    // Mount it (full root), then: loaded and attached, but the xattr cannot
    // be set on A's directory without CAP_DAC_OVERRIDE: the attach is undone.
    assert!(
        env.cli(None, None, &["status", "--cgroup", &dir])
            .status
            .success()
    );
    fails_with(
        run(
            None,
            Some("-all,+bpf,+net_admin,+perfmon"),
            attach("localhost", &dir),
        ),
        "the filter was detached again",
    );
    assert_eq!(env.xattr(&a620), None);
    env.probe(&a620).expect("nothing attached");
    let o = env.cli(None, None, &["status", "--cgroup", &dir]);
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(st["restricted"], false, "{st}");
}
