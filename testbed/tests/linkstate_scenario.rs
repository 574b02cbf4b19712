//! Link-state multicast (MOSPF-like) on the 4-router square (testbed/topologies/square4.toml),
//! with real hosts joining by IGMP and fanoutd on every router (routing mode `linkstate`,
//! `fast` preset: 100 ms hello, 400 ms dead interval).
//!
//! One scenario, in order, over one steady 500 pps stream from `src`:
//! 1. members only: with h1 (on r2) and h2 (on r4) joined, links without downstream members
//!    (r1-r3, r3-r4) carry zero data packets from the first packet on — there is no flooding
//!    phase (measured by the routers' data-plane counters);
//! 2. membership change: h3 (on r3) joins; its first packet arrives within one flooding round
//!    trip (measured), and after h3 leaves r1 stops sending towards r3 (measured);
//! 3. router restart: r2 is killed with SIGKILL and started again; the gaps at h1 and h2 are
//!    measured;
//! 4. silent failure: r2 is frozen (SIGSTOP); after the dead interval h2's stream moves to
//!    r1-r3-r4 within 1 s (the gap in sequence numbers at h2 is measured); r2 resumes;
//! 5. link failure: r2-r4 goes down (fanoutd sees it by netlink); h2's stream moves to r1-r3-r4
//!    within 1 s (measured), and back when the link comes back up.
//!
//! Privileged (root), skipped with a message otherwise or when the fanoutd binaries are missing.

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use testbed::bringup::{router_id, Lab};
use testbed::fanoutd::RoutingMode;
use testbed::scenario::{data_counters, wait_for, Member, Stream};

const RATE: u64 = 500;
const LIFE: Duration = Duration::from_secs(110);

const SHOWS: &[&str] = &["neighbors", "mroute", "igmp", "counters"];

fn check(lab: &Lab, cond: bool, msg: &str) {
    common::check(lab, "linkstate", SHOWS, cond, msg);
}

/// Whether `router`'s LSDB holds a membership LSA for `group` from each router in `from`.
fn membership_lsas(lab: &Lab, router: &str, group: Ipv4Addr, from: &[&str]) -> bool {
    let Ok(out) = lab.fanoutctl(router, &["show", "lsdb", "--json"]) else {
        return false;
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&out) else {
        return false;
    };
    let lsas = v["lsas"].as_array().cloned().unwrap_or_default();
    from.iter().all(|r| {
        let rid = router_id(&lab.plan, lab.plan.idx(r)).to_string();
        lsas.iter().any(|l| {
            l["kind"] == "membership"
                && l["id"] == group.to_string().as_str()
                && l["adv_router"] == rid.as_str()
                && l["age"].as_u64().is_some_and(|a| a < 3600)
        })
    })
}

/// Data packets r1 has sent towards r3 and r3 has received from r1 and r4, and r4 from r3.
fn off_tree(lab: &Lab) -> [u64; 4] {
    let c = |n, p| data_counters(lab, n, p).unwrap();
    [c("r1", "r3").1, c("r3", "r1").0, c("r3", "r4").0, c("r4", "r3").0]
}

#[test]
fn linkstate_square4_members_only_membership_failover() {
    if !common::can_run_fanoutd(false) {
        return;
    }
    let (topo, mut lab) = common::square4(RoutingMode::Linkstate);
    let (group, port) = (topo.traffic.groups[0], topo.traffic.port);

    // 1. Members only: h1 and h2 join, r1 learns both membership LSAs, then data flows.
    let h1 = Member::join(&lab, "h1", group, port, LIFE).unwrap();
    let h2 = Member::join(&lab, "h2", group, port, LIFE).unwrap();
    let lsas = wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
        membership_lsas(&lab, "r1", group, &["r2", "r4"])
    });
    check(&lab, lsas.is_some(), "r1 did not learn the membership LSAs of r2 and r4");
    eprintln!(
        "linkstate: membership LSAs of r2 and r4 at r1 {:.3} s after the joins",
        lsas.unwrap_or_default().as_secs_f64()
    );
    let stream = Stream::start(&lab, "src", group, port, RATE, RATE * 100, LIFE).unwrap();
    let flowing = wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
        h1.count() >= 500 && h2.count() >= 500
    });
    check(&lab, flowing.is_some(), "h1 and h2 do not receive the stream");
    for m in [&h1, &h2] {
        let a = m.arrivals();
        let first = a.0.iter().map(|x| x.0).min().unwrap();
        let max = a.0.iter().map(|x| x.0).max().unwrap();
        let missing = a.missing(first, max);
        eprintln!(
            "linkstate delivery: {} first seq {first} (0..{first} punted while routes were \
             computed), {} missing after it, {} duplicates",
            m.node,
            missing.len(),
            a.duplicates()
        );
        check(
            &lab,
            u64::from(first) < RATE / 2,
            &format!("{}: first packet only at seq {first}", m.node),
        );
        check(&lab, missing.is_empty(), &format!("{}: lost {missing:?}", m.node));
        check(&lab, a.duplicates() == 0, &format!("{}: duplicates", m.node));
    }
    let zero = off_tree(&lab);
    eprintln!(
        "linkstate members only: after {} packets, r1->r3 tx {}, r3 rx from r1 {}, r3 rx from \
         r4 {}, r4 rx from r3 {}",
        stream.sent(),
        zero[0],
        zero[1],
        zero[2],
        zero[3]
    );
    check(&lab, zero == [0; 4], "links without downstream members carried data");

    // 2. Membership change: h3 joins, then leaves.
    let h3 = Member::join(&lab, "h3", group, port, LIFE).unwrap();
    let got = wait_for(Duration::from_secs(5), Duration::from_millis(5), || h3.count() > 0);
    check(&lab, got.is_some(), "h3 got nothing within 5 s of joining");
    let join_s = h3.arrivals().0[0].1.saturating_duration_since(h3.joined_at).as_secs_f64();
    eprintln!("linkstate join: h3's first packet {join_s:.3} s after it joined");
    // IGMP report -> r3's membership LSA -> flooded to r1 (one hop) -> r1 adds r3 to the tree;
    // r3 computes its own entry on the first punted packet. A flooding round trip with the
    // fast timers is bounded by MinLSInterval (0.1 s) plus one retransmission (0.2 s).
    check(&lab, join_s < 0.5, &format!("join took {join_s:.3} s"));
    let (left_at, _) = h3.leave();
    let mut last_tx = data_counters(&lab, "r1", "r3").unwrap().1;
    let mut last_change = Instant::now();
    let quiet = wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
        let tx = data_counters(&lab, "r1", "r3").map_or(last_tx, |c| c.1);
        if tx != last_tx {
            last_tx = tx;
            last_change = Instant::now();
        }
        last_change.elapsed() > Duration::from_secs(1)
    });
    check(&lab, quiet.is_some(), "r1 kept sending towards r3 after h3 left");
    let leave_s = last_change.saturating_duration_since(left_at).as_secs_f64();
    eprintln!("linkstate leave: r1 stopped sending towards r3 {leave_s:.3} s after h3 left");

    // 3. Router restart: kill -9 r2 and start it again.
    let killed_at = Instant::now();
    let (old, new) = lab.restart_router("r2").unwrap();
    let restarted_at = Instant::now();
    let resumed = wait_for(Duration::from_secs(20), Duration::from_millis(20), || {
        h1.arrivals().first_after(restarted_at).is_some()
            && h2.arrivals().first_after(restarted_at).is_some()
    });
    check(&lab, resumed.is_some(), "traffic to h1/h2 did not resume after r2's restart");
    std::thread::sleep(Duration::from_millis(500));
    for m in [&h1, &h2] {
        let g = m.arrivals().longest_gap(killed_at, Instant::now());
        eprintln!(
            "linkstate restart of r2 (pid {old} -> {new}, up again after {:.2} s): {} gap {:.3} \
             s, {} lost",
            (restarted_at - killed_at).as_secs_f64(),
            m.node,
            g.duration.as_secs_f64(),
            g.lost
        );
    }

    // 4. Silent failure: r2 freezes (SIGSTOP); r4 and r1 notice when the dead interval
    //    (400 ms) expires, and h2 is fed through r3.
    common::freeze_and_resume(
        &lab,
        &h1,
        &h2,
        &common::FreezeExpectation {
            tag: "linkstate",
            shows: SHOWS,
            packets_after: 250,
            max_gap: Duration::from_secs(1),
            limit: Duration::from_secs(10),
            poll: Duration::from_millis(20),
            detection: "dead interval 0.4 s",
        },
    );

    // 5. Link failure r2-r4, then repair.
    let cut_at = Instant::now();
    lab.set_link("r2", "r4", false).unwrap();
    let moved = wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
        h2.arrivals().0.iter().filter(|a| a.1 > cut_at).count() >= 250
    });
    check(&lab, moved.is_some(), "h2 got no traffic within 10 s of cutting r2-r4");
    let g = h2.arrivals().longest_gap(cut_at, Instant::now());
    let (via_r3, _) = data_counters(&lab, "r4", "r3").unwrap();
    eprintln!(
        "linkstate link cut r2-r4: h2 gap {:.3} s, {} sequence numbers lost (at {RATE} pps); \
         now via r3 ({via_r3} packets on r3->r4)",
        g.duration.as_secs_f64(),
        g.lost
    );
    check(&lab, via_r3 > 0, "r4 does not receive from r3 after the cut");
    check(&lab, g.duration < Duration::from_secs(1), "failover gap over 1 s");
    let h1_gap = h1.arrivals().longest_gap(cut_at, Instant::now());
    check(&lab, h1_gap.lost == 0, &format!("h1 lost {} packets during the cut", h1_gap.lost));

    let repair_at = Instant::now();
    lab.set_link("r2", "r4", true).unwrap();
    let back = lab.wait_converged(Duration::from_secs(10));
    check(&lab, back.is_ok(), &format!("no reconvergence after the repair: {back:?}"));
    let resumed = wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
        data_counters(&lab, "r4", "r2").is_ok_and(|c| c.0 > 0)
            && h2.arrivals().0.iter().filter(|a| a.1 > repair_at).count() >= 250
    });
    check(&lab, resumed.is_some(), "h2's stream did not move back to r2-r4 after the repair");
    let g = h2.arrivals().longest_gap(repair_at, Instant::now());
    eprintln!(
        "linkstate link repair r2-r4: adjacency full after {:.3} s; h2 longest gap {:.3} s, {} \
         lost, {} duplicates in total",
        back.unwrap_or_default().as_secs_f64(),
        g.duration.as_secs_f64(),
        g.lost,
        h2.arrivals().duplicates()
    );

    let sent = stream.stop();
    for m in [h1, h2] {
        let node = m.node.clone();
        let (_, a) = m.leave();
        eprintln!("linkstate: {node} received {} distinct of {sent} sent", a.distinct());
    }
    common::keep_logs(&lab, "linkstate");
    lab.down().unwrap();
}
