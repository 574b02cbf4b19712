//! Scenario tests: several cores wired together in memory, with a virtual clock (no sleeps).
//! Each `Send` is delivered to the router at the other end of the link it was sent on; a drop
//! filter simulates loss and silent link failures; data packets are forwarded by following the
//! installed MFIB routes, with punts on a miss, as the data plane would.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::Ipv4Addr;
use std::time::Duration;

use dataplane_api::{IfIndex, MfibRoute, MfibUpdate, Punt};
use wire::linkstate::{LsPacket, LsRepr, Message};

use super::neighbor::State;
use super::*;
use crate::timer::Timestamp;

const HOST_IF: IfIndex = IfIndex(100);
const G1: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 1);
const G2: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 2);

fn host_net(r: RouterId) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, u8::try_from(r).unwrap(), 1)
}

fn source_at(r: RouterId) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, u8::try_from(r).unwrap(), 10)
}

#[derive(Debug, Clone, Copy)]
struct LinkEnd {
    router: RouterId,
    ifindex: IfIndex,
    addr: Ipv4Addr,
}

type DropFn = Box<dyn FnMut(RouterId, RouterId, &LsRepr) -> bool>;

struct Net {
    now: Timestamp,
    routers: BTreeMap<RouterId, LinkStateRouter>,
    links: Vec<(LinkEnd, LinkEnd)>,
    /// Links whose traffic is silently lost (a failure the routers must detect by timers).
    cut: BTreeSet<usize>,
    queue: VecDeque<(RouterId, Event)>,
    mfib: BTreeMap<RouterId, BTreeMap<(Ipv4Addr, Ipv4Addr), MfibRoute>>,
    mfib_updates: Vec<(RouterId, MfibUpdate)>,
    debug: Vec<(RouterId, DebugEvent)>,
    sent: Vec<(RouterId, IfIndex, Ipv4Addr, Vec<u8>)>,
    drop: DropFn,
}

impl Net {
    /// Routers `1..=n` joined by `edges` (cost 1 each), each with a host LAN on ifindex 100.
    fn new(config: &LinkStateConfig, n: u32, edges: &[(RouterId, RouterId)]) -> Net {
        let mut ifaces: BTreeMap<RouterId, Vec<LsInterface>> = (1..=n)
            .map(|r| {
                let host =
                    LsInterface { ifindex: HOST_IF, addr: host_net(r), prefix_len: 24, cost: 1 };
                (r, vec![host])
            })
            .collect();
        let mut links = Vec::new();
        for (i, &(a, b)) in edges.iter().enumerate() {
            let net = u8::try_from(i).unwrap();
            let mut end = |r: RouterId, host: u8| {
                let list = ifaces.get_mut(&r).unwrap();
                let ifindex = IfIndex(u32::try_from(list.len()).unwrap());
                let addr = Ipv4Addr::new(10, 0, net, host);
                list.push(LsInterface { ifindex, addr, prefix_len: 24, cost: 1 });
                LinkEnd { router: r, ifindex, addr }
            };
            let ea = end(a, 1);
            let eb = end(b, 2);
            links.push((ea, eb));
        }
        let routers = ifaces
            .into_iter()
            .map(|(r, list)| (r, LinkStateRouter::new(config.clone(), r, list)))
            .collect();
        Net {
            now: Timestamp::ZERO,
            routers,
            links,
            cut: BTreeSet::new(),
            queue: VecDeque::new(),
            mfib: BTreeMap::new(),
            mfib_updates: Vec::new(),
            debug: Vec::new(),
            sent: Vec::new(),
            drop: Box::new(|_, _, _| false),
        }
    }

    fn start(&mut self) {
        let ids: Vec<RouterId> = self.routers.keys().copied().collect();
        for r in ids {
            self.queue.push_back((r, Event::Start));
        }
        self.settle();
    }

    fn link_of(&self, router: RouterId, ifindex: IfIndex) -> Option<(usize, LinkEnd, LinkEnd)> {
        self.links.iter().enumerate().find_map(|(i, &(a, b))| {
            if a.router == router && a.ifindex == ifindex {
                Some((i, a, b))
            } else if b.router == router && b.ifindex == ifindex {
                Some((i, b, a))
            } else {
                None
            }
        })
    }

    fn link_between(&self, a: RouterId, b: RouterId) -> usize {
        self.links
            .iter()
            .position(|(x, y)| (x.router, y.router) == (a, b) || (x.router, y.router) == (b, a))
            .unwrap()
    }

    /// The ifindex router `r` uses for its link to `peer`.
    fn ifindex_to(&self, r: RouterId, peer: RouterId) -> IfIndex {
        let (x, y) = self.links[self.link_between(r, peer)];
        if x.router == r {
            x.ifindex
        } else {
            y.ifindex
        }
    }

    fn deliver(&mut self, from: RouterId, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send { ifindex, dst, bytes } => {
                    self.sent.push((from, ifindex, dst, bytes.clone()));
                    let Some((i, me, peer)) = self.link_of(from, ifindex) else { continue };
                    if self.cut.contains(&i) {
                        continue;
                    }
                    // Unicast goes only to its addressee; multicast to everyone on the link.
                    if dst != wire::linkstate::ALL_LS_ROUTERS && dst != peer.addr {
                        continue;
                    }
                    let repr = LsRepr::parse(&LsPacket::new_checked(&bytes[..]).unwrap()).unwrap();
                    if (self.drop)(from, peer.router, &repr) {
                        continue;
                    }
                    self.queue.push_back((
                        peer.router,
                        Event::Received { ifindex: peer.ifindex, src: me.addr, bytes },
                    ));
                }
                Action::Mfib(update) => {
                    let table = self.mfib.entry(from).or_default();
                    match &update {
                        MfibUpdate::Install(r) => {
                            table.insert((r.source.unwrap(), r.group), r.clone());
                        }
                        MfibUpdate::Remove { source, group } => {
                            table.remove(&(source.unwrap(), *group));
                        }
                        other => panic!("unexpected MFIB update {other:?}"),
                    }
                    self.mfib_updates.push((from, update));
                }
                Action::Debug(d) => self.debug.push((from, d)),
            }
        }
    }

    fn settle(&mut self) {
        let mut steps = 0;
        while let Some((r, event)) = self.queue.pop_front() {
            steps += 1;
            assert!(steps < 100_000, "message storm");
            let actions = self.routers.get_mut(&r).unwrap().handle(self.now, event);
            self.deliver(r, actions);
        }
    }

    fn event(&mut self, r: RouterId, event: Event) {
        self.queue.push_back((r, event));
        self.settle();
    }

    /// Runs every timer up to `now + d`.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.settle();
            let next = self.routers.values().filter_map(LinkStateRouter::next_deadline).min();
            let Some(next) = next.filter(|&n| n <= end) else { break };
            self.now = self.now.max(next);
            let due: Vec<RouterId> = self
                .routers
                .iter()
                .filter(|(_, r)| r.next_deadline().is_some_and(|d| d <= self.now))
                .map(|(id, _)| *id)
                .collect();
            for r in due {
                self.queue.push_back((r, Event::Tick));
            }
        }
        self.now = end;
        self.settle();
    }

    fn converged(&self) -> bool {
        let mut dbs = self.routers.values().map(LinkStateRouter::lsdb_instances);
        let first = dbs.next().unwrap();
        dbs.all(|d| d == first)
    }

    fn all_full(&self) -> bool {
        self.routers.values().all(|r| r.neighbors().iter().all(|n| n.state == State::Full))
    }

    /// Sends one data packet of (source at `origin`'s host LAN, `group`) and returns the routers
    /// that delivered it on their host LAN. Punts on a route miss as the data plane does.
    fn send_data(&mut self, origin: RouterId, group: Ipv4Addr) -> BTreeSet<RouterId> {
        let source = source_at(origin);
        let mut delivered = BTreeSet::new();
        let mut work = VecDeque::from([(origin, HOST_IF)]);
        let mut hops = 0;
        while let Some((r, iif)) = work.pop_front() {
            hops += 1;
            assert!(hops < 100, "forwarding loop");
            let mut route = self.mfib.get(&r).and_then(|t| t.get(&(source, group))).cloned();
            if route.is_none() {
                self.event(r, Event::DataArrived(Punt { iif, source, group }));
                route = self.mfib.get(&r).and_then(|t| t.get(&(source, group))).cloned();
            }
            let Some(route) = route else { continue };
            if route.iif != iif {
                continue;
            }
            for oif in &route.oifs {
                if oif.ifindex == HOST_IF {
                    delivered.insert(r);
                } else if let Some((i, _, peer)) = self.link_of(r, oif.ifindex) {
                    if !self.cut.contains(&i) {
                        work.push_back((peer.router, peer.ifindex));
                    }
                }
            }
        }
        delivered
    }

    fn join(&mut self, r: RouterId, group: Ipv4Addr, present: bool) {
        self.event(r, Event::LocalMembership { ifindex: HOST_IF, group, present });
    }
}

/// ```text
///        R1 (sources)
///       /  \
///     R2    R3          all costs 1: R4 is reached via R2 (lower id wins the tie)
///     | \  /
///    R5  R4 (members)
/// ```
fn diamond(config: &LinkStateConfig) -> Net {
    let mut net = Net::new(config, 5, &[(1, 2), (1, 3), (2, 4), (3, 4), (2, 5)]);
    net.start();
    net.advance(Duration::from_secs(2));
    net
}

#[test]
fn neighbours_come_up_and_go_down_with_fast_timers() {
    // Input: two routers on one link, 100 ms hellos / 400 ms dead interval.
    // Output: Full at once; the neighbour is declared down at most 400 ms
    // after its last hello once the link silently fails.
    let mut net = Net::new(&LinkStateConfig::fast(), 2, &[(1, 2)]);
    // R2 starts 50 ms after R1. With delivery taking no time, triggered hellos and the exchange
    // make both Full at once: no update is refused as "not adjacent" (R2's hello listing R1
    // precedes its database), nothing needs retransmitting.
    net.event(1, Event::Start);
    net.advance(Duration::from_millis(50));
    net.event(2, Event::Start);
    net.advance(Duration::from_millis(1));
    assert!(net.all_full(), "{:?}", net.routers[&1].neighbors());
    let r1 = net.routers[&1].stats();
    assert_eq!((r1.rx_rejected_other, r1.retransmissions), (0, 0));
    assert_eq!(net.routers[&1].neighbors().len(), 1);
    assert!(net.converged());
    net.advance(Duration::from_secs(1));
    let cut_at = net.now;
    net.cut.insert(0);
    let mut detected = None;
    for _ in 0..100 {
        net.advance(Duration::from_millis(10));
        if net.routers[&1].neighbors().is_empty() {
            detected = Some(net.now.saturating_duration_since(cut_at));
            break;
        }
    }
    let detected = detected.expect("neighbour never declared down");
    assert!(detected <= Duration::from_millis(410), "took {detected:?}");
    assert!(net.debug.iter().any(|(r, d)| *r == 1
        && matches!(d, DebugEvent::NeighborState { to: State::Down, router_id: 2, .. })));
    // Router 1's LSA no longer lists the link.
    let lsdb = net.routers[&1].show_lsdb(net.now);
    let own = lsdb.lsas.iter().find(|l| l.adv_router == Ipv4Addr::from(1u32)).unwrap();
    assert!(own.links.is_empty());
}

#[test]
fn flooding_converges_all_databases() {
    let net = diamond(&LinkStateConfig::fast());
    assert!(net.all_full());
    assert!(net.converged());
    // Five router LSAs, each listing its links.
    let instances = net.routers[&4].lsdb_instances();
    assert_eq!(instances.len(), 5);
    let lsdb = net.routers[&5].show_lsdb(net.now);
    let r2 = lsdb.lsas.iter().find(|l| l.adv_router == Ipv4Addr::from(2u32)).unwrap();
    assert_eq!(r2.links.len(), 3);
    assert_eq!(r2.networks.len(), 4, "host LAN and three links");
    // The JSON snapshot the daemon returns.
    let json = serde_json::to_value(&lsdb).unwrap();
    assert_eq!(json["lsas"].as_array().unwrap().len(), 5);
}

#[test]
fn lost_ack_is_recovered_by_retransmission() {
    let config = LinkStateConfig::fast();
    let mut net = diamond(&config);
    // Drop the first ack router 2 sends to router 1.
    let mut dropped = 0;
    net.drop = Box::new(move |from, to, repr| {
        if from == 2 && to == 1 && matches!(repr.message, Message::Ack { .. }) && dropped == 0 {
            dropped += 1;
            return true;
        }
        false
    });
    let before = net.routers[&1].stats().retransmissions;
    net.join(1, G1, true);
    assert!(net.routers[&1]
        .neighbors()
        .iter()
        .any(|n| n.router_id == 2 && n.retransmit_pending == 1));
    net.advance(config.retransmit_interval + Duration::from_millis(10));
    assert_eq!(net.routers[&1].stats().retransmissions, before + 1);
    assert!(net.routers[&1].neighbors().iter().all(|n| n.retransmit_pending == 0));
    assert!(net.converged());
}

#[test]
fn sg_installed_on_demand_along_the_tree_only() {
    let mut net = diamond(&LinkStateConfig::fast());
    net.join(4, G1, true);
    net.advance(Duration::from_millis(500));
    assert!(net.mfib.values().all(BTreeMap::is_empty), "no route before data");
    assert_eq!(net.send_data(1, G1), BTreeSet::from([4]));
    let s = source_at(1);
    let r1 = &net.mfib[&1][&(s, G1)];
    assert_eq!(r1.iif, HOST_IF);
    assert_eq!(r1.oifs.iter().map(|o| o.ifindex).collect::<Vec<_>>(), vec![net.ifindex_to(1, 2)]);
    let r2 = &net.mfib[&2][&(s, G1)];
    assert_eq!(r2.iif, net.ifindex_to(2, 1));
    assert_eq!(r2.oifs.iter().map(|o| o.ifindex).collect::<Vec<_>>(), vec![net.ifindex_to(2, 4)]);
    let r4 = &net.mfib[&4][&(s, G1)];
    assert_eq!(r4.iif, net.ifindex_to(4, 2));
    assert_eq!(r4.oifs.iter().map(|o| o.ifindex).collect::<Vec<_>>(), vec![HOST_IF]);
    // Off the tree: R3 and R5 never see the data and install nothing; even a punt at R3
    // (say, a stray packet) installs nothing.
    assert!(net.mfib.get(&3).is_none_or(BTreeMap::is_empty));
    assert!(net.mfib.get(&5).is_none_or(BTreeMap::is_empty));
    net.event(3, Event::DataArrived(Punt { iif: net.ifindex_to(3, 1), source: s, group: G1 }));
    assert!(net.mfib.get(&3).is_none_or(BTreeMap::is_empty));
    // The spt snapshot agrees with what was installed.
    let spt = net.routers[&2].show_spt(net.now, s, G1);
    assert_eq!(spt.root, Some(1));
    assert_eq!(spt.members, vec![4]);
    assert_eq!(spt.on_tree, vec![(1, None), (2, Some(1)), (4, Some(2))]);
    assert_eq!(spt.installed.as_ref(), Some(&net.mfib[&2][&(s, G1)]));
    assert!(serde_json::to_string(&spt).unwrap().contains("on_tree"));
}

#[test]
fn silent_link_failure_moves_the_tree_within_the_dead_interval() {
    let config = LinkStateConfig::fast();
    let mut net = diamond(&config);
    net.join(4, G1, true);
    net.advance(Duration::from_millis(500));
    assert_eq!(net.send_data(1, G1), BTreeSet::from([4]));
    let cut_at = net.now;
    net.cut.insert(net.link_between(2, 4));
    let mut repaired = None;
    for _ in 0..200 {
        net.advance(Duration::from_millis(10));
        if net.send_data(1, G1) == BTreeSet::from([4]) {
            repaired = Some(net.now.saturating_duration_since(cut_at));
            break;
        }
    }
    let repaired = repaired.expect("tree never repaired");
    // Detection takes at most the dead interval; the new LSAs flood at once (MinLSInterval
    // has long passed) and trees are recomputed on arrival.
    assert!(repaired <= config.dead_interval + Duration::from_millis(20), "took {repaired:?}");
    let s = source_at(1);
    assert_eq!(net.mfib[&4][&(s, G1)].iif, net.ifindex_to(4, 3));
    assert_eq!(
        net.mfib[&1][&(s, G1)].oifs.iter().map(|o| o.ifindex).collect::<Vec<_>>(),
        vec![net.ifindex_to(1, 3)]
    );
    // R2 is off the tree now: its route was removed.
    assert!(!net.mfib[&2].contains_key(&(s, G1)));
}

#[test]
fn membership_change_recomputes_only_that_group() {
    let mut net = diamond(&LinkStateConfig::fast());
    net.join(4, G1, true);
    net.join(4, G2, true);
    net.advance(Duration::from_millis(500));
    assert_eq!(net.send_data(1, G1), BTreeSet::from([4]));
    assert_eq!(net.send_data(1, G2), BTreeSet::from([4]));
    let before = net.routers[&1].cache_stats();
    let updates_before = net.mfib_updates.len();
    // A member of G2 appears behind R3: only G2's entry is recomputed, from the cached tree.
    net.join(3, G2, true);
    net.advance(Duration::from_millis(200));
    let after = net.routers[&1].cache_stats();
    assert_eq!(after.tree_computations, before.tree_computations, "no Dijkstra run");
    assert_eq!(after.entry_computations, before.entry_computations + 1, "G2's entry only");
    let new_updates = &net.mfib_updates[updates_before..];
    assert!(new_updates.iter().all(|(_, u)| matches!(u, MfibUpdate::Install(r) if r.group == G2)));
    assert!(new_updates.iter().any(|(r, _)| *r == 1), "R1 now also forwards to R3");
    assert_eq!(net.send_data(1, G2), BTreeSet::from([3, 4]));
    assert_eq!(net.send_data(1, G1), BTreeSet::from([4]));
}

#[test]
fn leaving_flushes_the_membership_lsa_and_prunes_the_tree() {
    let mut net = diamond(&LinkStateConfig::fast());
    net.join(4, G1, true);
    net.advance(Duration::from_millis(500));
    assert_eq!(net.routers[&2].lsdb_instances().len(), 6);
    assert_eq!(net.send_data(1, G1), BTreeSet::from([4]));
    net.join(4, G1, false);
    net.advance(Duration::from_millis(500));
    // The MaxAge instance was flooded, acknowledged and removed everywhere.
    assert!(net.routers.values().all(|r| r.lsdb_instances().len() == 5));
    assert!(net.converged());
    let s = source_at(1);
    assert!(!net.mfib[&2].contains_key(&(s, G1)));
    assert!(!net.mfib[&4].contains_key(&(s, G1)));
    // The source's router keeps a route with no outgoing interface, so it is not punted again.
    assert!(net.mfib[&1][&(s, G1)].oifs.is_empty());
    assert!(net.send_data(1, G1).is_empty());
}

#[test]
fn min_ls_interval_coalesces_own_lsa_changes() {
    let config = LinkStateConfig::fast();
    let mut net = diamond(&config);
    let originated = net.routers[&4].stats().own_lsas_originated;
    // Join and leave and join again within MinLSInterval: one instance now, one at the end
    // of the interval (for the final state), not three.
    net.join(4, G1, true);
    net.join(4, G1, false);
    net.join(4, G1, true);
    assert_eq!(net.routers[&4].stats().own_lsas_originated, originated + 1);
    net.advance(config.min_ls_interval * 2);
    let now = net.routers[&4].stats().own_lsas_originated;
    assert!(now <= originated + 2, "{now}");
    assert!(net.converged());
    assert_eq!(net.routers[&1].show_spt(net.now, source_at(1), G1).members, vec![4]);
}

fn auth_config(secret: &str) -> LinkStateConfig {
    LinkStateConfig {
        auth: Some(AuthKey { key_id: 7, secret: secret.to_owned() }),
        auth_sequence_start: 1000,
        ..LinkStateConfig::fast()
    }
}

#[test]
fn authenticated_routers_converge_and_reject_forgeries_and_replays() {
    let mut net = Net::new(&auth_config("s3cret"), 2, &[(1, 2)]);
    net.start();
    net.advance(Duration::from_millis(500));
    assert!(net.all_full() && net.converged());
    assert_eq!(net.routers[&1].stats().rx_auth_failures, 0);
    // Replay: an update router 2 sent earlier, delivered again.
    let (_, _, _, old) = net
        .sent
        .iter()
        .find(|(from, _, _, b)| {
            *from == 2
                && matches!(
                    LsRepr::parse(&LsPacket::new_checked(&b[..]).unwrap()).unwrap().message,
                    Message::Update { .. }
                )
        })
        .cloned()
        .unwrap();
    let src = net.links[0].1.addr;
    let ifindex = net.links[0].0.ifindex;
    net.event(1, Event::Received { ifindex, src, bytes: old.clone() });
    assert_eq!(net.routers[&1].stats().rx_replays, 1);
    // Forgery: same message with a changed body and a fresh sequence number, checksum fixed,
    // tag kept (the forger does not know the key).
    let mut forged = old;
    {
        let mut p = LsPacket::new_unchecked(&mut forged[..]);
        p.set_auth_sequence(u64::MAX);
        p.body_mut()[8] ^= 0xff;
        p.fill_checksum();
    }
    net.event(1, Event::Received { ifindex, src, bytes: forged });
    assert_eq!(net.routers[&1].stats().rx_auth_failures, 1);
    // The forgery did not move the replay window: router 2's next hello is still accepted.
    net.advance(Duration::from_millis(500));
    assert!(net.all_full());
    assert_eq!(net.routers[&1].stats().rx_auth_failures, 1);
    // An unauthenticated hello is refused too.
    let plain = LsRepr {
        router_id: 9,
        auth: None,
        message: Message::Hello {
            hello_interval_ms: 100,
            dead_interval_ms: 400,
            neighbors: vec![],
        },
    }
    .to_bytes();
    net.event(1, Event::Received { ifindex, src, bytes: plain });
    assert_eq!(net.routers[&1].stats().rx_auth_failures, 2);
    assert!(net.routers[&1].neighbors().iter().all(|n| n.router_id == 2));
}

#[test]
fn wrong_key_never_forms_an_adjacency() {
    let mut net = Net::new(&auth_config("right"), 2, &[(1, 2)]);
    *net.routers.get_mut(&2).unwrap() = LinkStateRouter::new(
        auth_config("wrong"),
        2,
        vec![
            LsInterface { ifindex: HOST_IF, addr: host_net(2), prefix_len: 24, cost: 1 },
            LsInterface {
                ifindex: net.links[0].1.ifindex,
                addr: net.links[0].1.addr,
                prefix_len: 24,
                cost: 1,
            },
        ],
    );
    net.start();
    net.advance(Duration::from_secs(1));
    assert!(net.routers[&1].neighbors().is_empty());
    assert!(net.routers[&1].stats().rx_auth_failures >= 5);
}

#[test]
fn bad_input_is_counted_not_fatal() {
    let mut net = Net::new(&LinkStateConfig::fast(), 2, &[(1, 2)]);
    net.start();
    net.advance(Duration::from_millis(300));
    let ifindex = net.links[0].0.ifindex;
    let src = net.links[0].1.addr;
    net.event(1, Event::Received { ifindex, src, bytes: vec![1, 2, 3] });
    let mut hello = LsRepr {
        router_id: 2,
        auth: None,
        message: Message::Hello {
            hello_interval_ms: 100,
            dead_interval_ms: 400,
            neighbors: vec![1],
        },
    }
    .to_bytes();
    hello[25] ^= 1;
    net.event(1, Event::Received { ifindex, src, bytes: hello });
    let mismatch = LsRepr {
        router_id: 3,
        auth: None,
        message: Message::Hello {
            hello_interval_ms: 10_000,
            dead_interval_ms: 40_000,
            neighbors: vec![],
        },
    }
    .to_bytes();
    net.event(1, Event::Received { ifindex, src, bytes: mismatch });
    let stats = net.routers[&1].stats();
    assert_eq!((stats.rx_malformed, stats.rx_bad_checksum, stats.rx_rejected_other), (1, 1, 1));
    assert!(net.all_full(), "the adjacency survives garbage");
}

#[test]
fn stop_withdraws_lsas_and_routes() {
    let mut net = diamond(&LinkStateConfig::fast());
    net.join(4, G1, true);
    net.advance(Duration::from_millis(300));
    assert_eq!(net.send_data(1, G1), BTreeSet::from([4]));
    net.event(4, Event::Stop);
    assert!(net.mfib[&4].is_empty());
    net.advance(Duration::from_millis(300));
    // R4's router and membership LSAs are gone from the others' databases.
    for r in [1, 2, 3, 5] {
        assert!(net.routers[&r].lsdb_instances().iter().all(|(k, _, _)| k.adv_router != 4));
    }
    assert!(!net.mfib[&2].contains_key(&(source_at(1), G1)));
}

#[test]
fn own_lsas_are_refreshed_before_max_age() {
    let config =
        LinkStateConfig { refresh_interval: Duration::from_secs(1800), ..LinkStateConfig::fast() };
    let mut net = Net::new(&config, 2, &[(1, 2)]);
    net.start();
    net.advance(Duration::from_secs(3 * 3600));
    assert!(net.all_full() && net.converged());
    let lsdb = net.routers[&2].show_lsdb(net.now);
    assert_eq!(lsdb.lsas.len(), 2);
    assert!(lsdb.lsas.iter().all(|l| l.age <= 1800 && l.seq >= 6), "{:?}", lsdb.lsas);
}

#[test]
fn crashed_router_takes_over_its_old_sequence_numbers() {
    let mut net = diamond(&LinkStateConfig::fast());
    // Bump R4's router LSA a few times so its sequence number is well above 1.
    for _ in 0..3 {
        net.event(4, Event::InterfaceDown { ifindex: HOST_IF });
        net.advance(Duration::from_millis(150));
        net.event(4, Event::InterfaceUp { ifindex: HOST_IF });
        net.advance(Duration::from_millis(150));
    }
    let old_seq = net.routers[&1]
        .lsdb_instances()
        .iter()
        .find(|(k, _, _)| *k == lsdb::LsaKey::router(4))
        .map(|(_, seq, _)| *seq)
        .unwrap();
    assert!(old_seq > 3);
    // R4 crashes (no Stop, no flush) and comes back with an empty database.
    let ifaces: Vec<LsInterface> = std::iter::once(LsInterface {
        ifindex: HOST_IF,
        addr: host_net(4),
        prefix_len: 24,
        cost: 1,
    })
    .chain(
        net.links.iter().flat_map(|(a, b)| [a, b]).filter(|e| e.router == 4).map(|e| LsInterface {
            ifindex: e.ifindex,
            addr: e.addr,
            prefix_len: 24,
            cost: 1,
        }),
    )
    .collect();
    *net.routers.get_mut(&4).unwrap() = LinkStateRouter::new(LinkStateConfig::fast(), 4, ifaces);
    net.event(4, Event::Start);
    net.advance(Duration::from_secs(2));
    assert!(net.all_full());
    assert!(net.converged());
    let new_seq = net.routers[&1]
        .lsdb_instances()
        .iter()
        .find(|(k, _, _)| *k == lsdb::LsaKey::router(4))
        .map(|(_, seq, _)| *seq)
        .unwrap();
    assert!(new_seq > old_seq, "{new_seq} <= {old_seq}");
}

#[test]
fn idle_sg_is_removed_and_not_recomputed() {
    let mut net = diamond(&LinkStateConfig::fast());
    net.join(4, G1, true);
    net.advance(Duration::from_millis(300));
    assert_eq!(net.send_data(1, G1), BTreeSet::from([4]));
    let s = source_at(1);
    net.event(2, Event::DataIdle { source: s, group: G1 });
    assert!(!net.mfib[&2].contains_key(&(s, G1)));
    let computed = net.routers[&2].cache_stats().entry_computations;
    // A membership change for G1 no longer touches R2: it tracks no (S,G1).
    net.join(5, G1, true);
    net.advance(Duration::from_millis(300));
    assert_eq!(net.routers[&2].cache_stats().entry_computations, computed);
    assert!(!net.mfib[&2].contains_key(&(s, G1)));
    // The next packet brings it back, now towards both members.
    assert_eq!(net.send_data(1, G1), BTreeSet::from([4, 5]));
    assert_eq!(net.mfib[&2][&(s, G1)].oifs.len(), 2);
}

#[test]
fn events_and_actions_serialise_for_record_and_replay() {
    let mut r = LinkStateRouter::new(
        LinkStateConfig::fast(),
        1,
        vec![LsInterface { ifindex: HOST_IF, addr: host_net(1), prefix_len: 24, cost: 1 }],
    );
    let events = [
        Event::Start,
        Event::LocalMembership { ifindex: HOST_IF, group: G1, present: true },
        Event::DataArrived(Punt { iif: HOST_IF, source: source_at(1), group: G1 }),
    ];
    for event in events {
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), event);
        for action in r.handle(Timestamp::ZERO, event) {
            let json = serde_json::to_string(&action).unwrap();
            assert_eq!(serde_json::from_str::<Action>(&json).unwrap(), action, "{json}");
        }
    }
    let rejected = Action::Debug(DebugEvent::Rejected {
        ifindex: HOST_IF,
        src: source_at(2),
        reason: RejectReason::Auth { failure: AuthFailure::Replay },
    });
    let json = serde_json::to_string(&rejected).unwrap();
    assert_eq!(serde_json::from_str::<Action>(&json).unwrap(), rejected, "{json}");
    // A lone router with a local member and a local source delivers locally.
    let route = &r.routes()[0];
    assert_eq!((route.iif, route.oifs.len()), (HOST_IF, 0), "iif is not an oif");
    let config: LinkStateConfig = serde_json::from_str(r#"{"hello_interval": 100}"#).unwrap();
    assert_eq!(config.hello_interval, Duration::from_millis(100));
}
