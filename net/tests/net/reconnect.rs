//! A peer that goes away and comes back.

use std::time::{Duration, Instant};

use ieschain_core::message::Envelope;

use crate::util::{control, free_addr, key, peers, wait_until, Node, SOON};

/// The receiver stops and a new one (same key) starts on the same port: the sender notices
/// the broken connection, dials again, and its sends arrive at the new receiver.
#[test]
fn sends_arrive_after_the_receiver_restarts() {
    let (a_addr, b_addr) = (free_addr(), free_addr());
    let set = peers(&[(&key(1), a_addr), (&key(2), b_addr)]);
    let a = Node::start(1, a_addr, set.clone(), |_| {});
    let b = Node::start(2, b_addr, set.clone(), |_| {});
    let to = b.key.address();
    a.net.send(Envelope::seal(&a.key, to, 0, 0, &control(0)));
    wait_until("the first envelope", SOON, || b.delivered() == 1);
    b.net.shutdown();
    drop(b);

    let b = Node::start(2, b_addr, set, |_| {});
    // Keep sending until one arrives: those sent while the old connection was dying are
    // lost, which is what a datagram-like transport promises.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seq = 1;
    while b.delivered() == 0 {
        assert!(
            Instant::now() < deadline,
            "nothing arrived after the restart: {:?}",
            a.net.stats()
        );
        a.net
            .send(Envelope::seal(&a.key, to, 0, seq, &control(seq)));
        seq += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let stats = a.net.stats();
    assert!(stats.reconnects >= 1 && stats.connects >= 2, "{stats:?}");
    // Whatever arrives after the first does so in order.
    let last = seq - 1;
    wait_until("the last envelope", SOON, || {
        b.received().last().map(|e| e.header.seq) == Some(last)
    });
    let seqs: Vec<u64> = b.received().iter().map(|e| e.header.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    a.net.shutdown();
    b.net.shutdown();
}
