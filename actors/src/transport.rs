//! The transport seam (SPEC §8): the only way a node reaches another.
//!
//! A transport carries signed [`Envelope`]s of encoded bytes, and nothing else: no node
//! holds another's address or memory. [`InProcess`] delivers through actix mailboxes; a
//! fault-injecting transport (the simulation issue) or a networked one implements the same
//! trait, with no change to the actors.
//!
//! Delivery uses `try_send`, which respects mailbox capacity (SPEC §12 D8: never
//! `do_send` on a producer path); a full mailbox drops the envelope and counts it, and the
//! protocols' resends recover.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use actix::Recipient;
use ieschain_core::message::Envelope;
use ieschain_core::Address;

use crate::messages::Deliver;

/// Carries envelopes between nodes.
pub trait Transport: Send + Sync + Debug {
    /// Makes `address` reachable at `recipient` (a node starting or restarting).
    fn register(&self, address: Address, recipient: Recipient<Deliver>);
    /// Makes `address` unreachable (a node stopping or crashing).
    fn unregister(&self, address: &Address);
    /// Sends `envelope` to its recipient. Delivery is not guaranteed.
    fn send(&self, envelope: Envelope);
    /// Counters so far.
    fn stats(&self) -> TransportStats;
}

/// What a transport has carried.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Envelopes handed to a mailbox.
    pub delivered: u64,
    /// Bytes of those envelopes.
    pub bytes: u64,
    /// Envelopes dropped: no such node, a full mailbox, or a partition.
    pub dropped: u64,
}

/// The nodes of this process, by address, and what reaching their mailboxes did: the part
/// every transport shares ([`InProcess`] for all nodes, [`crate::network::Networked`] for
/// the nodes a process hosts).
#[derive(Debug, Default)]
pub struct Mailboxes {
    routes: RwLock<BTreeMap<Address, Recipient<Deliver>>>,
    delivered: AtomicU64,
    bytes: AtomicU64,
    dropped: AtomicU64,
}

impl Mailboxes {
    /// Makes `address` reachable at `recipient`.
    pub fn register(&self, address: Address, recipient: Recipient<Deliver>) {
        if let Ok(mut routes) = self.routes.write() {
            routes.insert(address, recipient);
        }
    }

    /// Makes `address` unreachable.
    pub fn unregister(&self, address: &Address) {
        if let Ok(mut routes) = self.routes.write() {
            routes.remove(address);
        }
    }

    /// Whether `address` is a node of this process.
    pub fn hosts(&self, address: &Address) -> bool {
        self.routes
            .read()
            .is_ok_and(|routes| routes.contains_key(address))
    }

    /// Hands `envelope` to its recipient's mailbox with `try_send` (SPEC §12 D8); no such
    /// node or a full mailbox drops it, counted.
    pub fn deliver(&self, envelope: Envelope) {
        let (from, to) = (envelope.header.from, envelope.header.to);
        let size = envelope.payload.len() as u64 + 128;
        let Some(recipient) = self.routes.read().ok().and_then(|r| r.get(&to).cloned()) else {
            self.drop_one();
            return;
        };
        match recipient.try_send(Deliver(envelope)) {
            Ok(()) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
                self.bytes.fetch_add(size, Ordering::Relaxed);
            }
            Err(err) => {
                log::debug!("transport: envelope {from} -> {to} dropped: {err}");
                self.drop_one();
            }
        }
    }

    /// Counts an envelope dropped before a mailbox (a partition).
    pub fn drop_one(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Counters so far.
    pub fn stats(&self) -> TransportStats {
        TransportStats {
            delivered: self.delivered.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// The in-process transport, with a partition switch for tests.
#[derive(Debug, Default)]
pub struct InProcess {
    mailboxes: Mailboxes,
    isolated: Mutex<BTreeSet<Address>>,
}

impl InProcess {
    /// An empty transport.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cuts `address` off from every other node, both ways, until [`InProcess::heal`].
    pub fn isolate(&self, address: Address) {
        if let Ok(mut isolated) = self.isolated.lock() {
            isolated.insert(address);
        }
    }

    /// Ends every partition.
    pub fn heal(&self) {
        if let Ok(mut isolated) = self.isolated.lock() {
            isolated.clear();
        }
    }
}

impl Transport for InProcess {
    fn register(&self, address: Address, recipient: Recipient<Deliver>) {
        self.mailboxes.register(address, recipient);
    }

    fn unregister(&self, address: &Address) {
        self.mailboxes.unregister(address);
    }

    fn send(&self, envelope: Envelope) {
        let (from, to) = (envelope.header.from, envelope.header.to);
        let cut = self
            .isolated
            .lock()
            .map(|i| from != to && (i.contains(&from) || i.contains(&to)))
            .unwrap_or(false);
        if cut {
            self.mailboxes.drop_one();
        } else {
            self.mailboxes.deliver(envelope);
        }
    }

    fn stats(&self) -> TransportStats {
        self.mailboxes.stats()
    }
}
