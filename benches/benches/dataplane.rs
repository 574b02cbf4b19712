//! Data-plane benchmarks: MFIB lookup + RPF, the full forwarding pipeline with native
//! replication, overlay encapsulation and decapsulation. Throughput is in *output* packets
//! (copies), so criterion's time per element is the cost per transmitted packet.
//!
//! Run: `cargo bench -p fanout-benches -- --warm-up-time 1 --measurement-time 3`. With
//! `FANOUT_BENCH_CPU_TIME=1` the same benches measure the thread's CPU time instead of wall time
//! (use it on a loaded machine: wall time then includes waiting for a core).

use std::hint::black_box;

use criterion::measurement::Measurement;
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use dataplane::iface::PortId;
use fanout_benches::{
    decap_router, encap_router, frame_of_size, mfib_with_routes, native_router, ThreadCpuTime,
};

const SIZES: [usize; 3] = [64, 512, 1500];

fn mfib_lookup<M: Measurement>(c: &mut Criterion<M>) {
    let mut group = c.benchmark_group("mfib_lookup");
    group.throughput(Throughput::Elements(1));
    for routes in [1_000usize, 10_000] {
        let (mfib, keys) = mfib_with_routes(routes);
        group.bench_with_input(BenchmarkId::new("sg_hit_rpf", routes), &keys, |b, keys| {
            let mut i = 0usize;
            b.iter(|| {
                // Walk the keys so successive lookups touch different buckets, as real traffic does.
                let (s, g) = keys[i % keys.len()];
                i = i.wrapping_add(1);
                let hit = mfib.lookup(black_box(s), black_box(g));
                hit.is_some_and(|r| r.iif == PortId(0))
            });
        });
    }
    group.finish();
}

fn forward<M: Measurement>(c: &mut Criterion<M>) {
    let mut group = c.benchmark_group("forward");
    for fanout in [1usize, 2, 4, 8] {
        for size in SIZES {
            let mut router = native_router(fanout);
            let frame = frame_of_size(size);
            group.throughput(Throughput::Elements(fanout as u64));
            group.bench_with_input(
                BenchmarkId::new(format!("fanout{fanout}"), size),
                &frame,
                |b, frame| {
                    b.iter(|| router.step(black_box(frame)));
                },
            );
        }
    }
    group.finish();
}

fn encap<M: Measurement>(c: &mut Criterion<M>) {
    let mut group = c.benchmark_group("encap");
    group.throughput(Throughput::Elements(1));
    for auth in [false, true] {
        for size in SIZES {
            let mut router = encap_router(1, auth);
            // Leave room for the encapsulation so 1500-byte frames still fit the 1500 MTU.
            let frame = frame_of_size(size.min(1500 - 60));
            let name = if auth { "hmac" } else { "plain" };
            group.bench_with_input(BenchmarkId::new(name, size), &frame, |b, frame| {
                b.iter(|| router.step(black_box(frame)));
            });
        }
    }
    group.finish();
}

fn decap<M: Measurement>(c: &mut Criterion<M>) {
    let mut group = c.benchmark_group("decap");
    group.throughput(Throughput::Elements(1));
    for auth in [false, true] {
        for size in SIZES {
            let (mut router, frame) = decap_router(size.min(1500 - 60), auth);
            let name = if auth { "hmac" } else { "plain" };
            group.bench_with_input(BenchmarkId::new(name, size), &frame, |b, frame| {
                b.iter(|| router.step(black_box(frame)));
            });
        }
    }
    group.finish();
}

criterion_group!(wall_time, mfib_lookup, forward, encap, decap);
criterion_group! {
    name = cpu_time;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = mfib_lookup, forward, encap, decap
}

fn main() {
    if std::env::var_os("FANOUT_BENCH_CPU_TIME").is_some() {
        cpu_time();
    } else {
        wall_time();
    }
    Criterion::default().configure_from_args().final_summary();
}
