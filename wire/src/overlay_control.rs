//! fanout's overlay control messages: membership, overlay link state, RTT probes and heartbeats
//! between overlay nodes, carried in unicast UDP to [`CONTROL_PORT`] (7411) through the kernel
//! (the data plane's encapsulation on port 7410 is [`crate::overlay`]). Every message is
//! authenticated: it ends with a trailer holding a key id, a per-sender sequence number and a
//! 128-bit truncated HMAC-SHA256 tag. The MAC itself is computed by the control plane; this module
//! only exposes the bytes it covers ([`ControlPacket::auth_input`]).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version|  Type |   Reserved    |          Body length          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 Overlay group id (IPv4 group G)               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                  Sender (overlay node address)                |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 Body (Body length bytes) ...                  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |    Key id     |                  Reserved                     |  \
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+   |
//! |                    Auth sequence number                       |   | auth trailer
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+   | (24 bytes)
//! |   Tag: HMAC-SHA256(key[key id], every byte above) truncated   |   |
//! |   to its first 128 bits (16 bytes)                            |  /
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Bodies by type (all integers big-endian):
//!
//! | Type | Message      | Body                                                                 |
//! |------|--------------|----------------------------------------------------------------------|
//! | 1    | Join         | timestamp (u64, sender's ms clock, a nonce echoed in the answer)     |
//! | 2    | JoinAccept   | echoed timestamp (u64), count (u16), reserved (u16), count × member  |
//! | 3    | JoinReject   | reason (u8), reserved (3 bytes)                                      |
//! | 4    | Leave        | empty                                                                |
//! | 5    | LinkState    | origin (4), LSA sequence (u32), count (u16), reserved (u16), count × (neighbour (4), cost (u32)) |
//! | 6    | Probe        | timestamp (u64)                                                      |
//! | 7    | ProbeReply   | echoed timestamp (u64)                                               |
//! | 8    | Heartbeat    | empty                                                                |
//! | 9    | MemberList   | count (u16), reserved (u16), count × member (4)                      |
//! | 10   | Unlink       | empty                                                                |
//!
//! # Invariants
//!
//! After [`ControlPacket::new_checked`]: the version is 1 and the buffer holds the 12-byte header,
//! `body length` bytes of body and the 24-byte trailer, so every accessor is in bounds. Bytes after
//! the trailer are ignored (the UDP layer bounds the payload). [`ControlRepr::parse`] additionally
//! requires the group to be multicast and the body length to be exactly what the type and its
//! count field imply ([`Error::Malformed`] otherwise); unknown types are [`Error::Unsupported`].
//! Reserved fields are sent as zero and ignored on receipt.
//!
//! ```
//! use core::net::Ipv4Addr;
//! use wire::overlay_control::{ControlPacket, ControlRepr, Message};
//!
//! let repr = ControlRepr {
//!     group: Ipv4Addr::new(239, 1, 1, 1),
//!     sender: Ipv4Addr::new(10, 0, 0, 2),
//!     message: Message::Probe { timestamp: 1234 },
//!     key_id: 1,
//!     auth_sequence: 7,
//! };
//! let mut buf = vec![0; repr.buffer_len()];
//! repr.emit(&mut ControlPacket::new_unchecked(&mut buf[..]))?;
//! // The control plane would now fill the tag from `auth_input()`.
//! let packet = ControlPacket::new_checked(&buf[..])?;
//! assert_eq!(packet.auth_input().len(), buf.len() - 16);
//! assert_eq!(ControlRepr::parse(&packet)?, repr);
//! # Ok::<(), wire::Error>(())
//! ```

use core::net::Ipv4Addr;

use crate::{enum_with_unknown, Error, Result};

pub use crate::overlay::CONTROL_PORT;

/// The only version this code speaks.
pub const VERSION: u8 = 1;
/// Length of the fixed header before the body.
pub const HEADER_LEN: usize = field::BODY_START;
/// Length of the authentication trailer (key id, reserved, sequence, tag).
pub const TRAILER_LEN: usize = 24;
/// Length of the truncated HMAC-SHA256 tag.
pub const TAG_LEN: usize = 16;
/// Largest body the 16-bit length field can describe.
pub const MAX_BODY_LEN: usize = u16::MAX as usize;

enum_with_unknown! {
    /// Control message type (low nibble of byte 0).
    pub enum MessageType(u8) {
        Join = 1,
        JoinAccept = 2,
        JoinReject = 3,
        Leave = 4,
        LinkState = 5,
        Probe = 6,
        ProbeReply = 7,
        Heartbeat = 8,
        MemberList = 9,
        Unlink = 10,
    }
}

enum_with_unknown! {
    /// Why a rendezvous node refused a join.
    pub enum RejectReason(u8) {
        /// The tag did not verify with the group key.
        BadAuth = 1,
        /// The key id names no key of this group.
        UnknownKey = 2,
        /// The auth sequence number was not above the last one seen from the sender.
        Replay = 3,
        /// The addressed node is not the group's rendezvous.
        NotRendezvous = 4,
        /// The group is full.
        GroupFull = 5,
    }
}

mod field {
    use crate::Field;

    pub const VER_TYPE: usize = 0;
    pub const BODY_LEN: Field = 2..4;
    pub const GROUP: Field = 4..8;
    pub const SENDER: Field = 8..12;
    pub const BODY_START: usize = 12;
    // Offsets inside the trailer.
    pub const KEY_ID: usize = 0;
    pub const SEQUENCE: Field = 4..8;
    pub const TAG: Field = 8..24;
}

/// A read/write view of an overlay control message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ControlPacket<T> {
    /// Wraps a buffer without checks (for emission into a buffer the caller sized).
    #[inline]
    pub const fn new_unchecked(buffer: T) -> ControlPacket<T> {
        ControlPacket { buffer }
    }

    /// Wraps untrusted bytes (see [`ControlPacket::check_len`]).
    pub fn new_checked(buffer: T) -> Result<ControlPacket<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// [`Error::Truncated`] if the header, the body its length names, or the trailer does not
    /// fit; [`Error::BadVersion`] unless the version is 1.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != VERSION {
            return Err(Error::BadVersion);
        }
        if len < self.total_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn read_u32(&self, at: usize) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    /// Version (high nibble of byte 0).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TYPE] >> 4
    }

    /// Message type (low nibble of byte 0).
    pub fn msg_type(&self) -> MessageType {
        MessageType::from(self.buffer.as_ref()[field::VER_TYPE] & 0x0f)
    }

    /// Body length in bytes.
    pub fn body_len(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[field::BODY_LEN.start], b[field::BODY_LEN.start + 1]])
    }

    /// Header, body and trailer: the length the message claims.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + usize::from(self.body_len()) + TRAILER_LEN
    }

    /// The overlay group the message is about.
    pub fn group(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.read_u32(field::GROUP.start))
    }

    /// The overlay node that sent (and authenticated) the message.
    pub fn sender(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.read_u32(field::SENDER.start))
    }

    /// The type-specific body.
    pub fn body(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + usize::from(self.body_len())]
    }

    fn trailer_start(&self) -> usize {
        HEADER_LEN + usize::from(self.body_len())
    }

    /// Index of the group key the tag was computed with.
    pub fn key_id(&self) -> u8 {
        self.buffer.as_ref()[self.trailer_start() + field::KEY_ID]
    }

    /// Per-sender sequence number (replay protection: receivers accept only increasing values).
    pub fn auth_sequence(&self) -> u32 {
        self.read_u32(self.trailer_start() + field::SEQUENCE.start)
    }

    /// The truncated HMAC-SHA256 tag.
    pub fn auth_tag(&self) -> &[u8; TAG_LEN] {
        let start = self.trailer_start();
        let tag = &self.buffer.as_ref()[start + field::TAG.start..start + field::TAG.end];
        tag.try_into().expect("TAG is 16 bytes long")
    }

    /// The bytes the tag covers: everything from byte 0 up to (not including) the tag.
    pub fn auth_input(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.trailer_start() + field::TAG.start]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ControlPacket<T> {
    /// Sets version and type (the type is truncated to 4 bits).
    pub fn set_version_type(&mut self, version: u8, msg_type: MessageType) {
        self.buffer.as_mut()[field::VER_TYPE] = (version << 4) | (u8::from(msg_type) & 0x0f);
    }

    /// Sets the body length; the trailer's position follows it.
    pub fn set_body_len(&mut self, len: u16) {
        self.buffer.as_mut()[field::BODY_LEN].copy_from_slice(&len.to_be_bytes());
    }

    pub fn set_group(&mut self, group: Ipv4Addr) {
        self.buffer.as_mut()[field::GROUP].copy_from_slice(&group.octets());
    }

    pub fn set_sender(&mut self, sender: Ipv4Addr) {
        self.buffer.as_mut()[field::SENDER].copy_from_slice(&sender.octets());
    }

    /// Mutable body (as long as the body length field says).
    pub fn body_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.body_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// Writes key id and sequence and zeroes the trailer's reserved bytes.
    pub fn set_auth(&mut self, key_id: u8, sequence: u32) {
        let start = self.trailer_start();
        let b = self.buffer.as_mut();
        b[start + field::KEY_ID] = key_id;
        b[start + 1..start + field::SEQUENCE.start].fill(0);
        b[start + field::SEQUENCE.start..start + field::SEQUENCE.end]
            .copy_from_slice(&sequence.to_be_bytes());
    }

    /// The tag to fill in after the rest of the message is in place.
    pub fn auth_tag_mut(&mut self) -> &mut [u8; TAG_LEN] {
        let start = self.trailer_start();
        let tag = &mut self.buffer.as_mut()[start + field::TAG.start..start + field::TAG.end];
        tag.try_into().expect("TAG is 16 bytes long")
    }
}

/// One advertised overlay link in a [`Message::LinkState`]: the neighbour and the cost of
/// reaching it (measured RTT in milliseconds, or a configured cost).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkEntry {
    pub neighbor: Ipv4Addr,
    pub cost: u32,
}

/// The type-specific part of a control message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Message {
    /// Ask the rendezvous node to admit the sender to the group.
    Join {
        timestamp: u64,
    },
    /// Admission, with the echoed join timestamp and the current members (sender included).
    JoinAccept {
        timestamp: u64,
        members: Vec<Ipv4Addr>,
    },
    JoinReject {
        reason: RejectReason,
    },
    /// The sender leaves the group.
    Leave,
    /// `origin`'s current overlay neighbours with costs, flooded over the overlay.
    LinkState {
        origin: Ipv4Addr,
        sequence: u32,
        links: Vec<LinkEntry>,
    },
    /// RTT measurement request.
    Probe {
        timestamp: u64,
    },
    /// Answer to a probe, echoing its timestamp.
    ProbeReply {
        timestamp: u64,
    },
    /// Liveness between overlay neighbours; from a non-neighbour it asks for adjacency.
    Heartbeat,
    /// The rendezvous node's current member list.
    MemberList {
        members: Vec<Ipv4Addr>,
    },
    /// The sender drops the adjacency with the receiver.
    Unlink,
}

impl Message {
    pub fn msg_type(&self) -> MessageType {
        match self {
            Message::Join { .. } => MessageType::Join,
            Message::JoinAccept { .. } => MessageType::JoinAccept,
            Message::JoinReject { .. } => MessageType::JoinReject,
            Message::Leave => MessageType::Leave,
            Message::LinkState { .. } => MessageType::LinkState,
            Message::Probe { .. } => MessageType::Probe,
            Message::ProbeReply { .. } => MessageType::ProbeReply,
            Message::Heartbeat => MessageType::Heartbeat,
            Message::MemberList { .. } => MessageType::MemberList,
            Message::Unlink => MessageType::Unlink,
        }
    }

    /// Body length this message emits.
    pub fn body_len(&self) -> usize {
        match self {
            Message::Join { .. } | Message::Probe { .. } | Message::ProbeReply { .. } => 8,
            Message::JoinAccept { members, .. } => 12 + 4 * members.len(),
            Message::JoinReject { .. } => 4,
            Message::Leave | Message::Heartbeat | Message::Unlink => 0,
            Message::LinkState { links, .. } => 12 + 8 * links.len(),
            Message::MemberList { members } => 4 + 4 * members.len(),
        }
    }
}

/// A control message's fields. The tag is not part of the Repr: it is a function of the key and
/// the bytes, computed and checked by the control plane.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ControlRepr {
    pub group: Ipv4Addr,
    pub sender: Ipv4Addr,
    pub message: Message,
    pub key_id: u8,
    pub auth_sequence: u32,
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(x)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u16_at(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_be_bytes([b[at], b[at + 1]]))
}

/// Reads `count` addresses from `b[at..]`, which must end exactly after them.
fn addrs(b: &[u8], at: usize, count: usize) -> Result<Vec<Ipv4Addr>> {
    if b.len() != at + 4 * count {
        return Err(Error::Malformed);
    }
    Ok(b[at..].chunks_exact(4).map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3])).collect())
}

impl ControlRepr {
    /// Reads a checked packet. Errors: those of `check_len`; [`Error::Unsupported`] for an
    /// unknown type; [`Error::Malformed`] for a non-multicast group or a body whose length does
    /// not match its type and count.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &ControlPacket<&T>) -> Result<ControlRepr> {
        packet.check_len()?;
        let group = packet.group();
        if !group.is_multicast() {
            return Err(Error::Malformed);
        }
        let b = packet.body();
        let fixed = |n: usize| if b.len() == n { Ok(()) } else { Err(Error::Malformed) };
        let at_least = |n: usize| if b.len() >= n { Ok(()) } else { Err(Error::Malformed) };
        let message = match packet.msg_type() {
            MessageType::Join => {
                fixed(8)?;
                Message::Join { timestamp: u64_at(b, 0) }
            }
            MessageType::JoinAccept => {
                at_least(12)?;
                Message::JoinAccept {
                    timestamp: u64_at(b, 0),
                    members: addrs(b, 12, u16_at(b, 8))?,
                }
            }
            MessageType::JoinReject => {
                fixed(4)?;
                Message::JoinReject { reason: RejectReason::from(b[0]) }
            }
            MessageType::Leave => {
                fixed(0)?;
                Message::Leave
            }
            MessageType::LinkState => {
                at_least(12)?;
                let count = u16_at(b, 8);
                if b.len() != 12 + 8 * count {
                    return Err(Error::Malformed);
                }
                let links = b[12..]
                    .chunks_exact(8)
                    .map(|c| LinkEntry {
                        neighbor: Ipv4Addr::new(c[0], c[1], c[2], c[3]),
                        cost: u32_at(c, 4),
                    })
                    .collect();
                Message::LinkState {
                    origin: Ipv4Addr::from(u32_at(b, 0)),
                    sequence: u32_at(b, 4),
                    links,
                }
            }
            MessageType::Probe => {
                fixed(8)?;
                Message::Probe { timestamp: u64_at(b, 0) }
            }
            MessageType::ProbeReply => {
                fixed(8)?;
                Message::ProbeReply { timestamp: u64_at(b, 0) }
            }
            MessageType::Heartbeat => {
                fixed(0)?;
                Message::Heartbeat
            }
            MessageType::MemberList => {
                at_least(4)?;
                Message::MemberList { members: addrs(b, 4, u16_at(b, 0))? }
            }
            MessageType::Unlink => {
                fixed(0)?;
                Message::Unlink
            }
            MessageType::Unknown(_) => return Err(Error::Unsupported),
        };
        Ok(ControlRepr {
            group,
            sender: packet.sender(),
            message,
            key_id: packet.key_id(),
            auth_sequence: packet.auth_sequence(),
        })
    }

    /// Whole message length: header, body, trailer.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.message.body_len() + TRAILER_LEN
    }

    /// Writes the message with a zeroed tag (fill it from [`ControlPacket::auth_input`]).
    /// [`Error::BadLength`] (nothing written) if the body or a count does not fit its 16-bit
    /// field, [`Error::Truncated`] if the buffer is shorter than `buffer_len()`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut ControlPacket<T>) -> Result<()> {
        let body_len = self.message.body_len();
        if body_len > MAX_BODY_LEN {
            return Err(Error::BadLength);
        }
        if packet.buffer.as_ref().len() < self.buffer_len() {
            return Err(Error::Truncated);
        }
        packet.set_version_type(VERSION, self.message.msg_type());
        packet.buffer.as_mut()[1] = 0;
        packet.set_body_len(body_len as u16);
        packet.set_group(self.group);
        packet.set_sender(self.sender);
        let b = packet.body_mut();
        match &self.message {
            Message::Join { timestamp }
            | Message::Probe { timestamp }
            | Message::ProbeReply { timestamp } => b.copy_from_slice(&timestamp.to_be_bytes()),
            Message::JoinAccept { timestamp, members } => {
                b[..8].copy_from_slice(&timestamp.to_be_bytes());
                b[8..10].copy_from_slice(&(members.len() as u16).to_be_bytes());
                b[10..12].fill(0);
                write_addrs(&mut b[12..], members);
            }
            Message::JoinReject { reason } => {
                b[0] = u8::from(*reason);
                b[1..4].fill(0);
            }
            Message::Leave | Message::Heartbeat | Message::Unlink => {}
            Message::LinkState { origin, sequence, links } => {
                b[..4].copy_from_slice(&origin.octets());
                b[4..8].copy_from_slice(&sequence.to_be_bytes());
                b[8..10].copy_from_slice(&(links.len() as u16).to_be_bytes());
                b[10..12].fill(0);
                for (chunk, link) in b[12..].chunks_exact_mut(8).zip(links) {
                    chunk[..4].copy_from_slice(&link.neighbor.octets());
                    chunk[4..].copy_from_slice(&link.cost.to_be_bytes());
                }
            }
            Message::MemberList { members } => {
                b[..2].copy_from_slice(&(members.len() as u16).to_be_bytes());
                b[2..4].fill(0);
                write_addrs(&mut b[4..], members);
            }
        }
        packet.set_auth(self.key_id, self.auth_sequence);
        *packet.auth_tag_mut() = [0; TAG_LEN];
        Ok(())
    }
}

fn write_addrs(b: &mut [u8], addrs: &[Ipv4Addr]) {
    for (chunk, a) in b.chunks_exact_mut(4).zip(addrs) {
        chunk.copy_from_slice(&a.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // LinkState from 10.0.0.2 about group 239.1.1.1: origin 10.0.0.3, LSA seq 5, two links
    // (10.0.0.1 cost 12, 10.0.0.4 cost 0x01020304); key id 2, auth sequence 0x0a0b0c0d, tag 0x77..
    static LINK_STATE: [u8; 64] = [
        0x15, 0x00, 0x00, 0x1c, // v1 type 5, body 28
        0xef, 0x01, 0x01, 0x01, // group
        0x0a, 0x00, 0x00, 0x02, // sender
        0x0a, 0x00, 0x00, 0x03, // origin
        0x00, 0x00, 0x00, 0x05, // LSA sequence
        0x00, 0x02, 0x00, 0x00, // count, reserved
        0x0a, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x0c, // link 1
        0x0a, 0x00, 0x00, 0x04, 0x01, 0x02, 0x03, 0x04, // link 2
        0x02, 0x00, 0x00, 0x00, // key id, reserved
        0x0a, 0x0b, 0x0c, 0x0d, // auth sequence
        0x77, 0x77, 0x77, 0x77, 0x77, 0x77, 0x77, 0x77, 0x77, 0x77, 0x77, 0x77, 0x77, 0x77, 0x77,
        0x77, // tag
    ];

    // Heartbeat (empty body), key id 1, auth sequence 1, tag 0x11..
    static HEARTBEAT: [u8; 36] = [
        0x18, 0x00, 0x00, 0x00, 0xef, 0x01, 0x01, 0x01, 0x0a, 0x00, 0x00, 0x02, 0x01, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x01, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
        0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
    ];

    fn link_state_repr() -> ControlRepr {
        ControlRepr {
            group: Ipv4Addr::new(239, 1, 1, 1),
            sender: Ipv4Addr::new(10, 0, 0, 2),
            message: Message::LinkState {
                origin: Ipv4Addr::new(10, 0, 0, 3),
                sequence: 5,
                links: vec![
                    LinkEntry { neighbor: Ipv4Addr::new(10, 0, 0, 1), cost: 12 },
                    LinkEntry { neighbor: Ipv4Addr::new(10, 0, 0, 4), cost: 0x0102_0304 },
                ],
            },
            key_id: 2,
            auth_sequence: 0x0a0b_0c0d,
        }
    }

    #[test]
    fn deconstruct_link_state() {
        let p = ControlPacket::new_checked(&LINK_STATE[..]).unwrap();
        assert_eq!(p.version(), 1);
        assert_eq!(p.msg_type(), MessageType::LinkState);
        assert_eq!(p.body_len(), 28);
        assert_eq!(p.total_len(), 64);
        assert_eq!(p.group(), Ipv4Addr::new(239, 1, 1, 1));
        assert_eq!(p.sender(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(p.key_id(), 2);
        assert_eq!(p.auth_sequence(), 0x0a0b_0c0d);
        assert_eq!(p.auth_tag(), &[0x77; 16]);
        assert_eq!(p.auth_input(), &LINK_STATE[..48]);
        assert_eq!(ControlRepr::parse(&p).unwrap(), link_state_repr());
    }

    #[test]
    fn deconstruct_heartbeat() {
        let p = ControlPacket::new_checked(&HEARTBEAT[..]).unwrap();
        let r = ControlRepr::parse(&p).unwrap();
        assert_eq!(r.message, Message::Heartbeat);
        assert_eq!((r.key_id, r.auth_sequence), (1, 1));
        assert_eq!(p.auth_input(), &HEARTBEAT[..20]);
    }

    #[test]
    fn construct_into_poisoned_buffer() {
        for (repr, golden, tag) in [
            (link_state_repr(), &LINK_STATE[..], 0x77),
            (
                ControlRepr {
                    group: Ipv4Addr::new(239, 1, 1, 1),
                    sender: Ipv4Addr::new(10, 0, 0, 2),
                    message: Message::Heartbeat,
                    key_id: 1,
                    auth_sequence: 1,
                },
                &HEARTBEAT[..],
                0x11,
            ),
        ] {
            let mut bytes = vec![0xa5; repr.buffer_len()];
            let mut p = ControlPacket::new_unchecked(&mut bytes[..]);
            repr.emit(&mut p).unwrap();
            assert_eq!(p.auth_tag(), &[0; 16], "emit zeroes the tag");
            *p.auth_tag_mut() = [tag; 16];
            assert_eq!(&bytes[..], golden);
        }
    }

    #[test]
    fn check_len_and_parse_errors() {
        assert_eq!(ControlPacket::new_checked(&HEARTBEAT[..11]).unwrap_err(), Error::Truncated);
        assert_eq!(ControlPacket::new_checked(&HEARTBEAT[..35]).unwrap_err(), Error::Truncated);
        assert_eq!(ControlPacket::new_checked(&LINK_STATE[..63]).unwrap_err(), Error::Truncated);
        let mut b = HEARTBEAT;
        b[0] = 0x28;
        assert_eq!(ControlPacket::new_checked(&b[..]).unwrap_err(), Error::BadVersion);
        let mut b = HEARTBEAT;
        b[0] = 0x1f;
        let p = ControlPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.msg_type(), MessageType::Unknown(15));
        assert_eq!(ControlRepr::parse(&p).unwrap_err(), Error::Unsupported);
        let mut b = HEARTBEAT;
        b[4] = 10;
        let p = ControlPacket::new_checked(&b[..]).unwrap();
        assert_eq!(ControlRepr::parse(&p).unwrap_err(), Error::Malformed, "unicast group");
        // A link count that disagrees with the body length.
        let mut b = LINK_STATE;
        b[21] = 3;
        let p = ControlPacket::new_checked(&b[..]).unwrap();
        assert_eq!(ControlRepr::parse(&p).unwrap_err(), Error::Malformed);
        // A heartbeat that carries a body.
        let mut b = LINK_STATE;
        b[0] = 0x18;
        let p = ControlPacket::new_checked(&b[..]).unwrap();
        assert_eq!(ControlRepr::parse(&p).unwrap_err(), Error::Malformed);
    }

    #[test]
    fn emit_refuses_short_buffer_and_oversized_body() {
        let r = link_state_repr();
        let mut short = vec![0u8; r.buffer_len() - 1];
        assert_eq!(
            r.emit(&mut ControlPacket::new_unchecked(&mut short[..])),
            Err(Error::Truncated)
        );
        let huge = ControlRepr {
            message: Message::MemberList { members: vec![Ipv4Addr::LOCALHOST; 20_000] },
            ..r
        };
        let mut buf = vec![0u8; huge.buffer_len()];
        assert_eq!(
            huge.emit(&mut ControlPacket::new_unchecked(&mut buf[..])),
            Err(Error::BadLength)
        );
    }

    #[test]
    fn trailing_bytes_are_outside_the_message() {
        let mut b = HEARTBEAT.to_vec();
        b.extend_from_slice(&[0xff; 5]);
        let p = ControlPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.auth_tag(), &[0x11; 16]);
        assert_eq!(ControlRepr::parse(&p).unwrap().message, Message::Heartbeat);
    }

    fn arb_addr() -> impl Strategy<Value = Ipv4Addr> + Clone {
        any::<[u8; 4]>().prop_map(Ipv4Addr::from)
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        let addrs = proptest::collection::vec(arb_addr(), 0..8);
        let links = proptest::collection::vec(
            (arb_addr(), any::<u32>()).prop_map(|(neighbor, cost)| LinkEntry { neighbor, cost }),
            0..8,
        );
        prop_oneof![
            any::<u64>().prop_map(|timestamp| Message::Join { timestamp }),
            (any::<u64>(), addrs.clone())
                .prop_map(|(timestamp, members)| Message::JoinAccept { timestamp, members }),
            any::<u8>().prop_map(|r| Message::JoinReject { reason: RejectReason::from(r) }),
            Just(Message::Leave),
            (arb_addr(), any::<u32>(), links).prop_map(|(origin, sequence, links)| {
                Message::LinkState { origin, sequence, links }
            }),
            any::<u64>().prop_map(|timestamp| Message::Probe { timestamp }),
            any::<u64>().prop_map(|timestamp| Message::ProbeReply { timestamp }),
            Just(Message::Heartbeat),
            addrs.prop_map(|members| Message::MemberList { members }),
            Just(Message::Unlink),
        ]
    }

    proptest! {
        #[test]
        fn repr_round_trip(
            message in arb_message(),
            g in (224u8..=239, any::<[u8; 3]>()),
            sender in arb_addr(),
            key_id in any::<u8>(),
            auth_sequence in any::<u32>(),
        ) {
            let r = ControlRepr {
                group: Ipv4Addr::new(g.0, g.1[0], g.1[1], g.1[2]),
                sender,
                message,
                key_id,
                auth_sequence,
            };
            let mut buf = vec![0xa5; r.buffer_len()];
            r.emit(&mut ControlPacket::new_unchecked(&mut buf[..])).unwrap();
            let p = ControlPacket::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(p.total_len(), buf.len());
            prop_assert_eq!(ControlRepr::parse(&p).unwrap(), r);
        }

        #[test]
        fn no_panic_on_any_input(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
            let mut bytes = bytes;
            if let Some(b) = bytes.first_mut() { *b = 0x10 | (*b & 0x0f); }
            if let Some(b) = bytes.get_mut(2) { *b = 0; }
            if let Ok(p) = ControlPacket::new_checked(&bytes[..]) {
                let _ = ControlRepr::parse(&p);
                let _ = (p.body(), p.auth_tag(), p.auth_input(), p.key_id(), p.auth_sequence());
            }
        }
    }
}
