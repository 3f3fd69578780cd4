//! How long the helper takes, end to end over a real private system bus,
//! as an unprivileged caller: Restrict of one more game's scope (programs
//! already loaded: D-Bus round trip + caller lookup + openat2 + checks +
//! attach of six programs + pins + xattr), Status, Release; and the helper's
//! cold start (process start → name owned, including loading the programs).
//!
//! `cargo bench -p cgsplit-netd --bench restrict` as root; prints figures.
//! The caller half re-executes this binary under `setpriv` as the test user.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

const CLIENT_ENV: &str = "CGSPLIT_NETD_BENCH_CLIENT";
const SCOPES: u32 = 40;
const FIRST_APP: u32 = 3000;

fn main() {
    if let Ok(spec) = std::env::var(CLIENT_ENV) {
        client(&spec);
        return;
    }
    let Some(()) = support::can_run() else { return };

    let mut cold = Vec::new();
    let mut env = support::Env::without_netd(1000);
    for _ in 0..5 {
        let t = Instant::now();
        env.start_netd();
        cold.push(t.elapsed());
        env.stop_netd();
    }
    env.start_netd();

    let a = env.a.clone();
    let mut paths = Vec::new();
    for app in FIRST_APP..FIRST_APP + SCOPES {
        let scope = a.scope(app);
        let dir = env.dir(&scope);
        std::fs::create_dir_all(dir.join("game")).unwrap();
        nix::unistd::chown(&dir, Some(a.uid.into()), Some(a.gid.into())).unwrap();
        nix::unistd::chown(&dir.join("game"), Some(a.uid.into()), Some(a.gid.into())).unwrap();
        paths.push(scope);
    }
    let out = std::process::Command::new("setpriv")
        .arg(format!("--reuid={}", a.uid))
        .arg(format!("--regid={}", a.gid))
        .arg("--clear-groups")
        .arg(std::env::current_exe().unwrap())
        .env(CLIENT_ENV, format!("{}\n{}", env.bus, paths.join("\n")))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "client: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let series = |name: &str| -> Vec<Duration> {
        text.lines()
            .filter_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .map(Duration::from_nanos)
            .collect()
    };
    println!(
        "cgsplit-netd over a private system bus, caller uid {} (unprivileged)",
        a.uid
    );
    report("helper cold start (spawn → name owned)", cold);
    for name in ["restrict", "status", "release"] {
        report(
            &format!("{name} one more scope (D-Bus round trip)"),
            series(name),
        );
    }
}

fn report(what: &str, mut d: Vec<Duration>) {
    assert!(!d.is_empty(), "no samples for {what}");
    d.sort();
    let ms = |x: Duration| x.as_secs_f64() * 1e3;
    println!(
        "{what:<48} n={:<3} median {:>7.3} ms  p90 {:>7.3} ms  max {:>7.3} ms",
        d.len(),
        ms(d[d.len() / 2]),
        ms(d[(d.len() * 9) / 10]),
        ms(d[d.len() - 1])
    );
}

/// Runs as the test user: one connection, then each call timed.
fn client(spec: &str) {
    let mut lines = spec.lines();
    let bus = lines.next().unwrap();
    let paths: Vec<&str> = lines.collect();
    let conn = zbus::blocking::connection::Builder::address(bus)
        .unwrap()
        .build()
        .unwrap();
    let proxy =
        zbus::blocking::Proxy::new(&conn, support::DEST, support::PATH, support::DEST).unwrap();
    let timed = |name: &str, args: &dyn Fn() -> zbus::Result<zbus::message::Message>| {
        let t = Instant::now();
        args().unwrap_or_else(|e| panic!("{name}: {e}"));
        println!("{name} {}", t.elapsed().as_nanos());
    };
    for p in &paths {
        timed("restrict", &|| {
            proxy.call_method("Restrict", &(p, "localhost"))
        });
    }
    for p in &paths {
        timed("status", &|| proxy.call_method("Status", &(p,)));
    }
    for p in &paths {
        timed("release", &|| proxy.call_method("Release", &(p,)));
    }
}
