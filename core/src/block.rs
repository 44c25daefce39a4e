//! The three block formats (SPEC §4.3): private, consortium and relay blocks.
//!
//! Every block is a header, a body and the producer's signature over the header's
//! domain-separated hash. The header commits to the body through Merkle roots, so the
//! block's hash is its header's hash. Heights start at 1; the first block's `prev` is
//! [`Hash::ZERO`] (SPEC §12 D2). Capacity is checked on the encoded size of the whole block,
//! header included ([`crate::genesis::Capacities`]).

use bincode::{Decode, Encode};

use crate::codec;
use crate::crypto::{Address, Domain, Hash, Keypair, Signature};
use crate::ids::{ChainId, ChainKind, ConsortiumId};
use crate::merkle;
use crate::record::{Record, Urgency};
use crate::registry::RegistryEntry;

/// What every block of every chain has in common.
pub trait ChainBlock: Encode + Decode<()> + Clone + std::fmt::Debug {
    /// The kind of chain the block belongs to.
    const KIND: ChainKind;
    /// The chain (lane) the block extends.
    fn chain(&self) -> ChainId;
    /// Its height; the first block is at height 1.
    fn height(&self) -> u64;
    /// Hash of the previous header, or zero for the first block.
    fn prev(&self) -> Hash;
    /// The hash of the header, which is the block's identity.
    fn hash(&self) -> Hash;
    /// Who produced and signed it.
    fn producer(&self) -> Address;
    /// The producer's signature over [`ChainBlock::hash`].
    fn signature(&self) -> &Signature;
    /// The block's records.
    fn records(&self) -> &[Record];
}

/// The Merkle root of a list of records.
pub fn records_root(records: &[Record]) -> Hash {
    let digests: Vec<Hash> = records.iter().map(Record::digest).collect();
    records_root_of(records, &digests)
}

/// The Merkle root of `records` whose digests the caller has computed already, one per
/// record in order: a record's digest is computed once per node (issue 12), and the same
/// digests serve the root and the signature checks.
pub fn records_root_of(records: &[Record], digests: &[Hash]) -> Hash {
    if records.len() != digests.len() {
        // Not one digest per record: the root of the records themselves, never of a part.
        return records_root(records);
    }
    let leaves: Vec<Hash> = records
        .iter()
        .zip(digests)
        .map(|(record, digest)| Record::leaf_of(digest, &record.signature))
        .collect();
    merkle::root(&leaves)
}

/// Header of a block of a member's private chain.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct PrivateHeader {
    /// The member who owns the chain.
    pub owner: Address,
    /// Height, from 1.
    pub height: u64,
    /// Hash of the previous header.
    pub prev: Hash,
    /// Production time, ms since the Unix epoch.
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::serde_json_form::rfc3339_ms")
    )]
    pub time: u64,
    /// Merkle root of the records.
    pub records_root: Hash,
}

/// A block of a private chain: a member's internal data, such as meter readings.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct PrivateBlock {
    /// The header.
    pub header: PrivateHeader,
    /// The records, all by the owner.
    pub records: Vec<Record>,
    /// The owner's signature over the header hash.
    pub signature: Signature,
}

impl PrivateBlock {
    /// Builds and signs the next block of `key`'s private chain.
    pub fn seal(key: &Keypair, height: u64, prev: Hash, time: u64, records: Vec<Record>) -> Self {
        let digests: Vec<Hash> = records.iter().map(Record::digest).collect();
        Self::seal_digested(key, height, prev, time, records, &digests)
    }

    /// [`PrivateBlock::seal`] of records whose digests the caller computed when it signed
    /// them (one per record, in order).
    pub fn seal_digested(
        key: &Keypair,
        height: u64,
        prev: Hash,
        time: u64,
        records: Vec<Record>,
        digests: &[Hash],
    ) -> Self {
        let header = PrivateHeader {
            owner: key.address(),
            height,
            prev,
            time,
            records_root: records_root_of(&records, digests),
        };
        let signature = key.sign(&header_hash(Domain::PrivateHeader, &header));
        PrivateBlock {
            header,
            records,
            signature,
        }
    }
}

fn header_hash<H: Encode>(domain: Domain, header: &H) -> Hash {
    Hash::of(domain, &[&codec::encode(header)])
}

impl ChainBlock for PrivateBlock {
    const KIND: ChainKind = ChainKind::Private;
    fn chain(&self) -> ChainId {
        ChainId::Private(self.header.owner)
    }
    fn height(&self) -> u64 {
        self.header.height
    }
    fn prev(&self) -> Hash {
        self.header.prev
    }
    fn hash(&self) -> Hash {
        header_hash(Domain::PrivateHeader, &self.header)
    }
    fn producer(&self) -> Address {
        self.header.owner
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn records(&self) -> &[Record] {
        &self.records
    }
}

/// Header of a consortium block (the paper's slave block).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ConsortiumHeader {
    /// The consortium.
    pub consortium: ConsortiumId,
    /// The member whose lane this is.
    pub author: Address,
    /// Height in the member's lane, from 1.
    pub height: u64,
    /// Hash of the previous header in the lane.
    pub prev: Hash,
    /// Production time, ms since the Unix epoch.
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::serde_json_form::rfc3339_ms")
    )]
    pub time: u64,
    /// Merkle root of the records.
    pub records_root: Hash,
    /// The urgency bit: set when any record is urgent (paper §2.2).
    pub urgent: bool,
}

/// A consortium block: one block of a member's lane of its consortium chain.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ConsortiumBlock {
    /// The header.
    pub header: ConsortiumHeader,
    /// The records, all by the author.
    pub records: Vec<Record>,
    /// The author's signature over the header hash.
    pub signature: Signature,
}

impl ConsortiumBlock {
    /// Builds and signs the next block of `key`'s lane in `consortium`, setting the urgency
    /// bit from the records.
    pub fn seal(
        key: &Keypair,
        consortium: ConsortiumId,
        height: u64,
        prev: Hash,
        time: u64,
        records: Vec<Record>,
    ) -> Self {
        let digests: Vec<Hash> = records.iter().map(Record::digest).collect();
        Self::seal_digested(key, consortium, height, prev, time, records, &digests)
    }

    /// [`ConsortiumBlock::seal`] of records whose digests the caller computed when it
    /// signed them (one per record, in order).
    pub fn seal_digested(
        key: &Keypair,
        consortium: ConsortiumId,
        height: u64,
        prev: Hash,
        time: u64,
        records: Vec<Record>,
        digests: &[Hash],
    ) -> Self {
        let header = ConsortiumHeader {
            consortium,
            author: key.address(),
            height,
            prev,
            time,
            records_root: records_root_of(&records, digests),
            urgent: records.iter().any(|r| r.urgency() == Urgency::Urgent),
        };
        let signature = key.sign(&header_hash(Domain::ConsortiumHeader, &header));
        ConsortiumBlock {
            header,
            records,
            signature,
        }
    }

    /// The block's Merkle leaf in a relay block: its header hash and signature.
    pub fn leaf(&self) -> Hash {
        self.leaf_with(&self.hash())
    }

    /// [`ConsortiumBlock::leaf`], given the header hash computed already.
    pub fn leaf_with(&self, hash: &Hash) -> Hash {
        Hash::of(Domain::MerkleLeaf, &[&hash.0, &self.signature.0])
    }

    /// Whether any record needs the relay chain (SPEC §12 D4).
    pub fn is_external(&self) -> bool {
        self.records
            .iter()
            .any(|r| r.content.audience.is_external(self.header.consortium))
    }
}

impl ChainBlock for ConsortiumBlock {
    const KIND: ChainKind = ChainKind::Consortium;
    fn chain(&self) -> ChainId {
        ChainId::Consortium(self.header.consortium, self.header.author)
    }
    fn height(&self) -> u64 {
        self.header.height
    }
    fn prev(&self) -> Hash {
        self.header.prev
    }
    fn hash(&self) -> Hash {
        header_hash(Domain::ConsortiumHeader, &self.header)
    }
    fn producer(&self) -> Address {
        self.header.author
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn records(&self) -> &[Record] {
        &self.records
    }
}

/// The urgency bit-vector of a relay block: bit `i` is the urgency bit of the `i`-th
/// included consortium block, in inclusion order, least significant bit first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct UrgencyBits {
    /// Number of bits.
    pub len: u32,
    /// The bits, packed; unused high bits of the last byte are zero.
    pub bytes: Vec<u8>,
}

impl UrgencyBits {
    /// The vector of `bits`.
    pub fn from_bits(bits: impl IntoIterator<Item = bool>) -> Self {
        let mut out = UrgencyBits::default();
        for bit in bits {
            out.push(bit);
        }
        out
    }

    /// Appends one bit.
    pub fn push(&mut self, bit: bool) {
        let index = self.len as usize;
        if index % 8 == 0 {
            self.bytes.push(0);
        }
        if bit {
            self.bytes[index / 8] |= 1 << (index % 8);
        }
        self.len += 1;
    }

    /// Bit `index`, or `None` past the end.
    pub fn get(&self, index: usize) -> Option<bool> {
        if index >= self.len as usize {
            return None;
        }
        Some(self.bytes.get(index / 8)? & (1 << (index % 8)) != 0)
    }

    /// Whether the packing is exact: the right number of bytes and no stray high bits.
    pub fn is_well_formed(&self) -> bool {
        let len = self.len as usize;
        if self.bytes.len() != len.div_ceil(8) {
            return false;
        }
        match (len % 8, self.bytes.last()) {
            (0, _) | (_, None) => true,
            (used, Some(last)) => last >> used == 0,
        }
    }

    /// How many bits are set.
    pub fn count_urgent(&self) -> usize {
        (0..self.len as usize)
            .filter(|i| self.get(*i) == Some(true))
            .count()
    }
}

/// The registry field of a relay header: the registry's root after this block, and the
/// entries this block adds (SPEC §12 D7).
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct RegistryUpdate {
    /// Root of the whole registry after the additions.
    pub root: Hash,
    /// Entries added by this block, in ascending order of address.
    pub added: Vec<RegistryEntry>,
}

/// Another lane's head, as seen by the relay when it produced the block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct LaneHead {
    /// The other lane.
    pub lane: ConsortiumId,
    /// Its height.
    pub height: u64,
    /// Its head hash.
    pub hash: Hash,
}

/// Header of a relay block (the paper's master block).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct RelayHeader {
    /// The lane: the consortium whose relays write it.
    pub lane: ConsortiumId,
    /// Height in the lane, from 1.
    pub height: u64,
    /// Hash of the previous header in the lane.
    pub prev: Hash,
    /// The relay's epoch, which fences out deposed relays (SPEC §5).
    pub epoch: u64,
    /// The relay that produced the block.
    pub relay: Address,
    /// Production time, ms since the Unix epoch.
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::serde_json_form::rfc3339_ms")
    )]
    pub time: u64,
    /// One urgency bit per included consortium block.
    pub urgency: UrgencyBits,
    /// The registry's root and this block's additions.
    pub registry: RegistryUpdate,
    /// Merkle root of the included consortium blocks.
    pub blocks_root: Hash,
    /// Merkle root of the relay's own records: receipts, elections, settlements.
    pub records_root: Hash,
    /// The heads of the other lanes this relay has seen, ascending by lane.
    pub lane_heads: Vec<LaneHead>,
}

/// A relay block: one block of a consortium's lane of the relay chain.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct RelayBlock {
    /// The header.
    pub header: RelayHeader,
    /// The included consortium blocks, in inclusion order.
    pub blocks: Vec<ConsortiumBlock>,
    /// The relay's own records.
    pub records: Vec<Record>,
    /// The relay's signature over the header hash.
    pub signature: Signature,
}

/// Everything a relay decides about its next block; [`RelayDraft::seal`] derives the rest.
#[derive(Clone, Debug)]
pub struct RelayDraft {
    /// The lane.
    pub lane: ConsortiumId,
    /// Height of the new block.
    pub height: u64,
    /// The lane's head hash.
    pub prev: Hash,
    /// The relay's epoch.
    pub epoch: u64,
    /// Production time.
    pub time: u64,
    /// Root of the registry after `added`.
    pub registry_root: Hash,
    /// Registry entries added by this block.
    pub added: Vec<RegistryEntry>,
    /// Other lanes' heads.
    pub lane_heads: Vec<LaneHead>,
    /// The consortium blocks to include.
    pub blocks: Vec<ConsortiumBlock>,
    /// The relay's own records.
    pub records: Vec<Record>,
}

impl RelayDraft {
    /// Computes roots and the urgency vector, and signs.
    pub fn seal(self, key: &Keypair) -> RelayBlock {
        let leaves: Vec<Hash> = self.blocks.iter().map(ConsortiumBlock::leaf).collect();
        let header = RelayHeader {
            lane: self.lane,
            height: self.height,
            prev: self.prev,
            epoch: self.epoch,
            relay: key.address(),
            time: self.time,
            urgency: UrgencyBits::from_bits(self.blocks.iter().map(|b| b.header.urgent)),
            registry: RegistryUpdate {
                root: self.registry_root,
                added: self.added,
            },
            blocks_root: merkle::root(&leaves),
            records_root: records_root(&self.records),
            lane_heads: self.lane_heads,
        };
        let signature = key.sign(&header_hash(Domain::RelayHeader, &header));
        RelayBlock {
            header,
            blocks: self.blocks,
            records: self.records,
            signature,
        }
    }
}

impl RelayBlock {
    /// A proof that the `index`-th included consortium block is under `blocks_root`.
    pub fn block_proof(&self, index: usize) -> Option<merkle::MerkleProof> {
        let leaves: Vec<Hash> = self.blocks.iter().map(ConsortiumBlock::leaf).collect();
        merkle::MerkleProof::build(&leaves, index)
    }
}

impl ChainBlock for RelayBlock {
    const KIND: ChainKind = ChainKind::Relay;
    fn chain(&self) -> ChainId {
        ChainId::Relay(self.header.lane)
    }
    fn height(&self) -> u64 {
        self.header.height
    }
    fn prev(&self) -> Hash {
        self.header.prev
    }
    fn hash(&self) -> Hash {
        header_hash(Domain::RelayHeader, &self.header)
    }
    fn producer(&self) -> Address {
        self.header.relay
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn records(&self) -> &[Record] {
        &self.records
    }
}

/// A block of any chain, as storage and `verify` handle them.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(tag = "chain", rename_all = "snake_case"))]
pub enum AnyBlock {
    /// A private block.
    Private(PrivateBlock),
    /// A consortium block.
    Consortium(ConsortiumBlock),
    /// A relay block.
    Relay(RelayBlock),
}

macro_rules! delegate {
    ($self:ident, $b:ident => $e:expr) => {
        match $self {
            AnyBlock::Private($b) => $e,
            AnyBlock::Consortium($b) => $e,
            AnyBlock::Relay($b) => $e,
        }
    };
}

impl AnyBlock {
    /// The chain the block extends.
    pub fn chain(&self) -> ChainId {
        delegate!(self, b => b.chain())
    }
    /// Its height.
    pub fn height(&self) -> u64 {
        delegate!(self, b => b.height())
    }
    /// Its previous hash.
    pub fn prev(&self) -> Hash {
        delegate!(self, b => b.prev())
    }
    /// Its hash.
    pub fn hash(&self) -> Hash {
        delegate!(self, b => b.hash())
    }
    /// Its records.
    pub fn records(&self) -> &[Record] {
        delegate!(self, b => b.records())
    }
}

impl From<PrivateBlock> for AnyBlock {
    fn from(b: PrivateBlock) -> Self {
        AnyBlock::Private(b)
    }
}
impl From<ConsortiumBlock> for AnyBlock {
    fn from(b: ConsortiumBlock) -> Self {
        AnyBlock::Consortium(b)
    }
}
impl From<RelayBlock> for AnyBlock {
    fn from(b: RelayBlock) -> Self {
        AnyBlock::Relay(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urgency_bits_pack_and_read_back() {
        let bits = [true, false, false, true, true, false, false, false, true];
        let vector = UrgencyBits::from_bits(bits);
        assert_eq!(vector.len, 9);
        assert_eq!(vector.bytes, vec![0b0001_1001, 0b0000_0001]);
        for (i, bit) in bits.iter().enumerate() {
            assert_eq!(vector.get(i), Some(*bit));
        }
        assert_eq!(vector.get(9), None);
        assert!(vector.is_well_formed());
        assert_eq!(vector.count_urgent(), 4);
        let mut stray = vector.clone();
        stray.bytes[1] |= 0b10;
        assert!(!stray.is_well_formed());
    }
}
