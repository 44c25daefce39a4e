//! The canonical codec on full blocks, and Merkle roots.
//!
//! Run with:
//!
//! ```text
//! cargo bench --profile dev --bench codec
//! ```
//!
//! - `codec/consortium_1Mbit/{encode,decode}`: a full consortium block (just under 131,072
//!   encoded bytes of real signed service records). `decode` is `codec::decode`: limited,
//!   complete and canonical, so it includes one re-encode.
//! - `codec/relay_8Mbit/{encode,decode}`: a full relay block of seven full consortium
//!   blocks (`Capacities::max_window`), just under 1,048,576 bytes.
//! - `codec/encoded_len/consortium_1Mbit`: the size pass that capacity checks use.
//! - `merkle/records_root/1000`: `records_root` over 1,000 records (each record's content
//!   encoded and hashed, then the leaves and the tree).

use criterion::{black_box, BenchmarkId, Criterion, Throughput};
use ieschain_core::block::{records_root, ConsortiumBlock, RelayBlock};
use ieschain_core::codec;
use ieschain_core::crypto::Hash;

mod common;

fn blocks(c: &mut Criterion) {
    let federation = common::federation();
    let members = common::members(&federation);
    let consortium = common::full_consortium_block(members[0], 1, Hash::ZERO, 1);
    let relay = common::full_relay_block(&federation);
    let consortium_bytes = codec::encode(&consortium);
    let relay_bytes = codec::encode(&relay);
    println!(
        "fixture: consortium block {} bytes, {} records; relay block {} bytes, {} consortium blocks",
        consortium_bytes.len(),
        consortium.records.len(),
        relay_bytes.len(),
        relay.blocks.len(),
    );
    assert_eq!(
        codec::decode::<ConsortiumBlock>(&consortium_bytes),
        Ok(consortium.clone())
    );
    assert_eq!(codec::decode::<RelayBlock>(&relay_bytes), Ok(relay.clone()));

    let mut group = c.benchmark_group("codec/consortium_1Mbit");
    group.throughput(Throughput::Bytes(consortium_bytes.len() as u64));
    group.bench_function("encode", |b| {
        b.iter(|| codec::encode(black_box(&consortium)))
    });
    group.bench_function("decode", |b| {
        b.iter(|| codec::decode::<ConsortiumBlock>(black_box(&consortium_bytes)))
    });
    group.bench_function("encoded_len", |b| {
        b.iter(|| codec::encoded_len(black_box(&consortium)))
    });
    group.finish();

    let mut group = c.benchmark_group("codec/relay_8Mbit");
    group.throughput(Throughput::Bytes(relay_bytes.len() as u64));
    group.sample_size(10);
    group.bench_function("encode", |b| b.iter(|| codec::encode(black_box(&relay))));
    group.bench_function("decode", |b| {
        b.iter(|| codec::decode::<RelayBlock>(black_box(&relay_bytes)))
    });
    group.finish();
}

fn merkle(c: &mut Criterion) {
    let federation = common::federation();
    let members = common::members(&federation);
    let records = common::records(members[0], 1, 1_000);
    let mut group = c.benchmark_group("merkle/records_root");
    group.throughput(Throughput::Elements(records.len() as u64));
    group.bench_with_input(
        BenchmarkId::from_parameter(records.len()),
        &records,
        |b, records| b.iter(|| records_root(black_box(records))),
    );
    group.finish();
}

fn main() {
    let mut c = common::quick();
    blocks(&mut c);
    merkle(&mut c);
    c.final_summary();
}
