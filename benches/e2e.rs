//! End to end: signed records per second from member to relay to every relay, persisted
//! with sync, on the four-party federation of actors (issue 3, "Benchmark"), as a ratio
//! to the verify limit `cores × verify_strict rate ÷ relays`, with the verify_strict rate
//! measured first, on one core, by this binary in this run. Also the p50 and p99 latency
//! of urgent and of non-urgent records, from creation to the last relay.
//!
//! ```text
//! cargo bench --profile dev --bench e2e
//! cargo bench --profile dev --bench e2e -- --test      # a short smoke run
//! ```
//!
//! A plain `harness = false` main that prints a table, not criterion: one measurement is a
//! whole federation under load for many seconds, so there is nothing to iterate. It takes
//! about 100 seconds. For exploring: `E2E_RUNS=0,2` runs only those runs (numbered from
//! 0, in the order below), and `E2E_IN_FLIGHT=N` changes [`IN_FLIGHT`].
//!
//! What it does, in order:
//! 1. **verify_strict/s on one core**, over real signed service records (signed before
//!    timing), median of 5 rounds: as the nodes call it (`PublicKey::verify`), and raw
//!    (`ed25519_dalek` decompressing the key and calling `verify_strict` each time). The
//!    limit uses the faster. Also sign/s, because the handle signs each record on the
//!    actor thread (see below).
//! 2. **Saturated, synced** (the figure): the four-party federation as shipped, but with
//!    the members' own workload off and the period raised to 10 minutes so that no
//!    rotation falls in the window; `sync` on, in a temporary directory on the same disk
//!    as the other benches. One tokio task per member (17) submits data offers for
//!    another consortium (non-urgent, so they travel on the relay chain) through the
//!    `FederationHandle`, as fast as the relay acknowledges them: at most [`IN_FLIGHT`]
//!    records per member submitted and not yet acknowledged. One record in 200
//!    (`ieschain::bench::load::URGENT_EVERY`) is energy supply (urgent), for the urgent
//!    latency. After a [`WARM_UP`], it counts over [`WINDOW`] the records whose relay block
//!    every lane's relay has stored: a relay block counts when `Committed` events from all
//!    four current relays (the producer's included) have arrived, and each record counts
//!    once. The writers and the event counting are `ieschain bench`'s
//!    (`ieschain::bench::load::{write, count_events}`).
//! 3. **The same with a slow failure detector** (diagnostic): a heartbeat every 500 ms,
//!    failed after 10 missed, because under this load the default detector (200 ms × 3)
//!    takes the busy actor thread for failed relays, and the elections that follow
//!    dominate run 2.
//! 4. **The same without sync** (diagnostic, slow detector): what the fsyncs cost.
//! 5. **The default workload, synced**: the members' own workload of
//!    `federations/four-party.toml` (light: about 7 records a second reach the relay
//!    chain), for latency at nominal load.
//!
//! For each run it reads the federation's actor thread's (`ieschain-actix`) schedstat in
//! `/proc`: time on a CPU, and time runnable but waiting for one. The rest of the window
//! it was blocked: in fsync, or idle. After each saturated run it stops the writers and
//! waits until everything they submitted is at every relay.
//!
//! Signing: SPEC §12 D8 wants signing outside the timed part, as the client's work; but
//! `FederationHandle::submit` takes a record body and the member actor signs it, on the
//! actor thread. So the figure includes one signature per record; the output shows what
//! that costs.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ieschain::bench::load::{count_events, lock, write, Tally};
use ieschain::config::FederationConfig;
use ieschain::federation::{Federation, Latencies};
use ieschain_core::{Address, ConsortiumId, Hash, Record};
use tokio::sync::Notify;

/// Records a member may have submitted and not yet had acknowledged.
const IN_FLIGHT: u64 = 100;
/// Load before the measurement starts.
const WARM_UP: Duration = Duration::from_secs(3);
/// The measurement.
const WINDOW: Duration = Duration::from_secs(20);
/// The diagnostic runs and the default-workload run.
const WINDOW_DIAGNOSTIC: Duration = Duration::from_secs(10);
/// The longest wait, after the writers stop, for what they submitted to reach every relay.
const DRAIN: Duration = Duration::from_secs(15);
/// The target of the issue: this fraction of the verify limit.
const TARGET: f64 = 0.5;

fn main() -> Result<()> {
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("error"))
        .try_init();
    // `cargo test --benches` and `-- --test` run a short smoke version.
    let smoke = common::test_mode();
    let scale = |d: Duration| if smoke { d / 10 } else { d };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    let rates = crypto_rates(if smoke { 1 } else { 5 });
    // The faster of the two, so that a key cache in `PublicKey::verify` raises the limit
    // rather than the ratio.
    let verify_rate = rates.verify.max(rates.raw_verify);
    let sign_rate = rates.sign;
    let relays = FederationConfig::four_party().consortiums.len();
    let limit = cores as f64 * verify_rate / relays as f64;
    println!(
        "e2e: four-party federation (17 members, {relays} relays), {cores} cores, {} mode",
        if smoke { "smoke-test" } else { "bench" }
    );
    println!(
        "on one core: verify_strict {:.0} /s ({:.1} µs) as the nodes call it (PublicKey::verify), {:.0} /s ({:.1} µs) raw (ed25519-dalek, key decompressed each time); sign {:.0} /s ({:.1} µs)",
        rates.verify,
        1e6 / rates.verify,
        rates.raw_verify,
        1e6 / rates.raw_verify,
        sign_rate,
        1e6 / sign_rate
    );
    println!(
        "verify limit = {cores} cores × {verify_rate:.0}/s ÷ {relays} relays = {limit:.0} records/s; target {TARGET} × limit = {:.0} records/s\n",
        TARGET * limit
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let temp = tempfile::tempdir_in(std::env::temp_dir())?;
    let runs = [
        Run {
            name: "saturated, synced",
            load: Load::Saturate,
            sync: true,
            detector: Detector::Default,
            window: scale(WINDOW),
        },
        Run {
            name: "saturated, synced, slow detector",
            load: Load::Saturate,
            sync: true,
            detector: Detector::Slow,
            window: scale(WINDOW_DIAGNOSTIC),
        },
        Run {
            name: "saturated, no sync, slow detector",
            load: Load::Saturate,
            sync: false,
            detector: Detector::Slow,
            window: scale(WINDOW_DIAGNOSTIC),
        },
        Run {
            name: "default workload, synced",
            load: Load::Workload,
            sync: true,
            detector: Detector::Default,
            window: scale(WINDOW_DIAGNOSTIC),
        },
    ];
    let mut results = Vec::new();
    let only: Option<Vec<usize>> = std::env::var("E2E_RUNS")
        .ok()
        .map(|v| v.split(',').filter_map(|i| i.trim().parse().ok()).collect());
    for (index, spec) in runs.iter().enumerate() {
        if only.as_ref().is_some_and(|o| !o.contains(&index)) {
            continue;
        }
        let name = spec.name;
        let dir = temp.path().join(format!("run-{index}"));
        let result = runtime
            .block_on(run(&dir, spec, scale(WARM_UP), scale(DRAIN)))
            .with_context(|| format!("run {name:?}"))?;
        println!(
            "  {name}: {:.0} records/s at every relay over {:.1} s\n    {}",
            result.throughput, result.window_s, result.detail
        );
        results.push((name, result));
    }

    println!();
    println!(
        "{:<34} {:>9} {:>6} {:>15} {:>15} {:>8} {:>8} {:>6} {:>6} {:>7} {:>8} {:>9}",
        "run",
        "records/s",
        "ratio",
        "urgent p50/p99",
        "normal p50/p99",
        "cons.b/s",
        "relay/s",
        "cpu %",
        "wait %",
        "µs/rec",
        "drained",
        "elections"
    );
    for (name, r) in &results {
        let per_record = if r.records == 0 || !r.saturated {
            "-".into()
        } else {
            format!("{:.0}", 1e6 * r.actor_cpu_s / r.records as f64)
        };
        println!(
            "{:<34} {:>9.0} {:>6.3} {:>15} {:>15} {:>8.1} {:>8.1} {:>5.0}% {:>5.0}% {:>7} {:>8} {:>9}",
            name,
            r.throughput,
            r.throughput / limit,
            percentiles(&r.urgent),
            percentiles(&r.normal),
            r.consortium_blocks / r.window_s,
            r.relay_blocks / r.window_s,
            100.0 * r.actor_cpu_s / r.window_s,
            100.0 * r.actor_queued_s / r.window_s,
            per_record,
            match (r.drained, r.saturated) {
                (Some(d), _) => format!("{:.1} s", d.as_secs_f64()),
                (None, true) => format!(">{:.0} s", scale(DRAIN).as_secs_f64()),
                (None, false) => "-".into(),
            },
            r.elections,
        );
    }
    println!(
        "(latencies in ms, creation to the last relay; cpu % and wait %: the actor thread on a CPU, and runnable but waiting for one, over the window; µs/rec: its CPU per record at every relay; drained: how long after the writers stopped everything was at every relay; elections: after every relay took over)"
    );
    let ceiling = 1.0 / (VERIFIES_PER_RECORD / verify_rate + 1.0 / sign_rate);
    println!(
        "\nthis design's ceiling: one actor thread doing {VERIFIES_PER_RECORD} verify_strict and 1 signature per record = {ceiling:.0} records/s = {:.3} of the verify limit",
        ceiling / limit
    );
    if let Some((name, figure)) = results.first() {
        let ratio = figure.throughput / limit;
        println!(
            "the figure ({name}): {:.0} signed records/s from member to every relay = {ratio:.3} of the verify limit ({limit:.0}/s); target {TARGET}: {}",
            figure.throughput,
            if ratio >= TARGET { "met" } else { "NOT met" }
        );
    }
    Ok(())
}

/// How many times each record's signature is checked on its way to every relay, by the
/// code of `ieschain_core::node::member`: its author's own lane (1), the relay and the
/// backup of its consortium (2), the producing relay re-validating its own relay block
/// and its backup validating the replica (2), the three other relays and their backups
/// (6).
const VERIFIES_PER_RECORD: f64 = 11.0;

/// Signature rates on the calling thread, per second: the medians of `rounds` rounds.
#[derive(Clone, Copy, Debug)]
struct CryptoRates {
    /// `PublicKey::verify`, which is `verify_strict` as every node calls it.
    verify: f64,
    /// `ed25519_dalek`'s `VerifyingKey::from_bytes` then `verify_strict`, per signature:
    /// the primitive with nothing cached.
    raw_verify: f64,
    /// `Keypair::sign`.
    sign: f64,
}

fn crypto_rates(rounds: usize) -> CryptoRates {
    let federation = common::federation();
    let members = common::members(&federation);
    let records: Vec<(ieschain_core::PublicKey, Record)> = members
        .iter()
        .flat_map(|m| {
            common::records(m, 1, 128)
                .into_iter()
                .map(|r| (m.key.public(), r))
        })
        .collect();
    let digests: Vec<Hash> = records.iter().map(|(_, r)| r.digest()).collect();
    let round = Duration::from_millis(if rounds == 1 { 100 } else { 600 });
    let mut verify = Vec::new();
    let mut raw_verify = Vec::new();
    let mut sign = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        let mut n = 0u64;
        while started.elapsed() < round {
            for ((key, record), digest) in records.iter().zip(&digests) {
                if key.verify(digest, &record.signature).is_err() {
                    panic!("a fixture record does not verify");
                }
            }
            n += records.len() as u64;
        }
        verify.push(n as f64 / started.elapsed().as_secs_f64());

        let started = Instant::now();
        let mut n = 0u64;
        while started.elapsed() < round {
            for ((key, record), digest) in records.iter().zip(&digests) {
                let verified = ed25519_dalek::VerifyingKey::from_bytes(&key.0).and_then(|k| {
                    k.verify_strict(
                        &digest.0,
                        &ed25519_dalek::Signature::from_bytes(&record.signature.0),
                    )
                });
                if verified.is_err() {
                    panic!("a fixture record does not verify");
                }
            }
            n += records.len() as u64;
        }
        raw_verify.push(n as f64 / started.elapsed().as_secs_f64());

        let key = &members[0].key;
        let started = Instant::now();
        let mut n = 0u64;
        while started.elapsed() < round {
            for digest in &digests {
                std::hint::black_box(key.sign(digest));
            }
            n += digests.len() as u64;
        }
        sign.push(n as f64 / started.elapsed().as_secs_f64());
    }
    CryptoRates {
        verify: median(&mut verify),
        raw_verify: median(&mut raw_verify),
        sign: median(&mut sign),
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// p50 and p99 of `samples` (ms) as `p50 / p99`, or `-` without samples.
fn percentiles(samples: &Latencies) -> String {
    if samples.is_empty() {
        return "-".into();
    }
    let p = samples.percentiles();
    format!("{} / {}", p.p50, p.p99)
}

/// One run of the federation.
#[derive(Debug)]
struct Run {
    name: &'static str,
    load: Load,
    sync: bool,
    detector: Detector,
    window: Duration,
}

/// The failure detector's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Detector {
    /// The four-party defaults: a heartbeat every 200 ms, failed after 3 missed.
    Default,
    /// A heartbeat every 500 ms, failed after 10 missed (5 s): slow enough that a busy
    /// actor thread is not taken for a failed relay.
    Slow,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Load {
    /// The bench's writer tasks, as fast as acknowledgements allow.
    Saturate,
    /// The members' own workload, from the configuration.
    Workload,
}

/// One run's measurement, over its window.
#[derive(Debug, Default)]
struct RunResult {
    window_s: f64,
    /// Records whose relay block every relay stored during the window.
    records: u64,
    throughput: f64,
    /// Creation to the last relay, ms, of the records counted.
    urgent: Latencies,
    normal: Latencies,
    consortium_blocks: f64,
    relay_blocks: f64,
    /// Seconds the actor thread ran on a CPU during the window.
    actor_cpu_s: f64,
    /// Seconds it was runnable but waited for a CPU (other threads, other processes).
    actor_queued_s: f64,
    /// How long after the writers stopped every submitted record was at every relay;
    /// `None` if not within the drain timeout (or not checked).
    drained: Option<Duration>,
    /// Whether the bench's writers loaded it (and so whether it was drained).
    saturated: bool,
    /// Elections after every relay took over: failovers under load, if any.
    elections: usize,
    /// Counts for the record.
    detail: String,
}

async fn run(dir: &Path, spec: &Run, warm_up: Duration, drain: Duration) -> Result<RunResult> {
    let (load, window) = (spec.load, spec.window);
    let mut config = FederationConfig::four_party();
    config.timing.period = Duration::from_secs(600);
    if spec.detector == Detector::Slow {
        config.timing.heartbeat_interval = Duration::from_millis(500);
        config.timing.suspect_after = 10;
    }
    let lanes = config.consortiums.len();
    let builder = Federation::builder(config)
        .data_dir(dir)
        .workload(load == Load::Workload)
        .sync(spec.sync);
    let federation = builder.start().await?;
    let events = federation.subscribe();

    // Every lane's relay serves.
    tokio::time::timeout(Duration::from_secs(10), federation.ready())
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "only {} of {lanes} relays took over within 10 s",
                federation.lanes_serving()
            )
        })??;
    let relays: BTreeMap<ConsortiumId, Address> = federation
        .relays()
        .into_iter()
        .map(|(lane, (_, relay, _))| (lane, relay))
        .collect();
    let actor = actor_thread().context("no ieschain-actix thread among this process's tasks")?;

    let members: Vec<(String, ConsortiumId)> = federation
        .members()
        .into_iter()
        .map(|(c, name)| (name, c))
        .collect();
    let index: BTreeMap<Address, usize> = members
        .iter()
        .enumerate()
        .filter_map(|(i, (name, _))| Some((federation.address_of(name).ok()?, i)))
        .collect();
    let acked: Arc<Vec<AtomicU64>> = Arc::new(members.iter().map(|_| AtomicU64::new(0)).collect());
    let wakers: Arc<Vec<Notify>> = Arc::new(members.iter().map(|_| Notify::new()).collect());
    let tally = Arc::new(Mutex::new(Tally::default()));
    let stop = Arc::new(AtomicBool::new(false));

    let counter = tokio::spawn(count_events(
        events,
        relays.clone(),
        index,
        acked.clone(),
        wakers.clone(),
        tally.clone(),
    ));
    let submitted = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    if load == Load::Saturate {
        let in_flight = in_flight();
        for (i, (name, consortium)) in members.iter().enumerate() {
            writers.push(tokio::spawn(write(
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

    tokio::time::sleep(warm_up).await;
    let (records0, consortium0, relay0) = {
        let mut t = lock(&tally)?;
        t.measuring = true;
        (t.complete, t.consortium_blocks, t.relay_blocks)
    };
    let (cpu0, queued0) = thread_times(actor)?;
    let started = Instant::now();
    tokio::time::sleep(window).await;
    let window_s = started.elapsed().as_secs_f64();
    let (cpu1, queued1) = thread_times(actor)?;
    let mut result = {
        let mut t = lock(&tally)?;
        t.measuring = false;
        let records = t.complete - records0;
        RunResult {
            window_s,
            records,
            throughput: records as f64 / window_s,
            urgent: std::mem::take(&mut t.urgent),
            normal: std::mem::take(&mut t.normal),
            consortium_blocks: (t.consortium_blocks - consortium0) as f64,
            relay_blocks: (t.relay_blocks - relay0) as f64,
            actor_cpu_s: cpu1 - cpu0,
            actor_queued_s: queued1 - queued0,
            drained: None,
            saturated: load == Load::Saturate,
            elections: 0,
            detail: String::new(),
        }
    };

    // Stop writing, and wait (up to `drain`) until everything submitted is at every relay.
    stop.store(true, Ordering::SeqCst);
    for waker in wakers.iter() {
        waker.notify_one();
    }
    for writer in writers {
        writer.await??;
    }
    if load == Load::Saturate {
        let stopped = Instant::now();
        let total = submitted.load(Ordering::SeqCst);
        let drain_deadline = stopped + drain;
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        while Instant::now() < drain_deadline {
            tick.tick().await;
            if lock(&tally)?.complete >= total {
                result.drained = Some(stopped.elapsed());
                break;
            }
        }
    }
    let stats = federation.stats();
    let lagged = {
        let t = lock(&tally)?;
        result.elections = t.elections.len();
        result.detail = format!(
            "submitted {}, at every relay {} (and {} again in another relay block), relay blocks not yet at every relay {}, elections after the start {:?}; federation: {} records in {} relay blocks, {} acks, elections {}, transport dropped {}, rejected {:?}",
            submitted.load(Ordering::SeqCst),
            t.complete,
            t.duplicates,
            t.partial.len(),
            t.elections,
            stats.records_committed,
            stats.relay_blocks,
            stats.acks,
            stats.elections,
            stats.transport.dropped,
            stats.rejected
        );
        t.lagged
    };
    federation.shutdown().await?;
    counter.abort();
    if lagged > 0 {
        bail!("the bench fell {lagged} events behind; its counts would be wrong");
    }
    Ok(result)
}

/// [`IN_FLIGHT`], or `E2E_IN_FLIGHT` from the environment, for exploring.
fn in_flight() -> u64 {
    std::env::var("E2E_IN_FLIGHT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(IN_FLIGHT)
}

/// The thread id of the federation's actor thread, by its name.
fn actor_thread() -> Option<i32> {
    let me = procfs::process::Process::myself().ok()?;
    // The newest one: earlier runs' threads have exited, but be safe.
    me.tasks()
        .ok()?
        .flatten()
        .filter(|task| task.stat().is_ok_and(|s| s.comm == "ieschain-actix"))
        .map(|task| task.tid)
        .max()
}

/// Seconds thread `tid` of this process has run on a CPU, and has waited, runnable, for
/// one (the task's schedstat).
fn thread_times(tid: i32) -> Result<(f64, f64)> {
    let stat = procfs::process::Process::myself()?
        .task_from_tid(tid)?
        .schedstat()?;
    Ok((
        stat.sum_exec_runtime as f64 / 1e9,
        stat.run_delay as f64 / 1e9,
    ))
}
