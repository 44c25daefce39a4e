//! The member machine's protocol side, without actors: a forwarded offer is kept
//! unchecked, and its signature is checked when the member acts on it.

use std::sync::Arc;

use ieschain_core::genesis::Directory;
use ieschain_core::message::Message;
use ieschain_core::node::member::Member;
use ieschain_core::node::{Effect, Event, Mutations, ProtocolConfig, Timing};
use ieschain_core::sample::{SampleFederation, SampleMember, SAMPLE_EPOCH_MS};
use ieschain_core::window::WindowConfig;
use ieschain_core::{Audience, ConsortiumId, Domain, Keypair, RecordBody, RecordContent};

const SOURCE: ConsortiumId = ConsortiumId(0);
const LOAD: ConsortiumId = ConsortiumId(3);

fn member_of(
    federation: &SampleFederation,
    consortium: ConsortiumId,
    capable: bool,
) -> &SampleMember {
    federation
        .members
        .iter()
        .find(|m| m.consortium == consortium && m.entry.relay_capable == capable)
        .expect("the sample federation has such a member")
}

fn bids(effects: &[Effect]) -> usize {
    effects
        .iter()
        .filter(|e| matches!(e, Effect::Emit(Event::Step { step: 4, .. })))
        .count()
}

#[test]
fn a_forged_offer_gets_no_bid_and_the_genuine_one_does() {
    let federation = SampleFederation::four_party(7, 3);
    let genesis = Arc::new(federation.genesis.clone());
    let timing = Timing {
        heartbeat_ms: 200,
        suspect_after: 3,
        period_ms: 10_000,
        member_max_wait_ms: 200,
        window: WindowConfig::new(&federation.genesis.capacities),
        mutations: Mutations::default(),
        protocols: ProtocolConfig {
            source: Some(SOURCE),
            grid: Some(ConsortiumId(1)),
            service: Some(ConsortiumId(2)),
            load: Some(LOAD),
            grid_quorum: 0,
            deadline_ms: 0,
        },
    };
    let buyer_sample = member_of(&federation, LOAD, false);
    let relay = member_of(&federation, LOAD, true).entry.address;
    let seller = member_of(&federation, SOURCE, true);
    let mut buyer = Member::new(
        buyer_sample.key.clone(),
        LOAD,
        genesis.clone(),
        Arc::new(Directory::from_genesis(&genesis)),
        timing,
    );
    let now = SAMPLE_EPOCH_MS;
    let content = RecordContent {
        author: seller.entry.address,
        seq: 1,
        created_at: now,
        audience: Audience::Consortiums(vec![LOAD]),
        body: RecordBody::PowerOffer {
            wh: 5_000,
            price_per_kwh: 120,
            slot: 3,
        },
    };
    let genuine = content.clone().sign(&seller.key);
    let forged = content.sign(&Keypair::derive(Domain::NodeKey, 7, "forger"));
    assert_eq!(
        forged.digest(),
        genuine.digest(),
        "the same content, another signer"
    );

    let effects = buyer.bid_power(genuine.digest(), 2_000, now).unwrap();
    assert_eq!(bids(&effects), 0, "no bid before the offer is seen");

    let forward = |records| Message::Forward {
        lane: SOURCE,
        height: 2,
        records,
    };
    let effects = buyer.deliver(relay, forward(vec![forged]), now + 10);
    assert_eq!(bids(&effects), 0, "a bid on a forged offer");
    assert!(
        effects.iter().any(|e| matches!(
            e,
            Effect::Emit(Event::Rejected {
                kind: "bad_signature",
                ..
            })
        )),
        "the forged offer is not counted: {effects:?}"
    );

    let effects = buyer.deliver(relay, forward(vec![genuine]), now + 20);
    assert_eq!(
        bids(&effects),
        1,
        "the genuine offer gets the bid: {effects:?}"
    );
}
