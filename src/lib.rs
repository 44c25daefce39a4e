//! facade
//!
//! # Layout
//! - [`config`]: the federation configuration: TOML files in `federations/`, their checks,
//!   and the genesis record and keys they build.

pub mod config;
