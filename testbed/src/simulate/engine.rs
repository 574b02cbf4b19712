//! The discrete-event engine: a priority queue of (time, sequence, event) driving one real
//! protocol core per simulated router ([`DvmrpRouter`] or [`LinkStateRouter`]), plus the simulated data plane (one MFIB per router)
//! that forwards data packets hop by hop and counts copies per link.
//!
//! Invariants:
//! - Events are processed in (time, insertion order); a link delays every message and data
//!   packet by its cost in milliseconds, so equal inputs always give equal runs.
//! - A router's MFIB changes only through the `MfibUpdate`s its core emits (or, for modes
//!   without a core, through [`Engine::install`]): the simulated MFIB *is* the router state.
//! - Every run is bounded by a simulated-time limit and an event-count limit.
//! - `data_in_flight` counts the queued `SimEvent::Data`s exactly, so a measurement can wait
//!   until the last packet's copies have all arrived ([`Engine::run_until_drained`]).
//!
//! Addressing: link `l` is 10.0.0.0/8 + 4·l as a /30 (side `a` .1, side `b` .2); stub LAN `s`
//! (a host access link) is 172.16.0.0/12 + 4·s as a /30 (router .1, host .2). Stub 0 is the
//! source's; stub `j + 1` is member `j`'s. A router's ifindexes are 1.. for its links in link
//! order, then its stubs.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::Ipv4Addr;

use controlplane::dvmrp::{Action, DvmrpConfig, DvmrpInterface, DvmrpRouter, Event};
use controlplane::linkstate::{
    self as ls, DebugEvent as LsDebug, LinkStateConfig, LinkStateRouter, LsInterface,
};
use controlplane::timer::Timestamp;
use dataplane_api::{IfIndex, MfibRoute, MfibUpdate, Punt};

use super::topo::SimTopology;
use super::SimError;

/// What an interface connects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortKind {
    Link(usize),
    Stub(usize),
}

#[derive(Debug, Clone, Copy)]
pub struct Port {
    pub kind: PortKind,
    pub addr: Ipv4Addr,
    /// (router, its ifindex, its address) at the far end of a link; `None` on a stub.
    pub peer: Option<(usize, IfIndex, Ipv4Addr)>,
    pub cost: u32,
}

/// Interfaces and addresses of every router.
#[derive(Debug, Clone)]
pub struct Net {
    /// Per router, indexed by ifindex - 1.
    pub ports: Vec<Vec<Port>>,
    /// Per stub: (router, ifindex on it).
    pub stubs: Vec<(usize, IfIndex)>,
}

const LINK_BASE: u32 = 10 << 24;
const STUB_BASE: u32 = (172 << 24) | (16 << 16);

/// The address of the host on stub `s` (the source's address for stub 0).
pub fn stub_host_addr(s: usize) -> Ipv4Addr {
    Ipv4Addr::from(STUB_BASE + 4 * s as u32 + 2)
}

impl Net {
    /// `stub_routers[s]` is the router stub `s` hangs off.
    pub fn new(topo: &SimTopology, stub_routers: &[usize]) -> Result<Net, SimError> {
        if topo.links.len() >= 1 << 22 {
            return Err(SimError::TooLarge(format!("{} links (max 4194303)", topo.links.len())));
        }
        if stub_routers.len() >= 1 << 18 {
            return Err(SimError::TooLarge(format!("{} stubs (max 262143)", stub_routers.len())));
        }
        let mut ports: Vec<Vec<Port>> = vec![Vec::new(); topo.len()];
        // Ifindexes first, so that peers can be named.
        let mut if_of_link = vec![(IfIndex(0), IfIndex(0)); topo.links.len()];
        for r in 0..topo.len() {
            for (k, &(_, l)) in topo.neighbors(r).iter().enumerate() {
                let ifx = IfIndex(k as u32 + 1);
                if topo.links[l].a == r {
                    if_of_link[l].0 = ifx;
                } else {
                    if_of_link[l].1 = ifx;
                }
            }
        }
        let link_addr = |l: usize, side_b: bool| {
            Ipv4Addr::from(LINK_BASE + 4 * l as u32 + 1 + u32::from(side_b))
        };
        for (r, ports_r) in ports.iter_mut().enumerate() {
            for &(peer, l) in topo.neighbors(r) {
                let link = topo.links[l];
                let we_are_b = link.b == r;
                let peer_if = if we_are_b { if_of_link[l].0 } else { if_of_link[l].1 };
                ports_r.push(Port {
                    kind: PortKind::Link(l),
                    addr: link_addr(l, we_are_b),
                    peer: Some((peer, peer_if, link_addr(l, !we_are_b))),
                    cost: link.cost,
                });
            }
        }
        let mut stubs = Vec::with_capacity(stub_routers.len());
        for (s, &r) in stub_routers.iter().enumerate() {
            if r >= topo.len() {
                return Err(SimError::Topology(format!("stub {s} on missing router {r}")));
            }
            ports[r].push(Port {
                kind: PortKind::Stub(s),
                addr: Ipv4Addr::from(STUB_BASE + 4 * s as u32 + 1),
                peer: None,
                cost: 0,
            });
            stubs.push((r, IfIndex(ports[r].len() as u32)));
        }
        Ok(Net { ports, stubs })
    }

    pub fn port(&self, router: usize, ifindex: IfIndex) -> Option<&Port> {
        (ifindex.0 as usize).checked_sub(1).and_then(|i| self.ports[router].get(i))
    }

    /// The ifindex of `router` on link `l`.
    pub fn ifindex_on_link(&self, router: usize, l: usize) -> Option<IfIndex> {
        self.ports[router]
            .iter()
            .position(|p| p.kind == PortKind::Link(l))
            .map(|i| IfIndex(i as u32 + 1))
    }
}

/// The protocol instance of every router, one kind per run.
#[derive(Debug)]
enum Cores {
    None,
    Dvmrp(Vec<DvmrpRouter>),
    Linkstate(Vec<LinkStateRouter>),
}

/// An input for one router's core.
#[derive(Debug)]
enum CoreEvent {
    Dvmrp(Event),
    Linkstate(ls::Event),
}

#[derive(Debug)]
enum SimEvent {
    Core { router: usize, event: CoreEvent },
    Tick { router: usize },
    Data { router: usize, iif: IfIndex, packet: usize, cost: u64 },
}

#[derive(Debug)]
struct Queued {
    at: u64,
    seq: u64,
    ev: SimEvent,
}

impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// Per-packet observations of the data plane.
#[derive(Debug, Clone, Default)]
pub struct PacketTrace {
    /// Copies per link.
    pub link_copies: Vec<u32>,
    /// Copies per stub (host access link); stub 0's is the source's own transmission.
    pub stub_copies: Vec<u32>,
    /// Per member: router-to-router path cost of the first copy received.
    pub delivered: Vec<Option<u64>>,
    /// Copies received beyond the first, over all members.
    pub duplicates: u64,
    /// Copies dropped by the RPF (iif) check.
    pub rpf_drops: u64,
}

/// The engine. `cores` is `Cores::None` for modes whose routes are installed directly.
#[derive(Debug)]
pub struct Engine<'t> {
    topo: &'t SimTopology,
    pub net: Net,
    cores: Cores,
    pub mfib: Vec<BTreeMap<(Option<Ipv4Addr>, Ipv4Addr), MfibRoute>>,
    queue: BinaryHeap<Reverse<Queued>>,
    seq: u64,
    now: u64,
    scheduled_tick: Vec<Option<u64>>,
    pub group: Ipv4Addr,
    pub packets: Vec<PacketTrace>,
    pub control_msgs: u64,
    pub control_bytes: u64,
    /// Control messages and bytes sent before the first data packet (the warm-up).
    pub warmup_control: Option<(u64, u64)>,
    /// Simulated time of the last database change of any core (link-state: an LSA installed
    /// or flushed).
    pub last_change_ms: Option<u64>,
    pub events: u64,
    pub max_events: u64,
    /// Queued `SimEvent::Data`s (copies on a link or the source's first hop).
    data_in_flight: u64,
}

impl<'t> Engine<'t> {
    /// An engine over `topo` with stubs at `stub_routers` (stub 0 = source, then members).
    pub fn new(
        topo: &'t SimTopology,
        stub_routers: &[usize],
        group: Ipv4Addr,
        max_events: u64,
    ) -> Result<Self, SimError> {
        let net = Net::new(topo, stub_routers)?;
        Ok(Engine {
            topo,
            mfib: vec![BTreeMap::new(); topo.len()],
            scheduled_tick: vec![None; topo.len()],
            net,
            cores: Cores::None,
            queue: BinaryHeap::new(),
            seq: 0,
            now: 0,
            group,
            packets: Vec::new(),
            control_msgs: 0,
            control_bytes: 0,
            warmup_control: None,
            last_change_ms: None,
            events: 0,
            max_events,
            data_in_flight: 0,
        })
    }

    pub fn now_ms(&self) -> u64 {
        self.now
    }

    fn push(&mut self, at: u64, ev: SimEvent) {
        if matches!(ev, SimEvent::Data { .. }) {
            self.data_in_flight += 1;
        }
        self.seq += 1;
        self.queue.push(Reverse(Queued { at, seq: self.seq, ev }));
    }

    /// Creates one DVMRP core per router, starts them at the current time and registers the
    /// members' any-source membership on their stubs. DVMRP metrics stop at 31 (32 is
    /// infinity), so with `cost_metric` each interface's metric is its link cost (callers use
    /// it only when every cost is <= 31); otherwise every metric is 1 (hop count).
    pub fn start_dvmrp(&mut self, config: &DvmrpConfig, cost_metric: bool) {
        let mut cores = Vec::with_capacity(self.topo.len());
        for (r, ports) in self.net.ports.iter().enumerate() {
            let ifaces = ports
                .iter()
                .enumerate()
                .map(|(i, p)| DvmrpInterface {
                    ifindex: IfIndex(i as u32 + 1),
                    addr: p.addr,
                    prefix_len: 30,
                    metric: if cost_metric { p.cost.clamp(1, 31) as u8 } else { 1 },
                    threshold: 1,
                })
                .collect();
            cores.push(DvmrpRouter::new(config.clone(), ifaces, 0x1000 + r as u32));
        }
        self.cores = Cores::Dvmrp(cores);
        for r in 0..self.topo.len() {
            self.push(
                self.now,
                SimEvent::Core { router: r, event: CoreEvent::Dvmrp(Event::Start) },
            );
        }
        for s in 1..self.net.stubs.len() {
            let (r, ifindex) = self.net.stubs[s];
            let event =
                Event::LocalMembership { ifindex, group: self.group, source: None, present: true };
            self.push(self.now, SimEvent::Core { router: r, event: CoreEvent::Dvmrp(event) });
        }
    }

    /// Creates one link-state core per router (router id = index + 1, interface cost = link
    /// cost, stubs advertised as attached /30 networks), starts them at the current time and
    /// registers the members' membership on their stubs.
    pub fn start_linkstate(&mut self, config: &LinkStateConfig) {
        let mut cores = Vec::with_capacity(self.topo.len());
        for (r, ports) in self.net.ports.iter().enumerate() {
            let ifaces = ports
                .iter()
                .enumerate()
                .map(|(i, p)| LsInterface {
                    ifindex: IfIndex(i as u32 + 1),
                    addr: p.addr,
                    prefix_len: 30,
                    cost: p.cost.max(1),
                })
                .collect();
            cores.push(LinkStateRouter::new(config.clone(), r as u32 + 1, ifaces));
        }
        self.cores = Cores::Linkstate(cores);
        for r in 0..self.topo.len() {
            let event = CoreEvent::Linkstate(ls::Event::Start);
            self.push(self.now, SimEvent::Core { router: r, event });
        }
        for s in 1..self.net.stubs.len() {
            let (r, ifindex) = self.net.stubs[s];
            let event = ls::Event::LocalMembership { ifindex, group: self.group, present: true };
            self.push(self.now, SimEvent::Core { router: r, event: CoreEvent::Linkstate(event) });
        }
    }

    /// Installs a route directly (modes without a protocol core).
    pub fn install(&mut self, router: usize, route: MfibRoute) {
        self.mfib[router].insert((route.source, route.group), route);
    }

    /// The source sends packet number `self.packets.len()` at `at` ms.
    pub fn send_packet(&mut self, at: u64) {
        if self.warmup_control.is_none() {
            self.warmup_control = Some((self.control_msgs, self.control_bytes));
        }
        let packet = self.packets.len();
        self.packets.push(PacketTrace {
            link_copies: vec![0; self.topo.links.len()],
            stub_copies: vec![0; self.net.stubs.len()],
            delivered: vec![None; self.net.stubs.len().saturating_sub(1)],
            duplicates: 0,
            rpf_drops: 0,
        });
        self.packets[packet].stub_copies[0] += 1;
        let (router, iif) = self.net.stubs[0];
        self.push(at, SimEvent::Data { router, iif, packet, cost: 0 });
    }

    /// Processes events up to and including time `until` ms.
    pub fn run_until(&mut self, until: u64) -> Result<(), SimError> {
        while self.queue.peek().is_some_and(|Reverse(q)| q.at <= until) {
            self.step()?;
        }
        self.now = self.now.max(until);
        Ok(())
    }

    /// Processes events until no data packet copy is in flight, or up to `limit` ms. A copy's
    /// arrival time depends on the path the routing chose, which may be longer than the
    /// shortest one (DVMRP's hop-count metric), so no fixed drain time fits every mode.
    pub fn run_until_drained(&mut self, limit: u64) -> Result<(), SimError> {
        while self.data_in_flight > 0 && self.queue.peek().is_some_and(|Reverse(q)| q.at <= limit) {
            self.step()?;
        }
        Ok(())
    }

    fn step(&mut self) -> Result<(), SimError> {
        let Some(Reverse(q)) = self.queue.pop() else { return Ok(()) };
        self.events += 1;
        if self.events > self.max_events {
            return Err(SimError::EventLimit { events: self.max_events, at_ms: q.at });
        }
        self.now = q.at;
        match q.ev {
            SimEvent::Core { router, event } => self.core(router, event),
            SimEvent::Tick { router } => {
                if self.scheduled_tick[router] == Some(q.at) {
                    self.scheduled_tick[router] = None;
                    let event = match self.cores {
                        Cores::Linkstate(_) => CoreEvent::Linkstate(ls::Event::Tick),
                        Cores::Dvmrp(_) | Cores::None => CoreEvent::Dvmrp(Event::Tick),
                    };
                    self.core(router, event);
                }
            }
            SimEvent::Data { router, iif, packet, cost } => {
                self.data_in_flight -= 1;
                self.data(router, iif, packet, cost);
            }
        }
        Ok(())
    }

    fn core(&mut self, r: usize, event: CoreEvent) {
        let now = Timestamp::from_millis(self.now);
        // Both cores' outputs, reduced to what the engine does with them. A sent message becomes
        // the receiver's `Received` event at once; its interface and source are filled in on
        // delivery.
        let mut sends: Vec<(IfIndex, Ipv4Addr, CoreEvent, usize)> = Vec::new();
        let unset = (IfIndex(0), Ipv4Addr::UNSPECIFIED);
        let mut mfib: Vec<MfibUpdate> = Vec::new();
        let mut changed = false;
        let next = match (&mut self.cores, event) {
            (Cores::Dvmrp(cores), CoreEvent::Dvmrp(event)) => {
                let Some(core) = cores.get_mut(r) else { return };
                for a in core.handle(now, event) {
                    match a {
                        Action::Send { ifindex, dst, msg } => {
                            let len = msg.buffer_len();
                            let ev = Event::Received { ifindex: unset.0, src: unset.1, msg };
                            sends.push((ifindex, dst, CoreEvent::Dvmrp(ev), len));
                        }
                        Action::Mfib(u) => mfib.push(u),
                        Action::Debug(_) => {}
                    }
                }
                core.next_deadline()
            }
            (Cores::Linkstate(cores), CoreEvent::Linkstate(event)) => {
                let Some(core) = cores.get_mut(r) else { return };
                for a in core.handle(now, event) {
                    match a {
                        ls::Action::Send { ifindex, dst, bytes } => {
                            let len = bytes.len();
                            let ev = ls::Event::Received { ifindex: unset.0, src: unset.1, bytes };
                            sends.push((ifindex, dst, CoreEvent::Linkstate(ev), len));
                        }
                        ls::Action::Mfib(u) => mfib.push(u),
                        ls::Action::Debug(
                            LsDebug::LsaInstalled { .. } | LsDebug::LsaFlushed { .. },
                        ) => changed = true,
                        ls::Action::Debug(_) => {}
                    }
                }
                core.next_deadline()
            }
            // An event for a kind of core this run does not have: nothing to drive.
            _ => return,
        };
        if changed {
            self.last_change_ms = Some(self.now);
        }
        for (ifindex, dst, mut event, len) in sends {
            self.control_msgs += 1;
            self.control_bytes += len as u64;
            let Some(port) = self.net.port(r, ifindex).copied() else { continue };
            let Some((peer, peer_if, peer_addr)) = port.peer else { continue };
            if !(dst.is_multicast() || dst == peer_addr) {
                continue;
            }
            match &mut event {
                CoreEvent::Dvmrp(Event::Received { ifindex, src, .. })
                | CoreEvent::Linkstate(ls::Event::Received { ifindex, src, .. }) => {
                    (*ifindex, *src) = (peer_if, port.addr);
                }
                CoreEvent::Dvmrp(_) | CoreEvent::Linkstate(_) => {}
            }
            self.push(self.now + u64::from(port.cost), SimEvent::Core { router: peer, event });
        }
        for u in mfib {
            self.apply_mfib(r, u);
        }
        if let Some(t) = next {
            // A deadline already due is run at the next millisecond, never at the same instant
            // again, so a core that keeps a past deadline cannot stall simulated time.
            let at = t.as_millis().max(self.now + 1);
            if self.scheduled_tick[r] != Some(at) {
                self.scheduled_tick[r] = Some(at);
                self.push(at, SimEvent::Tick { router: r });
            }
        }
    }

    fn apply_mfib(&mut self, r: usize, u: MfibUpdate) {
        match u {
            MfibUpdate::Install(route) => {
                self.mfib[r].insert((route.source, route.group), route);
            }
            MfibUpdate::Remove { source, group } => {
                self.mfib[r].remove(&(source, group));
            }
            MfibUpdate::Flush => self.mfib[r].clear(),
            MfibUpdate::InstallOverlay(_)
            | MfibUpdate::RemoveOverlay { .. }
            | MfibUpdate::SetNeighbor(_)
            | MfibUpdate::RemoveNeighbor { .. } => {}
        }
    }

    fn lookup(&self, r: usize, source: Ipv4Addr) -> Option<&MfibRoute> {
        self.mfib[r]
            .get(&(Some(source), self.group))
            .or_else(|| self.mfib[r].get(&(None, self.group)))
    }

    fn data(&mut self, r: usize, iif: IfIndex, packet: usize, cost: u64) {
        let source = stub_host_addr(0);
        if self.lookup(r, source).is_none() {
            // The data plane punts the first packet of an unknown (S,G); the core installs the
            // route synchronously and the packet is then forwarded by it, as fanoutd does.
            let punt = Punt { iif, source, group: self.group };
            match self.cores {
                Cores::Dvmrp(_) => self.core(r, CoreEvent::Dvmrp(Event::DataArrived(punt))),
                Cores::Linkstate(_) => {
                    self.core(r, CoreEvent::Linkstate(ls::Event::DataArrived(punt)));
                }
                Cores::None => {}
            }
        }
        let Some(route) = self.lookup(r, source) else { return };
        if route.iif != iif {
            self.packets[packet].rpf_drops += 1;
            return;
        }
        let oifs: Vec<IfIndex> =
            route.oifs.iter().map(|o| o.ifindex).filter(|o| *o != iif).collect();
        for oif in oifs {
            let Some(port) = self.net.port(r, oif).copied() else { continue };
            match port.kind {
                PortKind::Link(l) => {
                    self.packets[packet].link_copies[l] += 1;
                    if let Some((peer, peer_if, _)) = port.peer {
                        let at = self.now + u64::from(port.cost);
                        let ev = SimEvent::Data {
                            router: peer,
                            iif: peer_if,
                            packet,
                            cost: cost + u64::from(port.cost),
                        };
                        self.push(at, ev);
                    }
                }
                PortKind::Stub(s) => {
                    let trace = &mut self.packets[packet];
                    trace.stub_copies[s] += 1;
                    if s > 0 {
                        match trace.delivered[s - 1] {
                            None => trace.delivered[s - 1] = Some(cost),
                            Some(_) => trace.duplicates += 1,
                        }
                    }
                }
            }
        }
    }
}
