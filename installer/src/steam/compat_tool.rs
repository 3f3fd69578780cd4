//! The cgsplit compatibility tool: `compatibilitytool.vdf` and
//! `toolmanifest.vdf`, rendered from `compat-tool-template/`.
//!
//! Facts (STEAM.md §§1–2; steam-compat-tool-interface.md): the per-user
//! directory Steam scans is `~/.steam/root/compatibilitytools.d/<dir>/`;
//! `install_path "."` means the directory of the vdf; the key is spelled
//! `compat_tools` (the interface doc's `"compat tools"` is not what real tools
//! use); a v2 manifest's `commandline` starts with `/` (relative to the tool
//! directory) and `%verb%` becomes `waitforexitandrun` or `run`.

/// Internal tool name (the value `config.vdf` `CompatToolMapping` stores).
pub const NAME: &str = "cgsplit";
/// Shown in Steam's compatibility menu, with this version so a user can see
/// which build Steam loaded, e.g. `cgsplit 0.1.0 (own cgroup scope)`.
pub const DISPLAY_NAME: &str =
    concat!("cgsplit ", env!("CARGO_PKG_VERSION"), " (own cgroup scope)");
/// Directory under `compatibilitytools.d`.
pub const DIR: &str = "cgsplit";
/// File names inside the tool directory.
pub const COMPATIBILITYTOOL_VDF: &str = "compatibilitytool.vdf";
/// See [`COMPATIBILITYTOOL_VDF`].
pub const TOOLMANIFEST_VDF: &str = "toolmanifest.vdf";
/// The shim's file name in the tool directory.
pub const SHIM: &str = cgsplit_core::launch::SHIM_NAME;

const COMPATIBILITYTOOL_TEMPLATE: &str =
    include_str!("../../../compat-tool-template/compatibilitytool.vdf");
const ENTRY_TEMPLATE: &str = include_str!("../../../compat-tool-template/entry.vdf");
const TOOLMANIFEST_TEMPLATE: &str = include_str!("../../../compat-tool-template/toolmanifest.vdf");

/// One tool declared in `compatibilitytool.vdf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Internal name, e.g. `cgsplit`.
    pub name: &'a str,
    /// Shown in Steam's menu.
    pub display_name: &'a str,
    /// OS of the game executables it runs, e.g. `linux`.
    pub from_oslist: &'a str,
    /// OS it runs them on, e.g. `linux`.
    pub to_oslist: &'a str,
}

/// `compatibilitytool.vdf` declaring `entries` (all with `install_path "."`).
/// Names and display names are escaped as VDF strings.
pub fn render_compatibilitytool(entries: &[Entry]) -> String {
    let esc = |s: &str| String::from_utf8(crate::vdf::lex::escape(s.as_bytes())).expect("UTF-8");
    let rendered: String = entries
        .iter()
        .map(|e| {
            ENTRY_TEMPLATE
                .replace("@NAME@", &esc(e.name))
                .replace("@DISPLAY_NAME@", &esc(e.display_name))
                .replace("@FROM_OSLIST@", &esc(e.from_oslist))
                .replace("@TO_OSLIST@", &esc(e.to_oslist))
        })
        .collect();
    COMPATIBILITYTOOL_TEMPLATE.replace("@ENTRIES@\n", &rendered)
}

/// `compatibilitytool.vdf` declaring [`NAME`] (linux → linux, `install_path "."`).
pub fn compatibilitytool_vdf() -> String {
    render_compatibilitytool(&[Entry {
        name: NAME,
        display_name: DISPLAY_NAME,
        from_oslist: "linux",
        to_oslist: "linux",
    }])
}

/// v2 `toolmanifest.vdf` whose `commandline` is `"/cgsplit-shim compat %verb% --"`.
pub fn toolmanifest_vdf() -> String {
    TOOLMANIFEST_TEMPLATE.replace("@SHIM@", SHIM)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj_str<'a>(o: &'a keyvalues_parser::Obj<'_>, k: &str) -> &'a str {
        o.get(k).unwrap()[0].get_str().unwrap()
    }

    #[test]
    fn rendered_files_parse_with_the_expected_fields() {
        let text = compatibilitytool_vdf();
        assert!(!text.contains('@'), "{text}");
        let v = keyvalues_parser::parse(&text).unwrap();
        assert_eq!(v.key, "compatibilitytools");
        let tools = v.value.get_obj().unwrap().get("compat_tools").unwrap()[0]
            .get_obj()
            .unwrap();
        let t = tools.get(NAME).unwrap()[0].get_obj().unwrap();
        assert_eq!(obj_str(t, "install_path"), ".");
        assert_eq!(obj_str(t, "display_name"), DISPLAY_NAME);
        assert_eq!(obj_str(t, "from_oslist"), "linux");
        assert_eq!(obj_str(t, "to_oslist"), "linux");

        let text = toolmanifest_vdf();
        let v = keyvalues_parser::parse(&text).unwrap();
        assert_eq!(v.key, "manifest");
        let m = v.value.get_obj().unwrap();
        assert_eq!(obj_str(m, "version"), "2");
        assert_eq!(obj_str(m, "commandline"), "/cgsplit-shim compat %verb% --");
        // Our own lexer reads them too.
        crate::vdf::Document::parse(text.as_bytes()).unwrap();
        assert!(DISPLAY_NAME.contains(env!("CARGO_PKG_VERSION")));
    }

    #[test]
    fn several_entries_render_like_the_fwgs_corpus_file() {
        let text = render_compatibilitytool(&[
            Entry {
                name: "a",
                display_name: "A \"x\"",
                from_oslist: "windows",
                to_oslist: "linux",
            },
            Entry {
                name: "b",
                display_name: "B",
                from_oslist: "linux",
                to_oslist: "linux",
            },
        ]);
        let v = keyvalues_parser::parse(&text).unwrap();
        let tools = v.value.get_obj().unwrap().get("compat_tools").unwrap()[0]
            .get_obj()
            .unwrap();
        assert_eq!(tools.len(), 2);
        assert_eq!(
            obj_str(
                tools.get("a").unwrap()[0].get_obj().unwrap(),
                "display_name"
            ),
            "A \"x\""
        );
        // Same shape as a real two-tool file (FWGS Xash3D wrapper).
        let fwgs = include_str!(
            "../../tests/fixtures/corpus/FWGS__steamplay-xash3d-fwgs__compatibilitytool.vdf"
        );
        let f = keyvalues_parser::parse(fwgs).unwrap();
        assert_eq!(f.key, v.key);
        assert!(f.value.get_obj().unwrap().get("compat_tools").is_some());
    }
}
