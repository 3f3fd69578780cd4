//! Test fixtures for the network filter: every test body runs in a fresh
//! mount + network namespace (`unshare --mount --net --fork`, re-running
//! this test binary with `--exact <test>`), with its own bpffs, a test host
//! in a second network namespace over veth, and cgroups under
//! `<cgroup2 mount>/cgsplit-bpftest-*` that are removed afterwards.
//! No traffic leaves these namespaces; the host's `/sys/fs/bpf` is never
//! touched.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const INNER_VAR: &str = "CGSPLIT_BPF_TEST_INNER";

/// The cgroup2 mount showing the root cgroup (`/sys/fs/cgroup/unified` on
/// this project's hybrid machines, `/sys/fs/cgroup` on pure v2 ones).
pub fn cgroup2() -> Option<PathBuf> {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    cgsplit_core::mountinfo::cgroup_dir(&mi, "/")
}

/// The test host (netns B).
pub const HOST4: &str = "198.18.0.2";
pub const HOST4_ALLOWED: &str = "198.18.0.3";
pub const HOST6: &str = "2001:db8::2";
pub const HOST6_ALLOWED: &str = "2001:db8::3";
/// Our side of the veth (netns A).
pub const LOCAL4: &str = "198.18.0.1";
pub const LOCAL6: &str = "2001:db8::1";

fn skip(reason: &str) -> bool {
    if std::env::var_os("CI").is_some() {
        panic!("{reason}, and CI is set: failing instead of skipping");
    }
    eprintln!("skipping: {reason}");
    false
}

/// `true` when the caller is the namespaced inner run and should do the
/// work; otherwise runs this test in fresh namespaces (asserting success)
/// and returns `false`.
pub fn inner(test: &str) -> bool {
    if std::env::var(INNER_VAR).as_deref() == Ok(test) {
        return true;
    }
    if !nix::unistd::geteuid().is_root() {
        return skip("the network filter tests need root (CAP_BPF, CAP_NET_ADMIN, cgroups)");
    }
    if cgroup2().is_none() {
        return skip("no cgroup2 mount showing the root cgroup");
    }
    let exe = std::env::current_exe().expect("test exe");
    let out = Command::new("unshare")
        .args(["--mount", "--net", "--fork", "--"])
        .arg(&exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(INNER_VAR, test)
        .stdin(Stdio::null())
        .output()
        .expect("run unshare (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stdout}");
    eprint!("{stderr}");
    assert!(
        out.status.success(),
        "inner run of {test} failed: {}",
        out.status
    );
    assert!(
        stdout.contains("1 passed"),
        "inner run of {test} ran no test (filtered out?)"
    );
    false
}

pub fn sh(cmd: &str) {
    let out = Command::new("sh").args(["-ec", cmd]).output().expect("sh");
    assert!(
        out.status.success(),
        "{cmd}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A bpffs mounted on a fresh directory in this (private) mount namespace.
pub struct Bpffs {
    pub dir: tempfile::TempDir,
}

impl Bpffs {
    pub fn mount() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("cgsplit-bpftest-bpffs-")
            .tempdir()
            .expect("tempdir");
        assert!(cgsplit_bpf::sys::mount_bpffs_if_absent(dir.path()).expect("mount bpffs"));
        Bpffs { dir }
    }

    pub fn pin_root(&self) -> PathBuf {
        self.dir.path().join("cgsplit")
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(self.dir.path(), nix::mount::MntFlags::MNT_DETACH);
    }
}

/// A cgroup tree `cgsplit-bpftest-<pid>-<name>` removed (deepest first) on
/// drop.
pub struct Cgroups {
    pub root: PathBuf,
}

impl Cgroups {
    pub fn new(name: &str) -> Self {
        let root = cgroup2()
            .expect("cgroup2 mount")
            .join(format!("cgsplit-bpftest-{}-{name}", std::process::id()));
        std::fs::create_dir(&root).expect("create test cgroup");
        Cgroups { root }
    }

    pub fn make(&self, rel: &str) -> PathBuf {
        let p = self.root.join(rel);
        std::fs::create_dir_all(&p).expect("create cgroup");
        p
    }

    pub fn open(path: &Path) -> std::fs::File {
        std::fs::File::open(path).expect("open cgroup dir")
    }

    pub fn id(path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).expect("stat cgroup").ino()
    }
}

fn remove_tree(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_tree(&e.path());
            }
        }
    }
    for _ in 0..50 {
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("warning: could not remove {}", dir.display());
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        remove_tree(&self.root);
    }
}

/// Ports of the listeners.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    pub tcp: u16,
    pub udp: u16,
}

/// The network: `lo` up and ping sockets allowed in netns A (this
/// process), a veth to netns B (a thread of this process) with the test
/// hosts, TCP listeners and UDP echo servers on loopback (A) and on the
/// test host addresses (B).
pub struct Net {
    pub local: Ports,
    pub host: Ports,
    /// Sends a datagram from B to `LOCAL4:port` every 20 ms for `ms` ms.
    pub flood: mpsc::Sender<(u16, u64)>,
}

fn serve_tcp(l: TcpListener) {
    std::thread::spawn(move || {
        for s in l.incoming() {
            drop(s);
        }
    });
}

fn serve_udp(s: UdpSocket) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            let _ = s.send_to(&buf[..n], from);
        }
    });
}

/// Binds TCP + UDP on the same port for every address (port 0: pick one
/// that is free for all).
fn listen_all(addrs: &[&str]) -> Ports {
    'retry: for _ in 0..20 {
        let first = TcpListener::bind(SocketAddr::new(addrs[0].parse().unwrap(), 0)).unwrap();
        let tcp = first.local_addr().unwrap().port();
        let mut tcps = vec![first];
        for a in &addrs[1..] {
            match TcpListener::bind(SocketAddr::new(a.parse().unwrap(), tcp)) {
                Ok(l) => tcps.push(l),
                Err(_) => continue 'retry,
            }
        }
        let mut udps = Vec::new();
        for a in addrs {
            match UdpSocket::bind(SocketAddr::new(a.parse().unwrap(), tcp)) {
                Ok(s) => udps.push(s),
                Err(_) => continue 'retry,
            }
        }
        tcps.into_iter().for_each(serve_tcp);
        udps.into_iter().for_each(serve_udp);
        return Ports { tcp, udp: tcp };
    }
    panic!("no common free port");
}

impl Net {
    pub fn up() -> Net {
        sh("ip link set lo up");
        std::fs::write("/proc/sys/net/ipv4/ping_group_range", "0 2147483647")
            .expect("ping_group_range");
        let local = listen_all(&["127.0.0.1", "127.0.0.53", "::1"]);
        let (tid_tx, tid_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let (ports_tx, ports_rx) = mpsc::channel();
        let (flood_tx, flood_rx) = mpsc::channel::<(u16, u64)>();
        std::thread::spawn(move || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare netns B");
            tid_tx.send(nix::unistd::gettid().as_raw()).unwrap();
            go_rx.recv().unwrap();
            sh("ip link set lo up; ip link set veth-b up; \
                ip addr add 198.18.0.2/24 dev veth-b; ip addr add 198.18.0.3/24 dev veth-b; \
                ip addr add 2001:db8::2/64 dev veth-b nodad; ip addr add 2001:db8::3/64 dev veth-b nodad");
            let host = listen_all(&[HOST4, HOST4_ALLOWED, HOST6, HOST6_ALLOWED]);
            ports_tx.send(host).unwrap();
            let sender = UdpSocket::bind("0.0.0.0:0").unwrap();
            while let Ok((port, ms)) = flood_rx.recv() {
                for _ in 0..ms / 20 {
                    let _ = sender.send_to(b"flood", (LOCAL4, port));
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        });
        let tid: i32 = tid_rx.recv().unwrap();
        sh(&format!(
            "ip link add veth-a type veth peer name veth-b; ip link set veth-b netns {tid}; \
             ip link set veth-a up; ip addr add 198.18.0.1/24 dev veth-a; \
             ip addr add 2001:db8::1/64 dev veth-a nodad"
        ));
        go_tx.send(()).unwrap();
        let host = ports_rx.recv().unwrap();
        Net {
            local,
            host,
            flood: flood_tx,
        }
    }
}

/// One line of `cgsplit-netprobe` output.
#[derive(Clone, Debug)]
pub struct ProbeResult {
    pub probe: String,
    pub result: String,
    pub micros: u64,
    pub pid: u32,
}

/// Runs `cgsplit-netprobe` (joined to `cgroup`, `depth` generations down).
pub fn probe(cgroup: Option<&Path>, depth: u32, probes: &[String]) -> Vec<ProbeResult> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cgsplit-netprobe"));
    if let Some(c) = cgroup {
        cmd.arg("--join").arg(c);
    }
    cmd.arg("--depth").arg(depth.to_string()).args(probes);
    let out = cmd.output().expect("run cgsplit-netprobe");
    assert!(
        out.status.success(),
        "cgsplit-netprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            ProbeResult {
                probe: f[0].into(),
                result: f[1].into(),
                micros: f[2].parse().unwrap(),
                pid: f[3].parse().unwrap(),
            }
        })
        .collect()
}

pub fn results(rs: &[ProbeResult]) -> HashMap<String, String> {
    rs.iter()
        .map(|r| (r.probe.clone(), r.result.clone()))
        .collect()
}

pub fn addr(ip: &str, port: u16) -> String {
    SocketAddr::new(ip.parse::<IpAddr>().unwrap(), port).to_string()
}

/// Read a file fully (small helper for cgroup files).
pub fn read(path: &Path) -> String {
    let mut s = String::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_string(&mut s))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    s
}

pub fn write(path: &Path, data: &str) {
    std::fs::File::create(path)
        .and_then(|mut f| f.write_all(data.as_bytes()))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}
