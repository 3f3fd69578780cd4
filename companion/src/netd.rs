//! The companion's side of the privileged network helper `cgsplit-netd` on the
//! system bus (names and methods: [`cgsplit_core::policy`]).
//!
//! Our own small proxy, not the netd crate: the companion must not link the
//! BPF loader, and the bus API is the contract between the two.
//!
//! Fail closed: when a game's policy is restricted and the helper cannot be
//! reached or refuses, [`crate::provision_with`] does not create the game's
//! `game/` leaf, so the shim (started with `--network …`) refuses to start it.

use cgsplit_core::policy::{NETD_BUS_NAME, NETD_INTERFACE, NETD_OBJECT_PATH};
use zbus::blocking::Connection;

/// Why the helper could not restrict, release or report.
#[derive(Debug, thiserror::Error)]
pub enum NetdError {
    /// No system bus (e.g. `DBUS_SYSTEM_BUS_ADDRESS` points nowhere).
    #[error(
        "cannot reach the system bus ({address}) to ask cgsplit-netd: {source}; \
         the network policy cannot be enforced"
    )]
    NoBus {
        /// The address tried.
        address: String,
        /// zbus's error (boxed: large).
        source: Box<zbus::Error>,
    },
    /// The helper answered with an error, or is not on the bus.
    #[error("cgsplit-netd {method}({cgroup}) failed: {name}: {message}{hint}")]
    Call {
        /// `Restrict`, `Release` or `Status`.
        method: &'static str,
        /// The cgroup path given.
        cgroup: String,
        /// The D-Bus error name.
        name: String,
        /// The helper's message.
        message: String,
        /// What to do, when the error says the helper is absent.
        hint: &'static str,
    },
}

/// The system bus address used: `DBUS_SYSTEM_BUS_ADDRESS`, else the D-Bus
/// specification's default `unix:path=/var/run/dbus/system_bus_socket`.
pub fn system_bus_address() -> String {
    std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
        .ok()
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "unix:path=/var/run/dbus/system_bus_socket".into())
}

/// A connection to the system bus for calling the helper.
pub struct Netd {
    conn: Connection,
}

impl Netd {
    /// Connects to the system bus ([`system_bus_address`]).
    pub fn connect() -> Result<Self, NetdError> {
        let address = system_bus_address();
        let conn = zbus::blocking::connection::Builder::address(address.as_str())
            .and_then(|b| b.build())
            .map_err(|source| NetdError::NoBus {
                address,
                source: Box::new(source),
            })?;
        Ok(Netd { conn })
    }

    fn call<B>(
        &self,
        method: &'static str,
        cgroup: &str,
        body: &B,
    ) -> Result<zbus::Message, NetdError>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        self.conn
            .call_method(
                Some(NETD_BUS_NAME),
                NETD_OBJECT_PATH,
                Some(NETD_INTERFACE),
                method,
                body,
            )
            .map_err(|e| {
                let (name, message) = match e {
                    zbus::Error::MethodError(n, m, _) => (n.to_string(), m.unwrap_or_default()),
                    zbus::Error::FDO(f) => (
                        zbus::DBusError::name(&*f).to_string(),
                        zbus::DBusError::description(&*f)
                            .unwrap_or_default()
                            .to_owned(),
                    ),
                    other => ("(bus)".to_owned(), other.to_string()),
                };
                let absent = name == "org.freedesktop.DBus.Error.ServiceUnknown"
                    || name == "org.freedesktop.DBus.Error.NameHasNoOwner"
                    || name.starts_with("org.freedesktop.DBus.Error.Spawn.");
                NetdError::Call {
                    method,
                    cgroup: cgroup.to_owned(),
                    name,
                    message,
                    hint: if absent {
                        " (is cgsplit-netd installed and its D-Bus policy in place? \
                         see `cgsplit-netd --help`)"
                    } else {
                        ""
                    },
                }
            })
    }

    /// `Restrict(cgroup, policy)`: the helper attaches the filter to
    /// `cgroup` (relative to the cgroup2 root, e.g. the scope's
    /// `ControlGroup`) and sets the `user.cgsplit.policy` xattr. Returns
    /// only after the helper confirmed.
    pub fn restrict(&self, cgroup: &str, policy: &str) -> Result<(), NetdError> {
        self.call("Restrict", cgroup, &(cgroup, policy)).map(drop)
    }

    /// `Release(cgroup)`: detaches the filter.
    pub fn release(&self, cgroup: &str) -> Result<(), NetdError> {
        self.call("Release", cgroup, &(cgroup,)).map(drop)
    }

    /// `Status(cgroup) -> s`: the helper's JSON report (policy, counters,
    /// last refused destinations), passed through as parsed JSON.
    pub fn status(&self, cgroup: &str) -> Result<serde_json::Value, NetdError> {
        let reply = self.call("Status", cgroup, &(cgroup,))?;
        let text: String = reply.body().deserialize().map_err(|e| NetdError::Call {
            method: "Status",
            cgroup: cgroup.to_owned(),
            name: "(reply)".into(),
            message: e.to_string(),
            hint: "",
        })?;
        serde_json::from_str(&text).map_err(|e| NetdError::Call {
            method: "Status",
            cgroup: cgroup.to_owned(),
            name: "(reply)".into(),
            message: format!("not JSON: {e}"),
            hint: "",
        })
    }
}
