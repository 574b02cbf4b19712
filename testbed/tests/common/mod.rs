//! Shared helpers for the privileged testbed tests (included with `mod common;`).

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::path::Path;
use std::time::Duration;

use testbed::netns;
use testbed::run;

/// Returns false (after saying why) when the test cannot run here.
pub fn can_run(needs_smcroute: bool) -> bool {
    if !netns::is_root() {
        eprintln!("skipped: needs root");
        return false;
    }
    if needs_smcroute
        && !["/usr/sbin/smcrouted", "/usr/bin/smcrouted", "/sbin/smcrouted"]
            .iter()
            .any(|p| Path::new(p).exists())
    {
        eprintln!("skipped: smcrouted not installed (Debian package smcroute)");
        return false;
    }
    true
}

/// [`can_run`], and the fanoutd/fanoutctl binaries are built (else says why and returns false).
pub fn can_run_fanoutd(needs_smcroute: bool) -> bool {
    if !can_run(needs_smcroute) {
        return false;
    }
    if let Err(e) = testbed::fanoutd::fanoutd_binary().and(testbed::fanoutd::fanoutctl_binary()) {
        eprintln!("skipped: {e}");
        return false;
    }
    true
}

/// The square4 topology with fanoutd in routing `mode` on every router, up and converged.
pub fn square4(
    mode: testbed::fanoutd::RoutingMode,
) -> (testbed::topology::Topology, testbed::bringup::Lab) {
    let topo = testbed::topology::Topology::load("square4").unwrap();
    let t_up = std::time::Instant::now();
    let lab = testbed::bringup::Lab::up_with(
        &topo,
        &testbed::bringup::UpOptions::default(),
        &testbed::fanoutd::FanoutdOptions::mode(mode),
    )
    .unwrap();
    eprintln!("{mode}: square4 up and converged in {:.2} s", t_up.elapsed().as_secs_f64());
    (topo, lab)
}

/// Asserts that nothing of run `id` is left: namespaces, state file, run dir, processes.
pub fn assert_gone(id: u16, pids: &[i32]) {
    let prefix = format!("ft{}-", run::id_str(id));
    assert!(
        netns::list_with_prefix(&prefix).is_empty(),
        "namespaces left: {:?}",
        netns::list_with_prefix(&prefix)
    );
    assert!(!run::state_path(id).exists(), "state file left");
    assert!(!run::run_dir(id).exists(), "run dir left");
    for pid in pids {
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'));
        assert!(!alive, "process {pid} still running");
    }
}

/// With `FANOUT_SCENARIO_LOGS=DIR`, keeps the routers' configs and logs in DIR/<tag>-<run>.
pub fn keep_logs(lab: &testbed::bringup::Lab, tag: &str) {
    if let Some(dir) = std::env::var_os("FANOUT_SCENARIO_LOGS") {
        let dest = Path::new(&dir).join(format!("{tag}-{}", lab.state.run));
        match lab.save_logs(&dest) {
            Ok(n) => eprintln!("kept {n} files in {}", dest.display()),
            Err(e) => eprintln!("could not keep the logs in {}: {e}", dest.display()),
        }
    }
}

/// Prints `fanoutctl show <what>` of every router of square4 (and keeps the logs, see
/// [`keep_logs`]): what a failing scenario needs to be diagnosed from the CI log alone.
pub fn dump(lab: &testbed::bringup::Lab, tag: &str, shows: &[&str]) {
    keep_logs(lab, tag);
    for r in ["r1", "r2", "r3", "r4"] {
        for what in shows {
            eprintln!(
                "== {r} show {what}\n{}",
                lab.fanoutctl(r, &["show", what]).unwrap_or_else(|e| e)
            );
        }
    }
}

/// Asserts `cond`; when it fails, dumps every router's state first (see [`dump`]).
pub fn check(lab: &testbed::bringup::Lab, tag: &str, shows: &[&str], cond: bool, msg: &str) {
    if !cond {
        dump(lab, tag, shows);
        panic!("{msg}");
    }
}

/// How a protocol is expected to ride out a silent failure of r2 on square4 (see
/// [`freeze_and_resume`]).
pub struct FreezeExpectation {
    /// The protocol, for messages ("dvmrp", "linkstate").
    pub tag: &'static str,
    /// What `fanoutctl show` to dump on failure.
    pub shows: &'static [&'static str],
    /// Packets h2 must receive after the freeze to count as fed again.
    pub packets_after: usize,
    /// Upper bound on h2's gap (the protocol's failure detection plus rerouting).
    pub max_gap: Duration,
    /// How long to wait for each step.
    pub limit: Duration,
    pub poll: Duration,
    /// Why the gap is what it is (printed with the figures).
    pub detection: &'static str,
}

/// Square4 step shared by the DVMRP and link-state scenarios: r2 freezes (SIGSTOP), so nothing
/// changes on any interface and its neighbours notice only when its messages stop; h2 must be
/// fed through r3 within `max_gap`. Then r2 resumes: the protocol reconverges and h1 (behind r2)
/// gets traffic again over r2->r4. Prints the gaps and losses.
pub fn freeze_and_resume(
    lab: &testbed::bringup::Lab,
    h1: &testbed::scenario::Member,
    h2: &testbed::scenario::Member,
    e: &FreezeExpectation,
) {
    use std::time::Instant;
    use testbed::scenario::{data_counters, wait_for};
    let check = |cond: bool, msg: &str| check(lab, e.tag, e.shows, cond, msg);
    let frozen_at = Instant::now();
    lab.freeze_router("r2", true).unwrap();
    let moved = wait_for(e.limit, e.poll, || {
        h2.arrivals().0.iter().filter(|a| a.1 > frozen_at).count() >= e.packets_after
    });
    let g = h2.arrivals().longest_gap(frozen_at, Instant::now());
    let _ = lab.freeze_router("r2", false);
    check(moved.is_some(), &format!("h2 got no traffic within {:?} of freezing r2", e.limit));
    eprintln!(
        "{} silent failure of r2 (SIGSTOP): h2 gap {:.3} s, {} packets lost ({})",
        e.tag,
        g.duration.as_secs_f64(),
        g.lost,
        e.detection
    );
    check(g.duration < e.max_gap, &format!("failover after the freeze over {:?}", e.max_gap));
    let thawed_at = Instant::now();
    let back = lab.wait_converged(e.limit);
    check(back.is_ok(), &format!("no reconvergence after r2 resumed: {back:?}"));
    let h1_back = wait_for(e.limit, e.poll, || {
        h1.arrivals().first_after(thawed_at).is_some()
            && data_counters(lab, "r4", "r2").is_ok_and(|c| c.0 > 0)
    });
    check(h1_back.is_some(), "h1 / r2->r4 did not get traffic again after r2 resumed");
    std::thread::sleep(Duration::from_millis(500));
    let g1 = h1.arrivals().longest_gap(frozen_at, Instant::now());
    let g2 = h2.arrivals().longest_gap(thawed_at, Instant::now());
    eprintln!(
        "{} r2 resumed: converged after {:.3} s; h1 gap {:.3} s over freeze and resume; h2 longest \
         gap after the resume {:.3} s ({} lost), {} duplicates and {} late (reordered) packets at \
         h2 in total",
        e.tag,
        back.unwrap_or_default().as_secs_f64(),
        g1.duration.as_secs_f64(),
        g2.duration.as_secs_f64(),
        g2.lost,
        h2.arrivals().duplicates(),
        h2.arrivals().reordered()
    );
}
