//! `cgsplit`: give Steam games their own systemd scopes.
//!
//! Exit status: 0 on success (also `release` of a scope that is not loaded),
//! 1 on any error, with one line `cgsplit: error: …` on stderr (or in the
//! journal under systemd). `provision` prints exactly one line on stdout: the
//! scope's cgroup path. `run` exits with its command's status (128 + signal
//! when it was killed).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use argh::FromArgs;
use cgsplit_companion::lifecycle::{self, UpReport};
use cgsplit_companion::systemd::UserManager;
use cgsplit_companion::{NetdLink, Outcome, Released, flatpak, keeper, log, run, status};
use cgsplit_config::Config;
use cgsplit_core::{AppId, NetworkPolicy};

/// Give Steam games their own delegated systemd scopes (games.slice/cgsplit-<app>.scope) in your user manager.
#[derive(FromArgs)]
struct Cli {
    #[argh(subcommand)]
    cmd: Cmd,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Cmd {
    Provision(Provision),
    Release(Release),
    Up(Up),
    Down(Down),
    Watch(Watch),
    Status(Status),
    Run(Run),
    Config(ConfigCmd),
}

/// Create (or reuse) one game's scope with its configured limits and network policy; print its cgroup path.
#[derive(FromArgs)]
#[argh(subcommand, name = "provision")]
struct Provision {
    /// steam app id, e.g. 620
    #[argh(option)]
    app: AppId,
    /// network policy instead of the config's: full, localhost, or localhost,<cidr>,…
    #[argh(option)]
    network: Option<NetworkPolicy>,
    /// config file (default: $XDG_CONFIG_HOME/cgsplit/config.toml)
    #[argh(option)]
    config: Option<PathBuf>,
}

/// Stop one game's scope (kills what runs in it); not loaded is not an error.
#[derive(FromArgs)]
#[argh(subcommand, name = "release")]
struct Release {
    /// steam app id, e.g. 620
    #[argh(option)]
    app: AppId,
}

/// Provision every configured game, keep games.slice alive, grant it to the Steam flatpak.
#[derive(FromArgs)]
#[argh(subcommand, name = "up")]
struct Up {
    /// config file (default: $XDG_CONFIG_HOME/cgsplit/config.toml)
    #[argh(option)]
    config: Option<PathBuf>,
    /// keep running: recreate vanished scopes, apply config changes
    #[argh(switch)]
    watch: bool,
    /// do not grant games.slice to the Steam flatpak
    #[argh(switch)]
    no_flatpak: bool,
}

/// Stop every cgsplit scope (pauses a running watcher until the next `up`).
#[derive(FromArgs)]
#[argh(subcommand, name = "down")]
struct Down {
    /// also revoke the flatpak grants cgsplit made
    #[argh(switch)]
    revoke: bool,
}

/// Watch the user manager and recreate configured scopes that vanish.
#[derive(FromArgs)]
#[argh(subcommand, name = "watch")]
struct Watch {
    /// config file (default: $XDG_CONFIG_HOME/cgsplit/config.toml)
    #[argh(option)]
    config: Option<PathBuf>,
}

/// Show each game's scope, state, pids, memory, CPU weight, tasks and network policy.
#[derive(FromArgs)]
#[argh(subcommand, name = "status")]
struct Status {
    /// config file (default: $XDG_CONFIG_HOME/cgsplit/config.toml)
    #[argh(option)]
    config: Option<PathBuf>,
    /// print JSON (unknown figures are null)
    #[argh(switch)]
    json: bool,
}

/// Provision, run CMD (e.g. steam) in its own scope, forward signals, tear down; exit with CMD's status.
#[derive(FromArgs)]
#[argh(subcommand, name = "run")]
struct Run {
    /// config file (default: $XDG_CONFIG_HOME/cgsplit/config.toml)
    #[argh(option)]
    config: Option<PathBuf>,
    /// do not grant games.slice to the Steam flatpak
    #[argh(switch)]
    no_flatpak: bool,
    /// the command and its arguments (after --)
    #[argh(positional, greedy)]
    cmd: Vec<OsString>,
}

/// Configuration commands.
#[derive(FromArgs)]
#[argh(subcommand, name = "config")]
struct ConfigCmd {
    #[argh(subcommand)]
    cmd: ConfigSub,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum ConfigSub {
    Check(Check),
}

/// Validate the config file and print each game's effective settings.
#[derive(FromArgs)]
#[argh(subcommand, name = "check")]
struct Check {
    /// config file (default: $XDG_CONFIG_HOME/cgsplit/config.toml)
    #[argh(option)]
    config: Option<PathBuf>,
}

fn main() {
    if std::env::args_os().nth(1).as_deref() == Some(keeper::KEEPER_ARG.as_ref()) {
        keeper::run();
    }
    let cli: Cli = argh::from_env();
    if matches!(cli.cmd, Cmd::Run(_)) {
        // Before zbus starts its threads: they inherit the mask.
        run::block_forwarded_signals();
    }
    match run_cli(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            // Our errors already print their causes on one line; `{e:#}` would repeat them.
            log::error(&e.to_string());
            std::process::exit(1);
        }
    }
}

fn config_path(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    Ok(match given {
        Some(p) => p,
        None => Config::default_path()?,
    })
}

fn load(given: Option<PathBuf>) -> anyhow::Result<(PathBuf, Config)> {
    let p = config_path(given)?;
    let c = Config::load(&p)?;
    Ok((p, c))
}

fn mountinfo() -> anyhow::Result<String> {
    std::fs::read_to_string(cgsplit_companion::MOUNTINFO)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", cgsplit_companion::MOUNTINFO))
}

/// Prints what `up` did; returns whether everything succeeded.
fn report_up(r: &UpReport) -> bool {
    match &r.anchor {
        Ok(true) => log::info(&format!(
            "{} started (keeps games.slice alive)",
            lifecycle::ANCHOR_UNIT
        )),
        Ok(false) => {}
        Err(e) => log::error(&format!("{}: {e}", lifecycle::ANCHOR_UNIT)),
    }
    for (app, res) in &r.games {
        match res {
            Ok(p) => {
                let what = match p.outcome {
                    Outcome::Created => "created",
                    Outcome::Reused if p.updated.is_empty() => "up to date",
                    Outcome::Reused => "limits changed",
                    Outcome::RecreatedAfterFailure => "was failed; reset and created",
                };
                let extra = if p.updated.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", p.updated.join(", "))
                };
                println!("{}: {what}{extra}: {}", p.unit, p.control_group);
            }
            Err(e) => log::error(&format!("app {app}: {e}")),
        }
    }
    r.ok()
}

/// Grants games.slice to the Steam flatpak; returns false when that failed
/// (flatpak missing is not a failure: a native Steam needs no grant).
fn grant(slice_dir: Option<&Path>) -> bool {
    let Some(dir) = slice_dir else {
        log::error("games.slice has no cgroup; nothing granted to the Steam flatpak");
        return false;
    };
    match flatpak::grant(dir) {
        Ok(flatpak::Granted::Added) => log::info(&format!(
            "granted {} to {} (flatpak override)",
            dir.display(),
            flatpak::STEAM_APP_ID
        )),
        Ok(_) => {}
        // No flatpak at all: nothing to do for a native Steam.
        Err(flatpak::FlatpakError::Missing(_)) => return true,
        Err(e) => {
            log::error(&format!("flatpak grant: {e}"));
            return false;
        }
    }
    warn_blind(dir);
    true
}

/// Warns about running Steam sandboxes that started before `dir` existed.
fn warn_blind(dir: &Path) {
    for b in flatpak::blind_steam_sandboxes(dir) {
        log::warn(&format!(
            "the running {} sandbox (instance {}, pid {}) cannot see {}: it started before the directory existed, and flatpak skips a --filesystem path that is missing at start; games it launches cannot join their scopes until Steam is restarted",
            flatpak::STEAM_APP_ID,
            b.instance,
            b.pid,
            dir.display()
        ));
    }
}

fn run_cli(cli: Cli) -> anyhow::Result<i32> {
    match cli.cmd {
        Cmd::Provision(p) => {
            let (_, config) = load(p.config)?;
            let mut game = config.game(p.app);
            if let Some(n) = p.network {
                game.network = n;
            }
            let r = cgsplit_companion::provision(&game)?;
            if r.outcome == Outcome::RecreatedAfterFailure {
                log::info(&format!(
                    "{} had failed; reset it and created it again",
                    r.unit
                ));
            }
            if !r.updated.is_empty() {
                log::info(&format!(
                    "{}: limits changed: {}",
                    r.unit,
                    r.updated.join(", ")
                ));
            }
            if let Some(expected) = &r.layout_mismatch {
                log::warn(&format!(
                    "{} is at {} but the fixed layout expects {}",
                    r.unit, r.control_group, expected
                ));
            }
            println!("{}", r.control_group);
        }
        Cmd::Release(r) => {
            let unit = cgsplit_core::scope::scope_unit(r.app);
            match cgsplit_companion::release(r.app)? {
                Released::Stopped => {}
                Released::NotLoaded => {
                    log::info(&format!("{unit} is not loaded: nothing to release"));
                }
            }
        }
        Cmd::Up(u) => {
            let (path, config) = load(u.config)?;
            let mgr = UserManager::connect()?;
            let mi = mountinfo()?;
            let r = lifecycle::up(&mgr, &config, &mi, &mut NetdLink::default());
            let mut ok = report_up(&r);
            if !u.no_flatpak && r.anchor.is_ok() {
                ok &= grant(r.slice_dir.as_deref());
            }
            if u.watch {
                lifecycle::watch(&mgr, &path, &mi)?;
            }
            return Ok(if ok { 0 } else { 1 });
        }
        Cmd::Watch(w) => {
            let path = config_path(w.config)?;
            let mgr = UserManager::connect()?;
            lifecycle::watch(&mgr, &path, &mountinfo()?)?;
        }
        Cmd::Down(d) => {
            let mgr = UserManager::connect()?;
            let mut ok = true;
            for (unit, r) in lifecycle::down(&mgr, &mountinfo()?, &mut NetdLink::default())? {
                match r {
                    Ok(_) => println!("{unit}: stopped"),
                    Err(e) => {
                        ok = false;
                        log::error(&format!("{unit}: {e}"));
                    }
                }
            }
            if d.revoke {
                match flatpak::revoke() {
                    Ok(paths) => {
                        for p in paths {
                            println!("revoked flatpak grant of {}", p.display());
                        }
                    }
                    // Only reported when there was a grant to take back.
                    Err(e) => {
                        ok = false;
                        log::error(&e.to_string());
                    }
                }
            }
            return Ok(if ok { 0 } else { 1 });
        }
        Cmd::Status(s) => {
            let (_, config) = load(s.config)?;
            let mgr = UserManager::connect()?;
            let rows = status::collect(&mgr, &config, &mountinfo()?, &mut NetdLink::default())?;
            if s.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", status::table(&rows));
            }
        }
        Cmd::Run(r) => return run_cmd(r),
        Cmd::Config(ConfigCmd {
            cmd: ConfigSub::Check(c),
        }) => {
            let (path, config) = load(c.config)?;
            println!("{}: ok", path.display());
            for g in config.games() {
                println!("{g}");
                let flags = g.shim_flags();
                if !flags.is_empty() {
                    println!(
                        "  shim flags (written into launch options): {}",
                        flags.join(" ")
                    );
                }
            }
        }
    }
    Ok(0)
}

fn run_cmd(r: Run) -> anyhow::Result<i32> {
    let (_, config) = load(r.config)?;
    let mgr = UserManager::connect()?;
    let mi = mountinfo()?;
    let up = lifecycle::up(&mgr, &config, &mi, &mut NetdLink::default());
    // A game that could not be provisioned is reported; Steam still starts
    // (its shim then refuses or warns for that game alone).
    report_up(&up);
    let is_flatpak_steam = r
        .cmd
        .iter()
        .any(|a| a.to_str() == Some(flatpak::STEAM_APP_ID));
    if !r.no_flatpak && is_flatpak_steam {
        grant(up.slice_dir.as_deref());
    }
    if is_flatpak_steam && !up.slice_dir.as_deref().is_some_and(Path::is_dir) {
        log::warn(&format!(
            "games.slice does not exist as Steam starts: flatpak skips a --filesystem path that \
             is missing, so games inside {} cannot join their scopes until Steam restarts",
            flatpak::STEAM_APP_ID
        ));
    }
    let status = run::run_in_scope(&mgr, &r.cmd)?;
    // Tear down what this run created; scopes that were already there
    // (e.g. kept by cgsplit.service) stay.
    for (_, res) in &up.games {
        if let Ok(p) = res
            && p.outcome != Outcome::Reused
            && let Some(app) = cgsplit_core::scope::parse_scope_unit(&p.unit)
            && let Err(e) = cgsplit_companion::release_with(&mgr, app)
        {
            log::warn(&format!("{}: {e}", p.unit));
        }
    }
    if matches!(up.anchor, Ok(true))
        && let Err(e) = mgr.stop(lifecycle::ANCHOR_UNIT, cgsplit_companion::STOP_TIMEOUT)
    {
        log::warn(&format!("{}: {e}", lifecycle::ANCHOR_UNIT));
    }
    Ok(run::exit_code(status))
}
