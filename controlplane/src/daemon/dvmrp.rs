//! DVMRP in the daemon (routing mode `dvmrp`): the sans-IO [`DvmrpRouter`] driven by the event
//! loop. Its inputs are DVMRP messages (from the IGMP raw sockets), data-plane punts, IGMP
//! membership changes and timer ticks; its outputs are packets (sent on the raw sockets) and
//! `MfibUpdate`s, which this module returns to the daemon to apply to the data plane.
//!
//! Invariants: membership is handed to the core as differences (what was present for an
//! (interface, group) before and after an IGMP change), so the core sees each (S,G) membership
//! appear and disappear exactly once; route activity is reported from the data plane's
//! per-route packet counters (a counter that grew since the last look is `DataActivity`), so
//! flows that keep sending are not aged out of the forwarding cache.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::Ipv4Addr;
use std::time::Instant;

use dataplane_api::{IfIndex, MfibUpdate, Punt};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};
use wire::dvmrp::{DvmrpPacket, DvmrpRepr};

use super::backend::RouteStats;
use crate::config::DvmrpSettings;
use crate::dvmrp::{
    Action, DebugEvent, DvmrpConfig, DvmrpInterface, DvmrpRouter, DvmrpState, Event,
};
use crate::igmp::{FilterMode, MembershipChange};
use crate::timer::Timestamp;

/// Where DVMRP packets go (the raw sockets, or a test recorder).
pub trait DvmrpTx: Send {
    fn send(&mut self, ifindex: IfIndex, dst: Ipv4Addr, payload: &[u8]) -> io::Result<()>;
}

/// `show neighbors` in mode dvmrp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DvmrpData {
    pub mode: String,
    #[serde(flatten)]
    pub state: DvmrpState,
}

/// The core's configuration from the file's `[dvmrp]` section.
pub fn core_config(s: &DvmrpSettings) -> DvmrpConfig {
    DvmrpConfig {
        probe_interval: s.probe_interval,
        neighbor_timeout: s.neighbor_timeout,
        report_interval: s.report_interval,
        route_expiry: s.route_expiration,
        prune_lifetime: s.prune_lifetime,
        graft_retransmit: s.graft_retransmit,
        ..DvmrpConfig::default()
    }
}

/// The DVMRP side of the daemon's state.
pub struct DvmrpRuntime {
    router: DvmrpRouter,
    tx: Box<dyn DvmrpTx>,
    origin: Instant,
    /// What the core was last told per (interface, group): `None` = any source.
    members: BTreeMap<(IfIndex, Ipv4Addr), BTreeSet<Option<Ipv4Addr>>>,
    /// Route packet counters at the last activity scan.
    seen: BTreeMap<(Ipv4Addr, Ipv4Addr), u64>,
}

impl std::fmt::Debug for DvmrpRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DvmrpRuntime").field("members", &self.members.len()).finish_non_exhaustive()
    }
}

impl DvmrpRuntime {
    /// Creates and starts the router; returns it with the MFIB updates of the start.
    pub fn start(
        config: DvmrpConfig,
        interfaces: Vec<DvmrpInterface>,
        genid: u32,
        tx: Box<dyn DvmrpTx>,
        origin: Instant,
        now: Instant,
    ) -> (DvmrpRuntime, Vec<MfibUpdate>) {
        info!(interfaces = interfaces.len(), genid, "DVMRP starting");
        let mut rt = DvmrpRuntime {
            router: DvmrpRouter::new(config, interfaces, genid),
            tx,
            origin,
            members: BTreeMap::new(),
            seen: BTreeMap::new(),
        };
        let updates = rt.event(now, Event::Start);
        (rt, updates)
    }

    /// Feeds one event; sends what the core sends and returns its MFIB updates.
    pub fn event(&mut self, now: Instant, event: Event) -> Vec<MfibUpdate> {
        let actions = self.router.handle(Timestamp::since(self.origin, now), event);
        let mut updates = Vec::new();
        for action in actions {
            match action {
                Action::Send { ifindex, dst, msg } => {
                    if let Err(e) = self.send(ifindex, dst, &msg) {
                        warn!(ifindex = ifindex.0, %dst, "sending DVMRP: {e}");
                    }
                }
                Action::Mfib(u) => updates.push(u),
                Action::Debug(ev) => log_debug_event(&ev),
            }
        }
        updates
    }

    fn send(&mut self, ifindex: IfIndex, dst: Ipv4Addr, msg: &DvmrpRepr) -> io::Result<()> {
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.emit(&mut DvmrpPacket::new_unchecked(&mut buf[..]));
        self.tx.send(ifindex, dst, &buf)
    }

    /// Hands an IGMP membership change on `ifindex` to the core, as differences.
    pub fn membership(
        &mut self,
        now: Instant,
        ifindex: IfIndex,
        group: Ipv4Addr,
        change: &MembershipChange,
    ) -> Vec<MfibUpdate> {
        let before = self.members.remove(&(ifindex, group)).unwrap_or_default();
        let wanted = wanted_sources(change);
        let mut updates = Vec::new();
        for (source, present) in membership_diff(&before, &wanted) {
            let ev = Event::LocalMembership { ifindex, group, source, present };
            updates.extend(self.event(now, ev));
        }
        if !wanted.is_empty() {
            self.members.insert((ifindex, group), wanted);
        }
        updates
    }

    /// A punt: the first packet of an (S,G) without a route.
    pub fn punt(&mut self, now: Instant, punt: Punt) -> Vec<MfibUpdate> {
        self.event(now, Event::DataArrived(punt))
    }

    /// Reports routes whose packet counters grew since the last scan as active.
    pub fn activity(&mut self, now: Instant, routes: &[RouteStats]) -> Vec<MfibUpdate> {
        let mut updates = Vec::new();
        let mut seen = BTreeMap::new();
        for r in routes {
            let Some(source) = r.route.source else { continue };
            let key = (source, r.route.group);
            if r.packets > self.seen.get(&key).copied().unwrap_or(0) {
                updates
                    .extend(self.event(now, Event::DataActivity { source, group: r.route.group }));
            }
            seen.insert(key, r.packets);
        }
        self.seen = seen;
        updates
    }

    pub fn tick(&mut self, now: Instant) -> Vec<MfibUpdate> {
        self.event(now, Event::Tick)
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.router.next_deadline().map(|t| t.to_instant(self.origin))
    }

    pub fn snapshot(&self, now: Instant) -> DvmrpData {
        DvmrpData {
            mode: "dvmrp".into(),
            state: self.router.snapshot(Timestamp::since(self.origin, now)),
        }
    }

    /// Neighbours for the metrics gauge.
    pub fn neighbor_count(&self, now: Instant) -> usize {
        self.router.snapshot(Timestamp::since(self.origin, now)).neighbors.len()
    }
}

/// The memberships an IGMP state stands for: `None` = any source.
fn wanted_sources(change: &MembershipChange) -> BTreeSet<Option<Ipv4Addr>> {
    match change {
        MembershipChange::Joined { mode, sources }
        | MembershipChange::Changed { mode, sources } => {
            match mode {
                // EXCLUDE: any source (the core has no per-source exclusion; blocked sources
                // are still forwarded to the LAN and filtered by the hosts).
                FilterMode::Exclude => BTreeSet::from([None]),
                FilterMode::Include => sources.iter().copied().map(Some).collect(),
            }
        }
        MembershipChange::Left => BTreeSet::new(),
    }
}

/// What to tell the core to go from `before` to `after`: removals first, then additions.
fn membership_diff(
    before: &BTreeSet<Option<Ipv4Addr>>,
    after: &BTreeSet<Option<Ipv4Addr>>,
) -> Vec<(Option<Ipv4Addr>, bool)> {
    before
        .difference(after)
        .map(|s| (*s, false))
        .chain(after.difference(before).map(|s| (*s, true)))
        .collect()
}

/// One log line per protocol event worth knowing; chatty ones at debug.
fn log_debug_event(ev: &DebugEvent) {
    match ev {
        DebugEvent::NeighborUp { .. }
        | DebugEvent::NeighborTwoWay { .. }
        | DebugEvent::NeighborRestarted { .. }
        | DebugEvent::NeighborDown { .. }
        | DebugEvent::PruneSent { .. }
        | DebugEvent::PruneReceived { .. } => info!(event = ?ev, "DVMRP"),
        _ => debug!(event = ?ev, "DVMRP"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_changes_become_differences() {
        let (s1, s2) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let include = |v: &[Ipv4Addr]| MembershipChange::Changed {
            mode: FilterMode::Include,
            sources: v.to_vec(),
        };
        let any = wanted_sources(&MembershipChange::Joined {
            mode: FilterMode::Exclude,
            sources: vec![s1],
        });
        assert_eq!(any, BTreeSet::from([None]), "EXCLUDE means any source");
        assert_eq!(membership_diff(&BTreeSet::new(), &any), [(None, true)]);
        // EXCLUDE {} -> INCLUDE {s1, s2}: any-source goes, both sources come.
        let two = wanted_sources(&include(&[s1, s2]));
        assert_eq!(
            membership_diff(&any, &two),
            [(None, false), (Some(s1), true), (Some(s2), true)]
        );
        // INCLUDE {s1, s2} -> INCLUDE {s2}: only s1 goes.
        assert_eq!(membership_diff(&two, &wanted_sources(&include(&[s2]))), [(Some(s1), false)]);
        // Unchanged: nothing.
        assert!(membership_diff(&two, &two).is_empty());
        // Left: everything goes.
        assert_eq!(
            membership_diff(&two, &wanted_sources(&MembershipChange::Left)),
            [(Some(s1), false), (Some(s2), false)]
        );
    }
}
