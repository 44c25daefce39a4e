//! The JSON form of the domain types (the `serde` feature): what `inspect --json`, the
//! event log and the explorer read. It is a view for people and tools, never hashed or
//! signed (the canonical form is bincode, SPEC §7):
//! - hashes, addresses, public keys and signatures are full lowercase hex;
//! - times (ms since the Unix epoch, virtual or wall) are RFC 3339 with milliseconds;
//! - enums carry their variant in snake case (`"event": "committed"`,
//!   `"kind": "energy_supply"`);
//! - a chain is `{"kind": "relay", "lane": 1}`, `{"kind": "consortium", "consortium": 1,
//!   "member": "…"}` or `{"kind": "private", "member": "…"}`;
//! - an urgency vector is its bits as booleans, in inclusion order.

use std::time::{Duration, UNIX_EPOCH};

use serde::ser::{SerializeSeq, SerializeStruct};
use serde::{Serialize, Serializer};

use crate::block::UrgencyBits;
use crate::crypto::{Address, Hash, PublicKey, Signature};
use crate::ids::ChainId;

/// `ms` since the Unix epoch as RFC 3339 with milliseconds, UTC.
pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// Serializes a time field, ms since the Unix epoch, as [`rfc3339`].
pub fn rfc3339_ms<S: Serializer>(ms: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&rfc3339(*ms))
}

macro_rules! as_hex {
    ($($ty:ty),*) => {$(
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&hex::encode(self.0))
            }
        }
    )*};
}

as_hex!(Hash, Address, PublicKey, Signature);

impl Serialize for UrgencyBits {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len as usize))?;
        for i in 0..self.len as usize {
            seq.serialize_element(&self.get(i).unwrap_or(false))?;
        }
        seq.end()
    }
}

impl Serialize for ChainId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ChainId::Relay(lane) => {
                let mut s = serializer.serialize_struct("ChainId", 2)?;
                s.serialize_field("kind", "relay")?;
                s.serialize_field("lane", &lane.0)?;
                s.end()
            }
            ChainId::Consortium(consortium, member) => {
                let mut s = serializer.serialize_struct("ChainId", 3)?;
                s.serialize_field("kind", "consortium")?;
                s.serialize_field("consortium", &consortium.0)?;
                s.serialize_field("member", member)?;
                s.end()
            }
            ChainId::Private(member) => {
                let mut s = serializer.serialize_struct("ChainId", 2)?;
                s.serialize_field("kind", "private")?;
                s.serialize_field("member", member)?;
                s.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_with_milliseconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_796_601_600_123), "2026-12-07T00:00:00.123Z");
    }

    #[test]
    fn ids_are_full_hex() {
        let address = Address([0xab; 20]);
        assert_eq!(
            serde_json::to_string(&address).unwrap(),
            format!("\"{}\"", "ab".repeat(20))
        );
        let chain = ChainId::Consortium(crate::ConsortiumId(2), address);
        assert_eq!(
            serde_json::to_value(chain).unwrap(),
            serde_json::json!({"kind": "consortium", "consortium": 2, "member": "ab".repeat(20)})
        );
        let bits = UrgencyBits::from_bits([true, false, true]);
        assert_eq!(
            serde_json::to_value(&bits).unwrap(),
            serde_json::json!([true, false, true])
        );
    }
}
