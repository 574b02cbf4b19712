//! Overlay header: parse → emit → parse gives the same Repr; the emitted fixed header equals the
//! input's; the MAC input ignores the hop count and covers everything else.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::overlay::{OverlayPacket, OverlayRepr, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = OverlayPacket::new_checked(data) else {
        return;
    };
    let _ = (packet.auth_tag(), packet.auth_input().chunks());
    let Ok(repr) = OverlayRepr::parse(&packet) else {
        return;
    };
    let mut buf = vec![0xa5; repr.buffer_len() + packet.payload().len()];
    {
        let mut out = OverlayPacket::new_unchecked(&mut buf[..]);
        repr.emit(&mut out);
        if let (Some(dst), Some(src)) = (out.auth_tag_mut(), packet.auth_tag()) {
            *dst = *src;
        }
        out.payload_mut().copy_from_slice(packet.payload());
    }
    assert_eq!(&buf[..], data, "packet bytes changed");
    let emitted = OverlayPacket::new_checked(&buf[..]).expect("emitted packet checks");
    assert_eq!(OverlayRepr::parse(&emitted), Ok(repr));
    let before = emitted.auth_input().chunks().concat();
    assert_eq!(before.len(), HEADER_LEN + 16 + packet.payload().len());
    let mut relayed = OverlayPacket::new_unchecked(&mut buf[..]);
    if relayed.decrement_hop_count().is_some() {
        assert_eq!(relayed.auth_input().chunks().concat(), before, "hop count is not MACed");
    }
});
