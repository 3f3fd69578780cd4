//! The companion's error type: one variant per way `provision`/`release` can fail,
//! each carrying what was attempted (D-Bus method, unit, bus address, path).

use std::path::PathBuf;

use crate::cgroupfs::CgroupfsError;

/// Everything `cgsplit provision` / `cgsplit release` can fail with.
///
/// Each variant's `Display` is one line meant for stderr as is; `main` prefixes
/// it with `cgsplit: error: `.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Neither `DBUS_SESSION_BUS_ADDRESS` nor `XDG_RUNTIME_DIR` is set, so
    /// there is no session bus address to try (D-Bus spec, "Well-known
    /// Message Bus Instances"; sd-bus' `$XDG_RUNTIME_DIR/bus` default).
    #[error(
        "no session bus address: neither DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR is set; \
         run cgsplit inside your desktop session (`systemctl --user status` must work there)"
    )]
    NoBusAddress,

    /// Connecting to (or authenticating on) the session bus at `address` failed.
    #[error(
        "cannot connect to the session bus at {address}: {source}; run cgsplit inside your \
         desktop session (`systemctl --user status` must work there)"
    )]
    NoSessionBus {
        /// The address tried, e.g. `unix:path=/run/user/1000/bus`.
        address: String,
        /// What zbus reported (boxed: zbus errors are large).
        source: Box<zbus::Error>,
    },

    /// The session bus answers but nobody owns `org.freedesktop.systemd1` on it:
    /// there is no systemd user manager (or it is not connected to this bus).
    #[error(
        "no systemd user manager on the session bus at {address} ({name}: {message}); \
         cgsplit needs `systemd --user` (check `systemctl --user status`)"
    )]
    NoUserManager {
        /// The bus address used.
        address: String,
        /// The D-Bus error name, e.g. `org.freedesktop.DBus.Error.ServiceUnknown`.
        name: String,
        /// The bus's error message.
        message: String,
    },

    /// The user manager answered a call with a D-Bus error.
    #[error("{method}({unit}) failed: {name}: {message}")]
    Call {
        /// The method or property, e.g. `StartTransientUnit`.
        method: &'static str,
        /// The unit it was about, e.g. `cgsplit-620.scope`.
        unit: String,
        /// The D-Bus error name, e.g. `org.freedesktop.systemd1.UnitExists`.
        name: String,
        /// systemd's message.
        message: String,
    },

    /// A D-Bus failure that is not an error reply (I/O, protocol, decoding).
    #[error("{method}({unit}) failed on the bus: {source}")]
    Bus {
        /// The method or property being called.
        method: &'static str,
        /// The unit it was about.
        unit: String,
        /// What zbus reported (boxed: zbus errors are large).
        source: Box<zbus::Error>,
    },

    /// A job finished with a result other than `done` (systemd.job(5) results:
    /// `canceled`, `timeout`, `failed`, `dependency`, `skipped`).
    #[error(
        "{verb} {unit}: job {job} finished with result `{result}` (see `journalctl --user -u {unit}`)"
    )]
    JobFailed {
        /// `start` or `stop`.
        verb: &'static str,
        /// The unit.
        unit: String,
        /// The job's object path.
        job: String,
        /// The `JobRemoved` result string.
        result: String,
    },

    /// No `JobRemoved` for the job arrived in time.
    #[error("{verb} {unit}: no JobRemoved signal for job {job} within {secs} s")]
    JobTimeout {
        /// `start` or `stop`.
        verb: &'static str,
        /// The unit.
        unit: String,
        /// The job's object path.
        job: String,
        /// The timeout that passed.
        secs: u64,
    },

    /// The unit is `failed` and stays so after `ResetFailedUnit`.
    #[error(
        "{unit} is stuck in the failed state (ResetFailedUnit did not clear it); try `systemctl --user reset-failed {unit}`"
    )]
    StuckFailed {
        /// The unit.
        unit: String,
    },

    /// The unit is in a state provision cannot build on (e.g. `deactivating`).
    #[error("{unit} is {state} ({sub_state}); wait for it to settle and try again")]
    UnitBusy {
        /// The unit.
        unit: String,
        /// `ActiveState`, e.g. `deactivating`.
        state: String,
        /// `SubState`, e.g. `stop-sigterm`.
        sub_state: String,
    },

    /// The scope's `ControlGroup` is not below any cgroup2 mount of this process.
    #[error(
        "cgroup {cgroup} of {unit} is not reachable through any cgroup2 mount in /proc/self/mountinfo"
    )]
    CgroupNotMounted {
        /// The unit.
        unit: String,
        /// Its `ControlGroup` property.
        cgroup: String,
    },

    /// The scope has no cgroup (systemd reports an empty `ControlGroup`).
    #[error("{unit} reports no ControlGroup although it is active")]
    NoControlGroup {
        /// The unit.
        unit: String,
    },

    /// Reading a file the companion needs (e.g. `/proc/self/mountinfo`).
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },

    /// The keeper process could not be started.
    #[error("cannot start the keeper process `{exe} keeper`: {source}")]
    Keeper {
        /// The executable re-run as the keeper.
        exe: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },

    /// The game's network policy is restricted but `cgsplit-netd` did not
    /// confirm the filter: the `game/` leaf was not created (fail closed).
    #[error(
        "{unit}: network policy `{policy}` not enforced, so {leaf} was not created and the game \
         will not start: {source}",
        leaf = leaf.display()
    )]
    Network {
        /// The scope.
        unit: String,
        /// The policy asked for (text form).
        policy: String,
        /// The `game/` leaf that was not created.
        leaf: PathBuf,
        /// Why the helper did not confirm (boxed: large).
        source: Box<crate::netd::NetdError>,
    },

    /// `cgsplit run` could not start or wait for its command.
    #[error("cgsplit run: {message}")]
    Run {
        /// What failed.
        message: String,
    },

    /// The config file is invalid or unreadable (boxed: large).
    #[error(transparent)]
    Config(Box<cgsplit_config::ConfigError>),

    /// A cgroupfs operation failed (carries the path).
    #[error(transparent)]
    Cgroupfs(#[from] CgroupfsError),
}

impl From<cgsplit_config::ConfigError> for Error {
    fn from(e: cgsplit_config::ConfigError) -> Self {
        Error::Config(Box::new(e))
    }
}
