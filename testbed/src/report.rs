//! Human tables and JSON artefacts.
//!
//! Tables are plain aligned text (first column left-aligned, the rest right-aligned) so they
//! paste into docs and logs unchanged.

use std::fmt::Write as _;

use crate::counters::Snapshot;
use crate::experiment::TrafficResult;

/// Renders rows as an aligned table with a header and a rule.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let cols = header.len();
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(cols) {
            w[i] = w[i].max(c.len());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String]| {
        for (i, c) in cells.iter().enumerate().take(cols) {
            if i == 0 {
                let _ = write!(out, "{c:<width$}", width = w[i]);
            } else {
                let _ = write!(out, "  {c:>width$}", width = w[i]);
            }
        }
        out.push('\n');
    };
    line(&mut out, &header.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
    let total: usize = w.iter().sum::<usize>() + 2 * (cols - 1);
    out.push_str(&"-".repeat(total));
    out.push('\n');
    for r in rows {
        line(&mut out, r);
    }
    out
}

/// Per-receiver delivery table.
pub fn receivers_table(r: &TrafficResult) -> String {
    let rows: Vec<Vec<String>> = r
        .receivers
        .iter()
        .map(|(node, rep)| {
            vec![
                node.clone(),
                rep.received().to_string(),
                rep.lost().to_string(),
                rep.duplicates().to_string(),
                rep.reordered().to_string(),
                format!("{:.1}", rep.latency.p50_us),
                format!("{:.1}", rep.latency.p99_us),
            ]
        })
        .collect();
    table(&["receiver", "received", "lost", "dup", "reordered", "p50 us", "p99 us"], &rows)
}

/// Per-link counters (a delta snapshot): packets each way, and drops.
pub fn links_table(s: &Snapshot) -> String {
    let rows: Vec<Vec<String>> = s
        .links
        .iter()
        .map(|l| {
            vec![
                format!("{} -- {}", l.a, l.b),
                l.a_to_b().to_string(),
                l.b_to_a().to_string(),
                (l.a_stats.tx_dropped + l.b_stats.rx_dropped).to_string(),
                (l.b_stats.tx_dropped + l.a_stats.rx_dropped).to_string(),
            ]
        })
        .collect();
    table(&["link (a -- b)", "a->b pkts", "b->a pkts", "a->b drop", "b->a drop"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns() {
        let t = table(&["a", "bb"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "a    bb\n-------\nxyz   1\n");
    }
}
