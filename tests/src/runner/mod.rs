//! The `cgsplit-testbed` runner: boots a private `systemd --user` and runs one
//! command as an unprivileged uid inside it.
//!
//! Two halves, both in the same binary:
//!
//! - [`outer`] (root, host namespaces): makes a fresh cgroup
//!   `<cgroup2>/cgsplit-testbed-<pid>`, starts
//!   `unshare --fork --pid --mount --cgroup --mount-proc --propagation private --kill-child <self> --inner …`
//!   inside it, waits with an overall timeout, and removes the cgroup tree.
//! - [`inner`] (PID 1 of the new pid namespace): mounts a private cgroup2 view
//!   and `/run`, prepares `user@<uid>.service` like logind + `user@.service`
//!   would, starts `/lib/systemd/systemd --user` as the uid, waits until the
//!   manager answers on the session bus, runs the command as the uid from the
//!   leaf `user@<uid>.service/app.slice/cgsplit-testbed`, then stops systemd.
//!
//! With [`Config::second_user`] the inner half does the same for a second
//! uid (the system user [`TEST_USER2`]): its own `user@<uid2>.service`
//! cgroup, `/run/user/<uid2>`, home and `systemd --user`, and runs
//! [`Config::second_cmd`] as that uid from its own client leaf, concurrently
//! with the command. See [`inner`] for how the two synchronise and where the
//! second command's output goes.
//!
//! Recipe and the pitfalls it avoids: `shared/reference/TEST-ENVIRONMENT.md`.

pub mod inner;
pub mod journal;
pub mod outer;
pub mod sys;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// Name of the system user created (if missing) and used when no `--uid` is given.
pub const TEST_USER: &str = "cgsplit-test";

/// Name of the second system user, created (if missing) for
/// [`Config::second_user`] when no `--uid2` is given.
pub const TEST_USER2: &str = "cgsplit-test2";

/// A directory on the run's private `/run`, mode 1777, that every process of
/// the run can write (`$TESTBED_SHARED`): how the command, the second
/// command and root daemons hand each other files and readiness markers.
pub const SHARED_DIR: &str = "/run/cgsplit-testbed-shared";

/// Prefix of the per-run cgroup under the host's cgroup2 mount.
pub const RUN_CGROUP_PREFIX: &str = "cgsplit-testbed-";

/// Leaf (relative to `user@<uid>.service`) the command runs in. Clients must
/// run inside the user manager's delegated tree, or systemd cannot move their
/// pids (TEST-ENVIRONMENT.md step 5).
pub const CLIENT_LEAF: &str = "app.slice/cgsplit-testbed";

/// Where the private system bus listens ([`Config::system_bus`]).
pub const SYSTEM_BUS_SOCKET: &str = "/run/dbus/system_bus_socket";

/// The systemd binary started as the user manager.
pub const SYSTEMD: &str = "/lib/systemd/systemd";

/// `PATH` given to systemd and the command.
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What to run, and how. Shared by both halves.
#[derive(Debug, Clone)]
pub struct Config {
    /// The test uid; `None` (outer only): the [`TEST_USER`] system user.
    pub uid: Option<u32>,
    /// Home directory, chowned (recursively) to the uid. `None`: a fresh
    /// directory on the namespace's private `/run`.
    pub home: Option<PathBuf>,
    /// Extra environment for the command, e.g. `("CGSPLIT", "/…/cgsplit")`.
    pub env: Vec<(String, String)>,
    /// Where to append systemd's log messages (and set `SYSTEMD_LOG_LEVEL=debug`).
    pub log: Option<PathBuf>,
    /// Overall timeout of the run (outer): after it, everything is killed.
    pub timeout: Duration,
    /// Print phase timings to stderr.
    pub verbose: bool,
    /// Start a private system bus (`dbus-daemon --system`) inside the
    /// namespace at [`SYSTEM_BUS_SOCKET`] before anything else;
    /// `DBUS_SYSTEM_BUS_ADDRESS` points there for every process started.
    pub system_bus: bool,
    /// The system bus's configuration file instead of the distribution's
    /// `system.conf` (implies [`Config::system_bus`]); its `<listen>` is
    /// overridden with [`SYSTEM_BUS_SOCKET`].
    pub system_bus_config: Option<PathBuf>,
    /// Shell commands started as root, in the background, each in its own
    /// cgroup `system.slice/cgsplit-testbed-root-<n>`, after the system bus and
    /// before the user manager (e.g. the privileged helper). Killed (by pid)
    /// when the command is done.
    pub root_daemons: Vec<String>,
    /// Also unshare the network namespace (only `lo`, brought up).
    pub net: bool,
    /// Also run a second user manager for a second uid: `uid2`, or (outer
    /// only, when `None`) the [`TEST_USER2`] system user.
    pub second_user: bool,
    /// The second uid (see [`Config::second_user`]); must differ from `uid`.
    pub uid2: Option<u32>,
    /// A shell script (`/bin/sh -c`) run as the second uid, concurrently
    /// with the command (implies [`Config::second_user`]).
    pub second_cmd: Option<String>,
    /// The command and its arguments.
    pub cmd: Vec<OsString>,
}

/// What can go wrong in either half. Every variant says what was attempted
/// and on which path or process.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file-system or cgroupfs operation failed.
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// What was attempted, e.g. `create cgroup`.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A syscall not tied to a path failed.
    #[error("{call} failed: {source}")]
    Sys {
        /// The call, e.g. `mount cgroup2 on /sys/fs/cgroup`.
        call: String,
        /// The errno.
        source: nix::Error,
    },
    /// A process could not be started.
    #[error("cannot start {what}: {source}")]
    Spawn {
        /// The program, e.g. `/lib/systemd/systemd --user`.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The host cannot run the testbed (not root, no cgroup2, …).
    #[error("{0}")]
    Unsupported(String),
    /// Creating or finding the test user failed.
    #[error("test user {user}: {detail}")]
    User {
        /// The user name.
        user: String,
        /// What happened.
        detail: String,
    },
    /// systemd --user did not come up (exited or timed out). `journal` holds
    /// its last log messages.
    #[error("systemd --user {what}\n--- last systemd messages ---\n{journal}")]
    Systemd {
        /// What happened, e.g. `exited with status 1 before $XDG_RUNTIME_DIR/bus appeared`.
        what: String,
        /// The tail of systemd's log.
        journal: String,
    },
    /// The run exceeded its overall timeout.
    #[error("timed out after {secs} s; killed everything in {cgroup}")]
    Timeout {
        /// The timeout.
        secs: u64,
        /// The run's cgroup that was killed.
        cgroup: PathBuf,
    },
}

impl Error {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }

    pub(crate) fn sys(call: impl Into<String>) -> impl FnOnce(nix::Error) -> Self {
        let call = call.into();
        move |source| Error::Sys { call, source }
    }
}

/// Exit status as a shell reports it: the code, or 128 + signal number.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}
