//! The reference system's events, as scale-eks-with-keda's producer wrote them: a JSON body plus the
//! `event_type` and `priority_shipping` message attributes.
//!
//! Generation is seeded (reproducible streams); validation is strict and typed, so that the
//! consumer can tell a malformed event (to the dead-letter queue, never retried) from a
//! transient failure (left for redelivery).

pub mod settings;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime};
use uuid::Uuid;

/// The product categories scale-eks-with-keda's producer draws from.
pub const CATEGORIES: [&str; 16] = [
    "Books",
    "Games",
    "Mobiles",
    "Groceries",
    "Shoes",
    "Stationaries",
    "Laptops",
    "Tablets",
    "Notebooks",
    "Camera",
    "Printers",
    "Monitors",
    "Speakers",
    "Projectors",
    "Cables",
    "Furniture",
];
/// The product variants.
pub const VARIANTS: [&str; 2] = ["black", "red"];
/// Valid `store_id`s.
pub const STORE_IDS: std::ops::RangeInclusive<u64> = 1..=10;
/// Valid `cust_id`s.
pub const CUSTOMER_IDS: std::ops::RangeInclusive<u64> = 100..=999;

/// The `event_type` message attribute; also the top-level S3 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// `sale_event`.
    SaleEvent,
    /// `inventory_event`.
    InventoryEvent,
}

impl EventType {
    /// Both, in the order the producer draws them.
    pub const ALL: [EventType; 2] = [EventType::SaleEvent, EventType::InventoryEvent];

    /// The attribute's value and the S3 prefix.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SaleEvent => "sale_event",
            Self::InventoryEvent => "inventory_event",
        }
    }

    /// The type an `event_type` attribute names.
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == text)
            .ok_or_else(|| ValidationError::EventType(quoted(text)))
    }
}

/// A valid event, as the consumer reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The event's id (UUID 4): the same id means the same event.
    pub request_id: Uuid,
    /// 1 to 10; absent in bad events.
    pub store_id: u64,
    /// 100 to 999.
    pub cust_id: u64,
    /// One of [`CATEGORIES`].
    pub category: String,
    /// 18,981 to 189,281.
    pub sku: u64,
    /// 0.00 to 100.00.
    pub price: f64,
    /// 1 to 38.
    pub qty: u64,
    /// 0.0 to 20.0.
    pub discount: f64,
    /// Gift wrapping asked for.
    pub gift_wrap: bool,
    /// One of [`VARIANTS`].
    pub variant: String,
    /// Also the message attribute of that name.
    pub priority_shipping: bool,
    /// When it happened: RFC 3339, or scale-eks-with-keda's naive ISO 8601 (read as UTC).
    pub ts: String,
    /// A return, when present and true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_return: Option<bool>,
}

/// One message as the producer sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The event's id.
    pub request_id: Uuid,
    /// The `event_type` attribute.
    pub event_type: EventType,
    /// The `priority_shipping` attribute.
    pub priority_shipping: bool,
    /// The JSON body.
    pub body: String,
    /// A deliberately malformed event (no `store_id`, `bad_msg: true`).
    pub bad: bool,
}

/// Why an event is not valid. Such a message is never retried.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValidationError {
    /// The body is not a JSON object (the parser's reason).
    #[error("body is not a JSON object: {0}")]
    NotJson(String),
    /// A required field is absent.
    #[error("missing field {0}")]
    MissingField(&'static str),
    /// A field has the wrong JSON type.
    #[error("field {field} should be {expected}")]
    WrongType {
        /// The field.
        field: &'static str,
        /// What it should be.
        expected: &'static str,
    },
    /// A field's value is outside what the producer emits.
    #[error("field {field} is {value}, outside {allowed}")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// Its value.
        value: String,
        /// The allowed values.
        allowed: &'static str,
    },
    /// The `event_type` attribute names no known event type.
    #[error("message attribute event_type is {0:?}: expected sale_event or inventory_event")]
    EventType(String),
    /// The `event_type` attribute is absent.
    #[error("message attribute event_type is missing")]
    MissingEventType,
}

/// The most of a value a reason quotes: a reason travels as a message attribute, and SQS
/// counts it against the message's size.
pub const MAX_QUOTED_CHARS: usize = 64;

/// `value` as a reason quotes it: its first [`MAX_QUOTED_CHARS`] characters, then how many more.
fn quoted(value: &str) -> String {
    let count = value.chars().count();
    if count <= MAX_QUOTED_CHARS {
        return value.to_owned();
    }
    let head: String = value.chars().take(MAX_QUOTED_CHARS).collect();
    format!("{head}… ({} more characters)", count - MAX_QUOTED_CHARS)
}

/// Reads and checks one message: body and `event_type` attribute.
pub fn validate(body: &str, event_type: Option<&str>) -> Result<(EventType, Event), ValidationError> {
    let event_type = EventType::parse(event_type.ok_or(ValidationError::MissingEventType)?)?;
    let value: Value = serde_json::from_str(body).map_err(|e| ValidationError::NotJson(e.to_string()))?;
    let object = value
        .as_object()
        .ok_or_else(|| ValidationError::NotJson("not an object".into()))?;
    let fields = Fields(object);

    let request_id = fields.string("request_id")?;
    let request_id = Uuid::parse_str(request_id).map_err(|_| ValidationError::WrongType {
        field: "request_id",
        expected: "a UUID",
    })?;
    let store_id = fields.integer_in("store_id", STORE_IDS, "1..=10")?;
    let cust_id = fields.integer_in("cust_id", CUSTOMER_IDS, "100..=999")?;
    let category = fields.string("category")?;
    if !CATEGORIES.contains(&category) {
        return Err(ValidationError::OutOfRange {
            field: "category",
            value: quoted(category),
            allowed: "the 16 categories",
        });
    }
    let sku = fields.integer_in("sku", 1..=u64::MAX, "positive integers")?;
    let price = fields.decimal("price", 2, 0.0..=1_000_000.0, "0..=1000000 with at most 2 decimals")?;
    let qty = fields.integer_in("qty", 1..=u64::MAX, "positive integers")?;
    let discount = fields.decimal("discount", 1, 0.0..=100.0, "0..=100 with at most 1 decimal")?;
    let gift_wrap = fields.boolean("gift_wrap")?;
    let variant = fields.string("variant")?.to_owned();
    let priority_shipping = fields.boolean("priority_shipping")?;
    let ts = fields.string("ts")?;
    timestamp(ts).ok_or(ValidationError::WrongType {
        field: "ts",
        expected: "an RFC 3339 timestamp, or one without offset as Python's isoformat() writes it",
    })?;
    let is_return = match object.get("is_return") {
        None | Some(Value::Null) => None,
        Some(_) => Some(fields.boolean("is_return")?),
    };
    Ok((
        event_type,
        Event {
            request_id,
            store_id,
            cust_id,
            category: category.to_owned(),
            sku,
            price,
            qty,
            discount,
            gift_wrap,
            variant,
            priority_shipping,
            ts: ts.to_owned(),
            is_return,
        },
    ))
}

struct Fields<'a>(&'a Map<String, Value>);

impl Fields<'_> {
    fn get(&self, field: &'static str) -> Result<&Value, ValidationError> {
        self.0.get(field).ok_or(ValidationError::MissingField(field))
    }

    fn string(&self, field: &'static str) -> Result<&str, ValidationError> {
        self.get(field)?.as_str().ok_or(ValidationError::WrongType {
            field,
            expected: "a string",
        })
    }

    fn boolean(&self, field: &'static str) -> Result<bool, ValidationError> {
        self.get(field)?.as_bool().ok_or(ValidationError::WrongType {
            field,
            expected: "true or false",
        })
    }

    fn integer_in(
        &self,
        field: &'static str,
        range: std::ops::RangeInclusive<u64>,
        allowed: &'static str,
    ) -> Result<u64, ValidationError> {
        let value = self.get(field)?;
        let number = value.as_u64().ok_or(ValidationError::WrongType {
            field,
            expected: "a non-negative integer",
        })?;
        if range.contains(&number) {
            Ok(number)
        } else {
            Err(ValidationError::OutOfRange {
                field,
                value: quoted(&value.to_string()),
                allowed,
            })
        }
    }

    fn decimal(
        &self,
        field: &'static str,
        decimals: i32,
        range: std::ops::RangeInclusive<f64>,
        allowed: &'static str,
    ) -> Result<f64, ValidationError> {
        let value = self.get(field)?;
        let number = value.as_f64().ok_or(ValidationError::WrongType {
            field,
            expected: "a number",
        })?;
        let scaled = number * 10f64.powi(decimals);
        if range.contains(&number) && (scaled - scaled.round()).abs() < 1e-6 {
            Ok(number)
        } else {
            Err(ValidationError::OutOfRange {
                field,
                value: quoted(&value.to_string()),
                allowed,
            })
        }
    }
}

/// `ts` as an instant: RFC 3339, or a date-time without offset as scale-eks-with-keda's producer writes it
/// (`datetime.now().isoformat()`: `2026-11-29T18:15:57.405282`, or without the fraction when
/// it is zero), which is read as UTC.
///
/// The instant is returned in UTC; a time whose UTC instant is past the year 9999
/// (`9999-12-31T23:30:00-01:00` is in year 10000) is no timestamp.
pub fn timestamp(ts: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(ts, &Rfc3339)
        .ok()
        .or_else(|| {
            let naive = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]");
            PrimitiveDateTime::parse(ts, naive)
                .ok()
                .map(PrimitiveDateTime::assume_utc)
        })
        .and_then(|t| t.checked_to_offset(time::UtcOffset::UTC))
}

/// The partition day of an event: the UTC day of its timestamp, whatever offset it was
/// written with, so that events of one instant share a partition.
pub fn utc_day(ts: &str) -> Option<Date> {
    timestamp(ts).map(OffsetDateTime::date)
}

/// `[prefix/]<event_type>/dt=YYYY-MM-DD/<request_id>.json`, dated by the UTC day of the
/// event's own timestamp, so a redelivered or duplicated event lands on the same key.
pub fn object_key(prefix: &str, event_type: EventType, event: &Event) -> String {
    let date = utc_day(&event.ts).map_or_else(|| "unknown".to_owned(), |d| d.to_string());
    under_prefix(
        prefix,
        &format!("{}/dt={date}/{}.json", event_type.as_str(), event.request_id),
    )
}

/// `[prefix/]path`, the prefix given with or without slashes.
pub fn under_prefix(prefix: &str, path: &str) -> String {
    match prefix.trim_matches('/') {
        "" => path.to_owned(),
        prefix => format!("{prefix}/{path}"),
    }
}

/// A reproducible stream of events.
#[derive(Debug)]
pub struct Generator {
    rng: StdRng,
    bad_percent: u8,
}

impl Generator {
    /// `seed: None` draws one from the operating system.
    pub fn new(seed: Option<u64>, bad_percent: u8) -> Self {
        let rng = match seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => rand::make_rng(),
        };
        Self {
            rng,
            bad_percent: bad_percent.min(100),
        }
    }

    /// True with the given probability in percent; the producer uses it for duplicates too.
    pub fn chance(&mut self, percent: u8) -> bool {
        self.rng.random_range(0..100u8) < percent
    }

    /// A uniform index into a list of `len` items (`len` > 0).
    pub fn index(&mut self, len: usize) -> usize {
        self.rng.random_range(0..len)
    }

    /// The next message, stamped `now`: a new event, a bad one or a duplicate, as configured.
    pub fn next_message(&mut self, now: OffsetDateTime) -> Message {
        let rng = &mut self.rng;
        let request_id = uuid::Builder::from_random_bytes(rng.random()).into_uuid();
        let price = f64::from(rng.random_range(100u32..=10_000)) / 100.0;
        let discount = f64::from(rng.random_range(10u32..=500)) / 10.0;
        let now = now
            .replace_nanosecond(now.nanosecond() / 1_000_000 * 1_000_000)
            .unwrap_or(now);
        let event = Event {
            request_id,
            store_id: rng.random_range(STORE_IDS),
            cust_id: rng.random_range(CUSTOMER_IDS),
            category: CATEGORIES[rng.random_range(0..CATEGORIES.len())].to_owned(),
            sku: rng.random_range(16_592..=99_999),
            price,
            qty: rng.random_range(1..=38),
            discount,
            gift_wrap: rng.random(),
            variant: VARIANTS[rng.random_range(0..VARIANTS.len())].to_owned(),
            priority_shipping: rng.random(),
            ts: now.format(&Rfc3339).unwrap_or_default(),
            is_return: rng.random::<bool>().then_some(true),
        };
        let event_type = EventType::ALL[rng.random_range(0..2)];
        let bad = self.rng.random_range(0..100u8) < self.bad_percent;
        let body = if bad {
            let mut value = serde_json::to_value(&event).expect("events serialize");
            if let Some(object) = value.as_object_mut() {
                object.remove("store_id");
                object.insert("bad_msg".into(), Value::Bool(true));
            }
            value.to_string()
        } else {
            serde_json::to_string(&event).expect("events serialize")
        };
        Message {
            request_id,
            event_type,
            priority_shipping: event.priority_shipping,
            body,
            bad,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap()
    }

    #[test]
    fn generated_events_validate_and_bad_ones_do_not() {
        let mut generator = Generator::new(Some(7), 30);
        let (mut good, mut bad) = (0, 0);
        for _ in 0..1000 {
            let message = generator.next_message(now());
            let result = validate(&message.body, Some(message.event_type.as_str()));
            if message.bad {
                bad += 1;
                assert_eq!(result.unwrap_err(), ValidationError::MissingField("store_id"));
                assert!(message.body.contains("\"bad_msg\":true"));
            } else {
                good += 1;
                let (event_type, event) = result.unwrap();
                assert_eq!(event_type, message.event_type);
                assert_eq!(event.request_id, message.request_id);
                assert_eq!(
                    serde_json::to_string(&event).unwrap(),
                    message.body,
                    "round trip is byte-exact"
                );
            }
        }
        assert!((250..350).contains(&bad), "{bad} bad of 1000 at 30%");
        assert_eq!(good + bad, 1000);
    }

    #[test]
    fn the_same_seed_gives_the_same_stream() {
        let mut a = Generator::new(Some(42), 10);
        let mut b = Generator::new(Some(42), 10);
        for _ in 0..50 {
            assert_eq!(a.next_message(now()), b.next_message(now()));
        }
        assert_ne!(
            Generator::new(Some(1), 10).next_message(now()),
            Generator::new(Some(2), 10).next_message(now())
        );
    }

    fn valid() -> Value {
        json!({"request_id": "5f0e7d7c-8f2f-4b8e-9a43-0c7f6f1b2a10", "store_id": 3, "cust_id": 512,
               "category": "Books", "sku": 20001, "price": 12.5, "qty": 2, "discount": 10.5,
               "gift_wrap": false, "variant": "red", "priority_shipping": true,
               "ts": "2026-11-28T10:00:00.000Z"})
    }

    #[test]
    fn validation_names_what_is_wrong() {
        let check = |mutate: &dyn Fn(&mut Value), attribute: Option<&str>| {
            let mut body = valid();
            mutate(&mut body);
            validate(&body.to_string(), attribute).unwrap_err()
        };
        let sale = Some("sale_event");
        assert_eq!(check(&|_| {}, None), ValidationError::MissingEventType);
        assert_eq!(
            check(&|_| {}, Some("refund_event")),
            ValidationError::EventType("refund_event".into())
        );
        let wrong_values = [
            ("store_id", json!(11), "field store_id is 11, outside 1..=10"),
            (
                "cust_id",
                json!("512"),
                "field cust_id should be a non-negative integer",
            ),
            (
                "price",
                json!(1.234),
                "field price is 1.234, outside 0..=1000000 with at most 2 decimals",
            ),
            (
                "discount",
                json!(10.25),
                "field discount is 10.25, outside 0..=100 with at most 1 decimal",
            ),
            (
                "category",
                json!("Cars"),
                "field category is Cars, outside the 16 categories",
            ),
            (
                "ts",
                json!("yesterday"),
                "field ts should be an RFC 3339 timestamp, or one without offset as Python's isoformat() writes it",
            ),
            (
                "ts",
                json!("2026-11-29 18:15:57"),
                "field ts should be an RFC 3339 timestamp, or one without offset as Python's isoformat() writes it",
            ),
            ("request_id", json!("42"), "field request_id should be a UUID"),
            ("is_return", json!("yes"), "field is_return should be true or false"),
        ];
        for (field, value, message) in wrong_values {
            assert_eq!(check(&|b| b[field] = value.clone(), sale).to_string(), message);
        }
        assert_eq!(
            check(
                &|b| {
                    b.as_object_mut().unwrap().remove("qty");
                },
                sale
            ),
            ValidationError::MissingField("qty")
        );
        assert!(matches!(validate("[1]", sale), Err(ValidationError::NotJson(_))));
        assert!(matches!(validate("{", sale), Err(ValidationError::NotJson(_))));
        assert!(validate(&valid().to_string(), sale).is_ok());
    }

    #[test]
    fn timestamps_without_offset_are_read_as_utc_and_partitions_are_utc_days() {
        for (ts, day) in [
            ("2026-11-29T18:15:57.405282", "2026-11-29"),
            ("2026-11-29T18:15:57", "2026-11-29"),
            ("2024-01-01T23:30:00-05:00", "2024-01-02"),
            ("2024-01-02T00:30:00+01:00", "2024-01-01"),
            ("2026-11-28T10:00:00.000Z", "2026-11-28"),
        ] {
            let mut body = valid();
            body["ts"] = json!(ts);
            let (event_type, event) = validate(&body.to_string(), Some("sale_event")).unwrap();
            assert_eq!(event.ts, ts, "kept as written");
            assert_eq!(
                object_key("", event_type, &event),
                format!("sale_event/dt={day}/5f0e7d7c-8f2f-4b8e-9a43-0c7f6f1b2a10.json"),
                "{ts}"
            );
        }
        assert_eq!(
            timestamp("2026-11-29T18:15:57.405282"),
            Some(time::macros::datetime!(2026-11-29 18:15:57.405282 UTC))
        );
    }

    #[test]
    fn reasons_quote_at_most_a_bounded_part_of_a_value() {
        let mut body = valid();
        body["category"] = serde_json::json!("x".repeat(700_000));
        let reason = validate(&body.to_string(), Some("sale_event")).unwrap_err().to_string();
        assert!(reason.len() < 200, "{} bytes", reason.len());
        assert!(reason.contains("(699936 more characters)"), "{reason}");
        let reason = validate(&valid().to_string(), Some(&"e".repeat(10_000)))
            .unwrap_err()
            .to_string();
        assert!(reason.len() < 200, "{} bytes", reason.len());
    }

    #[test]
    fn a_time_whose_utc_instant_is_out_of_range_is_invalid_not_a_panic() {
        for ts in ["9999-12-31T23:30:00-01:00", "9999-12-31T23:59:59.999-23:59"] {
            assert_eq!(utc_day(ts), None, "{ts}");
            let mut body = valid();
            body["ts"] = serde_json::json!(ts);
            let error = validate(&body.to_string(), Some("sale_event")).unwrap_err();
            assert!(
                matches!(error, ValidationError::WrongType { field: "ts", .. }),
                "{error}"
            );
        }
        assert_eq!(utc_day("9999-12-31T22:30:00-01:00").unwrap().year(), 9999);
    }

    #[test]
    fn keys_are_dated_by_the_event_and_prefixed_when_asked() {
        let (event_type, event) = validate(&valid().to_string(), Some("inventory_event")).unwrap();
        assert_eq!(
            object_key("", event_type, &event),
            "inventory_event/dt=2026-11-28/5f0e7d7c-8f2f-4b8e-9a43-0c7f6f1b2a10.json"
        );
        assert_eq!(
            object_key("/archive/", EventType::SaleEvent, &event),
            "archive/sale_event/dt=2026-11-28/5f0e7d7c-8f2f-4b8e-9a43-0c7f6f1b2a10.json"
        );
    }
}
