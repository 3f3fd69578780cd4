//! `cgsplit-netprobe`: tries destinations and prints what the calling
//! process saw — the protocol matrix of the network filter.
//!
//! ```text
//! cgsplit-netprobe [--join CGROUP_DIR] [--depth N] PROBE...
//! ```
//!
//! `--join` writes `0` to `CGROUP_DIR/cgroup.procs` first; `--depth N` runs
//! the probes in a descendant process N generations down (child,
//! grandchild, …), which inherits the cgroup. One output line per probe,
//! tab-separated: `PROBE  RESULT  MICROSECONDS  PID`, where RESULT is `ok`
//! (connected / sent, and for `udp-*` and `ping*` a reply came back),
//! `noreply` (sent but nothing came back within 1 s), an errno name such as
//! `EPERM`, or `timeout`.
//!
//! PROBE forms (ADDR is a socket address: `198.18.0.2:80`, `[::1]:80`,
//! `[::ffff:198.18.0.2]:80`; the port is ignored for ping):
//! `tcp:ADDR` (connect, 2 s timeout), `udp-connect:ADDR` (connect + send +
//! receive), `udp-sendto:ADDR` (unconnected sendto), `udp-sendmsg:ADDR`
//! (unconnected sendmsg with msg_name), `ping:ADDR` (unprivileged ICMP ping
//! socket: connect + send), `ping-sendto:ADDR` (unconnected),
//! `tcp-fastopen:ADDR` (TCP Fast Open: `sendto(MSG_FASTOPEN)` with data, 2 s
//! timeout),
//! `udp-recv:ADDR` (bind ADDR and wait 1 s for a datagram: ingress).

use std::io;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use nix::libc;

fn errno_name(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::WouldBlock {
        return "timeout".into();
    }
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n)
            .to_string()
            .split(':')
            .next()
            .unwrap_or("?")
            .to_string(),
        None => e.to_string(),
    }
}

fn udp_for(addr: &SocketAddr) -> io::Result<UdpSocket> {
    let sock = if addr.is_ipv4() {
        UdpSocket::bind("0.0.0.0:0")?
    } else {
        UdpSocket::bind("[::]:0")?
    };
    sock.set_read_timeout(Some(Duration::from_secs(1)))?;
    Ok(sock)
}

fn wait_reply(sock: &UdpSocket) -> io::Result<&'static str> {
    let mut buf = [0u8; 64];
    match sock.recv(&mut buf) {
        Ok(_) => Ok("ok"),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Ok("noreply")
        }
        Err(e) => Err(e),
    }
}

fn sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; zero is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as u16,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in, sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as u16,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: as above, for sockaddr_in6.
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in6, sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

fn check(r: libc::ssize_t) -> io::Result<libc::ssize_t> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn udp_sendmsg(addr: &SocketAddr) -> io::Result<&'static str> {
    let sock = udp_for(addr)?;
    let (mut ss, len) = sockaddr(addr);
    let mut payload = *b"cgsplit";
    let mut iov = libc::iovec {
        iov_base: payload.as_mut_ptr().cast(),
        iov_len: payload.len(),
    };
    // SAFETY: msghdr is plain data; zero is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut ss as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = len;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    // SAFETY: msg points at live buffers for the duration of the call.
    check(unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, 0) })?;
    wait_reply(&sock)
}

fn ping(addr: &SocketAddr, connect: bool) -> io::Result<&'static str> {
    let (domain, proto, echo_type) = if addr.is_ipv4() {
        (libc::AF_INET, libc::IPPROTO_ICMP, 8u8)
    } else {
        (libc::AF_INET6, libc::IPPROTO_ICMPV6, 128u8)
    };
    // SAFETY: plain socket(2) call.
    let fd = check(
        unsafe { libc::socket(domain, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, proto) } as isize,
    )?;
    // SAFETY: fd is a new socket we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let tv = libc::timeval {
        tv_sec: 1,
        tv_usec: 0,
    };
    // SAFETY: valid option buffer.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        )
    };
    let (ss, len) = sockaddr(&SocketAddr::new(addr.ip(), 0));
    let pkt = [echo_type, 0, 0, 0, 0, 0, 0, 1, b'c', b'g'];
    if connect {
        // SAFETY: ss holds a valid sockaddr of length len.
        check(unsafe {
            libc::connect(
                fd.as_raw_fd(),
                (&ss as *const libc::sockaddr_storage).cast(),
                len,
            )
        } as isize)?;
        // SAFETY: pkt is a live buffer.
        check(unsafe { libc::send(fd.as_raw_fd(), pkt.as_ptr().cast(), pkt.len(), 0) })?;
    } else {
        // SAFETY: as above.
        check(unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                pkt.as_ptr().cast(),
                pkt.len(),
                0,
                (&ss as *const libc::sockaddr_storage).cast(),
                len,
            )
        })?;
    }
    let mut buf = [0u8; 128];
    // SAFETY: buf is a live buffer.
    match check(unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) }) {
        Ok(_) => Ok("ok"),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok("noreply"),
        Err(e) => Err(e),
    }
}

fn tcp_fastopen(addr: &SocketAddr) -> io::Result<&'static str> {
    let domain = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket(2) call.
    let fd =
        check(unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) } as isize)?;
    // SAFETY: fd is a new socket we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let tv = libc::timeval {
        tv_sec: 2,
        tv_usec: 0,
    };
    // SAFETY: valid option buffer.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        )
    };
    let (ss, len) = sockaddr(addr);
    let data = b"cgsplit";
    // SAFETY: ss holds a valid sockaddr of length len; data is live.
    check(unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            data.as_ptr().cast(),
            data.len(),
            libc::MSG_FASTOPEN,
            (&ss as *const libc::sockaddr_storage).cast(),
            len,
        )
    })?;
    Ok("ok")
}

fn run(probe: &str) -> Result<&'static str, String> {
    let (kind, addr) = probe
        .split_once(':')
        .ok_or_else(|| format!("{probe:?}: expected KIND:ADDR"))?;
    let addr: SocketAddr = addr
        .parse()
        .map_err(|_| format!("{probe:?}: bad socket address {addr:?}"))?;
    let r = match kind {
        "tcp" => TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map(|_| "ok"),
        "udp-connect" => udp_for(&addr).and_then(|s| {
            s.connect(addr)?;
            s.send(b"cgsplit")?;
            wait_reply(&s)
        }),
        "udp-sendto" => udp_for(&addr).and_then(|s| {
            s.send_to(b"cgsplit", addr)?;
            wait_reply(&s)
        }),
        "udp-sendmsg" => udp_sendmsg(&addr),
        "tcp-fastopen" => tcp_fastopen(&addr),
        "ping" => ping(&addr, true),
        "ping-sendto" => ping(&addr, false),
        "udp-recv" => UdpSocket::bind(addr).and_then(|s| {
            s.set_read_timeout(Some(Duration::from_secs(1)))?;
            wait_reply(&s)
        }),
        _ => return Err(format!("{probe:?}: unknown probe kind {kind:?}")),
    };
    Ok(match r {
        Ok(s) => s,
        Err(e) => Box::leak(errno_name(&e).into_boxed_str()),
    })
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut depth = 0u32;
    loop {
        match args.first().map(String::as_str) {
            Some("--join") if args.len() >= 2 => {
                let path = std::path::Path::new(&args[1]).join("cgroup.procs");
                if let Err(e) = std::fs::write(&path, "0") {
                    eprintln!("cgsplit-netprobe: cannot join {}: {e}", path.display());
                    return ExitCode::from(2);
                }
                args.drain(..2);
            }
            Some("--depth") if args.len() >= 2 => {
                depth = match args[1].parse() {
                    Ok(d) => d,
                    Err(_) => {
                        eprintln!("cgsplit-netprobe: --depth needs a number");
                        return ExitCode::from(2);
                    }
                };
                args.drain(..2);
            }
            _ => break,
        }
    }
    if depth > 0 {
        let exe = std::env::current_exe().expect("/proc/self/exe");
        let status = Command::new(exe)
            .arg("--depth")
            .arg((depth - 1).to_string())
            .args(&args)
            .status();
        return match status {
            Ok(s) if s.success() => ExitCode::SUCCESS,
            _ => ExitCode::FAILURE,
        };
    }
    let pid = std::process::id();
    for probe in &args {
        let t = Instant::now();
        match run(probe) {
            Ok(result) => println!("{probe}\t{result}\t{}\t{pid}", t.elapsed().as_micros()),
            Err(e) => {
                eprintln!("cgsplit-netprobe: {e}");
                return ExitCode::from(2);
            }
        }
    }
    ExitCode::SUCCESS
}
