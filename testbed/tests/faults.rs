//! Faults × routing modes (issue 9 "Faults"): the same faults, in the same order, on the
//! 4-router square (testbed/topologies/square4.toml) with fanoutd on every router, once in
//! routing mode `dvmrp` and once in `linkstate` (the testbed's fast timers), over one steady
//! 200 pps stream from `src` to members h1 (behind r2), h2 (behind r4) and h3 (behind r3).
//!
//! Faults (r2 is on the cheapest path to h1 and h2):
//! 1. `link r2-r4 down`: h2 must be reached through r1-r3-r4;
//! 2. `link r2-r4 up`: the link comes back, the tree may move back onto it;
//! 3. `kill -9 r2, restart`: no clean-up by the daemon (the stale XDP program is removed as a
//!    supervisor would, see `Lab::clear_stale_xdp`), then started again;
//! 4. `restart r2 (SIGTERM)`: a clean stop (routes withdrawn, LSAs flushed) and a start with a
//!    new DVMRP generation id / link-state auth sequence: the neighbours see a restarted peer.
//!
//! Per fault the test measures, for every member, the longest silence overlapping the fault
//! and the packets lost across it, the recovery time (from the fault to the end of that
//! silence, zero when the member saw none over 50 ms), and the routing protocol's
//! reconvergence (`Lab::wait_converged` after the repair, the fault itself for the link cut). It asserts: every member's stream
//! resumes within [`RESUME_LIMIT`]; after each fault every member again receives at least 90 %
//! of the stream over one second (no permanent black hole, no stale prune left behind);
//! members not behind the failed element lose nothing on the link faults. It prints the table
//! (copied to docs/robustness.md).
//!
//! 5. `veth r2-r4 removed, re-added`: the veth is deleted (both ends vanish) and, a second
//!    later, created again with the same names, MACs and addresses but new ifindexes; fanoutd
//!    re-attaches the ports (netlink events) while its routing protocol keeps a re-created
//!    interface down until a restart (docs/fanoutd.md), so h2 stays on r1-r3-r4.
//!
//! Not in the matrix: overlay node death (overlay mode).
//!
//! Privileged (root); skipped with a message otherwise or when the fanoutd binaries are missing.

mod common;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use testbed::bringup::Lab;
use testbed::fanoutd::RoutingMode;
use testbed::scenario::{wait_for, Member, Stream};

const RATE: u64 = 200;
const LIFE: Duration = Duration::from_secs(110);
/// A member's stream must be back this long after the repair at the latest.
const RESUME_LIMIT: Duration = Duration::from_secs(20);
const MEMBERS: [&str; 3] = ["h1", "h2", "h3"];
/// A silence longer than this (10 packet intervals) is an interruption.
const SILENCE: Duration = Duration::from_millis(50);

/// One cell of the matrix.
#[derive(Debug)]
struct Cell {
    mode: RoutingMode,
    fault: &'static str,
    /// Per member: (longest gap overlapping the fault, packets lost across it, recovery: from
    /// the fault to the end of that gap, zero when the member saw no gap over [`SILENCE`]).
    members: Vec<(String, Duration, u32, Duration)>,
    /// `wait_converged` after the repair.
    reconverge: Option<Duration>,
    duplicates: usize,
}

fn dump(lab: &Lab) {
    let dir = testbed::run::run_dir(lab.run_id());
    for r in ["r1", "r2", "r3", "r4"] {
        let log = std::fs::read_to_string(dir.join(format!("{r}.fanoutd.log"))).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        eprintln!("== {r} log (last 40 lines)");
        for l in tail.iter().rev() {
            eprintln!("{l}");
        }
        for what in ["neighbors", "mroute", "counters"] {
            eprintln!(
                "== {r} show {what}\n{}",
                lab.fanoutctl(r, &["show", what]).unwrap_or_else(|e| e)
            );
        }
    }
}

fn check(lab: &Lab, cond: bool, msg: &str) {
    if !cond {
        dump(lab);
        panic!("{msg}");
    }
}

/// Packets each member got in the last `window`.
fn recent(members: &[Member], window: Duration) -> Vec<(String, usize)> {
    let since = Instant::now().checked_sub(window).unwrap_or_else(Instant::now);
    members
        .iter()
        .map(|m| (m.node.clone(), m.arrivals().0.iter().filter(|a| a.1 >= since).count()))
        .collect()
}

/// Waits until every member received at least 90 % of the stream over the last second.
fn flowing(lab: &Lab, members: &[Member], what: &str) {
    let want = usize::try_from(RATE * 9 / 10).unwrap_or(usize::MAX);
    let ok = wait_for(RESUME_LIMIT, Duration::from_millis(100), || {
        recent(members, Duration::from_secs(1)).iter().all(|(_, n)| *n >= want)
    });
    check(
        lab,
        ok.is_some(),
        &format!(
            "{what}: not every member is back to full rate: {:?} packets in the last second",
            recent(members, Duration::from_secs(1))
        ),
    );
}

/// Measures a fault that began at `fault_at` and was repaired at `repair_at`.
fn measure(
    lab: &Lab,
    mode: RoutingMode,
    fault: &'static str,
    members: &[Member],
    fault_at: Instant,
    repair_at: Instant,
) -> Cell {
    let resumed = wait_for(RESUME_LIMIT, Duration::from_millis(20), || {
        members.iter().all(|m| m.arrivals().first_after(repair_at).is_some())
    });
    check(
        lab,
        resumed.is_some(),
        &format!("{mode} {fault}: a member got nothing within {RESUME_LIMIT:?} of the repair"),
    );
    let reconverge = lab.wait_converged(RESUME_LIMIT).ok();
    flowing(lab, members, &format!("{mode} {fault}"));
    let now = Instant::now();
    let members_out = members
        .iter()
        .map(|m| {
            let a = m.arrivals();
            let g = a.longest_gap(fault_at, now);
            let end = g
                .first_seq_after
                .and_then(|seq| a.0.iter().find(|x| x.0 == seq))
                .map_or(fault_at, |x| x.1);
            let recovery = if g.duration > SILENCE {
                end.saturating_duration_since(fault_at)
            } else {
                Duration::ZERO
            };
            (m.node.clone(), g.duration, g.lost, recovery)
        })
        .collect();
    let duplicates = members.iter().map(|m| m.arrivals().duplicates()).sum();
    Cell { mode, fault, members: members_out, reconverge, duplicates }
}

fn ip(args: &[&str], stdin: Option<&str>) {
    use std::io::Write as _;
    let mut c = std::process::Command::new("ip");
    c.args(args).stdin(std::process::Stdio::piped());
    let mut child = c.spawn().expect("ip");
    if let Some(text) = stdin {
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let status = child.wait().unwrap();
    assert!(status.success(), "ip {args:?} failed");
}

/// Deletes the veth between routers `a` and `b`, waits 1 s, and creates it again as the lab
/// built it (names, MACs, addresses, offloads off, permanent neighbours, unicast routes).
fn recreate_link(lab: &mut Lab, a: &str, b: &str) {
    let li = lab.link_between(a, b).unwrap();
    let plan = lab.plan.clone();
    let (ia, ib) = (plan.idx(a), plan.idx(b));
    let (pa, pb) = (plan.port_on_link(ia, li).unwrap(), plan.port_on_link(ib, li).unwrap());
    let (na, nb) = (plan.ns_name(ia), plan.ns_name(ib));
    ip(&["-n", &na, "link", "del", &pa.ifname], None);
    std::thread::sleep(Duration::from_secs(1));
    let mac = |m: [u8; 6]| m.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":");
    ip(
        &[
            "link",
            "add",
            &pa.ifname,
            "address",
            &mac(pa.mac),
            "netns",
            &na,
            "type",
            "veth",
            "peer",
            "name",
            &pb.ifname,
            "address",
            &mac(pb.mac),
            "netns",
            &nb,
        ],
        None,
    );
    for (ns, p) in [(&na, pa), (&nb, pb)] {
        let off = std::process::Command::new("ip")
            .args(["netns", "exec", ns, "ethtool", "-K", &p.ifname, "rx", "off", "tx", "off"])
            .args(["rxvlan", "off", "txvlan", "off"])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(off.success(), "ethtool on {}", p.ifname);
        let batch = format!(
            "addr add {}/{} dev {}\nlink set dev {} up\n",
            p.addr, p.prefix.len, p.ifname, p.ifname
        );
        ip(&["-n", ns, "-batch", "-"], Some(&batch));
    }
    // Neighbours and the unicast routes through the link, as after a link-up.
    lab.set_link(a, b, true).unwrap();
}

/// Stops router `node`'s fanoutd with SIGTERM (a clean stop) and waits until it is gone.
fn stop_router(lab: &Lab, node: &str) -> i32 {
    let pid = lab.router_pid(node).expect("router pid");
    let target = nix::unistd::Pid::from_raw(pid);
    nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGTERM).unwrap();
    let gone = wait_for(Duration::from_secs(10), Duration::from_millis(10), || {
        let _ = nix::sys::wait::waitpid(target, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
        lab.router_pid(node) != Some(pid)
    });
    check(lab, gone.is_some(), &format!("{node} (pid {pid}) did not stop on SIGTERM"));
    pid
}

fn matrix(mode: RoutingMode) -> Vec<Cell> {
    let (topo, mut lab) = common::square4(mode);
    let (group, port) = (topo.traffic.groups[0], topo.traffic.port);
    let members: Vec<Member> =
        MEMBERS.iter().map(|h| Member::join(&lab, h, group, port, LIFE).unwrap()).collect();
    let stream = Stream::start(&lab, "src", group, port, RATE, RATE * 110, LIFE).unwrap();
    flowing(&lab, &members, &format!("{mode} start"));
    let mut cells = Vec::new();

    // 1. Link cut: no repair, h2 must move to r1-r3-r4.
    let t = Instant::now();
    lab.set_link("r2", "r4", false).unwrap();
    let cell = measure(&lab, mode, "link r2-r4 down", &members, t, t);
    for (node, _, lost, _) in &cell.members {
        if node != "h2" {
            check(&lab, *lost == 0, &format!("{mode} link cut: {node} lost {lost}"));
        }
    }
    cells.push(cell);

    // 2. The link comes back.
    let t = Instant::now();
    lab.set_link("r2", "r4", true).unwrap();
    cells.push(measure(&lab, mode, "link r2-r4 up", &members, t, t));

    // 3. kill -9 and restart.
    let t = Instant::now();
    lab.kill_router("r2").unwrap();
    lab.clear_stale_xdp("r2").unwrap();
    lab.start_router("r2").unwrap();
    let repaired = Instant::now();
    cells.push(measure(&lab, mode, "kill -9 r2, restart", &members, t, repaired));

    // 4. Clean restart: the neighbours see a new generation id / auth sequence.
    let t = Instant::now();
    stop_router(&lab, "r2");
    lab.start_router("r2").unwrap();
    let repaired = Instant::now();
    cells.push(measure(&lab, mode, "restart r2 (SIGTERM)", &members, t, repaired));

    // 5. Interface removed and re-added: the veth r2-r4 is deleted (both ends) and created
    // again with the same names, MACs and addresses (a new ifindex).
    let t = Instant::now();
    recreate_link(&mut lab, "r2", "r4");
    let repaired = Instant::now();
    cells.push(measure(&lab, mode, "veth r2-r4 removed, re-added", &members, t, repaired));

    let sent = stream.stop();
    for m in members {
        let node = m.node.clone();
        let (_, a) = m.leave();
        eprintln!("{mode}: {node} received {} distinct of {sent} sent", a.distinct());
    }
    lab.down().unwrap();
    cells
}

fn table(cells: &[Cell]) -> String {
    let mut s = String::from(
        "| mode | fault | h1 gap s / lost | h2 gap s / lost | h3 gap s / lost | recovered after s (h1, h2, h3) | protocol converged s | dup |\n|---|---|---|---|---|---|---|---|\n",
    );
    for c in cells {
        let gaps: Vec<String> = c
            .members
            .iter()
            .map(|(_, g, lost, _)| format!("{:.2} / {lost}", g.as_secs_f64()))
            .collect();
        let back: Vec<String> =
            c.members.iter().map(|(_, _, _, b)| format!("{:.2}", b.as_secs_f64())).collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            c.mode,
            c.fault,
            gaps[0],
            gaps[1],
            gaps[2],
            back.join(", "),
            c.reconverge.map_or_else(
                || format!("not in {} s", RESUME_LIMIT.as_secs()),
                |d| format!("{:.2}", d.as_secs_f64())
            ),
            c.duplicates
        );
    }
    s
}

fn run(mode: RoutingMode) {
    if !common::can_run_fanoutd(false) {
        return;
    }
    let cells = matrix(mode);
    eprintln!("faults, routing mode {mode} (square4, {RATE} pps):\n{}", table(&cells));
}

// Input: square4, fanoutd in routing mode dvmrp, the four faults above in turn. Output: each
// member's stream resumes within 20 s of each repair and returns to full rate; members off the
// cut link lose nothing; the table of gaps and recovery times.
#[test]
fn faults_dvmrp() {
    run(RoutingMode::Dvmrp);
}

// The same in routing mode linkstate.
#[test]
fn faults_linkstate() {
    run(RoutingMode::Linkstate);
}
