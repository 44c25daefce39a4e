//! The key-value seam under both stores: ordered byte maps per column family, read by point
//! and by prefix, written by atomic batches.
//!
//! [`crate::RocksStore`] and [`crate::MemoryStore`] differ only here; the chain logic
//! (next-block checks, group commit, heads, negotiations) is written once, in
//! [`crate::kv`], over typed [`Schema`]s. So the two stores have the same semantics by
//! construction, and the conformance suite checks the engines' part: atomic batches,
//! ordered prefix scans and durability.

use crate::error::StoreError;
use crate::schema::{Cf, KeyCodec, Schema, ValueCodec};

/// One write of a batch: a value, or a deletion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// Sets the key.
    Put(Vec<u8>),
    /// Removes the key.
    Delete,
}

/// Writes applied all together or not at all.
#[derive(Clone, Debug, Default)]
pub(crate) struct Batch {
    /// The writes, in order; a later write to a key wins.
    pub(crate) ops: Vec<(Cf, Vec<u8>, Op)>,
}

impl Batch {
    /// Sets `key` to `value` in schema `S`.
    pub(crate) fn put<S: Schema>(&mut self, key: &S::Key, value: &S::Value) {
        self.ops
            .push((S::CF, key.encode_key(), Op::Put(value.encode_value())));
    }

    /// Sets `key` in `cf` to bytes that are already encoded.
    pub(crate) fn put_encoded(&mut self, cf: Cf, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push((cf, key, Op::Put(value)));
    }

    /// Removes the already-encoded `key` from `cf`.
    pub(crate) fn delete_encoded(&mut self, cf: Cf, key: Vec<u8>) {
        self.ops.push((cf, key, Op::Delete));
    }

    /// Removes `key` from schema `S`.
    pub(crate) fn delete<S: Schema>(&mut self, key: &S::Key) {
        self.ops.push((S::CF, key.encode_key(), Op::Delete));
    }

    /// Whether the batch writes nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Why an engine operation failed, before the store adds what it was doing.
#[derive(Debug)]
pub(crate) enum EngineError {
    /// RocksDB's error.
    Rocks(rocksdb::Error),
    /// A column family is not open.
    MissingCf(&'static str),
}

impl EngineError {
    /// The store error, saying what was being done.
    pub(crate) fn during(self, doing: impl FnOnce() -> String) -> StoreError {
        match self {
            EngineError::Rocks(source) => StoreError::Rocks {
                doing: doing(),
                source,
            },
            EngineError::MissingCf(cf) => StoreError::MissingColumnFamily { doing: doing(), cf },
        }
    }
}

impl From<rocksdb::Error> for EngineError {
    fn from(e: rocksdb::Error) -> Self {
        EngineError::Rocks(e)
    }
}

/// Entries of a scan: (key, value), ascending by key.
pub(crate) type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Ordered byte maps, one per column family.
pub(crate) trait Engine: Send + Sync + std::fmt::Debug {
    /// The value at `key`.
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError>;

    /// Up to `limit` entries whose keys start with `prefix` and are `>= from`, ascending.
    /// `from` starts with `prefix`, or is `prefix` itself.
    fn scan(
        &self,
        cf: Cf,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Entries, EngineError>;

    /// Applies every write of `batch` atomically; when `sync`, it is durable (WAL fsync)
    /// before this returns.
    fn write(&self, batch: Batch, sync: bool) -> Result<(), EngineError>;

    /// Makes everything written so far durable, and flushes memtables.
    fn flush(&self) -> Result<(), EngineError>;
}
