//! A federation across processes on loopback (issue 13): the supervisor and each member
//! run `ieschain node` in a process of their own, with their own key, RocksDB and QUIC
//! endpoint, on 127.0.0.1 only. Every wait polls a condition against a deadline.
//!
//! - `failover.rs`: a workload runs, the current relay's process is killed with SIGKILL,
//!   another takes the lane over, the killed node restarts and writes again; then every
//!   data directory verifies, and every block acknowledged to a member is on every relay's
//!   copy of the relay chain (or, kept in its consortium, on its relay's copy of its lane).
//! - `refusals.rs`: a stranger's handshake, garbage and oversized frames, another party's
//!   key, a spec that does not match the data directory.
//! - `bench.rs`: `bench --cluster --quick` counts both federations.

mod bench;
mod failover;
mod harness;
mod refusals;
