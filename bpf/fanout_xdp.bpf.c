/* SPDX-License-Identifier: (MIT OR Apache-2.0) */
/*
 * fanout's XDP steering program.
 *
 * It decides, per received frame, whether the frame belongs to the AF_XDP data plane or to the
 * kernel. It never modifies or drops a frame:
 *
 *   IPv4 multicast data (224/4 outside 224.0.0.0/24, protocol != IGMP) ─┐
 *   UDP to the overlay data port (rodata overlay_port, 0 = off)         ─┴─► XSKMAP[rx_queue]
 *   everything else (IGMP and DVMRP, 224.0.0.x link-state/control, ARP,
 *   unicast, the overlay control port, malformed frames)               ───► XDP_PASS
 *
 * Fragments of multicast datagrams are redirected too, so the data plane sees and counts them
 * (it does not reassemble: they are dropped there as "fragment"). For the overlay port only the
 * first fragment carries the UDP header; it is redirected (and counted there), later fragments
 * cannot be recognised and go to the kernel.
 *
 * Anything this program does not fully understand goes to the kernel (fail open): a broken
 * parser must not black-hole ARP or the routing protocols.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "fanout_shared.h"
#include "parsing_helpers.h"

/* Host byte order; set by the loader before load(). 0 disables overlay steering. */
const volatile __u16 overlay_port = 0;

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, FANOUT_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FANOUT_CNT__MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);

	/* Per-CPU slot: no other writer, a plain increment is race-free. */
	if (v)
		*v += 1;
}

static __always_inline int pass(__u32 idx)
{
	count(idx);
	return XDP_PASS;
}

static __always_inline int redirect(struct xdp_md *ctx, __u32 idx)
{
	/*
	 * With XDP_PASS as the flags' low bits, bpf_redirect_map() returns XDP_PASS instead of
	 * XDP_ABORTED when the slot of this queue holds no socket (data plane not started or
	 * bound to another queue): the frame then still reaches the kernel.
	 */
	int action = bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);

	count(action == XDP_REDIRECT ? idx : FANOUT_CNT_REDIRECT_FAILED);
	return action;
}

static __always_inline int fanout_steer(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct hdr_cursor nh = { .pos = data };
	struct ethhdr *eth;
	struct iphdr *iph;
	struct udphdr *udph;
	__u32 daddr;

	count(FANOUT_CNT_RX_TOTAL);

	if (parse_ethhdr(&nh, data_end, &eth) < 0)
		return pass(FANOUT_CNT_PASS_MALFORMED);
	/* VLAN-tagged frames are not ours: fanout ports are untagged. */
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return pass(FANOUT_CNT_PASS_OTHER);
	if (parse_iphdr(&nh, data_end, &iph) < 0)
		return pass(FANOUT_CNT_PASS_MALFORMED);

	daddr = bpf_ntohl(iph->daddr);
	if ((daddr & 0xf0000000) == 0xe0000000) {
		/* 224.0.0.0/24 is link-local control (DVMRP probes, OSPF, ...); never forwarded. */
		if ((daddr & 0xffffff00) == 0xe0000000)
			return pass(FANOUT_CNT_PASS_CONTROL);
		/* IGMP (and DVMRP, which is IGMP type 0x13) is for the control plane. */
		if (iph->protocol == IPPROTO_IGMP)
			return pass(FANOUT_CNT_PASS_CONTROL);
		return redirect(ctx, FANOUT_CNT_REDIRECT_MCAST);
	}

	if (overlay_port == 0 || iph->protocol != IPPROTO_UDP)
		return pass(FANOUT_CNT_PASS_OTHER);
	/* A non-first fragment has no UDP header: whatever sits there is payload. */
	if (iph->frag_off & bpf_htons(0x1fff))
		return pass(FANOUT_CNT_PASS_OTHER);
	if (parse_udphdr(&nh, data_end, &udph) < 0)
		return pass(FANOUT_CNT_PASS_MALFORMED);
	/* Only the port is matched; user space checks the destination is one of ours. */
	if (udph->dest != bpf_htons(overlay_port))
		return pass(FANOUT_CNT_PASS_OTHER);
	return redirect(ctx, FANOUT_CNT_REDIRECT_OVERLAY);
}

SEC("xdp")
int fanout_xdp(struct xdp_md *ctx)
{
	return fanout_steer(ctx);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
