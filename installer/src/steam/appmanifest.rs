//! `steamapps/appmanifest_<appid>.acf` and `steamapps/libraryfolders.vdf`:
//! read-only lookups for messages (game name, library folders).
//! Shapes: `"AppState" { "appid" "620" "name" "Portal 2" … }` and
//! `"libraryfolders" { "0" { "path" "/home/me/.local/share/Steam" … } … }`
//! (STEAM.md §4; steamlocate test assets).

use keyvalues_parser::{Parser, PartialVdf, Value};

fn parse(text: &str) -> Option<PartialVdf<'_>> {
    // Escaped first (Steam escapes `\`); raw for hand-made files with bare `\`.
    keyvalues_parser::parse(text)
        .ok()
        .or_else(|| Parser::new().literal_special_chars(true).parse(text).ok())
}

/// `AppState/name`, e.g. `Portal 2`; `None` if unreadable or absent.
pub fn game_name(text: &str) -> Option<String> {
    let vdf = parse(text)?;
    let obj = vdf.value.get_obj()?;
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("name"))
        .and_then(|(_, v)| v.first())
        .and_then(Value::get_str)
        .map(str::to_owned)
}

/// Every `libraryfolders/<n>/path`, in key order; empty if unreadable.
pub fn library_paths(text: &str) -> Vec<String> {
    let Some(vdf) = parse(text) else {
        return Vec::new();
    };
    let Some(obj) = vdf.value.get_obj() else {
        return Vec::new();
    };
    obj.values()
        .flatten()
        .filter_map(Value::get_obj)
        .filter_map(|o| {
            o.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("path"))
                .and_then(|(_, v)| v.first())
                .and_then(Value::get_str)
                .map(str::to_owned)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        let acf = include_str!(
            "../../tests/fixtures/corpus/WilliamVenner__steamlocate-rs__tests__assets__appmanifest_599140.acf"
        );
        assert_eq!(game_name(acf).as_deref(), Some("Graveyard Keeper"));
        let acf = include_str!(
            "../../tests/fixtures/corpus/WilliamVenner__steamlocate-rs__tests__assets__appmanifest_230410.acf"
        );
        assert_eq!(game_name(acf).as_deref(), Some("Warframe"));
        assert_eq!(game_name("nonsense {"), None);
        let lf = include_str!(
            "../../tests/fixtures/corpus/CosmicHorrorDev__vdf-rs__keyvalues-serde__examples__libraryfolders.vdf"
        );
        assert_eq!(
            library_paths(lf),
            vec![
                r"C:\Program Files (x86)\Steam".to_owned(),
                r"D:\SteamLibrary".to_owned()
            ]
        );
    }
}
