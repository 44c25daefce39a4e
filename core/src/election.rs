//! Relay elections (SPEC §5, §12 D5): the election record, the weight function `f`, the
//! deterministic draw, and the history from which every node derives the failure rates.
//!
//! The draw is a pure function of chain data, so anyone can recompute it:
//! - the seed is `derive_key("ieschain election v1", consortium ‖ epoch ‖ previous
//!   election ‖ relay lane head)`;
//! - candidates are sorted by address; each weighs `f(E_k)` in Q32 fixed point, computed
//!   with integers only, because `f64::exp` may differ across platforms;
//! - randomness is blake3's extendable output of the seed, read as little-endian `u64`s,
//!   with rejection sampling so that every weight unit is equally likely;
//! - the relay is drawn first (unless it is fixed by promotion), then the backup from the
//!   remaining candidates with the weights renormalised.

use std::collections::BTreeMap;

use bincode::{Decode, Encode};
use thiserror::Error;

use crate::crypto::{Address, Domain, Hash};
use crate::ids::ConsortiumId;

/// `1.0` in the Q32 fixed point of the weights.
pub const ONE_Q32: u64 = 1 << 32;

/// The form of `f`, positive and strictly decreasing in the failure rate E (SPEC §5).
/// The chosen form is written into every election record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(tag = "kind", rename_all = "snake_case"))]
pub enum WeightFn {
    /// `f(E) = exp(-k·E)`, with `k = k_milli / 1000`. The default is `k = 3`.
    Exponential {
        /// k × 1000.
        k_milli: u32,
    },
    /// `f(E) = 1 / (1 + k·E)`, with `k = k_milli / 1000`.
    Reciprocal {
        /// k × 1000.
        k_milli: u32,
    },
    /// `f(E) = 1`: every candidate equally likely (the paper's "random" backup).
    Uniform,
}

impl Default for WeightFn {
    fn default() -> Self {
        WeightFn::Exponential { k_milli: 3000 }
    }
}

impl WeightFn {
    /// `f(failures / terms)` in Q32, at least 1 so that every candidate can be drawn.
    /// A candidate with no completed term has E = 0 and weight 1.0.
    pub fn weight(self, failures: u32, terms: u32) -> u64 {
        if terms == 0 || failures == 0 {
            return ONE_Q32;
        }
        let x_q32 = |k_milli: u32| -> u128 {
            ((k_milli as u128 * failures as u128) << 32) / (1000 * terms as u128)
        };
        let weight = match self {
            WeightFn::Uniform => ONE_Q32,
            WeightFn::Exponential { k_milli } => exp_neg_q32(x_q32(k_milli)),
            WeightFn::Reciprocal { k_milli } => {
                ((1u128 << 64) / ((1u128 << 32) + x_q32(k_milli))) as u64
            }
        };
        weight.max(1)
    }
}

/// `exp(-x)` for `x` in Q32, with the result in Q32, using integers only.
fn exp_neg_q32(x_q32: u128) -> u64 {
    // exp(-1) in Q32, rounded.
    const EXP_NEG_ONE_Q32: u128 = 1_580_030_169;
    let whole = x_q32 >> 32;
    if whole >= 23 {
        // exp(-23) · 2^32 < 1.
        return 0;
    }
    let frac = x_q32 & (ONE_Q32 as u128 - 1);
    // exp(frac) by its Taylor series in Q60; frac < 1 so 30 terms are far past Q60 precision.
    let one_q60: u128 = 1 << 60;
    let f_q60 = frac << 28;
    let mut term = one_q60;
    let mut sum = one_q60;
    for k in 1..30u128 {
        term = term * f_q60 / (k * one_q60);
        if term == 0 {
            break;
        }
        sum += term;
    }
    // exp(-frac) = 1 / exp(frac), in Q32.
    let mut result = (1u128 << 92) / sum;
    for _ in 0..whole {
        result = (result * EXP_NEG_ONE_Q32) >> 32;
    }
    result as u64
}

/// Why an election happened (SPEC §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum ElectionReason {
    /// The consortium's first election: relay and backup drawn together.
    Initial,
    /// The relay failed; the backup is promoted and a new backup drawn.
    Failover,
    /// The relay served a full period; the backup replaces it.
    Rotation,
    /// The backup was lost; a new one is drawn with the relay kept. Like every election it
    /// starts a new configuration and epoch (SPEC §14); it ends no term (D5).
    BackupLost,
}

impl ElectionReason {
    /// The relay the rules fix before the draw, from the sitting configuration's `relay`
    /// and `backup`: the backup promoted on failover and rotation, the relay kept when only
    /// its backup is replaced, none at the start (SPEC §5). Only the backup is drawn then.
    pub fn fixed_relay(self, relay: Option<Address>, backup: Option<Address>) -> Option<Address> {
        match self {
            ElectionReason::Initial => None,
            ElectionReason::Failover | ElectionReason::Rotation => backup,
            ElectionReason::BackupLost => relay,
        }
    }
}

/// A candidate as the election saw it: its completed terms and failures as relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct CandidateStat {
    /// The candidate.
    pub address: Address,
    /// Terms as relay that ended in failure.
    pub failures: u32,
    /// Completed terms as relay.
    pub terms: u32,
}

/// The relay lane's head that an election used, which seeds the draw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct LanePosition {
    /// Height of the head (0 for an empty lane).
    pub height: u64,
    /// Hash of the head (zero for an empty lane).
    pub hash: Hash,
}

/// An election, as the supervisor signs it and the chains keep it (SPEC §5).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ElectionRecord {
    /// The consortium.
    pub consortium: ConsortiumId,
    /// The epoch this election starts: every election starts a new configuration (SPEC
    /// §14).
    pub epoch: u64,
    /// The epoch of the configuration this one takes the lane over from: the last one the
    /// supervisor recorded as active (SPEC §14), 0 for none. The new relay reads the lane
    /// from that configuration's relay or backup, and its first block (the config block)
    /// goes right on top of a block of that epoch.
    pub source: u64,
    /// Why.
    pub reason: ElectionReason,
    /// The relay from this epoch on.
    pub relay: Address,
    /// The backup, if any candidate was left for it.
    pub backup: Option<Address>,
    /// The eligible candidates, by address, with their records.
    pub candidates: Vec<CandidateStat>,
    /// The form of `f`.
    pub weight_fn: WeightFn,
    /// The relay lane's head used for the seed: the source configuration's released head
    /// as its relay last reported it (SPEC §14), so it is on the lane by construction.
    pub lane_head: LanePosition,
    /// The digest of the previous election record of the consortium, or zero.
    pub prev_election: Hash,
    /// The seed of the draw.
    pub seed: Hash,
}

/// The seed of an election draw (SPEC §5).
pub fn election_seed(
    consortium: ConsortiumId,
    epoch: u64,
    prev_election: &Hash,
    lane_head: &Hash,
) -> Hash {
    Hash::of(
        Domain::ElectionSeed,
        &[
            &consortium.0.to_be_bytes(),
            &epoch.to_be_bytes(),
            &prev_election.0,
            &lane_head.0,
        ],
    )
}

/// A stream of uniform `u64`s from blake3's extendable output of a seed.
struct SeedStream(blake3::OutputReader);

impl SeedStream {
    fn new(seed: &Hash) -> Self {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&seed.0);
        SeedStream(hasher.finalize_xof())
    }

    fn next_u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        self.0.fill(&mut bytes);
        u64::from_le_bytes(bytes)
    }

    /// A uniform integer in `0..bound`, by rejection sampling; `bound` > 0.
    fn below(&mut self, bound: u64) -> u64 {
        let zone = u64::MAX - (u64::MAX % bound + 1) % bound;
        loop {
            let value = self.next_u64();
            if value <= zone {
                return value % bound;
            }
        }
    }
}

/// The result of a draw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Drawn {
    /// The relay.
    pub relay: Address,
    /// The backup, unless the relay was the only candidate.
    pub backup: Option<Address>,
}

/// Draws relay and backup from `candidates` (sorted by address, distinct).
/// With `fixed_relay`, the relay is that candidate (a promotion) and only the backup is
/// drawn. Returns `None` when there is no candidate, or `fixed_relay` is not one.
pub fn draw(
    candidates: &[CandidateStat],
    weight_fn: WeightFn,
    seed: &Hash,
    fixed_relay: Option<Address>,
) -> Option<Drawn> {
    let mut pool: Vec<(Address, u64)> = candidates
        .iter()
        .map(|c| (c.address, weight_fn.weight(c.failures, c.terms)))
        .collect();
    let mut stream = SeedStream::new(seed);
    let relay = match fixed_relay {
        Some(relay) => {
            let at = pool.iter().position(|(a, _)| *a == relay)?;
            pool.remove(at);
            relay
        }
        None => pick(&mut pool, &mut stream)?,
    };
    let backup = pick(&mut pool, &mut stream);
    Some(Drawn { relay, backup })
}

/// Removes and returns one candidate of `pool`, with probability proportional to weight.
fn pick(pool: &mut Vec<(Address, u64)>, stream: &mut SeedStream) -> Option<Address> {
    // Weights are at most 2^32 each; more than 2^31 candidates cannot occur in a registry
    // whose entries are each larger than a byte, so the total fits in a u64.
    let total: u64 = pool.iter().map(|(_, w)| *w).sum();
    if total == 0 {
        return None;
    }
    let mut target = stream.below(total);
    for index in 0..pool.len() {
        let weight = pool[index].1;
        if target < weight {
            return Some(pool.remove(index).0);
        }
        target -= weight;
    }
    None
}

/// Why an election record does not recompute.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ElectionError {
    /// Another consortium's election.
    #[error("election for consortium {got} on the lane of {expected}")]
    WrongConsortium {
        /// This lane's consortium.
        expected: ConsortiumId,
        /// The record's.
        got: ConsortiumId,
    },
    /// The epoch does not follow from the reason.
    #[error("{reason:?} election has epoch {got}, expected {expected}")]
    Epoch {
        /// The reason.
        reason: ElectionReason,
        /// What the history requires.
        expected: u64,
        /// What the record says.
        got: u64,
    },
    /// The record does not cite the previous election.
    #[error("previous election digest does not match the history")]
    PrevElection,
    /// The seed is not the one the chain data gives.
    #[error("seed does not recompute from the chain")]
    Seed,
    /// The candidates are not sorted, or repeat.
    #[error("candidates are not in strictly ascending address order")]
    CandidateOrder,
    /// A candidate is not a registered, relay-capable member.
    #[error("candidate {0} is not a registered relay-capable member")]
    NotEligible(Address),
    /// A candidate's failures or terms differ from the history.
    #[error("candidate {address} has failures/terms {got:?}, the history says {expected:?}")]
    Stats {
        /// The candidate.
        address: Address,
        /// From the chain.
        expected: (u32, u32),
        /// In the record.
        got: (u32, u32),
    },
    /// The draw gives someone else.
    #[error("draw gives relay {expected_relay} and backup {expected_backup:?}, record says {relay} and {backup:?}")]
    Draw {
        /// The recomputed relay.
        expected_relay: Address,
        /// The recomputed backup.
        expected_backup: Option<Address>,
        /// The recorded relay.
        relay: Address,
        /// The recorded backup.
        backup: Option<Address>,
    },
    /// No candidate, yet a relay was recorded.
    #[error("no eligible candidate for the recorded relay")]
    NoCandidates,
    /// The lane head the election used is not on this lane.
    #[error("lane head at height {0} is not on this lane")]
    LaneHead(u64),
}

/// Everything the chain says about a consortium's elections so far: the input to the
/// next draw and to its verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElectionHistory {
    /// The consortium.
    pub consortium: ConsortiumId,
    /// The current epoch; 0 before the first election.
    pub epoch: u64,
    /// The current relay.
    pub relay: Option<Address>,
    /// The current backup.
    pub backup: Option<Address>,
    /// Digest of the last election record, or zero.
    pub last_election: Hash,
    /// Per candidate: (failures, completed terms).
    pub stats: BTreeMap<Address, (u32, u32)>,
}

impl ElectionHistory {
    /// The history of a consortium with no election yet.
    pub fn new(consortium: ConsortiumId) -> Self {
        ElectionHistory {
            consortium,
            epoch: 0,
            relay: None,
            backup: None,
            last_election: Hash::ZERO,
            stats: BTreeMap::new(),
        }
    }

    /// The (failures, terms) of `address`.
    pub fn stats_of(&self, address: &Address) -> (u32, u32) {
        self.stats.get(address).copied().unwrap_or((0, 0))
    }

    /// The stats after the term that `reason` ends (D5: failover and rotation end the
    /// current relay's term; a lost backup ends none).
    fn stats_after(&self, reason: ElectionReason) -> BTreeMap<Address, (u32, u32)> {
        let mut stats = self.stats.clone();
        if let Some(relay) = self.relay {
            let entry = stats.entry(relay).or_insert((0, 0));
            match reason {
                ElectionReason::Failover => {
                    entry.0 += 1;
                    entry.1 += 1;
                }
                ElectionReason::Rotation => entry.1 += 1,
                ElectionReason::Initial | ElectionReason::BackupLost => {}
            }
        }
        stats
    }

    /// The epoch the next election must carry: every election starts a new configuration
    /// with the next epoch, a lost backup's too (SPEC §14).
    pub fn next_epoch(&self) -> u64 {
        self.epoch + 1
    }

    /// The relay that the rules fix before the draw: the promoted backup on failover and
    /// rotation, the sitting relay when only the backup is replaced.
    fn fixed_relay(&self, reason: ElectionReason, eligible: &[Address]) -> Option<Address> {
        reason
            .fixed_relay(self.relay, self.backup)
            .filter(|a| eligible.contains(a))
    }

    /// Runs an election as the supervisor does: from the eligible (registered, relay
    /// capable, alive) candidates, the source configuration's epoch and its released head.
    /// Returns `None` when no candidate is eligible: the consortium is then cut off until
    /// one comes back.
    pub fn elect(
        &self,
        reason: ElectionReason,
        eligible: &[Address],
        weight_fn: WeightFn,
        source: u64,
        lane_head: LanePosition,
    ) -> Option<ElectionRecord> {
        let mut sorted = eligible.to_vec();
        sorted.sort();
        sorted.dedup();
        let stats = self.stats_after(reason);
        let candidates: Vec<CandidateStat> = sorted
            .iter()
            .map(|address| {
                let (failures, terms) = stats.get(address).copied().unwrap_or((0, 0));
                CandidateStat {
                    address: *address,
                    failures,
                    terms,
                }
            })
            .collect();
        let epoch = self.next_epoch();
        let seed = election_seed(self.consortium, epoch, &self.last_election, &lane_head.hash);
        let drawn = draw(
            &candidates,
            weight_fn,
            &seed,
            self.fixed_relay(reason, &sorted),
        )?;
        Some(ElectionRecord {
            consortium: self.consortium,
            epoch,
            source,
            reason,
            relay: drawn.relay,
            backup: drawn.backup,
            candidates,
            weight_fn,
            lane_head,
            prev_election: self.last_election,
            seed,
        })
    }

    /// Checks that `record` recomputes from this history, and applies it.
    /// `is_eligible` says whether an address is a registered relay-capable member;
    /// `on_lane` whether a lane position is on this consortium's relay lane.
    /// Liveness is the supervisor's signed word and is not recomputed (SPEC §12 D5).
    pub fn apply(
        &mut self,
        record: &ElectionRecord,
        record_digest: Hash,
        is_eligible: impl Fn(&Address) -> bool,
        on_lane: impl Fn(&LanePosition) -> bool,
    ) -> Result<(), ElectionError> {
        if record.consortium != self.consortium {
            return Err(ElectionError::WrongConsortium {
                expected: self.consortium,
                got: record.consortium,
            });
        }
        let expected_epoch = self.next_epoch();
        if record.epoch != expected_epoch
            || (record.reason == ElectionReason::Initial) != (self.epoch == 0)
        {
            return Err(ElectionError::Epoch {
                reason: record.reason,
                expected: expected_epoch,
                got: record.epoch,
            });
        }
        if record.prev_election != self.last_election {
            return Err(ElectionError::PrevElection);
        }
        if !on_lane(&record.lane_head) {
            return Err(ElectionError::LaneHead(record.lane_head.height));
        }
        let seed = election_seed(
            self.consortium,
            record.epoch,
            &self.last_election,
            &record.lane_head.hash,
        );
        if record.seed != seed {
            return Err(ElectionError::Seed);
        }
        if record
            .candidates
            .windows(2)
            .any(|pair| pair[0].address >= pair[1].address)
        {
            return Err(ElectionError::CandidateOrder);
        }
        let stats = self.stats_after(record.reason);
        for candidate in &record.candidates {
            if !is_eligible(&candidate.address) {
                return Err(ElectionError::NotEligible(candidate.address));
            }
            let expected = stats.get(&candidate.address).copied().unwrap_or((0, 0));
            let got = (candidate.failures, candidate.terms);
            if expected != got {
                return Err(ElectionError::Stats {
                    address: candidate.address,
                    expected,
                    got,
                });
            }
        }
        let eligible: Vec<Address> = record.candidates.iter().map(|c| c.address).collect();
        let drawn = draw(
            &record.candidates,
            record.weight_fn,
            &seed,
            self.fixed_relay(record.reason, &eligible),
        )
        .ok_or(ElectionError::NoCandidates)?;
        if drawn.relay != record.relay || drawn.backup != record.backup {
            return Err(ElectionError::Draw {
                expected_relay: drawn.relay,
                expected_backup: drawn.backup,
                relay: record.relay,
                backup: record.backup,
            });
        }
        self.stats = stats;
        self.epoch = record.epoch;
        self.relay = Some(record.relay);
        self.backup = record.backup;
        self.last_election = record_digest;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u8) -> Address {
        Address([i; 20])
    }

    #[test]
    fn exponential_weight_matches_floating_point() {
        let f = WeightFn::default();
        for (failures, terms) in [(1u32, 1u32), (1, 2), (1, 3), (2, 3), (5, 7), (1, 10)] {
            let e = failures as f64 / terms as f64;
            let expected = (-3.0 * e).exp() * ONE_Q32 as f64;
            let got = f.weight(failures, terms) as f64;
            assert!(
                (got - expected).abs() / expected < 1e-6,
                "E={e}: {got} vs {expected}"
            );
        }
        assert_eq!(f.weight(0, 0), ONE_Q32);
        assert_eq!(f.weight(0, 5), ONE_Q32);
        assert!(f.weight(1, 1) < f.weight(1, 2), "f must decrease in E");
    }

    #[test]
    fn reciprocal_and_uniform_weights() {
        let f = WeightFn::Reciprocal { k_milli: 1000 };
        assert_eq!(f.weight(1, 1), ONE_Q32 / 2);
        assert_eq!(WeightFn::Uniform.weight(3, 3), ONE_Q32);
    }

    #[test]
    fn draw_is_deterministic_and_picks_distinct_relay_and_backup() {
        let candidates: Vec<_> = (1..=4)
            .map(|i| CandidateStat {
                address: addr(i),
                failures: 0,
                terms: 0,
            })
            .collect();
        let seed = Hash::of(Domain::ElectionSeed, &[b"x"]);
        let a = draw(&candidates, WeightFn::default(), &seed, None).unwrap();
        let b = draw(&candidates, WeightFn::default(), &seed, None).unwrap();
        assert_eq!(a, b);
        assert_ne!(Some(a.relay), a.backup);
        let fixed = draw(&candidates, WeightFn::default(), &seed, Some(addr(3))).unwrap();
        assert_eq!(fixed.relay, addr(3));
        assert_ne!(fixed.backup, Some(addr(3)));
        assert_eq!(draw(&[], WeightFn::default(), &seed, None), None);
    }

    #[test]
    fn history_elects_and_replays_through_failover_and_rotation() {
        let consortium = ConsortiumId(2);
        let eligible = [addr(1), addr(2), addr(3)];
        let mut supervisor = ElectionHistory::new(consortium);
        let mut verifier = ElectionHistory::new(consortium);
        let mut head = LanePosition {
            height: 0,
            hash: Hash::ZERO,
        };
        for (step, reason) in [
            ElectionReason::Initial,
            ElectionReason::Rotation,
            ElectionReason::Failover,
            ElectionReason::BackupLost,
        ]
        .into_iter()
        .enumerate()
        {
            let record = supervisor
                .elect(reason, &eligible, WeightFn::default(), step as u64, head)
                .unwrap();
            let digest = Hash::of(Domain::Record, &[&[step as u8]]);
            supervisor
                .apply(&record, digest, |_| true, |_| true)
                .unwrap();
            verifier.apply(&record, digest, |_| true, |_| true).unwrap();
            head = LanePosition {
                height: head.height + 3,
                hash: Hash::of(Domain::RelayHeader, &[&[step as u8]]),
            };
        }
        assert_eq!(supervisor, verifier);
        assert_eq!(
            supervisor.epoch, 4,
            "every election starts a new epoch, a lost backup's too"
        );
        let total_terms: u32 = supervisor.stats.values().map(|s| s.1).sum();
        let total_failures: u32 = supervisor.stats.values().map(|s| s.0).sum();
        assert_eq!((total_failures, total_terms), (1, 2));
    }

    #[test]
    fn tampered_records_do_not_recompute() {
        let consortium = ConsortiumId(0);
        let eligible = [addr(1), addr(2), addr(3)];
        let history = ElectionHistory::new(consortium);
        let head = LanePosition {
            height: 0,
            hash: Hash::ZERO,
        };
        let record = history
            .elect(
                ElectionReason::Initial,
                &eligible,
                WeightFn::default(),
                0,
                head,
            )
            .unwrap();
        let check = |r: &ElectionRecord| {
            history
                .clone()
                .apply(r, Hash::ZERO, |a| eligible.contains(a), |_| true)
        };
        assert_eq!(check(&record), Ok(()));

        let mut swapped = record.clone();
        std::mem::swap(&mut swapped.relay, swapped.backup.as_mut().unwrap());
        assert!(matches!(check(&swapped), Err(ElectionError::Draw { .. })));

        let mut reseeded = record.clone();
        reseeded.seed = Hash::ZERO;
        assert_eq!(check(&reseeded), Err(ElectionError::Seed));

        let mut inflated = record.clone();
        inflated.candidates[0].failures = 1;
        assert!(matches!(check(&inflated), Err(ElectionError::Stats { .. })));

        let mut stranger = record.clone();
        stranger.candidates[0].address = addr(0);
        assert!(matches!(
            check(&stranger),
            Err(ElectionError::NotEligible(_))
        ));

        let mut late = record;
        late.epoch = 2;
        assert!(matches!(check(&late), Err(ElectionError::Epoch { .. })));
    }
}
