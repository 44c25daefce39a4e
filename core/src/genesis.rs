//! The genesis record of a data directory (SPEC §12 D2), and the key directory built from it.
//!
//! The first open of a data directory writes the genesis record; every later open must
//! present the same one. It fixes the lanes, the initial registries, the admission keys, the
//! supervisor's key, the block capacities and the election function.

use std::collections::BTreeMap;

use bincode::{Decode, Encode};
use thiserror::Error;

use crate::codec;
use crate::crypto::{Address, Domain, Hash, PublicKey};
use crate::election::WeightFn;
use crate::ids::ConsortiumId;
use crate::registry::{Registry, RegistryEntry, RegistryError};

/// Block capacities in encoded bytes, header included (SPEC §4.3, §12 D7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Capacities {
    /// Consortium (and private) blocks: 1 Mbit by default.
    pub consortium: u32,
    /// Relay blocks: 8 Mbit by default.
    pub relay: u32,
}

impl Capacities {
    /// 1 Mbit = 2^20 bits = 131,072 bytes.
    pub const CONSORTIUM_DEFAULT: u32 = 131_072;
    /// 8 Mbit = 2^23 bits = 1,048,576 bytes.
    pub const RELAY_DEFAULT: u32 = 1_048_576;
    /// Bytes of each relay block reserved for its header and the relay's own records
    /// (SPEC §12 D7).
    pub const RELAY_RESERVE: u32 = 64 * 1024;

    /// The largest window such that that many full consortium blocks fit in one relay block
    /// beside the reserve: 7 with the defaults.
    pub fn max_window(&self) -> u32 {
        self.relay.saturating_sub(Self::RELAY_RESERVE) / self.consortium.max(1)
    }
}

impl Default for Capacities {
    fn default() -> Self {
        Capacities {
            consortium: Self::CONSORTIUM_DEFAULT,
            relay: Self::RELAY_DEFAULT,
        }
    }
}

/// One consortium as the federation starts.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ConsortiumGenesis {
    /// Its number, equal to its position in [`Genesis::consortiums`].
    pub id: ConsortiumId,
    /// Its name, such as `source`.
    pub name: String,
    /// The key whose signature admits newcomers (SPEC §6.1).
    pub admission_key: PublicKey,
    /// The initial registry, in ascending order of address.
    pub members: Vec<RegistryEntry>,
}

/// The genesis record.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Genesis {
    /// Hash of the configuration the federation was built from.
    pub config_hash: Hash,
    /// The run's seed.
    pub seed: u64,
    /// Block capacities.
    pub capacities: Capacities,
    /// The election function.
    pub weight_fn: WeightFn,
    /// The supervisor's public key: `derive_key("ieschain supervisor v1", seed)`.
    pub supervisor: PublicKey,
    /// The consortiums, by id.
    pub consortiums: Vec<ConsortiumGenesis>,
}

/// Why a genesis record is malformed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum GenesisError {
    /// Fewer than two consortiums (SPEC §3).
    #[error("a federation needs at least two consortiums, this one has {0}")]
    TooFewConsortiums(usize),
    /// Ids are not 0, 1, 2, … in order.
    #[error("consortium {name} has id {got}, expected {expected}")]
    ConsortiumId {
        /// The consortium's name.
        name: String,
        /// Its position.
        expected: u16,
        /// Its id.
        got: u16,
    },
    /// Two consortiums or members share a name.
    #[error("name {0} is used twice")]
    DuplicateName(String),
    /// Members are not in ascending order of address.
    #[error("members of {0} are not in ascending order of address")]
    MemberOrder(String),
    /// A member entry is invalid.
    #[error("consortium {consortium}: {source}")]
    Registry {
        /// The consortium.
        consortium: String,
        /// What is wrong.
        source: RegistryError,
    },
    /// Fewer than two relay-capable members (SPEC §12 D13).
    #[error("consortium {0} needs at least two relay_capable members")]
    TooFewCandidates(String),
    /// A capacity is out of range.
    #[error("capacities {consortium}/{relay} bytes leave no room for a full consortium block in a relay block, or exceed the decode limit")]
    Capacities {
        /// Consortium capacity.
        consortium: u32,
        /// Relay capacity.
        relay: u32,
    },
}

impl Genesis {
    /// The digest that identifies this federation.
    pub fn hash(&self) -> Hash {
        Hash::of(Domain::Genesis, &[&codec::encode(self)])
    }

    /// Checks the record's own consistency.
    pub fn check(&self) -> Result<(), GenesisError> {
        if self.consortiums.len() < 2 {
            return Err(GenesisError::TooFewConsortiums(self.consortiums.len()));
        }
        let Capacities { consortium, relay } = self.capacities;
        if consortium < 1024
            || self.capacities.max_window() < 1
            || relay as usize > codec::MAX_DECODE
        {
            return Err(GenesisError::Capacities { consortium, relay });
        }
        let mut names = std::collections::BTreeSet::new();
        let mut everyone = Registry::default();
        for (index, c) in self.consortiums.iter().enumerate() {
            if c.id.0 as usize != index {
                return Err(GenesisError::ConsortiumId {
                    name: c.name.clone(),
                    expected: index as u16,
                    got: c.id.0,
                });
            }
            if !names.insert(c.name.clone()) {
                return Err(GenesisError::DuplicateName(c.name.clone()));
            }
            if c.members.windows(2).any(|w| w[0].address >= w[1].address) {
                return Err(GenesisError::MemberOrder(c.name.clone()));
            }
            for member in &c.members {
                if !names.insert(member.name.clone()) {
                    return Err(GenesisError::DuplicateName(member.name.clone()));
                }
                everyone
                    .add(member.clone())
                    .map_err(|source| GenesisError::Registry {
                        consortium: c.name.clone(),
                        source,
                    })?;
            }
            if c.members.iter().filter(|m| m.relay_capable).count() < 2 {
                return Err(GenesisError::TooFewCandidates(c.name.clone()));
            }
        }
        Ok(())
    }

    /// The initial registry of a consortium.
    pub fn registry(&self, consortium: ConsortiumId) -> Registry {
        self.consortiums
            .get(consortium.0 as usize)
            .map(|c| {
                // Checked by `Genesis::check`; an unchecked genesis yields what it can.
                let mut registry = Registry::default();
                for entry in &c.members {
                    let _ = registry.add(entry.clone());
                }
                registry
            })
            .unwrap_or_default()
    }

    /// The name of a consortium, or its number if unknown.
    pub fn consortium_name(&self, id: ConsortiumId) -> String {
        self.consortiums
            .get(id.0 as usize)
            .map(|c| c.name.clone())
            .unwrap_or_else(|| id.to_string())
    }
}

/// Who is known to sign: every registered node, with its consortium, and the supervisor.
/// Built from the genesis record and extended by joins.
#[derive(Clone, Debug, Default)]
pub struct Directory {
    nodes: BTreeMap<Address, Known>,
}

/// One signer in a [`Directory`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Known {
    /// Its key.
    pub key: PublicKey,
    /// Its name.
    pub name: String,
    /// Its consortium; `None` for the supervisor.
    pub consortium: Option<ConsortiumId>,
}

impl Directory {
    /// Everyone in the genesis record.
    pub fn from_genesis(genesis: &Genesis) -> Directory {
        let mut directory = Directory::default();
        directory.nodes.insert(
            genesis.supervisor.address(),
            Known {
                key: genesis.supervisor,
                name: "supervisor".to_string(),
                consortium: None,
            },
        );
        for c in &genesis.consortiums {
            for m in &c.members {
                directory.add(c.id, m);
            }
        }
        directory
    }

    /// Forgets a joined member whose registration was in a relay block that was never
    /// released and is truncated (SPEC §14).
    pub fn remove(&mut self, address: &Address) {
        self.nodes.remove(address);
    }

    /// Adds a joined member.
    pub fn add(&mut self, consortium: ConsortiumId, entry: &RegistryEntry) {
        self.nodes.insert(
            entry.address,
            Known {
                key: entry.public_key,
                name: entry.name.clone(),
                consortium: Some(consortium),
            },
        );
    }

    /// The signer at `address`.
    pub fn get(&self, address: &Address) -> Option<&Known> {
        self.nodes.get(address)
    }

    /// The name of `address`, or its hex form if unknown.
    pub fn name(&self, address: &Address) -> String {
        self.get(address)
            .map(|k| k.name.clone())
            .unwrap_or_else(|| address.to_string())
    }
}
