//! Routing mode `overlay` in the daemon: one sans-IO [`OverlayNode`] per configured group,
//! driven by the event loop. Inputs are control datagrams from UDP 7411 (a kernel socket: the
//! XDP program passes that port to the kernel and steers only the data port 7410 to AF_XDP),
//! local membership (IGMP on the local interface, or always present when it runs no IGMP) and
//! timer ticks; outputs are control datagrams, `MfibUpdate`s for the data plane, and next-hop
//! resolutions: an overlay neighbour's link-layer address is the MAC of the first unicast hop
//! towards it, taken from a `[[neighbor]]` entry or else from the kernel's routing and
//! neighbour tables ([`KernelResolver`]).
//!
//! ```text
//!   UDP 7411 reader ──Input::Overlay{src, payload}──► OverlayRuntime::received
//!        │                                              │ group = payload[4..8] → that group's node
//!   Tick/IGMP ───────────────────────────────────────► │ actions: Send → socket
//!                                                     │          Mfib → returned to the daemon
//!                                                     │          Resolve/Forget → SetNeighbor/RemoveNeighbor
//! ```
//!
//! Invariants: a next hop is programmed ([`MfibUpdate::SetNeighbor`]) while at least one
//! group's node wants it and removed when none does; an unresolved next hop is retried every
//! [`RESOLVE_RETRY`] (its copies are dropped as `no_neighbor` meanwhile); neighbours configured
//! with `[[neighbor]]` are owned by the static tables and never removed here.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam::channel::Sender;
use dataplane_api::{IfIndex, MfibUpdate, Neighbor};
use tracing::{debug, info, warn};

use super::backend::PortInfo;
use super::Input;
use crate::config::{OverlayProtocolSettings, OverlaySettings, StaticNeighbor};
use crate::ctl::{OverlayProtocolData, OverlayRuntimeCounters as RuntimeCounters};
use crate::igmp::{FilterMode, MembershipChange};
use crate::overlay::{Action, Event, GroupKey, OverlayConfig, OverlayError, OverlayNode};
use crate::timer::Timestamp;

/// UDP port of the overlay control channel (docs/overlay.md).
pub const CONTROL_PORT: u16 = wire::overlay::CONTROL_PORT;
/// How often unresolved next hops are looked up again.
pub const RESOLVE_RETRY: Duration = Duration::from_millis(500);
/// How long the socket reader blocks before it looks at its stop flag.
const READ_TIMEOUT: Duration = Duration::from_millis(200);

/// Where control datagrams go (the UDP socket, or a test recorder).
pub trait OverlayTx: Send {
    fn send(&mut self, dst: Ipv4Addr, payload: &[u8]) -> io::Result<()>;
}

/// Finds the interface and destination MAC of the first unicast hop towards an address.
pub trait NeighborResolver: Send {
    /// `(interface name, MAC)`, or `None` when not (yet) known.
    fn resolve(&mut self, addr: Ipv4Addr) -> Option<(String, [u8; 6])>;
}

/// The first authentication sequence number of the overlay control channel: seconds since
/// 2024-01-01 shifted left 5 bits, so a restarted node starts above what it sent before as
/// long as it sent fewer than 32 messages per second per group on average (peers refuse
/// non-increasing numbers). The u32 space lasts until 2028; a clock before 2024 gives 1.
pub fn auth_sequence_base(wall: SystemTime) -> u32 {
    const EPOCH_2024: u64 = 1_704_067_200;
    let secs = wall.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let since = secs.saturating_sub(EPOCH_2024);
    u32::try_from(since << 5).unwrap_or(u32::MAX).max(1)
}

/// The core's configuration for `group` from the file's `[overlay]` section.
pub fn core_config(
    settings: &OverlaySettings,
    protocol: &OverlayProtocolSettings,
    group: Ipv4Addr,
    local_iif: IfIndex,
    auth_sequence_base: u32,
) -> OverlayConfig {
    let keys: Vec<GroupKey> =
        settings.keys.iter().map(|k| GroupKey { id: k.id, secret: k.secret.clone() }).collect();
    let mut c = OverlayConfig::new(group, protocol.rendezvous, keys, protocol.topology.clone());
    if let Some(id) = settings.send_key {
        c.send_key_id = id;
    }
    c.tree = protocol.tree;
    c.local_iif = local_iif;
    c.heartbeat_interval = protocol.heartbeat_interval;
    c.dead_multiplier = protocol.dead_multiplier;
    c.lsa_refresh = protocol.lsa_refresh;
    c.join_retry = protocol.join_retry;
    c.auth_sequence_base = auth_sequence_base;
    c.max_members = protocol.max_members;
    c
}

/// Why the overlay mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum OverlayStartError {
    #[error("overlay group {group}: {source}")]
    Core { group: Ipv4Addr, source: OverlayError },
    #[error("overlay.local_interface {0:?} is not a data-plane port")]
    NoLocalInterface(String),
    #[error("overlay control socket {addr}: {step}: {source}")]
    Socket { addr: SocketAddrV4, step: &'static str, source: io::Error },
}

/// The overlay side of the daemon's state.
pub struct OverlayRuntime {
    address: Ipv4Addr,
    nodes: BTreeMap<Ipv4Addr, OverlayNode>,
    tx: Box<dyn OverlayTx>,
    resolver: Box<dyn NeighborResolver>,
    origin: Instant,
    ports: Vec<(String, IfIndex)>,
    local_iif: IfIndex,
    /// `[[neighbor]]` addresses: programmed by the static tables, left alone here.
    static_neighbors: BTreeSet<Ipv4Addr>,
    /// Next hop → the groups whose node wants it.
    wanted: BTreeMap<Ipv4Addr, BTreeSet<Ipv4Addr>>,
    /// What the data plane holds for each wanted next hop.
    programmed: BTreeMap<Ipv4Addr, Neighbor>,
    retry_at: Option<Instant>,
    /// Groups the core was told have local members.
    members: BTreeSet<Ipv4Addr>,
    counters: RuntimeCounters,
}

impl std::fmt::Debug for OverlayRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OverlayRuntime")
            .field("address", &self.address)
            .field("groups", &self.nodes.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl OverlayRuntime {
    /// Creates one node per configured group and starts them (join through the rendezvous).
    /// With `static_members` (the local interface runs no IGMP) every group is delivered
    /// locally from the start. Returns the runtime and the MFIB updates of the start.
    #[expect(clippy::too_many_arguments, reason = "everything the runtime owns, given once")]
    pub fn start(
        settings: &OverlaySettings,
        protocol: &OverlayProtocolSettings,
        ports: &[PortInfo],
        static_neighbors: &[StaticNeighbor],
        static_members: bool,
        auth_sequence_base: u32,
        seed: u64,
        tx: Box<dyn OverlayTx>,
        resolver: Box<dyn NeighborResolver>,
        origin: Instant,
        now: Instant,
    ) -> Result<(OverlayRuntime, Vec<MfibUpdate>), OverlayStartError> {
        let local_iif = ports
            .iter()
            .find(|p| p.name == protocol.local_interface)
            .map(|p| p.ifindex)
            .ok_or_else(|| OverlayStartError::NoLocalInterface(protocol.local_interface.clone()))?;
        let mut nodes = BTreeMap::new();
        for (i, &group) in protocol.groups.iter().enumerate() {
            let cfg = core_config(settings, protocol, group, local_iif, auth_sequence_base);
            let node = OverlayNode::new(cfg, protocol.address, seed.wrapping_add(i as u64))
                .map_err(|source| OverlayStartError::Core { group, source })?;
            nodes.insert(group, node);
        }
        info!(
            address = %protocol.address,
            rendezvous = %protocol.rendezvous,
            groups = nodes.len(),
            "overlay starting"
        );
        let mut rt = OverlayRuntime {
            address: protocol.address,
            nodes,
            tx,
            resolver,
            origin,
            ports: ports.iter().map(|p| (p.name.clone(), p.ifindex)).collect(),
            local_iif,
            static_neighbors: static_neighbors.iter().map(|n| n.addr).collect(),
            wanted: BTreeMap::new(),
            programmed: BTreeMap::new(),
            retry_at: None,
            members: BTreeSet::new(),
            counters: RuntimeCounters::default(),
        };
        let mut updates = Vec::new();
        let groups: Vec<Ipv4Addr> = rt.nodes.keys().copied().collect();
        for group in groups {
            updates.extend(rt.event(now, group, Event::Start));
            if static_members {
                rt.members.insert(group);
                let ev = Event::LocalMembership { ifindex: local_iif, present: true };
                updates.extend(rt.event(now, group, ev));
            }
        }
        Ok((rt, updates))
    }

    /// Feeds one event to `group`'s node and carries out its actions.
    fn event(&mut self, now: Instant, group: Ipv4Addr, event: Event) -> Vec<MfibUpdate> {
        let ts = Timestamp::since(self.origin, now);
        let Some(node) = self.nodes.get_mut(&group) else { return Vec::new() };
        let actions = node.handle(ts, event);
        let mut updates = Vec::new();
        for action in actions {
            match action {
                Action::Send { dst, payload } => match self.tx.send(dst, &payload) {
                    Ok(()) => self.counters.sent += 1,
                    Err(e) => {
                        self.counters.send_errors += 1;
                        debug!(%dst, "sending overlay control message: {e}");
                    }
                },
                Action::Mfib(u) => updates.push(u),
                Action::ResolveNeighbor(addr) => {
                    self.wanted.entry(addr).or_default().insert(group);
                    self.resolve(now, addr, &mut updates);
                }
                Action::ForgetNeighbor(addr) => {
                    let unused = self.wanted.get_mut(&addr).is_some_and(|g| {
                        g.remove(&group);
                        g.is_empty()
                    });
                    if unused {
                        self.wanted.remove(&addr);
                        if self.programmed.remove(&addr).is_some() {
                            updates.push(MfibUpdate::RemoveNeighbor { addr });
                        }
                    }
                }
            }
        }
        updates
    }

    /// Looks `addr` up unless already programmed; schedules a retry when unknown.
    fn resolve(&mut self, now: Instant, addr: Ipv4Addr, updates: &mut Vec<MfibUpdate>) {
        if self.static_neighbors.contains(&addr) || self.programmed.contains_key(&addr) {
            return;
        }
        let found = self.resolver.resolve(addr).and_then(|(name, mac)| {
            let ifindex = self.ports.iter().find(|(n, _)| *n == name).map(|(_, i)| *i);
            if ifindex.is_none() {
                debug!(%addr, interface = %name, "overlay next hop is reached through a non-data-plane interface");
            }
            ifindex.map(|ifindex| Neighbor { addr, ifindex, mac })
        });
        if let Some(n) = found {
            info!(%addr, ifindex = n.ifindex.0, mac = %super::format_mac(n.mac), "overlay next hop resolved");
            self.programmed.insert(addr, n);
            updates.push(MfibUpdate::SetNeighbor(n));
        } else {
            self.counters.unresolved += 1;
            self.retry_at.get_or_insert(now + RESOLVE_RETRY);
        }
    }

    /// A control datagram from `src` (UDP 7411): handed to the node of the group it names.
    pub fn received(&mut self, now: Instant, src: Ipv4Addr, payload: Vec<u8>) -> Vec<MfibUpdate> {
        self.counters.received += 1;
        // The group id is at bytes 4..8 of every control message (docs/overlay.md).
        let group = payload.get(4..8).and_then(|b| <[u8; 4]>::try_from(b).ok()).map(Ipv4Addr::from);
        match group {
            Some(g) if self.nodes.contains_key(&g) => {
                self.event(now, g, Event::Received { src, payload })
            }
            _ => {
                self.counters.unknown_group += 1;
                Vec::new()
            }
        }
    }

    /// An IGMP membership change on `ifindex`: only the local interface's matters.
    pub fn membership(
        &mut self,
        now: Instant,
        ifindex: IfIndex,
        group: Ipv4Addr,
        change: &MembershipChange,
    ) -> Vec<MfibUpdate> {
        if ifindex != self.local_iif || !self.nodes.contains_key(&group) {
            return Vec::new();
        }
        let present = wanted(change);
        if present == self.members.contains(&group) {
            return Vec::new();
        }
        if present {
            self.members.insert(group);
        } else {
            self.members.remove(&group);
        }
        self.event(now, group, Event::LocalMembership { ifindex, present })
    }

    /// Runs due timers of every node and retries unresolved next hops.
    pub fn tick(&mut self, now: Instant) -> Vec<MfibUpdate> {
        let mut updates = Vec::new();
        let ts = Timestamp::since(self.origin, now);
        let due: Vec<Ipv4Addr> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.next_deadline().is_some_and(|d| d <= ts))
            .map(|(g, _)| *g)
            .collect();
        for group in due {
            updates.extend(self.event(now, group, Event::Tick));
        }
        if self.retry_at.is_some_and(|t| t <= now) {
            self.retry_at = None;
            let pending: Vec<Ipv4Addr> =
                self.wanted.keys().filter(|a| !self.programmed.contains_key(a)).copied().collect();
            for addr in pending {
                self.resolve(now, addr, &mut updates);
            }
        }
        updates
    }

    /// Leaves every group (Leave to the rendezvous and neighbours) and removes the routes.
    pub fn stop(&mut self, now: Instant) -> Vec<MfibUpdate> {
        let groups: Vec<Ipv4Addr> = self.nodes.keys().copied().collect();
        let mut updates = Vec::new();
        for group in groups {
            updates.extend(self.event(now, group, Event::Stop));
        }
        updates
    }

    /// When the loop must call [`OverlayRuntime::tick`] next.
    pub fn next_deadline(&self) -> Option<Instant> {
        let core = self
            .nodes
            .values()
            .filter_map(OverlayNode::next_deadline)
            .min()
            .map(|t| t.to_instant(self.origin));
        core.into_iter().chain(self.retry_at).min()
    }

    /// Rotates every group's keys to the `[overlay]` keys of a reloaded configuration.
    pub fn set_keys(
        &mut self,
        settings: &OverlaySettings,
    ) -> Result<(), crate::overlay::OverlayError> {
        let keys: Vec<GroupKey> =
            settings.keys.iter().map(|k| GroupKey { id: k.id, secret: k.secret.clone() }).collect();
        let send = settings.send_key.or_else(|| keys.first().map(|k| k.id)).unwrap_or(0);
        for node in self.nodes.values_mut() {
            node.set_keys(keys.clone(), send)?;
        }
        Ok(())
    }

    pub fn snapshot(&self) -> OverlayProtocolData {
        OverlayProtocolData {
            address: self.address,
            groups: self.nodes.values().map(OverlayNode::snapshot).collect(),
            counters: self.counters,
            unresolved: self
                .wanted
                .keys()
                .filter(|a| !self.programmed.contains_key(a) && !self.static_neighbors.contains(a))
                .copied()
                .collect(),
        }
    }

    /// Up overlay neighbours over all groups (the metrics gauge).
    pub fn neighbor_count(&self) -> usize {
        self.nodes.values().map(|n| n.up_neighbors().count()).sum()
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

// ===== next-hop resolution =====

/// Resolves through the kernel of the daemon's network namespace: the longest-prefix route
/// in `/proc/net/route` gives the interface and gateway (or says the address is on-link), and
/// `/proc/net/arp` the gateway's MAC. The kernel learns that MAC by itself, since control
/// messages to the same neighbours go through the kernel stack first.
#[derive(Debug, Default)]
pub struct KernelResolver;

impl NeighborResolver for KernelResolver {
    fn resolve(&mut self, addr: Ipv4Addr) -> Option<(String, [u8; 6])> {
        let routes = std::fs::read_to_string("/proc/net/route").ok()?;
        let arp = std::fs::read_to_string("/proc/net/arp").ok()?;
        resolve_from_tables(&routes, &arp, addr)
    }
}

/// [`KernelResolver`]'s lookup over the text of `/proc/net/route` and `/proc/net/arp`.
pub fn resolve_from_tables(routes: &str, arp: &str, addr: Ipv4Addr) -> Option<(String, [u8; 6])> {
    let (dev, gateway) = route_lookup(routes, addr)?;
    let hop = gateway.unwrap_or(addr);
    let mac = arp_lookup(arp, hop, &dev)?;
    Some((dev, mac))
}

/// Longest-prefix match (lowest metric among equals): (device, gateway if not on-link).
fn route_lookup(table: &str, addr: Ipv4Addr) -> Option<(String, Option<Ipv4Addr>)> {
    // The kernel prints each address as the hex of its in-memory (network-order) u32.
    let hex = |s: &str| u32::from_str_radix(s, 16).ok().map(|v| Ipv4Addr::from(v.to_ne_bytes()));
    let target = u32::from(addr);
    let mut best: Option<(u32, u32, String, Option<Ipv4Addr>)> = None;
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [dev, dest, gw, flags, _, _, metric, mask, ..] = f.as_slice() else { continue };
        let (Some(dest), Some(gw), Some(mask)) = (hex(dest), hex(gw), hex(mask)) else { continue };
        let Ok(flags) = u32::from_str_radix(flags, 16) else { continue };
        let metric: u32 = metric.parse().unwrap_or(u32::MAX);
        // RTF_UP = 1; RTF_GATEWAY = 2.
        if flags & 1 == 0 || target & u32::from(mask) != u32::from(dest) {
            continue;
        }
        let len = u32::from(mask).count_ones();
        let better =
            best.as_ref().is_none_or(|(l, m, _, _)| len > *l || (len == *l && metric < *m));
        if better {
            let gateway = (flags & 2 != 0).then_some(gw);
            best = Some((len, metric, (*dev).to_owned(), gateway));
        }
    }
    best.map(|(_, _, dev, gw)| (dev, gw))
}

/// A complete (`ATF_COM`) entry for `ip` on `dev`.
fn arp_lookup(table: &str, ip: Ipv4Addr, dev: &str) -> Option<[u8; 6]> {
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [a, _, flags, mac, _, d] = f.as_slice() else { continue };
        if a.parse::<Ipv4Addr>().ok() != Some(ip) || *d != dev {
            continue;
        }
        let complete =
            u32::from_str_radix(flags.trim_start_matches("0x"), 16).is_ok_and(|f| f & 2 != 0);
        let mac = crate::config::parse_mac(mac)?;
        if complete && mac != [0; 6] {
            return Some(mac);
        }
    }
    None
}

/// `[[neighbor]]` entries first (they need no lookup), the kernel otherwise.
#[derive(Debug)]
pub struct ConfiguredThenKernel {
    pub configured: Vec<(Ipv4Addr, String, [u8; 6])>,
    pub kernel: KernelResolver,
}

impl NeighborResolver for ConfiguredThenKernel {
    fn resolve(&mut self, addr: Ipv4Addr) -> Option<(String, [u8; 6])> {
        if let Some((_, dev, mac)) = self.configured.iter().find(|(a, _, _)| *a == addr) {
            return Some((dev.clone(), *mac));
        }
        self.kernel.resolve(addr)
    }
}

// ===== the control socket =====

/// The UDP socket on `address`:7411 with its reader thread. Dropping it stops the reader.
#[derive(Debug)]
pub struct OverlaySocket {
    socket: Arc<UdpSocket>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

impl OverlaySocket {
    /// Binds `address`:`port`; received datagrams become [`Input::Overlay`].
    pub fn open(
        address: Ipv4Addr,
        port: u16,
        inputs: &Sender<Input>,
    ) -> Result<OverlaySocket, OverlayStartError> {
        let addr = SocketAddrV4::new(address, port);
        let err = |step, source| OverlayStartError::Socket { addr, step, source };
        let socket = UdpSocket::bind(addr).map_err(|e| err("bind", e))?;
        socket.set_read_timeout(Some(READ_TIMEOUT)).map_err(|e| err("SO_RCVTIMEO", e))?;
        let socket = Arc::new(socket);
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (s, stop, inputs) = (Arc::clone(&socket), Arc::clone(&stop), inputs.clone());
            std::thread::Builder::new()
                .name("overlay-ctl".into())
                .spawn(move || read_loop(&s, &stop, &inputs))
                .map_err(|e| err("spawning the reader", e))?
        };
        info!(%addr, "overlay control socket open");
        Ok(OverlaySocket { socket, stop, reader: Some(reader) })
    }

    /// A sender over this socket for [`OverlayRuntime`].
    pub fn sender(&self) -> UdpTx {
        UdpTx {
            socket: Arc::clone(&self.socket),
            port: self.socket.local_addr().map_or(CONTROL_PORT, |a| a.port()),
        }
    }
}

impl Drop for OverlaySocket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// [`OverlayTx`] over the control socket: to the peer's same port.
#[derive(Debug)]
pub struct UdpTx {
    socket: Arc<UdpSocket>,
    port: u16,
}

impl OverlayTx for UdpTx {
    fn send(&mut self, dst: Ipv4Addr, payload: &[u8]) -> io::Result<()> {
        self.socket.send_to(payload, SocketAddrV4::new(dst, self.port)).map(|_| ())
    }
}

fn read_loop(s: &UdpSocket, stop: &AtomicBool, inputs: &Sender<Input>) {
    // Allocated once; control messages are far below 64 KiB.
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        match s.recv_from(&mut buf) {
            Ok((n, std::net::SocketAddr::V4(from))) => {
                let input = Input::Overlay { src: *from.ip(), payload: buf[..n].to_vec() };
                if inputs.send(input).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                warn!("overlay control receive: {e}");
                std::thread::sleep(READ_TIMEOUT);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTES: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
        wan0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
        wan0\t0000000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
        lan0\t000010AC\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
    const ARP: &str =
        "IP address       HW type     Flags       HW address            Mask     Device\n\
        10.0.0.1         0x1         0x2         02:aa:00:00:00:01     *        wan0\n\
        10.0.0.7         0x1         0x0         00:00:00:00:00:00     *        wan0\n\
        10.0.0.9         0x1         0x2         02:aa:00:00:00:09     *        wan0\n";

    #[test]
    fn remote_addresses_resolve_to_the_gateway_mac() {
        let r = resolve_from_tables(ROUTES, ARP, Ipv4Addr::new(10, 9, 9, 9));
        assert_eq!(r, Some(("wan0".into(), [2, 0xaa, 0, 0, 0, 1])));
    }

    #[test]
    fn on_link_addresses_resolve_to_their_own_mac_and_incomplete_entries_do_not() {
        let r = resolve_from_tables(ROUTES, ARP, Ipv4Addr::new(10, 0, 0, 9));
        assert_eq!(r, Some(("wan0".into(), [2, 0xaa, 0, 0, 0, 9])));
        assert_eq!(resolve_from_tables(ROUTES, ARP, Ipv4Addr::new(10, 0, 0, 7)), None);
        // On-link on lan0 but no ARP entry there.
        assert_eq!(resolve_from_tables(ROUTES, ARP, Ipv4Addr::new(172, 16, 0, 5)), None);
        assert_eq!(resolve_from_tables("", ARP, Ipv4Addr::new(10, 0, 0, 9)), None);
    }

    type Outbox = Arc<std::sync::Mutex<Vec<(Ipv4Addr, Vec<u8>)>>>;

    struct Recorder(Outbox);

    impl OverlayTx for Recorder {
        fn send(&mut self, dst: Ipv4Addr, payload: &[u8]) -> io::Result<()> {
            self.0.lock().map_err(|_| io::Error::other("poisoned"))?.push((dst, payload.to_vec()));
            Ok(())
        }
    }

    /// Knows every address after `misses` failed lookups.
    struct Flaky {
        misses: u32,
    }

    impl NeighborResolver for Flaky {
        fn resolve(&mut self, _addr: Ipv4Addr) -> Option<(String, [u8; 6])> {
            if self.misses > 0 {
                self.misses -= 1;
                return None;
            }
            Some(("wan0".into(), [2, 0, 0, 0, 0, 0xee]))
        }
    }

    fn settings(me: Ipv4Addr) -> (OverlaySettings, OverlayProtocolSettings) {
        let a = Ipv4Addr::new(10, 0, 0, 1);
        let b = Ipv4Addr::new(10, 0, 0, 2);
        let s = OverlaySettings {
            keys: vec![crate::config::OverlayKey { id: 1, secret: vec![7; 32] }],
            ..OverlaySettings::default()
        };
        let p = OverlayProtocolSettings {
            address: me,
            rendezvous: a,
            local_interface: "lan0".into(),
            groups: vec![Ipv4Addr::new(239, 5, 5, 5)],
            topology: crate::overlay::TopologyMode::Static {
                links: vec![crate::overlay::StaticLink { a, b, cost: 1 }],
            },
            tree: crate::overlay::TreeMode::ShortestPath,
            heartbeat_interval: Duration::from_millis(100),
            dead_multiplier: 3,
            lsa_refresh: Duration::from_secs(1),
            join_retry: Duration::from_millis(100),
            max_members: None,
        };
        (s, p)
    }

    fn ports() -> Vec<PortInfo> {
        ["wan0", "lan0"]
            .iter()
            .enumerate()
            .map(|(i, n)| PortInfo {
                name: (*n).into(),
                ifindex: IfIndex(u32::try_from(i).unwrap() + 2),
                mac: [2, 0, 0, 0, 0, 1],
                ipv4: Ipv4Addr::new(10, 0, 0, 1),
                xdp_mode: "native".into(),
                bind_mode: "copy".into(),
                queue: 0,
                state: "up".into(),
            })
            .collect()
    }

    #[test]
    fn two_runtimes_build_routes_and_resolve_next_hops_with_retries() {
        let (a, b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let t0 = Instant::now();
        let outboxes: [Outbox; 2] = Default::default();
        let mut rts: Vec<OverlayRuntime> = [a, b]
            .iter()
            .zip(&outboxes)
            .map(|(&me, out)| {
                let (s, p) = settings(me);
                let (rt, _) = OverlayRuntime::start(
                    &s,
                    &p,
                    &ports(),
                    &[],
                    true,
                    1,
                    7,
                    Box::new(Recorder(Arc::clone(out))),
                    Box::new(Flaky { misses: 2 }),
                    t0,
                    t0,
                )
                .unwrap();
                rt
            })
            .collect();
        let mut updates: [Vec<MfibUpdate>; 2] = Default::default();
        let mut now = t0;
        // 2 s of 10 ms steps: deliver what each sent to the other, tick both.
        for _ in 0..200 {
            now += Duration::from_millis(10);
            for i in 0..2 {
                let sent: Vec<_> = outboxes[i].lock().unwrap().drain(..).collect();
                for (dst, payload) in sent {
                    let j = usize::from(dst == b);
                    let src = [a, b][i];
                    updates[j].extend(rts[j].received(now, src, payload));
                }
            }
            for i in 0..2 {
                updates[i].extend(rts[i].tick(now));
            }
        }
        // A: its own (*,G) route encapsulates to B, and B's MAC was set after two misses.
        let set = |u: &[MfibUpdate], who: Ipv4Addr| {
            u.iter().any(|x| matches!(x, MfibUpdate::SetNeighbor(n) if n.addr == who && n.ifindex == IfIndex(2)))
        };
        assert!(set(&updates[0], b), "{:?}", updates[0]);
        assert!(set(&updates[1], a), "{:?}", updates[1]);
        assert!(updates[0].iter().any(|u| matches!(u, MfibUpdate::Install(r)
            if r.source.is_none() && r.iif == IfIndex(3) && r.overlay_next_hops == [b])));
        let snap = rts[0].snapshot();
        assert!(snap.unresolved.is_empty() && snap.counters.unresolved >= 2, "{snap:?}");
        assert_eq!(snap.groups[0].members, [a, b]);
        assert_eq!(rts[0].neighbor_count(), 1);
        // Unknown groups are counted, not handed to a node.
        let mut junk = vec![0u8; 16];
        junk[4..8].copy_from_slice(&[239, 9, 9, 9]);
        assert!(rts[0].received(now, b, junk).is_empty());
        assert_eq!(rts[0].snapshot().counters.unknown_group, 1);
        // Stop: routes removed and the next hop forgotten.
        let stop = rts[0].stop(now);
        assert!(
            stop.iter().any(|u| matches!(u, MfibUpdate::RemoveNeighbor { addr } if *addr == b)),
            "{stop:?}"
        );
    }

    #[test]
    fn auth_sequence_grows_with_the_clock() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
        assert!(auth_sequence_base(t + Duration::from_secs(1)) >= auth_sequence_base(t) + 32);
        assert_eq!(auth_sequence_base(SystemTime::UNIX_EPOCH), 1);
    }
}
