//! The invariant checker of simulations (SPEC §9, §14).
//!
//! It checks incrementally, after every event a node emits, against what that node holds,
//! and once more in full at the end of a run, against every node's store. Each family of
//! checks names itself with an [`Invariant`]; SPEC §14's own list is in `reconfig.rs`.
//!
//! - **S1 one writer per lane:** for each lane and epoch, at most one node releases blocks;
//!   and once a newer epoch's first block is released, no node commits an older epoch's
//!   block above its cut-off (fencing, SPEC §5).
//! - **S2 no fork:** no node holds two different blocks at the same height of a lane
//!   without first truncating the one it held (SPEC §14: a block of an older epoch above a
//!   config block's `prev`, never released); no two *released* blocks differ at one height;
//!   and at the end the live relays' copies of every lane agree.
//! - **S3 no loss:** once faults heal, every acknowledged consortium block is in the relay
//!   chain of every live relay, exactly once (Jepsen's set checker: acknowledged but absent
//!   is lost; unacknowledged writes may appear or not).
//! - **S3 (D4) acknowledged means replicated, strict:** when a member hears its block
//!   acknowledged at epoch `e`, the one backup of `e` (or, with none, the relay) already
//!   holds it: `Stored`, which a relay or backup emits for every member block it stores,
//!   and which stays true across restarts (storage is durable).
//! - **SPEC §14:** completeness at take-over, released head, fenced writes, activation
//!   order and S2 on released blocks (`reconfig.rs`).
//! - **S4 valid chains** and **S5 verifiable elections:** a full `verify` of every chain of
//!   every node, which recomputes every election and rechecks §14's chain conditions.
//! - **S6 trades:** checked at the end of a run by [`crate::audit::trades`], on every
//!   node's copy of the relay chain.
//! - **S7 durability:** checked by the process-kill tests, not inside a simulation.
//! - **L1 failover:** after a relay crash, a new relay takes over within
//!   `(suspect_after + 1) × heartbeat_interval` plus 3 network delays (SPEC §12 D10),
//!   unless no candidate is left and the consortium is reported cut off (SPEC §5). The
//!   bound presumes the crash is the only fault on that consortium while the failover
//!   runs: a crash is exempt when another fault (a crash, a pause or a partition the
//!   simulation reports with [`Invariants::fault`]) touches the consortium's relay
//!   candidates within the bound of it, before or after. A lane whose source
//!   configuration is down waits for it, reported as `Stalled` (SPEC §14).
//! - **L2 / L3 latency:** in the second half of the liveness phase (faults healed, the
//!   federation settled), an urgent record reaches every lane's relay within two
//!   heartbeats, and a non-urgent one within `member_max_wait + max_wait` plus two
//!   heartbeats; a record still on its way at the end, past its bound, breaks them too.
//! - **L4 join:** every join run (the newcomer's step 1) ends with `JoinDone` or
//!   `JoinFailed` for that newcomer within the protocols' deadline plus a slack, and a
//!   `JoinFailed` says why (a non-empty reason). A join started less than that before the
//!   end of the run is exempt. On once the simulation calls [`Invariants::check_joins`].

mod reconfig;

use std::collections::{BTreeMap, BTreeSet};

use ieschain_core::node::{Event, Protocol, RecordStamp};
use ieschain_core::{Address, AnyBlock, ChainId, ConsortiumId, Hash};
use ieschain_storage::ChainStore;

use reconfig::Reconfig;

/// The invariants the checker judges, each by its name in SPEC §9 and §14.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    /// One writer per lane, fencing.
    S1,
    /// No fork.
    S2,
    /// No loss.
    S3,
    /// An acknowledgement means the block is at the backup (or, with none, the relay).
    S3D4,
    /// Valid chains and verifiable elections (a full verify).
    S4,
    /// Failover in time.
    L1,
    /// Urgent latency.
    L2,
    /// Non-urgent latency.
    L3,
    /// Joins end.
    L4,
    /// SPEC §14: a new relay's copy holds every released block and acknowledged block.
    Completeness,
    /// SPEC §14: elections draw on released lane heads.
    ReleasedHead,
    /// SPEC §14: nothing is confirmed, acknowledged or released for an epoch below a seal.
    FencedWrites,
    /// SPEC §14: sources are the latest active configuration; writes only once active.
    ActivationOrder,
}

impl Invariant {
    /// The name reports use.
    pub const fn name(self) -> &'static str {
        match self {
            Invariant::S1 => "S1",
            Invariant::S2 => "S2",
            Invariant::S3 => "S3",
            Invariant::S3D4 => "S3 (D4)",
            Invariant::S4 => "S4",
            Invariant::L1 => "L1",
            Invariant::L2 => "L2",
            Invariant::L3 => "L3",
            Invariant::L4 => "L4",
            Invariant::Completeness => "completeness at take-over",
            Invariant::ReleasedHead => "released head",
            Invariant::FencedWrites => "fenced writes",
            Invariant::ActivationOrder => "activation order",
        }
    }
}

impl std::fmt::Display for Invariant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The checker's state.
#[derive(Debug, Default)]
pub struct Invariants {
    writers: BTreeMap<(ConsortiumId, u64), Address>,
    /// Per node, lane and height: the block it holds (released or not).
    blocks: BTreeMap<(Address, ConsortiumId, u64), Hash>,
    /// Per (lane, epoch): the height of the epoch's first released block. Its `prev` is
    /// the epoch's cut-off (SPEC §12 D3, §14).
    epoch_starts: BTreeMap<(ConsortiumId, u64), u64>,
    /// Acknowledged blocks (member, height) → when heard, the lane, the epoch.
    acked: BTreeMap<(Address, u64), (u64, ConsortiumId, u64)>,
    /// Per (lane, epoch): its relay and backup, from the elections.
    configs: BTreeMap<(ConsortiumId, u64), (Address, Option<Address>)>,
    /// The member blocks (node, author, height) each relay or backup stored.
    held: BTreeSet<(Address, Address, u64)>,
    /// SPEC §14's checks.
    reconfig: Reconfig,
    /// Relay crashes (for L1): lane, epoch, the relay, when.
    crashes: Vec<(ConsortiumId, u64, Address, u64)>,
    /// Faults touching a consortium's relay candidates (for L1's premise).
    faults: Vec<Fault>,
    /// L1 crashes exempted because another fault touched their consortium, one line each.
    exempt: Vec<String>,
    /// L4, once the simulation asks for it.
    joins: Option<Joins>,
    took_over: Vec<(ConsortiumId, u64, u64)>,
    cut_off: Vec<(ConsortiumId, u64)>,
    /// Nodes crashed and not restarted yet, since when (from the simulation).
    down: BTreeMap<Address, u64>,
    /// Take-overs stalled on a source that was entirely down (crashed) at the time: lane,
    /// when, and the nodes waited for (SPEC §14 step 4).
    stalled_down: Vec<(ConsortiumId, u64, Vec<Address>)>,
    /// Who relays and backs up each lane, from the elections (for L2, L3).
    serving: BTreeMap<ConsortiumId, (Address, Option<Address>)>,
    /// L2/L3, once the liveness phase has settled.
    latency: Option<Latency>,
    /// The latest event time seen.
    now: u64,
    broken: Vec<String>,
}

/// A fault touching relay candidates of one consortium, for L1: a crash (`until` is
/// `from`), or a pause or partition (open until the next heal).
#[derive(Clone, Debug)]
struct Fault {
    lane: ConsortiumId,
    /// The node, or none for the whole consortium (a partition).
    node: Option<Address>,
    what: String,
    from: u64,
    /// None: not healed yet.
    until: Option<u64>,
}

/// L4 (SPEC §9): the join runs under way.
#[derive(Debug)]
struct Joins {
    /// A join ends (done or failed) within this after its step 1: deadline plus slack.
    bound_ms: u64,
    /// Newcomer → when its join run started (step 1), until it ends.
    open: BTreeMap<Address, u64>,
    /// Runs checked (ended, or past their bound), for the record.
    checked: u64,
}

/// L2 and L3 (SPEC §9): the bounds, and the records on their way to every lane's relay.
#[derive(Debug)]
struct Latency {
    /// Records created from then on are checked.
    from: u64,
    /// L2: an urgent record reaches every lane's relay within this.
    urgent_ms: u64,
    /// L3: a non-urgent one within this (None: `max_wait` is none, no bound).
    normal_ms: Option<u64>,
    /// (author, seq) → (created at, urgent, lanes whose relay or backup holds it), until
    /// it has reached every lane.
    arrivals: BTreeMap<(Address, u64), (u64, bool, BTreeSet<ConsortiumId>)>,
    /// The records that have reached every lane.
    arrived: BTreeSet<(Address, u64)>,
    /// Records checked, for the record.
    checked: u64,
    /// The largest latencies seen, urgent and not.
    worst: (u64, u64),
}

impl Invariants {
    /// An empty checker.
    pub fn new() -> Self {
        Self::default()
    }

    fn fail(&mut self, name: Invariant, detail: String) {
        let line = format!("{name}: {detail}");
        if !self.broken.contains(&line) {
            self.broken.push(line);
        }
    }

    /// Checks L2 and L3 (SPEC §9) for the records created from `from` on (virtual ms,
    /// the clock of the events), once faults have healed and the federation has settled: an
    /// urgent record reaches every lane's relay within `urgent_ms`, a non-urgent one within
    /// `normal_ms` (none: `max_wait` is none, and nothing bounds it). A record has reached
    /// a lane when the lane's relay or backup (a hot copy that takes over at once) commits
    /// a relay block holding it, as the report's latency figures count it.
    pub fn check_latency_from(&mut self, from: u64, urgent_ms: u64, normal_ms: Option<u64>) {
        self.latency = Some(Latency {
            from,
            urgent_ms,
            normal_ms,
            arrivals: BTreeMap::new(),
            arrived: BTreeSet::new(),
            checked: 0,
            worst: (0, 0),
        });
    }

    /// The records checked for L2 and L3, and the worst urgent and non-urgent latencies.
    pub fn latency_checked(&self) -> Option<(u64, u64, u64)> {
        self.latency
            .as_ref()
            .map(|l| (l.checked, l.worst.0, l.worst.1))
    }

    /// Checks L4 (SPEC §9) from now on: every join run ends, done or failed, within
    /// `bound_ms` of its step 1 (the protocols' deadline plus a slack), and a failure says
    /// why.
    pub fn check_joins(&mut self, bound_ms: u64) {
        self.joins = Some(Joins {
            bound_ms,
            open: BTreeMap::new(),
            checked: 0,
        });
    }

    /// The join runs L4 has checked: ended, or found without an outcome past the bound.
    pub fn joins_checked(&self) -> Option<u64> {
        self.joins.as_ref().map(|j| j.checked)
    }

    /// L4 for one event: a join's step 1 opens a run, `JoinDone` or `JoinFailed` ends it;
    /// a run still open past its bound by this event's time breaks L4.
    fn join_event(&mut self, event: &Event) {
        let Some(joins) = self.joins.as_mut() else {
            return;
        };
        let mut broken = Vec::new();
        match event {
            Event::Step {
                protocol: Protocol::Join,
                step: 1,
                from,
                at,
                ..
            } => {
                joins.open.entry(*from).or_insert(*at);
            }
            Event::JoinDone { newcomer, at, .. } | Event::JoinFailed { newcomer, at, .. } => {
                if let Event::JoinFailed { reason, .. } = event {
                    if reason.trim().is_empty() {
                        broken.push(format!(
                            "the join of {} failed at {at} without a reason",
                            newcomer.short()
                        ));
                    }
                }
                if let Some(started) = joins.open.remove(newcomer) {
                    joins.checked += 1;
                    let took = at.saturating_sub(started);
                    if took > joins.bound_ms {
                        broken.push(format!(
                            "the join of {} started at {started} ended {took} ms later (bound {} ms)",
                            newcomer.short(),
                            joins.bound_ms
                        ));
                    }
                }
            }
            _ => {}
        }
        broken.extend(self.overdue_joins(self.now));
        for line in broken {
            self.fail(Invariant::L4, line);
        }
    }

    /// The join runs with no outcome though `now` is past their bound; they are closed
    /// (each is reported once).
    fn overdue_joins(&mut self, now: u64) -> Vec<String> {
        let Some(joins) = self.joins.as_mut() else {
            return Vec::new();
        };
        let bound = joins.bound_ms;
        let overdue: Vec<(Address, u64)> = joins
            .open
            .iter()
            .filter(|(_, started)| now > **started + bound)
            .map(|(n, s)| (*n, *s))
            .collect();
        overdue
            .into_iter()
            .map(|(newcomer, started)| {
                joins.open.remove(&newcomer);
                joins.checked += 1;
                format!(
                    "the join of {} started at {started} had no outcome (done or failed) by {now}, {} ms later (bound {bound} ms)",
                    newcomer.short(),
                    now - started
                )
            })
            .collect()
    }

    fn arrived(&mut self, node: Address, records: &[RecordStamp], at: u64) {
        let lanes = self.serving.len();
        let Some(latency) = self.latency.as_mut() else {
            return;
        };
        let Some(lane) = self
            .serving
            .iter()
            .find(|(_, (relay, backup))| *relay == node || *backup == Some(node))
            .map(|(lane, _)| *lane)
        else {
            return;
        };
        let mut late = Vec::new();
        for stamp in records.iter().filter(|r| r.created_at >= latency.from) {
            if latency.arrived.contains(&(stamp.author, stamp.seq)) {
                continue;
            }
            let entry = latency
                .arrivals
                .entry((stamp.author, stamp.seq))
                .or_insert((stamp.created_at, stamp.urgent, BTreeSet::new()));
            entry.2.insert(lane);
            if entry.2.len() < lanes {
                continue;
            }
            let took = at.saturating_sub(stamp.created_at);
            latency.checked += 1;
            let (name, bound, worst) = if stamp.urgent {
                (Invariant::L2, Some(latency.urgent_ms), &mut latency.worst.0)
            } else {
                (Invariant::L3, latency.normal_ms, &mut latency.worst.1)
            };
            *worst = (*worst).max(took);
            if bound.is_some_and(|b| took > b) {
                late.push((name, *stamp, took, bound.unwrap_or(0)));
            }
            latency.arrivals.remove(&(stamp.author, stamp.seq));
            latency.arrived.insert((stamp.author, stamp.seq));
        }
        for (name, stamp, took, bound) in late {
            self.fail(
                name,
                format!(
                    "record {} seq {} reached every relay {took} ms after it was created at {} (bound {bound} ms)",
                    stamp.author.short(),
                    stamp.seq,
                    stamp.created_at
                ),
            );
        }
    }

    /// Checks one event.
    pub fn observe(&mut self, event: &Event) {
        if let Some(at) = event_time(event) {
            self.now = self.now.max(at);
        }
        self.join_event(event);
        let mut broken: Vec<(Invariant, String)> = Vec::new();
        match event {
            Event::Committed {
                node,
                lane,
                height,
                hash,
                prev,
                epoch,
                produced,
                records,
                at,
                ..
            } => {
                self.reconfig.block(*lane, *height, *hash, *prev);
                if *produced {
                    let writer = *self.writers.entry((*lane, *epoch)).or_insert(*node);
                    if writer != *node {
                        broken.push((
                            Invariant::S1,
                            format!(
                                "lane {lane} epoch {epoch} released by {} and {}",
                                writer.short(),
                                node.short()
                            ),
                        ));
                    }
                    broken.extend(self.reconfig.write(*node, *epoch, "released a relay block"));
                    broken.extend(self.reconfig.active_write(
                        *node,
                        *lane,
                        *epoch,
                        "released a relay block",
                    ));
                }
                broken.extend(self.reconfig.released(*node, *lane, *height, *hash, *epoch));
                broken.extend(self.fencing(*node, *lane, *height, *epoch, *produced));
                broken.extend(self.node_block(*node, *lane, *height, *hash));
                self.arrived(*node, records, *at);
            }
            Event::Held {
                node,
                lane,
                height,
                hash,
                prev,
                ..
            } => {
                self.reconfig.block(*lane, *height, *hash, *prev);
                broken.extend(self.node_block(*node, *lane, *height, *hash));
            }
            Event::Truncated {
                node, lane, keep, ..
            } => {
                let dropped: Vec<_> = self
                    .blocks
                    .range((*node, *lane, keep + 1)..=(*node, *lane, u64::MAX))
                    .map(|(k, _)| *k)
                    .collect();
                for key in dropped {
                    self.blocks.remove(&key);
                }
            }
            Event::Sealed { node, epoch, .. } | Event::Read { node, epoch, .. } => {
                self.reconfig.sealed(*node, *epoch)
            }
            Event::Activated {
                lane,
                epoch,
                config,
                ..
            } => broken.extend(self.reconfig.activated(*lane, *epoch, config)),
            Event::Confirmed { node, epoch, .. } => {
                broken.extend(self.reconfig.write(*node, *epoch, "confirmed"))
            }
            Event::Acknowledged {
                relay,
                lane,
                epoch,
                author,
                height,
                ..
            } => {
                let what = format!("acknowledged {}#{height}", author.short());
                broken.extend(self.reconfig.write(*relay, *epoch, &what));
                broken.extend(self.reconfig.active_write(*relay, *lane, *epoch, &what));
            }
            Event::Acked {
                member,
                consortium,
                height,
                relay,
                epoch,
                at,
                ..
            } => {
                self.acked
                    .entry((*member, *height))
                    .or_insert((*at, *consortium, *epoch));
                broken.extend(self.replicated_before_ack(
                    *member,
                    *consortium,
                    *height,
                    *relay,
                    *epoch,
                ));
                // An acknowledgement heard after a newer configuration took over: that
                // relay's copy held the block (completeness).
                for (newer, new_relay) in self.reconfig.took_over_after(*consortium, *epoch) {
                    if *member != new_relay && !self.held.contains(&(new_relay, *member, *height)) {
                        broken.push((
                            Invariant::Completeness,
                            format!(
                                "block {}#{height} acknowledged in epoch {epoch} of lane {consortium} is not in the copy relay {} took over with in epoch {newer}",
                                member.short(),
                                new_relay.short()
                            ),
                        ));
                    }
                }
            }
            Event::Stored {
                node,
                author,
                height,
                ..
            } => {
                self.held.insert((*node, *author, *height));
            }
            Event::TookOver {
                consortium,
                epoch,
                relay,
                prev,
                at,
                ..
            } => {
                self.took_over.push((*consortium, *epoch, *at));
                broken.extend(self.reconfig.took_over(*consortium, *epoch, *relay, prev));
                let missing: Vec<(Address, u64, u64)> = self
                    .acked
                    .iter()
                    .filter(|(_, (_, lane, e))| lane == consortium && e < epoch)
                    .filter(|((member, height), _)| {
                        member != relay && !self.held.contains(&(*relay, *member, *height))
                    })
                    .map(|((member, height), (_, _, e))| (*member, *height, *e))
                    .collect();
                for (member, height, e) in missing {
                    broken.push((
                        Invariant::Completeness,
                        format!(
                            "relay {} took lane {consortium} over in epoch {epoch} without block {}#{height}, acknowledged in epoch {e}",
                            relay.short(),
                            member.short()
                        ),
                    ));
                }
            }
            Event::CutOff { consortium, at } => self.cut_off.push((*consortium, *at)),
            // A take-over waiting for a source whose every member is down (crashed, not
            // restarted): it cannot finish, by design, until one comes back.
            Event::Stalled {
                lane,
                waiting_for,
                at,
                ..
            } if !waiting_for.is_empty()
                && waiting_for.iter().all(|n| self.down.contains_key(n)) =>
            {
                self.stalled_down.push((*lane, *at, waiting_for.clone()));
            }
            // A node's own block that its own validation refuses: the chain it would have
            // written does not verify (an election that does not recompute, say).
            Event::Rejected {
                node, kind, detail, ..
            } if kind.starts_with("own_") => broken.push((
                Invariant::S4,
                format!("node {} built an invalid block: {detail}", node.short()),
            )),
            Event::Elected {
                consortium,
                epoch,
                source,
                lane_head,
                relay,
                backup,
                ..
            } => {
                broken.extend(
                    self.reconfig
                        .elected(*consortium, *epoch, *source, lane_head),
                );
                self.serving.insert(*consortium, (*relay, *backup));
                self.configs
                    .insert((*consortium, *epoch), (*relay, *backup));
            }
            _ => {}
        }
        for (name, detail) in broken {
            self.fail(name, detail);
        }
    }

    /// S2 for one node: it never holds two blocks at one height of a lane, unless it
    /// truncated the first (a `Truncated` event forgets what it dropped).
    fn node_block(
        &mut self,
        node: Address,
        lane: ConsortiumId,
        height: u64,
        hash: Hash,
    ) -> Option<(Invariant, String)> {
        let known = *self.blocks.entry((node, lane, height)).or_insert(hash);
        (known != hash).then(|| {
            (
                Invariant::S2,
                format!(
                    "node {} holds two blocks at lane {lane} height {height}: {} and {}",
                    node.short(),
                    known.short(),
                    hash.short()
                ),
            )
        })
    }

    /// S3 (D4), strict, for one acknowledgement heard by `member`: block `height` of its
    /// lane, acknowledged by `relay` of `lane`'s epoch `epoch`. The one backup of that
    /// configuration already holds the block (the relay, if it has none).
    fn replicated_before_ack(
        &self,
        member: Address,
        lane: ConsortiumId,
        height: u64,
        relay: Address,
        epoch: u64,
    ) -> Option<(Invariant, String)> {
        let (elected, backup) = self.configs.get(&(lane, epoch)).copied()?;
        let keeper = backup.unwrap_or(elected);
        if keeper == member || self.held.contains(&(keeper, member, height)) {
            return None;
        }
        Some((
            Invariant::S3D4,
            format!(
                "block {}#{height} acknowledged by relay {} in epoch {epoch} of lane {lane} before {} {} held it",
                member.short(),
                relay.short(),
                if backup.is_some() { "its backup" } else { "the relay itself" },
                keeper.short()
            ),
        ))
    }

    /// S1 fencing (SPEC §5, §14), across nodes: once a block of epoch e' has been released
    /// on a lane (by anyone), its `prev` is the cut-off: no node commits a block of an
    /// older epoch above it from then on. (Two different released blocks at one height are
    /// S2, in `reconfig.rs`.)
    fn fencing(
        &mut self,
        node: Address,
        lane: ConsortiumId,
        height: u64,
        epoch: u64,
        produced: bool,
    ) -> Vec<(Invariant, String)> {
        let mut broken = Vec::new();
        let newer = self
            .epoch_starts
            .range((lane, epoch + 1)..=(lane, u64::MAX))
            .find(|(_, start)| **start <= height)
            .map(|((_, e), start)| (*e, *start));
        if let Some((newer, start)) = newer {
            let how = if produced { "released" } else { "accepted" };
            broken.push((
                Invariant::S1,
                format!(
                    "node {} {how} lane {lane} height {height} of epoch {epoch} after epoch {newer} cut the lane off at height {}",
                    node.short(),
                    start - 1
                ),
            ));
        }
        self.epoch_starts.entry((lane, epoch)).or_insert(height);
        broken
    }

    /// Notes that `relay`, the relay of `lane` in `epoch`, was crashed at `at` (for L1).
    /// Report the crash as a [`fault`](Self::fault) too: it is a fault on the consortium
    /// for the other crashes of its relays.
    pub fn relay_crashed(&mut self, lane: ConsortiumId, epoch: u64, relay: Address, at: u64) {
        self.crashes.push((lane, epoch, relay, at));
    }

    /// Notes that `node` crashed at `at` (its memory is lost) and is down until
    /// [`restarted`](Self::restarted).
    pub fn crashed(&mut self, node: Address, at: u64) {
        self.down.entry(node).or_insert(at);
    }

    /// Notes that `node` restarted from its store.
    pub fn restarted(&mut self, node: Address) {
        self.down.remove(&node);
    }

    /// Notes a fault touching relay candidates of `lane` at `at`, for L1's premise: a crash
    /// of one of them (`node`, `lasting` false), a pause of one (`node`, `lasting`), or a
    /// partition of the consortium (`node` none, `lasting`). A lasting fault holds until
    /// [`healed`](Self::healed). `what` names it, for the record.
    pub fn fault(
        &mut self,
        lane: ConsortiumId,
        node: Option<Address>,
        what: &str,
        at: u64,
        lasting: bool,
    ) {
        self.faults.push(Fault {
            lane,
            node,
            what: what.to_string(),
            from: at,
            until: (!lasting).then_some(at),
        });
    }

    /// Every pause and partition ends at `at`.
    pub fn healed(&mut self, at: u64) {
        for fault in self.faults.iter_mut().filter(|f| f.until.is_none()) {
            fault.until = Some(at);
        }
    }

    /// The relay crashes L1 did not judge, because another fault touched their
    /// consortium's candidates within the bound; one line each, naming that fault.
    pub fn l1_exempt(&self) -> &[String] {
        &self.exempt
    }

    /// Another fault than the crash of `relay` at `at` touching `lane`'s candidates within
    /// `bound_ms` of it, before or after (a pause or partition overlapping that window).
    fn other_fault(
        &self,
        lane: ConsortiumId,
        relay: Address,
        at: u64,
        bound_ms: u64,
    ) -> Option<&Fault> {
        self.faults.iter().find(|f| {
            f.lane == lane
                && !(f.node == Some(relay) && f.from == at && f.until == Some(at))
                && f.from <= at + bound_ms
                && f.until.unwrap_or(u64::MAX) >= at.saturating_sub(bound_ms)
        })
    }

    /// L2, L3 at the end: a record still on its way to some lane's relay, though its bound
    /// has passed by the last event.
    fn late_records(&mut self) {
        // L2, L3: a record still on its way to some relay, long after its bound.
        let now = self.now;
        let stuck: Vec<(Invariant, Address, u64, u64, usize)> = self
            .latency
            .as_ref()
            .map(|l| {
                l.arrivals
                    .iter()
                    .filter_map(|((author, seq), (created, urgent, lanes))| {
                        let (name, bound) = if *urgent {
                            (Invariant::L2, Some(l.urgent_ms))
                        } else {
                            (Invariant::L3, l.normal_ms)
                        };
                        bound
                            .filter(|b| created + b < now)
                            .map(|_| (name, *author, *seq, *created, lanes.len()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        for (name, author, seq, created, lanes) in stuck {
            self.fail(
                name,
                format!(
                    "record {} seq {seq} created at {created} reached only {lanes} of {} lanes' relays by {now}",
                    author.short(),
                    self.serving.len()
                ),
            );
        }
    }

    /// L1 at the end: every relay crash was followed by a take-over with a newer epoch
    /// within `bound_ms`, or by the consortium's cut-off (no candidate left), unless
    /// another fault touched the consortium's candidates within the bound.
    fn failovers(&mut self, bound_ms: u64) {
        for (lane, epoch, relay, at) in self.crashes.clone() {
            // A take-over with a newer epoch; or the crashed relay itself, restarted from its
            // store before it was failed over, serving its epoch again (its own `TookOver`
            // after the crash: no one else takes over an epoch).
            let served = self.took_over.iter().any(|(l, e, t)| {
                *l == lane
                    && ((*e > epoch && *t >= at) || (*e == epoch && *t > at))
                    && *t - at <= bound_ms
            });
            // With no candidate left the consortium is cut off, reported, and rejoins when
            // one comes back (SPEC §5): L1 does not apply.
            let cut_off = self
                .cut_off
                .iter()
                .any(|(l, t)| *l == lane && *t >= at && *t - at <= bound_ms);
            if served || cut_off {
                continue;
            }
            // The take-over after the crash waited for a source configuration whose every
            // member was down (SPEC §14 step 4: the lane stalls, reported, until one comes
            // back): L1 does not apply until then.
            let next_take_over = self
                .took_over
                .iter()
                .filter(|(l, _, t)| *l == lane && *t >= at)
                .map(|(_, _, t)| *t)
                .min()
                .unwrap_or(u64::MAX);
            if let Some((_, stalled_at, waiting)) = self
                .stalled_down
                .iter()
                .find(|(l, t, _)| *l == lane && *t >= at && *t <= next_take_over)
            {
                let waiting: Vec<String> = waiting.iter().map(|a| a.short()).collect();
                self.exempt.push(format!(
                    "no take-over of lane {lane} within {bound_ms} ms of its relay {}'s crash at {at}, not judged: stalled at {stalled_at} on its source, {} down",
                    relay.short(),
                    waiting.join(" and ")
                ));
                continue;
            }
            // L1 presumes the crash is the only fault on its consortium during the
            // failover: with a candidate also crashed, paused or partitioned within the
            // bound, no relay may be able to serve in time. Such a crash is not judged;
            // it is listed, with the other fault.
            if let Some(fault) = self.other_fault(lane, relay, at, bound_ms) {
                let line = format!(
                    "no take-over of lane {lane} within {bound_ms} ms of its relay {}'s crash at {at}, not judged: {} at {}",
                    relay.short(),
                    fault.what,
                    fault.from
                );
                self.exempt.push(line);
                continue;
            }
            self.fail(
                Invariant::L1,
                format!("no relay took lane {lane} over within {bound_ms} ms of the crash at {at}"),
            );
        }
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
        self.late_records();
        let overdue = self.overdue_joins(self.now);
        for line in overdue {
            self.fail(Invariant::L4, line);
        }
        self.failovers(bound_ms);
        // S3: an acknowledged block is held by its lane's relay; if it needs the relay
        // chain (D4) it is included exactly once in every live relay's copy of that lane.
        let mut external: BTreeMap<ConsortiumId, Vec<(Address, u64)>> = BTreeMap::new();
        for (lane, relay) in live_relays {
            for ((member, height), (at, _, _)) in &self.acked.clone() {
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
                        Invariant::S3,
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
                            Invariant::S3,
                            format!(
                                "acknowledged block {} height {} is not in relay {}'s copy of lane {lane} (its head {head}, the longest copy {longest})",
                                key.0.short(),
                                key.1,
                                relay.short()
                            ),
                        ),
                        n => self.fail(Invariant::S3, format!("block {} height {} is included {n} times in lane {lane}", key.0.short(), key.1)),
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
                    Invariant::S2,
                    format!("live relays disagree on lane {lane} at height {common}"),
                );
            }
        }
        for line in forks(store) {
            self.fail(Invariant::S2, line);
        }
        if let Err(err) = ieschain_storage::verify(store) {
            self.fail(Invariant::S4, err.to_string());
        }
        self.broken.clone()
    }

    /// What has broken so far.
    pub fn broken(&self) -> &[String] {
        &self.broken
    }
}

/// S2 over a whole store (SPEC §9, §14): every holder's copy of a chain agrees with every
/// other's on their common prefix, except where a relay candidate of a lane keeps a block
/// of its own lane from an epoch older than a configuration that took the lane over at or
/// below that height (a block of a deposed or superseded configuration that was never
/// released: not a fork). One line per fork found, without
/// the invariant's name.
pub fn forks(store: &dyn ChainStore) -> Vec<String> {
    let genesis = store.genesis();
    let consortium_of = |holder: &Address| {
        genesis
            .consortiums
            .iter()
            .find(|c| c.members.iter().any(|m| m.address == *holder))
            .map(|c| c.id)
    };
    let Ok(chains) = store.chains() else {
        return vec!["cannot list the store's chains".into()];
    };
    /// One holder's copy of a chain: the holder, whether it is a relay candidate of the
    /// lane, and each block's hash and epoch.
    type Copy = (Address, bool, Vec<(Hash, u64)>);
    let mut copies: BTreeMap<ChainId, Vec<Copy>> = BTreeMap::new();
    let mut broken = Vec::new();
    for (holder, chain, _) in chains {
        let mut blocks = Vec::new();
        loop {
            let page = match store.range(holder, chain, blocks.len() as u64 + 1, 256) {
                Ok(page) if page.is_empty() => break,
                Ok(page) => page,
                Err(e) => {
                    broken.push(format!(
                        "{chain} of holder {} cannot be read at height {}: {e}",
                        holder.short(),
                        blocks.len() + 1
                    ));
                    break;
                }
            };
            blocks.extend(page.iter().map(|b| {
                let epoch = match b {
                    AnyBlock::Relay(r) => r.header.epoch,
                    _ => 0,
                };
                (b.hash(), epoch)
            }));
        }
        let candidate =
            matches!(chain, ChainId::Relay(lane) if consortium_of(&holder) == Some(lane));
        copies
            .entry(chain)
            .or_default()
            .push((holder, candidate, blocks));
    }
    for (chain, holders) in &copies {
        let released = holders.iter().filter(|(_, candidate, _)| !candidate);
        let Some((longest_holder, _, longest)) = released
            .clone()
            .max_by_key(|(_, _, b)| b.len())
            .or_else(|| holders.iter().max_by_key(|(_, _, b)| b.len()))
        else {
            continue;
        };
        // The newest epoch in the reference copy at or above each height.
        let mut newer_above: Vec<u64> = longest.iter().map(|(_, epoch)| *epoch).collect();
        for i in (0..newer_above.len().saturating_sub(1)).rev() {
            newer_above[i] = newer_above[i].max(newer_above[i + 1]);
        }
        for (holder, candidate, blocks) in holders {
            let Some(at) = blocks.iter().zip(longest).position(|(a, b)| a.0 != b.0) else {
                continue;
            };
            // A candidate's own block of an epoch that a newer configuration replaced at or
            // below that height: never released (a newer configuration's sealed read holds
            // every released block, SPEC §14). It may be a deposed relay's unreleased
            // block, or the config block of a configuration superseded before its
            // activation, whose epoch is newer than the released block at its height but
            // older than the configuration that took the lane over. A candidate with no
            // duty truncates it once it is no longer a member of the newest election's
            // source (`converge_own_lane`); until then a new relay may still have to read
            // its copy.
            if *candidate && blocks[at].1 < newer_above[at] {
                continue;
            }
            broken.push(format!(
                "{chain} forks at height {}: holder {} (epoch {}{}) and holder {} (epoch {}) \
                 disagree",
                at + 1,
                holder.short(),
                blocks[at].1,
                if *candidate { ", a candidate" } else { "" },
                longest_holder.short(),
                longest[at].1,
            ));
        }
    }
    broken
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

/// When an event happened, for the events that say.
fn event_time(event: &Event) -> Option<u64> {
    match event {
        Event::Committed { at, .. }
        | Event::Acked { at, .. }
        | Event::Elected { at, .. }
        | Event::TookOver { at, .. }
        | Event::Stored { at, .. }
        | Event::CutOff { at, .. }
        | Event::Step { at, .. }
        | Event::JoinDone { at, .. }
        | Event::JoinFailed { at, .. } => Some(*at),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    //! The cross-node and latency checks on hand-made event sequences: each fires on the
    //! bug it names, and stays quiet on the correct runs next to it.

    use super::*;
    use ieschain_core::election::{ElectionReason, LanePosition};

    const A: Address = Address([0xa; 20]);
    const B: Address = Address([0xb; 20]);
    const C: Address = Address([0xc; 20]);
    const L0: ConsortiumId = ConsortiumId(0);
    const L1: ConsortiumId = ConsortiumId(1);

    fn elected(lane: ConsortiumId, epoch: u64, relay: Address, at: u64) -> Event {
        Event::Elected {
            consortium: lane,
            epoch,
            source: epoch - 1,
            lane_head: LanePosition {
                height: 0,
                hash: Hash::ZERO,
            },
            reason: if epoch == 1 {
                ElectionReason::Initial
            } else {
                ElectionReason::Failover
            },
            relay,
            backup: None,
            at,
        }
    }

    fn stamp(author: Address, seq: u64, created_at: u64, urgent: bool) -> RecordStamp {
        RecordStamp {
            author,
            seq,
            created_at,
            urgent,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn committed(
        node: Address,
        lane: ConsortiumId,
        height: u64,
        tag: u8,
        epoch: u64,
        produced: bool,
        records: Vec<RecordStamp>,
        at: u64,
    ) -> Event {
        Event::Committed {
            node,
            lane,
            height,
            hash: Hash([tag; 32]),
            prev: Hash::ZERO,
            epoch,
            produced,
            reason: None,
            blocks: records.len() as u32,
            urgent_blocks: 0,
            records,
            at,
        }
    }

    fn names(checker: &Invariants) -> Vec<&str> {
        checker
            .broken()
            .iter()
            .map(|l| l.split(':').next().unwrap_or(""))
            .collect()
    }

    /// Once a newer epoch's first block is committed, an older epoch's block above its
    /// cut-off breaks S1, produced or accepted; one committed before it, or at or below the
    /// cut-off (a final block the backup confirmed, which the successor continues), does not.
    #[test]
    fn committing_above_the_cut_off_breaks_s1() {
        let mut checker = Invariants::new();
        checker.observe(&activated(1, 0));
        checker.observe(&activated(2, 0));
        checker.observe(&committed(A, L0, 4, 1, 1, true, vec![], 10));
        checker.observe(&committed(A, L0, 5, 2, 1, true, vec![], 20));
        checker.observe(&committed(B, L0, 5, 2, 1, false, vec![], 20));
        checker.observe(&committed(B, L0, 6, 3, 2, true, vec![], 30));
        checker.observe(&committed(C, L0, 5, 2, 1, false, vec![], 40));
        assert!(checker.broken().is_empty(), "{:?}", checker.broken());
        checker.observe(&committed(C, L0, 6, 4, 1, false, vec![], 50));
        assert!(names(&checker).contains(&"S1"), "{:?}", checker.broken());
    }

    /// Two nodes committing different released blocks at one height of a lane is a fork
    /// (S2) even though neither node holds both.
    #[test]
    fn different_blocks_at_one_height_and_epoch_break_s2() {
        let mut checker = Invariants::new();
        checker.observe(&activated(1, 0));
        checker.observe(&committed(A, L0, 3, 1, 1, true, vec![], 10));
        checker.observe(&committed(B, L0, 3, 1, 1, false, vec![], 10));
        assert!(checker.broken().is_empty(), "{:?}", checker.broken());
        checker.observe(&committed(C, L0, 3, 2, 1, false, vec![], 10));
        assert_eq!(names(&checker), ["S2"], "{:?}", checker.broken());
    }

    /// L2 and L3: a record counts when the relay (or backup) of every lane holds it. Within
    /// the bounds nothing breaks; late, or never arriving, breaks L2 (urgent) or L3.
    #[test]
    fn latency_bounds_break_l2_and_l3() {
        let run = |urgent: bool, second_at: u64, end: u64| {
            let mut checker = Invariants::new();
            checker.observe(&elected(L0, 1, A, 0));
            checker.observe(&elected(L1, 1, B, 0));
            checker.observe(&activated_in(L0, 1, 0));
            checker.check_latency_from(1_000, 200, Some(900));
            let records = vec![stamp(C, 1, 1_000, urgent)];
            checker.observe(&committed(A, L0, 1, 1, 1, true, records.clone(), 1_000));
            if second_at > 0 {
                checker.observe(&committed(B, L0, 1, 1, 1, false, records, second_at));
            }
            checker.observe(&committed(A, L1, 1, 9, 1, false, vec![], end));
            checker.late_records();
            checker
        };
        assert!(run(true, 1_200, 5_000).broken().is_empty());
        assert_eq!(names(&run(true, 1_201, 5_000)), ["L2"]);
        assert!(run(false, 1_900, 5_000).broken().is_empty());
        assert_eq!(names(&run(false, 1_901, 5_000)), ["L3"]);
        // Never reaching lane #1's relay: broken once the bound has passed by the end.
        assert!(run(true, 0, 1_200).broken().is_empty());
        assert_eq!(names(&run(true, 0, 1_201)), ["L2"]);
        assert_eq!(names(&run(false, 0, 1_901)), ["L3"]);
    }

    fn elected_with(epoch: u64, relay: Address, backup: Option<Address>, at: u64) -> Event {
        Event::Elected {
            consortium: L0,
            epoch,
            source: 0,
            lane_head: LanePosition {
                height: 0,
                hash: Hash::ZERO,
            },
            reason: ElectionReason::BackupLost,
            relay,
            backup,
            at,
        }
    }

    fn acked(member: Address, height: u64, relay: Address, epoch: u64, at: u64) -> Event {
        Event::Acked {
            member,
            consortium: L0,
            height,
            relay,
            epoch,
            records: 1,
            first_seq: height,
            last_seq: height,
            external: true,
            at,
        }
    }

    fn stored(node: Address, author: Address, height: u64, at: u64) -> Event {
        Event::Stored {
            node,
            author,
            height,
            epoch: 1,
            at,
        }
    }

    /// S3 (D4), strict: a member hearing its block acknowledged at epoch e before e's one
    /// backup stored it breaks S3 (D4); after, it does not, nor when the backup is the
    /// author. With no backup, the relay must hold it. Another epoch's backup does not
    /// count.
    #[test]
    fn acknowledging_before_the_backup_holds_the_block_breaks_s3() {
        const D: Address = Address([0xd; 20]);
        let mut checker = Invariants::new();
        checker.observe(&elected_with(1, A, Some(B), 0));
        checker.observe(&stored(A, C, 1, 10));
        checker.observe(&stored(B, C, 1, 12));
        checker.observe(&acked(C, 1, A, 1, 15));
        checker.observe(&acked(B, 1, A, 1, 16));
        assert!(checker.broken().is_empty(), "{:?}", checker.broken());
        checker.observe(&stored(A, C, 2, 20));
        checker.observe(&acked(C, 2, A, 1, 21));
        checker.observe(&stored(B, C, 2, 22));
        assert_eq!(names(&checker), ["S3 (D4)"], "{:?}", checker.broken());
        assert!(checker.broken()[0].contains("#2"), "{:?}", checker.broken());

        // No backup: the relay itself must hold it.
        let mut alone = Invariants::new();
        alone.observe(&elected_with(1, A, None, 0));
        alone.observe(&stored(A, C, 1, 4));
        alone.observe(&acked(C, 1, A, 1, 5));
        assert!(alone.broken().is_empty(), "{:?}", alone.broken());
        alone.observe(&acked(C, 2, A, 1, 6));
        assert_eq!(names(&alone), ["S3 (D4)"], "{:?}", alone.broken());

        // A backup of another epoch does not count: epoch 2's backup D has not stored it.
        let mut replaced = Invariants::new();
        replaced.observe(&elected_with(1, A, Some(B), 0));
        replaced.observe(&elected_with(2, A, Some(D), 5));
        replaced.observe(&stored(B, C, 1, 6));
        replaced.observe(&acked(C, 1, A, 1, 7));
        assert!(replaced.broken().is_empty(), "{:?}", replaced.broken());
        replaced.observe(&acked(C, 1, A, 2, 8));
        assert_eq!(names(&replaced), ["S3 (D4)"], "{:?}", replaced.broken());
    }

    fn took_over(epoch: u64, relay: Address, prev: (u64, u8), at: u64) -> Event {
        Event::TookOver {
            consortium: L0,
            epoch,
            relay,
            config: LanePosition {
                height: prev.0 + 1,
                hash: Hash([0xff; 32]),
            },
            prev: LanePosition {
                height: prev.0,
                hash: Hash([prev.1; 32]),
            },
            at,
        }
    }

    fn held(node: Address, height: u64, tag: u8, prev: u8, epoch: u64) -> Event {
        Event::Held {
            node,
            lane: L0,
            height,
            hash: Hash([tag; 32]),
            prev: Hash([prev; 32]),
            epoch,
            at: 0,
        }
    }

    fn activated(epoch: u64, at: u64) -> Event {
        activated_in(L0, epoch, at)
    }

    fn activated_in(lane: ConsortiumId, epoch: u64, at: u64) -> Event {
        Event::Activated {
            lane,
            epoch,
            relay: A,
            config: LanePosition {
                height: 1,
                hash: Hash([1; 32]),
            },
            at,
        }
    }

    /// Completeness at take-over: a new relay whose config block's chain lacks a released
    /// block, or whose copy lacks an acknowledged block, breaks it; one whose chain holds
    /// them does not.
    #[test]
    fn taking_over_without_a_released_or_acknowledged_block_breaks_completeness() {
        let base = || {
            let mut checker = Invariants::new();
            checker.observe(&elected_with(1, A, Some(B), 0));
            checker.observe(&activated(1, 1));
            checker.observe(&committed(A, L0, 1, 1, 1, true, vec![], 2));
            checker.observe(&committed(A, L0, 2, 2, 1, true, vec![], 3));
            checker.observe(&stored(A, C, 1, 3));
            checker.observe(&stored(B, C, 1, 3));
            checker.observe(&acked(C, 1, A, 1, 4));
            checker
        };
        // B took over on height 2 (its chain: 2 → 1), holding C#1.
        let mut good = base();
        good.observe(&held(B, 1, 1, 0, 1));
        good.observe(&held(B, 2, 2, 1, 1));
        good.observe(&took_over(2, B, (2, 2), 10));
        assert!(good.broken().is_empty(), "{:?}", good.broken());
        // On height 1: the released block 2 is lost.
        let mut short = base();
        short.observe(&took_over(2, B, (1, 1), 10));
        assert_eq!(
            names(&short),
            ["completeness at take-over"],
            "{:?}",
            short.broken()
        );
        // On another block at height 2.
        let mut forked = base();
        forked.observe(&held(D, 1, 1, 0, 1));
        forked.observe(&held(D, 2, 9, 1, 1));
        forked.observe(&took_over(2, B, (2, 9), 10));
        assert_eq!(names(&forked), ["completeness at take-over"]);
        // Without the acknowledged block in its copy: D never stored C#1.
        let mut lacking = base();
        lacking.observe(&held(D, 1, 1, 0, 1));
        lacking.observe(&held(D, 2, 2, 1, 1));
        lacking.observe(&took_over(2, D, (2, 2), 10));
        assert_eq!(names(&lacking), ["completeness at take-over"]);
        // An acknowledgement of epoch 1 heard after D took over in epoch 2.
        let mut late = Invariants::new();
        late.observe(&elected_with(1, A, Some(B), 0));
        late.observe(&stored(B, C, 3, 1));
        late.observe(&took_over(2, D, (0, 0), 2));
        late.observe(&acked(C, 3, A, 1, 3));
        assert_eq!(names(&late), ["completeness at take-over"]);
    }

    const D: Address = Address([0xd; 20]);

    /// Released head and activation order: an election drawn on a block never released,
    /// or naming a source that is not the latest active configuration, breaks them; a
    /// relay that acknowledges or releases in a configuration never activated breaks
    /// activation order.
    #[test]
    fn elections_and_writes_follow_activation() {
        let mut checker = Invariants::new();
        checker.observe(&elected_with(1, A, Some(B), 0));
        checker.observe(&activated(1, 1));
        checker.observe(&committed(A, L0, 1, 1, 1, true, vec![], 2));
        checker.observe(&held(B, 2, 2, 1, 1));
        let mut election = Event::Elected {
            consortium: L0,
            epoch: 2,
            source: 1,
            lane_head: LanePosition {
                height: 1,
                hash: Hash([1; 32]),
            },
            reason: ElectionReason::Failover,
            relay: B,
            backup: None,
            at: 5,
        };
        checker.observe(&election);
        assert!(checker.broken().is_empty(), "{:?}", checker.broken());
        if let Event::Elected {
            lane_head, source, ..
        } = &mut election
        {
            *lane_head = LanePosition {
                height: 2,
                hash: Hash([2; 32]),
            };
            *source = 2;
        }
        checker.observe(&election);
        let mut got = names(&checker);
        got.sort();
        assert_eq!(got, ["activation order", "released head"]);
        let mut early = Invariants::new();
        early.observe(&elected_with(1, A, Some(B), 0));
        early.observe(&Event::Acknowledged {
            relay: A,
            lane: L0,
            epoch: 1,
            author: C,
            height: 1,
            at: 1,
        });
        assert_eq!(names(&early), ["activation order"]);
    }

    /// Fenced writes: a backup confirming, or a relay acknowledging, for an epoch below the
    /// seal it persisted or the sealed read it answered breaks them; for its own epoch, or
    /// before sealing, not.
    #[test]
    fn writing_below_a_seal_breaks_fenced_writes() {
        let mut checker = Invariants::new();
        checker.observe(&elected_with(1, A, Some(B), 0));
        checker.observe(&activated(1, 1));
        let confirmed = |epoch| Event::Confirmed {
            node: B,
            lane: L0,
            epoch,
            at: 2,
        };
        checker.observe(&confirmed(1));
        checker.observe(&Event::Read {
            node: B,
            lane: L0,
            epoch: 2,
            relay: D,
            at: 3,
        });
        checker.observe(&confirmed(2));
        assert!(checker.broken().is_empty(), "{:?}", checker.broken());
        checker.observe(&confirmed(1));
        assert_eq!(names(&checker), ["fenced writes"]);
        let mut relay = Invariants::new();
        relay.observe(&elected_with(1, A, Some(B), 0));
        relay.observe(&activated(1, 1));
        relay.observe(&Event::Sealed {
            node: A,
            lane: L0,
            epoch: 3,
            at: 2,
        });
        relay.observe(&Event::Acknowledged {
            relay: A,
            lane: L0,
            epoch: 1,
            author: C,
            height: 1,
            at: 3,
        });
        assert_eq!(names(&relay), ["fenced writes"]);
    }

    /// S2 on released blocks: two different released blocks at one height, of any epochs,
    /// are a fork; a backup's unreleased block truncated and replaced is not.
    #[test]
    fn released_blocks_never_differ_but_tentative_ones_may_be_truncated() {
        let mut checker = Invariants::new();
        checker.observe(&held(B, 3, 7, 2, 1));
        checker.observe(&Event::Truncated {
            node: B,
            lane: L0,
            keep: 2,
            at: 1,
        });
        checker.observe(&held(B, 3, 8, 2, 2));
        assert!(checker.broken().is_empty(), "{:?}", checker.broken());
        checker.observe(&held(B, 3, 9, 2, 2));
        assert_eq!(names(&checker), ["S2"]);
        let mut released = Invariants::new();
        released.observe(&committed(A, L0, 3, 1, 1, false, vec![], 1));
        released.observe(&committed(C, L0, 3, 2, 2, false, vec![], 2));
        assert!(names(&released).contains(&"S2"), "{:?}", released.broken());
    }

    fn join_step_1(newcomer: Address, at: u64) -> Event {
        Event::Step {
            protocol: Protocol::Join,
            run: Hash([0x11; 32]),
            step: 1,
            from: newcomer,
            to: ieschain_core::node::StepTarget::Node(A),
            what: "who is your relay?".into(),
            at,
        }
    }

    fn join_failed(newcomer: Address, reason: &str, at: u64) -> Event {
        Event::JoinFailed {
            newcomer,
            consortium: L0,
            reason: reason.into(),
            at,
        }
    }

    /// L4: a join with no outcome past deadline plus slack breaks it, found by a later
    /// event or at the end; one that ends in time (done, or failed with a reason) does not,
    /// nor one started too close to the end; a failure without a reason breaks it.
    #[test]
    fn join_without_outcome_breaks_l4() {
        let run = |outcome: Option<Event>, last: u64| {
            let mut checker = Invariants::new();
            checker.check_joins(10_400);
            checker.observe(&join_step_1(C, 1_000));
            if let Some(outcome) = outcome {
                checker.observe(&outcome);
            }
            checker.observe(&committed(A, L0, 1, 1, 1, false, vec![], last));
            let overdue = checker.overdue_joins(checker.now);
            for line in overdue {
                checker.fail(Invariant::L4, line);
            }
            checker
        };
        let done = Event::JoinDone {
            newcomer: C,
            consortium: L0,
            receipts: 2,
            at: 1_300,
        };
        let quiet = [
            run(Some(done.clone()), 30_000),
            run(Some(join_failed(C, "no receipt from x", 11_400)), 30_000),
            // Another newcomer's outcome does not end C's run, but C started too close to
            // the end of the run to be judged.
            run(Some(join_failed(B, "refused", 2_000)), 11_400),
        ];
        for checker in &quiet {
            assert!(checker.broken().is_empty(), "{:?}", checker.broken());
            assert!(checker.joins_checked().is_some());
        }
        assert_eq!(quiet[0].joins_checked(), Some(1));
        // No outcome at all, past the bound: broken once, by the next event.
        let none = run(None, 11_401);
        assert_eq!(names(&none), ["L4"], "{:?}", none.broken());
        assert_eq!(
            names(&run(Some(join_failed(B, "refused", 2_000)), 30_000)),
            ["L4"]
        );
        // An outcome too late, and a failure that does not say why.
        assert_eq!(
            names(&run(Some(join_failed(C, "late", 11_401)), 30_000)),
            ["L4"]
        );
        assert_eq!(
            names(&run(Some(join_failed(C, " ", 5_000)), 30_000)),
            ["L4"]
        );
        // Not asked for (no `check_joins`): nothing is judged.
        let mut off = Invariants::new();
        off.observe(&join_step_1(C, 1_000));
        off.observe(&committed(A, L0, 1, 1, 1, false, vec![], 30_000));
        assert!(off.broken().is_empty());
    }

    /// L1: a relay crash with no take-over within the bound breaks it, unless the lane was
    /// cut off, or another fault (a crash, a pause, a partition) touched the consortium's
    /// candidates within the bound of the crash. A fault on another consortium, or long
    /// before or after, does not exempt it; nor does the crash itself.
    #[test]
    fn l1_exempts_a_crash_only_with_another_fault_on_its_consortium() {
        let run = |faults: &[(ConsortiumId, Option<Address>, u64, Option<u64>)], took: u64| {
            let mut checker = Invariants::new();
            checker.relay_crashed(L0, 1, A, 5_000);
            checker.fault(L0, Some(A), "crash:a", 5_000, false);
            for (lane, node, from, until) in faults {
                // A crash is a fault of an instant; a pause or partition lasts until healed.
                let lasting = *until != Some(*from);
                checker.fault(*lane, *node, "other", *from, lasting);
                if let (true, Some(until)) = (lasting, until) {
                    checker.healed(*until);
                }
            }
            checker.observe(&took_over(2, B, (0, 0), took));
            checker.failovers(900);
            checker
        };
        assert!(run(&[], 5_900).broken().is_empty());
        assert_eq!(names(&run(&[], 5_901)), ["L1"]);
        // The crashed relay, restarted before it was failed over, serving its epoch again.
        let mut restarted = Invariants::new();
        restarted.relay_crashed(L0, 1, A, 5_000);
        for (epoch, at) in [(1, 5_000), (1, 5_050)] {
            restarted.observe(&took_over(epoch, A, (0, 0), at));
        }
        restarted.failovers(900);
        assert!(restarted.broken().is_empty(), "{:?}", restarted.broken());
        let mut stale = Invariants::new();
        stale.relay_crashed(L0, 1, A, 5_000);
        stale.observe(&took_over(1, A, (0, 0), 5_000));
        stale.failovers(900);
        assert_eq!(names(&stale), ["L1"]);
        // A pause of a candidate 50 ms after the crash, a partition of the consortium
        // still on, a crash of another candidate 800 ms before: not judged, and listed.
        for faults in [
            vec![(L0, Some(B), 5_050, Some(8_000))],
            vec![(L0, None, 5_800, None)],
            vec![(L0, Some(C), 4_200, Some(4_200))],
            vec![(L0, Some(C), 1_000, Some(4_100))],
        ] {
            let checker = run(&faults, 7_000);
            assert!(
                checker.broken().is_empty(),
                "{faults:?}: {:?}",
                checker.broken()
            );
            assert_eq!(checker.l1_exempt().len(), 1, "{faults:?}");
        }
        // Another consortium's fault, or one outside the window, exempts nothing.
        for faults in [
            vec![(L1, Some(B), 5_050, Some(8_000))],
            vec![(L0, Some(C), 4_000, Some(4_099))],
            vec![(L0, None, 5_901, Some(8_000))],
        ] {
            let checker = run(&faults, 7_000);
            assert_eq!(names(&checker), ["L1"], "{faults:?}");
            assert!(checker.l1_exempt().is_empty(), "{faults:?}");
        }
    }

    /// A take-over that stalls on a source whose members are all down (crashed long before,
    /// not restarted) is not judged by L1 (SPEC §14 step 4); one that stalls while a
    /// member it waits for is up is.
    /// Copies of lane #1 at a non-candidate (the released lane) and at a candidate, each a
    /// list of (epoch, salt) per height: the same pair gives the same block.
    fn lane_forks(released: &[(u64, u8)], at_candidate: &[(u64, u8)]) -> Vec<String> {
        use ieschain_core::block::{RelayBlock, RelayHeader};
        let federation = ieschain_core::sample::SampleFederation::four_party(5, 3);
        let lane = federation.genesis.consortiums[1].id;
        let candidate = federation.genesis.consortiums[1].members[0].address;
        let other = federation.genesis.consortiums[2].members[0].address;
        let chain = |spec: &[(u64, u8)]| -> Vec<AnyBlock> {
            let mut prev = Hash::ZERO;
            let mut out = Vec::new();
            for (i, (epoch, salt)) in spec.iter().enumerate() {
                let block = AnyBlock::Relay(RelayBlock {
                    header: RelayHeader {
                        lane,
                        height: i as u64 + 1,
                        prev,
                        epoch: *epoch,
                        relay: candidate,
                        time: u64::from(*salt),
                        urgency: Default::default(),
                        registry: Default::default(),
                        blocks_root: Hash::ZERO,
                        records_root: Hash::ZERO,
                        lane_heads: Vec::new(),
                    },
                    blocks: Vec::new(),
                    records: Vec::new(),
                    signature: ieschain_core::Signature([0; 64]),
                });
                prev = block.hash();
                out.push(block);
            }
            out
        };
        let store = ieschain_storage::MemoryStore::new(federation.genesis.clone());
        for block in chain(released) {
            store.append(other, &block).unwrap();
        }
        for block in chain(at_candidate) {
            store.append(candidate, &block).unwrap();
        }
        forks(&store)
    }

    #[test]
    fn a_candidates_superseded_blocks_are_no_fork_and_a_lane_going_on_past_one_is() {
        // The config block of epoch 2 at height 3, superseded before its activation by
        // epoch 3, which read the lane from epoch 1 (its last active configuration), found
        // an epoch-1 block at height 3, and put its config block at 4 (overload test, 1 run
        // in 100 before the rule looked above the height).
        assert_eq!(
            lane_forks(&[(1, 0), (1, 0), (1, 0), (3, 0)], &[(1, 0), (1, 0), (2, 1)]),
            Vec::<String>::new()
        );
        // A deposed relay's unreleased block of epoch 1 where epoch 3's config block is.
        assert_eq!(
            lane_forks(&[(1, 0), (1, 0), (3, 0)], &[(1, 0), (1, 0), (1, 1)]),
            Vec::<String>::new()
        );
        // No newer configuration at or above it: the lane went on in epoch 1 past a block
        // of epoch 2, which no correct run does.
        let forks = lane_forks(&[(1, 0), (1, 0), (1, 0), (1, 0)], &[(1, 0), (1, 0), (2, 1)]);
        assert_eq!(forks.len(), 1, "{forks:?}");
        assert!(forks[0].contains("forks at height 3"), "{forks:?}");
        // The same epoch, another block: a fork.
        assert_eq!(
            lane_forks(&[(1, 0), (1, 0), (1, 0), (2, 0)], &[(1, 0), (1, 0), (2, 1)]).len(),
            1
        );
    }

    #[test]
    fn l1_exempts_a_take_over_stalled_on_a_source_that_is_down() {
        let run = |restart_c: bool| {
            let mut checker = Invariants::new();
            checker.crashed(C, 100);
            if restart_c {
                checker.restarted(C);
            }
            checker.crashed(A, 5_000);
            checker.relay_crashed(L0, 2, A, 5_000);
            checker.observe(&Event::Stalled {
                lane: L0,
                epoch: 3,
                relay: B,
                waiting_for: vec![C],
                at: 5_700,
            });
            checker.observe(&took_over(3, B, (0, 0), 9_000));
            checker.failovers(900);
            checker
        };
        let down = run(false);
        assert!(down.broken().is_empty(), "{:?}", down.broken());
        assert_eq!(down.l1_exempt().len(), 1);
        assert!(down.l1_exempt()[0].contains("stalled"));
        let up = run(true);
        assert_eq!(names(&up), ["L1"]);
        assert!(up.l1_exempt().is_empty());
    }
}
