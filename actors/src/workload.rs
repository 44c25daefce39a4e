//! The workload: what members generate on their own, at configurable rates (the six
//! services of SPEC §4.2 and private meter readings).
//!
//! Each member draws from its own ChaCha stream, seeded from the run's seed and the
//! member's address, so a run's workload is reproducible. Services for other consortiums
//! (energy supply, distributed energy, data offers) are addressed to one of them and travel
//! on the relay chain; maintenance, audits and designs stay in the consortium (D4).

use ieschain_core::{Address, Audience, ConsortiumId, Hash, RecordBody, RecordKind};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// Records per second per member, by kind.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rates {
    /// (kind, records per second per member).
    pub per_kind: Vec<(RecordKind, f64)>,
}

/// One member's generator.
#[derive(Debug)]
pub struct Workload {
    rates: Rates,
    rng: ChaCha8Rng,
    consortiums: u16,
    last: Option<u64>,
    carry: Vec<f64>,
    counter: u64,
}

impl Workload {
    /// The generator of member `address` in a run seeded `seed`, with `consortiums`
    /// consortiums in the federation.
    pub fn new(rates: Rates, seed: u64, address: Address, consortiums: u16) -> Self {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        key[8..28].copy_from_slice(&address.0);
        Workload {
            carry: vec![0.0; rates.per_kind.len()],
            rates,
            rng: ChaCha8Rng::from_seed(key),
            consortiums: consortiums.max(2),
            last: None,
            counter: 0,
        }
    }

    /// The records due between the last call and `now`, from `own` consortium.
    pub fn due(&mut self, now: u64, own: ConsortiumId) -> Vec<(Audience, RecordBody)> {
        let Some(last) = self.last.replace(now) else {
            return Vec::new();
        };
        let elapsed = now.saturating_sub(last) as f64 / 1000.0;
        let mut out = Vec::new();
        for index in 0..self.rates.per_kind.len() {
            let (kind, rate) = self.rates.per_kind[index];
            // Accumulate the expected count; emit its whole part, keep the rest.
            self.carry[index] += rate * elapsed;
            let count = self.carry[index].floor();
            self.carry[index] -= count;
            for _ in 0..count as u64 {
                out.push(self.record(kind, own));
            }
        }
        out
    }

    fn other(&mut self, own: ConsortiumId) -> ConsortiumId {
        let pick = (self.rng.next_u32() % (self.consortiums as u32 - 1)) as u16;
        ConsortiumId(if pick >= own.0 { pick + 1 } else { pick })
    }

    fn record(&mut self, kind: RecordKind, own: ConsortiumId) -> (Audience, RecordBody) {
        self.counter += 1;
        let n = self.counter;
        let small = (self.rng.next_u32() % 1_000) as u64 + 1;
        let external = |other: ConsortiumId| {
            let mut list = vec![own, other];
            list.sort();
            Audience::Consortiums(list)
        };
        match kind {
            RecordKind::EnergySupply => (
                external(self.other(own)),
                RecordBody::EnergySupply {
                    wh: small * 100,
                    price: small * 9,
                    slot: n,
                },
            ),
            RecordKind::DistributedEnergy => (
                external(self.other(own)),
                RecordBody::DistributedEnergy {
                    wh: small * 10,
                    price: small,
                    slot: n,
                },
            ),
            RecordKind::DataTrade => (
                external(self.other(own)),
                RecordBody::DataTrade {
                    digest: Hash::of(
                        ieschain_core::Domain::Record,
                        &[&n.to_be_bytes(), &small.to_be_bytes()],
                    ),
                    description: format!("consumption data, lot {n}"),
                    price: small * 3,
                    size: small * 64,
                },
            ),
            RecordKind::EquipmentMaintenance => (
                Audience::Own,
                RecordBody::EquipmentMaintenance {
                    equipment: format!("unit-{small}"),
                    detail: "inspection".into(),
                },
            ),
            RecordKind::EfficiencyAudit => (
                Audience::Own,
                RecordBody::EfficiencyAudit {
                    site: format!("site-{small}"),
                    score_permille: 500 + small as u32 / 2,
                },
            ),
            RecordKind::EnergySavingDesign => (
                Audience::Own,
                RecordBody::EnergySavingDesign {
                    site: format!("site-{small}"),
                    saving_wh: small * 1_000,
                },
            ),
            _ => (
                Audience::Own,
                RecordBody::MeterReading {
                    meter: 1,
                    wh: n * 10 + small,
                },
            ),
        }
    }
}
