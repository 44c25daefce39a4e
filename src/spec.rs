//! The chain spec: what every party of a federation that runs across machines may know
//! (issue 13). Each company runs its own node (`ieschain node`) with its own key and its
//! own store; the spec is the one document they all share.
//!
//! It holds the federation's configuration (consortiums, members, roles,
//! `relay_capable`, timing, capacities, the election function, the workload), every
//! member's public key and network address, every consortium's admission public key, and
//! the supervisor's public key and address. It holds no private key, and no key derives
//! from its seed: the seed only seeds the elections' draws (the genesis record's `seed`).
//!
//! ```toml
//! [federation]            # a federation file's keys, every admission_key given
//! seed = 1
//! [[federation.consortiums]]
//! name = "source"
//! admission_key = "…64 hex digits…"
//! …
//! [supervisor]
//! public_key = "…64 hex digits…"
//! address = "…40 hex digits…"
//! listen = "127.0.0.1:7100"
//! [members.source-wind]
//! public_key = "…64 hex digits…"
//! address = "…40 hex digits…"
//! listen = "127.0.0.1:7101"
//! ```
//!
//! [`ChainSpec::build`] makes one from a federation file and a folder of key files
//! (`ieschain spec`), for demos and tests; in a real deployment each company runs
//! `ieschain keygen` and sends only its public key to whoever writes the spec.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use ieschain_core::genesis::Genesis;
use ieschain_core::{Address, PublicKey};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::{one_line, ConfigError, FederationConfig};
use crate::keys::{KeyError, NodeKey};

/// Spec files larger than this are refused before they are read.
const MAX_SPEC_BYTES: u64 = 64 << 20;

/// The chain spec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSpec {
    /// The federation's configuration, with every consortium's `admission_key` given.
    pub federation: FederationConfig,
    /// The supervisor's public key and address (SPEC D11: the one trusted party).
    pub supervisor: NodeSpec,
    /// Every member's public key and address, by name: exactly the members the
    /// federation declares.
    pub members: BTreeMap<String, NodeSpec>,
}

/// One node's public key and where its peers reach it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// Its ed25519 public key, as 64 hex digits.
    #[serde(with = "hex_key")]
    pub public_key: PublicKey,
    /// Its address (40 hex digits): the key's, written out for people to read and
    /// checked against the key.
    #[serde(with = "hex_address")]
    pub address: Address,
    /// The UDP address its QUIC endpoint listens on.
    pub listen: SocketAddr,
}

/// Which node of a spec a key is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Party {
    /// The supervisor.
    Supervisor,
    /// The member of this name.
    Member(String),
}

impl std::fmt::Display for Party {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Party::Supervisor => f.write_str("the supervisor"),
            Party::Member(name) => write!(f, "member {name}"),
        }
    }
}

/// Why a spec was refused or could not be built.
#[derive(Debug, Error)]
pub enum SpecError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The file is not a spec: bad TOML, a wrong or unknown key.
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// toml's description, on one line.
        message: String,
    },
    /// The spec is well formed but inconsistent.
    #[error("{origin}: {key}: {problem}")]
    Invalid {
        /// The file.
        origin: String,
        /// The key it is about, such as `members.grid-east`.
        key: String,
        /// What is wrong.
        problem: String,
    },
    /// The federation part is refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A key file could not be read or written.
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl ChainSpec {
    /// Reads and checks the spec at `path`.
    pub fn from_file(path: &Path) -> Result<ChainSpec, SpecError> {
        let io = |source| SpecError::Io {
            path: path.to_path_buf(),
            source,
        };
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size > MAX_SPEC_BYTES {
            return Err(SpecError::Syntax {
                path: path.display().to_string(),
                message: format!("{size} bytes, more than a spec may have ({MAX_SPEC_BYTES})"),
            });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// Parses and checks a spec; `origin` names it in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<ChainSpec, SpecError> {
        let spec: ChainSpec = toml::from_str(text).map_err(|e| SpecError::Syntax {
            path: origin.to_string(),
            message: one_line(&e.to_string()),
        })?;
        spec.check(origin)?;
        Ok(spec)
    }

    /// The spec as TOML, with a header saying what it is.
    pub fn to_toml(&self) -> Result<String, SpecError> {
        let body = toml::to_string_pretty(self).map_err(|e| SpecError::Syntax {
            path: "(spec)".into(),
            message: one_line(&e.to_string()),
        })?;
        Ok(format!(
            "# An ieschain chain spec (`ieschain node --spec`): what every party may know.\n\
             # Public keys and addresses only: no private key, and no key derives from the seed.\n\
             # Every node of the federation must run with this same file.\n\n{body}"
        ))
    }

    /// Writes the spec to `path`, never over an existing file.
    pub fn write(&self, path: &Path) -> Result<(), SpecError> {
        use std::io::Write as _;
        let text = self.to_toml()?;
        let io = |source| SpecError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)
    }

    /// Checks what the types do not: every admission key given, exactly the declared
    /// members, no key or address used twice, and a genesis record that builds.
    pub fn check(&self, origin: &str) -> Result<(), SpecError> {
        let invalid = |key: String, problem: String| SpecError::Invalid {
            origin: origin.to_string(),
            key,
            problem,
        };
        self.federation.check()?;
        if let Some((index, consortium)) = self
            .federation
            .consortiums
            .iter()
            .enumerate()
            .find(|(_, c)| c.admission_key.is_none())
        {
            return Err(invalid(
                format!("federation.consortiums[{index}].admission_key"),
                format!(
                    "consortium {:?} has none; a chain spec gives every admission key, since \
                     none may derive from the public seed",
                    consortium.name
                ),
            ));
        }
        let declared: BTreeSet<String> = self.federation.members().map(|m| m.name).collect();
        if let Some(name) = declared.iter().find(|n| !self.members.contains_key(*n)) {
            return Err(invalid(
                format!("members.{name}"),
                "the federation declares this member, but the spec gives no key for it".into(),
            ));
        }
        if let Some(name) = self.members.keys().find(|n| !declared.contains(*n)) {
            return Err(invalid(
                format!("members.{name}"),
                "the federation declares no member of this name".into(),
            ));
        }
        let mut keys = BTreeMap::new();
        let mut listens = BTreeMap::new();
        for (party, node) in self.nodes() {
            let key = match &party {
                Party::Supervisor => "supervisor".to_string(),
                Party::Member(name) => format!("members.{name}"),
            };
            if node.public_key.is_weak() {
                return Err(invalid(
                    format!("{key}.public_key"),
                    "not a valid ed25519 key, or of small order".into(),
                ));
            }
            if node.address != node.public_key.address() {
                return Err(invalid(
                    format!("{key}.address"),
                    format!(
                        "{} is not the address of its public key, {}",
                        node.address,
                        node.public_key.address()
                    ),
                ));
            }
            if let Some(other) = keys.insert(node.public_key, party.clone()) {
                return Err(invalid(
                    format!("{key}.public_key"),
                    format!("the same key as {other}: each party has its own"),
                ));
            }
            if let Some(other) = listens.insert(node.listen, party.clone()) {
                return Err(invalid(
                    format!("{key}.listen"),
                    format!("{} is {other}'s address too", node.listen),
                ));
            }
        }
        self.genesis()?;
        Ok(())
    }

    /// Every node: the supervisor first, then the members by name.
    pub fn nodes(&self) -> impl Iterator<Item = (Party, &NodeSpec)> + '_ {
        std::iter::once((Party::Supervisor, &self.supervisor)).chain(
            self.members
                .iter()
                .map(|(name, node)| (Party::Member(name.clone()), node)),
        )
    }

    /// The genesis record, from the public keys alone.
    pub fn genesis(&self) -> Result<Genesis, SpecError> {
        Ok(self.federation.genesis_of(
            self.federation.seed,
            self.supervisor.public_key,
            |name| self.members.get(name).map(|m| m.public_key),
            |_| None,
        )?)
    }

    /// Which party holds `key`, if any.
    pub fn party_of(&self, key: &PublicKey) -> Option<Party> {
        self.nodes()
            .find(|(_, node)| node.public_key == *key)
            .map(|(party, _)| party)
    }

    /// The node of `party`.
    pub fn node(&self, party: &Party) -> Option<&NodeSpec> {
        match party {
            Party::Supervisor => Some(&self.supervisor),
            Party::Member(name) => self.members.get(name),
        }
    }

    /// Every node by address.
    pub fn by_address(&self) -> BTreeMap<Address, (Party, NodeSpec)> {
        self.nodes()
            .map(|(party, node)| (node.public_key.address(), (party, *node)))
            .collect()
    }

    /// Moves every node to a port of `ip` that the operating system hands out now: free,
    /// unless something takes it between this call and the node's start. For tests and
    /// `bench --cluster` on one machine.
    pub fn place_on_free_ports(&mut self, ip: IpAddr) -> std::io::Result<()> {
        let sockets = (0..=self.members.len())
            .map(|_| std::net::UdpSocket::bind(SocketAddr::new(ip, 0)))
            .collect::<std::io::Result<Vec<_>>>()?;
        let mut ports = sockets.iter().map(std::net::UdpSocket::local_addr);
        for node in std::iter::once(&mut self.supervisor).chain(self.members.values_mut()) {
            if let Some(port) = ports.next() {
                node.listen = port?;
            }
        }
        Ok(())
    }

    /// A spec for `config`, with the keys in `keys_dir`: `supervisor.key`,
    /// `<member>.key`, and `admission-<consortium>.key` for each consortium whose
    /// configuration gives no admission key. A key file that exists is used; one that
    /// does not is made (`ieschain keygen`'s format, mode 0600). The supervisor listens on
    /// `host:base_port`, and the members on the ports after it, in declaration order.
    pub fn build(
        config: &FederationConfig,
        keys_dir: &Path,
        host: IpAddr,
        base_port: u16,
    ) -> Result<ChainSpec, SpecError> {
        config.check()?;
        std::fs::create_dir_all(keys_dir).map_err(|source| SpecError::Io {
            path: keys_dir.to_path_buf(),
            source,
        })?;
        let key = |label: &str| -> Result<PublicKey, SpecError> {
            let path = keys_dir.join(format!("{label}.key"));
            let key = if path.exists() {
                NodeKey::read(&path)?
            } else {
                let key = NodeKey::generate()?;
                key.write(&path)?;
                key
            };
            Ok(key.key.public())
        };
        let mut federation = config.clone();
        for consortium in &mut federation.consortiums {
            if consortium.admission_key.is_none() {
                consortium.admission_key = Some(key(&format!("admission-{}", consortium.name))?);
            }
        }
        let ports = config.member_count() + 1;
        let last = u64::from(base_port) + ports - 1;
        if last > u64::from(u16::MAX) {
            return Err(SpecError::Invalid {
                origin: "ieschain spec".into(),
                key: "--base-port".into(),
                problem: format!(
                    "{ports} nodes from port {base_port} run past port {}",
                    u16::MAX
                ),
            });
        }
        let at = |offset: u64| SocketAddr::new(host, (u64::from(base_port) + offset) as u16);
        let node = |public_key: PublicKey, listen| NodeSpec {
            public_key,
            address: public_key.address(),
            listen,
        };
        let supervisor = node(key("supervisor")?, at(0));
        let mut members = BTreeMap::new();
        for (offset, member) in (1..).zip(config.members()) {
            let spec = node(key(&member.name)?, at(offset));
            members.insert(member.name, spec);
        }
        let spec = ChainSpec {
            federation,
            supervisor,
            members,
        };
        spec.check("ieschain spec")?;
        Ok(spec)
    }
}

mod hex_address {
    use ieschain_core::Address;

    pub(super) fn serialize<S: serde::Serializer>(a: &Address, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&a.to_string())
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Address, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Address;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an address as 40 hex digits")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Address, E> {
                Address::from_hex(v)
                    .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(v), &self))
            }
        }
        d.deserialize_str(Visitor)
    }
}

mod hex_key {
    use ieschain_core::PublicKey;

    pub(super) fn serialize<S: serde::Serializer>(
        key: &PublicKey,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(key.0))
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<PublicKey, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = PublicKey;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an ed25519 public key as 64 hex digits, valid and not of small order")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PublicKey, E> {
                crate::config::public_key_from_hex(v)
                    .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(v), &self))
            }
        }
        d.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built(dir: &Path) -> ChainSpec {
        ChainSpec::build(
            &FederationConfig::four_party(),
            &dir.join("keys"),
            IpAddr::from([127, 0, 0, 1]),
            17100,
        )
        .expect("spec")
    }

    #[test]
    fn a_built_spec_round_trips_and_names_every_party() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = built(dir.path());
        let text = spec.to_toml().expect("toml");
        assert!(!text.contains("secret"), "a spec holds no secret");
        let read = ChainSpec::from_toml_str(&text, "spec.toml").expect("reads back");
        assert_eq!(read, spec);
        assert_eq!(
            read.genesis().expect("genesis"),
            spec.genesis().expect("genesis")
        );
        assert_eq!(spec.members.len(), 17);
        // Building again reuses the keys made the first time.
        let again = built(dir.path());
        assert_eq!(again, spec);
        let key = NodeKey::read(&dir.path().join("keys/grid-east.key")).expect("key");
        assert_eq!(
            spec.party_of(&key.key.public()),
            Some(Party::Member("grid-east".into()))
        );
        assert_eq!(spec.supervisor.listen.port(), 17100);
    }

    #[test]
    fn a_spec_without_a_member_or_with_a_stranger_or_a_shared_key_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = built(dir.path());
        let mut missing = spec.clone();
        missing.members.remove("load-home-2");
        let err = missing.check("s.toml").expect_err("refused");
        assert!(err.to_string().contains("members.load-home-2"), "{err}");

        let mut stranger = spec.clone();
        stranger
            .members
            .insert("mallory".into(), spec.members["grid-east"]);
        let err = stranger.check("s.toml").expect_err("refused");
        assert!(err.to_string().contains("members.mallory"), "{err}");

        let mut shared = spec.clone();
        let east = shared.members["grid-east"];
        if let Some(west) = shared.members.get_mut("grid-west") {
            west.public_key = east.public_key;
            west.address = east.address;
        }
        let err = shared.check("s.toml").expect_err("refused");
        assert!(err.to_string().contains("the same key as"), "{err}");

        let mut wrong_address = spec.clone();
        if let Some(west) = wrong_address.members.get_mut("grid-west") {
            west.address = east.address;
        }
        let err = wrong_address.check("s.toml").expect_err("refused");
        assert!(
            err.to_string().contains("members.grid-west.address"),
            "{err}"
        );

        let mut same_port = spec.clone();
        if let Some(west) = same_port.members.get_mut("grid-west") {
            west.listen = spec.supervisor.listen;
        }
        let err = same_port.check("s.toml").expect_err("refused");
        assert!(err.to_string().contains("listen"), "{err}");

        let mut derived = spec;
        derived.federation.consortiums[1].admission_key = None;
        let err = derived.check("s.toml").expect_err("refused");
        assert!(err.to_string().contains("admission_key"), "{err}");
    }

    #[test]
    fn a_malformed_spec_is_refused_with_its_file_named() {
        let err = ChainSpec::from_toml_str("[supervisor]\npublic_key = \"zz\"\n", "bad.toml")
            .expect_err("refused");
        assert!(err.to_string().starts_with("bad.toml: "), "{err}");
        let err = ChainSpec::from_toml_str("federation = 3\nsecret_key = \"00\"\n", "bad.toml")
            .expect_err("refused");
        assert!(err.to_string().starts_with("bad.toml: "), "{err}");
    }
}
