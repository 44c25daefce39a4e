//! Many envelopes, and control traffic beside a bulk backlog.

use std::collections::BTreeSet;
use std::time::Duration;

use ieschain_core::codec;
use ieschain_core::message::{Envelope, Message};

use crate::util::{bulk, control, free_addr, key, peers, wait_until, Node, SOON};

/// 5,000 envelopes queued at once, with queues big enough, all arrive: none dropped, none
/// lost, none twice.
#[test]
fn five_thousand_envelopes_arrive() {
    const N: u64 = 5_000;
    let (a_addr, b_addr) = (free_addr(), free_addr());
    let set = peers(&[(&key(1), a_addr), (&key(2), b_addr)]);
    let a = Node::start(1, a_addr, set.clone(), |c| c.queue = N as usize);
    let b = Node::start(2, b_addr, set, |_| {});
    for seq in 0..N {
        let message = if seq % 5 == 0 {
            control(seq)
        } else {
            bulk(seq, 1_000)
        };
        a.net
            .send(Envelope::seal(&a.key, b.key.address(), 0, seq, &message));
    }
    wait_until("every envelope", Duration::from_secs(60), || {
        b.delivered() == N as usize
    });
    let seqs: BTreeSet<u64> = b.received().iter().map(|e| e.header.seq).collect();
    assert_eq!(seqs, (0..N).collect());
    let stats = a.net.stats();
    assert_eq!((stats.sent, stats.dropped), (N, 0));
    a.net.shutdown();
    b.net.shutdown();
}

/// With a backlog of large bulk envelopes queued first, a control envelope queued after
/// them is delivered before the backlog has drained, and the backlog then arrives whole
/// and in order.
#[test]
fn control_overtakes_a_bulk_backlog() {
    const BLOCKS: u64 = 200;
    const BLOCK: usize = 256 * 1024;
    let (a_addr, b_addr) = (free_addr(), free_addr());
    let set = peers(&[(&key(1), a_addr), (&key(2), b_addr)]);
    let a = Node::start(1, a_addr, set.clone(), |c| c.queue = BLOCKS as usize);
    let b = Node::start(2, b_addr, set, |_| {});
    let to = b.key.address();
    // Connect first, so the backlog is the only thing in the way.
    a.net.send(Envelope::seal(&a.key, to, 0, 0, &control(0)));
    wait_until("the connection", SOON, || b.delivered() == 1);

    let envelopes: Vec<Envelope> = (1..=BLOCKS)
        .map(|seq| Envelope::seal(&a.key, to, 0, seq, &bulk(seq, BLOCK)))
        .collect();
    for envelope in envelopes {
        a.net.send(envelope);
    }
    let urgent = BLOCKS + 1;
    a.net
        .send(Envelope::seal(&a.key, to, 0, urgent, &control(urgent)));

    wait_until("the backlog", Duration::from_secs(60), || {
        b.delivered() == BLOCKS as usize + 2
    });
    let received = b.received();
    let at = received
        .iter()
        .position(|e| e.header.seq == urgent)
        .unwrap();
    let bulk_before = received[..at]
        .iter()
        .filter(|e| matches!(codec::decode(&e.payload), Ok(Message::DataDelivery { .. })))
        .count();
    assert!(
        bulk_before < BLOCKS as usize / 2,
        "the control envelope waited behind {bulk_before} of {BLOCKS} blocks"
    );
    let bulk_seqs: Vec<u64> = received
        .iter()
        .map(|e| e.header.seq)
        .filter(|&s| (1..=BLOCKS).contains(&s))
        .collect();
    assert_eq!(bulk_seqs, (1..=BLOCKS).collect::<Vec<_>>());
    assert_eq!(a.net.stats().dropped, 0);
    a.net.shutdown();
    b.net.shutdown();
}
