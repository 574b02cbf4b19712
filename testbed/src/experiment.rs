//! Experiments over a running [`Lab`]: one traffic run with full accounting, the
//! fanoutd-vs-kernel `bench`, and the `demo`.
//!
//! A traffic run: receivers join (real IGMP) → counters and CPU are sampled → the bounded
//! generator runs in the sender's namespace → receivers drain → counters and CPU are sampled
//! again. Every figure in the result is a delta over that window.
//!
//! CPU: for fanoutd, utime+stime of its pid (/proc/<pid>/stat). For the kernel router the work
//! happens in softirq context, which is not attributable to a namespace, so the system-wide busy
//! share from /proc/stat is reported instead (and is always reported, for both).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::bringup::{BringupError, Lab, UpOptions};
use crate::counters::{self, CountersError, Snapshot};
use crate::netns::NetNsError;
use crate::report;
use crate::topology::{RouterSoftware, Topology};
use crate::traffic::{self, RecvConfig, RecvReport, SendConfig, SendReport, TrafficError};

#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error(transparent)]
    Bringup(#[from] BringupError),
    #[error(transparent)]
    Traffic(#[from] TrafficError),
    #[error(transparent)]
    Counters(#[from] CountersError),
    #[error(transparent)]
    NetNs(#[from] NetNsError),
    #[error("cannot write results to {path}: {source}")]
    Results { path: String, source: std::io::Error },
}

/// Traffic parameters of one run.
#[derive(Debug, Clone, Serialize)]
pub struct TrafficOptions {
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    pub rate_pps: Option<u64>,
    pub size: usize,
    pub ttl: u8,
    pub batch: usize,
}

impl Default for TrafficOptions {
    fn default() -> Self {
        TrafficOptions {
            count: Some(1000),
            duration: Some(Duration::from_secs(10)),
            rate_pps: Some(1000),
            size: 64,
            ttl: 16,
            batch: 64,
        }
    }
}

/// CPU use of one router process over the run.
#[derive(Debug, Clone, Serialize)]
pub struct ProcCpu {
    pub node: String,
    pub pid: i32,
    pub cpu_s: f64,
    /// Share of one core over the measurement window.
    pub cpu_pct: f64,
}

/// System-wide CPU over the run (all cores).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SystemCpu {
    pub cores: usize,
    /// Busy share of the whole machine, 0..100.
    pub busy_pct: f64,
    /// Share spent in softirq (where kernel forwarding runs), 0..100.
    pub softirq_pct: f64,
}

/// Everything measured in one traffic run.
#[derive(Debug, Clone, Serialize)]
pub struct TrafficResult {
    pub options: TrafficOptions,
    pub send: SendReport,
    pub receivers: Vec<(String, RecvReport)>,
    pub links: Snapshot,
    pub router_cpu: Vec<ProcCpu>,
    pub system_cpu: SystemCpu,
    /// Copies that reached the receivers' links, per second of sending.
    pub forwarded_pps: f64,
    /// `1 - received / (sent * receivers)`.
    pub loss: f64,
    pub latency: traffic::Latency,
}

fn proc_cpu_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 (1-based), i.e. 11 and 12 after the ')'.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// (total, idle+iowait, softirq) jiffies from the aggregate line of /proc/stat.
fn system_ticks() -> (u64, u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return (0, 0, 0);
    };
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total, idle, v.get(6).copied().unwrap_or(0))
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Runs the topology's traffic once over `lab` and measures it.
pub fn run_traffic(lab: &Lab, opts: &TrafficOptions) -> Result<TrafficResult, ExperimentError> {
    let plan = &lab.plan;
    let tr = &plan.topo.traffic;
    let max = opts.duration.unwrap_or(traffic::MAX_DURATION).min(traffic::MAX_DURATION)
        + Duration::from_secs(30);
    let mut handles = Vec::new();
    for r in &lab.receivers {
        let i = plan.idx(r);
        let cfg = RecvConfig {
            iface_addr: plan.ports[i][0].addr,
            groups: tr.groups.clone(),
            port: tr.port,
            max_duration: max,
            drain: Duration::from_millis(300),
        };
        handles.push(traffic::start_receiver(&lab.ns(r), r, cfg)?);
    }
    let sender = plan.idx(&tr.sender);
    let send_cfg = SendConfig {
        ifname: plan.ports[sender][0].ifname.clone(),
        src: Some(plan.ports[sender][0].addr),
        groups: tr.groups.clone(),
        port: tr.port,
        ttl: opts.ttl,
        size: opts.size,
        count: opts.count,
        duration: opts.duration,
        rate_pps: opts.rate_pps,
        batch: opts.batch,
    };
    send_cfg.validate()?;
    let pids = lab.router_pids();
    let before = counters::snapshot(plan)?;
    let cpu0: Vec<Option<u64>> = pids.iter().map(|(_, p)| proc_cpu_ticks(*p)).collect();
    let sys0 = system_ticks();
    let t0 = std::time::Instant::now();
    let send = lab.ns(&tr.sender).run(|| traffic::send(&send_cfg))??;
    let wall = t0.elapsed().as_secs_f64();
    let sys1 = system_ticks();
    let cpu1: Vec<Option<u64>> = pids.iter().map(|(_, p)| proc_cpu_ticks(*p)).collect();
    let mut receivers = Vec::new();
    for h in handles {
        let node = h.node.clone();
        let mut rep = h.finish()?;
        rep.finish(Some(&send.per_group));
        receivers.push((node, rep));
    }
    let after = counters::snapshot(plan)?;
    let links = after.delta(&before);

    let tck = clk_tck();
    let router_cpu = pids
        .iter()
        .zip(cpu0.iter().zip(&cpu1))
        .filter_map(|((node, pid), (a, b))| {
            let d = b.zip(*a).map(|(b, a)| b.saturating_sub(a))?;
            let cpu_s = d as f64 / tck;
            Some(ProcCpu {
                node: node.clone(),
                pid: *pid,
                cpu_s,
                cpu_pct: 100.0 * cpu_s / wall.max(1e-9),
            })
        })
        .collect();
    let dt = sys1.0.saturating_sub(sys0.0).max(1) as f64;
    let system_cpu = SystemCpu {
        cores: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        busy_pct: 100.0 * (dt - sys1.1.saturating_sub(sys0.1) as f64) / dt,
        softirq_pct: 100.0 * sys1.2.saturating_sub(sys0.2) as f64 / dt,
    };

    let rx_nodes: Vec<usize> = lab.receivers.iter().map(|r| plan.idx(r)).collect();
    let delivered_copies: u64 = links
        .links
        .iter()
        .map(|l| {
            let (a, b) = (plan.idx(&l.a), plan.idx(&l.b));
            if rx_nodes.contains(&b) {
                l.b_stats.rx_packets
            } else if rx_nodes.contains(&a) {
                l.a_stats.rx_packets
            } else {
                0
            }
        })
        .sum();
    let received: u64 = receivers.iter().map(|(_, r)| r.received()).sum();
    let expected = send.sent * receivers.len() as u64;
    let mut all_lat: Vec<u64> =
        receivers.iter().flat_map(|(_, r)| r.latencies_ns.iter().copied()).collect();
    Ok(TrafficResult {
        options: opts.clone(),
        forwarded_pps: delivered_copies as f64 / send.elapsed_s.max(1e-9),
        loss: if expected == 0 { 0.0 } else { 1.0 - received as f64 / expected as f64 },
        latency: traffic::Latency::from_ns(&mut all_lat),
        send,
        receivers,
        links,
        router_cpu,
        system_cpu,
    })
}

/// One row of the bench table.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    pub router: RouterSoftware,
    pub fanout: usize,
    pub size: usize,
    pub offered_pps: f64,
    pub generator_cpu_pct: f64,
    pub forwarded_pps: f64,
    pub loss: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// fanoutd: its process; kernel: not separable (None).
    pub router_cpu_pct: Option<f64>,
    pub system_busy_pct: f64,
    pub system_softirq_pct: f64,
    /// Which side limited the run.
    pub limit: String,
}

/// Bench parameters.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub topology: String,
    pub duration: Duration,
    pub rate_pps: Option<u64>,
    pub fanouts: Vec<usize>,
    pub sizes: Vec<usize>,
    pub routers: Vec<RouterSoftware>,
    pub results_dir: PathBuf,
}

/// The bench's full output (results.json).
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub run_id: String,
    pub topology: String,
    pub duration_s: f64,
    pub rows: Vec<BenchRow>,
    pub skipped: Vec<String>,
    /// forwarded pps fanoutd / kernel per (fanout, size).
    pub ratios: Vec<(usize, usize, f64)>,
    pub runs: Vec<TrafficResult>,
}

/// Names the side that limited a run. With the kernel router, forwarding runs in the softirq
/// that the generator's own `sendmmsg` triggers (veth delivers to its peer in the sender's
/// context), so "the generator was the limit" then includes the kernel's forwarding work.
fn limit_of(router: RouterSoftware, r: &TrafficResult) -> String {
    let copies = r.send.sent as f64 * r.receivers.len() as f64 / r.send.elapsed_s.max(1e-9);
    if r.forwarded_pps >= 0.99 * copies {
        if r.loss > 0.01 {
            "receivers (socket drops)".into()
        } else if router == RouterSoftware::Kernel {
            "sender core (incl. ipmr softirq)".into()
        } else {
            "generator (router kept up)".into()
        }
    } else {
        "router".into()
    }
}

/// Runs the fanoutd-vs-kernel comparison and writes results/<run-id>/.
pub fn bench(
    opts: &BenchOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<BenchResult, ExperimentError> {
    let topo = Topology::load(&opts.topology).map_err(|e| ExperimentError::Results {
        path: opts.topology.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let mut routers = opts.routers.clone();
    let mut skipped = Vec::new();
    if routers.contains(&RouterSoftware::Fanoutd) {
        if let Err(e) = crate::fanoutd::fanoutd_binary().and(crate::fanoutd::fanoutctl_binary()) {
            let msg = format!("fanoutd skipped: {e}");
            progress(&msg);
            skipped.push(msg);
            routers.retain(|r| *r != RouterSoftware::Fanoutd);
        }
    }
    let total = routers.len() * opts.fanouts.len() * opts.sizes.len();
    let mut step = 0;
    let mut rows = Vec::new();
    let mut runs = Vec::new();
    let run_id = format!(
        "{}-bench-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        std::process::id()
    );
    let out_dir = opts.results_dir.join(&run_id);
    let werr = |p: &Path| {
        let path = p.display().to_string();
        move |source| ExperimentError::Results { path, source }
    };
    std::fs::create_dir_all(&out_dir).map_err(werr(&out_dir))?;
    std::fs::write(out_dir.join("topology.toml"), toml::to_string(&topo).unwrap_or_default())
        .map_err(werr(&out_dir))?;
    for &router in &routers {
        for &fanout in &opts.fanouts {
            progress(&format!("bringing up {} with {router}, fan-out {fanout}", topo.name));
            let lab =
                match Lab::up(&topo, &UpOptions { router: Some(router), fanout: Some(fanout) }) {
                    Ok(l) => l,
                    Err(e) if router == RouterSoftware::Fanoutd => {
                        let msg = format!("fanoutd fan-out {fanout} skipped: {e}");
                        progress(&msg);
                        skipped.push(msg);
                        step += opts.sizes.len();
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                };
            // Keep the generated router configs with the results.
            let cfg_dir = out_dir.join(format!("configs-{router}-fanout{fanout}"));
            let _ = std::fs::create_dir_all(&cfg_dir);
            if let Ok(rd) = std::fs::read_dir(crate::run::run_dir(lab.run_id())) {
                for e in rd.filter_map(Result::ok) {
                    let p = e.path();
                    if matches!(
                        p.extension().and_then(|x| x.to_str()),
                        Some("conf" | "toml" | "log")
                    ) {
                        let _ = std::fs::copy(&p, cfg_dir.join(e.file_name()));
                    }
                }
            }
            for &size in &opts.sizes {
                step += 1;
                progress(&format!(
                    "[{step}/{total}] {router}, fan-out {fanout}, {size} B, {} s {}",
                    opts.duration.as_secs_f64(),
                    opts.rate_pps.map_or("flat out".to_owned(), |r| format!("at {r} pps"))
                ));
                let t = TrafficOptions {
                    count: None,
                    duration: Some(opts.duration),
                    rate_pps: opts.rate_pps,
                    size,
                    ttl: 16,
                    batch: 64,
                };
                let r = run_traffic(&lab, &t)?;
                rows.push(BenchRow {
                    router,
                    fanout,
                    size,
                    offered_pps: r.send.pps,
                    generator_cpu_pct: 100.0 * r.send.cpu_s / r.send.elapsed_s.max(1e-9),
                    forwarded_pps: r.forwarded_pps,
                    loss: r.loss,
                    p50_us: r.latency.p50_us,
                    p99_us: r.latency.p99_us,
                    router_cpu_pct: (router == RouterSoftware::Fanoutd)
                        .then(|| r.router_cpu.iter().map(|c| c.cpu_pct).sum()),
                    system_busy_pct: r.system_cpu.busy_pct,
                    system_softirq_pct: r.system_cpu.softirq_pct,
                    limit: limit_of(router, &r),
                });
                runs.push(r);
            }
            lab.down()?;
        }
    }
    let mut ratios = Vec::new();
    for &fanout in &opts.fanouts {
        for &size in &opts.sizes {
            let find = |rt| {
                rows.iter()
                    .find(|r: &&BenchRow| r.router == rt && r.fanout == fanout && r.size == size)
                    .map(|r| r.forwarded_pps)
            };
            if let (Some(f), Some(k)) =
                (find(RouterSoftware::Fanoutd), find(RouterSoftware::Kernel))
            {
                ratios.push((fanout, size, if k > 0.0 { f / k } else { f64::NAN }));
            }
        }
    }
    let result = BenchResult {
        run_id,
        topology: topo.name.clone(),
        duration_s: opts.duration.as_secs_f64(),
        rows,
        skipped,
        ratios,
        runs,
    };
    let json = serde_json::to_string_pretty(&result).unwrap_or_default();
    let p = out_dir.join("results.json");
    std::fs::write(&p, json).map_err(werr(&p))?;
    let p = out_dir.join("summary.txt");
    std::fs::write(&p, bench_table(&result)).map_err(werr(&p))?;
    Ok(result)
}

/// The bench's headline table.
pub fn bench_table(b: &BenchResult) -> String {
    let rows: Vec<Vec<String>> = b
        .rows
        .iter()
        .map(|r| {
            vec![
                r.router.to_string(),
                r.fanout.to_string(),
                r.size.to_string(),
                format!("{:.0}", r.offered_pps),
                format!("{:.0}", r.forwarded_pps),
                format!("{:.2}%", 100.0 * r.loss),
                format!("{:.0}", r.p50_us),
                format!("{:.0}", r.p99_us),
                r.router_cpu_pct.map_or_else(|| "n/a".to_owned(), |c| format!("{c:.0}%")),
                format!("{:.0}% ({:.0}% si)", r.system_busy_pct, r.system_softirq_pct),
                format!("{:.0}%", r.generator_cpu_pct),
                r.limit.clone(),
            ]
        })
        .collect();
    let mut out = report::table(
        &[
            "router",
            "fanout",
            "size B",
            "offered pps",
            "fwd pps",
            "loss",
            "p50 us",
            "p99 us",
            "router CPU",
            "system CPU",
            "gen CPU",
            "limited by",
        ],
        &rows,
    );
    out.push_str(
        "fwd pps = copies reaching receiver links per second. router CPU: fanoutd process (one core = 100%);\n\
         the kernel path runs in softirq, not separable per namespace: see system CPU (whole machine).\n\
         With the kernel router, ipmr forwarding runs in the softirq raised by the generator's own\n\
         sendmmsg (veth delivers in the sender's context), so the kernel's cost also lowers offered pps.\n",
    );
    if b.ratios.is_empty() {
        out.push_str("headline ratio fanoutd/kernel: not available (fanoutd did not run)\n");
    }
    for (f, s, r) in &b.ratios {
        let _ =
            writeln!(out, "headline: fanoutd / kernel forwarded pps, fan-out {f}, {s} B: {r:.2}x");
    }
    for s in &b.skipped {
        let _ = writeln!(out, "note: {s}");
    }
    out
}

use std::fmt::Write as _;

/// Result of the demo.
#[derive(Debug)]
pub struct DemoOutput {
    pub router: RouterSoftware,
    pub note: Option<String>,
    pub result: TrafficResult,
}

/// line3 with fanoutd when found (else the kernel baseline), a bounded burst, then teardown.
pub fn demo(
    count: u64,
    rate: u64,
    progress: &mut dyn FnMut(&str),
) -> Result<DemoOutput, ExperimentError> {
    let topo = Topology::load("line3").map_err(|e| ExperimentError::Results {
        path: "line3".into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let (router, note) =
        match crate::fanoutd::fanoutd_binary().and(crate::fanoutd::fanoutctl_binary()) {
            Ok(_) => (RouterSoftware::Fanoutd, None),
            Err(e) => (
                RouterSoftware::Kernel,
                Some(format!("{e}; running the kernel baseline (Linux ipmr + smcrouted) instead")),
            ),
        };
    if let Some(n) = &note {
        progress(n);
    }
    progress(&format!("bringing up line3 (src -> r1 -> h1..h4) with {router} on r1"));
    let lab = Lab::up(&topo, &UpOptions { router: Some(router), fanout: None })?;
    progress(&format!(
        "run {}: sending {count} packets at {rate} pps to {:?}",
        lab.state.run, topo.traffic.groups
    ));
    let result = run_traffic(
        &lab,
        &TrafficOptions {
            count: Some(count),
            duration: Some(Duration::from_secs(60)),
            rate_pps: Some(rate),
            ..TrafficOptions::default()
        },
    )?;
    lab.down()?;
    progress("torn down");
    Ok(DemoOutput { router, note, result })
}

/// Writes a JSON value to `path`, creating parent directories.
pub fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<(), ExperimentError> {
    let werr = |source| ExperimentError::Results { path: path.display().to_string(), source };
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(werr)?;
    }
    let mut f = std::fs::File::create(path).map_err(werr)?;
    let text = serde_json::to_string_pretty(v).unwrap_or_default();
    f.write_all(text.as_bytes())
        .map_err(|source| ExperimentError::Results { path: path.display().to_string(), source })
}
