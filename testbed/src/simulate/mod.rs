//! `fanout-testbed simulate`: the control-plane cores driven in a discrete-event simulation,
//! without namespaces or packets on the wire, to measure multicast modes on topologies far
//! larger than one machine can host (docs/simulate.md).
//!
//! - [`topo`]: router graphs with coordinates; JSON loader, testbed TOML loader, generators
//! - [`engine`]: event queue, the real DVMRP cores, simulated MFIBs and data forwarding
//! - [`modes`]: the link-state and overlay modes (routes from `controlplane::linkstate::spf`)
//!
//! Every mode runs on the same [`Scenario`] (topology, source router, member routers, group) and
//! is measured the same way: after the control plane has had `warmup_ms` of simulated time, the
//! source sends `packets` packets and the *last* one (after any flood-and-prune transient) is
//! traced through the routers' MFIBs: per-link copies (stress), per-member arrival and path cost
//! (delivery, stretch against the unicast shortest path), MFIB entries per router (state).
//! Nothing is assumed from the mode's design; a mode that loses or duplicates packets shows it.

pub mod engine;
pub mod modes;
pub mod topo;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use controlplane::dvmrp::DvmrpConfig;
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
    #[error("unknown mode `{0}` (expected dvmrp, linkstate or overlay)")]
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
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Flood and prune with the real `controlplane::dvmrp` core on every router.
    Dvmrp,
    /// MOSPF-like: per-source shortest-path trees over link costs, pruned to members.
    Linkstate,
    /// End-system multicast: a source-rooted tree over a mesh of member hosts.
    Overlay,
}

impl std::str::FromStr for Mode {
    type Err = SimError;
    fn from_str(s: &str) -> Result<Self, SimError> {
        match s {
            "dvmrp" => Ok(Mode::Dvmrp),
            "linkstate" => Ok(Mode::Linkstate),
            "overlay" => Ok(Mode::Overlay),
            _ => Err(SimError::UnknownMode(s.to_owned())),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Dvmrp => "dvmrp",
            Mode::Linkstate => "linkstate",
            Mode::Overlay => "overlay",
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
    /// Overlay mesh: each member links to this many nearest members (plus a spanning tree).
    pub overlay_degree: usize,
    #[serde(skip)]
    pub dvmrp: DvmrpConfig,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            warmup_ms: 40_000,
            packets: 5,
            interval_ms: 2_000,
            max_events: 200_000_000,
            overlay_degree: 3,
            dvmrp: DvmrpConfig::default(),
        }
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
    /// Forwarding entries (MFIB routes with an outgoing interface, or overlay routes) per node.
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
    control: Option<(u64, u64)>,
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
        state_mean: mean(&state_f),
        state_max: o.state_fwd.iter().copied().max().unwrap_or(0),
        routers_with_state: o.state_fwd.iter().filter(|&&s| s > 0).count(),
        state_all_max: o.state_all.iter().copied().max().unwrap_or(0),
        state_all_total: o.state_all.iter().sum(),
        control_msgs: o.control.map(|c| c.0),
        control_bytes: o.control.map(|c| c.1),
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
        control,
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
            modes::install_linkstate(scn, &mut eng);
            let model =
                "controlplane::linkstate::spf source tree, pruned to members, installed per router";
            measure_engine(scn, mode, model.into(), eng, opts, false, started)
        }
        Mode::Overlay => {
            let run = modes::overlay(scn, opts.overlay_degree);
            let o = Observed {
                first: &run.trace,
                last: &run.trace,
                state_fwd: run.host_state,
                state_all: vec![0; scn.topo.len()],
                control: None,
            };
            let model = format!(
                "controlplane::linkstate::spf tree over a member mesh (MST + {} nearest), underlay shortest paths",
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
        "{:<10} {:>8} {:>8} {:>8} {:>8} {:>6} {:>6} {:>8} {:>6} {:>10} {:>12} {:>9}",
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
        "wall ms"
    );
    for m in &r.modes {
        let opt = |v: Option<u64>| v.map_or_else(|| "n/a".to_owned(), |v| v.to_string());
        let _ = writeln!(
            s,
            "{:<10} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>6} {:>6} {:>8.2} {:>6} {:>10} {:>12} {:>9}",
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
            m.wall_ms
        );
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
