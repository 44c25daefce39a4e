//! Syncs between holders (SPEC §12 D1, §14): serving a chain from the store, fetching what
//! a copy lacks, and accepting broadcast relay blocks of other lanes.
//!
//! A sync request for a relay lane names positions of the asker's copy; the answer starts
//! just above the highest of them the answering copy holds too. The asker adopts the
//! answer only from the node whose copy its duty makes authoritative (the source member a
//! new relay reads, the relay a backup catches up from): then a different block of its own
//! at some height was never released, and it is dropped with everything above it. From
//! anyone else a conflicting block is refused. Other lanes' copies hold released blocks
//! only: a relay serves its own lane to other lanes only up to its released head.

use crate::block::{AnyBlock, ChainBlock, RelayBlock};
use crate::crypto::Address;
use crate::election::LanePosition;
use crate::ids::{ChainId, ConsortiumId};
use crate::message::Message;
use crate::node::{Effect, Event, StoreWrite};
use crate::validate::Reject;

use super::holder::Accepted;
use super::reconfig::Phase;
use super::{committed_event, held_event, reject_kind, Duty, Member};

/// How many of the own lane's top heights a locator names one by one: more than a copy
/// can hold unreleased (a relay's tentative blocks and a config block).
const OWN_LOCATOR_DENSE: usize = super::relay::MAX_TENTATIVE + 2;

impl Member {
    /// The positions of this node's copy of relay lane `lane` for a sync or sealed read
    /// to name. For its own lane (the one copy that may truncate) the top
    /// [`OWN_LOCATOR_DENSE`] heights are all named and the highest block it knows released
    /// is pinned: an answer then asks it to drop only what the answerer's copy lacks, and
    /// never a released block the answerer holds (its `released` is 0 after a restart,
    /// and then the dense top alone keeps the drop within its undo logs).
    pub(super) fn locator_of(&self, lane: ConsortiumId) -> Vec<LanePosition> {
        let Some(copy) = self.holder.as_ref().and_then(|h| h.relay_lanes.get(&lane)) else {
            return Vec::new();
        };
        if lane == self.consortium {
            copy.locator_with(OWN_LOCATOR_DENSE, self.released)
        } else {
            copy.locator()
        }
    }

    /// Asks `to` for the consortium lanes of `lagging`, each above the height held.
    pub(super) fn ask_member_lanes(
        &mut self,
        to: Address,
        lagging: Vec<(Address, u64)>,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        for (member, held) in lagging {
            let chain = ChainId::Consortium(self.consortium, member);
            self.ask_sync(to, chain, held + 1, Vec::new(), now, effects);
        }
    }

    /// Asks `to` for `chain` from height `from` (a relay lane with the positions `have`),
    /// unless a request for that chain to `to` is already pending: catching up many pages
    /// is one chain of requests per peer, not one more chain per block that arrives
    /// meanwhile. A request unanswered for a resend interval may be asked again.
    pub(super) fn ask_sync(
        &mut self,
        to: Address,
        chain: ChainId,
        from: u64,
        have: Vec<LanePosition>,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        // A take-over's fetch or catch-up waits less: it is on the failover's path.
        let patience = if self.taking_over() {
            self.timing.takeover_retry_ms()
        } else {
            self.resend_ms()
        };
        if self
            .syncing
            .get(&(chain, to))
            .is_some_and(|asked| now < asked + patience)
        {
            return;
        }
        self.syncing.insert((chain, to), now);
        effects.push(Effect::Send {
            to,
            message: Message::SyncRequest { chain, from, have },
        });
    }

    /// Whether this node is on a take-over's path: a relay fetching its source's copy, or
    /// a backup catching up.
    fn taking_over(&self) -> bool {
        match &self.duty {
            Duty::Relay(duty) => matches!(duty.phase, Phase::Fetching { .. }),
            Duty::Backup(duty) => duty.target.is_some(),
            Duty::None => false,
        }
    }

    /// Whether `address` is a relay candidate of this node's consortium: one that may hold
    /// its lane's unreleased blocks (SPEC §14).
    fn is_candidate(&self, address: &Address) -> bool {
        self.genesis
            .consortiums
            .get(self.consortium.0 as usize)
            .is_some_and(|c| {
                c.members
                    .iter()
                    .any(|m| m.address == *address && m.relay_capable)
            })
    }

    pub(super) fn on_sync_request(
        &mut self,
        from: Address,
        chain: ChainId,
        height: u64,
        have: &[LanePosition],
        effects: &mut Vec<Effect>,
    ) {
        let (start, upto) = match chain {
            ChainId::Relay(lane) => {
                let common = self
                    .holder
                    .as_ref()
                    .and_then(|h| h.relay_lanes.get(&lane))
                    .map_or(0, |l| l.common(have));
                let start = if have.is_empty() { height } else { common + 1 };
                // The own lane beyond its released head only to the node catching up with
                // this one's unreleased blocks: a relay's own backup, a backup's own relay,
                // or, from a node with no duty (a source member being read), a candidate.
                let whole = match &self.duty {
                    Duty::Relay(duty) => duty.backup == Some(from),
                    Duty::Backup(duty) => duty.relay == from,
                    Duty::None => self.is_candidate(&from),
                };
                let upto = (lane == self.consortium && !whole).then_some(self.released);
                (start, upto)
            }
            _ => (height, None),
        };
        effects.push(Effect::ServeSync {
            to: from,
            chain,
            from: start,
            upto,
        });
    }

    /// Whether sync answers of the own relay lane from `from` are adopted: `from` is the
    /// source member this relay reads, or the relay this backup catches up from.
    fn adopts_from(&self, from: Address) -> bool {
        match &self.duty {
            Duty::Relay(duty) => {
                matches!(&duty.phase, Phase::Fetching { from: f, .. } if *f == from)
            }
            Duty::Backup(duty) => duty.relay == from && self.sealed <= duty.epoch,
            Duty::None => self.may_converge() && self.relay() == Some(from),
        }
    }

    /// Whether this node, holding no duty, may bring its own lane's copy in line with the
    /// relay's released lane: it knows the newest election of its lane and is not a member
    /// of that election's source, whose copies a new relay may still have to read (SPEC
    /// §14). Its copy may hold blocks never released (a backup's last replications, the
    /// config block of a configuration never activated); left alone, they would differ
    /// from the released lane at that height for good.
    fn may_converge(&self) -> bool {
        matches!(self.duty, Duty::None)
            && self
                .own_source
                .as_ref()
                .is_some_and(|members| !members.contains(&self.me))
    }

    /// Once per relay of its lane, a node with no duty whose copy may hold unreleased
    /// blocks (above the highest it knows released) asks that relay for the lane from the
    /// highest block both hold, and adopts the answer: the relay serves it released blocks
    /// only, and a different block at a held height makes it drop its own from there.
    pub(super) fn converge_own_lane(&mut self, now: u64, effects: &mut Vec<Effect>) {
        if !self.may_converge() {
            return;
        }
        let Some(relay) = self.relay().filter(|r| *r != self.me) else {
            return;
        };
        if self.own_checked == Some(relay) {
            return;
        }
        let Some(head) = self
            .holder
            .as_ref()
            .and_then(|h| h.own_lane())
            .map(|l| l.head)
        else {
            return;
        };
        if head.height <= self.released {
            self.own_checked = Some(relay);
            return;
        }
        let have = self.locator_of(self.consortium);
        let chain = ChainId::Relay(self.consortium);
        self.ask_sync(relay, chain, head.height + 1, have, now, effects);
    }

    pub(super) fn on_sync_blocks(
        &mut self,
        from: Address,
        chain: ChainId,
        blocks: Vec<AnyBlock>,
        head: u64,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        if self.holder.is_none() {
            return;
        }
        self.syncing.remove(&(chain, from));
        let own_lane = chain == ChainId::Relay(self.consortium);
        let adopt = own_lane && self.adopts_from(from);
        // A new relay reading a source member's copy takes no block above the answer's
        // head (blocks of epochs above the source's, SPEC §14).
        let cap = match &self.duty {
            Duty::Relay(duty) => match &duty.phase {
                Phase::Fetching { from: f, head, .. } if *f == from && own_lane => {
                    Some(head.height)
                }
                _ => None,
            },
            _ => None,
        };
        if let Duty::Relay(duty) = &mut self.duty {
            if let Phase::Fetching { from: f, since, .. } = &mut duty.phase {
                if *f == from {
                    *since = now;
                }
            }
        }
        // One group commit for the whole page, and the events after it: a catch-up of
        // hundreds of blocks must not cost one fsync each on the actor's thread.
        let mut writes: Vec<StoreWrite> = Vec::new();
        let mut announced: Vec<Event> = Vec::new();
        let mut windowed = Vec::new();
        let mut last = None;
        let mut failed = false;
        for block in blocks {
            if block.chain() != chain {
                effects.push(self.rejected(
                    "invalid_block",
                    true,
                    format!("sync of {chain} carried {}", block.chain()),
                ));
                failed = true;
                break;
            }
            let height = block.height();
            if cap.is_some_and(|c| height > c) {
                break;
            }
            let accepted = match &block {
                // It reports its own refusals.
                AnyBlock::Relay(relay) => {
                    if !self.sync_relay_block(
                        from,
                        relay,
                        adopt,
                        now,
                        &mut writes,
                        &mut announced,
                        effects,
                    ) {
                        failed = true;
                        break;
                    }
                    true
                }
                AnyBlock::Consortium(member_block) => {
                    match self.holder_mut().accept_member_block(member_block, false) {
                        Ok(Accepted::New) => {
                            let author = member_block.header.author;
                            if author != self.me {
                                writes.push(block.clone().into());
                                announced.push(self.stored(author, height, now));
                            }
                            if member_block.is_external() {
                                windowed.push(member_block.clone());
                            }
                            true
                        }
                        Ok(Accepted::Duplicate) => true,
                        // A newcomer whose registration this copy of the relay lane does
                        // not hold yet (the lane's own sync is still on its way): asked
                        // again once it is.
                        Err(Reject::UnknownSigner(_)) => {
                            failed = true;
                            break;
                        }
                        Err(reason) => {
                            effects.push(self.rejected(
                                reject_kind(&reason),
                                true,
                                format!("synced {chain} height {height} from {from}: {reason}"),
                            ));
                            false
                        }
                    }
                }
                AnyBlock::Private(_) => {
                    effects.push(self.rejected(
                        "invalid_block",
                        true,
                        format!("sync of {chain} from {from} carried a private block"),
                    ));
                    false
                }
            };
            if !accepted {
                failed = true;
                break;
            }
            last = Some(height);
        }
        if !writes.is_empty() {
            effects.push(Effect::Persist(writes));
        }
        effects.extend(announced.into_iter().map(Effect::Emit));
        let converging = adopt && matches!(self.duty, Duty::None);
        if failed {
            if converging {
                self.own_checked = Some(from);
            }
            return;
        }
        // Member blocks that arrive by a sync need the relay chain as much as submitted
        // ones: an active relay puts them in its window (S3).
        if let Duty::Relay(duty) = &mut self.duty {
            if duty.is_active() {
                let mut flushes = Vec::new();
                for block in windowed {
                    flushes.extend(duty.window.add(block, now));
                }
                for flush in flushes {
                    self.produce(flush, now, effects);
                }
            }
        }
        let complete = last.is_none_or(|h| h >= head) || cap.is_some_and(|c| last >= Some(c));
        if converging && complete {
            self.own_checked = Some(from);
        }
        if !complete {
            if let Some(h) = last {
                let have = match chain {
                    ChainId::Relay(lane) => self.locator_of(lane),
                    _ => Vec::new(),
                };
                self.ask_sync(from, chain, h + 1, have, now, effects);
            }
        }
        match &self.duty {
            Duty::Relay(_) => self.fetch(now, effects),
            Duty::Backup(duty) if duty.relay == from => self.backup_synced(chain, now, effects),
            _ => {}
        }
    }

    /// One synced relay block. A block of the own lane from the node whose copy is adopted
    /// replaces a different one at its height (and everything above); any other conflicting
    /// block is refused. Returns whether the copy now holds it.
    #[allow(clippy::too_many_arguments)]
    fn sync_relay_block(
        &mut self,
        from: Address,
        block: &RelayBlock,
        adopt: bool,
        now: u64,
        writes: &mut Vec<StoreWrite>,
        announced: &mut Vec<Event>,
        effects: &mut Vec<Effect>,
    ) -> bool {
        let lane = block.header.lane;
        let own = lane == self.consortium;
        let height = block.height();
        let position = LanePosition {
            height,
            hash: block.hash(),
        };
        let Some(copy) = self.holder.as_ref().and_then(|h| h.relay_lanes.get(&lane)) else {
            effects.push(self.rejected(
                "invalid_block",
                true,
                format!("synced relay block of unknown lane {lane} from {from}"),
            ));
            return false;
        };
        if copy.holds(&position) {
            return true;
        }
        if height <= copy.head.height {
            if !(own && adopt) {
                // A different block at a held height, signed by a relay of the lane: an
                // answer to a request sent before this copy moved on (a config block, a
                // truncation), or a peer's tentative block. Refused, and not hostile: a
                // correct peer sends it. Unsigned, it is hostile.
                let signed = copy.registry.get(&block.header.relay).is_some_and(|entry| {
                    entry
                        .public_key
                        .verify(&block.hash(), &block.signature)
                        .is_ok()
                });
                let (kind, how) = if signed {
                    ("conflicting_block", "differs from the block held there")
                } else {
                    ("invalid_block", "is not signed by a relay of the lane")
                };
                effects.push(self.rejected(
                    kind,
                    !signed,
                    format!(
                        "synced {} height {height} from {from} {how}",
                        ChainId::Relay(lane)
                    ),
                ));
                return false;
            }
            // Writes of this page so far go first, then the truncation, in one batch.
            let page = std::mem::take(writes);
            if !page.is_empty() {
                effects.push(Effect::Persist(page));
            }
            effects.extend(std::mem::take(announced).into_iter().map(Effect::Emit));
            if !self.truncate_own(height - 1, now, effects) {
                return false;
            }
        }
        match self.holder_mut().accept_relay(block, false) {
            Ok(()) => {
                writes.push(StoreWrite::Block(block.clone().into()));
                announced.push(if own {
                    held_event(self.me, block, now)
                } else {
                    committed_event(self.me, block, false, None, now)
                });
                true
            }
            Err(err) => {
                effects.push(self.rejected(
                    reject_kind(&err.reason),
                    true,
                    format!("synced from {from}: {err}"),
                ));
                false
            }
        }
    }

    /// Validates a broadcast relay block of another lane and stores it. Returns whether it
    /// is now held (newly or already).
    pub(super) fn accept_relay_block(
        &mut self,
        from: Address,
        block: RelayBlock,
        now: u64,
        effects: &mut Vec<Effect>,
    ) -> bool {
        let lane = block.header.lane;
        // The own lane reaches this node only by replication and reads (SPEC §14).
        if lane == self.consortium {
            effects.push(self.rejected(
                "stale_epoch",
                false,
                format!("broadcast of the own lane {lane} from {from}"),
            ));
            return false;
        }
        // Fencing (S1) is the lane's own: a block of an epoch older than the newest whose
        // config block this copy holds is refused by validation. A newer configuration
        // that is only elected may never activate (SPEC §14), and until one does, the
        // active one's released blocks are the lane.
        let position = LanePosition {
            height: block.height(),
            hash: block.hash(),
        };
        if self
            .holder
            .as_ref()
            .and_then(|h| h.relay_lanes.get(&lane))
            .is_some_and(|l| l.holds(&position))
        {
            return true;
        }
        match self.holder_mut().accept_relay(&block, false) {
            Ok(()) => {
                effects.push(Effect::Persist(vec![StoreWrite::Block(
                    block.clone().into(),
                )]));
                effects.push(Effect::Emit(committed_event(
                    self.me, &block, false, None, now,
                )));
                // Anti-entropy: the header names the other lanes' heads its producer has
                // seen; a lane this node holds shorter is fetched from the producer, so a
                // lost broadcast does not wait for that lane's next block.
                for head in &block.header.lane_heads {
                    if head.lane == self.consortium {
                        continue;
                    }
                    self.fetch_lane(from, head.lane, head.height, now, effects);
                }
                true
            }
            Err(err) => match err.reason {
                Reject::Height { expected, got } if got > expected => {
                    self.fetch_lane(from, lane, got, now, effects);
                    false
                }
                reason => {
                    effects.push(self.rejected(
                        reject_kind(&reason),
                        true,
                        format!(
                            "relay block lane {lane} height {}: {reason}",
                            block.height()
                        ),
                    ));
                    false
                }
            },
        }
    }

    /// Fetches relay lane `lane` from `from` when this copy is below `height`.
    fn fetch_lane(
        &mut self,
        from: Address,
        lane: ConsortiumId,
        height: u64,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        let Some(copy) = self.holder.as_ref().and_then(|h| h.relay_lanes.get(&lane)) else {
            return;
        };
        if copy.head.height >= height {
            return;
        }
        let mine = copy.head.height;
        let have = self.locator_of(lane);
        self.ask_sync(from, ChainId::Relay(lane), mine + 1, have, now, effects);
    }
}
