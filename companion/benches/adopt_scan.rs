//! Cost of one adoption scan (issue 7, item 4): [`adopt::strays`] over the
//! real `/proc` of this machine, as the watcher runs it every
//! [`adopt::HOT_POLL`] for [`adopt::HOT_WINDOW`] after a new scope and every
//! `WATCH_PERIOD` otherwise. Prints figures; no pass/fail.
//!
//! `cargo bench -p cgsplit-companion --bench adopt_scan`. The scan reads
//! each process's owner and `cgroup`, and `environ` only for processes inside
//! the user manager's tree; run as root it sees every process of the host,
//! so it is the upper bound for the number of processes listed.

use std::path::Path;
use std::time::{Duration, Instant};

use cgsplit_companion::adopt;
use cgsplit_core::AppId;

fn main() {
    let uid = nix::unistd::getuid().as_raw();
    let root = cgsplit_core::scope::user_manager_cgroup(uid);
    let apps = [AppId::new(620).expect("nonzero")];
    let procs = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                .count()
        })
        .unwrap_or(0);
    let n = 200;
    let mut d: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(adopt::strays(Path::new("/proc"), &root, uid, &apps));
            t.elapsed()
        })
        .collect();
    d.sort();
    let us = |x: Duration| x.as_secs_f64() * 1e6;
    let mean = d.iter().map(|x| us(*x)).sum::<f64>() / n as f64;
    println!(
        "adoption scan of /proc ({procs} processes, uid {uid}): mean {mean:.0} µs  median {:.0} µs  p95 {:.0} µs  max {:.0} µs",
        us(d[n / 2]),
        us(d[n * 95 / 100]),
        us(d[n - 1])
    );
    let hot = adopt::HOT_WINDOW.as_secs_f64() / adopt::HOT_POLL.as_secs_f64();
    println!(
        "hot window after a new scope: {hot:.0} scans in {:?} = {:.1} ms of CPU; idle: one scan per 5 s",
        adopt::HOT_WINDOW,
        hot * mean / 1e3
    );
}
