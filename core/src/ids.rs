//! Names of consortiums, lanes and chains.
//!
//! A federation's consortiums are numbered in the order of its configuration; the genesis
//! record maps each number to its name. A **chain** is what one node holds and what
//! `ieschain verify` names in its output (SPEC §12 D1):
//! `relay/<consortium>`, `consortium/<consortium>/<member>` or `private/<member>`.

use std::fmt;

use bincode::{Decode, Encode};

use crate::crypto::Address;

/// A consortium, by its index in the federation's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct ConsortiumId(pub u16);

impl fmt::Display for ConsortiumId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The three kinds of chain (SPEC §4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode)]
pub enum ChainKind {
    /// One lane per consortium of the relay chain.
    Relay,
    /// One member's lane of its consortium chain.
    Consortium,
    /// A member's private chain.
    Private,
}

impl ChainKind {
    /// The one-byte tag of this kind in storage keys.
    pub const fn tag(self) -> u8 {
        match self {
            ChainKind::Relay => b'r',
            ChainKind::Consortium => b'c',
            ChainKind::Private => b'p',
        }
    }
}

/// One hash-linked sequence of blocks with one writer at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode)]
pub enum ChainId {
    /// A consortium's lane of the relay chain, written by its successive relays.
    Relay(ConsortiumId),
    /// A member's lane of its consortium's chain.
    Consortium(ConsortiumId, Address),
    /// A member's private chain.
    Private(Address),
}

impl ChainId {
    /// The kind of chain.
    pub fn kind(&self) -> ChainKind {
        match self {
            ChainId::Relay(_) => ChainKind::Relay,
            ChainId::Consortium(..) => ChainKind::Consortium,
            ChainId::Private(_) => ChainKind::Private,
        }
    }

    /// Renders the chain's name with a naming function for consortiums and members, as
    /// `verify` prints it: `relay/source`, `consortium/source/source-1`, `private/load-3`.
    pub fn render(
        &self,
        consortium: impl Fn(ConsortiumId) -> String,
        member: impl Fn(&Address) -> String,
    ) -> String {
        match self {
            ChainId::Relay(c) => format!("relay/{}", consortium(*c)),
            ChainId::Consortium(c, m) => format!("consortium/{}/{}", consortium(*c), member(m)),
            ChainId::Private(m) => format!("private/{}", member(m)),
        }
    }
}

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(|c| c.to_string(), |m| m.short()))
    }
}
