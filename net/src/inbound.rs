//! The incoming side: accept connections from authenticated peers, read frames off their
//! streams, and deliver the envelopes whose sender is the peer itself.
//!
//! Each stream is read by its own task, so a Control stream is never read behind a Bulk
//! one. A frame too long, or one that does not decode, closes the whole connection: the peer
//! is broken or hostile, and its own link will dial again. An envelope whose `from` is not
//! the peer's address is dropped alone. A peer has one incoming connection at a time: a new
//! one (a reconnection) closes the older.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use ieschain_core::codec;
use ieschain_core::message::Envelope;
use ieschain_core::Address;
use quinn::{Connection, Endpoint, Incoming, RecvStream, VarInt};

use crate::frame::{self, FrameError};
use crate::identity::certificate_key;
use crate::stats::{add, bump, Counters};
use crate::Deliver;

/// Close code: the peer's certificate gave no key (cannot happen past the verifier).
pub const CLOSE_IDENTITY: u32 = 1;
/// Close code: a frame's length prefix exceeded the bound.
pub const CLOSE_OVERSIZED: u32 = 2;
/// Close code: a frame did not decode as an envelope, or a stream ended inside a frame.
pub const CLOSE_BAD_FRAME: u32 = 3;
/// Close code: the same peer connected again; its older connection is closed.
pub const CLOSE_REPLACED: u32 = 4;

/// What every incoming connection shares.
pub(crate) struct Inbound {
    pub(crate) max_frame: usize,
    pub(crate) deliver: Deliver,
    pub(crate) counters: Arc<Counters>,
    /// Each peer's one incoming connection: a newer one replaces it, so that a peer holds
    /// at most one connection's streams and buffers here.
    pub(crate) connections: Mutex<BTreeMap<Address, Connection>>,
}

/// Accepts connections until the endpoint closes.
pub(crate) async fn accept(endpoint: Endpoint, inbound: Arc<Inbound>) {
    while let Some(incoming) = endpoint.accept().await {
        tokio::spawn(serve(incoming, inbound.clone()));
    }
}

/// Completes the handshake (the verifier refuses unknown keys), then reads every stream
/// the peer opens.
async fn serve(incoming: Incoming, inbound: Arc<Inbound>) {
    let remote = incoming.remote_address();
    let connection = match incoming.await {
        Ok(connection) => connection,
        Err(e) => {
            log::debug!("net: incoming connection from {remote} failed: {e}");
            return;
        }
    };
    let Some(peer) = peer_address(&connection) else {
        connection.close(VarInt::from_u32(CLOSE_IDENTITY), b"no identity");
        return;
    };
    bump(&inbound.counters.accepted);
    log::debug!("net: accepted {peer} from {remote}");
    let older = inbound
        .connections
        .lock()
        .ok()
        .and_then(|mut c| c.insert(peer, connection.clone()));
    if let Some(older) = older {
        older.close(VarInt::from_u32(CLOSE_REPLACED), b"replaced");
    }
    loop {
        match connection.accept_uni().await {
            Ok(stream) => {
                tokio::spawn(read(stream, connection.clone(), peer, inbound.clone()));
            }
            Err(e) => {
                log::debug!("net: connection from {peer} ended: {e}");
                if let Ok(mut connections) = inbound.connections.lock() {
                    if connections
                        .get(&peer)
                        .is_some_and(|c| c.stable_id() == connection.stable_id())
                    {
                        connections.remove(&peer);
                    }
                }
                return;
            }
        }
    }
}

/// The address of the key the peer authenticated with.
fn peer_address(connection: &Connection) -> Option<Address> {
    let identity = connection.peer_identity()?;
    let chain = identity
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .ok()?;
    let key = certificate_key(chain.first()?)?;
    Some(key.address())
}

/// Reads frames off one stream until it ends, delivering envelopes from `peer`.
async fn read(
    mut stream: RecvStream,
    connection: Connection,
    peer: Address,
    inbound: Arc<Inbound>,
) {
    let counters = &inbound.counters;
    loop {
        let body = match frame::read(&mut stream, inbound.max_frame).await {
            Ok(Some(body)) => body,
            Ok(None) => return,
            Err(FrameError::Read(e)) => {
                log::debug!("net: stream from {peer} ended: {e}");
                return;
            }
            Err(e @ FrameError::Oversized { .. }) => {
                log::warn!("net: {peer}: {e}; closing its connection");
                bump(&counters.oversized_frames);
                connection.close(VarInt::from_u32(CLOSE_OVERSIZED), b"frame too long");
                return;
            }
            Err(e @ FrameError::Truncated) => {
                log::warn!("net: {peer}: {e}; closing its connection");
                bump(&counters.bad_frames);
                connection.close(VarInt::from_u32(CLOSE_BAD_FRAME), b"truncated frame");
                return;
            }
        };
        add(&counters.bytes_in, (frame::PREFIX + body.len()) as u64);
        let envelope: Envelope = match codec::decode(&body) {
            Ok(envelope) => envelope,
            Err(e) => {
                log::warn!("net: {peer}: undecodable frame ({e}); closing its connection");
                bump(&counters.bad_frames);
                connection.close(VarInt::from_u32(CLOSE_BAD_FRAME), b"bad frame");
                return;
            }
        };
        if envelope.header.from != peer {
            log::warn!(
                "net: {peer} sent an envelope from {}; dropped",
                envelope.header.from
            );
            bump(&counters.forged);
            continue;
        }
        (inbound.deliver)(envelope);
        bump(&counters.received);
    }
}
