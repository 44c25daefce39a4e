//! Happy paths (SPEC §6.1–6.3): each protocol completes, and its records are on the
//! chains the protocol puts them on.

use ieschain::federation::JoinSpec;
use ieschain_core::record::settlement_digest;
use ieschain_core::{ChainId, RecordBody, Signature};

use crate::support::*;

/// The three protocols run at once on one federation and each completes: the join with at
/// least one receipt, the power purchase settled for the agreed Wh and amount, the data
/// delivered. Then their records are where SPEC §6 puts them: the newcomer in the
/// `added` registry entries of a relay block header, which every relay holds, and the
/// relay's `JoinAnnouncement` on its own consortium lane; the newcomer writes its own lane;
/// the `TradeAgreement` on the seller's consortium lane; an approving `GridVote` on every
/// grid member's lane, on its own line; the grid relay's signed `GridReceipt` and the
/// `PowerSettlement` (countersigned by the buyer over the settlement, referencing that
/// receipt) on the relay chain, once; the `DataAgreement` on the relay chain with the
/// offer's digest. Finally every chain of the stopped federation verifies.
#[tokio::test]
async fn each_protocol_completes_with_its_records_on_the_right_chains() {
    let (_dir, data, mut fed) = start();
    let serving = fed.ready().await;
    let handle = fed.handle.clone();
    let (joined, power, bought) = tokio::join!(
        handle.join(JoinSpec::new("load", "newcomer-happy"), DEADLINE),
        handle.power_purchase(SELLER, BUYER, 8_000, 150, 1, DEADLINE),
        handle.data_trade(DATA_SELLER, DATA_BUYER, 40, DEADLINE),
    );
    let joined = joined.expect("the join completes");
    let power = power.expect("the power purchase settles");
    let bought = bought.expect("the data trade delivers");

    // ----- the join -----
    let newcomer = fed.address("newcomer-happy");
    assert_eq!(joined.newcomer, newcomer);
    assert_eq!(joined.consortium, LOAD);
    assert!(joined.receipts >= 1, "a join with no receipt: {joined:?}");
    let load_relay = serving[&LOAD].relay;
    let source_relay = serving[&SOURCE].relay;
    let store = fed.store();
    wait_for(
        &mut fed,
        "the announcement on the load relay's lane",
        |_| {
            chain_records(&*store, load_relay, ChainId::Consortium(LOAD, load_relay))
                .into_iter()
                .find(|r| {
                    matches!(&r.content.body, RecordBody::JoinAnnouncement { entry }
                    if entry.address == newcomer && entry.name == "newcomer-happy")
                })
        },
    )
    .await;
    for holder in [load_relay, source_relay] {
        let added = wait_for(&mut fed, "the newcomer in a relay block's registry", |_| {
            registry_added(&*store, holder)
                .into_iter()
                .find(|(_, e)| e.address == newcomer)
        })
        .await;
        assert_eq!(
            added.0, LOAD,
            "registered in the load lane of the relay chain"
        );
    }
    let height = fed
        .submit_acked("newcomer-happy", external(LOAD), data_offer(7))
        .await;
    assert!(height >= 1, "the newcomer writes its own lane");

    // ----- the power purchase -----
    assert_eq!((power.wh, power.amount), (8_000, 8_000 * 150 / 1000));
    let seller = fed.address(SELLER);
    let buyer = fed.address(BUYER);
    let agreement = chain_records(&*store, seller, ChainId::Consortium(SOURCE, seller))
        .into_iter()
        .find(|r| matches!(&r.content.body, RecordBody::TradeAgreement { trade, .. } if *trade == power.trade))
        .expect("the trade agreement on the seller's consortium lane");
    assert!(matches!(agreement.content.body,
        RecordBody::TradeAgreement { offer, seller: s, buyer: b, wh: 8_000, slot: 1, .. }
            if offer == power.offer && s == seller && b == buyer));
    for name in GRID_MEMBERS {
        let member = fed.address(name);
        let votes: Vec<_> = chain_records(&*store, member, ChainId::Consortium(GRID, member))
            .into_iter()
            .filter_map(|r| match r.content.body {
                RecordBody::GridVote {
                    trade,
                    line,
                    approve,
                } if trade == power.trade => Some((line, approve)),
                _ => None,
            })
            .collect();
        assert_eq!(
            votes,
            vec![(line_of(&fed, name), true)],
            "{name}'s vote on its lane"
        );
    }
    let settlements = wait_for(&mut fed, "the settlement on every relay's relay chain", |_| {
        let copies: Vec<_> = serving
            .values()
            .map(|s| {
                relay_chain_records(&*store, s.relay)
                    .into_iter()
                    .filter(|(_, r)| matches!(&r.content.body, RecordBody::PowerSettlement { trade, .. } if *trade == power.trade))
                    .collect::<Vec<_>>()
            })
            .collect();
        copies.iter().all(|c| !c.is_empty()).then_some(copies)
    })
    .await;
    for copy in &settlements {
        assert_eq!(copy.len(), 1, "the trade settles once");
        assert_eq!(copy[0].0, SOURCE, "in the seller's lane of the relay chain");
    }
    let settlement = settlements[0][0].1.clone();
    assert_eq!(
        settlement.content.author, seller,
        "the seller writes the settlement"
    );
    let RecordBody::PowerSettlement {
        trade,
        offer,
        seller: s,
        buyer: b,
        wh,
        amount,
        grid_receipt,
        countersignature,
    } = settlement.content.body.clone()
    else {
        unreachable!("filtered above");
    };
    assert_eq!((s, b, wh, amount), (seller, buyer, 8_000, power.amount));
    let unsigned = RecordBody::PowerSettlement {
        trade,
        offer,
        seller: s,
        buyer: b,
        wh,
        amount,
        grid_receipt,
        countersignature: Signature::EMPTY,
    };
    fed.handle
        .key_of(BUYER)
        .unwrap()
        .public()
        .verify(&settlement_digest(&unsigned), &countersignature)
        .expect("the buyer countersigned the settlement");
    let grid_relay = serving[&GRID].relay;
    let receipt = relay_records(&*store, grid_relay, GRID)
        .into_iter()
        .map(|(_, r)| r)
        .find(|r| r.digest() == grid_receipt)
        .expect("the grid receipt the settlement references, on the grid's relay lane");
    assert!(matches!(&receipt.content.body,
        RecordBody::GridReceipt { trade, approved: true, .. } if *trade == power.trade));
    assert_eq!(
        receipt.content.author, grid_relay,
        "the grid relay signs the receipt"
    );
    receipt
        .verify(&fed.handle.key_of(&fed.name(&grid_relay)).unwrap().public())
        .expect("the grid receipt is signed by the grid relay");

    // ----- the data trade -----
    assert!(bought.bytes > 0);
    let data_buyer = fed.address(DATA_BUYER);
    let (offer_digest, agreement) =
        wait_for(&mut fed, "the data agreement on the relay chain", |_| {
            let load = relay_records(&*store, load_relay, LOAD);
            let offer = load.iter().find_map(|(_, r)| match r.content.body {
                RecordBody::DataTrade { digest, .. } if r.digest() == bought.offer => Some(digest),
                _ => None,
            })?;
            let agreement = load.into_iter().find_map(|(_, r)| match r.content.body {
                RecordBody::DataAgreement {
                    trade,
                    buyer,
                    digest,
                } if trade == bought.trade => Some((buyer, digest)),
                _ => None,
            })?;
            Some((offer, agreement))
        })
        .await;
    assert_eq!(
        agreement,
        (data_buyer, offer_digest),
        "the agreement names the buyer and the offer's digest"
    );

    let stats = fed.handle.stats();
    assert!(
        stats.joins >= 1 && stats.trades_power >= 1 && stats.trades_data >= 1,
        "{stats:?}"
    );
    drop((store, handle));
    shutdown_and_verify(fed, &data);
}
