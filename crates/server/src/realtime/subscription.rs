//! Subscription strings as PocketBase's SDKs send them: `coll/*`, `coll/<id>`, the bare
//! `coll` alias of `coll/*`, each optionally followed by `?options=<url-encoded JSON>` with
//! `query` (`filter`, `expand`, `fields`, anything for `@request.query.*`) and `headers`.
//! The raw string is kept verbatim: it is the `event:` name of every message it produces.
//! The parsed form ([`Subscription`]) is held by the hub's clients, so it is defined on the
//! ground floor ([`crate::state::hub`]); here is the parsing.

use std::sync::Arc;

use serde_json::Value;

pub(crate) use crate::state::hub::{Subscription, Target};

impl Subscription {
    pub(crate) fn parse(raw: &str) -> Subscription {
        let (topic, query_string) = match raw.split_once('?') {
            Some((topic, rest)) => (topic, rest),
            None => (raw, ""),
        };
        let (collection, target) = match topic.split_once('/') {
            Some((collection, "*")) => (collection, Some(Target::List)),
            Some((collection, id)) if !id.is_empty() && !id.contains('/') => {
                (collection, Some(Target::View(id.to_owned())))
            }
            Some((collection, _)) => (collection, None),
            None => (topic, Some(Target::List)),
        };
        let target = target.filter(|_| !collection.is_empty() && !collection.starts_with('@'));
        let options_text = serde_urlencoded::from_str::<Vec<(String, String)>>(query_string)
            .ok()
            .and_then(|pairs| pairs.into_iter().find(|(key, _)| key == "options"))
            .map(|(_, value)| value)
            .unwrap_or_default();
        let options: Value = serde_json::from_str(&options_text).unwrap_or(Value::Null);
        let query = text_pairs(options.get("query"), |name| name.to_owned());
        // Header names read like `@request.headers.*`: lower case, `-` as `_`.
        let headers = text_pairs(options.get("headers"), |name| {
            name.to_ascii_lowercase().replace('-', "_")
        });
        Subscription {
            raw: Arc::from(raw),
            collection: collection.to_owned(),
            target,
            query,
            headers,
            options_key: options_text,
            since: 0,
        }
    }
}

/// An options object's entries as text (strings as they are, anything else as JSON).
fn text_pairs(value: Option<&Value>, name: impl Fn(&str) -> String) -> Vec<(String, String)> {
    let Some(Value::Object(map)) = value else {
        return Vec::new();
    };
    map.iter()
        .map(|(key, value)| {
            let text = match value {
                Value::String(text) => text.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (name(key), text)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_forms() {
        let all = Subscription::parse("posts/*");
        assert_eq!(all.target, Some(Target::List));
        assert_eq!(all.collection, "posts");
        assert!(all.matches("pbc_1", "posts", "abc"));
        assert!(all.matches("posts", "other", "abc"), "ids match too");
        assert!(!all.matches("pbc_1", "Posts", "abc"), "names match exactly");

        let bare = Subscription::parse("posts");
        assert_eq!(bare.target, Some(Target::List));

        let one = Subscription::parse("posts/abc");
        assert_eq!(one.target, Some(Target::View("abc".into())));
        assert!(one.matches("pbc_1", "posts", "abc"));
        assert!(!one.matches("pbc_1", "posts", "abd"));

        for other in ["@oauth2", "posts/a/b", "/x", "posts/"] {
            let sub = Subscription::parse(other);
            assert!(sub.target.is_none(), "{other}");
            assert!(!sub.matches("posts", "posts", "a"), "{other}");
        }
    }

    #[test]
    fn options_are_decoded_and_raw_is_kept() {
        let raw = "posts/*?options=%7B%22query%22%3A%7B%22fields%22%3A%22id%2Ctitle%22%2C%22n%22%3A5%7D%2C%22headers%22%3A%7B%22X-Token%22%3A%22t%22%7D%7D";
        let sub = Subscription::parse(raw);
        assert_eq!(&*sub.raw, raw);
        assert_eq!(sub.target, Some(Target::List));
        assert_eq!(sub.query_value("fields"), "id,title");
        assert_eq!(sub.query_value("n"), "5");
        assert_eq!(sub.query_value("expand"), "");
        assert_eq!(sub.headers, [("x_token".to_owned(), "t".to_owned())]);

        let broken = Subscription::parse("posts/*?options=%7Bnot json");
        assert_eq!(broken.target, Some(Target::List));
        assert!(broken.query.is_empty());
    }
}
