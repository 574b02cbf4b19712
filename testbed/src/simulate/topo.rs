//! Router-level topologies for the simulation: a graph of routers with plane coordinates and
//! link costs, its loaders (JSON node/link files, the namespace testbed's TOML files) and
//! generators (GT-ITM-like transit-stub, random geometric).
//!
//! Invariants established by every constructor (the engine relies on them): link endpoints are
//! valid, distinct node indices; every cost is >= 1; node ids are unique. Connectivity is *not*
//! required of loaded files (unreachable members show up as a delivery ratio below 1); the
//! generators always produce connected graphs.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::SimError;
use crate::topology::{NodeKind, Plan, Topology};

/// A router with a position in the plane (used for distance-derived costs and plots).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SimNode {
    pub id: u64,
    pub x: f64,
    pub y: f64,
}

/// A point-to-point link between node indices `a` and `b`; delay in ms equals `cost`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimLink {
    pub a: usize,
    pub b: usize,
    pub cost: u32,
}

/// The router graph.
#[derive(Debug, Clone, Serialize)]
pub struct SimTopology {
    pub name: String,
    pub nodes: Vec<SimNode>,
    pub links: Vec<SimLink>,
    /// Per node: (neighbour, link index), in link order.
    #[serde(skip)]
    adj: Vec<Vec<(usize, usize)>>,
}

/// Shortest paths from one root. Ties are broken towards the lower predecessor index so that a
/// topology always gives the same tree.
#[derive(Debug, Clone)]
pub struct Paths {
    pub dist: Vec<Option<u64>>,
    /// (predecessor node, link index) on the chosen shortest path.
    pub parent: Vec<Option<(usize, usize)>>,
}

impl Paths {
    /// Links from the root to `node`, root side first; `None` if unreachable.
    pub fn path_links(&self, node: usize) -> Option<Vec<usize>> {
        self.dist[node]?;
        let mut links = Vec::new();
        let mut n = node;
        while let Some((p, l)) = self.parent[n] {
            links.push(l);
            n = p;
        }
        links.reverse();
        Some(links)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonFile {
    #[serde(default)]
    name: Option<String>,
    nodes: Vec<JsonNode>,
    links: Vec<JsonLink>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonNode {
    id: u64,
    /// Informational (city, PoP name); not used by the simulation.
    #[serde(default)]
    #[expect(dead_code, reason = "accepted so that topology files can name their nodes")]
    name: Option<String>,
    #[serde(default)]
    x: Option<f64>,
    #[serde(default)]
    y: Option<f64>,
    #[serde(default)]
    lat: Option<f64>,
    #[serde(default)]
    lon: Option<f64>,
}

/// Kilometres of fibre per millisecond of one-way delay (light at ~2/3 c).
pub const KM_PER_MS: f64 = 200.0;

/// Great-circle distance in km between two (lat, lon) points in degrees.
pub fn great_circle_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, lo1, la2, lo2) =
        (a.0.to_radians(), a.1.to_radians(), b.0.to_radians(), b.1.to_radians());
    let h = ((la2 - la1) / 2.0).sin().powi(2)
        + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().min(1.0).asin()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonLink {
    a: u64,
    b: u64,
    #[serde(default)]
    cost: Option<u32>,
}

/// Cost of a link derived from the endpoints' distance: rounded, at least 1.
pub fn distance_cost(a: SimNode, b: SimNode) -> u32 {
    let d = (a.x - b.x).hypot(a.y - b.y).round();
    if d.is_finite() && d >= 1.0 {
        d.min(f64::from(u32::MAX)) as u32
    } else {
        1
    }
}

impl SimTopology {
    /// Builds and validates a topology.
    pub fn new(name: &str, nodes: Vec<SimNode>, links: Vec<SimLink>) -> Result<Self, SimError> {
        if nodes.is_empty() {
            return Err(SimError::Topology(format!("{name}: no nodes")));
        }
        let mut seen = BTreeMap::new();
        for (i, n) in nodes.iter().enumerate() {
            if let Some(first) = seen.insert(n.id, i) {
                return Err(SimError::Topology(format!(
                    "{name}: node id {} appears twice (entries {first} and {i})",
                    n.id
                )));
            }
        }
        let mut adj = vec![Vec::new(); nodes.len()];
        for (i, l) in links.iter().enumerate() {
            if l.a >= nodes.len() || l.b >= nodes.len() {
                return Err(SimError::Topology(format!("{name}: link #{i} names a missing node")));
            }
            if l.a == l.b {
                return Err(SimError::Topology(format!(
                    "{name}: link #{i} connects node {} to itself",
                    nodes[l.a].id
                )));
            }
            if l.cost == 0 {
                return Err(SimError::Topology(format!("{name}: link #{i} has cost 0")));
            }
            adj[l.a].push((l.b, i));
            adj[l.b].push((l.a, i));
        }
        Ok(SimTopology { name: name.to_owned(), nodes, links, adj })
    }

    /// Parses `{"nodes":[{"id","x","y"} | {"id","lat","lon"}], "links":[{"a","b","cost"?}]}`.
    /// A missing cost is the rounded Euclidean distance of plane coordinates, or for
    /// geographic ones the great-circle distance as fibre delay in ms ([`KM_PER_MS`]); at
    /// least 1 either way. Every node gives the same kind of coordinates.
    pub fn from_json(text: &str, origin: &str) -> Result<Self, SimError> {
        let f: JsonFile =
            serde_json::from_str(text).map_err(|e| SimError::Topology(format!("{origin}: {e}")))?;
        let index: BTreeMap<u64, usize> =
            f.nodes.iter().enumerate().map(|(i, n)| (n.id, i)).collect();
        let geographic = f.nodes.first().is_some_and(|n| n.lat.is_some());
        let mut nodes: Vec<SimNode> = Vec::with_capacity(f.nodes.len());
        for n in &f.nodes {
            let (x, y) = match (geographic, n.x, n.y, n.lat, n.lon) {
                (false, Some(x), Some(y), None, None) => (x, y),
                // Plane position for plots: longitude east, latitude north.
                (true, None, None, Some(lat), Some(lon))
                    if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) =>
                {
                    (lon, lat)
                }
                _ => {
                    return Err(SimError::Topology(format!(
                        "{origin}: node id {} needs either x and y or (like the first node) lat and lon in range",
                        n.id
                    )))
                }
            };
            nodes.push(SimNode { id: n.id, x, y });
        }
        let mut links = Vec::with_capacity(f.links.len());
        for (i, l) in f.links.iter().enumerate() {
            let find = |id: u64| {
                index.get(&id).copied().ok_or_else(|| {
                    SimError::Topology(format!("{origin}: link #{i} names unknown node id {id}"))
                })
            };
            let (a, b) = (find(l.a)?, find(l.b)?);
            let cost = match (l.cost, geographic) {
                (Some(c), _) => c,
                (None, false) => distance_cost(nodes[a], nodes[b]),
                (None, true) => {
                    let km = great_circle_km((nodes[a].y, nodes[a].x), (nodes[b].y, nodes[b].x));
                    (km / KM_PER_MS).round().max(1.0) as u32
                }
            };
            links.push(SimLink { a, b, cost });
        }
        Self::new(f.name.as_deref().unwrap_or(origin), nodes, links)
    }

    /// The routers of a namespace-testbed topology, with its sender and receivers mapped to
    /// the routers they hang off: `(topology, source router, member routers)`. Hosts become
    /// stub interfaces of their router, as in the testbed.
    pub fn from_testbed(topo: &Topology) -> Result<(Self, usize, Vec<usize>), SimError> {
        let plan = Plan::new(topo, 0);
        let mut index = BTreeMap::new();
        let mut nodes = Vec::new();
        for (i, n) in topo.nodes.iter().enumerate() {
            if n.kind == NodeKind::Router {
                index.insert(i, nodes.len());
                nodes.push(SimNode { id: i as u64, x: 0.0, y: 0.0 });
            }
        }
        let mut links = Vec::new();
        for l in &topo.links {
            let (a, b) = (plan.idx(&l.a), plan.idx(&l.b));
            if let (Some(&a), Some(&b)) = (index.get(&a), index.get(&b)) {
                links.push(SimLink { a, b, cost: l.cost });
            }
        }
        let attach = |host: &str| -> Result<usize, SimError> {
            let h = plan.idx(host);
            topo.links
                .iter()
                .find_map(|l| {
                    let (a, b) = (plan.idx(&l.a), plan.idx(&l.b));
                    if a == h {
                        index.get(&b).copied()
                    } else if b == h {
                        index.get(&a).copied()
                    } else {
                        None
                    }
                })
                .ok_or_else(|| {
                    SimError::Topology(format!("{}: host `{host}` has no router", topo.name))
                })
        };
        let source = attach(&topo.traffic.sender)?;
        let members =
            topo.traffic.receivers.iter().map(|r| attach(r)).collect::<Result<Vec<_>, _>>()?;
        Ok((Self::new(&topo.name, nodes, links)?, source, members))
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// (neighbour, link index) pairs of `node`, in link order.
    pub fn neighbors(&self, node: usize) -> &[(usize, usize)] {
        &self.adj[node]
    }

    /// Dijkstra from `root` over link costs.
    pub fn shortest_paths(&self, root: usize) -> Paths {
        let n = self.len();
        let mut dist: Vec<Option<u64>> = vec![None; n];
        let mut parent = vec![None; n];
        let mut done = vec![false; n];
        let mut heap = BinaryHeap::new();
        dist[root] = Some(0);
        heap.push(Reverse((0u64, root)));
        while let Some(Reverse((d, u))) = heap.pop() {
            if done[u] {
                continue;
            }
            done[u] = true;
            for &(v, l) in &self.adj[u] {
                let nd = d + u64::from(self.links[l].cost);
                let better = match dist[v] {
                    None => true,
                    Some(old) => {
                        nd < old || (nd == old && !done[v] && parent[v].is_some_and(|(p, _)| u < p))
                    }
                };
                if better {
                    dist[v] = Some(nd);
                    parent[v] = Some((u, l));
                    heap.push(Reverse((nd, v)));
                }
            }
        }
        Paths { dist, parent }
    }

    /// Router hops from `root` (breadth-first), `None` if unreachable.
    pub fn hop_counts(&self, root: usize) -> Vec<Option<usize>> {
        let mut hops = vec![None; self.len()];
        hops[root] = Some(0);
        let mut queue = std::collections::VecDeque::from([root]);
        while let Some(u) = queue.pop_front() {
            let h = hops[u].unwrap_or(0) + 1;
            for &(v, _) in &self.adj[u] {
                if hops[v].is_none() {
                    hops[v] = Some(h);
                    queue.push_back(v);
                }
            }
        }
        hops
    }

    /// Whether every node reaches every other.
    pub fn is_connected(&self) -> bool {
        self.shortest_paths(0).dist.iter().all(Option::is_some)
    }
}

/// Parameters of the GT-ITM-like transit-stub generator.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TransitStubParams {
    pub transit_domains: usize,
    pub nodes_per_transit: usize,
    pub stubs_per_transit_node: usize,
    pub nodes_per_stub: usize,
    /// Probability of each extra (non-tree) edge inside a domain.
    pub extra_edge_prob: f64,
}

impl TransitStubParams {
    /// Parameters giving close to `n` routers (at least 4).
    pub fn for_size(n: usize) -> Self {
        let n = n.max(4);
        // ~1% of routers are transit routers, in ~sqrt(transit) domains, as in GT-ITM's
        // commonly used configurations; stub domains take the rest.
        let transit = (n / 100).max(2);
        let domains = ((transit as f64).sqrt().round() as usize).max(1);
        let per_domain = transit.div_ceil(domains).max(1);
        let transit_total = domains * per_domain;
        let stubs_per = 3;
        let nodes_per_stub = ((n - transit_total.min(n - 1)) / (transit_total * stubs_per)).max(1);
        TransitStubParams {
            transit_domains: domains,
            nodes_per_transit: per_domain,
            stubs_per_transit_node: stubs_per,
            nodes_per_stub,
            extra_edge_prob: 0.3,
        }
    }
}

/// A connected random graph among `members` (a random spanning tree plus extra edges with
/// probability `p` between near nodes), costs from distance.
fn connect_domain<R: Rng>(
    rng: &mut R,
    nodes: &[SimNode],
    members: &[usize],
    p: f64,
    links: &mut Vec<SimLink>,
) {
    for (k, &v) in members.iter().enumerate().skip(1) {
        let u = members[rng.gen_range(0..k)];
        links.push(SimLink { a: u, b: v, cost: distance_cost(nodes[u], nodes[v]) });
    }
    // Extra edges only inside small neighbourhoods so the domain keeps a bounded degree.
    for (k, &v) in members.iter().enumerate() {
        for &u in members.iter().skip(k + 2).take(3) {
            if rng.gen_bool(p) {
                links.push(SimLink { a: v, b: u, cost: distance_cost(nodes[u], nodes[v]) });
            }
        }
    }
}

fn scatter<R: Rng>(rng: &mut R, cx: f64, cy: f64, r: f64) -> (f64, f64) {
    (cx + rng.gen_range(-r..=r), cy + rng.gen_range(-r..=r))
}

/// GT-ITM-like transit-stub graph: transit domains joined in a ring plus random chords, each
/// transit router with stub domains hanging off it by one link; positions cluster per domain.
pub fn transit_stub<R: Rng>(p: TransitStubParams, rng: &mut R) -> Result<SimTopology, SimError> {
    if p.transit_domains == 0
        || p.nodes_per_transit == 0
        || !(0.0..=1.0).contains(&p.extra_edge_prob)
    {
        return Err(SimError::Topology(format!("bad transit-stub parameters {p:?}")));
    }
    let mut nodes: Vec<SimNode> = Vec::new();
    let mut links = Vec::new();
    let add = |nodes: &mut Vec<SimNode>, (x, y): (f64, f64)| {
        nodes.push(SimNode { id: nodes.len() as u64, x, y });
        nodes.len() - 1
    };
    let mut domains: Vec<Vec<usize>> = Vec::new();
    for _ in 0..p.transit_domains {
        let (cx, cy) = scatter(rng, 5000.0, 5000.0, 4000.0);
        let members: Vec<usize> = (0..p.nodes_per_transit)
            .map(|_| add(&mut nodes, scatter(rng, cx, cy, 600.0)))
            .collect();
        connect_domain(rng, &nodes, &members, p.extra_edge_prob, &mut links);
        domains.push(members);
    }
    let nd = domains.len();
    for d in 0..nd {
        let e = (d + 1) % nd;
        if nd > 1 && (d < e || nd > 2) {
            let a = domains[d][rng.gen_range(0..domains[d].len())];
            let b = domains[e][rng.gen_range(0..domains[e].len())];
            links.push(SimLink { a, b, cost: distance_cost(nodes[a], nodes[b]) });
        }
        if nd > 3 && rng.gen_bool(0.5) {
            let e = (d + 2 + rng.gen_range(0..nd - 3)) % nd;
            let a = domains[d][rng.gen_range(0..domains[d].len())];
            let b = domains[e][rng.gen_range(0..domains[e].len())];
            links.push(SimLink { a, b, cost: distance_cost(nodes[a], nodes[b]) });
        }
    }
    let transit: Vec<usize> = domains.concat();
    for t in transit {
        for _ in 0..p.stubs_per_transit_node {
            let (cx, cy) = scatter(rng, nodes[t].x, nodes[t].y, 400.0);
            let members: Vec<usize> = (0..p.nodes_per_stub)
                .map(|_| add(&mut nodes, scatter(rng, cx, cy, 100.0)))
                .collect();
            connect_domain(rng, &nodes, &members, p.extra_edge_prob, &mut links);
            let gw = members[0];
            links.push(SimLink { a: t, b: gw, cost: distance_cost(nodes[t], nodes[gw]) });
        }
    }
    let name = format!(
        "transit-stub-{}x{}x{}x{}",
        p.transit_domains, p.nodes_per_transit, p.stubs_per_transit_node, p.nodes_per_stub
    );
    SimTopology::new(&name, nodes, links)
}

/// Random geometric graph: `n` routers uniform in a 10 000 x 10 000 square, each linked to its
/// `k` nearest others, plus a nearest-earlier-node link per router that guarantees connectivity.
pub fn geometric<R: Rng>(n: usize, k: usize, rng: &mut R) -> Result<SimTopology, SimError> {
    if n < 2 {
        return Err(SimError::Topology(format!("geometric topology needs >= 2 routers, got {n}")));
    }
    let nodes: Vec<SimNode> = (0..n)
        .map(|i| SimNode {
            id: i as u64,
            x: rng.gen_range(0.0..10_000.0),
            y: rng.gen_range(0.0..10_000.0),
        })
        .collect();
    let d2 =
        |a: usize, b: usize| (nodes[a].x - nodes[b].x).powi(2) + (nodes[a].y - nodes[b].y).powi(2);
    let mut pairs = std::collections::BTreeSet::new();
    for v in 1..n {
        let u = (0..v).min_by(|&a, &b| d2(a, v).total_cmp(&d2(b, v))).unwrap_or(0);
        pairs.insert((u.min(v), u.max(v)));
    }
    let mut order: Vec<usize> = Vec::with_capacity(n);
    for v in 0..n {
        order.clear();
        order.extend((0..n).filter(|&u| u != v));
        let kk = k.min(order.len());
        if kk == 0 {
            continue;
        }
        order.select_nth_unstable_by(kk - 1, |&a, &b| d2(a, v).total_cmp(&d2(b, v)));
        for &u in &order[..kk] {
            pairs.insert((u.min(v), u.max(v)));
        }
    }
    let links = pairs
        .into_iter()
        .map(|(a, b)| SimLink { a, b, cost: distance_cost(nodes[a], nodes[b]) })
        .collect();
    SimTopology::new(&format!("geometric-{n}-k{k}"), nodes, links)
}
