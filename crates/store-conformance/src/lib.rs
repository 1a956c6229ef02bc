//! One conformance suite for the `Store` port, written once and run against
//! every engine, so that "every feature works on both engines" is a test rather than a hope.
//!
//! Each check is an `async fn(&Engine)` in [`checks`]: it opens a fresh store through the
//! engine's factory, talks to it only through the port (predicates and sorts are compiled by
//! `rules` for the engine's [`Dialect`], so the same test text runs on every engine), and
//! panics with a message when the engine breaks the contract `domain::store` documents.
//!
//! # Plugging an engine in
//!
//! An engine crate adds this crate as a dev-dependency and one integration test:
//!
//! ```text
//! fn engine() -> store_conformance::Engine {
//!     store_conformance::Engine::new("sqlite", Dialect::Sqlite, |options| {
//!         Box::pin(async move { /* open a fresh, empty store with options.query_timeout */ })
//!     })
//! }
//! store_conformance::conformance_tests!(engine());
//! ```
//!
//! The macro expands into one `#[tokio::test]` per check, named after it, so a failure is
//! reported by name. "Fresh and empty" means no collections but the engine's system ones and
//! no records: the change log has never had an entry.
//!
//! # What the checks hold an engine to beyond the port's text
//!
//! A few checks pin down PocketBase behaviour the server relies on but `domain::store` does not
//! spell out; an engine that fails one of these is wrong for the API, not only for the suite:
//! collection names are unique ignoring case; a refused delete, import or field change names
//! the collection (or view) in the way in its `Schema` message; ascending sorts put NULL (an
//! absent JSON key, an unset relation) first, as SQLite does; `=` compares text exactly and
//! `~` ignores ASCII case; a view refuses writes with something other than `Internal`. Raw SQL
//! in the checks (view queries, the console, a few guards and subqueries) is plain SQL that
//! SQLite and PostgreSQL both speak, with lowercase identifiers (the same quoted or not).
//!
//! # Known engine differences
//!
//! Places where an engine's behaviour contradicts the port's documentation, each a
//! [`KnownDifference`]. The check is written to the documented contract; an engine that
//! declares the difference (`Engine::with_known_difference`) is held to its current behaviour
//! instead, so the check still fails when that behaviour changes, fixed or otherwise, and the
//! declaration must then go.
//!
//! - SQLite: none (both it had are fixed).

pub mod checks;
mod support;

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use domain::{Dialect, Store};

/// A boxed, sendable future (the factory's answer).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a check asks of the factory besides a fresh store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenOptions {
    /// The store's query timeout (PocketBase's `--queryTimeout`): how long one read, or one
    /// record write, may take.
    pub query_timeout: Duration,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            query_timeout: Duration::from_secs(30),
        }
    }
}

/// A fresh store, and whatever must live as long as it (a temp dir, a throwaway database).
pub struct Opened {
    pub store: Arc<dyn Store>,
    /// Dropped after the store.
    pub keep_alive: Box<dyn Any + Send + Sync>,
}

type OpenFn = dyn Fn(OpenOptions) -> BoxFuture<'static, Opened> + Send + Sync;

/// An engine under test: its dialect and a factory of fresh, empty stores.
pub struct Engine {
    /// A short name for messages (`sqlite`, `postgres`).
    pub name: &'static str,
    pub dialect: Dialect,
    pub open: Box<OpenFn>,
    /// Where the engine is known to break the port's documentation (see the crate docs).
    pub known_differences: Vec<KnownDifference>,
}

/// A known way an engine breaks the contract `domain::store` documents. The checks hold an
/// engine that declares one to what it does today; every other engine to the documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KnownDifference {
    /// `wait_for_changes` called after `close` waits forever instead of failing ("Fails once
    /// the store is closed"). Check: `waiting_for_changes_fails_once_the_store_is_closed`.
    WaitForChangesOutlivesClose,
}

impl Engine {
    pub fn new(
        name: &'static str,
        dialect: Dialect,
        open: impl Fn(OpenOptions) -> BoxFuture<'static, Opened> + Send + Sync + 'static,
    ) -> Engine {
        Engine {
            name,
            dialect,
            open: Box::new(open),
            known_differences: Vec::new(),
        }
    }

    /// Declares a known difference (see the crate docs).
    pub fn with_known_difference(mut self, difference: KnownDifference) -> Engine {
        self.known_differences.push(difference);
        self
    }
}

/// Expands into one `#[tokio::test]` per check, each calling the check with `$engine` (an
/// expression evaluated once per test, an [`Engine`] or an `Option<Engine>`). The calling crate needs tokio with the `macros` and
/// `rt-multi-thread` features among its dev-dependencies.
#[macro_export]
macro_rules! conformance_tests {
    ($engine:expr) => {
        $crate::__conformance_tests!(
            $engine;
            // collections
            creating_a_collection_publishes_it,
            collection_names_are_unique_ignoring_case,
            a_bad_index_is_refused_and_changes_nothing,
            renamed_fields_keep_their_data,
            dropped_fields_go_and_new_fields_read_as_zero,
            a_renamed_collection_keeps_its_records_and_indexes,
            a_deleted_collection_is_gone,
            a_referenced_collection_cannot_be_deleted,
            a_unique_index_cannot_be_added_over_duplicates,
            import_creates_and_replaces_collections,
            import_with_delete_missing_drops_the_unlisted,
            a_refused_import_changes_nothing,
            import_refuses_to_drop_a_referenced_collection,
            // records
            records_round_trip_through_writes_and_reads,
            a_write_runs_its_operations_in_order,
            a_failed_operation_rolls_back_the_whole_write,
            an_update_fn_error_rolls_back_the_write,
            updates_read_the_current_row_and_keep_the_id,
            missing_records_are_not_found,
            unique_violations_name_the_field,
            composite_unique_violations_name_every_field,
            a_duplicate_id_is_a_unique_violation_of_id,
            auth_emails_are_unique_but_may_be_empty,
            // relations
            relation_targets_must_exist,
            deletes_cascade_to_cascading_references,
            a_required_reference_blocks_the_delete,
            deletes_clear_optional_references,
            cascade_cycles_terminate,
            deleting_an_auth_record_takes_its_bookkeeping_rows,
            truncate_deletes_every_record_with_cascades,
            // lists and lookups
            filters_from_the_rules_language_select_rows,
            like_filters_ignore_case,
            filters_are_anded,
            a_mapped_list_sees_the_same_page,
            sorts_order_by_several_terms,
            json_values_compare_and_sort_across_types,
            pages_split_the_rows_and_totals_count_every_match,
            get_record_applies_filters,
            find_by_field_matches_exactly,
            record_satisfies_answers_for_stored_rows,
            matches_unsaved_checks_a_row_that_is_not_stored,
            // guards
            a_failing_create_guard_rolls_back,
            an_update_guard_hides_the_row,
            a_delete_guard_hides_the_row,
            // values
            every_field_kind_round_trips,
            zero_values_come_back_canonical,
            json_values_keep_their_json_types,
            numbers_round_trip_exactly,
            text_keeps_every_character,
            dates_compare_in_filters,
            hidden_and_password_fields_are_read_but_hashes_never_logged,
            // views
            view_fields_are_inferred_from_the_query,
            views_list_and_get_like_tables,
            views_refuse_writes,
            bad_view_queries_are_schema_errors,
            sample_view_returns_fields_and_at_most_limit_rows,
            a_change_that_would_break_a_view_is_refused,
            // change log
            a_fresh_store_has_an_empty_change_log,
            writes_append_entries_in_commit_order,
            a_rolled_back_write_appends_nothing,
            changes_are_read_from_a_cursor,
            a_read_of_the_change_log_is_cut_short_by_snapshot_bytes,
            cascades_are_logged_with_their_write,
            the_change_log_keeps_no_secrets,
            wait_for_changes_wakes_after_a_commit,
            pruning_keeps_the_newest_and_stops_at_up_to,
            waiting_for_changes_fails_once_the_store_is_closed,
            // concurrency
            concurrent_updates_lose_nothing,
            concurrent_duplicate_creates_admit_one,
            a_tailing_reader_misses_no_entry_under_concurrent_writes,
            // time limits
            a_slow_list_times_out,
            filters_not_decided_in_time_do_not_hold,
            writes_past_their_deadline_roll_back,
            // SQL console
            sql_console_statements_are_all_or_nothing,
            // params, migrations and transactions
            params_round_trip,
            a_transaction_is_invisible_until_commit,
            a_rolled_back_transaction_leaves_nothing,
            a_savepoint_rollback_undoes_only_its_work,
            a_transaction_past_its_deadline_rolls_back,
            a_dropped_transaction_rolls_back,
            text_params_read_back_as_strings,
            migrations_are_recorded_and_forgotten,
            claims_admit_one_caller_per_slot,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($engine:expr; $($check:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread")]
            async fn $check() {
                // An engine that is not available here (no server to test against) has
                // already said so; its checks pass vacuously.
                let Some(engine) = $crate::IntoEngine::into_engine($engine) else {
                    return;
                };
                $crate::bounded(stringify!($check), $crate::checks::$check(&engine)).await;
            }
        )*
    };
}

/// What `conformance_tests!` accepts: an engine, or `None` when the engine cannot run here
/// (the factory that returns `None` prints why).
pub trait IntoEngine {
    fn into_engine(self) -> Option<Engine>;
}

impl IntoEngine for Engine {
    fn into_engine(self) -> Option<Engine> {
        Some(self)
    }
}

impl IntoEngine for Option<Engine> {
    fn into_engine(self) -> Option<Engine> {
        self
    }
}

/// How long one check may take before it fails as hung (an engine that never answers must
/// fail by name, not stall the run).
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs one check within [`CHECK_TIMEOUT`] (used by `conformance_tests!`).
#[doc(hidden)]
pub async fn bounded(name: &str, check: impl Future<Output = ()>) {
    if tokio::time::timeout(CHECK_TIMEOUT, check).await.is_err() {
        panic!("{name} did not finish within {CHECK_TIMEOUT:?}: the engine hung");
    }
}

#[cfg(test)]
mod tests;
