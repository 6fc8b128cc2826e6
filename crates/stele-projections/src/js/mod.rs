//! User projections in JavaScript on QuickJS (rquickjs). Being written (a placeholder with
//! the limits' type until the runtime lands).

use std::time::Duration;

/// Budgets of one JavaScript projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub memory_bytes: usize,
    pub execution_timeout: Duration,
    pub compilation_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 * 1024 * 1024,
            execution_timeout: Duration::from_millis(250),
            compilation_timeout: Duration::from_millis(500),
        }
    }
}
