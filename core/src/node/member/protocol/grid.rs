//! The grid's negotiation (SPEC §6.2 step 5): the desk a grid relay and its backup keep
//! of the agreements and votes, and the grid relay's receipts.

use std::collections::{BTreeMap, BTreeSet};

use super::audience_has;
use crate::node::member::Member;

use crate::block::{ConsortiumBlock, RelayBlock};
use crate::crypto::{Address, Hash};
use crate::ids::ConsortiumId;
use crate::message::Message;
use crate::node::{Effect, Protocol, StepTarget};
use crate::record::{Audience, RecordBody};

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
pub(in crate::node::member) struct GridDesk {
    grid: Option<ConsortiumId>,
    negotiations: BTreeMap<Hash, Negotiation>,
}

impl GridDesk {
    pub(in crate::node::member) fn new(grid: Option<ConsortiumId>) -> Self {
        GridDesk {
            grid,
            negotiations: BTreeMap::new(),
        }
    }

    /// Notes the trade agreements addressed to the grid in a relay block.
    pub(in crate::node::member) fn observe_relay_block(&mut self, block: &RelayBlock) {
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
    pub(in crate::node::member) fn forget_relay_block(&mut self, block: &RelayBlock) {
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
    pub(in crate::node::member) fn observe_member_block(&mut self, block: &ConsortiumBlock) {
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

impl Member {
    /// Writes the grid's receipt for every negotiation that has reached its decision.
    pub(in crate::node::member) fn grid_tick(&mut self, now: u64, effects: &mut Vec<Effect>) {
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
}
