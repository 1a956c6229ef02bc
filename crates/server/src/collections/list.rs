//! Listing collections: PocketBase's list parameters (`page`, `perPage`, `skipTotal`, `sort`,
//! `filter`) over the in-memory schema snapshot. Collections are few and already in memory,
//! so sorting and filtering happen here, on the six attributes PocketBase allows (`id`,
//! `created`, `updated`, `name`, `system`, `type`), with a small evaluator for the subset of
//! the filter language those attributes need.

use std::cmp::Ordering;
use std::sync::Arc;

use domain::Collection;

use crate::error::{ApiError, ApiResult};

/// Longest accepted filter, as PocketBase.
const MAX_FILTER_LEN: usize = 3500;
/// Most sort terms, as PocketBase.
const MAX_SORT_TERMS: usize = 8;
const DEFAULT_PER_PAGE: i64 = 30;
const MAX_PER_PAGE: i64 = 1000;

/// The parsed list parameters.
#[derive(Debug)]
pub struct ListParams {
    pub page: u64,
    pub per_page: u64,
    pub skip_total: bool,
    sort: Vec<SortKey>,
    filter: Option<Expr>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum SortKey {
    Attribute(Attribute, bool),
    Random,
    /// Storage order, ascending or (`-@rowid`) descending.
    Rowid(bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attribute {
    Id,
    Created,
    Updated,
    Name,
    System,
    Type,
}

impl Attribute {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "id" => Attribute::Id,
            "created" => Attribute::Created,
            "updated" => Attribute::Updated,
            "name" => Attribute::Name,
            "system" => Attribute::System,
            "type" => Attribute::Type,
            _ => return None,
        })
    }

    fn value(self, collection: &Collection) -> Scalar {
        match self {
            Attribute::Id => Scalar::Text(collection.id.clone()),
            Attribute::Created => Scalar::Text(collection.created.clone()),
            Attribute::Updated => Scalar::Text(collection.updated.clone()),
            Attribute::Name => Scalar::Text(collection.name.clone()),
            Attribute::System => Scalar::Number(if collection.system { 1.0 } else { 0.0 }),
            Attribute::Type => Scalar::Text(collection.kind.as_str().to_owned()),
        }
    }
}

impl ListParams {
    /// Reads the raw query string; anything malformed is PocketBase's generic 400.
    pub fn parse(query: Option<&str>) -> ApiResult<Self> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(query.unwrap_or("")).map_err(|_| ApiError::bad_request())?;
        // Only the first occurrence of a parameter counts.
        let first = |key: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.trim().to_owned())
        };
        let integer = |key: &str, default: i64| -> ApiResult<i64> {
            match first(key) {
                None => Ok(default),
                Some(text) if text.is_empty() => Ok(default),
                Some(text) => text.parse::<i64>().map_err(|_| ApiError::bad_request()),
            }
        };
        let page = integer("page", 1)?.max(1) as u64;
        let per_page = match integer("perPage", DEFAULT_PER_PAGE)? {
            n if n <= 0 => DEFAULT_PER_PAGE,
            n => n.min(MAX_PER_PAGE),
        } as u64;
        let skip_total = match first("skipTotal").as_deref() {
            None | Some("") => false,
            Some("1" | "t" | "T" | "TRUE" | "true" | "True") => true,
            Some("0" | "f" | "F" | "FALSE" | "false" | "False") => false,
            Some(_) => return Err(ApiError::bad_request()),
        };
        let sort = match first("sort") {
            Some(text) if !text.is_empty() => parse_sort(&text)?,
            _ => Vec::new(),
        };
        let filter = match first("filter") {
            Some(text) if !text.is_empty() => {
                if text.chars().count() > MAX_FILTER_LEN {
                    return Err(ApiError::bad_request());
                }
                Some(parse_filter(&text).ok_or_else(ApiError::bad_request)?)
            }
            _ => None,
        };
        Ok(ListParams {
            page,
            per_page,
            skip_total,
            sort,
            filter,
        })
    }

    /// Filters and sorts `all` (given in storage order).
    pub fn apply(&self, all: &[Arc<Collection>]) -> Vec<Arc<Collection>> {
        let mut items: Vec<(usize, Arc<Collection>)> = all
            .iter()
            .enumerate()
            .filter(|(_, c)| self.filter.as_ref().is_none_or(|f| f.matches(c)))
            .map(|(i, c)| (i, c.clone()))
            .collect();
        if self.sort.contains(&SortKey::Random) {
            use rand::seq::SliceRandom;
            items.shuffle(&mut rand::rng());
        }
        items.sort_by(|(ia, a), (ib, b)| {
            for key in &self.sort {
                let order = match key {
                    SortKey::Attribute(attribute, descending) => {
                        let order = attribute.value(a).compare(&attribute.value(b));
                        if *descending { order.reverse() } else { order }
                    }
                    SortKey::Rowid(descending) => {
                        let order = ia.cmp(ib);
                        if *descending { order.reverse() } else { order }
                    }
                    SortKey::Random => Ordering::Equal,
                };
                if order != Ordering::Equal {
                    return order;
                }
            }
            Ordering::Equal
        });
        items.into_iter().map(|(_, c)| c).collect()
    }
}

fn parse_sort(text: &str) -> ApiResult<Vec<SortKey>> {
    let terms: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    if terms.len() > MAX_SORT_TERMS {
        return Err(ApiError::bad_request());
    }
    terms
        .into_iter()
        .map(|term| {
            let (descending, name) = match term.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, term.strip_prefix('+').unwrap_or(term)),
            };
            match name {
                "@random" => Ok(SortKey::Random),
                "@rowid" => Ok(SortKey::Rowid(descending)),
                _ => Attribute::parse(name)
                    .map(|a| SortKey::Attribute(a, descending))
                    .ok_or_else(ApiError::bad_request),
            }
        })
        .collect()
}

/// A value as SQLite would compare it: booleans are numbers.
#[derive(Debug, Clone, PartialEq)]
enum Scalar {
    Text(String),
    Number(f64),
    Null,
}

impl Scalar {
    /// SQLite's cross-type order: NULL < numbers < text.
    fn compare(&self, other: &Scalar) -> Ordering {
        match (self, other) {
            (Scalar::Null, Scalar::Null) => Ordering::Equal,
            (Scalar::Null, _) => Ordering::Less,
            (_, Scalar::Null) => Ordering::Greater,
            (Scalar::Number(a), Scalar::Number(b)) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
            (Scalar::Number(_), Scalar::Text(_)) => Ordering::Less,
            (Scalar::Text(_), Scalar::Number(_)) => Ordering::Greater,
            (Scalar::Text(a), Scalar::Text(b)) => a.cmp(b),
        }
    }

    /// `=` as PocketBase means it: `null` also matches the empty text and zero values.
    fn equals(&self, other: &Scalar) -> bool {
        match (self, other) {
            (Scalar::Null, Scalar::Null) => true,
            (Scalar::Null, v) | (v, Scalar::Null) => {
                matches!(v, Scalar::Text(t) if t.is_empty())
            }
            (a, b) => a.compare(b) == Ordering::Equal,
        }
    }

    fn as_text(&self) -> String {
        match self {
            Scalar::Text(t) => t.clone(),
            Scalar::Number(n) => domain::record::number_to_json(*n).to_string(),
            Scalar::Null => String::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    NotEq,
    Gt,
    Ge,
    Lt,
    Le,
    Like,
    NotLike,
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Attribute(Attribute),
    Literal(Scalar),
}

impl Operand {
    fn value(&self, collection: &Collection) -> Scalar {
        match self {
            Operand::Attribute(a) => a.value(collection),
            Operand::Literal(v) => v.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Compare(Operand, Op, Operand),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

impl Expr {
    fn matches(&self, collection: &Collection) -> bool {
        match self {
            Expr::And(a, b) => a.matches(collection) && b.matches(collection),
            Expr::Or(a, b) => a.matches(collection) || b.matches(collection),
            Expr::Compare(left, op, right) => {
                let (l, r) = (left.value(collection), right.value(collection));
                match op {
                    Op::Eq => l.equals(&r),
                    Op::NotEq => !l.equals(&r),
                    Op::Gt => l.compare(&r) == Ordering::Greater,
                    Op::Ge => l.compare(&r) != Ordering::Less,
                    Op::Lt => l.compare(&r) == Ordering::Less,
                    Op::Le => l.compare(&r) != Ordering::Greater,
                    Op::Like => like(&l.as_text(), &like_pattern(&r.as_text())),
                    Op::NotLike => !like(&l.as_text(), &like_pattern(&r.as_text())),
                }
            }
        }
    }
}

/// PocketBase wraps a `~` operand in `%` unless it already holds a wildcard.
fn like_pattern(text: &str) -> String {
    if text.contains('%') {
        text.to_owned()
    } else {
        format!("%{text}%")
    }
}

/// SQLite's LIKE without an escape: `%` any run, `_` one character, ASCII letters
/// case-insensitive (collection lists are small: no budget).
fn like(text: &str, pattern: &str) -> bool {
    domain::like::like(text.as_bytes(), pattern.as_bytes(), None, &mut || true).unwrap_or(false)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Text(String),
    Number(f64),
    Op(Op),
    And,
    Or,
    Open,
    Close,
}

fn tokenize(text: &str) -> Option<Vec<Token>> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                tokens.push(Token::Open);
                i += 1;
            }
            ')' => {
                tokens.push(Token::Close);
                i += 1;
            }
            '&' if next == Some('&') => {
                tokens.push(Token::And);
                i += 2;
            }
            '|' if next == Some('|') => {
                tokens.push(Token::Or);
                i += 2;
            }
            '\'' | '"' => {
                let mut value = String::new();
                i += 1;
                loop {
                    let ch = *chars.get(i)?;
                    i += 1;
                    if ch == '\\' {
                        value.push(*chars.get(i)?);
                        i += 1;
                    } else if ch == c {
                        break;
                    } else {
                        value.push(ch);
                    }
                }
                tokens.push(Token::Text(value));
            }
            '=' => {
                tokens.push(Token::Op(Op::Eq));
                i += 1;
            }
            '!' if next == Some('=') => {
                tokens.push(Token::Op(Op::NotEq));
                i += 2;
            }
            '!' if next == Some('~') => {
                tokens.push(Token::Op(Op::NotLike));
                i += 2;
            }
            '~' => {
                tokens.push(Token::Op(Op::Like));
                i += 1;
            }
            '>' | '<' => {
                let or_equal = next == Some('=');
                tokens.push(Token::Op(match (c, or_equal) {
                    ('>', true) => Op::Ge,
                    ('>', false) => Op::Gt,
                    (_, true) => Op::Le,
                    (_, false) => Op::Lt,
                }));
                i += if or_equal { 2 } else { 1 };
            }
            c if c.is_ascii_digit() || (c == '-' && next.is_some_and(|n| n.is_ascii_digit())) => {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                let literal: String = chars[start..i].iter().collect();
                tokens.push(Token::Number(literal.parse().ok()?));
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == '@' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric()
                        || matches!(chars[i], '_' | '@' | '.' | ':'))
                {
                    i += 1;
                }
                tokens.push(Token::Ident(chars[start..i].iter().collect()));
            }
            // Anything else (`?=` any-of operators, stray symbols) is not supported here.
            _ => return None,
        }
    }
    Some(tokens)
}

/// Parses a filter over collection attributes; `None` when it is malformed or names anything
/// else.
fn parse_filter(text: &str) -> Option<Expr> {
    let tokens = tokenize(text)?;
    let mut parser = FilterParser { tokens, pos: 0 };
    let expr = parser.or(0)?;
    (parser.pos == parser.tokens.len()).then_some(expr)
}

/// How deep parentheses may nest, so hostile input cannot exhaust the stack.
const MAX_DEPTH: usize = 32;

struct FilterParser {
    tokens: Vec<Token>,
    pos: usize,
}

impl FilterParser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        token
    }

    fn or(&mut self, depth: usize) -> Option<Expr> {
        let mut left = self.and(depth)?;
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and(depth)?));
        }
        Some(left)
    }

    fn and(&mut self, depth: usize) -> Option<Expr> {
        let mut left = self.primary(depth)?;
        while self.peek() == Some(&Token::And) {
            self.pos += 1;
            left = Expr::And(Box::new(left), Box::new(self.primary(depth)?));
        }
        Some(left)
    }

    fn primary(&mut self, depth: usize) -> Option<Expr> {
        if self.peek() == Some(&Token::Open) {
            if depth >= MAX_DEPTH {
                return None;
            }
            self.pos += 1;
            let inner = self.or(depth + 1)?;
            return (self.next()? == Token::Close).then_some(inner);
        }
        let left = self.operand()?;
        let Token::Op(op) = self.next()? else {
            return None;
        };
        let right = self.operand()?;
        Some(Expr::Compare(left, op, right))
    }

    fn operand(&mut self) -> Option<Operand> {
        Some(match self.next()? {
            Token::Text(text) => Operand::Literal(Scalar::Text(text)),
            Token::Number(n) => Operand::Literal(Scalar::Number(n)),
            Token::Ident(word) => match word.as_str() {
                "true" => Operand::Literal(Scalar::Number(1.0)),
                "false" => Operand::Literal(Scalar::Number(0.0)),
                "null" => Operand::Literal(Scalar::Null),
                other => Operand::Attribute(Attribute::parse(other)?),
            },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::collection::{superusers_collection, users_collection};

    fn collections() -> Vec<Arc<Collection>> {
        let mut posts = Collection::scaffold(domain::CollectionType::Base, "posts");
        posts.id = "pbc_1".into();
        posts.created = "2026-01-03 00:00:00.000Z".into();
        vec![
            Arc::new(superusers_collection("2026-01-01 00:00:00.000Z")),
            Arc::new(users_collection("2026-01-02 00:00:00.000Z")),
            Arc::new(posts),
        ]
    }

    fn names(query: &str) -> Vec<String> {
        let params = ListParams::parse(Some(query)).expect("valid");
        params
            .apply(&collections())
            .iter()
            .map(|c| c.name.clone())
            .collect()
    }

    #[test]
    fn pagination_is_normalized_like_pocketbase() {
        let p = ListParams::parse(Some("page=-1&perPage=5000&skipTotal=1")).expect("valid");
        assert_eq!((p.page, p.per_page, p.skip_total), (1, 1000, true));
        let p = ListParams::parse(None).expect("valid");
        assert_eq!((p.page, p.per_page, p.skip_total), (1, 30, false));
        for bad in [
            "perPage=abc",
            "page=1.5",
            "skipTotal=x",
            "sort=nosuch",
            "sort=fields",
        ] {
            let error = ListParams::parse(Some(bad)).expect_err(bad);
            assert_eq!(error.status.as_u16(), 400, "{bad}");
        }
    }

    #[test]
    fn sorting_uses_the_allowed_attributes() {
        assert_eq!(names(""), ["_superusers", "users", "posts"]);
        assert_eq!(names("sort=-name"), ["users", "posts", "_superusers"]);
        assert_eq!(
            names("sort=type,-created"),
            ["users", "_superusers", "posts"]
        );
        assert_eq!(names("sort=-@rowid"), ["posts", "users", "_superusers"]);
        assert_eq!(names("sort=%2Bsystem,name").len(), 3);
        assert_eq!(names("sort=@random").len(), 3);
    }

    #[test]
    fn filters_cover_the_allowed_attributes() {
        assert_eq!(names("filter=type%3D'auth'"), ["_superusers", "users"]);
        assert_eq!(names("filter=system%3Dtrue"), ["_superusers"]);
        assert_eq!(names("filter=name%3D'USERS'"), Vec::<String>::new());
        assert_eq!(names("filter=name~'USER'"), ["_superusers", "users"]);
        assert_eq!(names("filter=name~'u%25'"), ["users"]);
        assert_eq!(names("filter=name!~'s'"), Vec::<String>::new());
        assert_eq!(
            names("filter=(system%3Dfalse%20%26%26%20name!%3D'users')%20||%20id%3D'pbc_1'"),
            ["posts"]
        );
        assert_eq!(
            names("filter=created>'2026-01-01 12:00:00'"),
            ["users", "posts"]
        );
        for bad in [
            "filter=nosuch%3D1",
            "filter=listRule%3Dnull",
            "filter=name%3D",
            "filter=(name%3D'a'",
            "filter=name?%3D'a'",
        ] {
            assert!(ListParams::parse(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn like_matches_sqlite() {
        assert!(like("Users", "%user%"));
        assert!(like("abc", "a_c"));
        assert!(!like("abc", "a_d"));
        assert!(like("", "%"));
        assert!(!like("abc", "b%"));
    }
}
