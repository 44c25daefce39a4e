//! [`ChainStore`]: what every chain store does, and the invariants it keeps.

use ieschain_core::genesis::Genesis;
use ieschain_core::node::StoreWrite;
use ieschain_core::validate::Head;
use ieschain_core::{Address, AnyBlock, ChainId, Hash};

use crate::error::StoreError;

/// Every holder's copies of the chains it keeps, its negotiation state, and the genesis
/// record, in one store (SPEC §7, §12 D1).
///
/// Invariants every implementation keeps (checked by [`crate::suite`]):
/// - **Chains grow by their next block, and shrink only by truncation.** A holder's copy
///   of a chain is blocks at heights `1..=head.height`, each linked to the one before by
///   `prev`; the first block's `prev` is [`Hash::ZERO`]. [`ChainStore::append`] refuses
///   anything else; [`ChainStore::write`] may drop the blocks above a height (SPEC §14);
///   [`ChainStore::overwrite_unchecked`] is the only way around both.
/// - **A block, its hash index entry and its head are written together**, in one atomic
///   batch, synced before `append` returns when the store is durable.
/// - **Holders are isolated.** Every key starts with its holder; nothing written for one
///   holder is visible under another.
/// - **No validation here.** Signatures, capacity and registries are
///   `ieschain_core::validate`'s job, done by callers and by [`crate::verify()`].
pub trait ChainStore: Send + Sync + std::fmt::Debug {
    /// The genesis record the store was created with (SPEC §12 D2).
    fn genesis(&self) -> &Genesis;

    /// Appends one block to `holder`'s copy of its chain: block bytes, hash index and head
    /// in ONE atomic batch, synced (WAL fsync) when the store is durable. Refuses a block
    /// that is not the next one: height != head+1 or prev != head hash ->
    /// [`StoreError::NotNext`]. Does NOT check signatures (validation is
    /// `ieschain_core::validate`'s job, done by callers).
    fn append(&self, holder: Address, block: &AnyBlock) -> Result<Head, StoreError>;

    /// Group commit: many appends (possibly several on the same chain, in order) in one
    /// batch and one sync. All or nothing: if any block is not the next one, nothing is
    /// written.
    fn append_many(&self, appends: &[(Address, AnyBlock)]) -> Result<(), StoreError>;

    /// A node's writes, in order, in ONE atomic batch and one sync when the store is
    /// durable: appends (each checked as [`ChainStore::append`] checks it, against the
    /// heads as the earlier writes of the batch leave them), truncations (the blocks of a
    /// chain above a height, their hash index entries, and the head moved back, SPEC §14),
    /// and the node's seal (kept only if higher than the stored one). All or nothing.
    fn write(&self, holder: Address, writes: &[StoreWrite]) -> Result<(), StoreError>;

    /// The epoch `holder` sealed its own lane at, 0 if never (SPEC §14).
    fn sealed(&self, holder: Address) -> Result<u64, StoreError>;

    /// The head of `holder`'s copy of `chain`, or `None` if it holds no block of it.
    fn head(&self, holder: Address, chain: ChainId) -> Result<Option<Head>, StoreError>;

    /// The block at `height` of `holder`'s copy of `chain`.
    fn block(
        &self,
        holder: Address,
        chain: ChainId,
        height: u64,
    ) -> Result<Option<AnyBlock>, StoreError>;

    /// Blocks from height `from` (inclusive), at most `limit`, ascending.
    fn range(
        &self,
        holder: Address,
        chain: ChainId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<AnyBlock>, StoreError>;

    /// The same as raw stored bytes, undecoded: (height, bytes). Used by verify so that a
    /// corrupt value is reported as a bad block at its height.
    fn raw_range(
        &self,
        holder: Address,
        chain: ChainId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;

    /// Every (holder, chain, head) held, sorted by (holder, chain) — [`ChainId`]'s `Ord`.
    fn chains(&self) -> Result<Vec<(Address, ChainId, Head)>, StoreError>;

    /// Every (chain, head) that `holder` holds, sorted by chain.
    fn chains_of(&self, holder: Address) -> Result<Vec<(ChainId, Head)>, StoreError> {
        Ok(self
            .chains()?
            .into_iter()
            .filter(|(h, _, _)| *h == holder)
            .map(|(_, chain, head)| (chain, head))
            .collect())
    }

    /// Where the block with `hash` is in `holder`'s copies: its chain and height. Used to
    /// drop duplicates (SPEC §12 D4).
    fn locate(&self, holder: Address, hash: Hash) -> Result<Option<(ChainId, u64)>, StoreError> {
        // A correct but slow fallback; the stores of this crate read their hash index.
        for (chain, head) in self.chains_of(holder)? {
            let mut from = 1;
            while from <= head.height {
                let page = self.range(holder, chain, from, 256)?;
                let Some(last) = page.last() else { break };
                from = last.height() + 1;
                if let Some(block) = page.iter().find(|b| b.hash() == hash) {
                    return Ok(Some((chain, block.height())));
                }
            }
        }
        Ok(None)
    }

    /// Negotiation state (SPEC §7): an opaque payload with an expiry (ms since the Unix
    /// epoch). Replaces any state under the same id.
    fn put_negotiation(
        &self,
        holder: Address,
        id: Hash,
        expires_at_ms: u64,
        payload: &[u8],
    ) -> Result<(), StoreError>;

    /// The payload of a negotiation, until it is removed or expired by
    /// [`ChainStore::expire_negotiations`] (reading does not look at the clock).
    fn negotiation(&self, holder: Address, id: Hash) -> Result<Option<Vec<u8>>, StoreError>;

    /// Removes a negotiation, for instance after settlement; whether it was there.
    fn remove_negotiation(&self, holder: Address, id: Hash) -> Result<bool, StoreError>;

    /// Removes every negotiation whose expiry is <= `now_ms`; returns how many.
    fn expire_negotiations(&self, now_ms: u64) -> Result<usize, StoreError>;

    /// Overwrites a stored block's bytes WITHOUT any check (tamper tests, fault
    /// injection). Keeps head and hash index as they were. Writing at a height with no
    /// block stores the bytes there, still without moving the head.
    fn overwrite_unchecked(
        &self,
        holder: Address,
        chain: ChainId,
        height: u64,
        bytes: &[u8],
    ) -> Result<(), StoreError>;

    /// Makes every write durable and flushes memory buffers, as at shutdown.
    fn flush(&self) -> Result<(), StoreError>;
}
