//! What cgsplit changed, so `--remove` can undo it exactly.
//!
//! File: `$XDG_STATE_HOME/cgsplit/launch-options.vdf` (default
//! `~/.local/state/cgsplit/`), one `record` per (Steam root, account, app),
//! written by cgsplit in Steam's VDF style (tabs; shown with spaces below) and
//! read with keyvalues-parser.
//! Strings are escaped as Steam does (`\` → `\\`, `"` → `\"`, nothing else),
//! which keyvalues-parser decodes back exactly. Shape:
//!
//! ```text
//! "cgsplit-state"
//! {
//!     "version"        "1"
//!     "record"
//!     {
//!         "root"        "/home/me/.local/share/Steam"
//!         "account"        "39734273"
//!         "appid"        "620"
//!         "localconfig"        "/home/me/.local/share/Steam/userdata/39734273/config/localconfig.vdf"
//!         "original"        "present"            // or "absent": the key did not exist
//!         "original_token"        "\"-novid\""        // the value token, quotes included, byte for byte
//!         "wrote_token"        "\"'/…/cgsplit-shim' -- %command% -novid\""
//!         "created_blocks"        "0"              // blocks cgsplit created (app block = 1, apps = 2, …)
//!         "backup"        "/home/me/…/config/localconfig.vdf.cgsplit-bak"
//!         "installed_at"        "1764400000"
//!     }
//!     "compat"                                   // --set-compat-tool
//!     {
//!         "root"        "/home/me/.local/share/Steam"
//!         "appid"        "620"
//!         "config_vdf"        "/home/me/.local/share/Steam/config/config.vdf"
//!         "original"        "absent"          // or "present" + "original_block"
//!         "wrote_block"        "\"620\"\n{…}"   // the `"<appid>" { … }` pair as written
//!         "created_blocks"        "0"          // 1: CompatToolMapping was created too
//!         "installed_at"        "1764400000"
//!     }
//!     "tool"        "/home/me/.local/share/Steam/compatibilitytools.d/cgsplit"
//! }
//! ```

use keyvalues_parser::{Obj, Value};

use crate::vdf::lex;

/// File name of the state file inside the state directory.
pub const FILE: &str = "launch-options.vdf";

/// One game's launch options as cgsplit changed them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Canonical Steam root.
    pub root: String,
    /// Account id (userdata directory name).
    pub account: u32,
    /// Steam app id.
    pub appid: u32,
    /// The localconfig.vdf path written.
    pub localconfig: String,
    /// The value token before cgsplit (quotes included), `None` if the key was absent.
    pub original_token: Option<String>,
    /// The value token cgsplit wrote (quotes included).
    pub wrote_token: String,
    /// Blocks cgsplit created around the key (0 = none).
    pub created_blocks: usize,
    /// The backup next to localconfig.vdf made by the first write
    /// (`localconfig.vdf.cgsplit-bak`; later writes rotate it to `.1`, `.2`).
    pub backup: String,
    /// Unix time of the first write.
    pub installed_at: u64,
}

impl Record {
    /// True when this record is for `root`/`account`/`appid`.
    pub fn is_for(&self, root: &str, account: u32, appid: u32) -> bool {
        self.root == root && self.account == account && self.appid == appid
    }
}

/// A `CompatToolMapping/<appid>` block cgsplit wrote into `config/config.vdf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompatRecord {
    /// Canonical Steam root.
    pub root: String,
    /// Steam app id.
    pub appid: u32,
    /// The config.vdf path written.
    pub config_vdf: String,
    /// The `"<appid>" { … }` pair before cgsplit, byte for byte; `None` if absent.
    pub original_block: Option<String>,
    /// The pair as cgsplit wrote it.
    pub wrote_block: String,
    /// Blocks created above the app block (1: `CompatToolMapping`).
    pub created_blocks: usize,
    /// Unix time of the write.
    pub installed_at: u64,
}

/// Everything cgsplit changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// Launch options wrapped.
    pub launch: Vec<Record>,
    /// Compat tool mappings set.
    pub compat: Vec<CompatRecord>,
    /// Compatibility tool directories installed (canonical paths).
    pub tools: Vec<String>,
}

/// The state file does not have the shape above.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StateError(pub String);

fn q(s: &str) -> String {
    format!(
        "\"{}\"",
        String::from_utf8(lex::escape(s.as_bytes())).expect("escape keeps UTF-8")
    )
}

/// Renders `state` in the shape above.
pub fn render_state(state: &State) -> String {
    let mut out = render(&state.launch);
    out.pop();
    out.pop();
    for c in &state.compat {
        out.push_str("\t\"compat\"\n\t{\n");
        let mut kv = |k: &str, v: &str| out.push_str(&format!("\t\t{}\t\t{}\n", q(k), q(v)));
        kv("root", &c.root);
        kv("appid", &c.appid.to_string());
        kv("config_vdf", &c.config_vdf);
        match &c.original_block {
            Some(b) => {
                kv("original", "present");
                kv("original_block", b);
            }
            None => kv("original", "absent"),
        }
        kv("wrote_block", &c.wrote_block);
        kv("created_blocks", &c.created_blocks.to_string());
        kv("installed_at", &c.installed_at.to_string());
        out.push_str("\t}\n");
    }
    for t in &state.tools {
        out.push_str(&format!("\t{}\t\t{}\n", q("tool"), q(t)));
    }
    out.push_str("}\n");
    out
}

/// Parses a state file written by [`render_state`].
///
/// Errors: [`StateError`] naming the missing or bad field.
pub fn parse_state(text: &str) -> Result<State, StateError> {
    let launch = parse(text)?;
    let vdf = keyvalues_parser::parse(text).map_err(|e| StateError(e.to_string()))?;
    let root = vdf
        .value
        .get_obj()
        .ok_or(StateError("root is not a block".into()))?;
    let mut compat = Vec::new();
    for r in root.get("compat").into_iter().flatten() {
        let o = r
            .get_obj()
            .ok_or(StateError("a compat record is not a block".into()))?;
        let original_block = match field(o, "original")? {
            "present" => Some(field(o, "original_block")?.to_owned()),
            "absent" => None,
            other => return Err(StateError(format!("\"original\" is {other:?}"))),
        };
        compat.push(CompatRecord {
            root: field(o, "root")?.to_owned(),
            appid: num(o, "appid")?,
            config_vdf: field(o, "config_vdf")?.to_owned(),
            original_block,
            wrote_block: field(o, "wrote_block")?.to_owned(),
            created_blocks: num(o, "created_blocks")?,
            installed_at: num(o, "installed_at")?,
        });
    }
    let tools = root
        .get("tool")
        .into_iter()
        .flatten()
        .filter_map(|v| v.get_str().map(str::to_owned))
        .collect();
    Ok(State {
        launch,
        compat,
        tools,
    })
}

/// Renders `records` in the shape above.
pub fn render(records: &[Record]) -> String {
    let mut out = String::from("\"cgsplit-state\"\n{\n\t\"version\"\t\t\"1\"\n");
    for r in records {
        out.push_str("\t\"record\"\n\t{\n");
        let mut kv = |k: &str, v: &str| out.push_str(&format!("\t\t{}\t\t{}\n", q(k), q(v)));
        kv("root", &r.root);
        kv("account", &r.account.to_string());
        kv("appid", &r.appid.to_string());
        kv("localconfig", &r.localconfig);
        match &r.original_token {
            Some(t) => {
                kv("original", "present");
                kv("original_token", t);
            }
            None => kv("original", "absent"),
        }
        kv("wrote_token", &r.wrote_token);
        kv("created_blocks", &r.created_blocks.to_string());
        kv("backup", &r.backup);
        kv("installed_at", &r.installed_at.to_string());
        out.push_str("\t}\n");
    }
    out.push_str("}\n");
    out
}

fn field<'a>(o: &'a Obj<'_>, k: &str) -> Result<&'a str, StateError> {
    o.get(k)
        .and_then(|v| v.first())
        .and_then(Value::get_str)
        .ok_or_else(|| StateError(format!("a record has no \"{k}\"")))
}

fn num<T: std::str::FromStr>(o: &Obj<'_>, k: &str) -> Result<T, StateError> {
    field(o, k)?
        .parse()
        .map_err(|_| StateError(format!("\"{k}\" is not a number")))
}

/// Parses a state file written by [`render`].
///
/// Errors: [`StateError`] naming the missing or bad field.
pub fn parse(text: &str) -> Result<Vec<Record>, StateError> {
    let vdf = keyvalues_parser::parse(text).map_err(|e| {
        StateError(format!(
            "not valid KeyValues: {}",
            e.to_string().lines().next().unwrap_or("")
        ))
    })?;
    if vdf.key != "cgsplit-state" {
        return Err(StateError("root key is not \"cgsplit-state\"".into()));
    }
    let root = vdf
        .value
        .get_obj()
        .ok_or(StateError("root is not a block".into()))?;
    if field(root, "version")? != "1" {
        return Err(StateError("unknown version".into()));
    }
    let mut out = Vec::new();
    for r in root.get("record").into_iter().flatten() {
        let o = r
            .get_obj()
            .ok_or(StateError("a record is not a block".into()))?;
        let original_token = match field(o, "original")? {
            "present" => Some(field(o, "original_token")?.to_owned()),
            "absent" => None,
            other => return Err(StateError(format!("\"original\" is {other:?}"))),
        };
        out.push(Record {
            root: field(o, "root")?.to_owned(),
            account: num(o, "account")?,
            appid: num(o, "appid")?,
            localconfig: field(o, "localconfig")?.to_owned(),
            original_token,
            wrote_token: field(o, "wrote_token")?.to_owned(),
            created_blocks: num(o, "created_blocks")?,
            backup: field(o, "backup")?.to_owned(),
            installed_at: num(o, "installed_at")?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_awkward_tokens_exact() {
        let recs = vec![
            Record {
                root: "/home/a b/.local/share/Steam".into(),
                account: 39734273,
                appid: 620,
                localconfig: "/x/localconfig.vdf".into(),
                original_token: Some("\"a \\\"b\\\" \\\\ \\t\ttab\nnl $X\"".into()),
                wrote_token: "\"'/p/cgsplit-shim' -- %command%\"".into(),
                created_blocks: 0,
                backup: "/b".into(),
                installed_at: 1,
            },
            Record {
                root: "/r".into(),
                account: 1,
                appid: 7,
                localconfig: "/l".into(),
                original_token: None,
                wrote_token: "\"\"".into(),
                created_blocks: 2,
                backup: "/b2".into(),
                installed_at: 2,
            },
        ];
        assert_eq!(parse(&render(&recs)).unwrap(), recs);
        let st = State {
            launch: recs.clone(),
            compat: vec![CompatRecord {
                root: "/r".into(),
                appid: 620,
                config_vdf: "/r/config/config.vdf".into(),
                original_block: Some("\"620\"\n\t{\n\t\t\"name\"\t\t\"proton_9\"\n\t}".into()),
                wrote_block: "\"620\" { \"name\" \"cgsplit\" }".into(),
                created_blocks: 1,
                installed_at: 3,
            }],
            tools: vec!["/r/compatibilitytools.d/cgsplit".into(), "/f x/t".into()],
        };
        assert_eq!(parse_state(&render_state(&st)).unwrap(), st);
        assert_eq!(parse_state(&render(&recs)).unwrap().launch, recs);
        assert_eq!(parse(&render(&[])).unwrap(), vec![]);
        assert!(
            parse("\"cgsplit-state\" { \"version\" \"1\" \"record\" { \"root\" \"x\" } }").is_err()
        );
        assert!(parse("\"other\" {}").is_err());
    }
}
