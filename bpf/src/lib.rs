//! cgroup eBPF network filter: the programs in `bpf/c/cgsplit.bpf.c` (built
//! by `build.rs` with `clang -O2 -g -target bpf`) and their aya 0.14 loader.
//!
//! A [`Filter`] loads the six programs once — `cgroup_skb` ingress and
//! egress, `cgroup/connect4`, `connect6`, `sendmsg4`, `sendmsg6` — and
//! attaches the set (`BPF_F_ALLOW_MULTI`, through bpf_link) to every
//! restricted cgroup ("scope"). Loopback (IPv4 127.0.0.0/8, IPv6 ::1,
//! IPv4-mapped ::ffff:127.0.0.0/104) always passes; the scope's allow-list
//! (an LPM trie keyed by scope id + address) passes; everything else is
//! dropped (skb) or refused with EPERM at `connect()`/`sendmsg()`.
//!
//! # Which scope a packet belongs to
//!
//! The hooks see the socket's LEAF cgroup (e.g. `…/cgsplit-620.scope/game`,
//! or deeper), in the global hierarchy — not the caller's cgroup namespace.
//! Each program walks the socket's ancestors, level 0 (root) to the leaf,
//! with `bpf_skb_ancestor_cgroup_id()` / `bpf_sk_ancestor_cgroup_id()`, and
//! takes the DEEPEST ancestor present in the `scopes` map; no level is
//! hard-coded (it is deeper in the tests' nested hierarchy than on a
//! desktop). A program that runs and finds no entry denies (fail closed).
//! Restricting a cgroup inside (or above) another restricted one is refused
//! ([`Error::Nested`]): the programs attached at both levels would both run
//! and count every refusal twice.
//!
//! # Pins: what survives the loader
//!
//! Under `pin_root` (normally [`PIN_ROOT`], on a bpffs):
//!
//! ```text
//! maps/{scopes,allow4,allow6,events}        shared by every program set
//! links/<cgroup id>/{ingress,egress,connect4,connect6,sendmsg4,sendmsg6}
//! ```
//!
//! A cgroup's id is its directory's inode number on cgroup2 (kernfs node
//! id). aya on kernel ≥ 5.7 attaches through bpf_link fds that detach when
//! the process exits, so every link is pinned; the maps are pinned by name
//! and reused by the next [`Filter::load`]. A new loader loads a fresh
//! program set (≈ the cold-load time, see `benches/filter.rs`); links made
//! by an earlier loader keep their own program set alive and share the
//! pinned maps, so filters, allow-lists and counters outlive a restart.
//! Recent refused destinations are read from the pinned `events` ring
//! buffer into memory; those already read by a previous loader are lost.
//!
//! # Per-uid cap
//!
//! [`Filter::restrict`] charges a scope to the OWNER of the cgroup directory
//! (fstat on the given fd: the privileged helper has already checked that
//! the owner is the caller, or the caller is root) and refuses more than
//! [`Filter::max_per_uid`] scopes per owner ([`DEFAULT_MAX_PER_UID`]).
//!
//! # Privileges
//!
//! Loading and attaching need CAP_BPF + CAP_NET_ADMIN, and CAP_PERFMON
//! (the verifier allows `bpf_get_current_comm`, which names the process in
//! refusal events, only with it; measured on 6.18). [`Filter::load`] checks
//! the effective set first and fails with [`Error::NotPermitted`] naming
//! what is missing; nothing is attached.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{HashMap as BpfHashMap, MapData, MapError, RingBuf};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::{
    CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSockAddr, ProgramError,
};
use aya::{Ebpf, EbpfLoader};
use cgsplit_core::policy::{Cidr, NetworkPolicy};

pub mod sys;

/// The compiled programs (`bpf/c/cgsplit.bpf.c`), embedded at build time.
pub static PROGRAMS: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/cgsplit.bpf.o"));

/// Where the privileged helper pins everything: a `cgsplit` directory on the
/// host's bpffs (mount one with [`sys::mount_bpffs_if_absent`] when PID 1 is
/// not systemd and nobody mounted `/sys/fs/bpf`).
pub const PIN_ROOT: &str = "/sys/fs/bpf/cgsplit";

/// Default cap on restricted scopes per owner uid (see [`Filter::restrict`]).
pub const DEFAULT_MAX_PER_UID: usize = 64;

/// How many recent refused destinations [`Filter::status`] keeps per scope.
pub const RECENT_PER_SCOPE: usize = 32;

/// The programs, by ELF symbol name, and the link pin name for each.
const PROGS: [(&str, Hook); 6] = [
    ("cgsplit_ingress", Hook::Ingress),
    ("cgsplit_egress", Hook::Egress),
    ("cgsplit_connect4", Hook::Connect4),
    ("cgsplit_connect6", Hook::Connect6),
    ("cgsplit_sendmsg4", Hook::SendMsg4),
    ("cgsplit_sendmsg6", Hook::SendMsg6),
];

/// The hook (program attach point) that refused a destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hook {
    /// `cgroup_skb/ingress`: a packet arriving at a socket in the scope.
    Ingress,
    /// `cgroup_skb/egress`: a packet leaving a socket in the scope.
    Egress,
    /// `cgroup/connect4`: `connect()` on an AF_INET socket (TCP, UDP, ping).
    Connect4,
    /// `cgroup/connect6`: `connect()` on an AF_INET6 socket.
    Connect6,
    /// `cgroup/sendmsg4`: unconnected UDP `sendto()`/`sendmsg()`, AF_INET.
    SendMsg4,
    /// `cgroup/sendmsg6`: unconnected UDP `sendto()`/`sendmsg()`, AF_INET6.
    SendMsg6,
}

impl Hook {
    /// The link's pin name under `links/<cgroup id>/`, also used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Hook::Ingress => "ingress",
            Hook::Egress => "egress",
            Hook::Connect4 => "connect4",
            Hook::Connect6 => "connect6",
            Hook::SendMsg4 => "sendmsg4",
            Hook::SendMsg6 => "sendmsg6",
        }
    }

    fn from_raw(v: u8) -> Option<Self> {
        Some(match v {
            1 => Hook::Ingress,
            2 => Hook::Egress,
            3 => Hook::Connect4,
            4 => Hook::Connect6,
            5 => Hook::SendMsg4,
            6 => Hook::SendMsg6,
            _ => return None,
        })
    }
}

/// What went wrong; every message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel refused a BPF operation with EPERM/EACCES.
    #[error(
        "{op}: not permitted ({source}); loading and attaching the cgroup eBPF programs needs \
         CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON: run cgsplit-netd as root"
    )]
    NotPermitted {
        /// What was attempted.
        op: String,
        /// The kernel's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// `pin_root` is not on a bpffs.
    #[error(
        "{path}: not on a bpf file system; mount one (`mount -t bpf bpf /sys/fs/bpf`, or \
         cgsplit_bpf::sys::mount_bpffs_if_absent) and retry"
    )]
    NotBpffs {
        /// The pin root.
        path: PathBuf,
    },
    /// The cgroup fd is not a directory on cgroup2.
    #[error("the given cgroup fd is not a directory on a cgroup2 file system")]
    NotCgroup2,
    /// The cgroup was removed (e.g. between its check and the attach).
    #[error(
        "cgroup {cgroup_id} no longer exists (removed before the filter was attached); nothing attached"
    )]
    CgroupGone {
        /// Its id.
        cgroup_id: u64,
    },
    /// `restrict` with policy `full`.
    #[error("policy `full` needs no filter: release the cgroup instead of restricting it")]
    NothingToRestrict,
    /// The per-uid cap would be exceeded.
    #[error(
        "uid {uid} already has {max} restricted cgroups (the cap); release one (or gc vanished ones) first"
    )]
    TooMany {
        /// The owner uid.
        uid: u32,
        /// The cap.
        max: usize,
    },
    /// A restricted cgroup would sit inside (or above) another one.
    #[error(
        "cgroup {cgroup_id} is {relation} restricted cgroup {other}; restrict the scope itself, \
         not cgroups nested in it (release {other} first)"
    )]
    Nested {
        /// The cgroup asked for.
        cgroup_id: u64,
        /// "inside" or "above".
        relation: &'static str,
        /// The restricted one in the way.
        other: u64,
    },
    /// Loading the object or a program failed (the verifier log is inside).
    #[error("loading the cgroup eBPF programs: {0}")]
    Load(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Attaching one program failed; nothing stays attached.
    #[error("attaching {hook} to cgroup {cgroup_id}: {source}; nothing attached")]
    Attach {
        /// Which program.
        hook: &'static str,
        /// Target cgroup.
        cgroup_id: u64,
        /// aya's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A map operation failed.
    #[error("BPF map {map}: {source}")]
    Map {
        /// Map name.
        map: &'static str,
        /// aya's error.
        #[source]
        source: MapError,
    },
    /// A file/pin operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

fn is_eperm(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<io::Error>()
            && matches!(
                io.raw_os_error(),
                Some(nix::libc::EPERM | nix::libc::EACCES)
            )
        {
            return true;
        }
        cur = e.source();
    }
    false
}

fn perm_or<E>(op: impl Into<String>, e: E, other: impl FnOnce(E) -> Error) -> Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    if is_eperm(&e) {
        Error::NotPermitted {
            op: op.into(),
            source: Box::new(e),
        }
    } else {
        other(e)
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// Per-scope counters since the scope was restricted (atomic adds in the
/// programs; they survive a loader restart with the pinned `scopes` map).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets dropped by `cgroup_skb/ingress`.
    pub ingress_packets: u64,
    /// Bytes (IP packet length) dropped on ingress.
    pub ingress_bytes: u64,
    /// Packets dropped by `cgroup_skb/egress` (anything the sock_addr hooks
    /// do not see, e.g. unconnected ping `sendto()`).
    pub egress_packets: u64,
    /// Bytes dropped on egress.
    pub egress_bytes: u64,
    /// `connect()`s refused (connect4/connect6; TCP, UDP and ping sockets).
    pub connect_refused: u64,
    /// Unconnected UDP `sendto()`/`sendmsg()`s refused (sendmsg4/sendmsg6).
    pub sendmsg_refused: u64,
    /// Refusal events not reported because of the per-scope rate limit
    /// (16 at once, then 8 per second).
    pub events_suppressed: u64,
    /// Refusal events lost because the ring buffer was full.
    pub events_lost: u64,
}

/// `struct scope` in the C program.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct ScopeValue {
    uid: u32,
    _pad: u32,
    ingress_packets: u64,
    ingress_bytes: u64,
    egress_packets: u64,
    egress_bytes: u64,
    connect_refused: u64,
    sendmsg_refused: u64,
    events_suppressed: u64,
    events_lost: u64,
    event_tat_ns: u64,
}

// SAFETY: repr(C), only integers, no padding beyond the explicit `_pad`.
unsafe impl aya::Pod for ScopeValue {}

impl ScopeValue {
    fn counters(&self) -> Counters {
        Counters {
            ingress_packets: self.ingress_packets,
            ingress_bytes: self.ingress_bytes,
            egress_packets: self.egress_packets,
            egress_bytes: self.egress_bytes,
            connect_refused: self.connect_refused,
            sendmsg_refused: self.sendmsg_refused,
            events_suppressed: self.events_suppressed,
            events_lost: self.events_lost,
        }
    }
}

/// A refused destination, from the `events` ring buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// The restricted scope's cgroup id.
    pub cgroup_id: u64,
    /// Which hook refused it.
    pub hook: Hook,
    /// The remote address (destination on egress/connect/sendmsg, source on
    /// ingress); as the program saw it (an IPv4-mapped IPv6 address stays
    /// IPv6).
    pub addr: IpAddr,
    /// Remote port (host order); 0 when not TCP/UDP (e.g. ICMP).
    pub port: u16,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6).
    pub protocol: u8,
    /// The process (tgid, in the initial pid namespace) and its comm; only
    /// from the sock_addr hooks (skb ingress runs in softirq context).
    pub task: Option<(u32, String)>,
    /// CLOCK_MONOTONIC nanoseconds (`bpf_ktime_get_ns`).
    pub monotonic_ns: u64,
}

const RAW_EVENT_LEN: usize = 64;

fn parse_event(b: &[u8]) -> Option<Refused> {
    if b.len() < RAW_EVENT_LEN {
        return None;
    }
    let u64_at = |o: usize| u64::from_ne_bytes(b[o..o + 8].try_into().expect("8 bytes"));
    let hook = Hook::from_raw(b[20])?;
    let family = b[21];
    let addr = match family {
        4 => IpAddr::V4(Ipv4Addr::new(b[24], b[25], b[26], b[27])),
        6 => IpAddr::V6(Ipv6Addr::from(
            <[u8; 16]>::try_from(&b[24..40]).expect("16 bytes"),
        )),
        _ => return None,
    };
    let pid = u32::from_ne_bytes(b[16..20].try_into().expect("4 bytes"));
    let comm = &b[48..64];
    let comm = String::from_utf8_lossy(&comm[..comm.iter().position(|&c| c == 0).unwrap_or(16)])
        .into_owned();
    Some(Refused {
        cgroup_id: u64_at(0),
        hook,
        addr,
        port: u16::from_ne_bytes([b[40], b[41]]),
        protocol: b[22],
        task: (pid != 0).then_some((pid, comm)),
        monotonic_ns: u64_at(8),
    })
}

/// A restricted cgroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attached {
    /// Its cgroup id (= inode number of its cgroup2 directory).
    pub cgroup_id: u64,
    /// The owner of its directory when it was restricted (the cap's key).
    pub uid: u32,
    /// The policy in force, rebuilt from the allow-list maps.
    pub policy: NetworkPolicy,
    /// Whether the cgroup still exists (its pinned links still point to a
    /// live cgroup); `false` entries are removed by [`Filter::gc`].
    pub alive: bool,
}

/// [`Filter::status`]'s answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The restriction.
    pub attached: Attached,
    /// Its counters.
    pub counters: Counters,
    /// The most recent refused destinations, oldest first (at most
    /// [`RECENT_PER_SCOPE`]; rate-limited, see [`Counters::events_suppressed`]).
    pub recent: Vec<Refused>,
}

struct EventLog {
    ring: RingBuf<MapData>,
    recent: HashMap<u64, VecDeque<Refused>>,
}

impl EventLog {
    fn drain(&mut self) -> Vec<Refused> {
        let mut out = Vec::new();
        while let Some(item) = self.ring.next() {
            if let Some(ev) = parse_event(&item) {
                out.push(ev);
            }
        }
        for ev in &out {
            let q = self.recent.entry(ev.cgroup_id).or_default();
            if q.len() == RECENT_PER_SCOPE {
                q.pop_front();
            }
            q.push_back(ev.clone());
        }
        out
    }
}

/// allow4 key data: scope id (native order) + IPv4 address.
type Key4 = Key<[u8; 12]>;
/// allow6 key data: scope id (native order) + IPv6 address.
type Key6 = Key<[u8; 24]>;
type Allow4 = LpmTrie<MapData, [u8; 12], u8>;
type Allow6 = LpmTrie<MapData, [u8; 24], u8>;

/// The loaded programs and the pinned maps; see the crate docs.
pub struct Filter {
    pin_root: PathBuf,
    ebpf: Ebpf,
    scopes: BpfHashMap<MapData, u64, ScopeValue>,
    allow4: Allow4,
    allow6: Allow6,
    events: Mutex<EventLog>,
    max_per_uid: usize,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("pin_root", &self.pin_root)
            .field("max_per_uid", &self.max_per_uid)
            .finish_non_exhaustive()
    }
}

fn take_map(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map, Error> {
    ebpf.take_map(name).ok_or_else(|| {
        Error::Load(format!("the embedded object has no map {name:?} (build bug)").into())
    })
}

fn map_err(map: &'static str) -> impl FnOnce(MapError) -> Error {
    move |source| {
        perm_or(format!("BPF map {map}"), source, |source| Error::Map {
            map,
            source,
        })
    }
}

fn links_dir(pin_root: &Path, id: u64) -> PathBuf {
    pin_root.join("links").join(id.to_string())
}

impl Filter {
    /// Loads and verifies all six programs and opens the maps pinned under
    /// `pin_root/maps/` (creating and pinning them the first time).
    /// `pin_root` is created (mode 0700) and must be on a bpffs.
    ///
    /// Errors: [`Error::NotBpffs`], [`Error::NotPermitted`] (no
    /// CAP_BPF/CAP_NET_ADMIN), [`Error::Load`] (verifier log inside).
    pub fn load(pin_root: &Path) -> Result<Filter, Error> {
        let missing = sys::missing_capabilities()
            .map_err(io_err("reading", Path::new("/proc/self/status")))?;
        if !missing.is_empty() {
            return Err(Error::NotPermitted {
                op: "loading the programs".into(),
                source: format!("missing {}", missing.join(", ")).into(),
            });
        }
        for dir in [
            pin_root.to_owned(),
            pin_root.join("maps"),
            pin_root.join("links"),
        ] {
            match fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) if e.raw_os_error() == Some(nix::libc::EPERM) => {
                    // bpffs refuses mkdir without CAP_BPF-ish privileges.
                    return Err(Error::NotPermitted {
                        op: format!("mkdir {}", dir.display()),
                        source: Box::new(e),
                    });
                }
                Err(e) => return Err(io_err("creating", &dir)(e)),
            }
            if sys::fs_magic(&dir).map_err(io_err("statfs", &dir))? != sys::BPF_FS_MAGIC {
                return Err(Error::NotBpffs { path: dir });
            }
        }
        let maps_dir = pin_root.join("maps");
        let mut ebpf = EbpfLoader::new()
            // No CO-RE relocations in our programs: skip parsing vmlinux BTF.
            .btf(None)
            .default_map_pin_directory(&maps_dir)
            .load(PROGRAMS)
            .map_err(|e| perm_or("loading the BPF maps", e, |e| Error::Load(Box::new(e))))?;
        for (name, hook) in PROGS {
            let prog = ebpf.program_mut(name).ok_or_else(|| {
                Error::Load(
                    format!("the embedded object has no program {name:?} (build bug)").into(),
                )
            })?;
            let r = match hook {
                Hook::Ingress | Hook::Egress => {
                    let p: &mut CgroupSkb = prog
                        .try_into()
                        .map_err(|e: ProgramError| Error::Load(Box::new(e)))?;
                    p.load()
                }
                _ => {
                    let p: &mut CgroupSockAddr = prog
                        .try_into()
                        .map_err(|e: ProgramError| Error::Load(Box::new(e)))?;
                    p.load()
                }
            };
            r.map_err(|e| {
                perm_or(format!("loading program {name}"), e, |e| {
                    Error::Load(Box::new(e))
                })
            })?;
        }
        let scopes =
            BpfHashMap::try_from(take_map(&mut ebpf, "scopes")?).map_err(map_err("scopes"))?;
        let allow4 =
            LpmTrie::try_from(take_map(&mut ebpf, "allow4")?).map_err(map_err("allow4"))?;
        let allow6 =
            LpmTrie::try_from(take_map(&mut ebpf, "allow6")?).map_err(map_err("allow6"))?;
        let ring = RingBuf::try_from(take_map(&mut ebpf, "events")?).map_err(map_err("events"))?;
        Ok(Filter {
            pin_root: pin_root.to_owned(),
            ebpf,
            scopes,
            allow4,
            allow6,
            events: Mutex::new(EventLog {
                ring,
                recent: HashMap::new(),
            }),
            max_per_uid: DEFAULT_MAX_PER_UID,
        })
    }

    /// The pin root given to [`Filter::load`].
    pub fn pin_root(&self) -> &Path {
        &self.pin_root
    }

    /// The per-owner-uid cap on restricted cgroups.
    pub fn max_per_uid(&self) -> usize {
        self.max_per_uid
    }

    /// Sets the per-owner-uid cap (default [`DEFAULT_MAX_PER_UID`]).
    pub fn set_max_per_uid(&mut self, max: usize) {
        self.max_per_uid = max;
    }

    /// Attaches every program (cgroup_skb ingress + egress, connect4/6,
    /// sendmsg4/6; `BPF_F_ALLOW_MULTI`) to the cgroup2 directory `cgroup`
    /// (an fd opened with O_DIRECTORY; an O_PATH fd is reopened read-only
    /// through `/proc/self/fd`) with `policy`, all or
    /// none, and pins the links under `pin_root/links/<cgroup id>/`.
    ///
    /// Restricting an already restricted cgroup replaces its allow-list in
    /// place (old entries go first, so the change is never wider than either
    /// policy); counters are kept.
    ///
    /// The scope is charged to the owner uid of the directory (fstat on the
    /// fd); more than [`Filter::max_per_uid`] per uid → [`Error::TooMany`].
    /// Errors also: [`Error::NothingToRestrict`] (policy `full`),
    /// [`Error::NotCgroup2`], [`Error::CgroupGone`], [`Error::Nested`],
    /// [`Error::NotPermitted`], [`Error::Attach`].
    pub fn restrict(
        &mut self,
        cgroup: BorrowedFd<'_>,
        policy: &NetworkPolicy,
    ) -> Result<Attached, Error> {
        let NetworkPolicy::Localhost { allow } = policy else {
            return Err(Error::NothingToRestrict);
        };
        if sys::fd_fs_magic(cgroup).map_err(io_err("fstatfs", Path::new("<cgroup fd>")))?
            != sys::CGROUP2_SUPER_MAGIC
        {
            return Err(Error::NotCgroup2);
        }
        let meta = fs::File::from(
            cgroup
                .try_clone_to_owned()
                .map_err(io_err("dup", Path::new("<cgroup fd>")))?,
        )
        .metadata()
        .map_err(io_err("fstat", Path::new("<cgroup fd>")))?;
        if !meta.is_dir() {
            return Err(Error::NotCgroup2);
        }
        let id = meta.ino();
        let uid = meta.uid();
        // The attach refuses O_PATH fds (the kernel's fdget() skips them):
        // reopen the same directory through /proc/self/fd (no path walk).
        let reopened = sys::reopen_if_o_path(cgroup)
            .map_err(io_err("reopening O_PATH fd", Path::new("<cgroup fd>")))?;
        let cgroup = reopened.as_ref().map_or(cgroup, |f| f.as_fd());
        if !sys::cgroup_alive(cgroup).map_err(io_err("checking", Path::new("<cgroup fd>")))? {
            return Err(Error::CgroupGone { cgroup_id: id });
        }
        let restricted = self.restricted_ids()?;
        if restricted.contains(&id) && self.complete_links(id) {
            self.set_allow(id, allow)?;
            return Ok(Attached {
                cgroup_id: id,
                uid: self.scopes.get(&id, 0).map_or(uid, |v| v.uid),
                policy: policy.clone(),
                alive: true,
            });
        }
        // A half-made restriction of this id (e.g. a crash): start over.
        if restricted.contains(&id) {
            self.release(id)?;
        }
        self.check_nesting(cgroup, id, &restricted)?;
        let mut count = 0;
        for item in self.scopes.iter() {
            let (_, v) = item.map_err(map_err("scopes"))?;
            count += usize::from(v.uid == uid);
        }
        if count >= self.max_per_uid {
            return Err(Error::TooMany {
                uid,
                max: self.max_per_uid,
            });
        }

        // Entries first (harmless without programs), then attach all or none.
        self.scopes
            .insert(
                id,
                ScopeValue {
                    uid,
                    ..Default::default()
                },
                0,
            )
            .map_err(map_err("scopes"))?;
        let r = self
            .set_allow(id, allow)
            .and_then(|()| self.attach_all(cgroup, id))
            .and_then(|links| self.pin_all(id, links));
        if let Err(e) = r {
            let _ = self.remove_entries(id);
            // The attach may have failed because the cgroup went away.
            if matches!(e, Error::Attach { .. } | Error::NotPermitted { .. })
                && !sys::cgroup_alive(cgroup).unwrap_or(true)
            {
                return Err(Error::CgroupGone { cgroup_id: id });
            }
            return Err(e);
        }
        // The cgroup may have been removed after the check and before the
        // links were made: the kernel then refuses the attach (ENOENT,
        // handled above) or auto-detaches the links; check.
        if !self.link_alive(id) {
            self.release(id)?;
            return Err(Error::CgroupGone { cgroup_id: id });
        }
        Ok(Attached {
            cgroup_id: id,
            uid,
            policy: policy.clone(),
            alive: true,
        })
    }

    fn attach_all(
        &mut self,
        cgroup: BorrowedFd<'_>,
        id: u64,
    ) -> Result<Vec<(Hook, FdLink)>, Error> {
        let mut links = Vec::with_capacity(PROGS.len());
        for (name, hook) in PROGS {
            let prog = self.ebpf.program_mut(name).expect("checked in load");
            // `Single` is flags 0: bpf_link_create for cgroups refuses
            // BPF_F_ALLOW_MULTI (EINVAL) because links are always attached
            // as multi (kernel/bpf/cgroup.c `cgroup_bpf_link_attach`).
            let mode = CgroupAttachMode::Single;
            let attach_err = |source: Box<dyn std::error::Error + Send + Sync>| {
                let op = format!("attaching {}", hook.name());
                if is_eperm(&*source) {
                    Error::NotPermitted { op, source }
                } else {
                    Error::Attach {
                        hook: hook.name(),
                        cgroup_id: id,
                        source,
                    }
                }
            };
            let link: FdLink = match hook {
                Hook::Ingress | Hook::Egress => {
                    let p: &mut CgroupSkb = prog.try_into().expect("checked in load");
                    let t = if hook == Hook::Ingress {
                        CgroupSkbAttachType::Ingress
                    } else {
                        CgroupSkbAttachType::Egress
                    };
                    let lid = p
                        .attach(cgroup, t, mode)
                        .map_err(|e| attach_err(Box::new(e)))?;
                    let l = p.take_link(lid).map_err(|e| attach_err(Box::new(e)))?;
                    FdLink::try_from(l).map_err(|e| attach_err(Box::new(e)))?
                }
                _ => {
                    let p: &mut CgroupSockAddr = prog.try_into().expect("checked in load");
                    let lid = p
                        .attach(cgroup, mode)
                        .map_err(|e| attach_err(Box::new(e)))?;
                    let l = p.take_link(lid).map_err(|e| attach_err(Box::new(e)))?;
                    FdLink::try_from(l).map_err(|e| attach_err(Box::new(e)))?
                }
            };
            // On an early return the links made so far drop and detach.
            links.push((hook, link));
        }
        Ok(links)
    }

    fn pin_all(&mut self, id: u64, links: Vec<(Hook, FdLink)>) -> Result<(), Error> {
        let dir = links_dir(&self.pin_root, id);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(io_err("creating", &dir))?;
        let mut pinned = Vec::new();
        for (hook, link) in links {
            let path = dir.join(hook.name());
            match link.pin(&path) {
                Ok(p) => pinned.push(p),
                Err(e) => {
                    for p in pinned {
                        let _ = p.unpin();
                    }
                    let _ = fs::remove_dir(&dir);
                    return Err(perm_or(format!("pinning {}", path.display()), e, |e| {
                        Error::Io {
                            op: "pinning",
                            path,
                            source: io::Error::other(e),
                        }
                    }));
                }
            }
        }
        Ok(())
    }

    fn complete_links(&self, id: u64) -> bool {
        let dir = links_dir(&self.pin_root, id);
        PROGS.iter().all(|(_, h)| dir.join(h.name()).exists())
    }

    /// Whether the pinned links of `id` still point to a live cgroup.
    fn link_alive(&self, id: u64) -> bool {
        let dir = links_dir(&self.pin_root, id);
        PROGS.iter().any(|(_, h)| {
            sys::obj_get(&dir.join(h.name()))
                .and_then(|fd| sys::cgroup_link_target(fd.as_fd()))
                .is_ok_and(|target| target == id)
        })
    }

    fn restricted_ids(&self) -> Result<HashSet<u64>, Error> {
        self.scopes
            .keys()
            .collect::<Result<_, _>>()
            .map_err(map_err("scopes"))
    }

    /// Refuses `id` when an ancestor visible through `..` from `cgroup`, or
    /// a descendant, is restricted.
    fn check_nesting(
        &self,
        cgroup: BorrowedFd<'_>,
        id: u64,
        restricted: &HashSet<u64>,
    ) -> Result<(), Error> {
        if restricted.is_empty() {
            return Ok(());
        }
        let proc_path = PathBuf::from(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&cgroup)
        ));
        let here = fs::canonicalize(&proc_path).map_err(io_err("resolving", &proc_path))?;
        // Ancestors: walk up the path while it stays on cgroup2.
        let mut dir = here.parent();
        while let Some(d) = dir {
            match fs::metadata(d) {
                Ok(m) if sys::fs_magic(d).ok() == Some(sys::CGROUP2_SUPER_MAGIC) => {
                    if restricted.contains(&m.ino()) {
                        return Err(Error::Nested {
                            cgroup_id: id,
                            relation: "inside",
                            other: m.ino(),
                        });
                    }
                }
                _ => break,
            }
            dir = d.parent();
        }
        // Descendants: a scope has a handful of cgroups below it.
        let mut stack = vec![here];
        while let Some(d) = stack.pop() {
            let Ok(rd) = fs::read_dir(&d) else { continue };
            for entry in rd.flatten() {
                let Ok(m) = fs::symlink_metadata(entry.path()) else {
                    continue;
                };
                if m.is_dir() {
                    if restricted.contains(&m.ino()) {
                        return Err(Error::Nested {
                            cgroup_id: id,
                            relation: "above",
                            other: m.ino(),
                        });
                    }
                    stack.push(entry.path());
                }
            }
        }
        Ok(())
    }

    fn allow_keys(&self, id: u64) -> Result<(Vec<Key4>, Vec<Key6>), Error> {
        let idb = id.to_ne_bytes();
        let k4 = self
            .allow4
            .keys()
            .filter(|k| k.as_ref().map_or(true, |k| k.data()[..8] == idb))
            .collect::<Result<Vec<_>, _>>()
            .map_err(map_err("allow4"))?;
        let k6 = self
            .allow6
            .keys()
            .filter(|k| k.as_ref().map_or(true, |k| k.data()[..8] == idb))
            .collect::<Result<Vec<_>, _>>()
            .map_err(map_err("allow6"))?;
        Ok((k4, k6))
    }

    fn policy_of(&self, id: u64) -> Result<NetworkPolicy, Error> {
        let (k4, k6) = self.allow_keys(id)?;
        let mut cidrs = Vec::new();
        for k in k4 {
            let d = k.data();
            let a = Ipv4Addr::new(d[8], d[9], d[10], d[11]);
            cidrs.extend(Cidr::new(a.into(), (k.prefix_len() - 64) as u8));
        }
        for k in k6 {
            let d = k.data();
            let a = Ipv6Addr::from(<[u8; 16]>::try_from(&d[8..24]).expect("16 bytes"));
            cidrs.extend(Cidr::new(a.into(), (k.prefix_len() - 64) as u8));
        }
        Ok(NetworkPolicy::localhost(cidrs))
    }

    /// Makes the allow-list of `id` exactly `allow`: removes stale entries
    /// first, then adds the missing ones.
    fn set_allow(&mut self, id: u64, allow: &[Cidr]) -> Result<(), Error> {
        let idb = id.to_ne_bytes();
        let mut want4 = HashSet::new();
        let mut want6 = HashSet::new();
        for c in allow {
            let plen = 64 + u32::from(c.prefix());
            match c.addr() {
                IpAddr::V4(a) => {
                    let mut d = [0u8; 12];
                    d[..8].copy_from_slice(&idb);
                    d[8..].copy_from_slice(&a.octets());
                    want4.insert((plen, d));
                }
                IpAddr::V6(a) => {
                    let mut d = [0u8; 24];
                    d[..8].copy_from_slice(&idb);
                    d[8..].copy_from_slice(&a.octets());
                    want6.insert((plen, d));
                }
            }
        }
        let (k4, k6) = self.allow_keys(id)?;
        for k in &k4 {
            if !want4.contains(&(k.prefix_len(), k.data())) {
                self.allow4.remove(k).map_err(map_err("allow4"))?;
            }
        }
        for k in &k6 {
            if !want6.contains(&(k.prefix_len(), k.data())) {
                self.allow6.remove(k).map_err(map_err("allow6"))?;
            }
        }
        for (plen, d) in want4 {
            self.allow4
                .insert(&Key::new(plen, d), 1, 0)
                .map_err(map_err("allow4"))?;
        }
        for (plen, d) in want6 {
            self.allow6
                .insert(&Key::new(plen, d), 1, 0)
                .map_err(map_err("allow6"))?;
        }
        Ok(())
    }

    fn remove_entries(&mut self, id: u64) -> Result<bool, Error> {
        let (k4, k6) = self.allow_keys(id)?;
        for k in &k4 {
            self.allow4.remove(k).map_err(map_err("allow4"))?;
        }
        for k in &k6 {
            self.allow6.remove(k).map_err(map_err("allow6"))?;
        }
        match self.scopes.remove(&id) {
            Ok(()) => Ok(true),
            Err(MapError::KeyNotFound) => Ok(false),
            Err(MapError::SyscallError(e))
                if e.io_error.raw_os_error() == Some(nix::libc::ENOENT) =>
            {
                Ok(false)
            }
            Err(e) => Err(map_err("scopes")(e)),
        }
    }

    /// Detaches the programs from the cgroup `cgroup_id` (unpins and closes
    /// its links) and removes its map entries. Returns whether anything was
    /// restricted.
    pub fn release(&mut self, cgroup_id: u64) -> Result<bool, Error> {
        let dir = links_dir(&self.pin_root, cgroup_id);
        let mut found = false;
        match fs::read_dir(&dir) {
            Ok(rd) => {
                for entry in rd {
                    let path = entry.map_err(io_err("reading", &dir))?.path();
                    found = true;
                    match PinnedLink::from_pin(&path) {
                        // Unpin removes the file; dropping the fd detaches.
                        Ok(link) => drop(link.unpin().map_err(io_err("unpinning", &path))?),
                        Err(e) => {
                            let e = perm_or(format!("opening pin {}", path.display()), e, |e| {
                                Error::Io {
                                    op: "opening pin",
                                    path: path.clone(),
                                    source: io::Error::other(e),
                                }
                            });
                            if matches!(e, Error::NotPermitted { .. }) {
                                return Err(e);
                            }
                            fs::remove_file(&path).map_err(io_err("removing", &path))?;
                        }
                    }
                }
                fs::remove_dir(&dir).map_err(io_err("removing", &dir))?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("reading", &dir)(e)),
        }
        found |= self.remove_entries(cgroup_id)?;
        if let Ok(mut log) = self.events.lock() {
            log.recent.remove(&cgroup_id);
        }
        Ok(found)
    }

    fn attached(&self, id: u64, v: &ScopeValue) -> Result<Attached, Error> {
        Ok(Attached {
            cgroup_id: id,
            uid: v.uid,
            policy: self.policy_of(id)?,
            alive: self.link_alive(id),
        })
    }

    /// Policy, counters and the most recent refused destinations of
    /// `cgroup_id`; `None` when it is not restricted.
    pub fn status(&self, cgroup_id: u64) -> Result<Option<Status>, Error> {
        let v = match self.scopes.get(&cgroup_id, 0) {
            Ok(v) => v,
            Err(MapError::KeyNotFound) => return Ok(None),
            Err(e) => return Err(map_err("scopes")(e)),
        };
        let recent = {
            let mut log = self.events.lock().unwrap_or_else(|p| p.into_inner());
            log.drain();
            log.recent
                .get(&cgroup_id)
                .map(|q| q.iter().cloned().collect())
                .unwrap_or_default()
        };
        Ok(Some(Status {
            attached: self.attached(cgroup_id, &v)?,
            counters: v.counters(),
            recent,
        }))
    }

    /// New refused destinations since the last call (any scope), oldest
    /// first; they also feed [`Status::recent`].
    pub fn drain_events(&self) -> Vec<Refused> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
    }

    /// Every restricted cgroup, by id.
    pub fn list(&self) -> Result<Vec<Attached>, Error> {
        let mut out = Vec::new();
        for item in self.scopes.iter() {
            let (id, v) = item.map_err(map_err("scopes"))?;
            out.push(self.attached(id, &v)?);
        }
        out.sort_by_key(|a| a.cgroup_id);
        Ok(out)
    }

    /// How many cgroups owned by `uid` are restricted (the cap's count).
    pub fn count_for_uid(&self, uid: u32) -> Result<usize, Error> {
        let mut n = 0;
        for item in self.scopes.iter() {
            n += usize::from(item.map_err(map_err("scopes"))?.1.uid == uid);
        }
        Ok(n)
    }

    /// Releases every restriction whose cgroup no longer exists (its links
    /// report no live target; the kernel auto-detaches a removed cgroup's
    /// links once its last socket is gone), and stray link directories
    /// without a map entry. Returns how many were collected.
    pub fn gc(&mut self) -> Result<usize, Error> {
        let mut ids = self.restricted_ids()?;
        let links = self.pin_root.join("links");
        for entry in fs::read_dir(&links).map_err(io_err("reading", &links))? {
            let entry = entry.map_err(io_err("reading", &links))?;
            if let Some(id) = entry.file_name().to_str().and_then(|s| s.parse().ok()) {
                ids.insert(id);
            }
        }
        let mut n = 0;
        for id in ids {
            if !self.link_alive(id) {
                self.release(id)?;
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_layout_matches_the_c_struct() {
        let mut b = [0u8; RAW_EVENT_LEN];
        b[..8].copy_from_slice(&42u64.to_ne_bytes());
        b[8..16].copy_from_slice(&7u64.to_ne_bytes());
        b[16..20].copy_from_slice(&1234u32.to_ne_bytes());
        b[20] = 3;
        b[21] = 4;
        b[22] = 6;
        b[24..28].copy_from_slice(&[198, 18, 0, 2]);
        b[40..42].copy_from_slice(&80u16.to_ne_bytes());
        b[48..52].copy_from_slice(b"game");
        let e = parse_event(&b).unwrap();
        assert_eq!(
            e,
            Refused {
                cgroup_id: 42,
                hook: Hook::Connect4,
                addr: "198.18.0.2".parse().unwrap(),
                port: 80,
                protocol: 6,
                task: Some((1234, "game".into())),
                monotonic_ns: 7,
            }
        );
        b[21] = 9;
        assert_eq!(parse_event(&b), None);
        assert_eq!(std::mem::size_of::<ScopeValue>(), 80);
    }

    #[test]
    fn filter_is_send() {
        fn send<T: Send>() {}
        send::<Filter>();
    }
}
