//! `HolderStore`: a node's handle reaches only its own prefix of the shared store (SPEC
//! §12 D1).

#![allow(clippy::unwrap_used)] // Tests may unwrap (STYLE "Gates").

use std::sync::Arc;

use ieschain_core::sample::SampleFederation;
use ieschain_core::{ChainId, Hash};
use ieschain_storage::{ChainStore, HolderStore, MemoryStore, RocksOptions, RocksStore};

/// Two holders' handles on one store see only their own chains and negotiations, while
/// the shared store lists both.
fn scoped_handles_see_only_their_own(store: Arc<dyn ChainStore>, federation: &SampleFederation) {
    let ledger = federation.ledger(2);
    let holders: Vec<_> = {
        let mut h: Vec<_> = ledger.appends.iter().map(|(h, _)| *h).collect();
        h.sort();
        h.dedup();
        h
    };
    let (a, b) = (holders[0], holders[1]);
    let handle_a = HolderStore::new(store.clone(), a);
    let handle_b = HolderStore::new(store.clone(), b);
    assert_eq!(handle_a.holder(), a);
    assert_eq!(handle_a.genesis(), &federation.genesis);
    let own: Vec<_> = ledger
        .appends
        .iter()
        .filter(|(h, _)| *h == a)
        .map(|(_, b)| b.clone())
        .collect();
    handle_a.append_many(&own).unwrap();
    for (holder, block) in ledger.appends.iter().filter(|(h, _)| *h == b) {
        handle_b.append(block).unwrap();
        assert_eq!(*holder, b);
    }
    let chains_a = handle_a.chains().unwrap();
    assert!(!chains_a.is_empty());
    let all = store.chains().unwrap();
    assert_eq!(
        chains_a,
        all.iter()
            .filter(|(h, _, _)| *h == a)
            .map(|(_, c, head)| (*c, *head))
            .collect::<Vec<_>>()
    );
    for (chain, head) in &chains_a {
        assert_eq!(handle_a.head(*chain).unwrap(), Some(*head));
        let blocks = handle_a.range(*chain, 1, usize::MAX).unwrap();
        assert_eq!(blocks.len() as u64, head.height);
        assert_eq!(
            handle_a
                .block(*chain, head.height)
                .unwrap()
                .map(|b| b.hash()),
            Some(head.hash)
        );
        assert_eq!(handle_a.raw_range(*chain, 1, 1).unwrap().len(), 1);
        assert_eq!(
            handle_a.locate(head.hash).unwrap(),
            Some((*chain, head.height))
        );
        if !chains_a_contains(&handle_b, chain) {
            assert_eq!(handle_b.head(*chain).unwrap(), None, "{chain}");
            assert_eq!(handle_b.locate(head.hash).unwrap(), None);
        }
    }
    handle_a.put_negotiation(Hash([5; 32]), 10, b"a's").unwrap();
    assert_eq!(
        handle_a.negotiation(Hash([5; 32])).unwrap(),
        Some(b"a's".to_vec())
    );
    assert_eq!(handle_b.negotiation(Hash([5; 32])).unwrap(), None);
    assert!(!handle_b.remove_negotiation(Hash([5; 32])).unwrap());
    assert!(handle_a.remove_negotiation(Hash([5; 32])).unwrap());
    let (chain, _) = chains_a[0];
    handle_a.overwrite_unchecked(chain, 1, b"tampered").unwrap();
    assert!(handle_a.block(chain, 1).is_err());
    handle_a.flush().unwrap();
}

fn chains_a_contains(handle: &HolderStore, chain: &ChainId) -> bool {
    handle.chains().unwrap().iter().any(|(c, _)| c == chain)
}

/// Over the in-memory store.
#[test]
fn holder_handles_are_scoped_in_memory() {
    let federation = SampleFederation::four_party(31, 2);
    let store: Arc<dyn ChainStore> = Arc::new(MemoryStore::new(federation.genesis.clone()));
    scoped_handles_see_only_their_own(store, &federation);
}

/// Over RocksDB.
#[test]
fn holder_handles_are_scoped_in_rocksdb() {
    let federation = SampleFederation::four_party(31, 2);
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ChainStore> = Arc::new(
        RocksStore::open(dir.path(), &federation.genesis, RocksOptions::default()).unwrap(),
    );
    scoped_handles_see_only_their_own(store, &federation);
}

/// Debug output of a store names its engine and genesis hash, not 10,000 registry entries.
#[test]
fn debug_output_stays_short() {
    let federation = SampleFederation::new(3, &["a", "b"], 500);
    let store = MemoryStore::new(federation.genesis.clone());
    let text = format!(
        "{:?}",
        HolderStore::new(Arc::new(store), federation.members[0].entry.address)
    );
    assert!(text.len() < 400, "{text}");
    assert!(text.contains(&federation.genesis.hash().short()), "{text}");
}
