//! What the network has carried and refused: lock-free counters, read as a [`NetStats`].

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a node's network counters, since [`crate::Network::start`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Envelopes written to a stream (handed to QUIC, which retransmits until acknowledged
    /// or the connection breaks).
    pub sent: u64,
    /// Envelopes delivered to the callback.
    pub received: u64,
    /// Frame bytes written, length prefixes included.
    pub bytes_out: u64,
    /// Frame bytes read, length prefixes included.
    pub bytes_in: u64,
    /// Envelopes dropped before they were written: unknown recipient, full queue, longer than
    /// the frame bound, or sent after shutdown.
    pub dropped: u64,
    /// Handshakes refused because the peer's certificate key is unknown, is not the key of
    /// the node dialed, is not ed25519, or does not sign the handshake.
    pub refused_handshakes: u64,
    /// Frames that did not decode as an envelope (the connection was closed).
    pub bad_frames: u64,
    /// Frames whose length prefix exceeded the bound (the connection was closed).
    pub oversized_frames: u64,
    /// Envelopes dropped because their `from` is not the authenticated sender.
    pub forged: u64,
    /// Outgoing connections established.
    pub connects: u64,
    /// Outgoing connections established to a peer this node had been connected to before.
    pub reconnects: u64,
    /// Incoming connections established (handshake complete, peer authenticated).
    pub accepted: u64,
}

/// The live counters behind [`NetStats`], shared by every task of a node.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) sent: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) refused_handshakes: AtomicU64,
    pub(crate) bad_frames: AtomicU64,
    pub(crate) oversized_frames: AtomicU64,
    pub(crate) forged: AtomicU64,
    pub(crate) connects: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) accepted: AtomicU64,
}

/// Adds `n` to `counter`.
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Adds one to `counter`.
pub(crate) fn bump(counter: &AtomicU64) {
    add(counter, 1);
}

impl Counters {
    /// The counters now.
    pub(crate) fn snapshot(&self) -> NetStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        NetStats {
            sent: get(&self.sent),
            received: get(&self.received),
            bytes_out: get(&self.bytes_out),
            bytes_in: get(&self.bytes_in),
            dropped: get(&self.dropped),
            refused_handshakes: get(&self.refused_handshakes),
            bad_frames: get(&self.bad_frames),
            oversized_frames: get(&self.oversized_frames),
            forged: get(&self.forged),
            connects: get(&self.connects),
            reconnects: get(&self.reconnects),
            accepted: get(&self.accepted),
        }
    }
}
