//! The operating protocols of SPEC §6 as one member runs them: the join (§6.1), the urgent
//! direct power purchase (§6.2) and the non-urgent data trade (§6.3).
//!
//! Every step is a signed record on a chain or a signed envelope through the transport.
//! Records travel the way all records do: in the author's consortium block, to its relay,
//! into a relay block when their audience is outside the consortium (D4), and from the
//! audience's relay to the audience (D12). So a step survives a relay failover the way any
//! block does: it is resent to the new relay and deduplicated by (author, height), and
//! every handler here is idempotent, keyed by the record's digest or the trade id. The
//! few direct messages (join messages, the countersignature, the data delivery) are resent
//! on a timer until answered or until the run's deadline.
//!
//! | step | who | what |
//! |---|---|---|
//! | join 1 | newcomer → any member | `JoinIntent`; the member answers with its relay |
//! | join 2 | newcomer → relay | `JoinRequest` with the admission credential |
//! | join 3 | relay | (only in an active configuration) checks it, adds the entry to its next relay block's registry, writes a `JoinAnnouncement` and sends it to the consortium; sends `JoinAccepted` (with the live members) to the newcomer once that relay block is released |
//! | join 4 | members | check the relay's signature and learn the key |
//! | join 5 | newcomer → listed members | `JoinApply`: the announcement and its `JoinApplication` |
//! | join 6 | member → newcomer | a `JoinReceipt` record, also written to the member's lane |
//! | join 7 | newcomer | done once every listed member's receipt is in |
//! | power 1–3 | seller | `PowerOffer` (urgent) to the load consortium |
//! | power 4 | buyer | `PowerBid` to the seller |
//! | power 5 | seller, grid | `TradeAgreement` to the grid; each grid member a `GridVote` on its line |
//! | power 6 | grid relay | `GridReceipt` (approved or rejected, signed) to seller and buyer |
//! | power 7 | buyer → seller, seller | `Countersign`, then the `PowerSettlement` to everyone |
//! | data 1–4 | seller | `DataTrade` offer (normal) to the service consortium |
//! | data 5 | buyer | `DataPurchase` to the seller |
//! | data 6 | seller, buyer | `DataAgreement` to everyone, `DataDelivery` through the relays; the buyer checks the digest, or records a `DataDispute` |

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use thiserror::Error;

mod data;
mod grid;
mod join;
mod power;

use super::Member;
use crate::block::{ChainBlock, RelayBlock};
use crate::codec;
use crate::crypto::{Address, Hash, PublicKey, Signature};
use crate::ids::ConsortiumId;
use crate::message::Message;
use crate::node::{Effect, Event, Protocol, StepTarget};
use crate::record::{data_digest, Audience, Record, RecordBody, RecordKind};
use crate::registry::RegistryEntry;
pub(super) use grid::GridDesk;

/// The most offers (or data offers) one member remembers having seen, newest kept, so that
/// a host may still bid on (or buy) one after it arrived.
const SEEN_LIMIT: usize = 4096;

/// The most offers the members of one consortium remember between them (issue 12, item
/// 7): each keeps its share, `SEEN_PER_CONSORTIUM / members`, within
/// `SEEN_MIN..=SEEN_LIMIT`. At 10,000 members every member kept 4,096 offers, and the
/// seen sets, not the chains, were the federation's memory.
const SEEN_PER_CONSORTIUM: usize = 1 << 16;

/// The fewest offers a member remembers, however large its consortium.
const SEEN_MIN: usize = 8;

/// How many offers a member of a consortium of `members` remembers.
fn seen_limit(members: usize) -> usize {
    (SEEN_PER_CONSORTIUM / members.max(1)).clamp(SEEN_MIN, SEEN_LIMIT)
}

/// Why a host's protocol request was refused at once.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ProtocolError {
    /// The federation has no consortium playing this part.
    #[error("the federation has no {0} consortium")]
    NoConsortium(&'static str),
    /// This member is in the wrong consortium for the step.
    #[error("{member} is not in the {part} consortium")]
    WrongPart {
        /// The member.
        member: String,
        /// The part it would need to play.
        part: &'static str,
    },
    /// A quantity of zero, or a price that overflows.
    #[error("bad quantity: {0}")]
    Quantity(String),
    /// This node is already joining, or is registered.
    #[error("{0}")]
    Join(String),
}

/// A power offer of this member, as seller.
#[derive(Clone, Debug)]
struct OfferBook {
    wh: u64,
    price_per_kwh: u64,
    slot: u64,
    /// Wh promised to trades still in negotiation, and settled.
    taken: u64,
}

/// A power trade this member sells in.
#[derive(Clone, Debug)]
struct Sale {
    offer: Hash,
    buyer: Address,
    wh: u64,
    amount: u64,
    /// The grid's receipt, once approved: its digest.
    receipt: Option<Hash>,
    countersignature: Option<Signature>,
    settled: bool,
    deadline: u64,
}

/// A power trade this member buys in.
#[derive(Clone, Debug)]
struct Purchase {
    offer: Hash,
    seller: Address,
    wh: u64,
    amount: u64,
    /// The countersignature, once the grid approved: resent until the settlement arrives.
    countersignature: Option<Signature>,
    next_send: u64,
    done: bool,
    deadline: u64,
}

/// A data trade this member sells in: the data is resent until the buyer confirms.
#[derive(Clone, Debug)]
struct DataSale {
    offer: Hash,
    buyer: Address,
    next_send: u64,
    deadline: u64,
}

/// A data trade this member buys in.
#[derive(Clone, Debug)]
struct DataBuy {
    offer: Hash,
    seller: Address,
    digest: Hash,
    done: bool,
}

/// Where a newcomer's join stands.
#[derive(Clone, Debug, PartialEq, Eq)]
enum JoinPhase {
    /// Asking members who the relay is.
    FindRelay,
    /// Asking the relay to register it.
    Request(Address),
    /// Registered: collecting receipts.
    Collect,
    /// Done or failed.
    Over,
}

#[derive(Clone, Debug)]
struct Joining {
    entry: RegistryEntry,
    credential: Signature,
    phase: JoinPhase,
    attempt: u64,
    next_send: u64,
    deadline: u64,
    announcement: Option<Record>,
    application: Option<Record>,
    needed: BTreeSet<Address>,
    receipts: BTreeSet<Address>,
    /// The relay whose acceptance the receipts are collected under: a different relay
    /// (after a failover) is asked again, and its list of live members replaces this one's.
    accepted_by: Option<Address>,
}

/// A grid member's line: capacity per delivery slot, and what its approvals hold.
#[derive(Clone, Debug, Default)]
struct Line {
    capacity: u64,
    used: BTreeMap<u64, u64>,
    /// Trade → (slot, Wh) this line approved.
    holds: BTreeMap<Hash, (u64, u64)>,
}

/// A member's protocol state.
#[derive(Clone, Debug, Default)]
pub(super) struct Protocols {
    line: Option<Line>,
    offers: BTreeMap<Hash, OfferBook>,
    sales: BTreeMap<Hash, Sale>,
    bid_intents: BTreeMap<Hash, u64>,
    purchases: BTreeMap<Hash, Purchase>,
    seen: BTreeMap<Hash, Record>,
    seen_order: VecDeque<Hash>,
    /// My data offers: the digest on the chain, and the bytes to deliver.
    data_offers: BTreeMap<Hash, (Hash, Vec<u8>)>,
    data_sales: BTreeMap<Hash, DataSale>,
    /// The data trades this member agreed as seller: a purchase that reaches it again
    /// (a relay's forward repeated, after the sale ended) gets no second agreement.
    data_agreed: BTreeSet<Hash>,
    data_intents: BTreeSet<Hash>,
    data_buys: BTreeMap<Hash, DataBuy>,
    joining: Option<Box<Joining>>,
    /// Keys of newcomers learned from a relay's announcement (join step 4).
    learned: BTreeMap<Address, PublicKey>,
    /// Receipts this member gave, resent as they were on a repeated application (D9).
    receipts_given: BTreeMap<Address, Record>,
    /// Relay: registry entries for the next relay block.
    pub(super) pending_joins: Vec<RegistryEntry>,
    /// Relay: announcements made, by newcomer, resent on a repeated request.
    announced: BTreeMap<Address, Record>,
    /// Relay: newcomers to answer `JoinAccepted` once their registry entry is on the lane,
    /// with the announcement to send.
    accepting: BTreeMap<Address, Record>,
    /// Relay: when each member of the consortium was last heard from (D11).
    heard: BTreeMap<Address, u64>,
    /// Meter → (first reading, last reading, readings): the quarter's consumption.
    consumption: BTreeMap<u32, (u64, u64, u32)>,
}

fn audience_has(audience: &Audience, consortium: ConsortiumId) -> bool {
    match audience {
        Audience::Consortiums(list) => list.contains(&consortium),
        Audience::Everyone => true,
        _ => false,
    }
}

/// The amount due for `wh` at `price_per_kwh`, rounded down.
fn amount_of(wh: u64, price_per_kwh: u64) -> u64 {
    ((wh as u128 * price_per_kwh as u128) / 1000).min(u64::MAX as u128) as u64
}

impl Member {
    // ----- the host's requests -----

    /// Gives this grid member its line, with `capacity` Wh per delivery slot (D12).
    pub fn set_line_capacity(&mut self, capacity: Option<u64>) {
        self.proto.line = capacity.map(|capacity| Line {
            capacity,
            ..Line::default()
        });
    }

    fn part(&self, part: &'static str, id: Option<ConsortiumId>) -> Result<(), ProtocolError> {
        let id = id.ok_or(ProtocolError::NoConsortium(part))?;
        if id != self.consortium {
            return Err(ProtocolError::WrongPart {
                member: self.directory.name(&self.me),
                part,
            });
        }
        Ok(())
    }

    /// Power purchase step 1: offers `wh` of surplus at `price_per_kwh` for delivery `slot`
    /// to the load consortium. Returns the offer's digest, which names the run.
    pub fn offer_power(
        &mut self,
        wh: u64,
        price_per_kwh: u64,
        slot: u64,
        now: u64,
    ) -> Result<(Hash, Vec<Effect>), ProtocolError> {
        let roles = self.timing.protocols;
        self.part("source", roles.source)?;
        let load = roles.load.ok_or(ProtocolError::NoConsortium("load"))?;
        roles.grid.ok_or(ProtocolError::NoConsortium("grid"))?;
        if wh == 0 {
            return Err(ProtocolError::Quantity("an offer of 0 Wh".into()));
        }
        let mut effects = Vec::new();
        let record = self.write_record(
            Audience::Consortiums(vec![load]),
            RecordBody::PowerOffer {
                wh,
                price_per_kwh,
                slot,
            },
            now,
            &mut effects,
        );
        let offer = record.digest();
        self.proto.offers.insert(
            offer,
            OfferBook {
                wh,
                price_per_kwh,
                slot,
                taken: 0,
            },
        );
        effects.push(self.step(
            Protocol::PowerPurchase,
            offer,
            1,
            StepTarget::Node(self.relay().unwrap_or(self.me)),
            format!("urgent offer {wh} Wh at {price_per_kwh}/kWh, slot {slot}"),
            now,
        ));
        Ok((offer, effects))
    }

    /// Power purchase step 4: bids for `wh` of `offer` as soon as the offer is seen.
    pub fn bid_power(
        &mut self,
        offer: Hash,
        wh: u64,
        now: u64,
    ) -> Result<Vec<Effect>, ProtocolError> {
        self.part("load", self.timing.protocols.load)?;
        if wh == 0 {
            return Err(ProtocolError::Quantity("a bid of 0 Wh".into()));
        }
        self.proto.bid_intents.insert(offer, wh);
        let mut effects = Vec::new();
        if let Some(record) = self.proto.seen.get(&offer).cloned() {
            self.maybe_bid(&record, offer, now, &mut effects);
        }
        Ok(effects)
    }

    /// Data trade step 1: offers `data` (by default this member's consumption data of the
    /// quarter, built from its private chain) to the service consortium. Returns the
    /// offer's digest.
    pub fn offer_data(
        &mut self,
        description: String,
        price: u64,
        data: Option<Vec<u8>>,
        now: u64,
    ) -> Result<(Hash, Vec<Effect>), ProtocolError> {
        let roles = self.timing.protocols;
        self.part("load", roles.load)?;
        let service = roles
            .service
            .ok_or(ProtocolError::NoConsortium("service"))?;
        let data = data.unwrap_or_else(|| self.consumption_data());
        let digest = data_digest(&data);
        let mut effects = Vec::new();
        let record = self.write_record(
            Audience::Consortiums(vec![service]),
            RecordBody::DataTrade {
                digest,
                description: description.clone(),
                price,
                size: data.len() as u64,
            },
            now,
            &mut effects,
        );
        let offer = record.digest();
        self.proto.data_offers.insert(offer, (digest, data));
        effects.push(self.step(
            Protocol::DataTrade,
            offer,
            1,
            StepTarget::Node(self.relay().unwrap_or(self.me)),
            format!("data offer \"{description}\", digest {}", digest.short()),
            now,
        ));
        Ok((offer, effects))
    }

    /// Data trade step 5: buys `offer` as soon as it is seen.
    pub fn buy_data(&mut self, offer: Hash, now: u64) -> Result<Vec<Effect>, ProtocolError> {
        self.part("service", self.timing.protocols.service)?;
        self.proto.data_intents.insert(offer);
        let mut effects = Vec::new();
        if let Some(record) = self.proto.seen.get(&offer).cloned() {
            self.maybe_buy_data(&record, offer, now, &mut effects);
        }
        Ok(effects)
    }

    /// Replaces the bytes this seller will deliver for `offer`: a faulty or dishonest
    /// seller, for tests of the dispute path. Returns whether the offer is this member's.
    pub fn tamper_data(&mut self, offer: Hash, data: Vec<u8>) -> bool {
        match self.proto.data_offers.get_mut(&offer) {
            Some((_, bytes)) => {
                *bytes = data;
                true
            }
            None => false,
        }
    }

    /// This member's consumption data of the quarter: per meter, the first and last
    /// readings and their count, from the meter readings it wrote to its private chain,
    /// with the private chain's head. Canonical bytes, so its digest is reproducible.
    pub fn consumption_data(&self) -> Vec<u8> {
        let meters: Vec<(u32, u64, u64, u32)> = self
            .proto
            .consumption
            .iter()
            .map(|(meter, (first, last, n))| (*meter, *first, *last, *n))
            .collect();
        codec::encode(&(
            self.me,
            self.private.head.height,
            self.private.head.hash,
            meters,
        ))
    }

    /// Join step 1: starts joining this node's consortium with `entry` and the admission
    /// `credential`. The node is not registered; it fails by the deadline.
    pub fn start_join(
        &mut self,
        entry: RegistryEntry,
        credential: Signature,
        now: u64,
    ) -> Result<Vec<Effect>, ProtocolError> {
        if self.proto.joining.is_some() {
            return Err(ProtocolError::Join(format!(
                "{} is already joining",
                entry.name
            )));
        }
        self.proto.joining = Some(Box::new(Joining {
            entry,
            credential,
            phase: JoinPhase::FindRelay,
            attempt: 0,
            next_send: now,
            deadline: now + self.timing.protocols.deadline(),
            announcement: None,
            application: None,
            needed: BTreeSet::new(),
            receipts: BTreeSet::new(),
            accepted_by: None,
        }));
        // Join messages go out through the protocol's timer: the first one now.
        self.discovered = true;
        let mut effects = Vec::new();
        self.join_tick(now, &mut effects);
        Ok(effects)
    }

    // ----- hooks from the member machine -----

    /// A key learned from a relay's announcement (join step 4).
    pub(super) fn learned_key(&self, address: &Address) -> Option<PublicKey> {
        self.proto.learned.get(address).copied()
    }

    /// Notes a record this member wrote: meter readings make up its consumption data.
    pub(super) fn note_own_record(&mut self, record: &Record) {
        if let RecordBody::MeterReading { meter, wh } = record.content.body {
            let entry = self.proto.consumption.entry(meter).or_insert((wh, wh, 0));
            entry.1 = wh;
            entry.2 += 1;
        }
    }

    /// Rebuilds the protocol state from a record of this member's own chains, on restart:
    /// the offers it made, the quantity its agreements took, the settlements it wrote.
    pub(super) fn recover_own_record(&mut self, record: &Record) {
        self.note_own_record(record);
        match &record.content.body {
            RecordBody::PowerOffer {
                wh,
                price_per_kwh,
                slot,
            } => {
                self.proto.offers.insert(
                    record.digest(),
                    OfferBook {
                        wh: *wh,
                        price_per_kwh: *price_per_kwh,
                        slot: *slot,
                        taken: 0,
                    },
                );
            }
            RecordBody::TradeAgreement {
                trade,
                offer,
                buyer,
                wh,
                ..
            } => {
                let amount = match self.proto.offers.get_mut(offer) {
                    Some(book) => {
                        book.taken += wh;
                        amount_of(*wh, book.price_per_kwh)
                    }
                    None => 0,
                };
                self.proto.sales.insert(
                    *trade,
                    Sale {
                        offer: *offer,
                        buyer: *buyer,
                        wh: *wh,
                        amount,
                        receipt: None,
                        countersignature: None,
                        settled: false,
                        deadline: 0,
                    },
                );
            }
            RecordBody::PowerSettlement { trade, .. } => {
                if let Some(sale) = self.proto.sales.get_mut(trade) {
                    sale.settled = true;
                }
            }
            _ => {}
        }
    }

    /// The relay notes that a member of its consortium was heard from (D11).
    pub(super) fn note_heard(&mut self, from: Address, now: u64) {
        if self.is_relay() {
            self.proto.heard.insert(from, now);
        }
    }

    fn step(
        &self,
        protocol: Protocol,
        run: Hash,
        step: u8,
        to: StepTarget,
        what: String,
        now: u64,
    ) -> Effect {
        Effect::Emit(Event::Step {
            protocol,
            run,
            step,
            from: self.me,
            to,
            what,
            at: now,
        })
    }

    /// The consortium of a known node.
    fn consortium_of(&self, address: &Address) -> Option<ConsortiumId> {
        if let Some(known) = self.holder.as_ref().and_then(|h| h.directory.get(address)) {
            return known.consortium;
        }
        if self.proto.learned.contains_key(address) {
            return Some(self.consortium);
        }
        self.directory.get(address).and_then(|k| k.consortium)
    }

    /// Checks a record that reached this member, whose digest it computed: a known author
    /// and a good signature.
    fn check_record(&self, record: &Record, digest: &Hash, effects: &mut Vec<Effect>) -> bool {
        let author = record.content.author;
        let Some(key) = self.key_of(&author) else {
            effects.push(self.rejected(
                "unknown_sender",
                true,
                format!("{} record by unknown {author}", record.kind().name()),
            ));
            return false;
        };
        if key.verify(digest, &record.signature).is_err() {
            effects.push(self.rejected(
                "bad_signature",
                true,
                format!("{} record by {author}", record.kind().name()),
            ));
            return false;
        }
        true
    }

    /// Handles the protocol messages that travel outside the chains.
    pub(super) fn on_protocol_message(
        &mut self,
        from: Address,
        message: Message,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        match message {
            Message::Forward { records, .. } => self.on_forward(from, records, now, effects),
            Message::JoinIntent { .. } => {
                if let Some(relay) = self.relay() {
                    effects.push(Effect::Send {
                        to: from,
                        message: Message::JoinRelay { relay },
                    });
                }
            }
            Message::JoinRelay { relay } => {
                if let Some(joining) = self.proto.joining.as_mut() {
                    // While collecting, a member naming another relay than the one that
                    // accepted means a failover: ask the new relay (SPEC §6, "retried
                    // against the new relay").
                    let moved =
                        joining.phase == JoinPhase::Collect && joining.accepted_by != Some(relay);
                    if joining.phase == JoinPhase::FindRelay || moved {
                        joining.phase = JoinPhase::Request(relay);
                        joining.next_send = now;
                        self.join_tick(now, effects);
                    }
                }
            }
            Message::JoinRequest { entry, credential } => {
                self.on_join_request(from, entry, credential, now, effects)
            }
            Message::JoinAccepted {
                announcement,
                members,
            } => self.on_join_accepted(from, announcement, members, now, effects),
            Message::JoinRefused { reason } => {
                let phase = self.proto.joining.as_ref().map(|j| j.phase.clone());
                if phase == Some(JoinPhase::Request(from)) {
                    self.join_failed(format!("refused by the relay: {reason}"), now, effects);
                }
            }
            Message::JoinApply {
                announcement,
                application,
            } => self.on_join_apply(from, announcement, application, now, effects),
            Message::JoinReceipted { receipt } => self.on_join_receipt(from, receipt, now, effects),
            Message::Countersign { trade, signature } => {
                self.on_countersign(from, trade, signature, now, effects)
            }
            Message::DataDelivery {
                trade,
                seller,
                buyer,
                data,
            } => self.on_data_delivery(from, trade, seller, buyer, data, now, effects),
            Message::DataReceived { trade }
                if self
                    .proto
                    .data_sales
                    .get(&trade)
                    .is_some_and(|s| s.buyer == from) =>
            {
                self.proto.data_sales.remove(&trade);
            }
            _ => {}
        }
    }

    // ----- records forwarded by the relay -----

    fn on_forward(
        &mut self,
        from: Address,
        records: Vec<Record>,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        // Only a relay-capable member of this consortium forwards to it.
        let from_own_relay = self.consortium_of(&from) == Some(self.consortium)
            && (self.relay() == Some(from)
                || self
                    .genesis
                    .consortiums
                    .get(self.consortium.0 as usize)
                    .is_some_and(|c| {
                        c.members
                            .iter()
                            .any(|m| m.address == from && m.relay_capable)
                    }));
        if !from_own_relay {
            effects.push(self.rejected(
                "not_relay",
                true,
                format!("records forwarded by {from}, not a relay of this consortium"),
            ));
            return;
        }
        for record in records {
            self.on_forwarded(from, &record, now, effects);
        }
    }

    /// Acts on one record addressed to this member. Every branch is idempotent.
    pub(super) fn on_forwarded(
        &mut self,
        relay: Address,
        record: &Record,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        // A member checks the signature of what it acts on, when it acts: a relay fans
        // offers out to whole consortiums, and most members never act on most of them.
        // Offers are kept unchecked and checked before a bid or a purchase.
        let offer = matches!(
            record.content.body,
            RecordBody::PowerOffer { .. } | RecordBody::DataTrade { .. }
        );
        if !offer
            && (!self.acts_on(record) || !self.check_record(record, &record.digest(), effects))
        {
            return;
        }
        let author = record.content.author;
        match &record.content.body {
            RecordBody::PowerOffer { .. } | RecordBody::DataTrade { .. } => {
                // Only the load consortium bids on power, and only the service consortium
                // buys data (`bid_power`, `buy_data`): anyone else never acts on an offer,
                // and does not keep it.
                let buyers = if record.kind() == RecordKind::PowerOffer {
                    self.timing.protocols.load
                } else {
                    self.timing.protocols.service
                };
                if buyers != Some(self.consortium) {
                    return;
                }
                let digest = record.digest();
                let limit = seen_limit(
                    self.genesis
                        .consortiums
                        .get(self.consortium.0 as usize)
                        .map_or(1, |c| c.members.len()),
                );
                if let std::collections::btree_map::Entry::Vacant(entry) =
                    self.proto.seen.entry(digest)
                {
                    entry.insert(record.clone());
                    self.proto.seen_order.push_back(digest);
                    while self.proto.seen_order.len() > limit {
                        if let Some(old) = self.proto.seen_order.pop_front() {
                            self.proto.seen.remove(&old);
                        }
                    }
                }
                if record.kind() == RecordKind::PowerOffer {
                    self.maybe_bid(record, digest, now, effects);
                } else {
                    self.maybe_buy_data(record, digest, now, effects);
                }
            }
            RecordBody::PowerBid { offer, wh } => {
                self.on_bid(record, *offer, *wh, now, effects);
            }
            RecordBody::TradeAgreement {
                trade,
                offer,
                wh,
                slot,
                ..
            } => self.on_agreement(*trade, *offer, *wh, *slot, now, effects),
            RecordBody::GridReceipt {
                trade,
                approved,
                reason,
            } => {
                if self.consortium_of(&author) != self.timing.protocols.grid {
                    effects.push(self.rejected(
                        "not_grid",
                        true,
                        format!("grid receipt by {author}, not a grid member"),
                    ));
                    return;
                }
                self.on_grid_receipt(record, *trade, *approved, reason, now, effects);
            }
            RecordBody::PowerSettlement { trade, .. } => {
                if let Some(purchase) = self.proto.purchases.get_mut(trade) {
                    purchase.done = true;
                }
            }
            RecordBody::DataPurchase { offer, .. } => {
                self.on_data_purchase(record, *offer, now, effects);
            }
            RecordBody::JoinAnnouncement { entry } => {
                self.learn_announced(relay, record, entry, now, effects);
            }
            _ => {}
        }
    }

    /// The protocols' timers: retries, deadlines, the grid's receipts.
    pub(super) fn protocol_tick(&mut self, now: u64, effects: &mut Vec<Effect>) {
        if !self.proto.accepting.is_empty() {
            if self.is_relay() {
                self.accept_registered_joins(now, effects);
            } else {
                // No longer relay: the next one registers them when they ask again.
                self.proto.accepting.clear();
            }
        }
        self.join_tick(now, effects);
        self.purchase_tick(now, effects);
        self.data_tick(now, effects);
        self.grid_tick(now, effects);
    }
}

/// The outcome events of a relay block the relay just committed: the settlements in it.
pub(super) fn settled_events(
    block: &RelayBlock,
    reason: crate::window::FlushReason,
    now: u64,
) -> Vec<Effect> {
    let mut out = Vec::new();
    for record in block.blocks.iter().flat_map(|b| b.records.iter()) {
        match &record.content.body {
            RecordBody::PowerSettlement {
                trade,
                offer,
                seller,
                buyer,
                wh,
                amount,
                ..
            } => out.push(Effect::Emit(Event::TradeSettled {
                trade: *trade,
                offer: *offer,
                seller: *seller,
                buyer: *buyer,
                wh: *wh,
                amount: *amount,
                at: now,
            })),
            RecordBody::DataTrade { .. } if matches!(&record.content.audience, Audience::Consortiums(l) if l.len() == 1) => {
                out.push(Effect::Emit(Event::Step {
                    protocol: Protocol::DataTrade,
                    run: record.digest(),
                    step: 2,
                    from: block.header.relay,
                    to: StepTarget::Relays,
                    what: format!(
                        "relay block {} sent (flush: {reason:?}), urgency bits [{}]",
                        block.height(),
                        (0..block.header.urgency.len as usize)
                            .map(|i| if block.header.urgency.get(i) == Some(true) {
                                "1"
                            } else {
                                "0"
                            })
                            .collect::<Vec<_>>()
                            .join("")
                    ),
                    at: now,
                }))
            }
            RecordBody::PowerOffer { wh, .. } => out.push(Effect::Emit(Event::Step {
                protocol: Protocol::PowerPurchase,
                run: record.digest(),
                step: 2,
                from: block.header.relay,
                to: StepTarget::Relays,
                what: format!(
                    "urgent relay block {} sent at once ({wh} Wh offered)",
                    block.height()
                ),
                at: now,
            })),
            _ => {}
        }
    }
    out
}

/// A forwarded power offer is protocol step 3: the load relay broadcasts it.
pub(super) fn forward_steps(
    relay: Address,
    consortium: ConsortiumId,
    roles: crate::node::ProtocolConfig,
    records: &[&Record],
    now: u64,
) -> Vec<Effect> {
    // Only protocol offers are steps of a run: a power offer broadcast in the load
    // consortium, a data offer addressed to the service consortium alone (the workload's
    // data-offer services name two consortiums and start no run).
    let is = |part: Option<ConsortiumId>| part == Some(consortium);
    records
        .iter()
        .filter_map(|r| match r.content.body {
            RecordBody::PowerOffer { .. } if is(roles.load) => Some(Effect::Emit(Event::Step {
                protocol: Protocol::PowerPurchase,
                run: r.digest(),
                step: 3,
                from: relay,
                to: StepTarget::Consortium(consortium),
                what: "offer broadcast in the load consortium".into(),
                at: now,
            })),
            RecordBody::DataTrade { .. }
                if is(roles.service)
                    && r.content.audience == Audience::Consortiums(vec![consortium]) =>
            {
                Some(Effect::Emit(Event::Step {
                    protocol: Protocol::DataTrade,
                    run: r.digest(),
                    step: 4,
                    from: relay,
                    to: StepTarget::Consortium(consortium),
                    what: "data offer broadcast in the service consortium".into(),
                    at: now,
                }))
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A member keeps its consortium's share of remembered offers: all 4,096 in a small
    /// consortium, fewer in a large one, so that a consortium's members keep at most
    /// `SEEN_PER_CONSORTIUM` between them up to 8,192 members, and at least `SEEN_MIN`
    /// each beyond.
    #[test]
    fn a_member_remembers_its_consortiums_share_of_offers() {
        assert_eq!(seen_limit(0), SEEN_LIMIT);
        assert_eq!(seen_limit(5), SEEN_LIMIT);
        assert_eq!(seen_limit(16), SEEN_LIMIT);
        assert_eq!(seen_limit(2_500), 26);
        assert_eq!(seen_limit(100_000), SEEN_MIN);
        for members in [1, 7, 17, 100, 1_000, 2_500, 8_192] {
            assert!(
                members * seen_limit(members) <= SEEN_PER_CONSORTIUM,
                "{members}"
            );
        }
    }
}
