//! The compiled collection rules, cached per schema snapshot. Compiling a rule and deciding
//! it are the `access` feature's: it hands the cache the compile step
//! ([`RulesCache::get_or_compile`]).

use std::collections::HashMap;
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
                    by_collection: HashMap::from([(collection.id.clone(), Arc::clone(&compiled))]),
                });
            }
        }
        compiled
    }
}
