//! Pure validation of a block against its chain's head (SPEC §4, §7).
//!
//! Each lane kind has a state ([`PrivateLane`], [`ConsortiumLane`], [`RelayLane`]) that
//! holds exactly what the next block is checked against: the head, the last `seq` of every
//! author, and for relay lanes the registry and the election history. `append` checks a
//! block and advances the state only if every check passes; on failure the state is as it
//! was. Every failure is a [`BlockError`] that names the chain, the height and the reason.
//!
//! All signatures of a block are checked together with [`verify_all`], one `verify_strict`
//! each, so acceptance is exactly `verify_strict`'s (SPEC §12 D6); its docs say why it does
//! not batch.
//!
//! # Checking once per node (issue 12)
//!
//! A node checks each signature once. Each record's digest is computed once per check of
//! its block and serves both the records root and the signature list. A node does not
//! check what it made itself: `append_sealed_here` takes a block the node sealed a moment
//! ago from records it signed. [`RelayLane::append_known`] skips what the node already
//! checked: an included consortium block equal in every field to one it validated in full
//! into its own copies, and the producer's own header signature. Anything that came from
//! another node and was not checked here before is checked in full.

use std::collections::BTreeMap;

use thiserror::Error;

use crate::block::{AnyBlock, ChainBlock, ConsortiumBlock, PrivateBlock, RelayBlock};
use crate::codec::{self, CodecError};
use crate::crypto::{verify_all, Address, Hash, PublicKey, Signature};
use crate::election::{ElectionError, ElectionHistory, LanePosition};
use crate::genesis::{Capacities, Directory, Genesis};
use crate::ids::{ChainId, ConsortiumId};
use crate::merkle;
use crate::record::{Record, RecordBody, Urgency};
use crate::registry::{Registry, RegistryError};

/// A chain's head: the height and hash of its last block, or `(0, ZERO)` when empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Head {
    /// Height of the last block; 0 when empty.
    pub height: u64,
    /// Hash of the last block; zero when empty.
    pub hash: Hash,
}

/// A block that failed validation: which chain, which height, and why.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("chain={chain} height={height}: {reason}")]
pub struct BlockError {
    /// The chain the block claims to extend.
    pub chain: ChainId,
    /// The height the block claims.
    pub height: u64,
    /// Why it was rejected.
    pub reason: Reject,
}

/// Why a block was rejected.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum Reject {
    /// The bytes did not decode.
    #[error("undecodable: {0}")]
    Decode(#[from] CodecError),
    /// The block belongs to another chain.
    #[error("block belongs to {got}, not {expected}")]
    WrongChain {
        /// This chain.
        expected: ChainId,
        /// The block's.
        got: ChainId,
    },
    /// Not the next height.
    #[error("height {got}, expected {expected}")]
    Height {
        /// Head height + 1.
        expected: u64,
        /// The block's.
        got: u64,
    },
    /// `prev` is not the head's hash.
    #[error("prev {got} does not match the head {expected}")]
    Prev {
        /// The head's hash.
        expected: Hash,
        /// The block's `prev`.
        got: Hash,
    },
    /// A signature does not verify.
    #[error("bad signature by {signer} on {what}")]
    Signature {
        /// Who should have signed.
        signer: Address,
        /// What was signed.
        what: String,
    },
    /// The signer is not registered.
    #[error("unknown signer {0}")]
    UnknownSigner(Address),
    /// The encoded block exceeds its capacity.
    #[error("encoded size {size} bytes exceeds the capacity of {capacity} bytes")]
    Capacity {
        /// Encoded size.
        size: usize,
        /// Capacity.
        capacity: u32,
    },
    /// The urgency bit does not match the records.
    #[error("urgency bit is {header} but the records say {records}")]
    UrgencyBit {
        /// The header's bit.
        header: bool,
        /// Whether any record is urgent.
        records: bool,
    },
    /// The urgency vector does not match the included blocks.
    #[error("urgency vector: {0}")]
    UrgencyVector(String),
    /// The records root does not match the records.
    #[error("records root does not match the records")]
    RecordsRoot,
    /// The blocks root does not match the included blocks.
    #[error("blocks root does not match the included blocks")]
    BlocksRoot,
    /// The registry root does not match the registry after this block's additions.
    #[error("registry root {got} does not match the registry, whose root is {expected}")]
    RegistryRoot {
        /// The recomputed root.
        expected: Hash,
        /// The header's.
        got: Hash,
    },
    /// A registry addition is invalid.
    #[error("registry addition: {0}")]
    Registry(#[from] RegistryError),
    /// Registry additions are not in ascending address order.
    #[error("registry additions are not in ascending address order")]
    RegistryOrder,
    /// A record reuses an old `seq`.
    #[error("replayed seq {seq} by {author}: last seq was {last}")]
    Replay {
        /// The author.
        author: Address,
        /// The record's seq.
        seq: u64,
        /// The last seq seen from the author.
        last: u64,
    },
    /// A record in a lane is not by the lane's writer.
    #[error("record by {author} in a lane written by {writer}")]
    ForeignRecord {
        /// The record's author.
        author: Address,
        /// The lane's writer.
        writer: Address,
    },
    /// A consortium block was included twice, or out of its lane's order.
    #[error(
        "consortium block {author} height {height} is not above the last included height {last}"
    )]
    DuplicateInclusion {
        /// The block's author.
        author: Address,
        /// The block's height.
        height: u64,
        /// The last included height of that author.
        last: u64,
    },
    /// An included consortium block is invalid.
    #[error("included block {index}: {reason}")]
    Included {
        /// Position in the relay block.
        index: usize,
        /// Why.
        reason: Box<Reject>,
    },
    /// A relay block before the consortium's first election.
    #[error("relay block before any election of the lane")]
    NoElection,
    /// A relay block from a deposed epoch (fencing, SPEC §5).
    #[error("epoch {got} is older than {current}")]
    StaleEpoch {
        /// The block's epoch.
        got: u64,
        /// The newest epoch known.
        current: u64,
    },
    /// A relay block claiming an epoch no election has started.
    #[error("epoch {got} is newer than the elected epoch {current}")]
    FutureEpoch {
        /// The block's epoch.
        got: u64,
        /// The elected epoch.
        current: u64,
    },
    /// The producer is not the elected relay of the epoch.
    #[error("relay {got} is not the elected relay {elected} of this epoch")]
    NotElected {
        /// The block's relay.
        got: Address,
        /// The elected relay.
        elected: Address,
    },
    /// An election record is not signed by the supervisor.
    #[error("election record by {0}, not the supervisor")]
    ElectionSigner(Address),
    /// An election record does not recompute.
    #[error("election: {0}")]
    Election(#[from] ElectionError),
    /// The other lanes' heads are malformed.
    #[error("lane heads must name other lanes in ascending order")]
    LaneHeads,
    /// A config block's election does not name as its source the epoch of the block just
    /// below it (SPEC §14).
    #[error("election of epoch {epoch} names source epoch {named}, but the block below is of epoch {below}")]
    ElectionSource {
        /// The election's epoch.
        epoch: u64,
        /// The source it names.
        named: u64,
        /// The epoch of the lane's block just below the config block.
        below: u64,
    },
}

/// The last `seq` of each author, for replay protection.
type Seqs = BTreeMap<Address, u64>;

/// Checks `records`' seqs in order against `seqs`, returning the updates to apply.
fn check_seqs(seqs: &Seqs, records: &[Record], updates: &mut Seqs) -> Result<(), Reject> {
    for record in records {
        let author = record.content.author;
        let last = updates.get(&author).or_else(|| seqs.get(&author)).copied();
        if let Some(last) = last {
            if record.content.seq <= last {
                return Err(Reject::Replay {
                    author,
                    seq: record.content.seq,
                    last,
                });
            }
        }
        updates.insert(author, record.content.seq);
    }
    Ok(())
}

/// Signature checks collected over a block, with what each one covers.
#[derive(Default)]
struct Signatures {
    items: Vec<(PublicKey, Hash, Signature)>,
    labels: Vec<(Address, String)>,
}

impl Signatures {
    fn push(
        &mut self,
        key: PublicKey,
        signer: Address,
        digest: Hash,
        signature: Signature,
        what: impl FnOnce() -> String,
    ) {
        self.items.push((key, digest, signature));
        self.labels.push((signer, what()));
    }

    /// Adds the records' signatures; `digests` are the records' digests, in order,
    /// computed once by the caller.
    fn push_records(
        &mut self,
        records: &[Record],
        digests: &[Hash],
        key_of: impl Fn(&Address) -> Option<PublicKey>,
    ) -> Result<(), Reject> {
        if records.len() != digests.len() {
            // Not one digest per record: no record goes unchecked.
            return Err(Reject::RecordsRoot);
        }
        for (index, (record, digest)) in records.iter().zip(digests).enumerate() {
            let author = record.content.author;
            let key = key_of(&author).ok_or(Reject::UnknownSigner(author))?;
            self.push(key, author, *digest, record.signature, || {
                format!("record {index} (seq {})", record.content.seq)
            });
        }
        Ok(())
    }

    fn verify(self) -> Result<(), Reject> {
        verify_all(&self.items).map_err(|(index, _)| {
            let (signer, what) = self.labels[index].clone();
            Reject::Signature { signer, what }
        })
    }
}

fn check_link(head: &Head, height: u64, prev: Hash) -> Result<(), Reject> {
    if height != head.height + 1 {
        return Err(Reject::Height {
            expected: head.height + 1,
            got: height,
        });
    }
    if prev != head.hash {
        return Err(Reject::Prev {
            expected: head.hash,
            got: prev,
        });
    }
    Ok(())
}

fn check_capacity<B: ChainBlock>(block: &B, capacity: u32) -> Result<(), Reject> {
    let size = codec::encoded_len(block);
    if size > capacity as usize {
        return Err(Reject::Capacity { size, capacity });
    }
    Ok(())
}

/// How a lane says a check of its block at `height` failed.
fn failure(chain: ChainId, height: u64) -> impl Fn(Reject) -> BlockError + Copy {
    move |reason| BlockError {
        chain,
        height,
        reason,
    }
}

/// `block` is of the lane's chain and goes right on top of its head.
fn check_placed<B: ChainBlock>(block: &B, chain: ChainId, head: &Head) -> Result<(), Reject> {
    if block.chain() != chain {
        return Err(Reject::WrongChain {
            expected: chain,
            got: block.chain(),
        });
    }
    check_link(head, block.height(), block.prev())
}

/// The checks a lane makes of a block written by a single author (private and consortium
/// blocks): records by the writer, and the records root. Returns the records' digests,
/// computed once here, for the signature checks.
fn check_single_writer(
    records: &[Record],
    writer: Address,
    root: Hash,
) -> Result<Vec<Hash>, Reject> {
    check_writer(records, writer)?;
    let digests: Vec<Hash> = records.iter().map(Record::digest).collect();
    if crate::block::records_root_of(records, &digests) != root {
        return Err(Reject::RecordsRoot);
    }
    Ok(digests)
}

/// Every record is by the lane's writer.
fn check_writer(records: &[Record], writer: Address) -> Result<(), Reject> {
    match records.iter().find(|r| r.content.author != writer) {
        Some(foreign) => Err(Reject::ForeignRecord {
            author: foreign.content.author,
            writer,
        }),
        None => Ok(()),
    }
}

fn last_seq_after(records: &[Record], last: Option<u64>) -> Result<Option<u64>, Reject> {
    let mut last = last;
    for record in records {
        if let Some(prev) = last {
            if record.content.seq <= prev {
                return Err(Reject::Replay {
                    author: record.content.author,
                    seq: record.content.seq,
                    last: prev,
                });
            }
        }
        last = Some(record.content.seq);
    }
    Ok(last)
}

/// A member's private chain.
#[derive(Clone, Debug)]
pub struct PrivateLane {
    /// The owner.
    pub owner: Address,
    /// The owner's key.
    pub key: PublicKey,
    /// The head.
    pub head: Head,
    /// The owner's last seq on this chain.
    pub last_seq: Option<u64>,
    /// Capacity in bytes (the consortium capacity).
    pub capacity: u32,
}

impl PrivateLane {
    /// An empty private chain of `owner`.
    pub fn new(owner: Address, key: PublicKey, capacity: u32) -> Self {
        PrivateLane {
            owner,
            key,
            head: Head::default(),
            last_seq: None,
            capacity,
        }
    }

    /// Checks `block` and, if valid, makes it the head.
    pub fn append(&mut self, block: &PrivateBlock) -> Result<(), BlockError> {
        let chain = ChainId::Private(self.owner);
        let fail = failure(chain, block.header.height);
        check_placed(block, chain, &self.head).map_err(fail)?;
        check_capacity(block, self.capacity).map_err(fail)?;
        let digests = check_single_writer(&block.records, self.owner, block.header.records_root)
            .map_err(fail)?;
        let last_seq = last_seq_after(&block.records, self.last_seq).map_err(fail)?;
        let hash = block.hash();
        let mut signatures = Signatures::default();
        signatures.push(self.key, self.owner, hash, block.signature, || {
            "header".into()
        });
        signatures
            .push_records(&block.records, &digests, |_| Some(self.key))
            .map_err(fail)?;
        signatures.verify().map_err(fail)?;
        self.head = Head {
            height: block.header.height,
            hash,
        };
        self.last_seq = last_seq;
        Ok(())
    }

    /// Appends a block the owner sealed itself a moment ago, from records it signed
    /// ([`PrivateBlock::seal_digested`]): the chain, link, capacity, writer and seq checks
    /// of [`PrivateLane::append`], but not the records root or the signatures, which it
    /// computed and made itself (issue 12). Only for blocks that never left the node.
    pub fn append_sealed_here(&mut self, block: &PrivateBlock) -> Result<(), BlockError> {
        let chain = ChainId::Private(self.owner);
        let fail = failure(chain, block.header.height);
        check_placed(block, chain, &self.head).map_err(fail)?;
        check_capacity(block, self.capacity).map_err(fail)?;
        check_writer(&block.records, self.owner).map_err(fail)?;
        let last_seq = last_seq_after(&block.records, self.last_seq).map_err(fail)?;
        self.head = Head {
            height: block.header.height,
            hash: block.hash(),
        };
        self.last_seq = last_seq;
        Ok(())
    }
}

/// Checks a consortium block on its own: capacity, root, urgency bit, writer, and all its
/// signatures (added to `signatures`). Shared by [`ConsortiumLane`] and [`RelayLane`].
fn check_consortium_block(
    block: &ConsortiumBlock,
    key: PublicKey,
    capacity: u32,
    signatures: &mut Signatures,
) -> Result<Hash, Reject> {
    check_capacity(block, capacity)?;
    let author = block.header.author;
    let digests = check_single_writer(&block.records, author, block.header.records_root)?;
    check_urgency_bit(block)?;
    let hash = block.hash();
    signatures.push(key, author, hash, block.signature, || "header".into());
    signatures.push_records(&block.records, &digests, |_| Some(key))?;
    Ok(hash)
}

fn check_urgency_bit(block: &ConsortiumBlock) -> Result<(), Reject> {
    let urgent = block.records.iter().any(|r| r.urgency() == Urgency::Urgent);
    if urgent != block.header.urgent {
        return Err(Reject::UrgencyBit {
            header: block.header.urgent,
            records: urgent,
        });
    }
    Ok(())
}

/// A member's lane of its consortium chain.
#[derive(Clone, Debug)]
pub struct ConsortiumLane {
    /// The consortium.
    pub consortium: ConsortiumId,
    /// The member who writes the lane.
    pub member: Address,
    /// The member's key.
    pub key: PublicKey,
    /// The head.
    pub head: Head,
    /// The member's last seq in this lane.
    pub last_seq: Option<u64>,
    /// Capacity in bytes.
    pub capacity: u32,
}

impl ConsortiumLane {
    /// An empty lane.
    pub fn new(consortium: ConsortiumId, member: Address, key: PublicKey, capacity: u32) -> Self {
        ConsortiumLane {
            consortium,
            member,
            key,
            head: Head::default(),
            last_seq: None,
            capacity,
        }
    }

    /// Checks `block` and, if valid, makes it the head.
    pub fn append(&mut self, block: &ConsortiumBlock) -> Result<(), BlockError> {
        let chain = ChainId::Consortium(self.consortium, self.member);
        let fail = failure(chain, block.header.height);
        check_placed(block, chain, &self.head).map_err(fail)?;
        let last_seq = last_seq_after(&block.records, self.last_seq).map_err(fail)?;
        let mut signatures = Signatures::default();
        let hash = check_consortium_block(block, self.key, self.capacity, &mut signatures)
            .map_err(fail)?;
        signatures.verify().map_err(fail)?;
        self.head = Head {
            height: block.header.height,
            hash,
        };
        self.last_seq = last_seq;
        Ok(())
    }

    /// Appends a block the member sealed itself a moment ago, from records it signed
    /// ([`ConsortiumBlock::seal_digested`]): the chain, link, capacity, writer, urgency bit
    /// and seq checks of [`ConsortiumLane::append`], but not the records root or the
    /// signatures, which it computed and made itself (issue 12). Only for blocks that
    /// never left the node: a block that came back through the network is checked in full.
    pub fn append_sealed_here(&mut self, block: &ConsortiumBlock) -> Result<(), BlockError> {
        let chain = ChainId::Consortium(self.consortium, self.member);
        let fail = failure(chain, block.header.height);
        check_placed(block, chain, &self.head).map_err(fail)?;
        let last_seq = last_seq_after(&block.records, self.last_seq).map_err(fail)?;
        check_capacity(block, self.capacity).map_err(fail)?;
        check_writer(&block.records, self.member).map_err(fail)?;
        check_urgency_bit(block).map_err(fail)?;
        self.head = Head {
            height: block.header.height,
            hash: block.hash(),
        };
        self.last_seq = last_seq;
        Ok(())
    }
}

/// The consortium blocks a node validated in full into its own copies and still keeps
/// (a holder's backlog), for [`Known::accepted`].
pub trait AcceptedBlocks {
    /// The kept block of `author` at `height`, if any.
    fn accepted(&self, author: &Address, height: u64) -> Option<&ConsortiumBlock>;
}

/// What a node already checked of a relay block it is about to validate, so that it does
/// not check it again (issue 12, "check once per node"). The default knows nothing, and
/// every check is made.
#[derive(Clone, Copy, Default)]
pub struct Known<'a> {
    /// The block was sealed by this node a moment ago ([`RelayDraft::seal`]): its header
    /// signature is the node's own and is not checked. Only for a block that never left
    /// the node; the same block coming back (a sync answer) is checked in full.
    ///
    /// [`RelayDraft::seal`]: crate::block::RelayDraft::seal
    pub sealed_here: bool,
    /// Consortium blocks this node validated in full itself. An included block equal to
    /// the one kept for its author and height in every field (header, hence hash;
    /// records; signature) is not checked again: its capacity, records root, urgency bit
    /// and signatures are functions of those fields. Any other block is checked in full,
    /// so another block of the same author and height, or the same header with another
    /// signature or other records, is never taken on trust.
    pub accepted: Option<&'a dyn AcceptedBlocks>,
}

impl std::fmt::Debug for Known<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Known")
            .field("sealed_here", &self.sealed_here)
            .field("accepted", &self.accepted.is_some())
            .finish()
    }
}

impl Known<'_> {
    /// Whether this node checked exactly `block` before.
    fn checked(&self, block: &ConsortiumBlock) -> bool {
        self.accepted
            .and_then(|known| known.accepted(&block.header.author, block.header.height))
            .is_some_and(|held| held == block)
    }
}

/// A consortium's lane of the relay chain.
#[derive(Clone, Debug)]
pub struct RelayLane {
    /// The consortium whose relays write the lane.
    pub lane: ConsortiumId,
    /// The head.
    pub head: Head,
    /// The consortium's registry after the head.
    pub registry: Registry,
    /// The consortium's elections so far.
    pub elections: ElectionHistory,
    /// The last seq of every author seen in this lane.
    pub seqs: BTreeMap<Address, u64>,
    /// The last included consortium-lane height of every member.
    pub included: BTreeMap<Address, u64>,
    /// The hash and epoch of every block, by height - 1: an election may cite any block of
    /// the lane at or below its config block's `prev` as its lane head, however far below
    /// (SPEC §14), and sync requests name positions of the lane to find the highest block
    /// two copies share.
    positions: Vec<(Hash, u64)>,
    /// Block capacities.
    pub capacities: Capacities,
    /// The supervisor's key, which signs election records.
    pub supervisor: PublicKey,
}

/// What one appended relay block changed in a [`RelayLane`], to take it back if the block
/// is truncated: a block of an older epoch above a config block's `prev` was never
/// released (SPEC §14), and a copy that holds one drops it with the state derived from it.
#[derive(Clone, Debug)]
pub struct Undo {
    head: Head,
    registry_added: Vec<RegistryEntryRef>,
    elections: Option<ElectionHistory>,
    seqs: Vec<(Address, Option<u64>)>,
    included: Vec<(Address, Option<u64>)>,
}

/// A registry addition, as an undo log keeps it: the address it removes again.
type RegistryEntryRef = Address;

impl Undo {
    /// The registry entries the undone block added (learnt keys to forget).
    pub fn registry_added(&self) -> &[Address] {
        &self.registry_added
    }
}

impl RelayLane {
    /// The empty lane of `lane`, with its genesis registry.
    pub fn new(genesis: &Genesis, lane: ConsortiumId) -> Self {
        RelayLane {
            lane,
            head: Head::default(),
            registry: genesis.registry(lane),
            elections: ElectionHistory::new(lane),
            seqs: BTreeMap::new(),
            included: BTreeMap::new(),
            positions: Vec::new(),
            capacities: genesis.capacities,
            supervisor: genesis.supervisor,
        }
    }

    /// The epoch of the head block, 0 for an empty lane.
    pub fn head_epoch(&self) -> u64 {
        self.positions.last().map_or(0, |(_, epoch)| *epoch)
    }

    /// The hash and epoch of the block at `height`, if the lane has one.
    pub fn position(&self, height: u64) -> Option<(Hash, u64)> {
        let index = usize::try_from(height.checked_sub(1)?).ok()?;
        self.positions.get(index).copied()
    }

    /// Whether `position` is on this lane (height 0 with the zero hash is the empty lane).
    pub fn holds(&self, position: &LanePosition) -> bool {
        match position.height {
            0 => position.hash == Hash::ZERO,
            h => self
                .position(h)
                .is_some_and(|(hash, _)| hash == position.hash),
        }
    }

    /// Positions of this lane for a sync request to name (SPEC §14: the answer starts at
    /// the highest block both hold): the head, then heights 1, 2, 4, 8, … below it,
    /// down to the first block. At most about 66 positions, whatever the lane's length.
    pub fn locator(&self) -> Vec<LanePosition> {
        self.locator_with(2, 0)
    }

    /// [`RelayLane::locator`] with the top `dense` heights all named (then 1, 2, 4, …
    /// apart), and the position at `pinned` too, if this lane holds it. The highest block
    /// both copies hold is found exactly when it is within `dense` of the head, and never
    /// below `pinned` when the answerer holds that block.
    ///
    /// A node names its own lane this way, `dense` above the most blocks it can hold
    /// unreleased and `pinned` at the highest it knows released (which every later
    /// configuration holds, SPEC §14): the sparse locator alone may find only a lower
    /// common block, and the node would be asked to drop a released block, or more than
    /// its undo logs reach.
    pub fn locator_with(&self, dense: usize, pinned: u64) -> Vec<LanePosition> {
        let mut out = Vec::new();
        let mut height = self.head.height;
        let mut step = 1u64;
        while height > 0 {
            if let Some((hash, _)) = self.position(height) {
                out.push(LanePosition { height, hash });
            }
            height = height.saturating_sub(step);
            if out.len() >= dense {
                step = step.saturating_mul(2);
            }
        }
        if pinned > 0 && !out.iter().any(|p| p.height == pinned) {
            if let Some((hash, _)) = self.position(pinned) {
                let at = out.partition_point(|p| p.height > pinned);
                out.insert(
                    at,
                    LanePosition {
                        height: pinned,
                        hash,
                    },
                );
            }
        }
        out
    }

    /// The highest position of `locator` this lane holds; 0 if none.
    pub fn common(&self, locator: &[LanePosition]) -> u64 {
        locator
            .iter()
            .filter(|p| p.height > 0 && self.holds(p))
            .map(|p| p.height)
            .max()
            .unwrap_or(0)
    }

    /// The highest block whose epoch is at most `epoch`: the lane as a configuration of
    /// that epoch could hold it (SPEC §14, "except blocks of epochs above the source's").
    pub fn head_at_most(&self, epoch: u64) -> LanePosition {
        let height = self
            .positions
            .iter()
            .rposition(|(_, e)| *e <= epoch)
            .map_or(0, |i| i as u64 + 1);
        LanePosition {
            height,
            hash: self.position(height).map_or(Hash::ZERO, |(h, _)| h),
        }
    }

    /// Takes back the head block, as `undo` (from [`RelayLane::append_undoable`]) says.
    /// `directory` forgets the keys its registry additions taught it.
    pub fn undo(&mut self, undo: Undo, directory: &mut Directory) {
        for address in &undo.registry_added {
            self.registry.remove(address);
            directory.remove(address);
        }
        if let Some(elections) = undo.elections {
            self.elections = elections;
        }
        for (author, seq) in undo.seqs {
            match seq {
                Some(seq) => self.seqs.insert(author, seq),
                None => self.seqs.remove(&author),
            };
        }
        for (author, height) in undo.included {
            match height {
                Some(height) => self.included.insert(author, height),
                None => self.included.remove(&author),
            };
        }
        self.positions.truncate(undo.head.height as usize);
        self.head = undo.head;
    }

    /// Checks `block` and, if valid, makes it the head. `directory` supplies the keys of
    /// authors from other consortiums (settlement parties) and learns this block's joiners.
    pub fn append(
        &mut self,
        block: &RelayBlock,
        directory: &mut Directory,
    ) -> Result<(), BlockError> {
        self.append_undoable(block, directory).map(|_| ())
    }

    /// [`RelayLane::append`], returning what it takes to undo the block.
    ///
    /// The first block of an epoch (its config block, SPEC §14) carries the election
    /// records since the lane's last one; each must name as its source the epoch of the
    /// block just below, and as its lane head a block of this lane at or below that one.
    pub fn append_undoable(
        &mut self,
        block: &RelayBlock,
        directory: &mut Directory,
    ) -> Result<Undo, BlockError> {
        self.append_known(block, directory, Known::default())
    }

    /// [`RelayLane::append_undoable`], skipping what `known` says this node checked
    /// already (issue 12). Every other check is the same.
    pub fn append_known(
        &mut self,
        block: &RelayBlock,
        directory: &mut Directory,
        known: Known<'_>,
    ) -> Result<Undo, BlockError> {
        let chain = ChainId::Relay(self.lane);
        let fail = |reason| BlockError {
            chain,
            height: block.header.height,
            reason,
        };
        let header = &block.header;
        if block.chain() != chain {
            return Err(fail(Reject::WrongChain {
                expected: chain,
                got: block.chain(),
            }));
        }
        check_link(&self.head, header.height, header.prev).map_err(fail)?;
        check_capacity(block, self.capacities.relay).map_err(fail)?;

        // The registry after this block's additions.
        if header
            .registry
            .added
            .windows(2)
            .any(|w| w[0].address >= w[1].address)
        {
            return Err(fail(Reject::RegistryOrder));
        }
        // Cloned only when the block changes it; the root is cached in the registry.
        let registry = if header.registry.added.is_empty() {
            std::borrow::Cow::Borrowed(&self.registry)
        } else {
            let mut registry = self.registry.clone();
            for entry in &header.registry.added {
                registry.add(entry.clone()).map_err(|e| fail(e.into()))?;
            }
            std::borrow::Cow::Owned(registry)
        };
        let root = registry.root();
        if root != header.registry.root {
            return Err(fail(Reject::RegistryRoot {
                expected: root,
                got: header.registry.root,
            }));
        }

        // The relay's own records: seqs, elections, then epoch and producer.
        let own_digests: Vec<Hash> = block.records.iter().map(Record::digest).collect();
        if crate::block::records_root_of(&block.records, &own_digests) != header.records_root {
            return Err(fail(Reject::RecordsRoot));
        }
        let mut elections = self.elections.clone();
        let below = self.head_epoch();
        let mut carries_elections = false;
        for (index, record) in block.records.iter().enumerate() {
            if let RecordBody::Election(election) = &record.content.body {
                if record.content.author != self.supervisor.address() {
                    return Err(fail(Reject::ElectionSigner(record.content.author)));
                }
                if election.source != below {
                    return Err(fail(Reject::ElectionSource {
                        epoch: election.epoch,
                        named: election.source,
                        below,
                    }));
                }
                elections
                    .apply(
                        election,
                        own_digests[index],
                        |a| registry.get(a).is_some_and(|e| e.relay_capable),
                        |position| self.holds(position),
                    )
                    .map_err(|e| fail(e.into()))?;
                carries_elections = true;
            }
        }
        let Some(elected) = elections.relay else {
            return Err(fail(Reject::NoElection));
        };
        if header.epoch < elections.epoch {
            return Err(fail(Reject::StaleEpoch {
                got: header.epoch,
                current: elections.epoch,
            }));
        }
        if header.epoch > elections.epoch {
            return Err(fail(Reject::FutureEpoch {
                got: header.epoch,
                current: elections.epoch,
            }));
        }
        if header.relay != elected {
            return Err(fail(Reject::NotElected {
                got: header.relay,
                elected,
            }));
        }

        // Signatures: the header, the own records, every included block and its records.
        let relay_key = registry
            .get(&header.relay)
            .map(|e| e.public_key)
            .ok_or_else(|| fail(Reject::UnknownSigner(header.relay)))?;
        let hash = block.hash();
        let mut signatures = Signatures::default();
        if !known.sealed_here {
            signatures.push(relay_key, header.relay, hash, block.signature, || {
                "header".into()
            });
        }
        let supervisor = self.supervisor;
        signatures
            .push_records(&block.records, &own_digests, |a| {
                if *a == supervisor.address() {
                    Some(supervisor)
                } else {
                    registry
                        .get(a)
                        .map(|e| e.public_key)
                        .or_else(|| directory.get(a).map(|k| k.key))
                }
            })
            .map_err(fail)?;

        // Included consortium blocks.
        if !header.urgency.is_well_formed() || header.urgency.len as usize != block.blocks.len() {
            return Err(fail(Reject::UrgencyVector(format!(
                "{} bits for {} blocks",
                header.urgency.len,
                block.blocks.len()
            ))));
        }
        let mut seq_updates = Seqs::new();
        let mut included = BTreeMap::new();
        let mut leaves = Vec::with_capacity(block.blocks.len());
        for (index, inner) in block.blocks.iter().enumerate() {
            let wrap = |reason| {
                fail(Reject::Included {
                    index,
                    reason: Box::new(reason),
                })
            };
            let author = inner.header.author;
            if inner.header.consortium != self.lane {
                return Err(wrap(Reject::WrongChain {
                    expected: ChainId::Consortium(self.lane, author),
                    got: inner.chain(),
                }));
            }
            let key = registry
                .get(&author)
                .map(|e| e.public_key)
                .ok_or_else(|| wrap(Reject::UnknownSigner(author)))?;
            let last = included
                .get(&author)
                .or_else(|| self.included.get(&author))
                .copied()
                .unwrap_or(0);
            if inner.header.height <= last {
                return Err(wrap(Reject::DuplicateInclusion {
                    author,
                    height: inner.header.height,
                    last,
                }));
            }
            included.insert(author, inner.header.height);
            check_seqs(&self.seqs, &inner.records, &mut seq_updates).map_err(wrap)?;
            let inner_hash = if known.checked(inner) {
                inner.hash()
            } else {
                check_consortium_block(inner, key, self.capacities.consortium, &mut signatures)
                    .map_err(wrap)?
            };
            if header.urgency.get(index) != Some(inner.header.urgent) {
                return Err(fail(Reject::UrgencyVector(format!(
                    "bit {index} does not match the block's urgency bit"
                ))));
            }
            leaves.push(inner.leaf_with(&inner_hash));
        }
        // The relay's own records come after the blocks it includes: those were written
        // first, so an author's seqs run through the included blocks, then the records.
        check_seqs(&self.seqs, &block.records, &mut seq_updates).map_err(fail)?;
        if merkle::root(&leaves) != header.blocks_root {
            return Err(fail(Reject::BlocksRoot));
        }
        if header.lane_heads.windows(2).any(|w| w[0].lane >= w[1].lane)
            || header.lane_heads.iter().any(|h| h.lane == self.lane)
        {
            return Err(fail(Reject::LaneHeads));
        }
        signatures.verify().map_err(fail)?;

        // Every check passed: advance, keeping what it takes to undo.
        let undo = Undo {
            head: self.head,
            registry_added: header.registry.added.iter().map(|e| e.address).collect(),
            elections: carries_elections.then(|| std::mem::replace(&mut self.elections, elections)),
            seqs: seq_updates
                .keys()
                .map(|a| (*a, self.seqs.get(a).copied()))
                .collect(),
            included: included
                .keys()
                .map(|a| (*a, self.included.get(a).copied()))
                .collect(),
        };
        for entry in &header.registry.added {
            directory.add(self.lane, entry);
        }
        if let std::borrow::Cow::Owned(registry) = registry {
            self.registry = registry;
        }
        self.seqs.extend(seq_updates);
        self.included.extend(included);
        self.head = Head {
            height: header.height,
            hash,
        };
        self.positions.push((hash, header.epoch));
        Ok(undo)
    }
}

/// The validation state of any chain: what `verify` and the nodes keep per chain.
#[derive(Clone, Debug)]
pub enum LaneState {
    /// A private chain.
    Private(PrivateLane),
    /// A consortium lane.
    Consortium(ConsortiumLane),
    /// A relay lane.
    Relay(Box<RelayLane>),
}

impl LaneState {
    /// The empty state of `chain`. Keys come from `directory`, so a member that joined must
    /// be learnt (from a relay lane) before its own chains are checked.
    pub fn new(
        genesis: &Genesis,
        directory: &Directory,
        chain: ChainId,
    ) -> Result<LaneState, BlockError> {
        let unknown = |address| BlockError {
            chain,
            height: 1,
            reason: Reject::UnknownSigner(address),
        };
        let capacity = genesis.capacities.consortium;
        Ok(match chain {
            ChainId::Private(owner) => {
                let key = directory.get(&owner).ok_or_else(|| unknown(owner))?.key;
                LaneState::Private(PrivateLane::new(owner, key, capacity))
            }
            ChainId::Consortium(consortium, member) => {
                let key = directory.get(&member).ok_or_else(|| unknown(member))?.key;
                LaneState::Consortium(ConsortiumLane::new(consortium, member, key, capacity))
            }
            ChainId::Relay(lane) => LaneState::Relay(Box::new(RelayLane::new(genesis, lane))),
        })
    }

    /// The head.
    pub fn head(&self) -> Head {
        match self {
            LaneState::Private(lane) => lane.head,
            LaneState::Consortium(lane) => lane.head,
            LaneState::Relay(lane) => lane.head,
        }
    }

    /// Checks a block of any kind against this chain, and advances on success.
    pub fn append(
        &mut self,
        block: &AnyBlock,
        directory: &mut Directory,
    ) -> Result<(), BlockError> {
        match (self, block) {
            (LaneState::Private(lane), AnyBlock::Private(b)) => lane.append(b),
            (LaneState::Consortium(lane), AnyBlock::Consortium(b)) => lane.append(b),
            (LaneState::Relay(lane), AnyBlock::Relay(b)) => lane.append(b, directory),
            (lane, other) => {
                let expected = match lane {
                    LaneState::Private(l) => ChainId::Private(l.owner),
                    LaneState::Consortium(l) => ChainId::Consortium(l.consortium, l.member),
                    LaneState::Relay(l) => ChainId::Relay(l.lane),
                };
                Err(BlockError {
                    chain: expected,
                    height: other.height(),
                    reason: Reject::WrongChain {
                        expected,
                        got: other.chain(),
                    },
                })
            }
        }
    }
}
