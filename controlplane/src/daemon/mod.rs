//! fanoutd's runtime: one event loop that owns all state, fed by one input enum.
//!
//! ```text
//!   ctl unix socket ── conn threads ──┐ Input::Ctl{request, reply}
//!   metrics TCP ── accept thread ─────┤ Input::Metrics{reply}
//!   signal thread (sigwait) ──────────┤ Input::Reload (SIGHUP), Input::Stop (SIGTERM/SIGINT)
//!   IGMP raw socket readers (Nx) ─────┤ Input::Igmp{interface, src, dst, msg},
//!                                     │ Input::Dvmrp{ifindex, src, msg} (IGMP type 0x13)
//!   timer (select timeout) ───────────┤ Input::Tick at the earliest protocol deadline
//!                                     ▼
//!                      ┌────────────────────────────┐  MfibUpdate batches  ┌─────────────┐
//!   data plane punts ─►│ event loop: Daemon::handle │─────────────────────►│  Backend    │
//!                      │  static routes | IGMP cores│  counters, routes ◄──│ (AF_XDP)    │
//!                      │  DVMRP core (mode dvmrp)   │                      └─────────────┘
//!                      └────────────────────────────┘──► raw sockets: IGMP/DVMRP sends
//! ```
//!
//! Invariants: only the loop touches [`Daemon`]; tasks only send [`Input`]s and wait for replies
//! on their own channel. An error while handling an input is logged (and returned to the ctl
//! client that caused it) and the loop carries on; only [`Input::Stop`] ends it. The running
//! configuration changes only through a reload that validated completely and whose route
//! difference the data plane accepted; otherwise the old configuration stays in force.

pub mod backend;
pub mod dvmrp;
pub mod igmp;
pub mod link_local;
pub mod linkstate;
#[cfg(feature = "daemon")]
pub mod netlink;
pub mod overlay;
pub mod privileges;
pub mod routes;
pub mod tasks;
#[cfg(feature = "daemon")]
pub mod xdp;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crossbeam::channel::{never, select, Receiver, Sender};
use dataplane_api::{IfIndex, Punt};
use tracing::{debug, error, info, warn};

use self::backend::{ApplyError, Backend, DataplaneCounters};
use self::routes::{StaticTables, UnresolvedInterface};
use crate::config::{Config, ConfigError, LogLevel};
use crate::ctl::{
    ClearData, ClearWhat, ConfiguredRoute, ControlCounters, CountersData, InterfaceCounters,
    InterfaceState, InterfacesData, MrouteData, MrouteEntry, MrouteOif, OverlayData,
    OverlayNeighbor, OverlayRouteEntry, ReloadData, Request, Response, RoutesData, ShowWhat,
};
use crate::metrics::{self, MetricsInput};

/// Everything the event loop reacts to.
#[derive(Debug)]
pub enum Input {
    /// A ctl request; the response goes to `reply`.
    Ctl { request: Request, reply: Sender<Response> },
    /// A Prometheus scrape; the exposition text goes to `reply`.
    Metrics { reply: Sender<String> },
    /// Re-read the configuration (SIGHUP).
    Reload,
    /// A multicast packet without a route (from the data plane).
    Punt(Punt),
    /// A DVMRP message received on `ifindex` from `src`.
    Dvmrp { ifindex: IfIndex, src: Ipv4Addr, msg: wire::dvmrp::DvmrpRepr },
    /// A link-state datagram (IPv4 protocol 253; `bytes` is the IP payload) received on
    /// `ifindex` from `src`.
    LinkState { ifindex: IfIndex, src: Ipv4Addr, bytes: Vec<u8> },
    /// An IGMP message received on `interface`.
    Igmp { interface: String, src: Ipv4Addr, dst: Ipv4Addr, msg: wire::igmp::IgmpRepr },
    /// A datagram received on the overlay control port (UDP 7411) from `src`.
    Overlay { src: Ipv4Addr, payload: Vec<u8> },
    /// A protocol timer is due.
    Tick,
    /// An interface appeared, disappeared, went up or down, or got an address (netlink).
    Link(backend::LinkEvent),
    /// A control datagram a socket reader could not parse (counted, otherwise ignored).
    Rejected(RejectedControl),
    /// Stop the loop (SIGTERM/SIGINT).
    Stop,
}

/// Which parser refused a datagram ([`Input::Rejected`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectedControl {
    Igmp,
    Dvmrp,
}

/// What the loop should do after an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// Why a reload was refused (the running configuration stays in force).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0} changed; restart fanoutd to apply it (running configuration kept)")]
    NeedsRestart(String),
    #[error("{0} (running configuration kept)")]
    Unresolved(#[from] UnresolvedInterface),
    #[error("{0} (running configuration kept)")]
    Apply(#[from] ApplyError),
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Unresolved(#[from] UnresolvedInterface),
    #[error("installing static routes: {0}")]
    Apply(#[from] ApplyError),
    #[error("no router id: set [linkstate] router_id or give an interface an IPv4 address")]
    NoRouterId,
    #[error("{0}")]
    LinkStateSocket(#[from] linkstate::LinkStateSocketError),
    #[error("{0}")]
    Overlay(#[from] overlay::OverlayStartError),
}

/// Called with the new log level when a reload changes it (the binary swaps its filter).
pub type LogLevelHook = Box<dyn FnMut(LogLevel) + Send>;

/// The daemon's state, owned by the event loop.
pub struct Daemon<B> {
    config: Config,
    config_path: PathBuf,
    backend: B,
    routes: StaticTables,
    /// `clear counters` subtracts these from what the data plane reports.
    baseline: DataplaneCounters,
    route_baseline: BTreeMap<(Option<Ipv4Addr>, Ipv4Addr), (u64, u64)>,
    cleared_at: Instant,
    started_at: Instant,
    control: ControlCounters,
    log_level_hook: Option<LogLevelHook>,
    igmp: Option<igmp::IgmpRuntime>,
    dvmrp: Option<dvmrp::DvmrpRuntime>,
    linkstate: Option<linkstate::LinkStateRuntime>,
    overlay: Option<overlay::OverlayRuntime>,
    /// `fanoutctl debug pcap`: the running capture and the id of the last one started.
    capture: Option<backend::ActiveCapture>,
    capture_ids: u64,
}

impl<B> std::fmt::Debug for Daemon<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("config_path", &self.config_path)
            .field("routes", &self.routes.routes.len())
            .field("control", &self.control)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Daemon<B> {
    /// Takes over a started data plane and installs the configuration's static routes.
    pub fn new(
        config: Config,
        config_path: PathBuf,
        mut backend: B,
        now: Instant,
    ) -> Result<Self, StartError> {
        let ports = backend.ports();
        let routes = routes::compile(&config, |n| ifindex_of(&ports, n))?;
        let updates = routes::diff(&StaticTables::default(), &routes);
        if !updates.is_empty() {
            backend.apply(&updates)?;
        }
        info!(
            routes = routes.routes.len(),
            overlay_routes = routes.overlay.len(),
            neighbors = routes.neighbors.len(),
            mode = config.routing.as_str(),
            "static routes installed"
        );
        Ok(Self {
            config,
            config_path,
            backend,
            routes,
            baseline: DataplaneCounters::default(),
            route_baseline: BTreeMap::new(),
            cleared_at: now,
            started_at: now,
            control: ControlCounters {
                mfib_updates: updates.len() as u64,
                ..ControlCounters::default()
            },
            log_level_hook: None,
            igmp: None,
            dvmrp: None,
            linkstate: None,
            overlay: None,
            capture: None,
            capture_ids: 0,
        })
    }

    /// Starts IGMP on the interfaces with `igmp = true`, sending through `tx`. Returns how many.
    pub fn enable_igmp(
        &mut self,
        tx: Box<dyn igmp::IgmpTx>,
        now: Instant,
    ) -> Result<usize, crate::igmp::ConfigError> {
        let ports = self.backend.ports();
        let ifaces: Vec<(String, Ipv4Addr)> = self
            .config
            .interfaces
            .iter()
            .filter(|i| i.igmp)
            .filter_map(|i| {
                ports.iter().find(|p| p.name == i.name).map(|p| (p.name.clone(), p.ipv4))
            })
            .collect();
        let config =
            igmp::core_config(&self.config.igmp, self.config.limits.max_groups_per_interface);
        let n = ifaces.len();
        self.igmp = Some(igmp::IgmpRuntime::start(&ifaces, &config, tx, self.started_at, now)?);
        Ok(n)
    }

    /// Starts DVMRP on every interface (routing mode `dvmrp`); `prefix_len` gives each
    /// interface's subnet length, `genid` must differ between runs.
    pub fn enable_dvmrp(
        &mut self,
        tx: Box<dyn dvmrp::DvmrpTx>,
        prefix_len: impl Fn(&str) -> Option<u8>,
        genid: u32,
        now: Instant,
    ) {
        let interfaces = self
            .backend
            .ports()
            .into_iter()
            .map(|p| crate::dvmrp::DvmrpInterface {
                ifindex: p.ifindex,
                addr: p.ipv4,
                // Without a known prefix the interface's own address is the connected route.
                prefix_len: prefix_len(&p.name).unwrap_or(32),
                metric: self.config.interface(&p.name).map_or(1, |i| i.metric),
                threshold: self.config.interface(&p.name).map_or(1, |i| i.ttl_threshold),
            })
            .collect();
        let config = dvmrp::core_config(&self.config.dvmrp);
        let (rt, updates) =
            dvmrp::DvmrpRuntime::start(config, interfaces, genid, tx, self.started_at, now);
        self.dvmrp = Some(rt);
        self.apply_updates(&updates);
    }

    /// Starts the link-state protocol on every interface (routing mode `linkstate`);
    /// `prefix_len` gives each interface's subnet length (the attached network advertised),
    /// `auth_sequence_start` comes from [`linkstate::auth_sequence_start`].
    pub fn enable_linkstate(
        &mut self,
        tx: Box<dyn linkstate::LinkStateTx>,
        prefix_len: impl Fn(&str) -> Option<u8>,
        auth_sequence_start: u64,
        now: Instant,
    ) -> Result<(), StartError> {
        let ports = self.backend.ports();
        let router_id = match self.config.linkstate.router_id {
            Some(id) => u32::from(id),
            None => linkstate::default_router_id(ports.iter().map(|p| p.ipv4))
                .ok_or(StartError::NoRouterId)?,
        };
        let interfaces = ports
            .iter()
            .map(|p| crate::linkstate::LsInterface {
                ifindex: p.ifindex,
                addr: p.ipv4,
                // Without a known prefix the interface's own address is the attached network.
                prefix_len: prefix_len(&p.name).unwrap_or(32),
                cost: self
                    .config
                    .interface(&p.name)
                    .map_or(crate::config::DEFAULT_LINK_COST, |i| i.cost),
            })
            .collect();
        let config = linkstate::core_config(&self.config.linkstate, auth_sequence_start);
        let (rt, updates) = linkstate::LinkStateRuntime::start(
            config,
            router_id,
            interfaces,
            tx,
            self.started_at,
            now,
        );
        self.linkstate = Some(rt);
        self.apply_updates(&updates);
        Ok(())
    }

    /// In routing mode `linkstate`: opens the protocol-253 sockets (their readers send
    /// [`Input::LinkState`] to `inputs`) and starts the protocol with the authentication
    /// sequence seeded from the wall clock. Returns the sockets (dropping them stops the
    /// readers), or `None` in other modes.
    pub fn start_linkstate(
        &mut self,
        inputs: &Sender<Input>,
        prefix_len: impl Fn(&str) -> Option<u8>,
        now: Instant,
    ) -> Result<Option<linkstate::LinkStateSockets>, StartError> {
        let interfaces = self.linkstate_interfaces();
        if interfaces.is_empty() {
            return Ok(None);
        }
        let sockets = linkstate::LinkStateSockets::open(&interfaces, inputs)?;
        let seq = linkstate::auth_sequence_start(std::time::SystemTime::now());
        self.enable_linkstate(Box::new(sockets.sender()), prefix_len, seq, now)?;
        Ok(Some(sockets))
    }

    /// The interfaces that need a link-state socket (all of them in routing mode
    /// `linkstate`, none otherwise): (name, ifindex, address).
    pub fn linkstate_interfaces(&self) -> Vec<(String, u32, Ipv4Addr)> {
        if self.config.routing != crate::config::RoutingMode::LinkState {
            return Vec::new();
        }
        self.backend.ports().into_iter().map(|p| (p.name, p.ifindex.0, p.ipv4)).collect()
    }

    /// Starts the overlay protocol (routing mode `overlay`) with the given transport and
    /// next-hop resolver; `seed` seeds the self-organising topology's RNG.
    pub fn enable_overlay(
        &mut self,
        tx: Box<dyn overlay::OverlayTx>,
        resolver: Box<dyn overlay::NeighborResolver>,
        auth_sequence_base: u32,
        seed: u64,
        now: Instant,
    ) -> Result<(), StartError> {
        let Some(protocol) = self.config.overlay.protocol.clone() else { return Ok(()) };
        // Without IGMP on the local interface every group is delivered there.
        let static_members =
            self.config.interface(&protocol.local_interface).is_none_or(|i| !i.igmp);
        let (rt, updates) = overlay::OverlayRuntime::start(
            &self.config.overlay,
            &protocol,
            &self.backend.ports(),
            &self.config.neighbors,
            static_members,
            auth_sequence_base,
            seed,
            tx,
            resolver,
            self.started_at,
            now,
        )?;
        self.overlay = Some(rt);
        self.apply_updates(&updates);
        Ok(())
    }

    /// In routing mode `overlay`: opens the control socket on `[overlay] address`:7411 (its
    /// reader sends [`Input::Overlay`] to `inputs`) and starts the protocol, resolving next
    /// hops from `[[neighbor]]` entries, else the kernel's tables. Returns the socket
    /// (dropping it stops the reader), or `None` in other modes.
    pub fn start_overlay(
        &mut self,
        inputs: &Sender<Input>,
        now: Instant,
    ) -> Result<Option<overlay::OverlaySocket>, StartError> {
        let Some(protocol) = &self.config.overlay.protocol else { return Ok(None) };
        let socket = overlay::OverlaySocket::open(protocol.address, overlay::CONTROL_PORT, inputs)?;
        let ports = self.backend.ports();
        let configured = self
            .config
            .neighbors
            .iter()
            .filter(|n| ports.iter().any(|p| p.name == n.interface))
            .map(|n| (n.addr, n.interface.clone(), n.mac))
            .collect();
        let resolver =
            overlay::ConfiguredThenKernel { configured, kernel: overlay::KernelResolver };
        let wall = std::time::SystemTime::now();
        // Only the self-organising neighbour choice uses it: it must differ between nodes.
        let seed = wall.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(u32::from(protocol.address));
        self.enable_overlay(
            Box::new(socket.sender()),
            Box::new(resolver),
            overlay::auth_sequence_base(wall),
            seed,
            now,
        )?;
        Ok(Some(socket))
    }

    /// Applies protocol-produced MFIB updates; a refused batch is logged and counted.
    fn apply_updates(&mut self, updates: &[dataplane_api::MfibUpdate]) {
        if updates.is_empty() {
            return;
        }
        match self.backend.apply(updates) {
            Ok(()) => {
                self.control.mfib_updates += updates.len() as u64;
                for u in updates {
                    debug!(update = ?u, "MFIB update");
                }
            }
            Err(e) => {
                self.control.mfib_errors += 1;
                error!("{e}");
            }
        }
    }

    /// Hands IGMP membership changes of `interface` to the routing protocol.
    fn membership_changes(
        &mut self,
        now: Instant,
        interface: &str,
        changes: &[(Ipv4Addr, crate::igmp::MembershipChange)],
    ) {
        if self.dvmrp.is_none() && self.linkstate.is_none() && self.overlay.is_none() {
            return;
        }
        let Some(ifindex) = ifindex_of(&self.backend.ports(), interface) else { return };
        let mut updates = Vec::new();
        for (group, change) in changes {
            if let Some(rt) = &mut self.dvmrp {
                updates.extend(rt.membership(now, ifindex, *group, change));
            }
            if let Some(rt) = &mut self.linkstate {
                updates.extend(rt.membership(now, ifindex, *group, change));
            }
            if let Some(rt) = &mut self.overlay {
                updates.extend(rt.membership(now, ifindex, *group, change));
            }
        }
        self.apply_updates(&updates);
    }

    /// The interfaces that need an IGMP raw socket: those with `igmp = true`, or all of them
    /// in routing mode `dvmrp` (DVMRP travels in IGMP). (name, ifindex, address).
    pub fn igmp_interfaces(&self) -> Vec<(String, u32, Ipv4Addr)> {
        let ports = self.backend.ports();
        let all = self.config.routing == crate::config::RoutingMode::Dvmrp;
        self.config
            .interfaces
            .iter()
            .filter(|i| all || i.igmp)
            .filter_map(|i| {
                ports
                    .iter()
                    .find(|p| p.name == i.name)
                    .map(|p| (p.name.clone(), p.ifindex.0, p.ipv4))
            })
            .collect()
    }

    /// When the loop must wake up for a protocol timer.
    pub fn next_deadline(&self) -> Option<Instant> {
        let igmp = self.igmp.as_ref().and_then(igmp::IgmpRuntime::next_deadline);
        let dvmrp = self.dvmrp.as_ref().and_then(dvmrp::DvmrpRuntime::next_deadline);
        let ls = self.linkstate.as_ref().and_then(linkstate::LinkStateRuntime::next_deadline);
        let ov = self.overlay.as_ref().and_then(overlay::OverlayRuntime::next_deadline);
        // A capture nobody reads any more is dropped after its grace period.
        let cap = self.capture.as_ref().map(|c| c.deadline + backend::CAPTURE_GRACE);
        igmp.into_iter().chain(dvmrp).chain(ls).chain(ov).chain(cap).min()
    }

    pub fn set_log_level_hook(&mut self, hook: LogLevelHook) {
        self.log_level_hook = Some(hook);
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// Gives the data plane back (for an orderly stop).
    pub fn into_backend(self) -> B {
        self.backend
    }

    /// Handles one input. Never fails: errors are logged and, for ctl requests, returned.
    pub fn handle(&mut self, now: Instant, input: Input) -> Flow {
        match input {
            Input::Ctl { request, reply } => {
                self.control.ctl_requests += 1;
                let response = self.request(now, &request);
                // The client may have gone away; nothing to do about it.
                let _ = reply.send(response);
            }
            Input::Metrics { reply } => {
                let _ = reply.send(self.metrics(now));
            }
            Input::Reload => {
                let _ = self.reload();
            }
            Input::Punt(p) if self.dvmrp.is_some() => {
                self.control.punts_received += 1;
                let updates = self.dvmrp.as_mut().map(|rt| rt.punt(now, p)).unwrap_or_default();
                self.apply_updates(&updates);
            }
            Input::Punt(p) if self.linkstate.is_some() => {
                self.control.punts_received += 1;
                let updates = self.linkstate.as_mut().map(|rt| rt.punt(now, p)).unwrap_or_default();
                self.apply_updates(&updates);
            }
            Input::LinkState { ifindex, src, bytes } => {
                if let Some(rt) = &mut self.linkstate {
                    let updates = rt.received(now, ifindex, src, bytes);
                    self.apply_updates(&updates);
                } else {
                    debug!(ifindex = ifindex.0, %src, "link-state message while link state is off");
                }
            }
            Input::Overlay { src, payload } => {
                if let Some(rt) = &mut self.overlay {
                    let updates = rt.received(now, src, payload);
                    self.apply_updates(&updates);
                } else {
                    debug!(%src, "overlay control message while the overlay is off");
                }
            }
            Input::Dvmrp { ifindex, src, msg } => {
                if let Some(rt) = &mut self.dvmrp {
                    let updates =
                        rt.event(now, crate::dvmrp::Event::Received { ifindex, src, msg });
                    self.apply_updates(&updates);
                } else {
                    debug!(ifindex = ifindex.0, %src, "DVMRP message while DVMRP is off");
                }
            }
            Input::Punt(p) => {
                self.control.punts_received += 1;
                // Static routing creates no state from data; the punt is only counted.
                debug!(iif = p.iif.0, source = %p.source, group = %p.group, "no route (punt)");
            }
            Input::Igmp { interface, src, dst, msg } => {
                if let Some(rt) = &mut self.igmp {
                    let changes =
                        rt.event(now, &interface, crate::igmp::Event::Received { src, dst, msg });
                    self.membership_changes(now, &interface, &changes);
                } else {
                    debug!(interface, "IGMP message while IGMP is off");
                }
            }
            Input::Tick => {
                if self.capture.as_ref().is_some_and(|c| now >= c.deadline + backend::CAPTURE_GRACE)
                {
                    info!("packet capture ended: its client stopped reading");
                    self.capture = None;
                }
                let changes = self.igmp.as_mut().map(|rt| rt.tick(now)).unwrap_or_default();
                for (interface, group, change) in changes {
                    self.membership_changes(now, &interface, &[(group, change)]);
                }
                if self.dvmrp.is_some() {
                    let routes = self.backend.routes();
                    let updates = self
                        .dvmrp
                        .as_mut()
                        .map(|rt| {
                            let mut u = rt.activity(now, &routes);
                            u.extend(rt.tick(now));
                            u
                        })
                        .unwrap_or_default();
                    self.apply_updates(&updates);
                }
                if self.linkstate.is_some() {
                    let routes = self.backend.routes();
                    let updates = self
                        .linkstate
                        .as_mut()
                        .map(|rt| {
                            let mut u = rt.activity(now, &routes);
                            u.extend(rt.tick(now));
                            u
                        })
                        .unwrap_or_default();
                    self.apply_updates(&updates);
                }
                let updates = self.overlay.as_mut().map(|rt| rt.tick(now)).unwrap_or_default();
                self.apply_updates(&updates);
            }
            Input::Link(ev) => self.link_event(now, &ev),
            Input::Rejected(RejectedControl::Igmp) => self.control.igmp_rejected += 1,
            Input::Rejected(RejectedControl::Dvmrp) => self.control.dvmrp_rejected += 1,
            Input::Stop => {
                info!("stop requested");
                if let Some(rt) = &mut self.igmp {
                    rt.stop(now);
                }
                // DVMRP's stop advertises our routes as unreachable and removes its MFIB routes.
                let updates = self
                    .dvmrp
                    .as_mut()
                    .map(|rt| rt.event(now, crate::dvmrp::Event::Stop))
                    .unwrap_or_default();
                self.apply_updates(&updates);
                // Link state's stop flushes our LSAs (MaxAge) and removes its MFIB routes.
                let updates = self
                    .linkstate
                    .as_mut()
                    .map(|rt| rt.event(now, crate::linkstate::Event::Stop))
                    .unwrap_or_default();
                self.apply_updates(&updates);
                // The overlay's stop sends Leave to the rendezvous and neighbours.
                let updates = self.overlay.as_mut().map(|rt| rt.stop(now)).unwrap_or_default();
                self.apply_updates(&updates);
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    /// An interface changed: a configured one that is gone or down stops forwarding (its
    /// routes stay), one that is (back) up with an IPv4 address forwards again, under its new
    /// ifindex if it was re-created; static routes are resolved again and the routing
    /// protocols told. Interfaces not in the configuration are ignored.
    fn link_event(&mut self, now: Instant, ev: &backend::LinkEvent) {
        use backend::{LinkEventKind, PortChange};
        if self.config.interface(&ev.name).is_none() {
            return;
        }
        let change = match ev.kind {
            LinkEventKind::Removed | LinkEventKind::Down => self.backend.detach_port(&ev.name),
            // The data plane refuses an interface that is down or has no IPv4 address yet.
            LinkEventKind::Up | LinkEventKind::Address => self.backend.attach_port(&ev.name),
        };
        match change {
            Ok(PortChange::Unchanged) => {}
            Ok(PortChange::Detached { ifindex }) => {
                warn!(interface = ev.name, ifindex = ifindex.0, event = ?ev.kind, "interface gone or down: port detached, its routes kept");
                self.protocol_interface(now, ifindex, false);
            }
            Ok(PortChange::Attached { old, port }) => {
                info!(
                    interface = ev.name,
                    ifindex = port.ifindex.0,
                    old_ifindex = old.0,
                    "interface back: port attached"
                );
                self.reresolve_static_routes();
                if old == port.ifindex {
                    self.protocol_interface(now, old, true);
                } else if self.dvmrp.is_some() || self.linkstate.is_some() {
                    warn!(
                        interface = ev.name,
                        "the interface was re-created with a new ifindex; the routing protocol keeps it down until fanoutd restarts"
                    );
                }
            }
            // Expected while a re-created interface has no address yet: its address event
            // retries.
            Err(e) => {
                warn!(interface = ev.name, event = ?ev.kind, "interface not (re)attached: {e}");
            }
        }
    }

    /// Tells the routing protocols that an interface went down or came back (same ifindex).
    fn protocol_interface(&mut self, now: Instant, ifindex: IfIndex, up: bool) {
        let mut updates = Vec::new();
        if let Some(rt) = &mut self.dvmrp {
            updates.extend(rt.event(
                now,
                if up {
                    crate::dvmrp::Event::InterfaceUp { ifindex }
                } else {
                    crate::dvmrp::Event::InterfaceDown { ifindex }
                },
            ));
        }
        if let Some(rt) = &mut self.linkstate {
            updates.extend(rt.event(
                now,
                if up {
                    crate::linkstate::Event::InterfaceUp { ifindex }
                } else {
                    crate::linkstate::Event::InterfaceDown { ifindex }
                },
            ));
        }
        self.apply_updates(&updates);
    }

    /// Compiles the static routes against the ports' current ifindexes and applies the
    /// difference (a re-created interface has a new one).
    fn reresolve_static_routes(&mut self) {
        let ports = self.backend.ports();
        let routes = match routes::compile(&self.config, |n| ifindex_of(&ports, n)) {
            Ok(r) => r,
            Err(e) => {
                error!("resolving static routes again: {e}");
                return;
            }
        };
        let updates = routes::diff(&self.routes, &routes);
        if updates.is_empty() {
            self.routes = routes;
            return;
        }
        match self.backend.apply(&updates) {
            Ok(()) => {
                self.control.mfib_updates += updates.len() as u64;
                self.routes = routes;
                info!(updates = updates.len(), "static routes resolved again");
            }
            Err(e) => {
                self.control.mfib_errors += 1;
                error!("static routes after an interface change: {e}");
            }
        }
    }

    fn request(&mut self, now: Instant, request: &Request) -> Response {
        match request {
            Request::Show { what } => self.show(now, *what),
            Request::ShowSpt { source, group } => match &self.linkstate {
                Some(rt) => Response::ok(&rt.spt(now, *source, *group)),
                None => Response::error(format!(
                    "show spt: no link-state protocol runs in routing mode \"{}\"",
                    self.config.routing.as_str()
                )),
            },
            Request::Clear { what: ClearWhat::Counters } => {
                self.baseline = self.backend.counters();
                self.route_baseline = self
                    .backend
                    .routes()
                    .into_iter()
                    .map(|r| ((r.route.source, r.route.group), (r.packets, r.bytes)))
                    .collect();
                self.cleared_at = now;
                info!("counters cleared");
                Response::ok(&ClearData { cleared: "counters".into() })
            }
            Request::Reload => match self.reload() {
                Ok(data) => Response::ok(&data),
                Err(e) => Response::error(e.to_string()),
            },
            Request::PcapStart { interface, seconds, snaplen, tx } => {
                match self.start_capture(now, interface, *seconds, *snaplen, *tx) {
                    Ok(data) => Response::ok(&data),
                    Err(e) => Response::error(format!("debug pcap: {e}")),
                }
            }
            Request::PcapRead { id } | Request::PcapStop { id } => {
                let stop = matches!(request, Request::PcapStop { .. });
                match &mut self.capture {
                    Some(c) if c.id == *id => {
                        let data = c.read(now, stop);
                        if data.done || stop {
                            info!(
                                id,
                                captured = data.captured,
                                dropped = data.dropped,
                                "packet capture ended"
                            );
                            self.capture = None;
                        }
                        Response::ok(&data)
                    }
                    _ => Response::error(format!("debug pcap: no capture {id} is running")),
                }
            }
        }
    }

    /// Starts `fanoutctl debug pcap` (see [`Request::PcapStart`]).
    fn start_capture(
        &mut self,
        now: Instant,
        interface: &str,
        seconds: u32,
        snaplen: Option<u32>,
        tx: bool,
    ) -> Result<crate::ctl::PcapStartData, String> {
        use crate::ctl::{MAX_PCAP_SECONDS, MAX_PCAP_SNAPLEN};
        if !(1..=MAX_PCAP_SECONDS).contains(&seconds) {
            return Err(format!("seconds must be 1..={MAX_PCAP_SECONDS}, not {seconds}"));
        }
        let snaplen = snaplen.unwrap_or(MAX_PCAP_SNAPLEN);
        if !(64..=MAX_PCAP_SNAPLEN).contains(&snaplen) {
            return Err(format!("snaplen must be 64..={MAX_PCAP_SNAPLEN}, not {snaplen}"));
        }
        if self.config.interface(interface).is_none() {
            return Err(format!("{interface} is not one of fanoutd's interfaces"));
        }
        if let Some(c) = &self.capture {
            if now < c.deadline {
                return Err(format!(
                    "capture {} on {} is running; one at a time",
                    c.id, c.interface
                ));
            }
            // Over but not read to the end: its client has gone.
            self.capture = None;
        }
        let source =
            self.backend.start_capture(interface, snaplen, tx).map_err(|e| e.to_string())?;
        self.capture_ids += 1;
        let id = self.capture_ids;
        self.capture = Some(backend::ActiveCapture {
            id,
            interface: interface.to_owned(),
            deadline: now + Duration::from_secs(u64::from(seconds)),
            source,
        });
        info!(id, interface, seconds, snaplen, tx, "packet capture started");
        Ok(crate::ctl::PcapStartData { id, interface: interface.to_owned(), seconds, snaplen })
    }

    /// Re-reads the configuration file and applies only the route difference.
    pub fn reload(&mut self) -> Result<ReloadData, ReloadError> {
        let result = self.try_reload();
        match &result {
            Ok(d) => {
                self.control.reloads_ok += 1;
                info!(
                    installed = d.routes_installed,
                    removed = d.routes_removed,
                    "configuration reloaded"
                );
            }
            Err(e) => {
                self.control.reloads_failed += 1;
                error!(path = %self.config_path.display(), "reload failed: {e}");
            }
        }
        result
    }

    fn try_reload(&mut self) -> Result<ReloadData, ReloadError> {
        let new = Config::load(&self.config_path)?;
        let old = &self.config;
        let mut restart = Vec::new();
        let old_names: Vec<&str> = old.interface_names().collect();
        if old_names != new.interface_names().collect::<Vec<_>>() {
            restart.push("the interface list");
        }
        if old.dataplane != new.dataplane {
            restart.push("[dataplane]");
        }
        if old.daemon.control_socket != new.daemon.control_socket {
            restart.push("daemon.control_socket");
        }
        if old.daemon.metrics_listen != new.daemon.metrics_listen {
            restart.push("daemon.metrics_listen");
        }
        if old.daemon.control_group != new.daemon.control_group
            || old.daemon.drop_privileges != new.daemon.drop_privileges
        {
            // Applied once at start; after the drop fanoutd could not apply them anyway.
            restart.push("daemon.control_group/drop_privileges");
        }
        // The keys rotate live (below); every other [overlay] setting needs a restart.
        if old.overlay.without_keys() != new.overlay.without_keys() {
            restart.push("[overlay]");
        }
        if old.routing != new.routing {
            restart.push("routing.mode");
        }
        let igmp_on = |c: &Config| {
            c.interfaces.iter().filter(|i| i.igmp).map(|i| i.name.clone()).collect::<Vec<_>>()
        };
        if igmp_on(old) != igmp_on(&new) || old.igmp != new.igmp {
            restart.push("IGMP settings ([igmp] or an interface's igmp flag)");
        }
        if old.dvmrp != new.dvmrp {
            restart.push("[dvmrp]");
        }
        if old.limits.max_groups_per_interface != new.limits.max_groups_per_interface {
            restart.push("limits.max_groups_per_interface");
        }
        // The keys rotate live (below); every other [linkstate] setting needs a restart.
        if old.linkstate.without_keys() != new.linkstate.without_keys() {
            restart.push("[linkstate]");
        }
        if self.linkstate.is_some() && old.interfaces != new.interfaces {
            // Link state compiled the costs into its interfaces at start.
            restart.push("an interface's cost (routing mode linkstate)");
        }
        if self.dvmrp.is_some() && old.interfaces != new.interfaces {
            // DVMRP compiled the thresholds into its interfaces at start.
            restart.push("an interface's ttl_threshold or metric (routing mode dvmrp)");
        }
        if new.uses_overlay() && !old.uses_overlay() {
            // The data plane steers the overlay port only if it started with overlay routes.
            restart.push("the first overlay route (overlay_next_hops or [[static_overlay_route]])");
        }
        if !restart.is_empty() {
            return Err(ReloadError::NeedsRestart(restart.join(", ")));
        }
        let ports = self.backend.ports();
        let routes = routes::compile(&new, |n| ifindex_of(&ports, n))?;
        let updates = routes::diff(&self.routes, &routes);
        let overlay_keys = |c: &Config| (c.overlay.keys.clone(), c.overlay.send_key);
        let rotate_overlay = overlay_keys(old) != overlay_keys(&new);
        if rotate_overlay {
            // First, so that a refusal leaves everything as it was.
            self.backend.set_overlay_keys(&new.overlay.keys, new.overlay.send_key)?;
        }
        if !updates.is_empty() {
            if let Err(e) = self.backend.apply(&updates) {
                self.control.mfib_errors += 1;
                if rotate_overlay {
                    // The running configuration stays in force, its keys included.
                    let _ = self.backend.set_overlay_keys(&old.overlay.keys, old.overlay.send_key);
                }
                return Err(e.into());
            }
            self.control.mfib_updates += updates.len() as u64;
        }
        let removed = updates
            .iter()
            .filter(|u| {
                matches!(
                    u,
                    dataplane_api::MfibUpdate::Remove { .. }
                        | dataplane_api::MfibUpdate::RemoveOverlay { .. }
                        | dataplane_api::MfibUpdate::RemoveNeighbor { .. }
                )
            })
            .count();
        if new.daemon.log_level != self.config.daemon.log_level {
            if let Some(hook) = &mut self.log_level_hook {
                hook(new.daemon.log_level);
            }
        }
        if rotate_overlay {
            if let Some(rt) = &mut self.overlay {
                // Validated with the configuration (send_key is one of keys): cannot fail.
                if let Err(e) = rt.set_keys(&new.overlay) {
                    error!(error = %e, "overlay protocol keys not rotated");
                }
            }
            info!(keys = new.overlay.keys.len(), send_key = ?new.overlay.send_key, "overlay keys rotated");
        }
        let keys_changed = (&old.linkstate.auth, &old.linkstate.accept_keys)
            != (&new.linkstate.auth, &new.linkstate.accept_keys);
        if keys_changed {
            if let Some(rt) = &mut self.linkstate {
                rt.set_keys(&new.linkstate);
            }
        }
        self.routes = routes;
        self.config = new;
        Ok(ReloadData { routes_installed: updates.len() - removed, routes_removed: removed })
    }

    fn show(&self, now: Instant, what: ShowWhat) -> Response {
        match what {
            ShowWhat::Neighbors | ShowWhat::Routes if self.dvmrp.is_some() => {
                Response::ok(&self.dvmrp.as_ref().map(|rt| rt.snapshot(now)))
            }
            ShowWhat::Interfaces => Response::ok(&self.interfaces()),
            ShowWhat::Mroute => Response::ok(&self.mroute(true)),
            ShowWhat::Counters => Response::ok(&self.counters(now, true)),
            ShowWhat::Routes => Response::ok(&RoutesData {
                mode: self.config.routing.as_str().into(),
                routes: self
                    .config
                    .static_routes
                    .iter()
                    .map(|r| ConfiguredRoute {
                        source: r.source,
                        group: r.group,
                        iif: r.iif.clone(),
                        oifs: r.oifs.clone(),
                        origin: "static".into(),
                    })
                    .collect(),
            }),
            ShowWhat::Overlay => Response::ok(&self.overlay()),
            ShowWhat::Igmp => match &self.igmp {
                Some(rt) => Response::ok(&rt.snapshot(now)),
                None => Response::error(
                    "show igmp: IGMP runs on no interface (set igmp = true in an [[interface]])",
                ),
            },
            ShowWhat::Neighbors if self.linkstate.is_some() => {
                Response::ok(&self.linkstate.as_ref().map(linkstate::LinkStateRuntime::neighbors))
            }
            ShowWhat::Lsdb if self.linkstate.is_some() => {
                Response::ok(&self.linkstate.as_ref().map(|rt| rt.lsdb(now)))
            }
            ShowWhat::Spt => Response::error(
                "show spt needs a source and a group: send {\"cmd\":\"show_spt\",\"source\":S,\"group\":G}",
            ),
            ShowWhat::Neighbors | ShowWhat::Lsdb => Response::error(format!(
                "show {}: no {} runs in routing mode \"{}\"",
                what.as_str(),
                if what == ShowWhat::Lsdb { "link-state protocol" } else { "routing protocol" },
                self.config.routing.as_str()
            )),
        }
    }

    fn port_name(ports: &[backend::PortInfo], ifindex: IfIndex) -> String {
        ports
            .iter()
            .find(|p| p.ifindex == ifindex)
            .map_or_else(|| format!("ifindex:{}", ifindex.0), |p| p.name.clone())
    }

    fn interfaces(&self) -> InterfacesData {
        let counters = self.cleared_counters();
        let interfaces = self
            .backend
            .ports()
            .into_iter()
            .map(|p| {
                let c = counters.interfaces.iter().find(|c| c.name == p.name);
                InterfaceState {
                    ttl_threshold: self.config.interface(&p.name).map_or(1, |i| i.ttl_threshold),
                    mac: format_mac(p.mac),
                    ipv4: p.ipv4,
                    ifindex: p.ifindex.0,
                    xdp_mode: p.xdp_mode,
                    bind_mode: p.bind_mode,
                    queue: p.queue,
                    rx_packets: c.map_or(0, |c| c.rx_packets),
                    tx_packets: c.map_or(0, |c| c.tx_packets),
                    drops: c.map_or(0, |c| c.drops.values().sum()),
                    state: p.state,
                    name: p.name,
                }
            })
            .collect();
        InterfacesData { interfaces }
    }

    fn mroute(&self, cleared: bool) -> MrouteData {
        let ports = self.backend.ports();
        let mut stats = self.backend.routes();
        // The documented order of `show mroute`, whatever the backend's: by group, (*,G) first.
        stats.sort_by_key(|r| (r.route.group, r.route.source));
        let routes = stats
            .into_iter()
            .map(|r| {
                let (bp, bb) = if cleared {
                    self.route_baseline
                        .get(&(r.route.source, r.route.group))
                        .copied()
                        .unwrap_or((0, 0))
                } else {
                    (0, 0)
                };
                MrouteEntry {
                    source: r.route.source,
                    group: r.route.group,
                    iif: Self::port_name(&ports, r.route.iif),
                    oifs: r
                        .route
                        .oifs
                        .iter()
                        .map(|o| MrouteOif {
                            name: Self::port_name(&ports, o.ifindex),
                            ttl_threshold: o.ttl_threshold,
                        })
                        .collect(),
                    overlay_next_hops: r.route.overlay_next_hops,
                    packets: r.packets.saturating_sub(bp),
                    bytes: r.bytes.saturating_sub(bb),
                }
            })
            .collect();
        MrouteData { routes }
    }

    fn overlay(&self) -> OverlayData {
        let ports = self.backend.ports();
        OverlayData {
            port: self.config.overlay.port,
            routes: self
                .backend
                .overlay_routes()
                .into_iter()
                .map(|r| OverlayRouteEntry {
                    origin: r.route.origin,
                    group: r.route.group,
                    from: r.route.from,
                    deliver: r
                        .route
                        .deliver
                        .iter()
                        .map(|o| MrouteOif {
                            name: Self::port_name(&ports, o.ifindex),
                            ttl_threshold: o.ttl_threshold,
                        })
                        .collect(),
                    next_hops: r.route.next_hops,
                    packets: r.packets,
                    bytes: r.bytes,
                })
                .collect(),
            neighbors: self
                .backend
                .neighbors()
                .into_iter()
                .map(|n| OverlayNeighbor {
                    addr: n.addr,
                    interface: Self::port_name(&ports, n.ifindex),
                    mac: format_mac(n.mac),
                })
                .collect(),
            protocol: self.overlay.as_ref().map(overlay::OverlayRuntime::snapshot),
        }
    }

    /// The data plane's counters minus the `clear counters` baseline.
    fn cleared_counters(&self) -> DataplaneCounters {
        let now = self.backend.counters();
        let interfaces = now
            .interfaces
            .into_iter()
            .map(|c| match self.baseline.interfaces.iter().find(|b| b.name == c.name) {
                Some(b) => subtract(&c, b),
                None => c,
            })
            .collect();
        let xdp = now
            .xdp
            .into_iter()
            .map(|(k, v)| {
                let b = self.baseline.xdp.get(&k).copied().unwrap_or(0);
                (k, v.saturating_sub(b))
            })
            .collect();
        DataplaneCounters { interfaces, xdp }
    }

    fn counters(&self, now: Instant, cleared: bool) -> CountersData {
        let (c, since) = if cleared {
            (self.cleared_counters(), now.saturating_duration_since(self.cleared_at))
        } else {
            (self.backend.counters(), now.saturating_duration_since(self.started_at))
        };
        CountersData {
            interfaces: c.interfaces,
            xdp: c.xdp,
            control: self.control.clone(),
            since_clear_secs: since.as_secs(),
        }
    }

    fn metrics(&self, now: Instant) -> String {
        let counters = self.counters(now, false);
        let mroute = self.mroute(false);
        let igmp_groups: Vec<(String, usize)> = self
            .igmp
            .as_ref()
            .map(|rt| {
                rt.snapshot(now)
                    .interfaces
                    .into_iter()
                    .map(|i| (i.interface, i.groups.len()))
                    .collect()
            })
            .unwrap_or_default();
        let overlay_state = self.overlay.as_ref().map(overlay::OverlayRuntime::snapshot);
        let interface_states: Vec<(String, String)> =
            self.backend.ports().into_iter().map(|p| (p.name, p.state)).collect();
        metrics::render(&MetricsInput {
            counters: &counters,
            mroute: &mroute,
            neighbors: &[(
                self.config.routing.as_str(),
                self.dvmrp.as_ref().map_or(0, |rt| rt.neighbor_count(now))
                    + self
                        .linkstate
                        .as_ref()
                        .map_or(0, linkstate::LinkStateRuntime::neighbor_count)
                    + self.overlay.as_ref().map_or(0, overlay::OverlayRuntime::neighbor_count),
            )],
            igmp_groups: &igmp_groups,
            overlay: overlay_state.as_ref(),
            trees: self.linkstate.as_ref().map(linkstate::LinkStateRuntime::tree_stats),
            interface_states: &interface_states,
            uptime: now.saturating_duration_since(self.started_at),
        })
    }
}

fn ifindex_of(ports: &[backend::PortInfo], name: &str) -> Option<IfIndex> {
    ports.iter().find(|p| p.name == name).map(|p| p.ifindex)
}

fn subtract(c: &InterfaceCounters, b: &InterfaceCounters) -> InterfaceCounters {
    InterfaceCounters {
        name: c.name.clone(),
        rx_packets: c.rx_packets.saturating_sub(b.rx_packets),
        rx_bytes: c.rx_bytes.saturating_sub(b.rx_bytes),
        tx_packets: c.tx_packets.saturating_sub(b.tx_packets),
        tx_bytes: c.tx_bytes.saturating_sub(b.tx_bytes),
        punts: c.punts.saturating_sub(b.punts),
        drops: c
            .drops
            .iter()
            .map(|(k, v)| (k.clone(), v.saturating_sub(b.drops.get(k).copied().unwrap_or(0))))
            .collect(),
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: [u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Runs the event loop until [`Input::Stop`] (or until every input sender is gone).
pub fn run<B: Backend>(
    daemon: &mut Daemon<B>,
    inputs: &Receiver<Input>,
    punts: Option<&Receiver<Punt>>,
) {
    let never_punts = never();
    let mut punts = punts.unwrap_or(&never_punts);
    loop {
        // Idle for an hour at most: with no protocol timers the loop only waits for inputs.
        let timeout = daemon
            .next_deadline()
            .map_or(Duration::from_secs(3600), |d| d.saturating_duration_since(Instant::now()));
        let input = select! {
            recv(inputs) -> msg => {
                let Ok(i) = msg else {
                    warn!("all input senders are gone; stopping");
                    return;
                };
                i
            },
            recv(punts) -> msg => {
                let Ok(p) = msg else {
                    // The data plane stopped reporting punts; keep serving ctl requests.
                    warn!("data plane punt channel closed");
                    punts = &never_punts;
                    continue;
                };
                Input::Punt(p)
            },
            default(timeout) => Input::Tick,
        };
        if daemon.handle(Instant::now(), input) == Flow::Stop {
            return;
        }
    }
}

/// How long ctl connection threads wait for the loop to answer.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
