//! A relay that signs anything: differential test of `RelayLane::append` against a small
//! model of what SPEC §4.3, §5 and §12 D3 allow.
//!
//! The relay of consortium 0 holds its own key, so it can put any consortium blocks it has
//! seen, in any order and any number, into a block it signs, add its own records and
//! registry entries, claim any epoch, or let another member sign. It cannot sign for
//! members or the supervisor. For random such blocks, the lane must accept exactly those
//! the model accepts: every included block fresh (above its author's last inclusion, in
//! order, once), of this consortium and untampered; the relay's own records not replayed;
//! the registry additions new and the root right; the urgency vector true; the epoch the
//! elected one and the producer the elected relay.

// Tests may unwrap (STYLE.md, "Gates").
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use ieschain_core::block::RelayDraft;
use ieschain_core::genesis::Directory;
use ieschain_core::record::Role;
use ieschain_core::registry::RegistryEntry;
use ieschain_core::sample::{SampleFederation, SAMPLE_EPOCH_MS};
use ieschain_core::validate::RelayLane;
use ieschain_core::{
    Address, AnyBlock, Audience, ChainBlock, ConsortiumBlock, ConsortiumId, Domain, Hash, Keypair,
    Record, RecordBody, RecordContent,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use support::config;

const LANE: ConsortiumId = ConsortiumId(0);

/// A consortium block the relay has seen, with what the model needs to know about it.
#[derive(Clone, Debug)]
struct Seen {
    block: ConsortiumBlock,
    /// Whether it could be included at all: of this consortium, untampered, not included
    /// before.
    fresh: bool,
    /// Its position among its author's fresh blocks (they must be included in this order).
    rank: u64,
}

struct World {
    federation: SampleFederation,
    lane: RelayLane,
    directory: Directory,
    relay: Keypair,
    backup: Keypair,
    seen: Vec<Seen>,
    /// A relay record with a seq above every seq in `seen`, and one replaying an old seq.
    own_record: Record,
    replayed_record: Record,
    newcomer: RegistryEntry,
}

fn record(key: &Keypair, seq: u64, body: RecordBody) -> Record {
    RecordContent {
        author: key.address(),
        seq,
        created_at: SAMPLE_EPOCH_MS + seq,
        audience: Audience::Everyone,
        body,
    }
    .sign(key)
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let federation = SampleFederation::four_party(33, 3);
        let ledger = federation.ledger(2);
        let mut history: Vec<ieschain_core::RelayBlock> = Vec::new();
        let mut foreign = None;
        for (_, block) in &ledger.appends {
            if let AnyBlock::Relay(r) = block {
                if r.header.lane == LANE && !history.contains(r) {
                    history.push(r.clone());
                }
                if r.header.lane != LANE && foreign.is_none() {
                    foreign = r.blocks.first().cloned();
                }
            }
        }
        let mut directory = Directory::from_genesis(&federation.genesis);
        let mut lane = RelayLane::new(&federation.genesis, LANE);
        for block in &history {
            lane.append(block, &mut directory).unwrap();
        }
        let key_of = |a: &Address| federation.member_by_address(a).unwrap().key.clone();
        let relay = key_of(&lane.elections.relay.unwrap());
        let backup = key_of(&lane.elections.backup.unwrap());

        let mut seqs = lane.seqs.clone();
        let mut next_seq = |a: Address| {
            let s = seqs.entry(a).or_insert(0);
            *s += 1;
            *s
        };
        let mut seen = Vec::new();
        for member in federation.members_of(LANE) {
            let last = lane
                .included
                .get(&member.entry.address)
                .copied()
                .unwrap_or(0);
            for rank in 1..=2u64 {
                let body = if rank == 1 {
                    RecordBody::EnergySupply {
                        wh: 1,
                        price: 1,
                        slot: rank,
                    }
                } else {
                    RecordBody::DataPurchase {
                        offer: Hash::ZERO,
                        price: rank,
                    }
                };
                let r = record(&member.key, next_seq(member.entry.address), body);
                let block = ConsortiumBlock::seal(
                    &member.key,
                    LANE,
                    last + rank,
                    Hash::ZERO,
                    SAMPLE_EPOCH_MS,
                    vec![r],
                );
                seen.push(Seen {
                    block,
                    fresh: true,
                    rank,
                });
            }
        }
        // A copy of a fresh block with a record changed after signing.
        let mut tampered = seen[0].block.clone();
        tampered.records[0].content.created_at += 1;
        seen.push(Seen {
            block: tampered,
            fresh: false,
            rank: 0,
        });
        // A block the lane already included.
        seen.push(Seen {
            block: history[0].blocks[0].clone(),
            fresh: false,
            rank: 0,
        });
        // Another consortium's block.
        seen.push(Seen {
            block: foreign.unwrap(),
            fresh: false,
            rank: 0,
        });

        let own_record = record(
            &relay,
            next_seq(relay.address()),
            RecordBody::GridReceipt {
                trade: Hash::ZERO,
                approved: true,
                reason: String::new(),
            },
        );
        let replayed_record = record(
            &relay,
            lane.seqs[&relay.address()],
            RecordBody::GridReceipt {
                trade: Hash::ZERO,
                approved: false,
                reason: "again".into(),
            },
        );
        let key = Keypair::derive(Domain::NodeKey, 33, "source-late");
        let newcomer = RegistryEntry {
            address: key.address(),
            public_key: key.public(),
            name: "source-late".into(),
            role: Role::User,
            relay_capable: false,
        };
        World {
            federation,
            lane,
            directory,
            relay,
            backup,
            seen,
            own_record,
            replayed_record,
            newcomer,
        }
    })
}

/// What the relay puts into the block.
#[derive(Clone, Debug)]
struct Choice {
    blocks: Vec<Index>,
    /// 0: none, 1: its fresh record, 2: a replayed record.
    own: u8,
    /// 0: none, 1: the newcomer with the right root, 2: the newcomer with the old root,
    /// 3: an existing member again.
    registry: u8,
    /// -1, 0 or +1 on the elected epoch.
    epoch: i8,
    /// Signed by the backup instead of the relay.
    by_backup: bool,
    /// Flip one urgency bit after sealing (and sign again).
    flip_urgency: Option<Index>,
}

fn choice() -> impl Strategy<Value = Choice> {
    (
        vec(any::<Index>(), 0..5),
        0u8..3,
        prop_oneof![6 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8), 1 => Just(3u8)],
        prop_oneof![8 => Just(0i8), 1 => Just(-1i8), 1 => Just(1i8)],
        prop::bool::weighted(0.1),
        prop::option::weighted(0.1, any::<Index>()),
    )
        .prop_map(
            |(blocks, own, registry, epoch, by_backup, flip_urgency)| Choice {
                blocks,
                own,
                registry,
                epoch,
                by_backup,
                flip_urgency,
            },
        )
}

proptest! {
    #![proptest_config(config(512))]

    /// The lane accepts exactly the blocks the model accepts, and a refused block changes
    /// nothing.
    #[test]
    fn lane_accepts_exactly_what_the_model_accepts(choice in choice()) {
        let w = world();
        let chosen: Vec<&Seen> = choice.blocks.iter().map(|i| i.get(&w.seen)).collect();

        // The model.
        let mut last_rank: BTreeMap<Address, u64> = BTreeMap::new();
        let mut blocks_ok = true;
        for s in &chosen {
            let author = s.block.header.author;
            let previous = last_rank.get(&author).copied().unwrap_or(0);
            blocks_ok &= s.fresh && s.rank > previous;
            last_rank.insert(author, s.rank);
        }
        let own_ok = choice.own != 2;
        let registry_ok = matches!(choice.registry, 0 | 1);
        let urgency_ok = choice.flip_urgency.is_none() || chosen.is_empty();
        let expected = blocks_ok
            && own_ok
            && registry_ok
            && urgency_ok
            && choice.epoch == 0
            && !choice.by_backup;

        // The block.
        let mut registry = w.lane.registry.clone();
        let added = match choice.registry {
            0 => vec![],
            1 => {
                registry.add(w.newcomer.clone()).unwrap();
                vec![w.newcomer.clone()]
            }
            2 => vec![w.newcomer.clone()],
            _ => vec![w.federation.members_of(LANE).next().unwrap().entry.clone()],
        };
        let records = match choice.own {
            0 => vec![],
            1 => vec![w.own_record.clone()],
            _ => vec![w.replayed_record.clone()],
        };
        let producer = if choice.by_backup { &w.backup } else { &w.relay };
        let mut block = RelayDraft {
            lane: LANE,
            height: w.lane.head.height + 1,
            prev: w.lane.head.hash,
            epoch: w.lane.elections.epoch.wrapping_add_signed(choice.epoch as i64),
            time: SAMPLE_EPOCH_MS + 60_000,
            registry_root: registry.root(),
            added,
            lane_heads: vec![],
            blocks: chosen.iter().map(|s| s.block.clone()).collect(),
            records,
        }
        .seal(producer);
        if let (Some(at), false) = (choice.flip_urgency, chosen.is_empty()) {
            let bit = at.index(chosen.len());
            let byte = &mut block.header.urgency.bytes[bit / 8];
            *byte ^= 1 << (bit % 8);
            block.signature = producer.sign(&block.hash());
        }

        let mut lane = w.lane.clone();
        let mut directory = w.directory.clone();
        let result = lane.append(&block, &mut directory);
        prop_assert_eq!(
            result.is_ok(),
            expected,
            "model says {}, lane says {:?}",
            expected,
            result
        );
        if result.is_err() {
            prop_assert_eq!(lane.head, w.lane.head);
            prop_assert_eq!(&lane.included, &w.lane.included);
            prop_assert_eq!(&lane.seqs, &w.lane.seqs);
            prop_assert_eq!(&lane.registry, &w.lane.registry);
        } else {
            prop_assert_eq!(lane.head.hash, block.hash());
            for s in &chosen {
                prop_assert!(lane.included[&s.block.header.author] >= s.block.header.height);
            }
        }
    }
}
