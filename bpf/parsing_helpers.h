/* SPDX-License-Identifier: (MIT OR Apache-2.0) */
/*
 * Bounds-checked header parsers in the style of xdp-tutorial's parsing_helpers.h.
 *
 * Byte-order contract: every value that comes from the packet keeps its network byte order
 * and its __be16/__be32 type; callers convert once with bpf_ntohs/bpf_ntohl. Each parse_*
 * helper advances the cursor past the header and returns 0, or returns -1 (cursor unchanged)
 * when the header does not fit in [pos, data_end) or is malformed.
 */
#ifndef FANOUT_PARSING_HELPERS_H
#define FANOUT_PARSING_HELPERS_H

#include <linux/types.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>

struct hdr_cursor {
	void *pos;
};

static __always_inline int parse_ethhdr(struct hdr_cursor *nh, void *data_end,
					 struct ethhdr **ethhdr)
{
	struct ethhdr *eth = nh->pos;

	if ((void *)(eth + 1) > data_end)
		return -1;
	nh->pos = eth + 1;
	*ethhdr = eth;
	return 0;
}

/* Accepts only version 4 with 20 <= IHL*4, the whole header (options included) in bounds. */
static __always_inline int parse_iphdr(struct hdr_cursor *nh, void *data_end,
					struct iphdr **iphdr)
{
	struct iphdr *iph = nh->pos;
	int hdrsize;

	if ((void *)(iph + 1) > data_end)
		return -1;
	if (iph->version != 4)
		return -1;
	hdrsize = iph->ihl * 4;
	if (hdrsize < (int)sizeof(*iph))
		return -1;
	if (nh->pos + hdrsize > data_end)
		return -1;
	nh->pos += hdrsize;
	*iphdr = iph;
	return 0;
}

static __always_inline int parse_udphdr(struct hdr_cursor *nh, void *data_end,
					 struct udphdr **udphdr)
{
	struct udphdr *h = nh->pos;

	if ((void *)(h + 1) > data_end)
		return -1;
	nh->pos = h + 1;
	*udphdr = h;
	return 0;
}

#endif /* FANOUT_PARSING_HELPERS_H */
