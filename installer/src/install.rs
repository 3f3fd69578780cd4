//! `cgsplit-install`, step by step. Everything is read, planned and checked
//! first (a [`Plan`] of whole-file changes); nothing is written until every
//! input has been read and every edit has passed its checks, so bad input
//! touches no file. Writes then happen in this order: compatibility tool
//! files, the state record, the Steam files (each with a backup next to it).
//! The state record is written before the Steam files so a crash in between
//! never leaves a wrapped value without a record of the original.
//! `--dry-run` prints the plan as unified diffs and writes nothing.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cgsplit_core::launch;

use crate::error::{Error, Result};
use crate::state::{self, CompatRecord, Record, State};
use crate::steam::localconfig::{self, KeyPath};
use crate::steam::{appinfo, compat_tool, tools};
use crate::steam_dir::{self, Root};
use crate::vdf::lex;
use crate::{elf, fsio};

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `--game N`: install the tool, wrap the launch options (or map the tool).
    Install(u32),
    /// `--remove --game N`: undo what cgsplit did for that game.
    Remove(u32),
    /// `--uninstall`: undo everything recorded, remove the tool everywhere.
    Uninstall,
    /// `--list`: print roots and accounts.
    List,
}

/// Inputs, with every environment-derived path already decided (tests
/// point them at temp dirs).
#[derive(Debug, Clone)]
pub struct Options {
    /// What to do.
    pub action: Action,
    /// `--steam-root` (repeatable); empty: discover.
    pub steam_roots: Vec<PathBuf>,
    /// `--account`: account id or SteamID64.
    pub account: Option<String>,
    /// `--all-accounts`.
    pub all_accounts: bool,
    /// `--shim`, else `$CGSPLIT_SHIM`, else `cgsplit-shim` beside the
    /// installer: in that order, first given wins.
    pub shim_candidates: Vec<(String, PathBuf)>,
    /// Shim flags for the game's launch line: from `config.toml`, then
    /// `--shim-flag`s.
    pub shim_flags: Vec<String>,
    /// `--set-compat-tool`.
    pub set_compat_tool: bool,
    /// `--native`: the user says the game is a native Linux game.
    pub native: bool,
    /// `--stop-steam`.
    pub stop_steam: bool,
    /// How long `--stop-steam` waits for Steam to exit.
    pub stop_timeout: Duration,
    /// `--dry-run`.
    pub dry_run: bool,
    /// `$HOME`.
    pub home: PathBuf,
    /// `$XDG_DATA_HOME` (default `~/.local/share`).
    pub data_dir: Option<PathBuf>,
    /// `$XDG_STATE_HOME/cgsplit`.
    pub state_dir: PathBuf,
    /// Unix time used in records.
    pub now: u64,
}

/// How a planned file is written.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// A Steam user file: checked replace with a `.cgsplit-bak` backup.
    Steam,
    /// A file of cgsplit's own, with this mode.
    Own(u32),
}

/// One whole-file change.
#[derive(Debug, Clone)]
struct Change {
    path: PathBuf,
    old: Option<Vec<u8>>,
    /// `None`: delete the file.
    new: Option<Vec<u8>>,
    kind: Kind,
}

/// Every change of one run, and what to say about it.
#[derive(Debug, Default)]
struct Plan {
    tool: Vec<Change>,
    tool_dirs_to_remove: Vec<PathBuf>,
    steam: Vec<Change>,
    state: Option<(PathBuf, State, State)>,
    notes: Vec<String>,
    restart_hint: bool,
}

fn utf8(p: &Path) -> Result<String> {
    p.to_str()
        .map(str::to_owned)
        .ok_or_else(|| Error::NonUtf8Path(p.to_path_buf()))
}

fn quoted(v: &str) -> String {
    format!(
        "\"{}\"",
        String::from_utf8(lex::escape(v.as_bytes())).expect("UTF-8 in, UTF-8 out")
    )
}

fn vdf_err(path: &Path, _src: &[u8]) -> impl Fn(localconfig::LocalConfigError) -> Error + use<> {
    let path = path.to_path_buf();
    move |source| {
        // Only on the error path: read the file again to turn the byte
        // offset into a line and column (the bytes checked came from it).
        let line = source.offset().and_then(|o| {
            let bytes = fs::read(&path).ok()?;
            Some(localconfig::line_col(&bytes, o))
        });
        Error::LocalConfig {
            path: path.clone(),
            line,
            source,
        }
    }
}

/// Reads a Steam text VDF file: `None` when absent.
///
/// Errors: [`Error::Binary`] for binary data, [`Error::Io`] when unreadable.
fn read_text_vdf(path: &Path) -> Result<Option<Vec<u8>>> {
    let Some(bytes) = fsio::read_if_exists(path)? else {
        return Ok(None);
    };
    if let Some(offset) = localconfig::binary_at(&bytes) {
        let (line, _) = localconfig::line_col(&bytes, offset);
        return Err(Error::Binary {
            path: path.to_path_buf(),
            offset,
            line,
        });
    }
    Ok(Some(bytes))
}

fn load_state(o: &Options) -> Result<(PathBuf, State)> {
    let path = o.state_dir.join(state::FILE);
    let st = match fsio::read_if_exists(&path)? {
        None => State::default(),
        Some(b) => {
            state::parse_state(&String::from_utf8_lossy(&b)).map_err(|source| Error::State {
                path: path.clone(),
                source,
            })?
        }
    };
    Ok((path, st))
}

/// Loads and checks the shim: the first candidate given is used.
fn load_shim(o: &Options) -> Result<(PathBuf, Vec<u8>)> {
    let Some((_, path)) = o.shim_candidates.first() else {
        return Err(Error::ShimNotFound("no candidates".into()));
    };
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let tried = o
                .shim_candidates
                .iter()
                .map(|(how, p)| format!("{how} {}", p.display()))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(Error::ShimNotFound(tried));
        }
        Err(source) => {
            return Err(Error::Io {
                op: "read",
                path: path.clone(),
                source,
            });
        }
    };
    elf::check_static(&bytes).map_err(|source| Error::Shim {
        path: path.clone(),
        source,
    })?;
    Ok((path.clone(), bytes))
}

fn tool_dir(root: &Path) -> PathBuf {
    root.join("compatibilitytools.d").join(compat_tool::DIR)
}

fn compat_dir(root: &Path) -> PathBuf {
    root.join("compatibilitytools.d")
}

/// cgsplit's own tool directories in `root`'s `compatibilitytools.d`: the
/// plain one and every `cgsplit-*` one whose `compatibilitytool.vdf` carries
/// [`compat_tool::MARKER`] (so a user's own `cgsplit-foo` is never touched).
fn own_tool_dirs(root: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(compat_dir(root))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|d| {
            let name = d.file_name().and_then(|n| n.to_str()).unwrap_or("");
            (name == compat_tool::DIR || name.starts_with(&format!("{}-", compat_tool::DIR)))
                && fs::read(d.join(compat_tool::COMPATIBILITYTOOL_VDF)).is_ok_and(|b| {
                    memchr::memmem::find(&b, compat_tool::MARKER.as_bytes()).is_some()
                })
        })
        .collect();
    v.sort();
    v
}

fn plan_tool(
    plan: &mut Plan,
    dir: &Path,
    files: Vec<(&'static str, std::borrow::Cow<'_, [u8]>, u32)>,
) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for (name, bytes, mode) in files {
        let path = dir.join(name);
        let meta = fs::metadata(&path).ok();
        let same_mode = meta
            .as_ref()
            .is_some_and(|m| m.permissions().mode() & 0o777 == mode);
        // Compared in chunks: the shim is ~2 MB, no need to hold two copies.
        let same = meta.is_some() && fsio::holds(&path, &bytes)?;
        if same && same_mode {
            continue;
        }
        // The old text of small files, for --dry-run diffs.
        let old = match &meta {
            Some(m) if m.len() < 64 * 1024 => fsio::read_if_exists(&path)?,
            Some(_) => Some(Vec::new()),
            None => None,
        };
        plan.tool.push(Change {
            path,
            old,
            new: Some(bytes.into_owned()),
            kind: Kind::Own(mode),
        });
    }
    Ok(())
}

/// The root whose files `--game N` edits: the only `--steam-root`, else the
/// one library set holding `appmanifest_N.acf`, else the one `~/.steam/root`
/// points at, else the only root.
fn edit_roots(o: &Options, roots: &[Root], appid: u32) -> Result<Vec<Root>> {
    if !o.steam_roots.is_empty() {
        return Ok(roots.to_vec());
    }
    let with_game: Vec<&Root> = roots
        .iter()
        .filter(|r| steam_dir::find_manifest(&r.path, appid).is_ok())
        .collect();
    let list = |rs: &[&Root]| {
        rs.iter()
            .map(|r| format!("{} ({})", r.path.display(), r.kind))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match with_game[..] {
        [one] => return Ok(vec![one.clone()]),
        [] => {}
        _ => {
            return Err(Error::Refused(format!(
                "app {appid} is installed in several Steam roots: {}; pick one with --steam-root DIR",
                list(&with_game)
            )));
        }
    }
    let default = roots
        .iter()
        .find(|r| r.via.iter().any(|v| v.ends_with(".steam/root")));
    match (default, roots) {
        (Some(d), _) => Ok(vec![d.clone()]),
        (None, [only]) => Ok(vec![only.clone()]),
        _ => Err(Error::Refused(format!(
            "several Steam roots and none is ~/.steam/root: {}; pick one with --steam-root DIR",
            list(&roots.iter().collect::<Vec<_>>())
        ))),
    }
}

/// The accounts to edit in `root`, with why each was chosen.
fn accounts(o: &Options, root: &Path) -> Result<Vec<(u32, String)>> {
    if o.all_accounts {
        let all = steam_dir::accounts(root);
        if all.is_empty() {
            return Err(Error::Account(format!(
                "--all-accounts: no account directories in {}",
                root.join("userdata").display()
            )));
        }
        return Ok(all
            .into_iter()
            .map(|a| (a, "--all-accounts".to_owned()))
            .collect());
    }
    Ok(vec![steam_dir::resolve_account(
        root,
        o.account.as_deref(),
    )?])
}

fn localconfig_path(root: &Path, account: u32) -> Result<PathBuf> {
    let dir = root
        .join("userdata")
        .join(account.to_string())
        .join("config");
    if !dir.is_dir() {
        return Err(Error::Account(format!(
            "{} has no config/ directory ({} is missing); start Steam once with account {account}, quit it, then retry",
            root.join("userdata").join(account.to_string()).display(),
            dir.display()
        )));
    }
    Ok(dir.join("localconfig.vdf"))
}

/// Refuses (or with `--stop-steam` stops) a Steam that uses `root`.
fn ensure_steam_stopped(o: &Options, plan: &mut Plan, root: &Path) -> Result<()> {
    let pipes = steam_dir::pipe_candidates(&o.home, None, root);
    let pipes: Vec<PathBuf> = pipes
        .into_iter()
        .chain(
            o.steam_roots
                .iter()
                .flat_map(|r| steam_dir::pipe_candidates(&o.home, Some(r), root)),
        )
        .collect();
    let Some(pipe) = steam_dir::steam_running(&pipes)? else {
        return Ok(());
    };
    let hint = steam_dir::pid_hint(&pipe)
        .map(|(pid, alive)| {
            format!(
                "; steam.pid says {pid}{}",
                if alive { "" } else { " (no such process)" }
            )
        })
        .unwrap_or_default();
    if !o.stop_steam {
        return Err(Error::Refused(format!(
            "Steam is running ({} has a reader{hint}); it overwrites its config files on exit, so quit Steam first, or pass --stop-steam to ask it to shut down",
            pipe.display()
        )));
    }
    if o.dry_run {
        plan.notes.push(format!(
            "would ask Steam to shut down through {} before editing (dry run: Steam left running)",
            pipe.display()
        ));
        return Ok(());
    }
    steam_dir::stop_steam(&pipe, root, o.stop_timeout)
}

/// Adds the replacement of a Steam file (`old` → `new`) to the plan.
fn plan_steam_file(plan: &mut Plan, path: &Path, old: Vec<u8>, new: Vec<u8>) -> Result<()> {
    if old == new {
        return Ok(());
    }
    fsio::check_writable(path)?;
    if let Some(c) = plan.steam.iter_mut().find(|c| c.path == path) {
        c.new = Some(new);
    } else {
        plan.steam.push(Change {
            path: path.to_path_buf(),
            old: Some(old),
            new: Some(new),
            kind: Kind::Steam,
        });
    }
    Ok(())
}

/// The current bytes of a planned Steam file (as already edited by the plan).
fn current_steam_bytes(plan: &Plan, path: &Path) -> Result<Option<Vec<u8>>> {
    if let Some(c) = plan.steam.iter().find(|c| c.path == path) {
        return Ok(c.new.clone());
    }
    read_text_vdf(path)
}

/// `InstallConfigStore/Software/Valve/Steam/CompatToolMapping/<appid>`.
pub fn compat_mapping_path(appid: u32) -> KeyPath {
    KeyPath::new(
        &[
            "InstallConfigStore",
            "Software",
            "Valve",
            "Steam",
            "CompatToolMapping",
        ],
        &appid.to_string(),
    )
}

fn compat_key(appid: u32, key: &str) -> KeyPath {
    let mut kp = compat_mapping_path(appid);
    kp.blocks.push(kp.key.clone());
    kp.key = key.to_owned();
    kp
}

/// Checks that `appid` may get a linux→linux tool: `common/oslist` in
/// `appcache/appinfo.vdf` lists linux, or `--native`.
fn check_native(o: &Options, root: &Path, appid: u32) -> Result<()> {
    let path = root.join("appcache/appinfo.vdf");
    let found = if path.exists() {
        appinfo::oslist(&path, appid).map_err(|e| {
            Error::Refused(format!(
                "{}: {e}; cannot tell whether app {appid} is a native Linux game; pass --native if it is",
                path.display()
            ))
        })
    } else {
        Ok(None)
    };
    let (ok, why) = match &found {
        Ok(Some(os)) if appinfo::has_linux(os) => (true, format!("oslist \"{os}\"")),
        Ok(Some(os)) => (
            false,
            format!("its oslist in {} is \"{os}\"", path.display()),
        ),
        Ok(None) => (false, format!("{} has no oslist for it", path.display())),
        Err(e) => (false, e.to_string()),
    };
    if ok {
        println!(
            "App {appid} is a native Linux game ({why} in {}).",
            path.display()
        );
        return Ok(());
    }
    if o.native {
        println!("App {appid}: {why}; going ahead because of --native.");
        return Ok(());
    }
    Err(Error::Refused(format!(
        "--set-compat-tool is only for native Linux games and app {appid} is not known to be one ({why}); replacing Proton with a linux→linux tool breaks a Windows game. Use launch options (run without --set-compat-tool), or pass --native if it is a native Linux game"
    )))
}

fn refuse_shortcut(appid: u32) -> Result<()> {
    if appid >= 1 << 31 {
        return Err(Error::Refused(format!(
            "app id {appid} is a non-Steam shortcut id (≥ 2^31); shortcuts live in the binary userdata/<account>/config/shortcuts.vdf, which cgsplit does not edit. In Steam, open the shortcut's Properties and put this before the target's launch options: '<steam root>/compatibilitytools.d/cgsplit/cgsplit-shim' -- %command%"
        )));
    }
    Ok(())
}

/// Plans the install of `appid`.
fn plan_install(o: &Options, appid: u32, plan: &mut Plan) -> Result<()> {
    refuse_shortcut(appid)?;
    let roots = discover(o)?;
    let edit = edit_roots(o, &roots, appid)?;
    if o.set_compat_tool && !o.shim_flags.is_empty() {
        return Err(Error::Refused(format!(
            "per-game shim flags ({}) can only go in launch options, and --set-compat-tool replaces the launch-option wrap with a tool mapping; run without --set-compat-tool (or remove the game's network/kill_steam_on_exit settings)",
            o.shim_flags.join(" ")
        )));
    }
    for r in &edit {
        ensure_steam_stopped(o, plan, &r.path)?;
    }
    let (state_path, mut st) = load_state(o)?;
    let before = st.clone();
    for r in &edit {
        let root_str = utf8(&r.path)?;
        println!("Steam root: {} ({})", r.path.display(), r.kind);
        match steam_dir::find_manifest(&r.path, appid) {
            Ok((m, name)) => println!(
                "Game {appid}: {} ({})",
                name.as_deref().unwrap_or("(no name in the manifest)"),
                m.display()
            ),
            Err(dirs) => eprintln!(
                "warning: no appmanifest_{appid}.acf in {}; app {appid} may not be installed here (going ahead)",
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
        if o.set_compat_tool {
            check_native(o, &r.path, appid)?;
            plan_compat_set(o, plan, &mut st, r, &root_str, appid)?;
            continue;
        }
        let shim_dest = tool_dir(&r.path).join(compat_tool::SHIM);
        let flags: Vec<&str> = o.shim_flags.iter().map(String::as_str).collect();
        let prefix = launch::shim_prefix(&utf8(&shim_dest)?, &flags);
        for (account, why) in accounts(o, &r.path)? {
            println!(
                "Account: {account} (SteamID64 {}; {why})",
                steam_dir::steamid64(account)
            );
            let lc = localconfig_path(&r.path, account)?;
            let src = read_text_vdf(&lc)?.ok_or_else(|| Error::NoLocalConfig(lc.clone()))?;
            let err = vdf_err(&lc, &src);
            let set = localconfig::update_at(&src, &localconfig::launch_options_path(appid), |c| {
                launch::wrap(c.map_or("", |c| c.value.as_str()), &prefix)
            })
            .map_err(&err)?;
            let current = set.old.clone();
            let old_value = current.as_ref().map_or("", |c| c.value.as_str()).to_owned();
            let new_value = set.now.value.clone();
            let new_token = String::from_utf8_lossy(&set.now.token).into_owned();
            let existing = st
                .launch
                .iter()
                .position(|rec| rec.is_for(&root_str, account, appid));
            let ours = existing.filter(|&i| {
                current
                    .as_ref()
                    .is_some_and(|c| c.token == st.launch[i].wrote_token.as_bytes())
            });
            let record = match ours {
                Some(i) => Record {
                    wrote_token: new_token.clone(),
                    ..st.launch[i].clone()
                },
                None => {
                    let original_token = match &current {
                        None => None,
                        Some(c) => match launch::unwrap(&c.value) {
                            Some(without) => {
                                plan.notes.push(format!(
                                    "the current value already holds a cgsplit-shim invocation; recording {without:?} as the value to restore"
                                ));
                                Some(quoted(&without))
                            }
                            None => Some(String::from_utf8_lossy(&c.token).into_owned()),
                        },
                    };
                    Record {
                        root: root_str.clone(),
                        account,
                        appid,
                        localconfig: utf8(&lc)?,
                        original_token,
                        wrote_token: new_token.clone(),
                        created_blocks: set.created_blocks,
                        backup: utf8(&fsio::backup_path(&lc, 0))?,
                        installed_at: o.now,
                    }
                }
            };
            match ours.or(existing) {
                Some(i) => st.launch[i] = record,
                None => st.launch.push(record),
            }
            let key = set.now.path.clone();
            println!(
                "LaunchOptions for app {appid}: {old_value:?} -> {new_value:?}{}",
                if !set.changed {
                    " (unchanged)"
                } else if current.is_none() {
                    " (key created)"
                } else {
                    ""
                }
            );
            println!("  at {key}");
            if set.changed {
                plan.restart_hint = true;
            }
            plan_steam_file(plan, &lc, src, set.new)?;
        }
    }
    let (shim_src, shim_bytes) = load_shim(o)?;
    let mut other_entries = Vec::new();
    for r in &roots {
        let found = tools::find(&r.path);
        let (entries, more) = compat_tool::entries(&found);
        for w in found.warnings.iter().chain(&more) {
            eprintln!("warning: {w}");
        }
        let before_len = plan.tool.len();
        let mut wanted = Vec::new();
        for e in &entries {
            let dir = compat_dir(&r.path).join(&e.dir);
            plan_tool(plan, &dir, e.files(&shim_bytes))?;
            let d = utf8(&dir)?;
            if !st.tools.contains(&d) {
                st.tools.push(d);
            }
            if e.dir != compat_tool::DIR {
                other_entries.push(format!(
                    "  \"{}\" ({}{}): {}",
                    e.display_name,
                    e.dir,
                    e.require_tool_appid
                        .map_or(String::new(), |id| format!(", requires app {id}")),
                    dir.display()
                ));
            }
            wanted.push(dir);
        }
        // Entries of Protons or runtimes that are gone.
        let recorded = st
            .tools
            .iter()
            .map(PathBuf::from)
            .filter(|d| d.parent() == Some(&compat_dir(&r.path)));
        let stale: Vec<PathBuf> = own_tool_dirs(&r.path)
            .into_iter()
            .chain(recorded)
            .filter(|d| !wanted.contains(d))
            .fold(Vec::new(), |mut v, d| {
                if !v.contains(&d) {
                    v.push(d);
                }
                v
            });
        for d in &stale {
            println!(
                "Compatibility tool: {} is no longer wanted (its Proton or runtime is gone); removing it",
                d.display()
            );
            plan_dir_removal(plan, d)?;
            let ds = utf8(d)?;
            st.tools.retain(|t| *t != ds);
        }
        if plan.tool.len() != before_len {
            plan.restart_hint = true;
        }
    }
    let dirs = roots
        .iter()
        .map(|r| tool_dir(&r.path).display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if plan.tool.is_empty() {
        println!(
            "Compatibility tool \"{}\": {dirs} (unchanged)",
            compat_tool::DISPLAY_NAME
        );
    } else {
        println!(
            "Compatibility tool \"{}\": {dirs} (shim from {})",
            compat_tool::DISPLAY_NAME,
            shim_src.display()
        );
    }
    if !other_entries.is_empty() {
        println!("Compatibility tools for Steam Linux Runtimes and Protons:");
        for l in &other_entries {
            println!("{l}");
        }
    }
    if st != before {
        plan.state = Some((state_path, before, st));
    }
    Ok(())
}

/// Plans `CompatToolMapping/<appid>` = cgsplit in `<root>/config/config.vdf`.
fn plan_compat_set(
    o: &Options,
    plan: &mut Plan,
    st: &mut State,
    r: &Root,
    root_str: &str,
    appid: u32,
) -> Result<()> {
    let path = r.path.join("config/config.vdf");
    let src = current_steam_bytes(plan, &path)?.ok_or_else(|| {
        Error::Refused(format!(
            "{} does not exist; start Steam once, quit it, then retry",
            path.display()
        ))
    })?;
    let err = vdf_err(&path, &src);
    let block = compat_mapping_path(appid);
    let original = localconfig::pair_bytes_at(&src, &block).map_err(&err)?;
    let mut new = src.clone();
    let mut created = 0;
    for (k, v) in [
        ("name", compat_tool::NAME),
        ("config", ""),
        ("priority", "250"),
    ] {
        let set = localconfig::set_at(&new, &compat_key(appid, k), v).map_err(&err)?;
        created = created.max(set.created_blocks);
        new = set.new;
    }
    let wrote = localconfig::pair_bytes_at(&new, &block)
        .map_err(&err)?
        .expect("just set");
    let existing = st
        .compat
        .iter()
        .position(|c| c.root == root_str && c.appid == appid);
    let rec = match existing {
        Some(i) if original.as_deref() == Some(st.compat[i].wrote_block.as_bytes()) => {
            CompatRecord {
                wrote_block: String::from_utf8_lossy(&wrote).into_owned(),
                ..st.compat[i].clone()
            }
        }
        _ => CompatRecord {
            root: root_str.to_owned(),
            appid,
            config_vdf: utf8(&path)?,
            original_block: original
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned()),
            wrote_block: String::from_utf8_lossy(&wrote).into_owned(),
            // `created` counts the app block too.
            created_blocks: created.saturating_sub(1),
            installed_at: o.now,
        },
    };
    match existing {
        Some(i) => st.compat[i] = rec,
        None => st.compat.push(rec),
    }
    println!(
        "CompatToolMapping for app {appid} in {}: {} -> {}",
        path.display(),
        original.as_ref().map_or("(absent)".to_owned(), |b| format!(
            "{:?}",
            String::from_utf8_lossy(b)
        )),
        compat_tool::NAME
    );
    if new != src {
        plan.restart_hint = true;
    }
    plan_steam_file(plan, &path, src, new)
}

/// Plans the undo of the compat mapping record `rec`.
fn plan_compat_undo(plan: &mut Plan, rec: &CompatRecord) -> Result<()> {
    let path = PathBuf::from(&rec.config_vdf);
    let Some(src) = current_steam_bytes(plan, &path)? else {
        println!(
            "CompatToolMapping for app {}: {} is gone; nothing to restore",
            rec.appid,
            path.display()
        );
        return Ok(());
    };
    let err = vdf_err(&path, &src);
    let block = compat_mapping_path(rec.appid);
    let cur = localconfig::pair_bytes_at(&src, &block).map_err(&err)?;
    if cur.as_deref() != Some(rec.wrote_block.as_bytes()) {
        println!(
            "CompatToolMapping for app {} in {}: changed since cgsplit wrote it (by hand or in Steam); left as it is",
            rec.appid,
            path.display()
        );
        return Ok(());
    }
    let new = match &rec.original_block {
        Some(b) => localconfig::replace_pair_at(&src, &block, b.as_bytes()),
        None => localconfig::remove_at(&src, &block, rec.created_blocks),
    }
    .map_err(&err)?;
    println!(
        "CompatToolMapping for app {} in {}: restored byte for byte",
        rec.appid,
        path.display()
    );
    plan_steam_file(plan, &path, src, new)
}

/// Plans the undo of the launch-option record `rec` (or, without one, the
/// removal of a cgsplit-shim invocation found in `lc`).
fn plan_launch_undo(plan: &mut Plan, lc: &Path, appid: u32, rec: Option<&Record>) -> Result<()> {
    let Some(src) = current_steam_bytes(plan, lc)? else {
        println!(
            "LaunchOptions for app {appid}: {} is gone; nothing to restore",
            lc.display()
        );
        return Ok(());
    };
    let err = vdf_err(lc, &src);
    let current = localconfig::read(&src, appid).map_err(&err)?;
    let (new, message) = match (rec, &current) {
        (Some(r), Some(c)) if c.token == r.wrote_token.as_bytes() => {
            let new = match &r.original_token {
                Some(tok) => localconfig::put_token(&src, appid, tok.as_bytes()),
                None => localconfig::remove(&src, appid, r.created_blocks),
            }
            .map_err(&err)?;
            (new, "restored byte for byte".to_owned())
        }
        (Some(r), Some(c)) if r.original_token.as_deref().map(str::as_bytes) == Some(&c.token[..]) => (
            src.clone(),
            "already the value from before cgsplit".to_owned(),
        ),
        (Some(_), Some(_)) => (
            src.clone(),
            "changed by hand since cgsplit wrote it; left as it is (edit it in Steam if the cgsplit-shim part should go)".to_owned(),
        ),
        (None, Some(c)) => match launch::unwrap(&c.value) {
            Some(without) => {
                let set = localconfig::set(&src, appid, &without).map_err(&err)?;
                (
                    set.new,
                    "no record of the original value; removed only the cgsplit-shim invocation"
                        .to_owned(),
                )
            }
            None => (src.clone(), "no cgsplit-shim invocation; left as is".to_owned()),
        },
        (_, None) => (src.clone(), "no LaunchOptions; nothing to restore".to_owned()),
    };
    let after = localconfig::read(&new, appid)
        .map_err(&err)?
        .map(|c| c.value);
    let show = |v: Option<&String>| v.map_or("(absent)".to_owned(), |v| format!("{v:?}"));
    println!(
        "LaunchOptions for app {appid} in {}: {} -> {} ({message})",
        lc.display(),
        show(current.as_ref().map(|c| &c.value)),
        show(after.as_ref())
    );
    plan_steam_file(plan, lc, src, new)
}

fn discover(o: &Options) -> Result<Vec<Root>> {
    let roots = steam_dir::discover(&o.steam_roots, &o.home, o.data_dir.as_deref())?;
    if roots.is_empty() {
        return Err(Error::NoSteamRoot {
            tried: steam_dir::CANDIDATES
                .iter()
                .map(|(rel, _)| format!("~/{rel}"))
                .collect::<Vec<_>>()
                .join(", "),
            found: "; none exists".to_owned(),
        });
    }
    Ok(roots)
}

/// Plans the removal of the tool from `dirs` whose roots no longer have records.
fn plan_tool_removal(plan: &mut Plan, st: &mut State, dirs: &[PathBuf]) -> Result<()> {
    for dir in dirs {
        let d = utf8(dir)?;
        let root = dir
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let root_s = utf8(&root)?;
        let users = st.launch.iter().filter(|r| r.root == root_s).count()
            + st.compat.iter().filter(|r| r.root == root_s).count();
        if users > 0 {
            // One line per root, not per entry directory.
            if dirs.iter().position(|d| d.parent() == dir.parent())
                == dirs.iter().position(|d| d == dir)
            {
                println!(
                    "Compatibility tools in {} kept ({users} other game(s) still use them)",
                    dir.parent().unwrap_or(dir).display()
                );
            }
            continue;
        }
        st.tools.retain(|t| *t != d);
        plan_dir_removal(plan, dir)?;
    }
    Ok(())
}

/// Plans the removal of cgsplit's files from the tool directory `dir`, then
/// of the directory itself when nothing else is in it.
fn plan_dir_removal(plan: &mut Plan, dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    for name in compat_tool::FILES {
        let path = dir.join(name);
        if let Some(old) = fsio::read_if_exists(&path)? {
            plan.tool.push(Change {
                path,
                old: Some(old),
                new: None,
                kind: Kind::Own(0),
            });
        }
    }
    if !plan.tool_dirs_to_remove.iter().any(|d| d == dir) {
        plan.tool_dirs_to_remove.push(dir.to_path_buf());
    }
    Ok(())
}

/// Plans `--remove --game N`.
fn plan_remove(o: &Options, appid: u32, plan: &mut Plan) -> Result<()> {
    refuse_shortcut(appid)?;
    let (state_path, mut st) = load_state(o)?;
    let before = st.clone();
    let mut roots: Vec<PathBuf> = if o.steam_roots.is_empty() {
        st.launch
            .iter()
            .filter(|r| r.appid == appid)
            .map(|r| PathBuf::from(&r.root))
            .chain(
                st.compat
                    .iter()
                    .filter(|r| r.appid == appid)
                    .map(|r| PathBuf::from(&r.root)),
            )
            .collect()
    } else {
        discover(o)?.into_iter().map(|r| r.path).collect()
    };
    if roots.is_empty() {
        roots = edit_roots(o, &discover(o)?, appid)?
            .into_iter()
            .map(|r| r.path)
            .collect();
    }
    roots.dedup();
    for root in &roots {
        ensure_steam_stopped(o, plan, root)?;
    }
    for root in &roots {
        let root_s = utf8(root)?;
        println!("Steam root: {}", root.display());
        let recs: Vec<Record> = st
            .launch
            .iter()
            .filter(|r| r.root == root_s && r.appid == appid)
            .cloned()
            .collect();
        if recs.is_empty() {
            for (account, _) in accounts(o, root)? {
                let lc = localconfig_path(root, account)?;
                plan_launch_undo(plan, &lc, appid, None)?;
            }
        }
        for r in &recs {
            plan_launch_undo(plan, Path::new(&r.localconfig), appid, Some(r))?;
        }
        st.launch
            .retain(|r| !(r.root == root_s && r.appid == appid));
        let compat: Vec<CompatRecord> = st
            .compat
            .iter()
            .filter(|r| r.root == root_s && r.appid == appid)
            .cloned()
            .collect();
        for c in &compat {
            plan_compat_undo(plan, c)?;
        }
        st.compat
            .retain(|r| !(r.root == root_s && r.appid == appid));
        let mut dirs = own_tool_dirs(root);
        let recorded = st
            .tools
            .iter()
            .map(PathBuf::from)
            .filter(|d| d.parent() == Some(&compat_dir(root)));
        for d in recorded {
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
        plan_tool_removal(plan, &mut st, &dirs)?;
    }
    if st != before {
        plan.state = Some((state_path, before, st));
    }
    Ok(())
}

/// Plans `--uninstall`: every record undone, the tool removed everywhere.
fn plan_uninstall(o: &Options, plan: &mut Plan) -> Result<()> {
    let (state_path, mut st) = load_state(o)?;
    let before = st.clone();
    let mut roots: Vec<String> = st
        .launch
        .iter()
        .map(|r| r.root.clone())
        .chain(st.compat.iter().map(|r| r.root.clone()))
        .collect();
    roots.sort();
    roots.dedup();
    for root in &roots {
        ensure_steam_stopped(o, plan, Path::new(root))?;
    }
    for r in st.launch.clone() {
        plan_launch_undo(plan, Path::new(&r.localconfig), r.appid, Some(&r))?;
    }
    for c in st.compat.clone() {
        plan_compat_undo(plan, &c)?;
    }
    st.launch.clear();
    st.compat.clear();
    let mut dirs: Vec<PathBuf> = st.tools.iter().map(PathBuf::from).collect();
    if let Ok(found) = steam_dir::discover(&o.steam_roots, &o.home, o.data_dir.as_deref()) {
        for r in found {
            for d in own_tool_dirs(&r.path) {
                if !dirs.contains(&d) {
                    dirs.push(d);
                }
            }
        }
    }
    plan_tool_removal(plan, &mut st, &dirs)?;
    if plan.tool.is_empty() && plan.steam.is_empty() && before == State::default() {
        println!(
            "Nothing to uninstall: no records in {} and no cgsplit tool found.",
            state_path.display()
        );
    }
    if st != before {
        plan.state = Some((state_path, before, st));
    }
    Ok(())
}

/// A unified diff of `old` → `new` for `path` (text; a binary file is
/// summarised).
fn diff(path: &Path, old: Option<&[u8]>, new: Option<&[u8]>) -> String {
    let label = path.display().to_string();
    fn text(b: Option<&[u8]>) -> Option<Option<&str>> {
        b.map(|b| std::str::from_utf8(b).ok())
    }
    match (text(old), text(new)) {
        (Some(None), _) | (_, Some(None)) => format!(
            "binary {label}: {}\n",
            new.map_or("would be deleted".to_owned(), |b| format!(
                "would be written ({} bytes)",
                b.len()
            ))
        ),
        (a, b) => {
            let a = a.flatten().unwrap_or("");
            let b = b.flatten().unwrap_or("");
            let old_label = if old.is_some() {
                format!("a{label}")
            } else {
                "/dev/null".to_owned()
            };
            let new_label = if new.is_some() {
                format!("b{label}")
            } else {
                "/dev/null".to_owned()
            };
            similar::TextDiff::from_lines(a, b)
                .unified_diff()
                .context_radius(3)
                .header(&old_label, &new_label)
                .to_string()
        }
    }
}

fn execute(o: &Options, plan: Plan) -> Result<()> {
    if o.dry_run {
        for c in plan.tool.iter().chain(&plan.steam) {
            print!("{}", diff(&c.path, c.old.as_deref(), c.new.as_deref()));
        }
        if let Some((path, before, after)) = &plan.state {
            let old = (*before != State::default()).then(|| state::render_state(before));
            let new = (*after != State::default()).then(|| state::render_state(after));
            print!(
                "{}",
                diff(
                    path,
                    old.as_deref().map(str::as_bytes),
                    new.as_deref().map(str::as_bytes)
                )
            );
        }
        for n in &plan.notes {
            println!("note: {n}");
        }
        println!("Dry run: nothing was written.");
        return Ok(());
    }
    // Installing: our files first, so a launch line never points at a
    // missing shim. Removing: Steam files first, our files last.
    let (writes, deletes): (Vec<&Change>, Vec<&Change>) =
        plan.tool.iter().partition(|c| c.new.is_some());
    for c in &writes {
        let (Some(bytes), Kind::Own(mode)) = (&c.new, &c.kind) else {
            unreachable!("tool changes are own files")
        };
        if let Some(dir) = c.path.parent() {
            fsio::create_dir_all(dir, 0o755)?;
        }
        fsio::write_atomic_mode(&c.path, bytes, *mode)?;
    }
    if !writes.is_empty() {
        fsio::crash_point("tool-written");
    }
    // A record of what is about to be written goes first (a crash never
    // leaves a wrapped value without its original); records that only
    // disappear go after the Steam files are restored (a crash never
    // forgets an original that is still to be put back).
    let write_state = |plan: &Plan| -> Result<()> {
        if let Some((path, _, after)) = &plan.state {
            if *after == State::default() {
                fsio::remove_file(path)?;
            } else {
                fsio::create_dir_all(path.parent().unwrap_or(Path::new(".")), 0o700)?;
                fsio::write_atomic(path, state::render_state(after).as_bytes(), 0o600)?;
            }
            println!("State: {}", path.display());
            fsio::crash_point("state-written");
        }
        Ok(())
    };
    let adds = plan.state.as_ref().is_some_and(|(_, before, after)| {
        after.launch.iter().any(|r| !before.launch.contains(r))
            || after.compat.iter().any(|r| !before.compat.contains(r))
    });
    if adds {
        write_state(&plan)?;
    }
    for c in &plan.steam {
        let (Some(old), Some(new)) = (&c.old, &c.new) else {
            unreachable!("Steam files are replaced, never created or deleted")
        };
        let written = fsio::replace_checked(&c.path, old, new)?;
        println!(
            "Wrote {} (previous version kept as {})",
            written.display(),
            fsio::backup_path(&written, 0).display()
        );
    }
    if !adds {
        write_state(&plan)?;
    }
    for c in &deletes {
        fsio::remove_file(&c.path)?;
    }
    for d in &plan.tool_dirs_to_remove {
        if fsio::remove_dir_if_empty(d)? {
            println!("Compatibility tool: removed {}", d.display());
        } else if d.exists() {
            println!(
                "Compatibility tool: removed cgsplit's files; {} kept (other files in it)",
                d.display()
            );
        }
    }
    for n in &plan.notes {
        println!("note: {n}");
    }
    if plan.restart_hint {
        println!(
            "Start (or restart) Steam to pick up the compatibility tool and the new settings."
        );
    }
    Ok(())
}

/// `cgsplit-install --game N`.
pub fn install(o: &Options) -> Result<()> {
    let Action::Install(appid) = o.action else {
        return run(o);
    };
    let mut plan = Plan::default();
    plan_install(o, appid, &mut plan)?;
    execute(o, plan)
}

/// `cgsplit-install --remove --game N`.
pub fn remove(o: &Options) -> Result<()> {
    let Action::Remove(appid) = o.action else {
        return run(o);
    };
    let mut plan = Plan::default();
    plan_remove(o, appid, &mut plan)?;
    execute(o, plan)
}

/// Runs `o.action`.
pub fn run(o: &Options) -> Result<()> {
    let mut plan = Plan::default();
    match o.action {
        Action::Install(appid) => plan_install(o, appid, &mut plan)?,
        Action::Remove(appid) => plan_remove(o, appid, &mut plan)?,
        Action::Uninstall => plan_uninstall(o, &mut plan)?,
        Action::List => return list(o),
    }
    execute(o, plan)
}

/// `--list`: one row per root and account.
pub fn list(o: &Options) -> Result<()> {
    let roots = discover(o)?;
    let (_, st) = load_state(o)?;
    println!(
        "{:<60} {:<12} {:<18} {:<20} NOTES",
        "ROOT", "ACCOUNT", "STEAMID64", "NAME"
    );
    for r in &roots {
        let pipes = steam_dir::pipe_candidates(&o.home, None, &r.path);
        let running = steam_dir::steam_running(&pipes).ok().flatten().is_some();
        let tools: Vec<String> = own_tool_dirs(&r.path)
            .iter()
            .filter_map(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        let via: Vec<String> = r.via.iter().map(|v| v.display().to_string()).collect();
        let mut notes = vec![r.kind.to_owned(), format!("via {}", via.join(", "))];
        if running {
            notes.push("Steam running".into());
        }
        if !tools.is_empty() {
            notes.push(format!("cgsplit tools: {}", tools.join(",")));
        }
        let users = std::fs::read(r.path.join("config/loginusers.vdf"))
            .ok()
            .and_then(|b| crate::steam::loginusers::parse(&String::from_utf8_lossy(&b)).ok())
            .unwrap_or_default();
        let accounts = steam_dir::accounts(&r.path);
        if accounts.is_empty() {
            println!(
                "{:<60} {:<12} {:<18} {:<20} {}",
                r.path.display(),
                "-",
                "-",
                "-",
                notes.join("; ")
            );
        }
        for a in accounts {
            let u = users.iter().find(|u| u.account == a);
            let mut n = notes.clone();
            if u.is_some_and(|u| u.most_recent) {
                n.push("MostRecent".into());
            }
            if !r
                .path
                .join(format!("userdata/{a}/config/localconfig.vdf"))
                .exists()
            {
                n.push("no localconfig.vdf".into());
            }
            let root_s = r.path.to_string_lossy();
            let games: Vec<String> = st
                .launch
                .iter()
                .filter(|rec| rec.root == root_s && rec.account == a)
                .map(|rec| rec.appid.to_string())
                .collect();
            if !games.is_empty() {
                n.push(format!("cgsplit games: {}", games.join(",")));
            }
            println!(
                "{:<60} {:<12} {:<18} {:<20} {}",
                r.path.display(),
                a,
                steam_dir::steamid64(a),
                u.map_or("-", |u| u.name.as_str()),
                n.join("; ")
            );
        }
    }
    Ok(())
}
