//! The `ieschain` command line (SPEC §10).
//!
//! Exit codes are part of the interface: 0 on success; for `verify`, 1 when a block is bad
//! (with a line containing `chain=<name> height=<h>`); for `simulate`, 1 when an invariant
//! broke; 2 on usage or I/O errors; 130 when SIGINT or SIGTERM stopped `simulate` or
//! `bench` before the end (their summary and report are still written), or when a second
//! signal forced any command out. `run` stopped by a signal ends as if its duration were
//! over: summary, report, storage flushed, exit 0. Bad flags and bad files produce one clear
//! line, never a panic.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ieschain_core::genesis::{Directory, Genesis};
use ieschain_core::{Address, AnyBlock, ConsortiumId, Record};
use ieschain_storage::verify::{verify, VerifyError};
use ieschain_storage::{ChainStore, StoreError};
use serde_json::{json, Value};

use crate::config::FederationConfig;
use crate::explore::{Access, Snapshot};
use crate::faults::FaultPlan;
use crate::federation::Federation;
use crate::json::Names;
use crate::lifecycle::{StopSignal, INTERRUPTED};
use crate::progress::Progress;
use crate::report::{report, RunInfo};
use crate::simulation::Simulation;
use crate::trace::Trace;

/// The version `--version` prints and the reports carry: the crate's, and the git commit it
/// was built from (`unknown` outside a git checkout).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("IESCHAIN_COMMIT"),
    ")"
);

const EXAMPLES: &str = "Examples:
  ieschain run --duration 1m --report report.json
  ieschain simulate --seed 7 --until 1h --faults random
  ieschain verify --data ieschain-data
  ieschain inspect --data ieschain-data --chain relay/grid
  ieschain completions bash > ~/.local/share/bash-completion/completions/ieschain

Logging: -v (info), -vv (debug), -vvv (trace), -q (errors only); RUST_LOG overrides.";

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "ieschain",
    version = VERSION,
    about = "An energy blockchain for integrated energy services: consortium chains under a relay chain",
    long_about = None,
    after_help = EXAMPLES
)]
struct Cli {
    /// More log lines: -v info, -vv debug, -vvv trace (RUST_LOG overrides).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only errors in the log (RUST_LOG overrides).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

/// The default log filter that `-v`, `-vv`, `-vvv` and `-q` in `args` ask for (`warn` with
/// none), for the binary to give `env_logger` before the command line is parsed. `RUST_LOG`
/// still overrides it.
pub fn log_filter(args: &[OsString]) -> &'static str {
    let mut verbose = 0usize;
    let mut quiet = false;
    for arg in args.iter().skip(1).filter_map(|a| a.to_str()) {
        match arg {
            "--verbose" => verbose += 1,
            "--quiet" => quiet = true,
            short if short.len() > 1 && short.starts_with('-') && !short.starts_with("--") => {
                let flags = &short[1..];
                if flags.chars().all(|c| c == 'v') {
                    verbose += flags.len();
                } else if flags == "q" {
                    quiet = true;
                }
            }
            _ => {}
        }
    }
    match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a federation in real time with its workload: elections, batching, rotations,
    /// failovers. Prints progress and a summary, and writes the JSON report.
    #[command(
        after_help = "Examples:\n  ieschain run\n  ieschain run --duration 5m --data /tmp/fed --report /tmp/fed/report.json\n  ieschain run --config my-federation.toml --seed 3 --mermaid trace.md\n\nSIGINT or SIGTERM stops it cleanly (summary, report, storage flushed); a second exits at once."
    )]
    Run(RunArgs),
    /// Simulate a federation deterministically in virtual time, with faults, checking every
    /// safety and liveness invariant after every event and in full at the end. Exits 1 if
    /// an invariant broke, printing the command that replays the run.
    ///
    /// PLAN is a comma-separated list: drop:P, dup:P, delay:MIN-MAXms,
    /// crash-relay:CONSORTIUM@T, crash:MEMBER@T, restart:MEMBER@T,
    /// partition:C[+C...]@T+DURATION, pause:MEMBER@T+DURATION, mute:MEMBER@T+DURATION,
    /// random. Times take units (500ms, 90s, 2m).
    #[command(
        after_help = "Examples:\n  ieschain simulate --seed 7 --until 1h --faults random\n  ieschain simulate --faults 'drop:0.01,crash-relay:grid@5s,restart:grid-east@9s' --until 30s\n  ieschain simulate --seed 7 --event-log events.jsonl --report report.json\n  ieschain simulate --faults random --until 5m --pace 5 --serve 127.0.0.1:8080   # watch it in the explorer"
    )]
    Simulate(SimulateArgs),
    /// Measure this machine's limits (ed25519 verify and batch verify, blake3, synced
    /// RocksDB writes, the in-process round trip), then federations against them: records
    /// per second at every relay (four-party and 10,000 members), urgent and non-urgent
    /// latency, failover time, and throughput and peak memory at 100, 1,000 and 10,000
    /// members. Prints a Markdown table. Takes a few minutes; `--quick` under one.
    #[command(
        after_help = "Examples:\n  ieschain bench --quick\n  ieschain bench --json bench.json --report bench.md\n  ieschain bench --experiment window\n  ieschain bench --cluster --json cluster.json"
    )]
    Bench {
        /// Fewer and shorter samples (under a minute), the same table.
        #[arg(long)]
        quick: bool,
        /// Where to write the results as JSON.
        #[arg(long, value_name = "FILE.json")]
        json: Option<PathBuf>,
        /// Where to write the printed table as Markdown.
        #[arg(long, value_name = "FILE.md")]
        report: Option<PathBuf>,
        /// Run an experiment instead of the bench: `window` varies the window and the
        /// urgency bit in the simulator.
        #[arg(long, value_name = "NAME", value_parser = ["window"])]
        experiment: Option<String>,
        /// Instead of the bench: the four-party federation as one process per node on
        /// loopback (`ieschain node` over QUIC) beside the same federation in one process,
        /// records per second at every relay and latencies of both.
        #[arg(long, conflicts_with = "experiment")]
        cluster: bool,
        /// With --cluster: multiply the members' workload rates by this.
        #[arg(long, value_name = "F", requires = "cluster", default_value_t = crate::bench::cluster::LOAD_FACTOR)]
        load_factor: f64,
        /// Internal: one scaling point of N members, run in a child process.
        #[arg(long, value_name = "N", hide = true)]
        scale_child: Option<u64>,
    },
    /// Verify every chain of every node in a data directory: hash links, signatures,
    /// capacity, urgency bits, registry roots, replay protection and every election.
    /// Exits 0 when all verify, 1 naming the first bad block (`chain=<name> height=<h>`),
    /// 2 on usage or I/O errors.
    #[command(
        after_help = "Examples:\n  ieschain verify --data ieschain-data\n  ieschain verify --data ieschain-data --json"
    )]
    Verify {
        /// The data directory.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// Print the verdict as one JSON object on stdout (`ok`, and `chains` and
        /// `blocks`, or the bad block's `chain`, `node`, `height` and `reason`); the exit
        /// codes are the same.
        #[arg(long)]
        json: bool,
    },
    /// Show the chains of a data directory, the blocks and records of one chain, and the
    /// election history of every relay lane.
    #[command(
        after_help = "Examples:\n  ieschain inspect --data ieschain-data\n  ieschain inspect --data ieschain-data --timeline > epochs.mmd\n  ieschain inspect --data ieschain-data --chain relay/grid --limit 5\n  ieschain inspect --data ieschain-data --chain consortium/load/load-mall --node load-mall --json"
    )]
    Inspect {
        /// The data directory.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// A chain, named as `verify` names it: `relay/<consortium>`,
        /// `consortium/<consortium>/<member>` or `private/<member>`.
        #[arg(long, value_name = "NAME")]
        chain: Option<String>,
        /// Whose copy of the chain to show (a member name); by default the first holder.
        #[arg(long, value_name = "NODE")]
        node: Option<String>,
        /// First height to show.
        #[arg(long, value_name = "H", default_value_t = 1)]
        from: u64,
        /// How many blocks to show.
        #[arg(long, value_name = "N", default_value_t = 20)]
        limit: usize,
        /// Print JSON instead of text.
        #[arg(long, conflicts_with = "timeline")]
        json: bool,
        /// Print the epochs of every lane as a Mermaid Gantt chart (failovers and rotations
        /// over time), for a README or a report.
        #[arg(long, conflicts_with_all = ["chain", "node"])]
        timeline: bool,
    },
    /// Print a shell completion script for ieschain (bash, zsh, fish, elvish, powershell).
    #[command(
        after_help = "Example:\n  ieschain completions bash > ~/.local/share/bash-completion/completions/ieschain"
    )]
    Completions {
        /// The shell.
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Print the JSON Schema of the reports that run and simulate write.
    #[command(after_help = "Example:\n  ieschain schema > report.schema.json")]
    Schema,
    /// Write a new ed25519 node key to a new file (mode 600) and print its public key and
    /// address: a key that belongs to its owner, for `run --key NAME=FILE`.
    #[command(
        after_help = "Examples:\n  ieschain keygen --out source-wind.key\n  ieschain run --key source-wind=source-wind.key --data fed\n\nAn existing file is never overwritten. The key is read back only from a file that\nonly its owner may read and write."
    )]
    Keygen {
        /// Where to write the key (a new file).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Write a chain spec for a federation file: what every party of a federation that runs
    /// across machines may know (public keys, addresses, configuration; no secret). Keys
    /// are read from DIR, or made there (mode 600) where missing.
    #[command(
        after_help = "Examples:\n  ieschain spec --from federations/four-party.toml --keys cluster/keys --out cluster/spec.toml\n  ieschain spec --from four-party --keys keys --out spec.toml --host 10.0.0.5 --base-port 7100\n\nDIR holds supervisor.key, <member>.key and admission-<consortium>.key. The supervisor\nlistens on HOST:BASE-PORT and the members on the ports after it, in declaration order;\nedit the spec to place each node on its own machine."
    )]
    Spec {
        /// The federation: a TOML file, or a built-in one by name (`four-party`).
        #[arg(long, value_name = "FILE|NAME")]
        from: PathBuf,
        /// The folder of key files (made if missing).
        #[arg(long, value_name = "DIR")]
        keys: PathBuf,
        /// Where to write the spec (a new file).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// The host every node listens on.
        #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
        host: std::net::IpAddr,
        /// The supervisor's UDP port; the members' follow it.
        #[arg(long, value_name = "PORT", default_value_t = 7100)]
        base_port: u16,
    },
    /// Run one node of a federation in this process, with its own key and its own data
    /// directory, talking to its peers over QUIC: a member, or the supervisor with
    /// --supervisor. Runs until SIGINT or SIGTERM (or --duration), then writes its report.
    #[command(
        after_help = "Examples:\n  ieschain node --spec spec.toml --key keys/supervisor.key --data data/supervisor --supervisor\n  ieschain node --spec spec.toml --key keys/grid-east.key --data data/grid-east --workload-for 1h\n\nThe first SIGINT or SIGTERM stops it cleanly (storage flushed, report written, exit 0); a\nsecond exits at once. Its events go to DIR/events.jsonl, its report to DIR/report.json.\nscripts/cluster.sh starts a whole federation this way on one machine."
    )]
    Node(NodeArgs),
    /// Serve a read-only web explorer of a data directory (live or not): lanes, blocks, elections.
    #[command(
        after_help = "Examples:\n  ieschain serve --data ieschain-data            # then open http://127.0.0.1:8080/\n  ieschain serve --data ieschain-data --listen 127.0.0.1:9000\n\nThe JSON API: /api/chains, /api/chain?name=relay/grid&limit=20, /api/block/HASH,\n/api/records?member=source-wind&kind=power_offer (with inclusion proofs), /api/trades.\n`ieschain run --serve ADDR` and `ieschain simulate --serve ADDR` serve a running federation,\nwith its events at /api/events and its take-overs at /api/takeovers.\nThe directory is read as a RocksDB secondary instance: nothing is written into it."
    )]
    Serve {
        /// The data directory.
        #[arg(long)]
        data: PathBuf,
        /// The address to listen on (loopback by default; port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
    },
}

/// The flags of `run`.
#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The federation: a TOML file, or a built-in one by name (`four-party`, the
    /// default, or `large`: 10,000 members).
    #[arg(long, value_name = "FILE|NAME")]
    config: Option<PathBuf>,
    /// The data directory (created if missing; reopened if it exists).
    #[arg(long, value_name = "DIR", default_value = "ieschain-data")]
    data: PathBuf,
    /// How long to run: seconds, or a duration with a unit (`90s`, `5m`, `1h 30m`).
    #[arg(long, value_name = "DURATION", default_value = "30", value_parser = seconds)]
    duration: f64,
    /// The seed of keys and workload; the configuration's by default.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Where to write the JSON report.
    #[arg(long, value_name = "FILE.json")]
    report: Option<PathBuf>,
    /// Where to write Mermaid sequence diagrams of the protocol runs, drawn
    /// from the event log: the first run of each protocol, and how many were left out.
    /// FILE.md gets a Markdown document with a fenced block per protocol (GitHub renders
    /// it); any other name one `sequenceDiagram` (mermaid-cli renders it).
    #[arg(long, value_name = "FILE")]
    mermaid: Option<PathBuf>,
    /// Serve the explorer while running, with live events (for example
    /// 127.0.0.1:8080; port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    serve: Option<std::net::SocketAddr>,
    /// A member's own key instead of the one derived from the seed: NAME=FILE, FILE
    /// written by `ieschain keygen` (repeatable). A data directory keeps the keys of its
    /// genesis: give the same keys each time it is reopened.
    #[arg(long = "key", value_name = "NAME=FILE")]
    keys: Vec<String>,
    /// The supervisor's own key instead of the one derived from the seed (a file written
    /// by `ieschain keygen`).
    #[arg(long, value_name = "FILE")]
    supervisor_key: Option<PathBuf>,
}

/// The flags of `node`.
#[derive(Debug, clap::Args)]
struct NodeArgs {
    /// The chain spec (`ieschain spec`).
    #[arg(long, value_name = "FILE")]
    spec: PathBuf,
    /// The node's own key (`ieschain keygen`): it says which node of the spec this is.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The node's own data directory (made if missing).
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Listen here instead of at the spec's address for this node.
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
    /// Run as the supervisor (the key must be the spec's supervisor key).
    #[arg(long)]
    supervisor: bool,
    /// Generate the spec's workload for this long after the start (a member only):
    /// seconds, or a duration with a unit (`90s`, `5m`). None by default.
    #[arg(long, value_name = "DURATION", value_parser = seconds)]
    workload_for: Option<f64>,
    /// Stop after this long instead of at a signal.
    #[arg(long, value_name = "DURATION", value_parser = seconds)]
    duration: Option<f64>,
    /// Where to write the report (DIR/report.json by default).
    #[arg(long, value_name = "FILE.json")]
    report: Option<PathBuf>,
    /// Where to append the event log (DIR/events.jsonl by default).
    #[arg(long, value_name = "FILE.jsonl")]
    event_log: Option<PathBuf>,
}

/// The flags of `simulate`.
#[derive(Debug, clap::Args)]
struct SimulateArgs {
    /// The federation: a TOML file, or a built-in one by name (`four-party`, the
    /// default, or `large`: 10,000 members).
    #[arg(long, value_name = "FILE|NAME")]
    config: Option<PathBuf>,
    /// The seed of keys, workload and faults.
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,
    /// The fault plan (see above); none by default, or the configuration's `faults`.
    #[arg(long, value_name = "PLAN")]
    faults: Option<String>,
    /// Virtual length of the faulty (safety) phase: seconds, or a duration with a unit
    /// (`90s`, `1h`); a healed liveness phase follows.
    #[arg(long, value_name = "DURATION", default_value = "60", value_parser = seconds)]
    until: f64,
    /// Where to write the JSON report.
    #[arg(long, value_name = "FILE.json")]
    report: Option<PathBuf>,
    /// Where to write the event log as JSON Lines: one event per line, full-hex
    /// addresses with names beside them, RFC 3339 times. (The report's
    /// `event_log_digest` hashes a canonical form of the same events.)
    #[arg(long, value_name = "FILE.jsonl")]
    event_log: Option<PathBuf>,
    /// Where to write Mermaid sequence diagrams of the protocol runs, drawn
    /// from the event log: the first run of each protocol, and how many were left out.
    /// FILE.md gets a Markdown document with a fenced block per protocol (GitHub renders
    /// it); any other name one `sequenceDiagram` (mermaid-cli renders it).
    #[arg(long, value_name = "FILE")]
    mermaid: Option<PathBuf>,
    /// Serve the explorer of the simulated chains (for example 127.0.0.1:8080; port 0
    /// picks a free port): live events and invariants while it runs, then its chains
    /// until SIGINT or SIGTERM.
    #[arg(long, value_name = "ADDR")]
    serve: Option<std::net::SocketAddr>,
    /// At most this many virtual seconds per wall second (`1`: real time), to watch a
    /// simulation in the explorer. Wall time only: the run and its event-log digest are
    /// the same at any pace.
    #[arg(long, value_name = "RATE", value_parser = pace)]
    pace: Option<f64>,
}

/// Runs the command line with `args` (the first is the program name) and returns the exit
/// code.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help and version to stdout with success, errors to stderr.
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::Run(args) => match run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("ieschain run: {message}");
                ExitCode::from(2)
            }
        },
        Command::Simulate(args) => match simulate(&args) {
            Ok(SimulateEnd::Held) => ExitCode::SUCCESS,
            Ok(SimulateEnd::Broken) => ExitCode::from(1),
            Ok(SimulateEnd::Stopped) => ExitCode::from(INTERRUPTED),
            Err(message) => {
                eprintln!("ieschain simulate: {message}");
                ExitCode::from(2)
            }
        },
        Command::Bench {
            quick,
            json,
            report,
            experiment,
            cluster,
            load_factor,
            scale_child,
        } => match bench(
            quick,
            json.as_deref(),
            report.as_deref(),
            match (scale_child, cluster, experiment.as_deref()) {
                (Some(members), _, _) => BenchPart::ScaleChild(members),
                (None, true, _) => BenchPart::Cluster { load_factor },
                (None, false, Some(name)) => BenchPart::Experiment(name.to_string()),
                (None, false, None) => BenchPart::Whole,
            },
        ) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(INTERRUPTED),
            Err(message) => {
                eprintln!("ieschain bench: {message}");
                ExitCode::from(2)
            }
        },
        Command::Verify { data, json } => run_verify(&data, json),
        Command::Inspect {
            data,
            timeline: true,
            ..
        } => match open_for_reading("inspect", &data).and_then(|s| s.timeline()) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ieschain inspect: {e}");
                ExitCode::from(2)
            }
        },
        Command::Inspect {
            data,
            chain,
            node,
            from,
            limit,
            json,
            timeline: false,
        } => match inspect(&data, chain.as_deref(), node.as_deref(), from, limit, json) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("ieschain inspect: {message}");
                ExitCode::from(2)
            }
        },
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "ieschain", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Serve { data, listen } => run_serve(data, listen),
        Command::Spec {
            from,
            keys,
            out,
            host,
            base_port,
        } => match write_spec(&from, &keys, &out, host, base_port) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("ieschain spec: {message}");
                ExitCode::from(2)
            }
        },
        Command::Node(args) => run_node_command(&args),
        Command::Keygen { out } => run_keygen(&out),
        Command::Schema => match serde_json::to_string_pretty(&crate::report::schema()) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ieschain schema: {e}");
                ExitCode::from(1)
            }
        },
    }
}

fn run(args: &RunArgs) -> Result<(), String> {
    let RunArgs {
        config,
        data,
        duration,
        seed,
        report: report_path,
        mermaid: mermaid_path,
        serve,
        keys,
        supervisor_key,
    } = args;
    let (config, data, duration, seed, serve) =
        (config.as_deref(), data.as_path(), *duration, *seed, *serve);
    let (report_path, mermaid_path) = (report_path.as_deref(), mermaid_path.as_deref());
    use std::time::{Duration, Instant};

    check_seconds("--duration", duration)?;
    let stop = StopSignal::install()?;
    let (config, origin) = load_config(config)?;
    let mermaid_file = mermaid_path.map(create_mermaid).transpose()?;
    let seed = seed.unwrap_or(config.seed);
    let members = config.member_count() as usize;
    let consortiums = config.consortiums.len();
    let lane_names: Vec<String> = config.consortiums.iter().map(|c| c.name.clone()).collect();
    println!(
        "ieschain run: {origin}, {consortiums} consortiums, {members} members, seed {seed}, data in {}, for {duration} s",
        data.display()
    );
    let mut builder = Federation::builder(config).data_dir(data).seed(seed);
    let own_members = member_keys(keys)?;
    let supervisor = supervisor_key
        .as_deref()
        .map(crate::keys::NodeKey::read)
        .transpose()
        .map_err(|e| format!("--supervisor-key: {e}"))?;
    let mut own_keys = Vec::new();
    if let Some(key) = supervisor {
        if let Some((member, _)) = own_members
            .iter()
            .find(|(_, k)| k.address() == key.address())
        {
            return Err(format!(
                "--supervisor-key: the supervisor and {member} have the same key"
            ));
        }
        own_keys.push(format!(
            "the supervisor signs with its own key {}",
            key.address()
        ));
        builder = builder.supervisor_key(key.key);
    }
    for (name, key) in own_members {
        own_keys.push(format!("{name} signs with its own key {}", key.address()));
        builder = builder.member_key(name, key.key);
    }
    // Listening before the federation starts (a taken port fails before anything is
    // written), with its events from the very start: the initial elections and take-overs.
    // The server holds no handle of the federation: its events are forwarded.
    let explorer = serve
        .map(|addr| {
            let (feed, live) = tokio::sync::broadcast::channel(crate::serve::LIVE_BUFFER);
            let source = crate::serve::Source::Directory(data.to_path_buf());
            let server = LiveServer::start("--serve", addr, source, Some(live))?;
            server
                .runtime
                .spawn(crate::serve::forward(builder.subscribe(), feed));
            Ok::<_, String>(server)
        })
        .transpose()?;
    let federation = builder.start_blocking().map_err(|e| e.to_string())?;
    for line in own_keys {
        println!("  {line}");
    }
    if let Some(server) = &explorer {
        println!(
            "ieschain run: explorer at http://{}/ (read-only, live events)",
            server.address
        );
    }
    // The trace reads the events as they come; a subscriber that falls more than
    // EVENT_BUFFER events behind misses some, which the trace then does not draw.
    let mut events = federation.subscribe();
    let mut trace = mermaid_path.map(|_| Trace::new());
    let mut drain = |trace: &mut Option<Trace>| {
        use tokio::sync::broadcast::error::TryRecvError;
        let Some(trace) = trace.as_mut() else {
            return;
        };
        loop {
            match events.try_recv() {
                Ok(event) => trace.observe(&event),
                Err(TryRecvError::Lagged(_)) => continue,
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
    };
    let started = Instant::now();
    let total = Duration::from_secs_f64(duration);
    let progress = Progress::new(total.as_millis() as u64, "run");
    while started.elapsed() < total && !stop.requested() {
        std::thread::sleep(Duration::from_millis(250).min(total.saturating_sub(started.elapsed())));
        drain(&mut trace);
        let ending = started.elapsed() >= total || stop.requested();
        let line = || {
            let stats = federation.stats();
            let relays: Vec<String> = federation
                .relays()
                .iter()
                .map(|(c, (epoch, relay, _))| {
                    format!(
                        "{}:{}@{}",
                        federation.genesis().consortium_name(*c),
                        federation.name_of(relay),
                        epoch
                    )
                })
                .collect();
            format!(
                "committed {:>7}  relay blocks {:>5}  acks {:>6}  elections {:>3} (failover {}, rotation {})  relays {}",
                stats.records_committed,
                stats.relay_blocks,
                stats.acks,
                stats.elections,
                stats.failovers,
                stats.rotations,
                relays.join(" ")
            )
        };
        progress.update(started.elapsed().as_millis() as u64, line, ending);
    }
    progress.finish();
    let stopped = stop.requested();
    if stopped {
        println!(
            "stopping: a signal came after {:.1} s; shutting the federation down (a second signal exits at once)",
            started.elapsed().as_secs_f64()
        );
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stats = federation.stats();
    drain(&mut trace);
    // Newcomers are named in the registry of the relay chain, not in the configuration.
    let names = match &trace {
        Some(_) => Some(
            crate::explore::directory(federation.store().as_ref()).map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    federation.shutdown_blocking().map_err(|e| e.to_string())?;
    if let Some(explorer) = explorer {
        explorer.stop();
    }
    let info = RunInfo {
        seed,
        duration_s: elapsed,
        config: origin,
        members,
        consortiums,
        lane_names,
        invariants_broken: Vec::new(),
        stopped_by_signal: stopped,
    };
    let value = report(&info, &stats, &|a| federation.name_of(a));
    println!(
        "summary: {} records committed in {} relay blocks ({:.0} records/s), {} urgent flushes; {} acks",
        stats.records_committed,
        stats.relay_blocks,
        value.throughput_rps,
        stats.urgent_flushes,
        stats.acks
    );
    println!(
        "         latency to the last relay: urgent p50 {:.0} ms p99 {:.0} ms, normal p50 {:.0} ms p99 {:.0} ms",
        stats.urgent.p50, stats.urgent.p99, stats.normal.p50, stats.normal.p99
    );
    println!(
        "         elections {}: failovers {}, rotations {}, backups replaced {}; rejected {:?}",
        stats.elections, stats.failovers, stats.rotations, stats.backups_replaced, stats.rejected
    );
    println!(
        "         transport: {} envelopes delivered ({} bytes), {} dropped",
        stats.transport.delivered, stats.transport.bytes, stats.transport.dropped
    );
    if let Some(path) = report_path {
        let text = serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?;
        std::fs::write(path, text)
            .map_err(|e| format!("writing the report to {}: {e}", path.display()))?;
        println!("         report written to {}", path.display());
    }
    if let (Some(trace), Some(names), Some((path, file))) = (&trace, &names, mermaid_file) {
        write_mermaid(trace, path, file, names, federation.genesis(), "         ")?;
    }
    Ok(())
}

/// Creates the `--mermaid` file before the run, so that a bad path fails at once.
fn create_mermaid(path: &Path) -> Result<(&Path, std::fs::File), String> {
    std::fs::File::create(path)
        .map(|file| (path, file))
        .map_err(|e| format!("--mermaid {}: {e}", path.display()))
}

/// Writes the protocol traces: Markdown with fenced blocks for `*.md`, else one diagram.
/// Nodes are named as `directory` names them, unknown ones by their short address.
fn write_mermaid(
    trace: &Trace,
    path: &Path,
    mut file: std::fs::File,
    directory: &Directory,
    genesis: &Genesis,
    indent: &str,
) -> Result<(), String> {
    use std::io::Write;

    let name_of = |a: &Address| match directory.get(a) {
        Some(known) => known.name.clone(),
        None => a.short(),
    };
    let consortium_name = |c: ConsortiumId| genesis.consortium_name(c);
    let markdown = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("md"));
    let text = if markdown {
        trace.markdown(&name_of, &consortium_name)
    } else {
        trace.mermaid(&name_of, &consortium_name)
    };
    file.write_all(text.as_bytes())
        .map_err(|e| format!("writing the protocol traces to {}: {e}", path.display()))?;
    println!(
        "{indent}protocol traces written to {}: the first run of each protocol, of {}",
        path.display(),
        trace.summary()
    );
    Ok(())
}

/// Runs a simulation (and serves it, with `--serve`).
fn simulate(args: &SimulateArgs) -> Result<SimulateEnd, String> {
    let SimulateArgs {
        config: config_path,
        seed,
        faults,
        until,
        report: report_path,
        event_log,
        mermaid: mermaid_path,
        serve,
        pace,
    } = args;
    let (seed, until) = (*seed, *until);
    let (config_path, faults, report_path) = (
        config_path.as_deref(),
        faults.as_deref(),
        report_path.as_deref(),
    );
    let (event_log, mermaid_path) = (event_log.as_deref(), mermaid_path.as_deref());
    check_seconds("--until", until)?;
    let (config, origin) = load_config(config_path)?;
    let until_ms = (until * 1000.0) as u64;
    let spec = faults
        .map(str::to_string)
        .or_else(|| config.faults.clone())
        .unwrap_or_default();
    let plan = FaultPlan::parse(&spec, &config, seed, until_ms).map_err(|e| e.to_string())?;
    let mermaid_file = mermaid_path.map(create_mermaid).transpose()?;
    let members = config.member_count() as usize;
    let consortiums = config.consortiums.len();
    let lane_names: Vec<String> = config.consortiums.iter().map(|c| c.name.clone()).collect();
    let mut simulation = Simulation::new(config, seed, until_ms);
    simulation.plan = plan;
    simulation.keep_events = event_log.is_some();
    simulation.keep_trace = mermaid_path.is_some();
    let stop = StopSignal::install()?;
    simulation.stop = Some(stop.clone());
    println!(
        "ieschain simulate: {origin}, seed {seed}, faults `{spec}`: {until} virtual s of faults, then {:.0} s to settle ...",
        simulation.settle_ms as f64 / 1000.0
    );
    let started = std::time::Instant::now();
    // Progress in virtual time, from the events as the simulation makes them.
    let total_ms = simulation.until_ms + simulation.settle_ms;
    let progress = std::sync::Arc::new(Progress::new(total_ms, "virtual time"));
    // The explorer reads the store as the simulation writes it; the feed's senders belong
    // to the simulation, so the live streams end with it.
    let (explorer, feed) = match serve {
        Some(addr) => {
            let genesis = simulation.genesis().map_err(|e| e.to_string())?;
            let store: std::sync::Arc<dyn ChainStore> =
                std::sync::Arc::new(ieschain_storage::MemoryStore::new(genesis));
            simulation.store = Some(store.clone());
            let (feed, live) = tokio::sync::broadcast::channel(crate::serve::LIVE_BUFFER);
            // Taken out when the simulation is over: that closes the live streams, whatever
            // the simulation's runtime keeps of its closures.
            let feed = std::sync::Arc::new(std::sync::Mutex::new(Some(feed)));
            let reporter = feed.clone();
            simulation.on_broken = Some(crate::simulation::BrokenReporter::new(move |what| {
                publish(&reporter, crate::serve::Live::Broken(what.to_string()));
            }));
            let source = crate::serve::Source::Store(store);
            let server = LiveServer::start("--serve", *addr, source, Some(live))?;
            println!(
                "  explorer at http://{}/ (live events and invariants while it runs)",
                server.address
            );
            (Some(server), Some(feed))
        }
        None => (None, None),
    };
    let simulation = {
        let progress = progress.clone();
        let start = ieschain_core::sample::SAMPLE_EPOCH_MS;
        // The wall clock of the pace starts at the first event.
        let mut pace = pace.map(|rate| (rate, None));
        let stop = simulation.stop.clone();
        let feed = feed.clone();
        simulation.observe(move |event| {
            if let Some(feed) = &feed {
                publish(feed, crate::serve::Live::Event(event.clone()));
            }
            let Some(at) = event.at().map(|at| at.saturating_sub(start)) else {
                return Ok(());
            };
            if let Some((rate, wall)) = pace.as_mut() {
                let wall = *wall.get_or_insert_with(std::time::Instant::now);
                hold_pace(at, *rate, wall, stop.as_ref());
            }
            let phase = if at < until_ms { "faults" } else { "settling" };
            progress.update(
                at,
                || format!("{:.1} virtual s ({phase})", at as f64 / 1000.0),
                false,
            );
            Ok(())
        })
    };
    let outcome = simulation.run();
    if let Some(feed) = &feed {
        feed.lock().map(|mut feed| feed.take()).ok();
    }
    let outcome = outcome.map_err(|e| e.to_string())?;
    progress.finish();
    let wall = started.elapsed().as_secs_f64();
    let stats = &outcome.stats;
    println!(
        "  {:.0} virtual s in {wall:.1} s",
        outcome.virtual_ms as f64 / 1000.0
    );
    for (at, fault) in &outcome.applied {
        println!("  at {:>8.3}s  {fault}", *at as f64 / 1000.0);
    }
    println!(
        "  {} records committed in {} relay blocks; {} acks; elections {} (failovers {}, rotations {}, backups replaced {}); transport {} delivered, {} dropped",
        stats.records_committed,
        stats.relay_blocks,
        stats.acks,
        stats.elections,
        stats.failovers,
        stats.rotations,
        stats.backups_replaced,
        stats.transport.delivered,
        stats.transport.dropped
    );
    println!("  event log digest {}", stats.event_log_digest);
    if let Some(path) = event_log {
        // Newcomers are named in the registry of the relay chain, not in the configuration.
        let store = outcome.store.as_ref();
        let directory = crate::explore::directory(store).map_err(|e| e.to_string())?;
        write_event_log(
            path,
            &outcome.events,
            &Names::new(&directory, store.genesis()),
        )
        .map_err(|e| format!("writing the event log to {}: {e}", path.display()))?;
    }
    if let (Some(trace), Some((path, file))) = (&outcome.trace, mermaid_file) {
        // Newcomers are named in the registry of the relay chain, not in the configuration.
        let store = outcome.store.as_ref();
        let names = crate::explore::directory(store).map_err(|e| e.to_string())?;
        write_mermaid(trace, path, file, &names, store.genesis(), "  ")?;
    }
    let info = RunInfo {
        seed,
        duration_s: outcome.virtual_ms as f64 / 1000.0,
        config: origin.clone(),
        members,
        consortiums,
        lane_names,
        invariants_broken: outcome.broken.clone(),
        stopped_by_signal: outcome.stopped_at_ms.is_some(),
    };
    if let Some(path) = report_path {
        let store = outcome.store.as_ref();
        let names = crate::explore::directory(store).map_err(|e| e.to_string())?;
        let value = report(&info, stats, &|a| names.name(a));
        let text = serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?;
        std::fs::write(path, text)
            .map_err(|e| format!("writing the report to {}: {e}", path.display()))?;
    }
    let end = simulate_end(&outcome, config_path, seed, until, &spec);
    // The simulation's exit code stands when its serving is stopped.
    if let Some(server) = explorer {
        if outcome.stopped_at_ms.is_some() {
            server.stop();
        } else {
            println!(
                "  serving the simulated chains at http://{}/ until Ctrl-C",
                server.address
            );
            use std::io::Write as _;
            let _ = std::io::stdout().flush();
            server
                .serve_until(stop)
                .map_err(|e| format!("serving: {e}"))?;
        }
    }
    Ok(end)
}

/// Sends `item` to the live feed while it is open.
fn publish(
    feed: &std::sync::Mutex<Option<tokio::sync::broadcast::Sender<crate::serve::Live>>>,
    item: crate::serve::Live,
) {
    if let Ok(feed) = feed.lock() {
        if let Some(feed) = feed.as_ref() {
            let _ = feed.send(item);
        }
    }
}

/// Waits until wall time has caught up with `at` virtual ms at `rate` virtual seconds per
/// wall second from `wall`, in short naps so that a stop is seen.
fn hold_pace(at: u64, rate: f64, wall: std::time::Instant, stop: Option<&StopSignal>) {
    let Some(due) = std::time::Duration::try_from_secs_f64(at as f64 / 1000.0 / rate)
        .ok()
        .and_then(|wait| wall.checked_add(wait))
    else {
        return;
    };
    loop {
        let now = std::time::Instant::now();
        if now >= due || stop.is_some_and(StopSignal::requested) {
            return;
        }
        std::thread::sleep((due - now).min(std::time::Duration::from_millis(100)));
    }
}

/// Prints how a simulation ended (with the replay command when an invariant broke).
fn simulate_end(
    outcome: &crate::simulation::SimulationOutcome,
    config_path: Option<&Path>,
    seed: u64,
    until: f64,
    spec: &str,
) -> SimulateEnd {
    if let Some(at) = outcome.stopped_at_ms {
        println!(
            "  stopped by a signal at {:.3} virtual s: the liveness phase did not run; {}",
            at as f64 / 1000.0,
            if outcome.broken.is_empty() {
                "nothing the checker judges at each event broke".to_string()
            } else {
                format!("broken so far: {}", outcome.broken.join("; "))
            }
        );
        SimulateEnd::Stopped
    } else if outcome.broken.is_empty() {
        println!("  invariants: all held");
        SimulateEnd::Held
    } else {
        for broken in &outcome.broken {
            println!("  BROKEN {broken}");
        }
        let config_flag = config_path
            .map(|p| format!(" --config {}", p.display()))
            .unwrap_or_default();
        println!(
            "  replay: ieschain simulate{config_flag} --seed {seed} --until {until} --faults '{spec}'"
        );
        SimulateEnd::Broken
    }
}

/// How a simulation ended, for its exit code.
enum SimulateEnd {
    /// Every invariant held: 0.
    Held,
    /// An invariant broke: 1.
    Broken,
    /// A signal stopped it first: [`INTERRUPTED`].
    Stopped,
}

/// What `ieschain bench` runs.
#[derive(Debug)]
enum BenchPart {
    /// The bench.
    Whole,
    /// An experiment by name (`window`).
    Experiment(String),
    /// The federation as processes beside one process, its workload × `load_factor`.
    Cluster { load_factor: f64 },
    /// One scaling point of this many members (a child of the bench).
    ScaleChild(u64),
}

/// `ieschain bench`: the bench, an experiment, the cluster comparison, or one scaling
/// point (a child).
fn bench(
    quick: bool,
    json_path: Option<&Path>,
    report_path: Option<&Path>,
    part: BenchPart,
) -> Result<bool, String> {
    if let BenchPart::ScaleChild(members) = part {
        let value = crate::bench::scale_child(members, quick).map_err(|e| format!("{e:#}"))?;
        println!("{}{value}", crate::bench::CHILD_LINE);
        return Ok(true);
    }
    // Bad paths fail at once, not after minutes of measuring.
    for (flag, path) in [("--json", json_path), ("--report", report_path)] {
        if let Some(path) = path {
            std::fs::File::create(path).map_err(|e| format!("{flag} {}: {e}", path.display()))?;
        }
    }
    let (value, markdown) = match part {
        BenchPart::Experiment(name) if name == "window" => {
            let value = crate::bench::window::run(quick).map_err(|e| format!("{e:#}"))?;
            print!("{}", crate::bench::window::table(&value));
            let markdown = crate::bench::window::markdown(&value);
            (value, markdown)
        }
        BenchPart::Cluster { load_factor } => {
            let stop = StopSignal::install()?;
            let value = crate::bench::cluster::run(quick, load_factor, &stop)
                .map_err(|e| format!("{e:#}"))?;
            let markdown = crate::bench::cluster::table(&value);
            (value, markdown)
        }
        BenchPart::Experiment(other) => {
            return Err(format!("--experiment {other}: unknown experiment"))
        }
        BenchPart::ScaleChild(_) | BenchPart::Whole => {
            let options = crate::bench::Options {
                quick,
                stop: StopSignal::install()?,
            };
            let value = crate::bench::run(&options).map_err(|e| format!("{e:#}"))?;
            let markdown = if value["stopped_by_signal"] == true {
                let line = format!(
                    "bench stopped by a signal after {:.1} s; what it measured before is in the JSON, under `measured`\n",
                    value["seconds"].as_f64().unwrap_or(0.0)
                );
                print!("{line}");
                line
            } else {
                crate::bench::table(&value)
            };
            (value, markdown)
        }
    };
    if let Some(path) = json_path {
        crate::bench::write_json(path, &value).map_err(|e| format!("{e:#}"))?;
        println!("results written to {}", path.display());
    }
    if let Some(path) = report_path {
        std::fs::write(path, markdown)
            .map_err(|e| format!("writing the table to {}: {e}", path.display()))?;
        println!("table written to {}", path.display());
    }
    Ok(value["stopped_by_signal"] != true)
}

/// The federation of `--config FILE`, or the built-in four-party one, with a name for it.
fn load_config(path: Option<&Path>) -> Result<(FederationConfig, String), String> {
    // A built-in name, unless a file of that name is there.
    let builtin = path.filter(|p| !p.exists()).and_then(|p| p.to_str());
    match builtin {
        Some("four-party") => {
            return Ok((FederationConfig::four_party(), "built-in four-party".into()))
        }
        Some("large") => return Ok((FederationConfig::large(), "built-in large".into())),
        _ => {}
    }
    match path {
        Some(path) => Ok((
            FederationConfig::from_file(path).map_err(|e| e.to_string())?,
            path.display().to_string(),
        )),
        None => Ok((
            FederationConfig::four_party(),
            "built-in four-party".to_string(),
        )),
    }
}

/// A length-of-run flag: a number of seconds (`30`, `2.5`), or a duration with a unit as
/// the configuration files write it (`90s`, `5m`, `1h 30m`).
fn seconds(text: &str) -> Result<f64, String> {
    if let Ok(seconds) = text.trim().parse::<f64>() {
        return Ok(seconds);
    }
    crate::config::parse_duration(text)
        .map(|d| d.as_secs_f64())
        .ok_or_else(|| {
            format!("expected seconds or a duration such as 90s, 5m or 1h 30m, not {text:?}")
        })
}

/// The slowest and the fastest `--pace`.
const PACES: std::ops::RangeInclusive<f64> = 0.001..=1_000_000.0;

/// The keys of `--key NAME=FILE`, read: one per member, no key for two parties.
fn member_keys(keys: &[String]) -> Result<Vec<(String, crate::keys::NodeKey)>, String> {
    let mut read: Vec<(String, crate::keys::NodeKey)> = Vec::new();
    for given in keys {
        let (name, path) = given
            .split_once('=')
            .filter(|(name, path)| !name.is_empty() && !path.is_empty())
            .ok_or_else(|| format!("--key: expected NAME=FILE, not {given:?}"))?;
        let key = crate::keys::NodeKey::read(Path::new(path))
            .map_err(|e| format!("--key {name}: {e}"))?;
        if read.iter().any(|(n, _)| n == name) {
            return Err(format!("--key: two keys for {name}"));
        }
        if let Some((other, _)) = read.iter().find(|(_, k)| k.address() == key.address()) {
            return Err(format!("--key: {name} and {other} have the same key"));
        }
        read.push((name.to_string(), key));
    }
    Ok(read)
}

/// `ieschain spec`: a chain spec for a federation file, with the keys of a folder.
fn write_spec(
    from: &Path,
    keys: &Path,
    out: &Path,
    host: std::net::IpAddr,
    base_port: u16,
) -> Result<(), String> {
    let (config, origin) = load_config(Some(from))?;
    if out.exists() {
        return Err(format!(
            "{} exists: a spec is never overwritten (remove it first)",
            out.display()
        ));
    }
    let spec =
        crate::spec::ChainSpec::build(&config, keys, host, base_port).map_err(|e| e.to_string())?;
    spec.write(out).map_err(|e| e.to_string())?;
    println!(
        "spec for {origin} written to {}: the supervisor and {} members, keys in {}",
        out.display(),
        spec.members.len(),
        keys.display()
    );
    for (party, node) in spec.nodes() {
        println!(
            "  {party:<28} {} listens on {}",
            node.public_key.address(),
            node.listen
        );
    }
    Ok(())
}

/// `ieschain node`: 0 after a clean stop, 2 when it cannot start (usage, spec, key, data
/// directory), 1 when it fails while running.
fn run_node_command(args: &NodeArgs) -> ExitCode {
    let started = (|| -> Result<crate::node::NodeOptions, String> {
        for (flag, value) in [
            ("--workload-for", args.workload_for),
            ("--duration", args.duration),
        ] {
            if let Some(value) = value {
                check_seconds(flag, value)?;
            }
        }
        let spec = crate::spec::ChainSpec::from_file(&args.spec).map_err(|e| e.to_string())?;
        let key = crate::keys::NodeKey::read(&args.key).map_err(|e| format!("--key: {e}"))?;
        Ok(crate::node::NodeOptions {
            spec,
            key,
            data: args.data.clone(),
            listen: args.listen,
            supervisor: args.supervisor,
            workload: args.workload_for.map(std::time::Duration::from_secs_f64),
            duration: args.duration.map(std::time::Duration::from_secs_f64),
            sync: true,
            report: args.report.clone(),
            event_log: args.event_log.clone(),
        })
    })();
    let options = match started {
        Ok(options) => options,
        Err(message) => {
            eprintln!("ieschain node: {message}");
            return ExitCode::from(2);
        }
    };
    let stop = match StopSignal::install() {
        Ok(stop) => stop,
        Err(message) => {
            eprintln!("ieschain node: {message}");
            return ExitCode::from(2);
        }
    };
    match crate::node::run_node(options, &stop) {
        Ok(report) => {
            println!(
                "ieschain node: {} stopped after {} ms: {} blocks acknowledged, relay {}, backup {}",
                report.name, report.ran_ms, report.acked, report.relay, report.backup
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ieschain node: {e}");
            match e {
                crate::node::NodeError::Stopped(_) | crate::node::NodeError::Io { .. } => {
                    ExitCode::from(1)
                }
                _ => ExitCode::from(2),
            }
        }
    }
}

/// `ieschain keygen`: a new key in a new file, its public key and address printed.
fn run_keygen(out: &Path) -> ExitCode {
    let written = crate::keys::NodeKey::generate().and_then(|key| {
        key.write(out)?;
        Ok(key)
    });
    match written {
        Ok(key) => {
            println!("key written to {} (mode 600)", out.display());
            println!("public key {}", hex::encode(key.key.public().0));
            println!("address    {}", key.address());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ieschain keygen: {e}");
            ExitCode::from(2)
        }
    }
}

/// `--pace`: a rate within [`PACES`].
fn pace(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(rate) if PACES.contains(&rate) => Ok(rate),
        _ => Err(format!(
            "expected virtual seconds per wall second, a positive number from {} to {} such as 1 or 10, not {text:?}",
            PACES.start(),
            PACES.end()
        )),
    }
}

/// Checks a length-of-run flag: positive, finite, at most a week.
fn check_seconds(flag: &str, seconds: f64) -> Result<(), String> {
    if seconds.is_finite() && seconds > 0.0 && seconds <= 7.0 * 86_400.0 {
        Ok(())
    } else {
        Err(format!(
            "{flag} must be a positive number of seconds up to a week, not {seconds}"
        ))
    }
}

/// Opens `data` for `verify` or `inspect`: as the primary when no process holds it, else
/// as a RocksDB secondary instance (the directory as it is at this moment, nothing written
/// into it), with a note on stderr that says so.
fn open_for_reading(command: &str, data: &Path) -> Result<Snapshot, StoreError> {
    let snapshot = Snapshot::open(data, Access::PrimaryIfFree)?;
    if snapshot.is_secondary() {
        let why = snapshot.primary_error().unwrap_or_default();
        // RocksDB names its lock file (`…/LOCK`) when another process holds the directory.
        let cause = if why.contains("LOCK") {
            "a running federation holds it".to_string()
        } else {
            format!("RocksDB: {why}")
        };
        eprintln!(
            "ieschain {command}: {} cannot be opened for writing ({cause}); reading it as a \
             RocksDB secondary instance, as it is now",
            data.display()
        );
    }
    Ok(snapshot)
}

/// How long a stopping explorer lets the requests in flight finish.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// The explorer serving on a runtime of its own beside a command: `serve`, `run --serve`,
/// `simulate --serve`.
struct LiveServer {
    runtime: tokio::runtime::Runtime,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The address it listens on (port 0 asked: the one picked).
    address: std::net::SocketAddr,
}

impl LiveServer {
    /// Listens on `addr` and serves `source`, with `live` events when given (the
    /// take-overs are collected from now on). `flag` names the flag for errors.
    fn start(
        flag: &str,
        addr: std::net::SocketAddr,
        source: crate::serve::Source,
        live: Option<crate::serve::LiveEvents>,
    ) -> Result<LiveServer, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ieschain-serve")
            .enable_all()
            .build()
            .map_err(|e| format!("starting the explorer's runtime: {e}"))?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(addr))
            .map_err(|e| format!("{flag}: listening on {addr}: {e}"))?;
        let address = listener.local_addr().unwrap_or(addr);
        let router = {
            let _inside = runtime.enter();
            crate::serve::router(source, live)
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = runtime.spawn(crate::serve::serve(listener, router, async move {
            let _ = stopped.await;
        }));
        Ok(LiveServer {
            runtime,
            stop,
            task,
            address,
        })
    }

    /// Serves until a stop is asked (SIGINT, SIGTERM), then stops.
    fn serve_until(self, stop: StopSignal) -> std::io::Result<()> {
        let LiveServer {
            runtime,
            stop: stop_server,
            task,
            ..
        } = self;
        runtime.block_on(async move {
            let mut task = task;
            let served = tokio::select! {
                _ = stop.wait() => {
                    let _ = stop_server.send(());
                    // Requests in flight get two seconds to finish.
                    match tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await {
                        Ok(served) => served,
                        Err(_) => return Ok(()),
                    }
                }
                served = &mut task => served,
            };
            served.unwrap_or_else(|e| Err(std::io::Error::other(e)))
        })
    }

    /// Stops serving (the federation or simulation is over, so every event stream has
    /// ended).
    fn stop(self) {
        let _ = self.stop.send(());
        let task = self.task;
        let _ = self
            .runtime
            .block_on(async move { tokio::time::timeout(SHUTDOWN_GRACE, task).await });
        self.runtime
            .shutdown_timeout(std::time::Duration::from_secs(1));
    }
}

/// `ieschain serve`: checks the directory, listens, prints the address and serves until
/// SIGINT or SIGTERM.
fn run_serve(data: PathBuf, listen: std::net::SocketAddr) -> ExitCode {
    let started = Snapshot::open(&data, Access::ReadOnly)
        .map_err(|e| e.to_string())
        .and_then(|_| StopSignal::install())
        .and_then(|stop| {
            let source = crate::serve::Source::Directory(data.clone());
            Ok((LiveServer::start("--listen", listen, source, None)?, stop))
        });
    let (server, stop) = match started {
        Ok(started) => started,
        Err(e) => {
            eprintln!("ieschain serve: {e}");
            return ExitCode::from(2);
        }
    };
    println!(
        "ieschain serve: {} at http://{}/ (read-only; Ctrl-C stops)",
        data.display(),
        server.address
    );
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    match server.serve_until(stop) {
        Ok(()) => {
            println!("ieschain serve: stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ieschain serve: {e}");
            ExitCode::from(1)
        }
    }
}

/// The events as JSON Lines: one object per line, names beside the ids.
fn write_event_log(
    path: &Path,
    events: &[ieschain_core::node::Event],
    names: &Names<'_>,
) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for event in events {
        serde_json::to_writer(&mut out, &names.to_value(event))?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

fn run_verify(data: &Path, as_json: bool) -> ExitCode {
    let store = match open_for_reading("verify", data) {
        Ok(reading) => reading,
        Err(err) => {
            eprintln!("ieschain verify: {err}");
            return ExitCode::from(2);
        }
    };
    match verify(store.store()) {
        Ok(summary) => {
            if as_json {
                let verdict = json!({
                    "ok": true,
                    "data": data.display().to_string(),
                    "chains": summary.chains,
                    "blocks": summary.blocks,
                });
                println!("{verdict}");
            } else {
                println!(
                    "ok: {} chains, {} blocks verified in {}",
                    summary.chains,
                    summary.blocks,
                    data.display()
                );
            }
            ExitCode::SUCCESS
        }
        Err(err @ VerifyError::BadBlock { .. }) => {
            if let (
                true,
                VerifyError::BadBlock {
                    chain,
                    node,
                    height,
                    reason,
                },
            ) = (as_json, &err)
            {
                let verdict = json!({
                    "ok": false,
                    "data": data.display().to_string(),
                    "chain": chain,
                    "node": node,
                    "height": height,
                    "reason": reason,
                });
                println!("{verdict}");
            } else {
                println!("FAILED {err}");
            }
            ExitCode::from(1)
        }
        Err(err) => {
            eprintln!("ieschain verify: {err}");
            ExitCode::from(2)
        }
    }
}

fn inspect(
    data: &Path,
    chain: Option<&str>,
    node: Option<&str>,
    from: u64,
    limit: usize,
    as_json: bool,
) -> Result<(), String> {
    let snapshot = open_for_reading("inspect", data).map_err(|e| e.to_string())?;
    let pretty = |value: &Value| serde_json::to_string_pretty(value).map_err(|e| e.to_string());
    let Some(wanted) = chain else {
        let listing = snapshot.listing().map_err(|e| e.to_string())?;
        if as_json {
            println!("{}", pretty(&listing)?);
            return Ok(());
        }
        let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
        let items = listing["chains"]
            .as_array()
            .map_or(&[][..], |a| a.as_slice());
        let rows = items.iter().map(|item| {
            let head = text(&item["head"]);
            vec![
                text(&item["node_name"]),
                text(&item["chain_name"]),
                item["height"].to_string(),
                head.chars().take(16).collect(),
            ]
        });
        println!(
            "{}",
            table(&["node", "chain", "height", "head"], &[2], rows)
        );
        println!("\nelection history:");
        let elections = listing["elections"]
            .as_array()
            .map_or(&[][..], |a| a.as_slice());
        let rows = elections.iter().map(|e| {
            vec![
                text(&e["consortium_name"]),
                e["epoch"].to_string(),
                text(&e["reason"]),
                text(&e["relay_name"]),
                text(&e["backup_name"]),
                e["candidates"].as_array().map_or(0, Vec::len).to_string(),
            ]
        });
        let header = [
            "consortium",
            "epoch",
            "reason",
            "relay",
            "backup",
            "candidates",
        ];
        println!("{}", table(&header, &[1, 5], rows));
        return Ok(());
    };
    let Some((holder, chain)) = snapshot.find(wanted, node).map_err(|e| e.to_string())? else {
        return Err(format!(
            "no chain named {wanted}{} in {}; run `ieschain inspect --data {}` to list them",
            node.map(|n| format!(" held by {n}")).unwrap_or_default(),
            data.display(),
            data.display()
        ));
    };
    if as_json {
        let value = snapshot
            .blocks(holder, chain, from, limit)
            .map_err(|e| e.to_string())?;
        println!("{}", pretty(&value)?);
    } else {
        let store = snapshot.store();
        println!("{wanted}, held by {}", snapshot.directory().name(&holder));
        for block in &store
            .range(holder, chain, from, limit)
            .map_err(|e| e.to_string())?
        {
            print_block(&block_summary(block, snapshot.directory(), store));
        }
    }
    Ok(())
}

/// A plain text table (`comfy-table`): columns as wide as their widest cell, those at
/// `right` aligned right.
fn table(
    header: &[&str],
    right: &[usize],
    rows: impl IntoIterator<Item = Vec<String>>,
) -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_header(header.iter().copied())
        .add_rows(rows);
    for index in right {
        if let Some(column) = table.column_mut(*index) {
            column.set_cell_alignment(comfy_table::CellAlignment::Right);
        }
    }
    table
}

/// What the text view of a record shows.
fn record_summary(record: &Record, directory: &Directory) -> Value {
    json!({
        "author": directory.name(&record.content.author),
        "seq": record.content.seq,
        "kind": record.kind().name(),
        "urgent": record.urgency() == ieschain_core::Urgency::Urgent,
    })
}

/// What the text view of a block shows (`--json` gives the whole block).
fn block_summary(block: &AnyBlock, directory: &Directory, store: &dyn ChainStore) -> Value {
    let records: Vec<Value> = block
        .records()
        .iter()
        .map(|r| record_summary(r, directory))
        .collect();
    let mut value = json!({
        "height": block.height(),
        "hash": block.hash().to_string(),
        "prev": block.prev().to_string(),
        "records": records,
    });
    match block {
        AnyBlock::Private(b) => value["time"] = json!(b.header.time),
        AnyBlock::Consortium(b) => {
            value["time"] = json!(b.header.time);
            value["urgent"] = json!(b.header.urgent);
        }
        AnyBlock::Relay(b) => {
            let h = &b.header;
            value["time"] = json!(h.time);
            value["epoch"] = json!(h.epoch);
            value["relay"] = json!(directory.name(&h.relay));
            value["urgency"] = json!((0..h.urgency.len as usize)
                .map(|i| if h.urgency.get(i) == Some(true) {
                    '1'
                } else {
                    '0'
                })
                .collect::<String>());
            value["registry_added"] = json!(h
                .registry
                .added
                .iter()
                .map(|e| e.name.clone())
                .collect::<Vec<_>>());
            value["included"] = json!(b
                .blocks
                .iter()
                .map(|c| json!({
                    "chain": crate::explore::chain_name(store, directory, &ieschain_core::ChainBlock::chain(c)),
                    "height": c.header.height,
                    "urgent": c.header.urgent,
                    "records": c.records.iter().map(|r| record_summary(r, directory)).collect::<Vec<_>>(),
                }))
                .collect::<Vec<_>>());
        }
    }
    value
}

fn print_block(block: &Value) {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    print!(
        "height {} hash {} time {}",
        block["height"],
        &s(&block["hash"])[..16],
        block["time"]
    );
    if !block["epoch"].is_null() {
        print!(
            " epoch {} relay {} urgency [{}]",
            block["epoch"],
            s(&block["relay"]),
            s(&block["urgency"])
        );
    }
    if let Some(true) = block["urgent"].as_bool() {
        print!(" URGENT");
    }
    println!();
    let print_records = |records: &Value, indent: &str| {
        for r in records.as_array().into_iter().flatten() {
            println!(
                "{indent}seq {:>4} {:<22} {}by {}",
                r["seq"],
                s(&r["kind"]),
                if r["urgent"].as_bool() == Some(true) {
                    "urgent "
                } else {
                    ""
                },
                s(&r["author"])
            );
        }
    };
    for added in block["registry_added"].as_array().into_iter().flatten() {
        println!("  registry + {}", s(added));
    }
    for inner in block["included"].as_array().into_iter().flatten() {
        println!(
            "  includes {} height {}{}",
            s(&inner["chain"]),
            inner["height"],
            if inner["urgent"].as_bool() == Some(true) {
                " (urgent)"
            } else {
                ""
            }
        );
        print_records(&inner["records"], "    ");
    }
    print_records(&block["records"], "  ");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(args: &[&str]) -> &'static str {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        log_filter(&args)
    }

    #[test]
    fn tables_widen_to_long_names() {
        let long = "a-member-with-a-name-much-longer-than-sixteen-characters".to_string();
        let rows = vec![
            vec!["short".to_string(), "7".to_string()],
            vec![long.clone(), "12345".to_string()],
        ];
        let text = table(&["node", "height"], &[1], rows).to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        // Right-aligned numbers end in the same column, after the long name.
        let ends: Vec<usize> = lines.iter().map(|l| l.trim_end().len()).collect();
        assert!(ends.iter().all(|e| *e == ends[0]), "{text}");
        assert!(lines[2].starts_with(&format!(" {long} ")), "{text}");
    }

    #[test]
    fn verbosity_flags_choose_the_default_log_filter() {
        assert_eq!(filter(&["ieschain", "run"]), "warn");
        assert_eq!(filter(&["ieschain", "-v", "run"]), "info");
        assert_eq!(filter(&["ieschain", "run", "-vv"]), "debug");
        assert_eq!(
            filter(&["ieschain", "-v", "--verbose", "-v", "run"]),
            "trace"
        );
        assert_eq!(filter(&["ieschain", "--quiet", "run"]), "error");
        assert_eq!(filter(&["ieschain", "-q", "run"]), "error");
        // A value that is not a flag changes nothing.
        assert_eq!(filter(&["ieschain", "run", "--data", "-vx"]), "warn");
    }
}
