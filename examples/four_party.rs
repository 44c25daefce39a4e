//! Runs the paper's four-party federation (source, grid, service and load under one relay
//! chain) in real time with its workload, and narrates it from the event stream: every
//! election with its reason, epoch, relay and backup; every take-over; a sample of the
//! committed relay blocks with their urgency bit-vectors (read back from the producer's
//! copy of the relay chain); and a summary from the federation's statistics at the end.
//!
//! The run lasts 13 seconds by default, so that the relays of the initial elections serve
//! their 10-second period and a rotation follows.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example four_party
//! cargo run --example four_party -- --seconds 30 --data ./ieschain-data --seed 7
//! RUST_LOG=info cargo run --example four_party        # the actors' own log lines too
//! ```
//!
//! Without `--data` the chains go to a temporary directory that is removed at the end; with
//! it, `ieschain verify --data DIR` and `ieschain inspect --data DIR` read them afterwards.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ieschain::config::FederationConfig;
use ieschain::federation::{Federation, FederationHandle};
use ieschain_core::node::Event;
use ieschain_core::window::FlushReason;
use ieschain_core::{AnyBlock, ChainId, ConsortiumId};
use tokio::sync::broadcast::error::RecvError;

const USAGE: &str = "usage: four_party [--seconds N] [--data DIR] [--seed N]";

struct Options {
    seconds: u64,
    data: Option<PathBuf>,
    seed: Option<u64>,
}

fn parse() -> Result<Options> {
    let mut options = Options {
        seconds: 13,
        data: None,
        seed: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--seconds" => {
                let text = value("--seconds")?;
                options.seconds = text
                    .parse()
                    .with_context(|| format!("--seconds must be a whole number, not {text:?}"))?;
            }
            "--seed" => {
                let text = value("--seed")?;
                options.seed = Some(
                    text.parse()
                        .with_context(|| format!("--seed must be a whole number, not {text:?}"))?,
                );
            }
            "--data" => options.data = Some(PathBuf::from(value("--data")?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unexpected argument {other:?}\n{USAGE}"),
        }
    }
    Ok(options)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let options = parse()?;
    let temp = tempfile::tempdir()?;
    let data = options
        .data
        .clone()
        .unwrap_or_else(|| temp.path().join("ieschain-data"));

    let config = FederationConfig::four_party();
    println!(
        "four-party federation: {} consortiums, {} members; window {}, max_wait {:?}, period {:?}, heartbeat {:?} × {}",
        config.consortiums.len(),
        config.member_count(),
        config.timing.window,
        config.timing.max_wait,
        config.timing.period,
        config.timing.heartbeat_interval,
        config.timing.suspect_after,
    );
    println!(
        "data in {}, running for {} s\n",
        data.display(),
        options.seconds
    );

    let mut builder = Federation::builder(config).data_dir(&data);
    if let Some(seed) = options.seed {
        builder = builder.seed(seed);
    }
    let federation = builder.start().await?;
    // Subscribe at once: the initial elections follow the first heartbeats.
    let mut events = federation.subscribe();
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(options.seconds);
    let mut narrator = Narrator::new(federation.clone(), started);
    let mut progress = tokio::time::interval(Duration::from_secs(5));
    progress.tick().await;

    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break,
            _ = progress.tick() => narrator.progress(),
            event = events.recv() => match event {
                Ok(event) => narrator.show(&event),
                Err(RecvError::Lagged(missed)) => {
                    println!("  (the narrator fell behind and missed {missed} events)")
                }
                Err(RecvError::Closed) => bail!("the federation's event stream closed"),
            },
        }
    }

    let stats = federation.stats();
    let elapsed = started.elapsed().as_secs_f64();
    let relays = federation.relays();
    federation.shutdown().await?;

    println!("\nsummary after {elapsed:.1} s:");
    println!(
        "  {} records committed in {} relay blocks ({:.0} records/s); {} flushed by an urgent block",
        stats.records_committed,
        stats.relay_blocks,
        stats.records_committed as f64 / elapsed,
        stats.urgent_flushes
    );
    println!(
        "  {} consortium blocks acknowledged to their members (durable at relay and backup)",
        stats.acks
    );
    println!(
        "  latency, creation to the last relay: urgent p50 {:.0} ms, p99 {:.0} ms ({} records); normal p50 {:.0} ms, p99 {:.0} ms ({} records)",
        stats.urgent.p50,
        stats.urgent.p99,
        stats.urgent.count,
        stats.normal.p50,
        stats.normal.p99,
        stats.normal.count
    );
    println!(
        "  {} elections: {} failovers, {} rotations, {} backups replaced",
        stats.elections, stats.failovers, stats.rotations, stats.backups_replaced
    );
    for (consortium, (epoch, relay, backup)) in &relays {
        println!(
            "  {:<8} relay {:<20} backup {:<20} epoch {epoch}",
            narrator.lane_name(*consortium),
            narrator.federation.name_of(relay),
            backup.map_or("-".into(), |b| narrator.federation.name_of(&b)),
        );
    }
    println!(
        "  transport: {} envelopes ({} bytes) delivered, {} dropped; rejections {:?}; stalled {}, cut off {}",
        stats.transport.delivered,
        stats.transport.bytes,
        stats.transport.dropped,
        stats.rejected,
        stats.stalled.len(),
        stats.cut_off
    );
    if stats.rotations == 0 && options.seconds >= 12 {
        println!("  (no rotation: the supervisor rotates a relay after a full period of service)");
    }
    if options.data.is_some() {
        println!(
            "\nthe chains are in {0}; check them with `ieschain verify --data {0}`",
            data.display()
        );
    }
    Ok(())
}

/// Turns events into lines: elections and take-overs in full, relay blocks by sample.
struct Narrator {
    federation: FederationHandle,
    started: Instant,
    /// Produced relay blocks shown so far: per lane, epoch and reason for sending, one
    /// with a single consortium block and one with several.
    shown: BTreeSet<(ConsortiumId, u64, Option<FlushReason>, bool)>,
    /// Produced relay blocks not shown, since the last progress line.
    unshown: u64,
}

impl Narrator {
    fn new(federation: FederationHandle, started: Instant) -> Self {
        Narrator {
            federation,
            started,
            shown: BTreeSet::new(),
            unshown: 0,
        }
    }

    fn lane_name(&self, lane: ConsortiumId) -> String {
        self.federation.genesis().consortium_name(lane)
    }

    fn stamp(&self) -> String {
        format!("[{:>5.2}s]", self.started.elapsed().as_secs_f64())
    }

    fn show(&mut self, event: &Event) {
        let name = |a| self.federation.name_of(a);
        match event {
            Event::Elected {
                consortium,
                epoch,
                reason,
                relay,
                backup,
                ..
            } => println!(
                "{} elected   {:<8} epoch {epoch:<2} {:<10} relay {:<20} backup {}",
                self.stamp(),
                self.lane_name(*consortium),
                format!("{reason:?}"),
                name(relay),
                backup.as_ref().map_or("-".into(), name),
            ),
            Event::TookOver {
                consortium,
                epoch,
                relay,
                ..
            } => println!(
                "{} took over {:<8} epoch {epoch:<2} {} sent its first relay block",
                self.stamp(),
                self.lane_name(*consortium),
                name(relay),
            ),
            Event::Committed {
                node,
                lane,
                height,
                epoch,
                produced: true,
                reason,
                blocks,
                urgent_blocks,
                records,
                ..
            } => {
                // A sample: in each term, the first block sent for each reason (the
                // take-over's drain, an urgent block, a full window, max_wait), with one
                // consortium block and with several.
                if !self.shown.insert((*lane, *epoch, *reason, *blocks > 1)) {
                    self.unshown += 1;
                    return;
                }
                println!(
                    "{} relay block {:<8} height {height:<3} epoch {epoch:<2} by {:<20} {blocks} consortium blocks ({urgent_blocks} urgent), {} records, sent on {}; urgency bits {}",
                    self.stamp(),
                    self.lane_name(*lane),
                    name(node),
                    records.len(),
                    reason.map_or("?".into(), |r| format!("{r:?}").to_lowercase()),
                    self.urgency_bits(*node, *lane, *height),
                );
            }
            Event::Stalled {
                lane,
                epoch,
                waiting_for,
                ..
            } => {
                println!(
                "{} STALLED   {:<8} epoch {epoch}: no answer from the source configuration ({})",
                self.stamp(),
                self.lane_name(*lane),
                waiting_for.iter().map(&name).collect::<Vec<_>>().join(", ")
            )
            }
            Event::CutOff { consortium, .. } => println!(
                "{} CUT OFF   {:<8} no candidate is left",
                self.stamp(),
                self.lane_name(*consortium)
            ),
            Event::Rejected {
                node,
                kind,
                hostile: true,
                detail,
            } => println!(
                "{} rejected  at {}: {kind}: {detail}",
                self.stamp(),
                name(node)
            ),
            _ => {}
        }
    }

    /// The urgency bit-vector of a relay block as the producer stored it: one digit per
    /// included consortium block, in inclusion order, 1 for urgent.
    fn urgency_bits(
        &self,
        producer: ieschain_core::Address,
        lane: ConsortiumId,
        height: u64,
    ) -> String {
        match self
            .federation
            .store()
            .block(producer, ChainId::Relay(lane), height)
        {
            Ok(Some(AnyBlock::Relay(block))) => {
                let bits = &block.header.urgency;
                let text: String = (0..bits.len as usize)
                    .map(|i| if bits.get(i) == Some(true) { '1' } else { '0' })
                    .collect();
                if text.is_empty() {
                    "(none)".into()
                } else {
                    text
                }
            }
            Ok(_) => "(not stored)".into(),
            Err(err) => format!("(unreadable: {err})"),
        }
    }

    fn progress(&mut self) {
        let stats = self.federation.stats();
        println!(
            "{} progress  {} records committed in {} relay blocks, {} acks, {} elections ({} more relay blocks not shown)",
            self.stamp(),
            stats.records_committed,
            stats.relay_blocks,
            stats.acks,
            stats.elections,
            self.unshown
        );
        self.unshown = 0;
    }
}
