//! Querier election (RFC 3376 §6.6.2, RFC 2236 §7): who sends general queries on the link.
//!
//! ```text
//!            Start                        lower-address query heard
//!   Down ───────────────▶ Querier ──────────────────────────────▶ NonQuerier
//!    ▲   send GQ,          │  ▲  GQ timer: send GQ, re-arm      │   │  lower-address query:
//!    │   startup timers    │  │  (SQI × SQC-1, then QI)         │   │  re-arm OQP timer
//!    │                     │  └─────────────────────────────────┘   │
//!    │        Stop         │     OQP timer expired: send GQ         │
//!    └─────────────────────┴────────────────────────────────────────┘
//! ```
//!
//! Invariants: the general-query timer runs only in `Querier`, the Other Querier Present timer
//! only in `NonQuerier`; in `Down` both are stopped and no querier is known.

use std::net::Ipv4Addr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::config::Timing;
use super::error::Error;
use crate::timer::{Timer, Timestamp};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuerierState {
    #[default]
    Down,
    Querier,
    NonQuerier,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuerierEvent {
    Start,
    Stop,
    GeneralQueryTimerExpired,
    OtherQuerierTimerExpired,
    /// A query whose source address is lower than ours.
    LowerQuerierHeard(Ipv4Addr),
}

/// What the interface must do after a querier transition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct QuerierOutput {
    pub send_general_query: bool,
    /// Set when the role changed (the interface then drops or restores per-role state).
    pub new_role: Option<QuerierState>,
}

/// Startup parameters (RFC 3376 §8.6, §8.7), fixed by configuration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Startup {
    pub interval: Duration,
    pub count: u8,
}

#[derive(Clone, Debug, Default)]
#[expect(
    clippy::struct_field_names,
    reason = "`querier` and `other_querier` are the RFC's terms for these fields"
)]
pub(crate) struct Querier {
    pub state: QuerierState,
    /// The current querier's address (ours while `Querier`).
    pub querier: Option<Ipv4Addr>,
    pub general_query: Timer,
    pub other_querier: Timer,
    /// Startup queries still to send after the next one.
    startup_left: u8,
}

impl Querier {
    pub fn next_deadline(&self) -> Option<Timestamp> {
        crate::timer::earliest([self.general_query.deadline(), self.other_querier.deadline()])
    }

    pub fn handle(
        &mut self,
        now: Timestamp,
        event: QuerierEvent,
        own: Ipv4Addr,
        timing: &Timing,
        startup: Startup,
    ) -> Result<QuerierOutput, Error> {
        let mut out = QuerierOutput::default();
        match (self.state, event) {
            (QuerierState::Down, QuerierEvent::Start) => {
                self.become_querier(own, &mut out);
                self.startup_left = startup.count.saturating_sub(1);
                self.arm_general_query(now, timing, startup);
            }
            (QuerierState::Querier, QuerierEvent::GeneralQueryTimerExpired) => {
                out.send_general_query = true;
                self.startup_left = self.startup_left.saturating_sub(1);
                self.arm_general_query(now, timing, startup);
            }
            (
                QuerierState::Querier | QuerierState::NonQuerier,
                QuerierEvent::LowerQuerierHeard(src),
            ) => {
                if self.state == QuerierState::Querier {
                    out.new_role = Some(QuerierState::NonQuerier);
                }
                self.state = QuerierState::NonQuerier;
                self.querier = Some(src);
                self.general_query.stop();
                self.startup_left = 0;
                self.other_querier.start(now, timing.other_querier_present_interval());
            }
            (QuerierState::NonQuerier, QuerierEvent::OtherQuerierTimerExpired) => {
                self.other_querier.stop();
                self.become_querier(own, &mut out);
                self.startup_left = 0;
                self.general_query.start(now, timing.query_interval);
            }
            (QuerierState::Querier | QuerierState::NonQuerier, QuerierEvent::Stop) => {
                *self = Querier::default();
                out.new_role = Some(QuerierState::Down);
            }
            (state, event) => return Err(Error::UnexpectedEvent { state, event }),
        }
        Ok(out)
    }

    fn become_querier(&mut self, own: Ipv4Addr, out: &mut QuerierOutput) {
        self.state = QuerierState::Querier;
        self.querier = Some(own);
        out.send_general_query = true;
        out.new_role = Some(QuerierState::Querier);
    }

    fn arm_general_query(&mut self, now: Timestamp, timing: &Timing, startup: Startup) {
        let after = if self.startup_left > 0 { startup.interval } else { timing.query_interval };
        self.general_query.start(now, after);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::igmp::config::IgmpConfig;

    const OWN: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);

    fn setup() -> (Querier, Timing, Startup) {
        let config = IgmpConfig::default();
        let timing = Timing::new(&config, 2, config.query_interval);
        let startup = Startup { interval: Duration::from_millis(31_250), count: 2 };
        (Querier::default(), timing, startup)
    }

    #[test]
    fn unexpected_pairs_are_errors_not_panics() {
        let (mut q, timing, startup) = setup();
        let t0 = Timestamp::ZERO;
        let err = q.handle(t0, QuerierEvent::Stop, OWN, &timing, startup).unwrap_err();
        assert_eq!(
            err,
            Error::UnexpectedEvent { state: QuerierState::Down, event: QuerierEvent::Stop }
        );
        q.handle(t0, QuerierEvent::Start, OWN, &timing, startup).unwrap();
        assert!(q
            .handle(t0, QuerierEvent::OtherQuerierTimerExpired, OWN, &timing, startup)
            .is_err());
        assert!(q.handle(t0, QuerierEvent::Start, OWN, &timing, startup).is_err());
    }

    #[test]
    fn startup_then_regular_interval() {
        let (mut q, timing, startup) = setup();
        let out = q.handle(Timestamp::ZERO, QuerierEvent::Start, OWN, &timing, startup).unwrap();
        assert!(out.send_general_query);
        assert_eq!(q.general_query.deadline(), Some(Timestamp::from_millis(31_250)));
        let t1 = Timestamp::from_millis(31_250);
        q.handle(t1, QuerierEvent::GeneralQueryTimerExpired, OWN, &timing, startup).unwrap();
        assert_eq!(q.general_query.deadline(), Some(Timestamp::from_millis(31_250 + 125_000)));
    }
}
