//! The MOSPF-like link-state mode: routers flood router LSAs (links with costs, attached
//! networks) and group-membership LSAs, and each router computes, on demand, the shortest-path
//! tree of an (S,G) rooted at the source's router, pruned to the branches that lead to members
//! of G. The protocol is specified in `docs/linkstate.md`; the wire format is
//! [`wire::linkstate`].
//!
//! [`LinkStateRouter`] is a sans-IO core: [`LinkStateRouter::handle`] takes the current
//! [`Timestamp`] and one [`Event`] and returns the [`Action`]s to perform. It reads no clock and
//! owns no socket; the daemon seeds the authentication sequence ([`LinkStateConfig`]) from the
//! wall clock so it keeps increasing across restarts.
//!
//! ```text
//!   Received{hello}   ──> neighbor.rs (Down → Init → Exchange → Full), full LSDB exchange
//!   Received{update/ack} ──> lsdb.rs (newer-than, MinLSArrival), flooding with per-neighbour
//!                             retransmission lists (router.rs)
//!   own state changes ──> own router/membership LSAs (MinLSInterval, refresh, MaxAge flush)
//!   DataArrived(S,G)  ──> cache.rs/spf.rs: tree rooted at S's router, pruned to G's members
//!                     └──> Action::Mfib(Install/Remove); recomputed precisely on LSA changes
//! ```
//!
//! Invariants:
//! * Nothing here panics on peer input: undecodable, forged, replayed or unexpected messages are
//!   dropped, counted in [`LinkStateStats`] and reported as [`DebugEvent::Rejected`].
//! * An (S,G) has state only after data for it arrived ([`Event::DataArrived`]); its MFIB route
//!   is re-derived after every router-LSA change (all tracked (S,G)s) and every membership
//!   change of G (only G's), and an Install/Remove is emitted only when the route changed.

pub mod auth;
pub mod cache;
pub mod lsdb;
pub mod neighbor;
mod router;
pub mod spf;
#[cfg(test)]
mod tests;

use std::net::Ipv4Addr;
use std::time::Duration;

use dataplane_api::{IfIndex, MfibRoute, MfibUpdate, Punt};
use serde::{Deserialize, Serialize};

pub use auth::{AuthFailure, AuthKey};
pub use router::LinkStateRouter;
pub use spf::RouterId;

use crate::timer::Timestamp;

/// Timers and knobs. Durations serialise as milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LinkStateConfig {
    #[serde(with = "crate::timer::serde_millis")]
    pub hello_interval: Duration,
    /// A neighbour not heard from for this long is down. Hellos carry both intervals and a
    /// neighbour with different ones is refused (as in OSPF), so timers are uniform per link.
    #[serde(with = "crate::timer::serde_millis")]
    pub dead_interval: Duration,
    /// Unacknowledged LSAs are resent to a neighbour this often.
    #[serde(with = "crate::timer::serde_millis")]
    pub retransmit_interval: Duration,
    /// At most one new instance of each of our own LSAs per this interval.
    #[serde(with = "crate::timer::serde_millis")]
    pub min_ls_interval: Duration,
    /// A newer instance of an LSA arriving within this interval of the previous one is dropped
    /// (not acknowledged, so the sender retransmits it later).
    #[serde(with = "crate::timer::serde_millis")]
    pub min_ls_arrival: Duration,
    /// Our own LSAs are re-originated this often so they never reach MaxAge (3600 s).
    #[serde(with = "crate::timer::serde_millis")]
    pub refresh_interval: Duration,
    /// HMAC-SHA256 key; `None` sends and accepts only unauthenticated messages.
    pub auth: Option<AuthKey>,
    /// Further keys accepted (never sent with) while a key rotation is under way: the
    /// previous key, or the next one before every router sends with it.
    pub accept_keys: Vec<AuthKey>,
    /// First auth sequence number sent. Receivers refuse any sequence not above the last one
    /// they accepted from us, so the daemon sets this from the wall clock (e.g. milliseconds
    /// since the epoch shifted left 16 bits) so that a restart never goes backwards.
    pub auth_sequence_start: u64,
}

impl Default for LinkStateConfig {
    fn default() -> Self {
        LinkStateConfig {
            hello_interval: Duration::from_secs(10),
            dead_interval: Duration::from_secs(40),
            retransmit_interval: Duration::from_secs(5),
            min_ls_interval: Duration::from_secs(5),
            min_ls_arrival: Duration::from_secs(1),
            refresh_interval: Duration::from_secs(1800),
            auth: None,
            accept_keys: Vec::new(),
            auth_sequence_start: 1,
        }
    }
}

impl LinkStateConfig {
    /// Fast timers for quick failure detection on a testbed: 100 ms hellos, 400 ms dead
    /// interval, 200 ms retransmissions, 100 ms MinLSInterval, 50 ms MinLSArrival.
    pub fn fast() -> LinkStateConfig {
        LinkStateConfig {
            hello_interval: Duration::from_millis(100),
            dead_interval: Duration::from_millis(400),
            retransmit_interval: Duration::from_millis(200),
            min_ls_interval: Duration::from_millis(100),
            min_ls_arrival: Duration::from_millis(50),
            ..LinkStateConfig::default()
        }
    }
}

/// One link-state interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LsInterface {
    pub ifindex: IfIndex,
    /// Our address on the link; with `prefix_len`, the attached network we advertise.
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
    /// Cost of sending over this link.
    pub cost: u32,
}

/// Inputs of the core (serde-serialisable, so inputs can be recorded and replayed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Event {
    /// Begin: originate our router LSA, send hellos on every interface.
    Start,
    /// Shut down: flush our LSAs (MaxAge) and remove our MFIB routes.
    Stop,
    /// Time has passed; run the timers that are due.
    Tick,
    /// A message (the IPv4 payload) arrived on `ifindex` from `src`. Raw bytes, because
    /// authentication covers the bytes as sent.
    Received {
        ifindex: IfIndex,
        src: Ipv4Addr,
        bytes: Vec<u8>,
    },
    InterfaceUp {
        ifindex: IfIndex,
    },
    InterfaceDown {
        ifindex: IfIndex,
    },
    /// Local membership from IGMP (any-source).
    LocalMembership {
        ifindex: IfIndex,
        group: Ipv4Addr,
        present: bool,
    },
    /// The data plane punted the first packet of an (S,G) it has no route for.
    DataArrived(Punt),
    /// The (S,G) carried no traffic for a while: drop its route and stop tracking it.
    DataIdle {
        source: Ipv4Addr,
        group: Ipv4Addr,
    },
}

/// Outputs of the core.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Send `bytes` (an IPv4 payload of protocol [`wire::linkstate::IP_PROTOCOL`]) out of
    /// `ifindex` to `dst` ([`wire::linkstate::ALL_LS_ROUTERS`] or a neighbour's address), from
    /// the interface's address, TTL 1.
    Send {
        ifindex: IfIndex,
        dst: Ipv4Addr,
        bytes: Vec<u8>,
    },
    Mfib(MfibUpdate),
    Debug(DebugEvent),
}

/// Why a received message was dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "reason")]
pub enum RejectReason {
    NotStarted,
    UnknownInterface,
    InterfaceDown,
    /// The wire error, as `wire::Error`'s display text.
    Malformed {
        error: String,
    },
    BadChecksum,
    Auth {
        failure: AuthFailure,
    },
    OwnMessage,
    /// Hello and dead intervals differ from ours.
    TimerMismatch {
        hello_ms: u32,
        dead_ms: u32,
    },
    /// An update or ack from a router that is not (yet) a two-way neighbour.
    NotAdjacent,
}

/// A state transition or decision of the core.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "event")]
pub enum DebugEvent {
    NeighborState {
        ifindex: IfIndex,
        router_id: RouterId,
        from: neighbor::State,
        to: neighbor::State,
    },
    Rejected {
        ifindex: IfIndex,
        src: Ipv4Addr,
        #[serde(flatten)]
        reason: RejectReason,
    },
    /// A newer LSA arrived within MinLSArrival of the previous instance and was dropped.
    LsaTooFrequent {
        key: lsdb::LsaKey,
    },
    LsaInstalled {
        key: lsdb::LsaKey,
        seq: u32,
        own: bool,
    },
    LsaFlushed {
        key: lsdb::LsaKey,
    },
    Retransmit {
        ifindex: IfIndex,
        router_id: RouterId,
        lsas: usize,
    },
    /// The MFIB route of (S,G) was (re)computed.
    RouteComputed {
        source: Ipv4Addr,
        group: Ipv4Addr,
        root: Option<RouterId>,
        installed: bool,
    },
}

/// Counters for metrics and `show`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkStateStats {
    pub rx_packets: u64,
    pub rx_malformed: u64,
    pub rx_bad_checksum: u64,
    /// Forged: missing or unknown-key or bad-tag authentication.
    pub rx_auth_failures: u64,
    pub rx_replays: u64,
    pub rx_rejected_other: u64,
    pub tx_packets: u64,
    pub lsas_installed: u64,
    pub lsas_too_frequent: u64,
    pub retransmissions: u64,
    pub own_lsas_originated: u64,
    pub routes_installed: u64,
    pub routes_removed: u64,
}

/// One neighbour in `show neighbors`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighborSnapshot {
    pub ifindex: IfIndex,
    pub router_id: RouterId,
    pub addr: Ipv4Addr,
    pub state: neighbor::State,
    pub retransmit_pending: usize,
}

/// One LSA in `show lsdb`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LsaSnapshot {
    pub kind: String,
    pub id: Ipv4Addr,
    pub adv_router: Ipv4Addr,
    pub seq: u32,
    pub age: u16,
    pub checksum: u16,
    /// Router LSA: `(neighbor, link id, cost)`.
    pub links: Vec<(Ipv4Addr, u32, u32)>,
    /// Router LSA: attached networks as `a.b.c.d/len`.
    pub networks: Vec<String>,
    /// Membership LSA: interfaces with members.
    pub interfaces: Vec<u32>,
}

/// `fanoutctl show lsdb [--json]` (serialise-only: the lead's `CacheStats` is `Serialize`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LsdbSnapshot {
    pub router_id: Ipv4Addr,
    pub neighbors: Vec<NeighborSnapshot>,
    pub lsas: Vec<LsaSnapshot>,
    pub stats: LinkStateStats,
    pub cache: cache::CacheStats,
}

/// `fanoutctl show spt S G [--json]`: the tree as this router computes it now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SptSnapshot {
    pub source: Ipv4Addr,
    pub group: Ipv4Addr,
    /// The source's router; `None` when no router advertises a network containing S.
    pub root: Option<RouterId>,
    pub members: Vec<RouterId>,
    /// Routers on the pruned tree, each with its parent (`None` for the root).
    pub on_tree: Vec<(RouterId, Option<RouterId>)>,
    pub local: Option<spf::LocalEntry>,
    /// The route installed for (S,G), if data arrived for it.
    pub installed: Option<MfibRoute>,
}

/// Interface index as the `u32` used in LSAs.
fn link_id(ifindex: IfIndex) -> u32 {
    ifindex.0
}

/// Time since `t` is at least `d`.
fn elapsed_at_least(now: Timestamp, t: Timestamp, d: Duration) -> bool {
    now.saturating_duration_since(t) >= d
}
