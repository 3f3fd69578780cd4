//! `cgsplit-netd`: the privileged helper (system D-Bus service and root CLI).
fn main() {}
