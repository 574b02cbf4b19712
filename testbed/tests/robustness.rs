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

/// Every thread's credentials of process `pid`.
fn thread_caps(pid: i32) -> Vec<(i32, controlplane::daemon::privileges::ThreadCaps)> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    dir.filter_map(|e| {
        let tid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let s = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).ok()?;
        Some((tid, controlplane::daemon::privileges::ThreadCaps::parse(&s)?))
    })
    .collect()
}

// Input: line3 with fanoutd on r1 (started as root, as the testbed does). Output: once set-up is
// over every fanoutd thread has exactly CAP_NET_ADMIN, CAP_NET_RAW, CAP_IPC_LOCK and CAP_BPF
// effective and permitted, nothing inheritable or ambient, a bounding set within those four and
// no_new_privs; the ctl socket is root's, mode 0600, and `fanoutctl` run as `nobody` is refused
// while root's works (counters, i.e. bpf(2) on the maps, still readable); a stream is still
// forwarded, a SIGHUP reload still applies, and the daemon stops cleanly (XDP detached: needs
// the kept CAP_NET_ADMIN).
#[test]
fn fanoutd_drops_privileges_after_setup() {
    use controlplane::daemon::privileges;
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    use std::os::unix::process::CommandExt as _;

    if !common::can_run(false) {
        return;
    }
    let Ok(fanoutctl) = testbed::fanoutd::fanoutctl_binary() else {
        eprintln!("skipped: fanoutctl not built");
        return;
    };
    if let Err(e) = testbed::fanoutd::fanoutd_binary() {
        eprintln!("skipped: {e}");
        return;
    }
    let topo = Topology::load("line3").unwrap();
    let lab = Lab::up(&topo, &UpOptions { router: Some(RouterSoftware::Fanoutd), fanout: Some(2) })
        .unwrap();
    let socket = lab.ctl_sockets[0].1.clone();
    let pid = lab.router_pid("r1").expect("fanoutd pid");
    let keep = privileges::runtime_mask(privileges::last_cap().unwrap());

    // The ctl socket answers before the drop is over: poll until every thread has dropped.
    let t0 = Instant::now();
    let caps = loop {
        let caps = thread_caps(pid);
        let done = !caps.is_empty()
            && caps.iter().all(|(tid, c)| privileges::check_thread(*tid, c, keep).is_ok());
        if done || t0.elapsed() > Duration::from_secs(10) {
            break caps;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!("fanoutd pid {pid}: {} threads; keep {keep:#x}", caps.len());
    assert!(caps.len() >= 3, "expected the loop, workers and servers: {caps:?}");
    for (tid, c) in &caps {
        privileges::check_thread(*tid, c, keep).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.effective, keep, "thread {tid}: {c:?}");
        assert_eq!(c.bounding & !keep, 0, "thread {tid}: bounding set {:#x}", c.bounding);
    }

    // The socket: root's, 0600; `nobody` is refused even with the directory made traversable.
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o600), "{}", socket.display());
    let dir = socket.parent().unwrap();
    let dir_mode = std::fs::metadata(dir).unwrap().permissions().mode();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(dir_mode | 0o011)).unwrap();
    let out = std::process::Command::new(&fanoutctl)
        .arg("--socket")
        .arg(&socket)
        .args(["show", "counters", "--json"])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(dir_mode)).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("fanoutctl as nobody: {}; {}", out.status, err.trim());
    assert!(!out.status.success(), "nobody could use the ctl socket");
    assert!(err.to_lowercase().contains("permission denied"), "{err}");
    let c = Counters::read(&socket).expect("root's fanoutctl after the drop");
    assert!(!c.xdp.is_empty(), "XDP counters (bpf map reads) missing after the drop");

    // Forwarding and reload still work.
    let stream = TrafficOptions {
        count: Some(300),
        duration: Some(Duration::from_secs(20)),
        rate_pps: Some(200),
        ..TrafficOptions::default()
    };
    let traffic = run_traffic(&lab, &stream).expect("stream after the drop");
    for (node, rep) in &traffic.receivers {
        assert_eq!(rep.received(), 300, "{node}: lost {}", rep.lost());
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGHUP)
        .unwrap();
    let reloaded = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        testbed::fanoutd::fanoutctl(&socket, &["show", "counters", "--json"])
            .ok()
            .and_then(|o| serde_json::from_str::<serde_json::Value>(&o).ok())
            .and_then(|v| v["control"]["reloads_ok"].as_u64())
            .is_some_and(|n| n >= 1)
    });
    assert!(reloaded, "SIGHUP reload did not apply after the drop");
    // A clean stop detaches XDP through netlink, which needs the kept CAP_NET_ADMIN.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM)
        .unwrap();
    let stopped = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(25));
        let _ = nix::sys::wait::waitpid(
            nix::unistd::Pid::from_raw(pid),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        );
        !alive(pid)
    });
    let log = testbed::run::run_dir(lab.run_id()).join("r1.fanoutd.log");
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    lab.down().unwrap();
    assert!(stopped, "fanoutd did not stop on SIGTERM");
    assert!(log.contains("privileges dropped"), "{log}");
    assert!(log.contains("fanoutd stopped"), "{log}");
    assert!(!log.contains("failed"), "{log}");
}

/// `show lsdb --json` stats of every fanoutd: (node, rx_auth_failures).
fn auth_failures(lab: &Lab) -> Vec<(String, u64)> {
    lab.ctl_sockets
        .iter()
        .map(|(i, sock)| {
            let node = lab.plan.topo.nodes[*i].name.clone();
            let out = testbed::fanoutd::fanoutctl(sock, &["show", "lsdb", "--json"])
                .unwrap_or_else(|e| panic!("{node}: {e}"));
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            (node, v["stats"]["rx_auth_failures"].as_u64().expect("stats.rx_auth_failures"))
        })
        .collect()
}

/// Reload counters (ok, failed) of router `node`.
fn reloads(lab: &Lab, node: &str) -> (u64, u64) {
    let out = lab.fanoutctl(node, &["show", "counters", "--json"]).unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let n = |k: &str| v["control"][k].as_u64().unwrap_or(0);
    (n("reloads_ok"), n("reloads_failed"))
}

/// Rewrites every router's config with `keys` under `[linkstate]` and sends each fanoutd
/// SIGHUP, `gap` apart; returns once each has applied the reload (and none was refused).
fn rotate(lab: &Lab, originals: &[(String, String)], keys: &str, gap: Duration) {
    let dir = testbed::run::run_dir(lab.run_id());
    for (node, text) in originals {
        let text = text.replacen("[linkstate]\n", &format!("[linkstate]\n{keys}"), 1);
        std::fs::write(dir.join(format!("{node}.fanoutd.toml")), text).unwrap();
        let before = reloads(lab, node);
        let pid = lab.router_pid(node).unwrap();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGHUP)
            .unwrap();
        let applied = (0..200).any(|_| {
            let now = reloads(lab, node);
            assert_eq!(now.1, before.1, "{node} refused the reload to keys {keys:?}");
            if now.0 > before.0 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
            false
        });
        assert!(applied, "{node} did not reload");
        std::thread::sleep(gap);
    }
}

const KEY1: &str = "key_id = 1\nsecret = \"first secret of the domain\"\n";
const KEY2: &str = "key_id = 2\nsecret = \"second secret of the domain\"\n";

// Input: diamond with fanoutd in routing mode linkstate (fast timers: 100 ms hellos, 400 ms
// dead interval) on r1..r4, all authenticating with key 1. Rotation to key 2 by SIGHUP in three
// steps (accept 2; send 2 and accept 1; drop 1), each applied router by router 150 ms apart, so
// routers with different keys coexist. Output: every adjacency stays up at every 50 ms poll of
// the rotation, no router counts an authentication failure, and afterwards 20 hellos signed
// with the removed key 1 (forged by a link-state core in the sender's namespace) are counted as
// exactly 20 authentication failures on r1.
#[test]
fn linkstate_keys_rotate_by_reload() {
    use controlplane::linkstate::{
        Action, AuthKey, Event, LinkStateConfig, LinkStateRouter, LsInterface,
    };
    use testbed::fanoutd::{FanoutdOptions, RoutingMode};

    if !common::can_run(false) {
        return;
    }
    if let Err(e) = testbed::fanoutd::fanoutd_binary().and(testbed::fanoutd::fanoutctl_binary()) {
        eprintln!("skipped: {e}");
        return;
    }
    let topo = Topology::load("diamond").unwrap();
    let lab =
        Lab::up_with(&topo, &UpOptions::default(), &FanoutdOptions::mode(RoutingMode::Linkstate))
            .unwrap();
    let dir = testbed::run::run_dir(lab.run_id());
    let originals: Vec<(String, String)> = lab
        .ctl_sockets
        .iter()
        .map(|(i, _)| {
            let node = lab.plan.topo.nodes[*i].name.clone();
            let text = std::fs::read_to_string(dir.join(format!("{node}.fanoutd.toml"))).unwrap();
            assert!(text.contains("[linkstate]\n"), "{node}: no [linkstate] section");
            (node, text)
        })
        .collect();
    assert_eq!(originals.len(), 4);

    // Authentication on (not a rotation: adjacencies may flap while routers differ).
    rotate(&lab, &originals, KEY1, Duration::ZERO);
    lab.wait_converged(Duration::from_secs(20)).expect("converged with key 1");
    let before = auth_failures(&lab);

    let steps = [
        format!("{KEY1}accept_keys = [{{ {} }}]\n", KEY2.trim().replace('\n', ", ")),
        format!("{KEY2}accept_keys = [{{ {} }}]\n", KEY1.trim().replace('\n', ", ")),
        KEY2.to_owned(),
    ];
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (polls, broken) = std::thread::scope(|s| {
        let watch = s.spawn(|| {
            let (mut polls, mut broken) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Err(e) = lab.converged() {
                    broken.push(e);
                }
                polls += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            (polls, broken)
        });
        for step in &steps {
            rotate(&lab, &originals, step, Duration::from_millis(150));
            // Longer than the dead interval: a router refusing its neighbours' hellos would
            // have dropped them by now.
            std::thread::sleep(Duration::from_millis(600));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        watch.join().unwrap()
    });
    let after = auth_failures(&lab);
    eprintln!(
        "rotation: {polls} polls, adjacency lost in {}; auth failures {before:?} -> {after:?}",
        broken.len()
    );
    assert!(polls >= 20, "only {polls} polls");
    assert!(broken.is_empty(), "adjacency lost during the rotation: {broken:?}");
    assert_eq!(before, after, "authentication failures during the rotation");

    // Forged hellos signed with the removed key, from the sender's namespace onto r1's link.
    let src = lab.plan.idx("src");
    let port = lab.plan.ports[src][0].clone();
    let config = LinkStateConfig {
        auth: Some(AuthKey { key_id: 1, secret: "first secret of the domain".into() }),
        auth_sequence_start: u64::MAX / 2,
        ..LinkStateConfig::fast()
    };
    let iface = LsInterface {
        ifindex: dataplane_api::IfIndex(1),
        addr: port.addr,
        prefix_len: 24,
        cost: 1,
    };
    let mut forger = LinkStateRouter::new(config, u32::from(port.addr), vec![iface]);
    let hello = forger
        .handle(controlplane::timer::Timestamp::ZERO, Event::Start)
        .into_iter()
        .find_map(|a| match a {
            Action::Send { bytes, .. } => Some(bytes),
            _ => None,
        })
        .expect("the forger's hello");
    let r1_before = after.iter().find(|(n, _)| n == "r1").unwrap().1;
    let ifname = port.ifname.clone();
    lab.ns("src")
        .run(|| -> std::io::Result<()> {
            let s = socket2::Socket::new(
                socket2::Domain::IPV4,
                socket2::Type::RAW,
                Some(socket2::Protocol::from(i32::from(LS_PROTOCOL))),
            )?;
            s.bind_device(Some(ifname.as_bytes()))?;
            s.set_multicast_if_v4(&port.addr)?;
            s.set_multicast_ttl_v4(1)?;
            let dst = std::net::SocketAddrV4::new(Ipv4Addr::new(224, 0, 0, 200), 0);
            for _ in 0..20 {
                s.send_to(&hello, &dst.into())?;
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(())
        })
        .unwrap()
        .unwrap();
    let t0 = Instant::now();
    let r1_fail = loop {
        let n = auth_failures(&lab).into_iter().find(|(n, _)| n == "r1").unwrap().1;
        if n >= r1_before + 20 || t0.elapsed() > Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(200));
            break auth_failures(&lab).into_iter().find(|(n, _)| n == "r1").unwrap().1;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(r1_fail - r1_before, 20, "forged hellos with the removed key");
    lab.converged().expect("still converged after the forgeries");
    lab.down().unwrap();
}

/// IP protocol number of the link-state protocol (wire::linkstate::IP_PROTOCOL).
const LS_PROTOCOL: u8 = 253;

/// `control` counters of `show counters --json`.
fn control(socket: &Path) -> serde_json::Value {
    let out = testbed::fanoutd::fanoutctl(socket, &["show", "counters", "--json"]).unwrap();
    serde_json::from_str::<serde_json::Value>(&out).unwrap()["control"].clone()
}

/// (name, frame builder by sequence number, where it is counted: a `control` counter, `"none"`,
/// or `None` for `xdp.pass_other`).
type JunkCase = (&'static str, Box<dyn Fn(u32) -> Vec<u8>>, Option<&'static str>);

/// Where a control-plane junk class is counted in routing mode dvmrp.
fn dvmrp_mode_counter(class: Malformed) -> Option<&'static str> {
    match class {
        Malformed::IgmpTruncated
        | Malformed::IgmpLyingRecordCount
        | Malformed::IgmpLyingSourceCount => Some("igmp_rejected"),
        Malformed::DvmrpBadMask | Malformed::DvmrpBadMetric | Malformed::DvmrpTruncated => {
            Some("dvmrp_rejected")
        }
        // An IGMPv2 report goes to its group, which the router's kernel delivers to no socket
        // unless something there joined it (docs/robustness.md): not counted anywhere, the
        // v3 variant to 224.0.0.22 below is.
        Malformed::IgmpBadChecksum => Some("none"),
        // Overlay steering is off outside overlay modes: the kernel gets (and drops) them.
        _ => None,
    }
}

// Input: line3 with fanoutd in routing mode dvmrp (IGMP on the receivers' links, DVMRP on
// every interface, fast timers), members h1 and h2 joined by IGMP, a 300 pps stream from src;
// meanwhile from src: 50 frames of each IGMP, DVMRP and overlay junk class. Output: fanoutd
// alive and answering, no panic; each IGMP class raises control.igmp_rejected and each DVMRP
// class control.dvmrp_rejected by exactly 50, each overlay class xdp.pass_other by at least 50;
// no data-plane drop reason moves; both members get every packet after their first, no
// duplicates; DVMRP state unchanged (no neighbour, no route learnt from the junk).
#[test]
fn fanoutd_dvmrp_mode_survives_control_junk() {
    use testbed::fanoutd::{FanoutdOptions, RoutingMode};
    use testbed::scenario::{wait_for, Member, Stream};

    if !common::can_run(false) {
        return;
    }
    if let Err(e) = testbed::fanoutd::fanoutd_binary().and(testbed::fanoutd::fanoutctl_binary()) {
        eprintln!("skipped: {e}");
        return;
    }
    let topo = Topology::load("line3").unwrap();
    let lab = Lab::up_with(
        &topo,
        &UpOptions { router: None, fanout: Some(2) },
        &FanoutdOptions::mode(RoutingMode::Dvmrp),
    )
    .unwrap();
    let socket = lab.ctl_socket("r1").unwrap().to_owned();
    let pid = lab.router_pid("r1").unwrap();
    let (group, port) = (topo.traffic.groups[0], topo.traffic.port);
    let life = Duration::from_secs(60);
    let members: Vec<Member> =
        ["h1", "h2"].iter().map(|h| Member::join(&lab, h, group, port, life).unwrap()).collect();
    let learned = wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
        lab.fanoutctl("r1", &["show", "igmp", "--json"])
            .is_ok_and(|o| o.matches(&group.to_string()).count() >= 2)
    });
    assert!(learned.is_some(), "r1 did not learn both members");
    let dvmrp_neighbors = || {
        let out = lab.fanoutctl("r1", &["show", "neighbors", "--json"]).unwrap();
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["neighbors"].clone()
    };
    let neighbors_before = dvmrp_neighbors();
    let stream = Stream::start(&lab, "src", group, port, 300, 300 * 40, life).unwrap();
    let flowing = wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
        members.iter().all(|m| m.count() > 50)
    });
    assert!(flowing.is_some(), "the stream does not reach both members");

    let src = lab.plan.idx("src");
    let p = &lab.plan.ports[src][0];
    let ep = Endpoints {
        src_mac: p.mac,
        src_ip: p.addr,
        router_mac: p.peer_mac,
        router_ip: p.peer_addr,
        group,
        unrouted_group: Ipv4Addr::new(239, 9, 9, 9),
        overlay_port: 7410,
    };
    let ifname = p.ifname.clone();
    let inj = lab.ns("src").run(|| Injector::open(&ifname)).unwrap().unwrap();
    let mut cases: Vec<JunkCase> = Malformed::ALL
        .into_iter()
        .filter(|c| {
            c.name().starts_with("igmp")
                || c.name().starts_with("dvmrp")
                || c.name().starts_with("overlay")
        })
        .map(|c| {
            let build: Box<dyn Fn(u32) -> Vec<u8>> = Box::new(move |i| c.build(&ep, i));
            (c.name(), build, dvmrp_mode_counter(c))
        })
        .collect();
    let ep3 = ep;
    cases.push((
        "igmpv3_bad_checksum",
        Box::new(move |_| inject::igmpv3_bad_checksum(&ep3)),
        Some("igmp_rejected"),
    ));
    assert_eq!(cases.len(), 11);
    let mut failures = Vec::new();
    for (name, build, counter) in &cases {
        let before_dp = Counters::read(&socket).unwrap();
        let before = control(&socket);
        let rep = inj
            .send_paced(PER_CLASS, 1_000, Duration::from_secs(10), |i| {
                build(u32::try_from(i).unwrap_or(u32::MAX))
            })
            .unwrap();
        let rise = |c: &serde_json::Value, k: &str| {
            c[k].as_u64().unwrap_or(0).saturating_sub(before[k].as_u64().unwrap_or(0))
        };
        let counted = match counter {
            Some("none") => {
                std::thread::sleep(Duration::from_millis(500));
                0
            }
            Some(k) => {
                let _ = wait_for(Duration::from_secs(3), Duration::from_millis(50), || {
                    rise(&control(&socket), k) >= rep.sent
                });
                std::thread::sleep(Duration::from_millis(150));
                rise(&control(&socket), k)
            }
            None => {
                let after = settle(&socket, Duration::from_secs(3), |c| {
                    c.xdp("pass_other").saturating_sub(before_dp.xdp("pass_other")) >= rep.sent
                })
                .unwrap();
                after.xdp("pass_other").saturating_sub(before_dp.xdp("pass_other"))
            }
        };
        let after_dp = Counters::read(&socket).unwrap();
        let moved = before_dp.moved(&after_dp);
        let other = control(&socket);
        let (igmp, dvmrp) = (rise(&other, "igmp_rejected"), rise(&other, "dvmrp_rejected"));
        eprintln!(
            "{name:<26} sent {:>3} counted {counted:>3} as {:<16} igmp_rejected +{igmp} \
             dvmrp_rejected +{dvmrp} drops moved {moved:?}",
            rep.sent,
            counter.unwrap_or("xdp.pass_other"),
        );
        let ok = match counter {
            Some("none") => igmp == 0 && dvmrp == 0,
            Some(_) => counted == rep.sent && igmp + dvmrp == rep.sent,
            None => counted >= rep.sent && igmp + dvmrp == 0,
        };
        if rep.sent != PER_CLASS || !ok {
            failures.push(format!(
                "{name}: sent {}, counted {counted} (igmp_rejected +{igmp}, dvmrp_rejected +{dvmrp})",
                rep.sent
            ));
        }
        if !moved.is_empty() {
            failures.push(format!("{name}: data-plane drops moved {moved:?}"));
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(alive(pid), "fanoutd died");
    let neighbors_after = dvmrp_neighbors();
    let sent = stream.stop();
    std::thread::sleep(Duration::from_millis(200));
    for m in members {
        let node = m.node.clone();
        let (_, a) = m.leave();
        let first = a.0.iter().map(|x| x.0).min().unwrap_or(u32::MAX);
        let missing = a.missing(first, u32::try_from(sent).unwrap_or(u32::MAX));
        eprintln!(
            "{node}: {} distinct of {sent} (first {first}), {} missing, {} duplicates",
            a.distinct(),
            missing.len(),
            a.duplicates()
        );
        if first > 20 || !missing.is_empty() || a.duplicates() > 0 {
            failures.push(format!(
                "{node}: first {first}, missing {}, duplicates {}",
                missing.len(),
                a.duplicates()
            ));
        }
    }
    let log = testbed::run::run_dir(lab.run_id()).join("r1.fanoutd.log");
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    lab.down().unwrap();
    assert!(!log.contains("panicked"), "fanoutd log shows a panic:\n{log}");
    assert_eq!(neighbors_before, neighbors_after, "the junk changed DVMRP's neighbours");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
