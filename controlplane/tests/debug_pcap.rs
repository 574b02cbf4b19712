//! `fanoutctl debug pcap <iface> <file> <seconds>`: the capture travels over the ctl socket
//! and fanoutctl writes a classic pcap file.
//!
//! Without root (`pcap_file_from_a_recording_backend`): the event loop over the in-memory
//! backend with three known frames; fanoutctl writes them, the file parses, a second capture
//! is refused while one runs, bad arguments are errors naming the problem, an existing file is
//! never overwritten.
//!
//! With root (`pcap_of_what_the_data_plane_forwards`): fanoutd forwarding a numbered stream
//! (S,G) from r0 to r1 (same veth topology as iface_events.rs, without B):
//!
//! ```text
//!   ns S: s0 .2 ── r0 .1 [ns R: fanoutd] r1 .1 ── a1 .2 ns A      10.62.{0,1}.0/24
//! ```
//!
//! Input: a 3 s capture on r1 (TX copies) and a 2 s capture on r0 (received frames only)
//! while 100 and 50 datagrams are sent. Output: each file holds exactly the datagrams sent,
//! as Ethernet/IPv4/UDP to the group, TTL 7 on r1 (forwarded) and 8 on r0 (as received), in
//! sequence order; `tcpdump -r` (when installed) reads the same number of packets.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::time::{Duration, Instant};

use controlplane::config::Config;
use controlplane::ctl::{self, Request};
use controlplane::daemon::backend::{CapturedFrame, RecordingBackend};
use controlplane::daemon::tasks::CtlServer;
use controlplane::daemon::{self, Daemon, Input};
use crossbeam::channel::bounded;

mod common;

/// One parsed pcap record: (seconds, microseconds, captured bytes, original length).
type Record = (u32, u32, Vec<u8>, u32);

/// Parses a classic little-endian microsecond pcap file; checks its global header.
fn parse_pcap(path: &Path) -> Vec<Record> {
    let bytes = std::fs::read(path).expect("read pcap");
    assert!(bytes.len() >= 24, "no global header");
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
    assert_eq!(u32_at(&bytes, 0), 0xa1b2_c3d4, "magic");
    assert_eq!((&bytes[4..6], &bytes[6..8]), (&[2, 0][..], &[4, 0][..]), "version 2.4");
    assert_eq!(u32_at(&bytes, 20), 1, "LINKTYPE_ETHERNET");
    let snaplen = u32_at(&bytes, 16);
    let mut out = Vec::new();
    let mut i = 24;
    while i < bytes.len() {
        assert!(i + 16 <= bytes.len(), "truncated record header at {i}");
        let (sec, usec, incl, orig) = (
            u32_at(&bytes, i),
            u32_at(&bytes, i + 4),
            u32_at(&bytes, i + 8),
            u32_at(&bytes, i + 12),
        );
        assert!(incl <= snaplen && incl <= orig && usec < 1_000_000, "record at {i}");
        let data = bytes[i + 16..i + 16 + incl as usize].to_vec();
        out.push((sec, usec, data, orig));
        i += 16 + incl as usize;
    }
    out
}

#[test]
fn pcap_file_from_a_recording_backend() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("fanout.toml");
    std::fs::write(
        &config_path,
        "[[interface]]\nname = \"veth0\"\n[[interface]]\nname = \"veth1\"\n",
    )
    .expect("write");
    let config = Config::load(&config_path).expect("config");
    let mut backend = RecordingBackend::with_ports(&["veth0", "veth1"]);
    let frame = |n: u8, tx: bool| CapturedFrame {
        time_us: 1_700_000_000_000_000 + u64::from(n) * 1500,
        orig_len: 60,
        tx,
        data: vec![n; 60],
    };
    backend.capture_frames = vec![frame(1, false), frame(2, true), frame(3, false)];
    let mut daemon = Daemon::new(config, config_path, backend, Instant::now()).expect("daemon");
    let (tx, rx) = bounded(16);
    let socket = dir.path().join("fanoutd.sock");
    let ctl_server = CtlServer::start(&socket, tx.clone()).expect("ctl server");
    let thread = std::thread::spawn(move || {
        daemon::run(&mut daemon, &rx, None);
    });

    let file = dir.path().join("veth1.pcap");
    let path = file.to_str().expect("utf-8 path");
    let (code, out, err) =
        common::fanoutctl(&socket, &["debug", "pcap", "veth1", path, "1", "--snaplen", "64"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("3 frames captured on veth1") && out.contains("(2 received, 1 transmitted)"),
        "{out}"
    );
    let records = parse_pcap(&file);
    let firsts: Vec<u8> = records.iter().map(|r| r.2[0]).collect();
    assert_eq!(firsts, [1, 2, 3]);
    assert_eq!((records[1].0, records[1].1, records[1].3), (1_700_000_000, 3000, 60));

    // The file exists now: never overwritten.
    let (code, _, err) = common::fanoutctl(&socket, &["debug", "pcap", "veth1", path, "1"]);
    assert_eq!(code, 1);
    assert!(err.contains("File exists"), "{err}");
    assert_eq!(parse_pcap(&file).len(), 3);

    // --no-tx leaves out the transmitted copy.
    let rx_only = dir.path().join("rx.pcap");
    let (code, _, err) = common::fanoutctl(
        &socket,
        &["debug", "pcap", "veth1", rx_only.to_str().unwrap(), "1", "--no-tx"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(parse_pcap(&rx_only).len(), 2);

    // Errors name the problem; a refused capture leaves no file.
    let other = dir.path().join("other.pcap");
    let other_s = other.to_str().unwrap();
    let (code, _, err) = common::fanoutctl(&socket, &["debug", "pcap", "eth7", other_s, "1"]);
    assert_eq!(code, 1);
    assert!(err.contains("eth7 is not one of fanoutd's interfaces"), "{err}");
    assert!(!other.exists());
    let (code, _, err) = common::fanoutctl(&socket, &["debug", "pcap", "veth1", other_s, "301"]);
    assert_eq!(code, 2, "clap refuses it: {err}");
    let ask = |r: &Request| ctl::request(&socket, r, Duration::from_secs(5)).expect("request");
    let start =
        Request::PcapStart { interface: "veth0".into(), seconds: 5, snaplen: None, tx: true };
    let first = ask(&start);
    assert!(first.ok, "{first:?}");
    let second = ask(&start);
    assert!(
        second.error.as_deref().is_some_and(|e| e.contains("is running; one at a time")),
        "{second:?}"
    );
    let id = first.data.as_ref().and_then(|d| d["id"].as_u64()).expect("id");
    assert!(ask(&Request::PcapStop { id }).ok);
    assert!(!ask(&Request::PcapRead { id }).ok, "a stopped capture is gone");
    let bad =
        ask(&Request::PcapStart { interface: "veth0".into(), seconds: 0, snaplen: None, tx: true });
    assert!(bad.error.as_deref().is_some_and(|e| e.contains("seconds must be 1..=300")), "{bad:?}");

    tx.send(Input::Stop).expect("stop");
    thread.join().expect("loop");
    drop(ctl_server);
}

// ===== root: the real data plane =====

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 62, 1, 1);
const PORT: u16 = 6262;
const SRC: Ipv4Addr = Ipv4Addr::new(10, 62, 0, 2);

/// Sends `seqs` to GROUP:PORT from S with TTL 8, one every 5 ms.
fn send(ns: &str, seqs: std::ops::Range<u32>) {
    common::thread_in(ns, move || {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
            .expect("socket");
        s.bind(&SocketAddrV4::new(SRC, 0).into()).expect("bind");
        s.set_multicast_if_v4(&SRC).expect("IP_MULTICAST_IF");
        s.set_multicast_ttl_v4(8).expect("ttl");
        let dst: socket2::SockAddr = SocketAddrV4::new(GROUP, PORT).into();
        let mut payload = [0x5a_u8; 64];
        for seq in seqs {
            payload[..4].copy_from_slice(&seq.to_be_bytes());
            s.send_to(&payload, &dst).expect("send");
            std::thread::sleep(Duration::from_millis(5));
        }
    })
    .join()
    .expect("sender");
}

/// Checks the records are exactly `seqs` in order, as UDP to GROUP:PORT from SRC with `ttl`.
fn check_records(records: &[Record], seqs: std::ops::Range<u32>, ttl: u8, what: &str) {
    let mut got = Vec::new();
    for (_, _, f, orig) in records {
        assert_eq!(*orig as usize, f.len(), "{what}: whole frame captured");
        assert_eq!(&f[12..14], &[0x08, 0x00], "{what}: IPv4 ethertype");
        let ip = &f[14..];
        assert_eq!(ip[9], 17, "{what}: UDP");
        assert_eq!(ip[8], ttl, "{what}: TTL");
        assert_eq!(Ipv4Addr::from(<[u8; 4]>::try_from(&ip[12..16]).unwrap()), SRC);
        assert_eq!(Ipv4Addr::from(<[u8; 4]>::try_from(&ip[16..20]).unwrap()), GROUP);
        // Multicast MAC of the group (01:00:5e + low 23 bits).
        assert_eq!(&f[0..6], &[0x01, 0x00, 0x5e, 62, 1, 1], "{what}: destination MAC");
        let udp = &ip[20..];
        assert_eq!(u16::from_be_bytes([udp[2], udp[3]]), PORT);
        got.push(u32::from_be_bytes([udp[8], udp[9], udp[10], udp[11]]));
    }
    assert_eq!(got, seqs.collect::<Vec<_>>(), "{what}: every datagram once, in order");
}

fn tcpdump_count(file: &Path) -> Option<usize> {
    let out = std::process::Command::new("tcpdump").arg("-nr").arg(file).output().ok()?;
    assert!(out.status.success(), "tcpdump -r failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("debug_pcap: tcpdump -nr: {}", text.lines().next().unwrap_or("(nothing)"));
    Some(text.lines().filter(|l| l.contains(&GROUP.to_string())).count())
}

#[cfg(feature = "daemon")]
#[test]
fn pcap_of_what_the_data_plane_forwards() {
    if !common::privileged() {
        return;
    }
    let mut net = common::TestNet::new("pc");
    let ns = ["s", "r", "a"].map(|n| net.add_ns(n).expect("namespace"));
    let [s0, r0, r1, a1] = ["s0", "r0", "r1", "a1"].map(|d| net.ifname(d).expect("ifname"));
    net.veth(
        common::End::new(&ns[1], &r0, "10.62.0.1/24"),
        common::End::new(&ns[0], &s0, "10.62.0.2/24"),
    )
    .expect("veth");
    net.veth(
        common::End::new(&ns[1], &r1, "10.62.1.1/24"),
        common::End::new(&ns[2], &a1, "10.62.1.2/24"),
    )
    .expect("veth");
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("fanoutd.sock");
    let config = format!(
        "[daemon]\ncontrol_socket = \"{}\"\n[[interface]]\nname = \"{r0}\"\n[[interface]]\nname = \"{r1}\"\n\
         [[static_route]]\nsource = \"{SRC}\"\ngroup = \"{GROUP}\"\niif = \"{r0}\"\noifs = [\"{r1}\"]\n",
        socket.display()
    );
    let path = dir.path().join("fanout.toml");
    std::fs::write(&path, config).expect("config");
    let mut daemon = common::start_fanoutd(&net, &ns[1], &path);
    assert!(common::wait_up(&socket), "fanoutd did not come up");

    for (iface, secs, extra, seqs, ttl) in
        [(&r1, "3", None, 0..100, 7), (&r0, "2", Some("--no-tx"), 1000..1050, 8)]
    {
        let file = dir.path().join(format!("{iface}.pcap"));
        let mut args = vec!["debug", "pcap", iface.as_str(), file.to_str().unwrap(), secs];
        args.extend(extra);
        let capture = {
            let socket = socket.clone();
            let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
            std::thread::spawn(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                common::fanoutctl(&socket, &args)
            })
        };
        // Capture ids count from 1. Reading before any traffic is sent takes no frames
        // from fanoutctl.
        let id = u64::from(iface == &r0) + 1;
        let running = common::wait_for(Duration::from_secs(5), || {
            ctl::request(&socket, &Request::PcapRead { id }, Duration::from_secs(5))
                .is_ok_and(|r| r.ok)
        });
        assert!(running, "capture did not start");
        send(&ns[0], seqs.clone());
        let (code, out, err) = capture.join().expect("fanoutctl");
        assert_eq!(code, 0, "{err}");
        eprintln!("debug_pcap: {}", out.trim());
        let records = parse_pcap(&file);
        check_records(&records, seqs.clone(), ttl, iface);
        if let Some(n) = tcpdump_count(&file) {
            assert_eq!(n, seqs.len(), "tcpdump -r reads every frame");
        }
    }
    common::stop_cleanly(std::slice::from_mut(&mut daemon));
}
