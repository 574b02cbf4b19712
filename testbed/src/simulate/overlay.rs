//! The overlay mode driven by the real `controlplane::overlay::OverlayNode`: one node per host
//! (the source's host, which is also the rendezvous, and every member host), exchanging their
//! signed UDP control messages through a discrete-event queue, then data forwarded hop by hop
//! through the routes the cores installed (`overlay_routes()` / `origin_route()`, exactly what
//! fanoutd hands the data plane), including the data plane's `from` check.
//!
//! Underlay model: a message or data copy from host `a` to host `b` takes the unicast shortest
//! path between their routers and is delayed by its cost in ms (host access links cost 0), so a
//! probe's RTT is twice the path cost: the self-organising topology optimises the real
//! underlay latency. Every overlay data hop counts one copy on each underlay link of that path
//! and one on each end's host access link (stress).
//!
//! Failure scenario (optional): after the measurement, the member host with the most
//! downstream members on the source's tree crashes (no Leave: its messages and data stop), the
//! source keeps sending probe packets every `failure_probe_interval_ms`, and the recovery time
//! is how long after the crash the first of 20 consecutive probes that each reached every
//! surviving member was sent.
//!
//! Invariants: events run in (time, insertion) order, every run is bounded by simulated time
//! and `max_events`, and nothing here reads a clock or an unseeded RNG (each node's RNG is
//! seeded from the run's seed and its index).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::Ipv4Addr;

use controlplane::overlay::{
    Action, Event, GroupKey, OverlayConfig, OverlayNode, SelfOrganising, StaticLink, TopologyMode,
};
use controlplane::timer::Timestamp;
use dataplane_api::IfIndex;
use serde::Serialize;

use super::engine::{stub_host_addr, PacketTrace};
use super::topo::Paths;
use super::{Scenario, SimError, SimOptions};

/// How the overlay nodes choose their neighbours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OverlayTopology {
    /// `TopologyMode::SelfOrganising` (target degree `overlay_degree`, RTT-driven).
    #[default]
    SelfOrganising,
    /// `TopologyMode::Static`: a minimum spanning tree plus each host's `overlay_degree`
    /// nearest hosts, cost = RTT (2 x underlay path cost), the same mesh as `overlay-spf`.
    Static,
}

impl std::str::FromStr for OverlayTopology {
    type Err = SimError;
    fn from_str(s: &str) -> Result<Self, SimError> {
        match s {
            "self-organising" | "self-organizing" => Ok(OverlayTopology::SelfOrganising),
            "static" => Ok(OverlayTopology::Static),
            _ => Err(SimError::Scenario(format!(
                "unknown overlay topology `{s}` (expected self-organising or static)"
            ))),
        }
    }
}

/// The node-failure scenario's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct FailureResult {
    /// Index of the crashed host (1.. = member j - 1) and its router.
    pub failed_host: usize,
    pub failed_router: usize,
    /// Members that received the stream through the failed host before the crash.
    pub members_cut: usize,
    pub failed_at_ms: u64,
    /// Time from the crash to the first of 20 consecutive probes that each reached every
    /// surviving member; `None` if there was none within the probe window.
    pub recovery_ms: Option<u64>,
    pub probes_sent: usize,
    /// Probe packets missed, summed over surviving members.
    pub probes_lost: u64,
    /// Probes after the recovery that still missed a survivor (later reorganisations).
    pub incomplete_after_recovery: usize,
}

/// What an overlay run measured.
#[derive(Debug)]
pub struct OverlayRun {
    pub first: PacketTrace,
    pub last: PacketTrace,
    /// Per host (source first, then members): overlay forwarding entries with next hops.
    pub host_state: Vec<usize>,
    pub control_msgs: u64,
    pub control_bytes: u64,
    pub warmup_control: (u64, u64),
    /// Last change of any node's installed routes, up to the end of the measurement.
    pub converged_ms: Option<u64>,
    pub events: u64,
    pub failure: Option<FailureResult>,
    /// The factor the overlay timers and the warm-up were multiplied by ([`timer_scale`]).
    pub timer_scale: u32,
}

#[derive(Debug)]
enum Ev {
    Start(usize),
    Tick(usize),
    Ctl {
        to: usize,
        src: Ipv4Addr,
        payload: Vec<u8>,
    },
    /// A data copy of `packet` arriving at host `to` from host `from` (`None`: the source's
    /// own application), with the underlay path cost so far.
    Data {
        to: usize,
        from: Option<usize>,
        packet: usize,
        cost: u64,
    },
}

#[derive(Debug)]
struct Queued {
    at: u64,
    seq: u64,
    ev: Ev,
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

/// Simulated time the failure probes run for at most (times the timer scale).
const PROBE_WINDOW_MS: u64 = 60_000;
/// Consecutive complete probes after which the stream counts as recovered for good.
const STABLE_PROBES: usize = 20;

struct Sim<'a> {
    scn: &'a Scenario,
    hosts: Vec<usize>,
    paths: BTreeMap<usize, Paths>,
    by_addr: BTreeMap<Ipv4Addr, usize>,
    nodes: Vec<OverlayNode>,
    dead: Vec<bool>,
    queue: BinaryHeap<Reverse<Queued>>,
    seq: u64,
    now: u64,
    scheduled: Vec<Option<u64>>,
    packets: Vec<PacketTrace>,
    /// Whether a packet's copies are counted per link (measured packets) or only delivered.
    full_trace: Vec<bool>,
    control_msgs: u64,
    control_bytes: u64,
    last_change: Option<u64>,
    events: u64,
    max_events: u64,
    data_in_flight: u64,
}

impl Sim<'_> {
    fn push(&mut self, at: u64, ev: Ev) {
        if matches!(ev, Ev::Data { .. }) {
            self.data_in_flight += 1;
        }
        self.seq += 1;
        self.queue.push(Reverse(Queued { at, seq: self.seq, ev }));
    }

    fn delay(&self, a: usize, b: usize) -> Option<u64> {
        self.paths[&self.hosts[a]].dist[self.hosts[b]]
    }

    fn run_until(&mut self, until: u64) -> Result<(), SimError> {
        while self.queue.peek().is_some_and(|Reverse(q)| q.at <= until) {
            self.step()?;
        }
        self.now = self.now.max(until);
        Ok(())
    }

    fn run_until_drained(&mut self, limit: u64) -> Result<(), SimError> {
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
            Ev::Start(n) => self.handle(n, Event::Start),
            Ev::Tick(n) => {
                if self.scheduled[n] == Some(q.at) {
                    self.scheduled[n] = None;
                    self.handle(n, Event::Tick);
                }
            }
            Ev::Ctl { to, src, payload } => self.handle(to, Event::Received { src, payload }),
            Ev::Data { to, from, packet, cost } => {
                self.data_in_flight -= 1;
                self.data(to, from, packet, cost);
            }
        }
        Ok(())
    }

    fn handle(&mut self, n: usize, event: Event) {
        if self.dead[n] {
            return;
        }
        let now = Timestamp::from_millis(self.now);
        let actions = self.nodes[n].handle(now, event);
        for a in actions {
            match a {
                Action::Send { dst, payload } => {
                    self.control_msgs += 1;
                    self.control_bytes += payload.len() as u64;
                    let Some(&to) = self.by_addr.get(&dst) else { continue };
                    let Some(d) = self.delay(n, to) else { continue };
                    self.push(self.now + d, Ev::Ctl { to, src: stub_host_addr(n), payload });
                }
                Action::Mfib(_) => self.last_change = Some(self.now),
                Action::ResolveNeighbor(_) | Action::ForgetNeighbor(_) => {}
            }
        }
        if let Some(t) = self.nodes[n].next_deadline() {
            // A due deadline runs at the next millisecond, so time always advances.
            let at = t.as_millis().max(self.now + 1);
            if self.scheduled[n] != Some(at) {
                self.scheduled[n] = Some(at);
                self.push(at, Ev::Tick(n));
            }
        }
    }

    fn send_packet(&mut self, at: u64, full: bool) -> usize {
        let packet = self.packets.len();
        let k = self.hosts.len();
        self.packets.push(PacketTrace {
            link_copies: if full { vec![0; self.scn.topo.links.len()] } else { Vec::new() },
            stub_copies: vec![0; k],
            delivered: vec![None; k - 1],
            duplicates: 0,
            rpf_drops: 0,
        });
        self.full_trace.push(full);
        self.push(at, Ev::Data { to: 0, from: None, packet, cost: 0 });
        packet
    }

    /// Host `to` gets a copy: the source encapsulates along its (*,G) route; others check the
    /// overlay route's `from`, deliver locally and re-encapsulate to the next hops.
    fn data(&mut self, to: usize, from: Option<usize>, packet: usize, cost: u64) {
        if self.dead[to] {
            return;
        }
        let node = &self.nodes[to];
        let next: Vec<Ipv4Addr> = match from {
            None => node.origin_route().map(|r| r.overlay_next_hops.clone()).unwrap_or_default(),
            Some(f) => {
                let Some(route) = node.overlay_routes().get(&stub_host_addr(0)) else { return };
                if route.from.is_some_and(|a| a != stub_host_addr(f)) {
                    self.packets[packet].rpf_drops += 1;
                    return;
                }
                if !route.deliver.is_empty() && to > 0 {
                    let t = &mut self.packets[packet];
                    match t.delivered[to - 1] {
                        None => t.delivered[to - 1] = Some(cost),
                        Some(_) => t.duplicates += 1,
                    }
                }
                route.next_hops.clone()
            }
        };
        for hop in next {
            let Some(&v) = self.by_addr.get(&hop) else { continue };
            let Some(d) = self.delay(to, v) else { continue };
            let t = &mut self.packets[packet];
            t.stub_copies[to] += 1;
            t.stub_copies[v] += 1;
            if self.full_trace[packet] {
                if let Some(links) = self.paths[&self.hosts[to]].path_links(self.hosts[v]) {
                    for l in links {
                        t.link_copies[l] += 1;
                    }
                }
            }
            self.push(self.now + d, Ev::Data { to: v, from: Some(to), packet, cost: cost + d });
        }
    }

    fn host_state(&self) -> Vec<usize> {
        self.nodes
            .iter()
            .enumerate()
            .map(|(j, n)| {
                // Only the measured stream's entry: every member is also an origin with a tree
                // of its own, which this single-source scenario does not use.
                let relays = n
                    .overlay_routes()
                    .get(&stub_host_addr(0))
                    .is_some_and(|r| !r.next_hops.is_empty());
                usize::from(relays) + usize::from(j == 0 && n.origin_route().is_some())
            })
            .collect()
    }

    /// Per host: members (hosts with local delivery) in its subtree of the source's tree, as the
    /// installed routes form it.
    fn downstream_members(&self) -> Vec<usize> {
        let k = self.hosts.len();
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); k];
        for (u, node) in self.nodes.iter().enumerate() {
            let hops: Vec<Ipv4Addr> = if u == 0 {
                node.origin_route().map(|r| r.overlay_next_hops.clone()).unwrap_or_default()
            } else {
                node.overlay_routes()
                    .get(&stub_host_addr(0))
                    .map(|r| r.next_hops.clone())
                    .unwrap_or_default()
            };
            children[u] = hops.iter().filter_map(|h| self.by_addr.get(h).copied()).collect();
        }
        (0..k)
            .map(|u| {
                // Iterative walk, bounded by k visits so a (transient) loop cannot hang it.
                let mut seen = vec![false; k];
                let mut stack = children[u].clone();
                let mut count = 0;
                while let Some(v) = stack.pop() {
                    if std::mem::replace(&mut seen[v], true) {
                        continue;
                    }
                    count += usize::from(v > 0);
                    stack.extend(children[v].iter().copied());
                }
                count
            })
            .collect()
    }
}

/// The static mesh: Prim's minimum spanning tree over the hosts (connectivity) plus links to
/// each host's `degree` nearest hosts, as host index pairs with their one-way underlay cost.
pub fn static_mesh(
    k: usize,
    degree: usize,
    dist: &dyn Fn(usize, usize) -> Option<u64>,
) -> BTreeMap<(usize, usize), u64> {
    let mut mesh = BTreeMap::new();
    if k == 0 {
        return mesh;
    }
    let mut in_tree = vec![false; k];
    let mut best: Vec<Option<(u64, usize)>> =
        (0..k).map(|v| if v == 0 { None } else { dist(0, v).map(|d| (d, 0)) }).collect();
    in_tree[0] = true;
    loop {
        let next =
            (0..k).filter(|&v| !in_tree[v]).filter_map(|v| best[v].map(|(d, u)| (d, v, u))).min();
        let Some((d, v, u)) = next else { break };
        in_tree[v] = true;
        mesh.insert((u.min(v), u.max(v)), d);
        for w in 0..k {
            if !in_tree[w] {
                if let Some(d) = dist(v, w) {
                    if best[w].is_none_or(|(bd, _)| d < bd) {
                        best[w] = Some((d, v));
                    }
                }
            }
        }
    }
    for v in 0..k {
        let mut near: Vec<(u64, usize)> =
            (0..k).filter(|&u| u != v).filter_map(|u| dist(v, u).map(|d| (d, u))).collect();
        near.sort_unstable();
        for &(d, u) in near.iter().take(degree) {
            mesh.insert((u.min(v), u.max(v)), d);
        }
    }
    mesh
}

/// Runs the overlay cores on the scenario and measures as the other modes do.
pub fn run(scn: &Scenario, opts: &SimOptions, seed: u64) -> Result<OverlayRun, SimError> {
    let hosts = scn.stub_routers();
    let k = hosts.len();
    let mut paths: BTreeMap<usize, Paths> = BTreeMap::new();
    for &r in &hosts {
        paths.entry(r).or_insert_with(|| scn.topo.shortest_paths(r));
    }
    let dist = |a: usize, b: usize| paths[&hosts[a]].dist[hosts[b]];
    let max_d = (0..k).filter_map(|j| dist(0, j)).max().unwrap_or(0);
    let scale = timer_scale(k, &dist);
    let topology = match opts.overlay_topology {
        OverlayTopology::SelfOrganising => TopologyMode::SelfOrganising(SelfOrganising {
            target_degree: opts.overlay_degree.max(1),
            max_degree: (2 * opts.overlay_degree).max(2),
            probe_interval: SelfOrganising::default().probe_interval * scale,
            ..SelfOrganising::default()
        }),
        OverlayTopology::Static => {
            let links = static_mesh(k, opts.overlay_degree, &dist)
                .into_iter()
                .map(|((a, b), d)| StaticLink {
                    a: stub_host_addr(a),
                    b: stub_host_addr(b),
                    cost: u32::try_from(2 * d).unwrap_or(u32::MAX).max(1),
                })
                .collect();
            TopologyMode::Static { links }
        }
    };
    let key = GroupKey { id: 1, secret: b"fanout-simulation-group-key".to_vec() };
    let mut cfg = OverlayConfig::new(scn.group, stub_host_addr(0), vec![key], topology);
    cfg.local_iif = IfIndex(1);
    cfg.heartbeat_interval *= scale;
    cfg.join_retry *= scale;
    cfg.lsa_refresh *= scale;
    let mut nodes = Vec::with_capacity(k);
    for j in 0..k {
        let node = OverlayNode::new(cfg.clone(), stub_host_addr(j), seed ^ ((j as u64) << 20))
            .map_err(|e| SimError::Scenario(format!("overlay config: {e}")))?;
        nodes.push(node);
    }
    let mut sim = Sim {
        scn,
        by_addr: (0..k).map(|j| (stub_host_addr(j), j)).collect(),
        hosts,
        paths,
        nodes,
        dead: vec![false; k],
        queue: BinaryHeap::new(),
        seq: 0,
        now: 0,
        scheduled: vec![None; k],
        packets: Vec::new(),
        full_trace: Vec::new(),
        control_msgs: 0,
        control_bytes: 0,
        last_change: None,
        events: 0,
        max_events: opts.max_events,
        data_in_flight: 0,
    };
    // The rendezvous first; the others join a few ms apart, as hosts never start in lockstep.
    sim.push(0, Ev::Start(0));
    for j in 1..k {
        sim.handle(j, Event::LocalMembership { ifindex: IfIndex(1), present: true });
        sim.push(1 + j as u64 % 1000, Ev::Start(j));
    }
    let warmup_ms = opts.warmup_ms.saturating_mul(u64::from(scale));
    sim.run_until(warmup_ms)?;
    let warmup_control = (sim.control_msgs, sim.control_bytes);
    let t0 = sim.now;
    let n = opts.packets.max(1);
    for p in 0..n {
        sim.send_packet(t0 + p as u64 * opts.interval_ms, true);
    }
    // An overlay path visits each host at most once: k hops of at most the longest path each.
    let drain = (k as u64).saturating_mul(2 * max_d + 1) + 1_000;
    let end = t0 + (n as u64 - 1) * opts.interval_ms;
    sim.run_until(end)?;
    sim.run_until_drained(end.saturating_add(drain))?;
    let converged_ms = sim.last_change;
    let host_state = sim.host_state();
    let first = sim.packets[0].clone();
    let last = sim.packets[n - 1].clone();
    let (control_msgs, control_bytes) = (sim.control_msgs, sim.control_bytes);
    let failure = if opts.overlay_failure && k > 2 {
        Some(fail_and_recover(&mut sim, opts, drain, u64::from(scale))?)
    } else {
        None
    };
    Ok(OverlayRun {
        first,
        last,
        host_state,
        control_msgs,
        control_bytes,
        warmup_control,
        converged_ms,
        events: sim.events,
        failure,
        timer_scale: scale,
    })
}

/// RTT at or below which the overlay core's default timers (1 s heartbeats, 3 s dead
/// interval, 2 s join retry) work as designed.
const DEFAULT_TIMERS_MAX_RTT_MS: u64 = 500;

/// The factor applied to every overlay timer (heartbeat, join retry, LSA refresh, probe
/// interval) and to the warm-up, so that the largest RTT between two hosts stays within
/// [`DEFAULT_TIMERS_MAX_RTT_MS`] of the scaled timers. The generated topologies' costs are
/// plane distances, i.e. link delays of up to seconds: with unscaled timers every join retry
/// (2 s) would overtake the accept of the previous one and no far host would ever join.
fn timer_scale(k: usize, dist: &dyn Fn(usize, usize) -> Option<u64>) -> u32 {
    let mut max_rtt = 0;
    for a in 0..k {
        for b in a + 1..k {
            max_rtt = max_rtt.max(dist(a, b).unwrap_or(0) * 2);
        }
    }
    u32::try_from(max_rtt.div_ceil(DEFAULT_TIMERS_MAX_RTT_MS).max(1)).unwrap_or(u32::MAX)
}

fn fail_and_recover(
    sim: &mut Sim<'_>,
    opts: &SimOptions,
    drain: u64,
    scale: u64,
) -> Result<FailureResult, SimError> {
    let down = sim.downstream_members();
    let k = sim.hosts.len();
    // The member whose crash cuts off the most others (lowest index on ties).
    let victim = (1..k).max_by_key(|&v| (down[v], Reverse(v))).unwrap_or(1);
    let failed_at = sim.now + 1;
    sim.run_until(failed_at)?;
    sim.dead[victim] = true;
    // Window and spacing scale with the timers, so the probe count (and memory) stays fixed.
    let interval = opts.failure_probe_interval_ms.max(1).saturating_mul(scale);
    let window_ms = PROBE_WINDOW_MS.saturating_mul(scale);
    let first_probe = sim.packets.len();
    let mut t = failed_at;
    while t <= failed_at + window_ms {
        sim.send_packet(t, false);
        t += interval;
    }
    sim.run_until(t)?;
    sim.run_until_drained(t.saturating_add(drain))?;
    let survivors: Vec<usize> = (1..k).filter(|&m| m != victim).collect();
    let complete: Vec<bool> = sim.packets[first_probe..]
        .iter()
        .map(|p| survivors.iter().all(|&m| p.delivered[m - 1].is_some()))
        .collect();
    let probes_lost = sim.packets[first_probe..]
        .iter()
        .map(|p| survivors.iter().filter(|&&m| p.delivered[m - 1].is_none()).count() as u64)
        .sum();
    // The first probe that starts a run of STABLE_PROBES complete ones: the tree is repaired.
    // Later losses (a self-organising overlay keeps replacing neighbours) are counted apart.
    let mut recovered = None;
    let mut run = 0;
    for (i, &ok) in complete.iter().enumerate() {
        run = if ok { run + 1 } else { 0 };
        if run == STABLE_PROBES {
            recovered = Some(i + 1 - STABLE_PROBES);
            break;
        }
    }
    let recovery_ms = recovered.map(|i| i as u64 * interval);
    let incomplete_after_recovery =
        recovered.map_or(0, |i| complete[i..].iter().filter(|&&ok| !ok).count());
    Ok(FailureResult {
        failed_host: victim,
        failed_router: sim.hosts[victim],
        members_cut: down[victim],
        failed_at_ms: failed_at,
        recovery_ms,
        probes_sent: complete.len(),
        probes_lost,
        incomplete_after_recovery,
    })
}
