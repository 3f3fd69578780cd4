//! Test harness for cgsplit's end-to-end tests against real parts.
//!
//! - [`testbed`]: what integration tests use: [`testbed::Testbed`] runs a shell
//!   script as an unprivileged uid under a private, real `systemd --user`;
//!   skip-or-fail logic for hosts that cannot do that.
//! - [`fixtures`]: small shared fixtures: reading a script's `key=value`
//!   report, directories the test uid can use, the demo Steam tree.
//! - [`flatpak`]: the offline flatpak test kit (busybox runtime, stand-in
//!   apps, local repo) for runs inside a real sandbox, and the portal tests'
//!   Steam stand-in ([`flatpak::PortalSteam`]).
//! - [`bins`]: finding the workspace's built binaries (`cgsplit`,
//!   `cgsplit-testbed`, `fake-steam`, …) from a test executable.
//! - [`runner`]: the implementation of the `cgsplit-testbed` binary (root-only:
//!   cgroup, namespaces, user manager), following
//!   `shared/reference/TEST-ENVIRONMENT.md` "A real systemd user manager for tests".

pub mod bins;
pub mod fixtures;
pub mod flatpak;
pub mod runner;
pub mod testbed;
