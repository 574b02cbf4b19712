//! The data plane's view of its interfaces: a dense [`PortId`] per interface the workers own.
//!
//! The control plane names interfaces by kernel [`IfIndex`]; the hot path indexes fixed-size
//! per-port arrays (counters, TX batches) by [`PortId`]. [`InterfaceTable`] is the one place that
//! maps between them.
//!
//! Invariants: port ids are `0..len()` in insertion order and never reused; at most
//! [`MAX_PORTS`] interfaces; ifindexes, names and IPv4 addresses are unique within a table.

use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use wire::ethernet::EthernetAddress;

use crate::mfib::IfIndex;

/// Upper bound on data-plane ports, so per-port state in the hot path is a fixed-size array.
pub const MAX_PORTS: usize = 64;

/// Dense index of a data-plane port (`0..MAX_PORTS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortId(pub u16);

impl PortId {
    /// The port as an array index.
    #[inline]
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl fmt::Display for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "port{}", self.0)
    }
}

/// One interface the data plane forwards on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub ifindex: IfIndex,
    pub name: String,
    pub mac: EthernetAddress,
    /// The interface's primary IPv4 address: outer source of overlay packets sent here, and an
    /// address overlay packets are accepted on.
    pub ipv4: Ipv4Addr,
    /// IP MTU (the Ethernet payload size), as the kernel reports it.
    pub mtu: u16,
}

/// Why an interface could not be added to an [`InterfaceTable`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IfaceError {
    #[error("interface table is full ({MAX_PORTS} ports); cannot add {name}")]
    Full { name: String },
    #[error("interface {name}: ifindex {} is already in the table", ifindex.0)]
    DuplicateIfIndex { name: String, ifindex: IfIndex },
    #[error("interface name {name} is already in the table")]
    DuplicateName { name: String },
    #[error("interface {name}: address {addr} is already used by another port")]
    DuplicateAddress { name: String, addr: Ipv4Addr },
    #[error("interface {name}: MTU {mtu} is below the IPv4 minimum of 68")]
    MtuTooSmall { name: String, mtu: u16 },
    #[error("interface {name}: {port} is not in the table")]
    UnknownPort { name: String, port: PortId },
}

/// The interfaces of one data plane, indexed by [`PortId`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceTable {
    ports: Vec<Interface>,
}

impl InterfaceTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an interface and returns its port id (the next dense index).
    pub fn add(&mut self, iface: Interface) -> Result<PortId, IfaceError> {
        if self.ports.len() >= MAX_PORTS {
            return Err(IfaceError::Full { name: iface.name });
        }
        // RFC 791: every host must accept 68-byte datagrams; below that nothing can be forwarded.
        if iface.mtu < 68 {
            return Err(IfaceError::MtuTooSmall { name: iface.name, mtu: iface.mtu });
        }
        if self.ports.iter().any(|p| p.ifindex == iface.ifindex) {
            return Err(IfaceError::DuplicateIfIndex { ifindex: iface.ifindex, name: iface.name });
        }
        if self.ports.iter().any(|p| p.name == iface.name) {
            return Err(IfaceError::DuplicateName { name: iface.name });
        }
        if !iface.ipv4.is_unspecified() && self.ports.iter().any(|p| p.ipv4 == iface.ipv4) {
            return Err(IfaceError::DuplicateAddress { addr: iface.ipv4, name: iface.name });
        }
        let id = PortId(self.ports.len() as u16);
        self.ports.push(iface);
        Ok(id)
    }

    /// Gives port `port` a new identity: the interface reappeared (a new ifindex, maybe a new
    /// MAC or address) under the same configured name. The port id stays, so compiled routes
    /// keep pointing at it. The same uniqueness rules as [`InterfaceTable::add`] apply against
    /// the other ports.
    pub fn replace(&mut self, port: PortId, iface: Interface) -> Result<(), IfaceError> {
        if port.index() >= self.ports.len() {
            return Err(IfaceError::UnknownPort { name: iface.name, port });
        }
        if iface.mtu < 68 {
            return Err(IfaceError::MtuTooSmall { name: iface.name, mtu: iface.mtu });
        }
        let others = || self.iter().filter(|(p, _)| *p != port).map(|(_, i)| i);
        if others().any(|p| p.ifindex == iface.ifindex) {
            return Err(IfaceError::DuplicateIfIndex { ifindex: iface.ifindex, name: iface.name });
        }
        if others().any(|p| p.name == iface.name) {
            return Err(IfaceError::DuplicateName { name: iface.name });
        }
        if !iface.ipv4.is_unspecified() && others().any(|p| p.ipv4 == iface.ipv4) {
            return Err(IfaceError::DuplicateAddress { addr: iface.ipv4, name: iface.name });
        }
        self.ports[port.index()] = iface;
        Ok(())
    }

    /// The interface behind a port.
    #[inline]
    pub fn get(&self, port: PortId) -> Option<&Interface> {
        self.ports.get(port.index())
    }

    /// The port of a kernel interface.
    pub fn port_of(&self, ifindex: IfIndex) -> Option<PortId> {
        self.ports.iter().position(|p| p.ifindex == ifindex).map(|i| PortId(i as u16))
    }

    /// The port of an interface name.
    pub fn port_by_name(&self, name: &str) -> Option<PortId> {
        self.ports.iter().position(|p| p.name == name).map(|i| PortId(i as u16))
    }

    /// The port owning a local IPv4 address (overlay packets must be addressed to one of them).
    /// A linear scan: tables hold a handful of ports and the scan touches one cache line each.
    #[inline]
    pub fn port_by_addr(&self, addr: Ipv4Addr) -> Option<PortId> {
        self.ports.iter().position(|p| p.ipv4 == addr).map(|i| PortId(i as u16))
    }

    pub fn iter(&self) -> impl Iterator<Item = (PortId, &Interface)> {
        self.ports.iter().enumerate().map(|(i, p)| (PortId(i as u16), p))
    }

    pub fn len(&self) -> usize {
        self.ports.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(ifindex: u32, name: &str, addr: [u8; 4]) -> Interface {
        Interface {
            ifindex: IfIndex(ifindex),
            name: name.to_owned(),
            mac: EthernetAddress([2, 0, 0, 0, 0, ifindex as u8]),
            ipv4: Ipv4Addr::from(addr),
            mtu: 1500,
        }
    }

    #[test]
    fn ports_are_dense_and_mapped_both_ways() {
        let mut t = InterfaceTable::new();
        assert_eq!(t.add(iface(7, "a", [10, 0, 0, 1])), Ok(PortId(0)));
        assert_eq!(t.add(iface(3, "b", [10, 0, 1, 1])), Ok(PortId(1)));
        assert_eq!(t.port_of(IfIndex(3)), Some(PortId(1)));
        assert_eq!(t.port_of(IfIndex(4)), None);
        assert_eq!(t.port_by_name("a"), Some(PortId(0)));
        assert_eq!(t.port_by_addr(Ipv4Addr::new(10, 0, 1, 1)), Some(PortId(1)));
        assert_eq!(t.get(PortId(0)).map(|i| i.ifindex), Some(IfIndex(7)));
        assert!(t.get(PortId(2)).is_none());
        let ids: Vec<_> = t.iter().map(|(p, _)| p).collect();
        assert_eq!(ids, [PortId(0), PortId(1)]);
    }

    #[test]
    fn duplicates_and_overflow_are_typed_errors() {
        let mut t = InterfaceTable::new();
        t.add(iface(1, "a", [10, 0, 0, 1])).unwrap();
        assert!(matches!(
            t.add(iface(1, "x", [10, 0, 0, 2])),
            Err(IfaceError::DuplicateIfIndex { .. })
        ));
        assert!(matches!(
            t.add(iface(2, "a", [10, 0, 0, 2])),
            Err(IfaceError::DuplicateName { .. })
        ));
        assert!(matches!(
            t.add(iface(2, "b", [10, 0, 0, 1])),
            Err(IfaceError::DuplicateAddress { .. })
        ));
        let mut small = iface(2, "b", [10, 0, 0, 2]);
        small.mtu = 60;
        assert!(matches!(t.add(small), Err(IfaceError::MtuTooSmall { .. })));
        for i in 1..MAX_PORTS as u32 {
            t.add(iface(100 + i, &format!("p{i}"), [10, 1, (i >> 8) as u8, i as u8])).unwrap();
        }
        assert_eq!(t.len(), MAX_PORTS);
        let err = t.add(iface(999, "last", [10, 9, 9, 9])).unwrap_err();
        assert_eq!(err, IfaceError::Full { name: "last".into() });
    }

    #[test]
    fn replace_keeps_the_port_and_checks_the_others() {
        let mut t = InterfaceTable::new();
        t.add(iface(7, "a", [10, 0, 0, 1])).unwrap();
        t.add(iface(3, "b", [10, 0, 1, 1])).unwrap();
        // "b" came back with a new ifindex and the same address.
        t.replace(PortId(1), iface(12, "b", [10, 0, 1, 1])).unwrap();
        assert_eq!(t.port_of(IfIndex(12)), Some(PortId(1)));
        assert_eq!(t.port_of(IfIndex(3)), None);
        assert!(matches!(
            t.replace(PortId(1), iface(7, "b", [10, 0, 1, 1])),
            Err(IfaceError::DuplicateIfIndex { .. })
        ));
        assert!(matches!(
            t.replace(PortId(1), iface(13, "b", [10, 0, 0, 1])),
            Err(IfaceError::DuplicateAddress { .. })
        ));
        assert!(matches!(
            t.replace(PortId(2), iface(14, "c", [10, 0, 2, 1])),
            Err(IfaceError::UnknownPort { .. })
        ));
        assert_eq!(t.get(PortId(1)).map(|i| i.ifindex), Some(IfIndex(12)));
    }
}
