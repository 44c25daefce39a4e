//! The window (SPEC §4.4, paper §2.2): how a relay batches its consortium's blocks into
//! relay blocks.
//!
//! The relay keeps one open relay block. Each incoming consortium block is added to it, and
//! the block is sent:
//! - at once when the incoming block is **urgent**, together with whatever was waiting;
//! - when `window` blocks are in it;
//! - **before** adding a block that would push it past its capacity (a capacity flush,
//!   after which the new block opens the next relay block);
//! - when `max_wait` has passed since the first block was added (an extension: the paper
//!   has no timeout). The timer is not reset by later blocks. `None` is the paper's exact
//!   behaviour.
//!
//! This is a pure state machine: it is told the time, and answers with what to send and
//! when to wake it up. The relay actor carries out the effects.

use crate::block::ConsortiumBlock;
use crate::codec;
use crate::genesis::Capacities;

/// Why a relay block was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum FlushReason {
    /// An urgent block arrived.
    Urgent,
    /// `window` blocks were waiting.
    Full,
    /// The next block would not have fit.
    Capacity,
    /// `max_wait` passed.
    MaxWait,
    /// The relay is handing over (rotation, shutdown): everything waiting goes out.
    Drain,
}

/// The window's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowConfig {
    /// Blocks per relay block (the paper's n; default 6).
    pub window: u32,
    /// Send a non-empty open block after this many ms; `None` waits forever.
    pub max_wait_ms: Option<u64>,
    /// Bytes of included consortium blocks a relay block may hold: the relay capacity less
    /// the reserve for the header and the relay's own records (SPEC §12 D7).
    pub payload_budget: u32,
    /// Whether urgent blocks flush at once (the experiment of the bench issue turns it off).
    pub urgency: bool,
}

impl WindowConfig {
    /// The default window for `capacities`: 6 blocks, 500 ms, urgency on.
    pub fn new(capacities: &Capacities) -> Self {
        WindowConfig {
            window: 6,
            max_wait_ms: Some(500),
            payload_budget: capacities.relay.saturating_sub(Capacities::RELAY_RESERVE),
            urgency: true,
        }
    }
}

/// A relay block's worth of consortium blocks, ready to be sealed and sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flush {
    /// The blocks, in arrival order.
    pub blocks: Vec<ConsortiumBlock>,
    /// Why now.
    pub reason: FlushReason,
}

/// The open relay block's contents.
#[derive(Clone, Debug)]
pub struct Window {
    config: WindowConfig,
    pending: Vec<ConsortiumBlock>,
    bytes: usize,
    opened_at: Option<u64>,
}

impl Window {
    /// An empty window.
    pub fn new(config: WindowConfig) -> Self {
        Window {
            config,
            pending: Vec::new(),
            bytes: 0,
            opened_at: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &WindowConfig {
        &self.config
    }

    /// Blocks waiting.
    pub fn pending(&self) -> &[ConsortiumBlock] {
        &self.pending
    }

    /// When the open block must be sent by `max_wait`, if it is non-empty and a maximum
    /// wait is set.
    pub fn deadline(&self) -> Option<u64> {
        Some(self.opened_at? + self.config.max_wait_ms?)
    }

    /// Adds a block that arrived at `now`. Returns the relay blocks to send now, in order:
    /// at most a capacity flush of what was waiting, then a flush that includes this block.
    pub fn add(&mut self, block: ConsortiumBlock, now: u64) -> Vec<Flush> {
        let mut out = Vec::new();
        let size = codec::encoded_len(&block);
        if !self.pending.is_empty() && self.bytes + size > self.config.payload_budget as usize {
            out.push(self.take(FlushReason::Capacity));
        }
        let urgent = block.header.urgent && self.config.urgency;
        self.pending.push(block);
        self.bytes += size;
        if self.opened_at.is_none() {
            self.opened_at = Some(now);
        }
        if urgent {
            out.push(self.take(FlushReason::Urgent));
        } else if self.pending.len() >= self.config.window.max(1) as usize {
            out.push(self.take(FlushReason::Full));
        }
        out
    }

    /// Tells the window the time; returns a flush if `max_wait` has passed.
    pub fn tick(&mut self, now: u64) -> Option<Flush> {
        let deadline = self.deadline()?;
        (now >= deadline).then(|| self.take(FlushReason::MaxWait))
    }

    /// Sends whatever is waiting, for a take-over's first block or a shutdown.
    pub fn drain(&mut self) -> Option<Flush> {
        (!self.pending.is_empty()).then(|| self.take(FlushReason::Drain))
    }

    fn take(&mut self, reason: FlushReason) -> Flush {
        self.bytes = 0;
        self.opened_at = None;
        Flush {
            blocks: std::mem::take(&mut self.pending),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Domain, Hash, Keypair};
    use crate::ids::ConsortiumId;
    use crate::record::{Audience, RecordBody, RecordContent};

    fn block(height: u64, urgent: bool, padding: usize) -> ConsortiumBlock {
        let key = Keypair::derive(Domain::NodeKey, 1, "w");
        let body = if urgent {
            RecordBody::EnergySupply {
                wh: 1,
                price: 1,
                slot: 1,
            }
        } else {
            RecordBody::EquipmentMaintenance {
                equipment: "x".repeat(padding),
                detail: String::new(),
            }
        };
        let record = RecordContent {
            author: key.address(),
            seq: height,
            created_at: 0,
            audience: Audience::Everyone,
            body,
        }
        .sign(&key);
        ConsortiumBlock::seal(&key, ConsortiumId(0), height, Hash::ZERO, 0, vec![record])
    }

    fn config(window: u32, max_wait_ms: Option<u64>) -> WindowConfig {
        WindowConfig {
            window,
            max_wait_ms,
            payload_budget: Capacities::default().relay - Capacities::RELAY_RESERVE,
            urgency: true,
        }
    }

    #[test]
    fn n_normal_blocks_make_one_relay_block() {
        let mut window = Window::new(config(6, None));
        for h in 1..6 {
            assert!(window.add(block(h, false, 0), h).is_empty());
        }
        let flushes = window.add(block(6, false, 0), 6);
        assert_eq!(flushes.len(), 1);
        assert_eq!(flushes[0].reason, FlushReason::Full);
        assert_eq!(flushes[0].blocks.len(), 6);
        assert!(window.pending().is_empty());
    }

    #[test]
    fn urgent_block_flushes_at_once_with_pending() {
        let mut window = Window::new(config(6, None));
        window.add(block(1, false, 0), 0);
        window.add(block(2, false, 0), 0);
        let flushes = window.add(block(3, true, 0), 0);
        assert_eq!(flushes.len(), 1);
        assert_eq!(flushes[0].reason, FlushReason::Urgent);
        let urgency: Vec<bool> = flushes[0].blocks.iter().map(|b| b.header.urgent).collect();
        assert_eq!(urgency, [false, false, true]);
    }

    #[test]
    fn urgency_off_waits_for_the_window() {
        let mut window = Window::new(WindowConfig {
            urgency: false,
            ..config(2, None)
        });
        assert!(window.add(block(1, true, 0), 0).is_empty());
        assert_eq!(
            window.add(block(2, false, 0), 0)[0].reason,
            FlushReason::Full
        );
    }

    #[test]
    fn max_wait_fires_from_the_first_block_and_is_not_reset() {
        let mut window = Window::new(config(6, Some(500)));
        assert_eq!(window.tick(1_000), None, "an empty window never fires");
        window.add(block(1, false, 0), 1_000);
        window.add(block(2, false, 0), 1_400);
        assert_eq!(window.deadline(), Some(1_500));
        assert_eq!(window.tick(1_499), None);
        let flush = window.tick(1_500).unwrap();
        assert_eq!(flush.reason, FlushReason::MaxWait);
        assert_eq!(flush.blocks.len(), 2);
        assert_eq!(window.deadline(), None);
    }

    #[test]
    fn no_max_wait_is_the_papers_exact_window() {
        let mut window = Window::new(config(6, None));
        window.add(block(1, false, 0), 0);
        assert_eq!(window.tick(u64::MAX), None);
    }

    #[test]
    fn capacity_flush_happens_before_overflow() {
        let mut window = Window::new(WindowConfig {
            payload_budget: 10_000,
            ..config(6, None)
        });
        assert!(window.add(block(1, false, 4_000), 0).is_empty());
        assert!(window.add(block(2, false, 4_000), 0).is_empty());
        let flushes = window.add(block(3, false, 4_000), 0);
        assert_eq!(flushes.len(), 1);
        assert_eq!(flushes[0].reason, FlushReason::Capacity);
        assert_eq!(flushes[0].blocks.len(), 2);
        assert_eq!(
            window.pending().len(),
            1,
            "the new block opens the next relay block"
        );
    }
}
