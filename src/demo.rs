//! Writing a sample ledger into a store: what `examples/ledger_basics.rs` and the
//! integration tests do to get a data directory with every chain kind in it.
//!
//! Every block is validated as its holder would validate it before it is stored. Writing
//! the same ledger again adds nothing; writing a different one into the same store is an
//! error, never a mix.

use std::collections::{BTreeMap, BTreeSet};

use ieschain_core::genesis::Directory;
use ieschain_core::sample::SampleFederation;
use ieschain_core::validate::{BlockError, LaneState};
use ieschain_core::{Address, AnyBlock, ChainId, RecordKind};
use ieschain_storage::{ChainStore, StoreError};
use thiserror::Error;

/// What [`write_sample_ledger`] stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LedgerSummary {
    /// Private block copies stored.
    pub private: u64,
    /// Consortium block copies stored.
    pub consortium: u64,
    /// Relay block copies stored.
    pub relay: u64,
    /// Copies that were already present.
    pub already_present: u64,
    /// Chains, counted per holder.
    pub chains: usize,
    /// Distinct holders.
    pub holders: usize,
    /// Distinct election records.
    pub elections: usize,
}

/// Why a sample ledger could not be written.
#[derive(Debug, Error)]
pub enum DemoError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A generated block did not validate: a bug in the generator.
    #[error("generated block failed validation: {0}")]
    Invalid(#[from] BlockError),
    /// The store holds another ledger.
    #[error("the store already holds a different ledger: {chain} height {height} differs")]
    Different {
        /// The chain.
        chain: ChainId,
        /// The height.
        height: u64,
    },
}

/// Validates and stores `federation`'s sample ledger of `rounds` rounds.
pub fn write_sample_ledger(
    store: &dyn ChainStore,
    federation: &SampleFederation,
    rounds: usize,
) -> Result<LedgerSummary, DemoError> {
    let ledger = federation.ledger(rounds);
    let genesis = &federation.genesis;
    let mut directory = Directory::from_genesis(genesis);
    let mut lanes: BTreeMap<(Address, ChainId), LaneState> = BTreeMap::new();
    // Relay lanes first, so that joined members are known before their own chains.
    let mut ordered: Vec<&(Address, AnyBlock)> = ledger.appends.iter().collect();
    ordered.sort_by_key(|(_, block)| !matches!(block, AnyBlock::Relay(_)));
    let mut summary = LedgerSummary::default();
    let mut pending = Vec::new();
    for (holder, block) in ordered {
        let chain = block.chain();
        let lane = match lanes.entry((*holder, chain)) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(LaneState::new(genesis, &directory, chain)?)
            }
        };
        lane.append(block, &mut directory)?;
        match store.block(*holder, chain, block.height())? {
            Some(stored) if stored.hash() == block.hash() => summary.already_present += 1,
            Some(_) => {
                return Err(DemoError::Different {
                    chain,
                    height: block.height(),
                })
            }
            None => {
                match block {
                    AnyBlock::Private(_) => summary.private += 1,
                    AnyBlock::Consortium(_) => summary.consortium += 1,
                    AnyBlock::Relay(_) => summary.relay += 1,
                }
                pending.push((*holder, block.clone()));
            }
        }
    }
    for chunk in pending.chunks(256) {
        store.append_many(chunk)?;
    }
    store.flush()?;
    summary.chains = lanes.len();
    summary.holders = lanes.keys().map(|(h, _)| *h).collect::<BTreeSet<_>>().len();
    summary.elections = ledger
        .appends
        .iter()
        .flat_map(|(_, b)| b.records().iter())
        .filter(|r| r.kind() == RecordKind::Election)
        .map(|r| r.digest())
        .collect::<BTreeSet<_>>()
        .len();
    Ok(summary)
}

/// Hand-made chains for the tests of what reads them (the trade audit, the explorer):
/// records and relay blocks that need not verify, since readers do not validate.
#[cfg(test)]
pub(crate) mod fixtures {
    use ieschain_core::block::RelayDraft;
    use ieschain_core::record::RecordBody;
    use ieschain_core::{Audience, ConsortiumBlock, ConsortiumId, Hash, Record, RecordContent};

    use super::*;

    /// `bodies` signed by member `member` of the sample federation, seqs from `first_seq`,
    /// addressed to everyone.
    pub(crate) fn signed(
        federation: &SampleFederation,
        member: usize,
        first_seq: u64,
        bodies: Vec<RecordBody>,
    ) -> Vec<Record> {
        let key = &federation.members[member].key;
        bodies
            .into_iter()
            .enumerate()
            .map(|(i, body)| {
                RecordContent {
                    author: key.address(),
                    seq: first_seq + i as u64,
                    created_at: 1,
                    audience: Audience::Everyone,
                    body,
                }
                .sign(key)
            })
            .collect()
    }

    /// Appends to `lane` of `store` (held by the federation's first member) a relay block at
    /// height 1 and `time`, holding one consortium block of `records`.
    pub(crate) fn append_relay_block(
        store: &dyn ChainStore,
        federation: &SampleFederation,
        lane: u16,
        time: u64,
        records: Vec<Record>,
    ) {
        let key = &federation.members[0].key;
        let lane = ConsortiumId(lane);
        let inner = ConsortiumBlock::seal(key, lane, 1, Hash::ZERO, time, records);
        let block = RelayDraft {
            lane,
            height: 1,
            prev: Hash::ZERO,
            epoch: 1,
            time,
            registry_root: Hash::ZERO,
            added: Vec::new(),
            lane_heads: Vec::new(),
            blocks: vec![inner],
            records: Vec::new(),
        }
        .seal(key);
        store
            .append(key.address(), &AnyBlock::Relay(block))
            .expect("the next block of an empty lane");
    }
}
