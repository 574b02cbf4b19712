//! The raw socket every link-local control protocol uses (IGMP/DVMRP, link state): one per
//! interface, bound to it, joined to the protocol's groups, sending with TTL 1 and no loopback.

use std::io::{self, Read as _};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};

/// How long a reader blocks before it looks at its stop flag.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_millis(200);

/// Opens a raw IPv4 socket for IP protocol `protocol` on interface `name`/`ifindex` with address
/// `addr`, joined to `groups`. On failure returns the step that failed (for the caller's error
/// type, which names the interface) and the OS error.
pub(crate) fn open_raw_socket(
    protocol: u8,
    name: &str,
    ifindex: u32,
    addr: Ipv4Addr,
    groups: &[Ipv4Addr],
) -> Result<Socket, (&'static str, io::Error)> {
    let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(i32::from(protocol))))
        .map_err(|e| ("socket(AF_INET, SOCK_RAW)", e))?;
    s.bind_device(Some(name.as_bytes())).map_err(|e| ("SO_BINDTODEVICE", e))?;
    for group in groups {
        // Without the membership the kernel never delivers the protocol's multicast to us.
        s.join_multicast_v4_n(group, &InterfaceIndexOrAddress::Index(ifindex))
            .map_err(|e| ("IP_ADD_MEMBERSHIP", e))?;
    }
    s.set_multicast_if_v4(&addr).map_err(|e| ("IP_MULTICAST_IF", e))?;
    // Control messages are link-local: multicast and unicast (prunes, grafts, acks) alike.
    s.set_multicast_ttl_v4(1).map_err(|e| ("IP_MULTICAST_TTL", e))?;
    s.set_multicast_loop_v4(false).map_err(|e| ("IP_MULTICAST_LOOP", e))?;
    s.set_ttl(1).map_err(|e| ("IP_TTL", e))?;
    s.set_read_timeout(Some(READ_TIMEOUT)).map_err(|e| ("SO_RCVTIMEO", e))?;
    Ok(s)
}

/// Reads datagrams (IP header included) from `s` until `stop` is set or `each` returns false,
/// handing each to `each`. Timeouts and EINTR (privilege dropping signals every thread) only
/// re-check `stop`; other errors are logged with `what` and `interface` and retried after a pause.
pub(crate) fn read_datagrams(
    s: &Socket,
    stop: &AtomicBool,
    what: &str,
    interface: &str,
    mut each: impl FnMut(&[u8]) -> bool,
) {
    // Allocated once: a raw socket delivers one datagram per read.
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        let n = match (&*s).read(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => {
                tracing::warn!(interface, "{what} receive: {e}");
                std::thread::sleep(READ_TIMEOUT);
                continue;
            }
        };
        if !each(&buf[..n]) {
            return;
        }
    }
}
