//! What integration tests use to run something under a real, private
//! `systemd --user`: a builder around the `cgsplit-testbed` binary.
//!
//! ```no_run
//! use cgsplit_tests::testbed::Testbed;
//!
//! let Some(tb) = Testbed::or_skip() else { return };
//! let out = tb
//!     .env("CGSPLIT", cgsplit_tests::bins::bin("cgsplit").display().to_string())
//!     .run_sh(r#""$CGSPLIT" provision --app 620"#);
//! assert!(out.status.success());
//! ```
//!
//! Each run gets its own cgroup, namespaces, user manager and `/run`, so tests
//! may run in parallel. The script runs as the test uid (by default the system
//! user `cgsplit-test`), from a leaf cgroup inside `user@<uid>.service`, with
//! `HOME`, `USER`, `XDG_RUNTIME_DIR`, `DBUS_SESSION_BUS_ADDRESS`, `PATH` and
//! every [`Testbed::env`] set; `$TESTBED_UID` holds the uid, `$TESTBED_SHARED`
//! a directory (mode 1777) every process of the run can write. Its working
//! directory is `$HOME` (by default a fresh directory on the run's private
//! `/run`, so scratch files there cannot collide between parallel tests);
//! pass absolute paths.
//!
//! [`Testbed::second_sh`] adds a second uid with its own user manager, running
//! its own script at the same time (two users on one machine).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::bins;
use crate::runner;

/// Env var that turns "skipping" into a test failure (set on CI).
pub const CI_VAR: &str = "CI";

/// Why this host cannot run the testbed, or `None` if it can (root, a cgroup2
/// mount, `/lib/systemd/systemd`, `unshare`, `useradd`, `busctl`).
pub fn unsupported_reason() -> Option<String> {
    runner::outer::unsupported_reason()
}

/// `path` quoted for a POSIX shell script ([`cgsplit_core::launch::sh_quote`]).
pub fn sh(path: &Path) -> String {
    cgsplit_core::launch::sh_quote(&path.to_string_lossy()).into_owned()
}

/// Where `cargo build-shim` puts the static shim, relative to the target
/// directory (`.cargo/config.toml`: `--target x86_64-unknown-linux-gnu --profile shim`).
pub const STATIC_SHIM: &str = "x86_64-unknown-linux-gnu/shim/cgsplit-shim";

/// The static shim built by `cargo build-shim`, if it exists. Otherwise prints
/// `skipping: …` and returns `None`, or panics when `CI` is set.
pub fn static_shim_or_skip() -> Option<PathBuf> {
    let target = bins::target_dir();
    let root = target.parent().unwrap_or(&target);
    let shim = root.join(STATIC_SHIM);
    if shim.is_file() {
        return Some(shim);
    }
    skip(format!(
        "{} is not built (run `cargo build-shim`)",
        shim.display()
    ))
}

fn skip<T>(reason: String) -> Option<T> {
    if std::env::var_os(CI_VAR).is_some() {
        panic!("{reason}, and {CI_VAR} is set: failing instead of skipping");
    }
    eprintln!("skipping: {reason}");
    None
}

/// Where [`Testbed::with_netd`]'s helper logs, inside the run's `/run`.
pub const NETD_LOG: &str = "/run/netd.log";

/// A dbus-daemon config (written once into the target directory): the
/// distribution's system bus policy plus the shipped helper policy.
fn netd_bus_config() -> PathBuf {
    static CONF: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    CONF.get_or_init(write_netd_bus_config).clone()
}

fn write_netd_bus_config() -> PathBuf {
    let policy = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../netd/dbus/io.github.cgsplit.Netd1.conf")
        .canonicalize()
        .expect("netd/dbus/io.github.cgsplit.Netd1.conf");
    let text = format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <include>/usr/share/dbus-1/system.conf</include>
  <include>{}</include>
</busconfig>
"#,
        policy.display()
    );
    let conf = bins::target_dir().join("cgsplit-netd-system-bus.conf");
    if std::fs::read_to_string(&conf).ok().as_deref() != Some(text.as_str()) {
        // Test binaries running at once may write it together: each process
        // writes its own temp file and renames it into place, so readers
        // always see a whole file.
        let tmp = conf.with_extension(format!("conf.{}", std::process::id()));
        std::fs::write(&tmp, &text).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
        std::fs::rename(&tmp, &conf)
            .unwrap_or_else(|e| panic!("rename to {}: {e}", conf.display()));
    }
    conf
}

/// A testbed run, configured by builder methods; [`Testbed::run_sh`] runs it.
#[derive(Debug, Clone)]
pub struct Testbed {
    exe: PathBuf,
    uid: Option<u32>,
    home: Option<PathBuf>,
    env: Vec<(String, String)>,
    log: Option<PathBuf>,
    timeout_secs: u64,
    system_bus: bool,
    system_bus_config: Option<PathBuf>,
    root_daemons: Vec<String>,
    net: bool,
    second_user: bool,
    uid2: Option<u32>,
    second_sh: Option<String>,
}

impl Testbed {
    /// A testbed using the built `cgsplit-testbed` binary (see [`bins::bin`];
    /// panics if it is not built). Does not check the host: see [`Testbed::or_skip`].
    pub fn new() -> Self {
        Testbed {
            exe: bins::bin("cgsplit-testbed"),
            uid: None,
            home: None,
            env: Vec::new(),
            log: None,
            timeout_secs: 120,
            system_bus: false,
            system_bus_config: None,
            root_daemons: Vec::new(),
            net: false,
            second_user: false,
            uid2: None,
            second_sh: None,
        }
    }

    /// `Some(Testbed::new())` if the host can run it. Otherwise prints
    /// `skipping: <reason>` and returns `None` — or panics with the reason when
    /// the `CI` environment variable is set, so CI cannot pass by skipping.
    pub fn or_skip() -> Option<Self> {
        match unsupported_reason() {
            None => Some(Self::new()),
            Some(r) => skip(format!("testbed unavailable: {r}")),
        }
    }

    /// Run as `uid` instead of the `cgsplit-test` user. It needs an
    /// `/etc/passwd` entry: dbus-daemon refuses to run without one.
    pub fn uid(mut self, uid: u32) -> Self {
        self.uid = Some(uid);
        self
    }

    /// Use `dir` as `$HOME` (it is chowned to the uid, recursively).
    pub fn home(mut self, dir: impl Into<PathBuf>) -> Self {
        self.home = Some(dir.into());
        self
    }

    /// Set `key=value` in the command's environment.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Append systemd's messages (debug level) to `file`.
    pub fn log(mut self, file: impl Into<PathBuf>) -> Self {
        self.log = Some(file.into());
        self
    }

    /// Overall timeout of a run in seconds (default 120).
    pub fn timeout_secs(mut self, secs: u64) -> Self {
        self.timeout_secs = secs;
        self
    }

    /// Start a private system bus (`dbus-daemon --system`, the distribution's
    /// policy) in the namespace; `DBUS_SYSTEM_BUS_ADDRESS` points at it for
    /// the command and the root daemons. `flatpak --user install` needs one.
    pub fn system_bus(mut self) -> Self {
        self.system_bus = true;
        self
    }

    /// Start the private system bus with `config` (a dbus-daemon config file,
    /// e.g. one that includes a shipped policy file) instead of `system.conf`.
    pub fn system_bus_config(mut self, config: impl Into<PathBuf>) -> Self {
        self.system_bus_config = Some(config.into());
        self
    }

    /// Run `script` (`/bin/sh -c`) as root in the background, in its own
    /// cgroup under `system.slice`, after the system bus and before the user
    /// manager; it is killed when the command is done. Repeatable. It sees
    /// `PATH`, `DBUS_SYSTEM_BUS_ADDRESS`, `CGSPLIT_BIN`, `CGSPLIT_SHIM`,
    /// `TESTBED_SHARED`, `TESTBED_UID1` (and `TESTBED_UID2`, see
    /// [`Testbed::second_sh`]) and every [`Testbed::env`]; its output goes to
    /// the testbed's stdout/stderr.
    pub fn root_daemon(mut self, script: impl Into<String>) -> Self {
        self.root_daemons.push(script.into());
        self
    }

    /// The privileged helper as it runs on a host: a private system bus whose
    /// policy is Debian's `system.conf` plus the shipped
    /// `netd/dbus/io.github.cgsplit.Netd1.conf`, a private network namespace,
    /// and `cgsplit-netd serve` as a root daemon with its own bpffs at
    /// `/run/cgsplit-bpf`, logging to [`NETD_LOG`]. Scripts wait until
    /// `busctl --system status io.github.cgsplit.Netd1` succeeds.
    pub fn with_netd(self) -> Self {
        crate::bins::bin("cgsplit-netd");
        self.system_bus_config(netd_bus_config())
            .net()
            .root_daemon(format!(
                r#"exec "$CGSPLIT_BIN/cgsplit-netd" --bpffs /run/cgsplit-bpf serve >{NETD_LOG} 2>&1"#
            ))
    }

    /// Run in a private network namespace (only `lo`, brought up).
    pub fn net(mut self) -> Self {
        self.net = true;
        self
    }

    /// Also boot a second, independent user manager for a second uid (the
    /// system user `cgsplit-test2`, created if missing): its own
    /// `user@<uid2>.service`, `/run/user/<uid2>`, home and `systemd --user`.
    /// Costs one more manager start, so only when asked.
    pub fn second_user(mut self) -> Self {
        self.second_user = true;
        self
    }

    /// Use `uid` (it needs an `/etc/passwd` entry) as the second user instead
    /// of `cgsplit-test2`; implies [`Testbed::second_user`].
    pub fn uid2(mut self, uid: u32) -> Self {
        self.second_user = true;
        self.uid2 = Some(uid);
        self
    }

    /// Run `script` (`/bin/sh -c`) as the second uid, from its own client
    /// leaf `user@<uid2>.service/app.slice/cgsplit-testbed` with its own
    /// `HOME`, `XDG_RUNTIME_DIR` and `DBUS_SESSION_BUS_ADDRESS`, concurrently
    /// with the [`Testbed::run_sh`] script; implies [`Testbed::second_user`].
    ///
    /// The two synchronise through files in `$TESTBED_SHARED` (mode 1777,
    /// also visible to root daemons); both see `$TESTBED_UID1`,
    /// `$TESTBED_UID2` and `$TESTBED_UID` (their own uid). The second's
    /// stdout and stderr go to `$TESTBED_SHARED/second.out` and `second.err`,
    /// its exit code to `second.rc` once it has exited. The run waits for both
    /// (the second is killed 10 s after the first ended), then appends the
    /// second's stdout and stderr to the [`Output`]'s, each line prefixed
    /// `second: `. The exit status is the first script's, or the second's
    /// when the first's is 0.
    pub fn second_sh(mut self, script: impl Into<String>) -> Self {
        self.second_user = true;
        self.second_sh = Some(script.into());
        self
    }

    /// The `cgsplit-testbed … -- program args…` command, stdio not yet set.
    pub fn command<S: AsRef<OsStr>>(&self, program: impl AsRef<OsStr>, args: &[S]) -> Command {
        let mut c = Command::new(&self.exe);
        if let Some(u) = self.uid {
            c.arg("--uid").arg(u.to_string());
        }
        if let Some(h) = &self.home {
            c.arg("--home").arg(h);
        }
        for (k, v) in &self.env {
            c.arg("--env").arg(format!("{k}={v}"));
        }
        if let Some(l) = &self.log {
            c.arg("--log").arg(l);
        }
        c.arg("--timeout").arg(self.timeout_secs.to_string());
        if self.system_bus {
            c.arg("--system-bus");
        }
        if let Some(f) = &self.system_bus_config {
            c.arg("--system-bus-config").arg(f);
        }
        for d in &self.root_daemons {
            c.arg("--root-daemon").arg(d);
        }
        if self.net {
            c.arg("--net");
        }
        if self.second_user {
            c.arg("--second-user");
        }
        if let Some(u) = self.uid2 {
            c.arg("--uid2").arg(u.to_string());
        }
        if let Some(s) = &self.second_sh {
            c.arg("--second-cmd").arg(s);
        }
        c.arg("--").arg(program);
        c.args(args);
        c
    }

    /// Runs `/bin/sh -c script` inside the testbed as the test uid and
    /// collects its exit status, stdout and stderr (the testbed's own
    /// diagnostics are on stderr, prefixed `cgsplit-testbed:`; exit 125 means
    /// the testbed itself failed).
    pub fn run_sh(&self, script: &str) -> Output {
        self.command("/bin/sh", &["-c", script])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.exe.display()))
    }
}

impl Default for Testbed {
    fn default() -> Self {
        Self::new()
    }
}
