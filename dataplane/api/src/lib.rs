//! The narrow interface between fanout's control plane and its data plane.
//!
//! The control plane (or static configuration) never touches data-plane internals: it sends
//! [`MfibUpdate`] messages, and receives [`Punt`]s. The data plane (`dataplane::mfib`) compiles
//! them into its forwarding table and publishes it atomically, so workers never stop.
//!
//! This crate is a leaf (serde only) so that the control plane's protocol cores and their tests
//! build without libbpf, AF_XDP or the BPF toolchain.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// A kernel interface index: the identity of an interface shared by both planes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IfIndex(pub u32);

/// An outgoing interface of a multicast route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Oif {
    pub ifindex: IfIndex,
    /// Packets whose TTL (before decrement) is not above this threshold are not sent here
    /// (mrouted/ipmr semantics; 1 = every packet that may be forwarded at all).
    pub ttl_threshold: u8,
}

/// An (S,G) route, or a (*,G) route when `source` is `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfibRoute {
    pub source: Option<Ipv4Addr>,
    pub group: Ipv4Addr,
    /// The RPF interface: packets arriving elsewhere are dropped as `rpf_fail`.
    pub iif: IfIndex,
    /// Native IP multicast copies.
    pub oifs: Vec<Oif>,
    /// Overlay copies: encapsulate (inner: source → group; outer: this node → next hop) to each
    /// of these unicast overlay neighbours. Their link-layer addresses come from
    /// [`MfibUpdate::SetNeighbor`].
    pub overlay_next_hops: Vec<Ipv4Addr>,
}

/// The overlay forwarding table's entry: "packets from origin A on group G arriving from `from`
/// are delivered locally on `deliver` and re-encapsulated to `next_hops`".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverlayRoute {
    pub origin: Ipv4Addr,
    pub group: Ipv4Addr,
    /// The overlay neighbour this stream must arrive from (the overlay's RPF check); `None`
    /// accepts it from any authenticated neighbour.
    pub from: Option<Ipv4Addr>,
    /// Local interfaces that get the decapsulated inner datagram as native multicast.
    pub deliver: Vec<Oif>,
    pub next_hops: Vec<Ipv4Addr>,
}

/// A resolved unicast neighbour (overlay next hop): where to send and with which MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Neighbor {
    pub addr: Ipv4Addr,
    pub ifindex: IfIndex,
    pub mac: [u8; 6],
}

/// What the control plane (or static configuration) tells the data plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MfibUpdate {
    /// Add or replace the route with the same (source, group).
    Install(MfibRoute),
    /// Remove the route with this (source, group); absent routes are ignored.
    Remove {
        source: Option<Ipv4Addr>,
        group: Ipv4Addr,
    },
    /// Add or replace the overlay route with the same (origin, group).
    InstallOverlay(OverlayRoute),
    RemoveOverlay {
        origin: Ipv4Addr,
        group: Ipv4Addr,
    },
    /// Add or replace a resolved unicast neighbour.
    SetNeighbor(Neighbor),
    RemoveNeighbor {
        addr: Ipv4Addr,
    },
    /// Remove every route, overlay route and neighbour.
    Flush,
}

/// What the data plane tells the control plane: a multicast packet arrived for which no route
/// exists (DVMRP and link-state create (S,G) state on first data). Rate-limited by the data plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Punt {
    pub iif: IfIndex,
    pub source: Ipv4Addr,
    pub group: Ipv4Addr,
}
