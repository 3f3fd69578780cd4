//! The cgsplit compatibility tool: `compatibilitytool.vdf` and
//! `toolmanifest.vdf`, rendered from `compat-tool-template/`.
//!
//! Facts (STEAM.md §§1–2; steam-compat-tool-interface.md): the per-user
//! directory Steam scans is `~/.steam/root/compatibilitytools.d/<dir>/`;
//! `install_path "."` means the directory of the vdf; the key is spelled
//! `compat_tools` (the interface doc's `"compat tools"` is not what real tools
//! use); a v2 manifest's `commandline` starts with `/` (relative to the tool
//! directory) and `%verb%` becomes `waitforexitandrun` or `run`.

/// Internal tool name of the plain entry (the value `config.vdf`
/// `CompatToolMapping` stores).
pub const NAME: &str = "cgsplit";
/// Shown in Steam's compatibility menu, with this version so a user can see
/// which build Steam loaded, e.g. `cgsplit 0.1.0 (own cgroup scope)`.
pub const DISPLAY_NAME: &str =
    concat!("cgsplit ", env!("CARGO_PKG_VERSION"), " (own cgroup scope)");
/// Directory of the plain entry under `compatibilitytools.d`; the other
/// entries' directories start with `cgsplit-`.
pub const DIR: &str = "cgsplit";
/// File names inside a tool directory.
pub const COMPATIBILITYTOOL_VDF: &str = "compatibilitytool.vdf";
/// See [`COMPATIBILITYTOOL_VDF`].
pub const TOOLMANIFEST_VDF: &str = "toolmanifest.vdf";
/// The shim's file name in a tool directory.
pub const SHIM: &str = cgsplit_core::launch::SHIM_NAME;
/// The launcher of a "cgsplit + Proton" entry (see [`ToolEntry::launcher`]).
pub const CHAIN: &str = "cgsplit-chain";
/// Every file cgsplit puts into a tool directory (what removal deletes).
pub const FILES: [&str; 4] = [COMPATIBILITYTOOL_VDF, TOOLMANIFEST_VDF, SHIM, CHAIN];
/// Text every rendered `compatibilitytool.vdf` carries: how cgsplit tells its
/// own tool directories from anyone else's.
pub const MARKER: &str = "rendered by cgsplit-install";

const COMPATIBILITYTOOL_TEMPLATE: &str =
    include_str!("../../../compat-tool-template/compatibilitytool.vdf");
const ENTRY_TEMPLATE: &str = include_str!("../../../compat-tool-template/entry.vdf");
const TOOLMANIFEST_TEMPLATE: &str = include_str!("../../../compat-tool-template/toolmanifest.vdf");
const CHAIN_TEMPLATE: &str = include_str!("../../../compat-tool-template/chain.sh");

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

fn esc(s: &str) -> String {
    String::from_utf8(crate::vdf::lex::escape(s.as_bytes())).expect("UTF-8")
}

/// `compatibilitytool.vdf` for the directory `compatibilitytools.d/<dir>/`
/// declaring `entries` (all with `install_path "."`). Names and display
/// names are escaped as VDF strings.
pub fn render_compatibilitytool(dir: &str, entries: &[Entry]) -> String {
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
    COMPATIBILITYTOOL_TEMPLATE
        .replace("@DIR@", &one_line(dir))
        .replace("@ENTRIES@\n", &rendered)
}

/// `compatibilitytool.vdf` declaring [`NAME`] (linux → linux, `install_path "."`).
pub fn compatibilitytool_vdf() -> String {
    ToolEntry::plain().compatibilitytool_vdf()
}

/// v2 `toolmanifest.vdf` whose `commandline` is `"/cgsplit-shim compat %verb% --"`.
pub fn toolmanifest_vdf() -> String {
    ToolEntry::plain().toolmanifest_vdf()
}

/// Control characters (a newline in a directory name) would end a comment
/// line in a rendered file; they are shown as `?`.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// `[a-z0-9]` runs of `s` joined by `-`: `Proton 9.0 (Beta)` → `proton-9-0-beta`.
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// One cgsplit tool entry: its own directory `compatibilitytools.d/<dir>/`
/// holding `compatibilitytool.vdf` (one tool, `install_path "."`), a v2
/// `toolmanifest.vdf`, a copy of the static shim and, for a Proton entry,
/// the launcher [`CHAIN`].
///
/// Three kinds (issue 7):
/// - **plain** `cgsplit` (linux → linux): `/cgsplit-shim compat %verb% --`,
///   no required tool, so the shim runs outside any container;
/// - **runtime** `cgsplit-<scout|soldier|sniper>` (linux → linux): the same
///   command line with `require_tool_appid` of that Steam Linux Runtime. A
///   required tool is the outer one ("the command-line is built up by taking
///   the required tool, then appending the tool that requires it", interface
///   doc), so the shim runs inside the runtime's container, right before the
///   game;
/// - **Proton** `cgsplit-<slug of the Proton's name>` (windows → linux):
///   `/cgsplit-chain %verb%` with Proton's own `require_tool_appid`,
///   `use_sessions` and `compatmanager_layer_name`, so Steam builds
///   `<runtime>/_v2-entry-point --verb=V -- <entry>/cgsplit-chain V <game>`
///   and the launcher runs `cgsplit-shim --chain compat V -- <Proton>/proton
///   V <game>` inside the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolEntry {
    /// Directory name under `compatibilitytools.d`, also the internal name
    /// (unique: Steam lets a later tool of the same name replace an earlier one).
    pub dir: String,
    /// Shown in Steam's menu.
    pub display_name: String,
    /// `windows` for a Proton entry, else `linux`.
    pub from_oslist: &'static str,
    /// `require_tool_appid`.
    pub require_tool_appid: Option<u32>,
    /// `use_sessions`, copied from the Proton's manifest.
    pub use_sessions: Option<String>,
    /// `compatmanager_layer_name`, copied from the Proton's manifest.
    pub compatmanager_layer_name: Option<String>,
    /// For a Proton entry: the absolute path of Proton's entry point
    /// (`<Proton dir>/proton`) and the Proton's name.
    pub next: Option<(String, String)>,
}

impl ToolEntry {
    /// The plain `cgsplit` entry.
    pub fn plain() -> Self {
        Self {
            dir: DIR.to_owned(),
            display_name: DISPLAY_NAME.to_owned(),
            from_oslist: "linux",
            require_tool_appid: None,
            use_sessions: None,
            compatmanager_layer_name: None,
            next: None,
        }
    }

    /// The entry running inside the Steam Linux Runtime `rt`.
    pub fn runtime(rt: &crate::steam::tools::Runtime) -> Self {
        Self {
            dir: format!("{DIR}-{}", rt.short),
            display_name: format!(
                "cgsplit {} in {} (own cgroup scope)",
                env!("CARGO_PKG_VERSION"),
                rt.name
            ),
            require_tool_appid: Some(rt.appid),
            ..Self::plain()
        }
    }

    /// The "cgsplit + <Proton>" entry for `p`.
    ///
    /// Errors: the Proton's entry point path is not UTF-8 (it could not be
    /// written into the launcher).
    pub fn proton(p: &crate::steam::tools::Proton) -> Result<Self, String> {
        let entry = p.entry_point.to_str().ok_or_else(|| {
            format!(
                "{} is not valid UTF-8: no \"cgsplit + {}\" entry",
                p.entry_point.display(),
                p.name
            )
        })?;
        let s = slug(&p.name);
        Ok(Self {
            dir: format!("{DIR}-{}", if s.is_empty() { "proton" } else { &s }),
            display_name: format!("cgsplit + {}", one_line(&p.name)),
            from_oslist: "windows",
            require_tool_appid: p.manifest.require_tool_appid,
            use_sessions: p.manifest.use_sessions.clone(),
            compatmanager_layer_name: p.manifest.compatmanager_layer_name.clone(),
            next: Some((entry.to_owned(), p.name.clone())),
        })
    }

    /// Its `compatibilitytool.vdf`.
    pub fn compatibilitytool_vdf(&self) -> String {
        render_compatibilitytool(
            &self.dir,
            &[Entry {
                name: &self.dir,
                display_name: &self.display_name,
                from_oslist: self.from_oslist,
                to_oslist: "linux",
            }],
        )
    }

    /// Its v2 `toolmanifest.vdf`: `commandline` `/cgsplit-shim compat %verb% --`
    /// (plain, runtime) or `/cgsplit-chain %verb%` (Proton), then the
    /// optional keys.
    pub fn toolmanifest_vdf(&self) -> String {
        let commandline = if self.next.is_some() {
            format!("/{CHAIN} %verb%")
        } else {
            format!("/{SHIM} compat %verb% --")
        };
        let mut extra = String::new();
        let mut line = |k: &str, v: &str| {
            extra.push_str(&format!("\t\"{k}\"\t\t\"{}\"\n", esc(v)));
        };
        if let Some(id) = self.require_tool_appid {
            line("require_tool_appid", &id.to_string());
        }
        if let Some(v) = &self.use_sessions {
            line("use_sessions", v);
        }
        if let Some(v) = &self.compatmanager_layer_name {
            line("compatmanager_layer_name", v);
        }
        TOOLMANIFEST_TEMPLATE
            .replace("@COMMANDLINE@", &esc(&commandline))
            .replace("@EXTRA@", &extra)
    }

    /// The launcher of a Proton entry (`None` for the others): a POSIX sh
    /// script that runs the shim beside it with `--chain compat "$1" --
    /// '<Proton>/proton' "$@"`.
    ///
    /// Why a launcher and not the Proton path in `commandline`: the interface
    /// doc only says a v1 `commandline` is "a shell expression" and that a v2
    /// one gets `%verb%` replaced; how Steam treats quotes inside a v2 line is
    /// not documented (logs show it single-quotes the tool directory and runs
    /// the whole line with `/bin/sh -c`, STEAM.md §2, but nothing promises a
    /// quoted word of ours survives), and Proton directories hold spaces and
    /// parentheses (`Proton 9.0 (Beta)`). The launcher keeps the
    /// `commandline` as plain as Proton's own (`/proton %verb%`) and quotes the
    /// path itself. `/bin/sh` exists wherever Proton runs (Proton itself is a
    /// Python script; the Steam Linux Runtime and the flatpak runtime both
    /// ship `sh`). When Proton's path is not visible where the launcher runs
    /// (a container that does not share its library), it says so and exits 127.
    pub fn launcher(&self) -> Option<String> {
        let (next, name) = self.next.as_ref()?;
        let q = |s: &str| cgsplit_core::launch::sh_quote(s).into_owned();
        let dir = std::path::Path::new(next)
            .parent()
            .and_then(std::path::Path::to_str)
            .unwrap_or(next);
        Some(
            CHAIN_TEMPLATE
                .replace("@DISPLAY_NAME@", &one_line(&self.display_name))
                .replace("@DIR@", &one_line(&self.dir))
                .replace("@NEXT@", &q(next))
                .replace("@NAME@", &q(name))
                .replace("@MOUNT@", &q(&q(dir)))
                .replace("@SHIM@", SHIM),
        )
    }

    /// Every file of the entry's directory: (name, bytes, mode).
    pub fn files<'a>(
        &self,
        shim: &'a [u8],
    ) -> Vec<(&'static str, std::borrow::Cow<'a, [u8]>, u32)> {
        let mut v = vec![
            (
                COMPATIBILITYTOOL_VDF,
                self.compatibilitytool_vdf().into_bytes().into(),
                0o644,
            ),
            (
                TOOLMANIFEST_VDF,
                self.toolmanifest_vdf().into_bytes().into(),
                0o644,
            ),
            (SHIM, shim.into(), 0o755),
        ];
        if let Some(l) = self.launcher() {
            v.push((CHAIN, l.into_bytes().into(), 0o755));
        }
        v
    }
}

/// The entries for what a Steam root has: plain, one per runtime, one per
/// Proton (directory names made unique with `-2`, `-3`, … in that order);
/// with one warning line per Proton that gets none.
pub fn entries(found: &crate::steam::tools::Found) -> (Vec<ToolEntry>, Vec<String>) {
    let mut v = vec![ToolEntry::plain()];
    let mut warnings = Vec::new();
    v.extend(found.runtimes.iter().map(ToolEntry::runtime));
    for p in &found.protons {
        match ToolEntry::proton(p) {
            Ok(mut e) => {
                let base = e.dir.clone();
                let mut n = 1;
                while v.iter().any(|o| o.dir == e.dir) {
                    n += 1;
                    e.dir = format!("{base}-{n}");
                }
                v.push(e);
            }
            Err(w) => warnings.push(w),
        }
    }
    (v, warnings)
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
        let text = render_compatibilitytool(
            "x",
            &[
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
            ],
        );
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

    #[test]
    fn proton_launcher_quotes_any_path_and_names_an_unreachable_proton() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        // A directory name with every character sh treats specially.
        let pdir = t.path().join("Proton 9.0 (Beta) $HOME `x` \"q\" 'a'\\b");
        std::fs::create_dir_all(&pdir).unwrap();
        let p = crate::steam::tools::Proton {
            dir: pdir.clone(),
            name: "Proton 9.0 (Beta) $HOME".into(),
            entry_point: pdir.join("proton"),
            manifest: crate::steam::tools::Manifest {
                require_tool_appid: Some(1628350),
                use_sessions: Some("1".into()),
                compatmanager_layer_name: Some("proton".into()),
                ..Default::default()
            },
        };
        let e = ToolEntry::proton(&p).unwrap();
        assert_eq!(e.dir, "cgsplit-proton-9-0-beta-home");
        let entry = t.path().join("entry");
        std::fs::create_dir_all(&entry).unwrap();
        let files = e.files(b"");
        let names: Vec<&str> = files.iter().map(|f| f.0).collect();
        assert_eq!(names, FILES);
        let chain = entry.join(CHAIN);
        std::fs::write(&chain, e.launcher().unwrap()).unwrap();
        std::fs::set_permissions(&chain, std::fs::Permissions::from_mode(0o755)).unwrap();
        let shim = entry.join(SHIM);
        std::fs::write(
            &shim,
            "#!/bin/sh\nfor a; do printf '[%s]\\n' \"$a\"; done\n",
        )
        .unwrap();
        std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Proton not there: one clear line naming it, exit 127, shim not run.
        let o = std::process::Command::new(&chain)
            .args(["waitforexitandrun", "game.exe"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(127));
        assert!(o.stdout.is_empty());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.starts_with(&format!(
                "cgsplit: {}/proton (Proton 9.0 (Beta) $HOME) is not visible here",
                pdir.display()
            )),
            "{err}"
        );
        assert!(err.contains("STEAM_COMPAT_MOUNTS='"), "{err}");
        // Proton there: the exact argv.
        std::fs::write(pdir.join("proton"), "").unwrap();
        let o = std::process::Command::new(&chain)
            .args(["getcompatpath", "/a b"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            format!(
                "[--chain]\n[compat]\n[getcompatpath]\n[--]\n[{}/proton]\n[getcompatpath]\n[/a b]\n",
                pdir.display()
            )
        );
        let text = e.toolmanifest_vdf();
        let m = keyvalues_parser::parse(&text).unwrap();
        let m = m.value.get_obj().unwrap();
        assert_eq!(obj_str(m, "commandline"), "/cgsplit-chain %verb%");
        assert_eq!(obj_str(m, "require_tool_appid"), "1628350");
        assert_eq!(obj_str(m, "use_sessions"), "1");
        assert_eq!(obj_str(m, "compatmanager_layer_name"), "proton");
        let c = e.compatibilitytool_vdf();
        assert!(
            c.contains(MARKER) && c.contains("compatibilitytools.d/cgsplit-proton-9-0-beta-home/")
        );
        assert_eq!(slug("  GE-Proton9-20  "), "ge-proton9-20");
        assert_eq!(slug("Proton - Experimental"), "proton-experimental");
    }
}
