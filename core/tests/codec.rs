//! The codec (SPEC §7, §12 D6): every encoded type round-trips through
//! `codec::{encode, decode}`, and no byte string, random or a mangled valid encoding, makes
//! a decode panic or abort. A decode either gives the one value whose canonical encoding is
//! exactly the input, or an error.

// Tests may unwrap (STYLE.md, "Gates").
#![allow(clippy::unwrap_used)]

mod support;

use ieschain_core::block::{RelayHeader, UrgencyBits};
use ieschain_core::codec::{self, decode, decode_lenient, encode, encoded_len, CodecError};
use ieschain_core::election::ElectionRecord;
use ieschain_core::genesis::Genesis;
use ieschain_core::merkle::MerkleProof;
use ieschain_core::message::{Envelope, Message};
use ieschain_core::registry::RegistryEntry;
use ieschain_core::sample::SampleFederation;
use ieschain_core::{AnyBlock, ConsortiumBlock, PrivateBlock, Record, RecordContent, RelayBlock};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use support::*;

/// Checks that `value` survives `encode` → `decode` (and the lenient decode), and that
/// `encoded_len` agrees with the encoding. A macro rather than a generic function, so that
/// nothing outside `codec` names bincode's traits (SPEC §7).
macro_rules! round_trip {
    ($ty:ty, $value:expr) => {{
        let value: &$ty = $value;
        let bytes = encode(value);
        prop_assert_eq!(encoded_len(value), bytes.len());
        let strict = decode::<$ty>(&bytes);
        prop_assert_eq!(strict.as_ref(), Ok(value));
        let lenient = decode_lenient::<$ty>(&bytes);
        prop_assert_eq!(lenient.as_ref(), Ok(value));
    }};
}

proptest! {
    #![proptest_config(config(512))]

    /// A record of every one of the twenty kinds, Election included, round-trips.
    #[test]
    fn records_of_every_kind_round_trip(
        records in one_body_of_each_kind().prop_flat_map(|bodies| {
            bodies.into_iter().map(|b| record_with(Just(b))).collect::<Vec<_>>()
        })
    ) {
        prop_assert_eq!(records.len(), ieschain_core::record::RecordKind::ALL.len());
        for (record, kind) in records.iter().zip(ieschain_core::record::RecordKind::ALL) {
            prop_assert_eq!(record.kind(), kind);
            round_trip!(Record, record);
            round_trip!(RecordContent, &record.content);
        }
    }

    /// Any record round-trips, and so does its signed content.
    #[test]
    fn record_round_trips(record in record()) {
        round_trip!(Record, &record);
        round_trip!(RecordContent, &record.content);
    }

    /// Any private block round-trips.
    #[test]
    fn private_block_round_trips(block in private_block()) {
        round_trip!(PrivateBlock, &block);
    }

    /// Any consortium block round-trips.
    #[test]
    fn consortium_block_round_trips(block in consortium_block()) {
        round_trip!(ConsortiumBlock, &block);
    }

    /// Any relay block and relay header round-trip.
    #[test]
    fn relay_block_round_trips(block in relay_block()) {
        round_trip!(RelayHeader, &block.header);
        round_trip!(RelayBlock, &block);
    }

    /// A block of any kind round-trips as an `AnyBlock`.
    #[test]
    fn any_block_round_trips(block in any_block()) {
        round_trip!(AnyBlock, &block);
    }

    /// Any registry entry round-trips.
    #[test]
    fn registry_entry_round_trips(entry in registry_entry()) {
        round_trip!(RegistryEntry, &entry);
    }

    /// Any election record round-trips.
    #[test]
    fn election_record_round_trips(election in election_record()) {
        round_trip!(ElectionRecord, &election);
    }

    /// Any genesis record round-trips.
    #[test]
    fn genesis_round_trips(genesis in genesis()) {
        round_trip!(Genesis, &genesis);
    }

    /// Any Merkle proof round-trips.
    #[test]
    fn merkle_proof_round_trips(proof in merkle_proof()) {
        round_trip!(MerkleProof, &proof);
    }

    /// Any wire message (every variant) and any envelope round-trip.
    #[test]
    fn message_and_envelope_round_trip(message in message(), envelope in envelope()) {
        prop_assert!(!message_names(&message).is_empty());
        round_trip!(Message, &message);
        round_trip!(Envelope, &envelope);
    }

    /// Any urgency vector round-trips, well formed or not.
    #[test]
    fn urgency_bits_round_trip(bits in urgency_bits()) {
        round_trip!(UrgencyBits, &bits);
    }
}

proptest! {
    // 4,096 cases: every one of the 33 variants comes up many times (a variant the table
    // got wrong is found in every run, not in most).
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// A transport's class of an encoded message, read from its tag alone, is the
    /// message's own (every variant: `message()` generates them all).
    #[test]
    fn traffic_read_from_the_tag_is_the_messages(message in message()) {
        let encoded = ieschain_core::codec::encode(&message);
        prop_assert_eq!(
            ieschain_core::message::Traffic::of_encoded(&encoded),
            message.traffic(),
            "{}", message.name()
        );
    }
}

/// bincode's varint: one byte below 251, else a marker and a little-endian integer.
fn varint(value: u64) -> Vec<u8> {
    if value < 251 {
        vec![value as u8]
    } else if value <= u16::MAX as u64 {
        let mut out = vec![0xfb];
        out.extend((value as u16).to_le_bytes());
        out
    } else if value <= u32::MAX as u64 {
        let mut out = vec![0xfc];
        out.extend((value as u32).to_le_bytes());
        out
    } else {
        let mut out = vec![0xfd];
        out.extend(value.to_le_bytes());
        out
    }
}

/// Lengths that no honest encoding carries: past the decode limit, or far past memory.
const HUGE: [u64; 7] = [
    u64::MAX,
    1 << 62,
    1 << 40,
    u32::MAX as u64,
    (codec::MAX_DECODE as u64) + 1,
    (codec::MAX_DECODE as u64) / 2,
    1 << 20,
];

/// A varint claiming a huge length.
fn huge_varint() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::sample::select(HUGE.to_vec()).prop_map(varint),
        // A u128 marker, which no length may use.
        any::<u128>().prop_map(|v| {
            let mut out = vec![0xfe];
            out.extend(v.to_le_bytes());
            out
        }),
    ]
}

/// Decodes `bytes` as `$ty`, strictly and leniently. Neither may panic; a strict success
/// must be the canonical encoding of its value. Evaluates to whether it decoded.
macro_rules! try_decode {
    ($ty:ty, $bytes:expr) => {{
        let bytes: &[u8] = $bytes;
        let lenient = decode_lenient::<$ty>(bytes);
        match decode::<$ty>(bytes) {
            Ok(value) => {
                prop_assert_eq!(encode(&value), bytes);
                prop_assert!(lenient.is_ok());
                true
            }
            Err(CodecError::NonCanonical) => {
                prop_assert!(lenient.is_ok(), "non-canonical means it did decode");
                false
            }
            Err(_) => {
                prop_assert!(lenient.is_err());
                false
            }
        }
    }};
}

/// Decodes `bytes` as every top-level type. Returns how many accepted it.
fn decode_as_everything(bytes: &[u8]) -> Result<usize, TestCaseError> {
    let results = [
        try_decode!(Record, bytes),
        try_decode!(RecordContent, bytes),
        try_decode!(PrivateBlock, bytes),
        try_decode!(ConsortiumBlock, bytes),
        try_decode!(RelayBlock, bytes),
        try_decode!(RelayHeader, bytes),
        try_decode!(AnyBlock, bytes),
        try_decode!(RegistryEntry, bytes),
        try_decode!(ElectionRecord, bytes),
        try_decode!(Genesis, bytes),
        try_decode!(MerkleProof, bytes),
        try_decode!(UrgencyBits, bytes),
        try_decode!(Message, bytes),
        try_decode!(Envelope, bytes),
    ];
    Ok(results.iter().filter(|ok| **ok).count())
}

/// A way of damaging an encoding.
#[derive(Clone, Debug)]
enum Mutation {
    /// Keep only a prefix.
    Truncate(Index),
    /// Insert bytes.
    Splice(Index, Vec<u8>),
    /// Replace one byte with a varint claiming a huge length.
    HugeLength(Index, Vec<u8>),
    /// Insert a huge-length varint before a byte.
    InsertHugeLength(Index, Vec<u8>),
    /// Overwrite a run of bytes.
    Overwrite(Index, Vec<u8>),
    /// Drop a run of bytes.
    Delete(Index, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), vec(any::<u8>(), 1..16)).prop_map(|(i, b)| Mutation::Splice(i, b)),
        (any::<Index>(), huge_varint()).prop_map(|(i, b)| Mutation::HugeLength(i, b)),
        (any::<Index>(), huge_varint()).prop_map(|(i, b)| Mutation::InsertHugeLength(i, b)),
        (any::<Index>(), vec(any::<u8>(), 1..16)).prop_map(|(i, b)| Mutation::Overwrite(i, b)),
        (any::<Index>(), 1usize..32).prop_map(|(i, n)| Mutation::Delete(i, n)),
    ]
}

fn apply(mutation: &Mutation, bytes: &[u8]) -> Vec<u8> {
    let at = |i: &Index| i.index(bytes.len().max(1)).min(bytes.len());
    let mut out = bytes.to_vec();
    match mutation {
        Mutation::Truncate(i) => out.truncate(at(i)),
        Mutation::Splice(i, b) => {
            let at = at(i);
            out.splice(at..at, b.iter().copied());
        }
        Mutation::HugeLength(i, b) => {
            let at = at(i);
            let end = (at + 1).min(out.len());
            out.splice(at..end, b.iter().copied());
        }
        Mutation::InsertHugeLength(i, b) => {
            let at = at(i);
            out.splice(at..at, b.iter().copied());
        }
        Mutation::Overwrite(i, b) => {
            let at = at(i);
            for (k, byte) in b.iter().enumerate() {
                if let Some(slot) = out.get_mut(at + k) {
                    *slot = *byte;
                }
            }
        }
        Mutation::Delete(i, n) => {
            let at = at(i);
            let end = (at + n).min(out.len());
            out.drain(at..end);
        }
    }
    out
}

/// The encoding of a valid-shaped value of any top-level type.
fn any_encoding() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        record().prop_map(|v| encode(&v)),
        private_block().prop_map(|v| encode(&v)),
        consortium_block().prop_map(|v| encode(&v)),
        relay_block().prop_map(|v| encode(&v)),
        any_block().prop_map(|v| encode(&v)),
        registry_entry().prop_map(|v| encode(&v)),
        election_record().prop_map(|v| encode(&v)),
        genesis().prop_map(|v| encode(&v)),
        merkle_proof().prop_map(|v| encode(&v)),
        urgency_bits().prop_map(|v| encode(&v)),
        message().prop_map(|v| encode(&v)),
        envelope().prop_map(|v| encode(&v)),
    ]
}

proptest! {
    #![proptest_config(config(2048))]

    /// Random bytes decode as every top-level type without panicking.
    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..600)) {
        decode_as_everything(&bytes)?;
    }

    /// Bytes that open (or continue) with a varint claiming a huge length are refused
    /// without an allocation failure, whatever follows.
    #[test]
    fn huge_length_prefixes_never_panic(
        head in vec(any::<u8>(), 0..40),
        huge in huge_varint(),
        tail in vec(any::<u8>(), 0..64),
    ) {
        decode_as_everything(&huge)?;
        let mut bytes = huge.clone();
        bytes.extend(&tail);
        decode_as_everything(&bytes)?;
        let mut bytes = head;
        bytes.extend(&huge);
        bytes.extend(&tail);
        decode_as_everything(&bytes)?;
    }

    /// Valid encodings, truncated, spliced, overwritten, cut, or with a byte replaced by a
    /// huge length, decode as every type without panicking.
    #[test]
    fn mutated_encodings_never_panic(
        bytes in any_encoding(),
        mutations in vec(mutation(), 1..4),
    ) {
        let mut bytes = bytes;
        for m in &mutations {
            bytes = apply(m, &bytes);
            decode_as_everything(&bytes)?;
        }
    }
}

/// A varint may not be stretched: 5 written with a u16, u32 or u64 marker decodes to the
/// same value, so the canonical check must refuse it (SPEC §12 D6), here inside a block.
#[test]
fn stretched_varints_in_a_block_are_non_canonical() {
    let federation = SampleFederation::four_party(11, 3);
    let ledger = federation.ledger(1);
    let block = ledger
        .appends
        .iter()
        .find_map(|(_, b)| match b {
            AnyBlock::Private(p) => Some(p.clone()),
            _ => None,
        })
        .unwrap();
    let bytes = encode(&block);
    // The header opens with the 20-byte owner; the height (1) follows as one byte.
    assert_eq!(bytes[20], 1);
    for stretched in [vec![0xfb, 1, 0], vec![0xfc, 1, 0, 0, 0], {
        let mut v = vec![0xfd];
        v.extend(1u64.to_le_bytes());
        v
    }] {
        let mut mangled = bytes.clone();
        mangled.splice(20..21, stretched);
        assert_eq!(
            decode_lenient::<PrivateBlock>(&mangled).as_ref(),
            Ok(&block),
            "bincode itself accepts the long form"
        );
        assert_eq!(
            decode::<PrivateBlock>(&mangled),
            Err(CodecError::NonCanonical)
        );
    }
}

/// Exhaustively: every byte of real blocks of every kind, replaced by every huge length,
/// decodes without panicking; at the known length prefixes (the record lists) the result
/// is an error, not a giant allocation.
#[test]
fn huge_length_at_every_offset_of_real_blocks() {
    let federation = SampleFederation::four_party(12, 3);
    let ledger = federation.ledger(2);
    let mut kinds_seen = [false; 3];
    for (_, block) in &ledger.appends {
        let kind = match block {
            AnyBlock::Private(_) => 0,
            AnyBlock::Consortium(_) => 1,
            AnyBlock::Relay(_) => 2,
        };
        if std::mem::replace(&mut kinds_seen[kind], true) {
            continue;
        }
        let bytes = encode(block);
        for at in 0..bytes.len() {
            for huge in [u64::MAX, 1 << 40, u32::MAX as u64] {
                let mut mangled = bytes.clone();
                mangled.splice(at..at + 1, varint(huge));
                let _ = decode::<AnyBlock>(&mangled);
            }
        }
        // The records list of a private or consortium block follows its header (after the
        // one-byte AnyBlock tag).
        let records_at = match block {
            AnyBlock::Private(b) => Some(1 + encode(&b.header).len()),
            AnyBlock::Consortium(b) => Some(1 + encode(&b.header).len()),
            AnyBlock::Relay(_) => None,
        };
        if let Some(at) = records_at {
            assert_eq!(bytes[at] as usize, block.records().len());
            for huge in HUGE {
                let mut mangled = bytes.clone();
                mangled.splice(at..at + 1, varint(huge));
                assert!(
                    matches!(decode::<AnyBlock>(&mangled), Err(CodecError::Malformed(_))),
                    "records length {huge} at {at}"
                );
            }
        }
    }
    assert_eq!(kinds_seen, [true; 3]);
}

/// The relay block's list of included blocks and the strings inside records are length
/// prefixed too; a huge count there is an error.
#[test]
fn huge_inner_lengths_in_a_relay_block_are_errors() {
    let federation = SampleFederation::four_party(13, 3);
    let ledger = federation.ledger(2);
    let relay = ledger
        .appends
        .iter()
        .find_map(|(_, b)| match b {
            AnyBlock::Relay(r) if !r.blocks.is_empty() => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    let bytes = encode(&relay);
    let at = encode(&relay.header).len();
    assert_eq!(bytes[at] as usize, relay.blocks.len());
    for huge in HUGE {
        let mut mangled = bytes.clone();
        mangled.splice(at..at + 1, varint(huge));
        assert!(
            matches!(
                decode::<RelayBlock>(&mangled),
                Err(CodecError::Malformed(_))
            ),
            "blocks length {huge}"
        );
    }
}
