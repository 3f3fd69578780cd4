//! The outer half (root, host namespaces): a fresh cgroup per run, `unshare`
//! into new namespaces, an overall timeout, and cleanup of the cgroup tree.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::{Config, Error, RUN_CGROUP_PREFIX, TEST_USER, TEST_USER2, exit_code, sys};

/// The host's cgroup2 mount whose root is the whole hierarchy (`/`), from
/// mountinfo `text`: `/sys/fs/cgroup/unified` on hybrid hosts, `/sys/fs/cgroup` on pure v2.
pub fn cgroup2_root_mount(text: &str) -> Option<PathBuf> {
    cgsplit_core::mountinfo::cgroup2_mounts(text)
        .into_iter()
        .find(|m| m.root == "/")
        .map(|m| m.mount_point)
}

/// Why this host cannot run the testbed, or `None` if it can: root, a cgroup2
/// mount, `/lib/systemd/systemd`, `unshare` and `useradd`.
pub fn unsupported_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("the testbed needs root (namespaces, cgroups, setuid)".into());
    }
    let mi = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if cgroup2_root_mount(&mi).is_none() {
        return Some("no cgroup2 mount of the whole hierarchy in /proc/self/mountinfo".into());
    }
    if !Path::new(super::SYSTEMD).is_file() {
        return Some(format!("{} is missing (install systemd)", super::SYSTEMD));
    }
    for tool in ["unshare", "useradd", "busctl"] {
        let found = super::PATH
            .split(':')
            .any(|d| Path::new(d).join(tool).is_file());
        if !found {
            return Some(format!("`{tool}` is not installed"));
        }
    }
    None
}

/// Runs `cfg.cmd` in a fresh testbed and returns its exit code (128 + signal
/// if signalled). The per-run cgroup is removed before returning, also on
/// failure or timeout.
pub fn run(cfg: &Config) -> Result<i32, Error> {
    let t0 = Instant::now();
    if let Some(r) = unsupported_reason() {
        return Err(Error::Unsupported(r));
    }
    let uid = resolve_uid(cfg.uid, TEST_USER)?;
    let uid2 = if cfg.second_user || cfg.second_cmd.is_some() {
        let u2 = resolve_uid(cfg.uid2, TEST_USER2)?;
        if u2 == uid {
            return Err(Error::User {
                user: u2.to_string(),
                detail: "the second user must be a different uid than the first (--uid2)".into(),
            });
        }
        Some(u2)
    } else {
        None
    };
    let mi = fs::read_to_string("/proc/self/mountinfo")
        .map_err(Error::io("read", "/proc/self/mountinfo"))?;
    let mount = cgroup2_root_mount(&mi).expect("checked by unsupported_reason");
    let cg = mount.join(format!("{RUN_CGROUP_PREFIX}{}", std::process::id()));
    fs::create_dir(&cg).map_err(Error::io("create cgroup", &cg))?;
    let result = run_in(cfg, uid, uid2, &cg);
    let cleanup = sys::remove_cgroup_tree(&cg, Duration::from_secs(5));
    if cfg.verbose {
        eprintln!("cgsplit-testbed: total {} ms", t0.elapsed().as_millis());
    }
    let code = result?;
    cleanup?;
    Ok(code)
}

/// `uid` if it has a passwd entry, or the system user `default` (created if
/// missing) when `uid` is `None`.
fn resolve_uid(uid: Option<u32>, default: &str) -> Result<u32, Error> {
    match uid {
        // dbus-daemon refuses to run for a uid without a passwd entry ("Could
        // not get password database information for UID of current process").
        Some(u)
            if sys::find_account(
                &fs::read_to_string("/etc/passwd").unwrap_or_default(),
                &|a| a.uid == u,
            )
            .is_none() =>
        {
            Err(Error::User {
                user: u.to_string(),
                detail: "no /etc/passwd entry for this uid; dbus-daemon (the session bus) refuses to run without one".into(),
            })
        }
        Some(u) => Ok(u),
        None => Ok(sys::ensure_system_user(default)?.uid),
    }
}

fn run_in(cfg: &Config, uid: u32, uid2: Option<u32>, cg: &Path) -> Result<i32, Error> {
    let exe = std::env::current_exe().map_err(Error::io("locate", "/proc/self/exe"))?;
    let procs = sys::open_procs(cg)?;
    let mut cmd = sys::command_in("unshare", procs, None);
    cmd.args([
        "--fork",
        "--pid",
        "--mount",
        "--cgroup",
        "--mount-proc",
        "--propagation",
        "private",
        // If unshare dies, its child (our PID 1) is killed, and with it the namespace.
        "--kill-child",
    ]);
    if cfg.net {
        cmd.arg("--net");
    }
    cmd.arg(&exe)
        .arg("--inner")
        .arg("--uid")
        .arg(uid.to_string());
    if let Some(h) = &cfg.home {
        let h = std::path::absolute(h).map_err(Error::io("resolve", h))?;
        cmd.arg("--home").arg(h);
    }
    for (k, v) in &cfg.env {
        cmd.arg("--env").arg(format!("{k}={v}"));
    }
    if let Some(l) = &cfg.log {
        let l = std::path::absolute(l).map_err(Error::io("resolve", l))?;
        cmd.arg("--log").arg(l);
    }
    if cfg.verbose {
        cmd.arg("--verbose");
    }
    if cfg.system_bus {
        cmd.arg("--system-bus");
    }
    if let Some(c) = &cfg.system_bus_config {
        let c = std::path::absolute(c).map_err(Error::io("resolve", c))?;
        cmd.arg("--system-bus-config").arg(c);
    }
    for d in &cfg.root_daemons {
        cmd.arg("--root-daemon").arg(d);
    }
    if cfg.net {
        cmd.arg("--net");
    }
    if let Some(u2) = uid2 {
        cmd.arg("--second-user").arg("--uid2").arg(u2.to_string());
    }
    if let Some(s) = &cfg.second_cmd {
        cmd.arg("--second-cmd").arg(s);
    }
    cmd.arg("--").args(&cfg.cmd);
    cmd.stdin(Stdio::inherit());
    // SAFETY: prctl is a raw syscall. If this process dies (e.g. the test
    // harness kills it), unshare gets SIGKILL and takes the namespace down.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|source| Error::Spawn {
        what: "unshare".into(),
        source,
    })?;
    drop(cmd);
    match sys::wait_timeout(&mut child, cfg.timeout, || {}) {
        Some(st) => Ok(exit_code(st)),
        None => {
            let _ = fs::write(cg.join("cgroup.kill"), "1");
            sys::signal(&child, Signal::SIGKILL);
            let _ = child.wait();
            Err(Error::Timeout {
                secs: cfg.timeout.as_secs(),
                cgroup: cg.to_path_buf(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_full_hierarchy_mount() {
        let hybrid = "26 25 0:24 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n\
            27 26 0:25 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_root_mount(hybrid).unwrap(),
            PathBuf::from("/sys/fs/cgroup/unified")
        );
        let grant = "1 2 0:25 /user.slice /sys/fs/cgroup/user.slice rw - cgroup2 cgroup2 rw\n";
        assert_eq!(cgroup2_root_mount(grant), None);
    }
}
