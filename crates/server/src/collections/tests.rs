//! HTTP tests of the collections API over a real SQLite store.
