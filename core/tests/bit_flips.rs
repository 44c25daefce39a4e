//! Tamper evidence: flipping any single bit of a validly signed block's encoding is always
//! rejected. Either the bytes no longer decode (the codec is canonical, SPEC §12 D6), or the
//! decoded block fails validation against the holder's lane state just before the block
//! (replayed from a sample ledger as `sample_ledger.rs` does).
//!
//! A flip that decodes to a *different* block which still validates would mean some byte
//! of the encoding is covered by no hash or signature.

// Tests may unwrap (STYLE.md, "Gates").
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::OnceLock;

use ieschain_core::codec::{decode, encode};
use ieschain_core::sample::SampleFederation;
use ieschain_core::{AnyBlock, ConsortiumBlock, PrivateBlock, RelayBlock};
use proptest::prelude::*;
use proptest::sample::Index;
use support::{config, one_copy_per_chain, replay_positioned, Positioned};

/// One copy of every chain of a two-round, four-party ledger with three members each:
/// private, consortium and relay blocks, an initial election and a join.
fn targets() -> &'static [Positioned] {
    static TARGETS: OnceLock<Vec<Positioned>> = OnceLock::new();
    TARGETS.get_or_init(|| {
        let federation = SampleFederation::four_party(3, 3);
        let ledger = federation.ledger(2);
        one_copy_per_chain(replay_positioned(&federation, &ledger))
    })
}

/// The block's encoding as its own type (what a lane stores and sends).
fn own_encoding(block: &AnyBlock) -> Vec<u8> {
    match block {
        AnyBlock::Private(b) => encode(b),
        AnyBlock::Consortium(b) => encode(b),
        AnyBlock::Relay(b) => encode(b),
    }
}

/// Decodes `bytes` as the type of `like`.
fn decode_like(like: &AnyBlock, bytes: &[u8]) -> Option<AnyBlock> {
    match like {
        AnyBlock::Private(_) => decode::<PrivateBlock>(bytes).ok().map(AnyBlock::Private),
        AnyBlock::Consortium(_) => decode::<ConsortiumBlock>(bytes)
            .ok()
            .map(AnyBlock::Consortium),
        AnyBlock::Relay(_) => decode::<RelayBlock>(bytes).ok().map(AnyBlock::Relay),
    }
}

/// What became of one flipped bit.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// The bytes no longer decode.
    Undecodable,
    /// They decode, and validation refuses the block.
    Rejected,
    /// They decode to a block that validates: a hole in the tamper evidence.
    Accepted(Box<AnyBlock>),
}

/// Flips bit `bit` of `bytes` (the encoding of `target.block`, as its own type when
/// `as_any` is false, as an `AnyBlock` otherwise), then decodes and validates.
fn flip(target: &Positioned, bytes: &[u8], bit: usize, as_any: bool) -> Outcome {
    let mut flipped = bytes.to_vec();
    flipped[bit / 8] ^= 1 << (bit % 8);
    let decoded = if as_any {
        decode::<AnyBlock>(&flipped).ok()
    } else {
        decode_like(&target.block, &flipped)
    };
    let Some(block) = decoded else {
        return Outcome::Undecodable;
    };
    assert_ne!(
        block, target.block,
        "a flipped bit cannot give the same value"
    );
    let mut lane = target.before.clone();
    let mut directory = target.directory.clone();
    match lane.append(&block, &mut directory) {
        Ok(()) => Outcome::Accepted(Box::new(block)),
        Err(_) => {
            assert_eq!(
                lane.head(),
                target.before.head(),
                "a rejected block must leave the head"
            );
            Outcome::Rejected
        }
    }
}

/// Sanity: the unflipped blocks validate against their states, so a rejection below is
/// caused by the flip.
#[test]
fn unflipped_targets_validate() {
    let targets = targets();
    assert!(targets.len() > 40, "{} targets", targets.len());
    for kind in 0..3 {
        assert!(targets.iter().any(|t| matches!(
            (&t.block, kind),
            (AnyBlock::Private(_), 0) | (AnyBlock::Consortium(_), 1) | (AnyBlock::Relay(_), 2)
        )));
    }
    for target in targets {
        let mut lane = target.before.clone();
        let mut directory = target.directory.clone();
        lane.append(&target.block, &mut directory).unwrap();
        let bytes = own_encoding(&target.block);
        assert_eq!(
            decode_like(&target.block, &bytes),
            Some(target.block.clone())
        );
    }
}

proptest! {
    #![proptest_config(config(16384))]

    /// Any bit of any block of the ledger, flipped, in the block's own encoding or in its
    /// `AnyBlock` encoding: never a valid block.
    #[test]
    fn a_flipped_bit_is_always_rejected(target in any::<Index>(), bit in any::<Index>(), as_any in any::<bool>()) {
        let target = target.get(targets());
        let bytes = if as_any { encode(&target.block) } else { own_encoding(&target.block) };
        let bit = bit.index(bytes.len() * 8);
        let outcome = flip(target, &bytes, bit, as_any);
        prop_assert!(
            !matches!(outcome, Outcome::Accepted(_)),
            "bit {} (byte {}) of {} height {} held by {}: {:?}",
            bit, bit / 8, target.block.chain(), target.block.height(), target.holder, outcome
        );
    }
}

/// Exhaustively, every bit of the first block of each kind that has records (for the relay
/// lane: the block with the initial election and included consortium blocks, and the next
/// one with a join): never a valid block.
#[test]
fn every_bit_of_one_block_of_each_kind_is_rejected() {
    let targets = targets();
    let mut chosen: Vec<&Positioned> = Vec::new();
    for wanted in 0..3 {
        let first = targets.iter().find(|t| match (&t.block, wanted) {
            (AnyBlock::Private(b), 0) => !b.records.is_empty(),
            (AnyBlock::Consortium(b), 1) => b.records.len() > 1,
            (AnyBlock::Relay(b), 2) => !b.blocks.is_empty() && !b.records.is_empty(),
            _ => false,
        });
        chosen.push(first.unwrap());
    }
    chosen.extend(
        targets.iter().find(
            |t| matches!(&t.block, AnyBlock::Relay(b) if !b.header.registry.added.is_empty()),
        ),
    );
    assert_eq!(chosen.len(), 4);
    let mut undecodable = 0;
    let mut rejected = 0;
    for target in chosen {
        let bytes = own_encoding(&target.block);
        for bit in 0..bytes.len() * 8 {
            match flip(target, &bytes, bit, false) {
                Outcome::Undecodable => undecodable += 1,
                Outcome::Rejected => rejected += 1,
                accepted => panic!(
                    "bit {bit} (byte {}) of {} height {}: {accepted:?}",
                    bit / 8,
                    target.block.chain(),
                    target.block.height()
                ),
            }
        }
    }
    // Both ways of refusing occur: the codec refuses some flips, validation the rest.
    assert!(undecodable > 0 && rejected > 0, "{undecodable} {rejected}");
}

/// Exhaustively, every bit of every block of the ledger, in both encodings. About ten
/// seconds, so it is left to explicit runs:
/// `cargo test -p ieschain-core --test bit_flips -- --ignored`.
#[test]
#[ignore = "slow: every bit of ~60 blocks; run with --ignored"]
fn every_bit_of_every_block_is_rejected() {
    let mut flips = 0usize;
    for target in targets() {
        for as_any in [false, true] {
            let bytes = if as_any {
                encode(&target.block)
            } else {
                own_encoding(&target.block)
            };
            for bit in 0..bytes.len() * 8 {
                let outcome = flip(target, &bytes, bit, as_any);
                assert!(
                    !matches!(outcome, Outcome::Accepted(_)),
                    "bit {bit} of {} height {} (as_any {as_any}): {outcome:?}",
                    target.block.chain(),
                    target.block.height()
                );
                flips += 1;
            }
        }
    }
    assert!(flips > 100_000, "{flips}");
}
