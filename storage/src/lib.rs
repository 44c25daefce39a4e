//! ieschain's chain store: every node's copies of the relay, consortium and private chains,
//! its negotiation state and the federation's genesis record, in one RocksDB database per
//! data directory (SPEC §7, §12 D1), behind typed schemas; and an in-memory twin with the
//! same semantics.
//!
//! # Layout
//! - [`store`]: the [`ChainStore`] trait and its invariants.
//! - [`schema`]: the column families, the key layout (drawn there) and their codecs.
//! - [`rocks`]: [`RocksStore`], the durable store, tuned for bounded memory.
//! - [`memory`]: [`MemoryStore`], the in-memory twin.
//! - [`holder`]: [`HolderStore`], one node's handle, scoped to its own key prefix.
//! - [`verify()`]: checks every chain of every holder and names the first bad block.
//! - [`suite`]: the conformance suite both stores pass.
//! - [`error`]: [`StoreError`], what went wrong and where.
//!
//! The chain logic (next-block checks, group commit, heads, negotiations) is written once,
//! over a private key-value seam that RocksDB and the in-memory maps implement; so raw
//! bytes never leave this crate except where asked for ([`ChainStore::raw_range`],
//! [`ChainStore::overwrite_unchecked`]).
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod engine;
pub mod error;
pub mod holder;
mod kv;
pub mod memory;
pub mod rocks;
pub mod schema;
pub mod store;
pub mod suite;
pub mod verify;

pub use error::{NotNext, StoreError};
pub use holder::HolderStore;
pub use memory::MemoryStore;
pub use rocks::{RocksOptions, RocksStore};
pub use store::ChainStore;
pub use verify::{verify, VerifyError, VerifySummary};
