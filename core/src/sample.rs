//! Deterministic sample federations and ledgers, from a seed.
//!
//! `examples/ledger_basics.rs`, the storage conformance suite, the `verify` tests and the
//! benchmarks all need valid chains of every kind. This module builds them the way the
//! running system would, with real keys and signatures, so that every block it returns
//! passes [`crate::validate`]. It holds no I/O: the caller stores the blocks.
//!
//! Who holds what follows SPEC §12 D1: a member holds its private chain and its own
//! consortium lane; the relay and the backup of a consortium hold that consortium's whole
//! consortium chain and the whole relay chain.

use std::collections::BTreeMap;

use crate::block::{AnyBlock, ChainBlock, ConsortiumBlock, LaneHead, PrivateBlock, RelayDraft};
use crate::crypto::{Address, Domain, Hash, Keypair};
use crate::election::{ElectionHistory, ElectionReason, LanePosition, WeightFn};
use crate::genesis::{Capacities, ConsortiumGenesis, Genesis};
use crate::ids::{ChainId, ConsortiumId};
use crate::record::{Audience, Record, RecordBody, RecordContent, Role};
use crate::registry::{Registry, RegistryEntry};

/// The paper's four consortiums.
pub const FOUR_PARTY: [&str; 4] = ["source", "grid", "service", "load"];

/// The time of the first sample block, ms since the Unix epoch (2026-01-01).
pub const SAMPLE_EPOCH_MS: u64 = 1_767_225_600_000;

/// A member of a sample federation, with its private key.
#[derive(Clone, Debug)]
pub struct SampleMember {
    /// Its key pair, derived from the seed and its name.
    pub key: Keypair,
    /// Its consortium.
    pub consortium: ConsortiumId,
    /// Its registry entry.
    pub entry: RegistryEntry,
}

/// A federation whose keys all derive from one seed (SPEC §12 D2).
#[derive(Clone, Debug)]
pub struct SampleFederation {
    /// The genesis record.
    pub genesis: Genesis,
    /// The supervisor's key.
    pub supervisor: Keypair,
    /// Every member, consortium by consortium, in address order within each.
    pub members: Vec<SampleMember>,
    /// Each consortium's admission key.
    pub admission: Vec<Keypair>,
}

/// A newcomer's key for a sample join.
pub fn newcomer_key(seed: u64, name: &str) -> Keypair {
    Keypair::derive(Domain::NodeKey, seed, name)
}

impl SampleFederation {
    /// A federation of the named consortiums with `members` members each, named
    /// `<consortium>-<n>`; the first half (at least two) of each are relay-capable
    /// enterprises, the rest users.
    pub fn new(seed: u64, consortiums: &[&str], members: usize) -> SampleFederation {
        let members_each = members.max(2);
        let supervisor = Keypair::derive(Domain::SupervisorKey, seed, "supervisor");
        let mut all = Vec::new();
        let mut admission = Vec::new();
        let mut genesis_consortiums = Vec::new();
        for (index, name) in consortiums.iter().enumerate() {
            let id = ConsortiumId(index as u16);
            let admission_key = Keypair::derive(Domain::AdmissionKey, seed, name);
            let mut group: Vec<SampleMember> = (1..=members_each)
                .map(|n| {
                    let member_name = format!("{name}-{n}");
                    let key = Keypair::derive(Domain::NodeKey, seed, &member_name);
                    let capable = n <= (members_each / 2).max(2);
                    SampleMember {
                        entry: RegistryEntry {
                            address: key.address(),
                            public_key: key.public(),
                            name: member_name,
                            role: if capable {
                                Role::Enterprise
                            } else {
                                Role::User
                            },
                            relay_capable: capable,
                        },
                        key,
                        consortium: id,
                    }
                })
                .collect();
            group.sort_by_key(|m| m.entry.address);
            genesis_consortiums.push(ConsortiumGenesis {
                id,
                name: name.to_string(),
                admission_key: admission_key.public(),
                members: group.iter().map(|m| m.entry.clone()).collect(),
            });
            admission.push(admission_key);
            all.extend(group);
        }
        let genesis = Genesis {
            config_hash: Hash::of(Domain::Genesis, &[b"sample", &seed.to_be_bytes()]),
            seed,
            capacities: Capacities::default(),
            weight_fn: WeightFn::default(),
            supervisor: supervisor.public(),
            consortiums: genesis_consortiums,
        };
        SampleFederation {
            genesis,
            supervisor,
            members: all,
            admission,
        }
    }

    /// The paper's four-party federation with `members` members per consortium.
    pub fn four_party(seed: u64, members: usize) -> SampleFederation {
        SampleFederation::new(seed, &FOUR_PARTY, members)
    }

    /// The members of one consortium.
    pub fn members_of(&self, consortium: ConsortiumId) -> impl Iterator<Item = &SampleMember> {
        self.members
            .iter()
            .filter(move |m| m.consortium == consortium)
    }

    /// The member called `name`.
    pub fn member(&self, name: &str) -> Option<&SampleMember> {
        self.members.iter().find(|m| m.entry.name == name)
    }

    /// A sample ledger: for every holder, the blocks it keeps, in append order.
    /// `rounds` is the number of blocks each member writes to each of its chains.
    pub fn ledger(&self, rounds: usize) -> SampleLedger {
        LedgerBuilder::new(self).build(rounds)
    }
}

/// The blocks of a sample ledger, each with the node that holds the copy.
#[derive(Clone, Debug, Default)]
pub struct SampleLedger {
    /// (holder, block), chain by chain, each chain in height order.
    pub appends: Vec<(Address, AnyBlock)>,
}

struct LedgerBuilder<'a> {
    federation: &'a SampleFederation,
    seqs: BTreeMap<Address, u64>,
    clock: u64,
}

impl<'a> LedgerBuilder<'a> {
    fn new(federation: &'a SampleFederation) -> Self {
        LedgerBuilder {
            federation,
            seqs: BTreeMap::new(),
            clock: SAMPLE_EPOCH_MS,
        }
    }

    fn tick(&mut self) -> u64 {
        self.clock += 250;
        self.clock
    }

    fn record(&mut self, key: &Keypair, audience: Audience, body: RecordBody) -> Record {
        let seq = self.seqs.entry(key.address()).or_insert(0);
        *seq += 1;
        let content = RecordContent {
            author: key.address(),
            seq: *seq,
            created_at: self.clock,
            audience,
            body,
        };
        content.sign(key)
    }

    /// The service records a member writes in round `round`: a mix of urgent and normal,
    /// internal and external.
    fn service_records(&mut self, member: &SampleMember, round: usize) -> Vec<Record> {
        let consortiums = self.federation.genesis.consortiums.len() as u16;
        let other = ConsortiumId((member.consortium.0 + 1) % consortiums);
        let n = round as u64 + 1;
        let bodies = match round % 4 {
            0 => vec![(
                Audience::Consortiums(sorted(member.consortium, other)),
                RecordBody::EnergySupply {
                    wh: 1_000 * n,
                    price: 90 * n,
                    slot: n,
                },
            )],
            1 => vec![
                (
                    Audience::Own,
                    RecordBody::EquipmentMaintenance {
                        equipment: format!("transformer-{n}"),
                        detail: "annual inspection".into(),
                    },
                ),
                (
                    Audience::Own,
                    RecordBody::EfficiencyAudit {
                        site: format!("site-{n}"),
                        score_permille: 700 + n as u32,
                    },
                ),
            ],
            2 => vec![(
                Audience::Consortiums(sorted(member.consortium, other)),
                RecordBody::DataTrade {
                    digest: Hash::of(
                        Domain::Record,
                        &[member.entry.name.as_bytes(), &n.to_be_bytes()],
                    ),
                    description: "quarterly consumption".into(),
                    price: 500,
                    size: 4096,
                },
            )],
            _ => vec![
                (
                    Audience::Own,
                    RecordBody::EnergySavingDesign {
                        site: format!("site-{n}"),
                        saving_wh: 12_000,
                    },
                ),
                (
                    Audience::Consortiums(sorted(member.consortium, other)),
                    RecordBody::DistributedEnergy {
                        wh: 250 * n,
                        price: 20 * n,
                        slot: n + 1,
                    },
                ),
            ],
        };
        bodies
            .into_iter()
            .map(|(audience, body)| self.record(&member.key, audience, body))
            .collect()
    }

    fn build(mut self, rounds: usize) -> SampleLedger {
        let federation = self.federation;
        let genesis = &federation.genesis;
        let mut chains: BTreeMap<ChainId, Vec<AnyBlock>> = BTreeMap::new();
        // Who has served a consortium as relay or backup: they hold its consortium chain.
        let mut lane_holders: BTreeMap<ConsortiumId, Vec<Address>> = BTreeMap::new();
        let mut private_heads: BTreeMap<Address, (u64, Hash)> = BTreeMap::new();
        let mut lane_heads: BTreeMap<Address, (u64, Hash)> = BTreeMap::new();
        let mut relay_heads: Vec<(u64, Hash)> = vec![(0, Hash::ZERO); genesis.consortiums.len()];
        let mut histories: Vec<ElectionHistory> = genesis
            .consortiums
            .iter()
            .map(|c| ElectionHistory::new(c.id))
            .collect();
        let mut registries: Vec<Registry> = genesis
            .consortiums
            .iter()
            .map(|c| genesis.registry(c.id))
            .collect();
        // Every relay and backup that has ever served holds the whole relay chain from then on.
        let mut relay_holders: Vec<Address> = Vec::new();

        for round in 0..rounds {
            for (index, consortium) in genesis.consortiums.iter().enumerate() {
                let id = consortium.id;
                // Elections: initial in round 0, a rotation in round 2, a failover in round 4.
                let reason = match round {
                    0 => Some(ElectionReason::Initial),
                    2 => Some(ElectionReason::Rotation),
                    4 => Some(ElectionReason::Failover),
                    _ => None,
                };
                let mut own_records = Vec::new();
                if let Some(reason) = reason {
                    let eligible: Vec<Address> = registries[index]
                        .entries()
                        .filter(|e| e.relay_capable)
                        .map(|e| e.address)
                        .collect();
                    let (height, hash) = relay_heads[index];
                    let head = LanePosition { height, hash };
                    // Every configuration of the sample activates: the source is the
                    // epoch of the block below (SPEC §14).
                    let source = histories[index].epoch;
                    if let Some(election) =
                        histories[index].elect(reason, &eligible, genesis.weight_fn, source, head)
                    {
                        self.tick();
                        let record = self.record(
                            &federation.supervisor,
                            Audience::Everyone,
                            RecordBody::Election(election.clone()),
                        );
                        // The builder's own history follows the chain exactly.
                        let _ =
                            histories[index].apply(&election, record.digest(), |_| true, |_| true);
                        own_records.push(record);
                        for holder in [Some(election.relay), election.backup]
                            .into_iter()
                            .flatten()
                        {
                            if !relay_holders.contains(&holder) {
                                relay_holders.push(holder);
                            }
                            let holders = lane_holders.entry(id).or_default();
                            if !holders.contains(&holder) {
                                holders.push(holder);
                            }
                        }
                    }
                }
                let history = &histories[index];
                let Some(relay_address) = history.relay else {
                    continue;
                };
                let Some(relay) = federation.member_by_address(&relay_address) else {
                    continue;
                };

                // Each member: a private block and a consortium block.
                let mut included = Vec::new();
                for member in federation.members_of(id) {
                    let time = self.tick();
                    let reading = self.record(
                        &member.key,
                        Audience::Own,
                        RecordBody::MeterReading {
                            meter: 1,
                            wh: 10_000 + 137 * round as u64,
                        },
                    );
                    let (height, prev) = private_heads
                        .get(&member.entry.address)
                        .copied()
                        .unwrap_or((0, Hash::ZERO));
                    let block =
                        PrivateBlock::seal(&member.key, height + 1, prev, time, vec![reading]);
                    private_heads.insert(member.entry.address, (height + 1, block.hash()));
                    chains.entry(block.chain()).or_default().push(block.into());

                    let records = self.service_records(member, round);
                    let (height, prev) = lane_heads
                        .get(&member.entry.address)
                        .copied()
                        .unwrap_or((0, Hash::ZERO));
                    let block = ConsortiumBlock::seal(
                        &member.key,
                        id,
                        height + 1,
                        prev,
                        self.clock,
                        records,
                    );
                    lane_heads.insert(member.entry.address, (height + 1, block.hash()));
                    chains
                        .entry(block.chain())
                        .or_default()
                        .push(block.clone().into());
                    if block.is_external() {
                        included.push(block);
                    }
                }

                // A join in round 1: the relay registers a newcomer and announces it.
                let mut added = Vec::new();
                if round == 1 {
                    let name = format!("{}-joined", consortium.name);
                    let key = newcomer_key(genesis.seed, &name);
                    let entry = RegistryEntry {
                        address: key.address(),
                        public_key: key.public(),
                        name,
                        role: Role::User,
                        relay_capable: false,
                    };
                    if registries[index].add(entry.clone()).is_ok() {
                        own_records.push(self.record(
                            &relay.key,
                            Audience::Own,
                            RecordBody::JoinAnnouncement {
                                entry: entry.clone(),
                            },
                        ));
                        added.push(entry);
                    }
                }

                let (height, prev) = relay_heads[index];
                let time = self.tick();
                let others: Vec<LaneHead> = relay_heads
                    .iter()
                    .enumerate()
                    .filter(|(i, (h, _))| *i != index && *h > 0)
                    .map(|(i, (h, hash))| LaneHead {
                        lane: ConsortiumId(i as u16),
                        height: *h,
                        hash: *hash,
                    })
                    .collect();
                // Election records come last among the relay's own records (after any
                // announcement by the same relay), but an election must open the block
                // that starts its epoch: keep them first and the relay's records after.
                let draft = RelayDraft {
                    lane: id,
                    height: height + 1,
                    prev,
                    epoch: history.epoch,
                    time,
                    registry_root: registries[index].root(),
                    added,
                    lane_heads: others,
                    blocks: included,
                    records: own_records,
                };
                let block = draft.seal(&relay.key);
                relay_heads[index] = (height + 1, block.hash());
                chains.entry(block.chain()).or_default().push(block.into());
            }
        }

        // Hand out copies (SPEC §12 D1): members their own chains; relays and backups the
        // consortium chain they served and the whole relay chain.
        let mut out = SampleLedger::default();
        for (chain, blocks) in &chains {
            let holders: Vec<Address> = match chain {
                ChainId::Private(owner) => vec![*owner],
                ChainId::Consortium(consortium, member) => {
                    let mut holders = vec![*member];
                    for h in lane_holders.get(consortium).into_iter().flatten() {
                        if h != member {
                            holders.push(*h);
                        }
                    }
                    holders
                }
                ChainId::Relay(_) => relay_holders.clone(),
            };
            for holder in holders {
                for block in blocks {
                    out.appends.push((holder, block.clone()));
                }
            }
        }
        out
    }
}

fn sorted(a: ConsortiumId, b: ConsortiumId) -> Vec<ConsortiumId> {
    let mut list = vec![a, b];
    list.sort();
    list.dedup();
    list
}

impl SampleFederation {
    /// The member at `address`.
    pub fn member_by_address(&self, address: &Address) -> Option<&SampleMember> {
        self.members.iter().find(|m| m.entry.address == *address)
    }
}
