//! `cgsplit-install`: install and remove, step by step. Everything is read,
//! planned and checked first; writes happen only at the end, in this order:
//! compatibility tool files, localconfig backup, state record, localconfig.
//! The state record is written before localconfig.vdf so a crash in between
//! never leaves a wrapped value without a record of the original.

use std::fs;
use std::path::{Path, PathBuf};

use cgsplit_core::launch;

use crate::error::{Error, Result};
use crate::state::{self, Record};
use crate::steam::{compat_tool, localconfig};
use crate::vdf::lex;
use crate::{elf, fsio, steam_dir};

/// Inputs, with every environment-derived path already decided (tests
/// point them at temp dirs).
#[derive(Debug, Clone)]
pub struct Options {
    /// Steam app id, e.g. 620.
    pub appid: u32,
    /// `--steam-root`.
    pub steam_root: Option<PathBuf>,
    /// `--account`: account id or SteamID64.
    pub account: Option<String>,
    /// `--shim`, else `$CGSPLIT_SHIM`, else `cgsplit-shim` beside the
    /// installer: in that order, first given wins.
    pub shim_candidates: Vec<(String, PathBuf)>,
    /// `$HOME`.
    pub home: PathBuf,
    /// `$XDG_STATE_HOME/cgsplit`.
    pub state_dir: PathBuf,
    /// Unix time used in backup names and records.
    pub now: u64,
}

/// Where things are for one root/account.
struct Target {
    root: PathBuf,
    root_str: String,
    account: u32,
    localconfig: PathBuf,
}

fn utf8(p: &Path) -> Result<String> {
    p.to_str()
        .map(str::to_owned)
        .ok_or_else(|| Error::NonUtf8Path(p.to_path_buf()))
}

fn target(o: &Options) -> Result<Target> {
    let root = steam_dir::resolve_root(o.steam_root.as_deref(), &o.home)?;
    println!("Steam root: {}", root.display());
    let (account, why) = steam_dir::resolve_account(&root, o.account.as_deref())?;
    println!("Account: {account} ({why})");
    let pipes = steam_dir::pipe_candidates(&o.home, o.steam_root.as_deref(), &root);
    if let Some(pipe) = steam_dir::steam_running(&pipes)? {
        return Err(Error::SteamRunning(pipe));
    }
    let localconfig = root
        .join("userdata")
        .join(account.to_string())
        .join("config/localconfig.vdf");
    Ok(Target {
        root_str: utf8(&root)?,
        root,
        account,
        localconfig,
    })
}

fn read_localconfig(t: &Target) -> Result<Vec<u8>> {
    fsio::read_if_exists(&t.localconfig)?.ok_or_else(|| Error::NoLocalConfig(t.localconfig.clone()))
}

/// Copies the current `localconfig.vdf` bytes into the private backup
/// directory (`<state dir>/backups/localconfig-<account>.<unix time>.bak`)
/// and says where.
fn backup_localconfig(o: &Options, t: &Target, src: &[u8]) -> Result<PathBuf> {
    let backup = fsio::backup(
        &o.state_dir.join(state::BACKUPS),
        &format!("localconfig-{}", t.account),
        o.now,
        src,
    )?;
    println!("Backup: {}", backup.display());
    Ok(backup)
}

fn lc_err(t: &Target) -> impl Fn(localconfig::LocalConfigError) -> Error + '_ {
    |source| Error::LocalConfig {
        path: t.localconfig.clone(),
        source,
    }
}

fn load_state(o: &Options) -> Result<(PathBuf, Vec<Record>)> {
    let path = o.state_dir.join(state::FILE);
    let records = match fsio::read_if_exists(&path)? {
        None => Vec::new(),
        Some(b) => state::parse(&String::from_utf8_lossy(&b)).map_err(|source| Error::State {
            path: path.clone(),
            source,
        })?,
    };
    Ok((path, records))
}

fn save_state(path: &Path, records: &[Record]) -> Result<()> {
    if records.is_empty() {
        return fsio::remove_file(path);
    }
    fsio::create_dir_all(path.parent().unwrap_or(Path::new(".")), 0o700)?;
    fsio::write_atomic(path, state::render(records).as_bytes(), 0o600)?;
    Ok(())
}

fn quoted(v: &str) -> String {
    format!(
        "\"{}\"",
        String::from_utf8(lex::escape(v.as_bytes())).expect("UTF-8 in, UTF-8 out")
    )
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

/// Writes `bytes` to `path` unless it already holds exactly them; returns
/// whether it wrote.
fn put_if_different(path: &Path, bytes: &[u8], mode: u32) -> Result<bool> {
    if fsio::read_if_exists(path)?.as_deref() == Some(bytes) {
        use std::os::unix::fs::PermissionsExt;
        let m = fs::metadata(path).map(|m| m.permissions().mode() & 0o777);
        if m.ok() == Some(mode) {
            return Ok(false);
        }
    }
    // Our own files: the mode is ours to set, not kept from the old file.
    fsio::write_atomic_mode(path, bytes, mode)?;
    Ok(true)
}

/// `cgsplit-install --game N`: installs the compatibility tool and wraps
/// the game's launch options. Idempotent: a second run writes nothing.
pub fn install(o: &Options) -> Result<()> {
    let t = target(o)?;
    match steam_dir::find_manifest(&t.root, o.appid) {
        Ok((m, name)) => println!(
            "Game {}: {} ({})",
            o.appid,
            name.as_deref().unwrap_or("(no name)"),
            m.display()
        ),
        Err(dirs) => eprintln!(
            "warning: no appmanifest_{}.acf in {}; app {} may not be installed (launch options are set anyway)",
            o.appid,
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            o.appid
        ),
    }
    let (shim_src, shim_bytes) = load_shim(o)?;
    let tool_dir = t.root.join("compatibilitytools.d").join(compat_tool::DIR);
    let shim_dest = tool_dir.join(compat_tool::SHIM);
    let prefix = launch::shim_prefix(&utf8(&shim_dest)?, &[]);

    let src = read_localconfig(&t)?;
    let current = localconfig::read(&src, o.appid).map_err(lc_err(&t))?;
    let (state_path, mut records) = load_state(o)?;
    let existing = records
        .iter()
        .position(|r| r.is_for(&t.root_str, t.account, o.appid));
    let old_value = current.as_ref().map_or("", |c| c.value.as_str()).to_owned();
    let new_value = launch::wrap(&old_value, &prefix);
    let set = localconfig::set(&src, o.appid, &new_value).map_err(lc_err(&t))?;
    let new_token = quoted(&new_value);
    let new_token = localconfig::read(&set.new, o.appid)
        .map_err(lc_err(&t))?
        .map_or(new_token, |c| {
            String::from_utf8_lossy(&c.token).into_owned()
        });

    // The record: kept when the file still holds what we wrote, else made
    // from what is there now (without any shim invocation found in it).
    let ours = existing.filter(|&i| {
        current
            .as_ref()
            .is_some_and(|c| c.token == records[i].wrote_token.as_bytes())
    });
    let mut notes = Vec::new();
    let record = match ours {
        Some(i) => Record {
            wrote_token: new_token.clone(),
            ..records[i].clone()
        },
        None => {
            let original_token = match &current {
                None => None,
                Some(c) => match launch::unwrap(&c.value) {
                    Some(without) => {
                        notes.push(format!(
                            "note: the current value already contains a cgsplit-shim invocation; recording {without:?} as the value to restore"
                        ));
                        Some(quoted(&without))
                    }
                    None => Some(String::from_utf8_lossy(&c.token).into_owned()),
                },
            };
            Record {
                root: t.root_str.clone(),
                account: t.account,
                appid: o.appid,
                localconfig: utf8(&t.localconfig)?,
                original_token,
                wrote_token: new_token.clone(),
                created_blocks: set.created_blocks,
                backup: String::new(),
                installed_at: o.now,
            }
        }
    };

    // Writes.
    fsio::create_dir_all(&tool_dir, 0o755)?;
    let mut wrote_tool = Vec::new();
    for (name, bytes, mode) in [
        (
            compat_tool::COMPATIBILITYTOOL_VDF,
            compat_tool::compatibilitytool_vdf().into_bytes(),
            0o644,
        ),
        (
            compat_tool::TOOLMANIFEST_VDF,
            compat_tool::toolmanifest_vdf().into_bytes(),
            0o644,
        ),
        (compat_tool::SHIM, shim_bytes, 0o755),
    ] {
        if put_if_different(&tool_dir.join(name), &bytes, mode)? {
            wrote_tool.push(name);
        }
    }
    if wrote_tool.is_empty() {
        println!("Compatibility tool: {} (unchanged)", tool_dir.display());
    } else {
        println!(
            "Compatibility tool: {} (wrote {}; shim from {})",
            tool_dir.display(),
            wrote_tool.join(", "),
            shim_src.display()
        );
    }
    for n in &notes {
        println!("{n}");
    }
    let mut record = record;
    if set.changed {
        let backup = backup_localconfig(o, &t, &src)?;
        if record.backup.is_empty() {
            record.backup = utf8(&backup)?;
        }
    }
    let changed_state = match ours.or(existing) {
        Some(i) if records[i] == record => false,
        Some(i) => {
            records[i] = record;
            true
        }
        None => {
            records.push(record);
            true
        }
    };
    if changed_state {
        save_state(&state_path, &records)?;
    }
    if set.changed {
        let written = fsio::replace_checked(&t.localconfig, &src, &set.new)?;
        println!("Wrote {}", written.display());
    }
    let key = localconfig::key_path(&set.new, o.appid).map_err(lc_err(&t))?;
    println!(
        "LaunchOptions for app {}: {:?} -> {:?}{}",
        o.appid,
        old_value,
        new_value,
        if !set.changed {
            " (unchanged)"
        } else if current.is_none() {
            " (key created)"
        } else {
            ""
        }
    );
    println!("  at {key}");
    println!("State: {}", state_path.display());
    if set.changed || !wrote_tool.is_empty() {
        println!("Start Steam again to pick up the compatibility tool and launch options.");
    }
    Ok(())
}

/// `cgsplit-install --remove --game N`: restores the launch options byte
/// for byte when the file still holds what cgsplit wrote; otherwise removes
/// only a cgsplit-shim invocation. Removes the compatibility tool when no
/// other game of this root still uses it.
pub fn remove(o: &Options) -> Result<()> {
    let t = target(o)?;
    let src = read_localconfig(&t)?;
    let current = localconfig::read(&src, o.appid).map_err(lc_err(&t))?;
    let (state_path, mut records) = load_state(o)?;
    let existing = records
        .iter()
        .position(|r| r.is_for(&t.root_str, t.account, o.appid));
    let rec = existing.map(|i| records[i].clone());
    let cur_value = current.as_ref().map(|c| c.value.clone());
    let (new, message) = match (&rec, &current) {
        (Some(r), Some(c)) if c.token == r.wrote_token.as_bytes() => {
            let new = match &r.original_token {
                Some(tok) => localconfig::put_token(&src, o.appid, tok.as_bytes()),
                None => localconfig::remove(&src, o.appid, r.created_blocks),
            }
            .map_err(lc_err(&t))?;
            (new, "restored byte for byte".to_owned())
        }
        (_, Some(c)) => match launch::unwrap(&c.value) {
            Some(without) => {
                let set = localconfig::set(&src, o.appid, &without).map_err(lc_err(&t))?;
                let why = if rec.is_some() {
                    "changed by hand since cgsplit wrote it; removed only the cgsplit-shim invocation"
                } else {
                    "no record of the original value; removed only the cgsplit-shim invocation"
                };
                (set.new, why.to_owned())
            }
            None => (
                src.clone(),
                "no cgsplit-shim invocation; left as is".to_owned(),
            ),
        },
        (_, None) => (
            src.clone(),
            "no LaunchOptions; nothing to restore".to_owned(),
        ),
    };
    let after = localconfig::read(&new, o.appid)
        .map_err(lc_err(&t))?
        .map(|c| c.value);
    if new != src {
        backup_localconfig(o, &t, &src)?;
        let written = fsio::replace_checked(&t.localconfig, &src, &new)?;
        println!("Wrote {}", written.display());
    }
    let show = |v: &Option<String>| {
        v.as_ref()
            .map_or("(absent)".to_owned(), |v| format!("{v:?}"))
    };
    println!(
        "LaunchOptions for app {}: {} -> {} ({message})",
        o.appid,
        show(&cur_value),
        show(&after)
    );
    if let Some(i) = existing {
        records.remove(i);
        save_state(&state_path, &records)?;
        println!("State: removed the record from {}", state_path.display());
    }
    let tool_dir = t.root.join("compatibilitytools.d").join(compat_tool::DIR);
    let users = records.iter().filter(|r| r.root == t.root_str).count();
    if users > 0 {
        println!(
            "Compatibility tool: {} kept ({users} other game(s) still use it)",
            tool_dir.display()
        );
    } else if tool_dir.exists() {
        for name in [
            compat_tool::COMPATIBILITYTOOL_VDF,
            compat_tool::TOOLMANIFEST_VDF,
            compat_tool::SHIM,
        ] {
            fsio::remove_file(&tool_dir.join(name))?;
        }
        if fsio::remove_dir_if_empty(&tool_dir)? {
            println!("Compatibility tool: removed {}", tool_dir.display());
        } else {
            println!(
                "Compatibility tool: removed cgsplit's files; {} kept (other files in it)",
                tool_dir.display()
            );
        }
    }
    Ok(())
}
