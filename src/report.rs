//! The JSON report that `run` and `simulate` write (SPEC §10). Outside tools read it, so
//! its fields only ever grow.

use serde_json::{json, Value};

use crate::federation::Stats;

/// What a run adds to its statistics to make a report.
#[derive(Clone, Debug)]
pub struct RunInfo {
    /// The seed.
    pub seed: u64,
    /// Wall (or virtual) seconds the federation ran.
    pub duration_s: f64,
    /// The configuration file, or `built-in four-party`.
    pub config: String,
    /// Members in the federation.
    pub members: usize,
    /// Consortiums in the federation.
    pub consortiums: usize,
    /// Invariants that broke (empty when none did).
    pub invariants_broken: Vec<String>,
    /// Whether SIGINT or SIGTERM ended it before its duration ([`crate::lifecycle`]).
    pub stopped_by_signal: bool,
}

/// The report as JSON, with every field SPEC §10 lists.
pub fn report(info: &RunInfo, stats: &Stats) -> Value {
    let throughput = if info.duration_s > 0.0 {
        stats.records_committed as f64 / info.duration_s
    } else {
        0.0
    };
    json!({
        "version": crate::cli::VERSION,
        "seed": info.seed,
        "duration_s": info.duration_s,
        "config": info.config,
        "members": info.members,
        "consortiums": info.consortiums,
        "records_committed": stats.records_committed,
        "relay_blocks": stats.relay_blocks,
        "urgent_flushes": stats.urgent_flushes,
        "throughput_rps": throughput,
        "acks": stats.acks,
        "latency_ms": {
            "urgent": { "p50": stats.urgent.p50, "p99": stats.urgent.p99, "samples": stats.urgent.count },
            "normal": { "p50": stats.normal.p50, "p99": stats.normal.p99, "samples": stats.normal.count },
        },
        "elections": stats.elections,
        "failovers": stats.failovers,
        "rotations": stats.rotations,
        "backups_replaced": stats.backups_replaced,
        "joins": stats.joins,
        "joins_failed": stats.joins_failed,
        "trades": {
            "power": stats.trades_power,
            "data": stats.trades_data,
            "refused": stats.trades_refused,
            "disputes": stats.disputes,
        },
        "rejected": stats.rejected,
        "hostile": stats.hostile,
        "stalled": stats.stalled.iter().map(|s| serde_json::json!({
            "lane": s.lane.0,
            "epoch": s.epoch,
            "relay": s.relay.to_string(),
            "waiting_for": s.waiting_for.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            "at_ms": s.at,
        })).collect::<Vec<_>>(),
        "cut_off": stats.cut_off,
        "transport": {
            "delivered": stats.transport.delivered,
            "bytes": stats.transport.bytes,
            "dropped": stats.transport.dropped,
        },
        "invariants_broken": info.invariants_broken,
        "stopped_by_signal": info.stopped_by_signal,
        "event_log_digest": stats.event_log_digest.to_string(),
        "events": stats.events,
    })
}
