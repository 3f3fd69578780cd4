//! Exec overhead of the shim (issue 6, "Bench"), measured where it runs: as
//! the user, inside `user@<uid>.service`, with a provisioned scope.
//!
//! `shim-bench --shim PATH --scope DIR [--runs N]` starts, one after another,
//! each variant N times (after a warm-up) and prints the median and the 90th
//! percentile wall time of spawn → exit, and the ratio of medians to bare
//! `/bin/true`:
//!
//! - `/bin/true`;
//! - `cgsplit-shim --scope DIR -- /bin/true` (join `DIR/game`, exec);
//! - `cgsplit-shim --scope DIR --kill-steam -- /bin/true` (fork model; no
//!   `steam.pipe` reader, so no request);
//! - `bash -c 'echo 0 > DIR/game/cgroup.procs && exec /bin/true'`;
//! - `systemd-run --user --scope --quiet /bin/true` (a new transient scope
//!   per run; fewer runs, it is two orders of magnitude slower).
//!
//! Run by `cargo bench -p cgsplit-tests --bench shim_exec` inside the testbed.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn time_runs(cmd: &mut Command, runs: usize) -> Vec<Duration> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for _ in 0..runs.min(10) {
        let _ = cmd.status();
    }
    let mut out: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            let st = cmd.status().expect("spawn");
            let d = t.elapsed();
            assert!(st.success(), "{cmd:?}: {st}");
            d
        })
        .collect();
    out.sort();
    out
}

fn pct(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() - 1) * p / 100]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut shim, mut scope, mut runs) = (None, None, 300usize);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--shim" => shim = args.next().map(PathBuf::from),
            "--scope" => scope = args.next().map(PathBuf::from),
            "--runs" => runs = args.next().and_then(|n| n.parse().ok()).unwrap_or(runs),
            _ => {
                eprintln!("usage: shim-bench --shim PATH --scope DIR [--runs N]");
                std::process::exit(2);
            }
        }
    }
    let (Some(shim), Some(scope)) = (shim, scope) else {
        eprintln!("usage: shim-bench --shim PATH --scope DIR [--runs N]");
        std::process::exit(2);
    };
    let leaf = scope.join("game");
    let mut rows: Vec<(String, Vec<Duration>)> = Vec::new();
    rows.push((
        "/bin/true".into(),
        time_runs(&mut Command::new("/bin/true"), runs),
    ));
    let mut c = Command::new(&shim);
    c.arg("--scope").arg(&scope).args(["--", "/bin/true"]);
    rows.push(("cgsplit-shim -- /bin/true".into(), time_runs(&mut c, runs)));
    let mut c = Command::new(&shim);
    c.arg("--scope")
        .arg(&scope)
        .args(["--kill-steam", "--", "/bin/true"]);
    rows.push((
        "cgsplit-shim --kill-steam -- /bin/true".into(),
        time_runs(&mut c, runs),
    ));
    let mut c = Command::new("bash");
    c.args([
        "-c",
        "echo 0 > \"$1/cgroup.procs\" && exec /bin/true",
        "bash",
    ])
    .arg(&leaf);
    rows.push((
        "bash: echo 0 > cgroup.procs; exec /bin/true".into(),
        time_runs(&mut c, runs),
    ));
    let mut c = Command::new("systemd-run");
    c.args(["--user", "--scope", "--quiet", "/bin/true"]);
    rows.push((
        "systemd-run --user --scope /bin/true".into(),
        time_runs(&mut c, (runs / 10).max(10)),
    ));

    let base = pct(&rows[0].1, 50);
    println!(
        "{:<46} {:>6} {:>10} {:>10} {:>9} {:>12}",
        "variant", "runs", "median", "p90", "ratio", "over bare"
    );
    for (name, d) in &rows {
        let med = pct(d, 50);
        println!(
            "{:<46} {:>6} {:>7.3} ms {:>7.3} ms {:>8.2}x {:>9.3} ms",
            name,
            d.len(),
            med.as_secs_f64() * 1e3,
            pct(d, 90).as_secs_f64() * 1e3,
            med.as_secs_f64() / base.as_secs_f64(),
            (med.as_secs_f64() - base.as_secs_f64()) * 1e3,
        );
    }
    let shim_over = pct(&rows[1].1, 50).saturating_sub(base);
    println!(
        "goal: cgsplit-shim within 1 ms of bare exec: {} ({:.3} ms over)",
        if shim_over <= Duration::from_millis(1) {
            "met"
        } else {
            "MISSED"
        },
        shim_over.as_secs_f64() * 1e3
    );
}
