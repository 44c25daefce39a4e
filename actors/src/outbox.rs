//! Carrying out a machine's effects: the one place where an actor touches the transport,
//! its store and the host's event sink. Shared by every kind of node.

use std::collections::BTreeMap;
use std::sync::Arc;

use ieschain_core::codec;
use ieschain_core::message::{Envelope, Message};
use ieschain_core::node::{Effect, Event};
use ieschain_core::{Address, Keypair};
use ieschain_storage::HolderStore;

use crate::clock::Clock;
use crate::transport::Transport;

/// Where a node's events go: the host's observer.
pub type EventSink = Arc<dyn Fn(&Event) + Send + Sync>;

/// How many blocks one sync reply carries.
pub const SYNC_PAGE: usize = 64;

/// What a node needs to act on the world: its key, its restart count and envelope
/// counter, its store, the transport, the clock and the event sink.
pub struct Outbox {
    /// The node's key.
    pub key: Keypair,
    /// Its restart count (SPEC §12 D9).
    pub incarnation: u32,
    /// The last envelope seq sent to each peer. Seqs count per recipient: the recipient's
    /// replay window (`REPLAY_WINDOW` in `ieschain_core::message`) then spans its own
    /// traffic only, so a delayed envelope is not taken for a replay because its sender
    /// sent hundreds of envelopes to others meanwhile (a relay's broadcasts).
    next_seq: BTreeMap<Address, u64>,
    /// Its own store handle.
    pub store: HolderStore,
    /// The transport.
    pub transport: Arc<dyn Transport>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The host's event sink.
    pub events: EventSink,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("node", &self.key.address())
            .field("incarnation", &self.incarnation)
            .finish()
    }
}

impl Outbox {
    /// An outbox for a node in its `incarnation`.
    pub fn new(
        key: Keypair,
        incarnation: u32,
        store: HolderStore,
        transport: Arc<dyn Transport>,
        clock: Arc<dyn Clock>,
        events: EventSink,
    ) -> Self {
        Outbox {
            key,
            incarnation,
            next_seq: BTreeMap::new(),
            store,
            transport,
            clock,
            events,
        }
    }

    /// The node's address.
    pub fn address(&self) -> Address {
        self.key.address()
    }

    /// The time now.
    pub fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Seals and sends one message.
    pub fn send(&mut self, to: Address, message: &Message) {
        let mut batch = Vec::with_capacity(1);
        self.queue(&mut batch, to, codec::encode(message).into());
        self.seal(batch);
    }

    /// Seals and sends one message to each of `to`, encoding it once and signing it once
    /// ([`Envelope::seal_batch`], issue 12).
    pub fn broadcast(&mut self, to: &[Address], message: &Message) {
        let mut batch = Vec::with_capacity(to.len());
        self.queue_broadcast(&mut batch, to, message);
        self.seal(batch);
    }

    /// Adds an envelope to `to` with its next seq to `batch`.
    fn queue(&mut self, batch: &mut Batch, to: Address, payload: Arc<[u8]>) {
        let seq = self.next_seq.entry(to).or_insert(0);
        // A peer's `Resync` can set the count anywhere (see `resync`); at the top it stays
        // there, and that peer refuses the repeats: a link lost, never a node.
        *seq = seq.saturating_add(1);
        batch.push((to, *seq, payload));
    }

    /// Adds one envelope of `message`, encoded once, for each of `to` to `batch`.
    fn queue_broadcast(&mut self, batch: &mut Batch, to: &[Address], message: &Message) {
        let payload: Arc<[u8]> = codec::encode(message).into();
        for to in to {
            self.queue(batch, *to, payload.clone());
        }
    }

    /// Signs `batch` once ([`Envelope::seal_batch`]) and sends its envelopes, in order.
    fn seal(&mut self, batch: Batch) {
        if batch.is_empty() {
            return;
        }
        for envelope in Envelope::seal_batch(&self.key, self.incarnation, &batch) {
            self.transport.send(envelope);
        }
    }

    /// A peer refused this node's envelopes as replays or as from an old incarnation; it
    /// has seen `incarnation` up to `seq` (SPEC §12 D9). An incarnation of this node's
    /// that the peer saw and this one is not above (a restart that lost its count) is
    /// left behind: the node moves to the next. Otherwise its seqs to the peer move past
    /// `seq`. Either way its next envelopes are fresh to the peer.
    pub fn resync(&mut self, peer: Address, incarnation: u32, seq: u64) {
        // A signed `Resync` from a registered peer may still claim anything: one that
        // leaves no incarnation above it is ignored rather than overflowing.
        if incarnation == u32::MAX {
            log::warn!(
                "node {}: peer {} claims to have seen incarnation {incarnation}; ignored",
                self.address().short(),
                peer.short()
            );
            return;
        }
        if incarnation > self.incarnation {
            log::warn!(
                "node {}: peer {} has seen its incarnation {incarnation}; moving to {}",
                self.address().short(),
                peer.short(),
                incarnation + 1
            );
            self.incarnation = incarnation + 1;
            self.next_seq.clear();
        } else if incarnation == self.incarnation {
            let next = self.next_seq.entry(peer).or_insert(0);
            *next = (*next).max(seq);
        }
    }

    /// Emits an event to the host.
    pub fn emit(&self, event: &Event) {
        if let Event::Elected {
            consortium,
            epoch,
            source,
            reason,
            relay,
            backup,
            at,
            ..
        } = event
        {
            log::info!(
                "election: consortium {consortium} epoch {epoch} (source {source}) {reason:?} relay {} backup {:?} at {at}",
                relay.short(),
                backup.map(|b| b.short())
            );
        }
        if let Event::Stalled {
            lane,
            epoch,
            waiting_for,
            ..
        } = event
        {
            log::warn!(
                "lane {lane} stalled: the relay of epoch {epoch} waits for {} of the source configuration",
                waiting_for
                    .iter()
                    .map(|a| a.short())
                    .collect::<Vec<_>>()
                    .join(" or ")
            );
        }
        if let Event::Rejected {
            kind,
            hostile,
            detail,
            ..
        } = event
        {
            if kind.starts_with("own_") {
                log::error!("node {}: {kind}: {detail}", self.address().short());
            } else if *hostile {
                log::warn!(
                    "node {}: rejected ({kind}): {detail}",
                    self.address().short()
                );
            }
        }
        (self.events)(event);
    }

    /// Carries out `effects` in order. A failed persist stops the rest: nothing that
    /// follows a write (an acknowledgement, a broadcast) may go out without it.
    pub fn run(&mut self, effects: Vec<Effect>) {
        // The envelopes of one turn are signed together, once (issue 12): sends are
        // queued, and sealed and sent before each persist and at the end, so nothing
        // leaves before a persist that precedes it in `effects` (D4), and the order of
        // the envelopes is the order of the effects.
        let mut batch: Batch = Vec::new();
        for effect in effects {
            match effect {
                Effect::Send { to, message } => {
                    self.queue(&mut batch, to, codec::encode(&message).into())
                }
                Effect::Broadcast { to, message } => {
                    self.queue_broadcast(&mut batch, &to, &message)
                }
                Effect::Persist(writes) => {
                    self.seal(std::mem::take(&mut batch));
                    if let Err(err) = self.store.write(&writes) {
                        log::error!(
                            "node {}: persist failed, dropping what follows: {err}",
                            self.address().short()
                        );
                        self.emit(&Event::Rejected {
                            node: self.address(),
                            kind: "persist_failed",
                            hostile: false,
                            detail: err.to_string(),
                        });
                        return;
                    }
                }
                Effect::ServeSync {
                    to,
                    chain,
                    from,
                    upto,
                } => {
                    let from = from.max(1);
                    let limit = match upto {
                        Some(upto) => {
                            (upto.saturating_add(1).saturating_sub(from) as usize).min(SYNC_PAGE)
                        }
                        None => SYNC_PAGE,
                    };
                    let blocks = self.store.range(chain, from, limit);
                    let head = self.store.head(chain);
                    match (blocks, head) {
                        (Ok(blocks), Ok(head)) => {
                            let head = head.map_or(0, |h| h.height);
                            let head = upto.map_or(head, |upto| head.min(upto));
                            let reply = Message::SyncBlocks {
                                chain,
                                blocks,
                                head,
                            };
                            self.queue(&mut batch, to, codec::encode(&reply).into());
                        }
                        (Err(err), _) | (_, Err(err)) => {
                            log::warn!(
                                "node {}: cannot serve {chain}: {err}",
                                self.address().short()
                            );
                        }
                    }
                }
                Effect::Emit(event) => self.emit(&event),
            }
        }
        self.seal(batch);
    }
}

/// Envelopes to seal together: recipient, seq, encoded message.
type Batch = Vec<(Address, u64, Arc<[u8]>)>;

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use ieschain_core::message::{EnvelopeError, Inbox, REPLAY_WINDOW, RESYNC_AFTER};
    use ieschain_core::sample::SampleFederation;
    use ieschain_core::ConsortiumId;
    use ieschain_storage::memory::MemoryStore;

    use super::*;
    use crate::clock::SystemClock;
    use crate::transport::TransportStats;

    /// A transport that keeps what is sent.
    #[derive(Debug, Default)]
    struct Kept(Mutex<Vec<Envelope>>);

    impl Transport for Kept {
        fn register(&self, _: Address, _: actix::Recipient<crate::messages::Deliver>) {}
        fn unregister(&self, _: &Address) {}
        fn send(&self, envelope: Envelope) {
            if let Ok(mut kept) = self.0.lock() {
                kept.push(envelope);
            }
        }
        fn stats(&self) -> TransportStats {
            TransportStats::default()
        }
    }

    /// `sender`'s outbox at `incarnation`, on a store of its own, sending into `kept`.
    fn kept_outbox(
        federation: &SampleFederation,
        sender: &Keypair,
        incarnation: u32,
        kept: &Arc<Kept>,
    ) -> Outbox {
        let store = Arc::new(MemoryStore::new(federation.genesis.clone()));
        Outbox::new(
            sender.clone(),
            incarnation,
            HolderStore::new(store, sender.address()),
            kept.clone(),
            Arc::new(SystemClock),
            Arc::new(|_: &Event| {}),
        )
    }

    /// An envelope overtaken on its way by a later one to the same recipient is still
    /// accepted when its sender sent many envelopes to others in between: seqs count per
    /// recipient, so the recipient's replay window spans its own traffic only.
    #[test]
    fn seqs_count_per_recipient() {
        let federation = SampleFederation::four_party(1, 2);
        let sender = federation.members[0].key.clone();
        let (a, b) = (
            federation.members[1].key.clone(),
            federation.members[2].key.clone(),
        );
        let kept = Arc::new(Kept::default());
        let mut outbox = kept_outbox(&federation, &sender, 0, &kept);
        let message = Message::Discover {
            consortium: ConsortiumId(0),
        };
        outbox.send(a.address(), &message);
        for _ in 0..2 * REPLAY_WINDOW {
            outbox.send(b.address(), &message);
        }
        outbox.send(a.address(), &message);
        let sent = kept.0.lock().unwrap().clone();
        let to_a: Vec<&Envelope> = sent.iter().filter(|e| e.header.to == a.address()).collect();
        assert_eq!(
            to_a.iter().map(|e| e.header.seq).collect::<Vec<_>>(),
            [1, 2]
        );
        // The second overtakes the first on the way.
        let mut inbox = Inbox::new(a.address());
        let key_of = |x: &Address| (*x == sender.address()).then(|| sender.public());
        assert_eq!(inbox.accept(to_a[1], key_of), Ok(message.clone()));
        assert_eq!(inbox.accept(to_a[0], key_of), Ok(message));
    }

    /// Sends one envelope from `outbox` and has `inbox` check it.
    fn deliver(
        outbox: &mut Outbox,
        kept: &Kept,
        inbox: &mut Inbox,
        to: Address,
    ) -> Result<Message, EnvelopeError> {
        let message = Message::Discover {
            consortium: ConsortiumId(0),
        };
        outbox.send(to, &message);
        let envelope = kept.0.lock().unwrap().pop().unwrap();
        let key = outbox.key.public();
        let from = outbox.address();
        inbox.accept(&envelope, |a| (*a == from).then_some(key))
    }

    /// Two live nodes never refuse each other for good (SPEC §12 D9): a sender whose
    /// incarnation went backwards (a restart that lost its count), or whose seqs fell
    /// below the receiver's window, is refused; after a few refusals in a row the receiver
    /// tells it where it stands, the sender moves past, and its next envelope is accepted.
    #[test]
    fn refused_sender_resynchronises() {
        let federation = SampleFederation::four_party(1, 2);
        let (sender, receiver) = (
            federation.members[0].key.clone(),
            federation.members[1].key.clone(),
        );
        let kept = Arc::new(Kept::default());
        let store = Arc::new(MemoryStore::new(federation.genesis.clone()));
        let outbox_at = |incarnation| {
            Outbox::new(
                sender.clone(),
                incarnation,
                HolderStore::new(store.clone(), sender.address()),
                kept.clone(),
                Arc::new(SystemClock),
                Arc::new(|_: &Event| {}),
            )
        };
        let mut inbox = Inbox::new(receiver.address());
        let to = receiver.address();
        // The receiver has seen the sender's incarnation 3.
        let mut before = outbox_at(3);
        for _ in 0..5 {
            assert!(deliver(&mut before, &kept, &mut inbox, to).is_ok());
        }
        // The sender comes back as incarnation 0.
        let mut after = outbox_at(0);
        let mut resync = None;
        for _ in 0..RESYNC_AFTER {
            let err = deliver(&mut after, &kept, &mut inbox, to).unwrap_err();
            assert!(
                matches!(err, EnvelopeError::StaleIncarnation { .. }),
                "{err}"
            );
            resync = resync.or(inbox.resync_due(after.address(), &err));
        }
        let Some(Message::Resync { incarnation, seq }) = resync else {
            panic!("no resync after {RESYNC_AFTER} refusals");
        };
        assert_eq!((incarnation, seq), (3, 5));
        after.resync(to, incarnation, seq);
        assert_eq!(after.incarnation, 4);
        assert!(deliver(&mut after, &kept, &mut inbox, to).is_ok());

        // Same incarnation, seqs far below the window: refused as replays, then moved past.
        let mut far = outbox_at(4);
        far.next_seq.insert(to, 1_000);
        assert!(deliver(&mut far, &kept, &mut inbox, to).is_ok());
        let mut behind = outbox_at(4);
        let mut resync = None;
        for _ in 0..RESYNC_AFTER {
            let err = deliver(&mut behind, &kept, &mut inbox, to).unwrap_err();
            assert!(matches!(err, EnvelopeError::Replay { .. }), "{err}");
            resync = resync.or(inbox.resync_due(behind.address(), &err));
        }
        let Some(Message::Resync { incarnation, seq }) = resync else {
            panic!("no resync for replays");
        };
        behind.resync(to, incarnation, seq);
        assert!(deliver(&mut behind, &kept, &mut inbox, to).is_ok());
    }

    /// A hostile peer's `Resync` at the top of every counter overflows nothing: an
    /// incarnation with none above it is ignored, and a seq at the top stays there.
    #[test]
    fn a_resync_at_the_limits_overflows_nothing() {
        let federation = SampleFederation::four_party(1, 2);
        let (sender, peer) = (
            federation.members[0].key.clone(),
            federation.members[1].key.address(),
        );
        let kept = Arc::new(Kept::default());
        let mut outbox = kept_outbox(&federation, &sender, 2, &kept);
        outbox.resync(peer, u32::MAX, 7);
        assert_eq!(
            outbox.incarnation, 2,
            "an incarnation with none above is ignored"
        );
        outbox.resync(peer, 2, u64::MAX);
        let hello = Message::Discover {
            consortium: ConsortiumId(0),
        };
        outbox.send(peer, &hello);
        outbox.broadcast(&[peer], &hello);
        let seqs: Vec<u64> = kept
            .0
            .lock()
            .map(|k| k.iter().map(|e| e.header.seq).collect())
            .unwrap_or_default();
        assert_eq!(seqs, vec![u64::MAX, u64::MAX]);
    }
}
