//! The compiled collection rules, cached per schema snapshot. Compiling a rule and deciding
//! it are the `access` feature's: it hands the cache the compile step
//! ([`RulesCache::get_or_compile`]).

use foldhash::{HashMap, HashMapExt};
use std::sync::{Arc, Mutex, PoisonError};

use domain::{Collection, Schema};
use rules::{CollectionRules, Rule};

/// Compiled rules of the collections of one schema snapshot, built lazily per collection.
///
/// Several nodes: each node compiles for itself, and the cache is keyed by the node's schema
/// snapshot, so it is exactly as current as that snapshot. Today a snapshot changes with the
/// schema changes made through this process; with several nodes, the store's snapshot has to
/// follow schema changes made elsewhere (from the change log), and the cache follows it.
#[derive(Default)]
pub struct RulesCache {
    slot: Mutex<Option<CacheEntry>>,
}

struct CacheEntry {
    schema: Arc<Schema>,
    by_collection: HashMap<String, Arc<CompiledRules>>,
    /// Whether a rule of the snapshot mentions `@request.body` ([`RulesCache::reads_body`]),
    /// once asked.
    reads_body: Option<bool>,
}

/// Everything compiled for one collection.
pub struct CompiledRules {
    /// The API rules (list, view, create, update, delete, and auth/manage).
    pub api: Arc<CollectionRules>,
    pub sign_in: Arc<SignInRules>,
}

/// The rules a sign-in checks against the signing-in record, as stored: `None` when the
/// stored text does not compile, which each check resolves to its own safe side (unlike the
/// API rules, which then match nothing).
#[derive(Debug, Clone, Default)]
pub struct SignInRules {
    /// The `authRule` (`null`: superusers only, `""`: everyone).
    pub auth: Option<Rule>,
    /// The MFA rule (empty: everyone). Whether MFA is on is the collection's option.
    pub mfa: Option<Rule>,
}

impl RulesCache {
    /// The compiled rules of `collection` (a collection of `schema`), made by `compile` when
    /// not cached yet. A snapshot other than the cached one replaces the cache: schema changes
    /// always produce a new snapshot.
    pub fn get_or_compile(
        &self,
        schema: &Arc<Schema>,
        collection: &Arc<Collection>,
        compile: impl FnOnce() -> CompiledRules,
    ) -> Arc<CompiledRules> {
        {
            let slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(entry) = slot.as_ref()
                && Arc::ptr_eq(&entry.schema, schema)
                && let Some(found) = entry.by_collection.get(&collection.id)
            {
                return Arc::clone(found);
            }
        }
        // Compiling outside the lock keeps other requests moving; two requests may compile
        // the same rules once each, which is harmless.
        let compiled = Arc::new(compile());
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.as_mut() {
            Some(entry) if Arc::ptr_eq(&entry.schema, schema) => {
                entry
                    .by_collection
                    .insert(collection.id.clone(), Arc::clone(&compiled));
            }
            _ => {
                *slot = Some(CacheEntry {
                    schema: Arc::clone(schema),
                    by_collection: [(collection.id.clone(), Arc::clone(&compiled))]
                        .into_iter()
                        .collect(),
                    reads_body: None,
                });
            }
        }
        compiled
    }

    /// Whether any rule of any collection of `schema` may read `@request.body`: its text
    /// mentions it. A write builds `@request.body` (the body with its values cast, a copy of
    /// every submitted field) only then, or when an `onRecordEnrich` handler applies; any rule
    /// a write's answer checks (the view rule, the rules of expanded collections) is one of
    /// these. Computed once per snapshot, kept with its compiled rules.
    pub fn reads_body(&self, schema: &Arc<Schema>) -> bool {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = match slot.as_mut() {
            Some(entry) if Arc::ptr_eq(&entry.schema, schema) => entry,
            _ => slot.insert(CacheEntry {
                schema: Arc::clone(schema),
                by_collection: HashMap::new(),
                reads_body: None,
            }),
        };
        *entry
            .reads_body
            .get_or_insert_with(|| schema_reads_body(schema))
    }
}

/// Whether any rule of any collection of `schema` mentions `@request.body`.
fn schema_reads_body(schema: &Schema) -> bool {
    schema.all().iter().any(|collection| {
        let auth = collection.auth.as_ref();
        [
            &collection.list_rule,
            &collection.view_rule,
            &collection.create_rule,
            &collection.update_rule,
            &collection.delete_rule,
        ]
        .into_iter()
        .chain(auth.map(|a| &a.auth_rule))
        .chain(auth.map(|a| &a.manage_rule))
        .any(|rule| {
            rule.as_deref()
                .is_some_and(|text| text.contains("@request.body"))
        })
    })
}
