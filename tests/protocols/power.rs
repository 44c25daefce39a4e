//! Power purchase failures (SPEC §6.2): a trade over a grid line's capacity gets a signed
//! rejection receipt and settles nothing; an offer's quantity can't be sold twice; a
//! replayed bid is rejected.

use ieschain::federation::{FederationError, TradeOutcome};
use ieschain_core::message::{Envelope, Message};
use ieschain_core::node::Event;
use ieschain_core::{Address, ChainId, Hash, RecordBody};

use crate::support::*;

/// The reason of a protocol error, or a panic saying what came instead.
fn reason(result: Result<TradeOutcome, FederationError>) -> String {
    match result {
        Err(FederationError::Protocol { reason, .. }) => reason,
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

/// The power settlements of `offer` on `holder`'s copy of the relay chain.
fn settlements_of(fed: &Fed, holder: Address, offer: Hash) -> Vec<(Hash, Address, u64)> {
    relay_chain_records(&*fed.store(), holder)
        .into_iter()
        .filter_map(|(_, r)| match r.content.body {
            RecordBody::PowerSettlement {
                trade,
                offer: o,
                buyer,
                wh,
                ..
            } if o == offer => Some((trade, buyer, wh)),
            _ => None,
        })
        .collect()
}

/// How many `TradeSettled` events the log holds for `offer`.
fn settled_events(fed: &Fed, offer: Hash) -> usize {
    fed.log
        .iter()
        .filter(|e| matches!(e, Event::TradeSettled { offer: o, .. } if *o == offer))
        .count()
}

/// A 25,000 Wh trade in a slot where grid-west's line carries 20,000 Wh, under the quorum
/// "all": grid-west votes no on its lane while the other lines vote yes, the grid relay
/// writes a rejection receipt it signed, naming grid-west's line, the buyer's run fails with an
/// error saying the grid rejected it, and nothing settles. The lines that approved then
/// release what they held: a 15,000 Wh trade in the same slot (grid-east carries 30,000
/// Wh) is approved and settles.
#[tokio::test]
async fn a_trade_over_line_capacity_gets_a_signed_rejection_and_settles_nothing() {
    let (_dir, data, mut fed) = start();
    let serving = fed.ready().await;
    let grid_relay = serving[&GRID].relay;
    let source_relay = serving[&SOURCE].relay;
    let seller = fed.address(SELLER);
    let west = format!("line {} (grid-west)", line_of(&fed, "grid-west"));
    let offer = fed
        .handle
        .offer_power(SELLER, 25_000, 150, 3)
        .await
        .unwrap();
    let reason = reason(fed.handle.buy_power(BUYER, offer, 25_000, DEADLINE).await);
    assert!(
        reason.contains("grid rejected") && reason.contains(&west),
        "unclear error: {reason}"
    );
    let store = fed.store();
    let trade = chain_records(&*store, seller, ChainId::Consortium(SOURCE, seller))
        .into_iter()
        .find_map(|r| match r.content.body {
            RecordBody::TradeAgreement {
                trade, offer: o, ..
            } if o == offer => Some(trade),
            _ => None,
        })
        .expect("the agreement on the seller's lane");
    for name in GRID_MEMBERS {
        let member = fed.address(name);
        let vote = wait_for(&mut fed, &format!("{name}'s vote"), |_| {
            chain_records(&*store, member, ChainId::Consortium(GRID, member))
                .into_iter()
                .find_map(|r| match r.content.body {
                    RecordBody::GridVote {
                        trade: t, approve, ..
                    } if t == trade => Some(approve),
                    _ => None,
                })
        })
        .await;
        assert_eq!(
            vote,
            name != "grid-west",
            "{name}'s vote on a 25,000 Wh trade"
        );
    }
    let receipt = wait_for(&mut fed, "the rejection receipt on the relay chain", |_| {
        relay_records(&*store, grid_relay, GRID)
            .into_iter()
            .map(|(_, r)| r)
            .find(|r| matches!(&r.content.body, RecordBody::GridReceipt { trade: t, .. } if *t == trade))
    })
    .await;
    let RecordBody::GridReceipt {
        approved, reason, ..
    } = &receipt.content.body
    else {
        unreachable!("found above");
    };
    assert!(
        !approved && reason.contains(&west),
        "receipt: {approved} {reason}"
    );
    assert_eq!(receipt.content.author, grid_relay);
    receipt
        .verify(&fed.handle.key_of(&fed.name(&grid_relay)).unwrap().public())
        .expect("the rejection receipt is signed by the grid relay");

    let fits = fed
        .handle
        .power_purchase(SELLER, BUYER, 15_000, 150, 3, DEADLINE)
        .await
        .expect("a trade within every line's capacity settles");
    assert_eq!(fits.wh, 15_000);
    fed.wait_event(0, "the second trade's settlement event", |e| {
        matches!(e, Event::TradeSettled { offer, .. } if *offer == fits.offer).then_some(())
    })
    .await;
    assert!(
        settlements_of(&fed, source_relay, offer).is_empty(),
        "the rejected trade settled"
    );
    assert_eq!(settled_events(&fed, offer), 0);
    assert_eq!(settlements_of(&fed, source_relay, fits.offer).len(), 1);
    drop(store);
    shutdown_and_verify(fed, &data);
}

/// An offer of 10,000 Wh that one buyer takes whole refuses a second buyer's bid, with an
/// error saying what is left; only the first trade settles. Then two buyers bid 6,000 Wh
/// each on a fresh 10,000 Wh offer at the same moment: the seller agrees to one and
/// refuses the other, and exactly one trade of that offer settles.
#[tokio::test]
async fn the_same_offer_cannot_be_sold_twice() {
    let (_dir, data, mut fed) = start();
    let serving = fed.ready().await;
    let source_relay = serving[&SOURCE].relay;
    let seller = fed.address(SELLER);
    let offer = fed
        .handle
        .offer_power(SELLER, 10_000, 120, 4)
        .await
        .unwrap();
    let first = fed
        .handle
        .buy_power(BUYER, offer, 10_000, DEADLINE)
        .await
        .expect("the first buyer takes the whole offer");
    assert_eq!(first.wh, 10_000);
    let reason = reason(fed.handle.buy_power(BUYER_2, offer, 5_000, DEADLINE).await);
    assert!(reason.contains("0 Wh left"), "unclear error: {reason}");

    // Two bids at once on a fresh offer.
    let race = fed
        .handle
        .offer_power(SELLER, 10_000, 120, 5)
        .await
        .unwrap();
    let mark = fed.mark();
    let handle = fed.handle.clone();
    let (a, b) = tokio::join!(
        handle.buy_power(BUYER, race, 6_000, DEADLINE),
        handle.buy_power(BUYER_2, race, 6_000, DEADLINE),
    );
    let refused = fed
        .wait_event(mark, "the seller to refuse one bid", |e| match e {
            Event::TradeRefused {
                offer, by, reason, ..
            } if *offer == race && *by == seller => Some(reason.clone()),
            _ => None,
        })
        .await;
    assert!(refused.contains("4000 Wh left"), "{refused}");
    let settled = wait_for(&mut fed, "one trade of the raced offer to settle", |fed| {
        let s = settlements_of(fed, source_relay, race);
        (!s.is_empty()).then_some(s)
    })
    .await;
    next_relay_block(&mut fed, SELLER, SOURCE, source_relay).await;
    assert_eq!(
        settlements_of(&fed, source_relay, race),
        settled,
        "{a:?} {b:?}"
    );
    assert_eq!(settled.len(), 1, "the raced offer settled {settled:?}");
    assert_eq!(settled[0].2, 6_000);
    let offers = settlements_of(&fed, source_relay, offer);
    assert_eq!(offers.len(), 1, "the whole offer settled {offers:?}");
    assert_eq!(offers[0].1, fed.address(BUYER));
    drop(handle);
    shutdown_and_verify(fed, &data);
}

/// Two buyers bid 6,000 Wh each on a 10,000 Wh offer at the same moment: each buyer's
/// run ends with its own outcome, one settled, the other refused with what is left.
#[tokio::test]
async fn concurrent_buyers_each_get_their_own_outcome() {
    let (_dir, data, mut fed) = start();
    fed.ready().await;
    let offer = fed
        .handle
        .offer_power(SELLER, 10_000, 120, 8)
        .await
        .unwrap();
    let handle = fed.handle.clone();
    let (a, b) = tokio::join!(
        handle.buy_power(BUYER, offer, 6_000, DEADLINE),
        handle.buy_power(BUYER_2, offer, 6_000, DEADLINE),
    );
    let settled = [&a, &b].iter().filter(|r| r.is_ok()).count();
    assert_eq!(settled, 1, "outcomes: {a:?} {b:?}");
    let refused = [a, b]
        .into_iter()
        .find_map(Result::err)
        .expect("one refused");
    assert!(refused.to_string().contains("4000 Wh left"), "{refused}");
    drop(handle);
    shutdown_and_verify(fed, &data);
}

/// A settled trade's bid, delivered to the seller again (forwarded by a relay-capable
/// member of the seller's consortium, as a relay would resend it), is rejected as
/// `replayed_bid` and counted; no second agreement or settlement comes of it.
#[tokio::test]
async fn a_replayed_bid_is_rejected() {
    let (_dir, data, mut fed) = start();
    let serving = fed.ready().await;
    let Serving {
        relay: source_relay,
        backup,
    } = serving[&SOURCE];
    let seller = fed.address(SELLER);
    let buyer = fed.address(BUYER);
    let outcome = fed
        .handle
        .power_purchase(SELLER, BUYER, 5_000, 100, 6, DEADLINE)
        .await
        .expect("the purchase settles");
    let store = fed.store();
    let bid = chain_records(&*store, buyer, ChainId::Consortium(LOAD, buyer))
        .into_iter()
        .find(|r| matches!(r.content.body, RecordBody::PowerBid { offer, .. } if offer == outcome.offer))
        .expect("the bid on the buyer's lane");
    // The source member that is neither relay nor backup has never sent the seller an
    // envelope: its first seq is fresh there.
    let forwarder = ["source-wind", "source-solar", "source-gas"]
        .into_iter()
        .find(|n| {
            let a = fed.address(n);
            a != source_relay && Some(a) != backup
        })
        .expect("three relay-capable source members, two serving");
    let key = fed.handle.key_of(forwarder).unwrap();
    let mark = fed.mark();
    let forward = Message::Forward {
        lane: SOURCE,
        height: 0,
        records: vec![bid],
    };
    fed.handle
        .inject(Envelope::seal(&key, seller, 0, 1, &forward));
    let (hostile, detail) = fed.rejected(mark, seller, "replayed_bid").await;
    assert!(!hostile, "a repeated bid is not hostile (D9): {detail}");
    assert_eq!(fed.handle.stats().rejected.get("replayed_bid"), Some(&1));
    next_relay_block(&mut fed, SELLER, SOURCE, source_relay).await;
    assert_eq!(settlements_of(&fed, source_relay, outcome.offer).len(), 1);
    assert_eq!(settled_events(&fed, outcome.offer), 1);
    let agreements = chain_records(&*store, seller, ChainId::Consortium(SOURCE, seller))
        .into_iter()
        .filter(|r| matches!(r.content.body, RecordBody::TradeAgreement { offer, .. } if offer == outcome.offer))
        .count();
    assert_eq!(agreements, 1, "the replayed bid made a second agreement");
    drop(store);
    shutdown_and_verify(fed, &data);
}
