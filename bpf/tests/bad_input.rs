//! Bad input and missing privileges: clear errors, nothing half-attached.
//! Each test runs in its own mount + network namespaces (see `common`).

mod common;

use std::os::fd::AsFd;
use std::path::Path;
use std::process::Command;

use cgsplit_bpf::{Error, Filter};
use cgsplit_core::policy::NetworkPolicy;
use common::*;

fn nothing_attached(filter: &Filter, pin_root: &Path) {
    assert!(filter.list().unwrap().is_empty(), "{:?}", filter.list());
    assert_eq!(
        std::fs::read_dir(pin_root.join("links")).unwrap().count(),
        0,
        "no link pins"
    );
}

#[test]
fn refusals_leave_nothing_attached() {
    if !inner("refusals_leave_nothing_attached") {
        return;
    }
    let bpffs = Bpffs::mount();
    let pin_root = bpffs.pin_root();
    let cg = Cgroups::new("bad");
    let scope = cg.make("cgsplit-1.scope");
    let mut filter = Filter::load(&pin_root).unwrap();
    let localhost: NetworkPolicy = "localhost".parse().unwrap();

    // Unknown policy names and malformed CIDRs never reach the loader:
    // core's parser names the bad part.
    let e = "offline".parse::<NetworkPolicy>().unwrap_err().to_string();
    assert!(e.contains("unknown network policy \"offline\""), "{e}");
    let e = "localhost,10.0.0.0/33"
        .parse::<NetworkPolicy>()
        .unwrap_err()
        .to_string();
    assert!(e.contains("malformed CIDR \"10.0.0.0/33\""), "{e}");

    // `full` needs no filter.
    let e = filter
        .restrict(Cgroups::open(&scope).as_fd(), &NetworkPolicy::Full)
        .unwrap_err();
    assert!(matches!(e, Error::NothingToRestrict), "{e}");
    nothing_attached(&filter, &pin_root);

    // Not a cgroup2 directory.
    let tmp = tempfile::tempdir().unwrap();
    let e = filter
        .restrict(Cgroups::open(tmp.path()).as_fd(), &localhost)
        .unwrap_err();
    assert!(matches!(e, Error::NotCgroup2), "{e}");
    let procs = Cgroups::open(&scope.join("cgroup.procs"));
    let e = filter.restrict(procs.as_fd(), &localhost).unwrap_err();
    assert!(matches!(e, Error::NotCgroup2), "{e}");
    nothing_attached(&filter, &pin_root);

    // A cgroup that vanished between open and attach.
    let gone = cg.make("gone.scope");
    let gone_fd = Cgroups::open(&gone);
    let gone_id = Cgroups::id(&gone);
    std::fs::remove_dir(&gone).unwrap();
    let e = filter.restrict(gone_fd.as_fd(), &localhost).unwrap_err();
    assert!(
        matches!(e, Error::CgroupGone { cgroup_id } if cgroup_id == gone_id),
        "{e}"
    );
    assert!(e.to_string().contains("no longer exists"), "{e}");
    nothing_attached(&filter, &pin_root);

    // Nested restrictions, both ways.
    let outer = filter
        .restrict(Cgroups::open(&scope).as_fd(), &localhost)
        .unwrap();
    let inside = cg.make("cgsplit-1.scope/game");
    let e = filter
        .restrict(Cgroups::open(&inside).as_fd(), &localhost)
        .unwrap_err();
    assert!(
        matches!(e, Error::Nested { relation: "inside", other, .. } if other == outer.cgroup_id),
        "{e}"
    );
    let e = filter
        .restrict(Cgroups::open(&cg.root).as_fd(), &localhost)
        .unwrap_err();
    assert!(
        matches!(e, Error::Nested { relation: "above", other, .. } if other == outer.cgroup_id),
        "{e}"
    );
    assert_eq!(filter.list().unwrap().len(), 1);

    // The per-uid cap (these cgroups are root's).
    filter.set_max_per_uid(2);
    let second = cg.make("cgsplit-2.scope");
    let third = cg.make("cgsplit-3.scope");
    filter
        .restrict(Cgroups::open(&second).as_fd(), &localhost)
        .unwrap();
    assert_eq!(filter.count_for_uid(0).unwrap(), 2);
    let e = filter
        .restrict(Cgroups::open(&third).as_fd(), &localhost)
        .unwrap_err();
    assert!(matches!(e, Error::TooMany { uid: 0, max: 2 }), "{e}");
    assert!(
        !pin_root
            .join("links")
            .join(Cgroups::id(&third).to_string())
            .exists()
    );
    // Re-restricting one already counted is an update, not a new one.
    filter
        .restrict(
            Cgroups::open(&second).as_fd(),
            &"localhost,10.1.0.0/16".parse().unwrap(),
        )
        .unwrap();
    assert_eq!(filter.list().unwrap().len(), 2);

    // An O_PATH fd (what an openat2 walk may hand over) works too.
    filter.set_max_per_uid(3);
    let o_path = nix::fcntl::open(
        &third,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY,
        nix::sys::stat::Mode::empty(),
    )
    .unwrap();
    let a = filter.restrict(o_path.as_fd(), &localhost).unwrap();
    assert_eq!(a.cgroup_id, Cgroups::id(&third));
    assert!(filter.status(a.cgroup_id).unwrap().unwrap().attached.alive);

    for a in filter.list().unwrap() {
        assert!(filter.release(a.cgroup_id).unwrap());
    }
    nothing_attached(&filter, &pin_root);
}

/// Runs `caps_child` under `setpriv` with the capability bounding set
/// `bounding` and asserts it passed.
fn run_caps_child(bounding: &str, pins: &str, expect: &str) {
    let out = Command::new("setpriv")
        .args(["--inh-caps=-all", "--ambient-caps=-all"])
        .arg(format!("--bounding-set={bounding}"))
        .arg("--")
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "caps_child", "--ignored", "--nocapture"])
        .env("CGSPLIT_BPF_CAPS_PINS", pins)
        .env("CGSPLIT_BPF_CAPS_EXPECT", expect)
        .output()
        .expect("setpriv (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "caps_child ({bounding}) failed");
    assert!(stdout.contains("1 passed"), "caps_child did not run");
}

/// Without CAP_BPF (root with an empty capability bounding set), or with
/// CAP_BPF + CAP_NET_ADMIN but not CAP_PERFMON, loading fails with
/// [`Error::NotPermitted`] naming what is missing, and the existing filter
/// is untouched.
#[test]
fn without_capabilities_loading_is_refused() {
    if !inner("without_capabilities_loading_is_refused") {
        return;
    }
    let bpffs = Bpffs::mount();
    let pin_root = bpffs.pin_root();
    let cg = Cgroups::new("nocap");
    let scope = cg.make("cgsplit-1.scope");
    let mut filter = Filter::load(&pin_root).unwrap();
    let att = filter
        .restrict(Cgroups::open(&scope).as_fd(), &"localhost".parse().unwrap())
        .unwrap();
    let fresh = bpffs.dir.path().join("fresh");
    let pins = format!("{}:{}", pin_root.display(), fresh.display());
    run_caps_child("-all", &pins, "missing CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON");
    run_caps_child("-all,+bpf,+net_admin", &pins, "missing CAP_PERFMON");
    assert_eq!(filter.list().unwrap(), vec![att.clone()]);
    assert!(filter.release(att.cgroup_id).unwrap());
}

/// Run by `without_capabilities_loading_is_refused` under setpriv.
#[test]
#[ignore = "helper: run by without_capabilities_loading_is_refused under setpriv"]
fn caps_child() {
    let pins = std::env::var("CGSPLIT_BPF_CAPS_PINS").expect("run by the parent test");
    let expect = std::env::var("CGSPLIT_BPF_CAPS_EXPECT").unwrap();
    for root in pins.split(':') {
        let e = Filter::load(Path::new(root)).unwrap_err();
        assert!(matches!(e, Error::NotPermitted { .. }), "{root}: {e:?}");
        let msg = e.to_string();
        assert!(msg.contains(&expect), "{msg}");
        println!("{root}: {msg}");
    }
}
