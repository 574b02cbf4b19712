//! Raw-frame injection for robustness tests: an AF_PACKET `SOCK_RAW` sender that writes
//! arbitrary Ethernet frames out of one interface (bounded in count and time, paced), and
//! builders for every class of malformed input the router must survive.
//!
//! Every builder starts from a well-formed frame (Ethernet II + IPv4 with a correct header
//! checksum) and then corrupts exactly one thing, so each class exercises one check of the
//! XDP program or the data-plane pipeline. [`Malformed::expect`] states where the frame must
//! end up: a named data-plane drop reason (`show counters` → `interfaces[].drops`), or one of
//! the XDP program's pass counters (`xdp.pass_*`) for frames the program hands to the kernel
//! (malformed headers fail open, IGMP/DVMRP is control traffic, unicast overlay traffic while
//! overlay steering is off).
//!
//! The testbed crate does not depend on `wire`, so the few headers needed here are written
//! by hand, with the RFC layouts in comments where they are not obvious.
//!
//! Invariants: [`Injector::send_paced`] sends at most `max_count` frames and returns after at
//! most `max_duration`; a frame is counted as sent only when the kernel accepted all of it.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// Upper bound on one paced injection run.
pub const MAX_DURATION: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    #[error("interface {0} not found in this namespace")]
    NoInterface(String),
    #[error("{what} failed: {source}")]
    Sys { what: &'static str, source: std::io::Error },
    #[error("frame of {0} bytes is outside 1..=9000")]
    BadFrameLen(usize),
    #[error("rate must be at least 1 frame/s")]
    ZeroRate,
    #[error("duration {0:?} exceeds the {MAX_DURATION:?} limit")]
    TooLong(Duration),
    #[error("the kernel took {sent} of {len} bytes of a frame")]
    Short { sent: usize, len: usize },
}

fn sys(what: &'static str) -> impl FnOnce(std::io::Error) -> InjectError {
    move |source| InjectError::Sys { what, source }
}

/// An AF_PACKET raw socket bound to one interface of the calling thread's namespace.
#[derive(Debug)]
pub struct Injector {
    fd: OwnedFd,
}

/// What a paced run did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InjectReport {
    pub sent: u64,
    pub elapsed: Duration,
    /// Times the kernel reported a full queue and the frame was retried.
    pub retries: u64,
}

impl Injector {
    /// Opens the socket on `ifname` (in the namespace of the calling thread; needs
    /// CAP_NET_RAW). The socket bypasses the qdisc so frames leave in the order given.
    pub fn open(ifname: &str) -> Result<Injector, InjectError> {
        let ifindex = nix::net::if_::if_nametoindex(ifname)
            .map_err(|_| InjectError::NoInterface(ifname.to_owned()))?;
        // SAFETY: plain socket(2) call; the result is checked before wrapping it.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(sys("socket(AF_PACKET) (needs CAP_NET_RAW)")(
                std::io::Error::last_os_error(),
            ));
        }
        // SAFETY: `raw` is a fresh, valid descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let one: libc::c_int = 1;
        // SAFETY: valid fd, option value points to a live c_int of the given size.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                (&raw const one).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(sys("setsockopt(PACKET_QDISC_BYPASS)")(std::io::Error::last_os_error()));
        }
        // SAFETY: an all-zero sockaddr_ll is valid; the fields that matter are set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        // Protocol 0 on a send-only socket: nothing is queued to it on receive.
        sll.sll_protocol = 0;
        sll.sll_ifindex =
            i32::try_from(ifindex).map_err(|_| InjectError::NoInterface(ifname.to_owned()))?;
        // SAFETY: `sll` is a properly initialised sockaddr_ll and the length matches its size.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const sll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(sys("bind(AF_PACKET)")(std::io::Error::last_os_error()));
        }
        Ok(Injector { fd })
    }

    /// Sends one frame as is. Returns `Ok(false)` when the queue was full (not sent).
    pub fn send(&self, frame: &[u8]) -> Result<bool, InjectError> {
        if frame.is_empty() || frame.len() > 9000 {
            return Err(InjectError::BadFrameLen(frame.len()));
        }
        // SAFETY: the pointer and length describe `frame`, which outlives the call.
        let r = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOBUFS | libc::EAGAIN | libc::EINTR) => Ok(false),
                _ => Err(sys("send(AF_PACKET)")(e)),
            };
        }
        let sent = r as usize;
        if sent != frame.len() {
            return Err(InjectError::Short { sent, len: frame.len() });
        }
        Ok(true)
    }

    /// Sends `next(i)` for i = 0.. at `rate_pps`, until `max_count` frames went out or
    /// `max_duration` passed. A frame the kernel refused for lack of buffers is retried.
    pub fn send_paced(
        &self,
        max_count: u64,
        rate_pps: u64,
        max_duration: Duration,
        mut next: impl FnMut(u64) -> Vec<u8>,
    ) -> Result<InjectReport, InjectError> {
        if rate_pps == 0 {
            return Err(InjectError::ZeroRate);
        }
        if max_duration > MAX_DURATION {
            return Err(InjectError::TooLong(max_duration));
        }
        let start = Instant::now();
        let mut sent = 0u64;
        let mut retries = 0u64;
        'frames: while sent < max_count {
            let due = Duration::from_secs_f64(sent as f64 / rate_pps as f64);
            let elapsed = start.elapsed();
            if elapsed >= max_duration {
                break;
            }
            let wait = due.saturating_sub(elapsed).min(max_duration.saturating_sub(elapsed));
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
            let frame = next(sent);
            while !self.send(&frame)? {
                retries += 1;
                if start.elapsed() >= max_duration {
                    break 'frames;
                }
                std::thread::yield_now();
            }
            sent += 1;
        }
        Ok(InjectReport { sent, elapsed: start.elapsed(), retries })
    }
}

/// Addresses the builders use. `src_*` is the injecting host, `router_*` the router port it is
/// cabled to; `group` has a route from `src_ip` on that port, `unrouted_group` has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoints {
    pub src_mac: [u8; 6],
    pub src_ip: Ipv4Addr,
    pub router_mac: [u8; 6],
    pub router_ip: Ipv4Addr,
    pub group: Ipv4Addr,
    pub unrouted_group: Ipv4Addr,
    /// The router's overlay UDP data port (7410 unless configured).
    pub overlay_port: u16,
}

/// Where a frame is expected to be accounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Dropped by the data plane with this `DropReason` name, exactly once per frame.
    Drop(&'static str),
    /// Passed to the kernel by the XDP program, bumping this `xdp` counter; the data plane
    /// counts nothing.
    XdpPass(&'static str),
}

/// A class of malformed input. Each builds one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Malformed {
    /// Ethernet + 10 bytes of an IPv4 header.
    TruncatedIpHeader,
    /// IPv4 EtherType, version nibble 6.
    BadVersion,
    /// IHL 4 (16-byte header).
    IhlTooSmall,
    /// IHL 15 (60 bytes) but only 28 bytes of IP in the frame.
    IhlBeyondFrame,
    /// Total length 1400 in a 44-byte datagram.
    TotalLenBeyondFrame,
    /// Total length 12, below the 20-byte header.
    TotalLenBelowHeader,
    /// A routed (S,G) packet with its header checksum off by one.
    BadChecksum,
    /// IHL 15 with 40 bytes of options, total length 40: options run past the datagram.
    OptionsPastTotalLen,
    /// IHL 15, checksum valid, options that lie about their lengths (LSRR with length 255,
    /// a timestamp with pointer 0, then garbage), to a group without a route.
    OptionsGarbage,
    /// Routed (S,G), TTL 0.
    Ttl0,
    /// Routed (S,G), TTL 1.
    Ttl1,
    /// Routed (S,G), More Fragments set.
    FragmentFirst,
    /// Routed (S,G), fragment offset 1480 bytes.
    FragmentLater,
    /// IGMP message of 4 bytes to 224.0.0.22.
    IgmpTruncated,
    /// IGMPv3 report claiming 200 group records, carrying one.
    IgmpLyingRecordCount,
    /// IGMPv3 report whose one record claims 1000 sources and carries 2.
    IgmpLyingSourceCount,
    /// IGMPv2 report with a wrong checksum.
    IgmpBadChecksum,
    /// DVMRP report (IGMP type 0x13, code 2) with a non-contiguous mask 255.0.255.0.
    DvmrpBadMask,
    /// DVMRP report with metric 0 and metric 127 (above infinity 32).
    DvmrpBadMetric,
    /// DVMRP report cut short in the middle of a mask.
    DvmrpTruncated,
    /// UDP to the router's overlay port with a 6-byte overlay header.
    OverlayShortHeader,
    /// Overlay header with A = 1 and a garbage tag (key id 9).
    OverlayBadAuth,
    /// Overlay header whose inner datagram's IHL/total length lie.
    OverlayBadInnerLength,
}

impl Malformed {
    pub const ALL: [Malformed; 23] = [
        Malformed::TruncatedIpHeader,
        Malformed::BadVersion,
        Malformed::IhlTooSmall,
        Malformed::IhlBeyondFrame,
        Malformed::TotalLenBeyondFrame,
        Malformed::TotalLenBelowHeader,
        Malformed::BadChecksum,
        Malformed::OptionsPastTotalLen,
        Malformed::OptionsGarbage,
        Malformed::Ttl0,
        Malformed::Ttl1,
        Malformed::FragmentFirst,
        Malformed::FragmentLater,
        Malformed::IgmpTruncated,
        Malformed::IgmpLyingRecordCount,
        Malformed::IgmpLyingSourceCount,
        Malformed::IgmpBadChecksum,
        Malformed::DvmrpBadMask,
        Malformed::DvmrpBadMetric,
        Malformed::DvmrpTruncated,
        Malformed::OverlayShortHeader,
        Malformed::OverlayBadAuth,
        Malformed::OverlayBadInnerLength,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Malformed::TruncatedIpHeader => "truncated_ip_header",
            Malformed::BadVersion => "bad_version",
            Malformed::IhlTooSmall => "ihl_too_small",
            Malformed::IhlBeyondFrame => "ihl_beyond_frame",
            Malformed::TotalLenBeyondFrame => "total_len_beyond_frame",
            Malformed::TotalLenBelowHeader => "total_len_below_header",
            Malformed::BadChecksum => "bad_checksum",
            Malformed::OptionsPastTotalLen => "options_past_total_len",
            Malformed::OptionsGarbage => "options_garbage",
            Malformed::Ttl0 => "ttl0",
            Malformed::Ttl1 => "ttl1",
            Malformed::FragmentFirst => "fragment_first",
            Malformed::FragmentLater => "fragment_later",
            Malformed::IgmpTruncated => "igmp_truncated",
            Malformed::IgmpLyingRecordCount => "igmp_lying_record_count",
            Malformed::IgmpLyingSourceCount => "igmp_lying_source_count",
            Malformed::IgmpBadChecksum => "igmp_bad_checksum",
            Malformed::DvmrpBadMask => "dvmrp_bad_mask",
            Malformed::DvmrpBadMetric => "dvmrp_bad_metric",
            Malformed::DvmrpTruncated => "dvmrp_truncated",
            Malformed::OverlayShortHeader => "overlay_short_header",
            Malformed::OverlayBadAuth => "overlay_bad_auth",
            Malformed::OverlayBadInnerLength => "overlay_bad_inner_length",
        }
    }

    /// Where the frame must be counted, given whether the router steers overlay traffic to
    /// the data plane (it does not in routing mode `static`).
    pub fn expect(self, overlay_steering: bool) -> Expect {
        match self {
            // The XDP program's parse_iphdr rejects these and fails open to the kernel.
            Malformed::TruncatedIpHeader
            | Malformed::BadVersion
            | Malformed::IhlTooSmall
            | Malformed::IhlBeyondFrame => Expect::XdpPass("pass_malformed"),
            Malformed::TotalLenBeyondFrame
            | Malformed::TotalLenBelowHeader
            | Malformed::OptionsPastTotalLen => Expect::Drop("bad_ip_header"),
            Malformed::BadChecksum => Expect::Drop("bad_checksum"),
            // Options are not interpreted by a multicast forwarder; the group has no route.
            Malformed::OptionsGarbage => Expect::Drop("no_route"),
            Malformed::Ttl0 | Malformed::Ttl1 => Expect::Drop("ttl_expired"),
            Malformed::FragmentFirst | Malformed::FragmentLater => Expect::Drop("fragment"),
            Malformed::IgmpTruncated
            | Malformed::IgmpLyingRecordCount
            | Malformed::IgmpLyingSourceCount
            | Malformed::IgmpBadChecksum
            | Malformed::DvmrpBadMask
            | Malformed::DvmrpBadMetric
            | Malformed::DvmrpTruncated => Expect::XdpPass("pass_control"),
            Malformed::OverlayShortHeader if overlay_steering => Expect::Drop("truncated"),
            Malformed::OverlayBadAuth if overlay_steering => Expect::Drop("auth_fail"),
            Malformed::OverlayBadInnerLength if overlay_steering => Expect::Drop("bad_overlay"),
            Malformed::OverlayShortHeader
            | Malformed::OverlayBadAuth
            | Malformed::OverlayBadInnerLength => Expect::XdpPass("pass_other"),
        }
    }

    /// Builds the frame. `seq` varies the payload so frames of one class are not identical.
    pub fn build(self, ep: &Endpoints, seq: u32) -> Vec<u8> {
        let all_igmpv3 = Ipv4Addr::new(224, 0, 0, 22);
        let all_dvmrp = Ipv4Addr::new(224, 0, 0, 4);
        let udp_mc = |ttl: u8| udp_datagram(ep.src_ip, ep.group, ttl, 5001, 5001, &payload(seq));
        match self {
            Malformed::TruncatedIpHeader => {
                let mut f = eth_ip_frame(ep, ep.group, &udp_mc(16));
                f.truncate(14 + 10);
                f
            }
            Malformed::BadVersion => {
                let mut d = udp_mc(16);
                d[0] = 0x65;
                fix_ip_checksum(&mut d);
                eth_ip_frame(ep, ep.group, &d)
            }
            Malformed::IhlTooSmall => {
                let mut d = udp_mc(16);
                d[0] = 0x44;
                fix_ip_checksum(&mut d);
                eth_ip_frame(ep, ep.group, &d)
            }
            Malformed::IhlBeyondFrame => {
                let mut d = udp_mc(16);
                d.truncate(28);
                d[0] = 0x4f;
                set_total_len(&mut d, 28);
                fix_ip_checksum(&mut d);
                eth_ip_frame(ep, ep.group, &d)
            }
            Malformed::TotalLenBeyondFrame => {
                let mut d = udp_mc(16);
                set_total_len(&mut d, 1400);
                fix_ip_checksum(&mut d);
                eth_ip_frame(ep, ep.group, &d)
            }
            Malformed::TotalLenBelowHeader => {
                let mut d = udp_mc(16);
                set_total_len(&mut d, 12);
                fix_ip_checksum(&mut d);
                eth_ip_frame(ep, ep.group, &d)
            }
            Malformed::BadChecksum => {
                let mut d = udp_mc(16);
                d[11] = d[11].wrapping_add(1);
                eth_ip_frame(ep, ep.group, &d)
            }
            Malformed::OptionsPastTotalLen => {
                let mut d = with_options(&udp_mc(16), &garbage_options());
                set_total_len(&mut d, 40);
                fix_ip_checksum(&mut d);
                eth_ip_frame(ep, ep.unrouted_group, &d)
            }
            Malformed::OptionsGarbage => {
                let d = udp_datagram(ep.src_ip, ep.unrouted_group, 16, 5001, 5001, &payload(seq));
                eth_ip_frame(ep, ep.unrouted_group, &with_options(&d, &garbage_options()))
            }
            Malformed::Ttl0 => eth_ip_frame(ep, ep.group, &udp_mc(0)),
            Malformed::Ttl1 => eth_ip_frame(ep, ep.group, &udp_mc(1)),
            Malformed::FragmentFirst => {
                let mut d = udp_mc(16);
                d[6..8].copy_from_slice(&0x2000u16.to_be_bytes());
                fix_ip_checksum(&mut d);
                eth_ip_frame(ep, ep.group, &d)
            }
            Malformed::FragmentLater => {
                let mut d = udp_mc(16);
                d[6..8].copy_from_slice(&(1480u16 / 8).to_be_bytes());
                fix_ip_checksum(&mut d);
                eth_ip_frame(ep, ep.group, &d)
            }
            Malformed::IgmpTruncated => {
                let d = ip_datagram(ep.src_ip, all_igmpv3, 1, 2, &[0x22, 0, 0xdd, 0xff]);
                eth_ip_frame(ep, all_igmpv3, &d)
            }
            Malformed::IgmpLyingRecordCount => {
                // IGMPv3 report (RFC 3376 4.2): type 0x22, reserved, checksum, reserved,
                // number of group records; record: type, aux len, number of sources, group.
                let mut m = vec![0x22, 0, 0, 0, 0, 0];
                m.extend_from_slice(&200u16.to_be_bytes());
                m.extend_from_slice(&[2, 0, 0, 0]);
                m.extend_from_slice(&ep.unrouted_group.octets());
                fix_checksum_at(&mut m, 2);
                let d = ip_datagram(ep.src_ip, all_igmpv3, 1, 2, &m);
                eth_ip_frame(ep, all_igmpv3, &d)
            }
            Malformed::IgmpLyingSourceCount => {
                let mut m = vec![0x22, 0, 0, 0, 0, 0, 0, 1];
                m.extend_from_slice(&[1, 0]);
                m.extend_from_slice(&1000u16.to_be_bytes());
                m.extend_from_slice(&ep.unrouted_group.octets());
                m.extend_from_slice(&[10, 9, 9, 9, 10, 9, 9, 10]);
                fix_checksum_at(&mut m, 2);
                let d = ip_datagram(ep.src_ip, all_igmpv3, 1, 2, &m);
                eth_ip_frame(ep, all_igmpv3, &d)
            }
            Malformed::IgmpBadChecksum => {
                let mut m = vec![0x16, 0, 0, 0];
                m.extend_from_slice(&ep.unrouted_group.octets());
                fix_checksum_at(&mut m, 2);
                m[3] ^= 0x5a;
                let d = ip_datagram(ep.src_ip, ep.unrouted_group, 1, 2, &m);
                eth_ip_frame(ep, ep.unrouted_group, &d)
            }
            Malformed::DvmrpBadMask => {
                // Report body (RFC 1075 / draft-ietf-idmr-dvmrp-v3 4.3): mask's low 3 octets,
                // then (source's significant octets, metric with bit 7 = last) pairs.
                let d = dvmrp_report(ep, &[0, 255, 0, 10, 1, 1, 0x81]);
                eth_ip_frame(ep, all_dvmrp, &d)
            }
            Malformed::DvmrpBadMetric => {
                let d = dvmrp_report(ep, &[255, 255, 0, 10, 1, 1, 0, 10, 1, 2, 0xff]);
                eth_ip_frame(ep, all_dvmrp, &d)
            }
            Malformed::DvmrpTruncated => {
                let d = dvmrp_report(ep, &[255, 255]);
                eth_ip_frame(ep, all_dvmrp, &d)
            }
            Malformed::OverlayShortHeader => {
                let h = [0x10, 0x00, 16, 0, 239, 1];
                overlay_frame(ep, &h)
            }
            Malformed::OverlayBadAuth => {
                let inner = udp_mc(16);
                let mut h = overlay_header(ep, true, 9, seq);
                h.extend_from_slice(&[0xa5; 16]);
                h.extend_from_slice(&inner);
                overlay_frame(ep, &h)
            }
            Malformed::OverlayBadInnerLength => {
                let mut inner = udp_mc(16);
                set_total_len(&mut inner, 9000);
                fix_ip_checksum(&mut inner);
                let mut h = overlay_header(ep, false, 0, seq);
                h.extend_from_slice(&inner);
                overlay_frame(ep, &h)
            }
        }
    }
}

/// An IGMPv3 report to 224.0.0.22 (which every IGMP router's socket receives, unlike a v2
/// report to a group nobody on the router joined) joining `ep.unrouted_group`, with its IGMP
/// checksum off by one: a router must ignore it (RFC 3376 4.2).
pub fn igmpv3_bad_checksum(ep: &Endpoints) -> Vec<u8> {
    let all_igmpv3 = Ipv4Addr::new(224, 0, 0, 22);
    // One CHANGE_TO_EXCLUDE_MODE record without sources: a join.
    let mut m = vec![0x22, 0, 0, 0, 0, 0, 0, 1, 4, 0, 0, 0];
    m.extend_from_slice(&ep.unrouted_group.octets());
    fix_checksum_at(&mut m, 2);
    m[3] = m[3].wrapping_add(1);
    let d = ip_datagram(ep.src_ip, all_igmpv3, 1, 2, &m);
    eth_ip_frame(ep, all_igmpv3, &d)
}

/// A data frame from a pseudo-random source to a pseudo-random group in 239.128.0.0/9 (never
/// a testbed traffic group), for state-exhaustion floods. `state` is a xorshift64 state, so a
/// flood is reproducible from its seed.
pub fn random_source_frame(ep: &Endpoints, state: &mut u64) -> Vec<u8> {
    let mut next = || {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    };
    let r = next();
    let src = Ipv4Addr::new(10, 128 | (r as u8 & 0x7f), (r >> 8) as u8, (r >> 16) as u8 | 1);
    let r = next();
    let group = Ipv4Addr::new(239, 128 | (r as u8 & 0x7f), (r >> 8) as u8, (r >> 16) as u8);
    let d = udp_datagram(src, group, 16, 5001, 5001, &payload(r as u32));
    eth_ip_frame(ep, group, &d)
}

/// RFC 1112 multicast MAC of a group.
pub fn group_mac(g: Ipv4Addr) -> [u8; 6] {
    let o = g.octets();
    [0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]
}

/// Internet checksum (RFC 1071) of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn payload(seq: u32) -> [u8; 16] {
    let mut p = [0u8; 16];
    // Not the traffic generator's magic 0x4654: receivers must never take these for data.
    p[0..2].copy_from_slice(&0xbad0u16.to_be_bytes());
    p[4..8].copy_from_slice(&seq.to_be_bytes());
    p
}

/// IPv4 header (IHL 5, DF, checksum) + `payload`.
fn ip_datagram(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut d = vec![0u8; 20];
    d[0] = 0x45;
    d[6..8].copy_from_slice(&0x4000u16.to_be_bytes());
    d[8] = ttl;
    d[9] = proto;
    d[12..16].copy_from_slice(&src.octets());
    d[16..20].copy_from_slice(&dst.octets());
    d.extend_from_slice(payload);
    let n = d.len();
    set_total_len(&mut d, n);
    fix_ip_checksum(&mut d);
    d
}

fn udp_datagram(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    sport: u16,
    dport: u16,
    data: &[u8],
) -> Vec<u8> {
    let mut u = Vec::with_capacity(8 + data.len());
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    // Checksum 0: "not computed", allowed for UDP over IPv4 (RFC 768).
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(data);
    ip_datagram(src, dst, ttl, 17, &u)
}

fn set_total_len(d: &mut [u8], len: usize) {
    d[2..4].copy_from_slice(&(len as u16).to_be_bytes());
}

/// Recomputes the header checksum over IHL*4 bytes (or what the buffer has of them).
fn fix_ip_checksum(d: &mut [u8]) {
    let hl = (usize::from(d[0] & 0x0f) * 4).clamp(20, d.len());
    fix_checksum_at(&mut d[..hl], 10);
}

fn fix_checksum_at(m: &mut [u8], at: usize) {
    m[at..at + 2].copy_from_slice(&[0, 0]);
    let c = checksum(m);
    m[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// 40 bytes of options whose length fields lie: LSRR (type 131) claiming 255 bytes, a
/// timestamp (68) with pointer 0, an unknown option 0xfe with length 1, then 0xff filler.
fn garbage_options() -> [u8; 40] {
    let mut o = [0xffu8; 40];
    o[..3].copy_from_slice(&[131, 255, 4]);
    o[8..12].copy_from_slice(&[68, 12, 0, 0]);
    o[20..22].copy_from_slice(&[0xfe, 1]);
    o
}

/// Inserts `opts` (a multiple of 4 bytes, at most 40) after the fixed header and fixes IHL,
/// total length and checksum.
fn with_options(d: &[u8], opts: &[u8]) -> Vec<u8> {
    let mut out = d[..20].to_vec();
    out.extend_from_slice(opts);
    out.extend_from_slice(&d[20..]);
    out[0] = 0x40 | ((20 + opts.len()) / 4) as u8;
    let n = out.len();
    set_total_len(&mut out, n);
    fix_ip_checksum(&mut out);
    out
}

/// DVMRP report to ALL-DVMRP-ROUTERS: IGMP type 0x13, code 2, checksum, reserved,
/// capabilities, minor 0xff, major 3, then `body`.
fn dvmrp_report(ep: &Endpoints, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0x13, 2, 0, 0, 0, 0x0e, 0xff, 3];
    m.extend_from_slice(body);
    fix_checksum_at(&mut m, 2);
    ip_datagram(ep.src_ip, Ipv4Addr::new(224, 0, 0, 4), 1, 2, &m)
}

fn overlay_header(ep: &Endpoints, auth: bool, key_id: u8, seq: u32) -> Vec<u8> {
    let mut h = vec![0x10, if auth { 0x80 } else { 0 }, 16, key_id];
    h.extend_from_slice(&ep.group.octets());
    h.extend_from_slice(&ep.src_ip.octets());
    h.extend_from_slice(&seq.to_be_bytes());
    h
}

fn overlay_frame(ep: &Endpoints, overlay: &[u8]) -> Vec<u8> {
    let d = udp_datagram(ep.src_ip, ep.router_ip, 64, ep.overlay_port, ep.overlay_port, overlay);
    let mut f = Vec::with_capacity(14 + d.len());
    f.extend_from_slice(&ep.router_mac);
    f.extend_from_slice(&ep.src_mac);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    f.extend_from_slice(&d);
    f
}

/// Ethernet II to the group's MAC (or the router's for unicast) + `datagram`.
fn eth_ip_frame(ep: &Endpoints, dst: Ipv4Addr, datagram: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + datagram.len());
    f.extend_from_slice(&if dst.is_multicast() { group_mac(dst) } else { ep.router_mac });
    f.extend_from_slice(&ep.src_mac);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    f.extend_from_slice(datagram);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep() -> Endpoints {
        Endpoints {
            src_mac: [2, 0, 0, 0, 0, 1],
            src_ip: Ipv4Addr::new(10, 0, 0, 1),
            router_mac: [2, 0, 0, 0, 0, 2],
            router_ip: Ipv4Addr::new(10, 0, 0, 2),
            group: Ipv4Addr::new(239, 1, 1, 1),
            unrouted_group: Ipv4Addr::new(239, 9, 9, 9),
            overlay_port: 7410,
        }
    }

    fn ip(f: &[u8]) -> &[u8] {
        &f[14..]
    }

    #[test]
    fn valid_base_datagram_checks_out() {
        let d = udp_datagram(ep().src_ip, ep().group, 16, 1, 2, &payload(0));
        assert_eq!(checksum(&d[..20]), 0);
        assert_eq!(usize::from(u16::from_be_bytes([d[2], d[3]])), d.len());
    }

    #[test]
    fn igmpv3_bad_checksum_is_only_wrong_in_the_checksum() {
        let f = igmpv3_bad_checksum(&ep());
        let d = ip(&f);
        assert_eq!(checksum(&d[..20]), 0, "IPv4 header checksum stays valid");
        assert_eq!(&d[16..20], &[224, 0, 0, 22]);
        let mut m = d[20..].to_vec();
        assert_ne!(checksum(&m), 0);
        m[3] = m[3].wrapping_sub(1);
        assert_eq!(checksum(&m), 0, "one off from a valid checksum");
        assert_eq!(&m[12..16], &[239, 9, 9, 9]);
    }

    // Each class corrupts the one thing its name says and keeps the rest valid, so the
    // frame reaches the check it targets.
    #[test]
    fn each_class_corrupts_what_it_says() {
        let e = ep();
        let b = |m: Malformed| m.build(&e, 7);
        assert_eq!(b(Malformed::TruncatedIpHeader).len(), 24);
        assert_eq!(ip(&b(Malformed::BadVersion))[0] >> 4, 6);
        assert_eq!(ip(&b(Malformed::IhlTooSmall))[0] & 0xf, 4);
        let f = b(Malformed::IhlBeyondFrame);
        assert!(usize::from(ip(&f)[0] & 0xf) * 4 > ip(&f).len());
        let f = b(Malformed::TotalLenBeyondFrame);
        assert_eq!(checksum(&ip(&f)[..20]), 0, "checksum must stay valid");
        assert!(usize::from(u16::from_be_bytes([ip(&f)[2], ip(&f)[3]])) > ip(&f).len());
        let f = b(Malformed::TotalLenBelowHeader);
        assert_eq!(checksum(&ip(&f)[..20]), 0);
        assert!(u16::from_be_bytes([ip(&f)[2], ip(&f)[3]]) < 20);
        assert_ne!(checksum(&ip(&b(Malformed::BadChecksum))[..20]), 0);
        let f = b(Malformed::OptionsPastTotalLen);
        assert_eq!(checksum(&ip(&f)[..60]), 0);
        assert_eq!(u16::from_be_bytes([ip(&f)[2], ip(&f)[3]]), 40);
        let f = b(Malformed::OptionsGarbage);
        assert_eq!(ip(&f)[0], 0x4f);
        assert_eq!(checksum(&ip(&f)[..60]), 0);
        assert_eq!(usize::from(u16::from_be_bytes([ip(&f)[2], ip(&f)[3]])), ip(&f).len());
        assert_eq!(ip(&b(Malformed::Ttl0))[8], 0);
        assert_eq!(ip(&b(Malformed::Ttl1))[8], 1);
        for m in [Malformed::FragmentFirst, Malformed::FragmentLater] {
            let f = b(m);
            assert_eq!(checksum(&ip(&f)[..20]), 0, "{m:?}");
            assert_ne!(u16::from_be_bytes([ip(&f)[6], ip(&f)[7]]) & 0x3fff, 0, "{m:?}");
        }
        // IGMP classes: valid IPv4, protocol 2; only IgmpBadChecksum has a bad IGMP checksum.
        for m in [
            Malformed::IgmpTruncated,
            Malformed::IgmpLyingRecordCount,
            Malformed::IgmpLyingSourceCount,
            Malformed::IgmpBadChecksum,
            Malformed::DvmrpBadMask,
            Malformed::DvmrpBadMetric,
            Malformed::DvmrpTruncated,
        ] {
            let f = b(m);
            assert_eq!(checksum(&ip(&f)[..20]), 0, "{m:?}");
            assert_eq!(ip(&f)[9], 2, "{m:?}");
            let igmp_ok = checksum(&ip(&f)[20..]) == 0;
            assert_eq!(igmp_ok, m != Malformed::IgmpBadChecksum, "{m:?}");
        }
        let f = b(Malformed::OverlayBadAuth);
        assert_eq!(&f[0..6], &e.router_mac);
        assert_eq!(u16::from_be_bytes([ip(&f)[22], ip(&f)[23]]), 7410);
        assert_eq!(ip(&f)[28 + 1] & 0x80, 0x80);
    }

    #[test]
    fn every_class_has_a_distinct_name_and_an_expectation() {
        let mut names: Vec<_> = Malformed::ALL.iter().map(|m| m.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Malformed::ALL.len());
        assert_eq!(Malformed::OverlayBadAuth.expect(false), Expect::XdpPass("pass_other"));
        assert_eq!(Malformed::OverlayBadAuth.expect(true), Expect::Drop("auth_fail"));
    }

    #[test]
    fn random_frames_avoid_traffic_groups_and_vary() {
        let e = ep();
        let mut s = 0x1234_5678_9abc_def0;
        let a = random_source_frame(&e, &mut s);
        let b = random_source_frame(&e, &mut s);
        assert_ne!(a[26..34], b[26..34]);
        for f in [a, b] {
            assert_eq!(f[30], 239);
            assert!(f[31] >= 128);
            assert_eq!(checksum(&f[14..34]), 0);
        }
    }

    #[test]
    fn paced_send_rejects_bad_parameters() {
        // Parameter checks run before anything is sent; they need a real socket to call on.
        let Ok(inj) = Injector::open("lo") else {
            eprintln!("skipped: needs CAP_NET_RAW");
            return;
        };
        assert!(matches!(
            inj.send_paced(1, 0, Duration::from_secs(1), |_| vec![0; 60]),
            Err(InjectError::ZeroRate)
        ));
        assert!(matches!(
            inj.send_paced(1, 1, Duration::from_secs(1000), |_| vec![0; 60]),
            Err(InjectError::TooLong(_))
        ));
        assert!(matches!(inj.send(&[]), Err(InjectError::BadFrameLen(0))));
    }
}
