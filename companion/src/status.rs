//! `cgsplit status`: one row per game (configured, or with a loaded scope).
//!
//! Every figure comes from the host: unit state and limits from systemd's
//! D-Bus properties, pids from the `game/` leaf's `cgroup.procs`, the network
//! policy actually attached from the scope's `user.cgsplit.policy` xattr (set
//! by the helper after a successful attach), counters from the helper's
//! `Status` when it answers. A figure the host cannot provide is `None`
//! (shown `n/a`, JSON `null`), never a made-up zero: e.g. `MemoryCurrent`
//! when the scope's cgroup has no memory controller (this project's VMs bind
//! memory to cgroup v1).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use cgsplit_config::Config;
use cgsplit_core::AppId;
use cgsplit_core::scope::{GAME_LEAF, parse_scope_unit, scope_unit};
use serde::Serialize;

use crate::error::Error;
use crate::systemd::{ScopeFigures, UserManager};
use crate::{NetdLink, cgroupfs};

/// The status of one game.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GameStatus {
    /// Steam app id.
    pub app: u32,
    /// Scope unit name.
    pub scope: String,
    /// `ActiveState`, or `not loaded`.
    pub state: String,
    /// `SubState`, when loaded.
    pub sub_state: Option<String>,
    /// The scope's cgroup path (relative to the cgroup2 root).
    pub control_group: Option<String>,
    /// Pids in `game/` (`None`: no leaf / unreadable).
    pub game_pids: Option<Vec<u32>>,
    /// Bytes in use (`None`: no memory accounting on this host).
    pub memory_current: Option<u64>,
    /// `MemoryHigh` bytes (`None`: infinity or not loaded).
    pub memory_high: Option<u64>,
    /// `MemoryMax` bytes (`None`: infinity or not loaded).
    pub memory_max: Option<u64>,
    /// Whether the scope's cgroup has the memory controller (`cgroup.controllers`),
    /// i.e. whether memory limits are enforced.
    pub memory_controller: Option<bool>,
    /// `CPUWeight` (`None`: not set, kernel default 100).
    pub cpu_weight: Option<u64>,
    /// `TasksCurrent` (`None`: no pids accounting).
    pub tasks_current: Option<u64>,
    /// `TasksMax` (`None`: infinity).
    pub tasks_max: Option<u64>,
    /// The policy in the config.
    pub network_config: String,
    /// The policy attached (xattr), `None` when none is.
    pub network_enforced: Option<String>,
    /// The helper's `Status` report, when it answered.
    pub netd: Option<serde_json::Value>,
    /// Why the helper's report is missing (only asked for restricted scopes).
    pub netd_error: Option<String>,
}

/// Collects the status of every configured game and every loaded
/// `cgsplit-<app>.scope`, in app id order.
pub fn collect(
    mgr: &UserManager,
    config: &Config,
    mountinfo: &str,
    netd: &mut NetdLink,
) -> Result<Vec<GameStatus>, Error> {
    let mut loaded = BTreeMap::new();
    for u in mgr.list_units(crate::lifecycle::SCOPES_GLOB)? {
        if let Some(app) = parse_scope_unit(&u.name) {
            loaded.insert(app, u);
        }
    }
    let mut apps: Vec<AppId> = config.games.keys().copied().collect();
    apps.extend(loaded.keys().copied());
    apps.sort();
    apps.dedup();
    let mut out = Vec::new();
    for app in apps {
        let cfg = config.game(app);
        let mut s = GameStatus {
            app: app.get(),
            scope: scope_unit(app),
            state: "not loaded".into(),
            sub_state: None,
            control_group: None,
            game_pids: None,
            memory_current: None,
            memory_high: None,
            memory_max: None,
            memory_controller: None,
            cpu_weight: None,
            tasks_current: None,
            tasks_max: None,
            network_config: cfg.network.to_string(),
            network_enforced: None,
            netd: None,
            netd_error: None,
        };
        if let Some(u) = loaded.get(&app) {
            s.state = u.active_state.clone();
            s.sub_state = Some(u.sub_state.clone());
            let f: ScopeFigures = mgr.scope_figures(&u.name, &u.path).unwrap_or_default();
            s.memory_current = f.memory_current;
            s.memory_high = f.memory_high;
            s.memory_max = f.memory_max;
            s.cpu_weight = f.cpu_weight;
            s.tasks_current = f.tasks_current;
            s.tasks_max = f.tasks_max;
            if let Ok(cg) = mgr.control_group(&u.name, &u.path)
                && !cg.is_empty()
            {
                if let Some(dir) = cgsplit_core::mountinfo::cgroup_dir(mountinfo, &cg) {
                    s.game_pids = cgroupfs::read_procs(&dir.join(GAME_LEAF)).ok();
                    s.memory_controller = std::fs::read_to_string(dir.join("cgroup.controllers"))
                        .ok()
                        .map(|c| c.split_whitespace().any(|c| c == "memory"));
                    s.network_enforced = crate::recorded_policy(&dir);
                }
                if s.network_enforced.is_some() || cfg.network.is_restricted() {
                    match netd.get().and_then(|n| n.status(&cg)) {
                        Ok(v) => s.netd = Some(v),
                        Err(e) => s.netd_error = Some(e.to_string()),
                    }
                }
                s.control_group = Some(cg);
            }
        }
        out.push(s);
    }
    Ok(out)
}

/// Bytes in systemd's spelling: the largest base-1024 unit that divides
/// exactly (`8G`, `1536M`), else plain bytes.
pub fn human_bytes(n: u64) -> String {
    for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        if n >= 1 << shift && n.is_multiple_of(1 << shift) {
            return format!("{}{unit}", n >> shift);
        }
    }
    n.to_string()
}

fn na(v: Option<String>) -> String {
    v.unwrap_or_else(|| "n/a".into())
}

/// The human-readable table. Limits that are not set show `infinity` (or
/// `-` for an unset CPU weight) when the scope is loaded, `n/a` when it is not.
pub fn table(rows: &[GameStatus]) -> String {
    let mut t = vec![
        [
            "APP", "SCOPE", "STATE", "PIDS", "MEM CUR", "MEM HIGH", "MEM MAX", "CPU W", "TASKS",
            "NETWORK",
        ]
        .map(String::from),
    ];
    for r in rows {
        let loaded = r.state != "not loaded";
        let limit = |v: Option<u64>| {
            if loaded {
                v.map_or("infinity".into(), human_bytes)
            } else {
                "n/a".into()
            }
        };
        let mut mem_max = limit(r.memory_max);
        if r.memory_controller == Some(false) && (r.memory_max.is_some() || r.memory_high.is_some())
        {
            mem_max.push('*');
        }
        let tasks = format!(
            "{}/{}",
            na(r.tasks_current.map(|n| n.to_string())),
            if loaded {
                r.tasks_max.map_or("infinity".into(), |n| n.to_string())
            } else {
                "n/a".into()
            }
        );
        let mut net = match (&r.network_enforced, r.network_config.as_str()) {
            (Some(e), c) if e == c => format!("{e} (enforced)"),
            (Some(e), c) => format!("{e} (enforced; config says {c})"),
            (None, "full") => "full".into(),
            (None, c) if loaded => format!("{c} (NOT enforced)"),
            (None, c) => c.to_owned(),
        };
        if let Some(v) = &r.netd {
            let _ = write!(net, " {}", netd_summary(v));
        }
        t.push([
            r.app.to_string(),
            r.scope.clone(),
            r.state.clone(),
            na(r.game_pids.as_ref().map(|p| p.len().to_string())),
            na(r.memory_current.map(human_bytes)),
            limit(r.memory_high),
            mem_max,
            if loaded {
                r.cpu_weight.map_or("-".into(), |w| w.to_string())
            } else {
                "n/a".into()
            },
            tasks,
            net,
        ]);
    }
    let widths: Vec<usize> = (0..10)
        .map(|i| t.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &t {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    if rows.iter().any(|r| {
        r.memory_controller == Some(false) && (r.memory_max.is_some() || r.memory_high.is_some())
    }) {
        out.push_str(
            "* memory limit set on the unit but not enforced: the scope's cgroup has no memory controller\n",
        );
    }
    for r in rows {
        if let Some(e) = &r.netd_error {
            let _ = writeln!(out, "{}: helper status unavailable: {e}", r.scope);
        }
    }
    out
}

/// An IP protocol number (IANA) as its name, e.g. `17` → `udp`.
fn protocol_name(p: &serde_json::Value) -> String {
    match (p.as_u64(), p.as_str()) {
        (Some(6), _) => "tcp".into(),
        (Some(17), _) => "udp".into(),
        (Some(1), _) => "icmp".into(),
        (Some(58), _) => "icmpv6".into(),
        (_, Some(s)) => s.to_owned(),
        _ => p.to_string(),
    }
}

/// A short summary of the helper's `Status` JSON (schema: `NETD_INTERFACE`
/// in `cgsplit_core::policy`): packets dropped (both directions), connects
/// and sends refused, and the last three refused destinations.
pub fn netd_summary(v: &serde_json::Value) -> String {
    let c = &v["counters"];
    if !c.is_object() {
        return String::new();
    }
    let n = |k: &str| c[k].as_u64().unwrap_or(0);
    let mut out = format!(
        "dropped={} refused={}",
        n("ingress_packets") + n("egress_packets"),
        n("connect_refused") + n("sendmsg_refused")
    );
    let recent: Vec<String> = v["recent"]
        .as_array()
        .map(|r| {
            r.iter()
                .rev()
                .take(3)
                .map(|e| {
                    format!(
                        "{}:{}/{}",
                        e["addr"].as_str().unwrap_or("?"),
                        e["port"],
                        protocol_name(&e["protocol"])
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if !recent.is_empty() {
        out.push_str(&format!(" last={}", recent.join(",")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> GameStatus {
        GameStatus {
            app: 620,
            scope: "cgsplit-620.scope".into(),
            state: "active".into(),
            sub_state: Some("running".into()),
            control_group: Some("/x".into()),
            game_pids: Some(vec![1, 2]),
            memory_current: None,
            memory_high: Some(6 << 30),
            memory_max: None,
            memory_controller: Some(false),
            cpu_weight: Some(500),
            tasks_current: None,
            tasks_max: Some(4096),
            network_config: "localhost".into(),
            network_enforced: Some("localhost".into()),
            netd: None,
            netd_error: None,
        }
    }

    #[test]
    fn unknown_figures_print_na_never_zero() {
        let t = table(&[row()]);
        let line = t.lines().nth(1).unwrap();
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            cols,
            [
                "620",
                "cgsplit-620.scope",
                "active",
                "2",
                "n/a",
                "6G",
                "infinity*",
                "500",
                "n/a/4096",
                "localhost",
                "(enforced)"
            ]
        );
        assert!(t.contains("no memory controller"), "{t}");
    }

    #[test]
    fn not_loaded_rows_show_na_and_unenforced_policies_are_flagged() {
        let mut r = row();
        r.network_enforced = None;
        let t = table(&[r.clone()]);
        assert!(t.contains("localhost (NOT enforced)"), "{t}");
        r.state = "not loaded".into();
        r.game_pids = None;
        r.memory_controller = None;
        let t = table(&[r]);
        let cols: Vec<&str> = t.lines().nth(1).unwrap().split_whitespace().collect();
        // "not loaded" is two words.
        assert_eq!(&cols[4..9], ["n/a"; 5], "{t}");
        assert_eq!(cols[9], "n/a/n/a", "{t}");
    }

    #[test]
    fn json_uses_null_for_unknown() {
        let j = serde_json::to_value(row()).unwrap();
        assert_eq!(j["memory_current"], serde_json::Value::Null);
        assert_eq!(j["memory_high"], 6u64 << 30);
        assert_eq!(j["game_pids"], serde_json::json!([1, 2]));
    }

    #[test]
    fn netd_summary_sums_directions_and_lists_recent_refusals() {
        let v = serde_json::json!({
            "restricted": true,
            "counters": {"ingress_packets": 2, "egress_packets": 3, "connect_refused": 4,
                         "sendmsg_refused": 1, "ingress_bytes": 9, "egress_bytes": 9},
            "recent": [{"addr": "198.18.0.2", "port": 80, "protocol": "tcp"},
                       {"addr": "192.0.2.1", "port": 9, "protocol": 17}]
        });
        assert_eq!(
            netd_summary(&v),
            "dropped=5 refused=5 last=192.0.2.1:9/udp,198.18.0.2:80/tcp"
        );
        assert_eq!(netd_summary(&serde_json::json!({"counters": null})), "");
    }

    #[test]
    fn human_bytes_picks_exact_units() {
        assert_eq!(human_bytes(8 << 30), "8G");
        assert_eq!(human_bytes(1536 << 20), "1536M");
        assert_eq!(human_bytes(1000), "1000");
        assert_eq!(human_bytes(0), "0");
    }
}
