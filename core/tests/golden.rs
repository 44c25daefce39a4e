//! Golden bytes (SPEC §7 "keep golden-byte tests so that any format change is deliberate").
//!
//! Each test builds a fixed value by hand and compares its canonical encoding, or its
//! digest, with the hex frozen below. **If one of these tests fails, the wire and storage
//! format has changed**: every stored chain, every signature and every digest computed by
//! an older build no longer matches. That may be intended (a new field, a new record kind,
//! a new domain string), but then it is a format change: bump the affected `v1` domain
//! strings or add a migration, say so in the commit, and only then paste the new hex here.
//! Never update these constants just to make the test pass.
//!
//! The frozen values were generated once and checked by eye: integers are bincode varints
//! (one byte below 251, `fb`/`fc`/`fd` plus 2/4/8 little-endian bytes above), enum tags and
//! lengths are single-byte varints, fixed arrays (addresses, hashes, keys, signatures) carry
//! no length, and ed25519 signatures are deterministic (RFC 8032), so they are stable too.

// Tests may unwrap (STYLE.md, "Gates").
#![allow(clippy::unwrap_used)]

use ieschain_core::block::{LaneHead, RegistryUpdate, RelayHeader, UrgencyBits};
use ieschain_core::codec::{decode, encode};
use ieschain_core::election::{
    CandidateStat, ElectionReason, ElectionRecord, LanePosition, WeightFn,
};
use ieschain_core::record::Role;
use ieschain_core::registry::RegistryEntry;
use ieschain_core::{
    Address, Audience, ChainBlock, ConsortiumBlock, ConsortiumId, Domain, Hash, Keypair, Record,
    RecordBody, RecordContent,
};

/// The key of every golden signature.
fn golden_key() -> Keypair {
    Keypair::derive(Domain::NodeKey, 1, "golden")
}

/// A hash whose 32 bytes are all `byte`, so that it stands out in the hex.
fn filled(byte: u8) -> Hash {
    Hash([byte; 32])
}

fn golden_record() -> Record {
    let key = golden_key();
    RecordContent {
        author: key.address(),
        seq: 7,
        // 2026-01-01T00:00:00Z in ms: an eight-byte varint (fd + u64 LE).
        created_at: 1_767_225_600_000,
        audience: Audience::Consortiums(vec![ConsortiumId(0), ConsortiumId(3)]),
        body: RecordBody::EnergySupply {
            wh: 1_500,
            price: 120,
            slot: 42,
        },
    }
    .sign(&key)
}

fn golden_consortium_block() -> ConsortiumBlock {
    ConsortiumBlock::seal(
        &golden_key(),
        ConsortiumId(1),
        3,
        filled(0xaa),
        1_767_225_601_000,
        vec![golden_record()],
    )
}

fn golden_relay_header() -> RelayHeader {
    let key = golden_key();
    RelayHeader {
        lane: ConsortiumId(2),
        height: 300,
        prev: filled(0x11),
        epoch: 4,
        relay: key.address(),
        time: 1_767_225_602_000,
        urgency: UrgencyBits::from_bits([true, false, true]),
        registry: RegistryUpdate {
            root: filled(0x22),
            added: vec![RegistryEntry {
                address: key.address(),
                public_key: key.public(),
                name: "grid-9".into(),
                role: Role::User,
                relay_capable: false,
            }],
        },
        blocks_root: filled(0x33),
        records_root: filled(0x44),
        lane_heads: vec![LaneHead {
            lane: ConsortiumId(0),
            height: 70_000,
            hash: filled(0x55),
        }],
    }
}

fn golden_election() -> ElectionRecord {
    ElectionRecord {
        consortium: ConsortiumId(1),
        epoch: 2,
        source: 1,
        reason: ElectionReason::Rotation,
        relay: Address([0x01; 20]),
        backup: Some(Address([0x02; 20])),
        candidates: vec![
            CandidateStat {
                address: Address([0x01; 20]),
                failures: 0,
                terms: 1,
            },
            CandidateStat {
                address: Address([0x02; 20]),
                failures: 1,
                terms: 3,
            },
        ],
        weight_fn: WeightFn::Exponential { k_milli: 3000 },
        lane_head: LanePosition {
            height: 9,
            hash: filled(0x66),
        },
        prev_election: filled(0x77),
        seed: filled(0x88),
    }
}

/// Asserts that `bytes` are `expected_hex`, and that they decode back to `value`.
macro_rules! assert_golden {
    ($ty:ty, $value:expr, $expected_hex:expr) => {{
        let value: $ty = $value;
        let bytes = encode(&value);
        assert_eq!(
            hex::encode(&bytes),
            $expected_hex,
            "the encoding of {} changed: this is a format change",
            stringify!($ty)
        );
        assert_eq!(decode::<$ty>(&bytes), Ok(value));
    }};
}

/// The golden key and its address: `blake3::derive_key("ieschain address v1", key)[..20]`.
#[test]
fn golden_key_and_address() {
    let key = golden_key();
    assert_eq!(hex::encode(key.public().0), GOLDEN_PUBLIC_KEY);
    assert_eq!(key.address().to_string(), GOLDEN_ADDRESS);
    assert_eq!(key.public().address(), key.address());
    // The address is the first 20 bytes of the domain hash of the key.
    let digest = Hash::of(Domain::Address, &[&key.public().0]);
    assert_eq!(&digest.0[..20], &key.address().0);
}

/// `Hash::of` in two domains: the same input gives different, frozen digests.
#[test]
fn golden_domain_hashes() {
    let record = Hash::of(Domain::Record, &[b"golden"]);
    let node = Hash::of(Domain::MerkleNode, &[b"gol", b"den"]);
    assert_eq!(record.to_string(), GOLDEN_HASH_RECORD);
    assert_eq!(node.to_string(), GOLDEN_HASH_MERKLE_NODE);
    assert_ne!(
        Hash::of(Domain::MerkleNode, &[b"golden"]),
        record,
        "domains separate"
    );
    assert_eq!(
        Hash::of(Domain::MerkleNode, &[b"golden"]),
        node,
        "parts are concatenated"
    );
}

/// A signed record: its bytes, its digest and its signature are frozen.
#[test]
fn golden_record_bytes() {
    let record = golden_record();
    assert_eq!(record.digest().to_string(), GOLDEN_RECORD_DIGEST);
    assert_eq!(record.verify(&golden_key().public()), Ok(()));
    assert_golden!(Record, record, GOLDEN_RECORD);
}

/// A sealed consortium block: its bytes and header hash are frozen.
#[test]
fn golden_consortium_block_bytes() {
    let block = golden_consortium_block();
    assert!(block.header.urgent, "energy supply is urgent");
    assert_eq!(block.hash().to_string(), GOLDEN_CONSORTIUM_HASH);
    assert_golden!(ConsortiumBlock, block, GOLDEN_CONSORTIUM_BLOCK);
}

/// A relay header with every field set: its bytes are frozen.
#[test]
fn golden_relay_header_bytes() {
    assert_golden!(RelayHeader, golden_relay_header(), GOLDEN_RELAY_HEADER);
}

/// An election record: its bytes are frozen.
#[test]
fn golden_election_record_bytes() {
    assert_golden!(ElectionRecord, golden_election(), GOLDEN_ELECTION);
}

const GOLDEN_PUBLIC_KEY: &str = "662ed2d5fce0d4c129a4a5930400f2fc947c0add335a83d44126841811c6ca99";
const GOLDEN_ADDRESS: &str = "c0d12e32889a17fd497b1f8b1502cc6beef21ef4";
const GOLDEN_HASH_RECORD: &str = "194d91f07454894e3bbf1a0e691e8e8bd8be012fa8b01680eda0c936d35a1f81";
const GOLDEN_HASH_MERKLE_NODE: &str =
    "2aa586bc3c9978258cb532df5424234f24346d4ad58931fde0ad8b17453999fd";
const GOLDEN_RECORD_DIGEST: &str =
    "8fad33742919cbeaab66fe3c99ae08383d23b2bb4f3ce15a82ec043fb4ae0d6f";
const GOLDEN_RECORD: &str = concat!(
    // author: the golden key's address (20 bytes, no length)
    "c0d12e32889a17fd497b1f8b1502cc6beef21ef4",
    // seq 7
    "07",
    // created_at 1_767_225_600_000: fd, then the u64 little-endian
    "fd00a8da769b010000",
    // audience: Consortiums (tag 1), two ids, 0 and 3
    "01020003",
    // body: EnergySupply (tag 0), wh 1500 (fb, then u16 LE 0x05dc), price 120, slot 42
    "00fbdc05782a",
    // signature: 64 bytes (ed25519 is deterministic)
    "33f6fb4675981cff36ac830a44761ec13de6a5f5d136774a31d36d362cee72c6",
    "03c460f7257544d86a19907b5af9e426f03832fa97267730fd5778306cf52405",
);
const GOLDEN_CONSORTIUM_HASH: &str =
    "fd3fddc90384f7ad3d363b5583ebb43e4e257e30cfacc7e3e49f7fb85fd1ffdf";
const GOLDEN_CONSORTIUM_BLOCK: &str = concat!(
    "01c0d12e32889a17fd497b1f8b1502cc6beef21ef403aaaaaaaaaaaaaaaaaaaa",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaafde8abda769b01000093",
    "81c0464f773acb0785ed912cbb1f61ee7bfaf677a5b3ecac55926da8e365d001",
    "01c0d12e32889a17fd497b1f8b1502cc6beef21ef407fd00a8da769b01000001",
    "02000300fbdc05782a33f6fb4675981cff36ac830a44761ec13de6a5f5d13677",
    "4a31d36d362cee72c603c460f7257544d86a19907b5af9e426f03832fa972677",
    "30fd5778306cf52405d3baa2054d1ba436f5d0e2440da81fa85493c9ad6c52c6",
    "9ea85e2275b62fd6e3a574cb8d13c414a34b5bc792d8a46bec3f4667a46e7359",
    "35440bb3e1c0c9fc0a",
);
const GOLDEN_RELAY_HEADER: &str = concat!(
    // lane 2, height 300 (fb, u16 LE 0x012c)
    "02fb2c01",
    // prev
    "1111111111111111111111111111111111111111111111111111111111111111",
    // epoch 4, relay
    "04c0d12e32889a17fd497b1f8b1502cc6beef21ef4",
    // time 1_767_225_602_000
    "fdd0afda769b010000",
    // urgency: 3 bits, 1 byte, 0b101
    "030105",
    // registry: root, 1 addition (address, key, name "grid-9", User, not relay-capable)
    "222222222222222222222222222222222222222222222222222222222222222201",
    "c0d12e32889a17fd497b1f8b1502cc6beef21ef4",
    "662ed2d5fce0d4c129a4a5930400f2fc947c0add335a83d44126841811c6ca99",
    "06677269642d390100",
    // blocks_root, records_root
    "3333333333333333333333333333333333333333333333333333333333333333",
    "4444444444444444444444444444444444444444444444444444444444444444",
    // lane_heads: 1; lane 0, height 70,000 (fc, u32 LE), hash
    "0100fc70110100",
    "5555555555555555555555555555555555555555555555555555555555555555",
);
const GOLDEN_ELECTION: &str = concat!(
    // consortium 1, epoch 2, source 1 (SPEC §14), reason Rotation (tag 2)
    "01020102",
    // relay
    "0101010101010101010101010101010101010101",
    // backup: Some (tag 1), address
    "010202020202020202020202020202020202020202",
    // candidates: 2; each address, failures, terms
    "02",
    "01010101010101010101010101010101010101010001",
    "02020202020202020202020202020202020202020103",
    // weight_fn: Exponential (tag 0), k_milli 3000 (fb, u16 LE 0x0bb8)
    "00fbb80b",
    // lane_head: height 9, hash
    "096666666666666666666666666666666666666666666666666666666666666666",
    // prev_election
    "7777777777777777777777777777777777777777777777777777777777777777",
    // seed
    "8888888888888888888888888888888888888888888888888888888888888888",
);
