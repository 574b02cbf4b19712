//! UDP: parse → emit → parse gives the same Repr and payload; fill_checksum then verifies.
#![no_main]

use core::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use wire::udp::{UdpPacket, UdpRepr};

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = UdpPacket::new_checked(data) else {
        return;
    };
    let Ok(repr) = UdpRepr::parse(&packet) else {
        return;
    };
    let mut buf = vec![0xa5; repr.buffer_len() + repr.payload_len];
    let (src, dst) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(239, 1, 2, 3));
    {
        let mut out = UdpPacket::new_unchecked(&mut buf[..]);
        repr.emit(&mut out);
        out.payload_mut().copy_from_slice(packet.payload());
        out.fill_checksum(src, dst);
    }
    assert_eq!(&buf[..6], &data[..6], "ports or length changed");
    let emitted = UdpPacket::new_checked(&buf[..]).expect("emitted datagram checks");
    assert_eq!(emitted.payload(), packet.payload());
    assert_ne!(emitted.checksum(), 0, "a filled checksum is never 0");
    assert_eq!(UdpRepr::parse(&emitted).expect("emitted datagram parses"), repr);
});
