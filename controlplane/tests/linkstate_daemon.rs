//! Routing mode `linkstate` in fanoutd's event loop, without root: two daemon loops in this
//! process, each with the in-memory `RecordingBackend`, joined by a simulated link that hands
//! every datagram one sends on its link interface to the other's loop (as the raw sockets would).
//! They must reach Full, agree on the LSDB, carry a membership learned through IGMP to the
//! other side, and install the (S,G) route there; ctl answers `show lsdb`, `show neighbors`,
//! `show spt` and fanoutctl renders them.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use controlplane::config::Config;
use controlplane::ctl::{self, Request, Response, ShowWhat};
use controlplane::daemon::backend::RecordingBackend;
use controlplane::daemon::igmp::IgmpTx;
use controlplane::daemon::linkstate::LinkStateTx;
use controlplane::daemon::tasks::CtlServer;
use controlplane::daemon::{self, Daemon, Input};
use crossbeam::channel::{bounded, Receiver, Sender};
use dataplane_api::{IfIndex, Punt};
use serde_json::Value;
use wire::igmp::IgmpRepr;

const LINK: IfIndex = IfIndex(10);

fn config(router_id: &str) -> String {
    format!(
        r#"
[routing]
mode = "linkstate"

[linkstate]
router_id = "{router_id}"
preset = "fast"

[[interface]]
name = "link0"
cost = 5
[[interface]]
name = "lan0"
igmp = true
"#
    )
}

/// The simulated link: what one router sends on `LINK` arrives at the other's loop.
struct Wire {
    peer: Sender<Input>,
    own: Ipv4Addr,
}

impl LinkStateTx for Wire {
    fn send(&mut self, ifindex: IfIndex, _dst: Ipv4Addr, payload: &[u8]) -> std::io::Result<()> {
        if ifindex == LINK {
            // The peer's loop may already be gone at shutdown; a lost datagram is what a link
            // does then too.
            let _ = self.peer.send(Input::LinkState {
                ifindex: LINK,
                src: self.own,
                bytes: payload.to_vec(),
            });
        }
        Ok(())
    }
}

struct NoIgmp;

impl IgmpTx for NoIgmp {
    fn send(&mut self, _: &str, _: Ipv4Addr, _: &IgmpRepr) -> std::io::Result<()> {
        Ok(())
    }
}

struct Router {
    dir: tempfile::TempDir,
    tx: Sender<Input>,
    ctl: Option<CtlServer>,
    thread: Option<JoinHandle<Daemon<RecordingBackend>>>,
}

impl Router {
    /// Ports: link0 (ifindex 10, `link_addr`/24) and lan0 (ifindex 11, `lan_addr`/24).
    fn start(
        router_id: &str,
        link_addr: Ipv4Addr,
        lan_addr: Ipv4Addr,
        (tx, rx): (Sender<Input>, Receiver<Input>),
        peer: Sender<Input>,
    ) -> Router {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fanout.toml");
        std::fs::write(&path, config(router_id)).unwrap();
        let config = Config::load(&path).unwrap();
        let mut backend = RecordingBackend::with_ports(&["link0", "lan0"]);
        backend.ports[0].ipv4 = link_addr;
        backend.ports[1].ipv4 = lan_addr;
        let now = Instant::now();
        let mut daemon = Daemon::new(config, path, backend, now).unwrap();
        assert_eq!(daemon.enable_igmp(Box::new(NoIgmp), now).unwrap(), 1);
        assert_eq!(daemon.linkstate_interfaces().len(), 2);
        daemon
            .enable_linkstate(Box::new(Wire { peer, own: link_addr }), |_| Some(24), 1 << 16, now)
            .unwrap();
        let ctl = CtlServer::start(&dir.path().join("ctl.sock"), tx.clone()).unwrap();
        let thread = std::thread::spawn(move || {
            daemon::run(&mut daemon, &rx, None);
            daemon
        });
        Router { dir, tx, ctl: Some(ctl), thread: Some(thread) }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("ctl.sock")
    }

    fn ask(&self, request: &Request) -> Response {
        ctl::request(&self.socket(), request, Duration::from_secs(10)).unwrap()
    }

    fn show(&self, what: ShowWhat) -> Value {
        self.ask(&Request::Show { what }).into_data().unwrap()
    }

    fn stop(mut self) -> Daemon<RecordingBackend> {
        self.tx.send(Input::Stop).unwrap();
        let d = self.thread.take().unwrap().join().unwrap();
        drop(self.ctl.take());
        d
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = self.tx.send(Input::Stop);
            let _ = t.join();
        }
    }
}

fn fanoutctl(socket: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fanoutctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("run fanoutctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Polls `cond` every 20 ms for at most 5 s.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn full(r: &Router) -> bool {
    let n = r.show(ShowWhat::Neighbors);
    assert_eq!(n["mode"], "linkstate");
    n["neighbors"].as_array().unwrap().iter().any(|x| x["state"] == "full")
}

/// The LSDB as (kind, id, adv_router, seq, checksum), ages left out (they differ by timing).
fn lsdb_instances(r: &Router) -> Vec<(String, String, String, u64, u64)> {
    let d = r.show(ShowWhat::Lsdb);
    let mut v: Vec<_> = d["lsas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["kind"].as_str().unwrap().to_owned(),
                l["id"].as_str().unwrap().to_owned(),
                l["adv_router"].as_str().unwrap().to_owned(),
                l["seq"].as_u64().unwrap(),
                l["checksum"].as_u64().unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn two_daemons_reach_full_agree_and_route() {
    let c1 = bounded(256);
    let c2 = bounded(256);
    let (to1, to2) = (c1.0.clone(), c2.0.clone());
    let lan1 = Ipv4Addr::new(10, 1, 0, 1);
    let lan2 = Ipv4Addr::new(10, 2, 0, 1);
    let r1 = Router::start("1.1.1.1", Ipv4Addr::new(10, 0, 0, 1), lan1, c1, to2);
    let r2 = Router::start("2.2.2.2", Ipv4Addr::new(10, 0, 0, 2), lan2, c2, to1);

    wait_for("both adjacencies Full", || full(&r1) && full(&r2));
    // Reaching Full re-originates each router LSA (after MinLSInterval) with the new link.
    let linked = |r: &Router| {
        let d = r.show(ShowWhat::Lsdb);
        d["lsas"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["kind"] == "router")
            .all(|l| l["links"].as_array().is_some_and(|a| !a.is_empty()))
            && d["lsas"].as_array().unwrap().len() >= 2
    };
    wait_for("equal LSDBs with both routers' links", || {
        linked(&r1) && linked(&r2) && lsdb_instances(&r1) == lsdb_instances(&r2)
    });
    let db = r1.show(ShowWhat::Lsdb);
    assert_eq!(db["router_id"], "1.1.1.1");

    // A member of 239.1.1.1 on R2's LAN (IGMP) becomes a membership LSA that reaches R1.
    let group = Ipv4Addr::new(239, 1, 1, 1);
    r2.tx
        .send(Input::Igmp {
            interface: "lan0".into(),
            src: Ipv4Addr::new(10, 2, 0, 7),
            dst: group,
            msg: IgmpRepr::ReportV2 { group },
        })
        .unwrap();
    wait_for("R2's membership LSA in both LSDBs", || {
        let (a, b) = (lsdb_instances(&r1), lsdb_instances(&r2));
        a == b && a.len() >= 3
    });

    // Data from a sender on R1's LAN: R1 forwards it over the link, R2 onto its LAN.
    let source = Ipv4Addr::new(10, 1, 0, 5);
    r1.tx.send(Input::Punt(Punt { iif: IfIndex(11), source, group })).unwrap();
    r2.tx.send(Input::Punt(Punt { iif: LINK, source, group })).unwrap();
    let spt: Value = r1.ask(&Request::ShowSpt { source, group }).into_data().unwrap();
    assert_eq!(spt["root"], u32::from(Ipv4Addr::new(1, 1, 1, 1)));
    assert!(!spt["installed"].is_null(), "{spt}");

    let (code, out, err) = fanoutctl(&r1.socket(), &["show", "lsdb"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("2.2.2.2") && out.contains("LSAs:"), "{out}");
    let (code, out, err) =
        fanoutctl(&r1.socket(), &["show", "spt", "10.1.0.5", "239.1.1.1", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), spt);
    let (code, _, err) = fanoutctl(&r1.socket(), &["show", "spt", "10.1.0.5"]);
    assert_eq!(code, 2);
    assert!(err.contains("needs a source and a group"), "{err}");
    let (code, out, err) = fanoutctl(&r2.socket(), &["show", "neighbors"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().any(|l| l.starts_with("1.1.1.1") && l.contains("full")), "{out}");

    let d1 = r1.stop();
    let d2 = r2.stop();
    let r1_routes = &d1.backend().routes;
    let r2_routes = &d2.backend().routes;
    // Stop removes the protocol's routes; both installed one on the way.
    assert!(r1_routes.is_empty() && r2_routes.is_empty(), "{r1_routes:?} {r2_routes:?}");
    let installed = |d: &Daemon<RecordingBackend>| {
        d.backend().batches.iter().flatten().any(|u| {
            matches!(u, dataplane_api::MfibUpdate::Install(r)
                if r.group == group && r.source == Some(source) && !r.oifs.is_empty())
        })
    };
    assert!(installed(&d1), "R1 never installed (S,G) with oifs: {:?}", d1.backend().batches);
    assert!(installed(&d2), "R2 never installed (S,G) with oifs: {:?}", d2.backend().batches);
}

#[test]
fn show_spt_request_encoding_is_stable() {
    let req =
        Request::ShowSpt { source: Ipv4Addr::new(10, 1, 0, 5), group: Ipv4Addr::new(239, 1, 1, 1) };
    let text = r#"{"cmd":"show_spt","source":"10.1.0.5","group":"239.1.1.1"}"#;
    assert_eq!(serde_json::to_string(&req).unwrap(), text);
    assert_eq!(serde_json::from_str::<Request>(text).unwrap(), req);
    assert!(serde_json::from_str::<Request>(r#"{"cmd":"show_spt","source":"10.1.0.5"}"#).is_err());
}

#[test]
fn other_modes_refuse_lsdb_and_spt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fanout.toml");
    std::fs::write(&path, "[[interface]]\nname = \"link0\"\n").unwrap();
    let config = Config::load(&path).unwrap();
    let backend = RecordingBackend::with_ports(&["link0"]);
    let mut daemon = Daemon::new(config, path, backend, Instant::now()).unwrap();
    assert!(daemon.linkstate_interfaces().is_empty());
    let (tx, rx) = bounded(4);
    let request =
        Request::ShowSpt { source: Ipv4Addr::new(10, 0, 0, 1), group: Ipv4Addr::new(239, 1, 1, 1) };
    let (rtx, rrx) = bounded(1);
    tx.send(Input::Ctl { request, reply: rtx }).unwrap();
    tx.send(Input::Stop).unwrap();
    daemon::run(&mut daemon, &rx, None);
    let r = rrx.recv().unwrap();
    assert!(!r.ok && r.error.unwrap().contains("routing mode \"static\""));
}

/// The real fanoutd (root): two routers in two namespaces linked by a veth, each with a stub
/// LAN (a veth pair whose peer is the host), routing mode linkstate with fast timers.
///
/// Input: both daemons started; a kernel receiver joins the group on r2's stub (IGMP), a
/// sender on r1's stub sends 100 datagrams.
/// Output: both adjacencies reach Full, the LSDBs are equal (and carry r2's membership LSA),
/// all but the punted first packet at each hop arrive, both daemons exit 0 on SIGTERM.
#[cfg(feature = "daemon")]
mod netns {
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{Duration, Instant};

    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    use serde_json::Value;

    static COUNTER: AtomicU32 = AtomicU32::new(0);

    fn ip(args: &[&str]) {
        let out = Command::new("ip").args(args).output().expect("run ip");
        assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Namespaces and daemons, removed/killed on drop (success or failure).
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

    fn ctl_json(sock: &std::path::Path, what: &str) -> Option<Value> {
        let out = Command::new(env!("CARGO_BIN_EXE_fanoutctl"))
            .arg("--socket")
            .arg(sock)
            .args(["show", what, "--json"])
            .output()
            .ok()?;
        out.status.success().then(|| serde_json::from_slice(&out.stdout).ok()).flatten()
    }

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

    /// (kind, id, adv_router, seq) of every LSA, sorted.
    fn instances(db: &Value) -> Vec<(String, String, String, u64)> {
        let mut v: Vec<_> = db["lsas"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|l| {
                        (
                            l["kind"].to_string(),
                            l["id"].to_string(),
                            l["adv_router"].to_string(),
                            l["seq"].as_u64().unwrap_or(0),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    #[test]
    fn linkstate_between_two_daemons() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root (netns, XDP, AF_XDP)");
            return;
        }
        let id = format!(
            "{:x}{}",
            std::process::id() % 0xfffff,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let ns = [format!("fanls-r1-{id}"), format!("fanls-r2-{id}")];
        let mut guard = Guard(Vec::new(), Vec::new());
        for n in &ns {
            ip(&["netns", "add", n]);
            guard.0.push(n.clone());
        }
        // Link r1:l1 <-> r2:l2 (10.89.12.0/24); stubs r1:s1 (10.89.1.0/24), r2:s2 (10.89.2.0/24).
        let (l1, l2, s1, s2) =
            (format!("k{id}a"), format!("k{id}b"), format!("t{id}a"), format!("t{id}b"));
        let (s1p, s2p) = (format!("{s1}p"), format!("{s2}p"));
        ip(&[
            "-n", &ns[0], "link", "add", &l1, "type", "veth", "peer", "name", &l2, "netns", &ns[1],
        ]);
        ip(&["-n", &ns[0], "link", "add", &s1, "type", "veth", "peer", "name", &s1p]);
        ip(&["-n", &ns[1], "link", "add", &s2, "type", "veth", "peer", "name", &s2p]);
        for (n, dev, addr) in [
            (&ns[0], &l1, "10.89.12.1/24"),
            (&ns[1], &l2, "10.89.12.2/24"),
            (&ns[0], &s1, "10.89.1.1/24"),
            (&ns[1], &s2, "10.89.2.1/24"),
            (&ns[0], &s1p, "10.89.1.2/32"),
            (&ns[1], &s2p, "10.89.2.2/32"),
        ] {
            ip(&["-n", n, "addr", "add", addr, "dev", dev]);
            ip(&["-n", n, "link", "set", dev, "up"]);
        }
        // As in fanoutd_netns.rs: hosts' traffic has a namespace-local source address, and
        // partial checksums do not survive AF_XDP forwarding.
        for (n, devs) in [(&ns[0], [&l1, &s1, &s1p]), (&ns[1], [&l2, &s2, &s2p])] {
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
        for (i, (n, ifaces)) in [(&ns[0], [&l1, &s1]), (&ns[1], [&l2, &s2])].into_iter().enumerate()
        {
            let sock = dir.path().join(format!("r{i}.sock"));
            let cfg = dir.path().join(format!("r{i}.toml"));
            std::fs::write(
                &cfg,
                format!(
                    "[daemon]\ncontrol_socket = \"{}\"\n[routing]\nmode = \"linkstate\"\n\
                     [linkstate]\npreset = \"fast\"\nkey_id = 1\nsecret = \"t\"\n\
                     [[interface]]\nname = \"{}\"\ncost = 5\n\
                     [[interface]]\nname = \"{}\"\nigmp = true\n",
                    sock.display(),
                    ifaces[0],
                    ifaces[1]
                ),
            )
            .unwrap();
            let child = Command::new("ip")
                .args(["netns", "exec", n, env!("CARGO_BIN_EXE_fanoutd"), "--foreground"])
                .arg("--config")
                .arg(&cfg)
                .stdin(Stdio::null())
                .spawn()
                .unwrap();
            guard.1.push(child);
            sockets.push(sock);
        }

        let started = Instant::now();
        for (i, sock) in sockets.iter().enumerate() {
            let mut last = Value::Null;
            let full = wait_for(Duration::from_secs(20), || {
                last = ctl_json(sock, "neighbors").unwrap_or(Value::Null);
                last["neighbors"].as_array().is_some_and(|n| n.iter().any(|n| n["state"] == "full"))
            });
            assert!(full, "router {i} did not reach Full: {last}");
        }
        let full_after = started.elapsed();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let synced = wait_for(Duration::from_secs(10), || {
            a = ctl_json(&sockets[0], "lsdb").map(|d| instances(&d)).unwrap_or_default();
            b = ctl_json(&sockets[1], "lsdb").map(|d| instances(&d)).unwrap_or_default();
            a == b && a.len() >= 2 && a.iter().all(|l| l.3 >= 2)
        });
        assert!(synced, "LSDBs differ:\n{a:?}\n{b:?}");

        // A kernel member on r2's stub: IGMP -> membership LSA -> r1.
        let group = std::net::Ipv4Addr::new(239, 89, 9, 9);
        let netns = |n: &str| std::fs::File::open(format!("/var/run/netns/{n}")).unwrap();
        let ifindex = |n: &str, dev: &str| -> u32 {
            let out = Command::new("ip")
                .args(["-n", n, "-o", "link", "show", "dev", dev])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).split(':').next().unwrap().trim().parse().unwrap()
        };
        let (r2_ns, s2p_index) = (netns(&ns[1]), ifindex(&ns[1], &s2p));
        let (joined_tx, joined_rx) = std::sync::mpsc::channel();
        let receiver = std::thread::spawn(move || -> usize {
            nix::sched::setns(&r2_ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let s =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
            s.set_reuse_address(true).unwrap();
            s.bind(&std::net::SocketAddrV4::new(group, 5000).into()).unwrap();
            s.join_multicast_v4_n(&group, &socket2::InterfaceIndexOrAddress::Index(s2p_index))
                .unwrap();
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
        let member = wait_for(Duration::from_secs(15), || {
            ctl_json(&sockets[0], "lsdb").is_some_and(|d| {
                d["lsas"].as_array().is_some_and(|a| {
                    a.iter().any(|l| l["kind"] == "membership" && l["id"] == group.to_string())
                })
            })
        });
        assert!(member, "r1 never got r2's membership LSA");
        let r1_ns = netns(&ns[0]);
        let sender = std::thread::spawn(move || {
            nix::sched::setns(&r1_ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let src = std::net::Ipv4Addr::new(10, 89, 1, 2);
            let s =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
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
        if received < 98 {
            for sock in &sockets {
                eprintln!("{:?}", ctl_json(sock, "mroute"));
                eprintln!("{:?}", ctl_json(sock, "counters"));
            }
        }
        // The first packet is punted (not forwarded) at each of the two routers.
        assert!(received >= 98, "received {received} of 100");
        eprintln!(
            "linkstate: Full after {full_after:?}; {received} of 100 datagrams crossed two routers"
        );
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
}
