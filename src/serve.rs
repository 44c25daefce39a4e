//! `ieschain serve`: a read-only web view of a data directory (the explorer), on `axum`.
//!
//! The JSON API is the serialisation of `inspect --json` ([`crate::explore`]):
//! - `GET /api/chains`: every chain with its head, and the election history of every lane;
//! - `GET /api/chain?name=relay/grid[&node=NAME][&from=H][&limit=N]`: blocks of one chain;
//! - `GET /api/block/HASH`: every copy of one block, with the chain and node holding it;
//! - `GET /api/records?[member=NAME][&kind=KIND][&seq=N][&hash=HASH][&limit=N]`: the
//!   records on the relay chain that match, each with its inclusion proof (record ⊂
//!   consortium block ⊂ relay block, Merkle paths checked: `verified`);
//! - `GET /api/trades[?limit=N]`: the trades on the relay chain as lifecycles, newest
//!   first: each power purchase's offer, bid, agreement, grid votes, receipt and
//!   settlement, each data trade's offer, purchase, agreement and dispute, with its state;
//! - `GET /api/events`: server-sent events, the typed events of a federation or
//!   simulation running in this process (`run --serve`, `simulate --serve`), one JSON
//!   object per event as `--event-log` writes them, and a `broken` event for each
//!   invariant a simulation's checker finds broken; 404 when the server only reads a
//!   directory;
//! - `GET /api/takeovers`: each configuration seen since the server started (SPEC §14):
//!   its election, its relay's take-over (the config block released), the supervisor's
//!   activation and the stalls on the way (the first [`MAX_STALLS`], the others counted),
//!   as the events say them, and how many live items the server fell behind on (`missed`);
//!   404 without live events. (The chains hold the elections, not when a take-over began
//!   or stalled.)
//!
//! The page (`/`, with `/app.js` and `/style.css`) is embedded in the binary: no build step,
//! no CDN. A directory is always opened as a RocksDB secondary instance, so the server
//! never writes into it, whether a federation runs in it or not; each request reads the
//! directory as it was at most [`REFRESH`] earlier. A simulation's in-memory store is read
//! as it is written ([`Source::Store`]), except what reads whole chains (the listing and
//! the trades), which each snapshot reads once: at most [`REFRESH`] old too.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use ieschain_core::node::Event;
use ieschain_core::{ConsortiumId, Hash};
use ieschain_storage::ChainStore;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::explore::{Access, RecordFilter, Snapshot};

/// How old a snapshot of the directory may be before a request opens a fresh one.
pub const REFRESH: Duration = Duration::from_secs(1);

/// The most blocks one request returns.
pub const MAX_LIMIT: usize = 1_000;

/// The blocks one request returns when it does not say.
pub const DEFAULT_LIMIT: usize = 50;

const INDEX_HTML: &str = include_str!("explorer/index.html");
const APP_JS: &str = include_str!("explorer/app.js");
const STYLE_CSS: &str = include_str!("explorer/style.css");

/// The live items a stream buffers for its slowest reader; one further behind gets a
/// `lagged` event.
pub const LIVE_BUFFER: usize = 4_096;

/// The configurations `/api/takeovers` keeps, the newest: older ones are dropped.
pub const MAX_TAKEOVERS: usize = 2_000;

/// What a live stream carries.
#[derive(Clone, Debug)]
pub enum Live {
    /// A typed event of the federation or simulation.
    Event(Event),
    /// An invariant a simulation's checker found broken, as the report words it.
    Broken(String),
}

/// Where the explorer reads the chains.
#[derive(Clone, Debug)]
pub enum Source {
    /// A data directory, opened as a RocksDB secondary instance at most every
    /// [`REFRESH`].
    Directory(PathBuf),
    /// A store in this process, read as it is written: a simulation's (`simulate --serve`).
    Store(Arc<dyn ChainStore>),
}

/// The live events of a federation or simulation in this process: the server reads a
/// new subscription per client (`Receiver::resubscribe`), so every stream ends when the
/// last sender is dropped.
pub type LiveEvents = broadcast::Receiver<Live>;

/// What the handlers share: the chains, their latest snapshot, and the live events.
struct Explorer {
    source: Source,
    latest: Mutex<Option<(Instant, Arc<Snapshot>)>>,
    live: Option<Mutex<LiveEvents>>,
    takeovers: Mutex<Takeovers>,
}

/// The stalls kept per configuration, the first ones; the others are counted.
pub const MAX_STALLS: usize = 20;

/// The reconfiguration events of each configuration (lane, epoch), as seen live.
#[derive(Debug, Default)]
struct Takeovers {
    epochs: BTreeMap<(ConsortiumId, u64), Configuration>,
    /// Live items the collector fell behind on: reconfiguration events may be among them.
    missed: u64,
}

/// One configuration's reconfiguration events, in the order they came.
#[derive(Debug, Default)]
struct Configuration {
    /// The order it was first seen in, to drop the oldest past [`MAX_TAKEOVERS`].
    seen: u64,
    elected: Option<Event>,
    took_over: Option<Event>,
    activated: Option<Event>,
    stalls: Vec<Event>,
    /// Stalls past [`MAX_STALLS`].
    more_stalls: u64,
}

impl Takeovers {
    fn observe(&mut self, event: &Event, seen: u64) {
        let (lane, epoch) = match event {
            Event::Elected {
                consortium, epoch, ..
            }
            | Event::TookOver {
                consortium, epoch, ..
            } => (*consortium, *epoch),
            Event::Activated { lane, epoch, .. } | Event::Stalled { lane, epoch, .. } => {
                (*lane, *epoch)
            }
            _ => return,
        };
        if !self.epochs.contains_key(&(lane, epoch)) && self.epochs.len() >= MAX_TAKEOVERS {
            let oldest = self
                .epochs
                .iter()
                .min_by_key(|(_, c)| c.seen)
                .map(|(key, _)| *key);
            if let Some(oldest) = oldest {
                self.epochs.remove(&oldest);
            }
        }
        let configuration = self
            .epochs
            .entry((lane, epoch))
            .or_insert_with(|| Configuration {
                seen,
                ..Configuration::default()
            });
        let first = match event {
            Event::Elected { .. } => &mut configuration.elected,
            Event::TookOver { .. } => &mut configuration.took_over,
            Event::Activated { .. } => &mut configuration.activated,
            _ if configuration.stalls.len() < MAX_STALLS => {
                configuration.stalls.push(event.clone());
                return;
            }
            _ => {
                configuration.more_stalls += 1;
                return;
            }
        };
        first.get_or_insert_with(|| event.clone());
    }

    /// `{epochs: [{lane, lane_name, epoch, elected, took_over, activated, stalls,
    /// more_stalls, took_over_ms}], missed}`, by lane and epoch; each event as the event
    /// log writes it; `missed` counts the live items the collector fell behind on.
    fn to_value(&self, snapshot: &Snapshot) -> Value {
        let names = snapshot.names();
        let genesis = snapshot.store().genesis();
        let at = |event: &Option<Event>| event.as_ref().and_then(Event::at);
        let epochs: Vec<Value> = self
            .epochs
            .iter()
            .map(|((lane, epoch), c)| {
                let event = |e: &Option<Event>| e.as_ref().map(|e| names.to_value(e));
                json!({
                    "lane": lane.0,
                    "lane_name": genesis.consortium_name(*lane),
                    "epoch": epoch,
                    "elected": event(&c.elected),
                    "took_over": event(&c.took_over),
                    "activated": event(&c.activated),
                    "stalls": c.stalls.iter().map(|e| names.to_value(e)).collect::<Vec<_>>(),
                    "more_stalls": c.more_stalls,
                    "took_over_ms": at(&c.elected)
                        .zip(at(&c.took_over))
                        .map(|(elected, took)| took.saturating_sub(elected)),
                })
            })
            .collect();
        json!({ "epochs": epochs, "missed": self.missed })
    }
}

/// An answer that is not a success: a status and a one-line reason, as JSON.
#[derive(Debug)]
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

type Answer = Result<Json<Value>, Failure>;

impl Explorer {
    /// The snapshot, fresh within [`REFRESH`] (the names of joined members included).
    fn snapshot(&self) -> Result<Arc<Snapshot>, Failure> {
        let mut latest = self.latest.lock().map_err(|_| poisoned())?;
        if let Some((at, snapshot)) = latest.as_ref() {
            if at.elapsed() < REFRESH {
                return Ok(snapshot.clone());
            }
        }
        let snapshot = match &self.source {
            Source::Directory(data) => Snapshot::open(data, Access::ReadOnly),
            Source::Store(store) => Snapshot::of_store(store.clone()),
        };
        let snapshot = Arc::new(snapshot.map_err(store_failure)?);
        *latest = Some((Instant::now(), snapshot.clone()));
        Ok(snapshot)
    }

    /// Runs `read` on a fresh snapshot on a blocking thread (RocksDB reads block).
    async fn read(
        self: Arc<Self>,
        read: impl FnOnce(&Snapshot) -> Result<Value, Failure> + Send + 'static,
    ) -> Answer {
        tokio::task::spawn_blocking(move || read(&*self.snapshot()?))
            .await
            .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
            .map(Json)
    }
}

/// A lock of the explorer's state was poisoned by a panic while held.
fn poisoned() -> Failure {
    Failure(
        StatusCode::SERVICE_UNAVAILABLE,
        "the explorer's state is poisoned".into(),
    )
}

fn store_failure(e: impl std::fmt::Display) -> Failure {
    Failure(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

/// The explorer's routes over `source`, with `live` events when a federation or simulation
/// runs in this process. Called in a tokio runtime when `live` is given: a task of it
/// collects the take-overs ([`MAX_TAKEOVERS`]) from then on.
pub fn router(source: Source, live: Option<LiveEvents>) -> Router {
    let collect = live.as_ref().map(broadcast::Receiver::resubscribe);
    let explorer = Arc::new(Explorer {
        source,
        latest: Mutex::new(None),
        live: live.map(Mutex::new),
        takeovers: Mutex::default(),
    });
    if let Some(mut receiver) = collect {
        let explorer = Arc::downgrade(&explorer);
        tokio::spawn(async move {
            let mut seen = 0u64;
            loop {
                let received = receiver.recv().await;
                let Some(explorer) = explorer.upgrade() else {
                    return;
                };
                let Ok(mut takeovers) = explorer.takeovers.lock() else {
                    return;
                };
                match received {
                    Ok(Live::Event(event)) => {
                        seen += 1;
                        takeovers.observe(&event, seen);
                    }
                    Ok(Live::Broken(_)) => {}
                    Err(broadcast::error::RecvError::Lagged(missed)) => takeovers.missed += missed,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }),
        )
        .route("/api/chains", get(chains))
        .route("/api/chain", get(chain))
        .route("/api/block/{hash}", get(block))
        .route("/api/events", get(live_events))
        .route("/api/records", get(records))
        .route("/api/trades", get(trades))
        .route("/api/takeovers", get(takeovers))
        .fallback(|| async {
            Failure(
                StatusCode::NOT_FOUND,
                "no such page; the API is /api/chains, /api/chain?name=…, /api/block/HASH, \
                 /api/records?…, /api/trades, /api/events and /api/takeovers"
                    .into(),
            )
        })
        .with_state(explorer)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

async fn chains(State(explorer): State<Arc<Explorer>>) -> Answer {
    explorer
        .read(|snapshot| snapshot.listing().map_err(store_failure))
        .await
}

/// The query of `/api/chain`. Numbers arrive as text so that a malformed one gets this
/// module's message, not the extractor's.
#[derive(Debug, Deserialize)]
struct ChainQuery {
    name: Option<String>,
    node: Option<String>,
    from: Option<String>,
    limit: Option<String>,
}

fn number<T: std::str::FromStr>(key: &str, text: Option<&str>, default: T) -> Result<T, Failure> {
    match text {
        None => Ok(default),
        Some(text) => text.parse().map_err(|_| {
            Failure(
                StatusCode::BAD_REQUEST,
                format!("{key}: expected a non-negative whole number, found {text:?}"),
            )
        }),
    }
}

/// The `limit` of a query: [`DEFAULT_LIMIT`] when absent, at most [`MAX_LIMIT`].
fn limit(text: Option<&str>) -> Result<usize, Failure> {
    let limit = number("limit", text, DEFAULT_LIMIT)?;
    if limit > MAX_LIMIT {
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            format!("limit: expected at most {MAX_LIMIT}, found {limit}"),
        ));
    }
    Ok(limit)
}

/// A hash as `Display` prints it: 64 hex digits.
fn hash(text: &str) -> Result<Hash, Failure> {
    Hash::from_hex(text).ok_or_else(|| {
        Failure(
            StatusCode::BAD_REQUEST,
            format!(
                "hash: expected 64 hexadecimal digits, found {:?}",
                text.chars().take(80).collect::<String>()
            ),
        )
    })
}

async fn chain(State(explorer): State<Arc<Explorer>>, Query(query): Query<ChainQuery>) -> Answer {
    let Some(name) = query.name else {
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            "name: expected a chain name such as relay/grid (see /api/chains)".into(),
        ));
    };
    let from = number("from", query.from.as_deref(), 1u64)?.max(1);
    let limit = limit(query.limit.as_deref())?;
    explorer
        .read(move |snapshot| {
            let Some((holder, chain)) = snapshot
                .find(&name, query.node.as_deref())
                .map_err(store_failure)?
            else {
                return Err(Failure(
                    StatusCode::NOT_FOUND,
                    format!(
                        "no chain named {name}{} (see /api/chains)",
                        query
                            .node
                            .map(|n| format!(" held by {n}"))
                            .unwrap_or_default()
                    ),
                ));
            };
            snapshot
                .blocks(holder, chain, from, limit)
                .map_err(store_failure)
        })
        .await
}

/// The query of `/api/records`.
#[derive(Debug, Deserialize)]
struct RecordsQuery {
    member: Option<String>,
    kind: Option<String>,
    seq: Option<String>,
    hash: Option<String>,
    limit: Option<String>,
}

async fn records(
    State(explorer): State<Arc<Explorer>>,
    Query(query): Query<RecordsQuery>,
) -> Answer {
    let limit = limit(query.limit.as_deref())?;
    let seq = query
        .seq
        .as_deref()
        .map(|text| number("seq", Some(text), 0u64))
        .transpose()?;
    let hash = query.hash.as_deref().map(hash).transpose()?;
    let filter = RecordFilter {
        member: query.member,
        kind: query.kind,
        seq,
        hash,
    };
    explorer
        .read(move |snapshot| {
            let found = snapshot.records(&filter, limit).map_err(store_failure)?;
            Ok(json!({ "records": found }))
        })
        .await
}

/// The query of `/api/trades`.
#[derive(Debug, Deserialize)]
struct TradesQuery {
    limit: Option<String>,
}

async fn trades(State(explorer): State<Arc<Explorer>>, Query(query): Query<TradesQuery>) -> Answer {
    let limit = limit(query.limit.as_deref())?;
    explorer
        .read(move |snapshot| snapshot.trades(limit).map_err(store_failure))
        .await
}

fn no_live_events() -> Failure {
    Failure(
        StatusCode::NOT_FOUND,
        "no live events: this server reads a directory; `ieschain run --serve ADDR` and \
         `ieschain simulate --serve ADDR` serve a running federation's events"
            .into(),
    )
}

async fn takeovers(State(explorer): State<Arc<Explorer>>) -> Answer {
    if explorer.live.is_none() {
        return Err(no_live_events());
    }
    let reader = explorer.clone();
    explorer
        .read(move |snapshot| {
            let takeovers = reader.takeovers.lock().map_err(|_| poisoned())?;
            Ok(takeovers.to_value(snapshot))
        })
        .await
}

async fn block(State(explorer): State<Arc<Explorer>>, UrlPath(text): UrlPath<String>) -> Answer {
    let hash = hash(&text)?;
    explorer
        .read(move |snapshot| {
            let copies = snapshot.block_by_hash(&hash).map_err(store_failure)?;
            if copies.is_empty() {
                return Err(Failure(
                    StatusCode::NOT_FOUND,
                    format!("no node holds a block with hash {hash}"),
                ));
            }
            Ok(json!({ "hash": hash.to_string(), "copies": copies }))
        })
        .await
}

/// The live events as server-sent events: each named by its kind (`elected`,
/// `committed`, …), its data the event's JSON with names beside ids; a `broken` event
/// (`{"broken": what}`) for each invariant a simulation's checker finds broken. A client
/// that falls behind gets a `lagged` event saying how many it missed; the stream ends with
/// the federation or simulation, and a client that comes after gets 204 No Content (an
/// `EventSource` then stops reconnecting).
async fn live_events(State(explorer): State<Arc<Explorer>>) -> Result<Response, Failure> {
    let receiver = match &explorer.live {
        None => return Err(no_live_events()),
        Some(live) => live.lock().map_err(|_| poisoned())?.resubscribe(),
    };
    // Over: 204 tells a browser's EventSource not to reconnect.
    if receiver.is_closed() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let explorer = explorer.clone();
    let names_from = tokio::task::spawn_blocking(move || explorer.snapshot())
        .await
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    let stream = futures_util::stream::unfold(
        (receiver, names_from),
        |(mut receiver, snapshot)| async move {
            let event = match receiver.recv().await {
                Ok(Live::Event(event)) => {
                    let value = snapshot.names().to_value(&event);
                    let kind = value["event"].as_str().unwrap_or("event").to_string();
                    SseEvent::default().event(kind).data(value.to_string())
                }
                Ok(Live::Broken(what)) => SseEvent::default()
                    .event("broken")
                    .data(json!({ "broken": what }).to_string()),
                Err(broadcast::error::RecvError::Lagged(missed)) => SseEvent::default()
                    .event("lagged")
                    .data(json!({ "missed": missed }).to_string()),
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            Some((
                Ok::<_, std::convert::Infallible>(event),
                (receiver, snapshot),
            ))
        },
    );
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// Serves `router` ([`router`]) on `listener` until `stop` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(stop)
        .await
}

/// Forwards a federation's events into a live feed until the federation ends; events
/// this forwarder falls behind on are skipped.
pub async fn forward(mut events: broadcast::Receiver<Event>, feed: broadcast::Sender<Live>) {
    loop {
        match events.recv().await {
            Ok(event) => {
                let _ = feed.send(Live::Event(event));
            }
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use ieschain_core::election::{ElectionReason, LanePosition};
    use ieschain_core::{Address, ConsortiumId, Hash};

    use super::*;

    fn position() -> LanePosition {
        LanePosition {
            height: 0,
            hash: Hash([0; 32]),
        }
    }

    fn elected(lane: u16, epoch: u64, at: u64) -> Event {
        Event::Elected {
            consortium: ConsortiumId(lane),
            epoch,
            source: epoch - 1,
            lane_head: position(),
            reason: ElectionReason::Failover,
            relay: Address([1; 20]),
            backup: None,
            at,
        }
    }

    fn took_over(lane: u16, epoch: u64, at: u64) -> Event {
        Event::TookOver {
            consortium: ConsortiumId(lane),
            epoch,
            relay: Address([1; 20]),
            config: position(),
            prev: position(),
            at,
        }
    }

    /// A configuration gathers its election, take-over and stalls, in any order they
    /// come; the first of each kind counts.
    #[test]
    fn a_configuration_gathers_its_reconfiguration_events() {
        let mut takeovers = Takeovers::default();
        takeovers.observe(&elected(2, 3, 1_000), 1);
        let stall = Event::Stalled {
            lane: ConsortiumId(2),
            epoch: 3,
            relay: Address([1; 20]),
            waiting_for: vec![Address([2; 20])],
            at: 1_200,
        };
        takeovers.observe(&stall, 2);
        takeovers.observe(&took_over(2, 3, 1_750), 3);
        takeovers.observe(&took_over(2, 3, 9_999), 4);
        takeovers.observe(&elected(2, 4, 5_000), 5);
        let c = &takeovers.epochs[&(ConsortiumId(2), 3)];
        assert_eq!(c.stalls.len(), 1);
        assert_eq!(c.took_over.as_ref().and_then(Event::at), Some(1_750));
        assert!(takeovers.epochs[&(ConsortiumId(2), 4)].took_over.is_none());
        assert_eq!(takeovers.epochs.len(), 2);
    }

    /// A long stall keeps its first stalls and counts the others.
    #[test]
    fn stalls_past_the_bound_are_counted() {
        let mut takeovers = Takeovers::default();
        for at in 0..MAX_STALLS as u64 + 5 {
            let stall = Event::Stalled {
                lane: ConsortiumId(1),
                epoch: 2,
                relay: Address([1; 20]),
                waiting_for: Vec::new(),
                at,
            };
            takeovers.observe(&stall, 1);
        }
        let c = &takeovers.epochs[&(ConsortiumId(1), 2)];
        assert_eq!(c.stalls.len(), MAX_STALLS);
        assert_eq!(c.more_stalls, 5);
        assert_eq!(
            c.stalls.last().and_then(Event::at),
            Some(MAX_STALLS as u64 - 1)
        );
    }

    /// Past the bound, the configuration seen first is dropped, one at a time.
    #[test]
    fn the_oldest_configuration_goes_past_the_bound() {
        let mut takeovers = Takeovers::default();
        for epoch in 1..=MAX_TAKEOVERS as u64 + 3 {
            takeovers.observe(&elected(0, epoch, epoch), epoch);
            takeovers.observe(&took_over(0, epoch, epoch + 1), epoch);
        }
        assert_eq!(takeovers.epochs.len(), MAX_TAKEOVERS);
        let first = takeovers.epochs.keys().next().unwrap();
        assert_eq!(*first, (ConsortiumId(0), 4));
    }
}
