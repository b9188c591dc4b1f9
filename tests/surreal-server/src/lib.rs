//! Nothing here: the package exists for its example, `surreal` (SurrealDB's server), which the
//! `ws://` tests start.
