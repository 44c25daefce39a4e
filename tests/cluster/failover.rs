//! The relay of a lane is killed with SIGKILL while the workload runs; another takes the
//! lane over, the killed node restarts on its own directory and writes again, and nothing
//! acknowledged is lost.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ieschain::config::FederationConfig;
use ieschain_core::{Address, AnyBlock, ChainId, ConsortiumId};
use ieschain_storage::{ChainStore, RocksStore};
use serde_json::Value;

use crate::harness::{ieschain, wait_until, Cluster};

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
    let mut cluster = Cluster::new(&config());
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
    cluster.start(&relay, &["--workload-for", "8s"]);
    wait_until(
        Duration::from_secs(40),
        "a block of the restarted node acknowledged",
        || (acked(&cluster, &relay).len() > before).then_some(()),
    );
    // The workload ends, and the windows flush what it left.
    wait_until(Duration::from_secs(60), "the workload over", || {
        let quiet = |name: &String| acked(&cluster, name).len();
        let first: Vec<usize> = names.iter().map(quiet).collect();
        std::thread::sleep(Duration::from_secs(3));
        let second: Vec<usize> = names.iter().map(quiet).collect();
        (first == second).then_some(())
    });
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

    // Each relay's copy of the relay chain: the consortium blocks it includes, by lane.
    let address_of = |name: &str| cluster.spec.members[name].public_key.address();
    let mut included: BTreeMap<String, BTreeSet<(Address, u64)>> = BTreeMap::new();
    let mut own_lanes: BTreeMap<String, BTreeMap<(Address, u64), ()>> = BTreeMap::new();
    for relay in relays.keys() {
        let store = RocksStore::open_existing(&cluster.data(relay)).expect("relay's store");
        let holder = address_of(relay);
        let mut blocks = BTreeSet::new();
        let mut lanes = BTreeMap::new();
        for (who, chain, head) in store.chains().expect("chains") {
            assert_eq!(who, holder, "a node's directory holds its own chains only");
            for height in 1..=head.height {
                match store.block(who, chain, height).expect("read") {
                    Some(AnyBlock::Relay(block)) => {
                        for included in &block.blocks {
                            blocks.insert((included.header.author, included.header.height));
                        }
                    }
                    Some(AnyBlock::Consortium(block)) => {
                        lanes.insert((block.header.author, block.header.height), ());
                    }
                    Some(_) => {}
                    None => panic!("{relay}'s copy of {chain} has no block {height}"),
                }
            }
            if let ChainId::Relay(ConsortiumId(_)) = chain {
                assert!(head.height > 0);
            }
        }
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
                    own_lanes[&own_relay].contains_key(&(member, height)),
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
