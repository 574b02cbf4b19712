//! Per-group router state (RFC 3376 §6.2-§6.5): filter mode, source records with timers, the
//! group timer, older-host-present timers and pending specific-query retransmissions.
//!
//! ```text
//!                     IS_EX / TO_EX (B)                          group timer expires,
//!   INCLUDE (A) ───────────────────────────▶ EXCLUDE (X, Y) ──── X non-empty ───▶ INCLUDE (X)
//!   (no group       (A*B keep timers,          X: source timer running (forwarded)
//!    timer)          B-A stopped, GT=GMI)      Y: source timer stopped (blocked)
//!      │                                            │ group timer expires, X empty
//!      │ last source timer expires                  ▼
//!      └─────────────────────────────────────▶  (deleted)
//! ```
//!
//! Invariants:
//! * `Include` ⇒ the group timer is stopped and every source timer is running.
//! * `Exclude` ⇒ the group timer is running; sources with a stopped timer are the blocked set Y,
//!   the others the requested set X.
//! * A group in `Include` with no sources does not exist (the interface deletes it).
//! * Retransmission counters are non-zero only while this router is the querier.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::config::{IgmpVersion, Timing};
use crate::timer::{Timer, Timestamp};

/// Router filter mode of a group (§6.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilterMode {
    Include,
    Exclude,
}

/// A group record after older-version translation (§7.3.2): the six §6.4 record types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RecordKind {
    IsIn,
    IsEx,
    ToIn,
    ToEx,
    Allow,
    Block,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SourceRecord {
    /// Running: forwarded (INCLUDE, or X in EXCLUDE). Stopped: blocked (Y in EXCLUDE).
    pub timer: Timer,
    /// Group-and-source-specific queries still to send for this source.
    pub retransmits: u8,
}

/// "Send Q(G)" / "Send Q(G, S)" requests produced by the §6.4 tables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct QueryRequest {
    pub group: bool,
    pub sources: BTreeSet<Ipv4Addr>,
}

/// Queries due now for one group (§6.6.3).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct DueQueries {
    /// A group-specific query, with its S flag.
    pub group: Option<bool>,
    /// Sources whose timer is above LMQT: query sent with the S flag set.
    pub sources_suppressed: Vec<Ipv4Addr>,
    /// Sources at or below LMQT: query sent with the S flag clear.
    pub sources: Vec<Ipv4Addr>,
}

/// What a group forwards: the part of the state the routing protocol sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ForwardingView {
    pub mode: FilterMode,
    /// INCLUDE: the sources forwarded. EXCLUDE: the sources blocked.
    pub sources: BTreeSet<Ipv4Addr>,
}

#[derive(Clone, Debug)]
#[expect(
    clippy::struct_field_names,
    reason = "`group_timer` is the RFC 3376 name; renaming it would obscure the mapping"
)]
pub(crate) struct Group {
    pub mode: FilterMode,
    pub group_timer: Timer,
    pub sources: BTreeMap<Ipv4Addr, SourceRecord>,
    pub v1_host: Timer,
    pub v2_host: Timer,
    pub last_reporter: Option<Ipv4Addr>,
    /// Group-specific queries still to send.
    pub group_retransmits: u8,
    /// When the next retransmission round of specific queries is due.
    pub retransmit: Timer,
    pub created: Timestamp,
}

impl Group {
    /// The state of a group nobody reported: INCLUDE {}.
    pub fn new(now: Timestamp) -> Group {
        Group {
            mode: FilterMode::Include,
            group_timer: Timer::STOPPED,
            sources: BTreeMap::new(),
            v1_host: Timer::STOPPED,
            v2_host: Timer::STOPPED,
            last_reporter: None,
            group_retransmits: 0,
            retransmit: Timer::STOPPED,
            created: now,
        }
    }

    /// §7.3.2: the oldest host version heard within the Older Host Present Interval.
    pub fn compat_mode(&self) -> IgmpVersion {
        if self.v1_host.is_running() {
            IgmpVersion::V1
        } else if self.v2_host.is_running() {
            IgmpVersion::V2
        } else {
            IgmpVersion::V3
        }
    }

    /// INCLUDE {} means "no state": the interface deletes such a group.
    pub fn is_empty(&self) -> bool {
        self.mode == FilterMode::Include && self.sources.is_empty()
    }

    pub fn view(&self) -> ForwardingView {
        let sources = match self.mode {
            FilterMode::Include => self.sources.keys().copied().collect(),
            FilterMode::Exclude => self.blocked().collect(),
        };
        ForwardingView { mode: self.mode, sources }
    }

    /// §6.3: is traffic from `source` to this group wanted on the link?
    pub fn wants(&self, source: Ipv4Addr) -> bool {
        match self.mode {
            FilterMode::Include => self.sources.contains_key(&source),
            FilterMode::Exclude => self.sources.get(&source).is_none_or(|s| s.timer.is_running()),
        }
    }

    fn requested(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.sources.iter().filter(|(_, s)| s.timer.is_running()).map(|(a, _)| *a)
    }

    fn blocked(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.sources.iter().filter(|(_, s)| !s.timer.is_running()).map(|(a, _)| *a)
    }

    fn set_source_timer(&mut self, source: Ipv4Addr, timer: Timer) {
        self.sources.entry(source).or_default().timer = timer;
    }

    /// Applies one record per the §6.4.1 / §6.4.2 tables and returns the queries they ask for
    /// (only the querier acts on them). `b` is the record's source list.
    pub fn apply(
        &mut self,
        now: Timestamp,
        kind: RecordKind,
        b: &BTreeSet<Ipv4Addr>,
        gmi: Duration,
    ) -> QueryRequest {
        let mut q = QueryRequest::default();
        let gmi_timer = Timer::started(now, gmi);
        match (self.mode, kind) {
            // INCLUDE (A) + IS_IN/ALLOW (B) -> INCLUDE (A+B); (B)=GMI
            // EXCLUDE (X,Y) + IS_IN/ALLOW (A) -> EXCLUDE (X+A, Y-A); (A)=GMI
            (_, RecordKind::IsIn | RecordKind::Allow) => {
                for s in b {
                    self.set_source_timer(*s, gmi_timer);
                }
            }
            // INCLUDE (A) + TO_IN (B) -> INCLUDE (A+B); (B)=GMI; Send Q(G, A-B)
            (FilterMode::Include, RecordKind::ToIn) => {
                q.sources = self.sources.keys().filter(|s| !b.contains(s)).copied().collect();
                for s in b {
                    self.set_source_timer(*s, gmi_timer);
                }
            }
            // INCLUDE (A) + BLOCK (B) -> INCLUDE (A); Send Q(G, A*B)
            (FilterMode::Include, RecordKind::Block) => {
                q.sources = b.iter().filter(|s| self.sources.contains_key(s)).copied().collect();
            }
            // INCLUDE (A) + IS_EX (B) -> EXCLUDE (A*B, B-A); (B-A)=0; Delete (A-B); GT=GMI
            // INCLUDE (A) + TO_EX (B) -> same, and Send Q(G, A*B)
            (FilterMode::Include, RecordKind::IsEx | RecordKind::ToEx) => {
                self.sources.retain(|s, _| b.contains(s));
                if kind == RecordKind::ToEx {
                    q.sources = self.sources.keys().copied().collect();
                }
                for s in b {
                    self.sources.entry(*s).or_default();
                }
                self.mode = FilterMode::Exclude;
                self.group_timer = gmi_timer;
            }
            // EXCLUDE (X,Y) + TO_IN (A) -> EXCLUDE (X+A, Y-A); (A)=GMI; Send Q(G, X-A); Send Q(G)
            (FilterMode::Exclude, RecordKind::ToIn) => {
                q.sources = self.requested().filter(|s| !b.contains(s)).collect();
                q.group = true;
                for s in b {
                    self.set_source_timer(*s, gmi_timer);
                }
            }
            // EXCLUDE (X,Y) + BLOCK (A) -> EXCLUDE (X+(A-Y), Y); (A-X-Y)=Group Timer;
            // Send Q(G, A-Y)
            (FilterMode::Exclude, RecordKind::Block) => {
                let group_timer = self.group_timer;
                for s in b {
                    self.sources
                        .entry(*s)
                        .or_insert(SourceRecord { timer: group_timer, retransmits: 0 });
                }
                q.sources = b
                    .iter()
                    .filter(|s| self.sources.get(s).is_some_and(|r| r.timer.is_running()))
                    .copied()
                    .collect();
            }
            // EXCLUDE (X,Y) + IS_EX (A) -> EXCLUDE (A-Y, Y*A); (A-X-Y)=GMI; Delete (X-A);
            // Delete (Y-A); GT=GMI
            // EXCLUDE (X,Y) + TO_EX (A) -> EXCLUDE (A-Y, Y*A); (A-X-Y)=Group Timer;
            // Delete (X-A); Delete (Y-A); Send Q(G, A-Y); GT=GMI
            (FilterMode::Exclude, RecordKind::IsEx | RecordKind::ToEx) => {
                self.sources.retain(|s, _| b.contains(s));
                let new_timer = if kind == RecordKind::IsEx { gmi_timer } else { self.group_timer };
                for s in b {
                    self.sources
                        .entry(*s)
                        .or_insert(SourceRecord { timer: new_timer, retransmits: 0 });
                }
                if kind == RecordKind::ToEx {
                    q.sources = self.requested().collect();
                }
                self.group_timer = gmi_timer;
            }
        }
        q
    }

    /// §6.6.3: the querier's reaction to "Send Q(G)" / "Send Q(G,X)": lower the timers to LMQT
    /// and arm the retransmission counters. Returns true if a query round is now due.
    pub fn schedule_queries(
        &mut self,
        now: Timestamp,
        req: &QueryRequest,
        timing: &Timing,
    ) -> bool {
        let lmqt = timing.last_member_query_time();
        let count = timing.last_member_query_count;
        let mut scheduled = false;
        // A group already at or below LMQT is being queried: a repeated leave (hosts send each
        // state change Robustness times) must not restart the round. RFC 3376 §6.6.3.2 says
        // so for sources; mrouted and Linux do the same for groups.
        if req.group
            && self.mode == FilterMode::Exclude
            && self.group_timer.remaining(now).is_some_and(|r| r > lmqt)
        {
            self.group_timer.lower_to(now, lmqt);
            self.group_retransmits = count;
            scheduled = true;
        }
        for s in &req.sources {
            if let Some(record) = self.sources.get_mut(s) {
                // Only sources above LMQT: ones already being queried keep their schedule.
                if record.timer.remaining(now).is_some_and(|r| r > lmqt) {
                    record.timer.lower_to(now, lmqt);
                    record.retransmits = count;
                    scheduled = true;
                }
            }
        }
        scheduled
    }

    /// Builds one round of specific queries from the retransmission state, decrements the
    /// counters, and arms the retransmission timer if more rounds remain.
    pub fn take_due_queries(&mut self, now: Timestamp, timing: &Timing) -> DueQueries {
        let lmqt = timing.last_member_query_time();
        let mut due = DueQueries::default();
        if self.group_retransmits > 0 {
            self.group_retransmits -= 1;
            due.group = Some(self.group_timer.remaining(now).is_some_and(|r| r > lmqt));
        }
        for (addr, record) in &mut self.sources {
            if record.retransmits > 0 {
                record.retransmits -= 1;
                if record.timer.remaining(now).is_some_and(|r| r > lmqt) {
                    due.sources_suppressed.push(*addr);
                } else {
                    due.sources.push(*addr);
                }
            }
        }
        if self.has_pending_queries() {
            self.retransmit.start(now, timing.last_member_query_interval);
        } else {
            self.retransmit.stop();
        }
        due
    }

    pub fn has_pending_queries(&self) -> bool {
        self.group_retransmits > 0 || self.sources.values().any(|s| s.retransmits > 0)
    }

    /// Drops all retransmission state (we stopped being the querier).
    pub fn cancel_queries(&mut self) {
        self.group_retransmits = 0;
        self.retransmit.stop();
        for s in self.sources.values_mut() {
            s.retransmits = 0;
        }
    }

    /// §6.6.1: a query with the S flag clear was heard (or sent): lower the group timer (group
    /// specific) or the listed sources' timers (group-and-source specific) to LMQT. Blocked
    /// sources (timer stopped) stay blocked.
    pub fn lower_on_query(&mut self, now: Timestamp, sources: &[Ipv4Addr], lmqt: Duration) {
        if sources.is_empty() {
            if self.mode == FilterMode::Exclude {
                self.group_timer.lower_to(now, lmqt);
            }
            return;
        }
        for s in sources {
            if let Some(record) = self.sources.get_mut(s) {
                if record.timer.is_running() {
                    record.timer.lower_to(now, lmqt);
                }
            }
        }
    }

    /// Runs the timers due at `now` (§6.3 source timers, §6.5 group timer, §7.3.2 older-host
    /// timers). Returns true if a specific-query retransmission round is due.
    pub fn expire(&mut self, now: Timestamp) -> bool {
        match self.mode {
            FilterMode::Include => self.sources.retain(|_, s| !s.timer.take_expired(now)),
            FilterMode::Exclude => {
                for s in self.sources.values_mut() {
                    if s.timer.take_expired(now) {
                        s.retransmits = 0;
                    }
                }
                if self.group_timer.take_expired(now) {
                    // §6.5: switch to INCLUDE with the sources still running; the blocked ones
                    // go. With none left the group is empty and gets deleted.
                    self.sources.retain(|_, s| s.timer.is_running());
                    self.mode = FilterMode::Include;
                    self.group_retransmits = 0;
                }
            }
        }
        self.v1_host.take_expired(now);
        self.v2_host.take_expired(now);
        self.retransmit.take_expired(now)
    }

    pub fn next_deadline(&self) -> Option<Timestamp> {
        crate::timer::earliest(
            [
                self.group_timer.deadline(),
                self.v1_host.deadline(),
                self.v2_host.deadline(),
                self.retransmit.deadline(),
            ]
            .into_iter()
            .chain(self.sources.values().map(|s| s.timer.deadline())),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::igmp::config::IgmpConfig;

    fn set(addrs: &[u8]) -> BTreeSet<Ipv4Addr> {
        addrs.iter().map(|a| Ipv4Addr::new(10, 0, 0, *a)).collect()
    }

    const GMI: Duration = Duration::from_secs(260);

    fn timing() -> Timing {
        let c = IgmpConfig::default();
        Timing::new(&c, 2, c.query_interval)
    }

    /// A group in EXCLUDE (X={1,2}, Y={3}) with group timer at 100 s from t0.
    fn exclude_group(t0: Timestamp) -> Group {
        let mut g = Group::new(t0);
        g.apply(t0, RecordKind::IsEx, &set(&[3]), Duration::from_secs(100));
        g.apply(t0, RecordKind::Allow, &set(&[1, 2]), GMI);
        assert_eq!(g.requested().collect::<BTreeSet<_>>(), set(&[1, 2]));
        assert_eq!(g.blocked().collect::<BTreeSet<_>>(), set(&[3]));
        g
    }

    #[test]
    fn include_table() {
        let t0 = Timestamp::ZERO;
        let mut g = Group::new(t0);
        assert!(g.is_empty());
        let q = g.apply(t0, RecordKind::IsIn, &set(&[1, 2]), GMI);
        assert_eq!(q, QueryRequest::default());
        assert_eq!(g.view().sources, set(&[1, 2]));
        // TO_IN (B): A+B, query A-B
        let q = g.apply(t0, RecordKind::ToIn, &set(&[2, 3]), GMI);
        assert_eq!(q.sources, set(&[1]));
        assert_eq!(g.view().sources, set(&[1, 2, 3]));
        // BLOCK (B): A unchanged, query A*B
        let q = g.apply(t0, RecordKind::Block, &set(&[3, 4]), GMI);
        assert_eq!(q.sources, set(&[3]));
        assert!(!q.group);
        assert_eq!(g.view().sources, set(&[1, 2, 3]));
        // TO_EX (B): EXCLUDE (A*B, B-A), delete A-B, query A*B
        let q = g.apply(t0, RecordKind::ToEx, &set(&[3, 4]), GMI);
        assert_eq!(q.sources, set(&[3]));
        assert_eq!(g.mode, FilterMode::Exclude);
        assert_eq!(g.requested().collect::<BTreeSet<_>>(), set(&[3]));
        assert_eq!(g.blocked().collect::<BTreeSet<_>>(), set(&[4]));
        assert_eq!(g.group_timer.deadline(), Some(t0 + GMI));
        assert!(g.wants(Ipv4Addr::new(10, 0, 0, 3)));
        assert!(!g.wants(Ipv4Addr::new(10, 0, 0, 4)));
        assert!(g.wants(Ipv4Addr::new(10, 0, 0, 9)));
    }

    #[test]
    fn exclude_table() {
        let t0 = Timestamp::ZERO;
        let gt = t0 + Duration::from_secs(100);
        // ALLOW (A): X+A, Y-A
        let mut g = exclude_group(t0);
        g.apply(t0, RecordKind::Allow, &set(&[3, 4]), GMI);
        assert_eq!(g.view().sources, BTreeSet::new());
        // BLOCK (A): X+(A-Y), (A-X-Y)=GT, query A-Y
        let mut g = exclude_group(t0);
        let q = g.apply(t0, RecordKind::Block, &set(&[1, 3, 5]), GMI);
        assert_eq!(q.sources, set(&[1, 5]));
        assert_eq!(g.sources[&Ipv4Addr::new(10, 0, 0, 5)].timer.deadline(), Some(gt));
        assert_eq!(g.blocked().collect::<BTreeSet<_>>(), set(&[3]));
        // TO_EX (A): (A-Y, Y*A), (A-X-Y)=GT, delete X-A, Y-A, query A-Y, GT=GMI
        let mut g = exclude_group(t0);
        let q = g.apply(t0, RecordKind::ToEx, &set(&[2, 3, 6]), GMI);
        assert_eq!(q.sources, set(&[2, 6]));
        assert_eq!(g.requested().collect::<BTreeSet<_>>(), set(&[2, 6]));
        assert_eq!(g.blocked().collect::<BTreeSet<_>>(), set(&[3]));
        assert_eq!(g.sources[&Ipv4Addr::new(10, 0, 0, 6)].timer.deadline(), Some(gt));
        assert_eq!(g.group_timer.deadline(), Some(t0 + GMI));
        // IS_EX (A): same sets, but (A-X-Y)=GMI and no query
        let mut g = exclude_group(t0);
        let q = g.apply(t0, RecordKind::IsEx, &set(&[2, 3, 6]), GMI);
        assert!(q.sources.is_empty());
        assert_eq!(g.sources[&Ipv4Addr::new(10, 0, 0, 6)].timer.deadline(), Some(t0 + GMI));
        // TO_IN (A): X+A, Y-A, query X-A and G
        let mut g = exclude_group(t0);
        let q = g.apply(t0, RecordKind::ToIn, &set(&[2, 3]), GMI);
        assert_eq!(q.sources, set(&[1]));
        assert!(q.group);
        assert_eq!(g.blocked().count(), 0);
    }

    #[test]
    fn group_timer_expiry_switches_to_include_with_running_sources() {
        let t0 = Timestamp::ZERO;
        let mut g = exclude_group(t0);
        assert!(!g.expire(Timestamp::from_secs(99)));
        g.expire(Timestamp::from_secs(100));
        assert_eq!(g.mode, FilterMode::Include);
        assert_eq!(g.view().sources, set(&[1, 2]));
        assert!(!g.group_timer.is_running());
        g.expire(t0 + GMI);
        assert!(g.is_empty());
    }

    #[test]
    fn specific_queries_split_on_the_s_flag() {
        let t0 = Timestamp::ZERO;
        let timing = timing();
        let mut g = exclude_group(t0);
        let req = QueryRequest { group: true, sources: set(&[1, 2]) };
        assert!(g.schedule_queries(t0, &req, &timing));
        assert_eq!(g.group_timer.deadline(), Some(Timestamp::from_secs(2)));
        let due = g.take_due_queries(t0, &timing);
        assert_eq!(due.group, Some(false));
        assert_eq!(due.sources, vec![Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)]);
        assert_eq!(g.retransmit.deadline(), Some(Timestamp::from_secs(1)));
        // A report refreshes source 2 before the retransmission: it moves to the S-set query.
        let t1 = Timestamp::from_secs(1);
        g.apply(Timestamp::from_millis(500), RecordKind::Allow, &set(&[2]), GMI);
        assert!(g.expire(t1));
        let due = g.take_due_queries(t1, &timing);
        assert_eq!(due.group, Some(false));
        assert_eq!(due.sources, vec![Ipv4Addr::new(10, 0, 0, 1)]);
        assert_eq!(due.sources_suppressed, vec![Ipv4Addr::new(10, 0, 0, 2)]);
        assert!(!g.has_pending_queries());
        assert!(!g.retransmit.is_running());
    }
}
