//! The trade invariant S6 (SPEC §9), checked on the chains every node holds.
//!
//! For each holder's copy of the relay chain:
//! - a power trade settles at most once;
//! - a settlement cites a grid receipt on the relay chain (in any node's copy: a former
//!   backup's copy of its own lane may stop short of it, SPEC §14) that approved the same
//!   trade;
//! - the buyer's countersignature verifies (when the buyer's key is known);
//! - the energy settled against an offer never exceeds the offered quantity.
//!
//! Across holders, every copy that holds a trade's settlement holds the same one. Data
//! trades are checked where the chain can tell: a data agreement names the digest of the
//! offer it agrees on, and a data trade is agreed once (its seller writes one agreement,
//! however often the purchase reaches it).

use std::collections::BTreeMap;

use ieschain_core::genesis::Directory;
use ieschain_core::record::settlement_digest;
use ieschain_core::{Address, AnyBlock, ChainId, Hash, Record, RecordBody};
use ieschain_storage::ChainStore;

/// What one holder's relay chain says about the trades.
#[derive(Default)]
struct Ledger {
    offers: BTreeMap<Hash, u64>,
    data_offers: BTreeMap<Hash, Hash>,
    receipts: BTreeMap<Hash, (Hash, bool)>,
    settlements: BTreeMap<Hash, Vec<Record>>,
    agreements: Vec<Record>,
}

impl Ledger {
    fn note(&mut self, record: &Record) {
        match &record.content.body {
            RecordBody::PowerOffer { wh, .. } => {
                self.offers.insert(record.digest(), *wh);
            }
            RecordBody::DataTrade { digest, .. } => {
                self.data_offers.insert(record.digest(), *digest);
            }
            RecordBody::GridReceipt {
                trade, approved, ..
            } => {
                self.receipts.insert(record.digest(), (*trade, *approved));
            }
            RecordBody::PowerSettlement { trade, .. } => {
                self.settlements
                    .entry(*trade)
                    .or_default()
                    .push(record.clone());
            }
            RecordBody::DataAgreement { .. } => self.agreements.push(record.clone()),
            _ => {}
        }
    }
}

/// The broken parts of S6, one line each, naming the trade and the holder; empty when the
/// trades are sound. Storage errors are reported as broken lines too.
pub fn trades(store: &dyn ChainStore) -> Vec<String> {
    let mut broken = Vec::new();
    let genesis = store.genesis().clone();
    let mut directory = Directory::from_genesis(&genesis);
    let chains = match store.chains() {
        Ok(chains) => chains,
        Err(e) => return vec![format!("S6 audit: cannot list chains: {e}")],
    };
    let mut ledgers: BTreeMap<Address, Ledger> = BTreeMap::new();
    for (holder, chain, head) in chains {
        let ChainId::Relay(_) = chain else {
            continue;
        };
        let ledger = ledgers.entry(holder).or_default();
        let mut from = 1;
        while from <= head.height {
            let blocks = match store.range(holder, chain, from, 256) {
                Ok(blocks) if !blocks.is_empty() => blocks,
                Ok(_) => break,
                Err(e) => {
                    broken.push(format!("S6 audit: reading {chain:?} of {holder}: {e}"));
                    break;
                }
            };
            from += blocks.len() as u64;
            for block in &blocks {
                let AnyBlock::Relay(relay) = block else {
                    continue;
                };
                for entry in &relay.header.registry.added {
                    directory.add(relay.header.lane, entry);
                }
                for record in relay.blocks.iter().flat_map(|b| b.records.iter()) {
                    ledger.note(record);
                }
                for record in &relay.records {
                    ledger.note(record);
                }
            }
        }
    }
    let mut agreed: BTreeMap<Hash, (Hash, Address)> = BTreeMap::new();
    let receipts: BTreeMap<Hash, (Hash, bool)> = ledgers
        .values()
        .flat_map(|l| l.receipts.iter().map(|(k, v)| (*k, *v)))
        .collect();
    let data_digests: std::collections::BTreeSet<Hash> = ledgers
        .values()
        .flat_map(|l| l.data_offers.values().copied())
        .collect();
    for (holder, ledger) in &ledgers {
        let mut settled_per_offer: BTreeMap<Hash, u64> = BTreeMap::new();
        for (trade, settlements) in &ledger.settlements {
            if settlements.len() > 1 {
                broken.push(format!(
                    "S6 trade {} settled {} times in the relay chain held by {holder}",
                    trade.short(),
                    settlements.len()
                ));
            }
            let Some(settlement) = settlements.first() else {
                continue;
            };
            let RecordBody::PowerSettlement {
                offer,
                buyer,
                wh,
                grid_receipt,
                countersignature,
                ..
            } = &settlement.content.body
            else {
                continue;
            };
            match receipts.get(grid_receipt) {
                Some((t, true)) if t == trade => {}
                _ => broken.push(format!(
                    "S6 trade {} settled without an approving grid receipt (held by {holder})",
                    trade.short()
                )),
            }
            if let Some(key) = directory.get(buyer).map(|k| k.key) {
                if key
                    .verify(
                        &settlement_digest(&settlement.content.body),
                        countersignature,
                    )
                    .is_err()
                {
                    broken.push(format!(
                        "S6 trade {}: the buyer's countersignature does not verify",
                        trade.short()
                    ));
                }
            }
            *settled_per_offer.entry(*offer).or_default() += wh;
            let digest = settlement.digest();
            match agreed.get(trade) {
                Some((other, at)) if *other != digest => broken.push(format!(
                    "S6 trade {}: {holder} and {at} hold different settlements",
                    trade.short()
                )),
                Some(_) => {}
                None => {
                    agreed.insert(*trade, (digest, *holder));
                }
            }
        }
        for (offer, settled) in settled_per_offer {
            if let Some(offered) = ledger.offers.get(&offer) {
                if settled > *offered {
                    broken.push(format!(
                        "S6 offer {}: {settled} Wh settled of {offered} Wh offered (held by {holder})",
                        offer.short()
                    ));
                }
            }
        }
        let mut data_agreed = std::collections::BTreeSet::new();
        for agreement in &ledger.agreements {
            if let RecordBody::DataAgreement { trade, digest, .. } = &agreement.content.body {
                if !data_agreed.insert(*trade) {
                    broken.push(format!(
                        "S6 data trade {}: agreed more than once (held by {holder})",
                        trade.short()
                    ));
                }
                let offered = data_digests.contains(digest);
                if !offered {
                    broken.push(format!(
                        "S6 data trade {}: its agreement names a digest no offer carries (held by {holder})",
                        trade.short()
                    ));
                }
            }
        }
    }
    broken
}

#[cfg(test)]
mod tests {
    use ieschain_core::record::trade_id;
    use ieschain_core::sample::SampleFederation;
    use ieschain_core::Signature;
    use ieschain_storage::MemoryStore;

    use super::*;
    use crate::demo::fixtures;

    /// The bodies as records of the federation's first member, seqs from 1.
    fn signed(federation: &SampleFederation, bodies: Vec<RecordBody>) -> Vec<Record> {
        fixtures::signed(federation, 0, 1, bodies)
    }

    /// A relay lane of one block holding `records`: the audit reads chains, it does not
    /// validate them, so the block need not verify.
    fn store_with(federation: &SampleFederation, records: Vec<Record>) -> MemoryStore {
        let store = MemoryStore::new(federation.genesis.clone());
        fixtures::append_relay_block(&store, federation, 0, 1, records);
        store
    }

    /// An offer of 100 Wh, a grid receipt, and the settlements `wh` against the offer,
    /// countersigned by the federation's second member.
    fn trade(federation: &SampleFederation, approved: bool, settled: &[u64]) -> Vec<Record> {
        let offer_body = RecordBody::PowerOffer {
            wh: 100,
            price_per_kwh: 1,
            slot: 1,
        };
        let offer = signed(federation, vec![offer_body.clone()])[0].digest();
        let trade = trade_id(&offer, &Hash([9; 32]));
        let receipt_body = RecordBody::GridReceipt {
            trade,
            approved,
            reason: String::new(),
        };
        let receipt =
            signed(federation, vec![offer_body.clone(), receipt_body.clone()])[1].digest();
        let buyer = &federation.members[1].key;
        let mut bodies = vec![offer_body, receipt_body];
        for wh in settled {
            let mut body = RecordBody::PowerSettlement {
                trade,
                offer,
                seller: federation.members[0].key.address(),
                buyer: buyer.address(),
                wh: *wh,
                amount: *wh,
                grid_receipt: receipt,
                countersignature: Signature::EMPTY,
            };
            let countersigned = buyer.sign(&settlement_digest(&body));
            if let RecordBody::PowerSettlement {
                countersignature, ..
            } = &mut body
            {
                *countersignature = countersigned;
            }
            bodies.push(body);
        }
        signed(federation, bodies)
    }

    #[test]
    fn an_approved_countersigned_settlement_passes() {
        let federation = SampleFederation::four_party(3, 2);
        let store = store_with(&federation, trade(&federation, true, &[100]));
        assert_eq!(trades(&store), Vec::<String>::new());
    }

    #[test]
    fn a_double_unapproved_oversold_settlement_is_named() {
        let federation = SampleFederation::four_party(3, 2);
        let store = store_with(&federation, trade(&federation, false, &[80, 80]));
        let text = trades(&store).join("\n");
        assert!(text.contains("settled 2 times"), "{text}");
        assert!(text.contains("without an approving grid receipt"), "{text}");
    }

    #[test]
    fn a_settlement_over_the_offer_is_named() {
        let federation = SampleFederation::four_party(3, 2);
        let store = store_with(&federation, trade(&federation, true, &[150]));
        let text = trades(&store).join("\n");
        assert!(text.contains("150 Wh settled of 100 Wh offered"), "{text}");
    }

    #[test]
    fn a_forged_countersignature_is_named() {
        let federation = SampleFederation::four_party(3, 2);
        let mut records = trade(&federation, true, &[100]);
        let forged = records.pop().map(|r| {
            let mut content = r.content;
            if let RecordBody::PowerSettlement {
                countersignature, ..
            } = &mut content.body
            {
                *countersignature = Signature([3; 64]);
            }
            content.sign(&federation.members[0].key)
        });
        records.extend(forged);
        let store = store_with(&federation, records);
        let text = trades(&store).join("\n");
        assert!(text.contains("countersignature does not verify"), "{text}");
    }

    /// A seller's second agreement for one data trade (a repeated purchase answered
    /// twice) is named; one agreement passes.
    #[test]
    fn a_data_trade_agreed_twice_is_named() {
        let federation = SampleFederation::four_party(3, 2);
        let data = Hash([5; 32]);
        let offer = RecordBody::DataTrade {
            digest: data,
            description: "readings".into(),
            price: 3,
            size: 10,
        };
        let agreement = RecordBody::DataAgreement {
            trade: Hash([6; 32]),
            buyer: federation.members[1].key.address(),
            digest: data,
        };
        let once = signed(&federation, vec![offer.clone(), agreement.clone()]);
        assert_eq!(trades(&store_with(&federation, once)), Vec::<String>::new());
        let twice = signed(&federation, vec![offer, agreement.clone(), agreement]);
        let text = trades(&store_with(&federation, twice)).join("\n");
        assert!(text.contains("agreed more than once"), "{text}");
    }
}
