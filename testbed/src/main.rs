//! `fanout-testbed`: thin CLI over the `testbed` library (see docs/testbed.md).

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use testbed::bringup::{Lab, UpOptions};
use testbed::experiment::{self, BenchOptions, TrafficOptions};
use testbed::fanoutd::{FanoutdOptions, RoutingMode};
use testbed::netns::NetNs;
use testbed::run::{self, RunState};
use testbed::topology::{RouterSoftware, Topology, BUILTINS};
use testbed::{counters, report, traffic};

#[derive(Parser, Debug)]
#[command(
    name = "fanout-testbed",
    version,
    about = "netns/veth topologies, multicast traffic and the fanoutd-vs-kernel bench"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) =
        s.find(|c: char| c.is_ascii_alphabetic()).map_or((s, "s"), |i| (&s[..i], &s[i..]));
    let v: f64 = num.parse().map_err(|_| format!("bad duration `{s}` (e.g. 500ms, 3s, 1m)"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        _ => return Err(format!("bad duration unit in `{s}` (ms, s or m)")),
    };
    if !(0.0..=600.0).contains(&secs) {
        return Err(format!("duration `{s}` is outside 0..600 s"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Bring a topology up (built-in name or a .toml path) and leave it running.
    Up {
        topology: String,
        /// Software on every router: fanoutd, kernel or none (default: from the topology file).
        #[arg(long)]
        router: Option<RouterSoftware>,
        /// Route the multicast tree only to the first N receivers.
        #[arg(long)]
        fanout: Option<usize>,
        /// fanoutd's routing: static (the tree as static routes), dvmrp or linkstate (the
        /// protocol builds it; implies --router fanoutd; waits until converged; fast timers).
        #[arg(long, default_value = "static")]
        mode: RoutingMode,
    },
    /// Tear a run down completely (works for a crashed/stale run too).
    Down {
        /// Run id (4 hex digits) as printed by `up`.
        run: Option<String>,
        /// Tear down every run with a state file.
        #[arg(long)]
        all: bool,
    },
    /// List runs, or show one run's nodes, processes and link counters.
    Status { run: Option<String> },
    /// Run a command inside a node: `exec <run> <node> -- ip addr`.
    Exec {
        run: String,
        node: String,
        #[arg(trailing_var_arg = true, required = true)]
        command: Vec<String>,
    },
    /// Generate multicast traffic (bounded by count and/or duration). Prints a JSON report.
    Send {
        /// Run and node to send from (default: the current namespace).
        #[arg(long, requires = "node")]
        run: Option<String>,
        #[arg(long, requires = "run")]
        node: Option<String>,
        /// Interface (default with --node: the node's first interface).
        #[arg(long)]
        iface: Option<String>,
        #[arg(long = "group", required = true)]
        groups: Vec<Ipv4Addr>,
        #[arg(long, default_value_t = 5001)]
        port: u16,
        #[arg(long)]
        count: Option<u64>,
        #[arg(long, value_parser = parse_duration)]
        duration: Option<Duration>,
        /// Packets per second; omit for flat out.
        #[arg(long)]
        rate: Option<u64>,
        /// IPv4 total length in bytes (44..=1500).
        #[arg(long, default_value_t = 64)]
        size: usize,
        #[arg(long, default_value_t = 16)]
        ttl: u8,
        #[arg(long, default_value_t = 64)]
        batch: usize,
    },
    /// Receive multicast on a kernel socket (joins the groups) for a bounded time. Prints JSON.
    Recv {
        #[arg(long, requires = "node")]
        run: Option<String>,
        #[arg(long, requires = "run")]
        node: Option<String>,
        /// Address of the interface to join on (default with --node: the node's first address).
        #[arg(long)]
        iface_addr: Option<Ipv4Addr>,
        #[arg(long = "group", required = true)]
        groups: Vec<Ipv4Addr>,
        #[arg(long, default_value_t = 5001)]
        port: u16,
        #[arg(long, value_parser = parse_duration)]
        duration: Duration,
    },
    /// Up, send the topology's traffic once, print delivery and link counters, down.
    Run {
        topology: String,
        #[arg(long)]
        router: Option<RouterSoftware>,
        #[arg(long)]
        fanout: Option<usize>,
        /// fanoutd's routing: static, dvmrp or linkstate (as for `up`).
        #[arg(long, default_value = "static")]
        mode: RoutingMode,
        #[arg(long, default_value_t = 1000)]
        count: u64,
        /// Packets per second; 0 = flat out.
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Write the full result as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// fanoutd vs kernel baseline: fan-out 1 and 4, 64 B and 1500 B, one table.
    Bench {
        #[arg(long, default_value = "line3")]
        topology: String,
        #[arg(long, value_parser = parse_duration, default_value = "3s")]
        duration: Duration,
        /// Offered rate in pps; omit for flat out.
        #[arg(long)]
        rate: Option<u64>,
        #[arg(long, value_delimiter = ',', default_value = "1,4")]
        fanout: Vec<usize>,
        #[arg(long, value_delimiter = ',', default_value = "64,1500")]
        size: Vec<usize>,
        #[arg(long, value_delimiter = ',', default_value = "fanoutd,kernel")]
        routers: Vec<RouterSoftware>,
        #[arg(long, default_value = "results")]
        results: PathBuf,
    },
    /// line3 with fanoutd (or the kernel baseline if fanoutd is not built): a short burst.
    Demo {
        #[arg(long, default_value_t = 1000)]
        count: u64,
        #[arg(long, default_value_t = 2000)]
        rate: u64,
    },
    /// List the built-in topologies (with their diagrams).
    Topologies,
    /// Discrete-event simulation with the real control-plane cores (no namespaces): compares
    /// dvmrp, linkstate and overlay on large topologies (docs/simulate.md).
    Simulate {
        /// Testbed name or .toml (its own sender/receivers), a .json node/link file,
        /// gen:transit-stub:N or gen:geometric:N.
        #[arg(long, default_value = "gen:transit-stub:1000")]
        topology: String,
        /// Group members (ignored for testbed topologies, which name their receivers).
        #[arg(long, default_value_t = 100)]
        members: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, value_delimiter = ',', default_value = "dvmrp,linkstate,overlay")]
        modes: Vec<testbed::simulate::Mode>,
        /// Simulated control-plane time before the first data packet, in seconds.
        #[arg(long, default_value_t = 40)]
        warmup: u64,
        #[arg(long, default_value_t = 5)]
        packets: usize,
        #[arg(long, default_value_t = 200_000_000)]
        max_events: u64,
        #[arg(long, default_value_t = 3)]
        overlay_degree: usize,
        /// Overlay neighbour choice: self-organising (RTT-driven) or static (MST + nearest).
        #[arg(long, default_value = "self-organising")]
        overlay_topology: testbed::simulate::overlay::OverlayTopology,
        /// Overlay mode: crash the most loaded member after the measurement, report recovery.
        #[arg(long)]
        overlay_failure: bool,
        #[arg(long, default_value = "results")]
        results: PathBuf,
    },
    /// IP multicast (kernel, static, dvmrp, linkstate) vs overlay multicast on one topology in
    /// namespaces, measured per mode, with plots and a sim-vs-testbed check (docs/compare.md).
    Compare {
        /// Built-in name or .toml path.
        topology: String,
        /// Modes in order: kernel, static, dvmrp, linkstate, overlay.
        #[arg(long, default_value = "kernel,dvmrp,linkstate,overlay")]
        modes: String,
        /// Packets of the measured (steady) phase.
        #[arg(long, default_value_t = 1000)]
        packets: u64,
        /// Packets per second.
        #[arg(long, default_value_t = 500)]
        rate: u64,
        /// IPv4 total length of the data packets.
        #[arg(long, default_value_t = 200)]
        size: usize,
        /// Skip the scripted link failure.
        #[arg(long)]
        no_failure: bool,
        /// Also send a short flat-out burst (forwarded pps at saturation).
        #[arg(long)]
        saturation: bool,
        /// Skip the simulation agreement check.
        #[arg(long)]
        no_simulate: bool,
        /// Print the report as JSON instead of the table.
        #[arg(long)]
        json: bool,
        /// Results directory (default results/<run-id>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fanout-testbed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn need_root() -> Result<()> {
    if !testbed::netns::is_root() {
        bail!("this command needs root (network namespaces, veths, raw sockets)");
    }
    Ok(())
}

fn progress(msg: &str) {
    eprintln!("fanout-testbed: {msg}");
}

fn node_ns(run_s: &str, node: &str) -> Result<(RunState, NetNs, usize)> {
    let id = run::parse_id(run_s)?;
    let st = RunState::load(id).with_context(|| format!("run {run_s} has no state file"))?;
    let i = st.nodes.iter().position(|n| n.name == node).with_context(|| {
        let names: Vec<&str> = st.nodes.iter().map(|n| n.name.as_str()).collect();
        format!("run {run_s} has no node `{node}` (nodes: {})", names.join(", "))
    })?;
    let ns = NetNs::existing(&st.nodes[i].namespace);
    Ok((st, ns, i))
}

fn real_main(cli: Cli) -> Result<ExitCode> {
    match cli.cmd {
        Cmd::Topologies => {
            for (name, text) in BUILTINS {
                println!("== {name}");
                for l in text.lines().take_while(|l| l.starts_with('#')) {
                    println!("{l}");
                }
                println!();
            }
        }
        Cmd::Up { topology, router, fanout, mode } => {
            need_root()?;
            let topo = Topology::load(&topology)?;
            let lab =
                Lab::up_with(&topo, &UpOptions { router, fanout }, &FanoutdOptions::mode(mode))?;
            let st = lab.persist();
            println!("run {} is up ({} nodes)", st.run, st.nodes.len());
            print_state(&st);
            println!("tear down with: fanout-testbed down {}", st.run);
        }
        Cmd::Down { run: r, all } => {
            need_root()?;
            let ids: Vec<u16> = if all {
                RunState::list()
            } else {
                let r = r.context("give a run id or --all")?;
                vec![run::parse_id(&r)?]
            };
            for id in ids {
                let removed = run::teardown(id)?;
                println!("run {}: removed {} objects", run::id_str(id), removed.len());
                for x in removed {
                    println!("  {x}");
                }
            }
        }
        Cmd::Status { run: None } => {
            let ids = RunState::list();
            if ids.is_empty() {
                println!("no runs");
            }
            for id in ids {
                match RunState::load(id) {
                    Ok(st) => {
                        let alive = st.processes.iter().filter(|p| run::alive(p)).count();
                        let present = st
                            .namespaces
                            .iter()
                            .filter(|n| std::path::Path::new("/run/netns").join(n).exists())
                            .count();
                        println!(
                            "{}  topology {}  router {}  namespaces {present}/{}  processes {alive}/{}",
                            st.run,
                            st.topology,
                            st.router,
                            st.namespaces.len(),
                            st.processes.len()
                        );
                    }
                    Err(e) => println!("{}  unreadable: {e}", run::id_str(id)),
                }
            }
        }
        Cmd::Status { run: Some(r) } => {
            let id = run::parse_id(&r)?;
            let st = RunState::load(id)?;
            print_state(&st);
            if let Ok(topo) = Topology::load(&st.topology) {
                let plan = testbed::topology::Plan::new(&topo, id);
                match counters::snapshot(&plan) {
                    Ok(s) => print!("\n{}", report::links_table(&s)),
                    Err(e) => println!("counters unavailable: {e}"),
                }
            }
        }
        Cmd::Exec { run: r, node, command } => {
            need_root()?;
            let (_, ns, _) = node_ns(&r, &node)?;
            let mut c = ns.command(&command[0]);
            c.args(&command[1..]);
            let status =
                c.status().with_context(|| format!("cannot run {}", testbed::cmd::cmdline(&c)))?;
            return Ok(ExitCode::from(status.code().unwrap_or(1).clamp(0, 255) as u8));
        }
        Cmd::Send {
            run: r,
            node,
            iface,
            groups,
            port,
            count,
            duration,
            rate,
            size,
            ttl,
            batch,
        } => {
            need_root()?;
            let mut cfg = traffic::SendConfig {
                ifname: iface.clone().unwrap_or_default(),
                src: None,
                groups,
                port,
                ttl,
                size,
                count,
                duration,
                rate_pps: rate,
                batch,
            };
            let rep = if let (Some(r), Some(node)) = (r, node) {
                let (st, ns, i) = node_ns(&r, &node)?;
                if iface.is_none() {
                    cfg.ifname = st.nodes[i]
                        .interfaces
                        .first()
                        .map(|x| x.name.clone())
                        .context("node has no interfaces")?;
                }
                ns.run(|| traffic::send(&cfg))??
            } else {
                if cfg.ifname.is_empty() {
                    bail!("give --iface (or --run and --node)");
                }
                traffic::send(&cfg)?
            };
            println!("{}", serde_json::to_string_pretty(&rep)?);
        }
        Cmd::Recv { run: r, node, iface_addr, groups, port, duration } => {
            let stop = std::sync::atomic::AtomicBool::new(true);
            let mk = |addr: Ipv4Addr| traffic::RecvConfig {
                iface_addr: addr,
                groups: groups.clone(),
                port,
                max_duration: duration,
                drain: duration,
            };
            let mut rep = if let (Some(r), Some(node)) = (r, node) {
                need_root()?;
                let (st, ns, i) = node_ns(&r, &node)?;
                let addr = match iface_addr {
                    Some(a) => a,
                    None => st.nodes[i]
                        .interfaces
                        .first()
                        .and_then(|x| x.addr.split('/').next()?.parse().ok())
                        .context("node has no IPv4 interface")?,
                };
                let cfg = mk(addr);
                ns.run(|| -> Result<traffic::RecvReport> {
                    let s = traffic::open_receiver(&cfg)?;
                    Ok(traffic::receive(&s, &cfg, &stop))
                })??
            } else {
                let cfg = mk(iface_addr.context("give --iface-addr (or --run and --node)")?);
                let s = traffic::open_receiver(&cfg)?;
                traffic::receive(&s, &cfg, &stop)
            };
            rep.finish(None);
            println!("{}", serde_json::to_string_pretty(&rep)?);
        }
        Cmd::Run { topology, router, fanout, mode, count, rate, size, json } => {
            need_root()?;
            let topo = Topology::load(&topology)?;
            let lab =
                Lab::up_with(&topo, &UpOptions { router, fanout }, &FanoutdOptions::mode(mode))?;
            progress(&format!("run {} up; sending {count} packets", lab.state.run));
            let res = experiment::run_traffic(
                &lab,
                &TrafficOptions {
                    count: Some(count),
                    duration: Some(Duration::from_secs(120)),
                    rate_pps: (rate > 0).then_some(rate),
                    size,
                    ..TrafficOptions::default()
                },
            )?;
            lab.down()?;
            print_traffic(&res);
            if let Some(p) = json {
                experiment::write_json(&p, &res)?;
            }
        }
        Cmd::Bench { topology, duration, rate, fanout, size, routers, results } => {
            need_root()?;
            let b = experiment::bench(
                &BenchOptions {
                    topology,
                    duration,
                    rate_pps: rate,
                    fanouts: fanout,
                    sizes: size,
                    routers,
                    results_dir: results.clone(),
                },
                &mut |m| progress(m),
            )?;
            print!("{}", experiment::bench_table(&b));
            println!("results: {}", results.join(&b.run_id).display());
        }
        Cmd::Simulate {
            topology,
            members,
            seed,
            modes,
            warmup,
            packets,
            max_events,
            overlay_degree,
            overlay_topology,
            overlay_failure,
            results,
        } => {
            use rand::SeedableRng;
            use testbed::simulate::{self, Scenario, SimOptions};
            let (topo, endpoints) = simulate::load_topology(&topology, seed)?;
            let scn = if let Some((source, members)) = endpoints {
                Scenario::new(topo, source, members)?
            } else {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
                Scenario::random(topo, members, &mut rng)?
            };
            let opts = SimOptions {
                warmup_ms: warmup.saturating_mul(1000),
                packets,
                max_events,
                overlay_degree,
                overlay_topology,
                overlay_failure,
                seed,
                ..SimOptions::default()
            };
            let report = simulate::run_modes(&scn, &modes, &opts, Some(seed))?;
            print!("{}", simulate::table(&report));
            let run_id = format!(
                "sim-{}-{}m-seed{seed}",
                report.topology.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_"),
                report.members
            );
            let p = simulate::write_json(&report, &results.join(run_id))?;
            println!("results: {}", p.display());
        }
        Cmd::Compare {
            topology,
            modes,
            packets,
            rate,
            size,
            no_failure,
            saturation,
            no_simulate,
            json,
            out,
        } => {
            need_root()?;
            let opts = testbed::compare::CompareOptions {
                topology,
                modes: testbed::compare::parse_modes(&modes)?,
                packets,
                rate_pps: rate,
                size,
                failure: !no_failure,
                saturation,
                simulate: !no_simulate,
                out,
                ..testbed::compare::CompareOptions::default()
            };
            let r = testbed::compare::run(&opts, &mut |m| progress(m))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", testbed::compare::output::text(&r));
                println!("results: {} ({})", r.out_dir.display(), r.files.join(", "));
            }
            if r.modes.iter().any(|m| m.status.starts_with("failed")) {
                return Ok(ExitCode::FAILURE);
            }
        }
        Cmd::Demo { count, rate } => {
            need_root()?;
            let d = experiment::demo(count, rate, &mut |m| progress(m))?;
            println!("router on r1: {}", d.router);
            print_traffic(&d.result);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_state(st: &RunState) {
    for n in &st.nodes {
        println!("  {:<6} ns {:<16} {}", n.name, n.namespace, n.software);
        for i in &n.interfaces {
            println!("         {:<12} {:<16} -> {}", i.name, i.addr, i.peer);
        }
    }
    for p in &st.processes {
        println!(
            "  process {} {} on {} ({})",
            p.pid,
            p.what,
            p.node,
            if run::alive(p) { "running" } else { "gone" }
        );
    }
}

fn print_traffic(r: &experiment::TrafficResult) {
    println!(
        "sent {} packets in {:.3} s ({:.0} pps, generator CPU {:.0}%)",
        r.send.sent,
        r.send.elapsed_s,
        r.send.pps,
        100.0 * r.send.cpu_s / r.send.elapsed_s.max(1e-9)
    );
    print!("\n{}", report::receivers_table(r));
    print!("\nper-link packets during the run:\n{}", report::links_table(&r.links));
    println!(
        "\nloss {:.3}%, forwarded {:.0} pps, latency p50 {:.1} us p99 {:.1} us, system CPU {:.0}%",
        100.0 * r.loss,
        r.forwarded_pps,
        r.latency.p50_us,
        r.latency.p99_us,
        r.system_cpu.busy_pct
    );
}
