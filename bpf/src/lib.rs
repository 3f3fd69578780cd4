//! cgroup eBPF network filter: programs in `bpf/c/`, loaded with aya.
