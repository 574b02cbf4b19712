//! fanout testbed: declarative netns/veth topologies, a multicast traffic generator and
//! receivers, per-link counters, the Linux ipmr baseline and the fanoutd driver, and the
//! experiment runner (`bench`, `demo`).
//!
//! Module map:
//! - [`netns`] (crate `fanout-netns`): namespace RAII guard, closures and commands inside a
//!   namespace, the [`netns::testnet::TestNet`] harness for privileged tests
//! - [`topology`]: TOML model, validation, built-ins, derived plan (routes, multicast tree)
//! - [`run`]: run ids and the state file that makes `down` of a crashed run work
//! - [`bringup`]: creates namespaces, veths, addresses, routes, neighbours; the [`bringup::Lab`] guard
//! - [`kernel_router`], [`fanoutd`]: what runs on routers
//! - [`traffic`]: generator and receivers; [`counters`]: per-link stats
//! - [`check`]: FRR-style `json_cmp` expected-subset comparison and `run_and_expect` polling
//! - [`scenario`]: a background stream, members that join/leave with timestamps, data-plane
//!   link counters (for timed fault and membership scenarios)
//! - [`experiment`]: traffic runs over a lab, `bench` and `demo`; [`report`]: tables and JSON
//! - [`overlay_hosts`]: fanoutd in routing mode overlay on a lab's hosts (start, kill, restart)
//! - [`compare`]: IP vs overlay multicast on one topology, measured per mode (`compare`)

// Namespaces and external commands live in the leaf crate `fanout-netns` (testbed/netns), which
// the data-plane and control-plane tests use too; re-exported so paths stay `testbed::netns`.
pub use ::netns::{self, cmd};

pub mod bringup;
pub mod check;
pub mod compare;
pub mod counters;
pub mod experiment;
pub mod fanoutd;
pub mod inject;
pub mod kernel_router;
pub mod overlay_hosts;
pub mod report;
pub mod run;
pub mod scenario;
pub mod simulate;
pub mod topology;
pub mod traffic;
