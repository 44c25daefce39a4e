//! The federation configuration (SPEC §10 "Configuration (TOML)", §12 D2, D7, D12, D13):
//! what a TOML file in `federations/` may say, how it is checked, and how it becomes the
//! genesis record and the keys of a federation.
//!
//! This file owns the configuration's keys, their units and their defaults. Every other
//! part of ieschain reads settings through [`FederationConfig`] and its accessors.
//!
//! # Units and defaults
//! - **Durations** are strings with a unit, `"500ms"`, `"10s"`, `"5m"` or `"1h"` (D13), in
//!   whole milliseconds, at most 7 days so that no timer arithmetic can overflow.
//!   `max_wait = "none"` is the paper's exact window, without a timeout (SPEC §4.4).
//! - **Timing** defaults are D13's: `window` 6, `max_wait` 500 ms, `member_max_wait`
//!   200 ms, `period` 10 s, `heartbeat_interval` 200 ms, `suspect_after` 3; so a 30-second
//!   run shows rotations.
//! - **Capacities** are encoded bytes, header included: 131,072 (1 Mbit) for consortium
//!   blocks and 1,048,576 (8 Mbit) for relay blocks (SPEC §4.3, D7). The window must let
//!   `window` full consortium blocks fit in a relay block beside its 64 KiB reserve, so the
//!   largest window is 7 by default.
//! - **Energy** is in Wh: a grid member's `line_capacity_wh` is what its one line can carry
//!   in one delivery slot (D12).
//! - **Workload** record rates are records per second per member, every member generating
//!   each kind (`ieschain_actors::workload`); protocol rates are runs per minute for the
//!   whole federation. The defaults give a 30-second run of `four-party.toml` steady
//!   traffic (2 records per second per member, about 34 a second in all, 15% of them
//!   urgent) that 2 cores carry easily.
//! - **Election**: `f(E) = exp(-3E)` by default (SPEC §5); `k` is kept in thousandths
//!   because the draw computes weights in integers (D5).
//! - **Grid approval** needs every grid member unless `grid_quorum` says how many (§6.2).
//!   The grid consortium is the one named `grid`.
//! - **Seed** 1 unless the file or the command line says otherwise.
//!
//! # Keys (D2, D13)
//! The configuration holds only public keys. Every member's key is derived from the seed
//! and its name (`Keypair::derive(Domain::NodeKey, seed, name)`), so a reopened data
//! directory has the same keys. A consortium's admission key is the `admission_key` given
//! in hex, or, when that is omitted (as in the built-in federations), derived from the seed
//! and the consortium's name, so the demo newcomers can be admitted.
//!
//! # Members and groups
//! A member is declared on its own, or as a group with a `count`: the group
//! `name = "load-user"`, `count = 2500` is the members `load-user-1` … `load-user-2500`
//! (D13). Names of consortiums and members share one namespace, as the genesis record
//! requires, and are made of ASCII letters, digits, `-`, `_` and `.` so that chain names
//! such as `consortium/grid/grid-north` stay unambiguous.
//!
//! # Errors
//! A [`ConfigError`] is one line naming the file, the key and what was expected:
//! `four-party.toml: timing.max_wait: expected a duration such as "500ms" …, found
//! string "5 parsecs" at line 31`. Unknown keys are errors (`deny_unknown_fields`), so a
//! misspelt key never silently falls back to its default.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use ieschain_core::codec;
use ieschain_core::crypto::{Address, Domain, Hash, Keypair, PublicKey};
use ieschain_core::election::WeightFn;
use ieschain_core::genesis::{Capacities, ConsortiumGenesis, Genesis, GenesisError};
use ieschain_core::ids::ConsortiumId;
use ieschain_core::node::{Mutations, ProtocolConfig, Timing};
use ieschain_core::record::{RecordKind, Role};
use ieschain_core::registry::RegistryEntry;
use ieschain_core::window::WindowConfig;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The text of `federations/four-party.toml`, the built-in default federation.
pub const FOUR_PARTY_TOML: &str = include_str!("../federations/four-party.toml");

/// The text of `federations/large.toml`: 10,000 members in four consortiums.
pub const LARGE_TOML: &str = include_str!("../federations/large.toml");

/// The most members a federation may have, groups expanded: enough for any run that fits
/// this machine, and a bound on the work a mistyped `count` can ask for.
pub const MAX_MEMBERS: u64 = 1_000_000;

/// The longest duration a configuration may give.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// The longest name of a consortium or member, groups' suffixes included.
pub const MAX_NAME_LEN: usize = 64;

/// Configuration files larger than this are refused before they are read.
const MAX_FILE_BYTES: u64 = 16 << 20;

/// Where an error is reported from when the configuration was built in code.
const IN_CODE: &str = "configuration";

/// A whole federation's configuration: its consortiums and members, timing, capacities,
/// election function, grid approval rule, workload and fault plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationConfig {
    /// The seed from which every key and every simulation derives; the command line's
    /// `--seed` overrides it (pass the seed to [`FederationConfig::genesis`]).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// How many grid members must approve a power trade (SPEC §6.2 step 5).
    #[serde(default)]
    pub grid_quorum: GridQuorum,
    /// The fault plan for `ieschain simulate`, in the grammar of `--faults`. Stored as
    /// written; `simulate` parses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faults: Option<String>,
    /// The window, the timers and the failure detector.
    #[serde(default)]
    pub timing: TimingConfig,
    /// Block capacities.
    #[serde(default)]
    pub capacities: CapacitiesConfig,
    /// The election function `f` (SPEC §5).
    #[serde(default)]
    pub election: ElectionConfig,
    /// What the members do in `run` and `simulate`.
    #[serde(default)]
    pub workload: WorkloadConfig,
    /// How this process runs the federation: choices of speed that no chain depends on,
    /// left out of the genesis record's `config_hash`.
    #[serde(default, skip_serializing_if = "RuntimeConfig::is_default")]
    pub runtime: RuntimeConfig,
    /// The consortiums, in the order that numbers them (their [`ConsortiumId`]s).
    pub consortiums: Vec<ConsortiumConfig>,
}

fn default_seed() -> u64 {
    1
}

/// One consortium.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsortiumConfig {
    /// Its name, such as `source`; the consortium named `grid` approves power trades.
    pub name: String,
    /// The public key whose signatures admit newcomers (SPEC §6.1), as 64 hex digits.
    /// `None` derives it from the seed and the consortium's name (D13).
    #[serde(
        default,
        with = "serde_public_key",
        skip_serializing_if = "Option::is_none"
    )]
    pub admission_key: Option<PublicKey>,
    /// Its members and groups of members, in declaration order.
    pub members: Vec<MemberConfig>,
}

/// A member, or with a `count`, a group of alike members.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberConfig {
    /// The member's name; for a group, the stem of `<name>-1` … `<name>-<count>`.
    pub name: String,
    /// Declares a group of this many members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Enterprise or user (SPEC §3).
    #[serde(with = "serde_role")]
    pub role: Role,
    /// Whether it can run a relay server and so may be drawn as relay or backup (SPEC §5).
    #[serde(default)]
    pub relay_capable: bool,
    /// For a grid member: Wh its line can carry per delivery slot (D12). Required in the
    /// grid consortium and refused elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_capacity_wh: Option<u64>,
}

impl MemberConfig {
    /// The names this declaration stands for: the name itself, or a group's expansion.
    pub fn names(&self) -> impl Iterator<Item = String> + '_ {
        let (single, count) = match self.count {
            None => (Some(self.name.clone()), 0),
            Some(count) => (None, count),
        };
        single
            .into_iter()
            .chain((1..=count).map(move |n| format!("{}-{n}", self.name)))
    }

    /// How many members this declaration stands for.
    pub fn len(&self) -> u64 {
        self.count.map_or(1, u64::from)
    }

    /// Whether this is a group of zero members (which [`FederationConfig::check`] refuses).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `name` is one of the names this declaration stands for.
    pub fn declares(&self, name: &str) -> bool {
        match self.count {
            None => self.name == name,
            Some(count) => name
                .strip_prefix(self.name.as_str())
                .and_then(|rest| rest.strip_prefix('-'))
                .filter(|digits| !digits.starts_with('0'))
                .and_then(|digits| digits.parse::<u32>().ok())
                .is_some_and(|n| (1..=count).contains(&n)),
        }
    }
}

/// A member as the federation runs it: declared on its own or expanded from a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Its consortium.
    pub consortium: ConsortiumId,
    /// Its name, unique in the federation.
    pub name: String,
    /// Enterprise or user.
    pub role: Role,
    /// Whether it may be drawn as relay or backup.
    pub relay_capable: bool,
    /// For a grid member, its line's capacity in Wh per delivery slot.
    pub line_capacity_wh: Option<u64>,
}

/// The window, the timers and the failure detector (SPEC §4.4, §5, D10, D11, D13).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimingConfig {
    /// Non-urgent consortium blocks per relay block: the paper's n.
    pub window: u32,
    /// Send a non-empty open relay block after this long; `None` (`"none"`) waits for the
    /// window, as the paper does.
    #[serde(with = "serde_optional_duration")]
    pub max_wait: Option<Duration>,
    /// A member closes its open consortium block after this long (D10).
    #[serde(with = "serde_duration")]
    pub member_max_wait: Duration,
    /// A relay's term: after serving this long it hands over to the backup.
    #[serde(with = "serde_duration")]
    pub period: Duration,
    /// Time between the heartbeats of relay-capable members to the supervisor.
    #[serde(with = "serde_duration")]
    pub heartbeat_interval: Duration,
    /// Missed heartbeats after which the supervisor declares a relay failed.
    pub suspect_after: u32,
    /// Whether an urgent consortium block makes the relay send its relay block at once
    /// (SPEC §4.4). On by default; the window experiment of `ieschain bench` turns it off to
    /// measure what the urgency bit buys, every block then waiting for the window. Left out
    /// of the canonical bytes while on, so existing configurations keep their hash.
    #[serde(skip_serializing_if = "is_true")]
    pub urgency: bool,
}

fn is_true(value: &bool) -> bool {
    *value
}

impl Default for TimingConfig {
    fn default() -> Self {
        TimingConfig {
            window: 6,
            max_wait: Some(Duration::from_millis(500)),
            member_max_wait: Duration::from_millis(200),
            period: Duration::from_secs(10),
            heartbeat_interval: Duration::from_millis(200),
            suspect_after: 3,
            urgency: true,
        }
    }
}

impl TimingConfig {
    /// `max_wait` in ms, as the window takes it.
    pub fn max_wait_ms(&self) -> Option<u64> {
        self.max_wait.map(millis)
    }

    /// `member_max_wait` in ms.
    pub fn member_max_wait_ms(&self) -> u64 {
        millis(self.member_max_wait)
    }

    /// `period` in ms.
    pub fn period_ms(&self) -> u64 {
        millis(self.period)
    }

    /// `heartbeat_interval` in ms.
    pub fn heartbeat_interval_ms(&self) -> u64 {
        millis(self.heartbeat_interval)
    }

    /// How long a node may be silent and still count as alive:
    /// `suspect_after × heartbeat_interval` (SPEC §5, D11).
    pub fn suspect_timeout(&self) -> Duration {
        self.heartbeat_interval.saturating_mul(self.suspect_after)
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Block capacities in encoded bytes, header included (SPEC §4.3, D7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CapacitiesConfig {
    /// Consortium (and private) blocks: at least 1,024 bytes.
    pub consortium: u32,
    /// Relay blocks: at most the codec's decode limit.
    pub relay: u32,
}

impl Default for CapacitiesConfig {
    fn default() -> Self {
        CapacitiesConfig {
            consortium: Capacities::CONSORTIUM_DEFAULT,
            relay: Capacities::RELAY_DEFAULT,
        }
    }
}

impl From<CapacitiesConfig> for Capacities {
    fn from(c: CapacitiesConfig) -> Capacities {
        Capacities {
            consortium: c.consortium,
            relay: c.relay,
        }
    }
}

/// The named forms of the election function `f` (SPEC §5, D5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ElectionForm {
    /// `f(E) = exp(-k·E)`; `k` defaults to 3.
    Exponential,
    /// `f(E) = 1 / (1 + k·E)`; `k` defaults to 1.
    Reciprocal,
    /// `f(E) = 1`; takes no `k`.
    Uniform,
}

/// The election function: `election = { form = "exponential", k = 3.0 }`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElectionConfig {
    /// The form of `f`.
    pub form: ElectionForm,
    /// The steepness: how much a failure lowers a candidate's chance. Finite and above 0;
    /// kept in thousandths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<f64>,
}

impl Default for ElectionConfig {
    fn default() -> Self {
        ElectionConfig {
            form: ElectionForm::Exponential,
            k: Some(3.0),
        }
    }
}

impl ElectionConfig {
    /// The largest `k`: `k × 1000` must fit the record's `u32`.
    pub const MAX_K: f64 = 4_000_000.0;

    /// The weight function, or why `k` does not fit the form.
    fn weight_fn(&self) -> Result<WeightFn, Problem> {
        let k_milli = |default: f64| -> Result<u32, Problem> {
            let k = self.k.unwrap_or(default);
            let k_milli = (k * 1000.0).round();
            if !k.is_finite() || k <= 0.0 || k_milli < 1.0 || k > Self::MAX_K {
                return Err(Problem::new(
                    "election.k",
                    format!(
                        "a finite number from 0.001 to {} (k is kept in thousandths)",
                        Self::MAX_K
                    ),
                    k,
                ));
            }
            // In range by the check above.
            Ok(k_milli as u32)
        };
        Ok(match self.form {
            ElectionForm::Exponential => WeightFn::Exponential {
                k_milli: k_milli(3.0)?,
            },
            ElectionForm::Reciprocal => WeightFn::Reciprocal {
                k_milli: k_milli(1.0)?,
            },
            ElectionForm::Uniform => match self.k {
                None => WeightFn::Uniform,
                Some(k) => return Err(Problem::new("election.k", "no k with the uniform form", k)),
            },
        })
    }
}

/// How many grid members must approve a power trade (SPEC §6.2): `"all"` or a count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GridQuorum {
    /// Every grid member (the paper's rule).
    #[default]
    All,
    /// At least this many grid members.
    Count(u32),
}

impl Serialize for GridQuorum {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            GridQuorum::All => serializer.serialize_str("all"),
            GridQuorum::Count(n) => serializer.serialize_u32(*n),
        }
    }
}

impl<'de> Deserialize<'de> for GridQuorum {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = GridQuorum;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"all\" or a number of grid members from 1")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<GridQuorum, E> {
                match v {
                    "all" => Ok(GridQuorum::All),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
                }
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<GridQuorum, E> {
                match u32::try_from(v) {
                    Ok(n) if n >= 1 => Ok(GridQuorum::Count(n)),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Signed(v), &self)),
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<GridQuorum, E> {
                match u32::try_from(v) {
                    Ok(n) if n >= 1 => Ok(GridQuorum::Count(n)),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Unsigned(v), &self)),
                }
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// How a process runs the federation (`[runtime]`). Nothing here changes what any node
/// accepts, refuses or writes, so it is not part of the genesis record's `config_hash`: a
/// data directory reopens under either setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Whether the nodes of one process (`run`, an embedding host) share a memo of the
    /// signatures that passed their checks (issue 12), so that a record checked by one
    /// node is not checked again by the next. Verification is a pure function of key,
    /// digest and signature, and only passes are remembered, so this changes speed, never
    /// an outcome. `false` makes every node pay for its own checks, as on separate
    /// machines. `ieschain node` runs one node a process and has nothing to share.
    pub shared_verification: bool,
    /// How many threads run the member nodes of one process (`run`, an embedding host),
    /// each an actix `Arbiter` with its share of the nodes; the supervisor shares the first
    /// (issue 12). `0`, the default, means one per core of the
    /// machine. From 0 to [`RuntimeConfig::MAX_ACTOR_THREADS`].
    pub actor_threads: u16,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            shared_verification: true,
            actor_threads: 0,
        }
    }
}

impl RuntimeConfig {
    /// The most node threads a process may ask for.
    pub const MAX_ACTOR_THREADS: u16 = 256;

    /// How many node threads to run: `actor_threads`, or the machine's cores for `0`.
    pub fn node_threads(&self) -> usize {
        match self.actor_threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => usize::from(n),
        }
    }

    /// Whether every key has its default (then a configuration written out omits it).
    pub fn is_default(&self) -> bool {
        *self == RuntimeConfig::default()
    }
}

/// What the members do: record rates by kind and protocol rates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkloadConfig {
    /// Records per second per member, by kind.
    pub records: RecordRates,
    /// Protocol runs per minute for the whole federation.
    pub protocols: ProtocolRates,
}

/// Records per second per member, by kind: the six services of the paper
/// (SPEC §4.2) and meter readings, by their [`RecordKind::name`]s.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordRates {
    /// Energy supply (urgent).
    pub energy_supply: f64,
    /// Equipment maintenance.
    pub equipment_maintenance: f64,
    /// Efficiency audits.
    pub efficiency_audit: f64,
    /// Energy-saving design.
    pub energy_saving_design: f64,
    /// Data offers (the service; the protocol's rate is in [`ProtocolRates`]).
    pub data_trade: f64,
    /// Distributed energy (urgent).
    pub distributed_energy: f64,
    /// Meter readings, kept on private chains.
    pub meter_reading: f64,
}

impl Default for RecordRates {
    fn default() -> Self {
        // Urgent kinds lower, so that most relay blocks are cut by the window or max_wait
        // and the report shows both latencies; meter readings, which stay on private
        // chains, highest.
        RecordRates {
            energy_supply: 0.2,
            equipment_maintenance: 0.2,
            efficiency_audit: 0.2,
            energy_saving_design: 0.2,
            data_trade: 0.1,
            distributed_energy: 0.1,
            meter_reading: 1.0,
        }
    }
}

impl RecordRates {
    /// The kinds a member generates (a rate above 0), with their rates per second.
    pub fn generated(&self) -> Vec<(RecordKind, f64)> {
        self.iter()
            .into_iter()
            .filter(|(_, rate)| *rate > 0.0)
            .collect()
    }

    /// Every configurable kind with its rate, in declaration order.
    pub fn iter(&self) -> [(RecordKind, f64); 7] {
        [
            (RecordKind::EnergySupply, self.energy_supply),
            (RecordKind::EquipmentMaintenance, self.equipment_maintenance),
            (RecordKind::EfficiencyAudit, self.efficiency_audit),
            (RecordKind::EnergySavingDesign, self.energy_saving_design),
            (RecordKind::DataTrade, self.data_trade),
            (RecordKind::DistributedEnergy, self.distributed_energy),
            (RecordKind::MeterReading, self.meter_reading),
        ]
    }

    /// The rate of `kind`; 0 for kinds that only the protocols write.
    pub fn rate(&self, kind: RecordKind) -> f64 {
        self.iter()
            .into_iter()
            .find(|(k, _)| *k == kind)
            .map_or(0.0, |(_, rate)| rate)
    }
}

/// Protocol runs per minute for the whole federation (SPEC §6).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProtocolRates {
    /// Newcomers joining a consortium (§6.1).
    pub join: f64,
    /// Direct power purchases, load from source (§6.2).
    pub power_purchase: f64,
    /// Data trades, service from load (§6.3).
    pub data_trade: f64,
}

impl Default for ProtocolRates {
    fn default() -> Self {
        // A 30-second run sees one join, six power purchases and three data trades.
        ProtocolRates {
            join: 2.0,
            power_purchase: 12.0,
            data_trade: 6.0,
        }
    }
}

impl ProtocolRates {
    /// Every protocol with its rate, by its key name.
    pub fn iter(&self) -> [(&'static str, f64); 3] {
        [
            ("join", self.join),
            ("power_purchase", self.power_purchase),
            ("data_trade", self.data_trade),
        ]
    }
}

/// The private keys of a federation built from a configuration and a seed (D2): every
/// member's, the supervisor's, and the admission keys that are derived rather than given.
#[derive(Clone, Debug)]
pub struct Keys {
    /// The supervisor's key: `Keypair::derive(Domain::SupervisorKey, seed, "supervisor")`.
    pub supervisor: Keypair,
    /// Each consortium's admission key by [`ConsortiumId`]; `None` where the configuration
    /// gives only the public key.
    pub admission: Vec<Option<Keypair>>,
    by_name: BTreeMap<String, Keypair>,
    names: BTreeMap<Address, String>,
}

impl Keys {
    /// The key of the member called `name`.
    pub fn member(&self, name: &str) -> Option<&Keypair> {
        self.by_name.get(name)
    }

    /// The key of the member at `address`.
    pub fn by_address(&self, address: &Address) -> Option<&Keypair> {
        self.by_name.get(self.names.get(address)?)
    }

    /// The name of the member at `address`.
    pub fn name_of(&self, address: &Address) -> Option<&str> {
        self.names.get(address).map(String::as_str)
    }

    /// The admission key of `consortium`, if it is derivable.
    pub fn admission(&self, consortium: ConsortiumId) -> Option<&Keypair> {
        self.admission.get(consortium.0 as usize)?.as_ref()
    }

    /// Every member's name and key, by name.
    pub fn members(&self) -> impl Iterator<Item = (&str, &Keypair)> {
        self.by_name.iter().map(|(name, key)| (name.as_str(), key))
    }

    /// How many member keys there are.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether there are no member keys.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// Keys a host brings instead of the seed-derived ones (SPEC §12 D2 derives every key a
/// host does not give).
#[derive(Clone, Debug, Default)]
pub struct SuppliedKeys {
    /// The supervisor's key.
    pub supervisor: Option<Keypair>,
    /// Members' keys, by name.
    pub members: BTreeMap<String, Keypair>,
}

/// Why a configuration was refused. Its `Display` is one line naming the file, the key
/// and what was expected.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{origin}: expected a readable TOML file, found {source}")]
    Io {
        /// The path.
        origin: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{origin}: line {line}, column {column}: expected valid TOML, found {message}")]
    Syntax {
        /// The file.
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// toml's description.
        message: String,
    },
    /// A key has a wrong, missing or unknown value.
    #[error("{origin}: {key}: expected {expected}, found {found}{}", at_line(*.line))]
    Invalid {
        /// The file.
        origin: String,
        /// The key's path, such as `consortiums[2].members[0].relay_capable`.
        key: String,
        /// What was expected.
        expected: String,
        /// What was there.
        found: String,
        /// The 1-based line of the key, when known.
        line: Option<usize>,
    },
    /// The genesis record built from a configuration is inconsistent. [`FederationConfig::check`]
    /// refuses everything that would cause this; it remains for configurations changed in
    /// code afterwards.
    #[error("{origin}: genesis: expected a consistent genesis record, found {source}")]
    Genesis {
        /// The file.
        origin: String,
        /// What is wrong.
        source: GenesisError,
    },
}

fn at_line(line: Option<usize>) -> String {
    line.map(|l| format!(" at line {l}")).unwrap_or_default()
}

impl ConfigError {
    /// The key the error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// A problem found by the checks, before it is given a file and a line.
#[derive(Clone, Debug, PartialEq)]
struct Problem {
    key: String,
    expected: String,
    found: String,
}

impl Problem {
    fn new(key: impl Into<String>, expected: impl Into<String>, found: impl fmt::Display) -> Self {
        Problem {
            key: key.into(),
            expected: expected.into(),
            found: found.to_string(),
        }
    }

    fn into_error(self, origin: &str, line: Option<usize>) -> ConfigError {
        ConfigError::Invalid {
            origin: origin.to_string(),
            key: self.key,
            expected: self.expected,
            found: self.found,
            line,
        }
    }
}

impl FederationConfig {
    /// Reads, parses and checks a configuration file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<FederationConfig, ConfigError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let io = |source| ConfigError::Io {
            origin: origin.clone(),
            source,
        };
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size > MAX_FILE_BYTES {
            return Err(io(std::io::Error::other(format!(
                "a file of {size} bytes, larger than the {MAX_FILE_BYTES}-byte limit"
            ))));
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        FederationConfig::from_toml_str(&text, &origin)
    }

    /// Parses and checks a configuration; `origin` names it in errors (usually its path).
    pub fn from_toml_str(text: &str, origin: &str) -> Result<FederationConfig, ConfigError> {
        let document = toml::de::DeTable::parse(text).map_err(|e| {
            let (line, column) = line_column(text, e.span().map_or(0, |s| s.start));
            ConfigError::Syntax {
                origin: origin.to_string(),
                line,
                column,
                message: one_line(e.message()),
            }
        })?;
        let config: FederationConfig = toml::from_str(text)
            .map_err(|e| deserialize_error(text, document.get_ref(), origin, &e))?;
        config.problems().map_err(|problem| {
            let line = locate(document.get_ref(), &problem.key)
                .map(|span| line_column(text, span.start).0);
            problem.into_error(origin, line)
        })?;
        Ok(config)
    }

    /// The built-in default: the paper's four consortiums (`federations/four-party.toml`).
    pub fn four_party() -> FederationConfig {
        // The embedded file is checked by the test suite (tests/config.rs), so parsing it
        // cannot fail in a built binary.
        #[allow(clippy::expect_used)]
        FederationConfig::from_toml_str(FOUR_PARTY_TOML, "four-party.toml (built in)")
            .expect("the built-in four-party.toml is valid")
    }

    /// The built-in large federation: 10,000 members in four consortiums
    /// (`federations/large.toml`).
    pub fn large() -> FederationConfig {
        // Checked by the test suite, as for `four_party`.
        #[allow(clippy::expect_used)]
        FederationConfig::from_toml_str(LARGE_TOML, "large.toml (built in)")
            .expect("the built-in large.toml is valid")
    }

    /// Checks a configuration built or changed in code, as parsing checks a file.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.problems().map_err(|p| p.into_error(IN_CODE, None))
    }

    /// Every member, groups expanded, consortium by consortium in declaration order.
    pub fn members(&self) -> impl Iterator<Item = Member> + '_ {
        self.consortiums
            .iter()
            .enumerate()
            .flat_map(|(index, consortium)| {
                consortium.members.iter().flat_map(move |declared| {
                    declared.names().map(move |name| Member {
                        consortium: ConsortiumId(index as u16),
                        name,
                        role: declared.role,
                        relay_capable: declared.relay_capable,
                        line_capacity_wh: declared.line_capacity_wh,
                    })
                })
            })
    }

    /// How many members there are, groups expanded.
    pub fn member_count(&self) -> u64 {
        self.consortiums
            .iter()
            .flat_map(|c| &c.members)
            .map(MemberConfig::len)
            .sum()
    }

    /// The declaration of the member called `name`, with its consortium.
    pub fn member(&self, name: &str) -> Option<(ConsortiumId, &MemberConfig)> {
        self.consortiums.iter().enumerate().find_map(|(index, c)| {
            let declared = c.members.iter().find(|m| m.declares(name))?;
            Some((ConsortiumId(index as u16), declared))
        })
    }

    /// Every grid member's line capacity, Wh per delivery slot, by address.
    pub fn line_capacities(&self, keys: &Keys) -> BTreeMap<Address, u64> {
        self.members()
            .filter_map(|m| Some((keys.member(&m.name)?.address(), m.line_capacity_wh?)))
            .collect()
    }

    /// The line capacity, in Wh per delivery slot, of the grid member called `name`.
    pub fn line_capacity_wh(&self, name: &str) -> Option<u64> {
        self.member(name)?.1.line_capacity_wh
    }

    /// The consortium called `name`.
    pub fn consortium_id(&self, name: &str) -> Option<ConsortiumId> {
        self.consortiums
            .iter()
            .position(|c| c.name == name)
            .map(|index| ConsortiumId(index as u16))
    }

    /// The grid consortium, which approves power trades: the one named `grid`.
    pub fn grid(&self) -> Option<ConsortiumId> {
        self.consortium_id(GRID)
    }

    /// How many grid approvals a power trade needs, or `None` without a grid consortium.
    pub fn grid_approvals_needed(&self) -> Option<u64> {
        let grid = self.consortiums.get(self.grid()?.0 as usize)?;
        let members: u64 = grid.members.iter().map(MemberConfig::len).sum();
        Some(match self.grid_quorum {
            GridQuorum::All => members,
            GridQuorum::Count(n) => u64::from(n).min(members),
        })
    }

    /// The block capacities.
    pub fn capacities(&self) -> Capacities {
        self.capacities.into()
    }

    /// The election function, or the problem with `k`.
    pub fn weight_fn(&self) -> Result<WeightFn, ConfigError> {
        self.election
            .weight_fn()
            .map_err(|p| p.into_error(IN_CODE, None))
    }

    /// Who plays which part in the protocols (SPEC §6): the consortiums named `source`,
    /// `grid`, `service` and `load`, and the grid's quorum.
    pub fn protocol_config(&self) -> ProtocolConfig {
        let by_name = |name: &str| {
            self.consortiums
                .iter()
                .position(|c| c.name == name)
                .map(|i| ConsortiumId(i as u16))
        };
        ProtocolConfig {
            source: by_name("source"),
            grid: by_name("grid"),
            service: by_name("service"),
            load: by_name("load"),
            grid_quorum: match self.grid_quorum {
                GridQuorum::All => 0,
                GridQuorum::Count(n) => n,
            },
            deadline_ms: 0,
        }
    }

    /// The relay's window settings: `window`, `max_wait`, `urgency` and the payload budget
    /// that the capacities leave (SPEC §4.4, D7).
    pub fn window_config(&self) -> WindowConfig {
        WindowConfig {
            window: self.timing.window,
            max_wait_ms: self.timing.max_wait_ms(),
            urgency: self.timing.urgency,
            ..WindowConfig::new(&self.capacities())
        }
    }

    /// The timing the node machines take: the window, the timers and the failure
    /// detector of this configuration, with no mutation.
    pub fn machine_timing(&self) -> Timing {
        Timing {
            heartbeat_ms: self.timing.heartbeat_interval_ms(),
            suspect_after: self.timing.suspect_after,
            period_ms: self.timing.period_ms(),
            member_max_wait_ms: self.timing.member_max_wait_ms(),
            window: self.window_config(),
            mutations: Mutations::default(),
            protocols: self.protocol_config(),
        }
    }

    /// The canonical bytes that the genesis record's `config_hash` covers: the parsed
    /// configuration re-serialised as TOML, so comments and layout do not count. The seed
    /// and the fault plan are left out: the seed is a field of the genesis record itself,
    /// and the fault plan belongs to one `simulate` run, not to the federation; so is
    /// `[runtime]`, which changes how fast a process runs, not what it writes.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, ConfigError> {
        let mut canonical = self.clone();
        canonical.seed = 0;
        canonical.faults = None;
        canonical.runtime = RuntimeConfig::default();
        toml::to_string(&canonical)
            .map(String::into_bytes)
            .map_err(|e| ConfigError::Invalid {
                origin: IN_CODE.to_string(),
                key: "(whole configuration)".to_string(),
                expected: "values TOML can hold".to_string(),
                found: one_line(&e.to_string()),
                line: None,
            })
    }

    /// The configuration's digest: `Hash::of(Domain::Genesis, canonical bytes)`.
    pub fn config_hash(&self) -> Result<Hash, ConfigError> {
        Ok(Hash::of(Domain::Genesis, &[&self.canonical_bytes()?]))
    }

    /// Builds the genesis record and the keys for `seed` (D2): member keys are
    /// `Keypair::derive(Domain::NodeKey, seed, name)`, the supervisor's is
    /// `Keypair::derive(Domain::SupervisorKey, seed, "supervisor")`, and omitted admission
    /// keys are `Keypair::derive(Domain::AdmissionKey, seed, consortium name)`. Members are
    /// in ascending address order in each consortium. The record passes [`Genesis::check`].
    pub fn genesis(&self, seed: u64) -> Result<(Genesis, Keys), ConfigError> {
        self.genesis_with(seed, &SuppliedKeys::default())
    }

    /// The genesis record and keys, with the caller's keys where `supplied` has them and
    /// seed-derived keys elsewhere. A supplied key for a name the configuration lacks is
    /// an error.
    pub fn genesis_with(
        &self,
        seed: u64,
        supplied: &SuppliedKeys,
    ) -> Result<(Genesis, Keys), ConfigError> {
        self.check()?;
        let declared: BTreeSet<String> = self
            .consortiums
            .iter()
            .flat_map(|c| c.members.iter().flat_map(|m| m.names()))
            .collect();
        if let Some(name) = supplied.members.keys().find(|n| !declared.contains(*n)) {
            return Err(ConfigError::Invalid {
                origin: IN_CODE.to_string(),
                key: "keys".into(),
                expected: "a key for a member the configuration declares".into(),
                found: format!("a key for {name:?}"),
                line: None,
            });
        }
        let supervisor = supplied
            .supervisor
            .clone()
            .unwrap_or_else(|| Keypair::derive(Domain::SupervisorKey, seed, "supervisor"));
        let admission: Vec<Option<Keypair>> = self
            .consortiums
            .iter()
            .map(|c| {
                c.admission_key
                    .is_none()
                    .then(|| Keypair::derive(Domain::AdmissionKey, seed, &c.name))
            })
            .collect();
        let by_name: BTreeMap<String, Keypair> = declared
            .into_iter()
            .map(|name| {
                let key = supplied
                    .members
                    .get(&name)
                    .cloned()
                    .unwrap_or_else(|| Keypair::derive(Domain::NodeKey, seed, &name));
                (name, key)
            })
            .collect();
        let genesis = self.genesis_of(
            seed,
            supervisor.public(),
            |name| by_name.get(name).map(Keypair::public),
            |index| {
                admission
                    .get(index)
                    .and_then(Option::as_ref)
                    .map(Keypair::public)
            },
        )?;
        let names = by_name
            .iter()
            .map(|(name, key)| (key.address(), name.clone()))
            .collect();
        let keys = Keys {
            supervisor,
            admission,
            by_name,
            names,
        };
        Ok((genesis, keys))
    }

    /// The genesis record from public keys alone (a chain spec, where no party holds
    /// another's secret): `member_key` gives each declared member's key by name, and
    /// `derived_admission` each consortium's admission key by index where the
    /// configuration gives none. A member or consortium left without a key is an error
    /// naming it.
    pub fn genesis_of(
        &self,
        seed: u64,
        supervisor: PublicKey,
        member_key: impl Fn(&str) -> Option<PublicKey>,
        derived_admission: impl Fn(usize) -> Option<PublicKey>,
    ) -> Result<Genesis, ConfigError> {
        self.check()?;
        let weight_fn = self.weight_fn()?;
        let missing = |key: String, what: &str| ConfigError::Invalid {
            origin: IN_CODE.to_string(),
            key,
            expected: format!("a public key for {what}"),
            found: "none".into(),
            line: None,
        };
        let mut consortiums = Vec::with_capacity(self.consortiums.len());
        for (index, consortium) in self.consortiums.iter().enumerate() {
            let admission_key = match consortium
                .admission_key
                .or_else(|| derived_admission(index))
            {
                Some(key) => key,
                None => {
                    return Err(missing(
                        format!("consortiums[{index}].admission_key"),
                        &format!("consortium {:?}", consortium.name),
                    ))
                }
            };
            let mut members = Vec::new();
            for declared in &consortium.members {
                for name in declared.names() {
                    let key = member_key(&name)
                        .ok_or_else(|| missing(format!("members.{name}"), &format!("{name:?}")))?;
                    members.push(RegistryEntry {
                        address: key.address(),
                        public_key: key,
                        name,
                        role: declared.role,
                        relay_capable: declared.relay_capable,
                    });
                }
            }
            members.sort_by_key(|entry| entry.address);
            consortiums.push(ConsortiumGenesis {
                id: ConsortiumId(index as u16),
                name: consortium.name.clone(),
                admission_key,
                members,
            });
        }
        let genesis = Genesis {
            config_hash: self.config_hash()?,
            seed,
            capacities: self.capacities(),
            weight_fn,
            supervisor,
            consortiums,
        };
        genesis.check().map_err(|source| ConfigError::Genesis {
            origin: IN_CODE.to_string(),
            source,
        })?;
        Ok(genesis)
    }

    /// The first problem with this configuration, with the path of its key.
    fn problems(&self) -> Result<(), Problem> {
        self.check_capacities()?;
        self.check_timing()?;
        self.election.weight_fn()?;
        self.check_workload()?;
        self.check_consortiums()?;
        self.check_grid_quorum()?;
        self.check_runtime()
    }

    fn check_runtime(&self) -> Result<(), Problem> {
        if self.runtime.actor_threads > RuntimeConfig::MAX_ACTOR_THREADS {
            return Err(Problem::new(
                "runtime.actor_threads",
                format!(
                    "from 0 (one per core) to {} node threads",
                    RuntimeConfig::MAX_ACTOR_THREADS
                ),
                self.runtime.actor_threads,
            ));
        }
        Ok(())
    }

    fn check_capacities(&self) -> Result<(), Problem> {
        let CapacitiesConfig { consortium, relay } = self.capacities;
        if consortium < 1024 {
            return Err(Problem::new(
                "capacities.consortium",
                "a consortium block capacity of at least 1024 bytes",
                consortium,
            ));
        }
        if relay as usize > codec::MAX_DECODE {
            return Err(Problem::new(
                "capacities.relay",
                format!(
                    "a relay block capacity of at most {} bytes (the decode limit)",
                    codec::MAX_DECODE
                ),
                relay,
            ));
        }
        if self.capacities().max_window() < 1 {
            return Err(Problem::new(
                "capacities.relay",
                format!(
                    "a relay block capacity of at least {} bytes, so that one full \
                     {consortium}-byte consortium block fits beside the {}-byte reserve",
                    u64::from(consortium) + u64::from(Capacities::RELAY_RESERVE),
                    Capacities::RELAY_RESERVE
                ),
                relay,
            ));
        }
        Ok(())
    }

    fn check_timing(&self) -> Result<(), Problem> {
        let t = &self.timing;
        let max_window = self.capacities().max_window();
        if !(1..=max_window).contains(&t.window) {
            return Err(Problem::new(
                "timing.window",
                format!(
                    "a window from 1 to {max_window} (at most {max_window} full {}-byte consortium \
                     blocks fit in a {}-byte relay block beside its {}-byte reserve, SPEC §4.4, \
                     §12 D7)",
                    self.capacities.consortium,
                    self.capacities.relay,
                    Capacities::RELAY_RESERVE
                ),
                t.window,
            ));
        }
        let durations = [
            ("timing.max_wait", t.max_wait),
            ("timing.member_max_wait", Some(t.member_max_wait)),
            ("timing.period", Some(t.period)),
            ("timing.heartbeat_interval", Some(t.heartbeat_interval)),
        ];
        for (key, duration) in durations {
            let Some(duration) = duration else { continue };
            if duration.is_zero()
                || duration > MAX_DURATION
                || duration.subsec_nanos() % 1_000_000 != 0
            {
                return Err(Problem::new(
                    key,
                    "a duration from 1ms to 7 days, in whole milliseconds",
                    format!("{duration:?}"),
                ));
            }
        }
        if t.period < t.heartbeat_interval {
            return Err(Problem::new(
                "timing.period",
                format!(
                    "a period of at least one heartbeat_interval ({}), so a relay is watched \
                     during its term",
                    format_duration(t.heartbeat_interval)
                ),
                format_duration(t.period),
            ));
        }
        if t.suspect_after < 2 {
            return Err(Problem::new(
                "timing.suspect_after",
                "at least 2 missed heartbeats, so that one lost heartbeat does not fail a \
                 relay over",
                t.suspect_after,
            ));
        }
        Ok(())
    }

    fn check_workload(&self) -> Result<(), Problem> {
        let records = self
            .workload
            .records
            .iter()
            .into_iter()
            .map(|(kind, rate)| (format!("workload.records.{}", kind.name()), rate));
        let protocols = self
            .workload
            .protocols
            .iter()
            .into_iter()
            .map(|(name, rate)| (format!("workload.protocols.{name}"), rate));
        for (key, rate) in records.chain(protocols) {
            if !rate.is_finite() || rate < 0.0 {
                return Err(Problem::new(key, "a finite rate of at least 0", rate));
            }
        }
        Ok(())
    }

    fn check_consortiums(&self) -> Result<(), Problem> {
        if self.consortiums.len() < 2 {
            return Err(Problem::new(
                "consortiums",
                "at least two consortiums (SPEC §3)",
                self.consortiums.len(),
            ));
        }
        if self.consortiums.len() > usize::from(u16::MAX) + 1 {
            return Err(Problem::new(
                "consortiums",
                "at most 65536 consortiums",
                self.consortiums.len(),
            ));
        }
        let total = self.member_count();
        if total > MAX_MEMBERS {
            return Err(Problem::new(
                "consortiums",
                format!("at most {MAX_MEMBERS} members in all, groups expanded"),
                total,
            ));
        }
        // Every name, consortium or member, with the key that declared it first.
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        let mut claim = |name: String, key: String| -> Result<(), Problem> {
            if let Some(first) = seen.get(&name) {
                return Err(Problem::new(
                    key,
                    format!("a name unique in the federation (it is already {first})"),
                    format!("{name:?}"),
                ));
            }
            seen.insert(name, key);
            Ok(())
        };
        for (c, consortium) in self.consortiums.iter().enumerate() {
            let at = format!("consortiums[{c}]");
            check_name(&consortium.name, 0, &format!("{at}.name"))?;
            claim(consortium.name.clone(), format!("{at}.name"))?;
            let is_grid = consortium.name == GRID;
            let mut candidates = 0u64;
            for (m, member) in consortium.members.iter().enumerate() {
                let at = format!("{at}.members[{m}]");
                let suffix = member.count.map_or(0, |n| format!("-{n}").len());
                check_name(&member.name, suffix, &format!("{at}.name"))?;
                if member.count == Some(0) {
                    return Err(Problem::new(
                        format!("{at}.count"),
                        "a group of at least 1 member",
                        0,
                    ));
                }
                match (is_grid, member.line_capacity_wh) {
                    (true, None) => {
                        return Err(Problem::new(
                            format!("{at}.line_capacity_wh"),
                            "a line capacity in Wh per delivery slot for every grid member (SPEC §12 D12)",
                            "none",
                        ))
                    }
                    (true, Some(0)) => {
                        return Err(Problem::new(
                            format!("{at}.line_capacity_wh"),
                            "a line capacity of at least 1 Wh per delivery slot",
                            0,
                        ))
                    }
                    (true, Some(wh)) if wh > i64::MAX as u64 => {
                        return Err(Problem::new(
                            format!("{at}.line_capacity_wh"),
                            format!("a line capacity of at most {} Wh", i64::MAX),
                            wh,
                        ))
                    }
                    (false, Some(wh)) => {
                        return Err(Problem::new(
                            format!("{at}.line_capacity_wh"),
                            format!(
                                "no line capacity outside the consortium named {GRID:?} (only \
                                 grid members own lines)"
                            ),
                            wh,
                        ))
                    }
                    _ => {}
                }
                for name in member.names() {
                    claim(name, format!("{at}.name"))?;
                }
                if member.relay_capable {
                    candidates += member.len();
                }
            }
            if candidates < 2 {
                return Err(Problem::new(
                    format!("{at}.members"),
                    format!(
                        "at least two members with relay_capable = true in consortium {:?} (SPEC §12 D13)",
                        consortium.name
                    ),
                    candidates,
                ));
            }
        }
        Ok(())
    }

    fn check_grid_quorum(&self) -> Result<(), Problem> {
        let GridQuorum::Count(n) = self.grid_quorum else {
            return Ok(());
        };
        let Some(grid) = self.grid() else {
            return Err(Problem::new(
                "grid_quorum",
                format!("\"all\" when no consortium is named {GRID:?}"),
                n,
            ));
        };
        let members: u64 = self.consortiums[grid.0 as usize]
            .members
            .iter()
            .map(MemberConfig::len)
            .sum();
        if n == 0 || u64::from(n) > members {
            return Err(Problem::new(
                "grid_quorum",
                format!("\"all\" or a number of grid members from 1 to {members}"),
                n,
            ));
        }
        Ok(())
    }
}

/// The name of the consortium that approves power trades (SPEC §6.2).
pub const GRID: &str = "grid";

/// Checks a consortium's or member's name; `suffix` is the length a group adds.
fn check_name(name: &str, suffix: usize, key: &str) -> Result<(), Problem> {
    let good_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let good_start = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if !good_chars || !good_start || name.len() + suffix > MAX_NAME_LEN {
        return Err(Problem::new(
            key,
            format!(
                "a name of ASCII letters, digits, '-', '_' and '.', starting with a letter or \
                 digit, at most {MAX_NAME_LEN} characters with a group's suffix"
            ),
            format!("{name:?}"),
        ));
    }
    Ok(())
}

/// Parses a duration as `humantime` writes it (`"500ms"`, `"10s"`, `"1.5s"`, `"5m"`,
/// `"1h 30m"`), in whole milliseconds and at most [`MAX_DURATION`]; `None` otherwise.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let duration = humantime::parse_duration(text.trim()).ok()?;
    let whole_ms = duration.subsec_nanos() % 1_000_000 == 0;
    (whole_ms && duration <= MAX_DURATION).then_some(duration)
}

/// Formats a duration as the configuration writes it: `"10s"` or `"500ms"`.
pub fn format_duration(duration: Duration) -> String {
    let ms = millis(duration);
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

const DURATION_EXPECTED: &str =
    "a duration such as \"500ms\", \"10s\", \"5m\" or \"1h\" (whole milliseconds, at most 7 days)";

mod serde_duration {
    use super::*;

    pub(super) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Duration, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(DURATION_EXPECTED)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
                parse_duration(v)
                    .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(v), &self))
            }
        }
        d.deserialize_str(Visitor)
    }
}

mod serde_optional_duration {
    use super::*;

    pub(super) fn serialize<S: serde::Serializer>(
        d: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&format_duration(*d)),
            None => s.serialize_str("none"),
        }
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Option<Duration>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{DURATION_EXPECTED}, or \"none\" for no timeout")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Option<Duration>, E> {
                if v.trim() == "none" {
                    return Ok(None);
                }
                parse_duration(v)
                    .map(Some)
                    .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(v), &self))
            }
        }
        d.deserialize_str(Visitor)
    }
}

mod serde_role {
    use super::*;

    pub(super) fn serialize<S: serde::Serializer>(role: &Role, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match role {
            Role::Enterprise => "enterprise",
            Role::User => "user",
        })
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Role, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Role;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"enterprise\" or \"user\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Role, E> {
                match v {
                    "enterprise" => Ok(Role::Enterprise),
                    "user" => Ok(Role::User),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_str(Visitor)
    }
}

mod serde_public_key {
    use super::*;

    pub(super) fn serialize<S: serde::Serializer>(
        key: &Option<PublicKey>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match key {
            Some(key) => s.serialize_str(&hex::encode(key.0)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<PublicKey>, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Option<PublicKey>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "an ed25519 public key as 64 hex digits, valid and not of small order \
                     (or no admission_key, to derive it from the seed)",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Option<PublicKey>, E> {
                public_key_from_hex(v)
                    .map(Some)
                    .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(v), &self))
            }
        }
        d.deserialize_str(Visitor)
    }
}

/// An ed25519 public key from 64 hex digits, valid and not of small order.
pub(crate) fn public_key_from_hex(text: &str) -> Option<PublicKey> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text, &mut bytes).ok()?;
    Some(PublicKey(bytes)).filter(|key| !key.is_weak())
}

/// Turns a deserialisation error into one line naming the key, from the error's span.
fn deserialize_error(
    text: &str,
    document: &toml::de::DeTable<'_>,
    origin: &str,
    error: &toml::de::Error,
) -> ConfigError {
    let message = one_line(error.message());
    let span = error.span().unwrap_or(0..0);
    let mut key = key_at(document, &span);
    let (expected, found) = if let Some(field) = between(&message, "missing field `", "`") {
        key = join_key(&key, field);
        (
            "a value for this required key".to_string(),
            "none".to_string(),
        )
    } else if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, known) = rest
            .split_once("`, ")
            .unwrap_or((rest.trim_end_matches('`'), ""));
        let known = known
            .strip_prefix("expected ")
            .unwrap_or("no keys here")
            .replace("one of ", "");
        (
            format!("a known key ({known})"),
            format!("unknown key `{field}`"),
        )
    } else if let Some(rest) = message.strip_prefix("unknown variant `") {
        let (variant, known) = rest.split_once("`, expected ").unwrap_or((rest, "?"));
        (known.to_string(), format!("`{variant}`"))
    } else if let Some((unexpected, expected)) =
        ["invalid type: ", "invalid value: ", "invalid length "]
            .iter()
            .find_map(|prefix| message.strip_prefix(prefix))
            .and_then(|rest| rest.rsplit_once(", expected "))
    {
        (plain_expected(expected), unexpected.to_string())
    } else {
        ("a valid value".to_string(), message.clone())
    };
    let line = error.span().map(|s| line_column(text, s.start).0);
    ConfigError::Invalid {
        origin: origin.to_string(),
        key: if key.is_empty() {
            "(top level)".to_string()
        } else {
            key
        },
        expected,
        found,
        line,
    }
}

/// serde's names for primitive types, in words.
fn plain_expected(expected: &str) -> String {
    match expected {
        "u64" => "a non-negative integer".to_string(),
        "u32" => "a non-negative integer below 4294967296".to_string(),
        "f64" => "a number".to_string(),
        "a sequence" => "an array".to_string(),
        other if other.starts_with("struct ") => "a table".to_string(),
        other => other.to_string(),
    }
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = text.strip_prefix(start)?;
    Some(&rest[..rest.find(end)?])
}

fn join_key(base: &str, field: &str) -> String {
    if base.is_empty() {
        field.to_string()
    } else {
        format!("{base}.{field}")
    }
}

/// `text` on one line, its runs of white space made single spaces.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit_once('\n')
        .map_or(before, |(_, last)| last)
        .chars()
        .count()
        + 1;
    (line, column)
}

/// One step of a key path.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

fn render(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Step::Index(index) => out.push_str(&format!("[{index}]")),
        }
    }
    out
}

/// The path of the most specific key or value whose span holds `span`: the key for an
/// unknown key, the value for a wrong one, the table for a missing key.
fn key_at(document: &toml::de::DeTable<'_>, span: &Range<usize>) -> String {
    fn holds(outer: &Range<usize>, inner: &Range<usize>) -> bool {
        if inner.is_empty() {
            outer == inner
        } else {
            outer.start <= inner.start && inner.end <= outer.end
        }
    }
    // (span length, depth, path) of the best match so far: shortest span, then deepest.
    type Best = Option<(usize, usize, Vec<Step>)>;
    fn consider(best: &mut Best, outer: &Range<usize>, inner: &Range<usize>, path: &[Step]) {
        if !holds(outer, inner) {
            return;
        }
        let better = match best {
            None => true,
            Some((len, depth, _)) => {
                outer.len() < *len || (outer.len() == *len && path.len() > *depth)
            }
        };
        if better {
            *best = Some((outer.len(), path.len(), path.to_vec()));
        }
    }
    fn walk_value(
        value: &toml::Spanned<toml::de::DeValue<'_>>,
        span: &Range<usize>,
        path: &mut Vec<Step>,
        best: &mut Best,
    ) {
        consider(best, &value.span(), span, path);
        match value.get_ref() {
            toml::de::DeValue::Table(table) => walk_table(table, span, path, best),
            toml::de::DeValue::Array(array) => {
                for (index, item) in array.iter().enumerate() {
                    path.push(Step::Index(index));
                    walk_value(item, span, path, best);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    fn walk_table(
        table: &toml::de::DeTable<'_>,
        span: &Range<usize>,
        path: &mut Vec<Step>,
        best: &mut Best,
    ) {
        for (key, value) in table.iter() {
            path.push(Step::Key(key.get_ref().to_string()));
            consider(best, &key.span(), span, path);
            walk_value(value, span, path, best);
            path.pop();
        }
    }
    let mut best = None;
    walk_table(document, span, &mut Vec::new(), &mut best);
    best.map(|(_, _, path)| render(&path)).unwrap_or_default()
}

/// The span of the deepest part of `key` (a path such as `consortiums[1].members[0].name`)
/// present in the document: the value itself, or the table that lacks it.
fn locate(document: &toml::de::DeTable<'_>, key: &str) -> Option<Range<usize>> {
    let mut steps = Vec::new();
    for part in key.split('.') {
        let (name, indexes) = part.split_once('[').unwrap_or((part, ""));
        steps.push(Step::Key(name.to_string()));
        for index in indexes.split('[') {
            if let Ok(index) = index.trim_end_matches(']').parse() {
                steps.push(Step::Index(index));
            }
        }
    }
    let mut found = None;
    let mut table = Some(document);
    let mut value: Option<&toml::Spanned<toml::de::DeValue<'_>>> = None;
    for step in steps {
        let next = match (&step, table, value.map(|v| v.get_ref())) {
            (Step::Key(name), Some(t), _) => {
                t.iter().find(|(k, _)| k.get_ref() == name).map(|(_, v)| v)
            }
            (Step::Index(i), _, Some(toml::de::DeValue::Array(array))) => array.get(*i),
            _ => None,
        };
        let Some(next) = next else { break };
        found = Some(next.span());
        value = Some(next);
        table = next.get_ref().as_table();
    }
    found
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (STYLE "Gates").
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_whole_milliseconds() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(
            parse_duration("1s 500ms"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1h 30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("200 ms"), Some(Duration::from_millis(200)));
        for bad in [
            "",
            "ms",
            "5",
            "5 parsecs",
            "0.5ms",
            "500us",
            "-1s",
            "1.2.3s",
            "1e3ms",
            "169h",
            ".5s",
            "99999999999999999999h",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(10)), "10s");
    }

    #[test]
    fn groups_expand_and_declare_their_names() {
        let group = MemberConfig {
            name: "load-user".to_string(),
            count: Some(3),
            role: Role::User,
            relay_capable: false,
            line_capacity_wh: None,
        };
        let names: Vec<_> = group.names().collect();
        assert_eq!(names, ["load-user-1", "load-user-2", "load-user-3"]);
        assert!(group.declares("load-user-3"));
        assert!(!group.declares("load-user-4"));
        assert!(!group.declares("load-user-03"));
        assert!(!group.declares("load-user"));
    }

    #[test]
    fn locate_finds_nested_keys() {
        let text = "seed = 1\n[[consortiums]]\nname = 'a'\n[[consortiums.members]]\nname = 'x'\n";
        let document = toml::de::DeTable::parse(text).unwrap();
        let span = locate(document.get_ref(), "consortiums[0].members[0].name").unwrap();
        assert_eq!(&text[span], "'x'");
        let span = locate(document.get_ref(), "consortiums[0].members[0].count").unwrap();
        assert_eq!(line_column(text, span.start).0, 4);
    }
}
