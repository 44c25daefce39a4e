//! Property tests of the consensus under injected faults (the simulation issue, §5), and
//! the deliberately broken variants that show the invariant checker catches real bugs.
//!
//! **Schedules.** proptest generates a schedule of steps over a small federation (three
//! consortiums of three relay-capable members): crash a member, crash a consortium's
//! relay, restart a member, partition one or two consortiums for a while, pause a node (cut
//! it off, so that it is deposed and comes back), heal, advance time; plus network faults
//! (drops, duplicates, delays) for the whole run. The schedule becomes a [`FaultPlan`] with
//! increasing times inside the safety phase; the simulation's liveness phase then heals
//! everything, restarts crashed nodes and must converge. The property: no invariant
//! breaks. proptest shrinks a failure to a minimal schedule and prints it.
//!
//! The default is 8 cases from a fixed generator seed, so that it runs in well under a
//! minute on 2 cores (about 7 s) with the same schedules every time, in `make test`. More
//! cases find open bugs (the ignored regressions below). For long runs,
//! `PROPTEST_CASES=200 PROPTEST_RNG_SEED=7 cargo test --test properties` runs more cases,
//! and other schedules. A failure prints the shrunk schedule and its fault plan; commit it
//! as a regression test below.
//!
//! **Broken variants.** Each [`Mutations`] switch reintroduces one bug; a test runs seeds
//! 1..=50 with it until the checker names the expected invariant, asserts that happens,
//! and that the same seed without the switch breaks nothing.

use std::collections::BTreeSet;

use ieschain::config::FederationConfig;
use ieschain::faults::{FaultAction, FaultPlan};
use ieschain::simulation::{Simulation, SimulationOutcome};
use ieschain_actors::sim::NetworkFaults;
use ieschain_core::node::Mutations;
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

/// Three consortiums of three relay-capable members: the smallest federation where every
/// lane has a relay, a backup and a spare for the failover after next.
const SMALL: &str = r#"
seed = 1

[timing]
window = 4
max_wait = "300ms"
member_max_wait = "200ms"
period = "5s"
heartbeat_interval = "200ms"
suspect_after = 3

[workload.records]
energy_supply = 0.5
equipment_maintenance = 0.5
efficiency_audit = 0.5
meter_reading = 0.5

[[consortiums]]
name = "source"

[[consortiums.members]]
name = "source-wind"
role = "enterprise"
relay_capable = true

[[consortiums.members]]
name = "source-solar"
role = "enterprise"
relay_capable = true

[[consortiums.members]]
name = "source-gas"
role = "enterprise"
relay_capable = true

[[consortiums]]
name = "grid"

[[consortiums.members]]
name = "grid-north"
role = "enterprise"
relay_capable = true
line_capacity_wh = 50000

[[consortiums.members]]
name = "grid-south"
role = "enterprise"
relay_capable = true
line_capacity_wh = 50000

[[consortiums.members]]
name = "grid-east"
role = "enterprise"
relay_capable = true
line_capacity_wh = 30000

[[consortiums]]
name = "load"

[[consortiums.members]]
name = "load-mall"
role = "enterprise"
relay_capable = true

[[consortiums.members]]
name = "load-factory"
role = "enterprise"
relay_capable = true

[[consortiums.members]]
name = "load-campus"
role = "enterprise"
relay_capable = true
"#;

const CONSORTIUMS: [&str; 3] = ["source", "grid", "load"];
const MEMBERS: [[&str; 3]; 3] = [
    ["source-wind", "source-solar", "source-gas"],
    ["grid-north", "grid-south", "grid-east"],
    ["load-mall", "load-factory", "load-campus"],
];

/// Length of the safety phase of a generated schedule, virtual ms.
const SAFETY_MS: u64 = 20_000;

fn small() -> FederationConfig {
    let config = FederationConfig::from_toml_str(SMALL, "small (tests/properties.rs)")
        .expect("the small federation parses");
    config.check().expect("the small federation is valid");
    config
}

/// One step of a schedule.
#[derive(Clone, Debug)]
enum Step {
    /// Let time pass, ms.
    Advance(u64),
    /// Crash member `.1` of consortium `.0`.
    Crash(usize, usize),
    /// Crash whoever relays consortium `.0`.
    CrashRelay(usize),
    /// Restart member `.1` of consortium `.0` (nothing if it runs).
    Restart(usize, usize),
    /// Cut these consortiums off from the rest for `.1` ms.
    Partition(Vec<usize>, u64),
    /// Cut member `.1` of consortium `.0` off from everyone for `.2` ms.
    Pause(usize, usize, u64),
    /// Cut member `.1` of consortium `.0` off from the supervisor only for `.2` ms (a
    /// spurious failover).
    Mute(usize, usize, u64),
    /// End every partition.
    Heal,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (200u64..4_000).prop_map(Step::Advance),
        2 => (0..3usize, 0..3usize).prop_map(|(c, m)| Step::Crash(c, m)),
        2 => (0..3usize).prop_map(Step::CrashRelay),
        2 => (0..3usize, 0..3usize).prop_map(|(c, m)| Step::Restart(c, m)),
        1 => (proptest::sample::subsequence(vec![0usize, 1, 2], 1..=2), 500u64..6_000)
            .prop_map(|(cs, d)| Step::Partition(cs, d)),
        2 => (0..3usize, 0..3usize, 500u64..5_000).prop_map(|(c, m, d)| Step::Pause(c, m, d)),
        2 => (0..3usize, 0..3usize, 500u64..5_000).prop_map(|(c, m, d)| Step::Mute(c, m, d)),
        1 => Just(Step::Heal),
    ]
}

/// Network faults within bounds: up to 3% drops and duplicates, up to 30 ms of delay.
fn network() -> impl Strategy<Value = NetworkFaults> {
    (0u32..=3, 0u32..=3, 0u64..=10, 0u64..=20).prop_map(|(drop, dup, min, spread)| NetworkFaults {
        drop: drop as f64 / 100.0,
        duplicate: dup as f64 / 100.0,
        delay_ms: (min, min + spread),
    })
}

/// A schedule as a fault plan: steps at increasing times from 1 s, each fault 50 ms after
/// the one before unless an `Advance` says more; partitions and pauses heal after their
/// duration. Whatever falls after the safety phase is left out.
fn plan(network: NetworkFaults, steps: &[Step]) -> FaultPlan {
    let mut events = Vec::new();
    let mut at = 1_000;
    for step in steps {
        match step {
            Step::Advance(ms) => {
                at += ms;
                continue;
            }
            Step::Crash(c, m) => events.push((at, FaultAction::Crash(MEMBERS[*c][*m].into()))),
            Step::CrashRelay(c) => {
                events.push((at, FaultAction::CrashRelay(CONSORTIUMS[*c].into())))
            }
            Step::Restart(c, m) => events.push((at, FaultAction::Restart(MEMBERS[*c][*m].into()))),
            Step::Partition(cs, d) => {
                let group = cs.iter().map(|c| CONSORTIUMS[*c].to_string()).collect();
                events.push((at, FaultAction::Partition(group)));
                events.push((at + d, FaultAction::Heal));
            }
            Step::Pause(c, m, d) => {
                events.push((at, FaultAction::Isolate(MEMBERS[*c][*m].into())));
                events.push((at + d, FaultAction::Heal));
            }
            Step::Mute(c, m, d) => {
                events.push((at, FaultAction::Mute(MEMBERS[*c][*m].into())));
                events.push((at + d, FaultAction::Heal));
            }
            Step::Heal => events.push((at, FaultAction::Heal)),
        }
        at += 50;
    }
    events.retain(|(t, _)| *t < SAFETY_MS);
    // Stable: equal times keep their order.
    events.sort_by_key(|(t, _)| *t);
    FaultPlan { network, events }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
}

/// The generator's seed: fixed, so that `make test` runs the same schedules every time;
/// `PROPTEST_RNG_SEED=N` explores others. Its first 8 schedules pass (about 7 s); with 32
/// it found simulation seed 896714 (kept below), and now finds seed 360450 (open, see
/// TESTING.md).
const DEFAULT_RNG_SEED: u64 = 1;

fn rng_seed() -> RngSeed {
    std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(RngSeed::Fixed(DEFAULT_RNG_SEED), RngSeed::Fixed)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        // Each case is a whole simulation; shrinking stays bounded.
        max_shrink_iters: 64,
        failure_persistence: None,
        rng_seed: rng_seed(),
        ..ProptestConfig::default()
    })]

    /// Every invariant holds under any schedule of crashes, restarts, relay crashes,
    /// partitions, pauses and network faults, and the federation converges after them.
    #[test]
    fn no_schedule_breaks_an_invariant(
        seed in 1u64..1_000_000,
        network in network(),
        steps in proptest::collection::vec(step(), 1..12),
    ) {
        let mut simulation = Simulation::new(small(), seed, SAFETY_MS);
        simulation.plan = plan(network, &steps);
        let replay = format!("seed {seed}, plan {:?}", simulation.plan);
        let outcome = simulation.run().expect("the simulation runs");
        prop_assert!(outcome.broken.is_empty(), "{replay}\nbroken: {:#?}", outcome.broken);
    }
}

/// The four-party federation's consortiums and members, for the second property.
fn four_party_names() -> (Vec<String>, Vec<Vec<String>>) {
    let config = FederationConfig::four_party();
    let consortiums: Vec<String> = config.consortiums.iter().map(|c| c.name.clone()).collect();
    let members = (0..consortiums.len())
        .map(|c| {
            config
                .members()
                .filter(|m| m.consortium.0 as usize == c)
                .map(|m| m.name)
                .collect()
        })
        .collect();
    (consortiums, members)
}

/// A schedule over the four-party federation: as [`plan`], with indices taken modulo the
/// consortiums and their members.
fn four_party_plan(network: NetworkFaults, steps: &[Step]) -> FaultPlan {
    let (consortiums, members) = four_party_names();
    let consortium = |c: usize| consortiums[c % consortiums.len()].clone();
    let member = |c: usize, m: usize| {
        let list = &members[c % members.len()];
        list[m % list.len()].clone()
    };
    let mut events = Vec::new();
    let mut at = 1_000;
    for step in steps {
        match step {
            Step::Advance(ms) => {
                at += ms;
                continue;
            }
            Step::Crash(c, m) => events.push((at, FaultAction::Crash(member(*c, *m)))),
            Step::CrashRelay(c) => events.push((at, FaultAction::CrashRelay(consortium(*c)))),
            Step::Restart(c, m) => events.push((at, FaultAction::Restart(member(*c, *m)))),
            Step::Partition(cs, d) => {
                let group = cs.iter().map(|c| consortium(*c)).collect();
                events.push((at, FaultAction::Partition(group)));
                events.push((at + d, FaultAction::Heal));
            }
            Step::Pause(c, m, d) => {
                events.push((at, FaultAction::Isolate(member(*c, *m))));
                events.push((at + d, FaultAction::Heal));
            }
            Step::Mute(c, m, d) => {
                events.push((at, FaultAction::Mute(member(*c, *m))));
                events.push((at + d, FaultAction::Heal));
            }
            Step::Heal => events.push((at, FaultAction::Heal)),
        }
        at += 50;
    }
    events.retain(|(t, _)| *t < SAFETY_MS);
    events.sort_by_key(|(t, _)| *t);
    FaultPlan { network, events }
}

/// Steps over four consortiums of up to seven members.
fn four_party_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (200u64..4_000).prop_map(Step::Advance),
        2 => (0..4usize, 0..7usize).prop_map(|(c, m)| Step::Crash(c, m)),
        2 => (0..4usize).prop_map(Step::CrashRelay),
        2 => (0..4usize, 0..7usize).prop_map(|(c, m)| Step::Restart(c, m)),
        1 => (proptest::sample::subsequence(vec![0usize, 1, 2, 3], 1..=2), 500u64..6_000)
            .prop_map(|(cs, d)| Step::Partition(cs, d)),
        2 => (0..4usize, 0..7usize, 500u64..5_000).prop_map(|(c, m, d)| Step::Pause(c, m, d)),
        2 => (0..4usize, 0..7usize, 500u64..5_000).prop_map(|(c, m, d)| Step::Mute(c, m, d)),
        1 => Just(Step::Heal),
    ]
}

fn protocol_cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: protocol_cases(),
        max_shrink_iters: 32,
        failure_persistence: None,
        rng_seed: rng_seed(),
        ..ProptestConfig::default()
    })]

    /// The same property over the built-in four-party federation with its protocol
    /// workload (joins, power purchases, data trades), so that faults meet L4 (joins end)
    /// and S6 (trades) too. Four cases by default; `PROPTEST_CASES` raises it.
    #[test]
    fn no_schedule_breaks_an_invariant_with_the_protocols(
        seed in 1u64..1_000_000,
        network in network(),
        steps in proptest::collection::vec(four_party_step(), 1..12),
    ) {
        let mut simulation = Simulation::new(FederationConfig::four_party(), seed, SAFETY_MS);
        simulation.plan = four_party_plan(network, &steps);
        let replay = format!("seed {seed}, plan {:?}", simulation.plan);
        let outcome = simulation.run().expect("the simulation runs");
        prop_assert!(outcome.broken.is_empty(), "{replay}\nbroken: {:#?}", outcome.broken);
        prop_assert!(
            outcome.stats.joins + outcome.stats.joins_failed > 0,
            "{replay}\nno join ran"
        );
    }
}

// ----- regressions the property found -----

/// Found by `no_schedule_breaks_an_invariant` (shrunk) at commit 40d397f: a 650 ms pause of
/// a grid member while a source member crashes left lane #0 stuck at height 2 through
/// the liveness phase: S3, acknowledged blocks never reached the relay chain. Passes since
/// the member-machine fixes of 455cfb2 and a1faa04 (a deposed relay's rollback, a backup
/// that takes over forwarding what it received).
#[test]
fn regression_pause_and_crash_stalls_lane_0() {
    let mut simulation = Simulation::new(small(), 903_780, SAFETY_MS);
    simulation.plan = FaultPlan {
        network: NetworkFaults {
            drop: 0.01,
            duplicate: 0.0,
            delay_ms: (1, 3),
        },
        events: vec![
            (1_751, FaultAction::Isolate("grid-south".into())),
            (1_801, FaultAction::Crash("source-solar".into())),
            (2_401, FaultAction::Heal),
        ],
    };
    let outcome = simulation.run().expect("the simulation runs");
    assert!(outcome.broken.is_empty(), "{:#?}", outcome.broken);
}

/// Found by `no_schedule_breaks_an_invariant` (shrunk) at commit 40d397f: the load relay's
/// crash (load-factory at 1 s) while grid is partitioned off and another load member
/// (load-campus) is paused: no relay takes lane #2 over within the L1 bound.
///
/// Diagnosis (event log): the same case as seed 367020 below. load-campus is the backup;
/// paused 100 ms after the crash, it is still alive to the supervisor, which promotes it
/// when the crashed relay's lease runs out (1400 ms). It never takes over; when its own
/// lease runs out the supervisor elects load-mall (1850 ms), which takes over at 2050 ms,
/// 1050 ms after the crash (bound 900 ms). L1's premise (the crash is the only fault on
/// the consortium) fails, and the checker no longer judges such a crash: it lists it in
/// `l1_exempt`, naming the pause.
#[test]
fn regression_crash_during_partition_and_pause_misses_l1() {
    let mut simulation = Simulation::new(small(), 116_877, SAFETY_MS);
    simulation.plan = FaultPlan {
        network: NetworkFaults::default(),
        events: vec![
            (1_000, FaultAction::Crash("load-factory".into())),
            (
                1_050,
                FaultAction::Partition(["grid".to_string()].into_iter().collect()),
            ),
            (1_100, FaultAction::Isolate("load-campus".into())),
            (1_851, FaultAction::Heal),
            (1_931, FaultAction::Heal),
        ],
    };
    let outcome = simulation.run().expect("the simulation runs");
    eprintln!("L1 not judged: {:#?}", outcome.l1_exempt);
    assert!(outcome.broken.is_empty(), "{:#?}", outcome.broken);
}

/// Found by `no_schedule_breaks_an_invariant` with the default generator seed (1) at commit
/// 40d397f, and again (shrunk to simulation seed 389037, the same plan) at 62dff97: the grid
/// relay crashes at 5851 ms, and within the failure detector's window the rest of grid is
/// cut off too (grid-north, the backup, paused at 5901 ms; all of grid with source
/// partitioned from 6001 ms to 9086 ms). No relay takes lane #1 over within the L1 bound
/// (900 ms), and the consortium is reported cut off only later.
///
/// Diagnosis (event log of seed 367020): not a failover bug. grid-east relays epoch 2 with
/// grid-north as backup. grid-east crashes at 5851 ms; once its lease has run out the
/// supervisor promotes the backup at once (SPEC §5), at 6400 ms: grid-north was last heard
/// just before its pause, so it is still alive to the supervisor, and becomes relay. It is
/// cut off and never takes over; when the lease it got at the election runs out, the next
/// failover finds no reachable candidate and reports grid cut off at 6850 ms, 999 ms after
/// the crash, 99 ms past the bound. No candidate of grid could reach the supervisor between
/// 6001 ms and 9086 ms, so no relay could have served in time: L1 (SPEC §9, §12 D10)
/// presumes that the relay's crash is the only fault on its consortium while the failover
/// runs, and the checker applies it to every relay crash. The fix is in the checker: skip
/// L1 for a crash when another fault (a crash, a pause, a partition) touches a candidate of
/// the same consortium within the bound. The simulation now reports every crash, pause and
/// partition touching a consortium's candidates, and the checker lists such a crash in
/// `l1_exempt` instead of judging it.
#[test]
fn regression_seed_367020_relay_crash_then_consortium_cut_off_misses_l1() {
    let grid_source = ["grid".to_string(), "source".to_string()];
    let events = vec![
        (
            2_556,
            FaultAction::Partition(["load".to_string()].into_iter().collect()),
        ),
        (3_066, FaultAction::Heal),
        (5_801, FaultAction::Heal),
        (5_851, FaultAction::Crash("grid-east".into())),
        (5_901, FaultAction::Isolate("grid-north".into())),
        (
            5_951,
            FaultAction::Partition(["source".to_string()].into_iter().collect()),
        ),
        (
            6_001,
            FaultAction::Partition(grid_source.into_iter().collect()),
        ),
        (9_086, FaultAction::Heal),
        (10_777, FaultAction::Heal),
        (10_986, FaultAction::Heal),
    ];
    for seed in [367_020, 389_037] {
        let mut simulation = Simulation::new(small(), seed, SAFETY_MS);
        simulation.plan = FaultPlan {
            network: NetworkFaults::default(),
            events: events.clone(),
        };
        let outcome = simulation.run().expect("the simulation runs");
        eprintln!("L1 not judged: {:#?}", outcome.l1_exempt);
        assert!(
            outcome.broken.is_empty(),
            "seed {seed}: {:#?}",
            outcome.broken
        );
    }
}

/// Found by `no_schedule_breaks_an_invariant` with 32 cases of the default generator seed
/// (shrunk): the load relay crashes at 1 s and restarts 50 ms later. The restarted relay,
/// its lease still valid, serves its own epoch again at once (its `TookOver` at 1050 ms),
/// and no failover is needed; the checker's L1 wanted a newer epoch and broke. L1 now
/// counts the crashed relay's own take-over of its epoch after the crash.
#[test]
fn regression_seed_253911_relay_restarted_at_once_serves_again() {
    let mut simulation = Simulation::new(small(), 253_911, SAFETY_MS);
    simulation.plan = FaultPlan {
        network: NetworkFaults::default(),
        events: vec![
            (1_000, FaultAction::Crash("load-mall".into())),
            (1_050, FaultAction::Restart("load-mall".into())),
        ],
    };
    let outcome = simulation.run().expect("the simulation runs");
    assert!(outcome.broken.is_empty(), "{:#?}", outcome.broken);
}

/// Found by `no_schedule_breaks_an_invariant` with 32 cases of the default generator seed at
/// 1806c80 (shrunk; shrinking stopped at its 64 iterations): 1% drops, 3–4 ms delays;
/// source-wind, the source relay, crashes at 1 s (the other steps do not touch source: the
/// `crash-relay:source` at 1.1 s finds its relay already down). The supervisor promotes
/// its backup (a21db6d2 in the log) at 1450 ms (epoch 2), with 3c662461 as new backup. The
/// new relay seals epoch-2 blocks from 1704 ms and its backup confirms and commits them,
/// but the relay never commits them itself, so it never sends them on nor reports
/// `TookOver` of epoch 2 until the rotation to epoch 3 (6458 ms): L1 breaks (bound 912 ms).
///
/// Diagnosis (a member-machine bug): the new backup held no copies before, and catching up
/// syncs every member lane but its own, so the relay's replication of the backup's own next
/// block (height 2) shows a gap: the backup parks it and asks the relay once for its lane
/// from height 1. That request was dropped. Every later `Replicate` of the block found it
/// already parked and asked nothing more, so it stayed parked, unconfirmed, for good. The
/// relay released its confirmed entries strictly from the front of one queue, so the relay
/// blocks the backup did confirm waited behind that acknowledgement: never stored, sent or
/// announced. The fix (member machine): a backup asks the relay again, every resend
/// interval, for each chain it still waits on (a parked block's gap, the catch-up); and the
/// relay releases relay blocks in lane order and each member's acknowledgements in that
/// member's order, one order not waiting on another. Safety is unchanged: each entry still
/// waits for its own confirmation (D4), relay blocks and each member's cumulative
/// acknowledgements keep their order. Machine test:
/// `lost_sync_of_a_parked_block_stalls_neither_the_lane_nor_the_ack` in
/// `core/tests/machines.rs`. Passes; no longer ignored.
///
/// Replay: `ieschain simulate --config SMALL --seed 896714 --until 20 --faults
/// 'drop:0.01,delay:3-4ms,crash:source-wind@1000ms,crash:grid-south@1050ms,crash-relay:source@1100ms,pause:grid-south@1150ms+50ms,pause:load-factory@1250ms+50ms,crash-relay:load@1350ms'`
/// (the same failure as the plan below, which has two more heals).
#[test]
fn regression_seed_896714_new_relay_never_commits_confirmed_blocks() {
    let mut simulation = Simulation::new(small(), 896_714, SAFETY_MS);
    simulation.plan = FaultPlan {
        network: NetworkFaults {
            drop: 0.01,
            duplicate: 0.0,
            delay_ms: (3, 4),
        },
        events: vec![
            (1_000, FaultAction::Crash("source-wind".into())),
            (1_050, FaultAction::Crash("grid-south".into())),
            (1_100, FaultAction::CrashRelay("source".into())),
            (1_150, FaultAction::Isolate("grid-south".into())),
            (1_200, FaultAction::Heal),
            (1_250, FaultAction::Isolate("load-factory".into())),
            (1_300, FaultAction::Heal),
            (1_350, FaultAction::CrashRelay("load".into())),
            (2_605, FaultAction::Heal),
            (3_193, FaultAction::Heal),
        ],
    };
    let outcome = simulation.run().expect("the simulation runs");
    assert!(outcome.broken.is_empty(), "{:#?}", outcome.broken);
}

/// Found by `no_schedule_breaks_an_invariant` with 32 cases of the default generator seed at
/// c090c1d: grid's relay and then its backup (grid-east) crash; the failover elects a relay
/// with no backup, which waits for the deposed backup (the keeper of every block the old
/// relay confirmed) before it produces, and the keeper stays down for the rest of the
/// safety phase. A newcomer joined through that relay meanwhile: its join completed, but
/// no relay block ever carried its registry entry, so its own blocks had an unknown signer
/// (S4). A relay now answers join requests only once it produces; the newcomer asks again.
#[test]
fn regression_seed_360450_join_through_a_relay_still_taking_over() {
    let outcome = run(
        360_450,
        SAFETY_MS,
        "delay:0-1ms,partition:source@1000ms+2601ms,partition:grid@1050ms+1057ms,\
         restart:grid-east@1100ms,pause:source-wind@1150ms+3584ms,crash:source-wind@1200ms,\
         crash:source-wind@1250ms,crash-relay:grid@1300ms,crash:grid-east@1350ms",
        Mutations::default(),
    );
    assert!(outcome.broken.is_empty(), "{:#?}", outcome.broken);
}

/// Found by `no_schedule_breaks_an_invariant` with `PROPTEST_CASES=200
/// PROPTEST_RNG_SEED=7` at f5245c7: the source relay crashes at 1.1 s; its backup is
/// elected at 1.65 s and is ready to produce at 1.68 s, but holds no lease: the
/// supervisor's lease for the new epoch overtook the election record on the way and was
/// dropped, as for an epoch the node did not serve, so the relay waited for the next
/// heartbeat's renewal and took over 406 ms after the election (L1, bound 936 ms). A lease
/// that arrives before its election is now kept for that epoch.
#[test]
fn regression_seed_3401_lease_before_its_election() {
    let outcome = run(
        3_401,
        SAFETY_MS,
        "drop:0.02,delay:0-12ms,restart:source-wind@1050ms,crash-relay:source@1100ms",
        Mutations::default(),
    );
    assert!(outcome.broken.is_empty(), "{:#?}", outcome.broken);
}

/// Found by `no_schedule_breaks_an_invariant` with `PROPTEST_CASES=200
/// PROPTEST_RNG_SEED=11` at f5245c7: load's relay crashes, then another of its candidates;
/// the new relay waits on a backup that is down, a newcomer joins meanwhile, and its
/// registry entry never reaches the lane, so its blocks have an unknown signer (S4).
/// Passes since 43fb8d9, which replaces a failed backup even when no other candidate is
/// alive (the relay goes on without one).
#[test]
fn regression_seed_428151_relay_and_candidates_down() {
    let outcome = run(
        428_151,
        SAFETY_MS,
        "delay:0-5ms,crash-relay:load@1000ms,crash:source-wind@1050ms,crash:load-campus@1100ms",
        Mutations::default(),
    );
    assert!(outcome.broken.is_empty(), "{:#?}", outcome.broken);
}

/// Found by `no_schedule_breaks_an_invariant` with `PROPTEST_CASES=200
/// PROPTEST_RNG_SEED=7` at ecb924a: grid's relay crashes at 3.4 s and load's relay at 3.45 s.
/// grid's backup is elected at 4.0 s but waited the whole sync timeout for the other
/// relays' copies of its lane, one of them the crashed relay of load, then for its new
/// backup: it took over 457 ms after the election (L1, bound 936 ms). Passes since SPEC
/// §14: a take-over reads only the source configuration's copy (here the new relay's own:
/// it was the source's backup) and waits for no other lane.
#[test]
fn regression_seed_3497_new_relay_waits_for_a_dead_relay_of_another_lane() {
    let outcome = run(
        3_497,
        SAFETY_MS,
        "drop:0.02,delay:0-12ms,restart:source-wind@1050ms,restart:source-wind@3351ms,\
         crash:grid-east@3401ms,crash-relay:load@3451ms,pause:source-solar@3501ms+4834ms",
        Mutations::default(),
    );
    assert!(outcome.broken.is_empty(), "{:#?}", outcome.broken);
}

/// Found with `PROPTEST_CASES=200 PROPTEST_RNG_SEED=11` and `=23` at ecb924a (seeds 859572
/// and 135719): a relay cut off from the supervisor, its lease run out, still accepted a
/// join; the failover's new relay never put the newcomer's registry entry on the lane, so
/// its blocks had an unknown signer (S4). A relay answers join requests only while it
/// holds a lease (`Member::producing`), as well as only once it has taken over.
#[test]
fn regression_seeds_859572_135719_join_through_a_relay_without_a_lease() {
    for (seed, faults) in [
        (
            859_572,
            "drop:0.03,delay:3-6ms,crash:grid-north@4917ms,partition:grid@4967ms+637ms",
        ),
        (
            135_719,
            "delay:0-10ms,restart:source-wind@1000ms,pause:grid-east@1050ms+601ms",
        ),
    ] {
        let outcome = run(seed, SAFETY_MS, faults, Mutations::default());
        assert!(
            outcome.broken.is_empty(),
            "seed {seed}: {:#?}",
            outcome.broken
        );
    }
}

/// Runs `events` (the exact plan a property failure printed) on the small federation.
fn replay(seed: u64, network: NetworkFaults, events: Vec<(u64, FaultAction)>) -> SimulationOutcome {
    let mut simulation = Simulation::new(small(), seed, SAFETY_MS);
    simulation.plan = FaultPlan { network, events };
    simulation.run().expect("the simulation runs")
}

fn isolate(name: &str) -> FaultAction {
    FaultAction::Isolate(name.into())
}

fn crash(name: &str) -> FaultAction {
    FaultAction::Crash(name.into())
}

fn restart(name: &str) -> FaultAction {
    FaultAction::Restart(name.into())
}

fn crash_relay(name: &str) -> FaultAction {
    FaultAction::CrashRelay(name.into())
}

fn partition(name: &str) -> FaultAction {
    FaultAction::Partition([name.to_string()].into_iter().collect())
}

/// Found by `PROPTEST_CASES=200 PROPTEST_RNG_SEED=29` at 61cf7c4; it fails at 0d2a7cd too.
/// source-wind crashes, is paused, and the source relay crashes; acknowledged blocks of
/// 5d0553da never reach lane #0 (S3). Passes since relays report their stored lane head in
/// heartbeats (see seed 382419 below).
#[test]
fn regression_seed_303006_acknowledged_blocks_missing() {
    let outcome = replay(
        303_006,
        NetworkFaults::default(),
        vec![
            (1_000, crash("source-wind")),
            (1_050, restart("grid-north")),
            (1_100, restart("grid-south")),
            (1_150, isolate("source-wind")),
            (1_200, FaultAction::Heal),
            (1_250, crash_relay("source")),
            (3_310, FaultAction::Heal),
        ],
    );
    assert!(outcome.broken.is_empty(), "{:#?}", outcome.broken);
}

/// Found by `PROPTEST_CASES=200 PROPTEST_RNG_SEED=11` at 61cf7c4: source's relay loses its
/// backup; the supervisor draws a new one on the lane head the relay reported in its
/// heartbeat, height 7, a block the relay had produced but its backup never confirmed.
/// The relay is then deposed and block 7 rolled back; the failover's relay carries that
/// election record in its take-over block, whose check fails ("election: lane head at
/// height 7 is not on this lane", D5) every time: no take-over for the rest of the run,
/// and the blocks it acknowledged degraded never reach the lane (S3). A relay now reports
/// its stored head in heartbeats, as it already did on a hand-over.
#[test]
fn regression_seed_382419_degraded_relay_never_takes_over() {
    let outcome = replay(
        382_419,
        NetworkFaults {
            drop: 0.01,
            duplicate: 0.0,
            delay_ms: (3, 9),
        },
        vec![
            (1_000, restart("source-wind")),
            (1_050, restart("source-wind")),
            (1_100, isolate("source-gas")),
            (1_150, crash_relay("grid")),
            (1_200, restart("source-solar")),
            (1_250, isolate("source-solar")),
            (1_901, FaultAction::Heal),
            (4_525, FaultAction::Heal),
        ],
    );
    assert!(outcome.broken.is_empty(), "{:#?}", outcome.broken);
}

/// Found by `PROPTEST_CASES=200 PROPTEST_RNG_SEED=23` at 61cf7c4: load partitioned and its
/// relay crashed, source partitioned, then grid's relay and another grid member crash;
/// acknowledged blocks of lane #1 are missing from a relay's copy (S3). The same class as
/// seed 382419, from another source: relays of lane #1 fail "election: lane head at height
/// 20 is not on this lane" on every block, so an election was drawn on a head that never
/// reached the lane (perhaps a backup's report of a block its relay never released).
/// Passes since SPEC §14: elections draw on the released head of the last active
/// configuration, which its relay reports, and every config block goes on the lane the
/// source's copy holds.
#[test]
fn regression_seed_855454_acknowledged_blocks_missing_after_overlapping_faults() {
    let outcome = replay(
        855_454,
        NetworkFaults {
            drop: 0.02,
            duplicate: 0.0,
            delay_ms: (3, 23),
        },
        vec![
            (3_933, partition("load")),
            (3_983, isolate("load-campus")),
            (4_033, crash_relay("load")),
            (4_083, partition("source")),
            (4_133, crash("load-mall")),
            (5_673, crash_relay("grid")),
            (5_723, FaultAction::Heal),
            (5_773, FaultAction::Heal),
            (5_823, crash("grid-south")),
            (5_903, FaultAction::Heal),
            (6_004, FaultAction::Heal),
            (7_914, FaultAction::Heal),
        ],
    );
    assert!(outcome.broken.is_empty(), "{:#?}", outcome.broken);
}

/// Found by the campaign `scripts/campaign.sh 301 310 500` (generator seed 301) at 5531780:
/// source's first relay, isolated, keeps sealing blocks 5..=7 of epoch 1 that its backup
/// never confirms; the failover's relay writes 5..=9 of epoch 2; both source members then
/// crash, and the lane stalls (correctly) with the first relay elected again. Once they
/// restart, that relay's sealed read names its copy by a sparse locator (7, 6, 5, 3): the
/// answers find height 3 in common, below block 4, which it had released, and it refused
/// to drop it, every time: the lane never came back (S3 at the end, S2 between copies).
/// Own-lane locators are now pinned at the node's released height. Seed 392875 (generator
/// seed 302) is the same defect after a pause and a muted candidate.
#[test]
fn regression_seed_580882_a_sparse_locator_below_the_released_head() {
    for (seed, faults) in [
        (
            580_882,
            "partition:load@1000ms+1401ms,pause:source-gas@1050ms+1383ms,crash:source-wind@2844ms,crash-relay:source@2894ms",
        ),
        (
            392_875,
            "pause:source-wind@1000ms+1801ms,crash-relay:source@2754ms,mute:source-solar@2804ms+1618ms",
        ),
    ] {
        let outcome = run(seed, SAFETY_MS, faults, Mutations::default());
        assert!(outcome.broken.is_empty(), "seed {seed}: {:#?}", outcome.broken);
    }
}

/// Found by the campaign `scripts/campaign.sh 201 210 50` at ac2d423 (generator seeds 206
/// and 210), both L1: a take-over's message lost on the way (an election record to the
/// new relay, a catch-up to its backup) cost a retry interval, and the take-over missed
/// the bound. A lost take-over message is now reported to the checker as a fault (L1
/// presumes no other fault), and the supervisor reminds a pending configuration's relay
/// and backup of their election every take-over retry, so one loss costs half a
/// heartbeat, not two. The second plan is on the four-party federation with its protocols.
#[test]
fn regression_seeds_447751_732732_a_lost_take_over_message() {
    let outcome = run(
        447_751,
        SAFETY_MS,
        "drop:0.03,dup:0.03,delay:3-7ms,restart:source-wind@3716ms,\
         pause:load-factory@6814ms+2153ms,crash-relay:grid@10419ms",
        Mutations::default(),
    );
    assert!(outcome.broken.is_empty(), "{:#?}", outcome.broken);
    let config = FederationConfig::four_party();
    let mut simulation = Simulation::new(config.clone(), 732_732, SAFETY_MS);
    simulation.plan = FaultPlan::parse(
        "drop:0.02,delay:6-14ms,crash-relay:source@1637ms,crash:service-maintenance@1687ms,\
         mute:service-design@1951ms+815ms,crash-relay:grid@2001ms",
        &config,
        732_732,
        SAFETY_MS,
    )
    .expect("a valid plan");
    let outcome = simulation.run().expect("the simulation runs");
    assert!(outcome.broken.is_empty(), "{:#?}", outcome.broken);
}

/// Found by the campaign `scripts/campaign.sh 301 310 500` (generator seed 304) at 83c448c:
/// load's relay crashes just after storing block 3, which its backup confirms but the
/// relay never hears; it restarts at once and resumes its active configuration. Resuming,
/// it took its whole copy as released without releasing it (no broadcast, no `Committed`),
/// and reported height 3 as released in its heartbeats; the supervisor drew the next
/// election on a head no one had seen released ("released head"). A resumed relay now
/// releases its copy's last blocks again, in order, each announced.
#[test]
fn regression_seed_791066_a_resumed_relay_releases_its_tail() {
    let outcome = run(
        791_066,
        SAFETY_MS,
        "delay:6-7ms,mute:grid-east@1000ms+601ms,crash-relay:load@1050ms,\
         restart:load-factory@1100ms,pause:load-campus@1150ms+3131ms",
        Mutations::default(),
    );
    assert!(outcome.broken.is_empty(), "{:#?}", outcome.broken);
}

/// Found by the campaign `scripts/campaign.sh 301 310 500` (generator seed 305) at 83c448c:
/// source's backup, promoted, builds its config block, but it is partitioned before the
/// supervisor activates it; the next configuration reads the first one's copy and goes on
/// without that block. The old backup, with no duty from then on, kept the block for good:
/// relay/#0 differed between copies at its height (S2, in the final check of every copy).
/// A node with no duty that is not a member of the newest election's source now brings its
/// copy in line with its relay's released lane. The same campaign found the same defect
/// on lane #1 twice more (generator seeds 307 and 309: simulation seeds 782739, 534621).
#[test]
fn regression_seed_907785_an_idle_node_keeps_an_unactivated_config_block() {
    for (seed, faults) in [
        (
            907_785,
            "drop:0.03,delay:9-18ms,mute:load-factory@1000ms+2801ms,\
             pause:source-wind@1748ms+2101ms,restart:source-wind@1798ms,\
             partition:grid+source@1848ms+3705ms,partition:grid+load@1898ms+4739ms,\
             crash-relay:load@1948ms",
        ),
        (
            782_739,
            "drop:0.01,delay:4-4ms,mute:source-solar@1000ms+2302ms,\
             pause:grid-east@1050ms+3588ms,restart:load-factory@1653ms,\
             crash-relay:grid@1703ms",
        ),
        (
            534_621,
            "drop:0.01,delay:0-12ms,mute:grid-north@1000ms+3999ms,\
             mute:load-campus@1050ms+4551ms,partition:grid+source@1100ms+5398ms,\
             crash-relay:source@4904ms,crash:source-gas@4954ms,mute:grid-east@5004ms+2111ms",
        ),
    ] {
        let outcome = run(seed, SAFETY_MS, faults, Mutations::default());
        assert!(
            outcome.broken.is_empty(),
            "seed {seed}: {:#?}",
            outcome.broken
        );
    }
}

// ----- broken variants -----

fn run(seed: u64, until_ms: u64, faults: &str, mutations: Mutations) -> SimulationOutcome {
    let config = small();
    let mut simulation = Simulation::new(config.clone(), seed, until_ms);
    simulation.plan = FaultPlan::parse(faults, &config, seed, until_ms).expect("a valid plan");
    simulation.mutations = mutations;
    simulation.run().expect("the simulation runs")
}

/// Runs seeds 1..=50 with `mutations` until the checker names one of `invariants` (a
/// broken line starting with it); then checks that the same seed without the mutation
/// breaks nothing. Returns the seed.
fn caught_within_50_seeds(
    mutations: Mutations,
    until_ms: u64,
    faults: &str,
    invariants: &[&str],
) -> u64 {
    for seed in 1..=50 {
        let outcome = run(seed, until_ms, faults, mutations);
        let named = outcome
            .broken
            .iter()
            .any(|line| invariants.iter().any(|name| line.starts_with(name)));
        if named {
            let names: BTreeSet<&str> = outcome
                .broken
                .iter()
                .filter_map(|line| line.split(':').next())
                .collect();
            eprintln!("{mutations:?}: seed {seed} breaks {names:?}");
            let clean = run(seed, until_ms, faults, Mutations::default());
            assert!(
                clean.broken.is_empty(),
                "seed {seed} breaks without the mutation: {:#?}",
                clean.broken
            );
            return seed;
        }
    }
    panic!("{mutations:?} under `{faults}` was not caught as {invariants:?} within 50 seeds");
}

/// Two source candidates cut off from the supervisor only (`mute`), so that it fails the
/// pair over to the third, which reads the lane from them: their configuration is the
/// source. The plan for the sealing variants below.
const MUTED_PAIR: &str = "mute:grid-north@3s+3s,mute:grid-south@3s+3s,\
                          mute:load-mall@7s+3s,mute:load-campus@7s+3s";

/// Without fencing by seals, the relay and backup that a new relay's sealed read sealed go
/// on acknowledging and releasing for their old epoch (they are cut off from the supervisor
/// and do not hear of the new election): what they acknowledge after the read is not in
/// the copy the new relay took over with. Caught as fenced writes (SPEC §14) and
/// completeness at take-over.
#[test]
fn no_fencing_is_caught() {
    let mutations = Mutations {
        no_fencing: true,
        ..Mutations::default()
    };
    let seed = caught_within_50_seeds(
        mutations,
        15_000,
        MUTED_PAIR,
        &["fenced writes", "completeness at take-over"],
    );
    eprintln!("no_fencing caught at seed {seed}");
}

/// A node answering a sealed read without sealing itself (the model's `noseal`): the old
/// configuration goes on acknowledging what the read missed. Caught as fenced writes (a
/// node that answered a read for epoch e is sealed at e, SPEC §14), completeness at
/// take-over, and S3.
#[test]
fn no_seal_is_caught() {
    let mutations = Mutations {
        no_seal: true,
        ..Mutations::default()
    };
    let seed = caught_within_50_seeds(
        mutations,
        15_000,
        MUTED_PAIR,
        &["fenced writes", "completeness at take-over", "S3"],
    );
    eprintln!("no_seal caught at seed {seed}");
}

/// A lost backup only swapped, as before SPEC §14: the supervisor counts the new
/// configuration as active without an activation, and the relay goes on without a
/// take-over. The next election's source is then not an activated configuration
/// (activation order), and a new backup that never caught up may take the lane over
/// without acknowledged blocks (completeness at take-over).
#[test]
fn backup_lost_keeping_the_epoch_is_caught() {
    let mutations = Mutations {
        backup_lost_keeps_epoch: true,
        ..Mutations::default()
    };
    let faults = "drop:0.05,delay:1-20ms,crash-relay:source@3s,pause:grid-north@5s+2s,\
                  partition:load@7s+2s";
    let seed = caught_within_50_seeds(
        mutations,
        15_000,
        faults,
        &["activation order", "completeness at take-over", "S3"],
    );
    eprintln!("backup_lost_keeps_epoch caught at seed {seed}");
}

/// An election drawn on the lane head a backup reports, which may hold blocks its relay
/// never released: caught as released head (SPEC §14).
#[test]
fn head_from_a_backup_is_caught() {
    let mutations = Mutations {
        head_from_backup: true,
        ..Mutations::default()
    };
    let faults = "drop:0.05,delay:1-20ms,crash-relay:source@3s,pause:grid-north@5s+2s,\
                  partition:load@7s+2s";
    let seed = caught_within_50_seeds(mutations, 15_000, faults, &["released head"]);
    eprintln!("head_from_backup caught at seed {seed}");
}

/// A relay that releases its config block and acknowledges once its backup has caught up,
/// without the supervisor's activation: caught as activation order (SPEC §14).
#[test]
fn release_before_activation_is_caught() {
    let mutations = Mutations {
        release_before_activation: true,
        ..Mutations::default()
    };
    let seed = caught_within_50_seeds(mutations, 10_000, "", &["activation order"]);
    eprintln!("release_before_activation caught at seed {seed}");
}

/// A relay that acknowledges before its backup has the block breaks SPEC §12 D4: the
/// acknowledgement means the block is durable at the relay and at the backup.
///
/// Caught by the checker's direct D4 check, named S3 (D4): when a member hears its block
/// acknowledged by the relay of epoch e, one of epoch e's backups has already stored it
/// (`Event::Stored`), or, in a configuration without a backup, the relay itself has.
/// The mutation acknowledges at once and replicates alongside, so an acknowledgement that
/// overtakes its replication (or a replication dropped, which the mutated relay never
/// retries) is named. Caught at seed 1. The relay crashes are kept from the old version of
/// this test: S3 at the end (acknowledged, then lost) no longer sees the mutation since
/// 1806c80, because a new relay syncs every member's lane at take-over and recovers an
/// early-acknowledged block from its author.
#[test]
fn ack_before_replication_is_caught() {
    let mutations = Mutations {
        ack_before_replication: true,
        ..Mutations::default()
    };
    let faults = "drop:0.1,delay:1-20ms,crash-relay:source@3s,crash-relay:grid@5s,\
                  crash-relay:load@7s,crash-relay:source@9s,crash-relay:grid@11s";
    let seed = caught_within_50_seeds(mutations, 13_000, faults, &["S3 (D4)"]);
    eprintln!("ack_before_replication caught at seed {seed}");
}

/// An election drawn with a seed the chain does not give does not recompute (S5). The new
/// relay validates its config block, which carries the record, before it stores it, and
/// refuses it: no such election reaches a store and the final `verify` (S4) never sees
/// one. The checker names the relay's invalid block (S4).
#[test]
fn unseeded_election_is_caught() {
    let mutations = Mutations {
        unseeded_election: true,
        ..Mutations::default()
    };
    let seed = caught_within_50_seeds(mutations, 10_000, "", &["S3", "S4", "S5"]);
    eprintln!("unseeded_election caught at seed {seed}");
}
