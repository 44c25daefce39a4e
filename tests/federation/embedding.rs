//! The embedding API as a tokio host uses it: async start and shutdown in a current-thread
//! runtime, `ready`, receipts that resolve when their record is committed (and not
//! before), the in-flight bound with `try_submit`'s `Busy`, interrupted receipts, receipts
//! across a failover, shutdown answering every waiter, and caller-supplied keys.

use std::time::Duration;

use ieschain::federation::{Federation, FederationError, Progress};
use ieschain_core::node::Event;
use ieschain_core::{Audience, ChainId, Keypair, RecordBody};
use tokio::sync::broadcast::error::RecvError;

use super::fixture::*;

/// A member that is not relay-capable: isolating it never costs a lane its relay.
const WRITER: &str = "load-school";

fn builder(data: &std::path::Path) -> ieschain::federation::FederationBuilder {
    Federation::builder(config(6, Some(100), NO_ROTATION_MS, HEARTBEAT_MS))
        .data_dir(data)
        .seed(SEED)
        .workload(false)
}

/// Starts `builder` and waits until every lane serves.
async fn started_and_ready(
    builder: ieschain::federation::FederationBuilder,
) -> ieschain::federation::FederationHandle {
    let fed = builder.start().await.unwrap();
    tokio::time::timeout(PATIENCE, fed.ready())
        .await
        .unwrap()
        .unwrap();
    fed
}

/// `start` and `shutdown` are futures a current-thread runtime can await (nothing blocks
/// its one thread); `ready` resolves once every lane's newest relay took over, which the
/// events seen by then confirm; the stream ends at shutdown, and a second shutdown is a
/// no-op.
#[tokio::test(flavor = "current_thread")]
async fn start_ready_and_shutdown_are_async() {
    let dir = tempfile::tempdir().unwrap();
    let mut builder = builder(&dir.path().join("data"));
    let mut events = builder.subscribe();
    let fed = builder.start().await.unwrap();
    tokio::time::timeout(PATIENCE, fed.ready())
        .await
        .expect("every lane serves in time")
        .unwrap();
    assert_eq!(fed.lanes_serving(), LANES.len());
    let serving = fed.relays();
    let mut took_over = std::collections::BTreeMap::new();
    while let Ok(event) = events.try_recv() {
        if let Event::TookOver {
            consortium, epoch, ..
        } = event
        {
            took_over.insert(consortium, epoch);
        }
    }
    for (lane, (epoch, _, _)) in &serving {
        assert_eq!(took_over.get(lane), Some(epoch), "lane {lane} was ready");
    }
    fed.shutdown().await.unwrap();
    // Drain until the stream closes: lagging is fine, the end must come.
    while let Ok(_) | Err(RecvError::Lagged(_)) = events.recv().await {}
    fed.shutdown().await.unwrap();
    assert!(matches!(
        tokio::time::timeout(PATIENCE, fed.ready()).await,
        Ok(Err(FederationError::Stopped))
    ));
    assert!(matches!(
        fed.submit(WRITER, Audience::Own, data_offer(1)).await,
        Err(FederationError::NotRunning(_) | FederationError::Stopped)
    ));
}

/// A receipt resolves where its record ends up: a meter reading in its member's private
/// chain, an internal record in its consortium lane at the relay, an external one in the
/// relay block of every relay's copy. Each is checked in the store once it resolved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_resolve_where_their_records_are() {
    let dir = tempfile::tempdir().unwrap();
    let fed = started_and_ready(builder(&dir.path().join("data"))).await;
    let writer = fed.address_of(WRITER).unwrap();
    let store = fed.store();
    // The external record first, checked the moment its receipt resolves: its block is
    // acknowledged well before a relay block includes it.
    let external = fed
        .submit(WRITER, super::fixture::external(LOAD), data_offer(3))
        .await
        .unwrap();
    tokio::time::timeout(PATIENCE, external.committed())
        .await
        .expect("the external record was committed")
        .unwrap();
    for (_, (_, relay, _)) in fed.relays() {
        let on_relay = relay_lane(store.as_ref(), relay, LOAD)
            .iter()
            .flat_map(|b| b.blocks.iter())
            .flat_map(|b| b.records.iter())
            .any(|r| r.content.author == writer && r.content.seq == external.seq());
        assert!(
            on_relay,
            "relay {} holds the external record",
            fed.name_of(&relay)
        );
    }
    let meter = fed
        .submit(
            WRITER,
            Audience::Own,
            RecordBody::MeterReading { meter: 3, wh: 9 },
        )
        .await
        .unwrap();
    let internal = fed
        .submit(WRITER, Audience::Own, data_offer(2))
        .await
        .unwrap();
    for receipt in [&meter, &internal] {
        tokio::time::timeout(PATIENCE, receipt.committed())
            .await
            .unwrap_or_else(|_| panic!("record {} was not committed", receipt.seq()))
            .unwrap();
        assert_eq!(receipt.progress(), Progress::Committed);
    }
    let holds = |holder, chain, seq: u64| {
        chain_of(store.as_ref(), holder, chain)
            .iter()
            .flat_map(|b| b.records())
            .any(|r| r.content.author == writer && r.content.seq == seq)
    };
    assert!(holds(writer, ChainId::Private(writer), meter.seq()));
    let (_, relay, _) = fed.relays()[&LOAD];
    assert!(holds(
        relay,
        ChainId::Consortium(LOAD, writer),
        internal.seq()
    ));
    fed.shutdown().await.unwrap();
}

/// With its member cut off, nothing it writes can be acknowledged: `try_submit` fills the
/// bound and then answers `Busy`, and `submit` waits. Healed, the member's blocks go out,
/// the receipts commit and the waiting `submit` goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_flight_bound_holds_until_records_commit() {
    let dir = tempfile::tempdir().unwrap();
    let fed = started_and_ready(builder(&dir.path().join("data")).max_in_flight(2)).await;
    fed.isolate(WRITER).unwrap();
    let audience = super::fixture::external(LOAD);
    let first = fed
        .try_submit(WRITER, audience.clone(), data_offer(1))
        .await
        .unwrap();
    let second = fed
        .try_submit(WRITER, audience.clone(), energy_supply(2))
        .await
        .unwrap();
    match fed
        .try_submit(WRITER, audience.clone(), data_offer(3))
        .await
    {
        Err(FederationError::Busy { member, limit }) => {
            assert_eq!((member.as_str(), limit), (WRITER, 2));
        }
        other => panic!("expected Busy, got {other:?}"),
    }
    let waiting = {
        let fed = fed.clone();
        let audience = audience.clone();
        tokio::spawn(async move { fed.submit(WRITER, audience, data_offer(4)).await })
    };
    // Cut off, the member's records stay in flight however long it waits.
    tokio::time::sleep(Duration::from_millis(3 * HEARTBEAT_MS)).await;
    assert!(
        !waiting.is_finished(),
        "submit waits while the bound is full"
    );
    assert_eq!(first.progress(), Progress::Written);
    fed.heal();
    let third = tokio::time::timeout(PATIENCE, waiting)
        .await
        .expect("the waiting submit went through once records committed")
        .unwrap()
        .unwrap();
    for receipt in [&first, &second, &third] {
        tokio::time::timeout(PATIENCE, receipt.committed())
            .await
            .unwrap()
            .unwrap();
    }
    fed.shutdown().await.unwrap();
}

/// A member that crashes before its record is acknowledged leaves the receipt
/// interrupted: the handle cannot tell whether the record outlives the crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_interrupts_receipts_not_yet_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let fed = started_and_ready(builder(&dir.path().join("data"))).await;
    fed.isolate(WRITER).unwrap();
    let receipt = fed
        .submit(WRITER, super::fixture::external(LOAD), data_offer(1))
        .await
        .unwrap();
    fed.crash(WRITER).await.unwrap();
    match receipt.committed().await {
        Err(FederationError::Interrupted { member, seq }) => {
            assert_eq!((member.as_str(), seq), (WRITER, receipt.seq()));
        }
        other => panic!("expected Interrupted, got {other:?}"),
    }
    assert_eq!(receipt.progress(), Progress::Interrupted);
    fed.heal();
    fed.shutdown().await.unwrap();
}

/// Keys the host brings replace the seed's: the genesis names the host's public key, the
/// member's records carry its signature, and the data directory remembers them (the
/// seed's keys are refused on it). A key for a name the configuration lacks is an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_supplied_keys_are_the_members_keys() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = Keypair::from_seed([42; 32]);
    let supervisor = Keypair::from_seed([43; 32]);
    let fed = builder(&data)
        .member_key(WRITER, key.clone())
        .supervisor_key(supervisor.clone())
        .start()
        .await
        .unwrap();
    assert_eq!(fed.address_of(WRITER).unwrap(), key.address());
    assert_eq!(fed.genesis().supervisor, supervisor.public());
    assert_eq!(fed.key_of(WRITER).unwrap().address(), key.address());
    tokio::time::timeout(PATIENCE, fed.ready())
        .await
        .unwrap()
        .unwrap();
    let receipt = fed
        .submit(WRITER, super::fixture::external(LOAD), data_offer(1))
        .await
        .unwrap();
    tokio::time::timeout(PATIENCE, receipt.committed())
        .await
        .unwrap()
        .unwrap();
    let store = fed.store();
    let signed = chain_of(
        store.as_ref(),
        key.address(),
        ChainId::Consortium(LOAD, key.address()),
    )
    .iter()
    .flat_map(|b| b.records())
    .any(|r| r.content.seq == receipt.seq() && r.verify(&key.public()).is_ok());
    assert!(signed, "the record carries the supplied key's signature");
    fed.shutdown().await.unwrap();

    // The directory's genesis names the supplied keys: the seed's are refused.
    match builder(&data).start().await {
        Err(FederationError::Store(_)) => {}
        other => panic!("a directory of other keys opened: {other:?}"),
    }
    match builder(&dir.path().join("other"))
        .member_key("nobody", key)
        .start()
        .await
    {
        Err(FederationError::Config(err)) => {
            assert!(err.to_string().contains("nobody"), "{err}")
        }
        other => panic!("a key for an unknown member was taken: {other:?}"),
    }
}

/// Shutting down from one clone answers every waiter of every other clone: a receipt
/// waiting for its commit, a submit waiting for room, and `ready`; none hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_every_waiter_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let fed = started_and_ready(builder(&dir.path().join("data")).max_in_flight(1)).await;
    fed.isolate(WRITER).unwrap();
    let receipt = fed
        .submit(WRITER, super::fixture::external(LOAD), data_offer(1))
        .await
        .unwrap();
    let waiting_submit = {
        let fed = fed.clone();
        tokio::spawn(async move {
            fed.submit(WRITER, super::fixture::external(LOAD), data_offer(2))
                .await
                .map(|_| ())
        })
    };
    let waiting_commit = tokio::spawn(async move { receipt.committed().await });
    tokio::task::yield_now().await;
    fed.clone().shutdown().await.unwrap();
    for waiter in [waiting_submit, waiting_commit] {
        let answer = tokio::time::timeout(PATIENCE, waiter)
            .await
            .expect("a waiter hung after shutdown")
            .unwrap();
        assert!(
            matches!(answer, Err(FederationError::Stopped)),
            "{answer:?}"
        );
    }
    assert!(matches!(
        tokio::time::timeout(PATIENCE, fed.ready()).await,
        Ok(Err(FederationError::Stopped))
    ));
}

/// A record acknowledged just before its lane's relay crashes is still committed: the
/// new relay holds what the old one released (SPEC §14), so its receipt resolves without
/// any later record of the same author to carry it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_resolves_across_a_failover_of_its_lane() {
    let dir = tempfile::tempdir().unwrap();
    let fed = started_and_ready(builder(&dir.path().join("data"))).await;
    let lane = fed
        .members()
        .into_iter()
        .find(|(_, name)| name == WRITER)
        .map(|(lane, _)| lane)
        .unwrap();
    let receipt = fed
        .submit(WRITER, super::fixture::external(LOAD), data_offer(1))
        .await
        .unwrap();
    tokio::time::timeout(PATIENCE, receipt.acknowledged())
        .await
        .unwrap()
        .unwrap();
    let (_, relay, _) = fed.relays()[&lane];
    fed.crash(&fed.name_of(&relay)).await.unwrap();
    tokio::time::timeout(PATIENCE, receipt.committed())
        .await
        .expect("the receipt resolved after the failover")
        .unwrap();
    fed.shutdown().await.unwrap();
}

/// A record signed by its author before submission (`submit_signed`, SPEC §12 D8) is
/// checked once on entry and committed like any other; bad input is a typed error, never
/// a panic, and leaves the member writing: a forged signature (`BadSignature`), an author
/// that is no member (`UnknownAuthor`), a replayed seq, the exact resubmission included
/// (`Replay`), and a seq far above the last (`Refused`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_signed_records_commit_and_bad_ones_are_refused_typed() {
    use ieschain_core::{Record, RecordContent};
    let dir = tempfile::tempdir().unwrap();
    let fed = started_and_ready(builder(&dir.path().join("data"))).await;
    let key = fed.key_of(WRITER).unwrap();
    let author = key.address();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    let signed = |key: &Keypair, seq: u64, n: u64| -> Record {
        RecordContent {
            author,
            seq,
            created_at: now(),
            audience: super::fixture::external(LOAD),
            body: data_offer(n),
        }
        .sign(key)
    };
    let last = fed.last_seq(WRITER).await.unwrap();
    let first = signed(&key, last + 1, 1);
    let receipt = fed.submit_signed(first.clone()).await.unwrap();
    assert_eq!(receipt.seq(), last + 1);
    tokio::time::timeout(PATIENCE, receipt.committed())
        .await
        .expect("the pre-signed record was committed")
        .unwrap();
    assert_eq!(fed.last_seq(WRITER).await.unwrap(), last + 1);

    // A forged signature: one bit flipped, or the author's content signed by another key.
    let mut flipped = signed(&key, last + 2, 2);
    flipped.signature.0[7] ^= 1;
    let other = fed.key_of("source-solar").unwrap();
    for forged in [flipped, signed(&other, last + 2, 2)] {
        match fed.submit_signed(forged).await {
            Err(FederationError::BadSignature { member, seq }) => {
                assert_eq!((member.as_str(), seq), (WRITER, last + 2));
            }
            other => panic!("expected BadSignature, got {other:?}"),
        }
    }
    // An author no member of this federation has.
    let stranger = Keypair::derive(ieschain_core::Domain::NodeKey, 999, "stranger");
    let foreign = RecordContent {
        author: stranger.address(),
        seq: 1,
        created_at: now(),
        audience: Audience::Own,
        body: data_offer(3),
    }
    .sign(&stranger);
    match fed.submit_signed(foreign).await {
        Err(FederationError::UnknownAuthor(address)) => assert_eq!(address, stranger.address()),
        other => panic!("expected UnknownAuthor, got {other:?}"),
    }
    // A replayed seq: the exact record again, and a new record with an old seq.
    for replayed in [first, signed(&key, last + 1, 4), signed(&key, 0, 5)] {
        let seq = replayed.content.seq;
        match fed.submit_signed(replayed).await {
            Err(FederationError::Replay {
                member,
                seq: got,
                last: was,
            }) => {
                assert_eq!((member.as_str(), got, was), (WRITER, seq, last + 1));
            }
            other => panic!("expected Replay, got {other:?}"),
        }
    }
    // A seq that would use up the member's seqs (u64::MAX: its next own write overflowed).
    match fed.submit_signed(signed(&key, u64::MAX, 7)).await {
        Err(FederationError::Refused { member, reason }) => {
            assert_eq!(member, WRITER);
            assert!(reason.contains("more than"), "{reason}");
        }
        other => panic!("expected a refused seq gap, got {other:?}"),
    }
    // The member still writes: the next seq commits, through try_submit_signed too.
    let next = fed
        .try_submit_signed(signed(&key, last + 2, 6))
        .await
        .unwrap();
    tokio::time::timeout(PATIENCE, next.committed())
        .await
        .unwrap()
        .unwrap();
    fed.shutdown().await.unwrap();
}

/// The member nodes spread over as many threads as the builder asks (issue 12), and the
/// federation works as on one: records from every consortium commit, a crashed member
/// restarts (on its old thread) and writes again, and shutdown stops every thread and
/// flushes. The default is the configuration's, one per core.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_nodes_spread_over_threads_and_work_as_on_one() {
    let dir = tempfile::tempdir().unwrap();
    let fed = started_and_ready(builder(&dir.path().join("data")).actor_threads(3)).await;
    assert_eq!(fed.node_threads(), 3);
    let mut receipts = Vec::new();
    let members = fed.members();
    for lane in LANES {
        let (_, writer) = members.iter().find(|(c, _)| *c == lane).unwrap();
        for i in 0..5 {
            let audience = super::fixture::external(lane);
            let receipt = fed.submit(writer, audience, data_offer(i)).await.unwrap();
            receipts.push((writer.clone(), receipt));
        }
    }
    for (writer, receipt) in &receipts {
        tokio::time::timeout(PATIENCE, receipt.committed())
            .await
            .unwrap_or_else(|_| panic!("{writer}'s record {} committed", receipt.seq()))
            .unwrap();
    }
    fed.crash(WRITER).await.unwrap();
    fed.restart(WRITER).await.unwrap();
    let again = fed
        .submit(WRITER, Audience::Own, data_offer(9))
        .await
        .unwrap();
    tokio::time::timeout(PATIENCE, again.committed())
        .await
        .expect("the restarted member's record committed")
        .unwrap();
    fed.shutdown().await.unwrap();
    drop(fed); // the last handle holds the store open
    let default = started_and_ready(builder(&dir.path().join("data"))).await;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    assert_eq!(default.node_threads(), cores);
    default.shutdown().await.unwrap();
}
