//! Typed debug events of the DVMRP core (STYLE.md principle 6): every state transition and every
//! ignored input is reported as a value, so the daemon can log it with structured fields and
//! tests can assert on it. Nothing in the core formats strings.

use std::net::Ipv4Addr;

use dataplane_api::IfIndex;
use serde::{Deserialize, Serialize};

/// Why a neighbour went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NeighborDownReason {
    /// No probe within the neighbour timeout.
    Timeout,
    /// The interface it was heard on went down.
    InterfaceDown,
    /// Its probe no longer carries the prune capability.
    LostPruneCapability,
}

/// Why an input was not acted upon. Each one is counted and logged by the daemon; none is an
/// error of the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "reason")]
pub enum IgnoreReason {
    /// The core has not been started (or was stopped).
    NotStarted,
    /// The ifindex is not a configured DVMRP interface.
    UnknownInterface,
    /// The interface is configured but down.
    InterfaceDown,
    /// The packet came from one of our own addresses (multicast loopback).
    OwnPacket,
    /// The peer does not claim the prune capability: it is "too old" to be a neighbour.
    NoPruneCapability { capabilities: u8 },
    /// A message other than a probe from an address we have no neighbour for.
    UnknownNeighbor,
    /// A report from a neighbour whose probes do not list us yet.
    NotTwoWay,
    /// A route whose origin has bits set outside its mask, or a mask we cannot use.
    BadOrigin { origin: Ipv4Addr, prefix_len: u8 },
    /// A prune with a lifetime of 5 s or less (mrouted ignores those too).
    ShortPruneLifetime { lifetime: u32 },
    /// No reachable route covers this source.
    NoRoute { source: Ipv4Addr },
    /// A prune or graft received on the RPF interface of the source.
    FromUpstream,
    /// A graft-ack for which no graft is pending.
    UnexpectedGraftAck,
    /// A DVMRP code this core does not implement (mrinfo queries, etc.).
    UnsupportedCode { code: u8 },
    /// A group that is not routable multicast (not 224/4 or link-local 224.0.0.x).
    NotRoutableGroup { group: Ipv4Addr },
}

/// A state transition or decision of the DVMRP core.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "event")]
pub enum DebugEvent {
    NeighborUp {
        ifindex: IfIndex,
        addr: Ipv4Addr,
        genid: u32,
    },
    NeighborTwoWay {
        ifindex: IfIndex,
        addr: Ipv4Addr,
    },
    /// The neighbour's generation id changed: it restarted and forgot our prunes and routes.
    NeighborRestarted {
        ifindex: IfIndex,
        addr: Ipv4Addr,
        old_genid: u32,
        new_genid: u32,
    },
    NeighborDown {
        ifindex: IfIndex,
        addr: Ipv4Addr,
        reason: NeighborDownReason,
    },
    /// The best path to an origin changed (metric 32 = unreachable, held down until deletion).
    RouteChanged {
        origin: Ipv4Addr,
        prefix_len: u8,
        metric: u8,
        upstream: Option<IfIndex>,
        gateway: Option<Ipv4Addr>,
    },
    RouteDeleted {
        origin: Ipv4Addr,
        prefix_len: u8,
    },
    /// First data of a source network and group: a forwarding cache entry was created.
    CacheCreated {
        source: Ipv4Addr,
        group: Ipv4Addr,
        iif: IfIndex,
        rpf_ok: bool,
    },
    CacheExpired {
        origin: Ipv4Addr,
        prefix_len: u8,
        group: Ipv4Addr,
    },
    PruneSent {
        origin: Ipv4Addr,
        group: Ipv4Addr,
        upstream: Ipv4Addr,
        lifetime: u32,
    },
    PruneReceived {
        ifindex: IfIndex,
        from: Ipv4Addr,
        origin: Ipv4Addr,
        group: Ipv4Addr,
        lifetime: u32,
    },
    PruneExpired {
        ifindex: IfIndex,
        from: Ipv4Addr,
        origin: Ipv4Addr,
        group: Ipv4Addr,
    },
    /// Our own prune towards the upstream ran out: the upstream floods to us again.
    UpstreamPruneExpired {
        origin: Ipv4Addr,
        group: Ipv4Addr,
    },
    GraftSent {
        origin: Ipv4Addr,
        group: Ipv4Addr,
        upstream: Ipv4Addr,
        attempt: u32,
    },
    GraftReceived {
        ifindex: IfIndex,
        from: Ipv4Addr,
        source: Ipv4Addr,
        group: Ipv4Addr,
    },
    GraftAcked {
        origin: Ipv4Addr,
        group: Ipv4Addr,
        from: Ipv4Addr,
    },
    Ignored {
        ifindex: Option<IfIndex>,
        from: Option<Ipv4Addr>,
        reason: IgnoreReason,
    },
}
