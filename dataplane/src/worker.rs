//! The data plane's runtime: the [`Dataplane`] handle the daemon holds, and the worker thread
//! that moves frames between the AF_XDP ports and the pipeline.
//!
//! ```text
//!  Dataplane::start ──► per interface: XdpProgram (load, attach, XSKMAP) ──┐
//!        │                                                                 │ socket fds
//!        └──spawn──► worker thread: XskPorts::open (one UMEM, socket/port) ┘
//!                     loop {   (thread "fanout-wk-q0")
//!                       poll(all RX fds, 0 ms if busy else 100 ms)   ← stop flag seen here
//!                       mfib = MfibHandle::load()                    (one load per round)
//!                       per port: rx batch ─► Pipeline::process ─► XskTx (TxSink)
//!                                                 └─ Punt ─► bounded channel (try_send)
//!                       flush TX per port, reclaim completions
//!                       LocalStats::publish ─► SharedStats (relaxed atomics) ─► stats()
//!                     }
//! ```
//!
//! Invariants: the worker owns the sockets and the UMEM (they are created and dropped on its
//! thread); the handle owns the XDP programs, so programs outlive the sockets they redirect to
//! and are detached after the worker has stopped. A full punt channel drops the punt and counts
//! it ([`Dataplane::punts_dropped`]); the worker never blocks on the control plane. One worker
//! serves queue 0 of every interface (veth has one queue); more queues would mean one worker
//! per queue index with its own `XskPorts`.
//!
//! A pcap tap can be added as one more bounded channel the worker `try_send`s copies of frames
//! into (the same pattern as punts), without touching the pipeline.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{bounded, Receiver, Sender};
use serde::{Deserialize, Serialize};
use wire::ethernet::EthernetAddress;

use crate::bpf::{BpfError, XdpCounters, XdpMode, XdpProgram};
use crate::iface::{IfaceError, Interface, InterfaceTable, PortId};
use crate::mfib::{IfIndex, MfibHandle, MfibUpdate, Punt};
use crate::overlay::{KeyTable, OverlayConfig, OverlayConfigError};
use crate::pipeline::{Outcome, Pipeline, PipelineConfig};
use crate::stats::{LocalStats, SharedStats, StatsSnapshot};
use crate::tap::{TapReceiver, TapWriter};
use crate::xsk::{BindMode, PortSpec, UmemSharing, XskConfig, XskCounters, XskError, XskPorts};

/// poll(2) timeout when the last round found no frames: bounds both idle CPU and how long
/// `stop` waits for the worker.
const IDLE_POLL_MS: i32 = 100;
/// How often the worker refreshes the socket counters (a getsockopt per port).
const XSK_COUNTER_PERIOD: Duration = Duration::from_millis(200);
/// Punts waiting for the control plane; beyond this they are dropped and counted.
const PUNT_QUEUE: usize = 1024;
/// The receive queue bound on each interface.
const QUEUE: u32 = 0;
/// How long the handle waits for the worker to carry out a port command (it looks at commands
/// once per round, i.e. within one idle poll timeout).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// What [`Dataplane::start`] needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DataplaneConfig {
    pub interfaces: Vec<String>,
    /// UDP port of overlay data; 0 = overlay off (not steered by XDP, not decapsulated).
    pub overlay_port: u16,
    pub overlay: OverlayConfig,
    /// UMEM frames per port (power of two, 64..=65536); half feed the fill ring, half TX.
    pub frame_count: u32,
    /// Frames read per port per round.
    pub batch: usize,
    /// Bind AF_XDP sockets in copy mode even where zero-copy is offered.
    pub force_copy_mode: bool,
    /// Attach XDP in generic (SKB) mode even where native mode works.
    pub force_skb_mode: bool,
    /// Punts (packets without a route) per second handed to the control plane, and the burst
    /// allowed above that rate: a flood of new sources must not become a flood of control work.
    pub punt_rate: u32,
    pub punt_burst: u32,
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        Self {
            interfaces: Vec::new(),
            overlay_port: 0,
            overlay: OverlayConfig::default(),
            // 8192 × 2 KiB = 16 MiB per port: 4096 fill frames absorb ~40 ms of a 100 kpps burst
            // while the worker waits for a CPU (measured: 2048 lost frames on a loaded host).
            frame_count: 8192,
            batch: 64,
            force_copy_mode: false,
            force_skb_mode: false,
            punt_rate: PipelineConfig::default().punt_rate,
            punt_burst: PipelineConfig::default().punt_burst,
        }
    }
}

/// One data-plane port as `fanoutctl show interfaces` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortInfo {
    pub port: u16,
    pub name: String,
    pub ifindex: u32,
    pub mac: EthernetAddress,
    pub ipv4: Ipv4Addr,
    pub mtu: u16,
    pub xdp_mode: XdpMode,
    pub bind_mode: BindMode,
    pub queue: u32,
    pub umem: UmemSharing,
    /// `up`, or `detached` while its interface is gone or down (see [`Dataplane::detach_port`]).
    pub state: PortState,
}

/// Whether a port forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortState {
    /// XDP attached, AF_XDP socket bound.
    Up,
    /// No socket and no XDP program: nothing is received there and copies routed there are
    /// counted as `no_oif` drops of that port. The port id (and the routes using it) stay.
    Detached,
}

impl PortState {
    pub fn name(self) -> &'static str {
        match self {
            PortState::Up => "up",
            PortState::Detached => "detached",
        }
    }
}

/// Per-port counters below the pipeline: the XDP program's and the AF_XDP socket's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortIoStats {
    pub name: String,
    pub xdp: XdpCounters,
    pub xsk: XskCounters,
}

#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error("no interfaces configured")]
    NoInterfaces,
    #[error("interface {iface}: {reason}")]
    Interface { iface: String, reason: String },
    #[error(transparent)]
    Iface(#[from] IfaceError),
    #[error(transparent)]
    Bpf(#[from] BpfError),
    #[error(transparent)]
    Xsk(#[from] XskError),
    #[error("overlay configuration: {0}")]
    Overlay(#[from] OverlayConfigError),
    #[error("spawning the worker thread failed: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("the worker thread exited before reporting its sockets")]
    WorkerGone,
    #[error("the worker thread panicked")]
    WorkerPanicked,
    #[error("interface {0} is not one of the data plane's interfaces")]
    UnknownInterface(String),
    #[error("the worker did not answer a port command within {COMMAND_TIMEOUT:?}")]
    WorkerTimeout,
    #[error("a packet capture is already running; one at a time")]
    TapBusy,
}

/// A port change the worker carries out between two rounds (it owns the sockets).
enum Command {
    /// Close the port's socket (its interface is gone).
    Close { port: PortId, done: Sender<()> },
    /// Stop or resume transmitting on the port (its interface went down or came back up).
    SetTx { port: PortId, enabled: bool, done: Sender<()> },
    /// Bind the port again (its interface was re-created) and take `table` for the pipeline.
    Attach { port: PortId, spec: PortSpec, table: InterfaceTable, done: Sender<AttachResult> },
    /// Start a `debug pcap` tap (replacing any other).
    Tap { writer: TapWriter, done: Sender<()> },
    /// Take new overlay keys (rotation by reload); `overlay` is what a re-attach rebuilds from.
    OverlayKeys { keys: Box<KeyTable>, overlay: OverlayConfig, done: Sender<()> },
}

type AttachResult = Result<(crate::xsk::BoundPort, UmemSharing), DataplaneError>;

/// What attaching a port again needs from the start configuration.
#[derive(Debug, Clone, Copy)]
struct AttachSettings {
    force_skb_mode: bool,
    force_copy_mode: bool,
}

/// State shared between the handle and the worker.
#[derive(Debug)]
struct Shared {
    stop: AtomicBool,
    stats: SharedStats,
    punts_dropped: AtomicU64,
    xsk: Mutex<Vec<XskCounters>>,
}

/// The running data plane. Dropping it stops the worker and detaches XDP.
#[derive(Debug)]
pub struct Dataplane {
    ifaces: InterfaceTable,
    ports: Vec<PortInfo>,
    mfib: MfibHandle,
    shared: Arc<Shared>,
    punts: Receiver<Punt>,
    worker: Option<JoinHandle<()>>,
    commands: Sender<Command>,
    settings: AttachSettings,
    /// Per port, loaded once at start: a port attached again at run time re-attaches the same
    /// program (loading needs CAP_PERFMON/CAP_SYS_ADMIN for the verifier's packet-pointer
    /// checks, which fanoutd drops after set-up; attaching needs only CAP_NET_ADMIN). Detached
    /// in `shutdown`, after the worker (and with it every socket) is gone.
    programs: Vec<XdpProgram>,
    /// Per port: whether its socket is still bound. A port whose interface went down keeps
    /// socket and program (nothing arrives on a down interface) and comes back by re-enabling
    /// TX; only a vanished interface closes the socket.
    bound: Vec<bool>,
    /// The running tap's stop flag (set when its receiver is dropped).
    tap: std::sync::Weak<AtomicBool>,
    baseline: Mutex<(StatsSnapshot, Vec<XdpCounters>)>,
    /// The overlay settings in force (keys change by [`Dataplane::set_overlay_keys`]).
    overlay: OverlayConfig,
}

impl Dataplane {
    /// Discovers the interfaces, loads and attaches one XDP program per interface, starts the
    /// worker (which binds the AF_XDP sockets) and registers the sockets in the XSKMAPs.
    /// Runs in the calling thread's network namespace (the worker inherits it).
    #[expect(
        clippy::needless_pass_by_value,
        reason = "the agreed API: the daemon hands its config over"
    )]
    pub fn start(config: DataplaneConfig) -> Result<Dataplane, DataplaneError> {
        if config.interfaces.is_empty() {
            return Err(DataplaneError::NoInterfaces);
        }
        let mut ifaces = InterfaceTable::new();
        for (i, name) in config.interfaces.iter().enumerate() {
            let port = ifaces.add(discover(name)?)?;
            if port.index() != i {
                return Err(DataplaneError::Interface {
                    iface: name.clone(),
                    reason: format!("got port {port}, expected {i}: ports must be dense"),
                });
            }
        }
        let pipeline_config = PipelineConfig {
            overlay_port: config.overlay_port,
            overlay: config.overlay.clone(),
            punt_rate: config.punt_rate,
            punt_burst: config.punt_burst,
        };
        let pipeline = Pipeline::new(&pipeline_config, ifaces.clone())?;

        let mut programs = Vec::with_capacity(config.interfaces.len());
        let mut specs = Vec::with_capacity(config.interfaces.len());
        for name in &config.interfaces {
            let mut prog = XdpProgram::load(name, config.overlay_port)?;
            let mode = prog.attach(name, config.force_skb_mode)?;
            tracing::info!(iface = %name, %mode, "XDP program attached");
            specs.push(PortSpec {
                name: name.clone(),
                queue: QUEUE,
                try_zero_copy: !config.force_copy_mode && prog.xsk_zero_copy_advertised(),
            });
            programs.push(prog);
        }

        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            stats: SharedStats::new(),
            punts_dropped: AtomicU64::new(0),
            xsk: Mutex::new(vec![XskCounters::default(); specs.len()]),
        });
        let (punt_tx, punts) = bounded(PUNT_QUEUE);
        let (ready_tx, ready_rx) = bounded(1);
        let (commands, command_rx) = bounded(4);
        let xsk_config = XskConfig {
            frame_count: config.frame_count,
            force_copy: config.force_copy_mode,
            batch: config.batch,
        };
        let mfib = MfibHandle::new();
        let worker = {
            let shared = Arc::clone(&shared);
            let mfib = mfib.clone();
            std::thread::Builder::new()
                .name("fanout-wk-q0".into())
                .spawn(move || {
                    let io = WorkerIo { punts: punt_tx, ready: ready_tx, commands: command_rx };
                    worker_main(&specs, xsk_config, pipeline, pipeline_config, &mfib, &shared, &io);
                })
                .map_err(DataplaneError::Spawn)?
        };
        let mut dp = Dataplane {
            ifaces,
            ports: Vec::new(),
            mfib,
            shared,
            punts,
            worker: Some(worker),
            commands,
            settings: AttachSettings {
                force_skb_mode: config.force_skb_mode,
                force_copy_mode: config.force_copy_mode,
            },
            bound: vec![true; programs.len()],
            tap: std::sync::Weak::new(),
            overlay: config.overlay.clone(),
            programs,
            baseline: Mutex::new((StatsSnapshot::default(), Vec::new())),
        };
        // On any error below, dropping `dp` stops the worker and detaches the programs.
        let bound = ready_rx.recv().map_err(|_| DataplaneError::WorkerGone)??;
        for (i, (b, umem)) in bound.iter().enumerate() {
            let prog = &dp.programs[i];
            // The worker keeps the socket open while it runs; the map holds its own reference after this.
            prog.register_xsk(b.queue, b.fd)?;
            let iface =
                dp.ifaces.get(PortId(i as u16)).cloned().ok_or(DataplaneError::WorkerGone)?;
            tracing::info!(iface = %b.name, bind = %b.mode, ?umem, "AF_XDP socket bound");
            dp.ports.push(PortInfo {
                port: i as u16,
                name: iface.name,
                ifindex: iface.ifindex.0,
                mac: iface.mac,
                ipv4: iface.ipv4,
                mtu: iface.mtu,
                xdp_mode: prog.mode().unwrap_or(XdpMode::Skb),
                bind_mode: b.mode,
                queue: b.queue,
                umem: *umem,
                state: PortState::Up,
            });
        }
        Ok(dp)
    }

    /// Stops forwarding on `name` (its interface was removed or went down). The port keeps its
    /// id and its routes; copies routed there are counted as `no_oif` drops of the port. If the
    /// interface still exists (down), socket and XDP program stay in place and only TX stops;
    /// if it is gone, the worker closes the socket and the program's attachment is forgotten
    /// (the kernel removed it with the device). Returns whether the port was up.
    pub fn detach_port(&mut self, name: &str) -> Result<bool, DataplaneError> {
        let port = self.port(name)?;
        let i = port.index();
        if self.ports[i].state == PortState::Detached {
            return Ok(false);
        }
        self.ports[i].state = PortState::Detached;
        let ifindex = self.ports[i].ifindex;
        let still_there = nix::net::if_::if_nametoindex(name).ok() == Some(ifindex);
        if still_there {
            self.command(|done| Command::SetTx { port, enabled: false, done })?;
        } else {
            self.close(port)?;
        }
        tracing::info!(iface = %name, ifindex, socket_kept = still_there, "data plane port detached");
        Ok(true)
    }

    /// (Re)starts forwarding on `name` (its interface came up, or appeared again, maybe with a
    /// new ifindex, MAC or address). Same interface: TX resumes on the kept socket. A new one:
    /// the port's XDP program is attached to it, the worker binds a new socket, and the MFIB
    /// entries naming the old ifindex are rewritten to the new one (counters kept). Refused
    /// while the interface is down or has no IPv4 address. A port that is up on the same
    /// ifindex is left alone. Returns the port as it now is.
    pub fn attach_port(&mut self, name: &str) -> Result<PortInfo, DataplaneError> {
        let port = self.port(name)?;
        let i = port.index();
        let iface = discover(name)?;
        if !is_up(name) {
            return Err(DataplaneError::Interface {
                iface: name.to_owned(),
                reason: "is down (IFF_UP not set)".into(),
            });
        }
        let same = self.ports[i].ifindex == iface.ifindex.0;
        match (self.ports[i].state, self.bound[i] && same) {
            (PortState::Up, true) => return Ok(self.ports[i].clone()),
            (PortState::Detached, true) => {
                self.command(|done| Command::SetTx { port, enabled: true, done })?;
                self.ports[i].state = PortState::Up;
                tracing::info!(iface = %name, ifindex = iface.ifindex.0, "data plane port up again");
                return Ok(self.ports[i].clone());
            }
            (_, false) => {
                // A different device under the name (the old one went away unnoticed, or is
                // gone now): its socket cannot be reused.
                self.ports[i].state = PortState::Detached;
                if self.bound[i] {
                    self.close(port)?;
                }
            }
        }
        let old_ifindex = IfIndex(self.ports[i].ifindex);
        let mut table = self.ifaces.clone();
        table.replace(port, iface.clone())?;
        let mode = self.programs[i].attach(name, self.settings.force_skb_mode)?;
        let (bound, umem) = match self.bind_port(port, table.clone()) {
            Ok(b) => b,
            Err(e) => {
                // Leaves the port as it was: detached, program not attached, no socket.
                let _ = self.close(port);
                let _ = self.programs[i].detach();
                return Err(e);
            }
        };
        self.bound[i] = true;
        self.ifaces = table;
        self.rename_in_mfib(old_ifindex, iface.ifindex);
        tracing::info!(iface = %name, ifindex = iface.ifindex.0, xdp = %mode, bind = %bound.mode, ?umem, "data plane port attached");
        self.ports[i] = PortInfo {
            port: port.0,
            name: iface.name,
            ifindex: iface.ifindex.0,
            mac: iface.mac,
            ipv4: iface.ipv4,
            mtu: iface.mtu,
            xdp_mode: mode,
            bind_mode: bound.mode,
            queue: bound.queue,
            umem,
            state: PortState::Up,
        };
        Ok(self.ports[i].clone())
    }

    /// Starts a tap on `name` for `fanoutctl debug pcap`: copies of the frames the port
    /// receives (and of those the pipeline transmits there, with `tx`), at most `snaplen`
    /// bytes each, through `capacity` buffers allocated now. One tap at a time: a running one
    /// is an error. Dropping the receiver stops the tap.
    /// Replaces the overlay authentication keys and the key packets are signed with (rotation
    /// without a restart: list the old and the new key while peers change over). The key table
    /// is built here, so the worker only swaps it between two rounds; returns once it is in
    /// effect.
    pub fn set_overlay_keys(
        &mut self,
        keys: &[crate::overlay::OverlayKey],
        send_key: Option<u8>,
    ) -> Result<(), DataplaneError> {
        let table = KeyTable::new(keys, send_key)?;
        let overlay = OverlayConfig { keys: keys.to_vec(), send_key, ..self.overlay.clone() };
        self.command(|done| Command::OverlayKeys {
            keys: Box::new(table),
            overlay: overlay.clone(),
            done,
        })?;
        self.overlay = overlay;
        Ok(())
    }

    pub fn start_tap(
        &mut self,
        name: &str,
        snaplen: usize,
        capacity: usize,
        tx: bool,
    ) -> Result<TapReceiver, DataplaneError> {
        let port = self.port(name)?;
        if let Some(running) = self.tap.upgrade().filter(|r| !r.load(Ordering::Relaxed)) {
            drop(running);
            return Err(DataplaneError::TapBusy);
        }
        let (writer, receiver) = crate::tap::tap(port, snaplen, capacity, tx);
        self.tap = receiver.stop_flag();
        // Waits for the worker (at most one idle poll), so every frame after this returns is
        // captured.
        self.command(|done| Command::Tap { writer, done })?;
        Ok(receiver)
    }

    fn port(&self, name: &str) -> Result<PortId, DataplaneError> {
        self.ifaces
            .port_by_name(name)
            .ok_or_else(|| DataplaneError::UnknownInterface(name.to_owned()))
    }

    /// Sends a command to the worker and waits until it has been carried out.
    fn command(&self, make: impl FnOnce(Sender<()>) -> Command) -> Result<(), DataplaneError> {
        let (done, wait) = bounded(1);
        self.commands.send(make(done)).map_err(|_| DataplaneError::WorkerGone)?;
        wait.recv_timeout(COMMAND_TIMEOUT).map_err(|e| match e {
            crossbeam::channel::RecvTimeoutError::Timeout => DataplaneError::WorkerTimeout,
            crossbeam::channel::RecvTimeoutError::Disconnected => DataplaneError::WorkerGone,
        })
    }

    /// Closes the port's socket and forgets the program's attachment (detaching it if the
    /// device still has it).
    fn close(&mut self, port: PortId) -> Result<(), DataplaneError> {
        let i = port.index();
        let closed = self.command(|done| Command::Close { port, done });
        self.bound[i] = false;
        if let Err(e) = self.programs[i].detach() {
            let info = &self.ports[i];
            // A removed interface took its XDP attachment with it.
            if nix::net::if_::if_nametoindex(info.name.as_str()).ok() == Some(info.ifindex) {
                return Err(e.into());
            }
        }
        closed
    }

    /// Has the worker bind port `port` (with `table` for its pipeline) and puts the socket in
    /// the XSKMAP of the port's (attached) program.
    fn bind_port(
        &self,
        port: PortId,
        table: InterfaceTable,
    ) -> Result<(crate::xsk::BoundPort, UmemSharing), DataplaneError> {
        let prog = &self.programs[port.index()];
        let spec = PortSpec {
            name: self.ports[port.index()].name.clone(),
            queue: QUEUE,
            try_zero_copy: !self.settings.force_copy_mode && prog.xsk_zero_copy_advertised(),
        };
        let (done, wait) = bounded(1);
        self.commands
            .send(Command::Attach { port, spec, table, done })
            .map_err(|_| DataplaneError::WorkerGone)?;
        let (bound, umem) = wait.recv_timeout(COMMAND_TIMEOUT).map_err(|e| match e {
            crossbeam::channel::RecvTimeoutError::Timeout => DataplaneError::WorkerTimeout,
            crossbeam::channel::RecvTimeoutError::Disconnected => DataplaneError::WorkerGone,
        })??;
        prog.register_xsk(bound.queue, bound.fd)?;
        Ok((bound, umem))
    }

    /// Re-installs every MFIB entry naming `old` with `new` instead (the port behind both is
    /// the same, so forwarding never depended on it; the specs the control plane reads do).
    fn rename_in_mfib(&self, old: IfIndex, new: IfIndex) {
        if old == new {
            return;
        }
        let swap = |i: &mut IfIndex| {
            if *i == old {
                *i = new;
            }
        };
        let mut updates = Vec::new();
        for view in self.mfib.routes() {
            let mut r = view.route;
            if r.iif == old || r.oifs.iter().any(|o| o.ifindex == old) {
                swap(&mut r.iif);
                r.oifs.iter_mut().for_each(|o| swap(&mut o.ifindex));
                updates.push(MfibUpdate::Install(r));
            }
        }
        for view in self.mfib.overlay_routes() {
            let mut r = view.route;
            if r.deliver.iter().any(|o| o.ifindex == old) {
                r.deliver.iter_mut().for_each(|o| swap(&mut o.ifindex));
                updates.push(MfibUpdate::InstallOverlay(r));
            }
        }
        for mut n in self.mfib.neighbors() {
            if n.ifindex == old {
                n.ifindex = new;
                updates.push(MfibUpdate::SetNeighbor(n));
            }
        }
        if updates.is_empty() {
            return;
        }
        if let Err(e) = self.mfib.apply(&updates, &self.ifaces) {
            // Cannot happen: every update names ports of the current table.
            tracing::error!(error = %e, "renaming an ifindex in the MFIB failed");
        }
    }

    /// The MFIB the worker forwards with: apply `MfibUpdate` batches through it.
    pub fn mfib(&self) -> MfibHandle {
        self.mfib.clone()
    }

    /// The interface table (port ids ↔ ifindex), needed by `MfibHandle::apply`.
    pub fn interface_table(&self) -> &InterfaceTable {
        &self.ifaces
    }

    pub fn interfaces(&self) -> Vec<PortInfo> {
        self.ports.clone()
    }

    /// Pipeline counters per port since start or the last [`Dataplane::clear_stats`].
    pub fn stats(&self) -> StatsSnapshot {
        let now = self.shared.stats.snapshot(&self.ifaces);
        let base = self.baseline.lock().unwrap_or_else(PoisonError::into_inner);
        now.since(&base.0)
    }

    /// XDP program and AF_XDP socket counters per port (XDP ones since the last clear; socket
    /// ones are refreshed by the worker every 200 ms and are cumulative).
    pub fn io_stats(&self) -> Vec<PortIoStats> {
        let xsk = self.shared.xsk.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let base = self.baseline.lock().unwrap_or_else(PoisonError::into_inner);
        self.programs
            .iter()
            .zip(&self.ports)
            .enumerate()
            .map(|(i, (prog, info))| {
                let xdp = prog.counters().unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "reading XDP counters failed");
                    XdpCounters::default()
                });
                let base_xdp = base.1.get(i).copied().unwrap_or_default();
                PortIoStats {
                    name: info.name.clone(),
                    xdp: xdp.since(&base_xdp),
                    xsk: xsk.get(i).copied().unwrap_or_default(),
                }
            })
            .collect()
    }

    /// Makes later [`Dataplane::stats`] / [`Dataplane::io_stats`] count from now.
    pub fn clear_stats(&self) {
        let snap = self.shared.stats.snapshot(&self.ifaces);
        let xdp = self.programs.iter().map(|p| p.counters().unwrap_or_default()).collect();
        *self.baseline.lock().unwrap_or_else(PoisonError::into_inner) = (snap, xdp);
    }

    /// Packets without a route, for the control plane (bounded; see `punts_dropped`).
    pub fn punts(&self) -> Receiver<Punt> {
        self.punts.clone()
    }

    /// Punts dropped because the channel was full.
    pub fn punts_dropped(&self) -> u64 {
        self.shared.punts_dropped.load(Ordering::Relaxed)
    }

    /// Stops the worker (closing the sockets), then detaches the XDP programs.
    pub fn stop(mut self) -> Result<(), DataplaneError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), DataplaneError> {
        self.shared.stop.store(true, Ordering::Relaxed);
        let joined = match self.worker.take() {
            Some(h) => h.join().map_err(|_| DataplaneError::WorkerPanicked),
            None => Ok(()),
        };
        let mut detach = Ok(());
        for (prog, info) in self.programs.iter_mut().zip(&self.ports) {
            if let Err(e) = prog.detach() {
                // An interface removed since took its XDP attachment with it.
                if nix::net::if_::if_nametoindex(info.name.as_str()).ok() == Some(info.ifindex) {
                    detach = Err(e.into());
                }
            }
        }
        joined.and(detach)
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(error = %e, "data plane shutdown");
        }
    }
}

/// Reads name, ifindex, MAC, first IPv4 address and MTU of `name` in this network namespace.
fn discover(name: &str) -> Result<Interface, DataplaneError> {
    let err = |reason: String| DataplaneError::Interface { iface: name.to_owned(), reason };
    let ifindex =
        nix::net::if_::if_nametoindex(name).map_err(|e| err(format!("not found: {e}")))?;
    let mut mac = None;
    let mut ipv4 = None;
    for ifa in nix::ifaddrs::getifaddrs().map_err(|e| err(format!("getifaddrs: {e}")))? {
        if ifa.interface_name != name {
            continue;
        }
        let Some(addr) = ifa.address else { continue };
        if let Some(link) = addr.as_link_addr().and_then(nix::sys::socket::LinkAddr::addr) {
            mac = Some(EthernetAddress(link));
        }
        if let Some(sin) = addr.as_sockaddr_in() {
            ipv4.get_or_insert(sin.ip());
        }
    }
    let mac = mac.ok_or_else(|| err("no MAC address (not an Ethernet device?)".into()))?;
    let ipv4 = ipv4.ok_or_else(|| err("no IPv4 address".into()))?;
    let mtu = crate::xsk::link_mtu(name).map_err(|e| err(format!("reading the MTU: {e}")))?;
    Ok(Interface { ifindex: IfIndex(ifindex), name: name.to_owned(), mac, ipv4, mtu })
}

/// Whether `name` is administratively up (`IFF_UP`) in this network namespace.
fn is_up(name: &str) -> bool {
    nix::ifaddrs::getifaddrs().is_ok_and(|mut all| {
        all.any(|ifa| {
            ifa.interface_name == name && ifa.flags.contains(nix::net::if_::InterfaceFlags::IFF_UP)
        })
    })
}

type Ready = Result<Vec<(crate::xsk::BoundPort, UmemSharing)>, DataplaneError>;

/// The worker's channels to the handle.
struct WorkerIo {
    punts: Sender<Punt>,
    ready: Sender<Ready>,
    commands: Receiver<Command>,
}

fn worker_main(
    specs: &[PortSpec],
    xsk_config: XskConfig,
    mut pipeline: Pipeline,
    mut pipeline_config: PipelineConfig,
    mfib: &MfibHandle,
    shared: &Shared,
    io: &WorkerIo,
) {
    let mut ports = match XskPorts::open(specs, xsk_config) {
        Ok(p) => p,
        Err(e) => {
            let _ = io.ready.send(Err(e.into()));
            return;
        }
    };
    let bound =
        (0..ports.len()).filter_map(|i| ports.bound(i)).map(|b| (b, ports.sharing())).collect();
    if io.ready.send(Ok(bound)).is_err() {
        return;
    }
    let mut stats = LocalStats::new();
    let start = Instant::now();
    let mut last_counters = start;
    let mut busy = false;
    while !shared.stop.load(Ordering::Relaxed) {
        // One non-blocking look per round; commands are rare (interfaces coming and going).
        while let Ok(cmd) = io.commands.try_recv() {
            run_command(cmd, &mut ports, &mut pipeline, &mut pipeline_config);
        }
        ports.tx().reap_tap();
        if let Err(e) = ports.poll(if busy { 0 } else { IDLE_POLL_MS }) {
            tracing::error!(error = %e, "poll on AF_XDP sockets failed");
            std::thread::sleep(Duration::from_millis(IDLE_POLL_MS as u64));
            continue;
        }
        busy = false;
        let table = mfib.load();
        let now = start.elapsed();
        for port in 0..ports.len() {
            let iif = PortId(port as u16);
            let n = ports.rx_batch(port, |frame, tx| {
                tx.tap_rx(iif, frame);
                if let Outcome::Punt(punt) =
                    pipeline.process(&table, iif, frame, now, tx, &mut stats)
                {
                    if io.punts.try_send(punt).is_err() {
                        shared.punts_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
            busy |= n > 0;
        }
        ports.flush_all();
        if busy {
            stats.publish(&shared.stats);
        }
        let t = Instant::now();
        if t.duration_since(last_counters) >= XSK_COUNTER_PERIOD {
            last_counters = t;
            publish_counters(&ports, shared);
        }
    }
    // Final flush and publish so counters read after stop() are complete.
    ports.flush_all();
    stats.publish(&shared.stats);
    publish_counters(&ports, shared);
}

/// Socket counters of the attached ports (a detached port keeps its last values).
fn publish_counters(ports: &XskPorts, shared: &Shared) {
    let mut out = shared.xsk.lock().unwrap_or_else(PoisonError::into_inner);
    for (i, slot) in out.iter_mut().enumerate() {
        if ports.is_attached(i) {
            *slot = ports.counters(i);
        }
    }
}

fn run_command(
    cmd: Command,
    ports: &mut XskPorts,
    pipeline: &mut Pipeline,
    pipeline_config: &mut PipelineConfig,
) {
    match cmd {
        Command::Close { port, done } => {
            // Copies already queued for the port go out first where the socket still works.
            ports.tx().flush(port.index());
            if let Some(lost) = ports.detach(port.index()).filter(|n| *n > 0) {
                tracing::warn!(%port, lost, "TX frames lost with the closed socket");
            }
            let _ = done.send(());
        }
        Command::SetTx { port, enabled, done } => {
            ports.set_tx_enabled(port.index(), enabled);
            let _ = done.send(());
        }
        Command::Tap { writer, done } => {
            ports.tx().set_tap(Some(writer));
            let _ = done.send(());
        }
        Command::OverlayKeys { keys, overlay, done } => {
            pipeline.set_keys(*keys);
            pipeline_config.overlay = overlay;
            let _ = done.send(());
        }
        Command::Attach { port, spec, table, done } => {
            let result =
                Pipeline::new(pipeline_config, table).map_err(DataplaneError::from).and_then(|p| {
                    let bound = ports.attach(port.index(), &spec)?;
                    // The pipeline reads MAC and address of its ports from its table.
                    *pipeline = p;
                    Ok((bound, ports.sharing()))
                });
            let _ = done.send(result);
        }
    }
}

// The daemon moves the handle between threads and shares it (e.g. behind an Arc).
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Dataplane>();
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_without_interfaces_is_refused() {
        assert!(matches!(
            Dataplane::start(DataplaneConfig::default()),
            Err(DataplaneError::NoInterfaces)
        ));
    }

    #[test]
    fn an_unknown_interface_is_named_in_the_error() {
        let config = DataplaneConfig {
            interfaces: vec!["no-such-if-h3".into()],
            ..DataplaneConfig::default()
        };
        match Dataplane::start(config) {
            Err(DataplaneError::Interface { iface, .. }) => assert_eq!(iface, "no-such-if-h3"),
            other => panic!("expected an interface error, got {other:?}"),
        }
    }

    #[test]
    fn config_defaults_fill_in_missing_fields() {
        let config: DataplaneConfig =
            serde_json::from_str(r#"{"interfaces": ["eth1", "eth2"], "overlay_port": 4790}"#)
                .expect("parse");
        assert_eq!(config.interfaces, ["eth1", "eth2"]);
        assert_eq!(config.overlay_port, 4790);
        assert_eq!((config.frame_count, config.batch), (8192, 64));
        assert!(!config.force_copy_mode && !config.force_skb_mode);
    }
}
