//! What a node refuses: a peer whose key is not in the spec (at the handshake), garbage and
//! oversized frames (the connection closes, the node goes on), another party's key on its
//! data directory, a spec of another federation, a key the spec does not know.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::time::Duration;

use ieschain::config::FederationConfig;
use ieschain::spec::ChainSpec;
use ieschain_core::message::{Envelope, Message};
use ieschain_core::{ConsortiumId, Keypair};
use ieschain_net::{NetConfig, Network, Peer};

use crate::harness::{ieschain, wait_until, Cluster};

/// The secret of a key file the cluster made (the tests hold every party's key).
fn secret(cluster: &Cluster, name: &str) -> [u8; 32] {
    let text = std::fs::read_to_string(cluster.path(&format!("keys/{name}.key"))).expect("key");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("secret_key = "))
        .expect("a secret_key line");
    let mut secret = [0u8; 32];
    hex::decode_to_slice(line.trim_matches('"'), &mut secret).expect("hex");
    secret
}

#[test]
fn a_stranger_garbage_and_oversized_frames_are_refused_and_the_node_serves_on() {
    let mut cluster = Cluster::new(&FederationConfig::four_party());
    cluster.start("supervisor", &[]);
    let supervisor_key = cluster.spec.supervisor.public_key;
    let supervisor_at = cluster.listen("supervisor");
    let logged = |cluster: &Cluster, needle: &str| cluster.log("supervisor").contains(needle);
    wait_until(Duration::from_secs(20), "the supervisor listening", || {
        logged(&cluster, "listening on").then_some(())
    });

    // A stranger: a key of its own, which the spec does not name.
    let stranger = Keypair::from_seed([7; 32]);
    let network = Network::start(
        NetConfig::new(
            [7; 32],
            "127.0.0.1:0".parse().expect("addr"),
            BTreeMap::from([(
                supervisor_key.address(),
                Peer {
                    public_key: supervisor_key,
                    addr: supervisor_at,
                },
            )]),
        ),
        std::sync::Arc::new(|_| {}),
    )
    .expect("the stranger's endpoint");
    let hello = Message::Discover {
        consortium: ConsortiumId(0),
    };
    network.send(Envelope::seal(
        &stranger,
        supervisor_key.address(),
        0,
        1,
        &hello,
    ));
    let refused = format!("refused unknown key of {}", stranger.address());
    wait_until(Duration::from_secs(20), "the stranger refused", || {
        logged(&cluster, &refused).then_some(())
    });
    network.shutdown();

    // A member's key, with frames no honest node writes.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let member = secret(&cluster, "grid-east");
    let endpoint = runtime
        .block_on(async { quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")) })
        .expect("client endpoint");
    let send_raw = |bytes: Vec<u8>| {
        let config = ieschain_net::raw_client_config(member, supervisor_key).expect("config");
        runtime.block_on(async {
            let connection = endpoint
                .connect_with(config, supervisor_at, "ieschain")
                .expect("connect")
                .await
                .expect("the handshake of a known key");
            let mut stream = connection.open_uni().await.expect("stream");
            stream.write_all(&bytes).await.expect("write");
            stream.finish().expect("finish");
            // The node closes the connection; wait for it, bounded.
            tokio::time::timeout(Duration::from_secs(10), connection.closed())
                .await
                .expect("the node closes the connection")
        })
    };
    let mut garbage = 5u32.to_be_bytes().to_vec();
    garbage.extend_from_slice(b"\xff\xfe\xfd\xfc\xfb");
    send_raw(garbage);
    send_raw((ieschain_net::MAX_FRAME as u32 + 1).to_be_bytes().to_vec());
    send_raw(u32::MAX.to_be_bytes().to_vec());

    // It is still there, and stops cleanly with the counts in its report.
    assert!(
        cluster
            .children
            .get_mut("supervisor")
            .expect("running")
            .try_wait()
            .expect("wait")
            .is_none(),
        "the supervisor died of hostile input\n{}",
        cluster.log("supervisor")
    );
    let statuses = cluster.stop_all();
    assert!(
        statuses["supervisor"].success(),
        "{}",
        cluster.log("supervisor")
    );
    let net = &cluster.report("supervisor")["net"];
    assert!(net["refused_handshakes"].as_u64() >= Some(1), "{net}");
    assert_eq!(net["bad_frames"].as_u64(), Some(1), "{net}");
    assert_eq!(net["oversized_frames"].as_u64(), Some(2), "{net}");
}

#[test]
fn another_partys_key_a_stranger_or_a_spec_of_another_federation_fail_clearly() {
    let mut cluster = Cluster::new(&FederationConfig::four_party());
    // grid-east's node makes its directory and stops.
    cluster.start("grid-east", &["--duration", "1"]);
    let mut child = cluster.children.remove("grid-east").expect("started");
    let status = wait_until(Duration::from_secs(30), "grid-east to stop", || {
        child.try_wait().expect("wait")
    });
    assert!(status.success(), "{}", cluster.log("grid-east"));

    let node = |key: &OsStr, data: &OsStr, spec: &OsStr, extra: &[&str]| {
        let mut args: Vec<&OsStr> = vec![
            "node".as_ref(),
            "--spec".as_ref(),
            spec,
            "--key".as_ref(),
            key,
            "--data".as_ref(),
            data,
            "--duration".as_ref(),
            "1".as_ref(),
        ];
        args.extend(extra.iter().map(|e| OsStr::new(*e)));
        ieschain(&args)
    };
    let spec = cluster.path("spec.toml");
    let east_dir = cluster.data("grid-east");
    let west_key = cluster.path("keys/grid-west.key");
    let east_key = cluster.path("keys/grid-east.key");

    // Another party's key on grid-east's directory.
    let (code, output) = node(
        west_key.as_os_str(),
        east_dir.as_os_str(),
        spec.as_os_str(),
        &[],
    );
    assert_eq!(code, 2, "{output}");
    assert!(
        output.contains("belongs to the node at address"),
        "{output}"
    );

    // A spec of another federation: the same keys, another window.
    let mut other = FederationConfig::four_party();
    other.timing.window = 5;
    let other_spec = ChainSpec::build(
        &other,
        &cluster.path("keys"),
        std::net::IpAddr::from([127, 0, 0, 1]),
        21000,
    )
    .expect("spec");
    let other_path = cluster.path("other-spec.toml");
    other_spec.write(&other_path).expect("written");
    let (code, output) = node(
        east_key.as_os_str(),
        east_dir.as_os_str(),
        other_path.as_os_str(),
        &[],
    );
    assert_eq!(code, 2, "{output}");
    assert!(output.contains("the spec does not match"), "{output}");

    // A key the spec does not know.
    let stranger = cluster.path("stranger.key");
    let (code, output) = ieschain(&["keygen".as_ref(), "--out".as_ref(), stranger.as_os_str()]);
    assert_eq!(code, 0, "{output}");
    let fresh = cluster.path("data/fresh");
    let (code, output) = node(
        stranger.as_os_str(),
        fresh.as_os_str(),
        spec.as_os_str(),
        &[],
    );
    assert_eq!(code, 2, "{output}");
    assert!(output.contains("is not in the chain spec"), "{output}");
    assert!(!fresh.exists(), "nothing is written for a refused start");

    // The supervisor's key without --supervisor, and a member's with it.
    let supervisor_key = cluster.path("keys/supervisor.key");
    let (code, output) = node(
        supervisor_key.as_os_str(),
        fresh.as_os_str(),
        spec.as_os_str(),
        &[],
    );
    assert_eq!(code, 2, "{output}");
    assert!(output.contains("--supervisor"), "{output}");
    let (code, output) = node(
        east_key.as_os_str(),
        east_dir.as_os_str(),
        spec.as_os_str(),
        &["--supervisor"],
    );
    assert_eq!(code, 2, "{output}");
    assert!(output.contains("not the supervisor's"), "{output}");

    // A spec that is not one.
    let broken = cluster.path("broken-spec.toml");
    std::fs::write(&broken, "[supervisor]\npublic_key = \"00\"\n").expect("written");
    let (code, output) = node(
        east_key.as_os_str(),
        east_dir.as_os_str(),
        broken.as_os_str(),
        &[],
    );
    assert_eq!(code, 2, "{output}");
    assert!(output.contains("broken-spec.toml"), "{output}");

    // And grid-east's own key and spec still start it.
    let (code, output) = node(
        east_key.as_os_str(),
        east_dir.as_os_str(),
        spec.as_os_str(),
        &[],
    );
    assert_eq!(code, 0, "{output}");
}

/// The first signal stops a node cleanly (exit 0, its report written); a second one that
/// follows at once forces the exit (130), as `run` does.
#[test]
fn a_second_signal_forces_a_node_out() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;

    let mut cluster = Cluster::new(&FederationConfig::four_party());
    for (name, signals, code) in [
        ("supervisor", &[Signal::SIGTERM][..], 0),
        ("grid-east", &[Signal::SIGINT, Signal::SIGTERM][..], 130),
    ] {
        cluster.start(name, &[]);
        wait_until(Duration::from_secs(20), "the node listening", || {
            cluster.log(name).contains("listening on").then_some(())
        });
        let mut child = cluster.children.remove(name).expect("running");
        for signal in signals {
            kill(Pid::from_raw(child.id() as i32), *signal).expect("signal");
        }
        let status = wait_until(Duration::from_secs(30), "the node to exit", || {
            child.try_wait().expect("wait")
        });
        assert_eq!(status.code(), Some(code), "{name}\n{}", cluster.log(name));
        let report = cluster.data(name).join("report.json");
        assert_eq!(
            report.exists(),
            code == 0,
            "{name}: a report only after a clean stop"
        );
    }
}
