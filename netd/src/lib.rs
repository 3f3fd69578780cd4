//! `cgsplit-netd`: the privileged helper that attaches cgsplit's network
//! filter (crate `cgsplit-bpf`) to a game's cgroup — but only to a cgroup the
//! calling user owns, inside their own systemd user manager.
//!
//! - [`service`]: the system D-Bus service `io.github.cgsplit.Netd1`;
//! - [`helper`]: restrict / release / status, shared by the service and the
//!   root CLI (`src/main.rs`);
//! - [`authz`]: who may act on which cgroup (pure);
//! - [`cgroupfs`]: safe path resolution (`openat2`) and the policy xattr;
//! - [`bpffs`]: the pin file system and the capabilities check;
//!
//! Every BPF effect goes through [`cgsplit_bpf::Filter`].
//!
//! Threat model: the filter is a safety net for cooperative programs, not a
//! sandbox: any process of the same uid can move itself to another of that
//! user's cgroups. What the helper guarantees is that no caller can restrict
//! or release anybody else's cgroup, and that a restricted process cannot
//! lift its own restriction through the helper.

pub mod authz;
pub mod bpffs;
pub mod cgroupfs;
pub mod error;
pub mod helper;
pub mod service;
