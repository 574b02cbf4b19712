//! The per-packet forwarding logic: one received frame in, zero or more copies out through a
//! [`TxSink`], counters bumped, and an [`Outcome`] for the caller.
//!
//! It is pure: no I/O, no clock (time is the `now` argument), no allocation, no logging. The
//! worker (AF_XDP) and the tests and benches ([`crate::loopback`]) drive the same code.
//!
//! ```text
//! frame ─► Ethernet ─► IPv4 (length, checksum, no fragments)
//!            │             ├─ UDP to the overlay port at one of our addresses ─► overlay receive
//!            │             └─ 224/4 minus 224.0.0.0/24 ─► (S,G) | (*,G) ─► RPF ─► TTL
//!            │                     └─ miss: punt (rate-limited)          │
//!            │                                                           ├─► native copy per oif
//!            │                                                           └─► encap per next hop
//! overlay receive: UDP checksum ─► header ─► hop count ─► auth ─► (origin,G) ─► `from` RPF
//!                     ├─► native copy per `deliver` oif (inner TTL - 1)
//!                     └─► re-encap per next hop (hop count - 1, same origin and sequence)
//! ```
//!
//! # Example: one batch, as a worker runs it
//!
//! ```
//! use std::time::Duration;
//! use dataplane::iface::PortId;
//! use dataplane::loopback::{testing, LoopbackPorts};
//! use dataplane::mfib::{MfibHandle, MfibRoute, MfibUpdate, Oif};
//! use dataplane::pipeline::{Outcome, Pipeline, PipelineConfig};
//! use dataplane::stats::{LocalStats, SharedStats};
//!
//! let ifaces = testing::interfaces(3); // ifindex 10, 11, 12
//! let mfib = MfibHandle::new();
//! let (s, g) = ("10.0.0.9".parse().unwrap(), "239.1.1.1".parse().unwrap());
//! let oif = |i| Oif { ifindex: ifaces.get(PortId(i)).unwrap().ifindex, ttl_threshold: 1 };
//! let route = MfibRoute {
//!     source: Some(s),
//!     group: g,
//!     iif: oif(0).ifindex,
//!     oifs: vec![oif(1), oif(2)],
//!     overlay_next_hops: vec![],
//! };
//! mfib.apply(&[MfibUpdate::Install(route)], &ifaces)?;
//!
//! let mut pipeline = Pipeline::new(&PipelineConfig::default(), ifaces.clone())?;
//! let (mut tx, mut stats, shared) = (LoopbackPorts::new(64, 2048), LocalStats::new(), SharedStats::new());
//! let batch = [testing::UdpFrame::multicast(s, g, 8, 100).build()];
//! let table = mfib.load(); // once per batch
//! for frame in &batch {
//!     match pipeline.process(&table, PortId(0), frame, Duration::ZERO, &mut tx, &mut stats) {
//!         Outcome::Forwarded { copies } => assert_eq!(copies, 2),
//!         Outcome::Punt(_punt) => { /* try_send to the control plane */ }
//!         Outcome::Dropped(_reason) => { /* already counted */ }
//!     }
//! }
//! stats.publish(&shared); // once per batch
//! assert_eq!(shared.port(PortId(1)).tx_packets, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Counting rules
//!
//! Every received frame counts once as rx on its port. A drop of the whole packet counts once
//! on the receiving port and is returned as [`Outcome::Dropped`]. A failed *copy* (too big, no
//! neighbour, TX ring full, no frame) counts on the port the copy was for (the receiving port for
//! `no_neighbor` and a relay's `hop_limit`, since no port is known) and does not make the packet a
//! drop: the outcome is `Forwarded` with the number of copies that did go out (possibly 0).
//!
//! # Replication
//!
//! Each copy is written into its own TX buffer (a full copy of the datagram plus a new Ethernet
//! header): the copies differ in their headers (MACs; outer headers for overlay copies) and
//! AF_XDP descriptors cannot share one frame's payload, so copy-per-oif is the only policy that
//! keeps every TX frame independently owned. The cost is one `memcpy` per copy.

use std::net::Ipv4Addr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wire::ethernet::{EtherType, EthernetAddress, EthernetFrame};
use wire::ipv4::{Ipv4Packet, Protocol};
use wire::udp::UdpPacket;

use crate::iface::{InterfaceTable, PortId};
use crate::mfib::{Mfib, NextHopList, OifList, Punt};
use crate::overlay::{
    self, encap_len, HeaderFields, KeyTable, Outer, OverlayConfig, OverlayConfigError, SealedHeader,
};
use crate::stats::{DropReason, LocalStats};

const ETH_LEN: usize = 14;

/// Where copies go: the worker's AF_XDP TX rings, or the in-memory [`crate::loopback`] ports.
pub trait TxSink {
    /// Hands `fill` a buffer of exactly `len` bytes that will be transmitted on `port`. `fill`
    /// must write every byte. Errors are `NoFrame` (no free buffer) or `TxRingFull`.
    fn transmit<F: FnOnce(&mut [u8])>(
        &mut self,
        port: PortId,
        len: usize,
        fill: F,
    ) -> Result<(), DropReason>;
}

/// Pipeline settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PipelineConfig {
    /// UDP port of overlay data; 0 disables overlay receive.
    pub overlay_port: u16,
    pub overlay: OverlayConfig,
    /// Punts per second (sustained); 0 disables punting.
    pub punt_rate: u32,
    /// Punts allowed in a burst.
    pub punt_burst: u32,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            overlay_port: overlay::DATA_PORT,
            overlay: OverlayConfig::default(),
            punt_rate: 100,
            punt_burst: 20,
        }
    }
}

/// What happened to one received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A route matched; `copies` frames were handed to the sink.
    Forwarded { copies: u16 },
    /// The packet was dropped as a whole (already counted).
    Dropped(DropReason),
    /// No route: send this to the control plane (counted as `no_route` and as a punt).
    Punt(Punt),
}

/// Token bucket in nanoseconds of credit: each punt costs `1e9 / rate` ns.
#[derive(Debug, Clone)]
struct PuntLimiter {
    cost_ns: u64,
    cap_ns: u64,
    credit_ns: u64,
    last: Duration,
}

impl PuntLimiter {
    fn new(rate: u32, burst: u32) -> Self {
        let cost_ns = if rate == 0 { u64::MAX } else { 1_000_000_000 / u64::from(rate) };
        let cap_ns = cost_ns.saturating_mul(u64::from(burst.max(1)));
        Self { cost_ns, cap_ns, credit_ns: cap_ns, last: Duration::ZERO }
    }

    fn allow(&mut self, now: Duration) -> bool {
        if self.cost_ns == u64::MAX {
            return false;
        }
        let elapsed = now.saturating_sub(self.last);
        self.last = self.last.max(now);
        let elapsed_ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.credit_ns = self.credit_ns.saturating_add(elapsed_ns).min(self.cap_ns);
        if self.credit_ns >= self.cost_ns {
            self.credit_ns -= self.cost_ns;
            true
        } else {
            false
        }
    }
}

/// The forwarding pipeline of one worker.
#[derive(Debug, Clone)]
pub struct Pipeline {
    ifaces: InterfaceTable,
    overlay_port: u16,
    origin: Option<Ipv4Addr>,
    hop_count: u8,
    keys: KeyTable,
    punts: PuntLimiter,
}

/// Per-packet copy results.
struct Copies {
    sent: u16,
    failed: bool,
}

impl Copies {
    fn outcome(self) -> Result<Outcome, DropReason> {
        if self.sent == 0 && !self.failed {
            Err(DropReason::NoOif)
        } else {
            Ok(Outcome::Forwarded { copies: self.sent })
        }
    }
}

impl Pipeline {
    pub fn new(
        config: &PipelineConfig,
        ifaces: InterfaceTable,
    ) -> Result<Self, OverlayConfigError> {
        if config.overlay.hop_count == 0 {
            return Err(OverlayConfigError::ZeroHopCount);
        }
        Ok(Self {
            ifaces,
            overlay_port: config.overlay_port,
            origin: config.overlay.origin,
            hop_count: config.overlay.hop_count,
            keys: KeyTable::new(&config.overlay.keys, config.overlay.send_key)?,
            punts: PuntLimiter::new(config.punt_rate, config.punt_burst),
        })
    }

    pub fn interfaces(&self) -> &InterfaceTable {
        &self.ifaces
    }

    /// Replaces the overlay keys (rotation); packets in flight are checked against the new
    /// table from the next frame on.
    pub fn set_keys(&mut self, keys: KeyTable) {
        self.keys = keys;
    }

    /// Processes one frame received on `iif`. `now` is monotonic time since any fixed start
    /// (used only by the punt rate limiter).
    pub fn process<S: TxSink>(
        &mut self,
        mfib: &Mfib,
        iif: PortId,
        frame: &[u8],
        now: Duration,
        tx: &mut S,
        stats: &mut LocalStats,
    ) -> Outcome {
        stats.rx(iif, frame.len());
        match self.classify(mfib, iif, frame, now, tx, stats) {
            Ok(outcome) => outcome,
            Err(reason) => {
                stats.drop(iif, reason);
                Outcome::Dropped(reason)
            }
        }
    }

    fn classify<S: TxSink>(
        &mut self,
        mfib: &Mfib,
        iif: PortId,
        frame: &[u8],
        now: Duration,
        tx: &mut S,
        stats: &mut LocalStats,
    ) -> Result<Outcome, DropReason> {
        let eth = EthernetFrame::new_checked(frame).map_err(|_| DropReason::Truncated)?;
        if eth.ethertype() != EtherType::Ipv4 {
            return Err(DropReason::NotIpv4);
        }
        let ip_bytes = eth.payload();
        let ip = Ipv4Packet::new_checked(ip_bytes).map_err(ip_error)?;
        if !ip.verify_checksum() {
            return Err(DropReason::BadChecksum);
        }
        if ip.is_fragment() {
            return Err(DropReason::Fragment);
        }
        // Ethernet pads short frames: forward the datagram only, never the padding.
        let datagram = ip_bytes.get(..usize::from(ip.total_len())).ok_or(DropReason::Truncated)?;
        let (src, dst) = (ip.src_addr(), ip.dst_addr());

        // Multicast destinations skip the local-address scan: overlay packets are unicast.
        if !dst.is_multicast()
            && ip.next_header() == Protocol::Udp
            && self.overlay_port != 0
            && self.ifaces.port_by_addr(dst).is_some()
        {
            return self.overlay_receive(mfib, iif, src, dst, ip.payload(), tx, stats);
        }
        if !is_routable_multicast(dst) {
            return Err(DropReason::NotMulticast);
        }
        let Some(route) = mfib.lookup(src, dst) else {
            return self.punt(iif, src, dst, now, stats);
        };
        if route.iif != iif {
            return Err(DropReason::RpfFail);
        }
        let ttl = ip.ttl();
        // TTL <= 1 would leave as 0; TtlPatch is None only for TTL 0.
        let patch = match TtlPatch::decrement(datagram) {
            Some(patch) if ttl > 1 => patch,
            _ => return Err(DropReason::TtlExpired),
        };
        route.counters.record(datagram.len());
        let mut copies = Copies { sent: 0, failed: false };
        self.native_copies(&route.oifs, iif, ttl, patch, dst, datagram, tx, stats, &mut copies);
        if !route.next_hops.is_empty() {
            let origin = match self.origin {
                Some(o) => o,
                None => self.ifaces.get(iif).map_or(Ipv4Addr::UNSPECIFIED, |i| i.ipv4),
            };
            let fields = HeaderFields {
                group: dst,
                origin,
                sequence: route.counters.next_sequence(),
                hop_count: self.hop_count,
            };
            let sealed = overlay::seal(&fields, datagram, Some(patch), &self.keys, None);
            self.encap_copies(
                &route.next_hops,
                iif,
                &sealed,
                datagram,
                Some(patch),
                tx,
                stats,
                &mut copies,
            );
        }
        copies.outcome()
    }

    fn punt(
        &mut self,
        iif: PortId,
        source: Ipv4Addr,
        group: Ipv4Addr,
        now: Duration,
        stats: &mut LocalStats,
    ) -> Result<Outcome, DropReason> {
        let Some(iface) = self.ifaces.get(iif) else { return Err(DropReason::NoRoute) };
        if !self.punts.allow(now) {
            return Err(DropReason::NoRoute);
        }
        stats.drop(iif, DropReason::NoRoute);
        stats.punt(iif);
        Ok(Outcome::Punt(Punt { iif: iface.ifindex, source, group }))
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the per-packet context; a struct would be rebuilt per packet"
    )]
    fn overlay_receive<S: TxSink>(
        &self,
        mfib: &Mfib,
        iif: PortId,
        outer_src: Ipv4Addr,
        outer_dst: Ipv4Addr,
        udp_bytes: &[u8],
        tx: &mut S,
        stats: &mut LocalStats,
    ) -> Result<Outcome, DropReason> {
        let udp = UdpPacket::new_checked(udp_bytes).map_err(|e| match e {
            wire::Error::Truncated => DropReason::Truncated,
            _ => DropReason::BadIpHeader,
        })?;
        if udp.dst_port() != self.overlay_port {
            // Unicast to this node but not overlay data: the XDP program should have passed it to
            // the kernel; it is not ours to forward.
            return Err(DropReason::NotMulticast);
        }
        if !udp.verify_checksum(outer_src, outer_dst) {
            return Err(DropReason::BadChecksum);
        }
        let d = overlay::decapsulate(udp.payload())?;
        if d.header.hop_count == 0 {
            return Err(DropReason::HopLimit);
        }
        overlay::authenticate(&d, &self.keys)?;
        let entry =
            mfib.overlay_lookup(d.header.origin, d.header.group).ok_or(DropReason::NoRoute)?;
        if entry.from.is_some_and(|from| from != outer_src) {
            return Err(DropReason::RpfFail);
        }
        entry.counters.record(d.inner.len());
        let mut copies = Copies { sent: 0, failed: false };
        if !entry.deliver.is_empty() {
            // decapsulate() checked the inner header, so the TTL byte is there.
            let ttl = Ipv4Packet::new_unchecked(d.inner).ttl();
            match TtlPatch::decrement(d.inner) {
                Some(patch) if ttl > 1 => self.native_copies(
                    &entry.deliver,
                    iif,
                    ttl,
                    patch,
                    d.header.group,
                    d.inner,
                    tx,
                    stats,
                    &mut copies,
                ),
                _ => {
                    stats.drop(iif, DropReason::TtlExpired);
                    copies.failed = true;
                }
            }
        }
        if !entry.next_hops.is_empty() {
            let hop_count = d.header.hop_count - 1;
            if hop_count == 0 {
                stats.drop(iif, DropReason::HopLimit);
                copies.failed = true;
            } else {
                let fields = HeaderFields {
                    group: d.header.group,
                    origin: d.header.origin,
                    sequence: d.header.sequence,
                    hop_count,
                };
                // Relays do not route the inner datagram, they only carry it: its TTL is kept.
                // A verified tag over exactly these bytes is still valid (the MAC input excludes
                // the hop count), so it is reused when we sign with the same key.
                let verified = match (d.tag, d.has_trailing_bytes(), self.keys.is_empty()) {
                    (Some(tag), false, false) => Some((d.header.key_id, tag)),
                    _ => None,
                };
                let sealed = overlay::seal(&fields, d.inner, None, &self.keys, verified);
                self.encap_copies(
                    &entry.next_hops,
                    iif,
                    &sealed,
                    d.inner,
                    None,
                    tx,
                    stats,
                    &mut copies,
                );
            }
        }
        copies.outcome()
    }

    /// One native copy per eligible oif: new Ethernet header, TTL - 1.
    #[expect(
        clippy::too_many_arguments,
        reason = "the per-packet context; a struct would be rebuilt per packet"
    )]
    fn native_copies<S: TxSink>(
        &self,
        oifs: &OifList,
        iif: PortId,
        ttl: u8,
        patch: TtlPatch,
        group: Ipv4Addr,
        datagram: &[u8],
        tx: &mut S,
        stats: &mut LocalStats,
        copies: &mut Copies,
    ) {
        let dst_mac = EthernetAddress::from_ipv4_multicast(group);
        let len = ETH_LEN + datagram.len();
        for oif in oifs.as_slice() {
            if oif.port == iif || ttl <= oif.ttl_threshold {
                continue;
            }
            let Some(out) = self.ifaces.get(oif.port) else { continue };
            if datagram.len() > usize::from(out.mtu) {
                stats.drop(oif.port, DropReason::TooBig);
                copies.failed = true;
                continue;
            }
            let src_mac = out.mac;
            let sent = tx.transmit(oif.port, len, |buf| {
                write_native(buf, src_mac, dst_mac, datagram, patch);
            });
            self.account(sent, oif.port, len, stats, copies);
        }
    }

    /// One encapsulated copy per next hop.
    #[expect(
        clippy::too_many_arguments,
        reason = "the per-packet context; a struct would be rebuilt per packet"
    )]
    fn encap_copies<S: TxSink>(
        &self,
        hops: &NextHopList,
        iif: PortId,
        sealed: &SealedHeader,
        inner: &[u8],
        inner_ttl: Option<TtlPatch>,
        tx: &mut S,
        stats: &mut LocalStats,
        copies: &mut Copies,
    ) {
        let len = encap_len(inner.len(), sealed.as_bytes().len() > overlay::HEADER_LEN);
        for hop in hops.as_slice() {
            let Some(via) = hop.via else {
                stats.drop(iif, DropReason::NoNeighbor);
                copies.failed = true;
                continue;
            };
            let Some(out) = self.ifaces.get(via.port) else { continue };
            if len > usize::from(out.mtu) + ETH_LEN {
                stats.drop(via.port, DropReason::TooBig);
                copies.failed = true;
                continue;
            }
            let outer = Outer {
                src_mac: out.mac,
                dst_mac: via.mac,
                src_ip: out.ipv4,
                dst_ip: hop.addr,
                port: self.overlay_port,
            };
            let sent = tx.transmit(via.port, len, |buf| {
                overlay::encapsulate(buf, &outer, sealed, inner, inner_ttl);
            });
            self.account(sent, via.port, len, stats, copies);
        }
    }

    #[inline]
    #[expect(clippy::unused_self, reason = "kept a method so every copy path reads the same")]
    fn account(
        &self,
        sent: Result<(), DropReason>,
        port: PortId,
        len: usize,
        stats: &mut LocalStats,
        copies: &mut Copies,
    ) {
        match sent {
            Ok(()) => {
                stats.tx(port, len);
                copies.sent = copies.sent.saturating_add(1);
            }
            Err(reason) => {
                stats.drop(port, reason);
                copies.failed = true;
            }
        }
    }
}

/// 224.0.0.0/4 except the link-local 224.0.0.0/24, which RFC 5771 says is never forwarded.
#[inline]
pub fn is_routable_multicast(addr: Ipv4Addr) -> bool {
    let o = addr.octets();
    addr.is_multicast() && !(o[0] == 224 && o[1] == 0 && o[2] == 0)
}

fn ip_error(e: wire::Error) -> DropReason {
    match e {
        wire::Error::Truncated => DropReason::Truncated,
        wire::Error::BadChecksum => DropReason::BadChecksum,
        _ => DropReason::BadIpHeader,
    }
}

/// The TTL and checksum `Ipv4Packet::decrement_ttl` gives a datagram, computed once per packet
/// and stamped into every copy (the copies share the IPv4 header, so recomputing the RFC 1624
/// update per copy would repeat identical work).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlPatch {
    ttl: u8,
    checksum: u16,
}

impl TtlPatch {
    /// `None` if `datagram` has no IPv4 header or its TTL is 0.
    #[inline]
    pub fn decrement(datagram: &[u8]) -> Option<TtlPatch> {
        // decrement_ttl reads and writes only bytes 8..12 of the fixed header.
        let mut header = [0u8; 20];
        header.copy_from_slice(datagram.get(..20)?);
        let mut ip = Ipv4Packet::new_unchecked(&mut header[..]);
        let ttl = ip.decrement_ttl()?;
        Some(TtlPatch { ttl, checksum: ip.checksum() })
    }

    /// Writes the new TTL and checksum into a copy of the datagram.
    #[inline]
    pub fn apply(self, datagram: &mut [u8]) {
        if datagram.len() < 20 {
            return;
        }
        let mut ip = Ipv4Packet::new_unchecked(datagram);
        ip.set_ttl(self.ttl);
        ip.set_checksum(self.checksum);
    }
}

/// A native copy: Ethernet header for `dst_mac` from `src_mac`, then the datagram with the TTL
/// patch applied.
fn write_native(
    buf: &mut [u8],
    src_mac: EthernetAddress,
    dst_mac: EthernetAddress,
    datagram: &[u8],
    patch: TtlPatch,
) {
    if buf.len() != ETH_LEN + datagram.len() {
        debug_assert!(false, "write_native: buffer of {} bytes", buf.len());
        return;
    }
    let (eth, ip) = buf.split_at_mut(ETH_LEN);
    let mut frame = EthernetFrame::new_unchecked(eth);
    frame.set_dst_addr(dst_mac);
    frame.set_src_addr(src_mac);
    frame.set_ethertype(EtherType::Ipv4);
    ip.copy_from_slice(datagram);
    patch.apply(ip);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_patch_equals_decrement_ttl() {
        let mut frame = crate::loopback::testing::UdpFrame::multicast(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(239, 0, 0, 1),
            1,
            3,
        )
        .build();
        for ttl in [1u8, 2, 64, 255] {
            let ip = &mut frame[ETH_LEN..];
            let mut p = Ipv4Packet::new_unchecked(&mut *ip);
            p.set_ttl(ttl);
            p.fill_checksum();
            let patch = TtlPatch::decrement(ip).unwrap();
            let mut patched = ip.to_vec();
            patch.apply(&mut patched);
            let mut expected = ip.to_vec();
            Ipv4Packet::new_unchecked(&mut expected[..]).decrement_ttl().unwrap();
            assert_eq!(patched, expected, "TTL {ttl}");
        }
        Ipv4Packet::new_unchecked(&mut frame[ETH_LEN..]).set_ttl(0);
        assert_eq!(TtlPatch::decrement(&frame[ETH_LEN..]), None);
        assert_eq!(TtlPatch::decrement(&[0x45; 19]), None);
    }

    #[test]
    fn link_local_groups_are_not_routable() {
        assert!(is_routable_multicast(Ipv4Addr::new(239, 1, 2, 3)));
        assert!(is_routable_multicast(Ipv4Addr::new(224, 0, 1, 1)));
        assert!(!is_routable_multicast(Ipv4Addr::new(224, 0, 0, 22)));
        assert!(!is_routable_multicast(Ipv4Addr::new(10, 0, 0, 1)));
        assert!(!is_routable_multicast(Ipv4Addr::BROADCAST));
    }

    #[test]
    fn punt_limiter_allows_burst_then_rate() {
        let mut l = PuntLimiter::new(10, 3);
        let t0 = Duration::from_secs(5);
        assert!((0..3).all(|_| l.allow(t0)), "burst of 3");
        assert!(!l.allow(t0));
        assert!(!l.allow(t0 + Duration::from_millis(99)));
        assert!(l.allow(t0 + Duration::from_millis(100)), "one token per 100 ms");
        assert!(!l.allow(t0 + Duration::from_millis(100)));
        assert!(!l.allow(t0), "time going backwards grants nothing");
        let mut off = PuntLimiter::new(0, 10);
        assert!(!off.allow(Duration::from_secs(100)));
    }
}
