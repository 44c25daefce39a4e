//! The JSON report that `run` and `simulate` write (SPEC §10). Outside tools read it, so
//! its fields are added, never renamed or removed. [`Report`] is its one definition: the
//! JSON Schema published in `docs/report.schema.json` is generated from it ([`schema`]),
//! and the tests check real reports against that file. The schema refuses unknown
//! fields, so a report is checked against the schema of its own version (`ieschain
//! schema` of the same binary).

use std::collections::BTreeMap;

use ieschain_core::Address;
use schemars::JsonSchema;
use serde::Serialize;

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
    /// The consortiums' names, by id: each lane's name.
    pub lane_names: Vec<String>,
    /// Invariants that broke (empty when none did).
    pub invariants_broken: Vec<String>,
    /// Whether SIGINT or SIGTERM ended it before its duration ([`crate::lifecycle`]).
    pub stopped_by_signal: bool,
}

/// The report of a `run` or a `simulate`.
#[derive(Clone, Debug, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(deny_unknown_fields)]
pub struct Report {
    /// The program's version and commit.
    pub version: String,
    /// The seed of keys, workload (and faults).
    pub seed: u64,
    /// Seconds the federation ran: wall seconds for `run`, virtual for `simulate`.
    pub duration_s: f64,
    /// The configuration file, or the built-in one's name.
    pub config: String,
    /// Members at the start.
    pub members: usize,
    /// Consortiums.
    pub consortiums: usize,
    /// Records in released relay blocks, each counted once.
    pub records_committed: u64,
    /// Relay blocks released.
    pub relay_blocks: u64,
    /// Relay blocks sent at once because of an urgent block.
    pub urgent_flushes: u64,
    /// Records committed per second of `duration_s`.
    pub throughput_rps: f64,
    /// Consortium blocks acknowledged to their members.
    pub acks: u64,
    /// Latency from a record's creation to its arrival at the last relay.
    pub latency_ms: LatencyReport,
    /// Elections of every reason.
    pub elections: u64,
    /// Failovers.
    pub failovers: u64,
    /// Rotations.
    pub rotations: u64,
    /// Backups replaced.
    pub backups_replaced: u64,
    /// Joins completed.
    pub joins: u64,
    /// Joins that failed.
    pub joins_failed: u64,
    /// Trades.
    pub trades: TradesReport,
    /// Rejected inputs, by kind.
    pub rejected: BTreeMap<String, u64>,
    /// Rejections of hostile inputs.
    pub hostile: u64,
    /// Take-overs that found no member of their source configuration answering.
    pub stalled: Vec<StallReport>,
    /// Consortiums cut off from the relay chain.
    pub cut_off: u64,
    /// What the transport carried.
    pub transport: TransportReport,
    /// The invariants that broke, each with its detail; empty when none did.
    pub invariants_broken: Vec<String>,
    /// Whether SIGINT or SIGTERM ended the run before its duration.
    pub stopped_by_signal: bool,
    /// blake3 of the canonical event log, full hex.
    pub event_log_digest: String,
    /// Events seen.
    pub events: u64,
}

/// Urgent and normal latencies.
#[derive(Clone, Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct LatencyReport {
    /// Urgent records.
    pub urgent: PercentileReport,
    /// Normal records.
    pub normal: PercentileReport,
}

/// Percentiles of one latency, ms.
#[derive(Clone, Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct PercentileReport {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Samples.
    pub samples: usize,
}

/// The trades of SPEC §6.
#[derive(Clone, Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct TradesReport {
    /// Power trades settled.
    pub power: u64,
    /// Data trades delivered.
    pub data: u64,
    /// Power trades refused or rejected by the grid.
    pub refused: u64,
    /// Data deliveries disputed.
    pub disputes: u64,
}

/// A stalled take-over.
#[derive(Clone, Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct StallReport {
    /// The lane (consortium id).
    pub lane: u16,
    /// The lane's name (its consortium's).
    pub lane_name: String,
    /// The waiting configuration's epoch.
    pub epoch: u64,
    /// Its relay, full hex.
    pub relay: String,
    /// The relay's name.
    pub relay_name: String,
    /// The source members it waits for, full hex.
    pub waiting_for: Vec<String>,
    /// Their names.
    pub waiting_for_names: Vec<String>,
    /// When, ms since the Unix epoch (virtual in a simulation).
    pub at_ms: u64,
    /// When, RFC 3339 with milliseconds.
    pub at: String,
}

/// The transport's counters.
#[derive(Clone, Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct TransportReport {
    /// Envelopes delivered.
    pub delivered: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Envelopes dropped.
    pub dropped: u64,
}

/// The report of a run: `info` and `stats`, with `name` naming addresses.
pub fn report(info: &RunInfo, stats: &Stats, name: &dyn Fn(&Address) -> String) -> Report {
    let throughput = if info.duration_s > 0.0 {
        stats.records_committed as f64 / info.duration_s
    } else {
        0.0
    };
    let percentiles = |p: &crate::federation::Percentiles| PercentileReport {
        p50: p.p50,
        p99: p.p99,
        samples: p.count,
    };
    Report {
        version: crate::cli::VERSION.to_string(),
        seed: info.seed,
        duration_s: info.duration_s,
        config: info.config.clone(),
        members: info.members,
        consortiums: info.consortiums,
        records_committed: stats.records_committed,
        relay_blocks: stats.relay_blocks,
        urgent_flushes: stats.urgent_flushes,
        throughput_rps: throughput,
        acks: stats.acks,
        latency_ms: LatencyReport {
            urgent: percentiles(&stats.urgent),
            normal: percentiles(&stats.normal),
        },
        elections: stats.elections,
        failovers: stats.failovers,
        rotations: stats.rotations,
        backups_replaced: stats.backups_replaced,
        joins: stats.joins,
        joins_failed: stats.joins_failed,
        trades: TradesReport {
            power: stats.trades_power,
            data: stats.trades_data,
            refused: stats.trades_refused,
            disputes: stats.disputes,
        },
        rejected: stats.rejected.clone(),
        hostile: stats.hostile,
        stalled: stats
            .stalled
            .iter()
            .map(|s| StallReport {
                lane: s.lane.0,
                lane_name: info
                    .lane_names
                    .get(usize::from(s.lane.0))
                    .cloned()
                    .unwrap_or_else(|| format!("#{}", s.lane.0)),
                epoch: s.epoch,
                relay: s.relay.to_string(),
                relay_name: name(&s.relay),
                waiting_for: s.waiting_for.iter().map(Address::to_string).collect(),
                waiting_for_names: s.waiting_for.iter().map(name).collect(),
                at_ms: s.at,
                at: ieschain_core::serde_json_form::rfc3339(s.at),
            })
            .collect(),
        cut_off: stats.cut_off,
        transport: TransportReport {
            delivered: stats.transport.delivered,
            bytes: stats.transport.bytes,
            dropped: stats.transport.dropped,
        },
        invariants_broken: info.invariants_broken.clone(),
        stopped_by_signal: info.stopped_by_signal,
        event_log_digest: stats.event_log_digest.to_string(),
        events: stats.events,
    }
}

/// The JSON Schema of [`Report`], as published in `docs/report.schema.json`.
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Report)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published schema is the one the code generates: a change to [`Report`] must
    /// come with the file (`cargo run -- schema > docs/report.schema.json`).
    #[test]
    fn the_published_schema_is_current() {
        let published: serde_json::Value =
            serde_json::from_str(include_str!("../docs/report.schema.json"))
                .expect("docs/report.schema.json is JSON");
        assert_eq!(
            published,
            schema(),
            "docs/report.schema.json is stale: regenerate it with `ieschain schema`"
        );
    }
}
