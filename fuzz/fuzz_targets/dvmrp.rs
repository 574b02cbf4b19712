//! DVMRP (IGMP type 0x13): parse → emit → parse gives the same Repr.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::dvmrp::{DvmrpPacket, DvmrpRepr};

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = DvmrpPacket::new_checked(data) else {
        return;
    };
    let Ok(repr) = DvmrpRepr::parse(&packet) else {
        return;
    };
    let mut buf = vec![0xa5; repr.buffer_len()];
    repr.emit(&mut DvmrpPacket::new_unchecked(&mut buf[..]));
    let emitted = DvmrpPacket::new_checked(&buf[..]).expect("emitted message checks");
    assert_eq!(DvmrpRepr::parse(&emitted).expect("emitted message parses"), repr);
});
