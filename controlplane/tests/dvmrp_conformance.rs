//! DVMRP core conformance: numbered fixture steps (STYLE.md §B) and interop with mrouted.
//!
//! * `tests/conformance/dvmrp/<scenario>/topology.json` configures one router
//!   (`{ "genid", "interfaces", "config"? }`); each step `NN-input.json` is a list of
//!   `{ "at_ms", "event" }` fed in order, `NN-output.json` the list of every action they
//!   produced, and `NN-state.json` (optional) the `snapshot()` after the step. Regenerate the
//!   expected files with `DVMRP_BLESS=1` and review the diff.
//! * `mrouted_pair_link_interop` replays the DVMRP messages one mrouted sent in
//!   `shared/testvectors/dvmrp/mrouted-pair-link.pcap` into a core standing in for its peer, and
//!   checks that the core's answers are byte-compatible with what the real peer sent.

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use controlplane::dvmrp::{Action, DvmrpConfig, DvmrpInterface, DvmrpRouter, Event};
use controlplane::timer::Timestamp;
use dataplane_api::{IfIndex, MfibUpdate, Oif, Punt};
use serde::Deserialize;
use serde_json::Value;
use wire::dvmrp::{DvmrpPacket, DvmrpRepr, Message};

#[derive(Deserialize)]
struct Topology {
    genid: u32,
    interfaces: Vec<DvmrpInterface>,
    #[serde(default)]
    config: DvmrpConfig,
}

#[derive(Deserialize)]
struct Input {
    at_ms: u64,
    event: Event,
}

fn fixture_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/dvmrp")
}

fn read_json(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn check_or_bless(path: &Path, actual: &Value, bless: bool) {
    if bless {
        fs::write(path, serde_json::to_string_pretty(actual).unwrap() + "\n").unwrap();
        return;
    }
    let expected = read_json(path);
    assert!(
        expected == *actual,
        "{} differs:\nexpected: {}\nactual:   {}",
        path.display(),
        serde_json::to_string_pretty(&expected).unwrap(),
        serde_json::to_string_pretty(actual).unwrap()
    );
}

fn run_scenario(name: &str) {
    let dir = fixture_root().join(name);
    let bless = std::env::var_os("DVMRP_BLESS").is_some();
    let topo: Topology = serde_json::from_value(read_json(&dir.join("topology.json"))).unwrap();
    let mut router = DvmrpRouter::new(topo.config, topo.interfaces, topo.genid);
    let mut now = Timestamp::ZERO;
    let mut steps = 0;
    for step in 1.. {
        let input_path = dir.join(format!("{step:02}-input.json"));
        if !input_path.exists() {
            break;
        }
        steps += 1;
        let inputs: Vec<Input> = serde_json::from_value(read_json(&input_path))
            .unwrap_or_else(|e| panic!("{}: {e}", input_path.display()));
        let mut actions: Vec<Action> = Vec::new();
        for input in inputs {
            now = Timestamp::from_millis(input.at_ms);
            actions.extend(router.handle(now, input.event));
        }
        let actual = serde_json::to_value(&actions).unwrap();
        check_or_bless(&dir.join(format!("{step:02}-output.json")), &actual, bless);
        let state_path = dir.join(format!("{step:02}-state.json"));
        if bless || state_path.exists() {
            check_or_bless(
                &state_path,
                &serde_json::to_value(router.snapshot(now)).unwrap(),
                bless,
            );
        }
    }
    assert!(steps > 0, "scenario {name} has no steps");
}

// Input:
//  * probes from N (first one-way, then listing us) and N's report with poison reverse
//  * the triggered-report and probe timers
// Output:
//  * immediate probe to the new neighbour, full table once two-way, triggered report with the
//    learned route poison-reversed towards N, N recorded as a dependent of our subnet
#[test]
fn adjacency_and_routes() {
    run_scenario("adjacency-and-routes");
}

// Input:
//  * data from our connected source network, a prune from dependent N (7200 s), a graft
//  * data from a remote network with no members, a member joining, N's graft-ack
// Output:
//  * MFIB installs flooding to N, then pruned, then restored; graft-ack echoing the graft
//  * a prune upstream, then a graft retransmitted at 5 s until acked
#[test]
fn flood_prune_graft() {
    run_scenario("flood-prune-graft");
}

// Input:
//  * N prunes our source network, then N's probe arrives with a new generation id
// Output:
//  * N's prune dropped (flooding to N again), an immediate probe and the full table to N
#[test]
fn neighbor_restart() {
    run_scenario("neighbor-restart");
}

// ===== interop with mrouted =====

/// One DVMRP message of the capture.
struct Captured {
    at_ms: u64,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    bytes: Vec<u8>,
    repr: DvmrpRepr,
}

fn shared_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared")
}

/// Reads a classic little-endian, microsecond pcap of Ethernet frames and returns its DVMRP
/// messages. Every IGMP frame of type 0x13 must parse.
fn read_capture(path: &Path) -> Vec<Captured> {
    let data = fs::read(path)
        .unwrap_or_else(|e| panic!("{}: {e} (shared/ must sit beside the repo)", path.display()));
    assert!(data.len() >= 24, "{}: no pcap header", path.display());
    assert_eq!(&data[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "little-endian microsecond pcap expected");
    assert_eq!(
        u32::from_le_bytes(data[20..24].try_into().unwrap()),
        1,
        "Ethernet link type expected"
    );
    let mut at = 24;
    let mut first_us = None;
    let mut out = Vec::new();
    while at + 16 <= data.len() {
        let word =
            |o: usize| u64::from(u32::from_le_bytes(data[at + o..at + o + 4].try_into().unwrap()));
        let ts_us = word(0) * 1_000_000 + word(4);
        let len = usize::try_from(word(8)).unwrap();
        let frame = &data[at + 16..at + 16 + len];
        at += 16 + len;
        let first = *first_us.get_or_insert(ts_us);
        let eth = wire::ethernet::EthernetFrame::new_checked(frame).unwrap();
        if eth.ethertype() != wire::ethernet::EtherType::Ipv4 {
            continue;
        }
        let ip = wire::ipv4::Ipv4Packet::new_checked(eth.payload()).unwrap();
        if ip.protocol() != wire::ipv4::Protocol::Igmp || ip.payload().first() != Some(&0x13) {
            continue;
        }
        let bytes = ip.payload().to_vec();
        let repr = DvmrpRepr::parse(&DvmrpPacket::new_checked(&bytes[..]).unwrap()).unwrap();
        out.push(Captured {
            at_ms: (ts_us - first) / 1000,
            src: ip.src_addr(),
            dst: ip.dst_addr(),
            bytes,
            repr,
        });
    }
    out
}

fn emit(repr: &DvmrpRepr) -> Vec<u8> {
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut DvmrpPacket::new_unchecked(&mut buf[..]));
    // What we send must be accepted by the parser that accepts mrouted's messages.
    let parsed = DvmrpRepr::parse(&DvmrpPacket::new_checked(&buf[..]).unwrap()).unwrap();
    assert_eq!(&parsed, repr);
    buf
}

/// The bytes of a message except the checksum and the capability byte (mrouted claims mtrace
/// and sets the leaf bit; we claim neither).
fn comparable(bytes: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[2] = 0;
    b[3] = 0;
    b[5] = 0;
    b
}

/// The actions the core sent, as (ifindex, dst, bytes).
fn sent(actions: &[Action]) -> Vec<(IfIndex, Ipv4Addr, Vec<u8>, DvmrpRepr)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { ifindex, dst, msg } => Some((*ifindex, *dst, emit(msg), msg.clone())),
            _ => None,
        })
        .collect()
}

const PEER: Ipv4Addr = Ipv4Addr::new(10, 77, 12, 1);
const US: Ipv4Addr = Ipv4Addr::new(10, 77, 12, 2);
const LINK: IfIndex = IfIndex(1);
const LAN: IfIndex = IfIndex(2);

/// Our core replaces mrouted 10.77.12.2 (link 10.77.12.0/24, LAN 10.77.2.0/24); everything the
/// real 10.77.12.1 sent is delivered at its capture time, and what the real 10.77.12.2 did on
/// its own initiative (prune after data, graft after a join, prune after a leave) is driven by
/// the equivalent local events at the same moments.
#[test]
fn mrouted_pair_link_interop() {
    let capture = read_capture(&shared_dir().join("testvectors/dvmrp/mrouted-pair-link.pcap"));
    assert!(capture.len() >= 25, "{} DVMRP messages", capture.len());
    let theirs: Vec<&Captured> = capture.iter().filter(|c| c.src == PEER).collect();
    let ours_real: Vec<&Captured> = capture.iter().filter(|c| c.src == US).collect();
    // mrouted's addressing, which ours must follow: probes and reports to 224.0.0.4,
    // prunes, grafts and graft-acks unicast to the neighbour.
    let expected_dst = |src: Ipv4Addr, m: &Message| match m {
        Message::Probe { .. } | Message::Report { .. } => wire::dvmrp::ALL_DVMRP_ROUTERS,
        _ if src == US => PEER,
        _ => US,
    };
    for c in &capture {
        assert_eq!(c.dst, expected_dst(c.src, &c.repr.message), "{:?}", c.repr);
    }
    // Every captured message survives our emit unchanged: same framing both ways.
    for c in &capture {
        assert_eq!(emit(&c.repr), c.bytes, "re-emitting {:?}", c.repr);
    }

    let interfaces = vec![
        DvmrpInterface { ifindex: LINK, addr: US, prefix_len: 24, metric: 1, threshold: 1 },
        DvmrpInterface {
            ifindex: LAN,
            addr: Ipv4Addr::new(10, 77, 2, 1),
            prefix_len: 24,
            metric: 1,
            threshold: 1,
        },
    ];
    let mut core = DvmrpRouter::new(DvmrpConfig::default(), interfaces, 0x4020_0000);
    let mut log: Vec<(u64, Action)> = Vec::new();
    let mut now_ms = 0;
    let feed = |core: &mut DvmrpRouter, log: &mut Vec<(u64, Action)>, at_ms: u64, event: Event| {
        // Run due timers first, as the daemon would.
        while let Some(d) = core.next_deadline().filter(|d| d.as_millis() <= at_ms) {
            for a in core.handle(d, Event::Tick) {
                log.push((d.as_millis(), a));
            }
        }
        for a in core.handle(Timestamp::from_millis(at_ms), event) {
            log.push((at_ms, a));
        }
    };
    feed(&mut core, &mut log, 0, Event::Start);

    // Local initiatives of the real 10.77.12.2, replayed as inputs at the same times.
    let real = |code: fn(&Message) -> bool, nth: usize| -> u64 {
        ours_real.iter().filter(|c| code(&c.repr.message)).nth(nth).map(|c| c.at_ms).unwrap()
    };
    let first_prune = real(|m| matches!(m, Message::Prune { .. }), 0);
    let graft_at = real(|m| matches!(m, Message::Graft { .. }), 0);
    let second_prune = real(|m| matches!(m, Message::Prune { .. }), 1);
    let g1 = Ipv4Addr::new(239, 1, 2, 3);
    let g2 = Ipv4Addr::new(239, 1, 2, 4);
    let mut local = vec![
        (
            first_prune,
            Event::DataArrived(Punt { iif: LINK, source: Ipv4Addr::new(10, 77, 1, 10), group: g1 }),
        ),
        (graft_at, Event::LocalMembership { ifindex: LAN, group: g1, source: None, present: true }),
        (
            second_prune,
            Event::LocalMembership { ifindex: LAN, group: g1, source: None, present: false },
        ),
        // Our source 10.77.2.10 starts sending to 239.1.2.4 before the peer prunes it.
        (
            second_prune + 1,
            Event::DataArrived(Punt { iif: LAN, source: Ipv4Addr::new(10, 77, 2, 10), group: g2 }),
        ),
    ];
    local.reverse();
    let mut marks = Vec::new();
    for c in &theirs {
        while local.last().is_some_and(|(at, _)| *at <= c.at_ms) {
            let (at, event) = local.pop().unwrap();
            marks.push((at, log.len()));
            feed(&mut core, &mut log, at, event);
        }
        let before = log.len();
        feed(
            &mut core,
            &mut log,
            c.at_ms,
            Event::Received { ifindex: LINK, src: PEER, msg: c.repr.clone() },
        );
        now_ms = c.at_ms;
        // Nothing the real peer sent is ignored.
        for (_, a) in &log[before..] {
            assert!(
                !matches!(a, Action::Debug(controlplane::dvmrp::DebugEvent::Ignored { .. })),
                "{:?} ignored: {a:?}",
                c.repr
            );
        }
    }
    let state = core.snapshot(Timestamp::from_millis(now_ms));

    // Adjacency.
    assert_eq!(state.neighbors.len(), 1);
    let n = &state.neighbors[0];
    assert_eq!(
        (n.addr, n.genid, n.two_way, n.major, n.minor),
        (PEER, 3_626_106_880, true, 3, 0xff)
    );
    // Routes learned with the right metrics; the peer depends on us for our LAN.
    let route = |o: [u8; 4]| state.routes.iter().find(|r| r.origin == Ipv4Addr::from(o)).unwrap();
    let r1 = route([10, 77, 1, 0]);
    assert_eq!((r1.metric, r1.gateway, r1.upstream), (2, Some(PEER), Some(LINK)));
    let r2 = route([10, 77, 2, 0]);
    assert_eq!((r2.metric, r2.connected), (1, true));
    assert_eq!(
        r2.dependents.iter().map(|d| (d.ifindex, d.neighbor)).collect::<Vec<_>>(),
        vec![(LINK, PEER)]
    );

    let all_sent: Vec<(u64, IfIndex, Ipv4Addr, Vec<u8>, DvmrpRepr)> = log
        .iter()
        .flat_map(|(at, a)| {
            sent(std::slice::from_ref(a)).into_iter().map(move |(i, d, b, r)| (*at, i, d, b, r))
        })
        .collect();
    for s in &all_sent {
        assert_eq!(s.2, expected_dst(US, &s.4.message), "{:?}", s.4);
    }
    let on_link = |m: fn(&Message) -> bool| -> Vec<(u64, Ipv4Addr, Vec<u8>)> {
        all_sent
            .iter()
            .filter(|s| s.1 == LINK && m(&s.4.message))
            .map(|s| (s.0, s.2, s.3.clone()))
            .collect()
    };
    let real_bytes = |m: fn(&Message) -> bool| -> Vec<Vec<u8>> {
        ours_real.iter().filter(|c| m(&c.repr.message)).map(|c| comparable(&c.bytes)).collect()
    };

    // Probes: ours answer the peer's at once and list it, framed as mrouted frames them.
    let probes = on_link(|m| matches!(m, Message::Probe { .. }));
    let listing: Vec<_> = probes.iter().filter(|p| p.2.len() == 16).collect();
    assert!(!listing.is_empty());
    assert!(real_bytes(|m| matches!(m, Message::Probe { .. })).contains(&comparable(&listing[0].2)));

    // Reports: our first two (full table once two-way; triggered poison reverse) are exactly
    // mrouted's first two reports.
    let reports = on_link(|m| matches!(m, Message::Report { .. }));
    let real_reports = real_bytes(|m| matches!(m, Message::Report { .. }));
    assert_eq!(comparable(&reports[0].2), real_reports[0], "full table: 10.77.2.0 metric 1");
    assert_eq!(comparable(&reports[1].2), real_reports[1], "triggered: 10.77.1.0 metric 34");
    assert!(reports.iter().all(|r| r.1 == wire::dvmrp::ALL_DVMRP_ROUTERS));

    // Prune, graft and the peer's graft-ack: same source network, group and addressee as the
    // real router's; the prune differs only in its lifetime (mrouted jitters it).
    let prunes = on_link(|m| matches!(m, Message::Prune { .. }));
    let real_prunes = real_bytes(|m| matches!(m, Message::Prune { .. }));
    assert_eq!(prunes.len(), 2, "prune after data, prune after the leave");
    for (ours, real) in prunes.iter().zip(&real_prunes) {
        assert_eq!(ours.1, PEER);
        assert_eq!(comparable(&ours.2)[..16], real[..16]);
    }
    let grafts = on_link(|m| matches!(m, Message::Graft { .. }));
    assert_eq!(grafts.len(), 1, "acked by the peer, so never retransmitted");
    assert_eq!(comparable(&grafts[0].2), real_bytes(|m| matches!(m, Message::Graft { .. }))[0]);
    assert!(log.iter().any(|(_, a)| matches!(
        a,
        Action::Debug(controlplane::dvmrp::DebugEvent::GraftAcked { .. })
    )));

    // The peer's prune of our LAN for 239.1.2.4 stops forwarding there; its graft is acked
    // with the same 8 bytes the real router sent, and forwarding resumes.
    let installs: Vec<(u64, Vec<Oif>)> = log
        .iter()
        .filter_map(|(at, a)| match a {
            Action::Mfib(MfibUpdate::Install(r)) if r.group == g2 => Some((*at, r.oifs.clone())),
            _ => None,
        })
        .collect();
    let link_oif = vec![Oif { ifindex: LINK, ttl_threshold: 1 }];
    assert_eq!(
        installs.iter().map(|i| i.1.clone()).collect::<Vec<_>>(),
        vec![link_oif.clone(), vec![], link_oif]
    );
    let acks = on_link(|m| matches!(m, Message::GraftAck { .. }));
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].1, PEER);
    assert_eq!(comparable(&acks[0].2), real_bytes(|m| matches!(m, Message::GraftAck { .. }))[0]);
    let peer_prune_lifetime = theirs
        .iter()
        .find_map(|c| match c.repr.message {
            Message::Prune { lifetime, .. } => Some(lifetime),
            _ => None,
        })
        .unwrap();
    assert!(peer_prune_lifetime > 5, "a real prune lifetime is honoured");
    assert!(!marks.is_empty());
}
