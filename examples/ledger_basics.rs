//! Writes a small sample of every chain kind into a data directory, from a seed: private
//! chains, consortium lanes, relay lanes with a registry (and a join), and election records
//! (initial, rotation and failover). Every block is really signed and validated before it
//! is stored, so `ieschain verify` passes on the result.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example ledger_basics -- ./ieschain-data --seed 1
//! cargo run --bin ieschain -- verify --data ./ieschain-data
//! cargo run --bin ieschain -- inspect --data ./ieschain-data --chain relay/source
//! ```
//!
//! Options: `--seed N` (default 1), `--members N` per consortium (default 4), `--rounds N`
//! (default 6). Running it again on the same directory with the same options adds nothing;
//! with another seed it stops with a clear error rather than mixing two federations.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use ieschain::demo::write_sample_ledger;
use ieschain_core::sample::SampleFederation;
use ieschain_storage::{RocksOptions, RocksStore};

const USAGE: &str = "usage: ledger_basics DATA_DIR [--seed N] [--members N] [--rounds N]";

struct Options {
    data: PathBuf,
    seed: u64,
    members: usize,
    rounds: usize,
}

fn parse() -> Result<Options> {
    let mut args = std::env::args().skip(1);
    let mut data = None;
    let (mut seed, mut members, mut rounds) = (1, 4, 6);
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Result<u64> {
            let text = args
                .next()
                .with_context(|| format!("{name} needs a value"))?;
            text.parse()
                .with_context(|| format!("{name} must be a non-negative integer, not {text:?}"))
        };
        match arg.as_str() {
            "--seed" => seed = number("--seed")?,
            "--members" => members = number("--members")? as usize,
            "--rounds" => rounds = number("--rounds")? as usize,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            flag if flag.starts_with('-') => bail!("unknown flag {flag}\n{USAGE}"),
            dir => data = Some(PathBuf::from(dir)),
        }
    }
    Ok(Options {
        data: data.context(USAGE)?,
        seed,
        members,
        rounds,
    })
}

fn main() -> Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let options = parse()?;
    let federation = SampleFederation::four_party(options.seed, options.members);
    let store = RocksStore::open(&options.data, &federation.genesis, RocksOptions::default())
        .with_context(|| format!("opening {}", options.data.display()))?;
    let summary = write_sample_ledger(&store, &federation, options.rounds)
        .with_context(|| format!("writing the sample ledger into {}", options.data.display()))?;
    println!(
        "ledger_basics: seed {} into {}: stored {} private, {} consortium and {} relay block copies ({} already present); {} chains held by {} nodes; {} election records",
        options.seed,
        options.data.display(),
        summary.private,
        summary.consortium,
        summary.relay,
        summary.already_present,
        summary.chains,
        summary.holders,
        summary.elections,
    );
    Ok(())
}
