//! The envelope checks of `ieschain_core::message::Inbox` (SPEC §8, §12 D9) against a
//! plain model: for any delivery schedule (reordered, duplicated, replayed, across
//! restarts), the inbox gives exactly the model's verdict, so it accepts each (incarnation,
//! seq) at most once, refuses old incarnations, and tells duplicates (not hostile) from
//! replays (hostile). Forged, misaddressed and unknown-sender envelopes are refused before
//! they touch the replay window.

// Tests may unwrap (STYLE.md, "Gates").
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};

use ieschain_core::message::{Envelope, EnvelopeError, Inbox, Message, REPLAY_WINDOW};
use ieschain_core::{Address, Domain, Keypair, PublicKey};
use proptest::collection::vec;
use proptest::prelude::*;
use support::config;

/// What the inbox should say, by SPEC §12 D9, kept with sets instead of bit windows.
#[derive(Default)]
struct Model {
    incarnation: u32,
    highest: u64,
    seen: BTreeSet<u64>,
}

/// The model's verdict, as the error name the inbox would give, or `None` to accept.
impl Model {
    fn deliver(&mut self, incarnation: u32, seq: u64) -> Option<&'static str> {
        if incarnation < self.incarnation {
            return Some("stale_incarnation");
        }
        if incarnation > self.incarnation {
            *self = Model {
                incarnation,
                ..Model::default()
            };
        }
        if seq > self.highest {
            self.highest = seq;
        } else if self.highest - seq >= REPLAY_WINDOW || seq == 0 {
            return Some("replay");
        } else if self.seen.contains(&seq) {
            return Some("duplicate");
        }
        self.seen.insert(seq);
        None
    }
}

fn keys() -> (Keypair, Keypair, Keypair) {
    (
        Keypair::derive(Domain::NodeKey, 5, "sender"),
        Keypair::derive(Domain::NodeKey, 5, "receiver"),
        Keypair::derive(Domain::NodeKey, 5, "stranger"),
    )
}

fn message(seq: u64) -> Message {
    Message::Replicated {
        epoch: seq,
        hash: ieschain_core::Hash::ZERO,
    }
}

/// A delivery schedule: mostly close to a moving front, with jumps past the window, back
/// to old seqs, repeats, and restarts.
fn schedule() -> impl Strategy<Value = Vec<(u32, u64)>> {
    vec(
        prop_oneof![
            6 => (0u32..3, 0u64..40),
            2 => (0u32..3, 200u64..700),
            1 => (0u32..3, Just(0u64)),
        ],
        1..60,
    )
    .prop_map(|mut deliveries| {
        // Repeat some earlier deliveries verbatim (network duplicates).
        let n = deliveries.len();
        for i in (0..n).step_by(5) {
            let again = deliveries[i / 2];
            deliveries.push(again);
        }
        deliveries
    })
}

proptest! {
    #![proptest_config(config(256))]

    /// The inbox agrees with the model on every delivery of any schedule, and hands back
    /// the sealed message whenever it accepts.
    #[test]
    fn inbox_matches_the_model(deliveries in schedule()) {
        let (sender, receiver, _) = keys();
        let mut inbox = Inbox::new(receiver.address());
        let key_of = |a: &Address| (*a == sender.address()).then(|| sender.public());
        let mut model = Model::default();
        let mut sealed: BTreeMap<(u32, u64), Envelope> = BTreeMap::new();
        let mut accepted = BTreeSet::new();
        for (incarnation, seq) in deliveries {
            let envelope = sealed
                .entry((incarnation, seq))
                .or_insert_with(|| {
                    Envelope::seal(&sender, receiver.address(), incarnation, seq, &message(seq))
                })
                .clone();
            let expected = model.deliver(incarnation, seq);
            let got = inbox.accept(&envelope, key_of);
            match (&got, expected) {
                (Ok(m), None) => {
                    prop_assert_eq!(m, &message(seq));
                    prop_assert!(accepted.insert((incarnation, seq)), "accepted twice");
                }
                (Err(e), Some(name)) => {
                    prop_assert_eq!(e.name(), name, "({}, {})", incarnation, seq);
                    prop_assert_eq!(e.is_hostile(), name != "duplicate");
                }
                (got, expected) => prop_assert!(
                    false,
                    "({}, {}): inbox {:?}, model {:?}",
                    incarnation,
                    seq,
                    got,
                    expected
                ),
            }
        }
    }

    /// A forged signature, a wrong recipient, an unknown sender or a tampered payload are
    /// refused, and none of them uses up the seq: the genuine envelope is accepted after.
    #[test]
    fn refused_envelopes_do_not_consume_the_seq(seq in 1u64..1000, flip in 0usize..64) {
        let (sender, receiver, stranger) = keys();
        let mut inbox = Inbox::new(receiver.address());
        let key_of = |a: &Address| -> Option<PublicKey> {
            (*a == sender.address()).then(|| sender.public())
        };
        let genuine = Envelope::seal(&sender, receiver.address(), 0, seq, &message(seq));

        let mut forged = genuine.clone();
        forged.signature.0[flip] ^= 1;
        prop_assert_eq!(
            inbox.accept(&forged, key_of),
            Err(EnvelopeError::BadSignature(sender.address()))
        );
        let mut tampered = genuine.clone();
        tampered.payload = ieschain_core::codec::encode(&message(seq + 1)).into();
        prop_assert_eq!(
            inbox.accept(&tampered, key_of),
            Err(EnvelopeError::BadSignature(sender.address()))
        );
        let elsewhere = Envelope::seal(&sender, stranger.address(), 0, seq, &message(seq));
        let misaddressed = matches!(
            inbox.accept(&elsewhere, key_of),
            Err(EnvelopeError::WrongRecipient { .. })
        );
        prop_assert!(misaddressed);
        let unknown = Envelope::seal(&stranger, receiver.address(), 0, seq, &message(seq));
        prop_assert_eq!(
            inbox.accept(&unknown, key_of),
            Err(EnvelopeError::UnknownSender(stranger.address()))
        );
        prop_assert_eq!(inbox.accept(&genuine, key_of), Ok(message(seq)));
    }

    /// The envelopes of one broadcast are signed once together (issue 12), yet each is its
    /// own recipient's alone, at its own seq: moved to another recipient, renumbered, with
    /// its payload, proof or signature changed, or stripped of its proof, it is refused,
    /// and none of that uses up its seq. Then it is accepted, once.
    #[test]
    fn a_broadcast_signed_once_is_still_one_envelope_per_recipient(
        count in 2usize..12,
        pick in any::<prop::sample::Index>(),
        other in any::<prop::sample::Index>(),
        first_seq in 1u64..1000,
        flip in 0usize..32,
    ) {
        let (sender, _, _) = keys();
        let recipients: Vec<Keypair> = (0..count)
            .map(|i| Keypair::derive(Domain::NodeKey, 5, &format!("member-{i}")))
            .collect();
        let mut inboxes: Vec<Inbox> = recipients.iter().map(|r| Inbox::new(r.address())).collect();
        let key_of = |a: &Address| -> Option<PublicKey> {
            (*a == sender.address()).then(|| sender.public())
        };
        let addressed: Vec<(Address, u64)> = recipients
            .iter()
            .enumerate()
            .map(|(i, r)| (r.address(), first_seq + i as u64))
            .collect();
        let payload: std::sync::Arc<[u8]> = ieschain_core::codec::encode(&message(first_seq)).into();
        let items: Vec<_> = addressed.iter().map(|(to, seq)| (*to, *seq, payload.clone())).collect();
        let envelopes = Envelope::seal_batch(&sender, 0, &items);
        prop_assert_eq!(envelopes.len(), count);
        prop_assert!(envelopes.iter().all(|e| e.signature == envelopes[0].signature && e.proof.is_some()));

        let i = pick.index(count);
        let j = (i + 1 + other.index(count - 1)) % count;
        let genuine = &envelopes[i];
        let bad = Err(EnvelopeError::BadSignature(sender.address()));

        let mut moved = genuine.clone();
        moved.header.to = recipients[j].address();
        prop_assert_eq!(inboxes[j].accept(&moved, key_of), bad.clone());
        let misdelivered = matches!(
            inboxes[j].accept(genuine, key_of),
            Err(EnvelopeError::WrongRecipient { .. })
        );
        prop_assert!(misdelivered);
        let mut renumbered = genuine.clone();
        renumbered.header.seq += 1;
        prop_assert_eq!(inboxes[i].accept(&renumbered, key_of), bad.clone());
        let mut tampered = genuine.clone();
        tampered.payload = ieschain_core::codec::encode(&message(first_seq + 1)).into();
        prop_assert_eq!(inboxes[i].accept(&tampered, key_of), bad.clone());
        let mut bent = genuine.clone();
        if let Some(proof) = bent.proof.as_mut() {
            proof.siblings[0].0[flip] ^= 1;
        }
        prop_assert_eq!(inboxes[i].accept(&bent, key_of), bad.clone());
        // A path that does not fit its index and leaf count leads to no root at all.
        let mut padded = genuine.clone();
        if let Some(proof) = padded.proof.as_mut() {
            proof.siblings.extend(proof.siblings.clone());
        }
        prop_assert_eq!(inboxes[i].accept(&padded, key_of), bad.clone());
        let mut stripped = genuine.clone();
        stripped.proof = None;
        prop_assert_eq!(inboxes[i].accept(&stripped, key_of), bad.clone());
        let mut forged = genuine.clone();
        forged.signature.0[flip] ^= 1;
        prop_assert_eq!(inboxes[i].accept(&forged, key_of), bad);

        for (k, envelope) in envelopes.iter().enumerate() {
            prop_assert_eq!(inboxes[k].accept(envelope, key_of), Ok(message(first_seq)));
        }
        let again = matches!(
            inboxes[i].accept(genuine, key_of),
            Err(EnvelopeError::Duplicate { .. })
        );
        prop_assert!(again);
    }
}

/// A batch of one is an envelope signed alone, as `seal` makes it.
#[test]
fn a_batch_of_one_is_an_envelope_signed_alone() {
    let (sender, receiver, _) = keys();
    let payload: std::sync::Arc<[u8]> = ieschain_core::codec::encode(&message(4)).into();
    let one = Envelope::seal_batch(&sender, 2, &[(receiver.address(), 9, payload)]);
    assert_eq!(
        one,
        vec![Envelope::seal(
            &sender,
            receiver.address(),
            2,
            9,
            &message(4)
        )]
    );
    assert!(one[0].proof.is_none());
}

/// A correctly signed envelope whose payload is not a message is refused as malformed
/// (hostile), without a panic.
#[test]
fn signed_garbage_payload_is_malformed() {
    let (sender, receiver, _) = keys();
    let mut inbox = Inbox::new(receiver.address());
    let key_of = |a: &Address| (*a == sender.address()).then(|| sender.public());
    for (seq, payload) in [
        vec![],
        vec![0xff],
        vec![0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    ]
    .into_iter()
    .enumerate()
    {
        let mut envelope =
            Envelope::seal(&sender, receiver.address(), 0, seq as u64 + 1, &message(0));
        envelope.payload = payload.into();
        envelope.signature = sender.sign(&envelope.digest().unwrap());
        let err = inbox.accept(&envelope, key_of).unwrap_err();
        assert!(matches!(err, EnvelopeError::Malformed { .. }), "{err}");
        assert!(err.is_hostile());
    }
}

/// One turn's envelopes, to several recipients with different messages, some to the same
/// recipient, are signed once: each is accepted by its recipient at its seq, and two of
/// them with their payloads swapped are refused as badly signed.
#[test]
fn a_turns_envelopes_signed_together_keep_their_own_payloads() {
    let (sender, a, b) = keys();
    let key_of = |x: &Address| (*x == sender.address()).then(|| sender.public());
    let encoded =
        |seq: u64| -> std::sync::Arc<[u8]> { ieschain_core::codec::encode(&message(seq)).into() };
    let items = vec![
        (a.address(), 1, encoded(10)),
        (b.address(), 1, encoded(11)),
        (a.address(), 2, encoded(12)),
    ];
    let envelopes = Envelope::seal_batch(&sender, 0, &items);
    assert!(envelopes
        .iter()
        .all(|e| e.signature == envelopes[0].signature));
    let mut swapped = envelopes[0].clone();
    swapped.payload = envelopes[2].payload.clone();
    let mut inbox_a = Inbox::new(a.address());
    let mut inbox_b = Inbox::new(b.address());
    assert_eq!(
        inbox_a.accept(&swapped, key_of),
        Err(EnvelopeError::BadSignature(sender.address()))
    );
    assert_eq!(inbox_a.accept(&envelopes[2], key_of), Ok(message(12)));
    assert_eq!(inbox_b.accept(&envelopes[1], key_of), Ok(message(11)));
    assert_eq!(inbox_a.accept(&envelopes[0], key_of), Ok(message(10)));
}
