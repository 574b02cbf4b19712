//! UDP datagrams (RFC 768) over IPv4: multicast data and the overlay tunnel both ride in UDP.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Source Port          |       Destination Port        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |            Length             |           Checksum            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                          Payload ...                          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! # Invariants
//!
//! After [`UdpPacket::new_checked`] succeeds: `8 <= length field <= buffer length`, so every
//! accessor is in bounds and [`UdpPacket::payload`] is bounded by the length field (trailing
//! bytes in the buffer are ignored).
//!
//! The checksum covers the IPv4 pseudo header, so it needs the addresses:
//! [`UdpPacket::verify_checksum`] and [`UdpPacket::fill_checksum`] take them. A stored checksum of
//! 0 means "not computed" and verifies; a computed 0 is sent as `0xffff` (RFC 768).
//! [`UdpRepr::parse`] does not verify the checksum (callers that care call `verify_checksum`
//! with the IPv4 addresses), and [`UdpRepr::emit`] writes 0; fill it after the payload is in
//! place.
//!
//! # Fuzzing
//!
//! Under `cfg(fuzzing)` `verify_checksum` always returns true.

use core::net::Ipv4Addr;

use crate::{checksum, ipv4::Protocol, Error, Result};

/// Length of the UDP header.
pub const HEADER_LEN: usize = field::PAYLOAD;

mod field {
    use crate::Field;

    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
    pub const PAYLOAD: usize = 8;
}

/// A read/write view of a UDP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Length of the header.
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Wraps a buffer without checks (for emission into a buffer the caller sized).
    #[inline]
    pub const fn new_unchecked(buffer: T) -> UdpPacket<T> {
        UdpPacket { buffer }
    }

    /// Wraps untrusted bytes, checking lengths (see [`UdpPacket::check_len`]).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<UdpPacket<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// [`Error::Truncated`] if the buffer is shorter than the header; [`Error::BadLength`] if
    /// the length field is below 8 or beyond the buffer.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let field_len = usize::from(self.len());
        if field_len < HEADER_LEN || field_len > len {
            return Err(Error::BadLength);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn read_u16(&self, f: crate::Field) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[f.start], b[f.start + 1]])
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        self.read_u16(field::SRC_PORT)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        self.read_u16(field::DST_PORT)
    }

    /// Length field: header + payload in bytes.
    #[inline]
    pub fn len(&self) -> u16 {
        self.read_u16(field::LENGTH)
    }

    /// Whether the payload is empty (length field of 8 or less).
    #[inline]
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// Checksum as stored (0 = not computed).
    #[inline]
    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM)
    }

    /// Payload, bounded by the length field.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }

    /// Whether the checksum verifies against the pseudo header of `src` → `dst`. A stored 0
    /// (checksum not computed) verifies. Always true under `cfg(fuzzing)`.
    #[inline]
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if cfg!(fuzzing) || self.checksum() == 0 {
            return true;
        }
        let len = self.len();
        let sum = checksum::combine(&[
            checksum::pseudo_header(src, dst, Protocol::Udp.into(), len),
            checksum::data(&self.buffer.as_ref()[..usize::from(len)]),
        ]);
        sum == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    #[inline]
    fn write_u16(&mut self, f: crate::Field, value: u16) {
        self.buffer.as_mut()[f].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the source port.
    #[inline]
    pub fn set_src_port(&mut self, port: u16) {
        self.write_u16(field::SRC_PORT, port);
    }

    /// Sets the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, port: u16) {
        self.write_u16(field::DST_PORT, port);
    }

    /// Sets the length field (header + payload).
    #[inline]
    pub fn set_len(&mut self, len: u16) {
        self.write_u16(field::LENGTH, len);
    }

    /// Stores a checksum value.
    #[inline]
    pub fn set_checksum(&mut self, checksum: u16) {
        self.write_u16(field::CHECKSUM, checksum);
    }

    /// Computes and stores the checksum over pseudo header, header and payload (up to the
    /// length field, which must already be set and within the buffer). A computed 0 is stored
    /// as `0xffff`, since 0 means "no checksum".
    #[inline]
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let len = self.len();
        let sum = checksum::combine(&[
            checksum::pseudo_header(src, dst, Protocol::Udp.into(), len),
            checksum::data(&self.buffer.as_ref()[..usize::from(len)]),
        ]);
        let c = !sum;
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }

    /// Mutable payload, bounded by the length field.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// The fields of a UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UdpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload length in bytes (at most 65527).
    pub payload_len: usize,
}

impl UdpRepr {
    /// Reads a checked datagram. The checksum is not verified here (it needs the IPv4
    /// addresses; see [`UdpPacket::verify_checksum`]).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &UdpPacket<&T>) -> Result<UdpRepr> {
        packet.check_len()?;
        Ok(UdpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload_len: usize::from(packet.len()) - HEADER_LEN,
        })
    }

    /// Length of the header this emits.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header with a zero checksum; the length field is `8 + payload_len`
    /// (saturating at 65535). Call [`UdpPacket::fill_checksum`] once the payload is written.
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut UdpPacket<T>) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        let len = HEADER_LEN.saturating_add(self.payload_len);
        packet.set_len(u16::try_from(len).unwrap_or(u16::MAX));
        packet.set_checksum(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 10);
    const DST: Ipv4Addr = Ipv4Addr::new(239, 1, 2, 3);

    // Multicast data 10.77.1.10:36729 -> 239.1.2.3:5000 (dvmrp/mrouted-pair-link.pcap).
    static DATAGRAM: [u8; 17] = [
        0x8f, 0x79, 0x13, 0x88, 0x00, 0x11, 0x72, 0x4c, 0x69, 0x6f, 0x70, 0x2d, 0x73, 0x65, 0x71,
        0x20, 0x30,
    ];

    fn golden_repr() -> UdpRepr {
        UdpRepr { src_port: 36729, dst_port: 5000, payload_len: 9 }
    }

    #[test]
    fn deconstruct() {
        let p = UdpPacket::new_checked(&DATAGRAM[..]).unwrap();
        assert_eq!(p.src_port(), 36729);
        assert_eq!(p.dst_port(), 5000);
        assert_eq!(p.len(), 17);
        assert_eq!(p.checksum(), 0x724c);
        assert_eq!(p.payload(), &DATAGRAM[8..]);
        assert!(p.verify_checksum(SRC, DST));
        assert!(!p.verify_checksum(SRC, Ipv4Addr::new(239, 1, 2, 4)));
        assert_eq!(UdpRepr::parse(&p).unwrap(), golden_repr());
    }

    #[test]
    fn construct_into_poisoned_buffer() {
        let mut bytes = [0xa5u8; 17];
        let mut p = UdpPacket::new_unchecked(&mut bytes[..]);
        golden_repr().emit(&mut p);
        p.payload_mut().copy_from_slice(&DATAGRAM[8..]);
        p.fill_checksum(SRC, DST);
        assert_eq!(bytes, DATAGRAM);
    }

    #[test]
    fn zero_checksum_means_not_computed() {
        let mut b = DATAGRAM;
        b[6..8].copy_from_slice(&[0, 0]);
        assert!(UdpPacket::new_checked(&b[..]).unwrap().verify_checksum(SRC, DST));
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // Choose the payload word so the datagram sums to 0xffff without its checksum.
        let mut b = [0u8; 10];
        let mut p = UdpPacket::new_unchecked(&mut b[..]);
        UdpRepr { src_port: 1, dst_port: 2, payload_len: 2 }.emit(&mut p);
        let partial = checksum::combine(&[
            checksum::pseudo_header(SRC, DST, 17, 10),
            checksum::data(&p.buffer[..]),
        ]);
        p.payload_mut().copy_from_slice(&(!partial).to_be_bytes());
        p.fill_checksum(SRC, DST);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum(SRC, DST));
    }

    #[test]
    fn trailing_bytes_are_not_payload() {
        let mut b = DATAGRAM.to_vec();
        b.extend_from_slice(&[0; 5]);
        let p = UdpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload(), &DATAGRAM[8..]);
        assert!(p.verify_checksum(SRC, DST));
    }

    #[test]
    fn check_len_errors() {
        assert_eq!(UdpPacket::new_checked(&DATAGRAM[..7]).unwrap_err(), Error::Truncated);
        assert_eq!(UdpPacket::new_checked(&DATAGRAM[..16]).unwrap_err(), Error::BadLength);
        let mut b = DATAGRAM;
        b[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(UdpPacket::new_checked(&b[..]).unwrap_err(), Error::BadLength);
    }

    /// Every UDP datagram in the captures (multicast data sent by Linux hosts, checksummed by
    /// the kernel) verifies, and emit + fill_checksum reproduces it byte for byte.
    #[test]
    fn captured_datagrams_verify_and_re_emit() {
        use crate::{
            ethernet::{EtherType, EthernetFrame},
            ipv4::Ipv4Packet,
        };
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testvectors");
        let mut seen = 0;
        for file in [
            "dvmrp/mrouted-pair-link.pcap",
            "igmp/mrouted-querier-lan-h1.pcap",
            "igmp/mrouted-querier-lan-h2.pcap",
            "pimdm/pimdd-pair-link.pcap",
        ] {
            let path = dir.join(file);
            let f = std::fs::File::open(&path)
                .unwrap_or_else(|e| panic!("golden capture {} missing: {e}", path.display()));
            let mut reader = pcap_file::pcap::PcapReader::new(f).unwrap();
            while let Some(record) = reader.next_packet() {
                let record = record.unwrap();
                let frame = EthernetFrame::new_checked(&record.data[..]).unwrap();
                if frame.ethertype() != EtherType::Ipv4 {
                    continue;
                }
                let ip = Ipv4Packet::new_checked(frame.payload()).unwrap();
                if ip.protocol() != Protocol::Udp {
                    continue;
                }
                let (src, dst) = (ip.src_addr(), ip.dst_addr());
                let udp = UdpPacket::new_checked(ip.payload()).unwrap();
                assert!(udp.verify_checksum(src, dst), "{file}: checksum");
                let repr = UdpRepr::parse(&udp).unwrap();
                let mut out = vec![0xa5; repr.buffer_len() + repr.payload_len];
                let mut p = UdpPacket::new_unchecked(&mut out[..]);
                repr.emit(&mut p);
                p.payload_mut().copy_from_slice(udp.payload());
                p.fill_checksum(src, dst);
                assert_eq!(&out[..], ip.payload(), "{file}: re-emit");
                seen += 1;
            }
        }
        // `tcpdump -r <file> udp | wc -l`: 153 in the DVMRP capture, 229 in the PIM-DM one.
        assert_eq!(seen, 153 + 229);
    }

    proptest! {
        #[test]
        fn repr_round_trip(src_port in any::<u16>(), dst_port in any::<u16>(),
                           payload in proptest::collection::vec(any::<u8>(), 0..200),
                           s in any::<[u8; 4]>(), d in any::<[u8; 4]>()) {
            let repr = UdpRepr { src_port, dst_port, payload_len: payload.len() };
            let mut buf = vec![0xa5; repr.buffer_len() + payload.len()];
            let mut p = UdpPacket::new_unchecked(&mut buf[..]);
            repr.emit(&mut p);
            p.payload_mut().copy_from_slice(&payload);
            p.fill_checksum(s.into(), d.into());
            let p = UdpPacket::new_checked(&buf[..]).unwrap();
            prop_assert!(p.verify_checksum(s.into(), d.into()));
            prop_assert_eq!(p.payload(), &payload[..]);
            prop_assert_eq!(UdpRepr::parse(&p).unwrap(), repr);
        }

        #[test]
        fn no_panic_on_any_input(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(p) = UdpPacket::new_checked(&bytes[..]) {
                let _ = UdpRepr::parse(&p);
                let _ = (p.payload(), p.verify_checksum(SRC, DST));
            }
        }
    }
}
