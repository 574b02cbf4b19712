//! The XDP steering program on crafted frames through BPF_PROG_TEST_RUN (no NIC needed).
//!
//! Needs root (CAP_BPF + CAP_NET_ADMIN); prints "skipped: needs root" otherwise.
//!
//! With no AF_XDP socket in the XSKMAP slot, `bpf_redirect_map(.., XDP_PASS)` returns XDP_PASS:
//! frames the data plane wants fall back to the kernel and are counted `redirect_failed`. That
//! is what most tests assert for "ours" frames; `a_registered_socket_turns_ours_into_redirect`
//! binds a real AF_XDP socket (on a veth in a throwaway namespace) to check XDP_REDIRECT.

use std::net::Ipv4Addr;

use dataplane::bpf::{action, XdpCounters, XdpProgram};
use dataplane::loopback::testing::UdpFrame;
use netns::testnet::{End, TestNet};

const OVERLAY_PORT: u16 = 4790;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

macro_rules! require_root {
    () => {
        if !is_root() {
            eprintln!("skipped: needs root (CAP_BPF + CAP_NET_ADMIN)");
            return;
        }
    };
}

fn eth_header(dst: [u8; 6], ethertype: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(64);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// A minimal IPv4 header (no options) + `payload`, checksum left 0 (the program does not check
/// it; the user-space pipeline does).
fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, frag_off: u16, payload: &[u8]) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0, 1]);
    h.extend_from_slice(&frag_off.to_be_bytes());
    h.extend_from_slice(&[1, proto, 0, 0]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    h.extend_from_slice(payload);
    h
}

fn mcast_mac(group: Ipv4Addr) -> [u8; 6] {
    let o = group.octets();
    [0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]
}

fn frame(dst_mac: [u8; 6], ip: &[u8]) -> Vec<u8> {
    let mut f = eth_header(dst_mac, 0x0800);
    f.extend_from_slice(ip);
    f
}

fn udp(dst_port: u16, len: usize) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&5000u16.to_be_bytes());
    u.extend_from_slice(&dst_port.to_be_bytes());
    u.extend_from_slice(&((8 + len) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend(std::iter::repeat_n(0xab, len));
    u
}

const SRC: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
const GROUP: Ipv4Addr = Ipv4Addr::new(239, 1, 2, 3);
const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);

/// Runs `frame` once and returns the action plus the counter delta it caused.
fn run(prog: &XdpProgram, frame: &[u8]) -> (u32, XdpCounters) {
    let before = prog.counters().expect("read counters");
    let act = prog.test_run(frame).expect("test_run");
    let after = prog.counters().expect("read counters");
    (act, after.since(&before))
}

fn only(field: fn(&mut XdpCounters) -> &mut u64) -> XdpCounters {
    let mut c = XdpCounters { rx_total: 1, ..XdpCounters::default() };
    *field(&mut c) = 1;
    c
}

#[test]
fn multicast_data_falls_back_to_pass_when_no_socket_is_registered() {
    require_root!();
    let prog = XdpProgram::load("test", OVERLAY_PORT).expect("load");
    let f = UdpFrame::multicast(SRC, GROUP, 8, 64).build();
    let (act, delta) = run(&prog, &f);
    assert_eq!(
        act,
        action::PASS,
        "empty XSKMAP slot: bpf_redirect_map falls back to the flags' XDP_PASS"
    );
    assert_eq!(delta, only(|c| &mut c.redirect_failed));
}

#[test]
fn multicast_fragments_are_steered_to_the_data_plane() {
    require_root!();
    let prog = XdpProgram::load("test", OVERLAY_PORT).expect("load");
    // Second fragment (offset 185 * 8 bytes): no UDP header, still multicast data.
    let ip = ipv4(SRC, GROUP, 17, 185, &[0u8; 40]);
    let (act, delta) = run(&prog, &frame(mcast_mac(GROUP), &ip));
    assert_eq!(act, action::PASS);
    assert_eq!(delta, only(|c| &mut c.redirect_failed));
}

#[test]
fn control_traffic_is_passed_to_the_kernel() {
    require_root!();
    let prog = XdpProgram::load("test", OVERLAY_PORT).expect("load");
    // IGMPv2 report: sent *to the group address*, so it must be recognised by protocol.
    let report = ipv4(SRC, GROUP, 2, 0, &[0x16, 0, 0, 0, 239, 1, 2, 3]);
    // DVMRP probe: IGMP type 0x13 to ALL-DVMRP-ROUTERS 224.0.0.4.
    let dvmrp_probe =
        ipv4(SRC, Ipv4Addr::new(224, 0, 0, 4), 2, 0, &[0x13, 0x01, 0, 0, 0, 0, 0x03, 0xff]);
    // Link-local multicast that is not IGMP (e.g. OSPF-like link state, proto 89) and UDP.
    let link_state = ipv4(SRC, Ipv4Addr::new(224, 0, 0, 5), 89, 0, &[0u8; 24]);
    let udp_local = ipv4(SRC, Ipv4Addr::new(224, 0, 0, 251), 17, 0, &udp(5353, 10));
    for (what, ip, dst) in [
        ("IGMP report to the group", report, GROUP),
        ("DVMRP probe", dvmrp_probe, Ipv4Addr::new(224, 0, 0, 4)),
        ("224.0.0.5 link state", link_state, Ipv4Addr::new(224, 0, 0, 5)),
        ("224.0.0.251 UDP", udp_local, Ipv4Addr::new(224, 0, 0, 251)),
    ] {
        let (act, delta) = run(&prog, &frame(mcast_mac(dst), &ip));
        assert_eq!(act, action::PASS, "{what}");
        assert_eq!(delta, only(|c| &mut c.pass_control), "{what}");
    }
}

#[test]
fn unicast_arp_and_other_ports_are_passed() {
    require_root!();
    let prog = XdpProgram::load("test", OVERLAY_PORT).expect("load");
    let me = [0x02, 0, 0, 0, 0, 0x99];
    let mut arp = eth_header([0xff; 6], 0x0806);
    arp.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&[0u8; 20]);
    let unicast_udp = frame(me, &ipv4(SRC, LOCAL, 17, 0, &udp(53, 10)));
    // DVMRP prune/graft are unicast IGMP.
    let dvmrp_prune = frame(me, &ipv4(SRC, LOCAL, 2, 0, &[0x13, 0x07, 0, 0, 0, 0, 0x03, 0xff]));
    let overlay_control = frame(me, &ipv4(SRC, LOCAL, 17, 0, &udp(OVERLAY_PORT + 1, 10)));
    let ipv6 = {
        let mut f = eth_header([0x33, 0x33, 0, 0, 0, 1], 0x86dd);
        f.extend_from_slice(&[0x60; 40]);
        f
    };
    for (what, f) in [
        ("ARP", arp),
        ("unicast UDP", unicast_udp),
        ("DVMRP prune (unicast IGMP)", dvmrp_prune),
        ("overlay control port", overlay_control),
        ("IPv6", ipv6),
    ] {
        let (act, delta) = run(&prog, &f);
        assert_eq!(act, action::PASS, "{what}");
        assert_eq!(delta, only(|c| &mut c.pass_other), "{what}");
    }
}

#[test]
fn overlay_data_port_is_steered_only_when_enabled() {
    require_root!();
    let me = [0x02, 0, 0, 0, 0, 0x99];
    let f = frame(me, &ipv4(SRC, LOCAL, 17, 0, &udp(OVERLAY_PORT, 32)));

    let on = XdpProgram::load("test", OVERLAY_PORT).expect("load");
    let (act, delta) = run(&on, &f);
    assert_eq!(act, action::PASS, "no socket registered: falls back to PASS");
    assert_eq!(delta, only(|c| &mut c.redirect_failed));

    let off = XdpProgram::load("test", 0).expect("load");
    let (act, delta) = run(&off, &f);
    assert_eq!(act, action::PASS);
    assert_eq!(delta, only(|c| &mut c.pass_other), "overlay_port 0 disables overlay steering");

    // A later fragment of an overlay datagram has no UDP header to match: kernel.
    let frag = frame(me, &ipv4(SRC, LOCAL, 17, 100, &udp(OVERLAY_PORT, 32)));
    let (_, delta) = run(&on, &frag);
    assert_eq!(delta, only(|c| &mut c.pass_other));
}

#[test]
fn truncated_and_malformed_frames_fail_open() {
    require_root!();
    let prog = XdpProgram::load("test", OVERLAY_PORT).expect("load");
    let full = UdpFrame::multicast(SRC, GROUP, 8, 64).build();
    let mut bad_ihl = full.clone();
    bad_ihl[14] = 0x44; // IHL 4: shorter than the fixed header
    let mut bad_version = full.clone();
    bad_version[14] = 0x65;
    let mut options_past_end = full[..14 + 24].to_vec();
    options_past_end[14] = 0x4f; // IHL 15 = 60 bytes, only 24 present
    let me = [0x02, 0, 0, 0, 0, 0x99];
    let short_udp = frame(me, &ipv4(SRC, LOCAL, 17, 0, &[0x13, 0x88, 0x12]));
    for (what, f) in [
        // BPF_PROG_TEST_RUN refuses XDP input shorter than an Ethernet header, so the shortest
        // case here is a bare Ethernet header claiming IPv4.
        ("Ethernet only", full[..14].to_vec()),
        ("IPv4 header cut", full[..14 + 10].to_vec()),
        ("IHL < 5", bad_ihl),
        ("version 6 in an IPv4 frame", bad_version),
        ("options past the end", options_past_end),
        ("UDP header cut (overlay candidate)", short_udp),
    ] {
        let (act, delta) = run(&prog, &f);
        assert_eq!(act, action::PASS, "{what}");
        assert_eq!(delta, only(|c| &mut c.pass_malformed), "{what}");
    }
}

#[test]
fn counters_sum_and_clear() {
    require_root!();
    let prog = XdpProgram::load("test", OVERLAY_PORT).expect("load");
    let f = UdpFrame::multicast(SRC, GROUP, 8, 64).build();
    for _ in 0..5 {
        prog.test_run(&f).expect("test_run");
    }
    let c = prog.counters().expect("counters");
    assert_eq!(c.rx_total, 5);
    assert_eq!(c.redirect_failed, 5);
    prog.clear_counters().expect("clear");
    assert_eq!(prog.counters().expect("counters"), XdpCounters::default());
}

/// A namespace with one veth pair (removed on drop with the [`TestNet`]); returns the namespace
/// and the veth end the program is attached to.
fn one_veth(net: &mut TestNet) -> (String, String) {
    let ns = net.add_ns("x").expect("namespace");
    let (dev, peer) = (net.ifname("a").expect("ifname"), net.ifname("b").expect("ifname"));
    net.veth(End::bare(&ns, &dev), End::bare(&ns, &peer)).expect("veth");
    (ns, dev)
}

#[test]
fn a_registered_socket_turns_ours_into_redirect() {
    require_root!();
    let mut net = TestNet::new("bx");
    let (ns, dev) = one_veth(&mut net);
    net.run_in(&ns, || redirect_with_a_registered_socket(&dev)).expect("enter namespace");
}

fn redirect_with_a_registered_socket(dev: &str) {
    use dataplane::xsk::{PortSpec, XskConfig, XskPorts};
    let mut prog = XdpProgram::load(dev, OVERLAY_PORT).expect("load");
    prog.attach(dev, false).expect("attach");
    let ports = XskPorts::open(
        &[PortSpec { name: dev.to_owned(), queue: 0, try_zero_copy: false }],
        XskConfig { frame_count: 64, force_copy: true, batch: 16 },
    )
    .expect("bind an AF_XDP socket");
    let fd = ports.bound(0).expect("bound").fd;
    prog.register_xsk(0, fd).expect("register");

    let mcast = UdpFrame::multicast(SRC, GROUP, 8, 64).build();
    let (act, delta) = run(&prog, &mcast);
    assert_eq!(act, action::REDIRECT);
    assert_eq!(delta, only(|c| &mut c.redirect_mcast));

    let me = [0x02, 0, 0, 0, 0, 0x99];
    let overlay = frame(me, &ipv4(SRC, LOCAL, 17, 0, &udp(OVERLAY_PORT, 32)));
    let (act, delta) = run(&prog, &overlay);
    assert_eq!(act, action::REDIRECT);
    assert_eq!(delta, only(|c| &mut c.redirect_overlay));

    // Control traffic still goes to the kernel with a socket present.
    let report = frame(mcast_mac(GROUP), &ipv4(SRC, GROUP, 2, 0, &[0x16, 0, 0, 0, 239, 1, 2, 3]));
    assert_eq!(run(&prog, &report).0, action::PASS);

    // Emptying the slot restores the fallback.
    prog.unregister_xsk(0).expect("unregister");
    let (act, delta) = run(&prog, &mcast);
    assert_eq!(act, action::PASS);
    assert_eq!(delta, only(|c| &mut c.redirect_failed));
    drop(ports);
    prog.detach().expect("detach");
}

/// The id of the XDP program attached to `dev` in `ns`, if any.
fn attached_prog_id(net: &TestNet, ns: &str, dev: &str) -> Option<u32> {
    let out = net.ip(ns, &["-d", "link", "show", "dev", dev]).expect("ip link show");
    let at = out.find("prog/xdp id ")? + "prog/xdp id ".len();
    out[at..].split_whitespace().next()?.parse().ok()
}

/// A fanoutd killed with SIGKILL leaves its program attached with no process holding it: the
/// next start must take the interface over. A program a live process holds (another fanoutd on
/// the same interface) must not be touched.
#[test]
fn an_orphaned_fanout_program_is_replaced_but_a_held_one_is_not() {
    require_root!();
    let mut net = TestNet::new("bo");
    let (ns, dev) = one_veth(&mut net);
    // `ip` loads and attaches the program and exits: nobody holds it any more.
    let obj = concat!(env!("OUT_DIR"), "/fanout_xdp.bpf.o");
    net.ip(&ns, &["link", "set", "dev", &dev, "xdpdrv", "obj", obj, "sec", "xdp"])
        .expect("attach with ip");
    let orphan = attached_prog_id(&net, &ns, &dev).expect("orphan attached");
    let mut prog = net
        .run_in(&ns, || {
            let mut prog = XdpProgram::load(&dev, OVERLAY_PORT).expect("load");
            prog.attach(&dev, false).expect("the orphan is replaced");
            prog
        })
        .expect("enter namespace");
    let ours = attached_prog_id(&net, &ns, &dev).expect("ours attached");
    assert_ne!(ours, orphan);
    let second = net
        .run_in(&ns, || {
            let mut other = XdpProgram::load(&dev, OVERLAY_PORT).expect("load");
            other.attach(&dev, false).map(|_| ())
        })
        .expect("enter namespace");
    assert!(second.is_err(), "a program held by a live process was replaced");
    assert_eq!(attached_prog_id(&net, &ns, &dev), Some(ours));
    net.run_in(&ns, || prog.detach()).expect("enter namespace").expect("detach");
    assert_eq!(attached_prog_id(&net, &ns, &dev), None);
}
