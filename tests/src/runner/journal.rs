//! A stand-in for journald's native socket, so `systemd --user` (which has no
//! stderr) can tell us why it failed.
//!
//! systemd is started with `SYSTEMD_LOG_TARGET=journal`; it then sends one
//! datagram per message to `/run/systemd/journal/socket` in the native journal
//! protocol (systemd `docs/JOURNAL_NATIVE_PROTOCOL.md`): fields `NAME=value\n`,
//! or `NAME\n` + little-endian u64 length + raw value + `\n` for values with
//! newlines. We keep the last [`KEEP`] messages in memory (printed when
//! systemd dies) and append every one to the `--log` file if given.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::Error;

/// Where journald's native socket lives.
pub const SOCKET: &str = "/run/systemd/journal/socket";

/// How many recent messages are kept for error reports.
pub const KEEP: usize = 60;

/// Parses one native-protocol datagram into `(field, value)` pairs.
/// Malformed trailing bytes are ignored.
pub fn parse_datagram(mut b: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let Some(nl) = b.iter().position(|&c| c == b'\n') else {
            break;
        };
        let line = &b[..nl];
        if let Some(eq) = line.iter().position(|&c| c == b'=') {
            out.push((
                String::from_utf8_lossy(&line[..eq]).into_owned(),
                line[eq + 1..].to_vec(),
            ));
            b = &b[nl + 1..];
        } else {
            let rest = &b[nl + 1..];
            if rest.len() < 8 {
                break;
            }
            let len = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes")) as usize;
            let Some(value) = rest.get(8..8 + len) else {
                break;
            };
            out.push((String::from_utf8_lossy(line).into_owned(), value.to_vec()));
            b = rest.get(8 + len + 1..).unwrap_or(&[]);
        }
    }
    out
}

/// One line for a datagram: `ident[pid]: message`, or `None` without `MESSAGE`.
pub fn format_entry(fields: &[(String, Vec<u8>)]) -> Option<String> {
    let get = |k: &str| {
        fields
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    let msg = get("MESSAGE")?;
    let ident = get("SYSLOG_IDENTIFIER").unwrap_or_else(|| "?".into());
    let pid = get("_PID")
        .or_else(|| get("SYSLOG_PID"))
        .map(|p| format!("[{p}]"))
        .unwrap_or_default();
    Some(format!("{ident}{pid}: {msg}"))
}

/// The recent messages, shared with the listener thread.
#[derive(Clone, Default)]
pub struct Tail(Arc<Mutex<VecDeque<String>>>);

impl Tail {
    /// The kept messages, oldest first, one a line.
    pub fn text(&self) -> String {
        let q = self.0.lock().expect("journal tail lock");
        if q.is_empty() {
            "(none received)".into()
        } else {
            q.iter().cloned().collect::<Vec<_>>().join("\n")
        }
    }

    fn push(&self, line: String) {
        let mut q = self.0.lock().expect("journal tail lock");
        if q.len() == KEEP {
            q.pop_front();
        }
        q.push_back(line);
    }
}

/// Binds [`SOCKET`] (mode 0666, so the uid can send) and starts a thread that
/// records every message. The thread lives until the process exits.
pub fn listen(log: Option<&Path>) -> Result<Tail, Error> {
    let path = Path::new(SOCKET);
    let dir = path.parent().expect("socket has a parent");
    fs::create_dir_all(dir).map_err(Error::io("create directory", dir))?;
    let sock = UnixDatagram::bind(path).map_err(Error::io("bind", path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o666))
        .map_err(Error::io("chmod", path))?;
    let mut file = match log {
        Some(p) => Some(
            fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(Error::io("open log", p))?,
        ),
        None => None,
    };
    let tail = Tail::default();
    let t = tail.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 * 1024];
        while let Ok(n) = sock.recv(&mut buf) {
            if let Some(line) = format_entry(&parse_datagram(&buf[..n])) {
                if let Some(f) = file.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
                t.push(line);
            }
        }
        drop(file.take().map(|f: File| f.sync_all()));
    });
    Ok(tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_binary_fields() {
        let mut d = b"PRIORITY=6\nSYSLOG_IDENTIFIER=systemd\nMESSAGE\n".to_vec();
        let msg = b"two\nlines";
        d.extend_from_slice(&(msg.len() as u64).to_le_bytes());
        d.extend_from_slice(msg);
        d.extend_from_slice(b"\nSYSLOG_PID=7\n");
        let f = parse_datagram(&d);
        assert_eq!(f.len(), 4);
        assert_eq!(f[2], ("MESSAGE".into(), msg.to_vec()));
        assert_eq!(format_entry(&f).unwrap(), "systemd[7]: two\nlines");
    }

    #[test]
    fn truncated_binary_field_is_dropped() {
        let f = parse_datagram(b"A=1\nMESSAGE\n\x05\x00");
        assert_eq!(f, vec![("A".to_string(), b"1".to_vec())]);
        assert_eq!(format_entry(&f), None);
    }
}
