//! The relay duty of an active configuration (SPEC §3, §4.4, §14 write-all).
//!
//! The relay validates and stores each submitted block, replicates it to the backup of its
//! configuration, and acknowledges it once the backup has confirmed it (with no backup, once
//! stored). It batches blocks that need the relay chain with the [`Window`], seals relay
//! blocks, stores each at once, replicates it, and releases it (broadcasts it, reports it as
//! committed) once the backup has confirmed it, in lane order. Nothing is acknowledged or
//! released before the supervisor has activated the configuration, nor after this node has
//! sealed itself at a newer epoch. Unreleased blocks wait in the tentative tail; a
//! configuration that never activates releases none of them, and the next one truncates
//! them (see `reconfig.rs`).

use std::collections::BTreeMap;

use crate::block::{ChainBlock, ConsortiumBlock, LaneHead, RelayBlock, RelayDraft};
use crate::codec;
use crate::crypto::{Address, Hash};
use crate::election::LanePosition;
use crate::ids::{ChainId, ConsortiumId};
use crate::message::Message;
use crate::node::{Effect, Event, StoreWrite};
use crate::record::{Audience, Record, RecordKind};
use crate::window::{Flush, FlushReason, Window};

use super::holder::Accepted;
use super::reconfig::Phase;
use super::{broadcast, committed_event, held_event, reject_kind, Duty, Member, Received};
use crate::validate::Reject;

/// How many relay blocks a relay keeps sealed and unreleased at once: a backup that does
/// not confirm slows the lane down (backpressure) instead of growing an unreleased tail
/// that a take-over would have to truncate.
pub(super) const MAX_TENTATIVE: usize = 32;

/// How many submissions a relay keeps while it takes over, to handle once active.
const EARLY_SUBMISSIONS: usize = 4096;

/// A relay block this relay sealed and stored and has not released yet.
#[derive(Clone, Debug)]
struct Tentative {
    block: RelayBlock,
    reason: FlushReason,
    confirmed: bool,
    /// Whether it completes the take-over when released (the config block).
    config: bool,
}

/// A member block stored and replicated, waiting for the backup's confirmation.
#[derive(Clone, Debug)]
struct Pending {
    hash: Hash,
    block: ConsortiumBlock,
    confirmed: bool,
}

/// What a confirmation by hash stands for.
#[derive(Clone, Copy, Debug)]
enum Confirms {
    Relay(u64),
    Member(Address, u64),
}

/// One relay term: its configuration, phase, window, and what waits on the backup. It ends
/// with the term; nothing of it outlives the duty.
#[derive(Debug)]
pub(super) struct RelayDuty {
    pub(super) epoch: u64,
    pub(super) source: u64,
    pub(super) backup: Option<Address>,
    /// The election records from the source's on, the newest (this one) last.
    pub(super) records: Vec<Record>,
    pub(super) phase: Phase,
    pub(super) window: Window,
    tentative: BTreeMap<u64, Tentative>,
    released: Option<LanePosition>,
    unacked: BTreeMap<Address, BTreeMap<u64, Pending>>,
    acked: BTreeMap<Address, u64>,
    by_hash: BTreeMap<Hash, Confirms>,
    /// Submissions that came while taking over.
    early: Vec<(Address, ConsortiumBlock)>,
    /// Other lanes' blocks received while taking over (or, from the backup duty, lately):
    /// forwarded to the members once active.
    pub(super) received: Received,
    /// Blocks flushed while the tentative tail was full: back into the window later.
    held: Vec<ConsortiumBlock>,
    /// Since when a replication has waited for its confirmation (SPEC §14: a backup alive
    /// but silent is reported to the supervisor, which replaces it).
    waiting_since: Option<u64>,
    silent_reported: bool,
    next_retry: u64,
    /// When this relay next asks the other lanes' relays for their lanes (anti-entropy).
    next_anti_entropy: u64,
    /// Newcomers this relay registered, with the height of the block that carries them.
    pub(super) registered_at: BTreeMap<Address, u64>,
    /// Election records for the next block to carry (only under the deliberate bug
    /// `backup_lost_keeps_epoch`).
    pub(super) carry: Vec<Record>,
}

impl RelayDuty {
    pub(super) fn new(
        epoch: u64,
        source: u64,
        backup: Option<Address>,
        records: Vec<Record>,
        window: Window,
        received: Received,
    ) -> Self {
        RelayDuty {
            epoch,
            source,
            backup,
            records,
            phase: Phase::Stopped,
            window,
            tentative: BTreeMap::new(),
            released: None,
            unacked: BTreeMap::new(),
            acked: BTreeMap::new(),
            by_hash: BTreeMap::new(),
            early: Vec::new(),
            received,
            held: Vec::new(),
            waiting_since: None,
            silent_reported: false,
            next_retry: 0,
            next_anti_entropy: 0,
            registered_at: BTreeMap::new(),
            carry: Vec::new(),
        }
    }

    pub(super) fn is_active(&self) -> bool {
        matches!(self.phase, Phase::Active)
    }

    pub(super) fn stopped(&self) -> bool {
        matches!(self.phase, Phase::Stopped)
    }

    /// The released head, with this epoch, for the supervisor (SPEC §14).
    pub(super) fn released_position(&self) -> Option<(u64, LanePosition)> {
        self.is_active()
            .then_some(self.released)
            .flatten()
            .map(|p| (self.epoch, p))
    }

    /// The released height (0: nothing released in this term).
    pub(super) fn released_height(&self) -> u64 {
        self.released.map_or(0, |p| p.height)
    }

    /// A relay resuming its active configuration after a restart, once its backup has
    /// caught up to its whole copy: everything up to `below` was released before the
    /// restart, and `blocks` (the copy's blocks above it, in height order) are confirmed
    /// and are released again, in order, each with its announcement. Those released before
    /// the restart are announced twice: the node does not remember which they were.
    pub(super) fn resume(&mut self, below: LanePosition, blocks: Vec<RelayBlock>) {
        self.released = Some(below);
        for block in blocks {
            self.tentative.insert(
                block.height(),
                Tentative {
                    block,
                    reason: FlushReason::Drain,
                    confirmed: true,
                    config: false,
                },
            );
        }
    }

    /// Notes a sealed, stored block of this term awaiting release.
    pub(super) fn add_tentative(&mut self, block: RelayBlock, reason: FlushReason, config: bool) {
        let height = block.height();
        self.by_hash.insert(block.hash(), Confirms::Relay(height));
        let confirmed = self.backup.is_none();
        self.tentative.insert(
            height,
            Tentative {
                block,
                reason,
                confirmed,
                config,
            },
        );
    }

    /// The backup holds the own lane up to `head`: every block of the tail at or below it
    /// is confirmed.
    pub(super) fn confirm_up_to(&mut self, head: &LanePosition) {
        for (height, entry) in self.tentative.range_mut(..=head.height) {
            if *height < head.height || entry.block.hash() == head.hash {
                entry.confirmed = true;
            }
        }
    }

    fn confirm(&mut self, hash: &Hash) {
        match self.by_hash.remove(hash) {
            Some(Confirms::Relay(height)) => {
                if let Some(entry) = self.tentative.get_mut(&height) {
                    entry.confirmed = true;
                }
            }
            Some(Confirms::Member(author, height)) => {
                if let Some(entry) = self
                    .unacked
                    .get_mut(&author)
                    .and_then(|m| m.get_mut(&height))
                {
                    entry.confirmed = true;
                }
            }
            None => {}
        }
    }

    /// Whether anything still waits on the backup.
    fn waiting(&self) -> bool {
        self.tentative.values().any(|t| !t.confirmed)
            || self
                .unacked
                .values()
                .any(|m| m.values().any(|p| !p.confirmed))
    }
}

impl Member {
    pub(super) fn on_submit(
        &mut self,
        from: Address,
        block: ConsortiumBlock,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        let Duty::Relay(duty) = &mut self.duty else {
            effects.push(Effect::Send {
                to: from,
                message: Message::NotTaken {
                    height: block.height(),
                    why: "not the relay".into(),
                },
            });
            return;
        };
        if block.header.author != from || block.header.consortium != self.consortium {
            effects.push(self.rejected(
                "foreign_block",
                true,
                format!("block of {} submitted by {from}", block.header.author),
            ));
            return;
        }
        match &duty.phase {
            Phase::Active => {}
            Phase::Stopped => {
                effects.push(Effect::Send {
                    to: from,
                    message: Message::NotTaken {
                        height: block.height(),
                        why: "this relay's configuration was not activated".into(),
                    },
                });
                return;
            }
            // Taking over: kept, and handled once the configuration is active (SPEC §14:
            // nothing is acknowledged before). The member resends what is lost.
            _ => {
                if duty.early.len() < EARLY_SUBMISSIONS {
                    duty.early.push((from, block));
                }
                return;
            }
        }
        self.take_submission(from, block, now, effects);
    }

    /// An active relay takes a member's block: stores it, replicates it to the backup, and
    /// acknowledges it once confirmed (write-all).
    pub(super) fn take_submission(
        &mut self,
        author: Address,
        block: ConsortiumBlock,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        let height = block.height();
        let hash = block.hash();
        let Duty::Relay(duty) = &self.duty else {
            return;
        };
        let epoch = duty.epoch;
        // The original reply to an exact duplicate (D9).
        if height <= duty.acked.get(&author).copied().unwrap_or(0) {
            effects.push(Effect::Send {
                to: author,
                message: Message::Ack {
                    epoch,
                    author,
                    height,
                    hash,
                },
            });
            return;
        }
        if duty
            .unacked
            .get(&author)
            .is_some_and(|m| m.contains_key(&height))
        {
            return;
        }
        // The relay's own block, handed to itself: exactly the block it sealed (still
        // unacknowledged in its own lane) is not checked again; anything else is.
        let sealed_here = author == self.me && self.unacked.get(&height) == Some(&block);
        let fresh = match self.holder_mut().accept_member_block(&block, sealed_here) {
            Ok(Accepted::New) => true,
            // Held already (read at the take-over, or synced): acknowledged the normal way,
            // once the backup confirms it holds it too.
            Ok(Accepted::Duplicate) => false,
            Err(Reject::Height { expected, got }) if got > expected => {
                effects.push(Effect::Send {
                    to: author,
                    message: Message::SyncRequest {
                        chain: ChainId::Consortium(self.consortium, author),
                        from: expected,
                        have: Vec::new(),
                    },
                });
                return;
            }
            Err(reason) => {
                effects.push(self.rejected(
                    reject_kind(&reason),
                    true,
                    format!("block {author} height {height}: {reason}"),
                ));
                return;
            }
        };
        // The node's own lane is one stored chain: the writer already persisted it.
        if fresh && author != self.me {
            effects.push(Effect::Persist(vec![block.clone().into()]));
            effects.push(Effect::Emit(self.stored(author, height, now)));
        }
        let ack_now = self.timing.mutations.ack_before_replication;
        let Duty::Relay(duty) = &mut self.duty else {
            return;
        };
        if let Some(backup) = duty.backup {
            effects.push(Effect::Send {
                to: backup,
                message: Message::Replicate {
                    epoch,
                    block: block.clone(),
                },
            });
            duty.by_hash.insert(hash, Confirms::Member(author, height));
            duty.waiting_since.get_or_insert(now);
        }
        // Deliberate bug (`ack_before_replication`, tests only): counted as confirmed at
        // once, as if there were no backup.
        let confirmed = duty.backup.is_none() || ack_now;
        duty.unacked.entry(author).or_default().insert(
            height,
            Pending {
                hash,
                block: block.clone(),
                confirmed,
            },
        );
        if fresh && block.is_external() {
            let flushes = duty.window.add(block, now);
            for flush in flushes {
                self.produce(flush, now, effects);
            }
        }
        self.release_ready(now, effects);
    }

    /// Handles the submissions kept while taking over, now that the relay is active.
    pub(super) fn take_early_submissions(&mut self, now: u64, effects: &mut Vec<Effect>) {
        let Duty::Relay(duty) = &mut self.duty else {
            return;
        };
        for (author, block) in std::mem::take(&mut duty.early) {
            self.take_submission(author, block, now, effects);
        }
    }

    /// Seals the blocks of a window flush into relay blocks, in lane order and within the
    /// payload budget; each is stored and replicated, and released once confirmed.
    pub(super) fn produce(&mut self, flush: Flush, now: u64, effects: &mut Vec<Effect>) {
        let Duty::Relay(duty) = &mut self.duty else {
            return;
        };
        if !duty.is_active() || self.sealed > duty.epoch {
            return;
        }
        if duty.tentative.len() >= MAX_TENTATIVE {
            duty.held.extend(flush.blocks);
            return;
        }
        // A lane includes each member's blocks in height order, and never one below a
        // member's last included height (`RelayLane::append`). Blocks reach the window by
        // several paths (submissions, syncs, the take-over backlog), so the order is
        // restored here: each block goes with its author's earlier blocks still waiting in
        // the backlog, every author's blocks by height, in as many relay blocks as the
        // payload budget needs.
        let budget = duty.window.config().payload_budget as usize;
        let Some(holder) = self.holder.as_deref() else {
            return;
        };
        let mut chunks: Vec<Vec<ConsortiumBlock>> = Vec::new();
        let mut bytes = 0;
        for block in holder.in_lane_order(self.consortium, flush.blocks) {
            let size = codec::encoded_len(&block);
            match chunks.last_mut() {
                Some(chunk) if bytes + size <= budget => chunk.push(block),
                _ => {
                    bytes = 0;
                    chunks.push(vec![block]);
                }
            }
            bytes += size;
        }
        if chunks.is_empty() {
            chunks.push(Vec::new());
        }
        for blocks in chunks {
            // Election records the lane lacks ride on the next block only under the
            // deliberate bug `backup_lost_keeps_epoch`; a take-over carries them in its
            // config block.
            let carry = match &mut self.duty {
                Duty::Relay(duty) => std::mem::take(&mut duty.carry),
                _ => Vec::new(),
            };
            if self
                .seal_block(blocks, flush.reason, carry, false, now, effects)
                .is_none()
            {
                return;
            }
        }
    }

    /// Seals one relay block of `blocks` (in lane order, within the payload budget) with
    /// `records` (a config block's election records), validates it into the copy, stores
    /// it and replicates it (a `config` block goes to the backup with the catch-up).
    /// Returns its position.
    pub(super) fn seal_block(
        &mut self,
        blocks: Vec<ConsortiumBlock>,
        reason: FlushReason,
        records: Vec<Record>,
        config: bool,
        now: u64,
        effects: &mut Vec<Effect>,
    ) -> Option<LanePosition> {
        let lane = self.consortium;
        let Duty::Relay(duty) = &mut self.duty else {
            return None;
        };
        let epoch = duty.epoch;
        let holder = self.holder.as_deref()?;
        let own = holder.relay_lanes.get(&lane)?;
        // Never include a block twice: the lane may have included it meanwhile.
        let mut seen = std::collections::BTreeSet::new();
        let blocks: Vec<ConsortiumBlock> = blocks
            .into_iter()
            .filter(|b| {
                let key = (b.header.author, b.header.height);
                let included = own.included.get(&key.0).copied().unwrap_or(0);
                key.1 > included && seen.insert(key)
            })
            .collect();
        let lane_heads: Vec<LaneHead> = holder
            .relay_lanes
            .iter()
            .filter(|(l, state)| **l != lane && state.head.height > 0)
            .map(|(l, state)| LaneHead {
                lane: *l,
                height: state.head.height,
                hash: state.head.hash,
            })
            .collect();
        // Newcomers the relay admitted since its last block (SPEC §6.1 step 3).
        let mut added = Vec::new();
        let mut registry_root = own.registry.root();
        if !self.proto.pending_joins.is_empty() && !config {
            let mut joins = std::mem::take(&mut self.proto.pending_joins);
            joins.sort_by_key(|e| e.address);
            let mut registry = own.registry.clone();
            for entry in joins {
                if registry.add(entry.clone()).is_ok() {
                    added.push(entry);
                }
            }
            registry_root = registry.root();
        }
        let height = own.head.height + 1;
        let draft = RelayDraft {
            lane,
            height,
            prev: own.head.hash,
            epoch,
            time: now,
            registry_root,
            added,
            lane_heads,
            blocks,
            records,
        };
        let block = draft.seal(&self.key);
        // Sealed here a moment ago: the producer does not check its own signature again.
        if let Err(err) = self.holder_mut().accept_relay(&block, true) {
            effects.push(self.rejected("own_relay_block", false, err.to_string()));
            return None;
        }
        effects.push(Effect::Persist(vec![StoreWrite::Block(
            block.clone().into(),
        )]));
        effects.push(Effect::Emit(held_event(self.me, &block, now)));
        let Duty::Relay(duty) = &mut self.duty else {
            return None;
        };
        for entry in &block.header.registry.added {
            duty.registered_at.insert(entry.address, height);
        }
        let position = LanePosition {
            height,
            hash: block.hash(),
        };
        if let Some(backup) = duty.backup {
            // The config block goes to the backup with the catch-up (`Configure`).
            if !config {
                effects.push(Effect::Send {
                    to: backup,
                    message: Message::ReplicateRelay {
                        epoch,
                        block: block.clone(),
                        released: duty.released_height(),
                    },
                });
                duty.waiting_since.get_or_insert(now);
            }
        }
        duty.add_tentative(block, reason, config);
        Some(position)
    }

    pub(super) fn on_replicated(
        &mut self,
        from: Address,
        epoch: u64,
        hash: Hash,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        let Duty::Relay(duty) = &mut self.duty else {
            return;
        };
        if duty.backup != Some(from) || duty.epoch != epoch {
            return;
        }
        duty.confirm(&hash);
        self.release_ready(now, effects);
    }

    /// Releases what the backup has confirmed, if the configuration is active and this node
    /// is not sealed at a newer epoch (SPEC §14): the relay blocks in lane order (each is
    /// broadcast and reported committed), and each member's acknowledgements in its lane
    /// order, one order not waiting on another (a relay block carries the blocks it
    /// includes, so the backup holding it holds them too; an acknowledgement needs only its
    /// own block at the backup).
    pub(super) fn release_ready(&mut self, now: u64, effects: &mut Vec<Effect>) {
        let lane = self.consortium;
        let sealed = self.sealed;
        let Member {
            duty,
            serving,
            me,
            timing,
            released: own_released,
            ..
        } = self;
        let Duty::Relay(duty) = duty else {
            return;
        };
        // Deliberate bug (`no_fencing`, tests only): ignore the seal.
        let fenced = sealed > duty.epoch && !timing.mutations.no_fencing;
        if !duty.is_active() || fenced {
            return;
        }
        let epoch = duty.epoch;
        while let Some(entry) = duty.tentative.first_entry() {
            if !entry.get().confirmed {
                break;
            }
            let entry = entry.remove();
            let block = entry.block;
            duty.by_hash.remove(&block.hash());
            duty.released = Some(LanePosition {
                height: block.height(),
                hash: block.hash(),
            });
            *own_released = (*own_released).max(block.height());
            broadcast(serving, *me, &block, effects);
            effects.push(Effect::Emit(committed_event(
                *me,
                &block,
                true,
                Some(entry.reason),
                now,
            )));
            effects.extend(super::protocol::settled_events(&block, entry.reason, now));
            if entry.config {
                effects.push(Effect::Emit(Event::TookOver {
                    consortium: lane,
                    epoch,
                    relay: *me,
                    config: LanePosition {
                        height: block.height(),
                        hash: block.hash(),
                    },
                    prev: LanePosition {
                        height: block.height() - 1,
                        hash: block.header.prev,
                    },
                    at: now,
                }));
            }
        }
        for (author, pending) in duty.unacked.iter_mut() {
            let mut last = None;
            while let Some(entry) = pending.first_entry() {
                if !entry.get().confirmed {
                    break;
                }
                let (height, entry) = entry.remove_entry();
                duty.by_hash.remove(&entry.hash);
                last = Some((height, entry.hash));
            }
            if let Some((height, hash)) = last {
                let acked = duty.acked.entry(*author).or_insert(0);
                *acked = (*acked).max(height);
                effects.push(Effect::Send {
                    to: *author,
                    message: Message::Ack {
                        epoch,
                        author: *author,
                        height,
                        hash,
                    },
                });
                effects.push(Effect::Emit(Event::Acknowledged {
                    relay: *me,
                    lane,
                    epoch,
                    author: *author,
                    height,
                    at: now,
                }));
            }
        }
        duty.unacked.retain(|_, m| !m.is_empty());
        if !duty.waiting() {
            duty.waiting_since = None;
        }
        // Room again in the tentative tail: what was held goes back to the window.
        if duty.tentative.len() < MAX_TENTATIVE && !duty.held.is_empty() {
            let mut flushes = Vec::new();
            for block in std::mem::take(&mut duty.held) {
                flushes.extend(duty.window.add(block, now));
            }
            flushes.extend(duty.window.drain());
            for flush in flushes {
                self.produce(flush, now, effects);
            }
        }
        self.accept_registered_joins(now, effects);
    }

    /// The relay's timers: the take-over's retries, the window, replications unconfirmed
    /// for a resend interval sent again, and a silent backup reported.
    pub(super) fn relay_tick(&mut self, now: u64, effects: &mut Vec<Effect>) {
        self.reconfig_tick(now, effects);
        let retry = self.timing.retry_ms();
        let silent_after = self.timing.suspect_ms() + retry;
        let supervisor = self.supervisor;
        let Duty::Relay(duty) = &mut self.duty else {
            return;
        };
        if !duty.is_active() {
            return;
        }
        if now >= duty.next_retry {
            duty.next_retry = now + retry;
            if let Some(backup) = duty.backup {
                let epoch = duty.epoch;
                let released = duty.released_height();
                for entry in duty.tentative.values().filter(|t| !t.confirmed) {
                    effects.push(Effect::Send {
                        to: backup,
                        message: Message::ReplicateRelay {
                            epoch,
                            block: entry.block.clone(),
                            released,
                        },
                    });
                }
                for entry in duty
                    .unacked
                    .values()
                    .flat_map(|m| m.values())
                    .filter(|p| !p.confirmed)
                {
                    effects.push(Effect::Send {
                        to: backup,
                        message: Message::Replicate {
                            epoch,
                            block: entry.block.clone(),
                        },
                    });
                }
                if duty
                    .waiting_since
                    .is_some_and(|since| now >= since + silent_after)
                    && !duty.silent_reported
                {
                    duty.silent_reported = true;
                    effects.push(Effect::Send {
                        to: supervisor,
                        message: Message::BackupSilent { epoch, backup },
                    });
                }
            }
        }
        if let Some(flush) = duty.window.tick(now) {
            self.produce(flush, now, effects);
        }
    }

    /// A broadcast relay block of another lane: stored, and forwarded to the members by an
    /// active relay (kept for later by one taking over, or by a backup).
    pub(super) fn on_relay_block(
        &mut self,
        from: Address,
        block: RelayBlock,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        if self.holder.is_none() {
            effects.push(self.rejected("not_holder", false, format!("relay block from {from}")));
            return;
        }
        if !self.accept_relay_block(from, block.clone(), now, effects) {
            return;
        }
        // Kept as long as a failover can take: detection, and a take-over's round trips.
        let keep = self.timing.suspect_ms() + 4 * self.timing.retry_ms();
        match &mut self.duty {
            Duty::Relay(duty) if duty.is_active() => self.forward(&block, now, effects),
            Duty::Relay(duty) => duty.received.push_back((now, block)),
            Duty::Backup(duty) if block.header.lane != self.consortium => {
                while duty
                    .received
                    .front()
                    .is_some_and(|(at, _)| now.saturating_sub(*at) > keep)
                {
                    duty.received.pop_front();
                }
                duty.received.push_back((now, block));
            }
            _ => {}
        }
    }

    /// Forwards to this relay's members the records of another lane's block that are
    /// addressed to them and that they may act on: protocol records, data offers and
    /// elections ([`is_forwarded`]). Records for this relay itself are handled in place.
    pub(super) fn forward(&mut self, block: &RelayBlock, now: u64, effects: &mut Vec<Effect>) {
        if block.header.lane == self.consortium {
            return;
        }
        let mut members = self.consortium_members();
        members.sort_unstable();
        members.dedup();
        // Which of the forwarded records each member gets, by index: the records for the
        // whole consortium (`common`), and for some members also records addressed to
        // them (`own`). Members that get the same records get one message, built and
        // encoded once (issue 12); the common records are listed once, not once per
        // member (at 10,000 members that was a map entry per member and record).
        let mut common: Vec<usize> = Vec::new();
        let mut own: BTreeMap<Address, Vec<usize>> = BTreeMap::new();
        let mut broadcast_here: Vec<&Record> = Vec::new();
        let records: Vec<&Record> = block
            .blocks
            .iter()
            .flat_map(|b| b.records.iter())
            .chain(block.records.iter())
            .filter(|r| is_forwarded(r.kind()))
            .collect();
        for (index, record) in records.iter().enumerate() {
            match &record.content.audience {
                Audience::Members(list) => {
                    for m in list.iter().filter(|m| members.binary_search(m).is_ok()) {
                        own.entry(*m).or_default().push(index);
                    }
                }
                Audience::Consortiums(list) if !list.contains(&self.consortium) => {}
                Audience::Own => {}
                Audience::Consortiums(_) | Audience::Everyone => {
                    broadcast_here.push(record);
                    common.push(index);
                }
            }
        }
        effects.extend(super::protocol::forward_steps(
            self.me,
            self.consortium,
            self.timing.protocols,
            &broadcast_here,
            now,
        ));
        let mut mine = Vec::new();
        let mut groups: BTreeMap<Vec<usize>, Vec<Address>> = BTreeMap::new();
        let mut only_common: Vec<Address> = Vec::new();
        let mut place = |to: Address, indexes: Vec<usize>, mine: &mut Vec<usize>| {
            if to == self.me {
                *mine = indexes;
            } else {
                groups.entry(indexes).or_default().push(to);
            }
        };
        if !common.is_empty() {
            for to in &members {
                match own.remove(to) {
                    Some(extra) => place(*to, merged(&common, &extra), &mut mine),
                    None if *to == self.me => mine = common.clone(),
                    None => only_common.push(*to),
                }
            }
        }
        for (to, extra) in own {
            place(to, extra, &mut mine);
        }
        if !only_common.is_empty() {
            // No member with records of its own gets exactly the common ones.
            groups.entry(common).or_default().extend(only_common);
        }
        for (indexes, to) in groups {
            effects.push(Effect::Broadcast {
                to,
                message: Message::Forward {
                    lane: block.header.lane,
                    height: block.height(),
                    records: indexes.iter().map(|i| records[*i].clone()).collect(),
                },
            });
        }
        let mine: Vec<Record> = mine.iter().map(|i| records[*i].clone()).collect();
        // The relay is a member too: it acts on what is addressed to it.
        let me = self.me;
        for record in &mine {
            self.on_forwarded(me, record, now, effects);
        }
    }

    /// The take-over is complete: the relay forwards what it received meanwhile, puts the
    /// backlog into relay blocks, handles the submissions it kept, and fetches the other
    /// lanes from their relays in the background (anti-entropy, never on the take-over's
    /// path).
    pub(super) fn start_serving(&mut self, now: u64, effects: &mut Vec<Effect>) {
        let Duty::Relay(duty) = &mut self.duty else {
            return;
        };
        let received = std::mem::take(&mut duty.received);
        for (_, block) in &received {
            self.forward(block, now, effects);
        }
        let backlog: Vec<ConsortiumBlock> = self
            .holder
            .as_ref()
            .map(|h| h.backlog.blocks().cloned().collect())
            .unwrap_or_default();
        if let Duty::Relay(duty) = &mut self.duty {
            let mut flushes = Vec::new();
            for block in backlog {
                flushes.extend(duty.window.add(block, now));
            }
            flushes.extend(duty.window.drain());
            for flush in flushes {
                self.produce(flush, now, effects);
            }
        }
        self.take_early_submissions(now, effects);
        self.ask_other_lanes(now, effects);
        self.release_ready(now, effects);
    }

    /// Asks each other lane's relay, as this node knows them, for that lane's blocks
    /// above its copy (a sync request with its locator; one pending per peer and lane).
    fn ask_other_lanes(&mut self, now: u64, effects: &mut Vec<Effect>) {
        let others: Vec<(ConsortiumId, Address)> = self
            .serving
            .iter()
            .filter(|(c, s)| **c != self.consortium && s.relay != self.me)
            .map(|(c, s)| (*c, s.relay))
            .collect();
        for (other, relay) in others {
            self.ask_lane(other, relay, now, effects);
        }
    }

    /// Asks `relay` for `lane`'s relay blocks above this node's copy, with its locator.
    pub(super) fn ask_lane(
        &mut self,
        lane: ConsortiumId,
        relay: Address,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        let have = self.locator_of(lane);
        let from = self.relay_lane_head(lane).map_or(0, |h| h.height) + 1;
        self.ask_sync(relay, ChainId::Relay(lane), from, have, now, effects);
    }

    /// Anti-entropy: an active relay asks the other lanes' relays for their lanes every
    /// [`ANTI_ENTROPY_SUSPECTS`] failure-detector windows. A relay block reaches the
    /// relays its producer knew of when it released it; one that a relay produced before
    /// it learned of the others (a restart whose supervisor notices arrive in another
    /// order than the nodes start) was never sent again, and with no next block on that
    /// lane nobody asked for it: acknowledged blocks then stayed off the other relays'
    /// copies (`reopened_federation_continues_its_lanes_without_forks` timed out in about
    /// one run of eight). A timer decides only when to ask, never what is accepted.
    pub(super) fn anti_entropy_tick(&mut self, now: u64, effects: &mut Vec<Effect>) {
        let period = ANTI_ENTROPY_SUSPECTS * self.timing.suspect_ms();
        let Duty::Relay(duty) = &mut self.duty else {
            return;
        };
        if !duty.is_active() || now < duty.next_anti_entropy {
            return;
        }
        duty.next_anti_entropy = now + period.max(1);
        self.ask_other_lanes(now, effects);
    }
}

/// How many failure-detector windows (`suspect_after × heartbeat_interval`) apart an
/// active relay asks the other lanes' relays for their lanes.
const ANTI_ENTROPY_SUSPECTS: u64 = 5;

/// Record kinds a relay forwards to its members: what they act on. The services other
/// than data offers are published on the chains but not pushed to every member.
fn is_forwarded(kind: RecordKind) -> bool {
    !matches!(
        kind,
        RecordKind::EnergySupply
            | RecordKind::EquipmentMaintenance
            | RecordKind::EfficiencyAudit
            | RecordKind::EnergySavingDesign
            | RecordKind::DistributedEnergy
            | RecordKind::MeterReading
    )
}

/// Two ascending lists of indexes as one, ascending.
fn merged(a: &[usize], b: &[usize]) -> Vec<usize> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i] <= b[j] {
            out.push(a[i]);
            i += 1;
        } else {
            out.push(b[j]);
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}
