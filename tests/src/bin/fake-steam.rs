//! Stand-in for the Steam client's game launch, for tests and the demo.
//!
//! `fake-steam --localconfig FILE --app N [--root DIR] [--tool DIR] -- GAME [ARGS…]`
//!
//! Reproduces what Steam documents (Steam compatibility tool interface,
//! "Launch options" and "Environment"; STEAM.md §3):
//! - reads `UserLocalConfigStore/Software/Valve/Steam/apps/<N>/LaunchOptions`
//!   from `localconfig.vdf` (keys matched case-insensitively, as Steam's own
//!   files vary between `Valve`/`valve`, `apps`/`Apps`);
//! - `%command%` is replaced by the game's command line; options without
//!   `%command%` are appended to it;
//! - the line is run by `/bin/sh -c`, with `SteamAppId`, `SteamGameId`,
//!   `STEAM_COMPAT_APP_ID` = N and `STEAM_COMPAT_CLIENT_INSTALL_PATH` = the root;
//! - with `--tool DIR` (a compatibility tool chosen for the game), the game
//!   command is prefixed by the tool's `toolmanifest.vdf` `commandline`: its
//!   first word is relative to DIR, `%verb%` becomes `waitforexitandrun`, and
//!   `STEAM_COMPAT_TOOL_PATHS` = DIR ("Command-line" and "Native Linux Steam
//!   games" in the interface doc).
//!
//! Exits with the shell's status (128+signal when it was killed).

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use cgsplit_core::launch::{COMMAND, sh_quote};
use keyvalues_parser::{Obj, Value};

fn usage() -> ! {
    eprintln!("usage: fake-steam --localconfig FILE --app N [--root DIR] -- GAME [ARGS…]");
    std::process::exit(2);
}

fn child<'a>(obj: &'a Obj<'_>, key: &str) -> Option<&'a Value<'a>> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .and_then(|(_, v)| v.first())
}

/// The LaunchOptions of `app` in a localconfig.vdf text, `""` when unset.
fn launch_options(text: &str, app: &str) -> Result<String, String> {
    let vdf = keyvalues_parser::parse(text)
        .map_err(|e| format!("not valid VDF: {e}"))?
        .into_vdf();
    let mut obj = vdf.value.get_obj().ok_or("root is not a block")?;
    for key in ["Software", "Valve", "Steam", "apps", app] {
        match child(obj, key).and_then(Value::get_obj) {
            Some(o) => obj = o,
            None => return Ok(String::new()),
        }
    }
    Ok(child(obj, "LaunchOptions")
        .and_then(Value::get_str)
        .unwrap_or("")
        .to_owned())
}

/// The shell fragment a v2 tool manifest's `commandline` gives for a game
/// launch: `/entry args` with the entry made absolute under `dir` and
/// `%verb%` replaced by `waitforexitandrun`.
fn tool_commandline(manifest: &str, dir: &str) -> Result<String, String> {
    let vdf = keyvalues_parser::parse(manifest)
        .map_err(|e| format!("not valid VDF: {e}"))?
        .into_vdf();
    let obj = vdf.value.get_obj().ok_or("root is not a block")?;
    let line = child(obj, "commandline")
        .and_then(Value::get_str)
        .ok_or("no manifest/commandline")?;
    if !line.starts_with('/') {
        return Err(format!("commandline {line:?} does not start with /"));
    }
    Ok(format!(
        "{}{}",
        sh_quote(dir),
        line.replace("%verb%", "waitforexitandrun")
    ))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut localconfig, mut app, mut root, mut tool) = (None, None, None, None);
    loop {
        match args.next().as_deref() {
            Some("--localconfig") => localconfig = args.next(),
            Some("--app") => app = args.next(),
            Some("--root") => root = args.next(),
            Some("--tool") => tool = args.next(),
            Some("--") => break,
            _ => usage(),
        }
    }
    let game: Vec<String> = args.collect();
    let (Some(localconfig), Some(app)) = (localconfig, app) else {
        usage()
    };
    if game.is_empty() {
        usage();
    }
    let text = std::fs::read_to_string(&localconfig).unwrap_or_else(|e| {
        eprintln!("fake-steam: cannot read {localconfig}: {e}");
        std::process::exit(1)
    });
    let options = launch_options(&text, &app).unwrap_or_else(|e| {
        eprintln!("fake-steam: {localconfig}: {e}");
        std::process::exit(1)
    });
    let mut command = game
        .iter()
        .map(|a| sh_quote(a).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    if let Some(dir) = &tool {
        let manifest = format!("{dir}/toolmanifest.vdf");
        let tool_line = std::fs::read_to_string(&manifest)
            .map_err(|e| e.to_string())
            .and_then(|t| tool_commandline(&t, dir))
            .unwrap_or_else(|e| {
                eprintln!("fake-steam: {manifest}: {e}");
                std::process::exit(1)
            });
        command = format!("{tool_line} {command}");
    }
    let line = if options.contains(COMMAND) {
        options.replace(COMMAND, &command)
    } else if options.trim().is_empty() {
        command
    } else {
        format!("{command} {options}")
    };
    eprintln!("fake-steam: app {app}: /bin/sh -c {}", sh_quote(&line));
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(&line)
        .env("SteamAppId", &app)
        .env("SteamGameId", &app)
        .env("STEAM_COMPAT_APP_ID", &app);
    if let Some(root) = root {
        cmd.env("STEAM_COMPAT_CLIENT_INSTALL_PATH", root);
    }
    if let Some(dir) = tool {
        cmd.env("STEAM_COMPAT_TOOL_PATHS", dir);
    }
    let status = cmd.status().unwrap_or_else(|e| {
        eprintln!("fake-steam: cannot run /bin/sh: {e}");
        std::process::exit(1)
    });
    std::process::exit(
        status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
    );
}

#[cfg(test)]
mod tests {
    use super::launch_options;

    #[test]
    fn reads_launch_options_case_insensitively() {
        let t = "\"UserLocalConfigStore\"\n{\n\"Apps\" { \"620\" { \"LaunchOptions\" \"decoy\" } }\n\"Software\" { \"valve\" { \"steam\" { \"Apps\" { \"620\" { \"LaunchOptions\" \"a \\\"b\\\" %command%\" } } } } }\n}\n";
        assert_eq!(launch_options(t, "620").unwrap(), "a \"b\" %command%");
        assert_eq!(launch_options(t, "400").unwrap(), "");
        assert!(launch_options("\"x\" {", "620").is_err());
    }

    #[test]
    fn tool_commandline_is_rooted_in_the_tool_dir() {
        let m =
            "\"manifest\"\n{\n\t\"version\"\t\t\"2\"\n\t\"commandline\"\t\t\"/run %verb% --\"\n}\n";
        assert_eq!(
            super::tool_commandline(m, "/a b").unwrap(),
            "'/a b'/run waitforexitandrun --"
        );
        assert!(super::tool_commandline("\"manifest\" { \"commandline\" \"run\" }", "/t").is_err());
    }
}
