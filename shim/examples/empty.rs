//! The size baseline for the shim (issue 6 "Size and speed"): an empty
//! program built exactly like the shim, `cargo build-shim --example empty`
//! (same profile, target and `+crt-static`), so
//! `x86_64-unknown-linux-gnu/shim/examples/empty` is the static-pie floor the
//! shim's size is compared with.

fn main() {}
