//! What a request brings to a rule: the caller, the HTTP method, headers, query, submitted
//! body and the clock. Built once per request by the handler (or once per subscriber by the
//! realtime hub) and passed to every emission or evaluation of compiled rules.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use domain::AuthContext;
use serde_json::{Map, Value};

/// `@request.context` values PocketBase uses.
pub mod contexts {
    pub const DEFAULT: &str = "default";
    pub const OAUTH2: &str = "oauth2";
    pub const OTP: &str = "otp";
    pub const PASSWORD: &str = "password";
    pub const REALTIME: &str = "realtime";
    pub const PROTECTED_FILE: &str = "protectedFile";
    pub const BATCH: &str = "batch";
    pub const EXPAND: &str = "expand";
}

/// The request-side values a rule may read (`@request.*` and the datetime macros).
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// `@request.auth.*`.
    pub auth: AuthContext,
    /// `@request.method` (`GET`, `POST`, …).
    pub method: String,
    /// `@request.context` (see [`contexts`]).
    pub context: String,
    /// `@request.headers.*`: names lowercased with `-` turned into `_`, first value only.
    pub headers: Headers,
    /// `@request.query.*`: first value of each parameter.
    pub query: BTreeMap<String, String>,
    /// `@request.body.*`: the submitted fields after modifier resolution (`views+` already
    /// applied), canonical values as a record holds them. `None` on requests without a body.
    pub body: Option<Map<String, Value>>,
    /// The instant `@now` and the other macros are computed from.
    pub now: DateTime<Utc>,
}

impl RequestContext {
    /// A `GET` in the `default` context at the current time, without headers, query or body.
    pub fn new(auth: AuthContext) -> Self {
        RequestContext {
            auth,
            method: "GET".into(),
            context: contexts::DEFAULT.into(),
            headers: Headers::default(),
            query: BTreeMap::new(),
            body: None,
            now: Utc::now(),
        }
    }

    pub fn with_method(mut self, method: &str) -> Self {
        self.method = method.to_ascii_uppercase();
        self
    }

    pub fn with_context(mut self, context: &str) -> Self {
        self.context = context.to_owned();
        self
    }

    /// Adds a header; the first value of a name wins, as in PocketBase.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// Takes the headers from `source`, read only when something asks for one (a rule reading
    /// `@request.headers.*`, a hook's request info): most requests are never asked, and
    /// copying and renaming every header was some 4,000 instructions a request.
    pub fn with_header_source(mut self, source: Arc<dyn HeaderSource>) -> Self {
        self.headers = Headers {
            source: Some(source),
            map: OnceLock::new(),
        };
        self
    }

    /// Adds a query parameter; the first value of a name wins.
    pub fn with_query(mut self, name: &str, value: &str) -> Self {
        self.query
            .entry(name.to_owned())
            .or_insert_with(|| value.to_owned());
        self
    }

    pub fn with_body(mut self, body: Map<String, Value>) -> Self {
        self.body = Some(body);
        self
    }

    pub fn at(mut self, now: DateTime<Utc>) -> Self {
        self.now = now;
        self
    }
}

/// Where a request's headers come from: its name and value pairs, in order (values that are
/// not text are left out).
pub trait HeaderSource: Send + Sync {
    fn for_each_pair(&self, each: &mut dyn FnMut(&str, &str));
}

/// A request's headers as rules read them, made from their source on first use.
#[derive(Clone, Default)]
pub struct Headers {
    source: Option<Arc<dyn HeaderSource>>,
    map: OnceLock<BTreeMap<String, String>>,
}

impl Headers {
    /// Every header: names lowercased with `-` turned into `_`, the first value of each.
    pub fn map(&self) -> &BTreeMap<String, String> {
        self.map.get_or_init(|| {
            let mut map = BTreeMap::new();
            if let Some(source) = &self.source {
                source.for_each_pair(&mut |name, value| {
                    map.entry(normalize_header_name(name))
                        .or_insert_with(|| value.to_owned());
                });
            }
            map
        })
    }

    /// The header `name` (already normalized).
    pub fn get(&self, name: &str) -> Option<&String> {
        self.map().get(name)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.map().contains_key(name)
    }

    /// Adds a header after the source's; the first value of a name wins.
    fn insert(&mut self, name: &str, value: &str) {
        self.map();
        if let Some(map) = self.map.get_mut() {
            map.entry(normalize_header_name(name))
                .or_insert_with(|| value.to_owned());
        }
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.map().fmt(f)
    }
}

/// `X-Forwarded-For` → `x_forwarded_for`.
pub fn normalize_header_name(name: &str) -> String {
    name.to_ascii_lowercase().replace('-', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_query_keep_first_value() {
        let ctx = RequestContext::new(AuthContext::Guest)
            .with_header("X-Foo-Bar", "1")
            .with_header("x-foo-bar", "2")
            .with_query("q", "a")
            .with_query("q", "b")
            .with_method("post");
        assert_eq!(ctx.headers.get("x_foo_bar").map(String::as_str), Some("1"));

        struct Pairs;
        impl HeaderSource for Pairs {
            fn for_each_pair(&self, each: &mut dyn FnMut(&str, &str)) {
                each("X-Foo-Bar", "1");
                each("x-foo-bar", "2");
                each("Accept", "*/*");
            }
        }
        let lazy = RequestContext::new(AuthContext::Guest)
            .with_header_source(Arc::new(Pairs))
            .with_header("accept", "later");
        assert_eq!(lazy.headers.get("x_foo_bar").map(String::as_str), Some("1"));
        assert_eq!(lazy.headers.get("accept").map(String::as_str), Some("*/*"));
        assert_eq!(lazy.headers.map().len(), 2);
        assert_eq!(ctx.query.get("q").map(String::as_str), Some("a"));
        assert_eq!(ctx.method, "POST");
        assert_eq!(ctx.context, "default");
    }
}
