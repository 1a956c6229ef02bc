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
