//! JSON views for people and tools: the domain types' JSON form
//! ([`ieschain_core::serde_json_form`]: full hex, RFC 3339 times, snake-case variants) with
//! names beside the ids. `inspect --json`, `simulate --event-log` and the reports use it.
//!
//! Beside every field that holds a known address, [`Names::annotate`] adds `<field>_name`
//! (and `<field>_names` beside a list of them); beside a `consortium` or `lane` number it
//! adds the consortium's name. The ids stay as they are: code that matches on them keeps
//! working, and a person reads the names.

use ieschain_core::genesis::{Directory, Genesis};
use ieschain_core::Address;
use serde::Serialize;
use serde_json::{Map, Value};

/// Who is who: the directory of signers and the consortiums' names.
#[derive(Debug)]
pub struct Names<'a> {
    directory: &'a Directory,
    genesis: &'a Genesis,
}

impl<'a> Names<'a> {
    /// Names from a directory (the genesis and the registry's additions) and the genesis's
    /// consortiums.
    pub fn new(directory: &'a Directory, genesis: &'a Genesis) -> Self {
        Names { directory, genesis }
    }

    /// The JSON form of `value` with names beside its ids.
    pub fn to_value<T: Serialize + ?Sized>(&self, value: &T) -> Value {
        let mut value = serde_json::to_value(value).unwrap_or_else(|e| {
            // The domain types serialize to JSON without fail (no maps with non-string
            // keys, no floats that are not finite); say so if that ever changes.
            serde_json::json!({ "error": format!("no JSON form: {e}") })
        });
        self.annotate(&mut value);
        value
    }

    fn address_name(&self, text: &str) -> Option<String> {
        if text.len() != 40 {
            return None;
        }
        let mut bytes = [0u8; 20];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        self.directory
            .get(&Address(bytes))
            .map(|known| known.name.clone())
    }

    /// Adds names beside the ids in `value`, at every depth.
    pub fn annotate(&self, value: &mut Value) {
        match value {
            Value::Array(items) => items.iter_mut().for_each(|v| self.annotate(v)),
            Value::Object(fields) => {
                let mut names = Map::new();
                for (key, field) in fields.iter_mut() {
                    match field {
                        Value::String(text) => {
                            if let Some(name) = self.address_name(text) {
                                names.insert(format!("{key}_name"), Value::String(name));
                            }
                        }
                        Value::Number(n) if key == "consortium" || key == "lane" => {
                            let name = n
                                .as_u64()
                                .and_then(|id| u16::try_from(id).ok())
                                .and_then(|id| self.genesis.consortiums.get(id as usize))
                                .map(|c| c.name.clone());
                            if let Some(name) = name {
                                names.insert(format!("{key}_name"), Value::String(name));
                            }
                        }
                        Value::Array(items)
                            if !items.is_empty()
                                && items.iter().all(|i| {
                                    i.as_str().is_some_and(|t| self.address_name(t).is_some())
                                }) =>
                        {
                            let list = items
                                .iter()
                                .filter_map(|i| i.as_str().and_then(|t| self.address_name(t)))
                                .map(Value::String)
                                .collect();
                            names.insert(format!("{key}_names"), Value::Array(list));
                        }
                        other => self.annotate(other),
                    }
                }
                for (key, name) in names {
                    fields.entry(key).or_insert(name);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FederationConfig;
    use ieschain_core::node::Event;
    use ieschain_core::ConsortiumId;

    #[test]
    fn events_carry_full_hex_names_and_rfc3339_times() {
        let (genesis, keys) = FederationConfig::four_party().genesis(1).unwrap();
        let directory = Directory::from_genesis(&genesis);
        let names = Names::new(&directory, &genesis);
        let relay = keys.member("grid-north").unwrap().address();
        let waiting = keys.member("grid-south").unwrap().address();
        let event = Event::Stalled {
            lane: ConsortiumId(1),
            epoch: 3,
            relay,
            waiting_for: vec![waiting],
            at: 1_796_601_600_123,
        };
        let value = names.to_value(&event);
        assert_eq!(
            value,
            serde_json::json!({
                "event": "stalled",
                "lane": 1,
                "lane_name": "grid",
                "epoch": 3,
                "relay": relay.to_string(),
                "relay_name": "grid-north",
                "waiting_for": [waiting.to_string()],
                "waiting_for_names": ["grid-south"],
                "at": "2026-12-07T00:00:00.123Z",
            })
        );
        assert_eq!(relay.to_string().len(), 40);
    }
}
