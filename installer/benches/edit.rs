//! Benchmark of one `LaunchOptions` edit on a large, realistic localconfig.vdf.
//!
//! Generates a ~10 MB file with 5,000 app blocks (Steam's shapes: playtime
//! counters, `cloud` sub-blocks, long JSON-ish `ViewedSteamPlay`-style
//! values, escaped quotes and backslashes), then times:
//! - in memory: lex + parse + splice + lexer check + read-back
//!   ([`localconfig::set`]), median of N runs;
//! - the whole write path: read the file, `set`, [`fsio::replace_checked`]
//!   (re-read, temp file, write, fsync, rename, directory fsync), and the
//!   same with the fsyncs isolated by timing `File::sync_all` on its own;
//! - peak RSS (`VmHWM` from `/proc/self/status`) and the file size.
//!
//! Run:
//! ```sh
//! cargo bench -p cgsplit-install                        # Rust figures
//! CGSPLIT_BENCH_OUT=/tmp/lc.vdf cargo bench -p cgsplit-install
//! pip install vdf
//! python3 installer/benches/python_vdf.py /tmp/lc.vdf   # PyPI `vdf` load+dump
//! ```
//! Set `CGSPLIT_BENCH_RUNS` to change N (default 7).

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

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then
    // run one tiny iteration only, to keep the test suite fast.
    let bench = std::env::args().any(|a| a == "--bench");
    let runs: usize = std::env::var("CGSPLIT_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if bench { 7 } else { 1 });
    let apps = if bench { 5_000 } else { 50 };

    let src = generate(apps);
    if let Some(out) = std::env::var_os("CGSPLIT_BENCH_OUT") {
        std::fs::write(&out, &src).expect("write CGSPLIT_BENCH_OUT");
        println!("wrote {}", std::path::Path::new(&out).display());
    }
    // The last app block, where an edit has the most to check before it.
    let doc = cgsplit_install::vdf::Document::parse(&src).expect("generated file parses");
    drop(doc);
    let appid = {
        let text = std::str::from_utf8(&src).unwrap();
        let at = text.rfind("\n\t\t\t\t\t\"").unwrap() + 7;
        text[at..at + text[at..].find('"').unwrap()]
            .parse::<u32>()
            .unwrap()
    };
    let value = "cgsplit-shim -- %command%";

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("localconfig.vdf");
    std::fs::write(&path, &src).unwrap();

    let mut mem = Vec::new();
    let mut write_all = Vec::new();
    let mut fsyncs = Vec::new();
    for _ in 0..runs {
        // In memory: read from disk (page cache) + lex + splice + check.
        let t = Instant::now();
        let bytes = fsio::read(&path).unwrap();
        let r = localconfig::set(&bytes, appid, value).expect("set");
        mem.push(t.elapsed());
        assert!(r.changed);

        // Whole write path through fsio (re-read check, temp, fsync, rename, dir fsync).
        let t = Instant::now();
        let bytes = fsio::read(&path).unwrap();
        let r = localconfig::set(&bytes, appid, value).unwrap();
        fsio::replace_checked(&path, &bytes, &r.new).unwrap();
        write_all.push(t.elapsed());

        // fsync alone: fsio does not expose its phases, so time a separate
        // write + sync_all of the same bytes in the same directory.
        let probe = dir.path().join("fsync-probe");
        std::fs::write(&probe, &r.new).unwrap();
        let f = std::fs::File::open(&probe).unwrap();
        let t = Instant::now();
        f.sync_all().unwrap();
        fsyncs.push(t.elapsed());

        // Put the original back for the next run.
        std::fs::write(&path, &src).unwrap();
    }

    println!(
        "file: {} bytes ({:.1} MiB), {apps} apps, appid {appid}",
        src.len(),
        src.len() as f64 / 1048576.0
    );
    println!("runs: {runs}");
    println!(
        "read + lex + splice + check (in memory): median {:.2} ms",
        ms(median(mem))
    );
    println!(
        "full write via fsio::replace_checked:    median {:.2} ms",
        ms(median(write_all))
    );
    println!(
        "  of which fsync of the file (separate probe): median {:.2} ms",
        ms(median(fsyncs))
    );
    match peak_rss_kib() {
        Some(k) => println!("peak RSS (VmHWM): {k} KiB ({:.1} MiB)", k as f64 / 1024.0),
        None => println!("peak RSS: unavailable"),
    }
}
