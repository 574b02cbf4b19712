//! Building blocks for timed scenarios on a running [`Lab`]: a steady multicast stream that runs
//! in the background while faults happen, members that join and leave at chosen moments and
//! timestamp every packet, and the data-plane counters of one link.
//!
//! The stream is sent by a kernel UDP socket in the sender host (so the first-hop router sees
//! what any application sends); each datagram carries a sequence number, so gaps at a member are
//! counted in packets and timed by arrival. Members are kernel sockets in the receiver hosts:
//! joining sends a real IGMP report, [`Member::leave`] closes the socket, which makes the kernel
//! send the leave report at once.
//!
//! Invariants: every stream is bounded in packets and time (and stops when its handle is
//! dropped); every member thread ends when its handle is dropped or after its time bound.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::bringup::{BringupError, Lab};
use crate::netns::NetNsError;

/// The first two bytes of every stream datagram ("FS"): anything else on the port is ignored.
const MAGIC: [u8; 2] = *b"FS";

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error(transparent)]
    NetNs(#[from] NetNsError),
    #[error(transparent)]
    Bringup(#[from] BringupError),
    #[error("{what} in {node}: {source}")]
    Socket { node: String, what: &'static str, source: std::io::Error },
    #[error("{node}: {what}")]
    Thread { node: String, what: &'static str },
    #[error("fanoutctl on {node}: {msg}")]
    Ctl { node: String, msg: String },
}

/// A background multicast stream from the topology's sender host.
#[derive(Debug)]
pub struct Stream {
    stop: Arc<AtomicBool>,
    sent: Arc<std::sync::atomic::AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub rate_pps: u64,
    pub started: Instant,
}

impl Stream {
    /// Starts sending to `group:port` from host `node` at `rate_pps`, for at most `max_count`
    /// packets and `max_time`.
    pub fn start(
        lab: &Lab,
        node: &str,
        group: Ipv4Addr,
        port: u16,
        rate_pps: u64,
        max_count: u64,
        max_time: Duration,
    ) -> Result<Stream, ScenarioError> {
        let i = lab.plan.topo.node_index(node).ok_or(BringupError::UnknownNode(node.into()))?;
        let src = lab.plan.ports[i][0].addr;
        let sockerr = |what| {
            let node = node.to_owned();
            move |source| ScenarioError::Socket { node, what, source }
        };
        let sock = lab.ns(node).run(move || -> std::io::Result<Socket> {
            let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
            s.bind(&SocketAddrV4::new(src, 0).into())?;
            s.set_multicast_if_v4(&src)?;
            s.set_multicast_ttl_v4(16)?;
            s.set_multicast_loop_v4(false)?;
            Ok(s)
        })?;
        let sock = sock.map_err(sockerr("sender socket"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (stop2, sent2) = (Arc::clone(&stop), Arc::clone(&sent));
        let interval = Duration::from_secs_f64(1.0 / rate_pps.max(1) as f64);
        let started = Instant::now();
        let thread = std::thread::spawn(move || {
            let dst: socket2::SockAddr = SocketAddrV4::new(group, port).into();
            let mut buf = [0u8; 64];
            buf[..2].copy_from_slice(&MAGIC);
            let mut next = Instant::now();
            for seq in 0..max_count {
                if stop2.load(Ordering::Relaxed) || started.elapsed() > max_time {
                    break;
                }
                buf[2..6].copy_from_slice(&u32::try_from(seq).unwrap_or(u32::MAX).to_be_bytes());
                // A full socket buffer or a route that is not there yet loses this packet, as
                // it would for any application; the receivers count it.
                let _ = sock.send_to(&buf, &dst);
                sent2.store(seq + 1, Ordering::Relaxed);
                next += interval;
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                } else {
                    next = now;
                }
            }
        });
        Ok(Stream { stop, sent, thread: Some(thread), rate_pps, started })
    }

    /// Packets sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// The sequence number the next packet will carry.
    pub fn next_seq(&self) -> u32 {
        u32::try_from(self.sent()).unwrap_or(u32::MAX)
    }

    /// Stops the stream; returns the number of packets sent.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.sent()
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Arrivals recorded by a member: (sequence number, arrival time), in arrival order.
#[derive(Debug, Clone, Default)]
pub struct Arrivals(pub Vec<(u32, Instant)>);

impl Arrivals {
    /// Distinct sequence numbers received.
    pub fn distinct(&self) -> usize {
        let mut s: Vec<u32> = self.0.iter().map(|a| a.0).collect();
        s.sort_unstable();
        s.dedup();
        s.len()
    }

    /// Packets received more than once.
    pub fn duplicates(&self) -> usize {
        self.0.len() - self.distinct()
    }

    /// Packets that arrived after a packet with a higher sequence number.
    pub fn reordered(&self) -> usize {
        let mut max = None;
        let mut n = 0;
        for &(seq, _) in &self.0 {
            match max {
                Some(m) if seq < m => n += 1,
                _ => max = Some(seq),
            }
        }
        n
    }

    /// The first packet that arrived at or after `t`.
    pub fn first_after(&self, t: Instant) -> Option<(u32, Instant)> {
        self.0.iter().copied().find(|a| a.1 >= t)
    }

    /// The last packet that arrived before `t`.
    pub fn last_before(&self, t: Instant) -> Option<(u32, Instant)> {
        self.0.iter().copied().rfind(|a| a.1 < t)
    }

    /// The longest silence that overlaps `[from, to]`: between the last arrival before `from`
    /// (or `from`) and the first one after it, over every consecutive pair up to `to`; with the
    /// number of sequence numbers above the highest one received before the silence and below
    /// the first one after it that never arrived at all (so losses from an earlier outage that
    /// late, reordered packets span are not counted again).
    pub fn longest_gap(&self, from: Instant, to: Instant) -> Gap {
        let got: std::collections::BTreeSet<u32> = self.0.iter().map(|a| a.0).collect();
        let mut points: Vec<(u32, Instant)> =
            self.0.iter().copied().filter(|a| a.1 <= to).collect();
        points.sort_by_key(|a| a.1);
        let mut best = Gap::default();
        let mut prev: Option<(u32, Instant)> = None;
        let mut highest: Option<u32> = None;
        for p in points {
            if let (Some(q), Some(h)) = (prev, highest) {
                let d = p.1 - q.1;
                if p.1 >= from && d > best.duration {
                    let lost = (h.saturating_add(1)..p.0).filter(|s| !got.contains(s)).count();
                    best = Gap {
                        duration: d,
                        lost: u32::try_from(lost).unwrap_or(u32::MAX),
                        last_seq_before: Some(h),
                        first_seq_after: Some(p.0),
                    };
                }
            }
            prev = Some(p);
            highest = Some(highest.map_or(p.0, |h| h.max(p.0)));
        }
        best
    }

    /// Sequence numbers in `from..to` that never arrived.
    pub fn missing(&self, from: u32, to: u32) -> Vec<u32> {
        let got: std::collections::BTreeSet<u32> = self.0.iter().map(|a| a.0).collect();
        (from..to).filter(|s| !got.contains(s)).collect()
    }
}

/// A silence in a member's stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gap {
    pub duration: Duration,
    /// Sequence numbers between the highest one received before the silence and the first one
    /// after it that never arrived.
    pub lost: u32,
    pub last_seq_before: Option<u32>,
    pub first_seq_after: Option<u32>,
}

/// A group member on a host: a joined kernel socket recording every stream packet.
#[derive(Debug)]
pub struct Member {
    pub node: String,
    pub joined_at: Instant,
    arrivals: Arc<Mutex<Arrivals>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Member {
    /// Joins `group` on host `node`'s interface and records arrivals on `port` for at most
    /// `max_time`. Returns once the socket has joined (the IGMP report is on its way).
    pub fn join(
        lab: &Lab,
        node: &str,
        group: Ipv4Addr,
        port: u16,
        max_time: Duration,
    ) -> Result<Member, ScenarioError> {
        let i = lab.plan.topo.node_index(node).ok_or(BringupError::UnknownNode(node.into()))?;
        let addr = lab.plan.ports[i][0].addr;
        let sock = lab.ns(node).run(move || -> std::io::Result<Socket> {
            let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
            s.set_reuse_address(true)?;
            s.bind(&SocketAddrV4::new(group, port).into())?;
            s.join_multicast_v4(&group, &addr)?;
            s.set_read_timeout(Some(Duration::from_millis(20)))?;
            Ok(s)
        })?;
        let sock = sock.map_err(|source| ScenarioError::Socket {
            node: node.to_owned(),
            what: "member socket",
            source,
        })?;
        let joined_at = Instant::now();
        let arrivals = Arc::new(Mutex::new(Arrivals::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (arr2, stop2) = (Arc::clone(&arrivals), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 256];
            while !stop2.load(Ordering::Relaxed) && joined_at.elapsed() < max_time {
                if let Ok(n) = sock.recv(&mut buf) {
                    let now = Instant::now();
                    // SAFETY: recv initialised the first `n` bytes.
                    let d: &[u8] = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast(), n) };
                    if n >= 6 && d[..2] == MAGIC {
                        let seq = u32::from_be_bytes([d[2], d[3], d[4], d[5]]);
                        if let Ok(mut a) = arr2.lock() {
                            a.0.push((seq, now));
                        }
                    }
                }
            }
            // Dropping the socket here leaves the group: the kernel sends the leave report.
        });
        Ok(Member { node: node.to_owned(), joined_at, arrivals, stop, thread: Some(thread) })
    }

    /// A copy of what arrived so far.
    pub fn arrivals(&self) -> Arrivals {
        self.arrivals.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// Packets received so far (with duplicates).
    pub fn count(&self) -> usize {
        self.arrivals.lock().map_or(0, |a| a.0.len())
    }

    /// Leaves the group (closes the socket) and returns when the socket is closed, with the
    /// moment of leaving and everything that arrived.
    pub fn leave(mut self) -> (Instant, Arrivals) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        (Instant::now(), self.arrivals())
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Data packets that router `node`'s data plane received from `peer` (on its port of the link
/// between them) and sent to it, from `fanoutctl show counters --json`. The XDP program steers
/// only routable multicast data to the data plane, so protocol messages (probes, hellos,
/// reports, IGMP) are not in these counts, unlike the kernel's interface counters. The counts
/// restart from zero when the router restarts.
pub fn data_counters(lab: &Lab, node: &str, peer: &str) -> Result<(u64, u64), ScenarioError> {
    let li = lab.link_between(node, peer)?;
    let i = lab.plan.idx(node);
    let ifname = lab
        .plan
        .port_on_link(i, li)
        .map(|p| p.ifname.clone())
        .ok_or(BringupError::NoLink { a: node.into(), b: peer.into() })?;
    let ctl = |msg: String| ScenarioError::Ctl { node: node.to_owned(), msg };
    let out = lab.fanoutctl(node, &["show", "counters", "--json"]).map_err(ctl)?;
    let v: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| ctl(format!("not JSON: {e}")))?;
    let iface = v["interfaces"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"].as_str() == Some(ifname.as_str())))
        .ok_or_else(|| ctl(format!("no interface {ifname} in show counters")))?;
    Ok((iface["rx_packets"].as_u64().unwrap_or(0), iface["tx_packets"].as_u64().unwrap_or(0)))
}

/// Polls `f` every `step` until it returns true or `limit` passes; returns the time it took.
pub fn wait_for(limit: Duration, step: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    loop {
        if f() {
            return Some(t0.elapsed());
        }
        if t0.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(step);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gap_and_missing() {
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let a = Arrivals(vec![
            (0, ms(0)),
            (1, ms(10)),
            (2, ms(20)),
            (9, ms(400)),
            (10, ms(410)),
            (10, ms(411)),
        ]);
        let g = a.longest_gap(ms(15), ms(1000));
        assert_eq!(g.duration, Duration::from_millis(380));
        assert_eq!((g.lost, g.last_seq_before, g.first_seq_after), (6, Some(2), Some(9)));
        assert_eq!(a.missing(0, 11), vec![3, 4, 5, 6, 7, 8]);
        assert_eq!((a.distinct(), a.duplicates()), (5, 1));
        assert_eq!(a.first_after(ms(21)), Some((9, ms(400))));
        assert_eq!(a.last_before(ms(400)), Some((2, ms(20))));
        // A late packet (seq 5 arriving after 10) is not counted as lost, and a silence after
        // it counts only what is missing above the highest sequence seen (10).
        let mut late = a.clone();
        late.0.push((5, ms(420)));
        assert_eq!(late.longest_gap(ms(15), ms(1000)).lost, 5);
        late.0.push((14, ms(900)));
        let g = late.longest_gap(ms(415), ms(1000));
        assert_eq!((g.lost, g.last_seq_before, g.first_seq_after), (3, Some(10), Some(14)));
        assert_eq!((a.reordered(), late.reordered()), (0, 1));
        // A window after the silence sees only the short gaps.
        assert_eq!(a.longest_gap(ms(405), ms(1000)).duration, Duration::from_millis(10));
    }
}
