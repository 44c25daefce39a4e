//! Stopping on a signal (`src/lifecycle.rs`): real SIGINT and SIGTERM sent to a child
//! `ieschain` process. The first signal stops `run`, `simulate` and `bench` cleanly (their
//! summary and report, storage flushed); a second forces the exit (130).

mod util;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// How long a stopped command may take to end: a guard against a hang, not a measure.
const ENDS_WITHIN: Duration = Duration::from_secs(60);

fn start(args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    util::spawn_with_lines(args)
}

/// Reads lines until one contains `needle`; the lines read, that one last.
fn wait_for(lines: &mpsc::Receiver<String>, needle: &str) -> Vec<String> {
    wait_until(lines, needle, |line| line.contains(needle))
}

/// Reads lines until one satisfies `found` (described by `what`); the lines read, that
/// one last.
fn wait_until(
    lines: &mpsc::Receiver<String>,
    what: &str,
    found: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        match lines.recv_timeout(ENDS_WITHIN) {
            Ok(line) => {
                let done = found(&line);
                seen.push(line);
                if done {
                    return seen;
                }
            }
            Err(e) => panic!("no line with {what} ({e}); read: {seen:#?}"),
        }
    }
}

/// `ieschain run` for ten minutes on a data directory and a report in `dir`: the child, its
/// lines, the data directory and the report's path.
fn start_run(dir: &Path) -> (Child, mpsc::Receiver<String>, PathBuf, PathBuf) {
    let data = dir.join("data");
    let report = dir.join("report.json");
    let (child, lines) = start(&[
        "run",
        "--data",
        data.to_str().unwrap(),
        "--duration",
        "600",
        "--report",
        report.to_str().unwrap(),
    ]);
    (child, lines, data, report)
}

fn signal(child: &Child, signal: Signal) {
    kill(Pid::from_raw(child.id() as i32), signal).unwrap();
}

/// The child's exit code once it ends, and the rest of its stdout.
fn end(mut child: Child, lines: &mpsc::Receiver<String>) -> (i32, Vec<String>) {
    let mut rest = Vec::new();
    // The reader thread ends with the child's stdout.
    while let Ok(line) = lines.recv_timeout(ENDS_WITHIN) {
        rest.push(line);
    }
    let status = child.wait().unwrap();
    // Killed by a signal: minus its number, so that a failure names it.
    let code = status
        .code()
        .unwrap_or_else(|| -std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(1));
    (code, rest)
}

/// The report at `path`, checked against the published schema.
fn report(path: &Path) -> Value {
    let report = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    util::assert_matches_report_schema(&report);
    report
}

/// SIGTERM during `run`: summary, report (saying it was stopped), exit 0, and a data
/// directory that `verify` opens (the store flushed and its lock released).
#[test]
fn sigterm_stops_run_with_its_summary_report_and_a_flushed_store() {
    let dir = tempfile::tempdir().unwrap();
    let (child, lines, data, report_path) = start_run(dir.path());
    // A progress line with records committed (the first comes at once, the next ones
    // every 5 s when not on a terminal).
    wait_until(&lines, "records committed", |line| {
        line.split("committed ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n > 0)
    });
    signal(&child, Signal::SIGTERM);
    let (code, rest) = end(child, &lines);
    assert_eq!(code, 0, "{rest:#?}");
    assert!(
        rest.iter()
            .any(|l| l.starts_with("stopping: a signal came")),
        "{rest:#?}"
    );
    assert!(rest.iter().any(|l| l.starts_with("summary: ")), "{rest:#?}");
    let value = report(&report_path);
    assert_eq!(value["stopped_by_signal"], true);
    assert!(value["duration_s"].as_f64().unwrap() < 600.0);
    assert!(value["records_committed"].as_u64().unwrap() > 0, "{value}");
    let verified = Command::new(env!("CARGO_BIN_EXE_ieschain"))
        .args(["verify", "--data", data.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );
}

/// SIGINT during `simulate`: it ends at the virtual instant it sees the signal, prints its
/// summary, writes its report, and exits 130 (its invariants were not all judged).
#[test]
fn sigint_stops_simulate_with_its_summary_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let report_path = dir.path().join("report.json");
    let (child, lines) = start(&[
        "simulate",
        "--seed",
        "3",
        "--until",
        "86400",
        "--faults",
        "random",
        "--report",
        report_path.to_str().unwrap(),
    ]);
    wait_for(&lines, "ieschain simulate:");
    signal(&child, Signal::SIGINT);
    let (code, rest) = end(child, &lines);
    assert_eq!(code, 130, "{rest:#?}");
    assert!(
        rest.iter().any(|l| l.contains("event log digest")),
        "{rest:#?}"
    );
    assert!(
        rest.iter().any(|l| l.contains("stopped by a signal at")),
        "{rest:#?}"
    );
    let value = report(&report_path);
    assert_eq!(value["stopped_by_signal"], true);
    assert!(value["duration_s"].as_f64().unwrap() < 86_400.0, "{value}");
}

/// SIGTERM during `bench`: the part being measured is abandoned, what was measured before
/// is written (`measured`), and it exits 130.
#[test]
fn sigterm_stops_bench_with_what_it_measured() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let (child, lines) = start(&["bench", "--quick", "--json", json.to_str().unwrap()]);
    wait_for(&lines, "four-party federation, saturated");
    signal(&child, Signal::SIGTERM);
    let (code, rest) = end(child, &lines);
    assert_eq!(code, 130, "{rest:#?}");
    assert!(
        rest.iter()
            .any(|l| l.starts_with("bench stopped by a signal")),
        "{rest:#?}"
    );
    let value: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(value["stopped_by_signal"], true);
    assert!(
        value["measured"]["limits"]["verify_strict_per_s"]
            .as_f64()
            .unwrap()
            > 0.0,
        "{value}"
    );
}

/// A second signal while the first one's shutdown runs forces the exit: 130, no report.
/// SIGINT and SIGTERM are sent back to back; being different signals, neither merges into
/// the other, and whichever the process takes second finds the stop already asked.
#[test]
fn a_second_signal_forces_the_exit() {
    let dir = tempfile::tempdir().unwrap();
    let (child, lines, _, report_path) = start_run(dir.path());
    wait_for(&lines, "ieschain run:");
    wait_for(&lines, "committed");
    signal(&child, Signal::SIGINT);
    signal(&child, Signal::SIGTERM);
    let (code, rest) = end(child, &lines);
    assert_eq!(code, 130, "{rest:#?}");
    assert!(!report_path.exists(), "{rest:#?}");
}

fn ieschain(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ieschain"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

/// `verify` and `inspect` read the directory of a running federation (as a RocksDB
/// secondary instance, and say so on stderr); and `inspect` takes each lane's election
/// history from its most complete copy, so it names the newest election any node holds.
#[test]
fn verify_and_inspect_read_a_live_directory() {
    use ieschain_core::record::RecordBody;
    use ieschain_core::ChainId;
    use ieschain_storage::{ChainStore, RocksStore};

    let dir = tempfile::tempdir().unwrap();
    let (child, lines, data, _) = start_run(dir.path());
    let data_arg = data.to_str().unwrap();
    wait_for(&lines, "committed");
    let verified = ieschain(&["verify", "--data", data_arg]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr),
    );
    assert!(verified.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.starts_with("ok: "), "{stdout}");
    assert!(stderr.contains("secondary instance"), "{stderr}");
    let inspected = ieschain(&["inspect", "--data", data_arg, "--json"]);
    assert!(
        inspected.status.success(),
        "{}",
        String::from_utf8_lossy(&inspected.stderr)
    );
    let listing: Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert!(
        !listing["chains"].as_array().unwrap().is_empty(),
        "{listing}"
    );
    // Rotations (every 5 s) put newer elections on the lanes; wait for one, then stop.
    wait_until(&lines, "4 rotations", |line| {
        line.split("rotation ")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n >= 4)
    });
    signal(&child, Signal::SIGTERM);
    let (code, rest) = end(child, &lines);
    assert_eq!(code, 0, "{rest:#?}");

    let inspected = ieschain(&["inspect", "--data", data_arg, "--json"]);
    let listing: Value = serde_json::from_slice(&inspected.stdout).unwrap();
    let store = RocksStore::open_existing(&data).unwrap();
    let mut newest = std::collections::BTreeMap::new();
    for (holder, chain, head) in store.chains().unwrap() {
        let ChainId::Relay(lane) = chain else {
            continue;
        };
        for block in store.range(holder, chain, 1, head.height as usize).unwrap() {
            for record in block.records() {
                if let RecordBody::Election(e) = &record.content.body {
                    let name = store.genesis().consortium_name(lane).to_string();
                    let epoch = newest.entry(name).or_insert(0);
                    *epoch = e.epoch.max(*epoch);
                }
            }
        }
    }
    assert!(newest.values().any(|e| *e > 1), "{newest:?}");
    for (lane, epoch) in &newest {
        let listed = listing["elections"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["consortium_name"] == lane.as_str())
            .filter_map(|e| e["epoch"].as_u64())
            .max();
        assert_eq!(listed, Some(*epoch), "lane {lane}: {listing}");
    }
}
