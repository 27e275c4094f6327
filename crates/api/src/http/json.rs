//! Request bodies read as their OpenAPI schemas describe them. Two things set serde's reading apart from
//! JSON Schema's, and this reader follows the schema on both:
//! - an object is an object: serde's derived structs also accept an array of their fields in order
//!   (`[null, null]` for `{"expires_at": null, "expires_in_days": null}`), which no schema admits;
//! - an integer is a number whose value is whole: JSON Schema counts `2.0` as the integer 2 (JavaScript
//!   cannot even tell them apart), where serde's integers refuse any number written with a fraction.
//!
//! The body is parsed once into a `serde_json::Value` and read from there through [`Strict`]; when that
//! fails, axum's reading of the same bytes names the field at fault, as every other rejection does.

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::forward_to_deserialize_any;
use serde_json::{Map, Value};

use super::error::Error;

/// A JSON request body (`Content-Type: application/json` or `…+json`), read strictly: 415 for another
/// content type, 413 over the body limit, 400 for malformed JSON, 422 for a value of the wrong shape.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(request.headers()) {
            return Err(Error::Invalid {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code: "unsupported_media_type",
                message: "Expected request with `Content-Type: application/json`".into(),
            });
        }
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge,
            _ => Error::bad_request("unreadable_body", rejection.body_text()),
        })?;
        from_bytes(&bytes).map(Json)
    }
}

/// Whether the request says its body is JSON (`application/json`, or a `+json` type).
pub fn is_json(headers: &HeaderMap) -> bool {
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let mime = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Reads a JSON body strictly, with our errors: 400 `malformed_json`, 422 `invalid_body`.
pub fn from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    from_slice(bytes).map_err(|error| {
        // axum's reading of the same bytes names the field at fault (`amount.amount_minor: ...`), so its
        // message is used when it finds the same kind of fault; it differs from ours only in leniency.
        let axum = axum::Json::<T>::from_bytes(bytes).err();
        if error.is_data() {
            let message = match axum {
                Some(JsonRejection::JsonDataError(rejection)) => rejection.body_text(),
                _ => format!("Failed to deserialize the JSON body into the target type: {error}"),
            };
            Error::invalid_field("invalid_body", message)
        } else {
            let message = match axum {
                Some(JsonRejection::JsonSyntaxError(rejection)) => rejection.body_text(),
                _ => format!("Failed to parse the request body as JSON: {error}"),
            };
            Error::bad_request("malformed_json", message)
        }
    })
}

/// `serde_json::from_slice`, read strictly (see the module's documentation). Syntax errors are
/// `Category::Syntax` or `Eof`, errors of shape `Category::Data`, as serde_json classifies them.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    let value: Value = serde_json::from_slice(bytes)?;
    T::deserialize(Strict(&value))
}

/// Reads one part of a body already parsed (an item of a batch) as strictly as a whole body, with our
/// error: 422 `invalid_body`, naming the field at fault as serde does.
pub fn from_value<T: DeserializeOwned>(value: &Value) -> Result<T, Error> {
    T::deserialize(Strict(value))
        .map_err(|error| Error::invalid_field("invalid_body", format!("Failed to deserialize the item: {error}")))
}

/// A JSON value read the way its schema says: structs only from objects, integers from whole numbers.
struct Strict<'a>(&'a Value);

/// The whole number a JSON number spells, if it is one: `2` and `2.0` alike, as long as the float is
/// exactly that integer (below 2^53 in magnitude, every float with no fraction is).
fn whole(value: &Value) -> Option<Whole> {
    let number = value.as_number()?;
    if let Some(n) = number.as_i64() {
        return Some(Whole::Signed(n));
    }
    if let Some(n) = number.as_u64() {
        return Some(Whole::Unsigned(n));
    }
    let float = number.as_f64()?;
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
                                                // Exactly representable, so the cast is exact.
    (float.fract() == 0.0 && float.abs() <= EXACT).then_some(Whole::Signed(float as i64))
}

enum Whole {
    Signed(i64),
    Unsigned(u64),
}

macro_rules! integers {
    ($($method:ident),*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
                match whole(self.0) {
                    Some(Whole::Signed(n)) => visitor.visit_i64(n),
                    Some(Whole::Unsigned(n)) => visitor.visit_u64(n),
                    None => self.0.$method(visitor),
                }
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for Strict<'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Object(map) => visitor.visit_map(Fields::new(map)),
            Value::Array(items) => visitor.visit_seq(Items(items.iter())),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Object(map) => visitor.visit_map(Fields::new(map)),
            // Refused as serde_json refuses any other mismatch: "invalid type: sequence, expected ...".
            other => other.deserialize_struct(name, fields, RefuseSequences(visitor)),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Object(map) => visitor.visit_map(Fields::new(map)),
            other => other.deserialize_map(visitor),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Array(items) => visitor.visit_seq(Items(items.iter())),
            other => other.deserialize_seq(visitor),
        }
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
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        // Our enums are plain names; serde_json reads those exactly as the schema says.
        self.0.deserialize_enum(name, variants, visitor)
    }

    integers!(
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128
    );

    forward_to_deserialize_any! {
        bool f32 f64 char str string bytes byte_buf unit unit_struct tuple tuple_struct identifier ignored_any
    }
}

/// A struct's visitor that is never handed a sequence: `Value::deserialize_struct` offers arrays to
/// `visit_seq`, and a derived struct would take them.
struct RefuseSequences<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for RefuseSequences<V> {
    type Value = V::Value;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        self.0.expecting(formatter)
    }
}

/// An object's members, each value read strictly.
struct Fields<'a> {
    members: serde_json::map::Iter<'a>,
    value: Option<&'a Value>,
}

impl<'a> Fields<'a> {
    fn new(map: &'a Map<String, Value>) -> Self {
        Fields { members: map.iter(), value: None }
    }
}

impl<'de> MapAccess<'de> for Fields<'de> {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Self::Error> {
        match self.members.next() {
            Some((key, value)) => {
                self.value = Some(value);
                seed.deserialize(key.as_str().into_deserializer()).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Self::Error> {
        let value = self.value.take().ok_or_else(|| de::Error::custom("a value without its key"))?;
        seed.deserialize(Strict(value))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.members.len())
    }
}

/// An array's items, each read strictly.
struct Items<'a>(std::slice::Iter<'a, Value>);

impl<'de> SeqAccess<'de> for Items<'de> {
    type Error = serde_json::Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>, Self::Error> {
        self.0.next().map(|item| seed.deserialize(Strict(item))).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Amount {
        minor: i64,
        currency: String,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Order {
        id: String,
        amount: Amount,
        #[serde(default)]
        days: Option<u32>,
        codes: Option<Vec<String>>,
    }

    fn read<T: DeserializeOwned>(value: Value) -> Result<T, serde_json::Error> {
        from_slice(value.to_string().as_bytes())
    }

    #[test]
    fn whole_numbers_are_integers_however_they_are_written() {
        let order: Order =
            read(json!({"id": "1", "amount": {"minor": 1299.0, "currency": "USD"}, "days": 30.0, "codes": null}))
                .unwrap();
        assert_eq!((order.amount.minor, order.days), (1299, Some(30)));
        for fractional in [json!(12.5), json!(1e300), json!(-0.5)] {
            assert!(read::<Amount>(json!({"minor": fractional, "currency": "USD"})).is_err(), "{fractional}");
        }
        assert!(read::<Order>(json!({"id": "1", "amount": {"minor": 1, "currency": "USD"}, "days": -1.0})).is_err());
    }

    #[test]
    fn structs_are_only_read_from_objects() {
        assert!(read::<Amount>(json!([1, "USD"])).is_err());
        assert!(read::<Option<Amount>>(json!([null, null])).is_err());
        let nested = json!({"id": "1", "amount": [1, "USD"], "codes": null});
        let error = read::<Order>(nested).unwrap_err();
        assert!(error.is_data(), "{error}");
        assert_eq!(read::<Option<Amount>>(json!(null)).unwrap(), None);
    }

    #[test]
    fn everything_else_reads_as_serde_json_reads_it() {
        let order: Order =
            read(json!({"id": "1", "amount": {"minor": 5, "currency": "EUR"}, "codes": ["A", "B"]})).unwrap();
        assert_eq!(order.codes, Some(vec!["A".to_owned(), "B".to_owned()]));
        let unknown = read::<Amount>(json!({"minor": 1, "currency": "USD", "extra": true})).unwrap_err();
        assert!(unknown.to_string().contains("unknown field"), "{unknown}");
        assert!(from_slice::<Amount>(b"{").unwrap_err().is_eof());
        let value: Value = read(json!({"n": 2.0})).unwrap();
        assert_eq!(value, json!({"n": 2.0}), "only integer targets read 2.0 as 2");
    }
}
