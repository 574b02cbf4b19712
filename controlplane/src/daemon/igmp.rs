//! IGMP in the daemon: the per-interface sans-IO cores ([`crate::igmp::IgmpInterface`]) driven by
//! the event loop, and their sockets.
//!
//! In routing mode `static` IGMP only observes and shows membership (`fanoutctl show igmp`);
//! it does not change routes. Time for the cores is [`Timestamp`] = time since the daemon started.
//!
//! Sockets: one raw `IPPROTO_IGMP` socket per interface with `igmp = true`, bound to the device
//! (`SO_BINDTODEVICE`) and joined to 224.0.0.22 (IGMPv3 reports) and 224.0.0.2 (v2 leaves);
//! queries to 224.0.0.1 arrive without a join. A reader thread per socket parses each datagram
//! (the raw socket delivers the IP header) with `wire` and sends an [`Input::Igmp`]; packets
//! from the interface's own address (our queries, looped back) are skipped. Sends go out on the
//! same socket with TTL 1 to the destination the core chose.
//!
//! Known limits: IGMPv1/v2 *reports* are addressed to the group itself, which the kernel
//! delivers to a raw socket only if something on the host joined that group (a kernel
//! multicast router socket, MRT_INIT, would be needed to see them all); IGMPv3 hosts (the Linux
//! default) report to 224.0.0.22 and are fully seen. Queries are sent without the Router Alert
//! option (setting IP_OPTIONS needs a raw setsockopt outside the safe APIs used here); Linux
//! hosts accept them.

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam::channel::Sender;
use serde::{Deserialize, Serialize};
use socket2::Socket;
use tracing::{debug, info, warn};
use wire::igmp::{IgmpPacket, IgmpRepr};
use wire::ipv4::{Ipv4Packet, Protocol as IpProtocol};

use super::link_local::{open_raw_socket, read_datagrams};
use super::Input;
use crate::config::IgmpSettings;
use crate::igmp::{Action, Event, IgmpConfig, IgmpInterface, IgmpSnapshot, MembershipChange};
use crate::timer::Timestamp;

/// The all-IGMPv3-routers group: where v3 reports go.
const ALL_V3_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 22);
/// The all-routers group: where v2 leaves go.
const ALL_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 2);

/// `show igmp`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IgmpData {
    pub interfaces: Vec<IgmpSnapshot>,
}

/// Where IGMP messages the cores produce go (a socket per interface, or a test recorder).
pub trait IgmpTx: Send {
    fn send(&mut self, interface: &str, dst: Ipv4Addr, msg: &IgmpRepr) -> io::Result<()>;
}

/// The IGMP side of the daemon's state.
pub struct IgmpRuntime {
    interfaces: BTreeMap<String, IgmpInterface>,
    tx: Box<dyn IgmpTx>,
    origin: Instant,
}

impl std::fmt::Debug for IgmpRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IgmpRuntime")
            .field("interfaces", &self.interfaces.keys())
            .finish_non_exhaustive()
    }
}

/// The core's configuration from the file's `[igmp]` section and limits.
pub fn core_config(s: &IgmpSettings, max_groups: usize) -> IgmpConfig {
    IgmpConfig {
        robustness: s.robustness,
        query_interval: s.query_interval,
        query_response_interval: s.query_response_interval,
        startup_query_interval: Some(s.startup_query_interval),
        startup_query_count: Some(s.startup_query_count),
        last_member_query_interval: s.last_member_query_interval,
        last_member_query_count: Some(s.last_member_query_count),
        max_groups: Some(max_groups),
        ..IgmpConfig::default()
    }
}

impl IgmpRuntime {
    /// Starts a core per `(name, address)` (they send their startup queries at once).
    pub fn start(
        interfaces: &[(String, Ipv4Addr)],
        config: &IgmpConfig,
        tx: Box<dyn IgmpTx>,
        origin: Instant,
        now: Instant,
    ) -> Result<IgmpRuntime, crate::igmp::ConfigError> {
        let mut rt = IgmpRuntime { interfaces: BTreeMap::new(), tx, origin };
        for (name, addr) in interfaces {
            rt.interfaces
                .insert(name.clone(), IgmpInterface::new(name.clone(), *addr, config.clone())?);
        }
        let names: Vec<String> = rt.interfaces.keys().cloned().collect();
        for name in names {
            rt.event(now, &name, Event::Start);
        }
        Ok(rt)
    }

    fn ts(&self, now: Instant) -> Timestamp {
        Timestamp::since(self.origin, now)
    }

    /// Feeds one event to one interface's core, carries out its sends and returns the
    /// membership changes (for a routing protocol).
    pub fn event(
        &mut self,
        now: Instant,
        interface: &str,
        event: Event,
    ) -> Vec<(Ipv4Addr, MembershipChange)> {
        let ts = self.ts(now);
        let mut changes = Vec::new();
        let Some(core) = self.interfaces.get_mut(interface) else {
            debug!(interface, "IGMP event for an interface without IGMP");
            return changes;
        };
        let actions = core.handle(ts, event);
        for action in actions {
            match action {
                Action::Send { dst, msg } => {
                    if let Err(e) = self.tx.send(interface, dst, &msg) {
                        warn!(interface, %dst, "sending IGMP: {e}");
                    }
                }
                Action::MembershipChanged { group, change } => {
                    info!(interface, %group, ?change, "IGMP membership changed");
                    changes.push((group, change));
                }
                Action::RoleChanged { role, querier } => {
                    info!(interface, ?role, ?querier, "IGMP querier role changed");
                }
            }
        }
        changes
    }

    /// Runs due timers on every interface; returns membership changes by interface.
    pub fn tick(&mut self, now: Instant) -> Vec<(String, Ipv4Addr, MembershipChange)> {
        let due: Vec<String> = self
            .interfaces
            .iter()
            .filter(|(_, c)| c.next_deadline().is_some_and(|d| d <= self.ts(now)))
            .map(|(n, _)| n.clone())
            .collect();
        let mut changes = Vec::new();
        for name in due {
            for (group, change) in self.event(now, &name, Event::Tick) {
                changes.push((name.clone(), group, change));
            }
        }
        changes
    }

    /// The earliest timer of any interface.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.interfaces
            .values()
            .filter_map(IgmpInterface::next_deadline)
            .min()
            .map(|t| t.to_instant(self.origin))
    }

    pub fn snapshot(&self, now: Instant) -> IgmpData {
        let ts = self.ts(now);
        IgmpData { interfaces: self.interfaces.values().map(|c| c.snapshot(ts)).collect() }
    }

    /// Stops every core (they forget their state; nothing is sent).
    pub fn stop(&mut self, now: Instant) {
        let names: Vec<String> = self.interfaces.keys().cloned().collect();
        for name in names {
            // Everything is being torn down: the routing protocol stops too.
            let _ = self.event(now, &name, Event::Stop);
        }
    }
}

/// Why an IGMP socket could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("IGMP socket on {interface}: {step}: {source}")]
pub struct IgmpSocketError {
    pub interface: String,
    pub step: &'static str,
    pub source: io::Error,
}

/// The raw IGMP sockets and their reader threads. Dropping it stops the readers.
#[derive(Debug)]
pub struct IgmpSockets {
    sockets: BTreeMap<String, Arc<Socket>>,
    names: BTreeMap<u32, String>,
    stop: Arc<AtomicBool>,
    readers: Vec<JoinHandle<()>>,
}

impl IgmpSockets {
    /// Opens a socket per `(name, ifindex, address)` and starts its reader. With `dvmrp` the
    /// sockets also join 224.0.0.4 and hand DVMRP messages (IGMP type 0x13) to the loop.
    pub fn open(
        interfaces: &[(String, u32, Ipv4Addr)],
        dvmrp: bool,
        inputs: &Sender<Input>,
    ) -> Result<IgmpSockets, IgmpSocketError> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut out = IgmpSockets {
            sockets: BTreeMap::new(),
            names: BTreeMap::new(),
            stop: Arc::clone(&stop),
            readers: Vec::new(),
        };
        for (name, ifindex, addr) in interfaces {
            let err = |step, source| IgmpSocketError { interface: name.clone(), step, source };
            let groups: &[Ipv4Addr] = if dvmrp {
                &[ALL_V3_ROUTERS, ALL_ROUTERS, wire::dvmrp::ALL_DVMRP_ROUTERS]
            } else {
                &[ALL_V3_ROUTERS, ALL_ROUTERS]
            };
            let s = open_raw_socket(u8::from(IpProtocol::Igmp), name, *ifindex, *addr, groups)
                .map_err(|(step, e)| err(step, e))?;
            let s = Arc::new(s);
            let reader = {
                let (s, stop, inputs, name, addr, ifindex) = (
                    Arc::clone(&s),
                    Arc::clone(&stop),
                    inputs.clone(),
                    name.clone(),
                    *addr,
                    *ifindex,
                );
                std::thread::Builder::new()
                    .name(format!("igmp-{name}"))
                    .spawn(move || read_loop(&s, &stop, &inputs, &name, ifindex, addr))
                    .map_err(|e| err("spawning the reader", e))?
            };
            out.readers.push(reader);
            out.sockets.insert(name.clone(), s);
            out.names.insert(*ifindex, name.clone());
            info!(interface = %name, "IGMP socket open");
        }
        Ok(out)
    }

    /// A sender over these sockets for [`IgmpRuntime`].
    pub fn sender(&self) -> SocketTx {
        SocketTx { sockets: self.sockets.clone(), names: self.names.clone() }
    }
}

impl Drop for IgmpSockets {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }
}

/// [`IgmpTx`] over the raw sockets.
#[derive(Debug)]
pub struct SocketTx {
    sockets: BTreeMap<String, Arc<Socket>>,
    names: BTreeMap<u32, String>,
}

impl super::dvmrp::DvmrpTx for SocketTx {
    fn send(
        &mut self,
        ifindex: dataplane_api::IfIndex,
        dst: Ipv4Addr,
        payload: &[u8],
    ) -> io::Result<()> {
        let name = self
            .names
            .get(&ifindex.0)
            .ok_or_else(|| io::Error::other("no socket on this ifindex"))?;
        self.send_bytes(name, dst, payload)
    }
}

impl SocketTx {
    /// Sends an already encoded IGMP-protocol payload (e.g. a DVMRP message) on `interface`.
    pub fn send_bytes(&self, interface: &str, dst: Ipv4Addr, payload: &[u8]) -> io::Result<()> {
        let s = self
            .sockets
            .get(interface)
            .ok_or_else(|| io::Error::other("no IGMP socket on this interface"))?;
        s.send_to(payload, &SocketAddrV4::new(dst, 0).into())?;
        Ok(())
    }
}

impl IgmpTx for SocketTx {
    fn send(&mut self, interface: &str, dst: Ipv4Addr, msg: &IgmpRepr) -> io::Result<()> {
        let s = self
            .sockets
            .get(interface)
            .ok_or_else(|| io::Error::other("no IGMP socket on this interface"))?;
        let mut buf = vec![0u8; msg.buffer_len()];
        let mut packet =
            IgmpPacket::new_checked(&mut buf[..]).map_err(|e| io::Error::other(e.to_string()))?;
        msg.emit(&mut packet);
        s.send_to(&buf, &SocketAddrV4::new(dst, 0).into())?;
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
    read_datagrams(s, stop, "IGMP", interface, |data| {
        if let Some(input) = dvmrp_input(data, ifindex, own) {
            return inputs.send(input).is_ok();
        }
        match parse(data) {
            // Our own queries, looped back by the kernel to other sockets of this host.
            Ok((src, _, _)) if src == own => true,
            Ok((src, dst, msg)) => {
                inputs.send(Input::Igmp { interface: interface.to_owned(), src, dst, msg }).is_ok()
            }
            Err(e) => {
                debug!(interface, "ignoring IGMP datagram: {e}");
                // Never blocks the reader: under a flood of junk the count may fall short.
                let _ = inputs.try_send(Input::Rejected(super::RejectedControl::Igmp));
                true
            }
        }
    });
}

/// A DVMRP message (IGMP type 0x13) as an input, `None` if the datagram is not DVMRP (or is
/// our own). Malformed DVMRP becomes [`Input::Rejected`] (counted by the loop) with a debug line.
fn dvmrp_input(data: &[u8], ifindex: u32, own: Ipv4Addr) -> Option<Input> {
    let ip = Ipv4Packet::new_checked(data).ok()?;
    if ip.protocol() != IpProtocol::Igmp
        || ip.payload().first() != Some(&0x13)
        || ip.src_addr() == own
    {
        return None;
    }
    let Ok(packet) = wire::dvmrp::DvmrpPacket::new_checked(ip.payload()) else {
        return Some(Input::Rejected(super::RejectedControl::Dvmrp));
    };
    match wire::dvmrp::DvmrpRepr::parse(&packet) {
        Ok(msg) => {
            Some(Input::Dvmrp { ifindex: dataplane_api::IfIndex(ifindex), src: ip.src_addr(), msg })
        }
        Err(e) => {
            debug!(ifindex, src = %ip.src_addr(), "ignoring DVMRP message: {e}");
            Some(Input::Rejected(super::RejectedControl::Dvmrp))
        }
    }
}

/// Parses a raw-socket datagram (IPv4 header + IGMP) into (source, destination, message).
pub fn parse(data: &[u8]) -> Result<(Ipv4Addr, Ipv4Addr, IgmpRepr), String> {
    let ip = Ipv4Packet::new_checked(data).map_err(|e| format!("IPv4: {e}"))?;
    if ip.protocol() != IpProtocol::Igmp {
        return Err("not IGMP".into());
    }
    let igmp = IgmpPacket::new_checked(ip.payload()).map_err(|e| format!("IGMP: {e}"))?;
    // RFC 2236 2.3 / RFC 3376 4.1.2: a message with a bad checksum is ignored.
    if !igmp.verify_checksum() {
        return Err("IGMP: bad checksum".into());
    }
    let msg = IgmpRepr::parse(&igmp).map_err(|e| format!("IGMP: {e}"))?;
    Ok((ip.src_addr(), ip.dst_addr(), msg))
}
