//! What the privileged fanoutd tests share (included with `mod common;`): running fanoutctl,
//! starting fanoutd inside a namespace of a [`TestNet`], and the two-router network the DVMRP and
//! link-state daemon tests both use.

#![allow(dead_code, unused_imports, reason = "each test binary uses a different subset")]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use netns::testnet::{privileged, thread_in, wait_for, End, Spawned, TestNet};
use nix::sys::signal::Signal;
use serde_json::Value;

/// Runs fanoutctl against `socket`: (exit code, stdout, stderr); -1 when killed by a signal.
pub fn fanoutctl(socket: &Path, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fanoutctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("run fanoutctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `fanoutctl show <what> --json`, parsed; `None` while the daemon does not answer.
pub fn show_json(socket: &Path, what: &str) -> Option<Value> {
    let (code, out, _) = fanoutctl(socket, &["show", what, "--json"]);
    (code == 0).then(|| serde_json::from_str(&out).ok()).flatten()
}

/// Starts fanoutd (foreground) with `config` inside namespace `ns`.
#[cfg(feature = "daemon")]
pub fn start_fanoutd(net: &TestNet, ns: &str, config: &Path) -> Spawned {
    let args = [Path::new("--foreground"), Path::new("--config"), config];
    net.spawn(ns, env!("CARGO_BIN_EXE_fanoutd"), args).expect("spawn fanoutd")
}

/// Waits until the daemon behind `socket` answers `show interfaces`.
pub fn wait_up(socket: &Path) -> bool {
    wait_for(Duration::from_secs(15), || show_json(socket, "interfaces").is_some())
}

/// SIGTERM to every daemon; each must exit 0 within 10 s.
pub fn stop_cleanly(daemons: &mut [Spawned]) {
    for d in daemons.iter() {
        d.signal(Signal::SIGTERM).expect("SIGTERM");
    }
    for d in daemons {
        let status = d.wait_timeout(Duration::from_secs(10));
        assert!(status.is_some_and(|s| s.success()), "exit status {status:?}");
    }
}

/// Two routers in two namespaces linked by a veth (`<net>.12.0/24`), each with a stub LAN: a
/// veth pair inside the router's namespace whose far end plays the host (`<net>.<i+1>.0/24`,
/// router .1, host .2).
///
/// ```text
///   host1 .2 ─ s1 .1 [r1] l1 .1 ── <net>.12.0/24 ── .2 l2 [r2] .1 s2 ─ .2 host2
/// ```
#[cfg(feature = "daemon")]
pub struct TwoRouters {
    pub net: TestNet,
    pub ns: [String; 2],
    /// Each router's interface on the shared link.
    pub link: [String; 2],
    /// Each router's stub-LAN interface.
    pub stub: [String; 2],
    /// The host end of each stub LAN.
    pub host: [String; 2],
    pub dir: tempfile::TempDir,
    pub daemons: Vec<Spawned>,
    net16: [u8; 2],
}

#[cfg(feature = "daemon")]
impl TwoRouters {
    /// `net16` names the /16 the addresses come from (e.g. `[10, 88]`).
    pub fn new(tag: &str, net16: [u8; 2]) -> TwoRouters {
        let mut net = TestNet::new(tag);
        let ns = ["r1", "r2"].map(|n| net.add_ns(n).expect("namespace"));
        let [l1, l2, s1, s2, h1, h2] =
            ["l1", "l2", "s1", "s2", "h1", "h2"].map(|d| net.ifname(d).expect("ifname"));
        let [a, b] = net16;
        let addr = |third: u8, host: u8, len: u8| format!("{a}.{b}.{third}.{host}/{len}");
        let (l1a, l2a) = (addr(12, 1, 24), addr(12, 2, 24));
        net.veth(End::new(&ns[0], &l1, &l1a), End::new(&ns[1], &l2, &l2a)).expect("link");
        for (i, (s, h)) in [(&s1, &h1), (&s2, &h2)].into_iter().enumerate() {
            let third = u8::try_from(i + 1).expect("two routers");
            // The host end gets a /32: the router's own /24 route covers it.
            let (sa, ha) = (addr(third, 1, 24), addr(third, 2, 32));
            net.veth(End::new(&ns[i], s, &sa), End::new(&ns[i], h, &ha)).expect("stub");
        }
        // The hosts' traffic enters the router through the veth with a source address local to
        // the namespace: accept it instead of dropping it as a martian.
        for (i, devs) in [[&l1, &s1, &h1], [&l2, &s2, &h2]].into_iter().enumerate() {
            for conf in ["all", devs[0].as_str(), devs[1].as_str()] {
                for key in ["accept_local", "rp_filter"] {
                    let value = if key == "accept_local" { "1" } else { "0" };
                    net.sysctl(&ns[i], &format!("net.ipv4.conf.{conf}.{key}"), value)
                        .expect("sysctl");
                }
            }
        }
        TwoRouters {
            net,
            ns,
            link: [l1, l2],
            stub: [s1, s2],
            host: [h1, h2],
            dir: tempfile::tempdir().expect("tempdir"),
            daemons: Vec::new(),
            net16,
        }
    }

    /// Router `i`'s control socket.
    pub fn socket(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("r{i}.sock"))
    }

    /// The host address on router `i`'s stub LAN.
    pub fn host_addr(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(self.net16[0], self.net16[1], u8::try_from(i + 1).expect("two routers"), 2)
    }

    /// The stub subnet of router `i` (as DVMRP advertises it).
    pub fn stub_subnet(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(self.net16[0], self.net16[1], u8::try_from(i + 1).expect("two routers"), 0)
    }

    /// Router `i`'s address on the shared link.
    pub fn link_addr(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(self.net16[0], self.net16[1], 12, u8::try_from(i + 1).expect("two routers"))
    }

    /// Writes each router's config (`config(i, link, stub, socket)`) and starts both daemons.
    pub fn start(&mut self, config: impl Fn(usize, &str, &str, &Path) -> String) {
        for i in 0..2 {
            let path = self.dir.path().join(format!("r{i}.toml"));
            let text = config(i, &self.link[i], &self.stub[i], &self.socket(i));
            std::fs::write(&path, text).expect("write config");
            let daemon = start_fanoutd(&self.net, &self.ns[i], &path);
            self.daemons.push(daemon);
        }
    }

    /// A kernel member of `group` on router `to`'s host, listening on `port`; returns once it has
    /// joined. The thread counts datagrams until 3 s pass without one.
    pub fn member(&self, to: usize, group: Ipv4Addr, port: u16) -> std::thread::JoinHandle<usize> {
        let index = self.net.ifindex(&self.ns[to], &self.host[to]).expect("host ifindex");
        let (joined_tx, joined_rx) = std::sync::mpsc::channel();
        let receiver = thread_in(&self.ns[to], move || {
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
                .expect("socket");
            s.set_reuse_address(true).expect("SO_REUSEADDR");
            s.bind(&SocketAddrV4::new(group, port).into()).expect("bind");
            s.join_multicast_v4_n(&group, &socket2::InterfaceIndexOrAddress::Index(index))
                .expect("join");
            s.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
            joined_tx.send(()).expect("joined");
            let socket: std::net::UdpSocket = s.into();
            let mut buf = [0u8; 2048];
            let mut n = 0;
            // Bounded: the senders send a fixed count; ends 3 s after the last datagram.
            while socket.recv(&mut buf).is_ok() {
                n += 1;
            }
            n
        });
        joined_rx.recv_timeout(Duration::from_secs(5)).expect("member joined");
        receiver
    }

    /// Sends `count` datagrams to `group:port` from router `from`'s host, one every 10 ms.
    pub fn send(&self, from: usize, group: Ipv4Addr, port: u16, count: u32) {
        let src = self.host_addr(from);
        thread_in(&self.ns[from], move || {
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
                .expect("socket");
            s.bind(&SocketAddrV4::new(src, 0).into()).expect("bind");
            s.set_multicast_if_v4(&src).expect("IP_MULTICAST_IF");
            s.set_multicast_ttl_v4(8).expect("ttl");
            let dst: socket2::SockAddr = SocketAddrV4::new(group, port).into();
            for _ in 0..count {
                s.send_to(&[0x5a; 100], &dst).expect("send");
                std::thread::sleep(Duration::from_millis(10));
            }
        })
        .join()
        .expect("sender");
    }

    /// Both daemons exit 0 on SIGTERM.
    pub fn stop(&mut self) {
        stop_cleanly(&mut self.daemons);
    }
}
