//! fanoutd end to end (root): the real daemon on a veth pair in a fresh network namespace,
//! driven by fanoutctl and signals.
//!
//! Input: fanoutd started with a config naming both ends of a veth pair.
//! Output: `show interfaces --json` lists both with an AF_XDP bind mode; `clear counters` works;
//! SIGHUP with a broken file keeps the daemon and its routes; SIGTERM exits 0, removes the
//! control socket and detaches XDP.
#![cfg(feature = "daemon")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use controlplane::ctl::{CountersData, InterfacesData, MrouteData};
use nix::sys::signal::Signal;

mod common;
use common::{
    fanoutctl, privileged, start_fanoutd, stop_cleanly, thread_in, wait_for, End, Spawned, TestNet,
    TwoRouters,
};

/// A namespace with a veth pair, and the daemon started in it; torn down on drop (success or
/// failure): the daemon is killed by PID, then the namespace deleted (which deletes the veths).
struct Testbed {
    daemon: Option<Spawned>,
    net: TestNet,
    ns: String,
    veths: [String; 2],
    dir: tempfile::TempDir,
}

impl Testbed {
    fn new() -> Testbed {
        let mut net = TestNet::new("fd");
        let ns = net.add_ns("r").expect("namespace");
        let veths = [net.ifname("a").expect("ifname"), net.ifname("b").expect("ifname")];
        let [a, b] = &veths;
        net.veth(End::new(&ns, a, "10.77.0.1/24"), End::new(&ns, b, "10.77.1.1/24")).expect("veth");
        // IGMP reports sent from b (a local address) arrive on a: accept them instead of
        // dropping them as martians.
        for conf in ["all", a.as_str()] {
            net.sysctl(&ns, &format!("net.ipv4.conf.{conf}.accept_local"), "1").expect("sysctl");
        }
        Testbed { daemon: None, net, ns, veths, dir: tempfile::tempdir().expect("tempdir") }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("fanoutd.sock")
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("fanout.toml")
    }

    fn config(&self) -> String {
        let [a, b] = &self.veths;
        format!(
            "[daemon]\ncontrol_socket = \"{}\"\nlog_level = \"debug\"\n\
             [[interface]]\nname = \"{a}\"\nigmp = true\n[[interface]]\nname = \"{b}\"\n\
             [[static_route]]\ngroup = \"239.7.7.7\"\niif = \"{a}\"\noifs = [\"{b}\"]\n",
            self.socket().display()
        )
    }

    fn start_daemon(&mut self) {
        std::fs::write(self.config_path(), self.config()).expect("write config");
        self.daemon = Some(start_fanoutd(&self.net, &self.ns, &self.config_path()));
    }

    fn daemon(&mut self) -> &mut Spawned {
        self.daemon.as_mut().expect("daemon started")
    }

    fn xdp_attached(&self, veth: &str) -> bool {
        self.net.ip(&self.ns, &["link", "show", "dev", veth]).is_ok_and(|out| out.contains("xdp"))
    }
}

#[test]
fn fanoutd_in_a_namespace() {
    if !privileged() {
        return;
    }
    let mut tb = Testbed::new();
    tb.start_daemon();
    let sock = tb.socket();
    let up = wait_for(Duration::from_secs(15), || {
        fanoutctl(&sock, &["show", "interfaces", "--json"]).0 == 0
    });
    if !up {
        let status = tb.daemon().try_wait().unwrap();
        panic!("fanoutd did not come up (exit status {status:?}); see its log above");
    }

    let (_, out, _) = fanoutctl(&sock, &["show", "interfaces", "--json"]);
    let ifaces: InterfacesData = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = ifaces.interfaces.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, [tb.veths[0].as_str(), tb.veths[1].as_str()]);
    for i in &ifaces.interfaces {
        assert!(i.bind_mode == "copy" || i.bind_mode == "zero-copy", "{i:?}");
        assert!(i.xdp_mode == "native" || i.xdp_mode == "skb", "{i:?}");
        assert!(i.ifindex > 0 && i.mac.len() == 17, "{i:?}");
    }
    assert_eq!(ifaces.interfaces[0].ipv4.to_string(), "10.77.0.1");
    assert!(tb.xdp_attached(&tb.veths[0]) && tb.xdp_attached(&tb.veths[1]));

    let (code, out, err) = fanoutctl(&sock, &["clear", "counters"]);
    assert!(code == 0, "{err}");
    assert_eq!(out, "cleared counters\n");
    let (code, out, _) = fanoutctl(&sock, &["show", "counters", "--json"]);
    assert!(code == 0);
    let counters: CountersData = serde_json::from_str(&out).unwrap();
    assert_eq!(counters.interfaces.len(), 2);
    assert!(counters.xdp.contains_key("rx_total"), "{:?}", counters.xdp);

    // IGMP on a: a socket on b joins a group; the kernel's report crosses the veth and
    // fanoutd's IGMP core learns the member.
    let group = std::net::Ipv4Addr::new(239, 7, 7, 9);
    let b_ifindex = ifaces.interfaces[1].ifindex;
    let (joined_tx, joined_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    // The socket lives in the router's namespace.
    let member = thread_in(&tb.ns, move || {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        s.join_multicast_v4_n(&group, &socket2::InterfaceIndexOrAddress::Index(b_ifindex)).unwrap();
        joined_tx.send(()).unwrap();
        let _ = done_rx.recv_timeout(Duration::from_secs(30));
    });
    joined_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let mut last = String::new();
    let learned = wait_for(Duration::from_secs(10), || {
        let (code, out, _) = fanoutctl(&sock, &["show", "igmp", "--json"]);
        last = out;
        code == 0
            && serde_json::from_str::<serde_json::Value>(&last).unwrap()["interfaces"][0]["groups"]
                .as_array()
                .is_some_and(|g| g.iter().any(|g| g["group"] == group.to_string()))
    });
    drop(done_tx);
    member.join().unwrap();
    assert!(learned, "IGMP membership not learned: {last}");
    let (code, out, _) = fanoutctl(&sock, &["show", "igmp"]);
    assert!(code == 0 && out.contains("239.7.7.9") && out.contains("10.77.1.1"), "{out}");

    // SIGHUP with a broken file: the daemon stays up with its routes.
    std::fs::write(tb.config_path(), tb.config().replace("239.7.7.7", "10.7.7.7")).unwrap();
    tb.daemon().signal(Signal::SIGHUP).unwrap();
    let failed_reload_seen = wait_for(Duration::from_secs(5), || {
        let (code, out, _) = fanoutctl(&sock, &["show", "counters", "--json"]);
        code == 0 && serde_json::from_str::<CountersData>(&out).unwrap().control.reloads_failed == 1
    });
    assert!(failed_reload_seen, "the failed reload was not counted");
    let (code, out, _) = fanoutctl(&sock, &["show", "mroute", "--json"]);
    assert!(code == 0);
    let mroute: MrouteData = serde_json::from_str(&out).unwrap();
    assert_eq!(mroute.routes.len(), 1);
    assert_eq!(mroute.routes[0].group.to_string(), "239.7.7.7");
    assert_eq!(mroute.routes[0].oifs[0].name, tb.veths[1]);

    // SIGTERM: exit 0, socket gone, XDP detached.
    stop_cleanly(std::slice::from_mut(tb.daemon()));
    assert!(!sock.exists(), "control socket left behind");
    assert!(!tb.xdp_attached(&tb.veths[0]) && !tb.xdp_attached(&tb.veths[1]), "XDP still attached");
}

#[test]
fn check_config_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[[interface]]\nname = \"eth0\"\n").unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[interface]]\nname = \"eth0\"\n[[interface]]\nname = \"eth0\"\n")
        .unwrap();
    let run = |p: &Path| {
        Command::new(env!("CARGO_BIN_EXE_fanoutd"))
            .arg("--check-config")
            .arg("--config")
            .arg(p)
            .output()
            .unwrap()
    };
    let out = run(&good);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration OK"));
    let out = run(&bad);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:4:8: interface[1].name: duplicate interface \"eth0\" (first defined on line 2)"), "{err}");
}

/// Two routers in two namespaces, linked by a veth, each with a stub LAN whose far end plays the
/// host (common::TwoRouters), running routing mode dvmrp.
///
/// Input: both daemons started with 1 s probes.
/// Output: each lists the other as a two-way DVMRP neighbour on the link and learns the other's
/// stub subnet; a member joined on r2's stub receives a stream sent on r1's stub through both
/// routers (all but the first packet, punted at each hop); both stop cleanly.
#[test]
fn dvmrp_between_two_daemons() {
    if !privileged() {
        return;
    }
    let mut net = TwoRouters::new("fv", [10, 88]);
    net.start(|_, link, stub, sock| {
        format!(
            "[daemon]\ncontrol_socket = \"{}\"\n[routing]\nmode = \"dvmrp\"\n\
             [dvmrp]\nprobe_interval = \"1s\"\nneighbor_timeout = \"5s\"\n\
             [[interface]]\nname = \"{link}\"\n[[interface]]\nname = \"{stub}\"\nigmp = true\n",
            sock.display(),
        )
    });
    for i in 0..2 {
        let (peer, stub, own_stub) =
            (net.link_addr(1 - i).to_string(), net.stub_subnet(1 - i), net.stub_subnet(i));
        let mut last = String::new();
        let converged = wait_for(Duration::from_secs(20), || {
            let (code, out, _) = fanoutctl(&net.socket(i), &["show", "neighbors", "--json"]);
            last = out;
            if code != 0 {
                return false;
            }
            let v: serde_json::Value = serde_json::from_str(&last).unwrap();
            let two_way = v["neighbors"]
                .as_array()
                .is_some_and(|n| n.iter().any(|n| n["addr"] == peer && n["two_way"] == true));
            let routes = v["routes"].as_array().cloned().unwrap_or_default();
            let learned =
                routes.iter().any(|r| r["origin"] == stub.to_string() && r["connected"] == false);
            // The peer depends on us for our own stub (its poison-reverse report arrived):
            // only then is the link an oif for traffic from our stub.
            let depended_on = routes.iter().any(|r| {
                r["origin"] == own_stub.to_string()
                    && r["dependents"].as_array().is_some_and(|d| !d.is_empty())
            });
            two_way && learned && depended_on
        });
        assert!(converged, "router {i} did not converge: {last}");
    }

    // Traffic: a member on r2's stub, a sender on r1's stub, 100 datagrams of one (S,G).
    let group = std::net::Ipv4Addr::new(239, 88, 9, 9);
    let receiver = net.member(1, group, 5000);
    let member_seen = wait_for(Duration::from_secs(10), || {
        let (code, out, _) = fanoutctl(&net.socket(1), &["show", "igmp", "--json"]);
        code == 0 && out.contains(&group.to_string())
    });
    assert!(member_seen, "r2 did not learn the member");
    net.send(0, group, 5000, 100);
    let received = receiver.join().unwrap();
    // The first packet of the (S,G) is punted (not forwarded) at each of the two routers while
    // DVMRP installs the route; everything after it must arrive.
    if received < 98 {
        for i in 0..2 {
            eprintln!("{}", fanoutctl(&net.socket(i), &["show", "counters"]).1);
            eprintln!("{}", fanoutctl(&net.socket(i), &["show", "mroute"]).1);
        }
    }
    assert!(received >= 98, "received {received} of 100");
    let (_, out, _) = fanoutctl(&net.socket(0), &["show", "mroute", "--json"]);
    let mroute: MrouteData = serde_json::from_str(&out).unwrap();
    assert!(
        mroute.routes.iter().any(|r| r.group == group
            && r.iif == net.stub[0]
            && r.oifs.iter().any(|o| o.name == net.link[0])),
        "{out}"
    );
    eprintln!("dvmrp: {received} of 100 datagrams crossed two fanoutd routers");
    net.stop();
}
