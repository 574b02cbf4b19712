//! fanout's control plane: protocol cores as pure state machines (events in, actions out, time
//! passed in), and the daemon runtime that owns sockets and programs the data plane through
//! [`dataplane_api::MfibUpdate`] messages.

pub mod config;
pub mod ctl;
pub mod daemon;
pub mod dvmrp;
pub mod igmp;
pub mod linkstate;
pub mod metrics;
pub mod overlay;
pub mod table;
pub mod timer;
