//! The supervisor (SPEC §5, §14, §12 D5, D11): the heartbeat failure detector, elections,
//! activation, failover, rotation, and the replacement of a lost backup. It is the
//! configuration master of SPEC §14's Vertical Paxos.
//!
//! The supervisor is trusted and outside the fault model, but every decision it makes is a
//! signed election record that anyone recomputes from chain data. Only relay-capable
//! members heartbeat to it.
//!
//! - **Configurations.** Every election (initial, failover, rotation, backup lost) starts a
//!   new configuration `(epoch, relay, backup | none)` with the next epoch. Its record names
//!   its **source**, the last configuration the supervisor recorded as active, and uses the
//!   source's released head as its lane head.
//! - **Activation.** A new relay asks to be activated once its config block is durable at
//!   its backup. The supervisor activates only the newest configuration it elected for the
//!   lane, records the activation on its own chain (and recovers it on restart), and only
//!   then answers; a repeated request for the active configuration gets the same answer,
//!   any other `ActivationRefused`. A configuration that never activates is skipped: the
//!   next election names the same source.
//! - **Released heads** come only from the relay of the active configuration, in heartbeats
//!   stamped with its epoch.
//! - **Failover.** When the relay of the newest configuration has missed `suspect_after`
//!   heartbeats, a new configuration is elected at once, its backup promoted. No lease
//!   needs to run out: the new relay's sealed read stops the old configuration (§14).
//! - **Backup lost.** When the backup of the newest configuration falls silent (or its relay
//!   reports that it does not confirm), a new backup is drawn with the relay kept, in a new
//!   configuration. A configuration without a backup gets one as soon as another candidate
//!   is alive.
//! - **Rotation.** After an active configuration's relay has served a full `period` since
//!   its activation, the backup is promoted. A pending configuration is neither rotated nor
//!   counted: its term starts at its activation.
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
use crate::node::{Effect, Event, StoreWrite, Timing};
use crate::record::{Audience, Record, RecordBody, RecordContent};

/// A configuration as the supervisor elected it (SPEC §14).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Config {
    relay: Address,
    backup: Option<Address>,
}

/// The active configuration of a lane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Active {
    epoch: u64,
    /// Its config block, as the activation recorded it.
    config: LanePosition,
    /// The highest block its relay reported as released.
    released: LanePosition,
    /// When its term started: its activation, or the supervisor's start.
    since: u64,
}

#[derive(Clone, Debug)]
struct Watch {
    history: ElectionHistory,
    /// The configurations elected, by epoch (all of them: a few bytes each).
    configs: BTreeMap<u64, Config>,
    /// The election records from the active configuration's on: what an election message
    /// carries, so that a new relay can carry every record since its source.
    records: Vec<Record>,
    active: Option<Active>,
    /// Reported cut off, and not elected since.
    cut_off: bool,
    members: Vec<Address>,
    candidates: Vec<Address>,
    /// Backups their relay reported silent, left out of draws until then.
    excluded: BTreeMap<Address, u64>,
}

impl Watch {
    fn newest(&self) -> Option<(u64, Config)> {
        self.configs
            .iter()
            .next_back()
            .map(|(epoch, config)| (*epoch, *config))
    }

    fn active_epoch(&self) -> u64 {
        self.active.map_or(0, |a| a.epoch)
    }
}

/// The supervisor's state.
#[derive(Debug)]
pub struct Supervisor {
    key: Keypair,
    timing: Timing,
    weight_fn: WeightFn,
    watches: Vec<Watch>,
    last_seen: BTreeMap<Address, u64>,
    /// The lane head each candidate last reported (only the deliberate bug
    /// `head_from_backup` draws on one).
    heads: BTreeMap<Address, LanePosition>,
    /// The newest epoch each candidate reported knowing, and when its election was last
    /// sent to it again: a pending configuration's relay and backup hear it again every
    /// take-over retry until they report it (a lost election message must not cost the
    /// failover a heartbeat).
    knows: BTreeMap<Address, (u64, u64)>,
    started_at: Option<u64>,
    seq: u64,
    chain: (u64, Hash),
    /// Newcomers the relays announced (SPEC §6.1), with their keys.
    joined: BTreeMap<Address, crate::crypto::PublicKey>,
    /// The keys of the relay candidates, which sign join announcements.
    candidate_keys: BTreeMap<Address, crate::crypto::PublicKey>,
}

impl Supervisor {
    /// A supervisor for `genesis`, signing with `key`.
    pub fn new(key: Keypair, genesis: &Genesis, timing: Timing) -> Self {
        let watches = genesis
            .consortiums
            .iter()
            .map(|c| Watch {
                history: ElectionHistory::new(c.id),
                configs: BTreeMap::new(),
                records: Vec::new(),
                active: None,
                cut_off: false,
                members: c.members.iter().map(|m| m.address).collect(),
                candidates: c
                    .members
                    .iter()
                    .filter(|m| m.relay_capable)
                    .map(|m| m.address)
                    .collect(),
                excluded: BTreeMap::new(),
            })
            .collect();
        Supervisor {
            key,
            timing,
            weight_fn: genesis.weight_fn,
            watches,
            last_seen: BTreeMap::new(),
            heads: BTreeMap::new(),
            knows: BTreeMap::new(),
            started_at: None,
            seq: 0,
            chain: (0, Hash::ZERO),
            joined: BTreeMap::new(),
            candidate_keys: genesis
                .consortiums
                .iter()
                .flat_map(|c| c.members.iter())
                .filter(|m| m.relay_capable)
                .map(|m| (m.address, m.public_key))
                .collect(),
        }
    }

    /// The supervisor's address.
    pub fn address(&self) -> Address {
        self.key.address()
    }

    /// Replays one block of the supervisor's own private chain on restart: the elections
    /// and activations are rebuilt from what it signed.
    pub fn recover(&mut self, block: &PrivateBlock) {
        self.chain = (block.height(), block.hash());
        for record in &block.records {
            self.seq = self.seq.max(record.content.seq);
            match &record.content.body {
                RecordBody::Election(election) => {
                    if let Some(watch) = self.watches.get_mut(election.consortium.0 as usize) {
                        let _ = watch
                            .history
                            .apply(election, record.digest(), |_| true, |_| true);
                        watch.configs.insert(
                            election.epoch,
                            Config {
                                relay: election.relay,
                                backup: election.backup,
                            },
                        );
                        watch.records.push(record.clone());
                    }
                }
                RecordBody::Activation {
                    consortium,
                    epoch,
                    config,
                } => {
                    if let Some(watch) = self.watches.get_mut(consortium.0 as usize) {
                        watch.active = Some(Active {
                            epoch: *epoch,
                            config: *config,
                            released: *config,
                            since: 0,
                        });
                        watch.records.retain(|r| election_epoch(r) >= *epoch);
                    }
                }
                _ => {}
            }
        }
    }

    /// The key of a newcomer a relay announced, for envelope checks.
    pub fn key_of(&self, address: &Address) -> Option<crate::crypto::PublicKey> {
        self.joined.get(address).copied()
    }

    /// The elections of `consortium` so far.
    pub fn history(&self, consortium: ConsortiumId) -> Option<&ElectionHistory> {
        self.watches.get(consortium.0 as usize).map(|w| &w.history)
    }

    /// The epoch of `consortium`'s active configuration (0: none yet).
    pub fn active_epoch(&self, consortium: ConsortiumId) -> u64 {
        self.watches
            .get(consortium.0 as usize)
            .map_or(0, Watch::active_epoch)
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

    /// Heard from within one and a half heartbeat intervals: alive, and not late either. A
    /// node that has just crashed is alive to the failure detector for a while; a draw that
    /// can choose another does not choose it, and a rotation waits.
    fn fresh(&self, address: &Address, now: u64) -> bool {
        match self.last_seen.get(address) {
            Some(seen) => now.saturating_sub(*seen) <= self.timing.heartbeat_ms * 3 / 2,
            None => self.alive(address, now),
        }
    }

    /// Handles a message from a node.
    pub fn deliver(&mut self, from: Address, message: Message, now: u64) -> Vec<Effect> {
        self.start(now);
        let mut effects = Vec::new();
        match message {
            Message::Heartbeat {
                consortium,
                epoch,
                released,
                head,
                ..
            } => {
                self.on_heartbeat(from, consortium, released, head, now);
                let known = self.knows.entry(from).or_default();
                known.0 = epoch;
                // A candidate behind on its lane's elections (a lost election message)
                // hears them again: a relay or backup that never heard of its own
                // configuration would leave it pending for good.
                if let Some(watch) = self.watch_of(consortium, &from).map(|i| &self.watches[i]) {
                    if watch.newest().is_some_and(|(newest, _)| newest > epoch) {
                        effects.push(Effect::Send {
                            to: from,
                            message: Message::Elected {
                                records: watch.records.clone(),
                            },
                        });
                    }
                }
            }
            Message::Activate { epoch, config } => {
                self.on_activate(from, epoch, config, now, &mut effects)
            }
            Message::BackupSilent { epoch, backup } => {
                self.on_backup_silent(from, epoch, backup, now, &mut effects)
            }
            Message::Joined { announcement } => self.on_joined(from, announcement, &mut effects),
            Message::Discover { consortium } => self.on_discover(from, consortium, &mut effects),
            _ => {}
        }
        effects
    }

    fn on_heartbeat(
        &mut self,
        from: Address,
        consortium: ConsortiumId,
        released: Option<(u64, LanePosition)>,
        head: LanePosition,
        now: u64,
    ) {
        let Some(index) = self.watch_of(consortium, &from) else {
            return;
        };
        self.last_seen.insert(from, now);
        self.heads.insert(from, head);
        let from_backup = self.timing.mutations.head_from_backup;
        let watch = &mut self.watches[index];
        let Some(active) = watch.active.as_mut() else {
            return;
        };
        let Some(config) = watch.configs.get(&active.epoch) else {
            return;
        };
        // Released heads come only from the active configuration's relay (SPEC §14).
        // Deliberate bug (`head_from_backup`, tests only): take the backup's stored head.
        let reported = if from_backup && config.backup == Some(from) {
            Some(head)
        } else if config.relay == from {
            released
                .filter(|(epoch, _)| *epoch == active.epoch)
                .map(|(_, position)| position)
        } else {
            None
        };
        if let Some(position) = reported.filter(|p| p.height >= active.released.height) {
            active.released = position;
        }
    }

    /// SPEC §14 take-over step 3: the relay of `epoch` asks to be activated with its config
    /// block.
    fn on_activate(
        &mut self,
        from: Address,
        epoch: u64,
        config: LanePosition,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        let Some(index) = self
            .watches
            .iter()
            .position(|w| w.configs.get(&epoch).is_some_and(|c| c.relay == from))
        else {
            effects.push(rejected(
                self.address(),
                "bad_activation",
                format!("activation of epoch {epoch} asked by {from}, not its relay"),
            ));
            return;
        };
        let watch = &self.watches[index];
        let answer = |message| Effect::Send { to: from, message };
        match watch.active {
            // A repeated request (a restarted relay, a lost answer) gets the same answer.
            Some(active) if active.epoch == epoch => {
                if active.config == config {
                    effects.push(answer(Message::Activated { epoch, config }));
                } else {
                    effects.push(answer(Message::ActivationRefused { epoch }));
                }
                return;
            }
            _ => {}
        }
        if watch.newest().map(|(e, _)| e) != Some(epoch) || epoch < watch.active_epoch() {
            effects.push(answer(Message::ActivationRefused { epoch }));
            return;
        }
        let consortium = watch.history.consortium;
        let record = self.sign(
            RecordBody::Activation {
                consortium,
                epoch,
                config,
            },
            now,
        );
        self.persist(record, effects);
        let watch = &mut self.watches[index];
        watch.active = Some(Active {
            epoch,
            config,
            released: config,
            since: now,
        });
        watch.records.retain(|r| election_epoch(r) >= epoch);
        effects.push(Effect::Emit(Event::Activated {
            lane: consortium,
            epoch,
            relay: from,
            config,
            at: now,
        }));
        effects.push(answer(Message::Activated { epoch, config }));
    }

    /// A relay reports that its backup, alive by its heartbeats, does not confirm: a new
    /// backup is drawn without it.
    fn on_backup_silent(
        &mut self,
        from: Address,
        epoch: u64,
        backup: Address,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        let Some(index) = self.watches.iter().position(|w| {
            w.newest()
                == Some((
                    epoch,
                    Config {
                        relay: from,
                        backup: Some(backup),
                    },
                ))
        }) else {
            return;
        };
        let until = now + self.timing.suspect_ms() + self.timing.retry_ms();
        self.watches[index].excluded.insert(backup, until);
        self.elect(index, ElectionReason::BackupLost, now, effects);
    }

    /// A newcomer's registration: from the relay that announced it, or from the newcomer
    /// itself, which shows the relay's signed announcement (its relay's own message may be
    /// lost) and is told who serves its consortium.
    fn on_joined(&mut self, from: Address, announcement: Record, effects: &mut Vec<Effect>) {
        let RecordBody::JoinAnnouncement { entry } = &announcement.content.body else {
            return;
        };
        let author = announcement.content.author;
        // Announced by a relay its consortium elected, and signed by it.
        let Some(index) = self
            .watches
            .iter()
            .position(|w| w.configs.values().any(|c| c.relay == author))
        else {
            effects.push(rejected(
                self.address(),
                "bad_join",
                format!("announcement of {} by {author}, no relay", entry.address),
            ));
            return;
        };
        let signed = self
            .candidate_keys
            .get(&author)
            .is_some_and(|key| announcement.verify(key).is_ok());
        if !signed || (from != author && from != entry.address) {
            effects.push(rejected(
                self.address(),
                "bad_join",
                format!("announcement of {} sent by {from}", entry.address),
            ));
            return;
        }
        self.joined.insert(entry.address, entry.public_key);
        let watch = &mut self.watches[index];
        if !watch.members.contains(&entry.address) {
            watch.members.push(entry.address);
        }
        if from == entry.address {
            let consortium = watch.history.consortium;
            self.on_discover(from, consortium, effects);
        }
    }

    fn on_discover(&self, from: Address, consortium: ConsortiumId, effects: &mut Vec<Effect>) {
        let Some(watch) = self.watches.get(consortium.0 as usize) else {
            return;
        };
        if watch.records.is_empty() {
            return;
        }
        // A relay or backup that (re)started learns first who serves the other lanes, as a
        // newly elected one does (`announce`): it broadcasts its relay blocks to them.
        let serves = watch
            .newest()
            .is_some_and(|(_, c)| c.relay == from || c.backup == Some(from));
        for (index, other) in self.watches.iter().enumerate() {
            if !serves || index == consortium.0 as usize || other.records.is_empty() {
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
                if let Some(active) = watch.active.as_mut() {
                    active.since = now;
                }
            }
        }
    }

    /// Advances the failure detector and the terms.
    pub fn tick(&mut self, now: u64) -> Vec<Effect> {
        self.start(now);
        let mut effects = Vec::new();
        for index in 0..self.watches.len() {
            if let Some(reason) = self.due(index, now) {
                self.elect(index, reason, now, &mut effects);
            }
            self.remind(index, now, &mut effects);
        }
        effects
    }

    /// Sends a pending configuration's election again to its relay and backup that have
    /// not reported knowing it, every take-over retry.
    fn remind(&mut self, index: usize, now: u64, effects: &mut Vec<Effect>) {
        let watch = &self.watches[index];
        let Some((epoch, config)) = watch.newest() else {
            return;
        };
        if watch.active_epoch() == epoch {
            return;
        }
        let retry = self.timing.takeover_retry_ms();
        for node in std::iter::once(config.relay).chain(config.backup) {
            let known = self.knows.entry(node).or_default();
            if known.0 >= epoch || now < known.1 + retry {
                continue;
            }
            known.1 = now;
            effects.push(Effect::Send {
                to: node,
                message: Message::Elected {
                    records: self.watches[index].records.clone(),
                },
            });
        }
    }

    /// The election lane `index` needs now, if any.
    fn due(&mut self, index: usize, now: u64) -> Option<ElectionReason> {
        let watch = &self.watches[index];
        let Some((epoch, config)) = watch.newest() else {
            return Some(ElectionReason::Initial);
        };
        let relay_alive = self.alive(&config.relay, now);
        let backup_alive = config.backup.map(|b| self.alive(&b, now));
        let active = watch.active.filter(|a| a.epoch == epoch);
        if !relay_alive {
            return Some(ElectionReason::Failover);
        }
        // Served again (a cut-off relay came back): the next cut-off is reported anew.
        self.watches[index].cut_off = false;
        match backup_alive {
            Some(false) => return Some(ElectionReason::BackupLost),
            // No backup: draw one as soon as another candidate is alive, once the
            // configuration is active (a pending one is left to finish its take-over).
            None if active.is_some() && self.eligible(index, now).len() > 1 => {
                return Some(ElectionReason::BackupLost)
            }
            _ => {}
        }
        let active = active?;
        // A rotation is never urgent: it waits until relay and backup are both heard
        // lately, so that it does not promote, or draw, a node that has just failed.
        let fresh =
            self.fresh(&config.relay, now) && config.backup.is_some_and(|b| self.fresh(&b, now));
        (backup_alive == Some(true)
            && fresh
            && now.saturating_sub(active.since) >= self.timing.period_ms)
            .then_some(ElectionReason::Rotation)
    }

    /// The candidates an election of lane `index` may draw: alive and not excluded; of
    /// those, the ones heard lately, and the newest configuration's relay and backup (a
    /// promotion keeps the copy that holds the lane), unless that leaves none.
    fn eligible(&self, index: usize, now: u64) -> Vec<Address> {
        let watch = &self.watches[index];
        let alive: Vec<Address> = watch
            .candidates
            .iter()
            .filter(|c| self.alive(c, now))
            .filter(|c| watch.excluded.get(c).is_none_or(|until| now >= *until))
            .copied()
            .collect();
        let members: Vec<Address> = watch
            .newest()
            .map(|(_, config)| std::iter::once(config.relay).chain(config.backup).collect())
            .unwrap_or_default();
        let fresh: Vec<Address> = alive
            .iter()
            .filter(|c| members.contains(c) || self.fresh(c, now))
            .copied()
            .collect();
        if fresh.is_empty() {
            alive
        } else {
            fresh
        }
    }

    fn sign(&mut self, body: RecordBody, now: u64) -> Record {
        self.seq += 1;
        RecordContent {
            author: self.key.address(),
            seq: self.seq,
            created_at: now,
            audience: Audience::Everyone,
            body,
        }
        .sign(&self.key)
    }

    /// Appends `record` to the supervisor's own chain.
    fn persist(&mut self, record: Record, effects: &mut Vec<Effect>) {
        let block = PrivateBlock::seal(
            &self.key,
            self.chain.0 + 1,
            self.chain.1,
            record.content.created_at,
            vec![record],
        );
        self.chain = (block.height(), block.hash());
        effects.push(Effect::Persist(vec![StoreWrite::Block(AnyBlock::Private(
            block,
        ))]));
    }

    fn elect(&mut self, index: usize, reason: ElectionReason, now: u64, effects: &mut Vec<Effect>) {
        let eligible = self.eligible(index, now);
        let watch = &self.watches[index];
        let consortium = watch.history.consortium;
        let (source, lane_head) = match watch.active {
            Some(active) => (active.epoch, active.released),
            None => (
                0,
                LanePosition {
                    height: 0,
                    hash: Hash::ZERO,
                },
            ),
        };
        let Some(mut election) =
            watch
                .history
                .elect(reason, &eligible, self.weight_fn, source, lane_head)
        else {
            if !self.watches[index].cut_off {
                self.watches[index].cut_off = true;
                effects.push(Effect::Emit(Event::CutOff {
                    consortium,
                    at: now,
                }));
            }
            return;
        };
        // The supervisor's own history follows the honest draw, so that it keeps working
        // under the deliberate bug below.
        let honest = election.clone();
        if self.timing.mutations.unseeded_election {
            // Deliberate bug (`unseeded_election`, tests only): the draw's seed mixes in
            // the supervisor's record seq, which the chain does not give (S5).
            election.seed = Hash::of(
                Domain::ElectionSeed,
                &[&election.seed.0, &(self.seq + 1).to_le_bytes()],
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
        let record = self.sign(RecordBody::Election(election.clone()), now);
        self.persist(record.clone(), effects);
        let keeps_epoch = self.timing.mutations.backup_lost_keeps_epoch;
        let watch = &mut self.watches[index];
        let _ = watch
            .history
            .apply(&honest, record.digest(), |_| true, |_| true);
        watch.configs.insert(
            election.epoch,
            Config {
                relay: election.relay,
                backup: election.backup,
            },
        );
        watch.records.push(record);
        watch.cut_off = false;
        for node in std::iter::once(election.relay).chain(election.backup) {
            self.knows.entry(node).or_default().1 = now;
        }
        // Deliberate bug (`backup_lost_keeps_epoch`, tests only): a lost backup is only
        // swapped; the new configuration counts as active at once, as before SPEC §14.
        if keeps_epoch && reason == ElectionReason::BackupLost {
            if let Some(active) = watch.active.as_mut() {
                active.epoch = election.epoch;
            }
        }
        self.announce(index, &election, now, effects);
    }

    /// Sends an election to the consortium's members and to every relay and backup, and
    /// the newly elected their fellow relays' elections.
    fn announce(
        &self,
        index: usize,
        election: &ElectionRecord,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        let watch = &self.watches[index];
        let message = Message::Elected {
            records: watch.records.clone(),
        };
        let mut recipients: Vec<Address> = watch.members.clone();
        for other in &self.watches {
            if let Some((_, config)) = other.newest() {
                recipients.push(config.relay);
                recipients.extend(config.backup);
            }
        }
        recipients.sort();
        recipients.dedup();
        // One message, encoded once, for the consortium's members and every serving relay
        // and backup: thousands of recipients in a large federation (issue 12).
        effects.push(Effect::Broadcast {
            to: recipients,
            message,
        });
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
            source: election.source,
            lane_head: election.lane_head,
            reason: election.reason,
            relay: election.relay,
            backup: election.backup,
            at: now,
        }));
    }
}

/// The epoch of an election record (0 for any other record).
fn election_epoch(record: &Record) -> u64 {
    match &record.content.body {
        RecordBody::Election(election) => election.epoch,
        _ => 0,
    }
}

fn rejected(node: Address, kind: &'static str, detail: String) -> Effect {
    Effect::Emit(Event::Rejected {
        node,
        kind,
        hostile: true,
        detail,
    })
}
