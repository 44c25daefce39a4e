//! Shared fixtures of the core test suite: proptest strategies for every encoded type, the
//! case-count knob, and lane states replayed from a sample ledger.
//!
//! Each test file is its own crate and uses only part of this module.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;

use ieschain_core::block::{
    ConsortiumHeader, LaneHead, PrivateHeader, RegistryUpdate, RelayHeader, UrgencyBits,
};
use ieschain_core::election::{
    CandidateStat, ElectionReason, ElectionRecord, LanePosition, WeightFn,
};
use ieschain_core::genesis::{Capacities, ConsortiumGenesis, Directory, Genesis};
use ieschain_core::merkle::MerkleProof;
use ieschain_core::message::{Envelope, EnvelopeHeader, Message};
use ieschain_core::record::RecordKind;
use ieschain_core::record::Role;
use ieschain_core::registry::RegistryEntry;
use ieschain_core::sample::{SampleFederation, SampleLedger};
use ieschain_core::validate::LaneState;
use ieschain_core::{
    Address, AnyBlock, Audience, ChainId, ConsortiumBlock, ConsortiumId, Hash, PrivateBlock,
    PublicKey, Record, RecordBody, RecordContent, RelayBlock, Signature,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::Config;

/// A proptest configuration with `cases` cases, unless `PROPTEST_CASES` says otherwise: the
/// defaults keep `cargo test -p ieschain-core` under half a minute on two cores, and
/// `PROPTEST_CASES=100000` runs a long campaign.
pub fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    Config {
        cases,
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------------------
// Strategies. Fields are arbitrary: signatures, keys and roots need not be valid, because a
// round trip is about the encoding only.
// ---------------------------------------------------------------------------------------

/// Any 32-byte hash.
pub fn hash() -> impl Strategy<Value = Hash> {
    any::<[u8; 32]>().prop_map(Hash)
}

/// Any address.
pub fn address() -> impl Strategy<Value = Address> {
    any::<[u8; 20]>().prop_map(Address)
}

/// Any 32 bytes as a public key (not necessarily a curve point).
pub fn public_key() -> impl Strategy<Value = PublicKey> {
    any::<[u8; 32]>().prop_map(PublicKey)
}

/// Any 64 bytes as a signature.
pub fn signature() -> impl Strategy<Value = Signature> {
    (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(r, s)| {
        let mut bytes = [0u8; 64];
        bytes[..32].copy_from_slice(&r);
        bytes[32..].copy_from_slice(&s);
        Signature(bytes)
    })
}

/// Any consortium id.
pub fn consortium() -> impl Strategy<Value = ConsortiumId> {
    any::<u16>().prop_map(ConsortiumId)
}

/// A short arbitrary Unicode string, newlines included.
pub fn text() -> impl Strategy<Value = String> {
    "(?s).{0,12}"
}

/// Any audience.
pub fn audience() -> impl Strategy<Value = Audience> {
    prop_oneof![
        Just(Audience::Own),
        vec(consortium(), 0..4).prop_map(Audience::Consortiums),
        vec(address(), 0..3).prop_map(Audience::Members),
        Just(Audience::Everyone),
    ]
}

/// Any role.
pub fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Enterprise), Just(Role::User)]
}

/// Any registry entry (the address need not match the key).
pub fn registry_entry() -> impl Strategy<Value = RegistryEntry> {
    (address(), public_key(), text(), role(), any::<bool>()).prop_map(
        |(address, public_key, name, role, relay_capable)| RegistryEntry {
            address,
            public_key,
            name,
            role,
            relay_capable,
        },
    )
}

/// Any form of `f`.
pub fn weight_fn() -> impl Strategy<Value = WeightFn> {
    prop_oneof![
        any::<u32>().prop_map(|k_milli| WeightFn::Exponential { k_milli }),
        any::<u32>().prop_map(|k_milli| WeightFn::Reciprocal { k_milli }),
        Just(WeightFn::Uniform),
    ]
}

/// Any election reason.
pub fn election_reason() -> impl Strategy<Value = ElectionReason> {
    prop_oneof![
        Just(ElectionReason::Initial),
        Just(ElectionReason::Failover),
        Just(ElectionReason::Rotation),
        Just(ElectionReason::BackupLost),
    ]
}

/// Any candidate statistic.
pub fn candidate_stat() -> impl Strategy<Value = CandidateStat> {
    (address(), any::<u32>(), any::<u32>()).prop_map(|(address, failures, terms)| CandidateStat {
        address,
        failures,
        terms,
    })
}

/// Any lane position.
pub fn lane_position() -> impl Strategy<Value = LanePosition> {
    (any::<u64>(), hash()).prop_map(|(height, hash)| LanePosition { height, hash })
}

/// Any election record (not necessarily one that recomputes).
pub fn election_record() -> impl Strategy<Value = ElectionRecord> {
    (
        (consortium(), any::<u64>(), election_reason(), address()),
        (
            proptest::option::of(address()),
            vec(candidate_stat(), 0..5),
            weight_fn(),
        ),
        (lane_position(), hash(), hash(), any::<u64>()),
    )
        .prop_map(
            |(
                (consortium, epoch, reason, relay),
                (backup, candidates, weight_fn),
                (lane_head, prev_election, seed, source),
            )| ElectionRecord {
                consortium,
                epoch,
                source,
                reason,
                relay,
                backup,
                candidates,
                weight_fn,
                lane_head,
                prev_election,
                seed,
            },
        )
}

/// A body of the given kind, with arbitrary fields. The match is exhaustive, so a new
/// kind does not compile until it has a strategy here.
pub fn body_of(kind: RecordKind) -> BoxedStrategy<RecordBody> {
    let u = any::<u64>;
    match kind {
        RecordKind::EnergySupply => (u(), u(), u())
            .prop_map(|(wh, price, slot)| RecordBody::EnergySupply { wh, price, slot })
            .boxed(),
        RecordKind::EquipmentMaintenance => (text(), text())
            .prop_map(|(equipment, detail)| RecordBody::EquipmentMaintenance { equipment, detail })
            .boxed(),
        RecordKind::EfficiencyAudit => (text(), any::<u32>())
            .prop_map(|(site, score_permille)| RecordBody::EfficiencyAudit {
                site,
                score_permille,
            })
            .boxed(),
        RecordKind::EnergySavingDesign => (text(), u())
            .prop_map(|(site, saving_wh)| RecordBody::EnergySavingDesign { site, saving_wh })
            .boxed(),
        RecordKind::DataTrade => (hash(), text(), u(), u())
            .prop_map(|(digest, description, price, size)| RecordBody::DataTrade {
                digest,
                description,
                price,
                size,
            })
            .boxed(),
        RecordKind::DistributedEnergy => (u(), u(), u())
            .prop_map(|(wh, price, slot)| RecordBody::DistributedEnergy { wh, price, slot })
            .boxed(),
        RecordKind::MeterReading => (any::<u32>(), u())
            .prop_map(|(meter, wh)| RecordBody::MeterReading { meter, wh })
            .boxed(),
        RecordKind::JoinAnnouncement => registry_entry()
            .prop_map(|entry| RecordBody::JoinAnnouncement { entry })
            .boxed(),
        RecordKind::JoinApplication => registry_entry()
            .prop_map(|entry| RecordBody::JoinApplication { entry })
            .boxed(),
        RecordKind::JoinReceipt => (address(), hash())
            .prop_map(|(newcomer, application)| RecordBody::JoinReceipt {
                newcomer,
                application,
            })
            .boxed(),
        RecordKind::PowerOffer => (u(), u(), u())
            .prop_map(|(wh, price_per_kwh, slot)| RecordBody::PowerOffer {
                wh,
                price_per_kwh,
                slot,
            })
            .boxed(),
        RecordKind::PowerBid => (hash(), u())
            .prop_map(|(offer, wh)| RecordBody::PowerBid { offer, wh })
            .boxed(),
        RecordKind::TradeAgreement => {
            ((hash(), hash(), hash()), (address(), address()), (u(), u()))
                .prop_map(|((trade, offer, bid), (seller, buyer), (wh, slot))| {
                    RecordBody::TradeAgreement {
                        trade,
                        offer,
                        bid,
                        seller,
                        buyer,
                        wh,
                        slot,
                    }
                })
                .boxed()
        }
        RecordKind::GridVote => (hash(), any::<u32>(), any::<bool>())
            .prop_map(|(trade, line, approve)| RecordBody::GridVote {
                trade,
                line,
                approve,
            })
            .boxed(),
        RecordKind::GridReceipt => (hash(), any::<bool>(), text())
            .prop_map(|(trade, approved, reason)| RecordBody::GridReceipt {
                trade,
                approved,
                reason,
            })
            .boxed(),
        RecordKind::PowerSettlement => (
            (hash(), hash(), address(), address()),
            (u(), u(), hash(), signature()),
        )
            .prop_map(
                |((trade, offer, seller, buyer), (wh, amount, grid_receipt, countersignature))| {
                    RecordBody::PowerSettlement {
                        trade,
                        offer,
                        seller,
                        buyer,
                        wh,
                        amount,
                        grid_receipt,
                        countersignature,
                    }
                },
            )
            .boxed(),
        RecordKind::DataPurchase => (hash(), u())
            .prop_map(|(offer, price)| RecordBody::DataPurchase { offer, price })
            .boxed(),
        RecordKind::DataAgreement => (hash(), address(), hash())
            .prop_map(|(trade, buyer, digest)| RecordBody::DataAgreement {
                trade,
                buyer,
                digest,
            })
            .boxed(),
        RecordKind::DataDispute => (hash(), hash(), hash())
            .prop_map(|(trade, expected, received)| RecordBody::DataDispute {
                trade,
                expected,
                received,
            })
            .boxed(),
        RecordKind::Election => election_record().prop_map(RecordBody::Election).boxed(),
        RecordKind::Activation => (consortium(), any::<u64>(), lane_position())
            .prop_map(|(consortium, epoch, config)| RecordBody::Activation {
                consortium,
                epoch,
                config,
            })
            .boxed(),
    }
}

/// A body of any kind.
pub fn record_body() -> impl Strategy<Value = RecordBody> {
    proptest::sample::select(RecordKind::ALL.to_vec()).prop_flat_map(body_of)
}

/// One body of every kind, in the order of [`RecordKind::ALL`].
pub fn one_body_of_each_kind() -> impl Strategy<Value = Vec<RecordBody>> {
    RecordKind::ALL
        .iter()
        .map(|kind| body_of(*kind))
        .collect::<Vec<_>>()
}

/// A record with the given body strategy.
pub fn record_with(body: impl Strategy<Value = RecordBody>) -> impl Strategy<Value = Record> {
    (
        address(),
        any::<u64>(),
        any::<u64>(),
        audience(),
        body,
        signature(),
    )
        .prop_map(
            |(author, seq, created_at, audience, body, signature)| Record {
                content: RecordContent {
                    author,
                    seq,
                    created_at,
                    audience,
                    body,
                },
                signature,
            },
        )
}

/// Any record.
pub fn record() -> impl Strategy<Value = Record> {
    record_with(record_body())
}

/// Any private block.
pub fn private_block() -> impl Strategy<Value = PrivateBlock> {
    (
        (address(), any::<u64>(), hash(), any::<u64>(), hash()),
        vec(record(), 0..3),
        signature(),
    )
        .prop_map(
            |((owner, height, prev, time, records_root), records, signature)| PrivateBlock {
                header: PrivateHeader {
                    owner,
                    height,
                    prev,
                    time,
                    records_root,
                },
                records,
                signature,
            },
        )
}

/// Any consortium header.
pub fn consortium_header() -> impl Strategy<Value = ConsortiumHeader> {
    (
        consortium(),
        address(),
        any::<u64>(),
        hash(),
        any::<u64>(),
        hash(),
        any::<bool>(),
    )
        .prop_map(
            |(consortium, author, height, prev, time, records_root, urgent)| ConsortiumHeader {
                consortium,
                author,
                height,
                prev,
                time,
                records_root,
                urgent,
            },
        )
}

/// Any consortium block.
pub fn consortium_block() -> impl Strategy<Value = ConsortiumBlock> {
    (consortium_header(), vec(record(), 0..3), signature()).prop_map(
        |(header, records, signature)| ConsortiumBlock {
            header,
            records,
            signature,
        },
    )
}

/// Any urgency vector: well formed (from bits) or not (arbitrary length and bytes).
pub fn urgency_bits() -> impl Strategy<Value = UrgencyBits> {
    prop_oneof![
        vec(any::<bool>(), 0..20).prop_map(UrgencyBits::from_bits),
        (any::<u32>(), vec(any::<u8>(), 0..6)).prop_map(|(len, bytes)| UrgencyBits { len, bytes }),
    ]
}

/// Any other lane's head.
pub fn lane_head() -> impl Strategy<Value = LaneHead> {
    (consortium(), any::<u64>(), hash()).prop_map(|(lane, height, hash)| LaneHead {
        lane,
        height,
        hash,
    })
}

/// Any relay header.
pub fn relay_header() -> impl Strategy<Value = RelayHeader> {
    (
        (consortium(), any::<u64>(), hash(), any::<u64>(), address()),
        (
            any::<u64>(),
            urgency_bits(),
            hash(),
            vec(registry_entry(), 0..3),
        ),
        (hash(), hash(), vec(lane_head(), 0..4)),
    )
        .prop_map(
            |(
                (lane, height, prev, epoch, relay),
                (time, urgency, root, added),
                (blocks_root, records_root, lane_heads),
            )| RelayHeader {
                lane,
                height,
                prev,
                epoch,
                relay,
                time,
                urgency,
                registry: RegistryUpdate { root, added },
                blocks_root,
                records_root,
                lane_heads,
            },
        )
}

/// Any relay block.
pub fn relay_block() -> impl Strategy<Value = RelayBlock> {
    (
        relay_header(),
        vec(consortium_block(), 0..3),
        vec(record(), 0..3),
        signature(),
    )
        .prop_map(|(header, blocks, records, signature)| RelayBlock {
            header,
            blocks,
            records,
            signature,
        })
}

/// A block of any kind.
pub fn any_block() -> impl Strategy<Value = AnyBlock> {
    prop_oneof![
        private_block().prop_map(AnyBlock::Private),
        consortium_block().prop_map(AnyBlock::Consortium),
        relay_block().prop_map(AnyBlock::Relay),
    ]
}

/// Any genesis record (not necessarily one that passes `Genesis::check`).
pub fn genesis() -> impl Strategy<Value = Genesis> {
    let consortium_genesis = (
        consortium(),
        text(),
        public_key(),
        vec(registry_entry(), 0..3),
    )
        .prop_map(|(id, name, admission_key, members)| ConsortiumGenesis {
            id,
            name,
            admission_key,
            members,
        });
    (
        hash(),
        any::<u64>(),
        (any::<u32>(), any::<u32>()),
        weight_fn(),
        public_key(),
        vec(consortium_genesis, 0..3),
    )
        .prop_map(
            |(config_hash, seed, (consortium, relay), weight_fn, supervisor, consortiums)| {
                Genesis {
                    config_hash,
                    seed,
                    capacities: Capacities { consortium, relay },
                    weight_fn,
                    supervisor,
                    consortiums,
                }
            },
        )
}

/// Any Merkle proof (not necessarily one that verifies).
pub fn merkle_proof() -> impl Strategy<Value = MerkleProof> {
    (any::<u64>(), any::<u64>(), vec(hash(), 0..9)).prop_map(|(index, leaf_count, siblings)| {
        MerkleProof {
            index,
            leaf_count,
            siblings,
        }
    })
}

// ---------------------------------------------------------------------------------------
// Replaying a sample ledger.
// ---------------------------------------------------------------------------------------

/// One block of a sample ledger with the validation state of its holder's chain just before
/// it: appending the block to a clone of `before` must succeed.
#[derive(Clone, Debug)]
pub struct Positioned {
    /// The node whose copy this is.
    pub holder: Address,
    /// The block.
    pub block: AnyBlock,
    /// The holder's state of the block's chain before the block.
    pub before: LaneState,
    /// The directory as it stood before the block.
    pub directory: Directory,
}

/// Replays `ledger` as `sample_ledger.rs` does (relay lanes first, so that joined members are
/// known before their own chains), returning every block with the state before it.
/// Panics if the ledger does not validate.
pub fn replay_positioned(federation: &SampleFederation, ledger: &SampleLedger) -> Vec<Positioned> {
    let genesis = &federation.genesis;
    let mut directory = Directory::from_genesis(genesis);
    let mut ordered: Vec<&(Address, AnyBlock)> = ledger.appends.iter().collect();
    ordered.sort_by_key(|(_, b)| !matches!(b, AnyBlock::Relay(_)));
    let mut lanes: BTreeMap<(Address, ChainId), LaneState> = BTreeMap::new();
    let mut out = Vec::new();
    for (holder, block) in ordered {
        let chain = block.chain();
        let lane = lanes
            .entry((*holder, chain))
            .or_insert_with(|| LaneState::new(genesis, &directory, chain).unwrap());
        out.push(Positioned {
            holder: *holder,
            block: block.clone(),
            before: lane.clone(),
            directory: directory.clone(),
        });
        lane.append(block, &mut directory)
            .unwrap_or_else(|e| panic!("sample ledger must validate: {e}"));
    }
    out
}

/// The blocks of one copy of every chain (the first holder's), with their states.
pub fn one_copy_per_chain(positioned: Vec<Positioned>) -> Vec<Positioned> {
    let mut first_holder: BTreeMap<ChainId, Address> = BTreeMap::new();
    positioned
        .into_iter()
        .filter(|p| *first_holder.entry(p.block.chain()).or_insert(p.holder) == p.holder)
        .collect()
}

// ---------------------------------------------------------------------------------------
// Wire messages.
// ---------------------------------------------------------------------------------------

/// Any chain id.
pub fn chain_id() -> impl Strategy<Value = ChainId> {
    prop_oneof![
        consortium().prop_map(ChainId::Relay),
        (consortium(), address()).prop_map(|(c, a)| ChainId::Consortium(c, a)),
        address().prop_map(ChainId::Private),
    ]
}

/// Any message, every variant (see [`message_names`] for the exhaustiveness guard).
pub fn message() -> impl Strategy<Value = Message> {
    let u = any::<u64>;
    prop_oneof![
        consortium_block().prop_map(|block| Message::Submit { block }),
        (u(), address(), u(), hash()).prop_map(|(epoch, author, height, hash)| Message::Ack {
            epoch,
            author,
            height,
            hash
        }),
        (u(), consortium_block()).prop_map(|(epoch, block)| Message::Replicate { epoch, block }),
        (u(), relay_block(), u()).prop_map(|(epoch, block, released)| {
            Message::ReplicateRelay {
                epoch,
                block,
                released,
            }
        }),
        (u(), hash()).prop_map(|(epoch, hash)| Message::Replicated { epoch, hash }),
        relay_block().prop_map(|block| Message::RelayBlock { block }),
        (chain_id(), u(), vec(lane_position(), 0..3))
            .prop_map(|(chain, from, have)| Message::SyncRequest { chain, from, have }),
        (chain_id(), vec(any_block(), 0..3), u()).prop_map(|(chain, blocks, head)| {
            Message::SyncBlocks {
                chain,
                blocks,
                head,
            }
        }),
        (consortium(), u(), vec(record(), 0..3)).prop_map(|(lane, height, records)| {
            Message::Forward {
                lane,
                height,
                records,
            }
        }),
        (
            consortium(),
            u(),
            proptest::option::of((u(), lane_position())),
            lane_position(),
            u()
        )
            .prop_map(|(consortium, epoch, released, head, sent_at)| {
                Message::Heartbeat {
                    consortium,
                    epoch,
                    released,
                    head,
                    sent_at,
                }
            }),
        vec(record(), 0..3).prop_map(|records| Message::Elected { records }),
        consortium().prop_map(|consortium| Message::Discover { consortium }),
        (u(), text()).prop_map(|(height, why)| Message::NotTaken { height, why }),
        (vec(record(), 0..3), vec(lane_position(), 0..3))
            .prop_map(|(records, have)| Message::SealedRead { records, have }),
        (u(), u(), lane_position(), vec((address(), u()), 0..3)).prop_map(
            |(epoch, common, head, members)| Message::ReadReply {
                epoch,
                common,
                head,
                members
            }
        ),
        (
            vec(record(), 0..3),
            lane_position(),
            vec((address(), u()), 0..3)
        )
            .prop_map(|(records, head, members)| Message::Configure {
                records,
                head,
                members
            }),
        (u(), lane_position()).prop_map(|(epoch, head)| Message::CaughtUp { epoch, head }),
        (u(), lane_position()).prop_map(|(epoch, config)| Message::Activate { epoch, config }),
        (u(), lane_position()).prop_map(|(epoch, config)| Message::Activated { epoch, config }),
        u().prop_map(|epoch| Message::ActivationRefused { epoch }),
        (u(), address()).prop_map(|(epoch, backup)| Message::BackupSilent { epoch, backup }),
        (any::<u32>(), u()).prop_map(|(incarnation, seq)| Message::Resync { incarnation, seq }),
        protocol_message(),
    ]
}

/// Any message of the protocols of SPEC §6.
pub fn protocol_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        public_key().prop_map(|key| Message::JoinIntent { key }),
        address().prop_map(|relay| Message::JoinRelay { relay }),
        (registry_entry(), signature())
            .prop_map(|(entry, credential)| Message::JoinRequest { entry, credential }),
        (record(), vec(address(), 0..3)).prop_map(|(announcement, members)| {
            Message::JoinAccepted {
                announcement,
                members,
            }
        }),
        text().prop_map(|reason| Message::JoinRefused { reason }),
        (record(), record()).prop_map(|(announcement, application)| Message::JoinApply {
            announcement,
            application
        }),
        record().prop_map(|receipt| Message::JoinReceipted { receipt }),
        record().prop_map(|announcement| Message::Joined { announcement }),
        (hash(), signature())
            .prop_map(|(trade, signature)| Message::Countersign { trade, signature }),
        (hash(), address(), address(), vec(any::<u8>(), 0..64)).prop_map(
            |(trade, seller, buyer, data)| Message::DataDelivery {
                trade,
                seller,
                buyer,
                data
            }
        ),
        hash().prop_map(|trade| Message::DataReceived { trade }),
    ]
}

/// The name of every message variant. The match has no wildcard, so a new variant does not
/// compile until [`message`] (above) generates it too.
pub fn message_names(m: &Message) -> &'static str {
    match m {
        Message::Submit { .. }
        | Message::Ack { .. }
        | Message::Replicate { .. }
        | Message::ReplicateRelay { .. }
        | Message::Replicated { .. }
        | Message::RelayBlock { .. }
        | Message::SyncRequest { .. }
        | Message::SyncBlocks { .. }
        | Message::Forward { .. }
        | Message::Heartbeat { .. }
        | Message::Elected { .. }
        | Message::Discover { .. }
        | Message::NotTaken { .. }
        | Message::SealedRead { .. }
        | Message::ReadReply { .. }
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
        | Message::DataDelivery { .. }
        | Message::DataReceived { .. } => m.name(),
    }
}

/// Any envelope: a header, a payload that is either an encoded message or arbitrary bytes,
/// a broadcast's proof or none, and any signature.
pub fn envelope() -> impl Strategy<Value = Envelope> {
    (
        (address(), address(), any::<u32>(), any::<u64>()),
        prop_oneof![
            message().prop_map(|m| ieschain_core::codec::encode(&m)),
            vec(any::<u8>(), 0..64),
        ],
        proptest::option::of(merkle_proof()),
        signature(),
    )
        .prop_map(
            |((from, to, incarnation, seq), payload, proof, signature)| Envelope {
                header: EnvelopeHeader {
                    from,
                    to,
                    incarnation,
                    seq,
                },
                payload: payload.into(),
                proof,
                signature,
            },
        )
}
