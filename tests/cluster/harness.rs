//! Starting, stopping and reading `ieschain node` processes.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use ieschain::config::FederationConfig;
use ieschain::spec::ChainSpec;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// Held by the tests that run a whole federation of processes (the failover and the
/// bench), so that two of them never share the 2 cores of a CI machine.
pub static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes [`HEAVY`], whether or not a test that held it failed.
pub fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A cluster's folder: keys, spec, data directories and logs.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub spec: ChainSpec,
    pub children: BTreeMap<String, Child>,
}

impl Cluster {
    /// Keys and a spec for `config`, each node on a free loopback UDP port.
    pub fn new(config: &FederationConfig) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut spec = ChainSpec::build(
            config,
            &dir.path().join("keys"),
            IpAddr::from([127, 0, 0, 1]),
            20000,
        )
        .expect("spec");
        spec.place_on_free_ports(IpAddr::from([127, 0, 0, 1]))
            .expect("free ports");
        spec.check("test spec").expect("the spec checks");
        spec.write(&dir.path().join("spec.toml"))
            .expect("spec written");
        std::fs::create_dir_all(dir.path().join("logs")).expect("logs");
        Cluster {
            dir,
            spec,
            children: BTreeMap::new(),
        }
    }

    pub fn path(&self, rest: &str) -> PathBuf {
        self.dir.path().join(rest)
    }

    pub fn data(&self, name: &str) -> PathBuf {
        self.path(&format!("data/{name}"))
    }

    pub fn names(&self) -> Vec<String> {
        self.spec.members.keys().cloned().collect()
    }

    pub fn listen(&self, name: &str) -> SocketAddr {
        match name {
            "supervisor" => self.spec.supervisor.listen,
            name => self.spec.members[name].listen,
        }
    }

    /// `ieschain node` for `name` (`supervisor` or a member) with `extra` flags.
    pub fn command(&self, name: &str, key: &str, data: &Path, extra: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ieschain"));
        command
            .arg("node")
            .arg("--spec")
            .arg(self.path("spec.toml"))
            .arg("--key")
            .arg(self.path(&format!("keys/{key}.key")))
            .arg("--data")
            .arg(data)
            .args(extra)
            .env("RUST_LOG", "info")
            .env("RUST_BACKTRACE", "1");
        if name == "supervisor" {
            command.arg("--supervisor");
        }
        command
    }

    /// Starts `name`'s node, its output appended to `logs/<name>.log`.
    pub fn start(&mut self, name: &str, extra: &[&str]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(&format!("logs/{name}.log")))
            .expect("log");
        let child = self
            .command(name, name, &self.data(name), extra)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("ieschain node starts");
        self.children.insert(name.to_string(), child);
    }

    /// Kills `name`'s process with SIGKILL and reaps it.
    pub fn kill(&mut self, name: &str) {
        let mut child = self.children.remove(name).expect("running");
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
    }

    /// Sends SIGTERM to every node and waits for each to exit; returns their statuses.
    pub fn stop_all(&mut self) -> BTreeMap<String, ExitStatus> {
        for child in self.children.values() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut statuses = BTreeMap::new();
        for (name, mut child) in std::mem::take(&mut self.children) {
            loop {
                if let Some(status) = child.try_wait().expect("wait") {
                    statuses.insert(name, status);
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    panic!(
                        "{name} did not stop within 60 s of SIGTERM\n{}",
                        self.log(&name)
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        statuses
    }

    /// `name`'s log, for failure messages (its last 60 lines).
    pub fn log(&self, name: &str) -> String {
        let text =
            std::fs::read_to_string(self.path(&format!("logs/{name}.log"))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// Every event `name`'s node logged so far, across its restarts.
    pub fn events(&self, name: &str) -> Vec<Value> {
        ieschain::bench::cluster::read_event_log(&self.data(name).join("events.jsonl"))
    }

    /// `name`'s report of its last clean stop.
    pub fn report(&self, name: &str) -> Value {
        let text = std::fs::read_to_string(self.data(name).join("report.json"))
            .unwrap_or_else(|e| panic!("{name}'s report: {e}\n{}", self.log(name)));
        serde_json::from_str(&text).expect("the report is JSON")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.children.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            // Keep the evidence of a failed test.
            let kept = self.dir.path().to_path_buf();
            eprintln!("cluster folder kept at {}", kept.display());
            let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
            let _ = dir.keep();
        }
    }
}

/// Polls `condition` every 100 ms until it holds or `limit` passes; panics with `what`.
pub fn wait_until<T>(limit: Duration, what: &str, mut condition: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = condition() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "waited {limit:?} for {what}, in vain"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs the `ieschain` binary with `args`; returns its exit code and its output.
pub fn ieschain(args: &[&std::ffi::OsStr]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ieschain"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("ieschain runs");
    (
        output.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}
