//! The link-state database: one instance per LSA key, aged in place, compared with RFC 2328
//! §13.1's rules, and read as the [`Topology`] and group memberships the trees are built from.
//!
//! Invariants:
//! * An entry's age is derived, never stored as "current": it is the age it had when installed
//!   plus the whole seconds since, capped at [`MAX_AGE`]. So aging needs no periodic work.
//! * LSAs at `MAX_AGE` stay in the database (to be flooded as withdrawals) but are invisible to
//!   [`Lsdb::topology`], [`Lsdb::members`] and [`Lsdb::source_router`].

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wire::linkstate::{Lsa, LsaBody, LsaHeader, LsaType, MAX_AGE};

use super::spf::{Link, RouterId, Topology};
use crate::timer::Timestamp;

/// Two instances whose ages differ by more than this are different instances (RFC 2328's
/// MaxAgeDiff).
const MAX_AGE_DIFF: u16 = 900;

/// Identity of an LSA (not of an instance): type, link state id, advertising router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LsaKey {
    pub kind: u8,
    pub id: u32,
    pub adv_router: RouterId,
}

impl LsaKey {
    pub fn of(header: &LsaHeader) -> LsaKey {
        LsaKey { kind: header.kind.into(), id: header.id, adv_router: header.adv_router }
    }

    pub fn router(router: RouterId) -> LsaKey {
        LsaKey { kind: LsaType::Router.into(), id: router, adv_router: router }
    }

    pub fn membership(group: Ipv4Addr, router: RouterId) -> LsaKey {
        LsaKey { kind: LsaType::Membership.into(), id: u32::from(group), adv_router: router }
    }
}

/// Which of two instances of the same LSA is newer (RFC 2328 §13.1): sequence number, then
/// checksum, then a MaxAge instance, then an age smaller by more than MaxAgeDiff. `Greater`
/// means `a` is newer; `Equal`, the same instance.
pub fn compare(a: &LsaHeader, b: &LsaHeader) -> Ordering {
    a.seq
        .cmp(&b.seq)
        .then(a.checksum.cmp(&b.checksum))
        .then_with(|| (a.age >= MAX_AGE).cmp(&(b.age >= MAX_AGE)))
        .then_with(|| {
            if a.age.abs_diff(b.age) > MAX_AGE_DIFF {
                b.age.cmp(&a.age)
            } else {
                Ordering::Equal
            }
        })
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub lsa: Lsa,
    pub installed: Timestamp,
}

impl Entry {
    /// The current age in seconds.
    pub fn age(&self, now: Timestamp) -> u16 {
        let elapsed = now.saturating_duration_since(self.installed).as_secs();
        let age = u64::from(self.lsa.header.age).saturating_add(elapsed);
        u16::try_from(age.min(u64::from(MAX_AGE))).unwrap_or(MAX_AGE)
    }

    /// The header with the current age.
    pub fn header(&self, now: Timestamp) -> LsaHeader {
        LsaHeader { age: self.age(now), ..self.lsa.header }
    }

    /// The LSA as it is transmitted now: current age plus one second of transit delay.
    pub fn to_send(&self, now: Timestamp) -> Lsa {
        let mut lsa = self.lsa.clone();
        lsa.header.age = self.age(now).saturating_add(1).min(MAX_AGE);
        lsa
    }

    pub fn is_max_age(&self, now: Timestamp) -> bool {
        self.age(now) >= MAX_AGE
    }

    /// When this entry reaches MaxAge.
    pub fn max_age_at(&self) -> Timestamp {
        let left = MAX_AGE.saturating_sub(self.lsa.header.age);
        self.installed.saturating_add(Duration::from_secs(u64::from(left)))
    }
}

#[derive(Debug, Default)]
pub struct Lsdb {
    entries: BTreeMap<LsaKey, Entry>,
}

impl Lsdb {
    pub fn get(&self, key: &LsaKey) -> Option<&Entry> {
        self.entries.get(key)
    }

    pub fn insert(&mut self, now: Timestamp, lsa: Lsa) -> Option<Entry> {
        self.entries.insert(LsaKey::of(&lsa.header), Entry { lsa, installed: now })
    }

    pub fn remove(&mut self, key: &LsaKey) -> Option<Entry> {
        self.entries.remove(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&LsaKey, &Entry)> {
        self.entries.iter()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The earliest time an entry that is not yet at MaxAge gets there.
    pub fn next_max_age(&self, now: Timestamp) -> Option<Timestamp> {
        self.entries.values().filter(|e| !e.is_max_age(now)).map(Entry::max_age_at).min()
    }

    /// Router LSAs below MaxAge, as the topology the trees are computed on.
    pub fn topology(&self, now: Timestamp) -> Topology {
        let mut topology = Topology::new();
        for (key, entry) in &self.entries {
            if entry.is_max_age(now) {
                continue;
            }
            if let LsaBody::Router { links, .. } = &entry.lsa.body {
                topology.add_router(key.adv_router);
                for l in links {
                    topology.add_link(
                        key.adv_router,
                        Link { to: l.neighbor, cost: l.cost, id: l.link_id },
                    );
                }
            }
        }
        topology
    }

    /// Routers that advertise members of `group` on at least one interface.
    pub fn members(&self, group: Ipv4Addr, now: Timestamp) -> BTreeSet<RouterId> {
        let id = u32::from(group);
        let kind = u8::from(LsaType::Membership);
        self.entries
            .range(
                LsaKey { kind, id, adv_router: 0 }..=LsaKey { kind, id, adv_router: u32::MAX },
            )
            .filter(|(_, e)| {
                !e.is_max_age(now)
                    && matches!(&e.lsa.body, LsaBody::Membership { interfaces } if !interfaces.is_empty())
            })
            .map(|(k, _)| k.adv_router)
            .collect()
    }

    /// The router a source is attached to: the one advertising the longest attached network
    /// containing it, the lowest router id among equals (so every router picks the same root).
    pub fn source_router(&self, source: Ipv4Addr, now: Timestamp) -> Option<RouterId> {
        let mut best: Option<(u8, RouterId)> = None;
        for (key, entry) in &self.entries {
            if entry.is_max_age(now) {
                continue;
            }
            let LsaBody::Router { networks, .. } = &entry.lsa.body else { continue };
            for n in networks.iter().filter(|n| n.contains(source)) {
                let better = match best {
                    None => true,
                    Some((len, id)) => {
                        n.prefix_len > len || (n.prefix_len == len && key.adv_router < id)
                    }
                };
                if better {
                    best = Some((n.prefix_len, key.adv_router));
                }
            }
        }
        best.map(|(_, id)| id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::linkstate::{AttachedNetwork, RouterLink};

    fn router(id: u32, seq: u32, age: u16, nets: &[(Ipv4Addr, u8)]) -> Lsa {
        Lsa::new(
            age,
            id,
            id,
            seq,
            LsaBody::Router {
                links: vec![RouterLink { neighbor: id + 1, link_id: 1, cost: 1 }],
                networks: nets
                    .iter()
                    .map(|&(prefix, prefix_len)| AttachedNetwork { prefix, prefix_len })
                    .collect(),
            },
        )
    }

    #[test]
    fn newer_by_seq_then_checksum_then_max_age_then_age() {
        let a = router(1, 5, 10, &[]).header;
        let b = router(1, 6, 10, &[]).header;
        assert_eq!(compare(&b, &a), Ordering::Greater);
        let mut c = a;
        c.checksum = a.checksum.wrapping_add(1);
        assert_eq!(compare(&c, &a), Ordering::Greater);
        let flushed = LsaHeader { age: MAX_AGE, ..a };
        assert_eq!(compare(&flushed, &a), Ordering::Greater);
        let younger = LsaHeader { age: 10, ..a };
        let older = LsaHeader { age: 1000, ..a };
        assert_eq!(compare(&younger, &older), Ordering::Greater);
        assert_eq!(compare(&LsaHeader { age: 500, ..a }, &older), Ordering::Equal);
    }

    #[test]
    fn aging_and_max_age_hide_lsas() {
        let mut db = Lsdb::default();
        let net = (Ipv4Addr::new(10, 0, 1, 0), 24);
        db.insert(Timestamp::ZERO, router(1, 1, MAX_AGE - 2, &[net]));
        let src = Ipv4Addr::new(10, 0, 1, 5);
        assert_eq!(db.source_router(src, Timestamp::from_secs(1)), Some(1));
        assert_eq!(db.next_max_age(Timestamp::ZERO), Some(Timestamp::from_secs(2)));
        let later = Timestamp::from_secs(2);
        assert_eq!(db.get(&LsaKey::router(1)).unwrap().age(later), MAX_AGE);
        assert_eq!(db.source_router(src, later), None);
        assert!(db.topology(later).is_empty());
    }

    #[test]
    fn longest_prefix_then_lowest_router_wins_the_source() {
        let mut db = Lsdb::default();
        db.insert(Timestamp::ZERO, router(5, 1, 0, &[(Ipv4Addr::new(10, 0, 0, 0), 16)]));
        db.insert(Timestamp::ZERO, router(7, 1, 0, &[(Ipv4Addr::new(10, 0, 1, 0), 24)]));
        db.insert(Timestamp::ZERO, router(3, 1, 0, &[(Ipv4Addr::new(10, 0, 1, 0), 24)]));
        assert_eq!(db.source_router(Ipv4Addr::new(10, 0, 1, 1), Timestamp::ZERO), Some(3));
        assert_eq!(db.source_router(Ipv4Addr::new(10, 0, 2, 1), Timestamp::ZERO), Some(5));
        assert_eq!(db.source_router(Ipv4Addr::new(11, 0, 0, 1), Timestamp::ZERO), None);
    }
}
