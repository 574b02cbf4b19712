//! The DVMRP route table (draft §3.4): a distance-vector RPF table of source networks.
//!
//! Each [`Route`] keeps the last report every neighbour sent for it. The best path, the
//! designated forwarder of each LAN and the dependent neighbours are all derived from those
//! reports on demand, so a neighbour going away is handled by deleting its reports:
//!
//! * best path: our connected subnet (interface metric), else the lowest
//!   `reported + interface metric < 32` among fresh (< route expiry), non-poisoned reports,
//!   ties broken by the lowest neighbour address; else unreachable (32, held down);
//! * designated forwarder on a LAN: the lowest (advertised metric, address) among us and the
//!   neighbours there that reported the origin with a reachable, non-poisoned metric;
//! * dependents on a LAN: neighbours that reported the origin with 33..=63 (poison reverse),
//!   i.e. that use us as their upstream for it. Poison reverse heard for an origin we have no
//!   route to yet is kept aside (`pending_poison`: never advertised) and merged into the route
//!   when it is learned.
//!
//! Invariants: a route is deleted `route_deletion - route_expiry` after it became unreachable;
//! reports older than `route_deletion` are purged; a connected route is never reported onto its
//! own interface; reports are split into packets of at most [`MAX_REPORT_DATA`] bytes of data.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use dataplane_api::IfIndex;
use serde::{Deserialize, Serialize};
use wire::dvmrp::{DvmrpRepr, Message, ReportBlock, Route as WireRoute, METRIC_INFINITY};

use super::{
    ignored, secs_until, Action, DebugEvent, DvmrpConfig, DvmrpInterface, DvmrpRouter, IgnoreReason,
};
use crate::timer::Timestamp;

/// Report data per packet: mrouted's bound, which keeps the datagram within 576 bytes (the
/// minimum every host accepts) even with a 60-byte IPv4 header.
pub const MAX_REPORT_DATA: usize = wire::dvmrp::MAX_REPORT_DATA_LEN;

/// A source network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct RouteKey {
    pub(super) origin: Ipv4Addr,
    pub(super) prefix_len: u8,
}

impl RouteKey {
    pub(super) fn contains(self, addr: Ipv4Addr) -> bool {
        addr.to_bits() & prefix_mask(self.prefix_len) == self.origin.to_bits()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Best {
    pub(super) metric: u8,
    pub(super) upstream: Option<IfIndex>,
    pub(super) gateway: Option<Ipv4Addr>,
}

impl Best {
    const UNREACHABLE: Best = Best { metric: METRIC_INFINITY, upstream: None, gateway: None };

    pub(super) fn reachable(&self) -> bool {
        self.metric < METRIC_INFINITY
    }
}

/// The last report of one neighbour for one origin; `metric` as received (1..=63).
#[derive(Debug, Clone, Copy)]
pub(super) struct Heard {
    pub(super) metric: u8,
    pub(super) at: Timestamp,
}

#[derive(Debug, Clone)]
pub(super) struct Route {
    pub(super) key: RouteKey,
    /// The interface whose subnet this is, if it is one of ours.
    pub(super) connected: Option<IfIndex>,
    pub(super) reports: BTreeMap<(IfIndex, Ipv4Addr), Heard>,
    pub(super) best: Best,
    pub(super) unreachable_since: Option<Timestamp>,
    pub(super) created: Timestamp,
}

/// A report younger than the route expiry counts for best path, DF and dependents.
fn fresh(heard: Heard, config: &DvmrpConfig, now: Timestamp) -> bool {
    now < heard.at + config.route_expiry
}

impl Route {
    pub(super) fn next_deadline(&self, config: &DvmrpConfig, now: Timestamp) -> Option<Timestamp> {
        let reports = self.reports.values().map(|h| {
            let expiry = h.at + config.route_expiry;
            if expiry > now {
                expiry
            } else {
                h.at + config.route_deletion
            }
        });
        let deletion = self.unreachable_since.map(|t| t + hold_down(config));
        reports.chain(deletion).min()
    }
}

/// A route table row as shown by `fanoutctl show routes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteState {
    pub origin: Ipv4Addr,
    pub prefix_len: u8,
    pub mask: Ipv4Addr,
    /// Our metric for the origin (32 = unreachable, held down until deletion).
    pub metric: u8,
    pub connected: bool,
    pub upstream: Option<IfIndex>,
    pub gateway: Option<Ipv4Addr>,
    /// The designated forwarder on every other up interface.
    pub forwarders: Vec<ForwarderState>,
    pub dependents: Vec<DependentState>,
    /// Seconds since the route was created (connected) or last refreshed by its gateway.
    pub age_secs: u64,
    /// Seconds until the gateway's report expires; `None` for connected or unreachable routes.
    pub expires_in_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwarderState {
    pub ifindex: IfIndex,
    pub forwarder: Ipv4Addr,
    pub is_us: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DependentState {
    pub ifindex: IfIndex,
    pub neighbor: Ipv4Addr,
}

pub(super) fn prefix_mask(prefix_len: u8) -> u32 {
    match prefix_len {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p.min(32))),
    }
}

/// The prefix length of a contiguous netmask, or `None`.
fn mask_prefix(mask: Ipv4Addr) -> Option<u8> {
    let bits = mask.to_bits();
    let ones = bits.leading_ones();
    (bits.count_ones() == ones).then_some(ones as u8)
}

fn hold_down(config: &DvmrpConfig) -> std::time::Duration {
    config.route_deletion.saturating_sub(config.route_expiry)
}

/// Bytes one route adds to a report block: origin width (1 + non-zero bytes of the low three
/// mask bytes) plus the metric byte.
fn pair_len(prefix_len: u8) -> usize {
    let [_, b1, b2, b3] = prefix_mask(prefix_len).to_be_bytes();
    2 + [b1, b2, b3].iter().filter(|b| **b != 0).count()
}

/// Mask bytes that start a report block.
const BLOCK_HEADER_LEN: usize = 3;

impl DvmrpRouter {
    /// Installs (or re-enables) the connected route of an interface.
    pub(super) fn add_connected(&mut self, now: Timestamp, iface: DvmrpInterface) {
        let prefix_len = iface.prefix_len.min(32);
        let origin = Ipv4Addr::from_bits(iface.addr.to_bits() & prefix_mask(prefix_len));
        let key = RouteKey { origin, prefix_len };
        let route = self.routes.entry(key).or_insert_with(|| Route {
            key,
            connected: None,
            reports: BTreeMap::new(),
            best: Best::UNREACHABLE,
            unreachable_since: None,
            created: now,
        });
        route.connected = Some(iface.ifindex);
    }

    /// Re-derives every route's best path, purges stale reports, deletes routes past their
    /// hold-down, and queues a triggered report for what changed.
    pub(super) fn recompute_routes(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        let config = &self.config;
        let ifaces = &self.ifaces;
        let mut deleted = Vec::new();
        let mut changed = Vec::new();
        let mut rerouted = false;
        for (key, route) in &mut self.routes {
            route.reports.retain(|_, h| now < h.at + config.route_deletion);
            let connected = route.connected.filter(|i| ifaces.get(i).is_some_and(|f| f.up));
            let best = if let Some(ifindex) = connected {
                let metric = ifaces.get(&ifindex).map_or(1, |f| f.cfg.metric);
                Best { metric, upstream: Some(ifindex), gateway: None }
            } else {
                route
                    .reports
                    .iter()
                    .filter(|(_, h)| h.metric < METRIC_INFINITY && fresh(**h, config, now))
                    .filter_map(|((ifindex, addr), h)| {
                        let iface = ifaces.get(ifindex).filter(|f| f.up)?;
                        let metric = h.metric.saturating_add(iface.cfg.metric);
                        (metric < METRIC_INFINITY).then_some((metric, *addr, *ifindex))
                    })
                    .min()
                    .map_or(Best::UNREACHABLE, |(metric, addr, ifindex)| Best {
                        metric,
                        upstream: Some(ifindex),
                        gateway: Some(addr),
                    })
            };
            if best.reachable() {
                route.unreachable_since = None;
            } else if route.unreachable_since.is_none() {
                route.unreachable_since = Some(now);
            }
            if best != route.best {
                // A move from one reachable upstream to another: until the new upstream hears
                // our poison reverse it does not forward to us, and the old one's traffic now
                // fails our RPF check, so the report goes out at once instead of after the
                // triggered-report delay.
                rerouted |= route.best.reachable()
                    && best.reachable()
                    && (best.upstream, best.gateway) != (route.best.upstream, route.best.gateway);
                route.best = best;
                changed.push(*key);
                out.push(Action::Debug(DebugEvent::RouteChanged {
                    origin: key.origin,
                    prefix_len: key.prefix_len,
                    metric: best.metric,
                    upstream: best.upstream,
                    gateway: best.gateway,
                }));
            }
            if route.unreachable_since.is_some_and(|t| now >= t + hold_down(config)) {
                deleted.push(*key);
            }
        }
        self.pending_poison.retain(|_, p| {
            p.retain(|_, h| fresh(*h, config, now));
            !p.is_empty()
        });
        for key in deleted {
            self.routes.remove(&key);
            self.changed.remove(&key);
            out.push(Action::Debug(DebugEvent::RouteDeleted {
                origin: key.origin,
                prefix_len: key.prefix_len,
            }));
        }
        for key in changed {
            if self.routes.contains_key(&key) {
                self.changed.insert(key);
            }
        }
        if rerouted && !self.changed.is_empty() {
            self.triggered_timer.start(now, std::time::Duration::ZERO);
        } else if !self.changed.is_empty() && !self.triggered_timer.is_running() {
            self.triggered_timer.start(now, self.config.triggered_report_delay);
        }
    }

    pub(super) fn receive_report(
        &mut self,
        now: Timestamp,
        ifindex: IfIndex,
        src: Ipv4Addr,
        blocks: &[ReportBlock],
        out: &mut Vec<Action>,
    ) {
        match self.neighbors.get(&(ifindex, src)) {
            None => {
                out.push(ignored(Some(ifindex), Some(src), IgnoreReason::UnknownNeighbor));
                return;
            }
            Some(n) if !n.two_way => {
                out.push(ignored(Some(ifindex), Some(src), IgnoreReason::NotTwoWay));
                return;
            }
            Some(_) => {}
        }
        let if_metric = self.ifaces.get(&ifindex).map_or(1, |i| i.cfg.metric);
        for block in blocks {
            for route in &block.routes {
                let Some(key) = report_key(block.mask, route.origin) else {
                    let prefix_len = mask_prefix(block.mask).unwrap_or(0);
                    out.push(ignored(
                        Some(ifindex),
                        Some(src),
                        IgnoreReason::BadOrigin { origin: route.origin, prefix_len },
                    ));
                    continue;
                };
                let heard = Heard { metric: route.metric, at: now };
                if let Some(existing) = self.routes.get_mut(&key) {
                    existing.reports.insert((ifindex, src), heard);
                } else if route.metric.saturating_add(if_metric) < METRIC_INFINITY {
                    // Unknown origins get a row only if they are reachable through the sender;
                    // poison reverse heard for them before is merged in.
                    let mut reports = self.pending_poison.remove(&key).unwrap_or_default();
                    reports.retain(|_, h| fresh(*h, &self.config, now));
                    reports.insert((ifindex, src), heard);
                    self.routes.insert(
                        key,
                        Route {
                            key,
                            connected: None,
                            reports,
                            best: Best::UNREACHABLE,
                            unreachable_since: None,
                            created: now,
                        },
                    );
                } else if route.metric > METRIC_INFINITY {
                    // Poison reverse for an origin we cannot reach yet: the sender will depend
                    // on us for it. Dropping it would leave the sender unserved until its next
                    // full report (report_interval) once we learn the origin, which is what
                    // happens after our own restart when a downstream neighbour's table
                    // arrives before our upstream's.
                    self.pending_poison.entry(key).or_default().insert((ifindex, src), heard);
                } else if let Some(p) = self.pending_poison.get_mut(&key) {
                    // Infinity: the sender no longer depends on us for it.
                    p.remove(&(ifindex, src));
                }
            }
        }
        self.recompute_routes(now, out);
        self.reconcile_all(now, out);
    }

    /// The reachable route with the longest prefix covering `addr`.
    pub(super) fn lookup(&self, addr: Ipv4Addr) -> Option<&Route> {
        self.routes
            .values()
            .filter(|r| r.best.reachable() && r.key.contains(addr))
            .max_by_key(|r| r.key.prefix_len)
    }

    /// The designated forwarder for `route` on `ifindex`: (address, is it us).
    pub(super) fn forwarder(
        &self,
        route: &Route,
        ifindex: IfIndex,
        now: Timestamp,
    ) -> Option<(Ipv4Addr, bool)> {
        let ours = (route.best.metric, self.ifaces.get(&ifindex)?.cfg.addr);
        let theirs = route
            .reports
            .iter()
            .filter(|((i, _), h)| {
                *i == ifindex && h.metric < METRIC_INFINITY && fresh(**h, &self.config, now)
            })
            .map(|((_, addr), h)| (h.metric, *addr))
            .min();
        Some(match theirs {
            Some(t) if t < ours => (t.1, false),
            _ => (ours.1, true),
        })
    }

    /// Neighbours on `ifindex` that depend on us for `route` (poison-reversed it to us).
    pub(super) fn dependents<'a>(
        &'a self,
        route: &'a Route,
        ifindex: IfIndex,
        now: Timestamp,
    ) -> impl Iterator<Item = Ipv4Addr> + 'a {
        route
            .reports
            .iter()
            .filter(move |((i, _), h)| {
                *i == ifindex && h.metric > METRIC_INFINITY && fresh(**h, &self.config, now)
            })
            .map(|((_, addr), _)| *addr)
    }

    pub(super) fn send_reports(&self, keys: &[RouteKey], out: &mut Vec<Action>) {
        for ifindex in self.ifaces_with_neighbors() {
            for msg in self.build_reports(ifindex, keys, false) {
                out.push(Action::Send { ifindex, dst: wire::dvmrp::ALL_DVMRP_ROUTERS, msg });
            }
        }
    }

    /// Report messages for `keys` as seen from `ifindex`: poison reverse (metric + 32) for
    /// routes whose upstream is `ifindex`, our own subnet on `ifindex` left out, every metric
    /// 32 when `all_infinity` (shutdown). Blocks are grouped by mask and packets kept within
    /// [`MAX_REPORT_DATA`].
    pub(super) fn build_reports(
        &self,
        ifindex: IfIndex,
        keys: &[RouteKey],
        all_infinity: bool,
    ) -> Vec<DvmrpRepr> {
        let mut rows: Vec<(u8, Ipv4Addr, u8)> = keys
            .iter()
            .filter_map(|k| self.routes.get(k))
            .filter(|r| r.connected != Some(ifindex))
            // The report format cannot express masks shorter than /8 other than the default.
            .filter(|r| r.key.prefix_len == 0 || r.key.prefix_len >= 8)
            .map(|r| {
                let metric = if all_infinity || !r.best.reachable() {
                    METRIC_INFINITY
                } else if r.best.upstream == Some(ifindex) && r.best.gateway.is_some() {
                    r.best.metric + METRIC_INFINITY
                } else {
                    r.best.metric
                };
                (r.key.prefix_len, r.key.origin, metric)
            })
            .collect();
        // mrouted orders by mask, longest first; grouping equal masks keeps blocks few.
        rows.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));

        let mut packets: Vec<Vec<ReportBlock>> = Vec::new();
        let mut used = MAX_REPORT_DATA; // forces a first packet
        let mut block_prefix = None;
        for (prefix_len, origin, metric) in rows {
            let pair = pair_len(prefix_len);
            let same_block = block_prefix == Some(prefix_len);
            let need = if same_block { pair } else { BLOCK_HEADER_LEN + pair };
            if used + need > MAX_REPORT_DATA {
                packets.push(Vec::new());
                used = 0;
                block_prefix = None;
            }
            let Some(blocks) = packets.last_mut() else { continue };
            if block_prefix != Some(prefix_len) {
                blocks.push(ReportBlock {
                    mask: Ipv4Addr::from_bits(prefix_mask(prefix_len)),
                    routes: Vec::new(),
                });
                used += BLOCK_HEADER_LEN;
                block_prefix = Some(prefix_len);
            }
            if let Some(block) = blocks.last_mut() {
                block.routes.push(WireRoute { origin, metric });
                used += pair;
            }
        }
        packets.into_iter().map(|blocks| self.header(Message::Report { blocks })).collect()
    }

    pub(super) fn route_snapshot(&self, route: &Route, now: Timestamp) -> RouteState {
        let mut forwarders = Vec::new();
        let mut dependents = Vec::new();
        for (ifindex, iface) in &self.ifaces {
            if !iface.up || route.best.upstream == Some(*ifindex) {
                continue;
            }
            if let Some((forwarder, is_us)) = self.forwarder(route, *ifindex, now) {
                forwarders.push(ForwarderState { ifindex: *ifindex, forwarder, is_us });
            }
            dependents.extend(
                self.dependents(route, *ifindex, now)
                    .map(|neighbor| DependentState { ifindex: *ifindex, neighbor }),
            );
        }
        let gateway_heard = route
            .best
            .upstream
            .zip(route.best.gateway)
            .and_then(|k| route.reports.get(&k))
            .map(|h| h.at);
        RouteState {
            origin: route.key.origin,
            prefix_len: route.key.prefix_len,
            mask: Ipv4Addr::from_bits(prefix_mask(route.key.prefix_len)),
            metric: route.best.metric,
            connected: route.connected.is_some(),
            upstream: route.best.upstream,
            gateway: route.best.gateway,
            forwarders,
            dependents,
            age_secs: now
                .saturating_duration_since(gateway_heard.unwrap_or(route.created))
                .as_secs(),
            expires_in_secs: gateway_heard.map(|at| secs_until(now, at + self.config.route_expiry)),
        }
    }
}

/// The route key of a reported origin, or `None` if the mask is not contiguous or the origin
/// has host bits set. mrouted writes the default route as mask 0 and origin 0 (which a
/// receiver may also see as 0.0.0.0 with mask 255.0.0.0, since the first mask byte is implied).
fn report_key(mask: Ipv4Addr, origin: Ipv4Addr) -> Option<RouteKey> {
    let mut prefix_len = mask_prefix(mask)?;
    if origin.is_unspecified() {
        prefix_len = 0;
    }
    let key = RouteKey { origin, prefix_len };
    (origin.to_bits() & !prefix_mask(prefix_len) == 0).then_some(key)
}
