//! Bounded memory (SPEC §7): a store holding 10,000 members' private chains opens, and
//! lists every head, in a fresh process whose peak RSS stays far below the bound.
//!
//! The fresh process is this test binary itself, re-invoked to run the ignored
//! `memory_child` test with the data directory in an environment variable, so that the
//! figure measures opening the store, not writing it. `storage/MEMORY.md` records it.

#![allow(clippy::unwrap_used)] // Tests may unwrap (STYLE "Gates").

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use ieschain_core::sample::{SampleFederation, SAMPLE_EPOCH_MS};
use ieschain_core::{Address, AnyBlock, Audience, Hash, PrivateBlock, RecordBody, RecordContent};
use ieschain_storage::{verify, ChainStore, RocksOptions, RocksStore};

const DIR_VAR: &str = "IESCHAIN_MEMORY_DIR";
const MEMBERS_PER_CONSORTIUM: usize = 5_000;
const BLOCKS_PER_MEMBER: u64 = 2;
/// The bound asserted: generous, so that the test fails only on unbounded growth.
const BOUND_KIB: u64 = 512 * 1024;

/// This process's peak resident set size (`VmHWM`), in KiB.
fn peak_rss_kib() -> u64 {
    let status = procfs::process::Process::myself()
        .and_then(|p| p.status())
        .unwrap();
    status.vmhwm.unwrap()
}

/// The child: opens the store, reads every head through `chains()` and the block at each
/// head, and prints its peak RSS; then verifies every chain in full and prints the peak
/// again. Does nothing when run by hand.
#[test]
#[ignore = "run by `ten_thousand_members_open_in_bounded_memory` as its child process"]
fn memory_child() {
    let Some(dir) = std::env::var_os(DIR_VAR) else {
        eprintln!("{DIR_VAR} is not set: this test is the child of ten_thousand_members_open_in_bounded_memory");
        return;
    };
    let before = peak_rss_kib();
    let store = RocksStore::open_existing(Path::new(&dir)).unwrap();
    let chains = store.chains().unwrap();
    let mut read = 0;
    for (holder, chain, head) in &chains {
        if store.block(*holder, *chain, head.height).unwrap().is_some() {
            read += 1;
        }
    }
    let peak = peak_rss_kib();
    let summary = verify(&store).unwrap();
    println!(
        "memory_child chains={} heads_read={read} peak_before_open_kib={before} peak_rss_kib={peak} \
         verified_blocks={} peak_after_verify_kib={}",
        chains.len(),
        summary.blocks,
        peak_rss_kib()
    );
}

/// Writes 10,000 members' private chains (two blocks each), then measures the peak RSS of
/// a fresh process that opens the store and reads every head. It must stay under 512 MiB.
#[test]
fn ten_thousand_members_open_in_bounded_memory() {
    let started = Instant::now();
    let federation = SampleFederation::new(77, &["a", "b"], MEMBERS_PER_CONSORTIUM);
    assert_eq!(federation.members.len(), 2 * MEMBERS_PER_CONSORTIUM);
    let dir = tempfile::tempdir().unwrap();
    {
        let store =
            RocksStore::open(dir.path(), &federation.genesis, RocksOptions::default()).unwrap();
        let mut batch: Vec<(Address, AnyBlock)> = Vec::new();
        for member in &federation.members {
            let address = member.entry.address;
            let mut prev = Hash::ZERO;
            for height in 1..=BLOCKS_PER_MEMBER {
                let time = SAMPLE_EPOCH_MS + height * 1_000;
                let reading = RecordContent {
                    author: address,
                    seq: height,
                    created_at: time,
                    audience: Audience::Own,
                    body: RecordBody::MeterReading {
                        meter: 1,
                        wh: 10_000 + height,
                    },
                }
                .sign(&member.key);
                let block = AnyBlock::Private(PrivateBlock::seal(
                    &member.key,
                    height,
                    prev,
                    time,
                    vec![reading],
                ));
                prev = block.hash();
                batch.push((address, block));
            }
            if batch.len() >= 2_000 {
                store.append_many(&batch).unwrap();
                batch.clear();
            }
        }
        store.append_many(&batch).unwrap();
        store.flush().unwrap();
    }
    let written = started.elapsed();

    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "memory_child",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(DIR_VAR, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.find("memory_child chains=").map(|at| &l[at..]))
        .unwrap_or_else(|| panic!("no figure from the child: {stdout}"));
    let field = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {line}"))
    };
    let chains = field("chains");
    let peak = field("peak_rss_kib");
    let verified = field("peak_after_verify_kib");
    println!(
        "10,000 members: wrote {} blocks in {written:.1?}; a fresh process opened the store and \
         read {chains} heads with a peak RSS of {:.1} MiB, {:.1} MiB after verifying every chain \
         ({line})",
        federation.members.len() as u64 * BLOCKS_PER_MEMBER,
        peak as f64 / 1024.0,
        verified as f64 / 1024.0
    );
    assert_eq!(chains, federation.members.len() as u64);
    assert_eq!(field("heads_read"), chains);
    assert!(
        peak < BOUND_KIB,
        "peak RSS {peak} KiB exceeds the bound of {BOUND_KIB} KiB"
    );
}
