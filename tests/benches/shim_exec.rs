//! `cargo bench -p cgsplit-tests --bench shim_exec`: the shim's exec overhead
//! table (issue 6, "Bench"), measured by `shim-bench` inside a testbed run
//! (real `systemd --user`, a provisioned scope, the static shim).
//!
//! Needs root, `cargo build --workspace --bins` (same profile: `cargo bench`
//! builds this crate's binaries with the bench profile, the companion must be
//! built with `cargo build --release -p cgsplit-companion`) and `cargo build-shim`.

use cgsplit_tests::testbed::{self, Testbed};

fn main() {
    let Some(bed) = Testbed::or_skip() else {
        return;
    };
    let Some(_shim) = testbed::static_shim_or_skip() else {
        return;
    };
    cgsplit_tests::bins::bin("cgsplit");
    cgsplit_tests::bins::bin("shim-bench");
    let runs = std::env::var("SHIM_BENCH_RUNS").unwrap_or_else(|_| "300".into());
    let out = bed.timeout_secs(600).run_sh(&format!(
        r#"scope=$("$CGSPLIT_BIN/cgsplit" provision --app 620) || exit 91
"$CGSPLIT_BIN/shim-bench" --shim "$CGSPLIT_SHIM" --scope "/sys/fs/cgroup$scope" --runs {runs}
rc=$?
"$CGSPLIT_BIN/cgsplit" release --app 620 >/dev/null 2>&1
exit $rc"#
    ));
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    let shim =
        std::fs::metadata(testbed::static_shim_or_skip().expect("checked above")).map(|m| m.len());
    let empty = testbed::static_shim_or_skip()
        .and_then(|p| p.parent().map(|d| d.join("examples/empty")))
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| m.len());
    match (shim, empty) {
        (Ok(s), Some(e)) => println!(
            "size: cgsplit-shim {s} bytes, empty static-pie program (same profile) {e} bytes: {:+.1} % (goal: within 15 %)",
            (s as f64 / e as f64 - 1.0) * 100.0
        ),
        _ => {
            println!("size: build the baseline with `cargo build-shim --example empty` to compare")
        }
    }
    assert!(out.status.success(), "bench run failed: {:?}", out.status);
}
