//! The on-disk layout: a fixed set of column families, each a type that names its key codec
//! and its value codec (STYLE "typed storage schemas"; SPEC §7, §12 D1).
//!
//! There is never one column family per member: a 10,000-member federation has the same
//! six column families as a four-member one, and each holder's data is a key prefix.
//! Every integer in a key is big-endian, so iteration follows height (SPEC §7).
//!
//! # Key layout
//!
//! ```text
//! column family  schema            key                                                        value
//! -------------  ----------------  ---------------------------------------------------------  ---------------------------------
//! relay          RelayBlocks       | holder 20B | 'r' | consortium u16 BE |              height u64 BE |  AnyBlock (core codec)
//! consortium     ConsortiumBlocks  | holder 20B | 'c' | consortium u16 BE | member 20B | height u64 BE |  AnyBlock (core codec)
//! private        PrivateBlocks     | holder 20B | 'p' | owner 20B |                     height u64 BE |  AnyBlock (core codec)
//! index          HashIndex         | holder 20B | block hash 32B |                                        | tag | lane | height u64 BE |
//! negotiation    Negotiations      | holder 20B | negotiation id 32B |                                    | expires_at_ms u64 BE | payload |
//! meta           Heads             | 'H' | holder 20B | tag | lane |                                     | height u64 BE | hash 32B |
//! meta           Seals             | 'S' | holder 20B |                                                  | epoch u64 BE |
//! meta           GenesisRecord     | 'G' |                                                               Genesis (core codec)
//! meta           StoreFormat       | 'F' |                                                               format u32 BE
//! ```
//!
//! `tag` is [`ChainKind::tag`] and `lane` is the chain's lane: `consortium u16 BE` for a relay
//! lane, `consortium u16 BE | member 20B` for a consortium lane, `owner 20B` for a private
//! chain. Every lane of a kind has the same length, so the key prefix of one chain is never a
//! prefix of another chain's keys, and a prefix scan never strays into a neighbour.
//!
//! Each holder keeps its own copy of a block's bytes (SPEC §12 D1 allows sharing them by
//! hash; keeping copies makes a tampered copy belong to exactly one holder, which is what
//! `verify` must name). A head is written in the same batch as its block, under the meta
//! column family so that listing every chain reads heads only, never blocks.

use ieschain_core::codec::{self, CodecError};
use ieschain_core::genesis::Genesis;
use ieschain_core::validate::Head;
use ieschain_core::{Address, AnyBlock, ChainId, ChainKind, ConsortiumId, Hash};

/// The column families of a store, a fixed set (SPEC §12 D1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cf {
    /// Relay-lane blocks.
    Relay,
    /// Consortium-lane blocks.
    Consortium,
    /// Private-chain blocks.
    Private,
    /// Block hash → location, per holder.
    Index,
    /// Negotiation state with an expiry (SPEC §7).
    Negotiation,
    /// Heads, the genesis record and the store format.
    Meta,
}

impl Cf {
    /// Every column family, in a fixed order.
    pub const ALL: [Cf; 6] = [
        Cf::Relay,
        Cf::Consortium,
        Cf::Private,
        Cf::Index,
        Cf::Negotiation,
        Cf::Meta,
    ];

    /// The column family's name in RocksDB.
    pub const fn name(self) -> &'static str {
        match self {
            Cf::Relay => "relay",
            Cf::Consortium => "consortium",
            Cf::Private => "private",
            Cf::Index => "index",
            Cf::Negotiation => "negotiation",
            Cf::Meta => "meta",
        }
    }

    /// Position in [`Cf::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Where blocks of a chain kind live.
    pub const fn of_kind(kind: ChainKind) -> Cf {
        match kind {
            ChainKind::Relay => Cf::Relay,
            ChainKind::Consortium => Cf::Consortium,
            ChainKind::Private => Cf::Private,
        }
    }
}

/// Encodes and decodes a key. Decoding any bytes returns an error, never a panic.
pub trait KeyCodec: Sized {
    /// The key's bytes.
    fn encode_key(&self) -> Vec<u8>;
    /// The key from its bytes.
    fn decode_key(bytes: &[u8]) -> Result<Self, CodecError>;
}

/// Encodes and decodes a value. Decoding any bytes returns an error, never a panic.
pub trait ValueCodec: Sized {
    /// The value's bytes.
    fn encode_value(&self) -> Vec<u8>;
    /// The value from its bytes.
    fn decode_value(bytes: &[u8]) -> Result<Self, CodecError>;
}

/// A column family (or a keyspace of one) as a type: where it lives and how its keys and
/// values are encoded.
pub trait Schema {
    /// The column family.
    const CF: Cf;
    /// The key type.
    type Key: KeyCodec;
    /// The value type.
    type Value: ValueCodec;
}

/// Relay-lane blocks.
#[derive(Debug)]
pub enum RelayBlocks {}
/// Consortium-lane blocks.
#[derive(Debug)]
pub enum ConsortiumBlocks {}
/// Private-chain blocks.
#[derive(Debug)]
pub enum PrivateBlocks {}
/// Block hash → where the block is, per holder.
#[derive(Debug)]
pub enum HashIndex {}
/// Negotiation state.
#[derive(Debug)]
pub enum Negotiations {}
/// Chain heads.
#[derive(Debug)]
pub enum Heads {}
/// The genesis record (SPEC §12 D2).
#[derive(Debug)]
pub enum GenesisRecord {}
/// The store format version.
#[derive(Debug)]
pub enum StoreFormat {}
/// The epoch each holder sealed its own lane at (SPEC §14).
#[derive(Debug)]
pub enum Seals {}

impl Schema for RelayBlocks {
    const CF: Cf = Cf::Relay;
    type Key = BlockKey;
    type Value = AnyBlock;
}
impl Schema for ConsortiumBlocks {
    const CF: Cf = Cf::Consortium;
    type Key = BlockKey;
    type Value = AnyBlock;
}
impl Schema for PrivateBlocks {
    const CF: Cf = Cf::Private;
    type Key = BlockKey;
    type Value = AnyBlock;
}
impl Schema for HashIndex {
    const CF: Cf = Cf::Index;
    type Key = IndexKey;
    type Value = Location;
}
impl Schema for Negotiations {
    const CF: Cf = Cf::Negotiation;
    type Key = NegotiationKey;
    type Value = Negotiation;
}
impl Schema for Heads {
    const CF: Cf = Cf::Meta;
    type Key = HeadKey;
    type Value = Head;
}
impl Schema for GenesisRecord {
    const CF: Cf = Cf::Meta;
    type Key = GenesisKey;
    type Value = Genesis;
}
impl Schema for StoreFormat {
    const CF: Cf = Cf::Meta;
    type Key = FormatKey;
    type Value = FormatVersion;
}
impl Schema for Seals {
    const CF: Cf = Cf::Meta;
    type Key = SealKey;
    type Value = Sealed;
}

/// Meta keyspace of heads.
const META_HEAD: u8 = b'H';
/// Meta key of the genesis record.
const META_GENESIS: u8 = b'G';
/// Meta key of the store format.
const META_FORMAT: u8 = b'F';
/// Meta keyspace of seals.
const META_SEAL: u8 = b'S';

/// Reads fixed-size fields from key and value bytes, failing cleanly on short input.
struct Reader<'a> {
    bytes: &'a [u8],
    used: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, used: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let rest = &self.bytes[self.used..];
        if rest.len() < n {
            return Err(CodecError::Malformed(format!(
                "{} bytes end after {} of a field of {n} bytes at offset {}",
                self.bytes.len(),
                rest.len(),
                self.used
            )));
        }
        self.used += n;
        Ok(&rest[..n])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, CodecError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn address(&mut self) -> Result<Address, CodecError> {
        Ok(Address(self.array()?))
    }

    fn hash(&mut self) -> Result<Hash, CodecError> {
        Ok(Hash(self.array()?))
    }

    fn expect(&mut self, byte: u8) -> Result<(), CodecError> {
        let got = self.u8()?;
        if got != byte {
            return Err(CodecError::Malformed(format!(
                "expected byte {byte:#04x}, found {got:#04x}"
            )));
        }
        Ok(())
    }

    /// The chain part of a key: `| tag | lane |`.
    fn chain(&mut self) -> Result<ChainId, CodecError> {
        let tag = self.u8()?;
        if tag == ChainKind::Relay.tag() {
            Ok(ChainId::Relay(ConsortiumId(self.u16()?)))
        } else if tag == ChainKind::Consortium.tag() {
            let consortium = ConsortiumId(self.u16()?);
            Ok(ChainId::Consortium(consortium, self.address()?))
        } else if tag == ChainKind::Private.tag() {
            Ok(ChainId::Private(self.address()?))
        } else {
            Err(CodecError::Malformed(format!(
                "unknown chain tag {tag:#04x}"
            )))
        }
    }

    fn rest(&mut self) -> &'a [u8] {
        let rest = &self.bytes[self.used..];
        self.used = self.bytes.len();
        rest
    }

    fn finish(self) -> Result<(), CodecError> {
        match self.bytes.len() - self.used {
            0 => Ok(()),
            trailing => Err(CodecError::Trailing { trailing }),
        }
    }
}

/// Appends the chain part of a key: `| tag | lane |`.
fn put_chain(out: &mut Vec<u8>, chain: &ChainId) {
    out.push(chain.kind().tag());
    match chain {
        ChainId::Relay(lane) => out.extend_from_slice(&lane.0.to_be_bytes()),
        ChainId::Consortium(consortium, member) => {
            out.extend_from_slice(&consortium.0.to_be_bytes());
            out.extend_from_slice(&member.0);
        }
        ChainId::Private(owner) => out.extend_from_slice(&owner.0),
    }
}

/// A block's place: `| holder 20B | tag | lane | height u64 BE |` in its kind's column
/// family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct BlockKey {
    /// The node that holds this copy.
    pub holder: Address,
    /// The chain.
    pub chain: ChainId,
    /// The height.
    pub height: u64,
}

impl BlockKey {
    /// The prefix shared by every block of `holder`'s copy of `chain`.
    pub fn chain_prefix(holder: Address, chain: &ChainId) -> Vec<u8> {
        let mut out = Vec::with_capacity(51);
        out.extend_from_slice(&holder.0);
        put_chain(&mut out, chain);
        out
    }

    /// The column family the key lives in.
    pub fn cf(&self) -> Cf {
        Cf::of_kind(self.chain.kind())
    }
}

impl KeyCodec for BlockKey {
    fn encode_key(&self) -> Vec<u8> {
        let mut out = BlockKey::chain_prefix(self.holder, &self.chain);
        out.extend_from_slice(&self.height.to_be_bytes());
        out
    }

    fn decode_key(bytes: &[u8]) -> Result<Self, CodecError> {
        let mut reader = Reader::new(bytes);
        let key = BlockKey {
            holder: reader.address()?,
            chain: reader.chain()?,
            height: reader.u64()?,
        };
        reader.finish()?;
        Ok(key)
    }
}

impl ValueCodec for AnyBlock {
    fn encode_value(&self) -> Vec<u8> {
        codec::encode(self)
    }

    fn decode_value(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::decode(bytes)
    }
}

/// A chain's head: `'H' | holder 20B | tag | lane |` in the meta column family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HeadKey {
    /// The holder.
    pub holder: Address,
    /// The chain.
    pub chain: ChainId,
}

impl HeadKey {
    /// The prefix of every head.
    pub fn all_prefix() -> Vec<u8> {
        vec![META_HEAD]
    }

    /// The prefix of every head `holder` holds.
    pub fn holder_prefix(holder: Address) -> Vec<u8> {
        let mut out = Vec::with_capacity(21);
        out.push(META_HEAD);
        out.extend_from_slice(&holder.0);
        out
    }
}

impl KeyCodec for HeadKey {
    fn encode_key(&self) -> Vec<u8> {
        let mut out = HeadKey::holder_prefix(self.holder);
        put_chain(&mut out, &self.chain);
        out
    }

    fn decode_key(bytes: &[u8]) -> Result<Self, CodecError> {
        let mut reader = Reader::new(bytes);
        reader.expect(META_HEAD)?;
        let key = HeadKey {
            holder: reader.address()?,
            chain: reader.chain()?,
        };
        reader.finish()?;
        Ok(key)
    }
}

impl ValueCodec for Head {
    fn encode_value(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(40);
        out.extend_from_slice(&self.height.to_be_bytes());
        out.extend_from_slice(&self.hash.0);
        out
    }

    fn decode_value(bytes: &[u8]) -> Result<Self, CodecError> {
        let mut reader = Reader::new(bytes);
        let head = Head {
            height: reader.u64()?,
            hash: reader.hash()?,
        };
        reader.finish()?;
        Ok(head)
    }
}

/// A block's hash in a holder's index: `| holder 20B | hash 32B |`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct IndexKey {
    /// The holder.
    pub holder: Address,
    /// The block's hash.
    pub hash: Hash,
}

impl KeyCodec for IndexKey {
    fn encode_key(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(52);
        out.extend_from_slice(&self.holder.0);
        out.extend_from_slice(&self.hash.0);
        out
    }

    fn decode_key(bytes: &[u8]) -> Result<Self, CodecError> {
        let mut reader = Reader::new(bytes);
        let key = IndexKey {
            holder: reader.address()?,
            hash: reader.hash()?,
        };
        reader.finish()?;
        Ok(key)
    }
}

/// Where a block is in its holder's copy: `| tag | lane | height u64 BE |`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    /// The chain.
    pub chain: ChainId,
    /// The height.
    pub height: u64,
}

impl ValueCodec for Location {
    fn encode_value(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(31);
        put_chain(&mut out, &self.chain);
        out.extend_from_slice(&self.height.to_be_bytes());
        out
    }

    fn decode_value(bytes: &[u8]) -> Result<Self, CodecError> {
        let mut reader = Reader::new(bytes);
        let location = Location {
            chain: reader.chain()?,
            height: reader.u64()?,
        };
        reader.finish()?;
        Ok(location)
    }
}

/// A negotiation held by a node: `| holder 20B | id 32B |`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct NegotiationKey {
    /// The holder.
    pub holder: Address,
    /// The negotiation's id, such as a trade id (SPEC §12 D12).
    pub id: Hash,
}

impl KeyCodec for NegotiationKey {
    fn encode_key(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(52);
        out.extend_from_slice(&self.holder.0);
        out.extend_from_slice(&self.id.0);
        out
    }

    fn decode_key(bytes: &[u8]) -> Result<Self, CodecError> {
        let mut reader = Reader::new(bytes);
        let key = NegotiationKey {
            holder: reader.address()?,
            id: reader.hash()?,
        };
        reader.finish()?;
        Ok(key)
    }
}

/// Negotiation state: an opaque payload and its deadline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiation {
    /// When it expires, ms since the Unix epoch.
    pub expires_at_ms: u64,
    /// The caller's encoding of the state.
    pub payload: Vec<u8>,
}

impl ValueCodec for Negotiation {
    fn encode_value(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.payload.len());
        out.extend_from_slice(&self.expires_at_ms.to_be_bytes());
        out.extend_from_slice(&self.payload);
        out
    }

    fn decode_value(bytes: &[u8]) -> Result<Self, CodecError> {
        let mut reader = Reader::new(bytes);
        let expires_at_ms = reader.u64()?;
        Ok(Negotiation {
            expires_at_ms,
            payload: reader.rest().to_vec(),
        })
    }
}

/// The genesis record's key: `'G'`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenesisKey;

impl KeyCodec for GenesisKey {
    fn encode_key(&self) -> Vec<u8> {
        vec![META_GENESIS]
    }

    fn decode_key(bytes: &[u8]) -> Result<Self, CodecError> {
        let mut reader = Reader::new(bytes);
        reader.expect(META_GENESIS)?;
        reader.finish()?;
        Ok(GenesisKey)
    }
}

impl ValueCodec for Genesis {
    fn encode_value(&self) -> Vec<u8> {
        codec::encode(self)
    }

    fn decode_value(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::decode(bytes)
    }
}

/// The store format's key: `'F'`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FormatKey;

impl KeyCodec for FormatKey {
    fn encode_key(&self) -> Vec<u8> {
        vec![META_FORMAT]
    }

    fn decode_key(bytes: &[u8]) -> Result<Self, CodecError> {
        let mut reader = Reader::new(bytes);
        reader.expect(META_FORMAT)?;
        reader.finish()?;
        Ok(FormatKey)
    }
}

/// A holder's seal: `'S' | holder 20B`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealKey {
    /// The holder.
    pub holder: Address,
}

impl KeyCodec for SealKey {
    fn encode_key(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(21);
        out.push(META_SEAL);
        out.extend_from_slice(&self.holder.0);
        out
    }

    fn decode_key(bytes: &[u8]) -> Result<Self, CodecError> {
        let mut reader = Reader::new(bytes);
        reader.expect(META_SEAL)?;
        let key = SealKey {
            holder: reader.address()?,
        };
        reader.finish()?;
        Ok(key)
    }
}

/// The epoch a holder sealed its own lane at (SPEC §14).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sealed(pub u64);

impl ValueCodec for Sealed {
    fn encode_value(&self) -> Vec<u8> {
        self.0.to_be_bytes().to_vec()
    }

    fn decode_value(bytes: &[u8]) -> Result<Self, CodecError> {
        let mut reader = Reader::new(bytes);
        let epoch = Sealed(reader.u64()?);
        reader.finish()?;
        Ok(epoch)
    }
}

/// The version of this layout. Bump it with any change to a key or value format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FormatVersion(pub u32);

impl FormatVersion {
    /// The format this build reads and writes.
    pub const CURRENT: FormatVersion = FormatVersion(2);
}

impl ValueCodec for FormatVersion {
    fn encode_value(&self) -> Vec<u8> {
        self.0.to_be_bytes().to_vec()
    }

    fn decode_value(bytes: &[u8]) -> Result<Self, CodecError> {
        let mut reader = Reader::new(bytes);
        let version = FormatVersion(reader.u32()?);
        reader.finish()?;
        Ok(version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn address() -> impl Strategy<Value = Address> {
        any::<[u8; 20]>().prop_map(Address)
    }

    fn hash() -> impl Strategy<Value = Hash> {
        any::<[u8; 32]>().prop_map(Hash)
    }

    fn chain() -> impl Strategy<Value = ChainId> {
        prop_oneof![
            any::<u16>().prop_map(|c| ChainId::Relay(ConsortiumId(c))),
            (any::<u16>(), address()).prop_map(|(c, m)| ChainId::Consortium(ConsortiumId(c), m)),
            address().prop_map(ChainId::Private),
        ]
    }

    fn block_key() -> impl Strategy<Value = BlockKey> {
        (address(), chain(), any::<u64>()).prop_map(|(holder, chain, height)| BlockKey {
            holder,
            chain,
            height,
        })
    }

    fn round_trips_key<K: KeyCodec + PartialEq + std::fmt::Debug>(key: &K) {
        let bytes = key.encode_key();
        assert_eq!(
            &K::decode_key(&bytes).unwrap_or_else(|e| panic!("{e}")),
            key
        );
    }

    fn round_trips_value<V: ValueCodec + PartialEq + std::fmt::Debug>(value: &V) {
        let bytes = value.encode_value();
        assert_eq!(
            &V::decode_value(&bytes).unwrap_or_else(|e| panic!("{e}")),
            value
        );
    }

    /// Decodes `bytes` as every key and value of schema `S`; the result does not matter,
    /// only that it returns.
    fn decode_any<S: Schema>(bytes: &[u8]) {
        let _ = S::Key::decode_key(bytes);
        let _ = S::Value::decode_value(bytes);
    }

    proptest! {
        /// Block keys round-trip, start with their chain's prefix, and sort by
        /// (holder, chain bytes, height): iteration within a chain follows height.
        #[test]
        fn block_keys_round_trip_and_sort_by_height(a in block_key(), h in any::<u64>()) {
            round_trips_key(&a);
            let bytes = a.encode_key();
            prop_assert!(bytes.starts_with(&BlockKey::chain_prefix(a.holder, &a.chain)));
            let b = BlockKey { height: h, ..a };
            prop_assert_eq!(a.height.cmp(&b.height), bytes.cmp(&b.encode_key()));
        }

        /// Head keys round-trip and start with their holder's prefix.
        #[test]
        fn head_keys_round_trip(holder in address(), chain in chain()) {
            let key = HeadKey { holder, chain };
            round_trips_key(&key);
            prop_assert!(key.encode_key().starts_with(&HeadKey::holder_prefix(holder)));
        }

        /// Index and negotiation keys round-trip.
        #[test]
        fn index_and_negotiation_keys_round_trip(holder in address(), h in hash()) {
            round_trips_key(&IndexKey { holder, hash: h });
            round_trips_key(&NegotiationKey { holder, id: h });
        }

        /// Fixed-format values round-trip.
        #[test]
        fn values_round_trip(
            chain in chain(),
            height in any::<u64>(),
            h in hash(),
            expires_at_ms in any::<u64>(),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            version in any::<u32>(),
        ) {
            round_trips_value(&Location { chain, height });
            round_trips_value(&Head { height, hash: h });
            round_trips_value(&Negotiation { expires_at_ms, payload });
            round_trips_value(&FormatVersion(version));
            round_trips_key(&GenesisKey);
            round_trips_key(&FormatKey);
        }

        /// Decoding arbitrary bytes as any key or value of any schema never panics.
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            decode_any::<RelayBlocks>(&bytes);
            decode_any::<ConsortiumBlocks>(&bytes);
            decode_any::<PrivateBlocks>(&bytes);
            decode_any::<HashIndex>(&bytes);
            decode_any::<Negotiations>(&bytes);
            decode_any::<Heads>(&bytes);
            decode_any::<GenesisRecord>(&bytes);
            decode_any::<StoreFormat>(&bytes);
        }

        /// Arbitrary bytes after a valid key prefix never panic either: they exercise the
        /// field readers past the holder.
        #[test]
        fn decoding_truncated_and_extended_keys_never_panics(
            key in block_key(),
            cut in 0usize..64,
            tail in proptest::collection::vec(any::<u8>(), 0..8),
        ) {
            let mut bytes = key.encode_key();
            bytes.truncate(cut);
            bytes.extend_from_slice(&tail);
            decode_any::<RelayBlocks>(&bytes);
            let mut head = HeadKey { holder: key.holder, chain: key.chain }.encode_key();
            head.truncate(cut);
            head.extend_from_slice(&tail);
            decode_any::<Heads>(&head);
        }
    }

    /// A key with a trailing byte, or cut short, is an error.
    #[test]
    fn wrong_lengths_are_errors() {
        let key = BlockKey {
            holder: Address([1; 20]),
            chain: ChainId::Relay(ConsortiumId(2)),
            height: 3,
        };
        let mut bytes = key.encode_key();
        assert_eq!(bytes.len(), 31);
        bytes.push(0);
        assert_eq!(
            BlockKey::decode_key(&bytes),
            Err(CodecError::Trailing { trailing: 1 })
        );
        assert!(BlockKey::decode_key(&bytes[..20]).is_err());
        assert!(Head::decode_value(&[0; 39]).is_err());
    }

    /// The layout table in the module docs is what the codecs write.
    #[test]
    fn key_lengths_match_the_layout_table() {
        let holder = Address([7; 20]);
        let member = Address([9; 20]);
        let lengths = [
            (ChainId::Relay(ConsortiumId(1)), 20 + 1 + 2 + 8),
            (
                ChainId::Consortium(ConsortiumId(1), member),
                20 + 1 + 2 + 20 + 8,
            ),
            (ChainId::Private(member), 20 + 1 + 20 + 8),
        ];
        for (chain, len) in lengths {
            let key = BlockKey {
                holder,
                chain,
                height: 1,
            };
            assert_eq!(key.encode_key().len(), len, "{chain}");
            assert_eq!(key.encode_key()[20], chain.kind().tag());
        }
        let key = BlockKey {
            holder,
            chain: ChainId::Relay(ConsortiumId(0x0102)),
            height: 0x0a0b,
        };
        assert_eq!(
            &key.encode_key()[21..],
            &[1, 2, 0, 0, 0, 0, 0, 0, 0x0a, 0x0b]
        );
    }
}
