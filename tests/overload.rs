//! Overload (issue 6 §3, SPEC §8): members write faster than the relays can commit, on
//! real RocksDB with synced appends, and nothing acknowledged is lost.
//!
//! The test first measures the federation's capacity briefly: every member writes a batch
//! of 25 records and waits for their acknowledgements, again and again, so the relays are
//! busy and never flooded. Then every member offers 5× that rate for 5 s, paced, each write
//! awaited (`Write` goes by `send` into the member's bounded mailbox, and the writer waits
//! for the reply). Then the writers stop and the federation drains.
//!
//! It checks:
//! - **the writers are slowed**: they write less than 80% of what they offer;
//! - **memory stays bounded**: the process's peak resident set (`VmHWM`) grows by less than
//!   a generous bound over the overload; the backlog of records written and not yet
//!   acknowledged is reported (`--nocapture`);
//! - **nothing acknowledged is lost**: every block acknowledged to its member
//!   (`Event::Acked`) is included, with the same number of records, in the relay lane of its
//!   consortium at every relay, and is in the member's own consortium chain;
//! - **`verify`** passes on the data directory, and no lane forks.
//!
//! One test uses a slow failure detector; the other keeps the default one, under which the
//! saturated actor thread answers heartbeats late and the supervisor deposes live relays.
//!
//! Run them with `cargo test --test overload -- --nocapture` to see the figures (about 20 s
//! each).

#[allow(dead_code)]
#[path = "federation/fixture.rs"]
mod fixture;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fixture::*;
use ieschain::federation::FederationHandle;
use ieschain_core::node::Event;
use ieschain_core::{Address, AnyBlock, ChainId, ConsortiumId, RecordBody};
use ieschain_storage::ChainStore;
use tokio::sync::broadcast::error::RecvError;

/// How long the capacity is measured.
const MEASURE: Duration = Duration::from_secs(2);
/// How long the members write at 5× the capacity.
const OVERLOAD: Duration = Duration::from_secs(5);
/// How many times the capacity the members offer.
const FACTOR: f64 = 5.0;
/// Records a member writes before it waits for their acknowledgements, while measuring.
const BATCH: u64 = 25;
/// Peak resident memory may grow by at most this much over the overload. Generous: the
/// point is that it does not grow without bound with the offered load.
const RSS_BOUND_MIB: f64 = 1_024.0;
/// How long the federation may take to acknowledge the backlog after the writers stop.
const DRAIN: Duration = Duration::from_secs(12);

/// What the event stream has said so far: the blocks acknowledged, and records acked per
/// member.
#[derive(Default)]
struct Acks {
    /// (member, height) → records in the block.
    blocks: BTreeMap<(Address, u64), u32>,
    records: BTreeMap<Address, u64>,
    total: u64,
    /// Events missed because the receiver lagged (then the check would be incomplete).
    lagged: u64,
}

/// A thread that drains the federation's events into [`Acks`], so that the broadcast
/// buffer never overflows however busy the test's own tasks are.
fn collect_acks(handle: &FederationHandle) -> (Arc<Mutex<Acks>>, std::thread::JoinHandle<()>) {
    let acks = Arc::new(Mutex::new(Acks::default()));
    let mut events = handle.subscribe();
    let sink = acks.clone();
    let thread = std::thread::spawn(move || loop {
        match events.blocking_recv() {
            Ok(Event::Acked {
                member,
                height,
                records,
                ..
            }) => {
                let mut acks = sink.lock().unwrap();
                if acks.blocks.insert((member, height), records).is_none() {
                    *acks.records.entry(member).or_default() += u64::from(records);
                    acks.total += u64::from(records);
                }
            }
            Ok(_) => {}
            Err(RecvError::Lagged(missed)) => sink.lock().unwrap().lagged += missed,
            Err(RecvError::Closed) => return,
        }
    });
    (acks, thread)
}

/// The process's resident set now and at its peak, MiB.
fn rss_mib() -> (f64, f64) {
    let status = procfs::process::Process::myself()
        .and_then(|p| p.status())
        .unwrap();
    let mib = |kib: Option<u64>| kib.map_or(0.0, |k| k as f64 / 1024.0);
    (mib(status.vmrss), mib(status.vmhwm))
}

/// A record: mostly non-urgent data offers to one other consortium, one in ten an urgent
/// energy supply.
fn record(n: u64) -> RecordBody {
    if n % 10 == 9 {
        energy_supply(n)
    } else {
        data_offer(n)
    }
}

/// Blocks submitted and not yet acknowledged, summed over the members.
async fn backlog(handle: &FederationHandle, names: &[(ConsortiumId, String)]) -> usize {
    let mut total = 0;
    for (_, name) in names {
        if let Ok(status) = handle.status(name).await {
            total += status.unacked;
        }
    }
    total
}

/// Every member writes `BATCH` records and waits for their acknowledgements, for
/// `MEASURE`: the records acknowledged per second.
async fn measure_capacity(
    handle: &FederationHandle,
    names: &[(ConsortiumId, String)],
    acks: &Arc<Mutex<Acks>>,
) -> f64 {
    let start_total = acks.lock().unwrap().total;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (consortium, name) in names.iter().cloned() {
        let handle = handle.clone();
        let acks = acks.clone();
        tasks.push(tokio::spawn(async move {
            let me = handle.address_of(&name).unwrap();
            let mut written = 0u64;
            while started.elapsed() < MEASURE {
                for _ in 0..BATCH {
                    handle
                        .submit(&name, external(consortium), record(written))
                        .await
                        .unwrap();
                    written += 1;
                }
                // A slow acknowledgement (a loaded machine) ends this writer's measure; the
                // capacity is what was acknowledged.
                let deadline = Instant::now() + PATIENCE;
                while acks.lock().unwrap().records.get(&me).copied().unwrap_or(0) < written {
                    if Instant::now() >= deadline {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let acked = acks.lock().unwrap().total - start_total;
    acked as f64 / started.elapsed().as_secs_f64()
}

/// Figures of the overload phase.
struct Overload {
    offered_per_s: f64,
    written: u64,
    written_per_s: f64,
    acked_per_s: f64,
    /// The most records written and not yet acknowledged, sampled every 100 ms.
    max_backlog: u64,
    peak_rss_mib: f64,
}

/// Every member writes at its share of `rate` records a second for `OVERLOAD`, paced:
/// records falling due are written one after the other, each awaited, so a writer that
/// the federation slows down falls behind its schedule.
async fn overload(
    handle: &FederationHandle,
    names: &[(ConsortiumId, String)],
    acks: &Arc<Mutex<Acks>>,
    rate: f64,
) -> Overload {
    let per_member = rate / names.len() as f64;
    let written = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let acked_before = acks.lock().unwrap().total;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (consortium, name) in names.iter().cloned() {
        let handle = handle.clone();
        let written = written.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let due = (started.elapsed().as_secs_f64() * per_member) as u64;
                if mine >= due {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                handle
                    .submit(&name, external(consortium), record(1_000_000 + mine))
                    .await
                    .unwrap();
                mine += 1;
                written.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // The backlog: records written (the member replied) and not yet acknowledged.
    let mut max_backlog = 0;
    let mut peak_rss_mib: f64 = 0.0;
    while started.elapsed() < OVERLOAD {
        peak_rss_mib = peak_rss_mib.max(rss_mib().0);
        let acked = acks.lock().unwrap().total - acked_before;
        max_backlog = max_backlog.max(written.load(Ordering::Relaxed).saturating_sub(acked));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let written = written.load(Ordering::Relaxed);
    Overload {
        offered_per_s: rate,
        written,
        written_per_s: written as f64 / elapsed,
        acked_per_s: (acks.lock().unwrap().total - acked_before) as f64 / elapsed,
        max_backlog,
        peak_rss_mib,
    }
}

/// Every (author, height) → records of a consortium block included in `holder`'s copy of
/// relay lane `lane`.
fn included_with_records(
    store: &dyn ChainStore,
    holder: Address,
    lane: ConsortiumId,
) -> BTreeMap<(Address, u64), usize> {
    relay_lane(store, holder, lane)
        .iter()
        .flat_map(|b| b.blocks.iter())
        .map(|b| ((b.header.author, b.header.height), b.records.len()))
        .collect()
}

/// Members writing at 5× the measured capacity are slowed to what the relays commit,
/// memory stays bounded, and every acknowledged block is on the relay chain at every relay
/// and in its member's chain; `verify` passes. The failure detector is slow (heartbeats
/// 500 ms, 20 missed), as `BENCHMARKS.md` recommends under load, so that a saturated actor
/// thread, whose mailboxes hold seconds of work, does not depose live relays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_times_capacity_loses_nothing_acknowledged() {
    let mut config = config(6, Some(50), NO_ROTATION_MS, 500);
    config.timing.suspect_after = 20;
    config.check().unwrap();
    five_times_capacity(&config).await;
}

/// The same with the default failure detector (heartbeats 200 ms, 3 missed): the saturated
/// actor thread answers heartbeats late and the supervisor deposes live relays, several
/// times a run, and still nothing acknowledged is lost and no lane forks.
///
/// Before SPEC §14 it lost acknowledged blocks (S3) about one run in six, later one in 30:
/// a new relay continued on copies that lacked blocks the deposed relay had released (after
/// a sync timeout, or from a backup an election named that did not hold them). Under SPEC
/// §14 the new relay's sealed read stops the deposed pair and reads the last active
/// configuration, which holds every acknowledged block (write-all). The machine test
/// `failover_to_a_third_candidate_waits_for_the_deposed_backup` (`core/tests/machines.rs`)
/// replays the case deterministically.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_times_capacity_with_spurious_failovers() {
    five_times_capacity(&config(6, Some(50), NO_ROTATION_MS, HEARTBEAT_MS)).await;
}

/// Measures the capacity, offers 5× it, drains, and checks memory, the acknowledged blocks
/// and `verify`.
async fn five_times_capacity(config: &ieschain::config::FederationConfig) {
    let test_started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut fed = Fed::start(config, &data, true);
    let serving = fed.ready().await;
    let handle = fed.handle.clone();
    let names = handle.members();
    let (acks, collector) = collect_acks(&handle);
    let (rss_start, _) = rss_mib();

    let measure_started = Instant::now();
    let capacity = measure_capacity(&handle, &names, &acks).await;
    let measure_s = measure_started.elapsed().as_secs_f64();
    assert!(capacity > 0.0, "nothing was acknowledged while measuring");
    let (_, hwm_before) = rss_mib();
    let overload_started = Instant::now();
    let load = overload(&handle, &names, &acks, FACTOR * capacity).await;
    let overload_s = overload_started.elapsed().as_secs_f64();

    // Drain: the writers have stopped; the backlog is acknowledged.
    let drain_started = Instant::now();
    let mut left = backlog(&handle, &names).await;
    while left > 0 && drain_started.elapsed() < DRAIN {
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = backlog(&handle, &names).await;
    }
    let drained_s = drain_started.elapsed().as_secs_f64();
    let (_, hwm_after) = rss_mib();
    let stats = handle.stats();
    println!(
        "overload: capacity {capacity:.0} records/s (measured over {measure_s:.1} s); offered {:.0}/s \
         ({FACTOR}×), written {} = {:.0}/s, acknowledged {:.0}/s during the overload; \
         the writers stopped after {overload_s:.1} s (the last writes waited for their \
         replies); largest backlog {} records written and not acknowledged; {} blocks \
         unacknowledged after {drained_s:.1} s of drain; \
         RSS {rss_start:.0} MiB at start, {:.0} MiB peak sampled during the overload, VmHWM \
         {hwm_before:.0} → {hwm_after:.0} MiB; transport: {} delivered, {} dropped; \
         elections {} (failovers {}); rejected {:?}",
        load.offered_per_s,
        load.written,
        load.written_per_s,
        load.acked_per_s,
        load.max_backlog,
        left,
        load.peak_rss_mib,
        stats.transport.delivered,
        stats.transport.dropped,
        stats.elections,
        stats.failovers,
        stats.rejected,
    );
    assert!(
        load.written_per_s < 0.8 * load.offered_per_s,
        "the writers were not slowed: {:.0} records/s written of {:.0} offered",
        load.written_per_s,
        load.offered_per_s
    );
    assert!(
        hwm_after - hwm_before < RSS_BOUND_MIB,
        "peak resident memory grew by {:.0} MiB under overload (bound {RSS_BOUND_MIB} MiB)",
        hwm_after - hwm_before
    );

    // Every acknowledged block reaches every relay's copy of its lane: wait for the last
    // relay blocks (max_wait 50 ms), then stop the federation.
    let store = fed.store();
    let mut acked = acks.lock().unwrap().blocks.clone();
    // Who serves now: spurious failovers under load may have replaced the first relays.
    let relays: Vec<Address> = handle
        .relays()
        .values()
        .map(|(_, relay, _)| *relay)
        .collect();
    let _ = serving;
    let lane_of: BTreeMap<Address, ConsortiumId> = names
        .iter()
        .map(|(c, n)| (handle.address_of(n).unwrap(), *c))
        .collect();
    let lanes: BTreeSet<ConsortiumId> = lane_of.values().copied().collect();
    let missing = |store: &dyn ChainStore,
                   acked: &BTreeMap<(Address, u64), u32>|
     -> Vec<(Address, Address, u64)> {
        let mut missing = Vec::new();
        for relay in &relays {
            for lane in &lanes {
                let included = included_with_records(store, *relay, *lane);
                missing.extend(
                    acked
                        .keys()
                        .filter(|(member, _)| lane_of.get(member) == Some(lane))
                        .filter(|key| !included.contains_key(key))
                        .map(|(member, height)| (*relay, *member, *height)),
                );
            }
        }
        missing
    };
    // Blocks acknowledged while waiting (a member's last block, or one acknowledged again
    // by a new relay) are waited for too; one acknowledged in the last instant before the
    // stop may not have reached every relay yet, and is not judged (the simulation's S3
    // leaves the same margin).
    let deadline = Instant::now() + PATIENCE;
    loop {
        while !missing(&*store, &acked).is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let now_acked = acks.lock().unwrap().blocks.clone();
        if now_acked.len() == acked.len() || Instant::now() >= deadline {
            break;
        }
        acked = now_acked;
    }
    fed.shutdown();
    // The actors have stopped: no event comes any more. (The collector thread ends when
    // the last sender goes; it is not waited for.)
    drop((collector, store, handle));
    let acks = acks.lock().unwrap();
    assert_eq!(
        acks.lagged, 0,
        "the event receiver lagged: acknowledgements were missed"
    );
    assert!(
        acks.blocks.len() > 100,
        "only {} blocks acknowledged",
        acks.blocks.len()
    );

    let store = ieschain_storage::RocksStore::open_existing(&data).unwrap();
    let lost = missing(&store, &acked);
    let lost_blocks: BTreeSet<(Address, u64)> = lost.iter().map(|(_, m, h)| (*m, *h)).collect();
    let detail: Vec<String> = lost_blocks
        .iter()
        .take(8)
        .map(|(member, height)| {
            let lane = lane_of[member];
            let holders: Vec<String> = relays
                .iter()
                .filter(|r| {
                    store
                        .block(**r, ChainId::Consortium(lane, *member), *height)
                        .unwrap()
                        .is_some()
                })
                .map(|r| r.short())
                .collect();
            format!(
                "{} height {height} (lane {lane}; held as a consortium block by relays {holders:?})",
                member.short()
            )
        })
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged blocks never reached the relay chain ({} (relay, block) pairs), \
         among them:\n  {}",
        lost_blocks.len(),
        lost.len(),
        detail.join("\n  ")
    );

    // Every acknowledged block: in every relay's copy of its lane with all its records,
    // and in its member's own consortium chain.
    for relay in &relays {
        for lane in &lanes {
            let included = included_with_records(&store, *relay, *lane);
            for ((member, height), records) in &acked {
                if lane_of.get(member) != Some(lane) {
                    continue;
                }
                assert_eq!(
                    included.get(&(*member, *height)),
                    Some(&(*records as usize)),
                    "acknowledged block {} height {height} is missing at relay {}",
                    member.short(),
                    relay.short()
                );
            }
        }
    }
    for ((member, height), records) in &acked {
        let lane = lane_of[member];
        let block = store
            .block(*member, ChainId::Consortium(lane, *member), *height)
            .unwrap();
        match block {
            Some(AnyBlock::Consortium(block)) => {
                assert_eq!(block.records.len(), *records as usize);
                assert_eq!(block.header.author, *member);
            }
            other => panic!(
                "acknowledged block {} height {height} is not in its member's chain: {other:?}",
                member.short()
            ),
        }
    }
    drop(store);
    let verify_started = Instant::now();
    let blocks = verify_dir(&data);
    assert!(blocks > 0);
    println!(
        "overload: {} blocks acknowledged, all on the relay chain at every relay; verify \
         checked {blocks} blocks in {:.1} s; {:.1} s in all",
        acks.blocks.len(),
        verify_started.elapsed().as_secs_f64(),
        test_started.elapsed().as_secs_f64()
    );
}
