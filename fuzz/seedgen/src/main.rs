//! Writes `corpus/seeds/linkstate/` and `corpus/seeds/overlay_control/`: no capture holds these
//! formats, so the seeds are valid messages built as `Repr`s and emitted by `fanout-wire` itself,
//! one or more per message kind (with and without authentication, empty and non-empty lists), so
//! the fuzzer starts from every branch of each parser. The tags are not real HMACs (`wire` never
//! checks them); they only give the fuzzer a realistic, non-zero tag region. Every seed is parsed
//! back before it is written, so a seed the parser rejects stops the generator.
//!
//! Run from `fuzz/`: `cargo run --release -p fanout-fuzz-seedgen`. Output is deterministic; the
//! directories are emptied first, so removed seeds disappear.

use std::fs;
use std::net::Ipv4Addr;
use std::path::Path;

use wire::linkstate::{
    AttachedNetwork, AuthInfo, LsPacket, LsRepr, Lsa, LsaBody, Message as LsMessage, RouterLink,
    MAX_AGE,
};
use wire::overlay_control::{
    ControlPacket, ControlRepr, LinkEntry, Message as CtlMessage, RejectReason,
};

/// A deterministic stand-in for an HMAC tag, distinct per seed.
fn fake_tag(seed: &[u8], len: usize) -> Vec<u8> {
    let mut x: u32 = 0x811c_9dc5;
    for &b in seed {
        x = (x ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_be_bytes()[0]
        })
        .collect()
}

fn linkstate_seeds() -> Vec<(String, Vec<u8>)> {
    let router = Lsa::new(
        3,
        0x0a00_0001,
        0x0a00_0001,
        0x8000_0001,
        LsaBody::Router {
            links: vec![
                RouterLink { neighbor: 0x0a00_0002, link_id: 2, cost: 10 },
                RouterLink { neighbor: 0x0a00_0003, link_id: 3, cost: 1 },
            ],
            networks: vec![
                AttachedNetwork { prefix: Ipv4Addr::new(10, 1, 0, 0), prefix_len: 24 },
                AttachedNetwork { prefix: Ipv4Addr::new(192, 168, 7, 0), prefix_len: 32 },
            ],
        },
    );
    let stub = Lsa::new(
        0,
        0x0a00_0002,
        0x0a00_0002,
        1,
        LsaBody::Router { links: vec![], networks: vec![] },
    );
    let membership = Lsa::new(
        17,
        u32::from(Ipv4Addr::new(239, 1, 2, 3)),
        0x0a00_0001,
        0x8000_0005,
        LsaBody::Membership { interfaces: vec![2, 3, 7] },
    );
    let withdrawn = Lsa::new(
        MAX_AGE,
        u32::from(Ipv4Addr::new(239, 9, 9, 9)),
        0x0a00_0003,
        0x8000_0009,
        LsaBody::Membership { interfaces: vec![] },
    );
    let messages = [
        (
            "hello",
            LsMessage::Hello {
                hello_interval_ms: 100,
                dead_interval_ms: 400,
                neighbors: vec![0x0a00_0002, 0x0a00_0003],
            },
        ),
        (
            "hello-alone",
            LsMessage::Hello { hello_interval_ms: 1000, dead_interval_ms: 4000, neighbors: vec![] },
        ),
        ("update-router", LsMessage::Update { lsas: vec![router.clone()] }),
        (
            "update-mixed",
            LsMessage::Update {
                lsas: vec![router.clone(), stub.clone(), membership.clone(), withdrawn.clone()],
            },
        ),
        ("update-membership", LsMessage::Update { lsas: vec![membership.clone()] }),
        ("update-empty", LsMessage::Update { lsas: vec![] }),
        (
            "ack",
            LsMessage::Ack { headers: vec![router.header, membership.header, withdrawn.header] },
        ),
        ("ack-empty", LsMessage::Ack { headers: vec![] }),
    ];
    let mut out = Vec::new();
    for (name, message) in messages {
        for auth in [None, Some(AuthInfo { key_id: 1, sequence: 0x0000_0001_0000_002a })] {
            let repr = LsRepr { router_id: 0x0a00_0001, auth, message: message.clone() };
            let mut bytes = repr.to_bytes();
            let mut packet = LsPacket::new_unchecked(&mut bytes[..]);
            let tag = fake_tag(packet.authenticated_bytes(), packet.auth_tag().len());
            packet.auth_tag_mut().copy_from_slice(&tag);
            let parsed = LsPacket::new_checked(&bytes[..]).and_then(|p| LsRepr::parse(&p));
            assert_eq!(parsed, Ok(repr), "seed {name} does not parse back");
            let suffix = if auth.is_some() { "-auth" } else { "" };
            out.push((format!("{name}{suffix}"), bytes));
        }
    }
    out
}

fn overlay_control_seeds() -> Vec<(String, Vec<u8>)> {
    let members =
        vec![Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 12, 1)];
    let messages = [
        ("join", CtlMessage::Join { timestamp: 1_700_000_000_123 }),
        (
            "join-accept",
            CtlMessage::JoinAccept { timestamp: 1_700_000_000_123, members: members.clone() },
        ),
        ("join-accept-empty", CtlMessage::JoinAccept { timestamp: 0, members: vec![] }),
        ("join-reject", CtlMessage::JoinReject { reason: RejectReason::Replay }),
        ("join-reject-unknown", CtlMessage::JoinReject { reason: RejectReason::Unknown(200) }),
        ("leave", CtlMessage::Leave),
        (
            "link-state",
            CtlMessage::LinkState {
                origin: Ipv4Addr::new(10, 0, 0, 2),
                sequence: 42,
                links: vec![
                    LinkEntry { neighbor: Ipv4Addr::new(10, 0, 0, 1), cost: 3 },
                    LinkEntry { neighbor: Ipv4Addr::new(10, 0, 12, 1), cost: 250 },
                ],
            },
        ),
        (
            "link-state-empty",
            CtlMessage::LinkState {
                origin: Ipv4Addr::new(10, 0, 0, 3),
                sequence: u32::MAX,
                links: vec![],
            },
        ),
        ("probe", CtlMessage::Probe { timestamp: 987_654 }),
        ("probe-reply", CtlMessage::ProbeReply { timestamp: 987_654 }),
        ("heartbeat", CtlMessage::Heartbeat),
        ("member-list", CtlMessage::MemberList { members }),
        ("member-list-empty", CtlMessage::MemberList { members: vec![] }),
        ("unlink", CtlMessage::Unlink),
    ];
    messages
        .into_iter()
        .enumerate()
        .map(|(i, (name, message))| {
            let repr = ControlRepr {
                group: Ipv4Addr::new(239, 1, 1, 1),
                sender: Ipv4Addr::new(10, 0, 0, 2),
                message,
                key_id: 1,
                auth_sequence: u32::try_from(i + 1).expect("few seeds"),
            };
            let mut bytes = vec![0; repr.buffer_len()];
            let mut packet = ControlPacket::new_unchecked(&mut bytes[..]);
            repr.emit(&mut packet).expect("seed fits its buffer");
            let tag = fake_tag(packet.auth_input(), packet.auth_tag().len());
            packet.auth_tag_mut().copy_from_slice(&tag);
            let parsed =
                ControlPacket::new_checked(&bytes[..]).and_then(|p| ControlRepr::parse(&p));
            assert_eq!(parsed, Ok(repr), "seed {name} does not parse back");
            (name.to_owned(), bytes)
        })
        .collect()
}

fn write(target: &str, seeds: &[(String, Vec<u8>)]) -> std::io::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/seeds").join(target);
    fs::create_dir_all(&dir)?;
    for old in fs::read_dir(&dir)? {
        fs::remove_file(old?.path())?;
    }
    for (name, bytes) in seeds {
        fs::write(dir.join(name), bytes)?;
    }
    println!("{target}: {} seeds", seeds.len());
    Ok(())
}

fn main() -> std::io::Result<()> {
    write("linkstate", &linkstate_seeds())?;
    write("overlay_control", &overlay_control_seeds())
}
