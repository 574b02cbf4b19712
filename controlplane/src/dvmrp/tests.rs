//! Unit tests of the DVMRP core with injected time: every timer path, and two- and
//! three-router scenarios run in memory (each core's `Send` actions delivered as the other
//! cores' `Received` events on a virtual clock).

use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::Duration;

use dataplane_api::{IfIndex, MfibRoute, MfibUpdate, Oif, Punt};
use wire::dvmrp::{
    DvmrpRepr, Message, ReportBlock, Route as WireRoute, ALL_DVMRP_ROUTERS, CAP_GENID, CAP_PRUNE,
};

use super::*;
use crate::timer::Timestamp;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn t(secs: u64) -> Timestamp {
    Timestamp::from_secs(secs)
}

fn iface(ifindex: u32, addr: &str, prefix_len: u8) -> DvmrpInterface {
    DvmrpInterface {
        ifindex: IfIndex(ifindex),
        addr: ip(addr),
        prefix_len,
        metric: 1,
        threshold: 1,
    }
}

fn repr(message: Message) -> DvmrpRepr {
    DvmrpRepr { capabilities: CAP_PRUNE | CAP_GENID, minor: 0xff, major: 3, message }
}

fn probe(genid: u32, neighbors: &[&str]) -> DvmrpRepr {
    repr(Message::Probe {
        generation_id: genid,
        neighbors: neighbors.iter().map(|n| ip(n)).collect(),
    })
}

fn report(routes: &[(&str, u8, u8)]) -> DvmrpRepr {
    let blocks = routes
        .iter()
        .map(|(origin, prefix_len, metric)| ReportBlock {
            mask: Ipv4Addr::from_bits(route::prefix_mask(*prefix_len)),
            routes: vec![WireRoute { origin: ip(origin), metric: *metric }],
        })
        .collect();
    repr(Message::Report { blocks })
}

fn sends(actions: &[Action]) -> Vec<(IfIndex, Ipv4Addr, &DvmrpRepr)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { ifindex, dst, msg } => Some((*ifindex, *dst, msg)),
            _ => None,
        })
        .collect()
}

fn installs(actions: &[Action]) -> Vec<&MfibRoute> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Mfib(MfibUpdate::Install(r)) => Some(r),
            _ => None,
        })
        .collect()
}

fn reported_metrics(actions: &[Action]) -> Vec<(Ipv4Addr, u8)> {
    sends(actions)
        .into_iter()
        .filter_map(|(_, _, m)| match &m.message {
            Message::Report { blocks } => Some(
                blocks
                    .iter()
                    .flat_map(|b| b.routes.iter().map(|r| (r.origin, r.metric)))
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .flatten()
        .collect()
}

fn oif(i: u32) -> Oif {
    Oif { ifindex: IfIndex(i), ttl_threshold: 1 }
}

// ===== single router against a scripted neighbour =====

/// R: if1 10.0.1.1/24 (host LAN), if2 10.0.12.1/24 towards N = 10.0.12.2 (scripted).
fn single() -> DvmrpRouter {
    let mut r = DvmrpRouter::new(
        DvmrpConfig::default(),
        vec![iface(1, "10.0.1.1", 24), iface(2, "10.0.12.1", 24)],
        0x1111,
    );
    r.handle(t(0), Event::Start);
    r
}

const N: &str = "10.0.12.2";

fn with_neighbor(r: &mut DvmrpRouter, now: Timestamp) -> Vec<Action> {
    r.handle(
        now,
        Event::Received { ifindex: IfIndex(2), src: ip(N), msg: probe(7, &["10.0.12.1"]) },
    )
}

#[test]
fn start_probes_every_interface_and_every_probe_interval() {
    let mut r = DvmrpRouter::new(
        DvmrpConfig::default(),
        vec![iface(1, "10.0.1.1", 24), iface(2, "10.0.12.1", 24)],
        42,
    );
    assert_eq!(r.next_deadline(), None, "a stopped router schedules nothing");
    let out = r.handle(t(0), Event::Start);
    let probes = sends(&out);
    assert_eq!(probes.len(), 2);
    for (_, dst, msg) in &probes {
        assert_eq!(*dst, ALL_DVMRP_ROUTERS);
        assert_eq!((msg.capabilities, msg.minor, msg.major), (0x06, 0xff, 3));
        assert_eq!(msg.message, Message::Probe { generation_id: 42, neighbors: vec![] });
    }
    assert_eq!(r.next_deadline(), Some(t(10)));
    assert!(sends(&r.handle(Timestamp::from_millis(9_999), Event::Tick)).is_empty());
    assert_eq!(sends(&r.handle(t(10), Event::Tick)).len(), 2);
    assert_eq!(r.next_deadline(), Some(t(20)));
}

#[test]
fn new_neighbor_gets_an_immediate_probe_and_two_way_gets_the_full_table() {
    let mut r = single();
    // One-way first: N does not list us yet.
    let out =
        r.handle(t(1), Event::Received { ifindex: IfIndex(2), src: ip(N), msg: probe(7, &[]) });
    let s = sends(&out);
    assert_eq!(s.len(), 1, "only the immediate probe: {out:?}");
    assert_eq!(s[0].2.message, Message::Probe { generation_id: 0x1111, neighbors: vec![ip(N)] });
    assert!(!r.snapshot(t(1)).neighbors[0].two_way);
    // A report from a one-way neighbour is not accepted.
    let out = r.handle(
        t(1),
        Event::Received { ifindex: IfIndex(2), src: ip(N), msg: report(&[("10.0.2.0", 24, 1)]) },
    );
    assert!(out.contains(&Action::Debug(DebugEvent::Ignored {
        ifindex: Some(IfIndex(2)),
        from: Some(ip(N)),
        reason: IgnoreReason::NotTwoWay
    })));
    assert_eq!(r.snapshot(t(1)).routes.len(), 2, "only the connected routes");
    // Two-way: our table goes out at once, without our own subnet on that link.
    let out = with_neighbor(&mut r, t(2));
    assert!(out
        .contains(&Action::Debug(DebugEvent::NeighborTwoWay { ifindex: IfIndex(2), addr: ip(N) })));
    assert_eq!(reported_metrics(&out), vec![(ip("10.0.1.0"), 1)]);
}

#[test]
fn neighbor_without_prune_capability_is_rejected() {
    let mut r = single();
    let mut msg = probe(7, &["10.0.12.1"]);
    msg.capabilities = CAP_GENID;
    let out = r.handle(t(1), Event::Received { ifindex: IfIndex(2), src: ip(N), msg });
    assert!(sends(&out).is_empty());
    assert!(matches!(
        out[..],
        [Action::Debug(DebugEvent::Ignored {
            reason: IgnoreReason::NoPruneCapability { capabilities: 0x04 },
            ..
        })]
    ));
    assert!(r.snapshot(t(1)).neighbors.is_empty());
}

#[test]
fn neighbor_times_out_after_35_s_without_probes() {
    let mut r = single();
    with_neighbor(&mut r, t(0));
    r.handle(
        t(0),
        Event::Received { ifindex: IfIndex(2), src: ip(N), msg: report(&[("10.0.2.0", 24, 1)]) },
    );
    assert_eq!(r.next_deadline(), Some(t(1)), "triggered report for the new route");
    let out = r.handle(Timestamp::from_millis(34_999), Event::Tick);
    assert!(!out.iter().any(|a| matches!(a, Action::Debug(DebugEvent::NeighborDown { .. }))));
    let out = r.handle(t(35), Event::Tick);
    assert!(out.contains(&Action::Debug(DebugEvent::NeighborDown {
        ifindex: IfIndex(2),
        addr: ip(N),
        reason: NeighborDownReason::Timeout
    })));
    assert!(r.snapshot(t(35)).neighbors.is_empty());
    // Its routes went with it: unreachable now, held down.
    let route = r.snapshot(t(35)).routes.into_iter().find(|r| r.origin == ip("10.0.2.0")).unwrap();
    assert_eq!(route.metric, 32);
}

#[test]
fn route_expires_at_200_s_and_is_deleted_at_340_s() {
    let mut r = single();
    with_neighbor(&mut r, t(0));
    r.handle(
        t(0),
        Event::Received { ifindex: IfIndex(2), src: ip(N), msg: report(&[("10.0.2.0", 24, 1)]) },
    );
    let metric = |r: &DvmrpRouter, now| {
        r.snapshot(now).routes.iter().find(|x| x.origin == ip("10.0.2.0")).map(|x| x.metric)
    };
    assert_eq!(metric(&r, t(0)), Some(2));
    // Keep the neighbour alive with probes, but send no more reports.
    let mut now = 0;
    while now < 199 {
        now += 1;
        if now % 10 == 0 {
            with_neighbor(&mut r, t(now));
        }
        r.handle(t(now), Event::Tick);
    }
    assert_eq!(metric(&r, t(199)), Some(2));
    let out = r.handle(t(200), Event::Tick);
    assert!(out.contains(&Action::Debug(DebugEvent::RouteChanged {
        origin: ip("10.0.2.0"),
        prefix_len: 24,
        metric: 32,
        upstream: None,
        gateway: None
    })));
    // The expiry is reported (triggered) with metric 32.
    let out = r.handle(t(201), Event::Tick);
    assert!(reported_metrics(&out).contains(&(ip("10.0.2.0"), 32)), "{out:?}");
    for s in 202..340 {
        if s % 10 == 0 {
            with_neighbor(&mut r, t(s));
        }
        r.handle(t(s), Event::Tick);
    }
    assert_eq!(metric(&r, t(339)), Some(32));
    let out = r.handle(t(340), Event::Tick);
    assert!(out.contains(&Action::Debug(DebugEvent::RouteDeleted {
        origin: ip("10.0.2.0"),
        prefix_len: 24
    })));
    assert_eq!(metric(&r, t(340)), None);
}

#[test]
fn triggered_reports_are_coalesced_within_5_s() {
    let cfg =
        DvmrpConfig { triggered_report_delay: Duration::from_secs(5), ..DvmrpConfig::default() };
    let mut r =
        DvmrpRouter::new(cfg, vec![iface(1, "10.0.1.1", 24), iface(2, "10.0.12.1", 24)], 0x1111);
    r.handle(t(0), Event::Start);
    with_neighbor(&mut r, t(0));
    let out = r.handle(
        t(1),
        Event::Received { ifindex: IfIndex(2), src: ip(N), msg: report(&[("10.0.2.0", 24, 1)]) },
    );
    assert!(reported_metrics(&out).is_empty(), "not at once");
    let out = r.handle(
        t(3),
        Event::Received { ifindex: IfIndex(2), src: ip(N), msg: report(&[("10.0.3.0", 24, 2)]) },
    );
    assert!(reported_metrics(&out).is_empty());
    assert_eq!(r.next_deadline(), Some(t(6)));
    let out = r.handle(t(6), Event::Tick);
    // One report with both changes, poison-reversed towards N (learned from it).
    let reports: Vec<_> = sends(&out)
        .into_iter()
        .filter(|(_, _, m)| matches!(m.message, Message::Report { .. }))
        .collect();
    assert_eq!(reports.len(), 1);
    assert_eq!(reported_metrics(&out), vec![(ip("10.0.2.0"), 34), (ip("10.0.3.0"), 35)]);
    assert!(!r.triggered_timer.is_running());
}

#[test]
fn full_report_every_60_s_with_poison_reverse() {
    let mut r = single();
    with_neighbor(&mut r, t(0));
    r.handle(
        t(0),
        Event::Received { ifindex: IfIndex(2), src: ip(N), msg: report(&[("10.0.2.0", 24, 3)]) },
    );
    let mut out = Vec::new();
    for s in 1..=60 {
        if s % 10 == 0 {
            with_neighbor(&mut r, t(s));
        }
        out = r.handle(t(s), Event::Tick);
    }
    let mut metrics = reported_metrics(&out);
    metrics.sort();
    assert_eq!(metrics, vec![(ip("10.0.1.0"), 1), (ip("10.0.2.0"), 36)]);
}

#[test]
fn reports_are_split_into_packets_of_at_most_576_bytes() {
    let mut r = single();
    with_neighbor(&mut r, t(0));
    // 300 /24 origins: 4 bytes each, so more than one 544-byte report.
    let blocks = vec![ReportBlock {
        mask: ip("255.255.255.0"),
        routes: (0..300u32)
            .map(|i| WireRoute { origin: Ipv4Addr::from_bits(0x0b00_0000 | (i << 8)), metric: 1 })
            .collect(),
    }];
    r.handle(
        t(0),
        Event::Received { ifindex: IfIndex(2), src: ip(N), msg: repr(Message::Report { blocks }) },
    );
    let out = r.handle(t(1), Event::Tick);
    let reports: Vec<_> = sends(&out)
        .into_iter()
        .filter_map(|(_, _, m)| match &m.message {
            Message::Report { blocks } => Some(blocks.clone()),
            _ => None,
        })
        .collect();
    assert!(reports.len() >= 3, "{} packets", reports.len());
    let mut total = 0;
    for blocks in &reports {
        let len: usize = blocks.iter().map(|b| 3 + b.routes.len() * 4).sum();
        assert!(len <= route::MAX_REPORT_DATA, "{len} bytes of report data");
        total += blocks.iter().map(|b| b.routes.len()).sum::<usize>();
    }
    assert_eq!(total, 300);
}

#[test]
fn stop_reports_every_route_with_infinity() {
    let mut r = single();
    with_neighbor(&mut r, t(0));
    r.handle(
        t(0),
        Event::Received { ifindex: IfIndex(2), src: ip(N), msg: report(&[("10.0.2.0", 24, 1)]) },
    );
    let out = r.handle(t(1), Event::Stop);
    let mut metrics = reported_metrics(&out);
    metrics.sort();
    assert_eq!(metrics, vec![(ip("10.0.1.0"), 32), (ip("10.0.2.0"), 32)]);
    assert_eq!(r.next_deadline(), None);
}

/// R has N as a dependent for its connected 10.0.1.0/24 and data from 10.0.1.10 arrives.
fn forwarding_to_n() -> DvmrpRouter {
    let mut r = single();
    with_neighbor(&mut r, t(0));
    r.handle(
        t(0),
        Event::Received { ifindex: IfIndex(2), src: ip(N), msg: report(&[("10.0.1.0", 24, 34)]) },
    );
    let out = r.handle(
        t(1),
        Event::DataArrived(Punt {
            iif: IfIndex(1),
            source: ip("10.0.1.10"),
            group: ip("239.1.1.1"),
        }),
    );
    assert_eq!(installs(&out)[0].oifs, vec![oif(2)]);
    assert_eq!(installs(&out)[0].iif, IfIndex(1));
    r
}

#[test]
fn received_prune_is_honoured_for_its_lifetime() {
    let mut r = forwarding_to_n();
    let prune = repr(Message::Prune {
        source: ip("10.0.1.0"),
        group: ip("239.1.1.1"),
        lifetime: 60,
        source_mask: None,
    });
    let out = r.handle(t(2), Event::Received { ifindex: IfIndex(2), src: ip(N), msg: prune });
    assert_eq!(installs(&out)[0].oifs, vec![]);
    assert!(sends(&out).is_empty(), "the source is directly connected: nobody to prune");
    let state = r.snapshot(t(2)).mroutes;
    assert_eq!(
        state[0].pruned,
        vec![PrunedInterface { ifindex: IfIndex(2), neighbor: ip(N), remaining_secs: 60 }]
    );
    for s in 3..62 {
        if s % 10 == 0 {
            with_neighbor(&mut r, t(s));
        }
        assert!(installs(&r.handle(t(s), Event::Tick)).is_empty(), "at {s} s");
    }
    assert!(installs(&r.handle(Timestamp::from_millis(61_999), Event::Tick)).is_empty());
    let out = r.handle(t(62), Event::Tick);
    assert_eq!(installs(&out)[0].oifs, vec![oif(2)], "flooding again once the prune expired");
}

#[test]
fn short_prune_lifetimes_are_ignored() {
    let mut r = forwarding_to_n();
    let prune = repr(Message::Prune {
        source: ip("10.0.1.10"),
        group: ip("239.1.1.1"),
        lifetime: 5,
        source_mask: None,
    });
    let out = r.handle(t(2), Event::Received { ifindex: IfIndex(2), src: ip(N), msg: prune });
    assert!(installs(&out).is_empty());
    assert!(out.iter().any(|a| matches!(
        a,
        Action::Debug(DebugEvent::Ignored {
            reason: IgnoreReason::ShortPruneLifetime { lifetime: 5 },
            ..
        })
    )));
}

#[test]
fn grafts_are_always_acked_with_the_same_data() {
    let mut r = single();
    let graft = repr(Message::Graft { source: ip("192.0.2.1"), group: ip("239.9.9.9") });
    let out = r.handle(t(1), Event::Received { ifindex: IfIndex(2), src: ip(N), msg: graft });
    let s = sends(&out);
    assert_eq!(s.len(), 1);
    assert_eq!((s[0].0, s[0].1), (IfIndex(2), ip(N)));
    assert_eq!(
        s[0].2.message,
        Message::GraftAck { source: ip("192.0.2.1"), group: ip("239.9.9.9") }
    );
}

#[test]
fn graft_from_a_pruned_neighbor_restores_forwarding() {
    let mut r = forwarding_to_n();
    let prune = repr(Message::Prune {
        source: ip("10.0.1.0"),
        group: ip("239.1.1.1"),
        lifetime: 7200,
        source_mask: None,
    });
    r.handle(t(2), Event::Received { ifindex: IfIndex(2), src: ip(N), msg: prune });
    let graft = repr(Message::Graft { source: ip("10.0.1.0"), group: ip("239.1.1.1") });
    let out = r.handle(t(3), Event::Received { ifindex: IfIndex(2), src: ip(N), msg: graft });
    assert_eq!(installs(&out)[0].oifs, vec![oif(2)]);
    assert!(r.snapshot(t(3)).mroutes[0].pruned.is_empty());
}

/// R learns 10.0.2.0/24 (a remote source network) from upstream N.
fn downstream_of_n() -> DvmrpRouter {
    let mut r = single();
    with_neighbor(&mut r, t(0));
    r.handle(
        t(0),
        Event::Received { ifindex: IfIndex(2), src: ip(N), msg: report(&[("10.0.2.0", 24, 1)]) },
    );
    r
}

#[test]
fn data_without_members_or_dependents_is_pruned_upstream() {
    let mut r = downstream_of_n();
    let out = r.handle(
        t(1),
        Event::DataArrived(Punt {
            iif: IfIndex(2),
            source: ip("10.0.2.7"),
            group: ip("239.1.1.1"),
        }),
    );
    assert_eq!(
        installs(&out),
        vec![&MfibRoute {
            source: Some(ip("10.0.2.7")),
            group: ip("239.1.1.1"),
            iif: IfIndex(2),
            oifs: vec![],
            overlay_next_hops: vec![]
        }]
    );
    let s = sends(&out);
    assert_eq!(s.len(), 1);
    assert_eq!((s[0].0, s[0].1), (IfIndex(2), ip(N)));
    assert_eq!(
        s[0].2.message,
        Message::Prune {
            source: ip("10.0.2.0"),
            group: ip("239.1.1.1"),
            lifetime: 7200,
            source_mask: None
        },
        "mrouted's framing: the source network, the configured lifetime"
    );
    // More data for another host of the network: covered by the same prune.
    let out = r.handle(
        t(2),
        Event::DataArrived(Punt {
            iif: IfIndex(2),
            source: ip("10.0.2.8"),
            group: ip("239.1.1.1"),
        }),
    );
    assert!(sends(&out).is_empty());
    assert_eq!(installs(&out).len(), 1);
}

#[test]
fn last_leave_prunes_and_join_grafts_with_backoff_until_acked() {
    let mut r = downstream_of_n();
    let g = ip("239.1.1.1");
    r.handle(
        t(1),
        Event::LocalMembership { ifindex: IfIndex(1), group: g, source: None, present: true },
    );
    let out = r.handle(
        t(1),
        Event::DataArrived(Punt { iif: IfIndex(2), source: ip("10.0.2.7"), group: g }),
    );
    assert_eq!(installs(&out)[0].oifs, vec![oif(1)]);
    assert!(sends(&out).is_empty());
    // Last member leaves: prune at once.
    let out = r.handle(
        t(10),
        Event::LocalMembership { ifindex: IfIndex(1), group: g, source: None, present: false },
    );
    assert_eq!(installs(&out)[0].oifs, vec![]);
    assert!(matches!(sends(&out)[0].2.message, Message::Prune { .. }));
    // Member returns: graft, retransmitted after 5, 10, 20, 40, 40 s.
    let out = r.handle(
        t(20),
        Event::LocalMembership { ifindex: IfIndex(1), group: g, source: None, present: true },
    );
    assert_eq!(installs(&out)[0].oifs, vec![oif(1)]);
    let graft = Message::Graft { source: ip("10.0.2.0"), group: g };
    assert_eq!(sends(&out)[0].2.message, graft);
    let mut sent_at = vec![20];
    for s in 21..=140 {
        if s % 10 == 0 {
            with_neighbor(&mut r, t(s));
        }
        let out = r.handle(t(s), Event::Tick);
        if sends(&out).iter().any(|(_, dst, m)| *dst == ip(N) && m.message == graft) {
            sent_at.push(s);
        }
    }
    assert_eq!(sent_at, vec![20, 25, 35, 55, 95, 135]);
    assert_eq!(r.snapshot(t(140)).mroutes[0].graft.as_ref().unwrap().attempts, 6);
    let ack = repr(Message::GraftAck { source: ip("10.0.2.0"), group: g });
    let out = r.handle(t(141), Event::Received { ifindex: IfIndex(2), src: ip(N), msg: ack });
    assert!(out.contains(&Action::Debug(DebugEvent::GraftAcked {
        origin: ip("10.0.2.0"),
        group: g,
        from: ip(N)
    })));
    let m = &r.snapshot(t(141)).mroutes[0];
    assert!(m.graft.is_none() && m.upstream_prune.is_none());
    for s in 142..200 {
        if s % 10 == 0 {
            with_neighbor(&mut r, t(s));
        }
        assert!(!sends(&r.handle(t(s), Event::Tick)).iter().any(|(_, _, m)| m.message == graft));
    }
}

#[test]
fn unexpected_graft_ack_is_ignored() {
    let mut r = downstream_of_n();
    let ack = repr(Message::GraftAck { source: ip("10.0.2.0"), group: ip("239.1.1.1") });
    let out = r.handle(t(1), Event::Received { ifindex: IfIndex(2), src: ip(N), msg: ack });
    assert!(out.iter().any(|a| matches!(
        a,
        Action::Debug(DebugEvent::Ignored { reason: IgnoreReason::UnexpectedGraftAck, .. })
    )));
}

#[test]
fn our_prune_expires_and_idle_entries_are_removed() {
    let cfg = DvmrpConfig { prune_lifetime: Duration::from_secs(300), ..DvmrpConfig::default() };
    let mut r = DvmrpRouter::new(cfg, vec![iface(1, "10.0.1.1", 24), iface(2, "10.0.12.1", 24)], 1);
    r.handle(t(0), Event::Start);
    with_neighbor(&mut r, t(0));
    r.handle(
        t(0),
        Event::Received { ifindex: IfIndex(2), src: ip(N), msg: report(&[("10.0.2.0", 24, 1)]) },
    );
    let out = r.handle(
        t(1),
        Event::DataArrived(Punt {
            iif: IfIndex(2),
            source: ip("10.0.2.7"),
            group: ip("239.1.1.1"),
        }),
    );
    assert!(matches!(sends(&out)[0].2.message, Message::Prune { lifetime: 300, .. }));
    let mut expired_at = None;
    let mut removed_at = None;
    for s in 2..=600 {
        if s % 10 == 0 {
            with_neighbor(&mut r, t(s));
            r.handle(
                t(s),
                Event::Received {
                    ifindex: IfIndex(2),
                    src: ip(N),
                    msg: report(&[("10.0.2.0", 24, 1)]),
                },
            );
        }
        let out = r.handle(t(s), Event::Tick);
        if out.iter().any(|a| matches!(a, Action::Debug(DebugEvent::UpstreamPruneExpired { .. }))) {
            expired_at = Some(s);
        }
        if out.contains(&Action::Mfib(MfibUpdate::Remove {
            source: Some(ip("10.0.2.7")),
            group: ip("239.1.1.1"),
        })) {
            removed_at = Some(s);
        }
    }
    assert_eq!(expired_at, Some(301));
    // Last data at 1 s, idle timeout 210 s, but prune state kept it until 301 s.
    assert_eq!(removed_at, Some(301));
}

#[test]
fn data_activity_keeps_the_entry_alive() {
    let mut r = forwarding_to_n();
    let mut removed = false;
    for s in 2..=600 {
        if s % 10 == 0 {
            with_neighbor(&mut r, t(s));
            r.handle(
                t(s),
                Event::Received {
                    ifindex: IfIndex(2),
                    src: ip(N),
                    msg: report(&[("10.0.1.0", 24, 34)]),
                },
            );
            if s <= 300 {
                r.handle(
                    t(s),
                    Event::DataActivity { source: ip("10.0.1.10"), group: ip("239.1.1.1") },
                );
            }
        }
        let out = r.handle(t(s), Event::Tick);
        if out.iter().any(|a| matches!(a, Action::Mfib(MfibUpdate::Remove { .. }))) {
            assert_eq!(s, 300 + 210, "removed 210 s after the last activity");
            removed = true;
        }
    }
    assert!(removed);
}

#[test]
fn rpf_lookup_is_longest_prefix_and_no_route_is_ignored() {
    let mut r = downstream_of_n();
    r.handle(
        t(0),
        Event::Received {
            ifindex: IfIndex(2),
            src: ip(N),
            msg: report(&[("10.0.0.0", 16, 5), ("10.0.2.0", 24, 1)]),
        },
    );
    assert_eq!(r.lookup(ip("10.0.2.9")).map(|r| r.key.prefix_len), Some(24));
    assert_eq!(r.lookup(ip("10.0.9.9")).map(|r| r.key.prefix_len), Some(16));
    let out = r.handle(
        t(1),
        Event::DataArrived(Punt {
            iif: IfIndex(2),
            source: ip("192.0.2.1"),
            group: ip("239.1.1.1"),
        }),
    );
    assert!(matches!(
        out[..],
        [Action::Debug(DebugEvent::Ignored { reason: IgnoreReason::NoRoute { .. }, .. })]
    ));
    let out = r.handle(
        t(1),
        Event::DataArrived(Punt {
            iif: IfIndex(2),
            source: ip("10.0.2.1"),
            group: ip("224.0.0.5"),
        }),
    );
    assert!(matches!(
        out[..],
        [Action::Debug(DebugEvent::Ignored { reason: IgnoreReason::NotRoutableGroup { .. }, .. })]
    ));
}

#[test]
fn bad_origins_in_reports_are_ignored_not_fatal() {
    let mut r = single();
    with_neighbor(&mut r, t(0));
    let out = r.handle(
        t(0),
        Event::Received {
            ifindex: IfIndex(2),
            src: ip(N),
            msg: report(&[("10.0.2.5", 24, 1), ("10.0.3.0", 24, 1)]),
        },
    );
    assert!(out.iter().any(|a| matches!(
        a,
        Action::Debug(DebugEvent::Ignored { reason: IgnoreReason::BadOrigin { .. }, .. })
    )));
    let origins: Vec<_> = r.snapshot(t(0)).routes.iter().map(|r| r.origin).collect();
    assert!(origins.contains(&ip("10.0.3.0")) && !origins.contains(&ip("10.0.2.5")));
}

// ===== in-memory network of cores =====

/// Cores wired together by LANs on a virtual clock. Every `Send` is delivered to the routers
/// on the same LAN (all of them for 224.0.0.4, the addressee for unicast); MFIB updates are
/// applied to a per-router table.
struct Net {
    now: Timestamp,
    routers: Vec<DvmrpRouter>,
    ifaces: Vec<Vec<DvmrpInterface>>,
    /// LAN → (router, ifindex) attachments.
    lans: Vec<Vec<(usize, IfIndex)>>,
    mfib: Vec<BTreeMap<(Ipv4Addr, Ipv4Addr), MfibRoute>>,
    /// Every action of every router, in order.
    log: Vec<(Timestamp, usize, Action)>,
}

impl Net {
    fn new(routers: Vec<(Vec<DvmrpInterface>, u32)>, lans: Vec<Vec<(usize, u32)>>) -> Net {
        let ifaces: Vec<_> = routers.iter().map(|(i, _)| i.clone()).collect();
        Net {
            now: Timestamp::ZERO,
            routers: routers
                .into_iter()
                .map(|(i, genid)| DvmrpRouter::new(DvmrpConfig::default(), i, genid))
                .collect(),
            mfib: ifaces.iter().map(|_| BTreeMap::new()).collect(),
            ifaces,
            lans: lans
                .into_iter()
                .map(|l| l.into_iter().map(|(r, i)| (r, IfIndex(i))).collect())
                .collect(),
            log: Vec::new(),
        }
    }

    fn addr(&self, r: usize, ifindex: IfIndex) -> Ipv4Addr {
        self.ifaces[r].iter().find(|i| i.ifindex == ifindex).unwrap().addr
    }

    fn input(&mut self, r: usize, event: Event) {
        let mut queue = VecDeque::from([(r, event)]);
        while let Some((r, event)) = queue.pop_front() {
            for action in self.routers[r].handle(self.now, event) {
                match &action {
                    Action::Send { ifindex, dst, msg } => {
                        let src = self.addr(r, *ifindex);
                        let lan = self.lans.iter().find(|l| l.contains(&(r, *ifindex))).unwrap();
                        for &(peer, peer_if) in lan {
                            if peer != r
                                && (*dst == ALL_DVMRP_ROUTERS || *dst == self.addr(peer, peer_if))
                            {
                                queue.push_back((
                                    peer,
                                    Event::Received { ifindex: peer_if, src, msg: msg.clone() },
                                ));
                            }
                        }
                    }
                    Action::Mfib(MfibUpdate::Install(route)) => {
                        self.mfib[r].insert((route.source.unwrap(), route.group), route.clone());
                    }
                    Action::Mfib(MfibUpdate::Remove { source, group }) => {
                        self.mfib[r].remove(&(source.unwrap(), *group));
                    }
                    _ => {}
                }
                self.log.push((self.now, r, action));
            }
        }
    }

    /// Runs every router's timers up to `until`.
    fn run_until(&mut self, until: Timestamp) {
        loop {
            let next = self.routers.iter().filter_map(DvmrpRouter::next_deadline).min();
            match next {
                Some(at) if at <= until => {
                    self.now = self.now.max(at);
                    for r in 0..self.routers.len() {
                        if self.routers[r].next_deadline().is_some_and(|d| d <= self.now) {
                            self.input(r, Event::Tick);
                        }
                    }
                }
                _ => break,
            }
        }
        self.now = until;
    }

    fn start(&mut self) {
        for r in 0..self.routers.len() {
            self.input(r, Event::Start);
        }
    }

    fn oifs(&self, r: usize, source: &str, group: &str) -> Option<Vec<u32>> {
        self.mfib[r]
            .get(&(ip(source), ip(group)))
            .map(|m| m.oifs.iter().map(|o| o.ifindex.0).collect())
    }

    fn sent_since(&self, since: Timestamp, r: usize, pred: impl Fn(&Message) -> bool) -> usize {
        self.log
            .iter()
            .filter(|(at, from, a)| {
                *at >= since
                    && *from == r
                    && matches!(a, Action::Send { msg, .. } if pred(&msg.message))
            })
            .count()
    }
}

fn route_of(r: &DvmrpRouter, now: Timestamp, origin: &str) -> Option<RouteState> {
    r.snapshot(now).routes.into_iter().find(|x| x.origin == ip(origin))
}

/// ```text
///  src 10.0.1.10        R0                      R1          member
///  LAN A 10.0.1.0/24 --(if1) R0 (if2)--10.0.12.0/24--(if2) R1 (if3)-- LAN B 10.0.2.0/24
/// ```
fn two_routers() -> Net {
    Net::new(
        vec![
            (vec![iface(1, "10.0.1.1", 24), iface(2, "10.0.12.1", 24)], 100),
            (vec![iface(2, "10.0.12.2", 24), iface(3, "10.0.2.1", 24)], 200),
        ],
        vec![vec![(0, 1)], vec![(0, 2), (1, 2)], vec![(1, 3)]],
    )
}

#[test]
fn two_routers_adjacency_routes_flood_prune_graft_and_restart() {
    let mut net = two_routers();
    net.start();
    // Probes cross at once; the poison-reversed routes follow in the triggered reports.
    net.run_until(t(2));
    // Adjacency: both two-way within one probe exchange.
    for r in 0..2 {
        let n = net.routers[r].snapshot(net.now).neighbors;
        assert_eq!(n.len(), 1);
        assert!(n[0].two_way, "router {r}");
    }
    // Route exchange with poison reverse.
    let r1_to_a = route_of(&net.routers[1], net.now, "10.0.1.0").unwrap();
    assert_eq!(
        (r1_to_a.metric, r1_to_a.upstream, r1_to_a.gateway),
        (2, Some(IfIndex(2)), Some(ip("10.0.12.1")))
    );
    let r0_a = route_of(&net.routers[0], net.now, "10.0.1.0").unwrap();
    assert_eq!(
        r0_a.dependents,
        vec![DependentState { ifindex: IfIndex(2), neighbor: ip("10.0.12.2") }]
    );
    assert!(net.log.iter().any(|(_, r, a)| *r == 1
        && matches!(a, Action::Send { msg, .. } if reported_metrics(std::slice::from_ref(a)).contains(&(ip("10.0.1.0"), 34)) && matches!(msg.message, Message::Report { .. }))));
    assert!(
        route_of(&net.routers[1], net.now, "10.0.12.0").is_some(),
        "the link subnet is known from the far side too"
    );

    // Flood: first data at R0 goes to R1 (a dependent); R1 has no members and prunes.
    let (s, g) = ("10.0.1.10", "239.1.2.3");
    net.input(0, Event::DataArrived(Punt { iif: IfIndex(1), source: ip(s), group: ip(g) }));
    assert_eq!(net.oifs(0, s, g), Some(vec![2]));
    net.input(1, Event::DataArrived(Punt { iif: IfIndex(2), source: ip(s), group: ip(g) }));
    assert_eq!(net.oifs(1, s, g), Some(vec![]));
    assert_eq!(net.oifs(0, s, g), Some(vec![]), "R0 honoured R1's prune");
    let m = &net.routers[1].snapshot(net.now).mroutes[0];
    assert_eq!(
        m.upstream_prune.as_ref().map(|p| (p.neighbor, p.lifetime)),
        Some((ip("10.0.12.1"), 7200))
    );

    // Graft when a member joins behind R1; R0 acks and floods again.
    net.run_until(t(30));
    let before = net.now;
    net.input(
        1,
        Event::LocalMembership { ifindex: IfIndex(3), group: ip(g), source: None, present: true },
    );
    assert_eq!(net.oifs(1, s, g), Some(vec![3]));
    assert_eq!(net.oifs(0, s, g), Some(vec![2]));
    assert_eq!(net.sent_since(before, 1, |m| matches!(m, Message::Graft { .. })), 1);
    assert_eq!(net.sent_since(before, 0, |m| matches!(m, Message::GraftAck { .. })), 1);
    assert!(net.routers[1].snapshot(net.now).mroutes[0].graft.is_none());
    net.run_until(t(60));
    assert_eq!(
        net.sent_since(before, 1, |m| matches!(m, Message::Graft { .. })),
        1,
        "no retransmission after the ack"
    );

    // Member leaves: R1 prunes again.
    net.input(
        1,
        Event::LocalMembership { ifindex: IfIndex(3), group: ip(g), source: None, present: false },
    );
    assert_eq!(net.oifs(0, s, g), Some(vec![]));

    // R1 restarts with a new genid: R0 drops R1's prune and floods to it again, R1 (which
    // lost its state) has to prune again when data arrives.
    let ifaces = net.ifaces[1].clone();
    net.routers[1] = DvmrpRouter::new(DvmrpConfig::default(), ifaces, 201);
    net.mfib[1].clear();
    net.input(1, Event::Start);
    assert!(net.log.iter().any(|(_, r, a)| *r == 0
        && matches!(
            a,
            Action::Debug(DebugEvent::NeighborRestarted { old_genid: 200, new_genid: 201, .. })
        )));
    net.run_until(t(65));
    assert_eq!(net.oifs(0, s, g), Some(vec![2]), "prune state from before the restart is gone");
    net.input(1, Event::DataArrived(Punt { iif: IfIndex(2), source: ip(s), group: ip(g) }));
    assert_eq!(net.oifs(0, s, g), Some(vec![]));
}

/// ```text
///              LAN A 10.0.1.0/24 (source 10.0.1.10)
///               |(if1) .1            |(if1) .2
///               R1                   R2
///               |(if2) .1            |(if2) .2
///              LAN S 10.0.100.0/24 (shared)
///               |(if2) .3
///               R3 --(if3)-- LAN B 10.0.3.0/24 (member)
/// ```
fn three_routers() -> Net {
    Net::new(
        vec![
            (vec![iface(1, "10.0.1.1", 24), iface(2, "10.0.100.1", 24)], 1),
            (vec![iface(1, "10.0.1.2", 24), iface(2, "10.0.100.2", 24)], 2),
            (vec![iface(2, "10.0.100.3", 24), iface(3, "10.0.3.1", 24)], 3),
        ],
        vec![vec![(0, 1), (1, 1)], vec![(0, 2), (1, 2), (2, 2)], vec![(2, 3)]],
    )
}

#[test]
fn three_routers_df_election_on_a_shared_lan() {
    let mut net = three_routers();
    net.start();
    net.run_until(t(2));
    // Equal metrics on LAN S: the lowest address (R1, 10.0.100.1) forwards for LAN A.
    let fwd = |net: &Net, r: usize| {
        route_of(&net.routers[r], net.now, "10.0.1.0")
            .unwrap()
            .forwarders
            .into_iter()
            .find(|f| f.ifindex == IfIndex(2))
            .unwrap()
    };
    assert_eq!(fwd(&net, 0).forwarder, ip("10.0.100.1"));
    assert!(fwd(&net, 0).is_us);
    assert_eq!(fwd(&net, 1).forwarder, ip("10.0.100.1"));
    assert!(!fwd(&net, 1).is_us);
    let r3 = route_of(&net.routers[2], net.now, "10.0.1.0").unwrap();
    assert_eq!((r3.metric, r3.gateway), (2, Some(ip("10.0.100.1"))));

    let (s, g) = ("10.0.1.10", "239.5.5.5");
    net.input(
        2,
        Event::LocalMembership { ifindex: IfIndex(3), group: ip(g), source: None, present: true },
    );
    // The data reaches both R1 and R2 on LAN A; only the DF forwards onto LAN S.
    net.input(0, Event::DataArrived(Punt { iif: IfIndex(1), source: ip(s), group: ip(g) }));
    net.input(1, Event::DataArrived(Punt { iif: IfIndex(1), source: ip(s), group: ip(g) }));
    net.input(2, Event::DataArrived(Punt { iif: IfIndex(2), source: ip(s), group: ip(g) }));
    assert_eq!(net.oifs(0, s, g), Some(vec![2]));
    assert_eq!(net.oifs(1, s, g), Some(vec![]));
    assert_eq!(net.oifs(2, s, g), Some(vec![3]));

    // Member leaves: R3 prunes to its upstream R1, which stops forwarding onto LAN S.
    net.input(
        2,
        Event::LocalMembership { ifindex: IfIndex(3), group: ip(g), source: None, present: false },
    );
    assert_eq!(net.oifs(0, s, g), Some(vec![]));
    let m = &net.routers[0].snapshot(net.now).mroutes[0];
    assert_eq!(m.pruned.iter().map(|p| p.neighbor).collect::<Vec<_>>(), vec![ip("10.0.100.3")]);
    // And grafts back.
    net.input(
        2,
        Event::LocalMembership { ifindex: IfIndex(3), group: ip(g), source: None, present: true },
    );
    assert_eq!(net.oifs(0, s, g), Some(vec![2]));

    // The DF shuts down (advertising infinity): R2 takes over and R3 re-homes to it.
    net.run_until(t(20));
    net.input(0, Event::Stop);
    assert!(fwd(&net, 1).is_us, "R2 is the forwarder once R1 withdrew");
    let r3 = route_of(&net.routers[2], net.now, "10.0.1.0").unwrap();
    assert_eq!(r3.gateway, Some(ip("10.0.100.2")));
    assert_eq!(net.oifs(1, s, g), Some(vec![2]), "R2 forwards to its new dependent R3");
}

#[test]
fn upstream_restart_makes_us_prune_again() {
    let mut r = downstream_of_n();
    let out = r.handle(
        t(1),
        Event::DataArrived(Punt {
            iif: IfIndex(2),
            source: ip("10.0.2.7"),
            group: ip("239.1.1.1"),
        }),
    );
    assert!(matches!(sends(&out)[0].2.message, Message::Prune { .. }));
    // N restarts: it forgot our prune, so we send it again at once (the MFIB route with no
    // oifs keeps the data from being punted again).
    let out = r.handle(
        t(2),
        Event::Received { ifindex: IfIndex(2), src: ip(N), msg: probe(8, &["10.0.12.1"]) },
    );
    let prunes: Vec<_> = sends(&out)
        .into_iter()
        .filter(|(_, _, m)| matches!(m.message, Message::Prune { .. }))
        .collect();
    assert_eq!(prunes.len(), 1, "{out:?}");
    assert_eq!(prunes[0].1, ip(N));
    // And its restart also brought it our full table (it lists us already).
    assert!(!reported_metrics(&out).is_empty());
}

#[test]
fn lower_metric_wins_the_df_election_before_lower_address() {
    let mut net = three_routers();
    // R1's link to the source LAN costs 3: R2 (10.0.100.2, metric 1) forwards onto LAN S.
    net.ifaces[0][0].metric = 3;
    let ifaces = net.ifaces[0].clone();
    net.routers[0] = DvmrpRouter::new(DvmrpConfig::default(), ifaces, 1);
    net.start();
    net.run_until(t(2));
    let r1 = route_of(&net.routers[0], net.now, "10.0.1.0").unwrap();
    let on_s = r1.forwarders.iter().find(|f| f.ifindex == IfIndex(2)).unwrap();
    assert_eq!((on_s.forwarder, on_s.is_us), (ip("10.0.100.2"), false));
    let r3 = route_of(&net.routers[2], net.now, "10.0.1.0").unwrap();
    assert_eq!((r3.metric, r3.gateway), (2, Some(ip("10.0.100.2"))));
    let (s, g) = ("10.0.1.10", "239.5.5.5");
    net.input(
        2,
        Event::LocalMembership { ifindex: IfIndex(3), group: ip(g), source: None, present: true },
    );
    net.input(0, Event::DataArrived(Punt { iif: IfIndex(1), source: ip(s), group: ip(g) }));
    net.input(1, Event::DataArrived(Punt { iif: IfIndex(1), source: ip(s), group: ip(g) }));
    assert_eq!(net.oifs(0, s, g), Some(vec![]));
    assert_eq!(net.oifs(1, s, g), Some(vec![2]));
}

// ===== properties =====

mod properties {
    use proptest::prelude::*;

    use super::*;

    const NEIGHBORS: [&str; 2] = ["10.0.12.2", "10.0.12.3"];
    const NETS: [&str; 3] = ["10.0.1.0", "10.0.2.0", "10.0.3.0"];
    const GROUPS: [&str; 2] = ["239.1.1.1", "239.2.2.2"];

    fn arb_event() -> impl Strategy<Value = (u64, Event)> {
        let nbr = (0..NEIGHBORS.len()).prop_map(|i| ip(NEIGHBORS[i]));
        let net = (0..NETS.len()).prop_map(|i| ip(NETS[i]));
        let grp = (0..GROUPS.len()).prop_map(|i| ip(GROUPS[i]));
        let received = |msg: BoxedStrategy<DvmrpRepr>| {
            (nbr.clone(), msg).prop_map(|(src, msg)| Event::Received {
                ifindex: IfIndex(2),
                src,
                msg,
            })
        };
        let probe =
            (1u32..3, any::<bool>(), any::<bool>()).prop_map(|(genid, lists_us, prune_cap)| {
                let mut m = probe(genid, if lists_us { &["10.0.12.1"] } else { &[] });
                if !prune_cap {
                    m.capabilities = CAP_GENID;
                }
                m
            });
        let report = prop::collection::vec((net.clone(), 1u8..64), 1..4).prop_map(|routes| {
            repr(Message::Report {
                blocks: vec![ReportBlock {
                    mask: ip("255.255.255.0"),
                    routes: routes
                        .into_iter()
                        .map(|(origin, metric)| WireRoute { origin, metric })
                        .collect(),
                }],
            })
        });
        let sg = (net.clone(), 0u8..20, grp.clone());
        let prune = (sg.clone(), 0u32..10_000).prop_map(|((n, h, group), lifetime)| {
            let source = Ipv4Addr::from_bits(n.to_bits() | u32::from(h));
            repr(Message::Prune { source, group, lifetime, source_mask: None })
        });
        let graft = sg.clone().prop_map(|(n, h, group)| {
            repr(Message::Graft { source: Ipv4Addr::from_bits(n.to_bits() | u32::from(h)), group })
        });
        let ack = sg.clone().prop_map(|(n, _, group)| repr(Message::GraftAck { source: n, group }));
        let event = prop_oneof![
            3 => received(probe.boxed()),
            3 => received(report.boxed()),
            2 => received(prune.boxed()),
            1 => received(graft.boxed()),
            1 => received(ack.boxed()),
            2 => (1u32..3, grp.clone(), any::<bool>()).prop_map(|(i, group, present)| Event::LocalMembership {
                ifindex: IfIndex(i),
                group,
                source: None,
                present
            }),
            2 => (1u32..3, sg).prop_map(|(i, (n, h, group))| Event::DataArrived(Punt {
                iif: IfIndex(i),
                source: Ipv4Addr::from_bits(n.to_bits() | u32::from(h) | 1),
                group
            })),
            1 => (1u32..3, any::<bool>()).prop_map(|(i, up)| if up {
                Event::InterfaceUp { ifindex: IfIndex(i) }
            } else {
                Event::InterfaceDown { ifindex: IfIndex(i) }
            }),
            3 => Just(Event::Tick),
        ];
        (0u64..60_000, event)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Whatever peers send and whenever: no panic, oifs never contain the iif, an MFIB
        /// route is only removed after it was installed, and timers always move forward (a
        /// tick never leaves a deadline at or before `now`, so the daemon cannot spin).
        #[test]
        fn arbitrary_inputs_keep_the_invariants(events in prop::collection::vec(arb_event(), 1..80)) {
            let mut r = single();
            let mut now = Timestamp::ZERO;
            let mut installed = BTreeMap::new();
            for (advance_ms, event) in events {
                let is_tick = matches!(event, Event::Tick);
                now = if is_tick { r.next_deadline().map_or(now, |d| d.max(now)) } else { now + Duration::from_millis(advance_ms) };
                for action in r.handle(now, event) {
                    match action {
                        Action::Mfib(MfibUpdate::Install(route)) => {
                            prop_assert!(!route.oifs.iter().any(|o| o.ifindex == route.iif), "{route:?}");
                            installed.insert((route.source, route.group), route);
                        }
                        Action::Mfib(MfibUpdate::Remove { source, group }) => {
                            prop_assert!(installed.remove(&(source, group)).is_some());
                        }
                        Action::Send { msg, .. } => {
                            let mut buf = vec![0u8; msg.buffer_len()];
                            msg.emit(&mut wire::dvmrp::DvmrpPacket::new_unchecked(&mut buf[..]));
                            prop_assert!(buf.len() <= 576 - 60);
                            let parsed = DvmrpRepr::parse(&wire::dvmrp::DvmrpPacket::new_checked(&buf[..]).unwrap());
                            prop_assert_eq!(parsed.as_ref(), Ok(&msg));
                        }
                        _ => {}
                    }
                }
                if is_tick {
                    prop_assert!(r.next_deadline().is_none_or(|d| d > now), "deadline {:?} at {now}", r.next_deadline());
                }
            }
            for action in r.handle(now, Event::Stop) {
                if let Action::Mfib(MfibUpdate::Remove { source, group }) = action {
                    prop_assert!(installed.remove(&(source, group)).is_some());
                }
            }
            prop_assert!(installed.is_empty(), "Stop leaves {installed:?} behind");
            prop_assert_eq!(r.next_deadline(), None);
        }
    }
}

// ===== poison reverse heard before the route =====

const U: &str = "10.0.13.2";

/// R with N downstream on if2 and U upstream on if3, both two-way; N poison-reverses
/// 10.9.0.0/16 to R at `poison_at`, before U makes it reachable at `learn_at`.
fn poison_before_route(poison_at: Timestamp, learn_at: Timestamp) -> DvmrpRouter {
    let mut r = DvmrpRouter::new(
        DvmrpConfig::default(),
        vec![iface(1, "10.0.1.1", 24), iface(2, "10.0.12.1", 24), iface(3, "10.0.13.1", 24)],
        0x1111,
    );
    r.handle(t(0), Event::Start);
    with_neighbor(&mut r, t(0));
    r.handle(
        t(0),
        Event::Received { ifindex: IfIndex(3), src: ip(U), msg: probe(9, &["10.0.13.1"]) },
    );
    let out = r.handle(
        poison_at,
        Event::Received { ifindex: IfIndex(2), src: ip(N), msg: report(&[("10.9.0.0", 16, 34)]) },
    );
    assert!(route_of(&r, poison_at, "10.9.0.0").is_none(), "an unknown origin is not a route");
    assert!(
        !reported_metrics(&out).iter().any(|(o, _)| *o == ip("10.9.0.0")),
        "an origin we cannot reach is not advertised"
    );
    // N's probes keep it alive until U's report.
    r.handle(
        learn_at,
        Event::Received { ifindex: IfIndex(2), src: ip(N), msg: probe(7, &["10.0.12.1"]) },
    );
    r.handle(
        learn_at,
        Event::Received { ifindex: IfIndex(3), src: ip(U), msg: probe(9, &["10.0.13.1"]) },
    );
    r.handle(
        learn_at,
        Event::Received { ifindex: IfIndex(3), src: ip(U), msg: report(&[("10.9.0.0", 16, 1)]) },
    );
    r
}

// Input: N's poison reverse for an origin R does not know yet, then U's report of the origin
// (R restarted: the downstream table arrived before the upstream one). Output: N is a
// dependent as soon as the route exists and data from the origin is forwarded to it, without
// waiting for N's next full report (the bug: the report was dropped and N went unserved for up
// to report_interval).
#[test]
fn poison_reverse_heard_before_the_route_makes_a_dependent() {
    let mut r = poison_before_route(t(1), t(2));
    let route = route_of(&r, t(2), "10.9.0.0").unwrap();
    assert_eq!((route.upstream, route.gateway), (Some(IfIndex(3)), Some(ip(U))));
    assert_eq!(route.dependents, vec![DependentState { ifindex: IfIndex(2), neighbor: ip(N) }]);
    let out = r.handle(
        t(3),
        Event::DataArrived(Punt {
            iif: IfIndex(3),
            source: ip("10.9.1.1"),
            group: ip("239.1.1.1"),
        }),
    );
    assert_eq!(installs(&out)[0].oifs, vec![oif(2)]);
}

// Input: the same, but the route is learned only 250 s later (past the route expiry, and N
// timed out meanwhile). Output: no dependent (the old poison reverse is not revived).
#[test]
fn stale_poison_reverse_for_an_unknown_origin_is_forgotten() {
    let r = poison_before_route(t(1), t(250));
    let route = route_of(&r, t(250), "10.9.0.0").unwrap();
    assert!(route.dependents.is_empty(), "{:?}", route.dependents);
}

// Input: R reaches 10.9.0.0/16 through N (metric 1) with U (metric 2) as the alternative; N
// reports it unreachable. Output: R moves to U and poison-reverses the route to U at once (the
// deadline is now), not after the 1 s triggered-report delay: until U hears it, U does not
// forward to R while R's RPF check already refuses what still comes from N. A change that is
// not a move between upstreams (a route learned for the first time) keeps the delay.
#[test]
fn a_change_of_upstream_is_reported_at_once() {
    let mut r = DvmrpRouter::new(
        DvmrpConfig::default(),
        vec![iface(1, "10.0.1.1", 24), iface(2, "10.0.12.1", 24), iface(3, "10.0.13.1", 24)],
        0x1111,
    );
    r.handle(t(0), Event::Start);
    with_neighbor(&mut r, t(0));
    r.handle(
        t(0),
        Event::Received { ifindex: IfIndex(3), src: ip(U), msg: probe(9, &["10.0.13.1"]) },
    );
    r.handle(t(1), Event::Tick);
    r.handle(
        t(2),
        Event::Received { ifindex: IfIndex(2), src: ip(N), msg: report(&[("10.9.0.0", 16, 1)]) },
    );
    assert_eq!(r.next_deadline(), Some(t(3)), "a new route waits for the triggered delay");
    r.handle(
        t(2),
        Event::Received { ifindex: IfIndex(3), src: ip(U), msg: report(&[("10.9.0.0", 16, 2)]) },
    );
    r.handle(t(3), Event::Tick);
    assert_eq!(route_of(&r, t(3), "10.9.0.0").unwrap().gateway, Some(ip(N)));
    r.handle(
        t(5),
        Event::Received { ifindex: IfIndex(2), src: ip(N), msg: report(&[("10.9.0.0", 16, 32)]) },
    );
    assert_eq!(route_of(&r, t(5), "10.9.0.0").unwrap().gateway, Some(ip(U)));
    assert_eq!(r.next_deadline(), Some(t(5)));
    let out = r.handle(t(5), Event::Tick);
    let to_u: Vec<(Ipv4Addr, u8)> = sends(&out)
        .into_iter()
        .filter(|(i, _, m)| *i == IfIndex(3) && matches!(m.message, Message::Report { .. }))
        .flat_map(|(_, _, m)| match &m.message {
            Message::Report { blocks } => {
                blocks.iter().flat_map(|b| b.routes.iter().map(|x| (x.origin, x.metric))).collect()
            }
            _ => Vec::new(),
        })
        .collect();
    assert!(to_u.contains(&(ip("10.9.0.0"), 35)), "{to_u:?}");
}
