//! Provisioning time per game, for 1 and for 50 games, side by side with
//! `systemd-run --user --scope` doing the same (issue 5, "Bench"). Prints
//! figures; no pass/fail.
//!
//! `cargo bench -p cgsplit-companion --bench provision` (as root, with
//! `cargo build --release --workspace --bins` done first: it needs
//! `cgsplit-testbed` from the same target directory). The bench re-runs
//! itself inside the testbed (a private, real `systemd --user` for an
//! unprivileged uid) with `--inner`, where it measures, per game:
//!
//! - `call→job done`: `StartTransientUnit` sent until its `JobRemoved`
//!   arrived (the companion's own D-Bus connection, already open);
//! - `provision`: the whole library call for one game (keeper spawn,
//!   `StartTransientUnit` + `JobRemoved`, `ControlGroup`, `keeper/` + `game/`);
//! - `cgsplit provision`: the CLI, process start to exit;
//! - `systemd-run --scope`: `systemd-run --user --scope --slice=games.slice
//!   -p Delegate=yes --collect true`, process start to exit (it also forks
//!   and execs `true` and waits for it);
//! - `cgsplit up, run/n`: one `cgsplit up` of n configured games (with
//!   limits), wall time divided by n; `again`: the idempotent second run.

use std::process::Command;
use std::time::{Duration, Instant};

use cgsplit_companion::systemd::{UserManager, scope_properties};
use cgsplit_companion::{NetdLink, cgroupfs, keeper};
use cgsplit_core::AppId;

const CGSPLIT: &str = env!("CARGO_BIN_EXE_cgsplit");

fn stats(name: &str, n: usize, d: &mut [Duration]) {
    d.sort();
    let ms = |x: Duration| x.as_secs_f64() * 1e3;
    let mean = d.iter().map(|x| ms(*x)).sum::<f64>() / d.len() as f64;
    let p = |q: f64| ms(d[((d.len() as f64 - 1.0) * q).round() as usize]);
    println!(
        "{name:<24} {n:>3} game(s)  mean {mean:>6.2} ms  median {:>6.2} ms  p95 {:>6.2} ms  max {:>6.2} ms  total {:>7.1} ms",
        p(0.5),
        p(0.95),
        ms(*d.last().unwrap()),
        d.iter().map(|x| ms(*x)).sum::<f64>()
    );
}

fn timed(cmd: &mut Command) -> Duration {
    let t = Instant::now();
    let st = cmd.status().expect("spawn");
    let d = t.elapsed();
    assert!(st.success(), "{cmd:?}: {st}");
    d
}

fn inner() {
    let mgr = UserManager::connect().expect("user manager");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut netd = NetdLink::default();
    // Warm up: games.slice exists, the manager has seen one scope.
    let warm = cgsplit_config::Config::default().game(AppId::new(1).unwrap());
    cgsplit_companion::provision_with(&mgr, &warm, &mountinfo, &mut netd).unwrap();

    for n in [1usize, 50] {
        let base = 1000 * n as u32;
        let (mut call, mut full, mut keepers) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..n as u32 {
            let app = AppId::new(base + i).unwrap();
            let unit = cgsplit_core::scope::scope_unit(app);
            let t0 = Instant::now();
            let k = keeper::spawn().unwrap();
            let props = scope_properties(app, k.id(), &[]);
            let t1 = Instant::now();
            mgr.start_transient(&unit, &props, Duration::from_secs(30))
                .unwrap();
            let t2 = Instant::now();
            let st = mgr.unit_state(&unit).unwrap().unwrap();
            let cg = mgr.control_group(&unit, &st.path).unwrap();
            let dir = cgsplit_core::mountinfo::cgroup_dir(&mountinfo, &cg).unwrap();
            cgroupfs::ensure_layout(&dir, Some(k.id())).unwrap();
            let t3 = Instant::now();
            call.push(t2 - t1);
            full.push(t3 - t0);
            keepers.push(k);
        }
        stats("call→job done", n, &mut call);
        stats("provision (library)", n, &mut full);
        for i in 0..n as u32 {
            cgsplit_companion::release_with(&mgr, AppId::new(base + i).unwrap()).unwrap();
        }
        // Stopping the scopes killed the keepers; reap them.
        for mut k in keepers {
            let _ = k.wait();
        }

        let mut cli: Vec<Duration> = (0..n as u32)
            .map(|i| {
                timed(
                    Command::new(CGSPLIT)
                        .args(["provision", "--app", &(base + 500 + i).to_string()])
                        .stdout(std::process::Stdio::null()),
                )
            })
            .collect();
        stats("cgsplit provision (CLI)", n, &mut cli);
        for i in 0..n as u32 {
            cgsplit_companion::release_with(&mgr, AppId::new(base + 500 + i).unwrap()).unwrap();
        }

        let mut sr: Vec<Duration> = (0..n)
            .map(|i| {
                timed(Command::new("systemd-run").args([
                    "--user",
                    "--scope",
                    "--quiet",
                    "--collect",
                    "--slice=games.slice",
                    "-p",
                    "Delegate=yes",
                    &format!("--unit=bench-sr-{n}-{i}.scope"),
                    "true",
                ]))
            })
            .collect();
        stats("systemd-run --scope", n, &mut sr);

        // `cgsplit up` for n configured games (with limits), then again
        // (every scope reused, limits compared): whole process, per game.
        let cfg = std::env::temp_dir().join(format!("cgsplit-bench-{n}.toml"));
        let text: String = (0..n)
            .map(|i| {
                format!(
                    "[games.{}]\nmemory_max = \"4G\"\ncpu_weight = 200\n",
                    base + 800 + i as u32
                )
            })
            .collect();
        std::fs::write(&cfg, text).unwrap();
        let up = || {
            timed(
                Command::new(CGSPLIT)
                    .args(["up", "--no-flatpak", "--config"])
                    .arg(&cfg)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null()),
            ) / n as u32
        };
        stats("cgsplit up, run/n", n, &mut [up()]);
        stats("cgsplit up again, run/n", n, &mut [up()]);
        timed(
            Command::new(CGSPLIT)
                .arg("down")
                .stdout(std::process::Stdio::null()),
        );
    }
}

fn main() {
    // keeper::spawn re-runs the current executable as the keeper.
    if std::env::args().nth(1).as_deref() == Some(keeper::KEEPER_ARG) {
        keeper::run();
    }
    if std::env::args().any(|a| a == "--inner") {
        inner();
        return;
    }
    // `cargo bench` passes `--bench`; anything else (e.g. `cargo test`
    // running benches in test mode) does nothing.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let dir = std::path::Path::new(CGSPLIT).parent().unwrap();
    let testbed = dir.join("cgsplit-testbed");
    if !testbed.is_file() {
        eprintln!(
            "provision bench: {} is not built; run `cargo build --release --workspace --bins` first",
            testbed.display()
        );
        std::process::exit(1);
    }
    let me = std::env::current_exe().unwrap();
    println!(
        "provisioning time per game inside a private systemd --user (testbed), unprivileged uid"
    );
    let st = Command::new(&testbed)
        .args(["--timeout", "300", "--"])
        .arg(&me)
        .arg("--inner")
        .status()
        .expect("run the testbed");
    std::process::exit(st.code().unwrap_or(1));
}
