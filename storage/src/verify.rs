//! `verify`: check every chain of every holder in full, and name the first bad block
//! (SPEC §7 "Reopening", §10 `ieschain verify`, §12 D1).
//!
//! Each chain is replayed from height 1 through `ieschain_core::validate::LaneState`: hash
//! links, signatures, capacity, registry roots and election recomputation. Blocks are read
//! as raw bytes in pages, so that a value that does not decode is a bad block at its height
//! rather than an I/O error; and the stored head must be the last block.
//!
//! # Order
//! Relay lanes register joining members, whose keys the other chains need. So the walk has
//! two passes over [`ChainStore::chains`]' order (by holder, then chain): first every
//! holder's relay lanes, learning joiners into one shared `Directory`; then every holder's
//! other chains. (Checking relay lanes first only within each holder is not enough: a
//! joined member holds its own private chain, and may sort before every relay that learnt
//! its key.) The first bad block in this order stops the walk, so the report is the same on
//! every run.

use ieschain_core::codec;
use ieschain_core::genesis::{Directory, Genesis};
use ieschain_core::validate::{Head, LaneState};
use ieschain_core::{Address, AnyBlock, ChainId};
use thiserror::Error;

use crate::error::StoreError;
use crate::store::ChainStore;

/// Blocks read per page: relay blocks can be 1 MiB each, so a page is bounded in blocks.
const PAGE: usize = 32;

/// What a successful `verify` checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerifySummary {
    /// Chains checked: one per (holder, chain).
    pub chains: usize,
    /// Blocks checked, over all chains.
    pub blocks: u64,
}

/// Why `verify` failed.
#[derive(Debug, Error)]
pub enum VerifyError {
    /// A stored block is invalid: the first one in the walk's order. `ieschain verify`
    /// prints this line and exits 1.
    #[error("chain={chain} height={height} node={node}: {reason}")]
    BadBlock {
        /// The chain's name: `relay/<consortium>`, `consortium/<consortium>/<member>` or
        /// `private/<member>` (SPEC §12 D1).
        chain: String,
        /// The holder's name.
        node: String,
        /// The height of the bad block.
        height: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The store could not be read: `ieschain verify` exits 2.
    #[error("verify could not read the store: {0}")]
    Store(#[from] StoreError),
}

/// Names chains and nodes as `verify` prints them.
fn bad(
    genesis: &Genesis,
    directory: &Directory,
    holder: Address,
    chain: ChainId,
    height: u64,
    reason: String,
) -> VerifyError {
    VerifyError::BadBlock {
        chain: chain.render(|c| genesis.consortium_name(c), |m| directory.name(m)),
        node: directory.name(&holder),
        height,
        reason,
    }
}

/// Checks every chain of every holder in full; see the module docs for the order.
pub fn verify(store: &dyn ChainStore) -> Result<VerifySummary, VerifyError> {
    let genesis = store.genesis();
    let mut directory = Directory::from_genesis(genesis);
    let chains = store.chains()?;
    let (relays, others): (Vec<_>, Vec<_>) = chains
        .into_iter()
        .partition(|(_, chain, _)| matches!(chain, ChainId::Relay(_)));
    let mut summary = VerifySummary::default();
    for (holder, chain, head) in relays.into_iter().chain(others) {
        summary.blocks += verify_chain(store, genesis, &mut directory, holder, chain, head)?;
        summary.chains += 1;
    }
    Ok(summary)
}

/// Replays `holder`'s copy of `chain`; returns how many blocks it has.
fn verify_chain(
    store: &dyn ChainStore,
    genesis: &Genesis,
    directory: &mut Directory,
    holder: Address,
    chain: ChainId,
    head: Head,
) -> Result<u64, VerifyError> {
    let mut lane = LaneState::new(genesis, directory, chain)
        .map_err(|e| bad(genesis, directory, holder, chain, 1, e.reason.to_string()))?;
    let mut next = 1u64;
    loop {
        let page = store.raw_range(holder, chain, next, PAGE)?;
        if page.is_empty() {
            break;
        }
        for (height, bytes) in page {
            let fail = |directory: &Directory, height, reason| {
                bad(genesis, directory, holder, chain, height, reason)
            };
            if height > head.height {
                return Err(fail(
                    directory,
                    height,
                    format!("a block is stored above the head at height {}", head.height),
                ));
            }
            if height != next {
                return Err(fail(
                    directory,
                    next,
                    format!("missing: the next stored block is at height {height}"),
                ));
            }
            let block: AnyBlock = codec::decode(&bytes)
                .map_err(|e| fail(directory, height, format!("undecodable: {e}")))?;
            if let Err(e) = lane.append(&block, directory) {
                let mut reason = e.reason.to_string();
                if e.chain != chain || e.height != height {
                    reason.push_str(&format!(
                        " (the block claims {} height {})",
                        e.chain, e.height
                    ));
                }
                return Err(fail(directory, height, reason));
            }
            next += 1;
        }
    }
    let last = lane.head();
    if last.height < head.height {
        return Err(bad(
            genesis,
            directory,
            holder,
            chain,
            last.height + 1,
            format!("missing: the stored head is at height {}", head.height),
        ));
    }
    if last.hash != head.hash {
        return Err(bad(
            genesis,
            directory,
            holder,
            chain,
            head.height,
            format!(
                "the stored head hash {} is not the hash {} of the block at its height",
                head.hash.short(),
                last.hash.short()
            ),
        ));
    }
    Ok(last.height)
}
