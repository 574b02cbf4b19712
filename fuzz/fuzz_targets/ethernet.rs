//! Ethernet: parse → emit → parse gives the same Repr, and the emitted header is the input's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::ethernet::{EthernetFrame, EthernetRepr};

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = EthernetFrame::new_checked(data) else {
        return;
    };
    let Ok(repr) = EthernetRepr::parse(&frame) else {
        return;
    };
    let _ = frame.payload();
    let mut buf = vec![0xa5; repr.buffer_len()];
    repr.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    assert_eq!(&buf[..], &data[..repr.buffer_len()], "header bytes changed");
    let again = EthernetRepr::parse(&EthernetFrame::new_checked(&buf[..]).expect("emitted frame"))
        .expect("emitted frame parses");
    assert_eq!(again, repr);
});
