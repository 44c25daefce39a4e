//! What a host learns of its own records: a [`Receipt`] per submitted record, resolved
//! from the event stream, and the bound on records in flight per member.
//!
//! A record is *committed* where it ends up for good:
//! - a meter reading, when its member's private block holding it is persisted
//!   ([`Event::Recorded`]);
//! - a record of a block whose audience stays inside the consortium, when the block is
//!   acknowledged: durable at the consortium's relay and backup (D4, SPEC §14);
//! - a record of a block that goes on the relay chain, when the block is acknowledged and
//!   the relay of every consortium lane has stored the relay block that includes it.
//!
//! Every fact the tracker keeps is monotone (acknowledgements are cumulative, and a node
//! stores an author's blocks in height order, so its records in seq order), so a receipt
//! registered after the events that commit it resolves at once.

use std::collections::BTreeMap;
use std::sync::Arc;

use ieschain_core::node::Event;
use ieschain_core::{Address, ConsortiumId};
use tokio::sync::{watch, OwnedSemaphorePermit};

use super::FederationError;

/// How far a submitted record has come.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Progress {
    /// Written by its member, not yet durable beyond it.
    Written,
    /// Its block is acknowledged: durable at its consortium's relay and backup.
    Acknowledged,
    /// Committed (see the module documentation).
    Committed,
    /// Its member crashed before the record was acknowledged: it was in memory only, or
    /// in a block the restarted member will resend; the handle cannot tell which.
    Interrupted,
}

/// A submitted record: its author and seq, and how far it has come.
///
/// Dropping a receipt does not forget the record: it counts against its member's records
/// in flight until it is committed.
#[derive(Debug)]
pub struct Receipt {
    member: String,
    address: Address,
    seq: u64,
    progress: watch::Receiver<Progress>,
}

impl Receipt {
    /// The member's name.
    pub fn member(&self) -> &str {
        &self.member
    }

    /// The member's address.
    pub fn address(&self) -> Address {
        self.address
    }

    /// The record's seq in its member's chains.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// How far it has come now.
    pub fn progress(&self) -> Progress {
        *self.progress.borrow()
    }

    /// Resolves when the record's block is acknowledged (or the record is committed).
    pub async fn acknowledged(&self) -> Result<(), FederationError> {
        self.wait(Progress::Acknowledged).await
    }

    /// Resolves when the record is committed (see the module documentation).
    pub async fn committed(&self) -> Result<(), FederationError> {
        self.wait(Progress::Committed).await
    }

    async fn wait(&self, at_least: Progress) -> Result<(), FederationError> {
        let mut progress = self.progress.clone();
        let reached = progress
            .wait_for(|p| *p >= at_least)
            .await
            .map(|p| *p)
            .map_err(|_| FederationError::Stopped)?;
        if reached == Progress::Interrupted {
            return Err(FederationError::Interrupted {
                member: self.member.clone(),
                seq: self.seq,
            });
        }
        Ok(())
    }
}

/// A record the tracker follows for a receipt.
struct Follow {
    private: bool,
    /// Once its block was seen acknowledged: whether that block goes on the relay chain
    /// (kept here so that forgetting old acknowledgements never loses it).
    external: Option<bool>,
    progress: watch::Sender<Progress>,
    /// The member's in-flight slot, freed when the record is committed or interrupted.
    _slot: Option<OwnedSemaphorePermit>,
}

/// How many acknowledged blocks per member the tracker remembers: far more than the
/// records a member may have in flight need.
const ACKED_KEPT: usize = 4_096;

/// Folds the events into what receipts need.
#[derive(Default)]
pub(crate) struct Tracker {
    /// Per member, its acknowledged blocks: last seq → (first seq, goes on the relay
    /// chain).
    acked: BTreeMap<Address, BTreeMap<u64, (u64, bool)>>,
    /// Per member, the last seq of its persisted private blocks.
    recorded: BTreeMap<Address, u64>,
    /// Per (node, author), the highest seq of the author's records in the released relay
    /// blocks the node stored.
    stored: BTreeMap<(Address, Address), u64>,
    /// Per (lane, author), the highest seq of the author's records in the blocks the
    /// lane's relays released: every later relay of the lane holds them (SPEC §14), even
    /// one that took them over by replication or a sealed read and so never reports
    /// storing them.
    released: BTreeMap<(ConsortiumId, Address), u64>,
    /// Per member, how many times it crashed: a record written before a crash and
    /// followed after it is interrupted.
    crashes: BTreeMap<Address, u64>,
    following: BTreeMap<(Address, u64), Follow>,
    /// Set once the federation stopped: nothing more will resolve.
    closed: bool,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("following", &self.following.len())
            .finish()
    }
}

/// Who serves each lane: (epoch, relay, backup).
type Serving = BTreeMap<ConsortiumId, (u64, Address, Option<Address>)>;

impl Tracker {
    /// How many times `member` crashed so far: taken before a write, handed to
    /// [`Tracker::follow`] after it.
    pub(crate) fn crashes(&self, member: Address) -> u64 {
        self.crashes.get(&member).copied().unwrap_or_default()
    }

    /// Follows record `seq` of `member`, written when the member had crashed `crashes`
    /// times, and returns its receipt; the slot is held until the record is committed.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn follow(
        &mut self,
        name: &str,
        member: Address,
        seq: u64,
        private: bool,
        crashes: u64,
        slot: Option<OwnedSemaphorePermit>,
        serving: &Serving,
    ) -> Receipt {
        let (mut now, external) = self.progress_of(member, seq, private, None, serving);
        // The member crashed between the write and now, before the record was
        // acknowledged: as if it had been followed when the crash came.
        if now < Progress::Acknowledged && self.crashes(member) != crashes {
            now = Progress::Interrupted;
        }
        let (progress, receiver) = watch::channel(now);
        if now < Progress::Committed && !self.closed {
            self.following.insert(
                (member, seq),
                Follow {
                    private,
                    external,
                    progress,
                    _slot: slot,
                },
            );
        }
        // Otherwise the sender is dropped here: a receipt of a stopped federation that is
        // not already committed answers `Stopped`.
        Receipt {
            member: name.to_string(),
            address: member,
            seq,
            progress: receiver,
        }
    }

    /// Every followed record of `member` not yet acknowledged: interrupted (its member
    /// crashed).
    pub(crate) fn interrupt(&mut self, member: Address) {
        *self.crashes.entry(member).or_default() += 1;
        let keys: Vec<(Address, u64)> = self
            .following
            .range((member, 0)..=(member, u64::MAX))
            .filter(|(_, f)| *f.progress.borrow() < Progress::Acknowledged)
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            if let Some(follow) = self.following.remove(&key) {
                follow.progress.send_replace(Progress::Interrupted);
            }
        }
    }

    /// The federation stopped: every receipt still waiting answers `Stopped` (its sender
    /// is dropped, its slot freed), and later ones too.
    pub(crate) fn close(&mut self) {
        self.closed = true;
        self.following.clear();
    }

    /// Folds one event in.
    pub(crate) fn observe(&mut self, event: &Event, serving: &Serving) {
        match event {
            Event::Acked {
                member,
                first_seq,
                last_seq,
                external,
                ..
            } => {
                let acked = self.acked.entry(*member).or_default();
                acked.insert(*last_seq, (*first_seq, *external));
                while acked.len() > ACKED_KEPT {
                    acked.pop_first();
                }
                self.update(*member, serving);
            }
            Event::Recorded {
                member, last_seq, ..
            } => {
                let recorded = self.recorded.entry(*member).or_default();
                *recorded = (*recorded).max(*last_seq);
                self.update(*member, serving);
            }
            Event::Committed {
                node,
                lane,
                produced,
                records,
                ..
            } => {
                let mut authors = Vec::new();
                for stamp in records {
                    let seq = self.stored.entry((*node, stamp.author)).or_default();
                    *seq = (*seq).max(stamp.seq);
                    if *produced {
                        let seq = self.released.entry((*lane, stamp.author)).or_default();
                        *seq = (*seq).max(stamp.seq);
                    }
                    if authors.last() != Some(&stamp.author) {
                        authors.push(stamp.author);
                    }
                }
                authors.sort();
                authors.dedup();
                for author in authors {
                    self.update(author, serving);
                }
            }
            Event::Elected { .. } => {
                let members: Vec<Address> = self.following.keys().map(|(m, _)| *m).collect();
                for member in members {
                    self.update(member, serving);
                }
            }
            _ => {}
        }
    }

    fn update(&mut self, member: Address, serving: &Serving) {
        let keys: Vec<(Address, u64, bool, Option<bool>)> = self
            .following
            .range((member, 0)..=(member, u64::MAX))
            .map(|((m, s), f)| (*m, *s, f.private, f.external))
            .collect();
        for (member, seq, private, known) in keys {
            let (now, external) = self.progress_of(member, seq, private, known, serving);
            let Some(follow) = self.following.get_mut(&(member, seq)) else {
                continue;
            };
            follow.external = external;
            // Progress never goes back (an acknowledgement forgotten, a new election).
            follow.progress.send_if_modified(|p| {
                let changed = now > *p;
                if changed {
                    *p = now;
                }
                changed
            });
            if now >= Progress::Committed {
                self.following.remove(&(member, seq));
            }
        }
    }

    /// How far record `seq` of `member` has come, and whether its block goes on the relay
    /// chain once that is known (`known`, from an earlier look, or from the
    /// acknowledgements kept).
    fn progress_of(
        &self,
        member: Address,
        seq: u64,
        private: bool,
        known: Option<bool>,
        serving: &Serving,
    ) -> (Progress, Option<bool>) {
        if private {
            let recorded = self.recorded.get(&member).is_some_and(|s| *s >= seq);
            return (
                if recorded {
                    Progress::Committed
                } else {
                    Progress::Written
                },
                None,
            );
        }
        let external = known.or_else(|| {
            self.acked
                .get(&member)
                .and_then(|acked| acked.range(seq..).next())
                .filter(|(_, (first, _))| *first <= seq)
                .map(|(_, (_, external))| *external)
        });
        let Some(external) = external else {
            return (Progress::Written, None);
        };
        if !external {
            return (Progress::Committed, Some(false));
        }
        let at_least = |map: Option<&u64>| map.is_some_and(|s| *s >= seq);
        let everywhere = !serving.is_empty()
            && serving.iter().all(|(lane, (_, relay, _))| {
                at_least(self.stored.get(&(*relay, member)))
                    || at_least(self.released.get(&(*lane, member)))
            });
        let now = if everywhere {
            Progress::Committed
        } else {
            Progress::Acknowledged
        };
        (now, Some(true))
    }
}

/// The in-flight bound of one member: a slot per record until it is committed.
pub(crate) type Slots = Arc<tokio::sync::Semaphore>;
