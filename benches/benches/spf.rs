//! Tree computation cost of the link-state mode: Dijkstra over generated graphs of 100, 1 000
//! and 10 000 routers, plus pruning to 50 member routers and the local entry of one router —
//! what a router does when the first packet of a new (S,G) arrives (issue goal: <= 200 µs per
//! (S,G) at 1 000 routers).

use std::collections::BTreeSet;
use std::hint::black_box;

use controlplane::linkstate::spf::{shortest_path_tree, Topology};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// A connected random graph with mean degree about 4: a random spanning tree plus extra links,
/// link costs 1..=10 (a deterministic xorshift keeps runs comparable).
fn generated(n: u32) -> Topology {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move |bound: u32| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % u64::from(bound)) as u32
    };
    let mut t = Topology::new();
    let mut id = 0;
    let mut link = |t: &mut Topology, a: u32, b: u32, cost: u32| {
        t.add_bidirectional(a, b, cost, id, id + 1);
        id += 2;
    };
    for v in 1..n {
        let parent = next(v);
        let cost = 1 + next(10);
        link(&mut t, parent, v, cost);
    }
    for _ in 0..n {
        let (a, b) = (next(n), next(n));
        if a != b {
            let cost = 1 + next(10);
            link(&mut t, a, b, cost);
        }
    }
    t
}

fn spf(c: &mut Criterion) {
    let mut group = c.benchmark_group("spf");
    group.throughput(Throughput::Elements(1));
    for n in [100u32, 1_000, 10_000] {
        let topology = generated(n);
        let members: BTreeSet<u32> = (0..50).map(|i| (i * 7919) % n).collect();
        let me = members.iter().next().copied().unwrap_or(0);
        group.bench_with_input(BenchmarkId::new("tree_and_entry", n), &n, |b, _| {
            b.iter(|| {
                let tree = shortest_path_tree(black_box(&topology), black_box(n / 2));
                black_box(tree.local_entry(&topology, me, &members))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, spf);
criterion_main!(benches);
