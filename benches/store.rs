//! Block appends to the RocksDB chain store: synced, unsynced, and group commit.
//!
//! Run with:
//!
//! ```text
//! cargo bench --profile dev --bench store
//! ```
//!
//! The store lives in a temporary directory (under `$TMPDIR`, `/tmp` by default); sync
//! figures measure that file system's fsync.
//!
//! - `store/append/{synced,unsynced}`: one `ChainStore::append` per block, each its own
//!   atomic batch; synced means a WAL fsync before `append` returns (SPEC §7).
//! - `store/append_many_64/{synced,unsynced}`: group commit, 64 blocks in one
//!   `append_many` (one batch, one sync); throughput is per block.
//!
//! Blocks are consortium blocks of 10 real signed service records (about 1.4 KB encoded),
//! built before the timed part: signing is the client's work (SPEC §12 D8). A pool of
//! consecutive blocks of one lane is appended again and again under fresh holders (the
//! store keeps each holder's copies apart and does not validate), so every append is a
//! real next-block append onto a store that grows during the run.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use ieschain_core::codec;
use ieschain_core::crypto::{Address, Hash};
use ieschain_core::{AnyBlock, ChainBlock, ConsortiumBlock};
use ieschain_storage::{ChainStore, RocksOptions, RocksStore};

mod common;

/// Records per block: a realistic consortium block, not a full one.
const RECORDS: usize = 10;
/// Blocks in the pool of one lane.
const POOL: usize = 256;
/// Blocks per group commit.
const GROUP: usize = 64;

/// `POOL` consecutive blocks of one member's lane.
fn pool() -> Vec<AnyBlock> {
    let federation = common::federation();
    let member = common::members(&federation)[0].clone();
    let mut prev = Hash::ZERO;
    let mut out = Vec::with_capacity(POOL);
    for height in 1..=POOL as u64 {
        let first_seq = (height - 1) * RECORDS as u64 + 1;
        let block: ConsortiumBlock =
            common::consortium_block(&member, height, prev, first_seq, RECORDS);
        prev = block.hash();
        out.push(block.into());
    }
    out
}

/// A holder that no other append of this run uses.
fn holder(n: u64) -> Address {
    let mut bytes = [0u8; 20];
    bytes[..8].copy_from_slice(&n.to_be_bytes());
    bytes[8] = 0xbe;
    Address(bytes)
}

/// Hands out (holder, block) appends that are always the next block of their chain.
struct Feed<'a> {
    pool: &'a [AnyBlock],
    next: u64,
}

impl<'a> Feed<'a> {
    fn new(pool: &'a [AnyBlock]) -> Self {
        Feed { pool, next: 0 }
    }

    fn take(&mut self) -> (Address, &'a AnyBlock) {
        let n = self.next;
        self.next += 1;
        let len = self.pool.len() as u64;
        (holder(n / len), &self.pool[(n % len) as usize])
    }

    /// The next `GROUP` appends, cloned (outside the timed part).
    fn group(&mut self) -> Vec<(Address, AnyBlock)> {
        (0..GROUP)
            .map(|_| {
                let (holder, block) = self.take();
                (holder, block.clone())
            })
            .collect()
    }
}

fn open(sync: bool) -> (tempfile::TempDir, RocksStore) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let genesis = common::federation().genesis;
    let store =
        RocksStore::open(dir.path(), &genesis, RocksOptions { sync }).expect("a fresh store opens");
    (dir, store)
}

fn appends(c: &mut Criterion, pool: &[AnyBlock]) {
    let mut group = c.benchmark_group("store/append");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1));
    for (name, sync) in [("synced", true), ("unsynced", false)] {
        let (_dir, store) = open(sync);
        let mut feed = Feed::new(pool);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    let (holder, block) = feed.take();
                    store.append(holder, block).expect("the next block appends");
                }
                start.elapsed()
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group(format!("store/append_many_{GROUP}"));
    group.sample_size(10);
    group.throughput(Throughput::Elements(GROUP as u64));
    for (name, sync) in [("synced", true), ("unsynced", false)] {
        let (_dir, store) = open(sync);
        let mut feed = Feed::new(pool);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let batch = feed.group();
                    let start = Instant::now();
                    store.append_many(&batch).expect("the next blocks append");
                    total += start.elapsed();
                }
                total
            })
        });
    }
    group.finish();
}

fn main() {
    let pool = pool();
    println!(
        "fixture: {} blocks of {RECORDS} records, {} encoded bytes each (first block)",
        pool.len(),
        codec::encoded_len(&pool[0]),
    );
    let mut c = common::quick();
    appends(&mut c, &pool);
    c.final_summary();
}
