//! Hostile frames, written by a raw QUIC client that holds a valid key.

use std::net::SocketAddr;

use ieschain_core::codec;
use ieschain_core::message::Envelope;
use ieschain_core::{Keypair, PublicKey};
use ieschain_net::{CLOSE_BAD_FRAME, CLOSE_OVERSIZED};
use quinn::{Connection, ConnectionError, Endpoint, VarInt};
use tokio::runtime::Runtime;

use crate::util::{control, free_addr, key, peers, wait_until, Node, SOON};

/// A raw QUIC client of node `n`, on its own runtime.
struct Raw {
    runtime: Runtime,
    endpoint: Endpoint,
    secret: [u8; 32],
}

impl Raw {
    fn new(n: u8) -> Raw {
        let runtime = Runtime::new().unwrap();
        let endpoint = runtime
            .block_on(async { Endpoint::client("127.0.0.1:0".parse().unwrap()) })
            .unwrap();
        Raw {
            runtime,
            endpoint,
            secret: [n; 32],
        }
    }

    fn connect(&self, to: PublicKey, addr: SocketAddr) -> Connection {
        let config = ieschain_net::raw_client_config(self.secret, to).unwrap();
        self.runtime.block_on(async {
            self.endpoint
                .connect_with(config, addr, "ieschain")
                .unwrap()
                .await
                .unwrap()
        })
    }

    /// Writes `bytes` raw on a new uni stream of `connection`, and finishes it.
    fn write(&self, connection: &Connection, bytes: &[u8]) {
        self.runtime.block_on(async {
            let mut stream = connection.open_uni().await.unwrap();
            stream.write_all(bytes).await.unwrap();
            stream.finish().unwrap();
        })
    }

    /// Waits, bounded, for `connection` to be closed by the node, and returns the code.
    fn closed_with(&self, connection: &Connection) -> VarInt {
        let error = self
            .runtime
            .block_on(async { tokio::time::timeout(SOON, connection.closed()).await })
            .expect("the node closes the connection");
        match error {
            ConnectionError::ApplicationClosed(close) => close.error_code,
            other => panic!("closed otherwise: {other}"),
        }
    }
}

/// `envelope` as a frame.
fn framed(envelope: &Envelope) -> Vec<u8> {
    let body = codec::encode(envelope);
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// A garbage frame, and then a length prefix over the bound, each close the connection that
/// carried it with its own code and are counted; the node goes on serving its other peers.
#[test]
fn garbage_and_oversized_frames_close_the_connection() {
    let (a_addr, b_addr) = (free_addr(), free_addr());
    let (raw_key, b_key) = (key(5), key(2));
    let a = Node::start(
        1,
        a_addr,
        peers(&[(&raw_key, free_addr()), (&b_key, b_addr)]),
        |c| {
            c.max_frame = 64 * 1024;
        },
    );
    let b = Node::start(2, b_addr, peers(&[(&key(1), a_addr)]), |_| {});
    let raw = Raw::new(5);

    let connection = raw.connect(a.key.public(), a_addr);
    raw.write(&connection, &[0, 0, 0, 5, 1, 2, 3, 4, 5]);
    assert_eq!(
        raw.closed_with(&connection),
        VarInt::from_u32(CLOSE_BAD_FRAME)
    );
    assert_eq!(a.net.stats().bad_frames, 1);

    let connection = raw.connect(a.key.public(), a_addr);
    // One byte over the bound, and no body: the node must not wait for it.
    raw.write(&connection, &(64 * 1024 + 1u32).to_be_bytes());
    assert_eq!(
        raw.closed_with(&connection),
        VarInt::from_u32(CLOSE_OVERSIZED)
    );
    assert_eq!(a.net.stats().oversized_frames, 1);

    let connection = raw.connect(a.key.public(), a_addr);
    raw.write(&connection, &u32::MAX.to_be_bytes());
    assert_eq!(
        raw.closed_with(&connection),
        VarInt::from_u32(CLOSE_OVERSIZED)
    );
    assert_eq!(a.net.stats().oversized_frames, 2);

    b.net
        .send(Envelope::seal(&b.key, a.key.address(), 0, 1, &control(1)));
    wait_until("A still hears B", SOON, || a.delivered() == 1);
    assert_eq!(a.net.stats().received, 1);
    a.net.shutdown();
    b.net.shutdown();
}

/// An envelope whose `from` is not the connection's key is counted as forged and not
/// delivered, and the connection stays: the next honest envelope on it arrives.
#[test]
fn forged_sender_is_dropped_and_counted() {
    let a_addr = free_addr();
    let (raw_key, victim): (Keypair, Keypair) = (key(5), key(2));
    let a = Node::start(
        1,
        a_addr,
        peers(&[(&raw_key, free_addr()), (&victim, free_addr())]),
        |_| {},
    );
    let raw = Raw::new(5);
    let connection = raw.connect(a.key.public(), a_addr);

    // Signed by the victim (a replay of its envelope, say), carried by the raw client.
    let forged = Envelope::seal(&victim, a.key.address(), 0, 1, &control(1));
    let honest = Envelope::seal(&raw_key, a.key.address(), 0, 2, &control(2));
    let mut bytes = framed(&forged);
    bytes.extend(framed(&honest));
    raw.write(&connection, &bytes);

    wait_until("the honest envelope", SOON, || a.delivered() == 1);
    assert_eq!(a.received(), vec![honest]);
    let stats = a.net.stats();
    assert_eq!((stats.forged, stats.received, stats.bad_frames), (1, 1, 0));
    // The connection is still open: another stream on it is read too.
    let again = Envelope::seal(&raw_key, a.key.address(), 0, 3, &control(3));
    raw.write(&connection, &framed(&again));
    wait_until("a second honest envelope", SOON, || a.delivered() == 2);
    assert!(connection.close_reason().is_none());
    a.net.shutdown();
}

/// A peer has one incoming connection at a time: connecting again closes the older one
/// with `CLOSE_REPLACED`, and the newer one carries its envelopes.
#[test]
fn a_second_connection_replaces_the_first() {
    let a_addr = free_addr();
    let raw_key = key(5);
    let a = Node::start(1, a_addr, peers(&[(&raw_key, free_addr())]), |_| {});
    let raw = Raw::new(5);
    let first = raw.connect(a.key.public(), a_addr);
    let second = raw.connect(a.key.public(), a_addr);
    assert_eq!(
        raw.closed_with(&first),
        VarInt::from_u32(ieschain_net::CLOSE_REPLACED)
    );
    let envelope = Envelope::seal(&raw_key, a.key.address(), 0, 1, &control(1));
    raw.write(&second, &framed(&envelope));
    wait_until("A hears the newer connection", SOON, || a.delivered() == 1);
    assert_eq!(a.net.stats().accepted, 2);
    a.net.shutdown();
}
