//! Fixtures of the protocol tests beside the federation tests' ones: the configuration,
//! the parties, readers of the records on each chain, and waits on them.

use std::path::PathBuf;
use std::time::Duration;

use ieschain_core::node::Event;
use ieschain_core::registry::RegistryEntry;
use ieschain_core::{Address, AnyBlock, ChainId, ConsortiumId, Record};
use ieschain_storage::ChainStore;
use tempfile::TempDir;

pub use crate::fixture::*;

/// The handle's deadline on a protocol run: above the federation's own 10 s, so that a
/// run that fails inside the federation reports the member's error, not a timeout.
pub const DEADLINE: Duration = Duration::from_secs(20);
/// The relay's `max_wait` in these tests: a data offer waits this long for the window.
pub const MAX_WAIT_MS: u64 = 150;
/// The service consortium (the four-party lanes are source, grid, service, load).
pub const SERVICE: ConsortiumId = ConsortiumId(2);

/// A source member that is not relay capable, so never the relay it sells through.
pub const SELLER: &str = "source-rooftop";
/// A load member that is not relay capable.
pub const BUYER: &str = "load-school";
/// Another one.
pub const BUYER_2: &str = "load-home-2";
/// A load member selling its consumption data; not relay capable.
pub const DATA_SELLER: &str = "load-home-1";
/// A service member buying data; not relay capable.
pub const DATA_BUYER: &str = "service-audit";
/// The grid members, in genesis order: their lines are numbered so.
pub const GRID_MEMBERS: [&str; 4] = ["grid-north", "grid-south", "grid-east", "grid-west"];

/// A running four-party federation in a fresh temporary directory, with window 6,
/// `max_wait` [`MAX_WAIT_MS`], no rotation, the given heartbeat, and fsynced appends.
/// Returns the directory (dropped last), the data directory and the federation.
pub fn start_with(window: u32, max_wait_ms: u64, heartbeat_ms: u64) -> (TempDir, PathBuf, Fed) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let data = dir.path().join("data");
    let config = config(window, Some(max_wait_ms), NO_ROTATION_MS, heartbeat_ms);
    let fed = Fed::start(&config, &data, true);
    (dir, data, fed)
}

/// [`start_with`] the defaults of these tests.
pub fn start() -> (TempDir, PathBuf, Fed) {
    start_with(6, MAX_WAIT_MS, HEARTBEAT_MS)
}

/// Stops the federation and runs `ieschain verify` on its data directory.
pub fn shutdown_and_verify(fed: Fed, data: &std::path::Path) {
    fed.shutdown();
    let blocks = verify_dir(data);
    assert!(blocks > 0, "verify checked no block");
}

// ----- reading the chains -----

/// Every record on `holder`'s copy of relay lane `lane`, with the height of its relay
/// block: the records of the included consortium blocks, then the relay's own.
pub fn relay_records(
    store: &dyn ChainStore,
    holder: Address,
    lane: ConsortiumId,
) -> Vec<(u64, Record)> {
    relay_lane(store, holder, lane)
        .into_iter()
        .flat_map(|block| {
            let height = block.header.height;
            block
                .blocks
                .into_iter()
                .flat_map(|b| b.records)
                .chain(block.records)
                .map(move |r| (height, r))
        })
        .collect()
}

/// Every record on `holder`'s copy of the whole relay chain, with its lane.
pub fn relay_chain_records(store: &dyn ChainStore, holder: Address) -> Vec<(ConsortiumId, Record)> {
    LANES
        .iter()
        .flat_map(|lane| {
            relay_records(store, holder, *lane)
                .into_iter()
                .map(move |(_, r)| (*lane, r))
        })
        .collect()
}

/// Every record on `holder`'s copy of `chain` (a consortium lane or a private chain).
pub fn chain_records(store: &dyn ChainStore, holder: Address, chain: ChainId) -> Vec<Record> {
    chain_of(store, holder, chain)
        .iter()
        .flat_map(|b| match b {
            AnyBlock::Relay(relay) => relay
                .blocks
                .iter()
                .flat_map(|c| c.records.iter().cloned())
                .chain(relay.records.iter().cloned())
                .collect::<Vec<_>>(),
            other => other.records().to_vec(),
        })
        .collect()
}

/// Every registry entry added by a relay block of `holder`'s copy of the relay chain, with
/// its lane.
pub fn registry_added(
    store: &dyn ChainStore,
    holder: Address,
) -> Vec<(ConsortiumId, RegistryEntry)> {
    LANES
        .iter()
        .flat_map(|lane| {
            relay_lane(store, holder, *lane)
                .into_iter()
                .flat_map(move |b| b.header.registry.added.into_iter().map(move |e| (*lane, e)))
        })
        .collect()
}

/// Waits until `find` finds something in the federation (asked after every event and
/// every 10 ms), and returns it.
pub async fn wait_for<T>(fed: &mut Fed, what: &str, mut find: impl FnMut(&Fed) -> Option<T>) -> T {
    let mut found = None;
    fed.wait_until(what, |fed| {
        found = find(fed);
        found.is_some()
    })
    .await;
    found.expect("wait_until returned, so it was found")
}

/// How many rejections of `kind` `node` emitted in `events`.
pub fn rejections(events: &[Event], node: Address, kind: &str) -> usize {
    events
        .iter()
        .filter(
            |e| matches!(e, Event::Rejected { node: n, kind: k, .. } if *n == node && *k == kind),
        )
        .count()
}

/// The relay that serves `lane` now, as its members' nodes say.
pub async fn relay_of(fed: &Fed, lane: ConsortiumId) -> Address {
    fed.serving()
        .await
        .get(&lane)
        .unwrap_or_else(|| panic!("lane {lane} has no single relay"))
        .relay
}

/// The registry root in the head block of `holder`'s copy of relay lane `lane`.
pub fn registry_root(
    store: &dyn ChainStore,
    holder: Address,
    lane: ConsortiumId,
) -> ieschain_core::Hash {
    relay_lane(store, holder, lane)
        .last()
        .unwrap_or_else(|| panic!("no relay block in lane {lane}"))
        .header
        .registry
        .root
}

/// Makes `lane`'s relay produce another relay block, carrying a block of member `name`,
/// and waits until `holder` stores it: whatever the relay had pending for its next block
/// (a registry change) has gone out by then.
pub async fn next_relay_block(fed: &mut Fed, name: &str, lane: ConsortiumId, holder: Address) {
    let member = fed.address(name);
    let height = fed
        .submit_acked(name, external(lane), data_offer(900))
        .await;
    let store = fed.store();
    fed.wait_until(
        &format!("{name}'s block {height} in relay lane {lane}"),
        |_| included(&*store, holder, lane).contains(&(member, height)),
    )
    .await;
}

/// No relay block of the relay chain, as any serving relay holds it, registered `address`
/// or `name`, and the registry root of lane `lane` is still `root`, after another relay
/// block of that lane (carrying a block of member `name_for_block`) went out.
pub async fn assert_registry_unchanged(
    fed: &mut Fed,
    lane: ConsortiumId,
    root: ieschain_core::Hash,
    address: Address,
    name: &str,
    name_for_block: &str,
) {
    let relay = relay_of(fed, lane).await;
    next_relay_block(fed, name_for_block, lane, relay).await;
    let store = fed.store();
    assert_eq!(
        registry_root(&*store, relay, lane),
        root,
        "the registry of lane {lane} changed"
    );
    for serving in fed.serving().await.values() {
        let added = registry_added(&*store, serving.relay);
        assert!(
            !added
                .iter()
                .any(|(_, e)| e.address == address || e.name == name),
            "a relay block registered {name}: {added:?}"
        );
    }
}

/// The number of grid member `name`'s line: its position in the grid consortium's genesis
/// list (which is ordered by address, not as the configuration declares the members).
pub fn line_of(fed: &Fed, name: &str) -> u32 {
    let address = fed.address(name);
    fed.handle.genesis().consortiums[GRID.0 as usize]
        .members
        .iter()
        .position(|m| m.address == address)
        .expect("a grid member") as u32
}
