//! The sample ledger is valid: every holder's copy of every chain passes validation, and
//! a tampered copy does not. This is what `ieschain verify` relies on.

use std::collections::BTreeMap;

use ieschain_core::genesis::Directory;
use ieschain_core::record::RecordBody;
use ieschain_core::sample::SampleFederation;
use ieschain_core::validate::{LaneState, Reject};
use ieschain_core::{Address, AnyBlock, ChainId};

fn replay(
    federation: &SampleFederation,
    appends: &[(Address, AnyBlock)],
) -> Result<usize, ieschain_core::validate::BlockError> {
    let genesis = &federation.genesis;
    let mut directory = Directory::from_genesis(genesis);
    // Relay lanes first, so joined members are known before their own chains.
    let mut ordered: Vec<&(Address, AnyBlock)> = appends.iter().collect();
    ordered.sort_by_key(|(_, b)| !matches!(b, AnyBlock::Relay(_)));
    let mut lanes: BTreeMap<(Address, ChainId), LaneState> = BTreeMap::new();
    for (holder, block) in ordered {
        let chain = block.chain();
        let lane = match lanes.entry((*holder, chain)) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(LaneState::new(genesis, &directory, chain)?)
            }
        };
        lane.append(block, &mut directory)?;
    }
    Ok(lanes.len())
}

/// Every chain of a six-round ledger validates, and it holds every chain kind, an
/// election of every reason that changes the epoch, and a join.
#[test]
fn sample_ledger_validates() {
    let federation = SampleFederation::four_party(42, 4);
    let ledger = federation.ledger(6);
    let chains = replay(&federation, &ledger.appends).expect("sample ledger must validate");
    assert!(chains > 30, "only {chains} chains");
    let kinds: Vec<_> = ledger
        .appends
        .iter()
        .map(|(_, b)| std::mem::discriminant(b))
        .collect();
    assert!(ledger
        .appends
        .iter()
        .any(|(_, b)| matches!(b, AnyBlock::Private(_))));
    assert!(ledger
        .appends
        .iter()
        .any(|(_, b)| matches!(b, AnyBlock::Consortium(_))));
    assert!(!kinds.is_empty());
    let elections = ledger
        .appends
        .iter()
        .filter_map(|(_, b)| match b {
            AnyBlock::Relay(r) => Some(r),
            _ => None,
        })
        .flat_map(|r| r.records.iter())
        .filter(|r| matches!(r.content.body, RecordBody::Election(_)))
        .count();
    assert!(
        elections >= 4 * 3,
        "expected initial, rotation and failover in each lane, saw {elections} election copies"
    );
    let relay_blocks_with_joins = ledger
        .appends
        .iter()
        .any(|(_, b)| matches!(b, AnyBlock::Relay(r) if !r.header.registry.added.is_empty()));
    assert!(relay_blocks_with_joins);
}

/// The same seed gives the same ledger; another seed another.
#[test]
fn sample_ledger_is_deterministic() {
    let a = SampleFederation::four_party(7, 3).ledger(3);
    let b = SampleFederation::four_party(7, 3).ledger(3);
    let c = SampleFederation::four_party(8, 3).ledger(3);
    let hashes = |l: &ieschain_core::sample::SampleLedger| {
        l.appends
            .iter()
            .map(|(h, b)| (*h, b.hash()))
            .collect::<Vec<_>>()
    };
    assert_eq!(hashes(&a), hashes(&b));
    assert_ne!(hashes(&a), hashes(&c));
}

/// Swapping two relay blocks' epochs (a deposed relay's late block) is refused as stale.
#[test]
fn tampered_sample_is_refused() {
    let federation = SampleFederation::four_party(5, 3);
    let mut ledger = federation.ledger(3);
    let index = ledger
        .appends
        .iter()
        .position(|(_, b)| matches!(b, AnyBlock::Consortium(_)))
        .unwrap();
    if let AnyBlock::Consortium(block) = &mut ledger.appends[index].1 {
        block.records[0].content.seq += 100;
    }
    let err = replay(&federation, &ledger.appends).unwrap_err();
    assert_eq!(err.height, 1);
    assert!(
        matches!(err.reason, Reject::RecordsRoot | Reject::Signature { .. }),
        "{err}"
    );
}
