//! DVMRP flood-and-prune routing (draft-ietf-idmr-dvmrp-v3-11, as mrouted speaks it), as a
//! sans-IO core: [`DvmrpRouter::handle`] takes the current [`Timestamp`] and one [`Event`] and
//! returns the [`Action`]s to perform (packets to send, MFIB updates for the data plane, typed
//! debug events). It reads no clock, owns no socket and uses no randomness: the daemon passes a
//! fresh generation id to [`DvmrpRouter::new`] on every start, calls
//! [`DvmrpRouter::next_deadline`] and delivers [`Event::Tick`] when it is due.
//!
//! ```text
//!   Received{probe}  ──> neighbor.rs  (adjacency, genid restarts, 35 s timeout)
//!   Received{report} ──> route.rs     (RPF table: best path, DF per LAN, dependents)
//!   DataArrived/prune/graft/membership ──> prune.rs (forwarding cache per (origin net, G))
//!                                     └──> Action::Mfib(Install/Remove) per (S,G)
//! ```
//!
//! Invariants:
//! * A neighbour exists only after a probe with the prune capability; reports are accepted only
//!   from two-way neighbours (their probe lists our address on that interface).
//! * Every route's best path is a pure function of its connected interface and the reports
//!   heard for it ([`route`]); the forwarding cache is re-derived from routes, prunes and local
//!   membership after every input ([`prune`]), so MFIB updates are emitted only on change.
//! * Prune state is kept per (source network, group), as mrouted does; MFIB routes are per
//!   concrete source, all sharing the entry's iif and (membership aside) oifs.
//! * Nothing here panics on peer input: bad input becomes [`DebugEvent::Ignored`].

mod debug;
mod neighbor;
mod prune;
mod route;
mod serde_wire;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use dataplane_api::{IfIndex, MfibUpdate, Oif, Punt};
use serde::{Deserialize, Serialize};
use wire::dvmrp::{DvmrpRepr, Message, CAP_GENID, CAP_PRUNE};

pub use debug::{DebugEvent, IgnoreReason, NeighborDownReason};
pub use neighbor::NeighborState;
pub use prune::{GraftState, MrouteState, PrunedInterface, UpstreamPruneState};
pub use route::{DependentState, ForwarderState, RouteState};

use crate::timer::{earliest, Timer, Timestamp};
use neighbor::Neighbor;
use prune::{CacheEntry, SgKey};
use route::{Route, RouteKey};

/// mrouted's minor version for "speaks the v3 draft" (dvmrp.md §Framing).
pub const MINOR_VERSION: u8 = 0xff;
pub const MAJOR_VERSION: u8 = 3;
/// Prunes with this lifetime or less are ignored (draft §3.5.5; mrouted does the same).
pub const MIN_PRUNE_LIFETIME: u32 = 5;

/// Timers and knobs; the defaults are the draft's and mrouted's. Durations serialise as
/// milliseconds, like the IGMP core's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DvmrpConfig {
    #[serde(with = "crate::timer::serde_millis")]
    pub probe_interval: Duration,
    #[serde(with = "crate::timer::serde_millis")]
    pub neighbor_timeout: Duration,
    #[serde(with = "crate::timer::serde_millis")]
    pub report_interval: Duration,
    /// Changes are reported this long after the first of them, coalesced into one report
    /// (the draft allows up to 5 s; 1 s keeps dependents, and so forwarding, converging fast).
    /// A move from one reachable upstream to another is reported at once.
    #[serde(with = "crate::timer::serde_millis")]
    pub triggered_report_delay: Duration,
    /// A route not refreshed for this long becomes unreachable (advertised with metric 32)...
    #[serde(with = "crate::timer::serde_millis")]
    pub route_expiry: Duration,
    /// ...and is deleted this long after its last refresh.
    #[serde(with = "crate::timer::serde_millis")]
    pub route_deletion: Duration,
    /// Lifetime of the prunes we send (upper bound; lowered to the shortest downstream prune).
    #[serde(with = "crate::timer::serde_millis")]
    pub prune_lifetime: Duration,
    /// First graft retransmission delay; doubled per attempt up to `graft_retransmit_max`.
    #[serde(with = "crate::timer::serde_millis")]
    pub graft_retransmit: Duration,
    #[serde(with = "crate::timer::serde_millis")]
    pub graft_retransmit_max: Duration,
    /// A forwarding cache entry with no data activity and no prune state for this long is
    /// removed (and its MFIB routes with it).
    #[serde(with = "crate::timer::serde_millis")]
    pub cache_idle_timeout: Duration,
    /// The capability byte we send. Prune and genid are what we implement; mtrace (0x08) is not
    /// claimed because mtrace is not answered.
    pub capabilities: u8,
}

impl Default for DvmrpConfig {
    fn default() -> Self {
        DvmrpConfig {
            probe_interval: Duration::from_secs(10),
            neighbor_timeout: Duration::from_secs(35),
            report_interval: Duration::from_secs(60),
            triggered_report_delay: Duration::from_secs(1),
            route_expiry: Duration::from_secs(200),
            route_deletion: Duration::from_secs(340),
            prune_lifetime: Duration::from_secs(7200),
            graft_retransmit: Duration::from_secs(5),
            graft_retransmit_max: Duration::from_secs(40),
            cache_idle_timeout: Duration::from_secs(210),
            capabilities: CAP_PRUNE | CAP_GENID,
        }
    }
}

/// One DVMRP-speaking interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DvmrpInterface {
    pub ifindex: IfIndex,
    /// Our address on the interface's subnet: the source of our packets and our identity in
    /// neighbours' probes and DF elections.
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
    /// Cost added to routes learned here (1 on a normal link).
    pub metric: u8,
    /// TTL threshold for forwarding out of this interface (1 = any forwardable packet).
    pub threshold: u8,
}

/// Inputs of the core (serde-serialisable, so inputs can be recorded and replayed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Event {
    /// Begin: install connected routes, probe every interface.
    Start,
    /// Shut down: advertise every route with metric 32 and remove our MFIB routes.
    Stop,
    /// Time has passed; run the timers that are due.
    Tick,
    /// A DVMRP message arrived on `ifindex` from `src` (the IP source address).
    Received {
        ifindex: IfIndex,
        src: Ipv4Addr,
        #[serde(with = "serde_wire::DvmrpReprDef")]
        msg: DvmrpRepr,
    },
    InterfaceUp {
        ifindex: IfIndex,
    },
    InterfaceDown {
        ifindex: IfIndex,
    },
    /// Local membership from IGMP: `source: None` is any-source (EXCLUDE {}) membership,
    /// `Some(s)` a source-specific one (INCLUDE {s}).
    LocalMembership {
        ifindex: IfIndex,
        group: Ipv4Addr,
        source: Option<Ipv4Addr>,
        present: bool,
    },
    /// The data plane punted the first packet of an (S,G) it has no route for.
    DataArrived(Punt),
    /// The data plane saw traffic for (S,G) since the last such event (keeps the cache alive).
    DataActivity {
        source: Ipv4Addr,
        group: Ipv4Addr,
    },
}

/// Outputs of the core.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Send `msg` out of `ifindex` to `dst` (224.0.0.4 for probes and reports, the neighbour
    /// for prunes, grafts and graft-acks), from the interface's address, TTL 1.
    Send {
        ifindex: IfIndex,
        dst: Ipv4Addr,
        #[serde(with = "serde_wire::DvmrpReprDef")]
        msg: DvmrpRepr,
    },
    Mfib(MfibUpdate),
    Debug(DebugEvent),
}

/// Snapshot for `fanoutctl show neighbors|routes|mroute`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DvmrpState {
    pub genid: u32,
    pub neighbors: Vec<NeighborState>,
    pub routes: Vec<RouteState>,
    pub mroutes: Vec<MrouteState>,
}

#[derive(Debug, Clone)]
struct Iface {
    cfg: DvmrpInterface,
    up: bool,
}

/// The DVMRP protocol instance of one router.
#[derive(Debug)]
pub struct DvmrpRouter {
    config: DvmrpConfig,
    genid: u32,
    started: bool,
    /// The `now` of the last input: deadlines already in the past are not reported again.
    last_now: Timestamp,
    ifaces: BTreeMap<IfIndex, Iface>,
    neighbors: BTreeMap<(IfIndex, Ipv4Addr), Neighbor>,
    routes: BTreeMap<RouteKey, Route>,
    /// Poison-reverse reports for origins we have no route to (yet): who will depend on us once
    /// we learn them. Not routes (an origin we cannot reach is never advertised); merged into
    /// the route when it is created, purged with the neighbour or when stale.
    pending_poison: BTreeMap<RouteKey, BTreeMap<(IfIndex, Ipv4Addr), route::Heard>>,
    /// (ifindex, group, source) local memberships; `None` = any source.
    members: BTreeSet<(IfIndex, Ipv4Addr, Option<Ipv4Addr>)>,
    cache: BTreeMap<SgKey, CacheEntry>,
    probe_timer: Timer,
    report_timer: Timer,
    triggered_timer: Timer,
    /// Routes changed since the last report, sent by the triggered report.
    changed: BTreeSet<RouteKey>,
}

impl DvmrpRouter {
    /// A stopped router; deliver [`Event::Start`] to begin. `genid` must differ from the one
    /// used by the previous run (neighbours detect our restart by it).
    pub fn new(config: DvmrpConfig, interfaces: Vec<DvmrpInterface>, genid: u32) -> DvmrpRouter {
        let ifaces =
            interfaces.into_iter().map(|cfg| (cfg.ifindex, Iface { cfg, up: true })).collect();
        DvmrpRouter {
            config,
            genid,
            started: false,
            last_now: Timestamp::ZERO,
            ifaces,
            neighbors: BTreeMap::new(),
            routes: BTreeMap::new(),
            pending_poison: BTreeMap::new(),
            members: BTreeSet::new(),
            cache: BTreeMap::new(),
            probe_timer: Timer::STOPPED,
            report_timer: Timer::STOPPED,
            triggered_timer: Timer::STOPPED,
            changed: BTreeSet::new(),
        }
    }

    pub fn config(&self) -> &DvmrpConfig {
        &self.config
    }

    pub fn genid(&self) -> u32 {
        self.genid
    }

    /// Processes one event at time `now` (which must not go backwards) and returns what to do.
    pub fn handle(&mut self, now: Timestamp, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        self.last_now = self.last_now.max(now);
        let now = self.last_now;
        match event {
            Event::Start => self.start(now, &mut out),
            Event::Stop => self.stop(&mut out),
            _ if !self.started => {
                out.push(ignored(None, None, IgnoreReason::NotStarted));
            }
            Event::Tick => self.tick(now, &mut out),
            Event::Received { ifindex, src, msg } => self.receive(now, ifindex, src, msg, &mut out),
            Event::InterfaceUp { ifindex } => self.interface_up(now, ifindex, &mut out),
            Event::InterfaceDown { ifindex } => self.interface_down(now, ifindex, &mut out),
            Event::LocalMembership { ifindex, group, source, present } => {
                let key = (ifindex, group, source);
                if present {
                    self.members.insert(key);
                } else {
                    self.members.remove(&key);
                }
                self.reconcile_all(now, &mut out);
            }
            Event::DataArrived(punt) => self.data_arrived(now, punt, &mut out),
            Event::DataActivity { source, group } => self.data_activity(now, source, group),
        }
        out
    }

    /// When [`Event::Tick`] must be delivered next (`None`: nothing scheduled).
    pub fn next_deadline(&self) -> Option<Timestamp> {
        if !self.started {
            return None;
        }
        let after_now = |t: Option<Timestamp>| t.filter(|t| *t > self.last_now);
        earliest([
            self.probe_timer.deadline(),
            self.report_timer.deadline(),
            self.triggered_timer.deadline(),
            self.neighbors.values().filter_map(|n| n.expires.deadline()).min(),
            after_now(
                self.routes
                    .values()
                    .filter_map(|r| r.next_deadline(&self.config, self.last_now))
                    .min(),
            ),
            self.cache.values().filter_map(|e| e.next_deadline(&self.config)).min(),
        ])
    }

    /// The state for `fanoutctl show`.
    pub fn snapshot(&self, now: Timestamp) -> DvmrpState {
        DvmrpState {
            genid: self.genid,
            neighbors: self.neighbors.values().map(|n| n.snapshot(now)).collect(),
            routes: self.routes.values().map(|r| self.route_snapshot(r, now)).collect(),
            mroutes: self.cache.iter().map(|(k, e)| e.snapshot(k, now)).collect(),
        }
    }

    fn header(&self, message: Message) -> DvmrpRepr {
        header(self.config.capabilities, message)
    }

    fn iface_up(&self, ifindex: IfIndex) -> Option<&DvmrpInterface> {
        self.ifaces.get(&ifindex).filter(|i| i.up).map(|i| &i.cfg)
    }

    fn is_own_addr(&self, addr: Ipv4Addr) -> bool {
        self.ifaces.values().any(|i| i.cfg.addr == addr)
    }

    fn start(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        if self.started {
            return;
        }
        self.started = true;
        for iface in self.ifaces.values().filter(|i| i.up).map(|i| i.cfg).collect::<Vec<_>>() {
            self.add_connected(now, iface);
        }
        self.recompute_routes(now, out);
        self.send_probes(out);
        self.probe_timer.start(now, self.config.probe_interval);
        self.report_timer.start(now, self.config.report_interval);
        // Nobody listens yet; the first full report goes out per neighbour as it becomes two-way.
        self.changed.clear();
        self.triggered_timer.stop();
    }

    fn stop(&mut self, out: &mut Vec<Action>) {
        if !self.started {
            return;
        }
        // Poison everything so neighbours stop depending on us at once instead of in 200 s.
        let keys: Vec<RouteKey> = self.routes.keys().copied().collect();
        for ifindex in self.ifaces_with_neighbors() {
            for msg in self.build_reports(ifindex, &keys, true) {
                out.push(Action::Send { ifindex, dst: wire::dvmrp::ALL_DVMRP_ROUTERS, msg });
            }
        }
        for (key, entry) in std::mem::take(&mut self.cache) {
            for (source, installed) in entry.sources {
                if installed.is_some() {
                    out.push(Action::Mfib(MfibUpdate::Remove {
                        source: Some(source),
                        group: key.group,
                    }));
                }
            }
        }
        self.neighbors.clear();
        self.routes.clear();
        self.changed.clear();
        self.probe_timer.stop();
        self.report_timer.stop();
        self.triggered_timer.stop();
        self.started = false;
    }

    fn tick(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        self.expire_neighbors(now, out);
        self.recompute_routes(now, out);
        self.expire_cache(now, out);
        self.reconcile_all(now, out);
        if self.probe_timer.take_expired(now) {
            self.send_probes(out);
            self.probe_timer.start(now, self.config.probe_interval);
        }
        if self.report_timer.take_expired(now) {
            let keys: Vec<RouteKey> = self.routes.keys().copied().collect();
            self.send_reports(&keys, out);
            self.report_timer.start(now, self.config.report_interval);
            // The full report carried every change.
            self.changed.clear();
            self.triggered_timer.stop();
        }
        if self.triggered_timer.take_expired(now) {
            let keys: Vec<RouteKey> = std::mem::take(&mut self.changed).into_iter().collect();
            self.send_reports(&keys, out);
        }
    }

    fn receive(
        &mut self,
        now: Timestamp,
        ifindex: IfIndex,
        src: Ipv4Addr,
        msg: DvmrpRepr,
        out: &mut Vec<Action>,
    ) {
        let Some(iface) = self.ifaces.get(&ifindex) else {
            out.push(ignored(Some(ifindex), Some(src), IgnoreReason::UnknownInterface));
            return;
        };
        if !iface.up {
            out.push(ignored(Some(ifindex), Some(src), IgnoreReason::InterfaceDown));
            return;
        }
        if self.is_own_addr(src) {
            out.push(ignored(Some(ifindex), Some(src), IgnoreReason::OwnPacket));
            return;
        }
        let capabilities = msg.capabilities;
        match msg.message {
            Message::Probe { generation_id, neighbors } => {
                self.receive_probe(
                    now,
                    ifindex,
                    src,
                    capabilities,
                    (msg.major, msg.minor),
                    generation_id,
                    &neighbors,
                    out,
                );
            }
            Message::Report { blocks } => self.receive_report(now, ifindex, src, &blocks, out),
            Message::Prune { source, group, lifetime, .. } => {
                self.receive_prune(now, ifindex, src, source, group, lifetime, out);
            }
            Message::Graft { source, group } => {
                self.receive_graft(now, ifindex, src, source, group, out);
            }
            Message::GraftAck { source, group } => {
                self.receive_graft_ack(now, ifindex, src, source, group, out);
            }
            Message::Other { code, .. } => {
                out.push(ignored(Some(ifindex), Some(src), IgnoreReason::UnsupportedCode { code }));
            }
        }
    }

    fn interface_up(&mut self, now: Timestamp, ifindex: IfIndex, out: &mut Vec<Action>) {
        let Some(iface) = self.ifaces.get_mut(&ifindex) else {
            out.push(ignored(Some(ifindex), None, IgnoreReason::UnknownInterface));
            return;
        };
        if iface.up {
            return;
        }
        iface.up = true;
        let cfg = iface.cfg;
        self.add_connected(now, cfg);
        self.recompute_routes(now, out);
        self.send_probe(ifindex, out);
        self.reconcile_all(now, out);
    }

    fn interface_down(&mut self, now: Timestamp, ifindex: IfIndex, out: &mut Vec<Action>) {
        let Some(iface) = self.ifaces.get_mut(&ifindex) else {
            out.push(ignored(Some(ifindex), None, IgnoreReason::UnknownInterface));
            return;
        };
        if !iface.up {
            return;
        }
        iface.up = false;
        let gone: Vec<(IfIndex, Ipv4Addr)> =
            self.neighbors.keys().filter(|(i, _)| *i == ifindex).copied().collect();
        for key in gone {
            self.remove_neighbor(key, NeighborDownReason::InterfaceDown, out);
        }
        self.recompute_routes(now, out);
        self.reconcile_all(now, out);
    }

    fn ifaces_with_neighbors(&self) -> Vec<IfIndex> {
        let set: BTreeSet<IfIndex> = self
            .neighbors
            .keys()
            .map(|(i, _)| *i)
            .filter(|i| self.iface_up(*i).is_some())
            .collect();
        set.into_iter().collect()
    }

    fn oif(&self, ifindex: IfIndex) -> Option<Oif> {
        self.iface_up(ifindex).map(|c| Oif { ifindex, ttl_threshold: c.threshold })
    }
}

fn header(capabilities: u8, message: Message) -> DvmrpRepr {
    DvmrpRepr { capabilities, minor: MINOR_VERSION, major: MAJOR_VERSION, message }
}

fn ignored(ifindex: Option<IfIndex>, from: Option<Ipv4Addr>, reason: IgnoreReason) -> Action {
    Action::Debug(DebugEvent::Ignored { ifindex, from, reason })
}

/// Whole seconds left until `at`, for snapshots.
fn secs_until(now: Timestamp, at: Timestamp) -> u64 {
    at.saturating_duration_since(now).as_secs()
}
