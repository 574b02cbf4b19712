//! The neighbour state machine, as a pure `match (state, event)` (STYLE.md principle 6).
//!
//! ```text
//!            hello (does not list us)            hello (lists us)
//!   Down ─────────────────────────────> Init ─────────────────────> Exchange
//!    │                                   ^  <──── hello without us ───┘ │ │
//!    │  hello (lists us)                 │                              │ │ all of our database
//!    └───────────────────────────────────┼──────────────────────────────┘ │ acknowledged
//!                                        └──── hello without us ── Full <─┘
//!   any state ── dead interval expired / interface down ──> Down (neighbour deleted)
//! ```
//!
//! Invariants: a neighbour in `Exchange` or `Full` has confirmed two-way connectivity (its last
//! hello listed us) and receives every LSA we flood; only `Full` neighbours appear as links in
//! our router LSA, so a link enters the topology only once both databases are synchronised.

use serde::{Deserialize, Serialize};

/// The state of one neighbour on one interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Down,
    /// Heard, but its hellos do not list us yet.
    Init,
    /// Two-way; our whole database is being sent to it and we wait for its acks.
    Exchange,
    /// Two-way and our database is acknowledged.
    Full,
}

impl State {
    /// Whether LSAs are flooded to (and accepted from) a neighbour in this state.
    pub fn floods(self) -> bool {
        matches!(self, State::Exchange | State::Full)
    }
}

/// What happened to a neighbour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Event {
    /// A hello; `lists_us`: whether its neighbour list holds our router id.
    Hello {
        lists_us: bool,
    },
    /// Every LSA of the initial exchange was acknowledged.
    ExchangeDone,
    DeadTimerExpired,
    InterfaceDown,
}

/// An event that cannot happen in a state (a bug of the caller, reported rather than panicking).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("neighbour event {event:?} unexpected in state {state:?}")]
pub struct UnexpectedEvent {
    pub state: State,
    pub event: Event,
}

/// The state after `event` in `state`.
pub fn next(state: State, event: Event) -> Result<State, UnexpectedEvent> {
    Ok(match (state, event) {
        (_, Event::DeadTimerExpired | Event::InterfaceDown) => State::Down,
        (_, Event::Hello { lists_us: false }) => State::Init,
        (State::Down | State::Init, Event::Hello { lists_us: true }) => State::Exchange,
        (s @ (State::Exchange | State::Full), Event::Hello { lists_us: true }) => s,
        (State::Exchange, Event::ExchangeDone) => State::Full,
        (state @ (State::Down | State::Init | State::Full), event @ Event::ExchangeDone) => {
            return Err(UnexpectedEvent { state, event })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions() {
        let two_way = Event::Hello { lists_us: true };
        let one_way = Event::Hello { lists_us: false };
        assert_eq!(next(State::Down, one_way), Ok(State::Init));
        assert_eq!(next(State::Init, one_way), Ok(State::Init));
        assert_eq!(next(State::Init, two_way), Ok(State::Exchange));
        assert_eq!(next(State::Down, two_way), Ok(State::Exchange));
        assert_eq!(next(State::Exchange, two_way), Ok(State::Exchange));
        assert_eq!(next(State::Exchange, Event::ExchangeDone), Ok(State::Full));
        assert_eq!(next(State::Full, two_way), Ok(State::Full));
        assert_eq!(next(State::Full, one_way), Ok(State::Init), "it restarted and forgot us");
        assert_eq!(next(State::Full, Event::DeadTimerExpired), Ok(State::Down));
        assert_eq!(next(State::Init, Event::InterfaceDown), Ok(State::Down));
        assert_eq!(
            next(State::Init, Event::ExchangeDone),
            Err(UnexpectedEvent { state: State::Init, event: Event::ExchangeDone })
        );
        assert!(State::Exchange.floods() && State::Full.floods() && !State::Init.floods());
    }
}
