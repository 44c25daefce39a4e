//! The actor federation end to end (issue 3, "Tests"): the window, failover, rotation,
//! restart and hostile envelopes, each driven through the `FederationHandle` on real
//! RocksDB in a temporary directory, and each ending with the check of `ieschain verify` on
//! the data directory, and with the check that no two holders' copies of a lane fork.
//!
//! Every federation here is the built-in four-party one with fast timing (`member_max_wait`
//! 20 ms, `suspect_after` 3, heartbeats of 150–200 ms) and no generated workload: records
//! are submitted through the handle, so what the tests assert is exactly what they caused.
//! The tests wait on conditions (an event, or a state of the store or of a node) with a
//! timeout, never on bare sleeps.
//!
//! One module per area, with the shared fixtures in [`fixture`]. Run them with
//! `cargo test -p ieschain --test federation`.

mod embedding;
mod failover;
mod fixture;
mod hostile;
mod restart;
mod rotation;
mod window;
