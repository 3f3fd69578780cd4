//! `<root>/config/loginusers.vdf`: which account logged in last.
//!
//! Shape (STEAM.md §4; vdf-rs README): `"users" { "<SteamID64>" {
//! "AccountName" … "MostRecent" "1" "Timestamp" "1764400000" } … }`. Key
//! casing varies (`MostRecent`/`mostrecent`). The `userdata/<id>` directory
//! uses the account id, the low 32 bits of the SteamID64 (protontricks
//! `find_current_steamid3`). A small, read-only file: keyvalues-parser reads it.

use keyvalues_parser::{Obj, Parser, Value};

/// One `users` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// E.g. `76561198000000001`.
    pub steamid64: u64,
    /// `steamid64 & 0xFFFF_FFFF`, e.g. `39734273`.
    pub account: u32,
    /// `AccountName`, e.g. `demo_gamer` (empty when missing).
    pub name: String,
    /// `MostRecent` is `"1"`.
    pub most_recent: bool,
    /// `Timestamp` (unix seconds), when present and numeric.
    pub timestamp: Option<u64>,
}

/// Why no account could be picked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginUsersError {
    /// The text is not KeyValues.
    #[error("not valid KeyValues text: {0}")]
    Parse(String),
    /// No `users` root.
    #[error("no \"users\" block")]
    NoUsers,
    /// Zero or several equally good candidates.
    #[error("cannot tell which account to use: {0}")]
    Ambiguous(String),
}

fn get<'a>(obj: &'a Obj<'_>, key: &str) -> Option<&'a str> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .and_then(|(_, v)| v.first())
        .and_then(Value::get_str)
}

/// Every user with a numeric SteamID64 whose account id is not 0.
///
/// Errors: [`LoginUsersError::Parse`], [`LoginUsersError::NoUsers`].
pub fn parse(text: &str) -> Result<Vec<User>, LoginUsersError> {
    let vdf = match keyvalues_parser::parse(text) {
        Ok(v) => Ok(v),
        Err(_) => Parser::new().literal_special_chars(true).parse(text),
    }
    .map_err(|e| LoginUsersError::Parse(e.to_string().lines().next().unwrap_or("").to_owned()))?;
    if !vdf.key.eq_ignore_ascii_case("users") {
        return Err(LoginUsersError::NoUsers);
    }
    let users = vdf.value.get_obj().ok_or(LoginUsersError::NoUsers)?;
    let mut out = Vec::new();
    for (k, vals) in users.iter() {
        let (Ok(id), Some(obj)) = (k.parse::<u64>(), vals.first().and_then(Value::get_obj)) else {
            continue;
        };
        let account = (id & 0xFFFF_FFFF) as u32;
        if account == 0 {
            continue;
        }
        out.push(User {
            steamid64: id,
            account,
            name: get(obj, "AccountName").unwrap_or("").to_owned(),
            most_recent: get(obj, "MostRecent") == Some("1"),
            timestamp: get(obj, "Timestamp").and_then(|t| t.parse().ok()),
        });
    }
    Ok(out)
}

/// The account to use: the one with `MostRecent "1"`; among several (or
/// none), the newest `Timestamp`; a single user is used as is.
/// Returns the user and the reason, e.g. `"MostRecent"`.
///
/// Errors: [`LoginUsersError::Ambiguous`] listing the users seen.
pub fn pick(users: &[User]) -> Result<(&User, &'static str), LoginUsersError> {
    let list = || {
        if users.is_empty() {
            return "no users listed".to_owned();
        }
        users
            .iter()
            .map(|u| {
                format!(
                    "{} ({} = account {}, MostRecent {}, Timestamp {})",
                    u.name,
                    u.steamid64,
                    u.account,
                    u8::from(u.most_recent),
                    u.timestamp.map_or("-".to_owned(), |t| t.to_string())
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    if let [only] = users {
        return Ok((only, "the only user"));
    }
    let recent: Vec<&User> = users.iter().filter(|u| u.most_recent).collect();
    if let [one] = recent[..] {
        return Ok((one, "MostRecent"));
    }
    let pool: Vec<&User> = if recent.is_empty() {
        users.iter().collect()
    } else {
        recent
    };
    let newest = pool.iter().filter_map(|u| u.timestamp).max();
    let at_newest: Vec<&&User> = pool
        .iter()
        .filter(|u| newest.is_some() && u.timestamp == newest)
        .collect();
    match at_newest[..] {
        [one] => Ok((one, "newest Timestamp")),
        _ => Err(LoginUsersError::Ambiguous(list())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEMO: &str = include_str!("../../../demo/steam/config/loginusers.vdf");

    #[test]
    fn demo_most_recent_wins_over_newer_timestamp_rules() {
        let users = parse(DEMO).unwrap();
        assert_eq!(users.len(), 2);
        let (u, why) = pick(&users).unwrap();
        assert_eq!(
            (u.account, u.name.as_str(), why),
            (39734273, "demo_gamer", "MostRecent")
        );
    }

    #[test]
    fn corpus_fragment_and_lowercase_keys() {
        let text = include_str!(
            "../../tests/fixtures/corpus/CosmicHorrorDev__vdf-rs__keyvalues-parser__README.md.loginusers-fragment.vdf"
        );
        let users = parse(text).unwrap();
        assert_eq!(users[0].steamid64, 12345678901234567);
        assert_eq!(
            users[0].account,
            (12345678901234567u64 & 0xFFFF_FFFF) as u32
        );
        assert!(users[0].most_recent);
        let lower = "\"users\" { \"76561198000000002\" { \"mostrecent\" \"1\" } \"76561198000000003\" { \"mostrecent\" \"0\" } }";
        let users = parse(lower).unwrap();
        assert_eq!(pick(&users).unwrap().0.account, 39734274);
    }

    #[test]
    fn falls_back_to_newest_timestamp_and_reports_ties() {
        let t = "\"users\" { \"76561198000000002\" { \"Timestamp\" \"5\" } \"76561198000000003\" { \"Timestamp\" \"9\" } \"76561197960265728\" { } }";
        let users = parse(t).unwrap();
        assert_eq!(users.len(), 2, "account 0 is skipped");
        assert_eq!(pick(&users).unwrap(), (&users[1], "newest Timestamp"));
        let tie = "\"users\" { \"76561198000000002\" { \"Timestamp\" \"9\" } \"76561198000000003\" { \"Timestamp\" \"9\" } }";
        let users = parse(tie).unwrap();
        let e = pick(&users).unwrap_err().to_string();
        assert!(
            e.contains("76561198000000002") && e.contains("76561198000000003"),
            "{e}"
        );
        assert!(pick(&[]).is_err());
        assert!(matches!(
            parse("\"other\" {}"),
            Err(LoginUsersError::NoUsers)
        ));
        assert!(matches!(
            parse("\"users\" {"),
            Err(LoginUsersError::Parse(_))
        ));
    }
}
