//! YAML documents read into JSON values within a node budget, so that aliases cannot expand a
//! few kilobytes into gigabytes: the count includes every node an alias repeats, and reading
//! stops at the first node over budget.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Nodes (scalars, lists, maps, keys) a manifest may have after alias expansion: KEDA's
/// release manifest has about 15,000.
pub(crate) const MAX_NODES: usize = 1_000_000;

/// Every document of `text`, `None` for an empty one; the error names the document (from 1)
/// and what is wrong, never the content.
pub(crate) fn documents(text: &str, max_nodes: usize) -> Result<Vec<Value>, (usize, String)> {
    let budget = Cell::new(max_nodes);
    let mut values = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = Node(&budget).deserialize(document).map_err(|e| {
            (
                index + 1,
                crate::redact::parser_message(&e.to_string(), crate::redact::Stage::Yaml),
            )
        })?;
        values.push(value);
    }
    Ok(values)
}

struct Node<'a>(&'a Cell<usize>);

impl Node<'_> {
    fn spend<E: de::Error>(&self) -> Result<(), E> {
        match self.0.get().checked_sub(1) {
            Some(left) => {
                self.0.set(left);
                Ok(())
            }
            None => Err(E::custom(format_args!(
                "more than {MAX_NODES} nodes after alias expansion (an alias bomb?)"
            ))),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::from(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.spend()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Node(self.0))? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.spend()?;
        let mut entries = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            self.spend()?;
            let value = map.next_value_seed(Node(self.0))?;
            entries.insert(key, value);
        }
        Ok(Value::Object(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_read_as_json_values() {
        let values = documents("a: 1\nb: [x, true, 2.5, null]\n---\n---\nc: {d: e}\n", MAX_NODES).unwrap();
        assert_eq!(
            values,
            vec![
                serde_json::json!({"a": 1, "b": ["x", true, 2.5, null]}),
                Value::Null,
                serde_json::json!({"c": {"d": "e"}})
            ]
        );
    }

    #[test]
    fn aliases_count_every_node_they_repeat() {
        let text = "a: &a [1, 2, 3]\nb: [*a, *a]\n";
        assert_eq!(documents(text, 100).unwrap()[0]["b"][1][2], 3);
        // 1 map + 2 keys + 2 lists + 3 items, then the 2 aliased lists of 4 nodes each.
        assert!(documents(text, 16).is_ok());
        assert_eq!(documents(text, 15).unwrap_err().0, 1);
    }
}
