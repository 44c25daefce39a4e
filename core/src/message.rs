//! The wire vocabulary between nodes (SPEC §8): every message one node sends another, and
//! the signed envelope that carries it.
//!
//! Messages travel only as [`Envelope`]s: the sender's address, the recipient, the sender's
//! restart count (its *incarnation*, SPEC §12 D9), a per-incarnation sequence number, the
//! encoded [`Message`], and the sender's signature over all of it. The receiver checks an
//! envelope with an [`Inbox`] before it decodes the payload: a bad signature, an unknown
//! sender, an old incarnation or a replayed sequence number is rejected and counted, never
//! a crash. An exact duplicate (a network duplicate) is dropped quietly.

use std::collections::BTreeMap;
use std::sync::Arc;

use bincode::{Decode, Encode};
use thiserror::Error;

use crate::block::{AnyBlock, ConsortiumBlock, RelayBlock};
use crate::codec::{self, CodecError};
use crate::crypto::{Address, Domain, Hash, Keypair, PublicKey, Signature};
use crate::election::LanePosition;
use crate::ids::{ChainId, ConsortiumId};
use crate::merkle::{self, MerkleProof};
use crate::record::Record;
use crate::registry::RegistryEntry;

/// Every message between nodes. Each variant's doc says who sends it to whom, and when.
// A message lives from its decoding to its handling, once; boxing the records of the join
// messages would cost an allocation on every message for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum Message {
    /// member → its relay: a new block of the member's consortium lane. Resent to a new
    /// relay until acknowledged (SPEC §12 D4).
    Submit {
        /// The block.
        block: ConsortiumBlock,
    },
    /// relay → member: the block is durable at the relay and at the backup of the relay's
    /// configuration, which is active (D4, SPEC §14 write-all). Cumulative.
    Ack {
        /// The relay's epoch.
        epoch: u64,
        /// The block's author.
        author: Address,
        /// Its height in the author's lane.
        height: u64,
        /// Its hash.
        hash: Hash,
    },
    /// relay → backup: a consortium block to store before the relay acknowledges it.
    Replicate {
        /// The relay's epoch.
        epoch: u64,
        /// The block.
        block: ConsortiumBlock,
    },
    /// relay → backup: a relay block to store before the relay releases it.
    ReplicateRelay {
        /// The relay's epoch.
        epoch: u64,
        /// The block.
        block: RelayBlock,
        /// The relay's released height: the backup serves its copy of the lane to other
        /// lanes only up to it.
        released: u64,
    },
    /// backup → relay: the replicated block is durable at the backup.
    Replicated {
        /// The relay's epoch the backup serves.
        epoch: u64,
        /// Hash of the block.
        hash: Hash,
    },
    /// relay → every other relay and backup: a released block of the sender's relay lane.
    RelayBlock {
        /// The block.
        block: RelayBlock,
    },
    /// any holder → a holder: send me `chain` from height `from` on (lane sync, backup
    /// catch-up, gap repair). For a relay lane `have` names positions of the asker's copy
    /// (head first, then further and further below): the answer starts just above the
    /// highest of them the answering copy holds too (SPEC §14).
    SyncRequest {
        /// The chain.
        chain: ChainId,
        /// First height wanted.
        from: u64,
        /// Positions of the asker's copy of a relay lane; empty otherwise.
        have: Vec<LanePosition>,
    },
    /// reply to [`Message::SyncRequest`]: blocks of the chain, ascending, and the sender's head.
    SyncBlocks {
        /// The chain.
        chain: ChainId,
        /// The blocks (at most a page).
        blocks: Vec<AnyBlock>,
        /// The sender's head height of the chain (as far as it may serve it).
        head: u64,
    },
    /// relay → members of its consortium: records from elsewhere addressed to them.
    Forward {
        /// The relay lane the records arrived on.
        lane: ConsortiumId,
        /// The relay block's height.
        height: u64,
        /// The records.
        records: Vec<Record>,
    },
    /// relay-capable member → supervisor, every `heartbeat_interval` (D11).
    Heartbeat {
        /// The member's consortium.
        consortium: ConsortiumId,
        /// The newest epoch the member knows.
        epoch: u64,
        /// The relay's released head, with the epoch it was released in: only the relay of
        /// an active configuration reports one (SPEC §14).
        released: Option<(u64, LanePosition)>,
        /// The head of the member's copy of its lane, released or not (for the record).
        head: LanePosition,
        /// When it was sent, by the sender's clock.
        sent_at: u64,
    },
    /// supervisor → the consortium's members and every relay and backup: an election.
    /// It carries the consortium's election records from its source configuration's on,
    /// oldest first, the new one last (SPEC §14: a configuration that never activated is
    /// skipped, and the next config block carries its record too).
    Elected {
        /// Election records signed by the supervisor, oldest first; the last is the new one.
        records: Vec<Record>,
    },
    /// member → supervisor, at start and after a restart: who serves my consortium? The
    /// supervisor answers with [`Message::Elected`].
    Discover {
        /// The member's consortium.
        consortium: ConsortiumId,
    },
    /// relay → member: a submitted block was not taken (not the relay, …); the member asks
    /// the supervisor who serves.
    NotTaken {
        /// The block's height.
        height: u64,
        /// Why.
        why: String,
    },
    /// new relay → a member of its source configuration (SPEC §14 take-over step 1): seal
    /// yourself at my epoch and tell me what you hold. `records` are the election records
    /// from the source's on, the last naming the sender relay of a newer epoch; `have`
    /// names positions of the sender's copy of the lane.
    SealedRead {
        /// Election records, supervisor-signed, oldest first.
        records: Vec<Record>,
        /// Positions of the asker's copy of the relay lane.
        have: Vec<LanePosition>,
    },
    /// source member → new relay: sealed at `epoch`; this is my copy: the relay lane up to
    /// `head` (blocks of epochs above the source's left out), sharing every block up to
    /// `common` with the asker's, and each member's consortium lane up to its height. The
    /// asker fetches the blocks with [`Message::SyncRequest`]s.
    ReadReply {
        /// The epoch sealed.
        epoch: u64,
        /// The highest of the asker's positions this copy holds.
        common: u64,
        /// The head of this copy of the relay lane, as the source holds it.
        head: LanePosition,
        /// Each member's consortium lane head in this copy.
        members: Vec<(Address, u64)>,
    },
    /// relay → its backup (SPEC §14 take-over step 3, and after a restart): catch up with
    /// my copy: the relay lane up to `head` and each member's lane up to its height, then
    /// confirm with [`Message::CaughtUp`]. `records` are the election records from the
    /// source's on, the last naming the sender relay and the receiver backup.
    Configure {
        /// Election records, supervisor-signed, oldest first.
        records: Vec<Record>,
        /// The relay's head of its lane (its config block, on a take-over).
        head: LanePosition,
        /// Each member's consortium lane head in the relay's copy.
        members: Vec<(Address, u64)>,
    },
    /// backup → relay: I hold your lane up to `head` and the member lanes you named, for
    /// `epoch`.
    CaughtUp {
        /// The relay's epoch.
        epoch: u64,
        /// The relay-lane head caught up to.
        head: LanePosition,
    },
    /// relay → supervisor: my config block is durable at my backup (or at me, with none);
    /// record my configuration as active (SPEC §14 step 3).
    Activate {
        /// The relay's epoch.
        epoch: u64,
        /// Its config block.
        config: LanePosition,
    },
    /// supervisor → relay: the configuration is active, with this config block; release it
    /// and begin to acknowledge.
    Activated {
        /// The epoch.
        epoch: u64,
        /// The config block the supervisor recorded.
        config: LanePosition,
    },
    /// supervisor → relay: a newer configuration exists; stop, and drop the config block.
    ActivationRefused {
        /// The epoch refused.
        epoch: u64,
    },
    /// relay → supervisor: my backup, alive by its heartbeats, does not confirm; replace it.
    BackupSilent {
        /// The relay's epoch.
        epoch: u64,
        /// The backup.
        backup: Address,
    },
    /// newcomer → any member of the consortium it joins (SPEC §6.1 step 1): who is your
    /// relay? The newcomer is not registered yet, so its envelope is checked against `key`,
    /// whose address must be the sender's (SPEC §12 D9: join messages only).
    JoinIntent {
        /// The newcomer's key.
        key: PublicKey,
    },
    /// member → newcomer: the consortium's relay, as the member knows it.
    JoinRelay {
        /// The relay.
        relay: Address,
    },
    /// newcomer → relay (step 2): register me. The envelope is checked against
    /// `entry.public_key`. The credential is the admission key's signature over
    /// [`credential_digest`] of the entry.
    JoinRequest {
        /// The newcomer's registry entry.
        entry: RegistryEntry,
        /// The admission credential.
        credential: Signature,
    },
    /// relay → newcomer (step 3): registered. The relay's signed announcement, and the
    /// members it considers alive, whose receipts the newcomer needs (SPEC §12 D11).
    JoinAccepted {
        /// The `JoinAnnouncement` record, signed by the relay.
        announcement: Record,
        /// The members whose receipts complete the join, ascending.
        members: Vec<Address>,
    },
    /// relay → newcomer: not registered, and why.
    JoinRefused {
        /// Why, in one line.
        reason: String,
    },
    /// newcomer → each listed member (step 5): the relay's announcement and the newcomer's
    /// signed application. Checked against the announced key.
    JoinApply {
        /// The relay's `JoinAnnouncement` record.
        announcement: Record,
        /// The newcomer's `JoinApplication` record.
        application: Record,
    },
    /// member → newcomer (step 6): a signed receipt of the application.
    JoinReceipted {
        /// The member's `JoinReceipt` record.
        receipt: Record,
    },
    /// relay → supervisor: a newcomer is registered, so that elections reach it. Also
    /// newcomer → supervisor, in place of [`Message::Discover`] while the supervisor may not
    /// know its key (the relay's message was lost): the relay's signed announcement is the
    /// proof, and the answer is [`Message::Elected`].
    Joined {
        /// The relay's `JoinAnnouncement` record.
        announcement: Record,
    },
    /// any node → a peer whose envelopes it keeps refusing as replays or as from an old
    /// incarnation: I have seen your `incarnation` up to `seq`; send above it. The peer
    /// moves its incarnation or its sequence past it, so that two live nodes never refuse
    /// each other for good (SPEC §12 D9). Handled by the transport's end, not the machine.
    Resync {
        /// The newest incarnation of the peer this node has seen.
        incarnation: u32,
        /// The highest seq of it this node has seen.
        seq: u64,
    },
    /// buyer → seller (power purchase step 7): the buyer's countersignature over the
    /// settlement body, once the grid approved the trade. Resent until the settlement
    /// arrives.
    Countersign {
        /// The trade.
        trade: Hash,
        /// The buyer's signature over [`crate::record::settlement_digest`].
        signature: Signature,
    },
    /// seller → its relay → the buyer's relay → buyer (data trade step 6): the data sold.
    DataDelivery {
        /// The trade.
        trade: Hash,
        /// The seller.
        seller: Address,
        /// The buyer.
        buyer: Address,
        /// The data.
        data: Vec<u8>,
    },
    /// buyer → seller: the delivery arrived (accepted or disputed); stop resending.
    DataReceived {
        /// The trade.
        trade: Hash,
    },
}

/// The digest an admission key signs to admit `entry` (SPEC §6.1 step 2): its key, name and
/// role.
pub fn credential_digest(entry: &RegistryEntry) -> Hash {
    Hash::of(
        Domain::Credential,
        &[
            &entry.public_key.0,
            &codec::encode(&entry.name),
            &codec::encode(&entry.role),
        ],
    )
}

impl Message {
    /// A short name, for logs and counters.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Submit { .. } => "submit",
            Message::Ack { .. } => "ack",
            Message::Replicate { .. } => "replicate",
            Message::ReplicateRelay { .. } => "replicate_relay",
            Message::Replicated { .. } => "replicated",
            Message::RelayBlock { .. } => "relay_block",
            Message::SyncRequest { .. } => "sync_request",
            Message::SyncBlocks { .. } => "sync_blocks",
            Message::Forward { .. } => "forward",
            Message::Heartbeat { .. } => "heartbeat",
            Message::Elected { .. } => "elected",
            Message::Discover { .. } => "discover",
            Message::NotTaken { .. } => "not_taken",
            Message::SealedRead { .. } => "sealed_read",
            Message::ReadReply { .. } => "read_reply",
            Message::Configure { .. } => "configure",
            Message::CaughtUp { .. } => "caught_up",
            Message::Activate { .. } => "activate",
            Message::Activated { .. } => "activated",
            Message::ActivationRefused { .. } => "activation_refused",
            Message::BackupSilent { .. } => "backup_silent",
            Message::Resync { .. } => "resync",
            Message::JoinIntent { .. } => "join_intent",
            Message::JoinRelay { .. } => "join_relay",
            Message::JoinRequest { .. } => "join_request",
            Message::JoinAccepted { .. } => "join_accepted",
            Message::JoinRefused { .. } => "join_refused",
            Message::JoinApply { .. } => "join_apply",
            Message::JoinReceipted { .. } => "join_receipted",
            Message::Joined { .. } => "joined",
            Message::Countersign { .. } => "countersign",
            Message::DataDelivery { .. } => "data_delivery",
            Message::DataReceived { .. } => "data_received",
        }
    }

    /// Which traffic class a networked transport carries this message in (SPEC §8): the
    /// messages that decide who serves and when a block is durable go ahead of the ones
    /// that carry blocks in bulk, so that a heartbeat never waits behind a sync.
    ///
    /// Replication and the configuration block are control: they sit on the path of every
    /// acknowledgement, and a backup must see `Configure` before the replication it
    /// orders. What a class does not order, the receiver's replay window absorbs.
    pub fn traffic(&self) -> Traffic {
        match self {
            Message::Submit { .. }
            | Message::RelayBlock { .. }
            | Message::SyncRequest { .. }
            | Message::SyncBlocks { .. }
            | Message::Forward { .. }
            | Message::ReadReply { .. }
            | Message::DataDelivery { .. } => Traffic::Bulk,
            Message::Ack { .. }
            | Message::Replicate { .. }
            | Message::ReplicateRelay { .. }
            | Message::Replicated { .. }
            | Message::Heartbeat { .. }
            | Message::Elected { .. }
            | Message::Discover { .. }
            | Message::NotTaken { .. }
            | Message::SealedRead { .. }
            | Message::Configure { .. }
            | Message::CaughtUp { .. }
            | Message::Activate { .. }
            | Message::Activated { .. }
            | Message::ActivationRefused { .. }
            | Message::BackupSilent { .. }
            | Message::Resync { .. }
            | Message::JoinIntent { .. }
            | Message::JoinRelay { .. }
            | Message::JoinRequest { .. }
            | Message::JoinAccepted { .. }
            | Message::JoinRefused { .. }
            | Message::JoinApply { .. }
            | Message::JoinReceipted { .. }
            | Message::Joined { .. }
            | Message::Countersign { .. }
            | Message::DataReceived { .. } => Traffic::Control,
        }
    }

    /// The key an unregistered sender may be checked against: join messages carry the
    /// newcomer's own key (SPEC §12 D9). `None` for every other message.
    pub fn join_key(&self) -> Option<PublicKey> {
        match self {
            Message::JoinIntent { key } => Some(*key),
            Message::JoinRequest { entry, .. } => Some(entry.public_key),
            Message::JoinApply { application, .. } => match &application.content.body {
                crate::record::RecordBody::JoinApplication { entry } => Some(entry.public_key),
                _ => None,
            },
            // A joined newcomer shows the supervisor its relay's announcement.
            Message::Joined { announcement } => match &announcement.content.body {
                crate::record::RecordBody::JoinAnnouncement { entry } => Some(entry.public_key),
                _ => None,
            },
            _ => None,
        }
    }
}

/// Whether each [`Message`] variant, by its index in the enum, is control traffic. A
/// property test (`core/tests/codec.rs`) holds it to [`Message::traffic`] for every variant.
const CONTROL_TAGS: [bool; 33] = [
    false, // Submit
    true,  // Ack
    true,  // Replicate
    true,  // ReplicateRelay
    true,  // Replicated
    false, // RelayBlock
    false, // SyncRequest
    false, // SyncBlocks
    false, // Forward
    true,  // Heartbeat
    true,  // Elected
    true,  // Discover
    true,  // NotTaken
    true,  // SealedRead
    false, // ReadReply
    true,  // Configure
    true,  // CaughtUp
    true,  // Activate
    true,  // Activated
    true,  // ActivationRefused
    true,  // BackupSilent
    true,  // JoinIntent
    true,  // JoinRelay
    true,  // JoinRequest
    true,  // JoinAccepted
    true,  // JoinRefused
    true,  // JoinApply
    true,  // JoinReceipted
    true,  // Joined
    true,  // Resync
    true,  // Countersign
    false, // DataDelivery
    true,  // DataReceived
];

/// A message's traffic class ([`Message::traffic`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Traffic {
    /// Elections, heartbeats, activations, acknowledgements and replication.
    Control,
    /// Blocks submitted, broadcast, forwarded and synced.
    Bulk,
}

impl Traffic {
    /// The class of an encoded [`Message`], read from its variant tag without decoding the
    /// rest: a transport classes every envelope it sends. Bytes that do not start with a
    /// known tag are bulk.
    pub fn of_encoded(payload: &[u8]) -> Traffic {
        // The codec writes an enum's variant index first, as a varint: one byte below 251.
        match payload.first().copied().map(u32::from) {
            Some(tag) if tag < 251 => {
                CONTROL_TAGS
                    .get(tag as usize)
                    .map_or(Traffic::Bulk, |control| {
                        if *control {
                            Traffic::Control
                        } else {
                            Traffic::Bulk
                        }
                    })
            }
            _ => Traffic::Bulk,
        }
    }
}

/// The signed part of an envelope.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct EnvelopeHeader {
    /// The sender.
    pub from: Address,
    /// The recipient.
    pub to: Address,
    /// The sender's restart count.
    pub incarnation: u32,
    /// Per (sender, incarnation, recipient), strictly increasing.
    pub seq: u64,
}

/// A signed message in transit.
///
/// The signature covers the envelope's *leaf*, the hash of its header and of its
/// payload's hash. An envelope sent alone signs its leaf. The
/// envelopes a node sends at one turn (a broadcast's, or all that one message made it
/// send) are signed together: their leaves form a Merkle tree, the sender signs its root
/// once, and each envelope carries the path from its own leaf to that root (issue 12: a
/// relay forwarding to a consortium of 2,500 members signed 2,500 times, and its members
/// checked 2,500 different signatures). Each envelope still names one recipient, one
/// sequence number and one payload, so what a recipient accepts, refuses or takes for a
/// replay is the same either way; co-located recipients of one batch check its one
/// signature once between them (the shared memo).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Envelope {
    /// Sender, recipient, incarnation, sequence.
    pub header: EnvelopeHeader,
    /// The encoded [`Message`], shared: a broadcast's envelopes hold one copy of it
    /// between them, however many recipients (issue 12). Encoded as a byte vector.
    pub payload: Arc<[u8]>,
    /// For an envelope signed in a batch: the path from its leaf to the root the sender
    /// signed. `None` for an envelope signed alone. Its index and leaf count are the
    /// sender's word and need not be checked: only the leaf, which the receiver computes,
    /// says what was signed.
    pub proof: Option<MerkleProof>,
    /// The sender's signature over [`Envelope::digest`].
    pub signature: Signature,
}

impl Envelope {
    /// Encodes and signs `message` from `key` to `to`.
    pub fn seal(
        key: &Keypair,
        to: Address,
        incarnation: u32,
        seq: u64,
        message: &Message,
    ) -> Envelope {
        Self::seal_encoded(key, to, incarnation, seq, codec::encode(message).into())
    }

    /// [`Envelope::seal`] of a message encoded already. `payload` must be `codec::encode`
    /// of a [`Message`]; the recipient refuses anything else as undecodable.
    pub fn seal_encoded(
        key: &Keypair,
        to: Address,
        incarnation: u32,
        seq: u64,
        payload: Arc<[u8]>,
    ) -> Envelope {
        let header = EnvelopeHeader {
            from: key.address(),
            to,
            incarnation,
            seq,
        };
        let leaf = Self::leaf(&header, &Self::payload_hash(&payload));
        Envelope {
            header,
            payload,
            proof: None,
            signature: key.sign(&leaf),
        }
    }

    /// Envelopes from `key`, one for each of `items` (recipient, that recipient's sequence
    /// number, encoded message), signed once for all of them: their leaves make a Merkle
    /// tree and its root is signed. A broadcast's items share one payload, hashed once.
    /// One item gets an envelope signed alone, as [`Envelope::seal_encoded`] makes.
    pub fn seal_batch(
        key: &Keypair,
        incarnation: u32,
        items: &[(Address, u64, Arc<[u8]>)],
    ) -> Vec<Envelope> {
        if let [(to, seq, payload)] = items {
            return vec![Self::seal_encoded(
                key,
                *to,
                incarnation,
                *seq,
                payload.clone(),
            )];
        }
        let from = key.address();
        let mut last: Option<(&Arc<[u8]>, Hash)> = None;
        let (headers, leaves): (Vec<EnvelopeHeader>, Vec<Hash>) = items
            .iter()
            .map(|(to, seq, payload)| {
                let payload_hash = match last {
                    Some((shared, hash)) if Arc::ptr_eq(shared, payload) => hash,
                    _ => Self::payload_hash(payload),
                };
                last = Some((payload, payload_hash));
                let header = EnvelopeHeader {
                    from,
                    to: *to,
                    incarnation,
                    seq: *seq,
                };
                let leaf = Self::leaf(&header, &payload_hash);
                (header, leaf)
            })
            .unzip();
        let signature = key.sign(&merkle::root(&leaves));
        headers
            .into_iter()
            .zip(items)
            .zip(MerkleProof::build_all(&leaves))
            .map(|((header, (_, _, payload)), proof)| Envelope {
                header,
                payload: payload.clone(),
                proof: Some(proof),
                signature,
            })
            .collect()
    }

    /// The envelope of `message` from `from` to `to`, before its signature: the header,
    /// the encoded payload, and the digest to sign. [`Envelope::seal`] is this, signed.
    pub fn unsigned(
        from: Address,
        to: Address,
        incarnation: u32,
        seq: u64,
        message: &Message,
    ) -> (Envelope, Hash) {
        let header = EnvelopeHeader {
            from,
            to,
            incarnation,
            seq,
        };
        let payload: Arc<[u8]> = codec::encode(message).into();
        let leaf = Self::leaf(&header, &Self::payload_hash(&payload));
        (
            Envelope {
                header,
                payload,
                proof: None,
                signature: Signature::EMPTY,
            },
            leaf,
        )
    }

    fn payload_hash(payload: &[u8]) -> Hash {
        Hash::of(Domain::EnvelopePayload, &[payload])
    }

    /// The hash of `header` and of the payload's hash: what an envelope sent alone signs,
    /// and a broadcast's Merkle leaf. Its domain is not a Merkle node's, so no interior
    /// node of a broadcast's tree passes for an envelope.
    fn leaf(header: &EnvelopeHeader, payload_hash: &Hash) -> Hash {
        Hash::of(
            Domain::Envelope,
            &[&codec::encode(header), payload_hash.as_bytes()],
        )
    }

    /// The digest the sender signed: this envelope's leaf, or the root its proof leads
    /// to. `None` when the proof's siblings do not fit its index and leaf count: such an
    /// envelope's signature cannot be checked, and it is refused as badly signed.
    pub fn digest(&self) -> Option<Hash> {
        let leaf = Self::leaf(&self.header, &Self::payload_hash(&self.payload));
        match &self.proof {
            None => Some(leaf),
            Some(proof) => proof.root_of(&leaf),
        }
    }

    /// Encoded size, for transport accounting.
    pub fn size(&self) -> usize {
        codec::encoded_len(self)
    }
}

/// Why an envelope was dropped.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum EnvelopeError {
    /// Not addressed to this node.
    #[error("envelope for {to} delivered to {me}")]
    WrongRecipient {
        /// Addressee.
        to: Address,
        /// This node.
        me: Address,
    },
    /// The sender is not registered.
    #[error("unknown sender {0}")]
    UnknownSender(Address),
    /// The signature does not verify.
    #[error("bad envelope signature from {0}")]
    BadSignature(Address),
    /// From an incarnation older than one already seen.
    #[error("envelope from {from} incarnation {got}, already saw {current}")]
    StaleIncarnation {
        /// Sender.
        from: Address,
        /// The envelope's incarnation.
        got: u32,
        /// The newest seen.
        current: u32,
    },
    /// A sequence number below the replay window.
    #[error("replayed envelope seq {seq} from {from}")]
    Replay {
        /// Sender.
        from: Address,
        /// The envelope's seq.
        seq: u64,
    },
    /// Seen before: a network duplicate, dropped without counting as hostile.
    #[error("duplicate envelope seq {seq} from {from}")]
    Duplicate {
        /// Sender.
        from: Address,
        /// The envelope's seq.
        seq: u64,
    },
    /// The payload does not decode.
    #[error("malformed payload from {from}: {source}")]
    Malformed {
        /// Sender.
        from: Address,
        /// Why.
        source: CodecError,
    },
}

impl EnvelopeError {
    /// Whether the drop counts as hostile (SPEC §12 D9): everything but a duplicate.
    pub fn is_hostile(&self) -> bool {
        !matches!(self, EnvelopeError::Duplicate { .. })
    }

    /// A short name, for counters.
    pub fn name(&self) -> &'static str {
        match self {
            EnvelopeError::WrongRecipient { .. } => "wrong_recipient",
            EnvelopeError::UnknownSender(_) => "unknown_sender",
            EnvelopeError::BadSignature(_) => "bad_signature",
            EnvelopeError::StaleIncarnation { .. } => "stale_incarnation",
            EnvelopeError::Replay { .. } => "replay",
            EnvelopeError::Duplicate { .. } => "duplicate",
            EnvelopeError::Malformed { .. } => "malformed",
        }
    }
}

/// How many sequence numbers below the highest seen are still accepted (out of order).
pub const REPLAY_WINDOW: u64 = 256;

/// Per sender: the newest incarnation, the highest seq, and which of the last
/// [`REPLAY_WINDOW`] seqs were seen.
#[derive(Clone, Debug, Default)]
struct SeenFrom {
    incarnation: u32,
    highest: u64,
    seen: [u64; (REPLAY_WINDOW / 64) as usize],
}

impl SeenFrom {
    fn bit(&self, offset: u64) -> bool {
        self.seen[(offset / 64) as usize] & (1 << (offset % 64)) != 0
    }

    fn set(&mut self, offset: u64) {
        self.seen[(offset / 64) as usize] |= 1 << (offset % 64);
    }

    /// Shifts the window up by `by` positions (offset 0 is the highest seq).
    fn shift(&mut self, by: u64) {
        if by >= REPLAY_WINDOW {
            self.seen = Default::default();
            return;
        }
        let mut bits = vec![false; REPLAY_WINDOW as usize];
        for offset in 0..REPLAY_WINDOW - by {
            bits[(offset + by) as usize] = self.bit(offset);
        }
        self.seen = Default::default();
        for (offset, bit) in bits.into_iter().enumerate() {
            if bit {
                self.set(offset as u64);
            }
        }
    }
}

/// How many refusals in a row (replays, old incarnations) from one sender before the
/// receiver tells it where it stands ([`Message::Resync`]), and again every so many.
pub const RESYNC_AFTER: u32 = 8;

/// A node's envelope checks: signature, sender, incarnation and replay window.
#[derive(Clone, Debug)]
pub struct Inbox {
    me: Address,
    peers: BTreeMap<Address, SeenFrom>,
    /// Refusals in a row per sender, as replays or from an old incarnation.
    refused: BTreeMap<Address, u32>,
}

impl Inbox {
    /// The inbox of node `me`.
    pub fn new(me: Address) -> Self {
        Inbox {
            me,
            peers: BTreeMap::new(),
            refused: BTreeMap::new(),
        }
    }

    /// After `error` refused an envelope from `from`: when the sender needs telling where
    /// this node stands with it (every [`RESYNC_AFTER`] refusals in a row as a replay or
    /// from an old incarnation), the [`Message::Resync`] to send it.
    pub fn resync_due(&mut self, from: Address, error: &EnvelopeError) -> Option<Message> {
        if !matches!(
            error,
            EnvelopeError::Replay { .. } | EnvelopeError::StaleIncarnation { .. }
        ) {
            return None;
        }
        let count = self.refused.entry(from).or_default();
        *count += 1;
        let seen = self.peers.get(&from)?;
        (*count % RESYNC_AFTER == 0).then_some(Message::Resync {
            incarnation: seen.incarnation,
            seq: seen.highest,
        })
    }

    /// Checks `envelope` and decodes its message. `key_of` gives a sender's registered key;
    /// an unregistered sender passes only with a join message signed by the key it carries
    /// ([`Message::join_key`]). On success the envelope is marked seen.
    pub fn accept(
        &mut self,
        envelope: &Envelope,
        key_of: impl Fn(&Address) -> Option<PublicKey>,
    ) -> Result<Message, EnvelopeError> {
        let header = &envelope.header;
        let from = header.from;
        if header.to != self.me {
            return Err(EnvelopeError::WrongRecipient {
                to: header.to,
                me: self.me,
            });
        }
        let key = match key_of(&from) {
            Some(key) => key,
            // An unregistered sender may send join messages only, checked against the key
            // they carry (SPEC §12 D9).
            None => codec::decode::<Message>(&envelope.payload)
                .ok()
                .and_then(|m| m.join_key())
                .filter(|k| k.address() == from)
                .ok_or(EnvelopeError::UnknownSender(from))?,
        };
        let digest = envelope.digest().ok_or(EnvelopeError::BadSignature(from))?;
        // An envelope's own signature is checked once and never again; a batch's is shared
        // by all its envelopes, so co-located recipients remember it.
        let checked = match envelope.proof {
            None => key.verify_once(&digest, &envelope.signature),
            Some(_) => key.verify(&digest, &envelope.signature),
        };
        checked.map_err(|_| EnvelopeError::BadSignature(from))?;
        let seen = self.peers.entry(from).or_default();
        let refused = &mut self.refused;
        let mut accept = || {
            refused.remove(&from);
        };
        if header.incarnation < seen.incarnation {
            return Err(EnvelopeError::StaleIncarnation {
                from,
                got: header.incarnation,
                current: seen.incarnation,
            });
        }
        if header.incarnation > seen.incarnation {
            *seen = SeenFrom {
                incarnation: header.incarnation,
                ..SeenFrom::default()
            };
        }
        // Seqs start at 1, so a fresh peer's `highest` of 0 never collides.
        let seq = header.seq;
        if seq > seen.highest {
            seen.shift(seq - seen.highest);
            seen.highest = seq;
            seen.set(0);
        } else {
            let offset = seen.highest - seq;
            if offset >= REPLAY_WINDOW || seq == 0 {
                return Err(EnvelopeError::Replay { from, seq });
            }
            if seen.bit(offset) {
                return Err(EnvelopeError::Duplicate { from, seq });
            }
            seen.set(offset);
        }
        accept();
        codec::decode(&envelope.payload).map_err(|source| EnvelopeError::Malformed { from, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> (Keypair, Keypair) {
        (
            Keypair::derive(Domain::NodeKey, 1, "a"),
            Keypair::derive(Domain::NodeKey, 1, "b"),
        )
    }

    fn heartbeat() -> Message {
        Message::Discover {
            consortium: crate::ids::ConsortiumId(1),
        }
    }

    #[test]
    fn accepts_in_order_out_of_order_and_drops_duplicates() {
        let (a, b) = keys();
        let mut inbox = Inbox::new(b.address());
        let key_of = |x: &Address| (*x == a.address()).then(|| a.public());
        let e1 = Envelope::seal(&a, b.address(), 0, 1, &heartbeat());
        let e3 = Envelope::seal(&a, b.address(), 0, 3, &heartbeat());
        let e2 = Envelope::seal(&a, b.address(), 0, 2, &heartbeat());
        assert_eq!(inbox.accept(&e1, key_of), Ok(heartbeat()));
        assert_eq!(inbox.accept(&e3, key_of), Ok(heartbeat()));
        assert_eq!(
            inbox.accept(&e2, key_of),
            Ok(heartbeat()),
            "reordered, within the window"
        );
        let dup = inbox.accept(&e2, key_of).unwrap_err();
        assert!(matches!(dup, EnvelopeError::Duplicate { seq: 2, .. }));
        assert!(!dup.is_hostile());
        let far = Envelope::seal(&a, b.address(), 0, 3 + REPLAY_WINDOW, &heartbeat());
        inbox.accept(&far, key_of).unwrap();
        let err = inbox.accept(&e1, key_of).unwrap_err();
        assert!(matches!(err, EnvelopeError::Replay { seq: 1, .. }));
        assert!(err.is_hostile());
    }

    /// An unregistered sender passes only with a join message signed by the key it
    /// carries (SPEC §12 D9); any other message, or a join message carrying someone
    /// else's key, is an unknown sender.
    #[test]
    fn unregistered_senders_pass_only_with_their_own_join_key() {
        let (registered, me) = keys();
        let newcomer = Keypair::derive(Domain::NodeKey, 1, "newcomer");
        let mut inbox = Inbox::new(me.address());
        let key_of = |x: &Address| (*x == registered.address()).then(|| registered.public());
        let own = Message::JoinIntent {
            key: newcomer.public(),
        };
        let sealed = Envelope::seal(&newcomer, me.address(), 0, 1, &own);
        assert_eq!(inbox.accept(&sealed, key_of), Ok(own.clone()));
        let borrowed = Message::JoinIntent {
            key: registered.public(),
        };
        let sealed = Envelope::seal(&newcomer, me.address(), 0, 2, &borrowed);
        assert!(matches!(
            inbox.accept(&sealed, key_of),
            Err(EnvelopeError::UnknownSender(_))
        ));
        let sealed = Envelope::seal(&newcomer, me.address(), 0, 3, &heartbeat());
        assert!(matches!(
            inbox.accept(&sealed, key_of),
            Err(EnvelopeError::UnknownSender(_))
        ));
        let mut garbage = Envelope::seal(&newcomer, me.address(), 0, 4, &own);
        garbage.payload = vec![0xff; 9].into();
        garbage.signature = newcomer.sign(&garbage.digest().unwrap());
        assert!(matches!(
            inbox.accept(&garbage, key_of),
            Err(EnvelopeError::UnknownSender(_))
        ));
        // Signed by another key than the one carried: a bad signature.
        let mut forged = Envelope::seal(&newcomer, me.address(), 0, 5, &own);
        forged.signature = registered.sign(&forged.digest().unwrap());
        assert!(matches!(
            inbox.accept(&forged, key_of),
            Err(EnvelopeError::BadSignature(_))
        ));
    }

    #[test]
    fn rejects_forged_unknown_and_stale() {
        let (a, b) = keys();
        let mut inbox = Inbox::new(b.address());
        let key_of = |x: &Address| (*x == a.address()).then(|| a.public());
        let mut forged = Envelope::seal(&a, b.address(), 0, 1, &heartbeat());
        forged.payload = codec::encode(&Message::Discover {
            consortium: crate::ids::ConsortiumId(9),
        })
        .into();
        assert!(matches!(
            inbox.accept(&forged, key_of),
            Err(EnvelopeError::BadSignature(_))
        ));
        let stranger = Keypair::derive(Domain::NodeKey, 1, "stranger");
        let unknown = Envelope::seal(&stranger, b.address(), 0, 1, &heartbeat());
        assert!(matches!(
            inbox.accept(&unknown, key_of),
            Err(EnvelopeError::UnknownSender(_))
        ));
        let restarted = Envelope::seal(&a, b.address(), 1, 1, &heartbeat());
        inbox.accept(&restarted, key_of).unwrap();
        let old = Envelope::seal(&a, b.address(), 0, 50, &heartbeat());
        assert!(matches!(
            inbox.accept(&old, key_of),
            Err(EnvelopeError::StaleIncarnation { .. })
        ));
        let misdelivered = Envelope::seal(&a, a.address(), 1, 2, &heartbeat());
        assert!(matches!(
            inbox.accept(&misdelivered, key_of),
            Err(EnvelopeError::WrongRecipient { .. })
        ));
        let mut garbage = Envelope::seal(&a, b.address(), 1, 3, &heartbeat());
        garbage.payload = vec![0xff; 3].into();
        garbage.signature = a.sign(&garbage.digest().unwrap());
        assert!(matches!(
            inbox.accept(&garbage, key_of),
            Err(EnvelopeError::Malformed { .. })
        ));
    }
}
