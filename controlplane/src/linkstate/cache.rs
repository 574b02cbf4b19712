//! The per-(S,G) tree cache: trees are computed on demand (when data for an (S,G) first arrives)
//! and kept until something they depend on changes.
//!
//! Two levels, because they depend on different things:
//! - the shortest-path tree rooted at a source's router depends only on the topology (router
//!   LSAs): one per root, shared by every group that root sends to;
//! - the local entry of an (S,G) depends on that tree and on the members of G (membership LSAs).
//!
//! So a router-LSA change drops everything, and a membership change for G drops only G's entries:
//! the next packet of an affected (S,G) recomputes. Idle (S,G)s are never computed.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

use serde::Serialize;

use super::spf::{shortest_path_tree, LocalEntry, RouterId, Topology, Tree};

/// Counters for `show` and metrics: how much work the cache saved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// Dijkstra runs.
    pub tree_computations: u64,
    /// Pruned-entry computations (cheap: a walk up the tree per member).
    pub entry_computations: u64,
    /// Lookups answered without computing anything.
    pub hits: u64,
}

#[derive(Debug, Default)]
pub struct TreeCache {
    trees: HashMap<RouterId, Tree>,
    entries: HashMap<(RouterId, Ipv4Addr), Option<LocalEntry>>,
    stats: CacheStats,
}

impl TreeCache {
    pub fn new() -> TreeCache {
        TreeCache::default()
    }

    /// The entry router `me` installs for packets of group `group` from a source attached to
    /// router `root`, given the routers with members of `group`. `None`: `me` is not on the tree.
    pub fn entry(
        &mut self,
        topology: &Topology,
        me: RouterId,
        root: RouterId,
        group: Ipv4Addr,
        members: &BTreeSet<RouterId>,
    ) -> Option<LocalEntry> {
        if let Some(entry) = self.entries.get(&(root, group)) {
            self.stats.hits += 1;
            return entry.clone();
        }
        let stats = &mut self.stats;
        let tree = self.trees.entry(root).or_insert_with(|| {
            stats.tree_computations += 1;
            shortest_path_tree(topology, root)
        });
        self.stats.entry_computations += 1;
        let entry = tree.local_entry(topology, me, members);
        self.entries.insert((root, group), entry.clone());
        entry
    }

    /// A router LSA changed: every tree may have changed.
    pub fn topology_changed(&mut self) {
        self.trees.clear();
        self.entries.clear();
    }

    /// The membership of `group` changed: only that group's entries are stale.
    pub fn membership_changed(&mut self, group: Ipv4Addr) {
        self.entries.retain(|&(_, g), _| g != group);
    }

    /// Forget an (S,G) whose traffic stopped (its tree stays cached for other groups).
    pub fn forget(&mut self, root: RouterId, group: Ipv4Addr) {
        self.entries.remove(&(root, group));
    }

    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    /// Number of cached (root, group) entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line() -> Topology {
        // 1 ── 2 ── 3
        let mut t = Topology::new();
        t.add_bidirectional(1, 2, 1, 12, 21);
        t.add_bidirectional(2, 3, 1, 23, 32);
        t
    }

    const G1: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 1);
    const G2: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 2);

    #[test]
    fn computes_once_and_shares_trees_between_groups() {
        let t = line();
        let mut c = TreeCache::new();
        let m = BTreeSet::from([3]);
        let e = c.entry(&t, 2, 1, G1, &m).unwrap();
        assert_eq!(e.downstream.iter().map(|l| l.id).collect::<Vec<_>>(), vec![23]);
        c.entry(&t, 2, 1, G1, &m);
        c.entry(&t, 2, 1, G2, &BTreeSet::new());
        assert_eq!(c.stats(), CacheStats { tree_computations: 1, entry_computations: 2, hits: 1 });
    }

    #[test]
    fn membership_change_invalidates_only_that_group() {
        let t = line();
        let mut c = TreeCache::new();
        assert!(c.entry(&t, 2, 1, G1, &BTreeSet::new()).is_none());
        c.entry(&t, 2, 1, G2, &BTreeSet::from([3]));
        c.membership_changed(G1);
        assert_eq!(c.len(), 1);
        // G1 now has a member behind router 3: recomputed from the cached tree, no Dijkstra.
        assert!(c.entry(&t, 2, 1, G1, &BTreeSet::from([3])).is_some());
        assert_eq!(c.stats().tree_computations, 1);
        assert_eq!(c.stats().entry_computations, 3);
    }

    #[test]
    fn topology_change_recomputes_trees() {
        let mut t = line();
        let mut c = TreeCache::new();
        let m = BTreeSet::from([3]);
        assert_eq!(c.entry(&t, 1, 1, G1, &m).unwrap().downstream[0].id, 12);
        // A cheaper direct link 1 ── 3 appears: router 2 drops off the tree.
        t.add_bidirectional(1, 3, 1, 13, 31);
        c.topology_changed();
        assert!(c.is_empty());
        assert_eq!(c.entry(&t, 2, 1, G1, &m), None);
        assert_eq!(c.entry(&t, 1, 1, G2, &m).unwrap().downstream[0].id, 13);
        assert_eq!(c.stats().tree_computations, 2);
    }
}
