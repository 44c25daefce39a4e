//! Trades as lifecycles: the records of one trade gathered from the relay chain by its
//! trade id (SPEC §12 D12), in protocol order, with the trade's state.
//!
//! - A power purchase (SPEC §6.2): offer, bid, agreement, the grid members' votes, the
//!   grid's receipt, the settlement. The agreement names the offer and the bid; the
//!   others name the trade id.
//! - A data trade (SPEC §6.3): offer, purchase, agreement, and a dispute if the delivered
//!   data did not match the digest on the chain. The delivery itself goes off the chain,
//!   through the relays; the agreement carries the digest the buyer checks it against. The
//!   agreement names only the trade id, which is `trade_id(offer, purchase)`.
//!
//! The records are read from each relay lane's most complete copy, then from each
//! member's consortium chain (the most complete copy of each) for what stays inside one
//! consortium (the grid members' votes): each step says which block holds it, and
//! whether that block is on the relay chain.

use std::collections::BTreeMap;

use ieschain_core::record::{trade_id, RecordBody};
use ieschain_core::serde_json_form::rfc3339;
use ieschain_core::{Address, AnyBlock, ChainId, Hash, Record};
use ieschain_storage::StoreError;
use serde_json::{json, Value};

use super::Snapshot;

/// A trade record where it was found: the record and the block holding it (a relay
/// block, or a consortium block for a record that stays in its consortium).
struct Found {
    record: Record,
    digest: Hash,
    chain: String,
    on_relay_chain: bool,
    height: u64,
    block: Hash,
    time_ms: u64,
}

/// The steps in protocol order; a step's rank, then its block's time, orders a trade.
const STEPS: [&str; 9] = [
    "offer",
    "bid",
    "purchase",
    "agreement",
    "grid vote",
    "grid receipt",
    "settlement",
    "dispute",
    "other",
];

fn step_name(body: &RecordBody) -> &'static str {
    match body {
        RecordBody::PowerOffer { .. } | RecordBody::DataTrade { .. } => "offer",
        RecordBody::PowerBid { .. } => "bid",
        RecordBody::DataPurchase { .. } => "purchase",
        RecordBody::TradeAgreement { .. } | RecordBody::DataAgreement { .. } => "agreement",
        RecordBody::GridVote { .. } => "grid vote",
        RecordBody::GridReceipt { .. } => "grid receipt",
        RecordBody::PowerSettlement { .. } => "settlement",
        RecordBody::DataDispute { .. } => "dispute",
        _ => "other",
    }
}

/// Every trade record on the relay chain, indexed the ways the lifecycles need.
#[derive(Default)]
pub(super) struct Index {
    /// Offers, bids and purchases, by their digest.
    by_digest: BTreeMap<Hash, Found>,
    /// Agreements, votes, receipts, settlements and disputes, by trade id, in chain order.
    by_trade: BTreeMap<Hash, Vec<Found>>,
    /// Data purchases by the trade id they start: `trade_id(offer, purchase)`.
    purchases: BTreeMap<Hash, Hash>,
    /// Each trade's agreement: its block's time, where it was found, and the trade id;
    /// sorted, the newest is last.
    agreements: Vec<(u64, String, u64, Hash)>,
    /// The trade ids of `agreements`.
    agreed: std::collections::BTreeSet<Hash>,
    /// The digests of the records added: a record is one step, wherever it is found.
    seen: std::collections::BTreeSet<Hash>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Index({} trades)", self.agreements.len())
    }
}

impl Index {
    fn add(&mut self, found: Found) {
        if self.seen.contains(&found.digest) {
            return;
        }
        self.seen.insert(found.digest);
        let trade = match &found.record.content.body {
            RecordBody::PowerOffer { .. } | RecordBody::PowerBid { .. } => None,
            RecordBody::DataTrade { .. } => None,
            RecordBody::DataPurchase { offer, .. } => {
                self.purchases
                    .insert(trade_id(offer, &found.digest), found.digest);
                None
            }
            RecordBody::TradeAgreement { trade, .. } | RecordBody::DataAgreement { trade, .. } => {
                // A trade's other steps may be met first (a dispute on an earlier lane).
                if self.agreed.insert(*trade) {
                    self.agreements.push((
                        found.time_ms,
                        found.chain.clone(),
                        found.height,
                        *trade,
                    ));
                }
                Some(*trade)
            }
            RecordBody::GridVote { trade, .. }
            | RecordBody::GridReceipt { trade, .. }
            | RecordBody::PowerSettlement { trade, .. }
            | RecordBody::DataDispute { trade, .. } => Some(*trade),
            _ => return,
        };
        match trade {
            Some(trade) => self.by_trade.entry(trade).or_default().push(found),
            None => {
                self.by_digest.insert(found.digest, found);
            }
        }
    }
}

impl Snapshot {
    /// The trades, newest agreement first, at most `limit`: `{trades: [{trade, kind:
    /// power|data, status, seller_name, buyer_name, terms, steps: [{step, record, digest,
    /// block: {chain_name, on_relay_chain, height, hash, time}}]}], offers_open}`, steps
    /// in protocol order. A trade is counted from its agreement (newest by its block's
    /// time); `offers_open` counts the offers no agreement took (yet), of all trades.
    pub fn trades(&self, limit: usize) -> Result<Value, StoreError> {
        let index = match self.trades.get() {
            Some(index) => index,
            None => {
                let index = self.trade_index()?;
                self.trades.get_or_init(|| index)
            }
        };
        let names = self.names();
        let step = |found: &Found| {
            json!({
                "step": step_name(&found.record.content.body),
                "record": names.to_value(&found.record),
                "digest": found.digest.to_string(),
                "block": {
                    "chain_name": found.chain,
                    "on_relay_chain": found.on_relay_chain,
                    "height": found.height,
                    "hash": found.block.to_string(),
                    "time": rfc3339(found.time_ms),
                },
            })
        };
        let mut agreements = index.agreements.clone();
        agreements.sort();
        let mut taken = std::collections::BTreeSet::new();
        let mut trades = Vec::new();
        for (.., trade) in agreements.iter().rev() {
            let records = &index.by_trade[trade];
            let Some(agreement) = records.iter().find(|f| {
                matches!(
                    f.record.content.body,
                    RecordBody::TradeAgreement { .. } | RecordBody::DataAgreement { .. }
                )
            }) else {
                continue;
            };
            let mut steps = Vec::new();
            let mut value = match &agreement.record.content.body {
                RecordBody::TradeAgreement {
                    offer,
                    bid,
                    seller,
                    buyer,
                    wh,
                    slot,
                    ..
                } => {
                    taken.insert(*offer);
                    if let Some(found) = index.by_digest.get(offer) {
                        steps.push(found);
                    }
                    if let Some(found) = index.by_digest.get(bid) {
                        steps.push(found);
                    }
                    let (mut votes, mut approvals) = (0, 0);
                    let mut status = "awaiting the grid";
                    for found in records {
                        match &found.record.content.body {
                            RecordBody::GridVote { approve, .. } => {
                                votes += 1;
                                approvals += u32::from(*approve);
                            }
                            RecordBody::GridReceipt { approved, .. } if status != "settled" => {
                                status = if *approved {
                                    "approved, awaiting settlement"
                                } else {
                                    "rejected by the grid"
                                };
                            }
                            RecordBody::PowerSettlement { .. } => status = "settled",
                            _ => {}
                        }
                        steps.push(found);
                    }
                    json!({
                        "kind": "power",
                        "status": status,
                        "seller_name": self.directory.name(seller),
                        "buyer_name": self.directory.name(buyer),
                        "terms": { "wh": wh, "slot": slot, "grid_votes": votes, "grid_approvals": approvals },
                    })
                }
                RecordBody::DataAgreement { buyer, digest, .. } => {
                    let purchase = index
                        .purchases
                        .get(trade)
                        .and_then(|p| index.by_digest.get(p));
                    let offer = purchase.and_then(|p| match &p.record.content.body {
                        RecordBody::DataPurchase { offer, .. } => index.by_digest.get(offer),
                        _ => None,
                    });
                    if let Some(offer) = offer {
                        taken.insert(offer.digest);
                        steps.push(offer);
                    }
                    if let Some(purchase) = purchase {
                        steps.push(purchase);
                    }
                    let mut status = "agreed; delivered off the chain, no dispute";
                    for found in records {
                        if let RecordBody::DataDispute { .. } = &found.record.content.body {
                            status = "disputed: the data did not match its digest";
                        }
                        steps.push(found);
                    }
                    json!({
                        "kind": "data",
                        "status": status,
                        "seller_name": self.directory.name(&agreement.record.content.author),
                        "buyer_name": self.directory.name(buyer),
                        "terms": { "digest": digest.to_string() },
                    })
                }
                _ => continue,
            };
            steps.sort_by_key(|found| {
                let name = step_name(&found.record.content.body);
                (STEPS.iter().position(|s| *s == name), found.time_ms)
            });
            value["trade"] = json!(trade.to_string());
            value["steps"] = json!(steps.into_iter().map(step).collect::<Vec<_>>());
            trades.push(value);
        }
        trades.truncate(limit);
        let offers_open = index
            .by_digest
            .values()
            .filter(|f| {
                matches!(
                    f.record.content.body,
                    RecordBody::PowerOffer { .. } | RecordBody::DataTrade { .. }
                ) && !taken.contains(&f.digest)
            })
            .count();
        Ok(json!({ "trades": trades, "offers_open": offers_open }))
    }

    /// Every trade record: each relay lane's most complete copy first, then each
    /// consortium chain's, for the records that stay in their consortium.
    fn trade_index(&self) -> Result<Index, StoreError> {
        let mut fullest: BTreeMap<ChainId, (Address, u64)> = BTreeMap::new();
        for (holder, chain, head) in self.chains()? {
            if matches!(chain, ChainId::Private(_)) {
                continue;
            }
            let best = fullest.entry(chain).or_insert((holder, head.height));
            if head.height > best.1 {
                *best = (holder, head.height);
            }
        }
        // Relay lanes sort before consortium chains (ChainId's order).
        let mut index = Index::default();
        for (chain, (holder, height)) in fullest {
            let name = self.chain_name(&chain);
            for block in self.store.range(holder, chain, 1, height as usize)? {
                let hash = block.hash();
                let (records, time_ms, on_relay_chain): (Vec<&Record>, u64, bool) = match &block {
                    AnyBlock::Relay(relay) => (
                        relay.blocks.iter().flat_map(|b| &b.records).collect(),
                        relay.header.time,
                        true,
                    ),
                    AnyBlock::Consortium(block) => {
                        (block.records.iter().collect(), block.header.time, false)
                    }
                    _ => continue,
                };
                for record in records {
                    if !is_trade(&record.content.body) {
                        continue;
                    }
                    index.add(Found {
                        digest: record.digest(),
                        record: record.clone(),
                        chain: name.clone(),
                        on_relay_chain,
                        height: block.height(),
                        block: hash,
                        time_ms,
                    });
                }
            }
        }
        Ok(index)
    }
}

/// Whether a record is a step of a power purchase or a data trade.
fn is_trade(body: &RecordBody) -> bool {
    matches!(
        body,
        RecordBody::PowerOffer { .. }
            | RecordBody::PowerBid { .. }
            | RecordBody::TradeAgreement { .. }
            | RecordBody::GridVote { .. }
            | RecordBody::GridReceipt { .. }
            | RecordBody::PowerSettlement { .. }
            | RecordBody::DataTrade { .. }
            | RecordBody::DataPurchase { .. }
            | RecordBody::DataAgreement { .. }
            | RecordBody::DataDispute { .. }
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ieschain_core::sample::SampleFederation;
    use ieschain_storage::{ChainStore, MemoryStore};

    use super::*;
    use crate::demo::fixtures::{append_relay_block, signed};

    /// A data trade whose dispute is on an earlier lane than its agreement is listed whole,
    /// disputed; trades come newest first, and `limit` cuts the list, not the count of open
    /// offers.
    #[test]
    fn a_dispute_on_an_earlier_lane_and_the_newest_first() {
        let federation = SampleFederation::four_party(3, 2);
        let store = MemoryStore::new(federation.genesis.clone());
        let data = Hash([5; 32]);
        let offer = signed(
            &federation,
            6,
            1,
            vec![RecordBody::DataTrade {
                digest: data,
                description: "readings".into(),
                price: 3,
                size: 10,
            }],
        );
        let purchase = signed(
            &federation,
            4,
            1,
            vec![RecordBody::DataPurchase {
                offer: offer[0].digest(),
                price: 3,
            }],
        );
        let trade = trade_id(&offer[0].digest(), &purchase[0].digest());
        let agreement = signed(
            &federation,
            6,
            2,
            vec![RecordBody::DataAgreement {
                trade,
                buyer: federation.members[4].key.address(),
                digest: data,
            }],
        );
        let dispute = signed(
            &federation,
            4,
            2,
            vec![RecordBody::DataDispute {
                trade,
                expected: data,
                received: Hash([6; 32]),
            }],
        );
        // An older power offer no agreement took.
        let power = signed(
            &federation,
            0,
            1,
            vec![RecordBody::PowerOffer {
                wh: 10,
                price_per_kwh: 1,
                slot: 1,
            }],
        );
        append_relay_block(&store, &federation, 0, 50, [dispute, power].concat());
        append_relay_block(&store, &federation, 3, 40, [offer, agreement].concat());
        append_relay_block(&store, &federation, 2, 30, purchase);
        let store: Arc<dyn ChainStore> = Arc::new(store);
        let snapshot = Snapshot::of_store(store).unwrap();
        let listed = snapshot.trades(10).unwrap();
        let trades = listed["trades"].as_array().unwrap();
        assert_eq!(trades.len(), 1, "{listed:#}");
        assert_eq!(trades[0]["trade"], trade.to_string());
        assert!(trades[0]["status"]
            .as_str()
            .unwrap()
            .starts_with("disputed"));
        let steps: Vec<&str> = trades[0]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["step"].as_str().unwrap())
            .collect();
        assert_eq!(steps, ["offer", "purchase", "agreement", "dispute"]);
        assert_eq!(listed["offers_open"], 1);
        let none = snapshot.trades(0).unwrap();
        assert_eq!(none["trades"].as_array().unwrap().len(), 0);
        assert_eq!(none["offers_open"], 1);
    }
}
