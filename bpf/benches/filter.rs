//! Benchmarks of the network filter, printed as a table (`cargo bench -p
//! cgsplit-bpf`; root only). Runs in fresh mount + network namespaces
//! (`unshare --mount --net`) with its own bpffs and cgroups under
//! `<cgroup2 mount>/cgsplit-bpftest-bench-*`; all traffic is on the
//! namespace's loopback.
//!
//! - loopback TCP throughput (1 s bulk send to 127.0.0.1) and connect
//!   latency, from a process in a filtered scope vs. one in an unfiltered
//!   sibling, interleaved rounds in one run (goal: throughput ratio ≥ 0.97);
//! - time to restrict one more cgroup with the programs loaded (goal ≤ 5 ms)
//!   and to release it;
//! - cold load of all six programs (`Filter::load`, goal ≤ 100 ms).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cgsplit_bpf::Filter;

const INNER: &str = "CGSPLIT_BPF_BENCH_INNER";
const CLIENT: &str = "CGSPLIT_BPF_BENCH_CLIENT";
const ROUNDS: usize = 6;
const CONNECTS: usize = 2000;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Client side (a separate process, joined to a cgroup): prints one number.
fn client(spec: &str) {
    let (mode, addr) = spec.split_once(' ').expect("MODE ADDR");
    match mode {
        "bulk" => {
            let mut s = TcpStream::connect(addr).expect("connect");
            let buf = vec![0x5au8; 128 * 1024];
            let start = Instant::now();
            let mut sent = 0u64;
            while start.elapsed() < Duration::from_secs(1) {
                s.write_all(&buf).expect("write");
                sent += buf.len() as u64;
            }
            println!("{}", sent as f64 / start.elapsed().as_secs_f64());
        }
        "connect" => {
            let mut times = Vec::with_capacity(CONNECTS);
            for _ in 0..CONNECTS {
                let t = Instant::now();
                let s = TcpStream::connect(addr).expect("connect");
                times.push(t.elapsed().as_secs_f64() * 1e6);
                drop(s);
            }
            let m = median(&mut times);
            let p99 = pct(&mut times, 0.99);
            println!("{m} {p99}");
        }
        _ => panic!("unknown client mode {mode}"),
    }
}

fn run_client(cgroup: &Path, mode: &str, addr: &str) -> Vec<f64> {
    let exe = std::env::current_exe().unwrap();
    let procs = cgroup.join("cgroup.procs");
    let out = Command::new("sh")
        .arg("-c")
        .arg("echo 0 > \"$1\" && exec \"$2\"")
        .arg("sh")
        .arg(&procs)
        .arg(&exe)
        .env(CLIENT, format!("{mode} {addr}"))
        .stderr(Stdio::inherit())
        .output()
        .expect("client");
    assert!(out.status.success(), "client failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect()
}

fn serve(l: TcpListener, bulk: bool) {
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            if bulk {
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 256 * 1024];
                    while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
                });
            }
        }
    });
}

fn inner() {
    let sh = |c: &str| {
        assert!(
            Command::new("sh")
                .args(["-ec", c])
                .status()
                .unwrap()
                .success()
        )
    };
    sh("ip link set lo up");
    let bpffs = tempfile::Builder::new()
        .prefix("cgsplit-bpftest-bench-bpffs-")
        .tempdir()
        .unwrap();
    cgsplit_bpf::sys::mount_bpffs_if_absent(bpffs.path()).unwrap();
    let pin_root = bpffs.path().join("cgsplit");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = cgsplit_core::mountinfo::cgroup_dir(&mountinfo, "/")
        .expect("a cgroup2 mount showing the root cgroup")
        .join(format!("cgsplit-bpftest-bench-{}", std::process::id()));
    let filtered = root.join("filtered.scope");
    let plain = root.join("plain.scope");
    for d in [&root, &filtered, &plain] {
        std::fs::create_dir(d).unwrap();
    }

    // aya probes kernel features once per process, on the first load.
    let t = Instant::now();
    let _ = aya::features();
    let probe_ms = t.elapsed().as_secs_f64() * 1e3;
    // Cold load: the first creates and pins the maps, the rest reuse them.
    let mut loads = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let f = Filter::load(&pin_root).unwrap();
        loads.push(t.elapsed().as_secs_f64() * 1e3);
        drop(f);
    }
    let first_load = loads[0];
    if std::env::var("CGSPLIT_BPF_BENCH").as_deref() == Ok("load") {
        println!("aya feature probe {probe_ms:.1} ms; Filter::load ms: {loads:.1?}");
        let _ = nix::mount::umount2(bpffs.path(), nix::mount::MntFlags::MNT_DETACH);
        for d in [&filtered, &plain, &root] {
            let _ = std::fs::remove_dir(d);
        }
        return;
    }
    let mut filter = Filter::load(&pin_root).unwrap();
    filter.set_max_per_uid(1000);

    // Restrict one more cgroup, with 0..N already restricted.
    let mut restrict = Vec::new();
    let mut release = Vec::new();
    let mut ids = Vec::new();
    let policy = "localhost,192.168.0.0/16,fd00::/8".parse().unwrap();
    for i in 0..50 {
        let d = root.join(format!("g{i}.scope"));
        std::fs::create_dir(&d).unwrap();
        let fd = std::fs::File::open(&d).unwrap();
        let t = Instant::now();
        let a = filter.restrict(fd.as_fd(), &policy).unwrap();
        restrict.push(t.elapsed().as_secs_f64() * 1e3);
        ids.push(a.cgroup_id);
    }
    for id in &ids {
        let t = Instant::now();
        filter.release(*id).unwrap();
        release.push(t.elapsed().as_secs_f64() * 1e3);
    }

    // Traffic.
    let fd = std::fs::File::open(&filtered).unwrap();
    filter
        .restrict(fd.as_fd(), &"localhost".parse().unwrap())
        .unwrap();
    let bulk_l = TcpListener::bind("127.0.0.1:0").unwrap();
    let bulk_addr = bulk_l.local_addr().unwrap().to_string();
    serve(bulk_l, true);
    let conn_l = TcpListener::bind("127.0.0.1:0").unwrap();
    let conn_addr = conn_l.local_addr().unwrap().to_string();
    serve(conn_l, false);
    let (mut tp_plain, mut tp_filt) = (Vec::new(), Vec::new());
    let (mut c_plain, mut c_filt, mut c99_plain, mut c99_filt) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // Alternate which side goes first, so neither gains from order.
        let (tp, tf, p, f) = if round % 2 == 0 {
            let tp = run_client(&plain, "bulk", &bulk_addr)[0];
            let tf = run_client(&filtered, "bulk", &bulk_addr)[0];
            let p = run_client(&plain, "connect", &conn_addr);
            let f = run_client(&filtered, "connect", &conn_addr);
            (tp, tf, p, f)
        } else {
            let tf = run_client(&filtered, "bulk", &bulk_addr)[0];
            let tp = run_client(&plain, "bulk", &bulk_addr)[0];
            let f = run_client(&filtered, "connect", &conn_addr);
            let p = run_client(&plain, "connect", &conn_addr);
            (tp, tf, p, f)
        };
        tp_plain.push(tp);
        tp_filt.push(tf);
        c_plain.push(p[0]);
        c99_plain.push(p[1]);
        c_filt.push(f[0]);
        c99_filt.push(f[1]);
    }
    let st = filter.status(cgsplit_ids(&filtered)).unwrap().unwrap();
    assert_eq!(st.counters.egress_packets + st.counters.connect_refused, 0);

    let tpp = median(&mut tp_plain);
    let tpf = median(&mut tp_filt);
    println!(
        "\ncgsplit-bpf benchmark (kernel {}, {ROUNDS} interleaved rounds, medians)",
        kernel()
    );
    println!("| figure | without filter | with filter | ratio / goal |");
    println!("|---|---|---|---|");
    println!(
        "| loopback TCP throughput (1 s bulk, 128 KiB writes) | {:.2} GB/s | {:.2} GB/s | {:.3} (goal ≥ 0.97) |",
        tpp / 1e9,
        tpf / 1e9,
        tpf / tpp
    );
    let cp = median(&mut c_plain);
    let cf = median(&mut c_filt);
    println!(
        "| loopback TCP connect latency, median of {CONNECTS} | {cp:.1} µs | {cf:.1} µs | {:.3} |",
        cf / cp
    );
    println!(
        "| loopback TCP connect latency, p99 | {:.1} µs | {:.1} µs | |",
        median(&mut c99_plain),
        median(&mut c99_filt)
    );
    let mut r = restrict.clone();
    println!(
        "| restrict one more cgroup (programs loaded; 0→50 restricted) | | median {:.2} ms, p90 {:.2} ms, max {:.2} ms | goal ≤ 5 ms |",
        median(&mut r),
        pct(&mut r, 0.9),
        restrict.iter().cloned().fold(0.0, f64::max)
    );
    println!(
        "| release one cgroup | | median {:.2} ms, max {:.2} ms | |",
        median(&mut release.clone()),
        release.iter().cloned().fold(0.0, f64::max)
    );
    let mut warm = loads[1..].to_vec();
    println!(
        "| cold load of all six programs (Filter::load) | | first {first_load:.1} ms, then median {:.1} ms, max {:.1} ms | goal ≤ 100 ms |",
        median(&mut warm),
        warm.iter().cloned().fold(0.0, f64::max)
    );
    println!();

    filter.release(cgsplit_ids(&filtered)).unwrap();
    drop(filter);
    for i in 0..50 {
        let _ = std::fs::remove_dir(root.join(format!("g{i}.scope")));
    }
    for d in [&filtered, &plain, &root] {
        for _ in 0..50 {
            if std::fs::remove_dir(d).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = nix::mount::umount2(bpffs.path(), nix::mount::MntFlags::MNT_DETACH);
}

fn cgsplit_ids(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).unwrap().ino()
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn main() {
    if let Ok(spec) = std::env::var(CLIENT) {
        return client(&spec);
    }
    if std::env::var_os(INNER).is_some() {
        return inner();
    }
    if !nix::unistd::geteuid().is_root() {
        if std::env::var_os("CI").is_some() {
            panic!("the filter benchmark needs root, and CI is set");
        }
        eprintln!("skipping: the filter benchmark needs root (CAP_BPF, cgroups)");
        return;
    }
    // `cargo test --benches` runs bench targets with no `--bench` flag:
    // keep that cheap (nothing to test here).
    if !std::env::args().any(|a| a == "--bench") {
        println!("cgsplit-bpf bench: run with `cargo bench -p cgsplit-bpf`");
        return;
    }
    let status = Command::new("unshare")
        .args(["--mount", "--net", "--fork", "--"])
        .arg(std::env::current_exe().unwrap())
        .env(INNER, "1")
        .status()
        .expect("unshare");
    assert!(status.success(), "benchmark failed");
}
