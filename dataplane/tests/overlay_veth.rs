//! Overlay multicast through two real data planes, with only a unicast kernel router between
//! them.
//!
//! ```text
//!  ns S            ns A (Dataplane)              ns M (kernel,      ns B (Dataplane)             ns R
//!  sender ─ veth ─ a_lan   a_wan ─ veth ─ ma  mb ─ unicast only) ─ veth ─ b_wan   b_lan ─ veth ─ receiver
//!  10.91.0.2       .91.0.1 .92.0.1        .92.0.2  .93.0.2               .93.0.1  .94.0.1        .94.0.2
//!  UDP to 239.9.9.9, TTL 8
//!  A: MFIB (S,G) iif a_lan, no oifs, overlay next hop B (neighbour MAC = M's ma)
//!  B: overlay route (origin A, G, from A) → deliver on b_lan
//! ```
//!
//! M forwards IPv4 unicast (ip_forward=1) and runs nothing multicast, so every datagram that
//! reaches R proves the overlay needs only unicast between overlay nodes; a packet socket in M
//! additionally checks what crossed it. Needs root (prints "skipped: needs root" otherwise).
//! Names carry the pid and a counter so tests run in parallel; an RAII guard deletes the
//! namespaces (and with them the veths) on success and failure. Senders are bounded in count,
//! receive loops in time.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::mfib::{IfIndex, MfibRoute, MfibUpdate, Neighbor, Oif, OverlayRoute};
use dataplane::overlay::{OverlayConfig, OverlayKey};
use dataplane::stats::{DropReason, StatsSnapshot};
use dataplane::worker::{Dataplane, DataplaneConfig, PortIoStats};
use netns::testnet::{privileged, thread_in, End, TestNet};
use socket2::{Domain, Protocol, Socket, Type};
use wire::ipv4::{Ipv4Options, Ipv4Packet, Ipv4Repr, Protocol as IpProtocol};
use wire::overlay::{MessageType, OverlayPacket, OverlayRepr, AUTH_TAG_LEN, HEADER_LEN};
use wire::udp::{UdpPacket, UdpRepr};

const S_ADDR: Ipv4Addr = Ipv4Addr::new(10, 91, 0, 2);
const A_LAN: Ipv4Addr = Ipv4Addr::new(10, 91, 0, 1);
const A_WAN: Ipv4Addr = Ipv4Addr::new(10, 92, 0, 1);
const M_A: Ipv4Addr = Ipv4Addr::new(10, 92, 0, 2);
const M_B: Ipv4Addr = Ipv4Addr::new(10, 93, 0, 2);
const B_WAN: Ipv4Addr = Ipv4Addr::new(10, 93, 0, 1);
const B_LAN: Ipv4Addr = Ipv4Addr::new(10, 94, 0, 1);
const R_ADDR: Ipv4Addr = Ipv4Addr::new(10, 94, 0, 2);
/// Fixed MACs where another node must know them: A's neighbour entry (M's ma), M's permanent
/// neighbour for B (b_wan), and the sniffer's filter (frames M sends out of mb).
const MAC_MA: [u8; 6] = [0x02, 0x13, 0, 0, 0x92, 0x02];
const MAC_MB: [u8; 6] = [0x02, 0x13, 0, 0, 0x93, 0x02];
const MAC_BW: [u8; 6] = [0x02, 0x13, 0, 0, 0x93, 0x01];
const GROUP: Ipv4Addr = Ipv4Addr::new(239, 9, 9, 9);
const PORT: u16 = 7999;
const OVERLAY_PORT: u16 = 7410;
const BURST: u32 = 1000;
const PAYLOAD: usize = 100;
const SENDER_TTL: u8 = 8;

fn mac_str(m: [u8; 6]) -> String {
    m.map(|b| format!("{b:02x}")).join(":")
}

/// Five namespaces and four veth pairs, removed on drop with the [`TestNet`].
struct Topology {
    net: TestNet,
    /// S, A, M, B, R.
    ns: [String; 5],
    a_lan: String,
    a_wan: String,
    b_wan: String,
    b_lan: String,
}

impl Topology {
    fn new() -> Topology {
        let mut net = TestNet::new("ov");
        let ns = ["s", "a", "m", "b", "r"].map(|n| net.add_ns(n).expect("namespace"));
        let [s, a_lan, a_wan, ma, mb, b_wan, b_lan, r] =
            ["s", "al", "aw", "ma", "mb", "bw", "bl", "r"].map(|d| net.ifname(d).expect("ifname"));
        let [ns_s, na, nm, nb, nr] = &ns;
        let cidr = |addr: Ipv4Addr| format!("{addr}/24");
        let pairs = [
            ((ns_s, &s, S_ADDR), (na, &a_lan, A_LAN)),
            ((na, &a_wan, A_WAN), (nm, &ma, M_A)),
            ((nm, &mb, M_B), (nb, &b_wan, B_WAN)),
            ((nb, &b_lan, B_LAN), (nr, &r, R_ADDR)),
        ];
        for ((ln, l, laddr), (rn, r, raddr)) in pairs {
            let (lc, rc) = (cidr(laddr), cidr(raddr));
            net.veth(End::new(ln, l, &lc), End::new(rn, r, &rc)).expect("veth");
        }
        for (n, dev, mac) in [(nm, &ma, MAC_MA), (nm, &mb, MAC_MB), (nb, &b_wan, MAC_BW)] {
            net.ip(n, &["link", "set", "dev", dev, "address", &mac_str(mac)]).expect("mac");
        }
        // M: a plain unicast IPv4 router, nothing multicast.
        net.sysctl(nm, "net.ipv4.ip_forward", "1").expect("forwarding");
        // A permanent neighbour: M's first forwarded packets must not wait in an ARP queue.
        let bw = B_WAN.to_string();
        net.ip(nm, &["neigh", "replace", &bw, "lladdr", &mac_str(MAC_BW), "dev", &mb])
            .expect("neighbour");
        // A's and B's kernels route to each other through M (the forged packets come from A's
        // kernel); the data planes do not use these routes.
        let m_a = M_A.to_string();
        net.ip(na, &["route", "add", "10.93.0.0/24", "via", &m_a]).expect("route");
        net.ip(na, &["neigh", "replace", &m_a, "lladdr", &mac_str(MAC_MA), "dev", &a_wan])
            .expect("neighbour");
        net.ip(nb, &["route", "add", "10.92.0.0/24", "via", &M_B.to_string()]).expect("route");
        net.ip(nr, &["route", "add", "default", "via", &B_LAN.to_string()]).expect("route");
        Topology { net, ns, a_lan, a_wan, b_wan, b_lan }
    }

    fn ifindex(&self, ns: usize, dev: &str) -> IfIndex {
        IfIndex(self.net.ifindex(&self.ns[ns], dev).expect("ifindex"))
    }

    /// Runs `f` inside namespace `ns` (a Dataplane started there keeps its workers there).
    fn run_in<R: Send>(&self, ns: usize, f: impl FnOnce() -> R + Send) -> R {
        self.net.run_in(&self.ns[ns], f).expect("enter namespace")
    }
}

fn payload(seq: u32) -> Vec<u8> {
    let mut p = seq.to_be_bytes().to_vec();
    p.extend((4..PAYLOAD).map(|i| (i as u32).wrapping_mul(13).wrapping_add(seq) as u8));
    p
}

/// Sends datagrams `first..first + count` from S to the group, TTL 8, 50 per millisecond.
fn send(ns: &str, first: u32, count: u32) -> std::thread::JoinHandle<()> {
    thread_in(ns, move || {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
        s.bind(&SocketAddrV4::new(S_ADDR, 0).into()).expect("bind");
        s.set_multicast_if_v4(&S_ADDR).expect("IP_MULTICAST_IF");
        s.set_multicast_ttl_v4(u32::from(SENDER_TTL)).expect("ttl");
        s.set_multicast_loop_v4(false).expect("loop");
        let dst = SocketAddrV4::new(GROUP, PORT).into();
        for seq in first..first + count {
            s.send_to(&payload(seq), &dst).expect("send");
            if seq % 50 == 49 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    })
}

/// What R saw: per sequence number (offset by the burst's first), how often; TTLs; defects.
#[derive(Debug)]
struct Received {
    seen: Vec<u32>,
    ttls: Vec<u8>,
    bad: Vec<String>,
}

impl Received {
    fn missing(&self) -> Vec<usize> {
        self.seen.iter().enumerate().filter(|(_, c)| **c == 0).map(|(i, _)| i).collect()
    }

    fn duplicated(&self) -> Vec<usize> {
        self.seen.iter().enumerate().filter(|(_, c)| **c > 1).map(|(i, _)| i).collect()
    }

    fn total(&self) -> u32 {
        self.seen.iter().sum()
    }
}

/// Receives the group's datagrams in R (raw socket: the IP header shows the TTL) until
/// `count` arrived or `idle` passes without one.
fn receive(
    ns: &str,
    first: u32,
    count: u32,
    idle: Duration,
    ready: std::sync::mpsc::Sender<()>,
) -> std::thread::JoinHandle<Received> {
    thread_in(ns, move || {
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::UDP)).expect("raw socket");
        s.join_multicast_v4(&GROUP, &R_ADDR).expect("IP_ADD_MEMBERSHIP");
        s.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
        s.set_recv_buffer_size(16 << 20).expect("SO_RCVBUF");
        let _ = ready.send(());
        let mut r = Received { seen: vec![0; count as usize], ttls: Vec::new(), bad: Vec::new() };
        let mut buf = [0u8; 2048];
        let mut got = 0;
        let mut last = Instant::now();
        while got < count && last.elapsed() < idle {
            let Ok(n) = (&s).read(&mut buf) else { continue };
            let Ok(ip) = Ipv4Packet::new_checked(&buf[..n]) else {
                r.bad.push("bad IPv4".into());
                continue;
            };
            if ip.dst_addr() != GROUP {
                continue;
            }
            last = Instant::now();
            if !ip.verify_checksum() {
                r.bad.push("IPv4 checksum".into());
            }
            if ip.src_addr() != S_ADDR {
                r.bad.push(format!("source {} instead of S", ip.src_addr()));
            }
            let Ok(udp) = UdpPacket::new_checked(ip.payload()) else {
                r.bad.push("bad UDP".into());
                continue;
            };
            if udp.dst_port() != PORT {
                continue;
            }
            if !udp.verify_checksum(ip.src_addr(), ip.dst_addr()) {
                r.bad.push("UDP checksum".into());
            }
            let data = udp.payload();
            let Some(seq) = data.get(..4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            else {
                r.bad.push("short payload".into());
                continue;
            };
            if data != payload(seq).as_slice() {
                r.bad.push(format!("payload of {seq} differs"));
            }
            match seq.checked_sub(first).and_then(|i| r.seen.get_mut(i as usize)) {
                Some(c) => {
                    *c += 1;
                    r.ttls.push(ip.ttl());
                    got += 1;
                }
                None => r.bad.push(format!("unexpected sequence {seq}")),
            }
        }
        r
    })
}

/// What a packet socket in M saw leaving M towards B (frames with M's mb MAC as source).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Wire {
    /// IPv4 unicast A → B, UDP to the overlay port.
    overlay_unicast: u64,
    /// Anything addressed to the group (native multicast must never cross M).
    group_multicast: u64,
    /// Other IPv4 frames (ARP, ICMP...) - reported, not asserted.
    other: u64,
}

fn sniff(ns: &str, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Wire> {
    thread_in(ns, move || {
        let eth_p_all = i32::from((libc::ETH_P_ALL as u16).to_be());
        let s = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(eth_p_all)))
            .expect("AF_PACKET socket");
        s.set_read_timeout(Some(Duration::from_millis(50))).expect("timeout");
        s.set_recv_buffer_size(16 << 20).expect("SO_RCVBUF");
        let mut w = Wire::default();
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            let Ok(n) = (&s).read(&mut buf) else { continue };
            let frame = &buf[..n];
            if frame.len() < 14 || frame[6..12] != MAC_MB {
                continue;
            }
            let Ok(ip) = Ipv4Packet::new_checked(&frame[14..]) else {
                w.other += 1;
                continue;
            };
            if ip.dst_addr() == GROUP {
                w.group_multicast += 1;
            } else if ip.src_addr() == A_WAN
                && ip.dst_addr() == B_WAN
                && ip.next_header() == IpProtocol::Udp
                && UdpPacket::new_checked(ip.payload()).is_ok_and(|u| u.dst_port() == OVERLAY_PORT)
            {
                w.overlay_unicast += 1;
            } else {
                w.other += 1;
            }
        }
        w
    })
}

/// The two data planes and the topology; dropped data planes before the namespaces.
struct Harness {
    a: Option<Dataplane>,
    b: Option<Dataplane>,
    topo: Topology,
}

impl Harness {
    fn new(keys_a: &[OverlayKey], keys_b: &[OverlayKey]) -> Harness {
        let topo = Topology::new();
        let overlay = |keys: &[OverlayKey]| OverlayConfig {
            origin: Some(A_WAN),
            keys: keys.to_vec(),
            send_key: keys.first().map(|k| k.id),
            ..OverlayConfig::default()
        };
        // Each Dataplane runs in the namespace of the thread that starts it (its workers
        // inherit it).
        let a = topo
            .run_in(1, || {
                Dataplane::start(DataplaneConfig {
                    interfaces: vec![topo.a_lan.clone(), topo.a_wan.clone()],
                    overlay_port: OVERLAY_PORT,
                    overlay: overlay(keys_a),
                    ..DataplaneConfig::default()
                })
            })
            .expect("Dataplane::start in A");
        let b = topo
            .run_in(3, || {
                Dataplane::start(DataplaneConfig {
                    interfaces: vec![topo.b_wan.clone(), topo.b_lan.clone()],
                    overlay_port: OVERLAY_PORT,
                    overlay: overlay(keys_b),
                    ..DataplaneConfig::default()
                })
            })
            .expect("Dataplane::start in B");

        let a_lan = topo.ifindex(1, &topo.a_lan);
        let a_wan = topo.ifindex(1, &topo.a_wan);
        a.mfib()
            .apply(
                &[
                    // The overlay next hop is B; the frame goes to M, the unicast router.
                    MfibUpdate::SetNeighbor(Neighbor { addr: B_WAN, ifindex: a_wan, mac: MAC_MA }),
                    MfibUpdate::Install(MfibRoute {
                        source: Some(S_ADDR),
                        group: GROUP,
                        iif: a_lan,
                        oifs: vec![],
                        overlay_next_hops: vec![B_WAN],
                    }),
                ],
                a.interface_table(),
            )
            .expect("routes in A");
        let b_lan = topo.ifindex(3, &topo.b_lan);
        b.mfib()
            .apply(
                &[MfibUpdate::InstallOverlay(OverlayRoute {
                    origin: A_WAN,
                    group: GROUP,
                    from: Some(A_WAN),
                    deliver: vec![Oif { ifindex: b_lan, ttl_threshold: 1 }],
                    next_hops: vec![],
                })],
                b.interface_table(),
            )
            .expect("routes in B");
        Harness { a: Some(a), b: Some(b), topo }
    }

    fn a(&self) -> &Dataplane {
        self.a.as_ref().expect("A running")
    }

    fn b(&self) -> &Dataplane {
        self.b.as_ref().expect("B running")
    }

    /// Node 1 = A, 3 = B: new keys, signing with `send`.
    fn rotate(&mut self, node: usize, keys: &[OverlayKey], send: u8) {
        let dp = if node == 1 { &mut self.a } else { &mut self.b };
        dp.as_mut().expect("running").set_overlay_keys(keys, Some(send)).expect("set keys");
    }

    /// Sends a paced burst from S while R and the sniffer in M listen.
    fn burst(&self, first: u32, count: u32, idle: Duration) -> (Received, Wire) {
        let stop = Arc::new(AtomicBool::new(false));
        let sniffer = sniff(&self.topo.ns[2], Arc::clone(&stop));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let rx = receive(&self.topo.ns[4], first, count, idle, ready_tx);
        ready_rx.recv_timeout(Duration::from_secs(5)).expect("receiver ready");
        // The sniffer's socket exists once its thread has run for a moment.
        std::thread::sleep(Duration::from_millis(100));
        send(&self.topo.ns[0], first, count).join().expect("sender");
        let got = rx.join().expect("receiver");
        std::thread::sleep(Duration::from_millis(100));
        stop.store(true, Ordering::Relaxed);
        (got, sniffer.join().expect("sniffer"))
    }

    /// Stops each data plane inside its own namespace (detaching XDP uses netlink there).
    fn stop(mut self) {
        let (a, b) = (self.a.take().expect("A"), self.b.take().expect("B"));
        self.topo.run_in(1, || a.stop()).expect("stop A");
        self.topo.run_in(3, || b.stop()).expect("stop B");
    }
}

/// Polls `stats` until `done` holds or two seconds pass; returns the last snapshot.
fn settle(dp: &Dataplane, done: impl Fn(&StatsSnapshot) -> bool) -> StatsSnapshot {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let s = dp.stats();
        if done(&s) || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn port<'a>(s: &'a StatsSnapshot, name: &str) -> &'a dataplane::stats::PortStatsSnapshot {
    s.port(name).unwrap_or_else(|| panic!("no stats for {name}: {s:?}"))
}

fn drops(s: &StatsSnapshot, name: &str) -> u64 {
    port(s, name).drops.values().sum()
}

fn io<'a>(io: &'a [PortIoStats], name: &str) -> &'a PortIoStats {
    io.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("no io stats for {name}"))
}

/// Asserts a burst crossed A → M → B → R intact, once each, and that the counters agree.
fn assert_delivered(h: &Harness, first: u32, got: &Received, wire: Wire) {
    let t = &h.topo;
    let n = u64::from(BURST);
    let sa = settle(h.a(), |s| port(s, &t.a_wan).tx_packets >= n);
    let sb = settle(h.b(), |s| port(s, &t.b_lan).tx_packets >= n);
    assert!(got.bad.is_empty(), "corrupt copies: {:?}", &got.bad[..got.bad.len().min(10)]);
    let missing = got.missing();
    assert!(
        missing.is_empty(),
        "{} of burst {first} missing, e.g. {:?}\nA {sa:?}\nB {sb:?}\nwire {wire:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(got.duplicated().is_empty(), "duplicates: {:?}", got.duplicated());
    // A decrements the inner TTL when it encapsulates (it routes the datagram out of its
    // overlay "interface"), B again when it delivers on its LAN: two multicast router hops.
    let want_ttl = SENDER_TTL - 2;
    assert!(got.ttls.iter().all(|t| *t == want_ttl), "inner TTL must arrive as {want_ttl}");

    // A: one encapsulated copy per datagram out of a_wan, nothing dropped.
    assert_eq!(port(&sa, &t.a_lan).rx_packets, n, "{sa:?}");
    assert_eq!(port(&sa, &t.a_wan).tx_packets, n, "{sa:?}");
    assert_eq!(drops(&sa, &t.a_lan) + drops(&sa, &t.a_wan), 0, "{sa:?}");
    // B: one overlay packet in on b_wan, one decapsulated delivery out of b_lan per datagram.
    assert_eq!(port(&sb, &t.b_wan).rx_packets, n, "{sb:?}");
    assert_eq!(port(&sb, &t.b_lan).tx_packets, n, "{sb:?}");
    assert_eq!(drops(&sb, &t.b_wan) + drops(&sb, &t.b_lan), 0, "{sb:?}");
    // XDP on b_wan steered them as overlay (unicast UDP to the port), none as multicast.
    let iob = h.b().io_stats();
    assert_eq!(io(&iob, &t.b_wan).xdp.redirect_overlay, n, "{iob:?}");
    assert_eq!(io(&iob, &t.b_wan).xdp.redirect_mcast, 0, "{iob:?}");
    // And on the wire between the overlay nodes: only unicast UDP to the overlay port.
    assert_eq!(wire.overlay_unicast, n, "{wire:?}");
    assert_eq!(wire.group_multicast, 0, "{wire:?}");
}

/// An overlay packet from A's kernel (not A's data plane) to B's overlay port.
fn inject(ns: &str, packets: Vec<Vec<u8>>) {
    thread_in(ns, move || {
        let s = std::net::UdpSocket::bind((A_WAN, 0)).expect("bind");
        for p in packets {
            s.send_to(&p, (B_WAN, OVERLAY_PORT)).expect("send forged");
        }
    })
    .join()
    .expect("injector");
}

/// A well-formed overlay data packet from origin A for the group carrying S's datagram `seq`,
/// with a tag of 0x5a bytes (wrong under any key) when `auth`.
fn forged(seq: u32, auth: bool) -> Vec<u8> {
    let body = payload(seq);
    let udp_len = 8 + body.len();
    let ip = Ipv4Repr {
        src_addr: S_ADDR,
        dst_addr: GROUP,
        protocol: IpProtocol::Udp,
        ttl: SENDER_TTL,
        dscp_ecn: 0,
        ident: 0,
        dont_frag: false,
        options: Ipv4Options::EMPTY,
        payload_len: udp_len,
    };
    let hdr = OverlayRepr {
        msg_type: MessageType::Data,
        auth,
        reserved_flags: 0,
        hop_count: 16,
        key_id: 1,
        group: GROUP,
        origin: A_WAN,
        sequence: seq,
    };
    let mut buf = vec![0u8; hdr.buffer_len() + ip.buffer_len() + udp_len];
    let mut o = OverlayPacket::new_unchecked(&mut buf[..]);
    hdr.emit(&mut o);
    if let Some(tag) = o.auth_tag_mut() {
        *tag = [0x5a; AUTH_TAG_LEN];
    }
    let inner = &mut buf[hdr.buffer_len()..];
    let mut ipp = Ipv4Packet::new_unchecked(&mut inner[..]);
    ip.emit(&mut ipp);
    let mut udp = UdpPacket::new_unchecked(ipp.payload_mut());
    UdpRepr { src_port: 40000, dst_port: PORT, payload_len: body.len() }.emit(&mut udp);
    udp.payload_mut().copy_from_slice(&body);
    udp.fill_checksum(S_ADDR, GROUP);
    buf
}

#[test]
fn overlay_crosses_a_unicast_router_and_rejects_malformed_headers() {
    if !privileged() {
        return;
    }
    let h = Harness::new(&[], &[]);
    let t = &h.topo;
    h.a().clear_stats();
    h.b().clear_stats();
    let (got, wire) = h.burst(0, BURST, Duration::from_secs(3));
    assert_delivered(&h, 0, &got, wire);
    eprintln!("wire between A and B: {wire:?}");

    // Malformed overlay packets from A's kernel: cut inside the fixed header, version 2, a
    // message type other than Data. Each is dropped and counted on b_wan; B keeps forwarding.
    h.b().clear_stats();
    let mut v2 = forged(5000, false);
    v2[0] = 0x20;
    let mut ctl = forged(5001, false);
    ctl[0] = 0x11;
    let short = forged(5002, false)[..HEADER_LEN - 4].to_vec();
    inject(&t.ns[1], vec![v2, ctl, short]);
    let sb = settle(h.b(), |s| drops(s, &t.b_wan) >= 3);
    let wan = port(&sb, &t.b_wan);
    assert_eq!(wan.drop_count(DropReason::BadOverlay), 2, "{wan:?}");
    assert_eq!(wan.drop_count(DropReason::Truncated), 1, "{wan:?}");
    assert_eq!(port(&sb, &t.b_lan).tx_packets, 0, "malformed packets must not be delivered");

    // Without keys, B takes any well-formed packet, even one an outsider built: that is what
    // the keys are for (next test).
    h.a().clear_stats();
    h.b().clear_stats();
    let (got, wire) = h.burst(BURST, BURST, Duration::from_secs(3));
    assert_delivered(&h, BURST, &got, wire);
    h.stop();
}

fn key(id: u8, secret: &[u8]) -> OverlayKey {
    OverlayKey { id, secret: secret.to_vec() }
}

#[test]
fn authenticated_overlay_delivers_and_rejects_forged_tags() {
    if !privileged() {
        return;
    }
    let k = [key(1, b"fanout-h13-shared-secret")];
    let h = Harness::new(&k, &k);
    let t = &h.topo;
    h.a().clear_stats();
    h.b().clear_stats();
    let (got, wire) = h.burst(0, BURST, Duration::from_secs(3));
    assert_delivered(&h, 0, &got, wire);

    // Forged: a wrong tag under the right key id, and no tag at all. Both `auth_fail`.
    h.b().clear_stats();
    inject(&t.ns[1], vec![forged(7000, true), forged(7001, false)]);
    let sb = settle(h.b(), |s| drops(s, &t.b_wan) >= 2);
    let wan = port(&sb, &t.b_wan);
    assert_eq!(wan.drop_count(DropReason::AuthFail), 2, "{wan:?}");
    assert_eq!(drops(&sb, &t.b_wan), 2, "{wan:?}");
    assert_eq!(port(&sb, &t.b_lan).tx_packets, 0, "forged packets must not be delivered");

    // B still forwards legitimate traffic afterwards.
    h.a().clear_stats();
    h.b().clear_stats();
    let (got, wire) = h.burst(BURST, BURST, Duration::from_secs(3));
    assert_delivered(&h, BURST, &got, wire);
    h.stop();
}

#[test]
fn overlay_with_mismatched_secret_delivers_nothing() {
    if !privileged() {
        return;
    }
    let h = Harness::new(&[key(1, b"fanout-h13-secret-A")], &[key(1, b"fanout-h13-secret-B")]);
    let t = &h.topo;
    h.a().clear_stats();
    h.b().clear_stats();
    let (got, wire) = h.burst(0, BURST, Duration::from_millis(1500));
    let n = u64::from(BURST);
    let sb = settle(h.b(), |s| port(s, &t.b_wan).drop_count(DropReason::AuthFail) >= n);
    let sa = h.a().stats();
    assert_eq!(got.total(), 0, "nothing may reach R: {got:?}");
    // A still sent every datagram (it cannot know B's key), over unicast only...
    assert_eq!(port(&sa, &t.a_wan).tx_packets, n, "{sa:?}");
    assert_eq!(wire.overlay_unicast, n, "{wire:?}");
    // ...and B refused each one as auth_fail, delivering none.
    let wan = port(&sb, &t.b_wan);
    assert_eq!(wan.rx_packets, n, "{wan:?}");
    assert_eq!(wan.drop_count(DropReason::AuthFail), n, "{wan:?}");
    assert_eq!(drops(&sb, &t.b_wan), n, "only auth_fail: {wan:?}");
    assert_eq!(port(&sb, &t.b_lan).tx_packets, 0, "{sb:?}");
    h.stop();
}

/// Keys rotate without a restart: B accepts old and new while A changes over, then drops the
/// old one; from then on the retired key is refused (`auth_fail`).
#[test]
fn overlay_keys_rotate_without_a_restart() {
    if !privileged() {
        return;
    }
    let (k1, k2) = (key(1, b"fanout-rotation-old"), key(2, b"fanout-rotation-new"));
    let old = std::slice::from_ref(&k1);
    let mut h = Harness::new(old, old);
    let n = u64::from(BURST);
    let mut first = 0;
    let mut burst_delivered = |h: &Harness| {
        h.a().clear_stats();
        h.b().clear_stats();
        let (got, wire) = h.burst(first, BURST, Duration::from_secs(3));
        assert_delivered(h, first, &got, wire);
        first += BURST;
    };
    burst_delivered(&h);
    h.rotate(3, &[k1.clone(), k2.clone()], 1);
    h.rotate(1, std::slice::from_ref(&k2), 2);
    burst_delivered(&h);
    h.rotate(3, std::slice::from_ref(&k2), 2);
    burst_delivered(&h);
    // A signs with the retired key again: B refuses every packet.
    h.rotate(1, &[k1], 1);
    h.a().clear_stats();
    h.b().clear_stats();
    let (got, _) = h.burst(first, BURST, Duration::from_millis(1500));
    assert_eq!(got.total(), 0, "the retired key was accepted: {got:?}");
    let t = &h.topo;
    let sb = settle(h.b(), |s| port(s, &t.b_wan).drop_count(DropReason::AuthFail) >= n);
    assert_eq!(port(&sb, &t.b_wan).drop_count(DropReason::AuthFail), n, "{sb:?}");
    h.stop();
}
