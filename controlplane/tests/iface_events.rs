//! Interfaces that come and go while fanoutd runs (netlink link events).
//!
//! Without root: the event loop on the in-memory `RecordingBackend` — a removed interface is
//! reported `absent` and keeps its routes, a re-created one (new ifindex) gets its static routes
//! resolved again, events for interfaces not in the configuration change nothing.
//!
//! With root (`forwarding_survives_an_interface_that_goes_and_comes_back`): the real fanoutd in
//! a namespace forwarding one (S,G) from a sender to two receivers, each in its own namespace:
//!
//! ```text
//!   ns S: s0 .2 ── r0 .1 ┐ ns R (fanoutd, static (S,G) r0 → r1 r2)
//!                        ├ r1 .1 ── a1 .2   ns A (receiver)
//!                        └ r2 .1 ── b1 .2   ns B (receiver)      10.61.{0,1,2}.0/24
//! ```
//!
//! Input: the r2–b1 veth is deleted, then created again with the same names and addresses (a
//! new ifindex), then r1 is set down and up.
//! Output: while r2 is gone fanoutd keeps forwarding to A, says `absent` for r2 and still lists
//! r2 in the route; after the re-add forwarding to B resumes, every datagram of a burst reaches
//! A and B exactly once, r2 is `up` with its new ifindex; r1 down/up behaves the same with its
//! ifindex kept; fanoutd stops cleanly. Prints the time from re-adding the veth to the first
//! datagram B receives.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use controlplane::config::Config;
use controlplane::ctl::{InterfacesData, MrouteData, Request, Response, ShowWhat};
use controlplane::daemon::backend::{LinkEvent, LinkEventKind, RecordingBackend};
use controlplane::daemon::{Daemon, Input};
use crossbeam::channel::bounded;
use dataplane_api::{IfIndex, MfibUpdate};

mod common;

fn show<T: serde::de::DeserializeOwned>(d: &mut Daemon<RecordingBackend>, what: ShowWhat) -> T {
    let (tx, rx) = bounded(1);
    d.handle(Instant::now(), Input::Ctl { request: Request::Show { what }, reply: tx });
    match rx.recv().expect("reply") {
        Response { ok: true, data: Some(v), .. } => serde_json::from_value(v).expect("data"),
        other => panic!("show failed: {other:?}"),
    }
}

fn link(name: &str, ifindex: u32, kind: LinkEventKind) -> Input {
    Input::Link(LinkEvent { name: name.into(), ifindex, kind })
}

#[test]
fn event_loop_detaches_and_reattaches_ports_and_resolves_routes_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fanout.toml");
    std::fs::write(
        &path,
        "[[interface]]\nname = \"up0\"\n[[interface]]\nname = \"dn1\"\n[[interface]]\nname = \"dn2\"\n\
         [[static_route]]\nsource = \"10.0.0.9\"\ngroup = \"239.1.1.1\"\niif = \"up0\"\noifs = [\"dn1\", \"dn2\"]\n",
    )
    .expect("write");
    let config = Config::load(&path).expect("config");
    let backend = RecordingBackend::with_ports(&["up0", "dn1", "dn2"]);
    let mut d = Daemon::new(config, path, backend, Instant::now()).expect("daemon");
    let batches = |d: &Daemon<RecordingBackend>| d.backend().batches.len();
    let before = batches(&d);

    // Not ours: ignored.
    d.handle(Instant::now(), link("eth9", 40, LinkEventKind::Removed));
    assert_eq!(batches(&d), before);

    d.handle(Instant::now(), link("dn2", 12, LinkEventKind::Removed));
    let ifaces: InterfacesData = show(&mut d, ShowWhat::Interfaces);
    let states: Vec<(&str, &str)> =
        ifaces.interfaces.iter().map(|i| (i.name.as_str(), i.state.as_str())).collect();
    assert_eq!(states, [("up0", "up"), ("dn1", "up"), ("dn2", "absent")]);
    // The route keeps dn2 (unresolved until it comes back); nothing was sent to the data plane.
    let mroute: MrouteData = show(&mut d, ShowWhat::Mroute);
    let oifs: Vec<&str> = mroute.routes[0].oifs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(oifs, ["dn1", "dn2"]);
    assert_eq!(batches(&d), before);

    // Repeated events are harmless.
    d.handle(Instant::now(), link("dn2", 12, LinkEventKind::Down));
    assert_eq!(batches(&d), before);

    // Back with a new ifindex (13): the static route is installed again naming it.
    d.handle(Instant::now(), link("dn2", 13, LinkEventKind::Up));
    let ifaces: InterfacesData = show(&mut d, ShowWhat::Interfaces);
    let dn2 = &ifaces.interfaces[2];
    assert_eq!((dn2.state.as_str(), dn2.ifindex), ("up", 13));
    assert_eq!(batches(&d), before + 1);
    let last = d.backend().batches.last().expect("batch");
    assert!(
        matches!(&last[..], [MfibUpdate::Install(r)] if r.oifs.iter().any(|o| o.ifindex == IfIndex(13))),
        "{last:?}"
    );
    let mroute: MrouteData = show(&mut d, ShowWhat::Mroute);
    let oifs: Vec<&str> = mroute.routes[0].oifs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(oifs, ["dn1", "dn2"]);
    d.handle(Instant::now(), link("dn2", 13, LinkEventKind::Up));
    assert_eq!(batches(&d), before + 1, "an attached port on the same ifindex is left alone");
}

// ===== root: the real daemon =====

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 61, 1, 1);
const PORT: u16 = 6161;
const SRC: Ipv4Addr = Ipv4Addr::new(10, 61, 0, 2);

/// A UDP member of GROUP on `dev` in `ns`, recording sequence numbers until stopped.
struct Member {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(Vec<u32>, Option<Instant>)>,
}

impl Member {
    fn start(net: &common::TestNet, ns: &str, dev: &str) -> Member {
        let index = net.ifindex(ns, dev).expect("ifindex");
        let stop = Arc::new(AtomicBool::new(false));
        let (joined_tx, joined_rx) = std::sync::mpsc::channel();
        let thread = {
            let stop = Arc::clone(&stop);
            common::thread_in(ns, move || {
                let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
                    .expect("socket");
                s.set_reuse_address(true).expect("SO_REUSEADDR");
                s.bind(&SocketAddrV4::new(GROUP, PORT).into()).expect("bind");
                s.join_multicast_v4_n(&GROUP, &socket2::InterfaceIndexOrAddress::Index(index))
                    .expect("join");
                s.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
                joined_tx.send(()).expect("joined");
                let socket: std::net::UdpSocket = s.into();
                let (mut seqs, mut first) = (Vec::new(), None);
                let mut buf = [0u8; 2048];
                // Bounded: until stopped, and never longer than a minute.
                let deadline = Instant::now() + Duration::from_secs(60);
                while Instant::now() < deadline {
                    match socket.recv(&mut buf) {
                        Ok(n) if n >= 4 => {
                            first.get_or_insert_with(Instant::now);
                            seqs.push(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]));
                        }
                        Err(_) if stop.load(Ordering::Relaxed) => break,
                        _ => {}
                    }
                }
                (seqs, first)
            })
        };
        joined_rx.recv_timeout(Duration::from_secs(5)).expect("member joined");
        Member { stop, thread }
    }

    /// Stops (after 100 ms without datagrams) and returns the sequence numbers received and
    /// when the first arrived.
    fn finish(self) -> (Vec<u32>, Option<Instant>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("member")
    }
}

/// Sends sequence numbers `seqs` from S, one every `gap`, until done or `stop` is set.
fn sender(
    net: &common::TestNet,
    ns: &str,
    seqs: std::ops::Range<u32>,
    gap: Duration,
    stop: Arc<AtomicBool>,
) -> JoinHandle<u32> {
    let _ = net;
    common::thread_in(ns, move || {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
            .expect("socket");
        s.bind(&SocketAddrV4::new(SRC, 0).into()).expect("bind");
        s.set_multicast_if_v4(&SRC).expect("IP_MULTICAST_IF");
        s.set_multicast_ttl_v4(8).expect("ttl");
        let dst: socket2::SockAddr = SocketAddrV4::new(GROUP, PORT).into();
        let mut payload = [0x5a_u8; 64];
        let mut sent = 0;
        for seq in seqs {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            payload[..4].copy_from_slice(&seq.to_be_bytes());
            s.send_to(&payload, &dst).expect("send");
            sent += 1;
            std::thread::sleep(gap);
        }
        sent
    })
}

fn burst(net: &common::TestNet, ns: &str, seqs: std::ops::Range<u32>) {
    let n = seqs.len();
    let sent = sender(net, ns, seqs, Duration::from_millis(2), Arc::new(AtomicBool::new(false)))
        .join()
        .expect("sender");
    assert_eq!(sent as usize, n);
}

/// Each of `seqs` exactly once in `got`.
fn exactly_once(got: &[u32], seqs: std::ops::Range<u32>, who: &str) {
    let mut in_range: Vec<u32> = got.iter().copied().filter(|s| seqs.contains(s)).collect();
    in_range.sort_unstable();
    let want: Vec<u32> = seqs.collect();
    assert_eq!(in_range, want, "{who}: every datagram of the burst exactly once");
}

struct Topo {
    net: common::TestNet,
    ns: [String; 4],
    dev: [String; 6],
    dir: tempfile::TempDir,
}

impl Topo {
    const S: usize = 0;
    const R: usize = 1;
    const A: usize = 2;
    const B: usize = 3;

    fn new() -> Topo {
        let mut net = common::TestNet::new("ie");
        let ns = ["s", "r", "a", "b"].map(|n| net.add_ns(n).expect("namespace"));
        let dev = ["s0", "r0", "r1", "a1", "r2", "b1"].map(|d| net.ifname(d).expect("ifname"));
        for n in &ns {
            for conf in ["all", "default"] {
                net.sysctl(n, &format!("net.ipv4.conf.{conf}.rp_filter"), "0").expect("sysctl");
            }
        }
        let me = Topo { net, ns, dev, dir: tempfile::tempdir().expect("tempdir") };
        me.link(0);
        me.link(1);
        me.link(2);
        me
    }

    /// Creates veth `i` (0: s0–r0, 1: r1–a1, 2: r2–b1) with its addresses, up.
    fn link(&self, i: usize) {
        let (far, third) = [(Self::S, 0), (Self::A, 1), (Self::B, 2)][i];
        let (ra, fa) = (format!("10.61.{third}.1/24"), format!("10.61.{third}.2/24"));
        let (router_dev, far_dev) = if i == 0 {
            (&self.dev[1], &self.dev[0])
        } else {
            (&self.dev[2 * i], &self.dev[2 * i + 1])
        };
        self.net
            .veth(
                common::End::new(&self.ns[Self::R], router_dev, &ra),
                common::End::new(&self.ns[far], far_dev, &fa),
            )
            .expect("veth");
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("fanoutd.sock")
    }

    fn interfaces(&self) -> InterfacesData {
        let v = common::show_json(&self.socket(), "interfaces").expect("show interfaces");
        serde_json::from_value(v).expect("InterfacesData")
    }

    fn state(&self, dev: &str) -> (String, u32) {
        self.interfaces()
            .interfaces
            .into_iter()
            .find(|i| i.name == dev)
            .map(|i| (i.state, i.ifindex))
            .expect("interface listed")
    }
}

#[cfg(feature = "daemon")]
#[test]
fn forwarding_survives_an_interface_that_goes_and_comes_back() {
    if !common::privileged() {
        return;
    }
    let t = Topo::new();
    let [s0, r0, r1, a1, r2, b1] = t.dev.clone();
    let _ = s0;
    let config = format!(
        "[daemon]\ncontrol_socket = \"{}\"\nlog_level = \"info\"\n\
         [[interface]]\nname = \"{r0}\"\n[[interface]]\nname = \"{r1}\"\n[[interface]]\nname = \"{r2}\"\n\
         [[static_route]]\nsource = \"{SRC}\"\ngroup = \"{GROUP}\"\niif = \"{r0}\"\noifs = [\"{r1}\", \"{r2}\"]\n",
        t.socket().display()
    );
    let path = t.dir.path().join("fanout.toml");
    std::fs::write(&path, config).expect("write config");
    let mut daemon = common::start_fanoutd(&t.net, &t.ns[Topo::R], &path);
    assert!(common::wait_up(&t.socket()), "fanoutd did not come up");
    let (_, r2_old) = t.state(&r2);

    // 1. Both receivers get everything.
    let (ma, mb) =
        (Member::start(&t.net, &t.ns[Topo::A], &a1), Member::start(&t.net, &t.ns[Topo::B], &b1));
    burst(&t.net, &t.ns[Topo::S], 0..50);
    std::thread::sleep(Duration::from_millis(200));
    let (a, _) = ma.finish();
    let (b, _) = mb.finish();
    exactly_once(&a, 0..50, "A before");
    exactly_once(&b, 0..50, "B before");

    // 2. r2 (and b1 with it) deleted: absent, route kept, A still served.
    t.net.ip(&t.ns[Topo::R], &["link", "del", &r2]).expect("ip link del");
    assert!(
        common::wait_for(Duration::from_secs(5), || t.state(&r2).0 == "absent"),
        "r2 not reported absent: {:?}",
        t.state(&r2)
    );
    let (_, table, _) = common::fanoutctl(&t.socket(), &["show", "interfaces"]);
    eprintln!("iface_events: while r2 is gone:\n{table}");
    let ma = Member::start(&t.net, &t.ns[Topo::A], &a1);
    burst(&t.net, &t.ns[Topo::S], 100..150);
    std::thread::sleep(Duration::from_millis(200));
    exactly_once(&ma.finish().0, 100..150, "A while r2 is gone");
    let mroute: MrouteData =
        serde_json::from_value(common::show_json(&t.socket(), "mroute").expect("mroute")).unwrap();
    let oifs: Vec<&str> = mroute.routes[0].oifs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(oifs, [r1.as_str(), r2.as_str()], "the route keeps the absent interface");
    assert_eq!(daemon.try_wait().expect("try_wait"), None, "fanoutd still running");

    // 3. Re-created under a stream: time to the first datagram on B.
    let ma = Member::start(&t.net, &t.ns[Topo::A], &a1);
    let stop = Arc::new(AtomicBool::new(false));
    let stream =
        sender(&t.net, &t.ns[Topo::S], 1000..6000, Duration::from_millis(1), Arc::clone(&stop));
    let t0 = Instant::now();
    t.link(2);
    let linked = t0.elapsed();
    let mb = Member::start(&t.net, &t.ns[Topo::B], &b1);
    let resumed = common::wait_for(Duration::from_secs(10), || t.state(&r2).0 == "up");
    // Let the stream reach B for a while, then stop it.
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let streamed = stream.join().expect("stream");
    std::thread::sleep(Duration::from_millis(200));
    let (b_stream, b_first) = mb.finish();
    let (a_stream, _) = ma.finish();
    assert!(resumed, "r2 not up again: {:?}", t.state(&r2));
    let (state, r2_new) = t.state(&r2);
    assert_eq!(state, "up");
    assert_ne!(r2_new, r2_old, "a re-created veth has a new ifindex");
    let first = b_first.expect("B received nothing after the re-add");
    eprintln!(
        "iface_events: veth re-created in {:?}; first datagram on B {:?} after the re-add started \
         ({} of {streamed} streamed datagrams reached B, {} reached A)",
        linked,
        first.duration_since(t0),
        b_stream.len(),
        a_stream.len()
    );
    let mut sorted = b_stream.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), b_stream.len(), "B got a datagram twice");

    // 4. Exactly once to both after the re-add.
    let (ma, mb) =
        (Member::start(&t.net, &t.ns[Topo::A], &a1), Member::start(&t.net, &t.ns[Topo::B], &b1));
    burst(&t.net, &t.ns[Topo::S], 10_000..10_050);
    std::thread::sleep(Duration::from_millis(200));
    exactly_once(&ma.finish().0, 10_000..10_050, "A after");
    exactly_once(&mb.finish().0, 10_000..10_050, "B after");
    let mroute: MrouteData =
        serde_json::from_value(common::show_json(&t.socket(), "mroute").expect("mroute")).unwrap();
    assert_eq!(mroute.routes[0].oifs[1].name, r2, "the route names r2 again");

    // 5. r1 down and up: `down`, then forwarding with the same ifindex.
    let (_, r1_index) = t.state(&r1);
    t.net.ip(&t.ns[Topo::R], &["link", "set", &r1, "down"]).expect("down");
    assert!(
        common::wait_for(Duration::from_secs(5), || t.state(&r1).0 == "down"),
        "r1 not reported down: {:?}",
        t.state(&r1)
    );
    t.net.ip(&t.ns[Topo::R], &["link", "set", &r1, "up"]).expect("up");
    assert!(
        common::wait_for(Duration::from_secs(5), || t.state(&r1) == ("up".into(), r1_index)),
        "r1 not up again: {:?}",
        t.state(&r1)
    );
    let (ma, mb) =
        (Member::start(&t.net, &t.ns[Topo::A], &a1), Member::start(&t.net, &t.ns[Topo::B], &b1));
    burst(&t.net, &t.ns[Topo::S], 20_000..20_050);
    std::thread::sleep(Duration::from_millis(200));
    exactly_once(&ma.finish().0, 20_000..20_050, "A after r1 down/up");
    exactly_once(&mb.finish().0, 20_000..20_050, "B after r1 down/up");

    common::stop_cleanly(std::slice::from_mut(&mut daemon));
}
