//! The link-state mode in the daemon (routing mode `linkstate`): the sans-IO
//! [`LinkStateRouter`] driven by the event loop. Its inputs are protocol-253 datagrams (from
//! one raw socket per interface, so the interface is known without `IP_PKTINFO`), data-plane
//! punts, IGMP membership changes and timer ticks; its outputs are datagrams (sent on those
//! sockets) and `MfibUpdate`s, which this module returns to the daemon to apply.
//!
//! Invariants: the core is told each (interface, group) membership appear and disappear
//! exactly once (the runtime remembers what it told it); an (S,G) whose data-plane packet
//! counter has not grown for [`IDLE_TIMEOUT`] is reported as `DataIdle`, so routes of flows
//! that keep sending are never aged out and those of stopped flows are.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam::channel::Sender;
use dataplane_api::{IfIndex, MfibUpdate, Punt};
use serde::Serialize;
use socket2::Socket;
use tracing::{debug, info, warn};
use wire::ipv4::Ipv4Packet;
use wire::linkstate::{ALL_LS_ROUTERS, IP_PROTOCOL};

use super::backend::RouteStats;
use super::link_local::{open_raw_socket, read_datagrams};
use super::Input;
use crate::config::LinkStateSettings;
use crate::igmp::{FilterMode, MembershipChange};
use crate::linkstate::{
    Action, DebugEvent, Event, LinkStateConfig, LinkStateRouter, LsInterface, LsdbSnapshot,
    NeighborSnapshot, RouterId, SptSnapshot,
};
use crate::timer::Timestamp;

/// An (S,G) whose packet counter did not grow for this long is idle: its route is removed and
/// the next packet is punted again (as the forwarding cache of MOSPF ages entries).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(210);

/// Where link-state datagrams go (the raw sockets, or a test recorder).
pub trait LinkStateTx: Send {
    fn send(&mut self, ifindex: IfIndex, dst: Ipv4Addr, payload: &[u8]) -> io::Result<()>;
}

/// `show neighbors` in mode linkstate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkStateNeighborsData {
    /// Always `"linkstate"`.
    pub mode: String,
    pub router_id: Ipv4Addr,
    pub neighbors: Vec<NeighborSnapshot>,
}

/// The core's configuration from the file's `[linkstate]` section; `auth_sequence_start` comes
/// from [`auth_sequence_start`].
pub fn core_config(s: &LinkStateSettings, auth_sequence_start: u64) -> LinkStateConfig {
    LinkStateConfig {
        hello_interval: s.hello_interval,
        dead_interval: s.dead_interval,
        retransmit_interval: s.retransmit_interval,
        min_ls_interval: s.min_ls_interval,
        min_ls_arrival: s.min_ls_arrival,
        auth: s.auth.clone(),
        accept_keys: s.accept_keys.clone(),
        auth_sequence_start,
        ..LinkStateConfig::default()
    }
}

/// The first authentication sequence number: milliseconds since the epoch shifted left 16
/// bits (docs/linkstate.md), so a restarted router starts above every number it sent before
/// and neighbours do not take its messages for replays. A clock before 1970 gives 1.
pub fn auth_sequence_start(wall: SystemTime) -> u64 {
    let ms = wall.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    // 2^48 ms is ~8900 years; the shift cannot overflow before then.
    u64::try_from(ms).unwrap_or(u64::MAX >> 16).checked_shl(16).unwrap_or(1).max(1)
}

/// The router id when `[linkstate] router_id` is unset: the lowest interface address.
pub fn default_router_id(addrs: impl IntoIterator<Item = Ipv4Addr>) -> Option<RouterId> {
    addrs.into_iter().filter(|a| !a.is_unspecified()).min().map(RouterId::from)
}

/// The link-state side of the daemon's state.
pub struct LinkStateRuntime {
    router: LinkStateRouter,
    tx: Box<dyn LinkStateTx>,
    origin: Instant,
    /// (interface, group) pairs the core was told have members.
    members: BTreeSet<(IfIndex, Ipv4Addr)>,
    /// Per (S,G): packet counter at the last scan and when it last grew.
    seen: BTreeMap<(Ipv4Addr, Ipv4Addr), (u64, Instant)>,
}

impl std::fmt::Debug for LinkStateRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkStateRuntime")
            .field("router_id", &Ipv4Addr::from(self.router.router_id()))
            .field("members", &self.members.len())
            .finish_non_exhaustive()
    }
}

impl LinkStateRuntime {
    /// Creates and starts the router; returns it with the MFIB updates of the start.
    pub fn start(
        config: LinkStateConfig,
        router_id: RouterId,
        interfaces: Vec<LsInterface>,
        tx: Box<dyn LinkStateTx>,
        origin: Instant,
        now: Instant,
    ) -> (LinkStateRuntime, Vec<MfibUpdate>) {
        info!(router_id = %Ipv4Addr::from(router_id), interfaces = interfaces.len(), "link state starting");
        let mut rt = LinkStateRuntime {
            router: LinkStateRouter::new(config, router_id, interfaces),
            tx,
            origin,
            members: BTreeSet::new(),
            seen: BTreeMap::new(),
        };
        let updates = rt.event(now, Event::Start);
        (rt, updates)
    }

    /// Feeds one event; sends what the core sends and returns its MFIB updates.
    pub fn event(&mut self, now: Instant, event: Event) -> Vec<MfibUpdate> {
        let actions = self.router.handle(Timestamp::since(self.origin, now), event);
        let mut updates = Vec::new();
        for action in actions {
            match action {
                Action::Send { ifindex, dst, bytes } => {
                    if let Err(e) = self.tx.send(ifindex, dst, &bytes) {
                        warn!(ifindex = ifindex.0, %dst, "sending link-state message: {e}");
                    }
                }
                Action::Mfib(u) => updates.push(u),
                Action::Debug(ev) => log_debug_event(&ev),
            }
        }
        updates
    }

    /// A datagram's IPv4 payload received on `ifindex` from `src`.
    pub fn received(
        &mut self,
        now: Instant,
        ifindex: IfIndex,
        src: Ipv4Addr,
        bytes: Vec<u8>,
    ) -> Vec<MfibUpdate> {
        self.event(now, Event::Received { ifindex, src, bytes })
    }

    /// Hands an IGMP membership change on `ifindex` to the core (any-source: the core has no
    /// per-source membership, so any wanted source means the group is wanted on the link).
    pub fn membership(
        &mut self,
        now: Instant,
        ifindex: IfIndex,
        group: Ipv4Addr,
        change: &MembershipChange,
    ) -> Vec<MfibUpdate> {
        let present = wanted(change);
        let key = (ifindex, group);
        if present == self.members.contains(&key) {
            return Vec::new();
        }
        if present {
            self.members.insert(key);
        } else {
            self.members.remove(&key);
        }
        self.event(now, Event::LocalMembership { ifindex, group, present })
    }

    /// A punt: the first packet of an (S,G) without a route.
    pub fn punt(&mut self, now: Instant, punt: Punt) -> Vec<MfibUpdate> {
        self.seen.entry((punt.source, punt.group)).or_insert((0, now));
        self.event(now, Event::DataArrived(punt))
    }

    /// Reports the (S,G)s whose counters have not grown for [`IDLE_TIMEOUT`] as idle.
    pub fn activity(&mut self, now: Instant, routes: &[RouteStats]) -> Vec<MfibUpdate> {
        let mut seen = BTreeMap::new();
        for r in routes {
            let Some(source) = r.route.source else { continue };
            let key = (source, r.route.group);
            let entry = match self.seen.get(&key) {
                Some(&(packets, at)) if r.packets <= packets => (packets, at),
                _ => (r.packets, now),
            };
            seen.insert(key, entry);
        }
        // Punted (S,G)s without a route yet keep their punt time.
        for (key, v) in &self.seen {
            seen.entry(*key).or_insert(*v);
        }
        let idle: Vec<(Ipv4Addr, Ipv4Addr)> = seen
            .iter()
            .filter(|(_, (_, at))| now.saturating_duration_since(*at) >= IDLE_TIMEOUT)
            .map(|(k, _)| *k)
            .collect();
        self.seen = seen;
        let mut updates = Vec::new();
        for (source, group) in idle {
            self.seen.remove(&(source, group));
            debug!(%source, %group, "link state: (S,G) idle");
            updates.extend(self.event(now, Event::DataIdle { source, group }));
        }
        updates
    }

    pub fn tick(&mut self, now: Instant) -> Vec<MfibUpdate> {
        self.event(now, Event::Tick)
    }

    /// When the core or the idle scan needs the loop next.
    pub fn next_deadline(&self) -> Option<Instant> {
        let core = self.router.next_deadline().map(|t| t.to_instant(self.origin));
        let idle = self.seen.values().map(|(_, at)| *at + IDLE_TIMEOUT).min();
        core.into_iter().chain(idle).min()
    }

    pub fn neighbors(&self) -> LinkStateNeighborsData {
        LinkStateNeighborsData {
            mode: "linkstate".into(),
            router_id: Ipv4Addr::from(self.router.router_id()),
            neighbors: self.router.neighbors(),
        }
    }

    pub fn lsdb(&self, now: Instant) -> LsdbSnapshot {
        self.router.show_lsdb(Timestamp::since(self.origin, now))
    }

    pub fn spt(&self, now: Instant, source: Ipv4Addr, group: Ipv4Addr) -> SptSnapshot {
        self.router.show_spt(Timestamp::since(self.origin, now), source, group)
    }

    /// Key rotation by reload: sends with `s.auth` from now on, accepts it and `s.accept_keys`.
    pub fn set_keys(&mut self, s: &LinkStateSettings) {
        self.router.set_keys(s.auth.clone(), s.accept_keys.clone());
        info!(
            send_key = ?s.auth.as_ref().map(|k| k.key_id),
            accept = ?s.accept_keys.iter().map(|k| k.key_id).collect::<Vec<_>>(),
            "link-state keys changed"
        );
    }

    /// Neighbours for the metrics gauge.
    /// The tree cache's counters (Dijkstra runs, entry computations, hits).
    pub fn tree_stats(&self) -> crate::linkstate::cache::CacheStats {
        self.router.cache_stats()
    }

    pub fn neighbor_count(&self) -> usize {
        self.router.neighbors().len()
    }
}

/// Whether an IGMP state wants the group's traffic on the link.
fn wanted(change: &MembershipChange) -> bool {
    match change {
        MembershipChange::Joined { mode, sources }
        | MembershipChange::Changed { mode, sources } => {
            *mode == FilterMode::Exclude || !sources.is_empty()
        }
        MembershipChange::Left => false,
    }
}

/// One log line per protocol event worth knowing; chatty ones at debug.
fn log_debug_event(ev: &DebugEvent) {
    match ev {
        DebugEvent::NeighborState { .. } | DebugEvent::LsaFlushed { .. } => {
            info!(event = ?ev, "link state");
        }
        DebugEvent::Rejected { .. } => debug!(event = ?ev, "link state"),
        _ => debug!(event = ?ev, "link state"),
    }
}

// ===== raw sockets =====

/// Why a link-state socket could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("link-state socket on {interface}: {step}: {source}")]
pub struct LinkStateSocketError {
    pub interface: String,
    pub step: &'static str,
    pub source: io::Error,
}

/// One raw IPv4 socket for protocol 253 per interface, bound to it, with its reader thread.
/// Dropping it stops the readers.
#[derive(Debug)]
pub struct LinkStateSockets {
    sockets: BTreeMap<u32, Arc<Socket>>,
    stop: Arc<AtomicBool>,
    readers: Vec<JoinHandle<()>>,
}

impl LinkStateSockets {
    /// Opens a socket per `(name, ifindex, address)`: SO_BINDTODEVICE, joined to 224.0.0.200,
    /// multicast out of that interface with TTL 1 (unicast acks also TTL 1), no loopback.
    /// Received datagrams become [`Input::LinkState`].
    pub fn open(
        interfaces: &[(String, u32, Ipv4Addr)],
        inputs: &Sender<Input>,
    ) -> Result<LinkStateSockets, LinkStateSocketError> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut out = LinkStateSockets {
            sockets: BTreeMap::new(),
            stop: Arc::clone(&stop),
            readers: Vec::new(),
        };
        for (name, ifindex, addr) in interfaces {
            let err = |step, source| LinkStateSocketError { interface: name.clone(), step, source };
            let s = open_raw_socket(IP_PROTOCOL, name, *ifindex, *addr, &[ALL_LS_ROUTERS])
                .map_err(|(step, e)| err(step, e))?;
            let s = Arc::new(s);
            let reader = {
                let (s, stop, inputs, name, own, ifindex) = (
                    Arc::clone(&s),
                    Arc::clone(&stop),
                    inputs.clone(),
                    name.clone(),
                    *addr,
                    *ifindex,
                );
                std::thread::Builder::new()
                    .name(format!("ls-{name}"))
                    .spawn(move || read_loop(&s, &stop, &inputs, &name, ifindex, own))
                    .map_err(|e| err("spawning the reader", e))?
            };
            out.readers.push(reader);
            out.sockets.insert(*ifindex, s);
            info!(interface = %name, "link-state socket open");
        }
        Ok(out)
    }

    /// A sender over these sockets for [`LinkStateRuntime`].
    pub fn sender(&self) -> SocketTx {
        SocketTx { sockets: self.sockets.clone() }
    }
}

impl Drop for LinkStateSockets {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }
}

/// [`LinkStateTx`] over the raw sockets.
#[derive(Debug)]
pub struct SocketTx {
    sockets: BTreeMap<u32, Arc<Socket>>,
}

impl LinkStateTx for SocketTx {
    fn send(&mut self, ifindex: IfIndex, dst: Ipv4Addr, payload: &[u8]) -> io::Result<()> {
        let s = self
            .sockets
            .get(&ifindex.0)
            .ok_or_else(|| io::Error::other("no link-state socket on this ifindex"))?;
        s.send_to(payload, &SocketAddrV4::new(dst, 0).into())?;
        Ok(())
    }
}

fn read_loop(
    s: &Socket,
    stop: &AtomicBool,
    inputs: &Sender<Input>,
    interface: &str,
    ifindex: u32,
    own: Ipv4Addr,
) {
    read_datagrams(s, stop, "link-state", interface, |data| match parse(data) {
        Ok((src, _)) if src == own => true,
        Ok((src, bytes)) => {
            inputs.send(Input::LinkState { ifindex: IfIndex(ifindex), src, bytes }).is_ok()
        }
        Err(e) => {
            debug!(interface, "ignoring datagram: {e}");
            true
        }
    });
}

/// Splits a raw-socket datagram (IPv4 header + payload) into (source, payload). The payload
/// itself is validated by the core, which counts what it rejects.
pub fn parse(data: &[u8]) -> Result<(Ipv4Addr, Vec<u8>), String> {
    let ip = Ipv4Packet::new_checked(data).map_err(|e| format!("IPv4: {e}"))?;
    if u8::from(ip.protocol()) != IP_PROTOCOL {
        return Err(format!("IP protocol {} is not {IP_PROTOCOL}", u8::from(ip.protocol())));
    }
    Ok((ip.src_addr(), ip.payload().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_sequence_grows_with_the_clock() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(auth_sequence_start(t), 1_700_000_000_000 << 16);
        assert!(auth_sequence_start(t + Duration::from_millis(1)) > auth_sequence_start(t));
        assert_eq!(auth_sequence_start(SystemTime::UNIX_EPOCH), 1);
    }

    #[test]
    fn membership_is_any_source() {
        let s = Ipv4Addr::new(10, 0, 0, 1);
        assert!(wanted(&MembershipChange::Joined { mode: FilterMode::Exclude, sources: vec![s] }));
        assert!(wanted(&MembershipChange::Changed { mode: FilterMode::Include, sources: vec![s] }));
        assert!(!wanted(&MembershipChange::Changed { mode: FilterMode::Include, sources: vec![] }));
        assert!(!wanted(&MembershipChange::Left));
    }

    #[test]
    fn router_id_is_lowest_address() {
        let a = [Ipv4Addr::new(10, 0, 2, 1), Ipv4Addr::UNSPECIFIED, Ipv4Addr::new(10, 0, 1, 1)];
        assert_eq!(default_router_id(a), Some(RouterId::from(Ipv4Addr::new(10, 0, 1, 1))));
        assert_eq!(default_router_id([]), None);
    }

    #[test]
    fn parse_checks_protocol() {
        let mut pkt =
            vec![0x45, 0, 0, 24, 0, 0, 0, 0, 1, IP_PROTOCOL, 0, 0, 10, 0, 0, 1, 224, 0, 0, 200];
        pkt.extend_from_slice(&[1, 2, 3, 4]);
        let (src, payload) = parse(&pkt).unwrap();
        assert_eq!((src, payload.as_slice()), (Ipv4Addr::new(10, 0, 0, 1), &[1u8, 2, 3, 4][..]));
        pkt[9] = 2;
        assert!(parse(&pkt).unwrap_err().contains("not 253"));
    }
}
