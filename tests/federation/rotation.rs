//! Rotation and E counts (SPEC §5, §12 D5): the backup inherits after a period, a new
//! backup is drawn, and every election record counts terms and failures right.

use std::collections::BTreeMap;

use ieschain_core::election::{ElectionReason, ElectionRecord};
use ieschain_core::node::Event;
use ieschain_core::{Address, ConsortiumId, RecordBody};

use crate::fixture::*;

/// With a period of 1.2 s: after one period every consortium's backup becomes its relay
/// (reason `Rotation`, epoch 2) and a new backup is drawn. Then the source relay crashes
/// (failover, epoch 3), comes back, and the next rotation (epoch 4) lists it again. The
/// election records read back from the source lane show the period, and every candidate's
/// (failures, terms) matches the terms that really ended: the first relay has (0, 1) after
/// its rotation, the crashed one (1, 1) after its failure.
#[tokio::test]
async fn backup_inherits_after_a_period_and_terms_count_right() {
    const PERIOD_MS: u64 = 1_200;
    // Short enough to fit several heartbeats in a period, long enough that a loaded
    // machine does not fail a relay over that nobody crashed.
    const ROTATION_HEARTBEAT_MS: u64 = 150;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut fed = Fed::start(
        &config(6, Some(100), PERIOD_MS, ROTATION_HEARTBEAT_MS),
        &data,
        true,
    );
    let first = fed.ready().await;

    // One period: every backup becomes relay.
    let mut second = BTreeMap::new();
    for lane in LANES {
        let (epoch, relay, backup) = fed
            .wait_event(0, &format!("the rotation of lane {lane}"), |e| match e {
                Event::Elected {
                    consortium,
                    epoch,
                    reason: ElectionReason::Rotation,
                    relay,
                    backup,
                    ..
                } if *consortium == lane => Some((*epoch, *relay, *backup)),
                _ => None,
            })
            .await;
        assert_eq!(epoch, 2, "lane {lane}");
        assert_eq!(
            Some(relay),
            first[&lane].backup,
            "lane {lane}: the backup inherits"
        );
        let backup = backup.expect("a new backup is drawn");
        assert_ne!(backup, relay);
        second.insert(
            lane,
            Serving {
                relay,
                backup: Some(backup),
            },
        );
    }
    let took_over = |lane: ConsortiumId, epoch: u64| {
        move |e: &Event| match e {
            Event::TookOver {
                consortium,
                epoch: got,
                relay,
                ..
            } if *consortium == lane && *got == epoch => Some(*relay),
            _ => None,
        }
    };
    let relay2 = fed
        .wait_event(0, "source's epoch 2 take-over", took_over(SOURCE, 2))
        .await;
    assert_eq!(relay2, second[&SOURCE].relay);

    // The epoch-2 source relay fails, then comes back.
    let crashed = fed.name(&relay2);
    let mark = fed.mark();
    fed.handle.crash(&crashed).await.unwrap();
    let relay3 = fed
        .wait_event(mark, "source's epoch 3 take-over", took_over(SOURCE, 3))
        .await;
    assert_eq!(Some(relay3), second[&SOURCE].backup);
    fed.handle.restart(&crashed).await.unwrap();
    let relay4 = fed
        .wait_event(mark, "source's epoch 4 take-over", took_over(SOURCE, 4))
        .await;

    // The election records, as the source lane carries them.
    let lane = relay_lane(&*fed.store(), relay4, SOURCE);
    let records: Vec<(u64, ElectionRecord)> = lane
        .iter()
        .flat_map(|b| b.records.iter())
        .filter_map(|r| match &r.content.body {
            RecordBody::Election(e) => Some((r.content.created_at, e.clone())),
            _ => None,
        })
        .collect();
    let reasons: Vec<(u64, ElectionReason)> = records
        .iter()
        .map(|(_, e)| (e.epoch, e.reason))
        .take(4)
        .collect();
    assert_eq!(
        reasons,
        vec![
            (1, ElectionReason::Initial),
            (2, ElectionReason::Rotation),
            (3, ElectionReason::Failover),
            (4, ElectionReason::Rotation),
        ]
    );
    let term = records[1].0 - records[0].0;
    assert!(
        (PERIOD_MS..PERIOD_MS + PERIOD_MS / 2).contains(&term),
        "the first term lasted {term} ms"
    );
    let term3 = records[3].0 - records[2].0;
    assert!(
        (PERIOD_MS..PERIOD_MS + PERIOD_MS / 2).contains(&term3),
        "the third term lasted {term3} ms"
    );
    assert_eq!(records[2].1.relay, relay3);
    assert_eq!(
        Some(records[3].1.relay),
        records[2].1.backup,
        "epoch 4: the backup of epoch 3 inherits"
    );
    assert_eq!(records[3].1.relay, relay4);

    // E counts: fold the terms that ended, independently of the election code, and compare
    // with every candidate of every record.
    let mut stats: BTreeMap<Address, (u32, u32)> = BTreeMap::new();
    let mut relay: Option<Address> = None;
    for (_, election) in &records {
        if let Some(previous) = relay {
            let entry = stats.entry(previous).or_default();
            match election.reason {
                ElectionReason::Rotation => entry.1 += 1,
                ElectionReason::Failover => *entry = (entry.0 + 1, entry.1 + 1),
                ElectionReason::Initial | ElectionReason::BackupLost => {}
            }
        }
        relay = Some(election.relay);
        for candidate in &election.candidates {
            assert_eq!(
                (candidate.failures, candidate.terms),
                stats.get(&candidate.address).copied().unwrap_or_default(),
                "epoch {} {:?}: candidate {}",
                election.epoch,
                election.reason,
                fed.name(&candidate.address)
            );
        }
    }
    let stat = |election: &ElectionRecord, who: Address| {
        election
            .candidates
            .iter()
            .find(|c| c.address == who)
            .map(|c| (c.failures, c.terms))
    };
    let first_relay = first[&SOURCE].relay;
    assert_eq!(
        stat(&records[1].1, first_relay),
        Some((0, 1)),
        "after its rotation"
    );
    assert_eq!(stat(&records[2].1, relay2), None, "crashed: not eligible");
    assert_eq!(
        stat(&records[3].1, relay2),
        Some((1, 1)),
        "after its failure"
    );

    fed.shutdown();
    assert!(verify_dir(&data) > 0);
}
