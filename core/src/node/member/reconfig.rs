//! Lane reconfiguration (SPEC §14): configurations, seals, and the take-over.
//!
//! This is Vertical Paxos II with the supervisor as configuration master and write-all,
//! read-one over the two replicas of a lane: its relay and its backup.
//!
//! **Rules.**
//! - **Configuration.** Every election starts a configuration `(epoch, relay, backup |
//!   none)` with the next epoch. Its record names its *source*: the last configuration the
//!   supervisor recorded as active.
//! - **Seal.** A node that answers a sealed read for epoch `e`, or that itself moves to a
//!   configuration of epoch `e`, first persists `sealed = max(sealed, e)`; from then on it
//!   confirms, acknowledges and releases nothing for an older epoch. The seal survives
//!   restarts ([`Member::recover_sealed`]).
//! - **Write-all.** A relay acknowledges a member block, and releases a relay block, only
//!   once it has stored it and its configuration's backup has too (`relay.rs`); a backup
//!   stores and confirms only for its own configuration (`backup.rs`).
//! - **Take-over, in order** ([`Phase`]):
//!   1. *Read.* A new relay that was a member of the source configuration uses its own copy;
//!      any other sends a sealed read to the source's relay and backup and retries until
//!      one answers, then fetches that one node's copy (never splicing two): the relay lane
//!      up to the answer's head (blocks of epochs above the source's left out) and every
//!      member lane up to the answer's heights. It drops the blocks of its own copy above
//!      the highest block both hold. It waits for no other lane.
//!   2. *Config block.* It seals its first block on top of what it read, carrying the
//!      election records since the lane's last one and the acknowledged blocks not yet on
//!      the relay chain that fit, and stores it.
//!   3. *Activation.* The backup catches up from it (relay lane and member lanes, dropping
//!      its own blocks above the highest block both hold) and confirms; only then does the
//!      relay ask the supervisor to activate, naming its config block. On `Activated` it
//!      releases the config block and begins to acknowledge; on `ActivationRefused` it
//!      stops. A relay that finds a block of its own epoch in its copy (a restart, a
//!      repeated election message) resumes with it and never builds a second one: the
//!      backup catches up to its whole copy, and the supervisor's answer names the block.
//!   4. *Stall.* If no source member answers, the lane waits and the federation reports
//!      [`Event::Stalled`]; no timeout guesses which data survives.
//!
//! **Why no acknowledged block is lost (S3).** Let a block be acknowledged in
//! configuration C. By write-all, C's backup holds it (or C's relay, if C has none). The
//! next configuration to activate names C as its source, and its relay read from C's relay
//! or backup after sealing it; nothing of C is acknowledged or released after that seal, so
//! the copy it read holds the block, and the config block (or the blocks after it) puts it
//! on the lane. The config block and every member lane of the copy are at the new backup
//! before the configuration activates, so by induction every later active configuration
//! holds the block. Released relay blocks are never truncated, because every read returns
//! every released block. No clock appears in the argument: timeouts only decide when to ask
//! again.

use std::collections::BTreeMap;

use crate::crypto::Address;
use crate::election::{ElectionReason, ElectionRecord, LanePosition};
use crate::ids::ChainId;
use crate::message::Message;
use crate::node::{Effect, Event, StoreWrite};
use crate::record::{Record, RecordBody};
use crate::window::{FlushReason, Window};

use super::backup::BackupDuty;
use super::relay::RelayDuty;
use super::{Duty, Member, Received};

/// Where a relay is in its term (SPEC §14 take-over steps).
#[derive(Clone, Debug)]
pub(super) enum Phase {
    /// Step 1: waiting for a source member's answer to the sealed read.
    Reading {
        members: Vec<Address>,
        since: u64,
        next_ask: u64,
        stalled: bool,
    },
    /// Step 1: fetching the copy of the source member `from`.
    Fetching {
        from: Address,
        head: LanePosition,
        members: BTreeMap<Address, u64>,
        /// When `from` last answered.
        since: u64,
    },
    /// Step 3: the config block is stored; the backup is catching up.
    CatchingUp {
        config: LanePosition,
        prev: LanePosition,
        resumed: bool,
        since: u64,
        next_ask: u64,
    },
    /// Step 3: the supervisor was asked to activate.
    Activating {
        config: LanePosition,
        prev: LanePosition,
        resumed: bool,
        next_ask: u64,
    },
    /// The configuration is active: the relay acknowledges and releases.
    Active,
    /// Refused, or taken over while resuming: the relay does nothing more.
    Stopped,
}

impl Member {
    /// Persists `sealed = max(sealed, epoch)` before any later effect (SPEC §14).
    pub(super) fn seal_at(&mut self, epoch: u64, now: u64, effects: &mut Vec<Effect>) {
        if epoch <= self.sealed {
            return;
        }
        self.sealed = epoch;
        effects.push(Effect::Persist(vec![StoreWrite::Seal { epoch }]));
        effects.push(Effect::Emit(Event::Sealed {
            node: self.me,
            lane: self.consortium,
            epoch,
            at: now,
        }));
    }

    /// Drops the own lane's copy above `keep` (blocks never released, SPEC §14), in the
    /// store too. Refuses, loudly, to drop a block this node knows was released.
    pub(super) fn truncate_own(&mut self, keep: u64, now: u64, effects: &mut Vec<Effect>) -> bool {
        if keep < self.released {
            effects.push(self.rejected(
                "released_truncation",
                false,
                format!(
                    "asked to drop lane {} above {keep}, below its released height {}",
                    self.consortium, self.released
                ),
            ));
            return false;
        }
        match self.holder_mut().truncate_own(keep) {
            Ok(0) => true,
            Ok(_) => {
                effects.push(Effect::Persist(vec![StoreWrite::Truncate {
                    chain: ChainId::Relay(self.consortium),
                    keep,
                }]));
                effects.push(Effect::Emit(Event::Truncated {
                    node: self.me,
                    lane: self.consortium,
                    keep,
                    at: now,
                }));
                true
            }
            Err(why) => {
                effects.push(self.rejected("truncation_failed", false, why));
                false
            }
        }
    }

    /// A new election of the own consortium: the duty it gives this node.
    pub(super) fn reconfigure(
        &mut self,
        election: &ElectionRecord,
        records: Vec<Record>,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        self.own_source = Some(source_members(&records, election.source));
        if election.relay == self.me {
            if self.timing.mutations.backup_lost_keeps_epoch
                && election.reason == ElectionReason::BackupLost
                && self.swap_backup(election, records.clone(), now, effects)
            {
                return;
            }
            self.become_relay(election, records, now, effects);
        } else if election.backup == Some(self.me) {
            self.become_backup(election.epoch, election.relay, now, effects);
        } else {
            self.step_down();
        }
    }

    /// Leaves any duty. Returns the other lanes' blocks it kept to forward.
    pub(super) fn step_down(&mut self) -> Received {
        match std::mem::replace(&mut self.duty, Duty::None) {
            Duty::Relay(duty) => {
                self.proto.pending_joins.clear();
                duty.received
            }
            Duty::Backup(duty) => duty.received,
            Duty::None => Received::new(),
        }
    }

    /// Deliberate bug (`backup_lost_keeps_epoch`, tests only): an active relay takes a new
    /// backup without a take-over, as before SPEC §14. Returns whether it did.
    fn swap_backup(
        &mut self,
        election: &ElectionRecord,
        records: Vec<Record>,
        now: u64,
        effects: &mut Vec<Effect>,
    ) -> bool {
        let Duty::Relay(duty) = &mut self.duty else {
            return false;
        };
        if !duty.is_active() {
            return false;
        }
        let carried = records.last().cloned();
        duty.epoch = election.epoch;
        duty.backup = election.backup;
        duty.records = records;
        duty.carry.extend(carried);
        self.sealed = self.sealed.max(election.epoch);
        // The next block carries the record; an empty one goes out at once.
        if let Duty::Relay(duty) = &mut self.duty {
            let flush = duty.window.drain().unwrap_or(crate::window::Flush {
                blocks: Vec::new(),
                reason: FlushReason::Drain,
            });
            self.produce(flush, now, effects);
        }
        true
    }

    fn become_relay(
        &mut self,
        election: &ElectionRecord,
        records: Vec<Record>,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        let epoch = election.epoch;
        if self.sealed > epoch {
            return;
        }
        if matches!(&self.duty, Duty::Relay(duty) if duty.epoch == epoch) {
            return;
        }
        let received = self.step_down();
        self.seal_at(epoch, now, effects);
        self.holder_mut();
        let source_members = source_members(&records, election.source);
        self.duty = Duty::Relay(Box::new(RelayDuty::new(
            epoch,
            election.source,
            election.backup,
            records,
            Window::new(self.timing.window),
            received,
        )));
        // A relay that already holds a block of its epoch resumes with it (SPEC §14).
        let resumed = self.holder.as_ref().and_then(|h| h.own_config_block(epoch));
        if let Some((config, prev)) = resumed {
            self.configure_backup(config, prev, true, now, effects);
            return;
        }
        if election.source == 0 || source_members.contains(&self.me) {
            self.build_config_block(now, effects);
            return;
        }
        if let Duty::Relay(duty) = &mut self.duty {
            duty.phase = Phase::Reading {
                members: source_members,
                since: now,
                next_ask: 0,
                stalled: false,
            };
        }
        self.reconfig_tick(now, effects);
    }

    pub(super) fn become_backup(
        &mut self,
        epoch: u64,
        relay: Address,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        if self.sealed > epoch {
            return;
        }
        if matches!(&self.duty, Duty::Backup(duty) if duty.epoch == epoch && duty.relay == relay) {
            return;
        }
        let received = self.step_down();
        self.seal_at(epoch, now, effects);
        self.holder_mut();
        self.duty = Duty::Backup(Box::new(BackupDuty::new(epoch, relay, received)));
    }

    /// SPEC §14 step 1, the answering side: seal at the asker's epoch, then tell it what
    /// this node holds.
    pub(super) fn on_sealed_read(
        &mut self,
        from: Address,
        records: Vec<Record>,
        have: &[LanePosition],
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        let election = match self.cited_election(TakeOverMessage::SealedRead, from, &records) {
            Ok(election) => election,
            Err(refusal) => {
                effects.push(*refusal);
                return;
            }
        };
        let epoch = election.epoch;
        // Deliberate bug (`no_seal`, tests only): answer without sealing.
        if !self.timing.mutations.no_seal {
            self.seal_at(epoch, now, effects);
            let fenced = match &self.duty {
                Duty::Relay(duty) => duty.epoch < epoch,
                Duty::Backup(duty) => duty.epoch < epoch,
                Duty::None => false,
            };
            // Deliberate bug (`no_fencing`, tests only): the duty goes on, sealed or not.
            if fenced && !self.timing.mutations.no_fencing {
                self.step_down();
            }
        }
        effects.push(Effect::Emit(Event::Read {
            node: self.me,
            lane: self.consortium,
            epoch,
            relay: from,
            at: now,
        }));
        let holder = self.holder_mut();
        let (head, common) = match holder.own_lane() {
            Some(lane) => {
                let head = lane.head_at_most(election.source);
                (head, lane.common(have).min(head.height))
            }
            None => (
                LanePosition {
                    height: 0,
                    hash: crate::crypto::Hash::ZERO,
                },
                0,
            ),
        };
        let members = holder.member_heads();
        effects.push(Effect::Send {
            to: from,
            message: Message::ReadReply {
                epoch,
                common,
                head,
                members,
            },
        });
    }

    /// SPEC §14 step 1: a source member answered the sealed read; fetch its copy.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_read_reply(
        &mut self,
        from: Address,
        epoch: u64,
        common: u64,
        head: LanePosition,
        members: Vec<(Address, u64)>,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        let Duty::Relay(duty) = &self.duty else {
            return;
        };
        let asked =
            matches!(&duty.phase, Phase::Reading { members, .. } if members.contains(&from));
        if duty.epoch != epoch || !asked {
            return;
        }
        // Adopt `from`'s copy: what this copy holds above the part both share is not in a
        // source member's copy, so it was never released (SPEC §14).
        let keep = common.min(head.height);
        if !self.truncate_own(keep, now, effects) {
            return;
        }
        if let Duty::Relay(duty) = &mut self.duty {
            duty.phase = Phase::Fetching {
                from,
                head,
                members: members.into_iter().collect(),
                since: now,
            };
        }
        self.fetch(now, effects);
    }

    /// Asks the source member for what its copy has and this one lacks; once it has all,
    /// builds the config block.
    pub(super) fn fetch(&mut self, now: u64, effects: &mut Vec<Effect>) {
        let Duty::Relay(duty) = &self.duty else {
            return;
        };
        let Phase::Fetching {
            from,
            head,
            members,
            ..
        } = &duty.phase
        else {
            return;
        };
        let (from, head, members) = (*from, *head, members.clone());
        let Some(holder) = self.holder.as_ref() else {
            return;
        };
        let Some(lane) = holder.own_lane() else {
            return;
        };
        let relay_done = lane.holds(&head) && lane.head.height == head.height;
        let (mine, locator) = (lane.head.height, self.locator_of(self.consortium));
        let missing = holder.lagging(&members);
        if relay_done && missing.is_empty() {
            self.build_config_block(now, effects);
            return;
        }
        if !relay_done {
            let chain = ChainId::Relay(self.consortium);
            self.ask_sync(from, chain, mine + 1, locator, now, effects);
        }
        self.ask_member_lanes(from, missing, now, effects);
    }

    /// SPEC §14 step 2: seals the config block on top of the copy, stores it, and starts
    /// step 3.
    fn build_config_block(&mut self, now: u64, effects: &mut Vec<Effect>) {
        let Duty::Relay(duty) = &self.duty else {
            return;
        };
        let source = duty.source;
        let Some(lane) = self.holder.as_ref().and_then(|h| h.own_lane()) else {
            return;
        };
        // Blocks of epochs above the source's are not the source's (SPEC §14).
        let keep = lane.head_at_most(source).height;
        if !self.truncate_own(keep, now, effects) {
            return;
        }
        let (Duty::Relay(duty), Some(holder)) = (&self.duty, self.holder.as_ref()) else {
            return;
        };
        let Some(lane) = holder.own_lane() else {
            return;
        };
        let prev = LanePosition {
            height: lane.head.height,
            hash: lane.head.hash,
        };
        // The election records since the lane's last one, hash-chained: skipped
        // configurations' too.
        let last = lane.elections.last_election;
        let start = duty
            .records
            .iter()
            .position(|r| r.digest() == last)
            .map_or(0, |i| i + 1);
        let carried: Vec<Record> = duty.records[start..].to_vec();
        // The acknowledged blocks not yet on the relay chain that fit; the rest follow.
        let budget = duty.window.config().payload_budget as usize;
        let waiting: Vec<_> = holder.backlog.blocks().cloned().collect();
        let mut blocks = Vec::new();
        let mut bytes = 0;
        for block in holder.in_lane_order(self.consortium, waiting) {
            let size = crate::codec::encoded_len(&block);
            if bytes + size > budget {
                break;
            }
            bytes += size;
            blocks.push(block);
        }
        let Some(config) = self.seal_block(blocks, FlushReason::Drain, carried, true, now, effects)
        else {
            if let Duty::Relay(duty) = &mut self.duty {
                duty.phase = Phase::Stopped;
            }
            return;
        };
        self.configure_backup(config, prev, false, now, effects);
    }

    /// SPEC §14 step 3: the backup catches up (or, with none, the supervisor is asked at
    /// once).
    fn configure_backup(
        &mut self,
        config: LanePosition,
        prev: LanePosition,
        resumed: bool,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        let Duty::Relay(duty) = &mut self.duty else {
            return;
        };
        duty.phase = match duty.backup {
            Some(_) => Phase::CatchingUp {
                config,
                prev,
                resumed,
                since: now,
                next_ask: 0,
            },
            None => Phase::Activating {
                config,
                prev,
                resumed,
                next_ask: 0,
            },
        };
        if duty.backup.is_none() && self.timing.mutations.release_before_activation {
            self.activate(now, effects);
            return;
        }
        self.reconfig_tick(now, effects);
    }

    /// SPEC §14 step 3: the backup has caught up.
    pub(super) fn on_caught_up(
        &mut self,
        from: Address,
        epoch: u64,
        head: LanePosition,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        let holds = self
            .holder
            .as_ref()
            .and_then(|h| h.own_lane())
            .is_some_and(|l| l.holds(&head));
        let early = self.timing.mutations.release_before_activation;
        let Duty::Relay(duty) = &mut self.duty else {
            return;
        };
        if duty.epoch != epoch || duty.backup != Some(from) || !holds {
            return;
        }
        duty.confirm_up_to(&head);
        if let Phase::CatchingUp {
            config,
            prev,
            resumed,
            ..
        } = duty.phase
        {
            if head.height >= config.height {
                duty.phase = Phase::Activating {
                    config,
                    prev,
                    resumed,
                    next_ask: 0,
                };
                // Deliberate bug (`release_before_activation`, tests only).
                if early {
                    self.activate(now, effects);
                    return;
                }
                self.reconfig_tick(now, effects);
                return;
            }
        }
        self.release_ready(now, effects);
    }

    /// SPEC §14 step 3: the supervisor recorded the configuration as active.
    pub(super) fn on_activated(
        &mut self,
        epoch: u64,
        config: LanePosition,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        let Duty::Relay(duty) = &mut self.duty else {
            return;
        };
        if duty.epoch != epoch {
            return;
        }
        match duty.phase {
            Phase::Activating { config: mine, .. } if mine == config => self.activate(now, effects),
            Phase::Activating { .. } | Phase::CatchingUp { .. } => {
                // The supervisor recorded another config block: this one is not it.
                duty.phase = Phase::Stopped;
            }
            _ => {}
        }
    }

    /// The configuration is active: release the config block (and, resuming after a
    /// restart, the copy the backup confirmed), then serve.
    fn activate(&mut self, now: u64, effects: &mut Vec<Effect>) {
        let lane = self.consortium;
        let me = self.me;
        let Some(holder) = self.holder.as_ref() else {
            return;
        };
        let Duty::Relay(duty) = &mut self.duty else {
            return;
        };
        let (config, prev, resumed) = match duty.phase {
            Phase::Activating {
                config,
                prev,
                resumed,
                ..
            }
            | Phase::CatchingUp {
                config,
                prev,
                resumed,
                ..
            } => (config, prev, resumed),
            _ => return,
        };
        duty.phase = Phase::Active;
        if resumed {
            // Everything in the copy is confirmed by the backup's catch-up: released again
            // from the config block up, or from as far down as the undo logs reach. Below
            // either, every block was released before the restart (below the config
            // block by the configurations before; more than UNDO_DEPTH below the head,
            // since a relay never holds more than MAX_TENTATIVE unreleased).
            let tail = holder.own_tail(config.height);
            let first = tail.first().map_or(config.height, |b| b.header.height);
            let below = holder
                .own_lane()
                .and_then(|l| {
                    let height = first.checked_sub(1)?;
                    Some(match l.position(height) {
                        Some((hash, _)) => LanePosition { height, hash },
                        None => LanePosition {
                            height: 0,
                            hash: crate::crypto::Hash::ZERO,
                        },
                    })
                })
                .unwrap_or(prev);
            duty.resume(below, tail);
            effects.push(Effect::Emit(Event::TookOver {
                consortium: lane,
                epoch: duty.epoch,
                relay: me,
                config,
                prev,
                at: now,
            }));
            self.release_ready(now, effects);
        }
        self.start_serving(now, effects);
        if resumed {
            // Back in office: a block at once, as a take-over sends one (SPEC §12 D10).
            self.flush_relay(now, effects);
        }
    }

    /// SPEC §14 step 3: the supervisor elected a newer configuration; this one stops.
    pub(super) fn on_activation_refused(
        &mut self,
        epoch: u64,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        let Duty::Relay(duty) = &mut self.duty else {
            return;
        };
        if duty.epoch == epoch && !duty.is_active() {
            duty.phase = Phase::Stopped;
            effects.push(Effect::Emit(Event::Rejected {
                node: self.me,
                kind: "activation_refused",
                hostile: false,
                detail: format!("epoch {epoch} of lane {} at {now}", self.consortium),
            }));
        }
    }

    /// The take-over's retries: timeouts decide only when to ask again (SPEC §14).
    pub(super) fn reconfig_tick(&mut self, now: u64, effects: &mut Vec<Effect>) {
        let retry = self.timing.takeover_retry_ms();
        let suspect = self.timing.suspect_ms();
        let lane = self.consortium;
        let me = self.me;
        let supervisor = self.supervisor;
        let have = self.locator_of(lane);
        let heads = self.holder.as_ref().map(|h| {
            let head = h.relay_head(lane);
            (
                LanePosition {
                    height: head.height,
                    hash: head.hash,
                },
                h.member_heads(),
            )
        });
        let Duty::Relay(duty) = &mut self.duty else {
            return;
        };
        let epoch = duty.epoch;
        match &mut duty.phase {
            Phase::Reading {
                members,
                since,
                next_ask,
                stalled,
            } => {
                if now >= *next_ask {
                    *next_ask = now + retry;
                    for to in members.iter() {
                        effects.push(Effect::Send {
                            to: *to,
                            message: Message::SealedRead {
                                records: duty.records.clone(),
                                have: have.clone(),
                            },
                        });
                    }
                }
                if !*stalled && now >= *since + suspect {
                    *stalled = true;
                    effects.push(Effect::Emit(Event::Stalled {
                        lane,
                        epoch,
                        relay: me,
                        waiting_for: members.clone(),
                        at: now,
                    }));
                }
            }
            Phase::Fetching { since, .. } => {
                // The source member fell silent mid-fetch: read again from both.
                if now >= *since + suspect {
                    let members = source_members(&duty.records, duty.source);
                    duty.phase = Phase::Reading {
                        members,
                        since: now,
                        next_ask: 0,
                        stalled: false,
                    };
                    self.reconfig_tick(now, effects);
                } else {
                    self.fetch(now, effects);
                }
            }
            Phase::CatchingUp {
                since, next_ask, ..
            } => {
                let Some(backup) = duty.backup else {
                    return;
                };
                if now >= *next_ask {
                    *next_ask = now + retry;
                    if let Some((head, members)) = heads {
                        effects.push(Effect::Send {
                            to: backup,
                            message: Message::Configure {
                                records: duty.records.clone(),
                                head,
                                members,
                            },
                        });
                    }
                }
                if now >= *since + suspect + self.timing.retry_ms() {
                    *since = u64::MAX / 2;
                    effects.push(Effect::Send {
                        to: supervisor,
                        message: Message::BackupSilent { epoch, backup },
                    });
                }
            }
            Phase::Activating {
                config, next_ask, ..
            } => {
                if now >= *next_ask {
                    *next_ask = now + retry;
                    effects.push(Effect::Send {
                        to: supervisor,
                        message: Message::Activate {
                            epoch,
                            config: *config,
                        },
                    });
                }
            }
            Phase::Active | Phase::Stopped => {}
        }
    }

    /// SPEC §14 step 3, the backup's side: the relay of its configuration asks it to catch
    /// up with its copy.
    pub(super) fn on_configure(
        &mut self,
        from: Address,
        records: Vec<Record>,
        head: LanePosition,
        members: Vec<(Address, u64)>,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        let epoch = match self.cited_election(TakeOverMessage::Configure, from, &records) {
            Ok(election) => election.epoch,
            Err(refusal) => {
                effects.push(*refusal);
                return;
            }
        };
        self.become_backup(epoch, from, now, effects);
        if let Duty::Backup(duty) = &mut self.duty {
            duty.target = Some((head, members.into_iter().collect()));
        }
        self.catch_up(now, effects);
    }
}

/// A take-over message that cites its configuration's election records.
#[derive(Clone, Copy)]
enum TakeOverMessage {
    /// From a new relay to a source member (step 1).
    SealedRead,
    /// From a new relay to its backup (step 3).
    Configure,
}

impl Member {
    /// The election a take-over message from `from` cites, if the message may act: the
    /// supervisor signed the records, `from` is the relay they elect (and, for a
    /// catch-up, this node the backup), and the epoch is not below this node's seal.
    /// Otherwise the refusal to report: hostile, but for a stale epoch (a late message).
    fn cited_election(
        &self,
        message: TakeOverMessage,
        from: Address,
        records: &[Record],
    ) -> Result<ElectionRecord, Box<Effect>> {
        let (bad, stale, what) = match message {
            TakeOverMessage::SealedRead => ("bad_sealed_read", "stale_sealed_read", "sealed read"),
            TakeOverMessage::Configure => ("bad_configure", "stale_epoch", "catch-up"),
        };
        let election = self
            .check_elections(Some(self.consortium), records)
            .map_err(|why| {
                Box::new(self.rejected(bad, true, format!("{what} from {from}: {why}")))
            })?;
        let cast = match message {
            TakeOverMessage::SealedRead => election.relay == from,
            TakeOverMessage::Configure => {
                election.relay == from && election.backup == Some(self.me)
            }
        };
        if !cast {
            return Err(Box::new(self.rejected(
                bad,
                true,
                format!(
                    "{what} from {from} for epoch {}, which elected others",
                    election.epoch
                ),
            )));
        }
        if election.epoch < self.sealed {
            return Err(Box::new(self.rejected(
                stale,
                false,
                format!(
                    "{what} of epoch {} from {from}; sealed at {}",
                    election.epoch, self.sealed
                ),
            )));
        }
        Ok(election)
    }
}

/// The relay and backup of the source configuration, from its election record among
/// `records` (none for source 0).
pub(super) fn source_members(records: &[Record], source: u64) -> Vec<Address> {
    records
        .iter()
        .find_map(|r| match &r.content.body {
            RecordBody::Election(e) if e.epoch == source && source > 0 => {
                Some(std::iter::once(e.relay).chain(e.backup).collect())
            }
            _ => None,
        })
        .unwrap_or_default()
}
