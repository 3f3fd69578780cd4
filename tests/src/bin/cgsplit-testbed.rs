//! `cgsplit-testbed`: run one command as an unprivileged uid under a private,
//! real `systemd --user` (root only). Exit status: the command's (128 + signal
//! if it was killed); 125 when the testbed itself failed. CMD runs with its
//! working directory at `$HOME`, so give it absolute paths. With
//! `--second-cmd` a second uid runs a script under its own user manager,
//! concurrently (see `cgsplit_tests::runner::inner`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use argh::FromArgs;
use cgsplit_tests::runner::{self, Config};

/// Run CMD as an unprivileged uid inside a private systemd --user (needs root).
#[derive(FromArgs)]
#[argh(
    example = "cgsplit-testbed --env CGSPLIT=target/debug/cgsplit -- sh -c '$CGSPLIT provision --app 620'"
)]
struct Args {
    /// uid to run as; must be in /etc/passwd (default: the system user cgsplit-test, created if missing)
    #[argh(option)]
    uid: Option<u32>,
    /// home directory, chowned to the uid (default: a fresh one on the private /run)
    #[argh(option)]
    home: Option<PathBuf>,
    /// extra environment for CMD, K=V (repeatable)
    #[argh(option)]
    env: Vec<String>,
    /// append systemd's log messages (debug level) to FILE
    #[argh(option)]
    log: Option<PathBuf>,
    /// overall timeout in seconds (default 120); then everything is killed
    #[argh(option, default = "120")]
    timeout: u64,
    /// print phase timings to stderr
    #[argh(switch, short = 'v')]
    verbose: bool,
    /// start a private system bus (dbus-daemon --system) inside the namespace
    #[argh(switch)]
    system_bus: bool,
    /// the system bus's config file instead of system.conf (implies --system-bus)
    #[argh(option)]
    system_bus_config: Option<PathBuf>,
    /// shell command run as root in the background before the user manager (repeatable)
    #[argh(option)]
    root_daemon: Vec<String>,
    /// also unshare the network namespace (only lo, up)
    #[argh(switch)]
    net: bool,
    /// also boot a second user manager for a second uid (--uid2; default: the system user cgsplit-test2, created if missing)
    #[argh(switch)]
    second_user: bool,
    /// the second uid (with --second-user); must be in /etc/passwd and differ from --uid
    #[argh(option)]
    uid2: Option<u32>,
    /// shell script run as the second uid concurrently with CMD (implies --second-user); its stdout/stderr
    /// follow CMD's, lines prefixed "second: "; $TESTBED_SHARED is a directory both can write
    #[argh(option)]
    second_cmd: Option<String>,
    /// internal: run as PID 1 of the namespaces
    #[argh(switch, hidden_help)]
    inner: bool,
    /// the command and its arguments (after --)
    #[argh(positional, greedy)]
    cmd: Vec<String>,
}

fn main() {
    let args: Args = argh::from_env();
    match run(args) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("cgsplit-testbed: error: {e:#}");
            std::process::exit(125);
        }
    }
}

fn run(a: Args) -> anyhow::Result<i32> {
    if a.cmd.is_empty() {
        bail!("no command given; usage: cgsplit-testbed [options] -- CMD [ARGS...]");
    }
    let env = a
        .env
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| format!("--env {kv}: expected K=V"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let cfg = Config {
        uid: a.uid,
        home: a.home,
        env,
        log: a.log,
        timeout: Duration::from_secs(a.timeout),
        verbose: a.verbose,
        system_bus: a.system_bus || a.system_bus_config.is_some(),
        system_bus_config: a.system_bus_config,
        root_daemons: a.root_daemon,
        net: a.net,
        second_user: a.second_user || a.second_cmd.is_some() || a.uid2.is_some(),
        uid2: a.uid2,
        second_cmd: a.second_cmd,
        cmd: a.cmd.into_iter().map(Into::into).collect(),
    };
    Ok(if a.inner {
        runner::inner::run(&cfg)?
    } else {
        runner::outer::run(&cfg)?
    })
}
