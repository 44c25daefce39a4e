//! `ieschain serve`: a read-only web view of a data directory (the explorer), on `axum`.
//!
//! The JSON API is the serialisation of `inspect --json` ([`crate::explore`]):
//! - `GET /api/chains`: every chain with its head, and the election history of every lane;
//! - `GET /api/chain?name=relay/grid[&node=NAME][&from=H][&limit=N]`: blocks of one chain;
//! - `GET /api/block/HASH`: every copy of one block, with the chain and node holding it;
//! - `GET /api/records?[member=NAME][&kind=KIND][&seq=N][&hash=HASH][&limit=N]`: the
//!   records on the relay chain that match, each with its inclusion proof (record ⊂
//!   consortium block ⊂ relay block, Merkle paths checked: `verified`);
//! - `GET /api/events`: server-sent events, the typed events of a federation running in
//!   this process (`run --serve`), one JSON object per event as `--event-log` writes them;
//!   404 when the server only reads a directory.
//!
//! The page (`/`, with `/app.js` and `/style.css`) is embedded in the binary: no build step,
//! no CDN. The directory is always opened as a RocksDB secondary instance, so the server
//! never writes into it, whether a federation runs in it or not; each request reads the
//! directory as it was at most [`REFRESH`] earlier.

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
use ieschain_core::Hash;
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

/// Where a live server takes its events from: a new subscription per client.
pub type EventSource = Arc<dyn Fn() -> broadcast::Receiver<Event> + Send + Sync>;

/// What the handlers share: the directory, its latest snapshot, and the live events.
struct Explorer {
    data: PathBuf,
    latest: Mutex<Option<(Instant, Arc<Snapshot>)>>,
    events: Option<EventSource>,
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
    /// The snapshot, fresh within [`REFRESH`].
    fn snapshot(&self) -> Result<Arc<Snapshot>, Failure> {
        let unavailable = |e: String| Failure(StatusCode::SERVICE_UNAVAILABLE, e);
        let mut latest = self
            .latest
            .lock()
            .map_err(|_| unavailable("the explorer's state is poisoned".into()))?;
        if let Some((at, snapshot)) = latest.as_ref() {
            if at.elapsed() < REFRESH {
                return Ok(snapshot.clone());
            }
        }
        let snapshot = Arc::new(
            Snapshot::open(&self.data, Access::ReadOnly).map_err(|e| unavailable(e.to_string()))?,
        );
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

fn store_failure(e: impl std::fmt::Display) -> Failure {
    Failure(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

/// The explorer's routes over data directory `data`, with live events from `events` when
/// a federation runs in this process.
pub fn router(data: PathBuf, events: Option<EventSource>) -> Router {
    let explorer = Arc::new(Explorer {
        data,
        latest: Mutex::new(None),
        events,
    });
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
        .fallback(|| async {
            Failure(
                StatusCode::NOT_FOUND,
                "no such page; the API is /api/chains, /api/chain?name=… and /api/block/HASH"
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
/// `committed`, …), its data the event's JSON with names beside ids. A client that falls
/// behind gets a `lagged` event saying how many it missed; the stream ends with the
/// federation.
async fn live_events(State(explorer): State<Arc<Explorer>>) -> Result<Response, Failure> {
    let Some(source) = explorer.events.clone() else {
        return Err(Failure(
            StatusCode::NOT_FOUND,
            "no live events: this server reads a directory; `ieschain run --serve ADDR` \
             serves a running federation's events"
                .into(),
        ));
    };
    let receiver = source();
    let explorer = explorer.clone();
    let names_from = tokio::task::spawn_blocking(move || explorer.snapshot())
        .await
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    let stream = futures_util::stream::unfold(
        (receiver, names_from),
        |(mut receiver, snapshot)| async move {
            let event = match receiver.recv().await {
                Ok(event) => {
                    let value = snapshot.names().to_value(&event);
                    let kind = value["event"].as_str().unwrap_or("event").to_string();
                    SseEvent::default().event(kind).data(value.to_string())
                }
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

/// Serves the explorer of `data` on `listener` until `stop` resolves, with live events from
/// `events` when given.
pub async fn serve(
    listener: tokio::net::TcpListener,
    data: PathBuf,
    events: Option<EventSource>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(data, events))
        .with_graceful_shutdown(stop)
        .await
}
