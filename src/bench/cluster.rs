//! `ieschain bench --cluster`: the four-party federation as separate processes on loopback
//! (`ieschain node`, one per member and the supervisor, each with its own RocksDB and QUIC
//! endpoint), beside the same federation in one process, in one run (issue 13).
//!
//! Both carry the members' own workload, its rates multiplied by [`LOAD_FACTOR`], with no
//! rotation inside the window. Both are counted the same way ([`Tally`]): a relay block
//! counts once every lane's relay has stored it, each of its records once, and a record's
//! latency runs from its creation to the last relay's store. In process the events come
//! from the federation's stream; across processes from every node's event log, merged in
//! time order (one machine, one clock).

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use ieschain_core::node::RecordStamp;
use ieschain_core::{Address, ConsortiumId};
use serde_json::{json, Value};

use super::load::{self, Load, RunSpec, Tally};
use super::percentile_json;
use crate::config::FederationConfig;
use crate::lifecycle::StopSignal;
use crate::spec::ChainSpec;

/// The members' workload rates are multiplied by this unless told otherwise: about 1,000
/// records a second for the four-party federation, half of them meter readings (private
/// chains only) and an eighth urgent.
pub const LOAD_FACTOR: f64 = 30.0;

/// The longest wait for every lane's first relay to be activated.
const SERVE_TIMEOUT: Duration = Duration::from_secs(30);

/// The federation both runs carry: four-party, its workload's rates × `load`.
pub fn config(load: f64) -> Result<FederationConfig> {
    let mut config = FederationConfig::four_party();
    config.timing.period = Duration::from_secs(600);
    let records = &mut config.workload.records;
    for rate in [
        &mut records.energy_supply,
        &mut records.equipment_maintenance,
        &mut records.efficiency_audit,
        &mut records.energy_saving_design,
        &mut records.data_trade,
        &mut records.distributed_energy,
        &mut records.meter_reading,
    ] {
        *rate *= load;
    }
    // Protocol runs need the embedding handle, which a node process has not.
    config.workload.protocols.join = 0.0;
    config.workload.protocols.power_purchase = 0.0;
    config.workload.protocols.data_trade = 0.0;
    config.check()?;
    Ok(config)
}

/// Runs both with the workload × `load` and returns their figures as JSON
/// (`in_process`, `cluster`).
pub fn run(quick: bool, load: f64, stop: &StopSignal) -> Result<Value> {
    let (warm_up, window) = if quick {
        (Duration::from_secs(2), Duration::from_secs(4))
    } else {
        (Duration::from_secs(4), Duration::from_secs(15))
    };
    if !(load.is_finite() && load > 0.0 && load <= 10_000.0) {
        bail!("--load-factor {load}: expected a number above 0 and at most 10000");
    }
    let config = config(load)?;
    let processes = config.member_count() + 1;
    let temp = tempfile::tempdir().context("creating a temporary directory")?;
    println!(
        "ieschain bench --cluster: four-party, its workload ×{load}, a window of {} s, in one process and then as {processes} processes",
        window.as_secs(),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let in_process = runtime
        .block_on(load::run(
            &temp.path().join("in-process"),
            RunSpec {
                config: config.clone(),
                load: Load::Workload,
                warm_up,
                window,
                drain: Duration::ZERO,
                serve_timeout: SERVE_TIMEOUT,
                failovers: 0,
            },
            Some(stop),
        ))
        .context("the in-process run")?;
    drop(runtime);
    let Some(in_process) = in_process else {
        bail!("stopped by a signal");
    };
    let cluster = run_cluster(&config, &temp.path().join("cluster"), warm_up, window, stop)
        .context("the cluster run")?;
    let value = json!({
        "load_factor": load,
        "window_s": window.as_secs_f64(),
        "processes": processes,
        "in_process": {
            "records_per_s": in_process.records_per_s,
            "records": in_process.records,
            "latency_ms": {"urgent": percentile_json(&in_process.urgent), "normal": percentile_json(&in_process.normal)},
            "elections_in_run": in_process.elections,
        },
        "cluster": {
            "records_per_s": cluster.records as f64 / window.as_secs_f64(),
            "records": cluster.records,
            "latency_ms": {"urgent": percentile_json(&cluster.tally.urgent), "normal": percentile_json(&cluster.tally.normal)},
            "elections_in_run": cluster.elections_in_run,
            "relay_blocks": cluster.tally.relay_blocks,
        },
    });
    print!("{}", table(&value));
    Ok(value)
}

/// The cluster run's count.
struct Counted {
    tally: Tally,
    records: u64,
    elections_in_run: usize,
}

/// Starts the federation as processes in `dir`, lets it run `warm_up` and `window` after
/// every lane serves, stops it, and counts its event logs.
fn run_cluster(
    config: &FederationConfig,
    dir: &Path,
    warm_up: Duration,
    window: Duration,
    stop: &StopSignal,
) -> Result<Counted> {
    let loopback = IpAddr::from([127, 0, 0, 1]);
    let mut spec = ChainSpec::build(config, &dir.join("keys"), loopback, 1)?;
    spec.place_on_free_ports(loopback)?;
    spec.check("bench spec")?;
    let spec_path = dir.join("spec.toml");
    spec.write(&spec_path)?;
    let exe = std::env::current_exe().context("finding this binary")?;
    let workload = SERVE_TIMEOUT + warm_up + window + Duration::from_secs(2);
    let mut nodes = Nodes::default();
    let names: Vec<String> = std::iter::once("supervisor".to_string())
        .chain(spec.members.keys().cloned())
        .collect();
    for name in &names {
        let mut command = Command::new(&exe);
        command
            .arg("node")
            .arg("--spec")
            .arg(&spec_path)
            .arg("--key")
            .arg(dir.join(format!("keys/{name}.key")))
            .arg("--data")
            .arg(dir.join(format!("data/{name}")));
        if name == "supervisor" {
            command.arg("--supervisor");
        } else {
            command
                .arg("--workload-for")
                .arg(format!("{}", workload.as_secs()));
        }
        let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
        let child = command
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .env("RUST_LOG", "warn")
            .spawn()
            .with_context(|| format!("starting {name}'s node"))?;
        nodes.0.push((name.clone(), child));
    }
    let logs: Vec<(String, PathBuf)> = names
        .iter()
        .map(|n| (n.clone(), dir.join(format!("data/{n}/events.jsonl"))))
        .collect();
    let supervisor_log = &logs[0].1;
    let started = Instant::now();
    let serving_at = loop {
        let activated: std::collections::BTreeSet<u64> = read_event_log(supervisor_log)
            .iter()
            .filter(|e| e["event"] == "activated")
            .filter_map(|e| e["lane"].as_u64())
            .collect();
        if activated.len() == config.consortiums.len() {
            break now_ms();
        }
        if stop.requested() {
            bail!("stopped by a signal");
        }
        if started.elapsed() > SERVE_TIMEOUT {
            bail!(
                "the lanes did not all serve within {SERVE_TIMEOUT:?} (logs in {})",
                dir.display()
            );
        }
        nodes.check_alive(dir)?;
        std::thread::sleep(Duration::from_millis(100));
    };
    let start = serving_at + warm_up.as_millis() as u64;
    let end = start + window.as_millis() as u64;
    while now_ms() < end + 1_000 {
        if stop.requested() {
            bail!("stopped by a signal");
        }
        nodes.check_alive(dir)?;
        std::thread::sleep(Duration::from_millis(100));
    }
    nodes.stop()?;
    count(&logs, config.consortiums.len(), start, end, serving_at)
}

/// The nodes' processes; dropped, they are killed.
#[derive(Default)]
struct Nodes(Vec<(String, Child)>);

impl Nodes {
    fn check_alive(&mut self, dir: &Path) -> Result<()> {
        for (name, child) in &mut self.0 {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "{name}'s node exited with {status} (see {}/{name}.log)",
                    dir.display()
                );
            }
        }
        Ok(())
    }

    /// SIGTERM to each, then a bounded wait for all.
    fn stop(&mut self) -> Result<()> {
        for (_, child) in &self.0 {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for (name, child) in &mut self.0 {
            loop {
                if child.try_wait()?.is_some() {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("{name}'s node did not stop within 30 s of SIGTERM");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Counts the merged logs: who serves from the supervisor's `elected` events, each relay
/// block from the `committed` events of every node.
fn count(
    logs: &[(String, PathBuf)],
    lanes: usize,
    start: u64,
    end: u64,
    serving_at: u64,
) -> Result<Counted> {
    enum Seen {
        Elected(ConsortiumId, Address),
        Stored(Address, load::BlockKey, bool, Vec<RecordStamp>),
    }
    let mut seen: Vec<(u64, Seen)> = Vec::new();
    for (_, path) in logs {
        for event in read_event_log(path) {
            let Some(at) = event["at"].as_str().and_then(ms_of) else {
                continue;
            };
            match event["event"].as_str() {
                Some("elected") => {
                    let lane = lane_of(&event["consortium"])?;
                    seen.push((at, Seen::Elected(lane, address_of(&event["relay"])?)));
                }
                Some("committed") => {
                    let key = (
                        lane_of(&event["lane"])?,
                        event["height"].as_u64().unwrap_or(0),
                        event["epoch"].as_u64().unwrap_or(0),
                    );
                    let records = event["records"]
                        .as_array()
                        .map(|records| records.iter().map(stamp_of).collect())
                        .transpose()?
                        .unwrap_or_default();
                    let produced = event["produced"] == true;
                    seen.push((
                        at,
                        Seen::Stored(address_of(&event["node"])?, key, produced, records),
                    ));
                }
                _ => {}
            }
        }
    }
    seen.sort_by_key(|(at, _)| *at);
    let mut tally = Tally::default();
    let mut relays: BTreeMap<ConsortiumId, Address> = BTreeMap::new();
    let (mut at_start, mut at_end) = (None, None);
    let mut elections_in_run = 0;
    for (at, event) in seen {
        if at >= start && at_start.is_none() {
            at_start = Some(tally.complete);
        }
        if at >= end && at_end.is_none() {
            at_end = Some(tally.complete);
        }
        tally.measuring = (start..end).contains(&at);
        match event {
            Seen::Elected(lane, relay) => {
                if at > serving_at {
                    elections_in_run += 1;
                }
                relays.insert(lane, relay);
                tally.relays_changed(&relays, at);
            }
            Seen::Stored(node, key, produced, records) => {
                if relays.len() == lanes {
                    tally.stored(node, key, produced, records, &relays, at);
                }
            }
        }
    }
    let records = at_end
        .unwrap_or(tally.complete)
        .saturating_sub(at_start.unwrap_or(tally.complete));
    Ok(Counted {
        tally,
        records,
        elections_in_run,
    })
}

/// Every event of a node's event log (`ieschain node`'s `events.jsonl`), as JSON; none if
/// the file is missing. A line being written as this reads, or cut short by a kill, is left
/// out.
pub fn read_event_log(path: &Path) -> Vec<Value> {
    let Ok(file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| serde_json::from_str(&line).ok())
        .collect()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn ms_of(text: &str) -> Option<u64> {
    humantime::parse_rfc3339(text)
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as u64)
}

fn lane_of(value: &Value) -> Result<ConsortiumId> {
    value
        .as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .map(ConsortiumId)
        .ok_or_else(|| anyhow!("an event log names a lane as {value}"))
}

fn address_of(value: &Value) -> Result<Address> {
    value
        .as_str()
        .and_then(Address::from_hex)
        .ok_or_else(|| anyhow!("an event log names a node as {value}"))
}

fn stamp_of(value: &Value) -> Result<RecordStamp> {
    Ok(RecordStamp {
        author: address_of(&value["author"])?,
        seq: value["seq"]
            .as_u64()
            .ok_or_else(|| anyhow!("a record stamp without a seq: {value}"))?,
        created_at: value["created_at"]
            .as_str()
            .and_then(ms_of)
            .ok_or_else(|| anyhow!("a record stamp without a time: {value}"))?,
        urgent: value["urgent"] == true,
    })
}

/// The two runs side by side, in Markdown.
pub fn table(v: &Value) -> String {
    let mut out = String::from(
        "\n| four-party, workload ×LOAD | records/s at every relay | urgent p50 / p99 ms | normal p50 / p99 ms | elections in the window |\n|---|---|---|---|---|\n",
    )
    .replace("LOAD", &format!("{}", v["load_factor"].as_f64().unwrap_or(0.0)));
    for (label, key) in [
        ("one process", "in_process"),
        ("processes on loopback", "cluster"),
    ] {
        let r = &v[key];
        let ms = |kind: &str, p: &str| {
            r["latency_ms"][kind][p]
                .as_f64()
                .map_or("–".to_string(), |x| format!("{x:.1}"))
        };
        out.push_str(&format!(
            "| {label} | {:.0} | {} / {} | {} / {} | {} |\n",
            r["records_per_s"].as_f64().unwrap_or(0.0),
            ms("urgent", "p50"),
            ms("urgent", "p99"),
            ms("normal", "p50"),
            ms("normal", "p99"),
            r["elections_in_run"]
        ));
    }
    out
}
