//! Shared fixtures of the integration tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;

use ieschain::demo::write_sample_ledger;
use ieschain_core::sample::SampleFederation;
use ieschain_storage::{RocksOptions, RocksStore};

/// Writes the sample ledger of `seed` (4 members per consortium, 6 rounds) into `dir`, as
/// `examples/ledger_basics.rs` does.
pub fn sample_dir(dir: &Path, seed: u64) -> SampleFederation {
    let federation = SampleFederation::four_party(seed, 4);
    let store = RocksStore::open(dir, &federation.genesis, RocksOptions::default()).unwrap();
    write_sample_ledger(&store, &federation, 6).unwrap();
    federation
}

/// Runs the `ieschain` binary with `args`.
pub fn ieschain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ieschain"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

/// `ieschain run --data DATA --duration SECONDS` followed by `extra`.
#[allow(dead_code)] // not every test crate that includes this module runs a federation
pub fn run_args<'a>(data: &'a str, seconds: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["run", "--data", data, "--duration", seconds];
    args.extend_from_slice(extra);
    args
}

/// The exit code, stdout and stderr of `output`, as text.
pub fn outcome(output: &Output) -> (i32, String, String) {
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// What is wrong with `report` by the published JSON Schema of reports
/// (`docs/report.schema.json`): one line per violation, none when it conforms.
pub fn report_schema_errors(report: &serde_json::Value) -> Vec<String> {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../docs/report.schema.json"))
            .expect("the published schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("the published schema compiles");
    validator
        .iter_errors(report)
        .map(|e| format!("{}: {e}", e.instance_path))
        .collect()
}

/// Checks `report` against the published JSON Schema of reports.
pub fn assert_matches_report_schema(report: &serde_json::Value) {
    let errors = report_schema_errors(report);
    assert!(
        errors.is_empty(),
        "the report breaks its schema: {errors:#?}\n{report:#}"
    );
}

/// `ieschain args…` as a child process, its stdout read line by line on a thread (stderr
/// discarded).
pub fn spawn_with_lines(args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ieschain"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (child, rx)
}
