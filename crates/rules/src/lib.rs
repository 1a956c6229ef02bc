//! PocketBase's filter and rule language: parsed once, checked against the schema, then
//! emitted as a parameterized SQL predicate per request (SQLite or PostgreSQL) or evaluated
//! in memory against one record.
//!
//! # Grammar
//!
//! ```text
//! expr     := item ( ("&&" | "||") item )*          && binds tighter than ||
//! item     := "(" expr ")" | operand SIGN operand
//! SIGN     := "=" | "!=" | ">" | ">=" | "<" | "<=" | "~" | "!~"
//!           | "?=" | "?!=" | "?>" | "?>=" | "?<" | "?<=" | "?~" | "?!~"
//! operand  := IDENT | NUMBER | TEXT | CALL
//! IDENT    := [A-Za-z_@#] [A-Za-z0-9_.:]*            a.b.c, name:modifier, @request.auth.id
//! NUMBER   := "-"? digits ("." digits)?              (.5, 5., 1e3, +5 are errors)
//! TEXT     := '…' | "…"                              \\ \' \" \n \r \t; other \x kept as is
//! CALL     := IDENT "(" [ arg ("," arg)* [","] ] ")"  no space before "("; nesting ≤ 3
//! arg      := IDENT | NUMBER | TEXT | CALL
//! comment  := "//" to end of line
//! ```
//!
//! Limits: 3500 bytes, 200 comparisons. Parentheses may nest arbitrarily deep (the parser
//! keeps its own stack). An empty filter means "no filter"; whitespace alone is an error.
//!
//! # Names
//!
//! - `field`, `rel.field` (≤ 6 hops), `coll_via_relField.field` (back-relation),
//!   `json.key.0` (json path), `geo.lon`/`geo.lat`.
//! - Modifiers: `:lower` anywhere; `:each`/`:length` on select, relation and file fields
//!   (ignored on other stored fields, as PocketBase does; an error on other body fields);
//!   `:isset` and `:changed` on `@request.body.*` (`:isset` also on query and headers).
//! - `@request.auth.*`, `@request.body.*`, `@request.query.*`, `@request.headers.*`,
//!   `@request.method`, `@request.context`, `@collection.name[:alias].field`.
//! - Macros: `@now @yesterday @tomorrow @todayStart @todayEnd @monthStart @monthEnd
//!   @yearStart @yearEnd` (datetime text) and `@second @minute @hour @day @month @weekday
//!   @year` (integers), all UTC.
//! - Functions: `geoDistance(lonA, latA, lonB, latB)` (km), `strftime(format[, time,
//!   modifiers…])`.
//! - `null`, `true`, `false` (any case) are NULL, 1, 0 unless a field has that name.
//!
//! # Use
//!
//! Compile once per schema version and cache (everything compiled is `Send + Sync`, cheap to
//! clone, and holds the schema snapshot it was checked against):
//! [`CollectionRules::compile`] / [`Rule::compile`] for API rules, [`compile_filter`] for a
//! client `filter`, [`compile_sort`] for a client `sort`. Per request, build one
//! [`RequestContext`] and call [`Rule::outcome`] / [`Compiled::to_sql`] (a predicate for
//! `SELECT … FROM "<collection>" WHERE …`, every value bound) or [`Compiled::eval`] /
//! [`Rule::check_record`] (in memory, for realtime and create checks; [`Eval::NeedsSql`] when
//! the expression reads other rows). Refusals carry [`Error::status`] (400, or 403 for
//! `@request`/`@collection` in a non-superuser's filter) and [`Error::api_message`].
//!
//! SQLite needs the math functions (`acos`, `cos`, `sin`, `radians`) for `geoDistance`; the
//! bundled SQLite of rusqlite is built without them, so the store must register them (or
//! build SQLite with `SQLITE_ENABLE_MATH_FUNCTIONS`).

pub mod ast;
mod check;
mod context;
mod emit;
pub mod error;
mod eval;
pub mod lexer;
pub mod parser;
mod value;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use domain::{AuthContext, Collection, Dialect, Record, Schema, SqlFragment};

pub use ast::Span;
pub use check::{MAX_HOPS, Mode};
pub use context::{HeaderSource, Headers, RequestContext, contexts, normalize_header_name};
pub use error::{Error, ErrorKind, GENERIC_400};
pub use eval::Eval;
pub use parser::{MAX_EXPRESSIONS, MAX_LEN};

use check::{JoinKind, Program, Source, Val};
use domain::SortTerm;

/// A checked filter or rule expression. Cheap to clone and to share between threads; keep it
/// for as long as the schema it was compiled against is current.
#[derive(Debug, Clone)]
pub struct Compiled {
    program: Arc<Program>,
    row_local: bool,
}

impl Compiled {
    /// Parses and checks `text` for `collection`. `text` must not be empty (callers decide
    /// what an empty filter or rule means).
    pub fn compile(
        schema: &Arc<Schema>,
        collection: &Arc<Collection>,
        text: &str,
        mode: Mode,
    ) -> Result<Compiled, Error> {
        let expr = parser::parse(text)?;
        let program = check::check(schema, collection, &expr, mode)?;
        let row_local = program_is_row_local(&program);
        Ok(Compiled {
            program: Arc::new(program),
            row_local,
        })
    }

    /// The predicate for this request, with the main table referred to as
    /// `"<collection name>"`. Values (including everything from `ctx`) are bound parameters.
    pub fn to_sql(&self, dialect: Dialect, ctx: &RequestContext) -> SqlFragment {
        emit::emit(&self.program, dialect, ctx)
    }

    /// Evaluates the expression against `record` (a record of this collection) in memory.
    pub fn eval(&self, record: &Record, ctx: &RequestContext) -> Eval {
        eval::eval(&self.program, record, ctx)
    }

    /// Whether the expression reads only the record itself (no relations, back-relations,
    /// `@collection`, `strftime` or relation hops of `@request.auth`), so [`Compiled::eval`]
    /// answers without SQL, except for a JSON value read as text that PostgreSQL would write
    /// differently (an object with several keys, a number like `1e20` inside a structure) or
    /// text with a four-digit exponent read as a number: those are left to the database.
    pub fn is_row_local(&self) -> bool {
        self.row_local
    }

    /// Whether the expression reads through joins: relation paths, back-relations,
    /// `@collection`, `:each` over a multi-valued field or a request value. PocketBase
    /// queries such a list with `SELECT DISTINCT` over its joins. Relation hops of
    /// `@request.auth` are not among them (they are resolved per request, and PocketBase's
    /// lists under such a rule keep their plan's order: observed on 0.40.6).
    pub fn reads_through_joins(&self) -> bool {
        !self.program.joins.is_empty()
    }

    /// The collection the expression was compiled for.
    pub fn collection(&self) -> &Arc<Collection> {
        &self.program.root
    }
}

/// Compiles a client `filter` query parameter for `auth`. `Ok(None)` for an empty filter.
/// Errors map to the API with [`Error::status`] and [`Error::api_message`].
pub fn compile_filter(
    schema: &Arc<Schema>,
    collection: &Arc<Collection>,
    filter: &str,
    auth: &AuthContext,
) -> Result<Option<Compiled>, Error> {
    if filter.is_empty() {
        return Ok(None);
    }
    let mode = if auth.is_superuser() {
        Mode::SuperuserFilter
    } else {
        // PocketBase refuses these by a plain substring test, even inside quoted text.
        if filter.contains("@collection.") {
            return Err(Error::new(
                ErrorKind::ForbiddenCollection,
                "only superusers can filter by @collection",
                None,
            ));
        }
        if filter.contains("@request.") {
            return Err(Error::new(
                ErrorKind::ForbiddenRequest,
                "only superusers can filter by @request",
                None,
            ));
        }
        Mode::Filter
    };
    Compiled::compile(schema, collection, filter, mode).map(Some)
}

/// The most terms a `sort` parameter may have, and the longest term.
pub const MAX_SORT_TERMS: usize = 8;
pub const MAX_SORT_TERM_LEN: usize = 255;

/// A compiled `sort` query parameter.
#[derive(Debug, Clone, Default)]
pub struct CompiledSort {
    terms: Vec<SortItem>,
}

#[derive(Debug, Clone)]
struct SortItem {
    kind: SortKind,
    descending: bool,
}

#[derive(Debug, Clone)]
enum SortKind {
    Random,
    RowId {
        table: String,
    },
    Field {
        program: Arc<Program>,
        value: Val,
        /// Rows whose hidden email must not order them (see `check::check_sort`).
        email_guards: Vec<check::Source>,
    },
}

/// A sort for one request: ORDER BY terms, and filters to AND into the query (sorting
/// through a relation hides rows whose related record the caller may not list, as in
/// PocketBase).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SortSql {
    pub terms: Vec<SortTerm>,
    pub filters: Vec<SqlFragment>,
}

/// Compiles a client `sort` parameter (`-created,title:lower,author.name,@random`). Fields
/// resolve as in filters (relations, back-relations, json paths, `:lower`); hidden fields and
/// `@request`/`@collection` are refused for non-superusers.
pub fn compile_sort(
    schema: &Arc<Schema>,
    collection: &Arc<Collection>,
    sort: &str,
    auth: &AuthContext,
) -> Result<CompiledSort, Error> {
    if sort.is_empty() {
        return Ok(CompiledSort::default());
    }
    let mode = if auth.is_superuser() {
        Mode::SuperuserFilter
    } else {
        if sort.contains("@collection.") {
            return Err(Error::new(
                ErrorKind::ForbiddenCollection,
                "only superusers can sort by @collection",
                None,
            ));
        }
        if sort.contains("@request.") {
            return Err(Error::new(
                ErrorKind::ForbiddenRequest,
                "only superusers can sort by @request",
                None,
            ));
        }
        Mode::Filter
    };
    let terms: Vec<&str> = sort.split(',').map(str::trim).collect();
    if terms.len() > MAX_SORT_TERMS {
        return Err(Error::new(
            ErrorKind::Limit,
            format!("more than {MAX_SORT_TERMS} sort terms"),
            None,
        ));
    }
    let mut items = Vec::with_capacity(terms.len());
    for term in terms {
        if term.is_empty() || term.len() > MAX_SORT_TERM_LEN {
            return Err(Error::new(ErrorKind::Syntax, "invalid sort term", None));
        }
        let (name, descending) = match term.strip_prefix('-') {
            Some(rest) => (rest, true),
            None => (term.strip_prefix('+').unwrap_or(term), false),
        };
        let kind = match name {
            "@random" => SortKind::Random,
            "@rowid" if collection.is_view() => {
                return Err(Error::new(
                    ErrorKind::UnknownField,
                    "views have no row ids",
                    None,
                ));
            }
            "@rowid" => SortKind::RowId {
                table: collection.name.clone(),
            },
            _ => {
                let (program, value, email_guards) =
                    check::check_sort(schema, collection, name, mode)?;
                SortKind::Field {
                    program: Arc::new(program),
                    value,
                    email_guards,
                }
            }
        };
        items.push(SortItem { kind, descending });
    }
    Ok(CompiledSort { terms: items })
}

impl CompiledSort {
    /// ORDER BY terms (and the filters that come with relation paths) for this request.
    pub fn to_sql(&self, dialect: Dialect, ctx: &RequestContext) -> SortSql {
        let mut out = SortSql::default();
        for item in &self.terms {
            let expr = match &item.kind {
                SortKind::Random => SqlFragment::raw(match dialect {
                    Dialect::Sqlite => "RANDOM()",
                    Dialect::Postgres => "random()",
                }),
                SortKind::RowId { table } => match dialect {
                    Dialect::Sqlite => SqlFragment::column(table, "_rowid_"),
                    // The store's insertion-order column (a row's ctid moves when it changes).
                    Dialect::Postgres => SqlFragment::column(table, "_rowid"),
                },
                SortKind::Field {
                    program,
                    value,
                    email_guards,
                } => {
                    let (expr, filter) =
                        emit::emit_sort(program, value, email_guards, dialect, ctx);
                    out.filters.extend(filter);
                    expr
                }
            };
            out.terms.push(SortTerm {
                expr,
                descending: item.descending,
            });
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }
}

/// One collection API rule.
#[derive(Debug, Clone)]
pub enum Rule {
    /// `null`: superusers only.
    SuperusersOnly,
    /// `""`: everyone.
    Public,
    /// An expression the row must satisfy.
    Expr(Compiled),
}

impl Rule {
    /// Compiles a stored rule (`None` = superusers only, empty = public). The error's
    /// message suits PocketBase's `validation_invalid_rule` ("Invalid rule. Raw error: …").
    pub fn compile(
        schema: &Arc<Schema>,
        collection: &Arc<Collection>,
        rule: Option<&str>,
    ) -> Result<Rule, Error> {
        match rule {
            None => Ok(Rule::SuperusersOnly),
            Some(text) if text.trim().is_empty() => Ok(Rule::Public),
            Some(text) => Compiled::compile(schema, collection, text, Mode::Rule).map(Rule::Expr),
        }
    }

    /// What the rule means for this request. Superusers bypass every rule.
    pub fn outcome(&self, dialect: Dialect, ctx: &RequestContext) -> RuleOutcome {
        if ctx.auth.is_superuser() {
            return RuleOutcome::Allow;
        }
        match self {
            Rule::SuperusersOnly => RuleOutcome::SuperusersOnly,
            Rule::Public => RuleOutcome::Allow,
            Rule::Expr(compiled) => RuleOutcome::Filter(compiled.to_sql(dialect, ctx)),
        }
    }

    /// Whether `record` passes the rule for this request, decided in memory when possible.
    pub fn check_record(&self, record: &Record, ctx: &RequestContext) -> Eval {
        if ctx.auth.is_superuser() {
            return Eval::Match;
        }
        match self {
            Rule::SuperusersOnly => Eval::NoMatch,
            Rule::Public => Eval::Match,
            Rule::Expr(compiled) => compiled.eval(record, ctx),
        }
    }
}

/// Every API rule of a collection, compiled once per schema version.
#[derive(Debug, Clone)]
pub struct CollectionRules {
    pub list: Rule,
    pub view: Rule,
    pub create: Rule,
    pub update: Rule,
    pub delete: Rule,
    /// Auth collections only.
    pub auth: Option<Rule>,
    /// Auth collections only.
    pub manage: Option<Rule>,
}

impl CollectionRules {
    pub fn compile(schema: &Arc<Schema>, collection: &Arc<Collection>) -> Result<Self, Error> {
        let rule = |text: &Option<String>| Rule::compile(schema, collection, text.as_deref());
        let auth_options = collection.auth.as_ref();
        Ok(CollectionRules {
            list: rule(&collection.list_rule)?,
            view: rule(&collection.view_rule)?,
            create: rule(&collection.create_rule)?,
            update: rule(&collection.update_rule)?,
            delete: rule(&collection.delete_rule)?,
            auth: auth_options.map(|a| rule(&a.auth_rule)).transpose()?,
            manage: auth_options.map(|a| rule(&a.manage_rule)).transpose()?,
        })
    }
}

/// What a collection rule means for one caller.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleOutcome {
    /// `null` rule and the caller is not a superuser: 403.
    SuperusersOnly,
    /// No restriction: a superuser, or the rule is `""`.
    Allow,
    /// Rows must satisfy this predicate (AND-ed into the query, or checked on the row).
    Filter(SqlFragment),
}

fn program_is_row_local(program: &Program) -> bool {
    let joins_local = program.joins.iter().all(|join| match &join.kind {
        JoinKind::Each { .. } => join.parent == Source::Root,
        JoinKind::BoundEach { .. } => true,
        _ => false,
    });
    joins_local && program.guards.is_empty() && node_is_local(&program.expr)
}

fn node_is_local(node: &check::Node) -> bool {
    match node {
        check::Node::And(items) | check::Node::Or(items) => items.iter().all(node_is_local),
        check::Node::Cmp(cmp) => val_is_local(&cmp.left) && val_is_local(&cmp.right),
    }
}

fn val_is_local(val: &Val) -> bool {
    match val {
        Val::Strftime { .. } => false,
        Val::Auth(path) => path.segments.len() == 1,
        Val::Lower(inner) => val_is_local(inner),
        Val::GeoDistance(args) => args.iter().all(val_is_local),
        _ => true,
    }
}
