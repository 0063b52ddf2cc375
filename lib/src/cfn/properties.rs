//! Decoding `ResourceProperties` into a handler's typed struct.
//!
//! CloudFormation turns every scalar into a string (`5` arrives as `"5"`, `true` as
//! `"true"`), so the decoder parses strings wherever the target type asks for a number or a
//! bool. Unknown keys are collected (all of them, nested ones with their path) so that a typo
//! fails the request instead of being ignored. An error names the property by its path and
//! the kind of value found, never the value: a property may carry content that must not reach
//! a stack event.

use serde::de::value::{MapAccessDeserializer, StrDeserializer};
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Unexpected, Visitor,
};
use serde_json::{Map, Value};

use crate::Error;

/// The longest `ServiceTimeout` CloudFormation accepts, in seconds.
pub const MAX_SERVICE_TIMEOUT_SECONDS: u64 = 3600;

/// Properties that are CloudFormation's, not the handler's: it passes them on in
/// `ResourceProperties` like any other.
const CLOUDFORMATION_KEYS: [&str; 2] = ["ServiceToken", "ServiceTimeout"];

/// `ServiceTimeout`: how long CloudFormation waits for the response, when the template sets
/// it. Outside CloudFormation's 1–3600 s it is an error, never a deadline.
pub fn service_timeout(properties: &Value) -> Result<Option<std::time::Duration>, Error> {
    let Some(value) = properties.get("ServiceTimeout") else {
        return Ok(None);
    };
    let seconds = match value {
        Value::String(text) => text.trim().parse::<u64>().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    };
    match seconds {
        Some(seconds @ 1..=MAX_SERVICE_TIMEOUT_SECONDS) => Ok(Some(std::time::Duration::from_secs(seconds))),
        _ => Err(Error::invalid(
            "ServiceTimeout",
            format!("expected whole seconds from 1 to {MAX_SERVICE_TIMEOUT_SECONDS}, as CloudFormation accepts"),
        )),
    }
}

/// Whether keys the target type does not know are an error (new properties) or are passed
/// over (old properties of an Update or a Delete, which an older handler version accepted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnknownKeys {
    /// An unknown key fails, naming it.
    Reject,
    /// Unknown keys are passed over.
    Ignore,
}

/// Decodes `properties` into `P`, reading CloudFormation's strings as numbers and booleans where `P` asks; errors name the property path and never the value.
pub fn decode<P: DeserializeOwned>(properties: &Value, unknown: UnknownKeys) -> Result<P, Error> {
    let empty = Value::Object(Map::new());
    let mut owned;
    let properties = match properties {
        Value::Object(map) if CLOUDFORMATION_KEYS.iter().any(|k| map.contains_key(*k)) => {
            owned = map.clone();
            for key in CLOUDFORMATION_KEYS {
                owned.remove(key);
            }
            &Value::Object(owned)
        }
        Value::Null => &empty,
        other => other,
    };
    let mut ignored = Vec::new();
    let decoded = serde_path_to_error::deserialize(serde_ignored::Deserializer::new(
        Lenient(properties),
        &mut |path: serde_ignored::Path<'_>| {
            ignored.push(property_path(&path));
        },
    ))
    .map_err(|error| {
        let path = error.path().to_string();
        let Problem(message) = error.into_inner();
        // Serde reports a missing field at its parent: name the field itself.
        let (path, message) = match message
            .strip_prefix("missing field `")
            .and_then(|m| m.strip_suffix('`'))
        {
            Some(field) => (join(&path, field), "is required".to_owned()),
            None => (path, message),
        };
        Error::invalid(if path == "." { "(properties)".to_owned() } else { path }, message)
    })?;
    if unknown == UnknownKeys::Reject && !ignored.is_empty() {
        return Err(Error::UnknownProperties(ignored));
    }
    Ok(decoded)
}

fn join(parent: &str, field: &str) -> String {
    if parent == "." {
        field.to_owned()
    } else {
        format!("{parent}.{field}")
    }
}

/// A decoding error that says what was expected and what kind of value came, not the value.
#[derive(Debug)]
struct Problem(String);

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Problem {}

impl de::Error for Problem {
    fn custom<T: std::fmt::Display>(message: T) -> Self {
        Self(crate::redact::parser_message(
            &message.to_string(),
            crate::redact::Stage::Decode,
        ))
    }

    fn invalid_type(found: Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        Self(format!("expected {expected}, found {}", kind(&found)))
    }

    fn invalid_value(found: Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        Self(format!("found {} that is not {expected}", kind(&found)))
    }

    fn invalid_length(length: usize, expected: &dyn de::Expected) -> Self {
        Self(format!("expected {expected}, found {length} items"))
    }

    fn unknown_variant(_variant: &str, expected: &'static [&'static str]) -> Self {
        Self(format!("expected one of {}", expected.join(", ")))
    }
}

fn kind(found: &Unexpected<'_>) -> &'static str {
    match found {
        Unexpected::Bool(_) => "a boolean",
        Unexpected::Unsigned(_) | Unexpected::Signed(_) | Unexpected::Float(_) => "a number",
        Unexpected::Char(_) | Unexpected::Str(_) => "a string",
        Unexpected::Bytes(_) => "bytes",
        Unexpected::Unit | Unexpected::Option => "null",
        Unexpected::Seq => "a list",
        Unexpected::Map => "a map",
        _ => "another kind of value",
    }
}

/// `Behavior.ScaleUp.Policies[0]`: the path as the template author wrote it.
fn property_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Map { parent, key } => match property_path(parent) {
            prefix if prefix.is_empty() => key.clone(),
            prefix => format!("{prefix}.{key}"),
        },
        Path::Seq { parent, index } => format!("{}[{index}]", property_path(parent)),
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => {
            property_path(parent)
        }
    }
}

/// A view of a JSON value that deserializes numbers and bools from their string form.
struct Lenient<'a>(&'a Value);

fn parse_str<T: std::str::FromStr>(text: &str, expected: &'static str) -> Result<T, Problem> {
    text.trim()
        .parse()
        .map_err(|_| de::Error::invalid_value(Unexpected::Str(text), &expected))
}

macro_rules! lenient_number {
    ($($method:ident => $parse:ty, $visit:ident;)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            match self.0 {
                Value::String(text) => visitor.$visit(parse_str::<$parse>(text, "a number")?),
                _ => self.deserialize_any(visitor),
            }
        }
    )*};
}

impl<'de> Deserializer<'de> for Lenient<'_> {
    type Error = Problem;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => visitor.visit_str(s),
            Value::Array(items) => visitor.visit_seq(Seq(items.iter())),
            Value::Object(map) => visitor.visit_map(Entries {
                entries: map.iter(),
                value: None,
            }),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::String(text) => match text.trim().to_ascii_lowercase().as_str() {
                "true" => visitor.visit_bool(true),
                "false" => visitor.visit_bool(false),
                _ => Err(de::Error::invalid_value(Unexpected::Str(text), &"true or false")),
            },
            _ => self.deserialize_any(visitor),
        }
    }

    lenient_number! {
        deserialize_i8 => i64, visit_i64;
        deserialize_i16 => i64, visit_i64;
        deserialize_i32 => i64, visit_i64;
        deserialize_i64 => i64, visit_i64;
        deserialize_u8 => u64, visit_u64;
        deserialize_u16 => u64, visit_u64;
        deserialize_u32 => u64, visit_u64;
        deserialize_u64 => u64, visit_u64;
        deserialize_f32 => f64, visit_f64;
        deserialize_f64 => f64, visit_f64;
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Number(n) => visitor.visit_string(n.to_string()),
            Value::Bool(b) => visitor.visit_string(b.to_string()),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::String(text) => {
                let variant: StrDeserializer<'_, Problem> = text.as_str().into_deserializer();
                visitor.visit_enum(variant)
            }
            Value::Object(map) if map.len() == 1 => visitor.visit_enum(MapAccessDeserializer::new(Entries {
                entries: map.iter(),
                value: None,
            })),
            _ => self.deserialize_any(visitor),
        }
    }

    serde::forward_to_deserialize_any! {
        char bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

struct Seq<'a>(std::slice::Iter<'a, Value>);

impl<'de> SeqAccess<'de> for Seq<'_> {
    type Error = Problem;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Self::Error> {
        self.0.next().map(|item| seed.deserialize(Lenient(item))).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Entries<'a> {
    entries: serde_json::map::Iter<'a>,
    value: Option<&'a Value>,
}

impl<'de> MapAccess<'de> for Entries<'_> {
    type Error = Problem;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Self::Error> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(value);
        let key: StrDeserializer<'_, Problem> = key.as_str().into_deserializer();
        seed.deserialize(key).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Self::Error> {
        let value = self
            .value
            .take()
            .ok_or_else(|| <Problem as de::Error>::custom("a map value was asked for before its key"))?;
        seed.deserialize(Lenient(value))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "PascalCase")]
    struct Props {
        name: String,
        count: u32,
        ratio: f64,
        enabled: bool,
        #[serde(default)]
        offset: Option<i32>,
        #[serde(default)]
        ports: Vec<u16>,
        #[serde(default)]
        mode: Option<Mode>,
        #[serde(default)]
        nested: Option<Nested>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    enum Mode {
        Fast,
        Safe,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "PascalCase")]
    struct Nested {
        limit: u8,
    }

    #[test]
    fn stringified_scalars_decode_into_typed_fields() {
        let raw = json!({
            "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:f",
            "ServiceTimeout": "300",
            "Name": "q", "Count": "5", "Ratio": "0.25", "Enabled": "true", "Offset": "-3",
            "Ports": ["80", "443"], "Mode": "Safe", "Nested": {"Limit": "7"}
        });
        let props: Props = decode(&raw, UnknownKeys::Reject).unwrap();
        assert_eq!(
            props,
            Props {
                name: "q".into(),
                count: 5,
                ratio: 0.25,
                enabled: true,
                offset: Some(-3),
                ports: vec![80, 443],
                mode: Some(Mode::Safe),
                nested: Some(Nested { limit: 7 }),
            }
        );
    }

    #[test]
    fn service_timeout_is_read_as_cloudformation_sends_it() {
        let timeout = |v: Value| service_timeout(&v).map_err(|e| e.to_string());
        assert_eq!(
            timeout(json!({"ServiceTimeout": "300"})),
            Ok(Some(std::time::Duration::from_mins(5)))
        );
        assert_eq!(
            timeout(json!({"ServiceTimeout": 3600})),
            Ok(Some(std::time::Duration::from_hours(1)))
        );
        assert_eq!(timeout(json!({"Name": "x"})), Ok(None));
    }

    #[test]
    fn service_timeout_outside_cloudformations_range_is_an_error_not_a_deadline() {
        for bad in [
            json!("18446744073709551615"),
            json!(u64::MAX),
            json!("0"),
            json!(3601),
            json!(-5),
            json!("soon"),
        ] {
            let error = service_timeout(&json!({"ServiceTimeout": bad}))
                .unwrap_err()
                .to_string();
            assert_eq!(
                error,
                "property ServiceTimeout: expected whole seconds from 1 to 3600, as CloudFormation accepts"
            );
        }
    }

    #[test]
    fn native_json_scalars_still_decode() {
        let raw = json!({"Name": 12, "Count": 5, "Ratio": 1, "Enabled": false});
        let props: Props = decode(&raw, UnknownKeys::Reject).unwrap();
        assert_eq!((props.name.as_str(), props.count, props.enabled), ("12", 5, false));
        assert!((props.ratio - 1.0).abs() < f64::EPSILON);
    }

    #[test]
    fn unknown_properties_are_all_named_with_their_path() {
        let raw = json!({"Name": "q", "Count": "1", "Ratio": "1", "Enabled": "False",
                         "Cuont": "2", "Nested": {"Limit": "1", "Limt": "2"}});
        let err = decode::<Props>(&raw, UnknownKeys::Reject).unwrap_err();
        let Error::UnknownProperties(names) = &err else {
            panic!("expected UnknownProperties, got {err}")
        };
        assert_eq!(names, &["Cuont".to_string(), "Nested.Limt".to_string()]);
        assert!(err.to_string().starts_with("unknown properties: Cuont, Nested.Limt"));
        assert!(decode::<Props>(&raw, UnknownKeys::Ignore).is_ok());
    }

    #[test]
    fn type_errors_name_the_property_and_the_kind_of_value_never_the_value() {
        let error = |raw: Value| decode::<Props>(&raw, UnknownKeys::Reject).unwrap_err().to_string();
        let base = json!({"Name": "q", "Count": "1", "Ratio": "1", "Enabled": "true"});
        let with = |key: &str, value: Value| {
            let mut raw = base.clone();
            raw[key] = value;
            raw
        };
        assert_eq!(
            error(with("Count", json!("five-secret"))),
            "property Count: found a string that is not a number"
        );
        assert_eq!(
            error(with("Enabled", json!("yes-secret"))),
            "property Enabled: found a string that is not true or false"
        );
        assert_eq!(
            error(with("Nested", json!({"Limit": "300"}))),
            "property Nested.Limit: found a number that is not u8"
        );
        assert_eq!(
            error(with("Ports", json!(["80", {"secret": 1}]))),
            "property Ports[1]: expected u16, found a map"
        );
        assert_eq!(
            error(with("Mode", json!("Secretive"))),
            "property Mode: expected one of Fast, Safe"
        );
        assert_eq!(
            error(with("Name", json!(["secret"]))),
            "property Name: expected a string, found a list"
        );
        assert_eq!(
            error(json!({"Name": "q", "Ratio": "1", "Enabled": "true"})),
            "property Count: is required"
        );
        assert_eq!(error(with("Nested", json!({}))), "property Nested.Limit: is required");
        assert_eq!(
            error(json!("a manifest that is a plain secret string")),
            "property (properties): expected struct Props, found a string"
        );
    }
}
