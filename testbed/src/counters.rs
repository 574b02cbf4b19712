//! Per-link counters: interface statistics of both ends of every veth, to measure link stress
//! (how many copies of a packet crossed each link).
//!
//! The numbers are the kernel's per-device statistics (`dev_get_stats`), the same values as
//! `/sys/class/net/<dev>/statistics/*` inside the namespace. They are read from
//! `/proc/thread-self/net/dev` on a thread that has `setns()`-ed into the node: sysfs shows the
//! namespace it was *mounted* in, so reading it would need a private mount per read, while the
//! procfs view follows the reading thread's namespace.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::netns::{NetNs, NetNsError};
use crate::topology::Plan;

/// Counters of one interface.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IfStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_dropped: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_dropped: u64,
}

impl IfStats {
    /// `self - earlier`, saturating (counters of a recreated device restart at 0).
    pub fn delta(&self, earlier: &IfStats) -> IfStats {
        IfStats {
            rx_packets: self.rx_packets.saturating_sub(earlier.rx_packets),
            rx_bytes: self.rx_bytes.saturating_sub(earlier.rx_bytes),
            rx_dropped: self.rx_dropped.saturating_sub(earlier.rx_dropped),
            tx_packets: self.tx_packets.saturating_sub(earlier.tx_packets),
            tx_bytes: self.tx_bytes.saturating_sub(earlier.tx_bytes),
            tx_dropped: self.tx_dropped.saturating_sub(earlier.tx_dropped),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CountersError {
    #[error(transparent)]
    NetNs(#[from] NetNsError),
    #[error("cannot read /proc/thread-self/net/dev in {ns}: {source}")]
    Read { ns: String, source: std::io::Error },
    #[error("unexpected line in /proc/net/dev of {ns}: `{line}`")]
    Parse { ns: String, line: String },
}

/// Parses the text of /proc/net/dev.
pub fn parse_proc_net_dev(
    text: &str,
    ns: &str,
) -> Result<BTreeMap<String, IfStats>, CountersError> {
    let mut out = BTreeMap::new();
    for line in text.lines().skip(2) {
        let bad = || CountersError::Parse { ns: ns.to_owned(), line: line.to_owned() };
        let (name, rest) = line.split_once(':').ok_or_else(bad)?;
        let f: Vec<u64> =
            rest.split_whitespace().map(str::parse).collect::<Result<_, _>>().map_err(|_| bad())?;
        if f.len() < 16 {
            return Err(bad());
        }
        out.insert(
            name.trim().to_owned(),
            IfStats {
                rx_bytes: f[0],
                rx_packets: f[1],
                rx_dropped: f[3],
                tx_bytes: f[8],
                tx_packets: f[9],
                tx_dropped: f[11],
            },
        );
    }
    Ok(out)
}

/// Reads the counters of every interface in a namespace.
pub fn read_ns(ns: &NetNs) -> Result<BTreeMap<String, IfStats>, CountersError> {
    let text = ns
        .run(|| std::fs::read_to_string("/proc/thread-self/net/dev"))?
        .map_err(|source| CountersError::Read { ns: ns.name().to_owned(), source })?;
    parse_proc_net_dev(&text, ns.name())
}

/// Both ends of one link.
#[derive(Debug, Clone, Serialize)]
pub struct LinkStats {
    pub link: usize,
    pub a: String,
    pub a_if: String,
    pub a_stats: IfStats,
    pub b: String,
    pub b_if: String,
    pub b_stats: IfStats,
}

impl LinkStats {
    /// Packets that crossed the link from a to b (as received by b).
    pub fn a_to_b(&self) -> u64 {
        self.b_stats.rx_packets
    }
    pub fn b_to_a(&self) -> u64 {
        self.a_stats.rx_packets
    }
}

/// A snapshot of every link of a plan.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub links: Vec<LinkStats>,
}

/// Reads all link counters of a running plan.
pub fn snapshot(plan: &Plan) -> Result<Snapshot, CountersError> {
    let mut per_node = Vec::with_capacity(plan.topo.nodes.len());
    for i in 0..plan.topo.nodes.len() {
        per_node.push(read_ns(&NetNs::existing(&plan.ns_name(i)))?);
    }
    let mut links = Vec::new();
    for (li, l) in plan.topo.links.iter().enumerate() {
        let (a, b) = (plan.idx(&l.a), plan.idx(&l.b));
        let (Some(pa), Some(pb)) = (plan.port_on_link(a, li), plan.port_on_link(b, li)) else {
            continue;
        };
        links.push(LinkStats {
            link: li,
            a: l.a.clone(),
            a_if: pa.ifname.clone(),
            a_stats: per_node[a].get(&pa.ifname).copied().unwrap_or_default(),
            b: l.b.clone(),
            b_if: pb.ifname.clone(),
            b_stats: per_node[b].get(&pb.ifname).copied().unwrap_or_default(),
        });
    }
    Ok(Snapshot { links })
}

impl Snapshot {
    /// Per-link difference `self - earlier` (same plan).
    pub fn delta(&self, earlier: &Snapshot) -> Snapshot {
        let links = self
            .links
            .iter()
            .map(|l| {
                let e = earlier.links.iter().find(|x| x.link == l.link);
                let mut d = l.clone();
                if let Some(e) = e {
                    d.a_stats = l.a_stats.delta(&e.a_stats);
                    d.b_stats = l.b_stats.delta(&e.b_stats);
                }
                d
            })
            .collect();
        Snapshot { links }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_dev() {
        let text = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0\nf1234-1-0: 6000 50 0 3 0 0 0 50 700 7 0 1 0 0 0 0\n";
        let m = parse_proc_net_dev(text, "x").unwrap();
        assert_eq!(m["lo"].rx_packets, 2);
        let f = m["f1234-1-0"];
        assert_eq!(
            (f.rx_bytes, f.rx_packets, f.rx_dropped, f.tx_bytes, f.tx_packets, f.tx_dropped),
            (6000, 50, 3, 700, 7, 1)
        );
        assert!(parse_proc_net_dev("a\nb\nbad line\n", "x").is_err());
    }
}
