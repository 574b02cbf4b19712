//! The multicast forwarding information base the workers read, compiled from the control plane's
//! [`MfibUpdate`] messages (defined in the `fanout-dataplane-api` crate and re-exported here).
//!
//! # Update model
//!
//! [`MfibHandle::apply`] is copy-on-write: it clones the current [`Mfib`] (cheap: entries are
//! `Arc`s), applies a whole batch of updates to the clone, and publishes it with one atomic
//! pointer swap (arc-swap). Workers load the current table once per batch and never block; a
//! worker holding an old snapshot keeps using it, unchanged, until its next batch. A batch is
//! all-or-nothing: if any update is invalid (unknown ifindex, too many oifs, ...) nothing is
//! published and the error names the offending update.
//!
//! # Invariants of a compiled table
//!
//! - Every port in an entry exists in the [`InterfaceTable`] the batch was applied with.
//! - Oif lists hold at most [`MAX_OIFS`] distinct ports and never the entry's own iif twice;
//!   next-hop lists hold at most [`MAX_NEXT_HOPS`] addresses.
//! - An overlay next hop is resolved (port + MAC) iff a neighbour for its address exists; the
//!   resolution is refreshed whenever neighbours change, so routes and neighbours may arrive in
//!   any order.
//! - Per-route counters ([`FlowCounters`]) survive re-installation of the same (S,G): DVMRP
//!   rewrites oif lists on every prune/graft and `show mroute` must not reset.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
pub use dataplane_api::{IfIndex, MfibRoute, MfibUpdate, Neighbor, Oif, OverlayRoute, Punt};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use wire::ethernet::EthernetAddress;

use crate::iface::{InterfaceTable, PortId, MAX_PORTS};

/// Most native outgoing interfaces per route (one per port).
pub const MAX_OIFS: usize = MAX_PORTS;
/// Most overlay next hops per route.
pub const MAX_NEXT_HOPS: usize = 16;

/// Why a batch of updates was rejected. `index` is the position of the offending update in
/// the batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MfibError {
    #[error("update {index}: unknown ifindex {} used as {role}", ifindex.0)]
    UnknownIfIndex { index: usize, ifindex: IfIndex, role: &'static str },
    #[error("update {index}: {group} is not a multicast group")]
    NotMulticast { index: usize, group: Ipv4Addr },
    #[error("update {index}: route for {group} lists ifindex {} twice", ifindex.0)]
    DuplicateOif { index: usize, group: Ipv4Addr, ifindex: IfIndex },
    #[error("update {index}: route for {group} has {count} oifs (max {MAX_OIFS})")]
    TooManyOifs { index: usize, group: Ipv4Addr, count: usize },
    #[error(
        "update {index}: route for {group} has {count} overlay next hops (max {MAX_NEXT_HOPS})"
    )]
    TooManyNextHops { index: usize, group: Ipv4Addr, count: usize },
}

/// A fixed-capacity list, so compiled entries have no per-entry heap allocation beyond the entry
/// itself and iteration is over a contiguous slice.
#[derive(Debug, Clone, Copy)]
pub struct FixedList<T: Copy, const N: usize> {
    len: usize,
    items: [T; N],
}

impl<T: Copy, const N: usize> FixedList<T, N> {
    fn new(fill: T) -> Self {
        Self { len: 0, items: [fill; N] }
    }

    /// Appends, or returns `false` when full.
    fn push(&mut self, item: T) -> bool {
        match self.items.get_mut(self.len) {
            Some(slot) => {
                *slot = item;
                self.len += 1;
                true
            }
            None => false,
        }
    }

    #[inline]
    pub fn as_slice(&self) -> &[T] {
        self.items.get(..self.len).unwrap_or(&[])
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A native outgoing interface, compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompiledOif {
    pub port: PortId,
    /// Copies go out only when the packet's TTL (before decrement) is above this.
    pub ttl_threshold: u8,
}

/// Where an overlay next hop is reached, from its [`Neighbor`] entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedHop {
    pub port: PortId,
    pub mac: EthernetAddress,
}

/// An overlay next hop and, if known, how to reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHop {
    pub addr: Ipv4Addr,
    pub via: Option<ResolvedHop>,
}

const NO_OIF: CompiledOif = CompiledOif { port: PortId(0), ttl_threshold: 0 };
const NO_HOP: NextHop = NextHop { addr: Ipv4Addr::UNSPECIFIED, via: None };

pub type OifList = FixedList<CompiledOif, MAX_OIFS>;
pub type NextHopList = FixedList<NextHop, MAX_NEXT_HOPS>;

/// Per-route counters shared by every worker (and every republished copy of the route).
#[derive(Debug, Default)]
pub struct FlowCounters {
    packets: AtomicU64,
    bytes: AtomicU64,
    /// Next overlay sequence number for packets this node encapsulates on this route.
    sequence: AtomicU32,
}

impl FlowCounters {
    /// Counts one forwarded packet. Relaxed: these are statistics, read without ordering needs.
    #[inline]
    pub fn record(&self, bytes: usize) {
        self.packets.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Takes the next overlay sequence number (wraps at 2^32).
    #[inline]
    pub fn next_sequence(&self) -> u32 {
        self.sequence.fetch_add(1, Ordering::Relaxed)
    }

    pub fn packets(&self) -> u64 {
        self.packets.load(Ordering::Relaxed)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// A compiled (S,G) or (*,G) route.
#[derive(Debug, Clone)]
pub struct Route {
    /// The RPF port.
    pub iif: PortId,
    pub oifs: OifList,
    pub next_hops: NextHopList,
    pub counters: Arc<FlowCounters>,
    spec: MfibRoute,
}

impl Route {
    /// The update this entry was compiled from.
    pub fn spec(&self) -> &MfibRoute {
        &self.spec
    }
}

/// A compiled overlay route, keyed by (origin, group).
#[derive(Debug, Clone)]
pub struct OverlayEntry {
    /// Required outer source (overlay RPF), if any.
    pub from: Option<Ipv4Addr>,
    pub deliver: OifList,
    pub next_hops: NextHopList,
    pub counters: Arc<FlowCounters>,
    spec: OverlayRoute,
}

impl OverlayEntry {
    pub fn spec(&self) -> &OverlayRoute {
        &self.spec
    }
}

#[derive(Debug, Clone, Copy)]
struct NeighborEntry {
    spec: Neighbor,
    port: PortId,
}

#[inline]
fn pair_key(a: Ipv4Addr, b: Ipv4Addr) -> u64 {
    (u64::from(a.to_bits()) << 32) | u64::from(b.to_bits())
}

/// One immutable version of the forwarding table.
///
/// FxHash is used for speed on the hot path. Keys are inserted by the control plane, not by
/// packets directly; a flood of distinct sources creates punts (rate-limited), not entries.
#[derive(Debug, Clone, Default)]
pub struct Mfib {
    sg: FxHashMap<u64, Arc<Route>>,
    star_g: FxHashMap<u32, Arc<Route>>,
    overlay: FxHashMap<u64, Arc<OverlayEntry>>,
    neighbors: FxHashMap<u32, NeighborEntry>,
    generation: u64,
}

/// `show mroute` view of a route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteView {
    pub route: MfibRoute,
    pub packets: u64,
    pub bytes: u64,
    /// Overlay next hops without a neighbour entry (their copies are dropped as `no_neighbor`).
    pub unresolved_next_hops: Vec<Ipv4Addr>,
}

/// `show mroute overlay` view of an overlay route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverlayRouteView {
    pub route: OverlayRoute,
    pub packets: u64,
    pub bytes: u64,
    pub unresolved_next_hops: Vec<Ipv4Addr>,
}

impl Mfib {
    /// Longest-match lookup: (S,G), then (*,G).
    #[inline]
    pub fn lookup(&self, source: Ipv4Addr, group: Ipv4Addr) -> Option<&Route> {
        self.sg
            .get(&pair_key(source, group))
            .or_else(|| self.star_g.get(&group.to_bits()))
            .map(|r| &**r)
    }

    #[inline]
    pub fn overlay_lookup(&self, origin: Ipv4Addr, group: Ipv4Addr) -> Option<&OverlayEntry> {
        self.overlay.get(&pair_key(origin, group)).map(|r| &**r)
    }

    /// A resolved neighbour.
    pub fn neighbor(&self, addr: Ipv4Addr) -> Option<(PortId, EthernetAddress)> {
        self.neighbors.get(&addr.to_bits()).map(|n| (n.port, EthernetAddress(n.spec.mac)))
    }

    /// Number of native routes ((S,G) and (*,G)).
    pub fn len(&self) -> usize {
        self.sg.len() + self.star_g.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0 && self.overlay.is_empty()
    }

    /// Incremented by every published batch.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Routes in (group, source) order, (*,G) first within a group.
    pub fn routes(&self) -> Vec<RouteView> {
        let mut out: Vec<RouteView> = self
            .star_g
            .values()
            .chain(self.sg.values())
            .map(|r| RouteView {
                route: r.spec.clone(),
                packets: r.counters.packets(),
                bytes: r.counters.bytes(),
                unresolved_next_hops: unresolved(&r.next_hops),
            })
            .collect();
        out.sort_by_key(|v| (v.route.group, v.route.source));
        out
    }

    pub fn overlay_routes(&self) -> Vec<OverlayRouteView> {
        let mut out: Vec<OverlayRouteView> = self
            .overlay
            .values()
            .map(|r| OverlayRouteView {
                route: r.spec.clone(),
                packets: r.counters.packets(),
                bytes: r.counters.bytes(),
                unresolved_next_hops: unresolved(&r.next_hops),
            })
            .collect();
        out.sort_by_key(|v| (v.route.group, v.route.origin));
        out
    }

    pub fn neighbors(&self) -> Vec<Neighbor> {
        let mut out: Vec<Neighbor> = self.neighbors.values().map(|n| n.spec).collect();
        out.sort_by_key(|n| n.addr);
        out
    }

    /// Applies a batch to this (private, unpublished) copy.
    fn apply(&mut self, updates: &[MfibUpdate], ifaces: &InterfaceTable) -> Result<(), MfibError> {
        let mut neighbors_changed = false;
        for (index, update) in updates.iter().enumerate() {
            match update {
                MfibUpdate::Install(route) => {
                    let key = route.source.map(|s| pair_key(s, route.group));
                    let old = match key {
                        Some(k) => self.sg.get(&k),
                        None => self.star_g.get(&route.group.to_bits()),
                    };
                    let counters = old.map_or_else(Arc::default, |r| Arc::clone(&r.counters));
                    let compiled = Arc::new(self.compile_route(index, route, ifaces, counters)?);
                    match key {
                        Some(k) => self.sg.insert(k, compiled),
                        None => self.star_g.insert(route.group.to_bits(), compiled),
                    };
                }
                MfibUpdate::Remove { source: Some(s), group } => {
                    self.sg.remove(&pair_key(*s, *group));
                }
                MfibUpdate::Remove { source: None, group } => {
                    self.star_g.remove(&group.to_bits());
                }
                MfibUpdate::InstallOverlay(route) => {
                    let key = pair_key(route.origin, route.group);
                    let counters = self
                        .overlay
                        .get(&key)
                        .map_or_else(Arc::default, |r| Arc::clone(&r.counters));
                    let compiled = Arc::new(self.compile_overlay(index, route, ifaces, counters)?);
                    self.overlay.insert(key, compiled);
                }
                MfibUpdate::RemoveOverlay { origin, group } => {
                    self.overlay.remove(&pair_key(*origin, *group));
                }
                MfibUpdate::SetNeighbor(n) => {
                    let port = ifaces.port_of(n.ifindex).ok_or(MfibError::UnknownIfIndex {
                        index,
                        ifindex: n.ifindex,
                        role: "neighbour interface",
                    })?;
                    self.neighbors.insert(n.addr.to_bits(), NeighborEntry { spec: *n, port });
                    neighbors_changed = true;
                }
                MfibUpdate::RemoveNeighbor { addr } => {
                    neighbors_changed |= self.neighbors.remove(&addr.to_bits()).is_some();
                }
                MfibUpdate::Flush => {
                    self.sg.clear();
                    self.star_g.clear();
                    self.overlay.clear();
                    self.neighbors.clear();
                }
            }
        }
        if neighbors_changed {
            self.reresolve();
        }
        self.generation += 1;
        Ok(())
    }

    fn compile_route(
        &self,
        index: usize,
        route: &MfibRoute,
        ifaces: &InterfaceTable,
        counters: Arc<FlowCounters>,
    ) -> Result<Route, MfibError> {
        if !route.group.is_multicast() {
            return Err(MfibError::NotMulticast { index, group: route.group });
        }
        let iif = ifaces.port_of(route.iif).ok_or(MfibError::UnknownIfIndex {
            index,
            ifindex: route.iif,
            role: "iif",
        })?;
        Ok(Route {
            iif,
            oifs: compile_oifs(index, route.group, &route.oifs, ifaces)?,
            next_hops: self.compile_next_hops(index, route.group, &route.overlay_next_hops)?,
            counters,
            spec: route.clone(),
        })
    }

    fn compile_overlay(
        &self,
        index: usize,
        route: &OverlayRoute,
        ifaces: &InterfaceTable,
        counters: Arc<FlowCounters>,
    ) -> Result<OverlayEntry, MfibError> {
        if !route.group.is_multicast() {
            return Err(MfibError::NotMulticast { index, group: route.group });
        }
        Ok(OverlayEntry {
            from: route.from,
            deliver: compile_oifs(index, route.group, &route.deliver, ifaces)?,
            next_hops: self.compile_next_hops(index, route.group, &route.next_hops)?,
            counters,
            spec: route.clone(),
        })
    }

    fn compile_next_hops(
        &self,
        index: usize,
        group: Ipv4Addr,
        hops: &[Ipv4Addr],
    ) -> Result<NextHopList, MfibError> {
        let mut list = NextHopList::new(NO_HOP);
        for addr in hops {
            if !list.push(NextHop { addr: *addr, via: self.resolve(*addr) }) {
                return Err(MfibError::TooManyNextHops { index, group, count: hops.len() });
            }
        }
        Ok(list)
    }

    fn resolve(&self, addr: Ipv4Addr) -> Option<ResolvedHop> {
        self.neighbor(addr).map(|(port, mac)| ResolvedHop { port, mac })
    }

    /// Refreshes every next hop's resolution after neighbours changed. Entries are replaced
    /// (not mutated) because published snapshots still share them.
    fn reresolve(&mut self) {
        let neighbors = self.neighbors.clone();
        let resolve = |list: &mut NextHopList| {
            for hop in list.items.iter_mut().take(list.len) {
                hop.via = neighbors
                    .get(&hop.addr.to_bits())
                    .map(|n| ResolvedHop { port: n.port, mac: EthernetAddress(n.spec.mac) });
            }
        };
        for r in self.sg.values_mut().chain(self.star_g.values_mut()) {
            if !r.next_hops.is_empty() {
                resolve(&mut Arc::make_mut(r).next_hops);
            }
        }
        for r in self.overlay.values_mut() {
            if !r.next_hops.is_empty() {
                resolve(&mut Arc::make_mut(r).next_hops);
            }
        }
    }
}

fn unresolved(list: &NextHopList) -> Vec<Ipv4Addr> {
    list.as_slice().iter().filter(|h| h.via.is_none()).map(|h| h.addr).collect()
}

fn compile_oifs(
    index: usize,
    group: Ipv4Addr,
    oifs: &[Oif],
    ifaces: &InterfaceTable,
) -> Result<OifList, MfibError> {
    let mut list = OifList::new(NO_OIF);
    for oif in oifs {
        let port = ifaces.port_of(oif.ifindex).ok_or(MfibError::UnknownIfIndex {
            index,
            ifindex: oif.ifindex,
            role: "oif",
        })?;
        if list.as_slice().iter().any(|o| o.port == port) {
            return Err(MfibError::DuplicateOif { index, group, ifindex: oif.ifindex });
        }
        if !list.push(CompiledOif { port, ttl_threshold: oif.ttl_threshold }) {
            return Err(MfibError::TooManyOifs { index, group, count: oifs.len() });
        }
    }
    Ok(list)
}

/// The shared, updatable MFIB: one writer side (the daemon applies batches) and any number of
/// readers (workers, `show` commands). Cloning shares the same table.
#[derive(Debug, Clone, Default)]
pub struct MfibHandle {
    current: Arc<ArcSwap<Mfib>>,
    // Serialises writers so two concurrent batches cannot both start from the same version and
    // lose one; readers never take it.
    writer: Arc<Mutex<()>>,
}

impl MfibHandle {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies a batch atomically (all or nothing) and publishes the result.
    pub fn apply(&self, updates: &[MfibUpdate], ifaces: &InterfaceTable) -> Result<(), MfibError> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = Mfib::clone(&self.current.load());
        next.apply(updates, ifaces)?;
        self.current.store(Arc::new(next));
        Ok(())
    }

    /// The current table; workers call this once per batch and keep the `Arc` for the batch.
    #[inline]
    pub fn load(&self) -> Arc<Mfib> {
        self.current.load_full()
    }

    pub fn routes(&self) -> Vec<RouteView> {
        self.current.load().routes()
    }

    pub fn overlay_routes(&self) -> Vec<OverlayRouteView> {
        self.current.load().overlay_routes()
    }

    pub fn neighbors(&self) -> Vec<Neighbor> {
        self.current.load().neighbors()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iface::Interface;

    fn ifaces(n: u32) -> InterfaceTable {
        let mut t = InterfaceTable::new();
        for i in 0..n {
            t.add(Interface {
                ifindex: IfIndex(10 + i),
                name: format!("v{i}"),
                mac: EthernetAddress([2, 0, 0, 0, 0, i as u8]),
                ipv4: Ipv4Addr::new(10, 0, i as u8, 1),
                mtu: 1500,
            })
            .unwrap();
        }
        t
    }

    fn oif(i: u32) -> Oif {
        Oif { ifindex: IfIndex(i), ttl_threshold: 1 }
    }

    fn route(source: Option<[u8; 4]>, group: [u8; 4], iif: u32, oifs: &[u32]) -> MfibRoute {
        MfibRoute {
            source: source.map(Ipv4Addr::from),
            group: Ipv4Addr::from(group),
            iif: IfIndex(iif),
            oifs: oifs.iter().map(|i| oif(*i)).collect(),
            overlay_next_hops: vec![],
        }
    }

    const S: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);
    const G: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 1);

    #[test]
    fn sg_wins_over_star_g_and_star_g_is_the_fallback() {
        let t = ifaces(3);
        let h = MfibHandle::new();
        h.apply(
            &[
                MfibUpdate::Install(route(None, [239, 1, 1, 1], 11, &[12])),
                MfibUpdate::Install(route(Some([10, 0, 0, 5]), [239, 1, 1, 1], 10, &[11, 12])),
            ],
            &t,
        )
        .unwrap();
        let m = h.load();
        assert_eq!(m.lookup(S, G).unwrap().iif, PortId(0));
        assert_eq!(m.lookup(S, G).unwrap().oifs.len(), 2);
        assert_eq!(m.lookup(Ipv4Addr::new(10, 9, 9, 9), G).unwrap().iif, PortId(1));
        assert!(m.lookup(S, Ipv4Addr::new(239, 1, 1, 2)).is_none());
        assert_eq!(m.len(), 2);
        assert_eq!(h.routes().len(), 2);
        assert_eq!(h.routes()[0].route.source, None, "(*,G) sorts first");
    }

    #[test]
    fn bad_batch_names_the_problem_and_publishes_nothing() {
        let t = ifaces(2);
        let h = MfibHandle::new();
        let err = h
            .apply(
                &[
                    MfibUpdate::Install(route(None, [239, 1, 1, 1], 10, &[11])),
                    MfibUpdate::Install(route(None, [239, 1, 1, 2], 10, &[99])),
                ],
                &t,
            )
            .unwrap_err();
        assert_eq!(err, MfibError::UnknownIfIndex { index: 1, ifindex: IfIndex(99), role: "oif" });
        assert!(err.to_string().contains("99"), "{err}");
        assert!(h.load().is_empty(), "a rejected batch must not be half applied");
        assert_eq!(h.load().generation(), 0);

        let e = h.apply(&[MfibUpdate::Install(route(None, [10, 1, 1, 1], 10, &[]))], &t);
        assert!(matches!(e, Err(MfibError::NotMulticast { .. })));
        let e = h.apply(&[MfibUpdate::Install(route(None, [239, 1, 1, 1], 7, &[]))], &t);
        assert!(matches!(e, Err(MfibError::UnknownIfIndex { role: "iif", .. })));
        let e = h.apply(&[MfibUpdate::Install(route(None, [239, 1, 1, 1], 10, &[11, 11]))], &t);
        assert!(matches!(e, Err(MfibError::DuplicateOif { .. })));
        let mut many = route(None, [239, 1, 1, 1], 10, &[]);
        many.overlay_next_hops =
            (0..=MAX_NEXT_HOPS as u32).map(|i| Ipv4Addr::from(0x0a00_0000 + i)).collect();
        let e = h.apply(&[MfibUpdate::Install(many)], &t);
        assert!(matches!(e, Err(MfibError::TooManyNextHops { count: 17, .. })));
        let e = h.apply(
            &[MfibUpdate::SetNeighbor(Neighbor { addr: S, ifindex: IfIndex(5), mac: [0; 6] })],
            &t,
        );
        assert!(matches!(e, Err(MfibError::UnknownIfIndex { role: "neighbour interface", .. })));
    }

    #[test]
    fn reader_keeps_its_snapshot_while_a_writer_publishes() {
        let t = ifaces(3);
        let h = MfibHandle::new();
        h.apply(&[MfibUpdate::Install(route(Some([10, 0, 0, 5]), [239, 1, 1, 1], 10, &[11]))], &t)
            .unwrap();
        let old = h.load();
        let writer = h.clone();
        std::thread::spawn(move || {
            writer
                .apply(
                    &[
                        MfibUpdate::Remove { source: Some(S), group: G },
                        MfibUpdate::Install(route(None, [239, 2, 2, 2], 12, &[10])),
                    ],
                    &t,
                )
                .unwrap();
        })
        .join()
        .unwrap();
        assert_eq!(old.lookup(S, G).map(|r| r.oifs.len()), Some(1), "old snapshot unchanged");
        let new = h.load();
        assert!(new.lookup(S, G).is_none());
        assert!(new.lookup(S, Ipv4Addr::new(239, 2, 2, 2)).is_some());
        assert_eq!(new.generation(), old.generation() + 1);
    }

    #[test]
    fn counters_survive_reinstall_and_neighbours_resolve_in_any_order() {
        let t = ifaces(3);
        let h = MfibHandle::new();
        let nh = Ipv4Addr::new(10, 0, 2, 9);
        let mut route = route(Some([10, 0, 0, 5]), [239, 1, 1, 1], 10, &[11]);
        route.overlay_next_hops = vec![nh];
        h.apply(&[MfibUpdate::Install(route.clone())], &t).unwrap();
        assert_eq!(h.routes()[0].unresolved_next_hops, vec![nh]);
        h.load().lookup(S, G).unwrap().counters.record(100);
        h.apply(
            &[MfibUpdate::SetNeighbor(Neighbor {
                addr: nh,
                ifindex: IfIndex(12),
                mac: [2, 9, 9, 9, 9, 9],
            })],
            &t,
        )
        .unwrap();
        let m = h.load();
        let hop = m.lookup(S, G).unwrap().next_hops.as_slice()[0];
        assert_eq!(
            hop.via,
            Some(ResolvedHop { port: PortId(2), mac: EthernetAddress([2, 9, 9, 9, 9, 9]) })
        );
        route.oifs.clear();
        h.apply(&[MfibUpdate::Install(route)], &t).unwrap();
        let v = &h.routes()[0];
        assert_eq!((v.packets, v.bytes), (1, 100));
        assert!(v.unresolved_next_hops.is_empty());
        h.apply(&[MfibUpdate::RemoveNeighbor { addr: nh }], &t).unwrap();
        assert_eq!(h.routes()[0].unresolved_next_hops, vec![nh]);
        assert_eq!(
            m.lookup(S, G).unwrap().next_hops.as_slice()[0].via.map(|v| v.port),
            Some(PortId(2))
        );
        h.apply(&[MfibUpdate::Flush], &t).unwrap();
        assert!(h.load().is_empty());
        assert!(h.neighbors().is_empty());
    }

    #[test]
    fn overlay_routes_compile_and_look_up() {
        let t = ifaces(2);
        let h = MfibHandle::new();
        let origin = Ipv4Addr::new(10, 9, 0, 1);
        let ov = OverlayRoute {
            origin,
            group: G,
            from: Some(Ipv4Addr::new(10, 0, 0, 2)),
            deliver: vec![oif(11)],
            next_hops: vec![],
        };
        h.apply(&[MfibUpdate::InstallOverlay(ov.clone())], &t).unwrap();
        let m = h.load();
        let e = m.overlay_lookup(origin, G).unwrap();
        assert_eq!(e.deliver.as_slice(), &[CompiledOif { port: PortId(1), ttl_threshold: 1 }]);
        assert!(m.overlay_lookup(G, origin).is_none(), "key order matters");
        assert_eq!(h.overlay_routes()[0].route, ov);
        h.apply(&[MfibUpdate::RemoveOverlay { origin, group: G }], &t).unwrap();
        assert!(h.overlay_routes().is_empty());
    }
}
