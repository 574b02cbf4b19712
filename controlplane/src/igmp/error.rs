//! Why an IGMP input was not (fully) acted on. Errors never stop the interface: the handler
//! counts them, calls [`Error::log`] and carries on with the rest of the message.

use std::net::Ipv4Addr;

use serde::Serialize;

use super::querier::{QuerierEvent, QuerierState};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
pub enum Error {
    // ----- packet input -----
    #[error("{kind} from {src} for {group}: not a multicast group")]
    NonMulticastGroup { src: Ipv4Addr, group: Ipv4Addr, kind: &'static str },
    #[error("{kind} from {src} for {group}: local network control block, not routed")]
    LinkLocalGroup { src: Ipv4Addr, group: Ipv4Addr, kind: &'static str },
    #[error("v3 record from {src} for {group}: unknown record type {code}")]
    UnknownRecordType { src: Ipv4Addr, group: Ipv4Addr, code: u8 },
    #[error("v3 record from {src} for {group}: source {bad_source} is not a unicast address")]
    InvalidSource { src: Ipv4Addr, group: Ipv4Addr, bad_source: Ipv4Addr },
    #[error("{kind} from {src} for {group}: group limit ({limit}) reached, not tracked")]
    GroupLimit { src: Ipv4Addr, group: Ipv4Addr, kind: &'static str, limit: usize },
    #[error("{kind} from {src} while IGMP is not running on the interface")]
    NotRunning { src: Ipv4Addr, kind: &'static str },
    // ----- state machines -----
    #[error("querier: event {event:?} unexpected in state {state:?}")]
    UnexpectedEvent { state: QuerierState, event: QuerierEvent },
}

impl Error {
    /// Logs the error with the interface as a structured field, at a level matching how
    /// interesting it is: link-local reports are routine (every host reports 224.0.0.22),
    /// malformed content is worth a warning.
    pub fn log(&self, interface: &str) {
        match self {
            Error::LinkLocalGroup { .. } | Error::NotRunning { .. } => {
                tracing::trace!(interface, "{self}");
            }
            Error::UnexpectedEvent { .. } | Error::GroupLimit { .. } => {
                tracing::debug!(interface, "{self}");
            }
            Error::NonMulticastGroup { .. }
            | Error::UnknownRecordType { .. }
            | Error::InvalidSource { .. } => tracing::warn!(interface, "{self}"),
        }
    }
}
