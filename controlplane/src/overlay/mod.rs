//! Overlay multicast (end-system multicast over unicast) as a sans-IO core: fanoutd in
//! `mode = "overlay"` runs one [`OverlayNode`] per overlay group. [`OverlayNode::handle`] takes
//! the current [`Timestamp`] and one [`Event`] and returns [`Action`]s: control messages to send
//! to UDP 7411 of another node, MFIB updates for the data plane, and overlay neighbours whose
//! link-layer address the daemon must resolve. Randomness (self-organising neighbour choice)
//! comes from a seeded RNG passed to [`OverlayNode::new`]; no clock is read.
//!
//! ```text
//!   Received bytes ──> auth.rs (key, HMAC tag, replay) ──> membership (rendezvous Join/Accept/
//!        MemberList/Leave) ──> neighbours (static, self-organising or Overcast; heartbeats, probes)
//!        ──> link-state database (flooded LinkState, one LSA per node)
//!        ──> trees (spf.rs per origin, or one core-based shared tree)
//!        ──> Action::Mfib(InstallOverlay / Install (*,G) at the origin) on change
//! ```
//!
//! Tree construction is link-state over the overlay: every node floods the list of its live
//! overlay neighbours with costs (configured, or measured RTT in ms); every node holds the same
//! database and runs the same deterministic Dijkstra ([`crate::linkstate::spf`]) rooted at each
//! origin, so all nodes agree on the tree without further messages (docs/overlay.md).
//!
//! Invariants:
//! * Only messages that parse, name this group, carry a configured key id, verify and have an
//!   auth sequence above the sender's last one are acted upon; everything else is counted in
//!   [`Counters`] and dropped.
//! * A neighbour is advertised (and so used by trees) only while it is *up*: heard from within
//!   `dead_multiplier × heartbeat_interval`. The SPF two-way check then ignores a dead node's
//!   stale advertisement, so one surviving neighbour noticing a death is enough to reroute.
//! * MFIB updates are emitted only on change: the installed routes are kept and diffed against
//!   the routes recomputed after every input.
//! * Nothing here panics on peer input.

mod auth;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use dataplane_api::{IfIndex, MfibRoute, MfibUpdate, Oif, OverlayRoute};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use wire::overlay_control::{
    ControlPacket, ControlRepr, LinkEntry, Message, RejectReason, TAG_LEN,
};

pub use auth::{AuthFailure, GroupKey};

/// Probe rounds during which a node that unlinked us is not asked again.
const SHUN_ROUNDS: u32 = 10;

use crate::linkstate::spf::{shortest_path_tree, Link, RouterId, Topology, Tree};
use crate::timer::{Timers, Timestamp};

/// A configured overlay link (static topology). Both ends list the same links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticLink {
    pub a: Ipv4Addr,
    pub b: Ipv4Addr,
    pub cost: u32,
}

/// Knobs of the self-organising topology.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelfOrganising {
    /// Neighbours a node tries to keep.
    pub target_degree: usize,
    /// Adjacency requests beyond this many neighbours are refused (`Unlink`).
    pub max_degree: usize,
    #[serde(with = "crate::timer::serde_millis")]
    pub probe_interval: Duration,
    /// Non-neighbour members probed per round.
    pub candidates_per_round: usize,
    /// A candidate replaces the worst neighbour only if its RTT is lower by this many percent.
    pub hysteresis_percent: u32,
}

impl Default for SelfOrganising {
    fn default() -> Self {
        SelfOrganising {
            target_degree: 3,
            max_degree: 6,
            probe_interval: Duration::from_secs(5),
            candidates_per_round: 2,
            hysteresis_percent: 20,
        }
    }
}

/// Knobs of Overcast-style placement: the overlay itself is a tree rooted at `root`; every node
/// sits as deep as it can while its latency to the root stays within `tolerance_percent` of its
/// direct latency (Overcast measures bandwidth; latency is what this implementation probes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overcast {
    pub root: Ipv4Addr,
    #[serde(with = "crate::timer::serde_millis")]
    pub probe_interval: Duration,
    pub tolerance_percent: u32,
    /// Adjacency requests beyond this many children are refused.
    pub max_children: usize,
}

/// How overlay neighbours are chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TopologyMode {
    Static { links: Vec<StaticLink> },
    SelfOrganising(SelfOrganising),
    Overcast(Overcast),
}

/// Which distribution tree data follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TreeMode {
    /// One shortest-path tree per origin node.
    ShortestPath,
    /// One bidirectional tree: the shortest-path tree rooted at `core`, pruned to the members;
    /// every origin's data floods along it away from the origin.
    SharedCore { core: Ipv4Addr },
}

/// Configuration of one overlay group at one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayConfig {
    pub group: Ipv4Addr,
    /// The bootstrap node every join goes to.
    pub rendezvous: Ipv4Addr,
    /// Group keys accepted on receipt (current and next, for rollover).
    pub keys: Vec<GroupKey>,
    /// Key id used to sign what this node sends.
    pub send_key_id: u8,
    pub topology: TopologyMode,
    pub tree: TreeMode,
    /// Interface on which local senders' multicast enters this node (iif of the (*,G) route
    /// that encapsulates it onto the overlay).
    pub local_iif: IfIndex,
    pub heartbeat_interval: Duration,
    /// A neighbour is dead after this many heartbeat intervals of silence.
    pub dead_multiplier: u32,
    /// Own LSA re-flood period; LSAs not refreshed for 3 periods are dropped.
    pub lsa_refresh: Duration,
    pub join_retry: Duration,
    /// First auth sequence number sent. Receivers refuse sequence numbers that do not increase,
    /// so a restarting daemon sets this from a clock that survives restarts (e.g. Unix seconds
    /// << 8); tests use 0.
    pub auth_sequence_base: u32,
    /// The rendezvous refuses joins (`JoinReject` "group full", counted in `joins_refused`)
    /// beyond this many members, itself included; `None` = no bound.
    pub max_members: Option<usize>,
}

impl OverlayConfig {
    /// A configuration with the default timers (1 s heartbeats, 3 missed = dead, 10 s LSA
    /// refresh, 2 s join retry) and a shortest-path tree.
    pub fn new(
        group: Ipv4Addr,
        rendezvous: Ipv4Addr,
        keys: Vec<GroupKey>,
        topology: TopologyMode,
    ) -> Self {
        let send_key_id = keys.first().map_or(0, |k| k.id);
        OverlayConfig {
            group,
            rendezvous,
            keys,
            send_key_id,
            topology,
            tree: TreeMode::ShortestPath,
            local_iif: IfIndex(0),
            heartbeat_interval: Duration::from_secs(1),
            dead_multiplier: 3,
            lsa_refresh: Duration::from_secs(10),
            join_retry: Duration::from_secs(2),
            auth_sequence_base: 0,
            max_members: None,
        }
    }
}

/// Configuration errors found by [`OverlayNode::new`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverlayError {
    #[error("overlay group {0} is not a multicast address")]
    NotMulticast(Ipv4Addr),
    #[error("send key id {0} is not among the configured overlay keys")]
    NoSendKey(u8),
    #[error("overlay timer {0} must be non-zero")]
    ZeroTimer(&'static str),
    #[error("degrees must satisfy 1 <= target_degree <= max_degree and max_children >= 1")]
    BadDegree,
}

/// Inputs of the core.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Event {
    /// Begin: join through the rendezvous (or, at the rendezvous, become the first member).
    Start,
    /// Leave the group: tell the rendezvous and the neighbours, remove every route.
    Stop,
    /// Time has passed; run the timers that are due.
    Tick,
    /// A UDP datagram arrived on the control port from `src`.
    Received { src: Ipv4Addr, payload: Vec<u8> },
    /// IGMP says local interface `ifindex` has (or no longer has) members of the group.
    LocalMembership { ifindex: IfIndex, present: bool },
}

/// Outputs of the core.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Send `payload` in UDP to `dst`:7411.
    Send {
        dst: Ipv4Addr,
        payload: Vec<u8>,
    },
    Mfib(MfibUpdate),
    /// `addr` became an overlay next hop: resolve its link-layer address and program it with
    /// [`MfibUpdate::SetNeighbor`].
    ResolveNeighbor(Ipv4Addr),
    /// `addr` is no next hop any more ([`MfibUpdate::RemoveNeighbor`]).
    ForgetNeighbor(Ipv4Addr),
}

/// Everything dropped or refused, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub decode_errors: u64,
    pub wrong_group: u64,
    /// The message's sender field is not the IP source.
    pub sender_mismatch: u64,
    pub unknown_key: u64,
    pub bad_tag: u64,
    pub replays: u64,
    pub joins_accepted: u64,
    pub joins_refused: u64,
    /// Join rejects this node received.
    pub rejected: u64,
    pub neighbors_lost: u64,
    /// Adjacency requests refused because of the degree bound or the static link list.
    pub adjacency_refused: u64,
    pub neighbors_replaced: u64,
    pub lsas_accepted: u64,
    /// Messages that only make sense in another role or state (e.g. a join at a non-rendezvous).
    pub unexpected: u64,
}

/// One overlay neighbour in [`OverlayState`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighborState {
    pub addr: Ipv4Addr,
    pub up: bool,
    pub rtt_ms: Option<u32>,
    pub cost: u32,
}

/// This node's place on one origin's tree in [`OverlayState`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeState {
    pub origin: Ipv4Addr,
    pub parent: Option<Ipv4Addr>,
    pub children: Vec<Ipv4Addr>,
}

/// Snapshot for `fanoutctl show overlay [--json]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverlayState {
    pub node: Ipv4Addr,
    pub group: Ipv4Addr,
    pub rendezvous: Ipv4Addr,
    pub joined: bool,
    pub members: Vec<Ipv4Addr>,
    pub neighbors: Vec<NeighborState>,
    pub trees: Vec<TreeState>,
    pub counters: Counters,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKey {
    Join,
    Heartbeat,
    LsaRefresh,
    Probe,
    Dead(Ipv4Addr),
}

#[derive(Debug, Clone)]
struct Neighbor {
    /// Heard from within the dead interval.
    up: bool,
    rtt_ms: Option<u32>,
    /// Configured cost (static links); `None` means "use the RTT".
    static_cost: Option<u32>,
}

impl Neighbor {
    fn cost(&self) -> u32 {
        self.static_cost.or(self.rtt_ms).unwrap_or(1000).max(1)
    }
}

/// The inputs of the tree computation: LSAs (a sequence number names one content), members and
/// local receivers.
type TreeInputs = (Vec<(Ipv4Addr, u32)>, BTreeSet<Ipv4Addr>, BTreeSet<IfIndex>);

#[derive(Debug, Clone)]
struct Lsa {
    sequence: u32,
    links: Vec<LinkEntry>,
    received: Timestamp,
}

/// The overlay protocol instance of one node for one group.
#[derive(Debug)]
pub struct OverlayNode {
    cfg: OverlayConfig,
    me: Ipv4Addr,
    rng: StdRng,
    started: bool,
    joined: bool,
    /// Timestamp of the outstanding Join (the accept must echo it).
    join_timestamp: Option<u64>,
    members: BTreeSet<Ipv4Addr>,
    neighbors: BTreeMap<Ipv4Addr, Neighbor>,
    lsdb: BTreeMap<Ipv4Addr, Lsa>,
    lsa_sequence: u32,
    auth_sequence: u32,
    last_seen: BTreeMap<Ipv4Addr, u32>,
    /// RTTs of non-neighbour candidates measured in the current probe round.
    candidates: BTreeMap<Ipv4Addr, u32>,
    local_ifaces: BTreeSet<IfIndex>,
    /// The last computed tree per origin (for `show overlay` and grandparent re-attachment).
    trees: BTreeMap<Ipv4Addr, TreeState>,
    installed: BTreeMap<Ipv4Addr, OverlayRoute>,
    own_route: Option<MfibRoute>,
    resolved: BTreeSet<Ipv4Addr>,
    /// Overcast: the neighbour this node hangs below (every other neighbour is a child).
    overcast_parent: Option<Ipv4Addr>,
    /// Overcast make-before-break: the parent we are leaving, kept until the new one is up.
    overcast_old_parent: Option<Ipv4Addr>,
    /// Latest RTT measured to each member (neighbour or not): re-attachment prefers close nodes.
    rtt_cache: BTreeMap<Ipv4Addr, u32>,
    /// Nodes that unlinked us, and until when we do not ask them again (without this, a node
    /// at its degree bound and the node it refuses would replace each other every probe round).
    shunned: BTreeMap<Ipv4Addr, Timestamp>,
    /// What the last tree computation was based on; trees are recomputed only when it changes.
    tree_inputs: Option<TreeInputs>,
    timers: Timers<TimerKey>,
    counters: Counters,
}

fn rid(a: Ipv4Addr) -> RouterId {
    u32::from(a)
}

fn addr(r: RouterId) -> Ipv4Addr {
    Ipv4Addr::from(r)
}

impl OverlayNode {
    /// A node with address `self_addr` (its overlay identity and the outer source of its
    /// packets). `seed` seeds the RNG of the self-organising topology.
    pub fn new(
        config: OverlayConfig,
        self_addr: Ipv4Addr,
        seed: u64,
    ) -> Result<OverlayNode, OverlayError> {
        if !config.group.is_multicast() {
            return Err(OverlayError::NotMulticast(config.group));
        }
        if !config.keys.iter().any(|k| k.id == config.send_key_id) {
            return Err(OverlayError::NoSendKey(config.send_key_id));
        }
        for (name, d) in [
            ("heartbeat_interval", config.heartbeat_interval),
            ("lsa_refresh", config.lsa_refresh),
            ("join_retry", config.join_retry),
        ] {
            if d.is_zero() {
                return Err(OverlayError::ZeroTimer(name));
            }
        }
        if config.dead_multiplier == 0 {
            return Err(OverlayError::ZeroTimer("dead_multiplier"));
        }
        if let TopologyMode::Overcast(oc) = &config.topology {
            if oc.probe_interval.is_zero() {
                return Err(OverlayError::ZeroTimer("probe_interval"));
            }
            if oc.max_children == 0 {
                return Err(OverlayError::BadDegree);
            }
        }
        if let TopologyMode::SelfOrganising(so) = &config.topology {
            if so.probe_interval.is_zero() {
                return Err(OverlayError::ZeroTimer("probe_interval"));
            }
            if so.target_degree == 0 || so.target_degree > so.max_degree {
                return Err(OverlayError::BadDegree);
            }
        }
        let auth_sequence = config.auth_sequence_base;
        Ok(OverlayNode {
            cfg: config,
            me: self_addr,
            rng: StdRng::seed_from_u64(seed),
            started: false,
            joined: false,
            join_timestamp: None,
            members: BTreeSet::new(),
            neighbors: BTreeMap::new(),
            lsdb: BTreeMap::new(),
            lsa_sequence: 0,
            auth_sequence,
            last_seen: BTreeMap::new(),
            candidates: BTreeMap::new(),
            local_ifaces: BTreeSet::new(),
            trees: BTreeMap::new(),
            installed: BTreeMap::new(),
            own_route: None,
            resolved: BTreeSet::new(),
            overcast_parent: None,
            overcast_old_parent: None,
            rtt_cache: BTreeMap::new(),
            shunned: BTreeMap::new(),
            tree_inputs: None,
            timers: Timers::new(),
            counters: Counters::default(),
        })
    }

    pub fn is_rendezvous(&self) -> bool {
        self.me == self.cfg.rendezvous
    }

    pub fn is_joined(&self) -> bool {
        self.joined
    }

    /// Replaces the group keys (rotation by reload): messages are signed with `send_key_id`
    /// from now on and verified against `keys`; the auth sequence numbers continue, so peers'
    /// replay windows stay valid across the change.
    pub fn set_keys(&mut self, keys: Vec<GroupKey>, send_key_id: u8) -> Result<(), OverlayError> {
        if !keys.iter().any(|k| k.id == send_key_id) {
            return Err(OverlayError::NoSendKey(send_key_id));
        }
        self.cfg.keys = keys;
        self.cfg.send_key_id = send_key_id;
        Ok(())
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The earliest time [`Event::Tick`] must be delivered.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.timers.next_deadline()
    }

    /// The up neighbours.
    pub fn up_neighbors(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.neighbors.iter().filter(|(_, n)| n.up).map(|(&a, _)| a)
    }

    pub fn snapshot(&self) -> OverlayState {
        OverlayState {
            node: self.me,
            group: self.cfg.group,
            rendezvous: self.cfg.rendezvous,
            joined: self.joined,
            members: self.members.iter().copied().collect(),
            neighbors: self
                .neighbors
                .iter()
                .map(|(&a, n)| NeighborState {
                    addr: a,
                    up: n.up,
                    rtt_ms: n.rtt_ms,
                    cost: n.cost(),
                })
                .collect(),
            trees: self.trees.values().cloned().collect(),
            counters: self.counters,
        }
    }

    /// Processes one input at `now`.
    pub fn handle(&mut self, now: Timestamp, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Start => self.start(now, &mut out),
            Event::Stop => self.stop(&mut out),
            Event::Tick => self.tick(now, &mut out),
            Event::Received { src, payload } => self.received(now, src, &payload, &mut out),
            Event::LocalMembership { ifindex, present } => {
                if present {
                    self.local_ifaces.insert(ifindex);
                } else {
                    self.local_ifaces.remove(&ifindex);
                }
            }
        }
        if self.started {
            self.recompute(&mut out);
        }
        out
    }

    fn start(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        if self.started {
            return;
        }
        self.started = true;
        self.timers.set_after(TimerKey::Heartbeat, now, self.cfg.heartbeat_interval);
        self.timers.set_after(TimerKey::LsaRefresh, now, self.cfg.lsa_refresh);
        if let Some(interval) = self.probe_interval() {
            self.timers.set_after(TimerKey::Probe, now, interval);
        }
        if self.is_rendezvous() {
            self.joined = true;
            self.members.insert(self.me);
            self.originate_lsa(now, false, out);
        } else {
            self.send_join(now, out);
        }
    }

    fn stop(&mut self, out: &mut Vec<Action>) {
        if !self.started {
            return;
        }
        let mut dsts: BTreeSet<Ipv4Addr> = self.neighbors.keys().copied().collect();
        if !self.is_rendezvous() {
            dsts.insert(self.cfg.rendezvous);
        }
        for dst in dsts {
            self.send(dst, Message::Leave, out);
        }
        self.started = false;
        self.joined = false;
        self.timers.clear();
        self.tree_inputs = None;
        self.overcast_parent = None;
        self.overcast_old_parent = None;
        self.neighbors.clear();
        self.lsdb.clear();
        self.members.clear();
        self.trees.clear();
        for (origin, _) in std::mem::take(&mut self.installed) {
            out.push(Action::Mfib(MfibUpdate::RemoveOverlay { origin, group: self.cfg.group }));
        }
        if self.own_route.take().is_some() {
            out.push(Action::Mfib(MfibUpdate::Remove { source: None, group: self.cfg.group }));
        }
        for a in std::mem::take(&mut self.resolved) {
            out.push(Action::ForgetNeighbor(a));
        }
    }

    fn send_join(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        let timestamp = now.as_millis();
        self.join_timestamp = Some(timestamp);
        self.send(self.cfg.rendezvous, Message::Join { timestamp }, out);
        self.timers.set_after(TimerKey::Join, now, self.cfg.join_retry);
    }

    /// Signs and queues one message.
    fn send(&mut self, dst: Ipv4Addr, message: Message, out: &mut Vec<Action>) {
        self.auth_sequence = self.auth_sequence.wrapping_add(1);
        let repr = ControlRepr {
            group: self.cfg.group,
            sender: self.me,
            message,
            key_id: self.cfg.send_key_id,
            auth_sequence: self.auth_sequence,
        };
        let mut payload = vec![0u8; repr.buffer_len()];
        let mut packet = ControlPacket::new_unchecked(&mut payload[..]);
        if repr.emit(&mut packet).is_err() {
            // Only a member list or LSA beyond 16 000 entries gets here; the group is then
            // beyond what this protocol supports and the message is not sent.
            self.counters.unexpected += 1;
            return;
        }
        let Some(key) = self.cfg.keys.iter().find(|k| k.id == self.cfg.send_key_id) else {
            return;
        };
        let tag: [u8; TAG_LEN] = auth::compute_tag(&key.secret, packet.auth_input());
        *packet.auth_tag_mut() = tag;
        out.push(Action::Send { dst, payload });
    }

    fn tick(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        while let Some((key, _)) = self.timers.pop_expired(now) {
            match key {
                TimerKey::Join => {
                    if !self.joined && self.started {
                        self.send_join(now, out);
                    }
                }
                TimerKey::Heartbeat => {
                    let nbrs: Vec<_> = self.neighbors.keys().copied().collect();
                    for n in nbrs {
                        self.send(n, Message::Heartbeat, out);
                    }
                    self.timers.set_after(TimerKey::Heartbeat, now, self.cfg.heartbeat_interval);
                }
                TimerKey::LsaRefresh => {
                    let max_age = self.cfg.lsa_refresh * 3;
                    let me = self.me;
                    self.lsdb.retain(|&o, l| {
                        o == me || now.saturating_duration_since(l.received) < max_age
                    });
                    if self.is_rendezvous() {
                        // Periodic member list: repairs lists lost with a message.
                        self.broadcast_members(None, out);
                    }
                    if self.joined {
                        self.originate_lsa(now, true, out);
                    }
                    self.timers.set_after(TimerKey::LsaRefresh, now, self.cfg.lsa_refresh);
                }
                TimerKey::Probe => self.probe_round(now, out),
                TimerKey::Dead(n) => self.neighbor_dead(now, n, out),
            }
        }
    }

    fn dead_interval(&self) -> Duration {
        self.cfg.heartbeat_interval * self.cfg.dead_multiplier
    }

    fn self_org(&self) -> Option<&SelfOrganising> {
        match &self.cfg.topology {
            TopologyMode::SelfOrganising(so) => Some(so),
            TopologyMode::Static { .. } | TopologyMode::Overcast(_) => None,
        }
    }

    fn overcast(&self) -> Option<&Overcast> {
        match &self.cfg.topology {
            TopologyMode::Overcast(oc) => Some(oc),
            TopologyMode::Static { .. } | TopologyMode::SelfOrganising(_) => None,
        }
    }

    /// Neighbours come and go (self-organising or Overcast) rather than being configured.
    fn dynamic(&self) -> bool {
        !matches!(self.cfg.topology, TopologyMode::Static { .. })
    }

    fn probe_interval(&self) -> Option<Duration> {
        match &self.cfg.topology {
            TopologyMode::SelfOrganising(so) => Some(so.probe_interval),
            TopologyMode::Overcast(oc) => Some(oc.probe_interval),
            TopologyMode::Static { .. } => None,
        }
    }

    fn static_cost(&self, peer: Ipv4Addr) -> Option<u32> {
        match &self.cfg.topology {
            TopologyMode::Static { links } => links
                .iter()
                .filter(|l| (l.a == self.me && l.b == peer) || (l.b == self.me && l.a == peer))
                .map(|l| l.cost)
                .min(),
            TopologyMode::SelfOrganising(_) | TopologyMode::Overcast(_) => None,
        }
    }

    fn received(&mut self, now: Timestamp, src: Ipv4Addr, payload: &[u8], out: &mut Vec<Action>) {
        if !self.started {
            return;
        }
        let Ok(packet) = ControlPacket::new_checked(payload) else {
            self.counters.decode_errors += 1;
            return;
        };
        let Ok(repr) = ControlRepr::parse(&packet) else {
            self.counters.decode_errors += 1;
            return;
        };
        if repr.group != self.cfg.group {
            self.counters.wrong_group += 1;
            return;
        }
        if repr.sender != src || repr.sender == self.me {
            self.counters.sender_mismatch += 1;
            return;
        }
        if let Err(failure) = auth::verify(&self.cfg.keys, &mut self.last_seen, &packet) {
            let reason = match failure {
                AuthFailure::UnknownKey => {
                    self.counters.unknown_key += 1;
                    RejectReason::UnknownKey
                }
                AuthFailure::BadTag => {
                    self.counters.bad_tag += 1;
                    RejectReason::BadAuth
                }
                AuthFailure::Replay => {
                    self.counters.replays += 1;
                    RejectReason::Replay
                }
            };
            if matches!(repr.message, Message::Join { .. }) && self.is_rendezvous() {
                // Tell the refused node why, so an operator sees it there too (it cannot verify
                // the reject without the key, but counts it either way).
                self.counters.joins_refused += 1;
                self.send(src, Message::JoinReject { reason }, out);
            }
            return;
        }
        let sender = repr.sender;
        // Any authenticated message from a neighbour proves it alive.
        if let Some(n) = self.neighbors.get_mut(&sender) {
            let was_up = n.up;
            n.up = true;
            self.timers.set_after(TimerKey::Dead(sender), now, self.dead_interval());
            if !was_up {
                self.neighbor_up(now, sender, out);
            }
        }
        match repr.message {
            Message::Join { timestamp } => {
                if !self.is_rendezvous() {
                    self.counters.unexpected += 1;
                    self.send(
                        sender,
                        Message::JoinReject { reason: RejectReason::NotRendezvous },
                        out,
                    );
                    return;
                }
                let full = self.cfg.max_members.is_some_and(|max| self.members.len() >= max);
                if full && !self.members.contains(&sender) {
                    self.counters.joins_refused += 1;
                    self.send(sender, Message::JoinReject { reason: RejectReason::GroupFull }, out);
                    return;
                }
                self.counters.joins_accepted += 1;
                self.members.insert(sender);
                let members: Vec<_> = self.members.iter().copied().collect();
                self.send(sender, Message::JoinAccept { timestamp, members }, out);
                self.broadcast_members(Some(sender), out);
                self.update_neighbors_from_members(now, out);
            }
            Message::JoinAccept { timestamp, members } => {
                if sender != self.cfg.rendezvous || self.join_timestamp != Some(timestamp) {
                    self.counters.unexpected += 1;
                    return;
                }
                self.joined = true;
                self.join_timestamp = None;
                self.timers.cancel(&TimerKey::Join);
                self.set_members(now, members, out);
                self.originate_lsa(now, false, out);
            }
            Message::JoinReject { .. } => self.counters.rejected += 1,
            Message::Leave => {
                if self.is_rendezvous() && self.members.remove(&sender) {
                    self.broadcast_members(None, out);
                }
                self.members.remove(&sender);
                self.lsdb.remove(&sender);
                self.rtt_cache.remove(&sender);
                if self.neighbors.remove(&sender).is_some() {
                    self.timers.cancel(&TimerKey::Dead(sender));
                    self.originate_lsa(now, false, out);
                    self.refill_neighbors(now, None, out);
                }
            }
            Message::MemberList { members } => {
                if sender != self.cfg.rendezvous || !self.joined {
                    self.counters.unexpected += 1;
                    return;
                }
                self.set_members(now, members, out);
            }
            Message::LinkState { origin, sequence, links } => {
                self.link_state(now, sender, origin, sequence, links, out);
            }
            Message::Probe { timestamp } => {
                self.send(sender, Message::ProbeReply { timestamp }, out);
            }
            Message::ProbeReply { timestamp } => {
                let sent = Timestamp::from_millis(timestamp);
                if sent > now {
                    self.counters.unexpected += 1;
                    return;
                }
                let sample = u32::try_from(now.saturating_duration_since(sent).as_millis())
                    .unwrap_or(u32::MAX)
                    .max(1);
                self.rtt_cache.insert(sender, sample);
                if let Some(n) = self.neighbors.get_mut(&sender) {
                    // A short EWMA: one late reply does not trigger a topology change.
                    n.rtt_ms = Some(n.rtt_ms.map_or(sample, |old| (3 * old + sample) / 4));
                } else {
                    self.candidates.insert(sender, sample);
                }
            }
            Message::Heartbeat => {
                if !self.neighbors.contains_key(&sender) {
                    self.adjacency_request(now, sender, out);
                }
            }
            Message::Unlink => {
                // Forget its RTT too, or re-attachment would pick the node that just refused us.
                self.rtt_cache.remove(&sender);
                if let Some(interval) = self.probe_interval() {
                    self.shunned.insert(sender, now + interval * SHUN_ROUNDS);
                }
                if self.neighbors.remove(&sender).is_some() {
                    self.timers.cancel(&TimerKey::Dead(sender));
                    self.originate_lsa(now, false, out);
                    self.refill_neighbors(now, Some(sender), out);
                }
            }
        }
    }

    /// A heartbeat from a node that is not our neighbour asks for adjacency.
    fn adjacency_request(&mut self, now: Timestamp, sender: Ipv4Addr, out: &mut Vec<Action>) {
        if !self.joined {
            return;
        }
        let accept = match &self.cfg.topology {
            TopologyMode::Static { .. } => self.static_cost(sender).is_some(),
            TopologyMode::SelfOrganising(so) => self.neighbors.len() < so.max_degree,
            TopologyMode::Overcast(oc) => {
                let children =
                    self.neighbors.keys().filter(|&&n| Some(n) != self.overcast_parent).count();
                // No new children while we move ourselves: two siblings moving below each other
                // at once would both refuse, instead of forming a loop.
                children < oc.max_children && self.overcast_old_parent.is_none()
            }
        };
        if !accept {
            self.counters.adjacency_refused += 1;
            if self.dynamic() {
                self.send(sender, Message::Unlink, out);
            }
            return;
        }
        self.members.insert(sender);
        self.add_neighbor(now, sender, out);
        if let Some(n) = self.neighbors.get_mut(&sender) {
            n.up = true;
        }
        self.neighbor_up(now, sender, out);
    }

    fn add_neighbor(&mut self, now: Timestamp, peer: Ipv4Addr, out: &mut Vec<Action>) {
        if peer == self.me || self.neighbors.contains_key(&peer) {
            return;
        }
        let static_cost = self.static_cost(peer);
        self.neighbors.insert(peer, Neighbor { up: false, rtt_ms: None, static_cost });
        self.timers.set_after(TimerKey::Dead(peer), now, self.dead_interval());
        // Heartbeat right away: it is the adjacency request and speeds up convergence.
        self.send(peer, Message::Heartbeat, out);
        if self.dynamic() {
            self.send(peer, Message::Probe { timestamp: now.as_millis() }, out);
        }
    }

    /// A neighbour came up: give it our whole database so it can compute trees at once.
    fn neighbor_up(&mut self, now: Timestamp, peer: Ipv4Addr, out: &mut Vec<Action>) {
        if self.overcast_parent == Some(peer) {
            if let Some(old) = self.overcast_old_parent.take() {
                let root = self.overcast().map_or(peer, |oc| oc.root);
                let tree = shortest_path_tree(&self.topology(), rid(root));
                let hangs_below_us = tree_path_contains(&tree, rid(peer), rid(self.me));
                // Keep the old parent if the new one reaches the root only through us: the move
                // would cut our subtree off in a loop.
                let (keep, drop) = if hangs_below_us { (old, peer) } else { (peer, old) };
                self.send(drop, Message::Unlink, out);
                self.neighbors.remove(&drop);
                self.timers.cancel(&TimerKey::Dead(drop));
                self.overcast_parent = Some(keep);
                if hangs_below_us {
                    self.originate_lsa(now, false, out);
                    return;
                }
            }
        }
        self.originate_lsa(now, false, out);
        let lsas: Vec<_> = self
            .lsdb
            .iter()
            .filter(|(&o, _)| o != self.me)
            .map(|(&o, l)| Message::LinkState {
                origin: o,
                sequence: l.sequence,
                links: l.links.clone(),
            })
            .collect();
        for m in lsas {
            self.send(peer, m, out);
        }
    }

    fn neighbor_dead(&mut self, now: Timestamp, peer: Ipv4Addr, out: &mut Vec<Action>) {
        let Some(n) = self.neighbors.get_mut(&peer) else { return };
        let was_up = n.up;
        n.up = false;
        if was_up {
            self.counters.neighbors_lost += 1;
        }
        if self.dynamic() {
            self.neighbors.remove(&peer);
            self.rtt_cache.remove(&peer);
            self.originate_lsa(now, false, out);
            self.refill_neighbors(now, Some(peer), out);
        } else {
            // Static links stay configured: keep heartbeating so the link comes back with the
            // peer; only the advertisement changes.
            self.timers.set_after(TimerKey::Dead(peer), now, self.dead_interval());
            if was_up {
                self.originate_lsa(now, false, out);
            }
        }
    }

    /// Self-organising mode: after losing `lost`, re-attach first to the grandparent on the
    /// trees where `lost` was our parent (it is known from the root path and is already on
    /// those trees), then to random members until the target degree is met.
    fn refill_neighbors(&mut self, now: Timestamp, lost: Option<Ipv4Addr>, out: &mut Vec<Action>) {
        if self.overcast().is_some() {
            self.overcast_attach(now, lost, out);
            return;
        }
        let Some(target) = self.self_org().map(|so| so.target_degree) else { return };
        if !self.joined {
            return;
        }
        let mut preferred = Vec::new();
        if let Some(lost) = lost {
            let orphaned: Vec<_> =
                self.trees.values().filter(|t| t.parent == Some(lost)).map(|t| t.origin).collect();
            for origin in orphaned {
                preferred.extend(self.parent_of(origin, lost));
            }
        }
        for gp in preferred {
            if self.neighbors.len() >= target {
                break;
            }
            if gp != self.me && Some(gp) != lost {
                self.add_neighbor(now, gp, out);
            }
        }
        while self.neighbors.len() < target {
            let me = self.me;
            let pool: Vec<Ipv4Addr> = self
                .members
                .iter()
                .copied()
                .filter(|&m| m != me && Some(m) != lost && !self.neighbors.contains_key(&m))
                .filter(|m| !self.shunned.contains_key(m))
                .collect();
            // The closest member measured so far, else a random one (the seeded RNG).
            let closest = pool
                .iter()
                .filter_map(|m| self.rtt_cache.get(m).map(|&rtt| (rtt, *m)))
                .min()
                .map(|(_, m)| m);
            let pick = closest.or_else(|| pool.choose(&mut self.rng).copied());
            let Some(p) = pick else { break };
            self.add_neighbor(now, p, out);
        }
    }

    /// `node`'s parent on `origin`'s shortest-path tree, from the current database.
    fn parent_of(&self, origin: Ipv4Addr, node: Ipv4Addr) -> Option<Ipv4Addr> {
        let tree = shortest_path_tree(&self.topology(), rid(origin));
        tree.parent.get(&rid(node)).map(|&(p, _)| addr(p))
    }

    fn set_members(&mut self, now: Timestamp, members: Vec<Ipv4Addr>, out: &mut Vec<Action>) {
        let new: BTreeSet<_> = members.into_iter().collect();
        let gone: Vec<_> =
            self.members.difference(&new).copied().filter(|&m| m != self.me).collect();
        self.members = new;
        self.members.insert(self.me);
        let mut changed = false;
        for g in gone {
            self.lsdb.remove(&g);
            self.rtt_cache.remove(&g);
            if self.neighbors.remove(&g).is_some() {
                self.timers.cancel(&TimerKey::Dead(g));
                changed = true;
            }
        }
        if changed {
            self.originate_lsa(now, false, out);
        }
        self.update_neighbors_from_members(now, out);
    }

    fn update_neighbors_from_members(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        match &self.cfg.topology {
            TopologyMode::Static { links } => {
                let peers: Vec<_> = links
                    .iter()
                    .filter_map(|l| {
                        if l.a == self.me {
                            Some(l.b)
                        } else if l.b == self.me {
                            Some(l.a)
                        } else {
                            None
                        }
                    })
                    .filter(|p| self.members.contains(p))
                    .collect();
                for p in peers {
                    self.add_neighbor(now, p, out);
                }
            }
            TopologyMode::SelfOrganising(_) | TopologyMode::Overcast(_) => {
                self.refill_neighbors(now, None, out);
            }
        }
    }

    fn broadcast_members(&mut self, except: Option<Ipv4Addr>, out: &mut Vec<Action>) {
        let members: Vec<_> = self.members.iter().copied().collect();
        for &m in &members {
            if m != self.me && Some(m) != except {
                self.send(m, Message::MemberList { members: members.clone() }, out);
            }
        }
    }

    fn my_links(&self) -> Vec<LinkEntry> {
        self.neighbors
            .iter()
            .filter(|(_, n)| n.up)
            .map(|(&a, n)| LinkEntry { neighbor: a, cost: n.cost() })
            .collect()
    }

    /// Re-originates our LSA if its content changed (or always at refresh) and floods it.
    fn originate_lsa(&mut self, now: Timestamp, force: bool, out: &mut Vec<Action>) {
        if !self.joined {
            return;
        }
        let links = self.my_links();
        if !force && self.lsdb.get(&self.me).is_some_and(|l| l.links == links) {
            return;
        }
        self.lsa_sequence = self.lsa_sequence.wrapping_add(1);
        self.lsdb.insert(
            self.me,
            Lsa { sequence: self.lsa_sequence, links: links.clone(), received: now },
        );
        let msg = Message::LinkState { origin: self.me, sequence: self.lsa_sequence, links };
        let nbrs: Vec<_> = self.up_neighbors().collect();
        for n in nbrs {
            self.send(n, msg.clone(), out);
        }
    }

    fn link_state(
        &mut self,
        now: Timestamp,
        sender: Ipv4Addr,
        origin: Ipv4Addr,
        sequence: u32,
        links: Vec<LinkEntry>,
        out: &mut Vec<Action>,
    ) {
        if origin == self.me {
            // Our own LSA from before a restart: jump past its sequence so ours wins.
            if sequence > self.lsa_sequence {
                self.lsa_sequence = sequence;
                self.originate_lsa(now, true, out);
            }
            return;
        }
        if self.lsdb.get(&origin).is_some_and(|l| sequence <= l.sequence) {
            if let Some(l) = self.lsdb.get_mut(&origin) {
                if l.sequence == sequence {
                    l.received = now;
                }
            }
            return;
        }
        self.counters.lsas_accepted += 1;
        self.lsdb.insert(origin, Lsa { sequence, links: links.clone(), received: now });
        let msg = Message::LinkState { origin, sequence, links };
        let nbrs: Vec<_> = self.up_neighbors().filter(|&n| n != sender && n != origin).collect();
        for n in nbrs {
            self.send(n, msg.clone(), out);
        }
    }

    /// Self-organising mode: probe neighbours and a few random candidates, then replace the
    /// worst neighbour by the best candidate of the previous round if it is better by the
    /// hysteresis margin.
    fn probe_round(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        if self.overcast().is_some() {
            self.overcast_round(now, out);
            return;
        }
        let Some(so) = self.self_org().cloned() else { return };
        self.timers.set_after(TimerKey::Probe, now, so.probe_interval);
        if !self.joined {
            return;
        }
        self.shunned.retain(|_, until| *until > now);
        let best = self
            .candidates
            .iter()
            .filter(|(a, _)| !self.shunned.contains_key(a))
            .min_by_key(|(&a, &rtt)| (rtt, a))
            .map(|(&a, &r)| (a, r));
        let worst = self
            .neighbors
            .iter()
            .filter_map(|(&a, n)| n.rtt_ms.map(|r| (a, r)))
            .max_by_key(|&(a, r)| (r, std::cmp::Reverse(a)));
        self.candidates.clear();
        if let Some((cand, cand_rtt)) = best {
            if self.neighbors.len() < so.target_degree {
                self.add_neighbor(now, cand, out);
            } else if let Some((w, w_rtt)) = worst {
                let better = u64::from(cand_rtt) * 100
                    < u64::from(w_rtt) * u64::from(100u32.saturating_sub(so.hysteresis_percent));
                // Never cut a node's only link: it would fall off the overlay.
                let sole_link = self.lsdb.get(&w).is_some_and(|l| l.links.len() <= 1);
                if better && !sole_link {
                    self.send(w, Message::Unlink, out);
                    self.neighbors.remove(&w);
                    self.timers.cancel(&TimerKey::Dead(w));
                    self.counters.neighbors_replaced += 1;
                    self.add_neighbor(now, cand, out);
                    self.originate_lsa(now, false, out);
                }
            }
        }
        let nbrs: Vec<_> = self.neighbors.keys().copied().collect();
        let me = self.me;
        let mut candidates: Vec<_> = self
            .members
            .iter()
            .copied()
            .filter(|&m| m != me && !self.neighbors.contains_key(&m))
            .collect();
        candidates.shuffle(&mut self.rng);
        candidates.truncate(so.candidates_per_round);
        let timestamp = now.as_millis();
        for dst in nbrs.into_iter().chain(candidates) {
            self.send(dst, Message::Probe { timestamp }, out);
        }
    }

    /// Overcast: (re)attach below the lost parent's parent, else below the root.
    fn overcast_attach(&mut self, now: Timestamp, lost: Option<Ipv4Addr>, out: &mut Vec<Action>) {
        let Some(root) = self.overcast().map(|oc| oc.root) else { return };
        if self.overcast_parent.is_some_and(|p| !self.neighbors.contains_key(&p)) {
            // A refused or dead new parent: fall back to the old one if we still hold it.
            self.overcast_parent =
                self.overcast_old_parent.take().filter(|o| self.neighbors.contains_key(o));
        }
        if !self.joined || self.me == root || self.overcast_parent.is_some() {
            return;
        }
        let usable =
            |n: Ipv4Addr| n != self.me && Some(n) != lost && !self.shunned.contains_key(&n);
        let grandparent = lost.and_then(|l| self.parent_of(root, l)).filter(|&g| usable(g));
        let target = grandparent.or_else(|| Some(root).filter(|&r| usable(r))).or_else(|| {
            // Refused by the root (child bound): go down its tree as Overcast does, to the
            // attached node closest to the root through which we would hang.
            let tree = shortest_path_tree(&self.topology(), rid(root));
            let me = rid(self.me);
            tree.distance
                .iter()
                .filter(|&(&n, _)| usable(addr(n)) && !tree_path_contains(&tree, n, me))
                .map(|(&n, &d)| {
                    (d + u64::from(self.rtt_cache.get(&addr(n)).copied().unwrap_or(1000)), n)
                })
                .min()
                .map(|(_, n)| addr(n))
        });
        // Without a database (refused before any adjacency), a random member: its answer brings
        // the database, and the next round can do better.
        let target = target.or_else(|| {
            let pool: Vec<Ipv4Addr> = self.members.iter().copied().filter(|&m| usable(m)).collect();
            pool.choose(&mut self.rng).copied()
        });
        let Some(target) = target else { return };
        self.add_neighbor(now, target, out);
        self.overcast_parent = Some(target);
    }

    /// Overcast re-evaluation: move below a sibling (deeper) while the root latency through it
    /// stays within the tolerance of the direct one; move up to the grandparent when the current
    /// placement is out of tolerance. Latency through a node = its distance from the root on the
    /// tree (RTT costs from the database) + our measured RTT to it.
    fn overcast_round(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        let Some(oc) = self.overcast().cloned() else { return };
        self.timers.set_after(TimerKey::Probe, now, oc.probe_interval);
        if !self.joined || self.me == oc.root {
            return;
        }
        self.shunned.retain(|_, until| *until > now);
        self.overcast_attach(now, None, out);
        let Some(parent) = self.overcast_parent else { return };
        if self.overcast_old_parent.is_some() {
            // A move is under way.
            return;
        }
        let tree = shortest_path_tree(&self.topology(), rid(oc.root));
        let me = rid(self.me);
        let in_my_subtree = |n: RouterId| tree_path_contains(&tree, n, me);
        let grandparent = tree.parent.get(&rid(parent)).map(|&(p, _)| addr(p));
        let siblings: Vec<Ipv4Addr> = tree
            .parent
            .iter()
            .filter(|(&c, (p, _))| *p == rid(parent) && c != me && !in_my_subtree(c))
            .map(|(&c, _)| addr(c))
            .filter(|c| !self.shunned.contains_key(c))
            .collect();
        // We know nothing of the root's part: try a random member outside our own.
        let rootless_pick = if tree.distance.contains_key(&me) {
            None
        } else {
            let ours = shortest_path_tree(&self.topology(), me);
            let pool: Vec<Ipv4Addr> = self
                .members
                .iter()
                .copied()
                .filter(|&m| !ours.distance.contains_key(&rid(m)))
                .filter(|m| !self.shunned.contains_key(m))
                .collect();
            pool.choose(&mut self.rng).copied()
        };
        let via = |c: Ipv4Addr| -> Option<u64> {
            Some(tree.distance.get(&rid(c))? + u64::from(*self.rtt_cache.get(&c)?))
        };
        // Cut off from the root (two nodes moved below each other, or a subtree lost its way):
        // re-attach to the root's part of the overlay, whatever the latency.
        let detached = (!tree.distance.contains_key(&me))
            .then(|| {
                tree.distance
                    .iter()
                    .map(|(&n, &d)| {
                        (
                            d + u64::from(self.rtt_cache.get(&addr(n)).copied().unwrap_or(1000)),
                            addr(n),
                        )
                    })
                    .filter(|&(_, n)| n != parent && !self.shunned.contains_key(&n))
                    .min()
                    .map(|(_, n)| n)
            })
            .flatten()
            .or(rootless_pick);
        let decision = if detached.is_some() {
            detached
        } else {
            match (self.rtt_cache.get(&oc.root), via(parent)) {
                (Some(&direct), Some(current)) => {
                    let bound = u64::from(direct) * u64::from(100 + oc.tolerance_percent) / 100;
                    if current > bound {
                        // Out of tolerance: up to the grandparent, or (when it is full) to whichever
                        // measured node outside our subtree gives the lowest root latency, if that
                        // is clearly (10 %) better than now.
                        let elsewhere = tree
                            .distance
                            .keys()
                            .map(|&n| addr(n))
                            .filter(|&n| {
                                n != parent
                                    && !in_my_subtree(rid(n))
                                    && !self.shunned.contains_key(&n)
                            })
                            .filter_map(|n| via(n).map(|v| (v, n)))
                            .min()
                            .filter(|&(v, _)| v * 10 < current * 9)
                            .map(|(_, n)| n);
                        grandparent
                            .filter(|&g| !self.shunned.contains_key(&g))
                            .filter(|&g| via(g).is_some_and(|v| v < current))
                            .or(elsewhere)
                    } else {
                        siblings
                            .iter()
                            .filter_map(|&s| via(s).filter(|&v| v <= bound).map(|v| (v, s)))
                            .min()
                            .map(|(_, s)| s)
                    }
                }
                _ => None,
            }
        };
        // Moving on every chance makes siblings swap below each other in the same round; a coin
        // flip (seeded RNG) breaks that symmetry.
        if let Some(new_parent) = decision.filter(|_| rand::Rng::gen_bool(&mut self.rng, 0.5)) {
            // Make before break: the old parent is unlinked once the new one is up
            // (`neighbor_up`), so the stream does not stop during the move.
            self.counters.neighbors_replaced += 1;
            self.add_neighbor(now, new_parent, out);
            self.overcast_parent = Some(new_parent);
            self.overcast_old_parent = Some(parent);
        }
        let timestamp = now.as_millis();
        let mut probe: BTreeSet<Ipv4Addr> = siblings.into_iter().take(8).collect();
        probe.extend([oc.root, parent]);
        probe.extend(grandparent);
        // Two random members per round widen what a badly placed node knows about.
        let others: Vec<Ipv4Addr> =
            self.members.iter().copied().filter(|m| !probe.contains(m)).collect();
        probe.extend(others.choose_multiple(&mut self.rng, 2).copied());
        probe.remove(&self.me);
        for dst in probe {
            self.send(dst, Message::Probe { timestamp }, out);
        }
    }

    fn topology(&self) -> Topology {
        let mut topo = Topology::new();
        for (&origin, lsa) in &self.lsdb {
            topo.add_router(rid(origin));
            for l in &lsa.links {
                topo.add_link(
                    rid(origin),
                    Link { to: rid(l.neighbor), cost: l.cost.max(1), id: rid(l.neighbor) },
                );
            }
        }
        topo
    }

    /// Recomputes this node's place on every tree and emits the MFIB changes.
    fn recompute(&mut self, out: &mut Vec<Action>) {
        let inputs: TreeInputs = (
            self.lsdb.iter().map(|(&o, l)| (o, l.sequence)).collect(),
            self.members.clone(),
            self.local_ifaces.clone(),
        );
        if self.tree_inputs.as_ref() == Some(&inputs) {
            return;
        }
        self.tree_inputs = Some(inputs);
        let topo = self.topology();
        let member_ids: BTreeSet<RouterId> = self.members.iter().map(|&m| rid(m)).collect();
        let mut trees: BTreeMap<Ipv4Addr, TreeState> = BTreeMap::new();
        match self.cfg.tree {
            TreeMode::ShortestPath => {
                for &origin in &self.members {
                    let tree = shortest_path_tree(&topo, rid(origin));
                    if let Some(entry) = tree.local_entry(&topo, rid(self.me), &member_ids) {
                        trees.insert(
                            origin,
                            TreeState {
                                origin,
                                parent: entry.upstream.map(|l| addr(l.to)),
                                children: entry.downstream.iter().map(|l| addr(l.to)).collect(),
                            },
                        );
                    }
                }
            }
            TreeMode::SharedCore { core } => {
                let tree = shortest_path_tree(&topo, rid(core));
                let mut wanted = member_ids.clone();
                wanted.insert(rid(core));
                let on_tree = tree.pruned(&wanted);
                if on_tree.contains(&rid(self.me)) {
                    for &origin in &self.members {
                        if on_tree.contains(&rid(origin)) {
                            trees.insert(
                                origin,
                                shared_tree_state(&tree, &on_tree, self.me, origin),
                            );
                        }
                    }
                }
            }
        }
        let deliver: Vec<Oif> =
            self.local_ifaces.iter().map(|&ifindex| Oif { ifindex, ttl_threshold: 1 }).collect();
        let mut routes = BTreeMap::new();
        let mut own_hops = Vec::new();
        for (&origin, t) in &trees {
            if origin == self.me {
                own_hops.clone_from(&t.children);
                continue;
            }
            routes.insert(
                origin,
                OverlayRoute {
                    origin,
                    group: self.cfg.group,
                    from: t.parent,
                    deliver: deliver.clone(),
                    next_hops: t.children.clone(),
                },
            );
        }
        // Next hops first, so the data plane knows their addresses before routes use them.
        let mut hops: BTreeSet<Ipv4Addr> = own_hops.iter().copied().collect();
        hops.extend(routes.values().flat_map(|r| r.next_hops.iter().copied()));
        for &h in hops.difference(&self.resolved) {
            out.push(Action::ResolveNeighbor(h));
        }
        let installed = std::mem::take(&mut self.installed);
        for (origin, route) in &routes {
            if installed.get(origin) != Some(route) {
                out.push(Action::Mfib(MfibUpdate::InstallOverlay(route.clone())));
            }
        }
        for origin in installed.keys().filter(|o| !routes.contains_key(o)) {
            out.push(Action::Mfib(MfibUpdate::RemoveOverlay {
                origin: *origin,
                group: self.cfg.group,
            }));
        }
        let own = (!own_hops.is_empty()).then(|| MfibRoute {
            source: None,
            group: self.cfg.group,
            iif: self.cfg.local_iif,
            oifs: vec![],
            overlay_next_hops: own_hops,
        });
        if own != self.own_route {
            match &own {
                Some(r) => out.push(Action::Mfib(MfibUpdate::Install(r.clone()))),
                None => out
                    .push(Action::Mfib(MfibUpdate::Remove { source: None, group: self.cfg.group })),
            }
            self.own_route = own;
        }
        for &h in self.resolved.difference(&hops) {
            out.push(Action::ForgetNeighbor(h));
        }
        self.resolved = hops;
        self.installed = routes;
        self.trees = trees;
    }

    /// The installed overlay routes (origin → route), as the data plane holds them.
    pub fn overlay_routes(&self) -> &BTreeMap<Ipv4Addr, OverlayRoute> {
        &self.installed
    }

    /// The (*,G) route that puts local senders' traffic onto the overlay, if any.
    pub fn origin_route(&self) -> Option<&MfibRoute> {
        self.own_route.as_ref()
    }
}

/// Whether `node` lies on the path from `start` up to the root of `tree` (`start` included).
fn tree_path_contains(tree: &Tree, start: RouterId, node: RouterId) -> bool {
    let mut n = start;
    for _ in 0..=tree.parent.len() {
        if n == node {
            return true;
        }
        match tree.parent.get(&n) {
            Some(&(p, _)) => n = p,
            None => return false,
        }
    }
    // Longer than the tree: a cycle, which Dijkstra's parents never form; treat as "on it".
    true
}

/// On the shared tree (`tree` rooted at the core, restricted to `on_tree`), `me`'s parent for
/// data from `origin` is its tree neighbour toward `origin`, and its children are all other tree
/// neighbours.
fn shared_tree_state(
    tree: &Tree,
    on_tree: &BTreeSet<RouterId>,
    me: Ipv4Addr,
    origin: Ipv4Addr,
) -> TreeState {
    let me_id = rid(me);
    let mut adjacent: BTreeSet<Ipv4Addr> = tree
        .parent
        .iter()
        .filter(|(c, (p, _))| *p == me_id && on_tree.contains(c))
        .map(|(&c, _)| addr(c))
        .collect();
    let my_parent = tree.parent.get(&me_id).map(|&(p, _)| addr(p));
    adjacent.extend(my_parent);
    let toward_origin = if me == origin {
        None
    } else {
        // Walk up from the origin: if we meet `me`, the node before it is our child toward
        // the origin; otherwise the origin is outside our subtree and data comes from our parent.
        let mut prev = None;
        let mut node = rid(origin);
        let mut found = None;
        for _ in 0..=tree.parent.len() {
            if node == me_id {
                found = prev;
                break;
            }
            prev = Some(addr(node));
            match tree.parent.get(&node) {
                Some(&(p, _)) => node = p,
                None => break,
            }
        }
        found.or(my_parent)
    };
    let children = adjacent.into_iter().filter(|&a| Some(a) != toward_origin).collect();
    TreeState { origin, parent: toward_origin, children }
}
