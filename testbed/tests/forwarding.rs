//! The kernel baseline forwards multicast to every receiver without loss at a low rate, and the
//! link counters show exactly one copy per tree link (and none elsewhere).
//! Privileged: skips with a message when not root or smcrouted is missing.

mod common;

use std::time::Duration;

use testbed::bringup::{Lab, UpOptions};
use testbed::experiment::{run_traffic, TrafficOptions};
use testbed::topology::Topology;

fn low_rate(count: u64) -> TrafficOptions {
    TrafficOptions {
        count: Some(count),
        duration: Some(Duration::from_secs(20)),
        rate_pps: Some(2000),
        ..TrafficOptions::default()
    }
}

// Input: tree2 (7 kernel routers), 400 packets at 2000 pps. Output: each of the 4 receivers
// gets all 400 exactly once, in order, with no loss.
#[test]
fn kernel_baseline_delivers_everything_at_low_rate() {
    if !common::can_run(true) {
        return;
    }
    let topo = Topology::load("tree2").unwrap();
    let lab = Lab::up(&topo, &UpOptions::default()).unwrap();
    let r = run_traffic(&lab, &low_rate(400)).unwrap();
    assert_eq!(r.send.sent, 400);
    assert_eq!(r.receivers.len(), 4);
    for (node, rep) in &r.receivers {
        assert_eq!(rep.received(), 400, "{node}");
        assert_eq!(rep.lost(), 0, "{node}");
        assert_eq!(rep.duplicates(), 0, "{node}");
        assert_eq!(rep.reordered(), 0, "{node}");
        assert!(rep.latency.p50_us > 0.0 && rep.latency.samples == 400, "{node}");
    }
    assert!(r.loss.abs() < 1e-12);
    lab.down().unwrap();
}

fn assert_one_copy_per_tree_link(name: &str) {
    let topo = Topology::load(name).unwrap();
    let lab = Lab::up(&topo, &UpOptions::default()).unwrap();
    let count = 300;
    let r = run_traffic(&lab, &low_rate(count)).unwrap();
    let tree = lab.plan.tree_links(&lab.receivers);
    for l in &r.links.links {
        let on_tree = tree.iter().find(|t| t.0 == l.link);
        match on_tree {
            Some(&(_, up, _)) => {
                let down_count =
                    if lab.plan.topo.nodes[up].name == l.a { l.a_to_b() } else { l.b_to_a() };
                assert_eq!(down_count, count, "{name}: tree link {} -- {}", l.a, l.b);
            }
            None => {
                assert_eq!(
                    (l.a_to_b(), l.b_to_a()),
                    (0, 0),
                    "{name}: off-tree link {} -- {} carried packets",
                    l.a,
                    l.b
                );
            }
        }
    }
    for (node, rep) in &r.receivers {
        assert_eq!(rep.received(), count, "{name}: {node}");
        assert_eq!(rep.duplicates(), 0, "{name}: {node}");
    }
    lab.down().unwrap();
}

// Input: diamond, 300 packets. Output: every link of the cheap branch carries exactly 300
// copies downstream; the costly branch (r1-r3-r4) carries nothing.
#[test]
fn diamond_one_copy_per_tree_link() {
    if !common::can_run(true) {
        return;
    }
    assert_one_copy_per_tree_link("diamond");
}

// Input: transit-stub (12 routers), 300 packets. Output: exactly 300 copies downstream on each
// tree link, none on any other link (backup links, the ring's unused side, the diagonal).
#[test]
fn transit_stub_one_copy_per_tree_link() {
    if !common::can_run(true) {
        return;
    }
    assert_one_copy_per_tree_link("transit-stub");
}

// Input: line3 with fanoutd on r1, if the binaries are found (FANOUTD/FANOUTCTL or next to the
// test binary). Output: every receiver gets every packet.
#[test]
fn fanoutd_line3_delivers_when_available() {
    if !common::can_run_fanoutd(false) {
        return;
    }
    let topo = Topology::load("line3").unwrap();
    let lab = Lab::up(
        &topo,
        &UpOptions { router: Some(testbed::topology::RouterSoftware::Fanoutd), fanout: None },
    )
    .unwrap();
    let r = run_traffic(&lab, &low_rate(200)).unwrap();
    for (node, rep) in &r.receivers {
        assert_eq!(rep.received(), 200, "{node}");
    }
    // fanoutd's own view: the static (S,G) routes of the tree, each having forwarded its share
    // (200 packets round robin over two groups), compared as an FRR-style expected subset.
    let r1 = lab.plan.idx("r1");
    let routes = &lab.plan.mc_routes(&lab.receivers)[&r1];
    let expected = serde_json::json!({
        "routes": routes.iter().map(|m| serde_json::json!({
            "source": m.source.to_string(),
            "group": m.group.to_string(),
            "iif": m.iif,
            "oifs": m.oifs.iter().map(|o| serde_json::json!({"name": o})).collect::<Vec<_>>(),
            "packets": 100,
        })).collect::<Vec<_>>(),
    });
    let socket = &lab.ctl_sockets[0].1;
    let diff = testbed::check::run_and_expect(20, Duration::from_millis(100), || {
        let out = testbed::fanoutd::fanoutctl(socket, &["show", "mroute", "--json"]);
        match out.map(|o| serde_json::from_str::<serde_json::Value>(&o)) {
            Ok(Ok(v)) => testbed::check::json_cmp(&v, &expected),
            other => Some(vec![format!("{other:?}")]),
        }
    });
    assert!(diff.is_none(), "fanoutd mroute differs: {diff:?}");
    lab.down().unwrap();
}
