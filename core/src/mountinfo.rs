//! Where a cgroup is on disk, from `/proc/self/mountinfo` text.
//!
//! A cgroup v2 path such as `/user.slice/…/cgsplit-620.scope/game` can be
//! reached through any cgroup2 mount whose *root* (field 4 of mountinfo,
//! proc(5)) is a prefix of it:
//!
//! - pure v2 systems: root `/` at `/sys/fs/cgroup`;
//! - hybrid systems: root `/` at `/sys/fs/cgroup/unified`;
//! - inside flatpak, after `--filesystem=<dir>`: only the granted directory is
//!   bind-mounted, at its host path, and mountinfo shows its root as the
//!   granted cgroup (e.g. `/user.slice/…/games.slice`).
//!
//! So the rule is: take a cgroup2 mount whose root is an ancestor of (or equal
//! to) the wanted cgroup, and append the rest of the path to its mount point.

use std::path::PathBuf;

/// One cgroup2 line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup2Mount {
    /// The cgroup this mount shows at its mount point, e.g. `/` or
    /// `/user.slice/user-1000.slice/user@1000.service/games.slice`.
    pub root: String,
    /// Where it is mounted, e.g. `/sys/fs/cgroup/unified`.
    pub mount_point: PathBuf,
}

/// Every cgroup2 mount in mountinfo `text`, in file order. Lines that are not
/// cgroup2 or do not have mountinfo's shape are skipped.
pub fn cgroup2_mounts(text: &str) -> Vec<Cgroup2Mount> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Cgroup2Mount> {
    let (pre, post) = line.split_once(" - ")?;
    if post.split(' ').next()? != "cgroup2" {
        return None;
    }
    let mut f = pre.split(' ');
    let root = unescape(f.nth(3)?);
    let mount_point = PathBuf::from(unescape(f.next()?));
    Some(Cgroup2Mount { root, mount_point })
}

/// Undoes mountinfo's octal escapes (`\040` space, `\011` tab, `\012` newline,
/// `\134` backslash; proc(5), kernel `seq_file` `mangle_path`).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = b[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
            if let Ok(v) = u8::try_from(v) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The directory through which `cgroup` (absolute in the cgroup hierarchy)
/// is reachable, given mountinfo `text`; `None` when no cgroup2 mount shows it.
///
/// When several mounts show it, the one with the deepest root wins (in a
/// flatpak sandbox that is the granted directory; elsewhere they are the same
/// cgroup seen twice).
pub fn cgroup_dir(text: &str, cgroup: &str) -> Option<PathBuf> {
    let want = normalize(cgroup);
    cgroup2_mounts(text)
        .into_iter()
        .filter_map(|m| {
            let root = normalize(&m.root);
            let rest = if root == "/" {
                want.strip_prefix('/')
            } else if want == root {
                Some("")
            } else {
                want.strip_prefix(root.as_str())?.strip_prefix('/')
            }?;
            let dir = if rest.is_empty() {
                m.mount_point.clone()
            } else {
                m.mount_point.join(rest)
            };
            Some((root.len(), dir))
        })
        .max_by_key(|(depth, _)| *depth)
        .map(|(_, dir)| dir)
}

fn normalize(p: &str) -> String {
    let parts: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Read off this project's test VMs (Debian 12, hybrid hierarchy).
    const HYBRID: &str = "\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 25 0:24 / /sys/fs/cgroup rw,relatime shared:8 - tmpfs tmpfs rw,mode=755
27 26 0:25 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw
28 26 0:26 / /sys/fs/cgroup/memory rw,relatime shared:10 - cgroup cgroup rw,memory
";

    const GAME: &str =
        "/user.slice/user-1000.slice/user@1000.service/games.slice/cgsplit-620.scope/game";

    #[test]
    fn hybrid_uses_unified() {
        assert_eq!(
            cgroup_dir(HYBRID, GAME).unwrap(),
            PathBuf::from(format!("/sys/fs/cgroup/unified{GAME}"))
        );
    }

    #[test]
    fn pure_v2() {
        let t = "30 1 0:27 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
        assert_eq!(
            cgroup_dir(t, GAME).unwrap(),
            PathBuf::from(format!("/sys/fs/cgroup{GAME}"))
        );
    }

    #[test]
    fn flatpak_grant_of_the_slice() {
        // bwrap bind-mounts the granted directory at its host path.
        let t = "\
120 100 0:27 /user.slice/user-1000.slice/user@1000.service/games.slice /sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/games.slice rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate
";
        assert_eq!(
            cgroup_dir(t, GAME).unwrap(),
            PathBuf::from(format!("/sys/fs/cgroup{GAME}"))
        );
        // Something outside the grant is not reachable.
        assert_eq!(
            cgroup_dir(t, "/user.slice/user-1000.slice/user@1000.service/app.slice"),
            None
        );
        // A sibling whose name merely starts with the root is not inside it.
        assert_eq!(
            cgroup_dir(
                t,
                "/user.slice/user-1000.slice/user@1000.service/games.slice2/x"
            ),
            None
        );
    }

    #[test]
    fn deepest_root_wins_and_escapes_are_undone() {
        let t = "\
27 26 0:25 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
90 27 0:25 /a\\040b /mnt/with\\040space rw - cgroup2 cgroup2 rw
";
        assert_eq!(
            cgroup_dir(t, "/a b/c").unwrap(),
            PathBuf::from("/mnt/with space/c")
        );
        assert_eq!(
            cgroup_dir(t, "/x").unwrap(),
            PathBuf::from("/sys/fs/cgroup/unified/x")
        );
    }

    #[test]
    fn no_cgroup2_mount() {
        let t = "28 26 0:26 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\nnot a mountinfo line\n";
        assert!(cgroup2_mounts(t).is_empty());
        assert_eq!(cgroup_dir(t, GAME), None);
        assert_eq!(cgroup_dir("", GAME), None);
    }
}
