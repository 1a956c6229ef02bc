//! End-to-end tests of the records API over a real SQLite store.
