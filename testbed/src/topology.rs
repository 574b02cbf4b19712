//! Declarative topologies: the TOML model, validation with clear errors, built-ins, and the
//! derived plan (interfaces, addresses, unicast routes, the multicast shortest-path tree).
//!
//! A topology file names nodes (routers and hosts), point-to-point links (each a veth pair with a
//! subnet, a cost and an optional rate limit) and the traffic pattern (one sender host, receiver
//! hosts, groups). Side `a` of a link gets the subnet's first host address, side `b` the second.
//!
//! Invariants established by [`Topology::validate`] (everything else relies on them):
//! - node names are unique, short (`[a-z0-9]`, <= 10 chars) and at most 99 nodes exist;
//! - links join two distinct known nodes, have cost >= 1 and non-overlapping subnets of /8../30;
//! - hosts have exactly one link; sender and receivers are hosts; groups are multicast;
//! - every receiver is reachable from the sender.
//!
//! Paths are computed with Dijkstra over link costs with ties broken by the lower node index, so
//! the same file always gives the same tree and routes.

use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::net::Ipv4Addr;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Built-in topologies, embedded so the binary works from any directory.
pub const BUILTINS: &[(&str, &str)] = &[
    ("line3", include_str!("../topologies/line3.toml")),
    ("diamond", include_str!("../topologies/diamond.toml")),
    ("tree2", include_str!("../topologies/tree2.toml")),
    ("transit-stub", include_str!("../topologies/transit-stub.toml")),
    ("square4", include_str!("../topologies/square4.toml")),
];

/// Errors in a topology file.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("cannot read topology file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{origin}: {source}")]
    Parse { origin: String, source: Box<toml::de::Error> },
    #[error("unknown topology `{0}` (built-ins: line3, diamond, tree2, transit-stub, square4; or a path to a .toml file)")]
    Unknown(String),
    #[error("{origin}: node `{name}` is defined twice")]
    DuplicateNode { origin: String, name: String },
    #[error("{origin}: node name `{name}` must be 1-10 characters of [a-z0-9] (it becomes part of namespace and interface names)")]
    BadNodeName { origin: String, name: String },
    #[error(
        "{origin}: {count} nodes; at most 99 are supported (interface names must fit 15 chars)"
    )]
    TooManyNodes { origin: String, count: usize },
    #[error("{origin}: link #{index} ({link}) names unknown node `{name}`")]
    UnknownNode { origin: String, index: usize, link: String, name: String },
    #[error("{origin}: link #{index} connects `{name}` to itself")]
    SelfLink { origin: String, index: usize, name: String },
    #[error("{origin}: link #{index} ({a} -- {b}): cost must be >= 1")]
    ZeroCost { origin: String, index: usize, a: String, b: String },
    #[error("{origin}: link #{index} ({link}): subnet `{subnet}` {why}")]
    BadSubnet { origin: String, index: usize, link: String, subnet: String, why: String },
    #[error("{origin}: links #{first} and #{second} have overlapping subnets")]
    SubnetOverlap { origin: String, first: usize, second: usize },
    #[error("{origin}: host `{name}` has {links} links; a host must have exactly one")]
    HostLinks { origin: String, name: String, links: usize },
    #[error("{origin}: traffic.{field} `{name}` {why}")]
    BadTrafficNode { origin: String, field: &'static str, name: String, why: &'static str },
    #[error("{origin}: traffic.groups: {addr} is not an IPv4 multicast address")]
    NotMulticast { origin: String, addr: Ipv4Addr },
    #[error("{origin}: traffic.{field} must not be empty")]
    Empty { origin: String, field: &'static str },
    #[error("{origin}: receiver `{name}` is not reachable from sender `{sender}`")]
    Unreachable { origin: String, name: String, sender: String },
}

/// What runs on a router node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RouterSoftware {
    /// The fanout router daemon.
    Fanoutd,
    /// Linux ipmr with static routes installed by smcrouted.
    #[default]
    Kernel,
    /// Nothing: the namespace only forwards unicast.
    None,
}

impl std::str::FromStr for RouterSoftware {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fanoutd" => Ok(Self::Fanoutd),
            "kernel" => Ok(Self::Kernel),
            "none" => Ok(Self::None),
            _ => Err(format!("unknown router software `{s}` (expected fanoutd, kernel or none)")),
        }
    }
}

impl std::fmt::Display for RouterSoftware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Fanoutd => "fanoutd",
            Self::Kernel => "kernel",
            Self::None => "none",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    Router,
    Host,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub name: String,
    pub kind: NodeKind,
    /// Overrides the topology's `router_software` for this router.
    #[serde(default)]
    pub software: Option<RouterSoftware>,
}

fn default_cost() -> u32 {
    1
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub a: String,
    pub b: String,
    /// e.g. "10.0.1.0/24"
    pub subnet: String,
    #[serde(default = "default_cost")]
    pub cost: u32,
    /// Token-bucket rate limit applied to both ends (tc tbf), in Mbit/s.
    #[serde(default)]
    pub rate_mbit: Option<u32>,
}

fn default_port() -> u16 {
    5001
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficSpec {
    pub sender: String,
    pub receivers: Vec<String>,
    pub groups: Vec<Ipv4Addr>,
    #[serde(default = "default_port")]
    pub port: u16,
}

/// A topology file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub router_software: RouterSoftware,
    #[serde(rename = "node")]
    pub nodes: Vec<Node>,
    #[serde(rename = "link")]
    pub links: Vec<Link>,
    pub traffic: TrafficSpec,
}

/// An IPv4 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Prefix {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl Prefix {
    fn parse(s: &str) -> Result<Self, String> {
        let (a, l) = s.split_once('/').ok_or_else(|| "is not in address/length form".to_owned())?;
        let addr: Ipv4Addr = a.parse().map_err(|_| format!("has a bad address `{a}`"))?;
        let len: u8 = l.parse().map_err(|_| format!("has a bad length `{l}`"))?;
        if !(8..=30).contains(&len) {
            return Err(format!("length /{len} is outside /8../30"));
        }
        let p = Prefix { addr, len };
        if p.network() != addr {
            return Err(format!("has host bits set (network address is {})", p.network()));
        }
        Ok(p)
    }

    fn mask(self) -> u32 {
        u32::MAX << (32 - u32::from(self.len))
    }

    pub fn network(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    /// The `n`th host address (1-based) in the prefix.
    pub fn host(self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network()) + n)
    }

    fn overlaps(self, other: Prefix) -> bool {
        let m = self.mask() & other.mask();
        u32::from(self.addr) & m == u32::from(other.addr) & m
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network(), self.len)
    }
}

impl Topology {
    /// Parses and validates TOML text; `origin` names the source in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, TopologyError> {
        let t: Topology = toml::from_str(text).map_err(|source| TopologyError::Parse {
            origin: origin.to_owned(),
            source: Box::new(source),
        })?;
        t.validate(origin)?;
        Ok(t)
    }

    /// A built-in by name, or a file by path.
    pub fn load(name_or_path: &str) -> Result<Self, TopologyError> {
        if let Some((n, text)) = BUILTINS.iter().find(|(n, _)| *n == name_or_path) {
            return Self::from_toml(text, &format!("built-in topology {n}"));
        }
        let p = Path::new(name_or_path);
        if p.exists() || p.extension().is_some_and(|e| e.eq_ignore_ascii_case("toml")) {
            let text = std::fs::read_to_string(p)
                .map_err(|source| TopologyError::Read { path: name_or_path.to_owned(), source })?;
            return Self::from_toml(&text, name_or_path);
        }
        Err(TopologyError::Unknown(name_or_path.to_owned()))
    }

    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// The software that runs on router `idx`, with `override_all` taking precedence.
    pub fn software(&self, idx: usize, override_all: Option<RouterSoftware>) -> RouterSoftware {
        override_all.or(self.nodes[idx].software).unwrap_or(self.router_software)
    }

    /// Checks every invariant listed in the module docs.
    pub fn validate(&self, origin: &str) -> Result<(), TopologyError> {
        let o = || origin.to_owned();
        if self.nodes.len() > 99 {
            return Err(TopologyError::TooManyNodes { origin: o(), count: self.nodes.len() });
        }
        let mut seen = BTreeSet::new();
        for n in &self.nodes {
            let ok = !n.name.is_empty()
                && n.name.len() <= 10
                && n.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
            if !ok {
                return Err(TopologyError::BadNodeName { origin: o(), name: n.name.clone() });
            }
            if !seen.insert(n.name.as_str()) {
                return Err(TopologyError::DuplicateNode { origin: o(), name: n.name.clone() });
            }
        }
        let mut prefixes: Vec<Prefix> = Vec::new();
        for (index, l) in self.links.iter().enumerate() {
            for name in [&l.a, &l.b] {
                if self.node_index(name).is_none() {
                    return Err(TopologyError::UnknownNode {
                        origin: o(),
                        index,
                        link: format!("{} -- {}", l.a, l.b),
                        name: name.clone(),
                    });
                }
            }
            if l.a == l.b {
                return Err(TopologyError::SelfLink { origin: o(), index, name: l.a.clone() });
            }
            if l.cost == 0 {
                return Err(TopologyError::ZeroCost {
                    origin: o(),
                    index,
                    a: l.a.clone(),
                    b: l.b.clone(),
                });
            }
            let p = Prefix::parse(&l.subnet).map_err(|why| TopologyError::BadSubnet {
                origin: o(),
                index,
                link: format!("{} -- {}", l.a, l.b),
                subnet: l.subnet.clone(),
                why,
            })?;
            if let Some(first) = prefixes.iter().position(|q| q.overlaps(p)) {
                return Err(TopologyError::SubnetOverlap { origin: o(), first, second: index });
            }
            prefixes.push(p);
        }
        for n in self.nodes.iter().filter(|n| n.kind == NodeKind::Host) {
            let links = self.links.iter().filter(|l| l.a == n.name || l.b == n.name).count();
            if links != 1 {
                return Err(TopologyError::HostLinks { origin: o(), name: n.name.clone(), links });
            }
        }
        let tr = &self.traffic;
        if tr.receivers.is_empty() {
            return Err(TopologyError::Empty { origin: o(), field: "receivers" });
        }
        if tr.groups.is_empty() {
            return Err(TopologyError::Empty { origin: o(), field: "groups" });
        }
        if let Some(addr) = tr.groups.iter().find(|g| !g.is_multicast()) {
            return Err(TopologyError::NotMulticast { origin: o(), addr: *addr });
        }
        let check_host = |field: &'static str, name: &str| match self
            .node_index(name)
            .map(|i| self.nodes[i].kind)
        {
            None => Err(TopologyError::BadTrafficNode {
                origin: o(),
                field,
                name: name.to_owned(),
                why: "is not a node of this topology",
            }),
            Some(NodeKind::Router) => Err(TopologyError::BadTrafficNode {
                origin: o(),
                field,
                name: name.to_owned(),
                why: "is a router; traffic endpoints must be hosts",
            }),
            Some(NodeKind::Host) => Ok(()),
        };
        check_host("sender", &tr.sender)?;
        for r in &tr.receivers {
            check_host("receivers", r)?;
            if *r == tr.sender {
                return Err(TopologyError::BadTrafficNode {
                    origin: o(),
                    field: "receivers",
                    name: r.clone(),
                    why: "is also the sender",
                });
            }
        }
        let plan = Plan::new(self, 0);
        let spt = plan.shortest_paths(plan.idx(&tr.sender));
        for r in &tr.receivers {
            if spt.dist[plan.idx(r)].is_none() {
                return Err(TopologyError::Unreachable {
                    origin: o(),
                    name: r.clone(),
                    sender: tr.sender.clone(),
                });
            }
        }
        Ok(())
    }
}

/// One end of a link as seen from its node.
#[derive(Debug, Clone, Serialize)]
pub struct Port {
    /// Interface name (unique within the run, <= 15 chars).
    pub ifname: String,
    pub link: usize,
    pub addr: Ipv4Addr,
    pub prefix: Prefix,
    pub mac: [u8; 6],
    pub peer_node: usize,
    pub peer_ifname: String,
    pub peer_addr: Ipv4Addr,
    pub peer_mac: [u8; 6],
    pub rate_mbit: Option<u32>,
}

/// A unicast route to install on a node.
#[derive(Debug, Clone, Serialize)]
pub struct Route {
    pub dest: Prefix,
    pub via: Ipv4Addr,
    pub dev: String,
}

/// A static multicast route for one router: (S,G) arriving on `iif` goes out of `oifs`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct McRoute {
    pub source: Ipv4Addr,
    pub group: Ipv4Addr,
    pub iif: String,
    pub oifs: Vec<String>,
}

/// Shortest-path result from one root.
#[derive(Debug, Clone)]
pub struct Spt {
    pub dist: Vec<Option<u64>>,
    /// (parent node, link index) for every reached node but the root.
    pub parent: Vec<Option<(usize, usize)>>,
}

/// A topology resolved for one run: interface names, MACs, addresses.
#[derive(Debug, Clone)]
pub struct Plan {
    pub topo: Topology,
    pub run: u16,
    /// Ports per node, in link order.
    pub ports: Vec<Vec<Port>>,
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn mac_str(m: [u8; 6]) -> String {
    format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
}

impl Plan {
    /// Resolves names and addresses. `topo` must have passed validation, except that
    /// validation itself calls this before the reachability check (which only needs ports).
    pub fn new(topo: &Topology, run: u16) -> Self {
        let n = topo.nodes.len();
        let mut ports: Vec<Vec<Port>> = vec![Vec::new(); n];
        let [rh, rl] = run.to_be_bytes();
        let ifname = |node: usize, port: usize| format!("f{run:04x}-{node}-{port}");
        for (li, l) in topo.links.iter().enumerate() {
            let (Some(a), Some(b)) = (topo.node_index(&l.a), topo.node_index(&l.b)) else {
                continue;
            };
            let Ok(prefix) = Prefix::parse(&l.subnet) else {
                continue;
            };
            let (pa, pb) = (ports[a].len(), ports[b].len());
            let mac_a = [0x02, rh, rl, a as u8, pa as u8, 0x0a];
            let mac_b = [0x02, rh, rl, b as u8, pb as u8, 0x0b];
            let (addr_a, addr_b) = (prefix.host(1), prefix.host(2));
            ports[a].push(Port {
                ifname: ifname(a, pa),
                link: li,
                addr: addr_a,
                prefix,
                mac: mac_a,
                peer_node: b,
                peer_ifname: ifname(b, pb),
                peer_addr: addr_b,
                peer_mac: mac_b,
                rate_mbit: l.rate_mbit,
            });
            ports[b].push(Port {
                ifname: ifname(b, pb),
                link: li,
                addr: addr_b,
                prefix,
                mac: mac_b,
                peer_node: a,
                peer_ifname: ifname(a, pa),
                peer_addr: addr_a,
                peer_mac: mac_a,
                rate_mbit: l.rate_mbit,
            });
        }
        Plan { topo: topo.clone(), run, ports }
    }

    /// Index of a node known to exist (validated names only).
    pub fn idx(&self, name: &str) -> usize {
        self.topo
            .node_index(name)
            .unwrap_or_else(|| panic!("node `{name}` passed validation but is unknown"))
    }

    /// Namespace name of node `i`.
    pub fn ns_name(&self, i: usize) -> String {
        ns_name(self.run, &self.topo.nodes[i].name)
    }

    /// The port of `node` on link `link`.
    pub fn port_on_link(&self, node: usize, link: usize) -> Option<&Port> {
        self.ports[node].iter().find(|p| p.link == link)
    }

    /// Dijkstra from `root`; ties go to the lower node index, then the lower link index.
    /// Hosts are never transit nodes.
    pub fn shortest_paths(&self, root: usize) -> Spt {
        let n = self.topo.nodes.len();
        let mut dist: Vec<Option<u64>> = vec![None; n];
        let mut parent: Vec<Option<(usize, usize)>> = vec![None; n];
        let mut done = vec![false; n];
        let mut heap = BinaryHeap::new();
        dist[root] = Some(0);
        heap.push(std::cmp::Reverse((0u64, root)));
        while let Some(std::cmp::Reverse((d, u))) = heap.pop() {
            if done[u] {
                continue;
            }
            done[u] = true;
            if u != root && self.topo.nodes[u].kind == NodeKind::Host {
                continue;
            }
            for p in &self.ports[u] {
                let v = p.peer_node;
                let nd = d + u64::from(self.topo.links[p.link].cost);
                let better = match dist[v] {
                    None => true,
                    Some(old) => {
                        nd < old
                            || (nd == old
                                && parent[v].is_some_and(|(pu, pl)| (u, p.link) < (pu, pl)))
                    }
                };
                if better && !done[v] {
                    dist[v] = Some(nd);
                    parent[v] = Some((u, p.link));
                    heap.push(std::cmp::Reverse((nd, v)));
                }
            }
        }
        Spt { dist, parent }
    }

    /// Unicast routes for node `u`: hosts get a default route via their only neighbour; routers
    /// get a route per non-attached subnet along the shortest path.
    pub fn unicast_routes(&self, u: usize) -> Vec<Route> {
        let spt = self.shortest_paths(u);
        let first_hop = |mut v: usize| -> Option<(usize, usize)> {
            let mut hop = None;
            while let Some((p, l)) = spt.parent[v] {
                hop = Some((v, l));
                if p == u {
                    break;
                }
                v = p;
            }
            hop
        };
        let mut out = Vec::new();
        if self.topo.nodes[u].kind == NodeKind::Host {
            if let Some(p) = self.ports[u].first() {
                out.push(Route {
                    dest: Prefix { addr: Ipv4Addr::UNSPECIFIED, len: 0 },
                    via: p.peer_addr,
                    dev: p.ifname.clone(),
                });
            }
            return out;
        }
        for (li, l) in self.topo.links.iter().enumerate() {
            if self.ports[u].iter().any(|p| p.link == li) {
                continue;
            }
            let (a, b) = (self.idx(&l.a), self.idx(&l.b));
            let target = match (spt.dist[a], spt.dist[b]) {
                (Some(da), Some(db)) => {
                    if da <= db {
                        a
                    } else {
                        b
                    }
                }
                (Some(_), None) => a,
                (None, Some(_)) => b,
                (None, None) => continue,
            };
            let Some((hop_node, hop_link)) = first_hop(target) else {
                continue;
            };
            let Some(port) = self.port_on_link(u, hop_link) else {
                continue;
            };
            debug_assert_eq!(port.peer_node, hop_node);
            out.push(Route {
                dest: Prefix::parse(&l.subnet)
                    .unwrap_or(Prefix { addr: Ipv4Addr::UNSPECIFIED, len: 0 }),
                via: port.peer_addr,
                dev: port.ifname.clone(),
            });
        }
        out
    }

    /// The sender's address (its only port).
    pub fn sender_addr(&self) -> Ipv4Addr {
        self.ports[self.idx(&self.topo.traffic.sender)][0].addr
    }

    /// The receivers used for fan-out `n` (the first `n` listed; all when `None`).
    pub fn receivers(&self, fanout: Option<usize>) -> Vec<String> {
        let r = &self.topo.traffic.receivers;
        r[..fanout.unwrap_or(r.len()).min(r.len())].to_vec()
    }

    /// Links on the shortest-path tree from the sender to `receivers`, each as
    /// (link index, upstream node, downstream node).
    pub fn tree_links(&self, receivers: &[String]) -> Vec<(usize, usize, usize)> {
        let spt = self.shortest_paths(self.idx(&self.topo.traffic.sender));
        let mut set = BTreeMap::new();
        for r in receivers {
            let mut v = self.idx(r);
            while let Some((p, l)) = spt.parent[v] {
                set.insert(l, (p, v));
                v = p;
            }
        }
        set.into_iter().map(|(l, (p, v))| (l, p, v)).collect()
    }

    /// Static (S,G) routes per router for the tree towards `receivers`, for every group.
    pub fn mc_routes(&self, receivers: &[String]) -> BTreeMap<usize, Vec<McRoute>> {
        let tree = self.tree_links(receivers);
        let source = self.sender_addr();
        let mut per_router: BTreeMap<usize, (Option<String>, Vec<String>)> = BTreeMap::new();
        for &(l, up, down) in &tree {
            if self.topo.nodes[up].kind == NodeKind::Router {
                if let Some(p) = self.port_on_link(up, l) {
                    per_router.entry(up).or_default().1.push(p.ifname.clone());
                }
            }
            if self.topo.nodes[down].kind == NodeKind::Router {
                if let Some(p) = self.port_on_link(down, l) {
                    per_router.entry(down).or_default().0 = Some(p.ifname.clone());
                }
            }
        }
        per_router
            .into_iter()
            .filter_map(|(r, (iif, oifs))| {
                let iif = iif?;
                let routes = self
                    .topo
                    .traffic
                    .groups
                    .iter()
                    .map(|g| McRoute { source, group: *g, iif: iif.clone(), oifs: oifs.clone() })
                    .collect();
                Some((r, routes))
            })
            .collect()
    }
}

/// Namespace name for a node of run `run`.
pub fn ns_name(run: u16, node: &str) -> String {
    format!("ft{run:04x}-{node}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_validate() {
        for (name, _) in BUILTINS {
            let t = Topology::load(name).unwrap();
            assert_eq!(t.name, *name);
            let plan = Plan::new(&t, 0xbeef);
            for ports in &plan.ports {
                for p in ports {
                    assert!(p.ifname.len() <= 15, "{}", p.ifname);
                }
            }
        }
    }

    #[test]
    fn diamond_tree_takes_cheaper_branch() {
        let t = Topology::load("diamond").unwrap();
        let plan = Plan::new(&t, 1);
        let rx = plan.receivers(None);
        let tree = plan.tree_links(&rx);
        let names: Vec<(String, String)> = tree
            .iter()
            .map(|&(_, u, d)| (t.nodes[u].name.clone(), t.nodes[d].name.clone()))
            .collect();
        assert!(names.contains(&("r1".into(), "r2".into())), "{names:?}");
        assert!(!names.iter().any(|(u, d)| u == "r3" || d == "r3"), "{names:?}");
        let routes = plan.mc_routes(&rx);
        let r1 = plan.idx("r1");
        assert_eq!(routes[&r1][0].oifs.len(), 1);
        let r4 = plan.idx("r4");
        assert_eq!(routes[&r4][0].oifs.len(), 2);
    }

    #[test]
    fn fanout_limits_oifs() {
        let t = Topology::load("line3").unwrap();
        let plan = Plan::new(&t, 1);
        let r1 = plan.idx("r1");
        assert_eq!(plan.mc_routes(&plan.receivers(Some(1)))[&r1][0].oifs.len(), 1);
        assert_eq!(plan.mc_routes(&plan.receivers(Some(4)))[&r1][0].oifs.len(), 4);
    }

    #[test]
    fn unicast_routes_cover_every_remote_subnet() {
        let t = Topology::load("transit-stub").unwrap();
        let plan = Plan::new(&t, 1);
        for (i, n) in t.nodes.iter().enumerate() {
            let routes = plan.unicast_routes(i);
            if n.kind == NodeKind::Router {
                assert_eq!(routes.len() + plan.ports[i].len(), t.links.len(), "{}", n.name);
            } else {
                assert_eq!(routes.len(), 1);
            }
        }
    }

    fn err_of(text: &str) -> String {
        Topology::from_toml(text, "t.toml").unwrap_err().to_string()
    }

    const BASE: &str = r#"
name = "x"
[[node]]
name = "s"
kind = "host"
[[node]]
name = "r"
kind = "router"
[[node]]
name = "h"
kind = "host"
[[link]]
a = "s"
b = "r"
subnet = "10.0.1.0/24"
[[link]]
a = "r"
b = "h"
subnet = "10.0.2.0/24"
[traffic]
sender = "s"
receivers = ["h"]
groups = ["239.1.1.1"]
"#;

    #[test]
    fn errors_name_the_problem() {
        Topology::from_toml(BASE, "t.toml").unwrap();
        assert!(err_of(&BASE.replace("10.0.2.0/24", "10.0.1.0/25")).contains("overlapping"));
        assert!(err_of(&BASE.replace("10.0.2.0/24", "10.0.2.1/24")).contains("host bits"));
        assert!(err_of(&BASE.replace("239.1.1.1", "10.1.1.1")).contains("not an IPv4 multicast"));
        assert!(err_of(&BASE.replace("b = \"h\"", "b = \"q\"")).contains("unknown node `q`"));
        assert!(err_of(&BASE.replace("receivers = [\"h\"]", "receivers = [\"r\"]"))
            .contains("is a router"));
        assert!(err_of(&BASE.replace("name = \"r\"", "name = \"R!\"")).contains("[a-z0-9]"));
        let e = err_of(&BASE.replace("kind = \"router\"", "kind = \"switch\""));
        assert!(e.contains("t.toml") && e.contains("line"), "{e}");
        assert!(err_of(&BASE.replace("[traffic]", "bogus = 1\n[traffic]")).contains("bogus"));
    }
}
