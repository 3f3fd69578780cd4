//! Benchmark of one `LaunchOptions` edit on a large, realistic localconfig.vdf.
//!
//! Generates a ~10 MB file with 5,000 app blocks (Steam's shapes: playtime
//! counters, `cloud` sub-blocks, long JSON-ish values with escaped quotes and
//! backslashes) inside a temp Steam tree, then reports:
//! - the edit in memory: read + lex + splice + streaming check + read-back
//!   ([`localconfig::set`]), median of N runs;
//! - `fsync` of a file that size, alone;
//! - the whole `cgsplit-install --game N` process (release build): discovery,
//!   account, planning, compat tool files, state, backup hard link, temp
//!   file + fsync + rename + directory fsync: median wall time, CPU time and
//!   peak RSS (`ru_maxrss` of the child) against the file size;
//! - Python's `vdf` package (PyPI) load + dump of the same file
//!   (`benches/python_vdf.py`), and the ratio. Skipped with a note when
//!   `python3 -c 'import vdf'` fails (`pip install vdf`).
//!
//! Run: `cargo bench -p cgsplit-install` (`CGSPLIT_BENCH_RUNS` sets N,
//! default 7). Under `cargo test` it runs once on a 50-app file.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use cgsplit_install::fsio;
use cgsplit_install::steam::localconfig;

/// Deterministic xorshift so every run measures the same file.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A localconfig.vdf of `apps` app blocks, Steam-style tabs and layout.
fn generate(apps: u32) -> Vec<u8> {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut s = String::with_capacity(11 << 20);
    s.push_str("\"UserLocalConfigStore\"\n{\n\t\"streaming_v2\"\n\t{\n\t\t\"EnableStreaming\"\t\t\"0\"\n\t}\n");
    s.push_str("\t\"friends\"\n\t{\n\t\t\"PersonaName\"\t\t\"bench \\\"user\\\"\"\n\t}\n");
    s.push_str("\t\"Software\"\n\t{\n\t\t\"Valve\"\n\t\t{\n\t\t\t\"Steam\"\n\t\t\t{\n");
    s.push_str("\t\t\t\t\"SurveyDate\"\t\t\"2024-01-01\"\n\t\t\t\t\"apps\"\n\t\t\t\t{\n");
    let ind = "\t\t\t\t\t";
    for i in 0..apps {
        let id = 10 + i * 10 + r.below(7) as u32;
        let _ = write!(s, "{ind}\"{id}\"\n{ind}{{\n");
        let _ = writeln!(
            s,
            "{ind}\t\"LastPlayed\"\t\t\"{}\"",
            1_600_000_000 + r.below(1 << 26)
        );
        let _ = writeln!(s, "{ind}\t\"Playtime\"\t\t\"{}\"", r.below(100_000));
        let _ = writeln!(s, "{ind}\t\"Playtime2wks\"\t\t\"{}\"", r.below(1_000));
        if r.below(3) == 0 {
            let _ = writeln!(
                s,
                "{ind}\t\"LaunchOptions\"\t\t\"-novid +exec \\\"my cfg.cfg\\\" DXVK_HUD=fps %command% C:\\\\x\""
            );
        }
        let _ = write!(
            s,
            "{ind}\t\"cloud\"\n{ind}\t{{\n{ind}\t\t\"last_sync_state\"\t\t\"synchronized\"\n{ind}\t\t\"quota_bytes\"\t\t\"{}\"\n{ind}\t}}\n",
            r.below(1 << 30)
        );
        // Long JSON-ish values, as in "ViewedLaunchEULA"/"BadgeData"/achievement caches.
        let n = 3 + r.below(6);
        let mut json = String::from("{");
        for k in 0..n * 4 {
            let _ = write!(
                json,
                "\\\"k{k}\\\":{{\\\"t\\\":{},\\\"s\\\":\\\"{:x}\\\",\\\"p\\\":\\\"C:\\\\\\\\Games\\\\\\\\{id}\\\"}},",
                r.below(1 << 31),
                r.next()
            );
        }
        json.push('}');
        let _ = writeln!(s, "{ind}\t\"AchievementCache\"\t\t\"{json}\"");
        if r.below(4) == 0 {
            let _ = writeln!(
                s,
                "{ind}\t\"BadgeData\"\t\t\"{:032x}{:032x}\"",
                r.next(),
                r.next()
            );
        }
        let _ = writeln!(s, "{ind}}}");
    }
    s.push_str("\t\t\t\t}\n\t\t\t}\n\t\t}\n\t}\n}\n");
    s.into_bytes()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A static ELF for `--shim`: the built shim if there is one, else busybox.
fn shim() -> std::path::PathBuf {
    let ws = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut c = vec![ws.join("target/x86_64-unknown-linux-gnu/shim/cgsplit-shim")];
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        c.insert(
            0,
            std::path::PathBuf::from(t).join("x86_64-unknown-linux-gnu/shim/cgsplit-shim"),
        );
    }
    c.push("/bin/busybox".into());
    c.into_iter()
        .find(|p| {
            std::fs::read(p)
                .map(|b| cgsplit_install::elf::check_static(&b).is_ok())
                .unwrap_or(false)
        })
        .expect("a static ELF for --shim (cargo build-shim, or busybox-static)")
}

/// `edit --launch CMD ARGS…`: run CMD, wait for it with `wait4(2)` and
/// print its own peak RSS and CPU time. A separate small process, because
/// Linux carries the exec'ing process's old memory high-water mark into
/// `ru_maxrss` (`exec_mmap`), so spawning straight from this 40 MB bench
/// would report the bench's size, not the installer's.
fn launch(cmd: &[String]) -> ! {
    let child = std::process::Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let mut status = 0;
    // SAFETY: an all-zero `rusage` is a valid value to be overwritten.
    let mut ru: nix::libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `child.id()` is our unreaped child; both pointers are valid.
    let r = unsafe { nix::libc::wait4(child.id() as i32, &mut status, 0, &mut ru) };
    assert_eq!(r, child.id() as i32, "wait4");
    let cpu_us = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1_000_000
        + ru.ru_utime.tv_usec
        + ru.ru_stime.tv_usec;
    println!(
        "status={status} maxrss_kib={} cpu_us={cpu_us}",
        ru.ru_maxrss
    );
    std::process::exit(0);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--launch") {
        launch(&args[i + 1..]);
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then
    // run one tiny iteration only, to keep the test suite fast.
    let bench = std::env::args().any(|a| a == "--bench");
    let runs: usize = std::env::var("CGSPLIT_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if bench { 7 } else { 1 });
    let apps = if bench { 5_000 } else { 50 };

    let src = generate(apps);
    let appid = {
        let text = std::str::from_utf8(&src).unwrap();
        let at = text.rfind("\n\t\t\t\t\t\"").unwrap() + 7;
        text[at..at + text[at..].find('"').unwrap()]
            .parse::<u32>()
            .unwrap()
    };

    // A Steam tree: ~/.steam/root -> ~/.local/share/Steam, one account.
    let tmp = tempfile::tempdir().expect("temp dir");
    let home = tmp.path().join("home");
    let root = home.join(".local/share/Steam");
    let cfg = root.join("userdata/39734273/config");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::create_dir_all(home.join(".steam")).unwrap();
    std::fs::create_dir_all(root.join("steamapps")).unwrap();
    std::os::unix::fs::symlink(&root, home.join(".steam/root")).unwrap();
    let path = cfg.join("localconfig.vdf");
    std::fs::write(&path, &src).unwrap();
    let state = tmp.path().join("state");
    if std::env::var_os("CGSPLIT_BENCH_KEEP").is_some() {
        println!("keeping the tree in {}", tmp.path().display());
    }

    // 1. The edit in memory (reading the file from the page cache).
    let value = "cgsplit-shim -- %command%";
    let mut mem = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let bytes = fsio::read(&path).unwrap();
        let r = localconfig::set(&bytes, appid, value).expect("set");
        mem.push(t.elapsed());
        assert!(r.changed);
    }
    // 2. fsync alone.
    let probe = tmp.path().join("fsync-probe");
    let mut fsyncs = Vec::new();
    for _ in 0..runs {
        std::fs::write(&probe, &src).unwrap();
        let f = std::fs::File::open(&probe).unwrap();
        let t = Instant::now();
        f.sync_all().unwrap();
        fsyncs.push(t.elapsed());
    }
    std::fs::remove_file(&probe).unwrap();
    // 3. The whole process.
    let shim = shim();
    let bin = env!("CARGO_BIN_EXE_cgsplit-install");
    let mut wall = Vec::new();
    let mut cpu = Vec::new();
    let mut max_rss_kib = 0u64;
    let me = std::env::current_exe().expect("bench path");
    for _ in 0..runs {
        std::fs::write(&path, &src).unwrap();
        let _ = std::fs::remove_dir_all(&state);
        let t = Instant::now();
        let out = std::process::Command::new(&me)
            .arg("--launch")
            .arg(bin)
            .args(["--game", &appid.to_string(), "--shim"])
            .arg(&shim)
            .env("HOME", &home)
            .env("XDG_STATE_HOME", &state)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env_remove("CGSPLIT_INSTALL_CRASH_AT")
            .output()
            .expect("run cgsplit-install");
        wall.push(t.elapsed());
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |k: &str| -> u64 {
            text.split_whitespace()
                .find_map(|w| w.strip_prefix(k))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {k} in {text:?}"))
        };
        assert_eq!(
            field("status="),
            0,
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        max_rss_kib = max_rss_kib.max(field("maxrss_kib="));
        cpu.push(Duration::from_micros(field("cpu_us=")));
    }
    assert!(
        localconfig::read(&std::fs::read(&path).unwrap(), appid)
            .unwrap()
            .unwrap()
            .value
            .contains("cgsplit-shim")
    );

    let size = src.len() as f64;
    let mem_ms = ms(median(mem));
    println!(
        "file: {} bytes ({:.1} MiB), {apps} apps, edited app {appid}, runs: {runs}",
        src.len(),
        size / 1048576.0
    );
    println!("edit in memory (read + lex + splice + check + read-back): median {mem_ms:.2} ms");
    println!(
        "fsync of a file that size: median {:.2} ms",
        ms(median(fsyncs))
    );
    println!(
        "whole cgsplit-install process (incl. backup link, temp + fsync + rename + dir fsync): median {:.2} ms wall (incl. spawning it), {:.2} ms CPU",
        ms(median(wall)),
        ms(median(cpu))
    );
    println!(
        "peak RSS of cgsplit-install: {max_rss_kib} KiB ({:.1} MiB) = {:.2}x the file size",
        max_rss_kib as f64 / 1024.0,
        max_rss_kib as f64 * 1024.0 / size
    );

    // 4. Python's vdf on the same file.
    let py = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/python_vdf.py");
    std::fs::write(&path, &src).unwrap();
    let py_runs = if bench { 3 } else { 1 };
    match std::process::Command::new("python3")
        .arg(&py)
        .arg(&path)
        .arg(py_runs.to_string())
        .output()
    {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let py_ms = text
                .lines()
                .find_map(|l| l.strip_prefix("python vdf load+dump: median "))
                .and_then(|l| l.strip_suffix(" ms"))
                .and_then(|v| v.parse::<f64>().ok());
            print!("{text}");
            if let Some(p) = py_ms {
                println!(
                    "ratio: Python vdf load+dump / our edit in memory = {:.1}x",
                    p / mem_ms
                );
            }
        }
        Ok(out) => println!(
            "python vdf: not measured ({}); pip install vdf",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ),
        Err(e) => println!("python vdf: not measured (python3: {e})"),
    }
    if std::env::var_os("CGSPLIT_BENCH_KEEP").is_some() {
        let _ = tmp.keep();
    }
}
