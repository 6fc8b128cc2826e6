//! The errors of a JavaScript projection, and how a QuickJS failure becomes one.

use rquickjs::{CaughtError, Ctx, Value};

/// The text of the error `emit`, `linkTo` and `linkStreamTo` throw when emitting is not
/// enabled (D25 custom.md).
pub(crate) const EMIT_NOT_ALLOWED: &str =
    "'emit' is not allowed by the projection/configuration/mode";

/// Why a JavaScript projection failed. Each variant holds a one-line description that
/// includes the JavaScript error's name and message, and where it was thrown when known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsError {
    /// The query does not compile, or its definition calls failed (or it defines no source).
    #[error("the projection query is invalid: {0}")]
    Compile(String),
    /// A handler (or `partitionBy`, `$init`, a transform…) threw.
    #[error("the projection handler failed: {0}")]
    Handler(String),
    /// A call ran longer than its budget (`ProjectionExecutionTimeout` for handlers,
    /// `ProjectionCompilationTimeout` for the query). The projection is faulted.
    #[error("the projection timed out: {0}")]
    TimedOut(String),
    /// The runtime's memory limit was reached. The projection is faulted.
    #[error("the projection ran out of memory: {0}")]
    OutOfMemory(String),
    /// The query did something its configuration forbids (`emit` without emit enabled).
    #[error("not allowed: {0}")]
    NotAllowed(String),
}

impl JsError {
    /// Whether the projection can't be used after this error (its runtime may be in the
    /// middle of a runaway call): a timeout or running out of memory.
    pub fn is_fatal(&self) -> bool {
        matches!(self, JsError::TimedOut(_) | JsError::OutOfMemory(_))
    }
}

/// What a failed call threw, as text, and whether it was QuickJS running out of memory.
pub(crate) struct Thrown {
    pub text: String,
    pub out_of_memory: bool,
    pub not_allowed: bool,
}

/// Takes the pending exception of a failed call (if any) and describes it on one line:
/// `Name: message (at location)`.
pub(crate) fn describe<'js>(ctx: &Ctx<'js>, error: rquickjs::Error) -> Thrown {
    match CaughtError::from_error(ctx, error) {
        CaughtError::Error(rquickjs::Error::Allocation) => Thrown {
            text: "allocation failed".to_owned(),
            out_of_memory: true,
            not_allowed: false,
        },
        CaughtError::Error(other) => Thrown {
            text: one_line(&other.to_string()),
            out_of_memory: false,
            not_allowed: false,
        },
        CaughtError::Exception(exception) => {
            let name: Option<String> = exception
                .get::<_, Option<rquickjs::Coerced<String>>>("name")
                .ok()
                .flatten()
                .map(|c| c.0);
            let message = exception.message().unwrap_or_default();
            let out_of_memory =
                message == "out of memory" && name.as_deref() == Some("InternalError");
            let not_allowed = message == EMIT_NOT_ALLOWED;
            let mut text = match name {
                Some(name) if !name.is_empty() => format!("{name}: {message}"),
                _ => message,
            };
            if let Some(location) = exception.stack().as_deref().and_then(first_frame) {
                text.push_str(" (at ");
                text.push_str(location);
                text.push(')');
            }
            Thrown {
                text: one_line(&text),
                out_of_memory,
                not_allowed,
            }
        }
        // QuickJS throws `null` when it is so short of memory that it can't allocate the
        // "out of memory" error itself. A handler's own `throw null` is taken for that too:
        // either way the projection is faulted.
        CaughtError::Value(value) if value.is_null() => Thrown {
            text: "out of memory (no room left for the error; or the query threw null)".to_owned(),
            out_of_memory: true,
            not_allowed: false,
        },
        CaughtError::Value(value) => Thrown {
            text: one_line(&format!("uncaught {}", value_text(&value))),
            out_of_memory: false,
            not_allowed: false,
        },
    }
}

/// The first frame of a QuickJS stack (`    at f (query:3:11)` → `f (query:3:11)`).
fn first_frame(stack: &str) -> Option<&str> {
    stack
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("at "))
}

/// A thrown value that is not an Error: its string form (`throw "x"` → `"x"`).
fn value_text(value: &Value<'_>) -> String {
    if let Some(s) = value.as_string().and_then(|s| s.to_string().ok()) {
        return format!("{s:?}");
    }
    match value.get::<rquickjs::Coerced<String>>() {
        Ok(s) => s.0,
        Err(_) => format!("{} value", value.type_name()),
    }
}

/// Collapses line breaks so a message stays on one line.
fn one_line(text: &str) -> String {
    text.split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
