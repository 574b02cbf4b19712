//! Static overlay routes through two real fanoutd daemons, with only a unicast kernel router
//! between them (root; prints "skipped: needs root" otherwise).
//!
//! ```text
//!  ns S            ns A (fanoutd)                ns M (kernel,      ns B (fanoutd)               ns R
//!  sender ─ veth ─ a_lan   a_wan ─ veth ─ ma  mb ─ unicast only) ─ veth ─ b_wan   b_lan ─ veth ─ receiver
//!  10.95.0.2       .95.0.1 .96.0.1        .96.0.2  .97.0.2               .97.0.1  .98.0.1        .98.0.2
//!  A: [[static_route]] (S,G) iif a_lan, oifs = [], overlay_next_hops = [B]; [[neighbor]] B at M's MAC
//!  B: [[static_overlay_route]] origin A, G, from A, deliver = [b_lan]
//! ```
//!
//! Input: configs written to temp files, daemons started with `ip netns exec`, a bounded burst
//! from S. Output: with equal keys every datagram reaches R exactly once, byte-identical, and
//! `show overlay` / `show mroute` list the configured entries; with different keys nothing
//! reaches R and B's `show counters --json` counts every datagram as `auth_fail`.
//! The network is a common::TestNet (run-unique names, parallel runs); the daemons are killed
//! by PID and the namespaces deleted on success and failure.
#![cfg(feature = "daemon")]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use controlplane::ctl::{CountersData, MrouteData, OverlayData};
use socket2::{Domain, Protocol, Socket, Type};

const S_ADDR: Ipv4Addr = Ipv4Addr::new(10, 95, 0, 2);
const A_LAN: Ipv4Addr = Ipv4Addr::new(10, 95, 0, 1);
const A_WAN: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 1);
const M_A: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 2);
const M_B: Ipv4Addr = Ipv4Addr::new(10, 97, 0, 2);
const B_WAN: Ipv4Addr = Ipv4Addr::new(10, 97, 0, 1);
const B_LAN: Ipv4Addr = Ipv4Addr::new(10, 98, 0, 1);
const R_ADDR: Ipv4Addr = Ipv4Addr::new(10, 98, 0, 2);
const MAC_MA: &str = "02:16:00:00:96:02";
const MAC_BW: &str = "02:16:00:00:97:01";
const GROUP: Ipv4Addr = Ipv4Addr::new(239, 16, 9, 9);
const PORT: u16 = 7998;
const BURST: u32 = 300;
const PAYLOAD: usize = 120;
const KEY_1: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const KEY_2: &str = "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

mod common;
use common::{
    fanoutctl, privileged, start_fanoutd, thread_in, wait_for, wait_up, End, Spawned, TestNet,
};

/// Five namespaces with their veths and the two daemons; the daemons are killed by PID, then the
/// namespaces deleted, on drop.
struct Topology {
    daemons: Vec<Spawned>,
    net: TestNet,
    /// S, A, M, B, R.
    ns: [String; 5],
    devs: Devs,
    dir: tempfile::TempDir,
}

struct Devs {
    a_lan: String,
    a_wan: String,
    b_wan: String,
    b_lan: String,
}

impl Topology {
    fn new() -> Topology {
        let mut net = TestNet::new("so");
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
        net.ip(nm, &["link", "set", "dev", &ma, "address", MAC_MA]).expect("mac");
        net.ip(nb, &["link", "set", "dev", &b_wan, "address", MAC_BW]).expect("mac");
        // M: a plain unicast IPv4 router, nothing multicast; a permanent neighbour for B so
        // its first forwarded packets do not wait in an ARP queue.
        net.sysctl(nm, "net.ipv4.ip_forward", "1").expect("forwarding");
        net.ip(nm, &["neigh", "replace", &B_WAN.to_string(), "lladdr", MAC_BW, "dev", &mb])
            .expect("neighbour");
        Topology {
            daemons: Vec::new(),
            net,
            ns,
            devs: Devs { a_lan, a_wan, b_wan, b_lan },
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// Writes both configs and starts both daemons (keys: A's and B's overlay secret).
    fn start(&mut self, key_a: &str, key_b: &str) {
        let d = &self.devs;
        let config_a = format!(
            "[daemon]\ncontrol_socket = \"{}\"\n\
             [overlay]\norigin = \"{A_WAN}\"\nkeys = [{{ id = 1, secret = \"{key_a}\" }}]\n\
             [[interface]]\nname = \"{}\"\n[[interface]]\nname = \"{}\"\n\
             [[neighbor]]\naddr = \"{B_WAN}\"\ninterface = \"{}\"\nmac = \"{MAC_MA}\"\n\
             [[static_route]]\nsource = \"{S_ADDR}\"\ngroup = \"{GROUP}\"\niif = \"{}\"\n\
             oifs = []\noverlay_next_hops = [\"{B_WAN}\"]\n",
            self.socket(0).display(),
            d.a_lan,
            d.a_wan,
            d.a_wan,
            d.a_lan,
        );
        let config_b = format!(
            "[daemon]\ncontrol_socket = \"{}\"\n\
             [overlay]\nkeys = [{{ id = 1, secret = \"{key_b}\" }}]\n\
             [[interface]]\nname = \"{}\"\n[[interface]]\nname = \"{}\"\n\
             [[static_overlay_route]]\norigin = \"{A_WAN}\"\ngroup = \"{GROUP}\"\n\
             from = \"{A_WAN}\"\ndeliver = [\"{}\"]\n",
            self.socket(1).display(),
            d.b_wan,
            d.b_lan,
            d.b_lan,
        );
        for (i, (ns, config)) in
            [(&self.ns[1], config_a), (&self.ns[3], config_b)].into_iter().enumerate()
        {
            let path = self.dir.path().join(format!("fanoutd-{i}.toml"));
            std::fs::write(&path, config).expect("write config");
            let daemon = start_fanoutd(&self.net, ns, &path);
            self.daemons.push(daemon);
        }
        for i in 0..2 {
            assert!(wait_up(&self.socket(i)), "fanoutd {i} did not come up");
        }
    }

    /// 0 = A, 1 = B.
    fn socket(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("fanoutd-{i}.sock"))
    }

    /// Sends the burst from S while R listens; returns how often each datagram arrived.
    fn burst(&self) -> Vec<u32> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let receiver = thread_in(&self.ns[4], move || {
            let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
            s.set_reuse_address(true).expect("SO_REUSEADDR");
            s.bind(&SocketAddrV4::new(GROUP, PORT).into()).expect("bind");
            s.join_multicast_v4(&GROUP, &R_ADDR).expect("join");
            s.set_recv_buffer_size(8 << 20).expect("SO_RCVBUF");
            s.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
            let socket: std::net::UdpSocket = s.into();
            let _ = ready_tx.send(());
            let mut seen = vec![0u32; BURST as usize];
            let mut buf = [0u8; 2048];
            let mut last = Instant::now();
            // Bounded: ends 1.5 s after the last datagram.
            while last.elapsed() < Duration::from_millis(1500) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else { continue };
                last = Instant::now();
                assert_eq!(from.ip(), S_ADDR, "datagram from {from}");
                let data = &buf[..n];
                let seq = u32::from_be_bytes(data[..4].try_into().expect("4 bytes"));
                assert_eq!(data, payload(seq).as_slice(), "datagram {seq} is not byte-identical");
                seen[seq as usize] += 1;
            }
            seen
        });
        ready_rx.recv_timeout(Duration::from_secs(5)).expect("receiver ready");
        thread_in(&self.ns[0], move || {
            let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
            s.bind(&SocketAddrV4::new(S_ADDR, 0).into()).expect("bind");
            s.set_multicast_if_v4(&S_ADDR).expect("IP_MULTICAST_IF");
            s.set_multicast_ttl_v4(8).expect("ttl");
            let dst = SocketAddrV4::new(GROUP, PORT).into();
            for seq in 0..BURST {
                s.send_to(&payload(seq), &dst).expect("send");
                if seq % 20 == 19 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        })
        .join()
        .expect("sender");
        receiver.join().expect("receiver")
    }

    fn counters(&self, i: usize) -> CountersData {
        let (code, out, err) = fanoutctl(&self.socket(i), &["show", "counters", "--json"]);
        assert_eq!(code, 0, "show counters: {err}");
        serde_json::from_str(&out).expect("counters json")
    }
}

fn payload(seq: u32) -> Vec<u8> {
    let mut p = seq.to_be_bytes().to_vec();
    p.extend((4..PAYLOAD).map(|i| (i as u32).wrapping_mul(29).wrapping_add(seq) as u8));
    p
}

fn drops(c: &CountersData, name: &str, reason: &str) -> u64 {
    let i = c.interfaces.iter().find(|i| i.name == name).expect("interface in counters");
    i.drops.get(reason).copied().unwrap_or(0)
}

#[test]
fn static_overlay_between_two_daemons_delivers_exactly_once() {
    if !privileged() {
        return;
    }
    let mut t = Topology::new();
    t.start(KEY_1, KEY_1);
    let (_, out, _) = fanoutctl(&t.socket(0), &["show", "mroute", "--json"]);
    let mroute: MrouteData = serde_json::from_str(&out).expect("mroute json");
    assert!(
        mroute.routes.iter().any(|r| r.group == GROUP && r.overlay_next_hops == [B_WAN]),
        "{out}"
    );
    let (_, out, _) = fanoutctl(&t.socket(1), &["show", "overlay", "--json"]);
    let overlay: OverlayData = serde_json::from_str(&out).expect("overlay json");
    assert!(
        overlay.routes.iter().any(|r| r.origin == A_WAN
            && r.group == GROUP
            && r.from == Some(A_WAN)
            && r.deliver.iter().any(|o| o.name == t.devs.b_lan)),
        "{out}"
    );
    let (_, out, _) = fanoutctl(&t.socket(0), &["show", "overlay", "--json"]);
    let overlay: OverlayData = serde_json::from_str(&out).expect("overlay json");
    assert!(overlay.neighbors.iter().any(|n| n.addr == B_WAN && n.mac == MAC_MA), "{out}");

    let seen = t.burst();
    let missing: Vec<usize> = (0..seen.len()).filter(|&i| seen[i] == 0).collect();
    let duplicated: Vec<usize> = (0..seen.len()).filter(|&i| seen[i] > 1).collect();
    if !missing.is_empty() {
        for i in 0..2 {
            eprintln!("{}", fanoutctl(&t.socket(i), &["show", "counters"]).1);
        }
    }
    assert!(missing.is_empty(), "missing {} of {BURST}: {missing:?}", missing.len());
    assert!(duplicated.is_empty(), "duplicated: {duplicated:?}");
    let b = t.counters(1);
    assert_eq!(drops(&b, &t.devs.b_wan, "auth_fail"), 0);
    eprintln!("overlay: {BURST} of {BURST} datagrams crossed A → M → B exactly once");
}

#[test]
fn static_overlay_with_mismatched_keys_delivers_nothing() {
    if !privileged() {
        return;
    }
    let mut t = Topology::new();
    t.start(KEY_1, KEY_2);
    let seen = t.burst();
    assert_eq!(seen.iter().sum::<u32>(), 0, "nothing may reach R");
    let n = u64::from(BURST);
    let mut last = 0;
    let all_refused = wait_for(Duration::from_secs(3), || {
        last = drops(&t.counters(1), &t.devs.b_wan, "auth_fail");
        last >= n
    });
    assert!(all_refused, "B counted {last} auth_fail of {n}");
    let b = t.counters(1);
    let lan = b.interfaces.iter().find(|i| i.name == t.devs.b_lan).expect("b_lan");
    assert_eq!(lan.tx_packets, 0, "{lan:?}");
}
