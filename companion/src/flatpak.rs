//! Granting the Steam flatpak access to `games.slice`.
//!
//! The shim inside the sandbox joins a game's leaf by writing `0` to
//! `…/games.slice/cgsplit-<app>.scope/game/cgroup.procs`, so the sandbox must
//! see that directory. flatpak's supported interface for that is an override:
//! `flatpak --user override --filesystem=<dir> com.valvesoftware.Steam`
//! (flatpak-override(1)), which flatpak stores in
//! `~/.local/share/flatpak/overrides/com.valvesoftware.Steam`.
//!
//! Why the slice and not each scope: a bind mount pins the directory it was
//! made from, so a scope recreated while Steam runs would be invisible
//! through a per-scope grant; and flatpak silently skips a `--filesystem`
//! path that does not exist when the sandbox starts. So `cgsplit up` keeps
//! `games.slice` alive with an anchor scope, and `cgsplit run` warns when the
//! path is missing at Steam's start.
//!
//! What cgsplit added is recorded in `$XDG_STATE_HOME/cgsplit/flatpak-grants`
//! (one `<app id>\t<path>` a line); [`revoke`] takes back exactly those with
//! `--nofilesystem`, which flatpak 1.14 records as a `!<path>` entry (its way
//! of undoing a grant), and leaves grants the user made alone.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Steam flatpak's application id (Flathub).
pub const STEAM_APP_ID: &str = "com.valvesoftware.Steam";

/// File (under `$XDG_STATE_HOME/cgsplit/`) recording the grants cgsplit made.
pub const GRANTS_FILE: &str = "flatpak-grants";

/// Why a grant or revoke failed.
#[derive(Debug, thiserror::Error)]
pub enum FlatpakError {
    /// `flatpak` is not installed (not on `PATH`).
    #[error("flatpak is not installed (no `flatpak` on PATH): {0}")]
    Missing(std::io::Error),
    /// `flatpak override` exited non-zero.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        cmd: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// Its stderr, trimmed.
        stderr: String,
    },
    /// The record of grants could not be read or written.
    #[error("cannot {op} {path}: {source}; fix its permissions (the grant itself is {state})")]
    State {
        /// `read` or `write`.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
        /// Whether the flatpak side was changed.
        state: &'static str,
    },
    /// Neither `XDG_STATE_HOME` nor `HOME` is set.
    #[error("cannot find the state directory: neither XDG_STATE_HOME nor HOME is set")]
    NoStateDir,
}

/// What [`grant`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Granted {
    /// The override was added now and recorded.
    Added,
    /// cgsplit had already granted it.
    AlreadyOurs,
    /// The user's own override already grants it; not recorded as ours.
    AlreadyByUser,
}

/// `$XDG_STATE_HOME/cgsplit/flatpak-grants`.
pub fn grants_file() -> Result<PathBuf, FlatpakError> {
    directories::BaseDirs::new()
        .and_then(|d| d.state_dir().map(|s| s.join("cgsplit").join(GRANTS_FILE)))
        .ok_or(FlatpakError::NoStateDir)
}

fn flatpak(args: &[&str]) -> Result<String, FlatpakError> {
    let out = Command::new("flatpak")
        .args(args)
        .output()
        .map_err(FlatpakError::Missing)?;
    if !out.status.success() {
        return Err(FlatpakError::Failed {
            cmd: format!("flatpak {}", args.join(" ")),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `filesystems=` entries of `flatpak override --show` output
/// (keyfile text, `[Context]` group, `;`-separated list).
pub fn override_filesystems(keyfile: &str) -> Vec<String> {
    let mut in_context = false;
    let mut out = Vec::new();
    for line in keyfile.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_context = line == "[Context]";
        } else if in_context && let Some(v) = line.strip_prefix("filesystems=") {
            out.extend(v.split(';').filter(|s| !s.is_empty()).map(str::to_owned));
        }
    }
    out
}

/// Parses the grants record: `(app id, path)` per line.
pub fn parse_grants(text: &str) -> Vec<(String, PathBuf)> {
    text.lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(a, p)| (a.to_owned(), PathBuf::from(p)))
        .collect()
}

fn read_grants(file: &Path) -> Result<Vec<(String, PathBuf)>, FlatpakError> {
    match std::fs::read_to_string(file) {
        Ok(t) => Ok(parse_grants(&t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(FlatpakError::State {
            op: "read",
            path: file.into(),
            source,
            state: "unchanged",
        }),
    }
}

/// Replaces the record atomically (temp file in the same directory, fsync,
/// rename), so a crash leaves the old or the new list, never half of one.
fn write_grants(
    file: &Path,
    grants: &[(String, PathBuf)],
    state: &'static str,
) -> Result<(), FlatpakError> {
    let err = |source| FlatpakError::State {
        op: "write",
        path: file.into(),
        source,
        state,
    };
    let dir = file.parent().expect("grants file has a parent");
    std::fs::create_dir_all(dir).map_err(err)?;
    let tmp = dir.join(format!(".{GRANTS_FILE}.{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    for (a, p) in grants {
        writeln!(f, "{a}\t{}", p.display()).map_err(err)?;
    }
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, file).map_err(err)
}

/// Grants `dir` (the host path of `games.slice`) to [`STEAM_APP_ID`] with
/// `flatpak --user override --filesystem=<dir>`, unless it is granted
/// already, and records it as cgsplit's. The record is checked for
/// writability first, so nothing is granted that could not be revoked.
pub fn grant(dir: &Path) -> Result<Granted, FlatpakError> {
    let file = grants_file()?;
    let mut grants = read_grants(&file)?;
    let entry = (STEAM_APP_ID.to_owned(), dir.to_path_buf());
    let shown = flatpak(&["--user", "override", "--show", STEAM_APP_ID])?;
    let present = override_filesystems(&shown)
        .iter()
        .any(|f| Path::new(f) == dir);
    let ours = grants.contains(&entry);
    match (present, ours) {
        (true, true) => return Ok(Granted::AlreadyOurs),
        (true, false) => return Ok(Granted::AlreadyByUser),
        _ => {}
    }
    // Recorded first, so a grant that exists is always one we can revoke;
    // taken out of the record again when flatpak refuses.
    if !ours {
        grants.push(entry);
        write_grants(&file, &grants, "not added")?;
    }
    let arg = format!("--filesystem={}", dir.display());
    if let Err(e) = flatpak(&["--user", "override", &arg, STEAM_APP_ID]) {
        grants.retain(|g| g.0 != STEAM_APP_ID || g.1 != dir);
        write_grants(&file, &grants, "not added")?;
        return Err(e);
    }
    Ok(Granted::Added)
}

/// Takes back every grant cgsplit recorded (`--nofilesystem=<path>`) and
/// empties the record; returns the paths revoked.
pub fn revoke() -> Result<Vec<PathBuf>, FlatpakError> {
    let file = grants_file()?;
    let mut grants = read_grants(&file)?;
    let mut done = Vec::new();
    while let Some((app, path)) = grants.pop() {
        let arg = format!("--nofilesystem={}", path.display());
        if let Err(e) = flatpak(&["--user", "override", &arg, &app]) {
            grants.push((app, path));
            write_grants(&file, &grants, "partly revoked")?;
            return Err(e);
        }
        done.push(path);
        write_grants(&file, &grants, "revoked")?;
    }
    Ok(done)
}

/// A running sandbox of [`STEAM_APP_ID`] that cannot see `games.slice`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlindSandbox {
    /// flatpak's instance id.
    pub instance: String,
    /// The sandboxed process (`child-pid`), as the host sees it.
    pub pid: u32,
}

/// Running Steam sandboxes in which `dir` does not exist, found with
/// `flatpak ps --columns=instance,child-pid,application` and a look at
/// `/proc/<child-pid>/root<dir>` (the sandbox's own mount namespace, which
/// the same uid may inspect). flatpak resolves `--filesystem` paths when a
/// sandbox starts and silently skips missing ones, so such a sandbox stays
/// blind until Steam restarts. Empty when flatpak is missing or nothing runs.
pub fn blind_steam_sandboxes(dir: &Path) -> Vec<BlindSandbox> {
    let Ok(out) = flatpak(&["ps", "--columns=instance,child-pid,application"]) else {
        return Vec::new();
    };
    parse_ps(&out)
        .into_iter()
        .filter(|(_, _, app)| app == STEAM_APP_ID)
        .filter(|(_, pid, _)| {
            let root = PathBuf::from(format!("/proc/{pid}/root"));
            // Unreadable root (process gone, not ours): say nothing.
            root.join(".").exists() && !root.join(dir.strip_prefix("/").unwrap_or(dir)).is_dir()
        })
        .map(|(instance, pid, _)| BlindSandbox { instance, pid })
        .collect()
}

/// `flatpak ps` rows: `(instance, child pid, application)`; other lines skipped.
pub fn parse_ps(text: &str) -> Vec<(String, u32, String)> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (i, p, a) = (f.next()?, f.next()?, f.next()?);
            Some((i.to_owned(), p.parse().ok()?, a.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_rows_parse() {
        assert_eq!(
            parse_ps("2913478126\t4242\tcom.valvesoftware.Steam\nInstance PID\n"),
            [("2913478126".into(), 4242, STEAM_APP_ID.into())]
        );
    }

    #[test]
    fn filesystems_come_from_the_context_group_only() {
        let kf = "[Context]\nfilesystems=/a;!/b;xdg-run/x:create;\nshared=network;\n\n[Environment]\nfilesystems=/no\n";
        assert_eq!(override_filesystems(kf), ["/a", "!/b", "xdg-run/x:create"]);
        assert!(override_filesystems("").is_empty());
    }

    #[test]
    fn grants_record_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("sub/flatpak-grants");
        let g = vec![(
            STEAM_APP_ID.to_owned(),
            PathBuf::from("/sys/fs/cgroup/x/games.slice"),
        )];
        write_grants(&f, &g, "added").unwrap();
        assert_eq!(read_grants(&f).unwrap(), g);
        assert!(read_grants(&d.path().join("none")).unwrap().is_empty());
    }
}
