//! Embeds a federation in a multi-threaded tokio host (SPEC §1, user 3; §10 "Library"): a
//! microgrid controller, say, that writes records as several members from its own tasks
//! and follows the federation's events from another, then shuts the federation down.
//!
//! The host has no actix of its own. The federation runs its actors on a thread of its
//! own; the host holds a `FederationHandle`, which is `Send` and `Clone`, moves clones into
//! `tokio::spawn`ed tasks and awaits its methods on tokio's worker threads. Calls that
//! block (opening the data directory, shutting down) go through `spawn_blocking`.
//!
//! The members' own workload is off, so every record on the relay chain is one the host
//! wrote, and the host can wait until each has reached every relay.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example embed_in_tokio
//! cargo run --example embed_in_tokio -- --records 300 --data ./embedded-data
//! RUST_LOG=info cargo run --example embed_in_tokio     # the actors' own log lines too
//! ```

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ieschain::config::FederationConfig;
use ieschain::federation::{Federation, FederationHandle};
use ieschain_core::node::Event;
use ieschain_core::{Audience, ConsortiumId, Hash, RecordBody};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::watch;

const USAGE: &str = "usage: embed_in_tokio [--records N] [--data DIR]";

/// How long the host waits for its records to reach every relay.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let (per_member, data) = parse()?;
    let temp = tempfile::tempdir()?;
    let data = data.unwrap_or_else(|| temp.path().join("ieschain-data"));

    // Opening RocksDB and starting the actor thread block briefly: keep them off the
    // async workers.
    let builder = Federation::builder(FederationConfig::four_party())
        .data_dir(&data)
        .workload(false);
    let federation = tokio::task::spawn_blocking(move || builder.start()).await??;
    println!(
        "federation started in {}; the host drives it from tokio's worker threads",
        data.display()
    );

    // The event task: follows the stream until the host says every record has arrived.
    let (expected_tx, expected_rx) = watch::channel(u64::MAX);
    // Subscribe here, before the first election can happen, and hand the stream to the task.
    let stream = federation.subscribe();
    let events = tokio::spawn(follow_events(federation.clone(), stream, expected_rx));

    // Wait for every consortium's relay before writing, so the first blocks need no resend.
    wait_for_relays(&federation).await?;

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
            per_member,
        )));
    }
    let started = Instant::now();
    let mut written = 0;
    for writer in writers {
        written += writer.await??;
    }
    println!(
        "the writer tasks wrote {written} records in {:.2} s; waiting for them to reach every relay",
        started.elapsed().as_secs_f64()
    );
    let _ = expected_tx.send(written);
    let (events_seen, acked) = tokio::time::timeout(DELIVERY_TIMEOUT, events)
        .await
        .map_err(|_| {
            anyhow::anyhow!("the records did not reach every relay within {DELIVERY_TIMEOUT:?}")
        })???;

    let stats = federation.stats();
    println!(
        "all {} records reached every relay ({:.2} s after the first write): {} relay blocks, {} acknowledged consortium blocks; the event task saw {events_seen} events and {acked} acks",
        stats.urgent.count + stats.normal.count,
        started.elapsed().as_secs_f64(),
        stats.relay_blocks,
        stats.acks,
    );
    println!(
        "latency to the last relay: urgent p50 {:.0} ms p99 {:.0} ms, normal p50 {:.0} ms p99 {:.0} ms",
        stats.urgent.p50, stats.urgent.p99, stats.normal.p50, stats.normal.p99
    );

    // Shutting down joins the actor thread and flushes the store: blocking, so off the
    // workers. Every clone of the handle fails from then on, with an error, not a panic.
    let handle = federation.clone();
    tokio::task::spawn_blocking(move || handle.shutdown()).await??;
    let name = federation
        .members()
        .first()
        .map(|(_, name)| name.clone())
        .context("the federation has members")?;
    match federation
        .submit(
            &name,
            Audience::Own,
            RecordBody::MeterReading { meter: 1, wh: 1 },
        )
        .await
    {
        Ok(seq) => bail!("a write after shutdown was accepted (seq {seq})"),
        Err(err) => println!("shut down cleanly; a write after shutdown fails with: {err}"),
    }
    Ok(())
}

fn parse() -> Result<(u64, Option<PathBuf>)> {
    let (mut records, mut data) = (100, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--records" => {
                let text = args.next().context("--records needs a value")?;
                records = text
                    .parse()
                    .with_context(|| format!("--records must be a whole number, not {text:?}"))?;
            }
            "--data" => data = Some(PathBuf::from(args.next().context("--data needs a value")?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unexpected argument {other:?}\n{USAGE}"),
        }
    }
    Ok((records, data))
}

/// Waits until every consortium has elected a relay, by polling the handle's
/// view of the relays on a tokio timer (at most 10 s).
async fn wait_for_relays(federation: &FederationHandle) -> Result<()> {
    let lanes = federation.genesis().consortiums.len();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tick.tick().await;
        if federation.relays().len() == lanes {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("not every consortium elected a relay within 10 s");
        }
    }
}

/// A writer task: `count` records as member `name`, for its own consortium and `other`:
/// every fourth is energy supply (urgent, sent at once), the rest data offers. Returns how
/// many it wrote.
async fn write_records(
    federation: FederationHandle,
    name: String,
    own: ConsortiumId,
    other: ConsortiumId,
    count: u64,
) -> Result<u64> {
    let mut audience = vec![own, other];
    audience.sort();
    let audience = Audience::Consortiums(audience);
    let mut last_seq = 0;
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
        last_seq = federation
            .submit(&name, audience.clone(), body)
            .await
            .with_context(|| format!("writing record {n} as {name}"))?;
        // A controller writes as things happen, not in one burst.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "  writer {name:<16} wrote {count} records (last seq {last_seq}) on {:?}",
        std::thread::current().id()
    );
    Ok(count)
}

/// The event task: counts events and acknowledgements, prints relay elections, and ends
/// once as many records as `expected` says have reached every relay. Returns (events,
/// acks).
async fn follow_events(
    federation: FederationHandle,
    mut events: broadcast::Receiver<Event>,
    mut expected: watch::Receiver<u64>,
) -> Result<(u64, u64)> {
    let (mut seen, mut acks) = (0u64, 0u64);
    let arrived = |federation: &FederationHandle| {
        let stats = federation.stats();
        (stats.urgent.count + stats.normal.count) as u64
    };
    loop {
        let event = tokio::select! {
            event = events.recv() => match event {
                Ok(event) => event,
                Err(RecvError::Lagged(missed)) => {
                    println!("  (the event task fell behind and missed {missed} events)");
                    continue;
                }
                Err(RecvError::Closed) => bail!("the federation's event stream closed"),
            },
            // The host has told how many to expect: they may all be there already.
            changed = expected.changed() => {
                changed.context("the host went away")?;
                if arrived(&federation) >= *expected.borrow() {
                    return Ok((seen, acks));
                }
                continue;
            }
        };
        seen += 1;
        match &event {
            Event::Elected {
                consortium,
                epoch,
                reason,
                relay,
                ..
            } => println!(
                "  event: {} elected {} as relay, epoch {epoch} ({reason:?})",
                federation.genesis().consortium_name(*consortium),
                federation.name_of(relay)
            ),
            Event::Acked { .. } => acks += 1,
            Event::Committed { .. } if arrived(&federation) >= *expected.borrow() => {
                return Ok((seen, acks));
            }
            _ => {}
        }
    }
}
