//! `ieschain bench`: the performance of a federation against the physical limits of the
//! machine it runs on, measured in one run by one binary (issue 6).
//!
//! In order:
//! 1. **Limits** ([`limits`]): `verify_strict` and batch verification per second on one
//!    core, signing, blake3, RocksDB synced 1 MiB write batches, and the in-process
//!    round trip between two actors.
//! 2. **End to end** ([`load`]): the four-party federation saturated by writer tasks,
//!    synced; records per second at every relay, and the ratio to the verify limit
//!    `cores × batch-verify rate ÷ relays` (issue 6's). Beside it, issue 12's restated
//!    limit: `cores × verify_strict rate ÷ checks a record needs` ([`checks_per_record`]). With the member actors signing each record,
//!    first with the process's nodes sharing a memo of passed signature checks
//!    (co-located, the default of `[runtime] shared_verification`) and then with every
//!    node checking every signature it takes (per node, as on machines of their own); and
//!    with every record signed by its writer before the run and submitted pre-signed (SPEC
//!    §12 D8).
//! 3. **Latency and failover**: the four-party federation with its own workload (nominal
//!    load) for the urgent and non-urgent latencies; then its relays are crashed one by
//!    one, and each failover timed from the crash to the new relay's first block.
//! 4. **Scaling**: the large federation's shape with 100, 1,000 and 10,000 members, each
//!    in a child process of this binary (`bench --scale-child N`), so that each peak
//!    resident size (`VmHWM`) is that size's alone. The 10,000-member run is the built-in
//!    `large` federation, and its throughput is `e2e.large`.
//!
//! `--quick` takes fewer and shorter samples and finishes in under a minute.
//! `--experiment window` runs the window and urgency experiment ([`window`]) instead, and
//! `--cluster` the federation as processes beside the same in one process ([`cluster`]).

pub mod cluster;
pub mod limits;
pub mod load;
pub mod window;

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use crate::config::{FederationConfig, GridQuorum};
use crate::federation::Latencies;
use crate::lifecycle::StopSignal;
use crate::markdown;
use crate::progress::Progress;
use load::{Load, RunResult, RunSpec};

/// The end-to-end target: this fraction of the verify limit.
pub const TARGET_RATIO: f64 = 0.5;
/// The federation sizes of the scaling table.
pub const SCALES: [u64; 3] = [100, 1_000, 10_000];
/// Issue 12's memory bound for 10,000 members, MiB (issue 6 had 2 GiB).
pub const MEMORY_BOUND_MIB: f64 = 1_024.0;
/// Issue 12's target for the four-party federation, co-located and synced: records a
/// second committed at every relay.
pub const FOUR_PARTY_TARGET: f64 = 20_000.0;
/// Issue 12's target for 10,000 members: records a second committed at every relay.
pub const LARGE_TARGET: f64 = 5_000.0;

/// What `ieschain bench` was asked for.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Fewer and shorter samples: under a minute.
    pub quick: bool,
    /// A stop asked by a signal: the bench abandons the part it is measuring and returns
    /// what it measured before (under `measured`, with `stopped_by_signal`).
    pub stop: StopSignal,
}

/// How long each part runs.
#[derive(Clone, Copy, Debug)]
struct Durations {
    warm_up: Duration,
    window: Duration,
    drain: Duration,
    latency_window: Duration,
    failovers: usize,
    scale_warm_up: Duration,
    scale_window: Duration,
}

impl Durations {
    fn of(quick: bool) -> Durations {
        if quick {
            Durations {
                warm_up: Duration::from_secs(2),
                window: Duration::from_secs(3),
                drain: Duration::from_secs(1),
                latency_window: Duration::from_secs(3),
                failovers: 1,
                scale_warm_up: Duration::from_secs(1),
                scale_window: Duration::from_secs(3),
            }
        } else {
            Durations {
                warm_up: Duration::from_secs(3),
                window: Duration::from_secs(20),
                drain: Duration::from_secs(15),
                latency_window: Duration::from_secs(20),
                failovers: 4,
                scale_warm_up: Duration::from_secs(3),
                scale_window: Duration::from_secs(10),
            }
        }
    }
}

/// Runs the whole bench, prints the table, and returns the JSON.
pub fn run(options: &Options) -> Result<Value> {
    let started = Instant::now();
    let quick = options.quick;
    let d = Durations::of(quick);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let temp = tempfile::tempdir().context("creating a temporary directory")?;
    let load_before = load_average();
    println!(
        "ieschain bench{}: {cores} cores, {}, load average {load_before}",
        if quick { " --quick" } else { "" },
        cpu_model()
    );

    let progress = Progress::new(4 + SCALES.len() as u64, "steps");
    progress.step(0, "measuring the limits ...");
    let limits = limits::measure(temp.path(), quick)?;
    let stop = &options.stop;
    if stop.requested() {
        return Ok(stopped(
            started,
            json!({ "limits": limits_json(&limits, cores) }),
        ));
    }
    let relays = FederationConfig::four_party().consortiums.len();
    let verify_limit = cores as f64 * limits.batch_verify_per_s / relays as f64;
    // Issue 12's restatement: the rate actually used (`verify_strict`, one at a time) over
    // the checks a record needs, on every core.
    let restated_limit =
        cores as f64 * limits.verify_strict_per_s / checks_per_record(relays) as f64;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;

    progress.step(
        1,
        "four-party federation, saturated, synced (co-located, then per node) ...",
    );
    // Four-party, saturated, no rotation inside the window (a rotation is not what these
    // runs measure): `name` is its directory, `load` its writers, `shared` whether its
    // nodes share the verification memo (`[runtime] shared_verification`).
    let saturated_run = |name: &str, load: Load, shared: bool| {
        let mut config = FederationConfig::four_party();
        config.timing.period = Duration::from_secs(600);
        config.runtime.shared_verification = shared;
        runtime.block_on(load::run(
            &temp.path().join(name),
            RunSpec {
                config,
                load,
                warm_up: d.warm_up,
                window: d.window,
                drain: d.drain,
                serve_timeout: Duration::from_secs(10),
                failovers: 0,
            },
            Some(stop),
        ))
    };
    let saturated = saturated_run("four-party-saturated", Load::Saturate, true);
    let Some(saturated) = saturated? else {
        return Ok(stopped(
            started,
            json!({ "limits": limits_json(&limits, cores) }),
        ));
    };
    // The same with each node checking every signature it takes, as on its own machine.
    let per_node = saturated_run("four-party-per-node", Load::Saturate, false);
    let Some(per_node) = per_node? else {
        return Ok(stopped(
            started,
            json!({ "limits": limits_json(&limits, cores), "saturated_records_per_s": saturated.records_per_s }),
        ));
    };

    progress.step(2, "four-party federation, saturated, pre-signed ...");
    let signed = saturated_run("four-party-signed", Load::SaturateSigned, true);
    let Some(signed) = signed? else {
        return Ok(stopped(
            started,
            json!({ "limits": limits_json(&limits, cores), "saturated_records_per_s": saturated.records_per_s }),
        ));
    };

    progress.step(
        3,
        "four-party federation, its own workload, then failovers ...",
    );
    let nominal = runtime.block_on(load::run(
        &temp.path().join("four-party-nominal"),
        RunSpec {
            config: FederationConfig::four_party(),
            load: Load::Workload,
            warm_up: Duration::from_secs(1),
            window: d.latency_window,
            drain: Duration::ZERO,
            serve_timeout: Duration::from_secs(10),
            failovers: d.failovers,
        },
        Some(stop),
    ));
    drop(runtime);
    let Some(nominal) = nominal? else {
        return Ok(stopped(
            started,
            json!({ "limits": limits_json(&limits, cores), "saturated_records_per_s": saturated.records_per_s }),
        ));
    };

    let mut scaling = Vec::new();
    for (done, members) in (4..).zip(SCALES) {
        progress.step(
            done,
            &format!("scaling: {members} members (child process) ..."),
        );
        if stop.requested() {
            break;
        }
        // A failed point is reported, not fatal: the rest of the table still stands.
        scaling.push(scale_in_child(members, quick, stop).unwrap_or_else(|e| {
            eprintln!("ieschain bench: scaling at {members} members: {e:#}");
            json!({"members": members, "records_per_s": null, "peak_rss_mib": null, "error": format!("{e:#}")})
        }));
    }
    progress.finish();
    let load_after = load_average();
    if stop.requested() {
        return Ok(stopped(
            started,
            json!({
                "limits": limits_json(&limits, cores),
                "saturated_records_per_s": saturated.records_per_s,
                "scaling": scaling,
            }),
        ));
    }

    let value = assemble(&Assembly {
        quick,
        cores,
        limits: &limits,
        verify_limit,
        restated_limit,
        relays,
        saturated: &saturated,
        per_node: &per_node,
        signed: &signed,
        nominal: &nominal,
        scaling: &scaling,
        load_before,
        load_after,
        seconds: started.elapsed().as_secs_f64(),
    });
    print!("{}", table(&value));
    Ok(value)
}

/// The signature checks a record needs in a federation of `relays` lanes, once per node
/// that must (`a_record_is_checked_once_per_node_that_must`, `core/tests/machines.rs`):
/// its lane's relay and backup when they take its block, and every other relay and its
/// backup when they take the relay block. Co-located nodes sharing the memo check it about
/// once between them; machines of their own, this many times.
pub fn checks_per_record(relays: usize) -> usize {
    2 * relays
}

/// The JSON of a bench stopped by a signal: `stopped_by_signal`, the seconds it ran, and
/// what it measured before, under `measured`.
fn stopped(started: Instant, measured: Value) -> Value {
    json!({
        "stopped_by_signal": true,
        "seconds": started.elapsed().as_secs_f64(),
        "measured": measured,
    })
}

/// Everything [`assemble`] turns into the JSON.
struct Assembly<'a> {
    quick: bool,
    cores: usize,
    limits: &'a limits::Limits,
    verify_limit: f64,
    /// [`checks_per_record`]'s limit: cores × `verify_strict` rate ÷ checks a record needs.
    restated_limit: f64,
    relays: usize,
    saturated: &'a RunResult,
    per_node: &'a RunResult,
    signed: &'a RunResult,
    nominal: &'a RunResult,
    scaling: &'a [Value],
    load_before: String,
    load_after: String,
    seconds: f64,
}

/// The machine's limits as JSON (the report's `limits`, without the federation's share).
fn limits_json(l: &limits::Limits, cores: usize) -> Value {
    json!({
        "cores": cores,
        "verify_strict_per_s": l.verify_strict_per_s,
        "batch_verify_per_s": l.batch_verify_per_s,
        "sign_per_s": l.sign_per_s,
        "blake3_bytes_per_s": l.blake3_bytes_per_s,
        "rocksdb_synced_1mib": {
            "appends_per_s": l.rocks_appends_per_s,
            "bytes_per_s": l.rocks_bytes_per_s,
        },
        "rocksdb_synced_small_write_ms": l.rocks_small_sync_ms,
        "round_trip_ms": l.round_trip_ms,
    })
}

fn percentile_json(samples: &Latencies) -> Value {
    if samples.is_empty() {
        return json!({"p50": null, "p99": null, "count": 0});
    }
    let p = samples.percentiles();
    json!({"p50": p.p50, "p99": p.p99, "count": p.count})
}

fn run_json(r: &RunResult, verify_limit: f64) -> Value {
    json!({
        "members": r.members,
        "records_per_s": r.records_per_s,
        "ratio_to_verify_limit": r.records_per_s / verify_limit,
        "window_s": r.window_s,
        "records": r.records,
        "relay_blocks_per_s": r.relay_blocks as f64 / r.window_s,
        "consortium_blocks_per_s": r.consortium_blocks as f64 / r.window_s,
        "latency_ms": {"urgent": percentile_json(&r.urgent), "normal": percentile_json(&r.normal)},
        "drained_s": r.drained_s,
        "elections_in_run": r.elections,
        "duplicates": r.duplicates,
        "lagged_events": r.lagged,
        "lanes_serving": r.serving,
    })
}

fn assemble(a: &Assembly<'_>) -> Value {
    let l = a.limits;
    let large = a
        .scaling
        .iter()
        .find(|s| s["members"].as_u64() == Some(10_000))
        .cloned()
        .unwrap_or(Value::Null);
    let large_rate = large["records_per_s"].as_f64();
    let mut limits = limits_json(l, a.cores);
    limits["relays"] = json!(a.relays);
    limits["verify_limit_records_per_s"] = json!(a.verify_limit);
    limits["checks_per_record"] = json!(checks_per_record(a.relays));
    limits["verify_limit_restated_records_per_s"] = json!(a.restated_limit);
    let mut failovers = a.nominal.failover_ms.clone();
    let failover_ms = limits::median(&mut failovers);
    let timing = FederationConfig::four_party().timing;
    let failover_bound_ms = timing.suspect_timeout().as_secs_f64() * 1e3 + l.round_trip_ms;
    // SPEC §14's take-over, from the election to the config block's release: two round
    // trips (the backup's catch-up, the activation) and two synced writes.
    let mut takeovers = a.nominal.takeover_ms.clone();
    let takeover_ms = limits::median(&mut takeovers);
    let takeover_bound_ms = 2.0 * l.round_trip_ms + 2.0 * l.rocks_small_sync_ms;
    // SPEC §12 D10: 2 round trips and 3 synced writes (the member's, the relay's and the
    // backup's, SPEC §14).
    let urgent_bound_ms = 2.0 * l.round_trip_ms + 3.0 * l.rocks_small_sync_ms;
    let urgent_p99 = (!a.nominal.urgent.is_empty()).then(|| a.nominal.urgent.percentiles().p99);
    let rss = |m: u64| {
        a.scaling
            .iter()
            .find(|s| s["members"].as_u64() == Some(m))
            .and_then(|s| s["peak_rss_mib"].as_f64())
    };
    let idle = |m: u64| {
        a.scaling
            .iter()
            .find(|s| s["members"].as_u64() == Some(m))
            .and_then(|s| s["idle_rss_mib"].as_f64())
    };
    let per_member_kib = |from: u64, to: u64| match (rss(from), rss(to)) {
        (Some(a), Some(b)) => Some((b - a) * 1024.0 / (to - from) as f64),
        _ => None,
    };
    let idle_per_member_kib = |from: u64, to: u64| match (idle(from), idle(to)) {
        (Some(a), Some(b)) => Some((b - a) * 1024.0 / (to - from) as f64),
        _ => None,
    };
    let ratio = a.saturated.records_per_s / a.verify_limit;
    json!({
        "quick": a.quick,
        "machine": {
            "cores": a.cores,
            "cpu": cpu_model(),
            "load_average_before": a.load_before,
            "load_average_after": a.load_after,
            "seconds": a.seconds,
        },
        "limits": limits,
        "e2e": {
            "four_party": run_json(a.saturated, a.verify_limit),
            "four_party_per_node": run_json(a.per_node, a.verify_limit),
            "verification": "four_party: the nodes of the process share a memo of passed signature checks (co-located, the default); four_party_per_node: every node checks every signature it takes, as on a machine of its own",
            "large": {
                "members": large["members"],
                "records_per_s": large_rate,
                "ratio_to_verify_limit": large_rate.map(|r| r / a.verify_limit),
            },
            "four_party_signed": {
                "run": run_json(a.signed, a.verify_limit),
                "presigned_records": a.signed.presigned,
                "writers_ran_dry": a.signed.writers_ran_dry,
            },
            "signing": "four_party: in the timed part (FederationHandle::submit has the member actor sign each record); four_party_signed: before the run (submit_signed), latencies not reported",
        },
        "latency_ms": {
            "urgent": percentile_json(&a.nominal.urgent),
            "normal": percentile_json(&a.nominal.normal),
            "load": "the four-party federation's own workload (nominal load)",
        },
        "failover_ms": if a.nominal.failover_ms.is_empty() { Value::Null } else { json!(failover_ms) },
        "failover_samples_ms": a.nominal.failover_ms,
        "failover_timeouts": a.nominal.failover_timeouts,
        "takeover_ms": if a.nominal.takeover_ms.is_empty() { Value::Null } else { json!(takeover_ms) },
        "takeover_samples_ms": a.nominal.takeover_ms,
        "scaling": a.scaling,
        "per_member_kib": {
            "100_to_1000": per_member_kib(100, 1_000),
            "1000_to_10000": per_member_kib(1_000, 10_000),
            "idle_100_to_1000": idle_per_member_kib(100, 1_000),
            "idle_1000_to_10000": idle_per_member_kib(1_000, 10_000),
        },
        "targets": {
            "e2e_ratio": {"target": TARGET_RATIO, "measured": ratio, "met": ratio >= TARGET_RATIO},
            "four_party_records_per_s": {"target": FOUR_PARTY_TARGET, "measured": a.saturated.records_per_s, "met": a.saturated.records_per_s >= FOUR_PARTY_TARGET},
            "no_spurious_election": {"target": 0, "measured": a.saturated.elections, "met": a.saturated.elections == 0},
            "large_records_per_s": {"target": LARGE_TARGET, "measured": large_rate, "met": large_rate.is_some_and(|r| r >= LARGE_TARGET)},
            "urgent_p99_ms": {"bound": urgent_bound_ms, "measured": urgent_p99, "met": urgent_p99.is_some_and(|p| p <= urgent_bound_ms)},
            "failover_ms": {"bound": failover_bound_ms, "measured": if failovers.is_empty() { None } else { Some(failover_ms) }, "met": !failovers.is_empty() && a.nominal.failover_timeouts == 0 && failover_ms <= failover_bound_ms},
            "takeover_ms": {"bound": takeover_bound_ms, "measured": if takeovers.is_empty() { None } else { Some(takeover_ms) }, "met": !takeovers.is_empty() && takeover_ms <= takeover_bound_ms},
            "memory_10000_mib": {"bound": MEMORY_BOUND_MIB, "measured": rss(10_000), "met": rss(10_000).is_some_and(|r| r < MEMORY_BOUND_MIB)},
            // Flat: a member costs no more from 1,000 to 10,000 than from 100 to 1,000
            // (with a quarter's slack for the noise of peak RSS).
            "memory_per_member_flat": {
                "bound_kib": per_member_kib(100, 1_000).map(|k| 1.25 * k),
                "measured_kib": per_member_kib(1_000, 10_000),
                "met": matches!((per_member_kib(100, 1_000), per_member_kib(1_000, 10_000)), (Some(a), Some(b)) if b <= 1.25 * a),
            },
        },
    })
}

fn num(v: &Value) -> String {
    if let Some(count) = v.as_u64() {
        return count.to_string();
    }
    match v.as_f64() {
        None => "-".into(),
        Some(x) if x.abs() >= 100.0 => format!("{x:.0}"),
        Some(x) if x.abs() >= 10.0 => format!("{x:.1}"),
        Some(x) => format!("{x:.3}"),
    }
}

fn met(v: &Value) -> &'static str {
    if v["met"].as_bool() == Some(true) {
        "met"
    } else {
        "MISSED"
    }
}

/// A row of the end-to-end table for a saturated run's JSON.
fn saturated_row(label: &str, e: &Value) -> Vec<String> {
    let pair = |a: &Value, b: &Value| format!("{} / {}", num(a), num(b));
    vec![
        label.to_string(),
        num(&e["records_per_s"]),
        num(&e["ratio_to_verify_limit"]),
        pair(
            &e["latency_ms"]["urgent"]["p50"],
            &e["latency_ms"]["urgent"]["p99"],
        ),
        pair(
            &e["latency_ms"]["normal"]["p50"],
            &e["latency_ms"]["normal"]["p99"],
        ),
        num(&e["relay_blocks_per_s"]),
        e["elections_in_run"].to_string(),
        num(&e["drained_s"]),
    ]
}

/// The table `ieschain bench` prints: Markdown, so it pastes into BENCHMARKS.md as is.
pub fn table(v: &Value) -> String {
    let mut out = String::new();
    let l = &v["limits"];
    let e = &v["e2e"]["four_party"];
    let t = &v["targets"];
    let mib = |x: &Value| num(&json!(x.as_f64().unwrap_or(0.0) / 1048576.0));
    let limits = [
        ("ed25519 verify_strict /s", num(&l["verify_strict_per_s"])),
        (
            "ed25519 batch verify /s (batches of 64)",
            num(&l["batch_verify_per_s"]),
        ),
        ("ed25519 sign /s", num(&l["sign_per_s"])),
        ("blake3 MiB/s (1 MiB input)", mib(&l["blake3_bytes_per_s"])),
        (
            "RocksDB synced 1 MiB batches /s",
            num(&l["rocksdb_synced_1mib"]["appends_per_s"]),
        ),
        (
            "RocksDB synced MiB/s",
            mib(&l["rocksdb_synced_1mib"]["bytes_per_s"]),
        ),
        (
            "RocksDB synced small write, ms",
            num(&l["rocksdb_synced_small_write_ms"]),
        ),
        ("in-process round trip, ms", num(&l["round_trip_ms"])),
        (
            "verify limit, records/s (cores × batch ÷ relays)",
            num(&l["verify_limit_records_per_s"]),
        ),
        (
            "restated: cores × verify_strict ÷ checks a record needs, records/s",
            num(&l["verify_limit_restated_records_per_s"]),
        ),
    ];
    out.push('\n');
    out.push_str(&markdown::table(
        &[("Limit (one core unless said)", false), ("Value", true)],
        limits.map(|(name, value)| vec![name.to_string(), value]),
    ));

    let large = &v["e2e"]["large"];
    out.push('\n');
    out.push_str(&markdown::table(
        &[
            ("End to end (synced, at every relay)", false),
            ("records/s", true),
            ("ratio to verify limit", true),
            ("urgent p50 / p99 ms", true),
            ("normal p50 / p99 ms", true),
            ("relay blocks/s", true),
            ("elections", true),
            ("drained s", true),
        ],
        [
            saturated_row("four-party, saturated (co-located)", e),
            saturated_row(
                "four-party, saturated, per node",
                &v["e2e"]["four_party_per_node"],
            ),
            {
                let s = &v["e2e"]["four_party_signed"]["run"];
                vec![
                    "four-party, saturated, pre-signed".to_string(),
                    num(&s["records_per_s"]),
                    num(&s["ratio_to_verify_limit"]),
                    String::new(),
                    String::new(),
                    num(&s["relay_blocks_per_s"]),
                    s["elections_in_run"].to_string(),
                    num(&s["drained_s"]),
                ]
            },
            vec![
                "large (10,000 members), saturated".to_string(),
                num(&large["records_per_s"]),
                num(&large["ratio_to_verify_limit"]),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ],
        ],
    ));

    let lat = &v["latency_ms"];
    out.push('\n');
    out.push_str(&markdown::table(
        &[
            ("Latency, creation to last relay, nominal load", false),
            ("p50 ms", true),
            ("p99 ms", true),
            ("samples", true),
        ],
        ["urgent", "normal"].map(|kind| {
            vec![
                kind.to_string(),
                num(&lat[kind]["p50"]),
                num(&lat[kind]["p99"]),
                lat[kind]["count"].to_string(),
            ]
        }),
    ));
    let samples = |key: &str| {
        v[key]
            .as_array()
            .map(|a| a.iter().map(num).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let _ = writeln!(
        out,
        "\nfailover (relay crash to the new relay's first block): median {} ms, samples {:?} ms, timeouts {}",
        num(&v["failover_ms"]),
        samples("failover_samples_ms"),
        v["failover_timeouts"]
    );
    let _ = writeln!(
        out,
        "take-over (the failover's election to its config block's release): median {} ms, samples {:?} ms",
        num(&v["takeover_ms"]),
        samples("takeover_samples_ms"),
    );

    out.push('\n');
    out.push_str(&markdown::table(
        &[
            ("Members", true),
            ("records/s", true),
            ("peak RSS MiB", true),
            ("idle RSS MiB", true),
            ("lanes serving", true),
            ("elections in run", true),
        ],
        v["scaling"].as_array().into_iter().flatten().map(|s| {
            vec![
                s["members"].to_string(),
                num(&s["records_per_s"]),
                num(&s["peak_rss_mib"]),
                num(&s["idle_rss_mib"]),
                s["lanes_serving"].to_string(),
                s["elections_in_run"].to_string(),
            ]
        }),
    ));
    let _ = writeln!(
        out,
        "\nper-member memory, peak: {} KiB (100 → 1,000), {} KiB (1,000 → 10,000); idle (every lane serving, before load): {} KiB, {} KiB",
        num(&v["per_member_kib"]["100_to_1000"]),
        num(&v["per_member_kib"]["1000_to_10000"]),
        num(&v["per_member_kib"]["idle_100_to_1000"]),
        num(&v["per_member_kib"]["idle_1000_to_10000"])
    );

    let target = |name: String, key: &str, bound: &str, measured: &str| {
        vec![
            name,
            num(&t[key][bound]),
            num(&t[key][measured]),
            met(&t[key]).to_string(),
        ]
    };
    out.push('\n');
    out.push_str(&markdown::table(
        &[
            ("Target", false),
            ("bound", true),
            ("measured", true),
            ("", false),
        ],
        [
            target(
                format!("end to end ≥ {TARGET_RATIO} × verify limit"),
                "e2e_ratio",
                "target",
                "measured",
            ),
            target(
                format!("four-party, co-located ≥ {FOUR_PARTY_TARGET:.0} records/s"),
                "four_party_records_per_s",
                "target",
                "measured",
            ),
            target(
                "no election in the saturated co-located window".into(),
                "no_spurious_election",
                "target",
                "measured",
            ),
            target(
                format!("10,000 members ≥ {LARGE_TARGET:.0} records/s"),
                "large_records_per_s",
                "target",
                "measured",
            ),
            target(
                "urgent p99 ≤ 2 × round trip + 3 synced writes, ms".into(),
                "urgent_p99_ms",
                "bound",
                "measured",
            ),
            target(
                "failover ≤ suspect_after × heartbeat + round trip, ms".into(),
                "failover_ms",
                "bound",
                "measured",
            ),
            target(
                "take-over ≤ 2 × round trip + 2 × synced write, ms".into(),
                "takeover_ms",
                "bound",
                "measured",
            ),
            target(
                "10,000 members < 1 GiB, MiB".into(),
                "memory_10000_mib",
                "bound",
                "measured",
            ),
            target(
                "flat KiB per member, 1,000 → 10,000 (≤ 1.25 × 100 → 1,000)".into(),
                "memory_per_member_flat",
                "bound_kib",
                "measured_kib",
            ),
        ],
    ));
    let _ = writeln!(
        out,
        "\n(load average {} before, {} after; {:.0} s in all; the member actors sign inside the timed part except in the pre-signed row: see `e2e.signing`)",
        v["machine"]["load_average_before"].as_str().unwrap_or("?"),
        v["machine"]["load_average_after"].as_str().unwrap_or("?"),
        v["machine"]["seconds"].as_f64().unwrap_or(0.0)
    );
    out
}

/// The large federation's shape with `members` members: every group scaled, relay-capable
/// groups keeping at least 2 (a relay and a backup), the largest group taking the
/// remainder so that the total is exact. 10,000 is `large.toml` itself.
pub fn scaled_config(members: u64) -> Result<FederationConfig> {
    let mut config = FederationConfig::large();
    let total = config.member_count();
    if members != total {
        let mut sum = 0u64;
        for member in config
            .consortiums
            .iter_mut()
            .flat_map(|c| c.members.iter_mut())
        {
            let floor = if member.relay_capable { 2 } else { 1 };
            let scaled = (member.len() * members / total).max(floor);
            member.count = Some(u32::try_from(scaled)?);
            sum += scaled;
        }
        let largest = config
            .consortiums
            .iter_mut()
            .flat_map(|c| c.members.iter_mut())
            .max_by_key(|m| m.len())
            .ok_or_else(|| anyhow!("large.toml has no members"))?;
        let adjusted = (largest.len() + members)
            .checked_sub(sum)
            .filter(|n| *n >= 1)
            .ok_or_else(|| anyhow!("{members} members are too few for large.toml's groups"))?;
        largest.count = Some(u32::try_from(adjusted)?);
    }
    // A majority of the grid approves a power trade, as in large.toml.
    let grid: u64 = config
        .grid()
        .and_then(|g| config.consortiums.get(g.0 as usize))
        .map(|c| c.members.iter().map(|m| m.len()).sum())
        .unwrap_or(1);
    config.grid_quorum = GridQuorum::Count(u32::try_from(grid / 2 + 1)?);
    config.timing.period = Duration::from_secs(600);
    config.check()?;
    Ok(config)
}

/// One scaling point, in this process: `members` members in the large federation's shape,
/// saturated as the four-party run is, then this process's peak resident size. `bench
/// --scale-child N` runs it and prints the JSON on one line, for the parent to read.
pub fn scale_child(members: u64, quick: bool) -> Result<Value> {
    let d = Durations::of(quick);
    let config = scaled_config(members)?;
    let temp = tempfile::tempdir().context("creating a temporary directory")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let started = Instant::now();
    let result = runtime
        .block_on(load::run(
            &temp.path().join("federation"),
            RunSpec {
                config,
                load: Load::Saturate,
                warm_up: d.scale_warm_up,
                window: d.scale_window,
                drain: Duration::ZERO,
                serve_timeout: Duration::from_secs(if quick { 10 } else { 30 }),
                failovers: 0,
            },
            None,
        ))?
        .context("the scale child's run ended without a result")?;
    let peak = peak_rss_mib()?;
    Ok(json!({
        "members": result.members,
        "records_per_s": result.records_per_s,
        "peak_rss_mib": peak,
        "idle_rss_mib": result.idle_rss_mib,
        "lanes_serving": result.serving,
        "elections_in_run": result.elections,
        "relay_blocks_per_s": result.relay_blocks as f64 / result.window_s,
        "lagged_events": result.lagged,
        "seconds": started.elapsed().as_secs_f64(),
    }))
}

/// The prefix of the line a scale child prints its result on.
pub const CHILD_LINE: &str = "scale-child: ";

/// Runs [`scale_child`] in a child process of this binary and reads its line.
fn scale_in_child(members: u64, quick: bool, stop: &StopSignal) -> Result<Value> {
    use std::process::Stdio;
    let exe = std::env::current_exe().context("finding this binary")?;
    let mut command = std::process::Command::new(exe);
    command.args(["bench", "--scale-child", &members.to_string()]);
    if quick {
        command.arg("--quick");
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the scale child")?;
    // The child's output is a few lines; it is read once the child has ended.
    while child.try_wait()?.is_none() {
        if stop.requested() {
            let _ = child.kill();
            let _ = child.wait();
            bail!("stopped by a signal");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = child
        .wait_with_output()
        .context("reading the scale child")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(CHILD_LINE));
    match (output.status.success(), line) {
        (true, Some(line)) => Ok(serde_json::from_str(line)?),
        _ => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            bail!(
                "the {members}-member child failed ({}): {}",
                output.status,
                stderr.lines().last().unwrap_or("no output")
            )
        }
    }
}

/// This process's peak resident set size (`VmHWM`), MiB.
pub fn peak_rss_mib() -> Result<f64> {
    let status = procfs::process::Process::myself()
        .and_then(|p| p.status())
        .context("reading this process's status")?;
    let kib = status
        .vmhwm
        .ok_or_else(|| anyhow!("no VmHWM in this process's status"))?;
    Ok(kib as f64 / 1024.0)
}

/// The model of the first CPU.
pub fn cpu_model() -> String {
    use procfs::Current;
    procfs::CpuInfo::current()
        .ok()
        .and_then(|info| info.model_name(0).map(str::to_string))
        .unwrap_or_else(|| "unknown CPU".into())
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    use procfs::Current;
    procfs::LoadAverage::current()
        .map(|l| format!("{:.2} {:.2} {:.2}", l.one, l.five, l.fifteen))
        .unwrap_or_else(|_| "?".into())
}

/// Writes `value` to `path` as pretty JSON.
pub fn write_json(path: &Path, value: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
