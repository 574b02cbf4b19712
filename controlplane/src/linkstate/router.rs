//! [`LinkStateRouter`]: hellos and adjacencies, reliable flooding, own-LSA origination and the
//! on-demand (S,G) routes. See the parent module for the invariants.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use dataplane_api::{IfIndex, MfibRoute, MfibUpdate, Oif, Punt};
use wire::linkstate::{
    AttachedNetwork, AuthInfo, LsPacket, LsRepr, Lsa, LsaBody, LsaHeader, LsaType, Message,
    RouterLink, ALL_LS_ROUTERS, LSA_HEADER_LEN, MAX_AGE,
};

use super::auth::{self, AuthFailure};
use super::cache::{CacheStats, TreeCache};
use super::lsdb::{compare, LsaKey, Lsdb};
use super::neighbor::{self, State};
use super::spf::{shortest_path_tree, RouterId, Topology};
use super::{
    elapsed_at_least, link_id, Action, DebugEvent, Event, LinkStateConfig, LinkStateStats,
    LsInterface, LsaSnapshot, LsdbSnapshot, NeighborSnapshot, RejectReason, SptSnapshot,
};
use crate::timer::{earliest, Timers, Timestamp};

/// Most LSA bytes put in one update, so that a message stays well under a 1500-byte MTU with
/// the IPv4 header and the tag.
const MAX_UPDATE_LSA_BYTES: usize = 1400;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKey {
    Hello(IfIndex),
    Dead(IfIndex, RouterId),
    Retransmit(IfIndex, RouterId),
    /// An own LSA held back by MinLSInterval.
    Originate(LsaKey),
    Refresh(LsaKey),
}

#[derive(Debug)]
struct Iface {
    cfg: LsInterface,
    up: bool,
    members: BTreeSet<Ipv4Addr>,
}

#[derive(Debug)]
struct Neighbor {
    addr: Ipv4Addr,
    state: State,
    /// LSA instances flooded to it and not yet acknowledged.
    retransmit: BTreeMap<LsaKey, LsaHeader>,
}

#[derive(Debug)]
struct Tracked {
    root: Option<RouterId>,
    route: Option<MfibRoute>,
}

/// The link-state protocol instance of one router.
#[derive(Debug)]
pub struct LinkStateRouter {
    config: LinkStateConfig,
    router_id: RouterId,
    ifaces: BTreeMap<IfIndex, Iface>,
    neighbors: BTreeMap<(IfIndex, RouterId), Neighbor>,
    lsdb: Lsdb,
    timers: Timers<TimerKey>,
    last_originated: BTreeMap<LsaKey, Timestamp>,
    own_seq: BTreeMap<LsaKey, u32>,
    replay: BTreeMap<(IfIndex, u32), u64>,
    auth_seq: u64,
    topology: Topology,
    cache: TreeCache,
    tracked: BTreeMap<(Ipv4Addr, Ipv4Addr), Tracked>,
    started: bool,
    /// The time of the previous input: LSAs whose MaxAge falls in (prev_now, now] aged out.
    prev_now: Timestamp,
    stats: LinkStateStats,
    topology_dirty: bool,
    groups_dirty: BTreeSet<Ipv4Addr>,
    out: Vec<Action>,
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

fn network_of(cfg: &LsInterface) -> AttachedNetwork {
    let len = cfg.prefix_len.min(32);
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    AttachedNetwork { prefix: Ipv4Addr::from(u32::from(cfg.addr) & mask), prefix_len: len }
}

impl LinkStateRouter {
    pub fn new(
        config: LinkStateConfig,
        router_id: RouterId,
        interfaces: Vec<LsInterface>,
    ) -> LinkStateRouter {
        let auth_seq = config.auth_sequence_start;
        LinkStateRouter {
            config,
            router_id,
            ifaces: interfaces
                .into_iter()
                .map(|cfg| (cfg.ifindex, Iface { cfg, up: true, members: BTreeSet::new() }))
                .collect(),
            neighbors: BTreeMap::new(),
            lsdb: Lsdb::default(),
            timers: Timers::new(),
            last_originated: BTreeMap::new(),
            own_seq: BTreeMap::new(),
            replay: BTreeMap::new(),
            auth_seq,
            topology: Topology::new(),
            cache: TreeCache::new(),
            tracked: BTreeMap::new(),
            started: false,
            prev_now: Timestamp::ZERO,
            stats: LinkStateStats::default(),
            topology_dirty: false,
            groups_dirty: BTreeSet::new(),
            out: Vec::new(),
        }
    }

    pub fn router_id(&self) -> RouterId {
        self.router_id
    }

    /// Key rotation (reload): from now on sends with `auth` and accepts `auth` and
    /// `accept_keys`. The replay state is kept: sequence numbers do not depend on the key.
    pub fn set_keys(&mut self, auth: Option<auth::AuthKey>, accept_keys: Vec<auth::AuthKey>) {
        self.config.auth = auth;
        self.config.accept_keys = accept_keys;
    }

    /// When [`Event::Tick`] is next due.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        if !self.started {
            return None;
        }
        earliest([self.timers.next_deadline(), self.lsdb.next_max_age(self.prev_now)])
    }

    pub fn handle(&mut self, now: Timestamp, event: Event) -> Vec<Action> {
        if self.started {
            self.age_check(now);
        }
        match event {
            Event::Start => self.start(now),
            Event::Stop => self.stop(now),
            Event::Tick => self.tick(now),
            Event::Received { ifindex, src, bytes } => self.receive(now, ifindex, src, &bytes),
            Event::InterfaceUp { ifindex } => self.interface_up(now, ifindex),
            Event::InterfaceDown { ifindex } => self.interface_down(now, ifindex),
            Event::LocalMembership { ifindex, group, present } => {
                self.local_membership(now, ifindex, group, present);
            }
            Event::DataArrived(punt) => self.data_arrived(now, punt),
            Event::DataIdle { source, group } => self.data_idle(source, group),
        }
        if self.started {
            self.gc_max_age(now);
            self.recompute_dirty(now);
        }
        self.prev_now = self.prev_now.max(now);
        std::mem::take(&mut self.out)
    }

    // ===== Lifecycle and local events =====

    fn start(&mut self, now: Timestamp) {
        if self.started {
            return;
        }
        self.started = true;
        self.prev_now = now;
        let up: Vec<IfIndex> = self.ifaces.iter().filter(|(_, i)| i.up).map(|(k, _)| *k).collect();
        for ifindex in up {
            self.send_hello(now, ifindex);
        }
        self.originate(now, LsaKey::router(self.router_id), false);
        for group in self.local_groups() {
            self.originate(now, LsaKey::membership(group, self.router_id), false);
        }
    }

    fn stop(&mut self, now: Timestamp) {
        if !self.started {
            return;
        }
        for ((source, group), tracked) in std::mem::take(&mut self.tracked) {
            if tracked.route.is_some() {
                self.stats.routes_removed += 1;
                self.out.push(Action::Mfib(MfibUpdate::Remove { source: Some(source), group }));
            }
        }
        // Withdraw our LSAs so the others stop using us at once rather than after the dead
        // interval; sent once, since nothing will be retransmitted after this.
        let own: Vec<LsaKey> = self
            .lsdb
            .iter()
            .filter(|(k, e)| k.adv_router == self.router_id && !e.is_max_age(now))
            .map(|(k, _)| *k)
            .collect();
        let mut flushed = Vec::new();
        for key in own {
            if let Some(entry) = self.lsdb.get(&key) {
                let mut lsa = entry.lsa.clone();
                lsa.header.age = MAX_AGE;
                flushed.push(lsa);
            }
        }
        let up: Vec<IfIndex> = self.ifaces.iter().filter(|(_, i)| i.up).map(|(k, _)| *k).collect();
        if !flushed.is_empty() {
            for ifindex in up {
                self.send_lsas(ifindex, ALL_LS_ROUTERS, flushed.clone());
            }
        }
        self.started = false;
        self.timers.clear();
        self.neighbors.clear();
    }

    fn interface_up(&mut self, now: Timestamp, ifindex: IfIndex) {
        let Some(iface) = self.ifaces.get_mut(&ifindex) else { return };
        if iface.up {
            return;
        }
        iface.up = true;
        let groups: Vec<Ipv4Addr> = iface.members.iter().copied().collect();
        if !self.started {
            return;
        }
        self.topology_dirty = true;
        self.send_hello(now, ifindex);
        self.originate(now, LsaKey::router(self.router_id), false);
        for group in groups {
            self.originate(now, LsaKey::membership(group, self.router_id), false);
        }
    }

    fn interface_down(&mut self, now: Timestamp, ifindex: IfIndex) {
        let Some(iface) = self.ifaces.get_mut(&ifindex) else { return };
        if !iface.up {
            return;
        }
        iface.up = false;
        let groups: Vec<Ipv4Addr> = iface.members.iter().copied().collect();
        if !self.started {
            return;
        }
        self.timers.cancel(&TimerKey::Hello(ifindex));
        let on_iface: Vec<RouterId> = self
            .neighbors
            .range((ifindex, 0)..=(ifindex, RouterId::MAX))
            .map(|((_, r), _)| *r)
            .collect();
        for rid in on_iface {
            self.neighbor_event(now, ifindex, rid, neighbor::Event::InterfaceDown);
        }
        // Local outgoing interfaces change even before our new router LSA is installed.
        self.topology_dirty = true;
        self.originate(now, LsaKey::router(self.router_id), false);
        for group in groups {
            self.originate(now, LsaKey::membership(group, self.router_id), false);
        }
    }

    fn local_membership(
        &mut self,
        now: Timestamp,
        ifindex: IfIndex,
        group: Ipv4Addr,
        present: bool,
    ) {
        let Some(iface) = self.ifaces.get_mut(&ifindex) else { return };
        let changed =
            if present { iface.members.insert(group) } else { iface.members.remove(&group) };
        if !changed || !self.started {
            return;
        }
        self.groups_dirty.insert(group);
        self.originate(now, LsaKey::membership(group, self.router_id), false);
    }

    fn local_groups(&self) -> BTreeSet<Ipv4Addr> {
        self.ifaces.values().filter(|i| i.up).flat_map(|i| i.members.iter().copied()).collect()
    }

    // ===== Timers =====

    fn tick(&mut self, now: Timestamp) {
        if !self.started {
            return;
        }
        while let Some((key, _)) = self.timers.pop_expired(now) {
            match key {
                TimerKey::Hello(ifindex) => {
                    if self.ifaces.get(&ifindex).is_some_and(|i| i.up) {
                        self.send_hello(now, ifindex);
                    }
                }
                TimerKey::Dead(ifindex, rid) => {
                    self.neighbor_event(now, ifindex, rid, neighbor::Event::DeadTimerExpired);
                }
                TimerKey::Retransmit(ifindex, rid) => self.retransmit(now, ifindex, rid),
                TimerKey::Originate(key) => self.originate(now, key, false),
                TimerKey::Refresh(key) => self.originate(now, key, true),
            }
        }
    }

    /// LSAs that reached MaxAge by aging since the previous input: their content is gone from
    /// the topology or the memberships, and they are flooded as withdrawals.
    fn age_check(&mut self, now: Timestamp) {
        let prev = self.prev_now;
        let aged: Vec<LsaKey> = self
            .lsdb
            .iter()
            .filter(|(_, e)| e.max_age_at() > prev && e.max_age_at() <= now)
            .map(|(k, _)| *k)
            .collect();
        for key in &aged {
            self.content_changed(key);
        }
        if !aged.is_empty() {
            self.flood(now, &aged, None);
        }
    }

    /// MaxAge LSAs no neighbour still has to acknowledge leave the database.
    fn gc_max_age(&mut self, now: Timestamp) {
        let done: Vec<LsaKey> = self
            .lsdb
            .iter()
            .filter(|(k, e)| {
                e.is_max_age(now) && !self.neighbors.values().any(|n| n.retransmit.contains_key(k))
            })
            .map(|(k, _)| *k)
            .collect();
        for key in done {
            self.lsdb.remove(&key);
            self.out.push(Action::Debug(DebugEvent::LsaFlushed { key }));
        }
    }

    // ===== Sending =====

    fn send(&mut self, ifindex: IfIndex, dst: Ipv4Addr, message: Message) {
        let auth = self.config.auth.as_ref().map(|k| {
            self.auth_seq = self.auth_seq.saturating_add(1);
            AuthInfo { key_id: k.key_id, sequence: self.auth_seq - 1 }
        });
        let repr = LsRepr { router_id: self.router_id, auth, message };
        let mut bytes = repr.to_bytes();
        if let Some(key) = &self.config.auth {
            let mut packet = LsPacket::new_unchecked(&mut bytes[..]);
            let tag = auth::compute_tag(key.secret.as_bytes(), packet.authenticated_bytes());
            packet.auth_tag_mut().copy_from_slice(&tag);
        }
        self.stats.tx_packets += 1;
        self.out.push(Action::Send { ifindex, dst, bytes });
    }

    /// Sends `lsas` in as many updates as their size needs.
    fn send_lsas(&mut self, ifindex: IfIndex, dst: Ipv4Addr, lsas: Vec<Lsa>) {
        let mut batch = Vec::new();
        let mut size = 0;
        for lsa in lsas {
            if !batch.is_empty() && size + lsa.buffer_len() > MAX_UPDATE_LSA_BYTES {
                self.send(ifindex, dst, Message::Update { lsas: std::mem::take(&mut batch) });
                size = 0;
            }
            size += lsa.buffer_len();
            batch.push(lsa);
        }
        if !batch.is_empty() {
            self.send(ifindex, dst, Message::Update { lsas: batch });
        }
    }

    fn send_acks(&mut self, ifindex: IfIndex, dst: Ipv4Addr, headers: &[LsaHeader]) {
        for chunk in headers.chunks(MAX_UPDATE_LSA_BYTES / LSA_HEADER_LEN) {
            self.send(ifindex, dst, Message::Ack { headers: chunk.to_vec() });
        }
    }

    fn send_hello(&mut self, now: Timestamp, ifindex: IfIndex) {
        let neighbors = self
            .neighbors
            .range((ifindex, 0)..=(ifindex, RouterId::MAX))
            .map(|((_, r), _)| *r)
            .collect();
        let message = Message::Hello {
            hello_interval_ms: millis(self.config.hello_interval),
            dead_interval_ms: millis(self.config.dead_interval),
            neighbors,
        };
        self.send(ifindex, ALL_LS_ROUTERS, message);
        self.timers.set_after(TimerKey::Hello(ifindex), now, self.config.hello_interval);
    }

    /// Floods the current instances of `keys` on every interface with a flooding neighbour
    /// other than `except` (the one we got them from), and lists them for retransmission.
    fn flood(&mut self, now: Timestamp, keys: &[LsaKey], except: Option<(IfIndex, RouterId)>) {
        let lsas: Vec<(LsaKey, LsaHeader, Lsa)> = keys
            .iter()
            .filter_map(|k| self.lsdb.get(k).map(|e| (*k, e.header(now), e.to_send(now))))
            .collect();
        if lsas.is_empty() {
            return;
        }
        let up: Vec<IfIndex> = self.ifaces.iter().filter(|(_, i)| i.up).map(|(k, _)| *k).collect();
        for ifindex in up {
            let mut any = false;
            for ((_, rid), n) in self.neighbors.range_mut((ifindex, 0)..=(ifindex, RouterId::MAX)) {
                if !n.state.floods() || except == Some((ifindex, *rid)) {
                    continue;
                }
                any = true;
                for (key, header, _) in &lsas {
                    n.retransmit.insert(*key, *header);
                }
                let timer = TimerKey::Retransmit(ifindex, *rid);
                if !self.timers.is_armed(&timer) {
                    self.timers.set_after(timer, now, self.config.retransmit_interval);
                }
            }
            if any {
                let batch = lsas.iter().map(|(_, _, l)| l.clone()).collect();
                self.send_lsas(ifindex, ALL_LS_ROUTERS, batch);
            }
        }
    }

    fn retransmit(&mut self, now: Timestamp, ifindex: IfIndex, rid: RouterId) {
        let Some(n) = self.neighbors.get_mut(&(ifindex, rid)) else { return };
        let lsdb = &self.lsdb;
        n.retransmit.retain(|k, _| lsdb.get(k).is_some());
        if !n.state.floods() || n.retransmit.is_empty() {
            return;
        }
        let addr = n.addr;
        let lsas: Vec<Lsa> =
            n.retransmit.keys().filter_map(|k| self.lsdb.get(k).map(|e| e.to_send(now))).collect();
        self.stats.retransmissions += lsas.len() as u64;
        self.out.push(Action::Debug(DebugEvent::Retransmit {
            ifindex,
            router_id: rid,
            lsas: lsas.len(),
        }));
        self.send_lsas(ifindex, addr, lsas);
        self.timers.set_after(
            TimerKey::Retransmit(ifindex, rid),
            now,
            self.config.retransmit_interval,
        );
    }

    // ===== Receiving =====

    fn reject(&mut self, ifindex: IfIndex, src: Ipv4Addr, reason: RejectReason) {
        match &reason {
            RejectReason::Malformed { .. } => self.stats.rx_malformed += 1,
            RejectReason::BadChecksum => self.stats.rx_bad_checksum += 1,
            RejectReason::Auth { failure: AuthFailure::Replay } => self.stats.rx_replays += 1,
            RejectReason::Auth { .. } => self.stats.rx_auth_failures += 1,
            _ => self.stats.rx_rejected_other += 1,
        }
        self.out.push(Action::Debug(DebugEvent::Rejected { ifindex, src, reason }));
    }

    fn receive(&mut self, now: Timestamp, ifindex: IfIndex, src: Ipv4Addr, bytes: &[u8]) {
        self.stats.rx_packets += 1;
        if !self.started {
            return self.reject(ifindex, src, RejectReason::NotStarted);
        }
        match self.ifaces.get(&ifindex) {
            None => return self.reject(ifindex, src, RejectReason::UnknownInterface),
            Some(i) if !i.up => return self.reject(ifindex, src, RejectReason::InterfaceDown),
            Some(_) => {}
        }
        let packet = match LsPacket::new_checked(bytes) {
            Ok(p) => p,
            Err(e) => {
                return self.reject(ifindex, src, RejectReason::Malformed { error: e.to_string() })
            }
        };
        if !packet.verify_checksum() {
            return self.reject(ifindex, src, RejectReason::BadChecksum);
        }
        if packet.router_id() == self.router_id {
            return self.reject(ifindex, src, RejectReason::OwnMessage);
        }
        if let Err(failure) = auth::verify(
            self.config.auth.as_ref(),
            &self.config.accept_keys,
            &mut self.replay,
            ifindex,
            &packet,
        ) {
            return self.reject(ifindex, src, RejectReason::Auth { failure });
        }
        let repr = match LsRepr::parse(&packet) {
            Ok(r) => r,
            Err(e) => {
                return self.reject(ifindex, src, RejectReason::Malformed { error: e.to_string() })
            }
        };
        let rid = repr.router_id;
        match repr.message {
            Message::Hello { hello_interval_ms, dead_interval_ms, neighbors } => {
                if hello_interval_ms != millis(self.config.hello_interval)
                    || dead_interval_ms != millis(self.config.dead_interval)
                {
                    let reason = RejectReason::TimerMismatch {
                        hello_ms: hello_interval_ms,
                        dead_ms: dead_interval_ms,
                    };
                    return self.reject(ifindex, src, reason);
                }
                self.on_hello(now, ifindex, src, rid, &neighbors);
            }
            Message::Update { lsas } => {
                if !self.neighbors.get(&(ifindex, rid)).is_some_and(|n| n.state.floods()) {
                    return self.reject(ifindex, src, RejectReason::NotAdjacent);
                }
                self.on_update(now, ifindex, src, rid, lsas);
            }
            Message::Ack { headers } => {
                if !self.neighbors.get(&(ifindex, rid)).is_some_and(|n| n.state.floods()) {
                    return self.reject(ifindex, src, RejectReason::NotAdjacent);
                }
                self.on_ack(now, ifindex, rid, &headers);
            }
        }
    }

    fn on_hello(
        &mut self,
        now: Timestamp,
        ifindex: IfIndex,
        src: Ipv4Addr,
        rid: RouterId,
        listed: &[RouterId],
    ) {
        let n = self.neighbors.entry((ifindex, rid)).or_insert(Neighbor {
            addr: src,
            state: State::Down,
            retransmit: BTreeMap::new(),
        });
        n.addr = src;
        let was_down = n.state == State::Down;
        self.timers.set_after(TimerKey::Dead(ifindex, rid), now, self.config.dead_interval);
        let lists_us = listed.contains(&self.router_id);
        self.neighbor_event(now, ifindex, rid, neighbor::Event::Hello { lists_us });
        if was_down && !lists_us {
            // Answer at once so the new neighbour sees itself listed and goes two-way without
            // waiting a hello interval.
            self.send_hello(now, ifindex);
        }
    }

    fn neighbor_event(
        &mut self,
        now: Timestamp,
        ifindex: IfIndex,
        rid: RouterId,
        ev: neighbor::Event,
    ) {
        let Some(n) = self.neighbors.get_mut(&(ifindex, rid)) else { return };
        let old = n.state;
        // Every (state, event) the callers produce is valid; an invalid one changes nothing.
        let Ok(new) = neighbor::next(old, ev) else { return };
        if old == new {
            return;
        }
        n.state = new;
        self.out.push(Action::Debug(DebugEvent::NeighborState {
            ifindex,
            router_id: rid,
            from: old,
            to: new,
        }));
        match new {
            State::Down => {
                self.neighbors.remove(&(ifindex, rid));
                self.timers.cancel(&TimerKey::Dead(ifindex, rid));
                self.timers.cancel(&TimerKey::Retransmit(ifindex, rid));
            }
            State::Init => {
                n.retransmit.clear();
                self.timers.cancel(&TimerKey::Retransmit(ifindex, rid));
            }
            State::Exchange => {
                // A hello first, listing it: the neighbour goes two-way before our database
                // arrives, instead of refusing it as not adjacent and waiting a retransmission.
                self.send_hello(now, ifindex);
                self.start_exchange(now, ifindex, rid);
            }
            State::Full => {}
        }
        if old == State::Full || new == State::Full {
            self.originate(now, LsaKey::router(self.router_id), false);
        }
    }

    /// Database synchronisation by full exchange: the neighbour gets every LSA we hold, reliably;
    /// once all are acknowledged it becomes `Full`.
    fn start_exchange(&mut self, now: Timestamp, ifindex: IfIndex, rid: RouterId) {
        let all: Vec<(LsaKey, LsaHeader, Lsa)> =
            self.lsdb.iter().map(|(k, e)| (*k, e.header(now), e.to_send(now))).collect();
        let Some(n) = self.neighbors.get_mut(&(ifindex, rid)) else { return };
        n.retransmit = all.iter().map(|(k, h, _)| (*k, *h)).collect();
        let addr = n.addr;
        if all.is_empty() {
            return self.neighbor_event(now, ifindex, rid, neighbor::Event::ExchangeDone);
        }
        self.send_lsas(ifindex, addr, all.into_iter().map(|(_, _, l)| l).collect());
        self.timers.set_after(
            TimerKey::Retransmit(ifindex, rid),
            now,
            self.config.retransmit_interval,
        );
    }

    fn on_update(
        &mut self,
        now: Timestamp,
        ifindex: IfIndex,
        src: Ipv4Addr,
        rid: RouterId,
        lsas: Vec<Lsa>,
    ) {
        let mut acks = Vec::new();
        let mut to_flood = Vec::new();
        let mut send_back = Vec::new();
        for lsa in lsas {
            let key = LsaKey::of(&lsa.header);
            let current = self.lsdb.get(&key);
            if current.is_none() && lsa.header.age >= MAX_AGE {
                // A withdrawal of something we never had: nothing to do but confirm it.
                acks.push(lsa.header);
                continue;
            }
            let order = current.map_or(Ordering::Greater, |e| compare(&lsa.header, &e.header(now)));
            match order {
                Ordering::Greater => {
                    if let Some(e) = current {
                        if !elapsed_at_least(now, e.installed, self.config.min_ls_arrival) {
                            // Not acknowledged: the sender retransmits it after MinLSArrival.
                            self.stats.lsas_too_frequent += 1;
                            self.out.push(Action::Debug(DebugEvent::LsaTooFrequent { key }));
                            continue;
                        }
                    }
                    acks.push(lsa.header);
                    for n in self.neighbors.values_mut() {
                        n.retransmit.remove(&key);
                    }
                    self.install(now, lsa, false);
                    to_flood.push(key);
                    if key.adv_router == self.router_id {
                        // An instance of ours from before a restart, or one we flushed: take
                        // over its sequence number and assert what we advertise now.
                        self.originate(now, key, false);
                    }
                }
                Ordering::Equal => {
                    let n = self.neighbors.get_mut(&(ifindex, rid));
                    if n.is_some_and(|n| n.retransmit.remove(&key).is_some()) {
                        // Implied acknowledgement: it sent us what we were sending it.
                    } else {
                        acks.push(lsa.header);
                    }
                }
                Ordering::Less => {
                    if let Some(e) = current {
                        send_back.push(e.to_send(now));
                    }
                }
            }
        }
        if !acks.is_empty() {
            self.send_acks(ifindex, src, &acks);
        }
        if !send_back.is_empty() {
            self.send_lsas(ifindex, src, send_back);
        }
        self.flood(now, &to_flood, Some((ifindex, rid)));
        self.check_exchange_done(now, ifindex, rid);
    }

    fn on_ack(&mut self, now: Timestamp, ifindex: IfIndex, rid: RouterId, headers: &[LsaHeader]) {
        let Some(n) = self.neighbors.get_mut(&(ifindex, rid)) else { return };
        for h in headers {
            let key = LsaKey::of(h);
            if n.retransmit.get(&key).is_some_and(|pending| compare(h, pending) == Ordering::Equal)
            {
                n.retransmit.remove(&key);
            }
        }
        if n.retransmit.is_empty() {
            self.timers.cancel(&TimerKey::Retransmit(ifindex, rid));
        }
        self.check_exchange_done(now, ifindex, rid);
    }

    fn check_exchange_done(&mut self, now: Timestamp, ifindex: IfIndex, rid: RouterId) {
        if self
            .neighbors
            .get(&(ifindex, rid))
            .is_some_and(|n| n.state == State::Exchange && n.retransmit.is_empty())
        {
            self.neighbor_event(now, ifindex, rid, neighbor::Event::ExchangeDone);
        }
    }

    // ===== The database and our own LSAs =====

    fn install(&mut self, now: Timestamp, lsa: Lsa, own: bool) {
        let key = LsaKey::of(&lsa.header);
        let seq = lsa.header.seq;
        let new_max_age = lsa.header.age >= MAX_AGE;
        let new_body = lsa.body.clone();
        let old = self.lsdb.insert(now, lsa);
        let changed =
            old.is_none_or(|o| o.lsa.body != new_body || o.is_max_age(now) != new_max_age);
        if changed {
            self.content_changed(&key);
        }
        self.stats.lsas_installed += 1;
        self.out.push(Action::Debug(DebugEvent::LsaInstalled { key, seq, own }));
    }

    /// What an LSA says changed: mark what depends on it.
    fn content_changed(&mut self, key: &LsaKey) {
        match LsaType::from(key.kind) {
            LsaType::Router => self.topology_dirty = true,
            LsaType::Membership => {
                self.groups_dirty.insert(Ipv4Addr::from(key.id));
            }
            LsaType::Unknown(_) => {}
        }
    }

    /// What our LSA `key` should say now; `None`: it should not exist.
    fn desired_body(&self, key: &LsaKey) -> Option<LsaBody> {
        match LsaType::from(key.kind) {
            LsaType::Router if key.id == self.router_id => {
                let up = self.ifaces.values().filter(|i| i.up);
                let networks = up.clone().map(|i| network_of(&i.cfg)).collect();
                let links = up
                    .flat_map(|i| {
                        self.neighbors
                            .range((i.cfg.ifindex, 0)..=(i.cfg.ifindex, RouterId::MAX))
                            .filter(|(_, n)| n.state == State::Full)
                            .map(|((_, rid), _)| RouterLink {
                                neighbor: *rid,
                                link_id: link_id(i.cfg.ifindex),
                                cost: i.cfg.cost,
                            })
                    })
                    .collect();
                Some(LsaBody::Router { links, networks })
            }
            LsaType::Membership => {
                let group = Ipv4Addr::from(key.id);
                let interfaces: Vec<u32> = self
                    .ifaces
                    .values()
                    .filter(|i| i.up && i.members.contains(&group))
                    .map(|i| link_id(i.cfg.ifindex))
                    .collect();
                (!interfaces.is_empty()).then_some(LsaBody::Membership { interfaces })
            }
            _ => None,
        }
    }

    /// Brings our LSA `key` in line with [`Self::desired_body`] (or, with `refresh`, issues a
    /// new instance even if unchanged), at most once per MinLSInterval.
    fn originate(&mut self, now: Timestamp, key: LsaKey, refresh: bool) {
        if !self.started {
            return;
        }
        let desired = self.desired_body(&key);
        let current = self.lsdb.get(&key).filter(|e| !e.is_max_age(now));
        let up_to_date = match (&desired, current) {
            (Some(body), Some(e)) => e.lsa.body == *body,
            (None, None) => true,
            _ => false,
        };
        if up_to_date && !refresh {
            self.timers.cancel(&TimerKey::Originate(key));
            return;
        }
        if desired.is_none() && current.is_none() {
            return;
        }
        if let Some(&last) = self.last_originated.get(&key) {
            if !elapsed_at_least(now, last, self.config.min_ls_interval) {
                let at = last.saturating_add(self.config.min_ls_interval);
                if self.timers.deadline(&TimerKey::Originate(key)).is_none_or(|d| d > at) {
                    self.timers.set(TimerKey::Originate(key), at);
                }
                return;
            }
        }
        self.timers.cancel(&TimerKey::Originate(key));
        let lsa = if let Some(body) = desired {
            let prev = self.lsdb.get(&key).map_or(0, |e| e.lsa.header.seq);
            let seq = prev.max(self.own_seq.get(&key).copied().unwrap_or(0)).saturating_add(1);
            self.own_seq.insert(key, seq);
            self.timers.set_after(TimerKey::Refresh(key), now, self.config.refresh_interval);
            Lsa::new(0, key.id, self.router_id, seq, body)
        } else {
            // Premature aging: the same instance at MaxAge is newer everywhere.
            let Some(e) = current else { return };
            let mut lsa = e.lsa.clone();
            lsa.header.age = MAX_AGE;
            self.timers.cancel(&TimerKey::Refresh(key));
            lsa
        };
        self.last_originated.insert(key, now);
        self.stats.own_lsas_originated += 1;
        for n in self.neighbors.values_mut() {
            n.retransmit.remove(&key);
        }
        self.install(now, lsa, true);
        self.flood(now, &[key], None);
    }

    // ===== Trees and MFIB routes =====

    fn data_arrived(&mut self, now: Timestamp, punt: Punt) {
        if !self.started {
            return;
        }
        let sg = (punt.source, punt.group);
        if let Some(t) = self.tracked.get(&sg) {
            // Already computed: the data plane raced our install, or lost it; repeat it.
            if let Some(route) = &t.route {
                self.out.push(Action::Mfib(MfibUpdate::Install(route.clone())));
            }
            return;
        }
        let (root, route) = self.compute_route(now, punt.source, punt.group);
        self.apply(sg, Tracked { root, route });
    }

    fn data_idle(&mut self, source: Ipv4Addr, group: Ipv4Addr) {
        let Some(t) = self.tracked.remove(&(source, group)) else { return };
        if t.route.is_some() {
            self.stats.routes_removed += 1;
            self.out.push(Action::Mfib(MfibUpdate::Remove { source: Some(source), group }));
        }
        if let Some(root) = t.root {
            if !self.tracked.iter().any(|((_, g), o)| *g == group && o.root == Some(root)) {
                self.cache.forget(root, group);
            }
        }
    }

    fn has_local_members(&self, group: Ipv4Addr) -> bool {
        self.ifaces.values().any(|i| i.up && i.members.contains(&group))
    }

    /// Members of `group` as the trees see them: the database's, with our own membership
    /// taken from local state (which our LSA may lag behind by MinLSInterval).
    fn members(&self, group: Ipv4Addr, now: Timestamp) -> BTreeSet<RouterId> {
        let mut members = self.lsdb.members(group, now);
        if self.has_local_members(group) {
            members.insert(self.router_id);
        } else {
            members.remove(&self.router_id);
        }
        members
    }

    fn compute_route(
        &mut self,
        now: Timestamp,
        source: Ipv4Addr,
        group: Ipv4Addr,
    ) -> (Option<RouterId>, Option<MfibRoute>) {
        let Some(root) = self.lsdb.source_router(source, now) else { return (None, None) };
        let members = self.members(group, now);
        let entry = self.cache.entry(&self.topology, self.router_id, root, group, &members);
        let local_iif = || {
            self.ifaces
                .values()
                .find(|i| i.up && network_of(&i.cfg).contains(source))
                .map(|i| i.cfg.ifindex)
        };
        let (iif, downstream) = match (&entry, root == self.router_id) {
            (Some(e), _) if e.upstream.is_some() => {
                (e.upstream.map(|l| IfIndex(l.id)), e.downstream.clone())
            }
            (Some(e), true) => (local_iif(), e.downstream.clone()),
            // The source's router with no member anywhere: a route with no outgoing interface
            // stops the punts until a member appears.
            (None, true) => (local_iif(), Vec::new()),
            _ => (None, Vec::new()),
        };
        let Some(iif) = iif else { return (Some(root), None) };
        let mut oifs: BTreeSet<IfIndex> = downstream.iter().map(|l| IfIndex(l.id)).collect();
        oifs.extend(
            self.ifaces
                .values()
                .filter(|i| i.up && i.members.contains(&group))
                .map(|i| i.cfg.ifindex),
        );
        oifs.remove(&iif);
        let route = MfibRoute {
            source: Some(source),
            group,
            iif,
            oifs: oifs.into_iter().map(|ifindex| Oif { ifindex, ttl_threshold: 1 }).collect(),
            overlay_next_hops: Vec::new(),
        };
        (Some(root), Some(route))
    }

    /// Records the new state of `sg` and emits the MFIB change, if any.
    fn apply(&mut self, sg: (Ipv4Addr, Ipv4Addr), new: Tracked) {
        let old_route = self.tracked.get(&sg).and_then(|t| t.route.clone());
        self.out.push(Action::Debug(DebugEvent::RouteComputed {
            source: sg.0,
            group: sg.1,
            root: new.root,
            installed: new.route.is_some(),
        }));
        if new.route != old_route {
            if let Some(route) = &new.route {
                self.stats.routes_installed += 1;
                self.out.push(Action::Mfib(MfibUpdate::Install(route.clone())));
            } else {
                self.stats.routes_removed += 1;
                self.out.push(Action::Mfib(MfibUpdate::Remove { source: Some(sg.0), group: sg.1 }));
            }
        }
        self.tracked.insert(sg, new);
    }

    fn recompute_dirty(&mut self, now: Timestamp) {
        let affected: Vec<(Ipv4Addr, Ipv4Addr)> = if self.topology_dirty {
            self.topology = self.lsdb.topology(now);
            self.cache.topology_changed();
            self.tracked.keys().copied().collect()
        } else if !self.groups_dirty.is_empty() {
            for g in &self.groups_dirty {
                self.cache.membership_changed(*g);
            }
            self.tracked.keys().filter(|(_, g)| self.groups_dirty.contains(g)).copied().collect()
        } else {
            return;
        };
        self.topology_dirty = false;
        self.groups_dirty.clear();
        for (source, group) in affected {
            let (root, route) = self.compute_route(now, source, group);
            self.apply((source, group), Tracked { root, route });
        }
    }

    // ===== Introspection =====

    pub fn stats(&self) -> LinkStateStats {
        self.stats
    }

    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// The neighbours and their states.
    pub fn neighbors(&self) -> Vec<NeighborSnapshot> {
        self.neighbors
            .iter()
            .map(|(&(ifindex, router_id), n)| NeighborSnapshot {
                ifindex,
                router_id,
                addr: n.addr,
                state: n.state,
                retransmit_pending: n.retransmit.len(),
            })
            .collect()
    }

    /// The database's instances, without ages: equal on two routers exactly when their
    /// databases are synchronised.
    pub fn lsdb_instances(&self) -> Vec<(LsaKey, u32, u16)> {
        self.lsdb.iter().map(|(k, e)| (*k, e.lsa.header.seq, e.lsa.header.checksum)).collect()
    }

    /// The MFIB routes this router has installed.
    pub fn routes(&self) -> Vec<MfibRoute> {
        self.tracked.values().filter_map(|t| t.route.clone()).collect()
    }

    /// `fanoutctl show lsdb`.
    pub fn show_lsdb(&self, now: Timestamp) -> LsdbSnapshot {
        let lsas = self
            .lsdb
            .iter()
            .map(|(k, e)| {
                let (mut links, mut networks, mut interfaces) =
                    (Vec::new(), Vec::new(), Vec::new());
                match &e.lsa.body {
                    LsaBody::Router { links: l, networks: n } => {
                        links = l
                            .iter()
                            .map(|l| (Ipv4Addr::from(l.neighbor), l.link_id, l.cost))
                            .collect();
                        networks =
                            n.iter().map(|n| format!("{}/{}", n.prefix, n.prefix_len)).collect();
                    }
                    LsaBody::Membership { interfaces: i } => interfaces.clone_from(i),
                }
                LsaSnapshot {
                    kind: match LsaType::from(k.kind) {
                        LsaType::Router => "router".to_owned(),
                        LsaType::Membership => "membership".to_owned(),
                        LsaType::Unknown(c) => format!("unknown-{c}"),
                    },
                    id: Ipv4Addr::from(k.id),
                    adv_router: Ipv4Addr::from(k.adv_router),
                    seq: e.lsa.header.seq,
                    age: e.age(now),
                    checksum: e.lsa.header.checksum,
                    links,
                    networks,
                    interfaces,
                }
            })
            .collect();
        LsdbSnapshot {
            router_id: Ipv4Addr::from(self.router_id),
            neighbors: self.neighbors(),
            lsas,
            stats: self.stats,
            cache: self.cache.stats(),
        }
    }

    /// `fanoutctl show spt S G`: computed afresh from the database (the cache is not touched,
    /// so asking does not change the counters).
    pub fn show_spt(&self, now: Timestamp, source: Ipv4Addr, group: Ipv4Addr) -> SptSnapshot {
        let root = self.lsdb.source_router(source, now);
        let members = self.members(group, now);
        let topology = self.lsdb.topology(now);
        let (on_tree, local) = match root {
            Some(root) => {
                let tree = shortest_path_tree(&topology, root);
                let on_tree = tree
                    .pruned(&members)
                    .into_iter()
                    .map(|r| (r, tree.parent.get(&r).map(|(p, _)| *p)))
                    .collect();
                (on_tree, tree.local_entry(&topology, self.router_id, &members))
            }
            None => (Vec::new(), None),
        };
        SptSnapshot {
            source,
            group,
            root,
            members: members.into_iter().collect(),
            on_tree,
            local,
            installed: self.tracked.get(&(source, group)).and_then(|t| t.route.clone()),
        }
    }
}
