//! Overlay encapsulation for the data plane: configuration, the HMAC key table, and the
//! allocation-free encapsulate / decapsulate steps the pipeline calls per packet.
//!
//! The header format itself (and its diagram) lives in [`wire::overlay`]. The authentication tag
//! is `HMAC-SHA256(key[key_id], header with hop count and tag zeroed || inner datagram)`,
//! truncated to its first 16 bytes (the input is defined in `wire::overlay`, "Authentication
//! input"; the hop count is excluded so relays may lower it). The key table holds up to [`MAX_KEYS`] keys at once so keys can be
//! rotated without loss: receivers accept either key (by key id), senders use the configured
//! send key. Keys are turned into HMAC states once, at configuration time, so per-packet tag
//! work is the two SHA-256 passes over the data and no key schedule.
//!
//! A node with no keys configured sends untagged packets and accepts any packet, tagged or not
//! (it cannot check a tag). A node with keys drops untagged packets and packets naming a key id
//! it does not have, as `auth_fail`.

use std::fmt;
use std::net::Ipv4Addr;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use wire::ethernet::{EtherType, EthernetAddress, EthernetFrame};
use wire::ipv4::{Ipv4Packet, Protocol};
use wire::overlay::{MessageType, OverlayPacket, OverlayRepr};
use wire::udp::UdpPacket;

use crate::pipeline::TtlPatch;
use crate::stats::DropReason;

pub use wire::overlay::{AUTH_TAG_LEN, DATA_PORT, ENCAP_OVERHEAD, HEADER_LEN};

/// Keys held at once (current + next, for rotation).
pub const MAX_KEYS: usize = 2;
/// Default initial hop count: overlay trees in the testbed are a few hops deep; 16 bounds a
/// forwarding loop's amplification while leaving room.
pub const DEFAULT_HOP_COUNT: u8 = 16;

/// Offset of the hop count in the fixed header (excluded from the MAC input).
const HOP_COUNT_OFFSET: usize = 2;
const ETH_LEN: usize = 14;
const IPV4_LEN: usize = 20;
const UDP_LEN: usize = 8;
const OUTER_TTL: u8 = 64;

/// A shared secret for overlay authentication.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverlayKey {
    pub id: u8,
    pub secret: Vec<u8>,
}

impl fmt::Debug for OverlayKey {
    // Secrets must not end up in logs through `{:?}` of a config.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OverlayKey").field("id", &self.id).field("secret", &"<redacted>").finish()
    }
}

/// Overlay settings of a data plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OverlayConfig {
    /// Origin written into packets this node encapsulates; `None` uses the address of the
    /// interface the native packet arrived on.
    pub origin: Option<Ipv4Addr>,
    /// Initial hop count of packets this node encapsulates.
    pub hop_count: u8,
    /// Authentication keys (at most [`MAX_KEYS`]); empty = no authentication.
    pub keys: Vec<OverlayKey>,
    /// Key id used to sign; `None` = the first key.
    pub send_key: Option<u8>,
}

impl Default for OverlayConfig {
    fn default() -> Self {
        Self { origin: None, hop_count: DEFAULT_HOP_COUNT, keys: Vec::new(), send_key: None }
    }
}

/// Why an overlay configuration is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverlayConfigError {
    #[error(
        "{count} overlay keys configured; at most {MAX_KEYS} (current and next) are supported"
    )]
    TooManyKeys { count: usize },
    #[error("overlay key {id} has an empty secret")]
    EmptySecret { id: u8 },
    #[error("overlay key id {id} is configured twice")]
    DuplicateKeyId { id: u8 },
    #[error("overlay send key {id} is not among the configured keys")]
    UnknownSendKey { id: u8 },
    #[error("overlay hop count 0 would drop every packet at the first hop")]
    ZeroHopCount,
}

#[derive(Clone)]
struct KeySlot {
    id: u8,
    mac: Hmac<Sha256>,
}

/// Pre-keyed HMAC states by key id.
#[derive(Clone, Default)]
pub struct KeyTable {
    slots: [Option<KeySlot>; MAX_KEYS],
    send: Option<usize>,
}

impl fmt::Debug for KeyTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<u8> = self.slots.iter().flatten().map(|s| s.id).collect();
        f.debug_struct("KeyTable")
            .field("key_ids", &ids)
            .field("send_key", &self.send_key_id())
            .finish_non_exhaustive()
    }
}

impl KeyTable {
    pub fn new(keys: &[OverlayKey], send_key: Option<u8>) -> Result<Self, OverlayConfigError> {
        if keys.len() > MAX_KEYS {
            return Err(OverlayConfigError::TooManyKeys { count: keys.len() });
        }
        let mut table = KeyTable::default();
        for (i, key) in keys.iter().enumerate() {
            if key.secret.is_empty() {
                return Err(OverlayConfigError::EmptySecret { id: key.id });
            }
            if keys.get(..i).is_some_and(|before| before.iter().any(|k| k.id == key.id)) {
                return Err(OverlayConfigError::DuplicateKeyId { id: key.id });
            }
            // HMAC accepts keys of any length; the error case cannot happen for Hmac<Sha256>.
            let mac = <Hmac<Sha256> as Mac>::new_from_slice(&key.secret)
                .map_err(|_| OverlayConfigError::EmptySecret { id: key.id })?;
            if let Some(slot) = table.slots.get_mut(i) {
                *slot = Some(KeySlot { id: key.id, mac });
            }
        }
        table.send = match send_key {
            Some(id) => Some(table.slot_of(id).ok_or(OverlayConfigError::UnknownSendKey { id })?),
            None if keys.is_empty() => None,
            None => Some(0),
        };
        Ok(table)
    }

    /// No keys: packets are sent untagged and accepted unchecked.
    pub fn is_empty(&self) -> bool {
        self.send.is_none()
    }

    pub fn send_key_id(&self) -> Option<u8> {
        self.send.and_then(|i| self.slots.get(i)).and_then(|s| s.as_ref()).map(|s| s.id)
    }

    fn slot_of(&self, id: u8) -> Option<usize> {
        self.slots.iter().position(|s| s.as_ref().is_some_and(|s| s.id == id))
    }

    fn keyed(&self, id: u8, input: &[&[u8]]) -> Option<Hmac<Sha256>> {
        let slot = self.slots.get(self.slot_of(id)?)?.as_ref()?;
        let mut mac = slot.mac.clone();
        for chunk in input {
            mac.update(chunk);
        }
        Some(mac)
    }

    /// The tag over `input` (the MAC input chunks in order, as `OverlayPacket::auth_input`
    /// gives them) with key `id`; `None` if the key is unknown.
    pub fn compute(&self, id: u8, input: &[&[u8]]) -> Option<[u8; AUTH_TAG_LEN]> {
        let full = self.keyed(id, input)?.finalize().into_bytes();
        let mut tag = [0u8; AUTH_TAG_LEN];
        tag.copy_from_slice(full.get(..AUTH_TAG_LEN)?);
        Some(tag)
    }

    /// Checks a received tag in constant time (`verify_truncated_left` compares without early
    /// exit, so timing does not reveal how many leading bytes matched).
    pub fn verify(&self, id: u8, input: &[&[u8]], tag: &[u8; AUTH_TAG_LEN]) -> bool {
        self.keyed(id, input).is_some_and(|mac| mac.verify_truncated_left(tag).is_ok())
    }
}

/// Outer addressing of one encapsulated copy (differs per next hop).
#[derive(Debug, Clone, Copy)]
pub struct Outer {
    pub src_mac: EthernetAddress,
    pub dst_mac: EthernetAddress,
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    /// UDP source and destination port.
    pub port: u16,
}

/// The overlay header fields of one packet (the same for every next hop it is copied to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderFields {
    pub group: Ipv4Addr,
    pub origin: Ipv4Addr,
    pub sequence: u32,
    pub hop_count: u8,
}

/// An emitted overlay header, tag included when signing: built once per packet by [`seal`] and
/// copied into every encapsulated copy, since header and inner datagram (hence the tag) are
/// identical for all next hops.
#[derive(Debug, Clone, Copy)]
pub struct SealedHeader {
    bytes: [u8; HEADER_LEN + AUTH_TAG_LEN],
    len: usize,
}

impl SealedHeader {
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&[])
    }
}

/// Length of the whole encapsulated frame for an inner datagram of `inner_len` bytes.
#[inline]
pub const fn encap_len(inner_len: usize, auth: bool) -> usize {
    ENCAP_OVERHEAD + if auth { AUTH_TAG_LEN } else { 0 } + inner_len
}

/// Largest IPv4 header (IHL 15).
const MAX_IPV4_HEADER: usize = 60;

/// Emits the overlay header for `inner` (a checked IPv4 datagram) and, if `keys` has a send
/// key, its tag. With `inner_ttl` the tag covers the inner datagram as it will be sent, with
/// the TTL patch applied: the patched IPv4 header is built on the stack so the inner bytes are
/// not copied here.
///
/// `verified` is the tag of a received packet that passed [`authenticate`] with the same inner
/// bytes: since the MAC input excludes the hop count, a relay signing with the key id it
/// received reuses that tag instead of computing a new, identical one.
pub fn seal(
    fields: &HeaderFields,
    inner: &[u8],
    inner_ttl: Option<TtlPatch>,
    keys: &KeyTable,
    verified: Option<(u8, &[u8; AUTH_TAG_LEN])>,
) -> SealedHeader {
    let key_id = keys.send_key_id();
    let repr = OverlayRepr {
        msg_type: MessageType::Data,
        auth: key_id.is_some(),
        reserved_flags: 0,
        hop_count: fields.hop_count,
        key_id: key_id.unwrap_or(0),
        group: fields.group,
        origin: fields.origin,
        sequence: fields.sequence,
    };
    let mut sealed = SealedHeader { bytes: [0; HEADER_LEN + AUTH_TAG_LEN], len: repr.buffer_len() };
    repr.emit(&mut OverlayPacket::new_unchecked(&mut sealed.bytes[..]));
    let Some(id) = key_id else { return sealed };
    let (header, tag_out) = sealed.bytes.split_at_mut(HEADER_LEN);
    if let Some((received_id, tag)) = verified {
        if received_id == id {
            tag_out.copy_from_slice(tag);
            return sealed;
        }
    }
    // The MAC input's header has the hop count zeroed (wire::overlay, "Authentication input").
    let mut mac_header = [0u8; HEADER_LEN];
    mac_header.copy_from_slice(header);
    mac_header[HOP_COUNT_OFFSET] = 0;
    let zero_tag = [0u8; AUTH_TAG_LEN];
    let tag = if let Some(patch) = inner_ttl {
        let header_len = usize::from(Ipv4Packet::new_unchecked(inner).header_len());
        let mut ip_header = [0u8; MAX_IPV4_HEADER];
        let (Some(dst), Some(src), Some(rest)) =
            (ip_header.get_mut(..header_len), inner.get(..header_len), inner.get(header_len..))
        else {
            return sealed;
        };
        dst.copy_from_slice(src);
        patch.apply(dst);
        keys.compute(id, &[&mac_header, &zero_tag, dst, rest])
    } else {
        keys.compute(id, &[&mac_header, &zero_tag, inner])
    };
    if let Some(tag) = tag {
        tag_out.copy_from_slice(&tag);
    }
    sealed
}

/// Writes a complete encapsulated frame into `buf`, which must be exactly
/// `ETH + IPv4 + UDP + header.as_bytes().len() + inner.len()` bytes: outer Ethernet, IPv4 (DF,
/// TTL 64, checksum), UDP, the sealed overlay header, then `inner` — with its TTL lowered by one
/// when given `inner_ttl` (this node routed it; must match what [`seal`] was told).
///
/// A buffer of the wrong size is a bug in the `TxSink`; it is left unwritten rather than
/// panicking on the forwarding path.
pub fn encapsulate(
    buf: &mut [u8],
    outer: &Outer,
    header: &SealedHeader,
    inner: &[u8],
    inner_ttl: Option<TtlPatch>,
) {
    let overlay = header.as_bytes();
    if buf.len() != ETH_LEN + IPV4_LEN + UDP_LEN + overlay.len() + inner.len() {
        debug_assert!(
            false,
            "encapsulate: buffer of {} bytes for {} inner",
            buf.len(),
            inner.len()
        );
        return;
    }
    let (eth, rest) = buf.split_at_mut(ETH_LEN);
    let (ip, rest) = rest.split_at_mut(IPV4_LEN);
    let (udp, rest) = rest.split_at_mut(UDP_LEN);
    let (ovl, inner_out) = rest.split_at_mut(overlay.len());

    let mut frame = EthernetFrame::new_unchecked(eth);
    frame.set_dst_addr(outer.dst_mac);
    frame.set_src_addr(outer.src_mac);
    frame.set_ethertype(EtherType::Ipv4);

    let ip_total = IPV4_LEN + UDP_LEN + overlay.len() + inner.len();
    write_outer_ipv4(ip, outer.src_ip, outer.dst_ip, ip_total as u16);

    let mut u = UdpPacket::new_unchecked(udp);
    u.set_src_port(outer.port);
    u.set_dst_port(outer.port);
    u.set_len((UDP_LEN + overlay.len() + inner.len()) as u16);
    // Checksum 0 = "not computed" (RFC 768, allowed for UDP over IPv4): the inner datagram has
    // its own header checksum and end-to-end transport checksum, the overlay header and payload
    // are covered by the HMAC tag when authentication is on, and summing up to 1.5 kB per copy
    // would dominate the encapsulation cost.
    u.set_checksum(0);

    ovl.copy_from_slice(overlay);
    inner_out.copy_from_slice(inner);
    if let Some(patch) = inner_ttl {
        patch.apply(inner_out);
    }
}

/// Outer IPv4 header: 20 bytes, DF (no fragmentation of the tunnel; too-big copies are dropped
/// and counted instead), ident 0 (RFC 6864: atomic datagrams need no unique ident).
fn write_outer_ipv4(buf: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, total_len: u16) {
    let mut ip = Ipv4Packet::new_unchecked(buf);
    ip.set_version(4);
    ip.set_header_len(IPV4_LEN as u8);
    ip.set_dscp_ecn(0);
    ip.set_total_len(total_len);
    ip.set_ident(0);
    ip.clear_flags();
    ip.set_dont_frag(true);
    ip.set_more_frags(false);
    ip.set_frag_offset(0);
    ip.set_ttl(OUTER_TTL);
    ip.set_next_header(Protocol::Udp);
    ip.set_src_addr(src);
    ip.set_dst_addr(dst);
    ip.fill_checksum();
}

/// A received overlay packet, validated structurally (not yet authenticated).
#[derive(Debug, Clone, Copy)]
pub struct Decapsulated<'a> {
    pub header: OverlayRepr,
    /// The fixed header with the hop count zeroed (the MAC input's first chunk).
    mac_header: [u8; HEADER_LEN],
    pub tag: Option<&'a [u8; AUTH_TAG_LEN]>,
    /// Every byte after the header and tag (the MAC input's last chunk).
    after_tag: &'a [u8],
    /// The inner IPv4 datagram, checked (length, header checksum, not a fragment, addressed to
    /// `header.group`) and cut to its total length.
    pub inner: &'a [u8],
}

impl Decapsulated<'_> {
    /// The MAC input, as defined in `wire::overlay` (same chunks as
    /// `OverlayPacket::auth_input`, but borrowing the frame rather than a packet view).
    pub fn auth_chunks(&self) -> [&[u8]; 3] {
        [&self.mac_header, &[0u8; AUTH_TAG_LEN], self.after_tag]
    }

    /// Whether bytes followed the inner datagram (covered by the tag but not forwarded).
    pub fn has_trailing_bytes(&self) -> bool {
        self.after_tag.len() > self.inner.len()
    }
}

/// Parses the UDP payload of an overlay packet and its inner datagram.
pub fn decapsulate(payload: &[u8]) -> Result<Decapsulated<'_>, DropReason> {
    let packet = OverlayPacket::new_checked(payload).map_err(|e| match e {
        wire::Error::Truncated => DropReason::Truncated,
        _ => DropReason::BadOverlay,
    })?;
    let header = OverlayRepr::parse(&packet).map_err(|_| DropReason::BadOverlay)?;
    // check_len guaranteed the header (and the tag when A is set) is in the buffer.
    let tag = if header.auth {
        payload.get(HEADER_LEN..HEADER_LEN + AUTH_TAG_LEN).and_then(|t| t.try_into().ok())
    } else {
        None
    };
    let after_tag = payload.get(header.buffer_len()..).ok_or(DropReason::Truncated)?;
    let mut mac_header = [0u8; HEADER_LEN];
    mac_header.copy_from_slice(packet.fixed_header());
    mac_header[HOP_COUNT_OFFSET] = 0;

    let inner_ip = Ipv4Packet::new_checked(after_tag).map_err(|_| DropReason::BadOverlay)?;
    if !inner_ip.verify_checksum() || inner_ip.is_fragment() || inner_ip.dst_addr() != header.group
    {
        return Err(DropReason::BadOverlay);
    }
    // Only the datagram itself is forwarded: trailing bytes past its total length are not.
    let inner = after_tag.get(..usize::from(inner_ip.total_len())).ok_or(DropReason::Truncated)?;
    Ok(Decapsulated { header, mac_header, tag, after_tag, inner })
}

/// Applies the key policy to a decapsulated packet (see the module docs).
pub fn authenticate(d: &Decapsulated<'_>, keys: &KeyTable) -> Result<(), DropReason> {
    if keys.is_empty() {
        return Ok(());
    }
    match d.tag {
        Some(tag) if keys.verify(d.header.key_id, &d.auth_chunks(), tag) => Ok(()),
        _ => Err(DropReason::AuthFail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u8, secret: &[u8]) -> OverlayKey {
        OverlayKey { id, secret: secret.to_vec() }
    }

    #[test]
    fn key_table_rejects_bad_configurations() {
        let k = |id| key(id, b"k");
        assert_eq!(
            KeyTable::new(&[k(1), k(2), k(3)], None).unwrap_err(),
            OverlayConfigError::TooManyKeys { count: 3 }
        );
        assert_eq!(
            KeyTable::new(&[k(1), k(1)], None).unwrap_err(),
            OverlayConfigError::DuplicateKeyId { id: 1 }
        );
        assert_eq!(
            KeyTable::new(&[key(4, b"")], None).unwrap_err(),
            OverlayConfigError::EmptySecret { id: 4 }
        );
        assert_eq!(
            KeyTable::new(&[k(1)], Some(2)).unwrap_err(),
            OverlayConfigError::UnknownSendKey { id: 2 }
        );
        assert_eq!(KeyTable::new(&[k(5), k(6)], None).unwrap().send_key_id(), Some(5));
        assert_eq!(KeyTable::new(&[k(5), k(6)], Some(6)).unwrap().send_key_id(), Some(6));
        assert!(KeyTable::new(&[], None).unwrap().is_empty());
    }

    #[test]
    fn tags_depend_on_key_and_every_input_byte() {
        let table = KeyTable::new(&[key(1, b"alpha"), key(2, b"beta")], None).unwrap();
        let input: [&[u8]; 2] = [b"header", b"inner"];
        let t1 = table.compute(1, &input).unwrap();
        assert!(table.verify(1, &input, &t1));
        assert!(!table.verify(2, &input, &t1), "other key");
        assert!(!table.verify(1, &[b"header", b"innes"], &t1), "other input");
        assert!(table.compute(3, &input).is_none(), "unknown key id");
        let mut flipped = t1;
        flipped[15] ^= 1;
        assert!(!table.verify(1, &input, &flipped));
    }

    #[test]
    fn debug_output_never_contains_secrets() {
        let k = key(7, b"super-secret");
        let cfg = OverlayConfig { keys: vec![k.clone()], ..OverlayConfig::default() };
        let table = KeyTable::new(&cfg.keys, None).unwrap();
        for text in [format!("{k:?}"), format!("{cfg:?}"), format!("{table:?}")] {
            assert!(!text.contains("super-secret"), "{text}");
        }
    }
}
