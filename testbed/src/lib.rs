//! fanout testbed: declarative netns/veth topologies, a multicast traffic generator and
//! receivers, per-link counters, the Linux ipmr baseline and the fanoutd driver, and the
//! experiment runner (`bench`, `demo`).
//!
//! Module map:
//! - [`netns`]: namespace RAII guard, closures and commands inside a namespace
//! - [`topology`]: TOML model, validation, built-ins, derived plan (routes, multicast tree)
//! - [`run`]: run ids and the state file that makes `down` of a crashed run work
//! - [`bringup`]: creates namespaces, veths, addresses, routes, neighbours; the [`bringup::Lab`] guard
//! - [`kernel_router`], [`fanoutd`]: what runs on routers
//! - [`traffic`]: generator and receivers; [`counters`]: per-link stats
//! - [`check`]: FRR-style `json_cmp` expected-subset comparison and `run_and_expect` polling
//! - [`experiment`]: traffic runs over a lab, `bench` and `demo`; [`report`]: tables and JSON

pub mod bringup;
pub mod check;
pub mod cmd;
pub mod counters;
pub mod experiment;
pub mod fanoutd;
pub mod inject;
pub mod kernel_router;
pub mod netns;
pub mod report;
pub mod run;
pub mod simulate;
pub mod topology;
pub mod traffic;
