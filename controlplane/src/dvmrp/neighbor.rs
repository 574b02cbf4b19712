//! DVMRP neighbours (draft §3.2): discovered from probes only, two-way when the peer's probe
//! lists our address, restarted when the generation id changes, gone after the neighbour timeout.
//!
//! Invariants: a neighbour is keyed by (interface, address) and always claims the prune
//! capability; its expiry timer is always running. Removing a neighbour removes everything it
//! contributed (its reports, its prunes) before the forwarding cache is re-derived.

use std::net::Ipv4Addr;

use dataplane_api::IfIndex;
use serde::{Deserialize, Serialize};
use wire::dvmrp::{Message, ALL_DVMRP_ROUTERS, CAP_PRUNE};

use super::{
    ignored, secs_until, Action, DebugEvent, DvmrpRouter, IgnoreReason, NeighborDownReason,
};
use crate::timer::{Timer, Timestamp};

#[derive(Debug, Clone)]
pub(super) struct Neighbor {
    pub(super) ifindex: IfIndex,
    pub(super) addr: Ipv4Addr,
    pub(super) genid: u32,
    pub(super) capabilities: u8,
    pub(super) major: u8,
    pub(super) minor: u8,
    pub(super) two_way: bool,
    pub(super) since: Timestamp,
    pub(super) expires: Timer,
}

/// A neighbour as shown by `fanoutctl show neighbors`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighborState {
    pub ifindex: IfIndex,
    pub addr: Ipv4Addr,
    pub genid: u32,
    pub capabilities: u8,
    pub major: u8,
    pub minor: u8,
    pub two_way: bool,
    pub uptime_secs: u64,
    pub expires_in_secs: u64,
}

impl Neighbor {
    pub(super) fn snapshot(&self, now: Timestamp) -> NeighborState {
        NeighborState {
            ifindex: self.ifindex,
            addr: self.addr,
            genid: self.genid,
            capabilities: self.capabilities,
            major: self.major,
            minor: self.minor,
            two_way: self.two_way,
            uptime_secs: now.saturating_duration_since(self.since).as_secs(),
            expires_in_secs: self.expires.deadline().map_or(0, |at| secs_until(now, at)),
        }
    }
}

impl DvmrpRouter {
    pub(super) fn send_probes(&self, out: &mut Vec<Action>) {
        for (ifindex, iface) in &self.ifaces {
            if iface.up {
                self.send_probe(*ifindex, out);
            }
        }
    }

    /// Our probe on `ifindex`: genid plus every neighbour heard there (two-way or not, so a
    /// new neighbour learns at once that we hear it).
    pub(super) fn send_probe(&self, ifindex: IfIndex, out: &mut Vec<Action>) {
        let neighbors =
            self.neighbors.keys().filter(|(i, _)| *i == ifindex).map(|(_, a)| *a).collect();
        let msg = self.header(Message::Probe { generation_id: self.genid, neighbors });
        out.push(Action::Send { ifindex, dst: ALL_DVMRP_ROUTERS, msg });
    }

    #[expect(clippy::too_many_arguments, reason = "the probe's fields, unpacked by the dispatcher")]
    pub(super) fn receive_probe(
        &mut self,
        now: Timestamp,
        ifindex: IfIndex,
        src: Ipv4Addr,
        capabilities: u8,
        (major, minor): (u8, u8),
        genid: u32,
        listed: &[Ipv4Addr],
        out: &mut Vec<Action>,
    ) {
        let key = (ifindex, src);
        if capabilities & CAP_PRUNE == 0 {
            out.push(ignored(
                Some(ifindex),
                Some(src),
                IgnoreReason::NoPruneCapability { capabilities },
            ));
            if self.neighbors.contains_key(&key) {
                self.remove_neighbor(key, NeighborDownReason::LostPruneCapability, out);
                self.recompute_routes(now, out);
                self.reconcile_all(now, out);
            }
            return;
        }
        let our_addr = self.ifaces.get(&ifindex).map(|i| i.cfg.addr);
        let two_way = our_addr.is_some_and(|a| listed.contains(&a));
        let timeout = self.config.neighbor_timeout;
        let mut send_report = false;
        match self.neighbors.get_mut(&key) {
            None => {
                self.neighbors.insert(
                    key,
                    Neighbor {
                        ifindex,
                        addr: src,
                        genid,
                        capabilities,
                        major,
                        minor,
                        two_way,
                        since: now,
                        expires: Timer::started(now, timeout),
                    },
                );
                out.push(Action::Debug(DebugEvent::NeighborUp { ifindex, addr: src, genid }));
                // Answer at once so the new neighbour sees us listed and the adjacency forms
                // within one round trip instead of one probe interval.
                self.send_probe(ifindex, out);
                if two_way {
                    out.push(Action::Debug(DebugEvent::NeighborTwoWay { ifindex, addr: src }));
                    send_report = true;
                }
            }
            Some(n) => {
                n.expires.start(now, timeout);
                n.capabilities = capabilities;
                n.major = major;
                n.minor = minor;
                if n.genid != genid {
                    let old_genid = n.genid;
                    n.genid = genid;
                    n.two_way = two_way;
                    n.since = now;
                    out.push(Action::Debug(DebugEvent::NeighborRestarted {
                        ifindex,
                        addr: src,
                        old_genid,
                        new_genid: genid,
                    }));
                    self.neighbor_restarted(now, key, out);
                    // It forgot us: probe at once so it lists us again, and send it the whole
                    // table as soon as it does (now, if its probe already lists us).
                    self.send_probe(ifindex, out);
                    send_report = two_way;
                } else if two_way && !n.two_way {
                    n.two_way = true;
                    out.push(Action::Debug(DebugEvent::NeighborTwoWay { ifindex, addr: src }));
                    send_report = true;
                } else {
                    n.two_way = two_way;
                }
            }
        }
        if send_report {
            let keys: Vec<_> = self.routes.keys().copied().collect();
            for msg in self.build_reports(ifindex, &keys, false) {
                out.push(Action::Send { ifindex, dst: ALL_DVMRP_ROUTERS, msg });
            }
        }
    }

    /// A restarted neighbour lost its prune state and its picture of us: drop the prunes it
    /// sent us, forget the prunes we sent it (so we prune again if still needed), keep its
    /// reports until it re-sends them.
    fn neighbor_restarted(
        &mut self,
        now: Timestamp,
        key: (IfIndex, Ipv4Addr),
        out: &mut Vec<Action>,
    ) {
        for entry in self.cache.values_mut() {
            entry.prunes.remove(&key);
            if entry.upstream.pruned_by() == Some(key.1) {
                entry.upstream = super::prune::Upstream::Forwarding;
            }
        }
        self.reconcile_all(now, out);
    }

    pub(super) fn expire_neighbors(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        let expired: Vec<_> = self
            .neighbors
            .iter()
            .filter(|(_, n)| n.expires.is_expired(now))
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            self.remove_neighbor(key, NeighborDownReason::Timeout, out);
        }
    }

    /// Removes a neighbour and everything it contributed. The caller recomputes routes and
    /// reconciles the cache afterwards.
    pub(super) fn remove_neighbor(
        &mut self,
        key: (IfIndex, Ipv4Addr),
        reason: NeighborDownReason,
        out: &mut Vec<Action>,
    ) {
        if self.neighbors.remove(&key).is_none() {
            return;
        }
        out.push(Action::Debug(DebugEvent::NeighborDown { ifindex: key.0, addr: key.1, reason }));
        for route in self.routes.values_mut() {
            route.reports.remove(&key);
        }
        self.pending_poison.retain(|_, p| {
            p.remove(&key);
            !p.is_empty()
        });
        for entry in self.cache.values_mut() {
            entry.prunes.remove(&key);
            if entry.upstream.pruned_by() == Some(key.1) {
                entry.upstream = super::prune::Upstream::Forwarding;
            }
        }
    }
}
