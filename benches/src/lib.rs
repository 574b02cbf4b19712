//! Shared fixtures for the criterion benchmarks: ready-to-run routers on loopback ports, so each
//! bench measures one pipeline operation with every buffer allocated before timing starts.
//!
//! Sizes are Ethernet frame lengths without FCS (64 B = the minimum frame: 14 Ethernet + 20 IPv4
//! + 8 UDP + 22 payload bytes).

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use dataplane::iface::{InterfaceTable, PortId};
use dataplane::loopback::testing::{interfaces, UdpFrame};
use dataplane::loopback::LoopbackPorts;
use dataplane::mfib::{
    IfIndex, Mfib, MfibHandle, MfibRoute, MfibUpdate, Neighbor, Oif, OverlayRoute,
};
use dataplane::overlay::{OverlayConfig, OverlayKey};
use dataplane::pipeline::{Outcome, Pipeline, PipelineConfig};
use dataplane::stats::LocalStats;

/// Source of the benchmark stream.
pub const SOURCE: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
/// Group of the benchmark stream.
pub const GROUP: Ipv4Addr = Ipv4Addr::new(239, 1, 2, 3);
/// Overlay origin configured on the encapsulating router.
pub const ORIGIN: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const ETH_IP_UDP: usize = 14 + 20 + 8;

/// A router with its MFIB snapshot loaded, as a worker holds it during a batch.
#[derive(Debug)]
pub struct Router {
    pub ifaces: InterfaceTable,
    pub mfib: Arc<Mfib>,
    pub pipeline: Pipeline,
    pub tx: LoopbackPorts,
    pub stats: LocalStats,
}

impl Router {
    fn new(ifaces: InterfaceTable, config: &PipelineConfig, updates: &[MfibUpdate]) -> Self {
        let handle = MfibHandle::new();
        handle.apply(updates, &ifaces).expect("benchmark routes are valid");
        Self {
            pipeline: Pipeline::new(config, ifaces.clone()).expect("benchmark config is valid"),
            mfib: handle.load(),
            ifaces,
            tx: LoopbackPorts::new(64, 2048),
            stats: LocalStats::new(),
        }
    }

    /// Processes one frame received on port 0 and completes the copies (one pipeline step).
    #[inline]
    pub fn step(&mut self, frame: &[u8]) -> Outcome {
        let out = self.pipeline.process(
            &self.mfib,
            PortId(0),
            frame,
            Duration::ZERO,
            &mut self.tx,
            &mut self.stats,
        );
        self.tx.clear();
        out
    }

    /// Runs `frame` once and returns the first transmitted copy (to build chained fixtures).
    pub fn first_copy(&mut self, frame: &[u8]) -> Vec<u8> {
        self.pipeline.process(
            &self.mfib,
            PortId(0),
            frame,
            Duration::ZERO,
            &mut self.tx,
            &mut self.stats,
        );
        let copy = self.tx.sent().next().map(|(_, b)| b.to_vec()).unwrap_or_default();
        self.tx.clear();
        copy
    }
}

/// A multicast frame of `size` bytes (Ethernet, no FCS) from [`SOURCE`] to [`GROUP`], TTL 64.
pub fn frame_of_size(size: usize) -> Vec<u8> {
    UdpFrame::multicast(SOURCE, GROUP, 64, size.saturating_sub(ETH_IP_UDP)).build()
}

fn oif(ifaces: &InterfaceTable, port: u16) -> Oif {
    Oif { ifindex: ifaces.get(PortId(port)).map_or(IfIndex(0), |i| i.ifindex), ttl_threshold: 1 }
}

/// Native replication: (S,G) from port 0 to ports `1..=fanout`.
pub fn native_router(fanout: usize) -> Router {
    let ifaces = interfaces(fanout + 1);
    let route = MfibRoute {
        source: Some(SOURCE),
        group: GROUP,
        iif: oif(&ifaces, 0).ifindex,
        oifs: (1..=fanout).map(|p| oif(&ifaces, p as u16)).collect(),
        overlay_next_hops: vec![],
    };
    Router::new(ifaces, &PipelineConfig::default(), &[MfibUpdate::Install(route)])
}

fn overlay_config(auth: bool) -> PipelineConfig {
    let keys = if auth {
        vec![OverlayKey { id: 1, secret: b"benchmark key, 32 bytes, secret!".to_vec() }]
    } else {
        vec![]
    };
    PipelineConfig {
        overlay: OverlayConfig { origin: Some(ORIGIN), keys, ..OverlayConfig::default() },
        ..PipelineConfig::default()
    }
}

/// Overlay encapsulation: (S,G) from port 0 to `next_hops` overlay neighbours on port 1.
pub fn encap_router(next_hops: usize, auth: bool) -> Router {
    let ifaces = interfaces(2);
    let hops: Vec<Ipv4Addr> =
        (0..next_hops).map(|i| Ipv4Addr::new(10, 0, 1, 10 + i as u8)).collect();
    let mut updates = vec![MfibUpdate::Install(MfibRoute {
        source: Some(SOURCE),
        group: GROUP,
        iif: oif(&ifaces, 0).ifindex,
        oifs: vec![],
        overlay_next_hops: hops.clone(),
    })];
    for (i, addr) in hops.iter().enumerate() {
        updates.push(MfibUpdate::SetNeighbor(Neighbor {
            addr: *addr,
            ifindex: oif(&ifaces, 1).ifindex,
            mac: [0x02, 0, 0, 0, 0x02, i as u8],
        }));
    }
    Router::new(ifaces, &overlay_config(auth), &updates)
}

/// Overlay receive: a router whose port 0 address is the next hop of [`encap_router`]'s first
/// neighbour, delivering the inner datagram natively on port 1. Returns it with an encapsulated
/// frame of `size` inner-frame bytes.
pub fn decap_router(size: usize, auth: bool) -> (Router, Vec<u8>) {
    let encapsulated = encap_router(1, auth).first_copy(&frame_of_size(size));
    let mut ifaces = InterfaceTable::new();
    let template = interfaces(2);
    for (port, addr) in [(0u16, Ipv4Addr::new(10, 0, 1, 10)), (1, Ipv4Addr::new(10, 5, 0, 1))] {
        if let Some(i) = template.get(PortId(port)) {
            let added = ifaces.add(dataplane::iface::Interface { ipv4: addr, ..i.clone() });
            assert!(added.is_ok(), "{added:?}");
        }
    }
    let route = OverlayRoute {
        origin: ORIGIN,
        group: GROUP,
        from: None,
        deliver: vec![oif(&ifaces, 1)],
        next_hops: vec![],
    };
    (Router::new(ifaces, &overlay_config(auth), &[MfibUpdate::InstallOverlay(route)]), encapsulated)
}

/// An MFIB of `n` (S,G) routes (distinct sources and groups) on 4 ports, and their keys.
pub fn mfib_with_routes(n: usize) -> (Arc<Mfib>, Vec<(Ipv4Addr, Ipv4Addr)>) {
    let ifaces = interfaces(4);
    let keys: Vec<(Ipv4Addr, Ipv4Addr)> = (0..n as u32)
        .map(|i| {
            (Ipv4Addr::from(0x0a00_0000 + i * 7), Ipv4Addr::from(0xef00_0000 + (i % 251) * 65_537))
        })
        .collect();
    let updates: Vec<MfibUpdate> = keys
        .iter()
        .map(|(s, g)| {
            MfibUpdate::Install(MfibRoute {
                source: Some(*s),
                group: *g,
                iif: oif(&ifaces, 0).ifindex,
                oifs: vec![oif(&ifaces, 1), oif(&ifaces, 2)],
                overlay_next_hops: vec![],
            })
        })
        .collect();
    let handle = MfibHandle::new();
    handle.apply(&updates, &ifaces).expect("benchmark routes are valid");
    (handle.load(), keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The fixtures must do what the bench names claim, or the numbers mean nothing.
    #[test]
    fn fixtures_forward_what_they_claim() {
        let mut r = native_router(4);
        assert_eq!(frame_of_size(64).len(), 64);
        assert_eq!(r.step(&frame_of_size(64)), Outcome::Forwarded { copies: 4 });
        let mut e = encap_router(2, true);
        assert_eq!(e.step(&frame_of_size(512)), Outcome::Forwarded { copies: 2 });
        for auth in [false, true] {
            let (mut d, frame) = decap_router(512, auth);
            assert!(!frame.is_empty());
            assert_eq!(d.step(&frame), Outcome::Forwarded { copies: 1 });
        }
        let (mfib, keys) = mfib_with_routes(1000);
        assert_eq!(mfib.len(), 1000);
        assert!(keys.iter().all(|(s, g)| mfib.lookup(*s, *g).is_some()));
    }
}

/// Criterion measurement of the benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`)
/// instead of wall time. On a shared machine the wall clock also counts the time the thread
/// waited for a core; CPU time does not, so it is the cost of the code itself. Select it with
/// `FANOUT_BENCH_CPU_TIME=1`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadCpuTime;

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID exists on every Linux
    // since 2.6.12, and on failure `ts` stays zero (a zero reading, not undefined behaviour).
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

impl criterion::measurement::Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }

    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }

    fn formatter(&self) -> &dyn criterion::measurement::ValueFormatter {
        &NanosFormatter
    }
}

/// Formats CPU nanoseconds like criterion's wall-time formatter (ns, elements or bytes per s).
struct NanosFormatter;

impl criterion::measurement::ValueFormatter for NanosFormatter {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if typical < 1e3 {
            (1.0, "ns (cpu)")
        } else if typical < 1e6 {
            (1e-3, "µs (cpu)")
        } else {
            (1e-6, "ms (cpu)")
        };
        for v in values.iter_mut() {
            *v *= factor;
        }
        unit
    }

    fn scale_throughputs(
        &self,
        _typical: f64,
        throughput: &criterion::Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let (per_iter, unit) = match *throughput {
            criterion::Throughput::Elements(n) => (n as f64, "Melem/s (cpu)"),
            criterion::Throughput::Bytes(n) | criterion::Throughput::BytesDecimal(n) => {
                (n as f64, "MB/s (cpu)")
            }
        };
        // Values are ns per iteration: per-iteration units × 1e9 / ns, shown in millions.
        for v in values.iter_mut() {
            *v = per_iter * 1e3 / *v;
        }
        unit
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}
