//! Reading a data directory for people: what `inspect` prints and `serve` answers. One
//! JSON form for both (the core types' `Serialize`, names beside addresses: [`Names`]).
//!
//! A [`Snapshot`] is the directory as it was when opened. A directory no process holds is
//! opened as the primary unless the caller asks for read-only access; one that a running
//! federation holds is opened as a RocksDB secondary instance, which writes nothing into
//! it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use ieschain_core::election::ElectionRecord;
use ieschain_core::genesis::Directory;
use ieschain_core::merkle::MerkleProof;
use ieschain_core::record::RecordBody;
use ieschain_core::validate::Head;
use ieschain_core::{Address, AnyBlock, ChainBlock, ChainId, ConsortiumId, Hash, Record};
use ieschain_storage::{ChainStore, RocksStore, StoreError};
use serde_json::{json, Value};

use crate::json::Names;

mod trades;

/// How a [`Snapshot`] may open its directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// As the primary when no process holds the directory (RocksDB then writes its own
    /// bookkeeping files into it), else as a secondary instance.
    PrimaryIfFree,
    /// Always as a secondary instance: nothing is ever written into the directory.
    ReadOnly,
}

/// A data directory opened for reading (or a store a simulation is writing), with the
/// names of every node. What reads whole chains (the listing, the trades) is read once per
/// snapshot and kept.
#[derive(Debug)]
pub struct Snapshot {
    store: Arc<dyn ChainStore>,
    directory: Directory,
    secondary: bool,
    _scratch: Option<tempfile::TempDir>,
    primary_error: Option<String>,
    /// What reads whole chains, once per snapshot: the listing and the trade records.
    listing: std::sync::OnceLock<Value>,
    trades: std::sync::OnceLock<trades::Index>,
}

/// One chain as a node holds it.
pub type HeldChain = (Address, ChainId, Head);

impl Snapshot {
    /// Opens `data` (see [`Access`]).
    pub fn open(data: &Path, access: Access) -> Result<Snapshot, StoreError> {
        let mut primary_error = None;
        let (store, scratch) = match access {
            Access::PrimaryIfFree => match RocksStore::open_existing(data) {
                Ok(store) => (store, None),
                Err(primary @ StoreError::Rocks { .. }) => {
                    let opened = Self::secondary(data).map_err(|_| primary.clone())?;
                    primary_error = Some(primary.to_string());
                    opened
                }
                Err(other) => return Err(other),
            },
            Access::ReadOnly => Self::secondary(data)?,
        };
        let directory = directory(&store)?;
        Ok(Snapshot {
            secondary: scratch.is_some(),
            store: Arc::new(store),
            directory,
            _scratch: scratch,
            primary_error,
            listing: Default::default(),
            trades: Default::default(),
        })
    }

    /// Why the directory could not be opened as the primary when [`Access::PrimaryIfFree`]
    /// asked for it (and a secondary instance was opened instead): RocksDB's words, which
    /// say whether another process holds its lock or the files are damaged.
    pub fn primary_error(&self) -> Option<&str> {
        self.primary_error.as_deref()
    }

    /// A snapshot of a store in this process, as it is now: a simulation's in-memory store
    /// while it runs (`simulate --serve`). Reads go to the store itself, so they see what
    /// was written after this call too; the names are those known now.
    pub fn of_store(store: Arc<dyn ChainStore>) -> Result<Snapshot, StoreError> {
        let directory = directory(store.as_ref())?;
        Ok(Snapshot {
            store,
            directory,
            secondary: false,
            _scratch: None,
            primary_error: None,
            listing: Default::default(),
            trades: Default::default(),
        })
    }

    fn secondary(data: &Path) -> Result<(RocksStore, Option<tempfile::TempDir>), StoreError> {
        let scratch = tempfile::tempdir().map_err(|source| StoreError::Io {
            doing: "creating a scratch directory for a secondary instance".to_string(),
            source: std::sync::Arc::new(source),
        })?;
        let store = RocksStore::open_secondary(data, scratch.path())?;
        Ok((store, Some(scratch)))
    }

    /// Whether the directory was opened as a secondary instance.
    pub fn is_secondary(&self) -> bool {
        self.secondary
    }

    /// The store.
    pub fn store(&self) -> &dyn ChainStore {
        self.store.as_ref()
    }

    /// The names of every node, joined members included.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// The JSON namer.
    pub fn names(&self) -> Names<'_> {
        Names::new(&self.directory, self.store.genesis())
    }

    /// Every chain every node holds, with its head.
    pub fn chains(&self) -> Result<Vec<HeldChain>, StoreError> {
        self.store.chains()
    }

    /// A chain's name: `relay/<consortium>`, `consortium/<consortium>/<member>` or
    /// `private/<member>`.
    pub fn chain_name(&self, chain: &ChainId) -> String {
        chain_name(self.store.as_ref(), &self.directory, chain)
    }

    /// `{"chains": [{node, node_name, chain, chain_name, height, head}], "elections":
    /// [ElectionRecord + height + time], "lanes": [{lane, lane_name, head_time}]}`: what `inspect --json` prints without `--chain`.
    pub fn listing(&self) -> Result<Value, StoreError> {
        if let Some(listing) = self.listing.get() {
            return Ok(listing.clone());
        }
        let listing = self.read_listing()?;
        Ok(self.listing.get_or_init(|| listing).clone())
    }

    /// [`Snapshot::listing`], read from the store.
    fn read_listing(&self) -> Result<Value, StoreError> {
        let chains = self.chains()?;
        let names = self.names();
        let listing: Vec<Value> = chains
            .iter()
            .map(|(holder, chain, head)| {
                json!({
                    "node": holder.to_string(),
                    "node_name": self.directory.name(holder),
                    "chain": names.to_value(chain),
                    "chain_name": self.chain_name(chain),
                    "height": head.height,
                    "head": head.hash.to_string(),
                })
            })
            .collect();
        let lanes = self.lanes(&chains)?;
        let rfc3339 = ieschain_core::serde_json_form::rfc3339;
        let elections: Vec<Value> = lanes
            .iter()
            .flat_map(|lane| {
                // Each election with the one before it on its lane, which fixes the relay
                // of a failover, a rotation or a lost backup's replacement.
                let before = std::iter::once(None).chain(lane.elections.iter().map(Some));
                lane.elections.iter().zip(before)
            })
            .map(|(at, before)| {
                let mut value = names.to_value(&at.record);
                value["height"] = json!(at.height);
                value["time"] = json!(rfc3339(at.time_ms));
                annotate_draw(&mut value, &at.record, before.map(|b| &b.record));
                value
            })
            .collect();
        let lanes: Vec<Value> = lanes
            .iter()
            .map(|lane| {
                json!({
                    "lane": lane.lane.0,
                    "lane_name": self.store.genesis().consortium_name(lane.lane),
                    "head_time": rfc3339(lane.head_time_ms),
                })
            })
            .collect();
        Ok(json!({ "chains": listing, "elections": elections, "lanes": lanes }))
    }

    /// The copy of chain `wanted` (by name) held by `node` (by name), or by the first
    /// holder when `node` is `None`: its holder and id, or `None` when no node holds it.
    pub fn find(
        &self,
        wanted: &str,
        node: Option<&str>,
    ) -> Result<Option<(Address, ChainId)>, StoreError> {
        Ok(self
            .chains()?
            .into_iter()
            .find(|(holder, chain, _)| {
                self.chain_name(chain) == wanted
                    && node.is_none_or(|n| self.directory.name(holder) == n)
            })
            .map(|(holder, chain, _)| (holder, chain)))
    }

    /// Up to `limit` blocks of `chain` as `holder` holds it, from height `from`: `{node,
    /// node_name, chain, chain_name, blocks: [AnyBlock + height + hash]}`, what `inspect
    /// --chain --json` prints.
    pub fn blocks(
        &self,
        holder: Address,
        chain: ChainId,
        from: u64,
        limit: usize,
    ) -> Result<Value, StoreError> {
        let names = self.names();
        let blocks: Vec<Value> = self
            .store
            .range(holder, chain, from, limit)?
            .iter()
            .map(|block| block_value(&names, block))
            .collect();
        Ok(json!({
            "node": holder.to_string(),
            "node_name": self.directory.name(&holder),
            "chain": names.to_value(&chain),
            "chain_name": self.chain_name(&chain),
            "blocks": blocks,
        }))
    }

    /// Every copy of the block whose hash is `hash`: `[{node, node_name, chain,
    /// chain_name, block}]`, empty when no node holds it. Reads every chain.
    pub fn block_by_hash(&self, hash: &Hash) -> Result<Vec<Value>, StoreError> {
        let names = self.names();
        let mut out = Vec::new();
        for (holder, chain, head) in self.chains()? {
            for block in self.store.range(holder, chain, 1, head.height as usize)? {
                if block.hash() == *hash {
                    out.push(json!({
                        "node": holder.to_string(),
                        "node_name": self.directory.name(&holder),
                        "chain": names.to_value(&chain),
                        "chain_name": self.chain_name(&chain),
                        "block": block_value(&names, &block),
                    }));
                }
            }
        }
        Ok(out)
    }

    /// Each lane's history, from its most complete copy (the holder with the highest head,
    /// the first such holder on a tie: a node whose copy is behind would miss the latest
    /// elections): its elections, with the height and time of the block holding each, and
    /// the time of its newest block.
    pub fn lanes(&self, chains: &[HeldChain]) -> Result<Vec<LaneHistory>, StoreError> {
        let mut out = Vec::new();
        for (lane, (holder, chain, height)) in fullest_copies(chains) {
            let mut history = LaneHistory {
                lane,
                elections: Vec::new(),
                head_time_ms: 0,
            };
            for block in self.store.range(holder, chain, 1, height as usize)? {
                let AnyBlock::Relay(relay) = &block else {
                    continue;
                };
                history.head_time_ms = history.head_time_ms.max(relay.header.time);
                for record in block.records() {
                    if let RecordBody::Election(e) = &record.content.body {
                        history.elections.push(ElectionAt {
                            height: block.height(),
                            time_ms: relay.header.time,
                            record: e.clone(),
                        });
                    }
                }
            }
            out.push(history);
        }
        Ok(out)
    }

    /// The records on the relay chain that `filter` selects (each lane's most complete
    /// copy, oldest first, at most `limit`), each with its inclusion proof: the record
    /// under its consortium block's `records_root`, that block under its relay block's
    /// `blocks_root`, both Merkle paths checked here (`verified`).
    pub fn records(&self, filter: &RecordFilter, limit: usize) -> Result<Vec<Value>, StoreError> {
        let names = self.names();
        let chains = self.chains()?;
        let mut out = Vec::new();
        for (_, (holder, chain, height)) in fullest_copies(&chains) {
            for block in self.store.range(holder, chain, 1, height as usize)? {
                let AnyBlock::Relay(relay) = &block else {
                    continue;
                };
                for (b, included) in relay.blocks.iter().enumerate() {
                    let leaves: Vec<Hash> = included.records.iter().map(Record::leaf).collect();
                    for (r, record) in included.records.iter().enumerate() {
                        if out.len() >= limit {
                            return Ok(out);
                        }
                        if !filter.selects(&self.directory, record, &names) {
                            continue;
                        }
                        let record_proof = MerkleProof::build(&leaves, r);
                        let block_proof = relay.block_proof(b);
                        let verified = record_proof
                            .as_ref()
                            .is_some_and(|p| p.verify(&included.header.records_root, &leaves[r]))
                            && block_proof.as_ref().is_some_and(|p| {
                                p.verify(&relay.header.blocks_root, &included.leaf())
                            });
                        out.push(json!({
                            "record": names.to_value(record),
                            "digest": record.digest().to_string(),
                            "leaf": leaves[r].to_string(),
                            "consortium_block": {
                                "author": included.header.author.to_string(),
                                "author_name": self.directory.name(&included.header.author),
                                "height": included.header.height,
                                "hash": included.hash().to_string(),
                                "leaf": included.leaf().to_string(),
                                "records_root": included.header.records_root.to_string(),
                                "record_proof": record_proof.as_ref().map(proof_json),
                            },
                            "relay_block": {
                                "lane": relay.header.lane.0,
                                "lane_name": self.store.genesis().consortium_name(relay.header.lane),
                                "height": relay.header.height,
                                "hash": relay.hash().to_string(),
                                "blocks_root": relay.header.blocks_root.to_string(),
                                "block_proof": block_proof.as_ref().map(proof_json),
                                "held_by": self.directory.name(&holder),
                            },
                            "verified": verified,
                        }));
                    }
                }
            }
        }
        Ok(out)
    }

    /// The epochs of every lane as a Mermaid Gantt chart: a section per lane, a bar per
    /// epoch from its election's block to the next election's (the last to the lane's
    /// newest block), named by epoch, reason and relay.
    pub fn timeline(&self) -> Result<String, StoreError> {
        let chains = self.chains()?;
        let genesis = self.store.genesis();
        let mut out = String::from(
            "gantt\n    title Relay epochs per consortium lane\n    dateFormat x\n    axisFormat %H:%M:%S\n",
        );
        for lane in self.lanes(&chains)? {
            out.push_str(&format!(
                "    section {}\n",
                mermaid_text(&genesis.consortium_name(lane.lane))
            ));
            for (i, at) in lane.elections.iter().enumerate() {
                let end = lane
                    .elections
                    .get(i + 1)
                    .map_or(lane.head_time_ms, |next| next.time_ms)
                    .max(at.time_ms + 1);
                let e = &at.record;
                out.push_str(&format!(
                    "    epoch {} {} {} :e{}_{}, {}, {}\n",
                    e.epoch,
                    mermaid_text(&format!("{:?}", e.reason).to_lowercase()),
                    mermaid_text(&self.directory.name(&e.relay)),
                    lane.lane.0,
                    e.epoch,
                    at.time_ms,
                    end
                ));
            }
        }
        Ok(out)
    }
}

/// Each relay lane's most complete copy (the holder with the highest head, the first
/// such holder on a tie): lane → (holder, chain, height).
fn fullest_copies(chains: &[HeldChain]) -> BTreeMap<ConsortiumId, (Address, ChainId, u64)> {
    let mut fullest: BTreeMap<ConsortiumId, (Address, ChainId, u64)> = BTreeMap::new();
    for (holder, chain, head) in chains {
        let ChainId::Relay(lane) = chain else {
            continue;
        };
        let best = fullest
            .entry(*lane)
            .or_insert((*holder, *chain, head.height));
        if head.height > best.2 {
            *best = (*holder, *chain, head.height);
        }
    }
    fullest
}

fn proof_json(proof: &MerkleProof) -> Value {
    json!({
        "index": proof.index,
        "leaf_count": proof.leaf_count,
        "siblings": proof.siblings.iter().map(Hash::to_string).collect::<Vec<_>>(),
    })
}

/// Which records [`Snapshot::records`] selects: every given criterion must hold.
#[derive(Clone, Debug, Default)]
pub struct RecordFilter {
    /// The author, by name.
    pub member: Option<String>,
    /// The kind, as the JSON names it (`power_offer`, `grid_vote`, …).
    pub kind: Option<String>,
    /// The author's seq.
    pub seq: Option<u64>,
    /// A hash the record is, or names in its body (a trade id, an offer, a bid).
    pub hash: Option<Hash>,
}

impl RecordFilter {
    /// Whether `record` matches: the author and seq first, the body's JSON (kind, the
    /// hashes it names) only when a criterion needs it.
    fn selects(&self, directory: &Directory, record: &Record, names: &Names<'_>) -> bool {
        let content = &record.content;
        let cheap = self
            .member
            .as_ref()
            .is_none_or(|m| directory.name(&content.author) == *m)
            && self.seq.is_none_or(|seq| content.seq == seq);
        if !cheap || (self.kind.is_none() && self.hash.is_none()) {
            return cheap;
        }
        let body = names.to_value(&content.body);
        self.kind
            .as_ref()
            .is_none_or(|k| body["kind"] == k.as_str())
            && self.hash.is_none_or(|hash| {
                let text = hash.to_string();
                record.digest() == hash
                    || body
                        .as_object()
                        .is_some_and(|fields| fields.values().any(|v| *v == text.as_str()))
            })
    }
}

/// An election with the height and time (ms) of the relay block holding it.
#[derive(Clone, Debug)]
pub struct ElectionAt {
    /// The height of the relay block holding it.
    pub height: u64,
    /// That block's time, ms since the Unix epoch.
    pub time_ms: u64,
    /// The election.
    pub record: ElectionRecord,
}

/// One consortium lane of the relay chain, read from its most complete copy.
#[derive(Clone, Debug)]
pub struct LaneHistory {
    /// The lane.
    pub lane: ConsortiumId,
    /// Its elections, oldest first.
    pub elections: Vec<ElectionAt>,
    /// The time of its newest block, ms since the Unix epoch.
    pub head_time_ms: u64,
}

/// Each candidate of an election's JSON with its failure rate `e_k` (failures per
/// completed term, 0 with none) and `p_k`, its chance in the draw: its weight under the
/// election's `f` over the sum of the weights of those drawn from (SPEC §5). Where the
/// rules fixed the relay (`relay_fixed`: the backup of the election `before` promoted on a
/// failover or rotation, the sitting relay kept when only its backup was lost), only the
/// backup was drawn, from the others: their `p_k` is their chance to be drawn backup and the
/// relay has none.
fn annotate_draw(value: &mut Value, record: &ElectionRecord, before: Option<&ElectionRecord>) {
    // The rule the supervisor drew by; the relay it fixed is this election's relay unless
    // it was not eligible then (and the relay was drawn).
    let fixed = before
        .and_then(|before| record.reason.fixed_relay(Some(before.relay), before.backup))
        .filter(|relay| *relay == record.relay);
    value["relay_fixed"] = json!(fixed.is_some());
    let weights: Vec<Option<u64>> = record
        .candidates
        .iter()
        .map(|c| (Some(c.address) != fixed).then(|| record.weight_fn.weight(c.failures, c.terms)))
        .collect();
    let total: u64 = weights.iter().flatten().sum();
    let Some(candidates) = value["candidates"].as_array_mut() else {
        return;
    };
    for ((json, stat), weight) in candidates.iter_mut().zip(&record.candidates).zip(weights) {
        let e = if stat.terms == 0 {
            0.0
        } else {
            f64::from(stat.failures) / f64::from(stat.terms)
        };
        json["e_k"] = json!(e);
        json["p_k"] = match weight {
            Some(weight) if total > 0 => json!(weight as f64 / total as f64),
            Some(_) => json!(0.0),
            None => Value::Null,
        };
    }
}

/// Text safe inside a Mermaid Gantt task or section name (no `:`, `#` or `;`).
fn mermaid_text(text: &str) -> String {
    text.chars()
        .map(|c| if matches!(c, ':' | '#' | ';') { '-' } else { c })
        .collect()
}

/// A block's JSON with its height and hash.
fn block_value(names: &Names<'_>, block: &AnyBlock) -> Value {
    let mut value = names.to_value(block);
    value["height"] = json!(block.height());
    value["hash"] = json!(block.hash().to_string());
    value
}

/// A chain's name, with the consortium and member names of `store` and `directory`.
pub fn chain_name(store: &dyn ChainStore, directory: &Directory, chain: &ChainId) -> String {
    let genesis = store.genesis();
    chain.render(|c| genesis.consortium_name(c), |m| directory.name(m))
}

/// Names of every node: the genesis registries plus every member a relay lane registered.
pub fn directory(store: &dyn ChainStore) -> Result<Directory, StoreError> {
    let mut directory = Directory::from_genesis(store.genesis());
    for (holder, chain, head) in store.chains()? {
        let ChainId::Relay(lane) = chain else {
            continue;
        };
        for block in store.range(holder, chain, 1, head.height as usize)? {
            if let AnyBlock::Relay(relay) = block {
                for entry in &relay.header.registry.added {
                    directory.add(lane, entry);
                }
            }
        }
    }
    Ok(directory)
}
