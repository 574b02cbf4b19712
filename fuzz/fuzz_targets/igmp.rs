//! IGMP (v1/v2/v3, not DVMRP): parse → emit → parse gives the same Repr.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::igmp::{IgmpPacket, IgmpRepr};

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = IgmpPacket::new_checked(data) else {
        return;
    };
    let Ok(repr) = IgmpRepr::parse(&packet) else {
        return;
    };
    let mut buf = vec![0xa5; repr.buffer_len()];
    repr.emit(&mut IgmpPacket::new_unchecked(&mut buf[..]));
    let emitted = IgmpPacket::new_checked(&buf[..]).expect("emitted message checks");
    assert!(emitted.verify_checksum());
    assert_eq!(IgmpRepr::parse(&emitted).expect("emitted message parses"), repr);
});
