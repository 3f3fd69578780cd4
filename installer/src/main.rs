//! `cgsplit-install --game APPID [--steam-root DIR] [--account ID] [--shim PATH] [--remove]`
//!
//! Exit codes: 0 done (also when nothing needed changing); 1 error (one
//! line on stderr, nothing written to localconfig.vdf); 2 usage error.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use argh::FromArgs;
use cgsplit_install::install::{self, Options};

/// Give a Steam game its own cgroup scope: install the cgsplit compatibility
/// tool and put cgsplit-shim before %command% in the game's launch options.
/// Quit Steam first.
#[derive(FromArgs, Debug)]
struct Args {
    /// steam app id of the game, e.g. 620
    #[argh(option)]
    game: u32,
    /// steam root (default: ~/.steam/root, resolved)
    #[argh(option)]
    steam_root: Option<PathBuf>,
    /// account id or SteamID64 (default: MostRecent in config/loginusers.vdf)
    #[argh(option)]
    account: Option<String>,
    /// static cgsplit-shim to install (default: $CGSPLIT_SHIM, else cgsplit-shim beside this program)
    #[argh(option)]
    shim: Option<PathBuf>,
    /// restore the game's previous launch options
    #[argh(switch)]
    remove: bool,
}

fn options(args: Args) -> anyhow::Result<Options> {
    let base = directories::BaseDirs::new()
        .context("cannot determine the home directory ($HOME unset)")?;
    let project = directories::ProjectDirs::from("", "", "cgsplit")
        .context("cannot determine the state directory ($HOME unset)")?;
    let state_dir = project
        .state_dir()
        .context("no XDG state directory on this platform")?
        .to_path_buf();
    let mut shim_candidates = Vec::new();
    if let Some(p) = args.shim {
        shim_candidates.push(("--shim".to_owned(), p));
    }
    if let Some(p) = std::env::var_os("CGSPLIT_SHIM").filter(|v| !v.is_empty()) {
        shim_candidates.push(("$CGSPLIT_SHIM".to_owned(), PathBuf::from(p)));
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(PathBuf::from))
    {
        shim_candidates.push(("beside the installer".to_owned(), dir.join("cgsplit-shim")));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(Options {
        appid: args.game,
        steam_root: args.steam_root,
        account: args.account,
        shim_candidates,
        home: base.home_dir().to_path_buf(),
        state_dir,
        now,
    })
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let strs: Vec<&str> = argv.iter().map(String::as_str).collect();
    let args = match Args::from_args(&strs[..1], &strs[1..]) {
        Ok(a) => a,
        Err(early) => {
            return if early.status.is_ok() {
                println!("{}", early.output);
                ExitCode::SUCCESS
            } else {
                eprintln!("{}", early.output);
                ExitCode::from(2)
            };
        }
    };
    if args.game == 0 {
        eprintln!(
            "cgsplit-install: --game must be a Steam app id (a positive number), e.g. --game 620"
        );
        return ExitCode::from(2);
    }
    let remove = args.remove;
    let result = options(args).and_then(|o| {
        if remove {
            install::remove(&o)?;
        } else {
            install::install(&o)?;
        }
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Our errors already name their cause in one line; `{e:#}` would
            // repeat it.
            eprintln!("cgsplit-install: error: {e}");
            ExitCode::FAILURE
        }
    }
}
