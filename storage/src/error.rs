//! [`StoreError`]: every way a chain store can fail, each saying what it was doing to what
//! (STYLE "typed errors per layer"; SPEC §7 "a corrupt value is an error that names what was
//! being read").
//!
//! Holders and chains are shown in their short forms (`ab12cd34`, `relay/#0`): storage
//! knows addresses, not names. `verify` renders names from the genesis record.

use std::path::PathBuf;
use std::sync::Arc;

use ieschain_core::codec::CodecError;
use ieschain_core::validate::Head;
use ieschain_core::{Address, ChainId, Hash};
use thiserror::Error;

/// Why a chain store operation failed.
#[derive(Clone, Debug, Error)]
pub enum StoreError {
    /// RocksDB refused an operation.
    #[error("{doing}: {source}")]
    Rocks {
        /// What the store was doing, and to what: `reading block relay/#0 height 3 of
        /// holder ab12cd34`.
        doing: String,
        /// RocksDB's error.
        source: rocksdb::Error,
    },
    /// A stored value or key did not decode (SPEC §7 "bad input").
    #[error("{what}: corrupt stored value: {source}")]
    Corrupt {
        /// What was being read: `reading block private/ab12cd34 height 2 of holder
        /// ab12cd34`.
        what: String,
        /// Why it did not decode.
        source: CodecError,
    },
    /// `append` was given a block that does not extend the head of its chain. Boxed, so
    /// that every `Result<_, StoreError>` stays small; match it as
    /// `StoreError::NotNext { .. }` or `StoreError::NotNext(not_next)`.
    #[error(transparent)]
    NotNext(Box<NotNext>),
    /// A block's encoding exceeds what the codec will ever decode, so it could not be read
    /// back.
    #[error(
        "appending block {chain} height {height} to holder {}: its encoding of {size} bytes \
         exceeds the decode limit of {limit} bytes",
        holder.short()
    )]
    TooLarge {
        /// The holder.
        holder: Address,
        /// The chain.
        chain: ChainId,
        /// The block's height.
        height: u64,
        /// Its encoded size.
        size: usize,
        /// [`ieschain_core::codec::MAX_DECODE`].
        limit: usize,
    },
    /// The data directory was created for another federation (SPEC §12 D2).
    #[error(
        "data directory {} belongs to another federation: its genesis hash is {stored}, \
         this configuration's is {given}; use the original configuration, seed and keys, or another \
         data directory",
        path.display()
    )]
    GenesisMismatch {
        /// The data directory.
        path: PathBuf,
        /// Hash of the genesis record stored in it.
        stored: Hash,
        /// Hash of the genesis record given to `open`.
        given: Hash,
    },
    /// `open_existing` was pointed at a path that does not exist.
    #[error("data directory {} does not exist", path.display())]
    MissingDir {
        /// The path.
        path: PathBuf,
    },
    /// A file, not a directory, is where the data directory should be.
    #[error("data directory {} is not a directory: a file is in the way", path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// The directory exists but does not hold an ieschain store.
    #[error("{} is not an ieschain data directory: {why}", path.display())]
    NotADataDir {
        /// The path.
        path: PathBuf,
        /// What is missing.
        why: String,
    },
    /// The store was written by an incompatible version of ieschain.
    #[error(
        "data directory {} has store format {found}, this build reads format {supported}",
        path.display()
    )]
    UnsupportedFormat {
        /// The data directory.
        path: PathBuf,
        /// The format found.
        found: u32,
        /// The format this build reads and writes.
        supported: u32,
    },
    /// A filesystem operation failed.
    #[error("{doing}: {source}")]
    Io {
        /// What the store was doing: `creating data directory ./ieschain-data`.
        doing: String,
        /// The error, shared so that `StoreError` stays `Clone`.
        source: Arc<std::io::Error>,
    },
    /// A column family that every store has is missing from an open database: an
    /// invariant of [`crate::RocksStore::open`] was broken.
    #[error("{doing}: column family {cf} is missing")]
    MissingColumnFamily {
        /// What the store was doing.
        doing: String,
        /// The column family.
        cf: &'static str,
    },
}

/// A block that is not the next one of its chain: its height is not the head's + 1, or its
/// `prev` is not the head's hash.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error(
    "appending block {chain} height {height} to holder {}: not the next block: the head is \
     height {} ({}), the block has height {height} and prev {}",
    holder.short(), head.height, head.hash.short(), prev.short()
)]
pub struct NotNext {
    /// The holder whose copy was being extended.
    pub holder: Address,
    /// The chain.
    pub chain: ChainId,
    /// The block's height.
    pub height: u64,
    /// The block's `prev`.
    pub prev: Hash,
    /// The head it had to extend: the block must have height `head.height + 1` and prev
    /// `head.hash`.
    pub head: Head,
}

impl StoreError {
    /// Whether this is [`StoreError::NotNext`]: the block does not extend the head.
    pub fn is_not_next(&self) -> bool {
        matches!(self, StoreError::NotNext { .. })
    }

    /// Whether this is [`StoreError::Corrupt`]: a stored value did not decode.
    pub fn is_corrupt(&self) -> bool {
        matches!(self, StoreError::Corrupt { .. })
    }
}
