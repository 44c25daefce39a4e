//! ieschain-net's integration tests, one module per area, on loopback only. Every wait
//! polls a condition against a deadline ([`util::wait_until`]).
//!
//! Run with `cargo test -p ieschain-net`.

mod exchange;
mod frames;
mod handshake;
mod load;
mod reconnect;
mod util;
