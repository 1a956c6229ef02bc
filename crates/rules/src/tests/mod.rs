//! Tests of the whole pipeline: compile → SQL (run on an in-memory SQLite built like the
//! store builds tables) and compile → in-memory evaluation.

mod support;

mod api;
mod emit;
mod oracle;
mod prop;
mod prop_pg;
mod rules;
mod security;
