//! Every actix message of the federation, in one catalogue (STYLE: "one message
//! catalogue"). Each says who sends it to whom and when. Messages *between nodes* are not
//! here: nodes exchange only signed [`Envelope`]s of `ieschain_core::message::Message`
//! through the transport; these are the transport's delivery and the host's requests.

use actix::Message;
use ieschain_core::message::Envelope;
use ieschain_core::record::VerifiedRecord;
use ieschain_core::registry::RegistryEntry;
use ieschain_core::{Audience, Hash, RecordBody, Signature};

use crate::ActorError;

/// transport → node: an envelope addressed to it.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Deliver(pub Envelope);

/// host → member node: write a record as this member. Answers with the record's seq once
/// it is in the member's open block (not yet acknowledged: watch the events for that).
#[derive(Debug, Message)]
#[rtype(result = "Result<u64, ActorError>")]
pub struct Write {
    /// Who the record is for.
    pub audience: Audience,
    /// What it says.
    pub body: RecordBody,
}

/// host → member node: write a record this member signed before submission, whose
/// signature the host's handle checked once on entry (SPEC §12 D8: signing is the
/// client's work). Answers with its seq, or refuses a replayed seq.
#[derive(Debug, Message)]
#[rtype(result = "Result<u64, ActorError>")]
pub struct WriteSigned(pub VerifiedRecord);

/// host → member node: start or take part in a protocol of SPEC §6. Answers with the
/// run's id (the offer's digest) where the step starts a run; the outcome comes as events.
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<Hash>, ActorError>")]
pub enum Protocol {
    /// Power purchase step 1, as a source member.
    OfferPower {
        /// Energy offered, Wh.
        wh: u64,
        /// Price per kWh.
        price_per_kwh: u64,
        /// Delivery slot.
        slot: u64,
    },
    /// Power purchase step 4, as a load member: bid on `offer` once it is seen.
    BidPower {
        /// The offer's digest.
        offer: Hash,
        /// Energy wanted, Wh.
        wh: u64,
    },
    /// Data trade step 1, as a load member; `data` defaults to its quarter's consumption.
    OfferData {
        /// What the data is.
        description: String,
        /// Asking price.
        price: u64,
        /// The data, if not the consumption data.
        data: Option<Vec<u8>>,
    },
    /// Data trade step 5, as a service member: buy `offer` once it is seen.
    BuyData {
        /// The offer's digest.
        offer: Hash,
    },
    /// Join step 1, as a newcomer.
    Join {
        /// The newcomer's entry.
        entry: RegistryEntry,
        /// The admission credential.
        credential: Signature,
    },
    /// A faulty seller: deliver `data` for `offer` instead of what was offered (tests).
    TamperData {
        /// The offer.
        offer: Hash,
        /// The bytes to deliver.
        data: Vec<u8>,
    },
}

/// host → node: stop now, as a crash: no flush, no goodbye; the node's memory is gone.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Crash;

/// host → node: what the node is doing, for status displays and tests.
#[derive(Debug, Message)]
#[rtype(result = "NodeStatus")]
pub struct Status;

/// A node's answer to [`Status`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    /// Whether it serves as relay.
    pub relay: bool,
    /// Whether it serves as backup.
    pub backup: bool,
    /// Its own consortium lane's height.
    pub lane_height: u64,
    /// Blocks submitted and not yet acknowledged.
    pub unacked: usize,
    /// Its restart count.
    pub incarnation: u32,
    /// The seq of the last record it wrote: a record signed for it takes a higher one.
    pub last_seq: u64,
}
