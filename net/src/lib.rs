//! ieschain's network transport: signed [`Envelope`]s between processes over QUIC (quinn,
//! rustls with the ring provider, TLS 1.3 only, ALPN `ieschain/1`).
//!
//! The actors reach other nodes only through the transport seam (`actors/src/transport.rs`);
//! this crate is the networked carrier behind that seam (`actors/src/network.rs`). It depends on
//! `ieschain-core` alone.
//!
//! # Identity
//! A node's TLS certificate is self-signed with its own ieschain ed25519 key (rcgen, from the
//! key's PKCS#8 form). Both ends present theirs (mutual TLS), and both check the other's
//! with a custom verifier (`tls.rs`): the certificate's ed25519 key must be one of the
//! configured peers' keys — for the dialer, the key of the very peer it dialed — and the
//! TLS 1.3 handshake signature must verify under that same key, passed to rustls as a raw
//! key (`rustls::crypto::verify_tls13_signature_with_raw_key`): the certificate is parsed
//! once, and what it holds besides the key decides nothing. There is no certificate authority, and the
//! certificate's dates and self-signature are not checked: the handshake signature is the
//! proof of the key. An unknown or wrong key is refused at the handshake and counted in
//! [`NetStats::refused_handshakes`]. Session resumption is off, so every connection is
//! checked.
//!
//! # Connections
//! One connection per direction: each node dials the peers it sends to and accepts the
//! connections of the peers that send to it; a dialer's connection carries only its own
//! frames (the acceptor may open no stream on it). A peer is dialed on the first send to
//! it, the connection is kept, and when it breaks the next frame dials again, with a backoff
//! from 50 ms doubling to 2 s between failed dials (and after connections that break within
//! 2 s, so that a peer refusing this node cannot cause a tight loop). QUIC keep-alives (1 s)
//! and an idle timeout (5 s) notice a dead peer.
//!
//! # Framing
//! Each envelope travels as `| length u32 BE | codec::encode(envelope) |` on a QUIC
//! unidirectional stream (`frame.rs`). The reader refuses a length above
//! [`NetConfig::max_frame`] before it allocates ([`NetStats::oversized_frames`]), and a body
//! that does not decode canonically as an envelope ([`NetStats::bad_frames`]); both close
//! the connection with an error code ([`CLOSE_OVERSIZED`],
//! [`CLOSE_BAD_FRAME`]). An envelope whose `header.from` is not the address of the
//! connection's authenticated key is dropped and counted ([`NetStats::forged`]); the
//! connection stays. The transport checks nothing else of an envelope: signature,
//! recipient, incarnation and replay are the receiver's `Inbox`'s.
//!
//! # Priority
//! Two classes, read from each envelope's message tag (`ieschain_core::message::Traffic`):
//! Control (heartbeats, elections, activations, acknowledgements, replication) and Bulk
//! (blocks, syncs, forwarded records). Each has its own bounded queue per peer and its own stream on a connection,
//! Control's at the higher quinn stream priority, and the receiver reads each stream in its
//! own task, so a control frame never waits behind a block. Order is kept within a class;
//! between classes it is not: the receiver's replay window (256) absorbs it, since the two
//! queues together hold fewer envelopes than that ([`QUEUE`]).
//!
//! # Counters
//! [`Network::stats`] reads [`NetStats`]: envelopes sent, received and dropped, bytes each
//! way, refused handshakes, bad, oversized and forged frames, connections made, remade and
//! accepted.
//!
//! # What is not done
//! - Delivery is at most once per connection: a frame QUIC had buffered when its connection
//!   broke is lost without a count. A frame not yet written when a write fails is written
//!   again on the next connection.
//! - An envelope to this node itself is dropped (its own entry in the peer set is ignored).
//! - The peer set is fixed at start: no node joins or leaves a running network, and a
//!   peer's address does not change.
//! - A peer has one incoming connection at a time (a newer one closes the older,
//!   [`CLOSE_REPLACED`]) with a bounded number of streams; a frame's body is allocated as
//!   its bytes arrive. There is no rate limit, and no 0-RTT.
//! - Frames lost at shutdown past [`DRAIN_GRACE`] are not counted.
//!
//! # Layout
//! - `config.rs`: [`NetConfig`], [`Peer`] and the default bounds.
//! - `identity.rs`: the node certificate, and the key in a peer's certificate.
//! - `tls.rs`: the verifiers and the TLS and QUIC configurations.
//! - `frame.rs`: the length-prefixed frame.
//! - `link.rs`: the outgoing side, one task per peer.
//! - `inbound.rs`: the incoming side.
//! - `network.rs`: the [`Network`] handle.
//! - `stats.rs`: the counters.
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

use std::sync::Arc;

use ieschain_core::message::Envelope;
use thiserror::Error;

mod config;
mod frame;
mod identity;
mod inbound;
mod link;
mod network;
mod stats;
mod tls;

pub use config::{NetConfig, Peer, IDLE_TIMEOUT, KEEP_ALIVE, MAX_FRAME, QUEUE};
pub use inbound::{CLOSE_BAD_FRAME, CLOSE_IDENTITY, CLOSE_OVERSIZED, CLOSE_REPLACED};
pub use network::{Network, CLOSE_GRACE, DRAIN_GRACE};
pub use stats::NetStats;
pub use tls::ALPN;

/// The callback that receives every envelope accepted from a peer, on the network's threads.
pub type Deliver = Arc<dyn Fn(Envelope) + Send + Sync>;

/// Why the network did not start.
#[derive(Debug, Error)]
pub enum NetError {
    /// The configuration is inconsistent.
    #[error("network configuration: {0}")]
    Config(String),
    /// The node's certificate could not be made.
    #[error("certificate of node {address}: {reason}")]
    Certificate {
        /// The node.
        address: ieschain_core::Address,
        /// Why.
        reason: String,
    },
    /// rustls refused the TLS configuration.
    #[error("TLS configuration: {0}")]
    Tls(rustls::Error),
    /// quinn refused the TLS configuration for QUIC.
    #[error("QUIC configuration: {0}")]
    Quic(String),
    /// The network's runtime could not start.
    #[error("network runtime: {0}")]
    Runtime(std::io::Error),
    /// The UDP socket could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A client configuration that presents the node of `secret` and accepts only `peer`'s
/// key, with the default timers: for tests that speak raw QUIC to a [`Network`] (garbage
/// frames, oversized prefixes, forged senders).
#[doc(hidden)]
pub fn raw_client_config(
    secret: [u8; 32],
    peer: ieschain_core::PublicKey,
) -> Result<quinn::ClientConfig, NetError> {
    let identity = identity::Identity::new(secret)?;
    let config = NetConfig::new(
        secret,
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        Default::default(),
    );
    tls::client_config(&identity, peer, &config, Arc::default())
}
