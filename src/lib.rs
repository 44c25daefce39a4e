//! ieschain: an energy blockchain for integrated energy services, with a relay chain over
//! per-consortium chains (SPEC §1). This crate is the facade: it re-exports the layers and
//! holds the command-line interface.
//!
//! # Layout
//! - [`core`] (`ieschain-core`): the pure domain: identities, records, blocks, Merkle
//!   proofs, registries, elections, validation. No I/O.
//! - [`storage`] (`ieschain-storage`): the RocksDB chain store, its in-memory twin, and the
//!   full verification of a data directory.
//! - [`actors`] (`ieschain-actors`): the actix actors (members, relays, backups, supervisor).
//! - [`config`]: the federation configuration: TOML files in `federations/`, their checks,
//!   and the genesis record and keys they build.
//! - [`cli`]: the `ieschain` command (`run`, `simulate`, `bench`, `verify`, `inspect`,
//!   `completions`).
//! - [`demo`]: writing a sample ledger of every chain kind into a store.
//! - [`federation`]: the running federation: builder, handle, events, statistics.
//! - [`report`]: the JSON report of `run` and `simulate`.
//! - [`simulation`]: deterministic simulation in virtual time with a seeded fault plan.
//! - [`faults`]: the fault plan and the `--faults` grammar.
//! - [`invariants`]: the checker of SPEC §9's invariants.
//! - [`lifecycle`]: stopping cleanly on SIGINT and SIGTERM.
//! - [`bench`](mod@bench): `ieschain bench`: the machine's limits, then federations measured
//!   against them (throughput, latency, failover, scaling).
//! - [`trace`]: the protocol runs of SPEC §6 drawn as Mermaid sequence diagrams.
//! - [`explore`] and [`serve`]: reading a data directory for people (`inspect`) and the
//!   web explorer (`serve`, `run --serve`, `simulate --serve`).
//! - [`keys`]: node key files that belong to their owner (`keygen`, `run --key`).
//! - [`spec`] and [`node`](mod@node): a federation across machines: the chain spec every
//!   party shares (`spec`), and one node in its own process over QUIC (`node`).
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod audit;
pub mod bench;
pub mod cli;
pub mod config;
pub mod demo;
pub mod explore;
pub mod faults;
pub mod federation;
pub mod invariants;
pub mod json;
pub mod keys;
pub mod lifecycle;
mod markdown;
pub mod node;
pub mod progress;
pub mod report;
pub mod serve;
pub mod simulation;
pub mod spec;
pub mod trace;

pub use federation::{DataOutcome, JoinOutcome, JoinSpec, TradeOutcome};
pub use ieschain_actors as actors;
pub use ieschain_core as core;
pub use ieschain_storage as storage;
