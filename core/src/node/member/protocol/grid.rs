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

/// The trade agreement a negotiation is about, as the relay chain carries it.
#[derive(Clone, Copy, Debug)]
struct Agreement {
    offer: Hash,
    seller: Address,
    buyer: Address,
}

/// One trade under the grid's negotiation, as a grid holder (relay or backup) tallies it.
///
/// The agreement and the votes reach a holder by different roads: the agreement in a relay
/// block from the seller's relay, each vote in a block of a grid member's lane. Neither
/// waits for the other, on one machine or many, so a negotiation opens with whichever
/// comes first, and is decided only once its agreement is known.
#[derive(Clone, Debug)]
struct Negotiation {
    agreement: Option<Agreement>,
    approvals: BTreeSet<Address>,
    rejections: BTreeMap<Address, u32>,
    receipted: bool,
    /// When the first of its records was created: it expires two deadlines later.
    since: u64,
}

impl Negotiation {
    fn opened(since: u64) -> Self {
        Negotiation {
            agreement: None,
            approvals: BTreeSet::new(),
            rejections: BTreeMap::new(),
            receipted: false,
            since,
        }
    }
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
                let negotiation = self
                    .negotiations
                    .entry(*trade)
                    .or_insert_with(|| Negotiation::opened(record.content.created_at));
                negotiation.agreement.get_or_insert(Agreement {
                    offer: *offer,
                    seller: *seller,
                    buyer: *buyer,
                });
            }
        }
    }

    /// Forgets the agreements a truncated relay block carried (SPEC §14): each is seen again
    /// when the block that carries it is included anew. The votes stay: they are on the
    /// grid members' lanes, which the truncation did not touch.
    pub(in crate::node::member) fn forget_relay_block(&mut self, block: &RelayBlock) {
        for record in block.blocks.iter().flat_map(|b| b.records.iter()) {
            if let RecordBody::TradeAgreement { trade, .. } = &record.content.body {
                if let Some(n) = self.negotiations.get_mut(trade) {
                    if !n.receipted {
                        n.agreement = None;
                    }
                }
            }
        }
    }

    /// Notes the votes and receipts in a grid member's block, whether or not the trade's
    /// agreement has been seen yet.
    pub(in crate::node::member) fn observe_member_block(&mut self, block: &ConsortiumBlock) {
        if Some(block.header.consortium) != self.grid {
            return;
        }
        let author = block.header.author;
        for record in &block.records {
            let (trade, vote) = match &record.content.body {
                RecordBody::GridVote {
                    trade,
                    line,
                    approve,
                } => (trade, Some((*approve, *line))),
                RecordBody::GridReceipt { trade, .. } => (trade, None),
                _ => continue,
            };
            let n = self
                .negotiations
                .entry(*trade)
                .or_insert_with(|| Negotiation::opened(record.content.created_at));
            match vote {
                Some((true, _)) => {
                    n.approvals.insert(author);
                }
                Some((false, line)) => {
                    n.rejections.insert(author, line);
                }
                None => n.receipted = true,
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
            let Some(agreement) = n.agreement else {
                continue; // votes ahead of their agreement: decided once it is seen
            };
            if n.receipted {
                continue;
            }
            let approvals = n.approvals.len() as u32;
            let rejections = n.rejections.len() as u32;
            if approvals >= quorum {
                decided.push((*trade, agreement, true, String::new()));
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
                    agreement,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::RelayDraft;
    use crate::crypto::{Domain, Keypair};
    use crate::record::RecordContent;

    const GRID: ConsortiumId = ConsortiumId(1);

    fn record(key: &Keypair, seq: u64, audience: Audience, body: RecordBody) -> crate::Record {
        RecordContent {
            author: key.address(),
            seq,
            created_at: 1_000 + seq,
            audience,
            body,
        }
        .sign(key)
    }

    /// A relay block of the seller's lane carrying the agreement of `trade`.
    fn agreement_block(seller: &Keypair, relay: &Keypair, trade: Hash) -> RelayBlock {
        let agreement = record(
            seller,
            1,
            Audience::Consortiums(vec![ConsortiumId(0), GRID]),
            RecordBody::TradeAgreement {
                trade,
                offer: Hash::of(Domain::Record, &[b"offer"]),
                bid: Hash::of(Domain::Record, &[b"bid"]),
                seller: seller.address(),
                buyer: Address([9; 20]),
                wh: 9_000,
                slot: 7,
            },
        );
        let member_block = ConsortiumBlock::seal(
            seller,
            ConsortiumId(0),
            1,
            Hash::ZERO,
            1_001,
            vec![agreement],
        );
        RelayDraft {
            lane: ConsortiumId(0),
            height: 2,
            prev: Hash::ZERO,
            epoch: 1,
            time: 1_002,
            registry_root: Hash::ZERO,
            added: Vec::new(),
            lane_heads: Vec::new(),
            blocks: vec![member_block],
            records: Vec::new(),
        }
        .seal(relay)
    }

    /// A grid member's block with its vote on `trade`.
    fn vote_block(voter: &Keypair, trade: Hash, approve: bool) -> ConsortiumBlock {
        let vote = record(
            voter,
            1,
            Audience::Own,
            RecordBody::GridVote {
                trade,
                line: 0,
                approve,
            },
        );
        ConsortiumBlock::seal(voter, GRID, 1, Hash::ZERO, 1_003, vec![vote])
    }

    /// The agreement and the votes reach a grid holder by different roads, in either order:
    /// a vote seen before its agreement counts once the agreement is seen (it was dropped
    /// before, and a take-over's new relay then never reached its quorum); a negotiation
    /// with votes alone is never decided; a truncated agreement keeps its votes.
    #[test]
    fn votes_count_whether_they_come_before_or_after_the_agreement() {
        let seller = Keypair::derive(Domain::NodeKey, 1, "seller");
        let relay = Keypair::derive(Domain::NodeKey, 1, "relay");
        let voters: Vec<Keypair> = (0..3)
            .map(|i| Keypair::derive(Domain::NodeKey, 1, &format!("grid-{i}")))
            .collect();
        let trade = Hash::of(Domain::Record, &[b"trade"]);
        let agreement = agreement_block(&seller, &relay, trade);
        let expected: BTreeSet<Address> = voters.iter().map(Keypair::address).collect();
        for votes_first in [true, false] {
            let mut desk = GridDesk::new(Some(GRID));
            if !votes_first {
                desk.observe_relay_block(&agreement);
            }
            for voter in &voters {
                desk.observe_member_block(&vote_block(voter, trade, true));
            }
            if votes_first {
                let n = &desk.negotiations[&trade];
                assert!(n.agreement.is_none(), "votes alone decide nothing");
                assert_eq!(n.approvals, expected);
                desk.observe_relay_block(&agreement);
            }
            let n = &desk.negotiations[&trade];
            assert_eq!(n.approvals, expected, "votes first: {votes_first}");
            assert_eq!(n.agreement.map(|a| a.seller), Some(seller.address()));
            desk.forget_relay_block(&agreement);
            let n = &desk.negotiations[&trade];
            assert!(n.agreement.is_none());
            assert_eq!(
                n.approvals, expected,
                "the votes outlive a truncated agreement"
            );
        }
        // Another consortium's blocks are not the grid's votes.
        let mut desk = GridDesk::new(Some(GRID));
        let other = ConsortiumBlock::seal(
            &voters[0],
            ConsortiumId(3),
            1,
            Hash::ZERO,
            1_003,
            vec![record(
                &voters[0],
                1,
                Audience::Own,
                RecordBody::GridVote {
                    trade,
                    line: 0,
                    approve: true,
                },
            )],
        );
        desk.observe_member_block(&other);
        assert!(desk.negotiations.is_empty());
    }
}
