//! The local store: SQLite in WAL mode.
pub struct LocalStore;
