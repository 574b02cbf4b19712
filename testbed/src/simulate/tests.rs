use super::topo::{SimLink, SimNode, SimTopology};
use super::*;

fn graph(n: usize, links: &[(usize, usize, u32)]) -> SimTopology {
    let nodes = (0..n).map(|i| SimNode { id: i as u64, x: i as f64, y: 0.0 }).collect();
    let links = links.iter().map(|&(a, b, cost)| SimLink { a, b, cost }).collect();
    SimTopology::new("test", nodes, links).unwrap()
}

fn quick() -> SimOptions {
    SimOptions {
        warmup_ms: 15_000,
        packets: 3,
        interval_ms: 1_000,
        max_events: 5_000_000,
        ..SimOptions::default()
    }
}

/// Square 0-1-2-3-0 with a cheap path 0-1-2 (cost 1+1) and an expensive one 0-3-2 (5+5);
/// source at 0, members at 2 and 3. Hand-computed: the SPT uses links 0-1, 1-2 and 0-3, one
/// copy each; member 2 has path cost 2 (unicast 2), member 3 cost 5 (unicast 5): stretch 1.
#[test]
fn square_linkstate_hand_computed() {
    let t = graph(4, &[(0, 1, 1), (1, 2, 1), (2, 3, 5), (3, 0, 5)]);
    let scn = Scenario::new(t, 0, vec![2, 3]).unwrap();
    let r = simulate(&scn, Mode::Linkstate, &quick()).unwrap();
    assert_eq!(r.link_copies, vec![1, 1, 0, 1]);
    assert!((r.delivery_ratio - 1.0).abs() < 1e-9);
    assert!((r.stretch_mean - 1.0).abs() < 1e-9 && (r.stretch_max - 1.0).abs() < 1e-9);
    assert_eq!(r.stress_max, 1);
    // On-tree routers 0, 1, 2, 3 all forward (3 only to its member).
    assert_eq!(r.state_per_router, vec![1, 1, 1, 1]);
}

/// Same square with DVMRP (all costs <= 31, so metric = cost): after pruning, the last packet
/// follows the same tree, and the real core did the signalling.
#[test]
fn square_dvmrp_matches_spt() {
    let t = graph(4, &[(0, 1, 1), (1, 2, 1), (2, 3, 5), (3, 0, 5)]);
    let scn = Scenario::new(t, 0, vec![2, 3]).unwrap();
    let r = simulate(&scn, Mode::Dvmrp, &quick()).unwrap();
    assert_eq!(r.link_copies, vec![1, 1, 0, 1], "{r:?}");
    assert!((r.delivery_ratio - 1.0).abs() < 1e-9);
    assert!((r.stretch_max - 1.0).abs() < 1e-9);
    assert_eq!(r.duplicates, 0);
    assert!(r.control_msgs.unwrap() > 0 && r.control_bytes.unwrap() > r.control_msgs.unwrap());
}

/// A line 0-1-2-3 with members at 1 and 3: overlay mesh 0-1, 1-3 (MST) plus nearest links.
/// With degree 0 the mesh is the MST: 0->1 (cost 1), 1->3 (cost 2) - no stretch, but link 0-1
/// carries one copy and link 1-2 one copy... and member 1's host link carries 2 (in + out).
#[test]
fn line_overlay_hand_computed() {
    let t = graph(4, &[(0, 1, 1), (1, 2, 1), (2, 3, 1)]);
    let scn = Scenario::new(t, 0, vec![1, 3]).unwrap();
    let opts = SimOptions { overlay_degree: 0, ..quick() };
    let r = simulate(&scn, Mode::OverlaySpf, &opts).unwrap();
    assert_eq!(r.link_copies, vec![1, 1, 1]);
    assert_eq!(r.stub_copies, vec![1, 2, 1]);
    assert!((r.stretch_max - 1.0).abs() < 1e-9);
    assert!((r.delivery_ratio - 1.0).abs() < 1e-9);
}

/// Star: source at the hub 0, members at leaves 1, 2, 3 with a chord 1-2 (cost 1). Overlay
/// with degree 3 (full mesh): member 2 is reached via 0 -> 2 directly (cost 3) rather than
/// 0 -> 1 -> 2 (cost 3 + 1... ) and the hub link 0-1 carries two copies when 3 is reached via 1.
#[test]
fn overlay_stress_above_one_on_shared_links() {
    // 0 -- 4 (cost 1) is the only way out of the source; members behind 4.
    let t = graph(5, &[(0, 4, 1), (4, 1, 1), (4, 2, 1), (4, 3, 1)]);
    let scn = Scenario::new(t, 0, vec![1, 2, 3]).unwrap();
    let opts = SimOptions { overlay_degree: 3, ..quick() };
    let r = simulate(&scn, Mode::OverlaySpf, &opts).unwrap();
    // Unicast from the source to each member is 2; member-member is 2 as well, so the SPF tree
    // from the source is a star (direct hops win) and link 0-4 carries three copies.
    assert_eq!(r.link_copies[0], 3);
    assert_eq!(r.stress_max, 3);
    assert!((r.stretch_max - 1.0).abs() < 1e-9);
    let ls = simulate(&scn, Mode::Linkstate, &opts).unwrap();
    assert_eq!(ls.link_copies, vec![1, 1, 1, 1]);
}

#[test]
fn json_loader_costs_from_distance_and_errors() {
    let t = SimTopology::from_json(
        r#"{"nodes":[{"id":7,"x":0,"y":0},{"id":9,"x":3,"y":4}],"links":[{"a":7,"b":9}]}"#,
        "t.json",
    )
    .unwrap();
    assert_eq!(t.links[0].cost, 5);
    let e = SimTopology::from_json(
        r#"{"nodes":[{"id":1,"x":0,"y":0}],"links":[{"a":1,"b":2}]}"#,
        "x.json",
    )
    .unwrap_err();
    assert!(e.to_string().contains("unknown node id 2"), "{e}");
    let e = SimTopology::from_json(
        r#"{"nodes":[{"id":1,"x":0,"y":0},{"id":1,"x":1,"y":0}],"links":[]}"#,
        "x.json",
    )
    .unwrap_err();
    assert!(e.to_string().contains("twice"), "{e}");
}

#[test]
fn generators_are_connected_and_sized() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let ts = topo::transit_stub(topo::TransitStubParams::for_size(1000), &mut rng).unwrap();
    assert!(ts.is_connected());
    assert!((800..=1300).contains(&ts.len()), "{}", ts.len());
    let g = topo::geometric(300, 3, &mut rng).unwrap();
    assert!(g.is_connected());
    assert_eq!(g.len(), 300);
}

/// A 100-router transit-stub network, 20 members: the DVMRP cores converge and the last packet
/// reaches every member exactly once.
#[test]
fn dvmrp_100_routers_delivers_to_every_member() {
    let (t, _) = load_topology("gen:transit-stub:100", 7).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let scn = Scenario::random(t, 20, &mut rng).unwrap();
    let opts = SimOptions { warmup_ms: 40_000, ..quick() };
    let r = simulate(&scn, Mode::Dvmrp, &opts).unwrap();
    assert!((r.delivery_ratio - 1.0).abs() < 1e-9, "{r:?}");
    assert_eq!(r.duplicates, 0);
    assert_eq!(r.stress_max, 1, "IP multicast sends one copy per link");
    assert!(r.stretch_mean >= 1.0 - 1e-9);
}

/// Costs above 31 force DVMRP's hop-count metric, so the source's tree takes the 2-hop path
/// 0-1-2 (cost 40 + 5000) rather than the cheap 3-hop 0-3-4-2 (cost 120). The last packet
/// arrives 5040 ms after it is sent, far beyond the unicast drain (120 + 1000 ms): the run
/// must wait for it instead of counting member 2 as lost. Hand-computed stretch 5040 / 120.
#[test]
fn dvmrp_long_hop_count_path_is_drained() {
    let t = graph(5, &[(0, 1, 40), (1, 2, 5000), (0, 3, 40), (3, 4, 40), (4, 2, 40)]);
    let scn = Scenario::new(t, 0, vec![2]).unwrap();
    // Probes and reports cross the 5 s link too: give the cores time to converge.
    let opts = SimOptions { warmup_ms: 60_000, ..quick() };
    let r = simulate(&scn, Mode::Dvmrp, &opts).unwrap();
    assert!((r.delivery_ratio - 1.0).abs() < 1e-9, "{r:?}");
    assert!((r.first_packet_delivery_ratio - 1.0).abs() < 1e-9, "{r:?}");
    assert_eq!(r.link_copies, vec![1, 1, 0, 0, 0], "{r:?}");
    assert!((r.stretch_max - 42.0).abs() < 1e-9, "{r:?}");
}

/// The simulator author's reproduction (`--topology gen:geometric:100 --members 30 --seed 2`):
/// hop-count paths up to twice the unicast cost; before the engine drained in-flight copies
/// the last packet was cut off on its way and delivery read 0.667.
#[test]
fn dvmrp_geometric_100_seed2_delivers_to_every_member() {
    let (t, _) = load_topology("gen:geometric:100", 2).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let scn = Scenario::random(t, 30, &mut rng).unwrap();
    let r = simulate(&scn, Mode::Dvmrp, &SimOptions::default()).unwrap();
    assert!((r.delivery_ratio - 1.0).abs() < 1e-9, "{r:?}");
    assert_eq!(r.duplicates, 0);
    assert_eq!(r.stress_max, 1, "IP multicast sends one copy per link");
}

#[test]
fn event_limit_is_an_error() {
    let t = graph(3, &[(0, 1, 1), (1, 2, 1)]);
    let scn = Scenario::new(t, 0, vec![2]).unwrap();
    let opts = SimOptions { max_events: 10, ..quick() };
    let e = simulate(&scn, Mode::Dvmrp, &opts).unwrap_err();
    assert!(matches!(e, SimError::EventLimit { events: 10, .. }), "{e}");
}

/// The link-state cores converge on the square and the tree they install on the first packet
/// is the hand-computed one; the signalling is counted and finished within the warm-up.
#[test]
fn square_linkstate_core_installs_the_spt_and_counts_signalling() {
    let t = graph(4, &[(0, 1, 1), (1, 2, 1), (2, 3, 5), (3, 0, 5)]);
    let scn = Scenario::new(t, 0, vec![2, 3]).unwrap();
    let r = simulate(&scn, Mode::Linkstate, &quick()).unwrap();
    assert_eq!(r.link_copies, vec![1, 1, 0, 1], "{r:?}");
    assert!((r.first_packet_delivery_ratio - 1.0).abs() < 1e-9, "{r:?}");
    assert_eq!(r.duplicates, 0);
    assert_eq!(r.state_per_router, vec![1, 1, 1, 1]);
    let (msgs, bytes) = (r.control_msgs.unwrap(), r.control_bytes.unwrap());
    let warm = r.warmup_control_msgs.unwrap();
    assert!(warm > 0 && warm <= msgs && bytes > msgs * 20, "{r:?}");
    let conv = r.convergence_ms.unwrap();
    assert!(conv < quick().warmup_ms, "converged at {conv} ms");
    // Same tree as the computed variant.
    let spf = simulate(&scn, Mode::LinkstateSpf, &quick()).unwrap();
    assert_eq!(spf.link_copies, r.link_copies);
    assert!(spf.control_msgs.is_none());
}

/// Where the computed tree and the core could disagree: equal-cost paths. 0-1-3 and 0-2-3
/// both cost 2; one copy per tree link, every member reached, and the core's tie-break (its
/// LSDB's link ids) picks the same tree as the computed variant.
#[test]
fn linkstate_core_equal_cost_paths_single_copy() {
    let t = graph(5, &[(0, 1, 1), (1, 3, 1), (0, 2, 1), (2, 3, 1), (3, 4, 1)]);
    let scn = Scenario::new(t, 0, vec![4, 2]).unwrap();
    let r = simulate(&scn, Mode::Linkstate, &quick()).unwrap();
    assert!((r.delivery_ratio - 1.0).abs() < 1e-9, "{r:?}");
    assert_eq!(r.stress_max, 1);
    assert_eq!(r.duplicates, 0);
    assert!((r.stretch_max - 1.0).abs() < 1e-9);
    let used = r.link_copies.iter().sum::<u32>();
    assert!((3..=4).contains(&used), "{:?}", r.link_copies);
    let spf = simulate(&scn, Mode::LinkstateSpf, &quick()).unwrap();
    assert_eq!(spf.link_copies, r.link_copies);
}

/// The real overlay cores on a line 0-1-2-3 (source at 0, members at 1 and 3): they join via
/// the rendezvous, form a tree, and the last packet reaches both members, with zero state in
/// the routers and the overlay's signalling counted.
#[test]
fn overlay_core_line_delivers_and_routers_hold_no_state() {
    let t = graph(4, &[(0, 1, 10), (1, 2, 10), (2, 3, 10)]);
    let scn = Scenario::new(t, 0, vec![1, 3]).unwrap();
    for topo in [overlay::OverlayTopology::SelfOrganising, overlay::OverlayTopology::Static] {
        let opts = SimOptions { overlay_topology: topo, overlay_degree: 1, ..quick() };
        let r = simulate(&scn, Mode::Overlay, &opts).unwrap();
        assert!((r.delivery_ratio - 1.0).abs() < 1e-9, "{topo:?}: {r:?}");
        assert_eq!(r.duplicates, 0, "{topo:?}");
        assert_eq!(r.state_scope, "hosts");
        assert_eq!(r.state_all_total, 0, "routers hold no multicast state");
        assert!(r.control_msgs.unwrap() > 10, "{topo:?}: {r:?}");
        assert!(r.stretch_mean >= 1.0 - 1e-9);
        assert!(r.convergence_ms.is_some());
    }
}

/// A star behind one uplink: the overlay's copies to three members all cross link 0-4, so
/// stress there is > 1 however the cores arrange their tree (two members may relay, but the
/// source must send at least one copy over 0-4 and members' relays cross 4's links twice).
#[test]
fn overlay_core_stress_above_one() {
    let t = graph(5, &[(0, 4, 5), (4, 1, 5), (4, 2, 5), (4, 3, 5)]);
    let scn = Scenario::new(t, 0, vec![1, 2, 3]).unwrap();
    let r = simulate(&scn, Mode::Overlay, &quick()).unwrap();
    assert!((r.delivery_ratio - 1.0).abs() < 1e-9, "{r:?}");
    assert!(r.stress_max > 1, "{:?}", r.link_copies);
    let ls = simulate(&scn, Mode::Linkstate, &quick()).unwrap();
    assert_eq!(ls.link_copies, vec![1, 1, 1, 1]);
}

/// Crash of an interior overlay node: the tree is repaired by the cores after their dead
/// interval (3 heartbeats of 1 s) and every surviving member gets the stream again.
#[test]
fn overlay_core_recovers_from_node_failure() {
    // A chain of members far from the source's router: the cheapest overlay is a chain, so
    // some member relays to others.
    let t = graph(6, &[(0, 1, 50), (1, 2, 2), (2, 3, 2), (3, 4, 2), (4, 5, 2)]);
    let scn = Scenario::new(t, 0, vec![2, 3, 4, 5]).unwrap();
    let opts = SimOptions { overlay_failure: true, ..quick() };
    let r = simulate(&scn, Mode::Overlay, &opts).unwrap();
    assert!((r.delivery_ratio - 1.0).abs() < 1e-9, "{r:?}");
    let f = r.failure.expect("failure scenario ran");
    assert!(f.members_cut >= 1, "{f:?}");
    let rec = f.recovery_ms.expect("recovered");
    // Detection needs the dead interval (3 s); 60 s is the probe window.
    assert!((2_000..60_000).contains(&rec), "{f:?}");
    assert!(f.probes_lost > 0, "{f:?}");
}

/// The testbed entry point maps figures back to testbed links and nodes: on line3, IP modes
/// put one copy on each of the 4 links and state on both routers.
#[test]
fn simulate_testbed_maps_to_testbed_indices() {
    let topo = crate::topology::Topology::load("line3").unwrap();
    let sim = simulate_testbed(&topo, &[Mode::Linkstate, Mode::Overlay], &quick()).unwrap();
    assert_eq!(sim.link_copies.len(), 2);
    let ls = &sim.link_copies[0];
    assert_eq!(ls.len(), topo.links.len());
    assert!(ls.iter().all(|&c| c == 1), "{ls:?}");
    let routers = topo.nodes.iter().filter(|n| n.kind == crate::topology::NodeKind::Router);
    let with_state = sim.state_per_node[0].iter().filter(|&&s| s > 0).count();
    assert_eq!(with_state, routers.count());
    // Overlay: no router has state.
    for (n, &s) in sim.state_per_node[1].iter().enumerate() {
        if topo.nodes[n].kind == crate::topology::NodeKind::Router {
            assert_eq!(s, 0);
        }
    }
    assert!((sim.report.modes[1].delivery_ratio - 1.0).abs() < 1e-9);
}

/// The shipped example file: geographic coordinates, costs = fibre delay in ms from the
/// great-circle distance (Seattle-Sunnyvale ~1140 km -> 6 ms), all modes deliver on it.
#[test]
fn abilene_json_geographic_costs_and_all_modes() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/topologies/abilene.json");
    let (t, ends) = load_topology(path, 1).unwrap();
    assert!(ends.is_none());
    assert_eq!((t.len(), t.links.len()), (11, 14));
    assert!(t.is_connected());
    assert_eq!(t.links[0].cost, 6, "{:?}", t.links[0]);
    assert!(t.links.iter().all(|l| l.cost <= 31), "DVMRP can use the cost metric");
    // Source Seattle (index 0), members New York, Houston, Atlanta.
    let scn = Scenario::new(t, 0, vec![9, 5, 7]).unwrap();
    for mode in [Mode::Dvmrp, Mode::Linkstate, Mode::Overlay] {
        let r = simulate(&scn, mode, &quick()).unwrap();
        assert!((r.delivery_ratio - 1.0).abs() < 1e-9, "{mode}: {r:?}");
        if mode != Mode::Overlay {
            assert_eq!(r.stress_max, 1, "{mode}");
            assert!((r.stretch_max - 1.0).abs() < 1e-9, "{mode}: {r:?}");
        }
    }
}

#[test]
fn json_geographic_errors_name_the_node() {
    let e = SimTopology::from_json(
        r#"{"nodes":[{"id":1,"lat":10,"lon":10},{"id":2,"x":0,"y":0}],"links":[]}"#,
        "g.json",
    )
    .unwrap_err();
    assert!(e.to_string().contains("node id 2"), "{e}");
    let e =
        SimTopology::from_json(r#"{"nodes":[{"id":1,"lat":100,"lon":10}],"links":[]}"#, "g.json")
            .unwrap_err();
    assert!(e.to_string().contains("node id 1"), "{e}");
}
