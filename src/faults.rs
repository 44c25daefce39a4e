//! The fault plan of a simulation (SPEC §9), and the `--faults` grammar of
//! `ieschain simulate`.
//!
//! A plan is a comma-separated list of items:
//!
//! | item | meaning |
//! |---|---|
//! | `drop:P` | drop each envelope with probability P (0 ≤ P ≤ 1) |
//! | `dup:P` | deliver each envelope twice with probability P |
//! | `delay:MIN-MAXms` | delay each envelope by a uniform MIN..=MAX ms (reorders them) |
//! | `crash-relay:CONSORTIUM@T` | at T, crash whoever is then the consortium's relay |
//! | `crash:MEMBER@T` | at T, crash the member's node (it loses its memory) |
//! | `restart:MEMBER@T` | at T, restart it; it recovers from its own storage |
//! | `partition:C[+C…]@T+D` | at T, cut the listed consortiums off from the rest, for D |
//! | `pause:MEMBER@T+D` | at T, cut one node off from everyone for D (a paused node that comes back, deposed) |
//! | `mute:MEMBER@T+D` | at T, cut only the link between the node and the supervisor, for D: the supervisor elects around a node its peers still hear |
//! | `random` | a plan drawn from the seed: light network faults and a fault every ~minute (a relay crash, a partition, a mute, or a crash and restart) |
//!
//! Times and durations take units: `500ms`, `90s`, `2m`. Network faults apply from the
//! start. Every error names the item it is about.

use std::collections::BTreeSet;
use std::fmt;

use ieschain_actors::sim::NetworkFaults;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use thiserror::Error;

use crate::config::FederationConfig;

/// One timed fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// Crash the current relay of the consortium (by name).
    CrashRelay(String),
    /// Crash the member's node.
    Crash(String),
    /// Restart the member's node.
    Restart(String),
    /// Cut the members of these consortiums off from everyone else.
    Partition(BTreeSet<String>),
    /// Cut one member off from everyone.
    Isolate(String),
    /// Cut one member off from the supervisor only: it goes on with everyone else, but
    /// its heartbeats and the supervisor's messages are lost, as with an overloaded node
    /// whose heartbeats come too late (a spurious failover).
    Mute(String),
    /// End every partition.
    Heal,
}

impl fmt::Display for FaultAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultAction::CrashRelay(c) => write!(f, "crash-relay:{c}"),
            FaultAction::Crash(m) => write!(f, "crash:{m}"),
            FaultAction::Restart(m) => write!(f, "restart:{m}"),
            FaultAction::Partition(cs) => {
                write!(
                    f,
                    "partition:{}",
                    cs.iter().cloned().collect::<Vec<_>>().join("+")
                )
            }
            FaultAction::Isolate(m) => write!(f, "pause:{m}"),
            FaultAction::Mute(m) => write!(f, "mute:{m}"),
            FaultAction::Heal => write!(f, "heal"),
        }
    }
}

/// A whole fault plan: network faults from the start, and timed actions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultPlan {
    /// Drop, duplicate and delay settings.
    pub network: NetworkFaults,
    /// (virtual ms from the start, action), in time order (stable for equal times).
    pub events: Vec<(u64, FaultAction)>,
}

/// A bad `--faults` item.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("bad fault item `{item}`: {why}")]
pub struct FaultError {
    /// The item as written.
    pub item: String,
    /// What is wrong with it.
    pub why: String,
}

/// Parses a time or duration with a unit, as `humantime` writes it (`500ms`, `90s`, `2m`,
/// `1m 30s`), in whole milliseconds.
pub fn parse_time(text: &str) -> Option<u64> {
    crate::config::parse_duration(text).map(|d| d.as_millis() as u64)
}

fn probability(item: &str, text: &str) -> Result<f64, FaultError> {
    let p: f64 = text.parse().map_err(|_| FaultError {
        item: item.into(),
        why: format!("expected a probability between 0 and 1, found `{text}`"),
    })?;
    if !(0.0..=1.0).contains(&p) {
        return Err(FaultError {
            item: item.into(),
            why: format!("expected a probability between 0 and 1, found {p}"),
        });
    }
    Ok(p)
}

impl FaultPlan {
    /// Parses `spec` for `config`: names must be its members and consortiums; `until` is
    /// the run's length in ms, which bounds `random`; `seed` draws `random`.
    pub fn parse(
        spec: &str,
        config: &FederationConfig,
        seed: u64,
        until: u64,
    ) -> Result<FaultPlan, FaultError> {
        let mut plan = FaultPlan::default();
        for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let fail = |why: String| FaultError {
                item: item.to_string(),
                why,
            };
            if item == "random" {
                plan.add_random(config, seed, until);
                continue;
            }
            let (kind, rest) = item.split_once(':').ok_or_else(|| {
                fail("expected KIND:ARGUMENTS, e.g. drop:0.01 or crash:source-1@30s".into())
            })?;
            let member = |name: &str| -> Result<String, FaultError> {
                if config.member(name).is_some() {
                    Ok(name.to_string())
                } else {
                    Err(fail(format!("no member named `{name}`")))
                }
            };
            let consortium = |name: &str| -> Result<String, FaultError> {
                if config.consortium_id(name).is_some() {
                    Ok(name.to_string())
                } else {
                    Err(fail(format!("no consortium named `{name}`")))
                }
            };
            let at = |text: &str| -> Result<u64, FaultError> {
                parse_time(text).ok_or_else(|| {
                    fail(format!(
                        "expected a time with a unit such as 30s or 500ms, found `{text}`"
                    ))
                })
            };
            let window = |text: &str| -> Result<(u64, u64), FaultError> {
                let (start, length) = text
                    .split_once('+')
                    .ok_or_else(|| fail("expected @T+DURATION, e.g. @30s+10s".into()))?;
                Ok((at(start)?, at(length)?))
            };
            match kind {
                "drop" => plan.network.drop = probability(item, rest)?,
                "dup" => plan.network.duplicate = probability(item, rest)?,
                "delay" => {
                    let range = rest
                        .strip_suffix("ms")
                        .ok_or_else(|| fail("expected MIN-MAXms, e.g. delay:1-20ms".into()))?;
                    let (low, high) = range.split_once('-').unwrap_or((range, range));
                    let low: u64 = low.parse().map_err(|_| fail(format!("expected a number of ms, found `{low}`")))?;
                    let high: u64 = high.parse().map_err(|_| fail(format!("expected a number of ms, found `{high}`")))?;
                    if low > high || high > 60_000 {
                        return Err(fail("expected MIN ≤ MAX ≤ 60000 ms".into()));
                    }
                    plan.network.delay_ms = (low, high);
                }
                "crash-relay" | "crash" | "restart" => {
                    let (name, time) = rest
                        .split_once('@')
                        .ok_or_else(|| fail(format!("expected {kind}:NAME@T, e.g. {kind}:source@30s")))?;
                    let action = match kind {
                        "crash-relay" => FaultAction::CrashRelay(consortium(name)?),
                        "crash" => FaultAction::Crash(member(name)?),
                        _ => FaultAction::Restart(member(name)?),
                    };
                    plan.events.push((at(time)?, action));
                }
                "partition" => {
                    let (names, time) = rest
                        .split_once('@')
                        .ok_or_else(|| fail("expected partition:C[+C…]@T+DURATION".into()))?;
                    let group = names
                        .split('+')
                        .map(consortium)
                        .collect::<Result<BTreeSet<String>, _>>()?;
                    let (start, length) = window(time)?;
                    plan.events.push((start, FaultAction::Partition(group)));
                    plan.events.push((start + length, FaultAction::Heal));
                }
                "pause" | "mute" => {
                    let (name, time) = rest
                        .split_once('@')
                        .ok_or_else(|| fail(format!("expected {kind}:MEMBER@T+DURATION")))?;
                    let (start, length) = window(time)?;
                    let name = member(name)?;
                    let action = if kind == "pause" {
                        FaultAction::Isolate(name)
                    } else {
                        FaultAction::Mute(name)
                    };
                    plan.events.push((start, action));
                    plan.events.push((start + length, FaultAction::Heal));
                }
                other => {
                    return Err(fail(format!(
                        "unknown fault `{other}`; expected drop, dup, delay, crash-relay, crash, restart, partition, pause, mute or random"
                    )))
                }
            }
        }
        plan.events.sort_by_key(|(at, _)| *at);
        Ok(plan)
    }

    /// Adds a plan drawn from `seed`: 1% drops and duplicates, 1–20 ms delays, and about
    /// once a minute (first at 20 s) one of: a relay crash, a partition of one consortium
    /// for 10 s, a crashed node restarted 15 s later, or a node muted (cut off from the
    /// supervisor only) for 5 s.
    fn add_random(&mut self, config: &FederationConfig, seed: u64, until: u64) {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        key[8..14].copy_from_slice(b"faults");
        let mut rng = ChaCha8Rng::from_seed(key);
        self.network = NetworkFaults {
            drop: 0.01,
            duplicate: 0.01,
            delay_ms: (1, 20),
        };
        let consortiums: Vec<String> = config.consortiums.iter().map(|c| c.name.clone()).collect();
        let members: Vec<String> = config.members().map(|m| m.name).collect();
        if consortiums.is_empty() || members.is_empty() {
            return;
        }
        let mut at = 20_000;
        while at + 20_000 < until {
            let consortium = consortiums[(rng.next_u32() as usize) % consortiums.len()].clone();
            let member = members[(rng.next_u32() as usize) % members.len()].clone();
            match rng.next_u32() % 4 {
                0 => self.events.push((at, FaultAction::CrashRelay(consortium))),
                1 => {
                    self.events
                        .push((at, FaultAction::Partition(BTreeSet::from([consortium]))));
                    self.events.push((at + 10_000, FaultAction::Heal));
                }
                2 => {
                    self.events.push((at, FaultAction::Mute(member)));
                    self.events.push((at + 5_000, FaultAction::Heal));
                }
                _ => {
                    self.events.push((at, FaultAction::Crash(member.clone())));
                    self.events
                        .push((at + 15_000, FaultAction::Restart(member)));
                }
            }
            at += 40_000 + u64::from(rng.next_u32() % 40_000);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> FederationConfig {
        FederationConfig::four_party()
    }

    #[test]
    fn every_form_parses() {
        let member = config().members().next().unwrap().name;
        let spec = format!(
            "drop:0.05,dup:0.01,delay:2-30ms,crash-relay:source@90s,crash:{member}@10s,restart:{member}@20s,partition:grid+load@30s+5s,pause:{member}@40s+2s"
        );
        let plan = FaultPlan::parse(&spec, &config(), 1, 600_000).unwrap();
        assert_eq!(
            plan.network,
            NetworkFaults {
                drop: 0.05,
                duplicate: 0.01,
                delay_ms: (2, 30)
            }
        );
        let times: Vec<u64> = plan.events.iter().map(|(t, _)| *t).collect();
        assert_eq!(
            times,
            [10_000, 20_000, 30_000, 35_000, 40_000, 42_000, 90_000]
        );
        assert!(plan
            .events
            .iter()
            .any(|(_, a)| *a == FaultAction::CrashRelay("source".into())));
        assert!(plan
            .events
            .iter()
            .any(|(_, a)| matches!(a, FaultAction::Partition(g) if g.len() == 2)));
    }

    #[test]
    fn errors_name_the_item() {
        for (spec, needle) in [
            ("drop:2", "drop:2"),
            ("drop:lots", "drop:lots"),
            ("delay:30-2ms", "delay:30-2ms"),
            ("delay:5", "delay:5"),
            ("crash:nobody@1s", "no member named `nobody`"),
            ("crash-relay:mars@1s", "no consortium named `mars`"),
            ("crash:x", "crash:x"),
            ("partition:grid@10s", "@T+DURATION"),
            ("restart:source-solar@soon", "soon"),
            ("explode:now", "unknown fault `explode`"),
        ] {
            let err = FaultPlan::parse(spec, &config(), 1, 60_000).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(needle), "{spec}: {text}");
            assert!(text.starts_with("bad fault item"), "{text}");
        }
    }

    #[test]
    fn random_is_seeded() {
        let a = FaultPlan::parse("random", &config(), 7, 3_600_000).unwrap();
        let b = FaultPlan::parse("random", &config(), 7, 3_600_000).unwrap();
        let c = FaultPlan::parse("random", &config(), 8, 3_600_000).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(
            a.events.len() >= 40,
            "an hour holds many faults: {}",
            a.events.len()
        );
    }

    #[test]
    fn times_take_units() {
        assert_eq!(parse_time("500ms"), Some(500));
        assert_eq!(parse_time("90s"), Some(90_000));
        assert_eq!(parse_time("2m"), Some(120_000));
        assert_eq!(parse_time("90"), None);
        assert_eq!(parse_time("-1s"), None);
    }
}
