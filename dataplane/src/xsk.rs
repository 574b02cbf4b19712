//! AF_XDP ports: one UMEM (shared by all ports of a worker when the kernel allows it), the
//! sockets bound per (interface, queue), and a [`TxSink`] over UMEM frames.
//!
//! This is the crate's only module with `unsafe`: xsk-rs cannot prove descriptor provenance,
//! so its ring and frame accessors are `unsafe fn`s. The types here make provenance an
//! invariant instead:
//!
//! - A [`FrameDesc`] is ownership of one frame. Every descriptor lives in exactly one place at a
//!   time: a port's fill ring (kernel), its RX ring (kernel), the worker's RX batch, a pool's
//!   free list, a port's pending-TX list, its TX ring or its completion ring (kernel). Moving a
//!   descriptor between those places is the only thing the code does with it; none is copied
//!   into two places.
//! - Each descriptor comes from one [`Pool`] (one UMEM) and is only ever handed to rings of
//!   sockets created on that UMEM (`Port::pool` names it).
//! - Frame data is only reached through `Pool::umem` with a descriptor the caller owns, so no
//!   two `&mut [u8]` alias one frame.
//!
//! Traps handled (see /work/shared/notes/afxdp-on-veth.md): the fill ring's `produce` is
//! all-or-nothing, so never more than its free slots are offered; completion descriptors come
//! back with length 0, so the length is set again on every transmit; copy-mode TX sends only
//! ~32 frames per `sendto`, so [`XskTx::flush`] kicks until the ring drains or stops making
//! progress; and the "sent" counter is taken from the completion ring (what the kernel
//! actually consumed) while the kernel's own invalid-descriptor counter is exposed too.

use std::collections::VecDeque;
use std::fmt;
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use serde::{Deserialize, Serialize};
use xsk_rs::config::{
    BindFlags, FrameSize, LibxdpFlags, QueueSize, SocketConfig, UmemConfig, XDP_UMEM_MIN_CHUNK_SIZE,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

use crate::iface::PortId;
use crate::pipeline::TxSink;
use crate::stats::DropReason;
use crate::tap::TapWriter;

/// Bytes per UMEM frame (the kernel minimum). Data room per frame is this minus the 256-byte
/// XDP headroom: 1792 bytes, enough for a 1500-byte MTU plus overlay encapsulation.
pub const FRAME_SIZE: u32 = XDP_UMEM_MIN_CHUNK_SIZE;

/// Data bytes per frame: the frame minus the kernel's XDP headroom (no extra frame headroom).
pub const DATA_ROOM: usize = (FRAME_SIZE - 256) as usize;

/// How many times [`XskPorts::flush`] kicks a port's TX in one call before giving up for this
/// round (copy mode sends ~32 frames per kick; 64 kicks cover a full 2048-slot ring).
const MAX_TX_KICKS: usize = 64;

/// How a socket is bound: `fanoutctl show interfaces` prints this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BindMode {
    /// `XDP_ZEROCOPY`: the NIC DMAs straight into the UMEM.
    ZeroCopy,
    /// `XDP_COPY`: the kernel copies between skb/xdp_buff and the UMEM (veth, most drivers).
    Copy,
}

impl BindMode {
    pub fn name(self) -> &'static str {
        match self {
            BindMode::ZeroCopy => "zero-copy",
            BindMode::Copy => "copy",
        }
    }
}

impl fmt::Display for BindMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether the ports share one UMEM (`XDP_SHARED_UMEM`) or fell back to one UMEM per port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UmemSharing {
    Shared,
    PerPort,
}

#[derive(Debug, thiserror::Error)]
pub enum XskError {
    #[error("frame_count {0} must be a power of two between 64 and 65536")]
    BadFrameCount(u32),
    #[error("UMEM config rejected: {0}")]
    UmemConfig(String),
    #[error("creating a UMEM of {frames} frames for {iface} failed: {source}")]
    Umem {
        iface: String,
        frames: u32,
        #[source]
        source: xsk_rs::umem::UmemCreateError,
    },
    #[error("interface name {0:?} contains a NUL byte")]
    BadName(String),
    #[error("binding an AF_XDP socket to {iface} queue {queue} ({mode}) failed: {source}")]
    Bind {
        iface: String,
        queue: u32,
        mode: BindMode,
        #[source]
        source: xsk_rs::socket::SocketCreateError,
    },
    #[error(
        "AF_XDP socket on {iface} has no fill/completion rings although its UMEM context is new"
    )]
    NoFillRing { iface: String },
    #[error("too many ports (max {max})")]
    TooManyPorts { max: usize },
}

/// Per-port socket counters: ours plus the kernel's `XDP_STATISTICS`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct XskCounters {
    /// Frames read from the RX ring.
    pub rx_frames: u64,
    /// Frames put on the TX ring.
    pub tx_queued: u64,
    /// Frames the kernel returned on the completion ring (it consumed them).
    pub tx_completed: u64,
    /// Kicks (`sendto`) issued.
    pub tx_kicks: u64,
    /// Kernel: RX frames dropped (RX ring full or no fill frame).
    pub kernel_rx_dropped: u64,
    pub kernel_rx_ring_full: u64,
    pub kernel_rx_fill_ring_empty: u64,
    /// Kernel: TX descriptors rejected as invalid (dropped without sending).
    pub kernel_tx_invalid: u64,
    pub kernel_tx_ring_empty: u64,
}

/// Sizes for [`XskPorts::open`].
#[derive(Debug, Clone, Copy)]
pub struct XskConfig {
    /// UMEM frames per port; a power of two in 64..=65536. Half feed the port's fill ring,
    /// half go to the TX pool. Each ring (fill, RX, TX, completion) has `frame_count / 2` slots.
    pub frame_count: u32,
    /// Never try zero-copy.
    pub force_copy: bool,
    /// Frames read from a port's RX ring per [`XskPorts::rx_batch`] call.
    pub batch: usize,
}

/// One UMEM and the frames of it that are free for TX.
struct Pool {
    umem: Umem,
    free: Vec<FrameDesc>,
}

/// The receive side of a bound socket.
struct RxPort {
    name: String,
    queue: u32,
    mode: BindMode,
    pool: usize,
    fd: RawFd,
    rx: RxQueue,
    fill: FillQueue,
    /// RX descriptors the fill ring had no room for (kept, offered again next time).
    fill_backlog: Vec<FrameDesc>,
    rx_frames: u64,
}

/// The transmit side of a bound socket.
struct TxPort {
    name: String,
    mode: BindMode,
    pool: usize,
    tx: TxQueue,
    comp: CompQueue,
    ring_size: u32,
    /// Copies written by the pipeline, not yet on the TX ring. Capacity `ring_size`.
    pending: VecDeque<FrameDesc>,
    /// On the TX ring or in flight in the kernel: `tx_queued - tx_completed`.
    outstanding: u32,
    tx_queued: u64,
    tx_completed: u64,
    tx_kicks: u64,
    /// False while the interface is down: copies are refused as `no_oif`.
    enabled: bool,
}

/// The transmit half of a worker's ports: the frame pools and every port's TX and completion
/// rings. It is the [`TxSink`] the pipeline writes copies into (port ids index the ports in
/// the order given to [`XskPorts::open`]).
pub struct XskTx {
    pools: Vec<Pool>,
    /// Indexed by port id; `None` while the port is detached (interface gone or down).
    ports: Vec<Option<TxPort>>,
    /// Scratch for completion-ring reads (length = ring size), so the hot path allocates nothing.
    comp_buf: Vec<FrameDesc>,
    /// The running `debug pcap` tap, if any (see `crate::tap`).
    tap: Option<TapWriter>,
}

impl fmt::Debug for XskTx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XskTx")
            .field("pools", &self.pools.len())
            .field(
                "ports",
                &self.ports.iter().map(|p| p.as_ref().map(|p| p.name.as_str())).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// The AF_XDP ports of one worker.
pub struct XskPorts {
    /// Indexed by port id; `None` while the port is detached.
    rx: Vec<Option<RxPort>>,
    /// Handles on the pools' UMEMs for reading received frames while `tx` is borrowed mutably
    /// (an RX frame and the TX frames written from it are always distinct frames).
    readers: Vec<Umem>,
    tx: XskTx,
    sharing: UmemSharing,
    rx_buf: Vec<FrameDesc>,
    /// One per port slot; a detached port's fd is -1, which poll(2) skips.
    pollfds: Vec<libc::pollfd>,
    /// What [`XskPorts::attach`] needs to bind a port again.
    umem_config: UmemConfig,
    ring_q: QueueSize,
    frame_count: u32,
    force_copy: bool,
    /// Per port: the pool its frames come from, and the frames of its fill circulation (RX
    /// frames go back to the fill ring they came from, so this set is fixed at bind time).
    /// After the socket is closed these frames are free again: a port bound again reuses them.
    pool_of: Vec<usize>,
    fill_sets: Vec<Vec<FrameDesc>>,
    /// Per port: a UMEM of its own, made when binding on its first pool failed at run time.
    /// Replaced (and the old UMEM freed) on the next such attach.
    dedicated: Vec<Option<usize>>,
}

impl fmt::Debug for XskPorts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("XskPorts");
        d.field("sharing", &self.sharing);
        for p in self.rx.iter().flatten() {
            d.field(&p.name, &(p.queue, p.mode, p.pool));
        }
        d.finish_non_exhaustive()
    }
}

/// What the caller needs to know about a bound port.
#[derive(Debug, Clone)]
pub struct BoundPort {
    pub name: String,
    pub queue: u32,
    pub mode: BindMode,
    pub fd: RawFd,
}

/// One requested port: interface name, queue, whether zero-copy may be tried.
#[derive(Debug, Clone)]
pub struct PortSpec {
    pub name: String,
    pub queue: u32,
    pub try_zero_copy: bool,
}

impl XskPorts {
    /// Creates the UMEM and binds one socket per spec. Our XDP program is used, so libxdp's
    /// default program is never loaded (`XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD`); the caller
    /// inserts each socket's fd into the XSKMAP of that interface's program.
    pub fn open(specs: &[PortSpec], config: XskConfig) -> Result<XskPorts, XskError> {
        let fc = config.frame_count;
        if !(64..=65536).contains(&fc) || !fc.is_power_of_two() {
            return Err(XskError::BadFrameCount(fc));
        }
        if specs.len() > crate::iface::MAX_PORTS {
            return Err(XskError::TooManyPorts { max: crate::iface::MAX_PORTS });
        }
        let ring = fc / 2;
        let ring_q = QueueSize::new(ring).map_err(|e| XskError::UmemConfig(e.to_string()))?;
        let umem_config = UmemConfig::builder()
            .frame_size(
                FrameSize::new(FRAME_SIZE).map_err(|e| XskError::UmemConfig(e.to_string()))?,
            )
            .fill_queue_size(ring_q)
            .comp_queue_size(ring_q)
            .build()
            .map_err(|e| XskError::UmemConfig(e.to_string()))?;

        let mut set = XskPorts {
            rx: Vec::with_capacity(specs.len()),
            readers: Vec::new(),
            tx: XskTx {
                pools: Vec::new(),
                ports: Vec::with_capacity(specs.len()),
                comp_buf: vec![FrameDesc::default(); ring as usize],
                tap: None,
            },
            sharing: UmemSharing::Shared,
            rx_buf: vec![FrameDesc::default(); config.batch.clamp(1, ring as usize)],
            pollfds: Vec::with_capacity(specs.len()),
            umem_config,
            ring_q,
            frame_count: fc,
            force_copy: config.force_copy,
            pool_of: Vec::with_capacity(specs.len()),
            fill_sets: Vec::with_capacity(specs.len()),
            dedicated: vec![None; specs.len()],
        };
        let Some(first) = specs.first() else {
            return Ok(set);
        };
        let total = u32::try_from(specs.len())
            .ok()
            .and_then(|n| fc.checked_mul(n))
            .filter(|t| *t <= 1 << 20)
            .ok_or(XskError::BadFrameCount(fc))?;
        set.add_pool(new_pool(&first.name, umem_config, total)?);

        for spec in specs {
            let mut fill_frames = set.tx.take_free(0, ring);
            let bound = bind(spec, &set.tx.pools[0].umem, ring_q, config.force_copy);
            let (pool, sockets, mode) = match bound {
                Ok((sockets, mode)) => (0, sockets, mode),
                Err(shared_err) if !set.rx.is_empty() => {
                    // The shared UMEM was refused for this device (a driver that cannot share
                    // across devices, or a zero-copy/copy mismatch): give it its own UMEM. The
                    // pipeline copies every outgoing frame anyway, so separate UMEMs cost no
                    // extra copy; only the TX pool is no longer shared.
                    tracing::warn!(iface = %spec.name, error = %shared_err, "XDP_SHARED_UMEM refused; using a UMEM per port");
                    set.tx.pools[0].free.append(&mut fill_frames);
                    let idx = set.add_pool(new_pool(&spec.name, umem_config, fc)?);
                    fill_frames = set.tx.take_free(idx, ring);
                    let (sockets, mode) =
                        bind(spec, &set.tx.pools[idx].umem, ring_q, config.force_copy)?;
                    set.sharing = UmemSharing::PerPort;
                    (idx, sockets, mode)
                }
                Err(e) => return Err(e),
            };
            set.pool_of.push(pool);
            set.fill_sets.push(fill_frames.clone());
            let (rx_port, tx_port) = make_port(spec, pool, mode, sockets, fill_frames, ring)?;
            set.pollfds.push(libc::pollfd { fd: rx_port.fd, events: libc::POLLIN, revents: 0 });
            set.rx.push(Some(rx_port));
            set.tx.ports.push(Some(tx_port));
        }
        Ok(set)
    }

    /// Closes port `i`'s socket (the kernel drops it from the XSKMAP), keeping its slot so
    /// port ids stay stable. Its fill frames (in user space or in the closed socket's rings)
    /// and its pending copies are free again; copies already on its TX ring are lost with the
    /// socket (none when the ring was drained; a device that vanished mid-send keeps a few).
    /// Returns how many frames were lost, or `None` if the port was not attached.
    pub fn detach(&mut self, i: usize) -> Option<u32> {
        let (Some(rx), Some(tx)) = (
            self.rx.get_mut(i).and_then(Option::take),
            self.tx.ports.get_mut(i).and_then(Option::take),
        ) else {
            return None;
        };
        self.pollfds[i].fd = -1;
        // The backlog is part of the fill set, which stays recorded for the next bind.
        drop(rx);
        self.tx.pools[tx.pool].free.extend(tx.pending);
        Some(tx.outstanding)
    }

    /// Binds port `i` again after [`XskPorts::detach`] (`i < len()`): on its pool with its
    /// old fill frames when the kernel accepts that (no new memory), otherwise on a UMEM of
    /// its own (which needs locked memory: CAP_IPC_LOCK or RLIMIT_MEMLOCK room).
    pub fn attach(&mut self, i: usize, spec: &PortSpec) -> Result<BoundPort, XskError> {
        if i >= self.rx.len() {
            return Err(XskError::TooManyPorts { max: self.rx.len() });
        }
        self.detach(i);
        let ring = self.frame_count / 2;
        let pool = self.pool_of[i];
        let (pool, sockets, mode, fill) = match bind(
            spec,
            &self.tx.pools[pool].umem,
            self.ring_q,
            self.force_copy,
        ) {
            Ok((sockets, mode)) => (pool, sockets, mode, self.fill_sets[i].clone()),
            Err(first) => {
                tracing::warn!(iface = %spec.name, error = %first, "binding on the port's UMEM again failed; using a UMEM of its own");
                let fresh = new_pool(&spec.name, self.umem_config, self.frame_count)?;
                let idx = match self.dedicated[i] {
                    Some(idx) => {
                        // Only this (detached) port ever used that pool.
                        self.readers[idx] = fresh.umem.clone();
                        self.tx.pools[idx] = fresh;
                        idx
                    }
                    None => self.add_pool(fresh),
                };
                self.dedicated[i] = Some(idx);
                let fill = self.tx.take_free(idx, ring);
                let (sockets, mode) =
                    bind(spec, &self.tx.pools[idx].umem, self.ring_q, self.force_copy)?;
                self.sharing = UmemSharing::PerPort;
                self.pool_of[i] = idx;
                self.fill_sets[i].clone_from(&fill);
                (idx, sockets, mode, fill)
            }
        };
        let (rx_port, tx_port) = make_port(spec, pool, mode, sockets, fill, ring)?;
        self.pollfds[i] = libc::pollfd { fd: rx_port.fd, events: libc::POLLIN, revents: 0 };
        self.rx[i] = Some(rx_port);
        self.tx.ports[i] = Some(tx_port);
        self.bound(i).ok_or(XskError::TooManyPorts { max: self.rx.len() })
    }

    /// Stops (`false`) or resumes (`true`) transmitting on port `i` without closing its
    /// socket: for an interface that is down but still exists (its socket stays bound).
    pub fn set_tx_enabled(&mut self, i: usize, enabled: bool) {
        if let Some(Some(p)) = self.tx.ports.get_mut(i) {
            p.enabled = enabled;
        }
    }

    /// Whether port `i` has a bound socket.
    pub fn is_attached(&self, i: usize) -> bool {
        self.rx.get(i).is_some_and(Option::is_some)
    }

    fn add_pool(&mut self, pool: Pool) -> usize {
        self.readers.push(pool.umem.clone());
        self.tx.pools.push(pool);
        self.tx.pools.len() - 1
    }

    pub fn sharing(&self) -> UmemSharing {
        self.sharing
    }

    pub fn len(&self) -> usize {
        self.rx.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// Port `i` as bound (same order as the specs given to [`XskPorts::open`]).
    pub fn bound(&self, i: usize) -> Option<BoundPort> {
        self.rx.get(i).and_then(Option::as_ref).map(|p| BoundPort {
            name: p.name.clone(),
            queue: p.queue,
            mode: p.mode,
            fd: p.fd,
        })
    }

    /// The socket of port `i`, to insert into the XSKMAP.
    pub fn fd(&self, i: usize) -> Option<BorrowedFd<'_>> {
        self.rx.get(i).and_then(Option::as_ref).map(|p| {
            // SAFETY: the fd belongs to the socket `p.rx` keeps open; the borrow is tied to
            // `&self`, which owns `p.rx`.
            unsafe { BorrowedFd::borrow_raw(p.fd) }
        })
    }

    /// Waits up to `timeout_ms` for any port to have received frames; returns how many ports
    /// are readable. In copy mode this `poll(2)` is also what wakes the kernel to refill from
    /// the fill ring (need_wakeup), so the worker calls it every round, with timeout 0 when busy.
    pub fn poll(&mut self, timeout_ms: i32) -> std::io::Result<usize> {
        for p in &mut self.pollfds {
            p.revents = 0;
        }
        // SAFETY: `pollfds` is a valid, exclusively borrowed array of `len` pollfd structs whose
        // fds are the sockets owned by `self.rx` (open while `self` lives).
        let n = unsafe {
            libc::poll(self.pollfds.as_mut_ptr(), self.pollfds.len() as libc::nfds_t, timeout_ms)
        };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                return Ok(0);
            }
            return Err(err);
        }
        Ok(n as usize)
    }

    /// Receives one batch from port `port` and calls `each(frame, tx)` per received frame, then
    /// returns the frames to the port's fill ring. Returns the number of frames.
    pub fn rx_batch<F: FnMut(&[u8], &mut XskTx)>(&mut self, port: usize, mut each: F) -> usize {
        let Some(p) = self.rx.get_mut(port).and_then(Option::as_mut) else {
            return 0;
        };
        // SAFETY: `rx_buf` entries are only overwritten by the ring (their previous values were
        // already given back to the fill ring, and are copies no one submits again); the frames
        // returned belong to this port's pool because only that pool's frames were ever given to
        // this port's fill ring.
        let n = unsafe { p.rx.consume(&mut self.rx_buf) };
        if n == 0 {
            return 0;
        }
        p.rx_frames += n as u64;
        let reader = &self.readers[p.pool];
        for desc in &self.rx_buf[..n] {
            // SAFETY: `desc` came from this port's RX ring, so it addresses a frame of `reader`'s
            // UMEM that the kernel has finished writing; nothing else (fill ring, TX) holds it
            // until it is recycled below, and `each` only gets frames of the TX pool for writing.
            let frame = unsafe { reader.data(desc) }.contents();
            each(frame, &mut self.tx);
        }
        p.fill_backlog.extend_from_slice(&self.rx_buf[..n]);
        p.refill();
        n
    }

    /// The transmit half (the [`TxSink`]).
    pub fn tx(&mut self) -> &mut XskTx {
        &mut self.tx
    }

    /// Flushes every port's pending copies; see [`XskTx::flush`].
    pub fn flush_all(&mut self) {
        for i in 0..self.tx.ports.len() {
            self.tx.flush(i);
        }
    }

    /// Our counters plus the kernel's `XDP_STATISTICS` for port `port`.
    pub fn counters(&self, port: usize) -> XskCounters {
        let (Some(Some(r)), Some(Some(t))) = (self.rx.get(port), self.tx.ports.get(port)) else {
            return XskCounters::default();
        };
        let mut c = XskCounters {
            rx_frames: r.rx_frames,
            tx_queued: t.tx_queued,
            tx_completed: t.tx_completed,
            tx_kicks: t.tx_kicks,
            ..XskCounters::default()
        };
        if let Ok(k) = r.rx.fd().xdp_statistics() {
            c.kernel_rx_dropped = k.rx_dropped();
            c.kernel_rx_ring_full = k.rx_ring_full();
            c.kernel_rx_fill_ring_empty = k.rx_fill_ring_empty_descs();
            c.kernel_tx_invalid = k.tx_invalid_descs();
            c.kernel_tx_ring_empty = k.tx_ring_empty_descs();
        }
        c
    }
}

impl XskTx {
    /// Starts (`Some`) or ends (`None`) the tap.
    pub fn set_tap(&mut self, tap: Option<TapWriter>) {
        self.tap = tap;
    }

    /// Ends a tap whose receiver has gone.
    pub fn reap_tap(&mut self) {
        if self.tap.as_ref().is_some_and(TapWriter::is_stopped) {
            self.tap = None;
        }
    }

    /// Offers a received frame of `port` to the tap.
    #[inline]
    pub fn tap_rx(&mut self, port: PortId, frame: &[u8]) {
        if let Some(t) = &mut self.tap {
            t.copy(port, frame, false);
        }
    }

    fn take_free(&mut self, pool: usize, n: u32) -> Vec<FrameDesc> {
        let free = &mut self.pools[pool].free;
        let at = free.len().saturating_sub(n as usize);
        free.split_off(at)
    }

    /// Free TX frames in the pool of port `port`.
    pub fn free_frames(&self, port: usize) -> usize {
        self.ports.get(port).and_then(Option::as_ref).map_or(0, |p| self.pools[p.pool].free.len())
    }

    /// Copies queued on port `port` not yet handed to the kernel or not yet completed.
    pub fn in_flight(&self, port: usize) -> usize {
        self.ports
            .get(port)
            .and_then(Option::as_ref)
            .map_or(0, |p| p.pending.len() + p.outstanding as usize)
    }

    /// Puts pending copies of port `port` on its TX ring, kicks the kernel until the ring drains
    /// (or stops making progress), and reclaims completed frames into the pool.
    pub fn flush(&mut self, port: usize) {
        let Some(p) = self.ports.get_mut(port).and_then(Option::as_mut) else {
            return;
        };
        let pool = &mut self.pools[p.pool];
        p.reclaim(&mut pool.free, &mut self.comp_buf);
        p.enqueue_pending();
        if p.outstanding == 0 {
            return;
        }
        let mut stalled = 0;
        for _ in 0..MAX_TX_KICKS {
            // Copy mode needs a sendto per ~32 frames whatever the need_wakeup flag says; zero
            // copy only when the driver asks.
            if p.mode == BindMode::Copy || p.tx.needs_wakeup() {
                p.tx_kicks += 1;
                if let Err(e) = p.tx.wakeup() {
                    tracing::debug!(iface = %p.name, error = %e, "TX wakeup failed");
                }
            }
            let done = p.reclaim(&mut pool.free, &mut self.comp_buf);
            p.enqueue_pending();
            if p.outstanding == 0 {
                break;
            }
            if done == 0 {
                stalled += 1;
                if stalled >= 2 {
                    break;
                }
            } else {
                stalled = 0;
            }
        }
    }
}

impl RxPort {
    /// Offers backlog descriptors to the fill ring, never more than its free slots (the ring's
    /// produce is all-or-nothing).
    fn refill(&mut self) {
        if self.fill_backlog.is_empty() {
            return;
        }
        let free = self.fill.nb_free(self.fill_backlog.len() as u32) as usize;
        let n = free.min(self.fill_backlog.len());
        if n == 0 {
            return;
        }
        let at = self.fill_backlog.len() - n;
        // SAFETY: the descriptors are owned by this backlog (moved out of an RX batch or the
        // pool), belong to this port's UMEM, and are removed from the backlog right after, so
        // none is submitted twice. `n` <= free slots, so all are accepted.
        let produced = unsafe { self.fill.produce(&self.fill_backlog[at..]) };
        if produced == n {
            self.fill_backlog.truncate(at);
        }
        // A fill-ring wakeup is only needed for zero-copy drivers; poll(2) in the worker does it
        // for copy mode.
        if self.mode == BindMode::ZeroCopy && self.fill.needs_wakeup() {
            let _ = self.fill.wakeup(self.rx.fd_mut(), 0);
        }
    }
}

impl TxPort {
    /// Moves completed TX frames back to `free`; returns how many.
    fn reclaim(&mut self, free: &mut Vec<FrameDesc>, buf: &mut [FrameDesc]) -> u32 {
        if self.outstanding == 0 {
            return 0;
        }
        let want = (self.outstanding as usize).min(buf.len());
        // SAFETY: the completion ring only returns frames this port put on its TX ring, which
        // belong to this port's pool; `buf` is scratch whose old contents are overwritten.
        let n = unsafe { self.comp.consume(&mut buf[..want]) };
        // Completion descriptors come back with length 0; the length is set again when the
        // frame is next written in `transmit`.
        free.extend_from_slice(&buf[..n]);
        self.outstanding -= n as u32;
        self.tx_completed += n as u64;
        n as u32
    }

    /// Moves as many pending copies onto the TX ring as it has free slots.
    fn enqueue_pending(&mut self) {
        while !self.pending.is_empty() {
            let (a, b) = self.pending.as_slices();
            let chunk = if a.is_empty() { b } else { a };
            let free = self.tx.nb_free(chunk.len() as u32) as usize;
            let n = free.min(chunk.len());
            if n == 0 {
                return;
            }
            // SAFETY: pending descriptors are owned by this port (written by `transmit`, frames
            // of this port's pool); they are drained from `pending` right after, so each is
            // submitted once. `n` <= free slots, so all `n` are accepted.
            let produced = unsafe { self.tx.produce(&chunk[..n]) };
            self.pending.drain(..produced);
            self.outstanding += produced as u32;
            self.tx_queued += produced as u64;
            if produced < n {
                return;
            }
        }
    }
}

/// A UMEM of `frames` frames, all free.
fn new_pool(iface: &str, config: UmemConfig, frames: u32) -> Result<Pool, XskError> {
    let count = NonZeroU32::new(frames).ok_or(XskError::BadFrameCount(frames))?;
    let (umem, free) = Umem::new(config, count, false).map_err(|source| XskError::Umem {
        iface: iface.to_owned(),
        frames,
        source,
    })?;
    Ok(Pool { umem, free })
}

type Sockets = (TxQueue, RxQueue, Option<(FillQueue, CompQueue)>);

/// The RX and TX halves of a freshly bound socket, its fill ring primed with `fill_frames`.
fn make_port(
    spec: &PortSpec,
    pool: usize,
    mode: BindMode,
    sockets: Sockets,
    mut fill_frames: Vec<FrameDesc>,
    ring: u32,
) -> Result<(RxPort, TxPort), XskError> {
    let (tx, rx, rings) = sockets;
    let (fill, comp) = rings.ok_or_else(|| XskError::NoFillRing { iface: spec.name.clone() })?;
    let fd = rx.fd().as_raw_fd();
    let mut rx_port = RxPort {
        name: spec.name.clone(),
        queue: spec.queue,
        mode,
        pool,
        fd,
        rx,
        fill,
        fill_backlog: Vec::with_capacity(ring as usize),
        rx_frames: 0,
    };
    rx_port.fill_backlog.append(&mut fill_frames);
    rx_port.refill();
    let tx_port = TxPort {
        name: spec.name.clone(),
        mode,
        pool,
        tx,
        comp,
        ring_size: ring,
        pending: VecDeque::with_capacity(ring as usize),
        outstanding: 0,
        tx_queued: 0,
        tx_completed: 0,
        tx_kicks: 0,
        enabled: true,
    };
    Ok((rx_port, tx_port))
}

/// Binds a socket for `spec` on `umem`: zero-copy first when allowed, else copy mode.
fn bind(
    spec: &PortSpec,
    umem: &Umem,
    ring: QueueSize,
    force_copy: bool,
) -> Result<(Sockets, BindMode), XskError> {
    let iface: xsk_rs::config::Interface =
        spec.name.parse().map_err(|_| XskError::BadName(spec.name.clone()))?;
    let try_one =
        |mode: BindMode| {
            let bind_flags = match mode {
                BindMode::ZeroCopy => BindFlags::XDP_ZEROCOPY,
                BindMode::Copy => BindFlags::XDP_COPY,
            } | BindFlags::XDP_USE_NEED_WAKEUP;
            let config = SocketConfig::builder()
                .rx_queue_size(ring)
                .tx_queue_size(ring)
                .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
                .bind_flags(bind_flags)
                .build();
            // SAFETY: no other socket of this process is bound to (spec.name, spec.queue): the
            // caller passes each (interface, queue) once, and a failed bind leaves nothing bound.
            unsafe { Socket::new(config, umem, &iface, spec.queue) }.map_err(|source| {
                XskError::Bind { iface: spec.name.clone(), queue: spec.queue, mode, source }
            })
        };
    if spec.try_zero_copy && !force_copy {
        match try_one(BindMode::ZeroCopy) {
            Ok(s) => return Ok((s, BindMode::ZeroCopy)),
            Err(e) => {
                tracing::warn!(iface = %spec.name, error = %e, "zero-copy bind failed; using copy mode");
            }
        }
    }
    Ok((try_one(BindMode::Copy)?, BindMode::Copy))
}

impl TxSink for XskTx {
    fn transmit<F: FnOnce(&mut [u8])>(
        &mut self,
        port: PortId,
        len: usize,
        fill: F,
    ) -> Result<(), DropReason> {
        if len > DATA_ROOM {
            return Err(DropReason::TooBig);
        }
        let Some(slot) = self.ports.get_mut(port.index()) else {
            return Err(DropReason::NoFrame);
        };
        // A detached port (interface gone or down) takes no copies: the copy is not eligible,
        // like one below the TTL threshold, and is counted on that port as such.
        let Some(p) = slot.as_mut().filter(|p| p.enabled) else {
            return Err(DropReason::NoOif);
        };
        if p.pending.len() >= p.ring_size as usize {
            return Err(DropReason::TxRingFull);
        }
        let pool = &mut self.pools[p.pool];
        let Some(mut desc) = pool.free.pop() else {
            return Err(DropReason::NoFrame);
        };
        // SAFETY: `desc` was just popped from this pool's free list, so this code owns the frame
        // exclusively (it is on no ring) and it belongs to `pool.umem`.
        let mut data = unsafe { pool.umem.data_mut(&mut desc) };
        // Sets the descriptor's length: completion descriptors come back with length 0.
        // `len <= DATA_ROOM`, the frame's data capacity, so set_pos does not clamp.
        data.cursor().set_pos(len);
        fill(data.contents_mut());
        if let Some(t) = &mut self.tap {
            t.copy(port, data.contents(), true);
        }
        p.pending.push_back(desc);
        Ok(())
    }
}

/// The IP MTU of interface `name` (`SIOCGIFMTU`), in the calling thread's network namespace.
pub fn link_mtu(name: &str) -> std::io::Result<u16> {
    let bytes = name.as_bytes();
    // SAFETY: an all-zero `ifreq` is a valid value (a C struct of integers, arrays and a union).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if bytes.len() >= req.ifr_name.len() || bytes.contains(&0) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("bad interface name {name:?}"),
        ));
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = libc::c_char::from_ne_bytes([*src]);
    }
    let sock = std::net::UdpSocket::bind("0.0.0.0:0")?;
    // SAFETY: SIOCGIFMTU reads `ifr_name` and writes `ifr_ifru.ifru_mtu` of the valid, exclusively
    // borrowed `req`; `sock` is an open socket for the duration of the call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFMTU, &mut req) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: after a successful SIOCGIFMTU the kernel has written the `ifru_mtu` member.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    u16::try_from(mtu)
        .map_err(|_| std::io::Error::other(format!("MTU {mtu} of {name} out of range")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(frame_count: u32) -> XskConfig {
        XskConfig { frame_count, force_copy: false, batch: 64 }
    }

    #[test]
    fn frame_counts_that_are_not_a_power_of_two_or_out_of_range_are_refused() {
        for bad in [0, 32, 100, 3000, 1 << 17] {
            assert!(
                matches!(XskPorts::open(&[], config(bad)), Err(XskError::BadFrameCount(n)) if n == bad),
                "{bad}"
            );
        }
    }

    #[test]
    fn no_ports_needs_no_kernel_objects() {
        let ports = XskPorts::open(&[], config(64)).expect("empty set");
        assert!(ports.is_empty());
        assert!(ports.bound(0).is_none());
    }

    #[test]
    fn transmit_on_an_unknown_port_or_oversized_is_a_drop_not_a_panic() {
        let mut ports = XskPorts::open(&[], config(64)).expect("empty set");
        assert_eq!(ports.tx().transmit(PortId(3), 60, |_| {}), Err(DropReason::NoFrame));
        assert_eq!(ports.tx().transmit(PortId(0), DATA_ROOM + 1, |_| {}), Err(DropReason::TooBig));
    }

    #[test]
    fn loopback_mtu_is_read_and_bad_names_are_errors() {
        // lo exists in every namespace; its MTU (65536 by default) may not fit the u16 the
        // interface table uses, which must then be a typed error.
        match link_mtu("lo") {
            Ok(mtu) => assert!(mtu >= 1500, "{mtu}"),
            Err(e) => assert!(e.to_string().contains("out of range"), "{e}"),
        }
        assert!(link_mtu("no-such-if-h3").is_err());
        assert!(link_mtu("a-name-much-too-long-for-ifreq").is_err());
    }
}
