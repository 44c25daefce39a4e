//! A relay failover mid-protocol (SPEC §6: "a protocol in flight must survive a relay
//! change ... retried against the new relay, idempotently"): each protocol completes
//! after the relay it runs through is crashed in the middle of it, and nothing settles or
//! is agreed twice.

use ieschain::federation::JoinSpec;
use ieschain_core::election::ElectionReason;
use ieschain_core::node::{Event, Protocol};
use ieschain_core::{Address, ConsortiumId, Hash, RecordBody};

use crate::support::*;

/// Waits for step `step` of `protocol` taken by one of `by` (any node when empty), logged
/// at `from` or later; returns its run.
async fn step_taken(
    fed: &mut Fed,
    from: usize,
    protocol: Protocol,
    step: u8,
    by: &[Address],
) -> Hash {
    let what = format!("step {step} of {}", protocol.name());
    fed.wait_event(from, &what, |e| match e {
        Event::Step {
            protocol: p,
            step: s,
            from,
            run,
            ..
        } if *p == protocol && *s == step && (by.is_empty() || by.contains(from)) => Some(*run),
        _ => None,
    })
    .await
}

/// Waits for the failover election of `consortium` after `from`; returns the new relay.
async fn failed_over(fed: &mut Fed, from: usize, consortium: ConsortiumId) -> Address {
    fed.wait_event(from, "a failover election", |e| match e {
        Event::Elected {
            consortium: c,
            reason: ElectionReason::Failover,
            relay,
            ..
        } if *c == consortium => Some(*relay),
        _ => None,
    })
    .await
}

/// The grid relay is crashed while the grid members vote on a trade, before it can write
/// its receipt: its backup takes over the negotiation (from the agreement on the relay
/// chain and the votes the grid members resend), the purchase settles, and exactly one
/// settlement of the offer is on the relay chain.
///
/// The grid relay is a grid member too, and every line must approve: the crash waits
/// until its own vote is acknowledged (replicated at the backup). A vote of its that was
/// not would be lost with it, as any unacknowledged write may be, and the trade could not
/// settle until it came back.
#[tokio::test]
async fn a_power_purchase_survives_a_grid_relay_failover_and_settles_once() {
    let (_dir, data, mut fed) = start();
    let serving = fed.ready().await;
    let grid_relay = serving[&GRID].relay;
    let source_relay = serving[&SOURCE].relay;
    let grid: Vec<Address> = GRID_MEMBERS.iter().map(|n| fed.address(n)).collect();
    let mark = fed.mark();
    let offer = fed.handle.offer_power(SELLER, 9_000, 130, 7).await.unwrap();
    let handle = fed.handle.clone();
    let purchase =
        tokio::spawn(async move { handle.buy_power(BUYER, offer, 9_000, DEADLINE).await });
    step_taken(&mut fed, mark, Protocol::PowerPurchase, 5, &grid).await;
    fed.wait_event(
        mark,
        "the grid relay's own vote acknowledged",
        |e| match e {
            Event::Acknowledged { relay, author, .. }
                if *relay == grid_relay && *author == grid_relay =>
            {
                Some(())
            }
            _ => None,
        },
    )
    .await;
    fed.handle.crash(&fed.name(&grid_relay)).await.unwrap();
    let outcome = purchase
        .await
        .unwrap()
        .expect("the purchase settles after the grid failover");
    assert_eq!(outcome.wh, 9_000);
    let new_relay = failed_over(&mut fed, mark, GRID).await;
    assert_ne!(new_relay, grid_relay);
    next_relay_block(&mut fed, SELLER, SOURCE, source_relay).await;
    let store = fed.store();
    let settled: Vec<Hash> = relay_chain_records(&*store, source_relay)
        .into_iter()
        .filter_map(|(_, r)| match r.content.body {
            RecordBody::PowerSettlement {
                trade, offer: o, ..
            } if o == offer => Some(trade),
            _ => None,
        })
        .collect();
    assert_eq!(settled, vec![outcome.trade], "settlements of the offer");
    // The nodes run on several threads: the settlement's event may come after the relay
    // block's in the stream. Wait for it, then count every one seen.
    fed.wait_event(mark, "the settlement's event", |e| {
        matches!(e, Event::TradeSettled { offer: o, .. } if *o == offer).then_some(())
    })
    .await;
    let events = fed
        .log
        .iter()
        .filter(|e| matches!(e, Event::TradeSettled { offer: o, .. } if *o == offer))
        .count();
    assert_eq!(events, 1);
    drop(store);
    shutdown_and_verify(fed, &data);
}

/// The load relay is crashed right after it registered a newcomer and broadcast its key
/// (join step 3): the join still completes, through the backup that takes over, and the
/// newcomer is registered once on the relay chain.
#[tokio::test]
async fn a_join_survives_a_relay_failover() {
    let (_dir, data, mut fed) = start();
    let serving = fed.ready().await;
    let relay = serving[&LOAD].relay;
    let mark = fed.mark();
    let handle = fed.handle.clone();
    let join = tokio::spawn(async move {
        handle
            .join(JoinSpec::new("load", "newcomer-failover"), DEADLINE)
            .await
    });
    step_taken(&mut fed, mark, Protocol::Join, 3, &[relay]).await;
    fed.handle.crash(&fed.name(&relay)).await.unwrap();
    let outcome = join
        .await
        .unwrap()
        .expect("the join completes after the failover");
    let newcomer = fed.address("newcomer-failover");
    assert_eq!(outcome.newcomer, newcomer);
    let new_relay = failed_over(&mut fed, mark, LOAD).await;
    next_relay_block(&mut fed, DATA_SELLER, LOAD, new_relay).await;
    let store = fed.store();
    let registered: Vec<_> = registry_added(&*store, new_relay)
        .into_iter()
        .filter(|(_, e)| e.address == newcomer)
        .collect();
    assert_eq!(registered.len(), 1, "registrations: {registered:?}");
    fed.submit_acked("newcomer-failover", external(LOAD), data_offer(3))
        .await;
    drop(store);
    shutdown_and_verify(fed, &data);
}

/// The seller's relay (load) is crashed as soon as the buyer has written its purchase
/// (data trade step 5), before the purchase reaches it: the data is still delivered,
/// through the new load relay, and the trade is agreed once on the relay chain.
#[tokio::test]
async fn a_data_trade_survives_a_relay_failover() {
    let (_dir, data, mut fed) = start();
    let serving = fed.ready().await;
    let relay = serving[&LOAD].relay;
    let buyer = fed.address(DATA_BUYER);
    let mark = fed.mark();
    let offer = fed
        .handle
        .offer_data(DATA_SELLER, "quarterly consumption data", 35, None)
        .await
        .unwrap();
    let handle = fed.handle.clone();
    let purchase = tokio::spawn(async move { handle.buy_data(DATA_BUYER, offer, DEADLINE).await });
    step_taken(&mut fed, mark, Protocol::DataTrade, 5, &[buyer]).await;
    fed.handle.crash(&fed.name(&relay)).await.unwrap();
    let outcome = purchase
        .await
        .unwrap()
        .expect("the data is delivered after the failover");
    let new_relay = failed_over(&mut fed, mark, LOAD).await;
    next_relay_block(&mut fed, DATA_SELLER, LOAD, new_relay).await;
    let store = fed.store();
    let agreements: Vec<Hash> = relay_records(&*store, new_relay, LOAD)
        .into_iter()
        .filter_map(|(_, r)| match r.content.body {
            RecordBody::DataAgreement { trade, .. } if trade == outcome.trade => Some(trade),
            _ => None,
        })
        .collect();
    assert_eq!(
        agreements.len(),
        1,
        "agreements of the trade: {agreements:?}"
    );
    drop(store);
    shutdown_and_verify(fed, &data);
}
