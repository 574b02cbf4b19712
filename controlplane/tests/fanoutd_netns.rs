//! fanoutd end to end (root): the real daemon on a veth pair in a fresh network namespace,
//! driven by fanoutctl and signals.
//!
//! Input: fanoutd started with a config naming both ends of a veth pair.
//! Output: `show interfaces --json` lists both with an AF_XDP bind mode; `clear counters` works;
//! SIGHUP with a broken file keeps the daemon and its routes; SIGTERM exits 0, removes the
//! control socket and detaches XDP.
#![cfg(feature = "daemon")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use controlplane::ctl::{CountersData, InterfacesData, MrouteData};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A namespace with a veth pair, and the daemon started in it; torn down on drop (success or
/// failure): the daemon is killed by PID, the namespace deleted (which deletes the veths).
struct Testbed {
    ns: String,
    veths: [String; 2],
    dir: tempfile::TempDir,
    daemon: Option<Child>,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Testbed {
    fn new() -> Testbed {
        let id = format!(
            "{:x}{}",
            std::process::id() % 0xfffff,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let ns = format!("fanoutd-t-{id}");
        // "fd" + id + "a": at most 2 + 6 + 1 + 1 = 10 bytes, under IFNAMSIZ.
        let veths = [format!("fd{id}a"), format!("fd{id}b")];
        ip(&["netns", "add", &ns]);
        let tb = Testbed { ns, veths, dir: tempfile::tempdir().unwrap(), daemon: None };
        let [a, b] = &tb.veths;
        ip(&["-n", &tb.ns, "link", "add", a, "type", "veth", "peer", "name", b]);
        ip(&["-n", &tb.ns, "addr", "add", "10.77.0.1/24", "dev", a]);
        ip(&["-n", &tb.ns, "addr", "add", "10.77.1.1/24", "dev", b]);
        ip(&["-n", &tb.ns, "link", "set", a, "up"]);
        ip(&["-n", &tb.ns, "link", "set", b, "up"]);
        // IGMP reports sent from b (a local address) arrive on a: accept them instead of
        // dropping them as martians.
        for conf in ["all", a.as_str()] {
            let key = format!("net.ipv4.conf.{conf}.accept_local=1");
            let ok = Command::new("ip")
                .args(["netns", "exec", &tb.ns, "sysctl", "-qw", &key])
                .status()
                .unwrap();
            assert!(ok.success(), "sysctl {key}");
        }
        tb
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
        std::fs::write(self.config_path(), self.config()).unwrap();
        // `ip netns exec` execs fanoutd after setns, so the child PID is the daemon's.
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                env!("CARGO_BIN_EXE_fanoutd"),
                "--foreground",
                "--config",
            ])
            .arg(self.config_path())
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn fanoutd");
        self.daemon = Some(child);
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.daemon.as_ref().unwrap().id()).expect("pid fits pid_t"))
    }

    fn xdp_attached(&self, veth: &str) -> bool {
        let out = Command::new("ip")
            .args(["-n", &self.ns, "link", "show", "dev", veth])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("xdp")
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            if child.try_wait().ok().flatten().is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

fn fanoutctl(socket: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fanoutctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Polls `cond` every 50 ms until it holds or `limit` passes.
fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

#[test]
fn fanoutd_in_a_namespace() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root (netns, XDP, AF_XDP)");
        return;
    }
    let mut tb = Testbed::new();
    tb.start_daemon();
    let sock = tb.socket();
    let up =
        wait_for(Duration::from_secs(15), || fanoutctl(&sock, &["show", "interfaces", "--json"]).0);
    if !up {
        let status = tb.daemon.as_mut().unwrap().try_wait().unwrap();
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

    let (ok, out, err) = fanoutctl(&sock, &["clear", "counters"]);
    assert!(ok, "{err}");
    assert_eq!(out, "cleared counters\n");
    let (ok, out, _) = fanoutctl(&sock, &["show", "counters", "--json"]);
    assert!(ok);
    let counters: CountersData = serde_json::from_str(&out).unwrap();
    assert_eq!(counters.interfaces.len(), 2);
    assert!(counters.xdp.contains_key("rx_total"), "{:?}", counters.xdp);

    // IGMP on a: a socket on b joins a group; the kernel's report crosses the veth and
    // fanoutd's IGMP core learns the member.
    let group = std::net::Ipv4Addr::new(239, 7, 7, 9);
    let ns_file = std::fs::File::open(format!("/var/run/netns/{}", tb.ns)).unwrap();
    let b_ifindex = ifaces.interfaces[1].ifindex;
    let (joined_tx, joined_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let member = std::thread::spawn(move || {
        // setns affects only this thread; the socket lives in the router's namespace.
        nix::sched::setns(&ns_file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        s.join_multicast_v4_n(&group, &socket2::InterfaceIndexOrAddress::Index(b_ifindex)).unwrap();
        joined_tx.send(()).unwrap();
        let _ = done_rx.recv_timeout(Duration::from_secs(30));
    });
    joined_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let mut last = String::new();
    let learned = wait_for(Duration::from_secs(10), || {
        let (ok, out, _) = fanoutctl(&sock, &["show", "igmp", "--json"]);
        last = out;
        ok && serde_json::from_str::<serde_json::Value>(&last).unwrap()["interfaces"][0]["groups"]
            .as_array()
            .is_some_and(|g| g.iter().any(|g| g["group"] == group.to_string()))
    });
    drop(done_tx);
    member.join().unwrap();
    assert!(learned, "IGMP membership not learned: {last}");
    let (ok, out, _) = fanoutctl(&sock, &["show", "igmp"]);
    assert!(ok && out.contains("239.7.7.9") && out.contains("10.77.1.1"), "{out}");

    // SIGHUP with a broken file: the daemon stays up with its routes.
    std::fs::write(tb.config_path(), tb.config().replace("239.7.7.7", "10.7.7.7")).unwrap();
    kill(tb.pid(), Signal::SIGHUP).unwrap();
    let failed_reload_seen = wait_for(Duration::from_secs(5), || {
        let (ok, out, _) = fanoutctl(&sock, &["show", "counters", "--json"]);
        ok && serde_json::from_str::<CountersData>(&out).unwrap().control.reloads_failed == 1
    });
    assert!(failed_reload_seen, "the failed reload was not counted");
    let (ok, out, _) = fanoutctl(&sock, &["show", "mroute", "--json"]);
    assert!(ok);
    let mroute: MrouteData = serde_json::from_str(&out).unwrap();
    assert_eq!(mroute.routes.len(), 1);
    assert_eq!(mroute.routes[0].group.to_string(), "239.7.7.7");
    assert_eq!(mroute.routes[0].oifs[0].name, tb.veths[1]);

    // SIGTERM: exit 0, socket gone, XDP detached.
    kill(tb.pid(), Signal::SIGTERM).unwrap();
    let mut child = tb.daemon.take().unwrap();
    let mut status = None;
    assert!(wait_for(Duration::from_secs(10), || {
        status = child.try_wait().unwrap();
        status.is_some()
    }));
    assert!(status.unwrap().success(), "fanoutd exit status {status:?}");
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

/// Namespaces and daemons of the DVMRP test, removed/killed on drop.
struct Guard(Vec<String>, Vec<Child>);
impl Drop for Guard {
    fn drop(&mut self) {
        for c in &mut self.1 {
            if c.try_wait().ok().flatten().is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        for ns in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Two routers in two namespaces, linked by a veth, each with a stub LAN (a veth pair whose
/// peer stays unconfigured), running routing mode dvmrp.
///
/// Input: both daemons started with 1 s probes.
/// Output: each lists the other as a two-way DVMRP neighbour on the link and learns the other's
/// stub subnet; a member joined on r2's stub receives a stream sent on r1's stub through both
/// routers (all but the first packet, punted at each hop); both stop cleanly.
#[test]
fn dvmrp_between_two_daemons() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root (netns, XDP, AF_XDP)");
        return;
    }
    let id =
        format!("{:x}{}", std::process::id() % 0xfffff, COUNTER.fetch_add(1, Ordering::Relaxed));
    let ns = [format!("fanoutd-r1-{id}"), format!("fanoutd-r2-{id}")];
    let mut guard = Guard(Vec::new(), Vec::new());
    for n in &ns {
        ip(&["netns", "add", n]);
        guard.0.push(n.clone());
    }
    // Link r1:l1 <-> r2:l2 (10.88.12.0/24); stubs r1:s1 (10.88.1.0/24), r2:s2 (10.88.2.0/24).
    let (l1, l2, s1, s2) =
        (format!("l{id}a"), format!("l{id}b"), format!("s{id}a"), format!("s{id}b"));
    ip(&["-n", &ns[0], "link", "add", &l1, "type", "veth", "peer", "name", &l2, "netns", &ns[1]]);
    ip(&["-n", &ns[0], "link", "add", &s1, "type", "veth", "peer", "name", &format!("{s1}p")]);
    ip(&["-n", &ns[1], "link", "add", &s2, "type", "veth", "peer", "name", &format!("{s2}p")]);
    for (n, dev, addr) in [
        (&ns[0], &l1, "10.88.12.1/24"),
        (&ns[1], &l2, "10.88.12.2/24"),
        (&ns[0], &s1, "10.88.1.1/24"),
        (&ns[1], &s2, "10.88.2.1/24"),
    ] {
        ip(&["-n", n, "addr", "add", addr, "dev", dev]);
        ip(&["-n", n, "link", "set", dev, "up"]);
    }
    ip(&["-n", &ns[0], "link", "set", &format!("{s1}p"), "up"]);
    ip(&["-n", &ns[1], "link", "set", &format!("{s2}p"), "up"]);
    // Hosts: the stub peers get their own addresses. Their traffic enters the router through
    // the veth and carries a source address local to the namespace: accept it, and turn off
    // checksum offload (a partial checksum does not survive AF_XDP forwarding).
    ip(&["-n", &ns[0], "addr", "add", "10.88.1.2/32", "dev", &format!("{s1}p")]);
    ip(&["-n", &ns[1], "addr", "add", "10.88.2.2/32", "dev", &format!("{s2}p")]);
    for (n, devs) in
        [(&ns[0], [&l1, &s1, &format!("{s1}p")]), (&ns[1], [&l2, &s2, &format!("{s2}p")])]
    {
        for conf in ["all", devs[0].as_str(), devs[1].as_str()] {
            for key in [
                format!("net.ipv4.conf.{conf}.accept_local=1"),
                format!("net.ipv4.conf.{conf}.rp_filter=0"),
            ] {
                let ok = Command::new("ip")
                    .args(["netns", "exec", n, "sysctl", "-qw", &key])
                    .status()
                    .unwrap();
                assert!(ok.success(), "sysctl {key}");
            }
        }
        for dev in devs {
            let ok = Command::new("ip")
                .args(["netns", "exec", n, "ethtool", "-K", dev, "tx", "off", "rx", "off"])
                .stdout(Stdio::null())
                .status()
                .unwrap();
            assert!(ok.success(), "ethtool -K {dev}");
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let mut sockets = Vec::new();
    for (i, (n, ifaces)) in [(&ns[0], [&l1, &s1]), (&ns[1], [&l2, &s2])].into_iter().enumerate() {
        let sock = dir.path().join(format!("r{i}.sock"));
        let cfg = dir.path().join(format!("r{i}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "[daemon]\ncontrol_socket = \"{}\"\n[routing]\nmode = \"dvmrp\"\n\
                 [dvmrp]\nprobe_interval = \"1s\"\nneighbor_timeout = \"5s\"\n\
                 [[interface]]\nname = \"{}\"\n[[interface]]\nname = \"{}\"\nigmp = true\n",
                sock.display(),
                ifaces[0],
                ifaces[1]
            ),
        )
        .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", n, env!("CARGO_BIN_EXE_fanoutd"), "--foreground", "--config"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        guard.1.push(child);
        sockets.push(sock);
    }
    let peers = ["10.88.12.2", "10.88.12.1"];
    let stubs = ["10.88.2.0", "10.88.1.0"];
    for (i, sock) in sockets.iter().enumerate() {
        let mut last = String::new();
        let converged = wait_for(Duration::from_secs(20), || {
            let (ok, out, _) = fanoutctl(sock, &["show", "neighbors", "--json"]);
            last = out;
            if !ok {
                return false;
            }
            let v: serde_json::Value = serde_json::from_str(&last).unwrap();
            let two_way = v["neighbors"]
                .as_array()
                .is_some_and(|n| n.iter().any(|n| n["addr"] == peers[i] && n["two_way"] == true));
            let routes = v["routes"].as_array().cloned().unwrap_or_default();
            let learned = routes.iter().any(|r| r["origin"] == stubs[i] && r["connected"] == false);
            // The peer depends on us for our own stub (its poison-reverse report arrived):
            // only then is the link an oif for traffic from our stub.
            let own_stub = stubs[1 - i];
            let depended_on = routes.iter().any(|r| {
                r["origin"] == own_stub && r["dependents"].as_array().is_some_and(|d| !d.is_empty())
            });
            two_way && learned && depended_on
        });
        assert!(converged, "router {i} did not converge: {last}");
    }

    // Traffic: a member on r2's stub, a sender on r1's stub, 100 datagrams of one (S,G).
    let group = std::net::Ipv4Addr::new(239, 88, 9, 9);
    let netns = |n: &str| std::fs::File::open(format!("/var/run/netns/{n}")).unwrap();
    let ifindex = |n: &str, dev: &str| -> u32 {
        let out =
            Command::new("ip").args(["-n", n, "-o", "link", "show", "dev", dev]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).split(':').next().unwrap().trim().parse().unwrap()
    };
    let (r2_ns, s2p_index) = (netns(&ns[1]), ifindex(&ns[1], &format!("{s2}p")));
    let (joined_tx, joined_rx) = std::sync::mpsc::channel();
    let receiver = std::thread::spawn(move || -> usize {
        nix::sched::setns(&r2_ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        s.set_reuse_address(true).unwrap();
        s.bind(&std::net::SocketAddrV4::new(group, 5000).into()).unwrap();
        s.join_multicast_v4_n(&group, &socket2::InterfaceIndexOrAddress::Index(s2p_index)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        joined_tx.send(()).unwrap();
        let socket: std::net::UdpSocket = s.into();
        let mut buf = [0u8; 2048];
        let mut n = 0;
        // Ends 3 s after the last datagram (bounded: the sender sends 100).
        while socket.recv(&mut buf).is_ok() {
            n += 1;
        }
        n
    });
    joined_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let member_seen = wait_for(Duration::from_secs(10), || {
        let (ok, out, _) = fanoutctl(&sockets[1], &["show", "igmp", "--json"]);
        ok && out.contains(&group.to_string())
    });
    assert!(member_seen, "r2 did not learn the member");
    let r1_ns = netns(&ns[0]);
    let sender = std::thread::spawn(move || {
        nix::sched::setns(&r1_ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let src = std::net::Ipv4Addr::new(10, 88, 1, 2);
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        s.bind(&std::net::SocketAddrV4::new(src, 0).into()).unwrap();
        s.set_multicast_if_v4(&src).unwrap();
        s.set_multicast_ttl_v4(8).unwrap();
        let dst: socket2::SockAddr = std::net::SocketAddrV4::new(group, 5000).into();
        for _ in 0..100 {
            s.send_to(&[0x5a; 100], &dst).unwrap();
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    sender.join().unwrap();
    let received = receiver.join().unwrap();
    // The first packet of the (S,G) is punted (not forwarded) at each of the two routers while
    // DVMRP installs the route; everything after it must arrive.
    if received < 98 {
        for sock in &sockets {
            eprintln!("{}", fanoutctl(sock, &["show", "counters"]).1);
            eprintln!("{}", fanoutctl(sock, &["show", "mroute"]).1);
        }
    }
    assert!(received >= 98, "received {received} of 100");
    let (_, out, _) = fanoutctl(&sockets[0], &["show", "mroute", "--json"]);
    let mroute: MrouteData = serde_json::from_str(&out).unwrap();
    assert!(
        mroute
            .routes
            .iter()
            .any(|r| r.group == group && r.iif == s1 && r.oifs.iter().any(|o| o.name == l1)),
        "{out}"
    );
    eprintln!("dvmrp: {received} of 100 datagrams crossed two fanoutd routers");
    for c in &mut guard.1 {
        kill(Pid::from_raw(i32::try_from(c.id()).unwrap()), Signal::SIGTERM).unwrap();
    }
    for c in &mut guard.1 {
        let mut status = None;
        assert!(wait_for(Duration::from_secs(10), || {
            status = c.try_wait().unwrap();
            status.is_some()
        }));
        assert!(status.unwrap().success(), "exit status {status:?}");
    }
}
