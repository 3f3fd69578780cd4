//! Is a file a statically linked ELF executable? Pure: bytes in.
//!
//! A dynamically linked executable names its loader in a `PT_INTERP`
//! program header (ELF gABI, "Program Header"; `PT_INTERP = 3`). Static and
//! static-pie binaries have none (static-pie still has `PT_DYNAMIC`, which
//! is why that header is not the test). The shim must be static: inside the
//! Steam flatpak no host libraries or loader exist.

/// Why the bytes are not a usable static executable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    /// No `\x7fELF` magic.
    #[error("not an ELF executable")]
    NotElf,
    /// Headers point past the end of the file or are malformed.
    #[error("truncated or malformed ELF headers")]
    Malformed,
    /// Not `ET_EXEC`/`ET_DYN`.
    #[error("ELF type {0} is not an executable")]
    NotExecutable(u16),
    /// Has a `PT_INTERP` header naming this loader.
    #[error("dynamically linked (PT_INTERP {0:?})")]
    Dynamic(String),
    /// Built for another CPU.
    #[error("built for ELF machine {found}, this host needs {expected}")]
    WrongMachine {
        /// `e_machine` in the file.
        found: u16,
        /// `e_machine` of this build.
        expected: u16,
    },
}

const PT_INTERP: u32 = 3;

fn host_machine() -> Option<u16> {
    match std::env::consts::ARCH {
        "x86_64" => Some(62),
        "x86" => Some(3),
        "aarch64" => Some(183),
        "arm" => Some(40),
        "riscv64" => Some(243),
        _ => None,
    }
}

/// Checks that `bytes` is an ELF executable for this host's CPU without a
/// `PT_INTERP` program header.
///
/// Errors: see [`ElfError`].
pub fn check_static(bytes: &[u8]) -> Result<(), ElfError> {
    if bytes.len() < 16 || &bytes[..4] != b"\x7fELF" {
        return Err(ElfError::NotElf);
    }
    let is64 = match bytes[4] {
        1 => false,
        2 => true,
        _ => return Err(ElfError::Malformed),
    };
    let le = match bytes[5] {
        1 => true,
        2 => false,
        _ => return Err(ElfError::Malformed),
    };
    let get = |off: usize, n: usize| -> Result<u64, ElfError> {
        let b = bytes.get(off..off + n).ok_or(ElfError::Malformed)?;
        let mut v = 0u64;
        for i in 0..n {
            let byte = if le { b[n - 1 - i] } else { b[i] };
            v = (v << 8) | u64::from(byte);
        }
        Ok(v)
    };
    let e_type = get(16, 2)? as u16;
    if e_type != 2 && e_type != 3 {
        return Err(ElfError::NotExecutable(e_type));
    }
    let machine = get(18, 2)? as u16;
    if let Some(expected) = host_machine()
        && machine != expected
    {
        return Err(ElfError::WrongMachine {
            found: machine,
            expected,
        });
    }
    let (phoff, phentsize, phnum) = if is64 {
        (get(32, 8)?, get(54, 2)?, get(56, 2)?)
    } else {
        (get(28, 4)?, get(42, 2)?, get(44, 2)?)
    };
    let min = if is64 { 56 } else { 32 };
    if phnum == 0 || phentsize < min {
        return Err(ElfError::Malformed);
    }
    for i in 0..phnum {
        let at = usize::try_from(phoff + i * phentsize).map_err(|_| ElfError::Malformed)?;
        if get(at, 4)? as u32 == PT_INTERP {
            let (off, size) = if is64 {
                (get(at + 8, 8)?, get(at + 32, 8)?)
            } else {
                (get(at + 4, 4)?, get(at + 16, 4)?)
            };
            let interp = bytes
                .get(off as usize..(off + size) as usize)
                .map(|b| String::from_utf8_lossy(b).trim_end_matches('\0').to_owned())
                .unwrap_or_default();
            return Err(ElfError::Dynamic(interp));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal little-endian ELF64 header plus program headers of `types`.
    fn elf64(machine: u16, types: &[u32]) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[16..18].copy_from_slice(&3u16.to_le_bytes());
        b[18..20].copy_from_slice(&machine.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&(types.len() as u16).to_le_bytes());
        for &t in types {
            let mut ph = vec![0u8; 56];
            ph[..4].copy_from_slice(&t.to_le_bytes());
            b.extend(ph);
        }
        b
    }

    #[test]
    fn headers() {
        let m = host_machine().unwrap();
        assert_eq!(check_static(&elf64(m, &[1, 2])), Ok(()));
        assert!(matches!(
            check_static(&elf64(m, &[6, 3, 1])),
            Err(ElfError::Dynamic(_))
        ));
        assert_eq!(check_static(b"#!/bin/sh\necho hi\n"), Err(ElfError::NotElf));
        let mut cut = elf64(m, &[1, 1]);
        cut.truncate(100);
        assert_eq!(check_static(&cut), Err(ElfError::Malformed));
        assert!(matches!(
            check_static(&elf64(m + 1, &[1])),
            Err(ElfError::WrongMachine { .. })
        ));
    }

    #[test]
    fn host_binaries() {
        // /bin/true on Debian is dynamically linked.
        if let Ok(b) = std::fs::read("/bin/true") {
            assert!(
                matches!(check_static(&b), Err(ElfError::Dynamic(ref i)) if i.contains("ld-")),
                "{:?}",
                check_static(&b)
            );
        }
        // The test binary itself is dynamic too.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(matches!(check_static(&me), Err(ElfError::Dynamic(_))));
    }
}
