//! What the hook files registered, as the loader runtime recorded it: handler sources and
//! where each is used. The server reads it to route requests and to know, cheaply, whether
//! an event has any handler at all (most have none, and those must cost nothing).

use foldhash::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One handler's source text and where it came from (for error positions).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HandlerSource {
    pub source: String,
    pub file: String,
    /// 1-based line of the source's start in `file` (1 when not found there).
    pub line: u32,
}

/// One link of a chain: a script handler (by index into [`Registry::handlers`]) or one of
/// the engine's own middlewares (`$apis.requireAuth()` and friends).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Link {
    Handler { h: usize },
    Native { native: String, args: Vec<Value> },
}

/// A middleware with its priority (lower runs first) and optional id (the same id replaces).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Middleware {
    pub link: Link,
    pub priority: i64,
    #[serde(default)]
    pub id: Option<String>,
}

/// A `routerAdd` route.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Route {
    pub method: String,
    pub path: String,
    pub handler: Link,
    pub middlewares: Vec<Middleware>,
}

/// An `onXxx` handler with its tags (collection names or ids; none means every one).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hook {
    pub handler: usize,
    pub tags: Vec<String>,
}

/// A `cronAdd` job registered at load.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cron {
    pub id: String,
    pub expr: String,
    pub handler: usize,
}

/// Everything the hook files registered.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Registry {
    pub handlers: Vec<HandlerSource>,
    pub routes: Vec<Route>,
    #[serde(rename = "middlewares")]
    pub global_middlewares: Vec<Middleware>,
    pub hooks: HashMap<String, Vec<Hook>>,
    pub crons: Vec<Cron>,
}

impl Registry {
    /// Whether nothing at all was registered.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
            && self.global_middlewares.is_empty()
            && self.hooks.is_empty()
            && self.crons.is_empty()
    }

    /// Whether `hook` has any handler (for any tag).
    pub fn has(&self, hook: &str) -> bool {
        self.hooks.get(hook).is_some_and(|list| !list.is_empty())
    }

    /// The handlers of `hook` that apply to a collection known by `name` and `id`, in
    /// registration order. A handler with no tags applies to every collection.
    pub fn handlers_for(&self, hook: &str, name: &str, id: &str) -> Vec<usize> {
        let Some(list) = self.hooks.get(hook) else {
            return Vec::new();
        };
        list.iter()
            .filter(|one| one.tags.is_empty() || one.tags.iter().any(|t| t == name || t == id))
            .map(|one| one.handler)
            .collect()
    }

    /// Whether `hook` has a handler for this collection.
    pub fn applies(&self, hook: &str, name: &str, id: &str) -> bool {
        self.hooks.get(hook).is_some_and(|list| {
            list.iter()
                .any(|one| one.tags.is_empty() || one.tags.iter().any(|t| t == name || t == id))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_match_name_or_id_and_untagged_match_all() {
        let mut registry = Registry::default();
        registry.hooks.insert(
            "onRecordCreate".into(),
            vec![
                Hook {
                    handler: 0,
                    tags: vec!["posts".into()],
                },
                Hook {
                    handler: 1,
                    tags: vec![],
                },
                Hook {
                    handler: 2,
                    tags: vec!["pbc_9".into()],
                },
            ],
        );
        assert_eq!(
            registry.handlers_for("onRecordCreate", "posts", "pbc_1"),
            vec![0, 1]
        );
        assert_eq!(
            registry.handlers_for("onRecordCreate", "other", "pbc_9"),
            vec![1, 2]
        );
        assert!(registry.applies("onRecordCreate", "x", "y"));
        assert!(!registry.has("onRecordUpdate"));
        assert!(
            registry
                .handlers_for("onRecordUpdate", "posts", "p")
                .is_empty()
        );
    }
}
