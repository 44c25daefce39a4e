//! Shared fixtures: keys, free loopback ports, nodes that record what they receive, and a
//! bounded wait.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ieschain_core::message::{Envelope, Message};
use ieschain_core::{Hash, Keypair};
use ieschain_net::{NetConfig, Network, Peer};

/// The key of test node `n`.
pub fn key(n: u8) -> Keypair {
    Keypair::from_seed([n; 32])
}

/// A loopback address with a port free a moment ago.
pub fn free_addr() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap()
}

/// The peer set of `nodes`, each a key and where it listens.
pub fn peers(nodes: &[(&Keypair, SocketAddr)]) -> BTreeMap<ieschain_core::Address, Peer> {
    nodes
        .iter()
        .map(|(key, addr)| {
            let peer = Peer {
                public_key: key.public(),
                addr: *addr,
            };
            (key.address(), peer)
        })
        .collect()
}

/// A running node and everything delivered to it, in delivery order.
pub struct Node {
    pub key: Keypair,
    pub net: Network,
    pub inbox: Arc<Mutex<Vec<Envelope>>>,
}

impl Node {
    /// Starts node `n` on `listen` with `peers`, after `tweak` adjusts the configuration.
    pub fn start(
        n: u8,
        listen: SocketAddr,
        peers: BTreeMap<ieschain_core::Address, Peer>,
        tweak: impl FnOnce(&mut NetConfig),
    ) -> Node {
        let key = key(n);
        let mut config = NetConfig::new([n; 32], listen, peers);
        tweak(&mut config);
        let inbox = Arc::new(Mutex::new(Vec::new()));
        let sink = inbox.clone();
        let net = Network::start(
            config,
            Arc::new(move |envelope| sink.lock().unwrap().push(envelope)),
        )
        .unwrap();
        Node { key, net, inbox }
    }

    /// How many envelopes have been delivered.
    pub fn delivered(&self) -> usize {
        self.inbox.lock().unwrap().len()
    }

    /// A copy of what has been delivered.
    pub fn received(&self) -> Vec<Envelope> {
        self.inbox.lock().unwrap().clone()
    }
}

/// A small message, of the Control class (`Message::traffic`).
pub fn control(seq: u64) -> Message {
    Message::Resync {
        incarnation: 0,
        seq,
    }
}

/// A message carrying `len` bytes, of the Bulk class.
pub fn bulk(seq: u64, len: usize) -> Message {
    Message::DataDelivery {
        trade: Hash([seq as u8; 32]),
        seller: Default::default(),
        buyer: Default::default(),
        data: vec![seq as u8; len],
    }
}

/// Polls `condition` every 10 ms until it holds; panics naming `what` after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The wait for anything that should happen at once on loopback.
pub const SOON: Duration = Duration::from_secs(10);
