//! `cgsplit`: give a Steam game its own systemd scope.
//!
//! Exit status: 0 on success (also `release` of a scope that is not loaded),
//! 1 on any error, with one line `cgsplit: error: …` on stderr. `provision`
//! prints exactly one line on stdout: the scope's cgroup path.

use argh::FromArgs;
use cgsplit_companion::{Outcome, Released, keeper};
use cgsplit_core::AppId;

/// Give a Steam game its own delegated systemd scope (games.slice/cgsplit-<app>.scope) in your user manager.
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
}

/// Create (or reuse) the game's scope with keeper/ and game/ leaves; print its cgroup path.
#[derive(FromArgs)]
#[argh(subcommand, name = "provision")]
struct Provision {
    /// steam app id, e.g. 620
    #[argh(option)]
    app: AppId,
}

/// Stop the game's scope (kills what runs in it); not loaded is not an error.
#[derive(FromArgs)]
#[argh(subcommand, name = "release")]
struct Release {
    /// steam app id, e.g. 620
    #[argh(option)]
    app: AppId,
}

fn main() {
    if std::env::args_os().nth(1).as_deref() == Some(keeper::KEEPER_ARG.as_ref()) {
        keeper::run();
    }
    let cli: Cli = argh::from_env();
    if let Err(e) = run(cli) {
        // Our errors already print their causes on one line; `{e:#}` would repeat them.
        eprintln!("cgsplit: error: {e}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::Provision(p) => {
            let r = cgsplit_companion::provision(p.app)?;
            if r.outcome == Outcome::RecreatedAfterFailure {
                eprintln!(
                    "cgsplit: {} had failed; reset it and created it again",
                    r.unit
                );
            }
            if let Some(expected) = &r.layout_mismatch {
                eprintln!(
                    "cgsplit: warning: {} is at {} but the fixed layout expects {}",
                    r.unit, r.control_group, expected
                );
            }
            println!("{}", r.control_group);
        }
        Cmd::Release(r) => {
            let unit = cgsplit_core::scope::scope_unit(r.app);
            match cgsplit_companion::release(r.app)? {
                Released::Stopped => {}
                Released::NotLoaded => {
                    eprintln!("cgsplit: {unit} is not loaded: nothing to release");
                }
            }
        }
    }
    Ok(())
}
