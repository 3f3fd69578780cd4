//! Stand-in for the Steam client's game launch, for tests and the demo.
//!
//! `fake-steam --localconfig FILE --app N [--root DIR] [--tool DIR]
//!  [--library-tool APPID=DIR…] [--reaper PATH] -- GAME [ARGS…]`
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
//!   games" in the interface doc);
//! - a tool whose manifest has `require_tool_appid` is wrapped in that tool
//!   (given with `--library-tool APPID=DIR`, as Steam knows its runtimes by
//!   app id), recursively: the required tool is the **outer** one,
//!   `/Outer/run waitforexitandrun -- /Inner/run waitforexitandrun -- game`,
//!   and `STEAM_COMPAT_TOOL_PATHS` lists the innermost first ("Command-line",
//!   "Environment");
//! - with `--reaper PATH` the command starts with Steam's reaper, which is
//!   part of `%command%`: `PATH SteamLaunch AppId=N -- <tools> <game>`
//!   (STEAM.md §2).
//!
//! Exits with the shell's status (128+signal when it was killed).

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use cgsplit_core::launch::{COMMAND, sh_quote};
use keyvalues_parser::{Obj, Value};

fn usage() -> ! {
    eprintln!(
        "usage: fake-steam --localconfig FILE --app N [--root DIR] [--tool DIR] \
         [--library-tool APPID=DIR]... [--reaper PATH] -- GAME [ARGS…]"
    );
    std::process::exit(2);
}

fn fail(what: impl std::fmt::Display) -> ! {
    eprintln!("fake-steam: {what}");
    std::process::exit(1)
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

/// The `require_tool_appid` of a tool manifest, if any.
fn required_tool(manifest: &str) -> Result<Option<String>, String> {
    let vdf = keyvalues_parser::parse(manifest)
        .map_err(|e| format!("not valid VDF: {e}"))?
        .into_vdf();
    let obj = vdf.value.get_obj().ok_or("root is not a block")?;
    Ok(child(obj, "require_tool_appid")
        .and_then(Value::get_str)
        .map(str::to_owned))
}

/// The chain for `tool`: the tool, then the tool it requires, and so on
/// (innermost first), each with its shell fragment.
fn tool_chain(tool: &str, library: &[(String, String)]) -> Result<Vec<(String, String)>, String> {
    let mut chain: Vec<(String, String)> = Vec::new();
    let mut dir = tool.to_owned();
    loop {
        if chain.iter().any(|(d, _)| *d == dir) || chain.len() > 8 {
            return Err(format!("require_tool_appid loops at {dir}"));
        }
        let manifest = format!("{dir}/toolmanifest.vdf");
        let text = std::fs::read_to_string(&manifest).map_err(|e| format!("{manifest}: {e}"))?;
        let line = tool_commandline(&text, &dir).map_err(|e| format!("{manifest}: {e}"))?;
        let next = required_tool(&text).map_err(|e| format!("{manifest}: {e}"))?;
        chain.push((dir.clone(), line));
        let Some(appid) = next else {
            return Ok(chain);
        };
        dir = library
            .iter()
            .find(|(id, _)| *id == appid)
            .map(|(_, d)| d.clone())
            .ok_or_else(|| {
                format!("{manifest}: required tool {appid} is not installed (no --library-tool {appid}=DIR)")
            })?;
    }
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
    let (mut localconfig, mut app, mut root, mut tool, mut reaper) = (None, None, None, None, None);
    let mut library = Vec::new();
    loop {
        match args.next().as_deref() {
            Some("--localconfig") => localconfig = args.next(),
            Some("--app") => app = args.next(),
            Some("--root") => root = args.next(),
            Some("--tool") => tool = args.next(),
            Some("--reaper") => reaper = args.next(),
            Some("--library-tool") => {
                match args.next().as_deref().and_then(|v| v.split_once('=')) {
                    Some((id, dir)) => library.push((id.to_owned(), dir.to_owned())),
                    None => usage(),
                }
            }
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
    let text = std::fs::read_to_string(&localconfig)
        .unwrap_or_else(|e| fail(format_args!("cannot read {localconfig}: {e}")));
    let options =
        launch_options(&text, &app).unwrap_or_else(|e| fail(format_args!("{localconfig}: {e}")));
    let mut command = game
        .iter()
        .map(|a| sh_quote(a).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let mut tool_paths = Vec::new();
    if let Some(dir) = &tool {
        let chain = tool_chain(dir, &library).unwrap_or_else(|e| fail(e));
        // Innermost first in the variable; outermost first on the command line.
        tool_paths = chain.iter().map(|(d, _)| d.clone()).collect();
        for (_, line) in &chain {
            command = format!("{line} {command}");
        }
    }
    if let Some(reaper) = &reaper {
        command = format!("{} SteamLaunch AppId={app} -- {command}", sh_quote(reaper));
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
    if !tool_paths.is_empty() {
        cmd.env("STEAM_COMPAT_TOOL_PATHS", tool_paths.join(":"));
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| fail(format_args!("cannot run /bin/sh: {e}")));
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

    #[test]
    fn required_tool_is_the_outer_one() {
        let dir = std::env::temp_dir().join(format!("fake-steam-chain-{}", std::process::id()));
        let inner = dir.join("inner");
        let outer = dir.join("outer tool");
        std::fs::create_dir_all(&inner).unwrap();
        std::fs::create_dir_all(&outer).unwrap();
        std::fs::write(
            inner.join("toolmanifest.vdf"),
            "\"manifest\" { \"commandline\" \"/in %verb%\" \"require_tool_appid\" \"1628350\" }",
        )
        .unwrap();
        std::fs::write(
            outer.join("toolmanifest.vdf"),
            "\"manifest\" { \"commandline\" \"/_v2-entry-point --verb=%verb% --\" }",
        )
        .unwrap();
        let lib = vec![("1628350".to_owned(), outer.display().to_string())];
        let chain = super::tool_chain(inner.to_str().unwrap(), &lib).unwrap();
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[0].0, inner.display().to_string());
        assert!(
            chain[1]
                .1
                .ends_with("/_v2-entry-point --verb=waitforexitandrun --")
        );
        let err = super::tool_chain(inner.to_str().unwrap(), &[]).unwrap_err();
        assert!(
            err.contains("required tool 1628350 is not installed"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
