//! What the three protocol examples share: a quiet four-party federation ready to serve,
//! a printer of the protocol steps as they happen, and a listing of the records a run left
//! on the chains.

use std::time::Duration;

use anyhow::{bail, Result};
use ieschain::config::FederationConfig;
use ieschain::federation::{Federation, FederationHandle};
use ieschain_core::node::{Event, StepTarget};
use ieschain_core::{AnyBlock, ChainId, RecordKind};
use tokio::sync::broadcast::error::RecvError;

/// Starts the four-party federation without its workload in `data`, and waits until every
/// consortium's relay serves.
pub async fn start(data: &std::path::Path) -> Result<FederationHandle> {
    let federation = Federation::builder(FederationConfig::four_party())
        .data_dir(data)
        .workload(false)
        .start()
        .await?;
    tokio::time::timeout(Duration::from_secs(15), federation.ready())
        .await
        .map_err(|_| anyhow::anyhow!("the relays did not take over in 15 s"))??;
    Ok(federation)
}

/// Prints every protocol step and outcome as the federation reports it, until the
/// federation stops.
pub fn print_steps(federation: &FederationHandle) {
    let mut events = federation.subscribe();
    let names = federation.clone();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(Event::Step {
                    step,
                    from,
                    to,
                    what,
                    ..
                }) => {
                    let to = match to {
                        StepTarget::Node(a) => names.name_of(&a),
                        StepTarget::Consortium(c) => {
                            format!("{} members", names.genesis().consortium_name(c))
                        }
                        StepTarget::Relays => "every relay".into(),
                    };
                    println!("  step {step}: {} → {to}: {what}", names.name_of(&from));
                }
                Ok(Event::Rejected {
                    node, kind, detail, ..
                }) => {
                    println!("  rejected by {}: {kind}: {detail}", names.name_of(&node));
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            }
        }
    });
}

/// Prints the records of `kinds` in the chains `holder` keeps: where each one is.
pub fn print_records(
    federation: &FederationHandle,
    holder: &str,
    kinds: &[RecordKind],
) -> Result<()> {
    let store = federation.store();
    let holder_address = federation.address_of(holder)?;
    for (chain, head) in store.chains_of(holder_address)? {
        let blocks: Vec<AnyBlock> = store.range(holder_address, chain, 1, head.height as usize)?;
        for block in blocks {
            let records = block.records().iter().chain(match &block {
                AnyBlock::Relay(relay) => relay
                    .blocks
                    .iter()
                    .flat_map(|b| b.records.iter())
                    .collect::<Vec<_>>(),
                _ => Vec::new(),
            });
            for record in records.filter(|r| kinds.contains(&r.kind())) {
                let place = match chain {
                    ChainId::Relay(lane) => {
                        format!("relay/{}", federation.genesis().consortium_name(lane))
                    }
                    ChainId::Consortium(c, m) => format!(
                        "consortium/{}/{}",
                        federation.genesis().consortium_name(c),
                        federation.name_of(&m)
                    ),
                    ChainId::Private(m) => format!("private/{}", federation.name_of(&m)),
                };
                println!(
                    "  {place} height {}: {} by {}",
                    block.height(),
                    record.kind().name(),
                    federation.name_of(&record.content.author)
                );
            }
        }
    }
    Ok(())
}

/// The name of the member serving as `consortium`'s relay.
pub fn relay_of(federation: &FederationHandle, consortium: &str) -> Result<String> {
    let id = federation
        .genesis()
        .consortiums
        .iter()
        .find(|c| c.name == consortium)
        .map(|c| c.id);
    match id.and_then(|id| federation.relays().get(&id).map(|(_, relay, _)| *relay)) {
        Some(relay) => Ok(federation.name_of(&relay)),
        None => bail!("no relay serves {consortium}"),
    }
}

/// The data directory: `--data DIR` from the command line, or one inside `temp`.
pub fn data_dir(example: &str, temp: &std::path::Path) -> Result<std::path::PathBuf> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => Ok(temp.join("data")),
        [flag, dir] if flag == "--data" => Ok(dir.into()),
        _ => bail!("usage: {example} [--data DIR]"),
    }
}
