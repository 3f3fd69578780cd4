//! The compatibility tools cgsplit puts an entry in front of: the Steam Linux
//! Runtimes and the Protons of one Steam root.
//!
//! Facts (STEAM.md §§1–2; steam-compat-tool-interface.md "Tool manifest"):
//! - Steam's own tools (Proton, Steam Linux Runtime) are apps installed into
//!   a library's `steamapps/common/<dir>/` with an `appmanifest_<id>.acf`; a
//!   tool's `toolmanifest.vdf` names the tool that must wrap it in
//!   `require_tool_appid` (Proton 8+: 1628350 sniper; Proton 5.13–7: 1391110
//!   soldier; arm64 builds: 3810310). Runtimes: scout 1070560 (itself
//!   "scout-on-soldier", requiring 1391110), soldier 1391110, sniper 1628350
//!   (ProtonUp-Qt `constants.py`; steam-runtime-tools `launch-options.py`).
//! - Third-party Protons (GE-Proton and the like) live in
//!   `<root>/compatibilitytools.d/<dir>/` with `compatibilitytool.vdf`
//!   (`display_name`) and their own `toolmanifest.vdf`.
//! - A Proton directory is recognised by its `proton` entry point script
//!   (ValveSoftware/Proton: `proton` at the top of the depot; the manifest's
//!   `commandline` is `/proton %verb%`).
//!
//! Reading only; nothing here writes.

use std::fs;
use std::path::{Path, PathBuf};

use keyvalues_parser::{Obj, Value};

use crate::steam::appmanifest;

/// The Steam Linux Runtimes that get a cgsplit entry of their own:
/// (app id, short name used in directory and tool names, Steam's name).
pub const RUNTIMES: [(u32, &str, &str); 3] = [
    (1070560, "scout", "Steam Linux Runtime 1.0 (scout)"),
    (1391110, "soldier", "Steam Linux Runtime 2.0 (soldier)"),
    (1628350, "sniper", "Steam Linux Runtime 3.0 (sniper)"),
];

/// The `proton` entry point file that marks a Proton directory.
pub const PROTON_ENTRY: &str = "proton";

/// The fields of a `toolmanifest.vdf` cgsplit uses (interface doc, "Tool
/// manifest"); keys matched case-insensitively, values as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// `version`: `"2"` for current tools; absent means 1.
    pub version: Option<String>,
    /// `commandline`, e.g. `/proton %verb%`.
    pub commandline: Option<String>,
    /// `require_tool_appid`: the app id of the tool that must wrap this one.
    pub require_tool_appid: Option<u32>,
    /// `use_sessions`, e.g. `"1"` (older "session mode").
    pub use_sessions: Option<String>,
    /// `compatmanager_layer_name`, e.g. `proton`, `container-runtime`.
    pub compatmanager_layer_name: Option<String>,
}

fn parse_vdf(text: &str) -> Result<keyvalues_parser::PartialVdf<'_>, String> {
    // Escaped first (Steam escapes `\`), raw for hand-made files with a bare `\`.
    keyvalues_parser::parse(text).or_else(|e| {
        keyvalues_parser::Parser::new()
            .literal_special_chars(true)
            .parse(text)
            .map_err(|_| e.to_string())
    })
}

fn get_str<'a>(obj: &'a Obj<'_>, key: &str) -> Option<&'a str> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .and_then(|(_, v)| v.first())
        .and_then(Value::get_str)
}

/// Parses a `toolmanifest.vdf`.
///
/// Errors: the text is not VDF, its root key is not `manifest`, or
/// `require_tool_appid` is not a number; the message says which.
pub fn parse_manifest(text: &str) -> Result<Manifest, String> {
    let vdf = parse_vdf(text).map_err(|e| format!("not valid VDF: {e}"))?;
    if !vdf.key.eq_ignore_ascii_case("manifest") {
        return Err(format!("root key is {:?}, expected \"manifest\"", vdf.key));
    }
    let obj = vdf.value.get_obj().ok_or("\"manifest\" is not a block")?;
    let require_tool_appid = match get_str(obj, "require_tool_appid") {
        None => None,
        Some(s) => Some(
            s.trim()
                .parse::<u32>()
                .map_err(|_| format!("require_tool_appid {s:?} is not an app id"))?,
        ),
    };
    Ok(Manifest {
        version: get_str(obj, "version").map(str::to_owned),
        commandline: get_str(obj, "commandline").map(str::to_owned),
        require_tool_appid,
        use_sessions: get_str(obj, "use_sessions").map(str::to_owned),
        compatmanager_layer_name: get_str(obj, "compatmanager_layer_name").map(str::to_owned),
    })
}

/// The first `display_name` in a `compatibilitytool.vdf`
/// (`compatibilitytools/compat_tools/<name>/display_name`, keys matched
/// case-insensitively); `None` when unreadable.
pub fn tool_display_name(text: &str) -> Option<String> {
    let vdf = parse_vdf(text).ok()?;
    let tools = vdf.value.get_obj()?;
    let tools = tools
        .iter()
        .find(|(k, _)| {
            k.eq_ignore_ascii_case("compat_tools") || k.eq_ignore_ascii_case("compat tools")
        })?
        .1
        .first()?
        .get_obj()?;
    tools
        .values()
        .flatten()
        .filter_map(Value::get_obj)
        .find_map(|t| get_str(t, "display_name").map(str::to_owned))
}

/// The entry point a Proton's `commandline` runs, relative to its directory
/// (`/proton %verb%` → `proton`), when the rest of the line is only the verb
/// (`%verb%` in v2; `waitforexitandrun`/`run` in old v1 manifests): cgsplit
/// passes Steam's verb itself and cannot carry other words through.
///
/// Errors: the line does not start with `/`, or has other words.
pub fn proton_entry_point(commandline: &str) -> Result<&str, String> {
    let mut words = commandline.split_ascii_whitespace();
    let first = words
        .next()
        .and_then(|w| w.strip_prefix('/'))
        .filter(|w| !w.is_empty())
        .ok_or_else(|| format!("commandline {commandline:?} does not start with /ENTRY"))?;
    let rest: Vec<&str> = words.collect();
    if rest
        .iter()
        .any(|w| !matches!(*w, "%verb%" | "waitforexitandrun" | "run"))
    {
        return Err(format!(
            "commandline {commandline:?} is not of the form \"/ENTRY %verb%\"; cgsplit cannot chain to it"
        ));
    }
    Ok(first)
}

/// One Proton found in a Steam root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proton {
    /// Its directory, e.g. `<library>/steamapps/common/Proton 9.0 (Beta)`.
    pub dir: PathBuf,
    /// Its name: the directory name for Steam's Protons, the
    /// `display_name` of its `compatibilitytool.vdf` for third-party ones.
    pub name: String,
    /// Its entry point, absolute: `<dir>/proton`.
    pub entry_point: PathBuf,
    /// Its own `toolmanifest.vdf`.
    pub manifest: Manifest,
}

/// A Steam Linux Runtime installed in one of the root's libraries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    /// Its app id (one of [`RUNTIMES`]).
    pub appid: u32,
    /// Short name: `scout`, `soldier`, `sniper`.
    pub short: &'static str,
    /// Steam's name for it.
    pub name: &'static str,
}

/// What one Steam root has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// Installed runtimes, in [`RUNTIMES`] order.
    pub runtimes: Vec<Runtime>,
    /// Protons that can get an entry: `steamapps/common` of every library
    /// first (library order, then name), then `compatibilitytools.d`.
    pub protons: Vec<Proton>,
    /// One line per Proton skipped, naming the path and what to do.
    pub warnings: Vec<String>,
}

/// `<root>/steamapps` and every library's `steamapps` listed in
/// `<root>/steamapps/libraryfolders.vdf` (STEAM.md §4), deduplicated, root first.
pub fn library_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![root.join("steamapps")];
    if let Ok(text) = fs::read_to_string(root.join("steamapps/libraryfolders.vdf")) {
        for p in appmanifest::library_paths(&text) {
            let d = PathBuf::from(p).join("steamapps");
            let same = |a: &Path| {
                a == d
                    || matches!((fs::canonicalize(a), fs::canonicalize(&d)), (Ok(x), Ok(y)) if x == y)
            };
            if !dirs.iter().any(|a| same(a)) {
                dirs.push(d);
            }
        }
    }
    dirs
}

/// True when `appmanifest_<appid>.acf` exists in one of `libraries`.
pub fn installed(libraries: &[PathBuf], appid: u32) -> bool {
    libraries
        .iter()
        .any(|d| d.join(format!("appmanifest_{appid}.acf")).is_file())
}

fn sorted_subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

/// Reads the Proton in `dir` (which holds a `proton` file), or says why it
/// gets no entry.
fn read_proton(dir: &Path, name: String, libraries: &[PathBuf]) -> Result<Proton, String> {
    let manifest_path = dir.join("toolmanifest.vdf");
    let text = match fs::read(&manifest_path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "{} has no toolmanifest.vdf, so its required runtime is unknown: no \"cgsplit + {name}\" entry (reinstall or verify that Proton in Steam)",
                dir.display()
            ));
        }
        Err(e) => {
            return Err(format!(
                "cannot read {}: {e}: no \"cgsplit + {name}\" entry",
                manifest_path.display()
            ));
        }
    };
    let manifest = parse_manifest(&text).map_err(|e| {
        format!(
            "{}: {e}: no \"cgsplit + {name}\" entry",
            manifest_path.display()
        )
    })?;
    let entry = proton_entry_point(manifest.commandline.as_deref().unwrap_or("")).map_err(|e| {
        format!(
            "{}: {e}: no \"cgsplit + {name}\" entry",
            manifest_path.display()
        )
    })?;
    if let Some(id) = manifest.require_tool_appid
        && !installed(libraries, id)
    {
        let runtime = RUNTIMES
            .iter()
            .find(|r| r.0 == id)
            .map_or(format!("app {id}"), |r| format!("{} (app {id})", r.2));
        return Err(format!(
            "{} requires {runtime}, which is not installed in any library ({}): no \"cgsplit + {name}\" entry (install it in Steam, e.g. by starting a game with {name} once, then run cgsplit-install again)",
            manifest_path.display(),
            libraries
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(Proton {
        dir: dir.to_path_buf(),
        name,
        entry_point: dir.join(entry),
        manifest,
    })
}

/// Finds the runtimes and Protons of the Steam root `root`. Directories of
/// `compatibilitytools.d` whose name starts with `cgsplit` are cgsplit's own
/// and skipped.
pub fn find(root: &Path) -> Found {
    let libraries = library_dirs(root);
    let mut found = Found {
        runtimes: RUNTIMES
            .iter()
            .filter(|(id, _, _)| installed(&libraries, *id))
            .map(|&(appid, short, name)| Runtime { appid, short, name })
            .collect(),
        ..Found::default()
    };
    let mut candidates: Vec<(PathBuf, String)> = Vec::new();
    for lib in &libraries {
        for d in sorted_subdirs(&lib.join("common")) {
            if d.join(PROTON_ENTRY).is_file() {
                let name = d
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                candidates.push((d, name));
            }
        }
    }
    for d in sorted_subdirs(&root.join("compatibilitytools.d")) {
        let dir_name = d
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if dir_name.starts_with("cgsplit") || !d.join(PROTON_ENTRY).is_file() {
            continue;
        }
        let name = fs::read(d.join("compatibilitytool.vdf"))
            .ok()
            .and_then(|b| tool_display_name(&String::from_utf8_lossy(&b)))
            .unwrap_or(dir_name);
        candidates.push((d, name));
    }
    for (dir, name) in candidates {
        match read_proton(&dir, name, &libraries) {
            Ok(p) => found.protons.push(p),
            Err(w) => found.warnings.push(w),
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ValveSoftware/Proton `toolmanifest_runtime.vdf` as shipped in
    /// Proton 8.0+ depots (STEAM.md §2: `/proton %verb%`, 1628350,
    /// `use_sessions 1`, `compatmanager_layer_name proton`).
    const PROTON_MANIFEST: &str = "\"manifest\"\n{\n  \"version\" \"2\"\n  \"commandline\" \"/proton %verb%\"\n  \"require_tool_appid\" \"1628350\"\n  \"use_sessions\" \"1\"\n  \"compatmanager_layer_name\" \"proton\"\n}\n";

    #[test]
    fn manifests_real_shapes() {
        let m = parse_manifest(PROTON_MANIFEST).unwrap();
        assert_eq!(m.version.as_deref(), Some("2"));
        assert_eq!(m.require_tool_appid, Some(1628350));
        assert_eq!(m.use_sessions.as_deref(), Some("1"));
        assert_eq!(m.compatmanager_layer_name.as_deref(), Some("proton"));
        assert_eq!(proton_entry_point("/proton %verb%"), Ok("proton"));
        // steam-runtime-tools' scout-on-soldier manifest (corpus).
        let scout = include_str!(
            "../../tests/fixtures/corpus/YellowOnion__steam-runtime-tools__subprojects__container-runtime__runtimes__scout-on-soldier__toolmanifest.vdf"
        );
        let m = parse_manifest(scout).unwrap();
        assert_eq!(m.require_tool_appid, Some(1391110));
        // Old v1 Proton: the verb is part of the line.
        assert_eq!(
            proton_entry_point("/proton waitforexitandrun"),
            Ok("proton")
        );
        for bad in ["proton %verb%", "/", "/proton --flag %verb%", ""] {
            assert!(proton_entry_point(bad).is_err(), "{bad}");
        }
        assert!(parse_manifest("\"manifest\" { \"require_tool_appid\" \"x\" }").is_err());
        assert!(parse_manifest("\"other\" { }").is_err());
        assert!(parse_manifest("\"manifest\" {").is_err());
        let fwgs = include_str!(
            "../../tests/fixtures/corpus/FWGS__steamplay-xash3d-fwgs__compatibilitytool.vdf"
        );
        assert!(tool_display_name(fwgs).is_some());
    }

    fn write(p: &Path, text: &str) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    #[test]
    fn finds_protons_in_every_library_and_compatibilitytools_d() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        let lib2 = t.path().join("lib two");
        write(
            &root.join("steamapps/libraryfolders.vdf"),
            &format!(
                "\"libraryfolders\"\n{{\n\t\"0\"\n\t{{\n\t\t\"path\"\t\t\"{}\"\n\t}}\n\t\"1\"\n\t{{\n\t\t\"path\"\t\t\"{}\"\n\t}}\n}}\n",
                root.display(),
                lib2.display()
            ),
        );
        write(
            &root.join("steamapps/appmanifest_1628350.acf"),
            "\"AppState\" { }",
        );
        write(
            &lib2.join("steamapps/appmanifest_1391110.acf"),
            "\"AppState\" { }",
        );
        let p9 = lib2.join("steamapps/common/Proton 9.0 (Beta)");
        write(&p9.join("proton"), "#!/bin/sh\n");
        write(&p9.join("toolmanifest.vdf"), PROTON_MANIFEST);
        // No manifest: warned, skipped.
        write(&root.join("steamapps/common/Proton 5.0/proton"), "");
        // Requires a runtime nobody installed: warned, skipped.
        let arm = root.join("steamapps/common/Proton ARM");
        write(&arm.join("proton"), "");
        write(
            &arm.join("toolmanifest.vdf"),
            &PROTON_MANIFEST.replace("1628350", "3810310"),
        );
        // Not a Proton: no `proton` file.
        write(
            &root.join("steamapps/common/SteamLinuxRuntime_sniper/toolmanifest.vdf"),
            "\"manifest\" { }",
        );
        let ge = root.join("compatibilitytools.d/GE-Proton9-20");
        write(&ge.join("proton"), "");
        write(&ge.join("toolmanifest.vdf"), PROTON_MANIFEST);
        write(
            &ge.join("compatibilitytool.vdf"),
            "\"compatibilitytools\" { \"compat_tools\" { \"GE-Proton9-20\" { \"install_path\" \".\" \"display_name\" \"GE-Proton 9-20\" } } }",
        );
        // Our own entries are never chained to.
        write(&root.join("compatibilitytools.d/cgsplit-x/proton"), "");

        let f = find(&root);
        let ids: Vec<u32> = f.runtimes.iter().map(|r| r.appid).collect();
        assert_eq!(ids, vec![1391110, 1628350]);
        let names: Vec<&str> = f.protons.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, vec!["Proton 9.0 (Beta)", "GE-Proton 9-20"]);
        assert_eq!(f.protons[0].entry_point, p9.join("proton"));
        assert_eq!(f.warnings.len(), 2, "{:?}", f.warnings);
        assert!(
            f.warnings
                .iter()
                .any(|w| w.contains("Proton 5.0 has no toolmanifest.vdf")),
            "{:?}",
            f.warnings
        );
        assert!(
            f.warnings
                .iter()
                .any(|w| w.contains("Proton ARM/toolmanifest.vdf requires app 3810310")),
            "{:?}",
            f.warnings
        );
    }
}
