//! The offline flatpak test kit: a busybox runtime and stand-in apps in a
//! local OSTree repo, installed `--user` inside a [`Testbed`](crate::testbed::Testbed) run.
//!
//! Recipe (shared/reference/TEST-ENVIRONMENT.md, "flatpak, offline"): a
//! runtime is a directory with `metadata` (`[Runtime] name=…`), `usr/` (busybox,
//! its applet links and any static binaries you add) and an empty `files/`,
//! exported with `flatpak build-export --runtime --disable-sandbox`; an app is
//! `files/` (mounted at `/app`) + `metadata`, finished with `flatpak
//! build-finish --command=…` and exported the same way. Nothing is
//! downloaded. Inside the sandbox there are **no host libraries**: only
//! busybox (static), your static binaries (e.g. the static shim) and the
//! app's files, so a dynamically linked binary cannot run there.
//!
//! ```no_run
//! use cgsplit_tests::flatpak::{App, Kit, Runtime};
//! use cgsplit_tests::testbed::Testbed;
//!
//! let Some(tb) = Testbed::or_skip() else { return };
//! let Some(shim) = cgsplit_tests::testbed::static_shim_or_skip() else { return };
//! if !Kit::available_or_skip() { return; }
//! let dir = tempfile::Builder::new().prefix("cgsplit-fp-").tempdir().unwrap();
//! let kit = Kit::build(
//!     dir.path(),
//!     &Runtime::new().bin(&shim, "cgsplit-shim"),
//!     &[App::new("com.valvesoftware.Steam")
//!         .script("steam", "#!/bin/sh\nexec \"$@\"\n")
//!         .finish_arg("--persist=.steam")],
//! )
//! .unwrap();
//! let out = tb.system_bus().run_sh(&format!(
//!     "{}\n{} sh -c 'echo $$; cat /proc/self/cgroup'",
//!     kit.install_script(),
//!     Kit::run_cmd("com.valvesoftware.Steam", &[]),
//! ));
//! assert!(out.status.success());
//! ```
//!
//! The testbed run needs [`Testbed::system_bus`](crate::testbed::Testbed::system_bus): `flatpak --user install`
//! talks to the system bus. Grants: `flatpak --user override
//! --filesystem=<dir> <app>` in the script, or `App::finish_arg`. What the
//! sandbox sees (verified here): `/proc/self/cgroup` shows the full cgroup
//! path, `/sys/fs/cgroup` is absent unless a directory under it is granted,
//! a granted scope directory is a `cgroup2` bind mount in
//! `/proc/self/mountinfo`, and the sandbox has its own pid namespace (`$$`
//! is small; `NSpid` in `/proc/<host pid>/status` maps host to sandbox pids).

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

use crate::testbed::{self, sh};

/// The runtime's name; apps are built against `RUNTIME/x86_64/RUNTIME_BRANCH`.
pub const RUNTIME: &str = "org.cgsplit.Test.Platform";
/// The runtime's branch.
pub const RUNTIME_BRANCH: &str = "1";
/// The remote name [`Kit::install_script`] adds.
pub const REMOTE: &str = "cgsplit-test";
/// busybox from Debian's `busybox-static`: a static binary with every applet.
pub const BUSYBOX: &str = "/bin/busybox";

/// The runtime: busybox with its applet links in `/usr/bin`, plus static
/// binaries you add.
#[derive(Debug, Clone, Default)]
pub struct Runtime {
    bins: Vec<(PathBuf, String)>,
}

impl Runtime {
    /// busybox only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `src` (a static binary) as `/usr/bin/<name>` in the sandbox.
    pub fn bin(mut self, src: impl Into<PathBuf>, name: impl Into<String>) -> Self {
        self.bins.push((src.into(), name.into()));
        self
    }
}

/// A stand-in app (e.g. `com.valvesoftware.Steam`), branch `master`.
#[derive(Debug, Clone)]
pub struct App {
    id: String,
    command: Option<String>,
    files: Vec<(String, Content)>,
    finish_args: Vec<String>,
}

#[derive(Debug, Clone)]
enum Content {
    Text(String),
    Copy(PathBuf),
}

impl App {
    /// An app with id `id` and no files yet.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            command: None,
            files: Vec::new(),
            finish_args: Vec::new(),
        }
    }

    /// The app id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// An executable script `/app/bin/<name>` (use `#!/bin/sh`: busybox sh).
    /// The first script added is the app's command unless [`App::command`] is given.
    pub fn script(mut self, name: &str, text: impl Into<String>) -> Self {
        self.command.get_or_insert_with(|| name.to_owned());
        self.files
            .push((format!("bin/{name}"), Content::Text(text.into())));
        self
    }

    /// Copies `src` to `/app/<rel>` (mode kept; e.g. `bin/fake-reaper` for a static binary).
    pub fn file(mut self, rel: impl Into<String>, src: impl Into<PathBuf>) -> Self {
        self.files.push((rel.into(), Content::Copy(src.into())));
        self
    }

    /// The command `flatpak run` starts (a name in `/app/bin` or `/usr/bin`).
    pub fn command(mut self, name: impl Into<String>) -> Self {
        self.command = Some(name.into());
        self
    }

    /// An extra `flatpak build-finish` argument, e.g. `--persist=.steam`,
    /// `--filesystem=/some/dir`, `--share=network`, `--socket=session-bus`.
    pub fn finish_arg(mut self, arg: impl Into<String>) -> Self {
        self.finish_args.push(arg.into());
        self
    }
}

/// A built repo holding the runtime and the apps.
#[derive(Debug, Clone)]
pub struct Kit {
    /// The OSTree repo (`<dir>/repo`), readable by every uid.
    pub repo: PathBuf,
    /// The app ids in it.
    pub apps: Vec<String>,
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn copy_exec(src: &Path, dst: &Path) -> anyhow::Result<()> {
    fs::copy(src, dst).with_context(|| format!("copy {} to {}", src.display(), dst.display()))?;
    fs::set_permissions(dst, fs::Permissions::from_mode(0o755))?;
    Ok(())
}

impl Kit {
    /// Whether `flatpak` and [`BUSYBOX`] are installed. If not: prints
    /// `skipping: …` and returns `false`, or panics when `CI` is set.
    pub fn available_or_skip() -> bool {
        let missing: Vec<&str> = [("flatpak", "/usr/bin/flatpak"), ("busybox-static", BUSYBOX)]
            .iter()
            .filter(|(_, p)| !Path::new(p).is_file())
            .map(|(pkg, _)| *pkg)
            .collect();
        if missing.is_empty() {
            return true;
        }
        let reason = format!(
            "flatpak test kit needs the Debian packages {} (scripts/setup installs them)",
            missing.join(", ")
        );
        if std::env::var_os(testbed::CI_VAR).is_some() {
            panic!("{reason}, and CI is set: failing instead of skipping");
        }
        eprintln!("skipping: {reason}");
        false
    }

    /// Builds `dir/runtime`, `dir/app-<id>` and the repo `dir/repo` (about
    /// 0.5 s), then makes `dir` readable by every uid (the testbed's user
    /// installs from it). `dir` must exist and be reachable by that uid
    /// (e.g. a 0755 temp directory under `/tmp`).
    pub fn build(dir: &Path, runtime: &Runtime, apps: &[App]) -> anyhow::Result<Kit> {
        let repo = dir.join("repo");
        // The runtime: usr/ is exported (mounted at /usr); files/ must exist, empty.
        let rt = dir.join("runtime");
        let bin = rt.join("usr/bin");
        fs::create_dir_all(&bin)?;
        fs::create_dir_all(rt.join("files"))?;
        copy_exec(Path::new(BUSYBOX), &bin.join("busybox"))?;
        let list = Command::new(BUSYBOX)
            .arg("--list")
            .output()
            .context("busybox --list")?;
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" && !applet.is_empty() {
                symlink("busybox", bin.join(applet))?;
            }
        }
        for (src, name) in &runtime.bins {
            let dst = bin.join(name);
            let _ = fs::remove_file(&dst); // a busybox applet of the same name
            copy_exec(src, &dst)?;
        }
        fs::write(rt.join("metadata"), format!("[Runtime]\nname={RUNTIME}\n"))?;
        run(Command::new("flatpak")
            .args(["build-export", "--runtime", "--disable-sandbox"])
            .arg(&repo)
            .arg(&rt)
            .arg(RUNTIME_BRANCH))?;

        for app in apps {
            let adir = dir.join(format!("app-{}", app.id));
            fs::create_dir_all(adir.join("files/bin"))?;
            for (rel, content) in &app.files {
                let dst = adir.join("files").join(rel);
                if let Some(p) = dst.parent() {
                    fs::create_dir_all(p)?;
                }
                match content {
                    Content::Text(t) => {
                        fs::write(&dst, t)?;
                        fs::set_permissions(&dst, fs::Permissions::from_mode(0o755))?;
                    }
                    Content::Copy(src) => copy_exec(src, &dst)?,
                }
            }
            fs::write(
                adir.join("metadata"),
                format!(
                    "[Application]\nname={}\nruntime={RUNTIME}/x86_64/{RUNTIME_BRANCH}\n",
                    app.id
                ),
            )?;
            let command = app
                .command
                .as_deref()
                .with_context(|| format!("app {}: no script or command given", app.id))?;
            run(Command::new("flatpak")
                .arg("build-finish")
                .arg(format!("--command={command}"))
                .args(&app.finish_args)
                .arg(&adir))?;
            run(Command::new("flatpak")
                .args(["build-export", "--disable-sandbox"])
                .arg(&repo)
                .arg(&adir)
                .arg("master"))?;
        }
        run(Command::new("chmod").arg("-R").arg("a+rX").arg(dir))?;
        Ok(Kit {
            repo,
            apps: apps.iter().map(|a| a.id.clone()).collect(),
        })
    }

    /// Shell lines for a testbed script (run as the test uid, with
    /// [`Testbed::system_bus`](crate::testbed::Testbed::system_bus)): add the repo as remote [`REMOTE`] and install
    /// every app (and so the runtime) `--user`, quietly; the script exits 90
    /// with flatpak's output on stderr if that fails.
    pub fn install_script(&self) -> String {
        format!(
            "flatpak --user remote-add --if-not-exists --no-gpg-verify {REMOTE} {repo} >/dev/null 2>&1 || {{ echo 'flatpak remote-add failed' >&2; exit 90; }}\n\
             flatpak --user install -y --noninteractive {REMOTE} {apps} >\"$HOME/.flatpak-install.log\" 2>&1 || {{ cat \"$HOME/.flatpak-install.log\" >&2; exit 90; }}\n",
            repo = sh(Path::new(&format!("file://{}", self.repo.display()))),
            apps = self.apps.join(" "),
        )
    }

    /// `flatpak run --no-documents-portal [OPTIONS] <app>`: the start of a
    /// command line that runs the app's command (append its arguments).
    /// `options` are `flatpak run` options (they must come before the app
    /// id), e.g. `--env=SteamAppId=620`, `--filesystem=…`, `--command=sh`;
    /// each is shell-quoted. The document portal has no FUSE here and would
    /// hang a run for many seconds.
    pub fn run_cmd(app: &str, options: &[&str]) -> String {
        let mut s = String::from("flatpak run --no-documents-portal");
        for o in options {
            s.push(' ');
            s.push_str(&sh(Path::new(o)));
        }
        s.push(' ');
        s.push_str(app);
        s
    }
}

/// Where `scripts/setup` builds the static pressure-vessel stand-in
/// (`tests/src/bin/fake-pressure-vessel.rs`), relative to the target directory.
pub const STATIC_PRESSURE_VESSEL: &str = "x86_64-unknown-linux-gnu/debug/fake-pressure-vessel";

/// The static `fake-pressure-vessel` (it relaunches a command through the
/// flatpak portal's `Spawn`), if built. Otherwise prints `skipping: …` and
/// returns `None`, or panics when `CI` is set.
pub fn pressure_vessel_or_skip() -> Option<PathBuf> {
    let target = crate::bins::target_dir();
    let p = target
        .parent()
        .unwrap_or(&target)
        .join(STATIC_PRESSURE_VESSEL);
    if p.is_file() {
        return Some(p);
    }
    let reason = format!(
        "{} is not built (scripts/setup builds it: cargo build -p cgsplit-tests --bin \
         fake-pressure-vessel --target x86_64-unknown-linux-gnu with +crt-static)",
        p.display()
    );
    if std::env::var_os(testbed::CI_VAR).is_some() {
        panic!("{reason}, and CI is set: failing instead of skipping");
    }
    eprintln!("skipping: {reason}");
    None
}

/// The Steam stand-in the portal tests share: a repo whose runtime holds
/// busybox, the static shim as `/usr/bin/cgsplit-shim` and the static
/// pressure-vessel stand-in ([`pressure_vessel_or_skip`]) under a name the
/// test chooses, and one app with `--socket=session-bus` (the portal's
/// `org.freedesktop.portal.Flatpak.Spawn` is on the session bus), built in a
/// [`shared_tempdir`](crate::fixtures::shared_tempdir) with a
/// [`report_dir`](crate::fixtures::report_dir) `out/` for the reports.
#[derive(Debug)]
pub struct PortalSteam {
    /// The temporary tree (mode 0755) holding the repo and `out/`; removed
    /// when this drops.
    pub tmp: tempfile::TempDir,
    /// The built repo; its [`Kit::install_script`] installs the app.
    pub kit: Kit,
    /// `<tmp>/out`, mode 0777: where the game and the test uid write.
    pub out: PathBuf,
    /// The static shim on the host (the runtime's `/usr/bin/cgsplit-shim`).
    pub shim: PathBuf,
    /// The static pressure-vessel stand-in on the host.
    pub pv: PathBuf,
}

impl PortalSteam {
    /// Builds it for `app` (its scripts and command; `--socket=session-bus`
    /// is added here) with the stand-in installed as `/usr/bin/<pv_name>`
    /// (e.g. `fake-pressure-vessel`, or `_v2-entry-point` for the shape of
    /// Steam's launch line), in a temporary directory named `<prefix>…`.
    /// Returns it with the testbed to run it in, or `None` after printing
    /// `skipping: …` (a panic when `CI` is set) when the host lacks the
    /// testbed, the static shim, the stand-in or the flatpak kit. Panics when
    /// `cgsplit` is not built or the repo cannot be built.
    pub fn build_or_skip(
        prefix: &str,
        pv_name: &str,
        app: App,
    ) -> Option<(testbed::Testbed, PortalSteam)> {
        let bed = testbed::Testbed::or_skip()?;
        let shim = testbed::static_shim_or_skip()?;
        let pv = pressure_vessel_or_skip()?;
        if !Kit::available_or_skip() {
            return None;
        }
        crate::bins::bin("cgsplit");
        let tmp = crate::fixtures::shared_tempdir(prefix);
        let kit = Kit::build(
            tmp.path(),
            &Runtime::new().bin(&shim, "cgsplit-shim").bin(&pv, pv_name),
            &[app.finish_arg("--socket=session-bus")],
        )
        .expect("build the flatpak repo");
        let out = crate::fixtures::report_dir(tmp.path().join("out"));
        Some((
            bed,
            PortalSteam {
                tmp,
                kit,
                out,
                shim,
                pv,
            },
        ))
    }
}
