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

/// One member's generator: for each kind, Poisson arrivals at the kind's rate, with
/// exponential gaps drawn from the member's own stream.
#[derive(Debug)]
pub struct Workload {
    rates: Rates,
    rng: ChaCha8Rng,
    consortiums: u16,
    /// When each kind's next record is due, ms; `None` until the first call.
    next: Vec<Option<u64>>,
    counter: u64,
    /// No record is due from this time on, ms (`ieschain node --workload-for`).
    until: Option<u64>,
}

impl Workload {
    /// The generator of member `address` in a run seeded `seed`, with `consortiums`
    /// consortiums in the federation.
    pub fn new(rates: Rates, seed: u64, address: Address, consortiums: u16) -> Self {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        key[8..28].copy_from_slice(&address.0);
        Workload {
            next: vec![None; rates.per_kind.len()],
            rates,
            rng: ChaCha8Rng::from_seed(key),
            consortiums: consortiums.max(2),
            counter: 0,
            until: None,
        }
    }

    /// The same generator, with nothing due from `ms` on.
    pub fn until(mut self, ms: u64) -> Self {
        self.until = Some(ms);
        self
    }

    /// An exponential gap, ms, for `rate` per second.
    fn gap_ms(&mut self, rate: f64) -> u64 {
        // A uniform in (0, 1]: 53 random bits, never zero.
        let uniform = ((self.rng.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64;
        (-uniform.ln() / rate * 1000.0).max(1.0) as u64
    }

    /// The records due up to `now`, from `own` consortium.
    pub fn due(&mut self, now: u64, own: ConsortiumId) -> Vec<(Audience, RecordBody)> {
        let mut out = Vec::new();
        if self.until.is_some_and(|until| now >= until) {
            return out;
        }
        for index in 0..self.rates.per_kind.len() {
            let (kind, rate) = self.rates.per_kind[index];
            if rate <= 0.0 || !rate.is_finite() {
                continue;
            }
            let mut due = match self.next[index] {
                Some(due) => due,
                None => now + self.gap_ms(rate),
            };
            while due <= now {
                out.push(self.record(kind, own));
                due += self.gap_ms(rate);
            }
            self.next[index] = Some(due);
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
