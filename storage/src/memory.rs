//! [`MemoryStore`]: the in-memory twin of [`crate::RocksStore`], for simulations and tests.
//!
//! It keeps the same keys and values as the RocksDB store, in one `BTreeMap` per column
//! family behind a `Mutex`, and runs the same chain logic (the private `kv` module). A
//! batch is applied under one lock, so it is atomic; nothing is durable.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard, PoisonError};

use ieschain_core::genesis::Genesis;

use crate::engine::{Batch, Engine, EngineError, Entries, Op};
use crate::kv::{delegate_chain_store, KvStore};
use crate::schema::Cf;

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

/// One ordered map per column family.
#[derive(Default)]
struct MemEngine {
    maps: Mutex<[Map; Cf::ALL.len()]>,
}

impl std::fmt::Debug for MemEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let maps = self.maps();
        let mut out = f.debug_struct("MemEngine");
        for cf in Cf::ALL {
            out.field(cf.name(), &maps[cf.index()].len());
        }
        out.finish()
    }
}

impl MemEngine {
    fn maps(&self) -> MutexGuard<'_, [Map; Cf::ALL.len()]> {
        // Batches are applied with plain map inserts that do not panic, so a poisoned lock
        // guards consistent maps.
        self.maps.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Engine for MemEngine {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        Ok(self.maps()[cf.index()].get(key).cloned())
    }

    fn scan(
        &self,
        cf: Cf,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Entries, EngineError> {
        let maps = self.maps();
        Ok(maps[cf.index()]
            .range::<[u8], _>((Bound::Included(from), Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn write(&self, batch: Batch, _sync: bool) -> Result<(), EngineError> {
        let mut maps = self.maps();
        for (cf, key, op) in batch.ops {
            let map = &mut maps[cf.index()];
            match op {
                Op::Put(value) => {
                    map.insert(key, value);
                }
                Op::Delete => {
                    map.remove(&key);
                }
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), EngineError> {
        Ok(())
    }
}

/// A chain store in memory, with the same semantics as [`crate::RocksStore`] but nothing
/// durable.
#[derive(Debug)]
pub struct MemoryStore {
    inner: KvStore<MemEngine>,
}

impl MemoryStore {
    /// An empty store for the federation of `genesis`, with its genesis record written as
    /// a RocksDB store's first open writes it.
    pub fn new(genesis: Genesis) -> MemoryStore {
        let engine = MemEngine::default();
        // Writing to memory cannot fail.
        let _ = engine.write(KvStore::<MemEngine>::genesis_batch(&genesis), false);
        MemoryStore {
            inner: KvStore::new(engine, genesis, false),
        }
    }
}

delegate_chain_store!(MemoryStore, inner);
