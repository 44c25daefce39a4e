//! Restart (SPEC §7, S2, S7): the whole federation stops and reopens its data directory,
//! and the lanes continue without forks.

use std::collections::BTreeMap;

use ieschain_core::node::Event;
use ieschain_core::{Address, ChainId, ConsortiumId, Hash};

use crate::fixture::*;

/// Submits one external record per member of every consortium (the last one urgent) and
/// waits until each is acknowledged and on its lane at every relay.
async fn round_of_traffic(fed: &mut Fed, serving: &BTreeMap<ConsortiumId, Serving>, n: u64) {
    for lane in LANES {
        let names = fed.members_of(lane);
        for (i, name) in names.iter().enumerate() {
            let body = if i + 1 == names.len() {
                energy_supply(n + i as u64)
            } else {
                data_offer(n + i as u64)
            };
            fed.submit_acked(name, external(lane), body).await;
        }
    }
    let store = fed.store();
    for lane in LANES {
        let acked = fed.acked_in(lane);
        for s in serving.values() {
            let what = format!(
                "lane {lane}'s acknowledged blocks at {}",
                fed.name(&s.relay)
            );
            fed.wait_until(&what, |_| {
                acked.is_subset(&included(&*store, s.relay, lane))
            })
            .await;
        }
    }
}

/// Stop the whole federation and reopen its data directory with the same configuration
/// and seed: the relays continue their lanes (the new run's blocks extend the old ones,
/// every old block is still there unchanged), records submitted after the restart reach
/// every relay, no lane forks, and `verify` passes after each run.
#[tokio::test]
async fn reopened_federation_continues_its_lanes_without_forks() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = config(6, Some(100), NO_ROTATION_MS, HEARTBEAT_MS);

    let mut fed = Fed::start(&config, &data, true);
    let serving = fed.ready().await;
    round_of_traffic(&mut fed, &serving, 0).await;
    let store = fed.store();
    let mut old: BTreeMap<(Address, ChainId), (u64, Hash)> = BTreeMap::new();
    for (holder, chain, h) in store.chains().unwrap() {
        old.insert((holder, chain), (h.height, h.hash));
    }
    let old_heads: BTreeMap<ConsortiumId, u64> = LANES
        .iter()
        .map(|lane| {
            (
                *lane,
                head(&*store, serving[lane].relay, ChainId::Relay(*lane)),
            )
        })
        .collect();
    drop(store);
    fed.shutdown();
    verify_dir(&data);

    let mut fed = Fed::start(&config, &data, true);
    let serving2 = fed.ready_above(&old_heads).await;
    round_of_traffic(&mut fed, &serving2, 100).await;
    // The relays of the first run serve on: their period (60 s) has not passed, and a
    // term recovered from the chain starts again when the supervisor does.
    for lane in LANES {
        assert_eq!(serving2[&lane].relay, serving[&lane].relay, "lane {lane}");
    }
    let elections: Vec<String> = fed
        .log
        .iter()
        .filter(|e| matches!(e, Event::Elected { .. }))
        .map(brief)
        .collect();
    assert!(
        elections.is_empty(),
        "elections after the restart: {elections:?}"
    );
    // The handle knows who serves from the recovered chain, with no election to tell it.
    let known: BTreeMap<ConsortiumId, (u64, Serving)> = fed
        .handle
        .relays()
        .into_iter()
        .map(|(lane, (epoch, relay, backup))| (lane, (epoch, Serving { relay, backup })))
        .collect();
    let expected: BTreeMap<ConsortiumId, (u64, Serving)> =
        serving2.iter().map(|(lane, s)| (*lane, (1, *s))).collect();
    assert_eq!(known, expected, "the handle's relays after the restart");
    let store = fed.store();
    for ((holder, chain), (height, hash)) in &old {
        let held = store
            .block(*holder, *chain, *height)
            .unwrap()
            .unwrap_or_else(|| panic!("{} lost {chain} height {height}", holder.short()));
        assert_eq!(held.hash(), *hash, "{} rewrote {chain}", holder.short());
    }
    for lane in LANES {
        let new_head = head(&*store, serving2[&lane].relay, ChainId::Relay(lane));
        assert!(new_head > old_heads[&lane], "lane {lane} did not grow");
        // Every relay holds the lane up to the blocks of the new run.
        for s in serving2.values() {
            assert!(
                head(&*store, s.relay, ChainId::Relay(lane)) > old_heads[&lane],
                "{} did not receive lane {lane}'s new blocks",
                fed.name(&s.relay)
            );
        }
    }
    drop(store);
    fed.shutdown();
    assert!(verify_dir(&data) > 0);
}

/// Shutting down ends the event streams: a subscriber reads what was sent before, then
/// `Closed`, instead of waiting for ever; a subscription made after shutdown is ended at
/// once.
#[tokio::test]
async fn shutdown_ends_the_event_streams() {
    use tokio::sync::broadcast::error::RecvError;
    let dir = tempfile::tempdir().unwrap();
    let config = config(6, Some(100), NO_ROTATION_MS, HEARTBEAT_MS);
    let mut fed = Fed::start(&config, &dir.path().join("data"), true);
    fed.ready().await;
    let handle = fed.handle.clone();
    let mut events = handle.subscribe();
    fed.shutdown();
    let ended = tokio::time::timeout(PATIENCE, async {
        loop {
            match events.recv().await {
                Ok(_) | Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream did not end after shutdown");
    let mut late = handle.subscribe();
    assert!(matches!(late.recv().await, Err(RecvError::Closed)));
}

/// Dropping the host's last handle shuts the federation down, as `shutdown` would: the
/// event stream ends and the data directory is released (it opens again).
#[test]
fn dropping_the_last_handle_shuts_down() {
    use tokio::sync::broadcast::error::RecvError;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = config(6, Some(100), NO_ROTATION_MS, HEARTBEAT_MS);
    let handle = ieschain::federation::Federation::builder(config)
        .data_dir(&data)
        .seed(SEED)
        .workload(false)
        .start_blocking()
        .unwrap();
    let mut events = handle.subscribe();
    let second = handle.clone();
    drop(handle);
    // One handle is left: the federation runs on, and the directory stays locked.
    assert!(ieschain_storage::RocksStore::open_existing(&data).is_err());
    drop(second);
    let (done, ended) = std::sync::mpsc::channel();
    std::thread::spawn(move || loop {
        match events.blocking_recv() {
            Ok(_) | Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => {
                let _ = done.send(());
                return;
            }
        }
    });
    assert!(
        ended.recv_timeout(PATIENCE).is_ok(),
        "the event stream did not end once the last handle was dropped"
    );
    ieschain_storage::RocksStore::open_existing(&data).unwrap();
}

/// A subscription made on the builder, before the start, sees the federation from its
/// first event: the initial election of every lane.
#[test]
fn a_subscription_before_the_start_sees_the_initial_elections() {
    use ieschain_core::election::ElectionReason;
    let dir = tempfile::tempdir().unwrap();
    let config = config(6, Some(100), NO_ROTATION_MS, HEARTBEAT_MS);
    let mut builder = ieschain::federation::Federation::builder(config)
        .data_dir(dir.path().join("data"))
        .seed(SEED)
        .workload(false);
    let mut events = builder.subscribe();
    let handle = builder.start_blocking().unwrap();
    let (done, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut initial = std::collections::BTreeSet::new();
        while let Ok(event) = events.blocking_recv() {
            if let Event::Elected {
                consortium,
                reason: ElectionReason::Initial,
                ..
            } = event
            {
                initial.insert(consortium);
                if initial.len() == LANES.len() {
                    let _ = done.send(initial);
                    return;
                }
            }
        }
    });
    let initial = seen.recv_timeout(PATIENCE);
    handle.shutdown_blocking().unwrap();
    assert_eq!(
        initial
            .expect("every lane's initial election was seen")
            .len(),
        LANES.len()
    );
}
