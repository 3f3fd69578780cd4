//! The shim's innermost placement in launch options (issue 7 items 2 and 5,
//! native half), on a real `systemd --user` in private namespaces with real
//! cgroup v2, real `systemd-run --user --scope` and real bubblewrap.
//!
//! Steam's `%command%` holds wrappers that relaunch the game (STEAM.md §2):
//! `steam-launch-wrapper` with `STEAM_LAUNCH_WRAPPER_SCOPE=1` moves the rest
//! into a new scope, and a runtime entry point runs it in pressure-vessel's
//! container (`/sys` read-only; with `PRESSURE_VESSEL_SYSTEMD_SCOPE=1` in a
//! new scope too). The stand-ins (`fake-launch-wrapper`, `fake-entry-point`)
//! do exactly that with `systemd-run --user --scope` and `bwrap --ro-bind /
//! / --ro-bind /sys /sys`, sharing the pid namespace (pressure-vessel's
//! default) unless a case says otherwise. The launch line is the one Steam
//! runs, through the Steam stand-in: `<shim> [OPTIONS] -- %command%`.
//!
//! Judged by the game's own report (`fake-game`: its pid and
//! `/proc/self/cgroup`, read inside the container), never by the shim's.
//!
//! Needs root, `cargo build --workspace --bins` and `cargo build-shim`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use cgsplit_core::scope::GAME_LEAF;
use cgsplit_tests::bins::{bin, testbed_bin as bin_in_testbed};
use cgsplit_tests::fixtures::{field, localconfig, report_dir, shared_tempdir};
use cgsplit_tests::testbed::{self, Testbed, sh};

/// What `steam -shutdown` writes into steam.pipe (STEAM.md §5).
const SHUTDOWN_LINE: &str = "'~/.steam/root/ubuntu12_32/steam' '-shutdown'\n";

/// The `game pid=… cgroup=…` line of a fake-game report.
fn game_line(report: &str) -> &str {
    report
        .lines()
        .find(|l| l.starts_with("game "))
        .unwrap_or_else(|| panic!("no `game` line in report:\n{report}"))
}

fn copy_exec(from: &Path, to: &Path) {
    fs::create_dir_all(to.parent().unwrap()).unwrap();
    fs::copy(from, to).unwrap();
    fs::set_permissions(to, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A Steam tree with the stand-ins under the names Steam uses, a game in a
/// directory with a space and a non-ASCII letter, and the static shim where
/// `cgsplit-install` puts it.
struct SteamTree {
    _tmp: tempfile::TempDir,
    shim: PathBuf,
    reaper: PathBuf,
    launch_wrapper: PathBuf,
    runtime: PathBuf,
    game: PathBuf,
    out: PathBuf,
    root: PathBuf,
}

impl SteamTree {
    fn new(static_shim: &Path) -> Self {
        let tmp = shared_tempdir("cgsplit-e2e-container-");
        let root = tmp.path().join("Steam");
        fs::create_dir_all(&root).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        let shim = root.join("compatibilitytools.d/cgsplit/cgsplit-shim");
        copy_exec(static_shim, &shim);
        let reaper = root.join("ubuntu12_32/reaper");
        copy_exec(Path::new(env!("CARGO_BIN_EXE_fake-reaper")), &reaper);
        let launch_wrapper = root.join("ubuntu12_32/steam-launch-wrapper");
        copy_exec(
            Path::new(env!("CARGO_BIN_EXE_fake-launch-wrapper")),
            &launch_wrapper,
        );
        let runtime = root.join("steamapps/common/SteamLinuxRuntime_sniper");
        copy_exec(
            Path::new(env!("CARGO_BIN_EXE_fake-entry-point")),
            &runtime.join("_v2-entry-point"),
        );
        fs::write(
            runtime.join("toolmanifest.vdf"),
            "\"manifest\"\n{\n\t\"version\"\t\t\"2\"\n\t\"commandline\"\t\t\"/_v2-entry-point --verb=%verb% --\"\n}\n",
        )
        .unwrap();
        let game = root.join("steamapps/common/Portal 2 ü/portal2_linux");
        copy_exec(Path::new(env!("CARGO_BIN_EXE_fake-game")), &game);
        let out = report_dir(tmp.path().join("out"));
        SteamTree {
            _tmp: tmp,
            shim,
            reaper,
            launch_wrapper,
            runtime,
            game,
            out,
            root,
        }
    }

    /// A localconfig.vdf named `name` whose launch options for app 620 are `options`.
    fn options(&self, name: &str, options: &str) -> String {
        let p = self.root.join(format!("localconfig.{name}.vdf"));
        localconfig(&p, options);
        sh(&p)
    }

    fn read(&self, name: &str) -> String {
        fs::read_to_string(self.out.join(name)).unwrap_or_default()
    }

    /// The shell lines that start the game the way Steam does, with `env`
    /// (`K=V …`) in front: `case` names the report, log and status files.
    /// `tool`: fake-steam's compatibility-tool options ([`SteamTree::runtime_tool`],
    /// [`SteamTree::cgsplit_tool`]), or empty.
    fn launch(&self, case: &str, env: &str, localconfig: &str, tool: &str) -> String {
        format!(
            "{env} FAKE_GAME_REPORT=\"$out/report.{case}\" {steam} --localconfig {localconfig} \
             --app 620 --reaper {reaper}{tool} -- {game} 'a b' '' >\"$out/launch.{case}.log\" 2>&1; \
             echo $? >\"$out/rc.{case}\"\n",
            // The path the test uid sees inside the testbed (not the checkout's).
            steam = sh(&bin_in_testbed("fake-steam")),
            reaper = sh(&self.reaper),
            game = sh(&self.game),
        )
    }

    /// fake-steam's options for a game that uses the Steam Linux Runtime (a
    /// compatibility tool whose entry point is the container stand-in).
    fn runtime_tool(&self) -> String {
        format!(" --tool {}", sh(&self.runtime))
    }

    /// fake-steam's options for cgsplit's own compatibility tool `name`
    /// (`compatibilitytools.d/<name>/`, a copy of the shim, `commandline`
    /// `/cgsplit-shim FLAGS compat %verb% --`) requiring the runtime, as the
    /// installer renders it: the runtime is the outer tool, so the
    /// compatibility tool's shim runs inside the container.
    fn cgsplit_tool(&self, name: &str, flags: &str) -> String {
        let dir = self.root.join("compatibilitytools.d").join(name);
        copy_exec(&self.shim, &dir.join("cgsplit-shim"));
        fs::write(
            dir.join("toolmanifest.vdf"),
            format!(
                "\"manifest\"\n{{\n\t\"version\"\t\t\"2\"\n\t\"commandline\"\t\t\"/cgsplit-shim {flags} compat %verb% --\"\n\t\"require_tool_appid\"\t\t\"1628350\"\n}}\n"
            ),
        )
        .unwrap();
        format!(
            " --tool {} --library-tool 1628350={}",
            sh(&dir),
            sh(&self.runtime)
        )
    }

    /// Everything a case left behind, for assertion messages.
    fn show(&self, case: &str, run: &Output) -> String {
        format!(
            "--- rc.{case}: {}--- report.{case}\n{}--- launch.{case}.log\n{}--- testbed stderr\n{}",
            self.read(&format!("rc.{case}")),
            self.read(&format!("report.{case}")),
            self.read(&format!("launch.{case}.log")),
            String::from_utf8_lossy(&run.stderr)
        )
    }

    /// The cgroup the game reported for `case`.
    fn game_cgroup(&self, case: &str, run: &Output) -> String {
        let report = self.read(&format!("report.{case}"));
        assert!(
            !report.is_empty(),
            "{case}: no report\n{}",
            self.show(case, run)
        );
        field(game_line(&report), "cgroup").to_owned()
    }

    /// The `cgsplit-shim:` lines of a case's launch log.
    fn shim_lines(&self, case: &str) -> Vec<String> {
        self.read(&format!("launch.{case}.log"))
            .lines()
            .filter(|l| l.starts_with("cgsplit-shim:"))
            .map(str::to_owned)
            .collect()
    }
}

#[test]
fn launch_options_follow_wrappers_that_relaunch_the_game() {
    let Some(bed) = Testbed::or_skip() else {
        return;
    };
    let Some(static_shim) = testbed::static_shim_or_skip() else {
        return;
    };
    bin("cgsplit");
    let t = SteamTree::new(&static_shim);
    let shim = sh(&t.shim);
    let slw = sh(&t.launch_wrapper);
    // The 2026 order: steam-launch-wrapper → reaper → (runtime) → game.
    let slw_kill = t.options("slw", &format!("{shim} --kill-steam -- {slw} -- %command%"));
    let slw_plain = t.options(
        "slw-noreinsert",
        &format!("{shim} --no-reinsert -- {slw} -- %command%"),
    );
    // reaper → runtime entry point → game.
    let plain = t.options("plain", &format!("{shim} -- %command%"));
    let out = sh(&t.out);
    let rt = t.runtime_tool();
    let compat = t.cgsplit_tool("cgsplit-sniper", "");

    let mut script = format!(
        r#"set -u
out={out}
scope=$("$CGSPLIT_BIN/cgsplit" provision --app 620 2>"$out/provision.log"); echo $? >"$out/provision.rc"
echo "$scope" >"$out/scope"
leaf="/sys/fs/cgroup$scope/game"
mkdir -p "$HOME/.steam" && mkfifo "$HOME/.steam/steam.pipe"
# Steam's side of steam.pipe: a reader that never sees EOF (it holds a write end too).
cat <>"$HOME/.steam/steam.pipe" >"$out/pipe.slw" & reader=$!
"#
    );
    script += &t.launch("slw", "STEAM_LAUNCH_WRAPPER_SCOPE=1", &slw_kill, "");
    script += "sleep 0.3; kill $reader\n";
    script += &t.launch(
        "slw-noreinsert",
        "STEAM_LAUNCH_WRAPPER_SCOPE=1",
        &slw_plain,
        "",
    );
    script += &t.launch(
        "container",
        "PRESSURE_VESSEL_FILESYSTEMS_RW=\"$out\"",
        &plain,
        &rt,
    );
    script += &t.launch(
        "container-pidns",
        "PRESSURE_VESSEL_FILESYSTEMS_RW=\"$out\" PRESSURE_VESSEL_SHARE_PID=0",
        &plain,
        &rt,
    );
    script += &t.launch(
        "container-scope",
        "PRESSURE_VESSEL_FILESYSTEMS_RW=\"$out\" PRESSURE_VESSEL_SYSTEMD_SCOPE=1",
        &plain,
        &rt,
    );
    // Issue 7 item 3: the scope directory shared read-write into the container.
    script += &t.launch(
        "container-scope-rw",
        "PRESSURE_VESSEL_FILESYSTEMS_RW=\"$out:/sys/fs/cgroup$scope\" PRESSURE_VESSEL_SYSTEMD_SCOPE=1",
        &plain,
        &rt,
    );
    // Launch options and cgsplit's own tool entry (runtime outermost): the
    // outer shim inserts nothing, the tool's shim in the container is silent.
    script += &t.launch(
        "compat",
        "PRESSURE_VESSEL_FILESYSTEMS_RW=\"$out\"",
        &plain,
        &compat,
    );
    // The premise: inside the container stand-in, cgroup.procs cannot be written.
    script += &format!(
        "{entry} --verb=run -- /bin/sh -c 'echo 0 >\"$1\"/cgroup.procs' sh \"$leaf\" \
         >\"$out/premise.log\" 2>&1; echo $? >\"$out/premise.rc\"\n",
        entry = sh(&t.runtime.join("_v2-entry-point"))
    );
    script += "\"$CGSPLIT_BIN/cgsplit\" release --app 620 >/dev/null 2>&1\n";
    let run = bed.net().run_sh(&script);
    assert!(
        run.status.success(),
        "testbed: {run:?}\n{}",
        t.read("provision.log")
    );
    assert_eq!(t.read("provision.rc"), "0\n", "{}", t.read("provision.log"));
    let leaf = format!("{}/{GAME_LEAF}", t.read("scope").trim());

    // The premise of the container cases.
    assert_ne!(t.read("premise.rc"), "0\n", "{}", t.read("premise.log"));
    assert!(
        t.read("premise.log").contains("Read-only file system"),
        "{}",
        t.read("premise.log")
    );

    // STEAM_LAUNCH_WRAPPER_SCOPE: the inner shim brings the game back.
    let case = "slw";
    assert_eq!(t.read("rc.slw"), "0\n", "{}", t.show(case, &run));
    assert_eq!(t.game_cgroup(case, &run), leaf, "{}", t.show(case, &run));
    let log = t.read("launch.slw.log");
    assert!(
        log.contains("fake-launch-wrapper: pid=") && log.contains("runs in a new scope"),
        "{}",
        t.show(case, &run)
    );
    assert_eq!(
        t.shim_lines(case)
            .iter()
            .filter(|l| l.contains("STEAM_LAUNCH_WRAPPER_SCOPE is set")
                && l.contains("re-inserts itself"))
            .count(),
        1,
        "one warning about the variable\n{}",
        t.show(case, &run)
    );
    assert!(
        t.read("report.slw").contains(r#"argv ["a b", ""]"#),
        "arguments untouched\n{}",
        t.show(case, &run)
    );
    // Only the outer instance asks Steam to quit.
    assert_eq!(t.read("pipe.slw"), SHUTDOWN_LINE, "{}", t.show(case, &run));
    assert_eq!(
        log.matches("asked Steam to shut down").count(),
        1,
        "{}",
        t.show(case, &run)
    );

    // Without the re-insertion the same launch leaves game/.
    let case = "slw-noreinsert";
    assert_eq!(t.read("rc.slw-noreinsert"), "0\n", "{}", t.show(case, &run));
    let cg = t.game_cgroup(case, &run);
    assert_ne!(cg, leaf, "{}", t.show(case, &run));
    assert!(
        cg.ends_with(".scope") && cg.contains("/run-"),
        "in systemd-run's scope: {cg}\n{}",
        t.show(case, &run)
    );

    // pressure-vessel's container, pids shared or not: already in game/
    // through the outer join; the inner instance writes nothing and is silent.
    for case in ["container", "container-pidns"] {
        assert_eq!(
            t.read(&format!("rc.{case}")),
            "0\n",
            "{}",
            t.show(case, &run)
        );
        assert_eq!(t.game_cgroup(case, &run), leaf, "{}", t.show(case, &run));
        assert_eq!(
            t.shim_lines(case),
            Vec::<String>::new(),
            "{}",
            t.show(case, &run)
        );
        let log = t.read(&format!("launch.{case}.log"));
        let steam_line = log
            .lines()
            .find(|l| l.starts_with("fake-entry-point: "))
            .unwrap_or_else(|| panic!("{}", t.show(case, &run)));
        assert!(
            steam_line.contains(&format!(
                "\"{}\", \"--app\", \"620\", \"--inner\", \"--\"",
                t.shim.display()
            )),
            "the inner shim runs inside the container, by the outer's path\n{}",
            t.show(case, &run)
        );
    }
    // cgsplit's tool entry runs right after the entry point: nothing inserted,
    // and its shim, already in game/ in the read-only container, is silent.
    let case = "compat";
    assert_eq!(t.read("rc.compat"), "0\n", "{}", t.show(case, &run));
    assert_eq!(t.game_cgroup(case, &run), leaf, "{}", t.show(case, &run));
    assert_eq!(
        t.shim_lines(case),
        Vec::<String>::new(),
        "{}",
        t.show(case, &run)
    );
    assert!(
        !t.read("launch.compat.log").contains("--inner"),
        "{}",
        t.show(case, &run)
    );
    let pid = |case: &str| field(game_line(&t.read(&format!("report.{case}"))), "pid").to_owned();
    assert_ne!(pid("container"), "2");
    assert_eq!(pid("container-pidns"), "2", "a pid namespace of its own");

    // The container moved into a new scope: the inner join fails with EROFS,
    // says so, and the game runs anyway (no --network: fail-open).
    let case = "container-scope";
    assert_eq!(
        t.read("rc.container-scope"),
        "0\n",
        "{}",
        t.show(case, &run)
    );
    assert_ne!(t.game_cgroup(case, &run), leaf, "{}", t.show(case, &run));
    let lines = t.shim_lines(case);
    assert_eq!(lines.len(), 2, "{}", t.show(case, &run));
    assert!(
        lines[0].starts_with("cgsplit-shim: PRESSURE_VESSEL_SYSTEMD_SCOPE is set"),
        "{}",
        t.show(case, &run)
    );
    assert!(
        lines[1].contains("the re-inserted shim cannot join")
            && lines[1].contains("EROFS")
            && lines[1].ends_with("running the game outside its scope"),
        "{}",
        t.show(case, &run)
    );

    // With the scope directory shared read-write, the inner join works.
    let case = "container-scope-rw";
    assert_eq!(
        t.read("rc.container-scope-rw"),
        "0\n",
        "{}",
        t.show(case, &run)
    );
    assert_eq!(t.game_cgroup(case, &run), leaf, "{}", t.show(case, &run));
    assert_eq!(
        t.shim_lines(case).len(),
        1,
        "only the variable's line\n{}",
        t.show(case, &run)
    );
}

/// `--network localhost` with the real filter (cgsplit-netd on a private
/// system bus, the companion provisioning the scope): the container that
/// stays a descendant of the outer shim runs, proven twice; a container
/// that moved into a new scope is refused by the inner shim, and the game
/// never starts (fail-closed: adoption could not satisfy the policy).
#[test]
fn network_localhost_refuses_a_container_that_left_game() {
    for b in ["cgsplit", "cgsplit-netd"] {
        bin(b);
    }
    let Some(bed) = Testbed::or_skip() else {
        return;
    };
    let Some(static_shim) = testbed::static_shim_or_skip() else {
        return;
    };
    let t = SteamTree::new(&static_shim);
    let shim = sh(&t.shim);
    let closed = t.options(
        "closed",
        &format!("{shim} --network localhost -- %command%"),
    );
    let closed_outer = t.options(
        "closed-noreinsert",
        &format!("{shim} --network localhost --no-reinsert -- %command%"),
    );
    let out = sh(&t.out);
    let mut script = format!(
        r#"set -u
out={out}
i=0; until busctl --system status io.github.cgsplit.Netd1 >/dev/null 2>&1; do i=$((i+1)); [ $i -ge 200 ] && break; sleep 0.05; done
mkdir -p "$HOME/.config/cgsplit"
printf '[games.620]\nnetwork = "localhost"\n' >"$HOME/.config/cgsplit/config.toml"
"$CGSPLIT_BIN/cgsplit" up --no-flatpak >"$out/up.log" 2>&1; echo $? >"$out/up.rc"
"#
    );
    let rw = "PRESSURE_VESSEL_FILESYSTEMS_RW=\"$out\"";
    let rt = t.runtime_tool();
    let compat = t.cgsplit_tool("cgsplit-sniper-net", "--network localhost");
    script += &t.launch("net-container", rw, &closed, &rt);
    script += &t.launch("net-compat", rw, &closed, &compat);
    let moved = format!("{rw} PRESSURE_VESSEL_SYSTEMD_SCOPE=1");
    script += &t.launch("net-moved", &moved, &closed, &rt);
    script += &t.launch("net-moved-outer", &moved, &closed_outer, &rt);
    script += "\"$CGSPLIT_BIN/cgsplit\" down >/dev/null 2>&1\n";
    let run = bed.with_netd().run_sh(&script);
    assert!(
        run.status.success(),
        "testbed: {run:?}\n{}",
        t.read("up.log")
    );
    assert_eq!(t.read("up.rc"), "0\n", "{}", t.read("up.log"));

    // Still a descendant of the outer shim: both instances proved the filter.
    let case = "net-container";
    assert_eq!(t.read("rc.net-container"), "0\n", "{}", t.show(case, &run));
    let cg = t.game_cgroup(case, &run);
    assert!(
        cg.ends_with("/games.slice/cgsplit-620.scope/game"),
        "{cg}\n{}",
        t.show(case, &run)
    );
    assert_eq!(
        t.shim_lines(case),
        Vec::<String>::new(),
        "{}",
        t.show(case, &run)
    );

    // With cgsplit's tool entry carrying the policy too: its shim in the
    // read-only container is in game/ already and proves the filter there.
    let case = "net-compat";
    assert_eq!(t.read("rc.net-compat"), "0\n", "{}", t.show(case, &run));
    assert!(
        t.game_cgroup(case, &run)
            .ends_with("/games.slice/cgsplit-620.scope/game"),
        "{}",
        t.show(case, &run)
    );
    assert_eq!(
        t.shim_lines(case),
        Vec::<String>::new(),
        "{}",
        t.show(case, &run)
    );

    // Moved out and unable to join back: refused, the game never ran.
    let case = "net-moved";
    assert_eq!(t.read("rc.net-moved"), "4\n", "{}", t.show(case, &run));
    assert_eq!(t.read("report.net-moved"), "", "the game must not run");
    let lines = t.shim_lines(case);
    assert_eq!(lines.len(), 2, "{}", t.show(case, &run));
    assert!(
        lines[1].starts_with("cgsplit-shim: refusing to run the game: after Steam's wrapper the game is outside game/, and the re-inserted shim cannot join")
            && lines[1].contains("EROFS"),
        "{}",
        t.show(case, &run)
    );

    // Why the inner instance is needed: the outer alone proved the filter in
    // game/, and the game then ran outside it.
    let case = "net-moved-outer";
    assert_eq!(
        t.read("rc.net-moved-outer"),
        "0\n",
        "{}",
        t.show(case, &run)
    );
    assert!(
        !t.game_cgroup(case, &run)
            .ends_with("/cgsplit-620.scope/game"),
        "{}",
        t.show(case, &run)
    );
}
