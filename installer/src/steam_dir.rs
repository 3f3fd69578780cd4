//! Effects around the Steam directory: which root, which account, whether
//! Steam is running, where the game's manifest is.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::libc;

use crate::error::{Error, IoContext, Result};
use crate::steam::{appmanifest, loginusers};

/// Other places Steam lives (STEAM.md §1), relative to `$HOME`, listed in
/// the error when `~/.steam/root` does not resolve.
const OTHER_ROOTS: &[&str] = &[
    ".local/share/Steam",
    ".steam/steam",
    ".steam/debian-installation",
    ".var/app/com.valvesoftware.Steam/.local/share/Steam",
    "snap/steam/common/.local/share/Steam",
];

/// The Steam root: `--steam-root DIR` or `~/.steam/root`, canonicalized
/// (STEAM.md §1: Steam scans `~/.steam/root/compatibilitytools.d`, so the
/// link's target is the root to use).
///
/// Errors: [`Error::NoSteamRoot`] listing what was tried and other installs seen.
pub fn resolve_root(arg: Option<&Path>, home: &Path) -> Result<PathBuf> {
    let candidate = arg.map_or_else(|| home.join(".steam/root"), Path::to_path_buf);
    match fs::canonicalize(&candidate) {
        Ok(p) if p.is_dir() => Ok(p),
        res => {
            let why = match res {
                Ok(_) => "not a directory".to_owned(),
                Err(e) => e.to_string(),
            };
            let found: Vec<String> = OTHER_ROOTS
                .iter()
                .map(|r| home.join(r))
                .filter(|p| p.join("userdata").is_dir() || p.join("steamapps").is_dir())
                .map(|p| p.display().to_string())
                .collect();
            Err(Error::NoSteamRoot {
                tried: format!("{} ({why})", candidate.display()),
                found: if found.is_empty() {
                    "; no other Steam install found".to_owned()
                } else {
                    format!("; found Steam at {}", found.join(", "))
                },
            })
        }
    }
}

/// Account ids with a directory in `<root>/userdata`, sorted; `0` and
/// non-numeric names (`ac`, `anonymous`) are skipped (araten10/Steamy#14).
pub fn accounts(root: &Path) -> Vec<u32> {
    let mut ids: Vec<u32> = fs::read_dir(root.join("userdata"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&id| id != 0)
        .collect();
    ids.sort_unstable();
    ids
}

/// `--account` value: an account id or a SteamID64 (low 32 bits used).
/// `None` for non-numbers and 0.
pub fn parse_account(s: &str) -> Option<u32> {
    let n: u64 = s.trim().parse().ok()?;
    let id = (n & 0xFFFF_FFFF) as u32;
    (id != 0).then_some(id)
}

fn list(ids: &[u32]) -> String {
    ids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The account to edit and why it was chosen: `--account`, else
/// `loginusers.vdf` (`MostRecent`, then newest `Timestamp`), else the only
/// account directory in `userdata`.
///
/// Errors: [`Error::Account`] / [`Error::LoginUsers`] listing the accounts
/// found; never returns an id without a `userdata/<id>` directory.
pub fn resolve_account(root: &Path, arg: Option<&str>) -> Result<(u32, String)> {
    let present = accounts(root);
    let userdata = root.join("userdata");
    let check = |id: u32, why: String| {
        if present.contains(&id) {
            Ok((id, why))
        } else {
            Err(Error::Account(format!(
                "account {id} ({why}) has no directory in {}; accounts there: [{}]; pass --account ID",
                userdata.display(),
                list(&present)
            )))
        }
    };
    if let Some(a) = arg {
        let id = parse_account(a).ok_or_else(|| {
            Error::Account(format!(
                "--account {a:?} is not an account id or SteamID64; accounts in {}: [{}]",
                userdata.display(),
                list(&present)
            ))
        })?;
        return check(id, "--account".to_owned());
    }
    let lu = root.join("config/loginusers.vdf");
    match fs::read(&lu) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let users = loginusers::parse(&text);
            let picked = users
                .as_deref()
                .map_err(Clone::clone)
                .and_then(|u| loginusers::pick(u).map(|(u, why)| (u.clone(), why)));
            match picked {
                Ok((u, why)) => check(
                    u.account,
                    format!("{} in {}, {}", why, lu.display(), u.name),
                ),
                Err(source) => Err(Error::LoginUsers {
                    path: lu,
                    source,
                    userdata,
                    accounts: list(&present),
                }),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match present[..] {
            [only] => Ok((
                only,
                format!(
                    "the only account in {} ({} is missing)",
                    userdata.display(),
                    lu.display()
                ),
            )),
            _ => Err(Error::Account(format!(
                "{} is missing and {} holds [{}]; pass --account ID",
                lu.display(),
                userdata.display(),
                list(&present)
            ))),
        },
        Err(e) => Err(e).ctx("read", lu),
    }
}

/// The `steam.pipe` FIFOs to probe for a Steam using `root`: the home one
/// (`~/.steam/steam.pipe`, steam.sh's `$STEAMCONFIG`), `<root>/../steam.pipe`
/// (`~/.steam/debian-installation`, `~/.steam/root` passed unresolved) and,
/// for a root `X/.local/share/Steam` (flatpak, snap), `X/.steam/steam.pipe`.
pub fn pipe_candidates(home: &Path, root_arg: Option<&Path>, root: &Path) -> Vec<PathBuf> {
    let mut out = vec![home.join(".steam/steam.pipe")];
    for r in root_arg.into_iter().chain([root]) {
        if let Some(p) = r.parent() {
            out.push(p.join("steam.pipe"));
        }
        if r.ends_with(".local/share/Steam")
            && let Some(x) = r.ancestors().nth(3)
        {
            out.push(x.join(".steam/steam.pipe"));
        }
    }
    out.dedup();
    let mut seen = Vec::new();
    out.retain(|p| {
        let new = !seen.contains(p);
        seen.push(p.clone());
        new
    });
    out
}

/// The first of `pipes` a running Steam reads from, `None` if none.
///
/// A FIFO opened `O_WRONLY|O_NONBLOCK` fails with `ENXIO` when nobody reads
/// it (steam-runtime-tools `_srt_steam_command_via_pipe`); success means a
/// reader, i.e. Steam, is there. Nothing is written. Non-FIFOs are ignored.
///
/// Errors: [`Error::Io`] for other failures (cannot tell, so refuse).
pub fn steam_running(pipes: &[PathBuf]) -> Result<Option<PathBuf>> {
    for p in pipes {
        match fs::metadata(p) {
            Ok(m) if m.file_type().is_fifo() => {}
            _ => continue,
        }
        match OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(p)
        {
            Ok(_) => return Ok(Some(p.clone())),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENXIO) | Some(libc::ENOENT)) => {}
            Err(e) => return Err(e).ctx("check whether Steam is running via", p),
        }
    }
    Ok(None)
}

/// The app manifest of `appid` in the root's `steamapps` or any library in
/// `steamapps/libraryfolders.vdf`, with the game's name when readable;
/// otherwise the directories searched.
pub fn find_manifest(
    root: &Path,
    appid: u32,
) -> std::result::Result<(PathBuf, Option<String>), Vec<PathBuf>> {
    let mut dirs = vec![root.join("steamapps")];
    if let Ok(text) = fs::read_to_string(root.join("steamapps/libraryfolders.vdf")) {
        for p in appmanifest::library_paths(&text) {
            let d = PathBuf::from(p).join("steamapps");
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
    }
    for d in &dirs {
        let m = d.join(format!("appmanifest_{appid}.acf"));
        if let Ok(text) = fs::read(&m) {
            let name = appmanifest::game_name(&String::from_utf8_lossy(&text));
            return Ok((m, name));
        }
    }
    Err(dirs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_arguments() {
        assert_eq!(parse_account("39734273"), Some(39734273));
        assert_eq!(parse_account("76561198000000001"), Some(39734273));
        assert_eq!(parse_account("0"), None);
        assert_eq!(parse_account("76561197960265728"), None);
        assert_eq!(parse_account("abc"), None);
        assert_eq!(parse_account(""), None);
    }

    #[test]
    fn pipes_probed() {
        let home = Path::new("/home/u");
        let flat = Path::new("/home/u/.var/app/com.valvesoftware.Steam/.local/share/Steam");
        let c = pipe_candidates(home, None, flat);
        assert!(c.contains(&PathBuf::from("/home/u/.steam/steam.pipe")));
        assert!(c.contains(&PathBuf::from(
            "/home/u/.var/app/com.valvesoftware.Steam/.steam/steam.pipe"
        )));
        let deb = Path::new("/home/u/.steam/debian-installation");
        assert_eq!(
            pipe_candidates(home, None, deb),
            vec![PathBuf::from("/home/u/.steam/steam.pipe")]
        );
    }

    #[test]
    fn fifo_with_and_without_reader() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("steam.pipe");
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(steam_running(std::slice::from_ref(&p)).unwrap(), None);
        let reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&p)
            .unwrap();
        assert_eq!(
            steam_running(std::slice::from_ref(&p)).unwrap(),
            Some(p.clone())
        );
        drop(reader);
        let plain = d.path().join("plain");
        fs::write(&plain, b"").unwrap();
        assert_eq!(
            steam_running(&[plain, d.path().join("missing")]).unwrap(),
            None
        );
    }
}
