//! Hostile envelopes (SPEC §8, §12 D9): forged, unknown sender, replay and stale epoch
//! are each rejected and counted, and the federation keeps running.

use ieschain_core::block::ChainBlock;
use ieschain_core::message::{Envelope, Message};
use ieschain_core::node::Event;
use ieschain_core::{AnyBlock, ChainId, ConsortiumBlock, Domain, Keypair, RecordContent};

use crate::fixture::*;

/// Forged envelopes (payload, header or signature altered after signing), an envelope from
/// an unknown sender, a replay (a member's block carrying a different record under an
/// (author, seq) already accepted) and a stale epoch (a deposed relay's late block) are
/// each rejected AND counted by the relay that receives them; an exact duplicate of an
/// accepted block is not counted as hostile; nothing hostile is stored; and the federation
/// keeps acknowledging and committing records afterwards.
#[tokio::test]
async fn each_is_rejected_counted_and_survived() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut fed = Fed::start(
        &config(6, Some(100), NO_ROTATION_MS, HEARTBEAT_MS),
        &data,
        true,
    );
    let serving = fed.ready().await;
    let relay = serving[&GRID].relay;
    let victim = "grid-west"; // not relay capable: it talks only to its relay
    let victim_address = fed.address(victim);
    let key = fed.handle.key_of(victim).unwrap();
    let first = fed
        .submit_acked(victim, external(GRID), data_offer(1))
        .await;
    let store = fed.store();
    let lane_chain = ChainId::Consortium(GRID, victim_address);
    let accepted = match store.block(victim_address, lane_chain, first).unwrap() {
        Some(AnyBlock::Consortium(block)) => block,
        other => panic!("the victim's block is not stored: {other:?}"),
    };
    let baseline = fed.handle.stats();
    let mark = fed.mark();

    // Forged: a valid envelope altered after signing. Rejected before its seq is marked
    // seen, so the seqs used here disturb nothing.
    let submit = Message::Submit {
        block: accepted.clone(),
    };
    let mut payload = Envelope::seal(&key, relay, 0, 5_000, &submit);
    let mut altered = payload.payload.to_vec();
    let last = altered.len() - 1;
    altered[last] ^= 1;
    payload.payload = altered.into();
    let mut header = Envelope::seal(&key, relay, 0, 5_001, &submit);
    header.header.seq += 1;
    let mut signature = Envelope::seal(&key, relay, 0, 5_003, &submit);
    signature.signature.0[7] ^= 0x20;
    for forged in [payload, header, signature] {
        fed.handle.inject(forged);
    }
    // Unknown sender: well signed, by a key the federation never registered.
    let stranger = Keypair::derive(Domain::NodeKey, SEED, "stranger");
    fed.handle.inject(Envelope::seal(
        &stranger,
        relay,
        0,
        1,
        &Message::Discover {
            consortium: ieschain_core::ConsortiumId(1),
        },
    ));
    // Replay (D9): the victim's next block, but its record reuses seq 1, already accepted.
    // The envelope itself is fresh and well signed. Its seq jumps ahead of the victim's
    // own by less than the inbox's replay window, so the victim's later envelopes to the
    // relay are still accepted.
    let replayed = RecordContent {
        author: victim_address,
        seq: accepted.records[0].content.seq,
        created_at: now_ms(),
        audience: external(GRID),
        body: data_offer(666),
    }
    .sign(&key);
    let replay_block = ConsortiumBlock::seal(
        &key,
        GRID,
        first + 1,
        accepted.hash(),
        now_ms(),
        vec![replayed],
    );
    fed.handle.inject(Envelope::seal(
        &key,
        relay,
        0,
        200,
        &Message::Submit {
            block: replay_block.clone(),
        },
    ));
    // An exact duplicate of the accepted block, resent: answered, not hostile (D9).
    fed.handle
        .inject(Envelope::seal(&key, relay, 0, 201, &submit));
    // The relay handles its mailbox in order: once this last rejection is seen, every
    // envelope above has been handled.
    fed.handle.inject(Envelope::seal(
        &stranger,
        relay,
        0,
        2,
        &Message::Discover {
            consortium: ieschain_core::ConsortiumId(1),
        },
    ));
    fed.wait_until("the relay to reject both strangers", |fed| {
        fed.log[mark..]
            .iter()
            .filter(|e| {
                matches!(e, Event::Rejected { node, kind: "unknown_sender", .. } if *node == relay)
            })
            .count()
            == 2
    })
    .await;
    let hostile: Vec<&str> = fed.log[mark..]
        .iter()
        .filter_map(|e| match e {
            Event::Rejected {
                node,
                kind,
                hostile: true,
                ..
            } if *node == relay => Some(*kind),
            _ => None,
        })
        .collect();
    assert_eq!(
        hostile,
        vec![
            "bad_signature",
            "bad_signature",
            "bad_signature",
            "unknown_sender",
            "replay",
            "unknown_sender",
        ],
        "the relay's hostile rejections, in order (the exact duplicate is none of them)"
    );
    assert_eq!(
        store.locate(relay, replay_block.hash()).unwrap(),
        None,
        "the relay stored the replayed block"
    );
    assert_eq!(head(&*store, relay, lane_chain), first);

    // Stale epoch: the load relay is deposed by a failover; its late block is fenced out.
    let deposed = serving[&LOAD].relay;
    let deposed_name = fed.name(&deposed);
    let mark = fed.mark();
    fed.handle.crash(&deposed_name).await.unwrap();
    let promoted = serving[&LOAD].backup.unwrap();
    let epoch = fed
        .wait_event(mark, "the load backup to take over", |e| match e {
            Event::TookOver {
                consortium, epoch, ..
            } if *consortium == LOAD => Some(*epoch),
            _ => None,
        })
        .await;
    let promoted_head = head(&*store, promoted, ChainId::Relay(LOAD));
    fed.committed_at(mark, relay, LOAD, promoted_head).await;
    let deposed_key = fed.handle.key_of(&deposed_name).unwrap();
    let late = late_relay_block(&*store, &deposed_key, promoted, LOAD, epoch - 1);
    let mark = fed.mark();
    fed.handle.inject(Envelope::seal(
        &deposed_key,
        relay,
        0,
        1_000_000,
        &Message::RelayBlock {
            block: late.clone(),
        },
    ));
    fed.rejected(mark, relay, "stale_epoch").await;
    assert_nobody_stores(&*store, &late, epoch);

    // Counted in the statistics.
    let stats = fed.handle.stats();
    let count =
        |kind: &str, s: &ieschain::federation::Stats| s.rejected.get(kind).copied().unwrap_or(0);
    for (kind, at_least) in [
        ("bad_signature", 3),
        ("unknown_sender", 2),
        ("replay", 1),
        ("stale_epoch", 1),
    ] {
        assert!(
            count(kind, &stats) >= count(kind, &baseline) + at_least,
            "{kind}: {} → {}",
            count(kind, &baseline),
            count(kind, &stats)
        );
    }
    assert!(stats.hostile >= baseline.hostile + 6);

    // The federation keeps running: the victim and every consortium still get their
    // records acknowledged and onto every relay's copy of their lane.
    let after = fed
        .submit_acked(victim, external(GRID), data_offer(2))
        .await;
    assert_eq!(after, first + 1, "the victim's lane continues where it was");
    let mut serving = serving;
    serving.insert(
        LOAD,
        Serving {
            relay: promoted,
            backup: None,
        },
    );
    for lane in LANES {
        let names = fed.members_of(lane);
        let name = names
            .iter()
            .find(|n| **n != deposed_name && fed.address(n) != serving[&lane].relay)
            .unwrap()
            .clone();
        fed.submit_acked(&name, external(lane), energy_supply(lane.0 as u64))
            .await;
    }
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
    drop(store);

    fed.shutdown();
    assert!(verify_dir(&data) > 0);
}

/// A flood of join messages from an unregistered sender (SPEC §12 D9: join messages
/// only, at a limited rate): beyond the per-second allowance the node drops them unread,
/// counts each as hostile `rate_limited`, and keeps serving its registered peers.
#[tokio::test]
async fn unregistered_floods_are_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut fed = Fed::start(
        &config(6, Some(100), NO_ROTATION_MS, HEARTBEAT_MS),
        &data,
        true,
    );
    fed.ready().await;
    let target = fed.address("grid-west");
    let stranger = Keypair::derive(Domain::NodeKey, SEED, "flooder");
    let intent = Message::JoinIntent {
        key: stranger.public(),
    };
    let mark = fed.mark();
    // Three allowances' worth: even split across a second's boundary, some are dropped.
    let flood = 3 * ieschain_actors::node::UNREGISTERED_PER_S as u64;
    for seq in 1..=flood {
        fed.handle
            .inject(Envelope::seal(&stranger, target, 0, seq, &intent));
    }
    fed.wait_until("the target to rate-limit the flood", |fed| {
        fed.log[mark..].iter().any(|e| {
            matches!(e, Event::Rejected { node, kind: "rate_limited", hostile: true, .. } if *node == target)
        })
    })
    .await;
    fed.submit_acked("grid-west", external(GRID), data_offer(7))
        .await;
}
