//! Routing mode `linkstate` in fanoutd's event loop, without root: two daemon loops in this
//! process, each with the in-memory `RecordingBackend`, joined by a simulated link that hands
//! every datagram one sends on its link interface to the other's loop (as the raw sockets would).
//! They must reach Full, agree on the LSDB, carry a membership learned through IGMP to the
//! other side, and install the (S,G) route there; ctl answers `show lsdb`, `show neighbors`,
//! `show spt` and fanoutctl renders them.

use std::net::Ipv4Addr;
use std::path::PathBuf;
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

mod common;
use common::fanoutctl;

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
    use std::time::{Duration, Instant};

    use serde_json::Value;

    use crate::common::{privileged, show_json, wait_for, TwoRouters};

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
        if !privileged() {
            return;
        }
        let mut net = TwoRouters::new("fl", [10, 89]);
        net.start(|_, link, stub, sock| {
            format!(
                "[daemon]\ncontrol_socket = \"{}\"\n[routing]\nmode = \"linkstate\"\n\
                 [linkstate]\npreset = \"fast\"\nkey_id = 1\nsecret = \"t\"\n\
                 [[interface]]\nname = \"{link}\"\ncost = 5\n\
                 [[interface]]\nname = \"{stub}\"\nigmp = true\n",
                sock.display(),
            )
        });
        let sockets = [net.socket(0), net.socket(1)];

        let started = Instant::now();
        for (i, sock) in sockets.iter().enumerate() {
            let mut last = Value::Null;
            let full = wait_for(Duration::from_secs(20), || {
                last = show_json(sock, "neighbors").unwrap_or(Value::Null);
                last["neighbors"].as_array().is_some_and(|n| n.iter().any(|n| n["state"] == "full"))
            });
            assert!(full, "router {i} did not reach Full: {last}");
        }
        let full_after = started.elapsed();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let synced = wait_for(Duration::from_secs(10), || {
            a = show_json(&sockets[0], "lsdb").map(|d| instances(&d)).unwrap_or_default();
            b = show_json(&sockets[1], "lsdb").map(|d| instances(&d)).unwrap_or_default();
            a == b && a.len() >= 2 && a.iter().all(|l| l.3 >= 2)
        });
        assert!(synced, "LSDBs differ:\n{a:?}\n{b:?}");

        // A kernel member on r2's stub: IGMP -> membership LSA -> r1.
        let group = std::net::Ipv4Addr::new(239, 89, 9, 9);
        let receiver = net.member(1, group, 5000);
        let member = wait_for(Duration::from_secs(15), || {
            show_json(&sockets[0], "lsdb").is_some_and(|d| {
                d["lsas"].as_array().is_some_and(|a| {
                    a.iter().any(|l| l["kind"] == "membership" && l["id"] == group.to_string())
                })
            })
        });
        assert!(member, "r1 never got r2's membership LSA");
        net.send(0, group, 5000, 100);
        let received = receiver.join().unwrap();
        if received < 98 {
            for sock in &sockets {
                eprintln!("{:?}", show_json(sock, "mroute"));
                eprintln!("{:?}", show_json(sock, "counters"));
            }
        }
        // The first packet is punted (not forwarded) at each of the two routers.
        assert!(received >= 98, "received {received} of 100");
        eprintln!(
            "linkstate: Full after {full_after:?}; {received} of 100 datagrams crossed two routers"
        );
        net.stop();
    }
}
