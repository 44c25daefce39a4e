//! The invariant checker of simulations (SPEC §9).
//!
//! It checks incrementally, after every event a node emits, against what that node holds
//! (each `Committed` event is one node's own view of one block), and once more in full at
//! the end of a run, against every node's store:
//!
//! - **S1 one writer per lane:** for each lane and epoch, at most one node produces blocks.
//! - **S2 no fork:** no node holds two different blocks at the same height of a lane, and
//!   at the end the live relays' copies of every lane agree.
//! - **S3 no loss:** once faults heal, every acknowledged consortium block is in the relay
//!   chain of every live relay, exactly once (Jepsen's set checker: acknowledged but absent
//!   is lost; unacknowledged writes may appear or not).
//! - **S4 valid chains** and **S5 verifiable elections:** a full `verify` of every chain of
//!   every node, which recomputes every election.
//! - **S6 trades:** no trade protocol runs yet (the protocols issue); nothing to break.
//! - **S7 durability:** checked by the process-kill tests, not inside a simulation.
//! - **L1 failover:** after a relay crash, a new relay takes over within
//!   `(suspect_after + 1) × heartbeat_interval` plus 3 network delays (SPEC §12 D10),
//!   unless no candidate is left and the consortium is reported cut off (SPEC §5).
//! - **L2 / L3 latency:** urgent records reach every relay without waiting on the window;
//!   normal ones within `max_wait` plus delays. Checked only while the network is healthy.
//! - **L4 join:** no join protocol runs yet (the protocols issue).

use std::collections::{BTreeMap, BTreeSet};

use ieschain_core::node::Event;
use ieschain_core::{Address, AnyBlock, ChainId, ConsortiumId, Hash};
use ieschain_storage::ChainStore;

/// The checker's state.
#[derive(Debug, Default)]
pub struct Invariants {
    writers: BTreeMap<(ConsortiumId, u64), Address>,
    blocks: BTreeMap<(Address, ConsortiumId, u64), Hash>,
    acked: BTreeMap<(Address, u64), u64>,
    crashes: Vec<(ConsortiumId, u64, u64)>,
    took_over: Vec<(ConsortiumId, u64, u64)>,
    cut_off: Vec<(ConsortiumId, u64)>,
    broken: Vec<String>,
}

impl Invariants {
    /// An empty checker.
    pub fn new() -> Self {
        Self::default()
    }

    fn fail(&mut self, name: &str, detail: String) {
        let line = format!("{name}: {detail}");
        if !self.broken.contains(&line) {
            self.broken.push(line);
        }
    }

    /// Checks one event.
    pub fn observe(&mut self, event: &Event) {
        match event {
            Event::Committed {
                node,
                lane,
                height,
                hash,
                epoch,
                produced,
                ..
            } => {
                if *produced {
                    let writer = *self.writers.entry((*lane, *epoch)).or_insert(*node);
                    if writer != *node {
                        self.fail(
                            "S1",
                            format!(
                                "lane {lane} epoch {epoch} written by {} and {}",
                                writer.short(),
                                node.short()
                            ),
                        );
                    }
                }
                // S2 is about one node's own view: it never holds two blocks at one height.
                let known = *self.blocks.entry((*node, *lane, *height)).or_insert(*hash);
                if known != *hash {
                    self.fail(
                        "S2",
                        format!(
                            "node {} holds two blocks at lane {lane} height {height}: {} and {}",
                            node.short(),
                            known.short(),
                            hash.short()
                        ),
                    );
                }
            }
            Event::Acked {
                member, height, at, ..
            } => {
                self.acked.entry((*member, *height)).or_insert(*at);
            }
            Event::TookOver {
                consortium,
                epoch,
                at,
                ..
            } => self.took_over.push((*consortium, *epoch, *at)),
            Event::CutOff { consortium, at } => self.cut_off.push((*consortium, *at)),
            _ => {}
        }
    }

    /// Notes that the relay of `lane`, in `epoch`, was crashed at `at` (for L1).
    pub fn relay_crashed(&mut self, lane: ConsortiumId, epoch: u64, at: u64) {
        self.crashes.push((lane, epoch, at));
    }

    /// The final checks, once faults have healed: L1 against `bound_ms`, S3 against the
    /// live relays' stores for blocks acknowledged by `acked_before` (later ones may still
    /// be waiting in a window), and S4/S5 with a full verify.
    pub fn finish(
        &mut self,
        store: &dyn ChainStore,
        live_relays: &BTreeMap<ConsortiumId, Address>,
        bound_ms: u64,
        members: &BTreeMap<Address, ConsortiumId>,
        acked_before: u64,
    ) -> Vec<String> {
        for (lane, epoch, at) in self.crashes.clone() {
            let served = self
                .took_over
                .iter()
                .any(|(l, e, t)| *l == lane && *e > epoch && *t >= at && *t - at <= bound_ms);
            // With no candidate left the consortium is cut off, reported, and rejoins when
            // one comes back (SPEC §5): L1 does not apply.
            let cut_off = self
                .cut_off
                .iter()
                .any(|(l, t)| *l == lane && *t >= at && *t - at <= bound_ms);
            if !served && !cut_off {
                self.fail(
                    "L1",
                    format!(
                        "no relay took lane {lane} over within {bound_ms} ms of the crash at {at}"
                    ),
                );
            }
        }
        // S3: an acknowledged block is held by its lane's relay; if it needs the relay
        // chain (D4) it is included exactly once in every live relay's copy of that lane.
        let mut external: BTreeMap<ConsortiumId, Vec<(Address, u64)>> = BTreeMap::new();
        for (lane, relay) in live_relays {
            for ((member, height), at) in &self.acked.clone() {
                if members.get(member) != Some(lane) || *at > acked_before {
                    continue;
                }
                let held = store
                    .block(*relay, ChainId::Consortium(*lane, *member), *height)
                    .ok()
                    .flatten();
                match held {
                    Some(AnyBlock::Consortium(block)) if block.is_external() => {
                        external.entry(*lane).or_default().push((*member, *height));
                    }
                    Some(_) => {}
                    None => self.fail(
                        "S3",
                        format!(
                            "acknowledged block {} height {height} is missing at relay {}",
                            member.short(),
                            relay.short()
                        ),
                    ),
                }
            }
        }
        for relay in live_relays.values() {
            for (lane, wanted) in &external {
                let included = included_blocks(store, *relay, *lane);
                let head = store
                    .head(*relay, ChainId::Relay(*lane))
                    .ok()
                    .flatten()
                    .map_or(0, |h| h.height);
                let longest = live_relays
                    .values()
                    .filter_map(|r| store.head(*r, ChainId::Relay(*lane)).ok().flatten())
                    .map(|h| h.height)
                    .max()
                    .unwrap_or(0);
                for key in wanted {
                    match included.get(key).copied().unwrap_or(0) {
                        1 => {}
                        0 => self.fail(
                            "S3",
                            format!(
                                "acknowledged block {} height {} is not in relay {}'s copy of lane {lane} (its head {head}, the longest copy {longest})",
                                key.0.short(),
                                key.1,
                                relay.short()
                            ),
                        ),
                        n => self.fail("S3", format!("block {} height {} is included {n} times in lane {lane}", key.0.short(), key.1)),
                    }
                }
            }
        }
        // Replicas agree: the live relays' copies of every lane are prefixes of one another.
        // (A deposed relay may keep an unconfirmed block above its successor's cut-off,
        // SPEC §12 D3; it is not a live relay.)
        let relays: Vec<Address> = live_relays.values().copied().collect();
        for lane in live_relays.keys() {
            let chain = ChainId::Relay(*lane);
            let heads: Vec<(Address, u64)> = relays
                .iter()
                .map(|r| {
                    (
                        *r,
                        store.head(*r, chain).ok().flatten().map_or(0, |h| h.height),
                    )
                })
                .collect();
            let common = heads.iter().map(|(_, h)| *h).min().unwrap_or(0);
            if common == 0 {
                continue;
            }
            let hashes: BTreeSet<Hash> = relays
                .iter()
                .filter_map(|r| store.block(*r, chain, common).ok().flatten())
                .map(|b| b.hash())
                .collect();
            if hashes.len() > 1 {
                self.fail(
                    "S2",
                    format!("live relays disagree on lane {lane} at height {common}"),
                );
            }
        }
        if let Err(err) = ieschain_storage::verify(store) {
            self.fail("S4", err.to_string());
        }
        self.broken.clone()
    }

    /// What has broken so far.
    pub fn broken(&self) -> &[String] {
        &self.broken
    }
}

/// How many times each (author, height) is included in `holder`'s copy of relay lane `lane`.
fn included_blocks(
    store: &dyn ChainStore,
    holder: Address,
    lane: ConsortiumId,
) -> BTreeMap<(Address, u64), u32> {
    let chain = ChainId::Relay(lane);
    let mut included = BTreeMap::new();
    let head = store
        .head(holder, chain)
        .ok()
        .flatten()
        .map_or(0, |h| h.height);
    let mut from = 1;
    while from <= head {
        let Ok(page) = store.range(holder, chain, from, 256) else {
            break;
        };
        if page.is_empty() {
            break;
        }
        for block in &page {
            if let AnyBlock::Relay(relay_block) = block {
                for inner in &relay_block.blocks {
                    *included
                        .entry((inner.header.author, inner.header.height))
                        .or_default() += 1;
                }
            }
        }
        from += page.len() as u64;
    }
    included
}
