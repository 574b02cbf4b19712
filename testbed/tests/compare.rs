//! `compare` on diamond with the kernel baseline and the overlay: the qualitative claims of IP vs
//! overlay multicast come out of the measurement, the results directory holds JSON and plots,
//! and nothing of either run is left behind.
//! Privileged: skips with a message when not root, smcrouted is missing, or the fanoutd binaries
//! are not found (set FANOUTD/FANOUTCTL, or `cargo build -p fanout-controlplane --bins`).

mod common;

use testbed::compare::{self, CompareMode, CompareOptions};

// Input: diamond (src -r1- cheap branch r2 / costly branch r3 -r4- h1, h2), modes kernel and
// overlay, 300 packets at 500 pps, a tree link (r1-r2) cut mid-stream.
// Output: kernel — every receiver gets everything, every link that carried data carried exactly
// one copy per packet, stretch 1, state on the three on-tree routers and none on r3, no recovery
// after the cut (static routes); overlay — every receiver gets everything, zero multicast state
// in every router (read with `ip mroute` in the routers), some link carries two copies per packet
// (stress > 1); compare.json and the four SVG plots exist; the kernel's figures agree with the
// simulation; no namespace of either run is left.
#[test]
fn diamond_kernel_vs_overlay_measured() {
    if !common::can_run_fanoutd(true) {
        return;
    }
    let out = std::env::temp_dir().join(format!("fanout-compare-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let opts = CompareOptions {
        topology: "diamond".into(),
        modes: vec![CompareMode::Kernel, CompareMode::Overlay],
        packets: 300,
        rate_pps: 500,
        out: Some(out.clone()),
        ..CompareOptions::default()
    };
    let t0 = std::time::Instant::now();
    let r = compare::run(&opts, &mut |m| eprintln!("{m}")).unwrap();
    eprintln!("{}", compare::output::text(&r));
    eprintln!("compare took {:.1} s", t0.elapsed().as_secs_f64());

    let kernel = &r.modes[0];
    assert_eq!(kernel.mode, CompareMode::Kernel);
    assert!(kernel.ok(), "{}", kernel.status);
    assert!(kernel.delivery_ratio >= 0.99, "kernel delivery {}", kernel.delivery_ratio);
    assert_eq!(kernel.duplicates, 0);
    assert_eq!((kernel.stress_max, kernel.stress_mean), (1, 1.0), "{:?}", kernel.links);
    assert_eq!(kernel.used_links, 5, "{:?}", kernel.links);
    assert_eq!(kernel.stretch_max, Some(1.0));
    let state = |m: &compare::ModeReport, n: &str| {
        m.state.iter().find(|s| s.node == n).map(|s| s.entries).unwrap()
    };
    for n in ["r1", "r2", "r4"] {
        assert_eq!(state(kernel, n), 1, "{n}: {:?}", kernel.state);
    }
    assert_eq!(state(kernel, "r3"), 0);
    let f = kernel.failure.as_ref().expect("diamond has a failure link");
    assert_eq!(f.link, "r1-r2");
    assert!(!f.recovered, "static routes cannot reroute: {f:?}");
    assert!(kernel.join_latency_ms_max.is_some());

    let overlay = &r.modes[1];
    assert_eq!(overlay.mode, CompareMode::Overlay);
    assert!(overlay.ok(), "{}", overlay.status);
    assert!(overlay.delivery_ratio >= 0.99, "overlay delivery {}", overlay.delivery_ratio);
    assert_eq!(overlay.router_state_max, 0, "{:?}", overlay.state);
    for n in ["r1", "r2", "r3", "r4"] {
        assert_eq!(state(overlay, n), 0, "{n}");
    }
    assert!(overlay.stress_max >= 2, "{:?}", overlay.links);
    assert!(overlay.state.iter().any(|s| s.next_hops > 0), "{:?}", overlay.state);
    assert!(overlay.mismatches.is_empty(), "{:?}", overlay.mismatches);

    let sim = r.sim.as_ref().expect("simulation ran");
    let krow = sim.rows.iter().find(|x| x.mode == CompareMode::Kernel).unwrap();
    assert!(krow.differences.is_empty(), "{:?}", krow.differences);

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("compare.json")).unwrap()).unwrap();
    assert_eq!(json["modes"].as_array().unwrap().len(), 2);
    assert!(json["modes"][0]["links"].as_array().is_some_and(|l| !l.is_empty()));
    for f in ["stretch_cdf.svg", "latency_cdf.svg", "link_stress.svg", "state_per_router.svg"] {
        let text = std::fs::read_to_string(out.join(f)).unwrap();
        assert!(text.contains("<svg") && text.contains("kernel"), "{f}");
    }
    assert!(std::fs::read_to_string(out.join("summary.md")).unwrap().contains("| kernel |"));
    for m in &r.modes {
        let run = m.run.as_ref().unwrap();
        let left = testbed::netns::list_with_prefix(&format!("ft{run}-"));
        assert!(left.is_empty(), "namespaces left: {left:?}");
    }
    let _ = std::fs::remove_dir_all(&out);
}
