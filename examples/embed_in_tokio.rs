//! Embeds a federation in a multi-threaded tokio host (SPEC §1, user 3; §10 "Library"): a
//! microgrid controller, say, that writes records as several members from its own tasks,
//! follows the federation's events from another, and shuts the federation down.
//!
//! The host has no actix of its own, no `spawn_blocking` and no polling:
//! - `builder.subscribe()` before `start()` gives a stream from the first election on;
//! - `start().await` opens the data directory on the federation's own thread;
//! - `ready().await` resolves when every consortium lane serves;
//! - `submit(..).await` waits while the member has its bound of records in flight, and
//!   returns a receipt; `try_submit` answers `Busy` instead of waiting;
//! - `receipt.committed().await` resolves when the record is on every relay;
//! - `shutdown().await` stops the actors, flushes storage and ends the event stream.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example embed_in_tokio
//! cargo run --example embed_in_tokio -- --records 300 --data ./embedded-data
//! RUST_LOG=info cargo run --example embed_in_tokio     # the actors' own log lines too
//! ```
//!
//! `tests/examples.rs` runs it too.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ieschain::config::FederationConfig;
use ieschain::federation::{Federation, FederationError, FederationHandle, Receipt};
use ieschain_core::node::Event;
use ieschain_core::{Audience, ConsortiumId, Hash, RecordBody};
use tokio::sync::broadcast::{self, error::RecvError};

const USAGE: &str = "usage: embed_in_tokio [--records N] [--data DIR]";

/// How long the host waits for its records to reach every relay.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Records each member may have in flight: small, so that the writers feel the bound.
const IN_FLIGHT: usize = 16;

/// What to run.
#[derive(Debug)]
pub struct Options {
    /// Records per writer.
    pub records: u64,
    /// The data directory (a temporary one by default).
    pub data: Option<PathBuf>,
}

/// What a run saw.
#[derive(Debug)]
pub struct Summary {
    /// Records written and committed.
    pub committed: u64,
    /// Events the event task saw before the stream ended.
    pub events: u64,
    /// Elections among them.
    pub elections: u64,
    /// Whether `try_submit` answered `Busy` once the bound was reached.
    pub busy_seen: bool,
}

fn main() -> Result<()> {
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .try_init();
    let summary = run(parse()?)?;
    println!("{summary:?}");
    // What the example shows must have happened: `make examples` relies on the exit code.
    if !summary.busy_seen || summary.elections < 4 {
        anyhow::bail!("the example did not show what it should: {summary:?}");
    }
    Ok(())
}

/// The host: a tokio runtime with two workers.
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
pub async fn run(options: Options) -> Result<Summary> {
    let temp = tempfile::tempdir()?;
    let data = options
        .data
        .unwrap_or_else(|| temp.path().join("ieschain-data"));

    let mut builder = Federation::builder(FederationConfig::four_party())
        .data_dir(&data)
        .workload(false)
        .max_in_flight(IN_FLIGHT);
    // Subscribed before the start: the stream begins with the initial elections.
    let stream = builder.subscribe();
    let federation = builder.start().await?;
    let events = tokio::spawn(follow_events(federation.clone(), stream));
    println!("federation started in {}", data.display());

    tokio::time::timeout(Duration::from_secs(15), federation.ready())
        .await
        .context("not every lane served within 15 s")??;
    println!("every lane serves");

    // One writer task per consortium, each as a member that is not a relay candidate: the
    // host's own plant or meter, say.
    let genesis = federation.genesis().clone();
    let lanes = genesis.consortiums.len() as u16;
    let mut writers = Vec::new();
    for consortium in &genesis.consortiums {
        let member = consortium
            .members
            .iter()
            .find(|m| !m.relay_capable)
            .or(consortium.members.first())
            .context("every consortium has members")?;
        writers.push(tokio::spawn(write_records(
            federation.clone(),
            member.name.clone(),
            consortium.id,
            ConsortiumId((consortium.id.0 + 1) % lanes),
            options.records,
        )));
    }
    let started = Instant::now();
    let mut receipts = Vec::new();
    for writer in writers {
        receipts.extend(writer.await??);
    }
    println!(
        "the writer tasks wrote {} records in {:.2} s; awaiting their commits",
        receipts.len(),
        started.elapsed().as_secs_f64()
    );
    for receipt in &receipts {
        tokio::time::timeout(DELIVERY_TIMEOUT, receipt.committed())
            .await
            .with_context(|| {
                format!(
                    "record {} of {} was not committed within {DELIVERY_TIMEOUT:?}",
                    receipt.seq(),
                    receipt.member()
                )
            })??;
    }
    println!(
        "all {} records are on every relay, {:.2} s after the first write",
        receipts.len(),
        started.elapsed().as_secs_f64()
    );

    // The bound: a burst fills the member's slots; then `try_submit` answers Busy.
    let name = receipts
        .first()
        .map(|r| r.member().to_string())
        .context("records were written")?;
    let mut busy_seen = false;
    let mut burst = Vec::new();
    for slot in 0..=IN_FLIGHT as u64 {
        let body = RecordBody::MeterReading { meter: 7, wh: slot };
        match federation.try_submit(&name, Audience::Own, body).await {
            Ok(receipt) => burst.push(receipt),
            Err(FederationError::Busy { limit, .. }) => {
                println!("try_submit as {name}: busy with {limit} records in flight");
                busy_seen = true;
                break;
            }
            Err(err) => return Err(err.into()),
        }
    }
    for receipt in &burst {
        tokio::time::timeout(DELIVERY_TIMEOUT, receipt.committed()).await??;
    }

    federation.shutdown().await?;
    let (events, elections) = events.await??;
    match federation
        .submit(
            &name,
            Audience::Own,
            RecordBody::MeterReading { meter: 1, wh: 1 },
        )
        .await
    {
        Ok(receipt) => bail!(
            "a write after shutdown was accepted (seq {})",
            receipt.seq()
        ),
        Err(err) => println!("shut down cleanly; a write after shutdown fails with: {err}"),
    }
    Ok(Summary {
        committed: receipts.len() as u64,
        events,
        elections,
        busy_seen,
    })
}

fn parse() -> Result<Options> {
    let mut options = Options {
        records: 100,
        data: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--records" => {
                let text = args.next().context("--records needs a value")?;
                options.records = text
                    .parse()
                    .with_context(|| format!("--records must be a whole number, not {text:?}"))?;
            }
            "--data" => {
                options.data = Some(PathBuf::from(args.next().context("--data needs a value")?))
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unexpected argument {other:?}\n{USAGE}"),
        }
    }
    Ok(options)
}

/// A writer task: `count` records as member `name`, for its own consortium and `other`:
/// every fourth is energy supply (urgent, sent at once), the rest data offers. Returns the
/// receipts.
async fn write_records(
    federation: FederationHandle,
    name: String,
    own: ConsortiumId,
    other: ConsortiumId,
    count: u64,
) -> Result<Vec<Receipt>> {
    let mut audience = vec![own, other];
    audience.sort();
    let audience = Audience::Consortiums(audience);
    let mut receipts = Vec::new();
    for n in 1..=count {
        let body = if n % 4 == 0 {
            RecordBody::EnergySupply {
                wh: 500 * n,
                price: 45 * n,
                slot: n,
            }
        } else {
            RecordBody::DataTrade {
                digest: Hash::of(
                    ieschain_core::Domain::Record,
                    &[name.as_bytes(), &n.to_be_bytes()],
                ),
                description: format!("{name}: quarter-hour load profile {n}"),
                price: 25,
                size: 4_096,
            }
        };
        // Waits while the member has IN_FLIGHT records not yet committed.
        let receipt = federation
            .submit(&name, audience.clone(), body)
            .await
            .with_context(|| format!("writing record {n} as {name}"))?;
        receipts.push(receipt);
    }
    println!(
        "  writer {name:<16} wrote {count} records on {:?}",
        std::thread::current().id()
    );
    Ok(receipts)
}

/// The event task: counts events and elections until the stream ends at shutdown.
async fn follow_events(
    federation: FederationHandle,
    mut events: broadcast::Receiver<Event>,
) -> Result<(u64, u64)> {
    let (mut seen, mut elections) = (0u64, 0u64);
    loop {
        match events.recv().await {
            Ok(event) => {
                seen += 1;
                if let Event::Elected {
                    consortium,
                    epoch,
                    reason,
                    relay,
                    ..
                } = &event
                {
                    elections += 1;
                    println!(
                        "  event: {} elected {} as relay, epoch {epoch} ({reason:?})",
                        federation.genesis().consortium_name(*consortium),
                        federation.name_of(relay)
                    );
                }
            }
            Err(RecvError::Lagged(missed)) => {
                println!("  (the event task fell behind and missed {missed} events)")
            }
            // The federation shut down: the stream ends after what was sent before.
            Err(RecvError::Closed) => return Ok((seen, elections)),
        }
    }
}
