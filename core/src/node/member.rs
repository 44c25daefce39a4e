//! A member node (SPEC §3): an enterprise or a user, with its private chain and its lane
//! of the consortium chain, and the relay and backup duties it takes on when elected.
//!
//! **As a member** it fills an open consortium block with its records and closes it on an
//! urgent record, when full, or after `member_max_wait` (SPEC §12 D10); stores it; and
//! submits it to its relay, resending it to each new relay until it is acknowledged (D4).
//! Meter readings go to its private chain the same way.
//!
//! **As a holder** (while relay or backup) it keeps copies of its consortium's whole
//! consortium chain and of the whole relay chain (D1), each validated block by block.
//!
//! **As the relay** it validates and stores each submitted block, replicates it to the
//! backup, and acknowledges it once the backup has it (D4). It batches blocks that need the
//! relay chain with the [`Window`], seals relay blocks, replicates each to the backup, and
//! then broadcasts it to every other relay and backup. It acts only under a lease from the
//! supervisor (D3). A new relay first asks the other relays for its lane's head, and only
//! then continues the lane with a block that carries its election record (SPEC §5, D10).
//!
//! **As the backup** it keeps a hot copy of everything the relay replicates, so that it can
//! take over at once, including the acknowledged blocks not yet in a relay block.

mod protocol;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

pub use protocol::ProtocolError;

use crate::block::{
    AnyBlock, ChainBlock, ConsortiumBlock, LaneHead, PrivateBlock, RelayBlock, RelayDraft,
};
use crate::codec;
use crate::crypto::{Address, Keypair, PublicKey};
use crate::election::{ElectionRecord, LanePosition};
use crate::genesis::{Directory, Genesis};
use crate::ids::{ChainId, ConsortiumId};
use crate::message::Message;
use crate::node::{Effect, Event, RecordStamp, Timing};
use crate::record::{Audience, Record, RecordBody, RecordContent, RecordKind, Urgency};
use crate::validate::{ConsortiumLane, Head, PrivateLane, Reject, RelayLane};
use crate::window::{Flush, FlushReason, Window};

/// Bytes kept free in a consortium block for its header and vector lengths.
const BLOCK_OVERHEAD: usize = 512;

/// How many of its unacknowledged blocks a member has in flight to its relay at once.
/// Acknowledgements are cumulative, so a healthy relay never lets the window fill; a lost
/// relay costs at most this many resends per timer.
const SUBMIT_WINDOW: usize = 32;

/// Unanswered resend rounds back off to at most 2^this times the resend interval. A new
/// relay is not waited for: its election triggers a resend at once.
const RESEND_BACKOFF: u32 = 2;

/// The latest election of one consortium, as this node knows it.
#[derive(Clone, Debug)]
struct Serving {
    epoch: u64,
    /// The supervisor's record seq, which orders elections of the same epoch.
    seq: u64,
    relay: Address,
    backup: Option<Address>,
    records: Vec<Record>,
}

/// The copies a relay or backup keeps (SPEC §12 D1).
#[derive(Clone, Debug)]
struct Holder {
    directory: Directory,
    capacity: u32,
    relay_lanes: BTreeMap<ConsortiumId, RelayLane>,
    member_lanes: BTreeMap<Address, ConsortiumLane>,
    /// Blocks of this consortium that need the relay chain and are not yet in a relay
    /// block of its lane, in arrival order: what a new relay must include.
    unincluded: BTreeMap<u64, ConsortiumBlock>,
    unincluded_at: BTreeMap<(Address, u64), u64>,
    arrivals: u64,
    /// The grid's negotiations, on a grid holder (SPEC §6.2 step 5).
    desk: protocol::GridDesk,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum RelayState {
    /// Waiting for the other relays' lane heads until `deadline`.
    Syncing {
        waiting: BTreeSet<Address>,
        deadline: u64,
        /// The lane head the election was drawn on: the relay never continues below it,
        /// or it would fork the block its predecessor wrote there.
        target: u64,
        /// Whom to ask again when the deadline passes below the target.
        ask: BTreeSet<Address>,
        /// The node that holds every block the deposed relay confirmed: its backup (D4),
        /// or the relay itself if it served without one; `None` when that is this node.
        /// A relay that was not that node continues only once it has answered, however
        /// late: the election's lane head is only the last one reported, and the other
        /// relays' copies may lack the deposed relay's last blocks (S2, S3).
        keeper: Option<Address>,
    },
    /// Producing.
    Active,
    /// Handed over; produces nothing more.
    Stopped,
}

/// What the relay does once the backup confirms a replication: entries are released in
/// order, each once its own confirmation has arrived: the relay blocks in lane order, and
/// each member's acknowledgements in its lane order, one order not waiting on another.
#[derive(Clone, Debug)]
struct PendingEntry {
    done: bool,
    action: Pending,
}

#[derive(Clone, Debug)]
enum Pending {
    /// Acknowledge once the backup has the block.
    Ack {
        hash: crate::crypto::Hash,
        author: Address,
        height: u64,
        /// The block, to replicate again if the confirmation does not come.
        block: Box<ConsortiumBlock>,
    },
    /// Store, broadcast and announce once the backup has the relay block.
    Broadcast {
        hash: crate::crypto::Hash,
        block: Box<RelayBlock>,
        reason: FlushReason,
        /// The own lane just before this block, when an earlier block was still unconfirmed
        /// as this one was sealed: where a deposed relay goes back to once the earlier
        /// blocks are confirmed and stored but this one is not.
        before: Option<Box<RelayLane>>,
    },
}

impl Pending {
    fn hash(&self) -> crate::crypto::Hash {
        match self {
            Pending::Ack { hash, .. } | Pending::Broadcast { hash, .. } => *hash,
        }
    }
}

#[derive(Clone, Debug)]
struct RelayDuty {
    epoch: u64,
    lease_until: u64,
    window: Window,
    state: RelayState,
    backup: Option<Address>,
    pending: VecDeque<PendingEntry>,
    acked: BTreeMap<Address, u64>,
    took_over: bool,
    degraded_reported: bool,
    /// When unconfirmed replications are next sent again (a lost message must not stall
    /// the acknowledgements and broadcasts queued behind it).
    next_retry: u64,
    /// The own lane as it was before the first relay block the backup has not confirmed.
    /// Such blocks are not stored yet; a relay deposed before the confirmation goes back
    /// to this, so that it never keeps a block above its successor's cut-off (D3).
    rollback: Option<Box<RelayLane>>,
    /// Blocks flushed while the lease had lapsed: back into the window when it is renewed.
    held: Vec<ConsortiumBlock>,
    /// Whether the next relay block to go out completes the take-over.
    announce_take_over: bool,
}

#[derive(Clone, Debug)]
struct BackupDuty {
    epoch: u64,
    relay: Address,
    /// Chains still being caught up from the relay.
    catching_up: BTreeSet<ChainId>,
    /// Replicated blocks that arrived ahead of a gap, with the epoch they came in: stored
    /// and confirmed once the gap is synced from the relay.
    parked: BTreeMap<(Address, u64), (u64, ConsortiumBlock)>,
    /// Relay blocks of the own lane that arrived ahead of a gap, by height.
    parked_relay: BTreeMap<u64, RelayBlock>,
    /// Other lanes' relay blocks received lately, with when: the relay may have failed
    /// before forwarding them to the members, so a backup that takes over forwards them
    /// again (members act on each record once).
    received: VecDeque<(u64, RelayBlock)>,
    /// When the chains still caught up or behind a parked block are next asked of the
    /// relay again (0: none is waiting). A lost request or answer must not leave a block
    /// parked for good: its confirmation would never come, and neither would the
    /// acknowledgements of its author's later blocks, which the relay releases in order.
    next_ask: u64,
}

#[derive(Clone, Debug)]
enum Duty {
    None,
    Relay(Box<RelayDuty>),
    Backup(BackupDuty),
}

/// A member's state machine.
#[derive(Debug)]
pub struct Member {
    key: Keypair,
    me: Address,
    consortium: ConsortiumId,
    relay_capable: bool,
    supervisor: Address,
    timing: Timing,
    genesis: Arc<Genesis>,
    directory: Arc<Directory>,
    seq: u64,
    private: PrivateLane,
    lane: ConsortiumLane,
    open: Vec<Record>,
    open_bytes: usize,
    open_since: Option<u64>,
    open_private: Vec<Record>,
    private_since: Option<u64>,
    unacked: BTreeMap<u64, ConsortiumBlock>,
    /// The highest unacknowledged height sent to the relay in the current round: at most
    /// [`SUBMIT_WINDOW`] blocks are in flight, so a member whose relay is gone does not
    /// resend an ever longer backlog on every timer.
    sent_upto: u64,
    /// Resend rounds since the last acknowledgement. From the second on, the member also
    /// asks the supervisor who serves (a lost election message leaves it sending to a
    /// relay that is gone), and the rounds back off.
    quiet_rounds: u32,
    /// Relay-lane syncs this holder has asked a peer for and not yet had that peer's
    /// answer to, with when it asked. A live block that shows a gap asks its sender only
    /// when no request to it for that lane is pending, so catching up many pages is one
    /// chain of requests per peer, not one more chain per block that arrives meanwhile. A
    /// request unanswered for a resend interval may be asked again. The follow-up pages of
    /// any chain, and a backup's repeated requests (`backup_tick`), are recorded here too.
    syncing: BTreeMap<(ChainId, Address), u64>,
    /// A lease the supervisor granted for an epoch this node did not serve yet when it
    /// came (its election still on the way), applied if it becomes that epoch's relay.
    early_lease: Option<(u64, u64)>,
    serving: BTreeMap<ConsortiumId, Serving>,
    next_heartbeat: u64,
    /// When unacknowledged blocks are next resent (a relay that was not yet serving, a
    /// lost message): duplicates are re-acknowledged, so resending is always safe (D9).
    next_resend: u64,
    discovered: bool,
    holder: Option<Box<Holder>>,
    duty: Duty,
    /// The protocols of SPEC §6.
    proto: protocol::Protocols,
}

impl Member {
    /// A member with `key` in `consortium`. `genesis` and `directory` are the federation's
    /// read-only configuration, shared by all nodes of a process.
    pub fn new(
        key: Keypair,
        consortium: ConsortiumId,
        genesis: Arc<Genesis>,
        directory: Arc<Directory>,
        timing: Timing,
    ) -> Self {
        let me = key.address();
        let relay_capable = genesis
            .consortiums
            .get(consortium.0 as usize)
            .and_then(|c| c.members.iter().find(|m| m.address == me))
            .is_some_and(|m| m.relay_capable);
        let capacity = genesis.capacities.consortium;
        Member {
            private: PrivateLane::new(me, key.public(), capacity),
            lane: ConsortiumLane::new(consortium, me, key.public(), capacity),
            supervisor: genesis.supervisor.address(),
            key,
            me,
            consortium,
            relay_capable,
            timing,
            genesis,
            directory,
            seq: 0,
            open: Vec::new(),
            open_bytes: 0,
            open_since: None,
            open_private: Vec::new(),
            private_since: None,
            unacked: BTreeMap::new(),
            sent_upto: 0,
            quiet_rounds: 0,
            syncing: BTreeMap::new(),
            early_lease: None,
            serving: BTreeMap::new(),
            next_heartbeat: 0,
            next_resend: 0,
            discovered: false,
            holder: None,
            duty: Duty::None,
            proto: protocol::Protocols::default(),
        }
    }

    /// This member's address.
    pub fn address(&self) -> Address {
        self.me
    }

    /// Its consortium.
    pub fn consortium(&self) -> ConsortiumId {
        self.consortium
    }

    /// Whether it currently serves as relay.
    pub fn is_relay(&self) -> bool {
        matches!(self.duty, Duty::Relay(_))
    }

    /// Whether it serves as relay, has taken its lane over and holds a lease at `now`: it
    /// produces relay blocks.
    pub fn producing(&self, now: u64) -> bool {
        matches!(&self.duty, Duty::Relay(duty)
            if duty.state == RelayState::Active && duty.took_over && now < duty.lease_until)
    }

    /// Whether it currently serves as backup.
    pub fn is_backup(&self) -> bool {
        matches!(self.duty, Duty::Backup(_))
    }

    /// The relay it submits to.
    pub fn relay(&self) -> Option<Address> {
        self.serving.get(&self.consortium).map(|s| s.relay)
    }

    /// The head of its copy of its own consortium's relay lane, without the blocks it
    /// produced as relay that its backup has not confirmed yet (they may be rolled back).
    fn stored_lane_head(&self) -> Option<Head> {
        let confirmed = match &self.duty {
            Duty::Relay(duty) => duty.rollback.as_ref().map(|lane| lane.head),
            _ => None,
        };
        confirmed.or_else(|| self.relay_lane_head(self.consortium))
    }

    /// The head of its own consortium lane.
    pub fn lane_head(&self) -> Head {
        self.lane.head
    }

    /// Blocks submitted and not yet acknowledged.
    pub fn unacked(&self) -> usize {
        self.unacked.len()
    }

    /// The head of its copy of relay lane `lane`, if it holds one.
    pub fn relay_lane_head(&self, lane: ConsortiumId) -> Option<Head> {
        Some(self.holder.as_ref()?.relay_lanes.get(&lane)?.head)
    }

    /// The key of `address` as this node knows it, for envelope checks.
    pub fn key_of(&self, address: &Address) -> Option<PublicKey> {
        if let Some(holder) = &self.holder {
            if let Some(known) = holder.directory.get(address) {
                return Some(known.key);
            }
        }
        self.directory
            .get(address)
            .map(|k| k.key)
            .or_else(|| self.learned_key(address))
    }

    /// Marks this node as a newcomer, not yet registered: it asks no one who serves its
    /// consortium until its join completes (SPEC §6.1).
    pub fn set_newcomer(&mut self) {
        self.discovered = true;
    }

    /// Replays a block of the node's own store on restart, rebuilding its state. Blocks
    /// must come chain by chain in height order, relay lanes first.
    pub fn recover(&mut self, block: &AnyBlock) -> Result<(), crate::validate::BlockError> {
        match block.chain() {
            ChainId::Private(owner) if owner == self.me => {
                if let AnyBlock::Private(b) = block {
                    self.private.append(b)?;
                    self.bump_seq(b.records());
                    for record in b.records() {
                        self.recover_own_record(record);
                    }
                }
            }
            ChainId::Consortium(_, author) if author == self.me => {
                if let AnyBlock::Consortium(b) = block {
                    self.lane.append(b)?;
                    self.bump_seq(b.records());
                    for record in b.records() {
                        self.recover_own_record(record);
                    }
                    // Unknown whether the relay has it: resend the head on election.
                    self.unacked.clear();
                    self.unacked.insert(b.height(), b.clone());
                    // A holder (its store had relay lanes, replayed first) keeps the own
                    // lane among its copies too.
                    if let Some(holder) = self.holder.as_mut() {
                        holder.accept_member_block(b).map_err(|reason| {
                            crate::validate::BlockError {
                                chain: b.chain(),
                                height: b.height(),
                                reason,
                            }
                        })?;
                    }
                }
            }
            _ => {
                self.holder_mut().accept_block(block)?;
            }
        }
        Ok(())
    }

    fn bump_seq(&mut self, records: &[Record]) {
        for record in records {
            self.seq = self.seq.max(record.content.seq);
        }
    }

    fn holder_mut(&mut self) -> &mut Holder {
        let genesis = &self.genesis;
        let directory = &self.directory;
        let grid = self.timing.protocols.grid;
        self.holder.get_or_insert_with(|| {
            Box::new(Holder {
                directory: (**directory).clone(),
                capacity: genesis.capacities.consortium,
                relay_lanes: genesis
                    .consortiums
                    .iter()
                    .map(|c| (c.id, RelayLane::new(genesis, c.id)))
                    .collect(),
                member_lanes: BTreeMap::new(),
                unincluded: BTreeMap::new(),
                unincluded_at: BTreeMap::new(),
                arrivals: 0,
                desk: protocol::GridDesk::new(grid),
            })
        })
    }

    // ----- the member's own lanes -----

    /// Writes a record of this member, from the workload or the host. Meter readings go to
    /// the private chain, everything else to the consortium lane. Returns the record's seq.
    pub fn write(&mut self, audience: Audience, body: RecordBody, now: u64) -> (u64, Vec<Effect>) {
        let mut effects = Vec::new();
        let record = self.write_record(audience, body, now, &mut effects);
        (record.content.seq, effects)
    }

    /// Writes a record of this member into its open block and returns it.
    fn write_record(
        &mut self,
        audience: Audience,
        body: RecordBody,
        now: u64,
        effects: &mut Vec<Effect>,
    ) -> Record {
        self.seq += 1;
        let seq = self.seq;
        let record = RecordContent {
            author: self.me,
            seq,
            created_at: now,
            audience,
            body,
        }
        .sign(&self.key);
        self.note_own_record(&record);
        if record.kind() == RecordKind::MeterReading {
            let size = codec::encoded_len(&record);
            let used: usize = self.open_private.iter().map(codec::encoded_len).sum();
            if used + size + BLOCK_OVERHEAD > self.genesis.capacities.consortium as usize {
                self.close_private(now, effects);
            }
            self.open_private.push(record.clone());
            self.private_since.get_or_insert(now);
            return record;
        }
        let size = codec::encoded_len(&record);
        if self.open_bytes + size + BLOCK_OVERHEAD > self.genesis.capacities.consortium as usize {
            self.close_lane(now, effects);
        }
        let urgent = record.urgency() == Urgency::Urgent;
        self.open.push(record.clone());
        self.open_bytes += size;
        self.open_since.get_or_insert(now);
        if urgent {
            self.close_lane(now, effects);
        }
        record
    }

    fn close_private(&mut self, now: u64, effects: &mut Vec<Effect>) {
        if self.open_private.is_empty() {
            return;
        }
        let records = std::mem::take(&mut self.open_private);
        self.private_since = None;
        let head = self.private.head;
        let block = PrivateBlock::seal(&self.key, head.height + 1, head.hash, now, records);
        if self.private.append(&block).is_ok() {
            effects.push(Effect::Persist(vec![block.into()]));
        }
    }

    fn close_lane(&mut self, now: u64, effects: &mut Vec<Effect>) {
        if self.open.is_empty() {
            return;
        }
        let records = std::mem::take(&mut self.open);
        self.open_bytes = 0;
        self.open_since = None;
        let head = self.lane.head;
        let block = ConsortiumBlock::seal(
            &self.key,
            self.consortium,
            head.height + 1,
            head.hash,
            now,
            records,
        );
        if let Err(err) = self.lane.append(&block) {
            effects.push(self.rejected("own_block", false, err.to_string()));
            return;
        }
        effects.push(Effect::Persist(vec![block.clone().into()]));
        if self.unacked.is_empty() {
            self.next_resend = now + self.resend_ms();
        }
        self.unacked.insert(block.height(), block);
        self.submit_window(false, effects);
    }

    /// Sends unacknowledged blocks to the relay, lowest first, while fewer than
    /// [`SUBMIT_WINDOW`] are in flight. `again` starts a new round (a resend timer, a new
    /// relay): everything unacknowledged counts as not sent. An acknowledgement frees room
    /// in the window, so after an outage the backlog follows at the pace of the acks, and
    /// an overloaded relay slows its members (backpressure) without stopping them.
    fn submit_window(&mut self, again: bool, effects: &mut Vec<Effect>) {
        if again {
            self.sent_upto = 0;
        }
        let Some(relay) = self.relay() else {
            return;
        };
        let in_flight = self.unacked.range(..=self.sent_upto).count();
        let room = SUBMIT_WINDOW.saturating_sub(in_flight);
        for (height, block) in self.unacked.range(self.sent_upto + 1..).take(room) {
            effects.push(Effect::Send {
                to: relay,
                message: Message::Submit {
                    block: block.clone(),
                },
            });
            self.sent_upto = *height;
        }
    }

    /// Asks the supervisor who serves this node's consortium.
    fn discover(&self) -> Effect {
        Effect::Send {
            to: self.supervisor,
            message: Message::Discover {
                consortium: self.consortium,
            },
        }
    }

    /// How long a block waits for its acknowledgement before it is resent: long enough
    /// for a replicated acknowledgement, short next to a failover.
    fn resend_ms(&self) -> u64 {
        2 * self.timing.heartbeat_ms
    }

    /// A member block of `author` at `height` is now stored in this node's holder copy
    /// (the invariant checker's D4 check: a backup holds what its relay acknowledges).
    fn stored(&self, author: Address, height: u64, now: u64) -> Event {
        let epoch = match &self.duty {
            Duty::Relay(duty) => duty.epoch,
            Duty::Backup(duty) => duty.epoch,
            Duty::None => self.serving.get(&self.consortium).map_or(0, |s| s.epoch),
        };
        Event::Stored {
            node: self.me,
            author,
            height,
            epoch,
            at: now,
        }
    }

    fn rejected(&self, kind: &'static str, hostile: bool, detail: String) -> Effect {
        Effect::Emit(Event::Rejected {
            node: self.me,
            kind,
            hostile,
            detail,
        })
    }

    /// Advances timers: closes open blocks after `member_max_wait`, heartbeats, the
    /// relay's window and take-over deadline.
    pub fn tick(&mut self, now: u64) -> Vec<Effect> {
        let mut effects = Vec::new();
        if !self.discovered {
            self.discovered = true;
            effects.push(Effect::Send {
                to: self.supervisor,
                message: Message::Discover {
                    consortium: self.consortium,
                },
            });
        }
        let wait = self.timing.member_max_wait_ms;
        if self.open_since.is_some_and(|t| now >= t + wait) {
            self.close_lane(now, &mut effects);
        }
        if self.private_since.is_some_and(|t| now >= t + wait) {
            self.close_private(now, &mut effects);
        }
        if !self.unacked.is_empty() && now >= self.next_resend {
            self.quiet_rounds = self.quiet_rounds.saturating_add(1);
            if self.quiet_rounds >= 2 {
                // A whole round went unanswered: probe with the lowest block only (its
                // acknowledgement frees the window), leave the window as it is, and ask
                // the supervisor who serves now.
                if let (Some(relay), Some(block)) = (self.relay(), self.unacked.values().next()) {
                    effects.push(Effect::Send {
                        to: relay,
                        message: Message::Submit {
                            block: block.clone(),
                        },
                    });
                }
                effects.push(self.discover());
            } else {
                self.submit_window(true, &mut effects);
            }
            let backoff = 1 << (self.quiet_rounds - 1).min(RESEND_BACKOFF);
            self.next_resend = now + backoff * self.resend_ms();
        }
        if self.relay_capable && now >= self.next_heartbeat {
            self.next_heartbeat = now + self.timing.heartbeat_ms;
            // The stored head, as on a hand-over: a relay's unconfirmed blocks may yet be
            // rolled back, and an election drawn on one of them would carry a lane head that
            // never reaches the lane, which every later relay block then fails (D5).
            let lane_head = self
                .stored_lane_head()
                .map(|h| LanePosition {
                    height: h.height,
                    hash: h.hash,
                })
                .unwrap_or(LanePosition {
                    height: 0,
                    hash: crate::crypto::Hash::ZERO,
                });
            effects.push(Effect::Send {
                to: self.supervisor,
                message: Message::Heartbeat {
                    consortium: self.consortium,
                    epoch: self.serving.get(&self.consortium).map_or(0, |s| s.epoch),
                    lane_head,
                    sent_at: now,
                },
            });
        }
        self.relay_tick(now, &mut effects);
        self.backup_tick(now, &mut effects);
        self.protocol_tick(now, &mut effects);
        effects
    }

    /// Handles a message that passed the envelope checks.
    pub fn deliver(&mut self, from: Address, message: Message, now: u64) -> Vec<Effect> {
        let mut effects = Vec::new();
        self.note_heard(from, now);
        match message {
            Message::Elected { records } => self.on_elected(from, records, now, &mut effects),
            Message::Ack {
                epoch,
                height,
                hash,
                ..
            } => {
                if self.relay() == Some(from) {
                    let acked: Vec<u64> = self.unacked.range(..=height).map(|(h, _)| *h).collect();
                    if self.unacked.get(&height).is_some_and(|b| b.hash() == hash)
                        || acked.len() > 1
                    {
                        for h in acked {
                            if let Some(block) = self.unacked.remove(&h) {
                                effects.push(Effect::Emit(Event::Acked {
                                    member: self.me,
                                    consortium: self.consortium,
                                    height: h,
                                    relay: from,
                                    epoch,
                                    records: block.records.len() as u32,
                                    at: now,
                                }));
                            }
                        }
                        self.quiet_rounds = 0;
                        self.submit_window(false, &mut effects);
                    }
                }
            }
            // Not taken: this node's idea of its relay is out of date (a lost election
            // message). Ask the supervisor again; the block is resent on the answer.
            Message::NotTaken { .. } => effects.push(self.discover()),
            Message::Lease { epoch, until } => {
                if from == self.supervisor {
                    match &mut self.duty {
                        Duty::Relay(duty) if duty.epoch == epoch => {
                            duty.lease_until = duty.lease_until.max(until);
                        }
                        // A lease for an epoch this node does not serve: it missed the
                        // election that made it relay, or the election is still on its
                        // way (the network reorders). Kept for that epoch, and asked for.
                        _ => {
                            self.early_lease = Some((epoch, until));
                            effects.push(self.discover());
                        }
                    }
                }
            }
            Message::HandOver { epoch } => {
                if from == self.supervisor {
                    self.on_hand_over(epoch, now, &mut effects);
                }
            }
            Message::Submit { block } => self.on_submit(from, block, now, &mut effects),
            Message::Replicate { epoch, block } => {
                self.on_replicate(from, epoch, block, now, &mut effects)
            }
            Message::ReplicateRelay { block } => {
                self.on_replicate_relay(from, block, now, &mut effects)
            }
            Message::Replicated { epoch, hash } => {
                self.on_replicated(from, epoch, hash, now, &mut effects)
            }
            Message::RelayBlock { block } => self.on_relay_block(from, block, now, &mut effects),
            Message::SyncRequest {
                chain,
                from: height,
            } => {
                // Serve own chains to anyone registered, held copies to holders.
                effects.push(Effect::ServeSync {
                    to: from,
                    chain,
                    from: height,
                });
            }
            Message::SyncBlocks {
                chain,
                blocks,
                head,
            } => self.on_sync_blocks(from, chain, blocks, head, now, &mut effects),
            Message::CaughtUp { epoch } => {
                if let Duty::Relay(duty) = &mut self.duty {
                    // The backup has every chain: the next degraded period is reported anew.
                    if duty.epoch == epoch && duty.backup == Some(from) {
                        duty.degraded_reported = false;
                    }
                }
            }
            message @ (Message::Forward { .. }
            | Message::JoinIntent { .. }
            | Message::JoinRelay { .. }
            | Message::JoinRequest { .. }
            | Message::JoinAccepted { .. }
            | Message::JoinRefused { .. }
            | Message::JoinApply { .. }
            | Message::JoinReceipted { .. }
            | Message::Countersign { .. }
            | Message::DataDelivery { .. }
            | Message::DataReceived { .. }) => {
                self.on_protocol_message(from, message, now, &mut effects)
            }
            Message::Joined { .. } => effects.push(self.rejected(
                "misrouted",
                false,
                "supervisor message sent to a member".into(),
            )),
            Message::Heartbeat { .. } | Message::HandedOver { .. } | Message::Discover { .. } => {
                effects.push(self.rejected(
                    "misrouted",
                    false,
                    "supervisor message sent to a member".into(),
                ));
            }
        }
        effects
    }

    // ----- elections -----

    fn on_elected(
        &mut self,
        from: Address,
        records: Vec<Record>,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        if from != self.supervisor && self.relay() != Some(from) {
            effects.push(self.rejected(
                "unknown_sender",
                true,
                "election not from the supervisor".into(),
            ));
            return;
        }
        let supervisor = self.genesis.supervisor;
        let mut latest: Option<(ElectionRecord, u64)> = None;
        for record in &records {
            let RecordBody::Election(election) = &record.content.body else {
                effects.push(self.rejected(
                    "invalid_election",
                    true,
                    "not an election record".into(),
                ));
                return;
            };
            if record.content.author != supervisor.address() || record.verify(&supervisor).is_err()
            {
                effects.push(self.rejected(
                    "bad_signature",
                    true,
                    "election record not signed by the supervisor".into(),
                ));
                return;
            }
            latest = Some((election.clone(), record.content.seq));
        }
        let Some((election, seq)) = latest else {
            return;
        };
        let consortium = election.consortium;
        if let Some(current) = self.serving.get(&consortium) {
            if (current.epoch, current.seq) >= (election.epoch, seq) {
                return;
            }
        }
        let previous = self.serving.insert(
            consortium,
            Serving {
                epoch: election.epoch,
                seq,
                relay: election.relay,
                backup: election.backup,
                records,
            },
        );
        if consortium != self.consortium {
            return;
        }
        // Resend the unacknowledged blocks to the (possibly new) relay (D4).
        self.quiet_rounds = 0;
        self.submit_window(true, effects);
        self.next_resend = now + self.resend_ms();
        let previous_relay = previous.as_ref().map(|p| p.relay);
        let previous_backup = previous.and_then(|p| p.backup);
        if election.relay == self.me {
            match &mut self.duty {
                Duty::Relay(duty) if duty.epoch == election.epoch => {
                    // Same epoch: the backup changed (backup lost). Whatever waited on the
                    // lost backup is replicated to the new one; with no backup at all it
                    // is released on the relay's own sync (D4, degraded).
                    duty.backup = election.backup;
                    if duty.backup.is_some() {
                        for entry in duty.pending.iter_mut() {
                            entry.done = false;
                        }
                        duty.next_retry = 0;
                    } else {
                        Self::release_pending(
                            &self.serving,
                            self.me,
                            self.consortium,
                            duty,
                            now,
                            effects,
                        );
                    }
                }
                _ => self.become_relay(&election, previous_relay, previous_backup, now, effects),
            }
        } else if election.backup == Some(self.me) {
            let already = matches!(&self.duty, Duty::Backup(b) if b.relay == election.relay && b.epoch == election.epoch);
            if !already {
                self.become_backup(&election, effects);
            }
        } else if !matches!(self.duty, Duty::None) {
            self.step_down();
            self.duty = Duty::None;
        }
    }

    fn become_relay(
        &mut self,
        election: &ElectionRecord,
        previous: Option<Address>,
        previous_backup: Option<Address>,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        // What reached this node as backup may not have reached the members: the old
        // relay may have failed before forwarding it, or, on a rotation, handed over
        // before it arrived. Forwarded again once the new duty is set up.
        let received = match &mut self.duty {
            Duty::Backup(duty) => std::mem::take(&mut duty.received),
            _ => VecDeque::new(),
        };
        // A new epoch: whatever the old one left unconfirmed goes.
        self.step_down();
        let lane = self.consortium;
        self.holder_mut();
        let mut waiting: BTreeSet<Address> = self
            .serving
            .iter()
            .filter(|(c, _)| **c != lane)
            .map(|(_, s)| s.relay)
            .collect();
        // The previous relay answers only on a rotation: after a failover it is gone, and
        // waiting for it would only spend the timeout.
        if election.reason == crate::election::ElectionReason::Rotation {
            waiting.extend(previous.filter(|p| *p != self.me));
        }
        // A new relay that was not the backup has no hot copy of the lane, and the draw's
        // lane head (the backup's last report) may be stale: continuing from its own copy
        // would fork the blocks the deposed relay stored meanwhile. The previous relay and
        // backup were both deemed failed, but a spurious failover (a saturated actor thread
        // answering heartbeats late) leaves them alive with the lane's head: wait for their
        // answers too, the relay's at most the sync timeout, the keeper's (below) however
        // long it takes (S2).
        if previous_backup != Some(self.me) {
            waiting.extend(previous.filter(|p| *p != self.me));
            waiting.extend(previous_backup.filter(|p| *p != self.me));
        }
        let from = self.relay_lane_head(lane).map_or(1, |h| h.height + 1);
        for to in &waiting {
            effects.push(Effect::Send {
                to: *to,
                message: Message::SyncRequest {
                    chain: ChainId::Relay(lane),
                    from,
                },
            });
        }
        // The members' lanes too: a block acknowledged by a relay deposed before including
        // it is held by that relay and its backup, and this node may be neither (the
        // failover draws anew when the backup is not alive either). Its author does not
        // resend an acknowledged block, so the new relay fetches what it lacks; the synced
        // blocks join the unincluded ones and go into relay blocks (S3, D4). The own lane
        // too: this node's blocks went to the relay, not into its holder copy.
        for member in self.consortium_members() {
            let from = self
                .holder
                .as_ref()
                .and_then(|h| h.member_lanes.get(&member))
                .map_or(0, |l| l.head.height)
                + 1;
            effects.push(Effect::Send {
                to: member,
                message: Message::SyncRequest {
                    chain: ChainId::Consortium(lane, member),
                    from,
                },
            });
        }
        // And the other lanes, from their relays: a copy that fell behind while this node
        // held none (or missed broadcasts) otherwise catches up only when a block of a
        // lane names a longer one, and none may come once the writers stop (S3 asks for
        // every relay's copy).
        let others: Vec<(ConsortiumId, Address)> = self
            .serving
            .iter()
            .filter(|(c, s)| **c != lane && s.relay != self.me)
            .map(|(c, s)| (*c, s.relay))
            .collect();
        for (other, relay) in others {
            let from = self.relay_lane_head(other).map_or(0, |h| h.height) + 1;
            effects.push(Effect::Send {
                to: relay,
                message: Message::SyncRequest {
                    chain: ChainId::Relay(other),
                    from,
                },
            });
        }
        let keeper = self.keeper(election).filter(|k| *k != self.me);
        if let Some(keeper) = keeper {
            if waiting.insert(keeper) {
                effects.push(Effect::Send {
                    to: keeper,
                    message: Message::SyncRequest {
                        chain: ChainId::Relay(lane),
                        from,
                    },
                });
            }
        }
        let mut ask = waiting.clone();
        ask.extend(previous.filter(|p| *p != self.me));
        let state = RelayState::Syncing {
            waiting,
            deadline: now + self.timing.sync_timeout_ms(),
            target: election.lane_head.height,
            ask,
            keeper,
        };
        let lease_until = self
            .early_lease
            .take()
            .filter(|(epoch, _)| *epoch == election.epoch)
            .map_or(0, |(_, until)| until);
        self.duty = Duty::Relay(Box::new(RelayDuty {
            epoch: election.epoch,
            lease_until,
            window: Window::new(self.timing.window),
            state,
            backup: election.backup,
            pending: VecDeque::new(),
            acked: BTreeMap::new(),
            took_over: false,
            degraded_reported: false,
            next_retry: 0,
            rollback: None,
            held: Vec::new(),
            announce_take_over: false,
        }));
        if election.backup.is_some() {
            // The new backup catches up from this relay first. Acknowledgements still wait
            // for its confirmation (it parks blocks ahead of a gap and confirms once the gap
            // is synced), so this period is reported as degraded but never acknowledges on
            // the relay's own sync alone.
            effects.push(Effect::Emit(Event::Degraded {
                consortium: lane,
                epoch: election.epoch,
                why: "new backup catching up".into(),
            }));
        }
        for (_, block) in &received {
            self.forward(block, now, effects);
        }
        self.relay_tick(now, effects);
    }

    /// Who holds every block of the own lane that the relay before `election` confirmed:
    /// that relay's backup, which stores each relay block before it confirms it (D4), or
    /// the relay itself if it had none. Read from the election this one follows, in the
    /// records it came with: this node's own idea of the previous election may have missed
    /// one (a lost backup replaced). `None` for an initial election, and when this node's
    /// copy of the lane already holds a block of this election's epoch (a relay restarted
    /// in its own epoch): the lane went on past the keeper's blocks then.
    fn keeper(&self, election: &ElectionRecord) -> Option<Address> {
        let taken_over = self
            .holder
            .as_ref()
            .and_then(|h| h.relay_lanes.get(&election.consortium))
            .is_some_and(|l| l.elections.epoch >= election.epoch);
        if election.prev_election == crate::crypto::Hash::ZERO || taken_over {
            return None;
        }
        self.serving
            .get(&election.consortium)?
            .records
            .iter()
            .filter(|r| r.digest() == election.prev_election)
            .find_map(|r| match &r.content.body {
                RecordBody::Election(previous) => Some(previous.backup.unwrap_or(previous.relay)),
                _ => None,
            })
    }

    fn become_backup(&mut self, election: &ElectionRecord, effects: &mut Vec<Effect>) {
        self.step_down();
        self.holder_mut();
        let mut catching_up = BTreeSet::new();
        let relay = election.relay;
        let members: Vec<Address> = self
            .genesis
            .consortiums
            .get(self.consortium.0 as usize)
            .map(|c| c.members.iter().map(|m| m.address).collect())
            .unwrap_or_default();
        let holder = self.holder.as_ref();
        let mut chains: Vec<(ChainId, u64)> = Vec::new();
        for lane in self.genesis.consortiums.iter().map(|c| c.id) {
            let head = holder
                .and_then(|h| h.relay_lanes.get(&lane))
                .map_or(0, |l| l.head.height);
            chains.push((ChainId::Relay(lane), head + 1));
        }
        for member in members.into_iter().filter(|m| *m != self.me) {
            let head = holder
                .and_then(|h| h.member_lanes.get(&member))
                .map_or(0, |l| l.head.height);
            chains.push((ChainId::Consortium(self.consortium, member), head + 1));
        }
        for (chain, from) in chains {
            catching_up.insert(chain);
            effects.push(Effect::Send {
                to: relay,
                message: Message::SyncRequest { chain, from },
            });
        }
        self.duty = Duty::Backup(BackupDuty {
            epoch: election.epoch,
            relay,
            catching_up,
            parked: BTreeMap::new(),
            parked_relay: BTreeMap::new(),
            received: VecDeque::new(),
            next_ask: 0,
        });
    }

    /// Asks the relay again, every resend interval, for the chains this backup still
    /// waits on: those it is catching up, and those a parked replicated block needs the
    /// gap of. The first request went when the wait began (`become_backup`, a parked
    /// block); a chain whose answer is still coming page by page was asked lately and is
    /// left alone. Syncing only fills the copies in lane order, and a parked block is
    /// confirmed only once stored, so asking again never confirms early (D4).
    fn backup_tick(&mut self, now: u64, effects: &mut Vec<Effect>) {
        let patience = self.resend_ms();
        let consortium = self.consortium;
        let Duty::Backup(duty) = &mut self.duty else {
            return;
        };
        let mut chains: BTreeSet<ChainId> = duty.catching_up.clone();
        chains.extend(
            duty.parked
                .keys()
                .map(|(author, _)| ChainId::Consortium(consortium, *author)),
        );
        if !duty.parked_relay.is_empty() {
            chains.insert(ChainId::Relay(consortium));
        }
        if chains.is_empty() {
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
        let relay = duty.relay;
        for chain in chains {
            let head = match chain {
                ChainId::Relay(lane) => self.relay_lane_head(lane).map(|h| h.height),
                ChainId::Consortium(_, author) => self
                    .holder
                    .as_ref()
                    .and_then(|h| h.member_lanes.get(&author))
                    .map(|l| l.head.height),
                ChainId::Private(_) => continue,
            };
            self.ask_sync(relay, chain, head.unwrap_or(0) + 1, now, effects);
        }
    }

    fn on_hand_over(&mut self, epoch: u64, now: u64, effects: &mut Vec<Effect>) {
        let Duty::Relay(duty) = &mut self.duty else {
            return;
        };
        if duty.epoch != epoch {
            return;
        }
        if let Some(flush) = duty.window.drain() {
            self.produce(flush, now, effects);
        }
        if let Duty::Relay(duty) = &mut self.duty {
            duty.state = RelayState::Stopped;
        }
        // Report the last confirmed head: an unconfirmed final block may yet be rolled back,
        // and the next election must be drawn on a block that stays on the lane.
        let head = self.stored_lane_head().unwrap_or_default();
        effects.push(Effect::Send {
            to: self.supervisor,
            message: Message::HandedOver {
                epoch,
                lane_head: LanePosition {
                    height: head.height,
                    hash: head.hash,
                },
            },
        });
    }

    // ----- relay duty -----

    fn relay_tick(&mut self, now: u64, effects: &mut Vec<Effect>) {
        let lane = self.consortium;
        let head = self.relay_lane_head(lane).map_or(0, |h| h.height);
        let Duty::Relay(duty) = &mut self.duty else {
            return;
        };
        if let RelayState::Syncing {
            deadline,
            waiting,
            target,
            ask,
            keeper,
        } = &mut duty.state
        {
            let kept = keeper.is_none_or(|k| !waiting.contains(&k));
            if head >= *target && kept && (waiting.is_empty() || now >= *deadline) {
                duty.state = RelayState::Active;
            } else if now >= *deadline {
                // Still below the election's lane head, or not yet answered by the
                // keeper: ask again, and never continue below either (S2).
                *deadline = now + self.timing.sync_timeout_ms();
                for to in ask.iter() {
                    effects.push(Effect::Send {
                        to: *to,
                        message: Message::SyncRequest {
                            chain: ChainId::Relay(lane),
                            from: head + 1,
                        },
                    });
                }
            }
        }
        if now >= duty.next_retry {
            duty.next_retry = now + self.timing.heartbeat_ms;
            if let Some(backup) = duty.backup {
                let epoch = duty.epoch;
                for entry in duty.pending.iter().filter(|e| !e.done) {
                    let message = match &entry.action {
                        Pending::Ack { block, .. } => Message::Replicate {
                            epoch,
                            block: (**block).clone(),
                        },
                        Pending::Broadcast { block, .. } => Message::ReplicateRelay {
                            block: (**block).clone(),
                        },
                    };
                    effects.push(Effect::Send {
                        to: backup,
                        message,
                    });
                }
            }
        }
        // Deliberate bug (`no_fencing`, tests only): a relay ignores its lease's expiry.
        let lease_expired = now >= duty.lease_until && !self.timing.mutations.no_fencing;
        if duty.state != RelayState::Active || lease_expired {
            return;
        }
        if !duty.took_over {
            duty.took_over = true;
            // Everything acknowledged and not yet included goes first (S3).
            let backlog: Vec<ConsortiumBlock> = self
                .holder
                .as_ref()
                .map(|h| h.unincluded.values().cloned().collect())
                .unwrap_or_default();
            let mut flushes = Vec::new();
            if let Duty::Relay(duty) = &mut self.duty {
                for block in backlog {
                    flushes.extend(duty.window.add(block, now));
                }
                flushes.extend(duty.window.drain());
            }
            if flushes.is_empty() {
                flushes.push(Flush {
                    blocks: Vec::new(),
                    reason: FlushReason::Drain,
                });
            }
            // The take-over is done when the first block goes out (D10): at once without a
            // backup, or when the backup confirms it.
            if let Duty::Relay(duty) = &mut self.duty {
                duty.announce_take_over = true;
            }
            for flush in flushes {
                self.produce(flush, now, effects);
            }
            return;
        }
        if let Duty::Relay(duty) = &mut self.duty {
            let mut flushes = Vec::new();
            for block in std::mem::take(&mut duty.held) {
                flushes.extend(duty.window.add(block, now));
            }
            flushes.extend(duty.window.tick(now));
            for flush in flushes {
                self.produce(flush, now, effects);
            }
        }
    }

    fn on_submit(
        &mut self,
        from: Address,
        block: ConsortiumBlock,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        let Duty::Relay(duty) = &self.duty else {
            effects.push(Effect::Send {
                to: from,
                message: Message::NotTaken {
                    height: block.height(),
                    why: "not the relay".into(),
                },
            });
            return;
        };
        let epoch = duty.epoch;
        if block.header.author != from || block.header.consortium != self.consortium {
            effects.push(self.rejected(
                "foreign_block",
                true,
                format!("block of {} submitted by {from}", block.header.author),
            ));
            return;
        }
        let author = from;
        let height = block.height();
        let acked = duty.acked.get(&author).copied().unwrap_or(0);
        let pending = duty.pending.iter().any(|e| {
            matches!(e.action, Pending::Ack { author: a, height: h, .. } if a == author && h == height)
        });
        let fresh = match self.holder_mut().accept_member_block(&block) {
            Ok(Accepted::New) => true,
            // Held, but not acknowledged by this relay: it came by replication while this
            // node was the backup, or by a sync. Acknowledge it the normal way, through the
            // backup, without storing it again.
            Ok(Accepted::Duplicate) if height > acked && !pending => false,
            Ok(Accepted::Duplicate) => {
                // The original reply (D9): re-acknowledge what was acknowledged.
                if height <= acked {
                    effects.push(Effect::Send {
                        to: author,
                        message: Message::Ack {
                            epoch,
                            author,
                            height,
                            hash: block.hash(),
                        },
                    });
                }
                return;
            }
            Err(Reject::Height { expected, got }) if got > expected => {
                effects.push(Effect::Send {
                    to: author,
                    message: Message::SyncRequest {
                        chain: ChainId::Consortium(self.consortium, author),
                        from: expected,
                    },
                });
                return;
            }
            Err(reason) => {
                let kind = reject_kind(&reason);
                effects.push(self.rejected(
                    kind,
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
        let hash = block.hash();
        let Duty::Relay(duty) = &mut self.duty else {
            return;
        };
        // Deliberate bug (`ack_before_replication`, tests only): replicate, but acknowledge
        // at once on the relay's own sync, as if there were no backup.
        let ack_now = self.timing.mutations.ack_before_replication;
        match duty.backup {
            Some(backup) if ack_now => {
                effects.push(Effect::Send {
                    to: backup,
                    message: Message::Replicate {
                        epoch,
                        block: block.clone(),
                    },
                });
                duty.acked.insert(author, height);
                effects.push(Effect::Send {
                    to: author,
                    message: Message::Ack {
                        epoch,
                        author,
                        height,
                        hash,
                    },
                });
            }
            Some(backup) => {
                effects.push(Effect::Send {
                    to: backup,
                    message: Message::Replicate {
                        epoch,
                        block: block.clone(),
                    },
                });
                duty.pending.push_back(PendingEntry {
                    done: false,
                    action: Pending::Ack {
                        hash,
                        author,
                        height,
                        block: Box::new(block.clone()),
                    },
                });
            }
            None => {
                if !duty.degraded_reported {
                    duty.degraded_reported = true;
                    effects.push(Effect::Emit(Event::Degraded {
                        consortium: self.consortium,
                        epoch,
                        why: "acknowledging without a caught-up backup".into(),
                    }));
                }
                duty.acked.insert(author, height);
                effects.push(Effect::Send {
                    to: author,
                    message: Message::Ack {
                        epoch,
                        author,
                        height,
                        hash,
                    },
                });
            }
        }
        if fresh && block.is_external() && duty.state == RelayState::Active && duty.took_over {
            let flushes = duty.window.add(block, now);
            for flush in flushes {
                self.produce(flush, now, effects);
            }
        }
    }

    /// Seals, stores and replicates one relay block; it is broadcast once the backup has it.
    fn produce(&mut self, flush: Flush, now: u64, effects: &mut Vec<Effect>) {
        let lane = self.consortium;
        let Some(serving) = self.serving.get(&lane).cloned() else {
            return;
        };
        let Duty::Relay(duty) = &self.duty else {
            return;
        };
        // Fencing by lease (SPEC §12 D3): no block without a live lease, whatever path asks
        // (a timer, a submitted urgent block, a sync). A relay cut off from the supervisor
        // may still hear its own blocks; it must not extend the lane on them. The blocks
        // stay among the holder's unincluded ones for whoever relays next.
        if now >= duty.lease_until && !self.timing.mutations.no_fencing {
            if let Duty::Relay(duty) = &mut self.duty {
                duty.held.extend(flush.blocks);
            }
            return;
        }
        // A lane includes each member's blocks in height order, and never one below a
        // member's last included height (`RelayLane::append`): a block that goes out ahead
        // of an earlier one of its author makes the relay block invalid, or, if the earlier
        // one comes later, leaves it out for good (S3). Blocks reach the window by several
        // paths (submissions, syncs, the take-over backlog, those held while the lease had
        // lapsed), so the order is restored here: each block goes with its author's earlier
        // blocks still waiting at this holder, every author's blocks by height, in as many
        // relay blocks as the payload budget needs.
        let budget = duty.window.config().payload_budget as usize;
        let Some(holder) = self.holder.as_deref() else {
            return;
        };
        let mut chunks: Vec<Vec<ConsortiumBlock>> = Vec::new();
        let mut bytes = 0;
        for block in holder.in_lane_order(lane, flush.blocks) {
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
            if !self.seal(blocks, flush.reason, &serving, now, effects) {
                return;
            }
        }
    }

    /// Seals one relay block of `blocks` (in lane order, within the payload budget), stores
    /// it in the holder copy and replicates it; it is broadcast once the backup has it.
    /// Returns whether it was sealed.
    fn seal(
        &mut self,
        blocks: Vec<ConsortiumBlock>,
        reason: FlushReason,
        serving: &Serving,
        now: u64,
        effects: &mut Vec<Effect>,
    ) -> bool {
        let lane = self.consortium;
        let Duty::Relay(duty) = &self.duty else {
            return false;
        };
        let epoch = duty.epoch;
        let Some(holder) = self.holder.as_deref() else {
            return false;
        };
        let Some(own) = holder.relay_lanes.get(&lane) else {
            return false;
        };
        // Carry the election records the lane does not have yet, in order.
        let carried = own.elections.last_election;
        let start = serving
            .records
            .iter()
            .position(|r| r.digest() == carried)
            .map_or(0, |i| i + 1);
        let records: Vec<Record> = serving.records[start..].to_vec();
        // Never include a block twice: the lane may have included it meanwhile (a block
        // resent to a new relay, a backlog taken over).
        let mut seen = BTreeSet::new();
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
        if !self.proto.pending_joins.is_empty() {
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
        let draft = RelayDraft {
            lane,
            height: own.head.height + 1,
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
        let any = AnyBlock::Relay(block.clone());
        let unconfirmed = duty
            .pending
            .iter()
            .any(|e| matches!(e.action, Pending::Broadcast { .. }));
        let snapshot = (duty.backup.is_some() && !unconfirmed).then(|| Box::new(own.clone()));
        let before = (duty.backup.is_some() && unconfirmed).then(|| Box::new(own.clone()));
        if let Err(err) = self.holder_mut().accept_block(&any) {
            effects.push(self.rejected("own_relay_block", false, err.to_string()));
            return false;
        }
        let hash = block.hash();
        let Duty::Relay(duty) = &mut self.duty else {
            return false;
        };
        match duty.backup {
            Some(backup) => {
                // Stored, broadcast and announced once the backup has it.
                if snapshot.is_some() {
                    duty.rollback = snapshot;
                }
                effects.push(Effect::Send {
                    to: backup,
                    message: Message::ReplicateRelay {
                        block: block.clone(),
                    },
                });
                duty.pending.push_back(PendingEntry {
                    done: false,
                    action: Pending::Broadcast {
                        hash,
                        block: Box::new(block),
                        reason,
                        before,
                    },
                });
            }
            None => {
                effects.push(Effect::Persist(vec![any]));
                broadcast(&self.serving, self.me, &block, effects);
                effects.push(Effect::Emit(committed_event(
                    self.me,
                    &block,
                    true,
                    Some(reason),
                    now,
                )));
                effects.extend(protocol::settled_events(&block, reason, now));
                if std::mem::take(&mut duty.announce_take_over) {
                    effects.push(took_over(lane, epoch, self.me, now));
                }
            }
        }
        true
    }

    /// Leaves the relay duty: a relay block the backup never confirmed is forgotten, and the
    /// own lane goes back to its last confirmed block (it was never stored or sent).
    fn step_down(&mut self) {
        let Duty::Relay(duty) = std::mem::replace(&mut self.duty, Duty::None) else {
            return;
        };
        let unconfirmed = duty
            .pending
            .iter()
            .any(|e| matches!(e.action, Pending::Broadcast { .. }));
        if let (true, Some(lane)) = (unconfirmed, duty.rollback) {
            let consortium = self.consortium;
            let holder = self.holder_mut();
            holder.relay_lanes.insert(consortium, *lane);
            // Storing those blocks in the copy took the blocks they include off the
            // unincluded ones; they are waiting again, or this node would leave them out
            // whenever it next takes over (S3).
            for entry in &duty.pending {
                if let Pending::Broadcast { block, .. } = &entry.action {
                    for included in &block.blocks {
                        holder.wait_again(included);
                    }
                }
            }
        }
    }

    fn on_replicated(
        &mut self,
        from: Address,
        epoch: u64,
        hash: crate::crypto::Hash,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        let Duty::Relay(duty) = &mut self.duty else {
            return;
        };
        if duty.backup != Some(from) || duty.epoch != epoch {
            return;
        }
        // Mark this one confirmed, then release the confirmed entries that no unconfirmed
        // one of their own order waits before: the relay blocks in lane order, each
        // member's acknowledgements in its lane order (an acknowledgement is cumulative at
        // the member). None goes out before the backup has its block. The orders are
        // independent: a relay block carries the blocks it includes, so the backup holding
        // it holds them too, and an acknowledgement needs only its own block at the backup
        // (D4). One member's stalled confirmation (a block parked at the backup behind a
        // gap whose sync was lost) must not hold back the lane (L1) or the other members.
        if let Some(entry) = duty.pending.iter_mut().find(|e| e.action.hash() == hash) {
            entry.done = true;
        }
        let mut blocked: BTreeSet<Option<Address>> = BTreeSet::new();
        let mut next = 0;
        while next < duty.pending.len() {
            let entry = &duty.pending[next];
            let order = match &entry.action {
                Pending::Ack { author, .. } => Some(*author),
                Pending::Broadcast { .. } => None,
            };
            if !entry.done || blocked.contains(&order) {
                blocked.insert(order);
                next += 1;
                continue;
            }
            if let Some(entry) = duty.pending.remove(next) {
                let stored = matches!(entry.action, Pending::Broadcast { .. });
                let first_block = stored && std::mem::take(&mut duty.announce_take_over);
                // This block is stored now: a later rollback goes back to just before the
                // next unconfirmed block, never below a stored one.
                if stored {
                    let following = duty.pending.iter_mut().find_map(|e| match &mut e.action {
                        Pending::Broadcast { before, .. } => Some(before.take()),
                        Pending::Ack { .. } => None,
                    });
                    if let Some(Some(before)) = following {
                        duty.rollback = Some(before);
                    }
                }
                Self::release(
                    &self.serving,
                    self.me,
                    epoch,
                    &mut duty.acked,
                    entry.action,
                    now,
                    effects,
                );
                if first_block {
                    effects.push(took_over(self.consortium, epoch, self.me, now));
                }
            }
        }
        if !duty
            .pending
            .iter()
            .any(|e| matches!(e.action, Pending::Broadcast { .. }))
        {
            duty.rollback = None;
        }
    }

    /// Carries out one released action: an acknowledgement or a broadcast.
    fn release(
        serving: &BTreeMap<ConsortiumId, Serving>,
        me: Address,
        epoch: u64,
        acked: &mut BTreeMap<Address, u64>,
        action: Pending,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        match action {
            Pending::Ack {
                hash,
                author,
                height,
                ..
            } => {
                let last = acked.entry(author).or_insert(0);
                *last = (*last).max(height);
                effects.push(Effect::Send {
                    to: author,
                    message: Message::Ack {
                        epoch,
                        author,
                        height,
                        hash,
                    },
                });
            }
            Pending::Broadcast { block, reason, .. } => {
                effects.push(Effect::Persist(vec![AnyBlock::Relay((*block).clone())]));
                broadcast(serving, me, &block, effects);
                effects.push(Effect::Emit(committed_event(
                    me,
                    &block,
                    true,
                    Some(reason),
                    now,
                )));
                effects.extend(protocol::settled_events(&block, reason, now));
            }
        }
    }

    /// Releases everything waiting on a backup that is gone (D4: acknowledge after the
    /// relay's own sync until a new backup has caught up).
    fn release_pending(
        serving: &BTreeMap<ConsortiumId, Serving>,
        me: Address,
        lane: ConsortiumId,
        duty: &mut RelayDuty,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        let epoch = duty.epoch;
        let pending = std::mem::take(&mut duty.pending);
        // The take-over's first relay block may be among them (its backup was lost before
        // it confirmed): the take-over is done when it goes out.
        let first_block = pending
            .iter()
            .any(|e| matches!(e.action, Pending::Broadcast { .. }))
            && std::mem::take(&mut duty.announce_take_over);
        for entry in pending {
            Self::release(
                serving,
                me,
                epoch,
                &mut duty.acked,
                entry.action,
                now,
                effects,
            );
        }
        if first_block {
            effects.push(took_over(lane, epoch, me, now));
        }
        duty.rollback = None;
    }

    // ----- backup duty and holder copies -----

    fn on_replicate(
        &mut self,
        from: Address,
        epoch: u64,
        block: ConsortiumBlock,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        let Duty::Backup(duty) = &self.duty else {
            // Perhaps this node missed the election that made it backup: ask.
            effects.push(self.rejected("not_backup", false, format!("replicate from {from}")));
            effects.push(self.discover());
            return;
        };
        if duty.relay != from || epoch < duty.epoch {
            effects.push(self.rejected(
                "stale_epoch",
                false,
                format!("replicate from {from} epoch {epoch}"),
            ));
            return;
        }
        let hash = block.hash();
        let (author, height) = (block.header.author, block.height());
        match self.holder_mut().accept_member_block(&block) {
            Ok(Accepted::New) if author != self.me => {
                effects.push(Effect::Persist(vec![block.into()]));
                effects.push(Effect::Emit(self.stored(author, height, now)));
            }
            Ok(_) => {}
            Err(Reject::Height { expected, got }) if got > expected => {
                // A gap: fetch it from the relay, and confirm this block once it is stored.
                let chain = ChainId::Consortium(self.consortium, author);
                if let Duty::Backup(duty) = &mut self.duty {
                    let asked = duty.parked.keys().any(|(a, _)| *a == author);
                    duty.parked.insert((author, height), (epoch, block));
                    if !asked {
                        effects.push(Effect::Send {
                            to: from,
                            message: Message::SyncRequest {
                                chain,
                                from: expected,
                            },
                        });
                    }
                }
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
        effects.push(Effect::Send {
            to: from,
            message: Message::Replicated { epoch, hash },
        });
    }

    /// Stores and confirms the parked replicated blocks of `author` that now follow its
    /// lane's head.
    fn unpark(&mut self, author: Address, now: u64, effects: &mut Vec<Effect>) {
        loop {
            let Duty::Backup(duty) = &mut self.duty else {
                return;
            };
            let relay = duty.relay;
            let Some((&key, _)) = duty.parked.range((author, 0)..=(author, u64::MAX)).next() else {
                return;
            };
            let Some((epoch, block)) = duty.parked.remove(&key) else {
                return;
            };
            let hash = block.hash();
            match self.holder_mut().accept_member_block(&block) {
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
                        duty.parked.insert(key, (epoch, block));
                    }
                    return;
                }
            }
            effects.push(Effect::Send {
                to: relay,
                message: Message::Replicated { epoch, hash },
            });
        }
    }

    fn on_replicate_relay(
        &mut self,
        from: Address,
        block: RelayBlock,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        let Duty::Backup(duty) = &self.duty else {
            effects.push(self.rejected(
                "not_backup",
                false,
                format!("replicate relay block from {from}"),
            ));
            effects.push(self.discover());
            return;
        };
        if duty.relay != from {
            effects.push(self.rejected(
                "stale_epoch",
                false,
                format!("relay block replicated by {from}, not the relay"),
            ));
            return;
        }
        let lane = block.header.lane;
        let head = self.relay_lane_head(lane).map_or(0, |h| h.height);
        if block.height() > head + 1 {
            // A gap: fetch it, and confirm this block once it is stored.
            if let Duty::Backup(duty) = &mut self.duty {
                let asked = !duty.parked_relay.is_empty();
                duty.parked_relay.insert(block.height(), block);
                if !asked {
                    effects.push(Effect::Send {
                        to: from,
                        message: Message::SyncRequest {
                            chain: ChainId::Relay(lane),
                            from: head + 1,
                        },
                    });
                }
            }
            return;
        }
        let epoch = block.header.epoch;
        let hash = block.hash();
        if self.accept_relay_block(from, block, now, effects) {
            effects.push(Effect::Send {
                to: from,
                message: Message::Replicated { epoch, hash },
            });
        }
    }

    /// Stores and confirms the parked relay blocks that now follow the own lane's head.
    fn unpark_relay(&mut self, now: u64, effects: &mut Vec<Effect>) {
        loop {
            let Duty::Backup(duty) = &mut self.duty else {
                return;
            };
            let relay = duty.relay;
            let Some((&height, _)) = duty.parked_relay.iter().next() else {
                return;
            };
            let head = self
                .relay_lane_head(self.consortium)
                .map_or(0, |h| h.height);
            let Duty::Backup(duty) = &mut self.duty else {
                return;
            };
            if height > head + 1 {
                return;
            }
            let Some(block) = duty.parked_relay.remove(&height) else {
                return;
            };
            let (epoch, hash) = (block.header.epoch, block.hash());
            if height == head + 1 && !self.accept_relay_block(relay, block, now, effects) {
                continue;
            }
            effects.push(Effect::Send {
                to: relay,
                message: Message::Replicated { epoch, hash },
            });
        }
    }

    fn on_relay_block(
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
        if self.accept_relay_block(from, block.clone(), now, effects) {
            if self.is_relay() {
                self.forward(&block, now, effects);
            } else if block.header.lane != self.consortium {
                // Kept as long as a failover can take: detection, then the lease.
                let keep =
                    self.timing.suspect_ms() + self.timing.lease_ms() + self.timing.heartbeat_ms;
                if let Duty::Backup(duty) = &mut self.duty {
                    while duty
                        .received
                        .front()
                        .is_some_and(|(at, _)| now.saturating_sub(*at) > keep)
                    {
                        duty.received.pop_front();
                    }
                    duty.received.push_back((now, block));
                }
            }
        }
    }

    /// Validates and stores a relay block in the holder copies. Returns whether it is now
    /// held (newly or already).
    fn accept_relay_block(
        &mut self,
        from: Address,
        block: RelayBlock,
        now: u64,
        effects: &mut Vec<Effect>,
    ) -> bool {
        let lane = block.header.lane;
        // Fencing (S1): never accept an epoch older than the newest known election.
        // Deliberate bug (`no_fencing`, tests only): accept any epoch.
        let fencing = !self.timing.mutations.no_fencing;
        if let Some(serving) = self.serving.get(&lane).filter(|_| fencing) {
            if block.header.epoch < serving.epoch {
                effects.push(self.rejected(
                    "stale_epoch",
                    false,
                    format!(
                        "relay block lane {lane} height {} epoch {} < {}",
                        block.height(),
                        block.header.epoch,
                        serving.epoch
                    ),
                ));
                return false;
            }
        }
        let any = AnyBlock::Relay(block.clone());
        match self.holder_mut().accept_block(&any) {
            Ok(()) => {
                effects.push(Effect::Persist(vec![any]));
                effects.push(Effect::Emit(committed_event(
                    self.me, &block, false, None, now,
                )));
                // Anti-entropy: the header names the other lanes' heads its producer has
                // seen; a lane this node holds shorter is fetched from the producer, so a
                // lost broadcast does not wait for that lane's next block.
                for head in &block.header.lane_heads {
                    let mine = self.relay_lane_head(head.lane).map_or(0, |h| h.height);
                    if head.height > mine {
                        self.ask_relay_sync(from, head.lane, mine + 1, now, effects);
                    }
                }
                true
            }
            Err(err) => match err.reason {
                Reject::Height { expected, got } if got > expected => {
                    self.ask_relay_sync(from, lane, expected, now, effects);
                    false
                }
                Reject::Height { .. } => true,
                reason => {
                    effects.push(self.rejected(
                        reject_kind(&reason),
                        true,
                        format!(
                            "relay block lane {lane} height {}: {reason}",
                            block.height()
                        ),
                    ));
                    false
                }
            },
        }
    }

    /// Asks `to` for relay lane `lane` from height `from`, unless a request for that lane
    /// to `to` is already pending (see `syncing`).
    fn ask_relay_sync(
        &mut self,
        to: Address,
        lane: ConsortiumId,
        from: u64,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        self.ask_sync(to, ChainId::Relay(lane), from, now, effects);
    }

    /// Asks `to` for `chain` from height `from`, unless a request for that chain to `to`
    /// is already pending (see `syncing`).
    fn ask_sync(
        &mut self,
        to: Address,
        chain: ChainId,
        from: u64,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        let patience = self.resend_ms();
        if self
            .syncing
            .get(&(chain, to))
            .is_some_and(|asked| now < asked + patience)
        {
            return;
        }
        self.syncing.insert((chain, to), now);
        effects.push(Effect::Send {
            to,
            message: Message::SyncRequest { chain, from },
        });
    }

    /// Forwards to this relay's members the records of another lane's block that are
    /// addressed to them and that they may act on: protocol records, data offers and
    /// elections ([`is_forwarded`]). Records for this relay itself are handled in place.
    fn forward(&mut self, block: &RelayBlock, now: u64, effects: &mut Vec<Effect>) {
        if block.header.lane == self.consortium {
            return;
        }
        let members = self.consortium_members();
        let mut per_member: BTreeMap<Address, Vec<Record>> = BTreeMap::new();
        let mut broadcast_here: Vec<&Record> = Vec::new();
        let records = block
            .blocks
            .iter()
            .flat_map(|b| b.records.iter())
            .chain(block.records.iter())
            .filter(|r| is_forwarded(r.kind()));
        for record in records {
            match &record.content.audience {
                Audience::Members(list) => {
                    for m in list.iter().filter(|m| members.contains(m)) {
                        per_member.entry(*m).or_default().push(record.clone());
                    }
                }
                Audience::Consortiums(list) if !list.contains(&self.consortium) => {}
                Audience::Own => {}
                Audience::Consortiums(_) | Audience::Everyone => {
                    broadcast_here.push(record);
                    for m in &members {
                        per_member.entry(*m).or_default().push(record.clone());
                    }
                }
            }
        }
        effects.extend(protocol::forward_steps(
            self.me,
            self.consortium,
            self.timing.protocols,
            &broadcast_here,
            now,
        ));
        let mut mine = Vec::new();
        for (to, records) in per_member {
            if to == self.me {
                mine = records;
                continue;
            }
            effects.push(Effect::Send {
                to,
                message: Message::Forward {
                    lane: block.header.lane,
                    height: block.height(),
                    records,
                },
            });
        }
        // The relay is a member too: it acts on what is addressed to it.
        let me = self.me;
        for record in &mine {
            self.on_forwarded(me, record, now, effects);
        }
    }

    fn on_sync_blocks(
        &mut self,
        from: Address,
        chain: ChainId,
        blocks: Vec<AnyBlock>,
        head: u64,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        if self.holder.is_none() {
            return;
        }
        self.syncing.remove(&(chain, from));
        let mut last = None;
        // Member blocks that arrive by a sync need the relay chain as much as submitted
        // ones: an active relay puts them in its window (S3).
        let mut windowed = Vec::new();
        // One group commit for the whole page, and the events after it: a catch-up of
        // hundreds of blocks must not cost one fsync each on the actor's thread.
        let mut stored: Vec<AnyBlock> = Vec::new();
        let mut announced: Vec<Event> = Vec::new();
        let mut failed = false;
        for block in blocks {
            if block.chain() != chain {
                effects.push(self.rejected(
                    "invalid_block",
                    true,
                    format!("sync of {chain} carried {}", block.chain()),
                ));
                return;
            }
            let height = block.height();
            let accepted = match &block {
                // History below a newer epoch's first block is legitimate; the lane's own
                // validation places every epoch (fencing applies to live broadcasts).
                AnyBlock::Relay(relay) => match self.holder_mut().accept_block(&block) {
                    Ok(()) => {
                        stored.push(block.clone());
                        announced.push(committed_event(self.me, relay, false, None, now));
                        true
                    }
                    Err(err) if matches!(err.reason, Reject::Height { got, expected } if got < expected) => {
                        true
                    }
                    Err(err) => {
                        effects.push(self.rejected(
                            "invalid_block",
                            true,
                            format!("synced from {from}: {err}"),
                        ));
                        failed = true;
                        break;
                    }
                },
                AnyBlock::Consortium(member_block) => {
                    match self.holder_mut().accept_member_block(member_block) {
                        Ok(Accepted::New) => {
                            let author = member_block.header.author;
                            if author != self.me {
                                stored.push(block.clone());
                                announced.push(self.stored(author, height, now));
                            }
                            if member_block.is_external() {
                                windowed.push(member_block.clone());
                            }
                            true
                        }
                        Ok(Accepted::Duplicate) => true,
                        Err(_) => false,
                    }
                }
                AnyBlock::Private(_) => false,
            };
            if !accepted {
                effects.push(self.rejected(
                    "invalid_block",
                    true,
                    format!("synced {chain} height {height} from {from}"),
                ));
                failed = true;
                break;
            }
            last = Some(height);
        }
        if !stored.is_empty() {
            effects.push(Effect::Persist(stored));
        }
        effects.extend(announced.into_iter().map(Effect::Emit));
        if failed {
            return;
        }
        if let Duty::Relay(duty) = &mut self.duty {
            if duty.state == RelayState::Active && duty.took_over {
                let mut flushes = Vec::new();
                for block in windowed {
                    flushes.extend(duty.window.add(block, now));
                }
                for flush in flushes {
                    self.produce(flush, now, effects);
                }
            }
        }
        let complete = last.is_none_or(|h| h >= head);
        if !complete {
            if let Some(h) = last {
                self.ask_sync(from, chain, h + 1, now, effects);
                return;
            }
        }
        // A member whose lane the relay asked for: resubmit is not needed, the relay
        // received the blocks; acknowledge them through the normal path.
        match &mut self.duty {
            Duty::Relay(duty) => {
                if let RelayState::Syncing { waiting, .. } = &mut duty.state {
                    if chain == ChainId::Relay(self.consortium) {
                        waiting.remove(&from);
                    }
                }
                self.relay_tick(now, effects);
            }
            Duty::Backup(_) => {
                match chain {
                    ChainId::Consortium(_, author) => self.unpark(author, now, effects),
                    ChainId::Relay(lane) if lane == self.consortium => {
                        self.unpark_relay(now, effects)
                    }
                    _ => {}
                }
                let Duty::Backup(duty) = &mut self.duty else {
                    return;
                };
                duty.catching_up.remove(&chain);
                if duty.catching_up.is_empty() {
                    let (relay, epoch) = (duty.relay, duty.epoch);
                    effects.push(Effect::Send {
                        to: relay,
                        message: Message::CaughtUp { epoch },
                    });
                }
            }
            Duty::None => {}
        }
    }
}

/// Sends a relay block to every other relay and backup this node knows of.
fn broadcast(
    serving: &BTreeMap<ConsortiumId, Serving>,
    me: Address,
    block: &RelayBlock,
    effects: &mut Vec<Effect>,
) {
    let mut recipients: BTreeSet<Address> = BTreeSet::new();
    for s in serving.values() {
        recipients.insert(s.relay);
        recipients.extend(s.backup);
    }
    recipients.remove(&me);
    // The own backup received it by replication.
    if let Some(own) = serving.get(&block.header.lane) {
        if let Some(backup) = own.backup {
            recipients.remove(&backup);
        }
    }
    for to in recipients {
        effects.push(Effect::Send {
            to,
            message: Message::RelayBlock {
                block: block.clone(),
            },
        });
    }
}

/// The event of a take-over: its first relay block went out (D10).
fn took_over(consortium: ConsortiumId, epoch: u64, relay: Address, now: u64) -> Effect {
    Effect::Emit(Event::TookOver {
        consortium,
        epoch,
        relay,
        at: now,
    })
}

fn committed_event(
    node: Address,
    block: &RelayBlock,
    produced: bool,
    reason: Option<FlushReason>,
    now: u64,
) -> Event {
    Event::Committed {
        node,
        lane: block.header.lane,
        height: block.height(),
        hash: block.hash(),
        epoch: block.header.epoch,
        produced,
        reason,
        blocks: block.blocks.len() as u32,
        urgent_blocks: block.header.urgency.count_urgent() as u32,
        records: block
            .blocks
            .iter()
            .flat_map(|b| b.records.iter())
            .map(|r| RecordStamp {
                author: r.content.author,
                seq: r.content.seq,
                created_at: r.content.created_at,
                urgent: r.urgency() == Urgency::Urgent,
            })
            .collect(),
        at: now,
    }
}

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

/// The counter name of a rejection.
pub fn reject_kind(reason: &Reject) -> &'static str {
    match reason {
        Reject::Signature { .. } => "bad_signature",
        Reject::UnknownSigner(_) => "unknown_sender",
        Reject::Replay { .. } => "replay",
        Reject::StaleEpoch { .. } => "stale_epoch",
        Reject::Height { .. } | Reject::Prev { .. } => "out_of_order",
        _ => "invalid_block",
    }
}

/// Whether a member block was new or already held.
enum Accepted {
    New,
    Duplicate,
}

impl Holder {
    /// Validates a relay or consortium block into the copies.
    fn accept_block(&mut self, block: &AnyBlock) -> Result<(), crate::validate::BlockError> {
        match block {
            AnyBlock::Relay(relay) => {
                let lane = relay.header.lane;
                let state = self
                    .relay_lanes
                    .get_mut(&lane)
                    .ok_or(crate::validate::BlockError {
                        chain: ChainId::Relay(lane),
                        height: relay.height(),
                        reason: Reject::WrongChain {
                            expected: ChainId::Relay(lane),
                            got: ChainId::Relay(lane),
                        },
                    })?;
                state.append(relay, &mut self.directory)?;
                self.desk.observe_relay_block(relay);
                for included in &relay.blocks {
                    let key = (included.header.author, included.header.height);
                    if let Some(arrival) = self.unincluded_at.remove(&key) {
                        self.unincluded.remove(&arrival);
                    }
                }
                Ok(())
            }
            AnyBlock::Consortium(member_block) => match self.accept_member_block(member_block) {
                Ok(_) => Ok(()),
                Err(reason) => Err(crate::validate::BlockError {
                    chain: member_block.chain(),
                    height: member_block.height(),
                    reason,
                }),
            },
            AnyBlock::Private(_) => Ok(()),
        }
    }

    /// `blocks` in an order the lane accepts: those not yet included, each after its
    /// author's earlier blocks still waiting here (taken from the unincluded ones when they
    /// are not among `blocks`), and every author's blocks by height, in the positions its
    /// blocks have in that order.
    fn in_lane_order(
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
            for (&key, arrival) in self
                .unincluded_at
                .range((author, last + 1)..(author, height))
            {
                if let Some(earlier) = self.unincluded.get(arrival) {
                    if seen.insert(key) {
                        ordered.push(earlier.clone());
                    }
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

    /// Makes an included block of a relay block rolled back from the copy wait again for
    /// a relay block, unless the lane includes it.
    fn wait_again(&mut self, block: &ConsortiumBlock) {
        let key = (block.header.author, block.header.height);
        let included = self
            .relay_lanes
            .get(&block.header.consortium)
            .and_then(|l| l.included.get(&key.0))
            .is_some_and(|h| *h >= key.1);
        if included || self.unincluded_at.contains_key(&key) {
            return;
        }
        self.arrivals += 1;
        self.unincluded.insert(self.arrivals, block.clone());
        self.unincluded_at.insert(key, self.arrivals);
    }

    fn accept_member_block(&mut self, block: &ConsortiumBlock) -> Result<Accepted, Reject> {
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
        lane.append(block).map_err(|e| e.reason)?;
        self.desk.observe_member_block(block);
        // On recovery the relay lanes are replayed first: a block they already include is
        // not waiting for a relay block.
        let included = self
            .relay_lanes
            .get(&block.header.consortium)
            .and_then(|l| l.included.get(&author))
            .is_some_and(|h| *h >= block.height());
        if block.is_external() && !included {
            self.arrivals += 1;
            self.unincluded.insert(self.arrivals, block.clone());
            self.unincluded_at
                .insert((author, block.height()), self.arrivals);
        }
        Ok(Accepted::New)
    }
}
