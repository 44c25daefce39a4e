//! ieschain's actors (SPEC §3, §8): every enterprise, user, relay and backup is an actix
//! actor with its own mailbox, and one supervisor actor detects failures and rotates relays.
//!
//! The actors are thin: each owns a state machine of `ieschain_core::node` and carries out
//! its effects through three seams, so that the simulation can swap them without touching
//! an actor:
//! - [`transport`]: signed envelopes between nodes ([`transport::InProcess`] in one
//!   process, [`network::Networked`] over QUIC between processes);
//! - [`clock`]: wall time in `run`, virtual time in `simulate`;
//! - storage: each node's own [`ieschain_storage::HolderStore`].
//!
//! # Layout
//! - [`messages`]: the actix message catalogue.
//! - [`node`]: the member actor, with relay and backup duties.
//! - [`supervisor`]: the supervisor actor.
//! - [`outbox`]: carrying out effects.
//! - [`workload`]: the members' generated records.
//! - [`sim`]: the fault-injecting transport of simulations.
//! - [`network`]: the transport of a node in its own process (`ieschain node`).
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod clock;
pub mod messages;
pub mod network;
pub mod node;
pub mod outbox;
pub mod sim;
pub mod supervisor;
pub mod transport;
pub mod workload;

use thiserror::Error;

/// What can go wrong inside an actor.
#[derive(Debug, Error)]
pub enum ActorError {
    /// The node's store failed.
    #[error("storage: {0}")]
    Store(#[from] ieschain_storage::StoreError),
    /// The node's store holds a chain that does not replay.
    #[error("recovering from the store: {0}")]
    Recover(String),
    /// A protocol request the member refused at once.
    #[error(transparent)]
    Protocol(#[from] ieschain_core::node::member::ProtocolError),
    /// A record signed before submission that the member refused (a replayed seq).
    #[error(transparent)]
    Signed(#[from] ieschain_core::node::member::SignedRecordError),
}
