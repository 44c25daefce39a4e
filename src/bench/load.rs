//! A federation of actors under load, counted from its events: records per second
//! committed at every relay, latencies from creation to the last relay, and failover
//! times (issue 6).
//!
//! **What counts.** A relay block counts once every lane's current relay has stored it
//! (its `Committed` events, each after that node's synced write, SPEC §12 D8), and each of
//! its records counts once. Latency runs from the record's creation to the last relay's
//! `Committed`.
//!
//! **Load.** Writer tasks submit data offers for another consortium (non-urgent, so they
//! travel on the relay chain) through [`FederationHandle::submit`], one record in
//! [`URGENT_EVERY`] an urgent energy supply. A writer waits while it has its share of the
//! records in flight (submitted, not yet acknowledged): [`IN_FLIGHT_TOTAL`] over at most
//! [`MAX_WRITERS`] writers, so every federation size carries the same offered load.
//!
//! **Signing.** With [`Load::Saturate`], `submit` takes a record body and the member actor
//! signs it, on the actor thread: those figures include one signature per record that SPEC
//! §12 D8 counts as the client's work. With [`Load::SaturateSigned`], every writer signs
//! its records before the warm-up (outside the timed part, as D8 asks) and submits them
//! with [`FederationHandle::submit_signed`], which checks each once on the writer's thread.
//! Those records were created before the run, so their latencies from creation are not
//! reported.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use ieschain_core::node::{Event, RecordStamp};
use ieschain_core::{
    Address, Audience, ConsortiumId, Domain, Hash, Keypair, Record, RecordBody, RecordContent,
};
use tokio::sync::{broadcast, Notify};

use crate::config::FederationConfig;
use crate::federation::{Federation, FederationHandle, Latencies};
use crate::lifecycle::StopSignal;

/// Records submitted and not yet acknowledged, over all writers.
pub const IN_FLIGHT_TOTAL: u64 = 1_700;
/// The most writer tasks: the first members of each consortium, round robin.
pub const MAX_WRITERS: usize = 100;
/// One record in this many is urgent.
pub const URGENT_EVERY: u64 = 200;

/// How a run loads its federation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Load {
    /// The bench's writers, as fast as acknowledgements allow; the member actors sign.
    Saturate,
    /// The same, with every record signed by its writer before the warm-up and submitted
    /// pre-signed (SPEC §12 D8).
    SaturateSigned,
    /// The members' own workload of the configuration (nominal load).
    Workload,
}

/// One run.
#[derive(Clone, Debug)]
pub struct RunSpec {
    /// The federation.
    pub config: FederationConfig,
    /// Its load.
    pub load: Load,
    /// Before the window.
    pub warm_up: Duration,
    /// The measurement.
    pub window: Duration,
    /// Longest wait, after the writers stop, for what they submitted to reach every relay.
    pub drain: Duration,
    /// Longest wait for every lane's first relay to take over.
    pub serve_timeout: Duration,
    /// Relays to crash one after another after the window (failover), lane by lane.
    pub failovers: usize,
}

/// One run's measurement.
#[derive(Clone, Debug, Default)]
pub struct RunResult {
    /// Members.
    pub members: usize,
    /// Lanes whose first relay took over before the window.
    pub serving: usize,
    /// Seconds of the window.
    pub window_s: f64,
    /// Records at every relay during the window.
    pub records: u64,
    /// `records / window_s`.
    pub records_per_s: f64,
    /// Creation to the last relay, ms.
    pub urgent: Latencies,
    /// The same for non-urgent records.
    pub normal: Latencies,
    /// Relay blocks produced in the window.
    pub relay_blocks: u64,
    /// Consortium blocks acknowledged in the window.
    pub consortium_blocks: u64,
    /// How long after the writers stopped everything was at every relay.
    pub drained_s: Option<f64>,
    /// Elections after every relay first took over (failovers under load, if any).
    pub elections: usize,
    /// Records at every relay a second time, in another relay block.
    pub duplicates: u64,
    /// Events the bench missed (the broadcast buffer overflowed).
    pub lagged: u64,
    /// Crash of a relay to its successor's first relay block, ms, one per failover.
    pub failover_ms: Vec<f64>,
    /// The failover's election to its relay's first relay block (the take-over of SPEC
    /// §14: read, config block, the backup's catch-up, activation), ms, one per failover.
    pub takeover_ms: Vec<f64>,
    /// Failovers that did not complete in time.
    pub failover_timeouts: usize,
    /// This process's peak resident size once every lane served, before any load, MiB:
    /// the federation's own footprint, without the backlog a saturated run builds up.
    pub idle_rss_mib: f64,
    /// Records signed before the run ([`Load::SaturateSigned`]).
    pub presigned: u64,
    /// Writers that submitted every record signed for them before the run ended: their
    /// pool was too small, and the figure is a lower bound.
    pub writers_ran_dry: usize,
}

/// A relay block: lane, height, epoch.
pub type BlockKey = (ConsortiumId, u64, u64);

/// What the event task ([`count_events`]) has counted.
#[derive(Debug, Default)]
pub struct Tally {
    /// Relay blocks not yet stored by every relay: (lane, height, epoch) → the nodes that
    /// have stored it, and its records.
    pub partial: BTreeMap<BlockKey, (BTreeSet<Address>, Vec<RecordStamp>)>,
    /// Records at every relay so far, each counted once: if a failover puts a record in two
    /// relay blocks, the second counts in `duplicates`.
    pub seen: HashSet<(Address, u64)>,
    /// `seen.len()`.
    pub complete: u64,
    /// Records that reached every relay a second time, in another relay block.
    pub duplicates: u64,
    /// Whether latencies are being collected (the window is open).
    pub measuring: bool,
    /// Creation to the last relay, ms, of the urgent records counted while measuring.
    pub urgent: Latencies,
    /// The same for non-urgent records.
    pub normal: Latencies,
    /// Consortium blocks acknowledged (`Acked` events).
    pub consortium_blocks: u64,
    /// Relay blocks produced.
    pub relay_blocks: u64,
    /// The reasons of the elections seen, in order.
    pub elections: Vec<String>,
    /// Events missed (the broadcast buffer overflowed).
    pub lagged: u64,
    /// `TookOver` events: (lane, epoch) → when the bench saw it.
    pub took_over: BTreeMap<(ConsortiumId, u64), Instant>,
    /// `Elected` events: (lane, epoch) → when the bench saw it.
    pub elected: BTreeMap<(ConsortiumId, u64), Instant>,
}

impl Tally {
    /// `node` stored relay block `key` with `records` at `at` (its `Committed` event;
    /// `produced` when it is the block's relay); `relays` is every lane's relay now.
    pub fn stored(
        &mut self,
        node: Address,
        key: BlockKey,
        produced: bool,
        records: Vec<RecordStamp>,
        relays: &BTreeMap<ConsortiumId, Address>,
        at: u64,
    ) {
        if produced {
            self.relay_blocks += 1;
        }
        let entry = self
            .partial
            .entry(key)
            .or_insert_with(|| (BTreeSet::new(), records));
        entry.0.insert(node);
        if relays.values().all(|r| entry.0.contains(r)) {
            self.complete_block(key, at);
        }
    }

    /// The relays changed at `at` (an election): the blocks every one of `relays` holds
    /// are complete.
    pub fn relays_changed(&mut self, relays: &BTreeMap<ConsortiumId, Address>, at: u64) {
        let done: Vec<BlockKey> = self
            .partial
            .iter()
            .filter(|(_, (holders, _))| relays.values().all(|r| holders.contains(r)))
            .map(|(key, _)| *key)
            .collect();
        for key in done {
            self.complete_block(key, at);
        }
    }

    /// Counts relay block `key` as stored by every relay at `at`.
    fn complete_block(&mut self, key: BlockKey, at: u64) {
        let Some((_, stamps)) = self.partial.remove(&key) else {
            return;
        };
        for stamp in stamps {
            if !self.seen.insert((stamp.author, stamp.seq)) {
                self.duplicates += 1;
                continue;
            }
            self.complete += 1;
            if self.measuring {
                let latency = at.saturating_sub(stamp.created_at);
                if stamp.urgent {
                    self.urgent.record(latency);
                } else {
                    self.normal.record(latency);
                }
            }
        }
    }
}

/// Locks `tally`; an error if the event task panicked while holding it.
pub fn lock(tally: &Mutex<Tally>) -> Result<std::sync::MutexGuard<'_, Tally>> {
    tally.lock().map_err(|_| anyhow!("the event task panicked"))
}

/// Runs `spec` with its data directory at `dir`, on the calling thread's tokio runtime;
/// `None` when `stop` is asked first. Stopped or not, the federation is shut down (its
/// threads joined, its store flushed) before this returns: a bench that once returned with
/// the federation still running was killed at its exit, in about 1 of 30 runs of the
/// SIGTERM test.
pub async fn run(
    dir: &Path,
    spec: RunSpec,
    stop: Option<&StopSignal>,
) -> Result<Option<RunResult>> {
    let lanes = spec.config.consortiums.len();
    let builder = Federation::builder(spec.config.clone())
        .data_dir(dir)
        .workload(spec.load == Load::Workload)
        .sync(true);
    let federation = builder.start().await?;
    let outcome = match stop {
        Some(stop) => tokio::select! {
            outcome = measure(&federation, &spec, lanes) => Some(outcome),
            () = stop.wait() => None,
        },
        None => Some(measure(&federation, &spec, lanes).await),
    };
    federation.shutdown().await?;
    outcome.transpose()
}

async fn measure(federation: &FederationHandle, spec: &RunSpec, lanes: usize) -> Result<RunResult> {
    let events = federation.subscribe();
    // Every lane's relay serves, or the timeout passes (a large federation may need long).
    let _ = tokio::time::timeout(spec.serve_timeout, federation.ready()).await;
    let idle_rss_mib = super::peak_rss_mib().unwrap_or(0.0);
    let relays: BTreeMap<ConsortiumId, Address> = federation
        .relays()
        .into_iter()
        .map(|(lane, (_, relay, _))| (lane, relay))
        .collect();
    let members = federation.members();
    let writers = writers(&members);
    let index: BTreeMap<Address, usize> = writers
        .iter()
        .enumerate()
        .filter_map(|(i, (name, _))| Some((federation.address_of(name).ok()?, i)))
        .collect();
    let acked: Arc<Vec<AtomicU64>> = Arc::new(writers.iter().map(|_| AtomicU64::new(0)).collect());
    let wakers: Arc<Vec<Notify>> = Arc::new(writers.iter().map(|_| Notify::new()).collect());
    let tally = Arc::new(Mutex::new(Tally::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let counter = tokio::spawn(count_events(
        events,
        relays,
        index,
        acked.clone(),
        wakers.clone(),
        tally.clone(),
    ));
    let submitted = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let in_flight = (IN_FLIGHT_TOTAL / writers.len().max(1) as u64).max(1);
    let mut presigned = 0;
    let ran_dry = Arc::new(AtomicU64::new(0));
    if spec.load == Load::SaturateSigned {
        // Signed here, before the warm-up: signing is the client's work (SPEC §12 D8).
        // Every pool is signed before any writer starts.
        let pool = presigned_pool(spec.warm_up + spec.window);
        let seed = spec.config.seed;
        let mut pools = Vec::new();
        for (name, consortium) in &writers {
            let key = Keypair::derive(Domain::NodeKey, seed, name);
            if federation.address_of(name)? != key.address() {
                return Err(anyhow!("{name}'s key is not derived from the seed"));
            }
            let first = federation.last_seq(name).await? + 1;
            pools.push(sign_ahead(
                &key,
                name,
                *consortium,
                lanes as u16,
                first,
                pool,
            ));
        }
        for (i, records) in pools.into_iter().enumerate() {
            presigned += records.len() as u64;
            tasks.push(tokio::spawn(write_signed(
                federation.clone(),
                records,
                i,
                in_flight,
                acked.clone(),
                wakers.clone(),
                stop.clone(),
                submitted.clone(),
                ran_dry.clone(),
            )));
        }
    }
    if spec.load == Load::Saturate {
        for (i, (name, consortium)) in writers.iter().enumerate() {
            tasks.push(tokio::spawn(write(
                federation.clone(),
                name.clone(),
                i,
                *consortium,
                lanes as u16,
                in_flight,
                acked.clone(),
                wakers.clone(),
                stop.clone(),
                submitted.clone(),
            )));
        }
    }

    tokio::time::sleep(spec.warm_up).await;
    let (records0, consortium0, relay0, elections0) = {
        let mut t = lock(&tally)?;
        t.measuring = true;
        (
            t.complete,
            t.consortium_blocks,
            t.relay_blocks,
            t.elections.len(),
        )
    };
    let started = Instant::now();
    tokio::time::sleep(spec.window).await;
    let window_s = started.elapsed().as_secs_f64();
    let mut result = {
        let mut t = lock(&tally)?;
        t.measuring = false;
        let records = t.complete - records0;
        RunResult {
            members: members.len(),
            serving: federation.lanes_serving(),
            window_s,
            records,
            records_per_s: records as f64 / window_s,
            urgent: std::mem::take(&mut t.urgent),
            normal: std::mem::take(&mut t.normal),
            relay_blocks: t.relay_blocks - relay0,
            consortium_blocks: t.consortium_blocks - consortium0,
            elections: t.elections.len() - elections0,
            idle_rss_mib,
            presigned,
            ..RunResult::default()
        }
    };
    if spec.load == Load::SaturateSigned {
        // Created before the run: their latency from creation says nothing.
        result.urgent = Latencies::default();
        result.normal = Latencies::default();
    }

    stop.store(true, Ordering::SeqCst);
    for waker in wakers.iter() {
        waker.notify_one();
    }
    for task in tasks {
        task.await??;
    }
    result.writers_ran_dry = ran_dry.load(Ordering::SeqCst) as usize;
    if matches!(spec.load, Load::Saturate | Load::SaturateSigned) {
        let stopped = Instant::now();
        let total = submitted.load(Ordering::SeqCst);
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        while stopped.elapsed() < spec.drain {
            tick.tick().await;
            if lock(&tally)?.complete >= total {
                result.drained_s = Some(stopped.elapsed().as_secs_f64());
                break;
            }
        }
    }

    // Failover: crash the relay of lane after lane, and time the crash to the first relay
    // block of the new epoch (`Event::TookOver`), as the bench sees the events.
    for lane in federation.relays().keys().copied().take(spec.failovers) {
        let Some(&(epoch, relay, _)) = federation.relays().get(&lane) else {
            continue;
        };
        let name = federation.name_of(&relay);
        let crashed = Instant::now();
        federation.crash_node(&name).await?;
        let deadline = crashed + Duration::from_secs(10);
        let mut done = false;
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
            let t = lock(&tally)?;
            if let Some((key, seen)) = t
                .took_over
                .range((lane, epoch + 1)..=(lane, u64::MAX))
                .next()
            {
                result
                    .failover_ms
                    .push(seen.saturating_duration_since(crashed).as_secs_f64() * 1e3);
                if let Some(elected) = t.elected.get(key) {
                    result
                        .takeover_ms
                        .push(seen.saturating_duration_since(*elected).as_secs_f64() * 1e3);
                }
                done = true;
                break;
            }
        }
        if !done {
            result.failover_timeouts += 1;
        }
        // Let the lane settle before the next crash.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let t = lock(&tally)?;
    result.duplicates = t.duplicates;
    result.lagged = t.lagged;
    drop(t);
    counter.abort();
    Ok(result)
}

/// Who writes: at most [`MAX_WRITERS`] members, taken round robin over the consortiums.
fn writers(members: &[(ConsortiumId, String)]) -> Vec<(String, ConsortiumId)> {
    let mut by_lane: BTreeMap<ConsortiumId, Vec<&String>> = BTreeMap::new();
    for (lane, name) in members {
        by_lane.entry(*lane).or_default().push(name);
    }
    let mut chosen = Vec::new();
    let mut depth = 0;
    while chosen.len() < MAX_WRITERS.min(members.len()) {
        for (lane, names) in &by_lane {
            if let Some(name) = names.get(depth) {
                if chosen.len() < MAX_WRITERS {
                    chosen.push(((*name).clone(), *lane));
                }
            }
        }
        depth += 1;
    }
    chosen
}

/// Follows the events: acknowledgements per writer (waking it), elections, take-overs,
/// and relay blocks until every lane's current relay has stored them. `relays` are the
/// lanes' current relays, `index` the writers' numbers by address, `acked` and `wakers`
/// by writer number (see [`write()`]). Ends when the event stream closes.
pub async fn count_events(
    mut events: broadcast::Receiver<Event>,
    mut relays: BTreeMap<ConsortiumId, Address>,
    index: BTreeMap<Address, usize>,
    acked: Arc<Vec<AtomicU64>>,
    wakers: Arc<Vec<Notify>>,
    tally: Arc<Mutex<Tally>>,
) -> Result<()> {
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                lock(&tally)?.lagged += n;
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return Ok(()),
        };
        match event {
            Event::Acked {
                member, records, ..
            } => {
                if let Some(&i) = index.get(&member) {
                    acked[i].fetch_add(u64::from(records), Ordering::SeqCst);
                    wakers[i].notify_one();
                }
                lock(&tally)?.consortium_blocks += 1;
            }
            Event::Elected {
                consortium,
                epoch,
                relay,
                reason,
                at,
                ..
            } => {
                relays.insert(consortium, relay);
                let mut t = lock(&tally)?;
                t.elected
                    .entry((consortium, epoch))
                    .or_insert_with(Instant::now);
                t.elections.push(format!("{reason:?}"));
                t.relays_changed(&relays, at);
            }
            Event::TookOver {
                consortium, epoch, ..
            } => {
                lock(&tally)?
                    .took_over
                    .entry((consortium, epoch))
                    .or_insert_with(Instant::now);
            }
            Event::Committed {
                node,
                lane,
                height,
                epoch,
                produced,
                records,
                at,
                ..
            } => {
                lock(&tally)?.stored(node, (lane, height, epoch), produced, records, &relays, at);
            }
            _ => {}
        }
    }
}

/// How many records each writer signs before a pre-signed run of `timed` (warm-up and
/// window): 250 a second, about three times what one writer of the four-party federation
/// gets acknowledged (1,200 to 1,900 records/s over 17 writers).
fn presigned_pool(timed: Duration) -> u64 {
    (timed.as_secs_f64() * 250.0).ceil() as u64
}

/// The body of record number `n` of a writer called `name`: a data offer, and one urgent
/// energy supply in [`URGENT_EVERY`].
fn body(name: &str, n: u64) -> RecordBody {
    if n % URGENT_EVERY == 0 {
        RecordBody::EnergySupply {
            wh: 1_000 * n,
            price: 90 * n,
            slot: n,
        }
    } else {
        RecordBody::DataTrade {
            digest: Hash::of(Domain::Record, &[name.as_bytes(), &n.to_be_bytes()]),
            description: "quarter-hour consumption profile".into(),
            price: 500,
            size: 4_096,
        }
    }
}

/// The audience of a writer of consortium `own` (of `lanes`): its own and the next.
fn audience(own: ConsortiumId, lanes: u16) -> Audience {
    let mut audience = vec![own, ConsortiumId((own.0 + 1) % lanes.max(1))];
    audience.sort();
    audience.dedup();
    Audience::Consortiums(audience)
}

/// `count` records of member `name` (whose key is `key`, of consortium `own`), signed now,
/// with seqs from `first`: what [`write_signed`] submits.
fn sign_ahead(
    key: &Keypair,
    name: &str,
    own: ConsortiumId,
    lanes: u16,
    first: u64,
    count: u64,
) -> Vec<Record> {
    let created_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let audience = audience(own, lanes);
    (0..count)
        .map(|i| {
            RecordContent {
                author: key.address(),
                seq: first + i,
                created_at,
                audience: audience.clone(),
                body: body(name, i + 1),
            }
            .sign(key)
        })
        .collect()
}

/// A writer task of a pre-signed run: submits `records` (signed by [`sign_ahead`]) in
/// order with [`FederationHandle::submit_signed`], with at most `in_flight`
/// unacknowledged, as [`write()`] does. Counts itself in `ran_dry` if it submits them all
/// before `stop`.
#[allow(clippy::too_many_arguments)]
async fn write_signed(
    federation: FederationHandle,
    records: Vec<Record>,
    i: usize,
    in_flight: u64,
    acked: Arc<Vec<AtomicU64>>,
    wakers: Arc<Vec<Notify>>,
    stop: Arc<AtomicBool>,
    submitted: Arc<AtomicU64>,
    ran_dry: Arc<AtomicU64>,
) -> Result<()> {
    let mut records = records.into_iter();
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        if n >= acked[i].load(Ordering::SeqCst) + in_flight {
            let _ = tokio::time::timeout(Duration::from_millis(100), wakers[i].notified()).await;
            continue;
        }
        let Some(record) = records.next() else {
            ran_dry.fetch_add(1, Ordering::SeqCst);
            return Ok(());
        };
        n += 1;
        if federation.submit_signed(record).await.is_err() {
            // Crashed or stopped: this writer is done.
            return Ok(());
        }
        submitted.fetch_add(1, Ordering::SeqCst);
    }
    Ok(())
}

/// A writer task: data offers, and one urgent energy supply in [`URGENT_EVERY`], as
/// member `name` of consortium `own` (of `lanes`) for the next consortium, with at most
/// `in_flight` unacknowledged. It is writer number `i` in `acked` and `wakers` (kept by
/// [`count_events`]), counts each record it submits in `submitted`, and ends when `stop`
/// is set or a submit fails (its member crashed or the federation stopped).
#[allow(clippy::too_many_arguments)]
pub async fn write(
    federation: FederationHandle,
    name: String,
    i: usize,
    own: ConsortiumId,
    lanes: u16,
    in_flight: u64,
    acked: Arc<Vec<AtomicU64>>,
    wakers: Arc<Vec<Notify>>,
    stop: Arc<AtomicBool>,
    submitted: Arc<AtomicU64>,
) -> Result<()> {
    let audience = audience(own, lanes);
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        if n >= acked[i].load(Ordering::SeqCst) + in_flight {
            // Wake at least every 100 ms: a block lost with a crashed relay is resent
            // and acknowledged later, or never (the writer then stays parked until stop).
            let _ = tokio::time::timeout(Duration::from_millis(100), wakers[i].notified()).await;
            continue;
        }
        n += 1;
        if federation
            .submit(&name, audience.clone(), body(&name, n))
            .await
            .is_err()
        {
            // Crashed or stopped: this writer is done.
            return Ok(());
        }
        submitted.fetch_add(1, Ordering::SeqCst);
    }
    Ok(())
}
