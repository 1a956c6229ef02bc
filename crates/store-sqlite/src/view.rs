//! View collections: a superuser-written SELECT becomes `CREATE VIEW`. The query is SQL by
//! design, so it is checked to be exactly one read-only SELECT (or WITH … SELECT), and its
//! result columns become the collection's fields: a column read straight from a collection
//! copies that field's definition (SQLite's column origin metadata says where it comes from),
//! and computed columns get a type from their expression the way PocketBase guesses it
//! (`count(…)` is an integer, `cast(… as real)` a number, anything else JSON).

use domain::StoreError;
use domain::collection::Collection;
use domain::field::{BasicOptions, Field, FieldKind, JsonOptions, NumberOptions, TextOptions};
use domain::sql::quote_ident;
use rusqlite::Connection;

/// A checked view query and what its columns are.
pub(crate) struct ViewPlan {
    pub(crate) fields: Vec<Field>,
    /// Whether the `id` column is computed (not a stored text column) and must be cast to
    /// text, so lookups by id compare text with text.
    cast_id: bool,
}

/// The error SQLite gives for `query` compiled as a subquery (it is never run), in the
/// `<description>: <message> (<code>)` form PocketBase reports.
fn wrapped_query_error(conn: &Connection, query: &str) -> String {
    match conn.prepare(&format!("SELECT * FROM ({query}) LIMIT 0")) {
        Err(error) => sqlite_error_text(error),
        Ok(_) => "the query must be a single SELECT statement".to_owned(),
    }
}

/// SQLite's own description of an error code ("SQL logic error"), without the
/// "Error code N: " prefix the driver's `Display` adds.
fn error_description(error: &rusqlite::ffi::Error) -> String {
    let text = error.to_string();
    match text.split_once(": ") {
        Some((prefix, rest)) if prefix.starts_with("Error code ") => rest.to_owned(),
        _ => text,
    }
}

/// `<description>: <message> (<code>)`, the way PocketBase's driver words SQLite errors.
fn sqlite_error_text(error: rusqlite::Error) -> String {
    match error {
        rusqlite::Error::SqliteFailure(failure, message) => format!(
            "{}: {} ({})",
            error_description(&failure),
            message.unwrap_or_default(),
            failure.extended_code
        ),
        rusqlite::Error::SqlInputError { error, msg, .. } => {
            format!(
                "{}: {} ({})",
                error_description(&error),
                msg,
                error.extended_code
            )
        }
        other => other.to_string(),
    }
}

impl ViewPlan {
    /// Checks `query` against the database `conn` sees and works out the view's fields.
    /// `collections` resolves column origins (table name → collection).
    pub(crate) fn new(
        conn: &Connection,
        collections: &[Collection],
        query: &str,
    ) -> Result<ViewPlan, StoreError> {
        let tokens = tokenize(query)?;
        match tokens.first() {
            Some(Token::Word(w))
                if w.eq_ignore_ascii_case("SELECT") || w.eq_ignore_ascii_case("WITH") => {}
            // Report what SQLite says of the query inside a SELECT, as PocketBase does.
            _ => return Err(invalid(&wrapped_query_error(conn, query))),
        }
        let items = select_items(&tokens);
        if items.iter().any(|item| item.is_wildcard()) {
            return Err(invalid(
                "wildcard columns (*) are not supported; name the columns the view should have",
            ));
        }
        let stmt = conn.prepare(query).map_err(|e| match e {
            rusqlite::Error::MultipleStatement => invalid("multiple statements are not supported"),
            other => invalid(&sqlite_error_text(other)),
        })?;
        if !stmt.readonly() {
            return Err(invalid("the query must be a single SELECT statement"));
        }
        let positional = items.len() == stmt.column_count();
        let mut fields: Vec<Field> = Vec::with_capacity(stmt.column_count());
        let mut cast_id = false;
        let mut has_id = false;
        for (i, column) in stmt.columns_with_metadata().enumerate() {
            let name = column.name().to_owned();
            if fields.iter().any(|f| f.name.eq_ignore_ascii_case(&name)) {
                return Err(invalid(&format!("duplicated column name {name:?}")));
            }
            let origin = match (column.table_name(), column.origin_name()) {
                (Some(table), Some(origin)) => collections
                    .iter()
                    .find(|c| c.name.eq_ignore_ascii_case(table))
                    .and_then(|c| {
                        c.fields
                            .iter()
                            .find(|f| f.name.eq_ignore_ascii_case(origin))
                    }),
                _ => None,
            };
            if name == "id" {
                has_id = true;
                cast_id = !matches!(origin, Some(f) if matches!(f.kind, FieldKind::Text(_)));
                fields.push(id_field());
                continue;
            }
            let field = match origin {
                Some(source) => {
                    let mut field = source.clone();
                    field.name = name.clone();
                    // Copied fields get a `_clone_` id with a random suffix, as in PocketBase.
                    field.id = format!("_clone_{}", domain::ids::random_alnum(4));
                    field
                }
                None => {
                    let item = if positional { items.get(i) } else { None };
                    Field::new(&name, item.map_or_else(json_kind, SelectItem::guess_kind))
                }
            };
            fields.push(field);
        }
        if !has_id {
            return Err(invalid(
                "missing required id column (you can use `(ROW_NUMBER() OVER()) as id` if you don't have one)",
            ));
        }
        Ok(ViewPlan { fields, cast_id })
    }

    /// `CREATE VIEW "name" AS SELECT … FROM (query)`.
    pub(crate) fn create_sql(&self, name: &str, query: &str) -> String {
        let columns = if self.cast_id {
            let list: Vec<String> = self
                .fields
                .iter()
                .map(|f| {
                    let column = quote_ident(&f.name);
                    if f.name == "id" {
                        format!("CAST({column} AS TEXT) AS {column}")
                    } else {
                        column
                    }
                })
                .collect();
            list.join(", ")
        } else {
            "*".to_owned()
        };
        // The parentheses also keep the query a single SELECT: a smuggled second statement
        // cannot close them. The newline ends a trailing `--` comment before the `)`.
        format!(
            "CREATE VIEW {} AS SELECT {columns} FROM ({query}\n)",
            quote_ident(name)
        )
    }
}

fn invalid(detail: &str) -> StoreError {
    StoreError::Schema(format!("invalid view query: {detail}"))
}

/// The `id` field of every view: text, primary key, no generation rules.
fn id_field() -> Field {
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

fn json_kind() -> FieldKind {
    FieldKind::Json(JsonOptions {
        max_size: 1,
        ..JsonOptions::default()
    })
}

fn number_kind(only_int: bool) -> FieldKind {
    FieldKind::Number(NumberOptions {
        only_int,
        ..NumberOptions::default()
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Literal,
    Punct(char),
}

/// A lexer just good enough to find statement boundaries and the select list: strings,
/// quoted identifiers and comments are skipped as units.
fn tokenize(query: &str) -> Result<Vec<Token>, StoreError> {
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
struct SelectItem {
    tokens: Vec<Token>,
}

impl SelectItem {
    fn is_wildcard(&self) -> bool {
        matches!(self.tokens.as_slice(), [Token::Punct('*')])
            || matches!(
                self.tokens.as_slice(),
                [.., Token::Punct('.'), Token::Punct('*')]
            )
    }

    /// The expression without its alias.
    fn expression(&self) -> &[Token] {
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
    fn guess_kind(&self) -> FieldKind {
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

fn is_word(token: &Token, keyword: &str) -> bool {
    matches!(token, Token::Word(w) if w.eq_ignore_ascii_case(keyword))
}

/// The result columns of the outermost SELECT (the first one at parenthesis depth zero, so
/// CTE bodies are skipped).
fn select_items(tokens: &[Token]) -> Vec<SelectItem> {
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
