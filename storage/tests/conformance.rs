//! The conformance suite (`ieschain_storage::suite`), run against both stores: every case
//! is one `#[test]` in `memory::` and one in `rocks::`.

use ieschain_core::genesis::Genesis;
use ieschain_storage::{MemoryStore, RocksOptions, RocksStore, StoreError};

/// A fresh in-memory store per case.
mod memory {
    use super::*;

    fn build(genesis: &Genesis) -> Result<((), MemoryStore), StoreError> {
        Ok(((), MemoryStore::new(genesis.clone())))
    }

    ieschain_storage::conformance_tests!(build);
}

/// A fresh RocksDB store in a temporary directory per case, synced as in production.
mod rocks {
    use super::*;

    fn build(genesis: &Genesis) -> Result<(tempfile::TempDir, RocksStore), StoreError> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Io {
            doing: "creating a temporary directory".into(),
            source: std::sync::Arc::new(e),
        })?;
        let store = RocksStore::open(dir.path(), genesis, RocksOptions::default())?;
        Ok((dir, store))
    }

    ieschain_storage::conformance_tests!(build);
}

/// `test_all` runs every case in one go (what an outside implementation would call).
#[test]
fn test_all_runs_on_memory_store() -> Result<(), StoreError> {
    ieschain_storage::suite::test_all(&|genesis: &Genesis| {
        Ok::<_, StoreError>(((), MemoryStore::new(genesis.clone())))
    })
}
