//! [`HolderStore`]: one node's handle on the shared store, scoped to its own key prefix
//! (SPEC §12 D1: "a node reaches storage only through a store handle scoped to its own
//! prefix"). A node given a `HolderStore` cannot name another holder, so it cannot read or
//! write another node's copies (SPEC §3).

use std::sync::Arc;

use ieschain_core::genesis::Genesis;
use ieschain_core::validate::Head;
use ieschain_core::{Address, AnyBlock, ChainId, Hash};

use crate::error::StoreError;
use crate::store::ChainStore;

/// A [`ChainStore`] seen by one holder.
#[derive(Clone, Debug)]
pub struct HolderStore {
    store: Arc<dyn ChainStore>,
    holder: Address,
}

impl HolderStore {
    /// `holder`'s handle on `store`.
    pub fn new(store: Arc<dyn ChainStore>, holder: Address) -> HolderStore {
        HolderStore { store, holder }
    }

    /// The node whose prefix this handle is scoped to.
    pub fn holder(&self) -> Address {
        self.holder
    }

    /// The genesis record.
    pub fn genesis(&self) -> &Genesis {
        self.store.genesis()
    }

    /// See [`ChainStore::append`].
    pub fn append(&self, block: &AnyBlock) -> Result<Head, StoreError> {
        self.store.append(self.holder, block)
    }

    /// See [`ChainStore::append_many`]: all of `blocks` in one batch and one sync.
    pub fn append_many(&self, blocks: &[AnyBlock]) -> Result<(), StoreError> {
        let appends: Vec<(Address, AnyBlock)> =
            blocks.iter().map(|b| (self.holder, b.clone())).collect();
        self.store.append_many(&appends)
    }

    /// See [`ChainStore::write`].
    pub fn write(&self, writes: &[ieschain_core::node::StoreWrite]) -> Result<(), StoreError> {
        self.store.write(self.holder, writes)
    }

    /// See [`ChainStore::sealed`].
    pub fn sealed(&self) -> Result<u64, StoreError> {
        self.store.sealed(self.holder)
    }

    /// See [`ChainStore::head`].
    pub fn head(&self, chain: ChainId) -> Result<Option<Head>, StoreError> {
        self.store.head(self.holder, chain)
    }

    /// See [`ChainStore::block`].
    pub fn block(&self, chain: ChainId, height: u64) -> Result<Option<AnyBlock>, StoreError> {
        self.store.block(self.holder, chain, height)
    }

    /// See [`ChainStore::range`].
    pub fn range(
        &self,
        chain: ChainId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<AnyBlock>, StoreError> {
        self.store.range(self.holder, chain, from, limit)
    }

    /// See [`ChainStore::raw_range`].
    pub fn raw_range(
        &self,
        chain: ChainId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.store.raw_range(self.holder, chain, from, limit)
    }

    /// Every chain this holder holds, with its head, sorted by chain.
    pub fn chains(&self) -> Result<Vec<(ChainId, Head)>, StoreError> {
        self.store.chains_of(self.holder)
    }

    /// See [`ChainStore::locate`].
    pub fn locate(&self, hash: Hash) -> Result<Option<(ChainId, u64)>, StoreError> {
        self.store.locate(self.holder, hash)
    }

    /// See [`ChainStore::put_negotiation`].
    pub fn put_negotiation(
        &self,
        id: Hash,
        expires_at_ms: u64,
        payload: &[u8],
    ) -> Result<(), StoreError> {
        self.store
            .put_negotiation(self.holder, id, expires_at_ms, payload)
    }

    /// See [`ChainStore::negotiation`].
    pub fn negotiation(&self, id: Hash) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.negotiation(self.holder, id)
    }

    /// See [`ChainStore::remove_negotiation`].
    pub fn remove_negotiation(&self, id: Hash) -> Result<bool, StoreError> {
        self.store.remove_negotiation(self.holder, id)
    }

    /// See [`ChainStore::overwrite_unchecked`].
    pub fn overwrite_unchecked(
        &self,
        chain: ChainId,
        height: u64,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        self.store
            .overwrite_unchecked(self.holder, chain, height, bytes)
    }

    /// See [`ChainStore::flush`].
    pub fn flush(&self) -> Result<(), StoreError> {
        self.store.flush()
    }
}
