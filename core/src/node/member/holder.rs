//! The copies a relay or backup keeps (SPEC §12 D1): every lane of the relay chain and every
//! member's lane of its own consortium chain, each validated block by block, and the
//! backlog of member blocks that need the relay chain and are not in it yet.
//!
//! The own consortium's relay lane is the one copy that may change its mind: a block of an
//! older epoch above a config block's `prev` was never released, and a copy that holds one
//! drops it with everything derived from it (SPEC §14, "sync and truncation"). So the last
//! [`UNDO_DEPTH`] blocks of that lane keep their undo logs. Other lanes' copies hold only
//! released blocks (that is all their relays serve) and never truncate.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::block::{AnyBlock, ChainBlock, ConsortiumBlock, RelayBlock};
use crate::crypto::Address;
use crate::election::LanePosition;
use crate::genesis::{Directory, Genesis};
use crate::ids::{ChainId, ConsortiumId};
use crate::validate::{
    AcceptedBlocks, BlockError, ConsortiumLane, Head, Known, Reject, RelayLane, Undo,
};

use super::protocol::GridDesk;

/// How many of the own lane's last blocks can be truncated. A relay keeps at most
/// [`super::relay::MAX_TENTATIVE`] blocks unreleased, and a take-over puts one config block
/// on top, so a copy never holds more unreleased blocks than this.
pub(super) const UNDO_DEPTH: usize = 64;

/// Whether a member block was new or already held.
pub(super) enum Accepted {
    New,
    Duplicate,
}

/// Member blocks of the consortium that need the relay chain (D4) and are not in a relay
/// block of its lane yet, in arrival order, indexed by (author, height). Every block here
/// was validated in full by this node (into its member lanes, or as part of a relay block
/// it accepted), so a relay block that includes one of them unchanged does not check it
/// again ([`AcceptedBlocks`], issue 12).
#[derive(Clone, Debug, Default)]
pub(super) struct Backlog {
    blocks: BTreeMap<u64, ConsortiumBlock>,
    index: BTreeMap<(Address, u64), u64>,
    arrivals: u64,
}

impl Backlog {
    fn push(&mut self, block: ConsortiumBlock) {
        let key = (block.header.author, block.header.height);
        if self.index.contains_key(&key) {
            return;
        }
        self.arrivals += 1;
        self.index.insert(key, self.arrivals);
        self.blocks.insert(self.arrivals, block);
    }

    fn remove(&mut self, author: Address, height: u64) {
        if let Some(arrival) = self.index.remove(&(author, height)) {
            self.blocks.remove(&arrival);
        }
    }

    /// The waiting blocks, in arrival order.
    pub(super) fn blocks(&self) -> impl Iterator<Item = &ConsortiumBlock> {
        self.blocks.values()
    }

    /// The waiting block of `author` at `height`.
    fn get(&self, author: &Address, height: u64) -> Option<&ConsortiumBlock> {
        self.blocks.get(self.index.get(&(*author, height))?)
    }

    /// The waiting blocks of `author` from `from` to below `to`, by height.
    fn of(&self, author: Address, from: u64, to: u64) -> impl Iterator<Item = &ConsortiumBlock> {
        self.index
            .range((author, from)..(author, to))
            .filter_map(|(_, arrival)| self.blocks.get(arrival))
    }
}

impl AcceptedBlocks for Backlog {
    fn accepted(&self, author: &Address, height: u64) -> Option<&ConsortiumBlock> {
        self.get(author, height)
    }
}

/// The copies a relay or backup keeps.
#[derive(Clone, Debug)]
pub(super) struct Holder {
    pub(super) directory: Directory,
    capacity: u32,
    own: ConsortiumId,
    pub(super) relay_lanes: BTreeMap<ConsortiumId, RelayLane>,
    /// Undo logs of the own lane's last blocks, oldest first, with the blocks.
    undo: VecDeque<(Undo, RelayBlock)>,
    pub(super) member_lanes: BTreeMap<Address, ConsortiumLane>,
    pub(super) backlog: Backlog,
    /// The grid's negotiations, on a grid holder (SPEC §6.2 step 5).
    pub(super) desk: GridDesk,
}

impl Holder {
    pub(super) fn new(
        genesis: &Genesis,
        directory: &Directory,
        own: ConsortiumId,
        grid: Option<ConsortiumId>,
    ) -> Self {
        Holder {
            directory: directory.clone(),
            capacity: genesis.capacities.consortium,
            own,
            relay_lanes: genesis
                .consortiums
                .iter()
                .map(|c| (c.id, RelayLane::new(genesis, c.id)))
                .collect(),
            undo: VecDeque::new(),
            member_lanes: BTreeMap::new(),
            backlog: Backlog::default(),
            desk: GridDesk::new(grid),
        }
    }

    /// The own consortium's relay lane.
    pub(super) fn own_lane(&self) -> Option<&RelayLane> {
        self.relay_lanes.get(&self.own)
    }

    /// The head of the copy of relay lane `lane`.
    pub(super) fn relay_head(&self, lane: ConsortiumId) -> Head {
        self.relay_lanes
            .get(&lane)
            .map(|l| l.head)
            .unwrap_or_default()
    }

    /// The head of the copy of `member`'s consortium lane (0 if none).
    pub(super) fn member_head(&self, member: &Address) -> u64 {
        self.member_lanes.get(member).map_or(0, |l| l.head.height)
    }

    /// The members of `heads` whose lanes this copy holds below the height given there,
    /// each with the height it holds: what a catch-up still has to fetch.
    pub(super) fn lagging(&self, heads: &BTreeMap<Address, u64>) -> Vec<(Address, u64)> {
        heads
            .iter()
            .filter(|(m, h)| self.member_head(m) < **h)
            .map(|(m, _)| (*m, self.member_head(m)))
            .collect()
    }

    /// The own lane's blocks from height `from` up, in height order, as far down as the
    /// undo logs reach ([`UNDO_DEPTH`] blocks).
    pub(super) fn own_tail(&self, from: u64) -> Vec<RelayBlock> {
        self.undo
            .iter()
            .map(|(_, block)| block)
            .filter(|block| block.height() >= from)
            .cloned()
            .collect()
    }

    /// Every member lane's head, by member.
    pub(super) fn member_heads(&self) -> Vec<(Address, u64)> {
        self.member_lanes
            .iter()
            .map(|(member, lane)| (*member, lane.head.height))
            .collect()
    }

    /// Validates a relay or consortium block into the copies.
    pub(super) fn accept_block(&mut self, block: &AnyBlock) -> Result<(), BlockError> {
        match block {
            AnyBlock::Relay(relay) => self.accept_relay(relay, false),
            AnyBlock::Consortium(member_block) => {
                match self.accept_member_block(member_block, false) {
                    Ok(_) => Ok(()),
                    Err(reason) => Err(BlockError {
                        chain: member_block.chain(),
                        height: member_block.height(),
                        reason,
                    }),
                }
            }
            AnyBlock::Private(_) => Ok(()),
        }
    }

    /// Validates a relay block onto the head of its lane's copy. The consortium blocks it
    /// includes that this holder validated already (its backlog) are not checked again,
    /// and `sealed_here` (a block this node sealed a moment ago, never one received) skips
    /// the producer's own header signature (issue 12).
    pub(super) fn accept_relay(
        &mut self,
        relay: &RelayBlock,
        sealed_here: bool,
    ) -> Result<(), BlockError> {
        let lane = relay.header.lane;
        let state = self.relay_lanes.get_mut(&lane).ok_or(BlockError {
            chain: ChainId::Relay(lane),
            height: relay.height(),
            reason: Reject::WrongChain {
                expected: ChainId::Relay(lane),
                got: ChainId::Relay(lane),
            },
        })?;
        let known = Known {
            sealed_here,
            accepted: Some(&self.backlog),
        };
        let undo = state.append_known(relay, &mut self.directory, known)?;
        if lane == self.own {
            self.undo.push_back((undo, relay.clone()));
            if self.undo.len() > UNDO_DEPTH {
                self.undo.pop_front();
            }
        }
        self.desk.observe_relay_block(relay);
        for included in &relay.blocks {
            self.backlog
                .remove(included.header.author, included.header.height);
        }
        Ok(())
    }

    /// Drops the own lane's blocks above `keep` with what they changed: the registry
    /// entries and keys they added, the inclusions (their blocks wait again), the grid's
    /// negotiations they opened. Returns the heights dropped, or why it cannot: a block
    /// below the undo logs' reach (never an unreleased one, see [`UNDO_DEPTH`]).
    pub(super) fn truncate_own(&mut self, keep: u64) -> Result<u64, String> {
        let Some(state) = self.relay_lanes.get(&self.own) else {
            return Ok(0);
        };
        let head = state.head.height;
        if head <= keep {
            return Ok(0);
        }
        let reach = self.undo.front().map_or(head + 1, |(_, b)| b.height());
        if keep + 1 < reach {
            return Err(format!(
                "cannot drop relay lane {} above height {keep}: only blocks from {reach} up can be undone",
                self.own
            ));
        }
        let mut dropped = Vec::new();
        while self
            .relay_lanes
            .get(&self.own)
            .is_some_and(|l| l.head.height > keep)
        {
            let Some((undo, block)) = self.undo.pop_back() else {
                break;
            };
            if let Some(state) = self.relay_lanes.get_mut(&self.own) {
                state.undo(undo, &mut self.directory);
            }
            dropped.push(block);
        }
        for block in dropped.iter().rev() {
            self.desk.forget_relay_block(block);
            for included in &block.blocks {
                self.wait_again(included);
            }
        }
        Ok(head - keep)
    }

    /// Makes an included block of a truncated relay block wait again for a relay block,
    /// unless the lane includes it.
    fn wait_again(&mut self, block: &ConsortiumBlock) {
        let included = self
            .relay_lanes
            .get(&block.header.consortium)
            .and_then(|l| l.included.get(&block.header.author))
            .is_some_and(|h| *h >= block.header.height);
        if !included {
            self.backlog.push(block.clone());
        }
    }

    /// Validates a member block into its lane's copy. `sealed_here`: the block is this
    /// node's own, sealed here and never received from another node (the relay's own
    /// records, handed to itself), so its records root and signatures are not checked
    /// again (issue 12).
    pub(super) fn accept_member_block(
        &mut self,
        block: &ConsortiumBlock,
        sealed_here: bool,
    ) -> Result<Accepted, Reject> {
        let author = block.header.author;
        if !self.member_lanes.contains_key(&author) {
            let key = self
                .directory
                .get(&author)
                .ok_or(Reject::UnknownSigner(author))?
                .key;
            let state = ConsortiumLane::new(block.header.consortium, author, key, self.capacity);
            self.member_lanes.insert(author, state);
        }
        let Some(lane) = self.member_lanes.get_mut(&author) else {
            return Err(Reject::UnknownSigner(author));
        };
        if block.height() <= lane.head.height {
            return Ok(Accepted::Duplicate);
        }
        if sealed_here {
            lane.append_sealed_here(block).map_err(|e| e.reason)?;
        } else {
            lane.append(block).map_err(|e| e.reason)?;
        }
        self.desk.observe_member_block(block);
        // On recovery the relay lanes are replayed first: a block they already include is
        // not waiting for a relay block.
        let included = self
            .relay_lanes
            .get(&block.header.consortium)
            .and_then(|l| l.included.get(&author))
            .is_some_and(|h| *h >= block.height());
        if block.is_external() && !included {
            self.backlog.push(block.clone());
        }
        Ok(Accepted::New)
    }

    /// `blocks` in an order the lane accepts: those not yet included, each after its
    /// author's earlier blocks still waiting here (taken from the backlog when they are
    /// not among `blocks`), and every author's blocks by height, in the positions its
    /// blocks have in that order.
    pub(super) fn in_lane_order(
        &self,
        lane: ConsortiumId,
        blocks: Vec<ConsortiumBlock>,
    ) -> Vec<ConsortiumBlock> {
        let included = |author: &Address| {
            self.relay_lanes
                .get(&lane)
                .and_then(|l| l.included.get(author))
                .copied()
                .unwrap_or(0)
        };
        let mut seen = BTreeSet::new();
        let mut ordered = Vec::new();
        for block in blocks {
            let (author, height) = (block.header.author, block.header.height);
            let last = included(&author);
            if height <= last || seen.contains(&(author, height)) {
                continue;
            }
            for earlier in self.backlog.of(author, last + 1, height) {
                if seen.insert((author, earlier.header.height)) {
                    ordered.push(earlier.clone());
                }
            }
            seen.insert((author, height));
            ordered.push(block);
        }
        // By height within each author, keeping the positions.
        let mut by_author: BTreeMap<Address, Vec<ConsortiumBlock>> = BTreeMap::new();
        let authors: Vec<Address> = ordered.iter().map(|b| b.header.author).collect();
        for block in ordered {
            by_author
                .entry(block.header.author)
                .or_default()
                .push(block);
        }
        for list in by_author.values_mut() {
            // Popped from the end: highest first in the list.
            list.sort_by_key(|b| std::cmp::Reverse(b.header.height));
        }
        authors
            .iter()
            .filter_map(|a| by_author.get_mut(a).and_then(Vec::pop))
            .collect()
    }

    /// The first block of `epoch` in the own lane's copy: a relay restarted in its own
    /// epoch resumes with it as its config block (SPEC §14).
    pub(super) fn own_config_block(&self, epoch: u64) -> Option<(LanePosition, LanePosition)> {
        let lane = self.own_lane()?;
        let mut height = lane.head.height;
        let mut first = None;
        while height > 0 {
            let (hash, e) = lane.position(height)?;
            if e < epoch {
                break;
            }
            if e == epoch {
                first = Some((height, hash));
            }
            height -= 1;
        }
        let (height, hash) = first?;
        let prev = lane.position(height - 1).map_or(
            LanePosition {
                height: 0,
                hash: crate::crypto::Hash::ZERO,
            },
            |(hash, _)| LanePosition {
                height: height - 1,
                hash,
            },
        );
        Some((LanePosition { height, hash }, prev))
    }
}
