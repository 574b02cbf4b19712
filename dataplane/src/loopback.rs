//! An in-memory port set implementing [`TxSink`], plus test-frame builders ([`testing`]), so the
//! pipeline is exercised by tests and benches without root, kernel rings or NICs.
//!
//! [`LoopbackPorts`] pre-allocates its frame pool (poisoned with `0xa5`, so bytes a writer
//! forgot show up in assertions) and records every transmitted `(port, bytes)` in order.
//! Invariants: at most `frames` copies are outstanding until [`LoopbackPorts::clear`] (the
//! "completion"), at most `ring_capacity` per port; transmitting never allocates.

use crate::iface::{PortId, MAX_PORTS};
use crate::pipeline::TxSink;
use crate::stats::DropReason;

const POISON: u8 = 0xa5;

#[derive(Debug, Clone, Copy)]
struct Sent {
    port: PortId,
    offset: usize,
    len: usize,
}

/// In-memory transmit side of a set of ports.
#[derive(Debug, Clone)]
pub struct LoopbackPorts {
    frame_size: usize,
    pool: Vec<u8>,
    sent: Vec<Sent>,
    frames: usize,
    ring_capacity: usize,
    queued: [usize; MAX_PORTS],
}

impl LoopbackPorts {
    /// A pool of `frames` buffers of `frame_size` bytes; per-port rings as deep as the pool.
    pub fn new(frames: usize, frame_size: usize) -> Self {
        Self {
            frame_size,
            pool: vec![POISON; frames * frame_size],
            sent: Vec::with_capacity(frames),
            frames,
            ring_capacity: frames,
            queued: [0; MAX_PORTS],
        }
    }

    /// Limits each port's TX ring to `per_port` outstanding frames (to provoke `tx_ring_full`).
    pub fn with_ring_capacity(mut self, per_port: usize) -> Self {
        self.ring_capacity = per_port;
        self
    }

    /// Everything transmitted since the last [`clear`](Self::clear), in order.
    pub fn sent(&self) -> impl Iterator<Item = (PortId, &[u8])> + '_ {
        self.sent.iter().map(|s| (s.port, self.pool.get(s.offset..s.offset + s.len).unwrap_or(&[])))
    }

    /// Frames transmitted on one port.
    pub fn sent_on(&self, port: PortId) -> impl Iterator<Item = &[u8]> + '_ {
        self.sent().filter(move |(p, _)| *p == port).map(|(_, b)| b)
    }

    pub fn len(&self) -> usize {
        self.sent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sent.is_empty()
    }

    /// Completes every outstanding frame: buffers return to the pool (re-poisoned in debug
    /// builds only, to keep benches measuring the pipeline rather than the memset).
    pub fn clear(&mut self) {
        if cfg!(debug_assertions) {
            for s in &self.sent {
                if let Some(b) = self.pool.get_mut(s.offset..s.offset + s.len) {
                    b.fill(POISON);
                }
            }
        }
        self.sent.clear();
        self.queued = [0; MAX_PORTS];
    }
}

impl TxSink for LoopbackPorts {
    #[inline]
    fn transmit<F: FnOnce(&mut [u8])>(
        &mut self,
        port: PortId,
        len: usize,
        fill: F,
    ) -> Result<(), DropReason> {
        // A frame larger than a pool buffer cannot be sent by any port of this set.
        if len > self.frame_size {
            return Err(DropReason::TooBig);
        }
        // Same order as a UMEM port: first a free frame, then a slot in the port's TX ring.
        if self.sent.len() >= self.frames {
            return Err(DropReason::NoFrame);
        }
        let queued = self.queued.get_mut(port.index()).ok_or(DropReason::NoFrame)?;
        if *queued >= self.ring_capacity {
            return Err(DropReason::TxRingFull);
        }
        let offset = self.sent.len() * self.frame_size;
        let buf = self.pool.get_mut(offset..offset + len).ok_or(DropReason::NoFrame)?;
        fill(buf);
        *queued += 1;
        self.sent.push(Sent { port, offset, len });
        Ok(())
    }
}

/// Frame builders shared by tests, benches and the AF_XDP tests (one copy for all).
pub mod testing {
    use std::net::Ipv4Addr;

    use wire::ethernet::{EtherType, EthernetAddress, EthernetFrame};
    use wire::ipv4::{Ipv4Packet, Protocol};
    use wire::udp::UdpPacket;

    use crate::iface::{Interface, InterfaceTable};
    use crate::mfib::IfIndex;

    /// A UDP-in-IPv4 multicast datagram to build.
    #[derive(Debug, Clone, Copy)]
    pub struct UdpFrame {
        pub src_mac: EthernetAddress,
        pub src: Ipv4Addr,
        pub dst: Ipv4Addr,
        pub ttl: u8,
        pub src_port: u16,
        pub dst_port: u16,
        pub payload_len: usize,
    }

    impl UdpFrame {
        /// A datagram from `src` to `group` with a counting-pattern payload.
        pub fn multicast(src: Ipv4Addr, group: Ipv4Addr, ttl: u8, payload_len: usize) -> Self {
            Self {
                src_mac: EthernetAddress([0x02, 0, 0, 0, 0, 0x01]),
                src,
                dst: group,
                ttl,
                src_port: 5000,
                dst_port: 5001,
                payload_len,
            }
        }

        /// Length of the IPv4 datagram.
        pub fn ip_len(&self) -> usize {
            20 + 8 + self.payload_len
        }

        /// The Ethernet frame (destination MAC per RFC 1112 for multicast destinations), with a
        /// counting-pattern payload of `payload_len` bytes.
        pub fn build(&self) -> Vec<u8> {
            let payload: Vec<u8> = (0..self.payload_len).map(|i| i as u8).collect();
            self.build_with(&payload)
        }

        /// The Ethernet frame carrying `payload` as UDP payload (`payload_len` is ignored).
        pub fn build_with(&self, payload: &[u8]) -> Vec<u8> {
            let f = UdpFrame { payload_len: payload.len(), ..*self };
            let mut buf = vec![0u8; 14 + f.ip_len()];
            let (eth, ip) = buf.split_at_mut(14);
            let mut frame = EthernetFrame::new_unchecked(eth);
            let dst_mac = if self.dst.is_multicast() {
                EthernetAddress::from_ipv4_multicast(self.dst)
            } else {
                EthernetAddress([0x02, 0, 0, 0, 0, 0xfe])
            };
            frame.set_dst_addr(dst_mac);
            frame.set_src_addr(self.src_mac);
            frame.set_ethertype(EtherType::Ipv4);
            write_ipv4_udp(ip, &f, payload);
            buf
        }
    }

    fn write_ipv4_udp(ip: &mut [u8], f: &UdpFrame, payload: &[u8]) {
        let total = f.ip_len();
        {
            let (_, udp) = ip.split_at_mut(20);
            let mut u = UdpPacket::new_unchecked(&mut *udp);
            u.set_src_port(f.src_port);
            u.set_dst_port(f.dst_port);
            u.set_len((8 + f.payload_len) as u16);
            u.payload_mut().copy_from_slice(payload);
            u.fill_checksum(f.src, f.dst);
        }
        let mut p = Ipv4Packet::new_unchecked(ip);
        p.set_version(4);
        p.set_header_len(20);
        p.set_dscp_ecn(0);
        p.set_total_len(total as u16);
        p.set_ident(0x1234);
        p.clear_flags();
        p.set_dont_frag(false);
        p.set_more_frags(false);
        p.set_frag_offset(0);
        p.set_ttl(f.ttl);
        p.set_next_header(Protocol::Udp);
        p.set_src_addr(f.src);
        p.set_dst_addr(f.dst);
        p.fill_checksum();
    }

    /// An interface table of `n` ports: ifindex `10 + i`, name `p<i>`, MAC `02:00:00:00:01:<i>`,
    /// address `10.0.<i>.1`, MTU 1500.
    pub fn interfaces(n: usize) -> InterfaceTable {
        let mut t = InterfaceTable::new();
        for i in 0..n {
            let added = t.add(Interface {
                ifindex: IfIndex(10 + i as u32),
                name: format!("p{i}"),
                mac: EthernetAddress([0x02, 0, 0, 0, 0x01, i as u8]),
                ipv4: Ipv4Addr::new(10, 0, i as u8, 1),
                mtu: 1500,
            });
            assert!(added.is_ok(), "testing::interfaces({n}): {added:?}");
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_produce_the_right_reasons() {
        let mut ports = LoopbackPorts::new(3, 64).with_ring_capacity(2);
        assert_eq!(ports.transmit(PortId(0), 65, |_| {}), Err(DropReason::TooBig));
        ports.transmit(PortId(0), 4, |b| b.copy_from_slice(&[1, 2, 3, 4])).unwrap();
        ports.transmit(PortId(0), 2, |b| b.fill(9)).unwrap();
        assert_eq!(ports.transmit(PortId(0), 2, |_| {}), Err(DropReason::TxRingFull));
        ports.transmit(PortId(1), 1, |b| b.fill(7)).unwrap();
        assert_eq!(ports.transmit(PortId(2), 1, |_| {}), Err(DropReason::NoFrame));
        assert_eq!(ports.transmit(PortId(MAX_PORTS as u16), 1, |_| {}), Err(DropReason::NoFrame));
        let sent: Vec<_> = ports.sent().collect();
        assert_eq!(
            sent,
            [(PortId(0), &[1u8, 2, 3, 4][..]), (PortId(0), &[9, 9][..]), (PortId(1), &[7][..])]
        );
        assert_eq!(ports.sent_on(PortId(1)).count(), 1);
        ports.clear();
        assert!(ports.is_empty());
        ports.transmit(PortId(0), 3, |_| {}).unwrap();
        assert_eq!(ports.sent().next().unwrap().1, &[POISON; 3], "unwritten bytes stay poisoned");
    }
}
