//! Bad input to the lanes (SPEC §4.3, §5, §12 D3, D6, D7): each kind of bad block is refused
//! with its own typed [`Reject`], and a refusal leaves the lane exactly as it was, so that
//! the correct block appended next is accepted.
//!
//! The fixtures start from real chains: a member's consortium lane and private chain built
//! here, and consortium 0's relay lane replayed from a sample ledger (an initial election,
//! included blocks and a join). Every bad block is otherwise valid and correctly signed, so
//! the rejection is caused by the one defect under test.

// Tests may unwrap (STYLE.md, "Gates").
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;

use ieschain_core::block::{RelayDraft, UrgencyBits};
use ieschain_core::election::{
    ElectionError, ElectionHistory, ElectionReason, ElectionRecord, LanePosition,
};
use ieschain_core::genesis::{Capacities, Directory};
use ieschain_core::registry::{Registry, RegistryEntry, RegistryError};
use ieschain_core::sample::{SampleFederation, SampleMember, SAMPLE_EPOCH_MS};
use ieschain_core::validate::{
    BlockError, ConsortiumLane, Head, LaneState, PrivateLane, Reject, RelayLane,
};
use ieschain_core::{
    Address, AnyBlock, Audience, ChainBlock, ChainId, ConsortiumBlock, ConsortiumId, Domain, Hash,
    Keypair, PrivateBlock, Record, RecordBody, RecordContent, RelayBlock,
};

const CONSORTIUM: ConsortiumId = ConsortiumId(0);
const CONSORTIUM_CAPACITY: u32 = Capacities::CONSORTIUM_DEFAULT;

fn federation() -> SampleFederation {
    SampleFederation::four_party(21, 4)
}

/// An urgent body (energy supply).
fn urgent() -> RecordBody {
    RecordBody::EnergySupply {
        wh: 5_000,
        price: 400,
        slot: 9,
    }
}

/// A normal body of about `size` bytes.
fn normal(size: usize) -> RecordBody {
    RecordBody::EquipmentMaintenance {
        equipment: "transformer-7".into(),
        detail: "x".repeat(size),
    }
}

fn record(key: &Keypair, seq: u64, body: RecordBody) -> Record {
    RecordContent {
        author: key.address(),
        seq,
        created_at: SAMPLE_EPOCH_MS + seq,
        audience: Audience::Everyone,
        body,
    }
    .sign(key)
}

/// Re-signs a block after its header was changed, as a malicious producer would.
fn resign<B: ChainBlock>(key: &Keypair, block: &B) -> ieschain_core::Signature {
    key.sign(&block.hash())
}

// ---------------------------------------------------------------------------------------
// A member's consortium lane and private chain.
// ---------------------------------------------------------------------------------------

/// A member's lane with one block already appended.
struct MemberLane {
    key: Keypair,
    other: Keypair,
    lane: ConsortiumLane,
    private: PrivateLane,
    seq: u64,
}

impl MemberLane {
    fn new() -> MemberLane {
        let federation = federation();
        let mut members = federation.members_of(CONSORTIUM);
        let key = members.next().unwrap().key.clone();
        let other = members.next().unwrap().key.clone();
        let mut lane =
            ConsortiumLane::new(CONSORTIUM, key.address(), key.public(), CONSORTIUM_CAPACITY);
        let mut private = PrivateLane::new(key.address(), key.public(), CONSORTIUM_CAPACITY);
        let first = ConsortiumBlock::seal(
            &key,
            CONSORTIUM,
            1,
            Hash::ZERO,
            SAMPLE_EPOCH_MS,
            vec![record(&key, 1, urgent()), record(&key, 2, normal(10))],
        );
        lane.append(&first).unwrap();
        let first = PrivateBlock::seal(
            &key,
            1,
            Hash::ZERO,
            SAMPLE_EPOCH_MS,
            vec![record(
                &key,
                3,
                RecordBody::MeterReading {
                    meter: 1,
                    wh: 10_000,
                },
            )],
        );
        private.append(&first).unwrap();
        MemberLane {
            key,
            other,
            lane,
            private,
            seq: 3,
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// The correct next consortium block, with these records.
    fn next(&self, records: Vec<Record>) -> ConsortiumBlock {
        ConsortiumBlock::seal(
            &self.key,
            CONSORTIUM,
            self.lane.head.height + 1,
            self.lane.head.hash,
            SAMPLE_EPOCH_MS + 1_000,
            records,
        )
    }

    /// The correct next private block, with these records.
    fn next_private(&self, records: Vec<Record>) -> PrivateBlock {
        PrivateBlock::seal(
            &self.key,
            self.private.head.height + 1,
            self.private.head.hash,
            SAMPLE_EPOCH_MS + 1_000,
            records,
        )
    }

    /// Appends `bad`, expecting a refusal that changes nothing; then appends `good`.
    fn refuse_then_accept(&mut self, bad: &ConsortiumBlock, good: &ConsortiumBlock) -> Reject {
        let (head, last_seq) = (self.lane.head, self.lane.last_seq);
        let err = self.lane.append(bad).unwrap_err();
        assert_eq!(
            err.chain,
            ChainId::Consortium(CONSORTIUM, self.key.address())
        );
        assert_eq!(err.height, bad.header.height);
        assert_eq!(
            self.lane.head, head,
            "a refused block must not move the head"
        );
        assert_eq!(self.lane.last_seq, last_seq);
        self.lane.append(good).unwrap();
        assert_eq!(self.lane.head.height, head.height + 1);
        err.reason
    }

    /// As [`MemberLane::refuse_then_accept`], on the private chain.
    fn refuse_then_accept_private(&mut self, bad: &PrivateBlock, good: &PrivateBlock) -> Reject {
        let (head, last_seq) = (self.private.head, self.private.last_seq);
        let err = self.private.append(bad).unwrap_err();
        assert_eq!(err.chain, ChainId::Private(self.key.address()));
        assert_eq!(
            self.private.head, head,
            "a refused block must not move the head"
        );
        assert_eq!(self.private.last_seq, last_seq);
        self.private.append(good).unwrap();
        err.reason
    }
}

/// A consortium block whose records total more than 1 Mbit (131,072 bytes encoded) is
/// refused for capacity; one just under the limit is accepted.
#[test]
fn oversized_consortium_block_is_capacity() {
    let mut m = MemberLane::new();
    let records: Vec<Record> = (0..3)
        .map(|_| {
            let seq = m.next_seq();
            record(&m.key, seq, normal(45_000))
        })
        .collect();
    let total: usize = records.iter().map(ieschain_core::codec::encoded_len).sum();
    assert!(total > CONSORTIUM_CAPACITY as usize, "{total}");
    let bad = m.next(records);
    let seq = m.next_seq();
    // The largest single record that still fits beside the header and signature.
    let good = m.next(vec![record(&m.key, seq, normal(130_000))]);
    assert!(ieschain_core::codec::encoded_len(&good) <= CONSORTIUM_CAPACITY as usize);
    let reason = m.refuse_then_accept(&bad, &good);
    match reason {
        Reject::Capacity { size, capacity } => {
            assert_eq!(capacity, CONSORTIUM_CAPACITY);
            assert_eq!(size, ieschain_core::codec::encoded_len(&bad));
        }
        other => panic!("{other}"),
    }
}

/// A private block over capacity is refused too (it shares the consortium capacity).
#[test]
fn oversized_private_block_is_capacity() {
    let mut m = MemberLane::new();
    let seq = m.next_seq();
    let bad = m.next_private(vec![record(&m.key, seq, normal(140_000))]);
    let good = m.next_private(vec![record(&m.key, seq, normal(100))]);
    assert!(matches!(
        m.refuse_then_accept_private(&bad, &good),
        Reject::Capacity {
            capacity: CONSORTIUM_CAPACITY,
            ..
        }
    ));
}

/// A block that skips a height, or repeats the head's, is refused with the height it
/// should have had.
#[test]
fn wrong_height_is_height() {
    let mut m = MemberLane::new();
    for height in [3, 1, 0, u64::MAX] {
        let seq = m.next_seq();
        let records = vec![record(&m.key, seq, normal(10))];
        let bad = ConsortiumBlock::seal(
            &m.key,
            CONSORTIUM,
            height,
            m.lane.head.hash,
            SAMPLE_EPOCH_MS,
            records.clone(),
        );
        let good = m.next(records);
        let expected = m.lane.head.height + 1;
        assert_eq!(
            m.refuse_then_accept(&bad, &good),
            Reject::Height {
                expected,
                got: height
            }
        );
    }
    // The same on a private chain.
    let seq = m.next_seq();
    let records = vec![record(&m.key, seq, normal(1))];
    let bad = PrivateBlock::seal(&m.key, 5, m.private.head.hash, 0, records.clone());
    let good = m.next_private(records);
    assert_eq!(
        m.refuse_then_accept_private(&bad, &good),
        Reject::Height {
            expected: 2,
            got: 5
        }
    );
}

/// A block whose `prev` is not the head's hash is refused as a broken link.
#[test]
fn wrong_prev_is_prev() {
    let mut m = MemberLane::new();
    let seq = m.next_seq();
    let records = vec![record(&m.key, seq, normal(10))];
    let wrong = Hash::of(Domain::ConsortiumHeader, &[b"not the head"]);
    let bad = ConsortiumBlock::seal(
        &m.key,
        CONSORTIUM,
        m.lane.head.height + 1,
        wrong,
        SAMPLE_EPOCH_MS,
        records.clone(),
    );
    let good = m.next(records);
    let expected = m.lane.head.hash;
    assert_eq!(
        m.refuse_then_accept(&bad, &good),
        Reject::Prev {
            expected,
            got: wrong
        }
    );
    // A genesis-style zero prev on a non-empty chain is just as wrong.
    let seq = m.next_seq();
    let records = vec![record(&m.key, seq, normal(1))];
    let bad = PrivateBlock::seal(&m.key, 2, Hash::ZERO, 0, records.clone());
    let good = m.next_private(records);
    assert!(matches!(
        m.refuse_then_accept_private(&bad, &good),
        Reject::Prev {
            got: Hash::ZERO,
            ..
        }
    ));
}

/// A header signature that does not verify (damaged, or made by another key) is refused
/// as a bad signature on the header, by the lane's writer.
#[test]
fn bad_header_signature_is_signature() {
    let mut m = MemberLane::new();
    let seq = m.next_seq();
    let good = m.next(vec![record(&m.key, seq, urgent())]);
    let mut damaged = good.clone();
    damaged.signature.0[3] ^= 0x40;
    let mut foreign = good.clone();
    foreign.signature = resign(&m.other, &good);
    for bad in [damaged, foreign] {
        let mut lane = m.lane.clone();
        let err = lane.append(&bad).unwrap_err();
        assert_eq!(lane.head, m.lane.head);
        assert_eq!(
            err.reason,
            Reject::Signature {
                signer: m.key.address(),
                what: "header".into()
            }
        );
    }
    m.lane.append(&good).unwrap();
}

/// A record whose signature is not its author's (here: made by another member over the
/// same content) is refused as a bad signature on that record, in a consortium lane and in
/// a private chain, even though the block around it is correctly sealed.
#[test]
fn bad_record_signature_is_signature() {
    let mut m = MemberLane::new();
    let seq = m.next_seq();
    let honest = record(&m.key, seq, normal(10));
    let mut forged = honest.clone();
    forged.signature = m.other.sign(&honest.digest());
    let bad = m.next(vec![forged.clone()]);
    let good = m.next(vec![honest.clone()]);
    assert_eq!(
        m.refuse_then_accept(&bad, &good),
        Reject::Signature {
            signer: m.key.address(),
            what: format!("record 0 (seq {seq})")
        }
    );
    let bad = m.next_private(vec![forged]);
    let good = m.next_private(vec![honest]);
    assert!(matches!(
        m.refuse_then_accept_private(&bad, &good),
        Reject::Signature { what, .. } if what.starts_with("record 0")
    ));
}

/// A record that reuses its author's last `seq`, or goes below it, is a replay; so is a
/// block that repeats a seq within itself.
#[test]
fn replayed_seq_is_replay() {
    let mut m = MemberLane::new();
    let last = m.lane.last_seq.unwrap();
    for seq in [last, last - 1, 0] {
        let bad = m.next(vec![record(&m.key, seq, normal(10))]);
        let mut lane = m.lane.clone();
        let err = lane.append(&bad).unwrap_err();
        assert_eq!(lane.head, m.lane.head);
        assert_eq!(
            err.reason,
            Reject::Replay {
                author: m.key.address(),
                seq,
                last
            }
        );
    }
    let seq = m.next_seq();
    let twice = m.next(vec![
        record(&m.key, seq, normal(10)),
        record(&m.key, seq, normal(11)),
    ]);
    let good = m.next(vec![record(&m.key, seq, normal(10))]);
    assert_eq!(
        m.refuse_then_accept(&twice, &good),
        Reject::Replay {
            author: m.key.address(),
            seq,
            last: seq
        }
    );
    // On the private chain, too.
    let last = m.private.last_seq.unwrap();
    let bad = m.next_private(vec![record(&m.key, last, normal(1))]);
    let seq = m.next_seq();
    let good = m.next_private(vec![record(&m.key, seq, normal(1))]);
    assert!(matches!(
        m.refuse_then_accept_private(&bad, &good),
        Reject::Replay { seq, last: l, .. } if seq == last && l == last
    ));
}

/// A header whose urgency bit does not match its records (cleared with an urgent record,
/// or set without one) is refused, even when correctly signed.
#[test]
fn urgency_bit_mismatch_is_urgency_bit() {
    let mut m = MemberLane::new();
    let seq = m.next_seq();
    for (records, records_urgent) in [
        (vec![record(&m.key, seq, urgent())], true),
        (vec![record(&m.key, seq, normal(5))], false),
    ] {
        let good = m.next(records);
        assert_eq!(good.header.urgent, records_urgent);
        let mut bad = good.clone();
        bad.header.urgent = !records_urgent;
        bad.signature = resign(&m.key, &bad);
        let mut lane = m.lane.clone();
        let err = lane.append(&bad).unwrap_err();
        assert_eq!(lane.head, m.lane.head);
        assert_eq!(
            err.reason,
            Reject::UrgencyBit {
                header: !records_urgent,
                records: records_urgent
            }
        );
        lane.append(&good).unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// Consortium 0's relay lane.
// ---------------------------------------------------------------------------------------

/// Everything a relay lane keeps, to check that a refusal changes none of it.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    head: Head,
    registry: Registry,
    elections: ElectionHistory,
    seqs: BTreeMap<Address, u64>,
    included: BTreeMap<Address, u64>,
    locator: Vec<LanePosition>,
}

fn snapshot(lane: &RelayLane) -> Snapshot {
    Snapshot {
        head: lane.head,
        registry: lane.registry.clone(),
        elections: lane.elections.clone(),
        seqs: lane.seqs.clone(),
        included: lane.included.clone(),
        locator: lane.locator(),
    }
}

/// Consortium 0's relay lane after a two-round sample ledger (an initial election with
/// included blocks, then a join), with the keys to extend it.
struct RelayFixture {
    federation: SampleFederation,
    lane: RelayLane,
    directory: Directory,
    /// The sample lane's blocks, in height order.
    history: Vec<RelayBlock>,
    /// Next seq per author; bumped on every use, so refused blocks only leave gaps.
    seqs: BTreeMap<Address, u64>,
    /// Next included height per member.
    heights: BTreeMap<Address, u64>,
}

impl RelayFixture {
    fn new() -> RelayFixture {
        let federation = federation();
        let ledger = federation.ledger(2);
        let mut history: Vec<RelayBlock> = Vec::new();
        for (_, block) in &ledger.appends {
            if let AnyBlock::Relay(r) = block {
                if r.header.lane == CONSORTIUM && !history.iter().any(|h| h == r) {
                    history.push(r.clone());
                }
            }
        }
        let mut directory = Directory::from_genesis(&federation.genesis);
        let mut lane = RelayLane::new(&federation.genesis, CONSORTIUM);
        for block in &history {
            lane.append(block, &mut directory).unwrap();
        }
        assert_eq!(lane.head.height, 2);
        assert_eq!(lane.elections.epoch, 1);
        let seqs = lane.seqs.clone();
        let heights = lane.included.clone();
        RelayFixture {
            federation,
            lane,
            directory,
            history,
            seqs,
            heights,
        }
    }

    fn key_of(&self, address: Address) -> Keypair {
        self.federation
            .member_by_address(&address)
            .unwrap()
            .key
            .clone()
    }

    fn relay(&self) -> Keypair {
        self.key_of(self.lane.elections.relay.unwrap())
    }

    fn backup(&self) -> Keypair {
        self.key_of(self.lane.elections.backup.unwrap())
    }

    fn members(&self) -> Vec<SampleMember> {
        self.federation.members_of(CONSORTIUM).cloned().collect()
    }

    fn next_seq(&mut self, author: Address) -> u64 {
        let seq = self.seqs.entry(author).or_insert(0);
        *seq += 1;
        *seq
    }

    fn record(&mut self, key: &Keypair, body: RecordBody) -> Record {
        let seq = self.next_seq(key.address());
        record(key, seq, body)
    }

    /// A new external consortium block by `member`, above everything included so far.
    fn member_block(&mut self, member: &Keypair, bodies: Vec<RecordBody>) -> ConsortiumBlock {
        let records = bodies
            .into_iter()
            .map(|body| self.record(member, body))
            .collect();
        let height = self.heights.entry(member.address()).or_insert(0);
        *height += 1;
        ConsortiumBlock::seal(
            member,
            CONSORTIUM,
            *height,
            Hash::of(Domain::ConsortiumHeader, &[&height.to_be_bytes()]),
            SAMPLE_EPOCH_MS + 5_000,
            records,
        )
    }

    /// The draft of the next block of the current epoch, empty.
    fn draft(&self) -> RelayDraft {
        RelayDraft {
            lane: CONSORTIUM,
            height: self.lane.head.height + 1,
            prev: self.lane.head.hash,
            epoch: self.lane.elections.epoch,
            time: SAMPLE_EPOCH_MS + 10_000,
            registry_root: self.lane.registry.root(),
            added: Vec::new(),
            lane_heads: Vec::new(),
            blocks: Vec::new(),
            records: Vec::new(),
        }
    }

    /// The election the supervisor would hold now for `reason`, unsigned.
    fn election(&self, reason: ElectionReason) -> ElectionRecord {
        let eligible: Vec<Address> = self
            .lane
            .registry
            .entries()
            .filter(|e| e.relay_capable)
            .map(|e| e.address)
            .collect();
        let head = LanePosition {
            height: self.lane.head.height,
            hash: self.lane.head.hash,
        };
        self.lane
            .elections
            .elect(
                reason,
                &eligible,
                self.federation.genesis.weight_fn,
                self.lane.head_epoch(),
                head,
            )
            .unwrap()
    }

    /// `election` as a record signed by `key` (the supervisor, unless testing otherwise).
    fn election_record(&mut self, key: &Keypair, election: ElectionRecord) -> Record {
        self.record(key, RecordBody::Election(election))
    }

    /// Appends `bad`, expecting a refusal that changes nothing; then appends `good`.
    fn refuse_then_accept(&mut self, bad: &RelayBlock, good: &RelayBlock) -> Reject {
        let before = snapshot(&self.lane);
        let err: BlockError = self.lane.append(bad, &mut self.directory).unwrap_err();
        assert_eq!(err.chain, ChainId::Relay(CONSORTIUM));
        assert_eq!(err.height, bad.header.height);
        assert_eq!(
            snapshot(&self.lane),
            before,
            "a refused block must change nothing"
        );
        self.lane.append(good, &mut self.directory).unwrap();
        assert_eq!(self.lane.head.height, before.head.height + 1);
        err.reason
    }
}

/// The fixture's lane extends with an empty block by the elected relay: the baseline every
/// other relay test departs from by one defect.
#[test]
fn relay_fixture_extends() {
    let mut f = RelayFixture::new();
    let block = f.draft().seal(&f.relay());
    f.lane.append(&block, &mut f.directory).unwrap();
    assert_eq!(f.lane.head.hash, block.hash());
    assert!(!f.history.is_empty());
}

/// Nine consortium blocks of ~120 KB, each within its own 1 Mbit capacity, make a relay
/// block over 8 Mbit (1,048,576 bytes): refused for capacity. Eight of them fit.
#[test]
fn oversized_relay_block_is_capacity() {
    let mut f = RelayFixture::new();
    let members = f.members();
    let blocks: Vec<ConsortiumBlock> = (0..9)
        .map(|i| {
            let key = members[i % members.len()].key.clone();
            f.member_block(&key, vec![normal(120_000)])
        })
        .collect();
    for block in &blocks {
        assert!(ieschain_core::codec::encoded_len(block) <= CONSORTIUM_CAPACITY as usize);
    }
    let mut draft = f.draft();
    draft.blocks = blocks.clone();
    let bad = draft.seal(&f.relay());
    let mut draft = f.draft();
    draft.blocks = blocks[..8].to_vec();
    let good = draft.seal(&f.relay());
    match f.refuse_then_accept(&bad, &good) {
        Reject::Capacity { size, capacity } => {
            assert_eq!(capacity, Capacities::RELAY_DEFAULT);
            assert!(size > Capacities::RELAY_DEFAULT as usize);
        }
        other => panic!("{other}"),
    }
    // The relay's own records count too.
    let relay = f.relay();
    let records: Vec<Record> = (0..9).map(|_| f.record(&relay, normal(120_000))).collect();
    let mut draft = f.draft();
    draft.records = records;
    let bad = draft.seal(&relay);
    let good = f.draft().seal(&relay);
    assert!(matches!(
        f.refuse_then_accept(&bad, &good),
        Reject::Capacity { .. }
    ));
}

/// A relay block at the wrong height, or not linked to the head, is refused.
#[test]
fn relay_block_wrong_height_or_prev() {
    let mut f = RelayFixture::new();
    let mut draft = f.draft();
    draft.height += 1;
    let bad = draft.seal(&f.relay());
    let good = f.draft().seal(&f.relay());
    assert_eq!(
        f.refuse_then_accept(&bad, &good),
        Reject::Height {
            expected: 3,
            got: 4
        }
    );
    let mut draft = f.draft();
    let stale_head = f.history[1].hash();
    draft.prev = stale_head;
    let bad = draft.seal(&f.relay());
    let good = f.draft().seal(&f.relay());
    let expected = f.lane.head.hash;
    assert_eq!(
        f.refuse_then_accept(&bad, &good),
        Reject::Prev {
            expected,
            got: stale_head
        }
    );
}

/// A relay header signature that does not verify, a relay record signed by the wrong key,
/// and an included block's record signed by the wrong key are each a bad signature naming
/// the signer.
#[test]
fn relay_block_bad_signatures() {
    let mut f = RelayFixture::new();
    let relay = f.relay();
    // The header.
    let good = f.draft().seal(&relay);
    let mut bad = good.clone();
    bad.signature = resign(&f.backup(), &good);
    assert_eq!(
        f.refuse_then_accept(&bad, &good),
        Reject::Signature {
            signer: relay.address(),
            what: "header".into()
        }
    );
    // The relay's own record.
    let honest = f.record(
        &relay,
        RecordBody::GridReceipt {
            trade: Hash::ZERO,
            approved: true,
            reason: String::new(),
        },
    );
    let mut forged = honest.clone();
    forged.signature = f.backup().sign(&honest.digest());
    let mut draft = f.draft();
    draft.records = vec![forged];
    let bad = draft.seal(&relay);
    let mut draft = f.draft();
    draft.records = vec![honest];
    let good = draft.seal(&relay);
    assert!(matches!(
        f.refuse_then_accept(&bad, &good),
        Reject::Signature { signer, what } if signer == relay.address() && what.starts_with("record 0")
    ));
    // A record inside an included consortium block.
    let member = f.members()[2].key.clone();
    let honest_block = f.member_block(&member, vec![urgent()]);
    let mut records = honest_block.records.clone();
    records[0].signature = relay.sign(&records[0].digest());
    let forged_block = ConsortiumBlock::seal(
        &member,
        CONSORTIUM,
        honest_block.header.height,
        honest_block.header.prev,
        honest_block.header.time,
        records,
    );
    let mut draft = f.draft();
    draft.blocks = vec![forged_block];
    let bad = draft.seal(&relay);
    let mut draft = f.draft();
    draft.blocks = vec![honest_block];
    let good = draft.seal(&relay);
    assert!(matches!(
        f.refuse_then_accept(&bad, &good),
        Reject::Signature { signer, .. } if signer == member.address()
    ));
}

/// A relay's own record that reuses (or goes below) a seq the lane has seen from its author
/// is a replay; so is an included block whose record replays a seq.
#[test]
fn relay_block_replayed_seq() {
    let mut f = RelayFixture::new();
    let relay = f.relay();
    for back in [0, 1] {
        let last = f.lane.seqs[&relay.address()];
        let seq = last - back;
        let mut draft = f.draft();
        draft.records = vec![record(&relay, seq, normal(3))];
        let bad = draft.seal(&relay);
        let mut draft = f.draft();
        draft.records = vec![f.record(&relay, normal(3))];
        let good = draft.seal(&relay);
        assert_eq!(
            f.refuse_then_accept(&bad, &good),
            Reject::Replay {
                author: relay.address(),
                seq,
                last
            }
        );
    }
    // An included block whose record reuses a seq already seen in the lane.
    let member = f.members()[3].key.clone();
    let last = f.lane.seqs[&member.address()];
    let height = f.lane.included[&member.address()] + 1;
    let replaying = ConsortiumBlock::seal(
        &member,
        CONSORTIUM,
        height,
        Hash::ZERO,
        SAMPLE_EPOCH_MS,
        vec![record(&member, last, urgent())],
    );
    let mut draft = f.draft();
    draft.blocks = vec![replaying];
    let bad = draft.seal(&relay);
    let good = f.draft().seal(&relay);
    match f.refuse_then_accept(&bad, &good) {
        Reject::Included { index: 0, reason } => assert_eq!(
            *reason,
            Reject::Replay {
                author: member.address(),
                seq: last,
                last
            }
        ),
        other => panic!("{other}"),
    }
}

/// An included consortium block whose urgency bit lies about its records is refused, even
/// inside a correctly signed relay block.
#[test]
fn included_block_urgency_bit_mismatch() {
    let mut f = RelayFixture::new();
    let member = f.members()[0].key.clone();
    let honest = f.member_block(&member, vec![urgent()]);
    let mut lying = honest.clone();
    lying.header.urgent = false;
    lying.signature = resign(&member, &lying);
    let relay = f.relay();
    let mut draft = f.draft();
    draft.blocks = vec![lying];
    let bad = draft.seal(&relay);
    let mut draft = f.draft();
    draft.blocks = vec![honest];
    let good = draft.seal(&relay);
    match f.refuse_then_accept(&bad, &good) {
        Reject::Included { index: 0, reason } => assert_eq!(
            *reason,
            Reject::UrgencyBit {
                header: false,
                records: true
            }
        ),
        other => panic!("{other}"),
    }
}

/// The urgency vector must have one bit per included block, each equal to that block's
/// urgency bit, packed exactly: a flipped bit, a wrong length and a stray high bit are each
/// refused, even when the relay signs them.
#[test]
fn urgency_vector_mismatch_is_urgency_vector() {
    let mut f = RelayFixture::new();
    let members = f.members();
    let relay = f.relay();
    let blocks = vec![
        f.member_block(&members[0].key, vec![urgent()]),
        f.member_block(&members[1].key, vec![normal(10)]),
        f.member_block(&members[2].key, vec![normal(10), urgent()]),
    ];
    let mut draft = f.draft();
    draft.blocks = blocks;
    let good = draft.seal(&relay);
    assert_eq!(
        good.header.urgency,
        UrgencyBits::from_bits([true, false, true])
    );
    let tampered = [
        UrgencyBits::from_bits([true, true, true]),
        UrgencyBits::from_bits([false, false, true]),
        UrgencyBits::from_bits([true, false]),
        UrgencyBits::from_bits([true, false, true, false]),
        UrgencyBits {
            len: 3,
            bytes: vec![0b1000_0101],
        },
        UrgencyBits {
            len: 3,
            bytes: vec![0b101, 0],
        },
    ];
    for urgency in tampered {
        let mut bad = good.clone();
        bad.header.urgency = urgency.clone();
        bad.signature = resign(&relay, &bad);
        let mut lane = f.lane.clone();
        let err = lane.append(&bad, &mut f.directory.clone()).unwrap_err();
        assert!(
            matches!(err.reason, Reject::UrgencyVector(_)),
            "{urgency:?}: {err}"
        );
        assert_eq!(snapshot(&lane), snapshot(&f.lane));
    }
    f.lane.append(&good, &mut f.directory).unwrap();
}

/// A registry root that is not the root of the registry after the block's additions is
/// refused, naming both roots.
#[test]
fn registry_root_mismatch_is_registry_root() {
    let mut f = RelayFixture::new();
    let relay = f.relay();
    let expected = f.lane.registry.root();
    let wrong = Hash::of(Domain::RegistryEntry, &[b"forged root"]);
    let mut draft = f.draft();
    draft.registry_root = wrong;
    let bad = draft.seal(&relay);
    let good = f.draft().seal(&relay);
    assert_eq!(
        f.refuse_then_accept(&bad, &good),
        Reject::RegistryRoot {
            expected,
            got: wrong
        }
    );
    // An addition whose root was not updated.
    let key = Keypair::derive(Domain::NodeKey, 21, "source-newcomer");
    let entry = RegistryEntry {
        address: key.address(),
        public_key: key.public(),
        name: "source-newcomer".into(),
        role: ieschain_core::record::Role::User,
        relay_capable: false,
    };
    let mut draft = f.draft();
    draft.added = vec![entry.clone()];
    let bad = draft.seal(&relay);
    let mut registry = f.lane.registry.clone();
    registry.add(entry.clone()).unwrap();
    let mut draft = f.draft();
    draft.added = vec![entry];
    draft.registry_root = registry.root();
    let good = draft.seal(&relay);
    assert!(matches!(
        f.refuse_then_accept(&bad, &good),
        Reject::RegistryRoot { .. }
    ));
    assert_eq!(f.lane.registry, registry);
}

/// Adding a member that is already registered (a repeated join, here the member that
/// joined at height 2) is refused with the registry's own error; so are an address that
/// is not its key's and a small-order key.
#[test]
fn duplicate_registry_addition_is_registry() {
    let mut f = RelayFixture::new();
    let relay = f.relay();
    let joined = f.history[1].header.registry.added[0].clone();
    let mut draft = f.draft();
    draft.added = vec![joined.clone()];
    let bad = draft.seal(&relay);
    let good = f.draft().seal(&relay);
    assert_eq!(
        f.refuse_then_accept(&bad, &good),
        Reject::Registry(RegistryError::DuplicateKey(joined.address))
    );
    // A genesis member, too.
    let genesis_member = f.members()[0].entry.clone();
    let mut draft = f.draft();
    draft.added = vec![genesis_member.clone()];
    let bad = draft.seal(&relay);
    let good = f.draft().seal(&relay);
    assert_eq!(
        f.refuse_then_accept(&bad, &good),
        Reject::Registry(RegistryError::DuplicateKey(genesis_member.address))
    );
    // An address that is not the key's.
    let key = Keypair::derive(Domain::NodeKey, 21, "impostor");
    let mut impostor = joined.clone();
    impostor.public_key = key.public();
    impostor.name = "impostor".into();
    impostor.address = Address([0xee; 20]);
    let mut draft = f.draft();
    draft.added = vec![impostor];
    let bad = draft.seal(&relay);
    let good = f.draft().seal(&relay);
    assert_eq!(
        f.refuse_then_accept(&bad, &good),
        Reject::Registry(RegistryError::AddressMismatch(Address([0xee; 20])))
    );
    // A small-order key (the identity point), with its own address.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let weak_key = ieschain_core::PublicKey(identity);
    let weak = RegistryEntry {
        address: weak_key.address(),
        public_key: weak_key,
        name: "weak".into(),
        role: ieschain_core::record::Role::User,
        relay_capable: false,
    };
    let mut draft = f.draft();
    draft.added = vec![weak.clone()];
    let bad = draft.seal(&relay);
    let good = f.draft().seal(&relay);
    assert_eq!(
        f.refuse_then_accept(&bad, &good),
        Reject::Registry(RegistryError::WeakKey(weak.address))
    );
}

/// Fencing (SPEC §5, §12 D3): after a rotation opens epoch 2, a block by the deposed relay
/// in epoch 1 is refused as stale, while the new relay's block is accepted.
#[test]
fn deposed_relay_after_election_is_stale_epoch() {
    let mut f = RelayFixture::new();
    let old_relay = f.relay();
    let supervisor = f.federation.supervisor.clone();
    let election = f.election(ElectionReason::Rotation);
    assert_eq!(election.epoch, 2);
    assert_eq!(Some(election.relay), f.lane.elections.backup);
    let new_relay = f.key_of(election.relay);
    let record = f.election_record(&supervisor, election);
    let mut draft = f.draft();
    draft.epoch = 2;
    draft.records = vec![record];
    let opening = draft.seal(&new_relay);
    // Before the election block is known, the deposed relay's block at that same height
    // is still taken: fencing starts at the election block (D3: its prev is the cut-off),
    // and the seals (SPEC §14) are what keep a deposed relay from releasing it.
    let racing = f.draft().seal(&old_relay);
    f.lane
        .clone()
        .append(&racing, &mut f.directory.clone())
        .unwrap();
    f.lane.append(&opening, &mut f.directory).unwrap();
    assert_eq!(f.lane.elections.epoch, 2);

    let stale = f.draft();
    let mut stale = RelayDraft { epoch: 1, ..stale };
    stale.time += 1;
    let bad = stale.seal(&old_relay);
    let good = f.draft().seal(&new_relay);
    assert_eq!(
        f.refuse_then_accept(&bad, &good),
        Reject::StaleEpoch { got: 1, current: 2 }
    );
    // Still stale later on, and by the new relay too if it used the old epoch.
    let bad = RelayDraft {
        epoch: 1,
        ..f.draft()
    }
    .seal(&new_relay);
    let good = f.draft().seal(&new_relay);
    assert_eq!(
        f.refuse_then_accept(&bad, &good),
        Reject::StaleEpoch { got: 1, current: 2 }
    );
    // A block claiming an epoch no election has opened is refused as well.
    let bad = RelayDraft {
        epoch: 3,
        ..f.draft()
    }
    .seal(&new_relay);
    let good = f.draft().seal(&new_relay);
    assert_eq!(
        f.refuse_then_accept(&bad, &good),
        Reject::FutureEpoch { got: 3, current: 2 }
    );
}

/// A block of the current epoch by a registered member who is not the elected relay (here
/// the backup) is refused, naming the elected relay.
#[test]
fn block_by_someone_else_is_not_elected() {
    let mut f = RelayFixture::new();
    let relay = f.relay();
    let backup = f.backup();
    let bad = f.draft().seal(&backup);
    let good = f.draft().seal(&relay);
    assert_eq!(
        f.refuse_then_accept(&bad, &good),
        Reject::NotElected {
            got: backup.address(),
            elected: relay.address()
        }
    );
    // An ordinary (not relay-capable) member, too.
    let user = f
        .members()
        .into_iter()
        .find(|m| !m.entry.relay_capable)
        .unwrap();
    let bad = f.draft().seal(&user.key);
    let good = f.draft().seal(&relay);
    assert!(matches!(
        f.refuse_then_accept(&bad, &good),
        Reject::NotElected { got, .. } if got == user.key.address()
    ));
}

/// A relay block on a lane that has had no election yet is refused.
#[test]
fn relay_block_before_any_election_is_no_election() {
    let f = RelayFixture::new();
    let mut lane = RelayLane::new(&f.federation.genesis, CONSORTIUM);
    let mut directory = Directory::from_genesis(&f.federation.genesis);
    let block = RelayDraft {
        height: 1,
        prev: Hash::ZERO,
        epoch: 0,
        registry_root: lane.registry.root(),
        ..f.draft()
    }
    .seal(&f.relay());
    let err = lane.append(&block, &mut directory).unwrap_err();
    assert_eq!(err.reason, Reject::NoElection);
    assert_eq!(lane.head, Head::default());
    // The sample's first block, which carries the initial election, is then accepted.
    lane.append(&f.history[0], &mut directory).unwrap();
}

/// An election record that is not authored by the supervisor (here by the sitting relay,
/// validly signed by it) is refused before it is even recomputed.
#[test]
fn election_not_by_supervisor_is_election_signer() {
    let mut f = RelayFixture::new();
    let relay = f.relay();
    let election = f.election(ElectionReason::Rotation);
    let new_relay = f.key_of(election.relay);
    let forged = f.election_record(&relay, election.clone());
    let mut draft = f.draft();
    draft.epoch = 2;
    draft.records = vec![forged];
    let bad = draft.seal(&new_relay);
    let supervisor = f.federation.supervisor.clone();
    let honest = f.election_record(&supervisor, election);
    let mut draft = f.draft();
    draft.epoch = 2;
    draft.records = vec![honest];
    let good = draft.seal(&new_relay);
    assert_eq!(
        f.refuse_then_accept(&bad, &good),
        Reject::ElectionSigner(relay.address())
    );
    assert_eq!(f.lane.elections.epoch, 2);
    // A record claiming the supervisor as author but signed by the relay is a bad signature.
    let election = f.election(ElectionReason::BackupLost);
    let content = RecordContent {
        author: supervisor.address(),
        seq: f.next_seq(supervisor.address()),
        created_at: SAMPLE_EPOCH_MS,
        audience: Audience::Everyone,
        body: RecordBody::Election(election),
    };
    // Every election starts a new epoch (SPEC §14), a lost backup's too.
    let mut draft = f.draft();
    draft.epoch = 3;
    draft.records = vec![content.clone().sign(&relay)];
    let bad = draft.seal(&new_relay);
    let mut draft = f.draft();
    draft.epoch = 3;
    draft.records = vec![content.sign(&supervisor)];
    let good = draft.seal(&new_relay);
    assert!(matches!(
        f.refuse_then_accept(&bad, &good),
        Reject::Signature { signer, .. } if signer == supervisor.address()
    ));
}

/// Election records signed by the supervisor but not recomputable from the chain are
/// refused with the election error: relay and backup swapped, a wrong seed, inflated
/// failure statistics, a wrong epoch, or a lane head that is not on the lane.
#[test]
fn tampered_election_is_election() {
    let mut f = RelayFixture::new();
    let supervisor = f.federation.supervisor.clone();
    let honest = f.election(ElectionReason::Rotation);
    let new_relay = f.key_of(honest.relay);

    let mut swapped = honest.clone();
    let backup = swapped.backup.unwrap();
    swapped.backup = Some(swapped.relay);
    swapped.relay = backup;
    let mut reseeded = honest.clone();
    reseeded.seed = Hash::of(Domain::ElectionSeed, &[b"chosen by the relay"]);
    let mut inflated = honest.clone();
    inflated.candidates[0].failures += 1;
    let mut late = honest.clone();
    late.epoch += 1;
    let mut elsewhere = honest.clone();
    elsewhere.lane_head = LanePosition {
        height: 2,
        hash: Hash::of(Domain::RelayHeader, &[b"another lane"]),
    };

    type Expect = fn(&ElectionError) -> bool;
    let cases: Vec<(ElectionRecord, Expect)> = vec![
        (swapped, |e| matches!(e, ElectionError::Draw { .. })),
        (reseeded, |e| *e == ElectionError::Seed),
        (inflated, |e| matches!(e, ElectionError::Stats { .. })),
        (late, |e| matches!(e, ElectionError::Epoch { .. })),
        (elsewhere, |e| *e == ElectionError::LaneHead(2)),
    ];
    for (tampered, expected) in cases {
        let epoch = tampered.epoch;
        let producer = f.key_of(tampered.relay);
        let record = f.election_record(&supervisor, tampered);
        let bad = RelayDraft {
            epoch,
            records: vec![record],
            ..f.draft()
        }
        .seal(&producer);
        let before = snapshot(&f.lane);
        let err = f.lane.append(&bad, &mut f.directory).unwrap_err();
        assert_eq!(snapshot(&f.lane), before);
        match &err.reason {
            Reject::Election(e) => assert!(expected(e), "{e}"),
            other => panic!("{other}"),
        }
    }
    let record = f.election_record(&supervisor, honest);
    let good = RelayDraft {
        epoch: 2,
        records: vec![record],
        ..f.draft()
    }
    .seal(&new_relay);
    f.lane.append(&good, &mut f.directory).unwrap();
    assert_eq!(f.lane.elections.relay, Some(new_relay.address()));
}

/// A consortium block already included (by an earlier relay block, or earlier in the same
/// block) is refused as a duplicate inclusion (SPEC §9 S3: exactly once).
#[test]
fn consortium_block_included_twice_is_duplicate_inclusion() {
    let mut f = RelayFixture::new();
    let relay = f.relay();
    let earlier = f.history[0].blocks[0].clone();
    let author = earlier.header.author;
    let last = f.lane.included[&author];
    let mut draft = f.draft();
    draft.blocks = vec![earlier.clone()];
    let bad = draft.seal(&relay);
    let good = f.draft().seal(&relay);
    match f.refuse_then_accept(&bad, &good) {
        Reject::Included { index: 0, reason } => assert_eq!(
            *reason,
            Reject::DuplicateInclusion {
                author,
                height: earlier.header.height,
                last
            }
        ),
        other => panic!("{other}"),
    }
    // The same new block twice in one relay block.
    let member = f.members()[1].key.clone();
    let fresh = f.member_block(&member, vec![normal(20)]);
    let mut draft = f.draft();
    draft.blocks = vec![fresh.clone(), fresh.clone()];
    let bad = draft.seal(&relay);
    let mut draft = f.draft();
    draft.blocks = vec![fresh.clone()];
    let good = draft.seal(&relay);
    match f.refuse_then_accept(&bad, &good) {
        Reject::Included { index: 1, reason } => assert!(matches!(
            *reason,
            Reject::DuplicateInclusion { height, last, .. }
                if height == fresh.header.height && last == fresh.header.height
        )),
        other => panic!("{other}"),
    }
    // And again in a later relay block, now that it is included.
    let mut draft = f.draft();
    draft.blocks = vec![fresh];
    let bad = draft.seal(&relay);
    let good = f.draft().seal(&relay);
    assert!(matches!(
        f.refuse_then_accept(&bad, &good),
        Reject::Included { index: 0, reason } if matches!(*reason, Reject::DuplicateInclusion { .. })
    ));
}

/// `LaneState` dispatches by kind: a block of the wrong kind or another chain is refused as
/// belonging elsewhere, and leaves the head.
#[test]
fn block_for_another_chain_is_wrong_chain() {
    let f = RelayFixture::new();
    let m = MemberLane::new();
    let mut directory = f.directory.clone();
    let mut state = LaneState::Relay(Box::new(f.lane.clone()));
    let block: AnyBlock = m.next(vec![]).into();
    let err = state.append(&block, &mut directory).unwrap_err();
    assert!(matches!(err.reason, Reject::WrongChain { .. }));
    assert_eq!(state.head(), f.lane.head);
    let other_lane = RelayDraft {
        lane: ConsortiumId(1),
        ..f.draft()
    }
    .seal(&f.relay());
    let err = state
        .append(&other_lane.into(), &mut directory)
        .unwrap_err();
    assert_eq!(
        err.reason,
        Reject::WrongChain {
            expected: ChainId::Relay(CONSORTIUM),
            got: ChainId::Relay(ConsortiumId(1))
        }
    );
    assert_eq!(state.head(), f.lane.head);
}

/// SPEC §14's conditions on a config block: each election record it carries names as its
/// source the epoch of the lane block just below (the last active configuration's), else
/// the block is refused and changes nothing; and an election may draw on any block of the
/// lane at or below that one, however far below (an election of a lane whose source stayed
/// down while many later blocks were written elsewhere is not bound to a window).
#[test]
fn config_block_names_its_source_and_any_lane_head_below() {
    let mut f = RelayFixture::new();
    let supervisor = f.federation.supervisor.clone();
    let below = f.lane.head_epoch();
    let honest = f.election(ElectionReason::Rotation);
    assert_eq!(honest.source, below);
    let new_relay = f.key_of(honest.relay);
    let mut wrong = honest.clone();
    wrong.source = below + 1;
    let record = f.election_record(&supervisor, wrong);
    let bad = RelayDraft {
        epoch: honest.epoch,
        records: vec![record],
        ..f.draft()
    }
    .seal(&new_relay);
    let before = snapshot(&f.lane);
    let err = f.lane.append(&bad, &mut f.directory).unwrap_err();
    assert_eq!(snapshot(&f.lane), before);
    assert_eq!(
        err.reason,
        Reject::ElectionSource {
            epoch: honest.epoch,
            named: below + 1,
            below,
        }
    );
    // The lane's first block as the lane head: far below the head, and accepted.
    let first = f.lane.position(1).expect("the lane has a first block").0;
    let mut deep = honest.clone();
    deep.lane_head = LanePosition {
        height: 1,
        hash: first,
    };
    deep.seed = ieschain_core::election::election_seed(
        deep.consortium,
        deep.epoch,
        &deep.prev_election,
        &first,
    );
    // The draw follows the seed: recompute it as the supervisor would.
    let drawn = ieschain_core::election::draw(
        &deep.candidates,
        deep.weight_fn,
        &deep.seed,
        Some(honest.relay),
    )
    .unwrap();
    deep.backup = drawn.backup;
    let record = f.election_record(&supervisor, deep);
    let good = RelayDraft {
        epoch: honest.epoch,
        records: vec![record],
        ..f.draft()
    }
    .seal(&new_relay);
    f.lane.append(&good, &mut f.directory).unwrap();
    assert_eq!(f.lane.elections.epoch, honest.epoch);
}

/// Two copies of one lane share heights 1..=4 and then differ (a deposed relay's own
/// blocks 5..=7 against its successor's 5..=9). The sparse locator of the shorter copy
/// (7, 6, 5, 3) finds only height 3 in common; pinned at its released height 4, it finds
/// 4, so the answer never asks it to drop a block it knows released (campaign seed
/// 580882); dense at the top, it finds 4 with no pin.
#[test]
fn a_pinned_locator_finds_the_released_block_in_common() {
    let mut f = RelayFixture::new();
    let relay = f.relay();
    while f.lane.head.height < 4 {
        let block = f.draft().seal(&relay);
        f.lane.append(&block, &mut f.directory).unwrap();
    }
    let mut theirs = f.lane.clone();
    let mut their_directory = f.directory.clone();
    let mut ours = f.lane.clone();
    let mut our_directory = f.directory.clone();
    for (lane, directory, top, time) in [
        (&mut ours, &mut our_directory, 7, 1),
        (&mut theirs, &mut their_directory, 9, 2),
    ] {
        while lane.head.height < top {
            let mut draft = f.draft();
            draft.height = lane.head.height + 1;
            draft.prev = lane.head.hash;
            draft.time += time;
            lane.append(&draft.seal(&relay), directory).unwrap();
        }
    }
    let heights = |l: &[LanePosition]| l.iter().map(|p| p.height).collect::<Vec<_>>();
    assert_eq!(heights(&ours.locator()), vec![7, 6, 5, 3]);
    assert_eq!(theirs.common(&ours.locator()), 3);
    let pinned = ours.locator_with(2, 4);
    assert_eq!(heights(&pinned), vec![7, 6, 5, 4, 3]);
    assert_eq!(theirs.common(&pinned), 4);
    // Pinning a height already named, or one the copy lacks, changes nothing.
    assert_eq!(ours.locator_with(2, 5), ours.locator());
    assert_eq!(ours.locator_with(2, 8), ours.locator());
    assert_eq!(ours.locator_with(2, 0), ours.locator());
    // Dense at the top: the exact common block without a pin (after a restart).
    let dense = ours.locator_with(4, 0);
    assert_eq!(heights(&dense), vec![7, 6, 5, 4, 3, 1]);
    assert_eq!(theirs.common(&dense), 4);
}

/// Issue 12, "check once per node": a relay lane told which consortium blocks this node
/// already validated in full ([`Known::accepted`]) does not check those again, and only
/// when the included block is identical to the kept one. A block with the same author,
/// height and header (so the same hash) but another signature, or the same header and
/// signature but other records, is checked in full and refused. The producer's
/// `sealed_here` spares its own header signature only, never an included block.
#[test]
fn an_accepted_block_is_skipped_only_when_identical() {
    use ieschain_core::tally::{Step, Tally};
    use ieschain_core::validate::{AcceptedBlocks, Known};
    struct Kept(ConsortiumBlock);
    impl AcceptedBlocks for Kept {
        fn accepted(&self, author: &Address, height: u64) -> Option<&ConsortiumBlock> {
            (self.0.header.author == *author && self.0.header.height == height).then_some(&self.0)
        }
    }
    let mut f = RelayFixture::new();
    let relay = f.relay();
    let member = f.members()[2].key.clone();
    let honest = f.member_block(&member, vec![urgent(), normal(40)]);
    let kept = Kept(honest.clone());
    let known = Known {
        sealed_here: false,
        accepted: Some(&kept),
    };

    // Same header, hence same hash and height, signed by another key.
    let mut other_signature = honest.clone();
    other_signature.signature = relay.sign(&honest.hash());
    // Same header and signature, one record swapped for another valid one of the member.
    let mut other_records = honest.clone();
    other_records.records[1] = f.record(&member, normal(41));
    for (bad_inner, what, header_signature) in [
        (other_signature, "another signature", true),
        (other_records, "other records", false),
    ] {
        let mut draft = f.draft();
        draft.blocks = vec![bad_inner];
        let bad = draft.seal(&relay);
        let before = snapshot(&f.lane);
        let err = f
            .lane
            .append_known(&bad, &mut f.directory, known)
            .unwrap_err();
        // Another signature fails as the member's header signature (signatures are checked
        // together at the end, so a bad one names its signer); other records fail the
        // records root first.
        match err.reason {
            Reject::Included { index: 0, reason } if !header_signature => {
                assert_eq!(*reason, Reject::RecordsRoot, "{what}")
            }
            Reject::Signature { signer, what: part } if header_signature => {
                assert_eq!(signer, member.address(), "{what}");
                assert_eq!(part, "header", "{what}");
            }
            other => panic!("{what}: {other}"),
        }
        assert_eq!(snapshot(&f.lane), before);
    }

    // The producer's own block does not spare an included block it never checked.
    let mut forged = honest.clone();
    forged.signature = relay.sign(&honest.hash());
    let mut draft = f.draft();
    draft.blocks = vec![forged];
    let bad = draft.seal(&relay);
    let sealed_here = Known {
        sealed_here: true,
        accepted: None,
    };
    let err = f
        .lane
        .append_known(&bad, &mut f.directory, sealed_here)
        .unwrap_err();
    match err.reason {
        Reject::Signature { signer, what } => {
            assert_eq!(signer, member.address());
            assert_eq!(what, "header");
        }
        other => panic!("the forged included block: {other}"),
    }

    // The identical block: accepted with no check of its header or its records.
    let mut draft = f.draft();
    draft.blocks = vec![honest.clone()];
    let good = draft.seal(&relay);
    let mut unknown_lane = f.lane.clone();
    let mut unknown_directory = f.directory.clone();
    let tally = Tally::start();
    f.lane.append_known(&good, &mut f.directory, known).unwrap();
    let counts = tally.finish();
    assert_eq!(counts.of(Step::Check, &honest.hash()), 0);
    for record in &honest.records {
        assert_eq!(counts.of(Step::Check, &record.digest()), 0);
    }
    assert_eq!(
        counts.of(Step::Check, &good.hash()),
        1,
        "the relay's header is checked"
    );
    // Without the memo the same block is checked in full, once per signature.
    let tally = Tally::start();
    unknown_lane
        .append_known(&good, &mut unknown_directory, Known::default())
        .unwrap();
    let counts = tally.finish();
    assert_eq!(counts.of(Step::Check, &honest.hash()), 1);
    for record in &honest.records {
        assert_eq!(counts.of(Step::Check, &record.digest()), 1);
    }
    assert_eq!(unknown_lane.head, f.lane.head);
}

/// A member's own block, sealed from records it signed, appends without its signatures or
/// records root checked again; the chain rules still hold (a replayed seq is refused).
#[test]
fn a_block_sealed_here_keeps_the_chain_rules() {
    use ieschain_core::tally::{Step, Tally};
    let mut m = MemberLane::new();
    let seq = m.next_seq();
    let block = m.next(vec![record(&m.key, seq, urgent())]);
    let tally = Tally::start();
    m.lane.append_sealed_here(&block).unwrap();
    let counts = tally.finish();
    assert_eq!(counts.of(Step::Check, &block.hash()), 0);
    assert_eq!(counts.of(Step::RecordDigest, &block.records[0].digest()), 0);
    let replay = m.next(vec![record(&m.key, seq, urgent())]);
    assert!(matches!(
        m.lane.append_sealed_here(&replay).unwrap_err().reason,
        Reject::Replay { .. }
    ));
}
