//! Signature acceptance is exactly `verify_strict`'s (SPEC §4.1, §12 D6): "batch
//! verification is only a fast path, and only where it cannot accept what `verify_strict`
//! rejects".
//!
//! The adversary here is a registered signer (a member, or a relay) who wants a signature
//! that some honest nodes accept and others refuse, to split them. It builds
//! `R' = r·B + T` with `T` a torsion point of order 2, and `s = r + H(R' ‖ A ‖ M)·a`.
//! `verify_strict` checks `R' = s·B − h·A` exactly and refuses (the two sides differ by
//! `T`). ed25519-dalek's batch equation is cofactorless with 128-bit coefficients `z_i`
//! derived from the batch itself, and `z_i·T` vanishes whenever `z_i` is even, so the batch
//! accepts about half of such signatures: whether a block validates would depend on which
//! other signatures it was batched with. `R'` is not of small order, so refusing
//! small-order `R` before batching does not catch it.

// Tests may unwrap (STYLE.md, "Gates").
#![allow(clippy::unwrap_used)]

use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::SigningKey;
use ieschain_core::crypto::{verify_all, SignatureError};
use ieschain_core::validate::{ConsortiumLane, Reject};
use ieschain_core::{
    Audience, ChainBlock, ConsortiumBlock, ConsortiumId, Domain, Hash, Keypair, PublicKey,
    RecordBody, RecordContent, Signature,
};
use sha2::{Digest, Sha512};

/// The secret seed of `Keypair::derive(Domain::NodeKey, seed, label)`.
fn secret(seed: u64, label: &str) -> [u8; 32] {
    Hash::of(Domain::NodeKey, &[&seed.to_be_bytes(), label.as_bytes()]).0
}

/// A signature by `secret` over `digest` whose `R` carries the order-2 torsion point.
/// `attempt` varies the nonce.
fn torsioned_signature(secret: &[u8; 32], digest: &Hash, attempt: u64) -> Signature {
    let key = SigningKey::from_bytes(secret);
    let a = key.to_scalar();
    let public = key.verifying_key().to_bytes();
    let r = Scalar::from_bytes_mod_order_wide(
        &Sha512::new()
            .chain_update(b"torsioned nonce")
            .chain_update(attempt.to_le_bytes())
            .chain_update(digest.0)
            .finalize()
            .into(),
    );
    // EIGHT_TORSION[4] is the point of order 2, (0, -1).
    let big_r = r * ED25519_BASEPOINT_POINT + EIGHT_TORSION[4];
    assert!(!big_r.is_small_order() && !big_r.is_torsion_free());
    let r_bytes = big_r.compress().to_bytes();
    let h = Scalar::from_bytes_mod_order_wide(
        &Sha512::new()
            .chain_update(r_bytes)
            .chain_update(public)
            .chain_update(digest.0)
            .finalize()
            .into(),
    );
    let s = r + h * a;
    let mut bytes = [0u8; 64];
    bytes[..32].copy_from_slice(&r_bytes);
    bytes[32..].copy_from_slice(s.as_bytes());
    Signature(bytes)
}

/// `verify_strict` refuses every torsioned signature, and `verify_all` must give the same
/// answer however the signature is batched. Before the fix, the batch accepted about half
/// of them (the first at attempt 1).
#[test]
fn batch_never_accepts_what_verify_strict_refuses() {
    let seed = secret(1, "torsion");
    let key = Keypair::from_seed(seed);
    let honest = Keypair::derive(Domain::NodeKey, 1, "honest");
    for attempt in 0..64u64 {
        let digest = Hash::of(Domain::Record, &[&attempt.to_be_bytes()]);
        let forged = torsioned_signature(&seed, &digest, attempt);
        assert_eq!(
            key.public().verify(&digest, &forged),
            Err(SignatureError::Invalid),
            "verify_strict must refuse attempt {attempt}"
        );
        let other = Hash::of(Domain::Record, &[b"other", &attempt.to_be_bytes()]);
        let batch = [
            (key.public(), digest, forged),
            (honest.public(), other, honest.sign(&other)),
        ];
        assert_eq!(
            verify_all(&batch),
            Err((0, SignatureError::Invalid)),
            "attempt {attempt}: the batch accepted a signature verify_strict refuses"
        );
        let reversed = [batch[1], batch[0]];
        assert_eq!(
            verify_all(&reversed),
            Err((1, SignatureError::Invalid)),
            "attempt {attempt}, reversed"
        );
    }
}

/// End to end: a member seals its consortium block with a torsioned header signature. Every
/// lane that holds the block must refuse it (before the fix, the lane accepted it for half
/// of the nonces, while `verify_strict` on the same header refused it).
#[test]
fn consortium_lane_refuses_a_torsioned_header_signature() {
    let seed = secret(1, "torsion-member");
    let key = Keypair::from_seed(seed);
    let consortium = ConsortiumId(0);
    for attempt in 0..32u64 {
        let record = RecordContent {
            author: key.address(),
            seq: 1,
            created_at: attempt,
            audience: Audience::Everyone,
            body: RecordBody::EnergySupply {
                wh: 1,
                price: 1,
                slot: attempt,
            },
        }
        .sign(&key);
        let mut block = ConsortiumBlock::seal(&key, consortium, 1, Hash::ZERO, 0, vec![record]);
        block.signature = torsioned_signature(&seed, &block.hash(), attempt);
        assert!(key
            .public()
            .verify(&block.hash(), &block.signature)
            .is_err());
        let mut lane = ConsortiumLane::new(consortium, key.address(), key.public(), 131_072);
        let err = lane.append(&block).unwrap_err();
        assert_eq!(
            err.reason,
            Reject::Signature {
                signer: key.address(),
                what: "header".into()
            },
            "attempt {attempt}"
        );
    }
}

/// Honest signatures, batched in any number, still verify; one bad one is found at its
/// index.
#[test]
fn honest_batches_verify_and_locate_the_bad_one() {
    for n in 1..12usize {
        let items: Vec<(PublicKey, Hash, Signature)> = (0..n)
            .map(|i| {
                let key = Keypair::derive(Domain::NodeKey, 9, &format!("m{i}"));
                let digest = Hash::of(Domain::Record, &[&(i as u64).to_be_bytes()]);
                (key.public(), digest, key.sign(&digest))
            })
            .collect();
        assert_eq!(verify_all(&items), Ok(()));
        let mut bad = items.clone();
        let at = n / 2;
        bad[at].1 = Hash::of(Domain::Record, &[b"changed"]);
        assert_eq!(verify_all(&bad), Err((at, SignatureError::Invalid)));
    }
    assert_eq!(verify_all(&[]), Ok(()));
}
