//! Ethernet II frames (IEEE 802.3 with an EtherType) and MAC addresses.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Destination address                        |
//! +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                               |                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
//! |                       Source address                          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           EtherType           |  Payload ...                  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Invariant: after [`EthernetFrame::new_checked`] the buffer holds at least [`HEADER_LEN`]
//! bytes, so no accessor panics. The payload is everything after the header, including any
//! padding to the 60-byte minimum; the IPv4 layer bounds it by its own total length. 802.1Q tags
//! are not parsed: a tagged frame reports [`EtherType::Vlan`].

use core::{fmt, net::Ipv4Addr, str::FromStr};

use crate::{enum_with_unknown, Error, Result};

/// Length of the Ethernet II header (two addresses and the EtherType).
pub const HEADER_LEN: usize = field::PAYLOAD;

enum_with_unknown! {
    /// EtherType of the frame payload.
    pub enum EtherType(u16) {
        /// IPv4 (RFC 894).
        Ipv4 = 0x0800,
        /// ARP (RFC 826).
        Arp = 0x0806,
        /// IEEE 802.1Q VLAN tag.
        Vlan = 0x8100,
        /// IPv6 (RFC 2464).
        Ipv6 = 0x86dd,
    }
}

/// A 48-bit IEEE MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    /// The broadcast address `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);

    /// Whether the I/G bit (least significant bit of the first octet) is set. Broadcast is a
    /// multicast address too.
    #[inline]
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Whether this is `ff:ff:ff:ff:ff:ff`.
    #[inline]
    pub const fn is_broadcast(&self) -> bool {
        matches!(self.0, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
    }

    /// Whether this is a unicast address (I/G bit clear).
    #[inline]
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// The MAC address an IPv4 multicast group maps to: `01:00:5e` followed by the low 23 bits
    /// of the group (RFC 1112 §6.4). The mapping is 32:1, so receivers still filter on the IP
    /// destination. Any address is accepted; only the low 23 bits are used.
    #[inline]
    pub const fn from_ipv4_multicast(group: Ipv4Addr) -> EthernetAddress {
        let o = group.octets();
        EthernetAddress([0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]])
    }

    /// The address as bytes.
    #[inline]
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }
}

impl fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

/// Why a string is not a MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressParseError {
    /// Not exactly six `:`-separated groups.
    WrongGroupCount,
    /// A group is not one or two hexadecimal digits.
    BadGroup,
}

impl fmt::Display for AddressParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressParseError::WrongGroupCount => "MAC address needs six ':'-separated groups",
            AddressParseError::BadGroup => "MAC address group is not 1-2 hex digits",
        })
    }
}

impl std::error::Error for AddressParseError {}

impl FromStr for EthernetAddress {
    type Err = AddressParseError;

    /// Parses `aa:bb:cc:dd:ee:ff` (case-insensitive; `-` accepted as separator too).
    fn from_str(s: &str) -> core::result::Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut groups = s.split([':', '-']);
        for byte in &mut out {
            let group = groups.next().ok_or(AddressParseError::WrongGroupCount)?;
            if group.is_empty() || group.len() > 2 || !group.bytes().all(|c| c.is_ascii_hexdigit())
            {
                return Err(AddressParseError::BadGroup);
            }
            *byte = u8::from_str_radix(group, 16).map_err(|_| AddressParseError::BadGroup)?;
        }
        if groups.next().is_some() {
            return Err(AddressParseError::WrongGroupCount);
        }
        Ok(EthernetAddress(out))
    }
}

impl serde::Serialize for EthernetAddress {
    fn serialize<S: serde::Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for EthernetAddress {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> core::result::Result<Self, D::Error> {
        let s = <&str as serde::Deserialize>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

mod field {
    use crate::Field;

    pub const DESTINATION: Field = 0..6;
    pub const SOURCE: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    pub const PAYLOAD: usize = 14;
}

/// A read/write view of an Ethernet II frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Length of the header.
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Wraps a buffer without checking its length (for emission into a buffer the caller sized).
    #[inline]
    pub const fn new_unchecked(buffer: T) -> EthernetFrame<T> {
        EthernetFrame { buffer }
    }

    /// Wraps untrusted bytes, checking that the header fits.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<EthernetFrame<T>> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// Checks that the buffer holds a whole header.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Returns the underlying buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination MAC address.
    #[inline]
    pub fn dst_addr(&self) -> EthernetAddress {
        let b = self.buffer.as_ref();
        let mut a = [0u8; 6];
        a.copy_from_slice(&b[field::DESTINATION]);
        EthernetAddress(a)
    }

    /// Source MAC address.
    #[inline]
    pub fn src_addr(&self) -> EthernetAddress {
        let b = self.buffer.as_ref();
        let mut a = [0u8; 6];
        a.copy_from_slice(&b[field::SOURCE]);
        EthernetAddress(a)
    }

    /// EtherType of the payload.
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        let b = self.buffer.as_ref();
        EtherType::from(u16::from_be_bytes([
            b[field::ETHERTYPE.start],
            b[field::ETHERTYPE.start + 1],
        ]))
    }

    /// Bytes after the header (including any Ethernet padding).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination MAC address.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&addr.0);
    }

    /// Sets the source MAC address.
    #[inline]
    pub fn set_src_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&addr.0);
    }

    /// Sets the EtherType.
    #[inline]
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&u16::from(ethertype).to_be_bytes());
    }

    /// Mutable bytes after the header.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

/// The fields of an Ethernet II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EthernetRepr {
    /// Source MAC address.
    pub src_addr: EthernetAddress,
    /// Destination MAC address.
    pub dst_addr: EthernetAddress,
    /// EtherType of the payload.
    pub ethertype: EtherType,
}

impl EthernetRepr {
    /// Reads the header of a checked frame.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(frame: &EthernetFrame<&T>) -> Result<EthernetRepr> {
        frame.check_len()?;
        Ok(EthernetRepr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            ethertype: frame.ethertype(),
        })
    }

    /// Length of the header this emits.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header; the payload is left untouched.
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut EthernetFrame<T>) {
        frame.set_dst_addr(self.dst_addr);
        frame.set_src_addr(self.src_addr);
        frame.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // IGMP query from mrouted (tests/vectors dvmrp/mrouted-pair-link.pcap, frame 1): header only.
    static FRAME_HEADER: [u8; 14] =
        [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01, 0x0e, 0x85, 0xc6, 0xb8, 0x3d, 0x1c, 0x08, 0x00];

    fn golden_repr() -> EthernetRepr {
        EthernetRepr {
            dst_addr: EthernetAddress([0x01, 0x00, 0x5e, 0x00, 0x00, 0x01]),
            src_addr: EthernetAddress([0x0e, 0x85, 0xc6, 0xb8, 0x3d, 0x1c]),
            ethertype: EtherType::Ipv4,
        }
    }

    #[test]
    fn deconstruct() {
        let mut bytes = FRAME_HEADER.to_vec();
        bytes.extend_from_slice(&[0xde, 0xad]);
        let frame = EthernetFrame::new_checked(&bytes[..]).unwrap();
        assert_eq!(frame.dst_addr(), golden_repr().dst_addr);
        assert_eq!(frame.src_addr(), golden_repr().src_addr);
        assert_eq!(frame.ethertype(), EtherType::Ipv4);
        assert_eq!(frame.payload(), &[0xde, 0xad]);
        assert_eq!(EthernetRepr::parse(&frame).unwrap(), golden_repr());
    }

    #[test]
    fn construct_into_poisoned_buffer() {
        let mut bytes = [0xa5u8; 14];
        let mut frame = EthernetFrame::new_unchecked(&mut bytes[..]);
        golden_repr().emit(&mut frame);
        assert_eq!(frame.into_inner(), &FRAME_HEADER[..]);
    }

    #[test]
    fn truncated_is_rejected() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                EthernetFrame::new_checked(&FRAME_HEADER[..len]).unwrap_err(),
                Error::Truncated
            );
        }
    }

    #[test]
    fn ethertype_unknown_round_trips() {
        assert_eq!(EtherType::from(0x88cc), EtherType::Unknown(0x88cc));
        assert_eq!(u16::from(EtherType::Unknown(0x88cc)), 0x88cc);
        assert_eq!(EtherType::from(0x86dd), EtherType::Ipv6);
    }

    #[test]
    fn multicast_mapping_rfc1112() {
        assert_eq!(
            EthernetAddress::from_ipv4_multicast(Ipv4Addr::new(224, 0, 0, 1)),
            EthernetAddress([0x01, 0x00, 0x5e, 0x00, 0x00, 0x01])
        );
        // The high bit of the second octet is dropped: 239.129.2.3 and 239.1.2.3 collide.
        assert_eq!(
            EthernetAddress::from_ipv4_multicast(Ipv4Addr::new(239, 129, 2, 3)),
            EthernetAddress([0x01, 0x00, 0x5e, 0x01, 0x02, 0x03])
        );
        assert!(EthernetAddress::from_ipv4_multicast(Ipv4Addr::new(239, 1, 2, 3)).is_multicast());
    }

    #[test]
    fn address_classes() {
        assert!(EthernetAddress::BROADCAST.is_broadcast());
        assert!(EthernetAddress::BROADCAST.is_multicast());
        let uni = golden_repr().src_addr;
        assert!(uni.is_unicast() && !uni.is_multicast() && !uni.is_broadcast());
    }

    #[test]
    fn display_and_from_str() {
        let a = golden_repr().src_addr;
        assert_eq!(a.to_string(), "0e:85:c6:b8:3d:1c");
        assert_eq!("0E-85-c6:b8:3d:1c".parse::<EthernetAddress>().unwrap(), a);
        assert_eq!(
            "0e:85:c6:b8:3d".parse::<EthernetAddress>(),
            Err(AddressParseError::WrongGroupCount)
        );
        assert_eq!(
            "0e:85:c6:b8:3d:1c:00".parse::<EthernetAddress>(),
            Err(AddressParseError::WrongGroupCount)
        );
        assert_eq!(
            "0e:85:c6:b8:3d:1g".parse::<EthernetAddress>(),
            Err(AddressParseError::BadGroup)
        );
        assert_eq!(
            "0e:85:c6:b8:3d:+1".parse::<EthernetAddress>(),
            Err(AddressParseError::BadGroup)
        );
        assert_eq!("0e:85::b8:3d:1c".parse::<EthernetAddress>(), Err(AddressParseError::BadGroup));
    }

    proptest! {
        #[test]
        fn repr_round_trip(dst in any::<[u8; 6]>(), src in any::<[u8; 6]>(), et in any::<u16>()) {
            let repr = EthernetRepr {
                dst_addr: EthernetAddress(dst),
                src_addr: EthernetAddress(src),
                ethertype: EtherType::from(et),
            };
            let mut buf = vec![0xa5; repr.buffer_len()];
            repr.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
            let frame = EthernetFrame::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(EthernetRepr::parse(&frame).unwrap(), repr);
        }

        #[test]
        fn address_display_parse_round_trip(a in any::<[u8; 6]>()) {
            let addr = EthernetAddress(a);
            prop_assert_eq!(addr.to_string().parse::<EthernetAddress>().unwrap(), addr);
        }

        #[test]
        fn no_panic_on_any_input(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(frame) = EthernetFrame::new_checked(&bytes[..]) {
                let _ = EthernetRepr::parse(&frame);
                let _ = frame.payload();
            }
        }
    }
}
