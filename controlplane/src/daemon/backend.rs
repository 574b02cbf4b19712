//! The southbound side of the daemon: what the event loop needs from a data plane.
//!
//! fanoutd drives the AF_XDP data plane through this trait (the adapter lives in
//! `daemon::xdp`, behind the `daemon` feature). [`RecordingBackend`] is an in-memory stand-in
//! that keeps a route table and records every batch, so the event loop, the ctl protocol and
//! reload are tested without root, BPF or AF_XDP (STYLE.md principle 8: a fake southbound).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use dataplane_api::{IfIndex, MfibRoute, MfibUpdate, Neighbor, OverlayRoute};

use crate::ctl::InterfaceCounters;

/// One data-plane port as `show interfaces` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    pub name: String,
    pub ifindex: IfIndex,
    pub mac: [u8; 6],
    pub ipv4: Ipv4Addr,
    /// `native` or `skb`.
    pub xdp_mode: String,
    /// `zero-copy` or `copy`.
    pub bind_mode: String,
    pub queue: u32,
    /// `up` (forwarding), `down` (the interface exists but is down or not yet usable) or
    /// `absent` (no interface of that name). Not `up`: `ifindex`, MAC and address are the
    /// last ones seen.
    pub state: String,
}

/// A change of an interface the kernel reported (netlink `RTM_NEWLINK`, `RTM_DELLINK`,
/// `RTM_NEWADDR`), fed to the event loop as `Input::Link`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkEvent {
    pub name: String,
    pub ifindex: u32,
    pub kind: LinkEventKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkEventKind {
    /// The interface exists and is administratively up (`IFF_UP`).
    Up,
    /// The interface exists and is down.
    Down,
    /// The interface was deleted.
    Removed,
    /// An IPv4 address was added (a port needs one before it can be attached).
    Address,
}

/// What [`Backend::attach_port`] / [`Backend::detach_port`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortChange {
    /// Nothing: the port already was in that state.
    Unchanged,
    /// The port stopped forwarding; its routes stay.
    Detached { ifindex: IfIndex },
    /// The port forwards again; `old` is the ifindex it had (routes naming it were rewritten
    /// to `port.ifindex` by the data plane).
    Attached { old: IfIndex, port: PortInfo },
}

/// A route with its forwarding counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteStats {
    pub route: MfibRoute,
    pub packets: u64,
    pub bytes: u64,
}

/// An overlay route with its counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayRouteStats {
    pub route: OverlayRoute,
    pub packets: u64,
    pub bytes: u64,
}

/// Cumulative data-plane counters (never reset by the data plane).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataplaneCounters {
    pub interfaces: Vec<InterfaceCounters>,
    pub xdp: BTreeMap<String, u64>,
}

/// A batch the data plane refused (nothing of it was applied).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("data plane rejected the update batch: {0}")]
pub struct ApplyError(pub String);

/// What the event loop needs from a data plane.
pub trait Backend {
    fn ports(&self) -> Vec<PortInfo>;
    /// Applies a batch all-or-nothing.
    fn apply(&mut self, updates: &[MfibUpdate]) -> Result<(), ApplyError>;
    fn counters(&self) -> DataplaneCounters;
    fn routes(&self) -> Vec<RouteStats>;
    fn overlay_routes(&self) -> Vec<OverlayRouteStats>;
    fn neighbors(&self) -> Vec<Neighbor>;
    /// Stops forwarding on configured interface `name` (removed or down).
    fn detach_port(&mut self, name: &str) -> Result<PortChange, ApplyError>;
    /// Starts forwarding on configured interface `name` again (it appeared or came up), with
    /// whatever ifindex, MAC and address it has now.
    fn attach_port(&mut self, name: &str) -> Result<PortChange, ApplyError>;
    /// Replaces the overlay authentication keys (`[overlay] keys`/`send_key`) without a
    /// restart.
    fn set_overlay_keys(
        &mut self,
        keys: &[crate::config::OverlayKey],
        send_key: Option<u8>,
    ) -> Result<(), ApplyError>;
    /// Starts a packet capture on `interface` (`fanoutctl debug pcap`): what the data plane
    /// receives there and, with `tx`, the copies it transmits there.
    fn start_capture(
        &mut self,
        interface: &str,
        snaplen: u32,
        tx: bool,
    ) -> Result<Box<dyn Capture>, ApplyError>;
}

/// A captured frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedFrame {
    /// Microseconds since the Unix epoch.
    pub time_us: u64,
    pub orig_len: u32,
    pub tx: bool,
    pub data: Vec<u8>,
}

/// A running capture; dropping it stops capturing.
pub trait Capture: Send {
    /// Up to `max` frames captured since the last call, without waiting.
    fn read(&mut self, max: usize) -> Vec<CapturedFrame>;
    fn captured(&self) -> u64;
    fn dropped(&self) -> u64;
}

/// Frames per `pcap_read` answer at most (with the 2048-byte snaplen, ~4 MiB of hex: well
/// inside the ctl line limit).
pub const CAPTURE_READ_MAX: usize = 1024;

/// How long a capture outlives its end when nobody reads it (a client that went away).
pub const CAPTURE_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// The daemon's one running capture.
pub struct ActiveCapture {
    pub id: u64,
    pub interface: String,
    pub deadline: std::time::Instant,
    pub source: Box<dyn Capture>,
}

impl std::fmt::Debug for ActiveCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActiveCapture")
            .field("id", &self.id)
            .field("interface", &self.interface)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl ActiveCapture {
    /// The frames captured since the last read. Once the deadline has passed (or `stop`),
    /// `done` says every frame has been handed out and the capture can go.
    pub fn read(&mut self, now: std::time::Instant, stop: bool) -> crate::ctl::PcapReadData {
        let frames = self.source.read(CAPTURE_READ_MAX);
        let over = stop || now >= self.deadline;
        let done = over && frames.len() < CAPTURE_READ_MAX;
        crate::ctl::PcapReadData {
            frames: frames
                .into_iter()
                .map(|f| crate::ctl::PcapFrame {
                    time_us: f.time_us,
                    orig_len: f.orig_len,
                    tx: f.tx,
                    data: f.data.iter().fold(
                        String::with_capacity(f.data.len() * 2),
                        |mut s, b| {
                            use std::fmt::Write as _;
                            let _ = write!(s, "{b:02x}");
                            s
                        },
                    ),
                })
                .collect(),
            captured: self.source.captured(),
            dropped: self.source.dropped(),
            done,
        }
    }
}

/// An in-memory data plane: applies batches to a route map with the data plane's validation of
/// interfaces, and records each batch. Counters are set by the test.
#[derive(Debug, Clone, Default)]
pub struct RecordingBackend {
    pub ports: Vec<PortInfo>,
    pub routes: BTreeMap<(Option<Ipv4Addr>, Ipv4Addr), RouteStats>,
    pub counters: DataplaneCounters,
    /// Every accepted batch, in order.
    pub batches: Vec<Vec<MfibUpdate>>,
    /// What a capture started on this backend yields (once, then nothing).
    pub capture_frames: Vec<CapturedFrame>,
    /// Overlay keys set by `set_overlay_keys` (ids and send key), in order.
    pub overlay_keys: Vec<(Vec<u8>, Option<u8>)>,
}

/// A capture over a fixed list of frames.
#[derive(Debug)]
struct ListCapture {
    frames: std::vec::IntoIter<CapturedFrame>,
    captured: u64,
}

impl Capture for ListCapture {
    fn read(&mut self, max: usize) -> Vec<CapturedFrame> {
        self.frames.by_ref().take(max).collect()
    }

    fn captured(&self) -> u64 {
        self.captured
    }

    fn dropped(&self) -> u64 {
        0
    }
}

impl RecordingBackend {
    /// A backend with ports `names`, ifindex 10, 11, ... and zeroed counters.
    pub fn with_ports(names: &[&str]) -> Self {
        let ports: Vec<PortInfo> = names
            .iter()
            .enumerate()
            .map(|(i, name)| PortInfo {
                name: (*name).to_owned(),
                ifindex: IfIndex(10 + i as u32),
                mac: [0x02, 0, 0, 0, 0, i as u8],
                ipv4: Ipv4Addr::new(10, 0, i as u8, 1),
                xdp_mode: "native".into(),
                bind_mode: "copy".into(),
                queue: 0,
                state: "up".into(),
            })
            .collect();
        let counters = DataplaneCounters {
            interfaces: ports
                .iter()
                .map(|p| InterfaceCounters { name: p.name.clone(), ..InterfaceCounters::default() })
                .collect(),
            xdp: BTreeMap::new(),
        };
        Self { ports, counters, ..Self::default() }
    }
}

impl Backend for RecordingBackend {
    fn set_overlay_keys(
        &mut self,
        keys: &[crate::config::OverlayKey],
        send_key: Option<u8>,
    ) -> Result<(), ApplyError> {
        self.overlay_keys.push((keys.iter().map(|k| k.id).collect(), send_key));
        Ok(())
    }

    fn ports(&self) -> Vec<PortInfo> {
        self.ports.clone()
    }

    fn apply(&mut self, updates: &[MfibUpdate]) -> Result<(), ApplyError> {
        let known = |i: IfIndex| self.ports.iter().any(|p| p.ifindex == i);
        for (index, u) in updates.iter().enumerate() {
            if let MfibUpdate::Install(r) = u {
                if let Some(bad) = std::iter::once(r.iif)
                    .chain(r.oifs.iter().map(|o| o.ifindex))
                    .find(|&i| !known(i))
                {
                    return Err(ApplyError(format!("update {index}: unknown ifindex {}", bad.0)));
                }
            }
        }
        for u in updates {
            match u {
                MfibUpdate::Install(r) => {
                    let counters = self
                        .routes
                        .get(&(r.source, r.group))
                        .map_or((0, 0), |s| (s.packets, s.bytes));
                    let stats =
                        RouteStats { route: r.clone(), packets: counters.0, bytes: counters.1 };
                    self.routes.insert((r.source, r.group), stats);
                }
                MfibUpdate::Remove { source, group } => {
                    self.routes.remove(&(*source, *group));
                }
                MfibUpdate::Flush => self.routes.clear(),
                MfibUpdate::InstallOverlay(_)
                | MfibUpdate::RemoveOverlay { .. }
                | MfibUpdate::SetNeighbor(_)
                | MfibUpdate::RemoveNeighbor { .. } => {}
            }
        }
        self.batches.push(updates.to_vec());
        Ok(())
    }

    fn counters(&self) -> DataplaneCounters {
        self.counters.clone()
    }

    fn routes(&self) -> Vec<RouteStats> {
        self.routes.values().cloned().collect()
    }

    fn overlay_routes(&self) -> Vec<OverlayRouteStats> {
        Vec::new()
    }

    fn neighbors(&self) -> Vec<Neighbor> {
        Vec::new()
    }

    fn start_capture(
        &mut self,
        interface: &str,
        snaplen: u32,
        tx: bool,
    ) -> Result<Box<dyn Capture>, ApplyError> {
        if !self.ports.iter().any(|p| p.name == interface) {
            return Err(ApplyError(format!("no port {interface}")));
        }
        let frames: Vec<CapturedFrame> = self
            .capture_frames
            .iter()
            .filter(|f| tx || !f.tx)
            .map(|f| {
                let mut f = f.clone();
                f.data.truncate(snaplen as usize);
                f
            })
            .collect();
        Ok(Box::new(ListCapture { captured: frames.len() as u64, frames: frames.into_iter() }))
    }

    /// Marks the port `absent`.
    fn detach_port(&mut self, name: &str) -> Result<PortChange, ApplyError> {
        let p = self
            .ports
            .iter_mut()
            .find(|p| p.name == name)
            .ok_or_else(|| ApplyError(format!("no port {name}")))?;
        if p.state != "up" {
            return Ok(PortChange::Unchanged);
        }
        p.state = "absent".into();
        Ok(PortChange::Detached { ifindex: p.ifindex })
    }

    /// Brings a detached port back as if its interface had been re-created: with the next
    /// unused ifindex, rewriting the routes that named the old one (as the data plane does).
    fn attach_port(&mut self, name: &str) -> Result<PortChange, ApplyError> {
        let next = self.ports.iter().map(|p| p.ifindex.0).max().unwrap_or(0) + 1;
        let p = self
            .ports
            .iter_mut()
            .find(|p| p.name == name)
            .ok_or_else(|| ApplyError(format!("no port {name}")))?;
        if p.state == "up" {
            return Ok(PortChange::Unchanged);
        }
        let old = p.ifindex;
        p.ifindex = IfIndex(next);
        p.state = "up".into();
        let port = p.clone();
        for r in self.routes.values_mut() {
            let route = &mut r.route;
            if route.iif == old {
                route.iif = port.ifindex;
            }
            for o in &mut route.oifs {
                if o.ifindex == old {
                    o.ifindex = port.ifindex;
                }
            }
        }
        Ok(PortChange::Attached { old, port })
    }
}
