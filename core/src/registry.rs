//! The registry of a consortium: the public key and address of its relay and of every
//! member (SPEC §4.3), with its Merkle root.
//!
//! A relay block header carries the registry as its root plus the entries added in that
//! block (SPEC §12 D7); the full registry is rebuilt by replaying the lane from the genesis
//! registry and is checked against each root.

use std::collections::BTreeMap;

use bincode::{Decode, Encode};
use thiserror::Error;

use crate::codec;
use crate::crypto::{Address, Domain, Hash, PublicKey};
use crate::merkle;
use crate::record::Role;

/// One registered node.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct RegistryEntry {
    /// The node's address; must be the address of `public_key`.
    pub address: Address,
    /// The node's ed25519 key.
    pub public_key: PublicKey,
    /// Its name, unique in the federation.
    pub name: String,
    /// Enterprise or user.
    pub role: Role,
    /// Whether it may be drawn as relay or backup (SPEC §5).
    pub relay_capable: bool,
}

impl RegistryEntry {
    /// The entry's Merkle leaf.
    pub fn leaf(&self) -> Hash {
        Hash::of(Domain::RegistryEntry, &[&codec::encode(self)])
    }
}

/// Why a registry change was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RegistryError {
    /// The address is already registered.
    #[error("address {0} is already registered")]
    DuplicateAddress(Address),
    /// The public key is already registered under another address.
    #[error("public key is already registered, as {0}")]
    DuplicateKey(Address),
    /// The address is not the address of the key.
    #[error("address {0} does not match its public key")]
    AddressMismatch(Address),
    /// The key is invalid or of small order.
    #[error("public key of {0} is weak or invalid")]
    WeakKey(Address),
}

/// A consortium's registry, ordered by address so that its root is canonical.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    entries: BTreeMap<Address, RegistryEntry>,
    keys: BTreeMap<PublicKey, Address>,
    /// The root, computed on first use after a change: every relay block's header names
    /// it, and most blocks add no one (issue 12).
    root: std::sync::OnceLock<Hash>,
}

impl PartialEq for Registry {
    /// Two registries are equal when their entries are; the cached root does not count.
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl Eq for Registry {}

impl Registry {
    /// A registry of `entries`, checked as [`Registry::add`] checks each.
    pub fn from_entries(
        entries: impl IntoIterator<Item = RegistryEntry>,
    ) -> Result<Registry, RegistryError> {
        let mut registry = Registry::default();
        for entry in entries {
            registry.add(entry)?;
        }
        Ok(registry)
    }

    /// Checks that `entry` could be added, without adding it.
    pub fn check(&self, entry: &RegistryEntry) -> Result<(), RegistryError> {
        if entry.public_key.address() != entry.address {
            return Err(RegistryError::AddressMismatch(entry.address));
        }
        if entry.public_key.is_weak() {
            return Err(RegistryError::WeakKey(entry.address));
        }
        // The address is derived from the key, so a repeated key is also a repeated
        // address; report the key, which is what a duplicate join presents.
        if let Some(existing) = self.keys.get(&entry.public_key) {
            return Err(RegistryError::DuplicateKey(*existing));
        }
        if self.entries.contains_key(&entry.address) {
            return Err(RegistryError::DuplicateAddress(entry.address));
        }
        Ok(())
    }

    /// Adds a newly joined node.
    pub fn add(&mut self, entry: RegistryEntry) -> Result<(), RegistryError> {
        self.check(&entry)?;
        self.keys.insert(entry.public_key, entry.address);
        self.entries.insert(entry.address, entry);
        self.root = std::sync::OnceLock::new();
        Ok(())
    }

    /// Removes the entry of `address`: the undoing of an addition in a relay block that
    /// was never released and is truncated (SPEC §14). Returns whether it was there.
    pub fn remove(&mut self, address: &Address) -> bool {
        match self.entries.remove(address) {
            Some(entry) => {
                self.keys.remove(&entry.public_key);
                self.root = std::sync::OnceLock::new();
                true
            }
            None => false,
        }
    }

    /// The entry of `address`.
    pub fn get(&self, address: &Address) -> Option<&RegistryEntry> {
        self.entries.get(address)
    }

    /// Whether `address` is registered.
    pub fn contains(&self, address: &Address) -> bool {
        self.entries.contains_key(address)
    }

    /// All entries, by address.
    pub fn entries(&self) -> impl Iterator<Item = &RegistryEntry> {
        self.entries.values()
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The Merkle root over the entries in address order.
    pub fn root(&self) -> Hash {
        *self.root.get_or_init(|| {
            let leaves: Vec<Hash> = self.entries.values().map(RegistryEntry::leaf).collect();
            merkle::root(&leaves)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Keypair;

    pub(crate) fn entry(label: &str) -> RegistryEntry {
        let key = Keypair::derive(crate::crypto::Domain::NodeKey, 1, label);
        RegistryEntry {
            address: key.address(),
            public_key: key.public(),
            name: label.to_string(),
            role: Role::Enterprise,
            relay_capable: true,
        }
    }

    /// The cached root follows every change: after an addition and a removal it is the
    /// root a registry built from scratch has, and equality ignores whether it is cached.
    #[test]
    fn cached_root_follows_additions_and_removals() {
        let mut registry = Registry::from_entries([entry("a")]).unwrap();
        let one = registry.root();
        registry.add(entry("b")).unwrap();
        let fresh = Registry::from_entries([entry("a"), entry("b")]).unwrap();
        assert_eq!(registry, fresh);
        assert_eq!(registry.root(), fresh.root());
        assert_ne!(registry.root(), one);
        assert!(registry.remove(&entry("b").address));
        assert_eq!(registry.root(), one);
        assert_eq!(registry, Registry::from_entries([entry("a")]).unwrap());
    }

    #[test]
    fn duplicates_and_mismatches_are_refused() {
        let mut registry = Registry::from_entries([entry("a"), entry("b")]).unwrap();
        let root = registry.root();
        assert_eq!(
            registry.add(entry("a")),
            Err(RegistryError::DuplicateKey(entry("a").address))
        );
        let mut same_key = entry("a");
        same_key.address = entry("c").address;
        assert_eq!(
            registry.add(same_key),
            Err(RegistryError::AddressMismatch(entry("c").address))
        );
        assert_eq!(
            registry.root(),
            root,
            "a refused change leaves the root as it was"
        );
    }

    #[test]
    fn root_is_independent_of_insertion_order() {
        let ab = Registry::from_entries([entry("a"), entry("b")]).unwrap();
        let ba = Registry::from_entries([entry("b"), entry("a")]).unwrap();
        assert_eq!(ab.root(), ba.root());
        let abc = Registry::from_entries([entry("a"), entry("b"), entry("c")]).unwrap();
        assert_ne!(ab.root(), abc.root());
    }
}
