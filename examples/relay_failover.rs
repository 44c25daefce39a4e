//! Crashes the source consortium's relay in the middle of a run and shows the failover of
//! SPEC §5: the supervisor misses its heartbeats, promotes the backup at once under a new
//! epoch (an election with reason `Failover`), the new relay syncs the lane's head and
//! takes over; and no block that was acknowledged to a member is lost (SPEC §12 D4).
//!
//! The check at the end is done on the chains, not on the events: every consortium block
//! of a source member that was acknowledged (before the crash by the old relay, or after
//! it by the new one) must be in the new relay's copy of the member's consortium lane, and,
//! when it carries records for other consortiums, included in a relay block of the source
//! lane in the new relay's copy of the relay chain. The example exits non-zero if any is
//! missing.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example relay_failover
//! cargo run --example relay_failover -- --data ./failover-data --seed 3
//! RUST_LOG=info cargo run --example relay_failover     # the actors' own log lines too
//! ```
//!
//! The period is raised to 60 s so that no rotation happens during the run, and the
//! federation runs its usual workload besides the records this example submits.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use ieschain::config::FederationConfig;
use ieschain::federation::{Federation, FederationError, FederationHandle};
use ieschain_core::election::ElectionReason;
use ieschain_core::node::Event;
use ieschain_core::{Address, AnyBlock, Audience, ChainId, ConsortiumId, Hash, RecordBody};
use tokio::sync::broadcast::{self, error::RecvError};

const USAGE: &str = "usage: relay_failover [--data DIR] [--seed N]";

/// How long the example submits records before it crashes the relay.
const BEFORE_CRASH: Duration = Duration::from_secs(2);
/// How long it keeps submitting after the take-over.
const AFTER_TAKE_OVER: Duration = Duration::from_secs(1);
/// The longest any one step may take before the example gives up.
const STEP_TIMEOUT: Duration = Duration::from_secs(15);

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let (data, seed) = parse()?;
    let temp = tempfile::tempdir()?;
    let data = data.unwrap_or_else(|| temp.path().join("ieschain-data"));

    let mut config = FederationConfig::four_party();
    config.timing.period = Duration::from_secs(60);
    let timing = config.timing;
    let source = config
        .consortium_id("source")
        .context("the four-party federation has a source consortium")?;
    let mut builder = Federation::builder(config).data_dir(&data);
    if let Some(seed) = seed {
        builder = builder.seed(seed);
    }
    let federation = builder.start().await?;
    let mut events = federation.subscribe();
    let mut watch = Watch::new(federation.clone(), source);
    println!(
        "four-party federation, data in {}; heartbeat every {:?}, a relay is declared failed after {} missed",
        data.display(),
        timing.heartbeat_interval,
        timing.suspect_after
    );

    // 1. Wait until the source consortium's relay serves.
    let took_over = watch
        .until(
            &mut events,
            "the source relay to take over",
            |e| matches!(e, Event::TookOver { consortium, .. } if *consortium == source),
        )
        .await?;
    let Event::TookOver {
        epoch: old_epoch,
        relay: old_relay,
        ..
    } = took_over
    else {
        bail!("expected a take-over, got {took_over:?}");
    };
    let old_relay_name = federation.name_of(&old_relay);
    let old_backup = federation
        .relays()
        .get(&source)
        .and_then(|(_, _, backup)| *backup);

    // 2. Submit records as every source member, and watch them being acknowledged.
    let members: Vec<String> = federation
        .members()
        .into_iter()
        .filter(|(c, _)| *c == source)
        .map(|(_, name)| name)
        .collect();
    println!(
        "[{}] submitting records as {} for {:?}",
        watch.stamp(),
        members.join(", "),
        BEFORE_CRASH
    );
    let grid = federation
        .genesis()
        .consortiums
        .iter()
        .find(|c| c.name == "grid")
        .map(|c| c.id)
        .context("the four-party federation has a grid consortium")?;
    let mut audience = vec![source, grid];
    audience.sort();
    let submitter = Submitter::start(federation.clone(), members, Audience::Consortiums(audience));
    watch
        .run_for(&mut events, BEFORE_CRASH)
        .await
        .context("before the crash")?;

    // 3. Crash the relay.
    let acked_before = watch.acked.len();
    println!(
        "[{}] {} source blocks acknowledged so far; CRASHING the source relay {old_relay_name} (epoch {old_epoch})",
        watch.stamp(),
        acked_before
    );
    let crashed_at = Instant::now();
    federation.crash(&old_relay_name).await?;
    watch.crashed = Some(old_relay);

    // 4. The backup is promoted under a new epoch, then takes over.
    let elected = watch
        .until(&mut events, "the failover election", |e| {
            matches!(e, Event::Elected { consortium, reason: ElectionReason::Failover, .. } if *consortium == source)
        })
        .await?;
    let Event::Elected {
        epoch: new_epoch,
        relay: new_relay,
        ..
    } = elected
    else {
        bail!("expected an election, got {elected:?}");
    };
    let detected = crashed_at.elapsed();
    watch
        .until(&mut events, "the new relay to take over", |e| {
            matches!(e, Event::TookOver { consortium, epoch, .. } if *consortium == source && *epoch == new_epoch)
        })
        .await?;
    let serving = crashed_at.elapsed();
    let new_relay_name = federation.name_of(&new_relay);
    println!(
        "[{}] failover: detected {:.0} ms after the crash, {new_relay_name} serving {:.0} ms after it (SPEC §12 D10 bound L1: (suspect_after + 1) × heartbeat = {:?} plus 3 network delays)",
        watch.stamp(),
        detected.as_secs_f64() * 1e3,
        serving.as_secs_f64() * 1e3,
        timing.heartbeat_interval * (timing.suspect_after + 1),
    );
    ensure!(
        new_epoch > old_epoch,
        "the failover's epoch {new_epoch} is not above {old_epoch}"
    );
    ensure!(
        new_relay != old_relay,
        "the crashed relay was elected again"
    );
    if old_backup.is_some_and(|b| b != new_relay) {
        println!("  (note: the backup at the crash was not the one promoted)");
    }

    // 5. Keep writing through the new relay for a while, then stop and check the chains.
    watch
        .run_for(&mut events, AFTER_TAKE_OVER)
        .await
        .context("after the take-over")?;
    let submitted = submitter.stop().await?;
    // Every block acknowledged until now must survive; later ones are not checked.
    let acked: BTreeMap<(Address, u64), Phase> = watch.acked.clone();
    println!(
        "[{}] stopped submitting ({submitted} records submitted by this example); checking the {} acknowledged source blocks in {new_relay_name}'s copies of the chains",
        watch.stamp(),
        acked.len()
    );
    let store = federation.store();
    let relay_chain = ChainId::Relay(source);
    // Re-check after each relay block of the source lane reaches the new relay, until every
    // acknowledged block with records for other consortiums is on the relay chain.
    let outcome = loop {
        let outcome = check(&*store, new_relay, source, &acked)?;
        if outcome.not_included.is_empty() || !outcome.missing.is_empty() {
            break outcome;
        }
        let waited = watch
            .until(&mut events, "the last acknowledged blocks to reach the relay chain", |e| {
                matches!(e, Event::Committed { node, lane, .. } if *node == new_relay && *lane == source)
            })
            .await;
        if waited.is_err() {
            break check(&*store, new_relay, source, &acked)?;
        }
    };
    let relay_height = store.head(new_relay, relay_chain)?.map_or(0, |h| h.height);
    let stats = federation.stats();
    federation.shutdown().await?;

    let before = acked.values().filter(|p| **p == Phase::BeforeCrash).count();
    let during = acked.values().filter(|p| **p == Phase::Failover).count();
    let after = acked
        .values()
        .filter(|p| **p == Phase::AfterTakeOver)
        .count();
    println!(
        "\nchecked {} acknowledged blocks of source members: {before} acknowledged by {old_relay_name} before the crash, {during} during the failover, {after} by {new_relay_name} after it",
        acked.len()
    );
    println!(
        "  {} held in {new_relay_name}'s copy of their consortium lanes; {} of them carry records for other consortiums and are included in the source relay lane (height {relay_height}); {} are consortium-internal and stay on the consortium chain",
        acked.len() - outcome.missing.len(),
        outcome.included,
        outcome.internal
    );
    println!(
        "  federation: {} elections ({} failovers), {} records committed in {} relay blocks",
        stats.elections, stats.failovers, stats.records_committed, stats.relay_blocks
    );
    for (member, height) in &outcome.missing {
        println!("  LOST: block {height} of {member} is not in {new_relay_name}'s copy");
    }
    for (member, height) in &outcome.not_included {
        println!(
            "  LOST: block {height} of {member} was acknowledged but never reached the relay chain"
        );
    }
    if !outcome.missing.is_empty() || !outcome.not_included.is_empty() {
        bail!(
            "{} acknowledged blocks lost in the failover",
            outcome.missing.len() + outcome.not_included.len()
        );
    }
    ensure!(!acked.is_empty(), "no block was acknowledged");
    println!("no acknowledged block was lost");
    Ok(())
}

fn parse() -> Result<(Option<PathBuf>, Option<u64>)> {
    let (mut data, mut seed) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--data" => data = Some(PathBuf::from(args.next().context("--data needs a value")?)),
            "--seed" => {
                let text = args.next().context("--seed needs a value")?;
                seed = Some(
                    text.parse()
                        .with_context(|| format!("--seed must be a whole number, not {text:?}"))?,
                );
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unexpected argument {other:?}\n{USAGE}"),
        }
    }
    Ok((data, seed))
}

/// When a block was acknowledged, relative to the crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    BeforeCrash,
    Failover,
    AfterTakeOver,
}

/// Follows the event stream: records the acknowledgements of source members and prints
/// the source consortium's elections and take-overs.
struct Watch {
    federation: FederationHandle,
    source: ConsortiumId,
    members: BTreeSet<Address>,
    started: Instant,
    crashed: Option<Address>,
    took_over_after_crash: bool,
    acked: BTreeMap<(Address, u64), Phase>,
}

impl Watch {
    fn new(federation: FederationHandle, source: ConsortiumId) -> Self {
        let members = federation
            .members()
            .into_iter()
            .filter(|(c, _)| *c == source)
            .filter_map(|(_, name)| federation.address_of(&name).ok())
            .collect();
        Watch {
            federation,
            source,
            members,
            started: Instant::now(),
            crashed: None,
            took_over_after_crash: false,
            acked: BTreeMap::new(),
        }
    }

    fn stamp(&self) -> String {
        format!("{:>6.2}s", self.started.elapsed().as_secs_f64())
    }

    fn observe(&mut self, event: &Event) {
        let name = |a: &Address| self.federation.name_of(a);
        match event {
            Event::Acked { member, height, .. } if self.members.contains(member) => {
                let phase = match (self.crashed, self.took_over_after_crash) {
                    (None, _) => Phase::BeforeCrash,
                    (Some(_), false) => Phase::Failover,
                    (Some(_), true) => Phase::AfterTakeOver,
                };
                self.acked.entry((*member, *height)).or_insert(phase);
            }
            Event::Elected {
                consortium,
                epoch,
                reason,
                relay,
                backup,
                ..
            } if *consortium == self.source => println!(
                "[{}] elected    source epoch {epoch} ({reason:?}): relay {}, backup {}",
                self.stamp(),
                name(relay),
                backup.as_ref().map_or("-".into(), name)
            ),
            Event::TookOver {
                consortium,
                epoch,
                relay,
                ..
            } if *consortium == self.source => {
                if self.crashed.is_some() {
                    self.took_over_after_crash = true;
                }
                println!(
                    "[{}] took over  source epoch {epoch}: {} sent its first relay block",
                    self.stamp(),
                    name(relay)
                );
            }
            Event::Stalled {
                lane,
                epoch,
                waiting_for,
                ..
            } if *lane == self.source => {
                println!(
                    "[{}] stalled    source epoch {epoch}: waiting for {} of the source configuration",
                    self.stamp(),
                    waiting_for.iter().map(name).collect::<Vec<_>>().join(" or ")
                )
            }
            Event::CutOff { consortium, .. } if *consortium == self.source => {
                println!("[{}] CUT OFF    source: no candidate left", self.stamp())
            }
            _ => {}
        }
    }

    /// Follows events until one satisfies `wanted`, for at most [`STEP_TIMEOUT`].
    async fn until(
        &mut self,
        events: &mut broadcast::Receiver<Event>,
        what: &str,
        wanted: impl Fn(&Event) -> bool,
    ) -> Result<Event> {
        let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Err(_) => bail!("timed out after {STEP_TIMEOUT:?} waiting for {what}"),
                Ok(Err(RecvError::Lagged(missed))) => {
                    bail!("missed {missed} events while waiting for {what}")
                }
                Ok(Err(RecvError::Closed)) => bail!("the federation stopped"),
                Ok(Ok(event)) => {
                    self.observe(&event);
                    if wanted(&event) {
                        return Ok(event);
                    }
                }
            }
        }
    }

    /// Follows events for `span`.
    async fn run_for(
        &mut self,
        events: &mut broadcast::Receiver<Event>,
        span: Duration,
    ) -> Result<()> {
        let deadline = tokio::time::Instant::now() + span;
        loop {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Err(_) => return Ok(()),
                Ok(Err(RecvError::Lagged(missed))) => bail!("missed {missed} events"),
                Ok(Err(RecvError::Closed)) => bail!("the federation stopped"),
                Ok(Ok(event)) => self.observe(&event),
            }
        }
    }
}

/// A task that submits records as the given members every 50 ms, for `audience`: a data
/// offer (non-urgent) each time, and energy supply (urgent) every third round.
struct Submitter {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Result<()>>,
    submitted: Arc<AtomicU64>,
}

impl Submitter {
    fn start(federation: FederationHandle, members: Vec<String>, audience: Audience) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let submitted = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn({
            let (stop, submitted) = (stop.clone(), submitted.clone());
            async move {
                let mut round = 0u64;
                let mut tick = tokio::time::interval(Duration::from_millis(50));
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    round += 1;
                    for name in &members {
                        let mut writes = vec![RecordBody::DataTrade {
                            digest: Hash::of(
                                ieschain_core::Domain::Record,
                                &[&round.to_be_bytes()],
                            ),
                            description: format!("{name}: generation forecast {round}"),
                            price: 10,
                            size: 2_048,
                        }];
                        if round % 3 == 0 {
                            writes.push(RecordBody::EnergySupply {
                                wh: 1_000 * round,
                                price: 80 * round,
                                slot: round,
                            });
                        }
                        for body in writes {
                            match federation.submit(name, audience.clone(), body).await {
                                Ok(_) => {
                                    submitted.fetch_add(1, Ordering::Relaxed);
                                }
                                // The crashed relay takes no more writes.
                                Err(FederationError::NotRunning(_)) => break,
                                Err(err) => return Err(err.into()),
                            }
                        }
                    }
                }
                Ok(())
            }
        });
        Submitter {
            stop,
            task,
            submitted,
        }
    }

    /// Stops the task; returns how many records it submitted.
    async fn stop(self) -> Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await??;
        Ok(self.submitted.load(Ordering::Relaxed))
    }
}

/// What the new relay's copies say about the acknowledged blocks.
#[derive(Debug, Default)]
struct Outcome {
    /// Acknowledged blocks the new relay does not hold.
    missing: Vec<(String, u64)>,
    /// Held blocks with records for other consortiums that no relay block includes yet.
    not_included: Vec<(String, u64)>,
    /// Held blocks included in the source relay lane.
    included: usize,
    /// Held blocks with consortium-internal records only (they never go on the relay chain).
    internal: usize,
}

fn check(
    store: &dyn ieschain_storage::ChainStore,
    relay: Address,
    lane: ConsortiumId,
    acked: &BTreeMap<(Address, u64), Phase>,
) -> Result<Outcome> {
    let names = ieschain_core::genesis::Directory::from_genesis(store.genesis());
    let mut included = BTreeSet::new();
    let chain = ChainId::Relay(lane);
    let head = store.head(relay, chain)?.map_or(0, |h| h.height);
    let mut from = 1;
    while from <= head {
        let blocks = store.range(relay, chain, from, 64)?;
        if blocks.is_empty() {
            break;
        }
        from += blocks.len() as u64;
        for block in blocks {
            if let AnyBlock::Relay(block) = block {
                included.extend(
                    block
                        .blocks
                        .iter()
                        .map(|b| (b.header.author, b.header.height)),
                );
            }
        }
    }
    let mut outcome = Outcome::default();
    for &(member, height) in acked.keys() {
        let name = names.name(&member);
        match store.block(relay, ChainId::Consortium(lane, member), height)? {
            Some(AnyBlock::Consortium(block)) if block.is_external() => {
                if included.contains(&(member, height)) {
                    outcome.included += 1;
                } else {
                    outcome.not_included.push((name, height));
                }
            }
            Some(AnyBlock::Consortium(_)) => outcome.internal += 1,
            _ => outcome.missing.push((name, height)),
        }
    }
    Ok(outcome)
}
