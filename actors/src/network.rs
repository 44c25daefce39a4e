//! The networked transport: the [`Transport`] seam over QUIC ([`ieschain_net`]), for a
//! node that runs in its own process (`ieschain node`). The actors do not change: they
//! send and receive the same signed envelopes as in process, with the same replay windows
//! and per-recipient sequences.
//!
//! Envelopes to a node of this process (registered here) are delivered to its mailbox
//! directly; every other goes to the network, which sends control traffic (heartbeats,
//! elections, activations, acknowledgements, replication) on its own stream, ahead of
//! bulk ([`ieschain_core::message::Traffic`]).

use std::sync::Arc;

use actix::Recipient;
use ieschain_core::message::Envelope;
use ieschain_core::Address;
use ieschain_net::{NetConfig, NetError, NetStats, Network};

use crate::messages::Deliver;
use crate::transport::{Mailboxes, Transport, TransportStats};

/// The transport of a node process: its own nodes in process, the others over QUIC.
#[derive(Debug)]
pub struct Networked {
    network: Network,
    mailboxes: Arc<Mailboxes>,
}

impl Networked {
    /// Starts the QUIC endpoint of `config`; envelopes that arrive are delivered to the
    /// node registered for their recipient.
    pub fn start(config: NetConfig) -> Result<Networked, NetError> {
        let mailboxes = Arc::new(Mailboxes::default());
        let deliver = {
            let mailboxes = mailboxes.clone();
            Arc::new(move |envelope: Envelope| mailboxes.deliver(envelope))
        };
        let network = Network::start(config, deliver)?;
        Ok(Networked { network, mailboxes })
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
        self.mailboxes.register(address, recipient);
    }

    fn unregister(&self, address: &Address) {
        self.mailboxes.unregister(address);
    }

    fn send(&self, envelope: Envelope) {
        if self.mailboxes.hosts(&envelope.header.to) {
            self.mailboxes.deliver(envelope);
        } else {
            self.network.send(envelope);
        }
    }

    /// Mailbox deliveries (of this process's nodes and of what the network received),
    /// with the bytes and drops the network counted added.
    fn stats(&self) -> TransportStats {
        let (local, net) = (self.mailboxes.stats(), self.network.stats());
        TransportStats {
            bytes: local.bytes + net.bytes_out,
            dropped: local.dropped + net.dropped,
            ..local
        }
    }
}
