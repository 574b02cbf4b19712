//! fanout's overlay encapsulation header: an IPv4 multicast datagram carried between overlay
//! nodes in unicast UDP (design notes and a whole frame: `docs/overlay-encapsulation.md`).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version|  Type |A|   Flags     |   Hop count   |    Key id     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 Overlay group id (IPv4 group G)               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Origin (IPv4 address of the encapsulating node A)    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                        Sequence number                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |   Authentication tag (16 bytes, present iff A = 1):           |
//! |   HMAC-SHA256(key[key id], header with hop count and tag      |
//! |   zeroed || inner datagram) truncated to 128 bits             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |   Inner IPv4 datagram (from A's sender S to group G) ...      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! - **Version** is 1; anything else is [`Error::BadVersion`] (checked by `check_len`).
//! - **Type**: [`MessageType::Data`] (0) means an inner datagram follows. Other types fail
//!   [`OverlayRepr::parse`] with [`Error::Unsupported`].
//! - **Flags**: bit 7 is **A** (authentication tag present). The other seven bits are reserved:
//!   sent as 0, ignored on receipt, but kept in [`OverlayRepr::reserved_flags`] so that
//!   parse → emit is byte-identical.
//! - **Hop count**: overlay hops the packet may still take. A node that relays the packet to
//!   further overlay peers lowers it by one ([`OverlayPacket::decrement_hop_count`]) and does not
//!   relay a packet whose hop count is already 0 or 1 (loop guard; local delivery still happens).
//! - **Group** must be an IPv4 multicast address ([`Error::Malformed`] otherwise).
//!
//! # Authentication input
//!
//! The tag is the first 128 bits of HMAC-SHA256 keyed with the key selected by *key id* over
//!
//! ```text
//! header bytes 0..16 with the hop count byte (offset 2) set to 0
//! || 16 zero bytes (the tag field)
//! || the inner datagram (every byte after the tag, up to the end of the UDP payload)
//! ```
//!
//! The hop count is excluded like the IPv4 TTL is in IPsec AH (RFC 4302 §3.3.3.1): it is the one
//! field relays change, so they forward without recomputing the MAC, while origin, sequence and
//! group stay covered (the receiver's replay window relies on them). [`OverlayPacket::auth_input`]
//! yields exactly these three chunks without allocating; wire itself computes no MAC so it stays
//! dependency-free.
//!
//! # Example
//!
//! Encapsulating an inner datagram behind an untagged header, then reading it back:
//!
//! ```
//! use core::net::Ipv4Addr;
//! use wire::overlay::{MessageType, OverlayPacket, OverlayRepr};
//!
//! let inner = [0x45, 0x00, 0x00, 0x14]; // stands for an inner IPv4 datagram
//! let repr = OverlayRepr {
//!     msg_type: MessageType::Data,
//!     auth: false,
//!     reserved_flags: 0,
//!     hop_count: 16,
//!     key_id: 0,
//!     group: Ipv4Addr::new(239, 1, 2, 3),
//!     origin: Ipv4Addr::new(10, 0, 12, 1),
//!     sequence: 7,
//! };
//! let mut buf = [0u8; 20];
//! let mut packet = OverlayPacket::new_unchecked(&mut buf[..]);
//! repr.emit(&mut packet);
//! packet.payload_mut().copy_from_slice(&inner);
//!
//! let packet = OverlayPacket::new_checked(&buf[..])?;
//! assert_eq!(OverlayRepr::parse(&packet)?, repr);
//! assert_eq!(packet.payload(), &inner);
//! # Ok::<(), wire::Error>(())
//! ```
//!
//! # Invariants
//!
//! After [`OverlayPacket::new_checked`]: version is 1 and the buffer holds the fixed header and,
//! when A is set, the tag. Every accessor is then in bounds. The payload is the rest of the
//! buffer (the UDP layer has already bounded it by the UDP length).

use core::net::Ipv4Addr;

use crate::{enum_with_unknown, ethernet, ipv4, udp, Error, Result};

/// UDP port overlay data packets are sent to.
pub const DATA_PORT: u16 = 7410;
/// UDP port of the overlay control channel.
pub const CONTROL_PORT: u16 = 7411;
/// The only version this code speaks.
pub const VERSION: u8 = 1;
/// Length of the fixed header (without the tag).
pub const HEADER_LEN: usize = field::AUTH_TAG.start;
/// Length of the authentication tag (HMAC-SHA256 truncated to 128 bits).
pub const AUTH_TAG_LEN: usize = 16;
/// Bytes added in front of the inner datagram on an untagged, unauthenticated packet:
/// Ethernet (14) + IPv4 without options (20) + UDP (8) + overlay header (16) = 58.
/// Add [`AUTH_TAG_LEN`] when authenticating.
pub const ENCAP_OVERHEAD: usize =
    ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN + udp::HEADER_LEN + HEADER_LEN;

/// The A bit in the flags byte.
const FLAG_AUTH: u8 = 0x80;

enum_with_unknown! {
    /// Overlay message type (low nibble of byte 0).
    pub enum MessageType(u8) {
        /// An inner IPv4 datagram follows the header.
        Data = 0,
    }
}

mod field {
    use crate::Field;

    pub const VER_TYPE: usize = 0;
    pub const FLAGS: usize = 1;
    pub const HOP_COUNT: usize = 2;
    pub const KEY_ID: usize = 3;
    pub const GROUP: Field = 4..8;
    pub const ORIGIN: Field = 8..12;
    pub const SEQUENCE: Field = 12..16;
    pub const AUTH_TAG: Field = 16..32;
}

/// The MAC input of an authenticated packet, as chunks to feed to the MAC in order
/// (see the module docs). Built without allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthInput<'a> {
    header: [u8; HEADER_LEN],
    inner: &'a [u8],
}

impl AuthInput<'_> {
    const ZERO_TAG: [u8; AUTH_TAG_LEN] = [0; AUTH_TAG_LEN];

    /// The three chunks: header with hop count zeroed, a zeroed tag, the inner datagram.
    #[inline]
    pub fn chunks(&self) -> [&[u8]; 3] {
        [&self.header, &Self::ZERO_TAG, self.inner]
    }
}

/// A read/write view of an overlay packet (header, optional tag, inner datagram).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> OverlayPacket<T> {
    /// Length of the fixed header.
    pub const HEADER_LEN: usize = HEADER_LEN;
    /// Length of the authentication tag.
    pub const AUTH_TAG_LEN: usize = AUTH_TAG_LEN;

    /// Wraps a buffer without checks (for emission into a buffer the caller sized).
    #[inline]
    pub const fn new_unchecked(buffer: T) -> OverlayPacket<T> {
        OverlayPacket { buffer }
    }

    /// Wraps untrusted bytes (see [`OverlayPacket::check_len`]).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<OverlayPacket<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// [`Error::Truncated`] if the fixed header does not fit; [`Error::BadVersion`] unless the
    /// version is 1; [`Error::Truncated`] if A is set and the tag does not fit.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != VERSION {
            return Err(Error::BadVersion);
        }
        if len < usize::from(self.header_len()) {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn read_u32(&self, f: crate::Field) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([b[f.start], b[f.start + 1], b[f.start + 2], b[f.start + 3]])
    }

    /// Version (high nibble of byte 0).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TYPE] >> 4
    }

    /// Message type (low nibble of byte 0).
    #[inline]
    pub fn msg_type(&self) -> MessageType {
        MessageType::from(self.buffer.as_ref()[field::VER_TYPE] & 0x0f)
    }

    /// The raw flags byte, A bit included.
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// Whether the A bit is set (a tag follows the fixed header).
    #[inline]
    pub fn auth(&self) -> bool {
        self.flags() & FLAG_AUTH != 0
    }

    /// Remaining overlay hops.
    #[inline]
    pub fn hop_count(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_COUNT]
    }

    /// Index of the key the tag was computed with.
    #[inline]
    pub fn key_id(&self) -> u8 {
        self.buffer.as_ref()[field::KEY_ID]
    }

    /// Overlay group id: the IPv4 group G of the inner datagram.
    #[inline]
    pub fn group(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.read_u32(field::GROUP))
    }

    /// IPv4 address of the node that encapsulated the packet.
    #[inline]
    pub fn origin(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.read_u32(field::ORIGIN))
    }

    /// Per-(origin, group) sequence number set by the encapsulating node.
    #[inline]
    pub fn sequence(&self) -> u32 {
        self.read_u32(field::SEQUENCE)
    }

    /// Header length including the tag: 16, or 32 when A is set.
    #[inline]
    pub fn header_len(&self) -> u8 {
        if self.auth() {
            (HEADER_LEN + AUTH_TAG_LEN) as u8
        } else {
            HEADER_LEN as u8
        }
    }

    /// The fixed 16-byte header as stored.
    #[inline]
    pub fn fixed_header(&self) -> &[u8] {
        &self.buffer.as_ref()[..HEADER_LEN]
    }

    /// The authentication tag, if A is set.
    #[inline]
    pub fn auth_tag(&self) -> Option<&[u8; AUTH_TAG_LEN]> {
        if !self.auth() {
            return None;
        }
        self.buffer.as_ref().get(field::AUTH_TAG).and_then(|s| s.try_into().ok())
    }

    /// The MAC input (see the module docs), whether or not A is set.
    #[inline]
    pub fn auth_input(&self) -> AuthInput<'_> {
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(self.fixed_header());
        header[field::HOP_COUNT] = 0;
        AuthInput { header, inner: self.payload() }
    }

    /// The inner datagram: everything after the header (and tag).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[usize::from(self.header_len())..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> OverlayPacket<T> {
    /// Sets the version nibble.
    #[inline]
    pub fn set_version(&mut self, version: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_TYPE];
        *b = (*b & 0x0f) | (version << 4);
    }

    /// Sets the message type nibble (codes above 15 are truncated to 4 bits).
    #[inline]
    pub fn set_msg_type(&mut self, msg_type: MessageType) {
        let b = &mut self.buffer.as_mut()[field::VER_TYPE];
        *b = (*b & 0xf0) | (u8::from(msg_type) & 0x0f);
    }

    /// Sets the raw flags byte (A bit included).
    #[inline]
    pub fn set_flags(&mut self, flags: u8) {
        self.buffer.as_mut()[field::FLAGS] = flags;
    }

    /// Sets or clears the A bit, leaving the reserved bits.
    #[inline]
    pub fn set_auth(&mut self, auth: bool) {
        let f = self.flags();
        self.set_flags(if auth { f | FLAG_AUTH } else { f & !FLAG_AUTH });
    }

    /// Sets the hop count.
    #[inline]
    pub fn set_hop_count(&mut self, hops: u8) {
        self.buffer.as_mut()[field::HOP_COUNT] = hops;
    }

    /// Lowers the hop count by one and returns the new value, or `None` (unchanged) if it was
    /// already 0. The tag stays valid: the hop count is not covered by the MAC.
    #[inline]
    pub fn decrement_hop_count(&mut self) -> Option<u8> {
        let hops = self.hop_count().checked_sub(1)?;
        self.set_hop_count(hops);
        Some(hops)
    }

    /// Sets the key id.
    #[inline]
    pub fn set_key_id(&mut self, key_id: u8) {
        self.buffer.as_mut()[field::KEY_ID] = key_id;
    }

    /// Sets the overlay group id.
    #[inline]
    pub fn set_group(&mut self, group: Ipv4Addr) {
        self.buffer.as_mut()[field::GROUP].copy_from_slice(&group.octets());
    }

    /// Sets the origin.
    #[inline]
    pub fn set_origin(&mut self, origin: Ipv4Addr) {
        self.buffer.as_mut()[field::ORIGIN].copy_from_slice(&origin.octets());
    }

    /// Sets the sequence number.
    #[inline]
    pub fn set_sequence(&mut self, sequence: u32) {
        self.buffer.as_mut()[field::SEQUENCE].copy_from_slice(&sequence.to_be_bytes());
    }

    /// The tag to fill in, if A is set and the buffer holds it.
    #[inline]
    pub fn auth_tag_mut(&mut self) -> Option<&mut [u8; AUTH_TAG_LEN]> {
        if !self.auth() {
            return None;
        }
        self.buffer.as_mut().get_mut(field::AUTH_TAG).and_then(|s| s.try_into().ok())
    }

    /// Mutable inner datagram.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = usize::from(self.header_len());
        &mut self.buffer.as_mut()[start..]
    }
}

/// The fields of an overlay header. The tag itself is not part of the Repr: it is a function
/// of the key and the payload, computed and checked by the data plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OverlayRepr {
    /// Message type.
    pub msg_type: MessageType,
    /// Whether an authentication tag follows the fixed header.
    pub auth: bool,
    /// Reserved flag bits (all but A, i.e. `flags & 0x7f`); 0 when sending. Kept so that
    /// parse → emit reproduces the bytes; bit 7 is ignored by `emit`.
    pub reserved_flags: u8,
    /// Remaining overlay hops.
    pub hop_count: u8,
    /// Key index for the tag.
    pub key_id: u8,
    /// Overlay group id (IPv4 multicast group G).
    pub group: Ipv4Addr,
    /// Encapsulating node.
    pub origin: Ipv4Addr,
    /// Sequence number.
    pub sequence: u32,
}

impl OverlayRepr {
    /// Reads a checked packet. Errors: those of `check_len`; [`Error::Unsupported`] for a type
    /// other than Data; [`Error::Malformed`] if the group is not a multicast address.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &OverlayPacket<&T>) -> Result<OverlayRepr> {
        packet.check_len()?;
        let msg_type = packet.msg_type();
        if msg_type != MessageType::Data {
            return Err(Error::Unsupported);
        }
        let group = packet.group();
        if !group.is_multicast() {
            return Err(Error::Malformed);
        }
        Ok(OverlayRepr {
            msg_type,
            auth: packet.auth(),
            reserved_flags: packet.flags() & !FLAG_AUTH,
            hop_count: packet.hop_count(),
            key_id: packet.key_id(),
            group,
            origin: packet.origin(),
            sequence: packet.sequence(),
        })
    }

    /// Header length this emits: 16, or 32 with the tag.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        if self.auth {
            HEADER_LEN + AUTH_TAG_LEN
        } else {
            HEADER_LEN
        }
    }

    /// Writes the header; with `auth` the tag field is zeroed (fill it after the payload is in
    /// place, see [`OverlayPacket::auth_input`]). The payload is left untouched.
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut OverlayPacket<T>) {
        packet.set_version(VERSION);
        packet.set_msg_type(self.msg_type);
        let auth = if self.auth { FLAG_AUTH } else { 0 };
        packet.set_flags((self.reserved_flags & !FLAG_AUTH) | auth);
        packet.set_hop_count(self.hop_count);
        packet.set_key_id(self.key_id);
        packet.set_group(self.group);
        packet.set_origin(self.origin);
        packet.set_sequence(self.sequence);
        if let Some(tag) = packet.auth_tag_mut() {
            *tag = [0; AUTH_TAG_LEN];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Version 1, Data, A set, hop count 8, key id 3, group 239.1.2.3, origin 10.0.1.1,
    // sequence 0x01020304, tag 0x11.., then a 4-byte stand-in for the inner datagram.
    static AUTH_PACKET: [u8; 36] = [
        0x10, 0x80, 0x08, 0x03, 0xef, 0x01, 0x02, 0x03, 0x0a, 0x00, 0x01, 0x01, 0x01, 0x02, 0x03,
        0x04, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
        0x11, 0x11, 0x45, 0x00, 0x00, 0x14,
    ];

    // Same without A: no tag.
    static PLAIN_PACKET: [u8; 20] = [
        0x10, 0x00, 0x08, 0x03, 0xef, 0x01, 0x02, 0x03, 0x0a, 0x00, 0x01, 0x01, 0x01, 0x02, 0x03,
        0x04, 0x45, 0x00, 0x00, 0x14,
    ];

    fn repr(auth: bool) -> OverlayRepr {
        OverlayRepr {
            msg_type: MessageType::Data,
            auth,
            reserved_flags: 0,
            hop_count: 8,
            key_id: 3,
            group: Ipv4Addr::new(239, 1, 2, 3),
            origin: Ipv4Addr::new(10, 0, 1, 1),
            sequence: 0x0102_0304,
        }
    }

    #[test]
    fn encap_overhead_is_58() {
        assert_eq!(ENCAP_OVERHEAD, 58);
    }

    #[test]
    fn deconstruct_authenticated() {
        let p = OverlayPacket::new_checked(&AUTH_PACKET[..]).unwrap();
        assert_eq!(p.version(), 1);
        assert_eq!(p.msg_type(), MessageType::Data);
        assert!(p.auth());
        assert_eq!(p.hop_count(), 8);
        assert_eq!(p.key_id(), 3);
        assert_eq!(p.group(), Ipv4Addr::new(239, 1, 2, 3));
        assert_eq!(p.origin(), Ipv4Addr::new(10, 0, 1, 1));
        assert_eq!(p.sequence(), 0x0102_0304);
        assert_eq!(p.header_len(), 32);
        assert_eq!(p.auth_tag(), Some(&[0x11; 16]));
        assert_eq!(p.payload(), &[0x45, 0x00, 0x00, 0x14]);
        assert_eq!(OverlayRepr::parse(&p).unwrap(), repr(true));
    }

    #[test]
    fn deconstruct_plain() {
        let p = OverlayPacket::new_checked(&PLAIN_PACKET[..]).unwrap();
        assert_eq!(p.auth_tag(), None);
        assert_eq!(p.header_len(), 16);
        assert_eq!(p.payload(), &[0x45, 0x00, 0x00, 0x14]);
        assert_eq!(OverlayRepr::parse(&p).unwrap(), repr(false));
    }

    #[test]
    fn construct_into_poisoned_buffer() {
        for (auth, golden) in [(true, &AUTH_PACKET[..]), (false, &PLAIN_PACKET[..])] {
            let r = repr(auth);
            let mut bytes = vec![0xa5; r.buffer_len() + 4];
            let mut p = OverlayPacket::new_unchecked(&mut bytes[..]);
            r.emit(&mut p);
            if auth {
                assert_eq!(p.auth_tag(), Some(&[0; 16]), "emit zeroes the tag");
                *p.auth_tag_mut().unwrap() = [0x11; 16];
            }
            p.payload_mut().copy_from_slice(&[0x45, 0x00, 0x00, 0x14]);
            assert_eq!(&bytes[..], golden);
        }
    }

    #[test]
    fn check_len_and_parse_errors() {
        assert_eq!(OverlayPacket::new_checked(&PLAIN_PACKET[..15]).unwrap_err(), Error::Truncated);
        // A set but the tag is cut short.
        assert_eq!(OverlayPacket::new_checked(&AUTH_PACKET[..31]).unwrap_err(), Error::Truncated);
        let mut b = PLAIN_PACKET;
        b[0] = 0x20;
        assert_eq!(OverlayPacket::new_checked(&b[..]).unwrap_err(), Error::BadVersion);
        let mut b = PLAIN_PACKET;
        b[0] = 0x17;
        let p = OverlayPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.msg_type(), MessageType::Unknown(7));
        assert_eq!(OverlayRepr::parse(&p).unwrap_err(), Error::Unsupported);
        let mut b = PLAIN_PACKET;
        b[4] = 10;
        let p = OverlayPacket::new_checked(&b[..]).unwrap();
        assert_eq!(OverlayRepr::parse(&p).unwrap_err(), Error::Malformed);
    }

    #[test]
    fn reserved_flags_are_ignored_but_kept() {
        let mut b = AUTH_PACKET;
        b[1] = 0x85;
        let p = OverlayPacket::new_checked(&b[..]).unwrap();
        let r = OverlayRepr::parse(&p).unwrap();
        assert!(r.auth);
        assert_eq!(r.reserved_flags, 0x05);
        let mut out = [0u8; 36];
        let mut q = OverlayPacket::new_unchecked(&mut out[..]);
        r.emit(&mut q);
        assert_eq!(q.flags(), 0x85);
    }

    #[test]
    fn auth_input_zeroes_hop_count_and_tag() {
        let p = OverlayPacket::new_checked(&AUTH_PACKET[..]).unwrap();
        let input = p.auth_input();
        let [header, tag, inner] = input.chunks();
        let mut expected = AUTH_PACKET[..16].to_vec();
        expected[2] = 0;
        assert_eq!(header, &expected[..]);
        assert_eq!(tag, &[0; 16]);
        assert_eq!(inner, &AUTH_PACKET[32..]);
        // Relaying (hop count change) leaves the MAC input unchanged.
        let mut b = AUTH_PACKET;
        let mut q = OverlayPacket::new_unchecked(&mut b[..]);
        assert_eq!(q.decrement_hop_count(), Some(7));
        assert_eq!(q.auth_input(), input);
        // Any other header byte changes it.
        q.set_sequence(0x0102_0305);
        assert_ne!(q.auth_input(), input);
    }

    #[test]
    fn decrement_hop_count_stops_at_zero() {
        let mut b = PLAIN_PACKET;
        let mut p = OverlayPacket::new_unchecked(&mut b[..]);
        p.set_hop_count(1);
        assert_eq!(p.decrement_hop_count(), Some(0));
        assert_eq!(p.decrement_hop_count(), None);
        assert_eq!(p.hop_count(), 0);
    }

    fn arb_repr() -> impl Strategy<Value = OverlayRepr> {
        (
            any::<bool>(),
            0u8..0x80,
            any::<u8>(),
            any::<u8>(),
            (224u8..=239, any::<[u8; 3]>()),
            any::<[u8; 4]>(),
            any::<u32>(),
        )
            .prop_map(
                |(auth, reserved_flags, hop_count, key_id, (g0, g), origin, sequence)| {
                    OverlayRepr {
                        msg_type: MessageType::Data,
                        auth,
                        reserved_flags,
                        hop_count,
                        key_id,
                        group: Ipv4Addr::new(g0, g[0], g[1], g[2]),
                        origin: origin.into(),
                        sequence,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn repr_round_trip(r in arb_repr(), inner in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut buf = vec![0xa5; r.buffer_len() + inner.len()];
            let mut p = OverlayPacket::new_unchecked(&mut buf[..]);
            r.emit(&mut p);
            p.payload_mut().copy_from_slice(&inner);
            let p = OverlayPacket::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(OverlayRepr::parse(&p).unwrap(), r);
            prop_assert_eq!(p.payload(), &inner[..]);
        }

        #[test]
        fn no_panic_on_any_input(bytes in proptest::collection::vec(any::<u8>(), 0..48)) {
            let mut bytes = bytes;
            if let Some(b) = bytes.first_mut() { *b = 0x10 | (*b & 0x0f); }
            if let Ok(p) = OverlayPacket::new_checked(&bytes[..]) {
                let _ = OverlayRepr::parse(&p);
                let _ = (p.payload(), p.auth_tag(), p.auth_input());
            }
        }
    }
}
