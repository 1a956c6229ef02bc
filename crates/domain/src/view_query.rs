//! The select list of a view query, read the way PocketBase reads it: a lexer just good enough
//! to find statement boundaries and the outer SELECT's result columns, and the field kind
//! PocketBase guesses for a computed column (`count(…)` an integer, `cast(… as real)` a number,
//! anything else JSON). Shared by the engines, so a view's fields come out the same on both;
//! the query itself stays in the engine's own SQL.

use crate::field::{BasicOptions, Field, FieldKind, JsonOptions, NumberOptions, TextOptions};
use crate::store::StoreError;

pub fn invalid(detail: &str) -> StoreError {
    StoreError::Schema(format!("invalid view query: {detail}"))
}

/// The `id` field of every view: text, primary key, no generation rules.
pub fn id_field() -> Field {
    let mut field = Field::new(
        "id",
        FieldKind::Text(TextOptions {
            pattern: "^[a-z0-9]+$".into(),
            primary_key: true,
            required: true,
            ..TextOptions::default()
        }),
    );
    field.system = true;
    field
}

pub fn json_kind() -> FieldKind {
    FieldKind::Json(JsonOptions {
        max_size: 1,
        ..JsonOptions::default()
    })
}

pub fn number_kind(only_int: bool) -> FieldKind {
    FieldKind::Number(NumberOptions {
        only_int,
        ..NumberOptions::default()
    })
}

#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    Word(String),
    Quoted(String),
    Literal,
    Punct(char),
}

/// Refuses the result columns PocketBase refuses, with its words. PocketBase reads each column
/// of the select list (see `outer_select_list`) as parts split at whitespace outside quotes and
/// parentheses, and takes one part (`expr`), two (`expr alias`) or three with `AS` between;
/// anything else is an error, even where SQL would accept it (`n + 1 AS s`, `CASE … END AS c`,
/// `t COLLATE NOCASE AS s`: each needs parentheses, as in PocketBase). Comments count as
/// whitespace. A query with no top-level SELECT has no columns to check here.
pub fn check_column_parts(query: &str) -> Result<(), StoreError> {
    let text = without_comments(query);
    let Some(list) = outer_select_list(&text) else {
        return Ok(());
    };
    for column in split_outside(&list, |c| c == ',') {
        let parts = split_outside(&column, char::is_whitespace);
        match parts.as_slice() {
            [] | [_] | [_, _] => {}
            [_, word, _] if word.eq_ignore_ascii_case("as") => {}
            [_, word, _] => {
                return Err(invalid(&format!(
                    "invalid identifier part - expected \"as\", got {word}"
                )));
            }
            _ => {
                return Err(invalid(&format!(
                    "invalid identifier parts [{}]",
                    parts.join(" ")
                )));
            }
        }
    }
    Ok(())
}

/// `query` with its comments turned into spaces (quoted text kept as it is).
fn without_comments(query: &str) -> String {
    let chars: Vec<char> = query.chars().collect();
    let mut out = String::with_capacity(query.len());
    let mut quote: Option<char> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            out.push(c);
            i += 1;
            continue;
        }
        match (c, chars.get(i + 1)) {
            ('\'' | '"' | '`', _) => {
                quote = Some(c);
                out.push(c);
                i += 1;
            }
            ('-', Some('-')) => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                out.push(' ');
            }
            ('/', Some('*')) => {
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                    i += 1;
                }
                i = (i + 2).min(chars.len());
                out.push(' ');
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// The select list as PocketBase collects it: the query's words (quoted text and parenthesized
/// groups one word each) after every top-level `SELECT`, up to the next `FROM`, `WHERE`,
/// `GROUP`, `HAVING`, `ORDER` or `LIMIT`, joined by spaces, without `DISTINCT`. A second
/// SELECT (`… UNION SELECT …`) appends to the first, and keywords such as `UNION` or `WINDOW`
/// right after a select list are taken as part of it, as there. `None` when there is no
/// top-level `SELECT`.
fn outer_select_list(text: &str) -> Option<String> {
    let mut list: Vec<String> = Vec::new();
    let mut active = false;
    let mut seen = false;
    for word in split_outside(text, char::is_whitespace) {
        match word.to_ascii_lowercase().as_str() {
            "select" => {
                active = true;
                seen = true;
            }
            "distinct" => {}
            "from" | "where" | "group" | "having" | "order" | "limit" => active = false,
            _ if active => list.push(word),
            _ => {}
        }
    }
    seen.then(|| list.join(" "))
}

/// `text` split at the characters `at` accepts when they are outside quotes and parentheses;
/// the pieces trimmed, empty ones dropped.
fn split_outside(text: &str, at: impl Fn(char) -> bool) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut depth = 0i32;
    for c in text.chars() {
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' | '`' => quote = Some(c),
                '(' => depth += 1,
                ')' => depth -= 1,
                c if depth == 0 && at(c) => {
                    let piece = current.trim();
                    if !piece.is_empty() {
                        pieces.push(piece.to_owned());
                    }
                    current.clear();
                    continue;
                }
                _ => {}
            },
        }
        current.push(c);
    }
    let piece = current.trim();
    if !piece.is_empty() {
        pieces.push(piece.to_owned());
    }
    pieces
}

/// A lexer just good enough to find statement boundaries and the select list: strings,
/// quoted identifiers and comments are skipped as units.
pub fn tokenize(query: &str) -> Result<Vec<Token>, StoreError> {
    let chars: Vec<char> = query.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i += 2;
        } else if matches!(c, '\'' | '"' | '`' | '[') {
            let close = if c == '[' { ']' } else { c };
            let start = i + 1;
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(invalid("unterminated quote")),
                    Some(&ch) if ch == close => {
                        if close != ']' && chars.get(i + 1) == Some(&close) {
                            i += 2;
                        } else {
                            break;
                        }
                    }
                    Some(_) => i += 1,
                }
            }
            let text: String = chars[start..i].iter().collect();
            i += 1;
            tokens.push(if c == '\'' {
                Token::Literal
            } else {
                Token::Quoted(text.replace(&format!("{close}{close}"), &close.to_string()))
            });
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            tokens.push(if word.starts_with(|ch: char| ch.is_ascii_digit()) {
                Token::Literal
            } else {
                Token::Word(word)
            });
        } else if c == ';' {
            // Only trailing whitespace or comments may follow the statement.
            let rest = tokenize(&chars[i + 1..].iter().collect::<String>())?;
            if rest.is_empty() {
                return Err(invalid("remove the trailing ';'"));
            }
            return Err(invalid("multiple statements are not supported"));
        } else {
            tokens.push(Token::Punct(c));
            i += 1;
        }
    }
    Ok(tokens)
}

/// One result column of the outer SELECT, as written.
#[derive(Debug)]
pub struct SelectItem {
    pub tokens: Vec<Token>,
}

impl SelectItem {
    pub fn is_wildcard(&self) -> bool {
        matches!(self.tokens.as_slice(), [Token::Punct('*')])
            || matches!(
                self.tokens.as_slice(),
                [.., Token::Punct('.'), Token::Punct('*')]
            )
    }

    /// The expression without its alias.
    pub fn expression(&self) -> &[Token] {
        let tokens = self.tokens.as_slice();
        let n = tokens.len();
        if n >= 3 && is_word(&tokens[n - 2], "AS") {
            return &tokens[..n - 2];
        }
        // An alias without AS: `count(*) total`, but not `p.title` or `a - b`.
        if n >= 2
            && matches!(&tokens[n - 1], Token::Word(w) if !w.eq_ignore_ascii_case("END"))
            && matches!(
                &tokens[n - 2],
                Token::Punct(')') | Token::Word(_) | Token::Quoted(_) | Token::Literal
            )
        {
            return &tokens[..n - 1];
        }
        if n >= 2
            && matches!(&tokens[n - 1], Token::Quoted(_))
            && !matches!(&tokens[n - 2], Token::Punct('.'))
        {
            return &tokens[..n - 1];
        }
        tokens
    }

    /// The field type PocketBase gives a computed column.
    pub fn guess_kind(&self) -> FieldKind {
        let expression = self.expression();
        let [
            Token::Word(function),
            Token::Punct('('),
            ..,
            Token::Punct(')'),
        ] = expression
        else {
            return json_kind();
        };
        match function.to_ascii_lowercase().as_str() {
            "count" => number_kind(true),
            "total" => number_kind(false),
            "cast" => {
                // The type follows the last AS at the top level of the parentheses.
                let inner = &expression[2..expression.len() - 1];
                let mut depth = 0i32;
                let mut type_at = None;
                for (i, token) in inner.iter().enumerate() {
                    match token {
                        Token::Punct('(') => depth += 1,
                        Token::Punct(')') => depth -= 1,
                        t if depth == 0 && is_word(t, "AS") => type_at = Some(i + 1),
                        _ => {}
                    }
                }
                let type_name = match type_at.and_then(|i| inner.get(i)) {
                    Some(Token::Word(w)) => w.to_ascii_lowercase(),
                    _ => return json_kind(),
                };
                match type_name.as_str() {
                    "int" | "integer" => number_kind(true),
                    "real" | "numeric" | "decimal" => number_kind(false),
                    "text" => FieldKind::Text(TextOptions::default()),
                    "bool" | "boolean" => FieldKind::Bool(BasicOptions::default()),
                    _ => json_kind(),
                }
            }
            _ => json_kind(),
        }
    }
}

pub fn is_word(token: &Token, keyword: &str) -> bool {
    matches!(token, Token::Word(w) if w.eq_ignore_ascii_case(keyword))
}

/// The result columns of the outermost SELECT (the first one at parenthesis depth zero, so
/// CTE bodies are skipped).
pub fn select_items(tokens: &[Token]) -> Vec<SelectItem> {
    const ENDS: [&str; 10] = [
        "FROM",
        "WHERE",
        "GROUP",
        "HAVING",
        "ORDER",
        "LIMIT",
        "WINDOW",
        "UNION",
        "INTERSECT",
        "EXCEPT",
    ];
    let mut depth = 0i32;
    let mut start = None;
    for (i, token) in tokens.iter().enumerate() {
        match token {
            Token::Punct('(') => depth += 1,
            Token::Punct(')') => depth -= 1,
            t if depth == 0 && is_word(t, "SELECT") => {
                start = Some(i + 1);
                break;
            }
            _ => {}
        }
    }
    let Some(mut i) = start else {
        return Vec::new();
    };
    if tokens
        .get(i)
        .is_some_and(|t| is_word(t, "DISTINCT") || is_word(t, "ALL"))
    {
        i += 1;
    }
    let mut items = Vec::new();
    let mut current = Vec::new();
    let mut depth = 0i32;
    while let Some(token) = tokens.get(i) {
        match token {
            Token::Punct('(') => depth += 1,
            Token::Punct(')') => depth -= 1,
            Token::Punct(',') if depth == 0 => {
                items.push(SelectItem {
                    tokens: std::mem::take(&mut current),
                });
                i += 1;
                continue;
            }
            t if depth == 0 && ENDS.iter().any(|k| is_word(t, k)) => break,
            _ => {}
        }
        current.push(token.clone());
        i += 1;
    }
    if !current.is_empty() {
        items.push(SelectItem { tokens: current });
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(query: &str) -> Vec<String> {
        let tokens = tokenize(query).expect("tokenizes");
        select_items(&tokens)
            .iter()
            .map(|item| match item.guess_kind() {
                FieldKind::Number(o) if o.only_int => "int".to_owned(),
                kind => kind.type_name().to_owned(),
            })
            .collect()
    }

    #[test]
    fn columns_are_read_in_parts_like_pocketbase() {
        let refused = |query: &str| match check_column_parts(query) {
            Err(StoreError::Schema(detail)) => detail,
            other => panic!("{query}: {other:?}"),
        };
        for query in [
            "SELECT id, n+1 as s FROM a",
            "SELECT id, n+1 s FROM a",
            "SELECT id,\n n+1\n AS\ts\nFROM a",
            "SELECT DISTINCT id, t FROM a",
            "SELECT id, 'a b c' as s, \"my col\" FROM a WHERE t = 'x y z'",
            "SELECT id, count( * ) as c, (CASE WHEN n > 1 THEN 1 ELSE 0 END) AS f FROM a",
            "SELECT id, n /* a comment */ as s -- another\n FROM a",
            "SELECT a.id, b.n FROM a LEFT JOIN a b ON b.id = a.id",
            "DELETE FROM a WHERE id IN (SELECT x + y FROM b)",
            "SELECT 1 as id",
            "select 'a1' as id, 2 as n where 1 = 1 order by n limit 1",
            "select 'a1' as id, 2 as n group by id having count(*) > 0",
            "select id, n from a where t = 'a' union select id, n from a",
        ] {
            assert!(check_column_parts(query).is_ok(), "{query}");
        }
        assert_eq!(
            refused("SELECT id, CASE WHEN n > 1 THEN 1 ELSE 0 END as flag FROM a"),
            "invalid view query: invalid identifier parts [CASE WHEN n > 1 THEN 1 ELSE 0 END as flag]"
        );
        assert_eq!(
            refused("WITH x AS (SELECT id, n FROM a) SELECT id, n  *  2 as d FROM x"),
            "invalid view query: invalid identifier parts [n * 2 as d]"
        );
        assert_eq!(
            refused("SELECT id, n+1 foo s FROM a"),
            "invalid view query: invalid identifier part - expected \"as\", got foo"
        );
        // A later SELECT's columns are appended to the first list, and UNION without a FROM
        // before it is read as part of a column, as PocketBase does.
        assert_eq!(
            refused("select 'a1' as id, 2 as n union all select 'b2', 3.5"),
            "invalid view query: invalid identifier parts [2 as n union all 'b2']"
        );
        assert_eq!(
            refused("select id, n + 1 as s from a union select id, n from a"),
            "invalid view query: invalid identifier parts [n + 1 as s id]"
        );
        assert_eq!(
            refused("select all 'a1' as id, 2 as n"),
            "invalid view query: invalid identifier parts [all 'a1' as id]"
        );
        assert_eq!(
            refused("select id, t COLLATE NOCASE as s from a"),
            "invalid view query: invalid identifier parts [t COLLATE NOCASE as s]"
        );
    }

    #[test]
    fn computed_columns_are_typed_like_pocketbase() {
        assert_eq!(
            kinds(
                "with x as (select 1 as a) select count(*) c, COUNT(distinct title) AS d, total(n), sum(n) s, cast(n as integer) ci, CAST(n AS REAL) cr, cast(n as text) ct, cast(n as boolean) cb, cast(n as varchar) cv, lower(title) lw, 'x' lit, (select count(*) from t) sub from t"
            ),
            vec![
                "int", "int", "number", "json", "int", "number", "text", "bool", "json", "json",
                "json", "json"
            ]
        );
    }

    #[test]
    fn statements_other_than_one_select_are_refused() {
        assert!(tokenize("select 1; drop table x").is_err());
        assert!(tokenize("select 1;").is_err());
        assert!(tokenize("select ';' as id -- ; comment").is_ok());
        let items = select_items(&tokenize("select p.*, id from p").expect("tokenizes"));
        assert!(items[0].is_wildcard());
        assert!(!items[1].is_wildcard());
    }
}
