//! The simulated transport (SPEC §8, §9): the in-process delivery of [`InProcess`], with
//! faults drawn from a seeded plan. It drops, delays, duplicates and reorders envelopes,
//! and partitions groups of nodes, and nothing else can: faults reach nodes only through
//! the transport and through the node lifecycle, never by reaching into an actor.
//!
//! Delayed envelopes wait in one queue ordered by (delivery time, send order) and are
//! delivered by timers on the simulation's paused tokio clock, so a run is reproducible:
//! the same seed and the same sends give the same deliveries in the same order.
//!
//! [`InProcess`]: crate::transport::InProcess

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use actix::Recipient;
use ieschain_core::message::Envelope;
use ieschain_core::Address;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::messages::Deliver;
use crate::transport::{Transport, TransportStats};

/// The network's fault settings; they may change during a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NetworkFaults {
    /// Probability of dropping an envelope.
    pub drop: f64,
    /// Probability of delivering an envelope twice.
    pub duplicate: f64,
    /// Delay range in ms, uniformly drawn; distinct delays reorder envelopes.
    pub delay_ms: (u64, u64),
}

#[derive(Debug)]
struct State {
    routes: BTreeMap<Address, Recipient<Deliver>>,
    faults: NetworkFaults,
    rng: ChaCha8Rng,
    /// Groups cut off from everyone outside them (each a partition's one side).
    partitions: Vec<BTreeSet<Address>>,
    /// Links cut both ways.
    links: BTreeSet<(Address, Address)>,
    queue: BTreeMap<(u64, u64), Envelope>,
    sent: u64,
    lost: Option<Observer>,
}

/// Told of every envelope the network loses by its drop probability (not by a cut link
/// or a partition, which are faults of their own).
pub type LossObserver = Arc<dyn Fn(&Envelope) + Send + Sync>;

struct Observer(LossObserver);

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LossObserver")
    }
}

/// A fault-injecting transport for simulations. Must be used inside the simulation's
/// tokio runtime (it schedules delayed deliveries on it).
#[derive(Debug, Clone)]
pub struct SimNetwork {
    state: Arc<Mutex<State>>,
    start: tokio::time::Instant,
    delivered: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
}

impl SimNetwork {
    /// A network whose faults draw from `seed`.
    pub fn new(seed: u64) -> Self {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        key[8..16].copy_from_slice(b"network!");
        SimNetwork {
            state: Arc::new(Mutex::new(State {
                routes: BTreeMap::new(),
                faults: NetworkFaults::default(),
                rng: ChaCha8Rng::from_seed(key),
                partitions: Vec::new(),
                links: BTreeSet::new(),
                queue: BTreeMap::new(),
                sent: 0,
                lost: None,
            })),
            start: tokio::time::Instant::now(),
            delivered: Arc::new(AtomicU64::new(0)),
            bytes: Arc::new(AtomicU64::new(0)),
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Has `observer` told of every envelope the network drops by chance: the simulation
    /// reports the loss of a take-over's message as a fault on the consortium (L1 presumes
    /// the failover meets no other fault).
    pub fn observe_losses(&self, observer: LossObserver) {
        if let Ok(mut state) = self.state.lock() {
            state.lost = Some(Observer(observer));
        }
    }

    /// Sets the fault settings from now on.
    pub fn set_faults(&self, faults: NetworkFaults) {
        if let Ok(mut state) = self.state.lock() {
            state.faults = faults;
        }
    }

    /// Cuts `group` off from every node outside it, until [`SimNetwork::heal`].
    pub fn partition(&self, group: BTreeSet<Address>) {
        if let Ok(mut state) = self.state.lock() {
            state.partitions.push(group);
        }
    }

    /// Cuts the link between `a` and `b`, both ways, until [`SimNetwork::heal`].
    pub fn cut_link(&self, a: Address, b: Address) {
        if let Ok(mut state) = self.state.lock() {
            state.links.insert((a.min(b), a.max(b)));
        }
    }

    /// Ends every partition and cut link.
    pub fn heal(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.partitions.clear();
            state.links.clear();
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn deliver(&self, envelope: Envelope, state: &State) {
        let size = envelope.payload.len() as u64 + 128;
        match state.routes.get(&envelope.header.to) {
            Some(recipient) => match recipient.try_send(Deliver(envelope)) {
                Ok(()) => {
                    self.delivered.fetch_add(1, Ordering::Relaxed);
                    self.bytes.fetch_add(size, Ordering::Relaxed);
                }
                Err(_) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            },
            None => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Delivers every queued envelope that is due, in (time, send order).
    fn pump(&self) {
        let now = self.now_ms();
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        while let Some(entry) = state.queue.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let envelope = entry.remove();
            if cut(&state.partitions, &state.links, &envelope) {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            self.deliver(envelope, &state);
        }
    }
}

fn cut(
    partitions: &[BTreeSet<Address>],
    links: &BTreeSet<(Address, Address)>,
    envelope: &Envelope,
) -> bool {
    let (from, to) = (envelope.header.from, envelope.header.to);
    from != to
        && (links.contains(&(from.min(to), from.max(to)))
            || partitions
                .iter()
                .any(|group| group.contains(&from) != group.contains(&to)))
}

fn uniform(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

impl Transport for SimNetwork {
    fn register(&self, address: Address, recipient: Recipient<Deliver>) {
        if let Ok(mut state) = self.state.lock() {
            state.routes.insert(address, recipient);
        }
    }

    fn unregister(&self, address: &Address) {
        if let Ok(mut state) = self.state.lock() {
            state.routes.remove(address);
        }
    }

    fn send(&self, envelope: Envelope) {
        let now = self.now_ms();
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if cut(&state.partitions, &state.links, &envelope) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let faults = state.faults.clone();
        // Every draw happens in send order, whatever is configured, so that changing one
        // probability does not shift the others' streams.
        let drop = uniform(&mut state.rng) < faults.drop;
        let duplicate = uniform(&mut state.rng) < faults.duplicate;
        let (low, high) = faults.delay_ms;
        let spread = high.saturating_sub(low) + 1;
        let delays = [
            low + state.rng.next_u64() % spread,
            low + state.rng.next_u64() % spread,
        ];
        if drop {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            if let Some(Observer(observer)) = &state.lost {
                observer(&envelope);
            }
            return;
        }
        let copies = if duplicate { 2 } else { 1 };
        for delay in delays.iter().take(copies) {
            if *delay == 0 && state.queue.is_empty() {
                self.deliver(envelope.clone(), &state);
                continue;
            }
            state.sent += 1;
            let key = (now + delay, state.sent);
            state.queue.insert(key, envelope.clone());
            let network = self.clone();
            let at = self.start + std::time::Duration::from_millis(now + delay);
            actix::spawn(async move {
                tokio::time::sleep_until(at).await;
                network.pump();
            });
        }
    }

    fn stats(&self) -> TransportStats {
        TransportStats {
            delivered: self.delivered.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}
