//! The conformance suite every [`ChainStore`] must pass (after openraft's
//! `testing/log/suite.rs`): the RocksDB store and the in-memory store run exactly these
//! cases, and so can any wrapper (a fault-injecting store, say).
//!
//! Run it with [`test_all`], or generate one `#[test]` per case with
//! [`conformance_tests!`](crate::conformance_tests):
//!
//! ```ignore
//! use ieschain_core::genesis::Genesis;
//! use ieschain_storage::{MemoryStore, StoreError};
//!
//! ieschain_storage::conformance_tests!(|genesis: &Genesis| {
//!     Ok::<_, StoreError>(((), MemoryStore::new(genesis.clone())))
//! });
//! ```
//!
//! Each case builds fresh stores through a [`StoreBuilder`], returns store errors as `Err`
//! and panics, naming what it expected, when the store misbehaves.

use std::collections::BTreeSet;

use ieschain_core::codec;
use ieschain_core::genesis::Genesis;
use ieschain_core::node::StoreWrite;
use ieschain_core::sample::{newcomer_key, SampleFederation, SampleMember, SAMPLE_EPOCH_MS};
use ieschain_core::validate::Head;
use ieschain_core::{Address, AnyBlock, ChainId, Hash, Keypair, PrivateBlock};

use crate::error::StoreError;
use crate::store::ChainStore;
use crate::verify::{verify, VerifyError};

/// Makes an empty store for a genesis record, with a guard that must outlive it (a
/// temporary directory, say). Implemented for every
/// `Fn(&Genesis) -> Result<(Guard, Store), StoreError>`.
pub trait StoreBuilder {
    /// The store.
    type Store: ChainStore;
    /// What must live as long as the store.
    type Guard;
    /// A new, empty store.
    fn build(&self, genesis: &Genesis) -> Result<(Self::Guard, Self::Store), StoreError>;
}

impl<F, G, S> StoreBuilder for F
where
    F: Fn(&Genesis) -> Result<(G, S), StoreError>,
    S: ChainStore,
{
    type Store = S;
    type Guard = G;
    fn build(&self, genesis: &Genesis) -> Result<(G, S), StoreError> {
        self(genesis)
    }
}

/// Runs every case.
pub fn test_all<B: StoreBuilder>(builder: &B) -> Result<(), StoreError> {
    empty_store(builder)?;
    append_and_read(builder)?;
    every_chain_kind(builder)?;
    not_next_wrong_height(builder)?;
    not_next_wrong_prev(builder)?;
    append_many_is_atomic(builder)?;
    append_many_in_order(builder)?;
    chains_listing(builder)?;
    negotiations(builder)?;
    negotiation_expiry(builder)?;
    overwrite_unchecked_keeps_head(builder)?;
    holder_isolation(builder)?;
    concurrent_appends_never_fork(builder)?;
    holders_write_side_by_side(builder)?;
    sample_ledger_round_trips(builder)?;
    verify_accepts_sample_ledger(builder)?;
    verify_names_tampered_blocks(builder)?;
    verify_learns_joined_members(builder)?;
    Ok(())
}

/// Generates one `#[test]` per case of [`crate::suite`] for the store made by `$builder`,
/// an expression implementing [`StoreBuilder`].
#[macro_export]
macro_rules! conformance_tests {
    ($builder:expr) => {
        $crate::conformance_tests!(@cases $builder;
            empty_store,
            append_and_read,
            every_chain_kind,
            not_next_wrong_height,
            not_next_wrong_prev,
            append_many_is_atomic,
            append_many_in_order,
            chains_listing,
            negotiations,
            negotiation_expiry,
            overwrite_unchecked_keeps_head,
            holder_isolation,
            concurrent_appends_never_fork,
            holders_write_side_by_side,
            sample_ledger_round_trips,
            verify_accepts_sample_ledger,
            verify_names_tampered_blocks,
            verify_learns_joined_members,
        );
    };
    (@cases $builder:expr; $($case:ident),* $(,)?) => {
        $(
            #[doc = concat!("Conformance case [`ieschain_storage::suite::", stringify!($case), "`].")]
            #[test]
            fn $case() -> Result<(), $crate::StoreError> {
                $crate::suite::$case(&$builder)
            }
        )*
    };
}

const SEED: u64 = 0x5707_A6E5;

fn small_federation() -> SampleFederation {
    SampleFederation::four_party(SEED, 2)
}

/// `count` linked private blocks of `member`, starting at `time`, with no records.
fn private_blocks(member: &SampleMember, count: u64, time: u64) -> Vec<AnyBlock> {
    let mut prev = Hash::ZERO;
    (1..=count)
        .map(|height| {
            let block = PrivateBlock::seal(&member.key, height, prev, time + height, Vec::new());
            prev = AnyBlock::Private(block.clone()).hash();
            AnyBlock::Private(block)
        })
        .collect()
}

fn head_of(block: &AnyBlock) -> Head {
    Head {
        height: block.height(),
        hash: block.hash(),
    }
}

fn members(federation: &SampleFederation) -> (&SampleMember, &SampleMember) {
    (&federation.members[0], &federation.members[1])
}

/// Asserts that `result` is `NotNext` against `head` for a block at `height`.
fn expect_not_next<T: std::fmt::Debug>(result: Result<T, StoreError>, head: Head, height: u64) {
    match result {
        Err(StoreError::NotNext(not_next)) => {
            assert_eq!(not_next.head, head, "NotNext must report the current head");
            assert_eq!(
                not_next.height, height,
                "NotNext must report the block's height"
            );
        }
        other => panic!("expected NotNext at height {height} over {head:?}, got {other:?}"),
    }
}

/// A new store holds the genesis record it was built with, and nothing else.
pub fn empty_store<B: StoreBuilder>(builder: &B) -> Result<(), StoreError> {
    let federation = small_federation();
    let (_guard, store) = builder.build(&federation.genesis)?;
    let (a, _) = members(&federation);
    let chain = ChainId::Private(a.entry.address);
    assert_eq!(store.genesis(), &federation.genesis);
    assert!(store.chains()?.is_empty());
    assert!(store.chains_of(a.entry.address)?.is_empty());
    assert_eq!(store.head(a.entry.address, chain)?, None);
    assert!(store.block(a.entry.address, chain, 1)?.is_none());
    assert!(store.range(a.entry.address, chain, 1, 10)?.is_empty());
    assert!(store.raw_range(a.entry.address, chain, 0, 10)?.is_empty());
    assert_eq!(store.negotiation(a.entry.address, Hash::ZERO)?, None);
    assert_eq!(store.expire_negotiations(u64::MAX)?, 0);
    store.flush()?;
    Ok(())
}

/// Appended blocks come back from head, block, range, raw_range and locate.
pub fn append_and_read<B: StoreBuilder>(builder: &B) -> Result<(), StoreError> {
    let federation = small_federation();
    let (_guard, store) = builder.build(&federation.genesis)?;
    let (a, _) = members(&federation);
    let holder = a.entry.address;
    let chain = ChainId::Private(holder);
    let blocks = private_blocks(a, 5, SAMPLE_EPOCH_MS);
    for block in &blocks {
        let head = store.append(holder, block)?;
        assert_eq!(head, head_of(block), "append returns the new head");
        assert_eq!(store.head(holder, chain)?, Some(head));
    }
    for block in &blocks {
        assert_eq!(
            store.block(holder, chain, block.height())?.as_ref(),
            Some(block)
        );
        assert_eq!(
            store.locate(holder, block.hash())?,
            Some((chain, block.height()))
        );
    }
    assert!(store.block(holder, chain, 6)?.is_none());
    assert!(store.block(holder, chain, 0)?.is_none());
    assert_eq!(store.range(holder, chain, 1, 100)?, blocks);
    assert_eq!(
        store.range(holder, chain, 0, 100)?,
        blocks,
        "from 0 starts at 1"
    );
    assert_eq!(store.range(holder, chain, 2, 2)?, blocks[1..3].to_vec());
    assert!(store.range(holder, chain, 6, 10)?.is_empty());
    assert!(store.range(holder, chain, 1, 0)?.is_empty());
    let raw = store.raw_range(holder, chain, 4, 10)?;
    let expected: Vec<(u64, Vec<u8>)> = blocks[3..]
        .iter()
        .map(|b| (b.height(), codec::encode(b)))
        .collect();
    assert_eq!(raw, expected, "raw_range returns the codec's bytes");
    assert_eq!(store.locate(holder, Hash([9; 32]))?, None);
    store.flush()?;
    assert_eq!(store.range(holder, chain, 1, 100)?, blocks);
    Ok(())
}

/// Relay, consortium and private blocks each go to their own chain and come back.
pub fn every_chain_kind<B: StoreBuilder>(builder: &B) -> Result<(), StoreError> {
    let federation = small_federation();
    let ledger = federation.ledger(2);
    let (_guard, store) = builder.build(&federation.genesis)?;
    let mut firsts: Vec<&(Address, AnyBlock)> = Vec::new();
    for kind in 0..3 {
        let found = ledger.appends.iter().find(|(_, b)| {
            b.height() == 1
                && matches!(
                    (kind, b),
                    (0, AnyBlock::Relay(_))
                        | (1, AnyBlock::Consortium(_))
                        | (2, AnyBlock::Private(_))
                )
        });
        firsts.push(found.unwrap_or_else(|| panic!("the sample ledger has blocks of kind {kind}")));
    }
    for (holder, block) in &firsts {
        store.append(*holder, block)?;
    }
    for (holder, block) in &firsts {
        let chain = block.chain();
        assert_eq!(store.head(*holder, chain)?, Some(head_of(block)));
        assert_eq!(store.range(*holder, chain, 1, 10)?, vec![block.clone()]);
    }
    Ok(())
}

/// A block at the wrong height is refused with `NotNext`, and nothing changes.
pub fn not_next_wrong_height<B: StoreBuilder>(builder: &B) -> Result<(), StoreError> {
    let federation = small_federation();
    let (_guard, store) = builder.build(&federation.genesis)?;
    let (a, _) = members(&federation);
    let holder = a.entry.address;
    let chain = ChainId::Private(holder);
    let blocks = private_blocks(a, 3, SAMPLE_EPOCH_MS);
    expect_not_next(store.append(holder, &blocks[1]), Head::default(), 2);
    assert!(
        store.chains()?.is_empty(),
        "a refused first block writes nothing"
    );
    store.append(holder, &blocks[0])?;
    let before = store.chains()?;
    expect_not_next(store.append(holder, &blocks[2]), head_of(&blocks[0]), 3);
    expect_not_next(store.append(holder, &blocks[0]), head_of(&blocks[0]), 1);
    assert_eq!(store.head(holder, chain)?, Some(head_of(&blocks[0])));
    assert_eq!(store.chains()?, before);
    assert!(store.block(holder, chain, 2)?.is_none());
    assert!(store.block(holder, chain, 3)?.is_none());
    assert_eq!(store.locate(holder, blocks[2].hash())?, None);
    assert_eq!(store.range(holder, chain, 1, 10)?, blocks[..1].to_vec());
    Ok(())
}

/// A block at the right height whose `prev` is not the head's hash is refused with
/// `NotNext`, and nothing changes.
pub fn not_next_wrong_prev<B: StoreBuilder>(builder: &B) -> Result<(), StoreError> {
    let federation = small_federation();
    let (_guard, store) = builder.build(&federation.genesis)?;
    let (a, _) = members(&federation);
    let holder = a.entry.address;
    let chain = ChainId::Private(holder);
    let not_zero = AnyBlock::Private(PrivateBlock::seal(&a.key, 1, Hash([1; 32]), 5, Vec::new()));
    expect_not_next(store.append(holder, &not_zero), Head::default(), 1);
    let blocks = private_blocks(a, 2, SAMPLE_EPOCH_MS);
    store.append(holder, &blocks[0])?;
    let forked = AnyBlock::Private(PrivateBlock::seal(&a.key, 2, Hash([7; 32]), 9, Vec::new()));
    expect_not_next(store.append(holder, &forked), head_of(&blocks[0]), 2);
    assert_eq!(store.head(holder, chain)?, Some(head_of(&blocks[0])));
    assert!(store.block(holder, chain, 2)?.is_none());
    assert_eq!(store.locate(holder, forked.hash())?, None);
    store.append(holder, &blocks[1])?;
    assert_eq!(store.head(holder, chain)?, Some(head_of(&blocks[1])));
    Ok(())
}

/// A batch whose third block is not the next one writes nothing at all: not the first two
/// blocks, not their heads, not their index entries.
pub fn append_many_is_atomic<B: StoreBuilder>(builder: &B) -> Result<(), StoreError> {
    let federation = small_federation();
    let (_guard, store) = builder.build(&federation.genesis)?;
    let (a, b) = members(&federation);
    let a_blocks = private_blocks(a, 3, SAMPLE_EPOCH_MS);
    let b_blocks = private_blocks(b, 1, SAMPLE_EPOCH_MS);
    let (ha, hb) = (a.entry.address, b.entry.address);
    let batch = vec![
        (ha, a_blocks[0].clone()),
        (hb, b_blocks[0].clone()),
        (ha, a_blocks[2].clone()),
    ];
    expect_not_next(store.append_many(&batch), head_of(&a_blocks[0]), 3);
    assert!(store.chains()?.is_empty(), "a failed batch writes nothing");
    assert_eq!(store.head(ha, ChainId::Private(ha))?, None);
    assert_eq!(store.head(hb, ChainId::Private(hb))?, None);
    assert!(store.block(ha, ChainId::Private(ha), 1)?.is_none());
    assert_eq!(store.locate(ha, a_blocks[0].hash())?, None);
    assert_eq!(store.locate(hb, b_blocks[0].hash())?, None);
    store.append_many(&[])?;
    assert!(store.chains()?.is_empty());
    Ok(())
}

/// A batch may hold several blocks of one chain, in order, interleaved with others.
pub fn append_many_in_order<B: StoreBuilder>(builder: &B) -> Result<(), StoreError> {
    let federation = small_federation();
    let (_guard, store) = builder.build(&federation.genesis)?;
    let (a, b) = members(&federation);
    let a_blocks = private_blocks(a, 4, SAMPLE_EPOCH_MS);
    let b_blocks = private_blocks(b, 2, SAMPLE_EPOCH_MS);
    let (ha, hb) = (a.entry.address, b.entry.address);
    store.append_many(&[
        (ha, a_blocks[0].clone()),
        (hb, b_blocks[0].clone()),
        (ha, a_blocks[1].clone()),
        (ha, a_blocks[2].clone()),
        (hb, b_blocks[1].clone()),
    ])?;
    assert_eq!(
        store.head(ha, ChainId::Private(ha))?,
        Some(head_of(&a_blocks[2]))
    );
    assert_eq!(
        store.head(hb, ChainId::Private(hb))?,
        Some(head_of(&b_blocks[1]))
    );
    assert_eq!(
        store.range(ha, ChainId::Private(ha), 1, 10)?,
        a_blocks[..3].to_vec()
    );
    // The same block twice in one batch is not next the second time.
    let twice = [(ha, a_blocks[3].clone()), (ha, a_blocks[3].clone())];
    expect_not_next(store.append_many(&twice), head_of(&a_blocks[3]), 4);
    assert_eq!(
        store.head(ha, ChainId::Private(ha))?,
        Some(head_of(&a_blocks[2]))
    );
    store.append(ha, &a_blocks[3])?;
    Ok(())
}

/// `chains` lists every (holder, chain, head), sorted by holder then `ChainId`'s order;
/// `chains_of` lists one holder's.
pub fn chains_listing<B: StoreBuilder>(builder: &B) -> Result<(), StoreError> {
    let federation = small_federation();
    let ledger = federation.ledger(2);
    let (_guard, store) = builder.build(&federation.genesis)?;
    store.append_many(&ledger.appends)?;
    let mut expected: Vec<(Address, ChainId, Head)> = Vec::new();
    for (holder, block) in &ledger.appends {
        let head = head_of(block);
        match expected
            .iter_mut()
            .find(|(h, c, _)| h == holder && *c == block.chain())
        {
            Some(entry) => entry.2 = head,
            None => expected.push((*holder, block.chain(), head)),
        }
    }
    expected.sort_by_key(|(holder, chain, _)| (*holder, *chain));
    let listed = store.chains()?;
    assert_eq!(listed, expected);
    let kinds: BTreeSet<_> = listed.iter().map(|(_, c, _)| c.kind()).collect();
    assert_eq!(kinds.len(), 3, "the ledger holds every chain kind");
    let holder = listed[0].0;
    let own: Vec<(ChainId, Head)> = expected
        .iter()
        .filter(|(h, _, _)| *h == holder)
        .map(|(_, c, head)| (*c, *head))
        .collect();
    assert_eq!(store.chains_of(holder)?, own);
    Ok(())
}

/// Negotiation state is stored, replaced, read and removed per holder.
pub fn negotiations<B: StoreBuilder>(builder: &B) -> Result<(), StoreError> {
    let federation = small_federation();
    let (_guard, store) = builder.build(&federation.genesis)?;
    let (a, b) = members(&federation);
    let (ha, hb) = (a.entry.address, b.entry.address);
    let id = Hash([3; 32]);
    store.put_negotiation(ha, id, 1_000, b"offer")?;
    assert_eq!(store.negotiation(ha, id)?, Some(b"offer".to_vec()));
    assert_eq!(
        store.negotiation(hb, id)?,
        None,
        "negotiations are per holder"
    );
    assert_eq!(store.negotiation(ha, Hash([4; 32]))?, None);
    store.put_negotiation(ha, id, 2_000, b"offer and bid")?;
    assert_eq!(store.negotiation(ha, id)?, Some(b"offer and bid".to_vec()));
    store.put_negotiation(hb, id, 2_000, b"")?;
    assert_eq!(
        store.negotiation(hb, id)?,
        Some(Vec::new()),
        "an empty payload is kept"
    );
    assert!(store.remove_negotiation(ha, id)?);
    assert!(
        !store.remove_negotiation(ha, id)?,
        "a second removal finds nothing"
    );
    assert_eq!(store.negotiation(ha, id)?, None);
    assert_eq!(
        store.negotiation(hb, id)?,
        Some(Vec::new()),
        "the other holder's stays"
    );
    Ok(())
}

/// `expire_negotiations(now)` removes exactly those whose expiry is `<= now`.
pub fn negotiation_expiry<B: StoreBuilder>(builder: &B) -> Result<(), StoreError> {
    let federation = small_federation();
    let (_guard, store) = builder.build(&federation.genesis)?;
    let (a, b) = members(&federation);
    let (ha, hb) = (a.entry.address, b.entry.address);
    store.put_negotiation(ha, Hash([1; 32]), 100, b"a")?;
    store.put_negotiation(hb, Hash([2; 32]), 200, b"b")?;
    store.put_negotiation(ha, Hash([3; 32]), 200, b"c")?;
    store.put_negotiation(hb, Hash([4; 32]), 300, b"d")?;
    assert_eq!(store.expire_negotiations(99)?, 0);
    assert_eq!(store.negotiation(ha, Hash([1; 32]))?, Some(b"a".to_vec()));
    assert_eq!(
        store.expire_negotiations(200)?,
        3,
        "expiry at exactly now expires"
    );
    assert_eq!(store.negotiation(ha, Hash([1; 32]))?, None);
    assert_eq!(store.negotiation(hb, Hash([2; 32]))?, None);
    assert_eq!(store.negotiation(ha, Hash([3; 32]))?, None);
    assert_eq!(store.negotiation(hb, Hash([4; 32]))?, Some(b"d".to_vec()));
    assert_eq!(store.expire_negotiations(200)?, 0);
    assert_eq!(store.expire_negotiations(u64::MAX)?, 1);
    assert_eq!(store.negotiation(hb, Hash([4; 32]))?, None);
    Ok(())
}

/// `overwrite_unchecked` changes a block's bytes and nothing else; undecodable bytes are a
/// `Corrupt` error naming the block read.
pub fn overwrite_unchecked_keeps_head<B: StoreBuilder>(builder: &B) -> Result<(), StoreError> {
    let federation = small_federation();
    let (_guard, store) = builder.build(&federation.genesis)?;
    let (a, _) = members(&federation);
    let holder = a.entry.address;
    let chain = ChainId::Private(holder);
    let blocks = private_blocks(a, 3, SAMPLE_EPOCH_MS);
    store.append_many(
        &blocks
            .iter()
            .map(|b| (holder, b.clone()))
            .collect::<Vec<_>>(),
    )?;
    let head = store.head(holder, chain)?;

    store.overwrite_unchecked(holder, chain, 2, b"\xff\xfe garbage")?;
    assert_eq!(store.head(holder, chain)?, head, "the head is untouched");
    assert_eq!(store.locate(holder, blocks[1].hash())?, Some((chain, 2)));
    assert_eq!(
        store.raw_range(holder, chain, 2, 1)?,
        vec![(2, b"\xff\xfe garbage".to_vec())]
    );
    for result in [
        store.block(holder, chain, 2).map(|_| ()),
        store.range(holder, chain, 1, 10).map(|_| ()),
    ] {
        match result {
            Err(err @ StoreError::Corrupt { .. }) => {
                let text = err.to_string();
                assert!(text.contains("height 2"), "names the height: {text}");
                assert!(text.contains(&chain.to_string()), "names the chain: {text}");
                assert!(text.contains(&holder.short()), "names the holder: {text}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
    assert_eq!(store.block(holder, chain, 1)?.as_ref(), Some(&blocks[0]));

    // A valid encoding of another block is stored as given.
    store.overwrite_unchecked(holder, chain, 2, &codec::encode(&blocks[0]))?;
    assert_eq!(store.block(holder, chain, 2)?.as_ref(), Some(&blocks[0]));
    assert_eq!(store.head(holder, chain)?, head);
    // Appending still goes by the head, not by what was overwritten.
    let next = private_blocks(a, 4, SAMPLE_EPOCH_MS);
    store.append(holder, &next[3])?;
    Ok(())
}

/// Holder A's copy of a chain is invisible under holder B, and B keeps its own copy of the
/// same chain independently.
pub fn holder_isolation<B: StoreBuilder>(builder: &B) -> Result<(), StoreError> {
    let federation = small_federation();
    let (_guard, store) = builder.build(&federation.genesis)?;
    let (a, b) = members(&federation);
    let (ha, hb) = (a.entry.address, b.entry.address);
    let chain = ChainId::Private(ha);
    let blocks = private_blocks(a, 3, SAMPLE_EPOCH_MS);
    for block in &blocks {
        store.append(ha, block)?;
    }
    assert_eq!(store.head(hb, chain)?, None);
    assert!(store.block(hb, chain, 1)?.is_none());
    assert!(store.range(hb, chain, 1, 10)?.is_empty());
    assert!(store.raw_range(hb, chain, 1, 10)?.is_empty());
    assert!(store.chains_of(hb)?.is_empty());
    assert_eq!(store.locate(hb, blocks[0].hash())?, None);
    // B's copy starts at height 1 whatever A holds.
    expect_not_next(store.append(hb, &blocks[1]), Head::default(), 2);
    store.append(hb, &blocks[0])?;
    assert_eq!(store.head(hb, chain)?, Some(head_of(&blocks[0])));
    assert_eq!(store.head(ha, chain)?, Some(head_of(&blocks[2])));
    store.overwrite_unchecked(hb, chain, 1, b"B's copy only")?;
    assert_eq!(store.block(ha, chain, 1)?.as_ref(), Some(&blocks[0]));
    assert_eq!(store.chains()?.len(), 2);
    Ok(())
}

/// Threads racing to extend one chain never fork it: each height is taken once and the
/// chain stays linked.
pub fn concurrent_appends_never_fork<B: StoreBuilder>(builder: &B) -> Result<(), StoreError> {
    const TARGET: u64 = 40;
    let federation = small_federation();
    let (_guard, store) = builder.build(&federation.genesis)?;
    let (a, _) = members(&federation);
    let holder = a.entry.address;
    let chain = ChainId::Private(holder);
    let store = &store;
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4u64)
            .map(|worker| {
                scope.spawn(move || -> Result<(), StoreError> {
                    loop {
                        let head = store.head(holder, chain)?.unwrap_or_default();
                        if head.height >= TARGET {
                            return Ok(());
                        }
                        // Each worker's block differs in time, so racing blocks differ.
                        let block = AnyBlock::Private(PrivateBlock::seal(
                            &a.key,
                            head.height + 1,
                            head.hash,
                            head.height * 10 + worker,
                            Vec::new(),
                        ));
                        match store.append(holder, &block) {
                            Ok(_) => {}
                            Err(StoreError::NotNext { .. }) => {}
                            Err(other) => return Err(other),
                        }
                    }
                })
            })
            .collect();
        workers.into_iter().try_for_each(|w| match w.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        })
    })?;
    let blocks = store.range(holder, chain, 1, 100)?;
    assert_eq!(blocks.len() as u64, TARGET);
    let mut prev = Hash::ZERO;
    for (i, block) in blocks.iter().enumerate() {
        assert_eq!(block.height(), i as u64 + 1);
        assert_eq!(block.prev(), prev, "height {} is linked", block.height());
        prev = block.hash();
    }
    assert_eq!(store.head(holder, chain)?.map(|h| h.hash), Some(prev));
    Ok(())
}

/// Holders on threads of their own each extend their copy of one chain while another
/// thread sweeps negotiations across every holder: every copy ends whole and linked, and
/// no lock order deadlocks (the store's write locks are striped by holder).
pub fn holders_write_side_by_side<B: StoreBuilder>(builder: &B) -> Result<(), StoreError> {
    const HEIGHT: u64 = 25;
    let federation = small_federation();
    let (_guard, store) = builder.build(&federation.genesis)?;
    let (a, _) = members(&federation);
    let chain = ChainId::Private(a.entry.address);
    let mut blocks = Vec::new();
    let mut prev = Hash::ZERO;
    for height in 1..=HEIGHT {
        let block = AnyBlock::Private(PrivateBlock::seal(&a.key, height, prev, height, Vec::new()));
        prev = block.hash();
        blocks.push(block);
    }
    // Holders whose first bytes differ: each falls in a stripe of its own, and two share.
    let holders: Vec<Address> = [1u8, 2, 3, 17].map(|b| Address([b; 20])).to_vec();
    let (store, blocks) = (&store, &blocks);
    std::thread::scope(|scope| {
        let sweeper = scope.spawn(move || -> Result<(), StoreError> {
            for round in 0..50 {
                store.expire_negotiations(round)?;
            }
            Ok(())
        });
        let writers: Vec<_> = holders
            .iter()
            .map(|holder| {
                scope.spawn(move || -> Result<(), StoreError> {
                    for (i, block) in blocks.iter().enumerate() {
                        if i % 2 == 0 {
                            store.append(*holder, block)?;
                        } else {
                            store.write(*holder, &[StoreWrite::Block(block.clone())])?;
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        std::iter::once(sweeper)
            .chain(writers)
            .try_for_each(|w| match w.join() {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            })
    })?;
    for holder in &holders {
        assert_eq!(
            &store.range(*holder, chain, 1, 100)?,
            blocks,
            "{holder}'s copy"
        );
        assert_eq!(store.head(*holder, chain)?.map(|h| h.hash), Some(prev));
    }
    Ok(())
}

/// The four-party sample ledger, appended block by block, reads back exactly.
pub fn sample_ledger_round_trips<B: StoreBuilder>(builder: &B) -> Result<(), StoreError> {
    let federation = SampleFederation::four_party(SEED, 4);
    let ledger = federation.ledger(6);
    let (_guard, store) = builder.build(&federation.genesis)?;
    for (holder, block) in &ledger.appends {
        store.append(*holder, block)?;
    }
    let mut count = 0;
    for (holder, chain, head) in store.chains()? {
        let blocks = store.range(holder, chain, 1, usize::MAX)?;
        let expected: Vec<&AnyBlock> = ledger
            .appends
            .iter()
            .filter(|(h, b)| *h == holder && b.chain() == chain)
            .map(|(_, b)| b)
            .collect();
        assert_eq!(blocks.iter().collect::<Vec<_>>(), expected, "{chain}");
        assert_eq!(blocks.last().map(head_of), Some(head));
        count += blocks.len();
    }
    assert_eq!(count, ledger.appends.len());
    Ok(())
}

/// A store loaded with a sample ledger. Fields drop in order: the store before its guard.
struct Loaded<B: StoreBuilder> {
    federation: SampleFederation,
    appends: Vec<(Address, AnyBlock)>,
    store: B::Store,
    _guard: B::Guard,
}

/// Loads the four-party sample ledger in group commits of 64.
fn load_sample<B: StoreBuilder>(builder: &B) -> Result<Loaded<B>, StoreError> {
    load_sample_seeded(builder, SEED)
}

/// Loads the four-party sample ledger of `seed` in group commits of 64.
fn load_sample_seeded<B: StoreBuilder>(builder: &B, seed: u64) -> Result<Loaded<B>, StoreError> {
    let federation = SampleFederation::four_party(seed, 4);
    let ledger = federation.ledger(6);
    let (guard, store) = builder.build(&federation.genesis)?;
    for batch in ledger.appends.chunks(64) {
        store.append_many(batch)?;
    }
    Ok(Loaded {
        federation,
        appends: ledger.appends,
        store,
        _guard: guard,
    })
}

/// `verify` accepts the sample ledger, counting every chain and block.
pub fn verify_accepts_sample_ledger<B: StoreBuilder>(builder: &B) -> Result<(), StoreError> {
    let loaded = load_sample(builder)?;
    let (appends, store) = (&loaded.appends, &loaded.store);
    let chains: BTreeSet<(Address, ChainId)> =
        appends.iter().map(|(h, b)| (*h, b.chain())).collect();
    match verify(store) {
        Ok(summary) => {
            assert_eq!(summary.chains, chains.len());
            assert_eq!(summary.blocks, appends.len() as u64);
        }
        Err(e) => panic!("the sample ledger must verify: {e}"),
    }
    Ok(())
}

/// Expects `verify` to fail at exactly `chain`, `height` and `node`.
fn expect_bad_block(store: &dyn ChainStore, chain: &str, height: u64, node: &str) {
    match verify(store) {
        Err(err @ VerifyError::BadBlock { .. }) => {
            let line = err.to_string();
            let VerifyError::BadBlock {
                chain: got_chain,
                height: got_height,
                node: got_node,
                ..
            } = err
            else {
                unreachable!("matched BadBlock above");
            };
            assert_eq!(
                (got_chain.as_str(), got_height, got_node.as_str()),
                (chain, height, node),
                "{line}"
            );
            assert!(
                line.contains(&format!("chain={chain} height={height}")),
                "{line}"
            );
            assert!(line.contains(&format!("node={node}")), "{line}");
        }
        other => {
            panic!("expected a bad block at {chain} height {height} node {node}, got {other:?}")
        }
    }
}

/// Tampering with one stored copy makes `verify` name exactly that chain, height and
/// holder: a re-encoded consortium block, a flipped byte in a private block, an
/// undecodable relay block, and a block stored above its chain's head.
pub fn verify_names_tampered_blocks<B: StoreBuilder>(builder: &B) -> Result<(), StoreError> {
    let name_of = |federation: &SampleFederation, address: &Address| {
        federation
            .member_by_address(address)
            .map(|m| m.entry.name.clone())
            .unwrap_or_else(|| panic!("holder {address} is a sample member"))
    };

    // A member's own lane, re-encoded with a changed time: its signature no longer holds.
    {
        let loaded = load_sample(builder)?;
        let (federation, store) = (&loaded.federation, &loaded.store);
        let member = federation
            .member("grid-2")
            .unwrap_or_else(|| panic!("the four-party sample has grid-2"));
        let holder = member.entry.address;
        let chain = ChainId::Consortium(member.consortium, holder);
        let Some(AnyBlock::Consortium(mut block)) = store.block(holder, chain, 3)? else {
            panic!("grid-2 holds its own lane");
        };
        block.header.time += 1;
        let head = store.head(holder, chain)?;
        store.overwrite_unchecked(
            holder,
            chain,
            3,
            &codec::encode(&AnyBlock::Consortium(block)),
        )?;
        assert_eq!(store.head(holder, chain)?, head);
        expect_bad_block(store, "consortium/grid/grid-2", 3, "grid-2");
    }

    // One flipped byte of a private block.
    {
        let loaded = load_sample(builder)?;
        let (federation, store) = (&loaded.federation, &loaded.store);
        let member = federation
            .member("load-1")
            .unwrap_or_else(|| panic!("the four-party sample has load-1"));
        let holder = member.entry.address;
        let chain = ChainId::Private(holder);
        let mut bytes = store
            .raw_range(holder, chain, 2, 1)?
            .pop()
            .map(|(_, bytes)| bytes)
            .unwrap_or_else(|| panic!("load-1 holds its private chain"));
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        store.overwrite_unchecked(holder, chain, 2, &bytes)?;
        expect_bad_block(store, "private/load-1", 2, "load-1");
    }

    // Garbage in one relay's copy of a relay lane; other relays' copies are intact.
    {
        let loaded = load_sample(builder)?;
        let (federation, appends, store) = (&loaded.federation, &loaded.appends, &loaded.store);
        let (holder, block) = appends
            .iter()
            .find(|(_, b)| matches!(b, AnyBlock::Relay(_)) && b.height() == 4)
            .unwrap_or_else(|| panic!("the sample has relay blocks at height 4"));
        let chain = block.chain();
        store.overwrite_unchecked(*holder, chain, 4, b"\x02 not a relay block")?;
        let name = format!("relay/{}", chain_consortium(federation, &chain));
        expect_bad_block(store, &name, 4, &name_of(federation, holder));
    }

    // A block stored above the head.
    {
        let loaded = load_sample(builder)?;
        let (federation, store) = (&loaded.federation, &loaded.store);
        let member = federation
            .member("source-3")
            .unwrap_or_else(|| panic!("the four-party sample has source-3"));
        let holder = member.entry.address;
        let chain = ChainId::Private(holder);
        let head = store
            .head(holder, chain)?
            .unwrap_or_else(|| panic!("source-3 holds its private chain"));
        let first = store.raw_range(holder, chain, 1, 1)?;
        let bytes = first.first().map(|(_, b)| b.clone()).unwrap_or_default();
        store.overwrite_unchecked(holder, chain, head.height + 1, &bytes)?;
        expect_bad_block(store, "private/source-3", head.height + 1, "source-3");
    }
    Ok(())
}

/// `count` linked private blocks of the chain of `key`, with no records.
fn private_blocks_of(key: &Keypair, count: u64) -> Vec<(Address, AnyBlock)> {
    let mut prev = Hash::ZERO;
    (1..=count)
        .map(|height| {
            let block =
                AnyBlock::Private(PrivateBlock::seal(key, height, prev, height, Vec::new()));
            prev = block.hash();
            (key.address(), block)
        })
        .collect()
}

/// A member that joined through a relay lane (not in the genesis record) holds a private
/// chain that verifies, whatever its address's place among the holders: relay lanes are
/// replayed first, so its key is known. A chain signed by a key nobody registered is a bad
/// block at height 1, held by a node named by its address.
pub fn verify_learns_joined_members<B: StoreBuilder>(builder: &B) -> Result<(), StoreError> {
    // A federation in which a joined member's address sorts before every relay holder's,
    // so that its chain is listed before any relay lane that registers it: checking relay
    // lanes first only within each holder would fail on it.
    let joined = |federation: &SampleFederation, consortium: &str| {
        newcomer_key(federation.genesis.seed, &format!("{consortium}-joined"))
    };
    let seed = (SEED..SEED + 64)
        .find(|seed| {
            let federation = SampleFederation::four_party(*seed, 4);
            let ledger = federation.ledger(6);
            let first_relay_holder = ledger
                .appends
                .iter()
                .filter(|(_, b)| matches!(b, AnyBlock::Relay(_)))
                .map(|(h, _)| *h)
                .min();
            federation
                .genesis
                .consortiums
                .iter()
                .any(|c| Some(joined(&federation, &c.name).address()) < first_relay_holder)
        })
        .unwrap_or_else(|| panic!("no sample seed puts a joined member before every relay"));
    let loaded = load_sample_seeded(builder, seed)?;
    let (federation, appends, store) = (&loaded.federation, &loaded.appends, &loaded.store);
    let mut newcomers = Vec::new();
    for consortium in &federation.genesis.consortiums {
        let key = joined(federation, &consortium.name);
        let registered = appends.iter().any(|(_, b)| {
            matches!(b, AnyBlock::Relay(r)
                if r.header.registry.added.iter().any(|e| e.address == key.address()))
        });
        assert!(
            registered,
            "the sample ledger registers {}-joined",
            consortium.name
        );
        store.append_many(&private_blocks_of(&key, 3))?;
        newcomers.push(key);
    }
    match verify(store) {
        Ok(summary) => assert_eq!(
            summary.blocks,
            appends.len() as u64 + 3 * newcomers.len() as u64
        ),
        Err(e) => panic!("joined members' chains must verify: {e}"),
    }

    let stranger = newcomer_key(federation.genesis.seed, "never-registered");
    store.append_many(&private_blocks_of(&stranger, 2))?;
    let name = stranger.address().to_string();
    expect_bad_block(store, &format!("private/{name}"), 1, &name);
    Ok(())
}

fn chain_consortium(federation: &SampleFederation, chain: &ChainId) -> String {
    match chain {
        ChainId::Relay(c) | ChainId::Consortium(c, _) => federation.genesis.consortium_name(*c),
        ChainId::Private(_) => String::new(),
    }
}
