/* SPDX-License-Identifier: (MIT OR Apache-2.0) */
/*
 * Definitions shared by the XDP program (fanout_xdp.bpf.c) and the Rust loader
 * (dataplane/src/bpf.rs, which sees them through the libbpf-cargo skeleton).
 *
 * Layout rules: fixed-width types only, no bool, no implicit padding. The Rust side
 * asserts the sizes it depends on.
 */
#ifndef FANOUT_SHARED_H
#define FANOUT_SHARED_H

/* Number of XSKMAP slots: one per receive queue the data plane may bind. */
#define FANOUT_MAX_QUEUES 64

/*
 * Per-CPU counters, indexed by this enum. Every received frame bumps RX_TOTAL and exactly
 * one of the other counters, so RX_TOTAL == sum(other counters) holds per CPU.
 */
enum fanout_counter {
	FANOUT_CNT_RX_TOTAL = 0,
	/* IPv4 multicast data (224/4 outside 224.0.0.0/24, not IGMP) handed to AF_XDP. */
	FANOUT_CNT_REDIRECT_MCAST = 1,
	/* UDP to the overlay data port handed to AF_XDP. */
	FANOUT_CNT_REDIRECT_OVERLAY = 2,
	/* Ours, but no AF_XDP socket in the XSKMAP slot of this queue: passed to the kernel. */
	FANOUT_CNT_REDIRECT_FAILED = 3,
	/* Control traffic left to the kernel: IGMP (incl. DVMRP), 224.0.0.0/24. */
	FANOUT_CNT_PASS_CONTROL = 4,
	/* Everything else that is well-formed: ARP, non-IPv4, unicast not to the overlay port. */
	FANOUT_CNT_PASS_OTHER = 5,
	/* Frames too short or with a bad IPv4 header length: fail open to the kernel. */
	FANOUT_CNT_PASS_MALFORMED = 6,
	FANOUT_CNT__MAX = 7,
};

#endif /* FANOUT_SHARED_H */
