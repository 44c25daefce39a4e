//! Failover (SPEC §5, §12 D3, D10): the backup serves within the detection bound, no
//! acknowledged block is lost, and the deposed relay is fenced out.

use ieschain_core::election::ElectionReason;
use ieschain_core::message::{Envelope, Message};
use ieschain_core::node::Event;
use ieschain_core::{Address, RecordBody};

use crate::fixture::*;

/// The failover test's heartbeat: longer than the others', so that the time a new relay
/// takes to serve after its election (a few network delays, and the fsyncs of every node,
/// which share one actor thread) stands well apart from a wait of a heartbeat or more.
const FAILOVER_HEARTBEAT_MS: u64 = 150;
/// Extra time allowed on top of each bound, for those network delays and fsyncs on a
/// loaded two-core machine: one heartbeat.
const FAILOVER_SLACK_MS: u64 = FAILOVER_HEARTBEAT_MS;

/// Crashing the source relay: the backup takes over in the next epoch within the bound of
/// D10, `(suspect_after + 1) × heartbeat_interval` plus three network delays, measured from
/// the crash to its `TookOver`, and it serves as soon as it is elected (D10: "a new relay
/// sends a relay block as soon as it takes over"); every block acknowledged to a source
/// member, before or after the crash, is in the new relay's copy of the source lane (S3);
/// and a late relay block of the deposed relay's epoch, signed and sent by it, is rejected
/// as a stale epoch by every relay and stored by no holder (S1).
#[tokio::test]
async fn backup_serves_in_time_loses_nothing_and_fences_the_deposed_relay() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = config(6, Some(100), NO_ROTATION_MS, FAILOVER_HEARTBEAT_MS);
    let mut fed = Fed::start(&config, &data, true);
    let serving = fed.ready().await;
    let Serving { relay: old, backup } = serving[&SOURCE];
    let backup = backup.expect("ready means a backup");
    let old_name = fed.name(&old);
    let old_epoch = relay_lane(&*fed.store(), old, SOURCE)
        .last()
        .expect("the take-over block")
        .header
        .epoch;
    let names = fed.members_of(SOURCE);

    // Acknowledged traffic before the crash, then a round in flight as it happens.
    for (n, name) in names.iter().enumerate() {
        fed.submit_acked(name, external(SOURCE), data_offer(n as u64))
            .await;
    }
    for (n, name) in names.iter().enumerate() {
        fed.submit(name, external(SOURCE), data_offer(10 + n as u64))
            .await;
    }
    let mark = fed.mark();
    let crashed_at = now_ms();
    fed.handle.crash(&old_name).await.unwrap();

    let (epoch, relay, new_backup, elected_at) = fed
        .wait_event(mark, "a failover election of source", |e| match e {
            Event::Elected {
                consortium,
                epoch,
                reason: ElectionReason::Failover,
                relay,
                backup,
                at,
                ..
            } if *consortium == SOURCE => Some((*epoch, *relay, *backup, *at)),
            _ => None,
        })
        .await;
    assert_eq!(epoch, old_epoch + 1);
    assert_eq!(relay, backup, "the backup is promoted");
    assert!(new_backup.is_some_and(|b| b != old && b != relay));
    let took_over_at = fed
        .wait_event(mark, "the backup to take over", |e| match e {
            Event::TookOver {
                consortium,
                epoch: e,
                relay: r,
                at,
                ..
            } if *consortium == SOURCE && *e == epoch && *r == backup => Some(*at),
            _ => None,
        })
        .await;
    let serve = took_over_at.saturating_sub(elected_at);
    assert!(
        serve <= FAILOVER_SLACK_MS,
        "the new relay served {serve} ms after its election"
    );
    let bound = (SUSPECT_AFTER as u64 + 1) * FAILOVER_HEARTBEAT_MS;
    let took = took_over_at.saturating_sub(crashed_at);
    assert!(
        took <= bound + FAILOVER_SLACK_MS,
        "the backup served {took} ms after the crash; the bound is {bound} ms plus network \
         delays"
    );

    // Traffic under the new relay.
    for (n, name) in names.iter().enumerate().filter(|(_, n)| **n != old_name) {
        fed.submit_acked(name, external(SOURCE), data_offer(20 + n as u64))
            .await;
    }
    // S3: every acknowledged block is on the source lane, at the new relay and at every
    // other relay.
    let acked = fed.acked_in(SOURCE);
    assert!(acked.len() >= 2 * names.len() - 1, "{} acks", acked.len());
    let store = fed.store();
    let relays: Vec<Address> = serving
        .iter()
        .map(|(lane, s)| if *lane == SOURCE { backup } else { s.relay })
        .collect();
    for relay in &relays {
        let what = format!("every acknowledged source block at {}", fed.name(relay));
        fed.wait_until(&what, |_| {
            acked.is_subset(&included(&*store, *relay, SOURCE))
        })
        .await;
    }
    // D3: the first block of the new epoch carries its election record.
    let lane = relay_lane(&*store, backup, SOURCE);
    let first_of_epoch = lane
        .iter()
        .find(|b| b.header.epoch == epoch)
        .expect("a block of the new epoch");
    assert!(
        first_of_epoch.records.iter().any(|r| matches!(
            &r.content.body,
            RecordBody::Election(e) if e.epoch == epoch && e.reason == ElectionReason::Failover
        )),
        "the new epoch's first block does not carry its election"
    );

    // S1: the deposed relay's late block is fenced out everywhere.
    let key = fed.handle.key_of(&old_name).unwrap();
    let late = late_relay_block(&*store, &key, backup, SOURCE, old_epoch);
    let targets = relays;
    let before = fed
        .handle
        .stats()
        .rejected
        .get("stale_epoch")
        .copied()
        .unwrap_or(0);
    let mark = fed.mark();
    for (n, to) in targets.iter().enumerate() {
        // The deposed relay is dead for the rest of the test, so a jump in its envelope
        // seq disturbs nothing.
        let envelope = Envelope::seal(
            &key,
            *to,
            0,
            1_000_000 + n as u64,
            &Message::RelayBlock {
                block: late.clone(),
            },
        );
        fed.handle.inject(envelope);
    }
    for to in &targets {
        fed.rejected(mark, *to, "stale_epoch").await;
    }
    let after = fed
        .handle
        .stats()
        .rejected
        .get("stale_epoch")
        .copied()
        .unwrap_or(0);
    assert!(
        after >= before + targets.len() as u64,
        "counted {before} → {after}"
    );
    assert_nobody_stores(&*store, &late, epoch);
    drop(store);

    fed.shutdown();
    assert!(verify_dir(&data) > 0);
}
