//! A projection's state or result, stored as JSON text, as the `google.protobuf.Value` that
//! `State` and `Result` answer (PROTOCOL-OPS.md §1.2, EventStoreDB's `GetProtoValue`):
//! null, numbers (as doubles), strings, booleans, objects and arrays map to the Value kinds
//! of the same names, and an empty text is an empty object (`{}`).
//!
//! The nesting depth is bounded by [`MAX_STATE_DEPTH`], so a state that a user's projection
//! built arbitrarily deep can neither exhaust this server's stack nor produce an answer the
//! clients cannot decode.

use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value};

/// The deepest nesting of objects and arrays answered. Each level costs the client up to
/// three nested protobuf messages (`Value` → `Struct` → map entry → `Value`), and prost
/// refuses to decode past 100 nested messages, so 32 levels (plus the response message
/// itself) is as deep as every client can read.
pub const MAX_STATE_DEPTH: usize = 32;

/// Why a stored state cannot be answered as a `Value`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateValueError {
    #[error("the state is not valid JSON: {0}")]
    NotJson(String),
    #[error("the state nests deeper than {MAX_STATE_DEPTH} levels")]
    TooDeep,
}

/// The `Value` of a state's JSON text (`""`, or only white space, is `{}`).
pub fn state_value(json: &str) -> Result<Value, StateValueError> {
    if json.trim().is_empty() {
        return Ok(Value {
            kind: Some(Kind::StructValue(Struct::default())),
        });
    }
    // serde_json stops at 128 levels on its own, so parsing cannot overflow the stack
    // either; the narrower bound is checked while converting.
    let parsed: serde_json::Value =
        serde_json::from_str(json).map_err(|e| StateValueError::NotJson(e.to_string()))?;
    convert(parsed, 0)
}

fn convert(json: serde_json::Value, depth: usize) -> Result<Value, StateValueError> {
    use serde_json::Value as Json;
    let kind = match json {
        Json::Null => Kind::NullValue(prost_types::NullValue::NullValue as i32),
        Json::Bool(b) => Kind::BoolValue(b),
        // Every number becomes a double, as EventStoreDB's `GetDouble()`.
        Json::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        Json::String(s) => Kind::StringValue(s),
        Json::Array(items) => {
            let depth = deeper(depth)?;
            let values = items
                .into_iter()
                .map(|item| convert(item, depth))
                .collect::<Result<_, _>>()?;
            Kind::ListValue(ListValue { values })
        }
        Json::Object(fields) => {
            let depth = deeper(depth)?;
            let fields = fields
                .into_iter()
                .map(|(key, value)| Ok((key, convert(value, depth)?)))
                .collect::<Result<_, _>>()?;
            Kind::StructValue(Struct { fields })
        }
    };
    Ok(Value { kind: Some(kind) })
}

fn deeper(depth: usize) -> Result<usize, StateValueError> {
    if depth >= MAX_STATE_DEPTH {
        Err(StateValueError::TooDeep)
    } else {
        Ok(depth + 1)
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use stele_proto::projections::StateResp;

    use super::*;

    fn kind(json: &str) -> Kind {
        state_value(json).unwrap().kind.unwrap()
    }

    #[test]
    fn an_empty_state_is_an_empty_object() {
        assert_eq!(kind(""), Kind::StructValue(Struct::default()));
        assert_eq!(kind("  \n"), Kind::StructValue(Struct::default()));
    }

    #[test]
    fn scalars_map_to_their_kinds_and_numbers_are_doubles() {
        assert_eq!(kind("null"), Kind::NullValue(0));
        assert_eq!(kind("true"), Kind::BoolValue(true));
        assert_eq!(kind("\"2.10\""), Kind::StringValue("2.10".into()));
        assert_eq!(kind("3"), Kind::NumberValue(3.0));
        assert_eq!(kind("-2.5e3"), Kind::NumberValue(-2500.0));
        assert_eq!(
            kind("18446744073709551615"),
            Kind::NumberValue(18_446_744_073_709_551_615_f64)
        );
    }

    /// The Python client's example state: `{count: 2, list: [null, "2.10", true]}`.
    #[test]
    fn objects_and_arrays_nest() {
        let Kind::StructValue(state) = kind(r#"{"count":2,"list":[null,"2.10",true]}"#) else {
            panic!("an object is a struct");
        };
        assert_eq!(state.fields["count"].kind, Some(Kind::NumberValue(2.0)));
        let Some(Kind::ListValue(list)) = &state.fields["list"].kind else {
            panic!("an array is a list");
        };
        let kinds: Vec<_> = list
            .values
            .iter()
            .map(|v| v.kind.clone().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                Kind::NullValue(0),
                Kind::StringValue("2.10".into()),
                Kind::BoolValue(true)
            ]
        );
    }

    #[test]
    fn text_that_is_not_json_is_refused() {
        assert!(matches!(
            state_value("{\"a\":"),
            Err(StateValueError::NotJson(_))
        ));
        assert!(matches!(
            state_value("NaN"),
            Err(StateValueError::NotJson(_))
        ));
    }

    fn nested_objects(levels: usize) -> String {
        format!("{}1{}", "{\"a\":".repeat(levels), "}".repeat(levels))
    }

    #[test]
    fn nesting_is_bounded() {
        assert!(state_value(&nested_objects(MAX_STATE_DEPTH)).is_ok());
        assert_eq!(
            state_value(&nested_objects(MAX_STATE_DEPTH + 1)),
            Err(StateValueError::TooDeep)
        );
        let arrays = format!(
            "{}{}",
            "[".repeat(MAX_STATE_DEPTH + 1),
            "]".repeat(MAX_STATE_DEPTH + 1)
        );
        assert_eq!(state_value(&arrays), Err(StateValueError::TooDeep));
        // Far deeper than any stack allows is refused too, without a crash.
        let hostile = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(state_value(&hostile).is_err());
    }

    /// The deepest state answered still decodes with prost's recursion limit, as the
    /// clients decode it.
    #[test]
    fn the_deepest_state_decodes() {
        let response = StateResp {
            state: Some(state_value(&nested_objects(MAX_STATE_DEPTH)).unwrap()),
        };
        let bytes = response.encode_to_vec();
        assert_eq!(StateResp::decode(bytes.as_slice()).unwrap(), response);
    }
}
