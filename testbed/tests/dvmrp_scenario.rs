//! DVMRP on the 4-router square (testbed/topologies/square4.toml), with real hosts joining by
//! IGMP and fanoutd on every router (routing mode `dvmrp`, the testbed's fast timers).
//!
//! One scenario, in order, over one steady 200 pps stream from `src`:
//! 1. delivery: h1 (on r2), h2 (on r4), h3 (on r3) all receive it; the first packets of the
//!    (S,G) are punted while each router installs its route (measured: the first sequence
//!    number each member sees);
//! 2. prune: h3 leaves; r3 has no member and no dependent, prunes to r1, and the data-plane
//!    counter of link r1->r3 stops within 5 s of the leave (measured);
//! 3. graft: h3 joins again; its first packet arrives within 2 s (measured);
//! 4. router restart: r2 (on the path to h1 and h2) is killed with SIGKILL and started again;
//!    traffic to h1 and h2 resumes (gap measured);
//! 5. silent failure: r2 is frozen (SIGSTOP); r4's neighbour r2 times out, r4's route to src
//!    moves to r3 and h2's traffic resumes through r1-r3-r4 (gap measured); r2 resumes;
//! 6. link cut: r2-r4 goes down; fanoutd on r4 sees the interface go down (netlink), its route
//!    to src moves to r3 at once and h2's traffic resumes after r4's triggered poison-reverse
//!    report reaches r3 (gap measured).
//!
//! Privileged (root), skipped with a message otherwise or when the fanoutd binaries are missing.

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use testbed::bringup::Lab;
use testbed::fanoutd::RoutingMode;
use testbed::scenario::{data_counters, wait_for, Member, Stream};

const RATE: u64 = 200;
const LIFE: Duration = Duration::from_secs(110);

const SHOWS: &[&str] = &["neighbors", "mroute", "igmp", "counters"];

fn check(lab: &Lab, cond: bool, msg: &str) {
    common::check(lab, "dvmrp", SHOWS, cond, msg);
}

fn igmp_has(lab: &Lab, router: &str, group: Ipv4Addr) -> bool {
    lab.fanoutctl(router, &["show", "igmp", "--json"]).is_ok_and(|o| o.contains(&group.to_string()))
}

/// Polls a counter until it has not moved for `quiet`; returns when it last moved (or `None`
/// if it was still moving at `limit`).
fn settles(limit: Duration, quiet: Duration, mut read: impl FnMut() -> u64) -> Option<Instant> {
    let start = Instant::now();
    let mut last = read();
    let mut last_change = start;
    while start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(50));
        let v = read();
        if v != last {
            last = v;
            last_change = Instant::now();
        } else if last_change.elapsed() >= quiet {
            return Some(last_change);
        }
    }
    None
}

#[test]
fn dvmrp_square4_prune_graft_restart_reroute() {
    if !common::can_run_fanoutd(false) {
        return;
    }
    let (topo, mut lab) = common::square4(RoutingMode::Dvmrp);
    let (group, port) = (topo.traffic.groups[0], topo.traffic.port);

    // 1. Delivery to every member.
    let h1 = Member::join(&lab, "h1", group, port, LIFE).unwrap();
    let h2 = Member::join(&lab, "h2", group, port, LIFE).unwrap();
    let h3 = Member::join(&lab, "h3", group, port, LIFE).unwrap();
    let learned = wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
        ["r2", "r3", "r4"].iter().all(|r| igmp_has(&lab, r, group))
    });
    check(&lab, learned.is_some(), "routers did not learn their members by IGMP");
    let stream = Stream::start(&lab, "src", group, port, RATE, RATE * 100, LIFE).unwrap();
    let all = wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
        [&h1, &h2, &h3].iter().all(|m| m.count() >= 200)
    });
    check(&lab, all.is_some(), "not every member receives the stream");
    for m in [&h1, &h2, &h3] {
        let a = m.arrivals();
        let first = a.0.iter().map(|x| x.0).min().unwrap();
        let max = a.0.iter().map(|x| x.0).max().unwrap();
        let missing = a.missing(first, max);
        eprintln!(
            "dvmrp delivery: {} first seq {first} (packets 0..{first} lost while routes were \
             installed), {} missing after it, {} duplicates",
            m.node,
            missing.len(),
            a.duplicates()
        );
        check(
            &lab,
            u64::from(first) < RATE / 2,
            &format!("{}: first packet only at seq {first}", m.node),
        );
        check(&lab, missing.is_empty(), &format!("{}: lost {missing:?} after the start", m.node));
        check(&lab, a.duplicates() == 0, &format!("{}: duplicates", m.node));
    }
    // Off the tree: r3-r4 carries no data (RPF: neither router depends on the other for src).
    let (r4_from_r3, _) = data_counters(&lab, "r4", "r3").unwrap();
    let (r3_from_r4, _) = data_counters(&lab, "r3", "r4").unwrap();
    check(&lab, r4_from_r3 == 0 && r3_from_r4 == 0, "link r3-r4 (off the tree) carried data");

    // 2. Prune: the last member behind r3 leaves.
    let (left_at, _) = h3.leave();
    let stopped = settles(Duration::from_secs(15), Duration::from_millis(1500), || {
        data_counters(&lab, "r3", "r1").map_or(0, |c| c.0)
    });
    check(&lab, stopped.is_some(), "link r1->r3 still carries data 15 s after the last leave");
    let prune_s = stopped.unwrap().saturating_duration_since(left_at).as_secs_f64();
    eprintln!("dvmrp prune: link r1->r3 quiet {prune_s:.2} s after h3's leave");
    check(&lab, prune_s < 5.0, &format!("prune took {prune_s:.2} s (> 5 s)"));
    let tx_before = data_counters(&lab, "r1", "r3").unwrap().1;
    std::thread::sleep(Duration::from_millis(500));
    let tx_after = data_counters(&lab, "r1", "r3").unwrap().1;
    check(&lab, tx_before == tx_after, "r1 still transmits towards r3 after the prune");

    // 3. Graft: h3 joins again.
    let h3 = Member::join(&lab, "h3", group, port, LIFE).unwrap();
    let got = wait_for(Duration::from_secs(5), Duration::from_millis(10), || h3.count() > 0);
    check(&lab, got.is_some(), "h3 got nothing within 5 s of re-joining (graft)");
    let first = h3.arrivals().0[0].1;
    let graft_s = first.saturating_duration_since(h3.joined_at).as_secs_f64();
    eprintln!("dvmrp graft: h3's first packet {graft_s:.3} s after it joined again");
    check(&lab, graft_s < 2.0, &format!("graft took {graft_s:.3} s (> 2 s)"));

    // 4. Router restart: kill -9 r2, start it again.
    let killed_at = Instant::now();
    let old = lab.kill_router("r2").unwrap();
    // The killed daemon could not detach its XDP programs; the new one must find and remove
    // them itself (orphaned programs), or it would not start.
    let ns = lab.ns("r2");
    let attached = lab.plan.ports[lab.plan.idx("r2")]
        .iter()
        .filter(|p| {
            ns.command("ip")
                .args(["link", "show", "dev", &p.ifname])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("xdp"))
        })
        .count();
    eprintln!(
        "dvmrp restart: killed r2 (pid {old}) left XDP attached on {attached} of 3 interfaces"
    );
    let new = lab.start_router("r2").unwrap();
    let restarted_at = Instant::now();
    let started_s = (restarted_at - killed_at).as_secs_f64();
    let resumed = wait_for(Duration::from_secs(30), Duration::from_millis(50), || {
        [&h1, &h2].iter().all(|m| m.arrivals().first_after(restarted_at).is_some())
    });
    check(&lab, resumed.is_some(), "traffic to h1/h2 did not resume within 30 s of r2's restart");
    std::thread::sleep(Duration::from_millis(500));
    for m in [&h1, &h2] {
        let g = m.arrivals().longest_gap(killed_at, Instant::now());
        eprintln!(
            "dvmrp restart of r2 (pid {old} -> {new}, up again after {started_s:.2} s): {} gap \
             {:.2} s, {} packets lost",
            m.node,
            g.duration.as_secs_f64(),
            g.lost
        );
    }

    // 5. Silent failure: r2 freezes (SIGSTOP); r4 notices only when r2's probes stop (3.5 s
    //    neighbour timeout), then h2 is fed through r3.
    common::freeze_and_resume(
        &lab,
        &h1,
        &h2,
        &common::FreezeExpectation {
            tag: "dvmrp",
            shows: SHOWS,
            packets_after: 100,
            max_gap: Duration::from_secs(10),
            limit: Duration::from_secs(30),
            poll: Duration::from_millis(50),
            detection: "neighbour timeout: 3.5 s after r2's last probe",
        },
    );

    // 6. Link cut r2-r4: h2 is reached through r3.
    let cut_at = Instant::now();
    lab.set_link("r2", "r4", false).unwrap();
    let rerouted = wait_for(Duration::from_secs(30), Duration::from_millis(50), || {
        h2.arrivals().0.iter().filter(|a| a.1 > cut_at).count() >= 100
    });
    check(&lab, rerouted.is_some(), "h2 got no traffic within 30 s of cutting r2-r4");
    let g = h2.arrivals().longest_gap(cut_at, Instant::now());
    let (r4_via_r3, _) = data_counters(&lab, "r4", "r3").unwrap();
    eprintln!(
        "dvmrp link cut r2-r4: h2 gap {:.2} s, {} packets lost; now via r3 ({r4_via_r3} packets \
         on r3->r4)",
        g.duration.as_secs_f64(),
        g.lost
    );
    check(&lab, r4_via_r3 > 0, "r4 does not receive from r3 after the cut");
    check(&lab, g.duration < Duration::from_secs(10), "reroute gap over 10 s");
    // Other members were not disturbed by the cut.
    for m in [&h1, &h3] {
        let g = m.arrivals().longest_gap(cut_at, Instant::now());
        check(&lab, g.lost == 0, &format!("{} lost {} packets during the cut", m.node, g.lost));
    }

    let sent = stream.stop();
    for m in [h1, h2, h3] {
        let node = m.node.clone();
        let (_, a) = m.leave();
        eprintln!("dvmrp: {node} received {} distinct of {sent} sent", a.distinct());
    }
    common::keep_logs(&lab, "dvmrp");
    lab.down().unwrap();
}
