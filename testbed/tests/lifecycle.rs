//! Bring-up/teardown leaves nothing behind; stale runs can be torn down; runs don't collide.
//! Privileged: skips with a message when not root.

mod common;

use std::time::Duration;

use testbed::bringup::{Lab, UpOptions};
use testbed::experiment::{run_traffic, TrafficOptions};
use testbed::netns::{self, NetNs};
use testbed::run::{self, RunState};
use testbed::topology::{RouterSoftware, Topology};

// Input: line3 with the kernel router. Output: every namespace, the smcrouted process, the
// state file and the run dir exist while up, and none of them after `down`.
#[test]
fn up_then_down_leaves_nothing() {
    if !common::can_run(true) {
        return;
    }
    let topo = Topology::load("line3").unwrap();
    let lab = Lab::up(&topo, &UpOptions::default()).unwrap();
    let id = lab.run_id();
    assert_eq!(netns::list_with_prefix(&format!("ft{}-", run::id_str(id))).len(), 6);
    let pids: Vec<i32> = lab.router_pids().iter().map(|p| p.1).collect();
    assert_eq!(pids.len(), 1);
    assert!(run::proc_starttime(pids[0]).is_some());
    // Interfaces exist in the router namespace with the planned names.
    let r1 = lab.ns("r1");
    let names: Vec<String> = r1
        .run(|| {
            std::fs::read_to_string("/proc/thread-self/net/dev")
                .unwrap()
                .lines()
                .skip(2)
                .filter_map(|l| Some(l.split(':').next()?.trim().to_owned()))
                .collect()
        })
        .unwrap();
    for p in &lab.plan.ports[lab.plan.idx("r1")] {
        assert!(names.contains(&p.ifname), "{} missing in {names:?}", p.ifname);
    }
    lab.down().unwrap();
    common::assert_gone(id, &pids);
}

// Input: a lab that is "crashed" (persisted, guard gone) and a namespace created outside the
// state file with the run's prefix. Output: `teardown` by run id removes both.
#[test]
fn stale_run_is_torn_down_by_id() {
    if !common::can_run(true) {
        return;
    }
    let topo = Topology::load("diamond").unwrap();
    let lab = Lab::up(&topo, &UpOptions::default()).unwrap();
    let id = lab.run_id();
    let pids: Vec<i32> = lab.router_pids().iter().map(|p| p.1).collect();
    assert_eq!(pids.len(), 4);
    let _state = lab.persist();
    let mut extra = NetNs::create(&format!("ft{}-orphan", run::id_str(id))).unwrap();
    extra.persist();
    assert!(RunState::list().contains(&id));
    let removed = run::teardown(id).unwrap();
    assert!(removed.iter().any(|r| r.contains("orphan")), "{removed:?}");
    common::assert_gone(id, &pids);
}

// Input: a failing bring-up (a router that must run fanoutd, with FANOUTD pointing nowhere).
// Output: the error names the missing binary and the half-built run is removed by the guard.
#[test]
fn failed_bringup_cleans_up() {
    if !common::can_run(false) {
        return;
    }
    // Only the Fanoutd path reads FANOUTD; point it at a path that cannot exist.
    std::env::set_var("FANOUTD", "/nonexistent/fanoutd-for-test");
    let topo = Topology::load("line3").unwrap();
    let err = Lab::up(&topo, &UpOptions { router: Some(RouterSoftware::Fanoutd), fanout: None })
        .unwrap_err();
    let testbed::bringup::BringupError::InRun { run: run_s, source } = &err else {
        panic!("error without run id: {err}");
    };
    assert!(source.to_string().contains("fanoutd binary not found"), "{err}");
    common::assert_gone(run::parse_id(run_s).unwrap(), &[]);
}

// Input: three labs brought up concurrently from three threads. Output: distinct run ids and
// namespaces, each forwards its own traffic without loss, and all are removed afterwards.
#[test]
fn parallel_runs_do_not_collide() {
    if !common::can_run(true) {
        return;
    }
    let results: Vec<(u16, u64, u64)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    let topo = Topology::load("line3").unwrap();
                    let lab = Lab::up(&topo, &UpOptions { router: None, fanout: Some(2) }).unwrap();
                    let r = run_traffic(
                        &lab,
                        &TrafficOptions {
                            count: Some(200),
                            rate_pps: Some(2000),
                            duration: Some(Duration::from_secs(10)),
                            ..TrafficOptions::default()
                        },
                    )
                    .unwrap();
                    let id = lab.run_id();
                    let received: u64 = r.receivers.iter().map(|(_, x)| x.received()).sum();
                    let foreign: u64 = r.receivers.iter().map(|(_, x)| x.foreign).sum();
                    lab.down().unwrap();
                    (id, received, foreign)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut ids: Vec<u16> = results.iter().map(|r| r.0).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    for (id, received, foreign) in results {
        // Two groups, 200 packets round-robin, two receivers: 400 deliveries, nothing foreign.
        assert_eq!(received, 400, "run {id:04x}");
        assert_eq!(foreign, 0);
        common::assert_gone(id, &[]);
    }
}

// Input: the CLI binary: `up line3`, `status <run>`, `exec <run> r1 ip -br addr`, `down <run>`.
// Output: each exits 0, exec runs inside r1, and nothing is left.
#[test]
fn cli_up_exec_down() {
    if !common::can_run(true) {
        return;
    }
    let bin = env!("CARGO_BIN_EXE_fanout-testbed");
    let out = std::process::Command::new(bin).args(["up", "line3"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let run_s = text.split_whitespace().nth(1).expect("`run <id> is up`").to_owned();
    let id = run::parse_id(&run_s).unwrap();
    let st = RunState::load(id).unwrap();
    let pids: Vec<i32> = st.processes.iter().map(|p| p.pid).collect();
    let ex = std::process::Command::new(bin)
        .args(["exec", &run_s, "r1", "--", "ip", "-br", "addr"])
        .output()
        .unwrap();
    assert!(ex.status.success());
    let addrs = String::from_utf8_lossy(&ex.stdout);
    assert!(addrs.contains("10.0.0.2/24") && addrs.contains("10.1.4.1/24"), "{addrs}");
    let stat = std::process::Command::new(bin).args(["status", &run_s]).output().unwrap();
    assert!(stat.status.success());
    assert!(String::from_utf8_lossy(&stat.stdout).contains("src -- r1"));
    let down = std::process::Command::new(bin).args(["down", &run_s]).output().unwrap();
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    common::assert_gone(id, &pids);
}
