//! Robustness of a running fanoutd (issue 9): malformed frames of every class and a flood of
//! data from random sources to random groups, injected from the sender's namespace while a
//! legitimate paced stream flows through the router.
//!
//! Asserted: the daemon stays alive and answers `fanoutctl`; the legitimate stream is delivered
//! completely (no loss, no duplicates); every malformed frame is accounted exactly where
//! `testbed::inject::Malformed::expect` says (a data-plane drop reason rising by exactly the
//! number injected, with no other reason moving; or an XDP pass counter rising while the data
//! plane counts nothing); the flood's punts stay within the token bucket (rate × time + burst),
//! no forwarding state is created, and fanoutd's RSS grows by less than 16 MiB.
//! Privileged: skips with a message when not root or the fanoutd binaries are missing.

mod common;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use testbed::bringup::{Lab, UpOptions};
use testbed::experiment::{run_traffic, TrafficOptions};
use testbed::inject::{self, Endpoints, Expect, Injector, Malformed};
use testbed::topology::{RouterSoftware, Topology};

/// Frames injected per malformed class.
const PER_CLASS: u64 = 50;
/// Frames in the random-source flood.
const FLOOD: u64 = 20_000;
const FLOOD_PPS: u64 = 2_500;
/// The data plane's punt token bucket: fanoutd's default `[limits] punt_rate` and the worker's
/// fixed burst.
const PUNT_RATE: f64 = 100.0;
const PUNT_BURST: f64 = 20.0;
const RSS_GROWTH_LIMIT_KB: u64 = 16 * 1024;

/// The parts of `fanoutctl show counters --json` this test reads, summed over interfaces.
#[derive(Debug, Clone, Default)]
struct Counters {
    drops: BTreeMap<String, u64>,
    punts: u64,
    xdp: BTreeMap<String, u64>,
    punts_received: u64,
}

impl Counters {
    fn read(socket: &Path) -> Result<Counters, String> {
        let out = testbed::fanoutd::fanoutctl(socket, &["show", "counters", "--json"])?;
        let v: serde_json::Value =
            serde_json::from_str(&out).map_err(|e| format!("not JSON ({e}): {out}"))?;
        let mut c = Counters::default();
        for i in v["interfaces"].as_array().ok_or("no interfaces[]")? {
            c.punts += i["punts"].as_u64().unwrap_or(0);
            for (k, n) in i["drops"].as_object().ok_or("no drops{}")? {
                *c.drops.entry(k.clone()).or_default() += n.as_u64().unwrap_or(0);
            }
        }
        for (k, n) in v["xdp"].as_object().ok_or("no xdp{}")? {
            c.xdp.insert(k.clone(), n.as_u64().unwrap_or(0));
        }
        c.punts_received = v["control"]["punts_received"].as_u64().unwrap_or(0);
        Ok(c)
    }

    fn drop(&self, reason: &str) -> u64 {
        self.drops.get(reason).copied().unwrap_or(0)
    }

    fn xdp(&self, name: &str) -> u64 {
        self.xdp.get(name).copied().unwrap_or(0)
    }

    fn total_drops(&self) -> u64 {
        self.drops.values().sum()
    }

    /// Drop reasons that moved between `self` (earlier) and `later`.
    fn moved(&self, later: &Counters) -> BTreeMap<String, u64> {
        later
            .drops
            .iter()
            .filter_map(|(k, v)| {
                let d = v.saturating_sub(self.drop(k));
                (d > 0).then(|| (k.clone(), d))
            })
            .collect()
    }
}

fn rss_kb(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Running and not a zombie (a crashed child of this test stays a zombie until reaped).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| !s[i + 2..].starts_with(['Z', 'X'])))
        .unwrap_or(false)
}

/// What happened to one malformed class.
#[derive(Debug)]
struct ClassResult {
    class: Malformed,
    expect: Expect,
    sent: u64,
    /// Rise of the expected counter.
    counted: u64,
    /// Data-plane drop reasons that moved (the expected one included).
    moved: BTreeMap<String, u64>,
    punts: u64,
}

#[derive(Debug)]
struct FloodResult {
    sent: u64,
    elapsed_s: f64,
    /// From the first flood frame to the last counter read.
    window_s: f64,
    no_route: u64,
    punts: u64,
    punts_received: u64,
    other_drops: BTreeMap<String, u64>,
    rss_before_kb: u64,
    rss_after_kb: u64,
    routes_before: usize,
    routes_after: usize,
}

fn mroute_count(socket: &Path) -> Result<usize, String> {
    let out = testbed::fanoutd::fanoutctl(socket, &["show", "mroute", "--json"])?;
    let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
    v["routes"].as_array().map(Vec::len).ok_or_else(|| format!("no routes[]: {out}"))
}

/// Reads counters until `reached(counters)` or `wait` passed; then once more after a short
/// pause so that an overshoot (a frame counted twice) would show.
fn settle(
    socket: &Path,
    wait: Duration,
    reached: impl Fn(&Counters) -> bool,
) -> Result<Counters, String> {
    let end = Instant::now() + wait;
    loop {
        let c = Counters::read(socket)?;
        if reached(&c) || Instant::now() >= end {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(150));
    Counters::read(socket)
}

fn inject_classes(
    inj: &Injector,
    ep: &Endpoints,
    socket: &Path,
) -> Result<Vec<ClassResult>, String> {
    let mut results = Vec::new();
    for class in Malformed::ALL {
        // Overlay steering is off in routing mode `static` (docs/config.md [overlay]).
        let expect = class.expect(false);
        let before = Counters::read(socket)?;
        let rep = inj
            .send_paced(PER_CLASS, 1_000, Duration::from_secs(10), |i| {
                class.build(ep, u32::try_from(i).unwrap_or(u32::MAX))
            })
            .map_err(|e| format!("{}: {e}", class.name()))?;
        let target = |c: &Counters| match expect {
            Expect::Drop(r) => c.drop(r).saturating_sub(before.drop(r)),
            Expect::XdpPass(x) => c.xdp(x).saturating_sub(before.xdp(x)),
        };
        let after = settle(socket, Duration::from_secs(3), |c| target(c) >= rep.sent)?;
        results.push(ClassResult {
            class,
            expect,
            sent: rep.sent,
            counted: target(&after),
            moved: before.moved(&after),
            punts: after.punts.saturating_sub(before.punts),
        });
    }
    Ok(results)
}

fn flood(inj: &Injector, ep: &Endpoints, socket: &Path, pid: i32) -> Result<FloodResult, String> {
    let rss_before_kb = rss_kb(pid).ok_or("no VmRSS before the flood")?;
    let routes_before = mroute_count(socket)?;
    let before = Counters::read(socket)?;
    let t0 = Instant::now();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let rep = inj
        .send_paced(FLOOD, FLOOD_PPS, Duration::from_secs(60), |_| {
            inject::random_source_frame(ep, &mut state)
        })
        .map_err(|e| format!("flood: {e}"))?;
    let after = settle(socket, Duration::from_secs(5), |c| {
        c.drop("no_route").saturating_sub(before.drop("no_route")) >= rep.sent
    })?;
    let window_s = t0.elapsed().as_secs_f64();
    let mut other_drops = before.moved(&after);
    let no_route = other_drops.remove("no_route").unwrap_or(0);
    Ok(FloodResult {
        sent: rep.sent,
        elapsed_s: rep.elapsed.as_secs_f64(),
        window_s,
        no_route,
        punts: after.punts.saturating_sub(before.punts),
        punts_received: after.punts_received.saturating_sub(before.punts_received),
        other_drops,
        rss_before_kb,
        rss_after_kb: rss_kb(pid).ok_or("no VmRSS after the flood")?,
        routes_before,
        routes_after: mroute_count(socket)?,
    })
}

// Input: line3 with fanoutd on r1 (static (S,G) routes for src's two groups to h1 and h2), a
// stream of 9000 packets at 300 pps; meanwhile from src: 50 frames of each of the 23
// malformed classes, then 20 000 frames from random sources to random unrouted groups at
// 2500 pps. Output: fanoutd alive and answering; both receivers get all 9000 packets once;
// each class counted exactly where expected; punts ≤ 100/s × window + 20; no new routes;
// RSS growth < 16 MiB.
#[test]
fn fanoutd_survives_malformed_frames_and_random_source_flood() {
    if !common::can_run(false) {
        return;
    }
    if let Err(e) = testbed::fanoutd::fanoutd_binary().and(testbed::fanoutd::fanoutctl_binary()) {
        eprintln!("skipped: {e}");
        return;
    }
    let topo = Topology::load("line3").unwrap();
    let lab = Lab::up(&topo, &UpOptions { router: Some(RouterSoftware::Fanoutd), fanout: Some(2) })
        .unwrap();
    let socket = lab.ctl_sockets[0].1.clone();
    let pid = lab.router_pids()[0].1;
    let plan = &lab.plan;
    let src = plan.idx("src");
    let port = &plan.ports[src][0];
    let ep = Endpoints {
        src_mac: port.mac,
        src_ip: port.addr,
        router_mac: port.peer_mac,
        router_ip: port.peer_addr,
        group: topo.traffic.groups[0],
        unrouted_group: Ipv4Addr::new(239, 9, 9, 9),
        overlay_port: 7410,
    };
    let ifname = port.ifname.clone();
    let inj = lab.ns("src").run(|| Injector::open(&ifname)).unwrap().unwrap();

    let stream = TrafficOptions {
        count: Some(9_000),
        duration: Some(Duration::from_secs(60)),
        rate_pps: Some(300),
        ..TrafficOptions::default()
    };
    let t0 = Instant::now();
    let (traffic, attack, attack_done, stream_done) = std::thread::scope(|s| {
        let traffic = s.spawn(|| {
            let r = run_traffic(&lab, &stream);
            (r, t0.elapsed())
        });
        // Receivers join and the stream starts within a second.
        std::thread::sleep(Duration::from_millis(1500));
        let classes = inject_classes(&inj, &ep, &socket);
        let flood = flood(&inj, &ep, &socket, pid);
        let attack_done = t0.elapsed();
        let (traffic, stream_done) = traffic.join().expect("traffic thread panicked");
        (traffic, (classes, flood), attack_done, stream_done)
    });

    assert!(alive(pid), "fanoutd (pid {pid}) died");
    let log = testbed::run::run_dir(lab.run_id()).join("r1.fanoutd.log");
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!log.contains("panicked"), "fanoutd log shows a panic:\n{log}");
    let c = Counters::read(&socket).expect("fanoutd does not answer fanoutctl");
    eprintln!("final counters: drops {:?} xdp {:?}", c.drops, c.xdp);

    let traffic = traffic.expect("legitimate stream");
    let classes = attack.0.expect("malformed injection");
    let flood = attack.1.expect("flood");
    eprintln!("{:<26} {:>5} {:>7}  {:<28} moved", "class", "sent", "counted", "expected");
    for r in &classes {
        eprintln!(
            "{:<26} {:>5} {:>7}  {:<28} {:?} punts {}",
            r.class.name(),
            r.sent,
            r.counted,
            format!("{:?}", r.expect),
            r.moved,
            r.punts
        );
    }
    eprintln!(
        "flood: {} frames in {:.1} s ({:.0}/s); {flood:?}",
        flood.sent,
        flood.elapsed_s,
        flood.sent as f64 / flood.elapsed_s.max(1e-9)
    );
    eprintln!(
        "stream: sent {} in {:.1} s; attack finished at {:.1} s, stream at {:.1} s",
        traffic.send.sent,
        traffic.send.elapsed_s,
        attack_done.as_secs_f64(),
        stream_done.as_secs_f64()
    );

    // Legitimate traffic: complete, while the attack ran.
    assert_eq!(traffic.send.sent, 9_000);
    for (node, rep) in &traffic.receivers {
        assert_eq!(rep.received(), 9_000, "{node}: lost {}", rep.lost());
        assert_eq!(rep.duplicates(), 0, "{node}");
    }
    assert!(attack_done < stream_done, "the attack must overlap the legitimate stream");

    // Malformed classes.
    for r in &classes {
        let name = r.class.name();
        assert_eq!(r.sent, PER_CLASS, "{name}: not all frames were sent");
        match r.expect {
            Expect::Drop(reason) => {
                assert_eq!(r.counted, r.sent, "{name}: {reason} rose by {}", r.counted);
                let others: Vec<_> = r.moved.keys().filter(|k| *k != reason).collect();
                assert!(others.is_empty(), "{name}: other drop reasons moved: {:?}", r.moved);
            }
            Expect::XdpPass(counter) => {
                // Other control traffic (receivers' IGMP reports) may add to pass_control.
                assert!(r.counted >= r.sent, "{name}: {counter} rose by only {}", r.counted);
                assert!(r.moved.is_empty(), "{name}: data plane counted {:?}", r.moved);
                assert_eq!(r.punts, 0, "{name}: punted");
            }
        }
    }

    // Flood: every frame counted as no_route, punts rate-limited, no state, bounded memory.
    assert_eq!(flood.sent, FLOOD);
    assert_eq!(flood.no_route, FLOOD, "no_route must count every flood frame");
    assert!(flood.other_drops.is_empty(), "flood caused other drops: {:?}", flood.other_drops);
    let bound = PUNT_RATE * flood.window_s + PUNT_BURST;
    assert!(
        (flood.punts as f64) <= bound,
        "{} punts exceed {bound:.0} (rate x {:.1} s + burst)",
        flood.punts,
        flood.window_s
    );
    assert!(flood.punts > 0, "the punt path delivered nothing");
    assert!(flood.punts_received <= flood.punts);
    assert_eq!(flood.routes_after, flood.routes_before, "the flood created forwarding state");
    let growth = flood.rss_after_kb.saturating_sub(flood.rss_before_kb);
    assert!(growth < RSS_GROWTH_LIMIT_KB, "fanoutd RSS grew by {growth} KiB");
    assert!(c.total_drops() >= FLOOD);

    lab.down().unwrap();
}
