//! The route's path parameters, as PocketBase's router reads them: percent-decoded, and a
//! value that does not decode to UTF-8 (`%FF`) is still a value, one that names nothing.
//!
//! axum's own `Path` refuses such a request with a plain-text 400 before the handler runs;
//! PocketBase (observed on 0.40.6) answers as for any unknown name: `GET
//! /api/collections/users/records/%FF` is its 404 in the JSON error shape, `GET
//! /api/collections/%FF` without a token its 401. Here the bytes that are not UTF-8 become
//! U+FFFD, which no collection name, record id or file name holds.

use std::convert::Infallible;

use axum::extract::{FromRequestParts, MatchedPath, RawPathParams};
use axum::http::request::Parts;

/// The values of the matched route's parameters, in the route's order, as `T`: a `String`
/// for one, a tuple of `String`s for two or three. A parameter the route does not have is
/// the empty string.
pub struct Path<T>(pub T);

/// What a route's parameters can be read as.
pub trait FromParams: Sized {
    fn from_params(values: Vec<String>) -> Self;
}

impl FromParams for String {
    fn from_params(values: Vec<String>) -> Self {
        values.into_iter().next().unwrap_or_default()
    }
}

impl FromParams for (String, String) {
    fn from_params(values: Vec<String>) -> Self {
        let mut values = values.into_iter();
        (
            values.next().unwrap_or_default(),
            values.next().unwrap_or_default(),
        )
    }
}

impl FromParams for (String, String, String) {
    fn from_params(values: Vec<String>) -> Self {
        let mut values = values.into_iter();
        (
            values.next().unwrap_or_default(),
            values.next().unwrap_or_default(),
            values.next().unwrap_or_default(),
        )
    }
}

impl<T: FromParams, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // The usual case: axum decoded every value already.
        if let Ok(params) = RawPathParams::from_request_parts(parts, state).await {
            let values = params.iter().map(|(_, value)| value.to_owned()).collect();
            return Ok(Path(T::from_params(values)));
        }
        // A value that is not UTF-8 (axum keeps none of them then): read them again from the
        // raw path, by the route's template.
        let values = parts
            .extensions
            .get::<MatchedPath>()
            .map(|template| params_from_raw(template.as_str(), parts.uri.path()))
            .unwrap_or_default();
        Ok(Path(T::from_params(values)))
    }
}

/// The parameters of `template` (`{name}` a segment, `{*name}` the rest) in `path`, decoded,
/// bytes that are not UTF-8 replaced.
fn params_from_raw(template: &str, path: &str) -> Vec<String> {
    let mut values = Vec::new();
    let mut segments = path.split('/');
    let mut rest = path;
    for part in template.split('/') {
        if part.starts_with("{*") {
            // What is left of the path, from this segment on.
            values.push(decode_lossy(rest));
            break;
        }
        let Some(segment) = segments.next() else {
            break;
        };
        rest = rest
            .get(segment.len()..)
            .and_then(|r| r.strip_prefix('/'))
            .unwrap_or("");
        if part.starts_with('{') {
            values.push(decode_lossy(segment));
        }
    }
    values
}

/// [`percent_decode`], bytes that are not UTF-8 replaced by U+FFFD.
fn decode_lossy(text: &str) -> String {
    String::from_utf8_lossy(&percent_decode(text)).into_owned()
}

/// `%XX` decoding of a path or a part of it; a `%` not followed by two hex digits stays as it
/// is.
pub(crate) fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).and_then(|b| char::from(*b).to_digit(16)),
                bytes.get(i + 2).and_then(|b| char::from(*b).to_digit(16)),
            )
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_values_are_read_by_the_template() {
        let template = "/api/collections/{collection}/records/{id}";
        assert_eq!(
            params_from_raw(template, "/api/collections/us%65rs/records/%FF"),
            vec!["users".to_owned(), "\u{FFFD}".to_owned()]
        );
        assert_eq!(
            params_from_raw(
                "/api/files/{collection}/{record}/{filename}",
                "/api/files/a/%FFb/c%2Fd"
            ),
            vec!["a".to_owned(), "\u{FFFD}b".to_owned(), "c/d".to_owned()]
        );
        assert_eq!(
            params_from_raw("/_/{*path}", "/_/assets/%FF/x.js"),
            vec!["assets/\u{FFFD}/x.js".to_owned()]
        );
        assert_eq!(
            params_from_raw("/api/health", "/api/health"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn decoding_keeps_what_is_not_an_escape() {
        assert_eq!(decode_lossy("a%20b"), "a b");
        assert_eq!(decode_lossy("100%"), "100%");
        assert_eq!(decode_lossy("%G1%4"), "%G1%4");
        assert_eq!(decode_lossy("%C3%A9"), "é");
        assert_eq!(decode_lossy("%C3"), "\u{FFFD}");
    }

    #[test]
    fn values_fill_their_shape() {
        assert_eq!(String::from_params(vec![]), "");
        assert_eq!(
            <(String, String)>::from_params(vec!["a".into(), "b".into()]),
            ("a".to_owned(), "b".to_owned())
        );
        assert_eq!(
            <(String, String, String)>::from_params(vec!["a".into()]),
            ("a".to_owned(), String::new(), String::new())
        );
    }
}
