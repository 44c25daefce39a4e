//! The urgent direct power purchase (SPEC §6.2), as a member runs it: the seller's offer,
//! the buyer's bid, the agreement, the grid's receipt, the countersignature and the
//! settlement.

use super::{amount_of, Purchase, Sale};
use crate::node::member::Member;

use crate::crypto::{Address, Hash, Signature};
use crate::message::Message;
use crate::node::{Effect, Event, Protocol, StepTarget};
use crate::record::{settlement_digest, trade_id, Audience, Record, RecordBody};

impl Member {
    /// Whether this member acts on a forwarded record other than an offer (so that it
    /// checks its signature first).
    pub(in crate::node::member) fn acts_on(&self, record: &Record) -> bool {
        let proto = &self.proto;
        match &record.content.body {
            RecordBody::PowerBid { offer, .. } => proto.offers.contains_key(offer),
            RecordBody::TradeAgreement { .. } => {
                Some(self.consortium) == self.timing.protocols.grid && proto.line.is_some()
            }
            RecordBody::GridReceipt { trade, .. } => {
                proto.sales.contains_key(trade)
                    || proto.purchases.contains_key(trade)
                    || proto
                        .line
                        .as_ref()
                        .is_some_and(|l| l.holds.contains_key(trade))
            }
            RecordBody::PowerSettlement { trade, .. } => proto.purchases.contains_key(trade),
            RecordBody::DataPurchase { offer, .. } => proto.data_offers.contains_key(offer),
            RecordBody::JoinAnnouncement { .. } => true,
            _ => false,
        }
    }

    pub(in crate::node::member) fn maybe_bid(
        &mut self,
        offer: &Record,
        digest: Hash,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        if !self.proto.bid_intents.contains_key(&digest)
            || !self.check_record(offer, &digest, effects)
        {
            return;
        }
        let Some(wh) = self.proto.bid_intents.remove(&digest) else {
            return;
        };
        let RecordBody::PowerOffer { price_per_kwh, .. } = offer.content.body else {
            return;
        };
        let seller = offer.content.author;
        let record = self.write_record(
            Audience::Members(vec![seller]),
            RecordBody::PowerBid { offer: digest, wh },
            now,
            effects,
        );
        let trade = trade_id(&digest, &record.digest());
        self.proto.purchases.insert(
            trade,
            Purchase {
                offer: digest,
                seller,
                wh,
                amount: amount_of(wh, price_per_kwh),
                countersignature: None,
                next_send: 0,
                done: false,
                deadline: now + self.timing.protocols.deadline(),
            },
        );
        effects.push(self.step(
            Protocol::PowerPurchase,
            digest,
            4,
            StepTarget::Node(seller),
            format!("bid {wh} Wh"),
            now,
        ));
    }

    pub(in crate::node::member) fn on_bid(
        &mut self,
        bid: &Record,
        offer: Hash,
        wh: u64,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        let Some(book) = self.proto.offers.get(&offer).cloned() else {
            return;
        };
        let buyer = bid.content.author;
        let trade = trade_id(&offer, &bid.digest());
        if self.proto.sales.contains_key(&trade) {
            // The same bid again: answered once, never sold twice.
            effects.push(self.rejected(
                "replayed_bid",
                false,
                format!(
                    "bid {} on offer {} already answered",
                    bid.digest().short(),
                    offer.short()
                ),
            ));
            return;
        }
        let left = book.wh.saturating_sub(book.taken);
        if wh > left {
            effects.push(Effect::Emit(Event::TradeRefused {
                trade,
                offer,
                buyer,
                by: self.me,
                reason: format!("offer has {left} Wh left, bid wants {wh}"),
                at: now,
            }));
            return;
        }
        let Some(grid) = self.timing.protocols.grid else {
            return;
        };
        if let Some(book) = self.proto.offers.get_mut(&offer) {
            book.taken += wh;
        }
        let amount = amount_of(wh, book.price_per_kwh);
        self.write_record(
            Audience::Consortiums(vec![grid]),
            RecordBody::TradeAgreement {
                trade,
                offer,
                bid: bid.digest(),
                seller: self.me,
                buyer,
                wh,
                slot: book.slot,
            },
            now,
            effects,
        );
        self.proto.sales.insert(
            trade,
            Sale {
                offer,
                buyer,
                wh,
                amount,
                receipt: None,
                countersignature: None,
                settled: false,
                deadline: now + self.timing.protocols.deadline(),
            },
        );
        effects.push(self.step(
            Protocol::PowerPurchase,
            offer,
            5,
            StepTarget::Consortium(grid),
            format!(
                "agreed trade {wh} Wh, slot {}, for grid approval",
                book.slot
            ),
            now,
        ));
    }

    /// A grid member checks its line for the slot and votes.
    pub(in crate::node::member) fn on_agreement(
        &mut self,
        trade: Hash,
        offer: Hash,
        wh: u64,
        slot: u64,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        if Some(self.consortium) != self.timing.protocols.grid {
            return;
        }
        let Some(line) = self.proto.line.as_mut() else {
            return;
        };
        if line.holds.contains_key(&trade) {
            return;
        }
        let used = line.used.get(&slot).copied().unwrap_or(0);
        let approve = used.saturating_add(wh) <= line.capacity;
        let capacity = line.capacity;
        if approve {
            line.used.insert(slot, used + wh);
            line.holds.insert(trade, (slot, wh));
        } else {
            line.holds.insert(trade, (slot, 0));
        }
        let line_no = self.consortium_index();
        self.write_record(
            Audience::Own,
            RecordBody::GridVote {
                trade,
                line: line_no,
                approve,
            },
            now,
            effects,
        );
        let relay = self.relay().unwrap_or(self.me);
        effects.push(self.step(
            Protocol::PowerPurchase,
            offer,
            5,
            StepTarget::Node(relay),
            if approve {
                format!("line {line_no} approves {wh} Wh in slot {slot}")
            } else {
                format!("line {line_no} rejects: {used} of {capacity} Wh used in slot {slot}")
            },
            now,
        ));
    }

    /// This member's position in its consortium's genesis list: its line's number.
    pub(in crate::node::member) fn consortium_index(&self) -> u32 {
        self.genesis
            .consortiums
            .get(self.consortium.0 as usize)
            .and_then(|c| c.members.iter().position(|m| m.address == self.me))
            .map_or(u32::MAX, |i| i as u32)
    }

    pub(in crate::node::member) fn on_grid_receipt(
        &mut self,
        receipt: &Record,
        trade: Hash,
        approved: bool,
        reason: &str,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        // A grid member releases what its line held for a rejected trade.
        if !approved {
            if let Some(line) = self.proto.line.as_mut() {
                if let Some((slot, wh)) = line.holds.get(&trade).copied() {
                    if let Some(used) = line.used.get_mut(&slot) {
                        *used = used.saturating_sub(wh);
                    }
                    line.holds.insert(trade, (slot, 0));
                }
            }
        }
        if let Some(sale) = self.proto.sales.get(&trade).cloned() {
            if sale.settled || sale.receipt.is_some() {
                return;
            }
            if !approved {
                if let Some(book) = self.proto.offers.get_mut(&sale.offer) {
                    book.taken = book.taken.saturating_sub(sale.wh);
                }
                self.proto.sales.remove(&trade);
                effects.push(Effect::Emit(Event::TradeRefused {
                    trade,
                    offer: sale.offer,
                    buyer: sale.buyer,
                    by: receipt.content.author,
                    reason: format!("grid rejected: {reason}"),
                    at: now,
                }));
                return;
            }
            if let Some(sale) = self.proto.sales.get_mut(&trade) {
                sale.receipt = Some(receipt.digest());
            }
            self.maybe_settle(trade, now, effects);
        }
        if let Some(purchase) = self.proto.purchases.get(&trade).cloned() {
            if purchase.done || purchase.countersignature.is_some() || !approved {
                if !approved {
                    if let Some(p) = self.proto.purchases.get_mut(&trade) {
                        p.done = true;
                    }
                }
                return;
            }
            let body = RecordBody::PowerSettlement {
                trade,
                offer: purchase.offer,
                seller: purchase.seller,
                buyer: self.me,
                wh: purchase.wh,
                amount: purchase.amount,
                grid_receipt: receipt.digest(),
                countersignature: Signature::EMPTY,
            };
            let signature = self.key.sign(&settlement_digest(&body));
            if let Some(p) = self.proto.purchases.get_mut(&trade) {
                p.countersignature = Some(signature);
                p.next_send = now;
            }
            effects.push(self.step(
                Protocol::PowerPurchase,
                purchase.offer,
                7,
                StepTarget::Node(purchase.seller),
                "countersigns the settlement".into(),
                now,
            ));
            self.purchase_tick(now, effects);
        }
    }

    pub(in crate::node::member) fn on_countersign(
        &mut self,
        from: Address,
        trade: Hash,
        signature: Signature,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        let Some(sale) = self.proto.sales.get(&trade).cloned() else {
            return;
        };
        if sale.buyer != from || sale.countersignature.is_some() {
            return;
        }
        if let Some(sale) = self.proto.sales.get_mut(&trade) {
            sale.countersignature = Some(signature);
        }
        self.maybe_settle(trade, now, effects);
    }

    /// Power purchase step 7: with the grid's approval and the buyer's countersignature,
    /// the seller writes the settlement, to everyone.
    pub(in crate::node::member) fn maybe_settle(
        &mut self,
        trade: Hash,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        let Some(sale) = self.proto.sales.get(&trade).cloned() else {
            return;
        };
        let (Some(receipt), Some(countersignature)) = (sale.receipt, sale.countersignature) else {
            return;
        };
        if sale.settled {
            return;
        }
        let body = RecordBody::PowerSettlement {
            trade,
            offer: sale.offer,
            seller: self.me,
            buyer: sale.buyer,
            wh: sale.wh,
            amount: sale.amount,
            grid_receipt: receipt,
            countersignature: Signature::EMPTY,
        };
        let Some(buyer_key) = self.key_of(&sale.buyer) else {
            return;
        };
        if buyer_key
            .verify(&settlement_digest(&body), &countersignature)
            .is_err()
        {
            // Not the buyer's signature over this settlement: wait for a good one.
            if let Some(sale) = self.proto.sales.get_mut(&trade) {
                sale.countersignature = None;
            }
            effects.push(self.rejected(
                "bad_signature",
                true,
                format!(
                    "countersignature of trade {} by {}",
                    trade.short(),
                    sale.buyer
                ),
            ));
            return;
        }
        let RecordBody::PowerSettlement {
            trade,
            offer,
            seller,
            buyer,
            wh,
            amount,
            grid_receipt,
            ..
        } = body
        else {
            return;
        };
        self.write_record(
            Audience::Everyone,
            RecordBody::PowerSettlement {
                trade,
                offer,
                seller,
                buyer,
                wh,
                amount,
                grid_receipt,
                countersignature,
            },
            now,
            effects,
        );
        if let Some(sale) = self.proto.sales.get_mut(&trade) {
            sale.settled = true;
        }
        effects.push(self.step(
            Protocol::PowerPurchase,
            offer,
            7,
            StepTarget::Relays,
            format!("settlement {wh} Wh for {amount}, to every relay and consortium"),
            now,
        ));
    }

    pub(in crate::node::member) fn purchase_tick(&mut self, now: u64, effects: &mut Vec<Effect>) {
        let resend = self.resend_ms();
        let mut expired = Vec::new();
        for (trade, purchase) in self.proto.purchases.iter_mut() {
            if purchase.done {
                continue;
            }
            if now >= purchase.deadline + self.timing.protocols.deadline() {
                expired.push(*trade);
                continue;
            }
            if let Some(signature) = purchase.countersignature {
                if now >= purchase.next_send {
                    purchase.next_send = now + resend;
                    effects.push(Effect::Send {
                        to: purchase.seller,
                        message: Message::Countersign {
                            trade: *trade,
                            signature,
                        },
                    });
                }
            }
        }
        for trade in expired {
            self.proto.purchases.remove(&trade);
        }
        // A seller forgets trades that never settled, long after their deadline; the
        // quantity they held is offered again.
        let deadline = self.timing.protocols.deadline();
        let stale: Vec<Hash> = self
            .proto
            .sales
            .iter()
            .filter(|(_, s)| !s.settled && s.deadline > 0 && now >= s.deadline + deadline)
            .map(|(t, _)| *t)
            .collect();
        for trade in stale {
            if let Some(sale) = self.proto.sales.remove(&trade) {
                if let Some(book) = self.proto.offers.get_mut(&sale.offer) {
                    book.taken = book.taken.saturating_sub(sale.wh);
                }
            }
        }
    }
}
