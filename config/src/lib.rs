//! cgsplit's per-game configuration: `$XDG_CONFIG_HOME/cgsplit/config.toml`.
//!
//! ```toml
//! [defaults]                  # applies to every game below
//! memory_high = "6G"          # systemd MemoryHigh=: K/M/G/T (base 1024), `infinity`, or `50%`
//! memory_max = "8G"           # systemd MemoryMax=
//! cpu_weight = 100            # systemd CPUWeight=, 1–10000
//! tasks_max = 4096            # systemd TasksMax=: a count, `10%` or `infinity`
//! network = "full"            # "full" | "localhost" | ["192.168.1.0/24", …] (localhost plus those)
//! kill_steam_on_exit = false  # shim: shut Steam down when the game exits
//!
//! [games.620]                 # Steam app id
//! memory_max = "4G"
//! network = "localhost"
//! ```
//!
//! Every key is optional; a game inherits each key it does not set from
//! `[defaults]`, and an unset key means "no limit / systemd's default". The
//! slice and scope names are not configurable: the shim derives them with no
//! D-Bus and no config ([`cgsplit_core::scope`]).
//!
//! IO limits (`IOWeight=` …) are left out on purpose: a stock `user@.service`
//! delegates only the `pids`, `memory` and `cpu` controllers to the user
//! manager (systemd's `units/user@.service.in`: `Delegate=pids memory cpu`),
//! so an IO limit on a user scope would do nothing.
//!
//! Errors ([`ConfigError`]) name the file, line, column and key, using the
//! spans the `toml` parser keeps: unknown keys and tables, bad sizes, app ids
//! that are not numbers, duplicate tables or keys, wrong types.

pub mod size;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use cgsplit_core::{AppId, NetworkPolicy};
use serde::Deserialize;
use toml::Spanned;

pub use size::{Limit, PropertyValue};

/// Keys a `[defaults]` or `[games.<appid>]` table may hold.
pub const KEYS: &[&str] = &[
    "memory_high",
    "memory_max",
    "cpu_weight",
    "tasks_max",
    "network",
    "kill_steam_on_exit",
];

/// The settings of one table, each `None` when the table does not set it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// `MemoryHigh=` (throttling threshold), bytes / percentage / infinity.
    pub memory_high: Option<Limit>,
    /// `MemoryMax=` (hard limit; the kernel OOM-kills inside the scope above it).
    pub memory_max: Option<Limit>,
    /// `CPUWeight=`, 1–10000 (systemd's default is 100).
    pub cpu_weight: Option<u64>,
    /// `TasksMax=`.
    pub tasks_max: Option<Limit>,
    /// Network policy.
    pub network: Option<NetworkPolicy>,
    /// Whether the shim shuts Steam down after the game exits.
    pub kill_steam_on_exit: Option<bool>,
}

impl Settings {
    /// `self`, with every unset key taken from `defaults`.
    fn or(&self, defaults: &Settings) -> Settings {
        Settings {
            memory_high: self.memory_high.or(defaults.memory_high),
            memory_max: self.memory_max.or(defaults.memory_max),
            cpu_weight: self.cpu_weight.or(defaults.cpu_weight),
            tasks_max: self.tasks_max.or(defaults.tasks_max),
            network: self.network.clone().or_else(|| defaults.network.clone()),
            kill_steam_on_exit: self.kill_steam_on_exit.or(defaults.kill_steam_on_exit),
        }
    }
}

/// The effective settings of one game: its table merged over `[defaults]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GameConfig {
    /// The game.
    pub app: AppId,
    /// `MemoryHigh=`; `None`: not set (systemd's default, infinity).
    pub memory_high: Option<Limit>,
    /// `MemoryMax=`; `None`: not set.
    pub memory_max: Option<Limit>,
    /// `CPUWeight=`; `None`: not set (systemd's default, 100).
    pub cpu_weight: Option<u64>,
    /// `TasksMax=`; `None`: not set (the user manager's `DefaultTasksMax=`).
    pub tasks_max: Option<Limit>,
    /// Network policy; `full` when not set.
    pub network: NetworkPolicy,
    /// Shut Steam down after the game exits; `false` when not set.
    pub kill_steam_on_exit: bool,
}

/// A unit property value as it goes to systemd's D-Bus API.
pub type UnitProperty = (String, PropertyValue);

impl GameConfig {
    fn from_settings(app: AppId, s: Settings) -> Self {
        GameConfig {
            app,
            memory_high: s.memory_high,
            memory_max: s.memory_max,
            cpu_weight: s.cpu_weight,
            tasks_max: s.tasks_max,
            network: s.network.unwrap_or_default(),
            kill_steam_on_exit: s.kill_steam_on_exit.unwrap_or(false),
        }
    }

    /// The flags the shim needs on the game's launch line, because inside
    /// flatpak it cannot read this file: `--network <policy>` when the policy
    /// is restricted, `--kill-steam` when `kill_steam_on_exit` is set. Empty
    /// for a game with neither.
    pub fn shim_flags(&self) -> Vec<String> {
        let mut f = Vec::new();
        if self.network.is_restricted() {
            f.push("--network".to_owned());
            f.push(self.network.to_string());
        }
        if self.kill_steam_on_exit {
            f.push("--kill-steam".to_owned());
        }
        f
    }

    /// The resource-control properties to set on the scope, in systemd's
    /// D-Bus names and types (org.freedesktop.systemd1(5), "Scope Unit
    /// Objects"): `MemoryHigh`/`MemoryMax`/`TasksMax` (`t`, `u64::MAX` =
    /// infinity) or their `…Scale` forms (`u`) for percentages, `CPUWeight`
    /// (`t`). Unset keys are left out, so systemd's defaults apply.
    pub fn unit_properties(&self) -> Vec<UnitProperty> {
        let mut p = Vec::new();
        if let Some(l) = self.memory_high {
            p.push(l.property("MemoryHigh"));
        }
        if let Some(l) = self.memory_max {
            p.push(l.property("MemoryMax"));
        }
        if let Some(w) = self.cpu_weight {
            p.push(("CPUWeight".to_owned(), PropertyValue::U64(w)));
        }
        if let Some(l) = self.tasks_max {
            p.push(l.property("TasksMax"));
        }
        p
    }
}

impl fmt::Display for GameConfig {
    /// One line of `key=value` pairs, unset limits as `-`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |l: Option<Limit>| l.map_or("-".to_owned(), |l| l.to_string());
        write!(
            f,
            "{}: memory_high={} memory_max={} cpu_weight={} tasks_max={} network={} kill_steam_on_exit={}",
            self.app,
            opt(self.memory_high),
            opt(self.memory_max),
            self.cpu_weight.map_or("-".to_owned(), |w| w.to_string()),
            opt(self.tasks_max),
            self.network,
            self.kill_steam_on_exit
        )
    }
}

/// A parsed config file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// The file it was read from (`None`: built from a string or absent).
    pub path: Option<PathBuf>,
    /// `[defaults]`.
    pub defaults: Settings,
    /// `[games.<appid>]` tables, by app id.
    pub games: BTreeMap<AppId, Settings>,
}

/// Why a config could not be loaded. `Display` is one line:
/// `<file>:<line>:<column>: <key>: <what is wrong and what to do>`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The text is not valid TOML or breaks this file's schema.
    #[error("{}:{line}:{column}: {}{message}", path.display(), key.as_ref().map(|k| format!("{k}: ")).unwrap_or_default())]
    Invalid {
        /// The config file (`<string>` when parsed from text).
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
        /// The offending key as a dotted path, e.g. `games.620.memory_max`.
        key: Option<String>,
        /// What is wrong and what to do.
        message: String,
    },
    /// Neither `$XDG_CONFIG_HOME` nor `$HOME` is set.
    #[error(
        "cannot find the config directory: neither XDG_CONFIG_HOME nor HOME is set; pass --config FILE"
    )]
    NoConfigDir,
}

/// A table's keys and values with their byte spans in the text.
type RawTable = BTreeMap<Spanned<String>, Spanned<toml::Value>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDoc {
    #[serde(default)]
    defaults: Option<RawTable>,
    #[serde(default)]
    games: Option<BTreeMap<Spanned<String>, RawTable>>,
}

/// 1-based (line, column) of byte offset `at` in `text`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before, |i| &before[i + 1..])
        .chars()
        .count()
        + 1;
    (line, col)
}

struct Ctx<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Ctx<'_> {
    fn err(&self, at: usize, key: Option<String>, message: impl Into<String>) -> ConfigError {
        let (line, column) = line_col(self.text, at);
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            line,
            column,
            key,
            message: message.into(),
        }
    }
}

impl Config {
    /// `$XDG_CONFIG_HOME/cgsplit/config.toml` (`~/.config/cgsplit/config.toml`
    /// when `XDG_CONFIG_HOME` is unset), found with the `directories` crate.
    pub fn default_path() -> Result<PathBuf, ConfigError> {
        directories::BaseDirs::new()
            .map(|d| d.config_dir().join("cgsplit").join("config.toml"))
            .ok_or(ConfigError::NoConfigDir)
    }

    /// Reads and validates `path`. A file that does not exist is an empty
    /// config (no games, no defaults); one that cannot be read is an error.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Config {
                    path: Some(path.to_path_buf()),
                    ..Config::default()
                });
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let mut c = Self::parse_named(&text, path)?;
        c.path = Some(path.to_path_buf());
        Ok(c)
    }

    /// Parses config text; errors name `<string>` as the file.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        Self::parse_named(text, Path::new("<string>"))
    }

    fn parse_named(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cx = Ctx { text, path };
        // Syntax errors, duplicate keys and duplicate tables come from the
        // TOML parser with their span.
        let doc: RawDoc = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start);
            cx.err(at, None, e.message().trim_end().replace('\n', "; "))
        })?;
        let mut config = Config::default();
        if let Some(t) = &doc.defaults {
            config.defaults = settings(&cx, t, "defaults")?;
        }
        for (id, t) in doc.games.iter().flatten() {
            let key = format!("games.{}", id.get_ref());
            let app: AppId =
                id.get_ref()
                    .parse()
                    .map_err(|e: cgsplit_core::scope::AppIdError| {
                        cx.err(
                            id.span().start,
                            Some(key.clone()),
                            format!(
                                "{e}; name the table after the game's app id, e.g. [games.620]"
                            ),
                        )
                    })?;
            config.games.insert(app, settings(&cx, t, &key)?);
        }
        Ok(config)
    }

    /// The effective settings of `app`: its `[games.<appid>]` table (if any)
    /// merged over `[defaults]`.
    pub fn game(&self, app: AppId) -> GameConfig {
        let own = self.games.get(&app).cloned().unwrap_or_default();
        GameConfig::from_settings(app, own.or(&self.defaults))
    }

    /// The effective settings of every game with a `[games.<appid>]` table,
    /// in app id order.
    pub fn games(&self) -> Vec<GameConfig> {
        self.games.keys().map(|&a| self.game(a)).collect()
    }
}

/// Validates one `[defaults]` / `[games.N]` table; errors point at the
/// value (or, for an unknown key, at the key).
fn settings(cx: &Ctx<'_>, t: &RawTable, table: &str) -> Result<Settings, ConfigError> {
    let mut s = Settings::default();
    for (k, v) in t {
        let (k, key_at) = (k.get_ref(), k.span().start);
        let key = format!("{table}.{k}");
        let pos = v.span().start;
        let v = v.get_ref();
        let bad = |msg: String| cx.err(pos, Some(key.clone()), msg);
        let string_or_int = |parse: fn(&str) -> Result<Limit, String>| match v {
            toml::Value::String(s) => parse(s).map_err(bad),
            toml::Value::Integer(n) if *n >= 0 => parse(&n.to_string()).map_err(bad),
            other => Err(bad(format!(
                "must be a string such as \"8G\" or a non-negative integer, not {}",
                describe(other)
            ))),
        };
        match k.as_str() {
            "memory_high" => s.memory_high = Some(string_or_int(size::parse_size)?),
            "memory_max" => s.memory_max = Some(string_or_int(size::parse_size)?),
            "tasks_max" => s.tasks_max = Some(string_or_int(size::parse_tasks)?),
            "cpu_weight" => match v {
                toml::Value::Integer(n) if (1..=10000).contains(n) => {
                    s.cpu_weight = Some(*n as u64)
                }
                other => {
                    return Err(bad(format!(
                        "must be an integer from 1 to 10000 (systemd CPUWeight=; 100 is the default), not {}",
                        describe(other)
                    )));
                }
            },
            "kill_steam_on_exit" => match v {
                toml::Value::Boolean(b) => s.kill_steam_on_exit = Some(*b),
                other => {
                    return Err(bad(format!(
                        "must be true or false, not {}",
                        describe(other)
                    )));
                }
            },
            "network" => s.network = Some(network(v).map_err(bad)?),
            _ => {
                return Err(cx.err(
                    key_at,
                    Some(key.clone()),
                    format!("unknown key; known keys: {}", KEYS.join(", ")),
                ));
            }
        }
    }
    Ok(s)
}

/// `"full"`, `"localhost"`, a policy in its text form (`"localhost,10.0.0.0/8"`),
/// or an array of CIDRs meaning localhost plus those networks.
fn network(v: &toml::Value) -> Result<NetworkPolicy, String> {
    match v {
        toml::Value::String(s) => s.parse().map_err(|e| format!("{e}")),
        toml::Value::Array(items) => {
            let mut cidrs = Vec::new();
            for i in items {
                let toml::Value::String(s) = i else {
                    return Err(format!(
                        "an allow-list holds CIDR strings such as \"192.168.1.0/24\", not {}",
                        describe(i)
                    ));
                };
                cidrs.push(s.parse().map_err(|e| format!("{e}"))?);
            }
            Ok(NetworkPolicy::localhost(cidrs))
        }
        other => Err(format!(
            "must be \"full\", \"localhost\" or an array of CIDRs, not {}",
            describe(other)
        )),
    }
}

fn describe(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("the string {s:?}"),
        toml::Value::Integer(n) => format!("the integer {n}"),
        toml::Value::Float(x) => format!("the float {x}"),
        toml::Value::Boolean(b) => format!("the boolean {b}"),
        other => format!("a {}", other.type_str()),
    }
}

#[cfg(test)]
mod tests;
