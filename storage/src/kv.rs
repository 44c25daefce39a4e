//! The chain logic of both stores, written once over the [`Engine`] seam and the typed
//! [`crate::schema`]s: next-block checks, group commit, heads, the hash index and
//! negotiations.
//!
//! Appends are serialised by one write lock, so that the head a block is checked against
//! is still the head when its batch lands. Reads take no lock: a batch is atomic, so a
//! reader sees a block with its head or neither.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use ieschain_core::codec;
use ieschain_core::genesis::Genesis;
use ieschain_core::validate::Head;
use ieschain_core::{Address, AnyBlock, ChainId, Hash};

use crate::engine::{Batch, Engine};
use crate::error::{NotNext, StoreError};
use crate::schema::{
    BlockKey, FormatKey, FormatVersion, GenesisKey, GenesisRecord, HashIndex, HeadKey, Heads,
    IndexKey, KeyCodec, Location, Negotiation, NegotiationKey, Negotiations, Schema, SealKey,
    Sealed, Seals, StoreFormat, ValueCodec,
};
use ieschain_core::node::StoreWrite;

/// How blocks, heads and negotiations are described in errors.
fn block_what(holder: Address, chain: ChainId, height: u64) -> String {
    format!("block {chain} height {height} of holder {}", holder.short())
}

/// The chain logic over an engine.
pub(crate) struct KvStore<E> {
    engine: E,
    genesis: Genesis,
    /// Whether writes are synced (WAL fsync) before they return.
    sync: bool,
    /// Serialises each holder's writes: check against the head, then write, with no other
    /// write of that holder between. Striped by holder, so that nodes on different
    /// threads write (and RocksDB syncs their writes, grouped) at the same time.
    write_locks: [Mutex<()>; WRITE_STRIPES],
}

/// How many write locks a store stripes its holders over.
const WRITE_STRIPES: usize = 16;

impl<E: std::fmt::Debug> std::fmt::Debug for KvStore<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The genesis record may list 10,000 members: show its hash, not its contents.
        f.debug_struct("KvStore")
            .field("engine", &self.engine)
            .field("genesis", &self.genesis.hash().short())
            .field("sync", &self.sync)
            .finish_non_exhaustive()
    }
}

impl<E: Engine> KvStore<E> {
    /// A store over `engine` whose genesis record is `genesis`.
    pub(crate) fn new(engine: E, genesis: Genesis, sync: bool) -> Self {
        KvStore {
            engine,
            genesis,
            sync,
            write_locks: std::array::from_fn(|_| Mutex::new(())),
        }
    }

    /// The batch that writes a new store's genesis record and format.
    pub(crate) fn genesis_batch(genesis: &Genesis) -> Batch {
        let mut batch = Batch::default();
        batch.put::<StoreFormat>(&FormatKey, &FormatVersion::CURRENT);
        batch.put::<GenesisRecord>(&GenesisKey, genesis);
        batch
    }

    /// Reads a typed value.
    pub(crate) fn get<S: Schema>(
        engine: &E,
        key: &S::Key,
        doing: impl Fn() -> String,
    ) -> Result<Option<S::Value>, StoreError> {
        let Some(bytes) = engine
            .get(S::CF, &key.encode_key())
            .map_err(|e| e.during(&doing))?
        else {
            return Ok(None);
        };
        S::Value::decode_value(&bytes)
            .map(Some)
            .map_err(|source| StoreError::Corrupt {
                what: doing(),
                source,
            })
    }

    /// The genesis record.
    pub(crate) fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    /// The write lock of `holder`'s stripe.
    fn lock(&self, holder: Address) -> std::sync::MutexGuard<'_, ()> {
        // The locks guard no data, so a panic while holding one leaves nothing half-done.
        self.write_locks[usize::from(holder.0[0]) % WRITE_STRIPES]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Every write lock, in stripe order (one order, so no two callers deadlock): for a
    /// write that spans holders.
    fn lock_all(&self) -> Vec<std::sync::MutexGuard<'_, ()>> {
        self.write_locks
            .iter()
            .map(|lock| lock.lock().unwrap_or_else(PoisonError::into_inner))
            .collect()
    }

    fn write(&self, batch: Batch, doing: impl FnOnce() -> String) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.engine
            .write(batch, self.sync)
            .map_err(|e| e.during(doing))
    }

    fn stored_head(&self, holder: Address, chain: ChainId) -> Result<Option<Head>, StoreError> {
        Self::get::<Heads>(&self.engine, &HeadKey { holder, chain }, || {
            format!("reading the head of {chain} of holder {}", holder.short())
        })
    }

    /// Checks that `block` extends `head`, and adds its writes to `batch`.
    fn stage(
        batch: &mut Batch,
        holder: Address,
        head: Head,
        block: &AnyBlock,
    ) -> Result<Head, StoreError> {
        let chain = block.chain();
        let height = block.height();
        let prev = block.prev();
        if Some(height) != head.height.checked_add(1) || prev != head.hash {
            return Err(StoreError::NotNext(Box::new(NotNext {
                holder,
                chain,
                height,
                prev,
                head,
            })));
        }
        let bytes = codec::encode(block);
        if bytes.len() > codec::MAX_DECODE {
            return Err(StoreError::TooLarge {
                holder,
                chain,
                height,
                size: bytes.len(),
                limit: codec::MAX_DECODE,
            });
        }
        let hash = block.hash();
        let key = BlockKey {
            holder,
            chain,
            height,
        };
        batch.put_encoded(key.cf(), key.encode_key(), bytes);
        batch.put::<HashIndex>(&IndexKey { holder, hash }, &Location { chain, height });
        let new_head = Head { height, hash };
        batch.put::<Heads>(&HeadKey { holder, chain }, &new_head);
        Ok(new_head)
    }

    pub(crate) fn append(&self, holder: Address, block: &AnyBlock) -> Result<Head, StoreError> {
        let _guard = self.lock(holder);
        let chain = block.chain();
        let head = self.stored_head(holder, chain)?.unwrap_or_default();
        let mut batch = Batch::default();
        let new_head = Self::stage(&mut batch, holder, head, block)?;
        self.write(batch, || {
            format!("appending {}", block_what(holder, chain, block.height()))
        })?;
        Ok(new_head)
    }

    pub(crate) fn append_many(&self, appends: &[(Address, AnyBlock)]) -> Result<(), StoreError> {
        let _guards = self.lock_all();
        let mut heads: BTreeMap<(Address, ChainId), Head> = BTreeMap::new();
        let mut batch = Batch::default();
        for (holder, block) in appends {
            let chain = block.chain();
            let head = match heads.get(&(*holder, chain)) {
                Some(head) => *head,
                None => self.stored_head(*holder, chain)?.unwrap_or_default(),
            };
            let new_head = Self::stage(&mut batch, *holder, head, block)?;
            heads.insert((*holder, chain), new_head);
        }
        self.write(batch, || {
            format!(
                "appending {} blocks to {} chains in one batch",
                appends.len(),
                heads.len()
            )
        })
    }

    /// A node's writes, in order, in one batch and one sync: appends, truncations of a
    /// chain above a height (blocks, their index entries and the head together), and its
    /// seal (SPEC §14).
    pub(crate) fn write_all(
        &self,
        holder: Address,
        writes: &[StoreWrite],
    ) -> Result<(), StoreError> {
        let _guard = self.lock(holder);
        let mut heads: BTreeMap<ChainId, Head> = BTreeMap::new();
        // Blocks staged by this batch, by chain: (height, hash), ascending.
        let mut staged: BTreeMap<ChainId, Vec<(u64, Hash)>> = BTreeMap::new();
        let mut batch = Batch::default();
        for write in writes {
            match write {
                StoreWrite::Block(block) => {
                    let chain = block.chain();
                    let head = match heads.get(&chain) {
                        Some(head) => *head,
                        None => self.stored_head(holder, chain)?.unwrap_or_default(),
                    };
                    let new_head = Self::stage(&mut batch, holder, head, block)?;
                    heads.insert(chain, new_head);
                    staged
                        .entry(chain)
                        .or_default()
                        .push((new_head.height, new_head.hash));
                }
                StoreWrite::Truncate { chain, keep } => {
                    let head = match heads.get(chain) {
                        Some(head) => *head,
                        None => self.stored_head(holder, *chain)?.unwrap_or_default(),
                    };
                    if head.height <= *keep {
                        continue;
                    }
                    let mine = staged.entry(*chain).or_default();
                    let mut dropped: Vec<(u64, Hash)> =
                        mine.iter().filter(|(h, _)| *h > *keep).copied().collect();
                    mine.retain(|(h, _)| *h <= *keep);
                    let stored = self.range(holder, *chain, keep + 1, usize::MAX)?;
                    dropped.extend(stored.iter().map(|b| (b.height(), b.hash())));
                    for (height, hash) in dropped {
                        let key = BlockKey {
                            holder,
                            chain: *chain,
                            height,
                        };
                        batch.delete_encoded(key.cf(), key.encode_key());
                        batch.delete::<HashIndex>(&IndexKey { holder, hash });
                    }
                    let kept = match mine.iter().find(|(h, _)| h == keep) {
                        Some((height, hash)) => Some(Head {
                            height: *height,
                            hash: *hash,
                        }),
                        None if *keep == 0 => None,
                        None => self.block(holder, *chain, *keep)?.map(|b| Head {
                            height: *keep,
                            hash: b.hash(),
                        }),
                    };
                    let head_key = HeadKey {
                        holder,
                        chain: *chain,
                    };
                    match kept {
                        Some(head) => {
                            batch.put::<Heads>(&head_key, &head);
                            heads.insert(*chain, head);
                        }
                        None => {
                            batch.delete::<Heads>(&head_key);
                            heads.insert(*chain, Head::default());
                        }
                    }
                }
                StoreWrite::Seal { epoch } => {
                    let sealed = self.sealed(holder)?;
                    if *epoch > sealed {
                        batch.put::<Seals>(&SealKey { holder }, &Sealed(*epoch));
                    }
                }
            }
        }
        self.write(batch, || {
            format!(
                "writing {} changes of holder {} in one batch",
                writes.len(),
                holder.short()
            )
        })
    }

    /// The epoch `holder` sealed its own lane at; 0 if never (SPEC §14).
    pub(crate) fn sealed(&self, holder: Address) -> Result<u64, StoreError> {
        Ok(Self::get::<Seals>(&self.engine, &SealKey { holder }, || {
            format!("reading the seal of holder {}", holder.short())
        })?
        .map_or(0, |s| s.0))
    }

    pub(crate) fn head(&self, holder: Address, chain: ChainId) -> Result<Option<Head>, StoreError> {
        self.stored_head(holder, chain)
    }

    pub(crate) fn block(
        &self,
        holder: Address,
        chain: ChainId,
        height: u64,
    ) -> Result<Option<AnyBlock>, StoreError> {
        let key = BlockKey {
            holder,
            chain,
            height,
        };
        let doing = || format!("reading {}", block_what(holder, chain, height));
        let Some(bytes) = self
            .engine
            .get(key.cf(), &key.encode_key())
            .map_err(|e| e.during(doing))?
        else {
            return Ok(None);
        };
        codec::decode(&bytes)
            .map(Some)
            .map_err(|source| StoreError::Corrupt {
                what: doing(),
                source,
            })
    }

    pub(crate) fn raw_range(
        &self,
        holder: Address,
        chain: ChainId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let prefix = BlockKey::chain_prefix(holder, &chain);
        let start = BlockKey {
            holder,
            chain,
            height: from,
        };
        let cf = start.cf();
        let entries = self
            .engine
            .scan(cf, &prefix, &start.encode_key(), limit)
            .map_err(|e| {
                e.during(|| {
                    format!(
                        "reading blocks of {chain} of holder {} from height {from}",
                        holder.short()
                    )
                })
            })?;
        entries
            .into_iter()
            .map(|(key, value)| {
                let key = BlockKey::decode_key(&key).map_err(|source| StoreError::Corrupt {
                    what: format!(
                        "reading a block key of {chain} of holder {} in column family {}",
                        holder.short(),
                        cf.name()
                    ),
                    source,
                })?;
                Ok((key.height, value))
            })
            .collect()
    }

    pub(crate) fn range(
        &self,
        holder: Address,
        chain: ChainId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<AnyBlock>, StoreError> {
        self.raw_range(holder, chain, from, limit)?
            .into_iter()
            .map(|(height, bytes)| {
                codec::decode(&bytes).map_err(|source| StoreError::Corrupt {
                    what: format!("reading {}", block_what(holder, chain, height)),
                    source,
                })
            })
            .collect()
    }

    fn heads_under(&self, prefix: &[u8]) -> Result<Vec<(Address, ChainId, Head)>, StoreError> {
        let entries = self
            .engine
            .scan(Heads::CF, prefix, prefix, usize::MAX)
            .map_err(|e| e.during(|| "listing chain heads".to_string()))?;
        let mut out = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let corrupt = |source| StoreError::Corrupt {
                what: "listing chain heads".to_string(),
                source,
            };
            let key = HeadKey::decode_key(&key).map_err(corrupt)?;
            let head = Head::decode_value(&value).map_err(|source| StoreError::Corrupt {
                what: format!(
                    "reading the head of {} of holder {}",
                    key.chain,
                    key.holder.short()
                ),
                source,
            })?;
            out.push((key.holder, key.chain, head));
        }
        // Keys sort by the chain tag's byte; callers want ChainId's order.
        out.sort_by_key(|(holder, chain, _)| (*holder, *chain));
        Ok(out)
    }

    pub(crate) fn chains(&self) -> Result<Vec<(Address, ChainId, Head)>, StoreError> {
        self.heads_under(&HeadKey::all_prefix())
    }

    pub(crate) fn chains_of(&self, holder: Address) -> Result<Vec<(ChainId, Head)>, StoreError> {
        Ok(self
            .heads_under(&HeadKey::holder_prefix(holder))?
            .into_iter()
            .map(|(_, chain, head)| (chain, head))
            .collect())
    }

    pub(crate) fn locate(
        &self,
        holder: Address,
        hash: Hash,
    ) -> Result<Option<(ChainId, u64)>, StoreError> {
        let location = Self::get::<HashIndex>(&self.engine, &IndexKey { holder, hash }, || {
            format!(
                "looking up block {} of holder {}",
                hash.short(),
                holder.short()
            )
        })?;
        Ok(location.map(|l| (l.chain, l.height)))
    }

    pub(crate) fn put_negotiation(
        &self,
        holder: Address,
        id: Hash,
        expires_at_ms: u64,
        payload: &[u8],
    ) -> Result<(), StoreError> {
        let mut batch = Batch::default();
        batch.put::<Negotiations>(
            &NegotiationKey { holder, id },
            &Negotiation {
                expires_at_ms,
                payload: payload.to_vec(),
            },
        );
        self.write(batch, || {
            format!(
                "storing negotiation {} of holder {}",
                id.short(),
                holder.short()
            )
        })
    }

    pub(crate) fn negotiation(
        &self,
        holder: Address,
        id: Hash,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let value =
            Self::get::<Negotiations>(&self.engine, &NegotiationKey { holder, id }, || {
                format!(
                    "reading negotiation {} of holder {}",
                    id.short(),
                    holder.short()
                )
            })?;
        Ok(value.map(|n| n.payload))
    }

    pub(crate) fn remove_negotiation(&self, holder: Address, id: Hash) -> Result<bool, StoreError> {
        // Under the write lock, so that of two concurrent removals only one says "was there".
        let _guard = self.lock(holder);
        let key = NegotiationKey { holder, id };
        let doing = || {
            format!(
                "removing negotiation {} of holder {}",
                id.short(),
                holder.short()
            )
        };
        let present = self
            .engine
            .get(Negotiations::CF, &key.encode_key())
            .map_err(|e| e.during(doing))?
            .is_some();
        if present {
            let mut batch = Batch::default();
            batch.delete::<Negotiations>(&key);
            self.write(batch, doing)?;
        }
        Ok(present)
    }

    pub(crate) fn expire_negotiations(&self, now_ms: u64) -> Result<usize, StoreError> {
        let _guards = self.lock_all();
        let doing = || format!("expiring negotiations at {now_ms} ms");
        // Negotiations are few (one per protocol in flight), so a full scan is cheap and
        // keeps every negotiation key starting with its holder.
        let entries = self
            .engine
            .scan(Negotiations::CF, &[], &[], usize::MAX)
            .map_err(|e| e.during(doing))?;
        let mut batch = Batch::default();
        let mut expired = 0;
        for (key, value) in entries {
            let negotiation =
                Negotiation::decode_value(&value).map_err(|source| StoreError::Corrupt {
                    what: match NegotiationKey::decode_key(&key) {
                        Ok(k) => format!(
                            "{}: reading negotiation {} of holder {}",
                            doing(),
                            k.id.short(),
                            k.holder.short()
                        ),
                        Err(_) => format!("{}: reading a negotiation", doing()),
                    },
                    source,
                })?;
            if negotiation.expires_at_ms <= now_ms {
                batch.delete_encoded(Negotiations::CF, key);
                expired += 1;
            }
        }
        self.write(batch, doing)?;
        Ok(expired)
    }

    pub(crate) fn overwrite_unchecked(
        &self,
        holder: Address,
        chain: ChainId,
        height: u64,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        let _guard = self.lock(holder);
        let key = BlockKey {
            holder,
            chain,
            height,
        };
        let mut batch = Batch::default();
        batch.put_encoded(key.cf(), key.encode_key(), bytes.to_vec());
        self.write(batch, || {
            format!("overwriting {}", block_what(holder, chain, height))
        })
    }

    pub(crate) fn flush(&self) -> Result<(), StoreError> {
        self.engine
            .flush()
            .map_err(|e| e.during(|| "flushing the store".to_string()))
    }
}

/// Implements [`crate::ChainStore`] for a wrapper type by delegating to its `KvStore`
/// field.
macro_rules! delegate_chain_store {
    ($ty:ty, $field:ident) => {
        impl $crate::ChainStore for $ty {
            fn genesis(&self) -> &::ieschain_core::genesis::Genesis {
                self.$field.genesis()
            }
            fn append(
                &self,
                holder: ::ieschain_core::Address,
                block: &::ieschain_core::AnyBlock,
            ) -> Result<::ieschain_core::validate::Head, $crate::StoreError> {
                self.$field.append(holder, block)
            }
            fn append_many(
                &self,
                appends: &[(::ieschain_core::Address, ::ieschain_core::AnyBlock)],
            ) -> Result<(), $crate::StoreError> {
                self.$field.append_many(appends)
            }
            fn write(
                &self,
                holder: ::ieschain_core::Address,
                writes: &[::ieschain_core::node::StoreWrite],
            ) -> Result<(), $crate::StoreError> {
                self.$field.write_all(holder, writes)
            }
            fn sealed(&self, holder: ::ieschain_core::Address) -> Result<u64, $crate::StoreError> {
                self.$field.sealed(holder)
            }
            fn head(
                &self,
                holder: ::ieschain_core::Address,
                chain: ::ieschain_core::ChainId,
            ) -> Result<Option<::ieschain_core::validate::Head>, $crate::StoreError> {
                self.$field.head(holder, chain)
            }
            fn block(
                &self,
                holder: ::ieschain_core::Address,
                chain: ::ieschain_core::ChainId,
                height: u64,
            ) -> Result<Option<::ieschain_core::AnyBlock>, $crate::StoreError> {
                self.$field.block(holder, chain, height)
            }
            fn range(
                &self,
                holder: ::ieschain_core::Address,
                chain: ::ieschain_core::ChainId,
                from: u64,
                limit: usize,
            ) -> Result<Vec<::ieschain_core::AnyBlock>, $crate::StoreError> {
                self.$field.range(holder, chain, from, limit)
            }
            fn raw_range(
                &self,
                holder: ::ieschain_core::Address,
                chain: ::ieschain_core::ChainId,
                from: u64,
                limit: usize,
            ) -> Result<Vec<(u64, Vec<u8>)>, $crate::StoreError> {
                self.$field.raw_range(holder, chain, from, limit)
            }
            fn chains(
                &self,
            ) -> Result<
                Vec<(
                    ::ieschain_core::Address,
                    ::ieschain_core::ChainId,
                    ::ieschain_core::validate::Head,
                )>,
                $crate::StoreError,
            > {
                self.$field.chains()
            }
            fn chains_of(
                &self,
                holder: ::ieschain_core::Address,
            ) -> Result<
                Vec<(::ieschain_core::ChainId, ::ieschain_core::validate::Head)>,
                $crate::StoreError,
            > {
                self.$field.chains_of(holder)
            }
            fn locate(
                &self,
                holder: ::ieschain_core::Address,
                hash: ::ieschain_core::Hash,
            ) -> Result<Option<(::ieschain_core::ChainId, u64)>, $crate::StoreError> {
                self.$field.locate(holder, hash)
            }
            fn put_negotiation(
                &self,
                holder: ::ieschain_core::Address,
                id: ::ieschain_core::Hash,
                expires_at_ms: u64,
                payload: &[u8],
            ) -> Result<(), $crate::StoreError> {
                self.$field
                    .put_negotiation(holder, id, expires_at_ms, payload)
            }
            fn negotiation(
                &self,
                holder: ::ieschain_core::Address,
                id: ::ieschain_core::Hash,
            ) -> Result<Option<Vec<u8>>, $crate::StoreError> {
                self.$field.negotiation(holder, id)
            }
            fn remove_negotiation(
                &self,
                holder: ::ieschain_core::Address,
                id: ::ieschain_core::Hash,
            ) -> Result<bool, $crate::StoreError> {
                self.$field.remove_negotiation(holder, id)
            }
            fn expire_negotiations(&self, now_ms: u64) -> Result<usize, $crate::StoreError> {
                self.$field.expire_negotiations(now_ms)
            }
            fn overwrite_unchecked(
                &self,
                holder: ::ieschain_core::Address,
                chain: ::ieschain_core::ChainId,
                height: u64,
                bytes: &[u8],
            ) -> Result<(), $crate::StoreError> {
                self.$field
                    .overwrite_unchecked(holder, chain, height, bytes)
            }
            fn flush(&self) -> Result<(), $crate::StoreError> {
                self.$field.flush()
            }
        }
    };
}
pub(crate) use delegate_chain_store;
