//! Two nodes exchanging envelopes.

use ieschain_core::codec;
use ieschain_core::message::{Envelope, Message};

use crate::util::{bulk, control, free_addr, key, peers, wait_until, Node, SOON};

/// Two nodes send each other envelopes of both classes; every one arrives intact, from the
/// right sender, and each class in the order it was sent.
#[test]
fn two_nodes_exchange_both_ways_both_classes() {
    let (a_addr, b_addr) = (free_addr(), free_addr());
    let set = peers(&[(&key(1), a_addr), (&key(2), b_addr)]);
    let a = Node::start(1, a_addr, set.clone(), |_| {});
    let b = Node::start(2, b_addr, set, |_| {});
    assert_eq!(a.net.local_addr(), a_addr);

    let sent_by = |from: &Node, to: &Node| -> Vec<Envelope> {
        let mut sent = Vec::new();
        for seq in 0..20u64 {
            let message = if seq % 2 == 0 {
                control(seq)
            } else {
                bulk(seq, 10_000)
            };
            let envelope = Envelope::seal(&from.key, to.key.address(), 0, seq, &message);
            from.net.send(envelope.clone());
            sent.push(envelope);
        }
        sent
    };
    let a_to_b = sent_by(&a, &b);
    let b_to_a = sent_by(&b, &a);

    wait_until("both inboxes full", SOON, || {
        a.delivered() == 20 && b.delivered() == 20
    });
    for (node, sent) in [(&a, &b_to_a), (&b, &a_to_b)] {
        let received = node.received();
        let mut sorted = received.clone();
        sorted.sort_by_key(|e| e.header.seq);
        assert_eq!(&sorted, sent, "contents intact");
        for want_control in [true, false] {
            let seqs: Vec<u64> = received
                .iter()
                .filter(|e| {
                    let message: Message = codec::decode(&e.payload).unwrap();
                    matches!(message, Message::Resync { .. }) == want_control
                })
                .map(|e| e.header.seq)
                .collect();
            assert!(
                seqs.windows(2).all(|w| w[0] < w[1]),
                "order within a class: {seqs:?}"
            );
            assert_eq!(seqs.len(), 10);
        }
    }
    for node in [&a, &b] {
        let stats = node.net.stats();
        assert_eq!(stats.sent, 20);
        assert_eq!(stats.received, 20);
        assert_eq!(stats.connects, 1);
        assert_eq!(stats.accepted, 1);
        assert_eq!(stats.dropped, 0);
        assert_eq!(
            stats.bad_frames + stats.forged + stats.refused_handshakes,
            0
        );
        assert!(
            stats.bytes_out > 100_000 && stats.bytes_in > 100_000,
            "{stats:?}"
        );
    }
    a.net.shutdown();
    b.net.shutdown();
}

/// A send to an address outside the peer set, or to the node itself, is dropped and
/// counted, and so is any send after shutdown; none of them blocks or panics.
#[test]
fn unknown_recipients_and_late_sends_are_dropped() {
    let a_addr = free_addr();
    let a = Node::start(
        1,
        a_addr,
        peers(&[(&key(1), a_addr), (&key(2), free_addr())]),
        |_| {},
    );
    a.net
        .send(Envelope::seal(&a.key, key(9).address(), 0, 1, &control(1)));
    a.net
        .send(Envelope::seal(&a.key, a.key.address(), 0, 2, &control(2)));
    assert_eq!(a.net.stats().dropped, 2);
    a.net.shutdown();
    a.net
        .send(Envelope::seal(&a.key, key(2).address(), 0, 3, &control(3)));
    assert_eq!(a.net.stats().dropped, 3);
    a.net.shutdown();
}

/// The handle can be shared across threads (an actix transport holds it in an `Arc`).
#[test]
fn network_is_send_and_sync() {
    fn shared<T: Send + Sync + std::fmt::Debug>() {}
    shared::<ieschain_net::Network>();
}

/// The configuration's Debug form does not print the secret.
#[test]
fn debug_hides_the_secret() {
    let config = ieschain_net::NetConfig::new([0xab; 32], free_addr(), Default::default());
    let text = format!("{config:?}");
    assert!(
        !text.contains("171") && !text.contains("ab, ab") && !text.contains("abab"),
        "{text}"
    );
}

/// Frames still queued when the sender shuts down are written and read before
/// `shutdown` returns.
#[test]
fn shutdown_sends_what_was_queued() {
    let (a_addr, b_addr) = (free_addr(), free_addr());
    let set = peers(&[(&key(1), a_addr), (&key(2), b_addr)]);
    let a = Node::start(1, a_addr, set.clone(), |_| {});
    let b = Node::start(2, b_addr, set, |_| {});
    // As many as a queue holds: none is dropped for room.
    let n = ieschain_net::QUEUE as u64;
    for seq in 0..n {
        let envelope = Envelope::seal(&a.key, b.key.address(), 0, seq, &bulk(seq, 20_000));
        a.net.send(envelope);
    }
    a.net.shutdown();
    assert_eq!(a.net.stats().sent, n);
    wait_until("B reads the last frames", SOON, || {
        b.delivered() == n as usize
    });
    b.net.shutdown();
}

/// The network runs on its own threads, so it starts, carries envelopes, shuts down and
/// drops on a thread that is inside another runtime (as an actix System thread is).
#[test]
fn works_inside_another_runtime() {
    let outer = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    outer.block_on(async {
        let (a_addr, b_addr) = (free_addr(), free_addr());
        let set = peers(&[(&key(1), a_addr), (&key(2), b_addr)]);
        let a = Node::start(1, a_addr, set.clone(), |_| {});
        let b = Node::start(2, b_addr, set, |_| {});
        a.net
            .send(Envelope::seal(&a.key, b.key.address(), 0, 1, &control(1)));
        wait_until("B hears A", SOON, || b.delivered() == 1);
        a.net.shutdown();
        // B is dropped without a shutdown.
        drop(b);
    });
}
