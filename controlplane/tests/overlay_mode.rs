//! Routing mode `overlay`: four fanoutd run the overlay protocol across a unicast-only kernel
//! router, plus a fifth with the wrong group key (root; prints "skipped: needs root" otherwise).
//!
//! ```text
//!              ns M: kernel router, unicast only (ip_forward=1, nothing multicast)
//!        ┌────────────┬─────────────┬─────────────┬─────────────┐
//!   10.100.0.0/24  10.100.1.0/24  10.100.2.0/24  10.100.3.0/24  10.100.4.0/24
//!   ns A (rendezvous)  ns B           ns C           ns D           ns E (wrong key)
//!   each node: wan (→ M) and a veth pair lan0 (fanoutd) ─ lan1 (local apps), 172.30.i.1/.2
//!   static overlay links A-B (1), A-C (1), B-D (1), C-D (5):  A ── B
//!                                                            │    │
//!                                                            C ── D
//! ```
//!
//! Input: generated configs (`mode = "overlay"`, 200 ms heartbeats), daemons started with
//! `ip netns exec`, a bounded burst from an app on A's lan1 to G. Output: every datagram reaches
//! the apps on B, C and D exactly once (D through B: its tree parent for origin A);
//! `show overlay --json` lists A's up neighbours B and C, the members A-D and A's tree; the
//! rendezvous refused E's joins (`joins_refused`, `bad_tag`) and E never joined.
//! Names carry the pid and a counter; a guard kills the daemons by PID and deletes the
//! namespaces on success and failure.
#![cfg(feature = "daemon")]

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use controlplane::ctl::{OverlayData, OverlayProtocolData};
use socket2::{Domain, Protocol, Socket, Type};

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 19, 0, 1);
const PORT: u16 = 7919;
const BURST: u32 = 200;
const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const WRONG_KEY: &str = "ff112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
/// A, B, C, D are members; E has the wrong key.
const NODES: usize = 5;
const LINKS: [(usize, usize, u32); 4] = [(0, 1, 1), (0, 2, 1), (1, 3, 1), (2, 3, 5)];

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn wan(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 100, i as u8, 1)
}

fn router(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 100, i as u8, 2)
}

fn app(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(172, 30, i as u8, 2)
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().expect("spawn");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn exec(ns: &str, args: &[&str]) {
    let mut full = vec!["ip", "netns", "exec", ns];
    full.extend_from_slice(args);
    sh(&full);
}

/// The router namespace, five node namespaces and their daemons; torn down on drop.
struct Lab {
    /// M, then the nodes.
    ns: Vec<String>,
    id: String,
    dir: tempfile::TempDir,
    daemons: Vec<Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.daemons {
            if c.try_wait().ok().flatten().is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        for ns in &self.ns {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

impl Lab {
    fn new() -> Lab {
        let id =
            format!("{}{}", std::process::id() % 100_000, COUNTER.fetch_add(1, Ordering::Relaxed));
        let mut lab = Lab {
            ns: Vec::new(),
            id: id.clone(),
            dir: tempfile::tempdir().expect("tempdir"),
            daemons: Vec::new(),
        };
        // Each namespace is recorded before anything else can fail, so the guard removes it.
        for n in std::iter::once("m".to_owned()).chain((0..NODES).map(|i| i.to_string())) {
            let ns = format!("h19o-{id}-{n}");
            sh(&["ip", "netns", "add", &ns]);
            lab.ns.push(ns.clone());
            sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
            for key in ["all", "default"] {
                exec(&ns, &["sysctl", "-qw", &format!("net.ipv6.conf.{key}.disable_ipv6=1")]);
                // Decapsulated datagrams come from other nodes' app subnets, which the
                // reverse path would send out of wan.
                exec(&ns, &["sysctl", "-qw", &format!("net.ipv4.conf.{key}.rp_filter=0")]);
            }
        }
        let m = lab.ns[0].clone();
        exec(&m, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        for i in 0..NODES {
            let ns = lab.ns[i + 1].clone();
            let (w, r, l0, l1) =
                (lab.dev(i, 'w'), lab.dev(i, 'r'), lab.dev(i, 'a'), lab.dev(i, 'b'));
            sh(&[
                "ip", "link", "add", &w, "netns", &ns, "type", "veth", "peer", "name", &r, "netns",
                &m,
            ]);
            sh(&["ip", "-n", &ns, "link", "add", &l0, "type", "veth", "peer", "name", &l1]);
            for (n, dev, addr) in [
                (&ns, &w, format!("{}/24", wan(i))),
                (&m, &r, format!("{}/24", router(i))),
                (&ns, &l0, format!("172.30.{i}.1/32")),
                (&ns, &l1, format!("{}/32", app(i))),
            ] {
                sh(&["ip", "-n", n, "addr", "add", &addr, "dev", dev]);
                // CHECKSUM_PARTIAL packets are wrong once XDP redirects them to user space.
                exec(n, &["ethtool", "-K", dev, "tx", "off", "rx", "off"]);
                sh(&["ip", "-n", n, "link", "set", dev, "up"]);
            }
            sh(&["ip", "-n", &ns, "route", "add", "default", "via", &router(i).to_string()]);
        }
        lab
    }

    /// Interface names: `o<id><node><role>` (at most 15 bytes).
    fn dev(&self, i: usize, role: char) -> String {
        format!("o{}{i}{role}", self.id)
    }

    fn socket(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("fanoutd-{i}.sock"))
    }

    fn config(&self, i: usize, key: &str) -> String {
        let mut c = format!(
            "[daemon]\ncontrol_socket = \"{}\"\n[routing]\nmode = \"overlay\"\n\
             [[interface]]\nname = \"{}\"\n[[interface]]\nname = \"{}\"\n\
             [overlay]\naddress = \"{}\"\nrendezvous = \"{}\"\nlocal_interface = \"{}\"\n\
             groups = [\"{GROUP}\"]\nkeys = [{{ id = 1, secret = \"{key}\" }}]\n\
             heartbeat_interval = \"200ms\"\njoin_retry = \"300ms\"\nlsa_refresh = \"2s\"\n",
            self.socket(i).display(),
            self.dev(i, 'w'),
            self.dev(i, 'a'),
            wan(i),
            wan(0),
            self.dev(i, 'a'),
        );
        for (a, b, cost) in LINKS {
            let _ = write!(
                c,
                "[[overlay.link]]\na = \"{}\"\nb = \"{}\"\ncost = {cost}\n",
                wan(a),
                wan(b)
            );
        }
        c
    }

    fn start(&mut self) {
        for i in 0..NODES {
            let key = if i == 4 { WRONG_KEY } else { KEY };
            let path = self.dir.path().join(format!("fanoutd-{i}.toml"));
            std::fs::write(&path, self.config(i, key)).expect("write config");
            // `ip netns exec` execs fanoutd after setns, so the child PID is the daemon's.
            let child = Command::new("ip")
                .args(["netns", "exec", &self.ns[i + 1], env!("CARGO_BIN_EXE_fanoutd")])
                .args(["--foreground", "--config"])
                .arg(&path)
                .stdin(Stdio::null())
                .spawn()
                .expect("spawn fanoutd");
            self.daemons.push(child);
        }
    }

    fn overlay(&self, i: usize) -> Option<OverlayProtocolData> {
        let (ok, out, _) = fanoutctl(&self.socket(i), &["show", "overlay", "--json"]);
        if !ok {
            return None;
        }
        serde_json::from_str::<OverlayData>(&out).ok()?.protocol
    }

    /// Sends the burst from A's app while B's, C's and D's apps listen; returns per receiver
    /// how often each datagram arrived.
    fn burst(&self) -> Vec<Vec<u32>> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let receivers: Vec<_> = (1..4)
            .map(|i| {
                let (ns, dev, ready) = (self.ns[i + 1].clone(), self.dev(i, 'b'), ready_tx.clone());
                std::thread::spawn(move || receive(&ns, &dev, app(i), &ready))
            })
            .collect();
        for _ in 0..3 {
            ready_rx.recv_timeout(Duration::from_secs(5)).expect("receiver ready");
        }
        let ns = self.ns[1].clone();
        std::thread::spawn(move || {
            enter(&ns);
            let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
            s.bind(&SocketAddrV4::new(app(0), 0).into()).expect("bind");
            s.set_multicast_if_v4(&app(0)).expect("IP_MULTICAST_IF");
            s.set_multicast_ttl_v4(8).expect("ttl");
            s.set_multicast_loop_v4(false).expect("loop");
            let dst = SocketAddrV4::new(GROUP, PORT).into();
            for seq in 0..BURST {
                s.send_to(&payload(seq), &dst).expect("send");
                std::thread::sleep(Duration::from_millis(1));
            }
        })
        .join()
        .expect("sender");
        receivers.into_iter().map(|r| r.join().expect("receiver")).collect()
    }
}

fn receive(ns: &str, dev: &str, addr: Ipv4Addr, ready: &std::sync::mpsc::Sender<()>) -> Vec<u32> {
    enter(ns);
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
    s.set_reuse_address(true).expect("SO_REUSEADDR");
    s.bind_device(Some(dev.as_bytes())).expect("SO_BINDTODEVICE");
    s.bind(&SocketAddrV4::new(GROUP, PORT).into()).expect("bind");
    s.join_multicast_v4(&GROUP, &addr).expect("join");
    s.set_recv_buffer_size(4 << 20).expect("SO_RCVBUF");
    s.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
    let socket: std::net::UdpSocket = s.into();
    let _ = ready.send(());
    let mut seen = vec![0u32; BURST as usize];
    let mut buf = [0u8; 2048];
    let start = Instant::now();
    let mut last = Instant::now();
    // Bounded: ends 1.5 s after the last datagram, and after 20 s in any case.
    while last.elapsed() < Duration::from_millis(1500) && start.elapsed() < Duration::from_secs(20)
    {
        let Ok((n, _)) = socket.recv_from(&mut buf) else { continue };
        last = Instant::now();
        let data = &buf[..n];
        let Some(seq) = data.get(..4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])) else {
            continue;
        };
        if data == payload(seq).as_slice() && seq < BURST {
            seen[seq as usize] += 1;
        }
    }
    seen
}

fn enter(ns: &str) {
    let f = std::fs::File::open(format!("/run/netns/{ns}")).expect("open netns");
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
}

fn payload(seq: u32) -> Vec<u8> {
    let mut p = seq.to_be_bytes().to_vec();
    p.extend((4..64u32).map(|i| i.wrapping_mul(31).wrapping_add(seq) as u8));
    p
}

fn fanoutctl(socket: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fanoutctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("run fanoutctl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Polls `cond` every 100 ms until it holds or `limit` passes.
fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn is_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("skipped: needs root (netns, XDP, AF_XDP)");
    false
}

/// Every member joined, sees the four members and has a tree for every origin, and no next
/// hop is waiting for its link-layer address.
fn converged(p: &OverlayProtocolData) -> bool {
    let members: Vec<Ipv4Addr> = (0..4).map(wan).collect();
    p.unresolved.is_empty()
        && p.groups.iter().all(|g| g.joined && g.members == members && g.trees.len() == 4)
}

#[test]
fn overlay_mode_delivers_exactly_once_and_refuses_the_wrong_key() {
    if !is_root() {
        return;
    }
    let mut lab = Lab::new();
    let started = Instant::now();
    lab.start();
    let mut last = Vec::new();
    let ok = wait_for(Duration::from_secs(30), || {
        last = (0..4).map(|i| lab.overlay(i)).collect();
        last.iter().all(|p| p.as_ref().is_some_and(converged))
    });
    assert!(ok, "overlay did not converge: {last:#?}");
    eprintln!(
        "overlay: 4 nodes joined with trees for every origin {:?} after start",
        started.elapsed()
    );

    let node_a = lab.overlay(0).expect("A");
    let group_a = &node_a.groups[0];
    let up: Vec<Ipv4Addr> = group_a.neighbors.iter().filter(|n| n.up).map(|n| n.addr).collect();
    assert_eq!(up, [wan(1), wan(2)], "A's overlay neighbours: {group_a:#?}");
    let own = group_a.trees.iter().find(|t| t.origin == wan(0)).expect("A's own tree");
    assert_eq!((own.parent, own.children.as_slice()), (None, &[wan(1), wan(2)][..]));
    // D hangs below B on A's tree (cost 2 via B against 6 via C).
    let node_d = lab.overlay(3).expect("D");
    let d_tree =
        node_d.groups[0].trees.iter().find(|t| t.origin == wan(0)).expect("D's tree for A");
    assert_eq!(d_tree.parent, Some(wan(1)));
    // E: refused at the rendezvous, never joined, and not a member anywhere. The four others
    // may converge before E's first join has even arrived: wait for the refusal.
    let mut counters = group_a.counters;
    let refused = wait_for(Duration::from_secs(15), || {
        counters = lab.overlay(0).expect("A").groups[0].counters;
        counters.joins_refused >= 1 && counters.bad_tag >= 1
    });
    assert!(refused, "the rendezvous never refused E: {counters:?}");
    let mut node_e = lab.overlay(4).expect("E");
    let e_saw = wait_for(Duration::from_secs(15), || {
        node_e = lab.overlay(4).expect("E");
        node_e.groups[0].counters.bad_tag >= 1
    });
    assert!(e_saw && !node_e.groups[0].joined, "{node_e:#?}");
    assert!(
        lab.overlay(0).expect("A").groups[0].members.iter().all(|m| *m != wan(4)),
        "E became a member"
    );

    let seen = lab.burst();
    for (r, s) in seen.iter().enumerate() {
        let missing: Vec<usize> = (0..s.len()).filter(|&i| s[i] == 0).collect();
        let duplicated: Vec<usize> = (0..s.len()).filter(|&i| s[i] > 1).collect();
        if !missing.is_empty() {
            for i in 0..4 {
                eprintln!("{}", fanoutctl(&lab.socket(i), &["show", "counters"]).1);
                eprintln!("{}", fanoutctl(&lab.socket(i), &["show", "overlay"]).1);
            }
        }
        assert!(
            missing.is_empty(),
            "node {}: missing {} of {BURST}: {missing:?}",
            r + 1,
            missing.len()
        );
        assert!(duplicated.is_empty(), "node {}: duplicated {duplicated:?}", r + 1);
    }
    eprintln!("overlay: {BURST} of {BURST} datagrams from A reached B, C and D exactly once");
}
