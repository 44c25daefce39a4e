//! `ieschain serve`, the explorer: its JSON API against real data directories (a finished
//! run and a running one), its clear 4xx answers to bad requests, its embedded page, its
//! promise never to write into the directory, its clean stop on SIGTERM, and the page in a
//! real headless chromium.

mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// A guard against a hang, not a measure.
const WITHIN: Duration = Duration::from_secs(60);

fn start(args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    util::spawn_with_lines(args)
}

fn wait_for(lines: &mpsc::Receiver<String>, found: impl Fn(&str) -> bool) -> String {
    loop {
        let line = lines.recv_timeout(WITHIN).expect("the line came");
        if found(&line) {
            return line;
        }
    }
}

/// Starts `serve` on a free loopback port: the child, its lines and its address.
fn serve(data: &Path) -> (Child, mpsc::Receiver<String>, String) {
    let (child, lines) = start(&[
        "serve",
        "--data",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let line = wait_for(&lines, |l| l.contains("http://"));
    (child, lines, address_in(&line))
}

/// The `host:port` of the first `http://host:port/` in `line`.
fn address_in(line: &str) -> String {
    line.split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_string()
}

/// `GET path` over HTTP/1.1: the status and the body.
fn get(address: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(WITHIN)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

fn get_json(address: &str, path: &str) -> (u16, Value) {
    let (status, body) = get(address, path);
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (status, value)
}

/// Every file of `dir` with its length and modification time.
fn files(dir: &Path) -> BTreeMap<String, (u64, SystemTime)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            (
                entry.file_name().to_string_lossy().into_owned(),
                (meta.len(), meta.modified().unwrap()),
            )
        })
        .collect()
}

fn stop(child: Child, signal: Signal) -> i32 {
    let mut child = child;
    kill(Pid::from_raw(child.id() as i32), signal).unwrap();
    child.wait().unwrap().code().unwrap_or(-1)
}

/// A finished four-party run of `seconds` in `data`, with `extra` flags: elections, relay
/// lanes, records.
fn finished_run(data: &Path, seconds: &str, extra: &[&str]) {
    let out = util::ieschain(&util::run_args(data.to_str().unwrap(), seconds, extra));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The steps of a power purchase and of a data trade, in protocol order.
const POWER_STEPS: [&str; 6] = [
    "offer",
    "bid",
    "agreement",
    "grid vote",
    "grid receipt",
    "settlement",
];
const DATA_STEPS: [&str; 4] = ["offer", "purchase", "agreement", "dispute"];

/// One trade of `/api/trades`: its steps in protocol order, each of its own trade, each
/// naming the block that holds it; a settled power trade has every step.
fn assert_lifecycle(trade: &Value) {
    let order: &[&str] = if trade["kind"] == "power" {
        &POWER_STEPS
    } else {
        &DATA_STEPS
    };
    let steps = trade["steps"].as_array().unwrap();
    let ranks: Vec<usize> = steps
        .iter()
        .map(|s| {
            let name = s["step"].as_str().unwrap();
            order
                .iter()
                .position(|o| *o == name)
                .unwrap_or_else(|| panic!("step {name} in a {} trade", trade["kind"]))
        })
        .collect();
    assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "order: {trade:#}");
    let id = trade["trade"].as_str().unwrap();
    let digest_of = |name: &str| {
        steps
            .iter()
            .find(|s| s["step"] == name)
            .map(|s| s["digest"].as_str().unwrap())
    };
    for step in steps {
        let body = &step["record"]["content"]["body"];
        if let Some(named) = body["trade"].as_str() {
            assert_eq!(named, id, "{trade:#}");
        }
        // What a step names is the step listed: the agreement's offer and bid, the
        // purchase's offer.
        if step["step"] == "agreement" || step["step"] == "purchase" {
            for (field, named) in [("offer", "offer"), ("bid", "bid")] {
                if let (Some(cited), Some(listed)) = (body[field].as_str(), digest_of(named)) {
                    assert_eq!(cited, listed, "{field} of the {}: {trade:#}", step["step"]);
                }
            }
        }
        assert!(step["block"]["hash"].is_string() && step["block"]["chain_name"].is_string());
    }
    if trade["status"] == "settled" {
        let names: BTreeSet<&str> = steps.iter().map(|s| s["step"].as_str().unwrap()).collect();
        assert!(
            POWER_STEPS.iter().all(|step| names.contains(step)),
            "a settled trade has every step: {trade:#}"
        );
    }
}

#[test]
fn the_api_answers_from_a_finished_run_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    finished_run(&data, "4", &[]);
    let before = files(&data);
    let (child, _lines, address) = serve(&data);

    let (status, listing) = get_json(&address, "/api/chains");
    assert_eq!(status, 200, "{listing}");
    let chains = listing["chains"].as_array().unwrap();
    let mut lanes: BTreeMap<String, (String, u64)> = BTreeMap::new();
    for chain in chains {
        if chain["chain"]["kind"] == "relay" {
            let name = chain["chain_name"].as_str().unwrap().to_string();
            let height = chain["height"].as_u64().unwrap();
            let node = chain["node_name"].as_str().unwrap().to_string();
            if lanes.get(&name).is_none_or(|(_, h)| height > *h) {
                lanes.insert(name, (node, height));
            }
        }
    }
    assert_eq!(
        lanes.keys().collect::<Vec<_>>(),
        ["relay/grid", "relay/load", "relay/service", "relay/source"],
        "{listing}"
    );
    let elections = listing["elections"].as_array().unwrap();
    assert!(elections.len() >= 4, "the initial elections: {listing}");
    assert!(elections.iter().all(|e| e["relay_name"].is_string()));
    // Each candidate's failure rate and chance in the draw: the chances of those drawn
    // from sum to 1; a relay the rules fixed has none.
    for election in elections {
        let candidates = election["candidates"].as_array().unwrap();
        let chances: Vec<f64> = candidates
            .iter()
            .filter_map(|c| c["p_k"].as_f64())
            .collect();
        let fixed = election["relay_fixed"].as_bool().unwrap();
        assert_eq!(
            chances.len() + usize::from(fixed),
            candidates.len(),
            "{election:#}"
        );
        if !chances.is_empty() {
            let total: f64 = chances.iter().sum();
            assert!((total - 1.0).abs() < 1e-9, "{election:#}");
        }
        if election["reason"] == "initial" {
            assert!(!fixed, "{election:#}");
        }
        assert!(candidates.iter().all(|c| c["e_k"].as_f64().is_some()));
    }
    let heads = listing["lanes"].as_array().unwrap();
    assert_eq!(heads.len(), 4, "{listing}");
    assert!(
        heads.iter().all(|l| l["head_time"].is_string()),
        "{listing}"
    );

    // One lane's blocks from its fullest copy, then one block by its hash.
    let (node, height) = &lanes["relay/grid"];
    let (status, blocks) = get_json(
        &address,
        &format!("/api/chain?name=relay/grid&node={node}&from=1&limit=1000"),
    );
    assert_eq!(status, 200, "{blocks}");
    let list = blocks["blocks"].as_array().unwrap();
    assert_eq!(list.len() as u64, *height, "{blocks}");
    assert_eq!(list[0]["chain"], "relay");
    let hash = list.last().unwrap()["hash"].as_str().unwrap().to_string();
    let (status, found) = get_json(&address, &format!("/api/block/{hash}"));
    assert_eq!(status, 200, "{found}");
    let copies = found["copies"].as_array().unwrap();
    assert!(!copies.is_empty());
    assert!(copies.iter().all(|c| c["block"]["hash"] == hash.as_str()));

    // Records on the relay chain with their inclusion proofs, found again by author and
    // seq, and by their hash.
    let (status, found) = get_json(&address, "/api/records?limit=5");
    assert_eq!(status, 200, "{found}");
    let records = found["records"].as_array().unwrap();
    assert_eq!(records.len(), 5, "{found}");
    assert!(records.iter().all(|r| r["verified"] == true), "{found}");
    let first = &records[0];
    let content = &first["record"]["content"];
    let (author, seq) = (content["author_name"].as_str().unwrap(), &content["seq"]);
    let (status, again) = get_json(&address, &format!("/api/records?member={author}&seq={seq}"));
    assert_eq!(status, 200, "{again}");
    let again = again["records"].as_array().unwrap();
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0]["digest"], first["digest"]);
    let digest = first["digest"].as_str().unwrap();
    let (_, by_hash) = get_json(&address, &format!("/api/records?hash={digest}"));
    assert_eq!(
        by_hash["records"][0]["digest"], first["digest"],
        "{by_hash}"
    );
    let relay_block = first["relay_block"]["hash"].as_str().unwrap();
    assert_eq!(
        get_json(&address, &format!("/api/block/{relay_block}")).0,
        200
    );

    // Trades as lifecycles: whatever this short run agreed, each trade's steps come in
    // protocol order, each in a block the API can show.
    let (status, trades) = get_json(&address, "/api/trades?limit=100");
    assert_eq!(status, 200, "{trades}");
    assert!(trades["offers_open"].is_u64(), "{trades}");
    for trade in trades["trades"].as_array().unwrap() {
        assert_lifecycle(trade);
    }

    // The page and its script are in the binary.
    let (status, page) = get(&address, "/");
    assert_eq!(status, 200);
    assert!(page.contains("ieschain explorer") && page.contains("/app.js"));
    let (status, script) = get(&address, "/app.js");
    assert_eq!(status, 200);
    assert!(script.contains("/api/chains"));

    assert_eq!(stop(child, Signal::SIGTERM), 0);
    assert_eq!(files(&data), before, "serve wrote into the data directory");
}

#[test]
fn bad_requests_get_a_clear_4xx() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    finished_run(&data, "4", &[]);
    let (child, _lines, address) = serve(&data);
    let zeros = "0".repeat(64);
    let cases = [
        (
            "/api/chain?name=relay/nowhere",
            404,
            "no chain named relay/nowhere",
        ),
        (
            "/api/chain?name=relay/grid&node=nobody",
            404,
            "held by nobody",
        ),
        ("/api/chain", 400, "name: expected a chain name"),
        (
            "/api/chain?name=relay/grid&limit=1000000",
            400,
            "limit: expected at most 1000",
        ),
        (
            "/api/chain?name=relay/grid&from=-1",
            400,
            "from: expected a non-negative",
        ),
        (
            "/api/chain?name=relay/grid&limit=ten",
            400,
            "limit: expected a non-negative",
        ),
        (
            "/api/block/not-a-hash",
            400,
            "hash: expected 64 hexadecimal digits",
        ),
        (
            "/api/block/abc",
            400,
            "hash: expected 64 hexadecimal digits",
        ),
        (&format!("/api/block/{zeros}"), 404, "no node holds a block"),
        ("/api/nothing", 404, "no such page"),
        ("/api/events", 404, "no live events"),
        ("/api/takeovers", 404, "no live events"),
        (
            "/api/trades?limit=1001",
            400,
            "limit: expected at most 1000",
        ),
        (
            "/api/records?seq=first",
            400,
            "seq: expected a non-negative",
        ),
        (
            "/api/records?hash=zz",
            400,
            "hash: expected 64 hexadecimal digits",
        ),
        (
            "/api/records?limit=5000",
            400,
            "limit: expected at most 1000",
        ),
    ];
    for (path, status, message) in cases {
        let (got, body) = get_json(&address, path);
        assert_eq!(got, status, "{path}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(message), "{path}: {error}");
    }
    // Still serving after every one of them.
    assert_eq!(get_json(&address, "/api/chains").0, 200);
    assert_eq!(stop(child, Signal::SIGINT), 0);
}

/// Served while a federation runs in the directory: each answer is the directory as it
/// is (a fresh secondary instance at most a second old), so the heads grow.
#[test]
fn a_live_directory_is_served_as_it_grows() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (run, run_lines) = start(&["run", "--data", data.to_str().unwrap(), "--duration", "600"]);
    wait_for(&run_lines, |l| l.contains("committed"));
    let (child, _lines, address) = serve(&data);
    let total = |address: &str| -> u64 {
        let (status, listing) = get_json(address, "/api/chains");
        assert_eq!(status, 200, "{listing}");
        listing["chains"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["height"].as_u64().unwrap())
            .sum()
    };
    let first = total(&address);
    // The run's next progress line comes seconds later, with more blocks written.
    wait_for(&run_lines, |l| l.contains("committed"));
    wait_for(&run_lines, |l| l.contains("committed"));
    let later = total(&address);
    assert!(later > first, "heads grew: {first} then {later}");
    assert_eq!(stop(child, Signal::SIGTERM), 0);
    assert_eq!(stop(run, Signal::SIGTERM), 0);
}

#[test]
fn serve_refuses_a_missing_directory_and_listens_on_loopback_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ieschain"))
        .args(["serve", "--data", dir.path().join("none").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not exist"), "{stderr}");
    let help = Command::new(env!("CARGO_BIN_EXE_ieschain"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("[default: 127.0.0.1:8080]"), "{help}");
}

/// The browser to drive: `IESCHAIN_CHROMIUM`, else Debian's `chromium` (or Ubuntu's
/// `chromium-browser`) on the PATH.
fn chromium() -> Option<std::path::PathBuf> {
    if let Some(path) = std::env::var_os("IESCHAIN_CHROMIUM") {
        return Some(path.into());
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|path| path.is_file())
}

/// `simulate --serve ADDR` at a pace slow enough to watch: its events live (the stream
/// ends with the simulation), then its in-memory chains until a signal; `--serve` adds no
/// write anywhere.
fn simulate_serving(seed: u64, until: &str, pace: &str) -> (Child, mpsc::Receiver<String>, String) {
    let seed = seed.to_string();
    let (child, lines) = start(&[
        "simulate",
        "--seed",
        &seed,
        "--until",
        until,
        "--pace",
        pace,
        "--serve",
        "127.0.0.1:0",
    ]);
    let address = address_in(&wait_for(&lines, |l| l.contains("explorer at http://")));
    (child, lines, address)
}

/// `simulate --serve`: live events (with no `broken` one in a healthy run) while the
/// simulation runs, the take-overs of every configuration, and the trades as whole
/// lifecycles (grid votes from the grid's consortium chains included) once it is over.
#[test]
fn simulate_serves_its_chains_live_and_after() {
    // A fixed seed: what the assertions need (a settled power purchase and a data trade
    // within 12 virtual s) holds for the seeds tried, and a failure replays.
    let (child, lines, address) = simulate_serving(11, "12", "4");
    let mut stream = TcpStream::connect(&address).unwrap();
    stream.set_read_timeout(Some(WITHIN)).unwrap();
    write!(
        stream,
        "GET /api/events HTTP/1.1\r\nHost: {address}\r\nAccept: text/event-stream\r\n\
         Connection: close\r\n\r\n"
    )
    .unwrap();
    // The stream ends with the simulation: every event it sent is read.
    let mut events = String::new();
    BufReader::new(stream)
        .read_to_string(&mut events)
        .expect("the stream ends with the simulation, within the read timeout");
    assert!(events.starts_with("HTTP/1.1 200"), "{events}");
    for kind in ["committed", "elected", "took_over", "acked"] {
        assert!(
            events.contains(&format!("event: {kind}\n")),
            "a {kind} event"
        );
    }
    assert!(!events.contains("event: broken"), "{events}");
    wait_for(&lines, |l| l.contains("serving the simulated chains"));
    // A client that comes after the end is told so (204: a browser does not reconnect).
    assert_eq!(get(&address, "/api/events").0, 204);

    let (status, takeovers) = get_json(&address, "/api/takeovers");
    assert_eq!(status, 200, "{takeovers}");
    let epochs = takeovers["epochs"].as_array().unwrap();
    for lane in ["source", "grid", "service", "load"] {
        let first = epochs
            .iter()
            .find(|e| e["lane_name"] == lane && e["epoch"] == 1)
            .unwrap_or_else(|| panic!("lane {lane}'s first configuration: {takeovers:#}"));
        assert_eq!(first["elected"]["reason"], "initial", "{first:#}");
        assert!(first["took_over"]["at"].is_string(), "{first:#}");
        assert!(first["activated"].is_object(), "{first:#}");
        assert!(first["took_over_ms"].is_u64(), "{first:#}");
    }

    let (status, trades) = get_json(&address, "/api/trades?limit=1000");
    assert_eq!(status, 200, "{trades}");
    let trades = trades["trades"].as_array().unwrap();
    for trade in trades {
        assert_lifecycle(trade);
    }
    let settled = trades
        .iter()
        .find(|t| t["kind"] == "power" && t["status"] == "settled")
        .unwrap_or_else(|| panic!("a settled power purchase in 12 virtual s: {trades:#?}"));
    let votes: Vec<&Value> = settled["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["step"] == "grid vote")
        .collect();
    assert!(!votes.is_empty(), "{settled:#}");
    assert!(
        votes.iter().all(|v| v["block"]["on_relay_chain"] == false
            && v["block"]["chain_name"]
                .as_str()
                .unwrap()
                .starts_with("consortium/grid/")),
        "grid votes stay on the grid's consortium chains: {settled:#}"
    );
    assert!(
        trades.iter().any(|t| {
            let steps: Vec<&str> = t["steps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["step"].as_str().unwrap())
                .collect();
            t["kind"] == "data" && steps.starts_with(&["offer", "purchase", "agreement"])
        }),
        "a whole data trade: {trades:#?}"
    );
    // The blocks the steps name are served too.
    let block = settled["steps"][0]["block"]["hash"].as_str().unwrap();
    assert_eq!(get_json(&address, &format!("/api/block/{block}")).0, 200);
    // A healthy simulation exits 0 when its serving is stopped.
    assert_eq!(stop(child, Signal::SIGINT), 0);
}

/// The page in a real headless browser, served by a paced simulation while it runs: the
/// four lanes, the initial elections, trades with their lifecycles, the take-overs and
/// the live counters (no invariant broken) are in its DOM once its scripts ran. A
/// screenshot of the finished simulation is saved as `target/explorer.png` for a person to
/// look at.
#[test]
fn the_page_shows_lanes_elections_and_trades_in_a_browser() {
    let Some(browser) = chromium() else {
        eprintln!(
            "\n*** SKIPPED: no chromium to run the explorer's browser test. `make test` \
             installs Debian's chromium (scripts/ensure-deps.sh --browser); or set \
             IESCHAIN_CHROMIUM. ***\n"
        );
        return;
    };
    let (child, lines, address) = simulate_serving(23, "12", "3");
    let url = format!("http://{address}/");
    // Virtual time lets the page's fetches finish before the DOM is read; the open event
    // stream holds the page until the simulation ends, so the live counters are drawn.
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--virtual-time-budget=8000",
        "--window-size=1400,1800",
    ];
    let dom = Command::new(&browser)
        .args(flags)
        .args(["--dump-dom", &url])
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    wait_for(&lines, |l| l.contains("serving the simulated chains"));
    let screenshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/explorer.png");
    let shot = Command::new(&browser)
        .args(flags)
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert_eq!(stop(child, Signal::SIGTERM), 0);
    for lane in ["source", "grid", "service", "load"] {
        assert!(
            dom.contains(&format!("data-lane=\"{lane}\"")),
            "lane {lane} in the page: {dom}"
        );
    }
    assert!(dom.contains("epoch 1: initial"), "an election: {dom}");
    assert!(dom.contains("class=\"candidate relay\""), "the draw: {dom}");
    assert!(
        dom.contains("data-epochs=\"grid\""),
        "the epochs bar: {dom}"
    );
    assert!(
        dom.contains("class=\"trade\""),
        "a trade in the page: {dom}"
    );
    assert!(
        dom.contains("class=\"step step-offer"),
        "a trade's steps: {dom}"
    );
    assert!(
        dom.contains("class=\"takeover-row\""),
        "the take-overs: {dom}"
    );
    assert!(dom.contains("records/s"), "the live counters: {dom}");
    assert!(
        dom.contains("invariants broken: 0"),
        "no invariant broken: {dom}"
    );
    assert!(
        shot.status.success() && screenshot.is_file(),
        "the screenshot"
    );
}

/// `run --serve`: the explorer beside the running federation, its typed events live as
/// server-sent events, and the stream's end when the run stops.
#[test]
fn run_serves_the_explorer_with_live_events() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (run, lines) = start(&[
        "run",
        "--data",
        data.to_str().unwrap(),
        "--duration",
        "600",
        "--serve",
        "127.0.0.1:0",
    ]);
    let address = address_in(&wait_for(&lines, |l| l.contains("explorer at http://")));
    let mut stream = TcpStream::connect(&address).unwrap();
    stream.set_read_timeout(Some(WITHIN)).unwrap();
    write!(
        stream,
        "GET /api/events HTTP/1.1\r\nHost: {address}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    // Committed relay blocks come within a second of serving; each is one SSE event with
    // its kind as the event name and its JSON as the data.
    let mut kind = String::new();
    let committed: Value = loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "the stream ended early"
        );
        let line = line.trim_end();
        if let Some(name) = line.strip_prefix("event: ") {
            kind = name.to_string();
        } else if let Some(data) = line.strip_prefix("data: ") {
            if kind == "committed" {
                break serde_json::from_str(data).unwrap();
            }
        }
    };
    assert_eq!(committed["event"], "committed");
    assert!(committed["node_name"].is_string(), "{committed}");
    assert_eq!(get_json(&address, "/api/chains").0, 200);
    // The take-overs are gathered from the federation's start: every lane's initial one.
    let (status, takeovers) = get_json(&address, "/api/takeovers");
    assert_eq!(status, 200, "{takeovers}");
    for lane in ["source", "grid", "service", "load"] {
        assert!(
            takeovers["epochs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["lane_name"] == lane
                    && e["epoch"] == 1
                    && e["elected"]["reason"] == "initial"),
            "lane {lane}'s initial election: {takeovers:#}"
        );
    }
    // Stopping the run ends the federation, its event stream and the server.
    kill(Pid::from_raw(run.id() as i32), Signal::SIGTERM).unwrap();
    let mut rest = String::new();
    let _ = reader.read_to_string(&mut rest);
    let mut run = run;
    assert_eq!(run.wait().unwrap().code(), Some(0));
}

/// Bad addresses are refused with exit 2 and a clear line, before anything runs: one that
/// does not parse (`serve --listen`, `run --serve`) and one already taken.
#[test]
fn bad_listen_addresses_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for args in [
        vec!["serve", "--data", "x", "--listen", "localhost:eighty"],
        vec!["run", "--data", "x", "--serve", "not-an-address"],
    ] {
        let out = util::ieschain(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("invalid socket address"), "{stderr}");
    }
    finished_run(&data, "1", &[]);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let out = util::ieschain(&[
        "serve",
        "--data",
        data.to_str().unwrap(),
        "--listen",
        &address,
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("listening on {address}")),
        "{stderr}"
    );
}
