//! Overlay control messages (UDP port 7411): parse → emit → parse gives the same Repr; the emitted
//! message equals the input's claimed length except the reserved bytes (sent as zero, ignored on
//! receipt) and the tag, which the Repr does not carry (emit zeroes it; copying it back restores
//! the input); the MAC input is everything but the tag; emit into a short buffer fails cleanly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::overlay_control::{ControlPacket, ControlRepr, Message, HEADER_LEN, TAG_LEN};
use wire::Error;

/// Offsets, in the whole message, of the reserved bytes `emit` writes as zero.
fn reserved_bytes(repr: &ControlRepr) -> Vec<usize> {
    let mut out = vec![1];
    let body = HEADER_LEN;
    match &repr.message {
        Message::JoinAccept { .. } | Message::LinkState { .. } => {
            out.extend([body + 10, body + 11]);
        }
        Message::JoinReject { .. } => out.extend(body + 1..body + 4),
        Message::MemberList { .. } => out.extend([body + 2, body + 3]),
        Message::Join { .. }
        | Message::Leave
        | Message::Probe { .. }
        | Message::ProbeReply { .. }
        | Message::Heartbeat
        | Message::Unlink => {}
    }
    let trailer = body + repr.message.body_len();
    out.extend(trailer + 1..trailer + 4);
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = ControlPacket::new_checked(data) else {
        return;
    };
    let _ = (packet.body(), packet.key_id(), packet.auth_sequence(), packet.auth_tag());
    assert_eq!(packet.auth_input().len(), packet.total_len() - TAG_LEN);
    let Ok(repr) = ControlRepr::parse(&packet) else {
        return;
    };
    let len = repr.buffer_len();
    assert_eq!(len, packet.total_len(), "Repr length differs from the claimed length");

    let mut short = vec![0xa5; len - 1];
    assert_eq!(repr.emit(&mut ControlPacket::new_unchecked(&mut short[..])), Err(Error::Truncated));
    assert!(short.iter().all(|&b| b == 0xa5), "failed emit wrote bytes");

    let mut buf = vec![0xa5; len];
    repr.emit(&mut ControlPacket::new_unchecked(&mut buf[..])).expect("parsed Repr emits");
    assert_eq!(&buf[len - TAG_LEN..], &[0; TAG_LEN], "tag not zeroed");
    let mut expected = data[..len].to_vec();
    for i in reserved_bytes(&repr) {
        expected[i] = 0;
    }
    expected[len - TAG_LEN..].fill(0);
    assert_eq!(buf, expected, "message bytes changed");

    *ControlPacket::new_unchecked(&mut buf[..]).auth_tag_mut() = *packet.auth_tag();
    let emitted = ControlPacket::new_checked(&buf[..]).expect("emitted message checks");
    assert_eq!(emitted.auth_tag(), packet.auth_tag());
    assert_eq!(emitted.auth_input(), &buf[..len - TAG_LEN]);
    assert_eq!(ControlRepr::parse(&emitted), Ok(repr));
});
