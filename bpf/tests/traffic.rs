//! Real traffic through the real kernel filter: the protocol matrix, nested
//! processes and cgroups, the allow-list, counters and events, release, and
//! a loader restart. Each test runs in its own mount + network namespaces
//! (see `common`).

mod common;

use std::collections::HashMap;
use std::os::fd::AsFd;

use cgsplit_bpf::{Filter, Hook};
use cgsplit_core::policy::NetworkPolicy;
use common::*;

/// What a refused probe must leave in the counters and events.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    Connect(Hook),
    SendMsg(Hook),
    /// Dropped by cgroup_skb egress; the caller gets EPERM.
    Egress,
    /// Dropped by cgroup_skb egress, but the kernel does not report it:
    /// `ping_v6_sendmsg` ignores the result of `icmpv6_push_pending_frames`,
    /// so an unconnected IPv6 ping `sendto()` "succeeds" and no reply comes.
    EgressSilent,
}

/// The refused probes against the test host, and where each is caught.
fn refused_probes(net: &Net) -> Vec<(String, Expect)> {
    let h = net.host.tcp;
    let u = net.host.udp;
    vec![
        (
            format!("tcp:{}", addr(HOST4, h)),
            Expect::Connect(Hook::Connect4),
        ),
        (
            format!("tcp-fastopen:{}", addr(HOST4, h)),
            Expect::Connect(Hook::Connect4),
        ),
        (
            format!("udp-connect:{}", addr(HOST4, u)),
            Expect::Connect(Hook::Connect4),
        ),
        (
            format!("udp-sendto:{}", addr(HOST4, u)),
            Expect::SendMsg(Hook::SendMsg4),
        ),
        (
            format!("udp-sendmsg:{}", addr(HOST4, u)),
            Expect::SendMsg(Hook::SendMsg4),
        ),
        (
            format!("tcp:{}", addr(HOST6, h)),
            Expect::Connect(Hook::Connect6),
        ),
        (
            format!("tcp-fastopen:{}", addr(HOST6, h)),
            Expect::Connect(Hook::Connect6),
        ),
        (
            format!("udp-connect:{}", addr(HOST6, u)),
            Expect::Connect(Hook::Connect6),
        ),
        (
            format!("udp-sendto:{}", addr(HOST6, u)),
            Expect::SendMsg(Hook::SendMsg6),
        ),
        (
            format!("tcp:{}", addr("::ffff:198.18.0.2", h)),
            Expect::Connect(Hook::Connect6),
        ),
        // udpv6_sendmsg hands a v4-mapped destination to udp_sendmsg, so
        // sendmsg4 (not sendmsg6) sees it, as plain 198.18.0.2.
        (
            format!("udp-sendto:{}", addr("::ffff:198.18.0.2", u)),
            Expect::SendMsg(Hook::SendMsg4),
        ),
        (
            format!("ping:{}", addr(HOST4, 0)),
            Expect::Connect(Hook::Connect4),
        ),
        (
            format!("ping:{}", addr(HOST6, 0)),
            Expect::Connect(Hook::Connect6),
        ),
        (format!("ping-sendto:{}", addr(HOST4, 0)), Expect::Egress),
        (
            format!("ping-sendto:{}", addr(HOST6, 0)),
            Expect::EgressSilent,
        ),
    ]
}

/// Loopback and allow-listed destinations: reachable from inside.
fn reachable_probes(net: &Net) -> Vec<String> {
    let l = net.local.tcp;
    let h = net.host.tcp;
    vec![
        format!("tcp:{}", addr("127.0.0.1", l)),
        format!("tcp:{}", addr("127.0.0.53", l)),
        format!("tcp:{}", addr("::1", l)),
        format!("tcp:{}", addr("::ffff:127.0.0.1", l)),
        format!("udp-connect:{}", addr("127.0.0.1", l)),
        format!("udp-sendto:{}", addr("::1", l)),
        format!("udp-sendmsg:{}", addr("127.0.0.53", l)),
        format!("udp-sendto:{}", addr("::ffff:127.0.0.1", l)),
        format!("ping:{}", addr("127.0.0.1", 0)),
        format!("ping:{}", addr("::1", 0)),
        // the allow-list
        format!("tcp:{}", addr(HOST4_ALLOWED, h)),
        format!("udp-connect:{}", addr(HOST4_ALLOWED, h)),
        format!("tcp:{}", addr("::ffff:198.18.0.3", h)),
        format!("tcp:{}", addr(HOST6_ALLOWED, h)),
        format!("udp-sendto:{}", addr(HOST6_ALLOWED, h)),
        format!("ping:{}", addr(HOST4_ALLOWED, 0)),
    ]
}

const POLICY: &str = "localhost,198.18.0.3/32,2001:db8::3/128";

fn assert_refused_fast(rs: &[ProbeResult], wanted: &[(String, Expect)], where_: &str) {
    assert_eq!(rs.len(), wanted.len());
    for (r, (p, e)) in rs.iter().zip(wanted) {
        assert_eq!(&r.probe, p);
        if *e == Expect::EgressSilent {
            assert_eq!(
                r.result, "noreply",
                "{where_}: {p} should be dropped: {r:?}"
            );
            continue;
        }
        assert_eq!(
            r.result, "EPERM",
            "{where_}: {p} should be refused with EPERM: {r:?}"
        );
        assert!(
            r.micros < 100_000,
            "{where_}: {p} took {} µs (> 100 ms)",
            r.micros
        );
    }
}

#[test]
fn protocol_matrix_counters_events_and_release() {
    if !inner("protocol_matrix_counters_events_and_release") {
        return;
    }
    let net = Net::up();
    let bpffs = Bpffs::mount();
    let cg = Cgroups::new("matrix");
    let scope = cg.make("user.slice/user-1000.slice/games.slice/cgsplit-620.scope");
    let game = cg.make("user.slice/user-1000.slice/games.slice/cgsplit-620.scope/game");
    let deeper = cg.make("user.slice/user-1000.slice/games.slice/cgsplit-620.scope/game/a/b");
    let outside = cg.make("outside");
    let mut filter = Filter::load(&bpffs.pin_root()).expect("load");
    let policy: NetworkPolicy = POLICY.parse().unwrap();
    let att = filter
        .restrict(Cgroups::open(&scope).as_fd(), &policy)
        .expect("restrict");
    assert_eq!(att.cgroup_id, Cgroups::id(&scope));
    assert_eq!(att.policy, policy);
    assert_eq!(filter.list().unwrap(), vec![att.clone()]);

    let refused = refused_probes(&net);
    let refused_names: Vec<String> = refused.iter().map(|(p, _)| p.clone()).collect();
    let reachable = reachable_probes(&net);
    let ingress = format!("udp-recv:{}", addr("0.0.0.0", net.local.udp + 1));

    // Inside the scope's leaf.
    let inside = probe(Some(&game), 0, &refused_names);
    assert_refused_fast(&inside, &refused, "game/");
    // Events: one per refused probe, in order, with the probe's pid/comm.
    let status = filter.status(att.cgroup_id).unwrap().expect("status");
    let c = status.counters;
    let n_connect = refused
        .iter()
        .filter(|(_, e)| matches!(e, Expect::Connect(_)))
        .count();
    let n_send = refused
        .iter()
        .filter(|(_, e)| matches!(e, Expect::SendMsg(_)))
        .count();
    let n_egress = refused
        .iter()
        .filter(|(_, e)| matches!(e, Expect::Egress | Expect::EgressSilent))
        .count();
    assert_eq!(c.connect_refused, n_connect as u64, "{c:?}");
    assert_eq!(c.sendmsg_refused, n_send as u64, "{c:?}");
    assert_eq!(c.egress_packets, n_egress as u64, "{c:?}");
    assert!(c.egress_bytes >= 28 * n_egress as u64, "{c:?}");
    assert_eq!(c.ingress_packets, 0, "{c:?}");
    assert_eq!(c.events_suppressed + c.events_lost, 0, "{c:?}");
    assert_eq!(status.recent.len(), refused.len(), "{:#?}", status.recent);
    for ((p, want), ev) in refused.iter().zip(&status.recent) {
        let target: std::net::SocketAddr = p.split_once(':').unwrap().1.parse().unwrap();
        assert_eq!(ev.cgroup_id, att.cgroup_id);
        let ip = match (target.ip(), ev.hook) {
            (std::net::IpAddr::V6(v6), Hook::SendMsg4) => v6.to_ipv4_mapped().unwrap().into(),
            (ip, _) => ip,
        };
        assert_eq!(ev.addr, ip, "{p}: {ev:?}");
        match want {
            Expect::Connect(h) | Expect::SendMsg(h) => {
                assert_eq!(ev.hook, *h, "{p}: {ev:?}");
                assert_eq!(ev.port, target.port(), "{p}: {ev:?}");
                let (pid, comm) = ev.task.clone().expect("sock_addr events carry the task");
                assert_eq!(pid, inside[0].pid, "{p}: {ev:?}");
                assert_eq!(comm, "cgsplit-netprob", "{p}: {ev:?}");
            }
            Expect::Egress | Expect::EgressSilent => {
                assert_eq!(ev.hook, Hook::Egress, "{p}: {ev:?}");
                assert_eq!(ev.task, None, "{p}: {ev:?}");
            }
        }
        let proto = if p.starts_with("tcp") {
            6
        } else if p.starts_with("udp") {
            17
        } else if target.is_ipv4() {
            1
        } else {
            58
        };
        assert_eq!(ev.protocol, proto, "{p}: {ev:?}");
    }

    // Loopback and the allow-list stay reachable from inside.
    let ok = probe(Some(&game), 0, &reachable);
    for r in &ok {
        assert_eq!(
            r.result, "ok",
            "inside: {} should be reachable: {r:?}",
            r.probe
        );
    }

    // Ingress: datagrams from the test host to a socket in the scope.
    net.flood.send((net.local.udp + 1, 600)).unwrap();
    let rin = probe(Some(&game), 0, std::slice::from_ref(&ingress));
    assert_eq!(
        rin[0].result, "noreply",
        "ingress should be dropped: {rin:?}"
    );
    let c2 = filter.status(att.cgroup_id).unwrap().unwrap().counters;
    assert!(c2.ingress_packets >= 1, "{c2:?}");
    assert!(c2.ingress_bytes >= 28 * c2.ingress_packets, "{c2:?}");

    // Children, grandchildren and descendant cgroups equally filtered.
    for (cgroup, depth, label) in [
        (&game, 1, "child"),
        (&game, 2, "grandchild"),
        (&deeper, 0, "game/a/b"),
        (&deeper, 2, "grandchild in game/a/b"),
    ] {
        let rs = probe(Some(cgroup), depth, &refused_names);
        assert_refused_fast(&rs, &refused, label);
    }
    let c3 = filter.status(att.cgroup_id).unwrap().unwrap().counters;
    assert_eq!(c3.connect_refused, 5 * n_connect as u64, "{c3:?}");
    assert_eq!(c3.sendmsg_refused, 5 * n_send as u64, "{c3:?}");

    // A process outside reaches everything.
    let out = probe(Some(&outside), 0, &refused_names);
    for r in &out {
        assert_eq!(
            r.result, "ok",
            "outside: {} should be reachable: {r:?}",
            r.probe
        );
    }
    net.flood.send((net.local.udp + 2, 600)).unwrap();
    let rin_out = probe(
        Some(&outside),
        0,
        &[format!("udp-recv:{}", addr("0.0.0.0", net.local.udp + 2))],
    );
    assert_eq!(rin_out[0].result, "ok", "{rin_out:?}");

    print_matrix(&inside, &out, &ok, &refused, (&rin[0], &rin_out[0]));

    // Release detaches: the same probes now get through from the game.
    assert!(filter.release(att.cgroup_id).unwrap());
    assert_eq!(filter.status(att.cgroup_id).unwrap(), None);
    assert!(filter.list().unwrap().is_empty());
    assert!(!filter.release(att.cgroup_id).unwrap());
    let after = probe(Some(&game), 0, &refused_names);
    for r in &after {
        assert_eq!(r.result, "ok", "after release: {r:?}");
    }
    assert_eq!(
        std::fs::read_dir(bpffs.pin_root().join("links"))
            .unwrap()
            .count(),
        0,
        "no link pins left"
    );
}

fn print_matrix(
    inside: &[ProbeResult],
    outside: &[ProbeResult],
    ok: &[ProbeResult],
    refused: &[(String, Expect)],
    ingress: (&ProbeResult, &ProbeResult),
) {
    let out: HashMap<&str, &ProbeResult> = outside.iter().map(|r| (r.probe.as_str(), r)).collect();
    println!(
        "\nprotocol matrix (policy {POLICY}; inside = a process in the scope's game/ leaf, \
         outside = a sibling cgroup; probe = cgsplit-netprobe KIND:ADDR)"
    );
    println!(
        "| probe | inside: result | inside: time | caught by | outside: result | outside: time |"
    );
    println!("|---|---|---|---|---|---|");
    for (r, (_, e)) in inside.iter().zip(refused) {
        let o = out[r.probe.as_str()];
        let by = match e {
            Expect::Connect(h) | Expect::SendMsg(h) => h.name(),
            Expect::Egress => "egress (skb)",
            Expect::EgressSilent => "egress (skb), not reported by the kernel",
        };
        println!(
            "| `{}` | {} | {} µs | {by} | {} | {} µs |",
            r.probe, r.result, r.micros, o.result, o.micros
        );
    }
    let (i, o) = ingress;
    println!(
        "| `{}` (datagrams from 198.18.0.2) | {} | {} µs | ingress (skb) | {} | {} µs |",
        i.probe, i.result, i.micros, o.result, o.micros
    );
    for r in ok {
        println!(
            "| `{}` | {} | {} µs | – (allowed) | | |",
            r.probe, r.result, r.micros
        );
    }
    println!();
}

#[test]
fn loader_restart_keeps_filters_and_counters() {
    if !inner("loader_restart_keeps_filters_and_counters") {
        return;
    }
    let net = Net::up();
    let bpffs = Bpffs::mount();
    let cg = Cgroups::new("restart");
    let scope = cg.make("cgsplit-621.scope");
    let game = cg.make("cgsplit-621.scope/game");
    let tcp = format!("tcp:{}", addr(HOST4, net.host.tcp));
    let id = {
        let mut filter = Filter::load(&bpffs.pin_root()).expect("load");
        let att = filter
            .restrict(Cgroups::open(&scope).as_fd(), &"localhost".parse().unwrap())
            .unwrap();
        let r = probe(Some(&game), 0, std::slice::from_ref(&tcp));
        assert_eq!(r[0].result, "EPERM");
        att.cgroup_id
        // the Filter (programs, link fds, map fds) is dropped here
    };
    // Still filtered with no loader alive: the pinned links hold it.
    let r = probe(Some(&game), 0, std::slice::from_ref(&tcp));
    assert_eq!(r[0].result, "EPERM", "filter must survive the loader");

    let mut filter = Filter::load(&bpffs.pin_root()).expect("reload from pins");
    let list = filter.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].cgroup_id, id);
    assert_eq!(list[0].policy, NetworkPolicy::localhost([]));
    assert!(list[0].alive);
    let st = filter.status(id).unwrap().unwrap();
    assert_eq!(
        st.counters.connect_refused, 2,
        "counters kept: {:?}",
        st.counters
    );
    // Events not yet read by the first loader are still in the pinned ring.
    assert_eq!(st.recent.len(), 2, "{:?}", st.recent);

    // Re-restricting with another policy updates it in place.
    let wider: NetworkPolicy = "localhost,198.18.0.0/24".parse().unwrap();
    let att = filter
        .restrict(Cgroups::open(&scope).as_fd(), &wider)
        .unwrap();
    assert_eq!(att.policy, wider);
    assert_eq!(filter.list().unwrap()[0].policy, wider);
    let r = probe(Some(&game), 0, std::slice::from_ref(&tcp));
    assert_eq!(r[0].result, "ok", "widened policy allows the host");
    let st = filter.status(id).unwrap().unwrap();
    assert_eq!(
        st.counters.connect_refused, 2,
        "counters kept across the update"
    );

    // The new loader can release what the old one attached.
    assert!(filter.release(id).unwrap());
    drop(filter);
    let r = probe(Some(&game), 0, std::slice::from_ref(&tcp));
    assert_eq!(r[0].result, "ok");
}

#[test]
fn gc_collects_removed_cgroups() {
    if !inner("gc_collects_removed_cgroups") {
        return;
    }
    let bpffs = Bpffs::mount();
    let cg = Cgroups::new("gc");
    let keep = cg.make("keep.scope");
    let gone = cg.make("gone.scope");
    let mut filter = Filter::load(&bpffs.pin_root()).unwrap();
    let localhost: NetworkPolicy = "localhost,10.0.0.0/8".parse().unwrap();
    let a = filter
        .restrict(Cgroups::open(&keep).as_fd(), &localhost)
        .unwrap();
    let b = filter
        .restrict(Cgroups::open(&gone).as_fd(), &localhost)
        .unwrap();
    assert_eq!(filter.gc().unwrap(), 0);
    std::fs::remove_dir(&gone).unwrap();
    // The kernel detaches a removed cgroup's links asynchronously.
    let mut collected = 0;
    for _ in 0..100 {
        collected += filter.gc().unwrap();
        if collected > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(collected, 1);
    let list = filter.list().unwrap();
    assert_eq!(
        list.iter().map(|a| a.cgroup_id).collect::<Vec<_>>(),
        vec![a.cgroup_id]
    );
    assert_eq!(filter.status(b.cgroup_id).unwrap(), None);
    assert!(
        !bpffs
            .pin_root()
            .join("links")
            .join(b.cgroup_id.to_string())
            .exists()
    );
    assert!(filter.release(a.cgroup_id).unwrap());
}

#[test]
fn refusal_events_are_rate_limited() {
    if !inner("refusal_events_are_rate_limited") {
        return;
    }
    let bpffs = Bpffs::mount();
    let cg = Cgroups::new("flood");
    let scope = cg.make("cgsplit-622.scope");
    let mut filter = Filter::load(&bpffs.pin_root()).unwrap();
    let att = filter
        .restrict(Cgroups::open(&scope).as_fd(), &"localhost".parse().unwrap())
        .unwrap();
    // No interface needed: sendmsg4 refuses before any routing.
    let flood: Vec<String> = (0..300)
        .map(|i| format!("udp-sendto:192.0.2.{}:9", i % 250 + 1))
        .collect();
    let rs = probe(Some(&scope), 0, &flood);
    assert!(rs.iter().all(|r| r.result == "EPERM"), "{rs:?}");
    let events = filter.drain_events();
    let c = filter.status(att.cgroup_id).unwrap().unwrap().counters;
    assert_eq!(c.sendmsg_refused, 300, "{c:?}");
    // 16 at once, then 8 per second: the flood took well under a second.
    let elapsed_s = rs.iter().map(|r| r.micros).sum::<u64>() as f64 / 1e6;
    let max = 16 + (elapsed_s * 8.0).ceil() as usize + 1;
    assert!(
        (16..=max).contains(&events.len()),
        "{} events (max {max})",
        events.len()
    );
    assert_eq!(c.events_suppressed + events.len() as u64, 300, "{c:?}");
    assert_eq!(c.events_lost, 0);
    filter.release(att.cgroup_id).unwrap();
}

/// The hooks see the global hierarchy: a game in its own cgroup namespace
/// (whose `/proc/self/cgroup` says `0::/`) is filtered all the same, and so
/// is its child.
#[test]
fn filter_holds_inside_a_cgroup_namespace() {
    if !inner("filter_holds_inside_a_cgroup_namespace") {
        return;
    }
    let net = Net::up();
    let bpffs = Bpffs::mount();
    let cg = Cgroups::new("cgns");
    let scope = cg.make("user.slice/user-1000.slice/cgsplit-623.scope");
    let game = cg.make("user.slice/user-1000.slice/cgsplit-623.scope/game");
    let mut filter = Filter::load(&bpffs.pin_root()).unwrap();
    let att = filter
        .restrict(Cgroups::open(&scope).as_fd(), &"localhost".parse().unwrap())
        .unwrap();
    let probes = [
        format!("tcp:{}", addr(HOST4, net.host.tcp)),
        format!("udp-sendto:{}", addr(HOST6, net.host.udp)),
        format!("tcp:{}", addr("127.0.0.1", net.local.tcp)),
    ];
    let out = std::process::Command::new("sh")
        .arg("-ec")
        .arg(r#"echo 0 > "$1/cgroup.procs"; shift; exec unshare --cgroup -- sh -ec 'cat /proc/self/cgroup; exec "$@"' sh "$@""#)
        .arg("sh")
        .arg(&game)
        .arg(env!("CARGO_BIN_EXE_cgsplit-netprobe"))
        .args(["--depth", "1"])
        .args(&probes)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // /proc/self/cgroup (one line per hierarchy on hybrid systems), then
    // the probe's tab-separated lines.
    assert!(
        stdout.lines().any(|l| l == "0::/"),
        "inside its own cgroup namespace: {stdout}"
    );
    let results: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split('\t').nth(1))
        .collect();
    assert_eq!(results, ["EPERM", "EPERM", "ok"], "{stdout}");
    let c = filter.status(att.cgroup_id).unwrap().unwrap().counters;
    assert_eq!((c.connect_refused, c.sendmsg_refused), (1, 1), "{c:?}");
    filter.release(att.cgroup_id).unwrap();
}
