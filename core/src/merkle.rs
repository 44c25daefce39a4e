//! Merkle roots and inclusion proofs: of records in a block, and of consortium blocks in a
//! relay block.
//!
//! A binary tree over leaf hashes. An interior node is `H(MerkleNode, left ‖ right)`; a
//! node without a sibling is promoted unchanged to the next level (it is never paired with
//! itself, which would let two different leaf lists share a root). The root of no leaves
//! is [`Hash::ZERO`]. Leaves are hashed in [`Domain::MerkleLeaf`] by their owners
//! ([`crate::record::Record::leaf`], [`crate::block::ConsortiumBlock::leaf`]), so a leaf can
//! never be confused with an interior node.

use bincode::{Decode, Encode};

use crate::crypto::{Domain, Hash};

fn node(left: &Hash, right: &Hash) -> Hash {
    Hash::of(Domain::MerkleNode, &[&left.0, &right.0])
}

fn next_level(level: &[Hash]) -> Vec<Hash> {
    level
        .chunks(2)
        .map(|pair| match pair {
            [left, right] => node(left, right),
            [single] => *single,
            _ => unreachable!("chunks(2) yields one or two items"),
        })
        .collect()
}

/// The Merkle root of `leaves`.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Hash::ZERO,
        1 => leaves[0],
        _ => {
            let mut level = next_level(leaves);
            while level.len() > 1 {
                level = next_level(&level);
            }
            level[0]
        }
    }
}

/// A proof that a leaf sits at `index` among `leaf_count` leaves under some root.
///
/// The root does not commit to the number of leaves, so `leaf_count` must come from
/// somewhere the verifier trusts (for a relay block's included blocks, the signed
/// `header.urgency.len`), not from the prover: with another count, the same siblings can
/// verify at another index (the last of 3 leaves also verifies as index 1 of 2). With the
/// true count, no other index verifies.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct MerkleProof {
    /// The leaf's position.
    pub index: u64,
    /// How many leaves the tree has.
    pub leaf_count: u64,
    /// The siblings on the path from the leaf to the root, bottom first.
    pub siblings: Vec<Hash>,
}

impl MerkleProof {
    /// Builds the proof for the leaf at `index`, or `None` if there is no such leaf.
    pub fn build(leaves: &[Hash], index: usize) -> Option<MerkleProof> {
        if index >= leaves.len() {
            return None;
        }
        let mut siblings = Vec::new();
        let mut level = leaves.to_vec();
        let mut at = index;
        while level.len() > 1 {
            let sibling = at ^ 1;
            if sibling < level.len() {
                siblings.push(level[sibling]);
            }
            level = next_level(&level);
            at /= 2;
        }
        Some(MerkleProof {
            index: index as u64,
            leaf_count: leaves.len() as u64,
            siblings,
        })
    }

    /// The proofs of every leaf of `leaves`, in order: [`MerkleProof::build`] of each
    /// index, with the tree's levels built once (a broadcast's envelopes, issue 12).
    pub fn build_all(leaves: &[Hash]) -> Vec<MerkleProof> {
        let mut levels = vec![leaves.to_vec()];
        while levels.last().is_some_and(|level| level.len() > 1) {
            let next = next_level(&levels[levels.len() - 1]);
            levels.push(next);
        }
        (0..leaves.len())
            .map(|index| {
                let mut at = index;
                let mut siblings = Vec::with_capacity(levels.len());
                for level in &levels[..levels.len() - 1] {
                    if let Some(sibling) = level.get(at ^ 1) {
                        siblings.push(*sibling);
                    }
                    at /= 2;
                }
                MerkleProof {
                    index: index as u64,
                    leaf_count: leaves.len() as u64,
                    siblings,
                }
            })
            .collect()
    }

    /// Whether `leaf` is at this proof's index under `root`, given that the tree has
    /// `leaf_count` leaves (which the caller must check, see [`MerkleProof`]).
    pub fn verify(&self, root: &Hash, leaf: &Hash) -> bool {
        self.root_of(leaf).is_some_and(|computed| computed == *root)
    }

    /// The root that `leaf` at this proof's index leads to through its siblings, or `None`
    /// when the siblings do not fit `index` and `leaf_count` (too few or too many). The
    /// same caution as [`MerkleProof::verify`]: `leaf_count` is the prover's word.
    pub fn root_of(&self, leaf: &Hash) -> Option<Hash> {
        if self.index >= self.leaf_count {
            return None;
        }
        let mut hash = *leaf;
        let mut at = self.index;
        let mut len = self.leaf_count;
        let mut siblings = self.siblings.iter();
        while len > 1 {
            let sibling = at ^ 1;
            if sibling < len {
                let other = siblings.next()?;
                hash = if at % 2 == 0 {
                    node(&hash, other)
                } else {
                    node(other, &hash)
                };
            }
            at /= 2;
            len = len.div_ceil(2);
        }
        siblings.next().is_none().then_some(hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| Hash::of(Domain::MerkleLeaf, &[&(i as u64).to_be_bytes()]))
            .collect()
    }

    #[test]
    fn empty_and_single_roots() {
        assert_eq!(root(&[]), Hash::ZERO);
        let one = leaves(1);
        assert_eq!(root(&one), one[0]);
    }

    #[test]
    fn odd_node_is_promoted_not_duplicated() {
        // [a, b, c] and [a, b, c, c] must have different roots.
        let three = leaves(3);
        let mut four = three.clone();
        four.push(three[2]);
        assert_ne!(root(&three), root(&four));
    }

    #[test]
    fn proofs_verify_for_every_leaf_of_many_sizes() {
        for n in 1..20 {
            let l = leaves(n);
            let r = root(&l);
            for i in 0..n {
                let proof = MerkleProof::build(&l, i).unwrap();
                assert!(proof.verify(&r, &l[i]), "n={n} i={i}");
            }
            assert!(MerkleProof::build(&l, n).is_none());
        }
    }

    #[test]
    fn build_all_gives_each_leaf_its_own_proof() {
        for n in 0..40 {
            let l = leaves(n);
            let all = MerkleProof::build_all(&l);
            assert_eq!(all.len(), n);
            for (i, proof) in all.iter().enumerate() {
                assert_eq!(
                    Some(proof),
                    MerkleProof::build(&l, i).as_ref(),
                    "n={n} i={i}"
                );
                assert_eq!(proof.root_of(&l[i]), Some(root(&l)), "n={n} i={i}");
            }
        }
    }

    #[test]
    fn a_proof_with_a_sibling_too_many_or_too_few_leads_nowhere() {
        let l = leaves(5);
        let mut long = MerkleProof::build(&l, 2).unwrap();
        long.siblings.push(l[0]);
        assert_eq!(long.root_of(&l[2]), None);
        let mut short = MerkleProof::build(&l, 2).unwrap();
        short.siblings.pop();
        assert_eq!(short.root_of(&l[2]), None);
        let mut beyond = MerkleProof::build(&l, 2).unwrap();
        beyond.index = beyond.leaf_count;
        assert_eq!(beyond.root_of(&l[2]), None);
    }
}
