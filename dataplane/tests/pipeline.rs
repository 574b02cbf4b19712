//! The forwarding pipeline on loopback ports: replication, RPF, TTL, (*,G) fallback, punts,
//! every drop reason, overlay encapsulation round trips and authentication.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use dataplane::iface::{Interface, InterfaceTable, PortId};
use dataplane::loopback::testing::{interfaces, UdpFrame};
use dataplane::loopback::LoopbackPorts;
use dataplane::mfib::{
    IfIndex, MfibHandle, MfibRoute, MfibUpdate, Neighbor, Oif, OverlayRoute, Punt,
};
use dataplane::overlay::{OverlayConfig, OverlayKey, AUTH_TAG_LEN, HEADER_LEN};
use dataplane::pipeline::{Outcome, Pipeline, PipelineConfig};
use dataplane::stats::{DropReason, LocalStats};
use wire::ethernet::{EtherType, EthernetAddress, EthernetFrame};
use wire::ipv4::{Ipv4Packet, Protocol};
use wire::overlay::{OverlayPacket, OverlayRepr, DATA_PORT};
use wire::udp::UdpPacket;

const S: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
const G: Ipv4Addr = Ipv4Addr::new(239, 1, 2, 3);
const NOW: Duration = Duration::from_secs(1);

/// One router: its interfaces, MFIB, pipeline, loopback TX and counters.
struct Node {
    ifaces: InterfaceTable,
    mfib: MfibHandle,
    pipeline: Pipeline,
    tx: LoopbackPorts,
    stats: LocalStats,
}

impl Node {
    fn new(ifaces: InterfaceTable, config: &PipelineConfig) -> Self {
        Self {
            pipeline: Pipeline::new(config, ifaces.clone()).unwrap(),
            ifaces,
            mfib: MfibHandle::new(),
            tx: LoopbackPorts::new(64, 2048),
            stats: LocalStats::new(),
        }
    }

    fn with_ports(n: usize) -> Self {
        Self::new(interfaces(n), &PipelineConfig::default())
    }

    fn apply(&self, updates: &[MfibUpdate]) {
        self.mfib.apply(updates, &self.ifaces).unwrap();
    }

    fn rx(&mut self, port: u16, frame: &[u8]) -> Outcome {
        let mfib = self.mfib.load();
        self.pipeline.process(&mfib, PortId(port), frame, NOW, &mut self.tx, &mut self.stats)
    }

    fn drops(&self, reason: DropReason) -> u64 {
        self.stats.total_drops(reason)
    }

    fn ifindex(&self, port: u16) -> IfIndex {
        self.ifaces.get(PortId(port)).unwrap().ifindex
    }

    fn addr(&self, port: u16) -> Ipv4Addr {
        self.ifaces.get(PortId(port)).unwrap().ipv4
    }

    fn mac(&self, port: u16) -> EthernetAddress {
        self.ifaces.get(PortId(port)).unwrap().mac
    }

    fn route(&self, source: Option<Ipv4Addr>, iif: u16, oifs: &[u16]) -> MfibRoute {
        MfibRoute {
            source,
            group: G,
            iif: self.ifindex(iif),
            oifs: oifs
                .iter()
                .map(|p| Oif { ifindex: self.ifindex(*p), ttl_threshold: 1 })
                .collect(),
            overlay_next_hops: vec![],
        }
    }
}

fn frame(ttl: u8, payload: usize) -> Vec<u8> {
    UdpFrame::multicast(S, G, ttl, payload).build()
}

fn ip_of(frame: &[u8]) -> Ipv4Packet<&[u8]> {
    let eth = EthernetFrame::new_checked(frame).unwrap();
    assert_eq!(eth.ethertype(), EtherType::Ipv4);
    Ipv4Packet::new_checked(&frame[14..]).unwrap()
}

/// Asserts `out` is `original` forwarded once more: TTL one lower, valid checksum, every other
/// IPv4 byte and the payload identical.
fn assert_forwarded_datagram(original_ip: &[u8], out_ip: &[u8], ttl_drop: u8) {
    let orig = Ipv4Packet::new_checked(original_ip).unwrap();
    let out = Ipv4Packet::new_checked(out_ip).unwrap();
    assert!(out.verify_checksum(), "checksum after TTL decrement");
    assert_eq!(out.ttl(), orig.ttl() - ttl_drop);
    let len = usize::from(orig.total_len());
    assert_eq!(out_ip.len(), len, "no padding or trailing bytes");
    // Bytes 8 (TTL) and 10..12 (checksum) change; everything else is carried unchanged.
    for (i, (a, b)) in original_ip[..len].iter().zip(out_ip).enumerate() {
        if i != 8 && i != 10 && i != 11 {
            assert_eq!(a, b, "IPv4 datagram byte {i} changed");
        }
    }
}

#[test]
fn replication_to_n_oifs_gives_n_correct_frames() {
    for fanout in [1u16, 2, 4, 7] {
        let mut node = Node::with_ports(usize::from(fanout) + 1);
        let oifs: Vec<u16> = (1..=fanout).collect();
        node.apply(&[MfibUpdate::Install(node.route(Some(S), 0, &oifs))]);
        let f = frame(8, 300);
        assert_eq!(node.rx(0, &f), Outcome::Forwarded { copies: fanout });
        assert_eq!(node.tx.len(), usize::from(fanout));
        for port in 1..=fanout {
            let copies: Vec<&[u8]> = node.tx.sent_on(PortId(port)).collect();
            assert_eq!(copies.len(), 1, "port {port}");
            let out = EthernetFrame::new_checked(copies[0]).unwrap();
            assert_eq!(out.dst_addr(), EthernetAddress::from_ipv4_multicast(G));
            assert_eq!(out.dst_addr().0, [0x01, 0x00, 0x5e, 0x01, 0x02, 0x03]);
            assert_eq!(out.src_addr(), node.mac(port));
            assert_forwarded_datagram(&f[14..], &copies[0][14..], 1);
            assert_eq!(ip_of(copies[0]).payload(), ip_of(&f).payload(), "UDP bytes identical");
            let c = node.stats.port(PortId(port));
            assert_eq!((c.tx_packets, c.tx_bytes), (1, f.len() as u64));
        }
        assert_eq!(node.stats.port(PortId(0)).rx_packets, 1);
        let r = &node.mfib.routes()[0];
        assert_eq!((r.packets, r.bytes), (1, (f.len() - 14) as u64));
    }
}

#[test]
fn ethernet_padding_is_not_forwarded() {
    let mut node = Node::with_ports(2);
    node.apply(&[MfibUpdate::Install(node.route(Some(S), 0, &[1]))]);
    let mut f = frame(8, 2);
    let unpadded = f.len();
    f.resize(60, 0); // minimum Ethernet frame (without FCS)
    assert_eq!(node.rx(0, &f), Outcome::Forwarded { copies: 1 });
    assert_eq!(node.tx.sent_on(PortId(1)).next().unwrap().len(), unpadded);
}

#[test]
fn rpf_failure_is_dropped_on_the_arrival_port() {
    let mut node = Node::with_ports(3);
    node.apply(&[MfibUpdate::Install(node.route(Some(S), 0, &[1, 2]))]);
    assert_eq!(node.rx(1, &frame(8, 10)), Outcome::Dropped(DropReason::RpfFail));
    assert_eq!(node.stats.port(PortId(1)).drop_count(DropReason::RpfFail), 1);
    assert!(node.tx.is_empty());
}

#[test]
fn ttl_one_expires_and_thresholds_filter_oifs() {
    let mut node = Node::with_ports(3);
    let mut route = node.route(Some(S), 0, &[1, 2]);
    route.oifs[1].ttl_threshold = 5;
    node.apply(&[MfibUpdate::Install(route)]);
    assert_eq!(node.rx(0, &frame(1, 10)), Outcome::Dropped(DropReason::TtlExpired));
    assert_eq!(node.rx(0, &frame(0, 10)), Outcome::Dropped(DropReason::TtlExpired));
    assert_eq!(node.drops(DropReason::TtlExpired), 2);
    assert_eq!(node.rx(0, &frame(5, 10)), Outcome::Forwarded { copies: 1 }, "TTL 5 is not above 5");
    assert_eq!(node.rx(0, &frame(6, 10)), Outcome::Forwarded { copies: 2 });
    assert_eq!(node.tx.sent_on(PortId(2)).count(), 1);
}

#[test]
fn star_g_is_the_fallback_and_iif_never_gets_a_copy() {
    let mut node = Node::with_ports(3);
    node.apply(&[
        MfibUpdate::Install(node.route(None, 1, &[0, 1, 2])),
        MfibUpdate::Install(node.route(Some(S), 0, &[0, 1])),
    ]);
    // (S,G) matches: iif 0, and its own oif 0 is skipped.
    assert_eq!(node.rx(0, &frame(8, 10)), Outcome::Forwarded { copies: 1 });
    // Another source falls back to (*,G), iif 1.
    let other = UdpFrame::multicast(Ipv4Addr::new(10, 0, 0, 7), G, 8, 10).build();
    assert_eq!(node.rx(1, &other), Outcome::Forwarded { copies: 2 });
    let ports: BTreeSet<PortId> = node.tx.sent().skip(1).map(|(p, _)| p).collect();
    assert_eq!(ports, [PortId(0), PortId(2)].into());
    assert_eq!(node.rx(0, &other), Outcome::Dropped(DropReason::RpfFail));
}

#[test]
fn misses_are_punted_at_a_limited_rate_and_counted() {
    let config = PipelineConfig { punt_rate: 10, punt_burst: 2, ..PipelineConfig::default() };
    let mut node = Node::new(interfaces(2), &config);
    let punt = Outcome::Punt(Punt { iif: node.ifindex(1), source: S, group: G });
    assert_eq!(node.rx(1, &frame(8, 10)), punt);
    assert_eq!(node.rx(1, &frame(8, 10)), punt);
    assert_eq!(node.rx(1, &frame(8, 10)), Outcome::Dropped(DropReason::NoRoute));
    let c = node.stats.port(PortId(1));
    assert_eq!((c.punts, c.drop_count(DropReason::NoRoute)), (2, 3));
    let mfib = node.mfib.load();
    let later = NOW + Duration::from_millis(100);
    let out = node.pipeline.process(
        &mfib,
        PortId(1),
        &frame(8, 10),
        later,
        &mut node.tx,
        &mut node.stats,
    );
    assert_eq!(out, punt, "refilled after 1/rate");
}

#[test]
fn mfib_update_while_a_batch_holds_the_old_snapshot() {
    let mut node = Node::with_ports(3);
    node.apply(&[MfibUpdate::Install(node.route(Some(S), 0, &[1]))]);
    let batch_snapshot = node.mfib.load();
    node.apply(&[MfibUpdate::Install(node.route(Some(S), 0, &[1, 2]))]);
    let out = node.pipeline.process(
        &batch_snapshot,
        PortId(0),
        &frame(8, 10),
        NOW,
        &mut node.tx,
        &mut node.stats,
    );
    assert_eq!(out, Outcome::Forwarded { copies: 1 }, "the batch keeps its snapshot");
    assert_eq!(
        node.rx(0, &frame(8, 10)),
        Outcome::Forwarded { copies: 2 },
        "the next batch sees the update"
    );
    assert_eq!(node.mfib.routes()[0].packets, 2, "counters shared across versions");
}

#[test]
fn forwarding_thread_never_sees_a_half_applied_batch() {
    // Each batch removes the route and re-installs it with 1 or 2 oifs: a worker must see the
    // route before or after the batch (1 or 2 copies), never the removed state (a punt).
    let mut node = Node::with_ports(3);
    node.apply(&[MfibUpdate::Install(node.route(Some(S), 0, &[1]))]);
    let writer = node.mfib.clone();
    let (ifaces, one, two) =
        (node.ifaces.clone(), node.route(Some(S), 0, &[1]), node.route(Some(S), 0, &[1, 2]));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_writer = stop.clone();
    let handle = std::thread::spawn(move || {
        let mut batches = 0u32;
        while !stop_writer.load(std::sync::atomic::Ordering::Relaxed) && batches < 100_000 {
            let route = if batches % 2 == 0 { two.clone() } else { one.clone() };
            let batch =
                [MfibUpdate::Remove { source: Some(S), group: G }, MfibUpdate::Install(route)];
            writer.apply(&batch, &ifaces).unwrap();
            batches += 1;
        }
        batches
    });
    let f = frame(8, 64);
    for _ in 0..20_000 {
        let out = node.rx(0, &f);
        assert!(matches!(out, Outcome::Forwarded { copies: 1 | 2 }), "{out:?}");
        node.tx.clear();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let batches = handle.join().unwrap();
    assert!(batches > 0);
    assert_eq!(node.stats.port(PortId(0)).punts, 0);
}

// ===== overlay =====

const KEY_A: &[u8] = b"fanout test key A, 32 bytes long";
const KEY_B: &[u8] = b"another key";

fn overlay_config(keys: &[(u8, &[u8])], send: Option<u8>) -> PipelineConfig {
    PipelineConfig {
        overlay: OverlayConfig {
            keys: keys.iter().map(|(id, k)| OverlayKey { id: *id, secret: k.to_vec() }).collect(),
            send_key: send,
            origin: Some(Ipv4Addr::new(192, 0, 2, 1)),
            ..OverlayConfig::default()
        },
        ..PipelineConfig::default()
    }
}

/// Node B's interfaces: port 0 faces A (its address is A's next hop), port 1 faces receivers.
fn b_interfaces() -> InterfaceTable {
    let mut t = InterfaceTable::new();
    for (i, addr) in [[10, 0, 1, 2], [10, 5, 0, 1], [10, 6, 0, 1]].into_iter().enumerate() {
        t.add(Interface {
            ifindex: IfIndex(20 + i as u32),
            name: format!("b{i}"),
            mac: EthernetAddress([0x02, 0, 0, 0, 0x02, i as u8]),
            ipv4: Ipv4Addr::from(addr),
            mtu: 1500,
        })
        .unwrap();
    }
    t
}

const B_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);
const B_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x02, 0];

/// A encapsulates (S,G) from port 0 to B over port 1; returns A and the encapsulated frame.
fn encapsulate_at_a(config: &PipelineConfig, ttl: u8, payload: usize) -> (Node, Vec<u8>, Vec<u8>) {
    let mut a = Node::new(interfaces(2), config);
    let mut route = a.route(Some(S), 0, &[]);
    route.overlay_next_hops = vec![B_ADDR];
    a.apply(&[
        MfibUpdate::Install(route),
        MfibUpdate::SetNeighbor(Neighbor { addr: B_ADDR, ifindex: a.ifindex(1), mac: B_MAC }),
    ]);
    let original = frame(ttl, payload);
    assert_eq!(a.rx(0, &original), Outcome::Forwarded { copies: 1 });
    let encapsulated = a.tx.sent_on(PortId(1)).next().unwrap().to_vec();
    (a, original, encapsulated)
}

fn b_node(config: &PipelineConfig, from: Option<Ipv4Addr>, next_hops: &[Ipv4Addr]) -> Node {
    let b = Node::new(b_interfaces(), config);
    let route = OverlayRoute {
        origin: Ipv4Addr::new(192, 0, 2, 1),
        group: G,
        from,
        deliver: vec![Oif { ifindex: b.ifindex(1), ttl_threshold: 1 }],
        next_hops: next_hops.to_vec(),
    };
    let mut updates = vec![MfibUpdate::InstallOverlay(route)];
    for (i, nh) in next_hops.iter().enumerate() {
        updates.push(MfibUpdate::SetNeighbor(Neighbor {
            addr: *nh,
            ifindex: b.ifindex(2),
            mac: [2, 9, 9, 9, 9, i as u8],
        }));
    }
    b.apply(&updates);
    b
}

fn overlay_of(frame: &[u8]) -> (Ipv4Packet<&[u8]>, OverlayRepr, &[u8]) {
    let ip = ip_of(frame);
    let udp_start = 14 + ip.header_len() as usize;
    let udp = UdpPacket::new_checked(&frame[udp_start..]).unwrap();
    assert_eq!((udp.src_port(), udp.dst_port()), (DATA_PORT, DATA_PORT));
    assert_eq!(udp.checksum(), 0, "UDP checksum 0 over IPv4");
    let ovl_start = udp_start + 8;
    let ovl = OverlayPacket::new_checked(&frame[ovl_start..]).unwrap();
    let repr = OverlayRepr::parse(&ovl).unwrap();
    let inner = &frame[ovl_start + repr.buffer_len()..];
    (ip, repr, inner)
}

#[test]
fn encapsulated_frame_has_the_documented_layout() {
    let config = overlay_config(&[(1, KEY_A)], None);
    let (a, original, enc) = encapsulate_at_a(&config, 8, 200);
    let eth = EthernetFrame::new_checked(&enc[..]).unwrap();
    assert_eq!(eth.dst_addr(), EthernetAddress(B_MAC));
    assert_eq!(eth.src_addr(), a.mac(1));
    let (ip, repr, inner) = overlay_of(&enc);
    assert!(ip.verify_checksum());
    assert_eq!((ip.src_addr(), ip.dst_addr(), ip.ttl()), (a.addr(1), B_ADDR, 64));
    assert!(ip.dont_frag() && !ip.more_frags());
    assert_eq!(ip.next_header(), Protocol::Udp);
    assert_eq!(usize::from(ip.total_len()) + 14, enc.len());
    assert_eq!(enc.len(), original.len() + 20 + 8 + HEADER_LEN + AUTH_TAG_LEN);
    assert_eq!((repr.group, repr.origin, repr.sequence), (G, Ipv4Addr::new(192, 0, 2, 1), 0));
    assert!(repr.auth);
    assert_eq!(repr.key_id, 1);
    assert_eq!(repr.hop_count, dataplane::overlay::DEFAULT_HOP_COUNT);
    assert_forwarded_datagram(&original[14..], inner, 1);
}

#[test]
fn sequence_numbers_count_per_route() {
    let config = overlay_config(&[], None);
    let (mut a, original, _) = encapsulate_at_a(&config, 8, 20);
    a.rx(0, &original);
    a.rx(0, &original);
    let seqs: Vec<u32> = a.tx.sent_on(PortId(1)).map(|f| overlay_of(f).1.sequence).collect();
    assert_eq!(seqs, [0, 1, 2]);
    let (_, repr, _) = overlay_of(a.tx.sent_on(PortId(1)).next().unwrap());
    assert!(!repr.auth, "no keys: untagged");
}

#[test]
fn encap_decap_round_trip_is_byte_identical_except_ttl() {
    for keys in [&[][..], &[(1u8, KEY_A)][..]] {
        let config = overlay_config(keys, None);
        let (_, original, enc) = encapsulate_at_a(&config, 8, 700);
        let mut b = b_node(&config, None, &[]);
        assert_eq!(b.rx(0, &enc), Outcome::Forwarded { copies: 1 });
        let delivered = b.tx.sent_on(PortId(1)).next().unwrap();
        let eth = EthernetFrame::new_checked(delivered).unwrap();
        assert_eq!(eth.dst_addr(), EthernetAddress::from_ipv4_multicast(G));
        assert_eq!(eth.src_addr(), b.mac(1));
        // A routed it (TTL - 1) and B routed it again onto its LAN (TTL - 1).
        assert_forwarded_datagram(&original[14..], &delivered[14..], 2);
        assert_eq!(ip_of(delivered).payload(), ip_of(&original).payload());
        assert_eq!(b.mfib.overlay_routes()[0].packets, 1);
    }
}

#[test]
fn relay_reencapsulates_with_lower_hop_count_same_origin_and_sequence() {
    let config = overlay_config(&[(1, KEY_A)], None);
    let (_, original, enc) = encapsulate_at_a(&config, 8, 64);
    let c_addr = Ipv4Addr::new(10, 6, 0, 9);
    let mut b = b_node(&config, Some(Ipv4Addr::new(10, 0, 1, 1)), &[c_addr]);
    assert_eq!(b.rx(0, &enc), Outcome::Forwarded { copies: 2 });
    let relayed = b.tx.sent_on(PortId(2)).next().unwrap().to_vec();
    let (ip, repr, inner) = overlay_of(&relayed);
    let (_, first, first_inner) = overlay_of(&enc);
    assert_eq!((ip.src_addr(), ip.dst_addr()), (b.addr(2), c_addr));
    assert_eq!(repr.hop_count, first.hop_count - 1);
    assert_eq!(
        (repr.origin, repr.sequence, repr.group),
        (first.origin, first.sequence, first.group)
    );
    assert_eq!(inner, first_inner, "a relay carries the inner datagram unchanged");
    assert_forwarded_datagram(&original[14..], inner, 1);
    // The relayed copy verifies at the next node (C = a node like B whose port 0 has c_addr).
    let mut c = b_node(&config, None, &[]);
    let mut at_c = relayed.clone();
    rewrite_outer_dst(&mut at_c, B_ADDR);
    assert_eq!(c.rx(0, &at_c), Outcome::Forwarded { copies: 1 });
}

/// Points an encapsulated frame's outer destination at `dst` (fixing the IPv4 checksum; the UDP
/// checksum is 0), so one test node can play the next hop.
fn rewrite_outer_dst(frame: &mut [u8], dst: Ipv4Addr) {
    let mut ip = Ipv4Packet::new_unchecked(&mut frame[14..]);
    ip.set_dst_addr(dst);
    ip.fill_checksum();
}

#[test]
fn overlay_rpf_hop_limit_and_no_route() {
    let config = overlay_config(&[], None);
    let (_, _, enc) = encapsulate_at_a(&config, 8, 64);
    let mut b = b_node(&config, Some(Ipv4Addr::new(10, 0, 1, 99)), &[]);
    assert_eq!(b.rx(0, &enc), Outcome::Dropped(DropReason::RpfFail));

    let mut zero = enc.clone();
    set_hop_count(&mut zero, 0);
    let mut b = b_node(&config, None, &[]);
    assert_eq!(b.rx(0, &zero), Outcome::Dropped(DropReason::HopLimit));

    // Hop count 1: delivered locally, but not relayed further.
    let mut one = enc.clone();
    set_hop_count(&mut one, 1);
    let mut b = b_node(&config, None, &[Ipv4Addr::new(10, 6, 0, 9)]);
    assert_eq!(b.rx(0, &one), Outcome::Forwarded { copies: 1 });
    assert_eq!(b.drops(DropReason::HopLimit), 1);

    let mut b = Node::new(b_interfaces(), &config);
    assert_eq!(b.rx(0, &enc), Outcome::Dropped(DropReason::NoRoute));
    assert_eq!(b.stats.port(PortId(0)).punts, 0, "overlay misses are not punted");
}

fn overlay_offset(frame: &[u8]) -> usize {
    14 + ip_of(frame).header_len() as usize + 8
}

fn set_hop_count(frame: &mut [u8], hops: u8) {
    let off = overlay_offset(frame);
    OverlayPacket::new_unchecked(&mut frame[off..]).set_hop_count(hops);
}

#[test]
fn forged_tags_wrong_keys_and_missing_tags_fail_authentication() {
    let signer = overlay_config(&[(1, KEY_A)], None);
    let (_, _, enc) = encapsulate_at_a(&signer, 8, 100);
    let off = overlay_offset(&enc);

    let mut forged = enc.clone();
    forged[off + HEADER_LEN + 3] ^= 0x01;
    let mut b = b_node(&signer, None, &[]);
    assert_eq!(b.rx(0, &forged), Outcome::Dropped(DropReason::AuthFail));

    let mut tampered = enc.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0xff; // inner payload byte (the inner UDP checksum is not checked here)
    assert_eq!(b.rx(0, &tampered), Outcome::Dropped(DropReason::AuthFail));

    let wrong_secret = overlay_config(&[(1, KEY_B)], None);
    let mut b2 = b_node(&wrong_secret, None, &[]);
    assert_eq!(b2.rx(0, &enc), Outcome::Dropped(DropReason::AuthFail));

    let other_id = overlay_config(&[(2, KEY_A)], None);
    let mut b3 = b_node(&other_id, None, &[]);
    assert_eq!(b3.rx(0, &enc), Outcome::Dropped(DropReason::AuthFail));

    let (_, _, untagged) = encapsulate_at_a(&overlay_config(&[], None), 8, 100);
    assert_eq!(b.rx(0, &untagged), Outcome::Dropped(DropReason::AuthFail));
    assert_eq!(b.drops(DropReason::AuthFail), 3);
    assert!(b.tx.is_empty() && b2.tx.is_empty() && b3.tx.is_empty());

    // The genuine packet still passes.
    assert_eq!(b.rx(0, &enc), Outcome::Forwarded { copies: 1 });
}

#[test]
fn tag_matches_an_independent_hmac_over_wires_auth_input() {
    use hmac::{Hmac, Mac};
    let (_, _, enc) = encapsulate_at_a(&overlay_config(&[(1, KEY_A)], None), 8, 333);
    let ovl = OverlayPacket::new_checked(&enc[overlay_offset(&enc)..]).unwrap();
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(KEY_A).unwrap();
    for chunk in ovl.auth_input().chunks() {
        mac.update(chunk);
    }
    let full = mac.finalize().into_bytes();
    assert_eq!(&ovl.auth_tag().unwrap()[..], &full[..AUTH_TAG_LEN]);
}

#[test]
fn relay_signing_with_another_key_computes_a_new_tag() {
    // B accepts key 1 (A's) and signs with key 2; C only knows key 2.
    let (_, _, enc) = encapsulate_at_a(&overlay_config(&[(1, KEY_A)], None), 8, 64);
    let c_addr = Ipv4Addr::new(10, 6, 0, 9);
    let mut b = b_node(&overlay_config(&[(1, KEY_A), (2, KEY_B)], Some(2)), None, &[c_addr]);
    assert_eq!(b.rx(0, &enc), Outcome::Forwarded { copies: 2 });
    let mut relayed = b.tx.sent_on(PortId(2)).next().unwrap().to_vec();
    let (_, repr, _) = overlay_of(&relayed);
    assert_eq!(repr.key_id, 2);
    rewrite_outer_dst(&mut relayed, B_ADDR);
    let mut c = b_node(&overlay_config(&[(2, KEY_B)], None), None, &[]);
    assert_eq!(c.rx(0, &relayed), Outcome::Forwarded { copies: 1 });
    let mut c1 = b_node(&overlay_config(&[(1, KEY_A)], None), None, &[]);
    assert_eq!(c1.rx(0, &relayed), Outcome::Dropped(DropReason::AuthFail));
}

#[test]
fn key_rotation_accepts_both_keys() {
    let receiver = overlay_config(&[(1, KEY_A), (2, KEY_B)], Some(2));
    let mut b = b_node(&receiver, None, &[]);
    for sender in
        [overlay_config(&[(1, KEY_A)], None), overlay_config(&[(2, KEY_B), (1, KEY_A)], None)]
    {
        let (_, _, enc) = encapsulate_at_a(&sender, 8, 40);
        assert_eq!(b.rx(0, &enc), Outcome::Forwarded { copies: 1 });
    }
    let (_, _, enc) = encapsulate_at_a(&overlay_config(&[(3, KEY_A)], None), 8, 40);
    assert_eq!(b.rx(0, &enc), Outcome::Dropped(DropReason::AuthFail));
}

#[test]
fn truncated_and_malformed_overlay_headers_are_dropped() {
    let config = overlay_config(&[], None);
    let (_, _, enc) = encapsulate_at_a(&config, 8, 40);
    let off = overlay_offset(&enc);
    let udp_payload = &enc[off..];
    let mut b = b_node(&config, None, &[]);
    let outer = |payload: &[u8]| {
        let mut f = UdpFrame::multicast(Ipv4Addr::new(10, 0, 1, 1), B_ADDR, 64, 0);
        f.src_port = DATA_PORT;
        f.dst_port = DATA_PORT;
        f.build_with(payload)
    };
    assert_eq!(b.rx(0, &outer(&udp_payload[..10])), Outcome::Dropped(DropReason::Truncated));
    let mut bad_version = udp_payload.to_vec();
    bad_version[0] = (2 << 4) | (bad_version[0] & 0x0f);
    assert_eq!(b.rx(0, &outer(&bad_version)), Outcome::Dropped(DropReason::BadOverlay));
    // The inner datagram is cut short: its total length exceeds what is left.
    assert_eq!(
        b.rx(0, &outer(&udp_payload[..HEADER_LEN + 25])),
        Outcome::Dropped(DropReason::BadOverlay)
    );
    // A proper checksum (built by UdpFrame) is verified; a wrong one is dropped.
    let mut wrong_sum = outer(udp_payload);
    let sum_at = 14 + 20 + 6;
    wrong_sum[sum_at] ^= 0x55;
    assert_eq!(b.rx(0, &wrong_sum), Outcome::Dropped(DropReason::BadChecksum));
    assert_eq!(b.rx(0, &outer(udp_payload)), Outcome::Forwarded { copies: 1 });
}

// ===== every drop reason =====

/// Builds a scenario that drops for `reason`, runs it, and returns the node.
fn provoke(reason: DropReason) -> Node {
    let sg = |node: &Node, oifs: &[u16]| MfibUpdate::Install(node.route(Some(S), 0, oifs));
    let mut node = Node::with_ports(2);
    let good = frame(8, 100);
    match reason {
        DropReason::Truncated => {
            node.rx(0, &good[..10]);
        }
        DropReason::NotIpv4 => {
            let mut f = good.clone();
            EthernetFrame::new_unchecked(&mut f[..]).set_ethertype(EtherType::Arp);
            node.rx(0, &f);
        }
        DropReason::BadIpHeader => {
            let mut f = good.clone();
            f[14] = 0x65; // version 6
            node.rx(0, &f);
        }
        DropReason::BadChecksum => {
            let mut f = good.clone();
            f[14 + 10] ^= 0xff;
            node.rx(0, &f);
        }
        DropReason::Fragment => {
            let mut f = good.clone();
            let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
            ip.set_more_frags(true);
            ip.fill_checksum();
            node.rx(0, &f);
        }
        DropReason::NotMulticast => {
            node.rx(0, &UdpFrame::multicast(S, Ipv4Addr::new(10, 9, 9, 9), 8, 10).build());
            node.rx(0, &UdpFrame::multicast(S, Ipv4Addr::new(224, 0, 0, 5), 8, 10).build());
        }
        DropReason::TtlExpired => {
            node.apply(&[sg(&node, &[1])]);
            node.rx(0, &frame(1, 10));
        }
        DropReason::RpfFail => {
            node.apply(&[sg(&node, &[1])]);
            node.rx(1, &good);
        }
        DropReason::NoRoute => {
            node.rx(0, &good);
        }
        DropReason::NoOif => {
            node.apply(&[sg(&node, &[])]);
            node.rx(0, &good);
        }
        DropReason::TxRingFull => {
            node.tx = LoopbackPorts::new(8, 2048).with_ring_capacity(0);
            node.apply(&[sg(&node, &[1])]);
            node.rx(0, &good);
        }
        DropReason::NoFrame => {
            node.tx = LoopbackPorts::new(0, 2048);
            node.apply(&[sg(&node, &[1])]);
            node.rx(0, &good);
        }
        DropReason::TooBig => {
            let mut ifaces = interfaces(2);
            let small = Interface { mtu: 576, ..ifaces.get(PortId(1)).unwrap().clone() };
            ifaces = {
                let mut t = InterfaceTable::new();
                t.add(ifaces.get(PortId(0)).unwrap().clone()).unwrap();
                t.add(small).unwrap();
                t
            };
            node = Node::new(ifaces, &PipelineConfig::default());
            node.apply(&[sg(&node, &[1])]);
            assert_eq!(node.rx(0, &frame(8, 1000)), Outcome::Forwarded { copies: 0 });
            assert_eq!(node.stats.port(PortId(1)).drop_count(DropReason::TooBig), 1);
            // Encapsulation overhead counts too: 1472-byte datagram fits natively, not encapsulated.
            let mut big = node.route(Some(S), 0, &[]);
            big.overlay_next_hops = vec![B_ADDR];
            node.apply(&[
                MfibUpdate::Install(big),
                MfibUpdate::SetNeighbor(Neighbor {
                    addr: B_ADDR,
                    ifindex: node.ifindex(0),
                    mac: B_MAC,
                }),
            ]);
            node.rx(0, &frame(8, 1472 - 28));
            assert_eq!(node.stats.port(PortId(0)).drop_count(DropReason::TooBig), 1);
        }
        DropReason::AuthFail => {
            let config = overlay_config(&[(1, KEY_A)], None);
            let (_, _, enc) = encapsulate_at_a(&overlay_config(&[], None), 8, 10);
            node = b_node(&config, None, &[]);
            node.rx(0, &enc);
        }
        DropReason::BadOverlay => {
            let config = overlay_config(&[], None);
            let (_, _, mut enc) = encapsulate_at_a(&config, 8, 10);
            let off = overlay_offset(&enc);
            enc[off] = 0x20 | (enc[off] & 0x0f);
            node = b_node(&config, None, &[]);
            node.rx(0, &enc);
        }
        DropReason::HopLimit => {
            let config = overlay_config(&[], None);
            let (_, _, mut enc) = encapsulate_at_a(&config, 8, 10);
            set_hop_count(&mut enc, 0);
            node = b_node(&config, None, &[]);
            node.rx(0, &enc);
        }
        DropReason::NoNeighbor => {
            let mut r = node.route(Some(S), 0, &[]);
            r.overlay_next_hops = vec![Ipv4Addr::new(10, 0, 1, 77)];
            node.apply(&[MfibUpdate::Install(r)]);
            assert_eq!(node.rx(0, &good), Outcome::Forwarded { copies: 0 });
        }
    }
    node
}

#[test]
fn every_drop_reason_is_produced_and_counted() {
    let mut seen = BTreeSet::new();
    for reason in DropReason::ALL {
        let node = provoke(reason);
        let count = node.drops(reason);
        assert!(count >= 1, "{reason} was not counted");
        for other in DropReason::ALL {
            if other != reason {
                assert_eq!(node.drops(other), 0, "provoking {reason} also counted {other}");
            }
        }
        seen.insert(reason);
    }
    assert_eq!(seen.len(), DropReason::COUNT);
}
