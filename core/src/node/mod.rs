//! The node state machines (STYLE: "sans-IO core, thin actors").
//!
//! Each machine takes an input (a delivered message, a tick of the clock, a request of the
//! host) and answers with [`Effect`]s, in order: send a message, write to the node's own
//! store, serve a sync request from the store, emit an event. The actors of
//! `ieschain-actors` only carry the effects out. A [`Effect::Persist`] must be durable
//! before any later effect of the same answer is carried out: that is what makes an
//! acknowledgement mean "durable" (SPEC §12 D4, §14 write-all), and a seal mean "sealed".
//!
//! - [`supervisor`]: failure detection, elections, activation, rotation (SPEC §5, §14).
//! - [`member`]: a member's lanes, and the relay and backup duties it takes on when
//!   elected; [`member`]'s `reconfig` module holds the take-over of SPEC §14.

pub mod member;
pub mod supervisor;

use crate::block::{AnyBlock, ConsortiumBlock, PrivateBlock, RelayBlock};
use crate::crypto::Address;
use crate::election::{ElectionReason, LanePosition};
use crate::ids::{ChainId, ConsortiumId};
use crate::message::Message;
use crate::window::{FlushReason, WindowConfig};

/// What a machine asks its actor to do.
// A message may carry a whole relay block inline; effects live only from one machine
// step to its execution, so boxing would cost an allocation per send for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Send `message` to `to` through the transport.
    Send {
        /// Recipient.
        to: Address,
        /// The message.
        message: Message,
    },
    /// Send the one `message` to each of `to`, in order: a relay block to every other
    /// lane's holders, forwarded records to the members of a consortium. The message is
    /// built once and encoded once, whatever the number of recipients (issue 12); each
    /// recipient still gets its own signed envelope.
    Broadcast {
        /// Recipients, in the order to send.
        to: Vec<Address>,
        /// The message.
        message: Message,
    },
    /// Carry out these writes to the node's own store, in order, atomically and durably,
    /// before carrying out any later effect.
    Persist(Vec<StoreWrite>),
    /// Read `chain` from height `from` in the node's store, up to `upto` if given, and send
    /// it to `to` as [`Message::SyncBlocks`].
    ServeSync {
        /// Who asked.
        to: Address,
        /// The chain.
        chain: ChainId,
        /// First height wanted.
        from: u64,
        /// The last height that may be served: a relay lane's released head, when the
        /// asker may not see blocks that were never released (SPEC §14).
        upto: Option<u64>,
    },
    /// Tell the host.
    Emit(Event),
}

/// One write to a node's own store, as part of one atomic [`Effect::Persist`].
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreWrite {
    /// Append the block to the node's copy of its chain.
    Block(AnyBlock),
    /// Drop every block of the node's copy of `chain` above height `keep`: blocks of an
    /// older epoch above a config block's `prev`, which were never released (SPEC §14).
    Truncate {
        /// The chain (a relay lane).
        chain: ChainId,
        /// The last height kept.
        keep: u64,
    },
    /// Persist `sealed = epoch` for the node's own lane: from now on it confirms,
    /// acknowledges and releases nothing for an older epoch (SPEC §14).
    Seal {
        /// The epoch sealed.
        epoch: u64,
    },
}

impl From<AnyBlock> for StoreWrite {
    fn from(block: AnyBlock) -> Self {
        StoreWrite::Block(block)
    }
}

impl From<ConsortiumBlock> for StoreWrite {
    fn from(block: ConsortiumBlock) -> Self {
        StoreWrite::Block(block.into())
    }
}

impl From<RelayBlock> for StoreWrite {
    fn from(block: RelayBlock) -> Self {
        StoreWrite::Block(block.into())
    }
}

impl From<PrivateBlock> for StoreWrite {
    fn from(block: PrivateBlock) -> Self {
        StoreWrite::Block(block.into())
    }
}

/// The federation's timing (SPEC §12 D13), in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Heartbeat period of relay-capable members.
    pub heartbeat_ms: u64,
    /// Missed heartbeats before a node is declared failed.
    pub suspect_after: u32,
    /// A relay's term.
    pub period_ms: u64,
    /// A member closes its open consortium block after this long.
    pub member_max_wait_ms: u64,
    /// The relay window.
    pub window: WindowConfig,
    /// Deliberate bugs, for tests that show the invariant checker catches them; all off in
    /// every product path.
    pub mutations: Mutations,
    /// Who plays which part in the protocols of SPEC §6.
    pub protocols: ProtocolConfig,
}

/// Who plays which part in the operating protocols (SPEC §6): the consortiums by their
/// paper roles, the grid's approval quorum, and the protocols' deadline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProtocolConfig {
    /// The source consortium, which offers power.
    pub source: Option<ConsortiumId>,
    /// The grid consortium, which approves power trades.
    pub grid: Option<ConsortiumId>,
    /// The service consortium, which buys data.
    pub service: Option<ConsortiumId>,
    /// The load consortium, which buys power and sells data.
    pub load: Option<ConsortiumId>,
    /// Grid members whose approval a power trade needs; 0 means every one of them.
    pub grid_quorum: u32,
    /// How long a protocol run may take before it fails, ms; 0 means the default, 10 s.
    pub deadline_ms: u64,
}

impl ProtocolConfig {
    /// The protocols' deadline, ms.
    pub fn deadline(&self) -> u64 {
        if self.deadline_ms == 0 {
            10_000
        } else {
            self.deadline_ms
        }
    }
}

/// Deliberate bugs, for tests that show the invariant checker catches them (the simulation
/// issue's "broken variants"); all off in every product path. Each switch reintroduces one
/// bug at the exact place the protocol guards against it:
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mutations {
    /// No fencing by seals: a relay acknowledges and releases, and a backup confirms, for
    /// an epoch below the one it is sealed at (fenced writes, S3).
    pub no_fencing: bool,
    /// The relay acknowledges a consortium block on its own sync even when it has a backup,
    /// without waiting for the backup's confirmation (S3 (D4)).
    pub ack_before_replication: bool,
    /// The supervisor draws relay and backup with a seed that is not the chain's (it mixes
    /// in its own record seq), so the election does not recompute (S4, S5).
    pub unseeded_election: bool,
    /// A lost backup is only swapped, as before SPEC §14: the supervisor counts the new
    /// configuration as active at once, and the relay goes on with the new backup without a
    /// take-over (no seal, no catch-up, no activation). A relay that missed the election
    /// goes on acknowledging with the old backup (completeness at take-over, S3).
    pub backup_lost_keeps_epoch: bool,
    /// A node answering a sealed read does not seal (SPEC §14's model, `noseal`): the old
    /// configuration goes on acknowledging what the read missed (fenced writes, S3).
    pub no_seal: bool,
    /// The supervisor draws on the lane head a backup reports, which may be a block its
    /// relay never released (released head, S4).
    pub head_from_backup: bool,
    /// The relay releases its config block and acknowledges once its backup confirms,
    /// without waiting for the supervisor's activation (activation order).
    pub release_before_activation: bool,
}

impl Timing {
    /// How long without a heartbeat before the supervisor declares a node failed.
    pub fn suspect_ms(&self) -> u64 {
        self.suspect_after as u64 * self.heartbeat_ms
    }

    /// How long a node waits for an answer before it asks again (a sealed read, a
    /// catch-up, an activation, a resent block): long enough for a round trip with a synced
    /// write, short next to a failover. Timeouts decide only when to ask again, never what
    /// data survives (SPEC §14).
    pub fn retry_ms(&self) -> u64 {
        2 * self.heartbeat_ms
    }

    /// How long a take-over step waits for its answer before it asks again (a sealed read,
    /// a catch-up, an activation): half a heartbeat, so that a lost message costs the
    /// failover little next to its bound (SPEC §12 D10). The messages are small; a catch-up
    /// asks again only for what has not come.
    pub fn takeover_retry_ms(&self) -> u64 {
        (self.heartbeat_ms / 2).max(1)
    }
}

/// A record as the latency measurements see it: who, which, created when, how urgent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct RecordStamp {
    /// Author.
    pub author: Address,
    /// Seq.
    pub seq: u64,
    /// Creation time, ms.
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::serde_json_form::rfc3339_ms")
    )]
    pub created_at: u64,
    /// Whether its kind is urgent.
    pub urgent: bool,
}

/// Which operating protocol of SPEC §6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Protocol {
    /// §6.1: a newcomer joins a consortium.
    Join,
    /// §6.2: urgent direct power purchase, load from source, approved by grid.
    PowerPurchase,
    /// §6.3: non-urgent data trade, service buys load's data.
    DataTrade,
}

impl Protocol {
    /// A stable lowercase name.
    pub const fn name(self) -> &'static str {
        match self {
            Protocol::Join => "join",
            Protocol::PowerPurchase => "power_purchase",
            Protocol::DataTrade => "data_trade",
        }
    }
}

/// Where a protocol step went.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum StepTarget {
    /// One node.
    Node(Address),
    /// Every member of a consortium (through its relay).
    Consortium(ConsortiumId),
    /// The relay chain: every relay.
    Relays,
}

/// What the federation tells its host (SPEC §10, "typed events").
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(tag = "event", rename_all = "snake_case"))]
pub enum Event {
    /// A relay block is released: its relay released it (`produced`, SPEC §14: durable at
    /// relay and backup, in an active configuration), or a holder of another lane stored
    /// it from a broadcast or a sync of released blocks.
    Committed {
        /// The node.
        node: Address,
        /// The relay lane.
        lane: ConsortiumId,
        /// Height.
        height: u64,
        /// The block's hash.
        hash: crate::crypto::Hash,
        /// Its `prev`.
        prev: crate::crypto::Hash,
        /// Epoch.
        epoch: u64,
        /// Whether this node produced it.
        produced: bool,
        /// Why the producer sent it.
        reason: Option<FlushReason>,
        /// Consortium blocks included.
        blocks: u32,
        /// How many of them were urgent.
        urgent_blocks: u32,
        /// The records of the included blocks.
        records: Vec<RecordStamp>,
        /// When, ms.
        #[cfg_attr(
            feature = "serde",
            serde(serialize_with = "crate::serde_json_form::rfc3339_ms")
        )]
        at: u64,
    },
    /// A member's block was acknowledged by its relay.
    Acked {
        /// The member.
        member: Address,
        /// Its consortium.
        consortium: ConsortiumId,
        /// Height in its lane.
        height: u64,
        /// The relay that acknowledged it.
        relay: Address,
        /// The relay's epoch, as its acknowledgement says.
        epoch: u64,
        /// Records in the block.
        records: u32,
        /// The seq of its first record.
        first_seq: u64,
        /// The seq of its last record.
        last_seq: u64,
        /// Whether the block goes on the relay chain (a record's audience reaches outside
        /// the consortium, D4).
        external: bool,
        /// When, ms.
        #[cfg_attr(
            feature = "serde",
            serde(serialize_with = "crate::serde_json_form::rfc3339_ms")
        )]
        at: u64,
    },
    /// A member sealed a block of its private chain (its meter readings) and persisted
    /// it: those records are as durable as they will be.
    Recorded {
        /// The member.
        member: Address,
        /// Height in its private chain.
        height: u64,
        /// The seq of its first record.
        first_seq: u64,
        /// The seq of its last record.
        last_seq: u64,
        /// When, ms.
        #[cfg_attr(
            feature = "serde",
            serde(serialize_with = "crate::serde_json_form::rfc3339_ms")
        )]
        at: u64,
    },
    /// The supervisor elected a relay: a new configuration (SPEC §14).
    Elected {
        /// Consortium.
        consortium: ConsortiumId,
        /// New epoch.
        epoch: u64,
        /// The configuration it takes over from: the last active one (0: none).
        source: u64,
        /// The lane head the draw used: the source's released head.
        lane_head: LanePosition,
        /// Why.
        reason: ElectionReason,
        /// The relay.
        relay: Address,
        /// The backup.
        backup: Option<Address>,
        /// When, ms.
        #[cfg_attr(
            feature = "serde",
            serde(serialize_with = "crate::serde_json_form::rfc3339_ms")
        )]
        at: u64,
    },
    /// A new relay released its config block (SPEC §14): the take-over is complete.
    TookOver {
        /// Consortium.
        consortium: ConsortiumId,
        /// Epoch.
        epoch: u64,
        /// The relay.
        relay: Address,
        /// The config block.
        config: LanePosition,
        /// Its `prev`: the head of the lane as the relay read it from the source.
        prev: LanePosition,
        /// When, ms.
        #[cfg_attr(
            feature = "serde",
            serde(serialize_with = "crate::serde_json_form::rfc3339_ms")
        )]
        at: u64,
    },
    /// A relay or backup stored a block of its own consortium's relay lane that may not be
    /// released yet: a relay's block before its backup confirms it, a backup's replicated
    /// block, or a block read or caught up at a take-over (SPEC §14).
    Held {
        /// The node.
        node: Address,
        /// The lane.
        lane: ConsortiumId,
        /// Height.
        height: u64,
        /// Hash.
        hash: crate::crypto::Hash,
        /// Its `prev`.
        prev: crate::crypto::Hash,
        /// Its epoch.
        epoch: u64,
        /// When, ms.
        #[cfg_attr(
            feature = "serde",
            serde(serialize_with = "crate::serde_json_form::rfc3339_ms")
        )]
        at: u64,
    },
    /// A node dropped the blocks of its copy of a relay lane above `keep`: blocks of an
    /// older epoch above a config block's `prev`, never released (SPEC §14).
    Truncated {
        /// The node.
        node: Address,
        /// The lane.
        lane: ConsortiumId,
        /// The last height kept.
        keep: u64,
        /// When, ms.
        #[cfg_attr(
            feature = "serde",
            serde(serialize_with = "crate::serde_json_form::rfc3339_ms")
        )]
        at: u64,
    },
    /// A node answered a sealed read of the relay of `epoch` (SPEC §14): it is sealed at
    /// `epoch` from then on.
    Read {
        /// The node.
        node: Address,
        /// Its lane.
        lane: ConsortiumId,
        /// The reading configuration's epoch.
        epoch: u64,
        /// Its relay.
        relay: Address,
        /// When, ms.
        #[cfg_attr(
            feature = "serde",
            serde(serialize_with = "crate::serde_json_form::rfc3339_ms")
        )]
        at: u64,
    },
    /// A node persisted `sealed = epoch` for its lane (SPEC §14).
    Sealed {
        /// The node.
        node: Address,
        /// Its lane.
        lane: ConsortiumId,
        /// The epoch sealed.
        epoch: u64,
        /// When, ms.
        #[cfg_attr(
            feature = "serde",
            serde(serialize_with = "crate::serde_json_form::rfc3339_ms")
        )]
        at: u64,
    },
    /// The supervisor recorded a configuration as active (SPEC §14).
    Activated {
        /// The lane.
        lane: ConsortiumId,
        /// The epoch.
        epoch: u64,
        /// Its relay.
        relay: Address,
        /// Its config block.
        config: LanePosition,
        /// When, ms.
        #[cfg_attr(
            feature = "serde",
            serde(serialize_with = "crate::serde_json_form::rfc3339_ms")
        )]
        at: u64,
    },
    /// A backup confirmed to its relay that it holds what the relay sent for `epoch`.
    Confirmed {
        /// The backup.
        node: Address,
        /// Its lane.
        lane: ConsortiumId,
        /// The epoch confirmed for.
        epoch: u64,
        /// When, ms.
        #[cfg_attr(
            feature = "serde",
            serde(serialize_with = "crate::serde_json_form::rfc3339_ms")
        )]
        at: u64,
    },
    /// A relay acknowledged a member's block (the member hears it as [`Event::Acked`]).
    Acknowledged {
        /// The relay.
        relay: Address,
        /// Its lane.
        lane: ConsortiumId,
        /// Its epoch.
        epoch: u64,
        /// The block's author.
        author: Address,
        /// Its height.
        height: u64,
        /// When, ms.
        #[cfg_attr(
            feature = "serde",
            serde(serialize_with = "crate::serde_json_form::rfc3339_ms")
        )]
        at: u64,
    },
    /// A new relay cannot take its lane over: no member of the source configuration
    /// answers its sealed read. The lane waits for one of them to come back (SPEC §14).
    Stalled {
        /// The lane.
        lane: ConsortiumId,
        /// The waiting configuration's epoch.
        epoch: u64,
        /// Its relay.
        relay: Address,
        /// The source members it waits for.
        waiting_for: Vec<Address>,
        /// When, ms.
        #[cfg_attr(
            feature = "serde",
            serde(serialize_with = "crate::serde_json_form::rfc3339_ms")
        )]
        at: u64,
    },
    /// A relay or backup stored a member's consortium block in its copy of the member's
    /// lane (SPEC §12 D1): submitted to it, replicated to it, or fetched by a sync. (The
    /// author's own blocks are in its own lane, stored when written, and not reported.)
    Stored {
        /// The relay or backup.
        node: Address,
        /// The block's author.
        author: Address,
        /// Its height in the author's lane.
        height: u64,
        /// The epoch of the node's consortium it served under (0: none known).
        epoch: u64,
        /// When, ms.
        #[cfg_attr(
            feature = "serde",
            serde(serialize_with = "crate::serde_json_form::rfc3339_ms")
        )]
        at: u64,
    },
    /// No candidate is left: the consortium is cut off from the relay chain (SPEC §5).
    CutOff {
        /// Consortium.
        consortium: ConsortiumId,
        /// When, ms.
        #[cfg_attr(
            feature = "serde",
            serde(serialize_with = "crate::serde_json_form::rfc3339_ms")
        )]
        at: u64,
    },
    /// A node took one step of a protocol run (SPEC §6): for traces and examples.
    Step {
        /// The protocol.
        protocol: Protocol,
        /// The run: the newcomer's registry leaf for a join, the offer's digest for a
        /// trade.
        run: crate::crypto::Hash,
        /// The step's number in SPEC §6.
        step: u8,
        /// Who took it.
        from: Address,
        /// Where it went.
        to: StepTarget,
        /// What it was, in a few words.
        what: String,
        /// When, ms.
        #[cfg_attr(
            feature = "serde",
            serde(serialize_with = "crate::serde_json_form::rfc3339_ms")
        )]
        at: u64,
    },
    /// A newcomer holds the receipts of every listed member: it is registered and writes
    /// its lane (SPEC §6.1 step 7).
    JoinDone {
        /// The newcomer.
        newcomer: Address,
        /// Its consortium.
        consortium: ConsortiumId,
        /// Receipts it collected.
        receipts: u32,
        /// When, ms.
        #[cfg_attr(
            feature = "serde",
            serde(serialize_with = "crate::serde_json_form::rfc3339_ms")
        )]
        at: u64,
    },
    /// A join ended without success: refused, or past its deadline.
    JoinFailed {
        /// The newcomer.
        newcomer: Address,
        /// Its consortium.
        consortium: ConsortiumId,
        /// Why, naming the member or the check that failed.
        reason: String,
        /// When, ms.
        #[cfg_attr(
            feature = "serde",
            serde(serialize_with = "crate::serde_json_form::rfc3339_ms")
        )]
        at: u64,
    },
    /// A relay committed a power settlement to the relay chain (SPEC §6.2 step 7).
    TradeSettled {
        /// Trade id, hash(offer, bid).
        trade: crate::crypto::Hash,
        /// The offer.
        offer: crate::crypto::Hash,
        /// Seller.
        seller: Address,
        /// Buyer.
        buyer: Address,
        /// Energy, Wh.
        wh: u64,
        /// Amount paid.
        amount: u64,
        /// When, ms.
        #[cfg_attr(
            feature = "serde",
            serde(serialize_with = "crate::serde_json_form::rfc3339_ms")
        )]
        at: u64,
    },
    /// A power trade will not settle: the offer is exhausted, or the grid rejected it.
    TradeRefused {
        /// Trade id.
        trade: crate::crypto::Hash,
        /// The offer.
        offer: crate::crypto::Hash,
        /// The buyer whose bid it was.
        buyer: Address,
        /// Who refused: the seller or the grid relay.
        by: Address,
        /// Why.
        reason: String,
        /// When, ms.
        #[cfg_attr(
            feature = "serde",
            serde(serialize_with = "crate::serde_json_form::rfc3339_ms")
        )]
        at: u64,
    },
    /// A data buyer received data matching the digest on the chain (SPEC §6.3 step 6).
    DataDelivered {
        /// Trade id, hash(offer, purchase).
        trade: crate::crypto::Hash,
        /// The offer.
        offer: crate::crypto::Hash,
        /// Seller.
        seller: Address,
        /// Buyer.
        buyer: Address,
        /// Bytes delivered.
        bytes: u64,
        /// When, ms.
        #[cfg_attr(
            feature = "serde",
            serde(serialize_with = "crate::serde_json_form::rfc3339_ms")
        )]
        at: u64,
    },
    /// A data buyer received data that does not match: it refused it and recorded a dispute.
    DataDisputed {
        /// Trade id.
        trade: crate::crypto::Hash,
        /// The offer.
        offer: crate::crypto::Hash,
        /// Seller.
        seller: Address,
        /// Buyer.
        buyer: Address,
        /// When, ms.
        #[cfg_attr(
            feature = "serde",
            serde(serialize_with = "crate::serde_json_form::rfc3339_ms")
        )]
        at: u64,
    },
    /// A node rejected something it received, and counted it.
    Rejected {
        /// The node.
        node: Address,
        /// A short kind, for counters: `bad_signature`, `unknown_sender`, `replay`,
        /// `stale_epoch`, `invalid_block`, ….
        kind: &'static str,
        /// Whether it counts as hostile (SPEC §12 D9).
        hostile: bool,
        /// What exactly.
        detail: String,
    },
}

impl Event {
    /// When it happened, ms (the node's clock); `None` for a rejection, which carries no
    /// time.
    pub fn at(&self) -> Option<u64> {
        match self {
            Event::Committed { at, .. }
            | Event::Acked { at, .. }
            | Event::Recorded { at, .. }
            | Event::Elected { at, .. }
            | Event::TookOver { at, .. }
            | Event::Held { at, .. }
            | Event::Truncated { at, .. }
            | Event::Read { at, .. }
            | Event::Sealed { at, .. }
            | Event::Activated { at, .. }
            | Event::Confirmed { at, .. }
            | Event::Acknowledged { at, .. }
            | Event::Stalled { at, .. }
            | Event::Stored { at, .. }
            | Event::CutOff { at, .. }
            | Event::Step { at, .. }
            | Event::JoinDone { at, .. }
            | Event::JoinFailed { at, .. }
            | Event::TradeSettled { at, .. }
            | Event::TradeRefused { at, .. }
            | Event::DataDelivered { at, .. }
            | Event::DataDisputed { at, .. } => Some(*at),
            Event::Rejected { .. } => None,
        }
    }
}
