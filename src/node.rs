//! One node in its own process (`ieschain node`, issue 13): a member, or the supervisor,
//! with its own key, its own RocksDB and a QUIC endpoint, talking to its peers over the
//! network. The actors are the ones `run` uses; only the transport
//! ([`ieschain_actors::network::Networked`]) and the process around them differ.
//!
//! # The data directory
//! Besides RocksDB's files it holds `node.toml`: whose directory it is (the node's
//! address), for which federation (the genesis hash), and the node's restart count. A start
//! with another party's key, or with a spec of another federation, is refused before
//! anything is written. Each start takes a new incarnation (SPEC §12 D9), persisted before
//! the node sends anything, so that its peers' replay windows take a restarted node's
//! fresh sequence numbers for what they are: the larger of the last one recorded plus one
//! and the seconds since 2026-01-01 by this machine's clock. The clock's part covers an
//! incarnation the node moved to in memory without recording it (a peer's `Resync` after
//! its directory was restored); where the clock is behind, a peer's `Resync` moves the
//! node on again. Either way a stale incarnation costs messages, never data.
//!
//! # Stopping
//! The first SIGINT or SIGTERM stops the node: the actor stops, the endpoint closes (after
//! a bounded wait for what is queued), the store is flushed, and the report is written;
//! it exits 0. A second signal exits at once
//! (130). A node killed with SIGKILL loses only its memory: what it acknowledged or
//! confirmed was synced before it said so.
//!
//! # Events
//! Every event the node emits goes, one JSON object a line with names beside the ids, to
//! its event log (`events.jsonl` in the data directory unless told otherwise). The log is
//! appended across restarts and each line is written through as it happens, so a node
//! killed with SIGKILL leaves every line it emitted before (a line it was cut off in the
//! middle of is ended before the next start writes, and is left unreadable).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::Actor as _;
use ieschain_actors::clock::{Clock, SystemClock};
use ieschain_actors::messages::{Crash, Status};
use ieschain_actors::network::Networked;
use ieschain_actors::node::NodeActor;
use ieschain_actors::outbox::{EventSink, Outbox};
use ieschain_actors::supervisor::SupervisorActor;
use ieschain_actors::transport::Transport;
use ieschain_actors::workload::{Rates, Workload};
use ieschain_core::genesis::Directory;
use ieschain_core::node::Event;
use ieschain_core::{Address, Hash};
use ieschain_net::{NetConfig, NetError, Peer};
use ieschain_storage::{ChainStore, HolderStore, RocksOptions, RocksStore, StoreError};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::json::Names;
use crate::keys::NodeKey;
use crate::lifecycle::StopSignal;
use crate::spec::{ChainSpec, Party};

/// The file in a node's data directory that says whose it is.
pub const IDENTITY_FILE: &str = "node.toml";

/// The default event log, in the data directory.
pub const EVENT_LOG: &str = "events.jsonl";

/// The default report, in the data directory.
pub const REPORT: &str = "report.json";

/// What `ieschain node` was asked to do.
#[derive(Debug)]
pub struct NodeOptions {
    /// The chain spec.
    pub spec: ChainSpec,
    /// The node's own key.
    pub key: NodeKey,
    /// Its data directory.
    pub data: PathBuf,
    /// Where to listen; the spec's address for this node by default.
    pub listen: Option<SocketAddr>,
    /// Whether this is meant to be the supervisor (checked against the key).
    pub supervisor: bool,
    /// Generate the spec's workload for this long after the start (members only); `None`:
    /// no workload.
    pub workload: Option<Duration>,
    /// Stop after this long; `None`: run until a signal.
    pub duration: Option<Duration>,
    /// Sync every write (the default; off only for benches).
    pub sync: bool,
    /// Where to write the report; `<data>/report.json` by default.
    pub report: Option<PathBuf>,
    /// Where to append the event log; `<data>/events.jsonl` by default.
    pub event_log: Option<PathBuf>,
}

/// Why a node could not start, or failed.
#[derive(Debug, Error)]
pub enum NodeError {
    /// The key is in no party's place in the spec.
    #[error("this key (address {address}) is not in the chain spec: it is neither the supervisor's nor any member's")]
    NotInSpec {
        /// The key's address.
        address: Address,
    },
    /// `--supervisor` was given for a member's key, or not given for the supervisor's.
    #[error("{0}")]
    WrongRole(String),
    /// The data directory is another party's or another federation's.
    #[error("{dir}: {why}")]
    WrongDataDir {
        /// The directory.
        dir: PathBuf,
        /// Whose it is, and whose the start was.
        why: String,
    },
    /// The spec does not build a genesis record.
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
    /// The store failed.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// The network endpoint failed to start.
    #[error("network: {0}")]
    Net(#[from] NetError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The actor stopped on its own (it could not recover from its store).
    #[error("the node stopped: {0}")]
    Stopped(String),
}

/// What `node.toml` holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Identity {
    /// The owner's address.
    address: String,
    /// The federation's genesis hash.
    genesis: String,
    /// The last start's incarnation.
    incarnation: u32,
}

/// A node's report, written when it stops cleanly.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeReport {
    /// `supervisor` or the member's name.
    pub name: String,
    /// Its address.
    pub address: String,
    /// Its consortium's name, for a member.
    pub consortium: Option<String>,
    /// This start's incarnation.
    pub incarnation: u32,
    /// How long it ran, ms.
    pub ran_ms: u64,
    /// Whether it served as relay when it stopped.
    pub relay: bool,
    /// Whether it served as backup when it stopped.
    pub backup: bool,
    /// Its own lane's height when it stopped.
    pub lane_height: u64,
    /// Blocks submitted and not acknowledged when it stopped.
    pub unacked: usize,
    /// Blocks acknowledged to it during this start (each is an `acked` line of the event
    /// log, with its height, relay and epoch).
    pub acked: u64,
    /// Of those, the blocks that go on the relay chain (D4).
    pub acked_external: u64,
    /// Events by kind during this start.
    pub events: BTreeMap<String, u64>,
    /// Envelopes refused during this start, by reason.
    pub rejected: BTreeMap<String, u64>,
    /// The network's counters.
    pub net: NetReport,
}

/// The network's counters, in the report.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NetReport {
    /// Envelopes sent.
    pub sent: u64,
    /// Envelopes received and handed to the node.
    pub received: u64,
    /// Envelopes dropped (no route, a full queue, a broken connection).
    pub dropped: u64,
    /// Handshakes refused: a peer whose key is not in the spec.
    pub refused_handshakes: u64,
    /// Frames that did not decode.
    pub bad_frames: u64,
    /// Frames longer than the limit.
    pub oversized_frames: u64,
    /// Envelopes whose sender is not the connection's peer.
    pub forged: u64,
    /// Connections made again after one broke.
    pub reconnects: u64,
}

/// How the node's actor ended.
enum Ended {
    /// Stopped by the process; a member's last status.
    Stopped(Option<ieschain_actors::messages::NodeStatus>),
    /// It stopped on its own before (it could not recover from its store).
    Died,
}

/// What the sink gathers while the node runs.
struct Gathered {
    log: Option<std::io::LineWriter<std::fs::File>>,
    log_failed: bool,
    acked: u64,
    acked_external: u64,
    /// Why the actor stopped on its own, if it did.
    failed: Option<String>,
    events: BTreeMap<String, u64>,
    rejected: BTreeMap<String, u64>,
}

/// Runs one node until `stop` is asked or its duration ends; returns its report, also
/// written to its report file.
pub fn run_node(options: NodeOptions, stop: &StopSignal) -> Result<NodeReport, NodeError> {
    let NodeOptions {
        spec,
        key,
        data,
        listen,
        supervisor,
        workload,
        duration,
        sync,
        report: report_path,
        event_log,
    } = options;
    let address = key.address();
    let party = spec
        .party_of(&key.key.public())
        .ok_or(NodeError::NotInSpec { address })?;
    match (&party, supervisor) {
        (Party::Member(name), true) => {
            return Err(NodeError::WrongRole(format!(
                "--supervisor: this key is member {name}'s, not the supervisor's"
            )))
        }
        (Party::Supervisor, false) => {
            return Err(NodeError::WrongRole(
                "this key is the supervisor's: start it with --supervisor".into(),
            ))
        }
        _ => {}
    }
    let genesis = spec.genesis()?;
    let incarnation = claim(&data, address, genesis.hash())?;
    let store: Arc<dyn ChainStore> =
        Arc::new(RocksStore::open(&data, &genesis, RocksOptions { sync })?);
    let listen = listen
        .or_else(|| spec.node(&party).map(|n| n.listen))
        .ok_or_else(|| NodeError::WrongRole(format!("{party} has no address in the spec")))?;
    let peers = spec
        .by_address()
        .into_iter()
        .filter(|(peer, _)| *peer != address)
        .map(|(peer, (_, node))| {
            (
                peer,
                Peer {
                    public_key: node.public_key,
                    addr: node.listen,
                },
            )
        })
        .collect();
    let network = Arc::new(Networked::start(NetConfig::new(
        key.secret(),
        listen,
        peers,
    ))?);
    let directory = Arc::new(Directory::from_genesis(&genesis));
    let log_path = event_log.unwrap_or_else(|| data.join(EVENT_LOG));
    let log = open_log(&log_path).map_err(|source| NodeError::Io {
        path: log_path.clone(),
        source,
    })?;
    let gathered = Arc::new(Mutex::new(Gathered {
        log: Some(std::io::LineWriter::new(log)),
        log_failed: false,
        acked: 0,
        acked_external: 0,
        failed: None,
        events: BTreeMap::new(),
        rejected: BTreeMap::new(),
    }));
    let genesis = Arc::new(genesis);
    let sink: EventSink = {
        let (gathered, genesis, directory) = (gathered.clone(), genesis.clone(), directory.clone());
        Arc::new(move |event: &Event| {
            if let Ok(mut gathered) = gathered.lock() {
                gathered.observe(event, &Names::new(&directory, &genesis));
            }
        })
    };
    let name = match &party {
        Party::Supervisor => "supervisor".to_string(),
        Party::Member(name) => name.clone(),
    };
    log::info!(
        "node {name} ({address}): incarnation {incarnation}, listening on {}, data in {}",
        network.local_addr(),
        data.display()
    );
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let transport: Arc<dyn Transport> = network.clone();
    let outbox = Outbox::new(
        key.key.clone(),
        incarnation,
        HolderStore::new(store.clone(), address),
        transport,
        clock.clone(),
        sink,
    );
    let timing = spec.federation.machine_timing();
    let started = Instant::now();
    // `None` for the supervisor.
    let consortium = directory.get(&address).and_then(|known| known.consortium);
    let system = actix::System::new();
    let ended = system.block_on(async {
        match consortium {
            None => {
                let actor =
                    SupervisorActor::new(outbox, &genesis, directory.clone(), timing).start();
                until_stopped(stop, duration, started, || actor.connected()).await;
                if !actor.connected() {
                    return Ended::Died;
                }
                actor.send(Crash).await.ok();
                Ended::Stopped(None)
            }
            Some(consortium) => {
                let workload = workload.map(|length| {
                    let rates = Rates {
                        per_kind: spec.federation.workload.records.generated(),
                    };
                    Workload::new(
                        rates,
                        spec.federation.seed ^ u64::from(incarnation),
                        address,
                        genesis.consortiums.len() as u16,
                    )
                    .until(clock.now_ms().saturating_add(length.as_millis() as u64))
                });
                let actor = NodeActor::new(
                    outbox,
                    consortium,
                    genesis.clone(),
                    directory.clone(),
                    timing,
                    workload,
                )
                .with_line(spec.federation.line_capacity_wh(&name))
                .start();
                until_stopped(stop, duration, started, || actor.connected()).await;
                let Ok(status) = actor.send(Status).await else {
                    return Ended::Died;
                };
                actor.send(Crash).await.ok();
                Ended::Stopped(Some(status))
            }
        }
    });
    drop(system);
    network.shutdown();
    store
        .flush()
        .map_err(|e| NodeError::Stopped(format!("flushing the store: {e}")))?;
    let status = match ended {
        Ended::Died => {
            let why = gathered
                .lock()
                .ok()
                .and_then(|g| g.failed.clone())
                .unwrap_or_else(|| "no reason was given".into());
            return Err(NodeError::Stopped(format!(
                "its actor stopped before the end: {why}"
            )));
        }
        Ended::Stopped(status) => status,
    };
    let net = network.net_stats();
    let mut gathered = gathered
        .lock()
        .map_err(|_| NodeError::Stopped("the event sink panicked".into()))?;
    if let Some(mut log) = gathered.log.take() {
        log.flush().map_err(|source| NodeError::Io {
            path: log_path.clone(),
            source,
        })?;
    }
    let report = NodeReport {
        name,
        address: address.to_string(),
        consortium: consortium.map(|c| genesis.consortium_name(c)),
        incarnation,
        ran_ms: started.elapsed().as_millis() as u64,
        relay: status.as_ref().is_some_and(|s| s.relay),
        backup: status.as_ref().is_some_and(|s| s.backup),
        lane_height: status.as_ref().map_or(0, |s| s.lane_height),
        unacked: status.as_ref().map_or(0, |s| s.unacked),
        acked: gathered.acked,
        acked_external: gathered.acked_external,
        events: std::mem::take(&mut gathered.events),
        rejected: std::mem::take(&mut gathered.rejected),
        net: NetReport {
            sent: net.sent,
            received: net.received,
            dropped: net.dropped,
            refused_handshakes: net.refused_handshakes,
            bad_frames: net.bad_frames,
            oversized_frames: net.oversized_frames,
            forged: net.forged,
            reconnects: net.reconnects,
        },
    };
    let report_path = report_path.unwrap_or_else(|| data.join(REPORT));
    let text = serde_json::to_string_pretty(&report).map_err(|e| NodeError::Io {
        path: report_path.clone(),
        source: e.into(),
    })?;
    replace_file(&report_path, (text + "\n").as_bytes()).map_err(|source| NodeError::Io {
        path: report_path,
        source,
    })?;
    Ok(report)
}

impl Gathered {
    fn observe(&mut self, event: &Event, names: &Names<'_>) {
        let value = names.to_value(event);
        let kind = value
            .get("event")
            .and_then(|k| k.as_str())
            .unwrap_or("unknown")
            .to_string();
        *self.events.entry(kind).or_default() += 1;
        match event {
            Event::Acked { external, .. } => {
                self.acked += 1;
                self.acked_external += u64::from(*external);
            }
            Event::Rejected { kind, detail, .. } => {
                *self.rejected.entry((*kind).to_string()).or_default() += 1;
                if *kind == "recover_failed" {
                    self.failed = Some(detail.clone());
                }
                log::debug!("rejected ({kind}): {detail}");
            }
            Event::Elected { .. } | Event::TookOver { .. } | Event::Stalled { .. } => {
                log::info!("{value}");
            }
            _ => {}
        }
        if let Some(log) = self.log.as_mut() {
            let line = serde_json::to_writer(&mut *log, &value)
                .map_err(std::io::Error::from)
                .and_then(|()| log.write_all(b"\n"));
            if let Err(e) = line {
                if !self.log_failed {
                    log::error!("writing the event log: {e}; no more lines are written");
                }
                self.log_failed = true;
                self.log = None;
            }
        }
    }
}

/// Waits until a stop is asked, `duration` has passed since `started`, or `alive` says
/// that the actor stopped on its own (a store it cannot recover from).
async fn until_stopped(
    stop: &StopSignal,
    duration: Option<Duration>,
    started: Instant,
    alive: impl Fn() -> bool,
) {
    while !stop.requested() && duration.is_none_or(|d| started.elapsed() < d) && alive() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Opens the event log for appending; a last line that a kill cut short is ended first,
/// so that the next line stands on its own.
fn open_log(path: &Path) -> std::io::Result<std::fs::File> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    if file.seek(SeekFrom::End(0))? > 0 {
        file.seek(SeekFrom::End(-1))?;
        let mut last = [0u8; 1];
        file.read_exact(&mut last)?;
        if last[0] != b'\n' {
            file.write_all(b"\n")?;
        }
    }
    Ok(file)
}

/// Claims the data directory for `address` in the federation of `genesis`: checks
/// `node.toml` if there is one, and writes the next incarnation to it (synced, before the
/// node sends anything). Returns that incarnation.
fn claim(data: &Path, address: Address, genesis: Hash) -> Result<u32, NodeError> {
    let path = data.join(IDENTITY_FILE);
    let io = |source| NodeError::Io {
        path: path.clone(),
        source,
    };
    let wrong = |why: String| NodeError::WrongDataDir {
        dir: data.to_path_buf(),
        why,
    };
    let incarnation = match std::fs::read_to_string(&path) {
        Ok(text) => {
            let identity: Identity = toml::from_str(&text)
                .map_err(|e| wrong(format!("{IDENTITY_FILE} is not a node identity: {e}")))?;
            if identity.address != address.to_string() {
                return Err(wrong(format!(
                    "this directory belongs to the node at address {}, and the key given is \
                     {address}'s: start each node with its own key and its own directory",
                    identity.address
                )));
            }
            if identity.genesis != genesis.to_string() {
                return Err(wrong(format!(
                    "this directory holds the federation of genesis {}, and the spec describes \
                     genesis {genesis}: the spec does not match the data directory",
                    identity.genesis
                )));
            }
            identity
                .incarnation
                .checked_add(1)
                .ok_or_else(|| {
                    wrong("the node has restarted more times than an incarnation counts".into())
                })?
                .max(clock_incarnation())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A directory with chains in it and no identity is someone else's.
            if data.join("CURRENT").exists() {
                return Err(wrong(format!(
                    "it holds a database but no {IDENTITY_FILE}: it was not made by `ieschain \
                     node` (a `run` directory holds every node at once)"
                )));
            }
            std::fs::create_dir_all(data).map_err(io)?;
            clock_incarnation()
        }
        Err(e) => return Err(io(e)),
    };
    let identity = Identity {
        address: address.to_string(),
        genesis: genesis.to_string(),
        incarnation,
    };
    let text = toml::to_string(&identity).map_err(|e| wrong(e.to_string()))?;
    let text = format!("# Whose data directory this is (`ieschain node`). Do not edit.\n{text}");
    replace_file(&path, text.as_bytes()).map_err(io)?;
    Ok(incarnation)
}

/// An incarnation from this machine's clock: seconds since 2026-01-01 (0 before).
fn clock_incarnation() -> u32 {
    const EPOCH_2026: u64 = 1_767_225_600;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    u32::try_from(now.saturating_sub(EPOCH_2026)).unwrap_or(u32::MAX)
}

/// Writes `bytes` to `path` whole or not at all: a synced file beside it, renamed over it,
/// and the directory synced.
fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let mut file = std::fs::File::create(&partial)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&partial, path)?;
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}
