// SPDX-License-Identifier: MIT OR Apache-2.0
//
// cgsplit network filter: keep the processes of a restricted cgroup (a game's
// scope and everything below it) on loopback, plus a per-scope allow-list.
//
// One program set is loaded once and attached (through bpf_link, which is
// always multi-attach) to every restricted scope. The hooks see the LEAF
// cgroup (the game's `game/` leaf, or deeper), in the global hierarchy (not
// the caller's cgroup namespace), so each program walks the ancestors of the
// socket's cgroup (skb) or the calling task's cgroup (sock_addr) from the
// root (level 0) down and takes the DEEPEST ancestor that is present in
// `scopes`: no level is hard-coded and nested test hierarchies work. A program that runs but finds no scope entry denies
// (fail closed: it is only ever attached to restricted scopes).
//
// Decisions, in order:
//   1. loopback passes (IPv4 127.0.0.0/8, IPv6 ::1, IPv4-mapped
//      ::ffff:127.0.0.0/104) before any map lookup (loopback fast path);
//   2. the scope's allow-list passes (LPM tries keyed by scope id + address;
//      an IPv4-mapped IPv6 address is judged as its IPv4 address, like
//      cgsplit_core::policy::NetworkPolicy::allows);
//   3. everything else: skb programs drop (return 0), sock_addr programs
//      refuse (return 0: connect()/sendmsg() fail with EPERM at once, instead
//      of a SYN-retry hang).
// Refusals are counted per scope and reported on the `events` ring buffer,
// rate-limited per scope (GCRA, EVENT_BURST events, then one per
// EVENT_INTERVAL_NS) so a flood cannot fill it.
//
// Return codes: kernel Documentation/bpf (BPF_PROG_TYPE_CGROUP_SKB: 1 pass,
// 0 drop; BPF_PROG_TYPE_CGROUP_SOCK_ADDR: 1 proceed, 0 reject with EPERM).

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

// Deepest cgroup level searched for a restricted scope (root is level 0).
// A desktop scope sits at ~6; the tests' nested hierarchy at ~10.
#define MAX_DEPTH 32

#define EVENT_BURST 16
#define EVENT_INTERVAL_NS (125ULL * 1000 * 1000) // 8 events/s sustained

// Hook ids in `struct event.hook` (mirrored in bpf/src/lib.rs `Hook`).
enum hook {
	HOOK_INGRESS = 1,
	HOOK_EGRESS = 2,
	HOOK_CONNECT4 = 3,
	HOOK_CONNECT6 = 4,
	HOOK_SENDMSG4 = 5,
	HOOK_SENDMSG6 = 6,
};

// Value of `scopes` (mirrored in bpf/src/lib.rs `ScopeValue`). The counters
// are updated with atomic adds; userspace never rewrites an entry.
struct scope {
	__u32 uid;  // owner of the scope's cgroup directory at restrict time
	__u32 _pad;
	__u64 ingress_packets;
	__u64 ingress_bytes;
	__u64 egress_packets;
	__u64 egress_bytes;
	__u64 connect_refused;
	__u64 sendmsg_refused;
	__u64 events_suppressed; // by the rate limit
	__u64 events_lost;       // ring buffer full
	__u64 event_tat_ns;      // GCRA theoretical arrival time
};

// LPM trie keys: 64 bits of scope id (native byte order; always matched in
// full) followed by the address in network byte order.
struct allow4_key {
	__u32 prefixlen; // 64 + address prefix
	__u8 data[8 + 4];
};

struct allow6_key {
	__u32 prefixlen; // 64 + address prefix
	__u8 data[8 + 16];
};

// A refused destination (mirrored in bpf/src/lib.rs `RawEvent`).
struct event {
	__u64 scope;
	__u64 ts_ns;    // CLOCK_MONOTONIC (bpf_ktime_get_ns)
	__u32 pid;      // tgid; 0 from skb programs (softirq context)
	__u8 hook;      // enum hook
	__u8 family;    // 4 or 6
	__u8 protocol;  // IPPROTO_*
	__u8 _pad;
	__u8 addr[16];  // remote address, network order; IPv4 in the first 4
	__u16 port;     // remote port, host order; 0 when unknown
	__u8 _pad2[6];
	char comm[16];  // empty from skb programs
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64); // cgroup id of the restricted scope
	__type(value, struct scope);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} scopes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__type(key, struct allow4_key);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} allow4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__type(key, struct allow6_key);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} allow6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} events SEC(".maps");

static __always_inline int v4_is_loopback(__u32 be_addr)
{
	return (bpf_ntohl(be_addr) >> 24) == 127;
}

// IPv6 address as four network-order words.
static __always_inline int v6_is_loopback(const __u32 w[4])
{
	if (w[0] != 0 || w[1] != 0)
		return 0;
	if (w[2] == 0 && w[3] == bpf_htonl(1))
		return 1; // ::1
	if (w[2] == bpf_htonl(0xffff))
		return v4_is_loopback(w[3]); // ::ffff:127.0.0.0/104
	return 0;
}

static __always_inline int v6_is_v4_mapped(const __u32 w[4])
{
	return w[0] == 0 && w[1] == 0 && w[2] == bpf_htonl(0xffff);
}

static __always_inline int allowed4(__u64 scope, __u32 be_addr)
{
	struct allow4_key k = { .prefixlen = 64 + 32 };
	__builtin_memcpy(k.data, &scope, 8);
	__builtin_memcpy(k.data + 8, &be_addr, 4);
	return bpf_map_lookup_elem(&allow4, &k) != NULL;
}

static __always_inline int allowed6(__u64 scope, const __u32 w[4])
{
	if (v6_is_v4_mapped(w))
		return allowed4(scope, w[3]);
	struct allow6_key k = { .prefixlen = 64 + 128 };
	__builtin_memcpy(k.data, &scope, 8);
	__builtin_memcpy(k.data + 8, w, 16);
	return bpf_map_lookup_elem(&allow6, &k) != NULL;
}

// GCRA: true when an event may be emitted now.
static __always_inline int event_allowed(struct scope *s)
{
	__u64 now = bpf_ktime_get_ns();
	__u64 tat = s->event_tat_ns;
	if (tat < now)
		tat = now;
	if (tat - now > EVENT_BURST * EVENT_INTERVAL_NS) {
		__sync_fetch_and_add(&s->events_suppressed, 1);
		return 0;
	}
	// A race between CPUs may let an extra event through; harmless.
	s->event_tat_ns = tat + EVENT_INTERVAL_NS;
	return 1;
}

static __always_inline void emit(struct scope *s, __u64 scope_id, __u8 hook, __u8 family,
				 __u8 protocol, const void *addr, __u16 port, int with_task)
{
	if (!event_allowed(s))
		return;
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		__sync_fetch_and_add(&s->events_lost, 1);
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->scope = scope_id;
	e->ts_ns = bpf_ktime_get_ns();
	e->hook = hook;
	e->family = family;
	e->protocol = protocol;
	e->port = port;
	if (family == 4)
		__builtin_memcpy(e->addr, addr, 4);
	else
		__builtin_memcpy(e->addr, addr, 16);
	if (with_task) {
		e->pid = bpf_get_current_pid_tgid() >> 32;
		bpf_get_current_comm(e->comm, sizeof(e->comm));
	}
	bpf_ringbuf_submit(e, 0);
}

// ---- cgroup_skb ----------------------------------------------------------

// The ancestor walks are global (non-inlined) functions: the verifier then
// checks each loop once instead of once per path through its caller, which
// keeps the cold load of all six programs well under 100 ms (with the loops
// inlined it took ~120 ms on 6.18).

// The id of the deepest restricted ancestor of the skb's socket cgroup, or 0.
__attribute__((noinline)) __u64 skb_scope_id(struct __sk_buff *skb)
{
	__u64 found = 0;
	for (int level = 0; level < MAX_DEPTH; level++) {
		__u64 cg = bpf_skb_ancestor_cgroup_id(skb, level);
		if (!cg)
			break;
		if (bpf_map_lookup_elem(&scopes, &cg))
			found = cg;
	}
	return found;
}

static __always_inline int skb_filter(struct __sk_buff *skb, int ingress)
{
	__u8 family = 0, protocol = 0;
	__u32 w[4] = {};
	__u16 port = 0;
	__u32 l4 = 0;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;
		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) < 0)
			goto drop_unknown;
		w[0] = ingress ? ip.saddr : ip.daddr;
		if (v4_is_loopback(w[0]))
			return 1;
		family = 4;
		protocol = ip.protocol;
		l4 = ip.ihl * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)) < 0)
			goto drop_unknown;
		__builtin_memcpy(w, ingress ? &ip6.saddr : &ip6.daddr, 16);
		if (v6_is_loopback(w))
			return 1;
		family = 6;
		protocol = ip6.nexthdr;
		l4 = sizeof(ip6);
	}

drop_unknown:;
	__u64 id = skb_scope_id(skb);
	struct scope *s = bpf_map_lookup_elem(&scopes, &id);
	if (!s)
		return 0; // attached but no scope entry: fail closed
	if (family == 4 && allowed4(id, w[0]))
		return 1;
	if (family == 6 && allowed6(id, w))
		return 1;

	if (ingress) {
		__sync_fetch_and_add(&s->ingress_packets, 1);
		__sync_fetch_and_add(&s->ingress_bytes, skb->len);
	} else {
		__sync_fetch_and_add(&s->egress_packets, 1);
		__sync_fetch_and_add(&s->egress_bytes, skb->len);
	}
	if (family && (protocol == IPPROTO_TCP || protocol == IPPROTO_UDP)) {
		__u16 ports[2];
		if (bpf_skb_load_bytes(skb, l4, ports, sizeof(ports)) == 0)
			port = bpf_ntohs(ingress ? ports[0] : ports[1]);
	}
	if (family)
		emit(s, id, ingress ? HOOK_INGRESS : HOOK_EGRESS, family, protocol, w, port, 0);
	return 0;
}

SEC("cgroup_skb/ingress")
int cgsplit_ingress(struct __sk_buff *skb)
{
	return skb_filter(skb, 1);
}

SEC("cgroup_skb/egress")
int cgsplit_egress(struct __sk_buff *skb)
{
	return skb_filter(skb, 0);
}

// ---- cgroup/connect* and cgroup/sendmsg* ---------------------------------

// sock_addr programs cannot call bpf_sk_ancestor_cgroup_id (the verifier
// refuses it for BPF_PROG_TYPE_CGROUP_SOCK_ADDR on 6.18), so they use the
// calling task's cgroup. The program runs because the SOCKET's cgroup is
// under a restricted scope; a task outside every scope using such a socket
// finds no entry and is refused (fail closed).
//
// The id of the deepest restricted ancestor of the calling task's cgroup, or 0.
__attribute__((noinline)) __u64 task_scope_id(void)
{
	__u64 found = 0;
	for (int level = 0; level < MAX_DEPTH; level++) {
		__u64 cg = bpf_get_current_ancestor_cgroup_id(level);
		if (!cg)
			break;
		if (bpf_map_lookup_elem(&scopes, &cg))
			found = cg;
	}
	return found;
}

static __always_inline int refuse(struct bpf_sock_addr *ctx, struct scope *s, __u64 id,
				  __u8 hook, __u8 family, const void *addr)
{
	if (hook == HOOK_SENDMSG4 || hook == HOOK_SENDMSG6)
		__sync_fetch_and_add(&s->sendmsg_refused, 1);
	else
		__sync_fetch_and_add(&s->connect_refused, 1);
	emit(s, id, hook, family, ctx->protocol, addr, bpf_ntohs((__u16)ctx->user_port), 1);
	return 0;
}

static __always_inline int sock_filter4(struct bpf_sock_addr *ctx, __u8 hook)
{
	__u32 a = ctx->user_ip4;
	if (v4_is_loopback(a))
		return 1;
	__u64 id = task_scope_id();
	struct scope *s = bpf_map_lookup_elem(&scopes, &id);
	if (!s)
		return 0;
	if (allowed4(id, a))
		return 1;
	return refuse(ctx, s, id, hook, 4, &a);
}

static __always_inline int sock_filter6(struct bpf_sock_addr *ctx, __u8 hook)
{
	__u32 w[4];
	w[0] = ctx->user_ip6[0];
	w[1] = ctx->user_ip6[1];
	w[2] = ctx->user_ip6[2];
	w[3] = ctx->user_ip6[3];
	if (v6_is_loopback(w))
		return 1;
	__u64 id = task_scope_id();
	struct scope *s = bpf_map_lookup_elem(&scopes, &id);
	if (!s)
		return 0;
	if (allowed6(id, w))
		return 1;
	return refuse(ctx, s, id, hook, 6, w);
}

SEC("cgroup/connect4")
int cgsplit_connect4(struct bpf_sock_addr *ctx)
{
	return sock_filter4(ctx, HOOK_CONNECT4);
}

SEC("cgroup/connect6")
int cgsplit_connect6(struct bpf_sock_addr *ctx)
{
	return sock_filter6(ctx, HOOK_CONNECT6);
}

SEC("cgroup/sendmsg4")
int cgsplit_sendmsg4(struct bpf_sock_addr *ctx)
{
	return sock_filter4(ctx, HOOK_SENDMSG4);
}

SEC("cgroup/sendmsg6")
int cgsplit_sendmsg6(struct bpf_sock_addr *ctx)
{
	return sock_filter6(ctx, HOOK_SENDMSG6);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
