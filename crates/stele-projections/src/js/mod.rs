//! User projections in JavaScript on QuickJS (rquickjs). Being written.
