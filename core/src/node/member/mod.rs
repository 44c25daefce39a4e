//! A member node (SPEC §3): an enterprise or a user, and the relay and backup duties it
//! takes on when elected. [`Member`] holds the node's state and dispatches each input to
//! the part that owns it; each part is one file:
//!
//! | file | what it owns |
//! |---|---|
//! | `lanes.rs` | the member's own private chain and consortium lane: writing records, closing blocks, submitting them to the relay, acknowledgements |
//! | `holder.rs` | the copies a relay or backup keeps (D1): relay lanes, member lanes, the backlog of blocks not yet in a relay block, truncation |
//! | `sync.rs` | sync requests and answers between holders, anti-entropy |
//! | `reconfig.rs` | SPEC §14: configurations, seals, the take-over (sealed read, config block, activation), and why acknowledged blocks are never lost |
//! | `relay.rs` | the relay duty of an active configuration: submissions, the window, relay blocks, write-all replication, release, forwarding |
//! | `backup.rs` | the backup duty: storing and confirming what the relay replicates, catching up |
//! | `protocol/` | the operating protocols of SPEC §6: `join.rs`, `power.rs`, `data.rs`, and `grid.rs` (the grid's negotiation desk); `mod.rs` holds their state, the host's requests and the forwarded records |

mod backup;
mod holder;
mod lanes;
mod protocol;
mod reconfig;
mod relay;
mod sync;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

pub use protocol::ProtocolError;

/// Why a member refuses a record signed before submission ([`Member::write_signed`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignedRecordError {
    /// The record is another node's.
    #[error("record by {author}, not by member {member}")]
    NotAuthor {
        /// The record's author.
        author: Address,
        /// This member.
        member: Address,
    },
    /// The seq is not above the member's last: a replay (SPEC §4.2).
    #[error("replayed seq {seq}: the member's last seq is {last}")]
    Replay {
        /// The record's seq.
        seq: u64,
        /// The member's last seq.
        last: u64,
    },
    /// The seq jumps more than [`MAX_SEQ_GAP`] above the member's last: the member's own
    /// seqs would run out.
    #[error(
        "seq {seq} is more than {} above the member's last seq {last}",
        MAX_SEQ_GAP
    )]
    SeqGap {
        /// The record's seq.
        seq: u64,
        /// The member's last seq.
        last: u64,
    },
}

/// How far above a member's last seq a record signed before submission may go.
pub const MAX_SEQ_GAP: u64 = 1 << 32;

use crate::block::{AnyBlock, ChainBlock, ConsortiumBlock, RelayBlock};
use crate::crypto::{Address, Keypair, PublicKey};
use crate::election::{ElectionRecord, LanePosition};
use crate::genesis::{Directory, Genesis};
use crate::ids::{ChainId, ConsortiumId};
use crate::message::Message;
use crate::node::{Effect, Event, RecordStamp, Timing};
use crate::record::{Record, RecordBody, Urgency};
use crate::validate::{ConsortiumLane, Head, PrivateLane, Reject};

use backup::BackupDuty;
use holder::Holder;
use relay::RelayDuty;

/// The latest election of one consortium, as this node knows it.
#[derive(Clone, Debug)]
struct Serving {
    epoch: u64,
    relay: Address,
    backup: Option<Address>,
}

/// The duty a member has taken on, if any.
#[derive(Debug)]
enum Duty {
    None,
    Relay(Box<RelayDuty>),
    Backup(Box<BackupDuty>),
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
    /// The open records' digests, computed once when signed (issue 12).
    open_digests: Vec<crate::crypto::Hash>,
    open_bytes: usize,
    open_since: Option<u64>,
    open_private: Vec<Record>,
    private_digests: Vec<crate::crypto::Hash>,
    private_since: Option<u64>,
    unacked: BTreeMap<u64, ConsortiumBlock>,
    /// The highest unacknowledged height sent to the relay in the current round: at most
    /// `lanes::SUBMIT_WINDOW` blocks are in flight.
    sent_upto: u64,
    /// Resend rounds since the last acknowledgement (see `lanes.rs`).
    quiet_rounds: u32,
    /// When unacknowledged blocks are next resent.
    next_resend: u64,
    /// Chain syncs this holder asked a peer for and has no answer to yet, with when it
    /// asked (see `sync.rs`).
    syncing: BTreeMap<(ChainId, Address), u64>,
    serving: BTreeMap<ConsortiumId, Serving>,
    /// SPEC §14: the highest epoch of its own lane this node has sealed itself at. Durable:
    /// it confirms, acknowledges and releases nothing for an older epoch.
    sealed: u64,
    /// The highest height of its own lane this node knows to be released: it serves its
    /// copy to other lanes only up to it (SPEC §14).
    released: u64,
    /// The relay and backup of the source of the newest election of its own lane this
    /// node knows (`None` until it knows one): the copies a new relay may still read.
    own_source: Option<Vec<Address>>,
    /// The relay this node, holding no duty, last brought its own lane's copy in line with
    /// (see `sync.rs`, `converge_own_lane`).
    own_checked: Option<Address>,
    next_heartbeat: u64,
    discovered: bool,
    /// When a relay or backup that does not know who serves every lane asks again.
    next_discover: u64,
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
            open_digests: Vec::new(),
            open_bytes: 0,
            open_since: None,
            open_private: Vec::new(),
            private_digests: Vec::new(),
            private_since: None,
            unacked: BTreeMap::new(),
            sent_upto: 0,
            quiet_rounds: 0,
            next_resend: 0,
            syncing: BTreeMap::new(),
            serving: BTreeMap::new(),
            sealed: 0,
            released: 0,
            own_source: None,
            own_checked: None,
            next_heartbeat: 0,
            discovered: false,
            next_discover: 0,
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

    /// Whether it currently serves as relay (taking over, or active).
    pub fn is_relay(&self) -> bool {
        matches!(&self.duty, Duty::Relay(duty) if !duty.stopped())
    }

    /// Whether it serves as the relay of an active configuration: it acknowledges, produces
    /// and releases relay blocks (SPEC §14).
    pub fn producing(&self, _now: u64) -> bool {
        matches!(&self.duty, Duty::Relay(duty) if duty.is_active())
    }

    /// Whether it currently serves as backup.
    pub fn is_backup(&self) -> bool {
        matches!(self.duty, Duty::Backup(_))
    }

    /// The epoch it sealed its own lane at (SPEC §14).
    pub fn sealed(&self) -> u64 {
        self.sealed
    }

    /// The relay it submits to.
    pub fn relay(&self) -> Option<Address> {
        self.serving.get(&self.consortium).map(|s| s.relay)
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

    /// Restores the epoch this node sealed its lane at, from its store, on restart (SPEC
    /// §14: the seal survives restarts). Call before replaying blocks.
    pub fn recover_sealed(&mut self, epoch: u64) {
        self.sealed = self.sealed.max(epoch);
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
                        // Checked in full just above, into the own lane.
                        holder.accept_member_block(b, true).map_err(|reason| {
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
        let own = self.consortium;
        self.holder
            .get_or_insert_with(|| Box::new(Holder::new(genesis, directory, own, grid)))
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

    /// Advances timers: closes open blocks after `member_max_wait`, resends, heartbeats,
    /// and the duties' and protocols' timers.
    pub fn tick(&mut self, now: u64) -> Vec<Effect> {
        let mut effects = Vec::new();
        if !self.discovered {
            self.discovered = true;
            self.next_discover = now + self.timing.retry_ms();
            effects.push(self.discover());
        } else if !matches!(self.duty, Duty::None)
            && self.serving.len() < self.genesis.consortiums.len()
            && now >= self.next_discover
        {
            // A relay or backup sends its lane's blocks to the other lanes' relays and
            // fetches theirs, so it must know them all. The supervisor's notices after a
            // restart may reach it before it listens (nodes start one by one): it asks
            // again, and the supervisor answers a relay or backup with every lane.
            self.next_discover = now + self.timing.retry_ms();
            effects.push(self.discover());
        }
        self.lanes_tick(now, &mut effects);
        if self.relay_capable && now >= self.next_heartbeat {
            self.next_heartbeat = now + self.timing.heartbeat_ms;
            effects.push(self.heartbeat(now));
        }
        self.relay_tick(now, &mut effects);
        self.anti_entropy_tick(now, &mut effects);
        self.backup_tick(now, &mut effects);
        self.converge_own_lane(now, &mut effects);
        self.protocol_tick(now, &mut effects);
        effects
    }

    /// A heartbeat to the supervisor: the newest epoch known, the head of the own lane's
    /// copy, and, from the relay of an active configuration, its released head (SPEC §14).
    fn heartbeat(&self, now: u64) -> Effect {
        let head = self.holder.as_ref().and_then(|h| h.own_lane()).map_or(
            LanePosition {
                height: 0,
                hash: crate::crypto::Hash::ZERO,
            },
            |l| LanePosition {
                height: l.head.height,
                hash: l.head.hash,
            },
        );
        let released = match &self.duty {
            Duty::Relay(duty) => duty.released_position(),
            _ => None,
        };
        Effect::Send {
            to: self.supervisor,
            message: Message::Heartbeat {
                consortium: self.consortium,
                epoch: self.serving.get(&self.consortium).map_or(0, |s| s.epoch),
                released,
                head,
                sent_at: now,
            },
        }
    }

    /// Asks the supervisor who serves this node's consortium. A joined newcomer shows its
    /// relay's announcement with the question, since the supervisor may not know its key
    /// (SPEC §6.1: the relay's own report of the join may have been lost).
    fn discover(&self) -> Effect {
        let message = match self.join_proof() {
            Some(announcement) => Message::Joined { announcement },
            None => Message::Discover {
                consortium: self.consortium,
            },
        };
        Effect::Send {
            to: self.supervisor,
            message,
        }
    }

    /// Handles a message that passed the envelope checks.
    pub fn deliver(&mut self, from: Address, message: Message, now: u64) -> Vec<Effect> {
        let mut effects = Vec::new();
        self.note_heard(from, now);
        let supervisor = from == self.supervisor;
        match message {
            Message::Elected { records } => self.on_elected(from, records, now, &mut effects),
            Message::Ack {
                epoch,
                height,
                hash,
                ..
            } => self.on_ack(from, epoch, height, hash, now, &mut effects),
            // Not taken: this node's idea of its relay is out of date (a lost election
            // message). Ask the supervisor again; the block is resent on the answer.
            Message::NotTaken { .. } => effects.push(self.discover()),
            Message::Submit { block } => self.on_submit(from, block, now, &mut effects),
            Message::Replicate { epoch, block } => {
                self.on_replicate(from, epoch, block, now, &mut effects)
            }
            Message::ReplicateRelay {
                epoch,
                block,
                released,
            } => self.on_replicate_relay(from, epoch, block, released, now, &mut effects),
            Message::Replicated { epoch, hash } => {
                self.on_replicated(from, epoch, hash, now, &mut effects)
            }
            Message::RelayBlock { block } => self.on_relay_block(from, block, now, &mut effects),
            Message::SyncRequest {
                chain,
                from: height,
                have,
            } => self.on_sync_request(from, chain, height, &have, &mut effects),
            Message::SyncBlocks {
                chain,
                blocks,
                head,
            } => self.on_sync_blocks(from, chain, blocks, head, now, &mut effects),
            Message::SealedRead { records, have } => {
                self.on_sealed_read(from, records, &have, now, &mut effects)
            }
            Message::ReadReply {
                epoch,
                common,
                head,
                members,
            } => self.on_read_reply(from, epoch, common, head, members, now, &mut effects),
            Message::Configure {
                records,
                head,
                members,
            } => self.on_configure(from, records, head, members, now, &mut effects),
            Message::CaughtUp { epoch, head } => {
                self.on_caught_up(from, epoch, head, now, &mut effects)
            }
            Message::Activated { epoch, config } if supervisor => {
                self.on_activated(epoch, config, now, &mut effects)
            }
            Message::ActivationRefused { epoch } if supervisor => {
                self.on_activation_refused(epoch, now, &mut effects)
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
            Message::Activated { .. } | Message::ActivationRefused { .. } => {
                effects.push(self.rejected(
                    "unknown_sender",
                    true,
                    format!("activation answer from {from}, not the supervisor"),
                ))
            }
            // The transport's end handles resyncs; one reaching the machine is stray.
            Message::Resync { .. } => {}
            Message::Joined { .. }
            | Message::Heartbeat { .. }
            | Message::Discover { .. }
            | Message::Activate { .. }
            | Message::BackupSilent { .. } => effects.push(self.rejected(
                "misrouted",
                false,
                "supervisor message sent to a member".into(),
            )),
        }
        effects
    }

    // ----- elections -----

    /// Checks election records as a chain signed by the supervisor: each is an election of
    /// `consortium`, each names the one before. Returns the last one, or why not.
    fn check_elections(
        &self,
        consortium: Option<ConsortiumId>,
        records: &[Record],
    ) -> Result<ElectionRecord, &'static str> {
        let supervisor = self.genesis.supervisor;
        let mut previous: Option<crate::crypto::Hash> = None;
        let mut last = None;
        for record in records {
            let RecordBody::Election(election) = &record.content.body else {
                return Err("not an election record");
            };
            if record.content.author != supervisor.address() || record.verify(&supervisor).is_err()
            {
                return Err("election record not signed by the supervisor");
            }
            if consortium.is_some_and(|c| c != election.consortium)
                || last
                    .as_ref()
                    .is_some_and(|l: &ElectionRecord| l.consortium != election.consortium)
            {
                return Err("election records of another consortium");
            }
            if previous.is_some_and(|p| p != election.prev_election) {
                return Err("election records do not chain");
            }
            previous = Some(record.digest());
            last = Some(election.clone());
        }
        last.ok_or("no election record")
    }

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
        let election = match self.check_elections(None, &records) {
            Ok(election) => election,
            Err(why) => {
                effects.push(self.rejected("invalid_election", true, why.into()));
                return;
            }
        };
        let consortium = election.consortium;
        if self
            .serving
            .get(&consortium)
            .is_some_and(|current| current.epoch >= election.epoch)
        {
            return;
        }
        self.serving.insert(
            consortium,
            Serving {
                epoch: election.epoch,
                relay: election.relay,
                backup: election.backup,
            },
        );
        if consortium != self.consortium {
            // An active relay asks the lane's (new) relay for the blocks it lacks: those
            // released before either knew of the other reach it only so.
            if matches!(&self.duty, Duty::Relay(duty) if duty.is_active())
                && election.relay != self.me
            {
                self.ask_lane(consortium, election.relay, now, effects);
            }
            return;
        }
        // Resend the unacknowledged blocks to the (possibly new) relay (D4).
        self.resubmit(now, effects);
        self.reconfigure(&election, records, now, effects);
    }
}

/// Sends a relay block to every other relay and backup this node knows of.
fn broadcast(
    serving: &BTreeMap<ConsortiumId, Serving>,
    me: Address,
    block: &RelayBlock,
    effects: &mut Vec<Effect>,
) {
    let mut recipients: std::collections::BTreeSet<Address> = std::collections::BTreeSet::new();
    for s in serving.values() {
        recipients.insert(s.relay);
        recipients.extend(s.backup);
    }
    recipients.remove(&me);
    // The own consortium's nodes hold the lane by replication and sealed reads only.
    if let Some(own) = serving.get(&block.header.lane) {
        recipients.remove(&own.relay);
        if let Some(backup) = own.backup {
            recipients.remove(&backup);
        }
    }
    if recipients.is_empty() {
        return;
    }
    effects.push(Effect::Broadcast {
        to: recipients.into_iter().collect(),
        message: Message::RelayBlock {
            block: block.clone(),
        },
    });
}

fn committed_event(
    node: Address,
    block: &RelayBlock,
    produced: bool,
    reason: Option<crate::window::FlushReason>,
    now: u64,
) -> Event {
    Event::Committed {
        node,
        lane: block.header.lane,
        height: block.height(),
        hash: block.hash(),
        prev: block.header.prev,
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

/// The event of a relay block of the node's own lane stored in its copy, released or not.
fn held_event(node: Address, block: &RelayBlock, now: u64) -> Event {
    Event::Held {
        node,
        lane: block.header.lane,
        height: block.height(),
        hash: block.hash(),
        prev: block.header.prev,
        epoch: block.header.epoch,
        at: now,
    }
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

/// Other lanes' blocks a backup received lately, with when, kept so that it forwards them
/// again if it takes over: the relay may have failed before forwarding them.
type Received = VecDeque<(u64, RelayBlock)>;
