//! The relay of a lane is killed with SIGKILL while the workload runs; another takes the
//! lane over, the killed node restarts on its own directory and writes again, and nothing
//! acknowledged is lost.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ieschain::config::FederationConfig;
use std::path::Path;

use ieschain_core::{Address, AnyBlock};
use ieschain_storage::{ChainStore, RocksStore};
use serde_json::Value;

use crate::harness::{heavy, ieschain, wait_until, Cluster};

/// The four-party federation with no rotation during the test: the only change of relay is
/// the failover the test causes.
fn config() -> FederationConfig {
    let mut config = FederationConfig::four_party();
    config.timing.period = Duration::from_secs(3600);
    config.check().expect("valid");
    config
}

/// The newest activation of `lane` the supervisor logged: (epoch, relay's name).
fn activation(cluster: &Cluster, lane: u64) -> Option<(u64, String)> {
    cluster
        .events("supervisor")
        .iter()
        .filter(|e| e["event"] == "activated" && e["lane"] == lane)
        .filter_map(|e| Some((e["epoch"].as_u64()?, e["relay_name"].as_str()?.to_string())))
        .max()
}

/// Blocks, each as (author, height).
type Blocks = BTreeSet<(Address, u64)>;

/// What `dir`'s node holds: the consortium blocks its relay lanes include, and the blocks
/// of its copies of consortium lanes, each as (author, height). Read through a RocksDB
/// secondary instance when the node runs (`scratch` given), or directly once it stopped.
fn holdings(dir: &Path, scratch: Option<&Path>) -> Option<(Blocks, Blocks)> {
    let store = match scratch {
        Some(scratch) => RocksStore::open_secondary(dir, scratch).ok()?,
        None => RocksStore::open_existing(dir).expect("a stopped node's store"),
    };
    let mut included = BTreeSet::new();
    let mut lanes = BTreeSet::new();
    for (holder, chain, head) in store.chains().ok()? {
        for height in 1..=head.height {
            match store.block(holder, chain, height).ok()? {
                Some(AnyBlock::Relay(block)) => {
                    included.extend(
                        block
                            .blocks
                            .iter()
                            .map(|b| (b.header.author, b.header.height)),
                    );
                }
                Some(AnyBlock::Consortium(block)) => {
                    lanes.insert((block.header.author, block.header.height));
                }
                Some(_) => {}
                None if scratch.is_some() => return None,
                None => panic!(
                    "{}: {chain} has no block {height} below its head",
                    dir.display()
                ),
            }
        }
    }
    Some((included, lanes))
}

/// Every block acknowledged to a member that goes on the relay chain: (member, height).
fn acked_external(cluster: &Cluster, names: &[String]) -> BTreeSet<(Address, u64)> {
    names
        .iter()
        .flat_map(|name| {
            let member = cluster.spec.members[name].public_key.address();
            acked(cluster, name)
                .into_iter()
                .filter(|(_, external)| *external)
                .map(move |(height, _)| (member, height))
        })
        .collect()
}

/// Every `acked` event of `name`'s log: (height, external).
fn acked(cluster: &Cluster, name: &str) -> Vec<(u64, bool)> {
    cluster
        .events(name)
        .iter()
        .filter(|e| e["event"] == "acked")
        .filter_map(|e| Some((e["height"].as_u64()?, e["external"].as_bool()?)))
        .collect()
}

#[test]
fn a_killed_relay_fails_over_restarts_and_loses_nothing_acknowledged() {
    let _heavy = heavy();
    let mut cluster = Cluster::new(&config());
    let started = std::time::Instant::now();
    let names = cluster.names();
    cluster.start("supervisor", &[]);
    for name in &names {
        cluster.start(name, &["--workload-for", "25s"]);
    }
    let activated = |cluster: &Cluster| (0..4).all(|lane| activation(cluster, lane).is_some());
    wait_until(
        Duration::from_secs(60),
        "every lane's relay activated",
        || activated(&cluster).then_some(()),
    );
    let (epoch, relay) = activation(&cluster, 0).expect("lane 0 is active");
    // Blocks acknowledged by that relay before it dies.
    let consortium: Vec<String> = names
        .iter()
        .filter(|n| n.starts_with("source-"))
        .cloned()
        .collect();
    wait_until(
        Duration::from_secs(30),
        "acknowledged blocks in the source consortium",
        || {
            let count: usize = consortium.iter().map(|n| acked(&cluster, n).len()).sum();
            (count >= 10).then_some(())
        },
    );
    cluster.kill(&relay);
    let (new_epoch, new_relay) = wait_until(
        Duration::from_secs(30),
        "another relay activated on the source lane",
        || activation(&cluster, 0).filter(|(e, r)| *e > epoch && *r != relay),
    );
    assert!(new_epoch > epoch);
    // The killed node comes back on its own directory and writes again: an acknowledgement
    // after its restart shows that it found the lane's new relay and continued its lane.
    let before = acked(&cluster, &relay).len();
    let restarted = std::time::Instant::now();
    cluster.start(&relay, &["--workload-for", "8s"]);
    wait_until(
        Duration::from_secs(40),
        "a block of the restarted node acknowledged",
        || (acked(&cluster, &relay).len() > before).then_some(()),
    );
    // Once every workload has ended, every block acknowledged to go on the relay chain
    // reaches every lane's relay (liveness; the checks after the stop are the safety).
    while started.elapsed() < Duration::from_secs(26)
        || restarted.elapsed() < Duration::from_secs(9)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let scratch = tempfile::tempdir().expect("scratch");
    wait_until(
        Duration::from_secs(60),
        "every block acknowledged for the relay chain at every lane's relay",
        || {
            let acked = acked_external(&cluster, &names);
            (0..4)
                .all(|lane| {
                    let Some((_, relay)) = activation(&cluster, lane) else {
                        return false;
                    };
                    let scratch = scratch.path().join(format!("{relay}-{}", acked.len()));
                    holdings(&cluster.data(&relay), Some(&scratch))
                        .is_some_and(|(included, _)| acked.is_subset(&included))
                })
                .then_some(())
        },
    );
    let statuses = cluster.stop_all();
    for (name, status) in &statuses {
        assert!(
            status.success(),
            "{name} exited with {status} after SIGTERM\n{}",
            cluster.log(name)
        );
    }

    // Every data directory verifies.
    for name in names
        .iter()
        .chain(std::iter::once(&"supervisor".to_string()))
    {
        let data = cluster.data(name);
        let (code, output) = ieschain(&["verify".as_ref(), "--data".as_ref(), data.as_os_str()]);
        assert_eq!(code, 0, "verify of {name}'s directory: {output}");
    }

    // Who serves at the end: one relay per lane, the failed-over one among them.
    let relays: BTreeMap<String, Value> = names
        .iter()
        .map(|name| (name.clone(), cluster.report(name)))
        .filter(|(_, report)| report["relay"] == true)
        .collect();
    let lanes: BTreeSet<&str> = relays
        .values()
        .filter_map(|r| r["consortium"].as_str())
        .collect();
    assert_eq!(
        lanes.len(),
        4,
        "one relay per lane at the end: {:?}",
        relays.keys()
    );
    assert_eq!(
        relays.len(),
        4,
        "one relay per lane at the end: {:?}",
        relays.keys()
    );
    assert!(
        relays.contains_key(&new_relay),
        "{new_relay} serves the source lane"
    );

    // Each relay's copy of the relay chain and of its consortium's lanes.
    let address_of = |name: &str| cluster.spec.members[name].public_key.address();
    let mut included: BTreeMap<String, BTreeSet<(Address, u64)>> = BTreeMap::new();
    let mut own_lanes: BTreeMap<String, BTreeSet<(Address, u64)>> = BTreeMap::new();
    for relay in relays.keys() {
        let (blocks, lanes) = holdings(&cluster.data(relay), None).expect("read");
        assert!(!blocks.is_empty(), "{relay}'s relay chain includes nothing");
        included.insert(relay.clone(), blocks);
        own_lanes.insert(relay.clone(), lanes);
    }

    // Every acknowledged block is where its acknowledgement promised.
    let mut external = 0;
    let mut internal = 0;
    for name in &names {
        let member = address_of(name);
        let report = cluster.report(name);
        let consortium = report["consortium"]
            .as_str()
            .expect("a member's consortium");
        let own_relay = relays
            .iter()
            .find(|(_, r)| r["consortium"] == consortium)
            .map(|(n, _)| n.clone())
            .expect("its lane's relay");
        for (height, goes_out) in acked(&cluster, name) {
            if goes_out {
                external += 1;
                for (relay, blocks) in &included {
                    assert!(
                        blocks.contains(&(member, height)),
                        "{name}'s block {height} was acknowledged, but {relay}'s copy of the \
                         relay chain does not include it"
                    );
                }
            } else {
                internal += 1;
                assert!(
                    own_lanes[&own_relay].contains(&(member, height)),
                    "{name}'s block {height} was acknowledged, but its relay {own_relay} does \
                     not hold it"
                );
            }
        }
    }
    assert!(
        external >= 20 && internal >= 20,
        "too little was acknowledged to tell anything: {external} external, {internal} internal"
    );
}
