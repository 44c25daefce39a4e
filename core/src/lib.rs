//! ieschain's pure domain: identities, records, blocks, Merkle proofs, registries,
//! elections and validation. No actix, no RocksDB, no clock and no I/O: every function
//! here is deterministic, which is what lets the property tests and the simulator drive it
//! directly.
//!
//! # Layout
//! - [`crypto`]: keys, addresses, domain-separated blake3 hashing, ed25519 signing.
//! - [`codec`]: the one canonical encoding (bincode 2.0.1, limited, complete, canonical).
//! - [`ids`]: consortiums, lanes and chain names.
//! - [`record`]: records and the closed list of their kinds, with urgency.
//! - [`block`]: the private, consortium and relay block formats.
//! - [`merkle`]: Merkle roots and inclusion proofs.
//! - [`node`]: the node state machines: supervisor, member, relay and backup duties.
//! - [`message`]: the wire messages between nodes, the signed envelope, and the inbox checks.
//! - [`registry`]: a consortium's registry and its root.
//! - [`election`]: election records, the weight function and the verifiable draw.
//! - [`genesis`]: the genesis record and the key directory.
//! - [`sample`]: deterministic sample federations and ledgers, from a seed.
//! - [`validate`]: checking a block against its chain's head.
//! - `tally` (feature `testing`): how often a digest is checked, signed or computed, for the
//!   tests that pin "check once per node".
//! - [`window`]: the window and urgency rules of relay batching.
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod block;
pub mod codec;
pub mod crypto;
pub mod election;
pub mod genesis;
pub mod ids;
pub mod merkle;
pub mod message;
pub mod node;
pub mod record;
pub mod registry;
pub mod sample;
#[cfg(feature = "serde")]
pub mod serde_json_form;
#[cfg(feature = "testing")]
pub mod tally;
pub mod validate;
pub mod window;

pub use block::{AnyBlock, ChainBlock, ConsortiumBlock, PrivateBlock, RelayBlock};
pub use crypto::{Address, Domain, Hash, Keypair, PublicKey, Signature};
pub use ids::{ChainId, ChainKind, ConsortiumId};
pub use record::{Audience, Record, RecordBody, RecordContent, RecordKind, Urgency};
