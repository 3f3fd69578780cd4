//! `<root>/appcache/appinfo.vdf`: Steam's binary cache of app info, read
//! only to learn one app's `common/oslist` (e.g. `windows,linux`), which
//! decides whether `--set-compat-tool` may map a linux→linux tool to it.
//!
//! Format (SteamDatabase/SteamAppInfo README, "appinfo.vdf"; all integers
//! little-endian):
//! - header: `u32` magic, `u32` universe; magic `0x07564427` (v27),
//!   `0x07564428` (v28: adds a binary SHA-1 per app), `0x07564429` (v29: as
//!   v28, then an `i64` offset of a string table; keys in the app data are
//!   then `u32` indexes into it);
//! - apps until an app id of 0: `u32` app id, `u32` size of the rest of the
//!   entry, `u32` info state, `u32` last updated, `u64` PICS token, 20-byte
//!   text SHA-1, `u32` change number, (v28+) 20-byte binary SHA-1, then the
//!   app's binary KeyValues;
//! - binary KeyValues: a type byte, a key (NUL-terminated, or a `u32` string
//!   index in v29), a value: `0x00` nested map up to `0x08`, `0x01` string
//!   (NUL-terminated), `0x02` int32, `0x03` float32, `0x04` pointer (4
//!   bytes), `0x05` wide string (NUL-terminated UTF-16), `0x06` colour (4),
//!   `0x07` uint64, `0x0A` int64;
//! - v29 string table at the offset: `u32` count, then that many
//!   NUL-terminated strings.
//!
//! Why our own reader: the crates that read this format (new-vdf-parser,
//! steam-vdf-parser) decode every app of a file that is often 100+ MB;
//! here one app is found by skipping entries by their size field and only
//! its few KB are decoded.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// `appinfo.vdf` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AppInfoError {
    /// The file could not be read.
    #[error("cannot read: {0}")]
    Io(#[from] io::Error),
    /// The magic number is not one of the known versions.
    #[error("unknown appinfo.vdf version (magic {0:#010x}; known: 0x07564427..0x07564429)")]
    UnknownVersion(u32),
    /// The data does not have the documented shape.
    #[error("malformed at byte {offset}: {what}")]
    Malformed {
        /// Byte offset in the file (or in the app's data).
        offset: u64,
        /// What was wrong.
        what: String,
    },
}

const V27: u32 = 0x0756_4427;
const V28: u32 = 0x0756_4428;
const V29: u32 = 0x0756_4429;

fn u32_at<R: Read>(r: &mut R) -> io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

/// The `common/oslist` of `appid` from the appinfo.vdf at `path`:
/// `Ok(None)` when the app has no entry or no oslist.
///
/// Errors: [`AppInfoError`] for unreadable or malformed files.
pub fn oslist(path: &Path, appid: u32) -> Result<Option<String>, AppInfoError> {
    let mut r = BufReader::new(File::open(path)?);
    let magic = u32_at(&mut r)?;
    if !matches!(magic, V27..=V29) {
        return Err(AppInfoError::UnknownVersion(magic));
    }
    let _universe = u32_at(&mut r)?;
    let mut strings: Option<Vec<Vec<u8>>> = None;
    if magic == V29 {
        let mut b = [0u8; 8];
        r.read_exact(&mut b)?;
        let table = i64::from_le_bytes(b);
        let here = r.stream_position()?;
        let table = u64::try_from(table).map_err(|_| AppInfoError::Malformed {
            offset: 8,
            what: format!("negative string table offset {table}"),
        })?;
        r.seek(SeekFrom::Start(table))?;
        let count = u32_at(&mut r)?;
        let mut all = Vec::new();
        let mut rest = Vec::new();
        r.read_to_end(&mut rest)?;
        let mut it = rest.split(|&b| b == 0);
        for _ in 0..count {
            match it.next() {
                Some(s) => all.push(s.to_vec()),
                None => {
                    return Err(AppInfoError::Malformed {
                        offset: table,
                        what: format!("string table shorter than its count {count}"),
                    });
                }
            }
        }
        strings = Some(all);
        r.seek(SeekFrom::Start(here))?;
    }
    let head_len: u32 = 4 + 4 + 8 + 20 + 4 + if magic >= V28 { 20 } else { 0 };
    loop {
        let at = r.stream_position()?;
        let id = match u32_at(&mut r) {
            Ok(id) => id,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if id == 0 {
            return Ok(None);
        }
        let size = u32_at(&mut r)?;
        if size < head_len {
            return Err(AppInfoError::Malformed {
                offset: at,
                what: format!("app {id}: entry size {size} is smaller than its header"),
            });
        }
        if id != appid {
            r.seek_relative(i64::from(size))?;
            continue;
        }
        let mut entry = vec![0u8; size as usize];
        r.read_exact(&mut entry)?;
        let kv = &entry[head_len as usize..];
        let mut p = Parser {
            data: kv,
            at: 0,
            strings: strings.as_deref(),
        };
        return p.find_oslist().map_err(|what| AppInfoError::Malformed {
            offset: at + 8 + u64::from(head_len) + p.at as u64,
            what: format!("app {id}: {what}"),
        });
    }
}

struct Parser<'a> {
    data: &'a [u8],
    at: usize,
    strings: Option<&'a [Vec<u8>]>,
}

impl Parser<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or("truncated value")?;
        let s = &self.data[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn cstr(&mut self) -> Result<Vec<u8>, String> {
        let rest = &self.data[self.at.min(self.data.len())..];
        let n = memchr::memchr(0, rest).ok_or("unterminated string")?;
        let s = rest[..n].to_vec();
        self.at += n + 1;
        Ok(s)
    }

    fn key(&mut self) -> Result<Vec<u8>, String> {
        match self.strings {
            None => self.cstr(),
            Some(table) => {
                let b = self.take(4)?;
                let i = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
                table
                    .get(i)
                    .cloned()
                    .ok_or_else(|| format!("string index {i} outside the table"))
            }
        }
    }

    /// Walks the app's map; returns `appinfo/common/oslist` (or
    /// `common/oslist` at the top, as some dumps have it).
    fn find_oslist(&mut self) -> Result<Option<String>, String> {
        let mut path: Vec<Vec<u8>> = Vec::new();
        let mut found = None;
        loop {
            let ty = self.take(1)?[0];
            if ty == 0x08 {
                if path.pop().is_none() {
                    return Ok(found);
                }
                continue;
            }
            if path.len() > 64 {
                return Err("maps nested deeper than 64".into());
            }
            let key = self.key()?;
            match ty {
                0x00 => path.push(key),
                0x01 => {
                    let v = self.cstr()?;
                    let in_common = path
                        .last()
                        .is_some_and(|p| p.eq_ignore_ascii_case(b"common"));
                    if in_common && key.eq_ignore_ascii_case(b"oslist") && found.is_none() {
                        found = Some(String::from_utf8_lossy(&v).into_owned());
                    }
                }
                0x02 | 0x03 | 0x04 | 0x06 => {
                    self.take(4)?;
                }
                0x07 | 0x0A => {
                    self.take(8)?;
                }
                0x05 => loop {
                    let c = self.take(2)?;
                    if c == [0, 0] {
                        break;
                    }
                },
                other => return Err(format!("unknown value type {other:#04x}")),
            }
        }
    }
}

/// True when an oslist such as `windows,linux` names linux.
pub fn has_linux(oslist: &str) -> bool {
    oslist
        .split(',')
        .any(|o| o.trim().eq_ignore_ascii_case("linux"))
}

/// Writes an appinfo.vdf of `version` (27, 28 or 29) holding `apps`
/// (app id, `common/oslist`, `common/name`) in the format above. For tests
/// and the demo tree; Steam's own files carry more keys per app.
pub fn render(version: u32, apps: &[(u32, &str, &str)]) -> Vec<u8> {
    let magic = match version {
        27 => V27,
        28 => V28,
        _ => V29,
    };
    let mut strings: Vec<&str> = Vec::new();
    let mut key = |out: &mut Vec<u8>, k: &'static str| {
        if magic == V29 {
            let i = strings.iter().position(|s| *s == k).unwrap_or_else(|| {
                strings.push(k);
                strings.len() - 1
            });
            out.extend_from_slice(&(i as u32).to_le_bytes());
        } else {
            out.extend_from_slice(k.as_bytes());
            out.push(0);
        }
    };
    let mut body = Vec::new();
    for &(id, os, name) in apps {
        let mut kv = Vec::new();
        kv.push(0x00);
        key(&mut kv, "appinfo");
        kv.push(0x02);
        key(&mut kv, "appid");
        kv.extend_from_slice(&id.to_le_bytes());
        kv.push(0x00);
        key(&mut kv, "common");
        for (k, v) in [("name", name), ("oslist", os)] {
            kv.push(0x01);
            key(&mut kv, k);
            kv.extend_from_slice(v.as_bytes());
            kv.push(0);
        }
        kv.push(0x07);
        key(&mut kv, "gameid");
        kv.extend_from_slice(&u64::from(id).to_le_bytes());
        kv.extend_from_slice(&[0x08, 0x08, 0x08]);
        let mut head = Vec::new();
        head.extend_from_slice(&2u32.to_le_bytes()); // info state
        head.extend_from_slice(&1_700_000_000u32.to_le_bytes());
        head.extend_from_slice(&0u64.to_le_bytes());
        head.extend_from_slice(&[0xAB; 20]);
        head.extend_from_slice(&12345u32.to_le_bytes());
        if magic >= V28 {
            head.extend_from_slice(&[0xCD; 20]);
        }
        body.extend_from_slice(&id.to_le_bytes());
        body.extend_from_slice(&((head.len() + kv.len()) as u32).to_le_bytes());
        body.extend_from_slice(&head);
        body.extend_from_slice(&kv);
    }
    body.extend_from_slice(&0u32.to_le_bytes());
    let mut out = Vec::new();
    out.extend_from_slice(&magic.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    if magic == V29 {
        let table_at = 16 + body.len() as i64;
        out.extend_from_slice(&table_at.to_le_bytes());
        out.extend_from_slice(&body);
        out.extend_from_slice(&(strings.len() as u32).to_le_bytes());
        for s in &strings {
            out.extend_from_slice(s.as_bytes());
            out.push(0);
        }
    } else {
        out.extend_from_slice(&body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_oslist_in_every_version_and_skips_other_apps() {
        let d = tempfile::tempdir().unwrap();
        for v in [27, 28, 29] {
            let p = d.path().join(format!("appinfo{v}.vdf"));
            std::fs::write(
                &p,
                render(
                    v,
                    &[
                        (10, "windows", "Counter-Strike"),
                        (620, "windows,macos,linux", "Portal 2"),
                        (1091500, "windows", "Cyberpunk 2077"),
                    ],
                ),
            )
            .unwrap();
            assert_eq!(
                oslist(&p, 620).unwrap().as_deref(),
                Some("windows,macos,linux"),
                "v{v}"
            );
            assert_eq!(oslist(&p, 1091500).unwrap().as_deref(), Some("windows"));
            assert_eq!(oslist(&p, 7).unwrap(), None);
        }
        assert!(has_linux("windows,macos,linux"));
        assert!(!has_linux("windows"));
        assert!(!has_linux(""));
    }

    #[test]
    fn malformed_files_are_errors_not_panics() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("appinfo.vdf");
        std::fs::write(&p, b"\x27\x44\x56\x06rest").unwrap();
        assert!(matches!(
            oslist(&p, 1),
            Err(AppInfoError::UnknownVersion(0x0656_4427))
        ));
        let good = render(29, &[(620, "linux", "x")]);
        for cut in [10, 20, 40, good.len() - 20, good.len() - 3] {
            std::fs::write(&p, &good[..cut]).unwrap();
            let _ = oslist(&p, 620);
        }
        let mut bad = render(28, &[(620, "linux", "x")]);
        let kv_start = 8 + 8 + 4 + 4 + 8 + 20 + 4 + 20;
        bad[kv_start] = 0x42;
        std::fs::write(&p, &bad).unwrap();
        assert!(matches!(
            oslist(&p, 620),
            Err(AppInfoError::Malformed { .. })
        ));
    }
}
