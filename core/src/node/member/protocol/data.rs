//! The non-urgent data trade (SPEC §6.3), as a member runs it: the buyer's purchase, the
//! agreement, the delivery through the relays and the buyer's digest check.

use super::{DataBuy, DataSale};
use crate::node::member::Member;

use crate::crypto::{Address, Hash};
use crate::message::Message;
use crate::node::{Effect, Event, Protocol, StepTarget};
use crate::record::{data_digest, trade_id, Audience, Record, RecordBody};

impl Member {
    pub(in crate::node::member) fn maybe_buy_data(
        &mut self,
        offer: &Record,
        digest: Hash,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        if !self.proto.data_intents.contains(&digest) || !self.check_record(offer, &digest, effects)
        {
            return;
        }
        self.proto.data_intents.remove(&digest);
        let RecordBody::DataTrade {
            digest: data,
            price,
            ..
        } = offer.content.body
        else {
            return;
        };
        let seller = offer.content.author;
        let record = self.write_record(
            Audience::Members(vec![seller]),
            RecordBody::DataPurchase {
                offer: digest,
                price,
            },
            now,
            effects,
        );
        let trade = trade_id(&digest, &record.digest());
        self.proto.data_buys.insert(
            trade,
            DataBuy {
                offer: digest,
                seller,
                digest: data,
                done: false,
            },
        );
        effects.push(self.step(
            Protocol::DataTrade,
            digest,
            5,
            StepTarget::Node(seller),
            format!("buys the data for {price}"),
            now,
        ));
    }

    pub(in crate::node::member) fn on_data_purchase(
        &mut self,
        purchase: &Record,
        offer: Hash,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        // The digest on the chain is the offer's, whatever the seller now holds.
        let Some((digest, _)) = self.proto.data_offers.get(&offer) else {
            return;
        };
        let digest = *digest;
        let buyer = purchase.content.author;
        let trade = trade_id(&offer, &purchase.digest());
        if !self.proto.data_agreed.insert(trade) {
            return;
        }
        self.write_record(
            Audience::Everyone,
            RecordBody::DataAgreement {
                trade,
                buyer,
                digest,
            },
            now,
            effects,
        );
        self.proto.data_sales.insert(
            trade,
            DataSale {
                offer,
                buyer,
                next_send: now,
                deadline: now + self.timing.protocols.deadline(),
            },
        );
        effects.push(self.step(
            Protocol::DataTrade,
            offer,
            6,
            StepTarget::Relays,
            "agreement, to everyone".into(),
            now,
        ));
        effects.push(self.step(
            Protocol::DataTrade,
            offer,
            6,
            StepTarget::Node(buyer),
            "delivers the data through the relays".into(),
            now,
        ));
        self.data_tick(now, effects);
    }

    pub(in crate::node::member) fn data_tick(&mut self, now: u64, effects: &mut Vec<Effect>) {
        let resend = self.resend_ms();
        let Some(relay) = self.relay() else {
            return;
        };
        let mut over = Vec::new();
        for (trade, sale) in self.proto.data_sales.iter_mut() {
            if now >= sale.deadline {
                over.push(*trade);
                continue;
            }
            if now < sale.next_send {
                continue;
            }
            sale.next_send = now + resend;
            let Some((_, data)) = self.proto.data_offers.get(&sale.offer) else {
                over.push(*trade);
                continue;
            };
            effects.push(Effect::Send {
                to: relay,
                message: Message::DataDelivery {
                    trade: *trade,
                    seller: self.me,
                    buyer: sale.buyer,
                    data: data.clone(),
                },
            });
        }
        for trade in over {
            self.proto.data_sales.remove(&trade);
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(in crate::node::member) fn on_data_delivery(
        &mut self,
        from: Address,
        trade: Hash,
        seller: Address,
        buyer: Address,
        data: Vec<u8>,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        if buyer != self.me {
            // A relay passes it on: to the buyer if it is a member here, else to the relay
            // of the buyer's consortium.
            if !self.is_relay() {
                return;
            }
            let to = match self.consortium_of(&buyer) {
                Some(c) if c == self.consortium => buyer,
                Some(c) => match self.serving.get(&c) {
                    Some(s) => s.relay,
                    None => return,
                },
                None => return,
            };
            if to != from {
                effects.push(Effect::Send {
                    to,
                    message: Message::DataDelivery {
                        trade,
                        seller,
                        buyer,
                        data,
                    },
                });
            }
            return;
        }
        let Some(buy) = self.proto.data_buys.get(&trade).cloned() else {
            return;
        };
        if buy.seller != seller {
            return;
        }
        effects.push(Effect::Send {
            to: seller,
            message: Message::DataReceived { trade },
        });
        if buy.done {
            return;
        }
        if let Some(b) = self.proto.data_buys.get_mut(&trade) {
            b.done = true;
        }
        let received = data_digest(&data);
        if received == buy.digest {
            effects.push(Effect::Emit(Event::DataDelivered {
                trade,
                offer: buy.offer,
                seller,
                buyer: self.me,
                bytes: data.len() as u64,
                at: now,
            }));
        } else {
            self.write_record(
                Audience::Everyone,
                RecordBody::DataDispute {
                    trade,
                    expected: buy.digest,
                    received,
                },
                now,
                effects,
            );
            effects.push(self.step(
                Protocol::DataTrade,
                buy.offer,
                6,
                StepTarget::Relays,
                "digest mismatch: refused, dispute recorded".into(),
                now,
            ));
            effects.push(Effect::Emit(Event::DataDisputed {
                trade,
                offer: buy.offer,
                seller,
                buyer: self.me,
                at: now,
            }));
        }
    }
}
