//! The computed modes `linkstate-spf` and `overlay-spf`: routes from
//! `controlplane::linkstate::spf` (the same Dijkstra and tie-break the link-state and overlay
//! cores use) without running any protocol, for sizes beyond what the cores can run in one
//! process. Link-state trees *are* SPF trees over the flooded database, so once the database
//! has converged every router installs exactly what [`install_linkstate`] installs (the tests
//! check this against the real cores, `Mode::Linkstate`). No control traffic is reported.
//!
//! Overlay: the source host and every member host are overlay nodes; the mesh is
//! [`super::overlay::static_mesh`] (a minimum spanning tree plus links to each node's `degree`
//! nearest nodes) with the underlay shortest-path cost as the link cost; the data tree is the
//! SPF tree over the mesh rooted at the source, and each overlay hop is carried along the
//! underlay shortest path, one copy per underlay link it crosses. The overlay cores with the
//! static topology build the same tree.

use std::collections::{BTreeMap, BTreeSet};

use controlplane::linkstate::spf::{self, RouterId};
use dataplane_api::{IfIndex, MfibRoute, Oif};

use super::engine::{Engine, PacketTrace};
use super::topo::Paths;
use super::Scenario;

fn oif(ifindex: IfIndex) -> Oif {
    Oif { ifindex, ttl_threshold: 1 }
}

/// Builds the link-state database from the topology (link ids are the advertising router's
/// ifindexes), computes the source's tree, prunes it to the members and installs each on-tree
/// router's (S,G) route.
pub fn install_linkstate(scn: &Scenario, eng: &mut Engine<'_>) {
    let topo = &scn.topo;
    let mut db = spf::Topology::new();
    for r in 0..topo.len() {
        db.add_router(r as RouterId);
    }
    for (l, link) in topo.links.iter().enumerate() {
        let (Some(ia), Some(ib)) =
            (eng.net.ifindex_on_link(link.a, l), eng.net.ifindex_on_link(link.b, l))
        else {
            continue;
        };
        db.add_bidirectional(link.a as RouterId, link.b as RouterId, link.cost, ia.0, ib.0);
    }
    let tree = spf::shortest_path_tree(&db, scn.source as RouterId);
    let members: BTreeSet<RouterId> = scn.members.iter().map(|&m| m as RouterId).collect();
    let on_tree = tree.pruned(&members);
    let mut routes: BTreeMap<usize, MfibRoute> = BTreeMap::new();
    let source = super::engine::stub_host_addr(0);
    for &r in &on_tree {
        let r = r as usize;
        let iif = match tree.parent.get(&(r as RouterId)) {
            None => eng.net.stubs[0].1,
            Some(&(p, link)) => {
                // `link.id` is the parent's ifindex; the same wire's ifindex here is the iif.
                let Some(port) = eng.net.port(p as usize, IfIndex(link.id)) else { continue };
                let Some((_, peer_if, _)) = port.peer else { continue };
                peer_if
            }
        };
        routes.insert(
            r,
            MfibRoute {
                source: Some(source),
                group: scn.group,
                iif,
                oifs: Vec::new(),
                overlay_next_hops: Vec::new(),
            },
        );
    }
    for (&child, &(p, link)) in &tree.parent {
        if on_tree.contains(&child) {
            if let Some(route) = routes.get_mut(&(p as usize)) {
                route.oifs.push(oif(IfIndex(link.id)));
            }
        }
    }
    for s in 1..eng.net.stubs.len() {
        let (r, ifindex) = eng.net.stubs[s];
        if let Some(route) = routes.get_mut(&r) {
            route.oifs.push(oif(ifindex));
        }
    }
    for (r, route) in routes {
        eng.install(r, route);
    }
}

/// The overlay's data trace and per-overlay-node forwarding entries.
#[derive(Debug)]
pub struct OverlayRun {
    pub trace: PacketTrace,
    /// Per overlay node (source first, then members): forwarding entries with next hops.
    pub host_state: Vec<usize>,
}

pub fn overlay(scn: &Scenario, degree: usize) -> OverlayRun {
    let topo = &scn.topo;
    let hosts = scn.stub_routers();
    let k = hosts.len();
    // Underlay shortest paths from every router that hosts an overlay node.
    let mut paths: BTreeMap<usize, Paths> = BTreeMap::new();
    for &r in &hosts {
        paths.entry(r).or_insert_with(|| topo.shortest_paths(r));
    }
    let dist = |a: usize, b: usize| paths[&hosts[a]].dist[hosts[b]];
    let mesh = super::overlay::static_mesh(k, degree, &dist);
    let mut db = spf::Topology::new();
    for v in 0..k {
        db.add_router(v as RouterId);
    }
    for (i, (&(a, b), &d)) in mesh.iter().enumerate() {
        let cost = u32::try_from(d).unwrap_or(u32::MAX);
        db.add_bidirectional(a as RouterId, b as RouterId, cost, 2 * i as u32, 2 * i as u32 + 1);
    }
    let tree = spf::shortest_path_tree(&db, 0);
    let mut trace = PacketTrace {
        link_copies: vec![0; topo.links.len()],
        stub_copies: vec![0; k],
        delivered: vec![None; k - 1],
        duplicates: 0,
        rpf_drops: 0,
    };
    let mut host_state = vec![0; k];
    // Walk the tree from the root: each overlay hop u -> v leaves u's host link, crosses the
    // underlay path and enters v's host link.
    let mut children: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (&c, &(p, _)) in &tree.parent {
        children.entry(p as usize).or_default().push(c as usize);
    }
    let mut stack = vec![(0usize, 0u64)];
    while let Some((u, cost)) = stack.pop() {
        let kids = children.get(&u).map_or(&[][..], Vec::as_slice);
        // One forwarding entry per host that has next hops, as the overlay core installs.
        host_state[u] = usize::from(!kids.is_empty());
        for &v in kids {
            trace.stub_copies[u] += 1;
            let Some(links) = paths[&hosts[u]].path_links(hosts[v]) else { continue };
            let mut c = cost;
            for l in links {
                trace.link_copies[l] += 1;
                c += u64::from(topo.links[l].cost);
            }
            trace.stub_copies[v] += 1;
            match trace.delivered[v - 1] {
                None => trace.delivered[v - 1] = Some(c),
                Some(_) => trace.duplicates += 1,
            }
            stack.push((v, c));
        }
    }
    OverlayRun { trace, host_state }
}
