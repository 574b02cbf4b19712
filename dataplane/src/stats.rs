//! Data-plane counters: per port (rx/tx packets and bytes, punts, drops by [`DropReason`]) and
//! per route (packets/bytes, kept in the compiled MFIB entry, see [`crate::mfib::FlowCounters`]).
//!
//! Each worker owns a [`LocalStats`] and bumps plain `u64`s per packet (no atomics, no sharing on
//! the hot path). Once per batch it calls [`LocalStats::publish`], which copies the cumulative
//! values into its [`SharedStats`] with relaxed atomic stores; readers (`fanoutctl`, Prometheus)
//! take [`SharedStats::snapshot`]s at any time. Invariants: published values only grow (the worker
//! never resets them; "clear" is a reader-side baseline, [`StatsSnapshot::since`]), and a snapshot
//! is per-counter consistent, not a consistent cut across counters (a batch may be half visible).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::iface::{InterfaceTable, PortId, MAX_PORTS};

/// Why the data plane did not forward a packet (or one copy of it). Every variant is produced
/// somewhere; docs/dataplane-pipeline.md has the table of when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// A header (Ethernet, IPv4, UDP, overlay) is cut short by the end of the frame.
    Truncated,
    /// The Ethernet frame does not carry IPv4.
    NotIpv4,
    /// The IPv4 header is malformed (version, header length, total length).
    BadIpHeader,
    /// The IPv4 header checksum (or a non-zero UDP checksum of an overlay packet) is wrong.
    BadChecksum,
    /// An IPv4 fragment: fanout does not reassemble.
    Fragment,
    /// The destination is neither a routable multicast group (224/4 minus 224.0.0.0/24) nor an
    /// overlay packet for this node.
    NotMulticast,
    /// TTL <= 1 on arrival: forwarding would send TTL 0.
    TtlExpired,
    /// The packet arrived on an interface other than the route's RPF interface (native), or
    /// from an overlay neighbour other than the route's `from` (overlay).
    RpfFail,
    /// No (S,G), (*,G) or overlay route (native misses are also punted, rate-limited).
    NoRoute,
    /// A route matched, but no copy was eligible (pruned: empty oif list, or every oif's TTL
    /// threshold at or above the packet's TTL).
    NoOif,
    /// The port's TX ring had no free slot for a copy.
    TxRingFull,
    /// No free frame buffer for a copy.
    NoFrame,
    /// A copy (after encapsulation, if any) exceeds the outgoing interface MTU.
    TooBig,
    /// An overlay packet's tag is missing, names an unknown key, or does not verify.
    AuthFail,
    /// An overlay header that is not version 1 / type Data, or whose inner datagram is not
    /// IPv4 to the header's group.
    BadOverlay,
    /// An overlay packet arrived (or would be relayed) with hop count 0.
    HopLimit,
    /// An overlay next hop has no resolved neighbour (MAC and port).
    NoNeighbor,
}

impl DropReason {
    /// Number of reasons; per-reason counters are `[u64; DropReason::COUNT]`.
    pub const COUNT: usize = 17;

    /// Every reason, in counter-index order.
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::Truncated,
        DropReason::NotIpv4,
        DropReason::BadIpHeader,
        DropReason::BadChecksum,
        DropReason::Fragment,
        DropReason::NotMulticast,
        DropReason::TtlExpired,
        DropReason::RpfFail,
        DropReason::NoRoute,
        DropReason::NoOif,
        DropReason::TxRingFull,
        DropReason::NoFrame,
        DropReason::TooBig,
        DropReason::AuthFail,
        DropReason::BadOverlay,
        DropReason::HopLimit,
        DropReason::NoNeighbor,
    ];

    /// Stable snake_case name (counter labels, JSON keys).
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::NotIpv4 => "not_ipv4",
            DropReason::BadIpHeader => "bad_ip_header",
            DropReason::BadChecksum => "bad_checksum",
            DropReason::Fragment => "fragment",
            DropReason::NotMulticast => "not_multicast",
            DropReason::TtlExpired => "ttl_expired",
            DropReason::RpfFail => "rpf_fail",
            DropReason::NoRoute => "no_route",
            DropReason::NoOif => "no_oif",
            DropReason::TxRingFull => "tx_ring_full",
            DropReason::NoFrame => "no_frame",
            DropReason::TooBig => "too_big",
            DropReason::AuthFail => "auth_fail",
            DropReason::BadOverlay => "bad_overlay",
            DropReason::HopLimit => "hop_limit",
            DropReason::NoNeighbor => "no_neighbor",
        }
    }

    /// Index into per-reason counter arrays.
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The reason with this [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<DropReason> {
        Self::ALL.iter().copied().find(|r| r.name() == name)
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One port's counters as the worker keeps them (plain integers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortCounters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Punts handed to the caller (after the rate limiter).
    pub punts: u64,
    pub drops: [u64; DropReason::COUNT],
}

impl PortCounters {
    const ZERO: PortCounters = PortCounters {
        rx_packets: 0,
        rx_bytes: 0,
        tx_packets: 0,
        tx_bytes: 0,
        punts: 0,
        drops: [0; DropReason::COUNT],
    };

    pub fn drop_count(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()]
    }

    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }
}

impl Default for PortCounters {
    fn default() -> Self {
        Self::ZERO
    }
}

/// A worker's own counters for every port. Out-of-range ports are ignored rather than
/// panicking: a bad `PortId` must not take the worker down.
#[derive(Debug, Clone)]
pub struct LocalStats {
    ports: Box<[PortCounters; MAX_PORTS]>,
    /// Bit per port changed since the last publish, so publishing costs O(ports touched), not
    /// O(MAX_PORTS × counters). `MAX_PORTS` is 64, one bit each.
    dirty: u64,
}

const _: () = assert!(MAX_PORTS <= 64, "LocalStats::dirty has one bit per port");

impl Default for LocalStats {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalStats {
    pub fn new() -> Self {
        Self { ports: Box::new([PortCounters::ZERO; MAX_PORTS]), dirty: 0 }
    }

    #[inline]
    pub fn port(&self, port: PortId) -> PortCounters {
        self.ports.get(port.index()).copied().unwrap_or_default()
    }

    #[inline]
    pub fn rx(&mut self, port: PortId, bytes: usize) {
        if let Some(c) = self.ports.get_mut(port.index()) {
            self.dirty |= 1 << port.index();
            c.rx_packets += 1;
            c.rx_bytes += bytes as u64;
        }
    }

    #[inline]
    pub fn tx(&mut self, port: PortId, bytes: usize) {
        if let Some(c) = self.ports.get_mut(port.index()) {
            self.dirty |= 1 << port.index();
            c.tx_packets += 1;
            c.tx_bytes += bytes as u64;
        }
    }

    #[inline]
    pub fn drop(&mut self, port: PortId, reason: DropReason) {
        if let Some(c) = self.ports.get_mut(port.index()) {
            self.dirty |= 1 << port.index();
            c.drops[reason.index()] += 1;
        }
    }

    #[inline]
    pub fn punt(&mut self, port: PortId) {
        if let Some(c) = self.ports.get_mut(port.index()) {
            self.dirty |= 1 << port.index();
            c.punts += 1;
        }
    }

    /// Sum of one drop reason over all ports.
    pub fn total_drops(&self, reason: DropReason) -> u64 {
        self.ports.iter().map(|c| c.drops[reason.index()]).sum()
    }

    /// Copies the cumulative counters of the ports changed since the last call to `shared`
    /// (relaxed stores: readers need eventual visibility of monotone counters, not ordering with
    /// other memory). Call once per batch; `shared` must be the same every time.
    pub fn publish(&mut self, shared: &SharedStats) {
        let mut dirty = std::mem::take(&mut self.dirty);
        while dirty != 0 {
            let i = dirty.trailing_zeros() as usize;
            dirty &= dirty - 1;
            let (Some(local), Some(out)) = (self.ports.get(i), shared.ports.get(i)) else {
                continue;
            };
            out.rx_packets.store(local.rx_packets, Ordering::Relaxed);
            out.rx_bytes.store(local.rx_bytes, Ordering::Relaxed);
            out.tx_packets.store(local.tx_packets, Ordering::Relaxed);
            out.tx_bytes.store(local.tx_bytes, Ordering::Relaxed);
            out.punts.store(local.punts, Ordering::Relaxed);
            for (l, o) in local.drops.iter().zip(out.drops.iter()) {
                o.store(*l, Ordering::Relaxed);
            }
        }
    }
}

#[derive(Debug)]
struct AtomicPortCounters {
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
    punts: AtomicU64,
    drops: [AtomicU64; DropReason::COUNT],
}

impl AtomicPortCounters {
    fn new() -> Self {
        Self {
            rx_packets: AtomicU64::new(0),
            rx_bytes: AtomicU64::new(0),
            tx_packets: AtomicU64::new(0),
            tx_bytes: AtomicU64::new(0),
            punts: AtomicU64::new(0),
            drops: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    fn load(&self) -> PortCounters {
        PortCounters {
            rx_packets: self.rx_packets.load(Ordering::Relaxed),
            rx_bytes: self.rx_bytes.load(Ordering::Relaxed),
            tx_packets: self.tx_packets.load(Ordering::Relaxed),
            tx_bytes: self.tx_bytes.load(Ordering::Relaxed),
            punts: self.punts.load(Ordering::Relaxed),
            drops: std::array::from_fn(|i| self.drops[i].load(Ordering::Relaxed)),
        }
    }
}

/// The published copy of one worker's counters (share it with readers in an `Arc`).
#[derive(Debug)]
pub struct SharedStats {
    ports: Box<[AtomicPortCounters]>,
}

impl Default for SharedStats {
    fn default() -> Self {
        Self::new()
    }
}

impl SharedStats {
    pub fn new() -> Self {
        Self { ports: (0..MAX_PORTS).map(|_| AtomicPortCounters::new()).collect() }
    }

    /// The published counters of one port.
    pub fn port(&self, port: PortId) -> PortCounters {
        self.ports.get(port.index()).map(AtomicPortCounters::load).unwrap_or_default()
    }

    /// Reads every port of `ifaces` into a serialisable snapshot.
    pub fn snapshot(&self, ifaces: &InterfaceTable) -> StatsSnapshot {
        StatsSnapshot {
            ports: ifaces
                .iter()
                .map(|(port, iface)| {
                    PortStatsSnapshot::new(port, iface.ifindex.0, &iface.name, &self.port(port))
                })
                .collect(),
        }
    }
}

/// One port's counters for `fanoutctl` and Prometheus. Drops are keyed by
/// [`DropReason::name`] and include zero counts, so consumers see every reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStatsSnapshot {
    pub port: u16,
    pub ifindex: u32,
    pub name: String,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub punts: u64,
    pub drops: BTreeMap<String, u64>,
}

impl PortStatsSnapshot {
    fn new(port: PortId, ifindex: u32, name: &str, c: &PortCounters) -> Self {
        Self {
            port: port.0,
            ifindex,
            name: name.to_owned(),
            rx_packets: c.rx_packets,
            rx_bytes: c.rx_bytes,
            tx_packets: c.tx_packets,
            tx_bytes: c.tx_bytes,
            punts: c.punts,
            drops: DropReason::ALL
                .iter()
                .map(|r| (r.name().to_owned(), c.drops[r.index()]))
                .collect(),
        }
    }

    /// One drop counter by reason.
    pub fn drop_count(&self, reason: DropReason) -> u64 {
        self.drops.get(reason.name()).copied().unwrap_or(0)
    }
}

/// Counters of every port at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    pub ports: Vec<PortStatsSnapshot>,
}

type Getter = fn(&PortStatsSnapshot) -> u64;

impl StatsSnapshot {
    /// Adds another worker's snapshot (ports matched by port id; unknown ones appended).
    pub fn merge(&mut self, other: &StatsSnapshot) {
        for theirs in &other.ports {
            if let Some(ours) = self.ports.iter_mut().find(|p| p.port == theirs.port) {
                ours.rx_packets += theirs.rx_packets;
                ours.rx_bytes += theirs.rx_bytes;
                ours.tx_packets += theirs.tx_packets;
                ours.tx_bytes += theirs.tx_bytes;
                ours.punts += theirs.punts;
                for (k, v) in &theirs.drops {
                    *ours.drops.entry(k.clone()).or_insert(0) += v;
                }
            } else {
                self.ports.push(theirs.clone());
            }
        }
    }

    /// The counters accumulated since `baseline` (how "clear stats" is done without touching the
    /// workers). Saturates at zero if the baseline is newer (e.g. after a restart).
    pub fn since(&self, baseline: &StatsSnapshot) -> StatsSnapshot {
        let mut out = self.clone();
        for p in &mut out.ports {
            let Some(b) = baseline.ports.iter().find(|b| b.port == p.port) else { continue };
            p.rx_packets = p.rx_packets.saturating_sub(b.rx_packets);
            p.rx_bytes = p.rx_bytes.saturating_sub(b.rx_bytes);
            p.tx_packets = p.tx_packets.saturating_sub(b.tx_packets);
            p.tx_bytes = p.tx_bytes.saturating_sub(b.tx_bytes);
            p.punts = p.punts.saturating_sub(b.punts);
            for (k, v) in &mut p.drops {
                *v = v.saturating_sub(b.drops.get(k).copied().unwrap_or(0));
            }
        }
        out
    }

    /// The port with this interface name.
    pub fn port(&self, name: &str) -> Option<&PortStatsSnapshot> {
        self.ports.iter().find(|p| p.name == name)
    }

    /// Prometheus text exposition format (version 0.0.4), metric names
    /// `fanout_interface_<counter>_total{interface=...}` and
    /// `fanout_interface_drops_total{interface=...,reason=...}`.
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        let simple: [(&str, &str, Getter); 5] = [
            ("fanout_interface_rx_packets_total", "Frames received by the data plane.", |p| {
                p.rx_packets
            }),
            ("fanout_interface_rx_bytes_total", "Bytes received by the data plane.", |p| {
                p.rx_bytes
            }),
            ("fanout_interface_tx_packets_total", "Frames transmitted by the data plane.", |p| {
                p.tx_packets
            }),
            ("fanout_interface_tx_bytes_total", "Bytes transmitted by the data plane.", |p| {
                p.tx_bytes
            }),
            (
                "fanout_interface_punts_total",
                "No-route packets reported to the control plane.",
                |p| p.punts,
            ),
        ];
        for (name, help, get) in simple {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for p in &self.ports {
                let _ = writeln!(out, "{name}{{interface=\"{}\"}} {}", p.name, get(p));
            }
        }
        let name = "fanout_interface_drops_total";
        let _ = writeln!(
            out,
            "# HELP {name} Packets or copies dropped, by reason.\n# TYPE {name} counter"
        );
        for p in &self.ports {
            for (reason, v) in &p.drops {
                let _ = writeln!(out, "{name}{{interface=\"{}\",reason=\"{reason}\"}} {v}", p.name);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use wire::ethernet::EthernetAddress;

    use super::*;
    use crate::iface::Interface;
    use crate::mfib::IfIndex;

    #[test]
    fn reason_table_is_consistent() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{r:?} out of order in ALL");
            assert_eq!(DropReason::from_name(r.name()), Some(*r));
            let json = serde_json::to_string(r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.name()), "serde name differs from name()");
        }
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
    }

    #[test]
    fn publish_snapshot_merge_since() {
        let mut ifaces = InterfaceTable::new();
        for i in 0..2u8 {
            ifaces
                .add(Interface {
                    ifindex: IfIndex(10 + u32::from(i)),
                    name: format!("v{i}"),
                    mac: EthernetAddress([2, 0, 0, 0, 0, i]),
                    ipv4: Ipv4Addr::new(10, 0, i, 1),
                    mtu: 1500,
                })
                .unwrap();
        }
        let mut local = LocalStats::new();
        local.rx(PortId(0), 100);
        local.rx(PortId(0), 50);
        local.tx(PortId(1), 150);
        local.drop(PortId(0), DropReason::RpfFail);
        local.punt(PortId(0));
        local.rx(PortId(999), 1); // ignored, not a panic
        let shared = SharedStats::new();
        assert_eq!(shared.port(PortId(0)).rx_packets, 0, "nothing visible before publish");
        local.publish(&shared);
        local.tx(PortId(1), 10);
        local.publish(&shared);
        assert_eq!(shared.port(PortId(1)).tx_packets, 2, "later changes are published too");
        local.tx(PortId(1), 10);
        local.publish(&shared);
        local.publish(&shared);
        assert_eq!(shared.port(PortId(1)).tx_bytes, 170);
        assert_eq!(shared.port(PortId(0)).rx_packets, 2);
        let snap = shared.snapshot(&ifaces);
        let v0 = snap.port("v0").unwrap();
        assert_eq!((v0.rx_packets, v0.rx_bytes, v0.punts), (2, 150, 1));
        assert_eq!(v0.drop_count(DropReason::RpfFail), 1);
        assert_eq!(v0.drops.len(), DropReason::COUNT);
        assert_eq!(snap.port("v1").unwrap().tx_bytes, 170);

        let mut merged = snap.clone();
        merged.merge(&snap);
        assert_eq!(merged.port("v0").unwrap().rx_packets, 4);
        assert_eq!(merged.port("v0").unwrap().drop_count(DropReason::RpfFail), 2);
        let cleared = merged.since(&snap);
        assert_eq!(cleared.port("v0").unwrap().rx_packets, 2);

        let json = serde_json::to_string(&snap).unwrap();
        let back: StatsSnapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(back, snap);
        let prom = snap.to_prometheus();
        assert!(prom.contains("fanout_interface_rx_packets_total{interface=\"v0\"} 2\n"), "{prom}");
        assert!(
            prom.contains("fanout_interface_drops_total{interface=\"v0\",reason=\"rpf_fail\"} 1\n")
        );
    }
}
