//! The federation configuration (SPEC §10 "Configuration (TOML)", §12 D2, D13): the shipped
//! files parse and build valid genesis records, the defaults are D13's, and every bad
//! configuration is refused with one line naming the file and the key, never a panic.
#![allow(clippy::unwrap_used)] // Tests may unwrap (STYLE "Gates").

use std::path::PathBuf;
use std::time::Duration;

use ieschain::config::{
    ConfigError, ElectionForm, FederationConfig, GridQuorum, TimingConfig, FOUR_PARTY_TOML,
};
use ieschain_core::crypto::{Domain, Keypair};
use ieschain_core::election::WeightFn;
use ieschain_core::genesis::Capacities;
use ieschain_core::record::Role;
use ieschain_core::window::WindowConfig;
use ieschain_core::ConsortiumId;
use proptest::prelude::*;

fn federations() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("federations")
}

/// A small valid federation, written with inline tables so tests can edit it by replacing
/// text.
const VALID: &str = r#"
seed = 7

[timing]
window = 6
max_wait = "500ms"

[workload.records]
meter_reading = 1.0

[[consortiums]]
name = "source"
members = [
  { name = "source-1", role = "enterprise", relay_capable = true },
  { name = "source-2", role = "enterprise", relay_capable = true },
  { name = "source-3", role = "user" },
]

[[consortiums]]
name = "grid"
members = [
  { name = "grid-1", role = "enterprise", relay_capable = true, line_capacity_wh = 1000 },
  { name = "grid-2", role = "enterprise", relay_capable = true, line_capacity_wh = 2000 },
]
"#;

/// `VALID` with one piece of text replaced; panics if the piece is not there, so a test
/// can never pass by editing nothing.
fn edit(from: &str, to: &str) -> String {
    assert!(VALID.contains(from), "the test's base text lacks {from:?}");
    VALID.replacen(from, to, 1)
}

/// Parses `text` as `bad.toml`, expects a refusal, and checks that its message is one line
/// that starts with the file and the key.
fn refuse(text: &str, key: &str) -> String {
    let error = match FederationConfig::from_toml_str(text, "bad.toml") {
        Ok(config) => panic!("accepted a bad configuration: {config:?}"),
        Err(error) => error,
    };
    let message = error.to_string();
    assert!(!message.contains('\n'), "not one line: {message}");
    let prefix = format!("bad.toml: {key}: expected ");
    assert!(
        message.starts_with(&prefix),
        "expected the message to start with {prefix:?}, got: {message}"
    );
    message
}

/// The shipped four-party.toml parses, and equals the built-in default, which embeds it.
#[test]
fn four_party_file_equals_the_built_in_default() {
    let from_file = FederationConfig::from_file(federations().join("four-party.toml")).unwrap();
    assert_eq!(from_file, FederationConfig::four_party());
    let names: Vec<_> = from_file
        .consortiums
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["source", "grid", "service", "load"]);
}

/// The four-party file writes out every default, so a user who copies it sees the real
/// defaults: its timing, capacities, election and workload equal those of a file that
/// omits them.
#[test]
fn four_party_states_the_defaults() {
    let four = FederationConfig::four_party();
    let minimal = FederationConfig::from_toml_str(
        &edit("[timing]\nwindow = 6\nmax_wait = \"500ms\"\n", "")
            .replace("[workload.records]\nmeter_reading = 1.0\n", "")
            .replace("seed = 7\n", ""),
        "minimal.toml",
    )
    .unwrap();
    assert_eq!(four.timing, minimal.timing);
    assert_eq!(four.capacities, minimal.capacities);
    assert_eq!(four.election, minimal.election);
    assert_eq!(four.workload, minimal.workload);
    assert_eq!(four.grid_quorum, minimal.grid_quorum);
    assert_eq!(four.seed, minimal.seed);
    assert_eq!(minimal.seed, 1);
}

/// The defaults are SPEC §12 D13's: window 6, max_wait 500 ms, member_max_wait 200 ms,
/// period 10 s, heartbeat 200 ms, suspect_after 3; 1 Mbit and 8 Mbit; f(E) = exp(-3E);
/// and the window settings are core's defaults for those capacities.
#[test]
fn defaults_are_those_of_d13() {
    let timing = TimingConfig::default();
    assert_eq!(timing.window, 6);
    assert_eq!(timing.max_wait, Some(Duration::from_millis(500)));
    assert_eq!(timing.member_max_wait, Duration::from_millis(200));
    assert_eq!(timing.period, Duration::from_secs(10));
    assert_eq!(timing.heartbeat_interval, Duration::from_millis(200));
    assert_eq!(timing.suspect_after, 3);
    assert_eq!(timing.suspect_timeout(), Duration::from_millis(600));
    let four = FederationConfig::four_party();
    assert_eq!(four.capacities(), Capacities::default());
    assert_eq!(four.weight_fn().unwrap(), WeightFn::default());
    assert_eq!(
        four.window_config(),
        WindowConfig::new(&Capacities::default())
    );
    assert_eq!(four.timing.max_wait_ms(), Some(500));
    assert_eq!(four.timing.period_ms(), 10_000);
}

/// Groups expand to numbered members, and grid members' line capacities are found by
/// name, individually declared or in a group.
#[test]
fn members_and_line_capacities() {
    let four = FederationConfig::four_party();
    let names: Vec<_> = four.members().map(|m| m.name).collect();
    assert!(names.contains(&"load-home-1".to_string()), "{names:?}");
    assert!(names.contains(&"load-home-2".to_string()), "{names:?}");
    assert!(!names.contains(&"load-home".to_string()), "{names:?}");
    assert_eq!(four.member_count(), names.len() as u64);
    assert_eq!(four.line_capacity_wh("grid-north"), Some(50_000));
    assert_eq!(four.line_capacity_wh("grid-west"), Some(20_000));
    assert_eq!(four.line_capacity_wh("source-wind"), None);
    assert_eq!(four.grid(), Some(ConsortiumId(1)));
    assert_eq!(four.grid_approvals_needed(), Some(4));
    for member in four.members() {
        assert_eq!(
            member.line_capacity_wh.is_some(),
            member.consortium == ConsortiumId(1),
            "{member:?}"
        );
    }
    let large = FederationConfig::large();
    assert_eq!(large.line_capacity_wh("grid-feeder-180"), Some(50_000));
    assert_eq!(large.line_capacity_wh("grid-substation-1"), Some(500_000));
    assert_eq!(large.line_capacity_wh("grid-feeder-181"), None);
}

/// The four-party genesis passes `Genesis::check`; every registered member's key is in
/// `Keys` and is derived from the seed and its name (D2); the supervisor's and the derived
/// admission keys are the documented derivations.
#[test]
fn four_party_genesis_is_valid_and_keys_are_derived() {
    let four = FederationConfig::four_party();
    let (genesis, keys) = four.genesis(1).unwrap();
    genesis.check().unwrap();
    assert_eq!(genesis.seed, 1);
    assert_eq!(genesis.consortiums.len(), 4);
    assert_eq!(keys.len() as u64, four.member_count());
    assert_eq!(
        genesis.supervisor,
        Keypair::derive(Domain::SupervisorKey, 1, "supervisor").public()
    );
    for consortium in &genesis.consortiums {
        let admission = keys.admission(consortium.id).unwrap();
        assert_eq!(admission.public(), consortium.admission_key);
        assert_eq!(
            admission.public(),
            Keypair::derive(Domain::AdmissionKey, 1, &consortium.name).public()
        );
        for entry in &consortium.members {
            let key = keys.member(&entry.name).unwrap();
            assert_eq!(key.public(), entry.public_key);
            assert_eq!(
                keys.by_address(&entry.address).unwrap().public(),
                entry.public_key
            );
            assert_eq!(keys.name_of(&entry.address), Some(entry.name.as_str()));
            assert_eq!(
                key.public(),
                Keypair::derive(Domain::NodeKey, 1, &entry.name).public()
            );
        }
    }
    let wind = genesis.consortiums[0]
        .members
        .iter()
        .find(|e| e.name == "source-wind")
        .unwrap();
    assert_eq!(wind.role, Role::Enterprise);
    assert!(wind.relay_capable);
}

/// The same seed gives the same genesis, byte for byte; another seed gives other keys and
/// another genesis, but the same config hash (the seed is its own field).
#[test]
fn genesis_is_deterministic_per_seed() {
    let four = FederationConfig::four_party();
    let (a, _) = four.genesis(5).unwrap();
    let (b, _) = four.genesis(5).unwrap();
    let (c, _) = four.genesis(6).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.hash(), b.hash());
    assert_ne!(a.hash(), c.hash());
    assert_ne!(a.supervisor, c.supervisor);
    assert_ne!(a.consortiums[0].members, c.consortiums[0].members);
    assert_eq!(a.config_hash, c.config_hash);
}

/// The config hash covers what the federation is, not how the file is written: comments
/// and the seed leave it alone, a changed setting changes it, and the canonical form parses
/// back to the same configuration.
#[test]
fn config_hash_covers_content_not_layout() {
    let base = FederationConfig::from_toml_str(VALID, "a.toml").unwrap();
    let commented = FederationConfig::from_toml_str(
        &format!("# a comment\n{}", edit("seed = 7", "seed = 8")),
        "b.toml",
    )
    .unwrap();
    assert_eq!(
        base.config_hash().unwrap(),
        commented.config_hash().unwrap()
    );
    let changed =
        FederationConfig::from_toml_str(&edit("window = 6", "window = 5"), "c.toml").unwrap();
    assert_ne!(base.config_hash().unwrap(), changed.config_hash().unwrap());
    let four = FederationConfig::four_party();
    let canonical = String::from_utf8(four.canonical_bytes().unwrap()).unwrap();
    let reparsed = FederationConfig::from_toml_str(&canonical, "canonical.toml").unwrap();
    assert_eq!(
        FederationConfig {
            seed: four.seed,
            ..reparsed
        },
        four
    );
}

/// `[runtime]` is read, refused when misspelt, and left out of the config hash: a data
/// directory reopens with the shared verification memo on or off.
#[test]
fn runtime_settings_parse_and_leave_the_genesis_alone() {
    let base = FederationConfig::from_toml_str(VALID, "a.toml").unwrap();
    assert!(base.runtime.shared_verification, "on by default");
    let off = FederationConfig::from_toml_str(
        &format!("{VALID}\n[runtime]\nshared_verification = false\n"),
        "b.toml",
    )
    .unwrap();
    assert!(!off.runtime.shared_verification);
    assert_eq!(base.config_hash().unwrap(), off.config_hash().unwrap());
    let err = FederationConfig::from_toml_str(
        &format!("{VALID}\n[runtime]\nshared_verifcation = false\n"),
        "c.toml",
    )
    .unwrap_err();
    assert!(err.to_string().contains("shared_verifcation"), "{err}");
    assert_eq!(base.runtime.actor_threads, 0, "one per core by default");
    assert!(base.runtime.node_threads() >= 1);
    let two = FederationConfig::from_toml_str(
        &format!("{VALID}\n[runtime]\nactor_threads = 2\n"),
        "d.toml",
    )
    .unwrap();
    assert_eq!(two.runtime.node_threads(), 2);
    assert_eq!(base.config_hash().unwrap(), two.config_hash().unwrap());
    for (value, names) in [
        ("300", "runtime.actor_threads"),
        ("-1", "actor_threads"),
        ("\"two\"", "actor_threads"),
    ] {
        let err = FederationConfig::from_toml_str(
            &format!("{VALID}\n[runtime]\nactor_threads = {value}\n"),
            "e.toml",
        )
        .unwrap_err();
        assert!(err.to_string().contains(names), "{value}: {err}");
    }
}

/// large.toml declares at least 10,000 members in at least four consortiums, and builds a
/// genesis that passes its check.
#[test]
fn large_federation_builds_its_genesis() {
    let large = FederationConfig::from_file(federations().join("large.toml")).unwrap();
    assert_eq!(large, FederationConfig::large());
    assert!(large.consortiums.len() >= 4);
    assert!(large.member_count() >= 10_000, "{}", large.member_count());
    assert_eq!(large.grid_quorum, GridQuorum::Count(101));
    let started = std::time::Instant::now();
    let (genesis, keys) = large.genesis(large.seed).unwrap();
    genesis.check().unwrap();
    let members: usize = genesis.consortiums.iter().map(|c| c.members.len()).sum();
    assert_eq!(members as u64, large.member_count());
    assert_eq!(keys.len(), members);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "building 10,000 keys took {:?}",
        started.elapsed()
    );
}

/// An admission key given in hex is used as is, and no private key is made up for it.
#[test]
fn a_given_admission_key_is_used() {
    let key = Keypair::derive(Domain::AdmissionKey, 99, "elsewhere").public();
    let hex: String = key.0.iter().map(|b| format!("{b:02x}")).collect();
    let text = edit(
        "name = \"grid\"\n",
        &format!("name = \"grid\"\nadmission_key = \"{hex}\"\n"),
    );
    let config = FederationConfig::from_toml_str(&text, "given.toml").unwrap();
    let (genesis, keys) = config.genesis(3).unwrap();
    assert_eq!(genesis.consortiums[1].admission_key, key);
    assert!(keys.admission(ConsortiumId(1)).is_none());
    assert!(keys.admission(ConsortiumId(0)).is_some());
}

/// The other election forms and "none" for max_wait are accepted and mean what they say.
#[test]
fn election_forms_and_no_max_wait() {
    let reciprocal = FederationConfig::from_toml_str(
        &edit(
            "[timing]",
            "election = { form = \"reciprocal\", k = 1.5 }\n[timing]",
        )
        .replace("max_wait = \"500ms\"", "max_wait = \"none\""),
        "r.toml",
    )
    .unwrap();
    assert_eq!(reciprocal.election.form, ElectionForm::Reciprocal);
    assert_eq!(
        reciprocal.weight_fn().unwrap(),
        WeightFn::Reciprocal { k_milli: 1500 }
    );
    assert_eq!(reciprocal.timing.max_wait, None);
    assert_eq!(reciprocal.window_config().max_wait_ms, None);
    let uniform = FederationConfig::from_toml_str(
        &edit("[timing]", "election = { form = \"uniform\" }\n[timing]"),
        "u.toml",
    )
    .unwrap();
    assert_eq!(uniform.weight_fn().unwrap(), WeightFn::Uniform);
}

/// A misspelt key is an error naming it and the keys that were expected, with its line.
#[test]
fn unknown_key() {
    let text = format!(
        "{VALID}\n[[consortiums]]\nname = \"load\"\n\n[[consortiums.members]]\nname = \"l1\"\nrole = \"user\"\nrelay_capabel = true\n"
    );
    let message = refuse(&text, "consortiums[2].members[0].relay_capabel");
    assert!(message.contains("unknown key `relay_capabel`"), "{message}");
    assert!(message.contains("`relay_capable`"), "{message}");
    let line = text
        .lines()
        .position(|l| l.starts_with("relay_capabel"))
        .unwrap()
        + 1;
    assert!(message.ends_with(&format!("at line {line}")), "{message}");
    refuse(
        &edit("[timing]\n", "[timing]\nwindows = 6\n"),
        "timing.windows",
    );
    refuse(&edit("seed = 7", "sede = 7"), "sede");
}

/// A value of the wrong type names the key, the type expected and the value found.
#[test]
fn wrong_type() {
    let message = refuse(
        &edit(
            "name = \"source-3\", role = \"user\" }",
            "name = \"source-3\", role = \"user\", relay_capable = \"yes\" }",
        ),
        "consortiums[0].members[2].relay_capable",
    );
    assert!(
        message.contains("expected a boolean, found string \"yes\""),
        "{message}"
    );
    let message = refuse(&edit("window = 6", "window = \"six\""), "timing.window");
    assert!(message.contains("\"six\""), "{message}");
    refuse(&edit("seed = 7", "seed = -7"), "seed");
    refuse(
        &edit("role = \"user\"", "role = \"admin\""),
        "consortiums[0].members[2].role",
    );
}

/// A duration without a known unit is refused, naming the key and the text.
#[test]
fn bad_duration() {
    let message = refuse(&edit("\"500ms\"", "\"5 parsecs\""), "timing.max_wait");
    assert!(
        message.contains("a duration such as \"500ms\""),
        "{message}"
    );
    assert!(message.contains("\"5 parsecs\""), "{message}");
    refuse(
        &edit("max_wait = \"500ms\"", "member_max_wait = 200"),
        "timing.member_max_wait",
    );
    refuse(
        &edit("max_wait = \"500ms\"", "heartbeat_interval = \"0ms\""),
        "timing.heartbeat_interval",
    );
}

/// A window of 8 does not let 8 full consortium blocks fit in a relay block with the
/// default capacities (SPEC §4.4, D7); 7 does.
#[test]
fn window_too_large_for_the_capacities() {
    let message = refuse(&edit("window = 6", "window = 8"), "timing.window");
    assert!(message.contains("from 1 to 7"), "{message}");
    assert!(message.contains("found 8"), "{message}");
    FederationConfig::from_toml_str(&edit("window = 6", "window = 7"), "ok.toml").unwrap();
    refuse(&edit("window = 6", "window = 0"), "timing.window");
}

/// Every consortium needs two relay-capable members (D13).
#[test]
fn one_relay_capable_member() {
    let message = refuse(
        &edit(
            "relay_capable = true, line_capacity_wh = 2000",
            "relay_capable = false, line_capacity_wh = 2000",
        ),
        "consortiums[1].members",
    );
    assert!(
        message.contains("at least two members with relay_capable"),
        "{message}"
    );
    assert!(message.contains("found 1"), "{message}");
}

/// A member name used twice, even across consortiums or through a group, is refused at
/// the second declaration, naming the first.
#[test]
fn duplicate_member_name() {
    let message = refuse(
        &edit("name = \"grid-2\"", "name = \"source-1\""),
        "consortiums[1].members[1].name",
    );
    assert!(
        message.contains("already consortiums[0].members[0].name"),
        "{message}"
    );
    assert!(message.contains("\"source-1\""), "{message}");
    let message = refuse(
        &edit(
            "{ name = \"source-3\", role = \"user\" }",
            "{ name = \"source\", count = 3, role = \"user\" }",
        ),
        "consortiums[0].members[2].name",
    );
    assert!(message.contains("\"source-1\""), "{message}");
    refuse(
        &edit("name = \"grid-2\"", "name = \"source\""),
        "consortiums[1].members[1].name",
    );
}

/// A federation needs at least two consortiums (SPEC §3).
#[test]
fn single_consortium() {
    let cut = VALID.find("[[consortiums]]\nname = \"grid\"").unwrap();
    let message = refuse(&VALID[..cut], "consortiums");
    assert!(message.contains("at least two consortiums"), "{message}");
    assert!(message.contains("found 1"), "{message}");
}

/// An unknown election form is refused naming the forms; so is a `k` that is not above 0.
#[test]
fn bad_election_form() {
    let message = refuse(
        &edit("[timing]", "election = { form = \"quadratic\" }\n[timing]"),
        "election.form",
    );
    assert!(message.contains("`exponential`"), "{message}");
    assert!(message.contains("found `quadratic`"), "{message}");
    refuse(
        &edit(
            "[timing]",
            "election = { form = \"exponential\", k = 0.0 }\n[timing]",
        ),
        "election.k",
    );
    refuse(
        &edit(
            "[timing]",
            "election = { form = \"uniform\", k = 2.0 }\n[timing]",
        ),
        "election.k",
    );
    refuse(
        &edit("[timing]", "election = { k = 2.0 }\n[timing]"),
        "election.form",
    );
}

/// Rates are finite and not negative.
#[test]
fn negative_rate() {
    let message = refuse(
        &edit("meter_reading = 1.0", "meter_reading = -1.0"),
        "workload.records.meter_reading",
    );
    assert!(message.contains("found -1"), "{message}");
    refuse(
        &edit("meter_reading = 1.0", "meter_reading = nan"),
        "workload.records.meter_reading",
    );
    refuse(
        &edit(
            "[workload.records]\nmeter_reading = 1.0",
            "[workload.protocols]\npower_purchase = inf",
        ),
        "workload.protocols.power_purchase",
    );
    refuse(
        &edit("meter_reading = 1.0", "meter_readings = 1.0"),
        "workload.records.meter_readings",
    );
}

/// A TOML syntax error gives the line and column toml reports.
#[test]
fn toml_syntax_error() {
    let text = edit("window = 6", "window = ");
    let error = FederationConfig::from_toml_str(&text, "bad.toml").unwrap_err();
    let line = text.lines().position(|l| l == "window = ").unwrap() + 1;
    let message = error.to_string();
    assert!(matches!(error, ConfigError::Syntax { .. }), "{error:?}");
    assert!(
        message.starts_with(&format!("bad.toml: line {line}, column ")),
        "{message}"
    );
    assert!(message.contains("expected valid TOML, found"), "{message}");
    assert!(!message.contains('\n'), "{message}");
}

/// A missing file is an I/O error that names the path.
#[test]
fn missing_file() {
    let path = federations().join("no-such-federation.toml");
    let error = FederationConfig::from_file(&path).unwrap_err();
    assert!(matches!(error, ConfigError::Io { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.starts_with(&path.display().to_string()),
        "{message}"
    );
    assert!(!message.contains('\n'), "{message}");
}

/// Grid members own lines (D12): each needs a capacity, and no one else may have one.
#[test]
fn line_capacities_belong_to_grid_members() {
    refuse(
        &edit(", line_capacity_wh = 1000", ""),
        "consortiums[1].members[0].line_capacity_wh",
    );
    refuse(
        &edit(
            "{ name = \"source-3\", role = \"user\" }",
            "{ name = \"source-3\", role = \"user\", line_capacity_wh = 5 }",
        ),
        "consortiums[0].members[2].line_capacity_wh",
    );
}

/// The remaining checks: a missing required key, a group of zero, a grid quorum larger
/// than the grid, capacities out of range, a too-small suspect_after, a malformed
/// admission key and a bad name.
#[test]
fn other_refusals() {
    refuse(
        &edit(
            "{ name = \"source-3\", role = \"user\" }",
            "{ name = \"source-3\" }",
        ),
        "consortiums[0].members[2].role",
    );
    refuse(&edit("name = \"grid\"\n", ""), "consortiums[1].name");
    refuse(
        &edit(
            "{ name = \"source-3\", role = \"user\" }",
            "{ name = \"source-3\", count = 0, role = \"user\" }",
        ),
        "consortiums[0].members[2].count",
    );
    refuse(
        &edit("seed = 7", "seed = 7\ngrid_quorum = 3"),
        "grid_quorum",
    );
    refuse(
        &edit("seed = 7", "seed = 7\ngrid_quorum = \"most\""),
        "grid_quorum",
    );
    FederationConfig::from_toml_str(&edit("seed = 7", "seed = 7\ngrid_quorum = 2"), "ok.toml")
        .unwrap();
    refuse(
        &edit("[timing]", "[capacities]\nrelay = 8388608\n[timing]"),
        "capacities.relay",
    );
    refuse(
        &edit("[timing]", "[capacities]\nconsortium = 100\n[timing]"),
        "capacities.consortium",
    );
    refuse(
        &edit("window = 6", "window = 6\nsuspect_after = 1"),
        "timing.suspect_after",
    );
    refuse(
        &edit("window = 6", "window = 6\nurgency = \"yes\""),
        "timing.urgency",
    );
    refuse(
        &edit(
            "name = \"grid\"\n",
            "name = \"grid\"\nadmission_key = \"abc\"\n",
        ),
        "consortiums[1].admission_key",
    );
    refuse(
        &edit("name = \"grid-2\"", "name = \"grid/2\""),
        "consortiums[1].members[1].name",
    );
    refuse("consortiums = 3\n", "consortiums");
    refuse("", "consortiums");
}

/// A configuration changed in code is checked again by `check` and by `genesis`.
#[test]
fn configurations_changed_in_code_are_checked() {
    let mut config = FederationConfig::four_party();
    config.timing.window = 9;
    let error = config.genesis(1).unwrap_err();
    assert_eq!(error.key(), Some("timing.window"));
    assert!(
        error
            .to_string()
            .starts_with("configuration: timing.window: "),
        "{error}"
    );
    assert!(config.check().is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Damaging the four-party file anywhere, by deleting or replacing a byte, gives a
    /// configuration or a one-line error: never a panic.
    #[test]
    fn damaged_files_never_panic(at in 0usize..FOUR_PARTY_TOML.len(), byte in 0u8..128, delete: bool) {
        let mut bytes = FOUR_PARTY_TOML.as_bytes().to_vec();
        if delete {
            bytes.remove(at);
        } else {
            bytes[at] = byte;
        }
        let Ok(text) = String::from_utf8(bytes) else { return Ok(()) };
        if let Err(error) = FederationConfig::from_toml_str(&text, "damaged.toml") {
            let message = error.to_string();
            prop_assert!(!message.contains('\n'), "{}", message);
            prop_assert!(message.starts_with("damaged.toml: "), "{}", message);
        }
    }
}
