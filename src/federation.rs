//! The federation: built from a [`FederationConfig`] and a data directory, run by actix on
//! threads of its own (the member nodes spread over `runtime.actor_threads` arbiters, the
//! supervisor on the first of them, the host's tasks on one more), and driven through a
//! [`FederationHandle`] (SPEC §10).
//!
//! The handle is `Send` and `Clone`, and usable from any thread or any tokio runtime: its
//! methods are `async` and talk to the actors through their mailboxes, so the host needs
//! no actix of its own. Blocking hosts use [`FederationBuilder::start_blocking`],
//! [`FederationHandle::shutdown_blocking`] and [`FederationHandle::block_on`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), ieschain::federation::FederationError> {
//! use ieschain::config::FederationConfig;
//! use ieschain::federation::Federation;
//! use ieschain_core::record::{Audience, RecordBody};
//!
//! let mut builder = Federation::builder(FederationConfig::four_party())
//!     .data_dir("./ieschain-data")
//!     .seed(1);
//! let mut events = builder.subscribe(); // from the first election on
//! let federation = builder.start().await?;
//! federation.ready().await?; // every consortium lane serves
//! let receipt = federation
//!     .submit("load-school", Audience::Own, RecordBody::MeterReading { meter: 1, wh: 1_500 })
//!     .await?;
//! receipt.committed().await?;
//! federation.shutdown().await?; // flushes storage; `events` ends after what was sent
//! # let _ = events.try_recv();
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use actix::Addr;
use ieschain_actors::clock::{Clock, SystemClock};
use ieschain_actors::messages::{NodeStatus, Status, Write, WriteSigned};
use ieschain_actors::node::NodeActor;
use ieschain_actors::outbox::{EventSink, Outbox};
use ieschain_actors::supervisor::SupervisorActor;
use ieschain_actors::transport::{InProcess, Transport, TransportStats};
use ieschain_actors::workload::{Rates, Workload};
use ieschain_actors::ActorError;
use ieschain_core::election::ElectionReason;
use ieschain_core::genesis::{Directory, Genesis};
use ieschain_core::node::member::SignedRecordError;
use ieschain_core::node::{Event, Timing};
use ieschain_core::record::VerifiedRecord;
use ieschain_core::{
    Address, Audience, ChainId, ConsortiumId, Hash, Keypair, PublicKey, Record, RecordBody,
    RecordKind,
};
use ieschain_storage::{ChainStore, HolderStore, RocksOptions, RocksStore, StoreError};
use thiserror::Error;
use tokio::sync::{broadcast, oneshot, watch, OwnedSemaphorePermit, Semaphore, TryAcquireError};

use crate::config::{ConfigError, FederationConfig, Keys, RuntimeConfig, SuppliedKeys};

mod hooks;
mod placement;
mod protocols;
mod receipts;

pub(crate) use placement::Placement;

pub(crate) use protocols::{
    drive as drive_protocols, newcomer as newcomer_parts, ProtocolRates, Starter,
};
pub use protocols::{DataOutcome, JoinOutcome, JoinSpec, TradeOutcome};
pub use receipts::{Progress, Receipt};

/// How many events a subscriber may fall behind before it misses some.
pub const EVENT_BUFFER: usize = 65_536;

/// Why a federation could not start or act.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FederationError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory could not be opened or written.
    #[error("data directory: {0}")]
    Store(#[from] StoreError),
    /// No member has that name.
    #[error("no member named {0}")]
    UnknownMember(String),
    /// No consortium has that name.
    #[error("no consortium named {0}")]
    UnknownConsortium(String),
    /// The member's node is crashed or stopped.
    #[error("member {0} is not running")]
    NotRunning(String),
    /// The member is running already.
    #[error("member {0} is already running")]
    AlreadyRunning(String),
    /// The member has as many records in flight as the federation allows
    /// ([`FederationBuilder::max_in_flight`]); `try_submit` does not wait.
    #[error("member {member} has {limit} records in flight, the most allowed")]
    Busy {
        /// The member.
        member: String,
        /// Its bound.
        limit: usize,
    },
    /// The member's node refused the request.
    #[error("member {member} refused: {reason}")]
    Refused {
        /// The member.
        member: String,
        /// Why.
        reason: String,
    },
    /// The member crashed before the record was acknowledged (see
    /// [`Progress::Interrupted`]).
    #[error("member {member} crashed before record {seq} was acknowledged")]
    Interrupted {
        /// The member.
        member: String,
        /// The record's seq.
        seq: u64,
    },
    /// The federation has shut down, or is shutting down.
    #[error("the federation has stopped")]
    Stopped,
    /// The actor thread could not be started.
    #[error("starting the actor thread: {0}")]
    Thread(#[source] std::io::Error),
    /// A protocol run failed: refused, rejected, disputed, or past its deadline inside the
    /// federation.
    #[error("{protocol} failed: {reason}")]
    Protocol {
        /// Which protocol.
        protocol: &'static str,
        /// Why, naming the member or the check.
        reason: String,
    },
    /// The caller's deadline passed before the run's outcome.
    #[error("no outcome by the deadline: {0}")]
    Timeout(String),
    /// A record signed before submission names an author that is no member of this
    /// federation ([`FederationHandle::submit_signed`]).
    #[error("record by {0}: no member of this federation has that address")]
    UnknownAuthor(Address),
    /// A record signed before submission does not verify under its author's key.
    #[error("record by {member} seq {seq}: the signature does not verify")]
    BadSignature {
        /// The author.
        member: String,
        /// The record's seq.
        seq: u64,
    },
    /// A record signed before submission reuses a seq at or below its author's last
    /// (SPEC §4.2: seqs strictly increase; [`FederationHandle::last_seq`]).
    #[error("record by {member}: replayed seq {seq}, the member's last seq is {last}")]
    Replay {
        /// The author.
        member: String,
        /// The record's seq.
        seq: u64,
        /// The member's last seq.
        last: u64,
    },
}

/// Builds a [`Federation`].
#[derive(Debug)]
pub struct FederationBuilder {
    config: FederationConfig,
    data_dir: PathBuf,
    seed: Option<u64>,
    workload: bool,
    sync: bool,
    keys: SuppliedKeys,
    max_in_flight: usize,
    /// Overrides the configuration's `runtime.shared_verification`.
    shared_verification: Option<bool>,
    /// Overrides the configuration's `runtime.actor_threads`.
    actor_threads: Option<usize>,
    /// The event stream, made early when a host subscribed before the start.
    events: Option<broadcast::Sender<Event>>,
}

/// How many records a member may have in flight through the handle by default.
pub const MAX_IN_FLIGHT: usize = 1_024;

impl FederationBuilder {
    /// A stream of the federation's events from its very start: the initial elections and
    /// take-overs included, which a subscription made after [`FederationBuilder::start`]
    /// may miss. It ends when the federation shuts down.
    pub fn subscribe(&mut self) -> broadcast::Receiver<Event> {
        self.events
            .get_or_insert_with(|| broadcast::channel(EVENT_BUFFER).0)
            .subscribe()
    }

    /// Where the federation's RocksDB lives (default `./ieschain-data`).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = dir.into();
        self
    }

    /// The seed of keys and workload (default: the configuration's).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Whether members generate the configured workload (default on).
    pub fn workload(mut self, on: bool) -> Self {
        self.workload = on;
        self
    }

    /// Whether appends are fsynced (default on; tests of logic may turn it off).
    pub fn sync(mut self, on: bool) -> Self {
        self.sync = on;
        self
    }

    /// The key of member `name`, instead of the one derived from the seed. The data
    /// directory remembers the genesis: a directory made with other keys is refused.
    pub fn member_key(mut self, name: impl Into<String>, key: Keypair) -> Self {
        self.keys.members.insert(name.into(), key);
        self
    }

    /// The supervisor's key, instead of the one derived from the seed.
    pub fn supervisor_key(mut self, key: Keypair) -> Self {
        self.keys.supervisor = Some(key);
        self
    }

    /// How many records each member may have in flight through
    /// [`FederationHandle::submit`] before it waits (and `try_submit` answers
    /// [`FederationError::Busy`]): submitted and not yet committed (default
    /// [`MAX_IN_FLIGHT`]; at least 1).
    pub fn max_in_flight(mut self, records: usize) -> Self {
        self.max_in_flight = records.max(1);
        self
    }

    /// Whether the nodes share a memo of the signatures that passed (default: the
    /// configuration's `runtime.shared_verification`, on unless it says otherwise). Off,
    /// each node checks every signature it takes, as on a machine of its own.
    pub fn shared_verification(mut self, on: bool) -> Self {
        self.shared_verification = Some(on);
        self
    }

    /// How many threads run the member nodes (default: the configuration's
    /// `runtime.actor_threads`, one per core unless it says otherwise; at least 1). The
    /// supervisor shares the first; the host's tasks run on one more.
    pub fn actor_threads(mut self, threads: usize) -> Self {
        self.actor_threads = Some(threads.clamp(1, usize::from(RuntimeConfig::MAX_ACTOR_THREADS)));
        self
    }

    /// Opens the data directory and starts every actor on a thread of its own. The
    /// directory is opened on that thread, so the future never blocks its executor.
    pub async fn start(self) -> Result<FederationHandle, FederationError> {
        Federation::start(self).await
    }

    /// [`FederationBuilder::start`] for hosts without an async runtime.
    pub fn start_blocking(self) -> Result<FederationHandle, FederationError> {
        pollster::block_on(self.start())
    }
}

/// A federation: namespace of [`Federation::builder`].
#[derive(Debug)]
pub struct Federation;

struct NodeEntry {
    name: String,
    consortium: ConsortiumId,
    /// Its public key: a record signed before submission is checked against it.
    public_key: PublicKey,
    addr: Option<Addr<NodeActor>>,
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    incarnation: u32,
}

struct Started {
    system: actix::System,
    arbiter: actix::ArbiterHandle,
    nodes: BTreeMap<Address, Addr<NodeActor>>,
    parts: Arc<Parts>,
}

/// A started federation on its way to the host's `start` future. If that future is
/// dropped before it takes it (a host's timeout), the guard stops the actor system, so
/// that nothing keeps running with no handle to stop it.
struct StartGuard(Option<Started>);

impl StartGuard {
    fn take(mut self) -> Option<Started> {
        self.0.take()
    }
}

impl Drop for StartGuard {
    fn drop(&mut self) {
        if let Some(started) = self.0.take() {
            started.system.stop();
        }
    }
}

/// What the federation shares with its actors to build (and rebuild) nodes.
pub(crate) struct Parts {
    pub(crate) genesis: Arc<Genesis>,
    pub(crate) directory: Arc<Directory>,
    pub(crate) keys: Keys,
    pub(crate) timing: Timing,
    pub(crate) rates: Rates,
    pub(crate) workload: bool,
    /// Grid members' line capacities, Wh per slot.
    pub(crate) lines: BTreeMap<Address, u64>,
    pub(crate) seed: u64,
    pub(crate) store: Arc<dyn ChainStore>,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) sink: EventSink,
    /// Where member nodes run: the node threads of a live process, or the current thread.
    pub(crate) placement: Placement,
}

impl Parts {
    pub(crate) fn node(
        &self,
        key: Keypair,
        consortium: ConsortiumId,
        incarnation: u32,
    ) -> NodeActor {
        let address = key.address();
        let outbox = Outbox::new(
            key,
            incarnation,
            HolderStore::new(self.store.clone(), address),
            self.transport.clone(),
            self.clock.clone(),
            self.sink.clone(),
        );
        let workload = self.workload.then(|| {
            Workload::new(
                self.rates.clone(),
                self.seed ^ incarnation as u64,
                address,
                self.genesis.consortiums.len() as u16,
            )
        });
        NodeActor::new(
            outbox,
            consortium,
            self.genesis.clone(),
            self.directory.clone(),
            self.timing,
            workload,
        )
        .with_line(self.lines.get(&address).copied())
    }

    /// A newcomer's node (SPEC §6.1): no workload of its own.
    pub(crate) fn newcomer(&self, key: Keypair, consortium: ConsortiumId) -> NodeActor {
        let address = key.address();
        let outbox = Outbox::new(
            key,
            0,
            HolderStore::new(self.store.clone(), address),
            self.transport.clone(),
            self.clock.clone(),
            self.sink.clone(),
        );
        NodeActor::new(
            outbox,
            consortium,
            self.genesis.clone(),
            self.directory.clone(),
            self.timing,
            None,
        )
    }
}

struct Inner {
    system: actix::System,
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    network: Arc<InProcess>,
    arbiter: actix::ArbiterHandle,
    nodes: Mutex<BTreeMap<Address, NodeEntry>>,
    names: BTreeMap<String, Address>,
    /// Newcomers started by [`FederationHandle::join`].
    newcomers: Mutex<BTreeMap<String, Address>>,
    parts: Arc<Parts>,
    /// The one sender of the event stream; taken (dropped) at shutdown, which ends every
    /// subscriber's stream once it has read what was sent before.
    events: Arc<Mutex<Option<broadcast::Sender<Event>>>>,
    stats: Arc<Mutex<Collector>>,
    /// Whether every lane serves (see [`FederationHandle::ready`]).
    ready: watch::Receiver<bool>,
    /// Set by the actor thread once its actors stopped and the store is flushed.
    done: watch::Receiver<bool>,
    /// A failed flush at shutdown, for `shutdown` to report.
    flush_error: Arc<Mutex<Option<StoreError>>>,
    /// Each member's in-flight slots.
    slots: Mutex<BTreeMap<Address, receipts::Slots>>,
    max_in_flight: usize,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// The host's handle on a running federation: `Send`, `Clone`, usable from any thread.
#[derive(Clone)]
pub struct FederationHandle {
    inner: Arc<Inner>,
}

/// A handle that does not keep the federation alive: what the federation's own tasks hold
/// (the protocol workload), so that dropping the host's last handle shuts it down.
#[derive(Clone, Debug)]
pub(crate) struct WeakHandle(std::sync::Weak<Inner>);

impl WeakHandle {
    /// The handle, while a host still holds one.
    pub(crate) fn upgrade(&self) -> Option<FederationHandle> {
        self.0.upgrade().map(|inner| FederationHandle { inner })
    }
}

impl Drop for Inner {
    /// The last handle is gone: stop the actors and flush, as `shutdown` does (nothing
    /// to do when it ran). On the actor thread itself (a task held the last handle) the
    /// thread is told to stop and is not waited for.
    fn drop(&mut self) {
        self.system.stop();
        let thread = self.thread.get_mut().ok().and_then(Option::take);
        if let Some(thread) = thread {
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
        if let Ok(mut events) = self.events.lock() {
            events.take();
        }
        if let Err(e) = self.parts.store.flush() {
            log::error!("flushing the store as the last handle was dropped: {e}");
        }
    }
}

impl std::fmt::Debug for FederationHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FederationHandle")
            .field("members", &self.inner.names.len())
            .finish()
    }
}

impl Federation {
    /// A builder for a federation of `config`.
    pub fn builder(config: FederationConfig) -> FederationBuilder {
        FederationBuilder {
            seed: None,
            config,
            data_dir: PathBuf::from("ieschain-data"),
            workload: true,
            sync: true,
            keys: SuppliedKeys::default(),
            max_in_flight: MAX_IN_FLIGHT,
            shared_verification: None,
            actor_threads: None,
            events: None,
        }
    }

    async fn start(builder: FederationBuilder) -> Result<FederationHandle, FederationError> {
        let config = builder.config;
        config.check()?;
        let seed = builder.seed.unwrap_or(config.seed);
        let (genesis, keys) = config.genesis_with(seed, &builder.keys)?;
        let timing = config.machine_timing();
        let rates = Rates {
            per_kind: config.workload.records.generated(),
        };
        let events = builder
            .events
            .unwrap_or_else(|| broadcast::channel(EVENT_BUFFER).0);
        let events = Arc::new(Mutex::new(Some(events)));
        let (ready_tx, ready) = watch::channel(false);
        let stats = Arc::new(Mutex::new(Collector::new(
            genesis.consortiums.len(),
            ready_tx,
        )));
        let sink: EventSink = {
            let events = events.clone();
            let stats = stats.clone();
            // Under the statistics' lock, the event goes into the stream first and is
            // counted second: a host woken by `ready` or a receipt finds the event that
            // woke it in its stream, and one that read an event finds it in `stats()`.
            Arc::new(move |event: &Event| {
                let mut stats = stats.lock();
                if let Ok(events) = events.lock() {
                    if let Some(events) = events.as_ref() {
                        let _ = events.send(event.clone());
                    }
                }
                if let Ok(stats) = stats.as_mut() {
                    stats.observe(event);
                }
            })
        };
        let directory = Arc::new(Directory::from_genesis(&genesis));
        let network = Arc::new(InProcess::new());
        let lines = config.line_capacities(&keys);
        let mut members: Vec<(String, ConsortiumId, Keypair)> = Vec::new();
        for c in &genesis.consortiums {
            for m in &c.members {
                let Some(key) = keys.by_address(&m.address) else {
                    continue;
                };
                members.push((m.name.clone(), c.id, key.clone()));
            }
        }
        let genesis = Arc::new(genesis);
        // Everything that may block (opening RocksDB, reading the supervisor's chain)
        // happens on the actor thread; this future only awaits its answer.
        let (started_tx, started_rx) = oneshot::channel::<Result<StartGuard, FederationError>>();
        let (done_tx, done) = watch::channel(false);
        let flush_error: Arc<Mutex<Option<StoreError>>> = Arc::default();
        let thread = {
            let data_dir = builder.data_dir.clone();
            let sync = builder.sync;
            let workload = builder.workload;
            let network = network.clone();
            let events = events.clone();
            let stats = stats.clone();
            let flush_error = flush_error.clone();
            let members = members.clone();
            let genesis = genesis.clone();
            let shared_verification = builder
                .shared_verification
                .unwrap_or(config.runtime.shared_verification);
            let threads = builder
                .actor_threads
                .unwrap_or_else(|| config.runtime.node_threads());
            std::thread::Builder::new()
                .name("ieschain-actix".into())
                .spawn(move || {
                    // With the memo, a signature one node checked is not checked again by
                    // the next, on whichever node thread it runs (`[runtime]`).
                    let memo =
                        shared_verification.then(ieschain_core::crypto::VerificationMemo::start);
                    let opened = RocksStore::open(&data_dir, &genesis, RocksOptions { sync })
                        .map_err(FederationError::from)
                        .and_then(|store| {
                            // A reopened directory: no `Elected` event repeats the elections
                            // already made, so who serves comes from the supervisor's chain.
                            let serving = recovered_elections(&store, keys.supervisor.address())?;
                            Ok((store, serving))
                        });
                    let (store, serving) = match opened {
                        Ok(opened) => opened,
                        Err(e) => {
                            let _ = started_tx.send(Err(e));
                            return;
                        }
                    };
                    if let Ok(mut stats) = stats.lock() {
                        stats.serving = serving;
                    }
                    let store: Arc<dyn ChainStore> = Arc::new(store);
                    // The host's tasks run on this thread, the member nodes and the
                    // supervisor on `threads` arbiters of their own (issue 12).
                    let system = actix::System::new();
                    let leads = genesis
                        .consortiums
                        .iter()
                        .flat_map(|c| c.members.iter())
                        .filter(|m| m.relay_capable)
                        .map(|m| m.address)
                        .collect();
                    let (placement, arbiters) = Placement::spawn(
                        threads,
                        memo.as_ref()
                            .map(ieschain_core::crypto::VerificationMemo::share),
                        leads,
                        members.len(),
                    );
                    let parts = Arc::new(Parts {
                        genesis,
                        directory,
                        keys,
                        timing,
                        rates,
                        workload,
                        lines,
                        seed,
                        store,
                        transport: network,
                        clock: Arc::new(SystemClock),
                        sink,
                        placement,
                    });
                    let started = system.block_on(start_actors(parts.clone(), members));
                    // The guard stops the system if the host's `start` future is gone,
                    // whether before this send or after it, before taking the guard.
                    if started_tx.send(Ok(StartGuard(Some(started)))).is_ok() {
                        let _ = system.run();
                    }
                    for arbiter in arbiters {
                        arbiter.stop();
                        if arbiter.join().is_err() {
                            log::error!("a node thread panicked");
                        }
                    }
                    // No actor runs any more: dropping the one sender ends every stream,
                    // and whatever waits on the collector learns that it stopped.
                    if let Ok(mut events) = events.lock() {
                        events.take();
                    }
                    if let Ok(mut stats) = stats.lock() {
                        stats.close();
                    }
                    if let Err(e) = parts.store.flush() {
                        log::error!("flushing the store at shutdown: {e}");
                        if let Ok(mut slot) = flush_error.lock() {
                            *slot = Some(e);
                        }
                    }
                    let _ = done_tx.send(true);
                })
                .map_err(FederationError::Thread)?
        };
        let started = match started_rx.await {
            Ok(started) => started?.take(),
            Err(_) => None,
        };
        let Some(started) = started else {
            let _ = thread.join();
            return Err(FederationError::Stopped);
        };
        let mut nodes = BTreeMap::new();
        let mut names = BTreeMap::new();
        for (name, consortium, key) in members {
            let address = key.address();
            names.insert(name.clone(), address);
            nodes.insert(
                address,
                NodeEntry {
                    name,
                    consortium,
                    public_key: key.public(),
                    addr: started.nodes.get(&address).cloned(),
                    incarnation: 0,
                },
            );
        }
        let handle = FederationHandle {
            inner: Arc::new(Inner {
                system: started.system,
                network,
                arbiter: started.arbiter,
                nodes: Mutex::new(nodes),
                names,
                newcomers: Mutex::new(BTreeMap::new()),
                parts: started.parts,
                events,
                stats,
                ready,
                done,
                flush_error,
                slots: Mutex::new(BTreeMap::new()),
                max_in_flight: builder.max_in_flight,
                thread: Mutex::new(Some(thread)),
            }),
        };
        if builder.workload {
            let rates = protocols::ProtocolRates {
                join: config.workload.protocols.join,
                power: config.workload.protocols.power_purchase,
                data: config.workload.protocols.data_trade,
            };
            let parts = handle.inner.parts.clone();
            handle.inner.arbiter.spawn(protocols::drive(
                WeakHandle(Arc::downgrade(&handle.inner)),
                parts,
                rates,
            ));
        }
        Ok(handle)
    }
}

/// Starts the supervisor and every member's node on the current actix system.
async fn start_actors(parts: Arc<Parts>, members: Vec<(String, ConsortiumId, Keypair)>) -> Started {
    let supervisor_outbox = Outbox::new(
        parts.keys.supervisor.clone(),
        0,
        HolderStore::new(parts.store.clone(), parts.keys.supervisor.address()),
        parts.transport.clone(),
        parts.clock.clone(),
        parts.sink.clone(),
    );
    // The supervisor runs until the system stops; nothing needs its address. It shares the
    // first node thread (see `Placement::start_supervisor`).
    let supervisor = SupervisorActor::new(
        supervisor_outbox,
        &parts.genesis,
        parts.directory.clone(),
        parts.timing,
    );
    parts.placement.start_supervisor(supervisor);
    let nodes = members
        .into_iter()
        .filter_map(|(_, consortium, key)| {
            let address = key.address();
            let node = parts
                .placement
                .start(address, parts.node(key, consortium, 0))?;
            Some((address, node))
        })
        .collect();
    Started {
        system: actix::System::current(),
        arbiter: actix::Arbiter::current(),
        nodes,
        parts,
    }
}

impl FederationHandle {
    /// Runs a future of this handle to completion on the calling thread, for hosts
    /// without an async runtime.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        pollster::block_on(future)
    }

    /// How many threads run the member nodes (`runtime.actor_threads`, or
    /// [`FederationBuilder::actor_threads`]); the supervisor shares the first.
    pub fn node_threads(&self) -> usize {
        self.inner.parts.placement.threads()
    }

    /// The genesis record.
    pub fn genesis(&self) -> &Genesis {
        &self.inner.parts.genesis
    }

    /// The address of the member called `name`.
    pub fn address_of(&self, name: &str) -> Result<Address, FederationError> {
        let joined = || {
            self.inner
                .newcomers
                .lock()
                .ok()
                .and_then(|n| n.get(name).copied())
        };
        self.inner
            .names
            .get(name)
            .copied()
            .or_else(joined)
            .ok_or_else(|| FederationError::UnknownMember(name.to_string()))
    }

    /// The name of the member at `address`.
    pub fn name_of(&self, address: &Address) -> String {
        self.inner
            .parts
            .keys
            .name_of(address)
            .map(str::to_string)
            .or_else(|| {
                let newcomers = self.inner.newcomers.lock().ok()?;
                newcomers
                    .iter()
                    .find(|(_, a)| *a == address)
                    .map(|(name, _)| name.clone())
            })
            .unwrap_or_else(|| {
                if *address == self.inner.parts.keys.supervisor.address() {
                    "supervisor".into()
                } else {
                    address.short()
                }
            })
    }

    /// The member names of every consortium, by consortium.
    pub fn members(&self) -> Vec<(ConsortiumId, String)> {
        self.inner
            .nodes
            .lock()
            .map(|nodes| {
                nodes
                    .values()
                    .map(|n| (n.consortium, n.name.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn addr(&self, name: &str) -> Result<Addr<NodeActor>, FederationError> {
        let address = self.address_of(name)?;
        let nodes = self
            .inner
            .nodes
            .lock()
            .map_err(|_| FederationError::Stopped)?;
        nodes
            .get(&address)
            .and_then(|n| n.addr.clone())
            .ok_or_else(|| FederationError::NotRunning(name.to_string()))
    }

    /// Member `address`'s in-flight slots.
    fn slots(&self, address: Address) -> Result<receipts::Slots, FederationError> {
        let mut slots = self
            .inner
            .slots
            .lock()
            .map_err(|_| FederationError::Stopped)?;
        Ok(slots
            .entry(address)
            .or_insert_with(|| Arc::new(Semaphore::new(self.inner.max_in_flight)))
            .clone())
    }

    /// Writes a record as member `name`, once the member has fewer than its bound of
    /// records in flight ([`FederationBuilder::max_in_flight`]): this waits for room.
    /// The [`Receipt`] follows the record until it is committed.
    pub async fn submit(
        &self,
        name: &str,
        audience: Audience,
        body: RecordBody,
    ) -> Result<Receipt, FederationError> {
        let address = self.address_of(name)?;
        let slot = self
            .slots(address)?
            .acquire_owned()
            .await
            .map_err(|_| FederationError::Stopped)?;
        self.write(name, address, audience, body, slot).await
    }

    /// [`FederationHandle::submit`] without waiting for room: [`FederationError::Busy`]
    /// when the member has its bound of records in flight.
    pub async fn try_submit(
        &self,
        name: &str,
        audience: Audience,
        body: RecordBody,
    ) -> Result<Receipt, FederationError> {
        let address = self.address_of(name)?;
        let slot = self
            .slots(address)?
            .try_acquire_owned()
            .map_err(|e| match e {
                TryAcquireError::NoPermits => FederationError::Busy {
                    member: name.to_string(),
                    limit: self.inner.max_in_flight,
                },
                TryAcquireError::Closed => FederationError::Stopped,
            })?;
        self.write(name, address, audience, body, slot).await
    }

    /// Writes `record`, signed by its author before submission (SPEC §12 D8: signing is
    /// the client's work), once the author has room for another record in flight, as
    /// [`FederationHandle::submit`]. Its signature is checked once, here, on the calling
    /// thread, and by no one else in its author's node; its seq must be above the
    /// author's last ([`FederationHandle::last_seq`]). Bad input is a typed error, never a
    /// panic: [`FederationError::UnknownAuthor`], [`FederationError::BadSignature`],
    /// [`FederationError::Replay`].
    pub async fn submit_signed(&self, record: Record) -> Result<Receipt, FederationError> {
        let (name, address, record) = self.verify_signed(record)?;
        let slot = self
            .slots(address)?
            .acquire_owned()
            .await
            .map_err(|_| FederationError::Stopped)?;
        self.write_signed(&name, address, record, slot).await
    }

    /// [`FederationHandle::submit_signed`] without waiting for room:
    /// [`FederationError::Busy`] when the author has its bound of records in flight.
    pub async fn try_submit_signed(&self, record: Record) -> Result<Receipt, FederationError> {
        let (name, address, record) = self.verify_signed(record)?;
        let slot = self
            .slots(address)?
            .try_acquire_owned()
            .map_err(|e| match e {
                TryAcquireError::NoPermits => FederationError::Busy {
                    member: name.clone(),
                    limit: self.inner.max_in_flight,
                },
                TryAcquireError::Closed => FederationError::Stopped,
            })?;
        self.write_signed(&name, address, record, slot).await
    }

    /// The seq of the last record member `name` wrote: a record signed for it before
    /// submission takes a higher one.
    pub async fn last_seq(&self, name: &str) -> Result<u64, FederationError> {
        Ok(self.status(name).await?.last_seq)
    }

    /// The author of a pre-signed record, as a member of this federation, and the record
    /// checked once against its key.
    fn verify_signed(
        &self,
        record: Record,
    ) -> Result<(String, Address, VerifiedRecord), FederationError> {
        let author = record.content.author;
        let (name, key): (String, PublicKey) = {
            let nodes = self
                .inner
                .nodes
                .lock()
                .map_err(|_| FederationError::Stopped)?;
            let node = nodes
                .get(&author)
                .ok_or(FederationError::UnknownAuthor(author))?;
            (node.name.clone(), node.public_key)
        };
        let seq = record.content.seq;
        let record =
            VerifiedRecord::check(record, &key).map_err(|_| FederationError::BadSignature {
                member: name.clone(),
                seq,
            })?;
        Ok((name, author, record))
    }

    async fn write_signed(
        &self,
        name: &str,
        address: Address,
        record: VerifiedRecord,
        slot: OwnedSemaphorePermit,
    ) -> Result<Receipt, FederationError> {
        let private = record.record().kind() == RecordKind::MeterReading;
        let addr = self.addr(name)?;
        let crashes = self.crashes(address)?;
        let seq = addr
            .send(WriteSigned(record))
            .await
            .map_err(|_| FederationError::NotRunning(name.to_string()))?
            .map_err(|e| match e {
                ActorError::Signed(SignedRecordError::Replay { seq, last }) => {
                    FederationError::Replay {
                        member: name.to_string(),
                        seq,
                        last,
                    }
                }
                e => FederationError::Refused {
                    member: name.to_string(),
                    reason: e.to_string(),
                },
            })?;
        self.follow(name, address, seq, private, crashes, slot)
    }

    fn crashes(&self, address: Address) -> Result<u64, FederationError> {
        Ok(self
            .inner
            .stats
            .lock()
            .map_err(|_| FederationError::Stopped)?
            .tracker
            .crashes(address))
    }

    /// A receipt that follows record `seq` of `name` until it is committed.
    fn follow(
        &self,
        name: &str,
        address: Address,
        seq: u64,
        private: bool,
        crashes: u64,
        slot: OwnedSemaphorePermit,
    ) -> Result<Receipt, FederationError> {
        let mut stats = self
            .inner
            .stats
            .lock()
            .map_err(|_| FederationError::Stopped)?;
        let Collector {
            tracker, serving, ..
        } = &mut *stats;
        Ok(tracker.follow(name, address, seq, private, crashes, Some(slot), serving))
    }

    async fn write(
        &self,
        name: &str,
        address: Address,
        audience: Audience,
        body: RecordBody,
        slot: OwnedSemaphorePermit,
    ) -> Result<Receipt, FederationError> {
        let private = body.kind() == RecordKind::MeterReading;
        let addr = self.addr(name)?;
        let crashes = self.crashes(address)?;
        let seq = addr
            .send(Write { audience, body })
            .await
            .map_err(|_| FederationError::NotRunning(name.to_string()))?
            .map_err(|e| FederationError::Refused {
                member: name.to_string(),
                reason: e.to_string(),
            })?;
        self.follow(name, address, seq, private, crashes, slot)
    }

    /// Resolves when every consortium lane serves: its newest configuration's relay has
    /// taken the lane over (SPEC §14). After a failover or a rotation it waits for the
    /// new relay. A lane cut off from the relay chain never serves: bound the wait with
    /// a timeout where that can happen.
    pub async fn ready(&self) -> Result<(), FederationError> {
        if *self.inner.done.borrow() {
            return Err(FederationError::Stopped);
        }
        let mut ready = self.inner.ready.clone();
        ready
            .wait_for(|ready| *ready)
            .await
            .map(|_| ())
            .map_err(|_| FederationError::Stopped)
    }

    /// How many lanes serve now: their newest configuration's relay took the lane over.
    pub fn lanes_serving(&self) -> usize {
        self.inner
            .stats
            .lock()
            .map(|s| s.lanes_serving())
            .unwrap_or_default()
    }

    /// The status of member `name`'s node.
    pub async fn status(&self, name: &str) -> Result<NodeStatus, FederationError> {
        let addr = self.addr(name)?;
        addr.send(Status)
            .await
            .map_err(|_| FederationError::NotRunning(name.to_string()))
    }

    /// The current relay of every consortium, by the events seen so far.
    pub fn relays(&self) -> BTreeMap<ConsortiumId, (u64, Address, Option<Address>)> {
        self.inner
            .stats
            .lock()
            .map(|s| s.serving.clone())
            .unwrap_or_default()
    }

    /// A stream of the federation's events from now on. It ends (`RecvError::Closed`, after
    /// the events sent before) when the federation shuts down; after shutdown it is empty
    /// and ended at once.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        match self
            .inner
            .events
            .lock()
            .ok()
            .as_deref()
            .and_then(Option::as_ref)
        {
            Some(events) => events.subscribe(),
            None => broadcast::channel(1).1,
        }
    }

    /// The statistics so far.
    pub fn stats(&self) -> Stats {
        let transport = self.inner.parts.transport.stats();
        self.inner
            .stats
            .lock()
            .map(|s| s.snapshot(transport))
            .unwrap_or_default()
    }

    /// The store, for queries: every node's chains.
    pub fn store(&self) -> Arc<dyn ChainStore> {
        self.inner.parts.store.clone()
    }

    /// Stops every actor, flushes storage and ends the event streams; resolves once the
    /// actor thread has done so. Other clones of the handle fail from then on. A second
    /// call resolves at once.
    pub async fn shutdown(&self) -> Result<(), FederationError> {
        // Submits waiting for room in any clone answer `Stopped`, before the receipts
        // that hold the room are answered and free it.
        if let Ok(slots) = self.inner.slots.lock() {
            for slots in slots.values() {
                slots.close();
            }
        }
        self.inner.system.stop();
        let mut done = self.inner.done.clone();
        // The thread's sender is dropped only after it said it is done.
        let _ = done.wait_for(|done| *done).await;
        let failed = self
            .inner
            .flush_error
            .lock()
            .ok()
            .and_then(|mut e| e.take());
        match failed {
            Some(e) => Err(FederationError::Store(e)),
            None => Ok(()),
        }
    }

    /// [`FederationHandle::shutdown`] for hosts without an async runtime.
    pub fn shutdown_blocking(&self) -> Result<(), FederationError> {
        pollster::block_on(self.shutdown())
    }
}

/// Who serves each consortium: (epoch, relay, backup).
type ServingMap = BTreeMap<ConsortiumId, (u64, Address, Option<Address>)>;

/// The latest election of every consortium on the supervisor's chain in `store`: who
/// serves a reopened directory.
fn recovered_elections(
    store: &dyn ChainStore,
    supervisor: Address,
) -> Result<ServingMap, StoreError> {
    let chain = ChainId::Private(supervisor);
    let mut serving = BTreeMap::new();
    let mut from = 1;
    loop {
        let blocks = store.range(supervisor, chain, from, 256)?;
        if blocks.is_empty() {
            return Ok(serving);
        }
        from += blocks.len() as u64;
        for record in blocks.iter().flat_map(|b| b.records()) {
            if let RecordBody::Election(e) = &record.content.body {
                serving.insert(e.consortium, (e.epoch, e.relay, e.backup));
            }
        }
    }
}

/// Latency samples, ms, in a histogram (`hdrhistogram`, 3 significant figures: exact below
/// 2 s): bounded memory however many records, and percentiles without a sort.
#[derive(Clone, Debug)]
pub struct Latencies(hdrhistogram::Histogram<u64>);

impl Latencies {
    /// The largest latency kept apart, ms (a day); a larger one counts as this.
    pub const MAX_MS: u64 = 86_400_000;

    /// No samples.
    pub fn new() -> Self {
        // One to a day in 3 significant figures is well inside what hdrhistogram takes.
        #[allow(clippy::expect_used)]
        let histogram = hdrhistogram::Histogram::new_with_bounds(1, Self::MAX_MS, 3)
            .expect("1 ms to a day at 3 significant figures is a valid histogram");
        Latencies(histogram)
    }

    /// Counts one latency.
    pub fn record(&mut self, ms: u64) {
        self.0.saturating_record(ms);
    }

    /// How many were counted.
    pub fn len(&self) -> usize {
        self.0.len() as usize
    }

    /// Whether none was counted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// p50 and p99 (zero without samples).
    pub fn percentiles(&self) -> Percentiles {
        if self.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            p50: self.0.value_at_quantile(0.50) as f64,
            p99: self.0.value_at_quantile(0.99) as f64,
            count: self.len(),
        }
    }
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

/// Latency percentiles, ms.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Samples.
    pub count: usize,
}

/// A lane whose new relay could not read its source configuration (SPEC §14).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stall {
    /// The lane.
    pub lane: ConsortiumId,
    /// The epoch of the waiting configuration.
    pub epoch: u64,
    /// Its relay.
    pub relay: Address,
    /// The source members it waits for.
    pub waiting_for: Vec<Address>,
    /// When it was reported, ms.
    pub at: u64,
}

/// What the federation has done so far.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Records in relay blocks (each counted once, by the producer).
    pub records_committed: u64,
    /// Relay blocks produced.
    pub relay_blocks: u64,
    /// Relay blocks sent because of an urgent block.
    pub urgent_flushes: u64,
    /// Blocks acknowledged to members.
    pub acks: u64,
    /// Elections of every reason.
    pub elections: u64,
    /// Failovers.
    pub failovers: u64,
    /// Rotations.
    pub rotations: u64,
    /// Backups replaced.
    pub backups_replaced: u64,
    /// Rejections counted, by kind.
    pub rejected: BTreeMap<String, u64>,
    /// Hostile rejections.
    pub hostile: u64,
    /// Take-overs that found no member of their source configuration answering (SPEC
    /// §14): the lane, the waiting epoch, its relay, the source members it waits for, and
    /// when.
    pub stalled: Vec<Stall>,
    /// Consortiums cut off.
    pub cut_off: u64,
    /// Joins completed (SPEC §6.1).
    pub joins: u64,
    /// Joins that failed.
    pub joins_failed: u64,
    /// Power trades settled on the relay chain (SPEC §6.2).
    pub trades_power: u64,
    /// Power trades refused by the seller or rejected by the grid.
    pub trades_refused: u64,
    /// Data trades delivered with a matching digest (SPEC §6.3).
    pub trades_data: u64,
    /// Data deliveries disputed.
    pub disputes: u64,
    /// Urgent records, creation to arrival at the last relay.
    pub urgent: Percentiles,
    /// Normal records, creation to arrival at the last relay.
    pub normal: Percentiles,
    /// Transport counters.
    pub transport: TransportStats,
    /// blake3 of the event log so far.
    pub event_log_digest: Hash,
    /// Events seen.
    pub events: u64,
}

/// Folds the event stream into [`Stats`].
pub(crate) struct Collector {
    lanes: usize,
    pub(crate) serving: BTreeMap<ConsortiumId, (u64, Address, Option<Address>)>,
    arrivals: BTreeMap<(Address, u64), (u64, bool, BTreeSet<ConsortiumId>)>,
    /// Records that reached every lane's relay, with their creation time: a relay or
    /// backup catching up later commits them again, and they must not count twice.
    arrived: BTreeMap<(Address, u64), u64>,
    /// Per lane, the highest relay block counted as released: a relay restarted in its
    /// active configuration releases its last blocks again (it does not remember which it
    /// had released), and they count once.
    released: BTreeMap<ConsortiumId, u64>,
    /// Trades counted as settled, for the same reason.
    settled: BTreeSet<ieschain_core::Hash>,
    /// Per lane, the epoch of the last take-over seen.
    took_over: BTreeMap<ConsortiumId, u64>,
    /// Whether every lane serves: set on elections and take-overs; dropped when the
    /// federation stops, so that `ready` waiters answer `Stopped`.
    ready: Option<watch::Sender<bool>>,
    /// What receipts need.
    pub(crate) tracker: receipts::Tracker,
    urgent: Latencies,
    normal: Latencies,
    stats: Stats,
    digest: blake3::Hasher,
}

impl Collector {
    pub(crate) fn new(lanes: usize, ready: watch::Sender<bool>) -> Self {
        Collector {
            took_over: BTreeMap::new(),
            ready: Some(ready),
            tracker: receipts::Tracker::default(),
            lanes,
            serving: BTreeMap::new(),
            arrivals: BTreeMap::new(),
            arrived: BTreeMap::new(),
            released: BTreeMap::new(),
            settled: BTreeSet::new(),
            urgent: Latencies::new(),
            normal: Latencies::new(),
            stats: Stats::default(),
            digest: blake3::Hasher::new_derive_key("ieschain event log v1"),
        }
    }

    pub(crate) fn observe(&mut self, event: &Event) {
        self.count(event);
        self.tracker.observe(event, &self.serving);
        if matches!(event, Event::Elected { .. } | Event::TookOver { .. }) {
            let serves = self.lanes_serving() == self.lanes;
            if let Some(ready) = &self.ready {
                ready.send_if_modified(|ready| {
                    let changed = *ready != serves;
                    *ready = serves;
                    changed
                });
            }
        }
    }

    /// The federation stopped: `ready` and receipt waiters answer `Stopped`.
    pub(crate) fn close(&mut self) {
        self.ready = None;
        self.tracker.close();
    }

    fn lanes_serving(&self) -> usize {
        self.serving
            .iter()
            .filter(|(lane, (epoch, _, _))| self.took_over.get(lane) == Some(epoch))
            .count()
    }

    fn count(&mut self, event: &Event) {
        self.stats.events += 1;
        self.digest
            .update(format!("{}\n", crate::simulation::canonical_line(event)).as_bytes());
        match event {
            Event::Committed {
                node,
                lane,
                height,
                produced,
                reason,
                blocks: _,
                records,
                at,
                ..
            } => {
                let counted = self.released.entry(*lane).or_default();
                if *produced && *height > *counted {
                    *counted = *height;
                    self.stats.relay_blocks += 1;
                    self.stats.records_committed += records.len() as u64;
                    if *reason == Some(ieschain_core::window::FlushReason::Urgent) {
                        self.stats.urgent_flushes += 1;
                    }
                }
                // A record has reached a lane's relay when the lane's relay or its backup (a
                // hot copy that takes over at once) holds it; it has reached the last relay
                // when every lane's has.
                let Some(lane_of_node) = self
                    .serving
                    .iter()
                    .find(|(_, (_, relay, backup))| relay == node || backup.as_ref() == Some(node))
                    .map(|(lane, _)| *lane)
                else {
                    return;
                };
                for stamp in records {
                    if self.arrived.contains_key(&(stamp.author, stamp.seq)) {
                        continue;
                    }
                    let entry = self.arrivals.entry((stamp.author, stamp.seq)).or_insert((
                        stamp.created_at,
                        stamp.urgent,
                        BTreeSet::new(),
                    ));
                    entry.2.insert(lane_of_node);
                    if entry.2.len() >= self.lanes {
                        let latency = at.saturating_sub(entry.0);
                        if entry.1 {
                            self.urgent.record(latency);
                        } else {
                            self.normal.record(latency);
                        }
                        self.arrivals.remove(&(stamp.author, stamp.seq));
                        self.arrived
                            .insert((stamp.author, stamp.seq), stamp.created_at);
                    }
                }
                // Records that never reach every relay (lost with an unacknowledged block)
                // are forgotten after a minute.
                let horizon = at.saturating_sub(60_000);
                self.arrivals
                    .retain(|_, (created, _, _)| *created >= horizon);
                self.arrived.retain(|_, created| *created >= horizon);
            }
            Event::Acked { .. } => self.stats.acks += 1,
            Event::Elected {
                consortium,
                epoch,
                reason,
                relay,
                backup,
                ..
            } => {
                self.stats.elections += 1;
                match reason {
                    ElectionReason::Failover => self.stats.failovers += 1,
                    ElectionReason::Rotation => self.stats.rotations += 1,
                    ElectionReason::BackupLost => self.stats.backups_replaced += 1,
                    ElectionReason::Initial => {}
                }
                self.serving.insert(*consortium, (*epoch, *relay, *backup));
            }
            Event::TookOver {
                consortium, epoch, ..
            } => {
                self.took_over.insert(*consortium, *epoch);
            }
            Event::Recorded { .. }
            | Event::Step { .. }
            | Event::Stored { .. }
            | Event::Held { .. }
            | Event::Truncated { .. }
            | Event::Sealed { .. }
            | Event::Read { .. }
            | Event::Activated { .. }
            | Event::Confirmed { .. }
            | Event::Acknowledged { .. } => {}
            Event::JoinDone { .. } => self.stats.joins += 1,
            Event::JoinFailed { .. } => self.stats.joins_failed += 1,
            Event::TradeSettled { trade, .. } => {
                if self.settled.insert(*trade) {
                    self.stats.trades_power += 1;
                }
            }
            Event::TradeRefused { .. } => self.stats.trades_refused += 1,
            Event::DataDelivered { .. } => self.stats.trades_data += 1,
            Event::DataDisputed { .. } => self.stats.disputes += 1,
            Event::Stalled {
                lane,
                epoch,
                relay,
                waiting_for,
                at,
            } => self.stats.stalled.push(Stall {
                lane: *lane,
                epoch: *epoch,
                relay: *relay,
                waiting_for: waiting_for.clone(),
                at: *at,
            }),
            Event::CutOff { .. } => self.stats.cut_off += 1,
            Event::Rejected { kind, hostile, .. } => {
                *self.stats.rejected.entry((*kind).to_string()).or_default() += 1;
                if *hostile {
                    self.stats.hostile += 1;
                }
            }
        }
    }

    pub(crate) fn snapshot(&self, transport: TransportStats) -> Stats {
        let mut stats = self.stats.clone();
        stats.urgent = self.urgent.percentiles();
        stats.normal = self.normal.percentiles();
        stats.transport = transport;
        stats.event_log_digest = Hash(*self.digest.clone().finalize().as_bytes());
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_give_exact_percentiles_in_bounded_memory() {
        let mut latencies = Latencies::new();
        assert_eq!(latencies.percentiles(), Percentiles::default());
        for ms in 1..=100 {
            latencies.record(ms);
        }
        let p = latencies.percentiles();
        assert_eq!((p.p50, p.p99, p.count), (50.0, 99.0, 100));
        // A million more samples take no more room: the histogram's buckets are fixed.
        let buckets = latencies.0.distinct_values();
        for i in 0..1_000_000u64 {
            latencies.record(i % 10_000);
        }
        assert_eq!(latencies.len(), 1_000_100);
        assert_eq!(latencies.0.distinct_values(), buckets);
        // Beyond a day counts as a day.
        latencies.record(u64::MAX);
        assert_eq!(
            latencies.0.max(),
            latencies.0.highest_equivalent(Latencies::MAX_MS)
        );
    }
}
