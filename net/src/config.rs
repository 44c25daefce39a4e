//! What a node needs to join the network: its secret, where it listens, the nodes it may
//! talk to, and the bounds on frames and queues.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use ieschain_core::codec::MAX_DECODE;
use ieschain_core::{Address, PublicKey};

/// The default bound on one frame's length: the codec's decode limit. An envelope is decoded
/// whole with [`ieschain_core::codec::decode`], which refuses anything longer than
/// [`MAX_DECODE`] (4 MiB, four times the largest relay block), so a longer frame could never
/// be delivered and is refused before its bytes are read.
pub const MAX_FRAME: usize = MAX_DECODE;

/// The default bound on each outgoing queue (per peer and per traffic class), in envelopes.
///
/// Envelopes to one peer carry one sequence across both classes, and the receiver accepts
/// one that arrives at most `REPLAY_WINDOW` (256) behind the highest it has seen. A class
/// overtakes the other by at most what the other has queued, so both queues together stay
/// well under the window: a backlog of blocks that control traffic overtakes still
/// arrives as fresh, not as a replay. A queue that is full drops and counts (the protocols
/// resend).
pub const QUEUE: usize = 96;

const _: () = assert!(
    2 * QUEUE < ieschain_core::message::REPLAY_WINDOW as usize,
    "the class queues must stay within the receiver's replay window"
);

/// The default keep-alive interval: a ping on a quiet connection, so that the peer's idle
/// timer does not close it.
pub const KEEP_ALIVE: Duration = Duration::from_secs(1);

/// The default idle timeout: a connection that hears nothing for this long is closed, which
/// is how a dead peer is noticed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// A node this one may talk to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Its ed25519 key: the only certificate key accepted for it at the handshake.
    pub public_key: PublicKey,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// A node's network configuration.
#[derive(Clone)]
pub struct NetConfig {
    /// This node's ed25519 secret (its ieschain key): it signs the TLS handshake, and the
    /// certificate carries its public half. Never printed.
    pub secret: [u8; 32],
    /// Where to listen for other nodes' connections; port 0 picks a free port
    /// ([`crate::Network::local_addr`] tells which).
    pub listen: SocketAddr,
    /// Every node this one may send to or accept from, by address. An entry for this node
    /// itself is ignored; an entry whose key does not have the address it is filed under is
    /// refused by [`crate::Network::start`].
    pub peers: BTreeMap<Address, Peer>,
    /// The longest frame accepted, in bytes; longer ones are refused before allocation and
    /// close the connection. Must be at least the largest envelope sent: [`MAX_FRAME`].
    pub max_frame: usize,
    /// The bound on each outgoing queue (per peer and per class), in envelopes; a send to a
    /// full queue is dropped and counted.
    pub queue: usize,
    /// How often a quiet connection is pinged.
    pub keep_alive: Duration,
    /// How long a connection may hear nothing before it is closed. Must exceed `keep_alive`.
    pub idle_timeout: Duration,
}

impl NetConfig {
    /// A configuration with the default bounds and timers.
    pub fn new(secret: [u8; 32], listen: SocketAddr, peers: BTreeMap<Address, Peer>) -> Self {
        NetConfig {
            secret,
            listen,
            peers,
            max_frame: MAX_FRAME,
            queue: QUEUE,
            keep_alive: KEEP_ALIVE,
            idle_timeout: IDLE_TIMEOUT,
        }
    }
}

impl fmt::Debug for NetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        f.debug_struct("NetConfig")
            .field("secret", &"<secret>")
            .field("listen", &self.listen)
            .field("peers", &self.peers)
            .field("max_frame", &self.max_frame)
            .field("queue", &self.queue)
            .field("keep_alive", &self.keep_alive)
            .field("idle_timeout", &self.idle_timeout)
            .finish()
    }
}
