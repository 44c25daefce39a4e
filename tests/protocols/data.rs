//! Data trade failure (SPEC §6.3 step 6): data whose digest does not match the chain's is
//! refused and recorded as a dispute.

use ieschain::federation::FederationError;
use ieschain_core::node::Event;
use ieschain_core::record::data_digest;
use ieschain_core::RecordBody;

use crate::support::*;

/// A seller that delivers other bytes than those it offered: the buyer's run fails with
/// an error saying "dispute", no delivery is reported, and the buyer's `DataDispute`
/// record, with the offer's digest as expected and the digest of what came as received,
/// is on the relay chain (in the buyer's lane), beside the seller's agreement of the same
/// trade.
#[tokio::test]
async fn mismatched_data_is_refused_and_recorded_as_a_dispute() {
    let (_dir, data, mut fed) = start();
    let serving = fed.ready().await;
    let offer = fed
        .handle
        .offer_data(DATA_SELLER, "quarterly consumption data", 30, None)
        .await
        .unwrap();
    let tampered = b"not the data whose digest is on the chain".to_vec();
    fed.handle
        .tamper_data(DATA_SELLER, offer, tampered.clone())
        .await
        .unwrap();
    let reason = match fed.handle.buy_data(DATA_BUYER, offer, DEADLINE).await {
        Err(FederationError::Protocol { reason, .. }) => reason,
        other => panic!("expected a dispute, got {other:?}"),
    };
    assert!(reason.contains("dispute"), "unclear error: {reason}");

    let buyer = fed.address(DATA_BUYER);
    let store = fed.store();
    let load_relay = serving[&LOAD].relay;
    let service_relay = serving[&SERVICE].relay;
    let (trade, expected, received) = wait_for(&mut fed, "the dispute on the relay chain", |_| {
        relay_records(&*store, service_relay, SERVICE)
            .into_iter()
            .find_map(|(_, r)| match r.content.body {
                RecordBody::DataDispute {
                    trade,
                    expected,
                    received,
                } if r.content.author == buyer => Some((trade, expected, received)),
                _ => None,
            })
    })
    .await;
    let offered = relay_records(&*store, load_relay, LOAD)
        .into_iter()
        .find_map(|(_, r)| match r.content.body {
            RecordBody::DataTrade { digest, .. } if r.digest() == offer => Some(digest),
            _ => None,
        })
        .expect("the data offer on the relay chain");
    assert_eq!(
        expected, offered,
        "the dispute expects the digest on the chain"
    );
    assert_eq!(
        received,
        data_digest(&tampered),
        "the dispute names what came"
    );
    let agreed = wait_for(&mut fed, "the agreement of the disputed trade", |_| {
        relay_records(&*store, load_relay, LOAD)
            .into_iter()
            .find_map(|(_, r)| match r.content.body {
                RecordBody::DataAgreement {
                    trade: t, buyer: b, ..
                } if t == trade => Some(b),
                _ => None,
            })
    })
    .await;
    assert_eq!(agreed, buyer);
    assert!(
        !fed.log
            .iter()
            .any(|e| matches!(e, Event::DataDelivered { offer: o, .. } if *o == offer)),
        "a disputed delivery was reported as delivered"
    );
    let stats = fed.handle.stats();
    assert_eq!((stats.disputes, stats.trades_data), (1, 0), "{stats:?}");
    drop(store);
    shutdown_and_verify(fed, &data);
}
