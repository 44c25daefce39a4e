//! The networked transport: the [`Transport`] seam over QUIC ([`ieschain_net`]), for a
//! node that runs in its own process (`ieschain node`). The actors do not change: they
//! send and receive the same signed envelopes as in process, with the same replay windows
//! and per-recipient sequences.
//!
//! Envelopes to a node of this process (registered here) are delivered to its mailbox
//! directly; every other goes to the network, in the traffic class its message's tag
//! names ([`Traffic::of_encoded`]): control traffic (heartbeats, elections, activations,
//! acknowledgements, replication) on its own stream, ahead of bulk.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use actix::Recipient;
use ieschain_core::message::{Envelope, Traffic};
use ieschain_core::Address;
use ieschain_net::{Class, NetConfig, NetError, NetStats, Network};

use crate::messages::Deliver;
use crate::transport::{Transport, TransportStats};

type Routes = Arc<RwLock<BTreeMap<Address, Recipient<Deliver>>>>;

/// Mailbox deliveries (bytes beside them), and envelopes dropped at a full or closed one.
#[derive(Debug, Default)]
struct Local {
    delivered: AtomicU64,
    bytes: AtomicU64,
    dropped: AtomicU64,
}

impl Local {
    fn deliver(&self, routes: &Routes, envelope: Envelope) {
        let to = envelope.header.to;
        let size = envelope.payload.len() as u64 + 128;
        let Some(recipient) = routes.read().ok().and_then(|r| r.get(&to).cloned()) else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        match recipient.try_send(Deliver(envelope)) {
            Ok(()) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
                self.bytes.fetch_add(size, Ordering::Relaxed);
            }
            Err(err) => {
                log::debug!("network: envelope to {to} dropped at its mailbox: {err}");
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The transport of a node process: its own nodes in process, the others over QUIC.
#[derive(Debug)]
pub struct Networked {
    network: Network,
    routes: Routes,
    local: Arc<Local>,
}

impl Networked {
    /// Starts the QUIC endpoint of `config`; envelopes that arrive are delivered to the
    /// node registered for their recipient.
    pub fn start(config: NetConfig) -> Result<Networked, NetError> {
        let routes: Routes = Arc::default();
        let local = Arc::new(Local::default());
        let deliver = {
            let (routes, local) = (routes.clone(), local.clone());
            Arc::new(move |envelope: Envelope| local.deliver(&routes, envelope))
        };
        let network = Network::start(config, deliver)?;
        Ok(Networked {
            network,
            routes,
            local,
        })
    }

    /// The address the endpoint listens on.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.network.local_addr()
    }

    /// The network's own counters: handshakes refused, bad and oversized frames, forged
    /// senders, reconnects.
    pub fn net_stats(&self) -> NetStats {
        self.network.stats()
    }

    /// Closes the endpoint, after a bounded wait for what is queued.
    pub fn shutdown(&self) {
        self.network.shutdown();
    }
}

impl Transport for Networked {
    fn register(&self, address: Address, recipient: Recipient<Deliver>) {
        if let Ok(mut routes) = self.routes.write() {
            routes.insert(address, recipient);
        }
    }

    fn unregister(&self, address: &Address) {
        if let Ok(mut routes) = self.routes.write() {
            routes.remove(address);
        }
    }

    fn send(&self, envelope: Envelope) {
        let local = self
            .routes
            .read()
            .map(|r| r.contains_key(&envelope.header.to))
            .unwrap_or(false);
        if local {
            self.local.deliver(&self.routes, envelope);
            return;
        }
        let class = match Traffic::of_encoded(&envelope.payload) {
            Traffic::Control => Class::Control,
            Traffic::Bulk => Class::Bulk,
        };
        self.network.send(envelope, class);
    }

    fn stats(&self) -> TransportStats {
        let net = self.network.stats();
        TransportStats {
            delivered: self.local.delivered.load(Ordering::Relaxed),
            bytes: self.local.bytes.load(Ordering::Relaxed) + net.bytes_out,
            dropped: self.local.dropped.load(Ordering::Relaxed) + net.dropped,
        }
    }
}
