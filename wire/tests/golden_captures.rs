//! Golden vectors from real routers: every IGMP and DVMRP message in the captures under
//! `shared/testvectors/` (mrouted 4.x pairs, mrouted as IGMPv3 querier with Linux hosts, and a
//! pimdd pair) must parse, and re-emitting the parsed Repr must give back the captured bytes:
//! the Ethernet header, the IPv4 header (TOS, Router Alert option and all) and the IGMP/DVMRP
//! message. Then specific facts of the captures are checked against the parsed values.
//!
//! The captures live beside the repository (`$CARGO_MANIFEST_DIR/../../shared`), as CI clones
//! them; a missing file fails the test with its path rather than skipping silently.

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use pcap_file::pcap::PcapReader;
use pcap_file::DataLink;
use wire::dvmrp::{
    self, DvmrpPacket, DvmrpRepr, Message, ReportBlock, CAP_GENID, CAP_PRUNE, METRIC_INFINITY,
};
use wire::ethernet::{EtherType, EthernetFrame, EthernetRepr};
use wire::igmp::{
    self, GroupRecord, IgmpPacket, IgmpRepr, MessageType, Query, QueryVersion, RecordType,
};
use wire::ipv4::{Ipv4Packet, Ipv4Repr, Protocol};
use wire::Error;

const DVMRP_LINK: &str = "testvectors/dvmrp/mrouted-pair-link.pcap";
const LAN_H1: &str = "testvectors/igmp/mrouted-querier-lan-h1.pcap";
const LAN_H2: &str = "testvectors/igmp/mrouted-querier-lan-h2.pcap";
const PIMDM_LINK: &str = "testvectors/pimdm/pimdd-pair-link.pcap";

const R1: Ipv4Addr = Ipv4Addr::new(10, 77, 12, 1);
const R2: Ipv4Addr = Ipv4Addr::new(10, 77, 12, 2);
const NET1: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 0);
const NET2: Ipv4Addr = Ipv4Addr::new(10, 77, 2, 0);
const G3: Ipv4Addr = Ipv4Addr::new(239, 1, 2, 3);
const G4: Ipv4Addr = Ipv4Addr::new(239, 1, 2, 4);

#[derive(Debug, Clone, PartialEq)]
enum Parsed {
    Igmp(IgmpRepr),
    Dvmrp(DvmrpRepr),
}

/// One IGMP-carrying frame, decoded.
#[derive(Debug, Clone)]
struct Captured {
    frame: usize,
    ip: Ipv4Repr,
    message: Parsed,
}

impl Captured {
    fn dvmrp(&self) -> Option<&DvmrpRepr> {
        match &self.message {
            Parsed::Dvmrp(d) => Some(d),
            Parsed::Igmp(_) => None,
        }
    }

    fn igmp(&self) -> Option<&IgmpRepr> {
        match &self.message {
            Parsed::Igmp(i) => Some(i),
            Parsed::Dvmrp(_) => None,
        }
    }
}

#[derive(Debug)]
struct Capture {
    frames: usize,
    /// Frames with EtherType IPv4 and IP protocol 2, counted from the raw bytes.
    igmp_frames: usize,
    messages: Vec<Captured>,
}

impl Capture {
    fn dvmrp(&self) -> impl Iterator<Item = (&Captured, &DvmrpRepr)> {
        self.messages.iter().filter_map(|c| c.dvmrp().map(|d| (c, d)))
    }

    fn igmp(&self) -> impl Iterator<Item = (&Captured, &IgmpRepr)> {
        self.messages.iter().filter_map(|c| c.igmp().map(|i| (c, i)))
    }

    fn queries(&self) -> impl Iterator<Item = (&Captured, &Query)> {
        self.igmp().filter_map(|(c, i)| match i {
            IgmpRepr::Query(q) => Some((c, q)),
            _ => None,
        })
    }

    fn v3_reports(&self) -> impl Iterator<Item = (&Captured, &[GroupRecord])> {
        self.igmp().filter_map(|(c, i)| match i {
            IgmpRepr::ReportV3 { records } => Some((c, records.as_slice())),
            _ => None,
        })
    }
}

fn shared_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared").join(relative)
}

/// Reads a capture, parses every frame down to IGMP/DVMRP and checks that re-emitting each
/// layer reproduces the captured bytes. Panics naming the file and frame on any failure.
fn load(relative: &str) -> Capture {
    let path = shared_path(relative);
    let file = File::open(&path).unwrap_or_else(|e| {
        panic!(
            "golden capture {} is missing ({e}); the shared/ directory must sit beside the \
             repository checkout",
            path.display()
        )
    });
    let mut reader = PcapReader::new(file)
        .unwrap_or_else(|e| panic!("{}: not a pcap file: {e}", path.display()));
    assert_eq!(
        reader.header().datalink,
        DataLink::ETHERNET,
        "{}: expected an Ethernet capture",
        path.display()
    );

    let mut capture = Capture { frames: 0, igmp_frames: 0, messages: Vec::new() };
    while let Some(packet) = reader.next_packet() {
        let packet = packet.unwrap_or_else(|e| panic!("{}: bad record: {e}", path.display()));
        let index = capture.frames;
        capture.frames += 1;
        let data: &[u8] = &packet.data;
        let at = |what: &str| format!("{} frame {index}: {what}", path.display());

        // Counted from raw offsets, independently of the parsers under test.
        if data.len() > 23 && data[12..14] == [0x08, 0x00] && data[23] == 2 {
            capture.igmp_frames += 1;
        }

        let frame =
            EthernetFrame::new_checked(data).unwrap_or_else(|e| panic!("{}", at(&e.to_string())));
        let eth = EthernetRepr::parse(&frame).unwrap();
        let mut eth_bytes = vec![0xa5; eth.buffer_len()];
        eth.emit(&mut EthernetFrame::new_unchecked(&mut eth_bytes));
        assert_eq!(eth_bytes, &data[..eth.buffer_len()], "{}", at("Ethernet re-emit"));
        if eth.ethertype != EtherType::Ipv4 {
            continue;
        }

        let ip_packet = Ipv4Packet::new_checked(frame.payload())
            .unwrap_or_else(|e| panic!("{}", at(&format!("IPv4: {e}"))));
        let ip =
            Ipv4Repr::parse(&ip_packet).unwrap_or_else(|e| panic!("{}", at(&format!("IPv4: {e}"))));
        let header_len = ip.buffer_len();
        let mut ip_bytes = vec![0xa5; header_len];
        ip.emit(&mut Ipv4Packet::new_unchecked(&mut ip_bytes));
        assert_eq!(ip_bytes, &frame.payload()[..header_len], "{}", at("IPv4 re-emit"));
        if ip.protocol != Protocol::Igmp {
            continue;
        }

        let payload = ip_packet.payload();
        assert_eq!(payload.len(), ip.payload_len, "{}", at("IPv4 payload length"));
        let igmp_packet = IgmpPacket::new_checked(payload)
            .unwrap_or_else(|e| panic!("{}", at(&format!("IGMP: {e}"))));
        let message = if igmp_packet.msg_type() == MessageType::Dvmrp {
            let packet = DvmrpPacket::new_checked(payload).unwrap();
            let repr = DvmrpRepr::parse(&packet)
                .unwrap_or_else(|e| panic!("{}", at(&format!("DVMRP: {e}"))));
            assert_eq!(repr.buffer_len(), payload.len(), "{}", at("DVMRP length"));
            let mut bytes = vec![0xa5; repr.buffer_len()];
            repr.emit(&mut DvmrpPacket::new_unchecked(&mut bytes));
            assert_eq!(bytes, payload, "{}", at(&format!("DVMRP re-emit of {repr:?}")));
            // IgmpRepr refuses DVMRP: callers must dispatch on the type first.
            assert_eq!(IgmpRepr::parse(&igmp_packet), Err(Error::Unsupported));
            Parsed::Dvmrp(repr)
        } else {
            let repr = IgmpRepr::parse(&igmp_packet)
                .unwrap_or_else(|e| panic!("{}", at(&format!("IGMP: {e}"))));
            assert_eq!(repr.buffer_len(), payload.len(), "{}", at("IGMP length"));
            let mut bytes = vec![0xa5; repr.buffer_len()];
            repr.emit(&mut IgmpPacket::new_unchecked(&mut bytes));
            assert_eq!(bytes, payload, "{}", at(&format!("IGMP re-emit of {repr:?}")));
            Parsed::Igmp(repr)
        };
        capture.messages.push(Captured { frame: index, ip, message });
    }
    capture
}

#[test]
fn every_igmp_and_dvmrp_message_parses_and_re_emits() {
    // (file, frames, IGMP frames, of which DVMRP), counted with tcpdump.
    let expected = [
        (DVMRP_LINK, 192, 39, 27),
        (LAN_H1, 22, 22, 6),
        (LAN_H2, 24, 24, 6),
        (PIMDM_LINK, 252, 10, 0),
    ];
    for (file, frames, igmp_frames, dvmrp_frames) in expected {
        let capture = load(file);
        assert_eq!(capture.frames, frames, "{file}: frames");
        assert!(capture.igmp_frames > 0, "{file}: no IGMP frames");
        // No silent skipping: every IGMP frame became a parsed message.
        assert_eq!(capture.messages.len(), capture.igmp_frames, "{file}");
        assert_eq!(capture.igmp_frames, igmp_frames, "{file}: IGMP frames");
        assert_eq!(capture.dvmrp().count(), dvmrp_frames, "{file}: DVMRP messages");
    }
}

#[test]
fn dvmrp_probes_carry_genid_neighbours_and_version() {
    let capture = load(DVMRP_LINK);
    let probes: Vec<_> = capture
        .dvmrp()
        .filter_map(|(c, d)| match &d.message {
            Message::Probe { generation_id, neighbors } => {
                Some((c, d, *generation_id, neighbors.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(probes.len(), 14);

    let (first, repr, genid, neighbors) = &probes[0];
    assert_eq!(first.ip.src_addr, R2);
    assert_eq!(*genid, 1_075_838_976);
    assert!(neighbors.is_empty(), "the first probe knows no neighbour yet");
    assert_eq!(repr.capabilities, 0x0e);
    assert_eq!((repr.major, repr.minor), (3, 0xff));

    for (c, d, genid, neighbors) in &probes {
        assert_eq!(c.ip.dst_addr, dvmrp::ALL_DVMRP_ROUTERS);
        assert_eq!(c.ip.ttl, 1);
        assert!(c.ip.options.has_router_alert());
        assert_eq!(c.ip.dscp_ecn, 0xc0);
        assert_eq!(d.capabilities & (CAP_PRUNE | CAP_GENID), CAP_PRUNE | CAP_GENID);
        let (expected_genid, peer) = if c.ip.src_addr == R2 {
            (1_075_838_976, R1)
        } else {
            assert_eq!(c.ip.src_addr, R1);
            (3_626_106_880, R2)
        };
        // A router keeps one genid for its whole run; once it has heard the peer it lists it.
        assert_eq!(*genid, expected_genid, "frame {}", c.frame);
        assert!(
            neighbors.is_empty() || neighbors.as_slice() == [peer],
            "frame {}: {neighbors:?}",
            c.frame
        );
    }
    assert!(probes.iter().any(|(c, _, _, n)| c.ip.src_addr == R1 && n == &[R2]));
    assert!(probes.iter().any(|(c, _, _, n)| c.ip.src_addr == R2 && n == &[R1]));
}

#[test]
fn dvmrp_reports_poison_reverse_routes_learned_from_the_peer() {
    let capture = load(DVMRP_LINK);
    let mut routes = Vec::new();
    for (c, d) in capture.dvmrp() {
        let Message::Report { blocks } = &d.message else {
            continue;
        };
        assert_eq!(c.ip.dst_addr, dvmrp::ALL_DVMRP_ROUTERS);
        assert_eq!(c.ip.ttl, 1);
        let encoded: usize = blocks.iter().map(ReportBlock::encoded_len).sum();
        assert_eq!(8 + encoded, c.ip.payload_len, "frame {}", c.frame);
        for block in blocks {
            assert_eq!(block.mask, Ipv4Addr::new(255, 255, 255, 0));
            assert_eq!(block.origin_width(), 3);
            routes.extend(block.routes.iter().map(|r| (c.ip.src_addr, r.origin, r.metric)));
        }
    }
    assert_eq!(routes.len(), 8, "{routes:?}");
    // Each router reports its own LAN with metric 1 and the peer's LAN poisoned (1 + 1 + 32).
    for (sender, own, learned) in [(R2, NET2, NET1), (R1, NET1, NET2)] {
        for &(s, origin, metric) in routes.iter().filter(|r| r.0 == sender) {
            if origin == own {
                assert_eq!(metric, 1);
            } else {
                assert_eq!(origin, learned);
                assert!((METRIC_INFINITY + 1..=63).contains(&metric), "{s} {origin} {metric}");
                assert_eq!(metric, METRIC_INFINITY + 2);
            }
        }
        assert!(routes.contains(&(sender, own, 1)));
        assert!(routes.contains(&(sender, learned, 34)));
    }
}

#[test]
fn dvmrp_prunes_and_graft_ack_pairs() {
    let capture = load(DVMRP_LINK);
    let unicast: Vec<_> = capture
        .dvmrp()
        .filter(|(_, d)| {
            matches!(
                d.message,
                Message::Prune { .. } | Message::Graft { .. } | Message::GraftAck { .. }
            )
        })
        .collect();
    for (c, _) in &unicast {
        // Unicast to the neighbour, not to All-DVMRP-Routers.
        assert!(c.ip.dst_addr == R1 || c.ip.dst_addr == R2, "frame {}", c.frame);
        assert_eq!(c.ip.ttl, 255);
    }

    let prunes: Vec<_> = unicast
        .iter()
        .filter_map(|(c, d)| match d.message {
            Message::Prune { source, group, lifetime, source_mask } => {
                Some((c.ip.src_addr, c.ip.dst_addr, source, group, lifetime, source_mask))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        prunes,
        [
            (R2, R1, NET1, G3, 8100, None),
            (R2, R1, NET1, G3, 4230, None),
            (R1, R2, NET2, G4, 6476, None),
        ]
    );
    // mrouted jitters its default prune lifetime over 1-3 hours.
    assert!(prunes.iter().all(|p| (3600..=10800).contains(&p.4)));

    let sg = |d: &DvmrpRepr| match d.message {
        Message::Graft { source, group } | Message::GraftAck { source, group } => (source, group),
        _ => unreachable!(),
    };
    let grafts: Vec<_> = unicast
        .iter()
        .enumerate()
        .filter(|(_, (_, d))| matches!(d.message, Message::Graft { .. }))
        .collect();
    assert_eq!(grafts.len(), 2);
    for (i, (graft_c, graft)) in grafts {
        // The next unicast message is the ack, from the grafted router, echoing the graft.
        let (ack_c, ack) = unicast[i + 1];
        assert!(matches!(ack.message, Message::GraftAck { .. }), "frame {}", ack_c.frame);
        assert_eq!(sg(ack), sg(graft));
        assert_eq!(
            (ack_c.ip.src_addr, ack_c.ip.dst_addr),
            (graft_c.ip.dst_addr, graft_c.ip.src_addr)
        );
    }
}

/// Checks one host LAN where mrouted is querier and a Linux host joins and leaves `group`.
fn check_querier_lan(file: &str, querier: Ipv4Addr, host: Ipv4Addr, group: Ipv4Addr) {
    let capture = load(file);

    let queries: Vec<_> = capture.queries().collect();
    assert!(!queries.is_empty());
    for (c, q) in &queries {
        assert_eq!(c.ip.src_addr, querier);
        assert_eq!(q.version, QueryVersion::V3);
        assert_eq!(q.qrv, 2);
        assert_eq!(q.querier_query_interval(), Duration::from_secs(125));
        assert!(!q.suppress_router_processing);
        assert!(q.sources.is_empty());
        if q.group.is_unspecified() {
            assert_eq!(c.ip.dst_addr, igmp::ALL_SYSTEMS);
            assert_eq!(q.max_resp_time(), Duration::from_secs(10));
        } else {
            // Last-member query: to the group itself, 1 s last-member interval.
            assert_eq!(q.group, group);
            assert_eq!(c.ip.dst_addr, group);
            assert_eq!(q.max_resp_time(), Duration::from_secs(1));
            assert_eq!(igmp::encode_max_resp_code(q.max_resp_time()), q.max_resp_code);
        }
    }
    assert!(queries.iter().any(|(_, q)| q.group.is_unspecified()));
    let group_queries = queries.iter().filter(|(_, q)| q.group == group).count();
    assert!(group_queries > 0);

    let mut joins = 0;
    let mut leaves = 0;
    for (c, records) in capture.v3_reports() {
        assert_eq!(c.ip.dst_addr, igmp::ALL_IGMPV3_ROUTERS);
        if c.ip.src_addr == host {
            let [record] = records else { panic!("frame {}: host sent {records:?}", c.frame) };
            assert_eq!(record.group, group);
            assert!(record.sources.is_empty() && record.aux_data.is_empty());
            match record.record_type {
                RecordType::ChangeToExclude => joins += 1,
                RecordType::ChangeToInclude => leaves += 1,
                other => panic!("frame {}: unexpected {other:?}", c.frame),
            }
        } else {
            // mrouted itself joins the IGMPv3, all-routers and DVMRP groups.
            assert_eq!(c.ip.src_addr, querier);
            let groups: Vec<_> = records.iter().map(|r| r.group).collect();
            assert_eq!(
                groups,
                [igmp::ALL_IGMPV3_ROUTERS, igmp::ALL_ROUTERS, dvmrp::ALL_DVMRP_ROUTERS]
            );
            assert!(records.iter().all(|r| matches!(
                r.record_type,
                RecordType::ChangeToExclude | RecordType::ModeIsExclude
            )));
        }
    }
    assert!(joins > 0 && leaves > 0, "{file}: joins {joins}, leaves {leaves}");
    // mrouted answers each leave (TO_IN {}) with group-specific queries.
    assert!(group_queries >= leaves, "{file}: {group_queries} queries, {leaves} leaves");

    // mrouted probes on host LANs too, with no neighbours to list.
    for (c, d) in capture.dvmrp() {
        assert_eq!(c.ip.src_addr, querier);
        assert!(
            matches!(&d.message, Message::Probe { neighbors, .. } if neighbors.is_empty()),
            "frame {}",
            c.frame
        );
    }
}

#[test]
fn mrouted_querier_and_linux_host_on_lan_h1() {
    check_querier_lan(LAN_H1, Ipv4Addr::new(10, 77, 1, 1), Ipv4Addr::new(10, 77, 1, 10), G4);
}

#[test]
fn mrouted_querier_and_linux_host_on_lan_h2() {
    check_querier_lan(LAN_H2, Ipv4Addr::new(10, 77, 2, 1), Ipv4Addr::new(10, 77, 2, 10), G3);
}

#[test]
fn pimdd_link_carries_only_igmpv3() {
    let capture = load(PIMDM_LINK);
    assert_eq!(capture.dvmrp().count(), 0);
    for (c, i) in capture.igmp() {
        match i {
            IgmpRepr::Query(q) => {
                assert_eq!(q.version, QueryVersion::V3);
                assert_eq!(c.ip.dst_addr, igmp::ALL_SYSTEMS);
            }
            IgmpRepr::ReportV3 { records } => {
                assert_eq!(c.ip.dst_addr, igmp::ALL_IGMPV3_ROUTERS);
                assert!(!records.is_empty());
            }
            other => panic!("frame {}: unexpected {other:?}", c.frame),
        }
    }
}

#[test]
fn corrupted_captured_messages_are_rejected() {
    // Flip each byte of every captured DVMRP/IGMP message in turn: the checksum (or a stricter
    // check) must catch it; nothing may panic.
    let capture = load(DVMRP_LINK);
    for c in &capture.messages {
        let bytes = match &c.message {
            Parsed::Dvmrp(d) => {
                let mut b = vec![0; d.buffer_len()];
                d.emit(&mut DvmrpPacket::new_unchecked(&mut b));
                b
            }
            Parsed::Igmp(i) => {
                let mut b = vec![0; i.buffer_len()];
                i.emit(&mut IgmpPacket::new_unchecked(&mut b));
                b
            }
        };
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x01;
            let reparsed = match IgmpPacket::new_checked(&bad[..]).map(|p| p.msg_type()) {
                Ok(MessageType::Dvmrp) => DvmrpPacket::new_checked(&bad[..])
                    .and_then(|p| DvmrpRepr::parse(&p))
                    .map(Parsed::Dvmrp),
                Ok(_) => IgmpPacket::new_checked(&bad[..])
                    .and_then(|p| IgmpRepr::parse(&p))
                    .map(Parsed::Igmp),
                Err(e) => Err(e),
            };
            assert!(reparsed.is_err(), "frame {} byte {at}: {reparsed:?}", c.frame);
        }
        for len in 0..bytes.len() {
            let cut = &bytes[..len];
            let igmp = IgmpPacket::new_checked(cut).and_then(|p| IgmpRepr::parse(&p));
            let dvmrp = DvmrpPacket::new_checked(cut).and_then(|p| DvmrpRepr::parse(&p));
            assert!(igmp.is_err() && dvmrp.is_err(), "frame {} cut at {len}", c.frame);
        }
    }
}
