//! Records: the unit of business data (SPEC §4.2), and the closed list of their kinds.
//!
//! A record is signed by its author over the domain-separated digest of its content. The
//! per-author `seq` is strictly increasing; a second record with an old `seq` is a replay.
//!
//! # The kinds (SPEC §12 D6)
//!
//! | kind | author | chains | audience | urgency |
//! |---|---|---|---|---|
//! | `EnergySupply` | source or grid member | own lane, relay chain | consortiums | urgent |
//! | `EquipmentMaintenance` | service member | own lane | own consortium or buyer | normal |
//! | `EfficiencyAudit` | service member | own lane | own consortium or buyer | normal |
//! | `EnergySavingDesign` | service member | own lane | own consortium or buyer | normal |
//! | `DataTrade` (data offer) | any member | own lane, relay chain | consortiums | normal |
//! | `DistributedEnergy` | any member with generation | own lane, relay chain | consortiums | urgent |
//! | `MeterReading` | any member | private chain | own | normal |
//! | `JoinAnnouncement` | relay | relay lane, consortium lane | own consortium | normal |
//! | `JoinApplication` | newcomer | newcomer's lane | own consortium | normal |
//! | `JoinReceipt` | member | own lane | newcomer | normal |
//! | `PowerOffer` | source member | own lane, relay chain | load consortium | urgent |
//! | `PowerBid` | load member | own lane, relay chain | seller | urgent |
//! | `TradeAgreement` | seller | own lane, relay chain | grid consortium | urgent |
//! | `GridVote` | grid member | own lane | grid consortium | urgent |
//! | `GridReceipt` | grid relay | relay lane | seller and buyer | urgent |
//! | `PowerSettlement` | seller, countersigned by buyer | relay chain | everyone | urgent |
//! | `DataPurchase` | service member | own lane, relay chain | seller | normal |
//! | `DataAgreement` | seller | own lane, relay chain | everyone | normal |
//! | `DataDispute` | buyer | own lane, relay chain | everyone | normal |
//! | `Election` | supervisor | relay lane, relay's consortium lane | everyone | urgent |
//! | `Activation` | supervisor | the supervisor's private chain | own | urgent |
//!
//! Energy supply and the direct power purchase protocol are urgent, as SPEC §4.2 says.
//! Distributed energy is the paper's service (6), "clean microgrids that trade energy with
//! nearby residents": it is energy supply, so it is urgent too. Election records and
//! settlements are urgent by SPEC §12 D6.

use bincode::{Decode, Encode};

use crate::codec;
use crate::crypto::{Address, Domain, Hash, Keypair, PublicKey, Signature, SignatureError};
use crate::election::ElectionRecord;
use crate::ids::ConsortiumId;
use crate::registry::RegistryEntry;

/// Whether a record must skip the window (SPEC §4.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Urgency {
    /// Batched by the window.
    Normal,
    /// Flushed at once.
    Urgent,
}

/// Who a record is for (SPEC §12 D12). Relays forward only to the audience; only records
/// whose audience reaches outside their own consortium go into relay blocks (D4).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Audience {
    /// The author's own consortium only.
    Own,
    /// The listed consortiums, in ascending order.
    Consortiums(Vec<ConsortiumId>),
    /// The listed members, in ascending order of address.
    Members(Vec<Address>),
    /// Every relay and every consortium.
    Everyone,
}

impl Audience {
    /// Whether a record from consortium `own` with this audience needs the relay chain.
    /// A member list may name members of other consortiums, so it always does.
    pub fn is_external(&self, own: ConsortiumId) -> bool {
        match self {
            Audience::Own => false,
            Audience::Consortiums(list) => list.iter().any(|c| *c != own),
            Audience::Members(_) | Audience::Everyone => true,
        }
    }
}

/// Whether a member is an enterprise or a user (SPEC §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Role {
    /// An energy company.
    Enterprise,
    /// A consumer.
    User,
}

/// The kind of a record: the closed list of the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[allow(missing_docs)] // Each kind is documented on its body variant.
pub enum RecordKind {
    EnergySupply,
    EquipmentMaintenance,
    EfficiencyAudit,
    EnergySavingDesign,
    DataTrade,
    DistributedEnergy,
    MeterReading,
    JoinAnnouncement,
    JoinApplication,
    JoinReceipt,
    PowerOffer,
    PowerBid,
    TradeAgreement,
    GridVote,
    GridReceipt,
    PowerSettlement,
    DataPurchase,
    DataAgreement,
    DataDispute,
    Election,
    Activation,
}

impl RecordKind {
    /// Every kind, in declaration order.
    pub const ALL: [RecordKind; 21] = [
        RecordKind::EnergySupply,
        RecordKind::EquipmentMaintenance,
        RecordKind::EfficiencyAudit,
        RecordKind::EnergySavingDesign,
        RecordKind::DataTrade,
        RecordKind::DistributedEnergy,
        RecordKind::MeterReading,
        RecordKind::JoinAnnouncement,
        RecordKind::JoinApplication,
        RecordKind::JoinReceipt,
        RecordKind::PowerOffer,
        RecordKind::PowerBid,
        RecordKind::TradeAgreement,
        RecordKind::GridVote,
        RecordKind::GridReceipt,
        RecordKind::PowerSettlement,
        RecordKind::DataPurchase,
        RecordKind::DataAgreement,
        RecordKind::DataDispute,
        RecordKind::Election,
        RecordKind::Activation,
    ];

    /// The six integrated-energy services of the paper (§1).
    pub const SERVICES: [RecordKind; 6] = [
        RecordKind::EnergySupply,
        RecordKind::EquipmentMaintenance,
        RecordKind::EfficiencyAudit,
        RecordKind::EnergySavingDesign,
        RecordKind::DataTrade,
        RecordKind::DistributedEnergy,
    ];

    /// The kind's urgency (SPEC §4.2, §12 D6).
    pub const fn urgency(self) -> Urgency {
        match self {
            RecordKind::EnergySupply
            | RecordKind::DistributedEnergy
            | RecordKind::PowerOffer
            | RecordKind::PowerBid
            | RecordKind::TradeAgreement
            | RecordKind::GridVote
            | RecordKind::GridReceipt
            | RecordKind::PowerSettlement
            | RecordKind::Election
            | RecordKind::Activation => Urgency::Urgent,
            RecordKind::EquipmentMaintenance
            | RecordKind::EfficiencyAudit
            | RecordKind::EnergySavingDesign
            | RecordKind::DataTrade
            | RecordKind::MeterReading
            | RecordKind::JoinAnnouncement
            | RecordKind::JoinApplication
            | RecordKind::JoinReceipt
            | RecordKind::DataPurchase
            | RecordKind::DataAgreement
            | RecordKind::DataDispute => Urgency::Normal,
        }
    }

    /// A stable lowercase name, used by the CLI and the configuration.
    pub const fn name(self) -> &'static str {
        match self {
            RecordKind::EnergySupply => "energy_supply",
            RecordKind::EquipmentMaintenance => "equipment_maintenance",
            RecordKind::EfficiencyAudit => "efficiency_audit",
            RecordKind::EnergySavingDesign => "energy_saving_design",
            RecordKind::DataTrade => "data_trade",
            RecordKind::DistributedEnergy => "distributed_energy",
            RecordKind::MeterReading => "meter_reading",
            RecordKind::JoinAnnouncement => "join_announcement",
            RecordKind::JoinApplication => "join_application",
            RecordKind::JoinReceipt => "join_receipt",
            RecordKind::PowerOffer => "power_offer",
            RecordKind::PowerBid => "power_bid",
            RecordKind::TradeAgreement => "trade_agreement",
            RecordKind::GridVote => "grid_vote",
            RecordKind::GridReceipt => "grid_receipt",
            RecordKind::PowerSettlement => "power_settlement",
            RecordKind::DataPurchase => "data_purchase",
            RecordKind::DataAgreement => "data_agreement",
            RecordKind::DataDispute => "data_dispute",
            RecordKind::Election => "election",
            RecordKind::Activation => "activation",
        }
    }
}

/// The typed content of a record, one variant per [`RecordKind`].
/// Energy is in Wh, money in the smallest currency unit, times in milliseconds since the
/// Unix epoch, and delivery slots are numbered (SPEC §4.1: integers, never floats).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(tag = "kind", rename_all = "snake_case"))]
pub enum RecordBody {
    /// Service 1: energy offered or delivered in a slot.
    EnergySupply {
        /// Energy, Wh.
        wh: u64,
        /// Price for the whole quantity.
        price: u64,
        /// Delivery slot.
        slot: u64,
    },
    /// Service 2: maintenance done or offered on a piece of equipment.
    EquipmentMaintenance {
        /// Which equipment.
        equipment: String,
        /// What was done or is offered.
        detail: String,
    },
    /// Service 3: an energy-efficiency audit of a site.
    EfficiencyAudit {
        /// The audited site.
        site: String,
        /// Efficiency found, per mille.
        score_permille: u32,
    },
    /// Service 4: an energy-saving design for a site.
    EnergySavingDesign {
        /// The site.
        site: String,
        /// Expected saving per year, Wh.
        saving_wh: u64,
    },
    /// Service 5: data offered for sale (SPEC §6.3 step 1).
    DataTrade {
        /// blake3 digest of the data.
        digest: Hash,
        /// What the data is.
        description: String,
        /// Asking price.
        price: u64,
        /// Size of the data in bytes.
        size: u64,
    },
    /// Service 6: distributed generation traded on a microgrid.
    DistributedEnergy {
        /// Energy, Wh.
        wh: u64,
        /// Price for the whole quantity.
        price: u64,
        /// Delivery slot.
        slot: u64,
    },
    /// A meter reading on a private chain.
    MeterReading {
        /// Meter number within the member.
        meter: u32,
        /// Cumulative energy, Wh.
        wh: u64,
    },
    /// Join step 3: the relay's signed word that a newcomer's key is registered.
    JoinAnnouncement {
        /// The newcomer's registry entry.
        entry: RegistryEntry,
    },
    /// Join step 5: the newcomer's signed application.
    JoinApplication {
        /// The newcomer's registry entry, as announced.
        entry: RegistryEntry,
    },
    /// Join step 6: a member's receipt for an application.
    JoinReceipt {
        /// The newcomer.
        newcomer: Address,
        /// Digest of the application record.
        application: Hash,
    },
    /// Power purchase step 1: surplus energy offered.
    PowerOffer {
        /// Energy offered, Wh.
        wh: u64,
        /// Price per kWh.
        price_per_kwh: u64,
        /// Delivery slot.
        slot: u64,
    },
    /// Power purchase step 4: a bid on (part of) an offer.
    PowerBid {
        /// Digest of the offer record.
        offer: Hash,
        /// Energy wanted, Wh.
        wh: u64,
    },
    /// Power purchase step 5: the agreed trade, sent to the grid.
    TradeAgreement {
        /// Trade id: hash(offer, bid) (SPEC §12 D12).
        trade: Hash,
        /// Digest of the offer record.
        offer: Hash,
        /// Digest of the bid record.
        bid: Hash,
        /// Seller.
        seller: Address,
        /// Buyer.
        buyer: Address,
        /// Energy, Wh.
        wh: u64,
        /// Delivery slot.
        slot: u64,
    },
    /// Power purchase step 5: one grid member's check of its line.
    GridVote {
        /// Trade id.
        trade: Hash,
        /// The member's line.
        line: u32,
        /// Whether the line has capacity left in the slot.
        approve: bool,
    },
    /// Power purchase step 6: the grid's signed answer.
    GridReceipt {
        /// Trade id.
        trade: Hash,
        /// Approved or rejected.
        approved: bool,
        /// Why, when rejected.
        reason: String,
    },
    /// Power purchase step 7: the settlement, signed by the seller and countersigned by the
    /// buyer over [`settlement_digest`]: this body with an empty countersignature.
    PowerSettlement {
        /// Trade id.
        trade: Hash,
        /// Digest of the offer record.
        offer: Hash,
        /// Seller.
        seller: Address,
        /// Buyer.
        buyer: Address,
        /// Energy settled, Wh.
        wh: u64,
        /// Amount paid.
        amount: u64,
        /// Digest of the grid receipt.
        grid_receipt: Hash,
        /// The buyer's signature.
        countersignature: Signature,
    },
    /// Data trade step 5: a buyer's purchase of a data offer.
    DataPurchase {
        /// Digest of the data offer record.
        offer: Hash,
        /// Price paid.
        price: u64,
    },
    /// Data trade step 6: the agreed data trade.
    DataAgreement {
        /// Trade id: hash(offer, purchase).
        trade: Hash,
        /// Buyer.
        buyer: Address,
        /// The digest the delivered data must have.
        digest: Hash,
    },
    /// Data trade step 6: delivered data did not match its digest.
    DataDispute {
        /// Trade id.
        trade: Hash,
        /// The digest on the chain.
        expected: Hash,
        /// The digest of what was delivered.
        received: Hash,
    },
    /// A relay election (SPEC §5), signed by the supervisor.
    Election(ElectionRecord),
    /// The supervisor recorded a configuration as active, with its config block (SPEC
    /// §14). Kept on the supervisor's own chain, from which it recovers on restart.
    Activation {
        /// The lane.
        consortium: ConsortiumId,
        /// The configuration's epoch.
        epoch: u64,
        /// Its config block.
        config: crate::election::LanePosition,
    },
}

impl RecordBody {
    /// The kind of this body.
    pub fn kind(&self) -> RecordKind {
        match self {
            RecordBody::EnergySupply { .. } => RecordKind::EnergySupply,
            RecordBody::EquipmentMaintenance { .. } => RecordKind::EquipmentMaintenance,
            RecordBody::EfficiencyAudit { .. } => RecordKind::EfficiencyAudit,
            RecordBody::EnergySavingDesign { .. } => RecordKind::EnergySavingDesign,
            RecordBody::DataTrade { .. } => RecordKind::DataTrade,
            RecordBody::DistributedEnergy { .. } => RecordKind::DistributedEnergy,
            RecordBody::MeterReading { .. } => RecordKind::MeterReading,
            RecordBody::JoinAnnouncement { .. } => RecordKind::JoinAnnouncement,
            RecordBody::JoinApplication { .. } => RecordKind::JoinApplication,
            RecordBody::JoinReceipt { .. } => RecordKind::JoinReceipt,
            RecordBody::PowerOffer { .. } => RecordKind::PowerOffer,
            RecordBody::PowerBid { .. } => RecordKind::PowerBid,
            RecordBody::TradeAgreement { .. } => RecordKind::TradeAgreement,
            RecordBody::GridVote { .. } => RecordKind::GridVote,
            RecordBody::GridReceipt { .. } => RecordKind::GridReceipt,
            RecordBody::PowerSettlement { .. } => RecordKind::PowerSettlement,
            RecordBody::DataPurchase { .. } => RecordKind::DataPurchase,
            RecordBody::DataAgreement { .. } => RecordKind::DataAgreement,
            RecordBody::DataDispute { .. } => RecordKind::DataDispute,
            RecordBody::Election(_) => RecordKind::Election,
            RecordBody::Activation { .. } => RecordKind::Activation,
        }
    }
}

/// The signed part of a record.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct RecordContent {
    /// Who wrote it.
    pub author: Address,
    /// Per-author sequence number, strictly increasing: the replay protection.
    pub seq: u64,
    /// Creation time, ms since the Unix epoch, from the clock seam.
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::serde_json_form::rfc3339_ms")
    )]
    pub created_at: u64,
    /// Who it is for.
    pub audience: Audience,
    /// What it says.
    pub body: RecordBody,
}

impl RecordContent {
    /// The digest that the author signs, and that other records cite.
    pub fn digest(&self) -> Hash {
        let digest = Hash::of(Domain::Record, &[&codec::encode(self)]);
        #[cfg(feature = "testing")]
        crate::tally::note(crate::tally::Step::RecordDigest, &digest);
        digest
    }

    /// Signs this content with `key`, whose address must be the author.
    pub fn sign(self, key: &Keypair) -> Record {
        self.sign_digested(key).0
    }

    /// [`RecordContent::sign`], returning the digest it signed too, so that the author
    /// computes it once (issue 12).
    pub fn sign_digested(self, key: &Keypair) -> (Record, Hash) {
        let digest = self.digest();
        let record = Record {
            signature: key.sign(&digest),
            content: self,
        };
        (record, digest)
    }
}

/// A signed record.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Record {
    /// The signed content.
    pub content: RecordContent,
    /// The author's signature over [`RecordContent::digest`].
    pub signature: Signature,
}

impl Record {
    /// The record's kind.
    pub fn kind(&self) -> RecordKind {
        self.content.body.kind()
    }

    /// The record's urgency, from its kind.
    pub fn urgency(&self) -> Urgency {
        self.kind().urgency()
    }

    /// The digest of the signed content.
    pub fn digest(&self) -> Hash {
        self.content.digest()
    }

    /// The record's Merkle leaf: its digest and signature together, so that the root
    /// commits to the exact signed record.
    pub fn leaf(&self) -> Hash {
        Self::leaf_of(&self.digest(), &self.signature)
    }

    /// The Merkle leaf of a record with this digest and signature.
    pub fn leaf_of(digest: &Hash, signature: &Signature) -> Hash {
        Hash::of(Domain::MerkleLeaf, &[&digest.0, &signature.0])
    }

    /// Checks the signature against the author's key.
    pub fn verify(&self, key: &PublicKey) -> Result<(), SignatureError> {
        key.verify(&self.digest(), &self.signature)
    }
}

/// A record whose signature was checked against its author's key, with the digest that
/// was checked. Only [`VerifiedRecord::check`] makes one, so holding one proves the check
/// was made: a record signed by its author before submission is checked once, on entry,
/// and its digest computed once (issue 12; SPEC §12 D8: signing is the client's work).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedRecord {
    record: Record,
    digest: Hash,
}

impl VerifiedRecord {
    /// Checks `record`'s signature with `key`, which must be its author's: a key whose
    /// address is not the record's author is refused whatever it signed
    /// ([`SignatureError::Invalid`]), so that holding one proves the author signed it.
    pub fn check(record: Record, key: &PublicKey) -> Result<VerifiedRecord, SignatureError> {
        if key.address() != record.content.author {
            return Err(SignatureError::Invalid);
        }
        let digest = record.digest();
        key.verify(&digest, &record.signature)?;
        Ok(VerifiedRecord { record, digest })
    }

    /// The record.
    pub fn record(&self) -> &Record {
        &self.record
    }

    /// The digest its signature was checked over.
    pub fn digest(&self) -> Hash {
        self.digest
    }

    /// The record and its digest.
    pub fn into_parts(self) -> (Record, Hash) {
        (self.record, self.digest)
    }
}

/// The digest a buyer countersigns (SPEC §12 D6): the settlement body with an empty
/// countersignature, in its own domain, so that the countersignature can never be replayed
/// as any other signature.
pub fn settlement_digest(body: &RecordBody) -> Hash {
    let mut unsigned = body.clone();
    if let RecordBody::PowerSettlement {
        countersignature, ..
    } = &mut unsigned
    {
        *countersignature = Signature::EMPTY;
    }
    Hash::of(Domain::Countersign, &[&codec::encode(&unsigned)])
}

/// The id of a trade: the hash of its offer and of the bid or purchase that took it
/// (SPEC §12 D12).
pub fn trade_id(offer: &Hash, bid: &Hash) -> Hash {
    Hash::of(Domain::Record, &[b"trade", &offer.0, &bid.0])
}

/// The digest of data sold in a data trade (SPEC §6.3): what the offer carries and what the
/// buyer checks the delivery against.
pub fn data_digest(data: &[u8]) -> Hash {
    Hash::of(Domain::Data, &[data])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Keypair;

    /// A verified record proves its author signed it: a key other than the author's is
    /// refused, even over a signature it made itself.
    #[test]
    fn a_record_is_verified_only_with_its_authors_key() {
        let author = Keypair::derive(Domain::NodeKey, 1, "author");
        let other = Keypair::derive(Domain::NodeKey, 1, "other");
        let content = RecordContent {
            author: author.address(),
            seq: 1,
            created_at: 1,
            audience: Audience::Own,
            body: RecordBody::MeterReading { meter: 1, wh: 2 },
        };
        let signed = content.clone().sign(&author);
        assert!(VerifiedRecord::check(signed.clone(), &author.public()).is_ok());
        assert!(VerifiedRecord::check(signed, &other.public()).is_err());
        let by_other = content.sign(&other);
        assert!(VerifiedRecord::check(by_other, &other.public()).is_err());
    }
}
