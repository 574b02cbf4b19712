//! DVMRP messages (IGMP type 0x13), as specified by draft-ietf-idmr-dvmrp-v3-11 and spoken by
//! mrouted 4.x (see `shared/protocols/dvmrp.md`).
//!
//! [`DvmrpPacket`] is a view over one DVMRP message (the whole IPv4 payload, so the checksum
//! covers the whole buffer); [`DvmrpRepr`] is the validated message the control plane uses.
//!
//! # Invariants
//!
//! - After [`DvmrpPacket::check_len`] succeeds the 8-byte header is readable; the data that
//!   follows is decoded only by [`DvmrpRepr::parse`], which never reads past the buffer.
//! - Codes this module does not decode (neighbour queries for mrinfo, unknown codes) parse as
//!   [`Message::Other`] with their raw data, so conversion never fails on the code alone.
//! - Route reports: each block is `mask(3) { origin(w) metric(1) }+`, bit 7 of the metric ends
//!   the block, and `w` follows mrouted (1, plus one for each non-zero mask byte up to the last
//!   one). Metrics are 1..=63 (33..=63 being poison reverse); masks must be contiguous. The
//!   default route 0.0.0.0/0 is carried as mask `000000`, origin `00`: a block with mask
//!   0.0.0.0 in a [`ReportBlock`]. Because mask `000000` also means 255.0.0.0, a /8 block never
//!   holds origin 0.0.0.0, and a wire block that mixes both is rejected.
//! - `emit` reproduces mrouted's bytes exactly for every value `parse` returns; the reserved
//!   byte is written as zero.
//!
//! # Example
//!
//! ```
//! use core::net::Ipv4Addr;
//! use wire::dvmrp::{DvmrpPacket, DvmrpRepr, Message, CAP_GENID, CAP_MTRACE, CAP_PRUNE};
//!
//! let probe = DvmrpRepr {
//!     capabilities: CAP_PRUNE | CAP_GENID | CAP_MTRACE,
//!     minor: 0xff,
//!     major: 3,
//!     message: Message::Probe {
//!         generation_id: 0x4020_0000,
//!         neighbors: vec![Ipv4Addr::new(10, 77, 12, 1)],
//!     },
//! };
//! let mut bytes = vec![0; probe.buffer_len()];
//! probe.emit(&mut DvmrpPacket::new_unchecked(&mut bytes));
//! // Byte for byte what mrouted sent on the captured link.
//! assert_eq!(bytes, [0x13, 1, 0x97, 0x7e, 0, 0x0e, 0xff, 3, 0x40, 0x20, 0, 0, 10, 77, 12, 1]);
//! assert_eq!(DvmrpRepr::parse(&DvmrpPacket::new_checked(&bytes[..])?)?, probe);
//! # Ok::<(), wire::Error>(())
//! ```
//!
//! # Fuzzing
//!
//! Under `cfg(fuzzing)` [`DvmrpPacket::verify_checksum`] always succeeds.

use core::fmt;
use core::net::Ipv4Addr;

use crate::igmp::MessageType;
use crate::{checksum, enum_with_unknown, Error, Result};

/// All-DVMRP-Routers: probes and reports are sent here with TTL 1.
pub const ALL_DVMRP_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 4);

/// Capability flag: the router has neighbours on one interface only.
pub const CAP_LEAF: u8 = 0x01;
/// Capability flag: understands prunes (mandatory for a usable neighbour).
pub const CAP_PRUNE: u8 = 0x02;
/// Capability flag: sends generation IDs in probes.
pub const CAP_GENID: u8 = 0x04;
/// Capability flag: answers mtrace.
pub const CAP_MTRACE: u8 = 0x08;
/// Capability flag: has an SNMP agent.
pub const CAP_SNMP: u8 = 0x10;
/// Capability flag: sends the source netmask in prunes.
pub const CAP_NETMASK: u8 = 0x20;

/// Most report data one message may carry so that the IPv4 packet stays within 576 bytes even
/// with a 60-byte header (mrouted's `MAX_DVMRP_DATA_LEN`); split reports with
/// [`ReportBlock::encoded_len`] and [`ReportBlock::route_len`].
pub const MAX_REPORT_DATA_LEN: usize = 576 - 60 - 8;

/// Route metric meaning "unreachable"; metrics above it (33..=63) are poison reverse.
pub const METRIC_INFINITY: u8 = 32;

/// Largest metric a report may carry (infinity + 31, the largest poison-reverse value).
const METRIC_MAX: u8 = 63;
/// Bit 7 of a report metric: this is the last (origin, metric) pair of the block.
const LAST_PAIR: u8 = 0x80;

enum_with_unknown! {
    /// The DVMRP Code field (IGMP byte 1).
    pub enum Code(u8) {
        /// Neighbour discovery and keep-alive.
        Probe = 1,
        /// Route report.
        Report = 2,
        /// mrinfo neighbour request (old form).
        AskNeighbors = 3,
        /// mrinfo neighbour reply (old form).
        Neighbors = 4,
        /// mrinfo neighbour request.
        AskNeighbors2 = 5,
        /// mrinfo neighbour reply.
        Neighbors2 = 6,
        /// Prune (S,G) upstream.
        Prune = 7,
        /// Graft (S,G) back.
        Graft = 8,
        /// Acknowledges a graft.
        GraftAck = 9,
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Code::Probe => f.write_str("probe"),
            Code::Report => f.write_str("report"),
            Code::AskNeighbors => f.write_str("ask-neighbors"),
            Code::Neighbors => f.write_str("neighbors"),
            Code::AskNeighbors2 => f.write_str("ask-neighbors2"),
            Code::Neighbors2 => f.write_str("neighbors2"),
            Code::Prune => f.write_str("prune"),
            Code::Graft => f.write_str("graft"),
            Code::GraftAck => f.write_str("graft-ack"),
            Code::Unknown(c) => write!(f, "unknown code {c}"),
        }
    }
}

mod field {
    use crate::Field;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const RESERVED: usize = 4;
    pub const CAPABILITIES: usize = 5;
    pub const MINOR: usize = 6;
    pub const MAJOR: usize = 7;
    pub const DATA: usize = 8;

    // Probe data.
    pub const GENERATION_ID: Field = 0..4;
    pub const NEIGHBORS: usize = 4;

    // Prune, graft and graft-ack data.
    pub const SOURCE: Field = 0..4;
    pub const GROUP: Field = 4..8;
    pub const LIFETIME: Field = 8..12;
    pub const SOURCE_MASK: Field = 12..16;

    /// Length of a graft/graft-ack body.
    pub const SG_LEN: usize = 8;
    /// Length of a prune body without the optional source mask.
    pub const PRUNE_LEN: usize = 12;
    /// Length of a prune body with the source mask.
    pub const PRUNE_WITH_MASK_LEN: usize = 16;
    /// Report block: the three low bytes of the netmask.
    pub const MASK_LEN: usize = 3;
}

fn addr_at(data: &[u8], at: core::ops::Range<usize>) -> Ipv4Addr {
    let b = &data[at];
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

fn u32_at(data: &[u8], at: core::ops::Range<usize>) -> u32 {
    let b = &data[at];
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

// ===== DvmrpPacket =====

/// A view over one DVMRP message (draft-ietf-idmr-dvmrp-v3-11 §3.1, with mrouted's use of the
/// reserved field for capability flags).
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  Type = 0x13  |     Code      |           Checksum            |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   Reserved    | Capabilities  | Minor Version | Major Version |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                        Data (per Code) ...
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// Data by code:
///
/// ```text
/// Probe (1):     Generation ID (4) | Neighbor Address (4) ...
/// Report (2):    { Mask(3) { Origin(w) Metric(1) }+ }+   (metric bit 7 = last pair of block)
/// Prune (7):     Source (4) | Group (4) | Lifetime (4) [| Source Mask (4)]
/// Graft (8):     Source (4) | Group (4)
/// Graft-Ack (9): Source (4) | Group (4)          (the graft's data, echoed)
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DvmrpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> DvmrpPacket<T> {
    /// Wraps a buffer without checking it; for emission into a buffer the caller sized.
    pub const fn new_unchecked(buffer: T) -> Self {
        DvmrpPacket { buffer }
    }

    /// Wraps untrusted bytes, checking that the header is readable.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// [`Error::Truncated`] unless the 8-byte header is present.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < field::DATA {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The IGMP Type field (0x13 for DVMRP).
    pub fn msg_type(&self) -> MessageType {
        MessageType::from(self.buffer.as_ref()[field::TYPE])
    }

    /// The Code field.
    pub fn code(&self) -> Code {
        Code::from(self.buffer.as_ref()[field::CODE])
    }

    /// The stored Checksum field.
    pub fn checksum(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::CHECKSUM];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The reserved byte (zero from mrouted; ignored on receive).
    pub fn reserved(&self) -> u8 {
        self.buffer.as_ref()[field::RESERVED]
    }

    /// Capability flags (`CAP_*`).
    pub fn capabilities(&self) -> u8 {
        self.buffer.as_ref()[field::CAPABILITIES]
    }

    /// Minor version (0xff from mrouted 3.x+/4.x).
    pub fn minor_version(&self) -> u8 {
        self.buffer.as_ref()[field::MINOR]
    }

    /// Major version (3).
    pub fn major_version(&self) -> u8 {
        self.buffer.as_ref()[field::MAJOR]
    }

    /// The data after the header.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA..]
    }

    /// Whether the checksum over the whole message verifies. Always true under `cfg(fuzzing)`.
    pub fn verify_checksum(&self) -> bool {
        if cfg!(fuzzing) {
            return true;
        }
        checksum::data(self.buffer.as_ref()) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> DvmrpPacket<T> {
    /// Sets the IGMP Type field.
    pub fn set_msg_type(&mut self, value: MessageType) {
        self.buffer.as_mut()[field::TYPE] = value.into();
    }

    /// Sets the Code field.
    pub fn set_code(&mut self, value: Code) {
        self.buffer.as_mut()[field::CODE] = value.into();
    }

    /// Sets the stored Checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the reserved byte.
    pub fn set_reserved(&mut self, value: u8) {
        self.buffer.as_mut()[field::RESERVED] = value;
    }

    /// Sets the capability flags.
    pub fn set_capabilities(&mut self, value: u8) {
        self.buffer.as_mut()[field::CAPABILITIES] = value;
    }

    /// Sets the minor version.
    pub fn set_minor_version(&mut self, value: u8) {
        self.buffer.as_mut()[field::MINOR] = value;
    }

    /// Sets the major version.
    pub fn set_major_version(&mut self, value: u8) {
        self.buffer.as_mut()[field::MAJOR] = value;
    }

    /// The data after the header, for writing.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA..]
    }

    /// Computes and stores the checksum over the whole message.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = !checksum::data(self.buffer.as_ref());
        self.set_checksum(sum);
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for DvmrpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

// ===== Report blocks =====

/// One (origin, metric) pair of a route report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    /// The source network; only the first `w` bytes travel (see [`ReportBlock`]).
    pub origin: Ipv4Addr,
    /// 1..=31 reachable, 32 infinity, 33..=63 poison reverse; without the last-pair bit.
    pub metric: u8,
}

/// Routes sharing one netmask, as one block of a report.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReportBlock {
    /// Full, contiguous netmask: 255.x.y.z, or 0.0.0.0 for the default route (whose only valid
    /// origin is 0.0.0.0).
    pub mask: Ipv4Addr,
    /// The routes, in wire order. A block without routes has no wire form and is not emitted.
    pub routes: Vec<Route>,
}

/// Bytes of origin a block with these three low mask bytes carries (mrouted's rule).
fn origin_width(mask_low: [u8; 3]) -> usize {
    if mask_low[2] != 0 {
        4
    } else if mask_low[1] != 0 {
        3
    } else if mask_low[0] != 0 {
        2
    } else {
        1
    }
}

fn mask_low_bytes(mask: Ipv4Addr) -> [u8; 3] {
    let o = mask.octets();
    [o[1], o[2], o[3]]
}

impl ReportBlock {
    /// Bytes of origin each route of this block takes on the wire.
    pub fn origin_width(&self) -> usize {
        origin_width(mask_low_bytes(self.mask))
    }

    /// Bytes this block takes in a report (0 for a block without routes), so the control plane
    /// can split its table into reports that keep packets within 576 bytes.
    pub fn encoded_len(&self) -> usize {
        if self.routes.is_empty() {
            0
        } else {
            field::MASK_LEN + self.routes.len() * (self.origin_width() + 1)
        }
    }

    /// Bytes one more route adds to this block.
    pub fn route_len(&self) -> usize {
        self.origin_width() + 1
    }

    /// Decodes one block from the front of `data`; returns it and the bytes it took.
    fn parse(data: &[u8]) -> Result<(ReportBlock, usize)> {
        let mask_low: [u8; 3] =
            data.get(..field::MASK_LEN).and_then(|m| m.try_into().ok()).ok_or(Error::Truncated)?;
        let mask = u32::from_be_bytes([0xff, mask_low[0], mask_low[1], mask_low[2]]);
        if mask.leading_ones() + mask.trailing_zeros() != 32 {
            return Err(Error::Malformed);
        }
        let width = origin_width(mask_low);
        let mut at = field::MASK_LEN;
        let mut routes = Vec::new();
        loop {
            let pair = data.get(at..at + width + 1).ok_or(Error::Truncated)?;
            let mut origin = [0u8; 4];
            origin[..width].copy_from_slice(&pair[..width]);
            let raw_metric = pair[width];
            let metric = raw_metric & !LAST_PAIR;
            if metric == 0 || metric > METRIC_MAX {
                return Err(Error::Malformed);
            }
            routes.push(Route { origin: Ipv4Addr::from(origin), metric });
            at += width + 1;
            if raw_metric & LAST_PAIR != 0 {
                break;
            }
        }
        let mut mask = Ipv4Addr::from(mask);
        if mask_low == [0; 3] {
            // `000000` is both /8 and the default route; origin 0 tells them apart (mrouted
            // sends the default route in a block of its own).
            let defaults = routes.iter().filter(|r| r.origin.is_unspecified()).count();
            if defaults == routes.len() {
                mask = Ipv4Addr::UNSPECIFIED;
            } else if defaults != 0 {
                return Err(Error::Malformed);
            }
        }
        Ok((ReportBlock { mask, routes }, at))
    }

    /// Writes the block into the front of `out` (at least `encoded_len()` bytes).
    fn emit(&self, out: &mut [u8]) {
        let Some(last) = self.routes.len().checked_sub(1) else {
            return;
        };
        let mask_low = mask_low_bytes(self.mask);
        out[..field::MASK_LEN].copy_from_slice(&mask_low);
        let width = origin_width(mask_low);
        let mut at = field::MASK_LEN;
        for (i, route) in self.routes.iter().enumerate() {
            out[at..at + width].copy_from_slice(&route.origin.octets()[..width]);
            let flag = if i == last { LAST_PAIR } else { 0 };
            out[at + width] = route.metric | flag;
            at += width + 1;
        }
    }
}

// ===== Repr =====

/// The body of a DVMRP message, by code.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Message {
    /// Code 1: generation ID and the neighbours heard on the interface.
    Probe {
        /// Changes on every restart of the sender.
        generation_id: u32,
        /// Every neighbour the sender has heard a probe from on this interface.
        neighbors: Vec<Ipv4Addr>,
    },
    /// Code 2: route report.
    Report {
        /// Blocks in wire order.
        blocks: Vec<ReportBlock>,
    },
    /// Code 7: prune (S,G) for `lifetime` seconds.
    Prune {
        /// Source (mrouted sends the source's network address).
        source: Ipv4Addr,
        /// Group.
        group: Ipv4Addr,
        /// Seconds the prune holds.
        lifetime: u32,
        /// Optional source netmask (v3 draft; mrouted omits it).
        source_mask: Option<Ipv4Addr>,
    },
    /// Code 8: graft (S,G).
    Graft {
        /// Source, as in the prune being undone.
        source: Ipv4Addr,
        /// Group.
        group: Ipv4Addr,
    },
    /// Code 9: graft acknowledgement, echoing the graft.
    GraftAck {
        /// Source, as in the graft.
        source: Ipv4Addr,
        /// Group, as in the graft.
        group: Ipv4Addr,
    },
    /// Any code not decoded above, with its raw data.
    Other {
        /// The Code byte.
        code: u8,
        /// Data after the header.
        data: Vec<u8>,
    },
}

impl Message {
    /// The Code this message is emitted with.
    pub fn code(&self) -> Code {
        match self {
            Message::Probe { .. } => Code::Probe,
            Message::Report { .. } => Code::Report,
            Message::Prune { .. } => Code::Prune,
            Message::Graft { .. } => Code::Graft,
            Message::GraftAck { .. } => Code::GraftAck,
            Message::Other { code, .. } => Code::from(*code),
        }
    }

    fn data_len(&self) -> usize {
        match self {
            Message::Probe { neighbors, .. } => field::NEIGHBORS + 4 * neighbors.len(),
            Message::Report { blocks } => blocks.iter().map(ReportBlock::encoded_len).sum(),
            Message::Prune { source_mask, .. } => {
                if source_mask.is_some() {
                    field::PRUNE_WITH_MASK_LEN
                } else {
                    field::PRUNE_LEN
                }
            }
            Message::Graft { .. } | Message::GraftAck { .. } => field::SG_LEN,
            Message::Other { data, .. } => data.len(),
        }
    }

    fn parse(code: Code, data: &[u8]) -> Result<Message> {
        match code {
            Code::Probe => {
                if data.len() < field::NEIGHBORS {
                    return Err(Error::Truncated);
                }
                let neighbors = &data[field::NEIGHBORS..];
                if neighbors.len() % 4 != 0 {
                    return Err(Error::Malformed);
                }
                Ok(Message::Probe {
                    generation_id: u32_at(data, field::GENERATION_ID),
                    neighbors: neighbors
                        .chunks_exact(4)
                        .map(|b| Ipv4Addr::new(b[0], b[1], b[2], b[3]))
                        .collect(),
                })
            }
            Code::Report => {
                let mut blocks = Vec::new();
                let mut rest = data;
                while !rest.is_empty() {
                    let (block, used) = ReportBlock::parse(rest)?;
                    blocks.push(block);
                    rest = &rest[used..];
                }
                Ok(Message::Report { blocks })
            }
            Code::Prune => {
                let source_mask = match data.len() {
                    field::PRUNE_LEN => None,
                    field::PRUNE_WITH_MASK_LEN => Some(addr_at(data, field::SOURCE_MASK)),
                    n if n < field::PRUNE_LEN => return Err(Error::Truncated),
                    _ => return Err(Error::Malformed),
                };
                Ok(Message::Prune {
                    source: addr_at(data, field::SOURCE),
                    group: addr_at(data, field::GROUP),
                    lifetime: u32_at(data, field::LIFETIME),
                    source_mask,
                })
            }
            Code::Graft | Code::GraftAck => {
                // mrouted rejects graft-acks with more than 8 bytes; anything but 8 is not the
                // (S,G) pair the message is defined as.
                if data.len() != field::SG_LEN {
                    return Err(Error::Malformed);
                }
                let source = addr_at(data, field::SOURCE);
                let group = addr_at(data, field::GROUP);
                Ok(if code == Code::Graft {
                    Message::Graft { source, group }
                } else {
                    Message::GraftAck { source, group }
                })
            }
            Code::AskNeighbors
            | Code::Neighbors
            | Code::AskNeighbors2
            | Code::Neighbors2
            | Code::Unknown(_) => Ok(Message::Other { code: code.into(), data: data.to_vec() }),
        }
    }

    fn emit(&self, data: &mut [u8]) {
        match self {
            Message::Probe { generation_id, neighbors } => {
                data[field::GENERATION_ID].copy_from_slice(&generation_id.to_be_bytes());
                for (chunk, n) in data[field::NEIGHBORS..].chunks_exact_mut(4).zip(neighbors) {
                    chunk.copy_from_slice(&n.octets());
                }
            }
            Message::Report { blocks } => {
                let mut at = 0;
                for block in blocks {
                    block.emit(&mut data[at..]);
                    at += block.encoded_len();
                }
            }
            Message::Prune { source, group, lifetime, source_mask } => {
                data[field::SOURCE].copy_from_slice(&source.octets());
                data[field::GROUP].copy_from_slice(&group.octets());
                data[field::LIFETIME].copy_from_slice(&lifetime.to_be_bytes());
                if let Some(mask) = source_mask {
                    data[field::SOURCE_MASK].copy_from_slice(&mask.octets());
                }
            }
            Message::Graft { source, group } | Message::GraftAck { source, group } => {
                data[field::SOURCE].copy_from_slice(&source.octets());
                data[field::GROUP].copy_from_slice(&group.octets());
            }
            Message::Other { data: raw, .. } => data[..raw.len()].copy_from_slice(raw),
        }
    }
}

/// A validated DVMRP message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DvmrpRepr {
    /// Capability flags (`CAP_*`); mrouted sends 0x0e, or 0x0f as a leaf.
    pub capabilities: u8,
    /// Minor version (0xff).
    pub minor: u8,
    /// Major version (3).
    pub major: u8,
    /// The body.
    pub message: Message,
}

impl DvmrpRepr {
    /// Parses and validates a message.
    ///
    /// Errors: [`Error::Truncated`] (header, probe, prune or report block cut short),
    /// [`Error::Unsupported`] if the IGMP type is not DVMRP, [`Error::BadChecksum`], and
    /// [`Error::Malformed`] for a metric of 0 or above 63, a non-contiguous mask, a report block
    /// mixing the default route with /8 origins, a probe whose neighbour list is not whole
    /// addresses, a prune of other than 12 or 16 bytes, or a graft/graft-ack of other than 8.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &DvmrpPacket<&T>) -> Result<DvmrpRepr> {
        packet.check_len()?;
        if packet.msg_type() != MessageType::Dvmrp {
            return Err(Error::Unsupported);
        }
        if !packet.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        Ok(DvmrpRepr {
            capabilities: packet.capabilities(),
            minor: packet.minor_version(),
            major: packet.major_version(),
            message: Message::parse(packet.code(), packet.data())?,
        })
    }

    /// Bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        field::DATA + self.message.data_len()
    }

    /// Writes the message into `packet`, checksum included. The buffer should be exactly
    /// `buffer_len()` bytes: the checksum covers all of it.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut DvmrpPacket<T>) {
        packet.set_msg_type(MessageType::Dvmrp);
        packet.set_code(self.message.code());
        packet.set_reserved(0);
        packet.set_capabilities(self.capabilities);
        packet.set_minor_version(self.minor);
        packet.set_major_version(self.major);
        self.message.emit(packet.data_mut());
        packet.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// mrouted probe, genid 0x40200000, no neighbours yet.
    static PROBE_EMPTY: [u8; 12] =
        [0x13, 0x01, 0xad, 0xcc, 0x00, 0x0e, 0xff, 0x03, 0x40, 0x20, 0x00, 0x00];
    /// mrouted probe listing neighbour 10.77.12.1.
    static PROBE_ONE: [u8; 16] = [
        0x13, 0x01, 0x97, 0x7e, 0x00, 0x0e, 0xff, 0x03, 0x40, 0x20, 0x00, 0x00, 0x0a, 0x4d, 0x0c,
        0x01,
    ];
    /// mrouted report: mask /24, 10.77.1.0 metric 34 (poison reverse), 10.77.2.0 metric 1.
    static REPORT_TWO: [u8; 19] = [
        0x13, 0x02, 0xb0, 0xd2, 0x00, 0x0f, 0xff, 0x03, 0xff, 0xff, 0x00, 0x0a, 0x4d, 0x01, 0x22,
        0x0a, 0x4d, 0x02, 0x81,
    ];
    /// mrouted prune of (10.77.1.0, 239.1.2.3) for 8100 s.
    static PRUNE: [u8; 20] = [
        0x13, 0x07, 0xd1, 0xef, 0x00, 0x0f, 0xff, 0x03, 0x0a, 0x4d, 0x01, 0x00, 0xef, 0x01, 0x02,
        0x03, 0x00, 0x00, 0x1f, 0xa4,
    ];
    /// mrouted graft-ack of (10.77.1.0, 239.1.2.3).
    static GRAFT_ACK: [u8; 16] = [
        0x13, 0x09, 0xf1, 0x91, 0x00, 0x0f, 0xff, 0x03, 0x0a, 0x4d, 0x01, 0x00, 0xef, 0x01, 0x02,
        0x03,
    ];

    fn parse(bytes: &[u8]) -> Result<DvmrpRepr> {
        DvmrpRepr::parse(&DvmrpPacket::new_checked(bytes)?)
    }

    fn emit(repr: &DvmrpRepr) -> Vec<u8> {
        let mut bytes = vec![0xa5; repr.buffer_len()];
        repr.emit(&mut DvmrpPacket::new_unchecked(&mut bytes));
        bytes
    }

    /// Builds a checksummed message from a code and data.
    fn message(code: u8, data: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0x13, code, 0, 0, 0, 0x0e, 0xff, 0x03];
        bytes.extend_from_slice(data);
        DvmrpPacket::new_unchecked(&mut bytes).fill_checksum();
        bytes
    }

    fn v3(message: Message) -> DvmrpRepr {
        DvmrpRepr {
            capabilities: CAP_PRUNE | CAP_GENID | CAP_MTRACE,
            minor: 0xff,
            major: 3,
            message,
        }
    }

    #[test]
    fn deconstruct_probe() {
        let packet = DvmrpPacket::new_checked(&PROBE_ONE[..]).unwrap();
        assert_eq!(packet.msg_type(), MessageType::Dvmrp);
        assert_eq!(packet.code(), Code::Probe);
        assert_eq!(packet.capabilities(), 0x0e);
        assert_eq!(packet.minor_version(), 0xff);
        assert_eq!(packet.major_version(), 3);
        assert!(packet.verify_checksum());
        assert_eq!(
            DvmrpRepr::parse(&packet).unwrap(),
            v3(Message::Probe {
                generation_id: 1_075_838_976,
                neighbors: vec![Ipv4Addr::new(10, 77, 12, 1)],
            })
        );
        assert_eq!(
            parse(&PROBE_EMPTY).unwrap().message,
            Message::Probe { generation_id: 0x4020_0000, neighbors: vec![] }
        );
    }

    #[test]
    fn deconstruct_report_prune_graft_ack() {
        let repr = parse(&REPORT_TWO).unwrap();
        assert_eq!(repr.capabilities, 0x0f);
        let Message::Report { blocks } = &repr.message else { panic!("not a report") };
        assert_eq!(
            blocks,
            &[ReportBlock {
                mask: Ipv4Addr::new(255, 255, 255, 0),
                routes: vec![
                    Route { origin: Ipv4Addr::new(10, 77, 1, 0), metric: METRIC_INFINITY + 2 },
                    Route { origin: Ipv4Addr::new(10, 77, 2, 0), metric: 1 },
                ],
            }]
        );
        assert_eq!(blocks[0].encoded_len(), REPORT_TWO.len() - 8);

        assert_eq!(
            parse(&PRUNE).unwrap().message,
            Message::Prune {
                source: Ipv4Addr::new(10, 77, 1, 0),
                group: Ipv4Addr::new(239, 1, 2, 3),
                lifetime: 8100,
                source_mask: None,
            }
        );
        assert_eq!(
            parse(&GRAFT_ACK).unwrap().message,
            Message::GraftAck {
                source: Ipv4Addr::new(10, 77, 1, 0),
                group: Ipv4Addr::new(239, 1, 2, 3),
            }
        );
    }

    #[test]
    fn construct_into_poisoned_buffers() {
        for golden in
            [&PROBE_EMPTY[..], &PROBE_ONE[..], &REPORT_TWO[..], &PRUNE[..], &GRAFT_ACK[..]]
        {
            let repr = parse(golden).unwrap();
            assert_eq!(repr.buffer_len(), golden.len());
            assert_eq!(emit(&repr), golden, "{repr:?}");
        }
    }

    #[test]
    fn construct_probe_with_setters() {
        let mut bytes = vec![0xa5; 12];
        let mut packet = DvmrpPacket::new_unchecked(&mut bytes);
        packet.set_msg_type(MessageType::Dvmrp);
        packet.set_code(Code::Probe);
        packet.set_reserved(0);
        packet.set_capabilities(CAP_PRUNE | CAP_GENID | CAP_MTRACE);
        packet.set_minor_version(0xff);
        packet.set_major_version(3);
        packet.data_mut().copy_from_slice(&0x4020_0000u32.to_be_bytes());
        packet.fill_checksum();
        assert_eq!(&*packet.into_inner(), &PROBE_EMPTY[..]);
    }

    #[test]
    fn origin_width_follows_the_mask() {
        let cases = [
            ([0, 0, 0], 1), // /8 and the default route
            ([0xff, 0, 0], 2),
            ([0xf0, 0, 0], 2),
            ([0xff, 0xff, 0], 3),
            ([0xff, 0xff, 0xfc], 4),
            ([0xff, 0xff, 0xff], 4),
        ];
        for (low, width) in cases {
            let block = ReportBlock {
                mask: Ipv4Addr::new(255, low[0], low[1], low[2]),
                routes: vec![Route { origin: Ipv4Addr::new(10, 0, 0, 0), metric: 1 }],
            };
            assert_eq!(block.origin_width(), width, "{low:?}");
            assert_eq!(block.encoded_len(), 3 + width + 1);
        }
    }

    #[test]
    fn default_route_encoding() {
        let default = v3(Message::Report {
            blocks: vec![
                ReportBlock {
                    mask: Ipv4Addr::UNSPECIFIED,
                    routes: vec![Route { origin: Ipv4Addr::UNSPECIFIED, metric: 3 }],
                },
                ReportBlock {
                    mask: Ipv4Addr::new(255, 0, 0, 0),
                    routes: vec![Route { origin: Ipv4Addr::new(10, 0, 0, 0), metric: 2 }],
                },
            ],
        });
        let bytes = emit(&default);
        assert_eq!(&bytes[8..], &[0, 0, 0, 0x00, 0x83, 0, 0, 0, 0x0a, 0x82]);
        assert_eq!(parse(&bytes), Ok(default));
        // One `000000` block holding both the default route and a /8 is ambiguous.
        let mixed = message(2, &[0, 0, 0, 0x00, 0x03, 0x0a, 0x82]);
        assert_eq!(parse(&mixed), Err(Error::Malformed));
    }

    #[test]
    fn bad_metrics_and_masks_are_malformed() {
        for metric in [0x00u8, 0x80, 0x40, 0xc0, 0x7f, 0xff] {
            let bytes = message(2, &[0xff, 0xff, 0x00, 10, 77, 1, metric]);
            assert_eq!(parse(&bytes), Err(Error::Malformed), "metric {metric:#x}");
        }
        for ok in [0x01u8, 0x81, 0x20, 0xa0, 0x21, 0xbf] {
            let bytes = message(2, &[0xff, 0xff, 0x00, 10, 77, 1, ok | 0x80]);
            assert!(parse(&bytes).is_ok(), "metric {ok:#x}");
        }
        for mask in [[0x0f, 0, 0], [0xff, 0x00, 0xff], [0xfe, 0xff, 0x00], [0, 0, 1]] {
            let mut data = mask.to_vec();
            data.extend_from_slice(&[10, 77, 1, 0, 0x81]);
            assert_eq!(parse(&message(2, &data)), Err(Error::Malformed), "{mask:?}");
        }
    }

    #[test]
    fn truncated_and_lying_lengths() {
        for len in 0..8 {
            assert_eq!(parse(&PROBE_ONE[..len]), Err(Error::Truncated));
        }
        // A probe needs its genid; neighbours must be whole addresses.
        assert_eq!(parse(&message(1, &[1, 2, 3])), Err(Error::Truncated));
        assert_eq!(parse(&message(1, &[1, 2, 3, 4, 10, 0])), Err(Error::Malformed));
        // Report block whose last pair has no last-pair bit: runs past the end.
        assert_eq!(parse(&message(2, &[0xff, 0xff, 0x00, 10, 77, 1, 0x01])), Err(Error::Truncated));
        // Mask without pairs, and a pair cut short.
        assert_eq!(parse(&message(2, &[0xff, 0xff])), Err(Error::Truncated));
        assert_eq!(parse(&message(2, &[0xff, 0xff, 0x00])), Err(Error::Truncated));
        assert_eq!(parse(&message(2, &[0xff, 0xff, 0x00, 10, 77])), Err(Error::Truncated));
        // Prunes: 12 or 16 bytes.
        assert_eq!(parse(&message(7, &PRUNE[8..19])), Err(Error::Truncated));
        let mut long = PRUNE[8..].to_vec();
        long.push(0);
        assert_eq!(parse(&message(7, &long)), Err(Error::Malformed));
        long.extend_from_slice(&[255, 255, 255]);
        assert_eq!(
            parse(&message(7, &long)).unwrap().message,
            Message::Prune {
                source: Ipv4Addr::new(10, 77, 1, 0),
                group: Ipv4Addr::new(239, 1, 2, 3),
                lifetime: 8100,
                source_mask: Some(Ipv4Addr::new(0, 255, 255, 255)),
            }
        );
        // Graft-ack with other than 8 bytes (mrouted rejects them).
        let mut ack = GRAFT_ACK[8..].to_vec();
        ack.push(0);
        assert_eq!(parse(&message(9, &ack)), Err(Error::Malformed));
        assert_eq!(parse(&message(9, &ack[..7])), Err(Error::Malformed));
        assert_eq!(parse(&message(8, &ack[..7])), Err(Error::Malformed));
    }

    #[test]
    fn checksum_type_and_unknown_codes() {
        let mut bytes = PRUNE;
        bytes[19] ^= 0x10;
        assert_eq!(parse(&bytes), Err(Error::BadChecksum));
        let mut igmp = message(1, &[0, 0, 0, 1]);
        igmp[0] = 0x11;
        DvmrpPacket::new_unchecked(&mut igmp).fill_checksum();
        assert_eq!(parse(&igmp), Err(Error::Unsupported));
        for code in [3u8, 4, 5, 6, 10, 11, 0, 200] {
            let bytes = message(code, &[1, 2, 3]);
            assert_eq!(
                parse(&bytes).unwrap().message,
                Message::Other { code, data: vec![1, 2, 3] }
            );
        }
    }

    fn any_addr() -> impl Strategy<Value = Ipv4Addr> {
        any::<u32>().prop_map(Ipv4Addr::from)
    }

    /// A contiguous mask /8../32 with routes whose origins carry only the transmitted bytes,
    /// or the default-route block.
    fn block() -> impl Strategy<Value = ReportBlock> {
        let metric = 1u8..=63;
        prop_oneof![
            1 => prop::collection::vec(metric.clone(), 1..3).prop_map(|metrics| ReportBlock {
                mask: Ipv4Addr::UNSPECIFIED,
                routes: metrics
                    .into_iter()
                    .map(|metric| Route { origin: Ipv4Addr::UNSPECIFIED, metric })
                    .collect(),
            }),
            8 => (8u32..=32).prop_flat_map(move |len| {
                let mask = u32::MAX << (32 - len);
                let width = origin_width(mask_low_bytes(Ipv4Addr::from(mask)));
                let keep = u32::MAX << (32 - 8 * width as u32);
                let route = (any::<u32>(), metric.clone()).prop_filter_map(
                    "origin 0 under mask 000000 is the default route",
                    move |(origin, metric)| {
                        let origin = origin & keep;
                        (origin != 0).then(|| Route { origin: Ipv4Addr::from(origin), metric })
                    },
                );
                prop::collection::vec(route, 1..6).prop_map(move |routes| ReportBlock {
                    mask: Ipv4Addr::from(mask),
                    routes,
                })
            }),
        ]
    }

    fn message_strategy() -> impl Strategy<Value = Message> {
        prop_oneof![
            (any::<u32>(), prop::collection::vec(any_addr(), 0..6))
                .prop_map(|(generation_id, neighbors)| Message::Probe { generation_id, neighbors }),
            prop::collection::vec(block(), 0..5).prop_map(|blocks| Message::Report { blocks }),
            (any_addr(), any_addr(), any::<u32>(), prop::option::of(any_addr())).prop_map(
                |(source, group, lifetime, source_mask)| Message::Prune {
                    source,
                    group,
                    lifetime,
                    source_mask
                }
            ),
            (any_addr(), any_addr()).prop_map(|(source, group)| Message::Graft { source, group }),
            (any_addr(), any_addr())
                .prop_map(|(source, group)| Message::GraftAck { source, group }),
            (
                prop_oneof![3u8..=6, 10u8..=255, Just(0u8)],
                prop::collection::vec(any::<u8>(), 0..20)
            )
                .prop_map(|(code, data)| Message::Other { code, data }),
        ]
    }

    proptest! {
        #[test]
        fn parse_emit_round_trip(capabilities in any::<u8>(), minor in any::<u8>(),
                                 major in any::<u8>(), message in message_strategy()) {
            let repr = DvmrpRepr { capabilities, minor, major, message };
            let bytes = emit(&repr);
            prop_assert_eq!(bytes.len(), repr.buffer_len());
            prop_assert_eq!(parse(&bytes), Ok(repr));
        }

        #[test]
        fn arbitrary_data_never_panics(code in any::<u8>(),
                                       data in prop::collection::vec(any::<u8>(), 0..48)) {
            if let Ok(repr) = parse(&message(code, &data)) {
                let bytes = emit(&repr);
                prop_assert_eq!(parse(&bytes), Ok(repr));
            }
        }
    }
}
