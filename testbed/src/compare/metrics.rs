//! Figures derived from measurements and the topology, without I/O: per-link data copies from
//! counter deltas, the path each receiver's packets took, stretch, the overlay tree, and the
//! router-state parsers.
//!
//! Costs in stretch are *router-level*: the access links of the sender and of the receivers
//! (one per host, the same for every mode) are left out, as the simulation does, so the figures
//! of `compare` and `simulate` can be compared one to one. A receiver on the sender's own router
//! has no stretch (unicast cost 0).

use std::collections::{BTreeMap, BinaryHeap};

use serde::Serialize;

use controlplane::linkstate::spf::{self, RouterId};

use crate::counters::Snapshot;
use crate::topology::{NodeKind, Plan};

/// One link's traffic over the measured (steady) phase.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LinkFigure {
    pub link: usize,
    pub name: String,
    /// Both ends are routers (the links the simulation models).
    pub router_link: bool,
    pub cost: u32,
    /// Packets received at b (a -> b) and at a (b -> a), from the counters.
    pub a_to_b_packets: u64,
    pub b_to_a_packets: u64,
    /// Data copies per sent packet, after removing the control traffic expected from the
    /// idle window.
    pub a_to_b_ratio: f64,
    pub b_to_a_ratio: f64,
    /// The ratios rounded: copies of each data packet per direction.
    pub a_to_b_copies: u32,
    pub b_to_a_copies: u32,
    /// Copies per data packet on the link, both directions.
    pub stress: u32,
}

fn ratio(data_rx: u64, idle_rx: u64, idle_s: f64, steady_s: f64, sent: u64) -> f64 {
    if sent == 0 {
        return 0.0;
    }
    let control = if idle_s > 0.0 { idle_rx as f64 * steady_s / idle_s } else { 0.0 };
    ((data_rx as f64 - control).max(0.0)) / sent as f64
}

/// Per-link data copies. `steady` and `idle` are counter deltas over the data phase and over an
/// idle window (control traffic only) of `idle_s` seconds.
pub fn link_figures(
    plan: &Plan,
    steady: &Snapshot,
    steady_s: f64,
    idle: &Snapshot,
    idle_s: f64,
    sent: u64,
) -> Vec<LinkFigure> {
    steady
        .links
        .iter()
        .map(|l| {
            let i = idle.links.iter().find(|x| x.link == l.link);
            let (ia, ib) = i.map_or((0, 0), |i| (i.b_to_a(), i.a_to_b()));
            let ab = ratio(l.a_to_b(), ib, idle_s, steady_s, sent);
            let ba = ratio(l.b_to_a(), ia, idle_s, steady_s, sent);
            let link = &plan.topo.links[l.link];
            let router = |n: &str| plan.topo.nodes[plan.idx(n)].kind == NodeKind::Router;
            let (ca, cb) = (ab.round() as u32, ba.round() as u32);
            LinkFigure {
                link: l.link,
                name: format!("{}-{}", l.a, l.b),
                router_link: router(&l.a) && router(&l.b),
                cost: link.cost,
                a_to_b_packets: l.a_to_b(),
                b_to_a_packets: l.b_to_a(),
                a_to_b_ratio: ab,
                b_to_a_ratio: ba,
                a_to_b_copies: ca,
                b_to_a_copies: cb,
                stress: ca + cb,
            }
        })
        .collect()
}

/// Cost of the access link of a host (its only link).
fn access_cost(plan: &Plan, host: usize) -> u64 {
    plan.ports[host].first().map_or(0, |p| u64::from(plan.topo.links[p.link].cost))
}

/// Router-level unicast shortest cost between two hosts (`None` if unreachable).
pub fn unicast_cost(plan: &Plan, from: usize, to: usize) -> Option<u64> {
    let d = plan.shortest_paths(from).dist[to]?;
    Some(d.saturating_sub(access_cost(plan, from) + access_cost(plan, to)))
}

/// Router-level cost of the path the copies took to each receiver, following the directed links
/// that carried data (IP multicast: a tree; hosts do not forward). `None`: no measured path.
pub fn measured_path_costs(
    plan: &Plan,
    links: &[LinkFigure],
    sender: usize,
    receivers: &[usize],
) -> Vec<Option<u64>> {
    let n = plan.topo.nodes.len();
    let mut adj: Vec<Vec<(usize, u64)>> = vec![Vec::new(); n];
    for fig in links {
        let link = &plan.topo.links[fig.link];
        let (end_a, end_b) = (plan.idx(&link.a), plan.idx(&link.b));
        let cost = if fig.router_link { u64::from(link.cost) } else { 0 };
        if fig.a_to_b_copies > 0 {
            adj[end_a].push((end_b, cost));
        }
        if fig.b_to_a_copies > 0 {
            adj[end_b].push((end_a, cost));
        }
    }
    let mut dist: Vec<Option<u64>> = vec![None; n];
    let mut heap = BinaryHeap::new();
    dist[sender] = Some(0);
    heap.push(std::cmp::Reverse((0u64, sender)));
    while let Some(std::cmp::Reverse((d, u))) = heap.pop() {
        if dist[u].is_some_and(|x| x < d) {
            continue;
        }
        if u != sender && plan.topo.nodes[u].kind == NodeKind::Host {
            continue;
        }
        for &(v, c) in &adj[u] {
            let nd = d + c;
            if dist[v].is_none_or(|x| nd < x) {
                dist[v] = Some(nd);
                heap.push(std::cmp::Reverse((nd, v)));
            }
        }
    }
    receivers.iter().map(|&r| dist[r]).collect()
}

/// End-to-end (host-to-host, access links included) cost of each receiver's path: IP — the
/// router-level path plus both access links; overlay — every overlay hop end to end, so a relay
/// host's access link counts twice (in and out), as the copies cross it twice.
pub fn end_to_end_costs(
    plan: &Plan,
    sender: usize,
    receivers: &[usize],
    router_level: &[Option<u64>],
    overlay: Option<&OverlayTree>,
) -> Vec<Option<u64>> {
    match overlay {
        None => receivers
            .iter()
            .zip(router_level)
            .map(|(&r, c)| c.map(|c| c + access_cost(plan, sender) + access_cost(plan, r)))
            .collect(),
        Some(t) => (1..t.hosts.len())
            .map(|mut v| {
                let mut total = 0u64;
                let mut guard = 0;
                while let Some(p) = t.parent[v] {
                    total += plan.shortest_paths(t.hosts[p]).dist[t.hosts[v]]?;
                    v = p;
                    guard += 1;
                    if guard > t.hosts.len() {
                        return None;
                    }
                }
                (v == 0).then_some(total)
            })
            .collect(),
    }
}

/// End-to-end unicast shortest cost between two hosts.
pub fn end_to_end_unicast(plan: &Plan, from: usize, to: usize) -> Option<u64> {
    plan.shortest_paths(from).dist[to]
}

/// path / unicast, `None` when either is missing or the unicast cost is 0.
pub fn stretch(path: Option<u64>, unicast: Option<u64>) -> Option<f64> {
    match (path, unicast) {
        (Some(p), Some(u)) if u > 0 => Some(p as f64 / u as f64),
        _ => None,
    }
}

/// An overlay distribution tree over hosts.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OverlayTree {
    /// Node indices of the overlay nodes: the sender first, then the receivers.
    pub hosts: Vec<usize>,
    /// Parent position (in `hosts`) of every position; `None` for the root.
    pub parent: Vec<Option<usize>>,
    /// Mesh degree used.
    pub degree: usize,
}

impl OverlayTree {
    pub fn children(&self, pos: usize) -> Vec<usize> {
        (0..self.hosts.len()).filter(|&c| self.parent[c] == Some(pos)).collect()
    }
}

/// The overlay tree as `simulate`'s `overlay-spf` mode builds it (`simulate::modes::overlay`):
/// the mesh from [`crate::simulate::overlay::static_mesh`] over the sender and receivers
/// (minimum spanning tree plus each node's `degree` nearest nodes, router-level unicast cost),
/// and the shortest-path tree over that mesh from the sender, computed with
/// `controlplane::linkstate::spf`. Same code, inputs, order and tie-breaks as the simulation, so
/// both build the same tree.
pub fn overlay_tree(plan: &Plan, sender: usize, receivers: &[usize], degree: usize) -> OverlayTree {
    let hosts: Vec<usize> = std::iter::once(sender).chain(receivers.iter().copied()).collect();
    let k = hosts.len();
    let d: Vec<Vec<Option<u64>>> =
        hosts.iter().map(|&a| hosts.iter().map(|&b| unicast_cost(plan, a, b)).collect()).collect();
    let dist = |a: usize, b: usize| d[a][b];
    let mesh = crate::simulate::overlay::static_mesh(k, degree, &dist);
    let mut db = spf::Topology::new();
    for v in 0..k {
        db.add_router(v as RouterId);
    }
    for (i, (&(a, b), &c)) in mesh.iter().enumerate() {
        let cost = u32::try_from(c).unwrap_or(u32::MAX);
        db.add_bidirectional(a as RouterId, b as RouterId, cost, 2 * i as u32, 2 * i as u32 + 1);
    }
    let tree = spf::shortest_path_tree(&db, 0);
    let mut parent = vec![None; k];
    for (&c, &(p, _)) in &tree.parent {
        parent[c as usize] = Some(p as usize);
    }
    OverlayTree { hosts, parent, degree }
}

/// Router-level cost of each receiver's overlay path (sum of the unicast costs of its overlay
/// hops), in receiver order (`hosts[1..]`).
pub fn overlay_path_costs(plan: &Plan, t: &OverlayTree) -> Vec<Option<u64>> {
    (1..t.hosts.len())
        .map(|mut v| {
            let mut total = 0u64;
            let mut guard = 0;
            while let Some(p) = t.parent[v] {
                total += unicast_cost(plan, t.hosts[p], t.hosts[v])?;
                v = p;
                guard += 1;
                if guard > t.hosts.len() {
                    return None;
                }
            }
            (v == 0).then_some(total)
        })
        .collect()
}

/// Copies per link direction (a->b, b->a) that a set of directed host-to-host unicast hops
/// produces, along the unicast shortest paths the testbed routes on.
pub fn expected_overlay_copies(plan: &Plan, t: &OverlayTree) -> Vec<(u32, u32)> {
    let mut out = vec![(0u32, 0u32); plan.topo.links.len()];
    for v in 0..t.hosts.len() {
        let Some(p) = t.parent[v] else { continue };
        let (from, to) = (t.hosts[p], t.hosts[v]);
        let spt = plan.shortest_paths(from);
        let mut x = to;
        while let Some((up, l)) = spt.parent[x] {
            let a = plan.idx(&plan.topo.links[l].a);
            if a == up {
                out[l].0 += 1;
            } else {
                out[l].1 += 1;
            }
            x = up;
        }
    }
    out
}

/// Copies per link direction of IP multicast's shortest-path tree (the testbed's static routes).
pub fn expected_ip_copies(plan: &Plan, receivers: &[String]) -> Vec<(u32, u32)> {
    let mut out = vec![(0u32, 0u32); plan.topo.links.len()];
    for (l, up, _down) in plan.tree_links(receivers) {
        if plan.idx(&plan.topo.links[l].a) == up {
            out[l].0 += 1;
        } else {
            out[l].1 += 1;
        }
    }
    out
}

/// Entries for `group` in `ip mroute show` output (one `(S, G)` line per entry).
pub fn kernel_mroute_entries(text: &str, group: std::net::Ipv4Addr) -> usize {
    let g = group.to_string();
    text.lines()
        .filter(|l| {
            l.trim_start().starts_with('(') && l.split(['(', ')', ',', ' ']).any(|w| w == g)
        })
        .count()
}

/// Entries for `group` in `ip mroute show` output that forward (a non-empty `Oifs:` list).
pub fn kernel_mroute_fwd_entries(text: &str, group: std::net::Ipv4Addr) -> usize {
    let g = group.to_string();
    text.lines()
        .filter(|l| {
            l.trim_start().starts_with('(')
                && l.split(['(', ')', ',', ' ']).any(|w| w == g)
                && l.split_once("Oifs:").is_some_and(|(_, rest)| {
                    !rest.split("State:").next().unwrap_or_default().trim().is_empty()
                })
        })
        .count()
}

/// Entries for `group` in `fanoutctl show mroute --json` that forward (an outgoing interface or
/// an overlay next hop); prune (negative) entries have neither.
pub fn fanoutd_fwd_entries(json: &str, group: std::net::Ipv4Addr) -> Option<usize> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let routes = v.get("routes")?.as_array()?;
    let g = group.to_string();
    let nonempty = |r: &serde_json::Value, k: &str| {
        r.get(k).and_then(|x| x.as_array()).is_some_and(|a| !a.is_empty())
    };
    Some(
        routes
            .iter()
            .filter(|r| r.get("group").and_then(|x| x.as_str()) == Some(&g))
            .filter(|r| nonempty(r, "oifs") || nonempty(r, "overlay_next_hops"))
            .count(),
    )
}

/// Entries for `group` in `fanoutctl show mroute --json` (and, for overlay nodes, `show
/// overlay --json`): objects in the `routes` array whose `group` is `group`.
pub fn fanoutd_entries(json: &str, group: std::net::Ipv4Addr) -> Option<usize> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let routes = v.get("routes")?.as_array()?;
    let g = group.to_string();
    Some(routes.iter().filter(|r| r.get("group").and_then(|x| x.as_str()) == Some(&g)).count())
}

/// Mean and max of a list (0 for an empty one).
pub fn mean_max(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    (v.iter().sum::<f64>() / v.len() as f64, v.iter().copied().fold(f64::MIN, f64::max))
}

/// Per-link figures keyed by link index.
pub fn by_link(links: &[LinkFigure]) -> BTreeMap<usize, &LinkFigure> {
    links.iter().map(|l| (l.link, l)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::{IfStats, LinkStats};
    use crate::topology::Topology;

    fn snap(plan: &Plan, f: impl Fn(usize) -> (u64, u64)) -> Snapshot {
        Snapshot {
            links: plan
                .topo
                .links
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let (ab, ba) = f(i);
                    LinkStats {
                        link: i,
                        a: l.a.clone(),
                        a_if: String::new(),
                        a_stats: IfStats { rx_packets: ba, ..IfStats::default() },
                        b: l.b.clone(),
                        b_if: String::new(),
                        b_stats: IfStats { rx_packets: ab, ..IfStats::default() },
                    }
                })
                .collect(),
        }
    }

    #[test]
    fn diamond_ip_tree_has_stress_one_and_stretch_one() {
        let t = Topology::load("diamond").unwrap();
        let plan = Plan::new(&t, 1);
        let rx = plan.receivers(None);
        let exp = expected_ip_copies(&plan, &rx);
        // 1000 data packets on tree links plus control noise of 3 packets/s everywhere.
        let steady =
            snap(&plan, |i| (u64::from(exp[i].0) * 1000 + 6, u64::from(exp[i].1) * 1000 + 6));
        let idle = snap(&plan, |_| (6, 6));
        let f = link_figures(&plan, &steady, 2.0, &idle, 2.0, 1000);
        for l in &f {
            assert_eq!(l.stress, exp[l.link].0 + exp[l.link].1, "{l:?}");
            assert!(l.stress <= 1);
        }
        let r13 = t.links.iter().position(|l| l.a == "r1" && l.b == "r3").unwrap();
        assert_eq!(f[r13].stress, 0);
        let src = plan.idx("src");
        let recv: Vec<usize> = rx.iter().map(|r| plan.idx(r)).collect();
        let paths = measured_path_costs(&plan, &f, src, &recv);
        for (p, &r) in paths.iter().zip(&recv) {
            let s = stretch(*p, unicast_cost(&plan, src, r)).unwrap();
            assert!((s - 1.0).abs() < 1e-9, "{s}");
        }
    }

    #[test]
    fn control_noise_is_removed_and_missing_data_shows() {
        let t = Topology::load("line3").unwrap();
        let plan = Plan::new(&t, 1);
        let steady = snap(&plan, |_| (40, 0));
        let idle = snap(&plan, |_| (40, 0));
        let f = link_figures(&plan, &steady, 1.0, &idle, 1.0, 100);
        assert!(f.iter().all(|l| l.stress == 0));
        let src = plan.idx("src");
        let h1 = plan.idx("h1");
        assert_eq!(measured_path_costs(&plan, &f, src, &[h1]), vec![None]);
    }

    #[test]
    fn overlay_tree_spans_all_and_costs_add_up() {
        let t = Topology::load("transit-stub").unwrap();
        let plan = Plan::new(&t, 1);
        let src = plan.idx("src");
        let recv: Vec<usize> = plan.receivers(None).iter().map(|r| plan.idx(r)).collect();
        let tree = overlay_tree(&plan, src, &recv, 3);
        assert_eq!(tree.parent[0], None);
        assert!(tree.parent[1..].iter().all(Option::is_some));
        let costs = overlay_path_costs(&plan, &tree);
        for (c, &r) in costs.iter().zip(&recv) {
            assert!(c.unwrap() >= unicast_cost(&plan, src, r).unwrap());
        }
        let copies = expected_overlay_copies(&plan, &tree);
        let hops = tree.parent.iter().filter(|p| p.is_some()).count();
        // Every overlay hop leaves its source host's access link once.
        let out_of_hosts: u32 = tree
            .hosts
            .iter()
            .map(|&h| {
                let l = plan.ports[h][0].link;
                if plan.idx(&t.links[l].a) == h {
                    copies[l].0
                } else {
                    copies[l].1
                }
            })
            .sum();
        assert_eq!(out_of_hosts as usize, hops);
    }

    #[test]
    fn state_parsers() {
        let k = "(10.0.0.1,239.1.1.1)    Iif: f1-1-0     Oifs: f1-1-1(ttl 1)  State: resolved\n(10.0.0.1,239.1.1.2) Iif: x Oifs: y\n";
        assert_eq!(kernel_mroute_entries(k, "239.1.1.1".parse().unwrap()), 1);
        assert_eq!(kernel_mroute_entries("", "239.1.1.1".parse().unwrap()), 0);
        let neg = "(10.0.0.1,239.1.1.1) Iif: a Oifs:  State: resolved\n";
        assert_eq!(kernel_mroute_fwd_entries(neg, "239.1.1.1".parse().unwrap()), 0);
        assert_eq!(kernel_mroute_fwd_entries(k, "239.1.1.1".parse().unwrap()), 1);
        let j2 = r#"{"routes":[{"group":"239.1.1.1","oifs":[],"overlay_next_hops":[]},{"group":"239.1.1.1","oifs":[{"name":"x"}]}]}"#;
        assert_eq!(fanoutd_fwd_entries(j2, "239.1.1.1".parse().unwrap()), Some(1));
        let j = r#"{"routes":[{"group":"239.1.1.1"},{"group":"239.9.9.9"}]}"#;
        assert_eq!(fanoutd_entries(j, "239.1.1.1".parse().unwrap()), Some(1));
        assert_eq!(fanoutd_entries("nope", "239.1.1.1".parse().unwrap()), None);
    }
}
