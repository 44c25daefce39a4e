//! The window (SPEC §4.4): n non-urgent blocks make one relay block, an urgent block
//! flushes at once with the pending ones, and `max_wait` sends a lone block.

use ieschain_core::window::FlushReason;
use ieschain_core::Address;

use crate::fixture::*;

/// With a window of n = 4 and no `max_wait`, four non-urgent external blocks, each
/// acknowledged before the next is written, go out as ONE relay block of four (reason
/// `Full`, urgency bits 0,0,0,0), in their arrival order. Its contents prove that none went
/// out earlier.
#[tokio::test]
async fn n_normal_blocks_make_one_relay_block() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut fed = Fed::start(&config(4, None, NO_ROTATION_MS, HEARTBEAT_MS), &data, true);
    let serving = fed.ready().await;
    let relay = serving[&SOURCE].relay;

    let mark = fed.mark();
    let mut expected = Vec::new();
    for (n, name) in fed.members_of(SOURCE).iter().enumerate() {
        let height = fed
            .submit_acked(name, external(SOURCE), data_offer(n as u64))
            .await;
        expected.push((fed.address(name), height));
    }
    assert_eq!(expected.len(), 4, "four-party's source has four members");
    let (height, blocks, urgent, reason, _) = fed.produced(mark, relay, SOURCE).await;
    assert_eq!((blocks, urgent, reason), (4, 0, Some(FlushReason::Full)));

    let block = relay_block(&*fed.store(), relay, SOURCE, height);
    let order: Vec<(Address, u64)> = block
        .blocks
        .iter()
        .map(|b| (b.header.author, b.header.height))
        .collect();
    assert_eq!(
        order, expected,
        "the relay block holds the four, in arrival order"
    );
    assert_eq!(urgency(&block), vec![false; 4]);

    fed.shutdown();
    assert!(verify_dir(&data) > 0);
}

/// An urgent block (energy supply) is sent at once, together with the non-urgent blocks
/// waiting in the open relay block: with a window of 4 and no `max_wait`, two waiting
/// data offers and the urgent block go out as one relay block with the bit-vector 0,0,1
/// (reason `Urgent`), and it reaches every other relay without waiting on their windows
/// (L2).
#[tokio::test]
async fn urgent_block_flushes_at_once_with_the_pending_ones() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut fed = Fed::start(&config(4, None, NO_ROTATION_MS, HEARTBEAT_MS), &data, true);
    let serving = fed.ready().await;
    let relay = serving[&GRID].relay;
    let names = fed.members_of(GRID);

    let mark = fed.mark();
    let first = fed
        .submit_acked(&names[0], external(GRID), data_offer(1))
        .await;
    let second = fed
        .submit_acked(&names[1], external(GRID), data_offer(2))
        .await;
    let third = fed
        .submit_acked(&names[2], external(GRID), energy_supply(3))
        .await;
    let (height, blocks, urgent, reason, at) = fed.produced(mark, relay, GRID).await;
    assert_eq!((blocks, urgent, reason), (3, 1, Some(FlushReason::Urgent)));

    let block = relay_block(&*fed.store(), relay, GRID, height);
    let order: Vec<(Address, u64)> = block
        .blocks
        .iter()
        .map(|b| (b.header.author, b.header.height))
        .collect();
    assert_eq!(
        order,
        vec![
            (fed.address(&names[0]), first),
            (fed.address(&names[1]), second),
            (fed.address(&names[2]), third),
        ]
    );
    assert_eq!(urgency(&block), vec![false, false, true]);
    // "At once": the urgent block was sealed by its member at `closed`; the relay sent it
    // within a few network steps, where the window alone would have waited forever.
    let closed = block.blocks[2].header.time;
    assert!(
        at.saturating_sub(closed) < 500,
        "the urgent block waited {} ms at the relay",
        at - closed
    );
    for (lane, s) in &serving {
        if *lane != GRID {
            fed.committed_at(mark, s.relay, GRID, height).await;
        }
    }

    fed.shutdown();
    assert!(verify_dir(&data) > 0);
}

/// `max_wait` sends a lone non-urgent block: with a window of 4 and `max_wait` 150 ms, one
/// data offer goes out alone (reason `MaxWait`) no sooner than 150 ms after it was sealed,
/// and not much later; it then reaches every other relay (L3).
#[tokio::test]
async fn max_wait_sends_a_lone_normal_block() {
    const MAX_WAIT_MS: u64 = 150;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut fed = Fed::start(
        &config(4, Some(MAX_WAIT_MS), NO_ROTATION_MS, HEARTBEAT_MS),
        &data,
        true,
    );
    let serving = fed.ready().await;
    let relay = serving[&LOAD].relay;
    let name = fed.members_of(LOAD)[2].clone();

    let mark = fed.mark();
    let lone = fed.submit_acked(&name, external(LOAD), data_offer(1)).await;
    let (height, blocks, urgent, reason, at) = fed.produced(mark, relay, LOAD).await;
    assert_eq!((blocks, urgent, reason), (1, 0, Some(FlushReason::MaxWait)));
    let block = relay_block(&*fed.store(), relay, LOAD, height);
    assert_eq!(block.blocks[0].header.author, fed.address(&name));
    assert_eq!(block.blocks[0].header.height, lone);
    let waited = at - block.blocks[0].header.time;
    assert!(
        (MAX_WAIT_MS..MAX_WAIT_MS + 500).contains(&waited),
        "the lone block went out {waited} ms after it was sealed"
    );
    for (lane, s) in &serving {
        if *lane != LOAD {
            fed.committed_at(mark, s.relay, LOAD, height).await;
        }
    }

    fed.shutdown();
    assert!(verify_dir(&data) > 0);
}
