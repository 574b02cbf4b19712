//! The comparison's artefacts: the table (terminal and Markdown), the simulation agreement
//! check, and writing `results/<run-id>/`.
//!
//! Agreement: each testbed mode is set against the simulated mode that models it (kernel, static
//! → `linkstate-spf`; dvmrp → `dvmrp`; linkstate → `linkstate`; overlay → `overlay-spf`, the same
//! static tree construction). Compared: stretch mean/max, stress mean/max over router-router
//! links, the per-link copies, and the number of nodes holding state. Every difference is
//! listed; nothing is rounded away beyond 1e-6.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::report;
use crate::simulate::{self, Mode, ModeResult, Scenario, SimOptions};
use crate::topology::{Plan, Topology};

use super::{werr, CompareError, CompareMode, CompareOptions, CompareReport, ModeReport};

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "n/a".to_owned(), |x| format!("{x:.digits$}"))
}

/// `mean/max`, or `n/a` when there is no figure.
fn pair(mean: Option<f64>, max: Option<f64>) -> String {
    match (mean, max) {
        (Some(a), Some(b)) => format!("{a:.2}/{b:.2}"),
        _ => "n/a".to_owned(),
    }
}

/// The overlay tree as `parent -> child` text.
pub fn tree_text(plan: &Plan, t: &super::metrics::OverlayTree) -> String {
    let name = |p: usize| plan.topo.nodes[t.hosts[p]].name.clone();
    let edges: Vec<String> = (0..t.hosts.len())
        .filter_map(|v| t.parent[v].map(|p| format!("{}->{}", name(p), name(v))))
        .collect();
    edges.join(" ")
}

const HEADER: [&str; 15] = [
    "mode",
    "delivery",
    "loss",
    "dup",
    "p50 us",
    "p99 us",
    "stretch e2e (rtr) mean/max",
    "stress mean/max",
    "wire/dlv",
    "router state mean/max",
    "ctl B/s",
    "join ms",
    "reconv gap ms",
    "fwd pps sat.",
    "status",
];

fn row(m: &ModeReport) -> Vec<String> {
    if !m.ok() {
        let mut v = vec![m.mode.to_string()];
        v.extend(std::iter::repeat_n("-".to_owned(), HEADER.len() - 2));
        v.push(short_status(&m.status));
        return v;
    }
    let reconv = m.failure.as_ref().map_or_else(
        || "n/a".to_owned(),
        |f| {
            let g = opt(f.gap_ms_max, 0);
            if f.recovered {
                g
            } else {
                format!("{g} (no recovery)")
            }
        },
    );
    vec![
        m.mode.to_string(),
        format!("{:.4}", m.delivery_ratio),
        format!("{:.2}%", 100.0 * m.loss),
        m.duplicates.to_string(),
        format!("{:.0}", m.p50_us),
        format!("{:.0}", m.p99_us),
        format!(
            "{} ({})",
            pair(m.e2e_stretch_mean, m.e2e_stretch_max),
            pair(m.stretch_mean, m.stretch_max)
        ),
        format!("{:.2}/{}", m.stress_mean, m.stress_max),
        format!("{:.2}", m.wire_per_delivered),
        format!("{:.2}/{}", m.router_state_mean, m.router_state_max),
        format!("{:.0}", m.control_bytes_per_s),
        format!("{}/{}", opt(m.join_latency_ms_mean, 1), opt(m.join_latency_ms_max, 1)),
        reconv,
        m.saturation_pps.map_or_else(|| "skipped".to_owned(), |p| format!("{p:.0}")),
        m.status.clone(),
    ]
}

/// The terminal table and the per-mode notes.
pub fn text(r: &CompareReport) -> String {
    let mut s = format!(
        "compare {}: sender {}, receivers {}, group {}, {} packets at {} pps, {} B\n",
        r.topology,
        r.sender,
        r.receivers.join(","),
        r.group,
        r.options.packets,
        r.options.rate_pps,
        r.options.size
    );
    let rows: Vec<Vec<String>> = r.modes.iter().map(row).collect();
    s.push_str(&report::table(&HEADER, &rows));
    s.push_str(LEGEND);
    for m in &r.modes {
        details(&mut s, m, "");
    }
    if let Some(a) = &r.sim {
        s.push('\n');
        s.push_str(&sim_text(a));
    }
    s
}

const LEGEND: &str = "stretch: path cost of the copies / unicast shortest cost per receiver, end to end (host to host; an overlay relay's\n\
access link counts twice) and router-level (access links left out, as `simulate` measures; n/a: receiver on the sender's router);\n\
stress: data copies per packet per link that carried data (counters, both directions); wire/dlv: data packets on all links per\n\
delivered packet; router state: multicast entries for the group per router; ctl B/s: all bytes on the links in a 2 s idle window;\n\
join ms: receiver's first packet after IP_ADD_MEMBERSHIP (mean/max); reconv gap: longest run of lost packets after a tree link\n\
went down mid-stream; fwd pps sat.: copies reaching the receivers' links per second of a 0.5 s flat-out burst (--saturation).\n";

/// The first line of a status, at most 70 characters (the full text is in the details).
fn short_status(st: &str) -> String {
    let first = st.lines().next().unwrap_or_default();
    if first.chars().count() > 70 || st.lines().count() > 1 {
        format!("{}... (see below)", first.chars().take(70).collect::<String>())
    } else {
        first.to_owned()
    }
}

fn details(s: &mut String, m: &ModeReport, indent: &str) {
    if !m.ok() {
        let _ = writeln!(s, "{indent}{}: {}", m.mode, m.status);
        return;
    }
    let _ = writeln!(s, "{indent}{}: {}", m.mode, m.description);
    let rx: Vec<String> = m
        .receivers
        .iter()
        .map(|r| {
            format!(
                "{} {}/{} stretch {} (rtr {}) join {} ms",
                r.node,
                r.received,
                m.sent,
                opt(r.e2e_stretch, 2),
                opt(r.stretch, 2),
                opt(r.join_latency_ms, 1)
            )
        })
        .collect();
    let _ = writeln!(s, "{indent}  receivers: {}", rx.join("; "));
    let used: Vec<String> = m
        .links
        .iter()
        .filter(|l| l.stress > 0)
        .map(|l| format!("{}={}", l.name, l.stress))
        .collect();
    let _ = writeln!(s, "{indent}  links with data (copies/packet): {}", used.join(" "));
    let st: Vec<String> = m
        .state
        .iter()
        .map(|n| {
            if n.next_hops > 0 {
                format!("{}={} ({} next hops)", n.node, n.entries, n.next_hops)
            } else {
                format!("{}={}", n.node, n.entries)
            }
        })
        .collect();
    let _ = writeln!(s, "{indent}  state: {}", st.join(" "));
    if let Some(f) = &m.failure {
        let _ = writeln!(
            s,
            "{indent}  failure: {} down after {} ms of a {}-packet stream: longest gap {} ms, {}",
            f.link,
            f.down_after_ms,
            f.packets,
            opt(f.gap_ms_max, 0),
            if f.recovered { "recovered" } else { "NOT recovered before the stream ended" }
        );
    }
    if m.mismatches.is_empty() {
        let _ = writeln!(s, "{indent}  per-link copies match the mode's expected tree");
    } else {
        let _ = writeln!(
            s,
            "{indent}  per-link copies differing from the expected tree: {}",
            m.mismatches.join("; ")
        );
    }
    let _ = writeln!(s, "{indent}  saturation: {}", m.saturation_note);
    for n in &m.notes {
        let _ = writeln!(s, "{indent}  note: {n}");
    }
}

/// The Markdown version of the table (summary.md).
pub fn markdown(r: &CompareReport) -> String {
    let mut s = format!(
        "# compare {}\n\nSender {}, receivers {}, group {}, {} packets at {} pps, {} B (IPv4 total length).\n\n",
        r.topology,
        r.sender,
        r.receivers.join(", "),
        r.group,
        r.options.packets,
        r.options.rate_pps,
        r.options.size
    );
    let _ = writeln!(s, "| {} |", HEADER.join(" | "));
    let _ = writeln!(s, "|{}", "---|".repeat(HEADER.len()));
    for m in &r.modes {
        let _ = writeln!(s, "| {} |", row(m).join(" | "));
    }
    s.push('\n');
    s.push_str(&LEGEND.replace('\n', " "));
    s.push_str("\n\n```\n");
    for m in &r.modes {
        details(&mut s, m, "");
    }
    if let Some(a) = &r.sim {
        s.push('\n');
        s.push_str(&sim_text(a));
    }
    s.push_str("```\n");
    s
}

/// Figures compared between the testbed and the simulation.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Figures {
    pub stretch_mean: Option<f64>,
    pub stretch_max: Option<f64>,
    pub stress_mean: f64,
    pub stress_max: u32,
    /// Copies per router-router link, in topology order.
    pub link_copies: Vec<u32>,
    /// Nodes holding forwarding state (routers; overlay: hosts with next hops), and the max.
    pub nodes_with_state: usize,
    pub state_max: usize,
}

/// One testbed mode against its simulated counterpart.
#[derive(Debug, Clone, Serialize)]
pub struct SimRow {
    pub mode: CompareMode,
    pub sim_mode: String,
    pub testbed: Figures,
    pub sim: Figures,
    pub differences: Vec<String>,
}

/// The "sim vs testbed" section.
#[derive(Debug, Clone, Serialize)]
pub struct SimAgreement {
    pub error: Option<String>,
    pub rows: Vec<SimRow>,
    /// The self-organising overlay (the real overlay core in the simulation) for reference: the
    /// testbed runs a static overlay tree, so it is not compared.
    pub self_organising_overlay: Option<Figures>,
}

fn sim_figures(m: &ModeResult, overlay: bool) -> Figures {
    let has = m.stretch_max > 0.0;
    Figures {
        stretch_mean: has.then_some(m.stretch_mean),
        stretch_max: has.then_some(m.stretch_max),
        stress_mean: m.stress_mean,
        stress_max: m.stress_max,
        link_copies: m.link_copies.clone(),
        nodes_with_state: m.routers_with_state,
        state_max: if overlay { m.state_max.min(1) } else { m.state_max },
    }
}

fn testbed_figures(m: &ModeReport) -> Figures {
    let router_links: Vec<u32> =
        m.links.iter().filter(|l| l.router_link).map(|l| l.stress).collect();
    // Forwarding entries, as the simulation counts them: routers in IP modes, hosts with next
    // hops in the overlay (the routers' own figure is in the main table).
    let overlay = m.mode.is_overlay();
    let fwd: Vec<usize> =
        m.state.iter().filter(|n| !overlay || n.next_hops > 0).map(|n| n.forwarding).collect();
    let nodes_with_state = fwd.iter().filter(|&&f| f > 0).count();
    let state_max = fwd.iter().copied().max().unwrap_or(0);
    Figures {
        stretch_mean: m.stretch_mean,
        stretch_max: m.stretch_max,
        stress_mean: m.router_stress_mean,
        stress_max: m.router_stress_max,
        link_copies: router_links,
        nodes_with_state,
        state_max,
    }
}

fn differences(tb: &Figures, sim: &Figures) -> Vec<String> {
    let mut out = Vec::new();
    let close = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) => (x - y).abs() < 1e-6,
        (None, None) => true,
        _ => false,
    };
    if !close(tb.stretch_mean, sim.stretch_mean) || !close(tb.stretch_max, sim.stretch_max) {
        out.push(format!(
            "stretch testbed {}/{} vs sim {}/{}",
            opt(tb.stretch_mean, 3),
            opt(tb.stretch_max, 3),
            opt(sim.stretch_mean, 3),
            opt(sim.stretch_max, 3)
        ));
    }
    if (tb.stress_mean - sim.stress_mean).abs() > 1e-6 || tb.stress_max != sim.stress_max {
        out.push(format!(
            "router-link stress testbed {:.3}/{} vs sim {:.3}/{}",
            tb.stress_mean, tb.stress_max, sim.stress_mean, sim.stress_max
        ));
    }
    if tb.link_copies != sim.link_copies {
        out.push(format!(
            "per-link copies testbed {:?} vs sim {:?}",
            tb.link_copies, sim.link_copies
        ));
    }
    if tb.nodes_with_state != sim.nodes_with_state || tb.state_max != sim.state_max {
        out.push(format!(
            "state (nodes, max) testbed ({}, {}) vs sim ({}, {})",
            tb.nodes_with_state, tb.state_max, sim.nodes_with_state, sim.state_max
        ));
    }
    out
}

/// Runs the simulation on the same topology and compares with every measured mode.
pub fn sim_agreement(topo: &Topology, opts: &CompareOptions, modes: &[ModeReport]) -> SimAgreement {
    let mut out = SimAgreement { error: None, rows: Vec::new(), self_organising_overlay: None };
    let scn = match simulate::topo::SimTopology::from_testbed(topo)
        .and_then(|(t, src, members)| Scenario::new(t, src, members))
    {
        Ok(s) => s,
        Err(e) => {
            out.error = Some(e.to_string());
            return out;
        }
    };
    let sim_opts = SimOptions { overlay_degree: opts.overlay_degree, ..SimOptions::quick() };
    let mut cache: Vec<(Mode, Result<ModeResult, String>)> = Vec::new();
    let mut get = |m: Mode| -> Result<ModeResult, String> {
        if let Some((_, r)) = cache.iter().find(|(x, _)| *x == m) {
            return r.clone();
        }
        let r = simulate::simulate(&scn, m, &sim_opts).map_err(|e| e.to_string());
        cache.push((m, r.clone()));
        r
    };
    for m in modes.iter().filter(|m| m.ok()) {
        let sm = sim_mode(m.mode);
        match get(sm) {
            Ok(sr) => {
                let sim = sim_figures(&sr, m.mode.is_overlay());
                let testbed = testbed_figures(m);
                let differences = differences(&testbed, &sim);
                out.rows.push(SimRow {
                    mode: m.mode,
                    sim_mode: sm.to_string(),
                    testbed,
                    sim,
                    differences,
                });
            }
            Err(e) => out.error = Some(format!("simulate {sm}: {e}")),
        }
    }
    let so_ran = modes.iter().any(|m| m.mode == CompareMode::OverlaySo && m.ok());
    if !so_ran && modes.iter().any(|m| m.mode == CompareMode::Overlay && m.ok()) {
        if let Ok(sr) = get(Mode::Overlay) {
            out.self_organising_overlay = Some(sim_figures(&sr, true));
        }
    }
    out
}

/// The simulated mode that models a testbed mode.
pub fn sim_mode(m: CompareMode) -> Mode {
    match m {
        CompareMode::Kernel | CompareMode::Static => Mode::LinkstateSpf,
        CompareMode::Dvmrp => Mode::Dvmrp,
        CompareMode::Linkstate => Mode::Linkstate,
        CompareMode::Overlay => Mode::OverlaySpf,
        CompareMode::OverlaySo => Mode::Overlay,
    }
}

/// The "sim vs testbed" section as text.
pub fn sim_text(a: &SimAgreement) -> String {
    let mut s = String::from("sim vs testbed (same topology, sender and receivers; router-level stretch, router-link stress):\n");
    if let Some(e) = &a.error {
        let _ = writeln!(s, "  simulation error: {e}");
    }
    let rows: Vec<Vec<String>> = a
        .rows
        .iter()
        .map(|r| {
            let f = |x: &Figures| {
                format!(
                    "{}/{}  {:.2}/{}  {}/{}",
                    opt(x.stretch_mean, 2),
                    opt(x.stretch_max, 2),
                    x.stress_mean,
                    x.stress_max,
                    x.nodes_with_state,
                    x.state_max
                )
            };
            vec![
                r.mode.to_string(),
                r.sim_mode.clone(),
                f(&r.testbed),
                f(&r.sim),
                if r.differences.is_empty() { "agree".into() } else { "DIFFER".into() },
            ]
        })
        .collect();
    s.push_str(&report::table(
        &["mode", "sim mode", "testbed str/stress/state", "sim str/stress/state", "verdict"],
        &rows,
    ));
    for r in &a.rows {
        for d in &r.differences {
            let _ = writeln!(s, "  {} vs sim {}: {d}", r.mode, r.sim_mode);
        }
    }
    if let Some(o) = &a.self_organising_overlay {
        let _ = writeln!(
            s,
            "  for reference, sim overlay (real overlay core, self-organising mesh): stretch {}/{}, stress {:.2}/{}, hosts with state {}",
            opt(o.stretch_mean, 2),
            opt(o.stretch_max, 2),
            o.stress_mean,
            o.stress_max,
            o.nodes_with_state
        );
    }
    s
}

/// Writes summary.txt, summary.md and the plots; returns the file names written.
pub fn write_all(r: &CompareReport, plan: &Plan) -> Result<Vec<String>, CompareError> {
    let dir = &r.out_dir;
    let mut files = Vec::new();
    let mut put = |name: &str, text: &str| -> Result<(), CompareError> {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(werr(&p))?;
        files.push(name.to_owned());
        Ok(())
    };
    put("summary.txt", &text(r))?;
    put("summary.md", &markdown(r))?;
    files.extend(super::plot::all(r, plan, Path::new(dir))?);
    files.push("compare.json".into());
    Ok(files)
}
