//! The urgent direct power purchase of SPEC §6.2, step by step, on the four-party
//! federation: `source-wind` offers surplus energy, `load-factory` bids for it, the grid
//! members check their lines and the grid relay signs its receipt, the buyer countersigns,
//! and the seller's settlement lands on the relay chain. Then a second purchase too large
//! for the grid's smallest line is rejected with a signed receipt, and nothing settles.
//!
//! ```text
//! cargo run --example power_purchase
//! cargo run --example power_purchase -- --data ./power-data
//! ```

#[path = "support/protocols.rs"]
mod support;

use std::time::Duration;

use anyhow::{bail, Result};
use ieschain::federation::FederationError;
use ieschain_core::RecordKind;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let temp = tempfile::tempdir()?;
    let data = support::data_dir("power_purchase", temp.path())?;
    let federation = support::start(&data).await?;
    support::print_steps(&federation);

    println!("power purchase: source-wind sells 12 kWh at 150/kWh for slot 7 to load-factory");
    let deadline = Duration::from_secs(20);
    let trade = federation
        .power_purchase("source-wind", "load-factory", 12_000, 150, 7, deadline)
        .await?;
    println!(
        "settled: trade {} for {} Wh, {} paid",
        trade.trade.short(),
        trade.wh,
        trade.amount
    );

    println!("\nover capacity: 25 kWh in slot 8, more than grid-west's 20 kWh line");
    match federation
        .power_purchase("source-solar", "load-mall", 25_000, 150, 8, deadline)
        .await
    {
        Err(FederationError::Protocol { reason, .. }) => {
            println!("refused, as it must be: {reason}")
        }
        Ok(_) => bail!("a trade over the grid's line capacity settled"),
        Err(other) => return Err(other.into()),
    }

    // The source relay committed the settlement, so it holds every step's relay block.
    println!(
        "\nthe records on the chains held by the source consortium's relay and a grid member:"
    );
    let source_relay = support::relay_of(&federation, "source")?;
    support::print_records(
        &federation,
        &source_relay,
        &[
            RecordKind::PowerOffer,
            RecordKind::PowerBid,
            RecordKind::TradeAgreement,
            RecordKind::GridReceipt,
            RecordKind::PowerSettlement,
        ],
    )?;
    support::print_records(&federation, "grid-north", &[RecordKind::GridVote])?;
    federation.shutdown().await?;
    Ok(())
}
