//! fanout's data plane.
//!
//! ```text
//!   NIC queue ──XDP (bpf/fanout_xdp.bpf.c)──► XSKMAP ──► AF_XDP socket (xsk)
//!                  │ control traffic, unicast, ARP: XDP_PASS to the kernel
//!                  ▼
//!   worker (one per queue) : rx batch ─► pipeline::process ─► TxSink (UMEM frames) ─► tx batch
//!                                 │            │
//!                                 │            └── MFIB snapshot (arc-swap), updated by
//!                                 │                MfibUpdate messages from the control plane
//!                                 └── drop counters by reason (stats), punts to the control plane
//! ```
//!
//! The pipeline is pure: it reads a frame and writes copies through a [`pipeline::TxSink`], so it
//! is tested on the in-memory [`loopback`] port without root. Only [`xsk`] touches the kernel
//! rings and holds the crate's `unsafe`.

pub mod bpf;
pub mod iface;
pub mod loopback;
pub mod mfib;
pub mod overlay;
pub mod pipeline;
pub mod stats;
pub mod tap;
pub mod worker;
pub mod xsk;
