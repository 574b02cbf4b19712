//! The ctl protocol: the JSON schema is pinned, and fanoutctl is exercised against a running
//! daemon event loop (in-process, over a real unix socket) whose data plane is the in-memory
//! `RecordingBackend`, so this runs without root. The same loop with the AF_XDP backend is
//! tested by tests/fanoutd_netns.rs (root).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use controlplane::config::Config;
use controlplane::ctl::{
    self, ClearWhat, ConfiguredRoute, ControlCounters, CountersData, CtlError, InterfaceCounters,
    InterfaceState, InterfacesData, MrouteData, MrouteEntry, MrouteOif, OverlayData,
    OverlayNeighbor, OverlayRouteEntry, ReloadData, Request, Response, RoutesData, ShowWhat,
};
use controlplane::daemon::backend::RecordingBackend;
use controlplane::daemon::dvmrp::{DvmrpData, DvmrpTx};
use controlplane::daemon::igmp::{IgmpData, IgmpTx};
use controlplane::daemon::tasks::{CtlServer, MetricsServer};
use controlplane::daemon::{self, Daemon, Input};
use crossbeam::channel::{bounded, Sender};
use dataplane_api::MfibUpdate;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use wire::dvmrp::{DvmrpPacket, DvmrpRepr, Message, CAP_GENID, CAP_PRUNE};
use wire::igmp::IgmpRepr;

mod common;
use common::fanoutctl;

// ===== schema =====

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().expect("object").keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

#[test]
fn request_and_response_encoding_is_stable() {
    let cases = [
        (Request::Show { what: ShowWhat::Mroute }, r#"{"cmd":"show","what":"mroute"}"#),
        (Request::Show { what: ShowWhat::Interfaces }, r#"{"cmd":"show","what":"interfaces"}"#),
        (Request::Clear { what: ClearWhat::Counters }, r#"{"cmd":"clear","what":"counters"}"#),
        (Request::Reload, r#"{"cmd":"reload"}"#),
    ];
    for (req, text) in cases {
        assert_eq!(serde_json::to_string(&req).unwrap(), text);
        assert_eq!(serde_json::from_str::<Request>(text).unwrap(), req);
    }
    for what in
        ["interfaces", "mroute", "igmp", "neighbors", "routes", "lsdb", "overlay", "counters"]
    {
        let r: Request =
            serde_json::from_str(&format!(r#"{{"cmd":"show","what":"{what}"}}"#)).unwrap();
        assert!(matches!(r, Request::Show { what: w } if w.as_str() == what));
    }
    assert!(serde_json::from_str::<Request>(r#"{"cmd":"show","what":"mroute","x":1}"#).is_err());
    assert!(serde_json::from_str::<Request>(r#"{"cmd":"reboot"}"#).is_err());
    assert_eq!(
        serde_json::to_string(&Response::error("boom")).unwrap(),
        r#"{"ok":false,"error":"boom"}"#
    );
    assert_eq!(
        serde_json::to_string(&Response::ok(&json!({"a": 1}))).unwrap(),
        r#"{"ok":true,"data":{"a":1}}"#
    );
}

#[test]
fn data_schema_field_names_are_pinned() {
    let iface = InterfaceState {
        name: "veth0".into(),
        ifindex: 3,
        mac: "02:00:00:00:00:01".into(),
        ipv4: Ipv4Addr::new(10, 0, 0, 1),
        xdp_mode: "native".into(),
        bind_mode: "copy".into(),
        queue: 0,
        ttl_threshold: 1,
        rx_packets: 1,
        tx_packets: 2,
        drops: 3,
        state: "up".into(),
    };
    let v = serde_json::to_value(InterfacesData { interfaces: vec![iface] }).unwrap();
    assert_eq!(keys(&v), ["interfaces"]);
    assert_eq!(
        keys(&v["interfaces"][0]),
        [
            "bind_mode",
            "drops",
            "ifindex",
            "ipv4",
            "mac",
            "name",
            "queue",
            "rx_packets",
            "state",
            "ttl_threshold",
            "tx_packets",
            "xdp_mode"
        ]
    );
    assert_eq!(v["interfaces"][0]["ipv4"], "10.0.0.1");

    let oif = MrouteOif { name: "veth1".into(), ttl_threshold: 1 };
    let v = serde_json::to_value(MrouteData {
        routes: vec![MrouteEntry {
            source: None,
            group: Ipv4Addr::new(239, 1, 1, 1),
            iif: "veth0".into(),
            oifs: vec![oif.clone()],
            overlay_next_hops: vec![],
            packets: 0,
            bytes: 0,
        }],
    })
    .unwrap();
    assert_eq!(keys(&v), ["routes"]);
    assert_eq!(
        keys(&v["routes"][0]),
        ["bytes", "group", "iif", "oifs", "overlay_next_hops", "packets", "source"]
    );
    assert_eq!(v["routes"][0]["source"], Value::Null, "(*,G) has source null");
    assert_eq!(keys(&v["routes"][0]["oifs"][0]), ["name", "ttl_threshold"]);

    let v = serde_json::to_value(CountersData {
        interfaces: vec![InterfaceCounters {
            name: "veth0".into(),
            drops: BTreeMap::from([("rpf_fail".into(), 1)]),
            ..InterfaceCounters::default()
        }],
        xdp: BTreeMap::from([("redirected".into(), 1)]),
        control: ControlCounters::default(),
        since_clear_secs: 1,
    })
    .unwrap();
    assert_eq!(keys(&v), ["control", "interfaces", "since_clear_secs", "xdp"]);
    assert_eq!(
        keys(&v["interfaces"][0]),
        ["drops", "name", "punts", "rx_bytes", "rx_packets", "tx_bytes", "tx_packets"]
    );
    assert_eq!(
        keys(&v["control"]),
        [
            "ctl_requests",
            "dvmrp_rejected",
            "igmp_rejected",
            "mfib_errors",
            "mfib_updates",
            "punts_received",
            "reloads_failed",
            "reloads_ok"
        ]
    );

    let v = serde_json::to_value(RoutesData {
        mode: "static".into(),
        routes: vec![ConfiguredRoute {
            source: Some(Ipv4Addr::new(10, 0, 0, 2)),
            group: Ipv4Addr::new(239, 1, 1, 1),
            iif: "veth0".into(),
            oifs: vec!["veth1".into()],
            origin: "static".into(),
        }],
    })
    .unwrap();
    assert_eq!(keys(&v), ["mode", "routes"]);
    assert_eq!(keys(&v["routes"][0]), ["group", "iif", "oifs", "origin", "source"]);

    let v = serde_json::to_value(OverlayData {
        port: 7410,
        routes: vec![OverlayRouteEntry {
            origin: Ipv4Addr::new(10, 0, 0, 1),
            group: Ipv4Addr::new(239, 1, 1, 1),
            from: None,
            deliver: vec![oif],
            next_hops: vec![],
            packets: 0,
            bytes: 0,
        }],
        neighbors: vec![OverlayNeighbor {
            addr: Ipv4Addr::new(10, 0, 0, 2),
            interface: "veth0".into(),
            mac: "02:00:00:00:00:02".into(),
        }],
        // Outside routing mode overlay the key is left out: older clients parse it unchanged.
        protocol: None,
    })
    .unwrap();
    assert_eq!(keys(&v), ["neighbors", "port", "routes"]);
    assert_eq!(
        keys(&v["routes"][0]),
        ["bytes", "deliver", "from", "group", "next_hops", "origin", "packets"]
    );
    assert_eq!(keys(&v["neighbors"][0]), ["addr", "interface", "mac"]);

    let v = serde_json::to_value(ReloadData { routes_installed: 1, routes_removed: 2 }).unwrap();
    assert_eq!(keys(&v), ["routes_installed", "routes_removed"]);
}

// ===== against a running event loop =====

const CONFIG: &str = r#"
[[interface]]
name = "veth0"
[[interface]]
name = "veth1"
ttl_threshold = 4
[[interface]]
name = "veth2"

[[static_route]]
source = "10.1.0.2"
group = "239.1.1.1"
iif = "veth0"
oifs = ["veth1", "veth2"]

[[static_route]]
group = "239.2.2.2"
iif = "veth0"
oifs = ["veth1"]
"#;

/// A daemon loop on a thread with a ctl socket and a metrics listener in a temp dir.
struct Running {
    dir: tempfile::TempDir,
    tx: Sender<Input>,
    ctl: Option<CtlServer>,
    metrics: Option<MetricsServer>,
    thread: Option<JoinHandle<Daemon<RecordingBackend>>>,
}

/// Records IGMP messages the daemon sends.
#[derive(Clone, Default)]
struct IgmpRecorder(Arc<Mutex<Vec<(String, Ipv4Addr, IgmpRepr)>>>);

impl IgmpTx for IgmpRecorder {
    fn send(&mut self, interface: &str, dst: Ipv4Addr, msg: &IgmpRepr) -> std::io::Result<()> {
        self.0.lock().unwrap().push((interface.to_owned(), dst, msg.clone()));
        Ok(())
    }
}

/// Records DVMRP packets the daemon sends (ifindex, destination, encoded message).
#[derive(Clone, Default)]
struct DvmrpRecorder(Arc<Mutex<Vec<SentPacket>>>);

/// (ifindex, destination, encoded message).
type SentPacket = (u32, Ipv4Addr, Vec<u8>);

impl DvmrpTx for DvmrpRecorder {
    fn send(
        &mut self,
        ifindex: dataplane_api::IfIndex,
        dst: Ipv4Addr,
        payload: &[u8],
    ) -> std::io::Result<()> {
        self.0.lock().unwrap().push((ifindex.0, dst, payload.to_vec()));
        Ok(())
    }
}

impl Running {
    fn start() -> Running {
        Running::start_with(CONFIG, None)
    }

    fn start_with(config_text: &str, igmp: Option<IgmpRecorder>) -> Running {
        Running::start_full(config_text, igmp, None)
    }

    fn start_full(
        config_text: &str,
        igmp: Option<IgmpRecorder>,
        dvmrp: Option<DvmrpRecorder>,
    ) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("fanout.toml");
        std::fs::write(&config_path, config_text).unwrap();
        let config = Config::load(&config_path).unwrap();
        let mut backend = RecordingBackend::with_ports(&["veth0", "veth1", "veth2"]);
        backend.counters.interfaces[0].rx_packets = 100;
        backend.counters.interfaces[0].drops.insert("rpf_fail".into(), 7);
        backend.counters.xdp.insert("redirected".into(), 100);
        let mut daemon = Daemon::new(config, config_path, backend, Instant::now()).unwrap();
        if let Some(recorder) = igmp {
            assert_eq!(daemon.enable_igmp(Box::new(recorder), Instant::now()).unwrap(), 1);
        }
        if let Some(recorder) = dvmrp {
            daemon.enable_dvmrp(Box::new(recorder), |_| Some(24), 7, Instant::now());
        }
        let (tx, rx) = bounded(16);
        let ctl = CtlServer::start(&dir.path().join("run/fanoutd.sock"), tx.clone()).unwrap();
        let metrics = MetricsServer::start("127.0.0.1:0".parse().unwrap(), tx.clone()).unwrap();
        let thread = std::thread::spawn(move || {
            daemon::run(&mut daemon, &rx, None);
            daemon
        });
        Running { dir, tx, ctl: Some(ctl), metrics: Some(metrics), thread: Some(thread) }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("run/fanoutd.sock")
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("fanout.toml")
    }

    fn ask(&self, request: &Request) -> Response {
        ctl::request(&self.socket(), request, Duration::from_secs(10)).unwrap()
    }

    fn stop(mut self) -> Daemon<RecordingBackend> {
        self.tx.send(Input::Stop).unwrap();
        let daemon = self.thread.take().unwrap().join().unwrap();
        drop(self.ctl.take());
        drop(self.metrics.take());
        daemon
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = self.tx.send(Input::Stop);
            let _ = t.join();
        }
    }
}

#[test]
fn show_commands_through_fanoutctl() {
    let d = Running::start();
    let sock = d.socket();
    let mode = std::fs::metadata(&sock)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()))
        .unwrap();
    assert_eq!(mode & 0o777, 0o600, "control socket must be root-only");

    let (code, out, err) = fanoutctl(&sock, &["show", "interfaces", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: InterfacesData = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = v.interfaces.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["veth0", "veth1", "veth2"]);
    assert_eq!(v.interfaces[0].rx_packets, 100);
    assert_eq!(v.interfaces[0].drops, 7);
    assert_eq!(v.interfaces[1].ttl_threshold, 4);
    assert!(v.interfaces.iter().all(|i| i.bind_mode == "copy"));

    let (code, out, _) = fanoutctl(&sock, &["show", "mroute"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("(Source, Group)"), "{out}");
    assert!(
        lines[1].starts_with("(10.1.0.2, 239.1.1.1)") && lines[1].contains("veth1(ttl>4) veth2"),
        "{out}"
    );
    assert!(lines[2].starts_with("(*, 239.2.2.2)"), "{out}");
    // Columns align: "Inbound" starts at the same offset in every line.
    let col = lines[0].find("Inbound").unwrap();
    assert!(lines[1..].iter().all(|l| &l[col..col + 5] == "veth0"), "{out}");

    let (code, out, _) = fanoutctl(&sock, &["show", "routes", "--json"]);
    assert_eq!(code, 0);
    let v: RoutesData = serde_json::from_str(&out).unwrap();
    assert_eq!((v.mode.as_str(), v.routes.len()), ("static", 2));

    let (code, out, _) = fanoutctl(&sock, &["show", "counters"]);
    assert_eq!(code, 0);
    assert!(
        out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["veth0", "rpf_fail", "7"]),
        "{out}"
    );

    let (code, _, err) = fanoutctl(&sock, &["show", "igmp"]);
    assert_eq!(code, 1);
    assert!(err.starts_with("fanoutctl: show igmp: IGMP runs on no interface"), "{err}");

    let (code, out, _) = fanoutctl(&sock, &["show", "overlay", "--json"]);
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<OverlayData>(&out).unwrap().port, 7410);

    // Bad requests get an error line, and the connection/daemon survives them.
    let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    s.write_all(b"{\"cmd\":\"bogus\"}\n{\"cmd\":\"show\",\"what\":\"routes\"}\n").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let replies: Vec<Response> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(replies.len(), 2);
    assert!(!replies[0].ok && replies[0].error.as_deref().unwrap().starts_with("bad request"));
    assert!(replies[1].ok);

    let daemon = d.stop();
    assert!(!sock.exists(), "socket removed on stop");
    assert_eq!(daemon.backend().batches.len(), 1, "only the start-up batch");
}

#[test]
fn clear_counters_uses_a_baseline() {
    let d = Running::start();
    let before: CountersData =
        d.ask(&Request::Show { what: ShowWhat::Counters }).into_data().unwrap();
    assert_eq!(before.interfaces[0].rx_packets, 100);
    assert_eq!(before.xdp["redirected"], 100);
    let (code, out, _) = fanoutctl(&d.socket(), &["clear", "counters"]);
    assert_eq!((code, out.as_str()), (0, "cleared counters\n"));
    let after: CountersData =
        d.ask(&Request::Show { what: ShowWhat::Counters }).into_data().unwrap();
    assert_eq!(after.interfaces[0].rx_packets, 0);
    assert_eq!(after.interfaces[0].drops["rpf_fail"], 0);
    assert_eq!(after.xdp["redirected"], 0);
    assert!(after.control.ctl_requests >= 2);
    // Prometheus keeps the raw, monotonic values.
    let metrics = scrape(d.metrics.as_ref().unwrap().addr());
    assert!(
        metrics.contains("fanout_interface_rx_packets_total{interface=\"veth0\"} 100\n"),
        "{metrics}"
    );
    assert!(metrics
        .contains("fanout_interface_drops_total{interface=\"veth0\",reason=\"rpf_fail\"} 7\n"));
    assert!(metrics.contains(
        "fanout_route_packets_total{source=\"10.1.0.2\",group=\"239.1.1.1\",iif=\"veth0\"} 0\n"
    ));
}

fn scrape(addr: std::net::SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.0 200 OK"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    body.to_owned()
}

#[test]
fn metrics_endpoint_rejects_other_paths() {
    let d = Running::start();
    let mut s = TcpStream::connect(d.metrics.as_ref().unwrap().addr()).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.0 404 Not Found"), "{text}");
}

#[test]
fn reload_applies_only_the_difference_and_keeps_running_config_on_errors() {
    let d = Running::start();
    // Change: 239.1.1.1 loses veth2, 239.2.2.2 is removed, 239.3.3.3 is new.
    let new = CONFIG
        .replace("oifs = [\"veth1\", \"veth2\"]", "oifs = [\"veth1\"]")
        .replace("group = \"239.2.2.2\"", "group = \"239.3.3.3\"");
    std::fs::write(d.config_path(), &new).unwrap();
    let (code, out, err) = fanoutctl(&d.socket(), &["reload"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "configuration reloaded: 2 routes installed, 1 removed\n");

    // A broken file: the error names file, line and field; nothing changes.
    std::fs::write(d.config_path(), new.replace("239.3.3.3", "10.3.3.3")).unwrap();
    let (code, _, err) = fanoutctl(&d.socket(), &["reload"]);
    assert_eq!(code, 1);
    let expected_line = new.lines().position(|l| l.contains("239.3.3.3")).unwrap() + 1;
    assert!(
        err.contains(&format!(
            "fanout.toml:{expected_line}:9: static_route[1].group: 10.3.3.3 is not a routable"
        )),
        "{err}"
    );
    // SIGHUP's path (Input::Reload) fails the same way and the loop carries on.
    d.tx.send(Input::Reload).unwrap();

    // Interface changes need a restart.
    std::fs::write(d.config_path(), new.replace("name = \"veth2\"", "name = \"veth9\"")).unwrap();
    let r = d.ask(&Request::Reload);
    assert!(!r.ok && r.error.as_deref().unwrap().contains("the interface list changed"), "{r:?}");

    let mroute: MrouteData = d.ask(&Request::Show { what: ShowWhat::Mroute }).into_data().unwrap();
    let groups: Vec<String> = mroute.routes.iter().map(|r| r.group.to_string()).collect();
    assert_eq!(groups, ["239.1.1.1", "239.3.3.3"]);
    let counters: CountersData =
        d.ask(&Request::Show { what: ShowWhat::Counters }).into_data().unwrap();
    assert_eq!((counters.control.reloads_ok, counters.control.reloads_failed), (1, 3));

    let daemon = d.stop();
    let batches = &daemon.backend().batches;
    assert_eq!(batches.len(), 2, "start-up + one successful reload");
    assert!(matches!(batches[1][0], MfibUpdate::Remove { source: None, .. }));
    assert_eq!(batches[1].len(), 3);
}

/// `[overlay]` keys rotate by reload (the data plane gets the new key set, nothing else
/// changes); any other `[overlay]` change still needs a restart.
#[test]
fn overlay_keys_rotate_by_reload() {
    const K1: &str = "00112233445566778899aabbccddeeff";
    const K2: &str = "ffeeddccbbaa99887766554433221100";
    let with_keys =
        |keys: &str, send: u8| format!("{CONFIG}\n[overlay]\nkeys = [{keys}]\nsend_key = {send}\n");
    let d = Running::start_with(&with_keys(&format!("{{ id = 1, secret = \"{K1}\" }}"), 1), None);
    let both = format!("{{ id = 1, secret = \"{K1}\" }}, {{ id = 2, secret = \"{K2}\" }}");
    std::fs::write(d.config_path(), with_keys(&both, 2)).unwrap();
    let (code, out, err) = fanoutctl(&d.socket(), &["reload"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "configuration reloaded: 0 routes installed, 0 removed\n");
    // Another overlay setting: refused, the rotated keys stay.
    let moved = with_keys(&both, 2).replace("[overlay]\n", "[overlay]\nport = 7500\n");
    std::fs::write(d.config_path(), moved).unwrap();
    let r = d.ask(&Request::Reload);
    assert!(!r.ok && r.error.as_deref().unwrap().contains("[overlay]"), "{r:?}");
    let daemon = d.stop();
    assert_eq!(daemon.backend().overlay_keys, [(vec![1, 2], Some(2))]);
    assert_eq!(daemon.config().overlay.send_key, Some(2));
}

#[test]
fn missing_daemon_is_reported_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("nope.sock");
    let (code, _, err) = fanoutctl(&sock, &["show", "mroute"]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with(&format!("fanoutctl: cannot reach fanoutd at {}: ", sock.display()))
            && err.trim_end().ends_with("(is fanoutd running?)"),
        "{err}"
    );
    assert!(matches!(
        ctl::request(&sock, &Request::Reload, Duration::from_secs(1)),
        Err(CtlError::Connect { .. })
    ));
}

#[test]
fn stale_socket_is_replaced_but_a_live_one_is_not_stolen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fanoutd.sock");
    // A socket file nobody listens on (a crashed daemon's leftover).
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let (tx, _rx) = bounded(1);
    let server = CtlServer::start(&path, tx.clone()).expect("stale socket replaced");
    let second = CtlServer::start(&path, tx);
    assert!(second.unwrap_err().to_string().contains("another fanoutd is already listening"));
    drop(server);
    assert!(!path.exists());
}

#[test]
fn igmp_membership_is_learned_and_shown() {
    let config = CONFIG.replace("name = \"veth1\"\n", "name = \"veth1\"\nigmp = true\n");
    let recorder = IgmpRecorder::default();
    let d = Running::start_with(&config, Some(recorder.clone()));
    // Start-up: the core becomes querier and sends a general query to all-hosts on veth1.
    let sent = recorder.0.lock().unwrap().clone();
    assert!(!sent.is_empty(), "no startup query sent");
    assert!(sent.iter().all(|(i, dst, m)| i == "veth1"
        && *dst == Ipv4Addr::new(224, 0, 0, 1)
        && matches!(m, IgmpRepr::Query(_))));

    let group = Ipv4Addr::new(239, 5, 5, 5);
    d.tx.send(Input::Igmp {
        interface: "veth1".into(),
        src: Ipv4Addr::new(10, 0, 1, 7),
        dst: group,
        msg: IgmpRepr::ReportV2 { group },
    })
    .unwrap();
    let data: IgmpData = d.ask(&Request::Show { what: ShowWhat::Igmp }).into_data().unwrap();
    assert_eq!(data.interfaces.len(), 1);
    let veth1 = &data.interfaces[0];
    assert_eq!((veth1.interface.as_str(), veth1.is_querier), ("veth1", true));
    assert_eq!(veth1.groups.len(), 1);
    assert_eq!(veth1.groups[0].group, group);
    assert_eq!(veth1.groups[0].last_reporter, Some(Ipv4Addr::new(10, 0, 1, 7)));

    let (code, out, err) = fanoutctl(&d.socket(), &["show", "igmp"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("veth1") && l.contains("239.5.5.5") && l.contains("10.0.1.7")),
        "{out}"
    );

    // A report for an interface without IGMP is ignored, not a crash.
    d.tx.send(Input::Igmp {
        interface: "veth0".into(),
        src: Ipv4Addr::new(10, 0, 0, 7),
        dst: group,
        msg: IgmpRepr::ReportV2 { group },
    })
    .unwrap();
    let data: IgmpData = d.ask(&Request::Show { what: ShowWhat::Igmp }).into_data().unwrap();
    assert_eq!(data.interfaces.len(), 1);
}

#[test]
fn dvmrp_mode_neighbors_and_routes_over_ctl() {
    // The same interfaces, routing mode dvmrp, no static routes.
    let config = format!(
        "[routing]\nmode = \"dvmrp\"\n{}",
        &CONFIG[..CONFIG.find("[[static_route]]").unwrap()]
    );
    let recorder = DvmrpRecorder::default();
    let d = Running::start_full(&config, None, Some(recorder.clone()));
    // Start: a probe to 224.0.0.4 on every interface (ifindex 10, 11, 12).
    let sent = recorder.0.lock().unwrap().clone();
    let probed: std::collections::BTreeSet<u32> = sent
        .iter()
        .filter(|(_, dst, _)| *dst == Ipv4Addr::new(224, 0, 0, 4))
        .map(|(i, _, _)| *i)
        .collect();
    assert_eq!(probed, [10, 11, 12].into());
    let probe = DvmrpRepr::parse(&DvmrpPacket::new_checked(&sent[0].2[..]).unwrap()).unwrap();
    assert!(matches!(probe.message, Message::Probe { .. }), "{probe:?}");

    // A neighbour on veth0 (10.0.0.0/24) whose probe lists us: two-way at once.
    let neighbor = Ipv4Addr::new(10, 0, 0, 9);
    let msg = DvmrpRepr {
        capabilities: CAP_PRUNE | CAP_GENID,
        minor: 0xff,
        major: 3,
        message: Message::Probe { generation_id: 42, neighbors: vec![Ipv4Addr::new(10, 0, 0, 1)] },
    };
    d.tx.send(Input::Dvmrp { ifindex: dataplane_api::IfIndex(10), src: neighbor, msg }).unwrap();
    let data: DvmrpData = d.ask(&Request::Show { what: ShowWhat::Neighbors }).into_data().unwrap();
    assert_eq!(data.mode, "dvmrp");
    assert_eq!(data.state.genid, 7);
    assert_eq!(data.state.neighbors.len(), 1);
    assert!(data.state.neighbors[0].two_way && data.state.neighbors[0].addr == neighbor);
    // Connected routes: one per interface subnet.
    assert_eq!(data.state.routes.iter().filter(|r| r.connected).count(), 3);

    let (code, out, err) = fanoutctl(&d.socket(), &["show", "neighbors"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().any(|l| l.starts_with("10.0.0.9") && l.contains("yes")), "{out}");
    let (code, out, _) = fanoutctl(&d.socket(), &["show", "routes"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("Routing mode: dvmrp") && out.contains("10.0.1.0/24"), "{out}");
    let metrics = scrape(d.metrics.as_ref().unwrap().addr());
    assert!(metrics.contains("fanout_protocol_neighbors{protocol=\"dvmrp\"} 1\n"), "{metrics}");
}
