//! The supervisor (SPEC §5, §12 D3, D5, D11): the heartbeat failure detector, leases,
//! elections, failover, rotation, and the replacement of a lost backup.
//!
//! The supervisor is trusted and outside the fault model, but every decision it makes is a
//! signed election record that anyone recomputes from chain data. Only relay-capable
//! members heartbeat to it.
//!
//! - **Leases.** A heartbeat from the relay renews its lease until `sent_at + (suspect_after
//!   − 1) × heartbeat_interval`. The relay acknowledges and produces only under a lease.
//! - **Failover.** When the relay has missed `suspect_after` heartbeats, the supervisor waits
//!   until the relay's lease has surely expired, then promotes the backup (epoch + 1) and
//!   draws a new backup.
//! - **Rotation.** After a full `period`, the supervisor asks the relay to hand over: the
//!   relay sends what is waiting, stops, and reports its lane head; then the backup is
//!   promoted (epoch + 1). A relay that does not answer is failed over instead.
//! - **Backup lost.** A new backup is drawn; the epoch stays.
//! - **No candidates.** The consortium is cut off (reported) until one comes back.

use std::collections::BTreeMap;

use crate::block::{AnyBlock, ChainBlock, PrivateBlock};
use crate::crypto::{Address, Domain, Hash, Keypair};
use crate::election::{
    draw, ElectionHistory, ElectionReason, ElectionRecord, LanePosition, WeightFn,
};
use crate::genesis::Genesis;
use crate::ids::ConsortiumId;
use crate::message::Message;
use crate::node::{Effect, Event, Timing};
use crate::record::{Audience, Record, RecordBody, RecordContent};

/// How many recent election records an [`Message::Elected`] carries.
pub const ELECTIONS_CARRIED: usize = 16;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// No relay serves: before the first election, or cut off.
    Vacant,
    /// The relay serves its term.
    Serving,
    /// The relay was asked to hand over at `since`.
    HandingOver { since: u64 },
    /// The relay missed its heartbeats; waiting for its lease to expire.
    Failing,
}

#[derive(Clone, Debug)]
struct Watch {
    history: ElectionHistory,
    phase: Phase,
    term_started: u64,
    lease_until: u64,
    records: Vec<Record>,
    members: Vec<Address>,
    candidates: Vec<Address>,
}

/// The supervisor's state.
#[derive(Debug)]
pub struct Supervisor {
    key: Keypair,
    timing: Timing,
    weight_fn: WeightFn,
    watches: Vec<Watch>,
    last_seen: BTreeMap<Address, u64>,
    heads: BTreeMap<Address, LanePosition>,
    started_at: Option<u64>,
    seq: u64,
    chain: (u64, Hash),
    /// Newcomers the relays announced (SPEC §6.1), with their keys.
    joined: BTreeMap<Address, crate::crypto::PublicKey>,
}

impl Supervisor {
    /// A supervisor for `genesis`, signing with `key`.
    pub fn new(key: Keypair, genesis: &Genesis, timing: Timing) -> Self {
        let watches = genesis
            .consortiums
            .iter()
            .map(|c| Watch {
                history: ElectionHistory::new(c.id),
                phase: Phase::Vacant,
                term_started: 0,
                lease_until: 0,
                records: Vec::new(),
                members: c.members.iter().map(|m| m.address).collect(),
                candidates: c
                    .members
                    .iter()
                    .filter(|m| m.relay_capable)
                    .map(|m| m.address)
                    .collect(),
            })
            .collect();
        Supervisor {
            key,
            timing,
            weight_fn: genesis.weight_fn,
            watches,
            last_seen: BTreeMap::new(),
            heads: BTreeMap::new(),
            started_at: None,
            seq: 0,
            chain: (0, Hash::ZERO),
            joined: BTreeMap::new(),
        }
    }

    /// The supervisor's address.
    pub fn address(&self) -> Address {
        self.key.address()
    }

    /// Replays one block of the supervisor's own private chain of election records, on
    /// restart: the elections are rebuilt from what it signed.
    pub fn recover(&mut self, block: &PrivateBlock) {
        self.chain = (block.height(), block.hash());
        for record in &block.records {
            self.seq = self.seq.max(record.content.seq);
            if let RecordBody::Election(election) = &record.content.body {
                if let Some(watch) = self.watches.get_mut(election.consortium.0 as usize) {
                    let _ = watch
                        .history
                        .apply(election, record.digest(), |_| true, |_| true);
                    watch.records.push(record.clone());
                    watch.phase = Phase::Serving;
                }
            }
        }
    }

    /// The key of a newcomer a relay announced, for envelope checks.
    pub fn key_of(&self, address: &Address) -> Option<crate::crypto::PublicKey> {
        self.joined.get(address).copied()
    }

    /// The current election of `consortium`.
    pub fn history(&self, consortium: ConsortiumId) -> Option<&ElectionHistory> {
        self.watches.get(consortium.0 as usize).map(|w| &w.history)
    }

    fn alive(&self, address: &Address, now: u64) -> bool {
        match self.last_seen.get(address) {
            Some(seen) => now.saturating_sub(*seen) < self.timing.suspect_ms(),
            // Before its first heartbeat, a node counts as alive for one detection period
            // after the supervisor starts.
            None => self
                .started_at
                .is_some_and(|start| now.saturating_sub(start) < self.timing.suspect_ms()),
        }
    }

    /// Handles a message from a node.
    pub fn deliver(&mut self, from: Address, message: Message, now: u64) -> Vec<Effect> {
        self.start(now);
        let mut effects = Vec::new();
        match message {
            Message::Heartbeat {
                consortium,
                epoch: _,
                lane_head,
                sent_at,
            } => {
                let Some(index) = self.watch_of(consortium, &from) else {
                    return effects;
                };
                self.last_seen.insert(from, now);
                self.heads.insert(from, lane_head);
                let watch = &mut self.watches[index];
                if watch.phase == Phase::Serving && watch.history.relay == Some(from) {
                    let until = sent_at.min(now) + self.timing.lease_ms();
                    watch.lease_until = watch.lease_until.max(until);
                    effects.push(Effect::Send {
                        to: from,
                        message: Message::Lease {
                            epoch: watch.history.epoch,
                            until,
                        },
                    });
                }
            }
            Message::HandedOver { epoch, lane_head } => {
                let Some(index) = self
                    .watches
                    .iter()
                    .position(|w| w.history.relay == Some(from))
                else {
                    return effects;
                };
                let watch = &self.watches[index];
                if matches!(watch.phase, Phase::HandingOver { .. }) && watch.history.epoch == epoch
                {
                    self.heads.insert(from, lane_head);
                    self.elect(
                        index,
                        ElectionReason::Rotation,
                        lane_head,
                        now,
                        &mut effects,
                    );
                }
            }
            Message::Joined { announcement } => {
                // Only the serving relay of a consortium announces its newcomers.
                let Some(index) = self
                    .watches
                    .iter()
                    .position(|w| w.history.relay == Some(from))
                else {
                    return effects;
                };
                if announcement.content.author != from {
                    return effects;
                }
                if let RecordBody::JoinAnnouncement { entry } = &announcement.content.body {
                    self.joined.insert(entry.address, entry.public_key);
                    let watch = &mut self.watches[index];
                    if !watch.members.contains(&entry.address) {
                        watch.members.push(entry.address);
                    }
                }
            }
            Message::Discover { consortium } => {
                if let Some(watch) = self.watches.get(consortium.0 as usize) {
                    if !watch.records.is_empty() {
                        // A relay or backup that (re)started learns first who serves the
                        // other lanes, as a newly elected one does (`announce`): it
                        // broadcasts its relay blocks to them, and syncs its lane from them.
                        let serves =
                            watch.history.relay == Some(from) || watch.history.backup == Some(from);
                        for (index, other) in self.watches.iter().enumerate() {
                            if !serves || index == consortium.0 as usize || other.records.is_empty()
                            {
                                continue;
                            }
                            effects.push(Effect::Send {
                                to: from,
                                message: Message::Elected {
                                    records: other.records.clone(),
                                },
                            });
                        }
                        effects.push(Effect::Send {
                            to: from,
                            message: Message::Elected {
                                records: watch.records.clone(),
                            },
                        });
                    }
                }
            }
            _ => {}
        }
        effects
    }

    fn watch_of(&self, consortium: ConsortiumId, member: &Address) -> Option<usize> {
        let index = consortium.0 as usize;
        self.watches
            .get(index)
            .filter(|w| w.candidates.contains(member))
            .map(|_| index)
    }

    /// Notes the supervisor's start at its first input, tick or message alike: terms
    /// recovered from the chain restart with the supervisor, so a relay serves a full
    /// period after a restart before it is rotated.
    fn start(&mut self, now: u64) {
        if self.started_at.is_none() {
            self.started_at = Some(now);
            for watch in &mut self.watches {
                watch.term_started = now;
            }
        }
    }

    /// Advances the failure detector and the terms.
    pub fn tick(&mut self, now: u64) -> Vec<Effect> {
        self.start(now);
        let mut effects = Vec::new();
        for index in 0..self.watches.len() {
            let watch = &self.watches[index];
            let relay = watch.history.relay;
            let backup = watch.history.backup;
            let relay_alive = relay.is_some_and(|r| self.alive(&r, now));
            match watch.phase.clone() {
                Phase::Vacant => {
                    let reason = if watch.history.epoch == 0 {
                        ElectionReason::Initial
                    } else {
                        ElectionReason::Failover
                    };
                    let head = self.head_for(index, reason);
                    self.elect(index, reason, head, now, &mut effects);
                }
                // A relay that falls silent is failed over as soon as it is suspected,
                // also while a hand-over it was asked for is pending: the hand-over's own
                // deadline counts from the request, and would add up to a detection period.
                Phase::Serving | Phase::HandingOver { .. } if !relay_alive => {
                    self.watches[index].phase = Phase::Failing;
                    self.fail_over_if_expired(index, now, &mut effects);
                }
                Phase::Serving => {
                    // No live backup: draw one as soon as another candidate is alive. The
                    // history keeps the lost backup until a record replaces it: it is what
                    // every verifier recomputes from, so it changes only by election records.
                    let backup_alive = backup.is_some_and(|b| self.alive(&b, now));
                    if !backup_alive {
                        // A backup that failed is replaced even when no other candidate
                        // is alive: the draw then gives no backup, and the relay goes on
                        // without one (degraded, D4) instead of waiting on it for good.
                        if self.eligible(index, now).len() > 1 || backup.is_some() {
                            let head = self.head_for(index, ElectionReason::BackupLost);
                            self.elect(index, ElectionReason::BackupLost, head, now, &mut effects);
                        }
                    } else if now.saturating_sub(watch.term_started) >= self.timing.period_ms {
                        let epoch = watch.history.epoch;
                        self.watches[index].phase = Phase::HandingOver { since: now };
                        if let Some(relay) = relay {
                            effects.push(Effect::Send {
                                to: relay,
                                message: Message::HandOver { epoch },
                            });
                        }
                    }
                }
                Phase::HandingOver { since } => {
                    // No lease renewals while handing over: a relay that does not answer is
                    // failed over once its lease has run out.
                    if now.saturating_sub(since) >= self.timing.suspect_ms() {
                        self.watches[index].phase = Phase::Failing;
                        self.fail_over_if_expired(index, now, &mut effects);
                    }
                }
                Phase::Failing => self.fail_over_if_expired(index, now, &mut effects),
            }
        }
        effects
    }

    fn fail_over_if_expired(&mut self, index: usize, now: u64, effects: &mut Vec<Effect>) {
        if now > self.watches[index].lease_until {
            let head = self.head_for(index, ElectionReason::Failover);
            self.elect(index, ElectionReason::Failover, head, now, effects);
        }
    }

    /// The lane head that seeds a draw: the one reported by the node that will continue
    /// the lane.
    fn head_for(&self, index: usize, reason: ElectionReason) -> LanePosition {
        let history = &self.watches[index].history;
        let reporter = match reason {
            ElectionReason::Initial => None,
            ElectionReason::Failover | ElectionReason::Rotation => history.backup.or(history.relay),
            ElectionReason::BackupLost => history.relay,
        };
        reporter
            .and_then(|r| self.heads.get(&r).copied())
            .unwrap_or(LanePosition {
                height: 0,
                hash: Hash::ZERO,
            })
    }

    fn eligible(&self, index: usize, now: u64) -> Vec<Address> {
        self.watches[index]
            .candidates
            .iter()
            .filter(|c| self.alive(c, now))
            .copied()
            .collect()
    }

    fn elect(
        &mut self,
        index: usize,
        reason: ElectionReason,
        lane_head: LanePosition,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        let eligible = self.eligible(index, now);
        let consortium = self.watches[index].history.consortium;
        let Some(mut election) =
            self.watches[index]
                .history
                .elect(reason, &eligible, self.weight_fn, lane_head)
        else {
            if self.watches[index].phase != Phase::Vacant {
                self.watches[index].phase = Phase::Vacant;
                effects.push(Effect::Emit(Event::CutOff {
                    consortium,
                    at: now,
                }));
            }
            return;
        };
        self.seq += 1;
        // The supervisor's own history follows its own decisions (below); with the
        // deliberate bug it follows the honest draw, so that it keeps working.
        let honest = election.clone();
        if self.timing.mutations.unseeded_election {
            // Deliberate bug (`unseeded_election`, tests only): the draw's seed mixes in
            // the supervisor's record seq, which the chain does not give (S5).
            election.seed = Hash::of(
                Domain::ElectionSeed,
                &[&election.seed.0, &self.seq.to_le_bytes()],
            );
            let fixed = (reason != ElectionReason::Initial).then_some(election.relay);
            if let Some(drawn) = draw(
                &election.candidates,
                election.weight_fn,
                &election.seed,
                fixed,
            ) {
                election.relay = drawn.relay;
                election.backup = drawn.backup;
            }
        }
        let record = RecordContent {
            author: self.key.address(),
            seq: self.seq,
            created_at: now,
            audience: Audience::Everyone,
            body: RecordBody::Election(election.clone()),
        }
        .sign(&self.key);
        // The supervisor's own history follows its own decisions exactly.
        let _ = self.watches[index]
            .history
            .apply(&honest, record.digest(), |_| true, |_| true);
        let block = PrivateBlock::seal(
            &self.key,
            self.chain.0 + 1,
            self.chain.1,
            now,
            vec![record.clone()],
        );
        self.chain = (block.height(), block.hash());
        effects.push(Effect::Persist(vec![AnyBlock::Private(block)]));

        let watch = &mut self.watches[index];
        watch.records.push(record);
        if watch.records.len() > ELECTIONS_CARRIED {
            watch.records.remove(0);
        }
        watch.phase = Phase::Serving;
        if reason != ElectionReason::BackupLost {
            watch.term_started = now;
        }
        // The new relay may serve at once; its lease runs from the election.
        let until = now + self.timing.lease_ms();
        watch.lease_until = if reason == ElectionReason::BackupLost {
            watch.lease_until
        } else {
            until
        };
        self.announce(index, &election, reason, until, now, effects);
    }

    /// Sends an election to the consortium's members and to every relay and backup, and
    /// the newly elected their fellow relays' elections.
    fn announce(
        &self,
        index: usize,
        election: &ElectionRecord,
        reason: ElectionReason,
        lease_until: u64,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        let watch = &self.watches[index];
        let message = Message::Elected {
            records: watch.records.clone(),
        };
        let mut recipients: Vec<Address> = watch.members.clone();
        for other in &self.watches {
            recipients.extend(other.history.relay);
            recipients.extend(other.history.backup);
        }
        recipients.sort();
        recipients.dedup();
        for to in recipients {
            effects.push(Effect::Send {
                to,
                message: message.clone(),
            });
        }
        if reason != ElectionReason::BackupLost {
            effects.push(Effect::Send {
                to: election.relay,
                message: Message::Lease {
                    epoch: election.epoch,
                    until: lease_until,
                },
            });
        }
        // The newly elected learn who serves the other lanes.
        for (other_index, other) in self.watches.iter().enumerate() {
            if other_index == index || other.records.is_empty() {
                continue;
            }
            for to in [Some(election.relay), election.backup]
                .into_iter()
                .flatten()
            {
                effects.push(Effect::Send {
                    to,
                    message: Message::Elected {
                        records: other.records.clone(),
                    },
                });
            }
        }
        effects.push(Effect::Emit(Event::Elected {
            consortium: election.consortium,
            epoch: election.epoch,
            reason,
            relay: election.relay,
            backup: election.backup,
            at: now,
        }));
    }
}
