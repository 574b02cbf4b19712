//! Interface-level tests of the IGMP core with injected time: every timer path, driven through
//! the public `handle`/`next_deadline` API exactly as the daemon drives it.

use std::net::Ipv4Addr;
use std::time::Duration;

use wire::igmp::{GroupRecord, IgmpRepr, Query, QueryVersion, RecordType, ALL_SYSTEMS};

use super::*;
use crate::timer::Timestamp;

const ME: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);
const LOWER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
const HIGHER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 9);
const HOST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 10);
const G: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 1);
const S1: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
const S2: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);

fn ms(n: u64) -> Timestamp {
    Timestamp::from_millis(n)
}

fn secs(n: u64) -> Timestamp {
    Timestamp::from_secs(n)
}

fn started() -> IgmpInterface {
    let mut i = IgmpInterface::new("veth0", ME, IgmpConfig::default()).unwrap();
    i.handle(Timestamp::ZERO, Event::Start);
    i
}

fn received(src: Ipv4Addr, msg: IgmpRepr) -> Event {
    Event::Received { src, dst: ALL_SYSTEMS, msg }
}

fn record(record_type: RecordType, group: Ipv4Addr, sources: &[Ipv4Addr]) -> GroupRecord {
    GroupRecord { record_type, group, sources: sources.to_vec(), aux_data: Vec::new() }
}

fn v3(records: Vec<GroupRecord>) -> Event {
    received(HOST, IgmpRepr::ReportV3 { records })
}

fn query_from(src: Ipv4Addr, q: Query) -> Event {
    received(src, IgmpRepr::Query(q))
}

fn v3_query(group: Ipv4Addr, sources: &[Ipv4Addr], suppress: bool) -> Query {
    Query {
        version: QueryVersion::V3,
        max_resp_code: if group.is_unspecified() { 100 } else { 10 },
        group,
        suppress_router_processing: suppress,
        qrv: 2,
        qqic: 125,
        sources: sources.to_vec(),
    }
}

/// Delivers every tick due up to and including `until`, returning (time, action) pairs.
fn run_until(i: &mut IgmpInterface, until: Timestamp) -> Vec<(Timestamp, Action)> {
    let mut log = Vec::new();
    while let Some(at) = i.next_deadline().filter(|at| *at <= until) {
        for a in i.handle(at, Event::Tick) {
            log.push((at, a));
        }
    }
    log
}

fn sent_queries(actions: &[Action]) -> Vec<(Ipv4Addr, Query)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { dst, msg: IgmpRepr::Query(q) } => Some((*dst, q.clone())),
            _ => None,
        })
        .collect()
}

fn changes(actions: &[Action]) -> Vec<(Ipv4Addr, MembershipChange)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::MembershipChanged { group, change } => Some((*group, change.clone())),
            _ => None,
        })
        .collect()
}

fn joined_exclude(sources: &[Ipv4Addr]) -> MembershipChange {
    MembershipChange::Joined { mode: FilterMode::Exclude, sources: sources.to_vec() }
}

#[test]
fn startup_queries_then_query_interval() {
    let mut i = IgmpInterface::new("veth0", ME, IgmpConfig::default()).unwrap();
    assert_eq!(i.next_deadline(), None, "nothing armed before Start");
    let actions = i.handle(Timestamp::ZERO, Event::Start);
    assert_eq!(actions[0], Action::RoleChanged { role: QuerierState::Querier, querier: Some(ME) });
    let q = sent_queries(&actions);
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].0, ALL_SYSTEMS);
    assert_eq!(
        q[0].1,
        Query {
            version: QueryVersion::V3,
            max_resp_code: 100,
            group: Ipv4Addr::UNSPECIFIED,
            suppress_router_processing: false,
            qrv: 2,
            qqic: 125,
            sources: vec![],
        }
    );
    // Startup Query Count (2) at Startup Query Interval (125 s / 4), then every 125 s.
    let log = run_until(&mut i, secs(500));
    let times: Vec<Timestamp> = log.iter().map(|(t, _)| *t).collect();
    assert_eq!(times, vec![ms(31_250), ms(156_250), ms(281_250), ms(406_250)]);
    assert_eq!(i.counters().general_queries_sent, 5);
}

#[test]
fn lower_address_querier_wins_and_we_resume_after_other_querier_interval() {
    let mut i = started();
    let actions = i.handle(secs(1), query_from(LOWER, v3_query(Ipv4Addr::UNSPECIFIED, &[], false)));
    assert_eq!(
        actions,
        vec![Action::RoleChanged { role: QuerierState::NonQuerier, querier: Some(LOWER) }]
    );
    assert!(!i.is_querier());
    // Other Querier Present Interval = 2 * 125 + 10 / 2 = 255 s after the last query heard.
    assert_eq!(i.next_deadline(), Some(secs(256)));
    i.handle(secs(100), query_from(LOWER, v3_query(Ipv4Addr::UNSPECIFIED, &[], false)));
    assert_eq!(i.next_deadline(), Some(secs(355)));
    let log = run_until(&mut i, secs(354));
    assert!(log.is_empty(), "a non-querier sends nothing: {log:?}");
    let log = run_until(&mut i, secs(355));
    let actions: Vec<Action> = log.into_iter().map(|(_, a)| a).collect();
    assert_eq!(actions[0], Action::RoleChanged { role: QuerierState::Querier, querier: Some(ME) });
    assert_eq!(sent_queries(&actions).len(), 1);
    // Back to the regular interval, no second startup phase.
    assert_eq!(i.next_deadline(), Some(secs(480)));
}

#[test]
fn higher_address_query_does_not_unseat_us() {
    let mut i = started();
    let actions =
        i.handle(secs(1), query_from(HIGHER, v3_query(Ipv4Addr::UNSPECIFIED, &[], false)));
    assert!(actions.is_empty());
    assert!(i.is_querier());
    assert_eq!(i.counters().queries_received, 1);
    // Unspecified-source queries (snooping switches) take no part in the election either.
    i.handle(
        secs(2),
        query_from(Ipv4Addr::UNSPECIFIED, v3_query(Ipv4Addr::UNSPECIFIED, &[], false)),
    );
    assert!(i.is_querier());
    // Our own query looped back is not counted.
    i.handle(secs(3), query_from(ME, v3_query(Ipv4Addr::UNSPECIFIED, &[], false)));
    assert_eq!(i.counters().queries_received, 2);
}

#[test]
fn non_querier_adopts_querier_robustness_and_interval() {
    let mut i = started();
    let mut q = v3_query(Ipv4Addr::UNSPECIFIED, &[], false);
    q.qrv = 3;
    q.qqic = 60;
    i.handle(secs(0), query_from(LOWER, q));
    let snap = i.snapshot(secs(0));
    assert_eq!(snap.robustness, 3);
    assert_eq!(snap.query_interval_ms, 60_000);
    // OQPI with the adopted values: 3 * 60 + 5 = 185 s.
    assert_eq!(snap.other_querier_expires_ms, Some(185_000));
    // A join now lives for the querier's GMI: 3 * 60 + 10 = 190 s.
    i.handle(secs(10), v3(vec![record(RecordType::ChangeToExclude, G, &[])]));
    assert_eq!(i.snapshot(secs(10)).groups[0].group_timer_ms, Some(190_000));
    run_until(&mut i, secs(185));
    let snap = i.snapshot(secs(185));
    assert!(snap.is_querier);
    assert_eq!(snap.robustness, 2, "a querier announces its own configuration");
    assert_eq!(snap.query_interval_ms, 125_000);
}

#[test]
fn older_version_querier_is_counted() {
    let mut i = started();
    let v2 = Query {
        version: QueryVersion::V2,
        max_resp_code: 100,
        group: Ipv4Addr::UNSPECIFIED,
        suppress_router_processing: false,
        qrv: 0,
        qqic: 0,
        sources: vec![],
    };
    i.handle(secs(1), query_from(LOWER, v2));
    assert_eq!(i.counters().older_version_queries_received, 1);
    // v2 queries carry no QRV/QQIC: nothing adopted.
    assert_eq!(i.snapshot(secs(1)).robustness, 2);
}

#[test]
fn v3_join_then_group_timer_expiry() {
    let mut i = started();
    let actions = i.handle(secs(10), v3(vec![record(RecordType::ChangeToExclude, G, &[])]));
    assert_eq!(changes(&actions), vec![(G, joined_exclude(&[]))]);
    assert!(sent_queries(&actions).is_empty(), "TO_EX {{}} on a new group queries nothing");
    assert!(i.wants(S1, G));
    assert!(!i.wants(S1, Ipv4Addr::new(239, 9, 9, 9)));
    assert_eq!(
        i.members().collect::<Vec<_>>(),
        vec![Membership { group: G, mode: FilterMode::Exclude, sources: vec![] }]
    );
    // Group Membership Interval = 260 s.
    let log = run_until(&mut i, secs(269));
    assert!(
        changes(&log.into_iter().map(|(_, a)| a).collect::<Vec<_>>()).is_empty(),
        "not yet expired at 269 s"
    );
    let log = run_until(&mut i, secs(270));
    assert_eq!(
        log,
        vec![(secs(270), Action::MembershipChanged { group: G, change: MembershipChange::Left })]
    );
    assert!(!i.wants(S1, G));
}

#[test]
fn v2_leave_sends_last_member_queries_and_expires_after_lmqt() {
    let mut i = started();
    i.handle(secs(10), received(HOST, IgmpRepr::ReportV2 { group: G }));
    let actions = i.handle(secs(20), received(HOST, IgmpRepr::Leave { group: G }));
    let q = sent_queries(&actions);
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].0, G);
    assert_eq!(q[0].1.group, G);
    assert_eq!(q[0].1.max_resp_code, 10, "Max Resp Time = LMQI = 1 s");
    assert!(!q[0].1.suppress_router_processing);
    assert!(changes(&actions).is_empty(), "still a member until the queries time out");
    // LMQC = 2: one retransmission after LMQI, then expiry at exactly LMQI * LMQC.
    let log = run_until(&mut i, secs(25));
    let (times, actions): (Vec<_>, Vec<_>) = log.into_iter().unzip();
    assert_eq!(times, vec![secs(21), secs(22)]);
    assert_eq!(sent_queries(&actions[..1]).len(), 1);
    assert_eq!(actions[1], Action::MembershipChanged { group: G, change: MembershipChange::Left });
    assert_eq!(i.counters().group_queries_sent, 2);
    assert_eq!(i.counters().leaves, 1);
}

#[test]
fn report_during_last_member_queries_keeps_the_group_and_sets_s_flag() {
    let mut i = started();
    i.handle(secs(10), v3(vec![record(RecordType::ChangeToExclude, G, &[])]));
    i.handle(secs(20), v3(vec![record(RecordType::ChangeToInclude, G, &[])]));
    // Another listener answers the first query.
    i.handle(ms(20_500), v3(vec![record(RecordType::ModeIsExclude, G, &[])]));
    let log = run_until(&mut i, secs(30));
    let actions: Vec<Action> = log.into_iter().map(|(_, a)| a).collect();
    let q = sent_queries(&actions);
    assert_eq!(q.len(), 1);
    assert!(q[0].1.suppress_router_processing, "group timer above LMQT: retransmission carries S");
    assert!(changes(&actions).is_empty());
    assert!(i.wants(S1, G));
}

#[test]
fn linux_to_in_empty_is_a_leave() {
    let mut i = started();
    i.handle(secs(10), v3(vec![record(RecordType::ChangeToExclude, G, &[])]));
    let actions = i.handle(secs(15), v3(vec![record(RecordType::ChangeToInclude, G, &[])]));
    assert_eq!(sent_queries(&actions).len(), 1);
    let log = run_until(&mut i, secs(17));
    assert_eq!(
        log.last(),
        Some(&(secs(17), Action::MembershipChanged { group: G, change: MembershipChange::Left }))
    );
}

#[test]
fn source_specific_include_join_and_block() {
    let mut i = started();
    let actions = i.handle(secs(10), v3(vec![record(RecordType::AllowNewSources, G, &[S1])]));
    assert_eq!(
        changes(&actions),
        vec![(G, MembershipChange::Joined { mode: FilterMode::Include, sources: vec![S1] })]
    );
    assert!(i.wants(S1, G));
    assert!(!i.wants(S2, G));
    // BLOCK {S1}: group-and-source-specific query, S1 lowered to LMQT.
    let actions = i.handle(secs(20), v3(vec![record(RecordType::BlockOldSources, G, &[S1])]));
    let q = sent_queries(&actions);
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].1.sources, vec![S1]);
    assert!(!q[0].1.suppress_router_processing);
    assert_eq!(i.counters().group_source_queries_sent, 1);
    let log = run_until(&mut i, secs(22));
    let (times, actions): (Vec<_>, Vec<_>) = log.into_iter().unzip();
    assert_eq!(times, vec![secs(21), secs(22)]);
    assert_eq!(sent_queries(&actions[..1])[0].1.sources, vec![S1]);
    assert_eq!(actions[1], Action::MembershipChanged { group: G, change: MembershipChange::Left });
    assert!(!i.wants(S1, G));
}

#[test]
fn exclude_source_list_blocks_only_those_sources() {
    let mut i = started();
    let actions = i.handle(secs(10), v3(vec![record(RecordType::ChangeToExclude, G, &[S1])]));
    assert_eq!(changes(&actions), vec![(G, joined_exclude(&[S1]))]);
    assert!(!i.wants(S1, G));
    assert!(i.wants(S2, G));
    // ALLOW {S1} unblocks it.
    let actions = i.handle(secs(11), v3(vec![record(RecordType::AllowNewSources, G, &[S1])]));
    assert_eq!(
        changes(&actions),
        vec![(G, MembershipChange::Changed { mode: FilterMode::Exclude, sources: vec![] })]
    );
    assert!(i.wants(S1, G));
}

#[test]
fn exclude_group_timer_expiry_keeps_requested_sources_in_include() {
    let mut i = started();
    i.handle(secs(0), v3(vec![record(RecordType::ChangeToExclude, G, &[])]));
    i.handle(secs(100), v3(vec![record(RecordType::AllowNewSources, G, &[S1])]));
    let log = run_until(&mut i, secs(260));
    assert_eq!(
        changes(&log.into_iter().map(|(_, a)| a).collect::<Vec<_>>()),
        vec![(G, MembershipChange::Changed { mode: FilterMode::Include, sources: vec![S1] })]
    );
    assert!(i.wants(S1, G));
    assert!(!i.wants(S2, G));
    let log = run_until(&mut i, secs(360));
    assert_eq!(
        changes(&log.into_iter().map(|(_, a)| a).collect::<Vec<_>>()),
        vec![(G, MembershipChange::Left)]
    );
}

#[test]
fn v2_compat_mode_ignores_block_and_to_ex_sources_then_recovers() {
    let mut i = started();
    i.handle(secs(0), received(HOST, IgmpRepr::ReportV2 { group: G }));
    assert_eq!(i.snapshot(secs(0)).groups[0].compat_mode, IgmpVersion::V2);
    // In v2 mode TO_EX {S1} is TO_EX {}: S1 stays wanted.
    i.handle(secs(1), v3(vec![record(RecordType::ChangeToExclude, G, &[S1])]));
    assert!(i.wants(S1, G));
    // Keep the group alive with v3 current-state reports only.
    i.handle(secs(200), v3(vec![record(RecordType::ModeIsExclude, G, &[])]));
    // BLOCK is ignored while the v2 host timer (260 s) runs.
    i.handle(secs(201), v3(vec![record(RecordType::BlockOldSources, G, &[S1])]));
    assert!(i.snapshot(secs(201)).groups[0].sources.is_empty());
    run_until(&mut i, secs(260));
    assert_eq!(i.snapshot(secs(260)).groups[0].compat_mode, IgmpVersion::V3);
    // Back in v3 mode the source list of TO_EX counts: S1 joins X with the group timer and
    // is queried; when nobody claims it within LMQT it moves to the blocked set.
    let actions = i.handle(secs(261), v3(vec![record(RecordType::ChangeToExclude, G, &[S1])]));
    assert_eq!(sent_queries(&actions)[0].1.sources, vec![S1]);
    assert!(i.wants(S1, G));
    let log = run_until(&mut i, secs(263));
    assert_eq!(
        changes(&log.into_iter().map(|(_, a)| a).collect::<Vec<_>>()),
        vec![(G, MembershipChange::Changed { mode: FilterMode::Exclude, sources: vec![S1] })]
    );
    assert!(!i.wants(S1, G));
}

#[test]
fn v1_compat_mode_ignores_leaves_until_older_host_timer_expires() {
    let mut i = started();
    i.handle(secs(0), received(HOST, IgmpRepr::ReportV1 { group: G }));
    i.handle(secs(1), received(HOST, IgmpRepr::ReportV2 { group: G }));
    let snap = i.snapshot(secs(1));
    assert_eq!(snap.groups[0].compat_mode, IgmpVersion::V1);
    assert_eq!(snap.groups[0].v1_host_timer_ms, Some(259_000));
    let actions = i.handle(secs(2), received(HOST, IgmpRepr::Leave { group: G }));
    assert!(actions.is_empty(), "leave ignored in v1 mode: {actions:?}");
    assert_eq!(i.counters().leaves, 1);
    // v2 reports keep the group (and the v2 timer) alive; the v1 timer lapses at 260 s.
    i.handle(secs(250), received(HOST, IgmpRepr::ReportV2 { group: G }));
    run_until(&mut i, secs(260));
    assert_eq!(i.snapshot(secs(260)).groups[0].compat_mode, IgmpVersion::V2);
    let actions = i.handle(secs(261), received(HOST, IgmpRepr::Leave { group: G }));
    assert_eq!(sent_queries(&actions).len(), 1, "v2 mode: leave triggers queries");
}

#[test]
fn bad_and_link_local_reports_are_counted_and_skipped() {
    let mut i = started();
    let actions = i.handle(
        secs(1),
        v3(vec![
            record(RecordType::ChangeToExclude, Ipv4Addr::new(224, 0, 0, 22), &[]),
            record(RecordType::Unknown(9), G, &[]),
            record(RecordType::AllowNewSources, G, &[Ipv4Addr::new(224, 1, 1, 1)]),
            record(RecordType::ChangeToExclude, Ipv4Addr::new(10, 0, 0, 1), &[]),
            record(RecordType::ChangeToExclude, Ipv4Addr::new(239, 2, 2, 2), &[]),
        ]),
    );
    // The one good record still counts.
    assert_eq!(changes(&actions), vec![(Ipv4Addr::new(239, 2, 2, 2), joined_exclude(&[]))]);
    i.handle(secs(2), received(HOST, IgmpRepr::ReportV2 { group: Ipv4Addr::new(224, 0, 0, 251) }));
    let c = i.counters();
    assert_eq!(c.link_local_ignored, 2);
    assert_eq!(c.bad_records, 2);
    assert_eq!(c.bad_group, 1);
    assert_eq!(c.bad(), 3);
    assert_eq!(c.reports_v3, 1);
    assert_eq!(c.reports_v2, 1);
}

#[test]
fn group_limit_drops_new_groups_only() {
    let config = IgmpConfig { max_groups: Some(1), ..IgmpConfig::default() };
    let mut i = IgmpInterface::new("veth0", ME, config).unwrap();
    i.handle(secs(0), Event::Start);
    let other = Ipv4Addr::new(239, 1, 1, 2);
    i.handle(secs(1), v3(vec![record(RecordType::ChangeToExclude, G, &[])]));
    let actions = i.handle(
        secs(2),
        v3(vec![
            record(RecordType::ChangeToExclude, other, &[]),
            record(RecordType::AllowNewSources, G, &[S1]),
        ]),
    );
    assert!(changes(&actions).is_empty(), "{actions:?}");
    i.handle(secs(3), received(HOST, IgmpRepr::ReportV2 { group: other }));
    assert_eq!(i.counters().group_limit_dropped, 2);
    assert_eq!(i.members().count(), 1);
    assert_eq!(i.snapshot(secs(3)).groups[0].sources.len(), 1, "the known group still updates");
}

#[test]
fn non_querier_follows_the_queriers_specific_queries_and_honours_s_flag() {
    let mut i = started();
    i.handle(secs(0), query_from(LOWER, v3_query(Ipv4Addr::UNSPECIFIED, &[], false)));
    i.handle(secs(1), v3(vec![record(RecordType::ChangeToExclude, G, &[])]));
    let actions = i.handle(secs(2), v3(vec![record(RecordType::ChangeToInclude, G, &[])]));
    assert!(sent_queries(&actions).is_empty(), "only the querier queries");
    assert_eq!(i.snapshot(secs(2)).groups[0].group_timer_ms, Some(259_000));
    // With S set the timers stay.
    i.handle(secs(2), query_from(LOWER, v3_query(G, &[], true)));
    assert_eq!(i.snapshot(secs(2)).groups[0].group_timer_ms, Some(259_000));
    // Without S: lowered to the querier's LMQT (1 s * 2).
    i.handle(secs(2), query_from(LOWER, v3_query(G, &[], false)));
    assert_eq!(i.snapshot(secs(2)).groups[0].group_timer_ms, Some(2_000));
    let log = run_until(&mut i, secs(4));
    assert_eq!(
        log,
        vec![(secs(4), Action::MembershipChanged { group: G, change: MembershipChange::Left })]
    );
}

#[test]
fn losing_the_querier_role_cancels_pending_specific_queries() {
    let mut i = started();
    i.handle(secs(1), v3(vec![record(RecordType::ChangeToExclude, G, &[])]));
    i.handle(secs(2), v3(vec![record(RecordType::ChangeToInclude, G, &[])]));
    i.handle(ms(2_100), query_from(LOWER, v3_query(Ipv4Addr::UNSPECIFIED, &[], false)));
    let log = run_until(&mut i, secs(10));
    assert!(sent_queries(&log.iter().map(|(_, a)| a.clone()).collect::<Vec<_>>()).is_empty());
    // The lowered group timer still runs out.
    assert_eq!(
        log,
        vec![(secs(4), Action::MembershipChanged { group: G, change: MembershipChange::Left })]
    );
}

#[test]
fn nothing_happens_while_down_and_stop_forgets_everything() {
    let mut i = IgmpInterface::new("veth0", ME, IgmpConfig::default()).unwrap();
    let actions = i.handle(secs(0), v3(vec![record(RecordType::ChangeToExclude, G, &[])]));
    assert!(actions.is_empty());
    assert_eq!(i.counters().not_running, 1);
    assert!(i.handle(secs(0), Event::Stop).is_empty(), "Stop while down is logged, not acted on");
    i.handle(secs(1), Event::Start);
    i.handle(secs(2), v3(vec![record(RecordType::ChangeToExclude, G, &[])]));
    let actions = i.handle(secs(3), Event::Stop);
    assert_eq!(
        actions,
        vec![
            Action::RoleChanged { role: QuerierState::Down, querier: None },
            Action::MembershipChanged { group: G, change: MembershipChange::Left }
        ]
    );
    assert_eq!(i.next_deadline(), None);
    assert_eq!(i.members().count(), 0);
}

#[test]
fn v2_querier_sends_v2_queries_without_source_lists() {
    let config = IgmpConfig { version: IgmpVersion::V2, ..IgmpConfig::default() };
    let mut i = IgmpInterface::new("veth0", ME, config).unwrap();
    let actions = i.handle(secs(0), Event::Start);
    let q = sent_queries(&actions);
    assert_eq!(q[0].1.version, QueryVersion::V2);
    assert_eq!(q[0].1.max_resp_code, 100);
    assert_eq!((q[0].1.qrv, q[0].1.qqic), (0, 0));
    i.handle(secs(1), v3(vec![record(RecordType::AllowNewSources, G, &[S1])]));
    let actions = i.handle(secs(2), v3(vec![record(RecordType::BlockOldSources, G, &[S1])]));
    assert!(sent_queries(&actions).is_empty(), "v2 cannot ask about sources");
}

#[test]
fn snapshot_reports_timers_and_round_trips_through_json() {
    let mut i = started();
    i.handle(secs(10), v3(vec![record(RecordType::ChangeToExclude, G, &[S1])]));
    i.handle(secs(20), v3(vec![record(RecordType::AllowNewSources, G, &[S2])]));
    let snap = i.snapshot(secs(30));
    assert_eq!(snap.interface, "veth0");
    assert!(snap.is_querier);
    assert_eq!(snap.querier, Some(ME));
    let g = &snap.groups[0];
    assert_eq!(g.filter_mode, FilterMode::Exclude);
    assert_eq!(g.group_timer_ms, Some(240_000));
    assert_eq!(g.last_reporter, Some(HOST));
    assert_eq!(g.uptime_ms, 20_000);
    assert_eq!(
        g.sources,
        vec![
            SourceSnapshot { source: S1, timer_ms: None, forwarding: false },
            SourceSnapshot { source: S2, timer_ms: Some(250_000), forwarding: true },
        ]
    );
    let json = serde_json::to_string(&snap).unwrap();
    assert!(json.contains(r#""filter_mode":"exclude""#), "{json}");
    let back: IgmpSnapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(back, snap);
}

#[test]
fn events_and_actions_round_trip_through_json() {
    let event = v3(vec![record(RecordType::ChangeToExclude, G, &[S1])]);
    let json = serde_json::to_string(&event).unwrap();
    assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), event);
    let action = Action::Send { dst: G, msg: IgmpRepr::Query(v3_query(G, &[S1], true)) };
    let json = serde_json::to_string(&action).unwrap();
    assert_eq!(serde_json::from_str::<Action>(&json).unwrap(), action);
}

mod properties {
    //! Random report/query/time sequences: no panics, the group invariants of `group.rs` hold
    //! after every event, timers never spin, and `wants` agrees with `members`.

    use proptest::prelude::*;

    use super::*;

    const GROUPS: [Ipv4Addr; 2] = [G, Ipv4Addr::new(239, 1, 1, 2)];
    const SOURCES: [Ipv4Addr; 3] = [S1, S2, Ipv4Addr::new(10, 1, 0, 3)];

    #[derive(Clone, Debug)]
    enum Op {
        V3 { kind: u8, group: usize, sources: u8 },
        V2Report { group: usize },
        V1Report { group: usize },
        Leave { group: usize },
        Query { lower: bool, suppress: bool, group: Option<usize>, sources: u8 },
        Wait,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1u8..=6, 0..2usize, 0u8..8).prop_map(|(kind, group, sources)| Op::V3 { kind, group, sources }),
            1 => (0..2usize).prop_map(|group| Op::V2Report { group }),
            1 => (0..2usize).prop_map(|group| Op::V1Report { group }),
            1 => (0..2usize).prop_map(|group| Op::Leave { group }),
            1 => (any::<bool>(), any::<bool>(), proptest::option::of(0..2usize), 0u8..8)
                .prop_map(|(lower, suppress, group, sources)| Op::Query { lower, suppress, group, sources }),
            1 => Just(Op::Wait),
        ]
    }

    fn pick(mask: u8) -> Vec<Ipv4Addr> {
        SOURCES.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, s)| *s).collect()
    }

    fn event(op: &Op) -> Option<Event> {
        let record_type = |k: u8| RecordType::from(k);
        Some(match op {
            Op::V3 { kind, group, sources } => {
                v3(vec![record(record_type(*kind), GROUPS[*group], &pick(*sources))])
            }
            Op::V2Report { group } => received(HOST, IgmpRepr::ReportV2 { group: GROUPS[*group] }),
            Op::V1Report { group } => received(HOST, IgmpRepr::ReportV1 { group: GROUPS[*group] }),
            Op::Leave { group } => received(HOST, IgmpRepr::Leave { group: GROUPS[*group] }),
            Op::Query { lower, suppress, group, sources } => {
                let g = group.map_or(Ipv4Addr::UNSPECIFIED, |g| GROUPS[g]);
                let s = if group.is_some() { pick(*sources) } else { vec![] };
                query_from(if *lower { LOWER } else { HIGHER }, v3_query(g, &s, *suppress))
            }
            Op::Wait => return None,
        })
    }

    fn check_invariants(i: &IgmpInterface, now: Timestamp) -> Result<(), TestCaseError> {
        for (addr, g) in &i.groups {
            prop_assert!(!g.is_empty(), "{addr}: INCLUDE {{}} must not exist");
            match g.mode {
                FilterMode::Include => {
                    prop_assert!(!g.group_timer.is_running(), "{addr}: INCLUDE with group timer");
                    prop_assert!(g.sources.values().all(|s| s.timer.is_running()));
                }
                FilterMode::Exclude => {
                    prop_assert!(g.group_timer.is_running(), "{addr}: EXCLUDE without group timer");
                }
            }
            if !i.is_querier() {
                prop_assert!(!g.has_pending_queries(), "{addr}: non-querier with pending queries");
            }
        }
        prop_assert!(i.next_deadline().is_none_or(|d| d > now), "a due timer was left unrun");
        for m in i.members() {
            for s in SOURCES {
                let listed = m.sources.contains(&s);
                let wanted = if m.mode == FilterMode::Include { listed } else { !listed };
                prop_assert_eq!(i.wants(s, m.group), wanted);
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn random_sequences_keep_the_invariants(ops in proptest::collection::vec((0u64..5_000, op()), 1..60)) {
            let mut i = started();
            let mut now = Timestamp::ZERO;
            for (dt, op) in ops {
                now += Duration::from_millis(dt);
                let mut ticks = 0;
                while let Some(at) = i.next_deadline().filter(|d| *d <= now) {
                    i.handle(at, Event::Tick);
                    ticks += 1;
                    prop_assert!(ticks < 1_000, "timers spin at {at}");
                }
                if let Some(event) = event(&op) {
                    i.handle(now, event);
                }
                check_invariants(&i, now)?;
            }
        }
    }
}
