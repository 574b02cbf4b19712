//! IGMP conformance: scenario folders of numbered JSON steps replayed through the sans-IO core
//! (STYLE.md §B), plus a replay of real mrouted/Linux captures.
//!
//! Layout: `tests/conformance/igmp/<scenario>/setup.json` (`{"interface", "address", "config"}`,
//! the config with RFC defaults for absent keys), then `NN-input.json` / `NN-output.json`
//! pairs. An input is `{"at": <ms>, "event": <Event>}`, or `{"at": <ms>}` alone to just let time
//! pass. Before the event, every timer due at or before `at` fires (one `Tick` per deadline, as
//! the daemon would deliver them). The output lists every action with its time, then the
//! membership (`members()`) and `next_deadline` after the step; it must match exactly.
//!
//! `IGMP_CONFORMANCE_BLESS=1` rewrites the outputs from the current code; review the diff.

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use controlplane::igmp::{Action, Event, IgmpConfig, IgmpInterface, Membership};
use controlplane::timer::Timestamp;
use serde::{Deserialize, Serialize};
use wire::igmp::{IgmpPacket, IgmpRepr, MessageType};

#[derive(Deserialize)]
struct Setup {
    interface: String,
    address: Ipv4Addr,
    #[serde(default)]
    config: IgmpConfig,
}

#[derive(Deserialize)]
struct Input {
    at: Timestamp,
    #[serde(default)]
    event: Option<Event>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct TimedAction {
    at: Timestamp,
    action: Action,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Output {
    actions: Vec<TimedAction>,
    members: Vec<Membership>,
    next_deadline: Option<Timestamp>,
}

fn scenario_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/igmp").join(name)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> T {
    let text =
        fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn step(iface: &mut IgmpInterface, input: Input) -> Output {
    let mut actions = Vec::new();
    while let Some(at) = iface.next_deadline().filter(|d| *d <= input.at) {
        actions.extend(
            iface.handle(at, Event::Tick).into_iter().map(|action| TimedAction { at, action }),
        );
    }
    if let Some(event) = input.event {
        actions.extend(
            iface
                .handle(input.at, event)
                .into_iter()
                .map(|action| TimedAction { at: input.at, action }),
        );
    }
    Output { actions, members: iface.members().collect(), next_deadline: iface.next_deadline() }
}

fn run_scenario(name: &str) {
    let dir = scenario_dir(name);
    let setup: Setup = read_json(&dir.join("setup.json"));
    let mut iface = IgmpInterface::new(setup.interface, setup.address, setup.config)
        .unwrap_or_else(|e| panic!("{name}: bad setup.json config: {e}"));
    let bless = std::env::var_os("IGMP_CONFORMANCE_BLESS").is_some();
    let mut steps = 0;
    for n in 1.. {
        let input_path = dir.join(format!("{n:02}-input.json"));
        if !input_path.exists() {
            break;
        }
        let output_path = dir.join(format!("{n:02}-output.json"));
        let got = step(&mut iface, read_json(&input_path));
        if bless {
            let text = serde_json::to_string_pretty(&got).unwrap() + "\n";
            fs::write(&output_path, text).unwrap();
        } else {
            let want: Output = read_json(&output_path);
            assert_eq!(
                got,
                want,
                "{name} step {n:02}: got\n{}",
                serde_json::to_string_pretty(&got).unwrap()
            );
        }
        steps += 1;
    }
    assert!(steps > 0, "{name}: no NN-input.json steps in {}", dir.display());
}

// Input:
//  * Start; startup queries; a query from a lower address; silence.
// Output:
//  * general queries at 0 s and 31.25 s; non-querier after the lower query, no queries;
//    querier again exactly 255 s (Other Querier Present Interval) after the last one heard.
#[test]
fn querier_election() {
    run_scenario("querier-election");
}

// Input:
//  * IGMPv2 report, then a v2 leave.
// Output:
//  * join (EXCLUDE {}); on the leave two group-specific queries 1 s apart; the group leaves
//    exactly LMQI * LMQC = 2 s after the leave.
#[test]
fn v2_join_leave() {
    run_scenario("v2-join-leave");
}

// Input:
//  * IGMPv3 source-specific join (ALLOW {S1}), then TO_EX {S2} from another host, then BLOCK.
// Output:
//  * INCLUDE {S1}; switch to EXCLUDE with S1 queried and S2 blocked; group-and-source-specific
//    queries; sources time out after LMQT.
#[test]
fn v3_source_filtering() {
    run_scenario("v3-source-filtering");
}

// Input:
//  * the Linux host's v3 reports of mrouted-querier-lan-h2.pcap (transcribed: times relative to
//    the first frame, in ms), including mrouted's own link-local reports.
// Output:
//  * link-local reports ignored; TO_EX {} joins 239.1.2.3; TO_IN {} leaves after two
//    group-specific queries at the same times mrouted sent them; the repeated TO_IN {} does not
//    restart the query round.
#[test]
fn linux_v3_host_from_capture() {
    run_scenario("linux-v3-mrouted-lan-h2");
}

// ===== capture replay =====

/// IPv4 frames of a little-endian, microsecond pcap with Ethernet link type: (time in µs,
/// IPv4 packet bytes).
fn pcap_ipv4_frames(path: &Path) -> Vec<(u64, Vec<u8>)> {
    let data = fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert!(data.len() >= 24, "{}: not a pcap file", path.display());
    assert_eq!(
        &data[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "{}: expected a little-endian µs pcap",
        path.display()
    );
    assert_eq!(u32::from_le_bytes(data[20..24].try_into().unwrap()), 1, "Ethernet link type");
    let mut frames = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        let word =
            |o: usize| u64::from(u32::from_le_bytes(data[at + o..at + o + 4].try_into().unwrap()));
        let time = word(0) * 1_000_000 + word(4);
        let caplen = usize::try_from(word(8)).unwrap();
        let frame = &data[at + 16..at + 16 + caplen];
        at += 16 + caplen;
        if frame.len() > 14 && frame[12..14] == [0x08, 0x00] {
            frames.push((time, frame[14..].to_vec()));
        }
    }
    frames
}

/// One IGMP message of a capture: time (ms since the first frame), IP source, IP destination.
fn capture_igmp(path: &Path) -> Vec<(Timestamp, Ipv4Addr, Ipv4Addr, IgmpRepr)> {
    let frames = pcap_ipv4_frames(path);
    let t0 = frames.first().map(|(t, _)| *t).expect("capture has frames");
    let mut out = Vec::new();
    for (time, ip) in frames {
        if ip[9] != 2 {
            continue;
        }
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
        let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
        let packet = IgmpPacket::new_checked(&ip[ihl..]).expect("IGMP packet");
        if packet.msg_type() == MessageType::Dvmrp {
            continue;
        }
        let repr = IgmpRepr::parse(&packet).expect("IGMP message parses");
        out.push((Timestamp::from_millis((time - t0) / 1000), src, dst, repr));
    }
    out
}

/// Feeds every IGMP message of a real capture of mrouted (querier) and a Linux host into our
/// core standing in for mrouted (same address), and checks that we send the group-specific
/// queries mrouted sent: same group, same bytes-level fields, within 5 ms.
fn replay_capture(file: &str, router: Ipv4Addr) {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testvectors/igmp").join(file);
    assert!(
        path.exists(),
        "capture missing: {} (shared/ must sit beside the repo)",
        path.display()
    );
    let messages = capture_igmp(&path);
    let theirs: Vec<_> = messages
        .iter()
        .filter_map(|(t, src, dst, m)| match m {
            IgmpRepr::Query(q) if *src == router && !q.group.is_unspecified() => {
                Some((*t, *dst, q.clone()))
            }
            _ => None,
        })
        .collect();
    assert!(!theirs.is_empty(), "{file}: no group-specific queries from {router}");

    let mut iface = IgmpInterface::new("cap0", router, IgmpConfig::default()).unwrap();
    let mut ours = Vec::new();
    let mut record = |at: Timestamp, actions: Vec<Action>| {
        for a in actions {
            if let Action::Send { dst, msg: IgmpRepr::Query(q) } = a {
                if !q.group.is_unspecified() {
                    ours.push((at, dst, q));
                }
            }
        }
    };
    record(Timestamp::ZERO, iface.handle(Timestamp::ZERO, Event::Start));
    let end = messages.last().map(|m| m.0).unwrap();
    for (at, src, dst, msg) in messages {
        while let Some(d) = iface.next_deadline().filter(|d| *d <= at) {
            record(d, iface.handle(d, Event::Tick));
        }
        record(at, iface.handle(at, Event::Received { src, dst, msg }));
    }
    while let Some(d) = iface.next_deadline().filter(|d| *d <= end) {
        record(d, iface.handle(d, Event::Tick));
    }
    assert_eq!(ours.len(), theirs.len(), "{file}: ours {ours:?}\ntheirs {theirs:?}");
    for ((t_ours, dst_ours, q_ours), (t_theirs, dst_theirs, q_theirs)) in ours.iter().zip(&theirs) {
        let skew = t_ours.as_millis().abs_diff(t_theirs.as_millis());
        assert!(skew <= 5, "{file}: query at {t_ours} vs mrouted's at {t_theirs}");
        assert_eq!(dst_ours, dst_theirs);
        assert_eq!(q_ours, q_theirs, "{file}: query content differs from mrouted's");
    }
    assert!(
        iface.counters().link_local_ignored > 0,
        "{file}: mrouted's own 224.0.0.x reports should be ignored"
    );
}

#[test]
fn mrouted_capture_h1_replay() {
    replay_capture("mrouted-querier-lan-h1.pcap", Ipv4Addr::new(10, 77, 1, 1));
}

#[test]
fn mrouted_capture_h2_replay() {
    replay_capture("mrouted-querier-lan-h2.pcap", Ipv4Addr::new(10, 77, 2, 1));
}
