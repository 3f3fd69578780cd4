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
/// Shown in Steam's compatibility menu.
pub const DISPLAY_NAME: &str = "cgsplit (own cgroup scope)";
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
const TOOLMANIFEST_TEMPLATE: &str = include_str!("../../../compat-tool-template/toolmanifest.vdf");

/// `compatibilitytool.vdf` declaring [`NAME`] (linux → linux, `install_path "."`).
pub fn compatibilitytool_vdf() -> String {
    COMPATIBILITYTOOL_TEMPLATE
        .replace("@NAME@", NAME)
        .replace("@DISPLAY_NAME@", DISPLAY_NAME)
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
    }
}
