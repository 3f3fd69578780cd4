//! Finding processes of the game that are not in its `game/` leaf: every
//! visible process whose environment carries `SteamAppId=<N>`.
//!
//! Steam sets `SteamAppId` only for the game itself ("The Steamworks API
//! assumes that every process with this environment variable set is part of
//! the actual game", Steam compatibility tool interface, "Environment"). In
//! flatpak Steam, pressure-vessel relaunches the game through the portal in a
//! subsandbox that shares our pid namespace, outside `game/` (issue 7), so
//! the leaf alone cannot tell when the game has ended.
//!
//! Not counted, because they are waiting for the shim and not the game:
//! the shim itself, its ancestors (Steam's reaper, `sh -c`, `gamescope`,
//! `gamemoderun` written before the shim…), and the other descendants of
//! an ancestor that carries the variable, reached without passing through
//! the shim (`gamescope`'s Xwayland). Everything the game itself forked is a
//! descendant of the shim, which is a child subreaper, so it is counted.

use std::collections::HashMap;
use std::fs;

/// One visible process, as read from `/proc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proc {
    /// Its pid (in our pid namespace).
    pub pid: u32,
    /// Its parent's pid; 0 when the parent is outside our pid namespace.
    pub ppid: u32,
    /// Whether its environment holds `SteamAppId=<N>` exactly.
    pub has_app: bool,
}

/// The processes of `procs` that belong to the running game (see module
/// docs), given the shim's own pid `me`. Sorted by pid.
pub fn blockers(procs: &[Proc], me: u32) -> Vec<u32> {
    let by_pid: HashMap<u32, &Proc> = procs.iter().map(|p| (p.pid, p)).collect();
    let parent = |pid: u32| by_pid.get(&pid).map_or(0, |p| p.ppid);
    let mut ancestors = Vec::new();
    let mut p = parent(me);
    while p != 0 && !ancestors.contains(&p) {
        ancestors.push(p);
        p = parent(p);
    }
    let mut out: Vec<u32> = procs
        .iter()
        .filter(|p| p.has_app && p.pid != me && !ancestors.contains(&p.pid))
        .filter(|p| {
            // Walk up: the first ancestor of ours met decides.
            let mut q = p.ppid;
            let mut steps = 0;
            while q != 0 && steps < 4096 {
                if q == me {
                    return true;
                }
                if ancestors.contains(&q) {
                    return !by_pid.get(&q).is_some_and(|a| a.has_app);
                }
                q = parent(q);
                steps += 1;
            }
            true
        })
        .map(|p| p.pid)
        .collect();
    out.sort_unstable();
    out
}

/// The parent pid from the text of `/proc/<pid>/stat`: the field after the
/// state, which follows the last `)` (the command name may hold `)` and spaces; proc(5)).
pub fn parse_ppid(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// Whether a `/proc/<pid>/environ` blob holds exactly `SteamAppId=<app>`.
pub fn environ_has_app(environ: &[u8], app: u32) -> bool {
    let want = format!("SteamAppId={app}");
    environ.split(|&b| b == 0).any(|kv| kv == want.as_bytes())
}

/// Every process visible in `/proc` (those that vanish while reading are
/// skipped; an unreadable environment, e.g. another user's, counts as not
/// carrying the variable).
pub fn scan(app: u32) -> Vec<Proc> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let e = e.ok()?;
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let stat = fs::read_to_string(e.path().join("stat")).ok()?;
        let ppid = parse_ppid(&stat)?;
        let has_app =
            fs::read(e.path().join("environ")).is_ok_and(|env| environ_has_app(&env, app));
        Some(Proc { pid, ppid, has_app })
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pid: u32, ppid: u32, has_app: bool) -> Proc {
        Proc { pid, ppid, has_app }
    }

    #[test]
    fn ppid_from_stat() {
        assert_eq!(parse_ppid("42 (bash) S 7 42 42 0 -1"), Some(7));
        assert_eq!(parse_ppid("42 (a) b) c) R 1 2 3"), Some(1));
        assert_eq!(parse_ppid("42 (x"), None);
    }

    #[test]
    fn environ_match_is_exact() {
        assert!(environ_has_app(b"A=1\0SteamAppId=620\0B=2\0", 620));
        assert!(!environ_has_app(b"SteamAppId=6200\0", 620));
        assert!(!environ_has_app(b"XSteamAppId=620\0", 620));
        assert!(!environ_has_app(b"", 620));
    }

    #[test]
    fn who_blocks() {
        // 1 init ─ 10 steam ─ 20 reaper(app) ─ 30 sh -c(app) ─ 40 gamescope(app) ─┬ 50 shim(app, me)
        //                                                                          └ 45 Xwayland(app)
        //   50 ─ 60 orphan of the game(app)
        //   1 ─ 70 portal-relaunched game(app)   ─ 80 its child(app)
        //   1 ─ 90 unrelated process (no app)
        //   0 ─ 99 process whose parent is outside our pid namespace (app)
        //   10 ─ 95 something Steam started with the variable (app)
        let procs = [
            p(1, 0, false),
            p(10, 1, false),
            p(20, 10, true),
            p(30, 20, true),
            p(40, 30, true),
            p(45, 40, true),
            p(50, 40, true),
            p(60, 50, true),
            p(70, 1, true),
            p(80, 70, true),
            p(90, 1, false),
            p(99, 0, true),
            p(95, 10, true),
        ];
        assert_eq!(blockers(&procs, 50), vec![60, 70, 80, 95, 99]);
        // Nothing left.
        assert_eq!(blockers(&procs[..8], 50), vec![60]);
        assert_eq!(blockers(&procs[..7], 50), Vec::<u32>::new());
    }

    #[test]
    fn parent_cycles_do_not_hang() {
        let procs = [p(5, 6, true), p(6, 5, true), p(50, 1, false)];
        assert_eq!(blockers(&procs, 50), vec![5, 6]);
    }
}
