//! How often the expensive steps happen to one digest: signature checks, signings and
//! record digests, counted per digest on the current thread (tests only, behind the
//! `testing` feature).
//!
//! The tests that pin "check once per node" (issue 12) drive the node machines on one
//! thread with a [`Tally`] held, then ask how often each record's signature was checked,
//! how often its digest was computed and how often it was signed. A check counts when a
//! node asks for it ([`crate::crypto::PublicKey::verify`]), whether or not a
//! [`crate::crypto::VerificationMemo`] then spares the curve arithmetic: the memo is the
//! simulator's speed-up, not the protocol's. Nothing is counted on a thread that holds no
//! tally, and nothing here changes what any node does.

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::crypto::{Address, Hash};

/// A step the tally counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// A signature check over the digest.
    Check,
    /// A signature made over the digest.
    Sign,
    /// A record's digest computed ([`crate::record::RecordContent::digest`]).
    RecordDigest,
}

/// How often each step happened, by step, digest and node ([`at_node`]; `None` outside).
type Table = BTreeMap<(Step, [u8; 32], Option<Address>), u32>;

thread_local! {
    static COUNTS: RefCell<Option<Table>> = const { RefCell::new(None) };
    static NODE: RefCell<Option<Address>> = const { RefCell::new(None) };
}

/// Counts `step` over `digest`, if this thread holds a [`Tally`], for the node the thread
/// acts for ([`at_node`]).
pub(crate) fn note(step: Step, digest: &Hash) {
    let node = NODE.with(|node| *node.borrow());
    COUNTS.with(|counts| {
        if let Some(counts) = counts.borrow_mut().as_mut() {
            *counts.entry((step, digest.0, node)).or_default() += 1;
        }
    });
}

/// While the guard is held, what this thread counts is `node`'s: a test driving many node
/// machines on one thread says which one acts.
pub fn at_node(node: Address) -> NodeGuard {
    let before = NODE.with(|current| current.borrow_mut().replace(node));
    NodeGuard {
        before,
        _not_send: std::marker::PhantomData,
    }
}

/// Returned by [`at_node`]; dropping it restores the node before.
#[derive(Debug)]
#[must_use = "the node is the thread's only while the guard is held"]
pub struct NodeGuard {
    before: Option<Address>,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for NodeGuard {
    fn drop(&mut self) {
        NODE.with(|current| *current.borrow_mut() = self.before);
    }
}

/// While held, the steps on this thread are counted; [`Tally::finish`] returns the counts.
#[derive(Debug)]
#[must_use = "the tally stops counting when dropped"]
pub struct Tally {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Tally {
    /// Starts counting on this thread, from zero.
    pub fn start() -> Tally {
        COUNTS.with(|counts| *counts.borrow_mut() = Some(BTreeMap::new()));
        Tally {
            _not_send: std::marker::PhantomData,
        }
    }

    /// Stops counting and returns the counts.
    pub fn finish(self) -> Counts {
        Counts(
            COUNTS
                .with(|counts| counts.borrow_mut().take())
                .unwrap_or_default(),
        )
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        COUNTS.with(|counts| *counts.borrow_mut() = None);
    }
}

/// What a [`Tally`] counted.
#[derive(Clone, Debug, Default)]
pub struct Counts(Table);

impl Counts {
    /// How often `step` happened over `digest`, all nodes together.
    pub fn of(&self, step: Step, digest: &Hash) -> u32 {
        self.by_node(step, digest).values().sum()
    }

    /// How often `step` happened over `digest`, per node that did it ([`at_node`]; `None`
    /// for what no node was named for).
    pub fn by_node(&self, step: Step, digest: &Hash) -> BTreeMap<Option<Address>, u32> {
        self.0
            .range((step, digest.0, None)..)
            .take_while(|((s, d, _), _)| *s == step && *d == digest.0)
            .map(|((_, _, node), n)| (*node, *n))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Domain, Keypair};

    /// Counted only while held; a check counts whether it passes or not.
    #[test]
    fn counts_while_held_only() {
        let key = Keypair::derive(Domain::NodeKey, 1, "a");
        let digest = Hash::of(Domain::Record, &[b"x"]);
        let signature = key.sign(&digest);
        let tally = Tally::start();
        let _ = key.public().verify(&digest, &signature);
        let _ = key.public().verify(&Hash::ZERO, &signature);
        let _ = key.sign(&digest);
        let counts = tally.finish();
        assert_eq!(counts.of(Step::Check, &digest), 1);
        assert_eq!(counts.of(Step::Check, &Hash::ZERO), 1);
        assert_eq!(counts.of(Step::Sign, &digest), 1);
        let _ = key.public().verify(&digest, &signature);
        assert_eq!(counts.of(Step::Check, &digest), 1);
    }
}
