//! Fixtures of the federation tests: the configuration, the records, a running
//! [`Fed`]eration with its event log and waits on conditions, and readers of the store.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ieschain::config::FederationConfig;
use ieschain::federation::{Federation, FederationHandle};
use ieschain_core::block::{ChainBlock, RelayDraft};
use ieschain_core::node::Event;
use ieschain_core::window::FlushReason;
use ieschain_core::{
    Address, AnyBlock, Audience, ChainId, ConsortiumId, Domain, Hash, Keypair, RecordBody,
    RelayBlock,
};
use ieschain_storage::{verify, ChainStore, RocksStore};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

/// The seed of every key (SPEC §12 D2).
pub const SEED: u64 = 7;
/// The heartbeat of the tests that do not measure failure detection: the default of SPEC
/// §12 D13. A shorter one lets a loaded two-core machine, which can starve the actor
/// thread for a few hundred milliseconds, trigger failovers that nobody caused.
pub const HEARTBEAT_MS: u64 = 200;
/// Missed heartbeats before a relay is failed over (the default).
pub const SUSPECT_AFTER: u32 = 3;
/// How long any single condition may take before the test fails. Generous: the conditions
/// take milliseconds, but CI machines are loaded.
pub const PATIENCE: Duration = Duration::from_secs(8);
/// A period long enough that no rotation happens during a test that does not want one.
pub const NO_ROTATION_MS: u64 = 60_000;

/// The four-party lanes: source, grid, service and load, in that order.
pub const SOURCE: ConsortiumId = ConsortiumId(0);
pub const GRID: ConsortiumId = ConsortiumId(1);
pub const LOAD: ConsortiumId = ConsortiumId(3);
pub const LANES: [ConsortiumId; 4] = [
    ConsortiumId(0),
    ConsortiumId(1),
    ConsortiumId(2),
    ConsortiumId(3),
];

// ----- configuration and records -----

/// The four-party federation with fast timing: `member_max_wait` 20 ms, the window, the
/// period and the heartbeat given, `suspect_after` 3.
pub fn config(
    window: u32,
    max_wait_ms: Option<u64>,
    period_ms: u64,
    heartbeat_ms: u64,
) -> FederationConfig {
    let mut config = FederationConfig::four_party();
    config.timing.window = window;
    config.timing.max_wait = max_wait_ms.map(Duration::from_millis);
    config.timing.member_max_wait = Duration::from_millis(20);
    config.timing.period = Duration::from_millis(period_ms);
    config.timing.heartbeat_interval = Duration::from_millis(heartbeat_ms);
    config.timing.suspect_after = SUSPECT_AFTER;
    config.check().expect("the test configuration is valid");
    config
}

/// An audience reaching one other consortium: such a record needs the relay chain (D4).
pub fn external(own: ConsortiumId) -> Audience {
    let other = ConsortiumId((own.0 + 1) % 4);
    Audience::Consortiums(vec![own.min(other), own.max(other)])
}

/// A non-urgent record: a data offer (SPEC §6.3).
pub fn data_offer(n: u64) -> RecordBody {
    RecordBody::DataTrade {
        digest: Hash::of(Domain::Record, &[&n.to_be_bytes()]),
        description: format!("quarterly consumption {n}"),
        price: 10 + n,
        size: 4096,
    }
}

/// An urgent record: energy supply (SPEC §4.2).
pub fn energy_supply(n: u64) -> RecordBody {
    RecordBody::EnergySupply {
        wh: 500 + n,
        price: 40,
        slot: n,
    }
}

/// The wall clock in ms, as the federation's clock reads it.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis() as u64
}

// ----- the running federation -----

/// Who serves a consortium, as its members' nodes say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Serving {
    pub relay: Address,
    pub backup: Option<Address>,
}

/// A running federation, its event subscription, and every event received so far.
pub struct Fed {
    pub handle: FederationHandle,
    events: broadcast::Receiver<Event>,
    pub log: Vec<Event>,
    window: u32,
}

impl Fed {
    /// Starts the federation of `config` on `data`, with no generated workload. `sync` is
    /// whether appends are fsynced: the real thing unless a test says why not.
    ///
    /// The subscription starts when the federation has started: events before it (the
    /// initial elections, even the first take-overs) may be missed, which is why
    /// [`Fed::ready`] asks the nodes and the store rather than waiting for those events.
    pub fn start(config: &FederationConfig, data: &Path, sync: bool) -> Fed {
        let handle = Federation::builder(config.clone())
            .data_dir(data)
            .seed(SEED)
            .workload(false)
            .sync(sync)
            .start_blocking()
            .expect("the federation starts");
        let events = handle.subscribe();
        Fed {
            handle,
            events,
            log: Vec::new(),
            window: config.timing.window,
        }
    }

    pub fn store(&self) -> std::sync::Arc<dyn ChainStore> {
        self.handle.store()
    }

    pub fn address(&self, name: &str) -> Address {
        self.handle
            .address_of(name)
            .expect("a member of four-party")
    }

    pub fn name(&self, address: &Address) -> String {
        self.handle.name_of(address)
    }

    /// The member names of `consortium`.
    pub fn members_of(&self, consortium: ConsortiumId) -> Vec<String> {
        self.handle
            .members()
            .into_iter()
            .filter(|(c, _)| *c == consortium)
            .map(|(_, name)| name)
            .collect()
    }

    /// A position in the event log: later waits can ask for events from here on.
    pub fn mark(&self) -> usize {
        self.log.len()
    }

    /// Receives one event into the log, or returns at `deadline`.
    pub async fn pump(&mut self, deadline: Instant) {
        match tokio::time::timeout_at(deadline, self.events.recv()).await {
            Ok(Ok(event)) => self.log.push(event),
            Ok(Err(RecvError::Lagged(missed))) => panic!("the test missed {missed} events"),
            Ok(Err(RecvError::Closed)) => panic!("the federation's event stream closed"),
            Err(_) => {}
        }
    }

    /// Waits for an event, logged at `from` or later, for which `pick` says something.
    pub async fn wait_event<T>(
        &mut self,
        from: usize,
        what: &str,
        mut pick: impl FnMut(&Event) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + PATIENCE;
        let mut next = from;
        loop {
            while next < self.log.len() {
                if let Some(found) = pick(&self.log[next]) {
                    return found;
                }
                next += 1;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out waiting for {what}; the last events were:\n{}",
                    self.tail()
                );
            }
            self.pump(deadline).await;
        }
    }

    /// Waits until `holds` says yes; it is asked again after every event and every 10 ms.
    pub async fn wait_until(&mut self, what: &str, mut holds: impl FnMut(&Fed) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !holds(self) {
            if Instant::now() >= deadline {
                panic!(
                    "timed out waiting until {what}; the last events were:\n{}",
                    self.tail()
                );
            }
            let step = (Instant::now() + Duration::from_millis(10)).min(deadline);
            self.pump(step).await;
        }
    }

    pub fn tail(&self) -> String {
        let from = self.log.len().saturating_sub(12);
        self.log[from..]
            .iter()
            .map(|e| format!("  {}", brief(e)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Who serves each consortium, by asking every running member's node.
    pub async fn serving(&self) -> BTreeMap<ConsortiumId, Serving> {
        let mut relays: BTreeMap<ConsortiumId, Vec<Address>> = BTreeMap::new();
        let mut backups: BTreeMap<ConsortiumId, Vec<Address>> = BTreeMap::new();
        for (consortium, name) in self.handle.members() {
            let Ok(status) = self.handle.status(&name).await else {
                continue; // crashed
            };
            if status.relay {
                relays
                    .entry(consortium)
                    .or_default()
                    .push(self.address(&name));
            }
            if status.backup {
                backups
                    .entry(consortium)
                    .or_default()
                    .push(self.address(&name));
            }
        }
        relays
            .into_iter()
            .filter(|(_, r)| r.len() == 1)
            .map(|(c, r)| {
                let backup = backups.get(&c).filter(|b| b.len() == 1).map(|b| b[0]);
                (
                    c,
                    Serving {
                        relay: r[0],
                        backup,
                    },
                )
            })
            .collect()
    }

    /// Waits until every consortium has one relay and one backup, and each relay has
    /// produced a block above `above` in its lane (its take-over block, SPEC §12 D10).
    pub async fn ready_above(
        &mut self,
        above: &BTreeMap<ConsortiumId, u64>,
    ) -> BTreeMap<ConsortiumId, Serving> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let serving = self.serving().await;
            let store = self.store();
            let ready = LANES.iter().all(|lane| {
                serving.get(lane).is_some_and(|s| {
                    s.backup.is_some()
                        && head(&*store, s.relay, ChainId::Relay(*lane))
                            > above.get(lane).copied().unwrap_or(0)
                })
            });
            if ready {
                return serving;
            }
            if Instant::now() >= deadline {
                panic!(
                    "the federation did not become ready: serving {serving:?}; last events:\n{}",
                    self.tail()
                );
            }
            let step = (Instant::now() + Duration::from_millis(10)).min(deadline);
            self.pump(step).await;
        }
    }

    /// Waits until every consortium has a relay that has taken over, and a backup.
    pub async fn ready(&mut self) -> BTreeMap<ConsortiumId, Serving> {
        self.ready_above(&BTreeMap::new()).await
    }

    /// Submits a record as `name`; returns its seq.
    pub async fn submit(&self, name: &str, audience: Audience, body: RecordBody) -> u64 {
        self.handle
            .submit(name, audience, body)
            .await
            .unwrap_or_else(|e| panic!("{name} cannot write: {e}"))
            .seq()
    }

    /// Submits a record as `name` and waits for the acknowledgement of its block (each call
    /// makes one block: the member closes it after `member_max_wait`). Returns the block's
    /// height in `name`'s lane.
    pub async fn submit_acked(&mut self, name: &str, audience: Audience, body: RecordBody) -> u64 {
        let member = self.address(name);
        let mark = self.mark();
        self.submit(name, audience, body).await;
        self.wait_event(
            mark,
            &format!("the acknowledgement of {name}'s block"),
            |e| match e {
                Event::Acked {
                    member: m, height, ..
                } if *m == member => Some(*height),
                _ => None,
            },
        )
        .await
    }

    /// Every (member, height) acknowledged so far to a member of `consortium`.
    pub fn acked_in(&self, consortium: ConsortiumId) -> BTreeSet<(Address, u64)> {
        let members: BTreeSet<Address> = self
            .members_of(consortium)
            .iter()
            .map(|n| self.address(n))
            .collect();
        self.log
            .iter()
            .filter_map(|e| match e {
                Event::Acked { member, height, .. } if members.contains(member) => {
                    Some((*member, *height))
                }
                _ => None,
            })
            .collect()
    }

    /// The first relay block of `lane` with consortium blocks in it that `relay` produced
    /// after `from`: (height, blocks, urgent blocks, reason, when).
    pub async fn produced(
        &mut self,
        from: usize,
        relay: Address,
        lane: ConsortiumId,
    ) -> (u64, u32, u32, Option<FlushReason>, u64) {
        self.wait_event(
            from,
            &format!("a relay block of lane {lane}"),
            |e| match e {
                Event::Committed {
                    node,
                    lane: l,
                    height,
                    produced: true,
                    reason,
                    blocks,
                    urgent_blocks,
                    at,
                    ..
                } if *node == relay && *l == lane && *blocks > 0 => {
                    Some((*height, *blocks, *urgent_blocks, *reason, *at))
                }
                _ => None,
            },
        )
        .await
    }

    /// Waits until `node` has stored block `height` of relay lane `lane`.
    pub async fn committed_at(
        &mut self,
        from: usize,
        node: Address,
        lane: ConsortiumId,
        height: u64,
    ) {
        let what = format!("{} to store lane {lane} height {height}", self.name(&node));
        self.wait_event(from, &what, |e| match e {
            Event::Committed {
                node: n,
                lane: l,
                height: h,
                ..
            } if *n == node && *l == lane && *h == height => Some(()),
            _ => None,
        })
        .await
    }

    /// Waits for a rejection of `kind` at `node`, logged at `from` or later.
    pub async fn rejected(&mut self, from: usize, node: Address, kind: &str) -> (bool, String) {
        let what = format!("{} to reject something as {kind}", self.name(&node));
        self.wait_event(from, &what, |e| match e {
            Event::Rejected {
                node: n,
                kind: k,
                hostile,
                detail,
            } if *n == node && *k == kind => Some((*hostile, detail.clone())),
            _ => None,
        })
        .await
    }

    /// Every relay block produced so far went out for the reason the window gives (SPEC
    /// §4.4): an urgent flush holds an urgent block, a full one `window` blocks, a
    /// `max_wait` one at least one block. Only a drain (a take-over's first block, or a
    /// resumed relay's) may be empty.
    pub fn assert_flush_reasons(&self) {
        for event in &self.log {
            let Event::Committed {
                produced: true,
                reason: Some(reason),
                blocks,
                urgent_blocks,
                ..
            } = event
            else {
                continue;
            };
            let fits = match reason {
                FlushReason::Urgent => *urgent_blocks >= 1,
                FlushReason::Full => *blocks == self.window,
                FlushReason::MaxWait | FlushReason::Capacity => *blocks >= 1,
                FlushReason::Drain => true,
            };
            assert!(
                fits,
                "a relay block sent for the wrong reason: {}",
                brief(event)
            );
        }
    }

    /// Stops the federation, flushing storage, and releases the data directory; then
    /// checks the reasons of the relay blocks it produced.
    pub fn shutdown(self) {
        self.handle.shutdown_blocking().expect("a clean shutdown");
        self.assert_flush_reasons();
    }
}

/// One line for an event in a failure message.
pub fn brief(event: &Event) -> String {
    match event {
        Event::Committed {
            node,
            lane,
            height,
            epoch,
            produced,
            reason,
            blocks,
            urgent_blocks,
            ..
        } => format!(
            "committed node {} lane {lane} height {height} epoch {epoch} produced {produced} \
             {reason:?} blocks {blocks} urgent {urgent_blocks}",
            node.short()
        ),
        Event::Acked { member, height, .. } => {
            format!("acked {} height {height}", member.short())
        }
        other => format!("{other:?}"),
    }
}

// ----- reading the store -----

/// The height of `holder`'s copy of `chain` (0 when it holds none).
pub fn head(store: &dyn ChainStore, holder: Address, chain: ChainId) -> u64 {
    store
        .head(holder, chain)
        .expect("the store reads")
        .map_or(0, |h| h.height)
}

/// `holder`'s whole copy of `chain`.
pub fn chain_of(store: &dyn ChainStore, holder: Address, chain: ChainId) -> Vec<AnyBlock> {
    let mut out = Vec::new();
    loop {
        let page = store
            .range(holder, chain, out.len() as u64 + 1, 256)
            .expect("the store reads");
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// `holder`'s copy of relay lane `lane`.
pub fn relay_lane(store: &dyn ChainStore, holder: Address, lane: ConsortiumId) -> Vec<RelayBlock> {
    chain_of(store, holder, ChainId::Relay(lane))
        .into_iter()
        .map(|b| match b {
            AnyBlock::Relay(relay) => relay,
            other => panic!("a {} block in a relay lane", other.chain()),
        })
        .collect()
}

/// Block `height` of `holder`'s copy of relay lane `lane`.
pub fn relay_block(
    store: &dyn ChainStore,
    holder: Address,
    lane: ConsortiumId,
    height: u64,
) -> RelayBlock {
    match store
        .block(holder, ChainId::Relay(lane), height)
        .expect("the store reads")
    {
        Some(AnyBlock::Relay(block)) => block,
        other => panic!("no relay block at lane {lane} height {height}: {other:?}"),
    }
}

/// Every (author, height) of a consortium block included in `holder`'s copy of `lane`.
pub fn included(
    store: &dyn ChainStore,
    holder: Address,
    lane: ConsortiumId,
) -> BTreeSet<(Address, u64)> {
    relay_lane(store, holder, lane)
        .iter()
        .flat_map(|b| b.blocks.iter())
        .map(|b| (b.header.author, b.header.height))
        .collect()
}

/// The urgency bit-vector of a relay block, as booleans.
pub fn urgency(block: &RelayBlock) -> Vec<bool> {
    (0..block.header.urgency.len as usize)
        .map(|i| block.header.urgency.get(i).expect("within the vector"))
        .collect()
}

/// Every holder's copy of every chain agrees with every other holder's copy of the same
/// chain on their common prefix, but for a lane candidate's unreleased blocks of a deposed
/// configuration (SPEC §14): no lane forks (S2).
pub fn assert_no_fork(store: &dyn ChainStore) {
    let forks = ieschain::invariants::forks(store);
    assert!(forks.is_empty(), "{forks:#?}");
}

/// `ieschain verify` on the data directory of a stopped federation: every chain of every
/// holder verifies, elections recomputed. Returns the number of blocks checked.
pub fn verify_dir(data: &Path) -> u64 {
    let store = RocksStore::open_existing(data).expect("the data directory reopens");
    let summary = verify(&store).unwrap_or_else(|e| panic!("verify fails: {e}"));
    assert_no_fork(&store);
    summary.blocks
}

/// A relay block that the deposed relay `key` could still send after its epoch `epoch`
/// ended: it extends `holder`'s copy of `lane` at the next height.
pub fn late_relay_block(
    store: &dyn ChainStore,
    key: &Keypair,
    holder: Address,
    lane: ConsortiumId,
    epoch: u64,
) -> RelayBlock {
    let height = head(store, holder, ChainId::Relay(lane));
    let head_block = relay_block(store, holder, lane, height);
    RelayDraft {
        lane,
        height: height + 1,
        prev: head_block.hash(),
        epoch,
        time: now_ms(),
        registry_root: head_block.header.registry.root,
        added: Vec::new(),
        lane_heads: Vec::new(),
        blocks: Vec::new(),
        records: Vec::new(),
    }
    .seal(key)
}

/// Checks that no holder of `lane` stores `block`, and that whatever each holds at its
/// height belongs to an epoch of at least `epoch`.
pub fn assert_nobody_stores(store: &dyn ChainStore, block: &RelayBlock, epoch: u64) {
    let lane = block.header.lane;
    for (holder, chain, _) in store.chains().expect("the store lists its chains") {
        if chain != ChainId::Relay(lane) {
            continue;
        }
        assert_eq!(
            store.locate(holder, block.hash()).expect("the store reads"),
            None,
            "holder {} stored the deposed relay's block",
            holder.short()
        );
        if let Some(AnyBlock::Relay(held)) = store
            .block(holder, chain, block.height())
            .expect("the store reads")
        {
            assert!(
                held.header.epoch >= epoch,
                "holder {} has an epoch-{} block at the fenced height",
                holder.short(),
                held.header.epoch
            );
        }
    }
}
