//! The route's path parameters, as PocketBase's router reads them: percent-decoded, and a
//! value that does not decode to UTF-8 (`%FF`) is still a value, one that names nothing.
//!
//! axum's own `Path` refuses such a request with a plain-text 400 before the handler runs;
//! PocketBase (observed on 0.40.6) answers as for any unknown name: `GET
//! /api/collections/users/records/%FF` is its 404 in the JSON error shape, `GET
//! /api/collections/%FF` without a token its 401. Here the bytes that are not UTF-8 become
//! U+FFFD, which no collection name, record id or file name holds.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::routing::RouteParams;

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

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Decoded by the router when it matched the route, and taken rather than copied: a
        // handler reads its parameters once, through one `Path`.
        let values = parts
            .extensions
            .remove::<RouteParams>()
            .map(|params| params.0)
            .unwrap_or_default();
        Ok(Path(T::from_params(values)))
    }
}

/// [`percent_decode`], bytes that are not UTF-8 replaced by U+FFFD.
pub(crate) fn decode_lossy(text: &str) -> String {
    match String::from_utf8(percent_decode(text)) {
        Ok(text) => text,
        Err(error) => String::from_utf8_lossy(error.as_bytes()).into_owned(),
    }
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
