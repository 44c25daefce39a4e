//! The non-urgent data trade of SPEC §6.3, step by step, on the four-party federation:
//! `load-home-1` sells its quarterly consumption data, built from the meter readings on
//! its private chain, and publishes its blake3 digest; the offer waits for the window; the
//! service relay broadcasts it; `service-audit` buys; the agreement goes on the relay chain;
//! the data is delivered through the relays and checked against the digest on the chain.
//! Then a faulty seller delivers other bytes: the buyer refuses them and records a dispute.
//!
//! ```text
//! cargo run --example data_trade
//! cargo run --example data_trade -- --data ./data-trade-data
//! ```

#[path = "support/protocols.rs"]
mod support;

use std::time::Duration;

use anyhow::{bail, Result};
use ieschain::federation::FederationError;
use ieschain_core::{Audience, RecordBody, RecordKind};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let temp = tempfile::tempdir()?;
    let data = support::data_dir("data_trade", temp.path())?;
    let federation = support::start(&data).await?;
    support::print_steps(&federation);

    // A quarter of meter readings on the seller's private chain.
    for (n, wh) in [1_000u64, 1_450, 1_980, 2_600].into_iter().enumerate() {
        federation
            .submit(
                "load-home-1",
                Audience::Own,
                RecordBody::MeterReading {
                    meter: n as u32 % 2,
                    wh,
                },
            )
            .await?;
    }

    let deadline = Duration::from_secs(20);
    println!("data trade: load-home-1 sells its quarterly consumption data to service-audit");
    let trade = federation
        .data_trade("load-home-1", "service-audit", 40, deadline)
        .await?;
    println!(
        "delivered: trade {}, {} bytes matching the digest on the chain",
        trade.trade.short(),
        trade.bytes
    );

    println!("\na faulty seller: load-school offers data, then delivers other bytes");
    let offer = federation
        .offer_data("load-school", "quarterly consumption data", 30, None)
        .await?;
    federation
        .tamper_data("load-school", offer, b"not the data on the chain".to_vec())
        .await?;
    match federation.buy_data("service-design", offer, deadline).await {
        Err(FederationError::Protocol { reason, .. }) => {
            println!("refused, as it must be: {reason}")
        }
        Ok(_) => bail!("data not matching its digest was accepted"),
        Err(other) => return Err(other.into()),
    }

    println!("\nthe records on the chains held by the service consortium's relay:");
    let service_relay = support::relay_of(&federation, "service")?;
    support::print_records(
        &federation,
        &service_relay,
        &[
            RecordKind::DataTrade,
            RecordKind::DataPurchase,
            RecordKind::DataAgreement,
            RecordKind::DataDispute,
        ],
    )?;
    federation.shutdown().await?;
    Ok(())
}
