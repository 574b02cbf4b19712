//! `fanout-testbed simulate`: the control-plane cores driven in a discrete-event simulation,
//! without namespaces or packets on the wire, to measure multicast modes on topologies far
//! larger than one machine can host (docs/simulate.md).
//!
//! - [`topo`]: router graphs with coordinates; JSON loader, testbed TOML loader, generators
//! - [`engine`]: event queue, the real DVMRP and link-state cores, simulated MFIBs and data
//!   forwarding
//! - [`overlay`]: the real overlay cores on the hosts, data over underlay shortest paths, and
//!   the node-failure scenario
//! - [`modes`]: the computed `linkstate-spf` and `overlay-spf` modes (no protocol, for sizes
//!   beyond what the cores can run)
//!
//! Every mode runs on the same [`Scenario`] (topology, source router, member routers, group) and
//! is measured the same way: after the control plane has had `warmup_ms` of simulated time, the
//! source sends `packets` packets and the *last* one (after any flood-and-prune transient) is
//! traced through the routers' MFIBs: per-link copies (stress), per-member arrival and path cost
//! (delivery, stretch against the unicast shortest path), MFIB entries per router (state).
//! Nothing is assumed from the mode's design; a mode that loses or duplicates packets shows it.

pub mod engine;
pub mod modes;
pub mod overlay;
pub mod topo;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use controlplane::dvmrp::DvmrpConfig;
use controlplane::linkstate::LinkStateConfig;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use engine::{Engine, PacketTrace};
use topo::SimTopology;

/// Errors of the simulation.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("topology: {0}")]
    Topology(String),
    #[error("topology too large for the simulated address plan: {0}")]
    TooLarge(String),
    #[error("event limit of {events} reached at {at_ms} ms simulated time (raise --max-events or shrink the run)")]
    EventLimit { events: u64, at_ms: u64 },
    #[error(
        "unknown mode `{0}` (expected dvmrp, linkstate, linkstate-spf, overlay or overlay-spf)"
    )]
    UnknownMode(String),
    #[error("bad topology spec `{0}`: expected a testbed name or .toml, a .json file, gen:transit-stub:N or gen:geometric:N")]
    BadSpec(String),
    #[error("cannot read {path}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot write {path}")]
    Write { path: String, source: std::io::Error },
    #[error("scenario: {0}")]
    Scenario(String),
}

/// The multicast modes compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Flood and prune with the real `controlplane::dvmrp` core on every router.
    Dvmrp,
    /// MOSPF-like with the real `controlplane::linkstate` core on every router (hellos, LSA
    /// flooding with acks, SPT computed on the first packet).
    Linkstate,
    /// The same trees computed directly with `controlplane::linkstate::spf` over the whole
    /// topology, no protocol: for topologies too large to run the cores on.
    LinkstateSpf,
    /// End-system multicast with the real `controlplane::overlay::OverlayNode` on the source
    /// and every member host.
    Overlay,
    /// A source-rooted SPF tree over a precomputed member mesh, no protocol: for member counts
    /// too large to run the overlay cores on.
    OverlaySpf,
}

impl std::str::FromStr for Mode {
    type Err = SimError;
    fn from_str(s: &str) -> Result<Self, SimError> {
        match s {
            "dvmrp" => Ok(Mode::Dvmrp),
            "linkstate" => Ok(Mode::Linkstate),
            "linkstate-spf" => Ok(Mode::LinkstateSpf),
            "overlay" => Ok(Mode::Overlay),
            "overlay-spf" => Ok(Mode::OverlaySpf),
            _ => Err(SimError::UnknownMode(s.to_owned())),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Dvmrp => "dvmrp",
            Mode::Linkstate => "linkstate",
            Mode::LinkstateSpf => "linkstate-spf",
            Mode::Overlay => "overlay",
            Mode::OverlaySpf => "overlay-spf",
        })
    }
}

/// What is simulated: one source and its group's members on a topology.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub topo: SimTopology,
    /// The router the source host hangs off.
    pub source: usize,
    /// The router each member host hangs off (several members may share a router).
    pub members: Vec<usize>,
    pub group: Ipv4Addr,
}

pub const DEFAULT_GROUP: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 1);

impl Scenario {
    pub fn new(topo: SimTopology, source: usize, members: Vec<usize>) -> Result<Self, SimError> {
        if source >= topo.len() || members.iter().any(|&m| m >= topo.len()) {
            return Err(SimError::Scenario(
                "source or member on a router that does not exist".into(),
            ));
        }
        if members.is_empty() {
            return Err(SimError::Scenario("no members".into()));
        }
        Ok(Scenario { topo, source, members, group: DEFAULT_GROUP })
    }

    /// A source router and `members` member routers drawn uniformly (members distinct while
    /// there are enough other routers, then with repetition).
    pub fn random<R: Rng>(
        topo: SimTopology,
        members: usize,
        rng: &mut R,
    ) -> Result<Self, SimError> {
        let n = topo.len();
        let source = rng.gen_range(0..n);
        let mut others: Vec<usize> = (0..n).filter(|&r| r != source).collect();
        others.shuffle(rng);
        let mut chosen: Vec<usize> = others.iter().copied().take(members).collect();
        while chosen.len() < members {
            chosen.push(rng.gen_range(0..n));
        }
        Self::new(topo, source, chosen)
    }

    /// Stub routers for the engine: the source's first, then one per member.
    pub fn stub_routers(&self) -> Vec<usize> {
        std::iter::once(self.source).chain(self.members.iter().copied()).collect()
    }
}

/// Knobs of a run.
#[derive(Debug, Clone, Serialize)]
pub struct SimOptions {
    /// Simulated time the control plane runs before the first data packet.
    pub warmup_ms: u64,
    pub packets: usize,
    pub interval_ms: u64,
    /// Bound on processed events per mode.
    pub max_events: u64,
    /// Overlay: the self-organising target degree, or (static and `overlay-spf`) how many
    /// nearest hosts each host links to on top of a spanning tree.
    pub overlay_degree: usize,
    pub overlay_topology: overlay::OverlayTopology,
    /// Overlay mode: crash the member whose loss cuts off the most others after the
    /// measurement and report the recovery time.
    pub overlay_failure: bool,
    /// Spacing of the probe packets of the failure scenario.
    pub failure_probe_interval_ms: u64,
    /// Seeds the overlay cores' RNGs.
    pub seed: u64,
    #[serde(skip)]
    pub dvmrp: DvmrpConfig,
    #[serde(skip)]
    pub linkstate: LinkStateConfig,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            warmup_ms: 40_000,
            packets: 5,
            interval_ms: 2_000,
            max_events: 200_000_000,
            overlay_degree: 3,
            overlay_topology: overlay::OverlayTopology::SelfOrganising,
            overlay_failure: false,
            failure_probe_interval_ms: 100,
            seed: 1,
            dvmrp: DvmrpConfig::default(),
            linkstate: LinkStateConfig::default(),
        }
    }
}

impl SimOptions {
    /// Short runs for small topologies and tests: 20 s warm-up (enough for the default
    /// 10 s link-state hellos and DVMRP's first reports on a few hops), 3 packets 1 s apart.
    pub fn quick() -> Self {
        SimOptions { warmup_ms: 20_000, packets: 3, interval_ms: 1_000, ..SimOptions::default() }
    }
}

/// One mode's measurements on a scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ModeResult {
    pub mode: Mode,
    /// How the mode's routes were computed ("dvmrp core, hop-count metric", ...).
    pub model: String,
    /// Fraction of members that received the last packet.
    pub delivery_ratio: f64,
    /// The same for the first packet (flood-and-prune state is created by it).
    pub first_packet_delivery_ratio: f64,
    /// Path cost / unicast shortest-path cost, over delivered members not on the source's router.
    pub stretch_mean: f64,
    pub stretch_max: f64,
    /// Copies of the last packet per router-router link, over links that carried any.
    pub stress_mean: f64,
    pub stress_max: u32,
    pub used_links: usize,
    /// Sum over links of copies x cost: the network cost of one packet.
    pub tree_cost: u64,
    /// Copies on the busiest host access link (the source's, for overlays).
    pub host_stress_max: u32,
    pub duplicates: u64,
    pub rpf_drops: u64,
    /// Where the state columns count: "routers" (MFIB routes) or "hosts" (overlay routes;
    /// routers then hold no multicast state at all).
    pub state_scope: String,
    /// Forwarding entries (MFIB routes with an outgoing interface, or overlay routes with next
    /// hops) per node of `state_scope`.
    pub state_mean: f64,
    pub state_max: usize,
    pub routers_with_state: usize,
    /// All MFIB entries, including prune (negative) state.
    pub state_all_max: usize,
    pub state_all_total: usize,
    /// Control messages and their bytes (DVMRP message length, no IP header); `None` where the
    /// mode's routes were computed rather than signalled.
    pub control_msgs: Option<u64>,
    pub control_bytes: Option<u64>,
    /// The part of them sent during the warm-up (before the first data packet).
    pub warmup_control_msgs: Option<u64>,
    pub warmup_control_bytes: Option<u64>,
    /// Simulated time of the last control-plane state change up to the end of the measurement
    /// (link-state: an LSA installed or flushed anywhere; overlay: routes changed at any host);
    /// later than the warm-up means data flowed while the protocol was still changing. `None`
    /// where not tracked (dvmrp, computed modes).
    pub convergence_ms: Option<u64>,
    /// Overlay node-failure scenario, when requested.
    pub failure: Option<overlay::FailureResult>,
    pub events: u64,
    pub wall_ms: u64,
    /// Per-link copies and per-router forwarding entries of the last packet, for tests/plots.
    #[serde(skip)]
    pub link_copies: Vec<u32>,
    #[serde(skip)]
    pub stub_copies: Vec<u32>,
    #[serde(skip)]
    pub state_per_router: Vec<usize>,
}

/// All modes on one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct SimReport {
    pub topology: String,
    pub routers: usize,
    pub links: usize,
    pub members: usize,
    pub source: usize,
    pub seed: Option<u64>,
    /// Fewest router hops from the source's router to the farthest reachable member, and how
    /// many members are 32 or more hops away (unreachable for DVMRP's hop-count metric).
    pub member_hops_max: usize,
    pub members_beyond_dvmrp_infinity: usize,
    pub options: SimOptions,
    pub modes: Vec<ModeResult>,
}

/// Inputs to [`summarize`] that differ per mode.
struct Observed<'a> {
    first: &'a PacketTrace,
    last: &'a PacketTrace,
    state_fwd: Vec<usize>,
    state_all: Vec<usize>,
    state_scope: &'static str,
    control: Option<(u64, u64)>,
    warmup_control: Option<(u64, u64)>,
    convergence_ms: Option<u64>,
    failure: Option<overlay::FailureResult>,
}

fn summarize(
    scn: &Scenario,
    mode: Mode,
    model: String,
    o: Observed<'_>,
    events: u64,
    started: Instant,
) -> ModeResult {
    let unicast = scn.topo.shortest_paths(scn.source);
    let ratio = |t: &PacketTrace| {
        t.delivered.iter().filter(|d| d.is_some()).count() as f64 / scn.members.len() as f64
    };
    let mut stretches = Vec::new();
    for (j, &m) in scn.members.iter().enumerate() {
        if let (Some(cost), Some(Some(best))) = (o.last.delivered[j], unicast.dist.get(m)) {
            if *best > 0 {
                stretches.push(cost as f64 / *best as f64);
            }
        }
    }
    let used: Vec<u32> = o.last.link_copies.iter().copied().filter(|&c| c > 0).collect();
    let tree_cost = o
        .last
        .link_copies
        .iter()
        .zip(&scn.topo.links)
        .map(|(&c, l)| u64::from(c) * u64::from(l.cost))
        .sum();
    let mean = |v: &[f64]| if v.is_empty() { 0.0 } else { v.iter().sum::<f64>() / v.len() as f64 };
    let used_f: Vec<f64> = used.iter().map(|&c| f64::from(c)).collect();
    let state_f: Vec<f64> = o.state_fwd.iter().map(|&s| s as f64).collect();
    ModeResult {
        mode,
        model,
        delivery_ratio: ratio(o.last),
        first_packet_delivery_ratio: ratio(o.first),
        stretch_mean: mean(&stretches),
        stretch_max: stretches.iter().copied().fold(0.0, f64::max),
        stress_mean: mean(&used_f),
        stress_max: used.iter().copied().max().unwrap_or(0),
        used_links: used.len(),
        tree_cost,
        host_stress_max: o.last.stub_copies.iter().copied().max().unwrap_or(0),
        duplicates: o.last.duplicates,
        rpf_drops: o.last.rpf_drops,
        state_scope: o.state_scope.to_owned(),
        state_mean: mean(&state_f),
        state_max: o.state_fwd.iter().copied().max().unwrap_or(0),
        routers_with_state: o.state_fwd.iter().filter(|&&s| s > 0).count(),
        state_all_max: o.state_all.iter().copied().max().unwrap_or(0),
        state_all_total: o.state_all.iter().sum(),
        control_msgs: o.control.map(|c| c.0),
        control_bytes: o.control.map(|c| c.1),
        warmup_control_msgs: o.warmup_control.map(|c| c.0),
        warmup_control_bytes: o.warmup_control.map(|c| c.1),
        convergence_ms: o.convergence_ms,
        failure: o.failure,
        events,
        wall_ms: started.elapsed().as_millis() as u64,
        link_copies: o.last.link_copies.clone(),
        stub_copies: o.last.stub_copies.clone(),
        state_per_router: o.state_fwd,
    }
}

/// Simulated time a packet needs to reach every router along shortest paths (the longest
/// unicast distance), plus 1 s. Modes whose paths are longer (DVMRP with the hop-count metric)
/// get their extra time from [`drain_limit_ms`].
fn drain_ms(scn: &Scenario) -> u64 {
    scn.topo.shortest_paths(scn.source).dist.iter().flatten().copied().max().unwrap_or(0) + 1_000
}

/// An upper bound on how long any copy of a packet can travel: the data plane forwards along a
/// tree (the iif check drops copies off it), so a copy crosses at most `routers - 1` links.
fn drain_limit_ms(scn: &Scenario) -> u64 {
    let max_cost = scn.topo.links.iter().map(|l| u64::from(l.cost)).max().unwrap_or(0);
    (scn.topo.len() as u64).saturating_sub(1).saturating_mul(max_cost) + 1_000
}

/// Sends the packets through an engine whose routing is set up, and measures.
fn measure_engine(
    scn: &Scenario,
    mode: Mode,
    model: String,
    mut eng: Engine<'_>,
    opts: &SimOptions,
    with_control: bool,
    started: Instant,
) -> Result<ModeResult, SimError> {
    let t0 = eng.now_ms();
    for p in 0..opts.packets.max(1) {
        eng.send_packet(t0 + p as u64 * opts.interval_ms);
    }
    let end = t0 + (opts.packets.max(1) as u64 - 1) * opts.interval_ms + drain_ms(scn);
    eng.run_until(end)?;
    // The last packet is measured only once every copy of it has arrived, however long the
    // path the routing chose.
    eng.run_until_drained(end.saturating_add(drain_limit_ms(scn)))?;
    let count = |only_fwd: bool| -> Vec<usize> {
        eng.mfib
            .iter()
            .map(|m| {
                m.values()
                    .filter(|r| r.group == scn.group && (!only_fwd || !r.oifs.is_empty()))
                    .count()
            })
            .collect()
    };
    let (state_fwd, state_all) = (count(true), count(false));
    let control = with_control.then_some((eng.control_msgs, eng.control_bytes));
    let o = Observed {
        first: &eng.packets[0],
        last: &eng.packets[eng.packets.len() - 1],
        state_fwd,
        state_all,
        state_scope: "routers",
        control,
        warmup_control: if with_control { eng.warmup_control } else { None },
        convergence_ms: eng.last_change_ms,
        failure: None,
    };
    Ok(summarize(scn, mode, model, o, eng.events, started))
}

/// Runs one mode on a scenario.
pub fn simulate(scn: &Scenario, mode: Mode, opts: &SimOptions) -> Result<ModeResult, SimError> {
    let started = Instant::now();
    let stubs = scn.stub_routers();
    match mode {
        Mode::Dvmrp => {
            let mut eng = Engine::new(&scn.topo, &stubs, scn.group, opts.max_events)?;
            let cost_metric = scn.topo.links.iter().all(|l| l.cost <= 31);
            eng.start_dvmrp(&opts.dvmrp, cost_metric);
            eng.run_until(opts.warmup_ms)?;
            let model = if cost_metric {
                "controlplane::dvmrp core per router, metric = link cost"
            } else {
                "controlplane::dvmrp core per router, hop-count metric (costs exceed DVMRP's 31)"
            };
            measure_engine(scn, mode, model.into(), eng, opts, true, started)
        }
        Mode::Linkstate => {
            let mut eng = Engine::new(&scn.topo, &stubs, scn.group, opts.max_events)?;
            eng.start_linkstate(&opts.linkstate);
            eng.run_until(opts.warmup_ms)?;
            let model = "controlplane::linkstate core per router (hellos, LSA flooding, SPT on \
                         first packet), metric = link cost";
            measure_engine(scn, mode, model.into(), eng, opts, true, started)
        }
        Mode::LinkstateSpf => {
            let mut eng = Engine::new(&scn.topo, &stubs, scn.group, opts.max_events)?;
            modes::install_linkstate(scn, &mut eng);
            let model = "computed: controlplane::linkstate::spf source tree, pruned to members, \
                         installed per router (no protocol)";
            measure_engine(scn, mode, model.into(), eng, opts, false, started)
        }
        Mode::Overlay => {
            let run = overlay::run(scn, opts, opts.seed)?;
            let o = Observed {
                first: &run.first,
                last: &run.last,
                state_fwd: run.host_state,
                state_all: vec![0; scn.topo.len()],
                state_scope: "hosts",
                control: Some((run.control_msgs, run.control_bytes)),
                warmup_control: Some(run.warmup_control),
                convergence_ms: run.converged_ms,
                failure: run.failure,
            };
            let model = format!(
                "controlplane::overlay::OverlayNode per host ({:?}, degree {}), RTT = 2 x underlay path cost, timers and warm-up x{}",
                opts.overlay_topology, opts.overlay_degree, run.timer_scale
            );
            Ok(summarize(scn, mode, model, o, run.events, started))
        }
        Mode::OverlaySpf => {
            let run = modes::overlay(scn, opts.overlay_degree);
            let o = Observed {
                first: &run.trace,
                last: &run.trace,
                state_fwd: run.host_state,
                state_all: vec![0; scn.topo.len()],
                state_scope: "hosts",
                control: None,
                warmup_control: None,
                convergence_ms: None,
                failure: None,
            };
            let model = format!(
                "computed: controlplane::linkstate::spf tree over a member mesh (MST + {} nearest), underlay shortest paths (no protocol)",
                opts.overlay_degree
            );
            Ok(summarize(scn, mode, model, o, 0, started))
        }
    }
}

/// Runs every mode in `modes` on the scenario.
pub fn run_modes(
    scn: &Scenario,
    modes: &[Mode],
    opts: &SimOptions,
    seed: Option<u64>,
) -> Result<SimReport, SimError> {
    let mut out = Vec::new();
    for &m in modes {
        out.push(simulate(scn, m, opts)?);
    }
    let hops = scn.topo.hop_counts(scn.source);
    let member_hops: Vec<usize> = scn.members.iter().filter_map(|&m| hops[m]).collect();
    Ok(SimReport {
        member_hops_max: member_hops.iter().copied().max().unwrap_or(0),
        members_beyond_dvmrp_infinity: member_hops.iter().filter(|&&h| h >= 32).count(),
        topology: scn.topo.name.clone(),
        routers: scn.topo.len(),
        links: scn.topo.links.len(),
        members: scn.members.len(),
        source: scn.source,
        seed,
        options: opts.clone(),
        modes: out,
    })
}

/// A simulation of a namespace-testbed topology, with every figure mapped back to the
/// testbed's own indices (what `compare` puts next to its measurements).
#[derive(Debug, Clone)]
pub struct TestbedSim {
    pub report: SimReport,
    /// Per mode (the order of `report.modes`): copies of the last packet on every link of the
    /// testbed topology (`topo.links[l]`), host access links included.
    pub link_copies: Vec<Vec<u32>>,
    /// Per mode: forwarding entries at every node of the testbed topology (`topo.nodes[n]`):
    /// MFIB routes with outgoing interfaces at routers, overlay routes with next hops at hosts
    /// (overlay modes); 0 elsewhere.
    pub state_per_node: Vec<Vec<usize>>,
}

/// Simulates exactly a testbed topology: its routers, link costs, sender and receivers (each
/// host a stub of its router, as the testbed wires it), in every mode of `modes`.
pub fn simulate_testbed(
    topo: &crate::topology::Topology,
    modes: &[Mode],
    opts: &SimOptions,
) -> Result<TestbedSim, SimError> {
    use crate::topology::{NodeKind, Plan};
    let (sim_topo, source, members) = SimTopology::from_testbed(topo)?;
    let plan = Plan::new(topo, 0);
    // `from_testbed` gives each router its testbed node index as id and keeps the testbed's
    // order of router-router links.
    let router_node: Vec<usize> = sim_topo.nodes.iter().map(|n| n.id as usize).collect();
    let ends = |l: &crate::topology::Link| (plan.idx(&l.a), plan.idx(&l.b));
    let router_links: Vec<usize> = (0..topo.links.len())
        .filter(|&l| {
            let (a, b) = ends(&topo.links[l]);
            topo.nodes[a].kind == NodeKind::Router && topo.nodes[b].kind == NodeKind::Router
        })
        .collect();
    let host_of_stub: Vec<usize> = std::iter::once(&topo.traffic.sender)
        .chain(&topo.traffic.receivers)
        .map(|h| plan.idx(h))
        .collect();
    let host_link: Vec<Option<usize>> = host_of_stub
        .iter()
        .map(|&h| {
            (0..topo.links.len()).find(|&l| {
                let (a, b) = ends(&topo.links[l]);
                a == h || b == h
            })
        })
        .collect();
    let scn = Scenario::new(sim_topo, source, members)?;
    let report = run_modes(&scn, modes, opts, None)?;
    let mut link_copies = Vec::new();
    let mut state_per_node = Vec::new();
    for m in &report.modes {
        let mut links = vec![0u32; topo.links.len()];
        for (s, &c) in m.link_copies.iter().enumerate() {
            if let Some(&l) = router_links.get(s) {
                links[l] += c;
            }
        }
        for (s, &c) in m.stub_copies.iter().enumerate() {
            if let Some(Some(l)) = host_link.get(s) {
                links[*l] += c;
            }
        }
        let mut state = vec![0usize; topo.nodes.len()];
        let per = if m.state_scope == "hosts" { &host_of_stub } else { &router_node };
        for (i, &n) in m.state_per_router.iter().enumerate() {
            if let Some(&node) = per.get(i) {
                state[node] += n;
            }
        }
        link_copies.push(links);
        state_per_node.push(state);
    }
    Ok(TestbedSim { report, link_copies, state_per_node })
}

/// A topology's own (source router, member routers), as testbed topologies name them.
pub type Endpoints = (usize, Vec<usize>);

/// Loads or generates a topology: a testbed built-in or `.toml` (which brings its own source
/// and members), a `.json` node/link file, `gen:transit-stub:N` or `gen:geometric:N`.
pub fn load_topology(spec: &str, seed: u64) -> Result<(SimTopology, Option<Endpoints>), SimError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    if let Some(rest) = spec.strip_prefix("gen:") {
        let (kind, n) = rest.split_once(':').ok_or_else(|| SimError::BadSpec(spec.into()))?;
        let n: usize = n.parse().map_err(|_| SimError::BadSpec(spec.into()))?;
        let t = match kind {
            "transit-stub" => topo::transit_stub(topo::TransitStubParams::for_size(n), &mut rng)?,
            "geometric" => topo::geometric(n, 3, &mut rng)?,
            _ => return Err(SimError::BadSpec(spec.into())),
        };
        return Ok((t, None));
    }
    if Path::new(spec).extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
        let text = std::fs::read_to_string(spec)
            .map_err(|source| SimError::Read { path: spec.into(), source })?;
        return Ok((SimTopology::from_json(&text, spec)?, None));
    }
    let t = crate::topology::Topology::load(spec).map_err(|e| SimError::Topology(e.to_string()))?;
    let (topo, source, members) = SimTopology::from_testbed(&t)?;
    Ok((topo, Some((source, members))))
}

/// The per-mode table.
pub fn table(r: &SimReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: {} routers, {} links, {} members (source router {}; farthest member {} hops, {} at >= 32)",
        r.topology,
        r.routers,
        r.links,
        r.members,
        r.source,
        r.member_hops_max,
        r.members_beyond_dvmrp_infinity
    );
    let _ = writeln!(
        s,
        "{:<13} {:>8} {:>8} {:>8} {:>8} {:>6} {:>6} {:>8} {:>6} {:>10} {:>12} {:>8} {:>9}",
        "mode",
        "deliver",
        "str.mean",
        "str.max",
        "stress.m",
        "s.max",
        "host",
        "state.m",
        "st.max",
        "ctl.msgs",
        "ctl.bytes",
        "conv ms",
        "wall ms"
    );
    for m in &r.modes {
        let opt = |v: Option<u64>| v.map_or_else(|| "n/a".to_owned(), |v| v.to_string());
        let _ = writeln!(
            s,
            "{:<13} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>6} {:>6} {:>8.2} {:>6} {:>10} {:>12} {:>8} {:>9}",
            m.mode.to_string(),
            m.delivery_ratio,
            m.stretch_mean,
            m.stretch_max,
            m.stress_mean,
            m.stress_max,
            m.host_stress_max,
            m.state_mean,
            m.state_max,
            opt(m.control_msgs),
            opt(m.control_bytes),
            opt(m.convergence_ms),
            m.wall_ms
        );
    }
    for m in &r.modes {
        if m.state_scope == "hosts" {
            let _ = writeln!(
                s,
                "{}: state columns count overlay routes at hosts; routers hold {} multicast entries",
                m.mode, m.state_all_total
            );
        }
        if let Some(f) = &m.failure {
            let _ = writeln!(
                s,
                "{}: host {} (router {}) crashed at {} ms, cutting off {} members: {}; {} probe copies lost over survivors, {} of {} probes incomplete after recovery",
                m.mode,
                f.failed_host,
                f.failed_router,
                f.failed_at_ms,
                f.members_cut,
                f.recovery_ms.map_or_else(
                    || "not recovered within the probe window".to_owned(),
                    |ms| format!("recovered after {ms} ms")
                ),
                f.probes_lost,
                f.incomplete_after_recovery,
                f.probes_sent
            );
        }
    }
    s
}

/// Writes `dir/simulate.json` and returns its path.
pub fn write_json(r: &SimReport, dir: &Path) -> Result<PathBuf, SimError> {
    std::fs::create_dir_all(dir)
        .map_err(|source| SimError::Write { path: dir.display().to_string(), source })?;
    let p = dir.join("simulate.json");
    let text = serde_json::to_string_pretty(r).map_err(|e| SimError::Write {
        path: p.display().to_string(),
        source: std::io::Error::other(e),
    })?;
    std::fs::write(&p, text)
        .map_err(|source| SimError::Write { path: p.display().to_string(), source })?;
    Ok(p)
}

#[cfg(test)]
mod tests;
