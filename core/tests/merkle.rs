//! Merkle inclusion proofs (`ieschain_core::merkle`): for any list of 1..200 leaves, the
//! proof of every member verifies against the root, and a proof is refused for any other
//! leaf, a wrong index, another root, or a sibling list that is cut short or extended.

// Tests may unwrap (STYLE.md, "Gates").
#![allow(clippy::unwrap_used)]

mod support;

use ieschain_core::merkle::{root, MerkleProof};
use ieschain_core::{Domain, Hash};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use support::config;

/// Distinct leaves: leaf hashes of `n` distinct indices under a random salt.
fn leaves() -> impl Strategy<Value = Vec<Hash>> {
    (1usize..200, any::<u64>()).prop_map(|(n, salt)| {
        (0..n as u64)
            .map(|i| Hash::of(Domain::MerkleLeaf, &[&salt.to_be_bytes(), &i.to_be_bytes()]))
            .collect()
    })
}

proptest! {
    #![proptest_config(config(256))]

    /// Every member's proof verifies, and records its index and the leaf count.
    #[test]
    fn every_member_verifies(leaves in leaves()) {
        let r = root(&leaves);
        for (i, leaf) in leaves.iter().enumerate() {
            let proof = MerkleProof::build(&leaves, i).unwrap();
            prop_assert_eq!(proof.index, i as u64);
            prop_assert_eq!(proof.leaf_count, leaves.len() as u64);
            // A path is at most ceil(log2(n)) siblings long.
            prop_assert!(proof.siblings.len() <= usize::BITS as usize - (leaves.len() - 1).leading_zeros() as usize);
            prop_assert!(proof.verify(&r, leaf), "leaf {} of {}", i, leaves.len());
        }
        prop_assert!(MerkleProof::build(&leaves, leaves.len()).is_none());
    }

    /// A proof is for one leaf only: another member's leaf and a non-member fail.
    #[test]
    fn other_leaves_fail(leaves in leaves(), at in any::<Index>(), other in any::<Index>(), stranger in any::<[u8; 32]>()) {
        let r = root(&leaves);
        let i = at.index(leaves.len());
        let proof = MerkleProof::build(&leaves, i).unwrap();
        let j = other.index(leaves.len());
        if j != i {
            prop_assert!(!proof.verify(&r, &leaves[j]), "leaf {} under proof of {}", j, i);
        }
        let stranger = Hash(stranger);
        prop_assume!(!leaves.contains(&stranger));
        prop_assert!(!proof.verify(&r, &stranger));
    }

    /// The same siblings at any other index (including past the end) fail.
    #[test]
    fn wrong_index_fails(leaves in leaves(), at in any::<Index>(), wrong in any::<u64>()) {
        let r = root(&leaves);
        let i = at.index(leaves.len());
        let proof = MerkleProof::build(&leaves, i).unwrap();
        for index in [wrong, wrong % leaves.len() as u64, (i as u64 + 1) % leaves.len() as u64, i as u64 ^ 1] {
            if index == i as u64 {
                continue;
            }
            let moved = MerkleProof { index, ..proof.clone() };
            prop_assert!(!moved.verify(&r, &leaves[i]), "index {} instead of {}", index, i);
        }
    }

    /// A proof does not verify against the root of a different leaf list: one leaf changed,
    /// one leaf more, or one leaf fewer.
    #[test]
    fn different_root_fails(leaves in leaves(), at in any::<Index>(), changed in any::<Index>()) {
        let i = at.index(leaves.len());
        let proof = MerkleProof::build(&leaves, i).unwrap();
        let mut altered = leaves.clone();
        let c = changed.index(leaves.len());
        altered[c] = Hash::of(Domain::MerkleLeaf, &[b"altered", &altered[c].0]);
        let mut longer = leaves.clone();
        longer.push(Hash::of(Domain::MerkleLeaf, &[b"extra"]));
        let mut roots = vec![root(&altered), root(&longer)];
        if leaves.len() > 1 && i + 1 < leaves.len() {
            roots.push(root(&leaves[..leaves.len() - 1]));
        }
        for other in roots {
            prop_assert_ne!(other, root(&leaves));
            prop_assert!(!proof.verify(&other, &leaves[i]));
        }
        prop_assert!(!proof.verify(&Hash::ZERO, &leaves[i]));
    }

    /// Dropping any sibling, or adding one anywhere, breaks the proof.
    #[test]
    fn truncated_or_extended_siblings_fail(
        leaves in leaves(),
        at in any::<Index>(),
        cut in any::<Index>(),
        extra in vec(any::<[u8; 32]>(), 1..3),
        place in any::<Index>(),
    ) {
        let r = root(&leaves);
        let i = at.index(leaves.len());
        let proof = MerkleProof::build(&leaves, i).unwrap();
        if !proof.siblings.is_empty() {
            let mut short = proof.clone();
            short.siblings.remove(cut.index(short.siblings.len()));
            prop_assert!(!short.verify(&r, &leaves[i]));
            let mut shorter = proof.clone();
            shorter.siblings.truncate(cut.index(proof.siblings.len()));
            prop_assert!(!shorter.verify(&r, &leaves[i]));
        }
        let mut long = proof.clone();
        long.siblings.extend(extra.iter().map(|b| Hash(*b)));
        prop_assert!(!long.verify(&r, &leaves[i]));
        let mut inserted = proof.clone();
        let at = place.index(proof.siblings.len() + 1);
        inserted.siblings.insert(at, Hash(extra[0]));
        prop_assert!(!inserted.verify(&r, &leaves[i]));
    }
}

/// A single leaf is its own root with an empty proof, and the empty tree's root is zero.
#[test]
fn single_leaf_and_empty_tree() {
    let leaf = Hash::of(Domain::MerkleLeaf, &[b"only"]);
    assert_eq!(root(&[leaf]), leaf);
    let proof = MerkleProof::build(&[leaf], 0).unwrap();
    assert!(proof.siblings.is_empty());
    assert!(proof.verify(&leaf, &leaf));
    assert_eq!(root(&[]), Hash::ZERO);
    assert!(MerkleProof::build(&[], 0).is_none());
}

/// The root does not bind the leaf count, which is why `MerkleProof`'s docs require a
/// trusted `leaf_count`: the proof of the last of three leaves also verifies as "index 1 of
/// 2", and the proof of the second of two as "index 2 of 3". A verifier that took the count
/// from the prover could be told a wrong position. If this test starts failing, the root
/// has begun to commit to the count (a format change): update the docs with it.
#[test]
fn leaf_count_is_not_bound_by_the_root() {
    let leaves: Vec<Hash> = (0..3u64)
        .map(|i| Hash::of(Domain::MerkleLeaf, &[&i.to_be_bytes()]))
        .collect();
    let r = root(&leaves);
    let proof = MerkleProof::build(&leaves, 2).unwrap();
    let relabelled = MerkleProof {
        index: 1,
        leaf_count: 2,
        ..proof
    };
    assert!(relabelled.verify(&r, &leaves[2]));
    let two = &leaves[..2];
    let proof = MerkleProof::build(two, 1).unwrap();
    let relabelled = MerkleProof {
        index: 2,
        leaf_count: 3,
        ..proof
    };
    assert!(relabelled.verify(&root(two), &two[1]));
}
