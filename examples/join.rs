//! A newcomer joins the load consortium (SPEC §6.1), step by step: it asks a member for the
//! relay; sends the relay its key with the consortium's admission credential; the relay
//! checks it, registers the newcomer in its next relay block's header and broadcasts its
//! signed key; the members check the relay's signature; the newcomer broadcasts its signed
//! application and collects a receipt from every live member. Then a newcomer with a bad
//! credential is refused, and the registry does not change.
//!
//! ```text
//! cargo run --example join
//! cargo run --example join -- --data ./join-data
//! ```

#[path = "support/protocols.rs"]
mod support;

use std::time::Duration;

use anyhow::{bail, Result};
use ieschain::federation::{FederationError, JoinSpec};
use ieschain_core::{Audience, RecordBody, RecordKind, Signature};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let temp = tempfile::tempdir()?;
    let data = support::data_dir("join", temp.path())?;
    let federation = support::start(&data).await?;
    support::print_steps(&federation);

    // The relay counts as live the members it heard from lately (SPEC §12 D11): each load
    // member writes a record first, and waits for its acknowledgement.
    let mut acked = federation.subscribe();
    let load: Vec<String> = federation
        .members()
        .into_iter()
        .filter(|(c, _)| federation.genesis().consortium_name(*c) == "load")
        .map(|(_, name)| name)
        .collect();
    for name in &load {
        let body = RecordBody::EquipmentMaintenance {
            equipment: "meter".into(),
            detail: "read".into(),
        };
        federation.submit(name, Audience::Own, body).await?;
    }
    let mut waiting = load.len();
    while waiting > 0 {
        if let ieschain_core::node::Event::Acked { .. } = acked.recv().await? {
            waiting -= 1;
        }
    }

    let deadline = Duration::from_secs(20);
    println!("join: load-newcomer-1 joins the load consortium");
    let joined = federation
        .join(JoinSpec::new("load", "load-newcomer-1"), deadline)
        .await?;
    println!(
        "joined: {} holds {} receipts",
        joined.newcomer.short(),
        joined.receipts
    );
    // A member now: its application is the first block of its lane, and the relay
    // acknowledges it.
    loop {
        match acked.recv().await? {
            ieschain_core::node::Event::Acked { member, height, .. }
                if member == joined.newcomer =>
            {
                println!("load-newcomer-1's lane block {height} acknowledged by the relay");
                break;
            }
            _ => {}
        }
    }

    println!("\na newcomer with a bad credential");
    let forged = JoinSpec {
        credential: Some(Signature([7; 64])),
        ..JoinSpec::new("load", "load-impostor")
    };
    match federation.join(forged, deadline).await {
        Err(FederationError::Protocol { reason, .. }) => {
            println!("refused, as it must be: {reason}")
        }
        Ok(_) => bail!("a newcomer with a bad credential joined"),
        Err(other) => return Err(other.into()),
    }

    println!("\nthe records on the chains held by the load consortium's relay:");
    let load_relay = support::relay_of(&federation, "load")?;
    support::print_records(
        &federation,
        &load_relay,
        &[
            RecordKind::JoinAnnouncement,
            RecordKind::JoinApplication,
            RecordKind::JoinReceipt,
        ],
    )?;
    federation.shutdown().await?;
    Ok(())
}
