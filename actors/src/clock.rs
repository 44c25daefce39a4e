//! The clock seam (SPEC §8): `run` reads the wall clock, `simulate` reads virtual time.
//!
//! Machines never read a clock themselves: actors ask a [`Clock`] and pass the time in.

use std::fmt::Debug;
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, by some clock.
pub trait Clock: Send + Sync + Debug {
    /// The current time, ms.
    fn now_ms(&self) -> u64;
}

/// The wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// Time as tokio measures it, from a fixed origin: under a paused tokio runtime it advances
/// only when every task is idle, which makes a simulation's time virtual and reproducible.
#[derive(Clone, Copy, Debug)]
pub struct TokioClock {
    start: tokio::time::Instant,
    origin_ms: u64,
}

impl TokioClock {
    /// A clock reading `origin_ms` now. Must be created inside a tokio runtime.
    pub fn new(origin_ms: u64) -> Self {
        TokioClock {
            start: tokio::time::Instant::now(),
            origin_ms,
        }
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        self.origin_ms + self.start.elapsed().as_millis() as u64
    }
}
