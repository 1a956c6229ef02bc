//! Collection index definitions. Collections carry their indexes as SQL text (PocketBase's
//! `CREATE UNIQUE INDEX … ON … (…) WHERE …`), but that text comes from users, and user text
//! must never become SQL text. So each definition is parsed into an [`IndexDef`] restricted to a
//! small, safe grammar, and stores render it back with every identifier quoted by
//! [`quote_ident`] and with the table name they supply (so a renamed collection's indexes
//! follow it).
//!
//! The text users write is PocketBase's, so SQLite's syntax, on every engine; each engine
//! renders the parsed definition in its own dialect ([`IndexDef::render`]). A collection keeps
//! its indexes in PocketBase's form ([`IndexDef::to_pocketbase`]) whatever the engine.
//!
//! Accepted grammar (keywords are case-insensitive; identifiers may be bare, or quoted with
//! backticks, double quotes or brackets):
//!
//! ```text
//! CREATE [UNIQUE] INDEX [IF NOT EXISTS] name ON table ( column [, column]* ) [WHERE condition]
//! column    := ident [COLLATE NOCASE|BINARY|RTRIM] [ASC|DESC]
//! condition := term [OR term]*        term := factor [AND factor]*
//! factor    := ( condition ) | ident op literal
//! op        := = | == | != | <> | > | < | >= | <= | IS | IS NOT
//! literal   := 'text' | number | NULL | TRUE | FALSE
//! ```
//!
//! `name` must match `^\w+$`. Anything else (expressions, subqueries, comments, `;`) is
//! rejected with an [`IndexError`] saying what was wrong.

use crate::collection::Collection;
use crate::sql::{Dialect, quote_ident};

/// A parsed index definition.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexDef {
    pub unique: bool,
    pub name: String,
    /// The table named in the text; stores ignore it and use the collection's name.
    pub table: String,
    pub columns: Vec<IndexColumn>,
    /// The partial-index condition, if any.
    pub condition: Option<Condition>,
}

/// One indexed column.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexColumn {
    pub name: String,
    pub collation: Option<Collation>,
    pub order: Option<SortOrder>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collation {
    NoCase,
    Binary,
    RTrim,
}

impl Collation {
    /// The clause after a column in SQLite's syntax (PocketBase's index text).
    fn sqlite_clause(self) -> &'static str {
        match self {
            Collation::NoCase => " COLLATE NOCASE",
            Collation::Binary => " COLLATE BINARY",
            Collation::RTrim => " COLLATE RTRIM",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    Asc,
    Desc,
}

/// A partial-index condition: comparisons of a column with a literal, joined by AND/OR.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Compare {
        column: String,
        op: CompareOp,
        value: Literal,
    },
    And(Box<Condition>, Box<Condition>),
    Or(Box<Condition>, Box<Condition>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    NotEq,
    Gt,
    Lt,
    Ge,
    Le,
    Is,
    IsNot,
}

/// A literal of a condition. Numbers keep their (validated) source text.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Text(String),
    Number(String),
    Null,
    Bool(bool),
}

/// Why an index definition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid index: {0}")]
pub struct IndexError(pub String);

/// How deep parentheses may nest in a condition; keeps hostile input from exhausting the stack.
const MAX_CONDITION_DEPTH: usize = 16;

impl IndexDef {
    /// Parses one index definition.
    pub fn parse(sql: &str) -> Result<IndexDef, IndexError> {
        let tokens = tokenize(sql)?;
        let mut parser = Parser { tokens, pos: 0 };
        let def = parser.index()?;
        if let Some(token) = parser.peek() {
            return Err(err(format!(
                "unexpected {} after the definition",
                token.describe()
            )));
        }
        Ok(def)
    }

    /// The `CREATE INDEX` statement for `table` in `dialect`, every identifier quoted.
    ///
    /// On PostgreSQL, SQLite's collations become what gives the same equality: `NOCASE` (which
    /// folds ASCII letters only) an index on the column with ASCII letters lowered, `RTRIM` one
    /// on the column without trailing spaces, `BINARY` the byte-order collation `"C"`; `IS`
    /// with a value that is not NULL is `IS NOT DISTINCT FROM`.
    /// FIXME(#15): condition literals are written as given, so on PostgreSQL a literal of
    /// another type than its column (`published = 1` on a boolean) is refused by the engine.
    pub fn render(&self, dialect: Dialect, table: &str) -> String {
        let mut sql = String::from("CREATE ");
        if self.unique {
            sql.push_str("UNIQUE ");
        }
        sql.push_str("INDEX ");
        sql.push_str(&quote_ident(&self.name));
        sql.push_str(" ON ");
        sql.push_str(&quote_ident(table));
        sql.push_str(" (");
        for (i, column) in self.columns.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            let name = quote_ident(&column.name);
            match (dialect, column.collation) {
                (_, None) => sql.push_str(&name),
                (Dialect::Sqlite, Some(collation)) => {
                    sql.push_str(&name);
                    sql.push_str(collation.sqlite_clause());
                }
                (Dialect::Postgres, Some(Collation::NoCase)) => sql.push_str(&format!(
                    "(translate({name}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'))"
                )),
                (Dialect::Postgres, Some(Collation::RTrim)) => {
                    sql.push_str(&format!("(rtrim({name}, ' '))"));
                }
                (Dialect::Postgres, Some(Collation::Binary)) => {
                    sql.push_str(&name);
                    sql.push_str(" COLLATE \"C\"");
                }
            }
            sql.push_str(order_clause(column.order));
        }
        sql.push(')');
        if let Some(condition) = &self.condition {
            sql.push_str(" WHERE ");
            render_condition(condition, dialect, &quote_ident, &mut sql);
        }
        sql
    }

    /// The partial-index condition in `dialect` (identifiers quoted, literals inline), if any.
    /// A query must repeat it for SQLite to use a partial index: `email = ?` alone cannot show
    /// that the bound value satisfies `email != ''`.
    pub fn condition_sql(&self, dialect: Dialect) -> Option<String> {
        self.condition.as_ref().map(|condition| {
            let mut sql = String::new();
            render_condition(condition, dialect, &quote_ident, &mut sql);
            sql
        })
    }

    /// The definition as PocketBase writes it in a collection's `indexes`, for `table`: SQLite
    /// syntax with backtick-quoted names, one column per line when there are several. This is
    /// the API's text, the same on every engine; it is never executed as given.
    pub fn to_pocketbase(&self, table: &str) -> String {
        let backtick = |name: &str| format!("`{name}`");
        let columns: Vec<String> = self
            .columns
            .iter()
            .map(|column| {
                let mut text = backtick(&column.name);
                if let Some(collation) = column.collation {
                    text.push_str(collation.sqlite_clause());
                }
                text.push_str(order_clause(column.order));
                text
            })
            .collect();
        let columns = match columns.as_slice() {
            [single] => format!("({single})"),
            several => format!("(\n  {}\n)", several.join(",\n  ")),
        };
        let mut sql = format!(
            "CREATE {}INDEX {} ON {} {columns}",
            if self.unique { "UNIQUE " } else { "" },
            backtick(&self.name),
            backtick(table),
        );
        if let Some(condition) = &self.condition {
            sql.push_str(" WHERE ");
            render_condition(condition, Dialect::Sqlite, &backtick, &mut sql);
        }
        sql
    }

    /// Every column the definition mentions (indexed columns, then condition columns).
    pub fn referenced_columns(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.columns.iter().map(|c| c.name.as_str()).collect();
        if let Some(condition) = &self.condition {
            condition_columns(condition, &mut names);
        }
        names
    }

    /// Checks that every mentioned column is a field of `collection` (case-insensitively, as
    /// SQLite resolves column names).
    pub fn check_columns(&self, collection: &Collection) -> Result<(), IndexError> {
        for name in self.referenced_columns() {
            if !collection
                .fields
                .iter()
                .any(|f| f.name.eq_ignore_ascii_case(name))
            {
                return Err(err(format!(
                    "column {name:?} of index {:?} is not a field of the collection",
                    self.name
                )));
            }
        }
        Ok(())
    }

    /// For a unique index, the columns whose combined values must be unique; `None` otherwise.
    pub fn unique_columns(&self) -> Option<Vec<&str>> {
        self.unique
            .then(|| self.columns.iter().map(|c| c.name.as_str()).collect())
    }
}

fn err(message: impl Into<String>) -> IndexError {
    IndexError(message.into())
}

fn order_clause(order: Option<SortOrder>) -> &'static str {
    match order {
        Some(SortOrder::Asc) => " ASC",
        Some(SortOrder::Desc) => " DESC",
        None => "",
    }
}

/// Appends `condition` in `dialect`, each identifier through `quote`.
fn render_condition(
    condition: &Condition,
    dialect: Dialect,
    quote: &dyn Fn(&str) -> String,
    sql: &mut String,
) {
    match condition {
        Condition::Compare { column, op, value } => {
            sql.push_str(&quote(column));
            let is_null = matches!(value, Literal::Null);
            sql.push_str(match (dialect, op) {
                (_, CompareOp::Eq) => " = ",
                (_, CompareOp::NotEq) => " != ",
                (_, CompareOp::Gt) => " > ",
                (_, CompareOp::Lt) => " < ",
                (_, CompareOp::Ge) => " >= ",
                (_, CompareOp::Le) => " <= ",
                (Dialect::Postgres, CompareOp::Is) if !is_null => " IS NOT DISTINCT FROM ",
                (Dialect::Postgres, CompareOp::IsNot) if !is_null => " IS DISTINCT FROM ",
                (_, CompareOp::Is) => " IS ",
                (_, CompareOp::IsNot) => " IS NOT ",
            });
            match value {
                Literal::Text(text) => {
                    sql.push('\'');
                    sql.push_str(&text.replace('\'', "''"));
                    sql.push('\'');
                }
                Literal::Number(number) => sql.push_str(number),
                Literal::Null => sql.push_str("NULL"),
                Literal::Bool(true) => sql.push_str("TRUE"),
                Literal::Bool(false) => sql.push_str("FALSE"),
            }
        }
        Condition::And(left, right) | Condition::Or(left, right) => {
            let keyword = if matches!(condition, Condition::And(..)) {
                " AND "
            } else {
                " OR "
            };
            for (i, side) in [left, right].into_iter().enumerate() {
                if i == 1 {
                    sql.push_str(keyword);
                }
                // Compound operands are parenthesized so the rendering never depends on
                // AND/OR precedence.
                if matches!(**side, Condition::Compare { .. }) {
                    render_condition(side, dialect, quote, sql);
                } else {
                    sql.push('(');
                    render_condition(side, dialect, quote, sql);
                    sql.push(')');
                }
            }
        }
    }
}

fn condition_columns<'a>(condition: &'a Condition, out: &mut Vec<&'a str>) {
    match condition {
        Condition::Compare { column, .. } => out.push(column),
        Condition::And(left, right) | Condition::Or(left, right) => {
            condition_columns(left, out);
            condition_columns(right, out);
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// A bare word (keyword or identifier).
    Word(String),
    /// A quoted identifier.
    Quoted(String),
    Text(String),
    Number(String),
    LParen,
    RParen,
    Comma,
    Op(&'static str),
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Word(w) => format!("{w:?}"),
            Token::Quoted(q) => format!("identifier {q:?}"),
            Token::Text(_) => "string literal".to_owned(),
            Token::Number(n) => format!("number {n}"),
            Token::LParen => "'('".to_owned(),
            Token::RParen => "')'".to_owned(),
            Token::Comma => "','".to_owned(),
            Token::Op(op) => format!("'{op}'"),
        }
    }

    fn is_keyword(&self, keyword: &str) -> bool {
        matches!(self, Token::Word(w) if w.eq_ignore_ascii_case(keyword))
    }
}

fn tokenize(sql: &str) -> Result<Vec<Token>, IndexError> {
    let chars: Vec<char> = sql.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                tokens.push(Token::LParen);
                i += 1;
            }
            ')' => {
                tokens.push(Token::RParen);
                i += 1;
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            '`' | '"' | '[' => {
                let close = match c {
                    '[' => ']',
                    other => other,
                };
                let (text, next) = quoted(&chars, i + 1, close)
                    .ok_or_else(|| err("unterminated quoted identifier"))?;
                tokens.push(Token::Quoted(text));
                i = next;
            }
            '\'' => {
                let (text, next) =
                    quoted(&chars, i + 1, '\'').ok_or_else(|| err("unterminated string"))?;
                tokens.push(Token::Text(text));
                i = next;
            }
            '=' | '!' | '<' | '>' => {
                let next = chars.get(i + 1).copied();
                let (op, len) = match (c, next) {
                    ('=', Some('=')) => ("=", 2),
                    ('=', _) => ("=", 1),
                    ('!', Some('=')) => ("!=", 2),
                    ('<', Some('>')) => ("!=", 2),
                    ('<', Some('=')) => ("<=", 2),
                    ('<', _) => ("<", 1),
                    ('>', Some('=')) => (">=", 2),
                    ('>', _) => (">", 1),
                    _ => return Err(err("unexpected character '!'")),
                };
                tokens.push(Token::Op(op));
                i += len;
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let (number, next) = number(&chars, i)?;
                tokens.push(Token::Number(number));
                i = next;
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                tokens.push(Token::Word(chars[start..i].iter().collect()));
            }
            ';' => return Err(err("';' is not allowed: one statement only")),
            other => return Err(err(format!("unexpected character {other:?}"))),
        }
    }
    Ok(tokens)
}

/// Reads a quoted run starting after the opening quote; a doubled closing quote is an escaped
/// quote. Returns the text and the position after the closing quote.
fn quoted(chars: &[char], mut i: usize, close: char) -> Option<(String, usize)> {
    let mut text = String::new();
    while i < chars.len() {
        if chars[i] == close {
            if close != ']' && chars.get(i + 1) == Some(&close) {
                text.push(close);
                i += 2;
                continue;
            }
            return Some((text, i + 1));
        }
        text.push(chars[i]);
        i += 1;
    }
    None
}

/// `-?digits[.digits][(e|E)[+-]digits]`, followed by a non-word character.
fn number(chars: &[char], start: usize) -> Result<(String, usize), IndexError> {
    let mut i = start;
    if chars[i] == '-' {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let from = *i;
        while *i < chars.len() && chars[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > from
    };
    digits(&mut i);
    if chars.get(i) == Some(&'.') {
        i += 1;
        if !digits(&mut i) {
            return Err(err("malformed number"));
        }
    }
    if matches!(chars.get(i), Some('e' | 'E')) {
        i += 1;
        if matches!(chars.get(i), Some('+' | '-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return Err(err("malformed number"));
        }
    }
    if chars
        .get(i)
        .is_some_and(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
    {
        return Err(err("malformed number"));
    }
    Ok((chars[start..i].iter().collect(), i))
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        token
    }

    fn at_keyword(&self, keyword: &str) -> bool {
        self.peek().is_some_and(|t| t.is_keyword(keyword))
    }

    fn eat_keyword(&mut self, keyword: &str) -> bool {
        let found = self.at_keyword(keyword);
        if found {
            self.pos += 1;
        }
        found
    }

    fn expect_keyword(&mut self, keyword: &str) -> Result<(), IndexError> {
        if self.eat_keyword(keyword) {
            Ok(())
        } else {
            Err(self.unexpected(keyword))
        }
    }

    fn expect(&mut self, token: Token) -> Result<(), IndexError> {
        if self.peek() == Some(&token) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected(&token.describe()))
        }
    }

    fn unexpected(&self, wanted: &str) -> IndexError {
        match self.peek() {
            Some(token) => err(format!("expected {wanted}, found {}", token.describe())),
            None => err(format!("expected {wanted}, found the end")),
        }
    }

    fn identifier(&mut self, what: &str) -> Result<String, IndexError> {
        match self.peek() {
            Some(Token::Quoted(w)) if w.is_empty() => Err(err("empty identifier")),
            Some(Token::Word(w) | Token::Quoted(w)) => {
                let w = w.clone();
                self.pos += 1;
                Ok(w)
            }
            _ => Err(self.unexpected(what)),
        }
    }

    fn index(&mut self) -> Result<IndexDef, IndexError> {
        self.expect_keyword("CREATE")?;
        let unique = self.eat_keyword("UNIQUE");
        self.expect_keyword("INDEX")?;
        if self.eat_keyword("IF") {
            self.expect_keyword("NOT")?;
            self.expect_keyword("EXISTS")?;
        }
        let name = self.identifier("the index name")?;
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(err(format!(
                "index name {name:?} may only contain letters, digits and '_'"
            )));
        }
        self.expect_keyword("ON")?;
        // PocketBase's scaffolds leave the table empty (`ON ``): the collection's name is
        // filled in on save, as every index is pointed at its own collection's table.
        let table = match self.peek() {
            Some(Token::Quoted(w)) if w.is_empty() => {
                self.pos += 1;
                String::new()
            }
            _ => self.identifier("the table name")?,
        };
        self.expect(Token::LParen)?;
        let mut columns = vec![self.column()?];
        while self.peek() == Some(&Token::Comma) {
            self.pos += 1;
            columns.push(self.column()?);
        }
        self.expect(Token::RParen)?;
        let condition = if self.eat_keyword("WHERE") {
            Some(self.condition(0)?)
        } else {
            None
        };
        Ok(IndexDef {
            unique,
            name,
            table,
            columns,
            condition,
        })
    }

    fn column(&mut self) -> Result<IndexColumn, IndexError> {
        let name = self.identifier("a column name")?;
        if self.peek() == Some(&Token::LParen) {
            return Err(err(format!(
                "expressions are not supported in indexes ({name}(…))"
            )));
        }
        let collation = if self.eat_keyword("COLLATE") {
            let collation = match self.next() {
                Some(t) if t.is_keyword("NOCASE") => Collation::NoCase,
                Some(t) if t.is_keyword("BINARY") => Collation::Binary,
                Some(t) if t.is_keyword("RTRIM") => Collation::RTrim,
                _ => return Err(err("COLLATE must be NOCASE, BINARY or RTRIM")),
            };
            Some(collation)
        } else {
            None
        };
        let order = if self.eat_keyword("ASC") {
            Some(SortOrder::Asc)
        } else if self.eat_keyword("DESC") {
            Some(SortOrder::Desc)
        } else {
            None
        };
        Ok(IndexColumn {
            name,
            collation,
            order,
        })
    }

    fn condition(&mut self, depth: usize) -> Result<Condition, IndexError> {
        let mut left = self.term(depth)?;
        while self.eat_keyword("OR") {
            let right = self.term(depth)?;
            left = Condition::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn term(&mut self, depth: usize) -> Result<Condition, IndexError> {
        let mut left = self.factor(depth)?;
        while self.eat_keyword("AND") {
            let right = self.factor(depth)?;
            left = Condition::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn factor(&mut self, depth: usize) -> Result<Condition, IndexError> {
        if self.peek() == Some(&Token::LParen) {
            if depth >= MAX_CONDITION_DEPTH {
                return Err(err("the WHERE condition nests too deeply"));
            }
            self.pos += 1;
            let inner = self.condition(depth + 1)?;
            self.expect(Token::RParen)?;
            return Ok(inner);
        }
        let column = match self.peek() {
            Some(Token::Word(w)) if is_reserved(w) => {
                return Err(err(format!(
                    "the WHERE condition only compares columns with literals (found {w:?})"
                )));
            }
            _ => self.identifier("a column name in the WHERE condition")?,
        };
        if self.peek() == Some(&Token::LParen) {
            return Err(err(format!(
                "functions are not supported in the WHERE condition ({column}(…))"
            )));
        }
        let op = match self.next() {
            Some(Token::Op("=")) => CompareOp::Eq,
            Some(Token::Op("!=")) => CompareOp::NotEq,
            Some(Token::Op(">")) => CompareOp::Gt,
            Some(Token::Op("<")) => CompareOp::Lt,
            Some(Token::Op(">=")) => CompareOp::Ge,
            Some(Token::Op("<=")) => CompareOp::Le,
            Some(t) if t.is_keyword("IS") => {
                if self.eat_keyword("NOT") {
                    CompareOp::IsNot
                } else {
                    CompareOp::Is
                }
            }
            _ => {
                self.pos = self.pos.saturating_sub(1);
                return Err(self.unexpected("a comparison operator"));
            }
        };
        let value = match self.next() {
            Some(Token::Text(text)) => Literal::Text(text),
            Some(Token::Number(number)) => Literal::Number(number),
            Some(t) if t.is_keyword("NULL") => Literal::Null,
            Some(t) if t.is_keyword("TRUE") => Literal::Bool(true),
            Some(t) if t.is_keyword("FALSE") => Literal::Bool(false),
            _ => {
                self.pos = self.pos.saturating_sub(1);
                return Err(self.unexpected("a literal ('text', number, NULL, TRUE or FALSE)"));
            }
        };
        Ok(Condition::Compare { column, op, value })
    }
}

/// Bare words that can never name a column in a condition (so `NOT x = 1` or `SELECT …`
/// report a clear error instead of "expected a comparison operator").
fn is_reserved(word: &str) -> bool {
    [
        "SELECT", "NOT", "EXISTS", "CASE", "NULL", "TRUE", "FALSE", "AND", "OR", "WHERE",
    ]
    .iter()
    .any(|k| k.eq_ignore_ascii_case(word))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collection::{CollectionType, users_collection};

    fn parse(sql: &str) -> IndexDef {
        IndexDef::parse(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn reject(sql: &str) -> String {
        match IndexDef::parse(sql) {
            Ok(def) => panic!("accepted {sql}: {def:?}"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn pocketbase_auth_indexes_round_trip() {
        let def = parse(
            "CREATE UNIQUE INDEX `idx_email__pb_users_auth_` ON `users` (`email`) WHERE `email` != ''",
        );
        assert!(def.unique);
        assert_eq!(def.name, "idx_email__pb_users_auth_");
        assert_eq!(def.table, "users");
        assert_eq!(def.unique_columns(), Some(vec!["email"]));
        assert_eq!(
            def.render(Dialect::Sqlite, "members"),
            "CREATE UNIQUE INDEX \"idx_email__pb_users_auth_\" ON \"members\" (\"email\") WHERE \"email\" != ''"
        );
        let users = users_collection("");
        for index in &users.indexes {
            parse(index).check_columns(&users).expect("columns exist");
        }
    }

    #[test]
    fn an_empty_table_name_is_left_for_the_save_to_fill_but_no_other_name() {
        let def = IndexDef::parse(
            "CREATE UNIQUE INDEX `idx_email_x` ON `` (`email`) WHERE `email` != ''",
        )
        .expect("a scaffold's index parses");
        assert_eq!(def.table, "");
        assert_eq!(def.name, "idx_email_x");
        assert!(IndexDef::parse("CREATE INDEX `` ON `t` (`a`)").is_err());
        assert!(IndexDef::parse("CREATE INDEX `i` ON `t` (``)").is_err());
        assert!(IndexDef::parse("CREATE INDEX `i` ON `t` (`a`) WHERE `` = 1").is_err());
    }

    #[test]
    fn identifiers_in_every_quoting_style() {
        let def = parse(
            "create index IF NOT EXISTS idx_x on \"po\"\"sts\" ([title] collate nocase desc, `n` ASC, bare)",
        );
        assert!(!def.unique);
        assert_eq!(def.table, "po\"sts");
        assert_eq!(
            def.columns,
            vec![
                IndexColumn {
                    name: "title".into(),
                    collation: Some(Collation::NoCase),
                    order: Some(SortOrder::Desc)
                },
                IndexColumn {
                    name: "n".into(),
                    collation: None,
                    order: Some(SortOrder::Asc)
                },
                IndexColumn {
                    name: "bare".into(),
                    collation: None,
                    order: None
                },
            ]
        );
        assert_eq!(def.unique_columns(), None);
        assert_eq!(
            def.render(Dialect::Sqlite, "posts"),
            "CREATE INDEX \"idx_x\" ON \"posts\" (\"title\" COLLATE NOCASE DESC, \"n\" ASC, \"bare\")"
        );
    }

    #[test]
    fn conditions_keep_precedence_and_escape_literals() {
        let def = parse(
            "CREATE UNIQUE INDEX i ON t (a, b) WHERE a = 'it''s' OR b <> -1.5e3 AND c IS NOT NULL AND (d == TRUE OR e <= 0)",
        );
        assert_eq!(def.unique_columns(), Some(vec!["a", "b"]));
        assert_eq!(
            def.render(Dialect::Sqlite, "t"),
            "CREATE UNIQUE INDEX \"i\" ON \"t\" (\"a\", \"b\") WHERE \"a\" = 'it''s' OR ((\"b\" != -1.5e3 AND \"c\" IS NOT NULL) AND (\"d\" = TRUE OR \"e\" <= 0))"
        );
        assert_eq!(
            def.referenced_columns(),
            vec!["a", "b", "a", "b", "c", "d", "e"]
        );
        // The rendering parses back to the same definition.
        assert_eq!(
            IndexDef::parse(&def.render(Dialect::Sqlite, "t")).expect("reparses"),
            def
        );
    }

    #[test]
    fn postgres_renderings_keep_sqlite_meanings() {
        let def = parse(
            "CREATE UNIQUE INDEX idx_c ON t (a COLLATE NOCASE DESC, b COLLATE RTRIM, c COLLATE BINARY ASC, d) WHERE a IS NOT 'x' AND (b IS NULL OR c IS 3)",
        );
        assert_eq!(
            def.render(Dialect::Postgres, "posts"),
            "CREATE UNIQUE INDEX \"idx_c\" ON \"posts\" ((translate(\"a\", 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')) DESC, (rtrim(\"b\", ' ')), \"c\" COLLATE \"C\" ASC, \"d\") WHERE \"a\" IS DISTINCT FROM 'x' AND (\"b\" IS NULL OR \"c\" IS NOT DISTINCT FROM 3)"
        );
        assert_eq!(
            def.render(Dialect::Sqlite, "posts"),
            "CREATE UNIQUE INDEX \"idx_c\" ON \"posts\" (\"a\" COLLATE NOCASE DESC, \"b\" COLLATE RTRIM, \"c\" COLLATE BINARY ASC, \"d\") WHERE \"a\" IS NOT 'x' AND (\"b\" IS NULL OR \"c\" IS 3)"
        );
        assert_eq!(
            def.condition_sql(Dialect::Postgres).as_deref(),
            Some("\"a\" IS DISTINCT FROM 'x' AND (\"b\" IS NULL OR \"c\" IS NOT DISTINCT FROM 3)")
        );
        let email = parse("CREATE UNIQUE INDEX i ON users (email) WHERE email != ''");
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            assert_eq!(
                email.condition_sql(dialect).as_deref(),
                Some("\"email\" != ''")
            );
        }
        assert_eq!(
            parse("CREATE INDEX i ON t (a)").condition_sql(Dialect::Sqlite),
            None
        );
    }

    #[test]
    fn pocketbase_text_uses_backticks_whatever_the_engine() {
        let def = parse(
            "create unique index idx_c on old (title collate nocase desc, id) where title != 'it''s \"x\"' and \"we\"\"ird\" is null",
        );
        assert_eq!(
            def.to_pocketbase("posts2"),
            "CREATE UNIQUE INDEX `idx_c` ON `posts2` (\n  `title` COLLATE NOCASE DESC,\n  `id`\n) WHERE `title` != 'it''s \"x\"' AND `we\"ird` IS NULL"
        );
        assert_eq!(
            parse("CREATE INDEX i ON t (a)").to_pocketbase("t"),
            "CREATE INDEX `i` ON `t` (`a`)"
        );
        assert_eq!(
            IndexDef::parse(&def.to_pocketbase("posts2"))
                .expect("reparses")
                .columns,
            def.columns
        );
    }

    #[test]
    fn injection_attempts_are_rejected() {
        assert!(reject("CREATE INDEX i ON t (a); DROP TABLE t").contains("';'"));
        assert!(reject("CREATE INDEX i ON t (a) WHERE a = (SELECT 1)").contains("literal"));
        assert!(
            reject("CREATE INDEX i ON t (a) WHERE EXISTS (SELECT 1 FROM users)")
                .contains("only compares")
        );
        assert!(reject("CREATE INDEX i ON t (a) WHERE a IN ('x')").contains("comparison"));
        assert!(reject("CREATE INDEX i ON t (lower(a))").contains("expressions"));
        assert!(reject("CREATE INDEX i ON t (a) WHERE lower(a) = 'x'").contains("functions"));
        assert!(reject("CREATE INDEX i ON t (a) -- comment").contains("'-'"));
        assert!(reject("CREATE INDEX i ON t (a) /* x */").contains("'/'"));
        assert!(reject("CREATE INDEX `i; DROP` ON t (a)").contains("index name"));
        assert!(reject("CREATE INDEX main.i ON t (a)").contains("'.'"));
        assert!(reject("CREATE INDEX i ON t (a) WHERE a = 'x' || 'y'").contains("'|'"));
        assert!(reject("CREATE INDEX i ON t (a) WHERE a = b").contains("literal"));
        assert!(reject("CREATE INDEX i ON t (a COLLATE evil)").contains("COLLATE"));
        assert!(reject("CREATE INDEX i ON t (a) WHERE a = 'x").contains("unterminated"));
        assert!(reject("CREATE INDEX i ON t (a) extra").contains("after the definition"));
        assert!(reject("CREATE TABLE x (a)").contains("INDEX"));
        assert!(reject("CREATE INDEX i ON t ()").contains("column name"));
        assert!(reject("CREATE INDEX i ON t (a) WHERE a = 12abc").contains("number"));
        let deep = format!(
            "CREATE INDEX i ON t (a) WHERE {}a = 1{}",
            "(".repeat(100),
            ")".repeat(100)
        );
        assert!(reject(&deep).contains("deeply"));
    }

    #[test]
    fn unknown_columns_are_named() {
        let users = users_collection("");
        let error = parse("CREATE INDEX i ON users (email) WHERE nope = 1")
            .check_columns(&users)
            .expect_err("nope is not a field");
        assert!(error.to_string().contains("\"nope\""), "{error}");
        let posts = Collection::scaffold(CollectionType::Base, "posts");
        assert!(
            parse("CREATE INDEX i ON posts (ID)")
                .check_columns(&posts)
                .is_ok()
        );
    }
}
