//! `fanout-testbed compare <topology>`: IP multicast (kernel baseline, fanoutd static, DVMRP,
//! link-state) and overlay multicast on the same topology, the same hosts and the same traffic,
//! one mode after the other, measured the same way (docs/compare.md).
//!
//! Per mode: bring the lab up (protocol modes return once converged, see
//! [`Lab::wait_converged`]); **join** phase: the sender's stream starts, the receivers join
//! 300 ms later (join latency = first packet − join); **converge**: further short bursts until
//! every receiver gets packets (bounded); **idle** window: counters without data (control
//! traffic); **steady** phase: `packets` at `rate` — delivery, loss, duplicates, latency, and per
//! link the data copies from the counters (stress, wire packets, the paths taken → stretch);
//! router state; **failure** phase: a tree link goes down mid-stream (reconvergence = the longest
//! gap at the receivers); teardown (also on failure: the [`Lab`] guard).
//!
//! Invariants: every generator run is bounded in count and time; every wait polls with a
//! deadline; a mode that fails or cannot run is reported as such in its row, never dropped.
//! Submodules: [`recorder`] (receivers), [`metrics`] (figures, overlay tree), [`overlay`] (the
//! overlay hosts), [`output`] (tables, JSON, sim-vs-testbed), [`plot`] (SVG).

pub mod metrics;
pub mod output;
pub mod overlay;
pub mod plot;
pub mod recorder;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::bringup::{BringupError, Lab, UpOptions};
use crate::counters::{self, CountersError};
use crate::fanoutd::{FanoutdOptions, RoutingMode};
use crate::netns::NetNsError;
use crate::topology::{NodeKind, Plan, RouterSoftware, Topology};
use crate::traffic::{self, SendConfig, SendReport, TrafficError};

use metrics::{LinkFigure, OverlayTree};
use recorder::{Recorder, Recording};

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error(transparent)]
    Bringup(#[from] BringupError),
    #[error(transparent)]
    Traffic(#[from] TrafficError),
    #[error(transparent)]
    Counters(#[from] CountersError),
    #[error(transparent)]
    NetNs(#[from] NetNsError),
    #[error(transparent)]
    Cmd(#[from] crate::cmd::CmdError),
    #[error(transparent)]
    Run(#[from] crate::run::RunError),
    #[error("topology: {0}")]
    Topology(String),
    #[error("overlay: {0}")]
    Overlay(String),
    #[error(
        "unknown mode `{0}` (expected kernel, static, dvmrp, linkstate, overlay or overlay-so)"
    )]
    UnknownMode(String),
    #[error("bad options: {0}")]
    Options(String),
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("plot {path}: {msg}")]
    Plot { path: String, msg: String },
}

/// The modes compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CompareMode {
    /// Linux ipmr with smcrouted's static (S,G) routes of the shortest-path tree (baseline).
    Kernel,
    /// fanoutd (AF_XDP data plane) with the same static routes.
    Static,
    /// fanoutd running DVMRP flood and prune.
    Dvmrp,
    /// fanoutd running the MOSPF-like link-state protocol.
    Linkstate,
    /// fanoutd with static overlay routes on the hosts; routers forward unicast only.
    Overlay,
    /// fanoutd in routing mode `overlay` on the hosts (the overlay protocol, self-organising
    /// mesh, [`crate::overlay_hosts`]); routers forward unicast only.
    OverlaySo,
}

impl CompareMode {
    pub const ALL: [CompareMode; 6] = [
        CompareMode::Kernel,
        CompareMode::Static,
        CompareMode::Dvmrp,
        CompareMode::Linkstate,
        CompareMode::Overlay,
        CompareMode::OverlaySo,
    ];

    pub fn is_ip(self) -> bool {
        !self.is_overlay()
    }

    pub fn is_overlay(self) -> bool {
        matches!(self, CompareMode::Overlay | CompareMode::OverlaySo)
    }
}

impl std::str::FromStr for CompareMode {
    type Err = CompareError;
    fn from_str(s: &str) -> Result<Self, CompareError> {
        match s {
            "kernel" => Ok(CompareMode::Kernel),
            "static" => Ok(CompareMode::Static),
            "dvmrp" => Ok(CompareMode::Dvmrp),
            "linkstate" => Ok(CompareMode::Linkstate),
            "overlay" => Ok(CompareMode::Overlay),
            "overlay-so" => Ok(CompareMode::OverlaySo),
            _ => Err(CompareError::UnknownMode(s.to_owned())),
        }
    }
}

impl std::fmt::Display for CompareMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CompareMode::Kernel => "kernel",
            CompareMode::Static => "static",
            CompareMode::Dvmrp => "dvmrp",
            CompareMode::Linkstate => "linkstate",
            CompareMode::Overlay => "overlay",
            CompareMode::OverlaySo => "overlay-so",
        })
    }
}

/// Parses `kernel,dvmrp,...`.
pub fn parse_modes(s: &str) -> Result<Vec<CompareMode>, CompareError> {
    let mut v: Vec<CompareMode> = s
        .split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    v.dedup();
    if v.is_empty() {
        return Err(CompareError::Options("no modes given".into()));
    }
    Ok(v)
}

/// What to run.
#[derive(Debug, Clone, Serialize)]
pub struct CompareOptions {
    pub topology: String,
    pub modes: Vec<CompareMode>,
    /// Packets of the steady phase.
    pub packets: u64,
    pub rate_pps: u64,
    /// IPv4 total length of the data packets.
    pub size: usize,
    /// Run the scripted link failure phase.
    pub failure: bool,
    /// Run a short flat-out burst (forwarded pps at saturation).
    pub saturation: bool,
    /// Run `simulate` on the same topology and compare.
    pub simulate: bool,
    /// Overlay mesh degree (the simulator's default is 3).
    pub overlay_degree: usize,
    /// Results go to `<results>/<run-id>/` unless `out` names the directory.
    pub results: PathBuf,
    pub out: Option<PathBuf>,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            topology: "diamond".into(),
            modes: vec![
                CompareMode::Kernel,
                CompareMode::Dvmrp,
                CompareMode::Linkstate,
                CompareMode::Overlay,
            ],
            packets: 1000,
            rate_pps: 500,
            size: 200,
            failure: true,
            saturation: false,
            simulate: true,
            overlay_degree: 3,
            results: PathBuf::from("results"),
            out: None,
        }
    }
}

impl CompareOptions {
    pub fn validate(&self) -> Result<(), CompareError> {
        if self.packets == 0 || self.packets > 1_000_000 {
            return Err(CompareError::Options(format!(
                "--packets {} is outside 1..=1000000",
                self.packets
            )));
        }
        if self.rate_pps == 0 || self.rate_pps > 200_000 {
            return Err(CompareError::Options(format!(
                "--rate {} is outside 1..=200000 packets/s",
                self.rate_pps
            )));
        }
        if self.packets / self.rate_pps > 120 {
            return Err(CompareError::Options(format!(
                "{} packets at {} pps take more than 120 s",
                self.packets, self.rate_pps
            )));
        }
        if !(traffic::MIN_SIZE..=traffic::MAX_SIZE).contains(&self.size) {
            return Err(TrafficError::BadSize(self.size).into());
        }
        if self.overlay_degree == 0 {
            return Err(CompareError::Options("overlay degree must be at least 1".into()));
        }
        Ok(())
    }
}

/// One receiver's figures in one mode.
#[derive(Debug, Clone, Serialize)]
pub struct ReceiverFigures {
    pub node: String,
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// Router-level cost of the path the packets took, and of the unicast shortest path.
    pub path_cost: Option<u64>,
    pub unicast_cost: Option<u64>,
    pub stretch: Option<f64>,
    /// The same end to end (host to host, access links included; an overlay relay's access link
    /// counts twice).
    pub e2e_path_cost: Option<u64>,
    pub e2e_unicast_cost: Option<u64>,
    pub e2e_stretch: Option<f64>,
    /// First packet after the join, in ms (`None`: nothing arrived).
    pub join_latency_ms: Option<f64>,
    /// Longest run of lost packets in the failure phase, in ms of stream, and whether the end of
    /// the stream arrived again.
    pub failure_gap_ms: Option<f64>,
    pub failure_recovered: Option<bool>,
}

/// Multicast state on one node.
#[derive(Debug, Clone, Serialize)]
pub struct NodeState {
    pub node: String,
    /// Entries for the group (kernel: `ip mroute`; fanoutd: `show mroute --json` [+ `show
    /// overlay --json` on overlay hosts]).
    pub entries: usize,
    /// Entries that forward (an outgoing interface or next hop; not prune/negative entries).
    pub forwarding: usize,
    /// Overlay next hops (overlay hosts only).
    pub next_hops: usize,
    /// Where the figure comes from.
    pub source: String,
}

/// The link failure of the failure phase.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub link: String,
    pub down_after_ms: u64,
    pub packets: u64,
    /// Largest gap over receivers, ms of stream.
    pub gap_ms_max: Option<f64>,
    /// Every receiver got the end of the stream again.
    pub recovered: bool,
}

/// Everything measured for one mode.
#[derive(Debug, Clone, Serialize)]
pub struct ModeReport {
    pub mode: CompareMode,
    /// `ok`, or why the mode was skipped or failed.
    pub status: String,
    pub description: String,
    /// The testbed run id the mode ran under (its namespaces are `ft<run>-<node>`).
    pub run: Option<String>,
    /// Bring-up time until the mode's control plane had converged (protocol modes) or the
    /// overlay hosts showed their routes.
    pub converge_ms: Option<f64>,
    pub sent: u64,
    pub delivery_ratio: f64,
    pub loss: f64,
    pub duplicates: u64,
    pub reordered: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// Router-level stretch (as the simulation measures it).
    pub stretch_mean: Option<f64>,
    pub stretch_max: Option<f64>,
    /// End-to-end stretch (host to host).
    pub e2e_stretch_mean: Option<f64>,
    pub e2e_stretch_max: Option<f64>,
    /// Copies per data packet over links that carried data (all links / router links only).
    pub stress_mean: f64,
    pub stress_max: u32,
    pub router_stress_mean: f64,
    pub router_stress_max: u32,
    pub used_links: usize,
    pub wire_per_delivered: f64,
    pub router_state_mean: f64,
    pub router_state_max: usize,
    pub routers_with_state: usize,
    pub control_bytes_per_s: f64,
    pub control_packets_per_s: f64,
    pub join_latency_ms_mean: Option<f64>,
    pub join_latency_ms_max: Option<f64>,
    pub failure: Option<Failure>,
    /// Forwarded pps at saturation: copies reaching the receivers' links per second of a
    /// flat-out burst (`None`: not run, see `saturation_note`).
    pub saturation_pps: Option<f64>,
    pub saturation_offered_pps: Option<f64>,
    pub saturation_note: String,
    /// The generated router/host configs (file name, text).
    pub configs: Vec<(String, String)>,
    pub receivers: Vec<ReceiverFigures>,
    pub links: Vec<LinkFigure>,
    pub state: Vec<NodeState>,
    /// Per-link copies the mode's design predicts (a->b, b->a), and the links where the
    /// measurement differs.
    pub expected_copies: Vec<(u32, u32)>,
    pub mismatches: Vec<String>,
    pub overlay_tree: Option<OverlayTree>,
    pub notes: Vec<String>,
    /// Latencies of the steady phase (all receivers), µs, sorted; for the plots.
    #[serde(skip)]
    pub latencies_us: Vec<f64>,
}

impl ModeReport {
    fn empty(mode: CompareMode, status: String) -> Self {
        ModeReport {
            mode,
            status,
            description: describe(mode),
            run: None,
            converge_ms: None,
            sent: 0,
            delivery_ratio: 0.0,
            loss: 0.0,
            duplicates: 0,
            reordered: 0,
            p50_us: 0.0,
            p99_us: 0.0,
            stretch_mean: None,
            stretch_max: None,
            e2e_stretch_mean: None,
            e2e_stretch_max: None,
            stress_mean: 0.0,
            stress_max: 0,
            router_stress_mean: 0.0,
            router_stress_max: 0,
            used_links: 0,
            wire_per_delivered: 0.0,
            router_state_mean: 0.0,
            router_state_max: 0,
            routers_with_state: 0,
            control_bytes_per_s: 0.0,
            control_packets_per_s: 0.0,
            join_latency_ms_mean: None,
            join_latency_ms_max: None,
            failure: None,
            saturation_pps: None,
            saturation_offered_pps: None,
            saturation_note: String::new(),
            configs: Vec::new(),
            receivers: Vec::new(),
            links: Vec::new(),
            state: Vec::new(),
            expected_copies: Vec::new(),
            mismatches: Vec::new(),
            overlay_tree: None,
            notes: Vec::new(),
            latencies_us: Vec::new(),
        }
    }

    pub fn ok(&self) -> bool {
        self.status == "ok"
    }
}

fn describe(mode: CompareMode) -> String {
    match mode {
        CompareMode::Kernel => "Linux ipmr + smcrouted, static (S,G) routes of the shortest-path tree",
        CompareMode::Static => "fanoutd (AF_XDP) on every router, static (S,G) routes of the shortest-path tree",
        CompareMode::Dvmrp => "fanoutd on every router, DVMRP flood and prune (fast test timers)",
        CompareMode::Linkstate => "fanoutd on every router, link-state (MOSPF-like) trees (fast test timers)",
        CompareMode::Overlay => "fanoutd with static overlay routes on the hosts (tree: simulate's overlay-spf construction); routers forward unicast only",
        CompareMode::OverlaySo => "fanoutd in overlay routing mode on the hosts (overlay protocol, self-organising mesh); routers forward unicast only",
    }
    .to_owned()
}

/// The whole comparison (compare.json).
#[derive(Debug, Clone, Serialize)]
pub struct CompareReport {
    pub run_id: String,
    pub topology: String,
    pub options: CompareOptions,
    pub sender: String,
    pub receivers: Vec<String>,
    pub group: Ipv4Addr,
    pub modes: Vec<ModeReport>,
    pub sim: Option<output::SimAgreement>,
    pub out_dir: PathBuf,
    pub files: Vec<String>,
    pub wall_s: f64,
}

const JOIN_DELAY: Duration = Duration::from_millis(300);
const JOIN_PHASE: Duration = Duration::from_secs(2);
const IDLE_WINDOW: Duration = Duration::from_secs(2);
const FAILURE_PHASE: Duration = Duration::from_secs(4);
const FAILURE_AT: Duration = Duration::from_secs(1);
const SATURATION_BURST: Duration = Duration::from_millis(500);
const SATURATION_MAX_PACKETS: u64 = 500_000;

/// Runs the comparison and writes the results directory.
pub fn run(
    opts: &CompareOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<CompareReport, CompareError> {
    opts.validate()?;
    let started = Instant::now();
    let topo = Topology::load(&opts.topology).map_err(|e| CompareError::Topology(e.to_string()))?;
    let run_id = format!(
        "{}-compare-{}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        topo.name,
        std::process::id()
    );
    let out_dir = opts.out.clone().unwrap_or_else(|| opts.results.join(&run_id));
    std::fs::create_dir_all(&out_dir).map_err(werr(&out_dir))?;
    let tp = out_dir.join("topology.toml");
    std::fs::write(&tp, toml::to_string(&topo).unwrap_or_default()).map_err(werr(&tp))?;
    let mut modes = Vec::new();
    for (i, &mode) in opts.modes.iter().enumerate() {
        progress(&format!("[{}/{}] {mode}: {}", i + 1, opts.modes.len(), describe(mode)));
        let t0 = Instant::now();
        let r = match run_mode(&topo, mode, opts, &out_dir, progress) {
            Ok(r) => r,
            Err(e) => {
                let msg = format!("failed: {e}");
                progress(&format!("{mode}: {msg}"));
                ModeReport::empty(mode, msg)
            }
        };
        progress(&format!("{mode}: {} in {:.1} s", r.status, t0.elapsed().as_secs_f64()));
        modes.push(r);
    }
    let sim = if opts.simulate {
        progress("simulating the same topology (simulate's engine) for the agreement check");
        Some(output::sim_agreement(&topo, opts, &modes))
    } else {
        None
    };
    let plan = Plan::new(&topo, 0);
    let mut report = CompareReport {
        run_id,
        topology: topo.name.clone(),
        options: opts.clone(),
        sender: topo.traffic.sender.clone(),
        receivers: plan.receivers(None),
        group: topo.traffic.groups[0],
        modes,
        sim,
        out_dir: out_dir.clone(),
        files: Vec::new(),
        wall_s: 0.0,
    };
    report.files = output::write_all(&report, &plan)?;
    report.wall_s = started.elapsed().as_secs_f64();
    let p = out_dir.join("compare.json");
    let json = serde_json::to_string_pretty(&report).unwrap_or_default();
    std::fs::write(&p, json).map_err(werr(&p))?;
    Ok(report)
}

pub(crate) fn werr(p: &Path) -> impl Fn(std::io::Error) -> CompareError + '_ {
    move |source| CompareError::Write { path: p.display().to_string(), source }
}

/// Brings the lab up for `mode`, or says why the mode cannot run here.
fn bring_up(topo: &Topology, mode: CompareMode) -> Result<Lab, CompareError> {
    let need_fanoutd = mode != CompareMode::Kernel;
    if need_fanoutd {
        crate::fanoutd::fanoutd_binary()
            .and(crate::fanoutd::fanoutctl_binary())
            .map_err(|e| CompareError::Options(e.to_string()))?;
    }
    let (router, fo) = match mode {
        CompareMode::Kernel => (RouterSoftware::Kernel, FanoutdOptions::default()),
        CompareMode::Static => (RouterSoftware::Fanoutd, FanoutdOptions::default()),
        CompareMode::Dvmrp => (RouterSoftware::Fanoutd, FanoutdOptions::mode(RoutingMode::Dvmrp)),
        CompareMode::Linkstate => {
            (RouterSoftware::Fanoutd, FanoutdOptions::mode(RoutingMode::Linkstate))
        }
        CompareMode::Overlay | CompareMode::OverlaySo => {
            (RouterSoftware::None, FanoutdOptions::default())
        }
    };
    Ok(Lab::up_with(topo, &UpOptions { router: Some(router), fanout: None }, &fo)?)
}

type GenThread = std::thread::JoinHandle<Result<Result<SendReport, TrafficError>, NetNsError>>;

struct Sender {
    ns: crate::netns::NetNs,
    cfg: SendConfig,
}

impl Sender {
    fn config(&self, count: u64, rate: u64) -> SendConfig {
        let mut c = self.cfg.clone();
        c.count = Some(count);
        c.rate_pps = Some(rate);
        c.duration = Some(Duration::from_secs(count / rate + 10));
        c
    }

    fn spawn(&self, count: u64, rate: u64) -> Result<GenThread, CompareError> {
        let c = self.config(count, rate);
        c.validate()?;
        Ok(self.ns.spawn(move || traffic::send(&c))?)
    }

    /// Flat out, bounded by `count` and `dur`.
    fn send_flat(&self, count: u64, dur: Duration) -> Result<SendReport, CompareError> {
        let mut c = self.cfg.clone();
        c.count = Some(count);
        c.rate_pps = None;
        c.duration = Some(dur);
        c.batch = 64;
        c.validate()?;
        Ok(self.ns.run(|| traffic::send(&c))??)
    }

    fn send(&self, count: u64, rate: u64) -> Result<SendReport, CompareError> {
        let c = self.config(count, rate);
        c.validate()?;
        Ok(self.ns.run(|| traffic::send(&c))??)
    }
}

fn join_gen(h: GenThread) -> Result<SendReport, CompareError> {
    match h.join() {
        Ok(r) => Ok(r??),
        Err(_) => Err(TrafficError::Panicked.into()),
    }
}

/// Copies the run directory's configs and logs into `dir`.
fn save_configs(lab: &Lab, dir: &Path) {
    let _ = std::fs::create_dir_all(dir);
    if let Ok(rd) = std::fs::read_dir(crate::run::run_dir(lab.run_id())) {
        for e in rd.filter_map(Result::ok) {
            let p = e.path();
            if matches!(p.extension().and_then(|x| x.to_str()), Some("conf" | "toml" | "log")) {
                let _ = std::fs::copy(&p, dir.join(e.file_name()));
            }
        }
    }
}

/// The config files (not the logs) of a saved configs directory, sorted by name.
fn read_configs(dir: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| {
                    matches!(e.path().extension().and_then(|x| x.to_str()), Some("conf" | "toml"))
                })
                .filter_map(|e| {
                    let text = std::fs::read_to_string(e.path()).ok()?;
                    Some((e.file_name().to_string_lossy().into_owned(), text))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Copies every file of `from` into `to` (the overlay hosts' configs and logs).
fn save_dir(from: &Path, to: &Path) {
    let _ = std::fs::create_dir_all(to);
    if let Ok(rd) = std::fs::read_dir(from) {
        for e in rd.filter_map(Result::ok) {
            let p = e.path();
            if matches!(p.extension().and_then(|x| x.to_str()), Some("toml" | "log")) {
                let _ = std::fs::copy(&p, to.join(e.file_name()));
            }
        }
    }
}

/// The overlay protocol's current tree for the sender's stream (every host's parent from its
/// `show overlay --json`), and each host's state (in the tree: 1 entry; next hops = children).
fn so_tree(
    o: &crate::overlay_hosts::OverlayHosts,
    plan: &Plan,
    group: Ipv4Addr,
    degree: usize,
) -> (Option<OverlayTree>, Vec<NodeState>) {
    let origin = o.hosts[0].address;
    let pos_of = |a: Ipv4Addr| o.hosts.iter().position(|h| h.address == a);
    let mut parent = vec![None; o.hosts.len()];
    let mut complete = true;
    let mut state = Vec::new();
    for (i, h) in o.hosts.iter().enumerate() {
        let t = o.show(i).and_then(|d| {
            d.groups
                .into_iter()
                .find(|g| g.group == group)
                .and_then(|g| g.trees.into_iter().find(|t| t.origin == origin))
        });
        match t {
            Some(t) => {
                if i > 0 {
                    parent[i] = t.parent.and_then(pos_of);
                    complete &= parent[i].is_some();
                }
                state.push(NodeState {
                    node: h.node.clone(),
                    entries: 1,
                    forwarding: usize::from(!t.children.is_empty()),
                    next_hops: t.children.len(),
                    source: "fanoutctl show overlay --json (host, protocol tree)".into(),
                });
            }
            None => complete = false,
        }
    }
    let hosts = o.hosts.iter().map(|h| plan.idx(&h.node)).collect();
    (complete.then_some(OverlayTree { hosts, parent, degree }), state)
}

/// Waits until every recorder has stopped receiving (idle for 300 ms, at most 3 s).
fn settle(recs: &[Recorder]) {
    let total =
        || recs.iter().map(|r| r.count.load(std::sync::atomic::Ordering::Relaxed)).sum::<u64>();
    let mut last = total();
    let mut still = Instant::now();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(50));
        let now = total();
        if now != last {
            last = now;
            still = Instant::now();
        } else if still.elapsed() >= Duration::from_millis(300) {
            return;
        }
    }
}

/// A router-router link of the IP tree whose loss leaves every receiver reachable.
pub fn failure_link(plan: &Plan, receivers: &[String]) -> Option<usize> {
    let sender = plan.idx(&plan.topo.traffic.sender);
    let rx: Vec<usize> = receivers.iter().map(|r| plan.idx(r)).collect();
    plan.tree_links(receivers).into_iter().map(|(l, _, _)| l).find(|&l| {
        let link = &plan.topo.links[l];
        let routers = [&link.a, &link.b]
            .iter()
            .all(|n| plan.topo.nodes[plan.idx(n)].kind == NodeKind::Router);
        if !routers {
            return false;
        }
        // Reachability without link l (hosts do not forward).
        let n = plan.topo.nodes.len();
        let mut seen = vec![false; n];
        let mut stack = vec![sender];
        seen[sender] = true;
        while let Some(u) = stack.pop() {
            if u != sender && plan.topo.nodes[u].kind == NodeKind::Host {
                continue;
            }
            for p in &plan.ports[u] {
                if p.link != l && !seen[p.peer_node] {
                    seen[p.peer_node] = true;
                    stack.push(p.peer_node);
                }
            }
        }
        rx.iter().all(|&r| seen[r])
    })
}

fn router_state(lab: &Lab, group: Ipv4Addr) -> Vec<NodeState> {
    let plan = &lab.plan;
    let mut out = Vec::new();
    for (i, n) in plan.topo.nodes.iter().enumerate() {
        if n.kind != NodeKind::Router {
            continue;
        }
        let (entries, forwarding, source) = match lab.software[i] {
            RouterSoftware::Fanoutd => {
                match lab.fanoutctl(&n.name, &["show", "mroute", "--json"]) {
                    Ok(j) => match (
                        metrics::fanoutd_entries(&j, group),
                        metrics::fanoutd_fwd_entries(&j, group),
                    ) {
                        (Some(e), Some(f)) => (e, f, "fanoutctl show mroute --json".to_owned()),
                        _ => (0, 0, format!("unreadable `show mroute --json`: {}", j.trim())),
                    },
                    Err(e) => (0, 0, format!("fanoutctl failed: {e}")),
                }
            }
            RouterSoftware::Kernel | RouterSoftware::None => {
                let ns = plan.ns_name(i);
                match crate::cmd::run(
                    &mut crate::cmd::command("ip", ["-n", ns.as_str(), "mroute", "show"]),
                    None,
                ) {
                    Ok(t) => (
                        metrics::kernel_mroute_entries(&t, group),
                        metrics::kernel_mroute_fwd_entries(&t, group),
                        "ip mroute show".to_owned(),
                    ),
                    Err(e) => (0, 0, format!("ip mroute failed: {e}")),
                }
            }
        };
        out.push(NodeState { node: n.name.clone(), entries, forwarding, next_hops: 0, source });
    }
    out
}

fn run_mode(
    topo: &Topology,
    mode: CompareMode,
    opts: &CompareOptions,
    out_dir: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<ModeReport, CompareError> {
    let t_up = Instant::now();
    let mut lab = match bring_up(topo, mode) {
        Ok(l) => l,
        Err(CompareError::Options(why)) => {
            return Ok(ModeReport::empty(mode, format!("skipped: {why}")));
        }
        Err(e) => return Err(e),
    };
    let plan = lab.plan.clone();
    let group = plan.topo.traffic.groups[0];
    let port = plan.topo.traffic.port;
    let sender_idx = plan.idx(&plan.topo.traffic.sender);
    let receivers = lab.receivers.clone();
    let rx_idx: Vec<usize> = receivers.iter().map(|r| plan.idx(r)).collect();
    let mut rep = ModeReport::empty(mode, "ok".into());
    rep.run = Some(lab.state.run.clone());
    if plan.topo.traffic.groups.len() > 1 {
        rep.notes.push(format!("only the first group ({group}) is used"));
    }
    let source_addr = plan.ports[sender_idx][0].addr;
    let mut deployment = None;
    let mut so_hosts = None;
    // Where the generator writes and the receivers join (the lab ports in IP modes).
    let mut send_if = plan.ports[sender_idx][0].ifname.clone();
    let mut send_src = source_addr;
    let mut recv_addrs: Vec<Ipv4Addr> = rx_idx.iter().map(|&i| plan.ports[i][0].addr).collect();
    if mode == CompareMode::Overlay {
        let tree = metrics::overlay_tree(&plan, sender_idx, &rx_idx, opts.overlay_degree);
        progress(&format!("overlay tree: {}", output::tree_text(&plan, &tree)));
        deployment = Some(overlay::deploy(&mut lab, tree, group)?);
        overlay::GEN_IF.clone_into(&mut send_if);
        recv_addrs = vec![overlay::RECV_ADDR; rx_idx.len()];
    }
    if mode == CompareMode::OverlaySo {
        let names: Vec<String> = std::iter::once(plan.topo.traffic.sender.clone())
            .chain(receivers.iter().cloned())
            .collect();
        let o = crate::overlay_hosts::OverlayHosts::start(
            &lab,
            &crate::overlay_hosts::OverlayOptions::new(
                names,
                group,
                crate::overlay_hosts::OverlayTopology::SelfOrganising {
                    target_degree: opts.overlay_degree,
                    max_degree: 2 * opts.overlay_degree,
                    probe_interval: Duration::from_millis(500),
                },
            ),
        )
        .map_err(|e| CompareError::Overlay(e.to_string()))?;
        send_if.clone_from(&o.hosts[0].app_dev);
        send_src = o.hosts[0].app_addr;
        recv_addrs = o.hosts[1..].iter().map(|h| h.app_addr).collect();
        so_hosts = Some(o);
    }
    rep.converge_ms = Some(t_up.elapsed().as_secs_f64() * 1000.0);
    progress(&format!("{mode}: run {} up in {:.1} s", lab.state.run, t_up.elapsed().as_secs_f64()));
    let sender = Sender {
        ns: lab.ns(&plan.topo.traffic.sender),
        cfg: SendConfig {
            ifname: send_if,
            src: Some(send_src),
            groups: vec![group],
            port,
            ttl: 16,
            size: opts.size,
            count: None,
            duration: None,
            rate_pps: None,
            batch: 8,
        },
    };
    let rate = opts.rate_pps;
    let max_life = Duration::from_secs(opts.packets / rate + 120);

    // Join phase: the stream runs before anyone has joined.
    let join_count = (rate * JOIN_PHASE.as_millis() as u64 / 1000).max(10);
    let join_from = traffic::mono_ns();
    let gen = sender.spawn(join_count, rate)?;
    std::thread::sleep(JOIN_DELAY);
    let mut recs = Vec::new();
    for (r, &addr) in receivers.iter().zip(&recv_addrs) {
        recs.push(recorder::start(&lab.ns(r), r, addr, group, port, max_life)?);
    }
    join_gen(gen)?;
    let join_to = traffic::mono_ns();
    settle(&recs);

    // Converge: until every receiver gets packets of a fresh burst (bounded).
    let t_conv = Instant::now();
    let mut converged = recs.iter().all(|r| {
        r.latest_sent_ns.load(std::sync::atomic::Ordering::Relaxed)
            >= join_to.saturating_sub(500_000_000)
    });
    let mut bursts = 0;
    while !converged && bursts < 10 {
        bursts += 1;
        let from = traffic::mono_ns();
        sender.send((rate / 2).max(5), rate)?;
        settle(&recs);
        converged = recs
            .iter()
            .all(|r| r.latest_sent_ns.load(std::sync::atomic::Ordering::Relaxed) >= from);
    }
    if !converged {
        rep.notes.push(format!(
            "not every receiver got packets after {bursts} extra bursts ({:.1} s); measuring anyway",
            t_conv.elapsed().as_secs_f64()
        ));
    } else if bursts > 0 {
        rep.notes.push(format!(
            "converged after {bursts} extra burst(s) ({:.1} s)",
            t_conv.elapsed().as_secs_f64()
        ));
    }

    // Idle window: control traffic only.
    let idle0 = counters::snapshot(&plan)?;
    let ti = Instant::now();
    std::thread::sleep(IDLE_WINDOW);
    let idle1 = counters::snapshot(&plan)?;
    let idle_s = ti.elapsed().as_secs_f64();
    let idle = idle1.delta(&idle0);

    // Steady phase.
    progress(&format!("{mode}: sending {} packets at {rate} pps", opts.packets));
    let s0 = counters::snapshot(&plan)?;
    let ts = Instant::now();
    let steady_from = traffic::mono_ns();
    let send = sender.send(opts.packets, rate)?;
    let steady_to = traffic::mono_ns();
    settle(&recs);
    let s1 = counters::snapshot(&plan)?;
    let steady_s = ts.elapsed().as_secs_f64();
    let steady = s1.delta(&s0);

    // State while the stream's state is fresh.
    let mut state = router_state(&lab, group);
    if let Some(d) = &deployment {
        for &h in &d.tree.hosts {
            let name = plan.topo.nodes[h].name.clone();
            match overlay::host_state(&lab, h, group) {
                Some((entries, next_hops)) => state.push(NodeState {
                    node: name,
                    entries,
                    forwarding: usize::from(next_hops > 0),
                    next_hops,
                    source: "fanoutctl show mroute/overlay --json (host)".into(),
                }),
                None => rep.notes.push(format!("{name}: overlay state unreadable")),
            }
        }
    }
    let mut tree = deployment.as_ref().map(|d| d.tree.clone());
    if let Some(o) = &so_hosts {
        let (t, st) = so_tree(o, &plan, group, opts.overlay_degree);
        match t {
            Some(t) => {
                progress(&format!("overlay-so tree: {}", output::tree_text(&plan, &t)));
                tree = Some(t);
            }
            None => rep.notes.push("the overlay protocol's tree could not be read from `show overlay --json`; no stretch".into()),
        }
        state.extend(st);
    }

    // Saturation: a short flat-out burst, before the failure phase leaves a link down.
    if opts.saturation {
        let s0 = counters::snapshot(&plan)?;
        let burst = sender.send_flat(SATURATION_MAX_PACKETS, SATURATION_BURST)?;
        settle(&recs);
        let s1 = counters::snapshot(&plan)?;
        let d = s1.delta(&s0);
        let copies: u64 = d
            .links
            .iter()
            .map(|l| {
                let (a, b) = (plan.idx(&l.a), plan.idx(&l.b));
                if rx_idx.contains(&b) {
                    l.a_to_b()
                } else if rx_idx.contains(&a) {
                    l.b_to_a()
                } else {
                    0
                }
            })
            .sum();
        rep.saturation_pps = Some(copies as f64 / burst.elapsed_s.max(1e-9));
        rep.saturation_offered_pps = Some(burst.pps);
        rep.saturation_note = format!(
            "flat-out burst of {} packets in {:.2} s; copies reaching the receivers' links per second (generator and routers share the machine's cores)",
            burst.sent, burst.elapsed_s
        );
    } else {
        rep.saturation_note =
            "skipped (run with --saturation; `fanout-testbed bench` measures it in depth)".into();
    }

    // Failure phase.
    let mut failure_window = None;
    if opts.failure {
        match failure_link(&plan, &receivers) {
            Some(l) => {
                let link = plan.topo.links[l].clone();
                let count = rate * FAILURE_PHASE.as_millis() as u64 / 1000;
                progress(&format!("{mode}: link {}-{} goes down during a {count}-packet stream", link.a, link.b));
                let from = traffic::mono_ns();
                let gen = sender.spawn(count, rate)?;
                std::thread::sleep(FAILURE_AT);
                let down = lab.set_link(&link.a, &link.b, false);
                let sent = join_gen(gen)?;
                let to = traffic::mono_ns();
                settle(&recs);
                down?;
                failure_window = Some((format!("{}-{}", link.a, link.b), from, to, sent.sent));
            }
            None => rep.notes.push(
                "failure phase skipped: no router-router tree link whose loss leaves every receiver reachable"
                    .into(),
            ),
        }
    }
    let cfg_dir = out_dir.join(format!("configs-{mode}"));
    save_configs(&lab, &cfg_dir);
    if let Some(o) = so_hosts.take() {
        save_dir(&o.dir, &cfg_dir);
        o.stop();
    }
    rep.configs = read_configs(&cfg_dir);
    let mut recordings: Vec<(String, Recording)> = Vec::new();
    for r in recs {
        let node = r.node.clone();
        recordings.push((node, r.finish()?));
    }
    lab.down()?;

    // Figures.
    rep.sent = send.sent;
    let links = metrics::link_figures(&plan, &steady, steady_s, &idle, idle_s, send.sent);
    let paths = match (&tree, mode.is_overlay()) {
        (Some(t), _) => metrics::overlay_path_costs(&plan, t),
        (None, false) => metrics::measured_path_costs(&plan, &links, sender_idx, &rx_idx),
        (None, true) => vec![None; rx_idx.len()],
    };
    let e2e = metrics::end_to_end_costs(&plan, sender_idx, &rx_idx, &paths, tree.as_ref());
    let mut all_lat = Vec::new();
    let mut delivered = 0u64;
    let mut joins = Vec::new();
    let mut gaps = Vec::new();
    let mut all_recovered = true;
    for (k, (node, rec)) in recordings.iter().enumerate() {
        let ph = recorder::phase(rec, steady_from, steady_to);
        delivered += ph.received;
        let lat = traffic::Latency::from_ns(&mut ph.latencies_ns.clone());
        all_lat.extend(ph.latencies_ns.iter().map(|&n| n as f64 / 1000.0));
        let jp = recorder::phase(rec, join_from, join_to);
        let first = jp.first_recv_ns.or_else(|| rec.arrivals.iter().map(|a| a.recv_ns).min());
        let join_ms = first.map(|f| f.saturating_sub(rec.join_ns) as f64 / 1e6);
        if let Some(j) = join_ms {
            joins.push(j);
        }
        let (gap_ms, recovered) = match &failure_window {
            Some((_, from, to, sent)) => {
                let fp = recorder::phase(rec, *from, *to);
                let (gap, ok) = recorder::longest_gap(&fp.seqs, *sent);
                let ms = gap as f64 * 1000.0 / rate as f64;
                gaps.push(ms);
                all_recovered &= ok;
                (Some(ms), Some(ok))
            }
            None => (None, None),
        };
        let unicast = metrics::unicast_cost(&plan, sender_idx, rx_idx[k]);
        rep.receivers.push(ReceiverFigures {
            node: node.clone(),
            received: ph.received,
            lost: send.sent.saturating_sub(ph.received),
            duplicates: ph.duplicates,
            reordered: ph.reordered,
            p50_us: lat.p50_us,
            p99_us: lat.p99_us,
            path_cost: paths[k],
            unicast_cost: unicast,
            stretch: metrics::stretch(paths[k], unicast),
            e2e_path_cost: e2e[k],
            e2e_unicast_cost: metrics::end_to_end_unicast(&plan, sender_idx, rx_idx[k]),
            e2e_stretch: metrics::stretch(
                e2e[k],
                metrics::end_to_end_unicast(&plan, sender_idx, rx_idx[k]),
            ),
            join_latency_ms: join_ms,
            failure_gap_ms: gap_ms,
            failure_recovered: recovered,
        });
        if rec.overflow > 0 {
            rep.notes.push(format!("{node}: {} arrivals beyond the recording limit", rec.overflow));
        }
    }
    let expected = send.sent * rep.receivers.len() as u64;
    rep.delivery_ratio = if expected == 0 { 0.0 } else { delivered as f64 / expected as f64 };
    rep.loss = 1.0 - rep.delivery_ratio;
    rep.duplicates = rep.receivers.iter().map(|r| r.duplicates).sum();
    rep.reordered = rep.receivers.iter().map(|r| r.reordered).sum();
    all_lat.sort_by(f64::total_cmp);
    let mut lat_ns: Vec<u64> = all_lat.iter().map(|&u| (u * 1000.0) as u64).collect();
    let lat = traffic::Latency::from_ns(&mut lat_ns);
    rep.p50_us = lat.p50_us;
    rep.p99_us = lat.p99_us;
    rep.latencies_us = all_lat;
    let stretches: Vec<f64> = rep.receivers.iter().filter_map(|r| r.stretch).collect();
    if !stretches.is_empty() {
        let (m, x) = metrics::mean_max(&stretches);
        rep.stretch_mean = Some(m);
        rep.stretch_max = Some(x);
    }
    let e2e_s: Vec<f64> = rep.receivers.iter().filter_map(|r| r.e2e_stretch).collect();
    if !e2e_s.is_empty() {
        let (m, x) = metrics::mean_max(&e2e_s);
        rep.e2e_stretch_mean = Some(m);
        rep.e2e_stretch_max = Some(x);
    }
    let used: Vec<f64> =
        links.iter().filter(|l| l.stress > 0).map(|l| f64::from(l.stress)).collect();
    let (m, x) = metrics::mean_max(&used);
    rep.stress_mean = m;
    rep.stress_max = x as u32;
    rep.used_links = used.len();
    let used_r: Vec<f64> = links
        .iter()
        .filter(|l| l.stress > 0 && l.router_link)
        .map(|l| f64::from(l.stress))
        .collect();
    let (m, x) = metrics::mean_max(&used_r);
    rep.router_stress_mean = m;
    rep.router_stress_max = x as u32;
    let wire: f64 =
        links.iter().map(|l| (l.a_to_b_ratio + l.b_to_a_ratio) * send.sent as f64).sum();
    rep.wire_per_delivered = if delivered == 0 { 0.0 } else { wire / delivered as f64 };
    let routers: Vec<f64> = state
        .iter()
        .filter(|s| {
            plan.topo
                .node_index(&s.node)
                .is_some_and(|i| plan.topo.nodes[i].kind == NodeKind::Router)
        })
        .map(|s| s.entries as f64)
        .collect();
    let (m, x) = metrics::mean_max(&routers);
    rep.router_state_mean = m;
    rep.router_state_max = x as usize;
    rep.routers_with_state = routers.iter().filter(|&&e| e > 0.0).count();
    rep.state = state;
    let idle_bytes: u64 = idle.links.iter().map(|l| l.a_stats.rx_bytes + l.b_stats.rx_bytes).sum();
    let idle_pkts: u64 = idle.links.iter().map(|l| l.a_to_b() + l.b_to_a()).sum();
    rep.control_bytes_per_s = idle_bytes as f64 / idle_s.max(1e-9);
    rep.control_packets_per_s = idle_pkts as f64 / idle_s.max(1e-9);
    if !joins.is_empty() {
        let (m, x) = metrics::mean_max(&joins);
        rep.join_latency_ms_mean = Some(m);
        rep.join_latency_ms_max = Some(x);
    }
    if joins.len() < rep.receivers.len() {
        rep.notes.push(format!(
            "{} receiver(s) never got a packet after joining",
            rep.receivers.len() - joins.len()
        ));
    }
    if let Some((link, _, _, sent)) = failure_window {
        rep.failure = Some(Failure {
            link,
            down_after_ms: FAILURE_AT.as_millis() as u64,
            packets: sent,
            gap_ms_max: gaps.iter().copied().reduce(f64::max),
            recovered: all_recovered,
        });
    }
    rep.expected_copies = match (&tree, mode.is_overlay()) {
        (Some(t), _) => metrics::expected_overlay_copies(&plan, t),
        (None, false) => metrics::expected_ip_copies(&plan, &receivers),
        (None, true) => vec![(0, 0); plan.topo.links.len()],
    };
    for l in &links {
        let (ea, eb) = rep.expected_copies[l.link];
        if (l.a_to_b_copies, l.b_to_a_copies) != (ea, eb) {
            rep.mismatches.push(format!(
                "{}: measured {}/{} copies (a->b/b->a, ratios {:.2}/{:.2}), expected {ea}/{eb}",
                l.name, l.a_to_b_copies, l.b_to_a_copies, l.a_to_b_ratio, l.b_to_a_ratio
            ));
        }
    }
    rep.links = links;
    rep.overlay_tree = tree;
    Ok(rep)
}
