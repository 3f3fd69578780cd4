//! `cgsplit-install --game APPID | --remove --game APPID | --uninstall | --list`
//!
//! Exit codes: 0 done (also when nothing needed changing); 1 error (one
//! line on stderr, no file written); 2 usage error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use argh::FromArgs;

mod user_unit;
use cgsplit_install::install::{self, Action, Options};

/// Give a Steam game its own cgroup scope: install the cgsplit compatibility
/// tool into every Steam root found and put cgsplit-shim before %command% in
/// the game's launch options. Quit Steam first (or pass --stop-steam).
#[derive(FromArgs, Debug)]
struct Args {
    /// steam app id of the game, e.g. 620
    #[argh(option)]
    game: Option<String>,
    /// steam root (repeatable; default: every root found: ~/.steam/root,
    /// ~/.local/share/Steam, ~/.steam/debian-installation, flatpak, snap)
    #[argh(option)]
    steam_root: Vec<PathBuf>,
    /// account id or SteamID64 (default: MostRecent in config/loginusers.vdf)
    #[argh(option)]
    account: Option<String>,
    /// edit every account in userdata/
    #[argh(switch)]
    all_accounts: bool,
    /// static cgsplit-shim to install (default: $CGSPLIT_SHIM, else cgsplit-shim beside this program)
    #[argh(option)]
    shim: Option<PathBuf>,
    /// extra flag for the shim on the game's launch line (repeatable), after
    /// those from $XDG_CONFIG_HOME/cgsplit/config.toml
    #[argh(option)]
    shim_flag: Vec<String>,
    /// map the cgsplit tool to the game in config/config.vdf CompatToolMapping
    /// instead of wrapping launch options (native Linux games only)
    #[argh(switch)]
    set_compat_tool: bool,
    /// with --set-compat-tool: the game is a native Linux game even if
    /// appcache/appinfo.vdf does not say so
    #[argh(switch)]
    native: bool,
    /// ask a running Steam to shut down (through its steam.pipe) and wait
    #[argh(switch)]
    stop_steam: bool,
    /// seconds --stop-steam waits for Steam to exit (default 60)
    #[argh(option, default = "60")]
    stop_timeout: u64,
    /// print a unified diff of every file that would change; change nothing
    #[argh(switch)]
    dry_run: bool,
    /// restore the game's previous launch options (and compat tool mapping)
    #[argh(switch)]
    remove: bool,
    /// undo everything cgsplit recorded and remove the tool from every root
    #[argh(switch)]
    uninstall: bool,
    /// list the Steam roots and accounts found, one row each
    #[argh(switch)]
    list: bool,
    /// with --game: also install and enable the cgsplit.service user unit (`cgsplit up` at login); --uninstall removes it
    #[argh(switch)]
    user_unit: bool,
}

/// Parses `--game`: a Steam app id, a positive 32-bit number.
fn appid(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u64>() {
        Ok(0) => {
            Err("--game 0 is not an app id; give the game's Steam app id, e.g. --game 620".into())
        }
        Ok(n) if n > u64::from(u32::MAX) => Err(format!(
            "--game {s}: app ids are 32-bit numbers (at most {})",
            u32::MAX
        )),
        Ok(n) => Ok(n as u32),
        Err(_) => Err(format!(
            "--game {s:?} is not a number; give the game's Steam app id (the number in its store URL), e.g. --game 620"
        )),
    }
}

fn shim_flags(app: u32, extra: &[String]) -> anyhow::Result<Vec<String>> {
    let mut flags = Vec::new();
    if let Some(app) = cgsplit_core::AppId::new(app) {
        let path = cgsplit_config::Config::default_path()?;
        let config = cgsplit_config::Config::load(&path)?;
        flags = config.game(app).shim_flags();
        if !flags.is_empty() {
            println!(
                "Shim flags for app {app} from {}: {}",
                path.display(),
                flags.join(" ")
            );
        }
    }
    flags.extend(extra.iter().cloned());
    Ok(flags)
}

fn options(args: Args) -> anyhow::Result<Options> {
    let action = match (&args.game, args.remove, args.uninstall, args.list) {
        (Some(g), false, false, false) => Action::Install(appid(g).map_err(anyhow::Error::msg)?),
        (Some(g), true, false, false) => Action::Remove(appid(g).map_err(anyhow::Error::msg)?),
        (None, false, true, false) => Action::Uninstall,
        (None, false, false, true) => Action::List,
        _ => anyhow::bail!(
            "give exactly one of: --game N, --remove --game N, --uninstall, --list (see --help)"
        ),
    };
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
    let shim_flags = match action {
        Action::Install(app) => shim_flags(app, &args.shim_flag)?,
        _ => Vec::new(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(Options {
        action,
        steam_roots: args.steam_root,
        account: args.account,
        all_accounts: args.all_accounts,
        shim_candidates,
        shim_flags,
        set_compat_tool: args.set_compat_tool,
        native: args.native,
        stop_steam: args.stop_steam,
        stop_timeout: Duration::from_secs(args.stop_timeout),
        dry_run: args.dry_run,
        home: base.home_dir().to_path_buf(),
        data_dir: Some(base.data_dir().to_path_buf()),
        state_dir,
        now,
    })
}

fn main() -> ExitCode {
    // `cgsplit-install --dry-run | head`: end quietly on a closed pipe, as
    // other command-line tools do, instead of panicking in println!.
    // SAFETY: restoring the default disposition of SIGPIPE before any
    // other thread exists.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    };
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
    if args.account.is_some() && args.all_accounts {
        eprintln!("cgsplit-install: --account and --all-accounts exclude each other");
        return ExitCode::from(2);
    }
    let (unit, uninstall) = (args.user_unit, args.uninstall);
    let opts = match options(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("cgsplit-install: error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let hook = || match (unit, uninstall) {
        _ if opts.dry_run => Ok(()),
        (_, true) => user_unit::remove(),
        (true, false) => user_unit::install_beside_exe().map(|m| eprintln!("cgsplit-install: {m}")),
        _ => Ok(()),
    };
    match install::run(&opts)
        .map_err(anyhow::Error::from)
        .and_then(|()| hook())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Our errors already name their cause in one line.
            eprintln!("cgsplit-install: error: {e}");
            ExitCode::FAILURE
        }
    }
}
