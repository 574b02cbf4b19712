//! fanout's own MOSPF-like link-state protocol: hellos, link-state updates (router and
//! group-membership LSAs) and acknowledgements, carried directly in IPv4 with protocol number
//! [`IP_PROTOCOL`] (253, RFC 3692 experimentation) to [`ALL_LS_ROUTERS`] (224.0.0.200) with
//! TTL 1. The format is specified with diagrams in `docs/linkstate.md`.
//!
//! [`LsPacket`] is a view over one message (the whole IPv4 payload); [`LsRepr`] is the validated
//! message. LSAs have no view of their own: [`Lsa::parse`] decodes one from a slice that starts
//! with an LSA header, since they are only ever read whole.
//!
//! # Invariants
//!
//! - After [`LsPacket::check_len`] succeeds, the 20-byte header is readable, the Packet Length
//!   field lies within `20..=buffer.len()`, and when the auth type is HMAC-SHA256 the 32-byte tag
//!   after `Packet Length` bytes is present too. No accessor panics after that.
//! - The packet checksum is the Internet checksum (RFC 1071) over the first `Packet Length`
//!   bytes (the tag is not covered). Authentication covers exactly
//!   [`LsPacket::authenticated_bytes`] (the same bytes, checksum included); the HMAC itself is
//!   computed by the control plane, so this crate stays dependency-free.
//! - Every LSA carries its own checksum: the Internet checksum over the LSA from byte 2 to its
//!   end, i.e. everything but the age, which changes in flight without invalidating it.
//!   [`Lsa::parse`] rejects an LSA whose checksum does not verify.
//! - `emit` fills both checksums; for every value `parse` returns, `emit` reproduces the bytes.
//!
//! # Example
//!
//! ```
//! use wire::linkstate::{LsPacket, LsRepr, Message};
//!
//! let hello = LsRepr {
//!     router_id: 1,
//!     auth: None,
//!     message: Message::Hello { hello_interval_ms: 100, dead_interval_ms: 400, neighbors: vec![2] },
//! };
//! let mut bytes = vec![0xa5; hello.buffer_len()];
//! hello.emit(&mut LsPacket::new_unchecked(&mut bytes[..]));
//! let packet = LsPacket::new_checked(&bytes[..])?;
//! assert!(packet.verify_checksum());
//! assert_eq!(LsRepr::parse(&packet)?, hello);
//! # Ok::<(), wire::Error>(())
//! ```
//!
//! # Fuzzing
//!
//! Under `cfg(fuzzing)` both checksum verifications always succeed.

use core::net::Ipv4Addr;

use crate::{checksum, enum_with_unknown, Error, Result};

/// IP protocol number the messages are carried in (RFC 3692: for experimentation and testing).
pub const IP_PROTOCOL: u8 = 253;
/// Link-local group every link-state router listens on (224.0.0.151-250 are unassigned).
pub const ALL_LS_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 200);
/// The protocol version this module speaks.
pub const VERSION: u8 = 1;
/// Length of the common header.
pub const HEADER_LEN: usize = 20;
/// Length of an LSA header.
pub const LSA_HEADER_LEN: usize = 20;
/// Length of the HMAC-SHA256 tag that follows an authenticated message.
pub const HMAC_SHA256_LEN: usize = 32;
/// LS age (seconds) at which an LSA is withdrawn from every database.
pub const MAX_AGE: u16 = 3600;

enum_with_unknown! {
    /// The message Type field.
    pub enum MessageType(u8) {
        Hello = 1,
        LinkStateUpdate = 2,
        LinkStateAck = 3,
    }
}

enum_with_unknown! {
    /// The Auth Type field.
    pub enum AuthType(u8) {
        None = 0,
        HmacSha256 = 1,
    }
}

enum_with_unknown! {
    /// The LS Type field of an LSA header.
    pub enum LsaType(u8) {
        /// A router's links to neighbouring routers and its attached networks.
        Router = 1,
        /// Which of a router's interfaces have members of one group (the LSA's id).
        Membership = 2,
    }
}

mod field {
    use crate::Field;

    pub const VERSION: usize = 0;
    pub const TYPE: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const ROUTER_ID: Field = 4..8;
    pub const CHECKSUM: Field = 8..10;
    pub const AUTH_TYPE: usize = 10;
    pub const KEY_ID: usize = 11;
    pub const AUTH_SEQ: Field = 12..20;

    // Hello body.
    pub const HELLO_INTERVAL: Field = 0..4;
    pub const DEAD_INTERVAL: Field = 4..8;
    pub const HELLO_NEIGHBORS: usize = 8;

    // Update body.
    pub const LSA_COUNT: Field = 0..2;
    pub const UPDATE_LSAS: usize = 4;

    // LSA header.
    pub const LSA_AGE: Field = 0..2;
    pub const LSA_TYPE: usize = 2;
    pub const LSA_ID: Field = 4..8;
    pub const LSA_ADV_ROUTER: Field = 8..12;
    pub const LSA_SEQ: Field = 12..16;
    pub const LSA_CHECKSUM: Field = 16..18;
    pub const LSA_LENGTH: Field = 18..20;

    // Router LSA body: counts, then links, then networks.
    pub const LINK_COUNT: Field = 0..2;
    pub const NETWORK_COUNT: Field = 2..4;
    pub const ROUTER_ITEMS: usize = 4;
    pub const LINK_LEN: usize = 12;
    pub const NETWORK_LEN: usize = 8;

    // Membership LSA body.
    pub const IFACE_COUNT: Field = 0..2;
    pub const IFACES: usize = 4;
}

fn u16_at(data: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([data[at], data[at + 1]])
}

fn u32_at(data: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

/// `data[at..at + len]`, or [`Error::Truncated`].
fn slice(data: &[u8], at: usize, len: usize) -> Result<&[u8]> {
    data.get(at..at.checked_add(len).ok_or(Error::Truncated)?).ok_or(Error::Truncated)
}

// ===== LsPacket =====

/// A view over one link-state message.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  Version = 1  |     Type      |         Packet Length         |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                           Router ID                           |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |           Checksum            |   Auth Type   |    Key ID     |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |               Auth Sequence Number (64 bits)                  |
/// |                                                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                     Body (per Type) ...                       |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   HMAC-SHA256 tag (32 bytes, Auth Type 1 only; not counted    |
/// |   in Packet Length, not covered by the checksum) ...          |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///
/// Hello (1):       Hello Interval ms (4) | Dead Interval ms (4) | Neighbor Router ID (4) ...
/// LS Update (2):   LSA Count (2) | Reserved (2) | LSA ...
/// LS Ack (3):      LSA Header (20) ...
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LsPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> LsPacket<T> {
    /// Wraps a buffer without checking it; for emission into a buffer the caller sized.
    pub const fn new_unchecked(buffer: T) -> Self {
        LsPacket { buffer }
    }

    /// Wraps untrusted bytes, checking the lengths (see [`LsPacket::check_len`]).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// [`Error::Truncated`] without a whole header; [`Error::BadLength`] when Packet Length is
    /// below the header or, with the tag of an authenticated message, beyond the buffer.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let declared = usize::from(self.packet_len());
        if declared < HEADER_LEN || declared + self.tag_len() > len {
            return Err(Error::BadLength);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }

    pub fn msg_type(&self) -> MessageType {
        MessageType::from(self.buffer.as_ref()[field::TYPE])
    }

    /// Length of header and body (the tag excluded).
    pub fn packet_len(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::LENGTH.start)
    }

    pub fn router_id(&self) -> u32 {
        u32_at(self.buffer.as_ref(), field::ROUTER_ID.start)
    }

    pub fn checksum(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    pub fn auth_type(&self) -> AuthType {
        AuthType::from(self.buffer.as_ref()[field::AUTH_TYPE])
    }

    pub fn key_id(&self) -> u8 {
        self.buffer.as_ref()[field::KEY_ID]
    }

    /// Strictly increasing per sender: the receiver's replay protection.
    pub fn auth_sequence(&self) -> u64 {
        let b = &self.buffer.as_ref()[field::AUTH_SEQ];
        u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    }

    fn tag_len(&self) -> usize {
        match self.auth_type() {
            AuthType::HmacSha256 => HMAC_SHA256_LEN,
            _ => 0,
        }
    }

    /// The body between the header and Packet Length.
    pub fn body(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.packet_len())]
    }

    /// The bytes the HMAC covers: header and body.
    pub fn authenticated_bytes(&self) -> &[u8] {
        &self.buffer.as_ref()[..usize::from(self.packet_len())]
    }

    /// The HMAC tag after the body (empty unless the auth type is HMAC-SHA256).
    pub fn auth_tag(&self) -> &[u8] {
        let start = usize::from(self.packet_len());
        &self.buffer.as_ref()[start..start + self.tag_len()]
    }

    /// Whether the checksum over header and body verifies. Always true under `cfg(fuzzing)`.
    pub fn verify_checksum(&self) -> bool {
        cfg!(fuzzing) || checksum::data(self.authenticated_bytes()) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> LsPacket<T> {
    pub fn set_version(&mut self, value: u8) {
        self.buffer.as_mut()[field::VERSION] = value;
    }

    pub fn set_msg_type(&mut self, value: MessageType) {
        self.buffer.as_mut()[field::TYPE] = value.into();
    }

    pub fn set_packet_len(&mut self, value: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_router_id(&mut self, value: u32) {
        self.buffer.as_mut()[field::ROUTER_ID].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_checksum(&mut self, value: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_auth_type(&mut self, value: AuthType) {
        self.buffer.as_mut()[field::AUTH_TYPE] = value.into();
    }

    pub fn set_key_id(&mut self, value: u8) {
        self.buffer.as_mut()[field::KEY_ID] = value;
    }

    pub fn set_auth_sequence(&mut self, value: u64) {
        self.buffer.as_mut()[field::AUTH_SEQ].copy_from_slice(&value.to_be_bytes());
    }

    /// The body, for writing (Packet Length must be set first).
    pub fn body_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.packet_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// The tag, for writing (Packet Length and Auth Type must be set first).
    pub fn auth_tag_mut(&mut self) -> &mut [u8] {
        let start = usize::from(self.packet_len());
        let len = self.tag_len();
        &mut self.buffer.as_mut()[start..start + len]
    }

    /// Computes and stores the checksum over header and body.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = !checksum::data(self.authenticated_bytes());
        self.set_checksum(sum);
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for LsPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

// ===== LSAs =====

/// The header every LSA starts with; it alone identifies an LSA instance (acks carry only it).
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |         LS Age (s)            |    LS Type    |   Reserved    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |     Link State ID (router id for Router, group for Membership)|
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                      Advertising Router                       |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                     LS Sequence Number                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   LS Checksum (bytes 2..end)  |     Length (header + body)    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LsaHeader {
    pub age: u16,
    pub kind: LsaType,
    pub id: u32,
    pub adv_router: u32,
    pub seq: u32,
    pub checksum: u16,
    pub length: u16,
}

impl LsaHeader {
    /// Reads a header from the first 20 bytes of `data` (no checksum check: acks carry no body).
    pub fn parse(data: &[u8]) -> Result<LsaHeader> {
        let b = slice(data, 0, LSA_HEADER_LEN)?;
        let header = LsaHeader {
            age: u16_at(b, field::LSA_AGE.start),
            kind: LsaType::from(b[field::LSA_TYPE]),
            id: u32_at(b, field::LSA_ID.start),
            adv_router: u32_at(b, field::LSA_ADV_ROUTER.start),
            seq: u32_at(b, field::LSA_SEQ.start),
            checksum: u16_at(b, field::LSA_CHECKSUM.start),
            length: u16_at(b, field::LSA_LENGTH.start),
        };
        if usize::from(header.length) < LSA_HEADER_LEN {
            return Err(Error::BadLength);
        }
        Ok(header)
    }

    /// Writes the header into the first 20 bytes of `out` (which must be that long).
    pub fn emit(&self, out: &mut [u8]) {
        out[field::LSA_AGE].copy_from_slice(&self.age.to_be_bytes());
        out[field::LSA_TYPE] = self.kind.into();
        out[field::LSA_TYPE + 1] = 0;
        out[field::LSA_ID].copy_from_slice(&self.id.to_be_bytes());
        out[field::LSA_ADV_ROUTER].copy_from_slice(&self.adv_router.to_be_bytes());
        out[field::LSA_SEQ].copy_from_slice(&self.seq.to_be_bytes());
        out[field::LSA_CHECKSUM].copy_from_slice(&self.checksum.to_be_bytes());
        out[field::LSA_LENGTH].copy_from_slice(&self.length.to_be_bytes());
    }
}

/// One link of a router LSA: a two-way neighbour reached through one of the router's
/// interfaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouterLink {
    pub neighbor: u32,
    /// The advertising router's interface index for this link.
    pub link_id: u32,
    pub cost: u32,
}

/// A network attached to the advertising router (where sources may live).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttachedNetwork {
    pub prefix: Ipv4Addr,
    /// 0..=32.
    pub prefix_len: u8,
}

impl AttachedNetwork {
    /// Whether `addr` lies in this network.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix_len.min(32))).unwrap_or(0);
        u32::from(addr) & mask == u32::from(self.prefix) & mask
    }
}

/// The body of an LSA.
///
/// ```text
/// Router (1):     Link Count (2) | Network Count (2)
///                 { Neighbor Router ID (4) | Link ID (4) | Cost (4) } * Link Count
///                 { Prefix (4) | Prefix Len (1) | Reserved (3) }      * Network Count
/// Membership (2): Interface Count (2) | Reserved (2) | { Interface Index (4) } * Count
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LsaBody {
    Router { links: Vec<RouterLink>, networks: Vec<AttachedNetwork> },
    Membership { interfaces: Vec<u32> },
}

impl LsaBody {
    pub fn kind(&self) -> LsaType {
        match self {
            LsaBody::Router { .. } => LsaType::Router,
            LsaBody::Membership { .. } => LsaType::Membership,
        }
    }

    pub fn buffer_len(&self) -> usize {
        match self {
            LsaBody::Router { links, networks } => {
                field::ROUTER_ITEMS
                    + links.len() * field::LINK_LEN
                    + networks.len() * field::NETWORK_LEN
            }
            LsaBody::Membership { interfaces } => field::IFACES + interfaces.len() * 4,
        }
    }

    fn parse(kind: LsaType, b: &[u8]) -> Result<LsaBody> {
        match kind {
            LsaType::Router => {
                let head = slice(b, 0, field::ROUTER_ITEMS)?;
                let n_links = usize::from(u16_at(head, field::LINK_COUNT.start));
                let n_nets = usize::from(u16_at(head, field::NETWORK_COUNT.start));
                if field::ROUTER_ITEMS + n_links * field::LINK_LEN + n_nets * field::NETWORK_LEN
                    != b.len()
                {
                    return Err(Error::BadLength);
                }
                let mut at = field::ROUTER_ITEMS;
                let mut links = Vec::with_capacity(n_links);
                for _ in 0..n_links {
                    links.push(RouterLink {
                        neighbor: u32_at(b, at),
                        link_id: u32_at(b, at + 4),
                        cost: u32_at(b, at + 8),
                    });
                    at += field::LINK_LEN;
                }
                let mut networks = Vec::with_capacity(n_nets);
                for _ in 0..n_nets {
                    let prefix_len = b[at + 4];
                    if prefix_len > 32 {
                        return Err(Error::Malformed);
                    }
                    networks.push(AttachedNetwork {
                        prefix: Ipv4Addr::from(u32_at(b, at)),
                        prefix_len,
                    });
                    at += field::NETWORK_LEN;
                }
                Ok(LsaBody::Router { links, networks })
            }
            LsaType::Membership => {
                let head = slice(b, 0, field::IFACES)?;
                let n = usize::from(u16_at(head, field::IFACE_COUNT.start));
                if field::IFACES + n * 4 != b.len() {
                    return Err(Error::BadLength);
                }
                let interfaces = (0..n).map(|i| u32_at(b, field::IFACES + 4 * i)).collect();
                Ok(LsaBody::Membership { interfaces })
            }
            LsaType::Unknown(_) => Err(Error::Unsupported),
        }
    }

    fn emit(&self, out: &mut [u8]) {
        match self {
            LsaBody::Router { links, networks } => {
                out[field::LINK_COUNT].copy_from_slice(&count(links.len()).to_be_bytes());
                out[field::NETWORK_COUNT].copy_from_slice(&count(networks.len()).to_be_bytes());
                let mut at = field::ROUTER_ITEMS;
                for l in links {
                    out[at..at + 4].copy_from_slice(&l.neighbor.to_be_bytes());
                    out[at + 4..at + 8].copy_from_slice(&l.link_id.to_be_bytes());
                    out[at + 8..at + 12].copy_from_slice(&l.cost.to_be_bytes());
                    at += field::LINK_LEN;
                }
                for n in networks {
                    out[at..at + 4].copy_from_slice(&n.prefix.octets());
                    out[at + 4..at + 8].copy_from_slice(&[n.prefix_len, 0, 0, 0]);
                    at += field::NETWORK_LEN;
                }
            }
            LsaBody::Membership { interfaces } => {
                out[field::IFACE_COUNT].copy_from_slice(&count(interfaces.len()).to_be_bytes());
                out[field::IFACE_COUNT.end..field::IFACES].fill(0);
                for (i, ifindex) in interfaces.iter().enumerate() {
                    let at = field::IFACES + 4 * i;
                    out[at..at + 4].copy_from_slice(&ifindex.to_be_bytes());
                }
            }
        }
    }
}

/// Counts are 16 bits on the wire; callers keep lists far below that (a message must fit one
/// IPv4 datagram), so saturating only matters for a caller bug, which then fails to parse.
fn count(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

/// A whole LSA: header and body, with the header's checksum and length consistent with the body.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lsa {
    pub header: LsaHeader,
    pub body: LsaBody,
}

impl Lsa {
    /// Builds an LSA with its length and checksum computed from `body`.
    pub fn new(age: u16, id: u32, adv_router: u32, seq: u32, body: LsaBody) -> Lsa {
        let length = count(LSA_HEADER_LEN + body.buffer_len());
        let mut lsa = Lsa {
            header: LsaHeader { age, kind: body.kind(), id, adv_router, seq, checksum: 0, length },
            body,
        };
        let mut bytes = vec![0; lsa.buffer_len()];
        lsa.emit_raw(&mut bytes);
        lsa.header.checksum = !checksum::data(&bytes[2..]);
        lsa
    }

    pub fn buffer_len(&self) -> usize {
        LSA_HEADER_LEN + self.body.buffer_len()
    }

    /// Reads one LSA from the start of `data`; returns it and its length. Rejects a body that
    /// disagrees with the header's length and a checksum that does not verify.
    pub fn parse(data: &[u8]) -> Result<(Lsa, usize)> {
        let header = LsaHeader::parse(data)?;
        let len = usize::from(header.length);
        let bytes = slice(data, 0, len)?;
        if !cfg!(fuzzing) && checksum::data(&bytes[2..]) != 0xffff {
            return Err(Error::BadChecksum);
        }
        let body = LsaBody::parse(header.kind, &bytes[LSA_HEADER_LEN..])?;
        Ok((Lsa { header, body }, len))
    }

    fn emit_raw(&self, out: &mut [u8]) {
        self.header.emit(&mut out[..LSA_HEADER_LEN]);
        self.body.emit(&mut out[LSA_HEADER_LEN..]);
    }

    /// Writes the LSA as it is (checksum included) into `out[..buffer_len()]`.
    pub fn emit(&self, out: &mut [u8]) {
        self.emit_raw(&mut out[..self.buffer_len()]);
    }
}

// ===== LsRepr =====

/// Authentication fields of a message (the tag is added by the control plane).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuthInfo {
    pub key_id: u8,
    pub sequence: u64,
}

/// A message body.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Message {
    Hello { hello_interval_ms: u32, dead_interval_ms: u32, neighbors: Vec<u32> },
    Update { lsas: Vec<Lsa> },
    Ack { headers: Vec<LsaHeader> },
}

/// A validated link-state message. `auth: Some` means Auth Type HMAC-SHA256, and the emitted
/// buffer has room for the tag after the body (zeroed by `emit`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LsRepr {
    pub router_id: u32,
    pub auth: Option<AuthInfo>,
    pub message: Message,
}

impl LsRepr {
    /// Decodes a message whose lengths [`LsPacket::check_len`] accepted. The checksum is not
    /// checked here (see [`LsPacket::verify_checksum`]); an unauthenticated message must carry
    /// zero key id and sequence.
    pub fn parse<T: AsRef<[u8]>>(packet: &LsPacket<T>) -> Result<LsRepr> {
        packet.check_len()?;
        if packet.version() != VERSION {
            return Err(Error::BadVersion);
        }
        let auth = match packet.auth_type() {
            AuthType::None if packet.key_id() == 0 && packet.auth_sequence() == 0 => None,
            AuthType::None | AuthType::Unknown(_) => return Err(Error::Malformed),
            AuthType::HmacSha256 => {
                Some(AuthInfo { key_id: packet.key_id(), sequence: packet.auth_sequence() })
            }
        };
        let b = packet.body();
        let message = match packet.msg_type() {
            MessageType::Hello => {
                if b.len() < field::HELLO_NEIGHBORS || (b.len() - field::HELLO_NEIGHBORS) % 4 != 0 {
                    return Err(Error::BadLength);
                }
                Message::Hello {
                    hello_interval_ms: u32_at(b, field::HELLO_INTERVAL.start),
                    dead_interval_ms: u32_at(b, field::DEAD_INTERVAL.start),
                    neighbors: b[field::HELLO_NEIGHBORS..]
                        .chunks_exact(4)
                        .map(|c| u32_at(c, 0))
                        .collect(),
                }
            }
            MessageType::LinkStateUpdate => {
                let head = slice(b, 0, field::UPDATE_LSAS)?;
                let n = usize::from(u16_at(head, field::LSA_COUNT.start));
                let mut at = field::UPDATE_LSAS;
                let mut lsas = Vec::with_capacity(n.min(b.len() / LSA_HEADER_LEN));
                for _ in 0..n {
                    let (lsa, len) = Lsa::parse(&b[at..])?;
                    lsas.push(lsa);
                    at += len;
                }
                if at != b.len() {
                    return Err(Error::BadLength);
                }
                Message::Update { lsas }
            }
            MessageType::LinkStateAck => {
                if b.len() % LSA_HEADER_LEN != 0 {
                    return Err(Error::BadLength);
                }
                let headers = b
                    .chunks_exact(LSA_HEADER_LEN)
                    .map(LsaHeader::parse)
                    .collect::<Result<Vec<_>>>()?;
                Message::Ack { headers }
            }
            MessageType::Unknown(_) => return Err(Error::Unsupported),
        };
        Ok(LsRepr { router_id: packet.router_id(), auth, message })
    }

    fn body_len(&self) -> usize {
        match &self.message {
            Message::Hello { neighbors, .. } => field::HELLO_NEIGHBORS + 4 * neighbors.len(),
            Message::Update { lsas } => {
                field::UPDATE_LSAS + lsas.iter().map(Lsa::buffer_len).sum::<usize>()
            }
            Message::Ack { headers } => LSA_HEADER_LEN * headers.len(),
        }
    }

    /// Header and body (the value of Packet Length).
    pub fn packet_len(&self) -> usize {
        HEADER_LEN + self.body_len()
    }

    /// The whole buffer: header, body and the tag when authenticated.
    pub fn buffer_len(&self) -> usize {
        self.packet_len() + if self.auth.is_some() { HMAC_SHA256_LEN } else { 0 }
    }

    /// Writes the message and its checksum into `packet` (at least `buffer_len()` bytes); the
    /// tag, if any, is zeroed for the caller to fill over [`LsPacket::authenticated_bytes`].
    ///
    /// # Panics
    ///
    /// If `packet_len()` exceeds 65535 (Packet Length is 16 bits): callers split updates and
    /// acks into messages that fit one IPv4 datagram.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut LsPacket<T>) {
        packet.set_version(VERSION);
        packet.set_msg_type(match self.message {
            Message::Hello { .. } => MessageType::Hello,
            Message::Update { .. } => MessageType::LinkStateUpdate,
            Message::Ack { .. } => MessageType::LinkStateAck,
        });
        packet.set_packet_len(count(self.packet_len()));
        packet.set_router_id(self.router_id);
        let (kind, auth) = match self.auth {
            Some(a) => (AuthType::HmacSha256, a),
            None => (AuthType::None, AuthInfo { key_id: 0, sequence: 0 }),
        };
        packet.set_auth_type(kind);
        packet.set_key_id(auth.key_id);
        packet.set_auth_sequence(auth.sequence);
        let b = packet.body_mut();
        match &self.message {
            Message::Hello { hello_interval_ms, dead_interval_ms, neighbors } => {
                b[field::HELLO_INTERVAL].copy_from_slice(&hello_interval_ms.to_be_bytes());
                b[field::DEAD_INTERVAL].copy_from_slice(&dead_interval_ms.to_be_bytes());
                for (i, n) in neighbors.iter().enumerate() {
                    let at = field::HELLO_NEIGHBORS + 4 * i;
                    b[at..at + 4].copy_from_slice(&n.to_be_bytes());
                }
            }
            Message::Update { lsas } => {
                b[field::LSA_COUNT].copy_from_slice(&count(lsas.len()).to_be_bytes());
                b[field::LSA_COUNT.end..field::UPDATE_LSAS].fill(0);
                let mut at = field::UPDATE_LSAS;
                for lsa in lsas {
                    lsa.emit(&mut b[at..]);
                    at += lsa.buffer_len();
                }
            }
            Message::Ack { headers } => {
                for (i, h) in headers.iter().enumerate() {
                    h.emit(&mut b[i * LSA_HEADER_LEN..(i + 1) * LSA_HEADER_LEN]);
                }
            }
        }
        packet.fill_checksum();
        packet.auth_tag_mut().fill(0);
    }

    /// Convenience: the message as a freshly allocated buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = vec![0; self.buffer_len()];
        self.emit(&mut LsPacket::new_unchecked(&mut bytes[..]));
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A hand-assembled hello from router 10.0.0.1 with fast timers, one neighbour, no auth.
    const HELLO: [u8; 32] = [
        0x01, 0x01, 0x00, 0x20, // version 1, hello, length 32
        0x0a, 0x00, 0x00, 0x01, // router id 10.0.0.1
        0x00, 0x00, 0x00, 0x00, // checksum (patched in the test), auth none, key 0
        0, 0, 0, 0, 0, 0, 0, 0, // auth sequence
        0x00, 0x00, 0x00, 0x64, // hello 100 ms
        0x00, 0x00, 0x01, 0x90, // dead 400 ms
        0x0a, 0x00, 0x00, 0x02, // neighbour 10.0.0.2
    ];

    fn golden_hello() -> Vec<u8> {
        let mut b = HELLO.to_vec();
        // The checksum worked by hand: one's-complement sum of the words, inverted.
        // 0101+0020+0a00+0001+0064+0190+0a00+0002 = 0x1718; !0x1718 = 0xe8e7.
        b[8..10].copy_from_slice(&[0xe8, 0xe7]);
        b
    }

    fn hello_repr() -> LsRepr {
        LsRepr {
            router_id: 0x0a00_0001,
            auth: None,
            message: Message::Hello {
                hello_interval_ms: 100,
                dead_interval_ms: 400,
                neighbors: vec![0x0a00_0002],
            },
        }
    }

    fn router_lsa() -> Lsa {
        Lsa::new(
            1,
            7,
            7,
            0x8000_0001,
            LsaBody::Router {
                links: vec![RouterLink { neighbor: 8, link_id: 3, cost: 10 }],
                networks: vec![AttachedNetwork {
                    prefix: Ipv4Addr::new(192, 168, 7, 0),
                    prefix_len: 24,
                }],
            },
        )
    }

    #[test]
    fn golden_hello_decodes() {
        let b = golden_hello();
        let p = LsPacket::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.msg_type(), MessageType::Hello);
        assert_eq!(p.auth_tag(), &[] as &[u8]);
        assert_eq!(LsRepr::parse(&p).unwrap(), hello_repr());
    }

    #[test]
    fn hello_encodes_into_poisoned_buffer() {
        let repr = hello_repr();
        let mut b = vec![0xa5; repr.buffer_len()];
        repr.emit(&mut LsPacket::new_unchecked(&mut b[..]));
        assert_eq!(b, golden_hello());
    }

    #[test]
    fn router_lsa_layout_and_checksum() {
        let lsa = router_lsa();
        assert_eq!(lsa.header.length, 20 + 4 + 12 + 8);
        let mut b = vec![0xa5; lsa.buffer_len()];
        lsa.emit(&mut b);
        assert_eq!(&b[..4], &[0, 1, 1, 0]);
        assert_eq!(&b[20..24], &[0, 1, 0, 1], "one link, one network");
        assert_eq!(&b[36..44], &[192, 168, 7, 0, 24, 0, 0, 0]);
        assert_eq!(Lsa::parse(&b).unwrap(), (lsa.clone(), b.len()));
        // The age is outside the checksum: aging in flight keeps the LSA valid.
        b[0..2].copy_from_slice(&900u16.to_be_bytes());
        assert_eq!(Lsa::parse(&b).unwrap().0.header.age, 900);
        // Any other byte is covered.
        b[26] ^= 1;
        assert_eq!(Lsa::parse(&b).unwrap_err(), Error::BadChecksum);
    }

    #[test]
    fn authenticated_update_leaves_room_for_the_tag() {
        let repr = LsRepr {
            router_id: 7,
            auth: Some(AuthInfo { key_id: 3, sequence: 0x0102_0304_0506_0708 }),
            message: Message::Update { lsas: vec![router_lsa()] },
        };
        let mut b = vec![0xa5; repr.buffer_len()];
        repr.emit(&mut LsPacket::new_unchecked(&mut b[..]));
        let p = LsPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.authenticated_bytes().len(), repr.packet_len());
        assert_eq!(p.auth_tag(), &[0; 32]);
        assert_eq!(p.auth_sequence(), 0x0102_0304_0506_0708);
        assert!(p.verify_checksum());
        assert_eq!(LsRepr::parse(&p).unwrap(), repr);
        // Missing tag bytes: the declared length plus the tag exceeds the buffer.
        assert_eq!(LsPacket::new_checked(&b[..b.len() - 1]).unwrap_err(), Error::BadLength);
    }

    #[test]
    #[expect(clippy::many_single_char_names, reason = "one short name per mutated copy")]
    fn bad_inputs_give_typed_errors() {
        let b = golden_hello();
        assert_eq!(LsPacket::new_checked(&b[..19]).unwrap_err(), Error::Truncated);
        assert_eq!(LsPacket::new_checked(&b[..31]).unwrap_err(), Error::BadLength);
        let mut v = b.clone();
        v[0] = 2;
        assert_eq!(LsRepr::parse(&LsPacket::new_unchecked(&v[..])).unwrap_err(), Error::BadVersion);
        let mut t = b.clone();
        t[1] = 9;
        assert_eq!(
            LsRepr::parse(&LsPacket::new_unchecked(&t[..])).unwrap_err(),
            Error::Unsupported
        );
        let mut a = b.clone();
        a[11] = 1; // key id without auth
        assert_eq!(LsRepr::parse(&LsPacket::new_unchecked(&a[..])).unwrap_err(), Error::Malformed);
        let mut c = b;
        c[31] ^= 1;
        assert!(!LsPacket::new_checked(&c[..]).unwrap().verify_checksum());
        // An update that announces two LSAs but carries one.
        let mut u = LsRepr {
            router_id: 7,
            auth: None,
            message: Message::Update { lsas: vec![router_lsa()] },
        }
        .to_bytes();
        u[21] = 2;
        let p = LsPacket::new_checked(&u[..]).unwrap();
        assert_eq!(LsRepr::parse(&p).unwrap_err(), Error::Truncated);
        // A prefix length over 32.
        let mut l = vec![0; router_lsa().buffer_len()];
        let mut lsa = router_lsa();
        if let LsaBody::Router { networks, .. } = &mut lsa.body {
            networks[0].prefix_len = 33;
        }
        let lsa = Lsa::new(0, 7, 7, 1, lsa.body);
        lsa.emit(&mut l);
        assert_eq!(Lsa::parse(&l).unwrap_err(), Error::Malformed);
    }

    #[test]
    fn attached_network_contains() {
        let n = AttachedNetwork { prefix: Ipv4Addr::new(10, 1, 2, 0), prefix_len: 24 };
        assert!(n.contains(Ipv4Addr::new(10, 1, 2, 99)));
        assert!(!n.contains(Ipv4Addr::new(10, 1, 3, 1)));
        let all = AttachedNetwork { prefix: Ipv4Addr::UNSPECIFIED, prefix_len: 0 };
        assert!(all.contains(Ipv4Addr::new(1, 2, 3, 4)));
    }

    fn arb_lsa() -> impl Strategy<Value = Lsa> {
        let router = (
            proptest::collection::vec(any::<(u32, u32, u32)>(), 0..5),
            proptest::collection::vec((any::<u32>(), 0u8..=32), 0..4),
        )
            .prop_map(|(links, nets)| LsaBody::Router {
                links: links
                    .into_iter()
                    .map(|(neighbor, link_id, cost)| RouterLink { neighbor, link_id, cost })
                    .collect(),
                networks: nets
                    .into_iter()
                    .map(|(p, prefix_len)| AttachedNetwork { prefix: p.into(), prefix_len })
                    .collect(),
            });
        let membership = proptest::collection::vec(any::<u32>(), 0..6)
            .prop_map(|interfaces| LsaBody::Membership { interfaces });
        (any::<u16>(), any::<u32>(), any::<u32>(), any::<u32>(), prop_oneof![router, membership])
            .prop_map(|(age, id, adv, seq, body)| Lsa::new(age, id, adv, seq, body))
    }

    fn arb_repr() -> impl Strategy<Value = LsRepr> {
        let message = prop_oneof![
            (any::<u32>(), any::<u32>(), proptest::collection::vec(any::<u32>(), 0..6)).prop_map(
                |(h, d, neighbors)| Message::Hello {
                    hello_interval_ms: h,
                    dead_interval_ms: d,
                    neighbors
                }
            ),
            proptest::collection::vec(arb_lsa(), 0..4).prop_map(|lsas| Message::Update { lsas }),
            proptest::collection::vec(arb_lsa(), 0..4)
                .prop_map(|l| Message::Ack { headers: l.into_iter().map(|l| l.header).collect() }),
        ];
        let auth = proptest::option::of(
            (any::<u8>(), any::<u64>())
                .prop_map(|(key_id, sequence)| AuthInfo { key_id, sequence }),
        );
        (any::<u32>(), auth, message).prop_map(|(router_id, auth, message)| LsRepr {
            router_id,
            auth,
            message,
        })
    }

    proptest! {
        #[test]
        fn repr_round_trip(repr in arb_repr()) {
            let mut b = vec![0xa5; repr.buffer_len()];
            repr.emit(&mut LsPacket::new_unchecked(&mut b[..]));
            let p = LsPacket::new_checked(&b[..]).unwrap();
            prop_assert!(p.verify_checksum());
            prop_assert_eq!(LsRepr::parse(&p).unwrap(), repr);
        }

        #[test]
        fn no_panic_on_any_input(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            if let Ok(p) = LsPacket::new_checked(&bytes[..]) {
                let _ = LsRepr::parse(&p);
                let _ = (p.verify_checksum(), p.auth_tag(), p.body());
            }
            let _ = Lsa::parse(&bytes);
        }
    }
}
