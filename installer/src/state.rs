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
//!         "backup"        "/home/me/.local/state/cgsplit/backups/…"
//!         "installed_at"        "1764400000"
//!     }
//! }
//! ```

use keyvalues_parser::{Obj, Value};

use crate::vdf::lex;

/// File name of the state file inside the state directory.
pub const FILE: &str = "launch-options.vdf";
/// Directory for localconfig.vdf backups inside the state directory.
pub const BACKUPS: &str = "backups";

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
    /// Backup of localconfig.vdf taken before the first write.
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
        assert_eq!(parse(&render(&[])).unwrap(), vec![]);
        assert!(
            parse("\"cgsplit-state\" { \"version\" \"1\" \"record\" { \"root\" \"x\" } }").is_err()
        );
        assert!(parse("\"other\" {}").is_err());
    }
}
