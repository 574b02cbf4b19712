//! IPv4: parse → emit → parse gives the same Repr; the emitted header equals the input header
//! except the checksum (not verified under cfg(fuzzing)) and the reserved flag bit (not kept);
//! decrement_ttl agrees with a full checksum recomputation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::ipv4::{Ipv4Packet, Ipv4Repr};

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = Ipv4Packet::new_checked(data) else {
        return;
    };
    let _ = (packet.options(), packet.payload(), packet.is_fragment());
    let Ok(repr) = Ipv4Repr::parse(&packet) else {
        return;
    };
    let header_len = repr.buffer_len();
    let mut buf = vec![0xa5; header_len + repr.payload_len];
    {
        let mut out = Ipv4Packet::new_unchecked(&mut buf[..]);
        repr.emit(&mut out);
        out.payload_mut().copy_from_slice(packet.payload());
    }
    let mut expected = data[..header_len].to_vec();
    expected[6] &= 0x7f; // reserved flag
    expected[10..12].copy_from_slice(&buf[10..12]); // checksum, recomputed by emit
    assert_eq!(&buf[..header_len], &expected[..], "header bytes changed");

    let emitted = Ipv4Packet::new_checked(&buf[..]).expect("emitted packet checks");
    assert_eq!(emitted.payload(), packet.payload());
    let again = Ipv4Repr::parse(&emitted).expect("emitted packet parses");
    assert_eq!(again, repr);

    let mut out = Ipv4Packet::new_unchecked(&mut buf[..]);
    if out.decrement_ttl().is_some() {
        let incremental = out.checksum();
        out.fill_checksum();
        assert_eq!(incremental, out.checksum(), "incremental checksum differs");
    }
});
