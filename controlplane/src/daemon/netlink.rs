//! Interfaces that come and go: a reader thread on a `NETLINK_ROUTE` socket subscribed to
//! `RTMGRP_LINK` and `RTMGRP_IPV4_IFADDR` turns the kernel's link and address notifications
//! into [`LinkEvent`]s for the event loop (`Input::Link`).
//!
//! ```text
//!   kernel ── RTM_NEWLINK / RTM_DELLINK / RTM_NEWADDR ──► netlink reader "fanout-netlink"
//!                                                           │ parse (netlink-packet-route)
//!                                                           ▼
//!                                   Input::Link(LinkEvent{name, ifindex, Up|Down|Removed|Address})
//! ```
//!
//! Invariants: the reader only parses and forwards; what an event means (detach the port,
//! attach it again, re-resolve routes) is decided by the event loop, which ignores interfaces
//! it was not configured with. Events are level-like (the state now, not a transition), so a
//! repeated or reordered notification is harmless: attaching an attached port on the same
//! ifindex and detaching a detached one do nothing. The socket has a receive timeout, so the
//! reader sees the stop flag within [`POLL`]. If the kernel drops notifications (`ENOBUFS`,
//! socket buffer overrun) that is logged; interfaces changed meanwhile are picked up by their
//! next notification.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam::channel::{SendTimeoutError, Sender};
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use tracing::{debug, error, warn};

use super::backend::{LinkEvent, LinkEventKind};
use super::Input;

/// How long the reader blocks in `recv` before looking at the stop flag.
pub const POLL: Duration = Duration::from_millis(200);

/// A netlink datagram that could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("netlink message at offset {offset}: {reason}")]
pub struct NetlinkParseError {
    pub offset: usize,
    pub reason: String,
}

/// The link and IPv4 address events in one netlink datagram (which may hold several
/// messages). Messages of other types are skipped; a link message without a name is skipped
/// (the kernel always sends `IFLA_IFNAME`), an address message without a label too.
pub fn parse(datagram: &[u8]) -> Result<Vec<LinkEvent>, NetlinkParseError> {
    let mut events = Vec::new();
    let mut offset = 0;
    while offset < datagram.len() {
        let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&datagram[offset..])
            .map_err(|e| NetlinkParseError { offset, reason: e.to_string() })?;
        let len = msg.header.length as usize;
        if len < 16 {
            return Err(NetlinkParseError { offset, reason: format!("length {len} < 16") });
        }
        if let NetlinkPayload::InnerMessage(inner) = msg.payload {
            events.extend(event_of(inner));
        }
        // Messages are 4-byte aligned (NLMSG_ALIGN).
        offset += (len + 3) & !3;
    }
    Ok(events)
}

fn event_of(msg: RouteNetlinkMessage) -> Option<LinkEvent> {
    match msg {
        RouteNetlinkMessage::NewLink(link) => {
            let kind = if link.header.flags.contains(LinkFlags::Up) {
                LinkEventKind::Up
            } else {
                LinkEventKind::Down
            };
            Some(LinkEvent { name: link_name(&link)?, ifindex: link.header.index, kind })
        }
        RouteNetlinkMessage::DelLink(link) => Some(LinkEvent {
            name: link_name(&link)?,
            ifindex: link.header.index,
            kind: LinkEventKind::Removed,
        }),
        RouteNetlinkMessage::NewAddress(addr) if addr.header.family == AddressFamily::Inet => {
            let name = addr.attributes.iter().find_map(|a| match a {
                AddressAttribute::Label(n) => Some(n.clone()),
                _ => None,
            })?;
            Some(LinkEvent { name, ifindex: addr.header.index, kind: LinkEventKind::Address })
        }
        _ => None,
    }
}

fn link_name(link: &LinkMessage) -> Option<String> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    })
}

/// The reader thread; dropping it stops the thread (within [`POLL`]).
#[derive(Debug)]
pub struct LinkWatcher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LinkWatcher {
    /// Opens the socket (in the calling thread's network namespace) and starts the reader,
    /// which sends an `Input::Link` per event to `inputs`.
    pub fn start(inputs: Sender<Input>) -> io::Result<LinkWatcher> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        let groups = (libc::RTMGRP_LINK | libc::RTMGRP_IPV4_IFADDR).unsigned_abs();
        socket.bind(&SocketAddr::new(0, groups))?;
        let timeout = nix::sys::time::TimeVal::new(0, POLL.as_micros() as libc::suseconds_t);
        nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::ReceiveTimeout, &timeout)
            .map_err(io::Error::from)?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("fanout-netlink".into())
                .spawn(move || read_loop(&socket, &stop, &inputs))?
        };
        Ok(LinkWatcher { stop, thread: Some(thread) })
    }
}

impl Drop for LinkWatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_loop(socket: &Socket, stop: &AtomicBool, inputs: &Sender<Input>) {
    while !stop.load(Ordering::Relaxed) {
        let datagram = match socket.recv_from_full() {
            Ok((d, _)) => d,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                warn!("netlink socket overrun: interface notifications were lost");
                continue;
            }
            Err(e) => {
                error!(error = %e, "reading interface notifications failed; no longer watching");
                return;
            }
        };
        match parse(&datagram) {
            Ok(events) => {
                for ev in events {
                    debug!(interface = ev.name, ifindex = ev.ifindex, kind = ?ev.kind, "netlink");
                    if !forward(inputs, Input::Link(ev), stop) {
                        return;
                    }
                }
            }
            Err(e) => warn!("{e}"),
        }
    }
}

/// Sends `input`, waiting while the loop is busy but not past a stop request (a full channel
/// must not keep `Drop` from joining). Returns false when the reader should end.
fn forward(inputs: &Sender<Input>, mut input: Input, stop: &AtomicBool) -> bool {
    loop {
        match inputs.send_timeout(input, POLL) {
            Ok(()) => return true,
            Err(SendTimeoutError::Timeout(i)) if !stop.load(Ordering::Relaxed) => input = i,
            Err(_) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use netlink_packet_route::address::AddressMessage;

    use super::*;

    fn bytes(msg: RouteNetlinkMessage) -> Vec<u8> {
        let mut m = NetlinkMessage::from(msg);
        m.finalize();
        let mut buf = vec![0; m.buffer_len()];
        m.serialize(&mut buf);
        buf
    }

    fn link(index: u32, name: &str, up: bool) -> LinkMessage {
        let mut l = LinkMessage::default();
        l.header.index = index;
        if up {
            l.header.flags = LinkFlags::Up | LinkFlags::Running;
        }
        l.attributes.push(LinkAttribute::IfName(name.into()));
        l
    }

    #[test]
    fn link_and_address_messages_become_events_in_order() {
        let mut addr = AddressMessage::default();
        addr.header.family = AddressFamily::Inet;
        addr.header.index = 9;
        addr.attributes.push(AddressAttribute::Label("veth1".into()));
        let mut v6 = addr.clone();
        v6.header.family = AddressFamily::Inet6;
        let mut datagram = bytes(RouteNetlinkMessage::DelLink(link(7, "veth1", false)));
        datagram.extend(bytes(RouteNetlinkMessage::NewLink(link(9, "veth1", false))));
        datagram.extend(bytes(RouteNetlinkMessage::NewAddress(addr)));
        datagram.extend(bytes(RouteNetlinkMessage::NewAddress(v6)));
        datagram.extend(bytes(RouteNetlinkMessage::NewLink(link(9, "veth1", true))));
        let events = parse(&datagram).expect("parse");
        let got: Vec<_> = events.iter().map(|e| (e.ifindex, e.kind)).collect();
        assert_eq!(
            got,
            [
                (7, LinkEventKind::Removed),
                (9, LinkEventKind::Down),
                (9, LinkEventKind::Address),
                (9, LinkEventKind::Up),
            ]
        );
        assert!(events.iter().all(|e| e.name == "veth1"));
    }

    #[test]
    fn garbage_is_a_typed_error_and_unnamed_links_are_skipped() {
        let err = parse(&[1, 2, 3]).expect_err("too short");
        assert_eq!(err.offset, 0);
        let mut l = link(3, "x", true);
        l.attributes.clear();
        assert!(parse(&bytes(RouteNetlinkMessage::NewLink(l))).expect("parse").is_empty());
        let mut good = bytes(RouteNetlinkMessage::NewLink(link(4, "y", true)));
        good.extend([0xff; 8]);
        assert!(parse(&good).is_err());
    }
}
