//! IPv4 headers (RFC 791), including options, as fanout forwards and originates them.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version|  IHL  |Type of Service|          Total Length         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         Identification        |Flags|      Fragment Offset    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Time to Live |    Protocol   |         Header Checksum       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       Source Address                          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Destination Address                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Options                    |    Padding    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! # Invariants
//!
//! After [`Ipv4Packet::new_checked`] (or `check_len`) succeeds: the version is 4,
//! `20 <= header_len <= total_len <= buffer length`. Every accessor is then in bounds. The
//! payload is bounded by *total length*, not by the buffer, so Ethernet padding after a short
//! datagram never leaks into the upper layer.
//!
//! # Example
//!
//! The forwarding path: check, lower the TTL with an incremental checksum update.
//!
//! ```
//! use wire::ipv4::{Ipv4Packet, Ipv4Repr};
//!
//! // 10.77.1.10 -> 239.1.2.3, TTL 15, UDP, 17-byte payload.
//! let mut bytes = [
//!     0x45, 0x00, 0x00, 0x25, 0x0d, 0x6f, 0x40, 0x00, 0x0f, 0x11, 0x61, 0xfe, 0x0a, 0x4d, 0x01,
//!     0x0a, 0xef, 0x01, 0x02, 0x03, 0x8f, 0x79, 0x13, 0x88, 0x00, 0x11, 0x72, 0x4c, 0x69, 0x6f,
//!     0x70, 0x2d, 0x73, 0x65, 0x71, 0x20, 0x30,
//! ];
//! let mut packet = Ipv4Packet::new_checked(&mut bytes[..])?;
//! assert!(packet.dst_addr().is_multicast());
//! assert_eq!(packet.decrement_ttl(), Some(14));
//! assert!(packet.verify_checksum());
//! let repr = Ipv4Repr::parse(&Ipv4Packet::new_checked(&bytes[..])?)?;
//! assert_eq!((repr.ttl, repr.payload_len), (14, 17));
//! # Ok::<(), wire::Error>(())
//! ```
//!
//! # Fragments
//!
//! fanout never reassembles: [`Ipv4Repr::parse`] returns [`Error::Unsupported`] for any fragment
//! (MF set or a non-zero offset). The packet view still reads fragments, so the data plane can
//! count and drop them (or forward them unparsed).
//!
//! # Round trip
//!
//! [`Ipv4Repr`] keeps identification, TOS, DF and the raw options, so control packets captured
//! from mrouted (TOS 0xc0, Router Alert, 24-byte header) re-emit byte-identical. Only the
//! reserved flag bit is not kept; it is emitted as zero (RFC 791).
//!
//! # Fuzzing
//!
//! Under `cfg(fuzzing)` [`Ipv4Packet::verify_checksum`] always returns true.

use core::{fmt, net::Ipv4Addr};

use crate::{checksum, enum_with_unknown, Error, Result};

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = field::OPTIONS_START;
/// Longest options area (IHL is at most 15 words).
pub const MAX_OPTIONS_LEN: usize = 40;
/// The only TTL-independent limit on a datagram: the 16-bit total length.
pub const MAX_PACKET_LEN: usize = u16::MAX as usize;

enum_with_unknown! {
    /// IP protocol number (the "Protocol" field; IANA registry).
    pub enum Protocol(u8) {
        /// ICMP (RFC 792).
        Icmp = 1,
        /// IGMP (RFC 1112/2236/3376); DVMRP also rides in IGMP type 0x13.
        Igmp = 2,
        /// IP-in-IP encapsulation (RFC 2003).
        IpIp = 4,
        /// TCP.
        Tcp = 6,
        /// UDP (RFC 768).
        Udp = 17,
        /// PIM (RFC 7761, RFC 3973).
        Pim = 103,
    }
}

mod field {
    use crate::Field;

    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
    pub const OPTIONS_START: usize = 20;
}

/// Flag bits in the flags/fragment-offset word.
const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// A read/write view of an IPv4 datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Length of a header without options.
    pub const HEADER_LEN: usize = MIN_HEADER_LEN;

    /// Wraps a buffer without checks (for emission into a buffer the caller sized).
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Ipv4Packet<T> {
        Ipv4Packet { buffer }
    }

    /// Wraps untrusted bytes, checking version and lengths (see [`Ipv4Packet::check_len`]).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Ipv4Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks, in this order: a first byte exists ([`Error::Truncated`]); version 4
    /// ([`Error::BadVersion`]); `IHL >= 5` and `IHL*4 <= buffer` ([`Error::BadHeaderLength`],
    /// which is also what a buffer shorter than 20 bytes gives); `header_len <= total_len <= buffer`
    /// ([`Error::BadLength`]).
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let buf = self.buffer.as_ref();
        let Some(&first) = buf.first() else {
            return Err(Error::Truncated);
        };
        if first >> 4 != 4 {
            return Err(Error::BadVersion);
        }
        // IHL >= 5 and IHL*4 <= len together guarantee the 20 fixed bytes are present.
        let header_len = usize::from(first & 0x0f) * 4;
        if header_len < MIN_HEADER_LEN || header_len > buf.len() {
            return Err(Error::BadHeaderLength);
        }
        let total_len = usize::from(self.total_len());
        if total_len < header_len || total_len > buf.len() {
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

    #[inline]
    fn read_addr(&self, f: crate::Field) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[f.start], b[f.start + 1], b[f.start + 2], b[f.start + 3])
    }

    /// IP version (4 after `check_len`).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL × 4), options included.
    #[inline]
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// The whole Type-of-Service byte (DSCP << 2 | ECN).
    #[inline]
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Total length of the datagram (header + payload) in bytes.
    #[inline]
    pub fn total_len(&self) -> u16 {
        self.read_u16(field::LENGTH)
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u16 {
        self.read_u16(field::IDENT)
    }

    /// Don't Fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.read_u16(field::FLG_OFF) & FLAG_DF != 0
    }

    /// More Fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        self.read_u16(field::FLG_OFF) & FLAG_MF != 0
    }

    /// Fragment offset in *bytes* (the field counts 8-byte units).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (self.read_u16(field::FLG_OFF) & FRAG_OFFSET_MASK) << 3
    }

    /// Whether this datagram is a fragment (MF set or a non-zero offset).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.read_u16(field::FLG_OFF) & (FLAG_MF | FRAG_OFFSET_MASK) != 0
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol of the payload.
    #[inline]
    pub fn next_header(&self) -> Protocol {
        Protocol::from(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// Protocol of the payload (alias of [`Ipv4Packet::next_header`]).
    #[inline]
    pub fn protocol(&self) -> Protocol {
        self.next_header()
    }

    /// Header checksum as stored.
    #[inline]
    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM)
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        self.read_addr(field::SRC_ADDR)
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        self.read_addr(field::DST_ADDR)
    }

    /// Raw options bytes (header bytes 20..header_len), padding included.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS_START..usize::from(self.header_len())]
    }

    /// Whether the header checksum verifies. Always true under `cfg(fuzzing)`.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        if cfg!(fuzzing) {
            return true;
        }
        checksum::data(&self.buffer.as_ref()[..usize::from(self.header_len())]) == 0xffff
    }

    /// Payload: bytes from the end of the header to `total_len` (Ethernet padding excluded).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let range = usize::from(self.header_len())..usize::from(self.total_len());
        &self.buffer.as_ref()[range]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    #[inline]
    fn write_u16(&mut self, f: crate::Field, value: u16) {
        self.buffer.as_mut()[f].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the version nibble.
    #[inline]
    pub fn set_version(&mut self, version: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (version << 4);
    }

    /// Sets the header length in bytes; it must be a multiple of 4 in `20..=60` (the low two
    /// bits are dropped).
    #[inline]
    pub fn set_header_len(&mut self, len: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((len / 4) & 0x0f);
    }

    /// Sets the whole Type-of-Service byte.
    #[inline]
    pub fn set_dscp_ecn(&mut self, tos: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = tos;
    }

    /// Sets the total length.
    #[inline]
    pub fn set_total_len(&mut self, len: u16) {
        self.write_u16(field::LENGTH, len);
    }

    /// Sets the identification.
    #[inline]
    pub fn set_ident(&mut self, ident: u16) {
        self.write_u16(field::IDENT, ident);
    }

    /// Clears all three flag bits (reserved, DF, MF), leaving the fragment offset.
    #[inline]
    pub fn clear_flags(&mut self) {
        let v = self.read_u16(field::FLG_OFF) & FRAG_OFFSET_MASK;
        self.write_u16(field::FLG_OFF, v);
    }

    /// Sets or clears Don't Fragment.
    #[inline]
    pub fn set_dont_frag(&mut self, value: bool) {
        let v = self.read_u16(field::FLG_OFF);
        self.write_u16(field::FLG_OFF, if value { v | FLAG_DF } else { v & !FLAG_DF });
    }

    /// Sets or clears More Fragments.
    #[inline]
    pub fn set_more_frags(&mut self, value: bool) {
        let v = self.read_u16(field::FLG_OFF);
        self.write_u16(field::FLG_OFF, if value { v | FLAG_MF } else { v & !FLAG_MF });
    }

    /// Sets the fragment offset in *bytes* (must be a multiple of 8; the low 3 bits are dropped).
    #[inline]
    pub fn set_frag_offset(&mut self, offset: u16) {
        let v = self.read_u16(field::FLG_OFF) & !FRAG_OFFSET_MASK;
        self.write_u16(field::FLG_OFF, v | (offset >> 3));
    }

    /// Sets the TTL (the checksum is not updated; see [`Ipv4Packet::decrement_ttl`]).
    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    /// Sets the protocol of the payload.
    #[inline]
    pub fn set_next_header(&mut self, protocol: Protocol) {
        self.buffer.as_mut()[field::PROTOCOL] = protocol.into();
    }

    /// Sets the protocol of the payload (alias of [`Ipv4Packet::set_next_header`]).
    #[inline]
    pub fn set_protocol(&mut self, protocol: Protocol) {
        self.set_next_header(protocol);
    }

    /// Stores a header checksum value.
    #[inline]
    pub fn set_checksum(&mut self, checksum: u16) {
        self.write_u16(field::CHECKSUM, checksum);
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// Mutable options area (bytes 20..header_len).
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.header_len());
        &mut self.buffer.as_mut()[field::OPTIONS_START..end]
    }

    /// Computes and stores the header checksum over `header_len` bytes.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let len = usize::from(self.header_len());
        let sum = checksum::data(&self.buffer.as_ref()[..len]);
        self.set_checksum(!sum);
    }

    /// Lowers the TTL by one and updates the checksum incrementally (RFC 1624), touching only
    /// the TTL byte and the checksum. Returns the new TTL, or `None` (packet unchanged) if the
    /// TTL was already 0. The caller decides whether a TTL of 0 (or below a threshold) is
    /// forwarded; this only rewrites bytes.
    #[inline]
    pub fn decrement_ttl(&mut self) -> Option<u8> {
        let ttl = self.ttl();
        let new_ttl = ttl.checked_sub(1)?;
        let proto = self.buffer.as_ref()[field::PROTOCOL];
        let old_word = u16::from_be_bytes([ttl, proto]);
        let new_word = u16::from_be_bytes([new_ttl, proto]);
        let c = checksum::update(self.checksum(), old_word, new_word);
        self.set_ttl(new_ttl);
        self.set_checksum(c);
        Some(new_ttl)
    }

    /// Mutable payload (bounded by `total_len`).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = usize::from(self.header_len())..usize::from(self.total_len());
        &mut self.buffer.as_mut()[range]
    }
}

/// Raw IPv4 options, stored inline (no allocation): up to 40 bytes, a multiple of 4 long
/// (padding included) so the header stays word-aligned.
///
/// Invariant: bytes past `len` are zero, so the derived equality compares only the options.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Options {
    bytes: [u8; MAX_OPTIONS_LEN],
    len: u8,
}

impl Ipv4Options {
    /// No options (a 20-byte header).
    pub const EMPTY: Ipv4Options = Ipv4Options { bytes: [0; MAX_OPTIONS_LEN], len: 0 };

    /// The Router Alert option (RFC 2113): `94 04 00 00`, which IGMP and DVMRP messages carry.
    pub const fn router_alert() -> Ipv4Options {
        let mut bytes = [0; MAX_OPTIONS_LEN];
        bytes[0] = 0x94;
        bytes[1] = 0x04;
        Ipv4Options { bytes, len: 4 }
    }

    /// Copies raw option bytes. [`Error::Malformed`] if longer than 40 bytes or not a multiple
    /// of 4 (pad with End-of-Options `00` bytes first).
    pub fn new(raw: &[u8]) -> Result<Ipv4Options> {
        if raw.len() > MAX_OPTIONS_LEN || raw.len() % 4 != 0 {
            return Err(Error::Malformed);
        }
        let mut bytes = [0; MAX_OPTIONS_LEN];
        bytes[..raw.len()].copy_from_slice(raw);
        Ok(Ipv4Options { bytes, len: raw.len() as u8 })
    }

    /// The option bytes, padding included.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Length in bytes (a multiple of 4).
    #[inline]
    pub const fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether there are no options.
    #[inline]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether a Router Alert option (type 148) is present. Walks the option TLVs; a malformed
    /// option list (a length running past the end) stops the walk and answers false.
    pub fn has_router_alert(&self) -> bool {
        let opts = self.as_bytes();
        let mut i = 0;
        while let Some(&kind) = opts.get(i) {
            match kind {
                0 => return false,
                1 => i += 1,
                0x94 => return opts.get(i + 1) == Some(&4) && i + 4 <= opts.len(),
                _ => match opts.get(i + 1) {
                    Some(&len) if len >= 2 => i += usize::from(len),
                    _ => return false,
                },
            }
        }
        false
    }
}

impl Default for Ipv4Options {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl fmt::Debug for Ipv4Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ipv4Options({:02x?})", self.as_bytes())
    }
}

/// The fields of an IPv4 header that fanout keeps (see the module docs for what is dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Protocol of the payload.
    pub protocol: Protocol,
    /// Time to live.
    pub ttl: u8,
    /// The whole Type-of-Service byte (mrouted sends 0xc0, Internetwork Control).
    pub dscp_ecn: u8,
    /// Identification.
    pub ident: u16,
    /// Don't Fragment.
    pub dont_frag: bool,
    /// Raw options (e.g. [`Ipv4Options::router_alert`]).
    pub options: Ipv4Options,
    /// Payload length in bytes; `buffer_len() + payload_len` must not exceed 65535.
    pub payload_len: usize,
}

impl Ipv4Repr {
    /// Reads a checked packet. Errors: those of `check_len`; [`Error::Unsupported`] for a
    /// fragment; [`Error::BadChecksum`] if the header checksum fails (not under `cfg(fuzzing)`).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Ipv4Packet<&T>) -> Result<Ipv4Repr> {
        packet.check_len()?;
        if packet.is_fragment() {
            return Err(Error::Unsupported);
        }
        if !packet.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        Ok(Ipv4Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.next_header(),
            ttl: packet.ttl(),
            dscp_ecn: packet.dscp_ecn(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
            // check_len bounds the options to 0..=40 bytes in whole words.
            options: Ipv4Options::new(packet.options())?,
            payload_len: usize::from(packet.total_len()) - usize::from(packet.header_len()),
        })
    }

    /// Header length this emits (20 + options).
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        MIN_HEADER_LEN + self.options.len()
    }

    /// Writes the header (checksum included) into the first `buffer_len()` bytes; the payload is
    /// left untouched. `total_len` is `buffer_len() + payload_len` (saturating at 65535).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv4Packet<T>) {
        let header_len = self.buffer_len();
        packet.set_version(4);
        packet.set_header_len(header_len as u8);
        packet.set_dscp_ecn(self.dscp_ecn);
        let total = header_len.saturating_add(self.payload_len);
        packet.set_total_len(u16::try_from(total).unwrap_or(u16::MAX));
        packet.set_ident(self.ident);
        packet.clear_flags();
        packet.set_frag_offset(0);
        packet.set_dont_frag(self.dont_frag);
        packet.set_ttl(self.ttl);
        packet.set_next_header(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.options_mut().copy_from_slice(self.options.as_bytes());
        packet.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // IGMPv2-style query header from mrouted (dvmrp/mrouted-pair-link.pcap frame 1) plus its
    // 12-byte IGMP payload: TOS 0xc0, TTL 1, Router Alert, 24-byte header.
    static IGMP_DATAGRAM: [u8; 36] = [
        0x46, 0xc0, 0x00, 0x24, 0x55, 0x02, 0x00, 0x00, 0x01, 0x02, 0xd8, 0xc1, 0x0a, 0x4d, 0x0c,
        0x02, 0xe0, 0x00, 0x00, 0x01, 0x94, 0x04, 0x00, 0x00, 0x11, 0x64, 0xec, 0x1e, 0x00, 0x00,
        0x00, 0x00, 0x02, 0x7d, 0x00, 0x00,
    ];

    // Multicast data 10.77.1.10 -> 239.1.2.3 (DF, TTL 15, UDP) from the same capture.
    static UDP_DATAGRAM: [u8; 37] = [
        0x45, 0x00, 0x00, 0x25, 0x0d, 0x6f, 0x40, 0x00, 0x0f, 0x11, 0x61, 0xfe, 0x0a, 0x4d, 0x01,
        0x0a, 0xef, 0x01, 0x02, 0x03, 0x8f, 0x79, 0x13, 0x88, 0x00, 0x11, 0x72, 0x4c, 0x69, 0x6f,
        0x70, 0x2d, 0x73, 0x65, 0x71, 0x20, 0x30,
    ];

    fn igmp_repr() -> Ipv4Repr {
        Ipv4Repr {
            src_addr: Ipv4Addr::new(10, 77, 12, 2),
            dst_addr: Ipv4Addr::new(224, 0, 0, 1),
            protocol: Protocol::Igmp,
            ttl: 1,
            dscp_ecn: 0xc0,
            ident: 0x5502,
            dont_frag: false,
            options: Ipv4Options::router_alert(),
            payload_len: 12,
        }
    }

    fn udp_repr() -> Ipv4Repr {
        Ipv4Repr {
            src_addr: Ipv4Addr::new(10, 77, 1, 10),
            dst_addr: Ipv4Addr::new(239, 1, 2, 3),
            protocol: Protocol::Udp,
            ttl: 15,
            dscp_ecn: 0,
            ident: 0x0d6f,
            dont_frag: true,
            options: Ipv4Options::EMPTY,
            payload_len: 17,
        }
    }

    #[test]
    fn deconstruct_igmp_with_router_alert() {
        let p = Ipv4Packet::new_checked(&IGMP_DATAGRAM[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.dscp_ecn(), 0xc0);
        assert_eq!(p.total_len(), 36);
        assert_eq!(p.ident(), 0x5502);
        assert!(!p.dont_frag() && !p.more_frags() && !p.is_fragment());
        assert_eq!(p.frag_offset(), 0);
        assert_eq!(p.ttl(), 1);
        assert_eq!(p.protocol(), Protocol::Igmp);
        assert_eq!(p.checksum(), 0xd8c1);
        assert!(p.verify_checksum());
        assert_eq!(p.options(), &[0x94, 0x04, 0x00, 0x00]);
        assert_eq!(p.payload(), &IGMP_DATAGRAM[24..]);
        let repr = Ipv4Repr::parse(&p).unwrap();
        assert_eq!(repr, igmp_repr());
        assert!(repr.options.has_router_alert());
    }

    #[test]
    fn deconstruct_udp_data() {
        let p = Ipv4Packet::new_checked(&UDP_DATAGRAM[..]).unwrap();
        assert!(p.dont_frag());
        assert_eq!(Ipv4Repr::parse(&p).unwrap(), udp_repr());
        assert!(!udp_repr().options.has_router_alert());
    }

    #[test]
    fn construct_into_poisoned_buffer() {
        for (repr, golden) in [(igmp_repr(), &IGMP_DATAGRAM[..]), (udp_repr(), &UDP_DATAGRAM[..])] {
            let mut bytes = vec![0xa5; repr.buffer_len() + repr.payload_len];
            let mut p = Ipv4Packet::new_unchecked(&mut bytes[..]);
            repr.emit(&mut p);
            p.payload_mut().copy_from_slice(&golden[repr.buffer_len()..]);
            assert_eq!(&bytes[..], golden);
        }
    }

    #[test]
    fn ethernet_padding_does_not_leak_into_payload() {
        let mut padded = UDP_DATAGRAM.to_vec();
        padded.extend_from_slice(&[0u8; 9]);
        let p = Ipv4Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(p.payload(), &UDP_DATAGRAM[20..]);
        assert_eq!(Ipv4Repr::parse(&p).unwrap().payload_len, 17);
    }

    #[test]
    fn check_len_errors() {
        assert_eq!(Ipv4Packet::new_checked(&[][..]).unwrap_err(), Error::Truncated);
        let mut b = UDP_DATAGRAM;
        b[0] = 0x65;
        assert_eq!(Ipv4Packet::new_checked(&b[..]).unwrap_err(), Error::BadVersion);
        assert_eq!(
            Ipv4Packet::new_checked(&UDP_DATAGRAM[..19]).unwrap_err(),
            Error::BadHeaderLength
        );
        assert_eq!(Ipv4Packet::new_checked(&[0x45][..]).unwrap_err(), Error::BadHeaderLength);
        let mut b = UDP_DATAGRAM;
        b[0] = 0x44;
        assert_eq!(Ipv4Packet::new_checked(&b[..]).unwrap_err(), Error::BadHeaderLength);
        b[0] = 0x4f; // 60-byte header in a 37-byte buffer
        assert_eq!(Ipv4Packet::new_checked(&b[..]).unwrap_err(), Error::BadHeaderLength);
        let mut b = UDP_DATAGRAM;
        b[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(Ipv4Packet::new_checked(&b[..]).unwrap_err(), Error::BadLength);
        b[2..4].copy_from_slice(&38u16.to_be_bytes());
        assert_eq!(Ipv4Packet::new_checked(&b[..]).unwrap_err(), Error::BadLength);
    }

    #[test]
    fn bad_checksum_is_rejected() {
        let mut b = UDP_DATAGRAM;
        b[11] ^= 1;
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert!(!p.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&p).unwrap_err(), Error::BadChecksum);
    }

    #[test]
    fn fragments_are_unsupported() {
        for (mf, off) in [(true, 0), (false, 8), (true, 1480)] {
            let mut b = UDP_DATAGRAM;
            let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
            p.set_more_frags(mf);
            p.set_frag_offset(off);
            p.fill_checksum();
            assert!(p.is_fragment());
            assert_eq!(p.frag_offset(), off);
            assert_eq!(p.more_frags(), mf);
            assert!(p.dont_frag(), "flag setters must not clobber DF");
            let p = Ipv4Packet::new_checked(&b[..]).unwrap();
            assert_eq!(Ipv4Repr::parse(&p).unwrap_err(), Error::Unsupported);
        }
    }

    #[test]
    fn decrement_ttl_matches_golden_and_stops_at_zero() {
        let mut b = UDP_DATAGRAM;
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        assert_eq!(p.decrement_ttl(), Some(14));
        assert!(p.verify_checksum());
        p.set_ttl(0);
        p.fill_checksum();
        let before = p.checksum();
        assert_eq!(p.decrement_ttl(), None);
        assert_eq!((p.ttl(), p.checksum()), (0, before));
    }

    #[test]
    fn options_validation() {
        assert_eq!(Ipv4Options::new(&[1, 1, 1]).unwrap_err(), Error::Malformed);
        assert_eq!(Ipv4Options::new(&[0; 44]).unwrap_err(), Error::Malformed);
        assert_eq!(Ipv4Options::new(&[0x94, 4, 0, 0]).unwrap(), Ipv4Options::router_alert());
        // NOP, NOP, then Router Alert.
        assert!(Ipv4Options::new(&[1, 1, 0x94, 4, 0, 0, 0, 0]).unwrap().has_router_alert());
        // A zero-length option must not loop forever.
        assert!(!Ipv4Options::new(&[0x83, 0, 0, 0]).unwrap().has_router_alert());
    }

    fn arb_repr() -> impl Strategy<Value = Ipv4Repr> {
        (
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            any::<u16>(),
            any::<bool>(),
            (0usize..=10).prop_flat_map(|w| proptest::collection::vec(any::<u8>(), w * 4)),
            0usize..1500,
        )
            .prop_map(|(s, d, proto, ttl, tos, ident, df, opts, payload_len)| Ipv4Repr {
                src_addr: s.into(),
                dst_addr: d.into(),
                protocol: Protocol::from(proto),
                ttl,
                dscp_ecn: tos,
                ident,
                dont_frag: df,
                options: Ipv4Options::new(&opts).unwrap(),
                payload_len,
            })
    }

    proptest! {
        #[test]
        fn repr_round_trip(repr in arb_repr()) {
            let mut buf = vec![0xa5; repr.buffer_len() + repr.payload_len];
            repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
            let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Ipv4Repr::parse(&p).unwrap(), repr);
        }

        #[test]
        fn decrement_ttl_equals_full_recompute(repr in arb_repr()) {
            let mut buf = vec![0; repr.buffer_len() + repr.payload_len];
            repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
            let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
            let result = p.decrement_ttl();
            let incremental = p.checksum();
            p.fill_checksum();
            prop_assert_eq!(incremental, p.checksum());
            prop_assert_eq!(result, repr.ttl.checked_sub(1));
            prop_assert!(p.verify_checksum());
        }

        #[test]
        fn no_panic_on_any_input(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let mut bytes = bytes;
            if let Some(b) = bytes.first_mut() { *b = 0x40 | (*b & 0x0f); }
            if let Ok(p) = Ipv4Packet::new_checked(&bytes[..]) {
                let _ = Ipv4Repr::parse(&p);
                let _ = (p.payload(), p.options(), p.frag_offset(), p.verify_checksum());
            }
        }
    }
}
