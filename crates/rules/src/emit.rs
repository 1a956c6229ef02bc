//! Compiles a checked program into a SQL predicate for one request. Dialect differences live
//! here, each construct in one function with a `match dialect` holding both arms; statements
//! (SELECT, INSERT) belong to the stores.
//!
//! The predicate refers to the main table by its quoted collection name (`"posts"."title"`),
//! the store's convention for `SELECT … FROM "posts" WHERE <predicate>`. Every user-supplied
//! text is a bound `?` value; identifiers come from the schema through `quote_ident`.
//!
//! PocketBase evaluates a filter over `main LEFT JOIN <every related row>` and keeps a main
//! row when any joined combination satisfies the whole expression. Without joins in the
//! store's statement, that becomes `EXISTS (SELECT 1 FROM (SELECT 1) LEFT JOIN … WHERE expr)`
//! correlated to the main row; expressions without relations stay plain. Plain operators on
//! multi-valued operands add PocketBase's "every item" check: `NOT EXISTS` an item (over a
//! fresh copy of the joins) for which the comparison fails.
//!
//! Column conventions assumed (the store creates tables this way):
//! - SQLite (PocketBase's DDL): text-like `TEXT`, number `NUMERIC`, bool `BOOLEAN` (0/1), json
//!   and geoPoint `JSON` text or NULL, multiple select/relation/file `JSON` array text.
//! - PostgreSQL: text-like `TEXT COLLATE "C"`, number `DOUBLE PRECISION`, bool `BOOLEAN`, json,
//!   geoPoint and multi-valued fields `JSONB`. Comparisons, `~` and `:lower` are written from
//!   what SQLite would hold for each operand, so they answer as SQLite does (`pg_value`; held to
//!   the evaluator by `tests/prop_pg.rs`). `strftime` maps the common `%` codes to `to_char`
//!   and ignores modifiers (the evaluator defers it to SQL on both engines).

mod pg_value;

use std::collections::BTreeSet;

use domain::sql::quote_ident;
use domain::{Dialect, SqlFragment, SqlValue};

use crate::ast::OpKind;
use crate::check::{
    Cmp, ColType, Column, JoinDef, JoinId, JoinKind, Node, PathSeg, Program, Runtime, Source, Val,
    instantiate, json_at, json_scalar, multi_items, runtime_array_text, runtime_json,
    runtime_value, val_is_multi,
};
use crate::context::RequestContext;
use crate::value::{
    Affinity, Class, EqShape, SqlVal, bound_like_pattern, eq_shape, lower, value_class,
};
use pg_value::{NumText, PgOp, PgOperand, PgVal};

/// Emits `program` for the main table `"<collection name>"`.
pub(crate) fn emit(program: &Program, dialect: Dialect, ctx: &RequestContext) -> SqlFragment {
    let mut state = State {
        dialect,
        ctx,
        scopes: 0,
        ordinal: false,
    };
    state.program(program, &quote_ident(&program.root.name))
}

/// An ORDER BY expression for a resolved sort value, and the row filter PocketBase applies
/// alongside it (the list rules of the collections a relation path passes through). The
/// value is NULL on rows named by `email_guards` whose `emailVisibility` is off, so that a
/// hidden address orders nothing (PocketBase sorts by it; see compat/KNOWN_DIFFERENCES.md).
pub(crate) fn emit_sort(
    program: &Program,
    value: &Val,
    email_guards: &[Source],
    dialect: Dialect,
    ctx: &RequestContext,
) -> (SqlFragment, Option<SqlFragment>) {
    let mut state = State {
        dialect,
        ctx,
        scopes: 0,
        ordinal: true,
    };
    let root_ref = quote_ident(&program.root.name);
    let scope = state.new_scope();
    let mut emitter = ProgramEmitter {
        state: &mut state,
        joins: &program.joins,
        root_ref: &root_ref,
        scope,
    };
    let mut scope = std::mem::replace(&mut emitter.scope, empty_scope());
    let emitted = emitter.val(value, &mut scope);
    // A JSON value sorts by a key that orders it as SQLite does (see `pg_order_key`), when it
    // is the row's own (an aggregate over related rows has no order for a key).
    let json_key = dialect == Dialect::Postgres
        && emitted.ty == Ty::Json
        && email_guards.is_empty()
        && scope.used.is_empty();
    let mut expr = if json_key {
        pg_order_key(emitted)
    } else {
        render(dialect, emitted)
    };
    if !email_guards.is_empty() {
        let visible: Vec<String> = email_guards
            .iter()
            .map(|guard| {
                format!(
                    "{}.\"emailVisibility\" = {}",
                    emitter.source_ref(*guard, &mut scope),
                    emitter.state.true_sql()
                )
            })
            .collect();
        let mut masked = SqlFragment::raw(format!("(CASE WHEN {} THEN ", visible.join(" AND ")));
        masked.push_fragment(expr).push_sql(" END)");
        expr = masked;
    }
    emitter.scope = scope;
    if emitter.scope.used.is_empty() {
        return (expr, None);
    }
    let mut guards = Vec::new();
    for (join, guard) in &program.guards {
        if emitter.scope.used.contains(join) {
            let alias = emitter.scope.alias(*join);
            let inner = emitter.state.program(guard, &alias);
            let mut part = SqlFragment::raw(format!(
                "(({alias}.\"id\" = '' OR {alias}.\"id\" IS NULL) OR ("
            ));
            part.push_fragment(inner).push_sql("))");
            guards.push(part);
        }
    }
    let from = emitter.main_sources();
    let condition = SqlFragment::and_all(guards);
    // Several related rows: the value of the first, in the order the joins produce them (a
    // relation list's order, a back-relation's or collection's insertion order), whichever
    // the direction, as PocketBase's join ends up doing (observed on 0.40.6: a record whose
    // relation list is [C, A] sorts by C, ascending and descending).
    let order = emitter.first_row_order();
    let mut sort = SqlFragment::raw("(SELECT ");
    sort.push_fragment(expr).push_sql(" FROM ");
    sort.push_fragment(from.clone());
    if let Some(condition) = &condition {
        sort.push_sql(" WHERE ").push_fragment(condition.clone());
    }
    if !order.is_empty() {
        sort.push_sql(" ORDER BY ").push_sql(&order.join(", "));
    }
    sort.push_sql(" LIMIT 1)");
    let filter = condition.map(|condition| {
        let mut filter = SqlFragment::raw("EXISTS (SELECT 1 FROM ");
        filter.push_fragment(from).push_sql(" WHERE ");
        filter.push_fragment(condition).push_sql(")");
        filter
    });
    (sort, filter)
}

struct State<'c> {
    dialect: Dialect,
    ctx: &'c RequestContext,
    /// Counter for unique alias prefixes across nested subqueries.
    scopes: usize,
    /// List items carry their position as `"key"` (SQLite's `json_each` always does;
    /// PostgreSQL's only `WITH ORDINALITY`, asked for where a sort needs it).
    ordinal: bool,
}

/// The joins one `FROM` list uses, and the alias prefix of that list.
struct Scope {
    prefix: String,
    used: BTreeSet<JoinId>,
}

impl Scope {
    fn alias(&self, id: JoinId) -> String {
        quote_ident(&format!("{}{id}", self.prefix))
    }

    fn alias_of(&self, id: JoinId, suffix: &str) -> String {
        quote_ident(&format!("{}{id}{suffix}", self.prefix))
    }

    fn dummy(&self) -> String {
        quote_ident(&format!("{}r", self.prefix))
    }
}

/// PostgreSQL's view of an operand's type, for explicit casts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Text,
    Num,
    Bool,
    Json,
    Unknown,
}

/// An operand ready to be compared.
#[derive(Debug, Clone)]
enum Form {
    /// A bound value (the `~` pattern wrapping applies to it).
    Value(SqlVal),
    /// `LOWER(?)` of a bound value.
    LowerValue(SqlVal),
    /// Any other SQL expression.
    Sql(SqlFragment),
}

#[derive(Debug, Clone)]
struct Emitted {
    form: Form,
    class: Class,
    /// A JSON operand: `=` is emitted as `IS`, without coalescing.
    json: bool,
    ty: Ty,
    /// SQLite's affinity of the operand (a column's; expressions have none).
    aff: Affinity,
    /// How SQLite writes a number of this operand as text.
    num_text: NumText,
}

impl Emitted {
    fn sql(sql: SqlFragment, class: Class, ty: Ty) -> Self {
        Emitted {
            form: Form::Sql(sql),
            class,
            json: false,
            ty,
            aff: Affinity::None,
            num_text: NumText::Real,
        }
    }

    fn raw(sql: &str, class: Class, ty: Ty) -> Self {
        Emitted::sql(SqlFragment::raw(sql), class, ty)
    }

    fn value(value: SqlVal) -> Self {
        let ty = match value {
            SqlVal::Null => Ty::Unknown,
            SqlVal::Int(_) | SqlVal::Real(_) => Ty::Num,
            SqlVal::Text(_) => Ty::Text,
        };
        Emitted {
            class: value_class(&value),
            form: Form::Value(value),
            json: false,
            ty,
            aff: Affinity::None,
            num_text: NumText::Real,
        }
    }
}

impl State<'_> {
    /// A whole program with its main row named `root_ref`.
    fn program(&mut self, program: &Program, root_ref: &str) -> SqlFragment {
        let (node, joins) = instantiate(program, self.ctx);
        let scope = self.new_scope();
        let mut emitter = ProgramEmitter {
            state: self,
            joins: &joins,
            root_ref,
            scope,
        };
        let body = emitter.node(&node);
        if emitter.scope.used.is_empty() {
            return body;
        }
        let mut guards = Vec::new();
        for (join, guard) in &program.guards {
            if emitter.scope.used.contains(join) {
                let alias = emitter.scope.alias(*join);
                let inner = emitter.state.program(guard, &alias);
                let mut part = SqlFragment::raw(format!(
                    "(({alias}.\"id\" = '' OR {alias}.\"id\" IS NULL) OR ("
                ));
                part.push_fragment(inner).push_sql("))");
                guards.push(part);
            }
        }
        let from = emitter.main_sources();
        let mut out = SqlFragment::raw("EXISTS (SELECT 1 FROM ");
        out.push_fragment(from).push_sql(" WHERE (");
        out.push_fragment(body).push_sql(")");
        for guard in guards {
            out.push_sql(" AND ").push_fragment(guard);
        }
        out.push_sql(")");
        out
    }

    fn new_scope(&mut self) -> Scope {
        let prefix = format!("__s{}j", self.scopes);
        self.scopes += 1;
        Scope {
            prefix,
            used: BTreeSet::new(),
        }
    }

    fn true_sql(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "1",
            Dialect::Postgres => "TRUE",
        }
    }

    fn false_sql(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "0",
            Dialect::Postgres => "FALSE",
        }
    }
}

struct ProgramEmitter<'s, 'c, 'p> {
    state: &'s mut State<'c>,
    joins: &'p [JoinDef],
    root_ref: &'p str,
    scope: Scope,
}

impl ProgramEmitter<'_, '_, '_> {
    fn dialect(&self) -> Dialect {
        self.state.dialect
    }

    fn node(&mut self, node: &Node) -> SqlFragment {
        match node {
            Node::And(items) | Node::Or(items) => {
                let joiner = if matches!(node, Node::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                let mut out = SqlFragment::raw("(");
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_sql(joiner);
                    }
                    let part = self.node(item);
                    out.push_fragment(part);
                }
                out.push_sql(")");
                out
            }
            Node::Cmp(cmp) => self.comparison(cmp),
        }
    }

    fn comparison(&mut self, cmp: &Cmp) -> SqlFragment {
        let mut scope = std::mem::replace(&mut self.scope, empty_scope());
        let left = self.val(&cmp.left, &mut scope);
        let right = self.val(&cmp.right, &mut scope);
        let mut out = self.compare(left, cmp.op, right);
        let multi = !cmp.any
            && (val_is_multi(&cmp.left, self.joins) || val_is_multi(&cmp.right, self.joins));
        if multi {
            let every = self.every_item(cmp, &mut scope);
            let mut both = SqlFragment::raw("((");
            both.push_fragment(out).push_sql(") AND (");
            both.push_fragment(every).push_sql("))");
            out = both;
        }
        for guard in &cmp.email_guards {
            let source = self.source_ref(*guard, &mut scope);
            let mut guarded = SqlFragment::raw("((");
            guarded.push_fragment(out);
            guarded.push_sql(&format!(
                ") AND {source}.\"emailVisibility\" = {})",
                self.state.true_sql()
            ));
            out = guarded;
        }
        self.scope = scope;
        out
    }

    /// `NOT EXISTS` an item of the multi-valued operand(s) for which the comparison fails.
    /// Each multi-valued side gets its own copy of its joins, so that both sides range over
    /// all their items independently (`a:each = a:each` compares every pair).
    fn every_item(&mut self, cmp: &Cmp, outer: &mut Scope) -> SqlFragment {
        let mut left_scope = self.state.new_scope();
        let mut right_scope = self.state.new_scope();
        let left = if val_is_multi(&cmp.left, self.joins) {
            self.val(&cmp.left, &mut left_scope)
        } else {
            self.val(&cmp.left, outer)
        };
        let right = if val_is_multi(&cmp.right, self.joins) {
            self.val(&cmp.right, &mut right_scope)
        } else {
            self.val(&cmp.right, outer)
        };
        let condition = self.compare(left, cmp.op, right);
        let mut from = self.sources_of(&left_scope);
        let right_joins = self.joins_of(&right_scope);
        from.push_fragment(right_joins);
        let mut out = SqlFragment::raw("NOT EXISTS (SELECT 1 FROM ");
        out.push_fragment(from).push_sql(" WHERE NOT (");
        out.push_fragment(condition).push_sql("))");
        out
    }

    /// `(SELECT 1) AS r LEFT JOIN …` for the main scope.
    fn main_sources(&mut self) -> SqlFragment {
        let scope = std::mem::replace(&mut self.scope, empty_scope());
        let out = self.sources_of(&scope);
        self.scope = scope;
        out
    }

    /// The keys that order the rows of the main scope's joins as they are produced: a list's
    /// item position, a table's insertion order (rowid). Joins of one row add none.
    fn first_row_order(&self) -> Vec<String> {
        let scope = &self.scope;
        let rowid = match self.dialect() {
            Dialect::Sqlite => "_rowid_",
            Dialect::Postgres => "\"_rowid\"",
        };
        let mut keys = Vec::new();
        for &id in &scope.used {
            let Some(join) = self.joins.get(id) else {
                continue;
            };
            match &join.kind {
                JoinKind::Relation { multiple: true, .. }
                | JoinKind::BoundRelation { multiple: true, .. } => {
                    keys.push(format!("{}.\"key\"", scope.alias_of(id, "e")));
                }
                JoinKind::Each { .. } | JoinKind::BoundEach { .. } => {
                    keys.push(format!("{}.\"key\"", scope.alias(id)));
                }
                JoinKind::BackRelation { target, .. } | JoinKind::Collection { target }
                    if !target.is_view() =>
                {
                    keys.push(format!("{}.{rowid}", scope.alias(id)));
                }
                _ => {}
            }
        }
        keys
    }

    fn sources_of(&mut self, scope: &Scope) -> SqlFragment {
        let mut out = SqlFragment::raw(format!("(SELECT 1) AS {}", scope.dummy()));
        let joins = self.joins_of(scope);
        out.push_fragment(joins);
        out
    }

    /// ` LEFT JOIN …` for every join `scope` uses, parents first.
    fn joins_of(&mut self, scope: &Scope) -> SqlFragment {
        let mut out = SqlFragment::default();
        for &id in &scope.used {
            let Some(join) = self.joins.get(id) else {
                continue;
            };
            let part = self.join_sql(id, join, scope);
            out.push_sql(" ").push_fragment(part);
        }
        out
    }

    fn parent_ref(&self, parent: Source, scope: &Scope) -> String {
        match parent {
            Source::Root => self.root_ref.to_owned(),
            Source::Join(id) => scope.alias(id),
        }
    }

    /// One join of a `FROM` list.
    fn join_sql(&mut self, id: JoinId, join: &JoinDef, scope: &Scope) -> SqlFragment {
        let alias = scope.alias(id);
        let items = scope.alias_of(id, "e");
        let parent = self.parent_ref(join.parent, scope);
        let dialect = self.dialect();
        match &join.kind {
            JoinKind::Relation {
                field,
                target,
                multiple,
            } => {
                let table = quote_ident(&target.name);
                let column = format!("{parent}.{}", quote_ident(field));
                if *multiple {
                    let ordinal = self.state.ordinal;
                    let mut out = each_sql(dialect, &column, ColType::Multi, &items, ordinal);
                    out.push_sql(&format!(
                        " LEFT JOIN {table} AS {alias} ON {alias}.\"id\" = {items}.\"value\""
                    ));
                    out
                } else {
                    SqlFragment::raw(format!(
                        "LEFT JOIN {table} AS {alias} ON {alias}.\"id\" = {column}"
                    ))
                }
            }
            JoinKind::BackRelation {
                field,
                target,
                field_multiple,
                ..
            } => {
                let table = quote_ident(&target.name);
                let column = format!("{alias}.{}", quote_ident(field));
                if !*field_multiple {
                    return SqlFragment::raw(format!(
                        "LEFT JOIN {table} AS {alias} ON {column} = {parent}.\"id\""
                    ));
                }
                match dialect {
                    Dialect::Sqlite => SqlFragment::raw(format!(
                        "LEFT JOIN {table} AS {alias} ON {parent}.\"id\" IN (SELECT \"value\" FROM json_each({}))",
                        array_sqlite(&column)
                    )),
                    Dialect::Postgres => SqlFragment::raw(format!(
                        "LEFT JOIN {table} AS {alias} ON {column} @> jsonb_build_array({parent}.\"id\")"
                    )),
                }
            }
            JoinKind::Collection { target } => {
                let table = quote_ident(&target.name);
                match dialect {
                    Dialect::Sqlite => {
                        SqlFragment::raw(format!("LEFT JOIN {table} AS {alias} ON 1"))
                    }
                    Dialect::Postgres => {
                        SqlFragment::raw(format!("LEFT JOIN {table} AS {alias} ON TRUE"))
                    }
                }
            }
            JoinKind::Each { field, ty } => {
                let column = format!("{parent}.{}", quote_ident(field));
                each_sql(dialect, &column, *ty, &alias, self.state.ordinal)
            }
            JoinKind::BoundRelation {
                value,
                target,
                multiple,
            } => {
                let table = quote_ident(&target.name);
                if *multiple {
                    let mut out = bound_each_sql(
                        dialect,
                        runtime_array_text(value, self.state.ctx),
                        &items,
                        false,
                        self.state.ordinal,
                    );
                    out.push_sql(&format!(
                        " LEFT JOIN {table} AS {alias} ON {alias}.\"id\" = {items}.\"value\""
                    ));
                    out
                } else {
                    let id_value = match runtime_json(value, self.state.ctx) {
                        Some(serde_json::Value::String(s)) => SqlVal::Text(s.clone()),
                        _ => runtime_value(value, self.state.ctx),
                    };
                    let mut out = SqlFragment::raw(format!(
                        "LEFT JOIN {table} AS {alias} ON {alias}.\"id\" = "
                    ));
                    out.push_fragment(render_value(dialect, &id_value));
                    out
                }
            }
            JoinKind::BoundEach { value } => bound_each_sql(
                dialect,
                runtime_array_text(value, self.state.ctx),
                &alias,
                true,
                self.state.ordinal,
            ),
        }
    }

    /// Marks `src` (and its ancestors) as used in `scope` and returns its SQL name.
    fn source_ref(&mut self, src: Source, scope: &mut Scope) -> String {
        match src {
            Source::Root => self.root_ref.to_owned(),
            Source::Join(id) => {
                let mut current = Some(id);
                while let Some(join_id) = current {
                    if !scope.used.insert(join_id) {
                        break;
                    }
                    current = match self.joins.get(join_id).map(|j| j.parent) {
                        Some(Source::Join(parent)) => Some(parent),
                        _ => None,
                    };
                }
                scope.alias(id)
            }
        }
    }

    fn column_sql(&mut self, column: &Column, scope: &mut Scope) -> String {
        format!(
            "{}.{}",
            self.source_ref(column.src, scope),
            quote_ident(&column.name)
        )
    }

    fn val(&mut self, val: &Val, scope: &mut Scope) -> Emitted {
        let dialect = self.dialect();
        let ctx = self.state.ctx;
        match val {
            Val::Null => Emitted::raw("NULL", Class::Empty, Ty::Unknown),
            Val::Flag(true) => Emitted::raw(self.state.true_sql(), Class::NonEmpty, Ty::Bool),
            Val::Flag(false) => Emitted::raw(self.state.false_sql(), Class::NonEmpty, Ty::Bool),
            Val::Number(n) => Emitted::value(SqlVal::Real(*n)),
            Val::Text(t) => Emitted::value(SqlVal::Text(t.clone())),
            Val::Macro(m) => Emitted::value(m.value(ctx)),
            Val::Runtime(runtime) => Emitted::value(runtime_value(runtime, ctx)),
            Val::RuntimePath(runtime, path) => {
                let value = runtime_json(runtime, ctx).and_then(|v| json_at(v, path));
                let mut out = Emitted::value(json_scalar(value));
                out.json = true;
                out
            }
            Val::RuntimeLength(runtime) => {
                let n = multi_items(runtime_json(runtime, ctx)).len();
                Emitted::value(SqlVal::Int(n as i64))
            }
            Val::Isset(runtime) => {
                let set = match runtime {
                    Runtime::Header(name) => ctx.headers.contains_key(name),
                    Runtime::Query(name) => ctx.query.contains_key(name),
                    Runtime::Body { key, .. } => {
                        ctx.body.as_ref().is_some_and(|b| b.contains_key(key))
                    }
                    _ => true,
                };
                let sql = if set {
                    self.state.true_sql()
                } else {
                    self.state.false_sql()
                };
                Emitted::raw(sql, Class::NonEmpty, Ty::Bool)
            }
            Val::Changed { key, column } => {
                let submitted = ctx.body.as_ref().and_then(|b| b.get(key));
                let mut out = match submitted {
                    None => Emitted::raw(self.state.false_sql(), Class::Column, Ty::Bool),
                    Some(_) => {
                        let value = runtime_value(
                            &Runtime::Body {
                                key: key.clone(),
                                ty: Some(column.ty),
                            },
                            ctx,
                        );
                        let column_sql = self.column_sql(column, scope);
                        let sql = match dialect {
                            Dialect::Sqlite => {
                                let mut sql = SqlFragment::raw("(");
                                sql.push_fragment(render(dialect, Emitted::value(value)));
                                sql.push_sql(" IS NOT ").push_sql(&column_sql);
                                sql.push_sql(")");
                                sql
                            }
                            Dialect::Postgres => pg_value::compare(
                                PgOperand {
                                    val: PgVal::Bound(value),
                                    aff: Affinity::None,
                                },
                                PgOp::Distinct,
                                pg_stored_column(&column_sql, column.ty),
                            ),
                        };
                        Emitted::sql(sql, Class::Column, Ty::Bool)
                    }
                };
                out.json = true;
                out
            }
            Val::Column(column) => {
                let sql = self.column_sql(column, scope);
                let mut out = Emitted::raw(&sql, Class::Column, col_ty(column.ty));
                out.aff = match column.ty {
                    ColType::Text => Affinity::Text,
                    _ => Affinity::Numeric,
                };
                out.num_text = NumText::Stored;
                out
            }
            Val::Json { column, path } => {
                let sql = self.column_sql(column, scope);
                // SQLite reads a whole geoPoint as the text it stores, keys in the order
                // written; `jsonb` sorts keys, so PostgreSQL rebuilds that text.
                let mut out =
                    if dialect == Dialect::Postgres && column.ty == ColType::Geo && path.is_empty()
                    {
                        Emitted::sql(pg_value::geo_text(&sql), Class::Column, Ty::Text)
                    } else {
                        Emitted::sql(json_path_sql(dialect, &sql, path), Class::Column, Ty::Json)
                    };
                out.json = true;
                out
            }
            Val::Each(id) => {
                let alias = self.source_ref(Source::Join(*id), scope);
                // The items of a submitted array keep their JSON types on PostgreSQL, as
                // SQLite's `json_each` gives them (a stored field's items are always text).
                let ty = match self.joins.get(*id).map(|join| &join.kind) {
                    Some(JoinKind::BoundEach { .. }) if dialect == Dialect::Postgres => Ty::Json,
                    _ => Ty::Text,
                };
                let mut out = Emitted::raw(&format!("{alias}.\"value\""), Class::Column, ty);
                out.aff = Affinity::Blob;
                out
            }
            Val::Length(column) => {
                let sql = self.column_sql(column, scope);
                let mut out =
                    Emitted::sql(length_sql(dialect, &sql, column.ty), Class::Column, Ty::Num);
                out.num_text = NumText::Int;
                out
            }
            Val::Lower(inner) => {
                let inner = self.val(inner, scope);
                match inner.form {
                    Form::Value(v) | Form::LowerValue(v) => Emitted {
                        class: value_class(&v),
                        form: Form::LowerValue(v),
                        json: inner.json,
                        ty: Ty::Text,
                        aff: Affinity::None,
                        num_text: NumText::Real,
                    },
                    Form::Sql(_) if dialect == Dialect::Postgres => {
                        let json = inner.json;
                        let mut lowered = match pg_value::lower_of(pg_val(inner)) {
                            pg_value::Lowered::Sql(sql) => {
                                Emitted::sql(sql, Class::Column, Ty::Text)
                            }
                            pg_value::Lowered::Bound(v) => Emitted {
                                form: Form::Value(v),
                                ..Emitted::raw("NULL", Class::Column, Ty::Text)
                            },
                        };
                        lowered.json = json;
                        lowered
                    }
                    Form::Sql(sql) => {
                        let mut out = SqlFragment::raw("LOWER(");
                        out.push_fragment(pg_text(dialect, sql, inner.ty))
                            .push_sql(")");
                        let mut lowered = Emitted::sql(out, Class::Column, Ty::Text);
                        lowered.json = inner.json;
                        lowered
                    }
                }
            }
            Val::GeoDistance(args) => {
                let [lon_a, lat_a, lon_b, lat_b] = args.as_ref();
                let mut number = |v: &Val| {
                    let e = self.val(v, scope);
                    match dialect {
                        Dialect::Sqlite => render(dialect, e),
                        Dialect::Postgres => pg_value::math_arg(pg_val(e)),
                    }
                };
                let (lon_a, lat_a, lon_b, lat_b) =
                    (number(lon_a), number(lat_a), number(lon_b), number(lat_b));
                Emitted::sql(
                    geo_sql(dialect, lon_a, lat_a, lon_b, lat_b),
                    Class::Column,
                    Ty::Num,
                )
            }
            Val::Strftime {
                format,
                time,
                modifiers,
            } => {
                let time = time.as_ref().map(|t| {
                    let e = self.val(t, scope);
                    let ty = e.ty;
                    (render(dialect, e), ty)
                });
                Emitted::sql(
                    strftime_sql(dialect, format, time, modifiers),
                    Class::Column,
                    Ty::Text,
                )
            }
            // Resolved by `instantiate` before emission; a leftover means NULL.
            Val::Auth(_) => Emitted::raw("NULL", Class::Empty, Ty::Unknown),
        }
    }

    /// `left op right` with PocketBase's null-safe equality and `~` wrapping.
    fn compare(&mut self, left: Emitted, op: OpKind, right: Emitted) -> SqlFragment {
        match self.dialect() {
            Dialect::Sqlite => compare_sqlite(left, op, right, self.state),
            Dialect::Postgres => compare_pg(left, op, right),
        }
    }
}

/// SQLite: the comparison as written, SQLite's own value rules decide it.
fn compare_sqlite(left: Emitted, op: OpKind, right: Emitted, state: &State<'_>) -> SqlFragment {
    let dialect = Dialect::Sqlite;
    match op {
        OpKind::Eq | OpKind::Neq => {
            let equal = op == OpKind::Eq;
            let (eq, is, join, null_check) = if equal {
                (" = ", " IS ", " OR ", " IS NULL")
            } else {
                (" IS NOT ", " IS NOT ", " AND ", " IS NOT NULL")
            };
            let blank = || Emitted::value(SqlVal::Text(String::new()));
            let shape = eq_shape(left.class, left.json, right.class, right.json);
            match shape {
                EqShape::Is => {
                    let mut out = render(dialect, left);
                    out.push_sql(is).push_fragment(render(dialect, right));
                    out
                }
                EqShape::BothEmpty => SqlFragment::raw(if equal {
                    state.true_sql()
                } else {
                    state.false_sql()
                }),
                EqShape::Direct => {
                    let left = if left.class == Class::Empty {
                        blank()
                    } else {
                        left
                    };
                    let right = if right.class == Class::Empty {
                        blank()
                    } else {
                        right
                    };
                    let mut out = render(dialect, left);
                    out.push_sql(eq).push_fragment(render(dialect, right));
                    out
                }
                EqShape::LeftEmpty | EqShape::RightEmpty => {
                    let column = if shape == EqShape::LeftEmpty {
                        right
                    } else {
                        left
                    };
                    let column_sql = render(dialect, column);
                    let mut out = SqlFragment::raw("(");
                    if shape == EqShape::LeftEmpty {
                        out.push_fragment(render(dialect, blank()));
                        out.push_sql(eq).push_fragment(column_sql.clone());
                    } else {
                        out.push_fragment(column_sql.clone());
                        out.push_sql(eq).push_fragment(render(dialect, blank()));
                    }
                    out.push_sql(join).push_fragment(column_sql);
                    out.push_sql(null_check).push_sql(")");
                    out
                }
                EqShape::Coalesce => {
                    let coalesce = |e: Emitted| {
                        let mut out = SqlFragment::raw("COALESCE(");
                        out.push_fragment(render(dialect, e)).push_sql(", '')");
                        out
                    };
                    let mut out = coalesce(left);
                    out.push_sql(eq).push_fragment(coalesce(right));
                    out
                }
            }
        }
        OpKind::Like | OpKind::NotLike => {
            let right = match right.form {
                Form::Value(v) => Emitted {
                    form: Form::Value(bound_like_pattern(&v)),
                    ..right
                },
                Form::LowerValue(v) => Emitted {
                    form: Form::LowerValue(bound_like_pattern(&v)),
                    ..right
                },
                Form::Sql(sql) => {
                    let mut wrapped = SqlFragment::raw("('%' || ");
                    wrapped.push_fragment(sql).push_sql(" || '%')");
                    Emitted::sql(wrapped, right.class, Ty::Text)
                }
            };
            // `plinth_like(CAST(left AS TEXT), right)` is `left LIKE right ESCAPE '\'`
            // (SQLite's text of a number included), but stops at the query's deadline; see
            // the SQLite store's `register_like`. A column of TEXT affinity holds text (or
            // NULL) already, so it goes without the CAST, which would copy it.
            let negate = op == OpKind::NotLike;
            let cast = left.aff != Affinity::Text;
            let mut out = SqlFragment::raw(if negate {
                "(NOT plinth_like("
            } else {
                "plinth_like("
            });
            if cast {
                out.push_sql("CAST(");
            }
            out.push_fragment(render(dialect, left));
            out.push_sql(if cast { " AS TEXT), " } else { ", " });
            out.push_fragment(render(dialect, right));
            out.push_sql(if negate { "))" } else { ")" });
            out
        }
        OpKind::Gt | OpKind::Gte | OpKind::Lt | OpKind::Lte => {
            let sign = match op {
                OpKind::Gt => " > ",
                OpKind::Gte => " >= ",
                OpKind::Lt => " < ",
                _ => " <= ",
            };
            let mut out = render(dialect, left);
            out.push_sql(sign).push_fragment(render(dialect, right));
            out
        }
    }
}

/// PostgreSQL: the comparison SQLite's SQL makes, decided by SQLite's value rules (see
/// `pg_value`); the shapes of PocketBase's null-safe equality are the evaluator's.
fn compare_pg(left: Emitted, op: OpKind, right: Emitted) -> SqlFragment {
    match op {
        OpKind::Eq | OpKind::Neq => equality_pg(left, op == OpKind::Eq, right),
        OpKind::Like | OpKind::NotLike => {
            let pattern = match right.form {
                Form::Value(v) => PgVal::Bound(bound_like_pattern(&v)),
                Form::LowerValue(v) => {
                    let pattern = bound_like_pattern(&v);
                    match lower(&pattern) {
                        Ok(lowered) => PgVal::Bound(lowered),
                        Err(_) => PgVal::Bound(pattern),
                    }
                }
                Form::Sql(_) => pg_value::contains_pattern(pg_val(right)),
            };
            pg_value::like(pg_val(left), pattern, op == OpKind::NotLike)
        }
        OpKind::Gt | OpKind::Gte | OpKind::Lt | OpKind::Lte => {
            let op = match op {
                OpKind::Gt => PgOp::Gt,
                OpKind::Gte => PgOp::Ge,
                OpKind::Lt => PgOp::Lt,
                _ => PgOp::Le,
            };
            pg_value::compare(pg_operand(left), op, pg_operand(right))
        }
    }
}

/// PostgreSQL: `=` and `!=` in the shape `eq_shape` picks, as the evaluator reads them.
fn equality_pg(left: Emitted, equal: bool, right: Emitted) -> SqlFragment {
    let shape = eq_shape(left.class, left.json, right.class, right.json);
    let blank = || PgOperand {
        val: PgVal::Bound(SqlVal::Text(String::new())),
        aff: Affinity::None,
    };
    // `=` is NULL when a side is NULL; `!=` is SQLite's `IS NOT`.
    let op = if equal { PgOp::Eq } else { PgOp::Distinct };
    match shape {
        EqShape::Is => {
            let op = if equal { PgOp::Same } else { PgOp::Distinct };
            pg_value::compare(pg_operand(left), op, pg_operand(right))
        }
        EqShape::BothEmpty => SqlFragment::raw(if equal { "TRUE" } else { "FALSE" }),
        EqShape::Direct => {
            let left = if left.class == Class::Empty {
                blank()
            } else {
                pg_operand(left)
            };
            let right = if right.class == Class::Empty {
                blank()
            } else {
                pg_operand(right)
            };
            pg_value::compare(left, op, right)
        }
        EqShape::LeftEmpty | EqShape::RightEmpty => {
            let left_empty = shape == EqShape::LeftEmpty;
            let column = pg_operand(if left_empty { right } else { left });
            let is_null = pg_value::is_null(&column.val);
            let compared = if left_empty {
                pg_value::compare(blank(), op, column)
            } else {
                pg_value::compare(column, op, blank())
            };
            let mut out = SqlFragment::raw("(");
            out.push_fragment(compared);
            out.push_sql(if equal { " OR " } else { " AND NOT " });
            out.push_fragment(is_null).push_sql(")");
            out
        }
        EqShape::Coalesce => {
            let coalesce = |e: Emitted| PgOperand {
                val: pg_value::coalesce_blank(pg_val(e)),
                aff: Affinity::None,
            };
            pg_value::compare(coalesce(left), op, coalesce(right))
        }
    }
}

/// PostgreSQL: an operand with its affinity.
fn pg_operand(emitted: Emitted) -> PgOperand {
    PgOperand {
        aff: emitted.aff,
        val: pg_val(emitted),
    }
}

/// PostgreSQL: what SQLite would hold for an operand.
fn pg_val(emitted: Emitted) -> PgVal {
    match emitted.form {
        Form::Value(v) => PgVal::Bound(v),
        Form::LowerValue(v) => match lower(&v) {
            Ok(lowered) => PgVal::Bound(lowered),
            Err(_) => match pg_value::lower_of(PgVal::Bound(v)) {
                pg_value::Lowered::Bound(v) => PgVal::Bound(v),
                pg_value::Lowered::Sql(sql) => PgVal::Text(sql),
            },
        },
        Form::Sql(sql) => match emitted.ty {
            Ty::Num => PgVal::Num(sql, emitted.num_text),
            Ty::Bool => {
                let mut number = SqlFragment::raw("CAST(");
                number.push_fragment(sql).push_sql(" AS integer)");
                PgVal::Num(number, NumText::Int)
            }
            Ty::Text => PgVal::Text(sql),
            Ty::Json => PgVal::Json(sql),
            Ty::Unknown => PgVal::Bound(SqlVal::Null),
        },
    }
}

/// PostgreSQL: a column's value as SQLite stores it (for `:changed`, which compares the
/// column itself): a json column holds JSON text (strings quoted) that NUMERIC affinity may
/// have made a number, a geoPoint its object text.
fn pg_stored_column(column_sql: &str, ty: ColType) -> PgOperand {
    let column = SqlFragment::raw(column_sql);
    let val = match ty {
        ColType::Text => PgVal::Text(column),
        ColType::Number => PgVal::Num(column, NumText::Stored),
        ColType::Bool => PgVal::Num(
            SqlFragment::raw(format!("CAST({column_sql} AS integer)")),
            NumText::Int,
        ),
        ColType::Json => pg_value::to_numeric(PgVal::Text(pg_value::minified(&column))),
        ColType::Geo => PgVal::Text(pg_value::geo_text(column_sql)),
        ColType::Multi => PgVal::Json(column),
    };
    let aff = match ty {
        ColType::Text => Affinity::Text,
        _ => Affinity::Numeric,
    };
    PgOperand { val, aff }
}

fn empty_scope() -> Scope {
    Scope {
        prefix: String::new(),
        used: BTreeSet::new(),
    }
}

fn col_ty(ty: ColType) -> Ty {
    match ty {
        ColType::Text => Ty::Text,
        ColType::Number => Ty::Num,
        ColType::Bool => Ty::Bool,
        ColType::Json | ColType::Geo | ColType::Multi => Ty::Json,
    }
}

/// Binds a value (`NULL` is written out).
fn render_value(dialect: Dialect, value: &SqlVal) -> SqlFragment {
    let mut out = SqlFragment::default();
    match (dialect, value) {
        (_, SqlVal::Null) => {
            out.push_sql("NULL");
        }
        (Dialect::Sqlite, v) => {
            out.push_param(v.to_sql_value());
        }
        (Dialect::Postgres, v) => {
            let ty = match v {
                SqlVal::Int(_) => "bigint",
                SqlVal::Real(_) => "double precision",
                _ => "text",
            };
            out.push_sql("CAST(").push_param(v.to_sql_value());
            out.push_sql(&format!(" AS {ty})"));
        }
    }
    out
}

fn render(dialect: Dialect, emitted: Emitted) -> SqlFragment {
    match emitted.form {
        Form::Value(v) => render_value(dialect, &v),
        Form::LowerValue(v) => {
            let mut out = SqlFragment::raw("LOWER(");
            out.push_fragment(render_value(dialect, &v)).push_sql(")");
            out
        }
        Form::Sql(sql) => sql,
    }
}

/// PostgreSQL: `ROW(kind, number, text)`, a key that orders values the way SQLite orders
/// what `json_extract` returns: NULL (and JSON null) first, then numbers (booleans as 1 and 0),
/// then text (strings, and objects and arrays as their JSON text), text compared bytewise.
/// Comparing two keys row-wise is how a JSON operand compares with anything on PostgreSQL, so
/// `meta.k > 1` holds for a string `k` there as it does on SQLite. A key of JSON null is a NULL
/// row, which no comparison holds for and which sorts like NULL.
fn pg_order_key(emitted: Emitted) -> SqlFragment {
    let ty = emitted.ty;
    let value = render(Dialect::Postgres, emitted);
    let key = |kind: SqlFragment, number: SqlFragment, text: SqlFragment| {
        let mut out = SqlFragment::raw("ROW(");
        out.push_fragment(kind).push_sql(", ");
        out.push_fragment(number).push_sql(", ");
        out.push_fragment(text).push_sql(")");
        out
    };
    let wrap = |before: &str, inner: &SqlFragment, after: &str| {
        let mut out = SqlFragment::raw(before);
        out.push_fragment(inner.clone()).push_sql(after);
        out
    };
    match ty {
        Ty::Json => {
            let typeof_ = wrap("jsonb_typeof(", &value, ")");
            let mut out = SqlFragment::raw("(CASE WHEN ");
            out.push_fragment(typeof_.clone())
                .push_sql(" IN ('number', 'boolean', 'string', 'object', 'array') THEN ");
            let mut kind = SqlFragment::raw("(CASE WHEN ");
            kind.push_fragment(typeof_.clone())
                .push_sql(" IN ('number', 'boolean') THEN 1 ELSE 2 END)");
            let mut number = SqlFragment::raw("(CASE ");
            number
                .push_fragment(typeof_.clone())
                .push_sql(" WHEN 'number' THEN CAST((");
            number
                .push_fragment(value.clone())
                .push_sql(" #>> '{}') AS double precision) WHEN 'boolean' THEN (CASE WHEN ");
            number
                .push_fragment(value.clone())
                .push_sql(" = 'true'::jsonb THEN 1 ELSE 0 END) ELSE 0 END)");
            let mut text = SqlFragment::raw("((CASE ");
            text.push_fragment(typeof_)
                .push_sql(" WHEN 'string' THEN (");
            text.push_fragment(value.clone())
                .push_sql(" #>> '{}') WHEN 'number' THEN '' WHEN 'boolean' THEN '' ELSE CAST(");
            text.push_fragment(value)
                .push_sql(" AS text) END) COLLATE \"C\")");
            out.push_fragment(key(kind, number, text)).push_sql(" END)");
            out
        }
        Ty::Num => key(
            SqlFragment::raw("1"),
            wrap("CAST(", &value, " AS double precision)"),
            SqlFragment::raw("(CAST('' AS text) COLLATE \"C\")"),
        ),
        Ty::Bool => key(
            SqlFragment::raw("1"),
            wrap("CAST(CAST(", &value, " AS integer) AS double precision)"),
            SqlFragment::raw("(CAST('' AS text) COLLATE \"C\")"),
        ),
        Ty::Text | Ty::Unknown => key(
            SqlFragment::raw("2"),
            SqlFragment::raw("CAST(0 AS double precision)"),
            wrap("(CAST(", &value, " AS text) COLLATE \"C\")"),
        ),
    }
}

/// PostgreSQL: the operand as text (JSON scalars unquoted); SQLite converts implicitly.
fn pg_text(dialect: Dialect, sql: SqlFragment, ty: Ty) -> SqlFragment {
    match (dialect, ty) {
        (Dialect::Sqlite, _) | (Dialect::Postgres, Ty::Text | Ty::Unknown) => sql,
        // As SQLite's `json_extract` gives it: scalars unquoted, booleans as 1 and 0.
        (Dialect::Postgres, Ty::Json) => {
            let mut out = SqlFragment::raw("(CASE WHEN jsonb_typeof(");
            out.push_fragment(sql.clone())
                .push_sql(") = 'boolean' THEN (CASE WHEN ");
            out.push_fragment(sql.clone())
                .push_sql(" = 'true'::jsonb THEN '1' ELSE '0' END) ELSE (");
            out.push_fragment(sql).push_sql(" #>> '{}') END)");
            out
        }
        // SQLite keeps booleans as 0 and 1, and that is their text.
        (Dialect::Postgres, Ty::Bool) => {
            let mut out = SqlFragment::raw("CAST(CAST(");
            out.push_fragment(sql).push_sql(" AS integer) AS text)");
            out
        }
        (Dialect::Postgres, _) => {
            let mut out = SqlFragment::raw("CAST(");
            out.push_fragment(sql).push_sql(" AS text)");
            out
        }
    }
}

/// SQLite: `value` as a JSON array (a non-array value becomes a one-item array).
fn array_sqlite(value: &str) -> String {
    format!(
        "(CASE WHEN json_valid({value}) THEN (CASE WHEN json_type({value}) = 'array' THEN {value} ELSE json_array({value}) END) ELSE json_array({value}) END)"
    )
}

/// PostgreSQL: a column as a JSONB array.
fn array_pg(column: &str, ty: ColType) -> String {
    match ty {
        ColType::Multi | ColType::Json | ColType::Geo => format!(
            "(CASE WHEN jsonb_typeof({column}) = 'array' THEN {column} ELSE jsonb_build_array({column}) END)"
        ),
        _ => format!("jsonb_build_array({column})"),
    }
}

/// `LEFT JOIN` over the items of a column, exposing them as `alias."value"`.
fn each_sql(
    dialect: Dialect,
    column: &str,
    ty: ColType,
    alias: &str,
    ordinal: bool,
) -> SqlFragment {
    match dialect {
        Dialect::Sqlite => SqlFragment::raw(format!(
            "LEFT JOIN json_each({}) AS {alias}",
            array_sqlite(column)
        )),
        Dialect::Postgres => SqlFragment::raw(format!(
            "LEFT JOIN LATERAL jsonb_array_elements_text({}){} ON TRUE",
            array_pg(column, ty),
            pg_items_alias(alias, ordinal)
        )),
    }
}

/// ` AS alias("value")`, or with the item's position as `"key"`.
fn pg_items_alias(alias: &str, ordinal: bool) -> String {
    if ordinal {
        format!(" WITH ORDINALITY AS {alias}(\"value\", \"key\")")
    } else {
        format!(" AS {alias}(\"value\")")
    }
}

/// `LEFT JOIN` over the items of a bound JSON array text.
fn bound_each_sql(
    dialect: Dialect,
    array_text: String,
    alias: &str,
    typed: bool,
    ordinal: bool,
) -> SqlFragment {
    let mut out = SqlFragment::default();
    match dialect {
        Dialect::Sqlite => {
            out.push_sql("LEFT JOIN json_each(")
                .push_param(SqlValue::Text(array_text));
            out.push_sql(&format!(") AS {alias}"));
        }
        // `typed`: the items as `jsonb` (numbers stay numbers), else as text (record ids).
        Dialect::Postgres => {
            let function = if typed {
                "jsonb_array_elements"
            } else {
                "jsonb_array_elements_text"
            };
            out.push_sql(&format!("LEFT JOIN LATERAL {function}(CAST("))
                .push_param(SqlValue::Text(array_text));
            out.push_sql(&format!(
                " AS jsonb)){} ON TRUE",
                pg_items_alias(alias, ordinal)
            ));
        }
    }
    out
}

/// `:length` of a multi-valued column.
fn length_sql(dialect: Dialect, column: &str, ty: ColType) -> SqlFragment {
    match (dialect, ty) {
        (Dialect::Sqlite, _) => SqlFragment::raw(format!(
            "json_array_length(CASE WHEN json_valid({column}) THEN (CASE WHEN json_type({column}) = 'array' THEN {column} ELSE json_array({column}) END) WHEN {column} = '' OR {column} IS NULL THEN json_array() ELSE json_array({column}) END)"
        )),
        (Dialect::Postgres, ColType::Multi | ColType::Json | ColType::Geo) => {
            SqlFragment::raw(format!(
                "(CASE WHEN jsonb_typeof({column}) = 'array' THEN jsonb_array_length({column}) WHEN {column} IS NULL THEN 0 ELSE 1 END)"
            ))
        }
        (Dialect::Postgres, _) => SqlFragment::raw(format!(
            "(CASE WHEN {column} = '' OR {column} IS NULL THEN 0 ELSE 1 END)"
        )),
    }
}

/// `json_extract` of a path (`$.a[1]`), with PocketBase's fallback for non-JSON text.
fn json_path_sql(dialect: Dialect, column: &str, path: &[PathSeg]) -> SqlFragment {
    let mut out = SqlFragment::default();
    match dialect {
        Dialect::Sqlite => {
            let mut json_path = String::from("$");
            for segment in path {
                match segment {
                    PathSeg::Key(key) => {
                        json_path.push('.');
                        json_path.push_str(key);
                    }
                    PathSeg::Index(i) => json_path.push_str(&format!("[{i}]")),
                }
            }
            let fallback = format!("$.pb{}", &json_path[1..]);
            out.push_sql(&format!(
                "(CASE WHEN json_valid({column}) THEN json_extract({column}, "
            ))
            .push_param(SqlValue::Text(json_path));
            out.push_sql(&format!(
                ") ELSE json_extract(json_object('pb', {column}), "
            ))
            .push_param(SqlValue::Text(fallback));
            out.push_sql(") END)");
        }
        Dialect::Postgres => {
            if path.is_empty() {
                out.push_sql(column);
                return out;
            }
            // JSON null reads as SQL NULL, as SQLite's json_extract returns it.
            out.push_sql(&format!("NULLIF(jsonb_extract_path({column}"));
            for segment in path {
                let key = match segment {
                    PathSeg::Key(key) => key.clone(),
                    PathSeg::Index(i) => i.to_string(),
                };
                out.push_sql(", CAST(").push_param(SqlValue::Text(key));
                out.push_sql(" AS text)");
            }
            out.push_sql("), 'null'::jsonb)");
        }
    }
    out
}

/// Great-circle distance in km (spherical law of cosines, as PocketBase computes it).
fn geo_sql(
    dialect: Dialect,
    lon_a: SqlFragment,
    lat_a: SqlFragment,
    lon_b: SqlFragment,
    lat_b: SqlFragment,
) -> SqlFragment {
    let (min, max) = match dialect {
        Dialect::Sqlite => ("min", "max"),
        Dialect::Postgres => ("LEAST", "GREATEST"),
    };
    let mut out = SqlFragment::raw(format!("(6371 * acos({min}(1, {max}(-1, cos(radians("));
    out.push_fragment(lat_a.clone())
        .push_sql(")) * cos(radians(");
    out.push_fragment(lat_b.clone())
        .push_sql(")) * cos(radians(");
    out.push_fragment(lon_b).push_sql(") - radians(");
    out.push_fragment(lon_a).push_sql(")) + sin(radians(");
    out.push_fragment(lat_a).push_sql(")) * sin(radians(");
    out.push_fragment(lat_b).push_sql("))))))");
    out
}

/// `strftime(format, time, modifiers…)`.
fn strftime_sql(
    dialect: Dialect,
    format: &str,
    time: Option<(SqlFragment, Ty)>,
    modifiers: &[String],
) -> SqlFragment {
    let mut out = SqlFragment::default();
    match dialect {
        Dialect::Sqlite => {
            out.push_sql("strftime(")
                .push_param(SqlValue::Text(format.to_owned()));
            if let Some((time, _)) = time {
                out.push_sql(", ").push_fragment(time);
            }
            for modifier in modifiers {
                out.push_sql(", ")
                    .push_param(SqlValue::Text(modifier.clone()));
            }
            out.push_sql(")");
        }
        Dialect::Postgres => {
            // A format code SQLite does not know, or a time that is no date text, gives NULL
            // as in SQLite (and never a cast error: the text is taken apart, not cast).
            let Some(pattern) = pg_time_format(format) else {
                return SqlFragment::raw("CAST(NULL AS text)");
            };
            let time = match time {
                Some((_, Ty::Num | Ty::Bool)) => return SqlFragment::raw("CAST(NULL AS text)"),
                Some((time, ty)) => pg_time_value(pg_text(dialect, time, ty)),
                None => SqlFragment::raw("(now() AT TIME ZONE 'UTC')"),
            };
            out.push_sql("to_char(").push_fragment(time);
            out.push_sql(", ").push_param(SqlValue::Text(pattern));
            out.push_sql(")");
        }
    }
    out
}

/// The UTC timestamp a date text names (`YYYY-MM-DD`, then optionally ` HH:MM[:SS[.f]]` or
/// with `T`, that optionally followed by `Z` or `±HH:MM`), NULL for any other text, as SQLite's time
/// functions read it. Built from the text's parts with interval arithmetic, so that no value
/// can make the query fail (a cast of `2024-02-31` would): day 31 of February runs on into
/// March, as in SQLite.
fn pg_time_value(text: SqlFragment) -> SqlFragment {
    const SHAPE: &str = r"'^[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?$'";
    // Digits only reach a cast (the shape is tested first, but PostgreSQL may evaluate, or
    // fold a bound value, in any order): no text can make a cast fail.
    let part = |from: usize, len: usize| {
        let mut out = SqlFragment::raw("CAST(NULLIF(regexp_replace(substr(");
        out.push_fragment(text.clone()).push_sql(&format!(
            ", {from}, {len}), '[^0-9]', '', 'g'), '') AS integer)"
        ));
        out
    };
    let or_zero = |fragment: SqlFragment| {
        let mut out = SqlFragment::raw("COALESCE(");
        out.push_fragment(fragment).push_sql(", 0)");
        out
    };
    let mut out = SqlFragment::raw("(CASE WHEN (");
    out.push_fragment(text.clone())
        .push_sql(&format!(" ~ {SHAPE}) THEN (CASE WHEN ("));
    out.push_fragment(part(6, 2))
        .push_sql(" BETWEEN 1 AND 12) AND (");
    out.push_fragment(part(9, 2))
        .push_sql(" BETWEEN 1 AND 31) AND (");
    out.push_fragment(or_zero(part(12, 2)))
        .push_sql(" <= 24) AND (");
    out.push_fragment(or_zero(part(15, 2)))
        .push_sql(" <= 59) THEN (TIMESTAMP '2000-01-01 00:00:00' + make_interval(years => ");
    out.push_fragment(part(1, 4))
        .push_sql(" - 2000, months => ");
    out.push_fragment(part(6, 2)).push_sql(" - 1, days => ");
    out.push_fragment(part(9, 2)).push_sql(" - 1, hours => ");
    out.push_fragment(or_zero(part(12, 2)))
        .push_sql(", mins => ");
    out.push_fragment(or_zero(part(15, 2)))
        .push_sql(", secs => COALESCE(CAST(substring(");
    out.push_fragment(text.clone()).push_sql(
        r" from '^.{16}:([0-9]{2}(\.[0-9]+)?)') AS double precision), 0)) - COALESCE(CAST(substring(",
    );
    out.push_fragment(text).push_sql(
        r" from '([+-][0-9]{2}:[0-9]{2})$') AS interval), INTERVAL '0 seconds')) END) END)",
    );
    out
}

/// SQLite `strftime` codes as PostgreSQL `to_char` patterns; other text is quoted. `None`
/// for a code SQLite does not know (its `strftime` is NULL then); a code it knows that has no
/// pattern here is kept as text.
fn pg_time_format(format: &str) -> Option<String> {
    let mut out = String::new();
    let mut literal = String::new();
    let flush = |literal: &mut String, out: &mut String| {
        if !literal.is_empty() {
            out.push('"');
            out.push_str(&literal.replace('"', "\\\""));
            out.push('"');
            literal.clear();
        }
    };
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            literal.push(c);
            continue;
        }
        let code = match chars.next() {
            Some('Y') => "YYYY",
            Some('m') => "MM",
            Some('d') => "DD",
            Some('H') => "HH24",
            Some('M') => "MI",
            Some('S') => "SS",
            Some('j') => "DDD",
            Some('f') => "SS.MS",
            Some('w') => "D",
            Some('F') => "YYYY-MM-DD",
            Some('T') => "HH24:MI:SS",
            Some('R') => "HH24:MI",
            Some('I') => "HH12",
            Some('p') => "AM",
            Some('P') => "am",
            Some('u') => "ID",
            Some('%') => {
                literal.push('%');
                continue;
            }
            Some(other @ ('e' | 'G' | 'g' | 'J' | 'k' | 'l' | 's' | 'U' | 'V' | 'W')) => {
                literal.push('%');
                literal.push(other);
                continue;
            }
            Some(_) | None => return None,
        };
        flush(&mut literal, &mut out);
        out.push_str(code);
    }
    flush(&mut literal, &mut out);
    Some(out)
}
