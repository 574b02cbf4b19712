//! A packet tap for `fanoutctl debug pcap`: copies of the frames one port receives (and,
//! optionally, the copies the pipeline transmits there), handed to the control plane.
//!
//! ```text
//!   Dataplane::start_tap ──Command::Tap(TapWriter)──► worker: XskTx holds Option<TapWriter>
//!        │                                               rx frame of the port ─┐
//!        ▼                                               tx copy to the port ──┤ copy()
//!   TapReceiver ◄──── full: bounded channel of TapFrame ◄─────────────────────┘
//!        └──────────► free: bounded channel of empty TapFrames (recycled) ──► writer
//! ```
//!
//! Invariants: the worker never allocates or blocks for the tap. Every buffer is allocated
//! once, when the tap starts (`capacity` frames of `snaplen` bytes: bounded memory); the
//! writer takes an empty one from `free`, fills it and `try_send`s it to `full`; the receiver
//! hands it back with [`TapReceiver::recycle`]. No free buffer means the frame is dropped and
//! counted ([`TapStats::dropped`]). Without a tap the hot path pays one branch on a local
//! `Option` per received frame and per copy. Dropping the [`TapReceiver`] stops the tap (the
//! writer sees the flag at its next frame and the worker removes it at its next round).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam::channel::{bounded, Receiver, Sender, TrySendError};

use crate::iface::PortId;

/// One captured frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapFrame {
    /// Wall-clock time of the copy, since the Unix epoch.
    pub time: Duration,
    /// Length of the frame on the wire; `data` holds at most `snaplen` bytes of it.
    pub orig_len: u32,
    /// A copy the data plane transmitted (false: a frame it received).
    pub tx: bool,
    pub data: Vec<u8>,
}

/// Counters of one tap.
#[derive(Debug, Default)]
pub struct TapStats {
    pub captured: AtomicU64,
    /// Frames not captured because every buffer was waiting to be read.
    pub dropped: AtomicU64,
}

/// The worker's end: lives in `XskTx` while the tap runs.
#[derive(Debug)]
pub struct TapWriter {
    port: PortId,
    tx: bool,
    full: Sender<TapFrame>,
    free: Receiver<TapFrame>,
    stats: Arc<TapStats>,
    stopped: Arc<AtomicBool>,
}

impl TapWriter {
    /// Copies `frame` if it is of the tapped port (and direction). Allocation-free: the buffer
    /// comes from the free list and was allocated with `snaplen` capacity.
    #[inline]
    pub fn copy(&mut self, port: PortId, frame: &[u8], tx: bool) {
        if port != self.port || (tx && !self.tx) {
            return;
        }
        if self.stopped.load(Ordering::Relaxed) {
            return;
        }
        let Ok(mut buf) = self.free.try_recv() else {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let n = frame.len().min(buf.data.capacity());
        buf.data.clear();
        buf.data.extend_from_slice(&frame[..n]);
        buf.orig_len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        buf.tx = tx;
        buf.time = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        match self.full.try_send(buf) {
            Ok(()) => {
                self.stats.captured.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => self.stopped.store(true, Ordering::Relaxed),
        }
    }

    /// Whether the receiver has gone (the worker then drops the writer).
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }
}

/// The control plane's end. Dropping it stops the tap.
#[derive(Debug)]
pub struct TapReceiver {
    full: Receiver<TapFrame>,
    free: Sender<TapFrame>,
    stats: Arc<TapStats>,
    stopped: Arc<AtomicBool>,
}

impl TapReceiver {
    /// Up to `max` captured frames, without waiting. Give each back with
    /// [`TapReceiver::recycle`] once written out, or the tap runs out of buffers.
    pub fn drain(&self, max: usize) -> Vec<TapFrame> {
        self.full.try_iter().take(max).collect()
    }

    /// Returns a buffer to the writer.
    pub fn recycle(&self, frame: TapFrame) {
        // Cannot be full: there are only `capacity` buffers.
        let _ = self.free.try_send(frame);
    }

    pub fn captured(&self) -> u64 {
        self.stats.captured.load(Ordering::Relaxed)
    }

    pub fn dropped(&self) -> u64 {
        self.stats.dropped.load(Ordering::Relaxed)
    }

    /// Whether the tap still runs (the writer has not seen a stop).
    pub fn is_running(&self) -> bool {
        !self.stopped.load(Ordering::Relaxed)
    }

    /// The flag that says the tap is stopped, weakly (gone once both ends are).
    pub fn stop_flag(&self) -> std::sync::Weak<AtomicBool> {
        Arc::downgrade(&self.stopped)
    }
}

impl Drop for TapReceiver {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Relaxed);
    }
}

/// A tap on `port` with `capacity` buffers of `snaplen` bytes (both at least 1).
pub fn tap(port: PortId, snaplen: usize, capacity: usize, tx: bool) -> (TapWriter, TapReceiver) {
    let capacity = capacity.max(1);
    let (full_tx, full_rx) = bounded(capacity);
    let (free_tx, free_rx) = bounded(capacity);
    for _ in 0..capacity {
        let buf = TapFrame {
            time: Duration::ZERO,
            orig_len: 0,
            tx: false,
            data: Vec::with_capacity(snaplen.max(1)),
        };
        let _ = free_tx.try_send(buf);
    }
    let stats = Arc::new(TapStats::default());
    let stopped = Arc::new(AtomicBool::new(false));
    (
        TapWriter {
            port,
            tx,
            full: full_tx,
            free: free_rx,
            stats: Arc::clone(&stats),
            stopped: Arc::clone(&stopped),
        },
        TapReceiver { full: full_rx, free: free_tx, stats, stopped },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_only_the_tapped_port_and_direction_truncated_to_snaplen() {
        let (mut w, r) = tap(PortId(1), 4, 8, false);
        w.copy(PortId(0), &[1, 2, 3], false);
        w.copy(PortId(1), &[9, 8, 7, 6, 5], false);
        w.copy(PortId(1), &[1, 1], true);
        let got = r.drain(10);
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].data.as_slice(), got[0].orig_len, got[0].tx),
            (&[9, 8, 7, 6][..], 5, false)
        );
        assert!(got[0].time > Duration::ZERO);
        assert_eq!((r.captured(), r.dropped()), (1, 0));
    }

    #[test]
    fn bounded_buffers_drop_and_count_until_recycled() {
        let (mut w, r) = tap(PortId(0), 64, 2, true);
        for i in 0..5u8 {
            w.copy(PortId(0), &[i], i % 2 == 0);
        }
        assert_eq!((r.captured(), r.dropped()), (2, 3));
        let frames = r.drain(10);
        assert_eq!(frames.iter().map(|f| f.data[0]).collect::<Vec<_>>(), [0, 1]);
        for f in frames {
            r.recycle(f);
        }
        w.copy(PortId(0), &[7], false);
        assert_eq!(r.drain(10)[0].data, [7]);
    }

    #[test]
    fn dropping_the_receiver_stops_the_writer() {
        let (mut w, r) = tap(PortId(0), 64, 2, false);
        assert!(!w.is_stopped() && r.is_running());
        drop(r);
        assert!(w.is_stopped());
        w.copy(PortId(0), &[1], false);
    }
}
