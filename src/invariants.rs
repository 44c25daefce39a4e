//! The invariant checker of simulations (SPEC §9).
//!
//! It checks incrementally, after every event a node emits, against what that node holds
//! (each `Committed` event is one node's own view of one block), and once more in full at
//! the end of a run, against every node's store:
//!
//! - **S1 one writer per lane:** for each lane and epoch, at most one node produces blocks.
//!   Fencing (SPEC §5, §12 D3), across nodes: no relay seals a block after a newer epoch of
//!   its lane was elected (a produced block holding a record created after that election),
//!   and once a newer epoch's first block is committed, no node commits an older epoch's
//!   block above its cut-off.
//! - **S2 no fork:** no node holds two different blocks at the same height of a lane; no two
//!   nodes commit different blocks at one height of a lane in one epoch; and at the end the
//!   live relays' copies of every lane agree.
//! - **S3 no loss:** once faults heal, every acknowledged consortium block is in the relay
//!   chain of every live relay, exactly once (Jepsen's set checker: acknowledged but absent
//!   is lost; unacknowledged writes may appear or not).
//! - **S3 (D4) acknowledged means replicated:** an acknowledgement means the block is
//!   durable at the relay and at the backup (SPEC §12 D4). So when a member hears its
//!   block (author, height) acknowledged by the relay of epoch e, one of epoch e's backups
//!   (or the author, if it is one) has already stored it: `Stored`, which a relay or
//!   backup emits for every member block it stores (submitted, replicated, parked behind a
//!   gap and stored later, or synced); a node keeps what it stored, across epochs and
//!   restarts. Every backup the epoch has had counts: one lost within its epoch may have
//!   confirmed what is acknowledged after its replacement, and a late acknowledgement of
//!   an older epoch is judged against that epoch's backups. Not judged: an epoch some
//!   election of which drew no backup. Only then is the relay degraded and acknowledges on
//!   its own sync; a repeated acknowledgement (D9) repeats that reply, and one sent before
//!   the relay heard of a new backup may arrive after. A relay with a backup replicates
//!   and waits even while a new backup catches up (README, "Degraded mode only without a
//!   backup"), so a `Degraded` of an epoch with a backup exempts nothing. Judged when the
//!   member hears it, later than the relay sent it, so a relay that waited is never
//!   blamed. (S3 at the end cannot see an early acknowledgement once a new relay recovers
//!   the block from its author at take-over.)
//! - **S4 valid chains** and **S5 verifiable elections:** a full `verify` of every chain of
//!   every node, which recomputes every election.
//! - **S6 trades:** checked at the end of a run by [`crate::audit::trades`], on every
//!   node's copy of the relay chain.
//! - **S7 durability:** checked by the process-kill tests, not inside a simulation.
//! - **L1 failover:** after a relay crash, a new relay takes over within
//!   `(suspect_after + 1) × heartbeat_interval` plus 3 network delays (SPEC §12 D10),
//!   unless no candidate is left and the consortium is reported cut off (SPEC §5). The
//!   bound presumes the crash is the only fault on that consortium while the failover
//!   runs: a crash is exempt when another fault (a crash, a pause or a partition the
//!   simulation reports with [`Invariants::fault`]) touches the consortium's relay
//!   candidates within the bound of it, before or after.
//! - **L2 / L3 latency:** in the second half of the liveness phase (faults healed, the
//!   federation settled), an urgent record reaches every lane's relay within two
//!   heartbeats, and a non-urgent one within `member_max_wait + max_wait` plus two
//!   heartbeats; a record still on its way at the end, past its bound, breaks them too.
//!   With no network delay left, SPEC §12 D10's two round trips and three synced writes
//!   take no virtual time: the slack covers the actors' clock ticks and a rotation's
//!   take-over, which may wait a heartbeat for the other relays' lane heads.
//! - **L4 join:** every join run (the newcomer's step 1) ends with `JoinDone` or
//!   `JoinFailed` for that newcomer within the protocols' deadline plus a slack, and a
//!   `JoinFailed` says why (a non-empty reason). A join started less than that before the
//!   end of the run is exempt. On once the simulation calls [`Invariants::check_joins`].

use std::collections::{BTreeMap, BTreeSet};

use ieschain_core::node::{Event, Protocol, RecordStamp};
use ieschain_core::{Address, AnyBlock, ChainId, ConsortiumId, Hash};
use ieschain_storage::ChainStore;

/// A block committed somewhere: its hash, its epoch, the first node that committed it.
type Commit = (Hash, u64, Address);

/// The checker's state.
#[derive(Debug, Default)]
pub struct Invariants {
    writers: BTreeMap<(ConsortiumId, u64), Address>,
    blocks: BTreeMap<(Address, ConsortiumId, u64), Hash>,
    /// Every block committed anywhere, by (lane, height): its hash, epoch, first holder.
    lanes: BTreeMap<(ConsortiumId, u64), Vec<Commit>>,
    /// Per (lane, epoch): the height of the epoch's first block, once some node committed
    /// it. Its `prev` is the epoch's cut-off (SPEC §12 D3).
    epoch_starts: BTreeMap<(ConsortiumId, u64), u64>,
    /// Per (lane, epoch): when the supervisor elected it (SPEC §5: only once the previous
    /// relay's lease has surely expired, on a failover; after it stopped, on a rotation).
    elected_at: BTreeMap<(ConsortiumId, u64), u64>,
    acked: BTreeMap<(Address, u64), u64>,
    /// Per (lane, epoch), for S3 (D4): the backups its elections drew.
    backups: BTreeMap<(ConsortiumId, u64), EpochBackups>,
    /// For S3 (D4): the member blocks (node, author, height) each relay or backup stored.
    held: BTreeSet<(Address, Address, u64)>,
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
    /// Who relays and backs up each lane, from the elections (for L2, L3).
    serving: BTreeMap<ConsortiumId, (Address, Option<Address>)>,
    /// L2/L3, once the liveness phase has settled.
    latency: Option<Latency>,
    /// The latest event time seen.
    now: u64,
    broken: Vec<String>,
}

/// The backups of one epoch of a lane, for S3 (D4).
#[derive(Debug, Default)]
struct EpochBackups {
    /// Every backup drawn for the epoch, in order (a backup lost keeps the epoch).
    drawn: Vec<Address>,
    /// The latest one, if any.
    current: Option<Address>,
    /// Some election of the epoch drew no backup.
    unbacked: bool,
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

    fn fail(&mut self, name: &str, detail: String) {
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
            self.fail("L4", line);
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
                ("L2", Some(latency.urgent_ms), &mut latency.worst.0)
            } else {
                ("L3", latency.normal_ms, &mut latency.worst.1)
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
        match event {
            Event::Committed {
                node,
                lane,
                height,
                hash,
                epoch,
                produced,
                records,
                at,
                ..
            } => {
                if *produced {
                    // The block was sealed no earlier than its newest record was created.
                    let sealed = records.iter().map(|r| r.created_at).max();
                    self.sealed_after_deposition(*node, *lane, *height, *epoch, sealed);
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
                self.fencing(*node, *lane, *height, *hash, *epoch, *produced);
                self.arrived(*node, records, *at);
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
                member,
                consortium,
                height,
                relay,
                epoch,
                at,
                ..
            } => {
                self.acked.entry((*member, *height)).or_insert(*at);
                self.replicated_before_ack(*member, *consortium, *height, *relay, *epoch);
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
                at,
                ..
            } => self.took_over.push((*consortium, *epoch, *at)),
            Event::CutOff { consortium, at } => self.cut_off.push((*consortium, *at)),
            Event::Elected {
                consortium,
                epoch,
                relay,
                backup,
                at,
                ..
            } => {
                self.elected_at.entry((*consortium, *epoch)).or_insert(*at);
                self.serving.insert(*consortium, (*relay, *backup));
                let backups = self.backups.entry((*consortium, *epoch)).or_default();
                backups.current = *backup;
                match backup {
                    Some(b) if !backups.drawn.contains(b) => backups.drawn.push(*b),
                    Some(_) => {}
                    None => backups.unbacked = true,
                }
            }
            _ => {}
        }
    }

    /// S3 (D4) for one acknowledgement heard by `member`: block `height` of its lane,
    /// acknowledged by `relay` of `lane`'s epoch `epoch`. Unless the epoch has been without a
    /// backup, one of its backups holds the block already (see the module docs).
    fn replicated_before_ack(
        &mut self,
        member: Address,
        lane: ConsortiumId,
        height: u64,
        relay: Address,
        epoch: u64,
    ) {
        let Some(backups) = self.backups.get(&(lane, epoch)) else {
            return;
        };
        if backups.unbacked {
            return;
        }
        let held = backups
            .drawn
            .iter()
            .any(|b| *b == member || self.held.contains(&(*b, member, height)));
        if held {
            return;
        }
        let backup = backups
            .current
            .map_or_else(|| "none".to_string(), |b| b.short());
        self.fail(
            "S3 (D4)",
            format!(
                "block {}#{height} acknowledged by relay {} in epoch {epoch} of lane {lane} before its backup {backup} held it",
                member.short(),
                relay.short()
            ),
        );
    }

    /// The cross-node checks of one committed block: fencing (S1) and no fork within an
    /// epoch (S2).
    ///
    /// - **S1 fencing (SPEC §5, §12 D3).** Once a block of epoch e' has been committed on a
    ///   lane (by anyone), its `prev` is the cut-off: no node commits a block of an older
    ///   epoch above it from then on. A relay produces only under a lease, and the
    ///   supervisor elects its successor only once that lease has surely expired, so a
    ///   correct deposed relay stops producing before its successor starts; every node
    ///   rejects a relay block older than the newest election it knows. A deposed relay may
    ///   keep a block above the cut-off that it committed *before* the successor's first
    ///   block (D3; it is rolled back or never taken up), so only later commits count.
    /// - **S2 across nodes.** Two nodes never commit different blocks at one height of a
    ///   lane in the same epoch. (Blocks of different epochs at one height are a deposed
    ///   relay's leftover above the cut-off, which fencing judges.)
    fn fencing(
        &mut self,
        node: Address,
        lane: ConsortiumId,
        height: u64,
        hash: Hash,
        epoch: u64,
        produced: bool,
    ) {
        let newer = self
            .epoch_starts
            .range((lane, epoch + 1)..=(lane, u64::MAX))
            .find(|(_, start)| **start <= height)
            .map(|((_, e), start)| (*e, *start));
        if let Some((newer, start)) = newer {
            let how = if produced { "produced" } else { "accepted" };
            self.fail(
                "S1",
                format!(
                    "node {} {how} lane {lane} height {height} of epoch {epoch} after epoch {newer} cut the lane off at height {}",
                    node.short(),
                    start - 1
                ),
            );
        }
        self.epoch_starts.entry((lane, epoch)).or_insert(height);
        let seen = self.lanes.entry((lane, height)).or_default();
        if seen.iter().any(|(h, _, _)| *h == hash) {
            return;
        }
        let fork = seen
            .iter()
            .find(|(_, e, _)| *e == epoch)
            .map(|(h, _, n)| (*h, *n));
        seen.push((hash, epoch, node));
        if let Some((other, holder)) = fork {
            self.fail(
                "S2",
                format!(
                    "lane {lane} height {height} epoch {epoch} forked: {} at {} and {} at {}",
                    other.short(),
                    holder.short(),
                    hash.short(),
                    node.short()
                ),
            );
        }
    }

    /// S1 fencing by lease (SPEC §12 D3): a relay seals blocks only under its lease, and the
    /// supervisor elects a newer epoch only once that lease has surely expired (failover) or
    /// the relay has stopped (rotation). So a produced block of epoch e that holds a record
    /// created after an election of a newer epoch of its lane was sealed by a deposed relay.
    /// (Its commit may come later than the election: a block sealed in time waits for the
    /// backup's confirmation. Its records' creation times cannot.)
    fn sealed_after_deposition(
        &mut self,
        node: Address,
        lane: ConsortiumId,
        height: u64,
        epoch: u64,
        sealed: Option<u64>,
    ) {
        let Some(sealed) = sealed else {
            return;
        };
        let deposed = self
            .elected_at
            .range((lane, epoch + 1)..=(lane, u64::MAX))
            .find(|(_, at)| **at < sealed)
            .map(|((_, e), at)| (*e, *at));
        if let Some((newer, at)) = deposed {
            self.fail(
                "S1",
                format!(
                    "node {} produced lane {lane} height {height} of epoch {epoch} with a record of {sealed}, after epoch {newer} was elected at {at}",
                    node.short()
                ),
            );
        }
    }

    /// Notes that `relay`, the relay of `lane` in `epoch`, was crashed at `at` (for L1).
    /// Report the crash as a [`fault`](Self::fault) too: it is a fault on the consortium
    /// for the other crashes of its relays.
    pub fn relay_crashed(&mut self, lane: ConsortiumId, epoch: u64, relay: Address, at: u64) {
        self.crashes.push((lane, epoch, relay, at));
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
        let stuck: Vec<(&str, Address, u64, u64, usize)> = self
            .latency
            .as_ref()
            .map(|l| {
                l.arrivals
                    .iter()
                    .filter_map(|((author, seq), (created, urgent, lanes))| {
                        let (name, bound) = if *urgent {
                            ("L2", Some(l.urgent_ms))
                        } else {
                            ("L3", l.normal_ms)
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
            // store before its lease ran out, serving its epoch again (its own `TookOver`
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
                "L1",
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
            self.fail("L4", line);
        }
        self.failovers(bound_ms);
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
    use ieschain_core::election::ElectionReason;

    const A: Address = Address([0xa; 20]);
    const B: Address = Address([0xb; 20]);
    const C: Address = Address([0xc; 20]);
    const L0: ConsortiumId = ConsortiumId(0);
    const L1: ConsortiumId = ConsortiumId(1);

    fn elected(lane: ConsortiumId, epoch: u64, relay: Address, at: u64) -> Event {
        Event::Elected {
            consortium: lane,
            epoch,
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

    /// A deposed relay that seals a block holding a record created after its successor's
    /// election breaks S1; the same block sealed before the election (and committed after
    /// it, once the backup confirmed it) does not.
    #[test]
    fn sealing_after_deposition_breaks_s1() {
        let mut checker = Invariants::new();
        checker.observe(&elected(L0, 1, A, 0));
        checker.observe(&elected(L0, 2, B, 1_000));
        checker.observe(&committed(
            A,
            L0,
            5,
            1,
            1,
            true,
            vec![stamp(C, 1, 990, false)],
            1_010,
        ));
        assert!(checker.broken().is_empty(), "{:?}", checker.broken());
        checker.observe(&committed(
            A,
            L0,
            6,
            2,
            1,
            true,
            vec![stamp(C, 2, 1_001, false)],
            1_020,
        ));
        assert_eq!(names(&checker), ["S1"], "{:?}", checker.broken());
    }

    /// Once a newer epoch's first block is committed, an older epoch's block above its
    /// cut-off breaks S1, produced or accepted; one committed before it, or at or below the
    /// cut-off (a final block the backup confirmed, which the successor continues), does not.
    #[test]
    fn committing_above_the_cut_off_breaks_s1() {
        let mut checker = Invariants::new();
        checker.observe(&committed(A, L0, 4, 1, 1, true, vec![], 10));
        checker.observe(&committed(A, L0, 5, 2, 1, true, vec![], 20));
        checker.observe(&committed(B, L0, 5, 2, 1, false, vec![], 20));
        checker.observe(&committed(B, L0, 6, 3, 2, true, vec![], 30));
        checker.observe(&committed(C, L0, 5, 2, 1, false, vec![], 40));
        assert!(checker.broken().is_empty(), "{:?}", checker.broken());
        checker.observe(&committed(C, L0, 6, 4, 1, false, vec![], 50));
        assert_eq!(names(&checker), ["S1"], "{:?}", checker.broken());
    }

    /// Two nodes committing different blocks at one height of a lane in one epoch is a fork
    /// (S2) even though neither node holds both.
    #[test]
    fn different_blocks_at_one_height_and_epoch_break_s2() {
        let mut checker = Invariants::new();
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

    /// S3 (D4): a member hearing its block acknowledged before the epoch's backup stored
    /// it breaks S3; after, it does not, nor when the backup is the author. An epoch that
    /// has been without a backup (degraded: the relay acknowledges on its own sync) is not
    /// judged; one degraded while a new backup catches up is, since the relay waits for it
    /// all the same. A backup replaced within its epoch still counts for what it stored,
    /// and a late acknowledgement of an older epoch is judged against that epoch's backups.
    #[test]
    fn acknowledging_before_the_backup_holds_the_block_breaks_s3() {
        const D: Address = Address([0xd; 20]);
        const E: Address = Address([0xe; 20]);
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

        // Degraded with a backup (a new one catching up): the relay still waits for it.
        let mut catching_up = Invariants::new();
        catching_up.observe(&elected_with(1, A, Some(B), 0));
        catching_up.observe(&Event::Degraded {
            consortium: L0,
            epoch: 1,
            why: "new backup catching up".into(),
        });
        catching_up.observe(&acked(C, 1, A, 1, 5));
        assert_eq!(
            names(&catching_up),
            ["S3 (D4)"],
            "{:?}",
            catching_up.broken()
        );

        // No backup, degraded: the relay acknowledges on its own sync; with one drawn later
        // in the epoch, an acknowledgement sent before the relay heard of it may still
        // arrive. Another epoch or lane without a backup exempts nothing.
        let mut alone = Invariants::new();
        alone.observe(&elected_with(1, A, None, 0));
        alone.observe(&elected_with(2, B, Some(C), 0));
        alone.observe(&elected(L1, 1, D, 0));
        alone.observe(&Event::Degraded {
            consortium: L0,
            epoch: 1,
            why: "acknowledging without a caught-up backup".into(),
        });
        alone.observe(&acked(C, 1, A, 1, 5));
        alone.observe(&elected_with(1, A, Some(B), 10));
        alone.observe(&acked(C, 2, A, 1, 12));
        assert!(alone.broken().is_empty(), "{:?}", alone.broken());
        alone.observe(&acked(E, 1, B, 2, 13));
        assert_eq!(names(&alone), ["S3 (D4)"], "{:?}", alone.broken());

        // A backup lost after it stored the block, the acknowledgement heard after; an
        // older epoch's acknowledgement heard after a newer election.
        let mut replaced = Invariants::new();
        replaced.observe(&elected_with(1, A, Some(B), 0));
        replaced.observe(&stored(B, C, 1, 5));
        replaced.observe(&elected_with(1, A, Some(D), 6));
        replaced.observe(&acked(C, 1, A, 1, 7));
        replaced.observe(&stored(D, C, 2, 8));
        replaced.observe(&elected_with(2, D, Some(E), 9));
        replaced.observe(&acked(C, 2, A, 1, 10));
        assert!(replaced.broken().is_empty(), "{:?}", replaced.broken());
        // The newer epoch's backup E has not stored block 2: its relay D may not ack it.
        replaced.observe(&acked(C, 2, D, 2, 11));
        assert_eq!(names(&replaced), ["S3 (D4)"], "{:?}", replaced.broken());
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
            checker.observe(&committed(A, L0, 1, 1, 1, true, vec![], last));
            let overdue = checker.overdue_joins(checker.now);
            for line in overdue {
                checker.fail("L4", line);
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
        off.observe(&committed(A, L0, 1, 1, 1, true, vec![], 30_000));
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
            checker.observe(&Event::TookOver {
                consortium: L0,
                epoch: 2,
                relay: B,
                at: took,
            });
            checker.failovers(900);
            checker
        };
        assert!(run(&[], 5_900).broken().is_empty());
        assert_eq!(names(&run(&[], 5_901)), ["L1"]);
        // The crashed relay, restarted before its lease ran out, serving its epoch again.
        let mut restarted = Invariants::new();
        restarted.relay_crashed(L0, 1, A, 5_000);
        for (epoch, at) in [(1, 5_000), (1, 5_050)] {
            restarted.observe(&Event::TookOver {
                consortium: L0,
                epoch,
                relay: A,
                at,
            });
        }
        restarted.failovers(900);
        assert!(restarted.broken().is_empty(), "{:?}", restarted.broken());
        let mut stale = Invariants::new();
        stale.relay_crashed(L0, 1, A, 5_000);
        stale.observe(&Event::TookOver {
            consortium: L0,
            epoch: 1,
            relay: A,
            at: 5_000,
        });
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
}
