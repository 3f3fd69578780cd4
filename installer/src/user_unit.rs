//! Installing and enabling the `cgsplit.service` systemd user unit (owned by
//! the companion; the shipped file is `companion/systemd/cgsplit.service`).
//!
//! The unit goes to `$XDG_CONFIG_HOME/systemd/user/cgsplit.service` (the
//! user's own unit directory, systemd.unit(5) "User Unit Search Path"),
//! written atomically (temp file, fsync, rename; a differing earlier version
//! is kept as `cgsplit.service.cgsplit-bak`). It is enabled with
//! `systemctl --user enable`, which links it into `default.target.wants/`;
//! when no user manager answers (e.g. installing over ssh without a
//! session), the same link is made directly, as `enable` would.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The shipped unit, with `@CGSPLIT@` for the companion's absolute path.
pub const TEMPLATE: &str = include_str!("../../companion/systemd/cgsplit.service");

/// The unit's file name.
pub const UNIT: &str = "cgsplit.service";

/// `$XDG_CONFIG_HOME/systemd/user`.
pub fn unit_dir() -> anyhow::Result<PathBuf> {
    let base = directories::BaseDirs::new().context("cannot determine $HOME")?;
    Ok(base.config_dir().join("systemd").join("user"))
}

/// The unit text for the companion at `cgsplit` (must be absolute: systemd
/// does not search PATH for `ExecStart=` of user units in every version).
pub fn render(cgsplit: &Path) -> anyhow::Result<String> {
    if !cgsplit.is_absolute() {
        bail!("{} is not an absolute path", cgsplit.display());
    }
    let p = cgsplit.to_str().context("the cgsplit path is not UTF-8")?;
    if p.contains(char::is_whitespace) {
        bail!("{p}: a path with spaces cannot go into ExecStart= unquoted; move cgsplit");
    }
    Ok(TEMPLATE.replace("@CGSPLIT@", p))
}

/// Writes and enables the unit; returns what was done, one line.
pub fn install(cgsplit: &Path) -> anyhow::Result<String> {
    if !cgsplit.is_file() {
        bail!(
            "{} does not exist: build or install the companion `cgsplit` next to cgsplit-install",
            cgsplit.display()
        );
    }
    let dir = unit_dir()?;
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(UNIT);
    let text = render(cgsplit)?;
    // A unit the user edited is kept next to it (systemd ignores the suffix).
    if let Ok(old) = std::fs::read_to_string(&path)
        && old != text
    {
        let bak = dir.join(format!("{UNIT}.cgsplit-bak"));
        std::fs::copy(&path, &bak)
            .with_context(|| format!("cannot back up to {}", bak.display()))?;
    }
    let tmp = dir.join(format!(".{UNIT}.tmp{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&dir)?.sync_all()
    };
    write().with_context(|| format!("cannot write {}", path.display()))?;
    let enabled = Command::new("systemctl")
        .args(["--user", "enable", UNIT])
        .output();
    match enabled {
        Ok(o) if o.status.success() => Ok(format!("installed and enabled {}", path.display())),
        _ => {
            let wants = dir.join("default.target.wants");
            std::fs::create_dir_all(&wants)?;
            let link = wants.join(UNIT);
            if std::fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink(&path, &link)
                    .with_context(|| format!("cannot create {}", link.display()))?;
            }
            Ok(format!(
                "installed {} and linked it into default.target.wants (no user manager answered \
                 `systemctl --user enable`; it starts at the next login)",
                path.display()
            ))
        }
    }
}

/// [`install`] for the `cgsplit` next to this program.
pub fn install_beside_exe() -> anyhow::Result<String> {
    install(&std::env::current_exe()?.with_file_name("cgsplit"))
}

/// Disables and removes the unit (nothing to do when absent), then runs
/// `cgsplit down --revoke` (next to this program, if there) so the scopes
/// stop and the flatpak grants cgsplit made are taken back.
pub fn remove() -> anyhow::Result<()> {
    let dir = unit_dir()?;
    if let Ok(exe) = std::env::current_exe() {
        let cgsplit = exe.with_file_name("cgsplit");
        if cgsplit.is_file() {
            let _ = Command::new(cgsplit).args(["down", "--revoke"]).status();
        }
    }
    let _ = Command::new("systemctl")
        .args(["--user", "disable", "--now", UNIT])
        .output();
    for p in [dir.join("default.target.wants").join(UNIT), dir.join(UNIT)] {
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot remove {}", p.display()));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_fills_in_the_companion_path() {
        let t = render(Path::new("/opt/cgsplit/bin/cgsplit")).unwrap();
        assert!(
            t.contains("ExecStartPre=-/opt/cgsplit/bin/cgsplit up\n"),
            "{t}"
        );
        assert!(
            t.contains("ExecStart=/opt/cgsplit/bin/cgsplit watch\n"),
            "{t}"
        );
        assert!(!t.contains("@CGSPLIT@"), "{t}");
        assert!(t.contains("Before=graphical-session.target xdg-desktop-autostart.target"));
        assert!(t.contains("WantedBy=default.target"));
        assert!(render(Path::new("cgsplit")).is_err());
        assert!(render(Path::new("/a b/cgsplit")).is_err());
    }
}
