//! Traffic: a bounded multicast generator and kernel-socket receivers with loss/duplicate/
//! reorder/latency accounting.
//!
//! Packet format (UDP payload, big-endian), at least 16 bytes:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |        magic 0x4654 "FT"      |          group index          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 sequence number (per group, from 0)           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          send time, CLOCK_MONOTONIC nanoseconds (64 bit)      |
//! +                                                               +
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                        zero padding ...                       |
//! ```
//!
//! CLOCK_MONOTONIC is shared by all network namespaces of one machine, so receive time minus
//! send time is the one-way latency (including the receiver's socket queueing).
//!
//! The generator writes whole Ethernet frames on an AF_PACKET socket with PACKET_QDISC_BYPASS
//! and sends them with `sendmmsg` in batches: it costs little CPU per packet, so on a shared
//! machine it can offer more than a router forwards. Frames go to the group's multicast MAC;
//! UDP checksum is 0 (allowed for IPv4), so only the header template changes per group.
//! Invariants: every generator run is bounded by a count and/or a duration (at most
//! [`MAX_DURATION`]); sequence numbers of a group are contiguous from 0 (a partially sent batch
//! is retried, not skipped); `size` is the IPv4 total length (44..=1500).
//!
//! Receivers are ordinary kernel UDP sockets that join the groups with IP_ADD_MEMBERSHIP, so
//! the kernel sends real IGMP reports.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use socket2::{Domain, Protocol, Socket, Type};

use crate::netns::{NetNs, NetNsError};

/// Hard upper bound on any generator or receiver run.
pub const MAX_DURATION: Duration = Duration::from_secs(600);
const MAGIC: u16 = 0x4654;
const HDR: usize = 14 + 20 + 8;
const PAYLOAD_MIN: usize = 16;
/// Smallest IPv4 total length the generator emits.
pub const MIN_SIZE: usize = 20 + 8 + PAYLOAD_MIN;
/// Largest size, the veth MTU.
pub const MAX_SIZE: usize = 1500;
/// Sequence numbers at or above this are counted but not checked for duplicates (bitmap cap).
const SEQ_TRACK_LIMIT: u32 = 1 << 27;

#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    #[error("packet size {0} is outside {MIN_SIZE}..={MAX_SIZE} (size is the IPv4 total length)")]
    BadSize(usize),
    #[error("a generator run needs a bound: give a count, a duration, or both")]
    Unbounded,
    #[error("duration {0:?} exceeds the {MAX_DURATION:?} limit")]
    TooLong(Duration),
    #[error("no groups given")]
    NoGroups,
    #[error("{0} is not a multicast group")]
    NotMulticast(Ipv4Addr),
    #[error("rate must be at least 1 packet/s")]
    ZeroRate,
    #[error("interface {0} not found in this namespace")]
    NoInterface(String),
    #[error("interface {ifname} has no {what} (give it explicitly)")]
    NoAddress { ifname: String, what: &'static str },
    #[error("{what} failed: {source}")]
    Sys { what: &'static str, source: std::io::Error },
    #[error(transparent)]
    NetNs(#[from] NetNsError),
    #[error("receiver thread panicked")]
    Panicked,
}

fn sys(what: &'static str) -> impl FnOnce(std::io::Error) -> TrafficError {
    move |source| TrafficError::Sys { what, source }
}

/// Generator parameters.
#[derive(Debug, Clone, Serialize)]
pub struct SendConfig {
    pub ifname: String,
    /// Source address; default: the interface's first IPv4 address.
    pub src: Option<Ipv4Addr>,
    pub groups: Vec<Ipv4Addr>,
    pub port: u16,
    pub ttl: u8,
    /// IPv4 total length in bytes.
    pub size: usize,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    /// Packets per second over all groups; `None` sends flat out.
    pub rate_pps: Option<u64>,
    pub batch: usize,
}

impl SendConfig {
    pub fn validate(&self) -> Result<(), TrafficError> {
        if !(MIN_SIZE..=MAX_SIZE).contains(&self.size) {
            return Err(TrafficError::BadSize(self.size));
        }
        if self.count.is_none() && self.duration.is_none() {
            return Err(TrafficError::Unbounded);
        }
        if let Some(d) = self.duration.filter(|d| *d > MAX_DURATION) {
            return Err(TrafficError::TooLong(d));
        }
        if self.groups.is_empty() {
            return Err(TrafficError::NoGroups);
        }
        if let Some(g) = self.groups.iter().find(|g| !g.is_multicast()) {
            return Err(TrafficError::NotMulticast(*g));
        }
        if self.rate_pps == Some(0) {
            return Err(TrafficError::ZeroRate);
        }
        Ok(())
    }
}

/// What the generator did.
#[derive(Debug, Clone, Serialize)]
pub struct SendReport {
    pub sent: u64,
    pub per_group: Vec<u64>,
    pub elapsed_s: f64,
    pub pps: f64,
    pub mbps: f64,
    /// Times sendmmsg reported a full queue (ENOBUFS/EAGAIN) and was retried.
    pub retries: u64,
    /// Generator thread CPU time (CLOCK_THREAD_CPUTIME_ID) over the run.
    pub cpu_s: f64,
    pub flat_out: bool,
}

/// CLOCK_MONOTONIC in nanoseconds.
pub fn mono_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; both clock ids used here always exist.
    unsafe { libc::clock_gettime(clock, &raw mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn ip_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = h
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn group_mac(g: Ipv4Addr) -> [u8; 6] {
    let o = g.octets();
    [0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]
}

/// Builds the 42-byte Ethernet+IPv4+UDP header for one group.
fn header_template(
    src_mac: [u8; 6],
    src: Ipv4Addr,
    group: Ipv4Addr,
    port: u16,
    ttl: u8,
    size: usize,
) -> [u8; HDR] {
    let mut h = [0u8; HDR];
    h[0..6].copy_from_slice(&group_mac(group));
    h[6..12].copy_from_slice(&src_mac);
    h[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut h[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(size as u16).to_be_bytes());
    ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes());
    ip[8] = ttl;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&group.octets());
    let c = ip_checksum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let udp = &mut h[34..42];
    udp[0..2].copy_from_slice(&port.to_be_bytes());
    udp[2..4].copy_from_slice(&port.to_be_bytes());
    udp[4..6].copy_from_slice(&((size - 20) as u16).to_be_bytes());
    h
}

/// MAC and first IPv4 address of an interface in the calling thread's namespace.
fn iface_addrs(ifname: &str) -> Result<(Option<[u8; 6]>, Option<Ipv4Addr>), TrafficError> {
    let mut mac = None;
    let mut ip = None;
    for ifa in nix::ifaddrs::getifaddrs()
        .map_err(|e| sys("getifaddrs")(std::io::Error::from(e)))?
        .filter(|i| i.interface_name == ifname)
    {
        let Some(addr) = ifa.address else { continue };
        if let Some(ll) = addr.as_link_addr() {
            if let Some(m) = ll.addr() {
                mac = Some(m);
            }
        } else if let Some(sin) = addr.as_sockaddr_in() {
            ip.get_or_insert(sin.ip());
        }
    }
    Ok((mac, ip))
}

/// Runs the generator in the calling thread's namespace. Blocks until done.
pub fn send(cfg: &SendConfig) -> Result<SendReport, TrafficError> {
    cfg.validate()?;
    let ifindex = nix::net::if_::if_nametoindex(cfg.ifname.as_str())
        .map_err(|_| TrafficError::NoInterface(cfg.ifname.clone()))?;
    let (mac, ip) = iface_addrs(&cfg.ifname)?;
    let mac = mac.ok_or_else(|| TrafficError::NoAddress {
        ifname: cfg.ifname.clone(),
        what: "MAC address",
    })?;
    let src = cfg.src.or(ip).ok_or_else(|| TrafficError::NoAddress {
        ifname: cfg.ifname.clone(),
        what: "IPv4 address",
    })?;

    // SAFETY: plain socket(2) call; the result is checked before wrapping it in an OwnedFd.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(sys("socket(AF_PACKET) (needs CAP_NET_RAW)")(std::io::Error::last_os_error()));
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
    sll.sll_protocol = (libc::ETH_P_IP as u16).to_be();
    sll.sll_ifindex =
        i32::try_from(ifindex).map_err(|_| TrafficError::NoInterface(cfg.ifname.clone()))?;
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

    let frame_len = cfg.size + 14;
    let batch = cfg.batch.clamp(1, 1024);
    let templates: Vec<[u8; HDR]> = cfg
        .groups
        .iter()
        .map(|g| header_template(mac, src, *g, cfg.port, cfg.ttl, cfg.size))
        .collect();
    let mut bufs: Vec<Vec<u8>> = (0..batch).map(|_| vec![0u8; frame_len]).collect();
    let mut iovs: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .map(|iov| {
            // SAFETY: an all-zero mmsghdr is valid (no name, no control data).
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = std::ptr::from_mut(iov);
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();

    let mut per_group = vec![0u64; cfg.groups.len()];
    let mut sent: u64 = 0;
    let mut retries = 0u64;
    let limit = cfg.count.unwrap_or(u64::MAX);
    let deadline_d = cfg.duration.unwrap_or(MAX_DURATION).min(MAX_DURATION);
    let cpu0 = clock_ns(libc::CLOCK_THREAD_CPUTIME_ID);
    let start = Instant::now();
    let mut next_group = 0usize;
    'outer: while sent < limit {
        let elapsed = start.elapsed();
        if elapsed >= deadline_d {
            break;
        }
        let mut n = batch.min((limit - sent).min(batch as u64) as usize);
        if let Some(rate) = cfg.rate_pps {
            let due = (elapsed.as_secs_f64() * rate as f64) as u64 + 1;
            let allowed = due.saturating_sub(sent);
            if allowed == 0 {
                let next_at = Duration::from_secs_f64((sent + 1) as f64 / rate as f64);
                let wait = next_at.saturating_sub(elapsed);
                if wait > Duration::from_micros(200) {
                    std::thread::sleep(wait.saturating_sub(Duration::from_micros(100)));
                } else {
                    std::thread::yield_now();
                }
                continue;
            }
            n = n.min(allowed as usize);
        }
        let now = mono_ns();
        for buf in bufs.iter_mut().take(n) {
            let g = next_group;
            next_group = (next_group + 1) % cfg.groups.len();
            buf[..HDR].copy_from_slice(&templates[g]);
            let p = &mut buf[HDR..HDR + PAYLOAD_MIN];
            p[0..2].copy_from_slice(&MAGIC.to_be_bytes());
            p[2..4].copy_from_slice(&(g as u16).to_be_bytes());
            p[4..8].copy_from_slice(&(per_group[g] as u32).to_be_bytes());
            p[8..16].copy_from_slice(&now.to_be_bytes());
            per_group[g] += 1;
        }
        let mut off = 0;
        while off < n {
            // SAFETY: msgs[off..n] point at iovecs/buffers that live for the whole loop.
            let r = unsafe {
                libc::sendmmsg(fd.as_raw_fd(), msgs[off..].as_mut_ptr(), (n - off) as u32, 0)
            };
            if r < 0 {
                let e = std::io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::ENOBUFS | libc::EAGAIN | libc::EINTR) => {
                        retries += 1;
                        if start.elapsed() >= deadline_d {
                            // Frames built but never sent: do not count them as sent.
                            sent += off as u64;
                            rewind_unsent(&mut per_group, &mut next_group, n - off);
                            break 'outer;
                        }
                        std::thread::yield_now();
                    }
                    _ => return Err(sys("sendmmsg")(e)),
                }
            } else {
                off += r as usize;
            }
        }
        sent += n as u64;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu_s = (clock_ns(libc::CLOCK_THREAD_CPUTIME_ID) - cpu0) as f64 / 1e9;
    Ok(SendReport {
        sent,
        per_group,
        elapsed_s: elapsed,
        pps: sent as f64 / elapsed.max(1e-9),
        mbps: sent as f64 * cfg.size as f64 * 8.0 / elapsed.max(1e-9) / 1e6,
        retries,
        cpu_s,
        flat_out: cfg.rate_pps.is_none(),
    })
}

/// Undoes the per-group accounting of the last `unsent` frames of a batch.
fn rewind_unsent(per_group: &mut [u64], next_group: &mut usize, unsent: usize) {
    let n = per_group.len();
    for _ in 0..unsent {
        *next_group = (*next_group + n - 1) % n;
        per_group[*next_group] -= 1;
    }
}

/// Receiver parameters.
#[derive(Debug, Clone, Serialize)]
pub struct RecvConfig {
    /// Address of the interface to join on (also names the interface).
    pub iface_addr: Ipv4Addr,
    pub groups: Vec<Ipv4Addr>,
    pub port: u16,
    /// Upper bound on the receiver's life.
    pub max_duration: Duration,
    /// After stop is requested, keep reading until the socket is idle this long.
    pub drain: Duration,
}

/// Per-group receive accounting.
#[derive(Debug, Clone, Serialize)]
pub struct GroupRecv {
    pub group: Ipv4Addr,
    /// Distinct sequence numbers received.
    pub received: u64,
    pub duplicates: u64,
    /// Packets that arrived after a higher sequence number.
    pub reordered: u64,
    /// `sent - received` when the sender's count is known, else `max_seq + 1 - received`.
    pub lost: u64,
    pub max_seq: Option<u32>,
    #[serde(skip)]
    seen: Vec<u64>,
}

impl GroupRecv {
    pub fn new(group: Ipv4Addr) -> Self {
        GroupRecv {
            group,
            received: 0,
            duplicates: 0,
            reordered: 0,
            lost: 0,
            max_seq: None,
            seen: Vec::new(),
        }
    }

    fn record(&mut self, seq: u32) {
        let fresh = if seq < SEQ_TRACK_LIMIT {
            let (w, b) = ((seq / 64) as usize, seq % 64);
            if self.seen.len() <= w {
                self.seen.resize(w + 1, 0);
            }
            let fresh = self.seen[w] & (1 << b) == 0;
            self.seen[w] |= 1 << b;
            fresh
        } else {
            true
        };
        if !fresh {
            self.duplicates += 1;
            return;
        }
        self.received += 1;
        match self.max_seq {
            Some(m) if seq < m => self.reordered += 1,
            _ => self.max_seq = Some(seq),
        }
    }

    /// Fills `lost` from the sender's count for this group (or from the highest sequence seen).
    pub fn finish(&mut self, sent: Option<u64>) {
        let expected = sent.unwrap_or_else(|| self.max_seq.map_or(0, |m| u64::from(m) + 1));
        self.lost = expected.saturating_sub(self.received);
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    pub samples: u64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

impl Latency {
    pub fn from_ns(v: &mut [u64]) -> Latency {
        if v.is_empty() {
            return Latency::default();
        }
        v.sort_unstable();
        let pct = |p: f64| {
            let i = ((v.len() as f64 - 1.0) * p).round() as usize;
            v[i] as f64 / 1000.0
        };
        Latency {
            samples: v.len() as u64,
            p50_us: pct(0.50),
            p90_us: pct(0.90),
            p99_us: pct(0.99),
            max_us: v[v.len() - 1] as f64 / 1000.0,
        }
    }
}

/// What one receiver saw.
#[derive(Debug, Clone, Serialize)]
pub struct RecvReport {
    pub groups: Vec<GroupRecv>,
    pub latency: Latency,
    /// Datagrams on the port that were not ours (bad magic, short, unknown group index).
    pub foreign: u64,
    #[serde(skip)]
    pub latencies_ns: Vec<u64>,
}

impl RecvReport {
    pub fn received(&self) -> u64 {
        self.groups.iter().map(|g| g.received).sum()
    }
    pub fn lost(&self) -> u64 {
        self.groups.iter().map(|g| g.lost).sum()
    }
    pub fn duplicates(&self) -> u64 {
        self.groups.iter().map(|g| g.duplicates).sum()
    }
    pub fn reordered(&self) -> u64 {
        self.groups.iter().map(|g| g.reordered).sum()
    }
    /// Applies the sender's per-group counts.
    pub fn finish(&mut self, sent_per_group: Option<&[u64]>) {
        for (i, g) in self.groups.iter_mut().enumerate() {
            g.finish(sent_per_group.and_then(|s| s.get(i).copied()));
        }
    }
}

/// Opens the receiving socket and joins the groups (in the calling thread's namespace).
pub fn open_receiver(cfg: &RecvConfig) -> Result<Socket, TrafficError> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(sys("socket"))?;
    s.set_reuse_address(true).map_err(sys("SO_REUSEADDR"))?;
    // Bursts at flat-out rates overflow the default buffer; root may force a larger one.
    if s.set_recv_buffer_size(8 << 20).is_err() {
        let _ = s.set_recv_buffer_size(1 << 20);
    }
    let _ = force_rcvbuf(&s, 8 << 20);
    s.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, cfg.port).into()).map_err(sys("bind"))?;
    for g in &cfg.groups {
        s.join_multicast_v4(g, &cfg.iface_addr).map_err(sys("IP_ADD_MEMBERSHIP"))?;
    }
    s.set_read_timeout(Some(Duration::from_millis(50))).map_err(sys("SO_RCVTIMEO"))?;
    Ok(s)
}

fn force_rcvbuf(s: &Socket, bytes: i32) -> std::io::Result<()> {
    // SAFETY: valid fd, option value points to a live c_int of the given size.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&raw const bytes).cast(),
            size_of::<i32>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Reads from `sock` until `stop` is set and the socket has been idle for `cfg.drain`, or
/// `cfg.max_duration` passes.
pub fn receive(sock: &Socket, cfg: &RecvConfig, stop: &AtomicBool) -> RecvReport {
    let mut groups: Vec<GroupRecv> = cfg.groups.iter().map(|g| GroupRecv::new(*g)).collect();
    let mut lat = Vec::new();
    let mut foreign = 0u64;
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 2048];
    let start = Instant::now();
    let mut last_rx = Instant::now();
    loop {
        if start.elapsed() > cfg.max_duration {
            break;
        }
        if stop.load(Ordering::Relaxed) && last_rx.elapsed() > cfg.drain {
            break;
        }
        match sock.recv(&mut buf) {
            Ok(n) => {
                let now = mono_ns();
                last_rx = Instant::now();
                // SAFETY: recv initialised the first `n` bytes.
                let data: &[u8] = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast(), n) };
                if n < PAYLOAD_MIN || u16::from_be_bytes([data[0], data[1]]) != MAGIC {
                    foreign += 1;
                    continue;
                }
                let gi = u16::from_be_bytes([data[2], data[3]]) as usize;
                let Some(g) = groups.get_mut(gi) else {
                    foreign += 1;
                    continue;
                };
                let seq = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
                let mut ts = [0u8; 8];
                ts.copy_from_slice(&data[8..16]);
                let sent_at = u64::from_be_bytes(ts);
                let before = g.duplicates;
                g.record(seq);
                if g.duplicates == before && lat.len() < 20_000_000 {
                    lat.push(now.saturating_sub(sent_at));
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(_) => break,
        }
    }
    let latency = Latency::from_ns(&mut lat);
    RecvReport { groups, latency, foreign, latencies_ns: lat }
}

/// A receiver running on its own thread inside a namespace.
#[derive(Debug)]
pub struct ReceiverHandle {
    pub node: String,
    stop: Arc<AtomicBool>,
    thread: Option<ReceiverThread>,
}

type ReceiverThread = std::thread::JoinHandle<Result<Result<RecvReport, TrafficError>, NetNsError>>;

/// Starts a receiver inside `ns`; returns once the socket is bound and the groups are joined.
pub fn start_receiver(
    ns: &NetNs,
    node: &str,
    cfg: RecvConfig,
) -> Result<ReceiverHandle, TrafficError> {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel::<Result<(), TrafficError>>();
    let stop2 = Arc::clone(&stop);
    let thread = ns.spawn(move || {
        let sock = match open_receiver(&cfg) {
            Ok(s) => {
                let _ = tx.send(Ok(()));
                s
            }
            Err(e) => {
                let _ = tx.send(Err(TrafficError::Sys {
                    what: "receiver setup",
                    source: std::io::Error::other(e.to_string()),
                }));
                return Err(e);
            }
        };
        Ok(receive(&sock, &cfg, &stop2))
    })?;
    match rx.recv() {
        Ok(Ok(())) => Ok(ReceiverHandle { node: node.to_owned(), stop, thread: Some(thread) }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        // The thread ended before reporting: setns failed.
        Err(_) => match thread.join() {
            Ok(Err(e)) => Err(e.into()),
            _ => Err(TrafficError::Panicked),
        },
    }
}

impl ReceiverHandle {
    /// Asks the receiver to finish (after draining) and returns its report.
    pub fn finish(mut self) -> Result<RecvReport, TrafficError> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(Ok(r))) => r,
            Some(Ok(Err(e))) => Err(e.into()),
            Some(Err(_)) | None => Err(TrafficError::Panicked),
        }
    }
}

impl Drop for ReceiverHandle {
    /// A receiver abandoned on an error path stops after its drain time instead of running (and
    /// keeping its namespace alive) until `max_duration`.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_checksum_verifies() {
        let h = header_template(
            [2, 0, 0, 0, 0, 1],
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(239, 1, 1, 1),
            5001,
            16,
            64,
        );
        assert_eq!(ip_checksum(&h[14..34]), 0);
        assert_eq!(&h[0..6], &[0x01, 0x00, 0x5e, 0x01, 0x01, 0x01]);
        assert_eq!(u16::from_be_bytes([h[16], h[17]]), 64);
        assert_eq!(u16::from_be_bytes([h[38], h[39]]), 44);
    }

    #[test]
    fn group_accounting() {
        let mut g = GroupRecv::new(Ipv4Addr::new(239, 1, 1, 1));
        for s in [0, 1, 3, 2, 2, 5] {
            g.record(s);
        }
        g.finish(Some(7));
        assert_eq!((g.received, g.duplicates, g.reordered, g.lost), (5, 1, 1, 2));
        let mut g2 = GroupRecv::new(Ipv4Addr::new(239, 1, 1, 1));
        g2.record(4);
        g2.finish(None);
        assert_eq!(g2.lost, 4);
    }

    #[test]
    fn rewind_restores_round_robin() {
        let mut per = vec![3, 3, 2];
        let mut next = 2;
        rewind_unsent(&mut per, &mut next, 2);
        assert_eq!((per, next), (vec![2, 2, 2], 0));
    }

    #[test]
    fn config_bounds() {
        let mut c = SendConfig {
            ifname: "x".into(),
            src: None,
            groups: vec![Ipv4Addr::new(239, 1, 1, 1)],
            port: 1,
            ttl: 8,
            size: 64,
            count: None,
            duration: None,
            rate_pps: None,
            batch: 64,
        };
        assert!(matches!(c.validate(), Err(TrafficError::Unbounded)));
        c.count = Some(1);
        c.validate().unwrap();
        c.size = 20;
        assert!(matches!(c.validate(), Err(TrafficError::BadSize(20))));
        c.size = 64;
        c.groups = vec![Ipv4Addr::new(10, 0, 0, 1)];
        assert!(matches!(c.validate(), Err(TrafficError::NotMulticast(_))));
    }

    #[test]
    fn percentiles() {
        let mut v: Vec<u64> = (1..=100).map(|x| x * 1000).collect();
        let l = Latency::from_ns(&mut v);
        assert_eq!(l.samples, 100);
        assert!((l.p50_us - 51.0).abs() < 1.01);
        assert!((l.max_us - 100.0).abs() < 1e-9);
    }
}
