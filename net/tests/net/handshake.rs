//! Mutual authentication: a node talks only to the keys its peer set names.

use ieschain_core::message::Envelope;

use crate::util::{control, free_addr, key, peers, wait_until, Node, SOON};

/// A node whose key is not in the peer set is refused at the handshake: the refusing side
/// counts it, accepts no connection and delivers nothing, while a known peer still gets in.
#[test]
fn unknown_key_is_refused_at_the_handshake() {
    let (a_addr, b_addr, s_addr) = (free_addr(), free_addr(), free_addr());
    let a = Node::start(1, a_addr, peers(&[(&key(2), b_addr)]), |_| {});
    // The stranger knows A; A does not know it.
    let stranger = Node::start(7, s_addr, peers(&[(&key(1), a_addr)]), |_| {});
    let b = Node::start(2, b_addr, peers(&[(&key(1), a_addr)]), |_| {});

    for seq in 1..=3 {
        let envelope = Envelope::seal(&stranger.key, a.key.address(), 0, seq, &control(seq));
        stranger.net.send(envelope);
    }
    wait_until("A refuses the stranger", SOON, || {
        a.net.stats().refused_handshakes >= 1
    });

    b.net
        .send(Envelope::seal(&b.key, a.key.address(), 0, 1, &control(1)));
    wait_until("A hears B", SOON, || a.delivered() == 1);
    let received = a.received();
    assert_eq!(
        received[0].header.from,
        b.key.address(),
        "nothing from the stranger"
    );
    assert_eq!(a.net.stats().accepted, 1, "only B's connection");
    for node in [&a, &b, &stranger] {
        node.net.shutdown();
    }
}

/// A dialer checks that the node answering is the one it dialed: when another known node
/// listens at a peer's address, the dialer refuses it and counts it, and nothing is sent.
#[test]
fn dialer_refuses_another_key_at_the_peer_address() {
    let (b_addr, c_addr) = (free_addr(), free_addr());
    // B believes A listens at C's address.
    let set_b = peers(&[(&key(1), c_addr), (&key(3), c_addr)]);
    let b = Node::start(2, b_addr, set_b, |_| {});
    let c = Node::start(3, c_addr, peers(&[(&key(2), b_addr)]), |_| {});

    b.net
        .send(Envelope::seal(&b.key, key(1).address(), 0, 1, &control(1)));
    wait_until("B refuses C posing as A", SOON, || {
        b.net.stats().refused_handshakes >= 1
    });
    assert_eq!(b.net.stats().connects, 0);

    // B still reaches C under C's own name, through the same address.
    b.net
        .send(Envelope::seal(&b.key, c.key.address(), 0, 2, &control(2)));
    wait_until("C hears B", SOON, || c.delivered() == 1);
    assert!(
        c.received().iter().all(|e| e.header.to == c.key.address()),
        "never the envelope for A"
    );
    b.net.shutdown();
    c.net.shutdown();
}
