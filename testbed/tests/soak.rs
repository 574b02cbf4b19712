//! Soak (issue 9): a steady stream, below capacity, through the 4-router square
//! (testbed/topologies/square4.toml) with fanoutd on every router in a protocol mode, for a
//! configurable time; members h1 (behind r2), h2 (behind r4) and h3 (behind r3).
//!
//! Environment: `FANOUT_SOAK_SECS` (default 40, what CI runs; the soak is 600),
//! `FANOUT_SOAK_PPS` (default 500), `FANOUT_SOAK_MODE` (`dvmrp` or `linkstate`, default
//! `dvmrp`).
//!
//! Asserted, after the members' first packet (the first packets of the (S,G) are punted while
//! the routers install the route, as in every protocol mode): zero loss and zero duplicates at
//! every member; each fanoutd's VmRSS grew by less than [`RSS_GROWTH_LIMIT_KB`] between the end
//! of the warm-up and the end of the soak; counters consistent end to end: on every
//! router-to-router link the data packets one end sent equal those the other end received, and
//! the packets each leaf router sent on its member's link equal what the member received.
//! Prints the figures (copied to docs/robustness.md).
//!
//! Privileged (root); skipped with a message otherwise or when the fanoutd binaries are missing.

mod common;

use std::time::{Duration, Instant};

use testbed::bringup::{Lab, UpOptions};
use testbed::fanoutd::{FanoutdOptions, RoutingMode};
use testbed::scenario::{data_counters, wait_for, Member, Stream};
use testbed::topology::Topology;

const RSS_GROWTH_LIMIT_KB: u64 = 8 * 1024;
const WARM_UP: Duration = Duration::from_secs(3);
/// (member, its router).
const MEMBERS: [(&str, &str); 3] = [("h1", "r2"), ("h2", "r4"), ("h3", "r3")];
const ROUTER_LINKS: [(&str, &str); 4] = [("r1", "r2"), ("r1", "r3"), ("r2", "r4"), ("r3", "r4")];

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn rss_kb(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or_else(|| panic!("no VmRSS for pid {pid}"))
}

fn rss_all(lab: &Lab) -> Vec<(String, u64)> {
    ["r1", "r2", "r3", "r4"]
        .iter()
        .map(|r| ((*r).to_owned(), rss_kb(lab.router_pid(r).expect("router pid"))))
        .collect()
}

// Input: square4, fanoutd in FANOUT_SOAK_MODE on every router, FANOUT_SOAK_PPS from src to
// three members for FANOUT_SOAK_SECS. Output: no loss and no duplicates after the first
// packet, RSS growth < 8 MiB per fanoutd, per-link tx = rx and leaf tx = member received.
#[test]
fn soak_square4() {
    if !common::can_run(false) {
        return;
    }
    if let Err(e) = testbed::fanoutd::fanoutd_binary().and(testbed::fanoutd::fanoutctl_binary()) {
        eprintln!("skipped: {e}");
        return;
    }
    let secs: u64 = env("FANOUT_SOAK_SECS", 40);
    let pps: u64 = env("FANOUT_SOAK_PPS", 500);
    let mode: RoutingMode = env("FANOUT_SOAK_MODE", RoutingMode::Dvmrp);
    let soak = Duration::from_secs(secs);
    let life = soak + Duration::from_secs(60);

    let topo = Topology::load("square4").unwrap();
    let (group, port) = (topo.traffic.groups[0], topo.traffic.port);
    let lab = Lab::up_with(&topo, &UpOptions::default(), &FanoutdOptions::mode(mode)).unwrap();
    let members: Vec<Member> =
        MEMBERS.iter().map(|(h, _)| Member::join(&lab, h, group, port, life).unwrap()).collect();
    // Members are known to their routers before the stream starts, so the tree is complete
    // when its first packet is punted.
    let learned = wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
        MEMBERS.iter().all(|(_, r)| {
            lab.fanoutctl(r, &["show", "igmp", "--json"])
                .is_ok_and(|o| o.contains(&group.to_string()))
        })
    });
    assert!(learned.is_some(), "routers did not learn their members by IGMP");
    let count = pps * secs;
    let stream_start = Instant::now();
    let stream = Stream::start(&lab, "src", group, port, pps, count, life).unwrap();
    std::thread::sleep(WARM_UP);
    let rss_start = rss_all(&lab);
    let t0 = Instant::now();
    let done = wait_for(soak + Duration::from_secs(30), Duration::from_millis(200), || {
        stream.sent() >= count
    });
    assert!(done.is_some(), "the stream sent only {} of {count}", stream.sent());
    let sent = stream.stop();
    let stream_s = stream_start.elapsed().as_secs_f64();
    let rss_end = rss_all(&lab);
    // The last packets are in flight for a few milliseconds.
    std::thread::sleep(Duration::from_millis(500));
    eprintln!(
        "soak: mode {mode}, {sent} packets at {pps} pps, sent in {stream_s:.0} s (RSS window \
         {:.0} s)",
        t0.elapsed().as_secs_f64()
    );

    let mut failures = Vec::new();
    let mut arrivals = Vec::new();
    for m in members {
        let node = m.node.clone();
        let (_, a) = m.leave();
        let first = a.0.iter().map(|x| x.0).min().unwrap_or(u32::MAX);
        let missing = a.missing(first, u32::try_from(sent).unwrap_or(u32::MAX));
        eprintln!(
            "soak: {node}: received {} distinct of {sent} (first seq {first}), {} missing after \
             it, {} duplicates",
            a.distinct(),
            missing.len(),
            a.duplicates()
        );
        if first > 50 {
            failures.push(format!("{node}: first packet only at seq {first}"));
        }
        if !missing.is_empty() {
            failures.push(format!(
                "{node}: lost {} packets after the first (e.g. {:?})",
                missing.len(),
                &missing[..missing.len().min(10)]
            ));
        }
        if a.duplicates() > 0 {
            failures.push(format!("{node}: {} duplicates", a.duplicates()));
        }
        arrivals.push((node, a.0.len() as u64));
    }
    for ((r, start), (_, end)) in rss_start.iter().zip(&rss_end) {
        let growth = end.saturating_sub(*start);
        eprintln!("soak: {r} VmRSS {start} KiB -> {end} KiB (+{growth})");
        if growth >= RSS_GROWTH_LIMIT_KB {
            failures.push(format!("{r}: RSS grew by {growth} KiB"));
        }
    }
    for (a, b) in ROUTER_LINKS {
        let (_, a_tx) = data_counters(&lab, a, b).unwrap();
        let (b_rx, _) = data_counters(&lab, b, a).unwrap();
        let (_, b_tx) = data_counters(&lab, b, a).unwrap();
        let (a_rx, _) = data_counters(&lab, a, b).unwrap();
        eprintln!("soak: link {a}-{b}: {a}->{b} sent {a_tx} received {b_rx}; {b}->{a} sent {b_tx} received {a_rx}");
        if a_tx != b_rx || b_tx != a_rx {
            failures.push(format!("link {a}-{b}: tx/rx differ ({a_tx}/{b_rx}, {b_tx}/{a_rx})"));
        }
    }
    for ((h, r), (_, got)) in MEMBERS.iter().zip(&arrivals) {
        let (_, tx) = data_counters(&lab, r, h).unwrap();
        eprintln!("soak: {r}->{h}: data plane sent {tx}, member received {got}");
        if tx != *got {
            failures.push(format!("{r}->{h}: data plane sent {tx}, {h} received {got}"));
        }
    }
    lab.down().unwrap();
    assert!(failures.is_empty(), "soak failed:\n{}", failures.join("\n"));
}
