//! The operating protocols of SPEC §6 end to end (issue 4, "Tests"): the join, the urgent
//! direct power purchase and the non-urgent data trade, their failure paths, a relay
//! failover in the middle of each, and the urgency of their offers, each driven through
//! the `FederationHandle` on real RocksDB in a temporary directory.
//!
//! Every federation is the built-in four-party one with fast timing and no generated
//! workload, through the fixtures of the federation tests (`tests/federation/fixture.rs`,
//! shared by path) plus the protocol readers of [`support`]. The tests await outcomes and
//! events with deadlines, never bare sleeps; the federation's own protocol deadline is
//! 10 s, and the handle's deadline here is above it, so that a member's own error (which
//! names the member or the check) is what a failing run reports.
//!
//! Run them with `cargo test -p ieschain --test protocols`.

#[allow(dead_code)]
#[path = "../federation/fixture.rs"]
mod fixture;
mod support;

mod data;
mod failover;
mod happy;
mod join;
mod power;
mod urgency;
