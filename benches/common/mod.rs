//! Fixtures shared by the benches: a sample federation, full consortium and relay blocks
//! built from real signed records, and a short criterion configuration.
//!
//! Everything here is built before any timed part: signing is the client's work (SPEC §12
//! D8), so no bench times it except `crypto/sign`.
//!
//! Each bench file includes this module with `mod common;` and uses only part of it.
#![allow(dead_code)]

use std::time::Duration;

use criterion::Criterion;
use ieschain_core::block::{ConsortiumBlock, RelayBlock, RelayDraft};
use ieschain_core::codec;
use ieschain_core::crypto::{Hash, Keypair, PublicKey, Signature};
use ieschain_core::genesis::Capacities;
use ieschain_core::ids::ConsortiumId;
use ieschain_core::record::{Audience, Record, RecordBody, RecordContent};
use ieschain_core::sample::{SampleFederation, SampleMember, FOUR_PARTY, SAMPLE_EPOCH_MS};
use ieschain_core::ChainBlock;

/// The seed of every bench fixture.
pub const SEED: u64 = 2026;

/// Members per consortium: enough for seven distinct authors in one relay block.
pub const MEMBERS: usize = 8;

/// A criterion configuration short enough that the whole set runs in a few minutes on a
/// shared two-core machine.
pub fn quick() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args()
}

/// Whether the bench binary runs in test mode, where criterion runs every benchmark once
/// and extra measurements should be skipped: `-- --test`, `-- --list`, or no `--bench`
/// argument at all (`cargo test --benches`), as criterion itself decides.
pub fn test_mode() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    has("--test") || has("--list") || !has("--bench")
}

/// The paper's four-party federation with [`MEMBERS`] members per consortium.
pub fn federation() -> SampleFederation {
    SampleFederation::four_party(SEED, MEMBERS)
}

/// The members of consortium 0, in address order.
pub fn members(federation: &SampleFederation) -> Vec<&SampleMember> {
    federation.members_of(ConsortiumId(0)).collect()
}

/// The `n`-th service record of a realistic mix: the six services of the paper, urgent and
/// normal, internal and external, with short text fields (about 110 to 200 encoded bytes).
pub fn service_record(key: &Keypair, consortium: ConsortiumId, seq: u64) -> Record {
    let other = ConsortiumId((consortium.0 + 1) % FOUR_PARTY.len() as u16);
    let external = Audience::Consortiums(vec![consortium, other]);
    let (audience, body) = match seq % 6 {
        0 => (
            external,
            RecordBody::EnergySupply {
                wh: 1_000 * seq,
                price: 90 * seq,
                slot: seq,
            },
        ),
        1 => (
            Audience::Own,
            RecordBody::EquipmentMaintenance {
                equipment: format!("transformer-{seq}"),
                detail: "annual inspection of the 10 kV switchgear and relays".into(),
            },
        ),
        2 => (
            Audience::Own,
            RecordBody::EfficiencyAudit {
                site: format!("industrial-park-{seq}"),
                score_permille: 700 + (seq % 300) as u32,
            },
        ),
        3 => (
            Audience::Own,
            RecordBody::EnergySavingDesign {
                site: format!("office-block-{seq}"),
                saving_wh: 12_000 + seq,
            },
        ),
        4 => (
            external,
            RecordBody::DataTrade {
                digest: Hash::of(ieschain_core::Domain::Record, &[&seq.to_be_bytes()]),
                description: "quarterly consumption profile, 15-minute resolution".into(),
                price: 500,
                size: 4096,
            },
        ),
        _ => (
            external,
            RecordBody::DistributedEnergy {
                wh: 250 * seq,
                price: 20 * seq,
                slot: seq + 1,
            },
        ),
    };
    RecordContent {
        author: key.address(),
        seq,
        created_at: SAMPLE_EPOCH_MS + seq,
        audience,
        body,
    }
    .sign(key)
}

/// `count` service records by `member`, with seqs `first_seq..first_seq + count`.
pub fn records(member: &SampleMember, first_seq: u64, count: usize) -> Vec<Record> {
    (first_seq..first_seq + count as u64)
        .map(|seq| service_record(&member.key, member.consortium, seq))
        .collect()
}

/// A consortium block of `member` at `height` with `count` records starting at `first_seq`.
pub fn consortium_block(
    member: &SampleMember,
    height: u64,
    prev: Hash,
    first_seq: u64,
    count: usize,
) -> ConsortiumBlock {
    ConsortiumBlock::seal(
        &member.key,
        member.consortium,
        height,
        prev,
        SAMPLE_EPOCH_MS + height * 1_000,
        records(member, first_seq, count),
    )
}

/// A FULL consortium block: as many service records as fit in the default 1 Mbit
/// (131,072 encoded bytes, header included), with seqs from `first_seq`.
pub fn full_consortium_block(
    member: &SampleMember,
    height: u64,
    prev: Hash,
    first_seq: u64,
) -> ConsortiumBlock {
    let capacity = Capacities::CONSORTIUM_DEFAULT as usize;
    let seal = |records: Vec<Record>| {
        ConsortiumBlock::seal(
            &member.key,
            member.consortium,
            height,
            prev,
            SAMPLE_EPOCH_MS + height * 1_000,
            records,
        )
    };
    // Fill greedily on the sum of record sizes (the length prefix grows by two bytes past
    // 250 records), then trim until the sealed block fits.
    let overhead = codec::encoded_len(&seal(Vec::new())) + 2;
    let mut records = Vec::new();
    let mut size = overhead;
    let mut seq = first_seq;
    loop {
        let record = service_record(&member.key, member.consortium, seq);
        let len = codec::encoded_len(&record);
        if size + len > capacity {
            break;
        }
        size += len;
        records.push(record);
        seq += 1;
    }
    loop {
        let block = seal(records.clone());
        if codec::encoded_len(&block) <= capacity {
            return block;
        }
        records.pop();
    }
}

/// A FULL relay block: [`Capacities::max_window`] (7) full consortium blocks from distinct
/// members of consortium 0, sealed by the first member as relay.
pub fn full_relay_block(federation: &SampleFederation) -> RelayBlock {
    let capacities = federation.genesis.capacities;
    let window = capacities.max_window() as usize;
    let members = members(federation);
    assert!(members.len() >= window, "need {window} members");
    let blocks: Vec<ConsortiumBlock> = members
        .iter()
        .take(window)
        .map(|m| full_consortium_block(m, 1, Hash::ZERO, 1))
        .collect();
    let lane = ConsortiumId(0);
    let block = RelayDraft {
        lane,
        height: 1,
        prev: Hash::ZERO,
        epoch: 1,
        time: SAMPLE_EPOCH_MS,
        registry_root: federation.genesis.registry(lane).root(),
        added: Vec::new(),
        lane_heads: Vec::new(),
        blocks,
        records: Vec::new(),
    }
    .seal(&members[0].key);
    let size = codec::encoded_len(&block);
    assert!(
        size <= capacities.relay as usize,
        "relay block of {size} bytes exceeds {}",
        capacities.relay
    );
    block
}

/// The (key, digest, signature) triples that validating `block` checks: the header's
/// signature, then every record's, exactly as `ConsortiumLane::append` passes them to
/// `verify_all`.
pub fn signature_triples(
    block: &ConsortiumBlock,
    key: PublicKey,
) -> Vec<(PublicKey, Hash, Signature)> {
    let mut items = vec![(key, block.hash(), block.signature)];
    items.extend(block.records.iter().map(|r| (key, r.digest(), r.signature)));
    items
}

/// Formats a duration per operation as µs, for the printed summaries.
pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
