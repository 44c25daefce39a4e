//! Signing, verification and hashing: the primitives every block check is made of.
//!
//! Run with:
//!
//! ```text
//! cargo bench --profile dev --bench crypto
//! ```
//!
//! - `crypto/sign`: one ed25519 signature over a 32-byte digest.
//! - `crypto/verify_strict`: one `PublicKey::verify` (ed25519 `verify_strict`).
//! - `crypto/verify_all/{64,600}`: `verify_all` over that many signatures from distinct
//!   signers; throughput is reported per signature. `verify_all` has no batch path (a
//!   batch can accept what `verify_strict` refuses, see `core::crypto::verify_all`): it is
//!   one `verify_strict` per signature.
//! - `crypto/blake3/{1KiB,1MiB}`: `Hash::of` in `derive_key` mode.

use criterion::{black_box, BenchmarkId, Criterion, Throughput};
use ieschain_core::crypto::{verify_all, Domain, Hash, Keypair};

mod common;

fn signatures(c: &mut Criterion) {
    let key = Keypair::derive(Domain::NodeKey, common::SEED, "bench-signer");
    let public = key.public();
    let digest = Hash::of(Domain::Record, &[b"bench record"]);
    let signature = key.sign(&digest);

    let mut group = c.benchmark_group("crypto");
    group.throughput(Throughput::Elements(1));
    group.bench_function("sign", |b| b.iter(|| key.sign(black_box(&digest))));
    group.bench_function("verify_strict", |b| {
        b.iter(|| public.verify(black_box(&digest), black_box(&signature)))
    });
    group.finish();

    let mut group = c.benchmark_group("crypto/verify_all");
    for n in [64usize, 600] {
        // Distinct signers, as in a relay block; a consortium block has one signer, which
        // the validate bench covers.
        let items: Vec<_> = (0..n)
            .map(|i| {
                let key = Keypair::derive(Domain::NodeKey, common::SEED, &format!("m{i}"));
                let digest = Hash::of(Domain::Record, &[&(i as u64).to_be_bytes()]);
                (key.public(), digest, key.sign(&digest))
            })
            .collect();
        assert_eq!(verify_all(&items), Ok(()));
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &items, |b, items| {
            b.iter(|| verify_all(black_box(items)))
        });
    }
    group.finish();
}

fn hashing(c: &mut Criterion) {
    let mut group = c.benchmark_group("crypto/blake3");
    for (name, len) in [("1KiB", 1usize << 10), ("1MiB", 1 << 20)] {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), &data, |b, data| {
            b.iter(|| Hash::of(Domain::Record, &[black_box(data)]))
        });
    }
    group.finish();
}

fn main() {
    let mut c = common::quick();
    signatures(&mut c);
    hashing(&mut c);
    c.final_summary();
}
