//! IGMP router side (RFC 3376 §6-§7, with the RFC 2236 / RFC 1112 compatibility modes): querier
//! election and group membership for one interface, as a sans-IO core.
//!
//! An [`IgmpInterface`] is fed [`Event`]s — `Start`, `Stop`, `Tick`, and every IGMP message
//! received on the link as a parsed [`wire::igmp::IgmpRepr`] — each with the current
//! [`Timestamp`], and answers with [`Action`]s: queries to send and membership changes for the
//! routing protocol. It reads no clock and owns no socket; the daemon calls it again with
//! `Event::Tick` at [`IgmpInterface::next_deadline`].
//!
//! ```text
//!   daemon ── Event{Start,Stop,Tick,Received} + now ──▶ IgmpInterface ──▶ Action{Send, MembershipChanged, RoleChanged}
//!                                                          │  querier.rs: election, general queries
//!                                                          │  group.rs:   per-group §6.4 state
//!   routing protocol ◀── wants(S, G) / members() ──────────┘
//! ```
//!
//! Invariants:
//! * Nothing happens while the interface is down (before `Start`, after `Stop`): received
//!   messages are counted as `not_running` and no timer is armed.
//! * Only the querier sends queries, and only it keeps specific-query retransmission state.
//! * Every change in what a group forwards (filter mode, forwarded or blocked sources, group
//!   created or deleted) produces exactly one `MembershipChanged` per event, after the sends.
//! * Bad input never panics: it is counted, logged through [`Error::log`] and skipped; the rest
//!   of the message is still processed.

mod config;
mod error;
mod group;
mod querier;
pub mod serde_wire;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wire::igmp::{
    encode_max_resp_code, encode_qqic, GroupRecord, IgmpRepr, Query, QueryVersion, RecordType,
    ALL_SYSTEMS,
};

pub use self::config::{ConfigError, IgmpConfig, IgmpVersion};
pub use self::error::Error;
pub use self::group::FilterMode;
pub use self::querier::{QuerierEvent, QuerierState};

use self::config::Timing;
use self::group::{DueQueries, ForwardingView, Group, QueryRequest, RecordKind};
use self::querier::{Querier, QuerierOutput, Startup};
use crate::timer::Timestamp;

/// Input to an [`IgmpInterface`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// IGMP enabled on an interface that is up: become querier and send startup queries.
    Start,
    /// IGMP disabled or the interface went down: forget everything.
    Stop,
    /// Time passed; run the timers due at `now`.
    Tick,
    /// An IGMP message arrived from `src` (IP source) sent to `dst` (IP destination).
    Received {
        src: Ipv4Addr,
        dst: Ipv4Addr,
        #[serde(with = "serde_wire::igmp_repr")]
        msg: IgmpRepr,
    },
}

/// Output of an [`IgmpInterface`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Send `msg` on the interface to `dst` (IP TTL 1, Router Alert, from the interface address).
    Send {
        dst: Ipv4Addr,
        #[serde(with = "serde_wire::igmp_repr")]
        msg: IgmpRepr,
    },
    /// What `group` forwards on this link changed.
    MembershipChanged { group: Ipv4Addr, change: MembershipChange },
    /// This router became querier, non-querier, or stopped; `querier` is who queries now.
    RoleChanged { role: QuerierState, querier: Option<Ipv4Addr> },
}

/// A change in a group's forwarding state. `sources` is sorted: for `Include` the sources
/// wanted, for `Exclude` the sources blocked (everything else is wanted).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum MembershipChange {
    Joined { mode: FilterMode, sources: Vec<Ipv4Addr> },
    Changed { mode: FilterMode, sources: Vec<Ipv4Addr> },
    Left,
}

/// One group's forwarding state, as [`IgmpInterface::members`] lists it (same meaning of
/// `sources` as in [`MembershipChange`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub group: Ipv4Addr,
    pub mode: FilterMode,
    pub sources: Vec<Ipv4Addr>,
}

/// Per-interface counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    pub general_queries_sent: u64,
    pub group_queries_sent: u64,
    pub group_source_queries_sent: u64,
    pub queries_received: u64,
    /// Queries of an older version than we are configured for (RFC 3376 §7.3.1: the link
    /// needs administrative attention).
    pub older_version_queries_received: u64,
    pub reports_v1: u64,
    pub reports_v2: u64,
    pub reports_v3: u64,
    pub leaves: u64,
    /// Reports/records for 224.0.0.0/24, which is never routed (every host reports 224.0.0.22).
    pub link_local_ignored: u64,
    /// Reports/records whose group is not multicast.
    pub bad_group: u64,
    /// v3 records with an unknown type or an invalid source address.
    pub bad_records: u64,
    /// Messages received while IGMP was not running.
    pub not_running: u64,
    /// Reports/records for new groups dropped because `max_groups` was reached.
    pub group_limit_dropped: u64,
}

impl Counters {
    pub fn queries_sent(&self) -> u64 {
        self.general_queries_sent + self.group_queries_sent + self.group_source_queries_sent
    }

    pub fn bad(&self) -> u64 {
        self.bad_group + self.bad_records
    }
}

/// `fanoutctl show igmp` view of one interface. Remaining times are whole milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IgmpSnapshot {
    pub interface: String,
    pub address: Ipv4Addr,
    pub state: QuerierState,
    pub querier: Option<Ipv4Addr>,
    pub is_querier: bool,
    pub version: IgmpVersion,
    /// Robustness Variable and Query Interval in force (a non-querier adopts the querier's).
    pub robustness: u8,
    pub query_interval_ms: u64,
    pub next_general_query_ms: Option<u64>,
    pub other_querier_expires_ms: Option<u64>,
    pub counters: Counters,
    pub groups: Vec<GroupSnapshot>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSnapshot {
    pub group: Ipv4Addr,
    pub filter_mode: FilterMode,
    pub compat_mode: IgmpVersion,
    /// Group timer (EXCLUDE mode only).
    pub group_timer_ms: Option<u64>,
    pub last_reporter: Option<Ipv4Addr>,
    pub v1_host_timer_ms: Option<u64>,
    pub v2_host_timer_ms: Option<u64>,
    pub uptime_ms: u64,
    pub sources: Vec<SourceSnapshot>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSnapshot {
    pub source: Ipv4Addr,
    /// `None`: blocked (EXCLUDE mode, timer at zero).
    pub timer_ms: Option<u64>,
    pub forwarding: bool,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The IGMP router side of one interface.
#[derive(Clone, Debug)]
pub struct IgmpInterface {
    name: String,
    address: Ipv4Addr,
    config: IgmpConfig,
    /// In force now: the configured values, or the querier's while we are not querier.
    robustness: u8,
    query_interval: Duration,
    querier: Querier,
    groups: BTreeMap<Ipv4Addr, Group>,
    counters: Counters,
}

/// Per-event scratch: actions so far and the forwarding views of touched groups before the
/// event, to emit one `MembershipChanged` per group at the end.
#[derive(Default)]
struct Output {
    actions: Vec<Action>,
    before: BTreeMap<Ipv4Addr, Option<ForwardingView>>,
}

impl IgmpInterface {
    pub fn new(
        name: impl Into<String>,
        address: Ipv4Addr,
        config: IgmpConfig,
    ) -> Result<IgmpInterface, ConfigError> {
        config.validate()?;
        Ok(IgmpInterface {
            name: name.into(),
            address,
            robustness: config.robustness,
            query_interval: config.query_interval,
            config,
            querier: Querier::default(),
            groups: BTreeMap::new(),
            counters: Counters::default(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn address(&self) -> Ipv4Addr {
        self.address
    }

    pub fn config(&self) -> &IgmpConfig {
        &self.config
    }

    /// Replaces the configuration (reload). New intervals apply as timers are next armed.
    pub fn reconfigure(&mut self, config: IgmpConfig) -> Result<(), ConfigError> {
        config.validate()?;
        if self.querier.state != QuerierState::NonQuerier {
            self.robustness = config.robustness;
            self.query_interval = config.query_interval;
        }
        self.config = config;
        Ok(())
    }

    pub fn state(&self) -> QuerierState {
        self.querier.state
    }

    pub fn is_querier(&self) -> bool {
        self.querier.state == QuerierState::Querier
    }

    /// The current querier on the link, if known.
    pub fn querier(&self) -> Option<Ipv4Addr> {
        self.querier.querier
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// RFC 3376 §6.3: should traffic from `source` to `group` be forwarded onto this link?
    pub fn wants(&self, source: Ipv4Addr, group: Ipv4Addr) -> bool {
        self.groups.get(&group).is_some_and(|g| g.wants(source))
    }

    /// Every group with listeners, in address order.
    pub fn members(&self) -> impl Iterator<Item = Membership> + '_ {
        self.groups.iter().map(|(addr, g)| {
            let view = g.view();
            Membership {
                group: *addr,
                mode: view.mode,
                sources: view.sources.into_iter().collect(),
            }
        })
    }

    /// When the daemon must deliver the next `Event::Tick` (none while nothing is armed).
    pub fn next_deadline(&self) -> Option<Timestamp> {
        crate::timer::earliest(
            std::iter::once(self.querier.next_deadline())
                .chain(self.groups.values().map(Group::next_deadline)),
        )
    }

    pub fn snapshot(&self, now: Timestamp) -> IgmpSnapshot {
        let remaining = |t: &crate::timer::Timer| t.remaining(now).map(millis);
        IgmpSnapshot {
            interface: self.name.clone(),
            address: self.address,
            state: self.querier.state,
            querier: self.querier.querier,
            is_querier: self.is_querier(),
            version: self.config.version,
            robustness: self.robustness,
            query_interval_ms: millis(self.query_interval),
            next_general_query_ms: remaining(&self.querier.general_query),
            other_querier_expires_ms: remaining(&self.querier.other_querier),
            counters: self.counters.clone(),
            groups: self
                .groups
                .iter()
                .map(|(addr, g)| GroupSnapshot {
                    group: *addr,
                    filter_mode: g.mode,
                    compat_mode: g.compat_mode(),
                    group_timer_ms: remaining(&g.group_timer),
                    last_reporter: g.last_reporter,
                    v1_host_timer_ms: remaining(&g.v1_host),
                    v2_host_timer_ms: remaining(&g.v2_host),
                    uptime_ms: millis(now.saturating_duration_since(g.created)),
                    sources: g
                        .sources
                        .iter()
                        .map(|(s, r)| SourceSnapshot {
                            source: *s,
                            timer_ms: remaining(&r.timer),
                            forwarding: g.wants(*s),
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// Processes one event at `now` and returns what to do.
    pub fn handle(&mut self, now: Timestamp, event: Event) -> Vec<Action> {
        let mut out = Output::default();
        match event {
            Event::Start => self.run_querier(now, QuerierEvent::Start, &mut out),
            Event::Stop => self.run_querier(now, QuerierEvent::Stop, &mut out),
            Event::Tick => self.tick(now, &mut out),
            Event::Received { src, dst: _, msg } => self.receive(now, src, msg, &mut out),
        }
        self.finish(out)
    }

    // ===== internals =====

    fn timing(&self) -> Timing {
        Timing::new(&self.config, self.robustness, self.query_interval)
    }

    fn startup(&self) -> Startup {
        Startup {
            interval: self.config.startup_query_interval.unwrap_or(self.config.query_interval / 4),
            count: self.config.startup_query_count.unwrap_or(self.config.robustness),
        }
    }

    fn fail(&mut self, error: &Error) {
        match error {
            Error::NonMulticastGroup { .. } => self.counters.bad_group += 1,
            Error::LinkLocalGroup { .. } => self.counters.link_local_ignored += 1,
            Error::UnknownRecordType { .. } | Error::InvalidSource { .. } => {
                self.counters.bad_records += 1;
            }
            Error::NotRunning { .. } => self.counters.not_running += 1,
            Error::GroupLimit { .. } => self.counters.group_limit_dropped += 1,
            Error::UnexpectedEvent { .. } => {}
        }
        error.log(&self.name);
    }

    fn run_querier(&mut self, now: Timestamp, event: QuerierEvent, out: &mut Output) {
        let timing = self.timing();
        let startup = self.startup();
        let result = self.querier.handle(now, event, self.address, &timing, startup);
        match result {
            Ok(q) => self.apply_querier_output(q, out),
            Err(e) => self.fail(&e),
        }
    }

    fn apply_querier_output(&mut self, q: QuerierOutput, out: &mut Output) {
        if let Some(role) = q.new_role {
            match role {
                QuerierState::Querier => {
                    // A querier announces its own configuration, not the one it adopted.
                    self.robustness = self.config.robustness;
                    self.query_interval = self.config.query_interval;
                }
                QuerierState::NonQuerier => {
                    for g in self.groups.values_mut() {
                        g.cancel_queries();
                    }
                }
                QuerierState::Down => {
                    for (addr, g) in &self.groups {
                        out.before.entry(*addr).or_insert_with(|| Some(g.view()));
                    }
                    self.groups.clear();
                    self.robustness = self.config.robustness;
                    self.query_interval = self.config.query_interval;
                }
            }
            out.actions.push(Action::RoleChanged { role, querier: self.querier.querier });
        }
        if q.send_general_query {
            let query = self.query(Ipv4Addr::UNSPECIFIED, self.config.query_response_interval);
            self.counters.general_queries_sent += 1;
            out.actions.push(Action::Send { dst: ALL_SYSTEMS, msg: IgmpRepr::Query(query) });
        }
    }

    /// A query in our configured version. v3-only fields are zero for v1/v2.
    fn query(&self, group: Ipv4Addr, max_resp: Duration) -> Query {
        let v3 = self.config.version == IgmpVersion::V3;
        let max_resp_code = match self.config.version {
            IgmpVersion::V1 => 0,
            // Validated to lie in 100 ms..=25.5 s, so this is 1..=255.
            IgmpVersion::V2 => u8::try_from(max_resp.as_millis() / 100).unwrap_or(u8::MAX),
            IgmpVersion::V3 => encode_max_resp_code(max_resp),
        };
        Query {
            version: self.config.version.query_version(),
            max_resp_code,
            group,
            suppress_router_processing: false,
            // QRV is 3 bits; 0 tells hosts "more than 7".
            qrv: if v3 && self.robustness <= 7 { self.robustness } else { 0 },
            qqic: if v3 { encode_qqic(self.query_interval) } else { 0 },
            sources: Vec::new(),
        }
    }

    fn touch(&self, group: Ipv4Addr, out: &mut Output) {
        out.before.entry(group).or_insert_with(|| self.groups.get(&group).map(Group::view));
    }

    fn tick(&mut self, now: Timestamp, out: &mut Output) {
        if self.querier.general_query.take_expired(now) {
            self.run_querier(now, QuerierEvent::GeneralQueryTimerExpired, out);
        }
        if self.querier.other_querier.take_expired(now) {
            self.run_querier(now, QuerierEvent::OtherQuerierTimerExpired, out);
        }
        let due: Vec<Ipv4Addr> = self
            .groups
            .iter()
            .filter(|(_, g)| g.next_deadline().is_some_and(|d| d <= now))
            .map(|(a, _)| *a)
            .collect();
        let timing = self.timing();
        for addr in due {
            self.touch(addr, out);
            let Some(group) = self.groups.get_mut(&addr) else {
                continue;
            };
            let due = (group.expire(now) && self.querier.state == QuerierState::Querier)
                .then(|| group.take_due_queries(now, &timing));
            if group.is_empty() {
                self.groups.remove(&addr);
            }
            if let Some(due) = due {
                self.send_specific(addr, &due, out);
            }
        }
    }

    fn send_specific(&mut self, group: Ipv4Addr, due: &DueQueries, out: &mut Output) {
        let lmqi = self.config.last_member_query_interval;
        if let Some(suppress) = due.group {
            let mut q = self.query(group, lmqi);
            q.suppress_router_processing = suppress;
            self.counters.group_queries_sent += 1;
            out.actions.push(Action::Send { dst: group, msg: IgmpRepr::Query(q) });
        }
        for (suppress, sources) in [(true, &due.sources_suppressed), (false, &due.sources)] {
            if sources.is_empty() {
                continue;
            }
            let mut q = self.query(group, lmqi);
            q.suppress_router_processing = suppress;
            q.sources.clone_from(sources);
            self.counters.group_source_queries_sent += 1;
            out.actions.push(Action::Send { dst: group, msg: IgmpRepr::Query(q) });
        }
    }

    fn receive(&mut self, now: Timestamp, src: Ipv4Addr, msg: IgmpRepr, out: &mut Output) {
        if self.querier.state == QuerierState::Down {
            let kind = message_kind(&msg);
            self.fail(&Error::NotRunning { src, kind });
            return;
        }
        match msg {
            IgmpRepr::Query(q) => self.on_query(now, src, &q, out),
            IgmpRepr::ReportV1 { group } => {
                self.counters.reports_v1 += 1;
                self.on_old_report(now, src, group, IgmpVersion::V1, out);
            }
            IgmpRepr::ReportV2 { group } => {
                self.counters.reports_v2 += 1;
                self.on_old_report(now, src, group, IgmpVersion::V2, out);
            }
            IgmpRepr::Leave { group } => {
                self.counters.leaves += 1;
                if let Err(e) = check_group(src, group, "v2 leave") {
                    self.fail(&e);
                    return;
                }
                // §7.3.2: in IGMPv1 compatibility mode leaves are ignored (a v1 host that
                // never sends leaves may still be listening).
                let compat = self.groups.get(&group).map(Group::compat_mode);
                if compat.is_some_and(|c| c != IgmpVersion::V1) {
                    self.on_record(now, src, group, RecordKind::ToIn, &BTreeSet::new(), out);
                }
            }
            IgmpRepr::ReportV3 { records } => {
                self.counters.reports_v3 += 1;
                for record in records {
                    self.on_v3_record(now, src, record, out);
                }
            }
        }
    }

    fn on_query(&mut self, now: Timestamp, src: Ipv4Addr, q: &Query, out: &mut Output) {
        if src == self.address {
            // Our own query looped back; its effects were applied when we sent it.
            return;
        }
        self.counters.queries_received += 1;
        let version = IgmpVersion::of_query(q.version);
        if version < self.config.version {
            self.counters.older_version_queries_received += 1;
            tracing::warn!(
                interface = %self.name, %src, ?version, configured = ?self.config.version,
                "older-version querier on the link; configure this interface's version to match (RFC 3376 §7.3.1)"
            );
        }
        // 0.0.0.0 is what snooping switches and proxies query from; it takes no part in the
        // election (RFC 4541 §2.1.1).
        if !src.is_unspecified() && src < self.address {
            if q.version == QueryVersion::V3 {
                // §4.1.6, §4.1.7: a non-querier adopts the querier's QRV and QQI (0 = our
                // default). Adopted before the election runs, so the Other Querier Present
                // Interval is the querier's too.
                self.robustness = if q.qrv == 0 { self.config.robustness } else { q.qrv };
                let qqi = q.querier_query_interval();
                self.query_interval = if qqi.is_zero() { self.config.query_interval } else { qqi };
            }
            self.run_querier(now, QuerierEvent::LowerQuerierHeard(src), out);
        }
        // §6.6.1: a specific query without the S flag lowers our timers, so a non-querier
        // follows the querier's last-member processing. The querier's LMQT is its Max Resp
        // Time (its LMQI) times its robustness.
        if !q.suppress_router_processing && !q.group.is_unspecified() {
            let lmqt = q.max_resp_time() * u32::from(self.timing().last_member_query_count);
            if let Some(g) = self.groups.get_mut(&q.group) {
                g.lower_on_query(now, &q.sources, lmqt);
            }
        }
    }

    fn on_old_report(
        &mut self,
        now: Timestamp,
        src: Ipv4Addr,
        group: Ipv4Addr,
        version: IgmpVersion,
        out: &mut Output,
    ) {
        let kind = if version == IgmpVersion::V1 { "v1 report" } else { "v2 report" };
        if let Err(e) = check_group(src, group, kind) {
            self.fail(&e);
            return;
        }
        if !self.admit(src, group, kind) {
            return;
        }
        let ohpi = self.timing().older_host_present_interval();
        self.touch(group, out);
        let g = self.groups.entry(group).or_insert_with(|| Group::new(now));
        match version {
            IgmpVersion::V1 => g.v1_host.start(now, ohpi),
            _ => g.v2_host.start(now, ohpi),
        }
        // §7.3.2: v1 and v2 reports are IS_EX({}).
        self.on_record(now, src, group, RecordKind::IsEx, &BTreeSet::new(), out);
    }

    fn on_v3_record(
        &mut self,
        now: Timestamp,
        src: Ipv4Addr,
        record: GroupRecord,
        out: &mut Output,
    ) {
        let group = record.group;
        if let Err(e) = check_group(src, group, "v3 record") {
            self.fail(&e);
            return;
        }
        if let Some(&source) = record.sources.iter().find(|s| !is_valid_source(**s)) {
            self.fail(&Error::InvalidSource { src, group, bad_source: source });
            return;
        }
        if !self.admit(src, group, "v3 record") {
            return;
        }
        let compat = self.groups.get(&group).map_or(IgmpVersion::V3, Group::compat_mode);
        let old_hosts = compat != IgmpVersion::V3;
        let sources: BTreeSet<Ipv4Addr> = record.sources.into_iter().collect();
        let (kind, sources) = match record.record_type {
            RecordType::ModeIsInclude => (RecordKind::IsIn, sources),
            RecordType::ModeIsExclude => (RecordKind::IsEx, sources),
            RecordType::ChangeToInclude => (RecordKind::ToIn, sources),
            // §7.3.2: with older hosts present, TO_EX source lists are ignored...
            RecordType::ChangeToExclude if old_hosts => (RecordKind::ToEx, BTreeSet::new()),
            RecordType::ChangeToExclude => (RecordKind::ToEx, sources),
            RecordType::AllowNewSources => (RecordKind::Allow, sources),
            // ...and BLOCK records are ignored altogether.
            RecordType::BlockOldSources if old_hosts => return,
            RecordType::BlockOldSources => (RecordKind::Block, sources),
            RecordType::Unknown(code) => {
                self.fail(&Error::UnknownRecordType { src, group, code });
                return;
            }
        };
        self.on_record(now, src, group, kind, &sources, out);
    }

    /// False (and counted) if `group` is new and the interface already tracks `max_groups`.
    fn admit(&mut self, src: Ipv4Addr, group: Ipv4Addr, kind: &'static str) -> bool {
        match self.config.max_groups {
            Some(limit) if self.groups.len() >= limit && !self.groups.contains_key(&group) => {
                self.fail(&Error::GroupLimit { src, group, kind, limit });
                false
            }
            _ => true,
        }
    }

    fn on_record(
        &mut self,
        now: Timestamp,
        src: Ipv4Addr,
        group: Ipv4Addr,
        kind: RecordKind,
        sources: &BTreeSet<Ipv4Addr>,
        out: &mut Output,
    ) {
        self.touch(group, out);
        let timing = self.timing();
        let querier = self.querier.state == QuerierState::Querier;
        let version = self.config.version;
        let g = self.groups.entry(group).or_insert_with(|| Group::new(now));
        g.last_reporter = Some(src);
        let mut request: QueryRequest =
            g.apply(now, kind, sources, timing.group_membership_interval());
        // v1 has no specific queries, v2 no source-specific ones; the timers then simply run.
        if version < IgmpVersion::V3 {
            request.sources.clear();
        }
        if version == IgmpVersion::V1 {
            request.group = false;
        }
        let due = (querier && g.schedule_queries(now, &request, &timing))
            .then(|| g.take_due_queries(now, &timing));
        if g.is_empty() {
            self.groups.remove(&group);
        }
        if let Some(due) = due {
            self.send_specific(group, &due, out);
        }
    }

    fn finish(&self, mut out: Output) -> Vec<Action> {
        for (group, before) in out.before {
            let after = self.groups.get(&group).map(Group::view);
            if before == after {
                continue;
            }
            let change = match (before, after) {
                (_, None) => MembershipChange::Left,
                (None, Some(v)) => MembershipChange::Joined {
                    mode: v.mode,
                    sources: v.sources.into_iter().collect(),
                },
                (Some(_), Some(v)) => MembershipChange::Changed {
                    mode: v.mode,
                    sources: v.sources.into_iter().collect(),
                },
            };
            out.actions.push(Action::MembershipChanged { group, change });
        }
        out.actions
    }
}

fn message_kind(msg: &IgmpRepr) -> &'static str {
    match msg {
        IgmpRepr::Query(_) => "query",
        IgmpRepr::ReportV1 { .. } => "v1 report",
        IgmpRepr::ReportV2 { .. } => "v2 report",
        IgmpRepr::Leave { .. } => "v2 leave",
        IgmpRepr::ReportV3 { .. } => "v3 report",
    }
}

/// Routable multicast only: 224.0.0.0/24 is link-local control traffic (RFC 5771) that no
/// router forwards, so membership in it is not tracked.
fn check_group(src: Ipv4Addr, group: Ipv4Addr, kind: &'static str) -> Result<(), Error> {
    if !group.is_multicast() {
        return Err(Error::NonMulticastGroup { src, group, kind });
    }
    if group.octets()[..3] == [224, 0, 0] {
        return Err(Error::LinkLocalGroup { src, group, kind });
    }
    Ok(())
}

/// A source in a record must be a unicast host address.
fn is_valid_source(source: Ipv4Addr) -> bool {
    !(source.is_unspecified()
        || source.is_multicast()
        || source.is_broadcast()
        || source.is_loopback()
        || source.octets()[0] >= 240)
}

#[cfg(test)]
mod tests;
