//! Network policy: its one textual form, shared by the config, the launch
//! line, the privileged helper's D-Bus API and the scope's xattr.
//!
//! Text form (no spaces, so it needs no quoting in Steam launch options):
//!
//! - `full` — no filter;
//! - `localhost` — loopback only (IPv4 127.0.0.0/8, IPv6 ::1, IPv4-mapped
//!   ::ffff:127.0.0.0/104);
//! - `localhost,<cidr>[,<cidr>…]` — loopback plus the listed networks, e.g.
//!   `localhost,192.168.1.0/24,fd00::/8` (LAN play).
//!
//! CIDRs are normalised: host bits are cleared and the list is sorted and
//! deduplicated, so two equal policies always have the same text and the
//! shim can compare the xattr with its `--network` flag byte for byte.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::str::FromStr;

/// The xattr the privileged helper sets on a scope's cgroup directory after
/// it attached the filter; its value is the policy's text form. cgroupfs
/// supports `user.*` xattrs since Linux 5.7 (kernel commit 5e1bb7a2ae5b).
pub const POLICY_XATTR: &str = "user.cgsplit.policy";

/// Where the shim's proof `connect()`s a UDP socket: TEST-NET-1 (RFC 5737),
/// discard port. A UDP connect sends nothing; with the filter attached the
/// `cgroup/connect4` program makes it fail with EPERM.
pub const PROOF_ADDR: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 9));

/// The privileged helper's well-known name on the system bus.
pub const NETD_BUS_NAME: &str = "io.github.cgsplit.Netd1";
/// The helper's object path.
pub const NETD_OBJECT_PATH: &str = "/io/github/cgsplit/Netd1";
/// The helper's interface. Methods (cgroup paths are relative to the
/// cgroup2 root as the caller's `/proc/self/cgroup` shows them, starting
/// with `/`, no `.`/`..`/empty parts; policies are in this module's text
/// form):
///
/// - `Restrict(s cgroup, s policy)`: attach the filter (or change the
///   allow-list of an already restricted cgroup) and set [`POLICY_XATTR`];
/// - `Release(s cgroup)`: detach and remove the xattr (also succeeds when
///   nothing was attached); refused to a caller whose own cgroup is
///   restricted;
/// - `Status(s cgroup) -> s json`: an object
///   `{"cgroup": "/user.slice/…", "cgroup_id": 1234, "restricted": true,
///   "policy": "localhost" | null, "xattr": "localhost" | null,
///   "counters": {"ingress_packets", "ingress_bytes", "egress_packets",
///   "egress_bytes", "connect_refused", "sendmsg_refused",
///   "events_suppressed", "events_lost"} | null, "recent": [{"hook":
///   "connect4", "addr": "198.18.0.2", "port": 80, "protocol": 6, "pid":
///   1234 | null, "comm": "game" | null, "monotonic_ns": …}]}`.
///
/// A non-root caller may name only a cgroup strictly inside its own
/// `user@<uid>.service` that it owns; root any cgroup but `/`. Errors are
/// `io.github.cgsplit.Netd1.Error.{InvalidArgs, AccessDenied, NoSuchCgroup,
/// NotACgroup, LimitExceeded, AlreadyRestricted, Failed}` (crate
/// `cgsplit-netd`, `error.rs`), each with a message that says what to do.
pub const NETD_INTERFACE: &str = "io.github.cgsplit.Netd1";

/// An IP network: an address with its host bits cleared and a prefix length
/// (0–32 for IPv4, 0–128 for IPv6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The network `addr/prefix` with host bits cleared; `None` when
    /// `prefix` is longer than the address.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        let addr = match addr {
            IpAddr::V4(a) if prefix <= 32 => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) if prefix <= 128 => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
            _ => return None,
        };
        Some(Self { addr, prefix })
    }

    /// The network address (host bits zero).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` lies inside this network. IPv4 and IPv6 never match each
    /// other (an IPv4-mapped IPv6 address is an IPv6 address here).
    pub fn contains(&self, ip: IpAddr) -> bool {
        Self::new(ip, self.prefix).is_some_and(|c| c.addr == self.addr)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Why a CIDR or policy text was refused; the message names the bad part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError(String);

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PolicyError {}

impl FromStr for Cidr {
    type Err = PolicyError;

    /// `ADDR/PREFIX`, or a bare address (a host: /32 or /128).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            PolicyError(format!(
                "malformed CIDR {s:?}: {why} (expected e.g. 192.168.1.0/24 or fd00::/8)"
            ))
        };
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad("not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| bad(&format!("prefix longer than {max}")))?,
            Some(_) => return Err(bad("prefix is not a number")),
        };
        Ok(Self::new(addr, prefix).expect("prefix checked"))
    }
}

/// A game's network policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum NetworkPolicy {
    /// No filter.
    #[default]
    Full,
    /// Loopback, plus `allow` (sorted, deduplicated, normalised).
    Localhost {
        /// Extra networks the game may reach, e.g. a LAN.
        allow: Vec<Cidr>,
    },
}

impl NetworkPolicy {
    /// `localhost` plus `allow`, normalised (sorted, deduplicated).
    pub fn localhost(allow: impl IntoIterator<Item = Cidr>) -> Self {
        let mut allow: Vec<Cidr> = allow.into_iter().collect();
        allow.sort();
        allow.dedup();
        Self::Localhost { allow }
    }

    /// Whether this policy needs a filter (anything but `full`).
    pub fn is_restricted(&self) -> bool {
        !matches!(self, Self::Full)
    }

    /// Whether a destination is allowed: `full` allows everything; otherwise
    /// loopback (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104) and the allow-list.
    /// An IPv4-mapped IPv6 address is judged as its IPv4 address.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let Self::Localhost { allow } = self else {
            return true;
        };
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        ip.is_loopback() || allow.iter().any(|c| c.contains(ip))
    }
}

impl fmt::Display for NetworkPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full => f.write_str("full"),
            Self::Localhost { allow } => {
                f.write_str("localhost")?;
                for c in allow {
                    write!(f, ",{c}")?;
                }
                Ok(())
            }
        }
    }
}

impl FromStr for NetworkPolicy {
    type Err = PolicyError;

    /// The text form described in the module docs.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split(',');
        match parts.next() {
            Some("full") if s == "full" => Ok(Self::Full),
            Some("localhost") => {
                Ok(Self::localhost(parts.map(str::parse).collect::<Result<
                    Vec<Cidr>,
                    _,
                >>(
                )?))
            }
            _ => Err(PolicyError(format!(
                "unknown network policy {s:?}: use `full`, `localhost`, or `localhost,<cidr>,…`"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_and_normalises() {
        for (text, want) in [
            ("full", "full"),
            ("localhost", "localhost"),
            ("localhost,192.168.1.7/24", "localhost,192.168.1.0/24"),
            (
                "localhost,fd00::1/8,10.0.0.0/8,10.0.0.0/8",
                "localhost,10.0.0.0/8,fd00::/8",
            ),
            ("localhost,198.18.0.2", "localhost,198.18.0.2/32"),
            ("localhost,0.0.0.0/0", "localhost,0.0.0.0/0"),
        ] {
            let p: NetworkPolicy = text.parse().unwrap();
            assert_eq!(p.to_string(), want, "{text}");
            assert_eq!(want.parse::<NetworkPolicy>().unwrap(), p);
        }
    }

    #[test]
    fn bad_text_is_refused_with_the_bad_part_named() {
        for (text, needle) in [
            ("", "unknown network policy"),
            ("offline", "\"offline\""),
            ("full,10.0.0.0/8", "unknown network policy"),
            ("localhost,", "malformed CIDR \"\""),
            ("localhost,10.0.0.0/33", "prefix longer than 32"),
            ("localhost,::/129", "prefix longer than 128"),
            ("localhost,10.0.0.0/x", "not a number"),
            ("localhost,10.0.0.0/", "not a number"),
            ("localhost,10.0.0.0/+8", "not a number"),
            ("localhost,example.com/8", "not an IP address"),
            ("Localhost", "unknown network policy"),
        ] {
            let err = text.parse::<NetworkPolicy>().unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn allows_loopback_mapped_and_listed_networks_only() {
        let p: NetworkPolicy = "localhost,198.18.1.0/24".parse().unwrap();
        for ok in [
            "127.0.0.1",
            "127.0.0.53",
            "::1",
            "::ffff:127.0.0.1",
            "198.18.1.9",
            "::ffff:198.18.1.9",
        ] {
            assert!(p.allows(ok.parse().unwrap()), "{ok}");
        }
        for no in [
            "198.18.0.2",
            "2001:db8::2",
            "::ffff:198.18.0.2",
            "0.0.0.0",
            "192.0.2.1",
        ] {
            assert!(!p.allows(no.parse().unwrap()), "{no}");
        }
        assert!(NetworkPolicy::Full.allows("192.0.2.1".parse().unwrap()));
        assert!(!p.allows(PROOF_ADDR.ip()));
    }
}
