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
//! | join 3 | relay | (only while producing under a lease) checks it, adds the entry to its next relay block's registry, writes a `JoinAnnouncement` and sends it to the consortium; sends `JoinAccepted` (with the live members) to the newcomer once that relay block is stored |
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

use super::{Duty, Member};
use crate::block::{ChainBlock, ConsortiumBlock, RelayBlock};
use crate::codec;
use crate::crypto::{Address, Hash, PublicKey, Signature};
use crate::ids::ConsortiumId;
use crate::message::{credential_digest, Message};
use crate::node::{Effect, Event, Protocol, StepTarget};
use crate::record::{
    data_digest, settlement_digest, trade_id, Audience, Record, RecordBody, RecordKind,
};
use crate::registry::RegistryEntry;

/// Offers and data offers a member remembers having seen, newest kept.
const SEEN_LIMIT: usize = 4096;

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

/// One trade under the grid's negotiation, as a grid holder (relay or backup) tallies it.
#[derive(Clone, Debug)]
struct Negotiation {
    offer: Hash,
    seller: Address,
    buyer: Address,
    approvals: BTreeSet<Address>,
    rejections: BTreeMap<Address, u32>,
    receipted: bool,
    since: u64,
}

/// The grid relay's negotiation desk (SPEC §6.2 step 5): agreements seen on the relay chain
/// and the grid members' votes seen on their lanes. Held by the grid relay and its backup,
/// from the same blocks, so a new relay takes the negotiations over; forgotten once
/// receipted or expired (the chains keep the records).
#[derive(Clone, Debug, Default)]
pub(super) struct GridDesk {
    grid: Option<ConsortiumId>,
    negotiations: BTreeMap<Hash, Negotiation>,
}

impl GridDesk {
    pub(super) fn new(grid: Option<ConsortiumId>) -> Self {
        GridDesk {
            grid,
            negotiations: BTreeMap::new(),
        }
    }

    /// Notes the trade agreements addressed to the grid in a relay block.
    pub(super) fn observe_relay_block(&mut self, block: &RelayBlock) {
        let Some(grid) = self.grid else {
            return;
        };
        for record in block.blocks.iter().flat_map(|b| b.records.iter()) {
            if let RecordBody::TradeAgreement {
                trade,
                offer,
                seller,
                buyer,
                ..
            } = &record.content.body
            {
                if !audience_has(&record.content.audience, grid) {
                    continue;
                }
                self.negotiations
                    .entry(*trade)
                    .or_insert_with(|| Negotiation {
                        offer: *offer,
                        seller: *seller,
                        buyer: *buyer,
                        approvals: BTreeSet::new(),
                        rejections: BTreeMap::new(),
                        receipted: false,
                        since: record.content.created_at,
                    });
            }
        }
    }

    /// Forgets the negotiations a truncated relay block opened (SPEC §14): the agreement is
    /// seen again when the block that carries it is included anew.
    pub(super) fn forget_relay_block(&mut self, block: &RelayBlock) {
        for record in block.blocks.iter().flat_map(|b| b.records.iter()) {
            if let RecordBody::TradeAgreement { trade, .. } = &record.content.body {
                if self
                    .negotiations
                    .get(trade)
                    .is_some_and(|n| !n.receipted && n.approvals.is_empty())
                {
                    self.negotiations.remove(trade);
                }
            }
        }
    }

    /// Notes the votes and receipts in a grid member's block.
    pub(super) fn observe_member_block(&mut self, block: &ConsortiumBlock) {
        if Some(block.header.consortium) != self.grid {
            return;
        }
        let author = block.header.author;
        for record in &block.records {
            match &record.content.body {
                RecordBody::GridVote {
                    trade,
                    line,
                    approve,
                } => {
                    if let Some(n) = self.negotiations.get_mut(trade) {
                        if *approve {
                            n.approvals.insert(author);
                        } else {
                            n.rejections.insert(author, *line);
                        }
                    }
                }
                RecordBody::GridReceipt { trade, .. } => {
                    if let Some(n) = self.negotiations.get_mut(trade) {
                        n.receipted = true;
                    }
                }
                _ => {}
            }
        }
    }
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
            self.maybe_bid(&record, now, &mut effects);
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
            self.maybe_buy_data(&record, now, &mut effects);
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

    /// Checks a record that reached this member: a known author and a good signature.
    fn check_record(&self, record: &Record, effects: &mut Vec<Effect>) -> bool {
        let author = record.content.author;
        let Some(key) = self.key_of(&author) else {
            effects.push(self.rejected(
                "unknown_sender",
                true,
                format!("{} record by unknown {author}", record.kind().name()),
            ));
            return false;
        };
        if record.verify(&key).is_err() {
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
        if !offer && (!self.acts_on(record) || !self.check_record(record, effects)) {
            return;
        }
        let author = record.content.author;
        match &record.content.body {
            RecordBody::PowerOffer { .. } | RecordBody::DataTrade { .. } => {
                let digest = record.digest();
                if let std::collections::btree_map::Entry::Vacant(entry) =
                    self.proto.seen.entry(digest)
                {
                    entry.insert(record.clone());
                    self.proto.seen_order.push_back(digest);
                    while self.proto.seen_order.len() > SEEN_LIMIT {
                        if let Some(old) = self.proto.seen_order.pop_front() {
                            self.proto.seen.remove(&old);
                        }
                    }
                }
                if record.kind() == RecordKind::PowerOffer {
                    self.maybe_bid(record, now, effects);
                } else {
                    self.maybe_buy_data(record, now, effects);
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

    // ----- power purchase -----

    /// Whether this member acts on a forwarded record other than an offer (so that it
    /// checks its signature first).
    fn acts_on(&self, record: &Record) -> bool {
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

    fn maybe_bid(&mut self, offer: &Record, now: u64, effects: &mut Vec<Effect>) {
        let digest = offer.digest();
        if !self.proto.bid_intents.contains_key(&digest) || !self.check_record(offer, effects) {
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

    fn on_bid(&mut self, bid: &Record, offer: Hash, wh: u64, now: u64, effects: &mut Vec<Effect>) {
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
    fn on_agreement(
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
    fn consortium_index(&self) -> u32 {
        self.genesis
            .consortiums
            .get(self.consortium.0 as usize)
            .and_then(|c| c.members.iter().position(|m| m.address == self.me))
            .map_or(u32::MAX, |i| i as u32)
    }

    fn on_grid_receipt(
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

    fn on_countersign(
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
    fn maybe_settle(&mut self, trade: Hash, now: u64, effects: &mut Vec<Effect>) {
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

    fn purchase_tick(&mut self, now: u64, effects: &mut Vec<Effect>) {
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

    // ----- data trade -----

    fn maybe_buy_data(&mut self, offer: &Record, now: u64, effects: &mut Vec<Effect>) {
        let digest = offer.digest();
        if !self.proto.data_intents.contains(&digest) || !self.check_record(offer, effects) {
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

    fn on_data_purchase(
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
        if self.proto.data_sales.contains_key(&trade) {
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

    fn data_tick(&mut self, now: u64, effects: &mut Vec<Effect>) {
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
    fn on_data_delivery(
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

    // ----- join: the relay's part -----

    fn on_join_request(
        &mut self,
        from: Address,
        entry: RegistryEntry,
        credential: Signature,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        if entry.address != from {
            effects.push(self.rejected(
                "bad_join",
                true,
                format!("join request for {} sent by {from}", entry.address),
            ));
            return;
        }
        if !self.is_relay() {
            if let Some(relay) = self.relay() {
                effects.push(Effect::Send {
                    to: from,
                    message: Message::JoinRelay { relay },
                });
            }
            return;
        }
        // A relay still taking over (syncing its lane, or waiting for the deposed relay's
        // backup), or whose lease ran out (it is being deposed), cannot put the registry
        // change on the lane: a join it accepted now would be done before anyone could
        // check the newcomer's blocks. No answer; the newcomer asks again.
        if !self.producing(now) {
            return;
        }
        let refuse = |reason: String| Effect::Send {
            to: from,
            message: Message::JoinRefused { reason },
        };
        // The same request again gets the same answer (D9).
        if let Some(announcement) = self.proto.announced.get(&from).cloned() {
            let same = matches!(&announcement.content.body,
                RecordBody::JoinAnnouncement { entry: e } if *e == entry);
            if same {
                self.proto.accepting.insert(from, announcement);
                self.accept_registered_joins(now, effects);
                return;
            }
        }
        let Some(admission) = self
            .genesis
            .consortiums
            .get(self.consortium.0 as usize)
            .map(|c| c.admission_key)
        else {
            return;
        };
        if admission
            .verify(&credential_digest(&entry), &credential)
            .is_err()
        {
            effects.push(self.rejected(
                "bad_credential",
                true,
                format!("join request of {}", entry.name),
            ));
            effects.push(refuse(format!(
                "bad credential: not signed by the admission key of {}",
                self.genesis.consortium_name(self.consortium)
            )));
            return;
        }
        if entry.relay_capable {
            effects.push(refuse(
                "newcomers join as members; relay_capable is fixed at genesis".into(),
            ));
            return;
        }
        // A newcomer registered already with exactly this entry (a join retried after a
        // restart) is announced again; any other use of a registered key is refused.
        let registered = self
            .holder
            .as_ref()
            .and_then(|h| h.relay_lanes.get(&self.consortium))
            .map(|lane| {
                (
                    lane.registry.get(&entry.address).cloned(),
                    lane.registry.check(&entry),
                )
            });
        let Some((registered, check)) = registered else {
            return;
        };
        let again = registered.as_ref() == Some(&entry);
        if !again {
            let pending = self
                .proto
                .pending_joins
                .iter()
                .any(|e| e.public_key == entry.public_key || e.address == entry.address);
            // A key learned only from an announcement (of the previous relay, which
            // failed over before its registry change reached this one) is this very
            // newcomer retrying, not a duplicate.
            let known = self.key_of(&entry.address).is_some_and(|key| {
                self.proto.learned.get(&entry.address) != Some(&key) || key != entry.public_key
            });
            if registered.is_some() || pending || known {
                effects.push(self.rejected(
                    "duplicate_key",
                    true,
                    format!("join request of {}", entry.name),
                ));
                effects.push(refuse(format!(
                    "duplicate key: {} is already registered",
                    entry.address
                )));
                return;
            }
            if let Err(err) = check {
                effects.push(refuse(format!("invalid entry: {err}")));
                return;
            }
            if self.directory_has_name(&entry.name) {
                effects.push(refuse(format!("duplicate name: {}", entry.name)));
                return;
            }
        }
        // Step 3: register in the next relay block, announce, answer.
        if !again {
            self.proto.pending_joins.push(entry.clone());
        }
        let announcement = self.write_record(
            Audience::Own,
            RecordBody::JoinAnnouncement {
                entry: entry.clone(),
            },
            now,
            effects,
        );
        self.proto.learned.insert(entry.address, entry.public_key);
        self.proto.announced.insert(from, announcement.clone());
        let run = entry.leaf();
        for member in self.consortium_members() {
            if member != self.me && member != from {
                effects.push(Effect::Send {
                    to: member,
                    message: Message::Forward {
                        lane: self.consortium,
                        height: 0,
                        records: vec![announcement.clone()],
                    },
                });
            }
        }
        effects.push(Effect::Send {
            to: self.supervisor,
            message: Message::Joined {
                announcement: announcement.clone(),
            },
        });
        // The newcomer hears that it is accepted once its entry is on the relay lane (the
        // relay block that carries it is stored, confirmed by the backup): a relay that
        // fails before then takes the registration with it, and the newcomer, not yet
        // done, asks the next relay.
        self.proto.accepting.insert(from, announcement);
        effects.push(self.step(
            Protocol::Join,
            run,
            3,
            StepTarget::Consortium(self.consortium),
            format!(
                "credential checked; registry updated; signed key of {} broadcast",
                entry.name
            ),
            now,
        ));
        // The registry change goes out in a relay block at once.
        self.flush_relay(now, effects);
        self.accept_registered_joins(now, effects);
    }

    /// Answers `JoinAccepted` to each newcomer waiting for it whose registry entry is now on
    /// the released part of this relay's lane (SPEC §14: a relay block is released once
    /// durable at relay and backup in an active configuration; one that is never released
    /// is truncated, registration and all).
    pub(super) fn accept_registered_joins(&mut self, now: u64, effects: &mut Vec<Effect>) {
        let Duty::Relay(duty) = &self.duty else {
            return;
        };
        if !duty.is_active() {
            return;
        }
        let released = duty.released_height();
        let Some(lane) = self
            .holder
            .as_ref()
            .and_then(|h| h.relay_lanes.get(&self.consortium))
        else {
            return;
        };
        let ready: Vec<(Address, Record)> = self
            .proto
            .accepting
            .iter()
            .filter(|(newcomer, _)| {
                lane.registry.get(newcomer).is_some()
                    && duty
                        .registered_at
                        .get(newcomer)
                        .is_none_or(|height| *height <= released)
            })
            .map(|(newcomer, announcement)| (*newcomer, announcement.clone()))
            .collect();
        for (newcomer, announcement) in ready {
            self.proto.accepting.remove(&newcomer);
            let members = self.alive_members(newcomer, now);
            effects.push(Effect::Send {
                to: newcomer,
                message: Message::JoinAccepted {
                    announcement,
                    members,
                },
            });
        }
    }

    fn directory_has_name(&self, name: &str) -> bool {
        self.genesis
            .consortiums
            .iter()
            .flat_map(|c| c.members.iter())
            .any(|m| m.name == name)
    }

    /// The registered members of this consortium: the genesis list and the joined.
    pub(super) fn consortium_members(&self) -> Vec<Address> {
        match self
            .holder
            .as_ref()
            .and_then(|h| h.relay_lanes.get(&self.consortium))
        {
            Some(lane) => lane.registry.entries().map(|e| e.address).collect(),
            None => self
                .genesis
                .consortiums
                .get(self.consortium.0 as usize)
                .map(|c| c.members.iter().map(|m| m.address).collect())
                .unwrap_or_default(),
        }
    }

    /// The members this relay heard from within the failure detector's window, itself
    /// included (D11): whose receipts a join needs.
    fn alive_members(&self, newcomer: Address, now: u64) -> Vec<Address> {
        let window = self.timing.suspect_ms();
        let mut alive: Vec<Address> = self
            .consortium_members()
            .into_iter()
            .filter(|m| {
                *m == self.me
                    || self
                        .proto
                        .heard
                        .get(m)
                        .is_some_and(|t| now.saturating_sub(*t) < window)
            })
            .filter(|m| *m != newcomer)
            .collect();
        alive.sort();
        alive
    }

    /// Sends a relay block now, even an empty one, so that a registry change goes out.
    pub(super) fn flush_relay(&mut self, now: u64, effects: &mut Vec<Effect>) {
        let Duty::Relay(duty) = &mut self.duty else {
            return;
        };
        if !duty.is_active() {
            return;
        }
        // An empty block goes out as a drain: only a drain may be empty (an urgent flush
        // holds an urgent block, SPEC §4.4).
        let flush = duty.window.drain().unwrap_or(crate::window::Flush {
            blocks: Vec::new(),
            reason: crate::window::FlushReason::Drain,
        });
        self.produce(flush, now, effects);
    }

    // ----- join: the members' part -----

    /// Checks a relay's announcement: a `JoinAnnouncement` by a relay-capable member of
    /// this consortium, with its signature. Returns the announced entry.
    fn check_announcement(
        &self,
        announcement: &Record,
        effects: &mut Vec<Effect>,
    ) -> Option<RegistryEntry> {
        let RecordBody::JoinAnnouncement { entry } = &announcement.content.body else {
            effects.push(self.rejected("bad_join", true, "not an announcement".into()));
            return None;
        };
        let author = announcement.content.author;
        let capable = self
            .genesis
            .consortiums
            .get(self.consortium.0 as usize)
            .is_some_and(|c| {
                c.members
                    .iter()
                    .any(|m| m.address == author && m.relay_capable)
            });
        let key = self.directory.get(&author).map(|k| k.key);
        match key {
            Some(key) if capable && announcement.verify(&key).is_ok() => Some(entry.clone()),
            _ => {
                effects.push(self.rejected(
                    "forged_announcement",
                    true,
                    format!(
                        "announcement of {} not signed by a relay of this consortium",
                        entry.name
                    ),
                ));
                None
            }
        }
    }

    fn learn_announced(
        &mut self,
        _relay: Address,
        announcement: &Record,
        entry: &RegistryEntry,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        if self.check_announcement(announcement, effects).is_none() {
            return;
        }
        if self
            .proto
            .learned
            .insert(entry.address, entry.public_key)
            .is_none()
        {
            effects.push(self.step(
                Protocol::Join,
                entry.leaf(),
                4,
                StepTarget::Node(self.me),
                format!("checks the relay's signature, learns {}'s key", entry.name),
                now,
            ));
        }
    }

    fn on_join_apply(
        &mut self,
        from: Address,
        announcement: Record,
        application: Record,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        if let Some(receipt) = self.proto.receipts_given.get(&from).cloned() {
            effects.push(Effect::Send {
                to: from,
                message: Message::JoinReceipted { receipt },
            });
            return;
        }
        let Some(entry) = self.check_announcement(&announcement, effects) else {
            return;
        };
        let RecordBody::JoinApplication { entry: applied } = &application.content.body else {
            effects.push(self.rejected("bad_join", true, "not an application".into()));
            return;
        };
        if *applied != entry
            || entry.address != from
            || application.content.author != from
            || application.verify(&entry.public_key).is_err()
        {
            effects.push(self.rejected(
                "bad_signature",
                true,
                format!("join application of {}", entry.name),
            ));
            return;
        }
        self.proto.learned.insert(entry.address, entry.public_key);
        let receipt = self.write_record(
            Audience::Members(vec![from]),
            RecordBody::JoinReceipt {
                newcomer: from,
                application: application.digest(),
            },
            now,
            effects,
        );
        self.proto.receipts_given.insert(from, receipt.clone());
        effects.push(Effect::Send {
            to: from,
            message: Message::JoinReceipted { receipt },
        });
        effects.push(self.step(
            Protocol::Join,
            entry.leaf(),
            6,
            StepTarget::Node(from),
            "signed receipt".into(),
            now,
        ));
    }

    // ----- join: the newcomer's part -----

    fn on_join_accepted(
        &mut self,
        from: Address,
        announcement: Record,
        members: Vec<Address>,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        let Some(joining) = self.proto.joining.as_ref() else {
            return;
        };
        if joining.phase != JoinPhase::Request(from) {
            return;
        }
        let entry = joining.entry.clone();
        match self.check_announcement(&announcement, effects) {
            Some(announced) if announced == entry && announcement.content.author == from => {}
            _ => {
                self.join_failed(
                    format!("the relay's announcement from {from} does not verify"),
                    now,
                    effects,
                );
                return;
            }
        }
        // Accepted again, by a new relay after a failover: the application and the
        // receipts already collected stand (members resend the receipts they gave), and
        // the new relay's list of live members replaces the old relay's. The same relay
        // answering again keeps its first list, so a member that went down since is
        // still waited for (SPEC §6.1 step 7).
        if let Some(joining) = self.proto.joining.as_mut() {
            if joining.application.is_some() {
                if joining.accepted_by != Some(from) {
                    joining.needed = members.into_iter().filter(|m| *m != self.me).collect();
                    joining.announcement = Some(announcement);
                    joining.accepted_by = Some(from);
                }
                joining.phase = JoinPhase::Collect;
                joining.next_send = now;
                self.join_tick(now, effects);
                self.join_done_if_receipted(now, effects);
                return;
            }
        }
        // Step 5: the application, on the newcomer's own lane and to every listed member.
        let application = self.write_record(
            Audience::Own,
            RecordBody::JoinApplication {
                entry: entry.clone(),
            },
            now,
            effects,
        );
        if let Some(joining) = self.proto.joining.as_mut() {
            joining.phase = JoinPhase::Collect;
            joining.announcement = Some(announcement);
            joining.application = Some(application);
            joining.needed = members.into_iter().filter(|m| *m != self.me).collect();
            joining.accepted_by = Some(from);
            joining.next_send = now;
        }
        effects.push(self.step(
            Protocol::Join,
            entry.leaf(),
            5,
            StepTarget::Consortium(self.consortium),
            "signed application".into(),
            now,
        ));
        self.join_tick(now, effects);
    }

    fn on_join_receipt(
        &mut self,
        from: Address,
        receipt: Record,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        let Some(joining) = self.proto.joining.as_ref() else {
            return;
        };
        if joining.phase != JoinPhase::Collect || !joining.needed.contains(&from) {
            return;
        }
        let application = joining.application.as_ref().map(|a| a.digest());
        let good = matches!(&receipt.content.body,
            RecordBody::JoinReceipt { newcomer, application: a }
                if *newcomer == self.me && Some(*a) == application)
            && receipt.content.author == from
            && self
                .key_of(&from)
                .is_some_and(|k| receipt.verify(&k).is_ok());
        if !good {
            effects.push(self.rejected("bad_signature", true, format!("join receipt from {from}")));
            return;
        }
        if let Some(joining) = self.proto.joining.as_mut() {
            joining.receipts.insert(from);
        }
        self.join_done_if_receipted(now, effects);
    }

    /// Join step 7: done once every listed member's receipt is in.
    /// A joined newcomer's proof of registration: its relay's signed announcement. It asks
    /// the supervisor who serves with it, in case the supervisor never heard of it.
    pub(super) fn join_proof(&self) -> Option<Record> {
        let joining = self.proto.joining.as_ref()?;
        (joining.phase == JoinPhase::Over)
            .then(|| joining.announcement.clone())
            .flatten()
    }

    fn join_done_if_receipted(&mut self, now: u64, effects: &mut Vec<Effect>) {
        let Some(joining) = self.proto.joining.as_mut() else {
            return;
        };
        if joining.phase == JoinPhase::Collect && joining.receipts.is_superset(&joining.needed) {
            joining.phase = JoinPhase::Over;
            let receipts = joining.receipts.len() as u32;
            let run = joining.entry.leaf();
            effects.push(self.step(
                Protocol::Join,
                run,
                7,
                StepTarget::Consortium(self.consortium),
                format!("joined with {receipts} receipts"),
                now,
            ));
            effects.push(Effect::Emit(Event::JoinDone {
                newcomer: self.me,
                consortium: self.consortium,
                receipts,
                at: now,
            }));
            // Now a member: learn who serves, and write the lane.
            self.discovered = false;
        }
    }

    fn join_failed(&mut self, reason: String, now: u64, effects: &mut Vec<Effect>) {
        if let Some(joining) = self.proto.joining.as_mut() {
            if joining.phase == JoinPhase::Over {
                return;
            }
            joining.phase = JoinPhase::Over;
        }
        effects.push(Effect::Emit(Event::JoinFailed {
            newcomer: self.me,
            consortium: self.consortium,
            reason,
            at: now,
        }));
    }

    fn join_tick(&mut self, now: u64, effects: &mut Vec<Effect>) {
        let resend = self.resend_ms();
        let Some(joining) = self.proto.joining.as_ref() else {
            return;
        };
        if joining.phase == JoinPhase::Over {
            return;
        }
        if now >= joining.deadline {
            let reason = match &joining.phase {
                JoinPhase::FindRelay => "no member answered with the relay".to_string(),
                JoinPhase::Request(relay) => {
                    format!("the relay {} did not answer", self.directory.name(relay))
                }
                _ => {
                    let missing: Vec<String> = joining
                        .needed
                        .difference(&joining.receipts)
                        .map(|m| self.directory.name(m))
                        .collect();
                    format!("no receipt by the deadline from {}", missing.join(", "))
                }
            };
            self.join_failed(reason, now, effects);
            return;
        }
        if now < joining.next_send {
            return;
        }
        let run = joining.entry.leaf();
        let key = joining.entry.public_key;
        let attempt = joining.attempt;
        let phase = joining.phase.clone();
        let members: Vec<Address> = self
            .genesis
            .consortiums
            .get(self.consortium.0 as usize)
            .map(|c| c.members.iter().map(|m| m.address).collect())
            .unwrap_or_default();
        match phase {
            JoinPhase::FindRelay => {
                if members.is_empty() {
                    return;
                }
                let to = members[(attempt as usize) % members.len()];
                effects.push(Effect::Send {
                    to,
                    message: Message::JoinIntent { key },
                });
                if attempt == 0 {
                    effects.push(self.step(
                        Protocol::Join,
                        run,
                        1,
                        StepTarget::Node(to),
                        "who is your relay?".into(),
                        now,
                    ));
                }
            }
            JoinPhase::Request(relay) => {
                let (entry, credential) = (joining.entry.clone(), joining.credential);
                // A relay that does not answer twice may be gone: ask a member again.
                let tries = self.proto.joining.as_ref().map_or(0, |j| j.attempt);
                if tries >= 2 && tries % 3 == 2 {
                    if let Some(j) = self.proto.joining.as_mut() {
                        j.phase = JoinPhase::FindRelay;
                    }
                } else {
                    effects.push(Effect::Send {
                        to: relay,
                        message: Message::JoinRequest {
                            entry: entry.clone(),
                            credential,
                        },
                    });
                    effects.push(self.step(
                        Protocol::Join,
                        run,
                        2,
                        StepTarget::Node(relay),
                        format!("join request with credential, as {}", entry.name),
                        now,
                    ));
                }
            }
            JoinPhase::Collect => {
                let (Some(announcement), Some(application)) =
                    (joining.announcement.clone(), joining.application.clone())
                else {
                    return;
                };
                for to in joining.needed.difference(&joining.receipts) {
                    effects.push(Effect::Send {
                        to: *to,
                        message: Message::JoinApply {
                            announcement: announcement.clone(),
                            application: application.clone(),
                        },
                    });
                }
                // Receipts still missing after a few resends: the relay may have failed
                // over, and the missing member with it. Ask a member who serves now.
                if attempt % 3 == 2 && !members.is_empty() {
                    effects.push(Effect::Send {
                        to: members[(attempt as usize / 3) % members.len()],
                        message: Message::JoinIntent { key },
                    });
                }
            }
            JoinPhase::Over => {}
        }
        if let Some(j) = self.proto.joining.as_mut() {
            j.attempt += 1;
            j.next_send = now + resend;
        }
    }

    // ----- the grid relay's part -----

    /// Writes the grid's receipt for every negotiation that has reached its decision.
    fn grid_tick(&mut self, now: u64, effects: &mut Vec<Effect>) {
        let roles = self.timing.protocols;
        if Some(self.consortium) != roles.grid || !self.producing(now) {
            return;
        }
        let Some(holder) = self.holder.as_ref() else {
            return;
        };
        // The grid members with lines: those of the genesis registry. A newcomer to the
        // grid owns no line, so it neither votes nor counts towards the quorum.
        let members = self
            .genesis
            .consortiums
            .get(self.consortium.0 as usize)
            .map_or(0, |c| c.members.len() as u32);
        let quorum = match roles.grid_quorum {
            0 => members,
            q => q.min(members),
        };
        let ttl = 2 * roles.deadline();
        let mut decided = Vec::new();
        for (trade, n) in &holder.desk.negotiations {
            if n.receipted {
                continue;
            }
            let approvals = n.approvals.len() as u32;
            let rejections = n.rejections.len() as u32;
            if approvals >= quorum {
                decided.push((*trade, n.clone(), true, String::new()));
            } else if rejections > members.saturating_sub(quorum) {
                // Each line by its number and its owner's name: the numbers follow the
                // genesis order, which is by address, not the configuration's.
                let lines: Vec<String> = n
                    .rejections
                    .iter()
                    .map(|(member, line)| format!("{line} ({})", self.directory.name(member)))
                    .collect();
                decided.push((
                    *trade,
                    n.clone(),
                    false,
                    format!("over capacity on line {}", lines.join(", ")),
                ));
            }
        }
        if let Some(holder) = self.holder.as_mut() {
            holder
                .desk
                .negotiations
                .retain(|_, n| !n.receipted && now.saturating_sub(n.since) < ttl);
        }
        for (trade, n, approved, reason) in decided {
            if let Some(holder) = self.holder.as_mut() {
                if let Some(entry) = holder.desk.negotiations.get_mut(&trade) {
                    entry.receipted = true;
                }
            }
            let mut parties = vec![n.seller, n.buyer];
            parties.sort();
            parties.dedup();
            let receipt = self.write_record(
                Audience::Members(parties),
                RecordBody::GridReceipt {
                    trade,
                    approved,
                    reason: reason.clone(),
                },
                now,
                effects,
            );
            for party in [n.seller, n.buyer] {
                effects.push(self.step(
                    Protocol::PowerPurchase,
                    n.offer,
                    6,
                    StepTarget::Node(party),
                    if approved {
                        "grid approves: signed receipt".to_string()
                    } else {
                        format!("grid rejects: signed receipt, {reason}")
                    },
                    now,
                ));
            }
            if !approved {
                // The grid members release what their lines held.
                for member in self.consortium_members() {
                    if member == self.me {
                        continue;
                    }
                    effects.push(Effect::Send {
                        to: member,
                        message: Message::Forward {
                            lane: self.consortium,
                            height: 0,
                            records: vec![receipt.clone()],
                        },
                    });
                }
                let me = self.me;
                self.on_forwarded(me, &receipt, now, effects);
            }
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
