//! The system D-Bus service `io.github.cgsplit.Netd1` at
//! `/io/github/cgsplit/Netd1` (names in [`cgsplit_core::policy`]).
//!
//! Anyone may call it (the shipped bus policy allows it); the helper decides
//! itself, from the caller's uid and pid as the bus daemon reports them
//! (`org.freedesktop.DBus.GetConnectionUnixUser` /
//! `GetConnectionUnixProcessID` on the message's unique sender name, D-Bus
//! specification "Message Bus Messages") — never from the arguments.

use std::sync::Mutex;

use cgsplit_core::policy::{NETD_BUS_NAME, NETD_OBJECT_PATH};
use zbus::message::Header;

use crate::authz::Caller;
use crate::error::{Error, Result};
use crate::helper::Helper;

/// The served object; every call locks the helper, so requests are handled
/// one at a time.
pub struct Netd1 {
    helper: Mutex<Helper>,
}

impl Netd1 {
    fn with_helper<T>(&self, f: impl FnOnce(&mut Helper) -> Result<T>) -> Result<T> {
        let mut h = self.helper.lock().map_err(|_| {
            Error::Failed("the helper's state is poisoned; restart cgsplit-netd".into())
        })?;
        f(&mut h)
    }
}

/// `io.github.cgsplit.Netd1`; see `NETD_INTERFACE` in `cgsplit_core::policy`.
#[zbus::interface(name = "io.github.cgsplit.Netd1")]
impl Netd1 {
    /// Restrict(s cgroup, s policy): attach the filter with `policy` to the
    /// caller's `cgroup` and set its `user.cgsplit.policy` xattr.
    async fn restrict(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        cgroup: String,
        policy: String,
    ) -> Result<()> {
        let caller = caller_of(conn, &hdr).await?;
        let r = self.with_helper(|h| h.restrict(&caller, &cgroup, &policy));
        log(
            "Restrict",
            &caller,
            &cgroup,
            &r.as_ref().map(|o| format!("{o:?}")),
        );
        r.map(|_| ())
    }

    /// Release(s cgroup): detach the filter from the caller's `cgroup` and
    /// remove the xattr; refused when the caller itself is restricted.
    async fn release(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        cgroup: String,
    ) -> Result<()> {
        let caller = caller_of(conn, &hdr).await?;
        let r = self.with_helper(|h| h.release(&caller, &cgroup, true));
        log(
            "Release",
            &caller,
            &cgroup,
            &r.as_ref().map(|was| {
                if *was {
                    "detached".into()
                } else {
                    "was not restricted".into()
                }
            }),
        );
        r.map(|_| ())
    }

    /// Status(s cgroup) -> s json: policy, xattr and the filter's counters.
    async fn status(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &zbus::Connection,
        cgroup: String,
    ) -> Result<String> {
        let caller = caller_of(conn, &hdr).await?;
        self.with_helper(|h| h.status(&caller, &cgroup))
            .map(|v| v.to_string())
    }
}

async fn caller_of(conn: &zbus::Connection, hdr: &Header<'_>) -> Result<Caller> {
    let sender = hdr
        .sender()
        .ok_or_else(|| {
            Error::AccessDenied("the call has no sender; call through the system bus".into())
        })?
        .to_owned();
    let ask = |e: zbus::fdo::Error| {
        Error::Failed(format!("cannot ask the bus daemon who {sender} is: {e}"))
    };
    let dbus = zbus::fdo::DBusProxy::builder(conn)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .map_err(|e| Error::Failed(format!("cannot reach the bus daemon: {e}")))?;
    let uid = dbus
        .get_connection_unix_user(sender.clone().into())
        .await
        .map_err(ask)?;
    let pid = dbus
        .get_connection_unix_process_id(sender.clone().into())
        .await
        .ok();
    Ok(Caller { uid, pid })
}

fn log(method: &str, caller: &Caller, cgroup: &str, r: &Result<String, &Error>) {
    let who = format!(
        "uid={} pid={}",
        caller.uid,
        caller.pid.map_or_else(|| "?".into(), |p| p.to_string())
    );
    match r {
        Ok(what) => eprintln!("cgsplit-netd: {method} {cgroup:?} by {who}: {what}"),
        Err(e) => eprintln!("cgsplit-netd: {method} {cgroup:?} by {who}: refused: {e}"),
    }
}

/// Serves [`Netd1`] on the system bus, owning [`NETD_BUS_NAME`]. The bus is
/// `address` (a D-Bus address such as `unix:path=/tmp/x/bus`), else the bus
/// that activated the helper (`DBUS_STARTER_ADDRESS`, set by dbus-daemon for
/// a service it starts itself), else the system bus (`DBUS_SYSTEM_BUS_ADDRESS`
/// or `/run/dbus/system_bus_socket`). Prints one `ready` line on stderr once
/// the name is owned; returns only on error, e.g. when the bus goes away.
pub fn serve(helper: Helper, address: Option<&str>) -> Result<()> {
    let starter = std::env::var("DBUS_STARTER_ADDRESS").ok();
    let address = address.or(starter.as_deref());
    let builder = match address {
        Some(a) => zbus::blocking::connection::Builder::address(a)?,
        None => zbus::blocking::connection::Builder::system()?,
    };
    let conn = builder
        .name(NETD_BUS_NAME)?
        .serve_at(
            NETD_OBJECT_PATH,
            Netd1 {
                helper: Mutex::new(helper),
            },
        )?
        .build()
        .map_err(|e| {
            Error::Failed(format!(
                "cannot own {NETD_BUS_NAME} on the {} bus: {e} (is io.github.cgsplit.Netd1.conf installed in /usr/share/dbus-1/system.d, and is another cgsplit-netd running?)",
                address.unwrap_or("system")
            ))
        })?;
    // Requests are served on zbus's executor thread; this one watches the
    // connection, so a helper that lost the bus or its name exits (and D-Bus
    // activation or systemd starts a fresh one) instead of idling forever.
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .sender("org.freedesktop.DBus")?
        .interface("org.freedesktop.DBus")?
        .member("NameLost")?
        .build();
    let lost = |e: zbus::Error| Error::Failed(format!("lost the bus connection: {e}"));
    let messages =
        zbus::blocking::MessageIterator::for_match_rule(rule, &conn, None).map_err(lost)?;
    eprintln!("cgsplit-netd: ready, serving {NETD_BUS_NAME} at {NETD_OBJECT_PATH}");
    for msg in messages {
        match msg {
            Ok(m) => {
                if m.body()
                    .deserialize::<String>()
                    .is_ok_and(|n| n == NETD_BUS_NAME)
                {
                    return Err(Error::Failed(format!("lost the bus name {NETD_BUS_NAME}")));
                }
            }
            Err(e) => return Err(lost(e)),
        }
    }
    Err(Error::Failed("lost the bus connection".into()))
}
