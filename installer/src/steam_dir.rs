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

/// Where Steam keeps its root, in the order [`discover`] probes them
/// (STEAM.md §1; ProtonUp-Qt `constants.py`; protontricks; steamlocate
/// `src/locate/linux.rs`): (path relative to `$HOME`, kind). The first is
/// the one Steam itself scans for compatibility tools.
pub const CANDIDATES: &[(&str, &str)] = &[
    (".steam/root", "native (~/.steam/root)"),
    (".steam/steam", "native (~/.steam/steam)"),
    (".local/share/Steam", "native"),
    (".steam/debian-installation", "Debian package"),
    (
        ".var/app/com.valvesoftware.Steam/.local/share/Steam",
        "flatpak",
    ),
    (".var/app/com.valvesoftware.Steam/data/Steam", "flatpak"),
    ("snap/steam/common/.local/share/Steam", "snap"),
];

/// One Steam installation, found once however many paths lead to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    /// Canonical path (symlinks resolved): where cgsplit installs.
    pub path: PathBuf,
    /// `native`, `flatpak`, `snap`, `Debian package` or `--steam-root`.
    pub kind: &'static str,
    /// Every probed or given path that resolved here, e.g. `~/.steam/root`.
    pub via: Vec<PathBuf>,
}

impl Root {
    /// True for a flatpak Steam (its files live under
    /// `~/.var/app/com.valvesoftware.Steam`, which the sandbox sees at the
    /// same path, so a shim copied into this root is reachable inside it).
    pub fn is_flatpak(&self) -> bool {
        self.kind == "flatpak"
    }
}

fn looks_like_steam(p: &Path) -> bool {
    ["userdata", "steamapps", "config", "ubuntu12_32", "steam.sh"]
        .iter()
        .any(|f| p.join(f).exists())
}

/// Every Steam root: the `--steam-root` paths when given (each must be a
/// directory; two that are one directory are an error), else each of
/// [`CANDIDATES`] under `home` (and `$XDG_DATA_HOME/Steam` when `data_dir`
/// differs from `~/.local/share`) that exists and looks like Steam,
/// deduplicated by canonical path in probe order.
///
/// Errors: [`Error::NoSteamRoot`] for a bad `--steam-root`,
/// [`Error::Refused`] for duplicates.
pub fn discover(explicit: &[PathBuf], home: &Path, data_dir: Option<&Path>) -> Result<Vec<Root>> {
    let mut roots: Vec<Root> = Vec::new();
    if !explicit.is_empty() {
        for given in explicit {
            let path = resolve_root(Some(given), home)?;
            if let Some(r) = roots.iter().find(|r| r.path == path) {
                return Err(Error::Refused(format!(
                    "--steam-root {} and --steam-root {} are the same directory ({}); give it once",
                    r.via[0].display(),
                    given.display(),
                    path.display()
                )));
            }
            let kind = if path
                .components()
                .any(|c| c.as_os_str() == "com.valvesoftware.Steam")
            {
                "flatpak"
            } else {
                "--steam-root"
            };
            roots.push(Root {
                path,
                kind,
                via: vec![given.clone()],
            });
        }
        return Ok(roots);
    }
    let mut probes: Vec<(PathBuf, &'static str)> = CANDIDATES
        .iter()
        .map(|(rel, kind)| (home.join(rel), *kind))
        .collect();
    if let Some(d) = data_dir
        && d != home.join(".local/share")
    {
        probes.insert(2, (d.join("Steam"), "native ($XDG_DATA_HOME)"));
    }
    for (probe, kind) in probes {
        let Ok(path) = fs::canonicalize(&probe) else {
            continue;
        };
        if !path.is_dir() || !looks_like_steam(&path) {
            continue;
        }
        match roots.iter_mut().find(|r| r.path == path) {
            Some(r) => r.via.push(probe),
            None => roots.push(Root {
                path,
                kind: if probe.starts_with(home.join(".var/app")) {
                    "flatpak"
                } else {
                    kind
                },
                via: vec![probe],
            }),
        }
    }
    Ok(roots)
}

/// `steam.pid` next to `steam.pipe`: a hint only (stale after a crash; a
/// flatpak Steam writes its sandbox pid). Returns the pid and whether a
/// process with it exists.
pub fn pid_hint(pipe: &Path) -> Option<(i32, bool)> {
    let pidfile = pipe.with_file_name("steam.pid");
    let pid: i32 = fs::read_to_string(pidfile).ok()?.trim().parse().ok()?;
    let alive = pid > 0 && Path::new(&format!("/proc/{pid}")).exists();
    Some((pid, alive))
}

/// Asks the Steam reading `pipe` to shut down, the way `steam -shutdown`
/// forwards it (steam-runtime-tools `_srt_steam_command_via_pipe`: one line
/// of shell-quoted words, `'<root>/ubuntu12_32/steam' '-shutdown'`), then
/// waits until nobody reads the pipe any more, printing progress every
/// second, for at most `timeout`.
///
/// Never starts Steam: the line is written only after an
/// `O_WRONLY|O_NONBLOCK` open succeeded, i.e. a Steam is reading.
///
/// Errors: [`Error::Refused`] when Steam is still running after `timeout`;
/// [`Error::Io`] when the pipe cannot be written.
pub fn stop_steam(pipe: &Path, root: &Path, timeout: std::time::Duration) -> Result<()> {
    use std::io::Write;
    let mut f = match OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(pipe)
    {
        Ok(f) => f,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENXIO) | Some(libc::ENOENT)) => {
            return Ok(());
        }
        Err(e) => return Err(e).ctx("open Steam's pipe", pipe),
    };
    let steam = root.join("ubuntu12_32/steam");
    let line = format!(
        "{} '-shutdown'\n",
        cgsplit_core::launch::sh_quote(&steam.to_string_lossy())
    );
    f.write_all(line.as_bytes())
        .ctx("ask Steam to shut down through", pipe)?;
    drop(f);
    println!("Asked Steam to shut down (through {}).", pipe.display());
    let start = std::time::Instant::now();
    let mut last = 0;
    loop {
        if steam_running(std::slice::from_ref(&pipe.to_path_buf()))?.is_none() {
            println!(
                "Steam has shut down after {:.1} s.",
                start.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        let waited = start.elapsed();
        if waited >= timeout {
            return Err(Error::Refused(format!(
                "Steam is still running {} s after the shutdown request through {} (a running game keeps it open); quit the game and Steam, then retry",
                timeout.as_secs(),
                pipe.display()
            )));
        }
        if waited.as_secs() > last {
            last = waited.as_secs();
            println!(
                "  waiting for Steam to exit… {last} s (giving up after {} s)",
                timeout.as_secs()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

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

/// SteamID64 of an individual public-universe account id (`76561197960265728`
/// + id; protontricks `find_current_steamid3` in reverse).
pub fn steamid64(account: u32) -> u64 {
    0x0110_0001_0000_0000 | u64::from(account)
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
    let dirs = crate::steam::tools::library_dirs(root);
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
    fn discover_dedups_by_canonical_path_and_reads_xdg_data_home() {
        let d = tempfile::tempdir().unwrap();
        let home = d.path().join("h");
        let data = d.path().join("xdg-data");
        fs::create_dir_all(data.join("Steam/userdata")).unwrap();
        fs::create_dir_all(home.join(".steam")).unwrap();
        std::os::unix::fs::symlink(data.join("Steam"), home.join(".steam/root")).unwrap();
        // Not Steam: an empty directory at a probed place is ignored.
        fs::create_dir_all(home.join(".local/share/Steam")).unwrap();
        let roots = discover(&[], &home, Some(&data)).unwrap();
        assert_eq!(roots.len(), 1, "{roots:?}");
        assert_eq!(roots[0].path, fs::canonicalize(data.join("Steam")).unwrap());
        assert_eq!(
            roots[0].via,
            vec![home.join(".steam/root"), data.join("Steam")]
        );
        assert_eq!(roots[0].kind, "native (~/.steam/root)");
        // Explicit roots: the same directory twice is refused, naming both.
        let link = d.path().join("link");
        std::os::unix::fs::symlink(data.join("Steam"), &link).unwrap();
        let e = discover(&[data.join("Steam"), link.clone()], &home, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("are the same directory") && e.contains("link"),
            "{e}"
        );
        assert_eq!(steamid64(39734273), 76561198000000001);
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
