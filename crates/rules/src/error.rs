//! Why a filter or rule was refused. One error type for every stage (lexing, parsing,
//! checking), with the byte span of the offending text and a kind that maps to the API's
//! answer: 403 for `@request`/`@collection` in a non-superuser's filter, 400 for the rest.

use std::fmt;

use crate::ast::Span;

/// What went wrong, coarsely; the API status follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The text is not a well-formed expression (bad token, missing operand, unbalanced
    /// parentheses, whitespace-only input).
    Syntax,
    /// Over 3500 bytes or over 200 comparisons.
    Limit,
    /// A name that resolves to nothing: unknown field, collection or `@` name.
    UnknownField,
    /// A field the caller may not filter by (hidden field, or a relation into a collection
    /// whose list rule is superusers-only).
    HiddenField,
    /// A known name used wrongly: bad modifier, bad function arguments, too many hops.
    Invalid,
    /// A non-superuser's client filter mentions `@request.`.
    ForbiddenRequest,
    /// A non-superuser's client filter mentions `@collection.`.
    ForbiddenCollection,
}

/// A refused filter or rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct Error {
    pub kind: ErrorKind,
    /// A sentence for logs and for rule validation messages (never shown for client filters,
    /// which answer with PocketBase's generic 400).
    pub message: String,
    /// Where in the text, when known.
    pub span: Option<Span>,
}

/// PocketBase's generic 400 message, used for every malformed client filter.
pub const GENERIC_400: &str = "Something went wrong while processing your request.";

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>, span: Option<Span>) -> Self {
        Error {
            kind,
            message: message.into(),
            span,
        }
    }

    pub(crate) fn syntax(message: impl Into<String>, span: Span) -> Self {
        Error::new(ErrorKind::Syntax, message, Some(span))
    }

    /// The HTTP status the API answers with for a client filter.
    pub fn status(&self) -> u16 {
        match self.kind {
            ErrorKind::ForbiddenRequest | ErrorKind::ForbiddenCollection => 403,
            _ => 400,
        }
    }

    /// The `message` of the API error body for a client filter.
    pub fn api_message(&self) -> &'static str {
        match self.kind {
            ErrorKind::ForbiddenRequest => "Only superusers can filter by @request.",
            ErrorKind::ForbiddenCollection => "Only superusers can filter by @collection.",
            _ => GENERIC_400,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.span {
            Some(span) => write!(f, "{} (at {span})", self.message),
            None => f.write_str(&self.message),
        }
    }
}
