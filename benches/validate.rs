//! Validating a full consortium block against the cost of its ed25519 checks alone.
//!
//! Run with:
//!
//! ```text
//! cargo bench --profile dev --bench validate
//! ```
//!
//! The target: "validating a full consortium block costs at most 1.2x the time its ed25519
//! checks take alone, measured in the same run".
//!
//! - `validate/consortium_1Mbit/append`: `ConsortiumLane::append` of a full 1 Mbit block
//!   onto a fresh (empty) lane, cloned outside the timed part.
//! - `validate/consortium_1Mbit/verify_all`: the same (key, digest, signature) triples that
//!   `append` checks, passed to `verify_all` (what validation calls).
//! - `validate/consortium_1Mbit/verify_strict_each`: the same triples, one `verify_strict`
//!   each.
//! - `validate/consortium_1Mbit/strict_key_once`: for reference, `verify_strict` on each
//!   triple with the signer's key decompressed once, before the timed part. It accepts
//!   exactly what `verify_all` accepts; the difference is the repeated key decompression.
//! - `validate/consortium_1Mbit/dalek_verify_batch`: for reference only,
//!   `ed25519_dalek::verify_batch` on keys decompressed before the timed part. It is NOT a
//!   sound replacement: it accepts torsioned signatures that `verify_strict` refuses
//!   (`core/tests/signatures.rs`). It shows what batching would have cost.
//! - `validate/parts/*`: the non-signature work `append` does, one part at a time, to show
//!   where any overhead is: the size pass, the records root, the record digests, the header
//!   hash.
//!
//! After criterion, the bench measures `append`, `verify_all` and `verify_strict_each`
//! interleaved, round after round in the same process, and prints the medians and the
//! ratios `append / verify_all` (the target's measure) and, for reference, `append` to
//! each of the other signature measures, against 1.2.

use std::time::{Duration, Instant};

use criterion::{black_box, BatchSize, Criterion, Throughput};
use ed25519_dalek::VerifyingKey;
use ieschain_core::block::{records_root, ConsortiumBlock};
use ieschain_core::codec;
use ieschain_core::crypto::{verify_all, Hash, PublicKey, Signature};
use ieschain_core::genesis::Capacities;
use ieschain_core::validate::ConsortiumLane;
use ieschain_core::ChainBlock;

mod common;

/// The ratio the issue allows between validation and its signature checks.
const TARGET: f64 = 1.2;

struct Fixture {
    lane: ConsortiumLane,
    block: ConsortiumBlock,
    triples: Vec<(PublicKey, Hash, Signature)>,
    dalek: Dalek,
}

/// The same triples in `ed25519_dalek`'s own types, keys already decompressed.
struct Dalek {
    keys: Vec<VerifyingKey>,
    signatures: Vec<ed25519_dalek::Signature>,
    digests: Vec<[u8; 32]>,
}

impl Dalek {
    fn new(triples: &[(PublicKey, Hash, Signature)]) -> Dalek {
        Dalek {
            keys: triples
                .iter()
                .map(|(key, _, _)| VerifyingKey::from_bytes(&key.0).expect("a valid key"))
                .collect(),
            signatures: triples
                .iter()
                .map(|(_, _, s)| ed25519_dalek::Signature::from_bytes(&s.0))
                .collect(),
            digests: triples.iter().map(|(_, d, _)| d.0).collect(),
        }
    }

    /// `verify_strict` on each triple, keys already decompressed.
    fn verify_strict(&self) -> bool {
        self.keys
            .iter()
            .zip(&self.signatures)
            .zip(&self.digests)
            .all(|((key, signature), digest)| key.verify_strict(digest, signature).is_ok())
    }

    /// The batch equation (unsound for consensus; reference only).
    fn verify(&self) -> bool {
        let messages: Vec<&[u8]> = self.digests.iter().map(|d| &d[..]).collect();
        ed25519_dalek::verify_batch(&messages, &self.signatures, &self.keys).is_ok()
    }
}

fn fixture() -> Fixture {
    let federation = common::federation();
    let member = common::members(&federation)[0].clone();
    let block = common::full_consortium_block(&member, 1, Hash::ZERO, 1);
    let lane = ConsortiumLane::new(
        member.consortium,
        member.entry.address,
        member.key.public(),
        Capacities::CONSORTIUM_DEFAULT,
    );
    let mut check = lane.clone();
    check
        .append(&block)
        .expect("the fixture block must be valid");
    let triples = common::signature_triples(&block, member.key.public());
    assert_eq!(verify_all(&triples), Ok(()));
    println!(
        "fixture: consortium block of {} encoded bytes, {} records, {} signatures",
        codec::encoded_len(&block),
        block.records.len(),
        triples.len()
    );
    let dalek = Dalek::new(&triples);
    assert!(dalek.verify());
    assert!(dalek.verify_strict());
    Fixture {
        lane,
        block,
        triples,
        dalek,
    }
}

fn verify_each(triples: &[(PublicKey, Hash, Signature)]) -> bool {
    triples
        .iter()
        .all(|(key, digest, signature)| key.verify(digest, signature).is_ok())
}

fn benches(c: &mut Criterion, f: &Fixture) {
    let mut group = c.benchmark_group("validate/consortium_1Mbit");
    group.sample_size(10);
    group.throughput(Throughput::Elements(f.triples.len() as u64));
    group.bench_function("append", |b| {
        b.iter_batched(
            || f.lane.clone(),
            |mut lane| lane.append(black_box(&f.block)),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("verify_all", |b| {
        b.iter(|| verify_all(black_box(&f.triples)))
    });
    group.bench_function("verify_strict_each", |b| {
        b.iter(|| verify_each(black_box(&f.triples)))
    });
    group.bench_function("strict_key_once", |b| {
        b.iter(|| black_box(&f.dalek).verify_strict())
    });
    group.bench_function("dalek_verify_batch", |b| {
        b.iter(|| black_box(&f.dalek).verify())
    });
    group.finish();

    let mut group = c.benchmark_group("validate/parts");
    group.bench_function("encoded_len", |b| {
        b.iter(|| codec::encoded_len(black_box(&f.block)))
    });
    group.bench_function("records_root", |b| {
        b.iter(|| records_root(black_box(&f.block.records)))
    });
    group.bench_function("record_digests", |b| {
        b.iter(|| {
            black_box(&f.block.records)
                .iter()
                .map(|r| r.digest())
                .collect::<Vec<_>>()
        })
    });
    group.bench_function("header_hash", |b| b.iter(|| black_box(&f.block).hash()));
    group.finish();
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Times the three measures interleaved, so that the noise of a shared machine falls on
/// all of them alike, and prints medians and ratios.
fn ratio(f: &Fixture) {
    let rounds = if common::test_mode() { 1 } else { 31 };
    let mut append = Vec::with_capacity(rounds);
    let mut batch = Vec::with_capacity(rounds);
    let mut each = Vec::with_capacity(rounds);
    let mut key_once = Vec::with_capacity(rounds);
    let mut floor = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let mut lane = f.lane.clone();
        let start = Instant::now();
        let ok = lane.append(black_box(&f.block)).is_ok();
        append.push(start.elapsed());
        assert!(ok);

        let start = Instant::now();
        let ok = verify_all(black_box(&f.triples)).is_ok();
        batch.push(start.elapsed());
        assert!(ok);

        let start = Instant::now();
        let ok = verify_each(black_box(&f.triples));
        each.push(start.elapsed());
        assert!(ok);

        let start = Instant::now();
        let ok = black_box(&f.dalek).verify_strict();
        key_once.push(start.elapsed());
        assert!(ok);

        let start = Instant::now();
        let ok = black_box(&f.dalek).verify();
        floor.push(start.elapsed());
        assert!(ok);
    }
    if common::test_mode() {
        println!("validation ratio: not measured in test mode (one round, checked only)");
        return;
    }
    let append = median(&mut append);
    let batch = median(&mut batch);
    let each = median(&mut each);
    let key_once = median(&mut key_once);
    let floor = median(&mut floor);
    let n = f.triples.len() as f64;
    let to_batch = append.as_secs_f64() / batch.as_secs_f64();
    let to_each = append.as_secs_f64() / each.as_secs_f64();
    let to_key_once = append.as_secs_f64() / key_once.as_secs_f64();
    let to_floor = append.as_secs_f64() / floor.as_secs_f64();
    println!();
    println!("validation ratio, {rounds} interleaved rounds, medians:");
    println!(
        "  append              {:>10.1} µs  ({:.2} µs/signature)",
        common::micros(append),
        common::micros(append) / n
    );
    println!(
        "  verify_all          {:>10.1} µs  ({:.2} µs/signature)",
        common::micros(batch),
        common::micros(batch) / n
    );
    println!(
        "  verify_strict_each  {:>10.1} µs  ({:.2} µs/signature)",
        common::micros(each),
        common::micros(each) / n
    );
    println!(
        "  strict_key_once     {:>10.1} µs  ({:.2} µs/signature)",
        common::micros(key_once),
        common::micros(key_once) / n
    );
    println!(
        "  dalek_verify_batch  {:>10.1} µs  ({:.2} µs/signature)",
        common::micros(floor),
        common::micros(floor) / n
    );
    let verdict = |r: f64| {
        if r <= TARGET {
            format!("target ≤ {TARGET:.2}: MET")
        } else {
            format!(
                "target ≤ {TARGET:.2}: MISSED by {:.0}%",
                (r / TARGET - 1.0) * 100.0
            )
        }
    };
    println!(
        "  ratio append / verify_all         = {to_batch:.3}  ({}; the target's measure)",
        verdict(to_batch)
    );
    println!(
        "  ratio append / verify_strict_each = {to_each:.3}  ({}; reference)",
        verdict(to_each)
    );
    println!(
        "  ratio append / strict_key_once    = {to_key_once:.3}  ({}; reference)",
        verdict(to_key_once)
    );
    println!(
        "  ratio append / dalek_verify_batch = {to_floor:.3}  ({}; reference, unsound)",
        verdict(to_floor)
    );
}

fn main() {
    let f = fixture();
    let mut c = common::quick();
    benches(&mut c, &f);
    ratio(&f);
    c.final_summary();
}
