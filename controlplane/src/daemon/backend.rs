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
}
