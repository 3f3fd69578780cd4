//! The only place the companion talks D-Bus: the user's systemd manager on the
//! session bus.
//!
//! Interfaces and signatures are systemd's `org.freedesktop.systemd1(5)`
//! (`StartTransientUnit(s name, s mode, a(sv) properties, a(sa(sv)) aux) → o job`,
//! signal `JobRemoved(u id, o job, s unit, s result)`); `ControlGroup` lives on the
//! type-specific `org.freedesktop.systemd1.Scope` interface, not on `.Unit`.

use std::sync::mpsc;
use std::time::Duration;

use zbus::blocking::Connection;
use zbus::proxy::CacheProperties;
use zbus::zvariant::{OwnedObjectPath, Value};

use cgsplit_config::{PropertyValue, UnitProperty};

use crate::error::Error;

/// Well-known bus name of the systemd manager.
pub const SYSTEMD_SERVICE: &str = "org.freedesktop.systemd1";
/// D-Bus error systemd returns for a unit that is not loaded.
pub const NO_SUCH_UNIT: &str = "org.freedesktop.systemd1.NoSuchUnit";
/// D-Bus error for a second `Subscribe()` on one connection.
pub const ALREADY_SUBSCRIBED: &str = "org.freedesktop.systemd1.AlreadySubscribed";
/// D-Bus error for `StartTransientUnit` of a name that is already loaded.
pub const UNIT_EXISTS: &str = "org.freedesktop.systemd1.UnitExists";

/// Hand-written zbus proxies for the three systemd interfaces used.
///
/// `missing_docs` is allowed here because the proxy macro generates
/// undocumented helper items (signal args structs, builders).
#[allow(missing_docs)]
pub mod proxies {
    use zbus::zvariant::{OwnedObjectPath, Value};

    /// `org.freedesktop.systemd1.Manager`: the calls cgsplit makes.
    #[zbus::proxy(
        interface = "org.freedesktop.systemd1.Manager",
        default_service = "org.freedesktop.systemd1",
        default_path = "/org/freedesktop/systemd1",
        gen_async = false,
        blocking_name = "ManagerProxy"
    )]
    pub trait Manager {
        /// Creates and starts a transient unit; returns the start job's path.
        #[zbus(name = "StartTransientUnit")]
        fn start_transient_unit(
            &self,
            name: &str,
            mode: &str,
            properties: &[(&str, Value<'_>)],
            aux: &[(&str, &[(&str, Value<'_>)])],
        ) -> zbus::Result<OwnedObjectPath>;

        /// Stops a unit; returns the stop job's path.
        #[zbus(name = "StopUnit")]
        fn stop_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;

        /// Object path of a loaded unit; `NoSuchUnit` when it is not loaded.
        #[zbus(name = "GetUnit")]
        fn get_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;

        /// Clears a unit's `failed` state (and lets it be garbage-collected).
        #[zbus(name = "ResetFailedUnit")]
        fn reset_failed_unit(&self, name: &str) -> zbus::Result<()>;

        /// Asks systemd to send its signals to this client (API bus only sends
        /// them to subscribers and job trackers; systemd `src/core/dbus.c`).
        #[zbus(name = "Subscribe")]
        fn subscribe(&self) -> zbus::Result<()>;

        /// Changes unit properties; `runtime` = true: until the unit goes away
        /// (what a transient scope wants), written to `/run` drop-ins.
        #[zbus(name = "SetUnitProperties")]
        fn set_unit_properties(
            &self,
            name: &str,
            runtime: bool,
            properties: &[(&str, Value<'_>)],
        ) -> zbus::Result<()>;

        /// Loaded units whose state is in `states` (empty: any) and whose name
        /// matches one of the shell `patterns`; each entry is
        /// `(name, description, load state, active state, sub state, following,
        /// unit path, job id, job type, job path)`.
        #[zbus(name = "ListUnitsByPatterns")]
        #[allow(clippy::type_complexity)]
        fn list_units_by_patterns(
            &self,
            states: &[&str],
            patterns: &[&str],
        ) -> zbus::Result<
            Vec<(
                String,
                String,
                String,
                String,
                String,
                String,
                OwnedObjectPath,
                u32,
                String,
                OwnedObjectPath,
            )>,
        >;

        /// A unit was unloaded (e.g. a scope garbage-collected after its
        /// last process exited).
        #[zbus(signal, name = "UnitRemoved")]
        fn unit_removed(&self, id: String, unit: OwnedObjectPath) -> zbus::Result<()>;

        /// A unit was loaded (`UnitNew(s id, o unit)`, systemd D-Bus API):
        /// the adopter's cue that a new scope may hold a game.
        #[zbus(signal, name = "UnitNew")]
        fn unit_new(&self, id: String, unit: OwnedObjectPath) -> zbus::Result<()>;

        /// A job finished; `result` is `done`, `canceled`, `timeout`, `failed`,
        /// `dependency` or `skipped`.
        #[zbus(signal, name = "JobRemoved")]
        fn job_removed(
            &self,
            id: u32,
            job: OwnedObjectPath,
            unit: String,
            result: String,
        ) -> zbus::Result<()>;
    }

    /// `org.freedesktop.systemd1.Unit`: state properties.
    #[zbus::proxy(
        interface = "org.freedesktop.systemd1.Unit",
        default_service = "org.freedesktop.systemd1",
        gen_async = false,
        blocking_name = "UnitProxy"
    )]
    pub trait Unit {
        /// `active`, `reloading`, `inactive`, `failed`, `activating`, `deactivating`.
        #[zbus(property, name = "ActiveState")]
        fn active_state(&self) -> zbus::Result<String>;

        /// Type-specific state, e.g. `running`, `abandoned`, `stop-sigterm` for scopes.
        #[zbus(property, name = "SubState")]
        fn sub_state(&self) -> zbus::Result<String>;
    }

    /// `org.freedesktop.systemd1.Slice`: where a slice's cgroup is.
    #[zbus::proxy(
        interface = "org.freedesktop.systemd1.Slice",
        default_service = "org.freedesktop.systemd1",
        gen_async = false,
        blocking_name = "SliceProxy"
    )]
    pub trait Slice {
        /// The cgroup path relative to the cgroup2 root.
        #[zbus(property, name = "ControlGroup")]
        fn control_group(&self) -> zbus::Result<String>;
    }

    /// `org.freedesktop.systemd1.Scope`: where the scope's processes live.
    #[zbus::proxy(
        interface = "org.freedesktop.systemd1.Scope",
        default_service = "org.freedesktop.systemd1",
        gen_async = false,
        blocking_name = "ScopeProxy"
    )]
    pub trait Scope {
        /// The cgroup path relative to the cgroup2 root, e.g.
        /// `/user.slice/user-1000.slice/user@1000.service/games.slice/cgsplit-620.scope`.
        #[zbus(property, name = "ControlGroup")]
        fn control_group(&self) -> zbus::Result<String>;

        /// `MemoryHigh=` in bytes; `u64::MAX` = infinity.
        #[zbus(property, name = "MemoryHigh")]
        fn memory_high(&self) -> zbus::Result<u64>;

        /// `MemoryMax=` in bytes; `u64::MAX` = infinity.
        #[zbus(property, name = "MemoryMax")]
        fn memory_max(&self) -> zbus::Result<u64>;

        /// `CPUWeight=`; `u64::MAX` = not set (the kernel default, 100, applies).
        #[zbus(property, name = "CPUWeight")]
        fn cpu_weight(&self) -> zbus::Result<u64>;

        /// `TasksMax=`; `u64::MAX` = infinity.
        #[zbus(property, name = "TasksMax")]
        fn tasks_max(&self) -> zbus::Result<u64>;

        /// `memory.current` of the scope in bytes; `u64::MAX` when systemd
        /// cannot tell (no memory controller on the scope's cgroup).
        #[zbus(property, name = "MemoryCurrent")]
        fn memory_current(&self) -> zbus::Result<u64>;

        /// `pids.current` of the scope; `u64::MAX` when unknown.
        #[zbus(property, name = "TasksCurrent")]
        fn tasks_current(&self) -> zbus::Result<u64>;
    }
}

pub use proxies::{ManagerProxy, ScopeProxy, SliceProxy, UnitProxy};

/// The session bus address to use, from the environment values given:
/// `DBUS_SESSION_BUS_ADDRESS` if set and non-empty, else sd-bus' and zbus'
/// default `unix:path=$XDG_RUNTIME_DIR/bus`; `None` if neither is set.
pub fn session_bus_address(
    dbus_session: Option<&str>,
    xdg_runtime: Option<&str>,
) -> Option<String> {
    match (dbus_session, xdg_runtime) {
        (Some(a), _) if !a.is_empty() => Some(a.to_owned()),
        (_, Some(r)) if !r.is_empty() => Some(format!("unix:path={r}/bus")),
        _ => None,
    }
}

/// The properties of a game scope, as passed to `StartTransientUnit`.
///
/// - `Description=cgsplit: Steam app <app>`
/// - `PIDs=[keeper_pid]` (`au`): a scope needs at least one pid (systemd
///   `scope_verify`: "Scope has no PIDs. Refusing.").
/// - `Slice=games.slice`: implicitly created, no unit file needed.
/// - `Delegate=true`: the user may create `keeper/`/`game/` and move pids.
/// - `CollectMode=inactive-or-failed`: a failed scope is garbage-collected
///   at once instead of blocking its fixed name until `reset-failed`.
///
/// No `AddRef`: it pins the unit to the creating bus client for as long as that
/// client is connected, which for a CLI that exits at once adds nothing; the
/// keeper is what keeps the scope alive.
///
/// `limits` (from [`cgsplit_config::GameConfig::unit_properties`]) are appended:
/// systemd applies resource-control properties given at creation
/// (`bus_cgroup_set_property`, systemd `src/core/dbus-cgroup.c`).
pub fn scope_properties(
    app: cgsplit_core::AppId,
    keeper_pid: u32,
    limits: &[UnitProperty],
) -> Vec<(&'static str, Value<'static>)> {
    let mut props = vec![
        (
            "Description",
            Value::from(format!("cgsplit: Steam app {app}")),
        ),
        ("PIDs", Value::from(vec![keeper_pid])),
        ("Slice", Value::from(cgsplit_core::scope::GAMES_SLICE)),
        ("Delegate", Value::from(true)),
        ("CollectMode", Value::from("inactive-or-failed")),
    ];
    props.extend(limits.iter().map(|(k, v)| (limit_name(k), limit_value(*v))));
    props
}

/// The `'static` spelling of a limit property name (zbus wants `&str` keys
/// that outlive the call; the set of names is fixed).
fn limit_name(name: &str) -> &'static str {
    match name {
        "MemoryHigh" => "MemoryHigh",
        "MemoryHighScale" => "MemoryHighScale",
        "MemoryMax" => "MemoryMax",
        "MemoryMaxScale" => "MemoryMaxScale",
        "CPUWeight" => "CPUWeight",
        "TasksMax" => "TasksMax",
        "TasksMaxScale" => "TasksMaxScale",
        other => unreachable!("cgsplit-config emitted an unknown property {other}"),
    }
}

/// A limit value as its D-Bus variant: `t` or `u`.
pub fn limit_value(v: PropertyValue) -> Value<'static> {
    match v {
        PropertyValue::U64(n) => Value::U64(n),
        PropertyValue::U32(n) => Value::U32(n),
    }
}

/// The resource-control figures of a scope as systemd reports them, each
/// `None` when systemd says "not set"/"unknown" (`u64::MAX`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScopeFigures {
    /// `MemoryHigh` (bytes; `None`: infinity).
    pub memory_high: Option<u64>,
    /// `MemoryMax` (bytes; `None`: infinity).
    pub memory_max: Option<u64>,
    /// `CPUWeight` (`None`: not set).
    pub cpu_weight: Option<u64>,
    /// `TasksMax` (`None`: infinity).
    pub tasks_max: Option<u64>,
    /// `MemoryCurrent` (`None`: no memory accounting on this host's cgroup).
    pub memory_current: Option<u64>,
    /// `TasksCurrent` (`None`: no pids accounting).
    pub tasks_current: Option<u64>,
}

/// One entry of `ListUnitsByPatterns`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedUnit {
    /// Unit name, e.g. `cgsplit-620.scope`.
    pub name: String,
    /// `ActiveState`.
    pub active_state: String,
    /// `SubState`.
    pub sub_state: String,
    /// Object path.
    pub path: OwnedObjectPath,
}

/// A loaded unit's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitState {
    /// The unit's object path, e.g. `/org/freedesktop/systemd1/unit/cgsplit_2d620_2escope`.
    pub path: OwnedObjectPath,
    /// `ActiveState`, e.g. `active`.
    pub active_state: String,
    /// `SubState`, e.g. `running`.
    pub sub_state: String,
}

/// A connection to the calling user's systemd manager over the session bus.
pub struct UserManager {
    conn: Connection,
    address: String,
    subscribed: std::cell::Cell<bool>,
}

impl UserManager {
    /// Connects to the session bus named by the environment (see
    /// [`session_bus_address`]). Errors: [`Error::NoBusAddress`],
    /// [`Error::NoSessionBus`] (naming the address tried). Whether systemd is on
    /// the bus shows at the first call ([`Error::NoUserManager`]).
    pub fn connect() -> Result<Self, Error> {
        let var = |k| std::env::var(k).ok();
        let address = session_bus_address(
            var("DBUS_SESSION_BUS_ADDRESS").as_deref(),
            var("XDG_RUNTIME_DIR").as_deref(),
        )
        .ok_or(Error::NoBusAddress)?;
        Self::connect_to(&address)
    }

    /// Connects to the bus at `address` (D-Bus address syntax, e.g.
    /// `unix:path=/run/user/1000/bus`).
    pub fn connect_to(address: &str) -> Result<Self, Error> {
        let conn = zbus::blocking::connection::Builder::address(address)
            .and_then(|b| b.build())
            .map_err(|source| Error::NoSessionBus {
                address: address.to_owned(),
                source: Box::new(source),
            })?;
        Ok(Self {
            conn,
            address: address.to_owned(),
            subscribed: std::cell::Cell::new(false),
        })
    }

    /// The bus address this manager was reached through.
    pub fn address(&self) -> &str {
        &self.address
    }

    fn manager(&self) -> Result<ManagerProxy<'static>, Error> {
        ManagerProxy::builder(&self.conn)
            .cache_properties(CacheProperties::No)
            .build()
            .map_err(|e| self.error("Manager", "", e))
    }

    /// Maps a zbus error of `method` on `unit` to [`Error`]: error replies by
    /// name, "nobody owns org.freedesktop.systemd1" as [`Error::NoUserManager`].
    fn error(&self, method: &'static str, unit: &str, e: zbus::Error) -> Error {
        let (name, message) = match e {
            zbus::Error::MethodError(name, message, _) => {
                (name.to_string(), message.unwrap_or_default())
            }
            zbus::Error::FDO(fdo) => (
                zbus::DBusError::name(&*fdo).to_string(),
                zbus::DBusError::description(&*fdo)
                    .unwrap_or_default()
                    .to_owned(),
            ),
            source => {
                return Error::Bus {
                    method,
                    unit: unit.to_owned(),
                    source: Box::new(source),
                };
            }
        };
        if is_no_manager(&name) {
            Error::NoUserManager {
                address: self.address.clone(),
                name,
                message,
            }
        } else {
            Error::Call {
                method,
                unit: unit.to_owned(),
                name,
                message,
            }
        }
    }

    /// State of `unit`, or `None` when it is not loaded (`NoSuchUnit`).
    pub fn unit_state(&self, unit: &str) -> Result<Option<UnitState>, Error> {
        let path = match self.manager()?.get_unit(unit) {
            Ok(p) => p,
            Err(e) => {
                return match self.error("GetUnit", unit, e) {
                    Error::Call { name, .. } if name == NO_SUCH_UNIT => Ok(None),
                    other => Err(other),
                };
            }
        };
        let proxy = UnitProxy::builder(&self.conn)
            .path(path.clone())
            .and_then(|b| b.cache_properties(CacheProperties::No).build())
            .map_err(|e| self.error("Unit", unit, e))?;
        let active_state = proxy
            .active_state()
            .map_err(|e| self.error("ActiveState", unit, e))?;
        let sub_state = proxy
            .sub_state()
            .map_err(|e| self.error("SubState", unit, e))?;
        Ok(Some(UnitState {
            path,
            active_state,
            sub_state,
        }))
    }

    /// The `ControlGroup` of the scope at `path` (named `unit` in errors).
    pub fn control_group(&self, unit: &str, path: &OwnedObjectPath) -> Result<String, Error> {
        ScopeProxy::builder(&self.conn)
            .path(path.clone())
            .and_then(|b| b.cache_properties(CacheProperties::No).build())
            .and_then(|p| p.control_group())
            .map_err(|e| self.error("ControlGroup", unit, e))
    }

    /// `Subscribe()` once per connection (systemd answers a second call
    /// with `AlreadySubscribed`, which is treated as success).
    pub fn subscribe(&self, unit: &str) -> Result<(), Error> {
        if self.subscribed.get() {
            return Ok(());
        }
        match self.manager()?.subscribe() {
            Ok(()) => {}
            Err(e) => match self.error("Subscribe", unit, e) {
                Error::Call { name, .. } if name == ALREADY_SUBSCRIBED => {}
                other => return Err(other),
            },
        }
        self.subscribed.set(true);
        Ok(())
    }

    /// The underlying bus connection (for signal subscriptions).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The Manager proxy (for signal subscriptions).
    pub fn manager_proxy(&self) -> Result<ManagerProxy<'static>, Error> {
        self.manager()
    }

    /// `SetUnitProperties(unit, runtime=true, props)`: changes limits of a
    /// running scope; systemd applies them to the cgroup at once.
    pub fn set_properties(&self, unit: &str, props: &[UnitProperty]) -> Result<(), Error> {
        let props: Vec<(&str, Value<'_>)> = props
            .iter()
            .map(|(k, v)| (k.as_str(), limit_value(*v)))
            .collect();
        self.manager()?
            .set_unit_properties(unit, true, &props)
            .map_err(|e| self.error("SetUnitProperties", unit, e))
    }

    /// Loaded units matching the shell glob `pattern`, any state.
    pub fn list_units(&self, pattern: &str) -> Result<Vec<ListedUnit>, Error> {
        let units = self
            .manager()?
            .list_units_by_patterns(&[], &[pattern])
            .map_err(|e| self.error("ListUnitsByPatterns", pattern, e))?;
        Ok(units
            .into_iter()
            .map(|u| ListedUnit {
                name: u.0,
                active_state: u.3,
                sub_state: u.4,
                path: u.6,
            })
            .collect())
    }

    /// The resource-control figures of the scope at `path`.
    pub fn scope_figures(&self, unit: &str, path: &OwnedObjectPath) -> Result<ScopeFigures, Error> {
        let p = ScopeProxy::builder(&self.conn)
            .path(path.clone())
            .and_then(|b| b.cache_properties(CacheProperties::No).build())
            .map_err(|e| self.error("Scope", unit, e))?;
        let known = |v: u64| (v != u64::MAX).then_some(v);
        let get = |name: &'static str, r: zbus::Result<u64>| {
            r.map(known).map_err(|e| self.error(name, unit, e))
        };
        Ok(ScopeFigures {
            memory_high: get("MemoryHigh", p.memory_high())?,
            memory_max: get("MemoryMax", p.memory_max())?,
            cpu_weight: get("CPUWeight", p.cpu_weight())?,
            tasks_max: get("TasksMax", p.tasks_max())?,
            memory_current: get("MemoryCurrent", p.memory_current())?,
            tasks_current: get("TasksCurrent", p.tasks_current())?,
        })
    }

    /// The `ControlGroup` of the slice at `path` (named `unit` in errors).
    pub fn slice_control_group(&self, unit: &str, path: &OwnedObjectPath) -> Result<String, Error> {
        SliceProxy::builder(&self.conn)
            .path(path.clone())
            .and_then(|b| b.cache_properties(CacheProperties::No).build())
            .and_then(|p| p.control_group())
            .map_err(|e| self.error("ControlGroup", unit, e))
    }

    /// `ResetFailedUnit(unit)`.
    pub fn reset_failed(&self, unit: &str) -> Result<(), Error> {
        self.manager()?
            .reset_failed_unit(unit)
            .map_err(|e| self.error("ResetFailedUnit", unit, e))
    }

    /// Starts transient `unit` with `properties` in mode `fail` and waits up to
    /// `timeout` for its job. Errors: the call's D-Bus error by name (e.g.
    /// `org.freedesktop.systemd1.UnitExists`), [`Error::JobFailed`],
    /// [`Error::JobTimeout`].
    pub fn start_transient(
        &self,
        unit: &str,
        properties: &[(&str, Value<'_>)],
        timeout: Duration,
    ) -> Result<(), Error> {
        self.run_job("start", "StartTransientUnit", unit, timeout, |m| {
            m.start_transient_unit(unit, "fail", properties, &[])
        })
    }

    /// `StopUnit(unit, "replace")` and waits up to `timeout` for its job.
    pub fn stop(&self, unit: &str, timeout: Duration) -> Result<(), Error> {
        self.run_job("stop", "StopUnit", unit, timeout, |m| {
            m.stop_unit(unit, "replace")
        })
    }

    /// Subscribes to `JobRemoved` *before* `call` queues the job (so the signal
    /// cannot be missed), then waits for the signal of the returned job.
    fn run_job(
        &self,
        verb: &'static str,
        method: &'static str,
        unit: &str,
        timeout: Duration,
        call: impl FnOnce(&ManagerProxy<'static>) -> zbus::Result<OwnedObjectPath>,
    ) -> Result<(), Error> {
        let m = self.manager()?;
        self.subscribe(unit)?;
        let signals = m
            .receive_job_removed()
            .map_err(|e| self.error("JobRemoved", unit, e))?;
        let job = call(&m).map_err(|e| self.error(method, unit, e))?;

        // The blocking iterator has no timeout: read it on a thread and wait
        // on a channel. On timeout the thread is left blocked; the CLI exits.
        let (tx, rx) = mpsc::channel();
        let want = job.clone();
        std::thread::spawn(move || {
            for sig in signals {
                let Ok(args) = sig.args() else { continue };
                if args.job == want {
                    let _ = tx.send(args.result.clone());
                    return;
                }
            }
        });
        let result = rx.recv_timeout(timeout).map_err(|_| Error::JobTimeout {
            verb,
            unit: unit.to_owned(),
            job: job.to_string(),
            secs: timeout.as_secs(),
        })?;
        if result == "done" {
            Ok(())
        } else {
            Err(Error::JobFailed {
                verb,
                unit: unit.to_owned(),
                job: job.to_string(),
                result,
            })
        }
    }
}

/// Whether a D-Bus error name means "there is no systemd on this bus": nobody
/// owns the name and it cannot be activated (bus daemon errors, D-Bus
/// specification "Message Bus Messages"). systemd ships
/// `dbus-1/services/org.freedesktop.systemd1.service` with `Exec=/bin/false`,
/// so on a session bus that systemd is not connected to, dbus-daemon answers
/// `org.freedesktop.DBus.Error.Spawn.ChildExited` (seen with dbus 1.14).
fn is_no_manager(name: &str) -> bool {
    matches!(
        name,
        "org.freedesktop.DBus.Error.ServiceUnknown" | "org.freedesktop.DBus.Error.NameHasNoOwner"
    ) || name.starts_with("org.freedesktop.DBus.Error.Spawn.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_address_prefers_dbus_session_bus_address() {
        assert_eq!(
            session_bus_address(Some("unix:path=/x"), Some("/run/user/1")).as_deref(),
            Some("unix:path=/x")
        );
        assert_eq!(
            session_bus_address(None, Some("/run/user/1000")).as_deref(),
            Some("unix:path=/run/user/1000/bus")
        );
        assert_eq!(
            session_bus_address(Some(""), Some("/run/user/7")).as_deref(),
            Some("unix:path=/run/user/7/bus")
        );
        assert_eq!(session_bus_address(None, None), None);
        assert_eq!(session_bus_address(Some(""), Some("")), None);
    }

    #[test]
    fn scope_properties_have_systemd_shapes() {
        let app = cgsplit_core::AppId::new(620).unwrap();
        let props = scope_properties(
            app,
            4242,
            &[("MemoryMaxScale".into(), PropertyValue::U32(7))],
        );
        let sig = |k: &str| {
            let (_, v) = props.iter().find(|(n, _)| *n == k).unwrap();
            v.value_signature().to_string()
        };
        assert_eq!(sig("Description"), "s");
        assert_eq!(sig("PIDs"), "au");
        assert_eq!(sig("Slice"), "s");
        assert_eq!(sig("Delegate"), "b");
        assert_eq!(sig("CollectMode"), "s");
        let get = |k: &str| props.iter().find(|(n, _)| *n == k).unwrap().1.clone();
        assert_eq!(get("PIDs"), Value::from(vec![4242u32]));
        assert_eq!(get("Slice"), Value::from("games.slice"));
        assert_eq!(get("Description"), Value::from("cgsplit: Steam app 620"));
        assert!(!props.iter().any(|(n, _)| *n == "AddRef"));
        assert_eq!(sig("MemoryMaxScale"), "u");
        assert_eq!(get("MemoryMaxScale"), Value::U32(7));
    }

    #[test]
    fn no_owner_errors_are_recognised() {
        assert!(is_no_manager("org.freedesktop.DBus.Error.ServiceUnknown"));
        assert!(is_no_manager("org.freedesktop.DBus.Error.NameHasNoOwner"));
        assert!(is_no_manager(
            "org.freedesktop.DBus.Error.Spawn.ChildExited"
        ));
        assert!(!is_no_manager(NO_SUCH_UNIT));
        assert!(!is_no_manager(UNIT_EXISTS));
    }
}
