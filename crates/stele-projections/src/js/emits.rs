//! Reading what a handler emitted: the prelude returns `0` when nothing was emitted, or an
//! array of `[kind, stream, a, b, metadata]` entries (kind 0 `emit`, 1 `linkTo`,
//! 2 `linkStreamTo`), bodies and metadata already JSON text.

use rquickjs::{Array, Value};

use crate::query::Emitted;

/// What a handler call returned: the prelude's `-1` (no handler), `0` (nothing emitted) or
/// an array of emits.
pub(crate) fn read_outcome(value: Value<'_>) -> rquickjs::Result<Option<Vec<Emitted>>> {
    if value.as_int() == Some(-1) {
        return Ok(None);
    }
    read_emits(value).map(Some)
}

/// The emits of a call (`0` or an array).
pub(crate) fn read_emits(value: Value<'_>) -> rquickjs::Result<Vec<Emitted>> {
    let Some(array) = value.into_array() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(array.len());
    for entry in array.iter::<Array>() {
        out.push(read_entry(&entry?)?);
    }
    Ok(out)
}

fn read_entry(entry: &Array<'_>) -> rquickjs::Result<Emitted> {
    let kind: i32 = entry.get(0)?;
    let stream: String = entry.get(1)?;
    let metadata: Option<String> = entry.get(4)?;
    Ok(match kind {
        0 => Emitted::Event {
            stream,
            event_type: entry.get(2)?,
            data: entry.get(3)?,
            metadata,
        },
        1 => {
            let revision: f64 = entry.get(3)?;
            Emitted::Link {
                stream,
                target_stream: entry.get(2)?,
                // The prelude checked it is a non-negative integer.
                target_revision: revision as u64,
                metadata,
            }
        }
        _ => Emitted::StreamLink {
            stream,
            linked_stream: entry.get(2)?,
            metadata,
        },
    })
}
