//! The backup duty (SPEC §3, §14): a hot copy of the relay's lane and its consortium's
//! member lanes, so that a take-over can read it.
//!
//! The backup stores and confirms only for its own configuration, and only while it is not
//! sealed at a newer epoch: that is what makes the relay's acknowledgements and releases
//! write-all. It catches up when its relay asks (`Configure`), adopting the relay's copy of
//! the relay lane (dropping its own blocks above the highest block both hold: never
//! released, SPEC §14) and fetching every member lane up to the relay's. A replicated
//! block that arrives ahead of a gap is parked, the gap fetched from the relay, and the
//! block confirmed once stored.

use std::collections::BTreeMap;

use crate::block::{ChainBlock, ConsortiumBlock, RelayBlock};
use crate::crypto::Address;
use crate::election::LanePosition;
use crate::ids::ChainId;
use crate::message::Message;
use crate::node::{Effect, Event, StoreWrite};

use super::holder::Accepted;
use super::{held_event, reject_kind, Duty, Member, Received};
use crate::validate::Reject;

/// One backup term.
#[derive(Debug)]
pub(super) struct BackupDuty {
    pub(super) epoch: u64,
    pub(super) relay: Address,
    /// What the relay asked this backup to catch up to: its relay-lane head and its member
    /// lanes' heads. Confirmed with `CaughtUp` once held.
    pub(super) target: Option<(LanePosition, BTreeMap<Address, u64>)>,
    /// Replicated member blocks that arrived ahead of a gap.
    parked: BTreeMap<(Address, u64), ConsortiumBlock>,
    /// Replicated relay blocks of the own lane that arrived ahead of a gap, by height.
    parked_relay: BTreeMap<u64, RelayBlock>,
    /// Other lanes' blocks received lately, with when: the relay may have failed before
    /// forwarding them to the members, so a backup that takes over forwards them again
    /// (members act on each record once).
    pub(super) received: Received,
    /// When the chains still waited on are next asked of the relay again (0: not yet).
    next_ask: u64,
}

impl BackupDuty {
    pub(super) fn new(epoch: u64, relay: Address, received: Received) -> Self {
        BackupDuty {
            epoch,
            relay,
            target: None,
            parked: BTreeMap::new(),
            parked_relay: BTreeMap::new(),
            received,
            next_ask: 0,
        }
    }
}

impl Member {
    /// Whether this node is the backup of `relay`'s configuration `epoch` and may store and
    /// confirm for it (SPEC §14: not sealed at a newer epoch).
    fn backs(&self, relay: Address, epoch: u64) -> bool {
        // Deliberate bug (`no_fencing`, tests only): ignore the seal.
        matches!(&self.duty, Duty::Backup(duty) if duty.relay == relay && duty.epoch == epoch)
            && (self.sealed <= epoch || self.timing.mutations.no_fencing)
    }

    fn confirm(
        &self,
        relay: Address,
        epoch: u64,
        hash: crate::crypto::Hash,
        now: u64,
    ) -> [Effect; 2] {
        [
            Effect::Send {
                to: relay,
                message: Message::Replicated { epoch, hash },
            },
            Effect::Emit(Event::Confirmed {
                node: self.me,
                lane: self.consortium,
                epoch,
                at: now,
            }),
        ]
    }

    pub(super) fn on_replicate(
        &mut self,
        from: Address,
        epoch: u64,
        block: ConsortiumBlock,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        if !self.backs(from, epoch) {
            effects.push(self.rejected(
                "stale_epoch",
                false,
                format!("replicate from {from} epoch {epoch}: not its backup"),
            ));
            // Perhaps this node missed the election that made it backup: ask.
            if !self.is_backup() && self.sealed <= epoch {
                effects.push(self.discover());
            }
            return;
        }
        let hash = block.hash();
        let (author, height) = (block.header.author, block.height());
        match self.holder_mut().accept_member_block(&block, false) {
            Ok(Accepted::New) => {
                if author != self.me {
                    effects.push(Effect::Persist(vec![block.into()]));
                    effects.push(Effect::Emit(self.stored(author, height, now)));
                }
            }
            Ok(Accepted::Duplicate) => {}
            Err(Reject::Height { expected, got }) if got > expected => {
                // A gap: fetch it from the relay, and confirm this block once it is stored.
                if let Duty::Backup(duty) = &mut self.duty {
                    duty.parked.insert((author, height), block);
                }
                let chain = ChainId::Consortium(self.consortium, author);
                self.ask_sync(from, chain, expected, Vec::new(), now, effects);
                return;
            }
            Err(reason) => {
                effects.push(self.rejected(
                    reject_kind(&reason),
                    true,
                    format!("replicated block: {reason}"),
                ));
                return;
            }
        }
        effects.extend(self.confirm(from, epoch, hash, now));
    }

    pub(super) fn on_replicate_relay(
        &mut self,
        from: Address,
        epoch: u64,
        block: RelayBlock,
        released: u64,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        if !self.backs(from, epoch) || block.header.lane != self.consortium {
            effects.push(self.rejected(
                "stale_epoch",
                false,
                format!("relay block replicated by {from} epoch {epoch}: not its backup"),
            ));
            return;
        }
        self.released = self.released.max(released);
        if let Duty::Backup(duty) = &mut self.duty {
            duty.parked_relay.insert(block.height(), block);
        }
        self.unpark_relay(now, effects);
    }

    /// Stores and confirms the parked relay blocks that now follow the own lane's head;
    /// a gap below the lowest is fetched from the relay.
    fn unpark_relay(&mut self, now: u64, effects: &mut Vec<Effect>) {
        loop {
            let Duty::Backup(duty) = &self.duty else {
                return;
            };
            let (relay, epoch) = (duty.relay, duty.epoch);
            let Some((&height, block)) = duty.parked_relay.iter().next() else {
                return;
            };
            let Some(lane) = self.holder.as_ref().and_then(|h| h.own_lane()) else {
                return;
            };
            let head = lane.head.height;
            let position = LanePosition {
                height,
                hash: block.hash(),
            };
            if height > head + 1 {
                let have = self.locator_of(self.consortium);
                let chain = ChainId::Relay(self.consortium);
                self.ask_sync(relay, chain, head + 1, have, now, effects);
                return;
            }
            let Some(block) = (match &mut self.duty {
                Duty::Backup(duty) => duty.parked_relay.remove(&height),
                _ => None,
            }) else {
                return;
            };
            if lane.holds(&position) {
                effects.extend(self.confirm(relay, epoch, position.hash, now));
                continue;
            }
            // The relay's copy is the one this configuration keeps: a different block of
            // this node's at that height was never released (SPEC §14).
            if height <= head && !self.truncate_own(height - 1, now, effects) {
                return;
            }
            match self.holder_mut().accept_relay(&block, false) {
                Ok(()) => {
                    effects.push(Effect::Persist(vec![StoreWrite::Block(
                        block.clone().into(),
                    )]));
                    effects.push(Effect::Emit(held_event(self.me, &block, now)));
                    effects.extend(self.confirm(relay, epoch, position.hash, now));
                }
                Err(err) => {
                    effects.push(self.rejected(
                        reject_kind(&err.reason),
                        true,
                        format!("replicated relay block: {err}"),
                    ));
                }
            }
        }
    }

    /// Stores and confirms the parked member blocks of `author` that now follow its lane's
    /// head.
    pub(super) fn unpark(&mut self, author: Address, now: u64, effects: &mut Vec<Effect>) {
        loop {
            let Duty::Backup(duty) = &mut self.duty else {
                return;
            };
            let (relay, epoch) = (duty.relay, duty.epoch);
            let Some((&key, _)) = duty.parked.range((author, 0)..=(author, u64::MAX)).next() else {
                return;
            };
            let Some(block) = duty.parked.remove(&key) else {
                return;
            };
            let hash = block.hash();
            match self.holder_mut().accept_member_block(&block, false) {
                Ok(Accepted::New) => {
                    if author != self.me {
                        effects.push(Effect::Persist(vec![block.into()]));
                        effects.push(Effect::Emit(self.stored(author, key.1, now)));
                    }
                }
                Ok(Accepted::Duplicate) => {}
                Err(_) => {
                    // Still a gap: put it back and wait for the rest of the sync.
                    if let Duty::Backup(duty) = &mut self.duty {
                        duty.parked.insert(key, block);
                    }
                    return;
                }
            }
            effects.extend(self.confirm(relay, epoch, hash, now));
        }
    }

    /// Catch-up progress: once the copy holds the relay's lane up to the target head and
    /// every member lane up to its target height, confirm with `CaughtUp`; otherwise ask
    /// the relay for what is missing.
    pub(super) fn catch_up(&mut self, now: u64, effects: &mut Vec<Effect>) {
        let Duty::Backup(duty) = &self.duty else {
            return;
        };
        let (relay, epoch) = (duty.relay, duty.epoch);
        let Some((head, members)) = duty.target.clone() else {
            return;
        };
        if self.sealed > epoch {
            return;
        }
        let Some(holder) = self.holder.as_ref() else {
            return;
        };
        let Some(lane) = holder.own_lane() else {
            return;
        };
        let relay_done = lane.holds(&head);
        let (mine, have) = (lane.head.height, self.locator_of(self.consortium));
        let missing = holder.lagging(&members);
        if relay_done && missing.is_empty() {
            if let Duty::Backup(duty) = &mut self.duty {
                duty.target = None;
            }
            effects.push(Effect::Send {
                to: relay,
                message: Message::CaughtUp { epoch, head },
            });
            effects.push(Effect::Emit(Event::Confirmed {
                node: self.me,
                lane: self.consortium,
                epoch,
                at: now,
            }));
            return;
        }
        if !relay_done {
            let chain = ChainId::Relay(self.consortium);
            // Asked from the head when the copy is longer than the target: the relay
            // answers from the highest block both hold.
            let from = mine.min(head.height) + 1;
            self.ask_sync(relay, chain, from, have, now, effects);
        }
        self.ask_member_lanes(relay, missing, now, effects);
    }

    /// After a page of a sync from the relay: parked blocks that now fit, and the catch-up.
    pub(super) fn backup_synced(&mut self, chain: ChainId, now: u64, effects: &mut Vec<Effect>) {
        match chain {
            ChainId::Consortium(_, author) => self.unpark(author, now, effects),
            ChainId::Relay(lane) if lane == self.consortium => self.unpark_relay(now, effects),
            _ => {}
        }
        self.catch_up(now, effects);
    }

    /// Asks the relay again, every resend interval, for the chains this backup still waits
    /// on: the catch-up and the gaps behind parked blocks. Syncing only fills the copies in
    /// lane order, and a parked block is confirmed only once stored, so asking again never
    /// confirms early (SPEC §14).
    pub(super) fn backup_tick(&mut self, now: u64, effects: &mut Vec<Effect>) {
        let patience = self.resend_ms();
        let Duty::Backup(duty) = &mut self.duty else {
            return;
        };
        // A catch-up is on the take-over's path: `ask_sync` asks again for what has not
        // come after half a heartbeat.
        if duty.target.is_some() {
            self.catch_up(now, effects);
            let Duty::Backup(duty) = &mut self.duty else {
                return;
            };
            if duty.parked.is_empty() && duty.parked_relay.is_empty() {
                return;
            }
        }
        let Duty::Backup(duty) = &mut self.duty else {
            return;
        };
        let waiting =
            duty.target.is_some() || !duty.parked.is_empty() || !duty.parked_relay.is_empty();
        if !waiting {
            duty.next_ask = 0;
            return;
        }
        if duty.next_ask == 0 {
            duty.next_ask = now + patience;
            return;
        }
        if now < duty.next_ask {
            return;
        }
        duty.next_ask = now + patience;
        let authors: Vec<Address> = duty.parked.keys().map(|(a, _)| *a).collect();
        for author in authors {
            self.unpark(author, now, effects);
            let Duty::Backup(duty) = &self.duty else {
                return;
            };
            let relay = duty.relay;
            if duty.parked.keys().any(|(a, _)| *a == author) {
                let mine = self.holder.as_ref().map_or(0, |h| h.member_head(&author));
                let chain = ChainId::Consortium(self.consortium, author);
                self.ask_sync(relay, chain, mine + 1, Vec::new(), now, effects);
            }
        }
        self.unpark_relay(now, effects);
        self.catch_up(now, effects);
    }
}
