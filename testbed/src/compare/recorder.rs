//! Long-lived receivers for `compare`: one kernel UDP socket per receiver host that stays joined
//! through every phase of a mode (a leave between phases would make DVMRP prune), recording
//! every arrival as (sequence, send time, receive time).
//!
//! Phases are told apart by the send timestamp in the payload ([`crate::traffic`] format): each
//! phase is its own generator run, so a phase's packets are exactly those whose send time lies
//! in the phase's window. Invariant: the number of recorded arrivals is bounded by
//! [`MAX_ARRIVALS`]; more are counted in `overflow` and never stored.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::netns::NetNs;
use crate::traffic::{self, RecvConfig, TrafficError};

/// Upper bound on stored arrivals per receiver.
pub const MAX_ARRIVALS: usize = 4_000_000;

/// One datagram as it arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Arrival {
    pub seq: u32,
    pub sent_ns: u64,
    pub recv_ns: u64,
}

/// Everything one receiver saw.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    /// CLOCK_MONOTONIC just before IP_ADD_MEMBERSHIP.
    pub join_ns: u64,
    pub arrivals: Vec<Arrival>,
    /// Datagrams on the port that were not ours.
    pub foreign: u64,
    pub overflow: u64,
}

type Thread =
    std::thread::JoinHandle<Result<Result<Recording, TrafficError>, crate::netns::NetNsError>>;

/// A running recorder.
#[derive(Debug)]
pub struct Recorder {
    pub node: String,
    /// Arrivals so far, and the largest send time among them (for convergence polling).
    pub count: Arc<AtomicU64>,
    pub latest_sent_ns: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<Thread>,
}

/// Joins `group` on the interface with address `iface_addr` inside `ns` and records until
/// [`Recorder::finish`] (or `max` elapses). Returns once the socket has joined.
pub fn start(
    ns: &NetNs,
    node: &str,
    iface_addr: Ipv4Addr,
    group: Ipv4Addr,
    port: u16,
    max: Duration,
) -> Result<Recorder, TrafficError> {
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let count = Arc::new(AtomicU64::new(0));
    let latest = Arc::new(AtomicU64::new(0));
    let progress = (Arc::clone(&count), Arc::clone(&latest));
    let (tx, rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let cfg = RecvConfig {
        iface_addr,
        groups: vec![group],
        port,
        max_duration: max,
        drain: Duration::from_millis(200),
    };
    let thread = ns.spawn(move || {
        let join_ns = traffic::mono_ns();
        let sock = match traffic::open_receiver(&cfg) {
            Ok(s) => {
                let _ = tx.send(Ok(()));
                s
            }
            Err(e) => {
                let _ = tx.send(Err(e.to_string()));
                return Err(e);
            }
        };
        Ok(record(&sock, &cfg, &stop2, join_ns, &progress))
    })?;
    match rx.recv() {
        Ok(Ok(())) => Ok(Recorder {
            node: node.to_owned(),
            count,
            latest_sent_ns: latest,
            stop,
            thread: Some(thread),
        }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(TrafficError::Sys { what: "receiver setup", source: std::io::Error::other(e) })
        }
        Err(_) => match thread.join() {
            Ok(Err(e)) => Err(e.into()),
            _ => Err(TrafficError::Panicked),
        },
    }
}

fn record(
    sock: &socket2::Socket,
    cfg: &RecvConfig,
    stop: &AtomicBool,
    join_ns: u64,
    progress: &(Arc<AtomicU64>, Arc<AtomicU64>),
) -> Recording {
    let mut rec = Recording { join_ns, ..Recording::default() };
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 2048];
    let start = std::time::Instant::now();
    let mut last_rx = std::time::Instant::now();
    loop {
        if start.elapsed() > cfg.max_duration
            || (stop.load(Ordering::Relaxed) && last_rx.elapsed() > cfg.drain)
        {
            break;
        }
        match sock.recv(&mut buf) {
            Ok(n) => {
                let now = traffic::mono_ns();
                last_rx = std::time::Instant::now();
                // SAFETY: recv initialised the first `n` bytes.
                let data: &[u8] = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast(), n) };
                match parse(data) {
                    Some((seq, sent_ns)) if rec.arrivals.len() < MAX_ARRIVALS => {
                        rec.arrivals.push(Arrival { seq, sent_ns, recv_ns: now });
                        progress.0.fetch_add(1, Ordering::Relaxed);
                        progress.1.fetch_max(sent_ns, Ordering::Relaxed);
                    }
                    Some(_) => rec.overflow += 1,
                    None => rec.foreign += 1,
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
    rec
}

/// (sequence, send time) of a generator payload for group index 0, or `None` if it is not one.
pub fn parse(data: &[u8]) -> Option<(u32, u64)> {
    if data.len() < 16 || data[0..2] != [0x46, 0x54] || data[2..4] != [0, 0] {
        return None;
    }
    let seq = u32::from_be_bytes(data[4..8].try_into().ok()?);
    let sent = u64::from_be_bytes(data[8..16].try_into().ok()?);
    Some((seq, sent))
}

impl Recorder {
    /// Stops (after the socket has been idle for the drain time) and returns the recording.
    pub fn finish(mut self) -> Result<Recording, TrafficError> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(Ok(r))) => r,
            Some(Ok(Err(e))) => Err(e.into()),
            Some(Err(_)) | None => Err(TrafficError::Panicked),
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What a receiver saw of one phase: packets sent in `[from_ns, to_ns]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PhaseRecv {
    /// Distinct sequence numbers.
    pub received: u64,
    pub duplicates: u64,
    pub reordered: u64,
    /// One-way latencies of first copies, nanoseconds, sorted.
    #[serde(skip)]
    pub latencies_ns: Vec<u64>,
    /// Distinct sequence numbers, sorted.
    #[serde(skip)]
    pub seqs: Vec<u32>,
    /// Receive time of the first packet of the phase.
    pub first_recv_ns: Option<u64>,
}

/// Selects and accounts one phase's arrivals.
pub fn phase(rec: &Recording, from_ns: u64, to_ns: u64) -> PhaseRecv {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = PhaseRecv::default();
    let mut max_seq: Option<u32> = None;
    for a in rec.arrivals.iter().filter(|a| (from_ns..=to_ns).contains(&a.sent_ns)) {
        if !seen.insert(a.seq) {
            out.duplicates += 1;
            continue;
        }
        out.latencies_ns.push(a.recv_ns.saturating_sub(a.sent_ns));
        if max_seq.is_some_and(|m| a.seq < m) {
            out.reordered += 1;
        } else {
            max_seq = Some(a.seq);
        }
        out.first_recv_ns = Some(out.first_recv_ns.map_or(a.recv_ns, |f| f.min(a.recv_ns)));
    }
    out.received = seen.len() as u64;
    out.seqs = seen.into_iter().collect();
    out.latencies_ns.sort_unstable();
    out
}

/// The longest run of missing sequence numbers within `0..sent` (including a missing tail),
/// and whether the last tenth of the stream arrived at all.
pub fn longest_gap(seqs: &[u32], sent: u64) -> (u64, bool) {
    // `next` is the first sequence number not yet accounted for.
    let mut next = 0u64;
    let mut gap = 0u64;
    for &s in seqs {
        let s = u64::from(s);
        gap = gap.max(s.saturating_sub(next));
        next = next.max(s + 1);
    }
    gap = gap.max(sent.saturating_sub(next));
    let tail_from = sent.saturating_sub((sent / 10).max(1));
    let recovered = seqs.iter().any(|&s| u64::from(s) >= tail_from);
    (gap, recovered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arr(seq: u32, sent: u64, recv: u64) -> Arrival {
        Arrival { seq, sent_ns: sent, recv_ns: recv }
    }

    #[test]
    fn phase_counts_dups_reorder_and_window() {
        let rec = Recording {
            join_ns: 0,
            arrivals: vec![
                arr(0, 100, 150),
                arr(2, 120, 170),
                arr(1, 110, 180),
                arr(2, 120, 190),
                arr(0, 900, 950), // another phase
            ],
            foreign: 0,
            overflow: 0,
        };
        let p = phase(&rec, 100, 200);
        assert_eq!((p.received, p.duplicates, p.reordered), (3, 1, 1));
        assert_eq!(p.latencies_ns, vec![50, 50, 70]);
        assert_eq!(p.first_recv_ns, Some(150));
        assert_eq!(p.seqs, vec![0, 1, 2]);
    }

    #[test]
    fn gaps_and_recovery() {
        assert_eq!(longest_gap(&[0, 1, 2, 3], 4), (0, true));
        assert_eq!(longest_gap(&[0, 1, 5, 6, 7, 8, 9], 10), (3, true));
        // Nothing after the failure: the missing tail is the gap and it never recovered.
        assert_eq!(longest_gap(&[0, 1, 2], 10), (7, false));
        assert_eq!(longest_gap(&[], 5), (5, false));
    }

    #[test]
    fn parses_only_our_payloads() {
        let mut p = vec![0x46, 0x54, 0, 0, 0, 0, 0, 7];
        p.extend_from_slice(&42u64.to_be_bytes());
        assert_eq!(parse(&p), Some((7, 42)));
        p[1] = 0;
        assert_eq!(parse(&p), None);
        assert_eq!(parse(&[0x46, 0x54]), None);
    }
}
