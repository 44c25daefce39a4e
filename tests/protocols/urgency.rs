//! Urgency (SPEC §4.4, §6.2 step 2, §6.3 step 2): the power offer skips the window, the
//! data offer waits for it, as the relay blocks' urgency bit-vectors and flush reasons say.

use ieschain_core::node::Event;
use ieschain_core::window::FlushReason;
use ieschain_core::{Address, ConsortiumId, Hash};
use ieschain_storage::ChainStore;

use crate::support::*;

/// `max_wait` of this test: long, so that a record that waited for it stands apart.
const MAX_WAIT: u64 = 1_000;

/// The relay block of `holder`'s copy of `lane` that includes the record `digest`: its
/// height, the index of the consortium block carrying it, the block's urgency bit, and
/// the record's creation time.
fn carrying(
    store: &dyn ChainStore,
    holder: Address,
    lane: ConsortiumId,
    digest: Hash,
) -> Option<(u64, usize, bool, u64)> {
    relay_lane(store, holder, lane)
        .into_iter()
        .find_map(|block| {
            let bits = urgency(&block);
            block.blocks.iter().enumerate().find_map(|(i, b)| {
                let record = b.records.iter().find(|r| r.digest() == digest)?;
                Some((block.header.height, i, bits[i], record.content.created_at))
            })
        })
}

/// When each node committed block `height` of `lane`, and with what reason the producer
/// sent it, from the log.
fn commits(
    fed: &Fed,
    lane: ConsortiumId,
    height: u64,
) -> Vec<(Address, bool, Option<FlushReason>, u64)> {
    fed.log
        .iter()
        .filter_map(|e| match e {
            Event::Committed {
                node,
                lane: l,
                height: h,
                produced,
                reason,
                at,
                ..
            } if *l == lane && *h == height => Some((*node, *produced, *reason, *at)),
            _ => None,
        })
        .collect()
}

/// A power offer and a data offer made together, with `max_wait` 1 s and a window of 6
/// that two offers do not fill. The relay block carrying the power offer has the urgency
/// bit of the offer's consortium block set, was sent by the source relay for the reason
/// `Urgent`, and reached every other relay within `max_wait` of the offer's creation. The
/// relay block carrying the data offer has that bit clear, was sent for `MaxWait`, and no
/// relay had it before `max_wait` had passed since the offer's creation.
#[tokio::test]
async fn the_power_offer_skips_the_window_and_the_data_offer_waits_for_it() {
    let (_dir, data, mut fed) = start_with(6, MAX_WAIT, HEARTBEAT_MS);
    let serving = fed.ready().await;
    let relays: Vec<Address> = serving.values().map(|s| s.relay).collect();
    let power = fed.handle.offer_power(SELLER, 4_000, 110, 9).await.unwrap();
    let offer = fed
        .handle
        .offer_data(DATA_SELLER, "quarterly consumption data", 25, None)
        .await
        .unwrap();
    let store = fed.store();
    for (lane, digest, urgent) in [(SOURCE, power, true), (LOAD, offer, false)] {
        let producer = serving[&lane].relay;
        let (height, index, bit, created) =
            wait_for(&mut fed, "the offer in a relay block", |_| {
                carrying(&*store, producer, lane, digest)
            })
            .await;
        assert_eq!(
            bit, urgent,
            "urgency bit {index} of relay block {height} of lane {lane}"
        );
        let all = wait_for(&mut fed, "every relay to commit the offer's block", |fed| {
            let c = commits(fed, lane, height);
            relays
                .iter()
                .all(|r| c.iter().any(|(n, ..)| n == r))
                .then_some(c)
        })
        .await;
        let produced: Vec<_> = all
            .iter()
            .filter(|(n, p, ..)| *p && *n == producer)
            .collect();
        assert_eq!(produced.len(), 1, "{all:?}");
        let reason = produced[0].2;
        let expected = if urgent {
            FlushReason::Urgent
        } else {
            FlushReason::MaxWait
        };
        assert_eq!(
            reason,
            Some(expected),
            "the flush of lane {lane} block {height}"
        );
        for (node, _, _, at) in all.iter().filter(|(n, ..)| relays.contains(n)) {
            let waited = at.saturating_sub(created);
            if urgent {
                assert!(
                    waited < MAX_WAIT,
                    "the power offer reached {} after {waited} ms",
                    fed.name(node)
                );
            } else {
                assert!(
                    waited >= MAX_WAIT,
                    "the data offer reached {} after {waited} ms",
                    fed.name(node)
                );
            }
        }
    }
    drop(store);
    shutdown_and_verify(fed, &data);
}
