//! The forwarding cache: flood and prune per (source network, group) (draft §3.5).
//!
//! An entry exists once data from the source network arrived (a punt) or a neighbour pruned it.
//! After every input, [`DvmrpRouter::reconcile`] re-derives each entry from the route table:
//!
//! ```text
//!  iif  = RPF interface of the source network (our upstream)
//!  oifs = child interfaces (not iif, we are the designated forwarder there) with a local
//!         member wanting (S,G), or a dependent neighbour that has not pruned (S,G)
//!
//!  upstream state ([`Upstream::step`], a `match (state, input)`):
//!                    Forwarding ──(no oifs for any S, data seen)──> Pruned (prune sent)
//!                    Pruned ──(oifs appear)──> Grafting (graft sent, retransmit 5,10,20,40 s)
//!                    Grafting ──(graft-ack)──> Forwarding
//!                    Pruned/Grafting ──(our prune's lifetime ends, or upstream changes
//!                                        or restarts)──> Forwarding
//! ```
//!
//! Invariants: an MFIB update is emitted only when a source's (iif, oifs) changes; an entry
//! whose route is gone is removed with its MFIB routes; a received prune is honoured until its
//! lifetime ends, a graft from that neighbour arrives, or the neighbour restarts or goes away.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use dataplane_api::{IfIndex, MfibRoute, MfibUpdate, Oif, Punt};
use serde::{Deserialize, Serialize};
use wire::dvmrp::Message;

use super::route::RouteKey;
use super::{
    ignored, secs_until, Action, DebugEvent, DvmrpConfig, DvmrpRouter, IgnoreReason,
    MIN_PRUNE_LIFETIME,
};
use crate::timer::Timestamp;

/// A forwarding cache key: a source network (a route of the table) and a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct SgKey {
    pub(super) origin: Ipv4Addr,
    pub(super) prefix_len: u8,
    pub(super) group: Ipv4Addr,
}

impl SgKey {
    fn route(self) -> RouteKey {
        RouteKey { origin: self.origin, prefix_len: self.prefix_len }
    }
}

#[derive(Debug, Clone)]
pub(super) struct UpstreamPrune {
    pub(super) to: Ipv4Addr,
    pub(super) lifetime: u32,
    pub(super) expires: Timestamp,
}

#[derive(Debug, Clone)]
pub(super) struct PendingGraft {
    pub(super) to: Ipv4Addr,
    pub(super) attempts: u32,
    pub(super) interval: Duration,
    pub(super) next: Timestamp,
}

/// Our side of an entry towards the RPF neighbour (the upstream state machine in the module
/// docs); driven only through [`Upstream::step`].
#[derive(Debug, Clone, Default)]
pub(super) enum Upstream {
    #[default]
    Forwarding,
    Pruned(UpstreamPrune),
    Grafting(UpstreamPrune, PendingGraft),
}

/// Inputs of the upstream state machine.
#[derive(Debug, Clone, Copy)]
enum UpstreamInput {
    /// Data was seen and no source of the entry has an outgoing interface.
    NothingToForward {
        to: Ipv4Addr,
        lifetime: u32,
    },
    /// Some source has an outgoing interface.
    SomethingToForward,
    GraftAck {
        from: Ipv4Addr,
    },
    Timer,
}

/// What a transition asks the router to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UpstreamOutput {
    SendPrune { to: Ipv4Addr, lifetime: u32 },
    SendGraft { to: Ipv4Addr, attempt: u32 },
    PruneExpired,
    Acked { from: Ipv4Addr },
}

impl Upstream {
    /// The neighbour that holds our prune, if any.
    pub(super) fn pruned_by(&self) -> Option<Ipv4Addr> {
        match self {
            Upstream::Forwarding => None,
            Upstream::Pruned(p) | Upstream::Grafting(p, _) => Some(p.to),
        }
    }

    fn step(
        &mut self,
        now: Timestamp,
        config: &DvmrpConfig,
        input: UpstreamInput,
    ) -> Option<UpstreamOutput> {
        use UpstreamInput as In;
        use UpstreamOutput as Out;
        let (next, output) = match (std::mem::take(self), input) {
            (Upstream::Forwarding, In::NothingToForward { to, lifetime }) => {
                let expires = now + Duration::from_secs(u64::from(lifetime));
                (
                    Upstream::Pruned(UpstreamPrune { to, lifetime, expires }),
                    Some(Out::SendPrune { to, lifetime }),
                )
            }
            (Upstream::Pruned(p) | Upstream::Grafting(p, _), In::Timer) if now >= p.expires => {
                (Upstream::Forwarding, Some(Out::PruneExpired))
            }
            (Upstream::Pruned(p), In::SomethingToForward) => {
                let graft = PendingGraft {
                    to: p.to,
                    attempts: 1,
                    interval: config.graft_retransmit,
                    next: now + config.graft_retransmit,
                };
                let to = p.to;
                (Upstream::Grafting(p, graft), Some(Out::SendGraft { to, attempt: 1 }))
            }
            (Upstream::Grafting(p, mut g), In::Timer) if now >= g.next => {
                g.attempts += 1;
                g.interval = (g.interval * 2).min(config.graft_retransmit_max);
                g.next = now + g.interval;
                let output = Out::SendGraft { to: g.to, attempt: g.attempts };
                (Upstream::Grafting(p, g), Some(output))
            }
            (Upstream::Grafting(_, g), In::GraftAck { from }) if g.to == from => {
                (Upstream::Forwarding, Some(Out::Acked { from }))
            }
            // Everything else leaves the state as it is: e.g. a graft pending while the
            // members leave again keeps retransmitting until acked, then prunes anew.
            (state, _) => (state, None),
        };
        *self = next;
        output
    }
}

#[derive(Debug, Clone)]
pub(super) struct CacheEntry {
    /// Concrete sources seen in data, with what is installed for them in the MFIB.
    pub(super) sources: BTreeMap<Ipv4Addr, Option<(IfIndex, Vec<Oif>)>>,
    pub(super) iif: Option<IfIndex>,
    pub(super) gateway: Option<Ipv4Addr>,
    /// Prunes received: (child interface, neighbour) → expiry.
    pub(super) prunes: BTreeMap<(IfIndex, Ipv4Addr), Timestamp>,
    pub(super) upstream: Upstream,
    pub(super) last_active: Timestamp,
}

impl CacheEntry {
    fn new(now: Timestamp) -> CacheEntry {
        CacheEntry {
            sources: BTreeMap::new(),
            iif: None,
            gateway: None,
            prunes: BTreeMap::new(),
            upstream: Upstream::Forwarding,
            last_active: now,
        }
    }

    fn has_prune_state(&self) -> bool {
        !self.prunes.is_empty() || self.upstream.pruned_by().is_some()
    }

    pub(super) fn next_deadline(&self, config: &DvmrpConfig) -> Option<Timestamp> {
        // While prune state exists, its expiries drive the entry; idleness is judged after.
        let idle = (!self.has_prune_state()).then(|| self.last_active + config.cache_idle_timeout);
        [
            self.prunes.values().min().copied(),
            match &self.upstream {
                Upstream::Forwarding => None,
                Upstream::Pruned(p) => Some(p.expires),
                Upstream::Grafting(p, g) => Some(p.expires.min(g.next)),
            },
            idle,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub(super) fn snapshot(&self, key: &SgKey, now: Timestamp) -> MrouteState {
        let mut oifs: Vec<IfIndex> = self
            .sources
            .values()
            .flatten()
            .flat_map(|(_, o)| o.iter().map(|o| o.ifindex))
            .collect();
        oifs.sort_unstable();
        oifs.dedup();
        MrouteState {
            origin: key.origin,
            prefix_len: key.prefix_len,
            group: key.group,
            sources: self.sources.keys().copied().collect(),
            iif: self.iif,
            oifs,
            pruned: self
                .prunes
                .iter()
                .map(|((ifindex, neighbor), at)| PrunedInterface {
                    ifindex: *ifindex,
                    neighbor: *neighbor,
                    remaining_secs: secs_until(now, *at),
                })
                .collect(),
            upstream_prune: match &self.upstream {
                Upstream::Forwarding => None,
                Upstream::Pruned(p) | Upstream::Grafting(p, _) => Some(p),
            }
            .map(|p| UpstreamPruneState {
                neighbor: p.to,
                lifetime: p.lifetime,
                remaining_secs: secs_until(now, p.expires),
            }),
            graft: match &self.upstream {
                Upstream::Grafting(_, g) => Some(g),
                _ => None,
            }
            .map(|g| GraftState {
                neighbor: g.to,
                attempts: g.attempts,
                retransmit_in_secs: secs_until(now, g.next),
            }),
            idle_secs: now.saturating_duration_since(self.last_active).as_secs(),
        }
    }
}

/// A forwarding cache entry as shown by `fanoutctl show mroute`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MrouteState {
    pub origin: Ipv4Addr,
    pub prefix_len: u8,
    pub group: Ipv4Addr,
    pub sources: Vec<Ipv4Addr>,
    pub iif: Option<IfIndex>,
    /// Union of the outgoing interfaces installed for the sources.
    pub oifs: Vec<IfIndex>,
    pub pruned: Vec<PrunedInterface>,
    pub upstream_prune: Option<UpstreamPruneState>,
    pub graft: Option<GraftState>,
    pub idle_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrunedInterface {
    pub ifindex: IfIndex,
    pub neighbor: Ipv4Addr,
    pub remaining_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamPruneState {
    pub neighbor: Ipv4Addr,
    pub lifetime: u32,
    pub remaining_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraftState {
    pub neighbor: Ipv4Addr,
    pub attempts: u32,
    pub retransmit_in_secs: u64,
}

/// Turns an upstream transition's output into packets and debug events.
fn upstream_actions(
    capabilities: u8,
    key: SgKey,
    iif: IfIndex,
    output: Option<UpstreamOutput>,
    out: &mut Vec<Action>,
) {
    let (origin, group) = (key.origin, key.group);
    match output {
        None => {}
        Some(UpstreamOutput::SendPrune { to, lifetime }) => {
            let msg = super::header(
                capabilities,
                Message::Prune { source: origin, group, lifetime, source_mask: None },
            );
            out.push(Action::Send { ifindex: iif, dst: to, msg });
            out.push(Action::Debug(DebugEvent::PruneSent {
                origin,
                group,
                upstream: to,
                lifetime,
            }));
        }
        Some(UpstreamOutput::SendGraft { to, attempt }) => {
            let msg = super::header(capabilities, Message::Graft { source: origin, group });
            out.push(Action::Send { ifindex: iif, dst: to, msg });
            out.push(Action::Debug(DebugEvent::GraftSent { origin, group, upstream: to, attempt }));
        }
        Some(UpstreamOutput::PruneExpired) => {
            out.push(Action::Debug(DebugEvent::UpstreamPruneExpired { origin, group }));
        }
        Some(UpstreamOutput::Acked { from }) => {
            out.push(Action::Debug(DebugEvent::GraftAcked { origin, group, from }));
        }
    }
}

fn routable_group(group: Ipv4Addr) -> bool {
    group.is_multicast() && group.octets()[..3] != [224, 0, 0]
}

impl DvmrpRouter {
    pub(super) fn data_arrived(&mut self, now: Timestamp, punt: Punt, out: &mut Vec<Action>) {
        let Punt { iif, source, group } = punt;
        if !routable_group(group) {
            out.push(ignored(Some(iif), Some(source), IgnoreReason::NotRoutableGroup { group }));
            return;
        }
        let Some(route) = self.lookup(source) else {
            out.push(ignored(Some(iif), Some(source), IgnoreReason::NoRoute { source }));
            return;
        };
        let key = SgKey { origin: route.key.origin, prefix_len: route.key.prefix_len, group };
        let upstream = route.best.upstream;
        let entry = self.cache.entry(key).or_insert_with(|| CacheEntry::new(now));
        entry.last_active = now;
        if let std::collections::btree_map::Entry::Vacant(slot) = entry.sources.entry(source) {
            slot.insert(None);
            if let Some(rpf) = upstream {
                out.push(Action::Debug(DebugEvent::CacheCreated {
                    source,
                    group,
                    iif: rpf,
                    rpf_ok: rpf == iif,
                }));
            }
        }
        self.reconcile(now, key, out);
    }

    pub(super) fn data_activity(&mut self, now: Timestamp, source: Ipv4Addr, group: Ipv4Addr) {
        let Some(route) = self.lookup(source) else { return };
        let key = SgKey { origin: route.key.origin, prefix_len: route.key.prefix_len, group };
        if let Some(entry) = self.cache.get_mut(&key) {
            entry.last_active = now;
        }
    }

    /// Resolves a prune/graft/graft-ack's (source, group) to a cache key, ignoring (with a
    /// reason) what cannot apply.
    fn message_key(
        &self,
        ifindex: IfIndex,
        from: Ipv4Addr,
        source: Ipv4Addr,
        group: Ipv4Addr,
        out: &mut Vec<Action>,
    ) -> Option<SgKey> {
        if !routable_group(group) {
            out.push(ignored(Some(ifindex), Some(from), IgnoreReason::NotRoutableGroup { group }));
            return None;
        }
        let Some(route) = self.lookup(source) else {
            out.push(ignored(Some(ifindex), Some(from), IgnoreReason::NoRoute { source }));
            return None;
        };
        Some(SgKey { origin: route.key.origin, prefix_len: route.key.prefix_len, group })
    }

    #[expect(clippy::too_many_arguments, reason = "the prune's fields, unpacked by the dispatcher")]
    pub(super) fn receive_prune(
        &mut self,
        now: Timestamp,
        ifindex: IfIndex,
        from: Ipv4Addr,
        source: Ipv4Addr,
        group: Ipv4Addr,
        lifetime: u32,
        out: &mut Vec<Action>,
    ) {
        if !self.neighbors.contains_key(&(ifindex, from)) {
            out.push(ignored(Some(ifindex), Some(from), IgnoreReason::UnknownNeighbor));
            return;
        }
        if lifetime <= MIN_PRUNE_LIFETIME {
            out.push(ignored(
                Some(ifindex),
                Some(from),
                IgnoreReason::ShortPruneLifetime { lifetime },
            ));
            return;
        }
        let Some(key) = self.message_key(ifindex, from, source, group, out) else { return };
        if self.routes.get(&key.route()).is_some_and(|r| r.best.upstream == Some(ifindex)) {
            out.push(ignored(Some(ifindex), Some(from), IgnoreReason::FromUpstream));
            return;
        }
        let entry = self.cache.entry(key).or_insert_with(|| CacheEntry::new(now));
        entry.prunes.insert((ifindex, from), now + Duration::from_secs(u64::from(lifetime)));
        out.push(Action::Debug(DebugEvent::PruneReceived {
            ifindex,
            from,
            origin: key.origin,
            group,
            lifetime,
        }));
        self.reconcile(now, key, out);
    }

    pub(super) fn receive_graft(
        &mut self,
        now: Timestamp,
        ifindex: IfIndex,
        from: Ipv4Addr,
        source: Ipv4Addr,
        group: Ipv4Addr,
        out: &mut Vec<Action>,
    ) {
        // Ack every graft, even without state: the sender retransmits until it hears one, and
        // the ack must echo its 8 data bytes exactly.
        let ack = self.header(Message::GraftAck { source, group });
        out.push(Action::Send { ifindex, dst: from, msg: ack });
        out.push(Action::Debug(DebugEvent::GraftReceived { ifindex, from, source, group }));
        let Some(key) = self.message_key(ifindex, from, source, group, out) else { return };
        if let Some(entry) = self.cache.get_mut(&key) {
            entry.prunes.remove(&(ifindex, from));
            self.reconcile(now, key, out);
        }
    }

    pub(super) fn receive_graft_ack(
        &mut self,
        now: Timestamp,
        ifindex: IfIndex,
        from: Ipv4Addr,
        source: Ipv4Addr,
        group: Ipv4Addr,
        out: &mut Vec<Action>,
    ) {
        let Some(key) = self.message_key(ifindex, from, source, group, out) else { return };
        let config = &self.config;
        let output = self
            .cache
            .get_mut(&key)
            .and_then(|e| e.upstream.step(now, config, UpstreamInput::GraftAck { from }));
        if output.is_none() {
            out.push(ignored(Some(ifindex), Some(from), IgnoreReason::UnexpectedGraftAck));
            return;
        }
        upstream_actions(self.config.capabilities, key, ifindex, output, out);
        self.reconcile(now, key, out);
    }

    /// Runs the cache's timers: prune lifetimes (ours and received), graft retransmissions,
    /// idle entries.
    pub(super) fn expire_cache(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        let mut idle = Vec::new();
        for (key, entry) in &mut self.cache {
            let expired: Vec<_> =
                entry.prunes.iter().filter(|(_, at)| now >= **at).map(|(k, _)| *k).collect();
            for (ifindex, from) in expired {
                entry.prunes.remove(&(ifindex, from));
                out.push(Action::Debug(DebugEvent::PruneExpired {
                    ifindex,
                    from,
                    origin: key.origin,
                    group: key.group,
                }));
            }
            let output = entry.upstream.step(now, &self.config, UpstreamInput::Timer);
            if let Some(iif) = entry.iif {
                upstream_actions(self.config.capabilities, *key, iif, output, out);
            }
            if !entry.has_prune_state() && now >= entry.last_active + self.config.cache_idle_timeout
            {
                idle.push(*key);
            }
        }
        for key in idle {
            self.remove_entry(key, out);
        }
    }

    fn remove_entry(&mut self, key: SgKey, out: &mut Vec<Action>) {
        let Some(entry) = self.cache.remove(&key) else { return };
        for (source, installed) in entry.sources {
            if installed.is_some() {
                out.push(Action::Mfib(MfibUpdate::Remove {
                    source: Some(source),
                    group: key.group,
                }));
            }
        }
        out.push(Action::Debug(DebugEvent::CacheExpired {
            origin: key.origin,
            prefix_len: key.prefix_len,
            group: key.group,
        }));
    }

    pub(super) fn reconcile_all(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        let keys: Vec<SgKey> = self.cache.keys().copied().collect();
        for key in keys {
            self.reconcile(now, key, out);
        }
    }

    fn member_wants(&self, ifindex: IfIndex, source: Ipv4Addr, group: Ipv4Addr) -> bool {
        self.members.contains(&(ifindex, group, None))
            || self.members.contains(&(ifindex, group, Some(source)))
    }

    /// Re-derives one cache entry (iif, oifs per source, prune/graft upstream) and emits what
    /// changed.
    pub(super) fn reconcile(&mut self, now: Timestamp, key: SgKey, out: &mut Vec<Action>) {
        let Some(mut entry) = self.cache.remove(&key) else { return };
        let route = self.routes.get(&key.route()).filter(|r| r.best.reachable());
        let Some((route, iif)) = route.and_then(|r| Some((r, r.best.upstream?))) else {
            self.cache.insert(key, entry);
            self.remove_entry(key, out);
            return;
        };
        let gateway = route.best.gateway;
        if entry.iif != Some(iif) || entry.gateway != gateway {
            // A new upstream has never heard our prune; an old graft is moot.
            entry.iif = Some(iif);
            entry.gateway = gateway;
            entry.upstream = Upstream::Forwarding;
        }
        // Child interfaces where we forward, with whether an un-pruned dependent is there.
        let children: Vec<(Oif, bool)> = self
            .ifaces
            .keys()
            .filter(|i| **i != iif)
            .filter_map(|i| self.oif(*i))
            .filter(|o| self.forwarder(route, o.ifindex, now).is_some_and(|(_, us)| us))
            .map(|o| {
                let wanted = self.dependents(route, o.ifindex, now).any(|n| {
                    self.neighbors.contains_key(&(o.ifindex, n))
                        && entry.prunes.get(&(o.ifindex, n)).is_none_or(|at| now >= *at)
                });
                (o, wanted)
            })
            .collect();
        let mut any_oifs = false;
        for (source, installed) in &mut entry.sources {
            let oifs: Vec<Oif> = children
                .iter()
                .filter(|(o, dep)| *dep || self.member_wants(o.ifindex, *source, key.group))
                .map(|(o, _)| *o)
                .collect();
            any_oifs |= !oifs.is_empty();
            if installed.as_ref() != Some(&(iif, oifs.clone())) {
                out.push(Action::Mfib(MfibUpdate::Install(MfibRoute {
                    source: Some(*source),
                    group: key.group,
                    iif,
                    oifs: oifs.clone(),
                    overlay_next_hops: Vec::new(),
                })));
                *installed = Some((iif, oifs));
            }
        }
        let upstream_alive = gateway.filter(|g| self.neighbors.contains_key(&(iif, *g)));
        let input = match upstream_alive {
            // Prune only what we have seen data for; a prune-only entry has nothing to cut.
            Some(to) if !any_oifs && !entry.sources.is_empty() => {
                // Never prune for longer than the shortest downstream prune, or we would stay
                // cut off after a downstream router wants the traffic back.
                let shortest = entry
                    .prunes
                    .values()
                    .map(|at| at.saturating_duration_since(now).as_secs())
                    .min();
                let default = self.config.prune_lifetime.as_secs();
                let lifetime = shortest
                    .map_or(default, |s| s.min(default))
                    .max(u64::from(MIN_PRUNE_LIFETIME) + 1);
                let lifetime = u32::try_from(lifetime).unwrap_or(u32::MAX);
                Some(UpstreamInput::NothingToForward { to, lifetime })
            }
            Some(_) if any_oifs => Some(UpstreamInput::SomethingToForward),
            _ => None,
        };
        if let Some(input) = input {
            let output = entry.upstream.step(now, &self.config, input);
            upstream_actions(self.config.capabilities, key, iif, output, out);
        }
        self.cache.insert(key, entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: u64) -> Timestamp {
        Timestamp::from_secs(s)
    }

    const UP: Ipv4Addr = Ipv4Addr::new(10, 0, 12, 2);
    const OTHER: Ipv4Addr = Ipv4Addr::new(10, 0, 12, 3);

    #[test]
    fn upstream_state_machine_transitions() {
        let cfg = DvmrpConfig::default();
        let mut u = Upstream::Forwarding;
        // Forwarding ignores everything but "nothing to forward".
        for input in [
            UpstreamInput::SomethingToForward,
            UpstreamInput::Timer,
            UpstreamInput::GraftAck { from: UP },
        ] {
            assert_eq!(u.step(t(0), &cfg, input), None);
            assert!(matches!(u, Upstream::Forwarding));
        }
        let prune = UpstreamInput::NothingToForward { to: UP, lifetime: 100 };
        assert_eq!(
            u.step(t(0), &cfg, prune),
            Some(UpstreamOutput::SendPrune { to: UP, lifetime: 100 })
        );
        assert_eq!(u.step(t(1), &cfg, prune), None, "already pruned: no second prune");
        assert_eq!(
            u.step(t(10), &cfg, UpstreamInput::SomethingToForward),
            Some(UpstreamOutput::SendGraft { to: UP, attempt: 1 })
        );
        assert_eq!(u.step(t(11), &cfg, UpstreamInput::SomethingToForward), None);
        assert_eq!(
            u.step(t(12), &cfg, UpstreamInput::GraftAck { from: OTHER }),
            None,
            "ack from a stranger"
        );
        assert_eq!(u.step(t(14), &cfg, UpstreamInput::Timer), None, "retransmission not due");
        assert_eq!(
            u.step(t(15), &cfg, UpstreamInput::Timer),
            Some(UpstreamOutput::SendGraft { to: UP, attempt: 2 })
        );
        assert_eq!(
            u.step(t(16), &cfg, UpstreamInput::GraftAck { from: UP }),
            Some(UpstreamOutput::Acked { from: UP })
        );
        assert!(matches!(u, Upstream::Forwarding));
        // Our prune running out while grafting ends the graft too.
        u.step(t(20), &cfg, prune);
        u.step(t(21), &cfg, UpstreamInput::SomethingToForward);
        assert_eq!(u.step(t(120), &cfg, UpstreamInput::Timer), Some(UpstreamOutput::PruneExpired));
        assert_eq!(u.pruned_by(), None);
    }
}
