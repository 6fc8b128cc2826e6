//! The two wire forms of `event_store.client.UUID` (PROTOCOL.md §3) and `uuid::Uuid`, both
//! ways.
//!
//! - Structured: `most_significant_bits` is bytes 0–7 and `least_significant_bits` bytes 8–15
//!   of the RFC 4122 big-endian form, each read as a big-endian `int64` (Java's layout).
//! - String: the canonical lower-case 8-4-4-4-12 text.
//!
//! Input accepts either form, because the Rust client writes structured ids and the Python
//! and Node clients write strings. Output uses the form a read asked for: the Python client
//! drops every event whose `id.string` is empty.

use stele_proto::shared;
use uuid::Uuid;

/// The form ids are written in on a read's answer (`ReadReq.Options.uuid_option`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UuidFormat {
    Structured,
    String,
}

impl UuidFormat {
    pub fn encode(self, id: Uuid) -> shared::Uuid {
        match self {
            UuidFormat::Structured => to_structured(id),
            UuidFormat::String => to_string_form(id),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UuidError {
    #[error("the UUID has no value")]
    Missing,
    #[error("'{0}' is not a valid UUID")]
    BadString(String),
}

/// Reads either wire form.
pub fn from_wire(id: &shared::Uuid) -> Result<Uuid, UuidError> {
    match &id.value {
        Some(shared::uuid::Value::Structured(s)) => Ok(from_halves(
            s.most_significant_bits,
            s.least_significant_bits,
        )),
        Some(shared::uuid::Value::String(text)) => {
            Uuid::parse_str(text).map_err(|_| UuidError::BadString(text.clone()))
        }
        None => Err(UuidError::Missing),
    }
}

/// Reads an optional wire id; an absent one is [`UuidError::Missing`].
pub fn from_wire_opt(id: Option<&shared::Uuid>) -> Result<Uuid, UuidError> {
    id.map_or(Err(UuidError::Missing), from_wire)
}

pub fn to_structured(id: Uuid) -> shared::Uuid {
    let (msb, lsb) = to_halves(id);
    shared::Uuid {
        value: Some(shared::uuid::Value::Structured(shared::uuid::Structured {
            most_significant_bits: msb,
            least_significant_bits: lsb,
        })),
    }
}

pub fn to_string_form(id: Uuid) -> shared::Uuid {
    shared::Uuid {
        value: Some(shared::uuid::Value::String(id.as_hyphenated().to_string())),
    }
}

fn to_halves(id: Uuid) -> (i64, i64) {
    let bytes = id.as_bytes();
    let msb = i64::from_be_bytes(bytes[0..8].try_into().expect("8 bytes"));
    let lsb = i64::from_be_bytes(bytes[8..16].try_into().expect("8 bytes"));
    (msb, lsb)
}

fn from_halves(msb: i64, lsb: i64) -> Uuid {
    let mut bytes = [0u8; 16];
    bytes[0..8].copy_from_slice(&msb.to_be_bytes());
    bytes[8..16].copy_from_slice(&lsb.to_be_bytes());
    Uuid::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "0b7b2a9e-53c6-4f4e-9d1a-8c2f3e4d5a6b";

    #[test]
    fn structured_halves_are_big_endian_byte_ranges() {
        let id = Uuid::parse_str(TEXT).unwrap();
        let wire = to_structured(id);
        let Some(shared::uuid::Value::Structured(s)) = &wire.value else {
            panic!("expected the structured form, got {wire:?}");
        };
        assert_eq!(s.most_significant_bits, 0x0b7b_2a9e_53c6_4f4e);
        assert_eq!(s.least_significant_bits, 0x9d1a_8c2f_3e4d_5a6b_u64 as i64);
        assert!(
            s.least_significant_bits < 0,
            "the high bit makes lsb negative"
        );
        assert_eq!(from_wire(&wire), Ok(id));
    }

    #[test]
    fn string_form_is_lower_case_hyphenated_and_round_trips() {
        let id = Uuid::parse_str(&TEXT.to_uppercase()).unwrap();
        let wire = to_string_form(id);
        assert_eq!(
            wire.value,
            Some(shared::uuid::Value::String(TEXT.to_owned()))
        );
        assert_eq!(from_wire(&wire), Ok(id));
    }

    #[test]
    fn format_chooses_the_form() {
        let id = Uuid::new_v4();
        assert!(matches!(
            UuidFormat::String.encode(id).value,
            Some(shared::uuid::Value::String(_))
        ));
        assert!(matches!(
            UuidFormat::Structured.encode(id).value,
            Some(shared::uuid::Value::Structured(_))
        ));
    }

    #[test]
    fn extreme_halves_round_trip() {
        for (msb, lsb) in [(0, 0), (-1, -1), (i64::MIN, i64::MAX), (1, -2)] {
            let id = from_halves(msb, lsb);
            assert_eq!(to_halves(id), (msb, lsb));
        }
        assert_eq!(from_halves(-1, -1), Uuid::max());
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(
            from_wire(&shared::Uuid {
                value: Some(shared::uuid::Value::String("nope".into()))
            }),
            Err(UuidError::BadString("nope".into()))
        );
        assert_eq!(
            from_wire(&shared::Uuid { value: None }),
            Err(UuidError::Missing)
        );
        assert_eq!(from_wire_opt(None), Err(UuidError::Missing));
    }
}
