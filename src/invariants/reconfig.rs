//! The checks of SPEC §14 (lane reconfiguration), at every event:
//!
//! - **Completeness at take-over:** when a relay reports that it took over, the lane below
//!   its config block holds every block of an older epoch released so far, and its copy
//!   holds every acknowledged consortium block of its lane (an acknowledgement heard later
//!   is judged against the take-overs of newer epochs that came before it).
//! - **Released head:** every election's `lane_head` is a released position of the lane.
//! - **Fenced writes:** no node confirms, acknowledges or releases for epoch `e` after it
//!   persisted `sealed > e` or answered a sealed read of a newer epoch.
//! - **Activation order:** an election's source is the latest activated configuration; a
//!   relay acknowledges and releases only in an activated configuration.
//! - **S2 on released blocks:** two different released blocks at one height of a lane are a
//!   fork; a block a backup stored but its relay never released is tentative, and
//!   truncating it is not.
//!
//! S3 (D4), strict, lives beside S3 in `mod.rs`.

use std::collections::{BTreeMap, BTreeSet};

use ieschain_core::election::LanePosition;
use ieschain_core::{Address, ConsortiumId, Hash};

use super::Invariant;

/// A relay block as the events described it.
#[derive(Clone, Copy, Debug)]
struct Seen {
    lane: ConsortiumId,
    height: u64,
    prev: Hash,
}

/// What the §14 checks remember.
#[derive(Debug, Default)]
pub(super) struct Reconfig {
    /// Every relay block any event described, by hash.
    blocks: BTreeMap<Hash, Seen>,
    /// Released blocks, by (lane, height): hash and epoch.
    released: BTreeMap<(ConsortiumId, u64), (Hash, u64)>,
    /// Per node: the epoch it is sealed at (persisted, or by a read it answered).
    sealed: BTreeMap<Address, u64>,
    /// Activated configurations, by (lane, epoch).
    activated: BTreeSet<(ConsortiumId, u64)>,
    /// The latest activated epoch of each lane.
    last_active: BTreeMap<ConsortiumId, u64>,
    /// Take-overs: lane, epoch, relay.
    took_over: Vec<(ConsortiumId, u64, Address)>,
}

/// A broken invariant: which, and what happened.
pub(super) type Broken = (Invariant, String);

impl Reconfig {
    /// A relay block stored or released somewhere.
    pub(super) fn block(&mut self, lane: ConsortiumId, height: u64, hash: Hash, prev: Hash) {
        self.blocks.insert(hash, Seen { lane, height, prev });
    }

    /// A released block (its relay released it, or a holder of another lane stored it):
    /// S2 on released blocks.
    pub(super) fn released(
        &mut self,
        node: Address,
        lane: ConsortiumId,
        height: u64,
        hash: Hash,
        epoch: u64,
    ) -> Option<Broken> {
        let known = *self.released.entry((lane, height)).or_insert((hash, epoch));
        (known.0 != hash).then(|| {
            (
                Invariant::S2,
                format!(
                    "lane {lane} height {height} released twice: {} (epoch {}) and {} (epoch {epoch}, at {})",
                    known.0.short(),
                    known.1,
                    hash.short(),
                    node.short()
                ),
            )
        })
    }

    /// A node sealed itself at `epoch`, by persisting it or by answering a read.
    pub(super) fn sealed(&mut self, node: Address, epoch: u64) {
        let sealed = self.sealed.entry(node).or_default();
        *sealed = (*sealed).max(epoch);
    }

    /// Fenced writes: `node` confirms, acknowledges or releases (`what`) for `epoch`.
    pub(super) fn write(&self, node: Address, epoch: u64, what: &str) -> Option<Broken> {
        let sealed = self.sealed.get(&node).copied().unwrap_or(0);
        (sealed > epoch).then(|| {
            (
                Invariant::FencedWrites,
                format!(
                    "{} {what} for epoch {epoch} after it was sealed at {sealed}",
                    node.short()
                ),
            )
        })
    }

    /// The supervisor activated `(lane, epoch)` with its config block, which counts as
    /// released from then on (SPEC §14: it is durable at the configuration's backup, and
    /// every later configuration's read holds it).
    pub(super) fn activated(
        &mut self,
        lane: ConsortiumId,
        epoch: u64,
        config: &LanePosition,
    ) -> Option<Broken> {
        let broken = self.released(Address::default(), lane, config.height, config.hash, epoch);
        self.activated.insert((lane, epoch));
        let last = self.last_active.entry(lane).or_default();
        *last = (*last).max(epoch);
        broken
    }

    /// Activation order: a relay acknowledges or releases (`what`) in `(lane, epoch)`.
    pub(super) fn active_write(
        &self,
        relay: Address,
        lane: ConsortiumId,
        epoch: u64,
        what: &str,
    ) -> Option<Broken> {
        (!self.activated.contains(&(lane, epoch))).then(|| {
            (
                Invariant::ActivationOrder,
                format!(
                    "{} {what} in epoch {epoch} of lane {lane}, which was never activated",
                    relay.short()
                ),
            )
        })
    }

    /// An election: activation order (its source is the latest activated configuration)
    /// and released head (its lane head is a released position).
    pub(super) fn elected(
        &self,
        lane: ConsortiumId,
        epoch: u64,
        source: u64,
        lane_head: &LanePosition,
    ) -> Vec<Broken> {
        let mut broken = Vec::new();
        let last = self.last_active.get(&lane).copied().unwrap_or(0);
        if source != last {
            broken.push((
                Invariant::ActivationOrder,
                format!(
                    "election of epoch {epoch} of lane {lane} names source {source}, but the latest active configuration is {last}"
                ),
            ));
        }
        let released = lane_head.height == 0 && lane_head.hash == Hash::ZERO
            || self
                .released
                .get(&(lane, lane_head.height))
                .is_some_and(|(hash, _)| *hash == lane_head.hash);
        if !released {
            broken.push((
                Invariant::ReleasedHead,
                format!(
                    "election of epoch {epoch} of lane {lane} draws on lane head {} at height {}, which was never released",
                    lane_head.hash.short(),
                    lane_head.height
                ),
            ));
        }
        broken
    }

    /// Completeness at take-over, for the relay blocks: the chain below the config block
    /// (`prev`) holds the highest block of an older epoch released so far.
    pub(super) fn took_over(
        &mut self,
        lane: ConsortiumId,
        epoch: u64,
        relay: Address,
        prev: &LanePosition,
    ) -> Option<Broken> {
        self.took_over.push((lane, epoch, relay));
        let (height, (hash, _)) = self
            .released
            .range((lane, 0)..=(lane, u64::MAX))
            .rev()
            .find(|(_, (_, e))| *e < epoch)
            .map(|((_, h), v)| (*h, *v))?;
        let missing = |why: String| {
            Some((
                Invariant::Completeness,
                format!(
                    "relay {} took lane {lane} over in epoch {epoch} on height {}, {why}",
                    relay.short(),
                    prev.height
                ),
            ))
        };
        if height > prev.height {
            return missing(format!(
                "below the released block {} at height {height}",
                hash.short()
            ));
        }
        // Walk down from `prev` to the released height.
        let mut at = (prev.height, prev.hash);
        while at.0 > height {
            match self.blocks.get(&at.1) {
                Some(seen) if seen.lane == lane && seen.height == at.0 => {
                    at = (at.0 - 1, seen.prev);
                }
                _ => return None, // a block no event described: nothing to judge by
            }
        }
        (at.1 != hash).then(|| {
            missing(format!(
                "whose chain holds {} at height {height}, not the released {}",
                at.1.short(),
                hash.short()
            ))
        })?
    }

    /// The take-overs of `lane` with an epoch above `epoch`, by relay.
    pub(super) fn took_over_after(
        &self,
        lane: ConsortiumId,
        epoch: u64,
    ) -> impl Iterator<Item = (u64, Address)> + '_ {
        self.took_over
            .iter()
            .filter(move |(l, e, _)| *l == lane && *e > epoch)
            .map(|(_, e, r)| (*e, *r))
    }
}
