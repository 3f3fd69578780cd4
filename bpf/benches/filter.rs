//! Benchmarks of the network filter (work in progress: see bpf/README.md).

fn main() {}
