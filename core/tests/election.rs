//! The relay draw (SPEC §5, §12 D5) has the distribution the paper prescribes: over many
//! distinct seeds, relay k is drawn with probability `P_k = f(E_k) / Σ_i f(E_i)`, and the
//! backup with P renormalised over the remaining candidates. Checked with Pearson's
//! chi-square goodness-of-fit test at significance 0.001.
//!
//! The seeds are fixed (`Hash::of(Domain::ElectionSeed, [i])` for i in 0..20,000), so these
//! tests are deterministic: they cannot flake, and a change to the draw that skews it
//! fails them every time.

// Tests may unwrap (STYLE.md, "Gates").
#![allow(clippy::unwrap_used)]

mod support;

use ieschain_core::election::{draw, CandidateStat, WeightFn, ONE_Q32};
use ieschain_core::{Address, Domain, Hash};
use proptest::collection::btree_map;
use proptest::prelude::*;
use support::config;

const DRAWS: u64 = 20_000;

/// Chi-square critical values at significance 0.001, by degrees of freedom (standard
/// tables, e.g. NIST/SEMATECH e-Handbook §1.3.6.7.4).
fn critical_0_001(degrees_of_freedom: usize) -> f64 {
    match degrees_of_freedom {
        3 => 16.266,
        4 => 18.467,
        19 => 43.820,
        other => panic!("no critical value tabulated for {other} degrees of freedom"),
    }
}

fn seed(i: u64) -> Hash {
    Hash::of(Domain::ElectionSeed, &[&i.to_be_bytes()])
}

/// Five candidates, sorted by address, with different records as relay:
/// E = 0, 1/4, 2/3, 1/2 and 1.
fn candidates() -> Vec<CandidateStat> {
    [(0, 0), (1, 4), (2, 3), (1, 2), (1, 1)]
        .into_iter()
        .enumerate()
        .map(|(i, (failures, terms))| CandidateStat {
            address: Address([i as u8 + 1; 20]),
            failures,
            terms,
        })
        .collect()
}

/// The failure rate E of a candidate.
fn failure_rate(c: &CandidateStat) -> f64 {
    if c.terms == 0 {
        0.0
    } else {
        c.failures as f64 / c.terms as f64
    }
}

/// `f(E_k)` for each candidate, as the draw weighs them (Q32 integers).
fn weights(candidates: &[CandidateStat], f: WeightFn) -> Vec<f64> {
    candidates
        .iter()
        .map(|c| f.weight(c.failures, c.terms) as f64)
        .collect()
}

/// Pearson's statistic of observed counts against expected probabilities.
fn chi_square(observed: &[u64], probabilities: &[f64], total: u64) -> f64 {
    assert_eq!(observed.len(), probabilities.len());
    assert!((probabilities.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    observed
        .iter()
        .zip(probabilities)
        .map(|(o, p)| {
            let expected = p * total as f64;
            assert!(
                expected >= 5.0,
                "chi-square needs expected counts of 5 or more"
            );
            (*o as f64 - expected).powi(2) / expected
        })
        .sum()
}

fn index_of(candidates: &[CandidateStat], address: Address) -> usize {
    candidates
        .iter()
        .position(|c| c.address == address)
        .unwrap()
}

/// Relay and backup counts over the fixed seeds: `relay[k]`, `backup[k]`, `pair[r][b]`.
struct Tally {
    relay: Vec<u64>,
    backup: Vec<u64>,
    pair: Vec<Vec<u64>>,
}

fn tally(candidates: &[CandidateStat], f: WeightFn, fixed: Option<Address>) -> Tally {
    let n = candidates.len();
    let mut out = Tally {
        relay: vec![0; n],
        backup: vec![0; n],
        pair: vec![vec![0; n]; n],
    };
    for i in 0..DRAWS {
        let drawn = draw(candidates, f, &seed(i), fixed).unwrap();
        let r = index_of(candidates, drawn.relay);
        let b = index_of(candidates, drawn.backup.unwrap());
        assert_ne!(r, b, "relay and backup are distinct");
        out.relay[r] += 1;
        out.backup[b] += 1;
        out.pair[r][b] += 1;
    }
    out
}

/// With the default `f(E) = exp(-3E)`, relay frequencies fit `P_k = f(E_k)/Σ f(E_i)`:
/// chi-square with 5 − 1 = 4 degrees of freedom stays below 18.467 (p = 0.001). The
/// integer weights themselves are within 1e-6 of `exp(-3E)`.
#[test]
fn relay_frequencies_fit_p_k() {
    let candidates = candidates();
    let f = WeightFn::default();
    let w = weights(&candidates, f);
    for (c, weight) in candidates.iter().zip(&w) {
        let exact = (-3.0 * failure_rate(c)).exp() * ONE_Q32 as f64;
        assert!((weight - exact).abs() / exact < 1e-6, "{c:?}");
    }
    let total: f64 = w.iter().sum();
    let p: Vec<f64> = w.iter().map(|x| x / total).collect();
    let t = tally(&candidates, f, None);
    let statistic = chi_square(&t.relay, &p, DRAWS);
    assert!(
        statistic < critical_0_001(4),
        "chi-square {statistic:.2} ≥ 18.467: observed {:?}, expected {:?}",
        t.relay,
        p.iter().map(|p| p * DRAWS as f64).collect::<Vec<_>>()
    );
    // The test has power: the same counts are far from a uniform draw, and from weights
    // that ignore the failures' share of the terms (f of the failure count alone).
    let uniform = vec![0.2; 5];
    assert!(chi_square(&t.relay, &uniform, DRAWS) > 100.0 * critical_0_001(4));
    let by_count: Vec<f64> = candidates
        .iter()
        .map(|c| (-3.0 * c.failures as f64).exp())
        .collect();
    let sum: f64 = by_count.iter().sum();
    let by_count: Vec<f64> = by_count.iter().map(|x| x / sum).collect();
    assert!(chi_square(&t.relay, &by_count, DRAWS) > critical_0_001(4));
}

/// The (relay, backup) pairs fit the joint law `P_r · f(E_b) / (Σ f − f(E_r))`: the relay
/// drawn with P, the backup with P renormalised over the others. 20 cells, 19 degrees of
/// freedom, critical value 43.820 (p = 0.001). The backup marginal fits as well (4 degrees
/// of freedom, 18.467).
#[test]
fn relay_and_backup_pairs_fit_the_renormalised_law() {
    let candidates = candidates();
    let f = WeightFn::default();
    let w = weights(&candidates, f);
    let total: f64 = w.iter().sum();
    let n = candidates.len();
    let mut cells = Vec::new();
    let mut observed = Vec::new();
    let mut backup_p = vec![0.0; n];
    let t = tally(&candidates, f, None);
    for r in 0..n {
        for b in 0..n {
            if r == b {
                assert_eq!(t.pair[r][b], 0);
                continue;
            }
            let p = w[r] / total * w[b] / (total - w[r]);
            cells.push(p);
            observed.push(t.pair[r][b]);
            backup_p[b] += p;
        }
    }
    let statistic = chi_square(&observed, &cells, DRAWS);
    assert!(
        statistic < critical_0_001(19),
        "joint chi-square {statistic:.2} ≥ 43.820"
    );
    let statistic = chi_square(&t.backup, &backup_p, DRAWS);
    assert!(
        statistic < critical_0_001(4),
        "backup chi-square {statistic:.2} ≥ 18.467: {:?}",
        t.backup
    );
}

/// On a promotion the relay is fixed, and the backup alone is drawn from the other four with
/// renormalised weights: 3 degrees of freedom, critical value 16.266 (p = 0.001).
#[test]
fn backup_after_promotion_fits_the_renormalised_law() {
    let candidates = candidates();
    let f = WeightFn::default();
    let fixed = candidates[1].address;
    let w = weights(&candidates, f);
    let rest: f64 = w.iter().sum::<f64>() - w[1];
    let t = tally(&candidates, f, Some(fixed));
    assert_eq!(t.relay[1], DRAWS);
    let (observed, p): (Vec<u64>, Vec<f64>) = (0..candidates.len())
        .filter(|k| *k != 1)
        .map(|k| (t.backup[k], w[k] / rest))
        .unzip();
    let statistic = chi_square(&observed, &p, DRAWS);
    assert!(
        statistic < critical_0_001(3),
        "chi-square {statistic:.2} ≥ 16.266"
    );
}

/// The other forms of `f` fit too: the reciprocal `1/(1 + 2E)` and the uniform one (4
/// degrees of freedom, 18.467).
#[test]
fn other_weight_functions_fit() {
    let candidates = candidates();
    for (f, exact) in [
        (
            WeightFn::Reciprocal { k_milli: 2000 },
            (|e: f64| 1.0 / (1.0 + 2.0 * e)) as fn(f64) -> f64,
        ),
        (WeightFn::Uniform, |_| 1.0),
    ] {
        let w = weights(&candidates, f);
        for (c, weight) in candidates.iter().zip(&w) {
            let want = exact(failure_rate(c)) * ONE_Q32 as f64;
            assert!((weight - want).abs() / want < 1e-6, "{f:?} {c:?}");
        }
        let total: f64 = w.iter().sum();
        let p: Vec<f64> = w.iter().map(|x| x / total).collect();
        let t = tally(&candidates, f, None);
        let statistic = chi_square(&t.relay, &p, DRAWS);
        assert!(
            statistic < critical_0_001(4),
            "{f:?}: chi-square {statistic:.2}: {:?}",
            t.relay
        );
    }
}

/// A candidate with a higher failure rate is drawn as relay less often: ordering the
/// candidates by E orders their relay counts the other way, strictly, under every
/// decreasing form of `f`.
#[test]
fn higher_failure_rate_is_drawn_less_often() {
    let candidates = candidates();
    for f in [
        WeightFn::default(),
        WeightFn::Exponential { k_milli: 1000 },
        WeightFn::Reciprocal { k_milli: 3000 },
    ] {
        let t = tally(&candidates, f, None);
        let mut by_rate: Vec<(f64, u64)> = candidates
            .iter()
            .map(failure_rate)
            .zip(t.relay.iter().copied())
            .collect();
        by_rate.sort_by(|a, b| a.0.total_cmp(&b.0));
        for pair in by_rate.windows(2) {
            assert!(
                pair[0].1 > pair[1].1,
                "{f:?}: E={} drawn {} times, E={} drawn {} times",
                pair[0].0,
                pair[0].1,
                pair[1].0,
                pair[1].1
            );
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// For any candidate set and seed, the draw is a function of its inputs, picks the relay
    /// and a distinct backup from the candidates (no backup only for a single candidate),
    /// and honours a fixed relay.
    #[test]
    fn draw_is_deterministic_and_well_formed(
        stats in btree_map(any::<[u8; 20]>(), (0u32..5, 0u32..8), 1..8),
        seed_bytes in any::<[u8; 32]>(),
        fixed_at in any::<proptest::sample::Index>(),
    ) {
        let candidates: Vec<CandidateStat> = stats
            .into_iter()
            .map(|(a, (failures, terms))| CandidateStat {
                address: Address(a),
                failures: failures.min(terms),
                terms,
            })
            .collect();
        let seed = Hash(seed_bytes);
        let f = WeightFn::default();
        let drawn = draw(&candidates, f, &seed, None).unwrap();
        prop_assert_eq!(draw(&candidates, f, &seed, None), Some(drawn));
        prop_assert!(candidates.iter().any(|c| c.address == drawn.relay));
        match drawn.backup {
            None => prop_assert_eq!(candidates.len(), 1),
            Some(b) => {
                prop_assert_ne!(b, drawn.relay);
                prop_assert!(candidates.iter().any(|c| c.address == b));
            }
        }
        let fixed = fixed_at.get(&candidates).address;
        let promoted = draw(&candidates, f, &seed, Some(fixed)).unwrap();
        prop_assert_eq!(promoted.relay, fixed);
        prop_assert_ne!(promoted.backup, Some(fixed));
        let stranger = Address([0xff; 20]);
        if !candidates.iter().any(|c| c.address == stranger) {
            prop_assert_eq!(draw(&candidates, f, &seed, Some(stranger)), None);
        }
        prop_assert_eq!(draw(&[], f, &seed, None), None);
    }
}
