//! Builds the cgroup eBPF programs in `c/` with clang (`-O2 -g -target bpf`)
//! into `$OUT_DIR/cgsplit.bpf.o`, which `src/lib.rs` embeds.
//!
//! The multiarch include directory is needed for `<asm/types.h>` on Debian;
//! `-g` gives the BTF that BTF-defined `.maps` need (reference SYSTEM.md §4).
//! `CGSPLIT_CLANG` overrides the compiler (default `clang-14`, then `clang`).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "c/cgsplit.bpf.c";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-env-changed=CGSPLIT_CLANG");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("cgsplit.bpf.o");
    let candidates: Vec<String> = match std::env::var("CGSPLIT_CLANG") {
        Ok(c) => vec![c],
        Err(_) => vec!["clang-14".into(), "clang".into()],
    };
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into());
    let multiarch = format!("/usr/include/{arch}-linux-gnu");
    for clang in &candidates {
        let status = Command::new(clang)
            .args(["-O2", "-g", "-Wall", "-Werror", "-target", "bpf"])
            .arg(format!("-I{multiarch}"))
            .args(["-c", src, "-o"])
            .arg(&out)
            .status();
        match status {
            Ok(s) if s.success() => return,
            Ok(s) => panic!(
                "cgsplit-bpf: `{clang} -target bpf -c {src}` failed ({s}); see the compiler output above \
                 (missing <bpf/bpf_helpers.h>: install the Debian package libbpf-dev; missing \
                 <asm/types.h>: linux-libc-dev)"
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("cgsplit-bpf: cannot run {clang}: {e}"),
        }
    }
    panic!(
        "cgsplit-bpf: no clang found (tried {}); the eBPF programs in bpf/c are built with clang: \
         install the Debian package clang-14 (scripts/setup does) or set CGSPLIT_CLANG",
        candidates.join(", ")
    );
}
