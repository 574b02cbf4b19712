//! Link-state (MOSPF-like, IP protocol 253): parse → emit → parse gives the same Repr; the emitted
//! message equals the input's first Packet Length bytes except the packet checksum (recomputed by
//! emit, not verified under cfg(fuzzing)) and the reserved bytes (sent as zero, ignored on
//! receipt), and its checksum verifies; the HMAC tag region is outside the Repr, so emit zeroes
//! it and copying the input's tag back in restores the input byte for byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::checksum;
use wire::linkstate::{
    LsPacket, LsRepr, LsaBody, Message, HEADER_LEN, HMAC_SHA256_LEN, LSA_HEADER_LEN,
};

/// Offsets, in the whole message, of the reserved bytes `emit` writes as zero.
fn reserved_bytes(repr: &LsRepr) -> Vec<usize> {
    let mut out = Vec::new();
    match &repr.message {
        Message::Hello { .. } => {}
        Message::Ack { headers } => {
            // LSA header byte 3 is reserved.
            out.extend((0..headers.len()).map(|i| HEADER_LEN + i * LSA_HEADER_LEN + 3));
        }
        Message::Update { lsas } => {
            out.extend([HEADER_LEN + 2, HEADER_LEN + 3]);
            let mut at = HEADER_LEN + 4;
            for lsa in lsas {
                out.push(at + 3);
                let body = at + LSA_HEADER_LEN;
                match &lsa.body {
                    LsaBody::Router { links, networks } => {
                        let nets = body + 4 + 12 * links.len();
                        for i in 0..networks.len() {
                            out.extend((5..8).map(|k| nets + 8 * i + k));
                        }
                    }
                    LsaBody::Membership { .. } => out.extend([body + 2, body + 3]),
                }
                at += lsa.buffer_len();
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = LsPacket::new_checked(data) else {
        return;
    };
    let _ =
        (packet.body(), packet.auth_tag(), packet.authenticated_bytes(), packet.verify_checksum());
    let Ok(repr) = LsRepr::parse(&packet) else {
        return;
    };
    let packet_len = usize::from(packet.packet_len());
    assert_eq!(repr.packet_len(), packet_len, "Repr length differs from Packet Length");
    let tag_len = if repr.auth.is_some() { HMAC_SHA256_LEN } else { 0 };
    assert_eq!(repr.buffer_len(), packet_len + tag_len);

    let mut buf = vec![0xa5; repr.buffer_len()];
    repr.emit(&mut LsPacket::new_unchecked(&mut buf[..]));
    assert!(buf[packet_len..].iter().all(|&b| b == 0), "tag not zeroed");
    assert_eq!(checksum::data(&buf[..packet_len]), 0xffff, "emitted checksum does not verify");

    let mut expected = data[..packet_len].to_vec();
    expected[8..10].copy_from_slice(&buf[8..10]); // checksum, recomputed by emit
    for i in reserved_bytes(&repr) {
        expected[i] = 0;
    }
    assert_eq!(&buf[..packet_len], &expected[..], "message bytes changed");

    let mut out = LsPacket::new_unchecked(&mut buf[..]);
    out.auth_tag_mut().copy_from_slice(packet.auth_tag());
    let emitted = LsPacket::new_checked(&buf[..]).expect("emitted message checks");
    assert_eq!(emitted.auth_tag(), packet.auth_tag());
    assert_eq!(LsRepr::parse(&emitted).expect("emitted message parses"), repr);
    assert_eq!(repr.to_bytes()[..packet_len], buf[..packet_len], "to_bytes differs from emit");
});
