//! Resolves a parsed expression against the schema into a [`Program`]: every name becomes a
//! column of the main row or of a join (relation hop, back-relation, `@collection`, `:each`),
//! a request value bound later, a macro or a literal. Errors name the operand and why.
//!
//! Client filters of non-superusers get PocketBase's extra restrictions here: hidden fields
//! are refused, filtering an auth collection's `email` also requires `emailVisibility`, and
//! every relation hop must pass the target collection's list rule (compiled as a guard).
//!
//! `@request.auth.*` paths are resolved per request (the caller's collection is only known
//! then) by [`resolve_auth`], which the emitter and the evaluator both call.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use chrono::{Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Timelike, Utc};
use domain::{Collection, Field, FieldKind, Schema, SqlValue};
use serde_json::Value;

use crate::ast::{Comparison, Expr, OpKind, Operand, Span};
use crate::context::RequestContext;
use crate::error::{Error, ErrorKind};
use crate::value::{SqlVal, apply_numeric, number_value};

/// The most relation hops one path may take (`a.b.c.d.e.f.field`).
pub const MAX_HOPS: usize = 6;

/// Who wrote the expression, which decides what it may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A collection API rule (or another server-side rule): hidden fields are usable and
    /// relation hops are not checked against list rules.
    Rule,
    /// A client `filter` from a superuser: no restrictions.
    SuperuserFilter,
    /// A client `filter` from a guest or a regular user.
    Filter,
}

/// A resolved expression, ready to emit or evaluate. Immutable and shareable.
#[derive(Debug)]
pub(crate) struct Program {
    pub schema: Arc<Schema>,
    pub root: Arc<Collection>,
    pub expr: Node,
    pub joins: Vec<JoinDef>,
    /// List-rule guards of relation hops (client filters of non-superusers only).
    pub guards: Vec<(JoinId, Arc<Program>)>,
    /// Whether `expr` holds `@request.auth.*` paths to resolve per request.
    pub has_auth: bool,
}

pub(crate) type JoinId = usize;

#[derive(Debug, Clone)]
pub(crate) enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Cmp(Box<Cmp>),
}

#[derive(Debug, Clone)]
pub(crate) struct Cmp {
    pub left: Val,
    pub op: OpKind,
    pub any: bool,
    pub right: Val,
    /// Rows whose `emailVisibility` must be true for this comparison to hold.
    pub email_guards: Vec<Source>,
}

/// Where a column lives: the main row or a join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Root,
    Join(JoinId),
}

/// How a column is stored (`domain::storage`), which decides its SQLite affinity and its
/// PostgreSQL type.
pub(crate) type ColType = domain::storage::ColumnType;

/// A column of the main table or of a join.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub src: Source,
    pub name: String,
    pub ty: ColType,
}

/// One step of a JSON path: `.key` or `[index]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PathSeg {
    Key(String),
    Index(usize),
}

/// A value known only per request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Runtime {
    Method,
    Context,
    Header(String),
    Query(String),
    /// A submitted body key, typed by the collection's field of that name when there is one.
    Body {
        key: String,
        ty: Option<ColType>,
    },
    /// A field of the caller's auth record.
    AuthField {
        name: String,
        ty: ColType,
    },
    AuthCollectionId,
    AuthCollectionName,
}

/// An `@request.auth.*` path, resolved per request.
#[derive(Debug, Clone)]
pub(crate) struct AuthPath {
    pub segments: Vec<String>,
    pub modifier: Option<Modifier>,
    /// The segments as written (a modifier still attached): a json field's sub-path is read
    /// from these.
    pub raw: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) enum Val {
    /// The `null` fallback.
    Null,
    /// The `true`/`false` fallbacks and `:isset`: written as `1`/`0`.
    Flag(bool),
    Number(f64),
    Text(String),
    Column(Column),
    /// `json_extract` of a json or geoPoint column (compared with `IS`, no coalescing).
    Json {
        column: Column,
        path: Vec<PathSeg>,
    },
    /// The current item of a `json_each` join (`:each`).
    Each(JoinId),
    /// `:length` of a multi-valued column.
    Length(Column),
    Lower(Box<Val>),
    Macro(Macro),
    Runtime(Runtime),
    /// A JSON path into a runtime value (`@request.body.meta.k`).
    RuntimePath(Runtime, Vec<PathSeg>),
    /// `:length` of a runtime multi value.
    RuntimeLength(Runtime),
    /// `@request.body.x:isset`.
    Isset(Runtime),
    /// `@request.body.x:changed`: submitted and different from the stored column.
    Changed {
        key: String,
        column: Column,
    },
    /// `@request.auth.*`, resolved per request by [`resolve_auth`].
    Auth(AuthPath),
    GeoDistance(Box<[Val; 4]>),
    Strftime {
        format: String,
        time: Option<Box<Val>>,
        modifiers: Vec<String>,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct JoinDef {
    pub parent: Source,
    pub kind: JoinKind,
    /// Identical paths share one join, as in PocketBase (`a.x ?= 1 && a.y ?= 2` means the
    /// same `a` row satisfies both).
    pub key: String,
}

#[derive(Debug, Clone)]
pub(crate) enum JoinKind {
    /// Records of `target` referenced by the parent's relation `field`.
    Relation {
        field: String,
        target: Arc<Collection>,
        multiple: bool,
    },
    /// Records of `target` whose relation `field` references the parent.
    BackRelation {
        field: String,
        target: Arc<Collection>,
        field_multiple: bool,
        /// A single-column unique index on `field`: at most one match, not multi-valued.
        unique: bool,
    },
    /// `@collection.name`: every record of `target`.
    Collection { target: Arc<Collection> },
    /// The items of the parent's multi-valued `field` (`:each`).
    Each { field: String, ty: ColType },
    /// Records of `target` whose ids come from a runtime value.
    BoundRelation {
        value: Runtime,
        target: Arc<Collection>,
        multiple: bool,
    },
    /// The items of a runtime multi value (`@request.body.tags:each`).
    BoundEach { value: Runtime },
}

impl JoinKind {
    /// Whether the join can yield several rows for one parent row.
    pub fn is_multi(&self) -> bool {
        match self {
            JoinKind::Relation { multiple, .. } | JoinKind::BoundRelation { multiple, .. } => {
                *multiple
            }
            JoinKind::BackRelation {
                field_multiple,
                unique,
                ..
            } => *field_multiple || !*unique,
            JoinKind::Collection { .. } | JoinKind::Each { .. } | JoinKind::BoundEach { .. } => {
                true
            }
        }
    }
}

/// `:isset`, `:changed`, `:length`, `:each`, `:lower`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Modifier {
    Isset,
    Changed,
    Length,
    Each,
    Lower,
}

/// The datetime macros, computed from the request's clock in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Macro {
    Now,
    Yesterday,
    Tomorrow,
    TodayStart,
    TodayEnd,
    MonthStart,
    MonthEnd,
    YearStart,
    YearEnd,
    Second,
    Minute,
    Hour,
    Day,
    Month,
    Weekday,
    Year,
}

impl Macro {
    fn parse(name: &str) -> Option<Macro> {
        Some(match name {
            "@now" => Macro::Now,
            "@yesterday" => Macro::Yesterday,
            "@tomorrow" => Macro::Tomorrow,
            "@todayStart" => Macro::TodayStart,
            "@todayEnd" => Macro::TodayEnd,
            "@monthStart" => Macro::MonthStart,
            "@monthEnd" => Macro::MonthEnd,
            "@yearStart" => Macro::YearStart,
            "@yearEnd" => Macro::YearEnd,
            "@second" => Macro::Second,
            "@minute" => Macro::Minute,
            "@hour" => Macro::Hour,
            "@day" => Macro::Day,
            "@month" => Macro::Month,
            "@weekday" => Macro::Weekday,
            "@year" => Macro::Year,
            _ => return None,
        })
    }

    /// The macro's value at `now`: datetimes as PocketBase text, the rest as integers.
    pub fn value(self, ctx: &RequestContext) -> SqlVal {
        let now = ctx.now;
        let date = now.date_naive();
        let day_start = |d: NaiveDate| Utc.from_utc_datetime(&d.and_time(NaiveTime::MIN));
        let day_end = |d: NaiveDate| day_start(d) + Duration::days(1) - Duration::milliseconds(1);
        let text = |at| SqlVal::Text(domain::time::format(at));
        let first_of_month = NaiveDate::from_ymd_opt(now.year(), now.month(), 1).unwrap_or(date);
        let next_month = if now.month() == 12 {
            NaiveDate::from_ymd_opt(now.year() + 1, 1, 1)
        } else {
            NaiveDate::from_ymd_opt(now.year(), now.month() + 1, 1)
        }
        .unwrap_or(date);
        let first_of_year = NaiveDate::from_ymd_opt(now.year(), 1, 1).unwrap_or(date);
        let last_of_year = NaiveDate::from_ymd_opt(now.year(), 12, 31).unwrap_or(date);
        match self {
            Macro::Now => text(now),
            Macro::Yesterday => text(now - Duration::days(1)),
            Macro::Tomorrow => text(now + Duration::days(1)),
            Macro::TodayStart => text(day_start(date)),
            Macro::TodayEnd => text(day_end(date)),
            Macro::MonthStart => text(day_start(first_of_month)),
            Macro::MonthEnd => text(day_start(next_month) - Duration::milliseconds(1)),
            Macro::YearStart => text(day_start(first_of_year)),
            Macro::YearEnd => text(day_end(last_of_year)),
            Macro::Second => SqlVal::Int(i64::from(now.second())),
            Macro::Minute => SqlVal::Int(i64::from(now.minute())),
            Macro::Hour => SqlVal::Int(i64::from(now.hour())),
            Macro::Day => SqlVal::Int(i64::from(now.day())),
            Macro::Month => SqlVal::Int(i64::from(now.month())),
            Macro::Weekday => SqlVal::Int(i64::from(now.weekday().num_days_from_sunday())),
            Macro::Year => SqlVal::Int(i64::from(now.year())),
        }
    }
}

/// Resolves `expr` for `root` in `mode`.
pub(crate) fn check(
    schema: &Arc<Schema>,
    root: &Arc<Collection>,
    expr: &Expr,
    mode: Mode,
) -> Result<Program, Error> {
    let mut checker = Checker::new(schema, root, mode, Vec::new());
    let node = checker.expr(expr)?;
    let has_auth = node_has_auth(&node);
    Ok(Program {
        schema: schema.clone(),
        root: root.clone(),
        expr: node,
        joins: checker.joins,
        guards: checker.guards,
        has_auth,
    })
}

/// Resolves one `sort` field (`title`, `author.name`, `meta.k`, `title:lower`) for `root`.
/// The program's expression is empty; the value to order by is returned beside it, with the
/// rows whose `emailVisibility` must be on for the value to count (an auth collection's
/// `email` sorted by a non-superuser: a hidden address must not order the rows). Names
/// starting with `@` are refused (`@random` and `@rowid` are the caller's business).
pub(crate) fn check_sort(
    schema: &Arc<Schema>,
    root: &Arc<Collection>,
    name: &str,
    mode: Mode,
) -> Result<(Program, Val, Vec<Source>), Error> {
    let refuse = |kind: ErrorKind, reason: String| {
        Error::new(
            kind,
            format!("invalid sort field {name:?} - {reason}"),
            None,
        )
    };
    if name.starts_with('@') {
        return Err(refuse(ErrorKind::UnknownField, "not sortable".into()));
    }
    let mut checker = Checker::new(schema, root, mode, Vec::new());
    let value = checker
        .resolve_name(name)
        .map_err(|(kind, reason)| refuse(kind, reason))?;
    let mut email_guards = std::mem::take(&mut checker.email_guards);
    email_guards.dedup();
    Ok((
        Program {
            schema: schema.clone(),
            root: root.clone(),
            expr: Node::And(Vec::new()),
            joins: checker.joins,
            guards: checker.guards,
            has_auth: false,
        },
        value,
        email_guards,
    ))
}

/// The program's expression and joins for one request: `@request.auth.*` paths replaced by
/// what they mean for this caller (borrowed as is when there are none).
pub(crate) fn instantiate<'p>(
    program: &'p Program,
    ctx: &RequestContext,
) -> (Cow<'p, Node>, Cow<'p, [JoinDef]>) {
    if !program.has_auth {
        return (Cow::Borrowed(&program.expr), Cow::Borrowed(&program.joins));
    }
    let mut joins = program.joins.clone();
    let node = instantiate_node(program, ctx, &program.expr, &mut joins);
    (Cow::Owned(node), Cow::Owned(joins))
}

fn instantiate_node(
    program: &Program,
    ctx: &RequestContext,
    node: &Node,
    joins: &mut Vec<JoinDef>,
) -> Node {
    match node {
        Node::And(items) => Node::And(
            items
                .iter()
                .map(|n| instantiate_node(program, ctx, n, joins))
                .collect(),
        ),
        Node::Or(items) => Node::Or(
            items
                .iter()
                .map(|n| instantiate_node(program, ctx, n, joins))
                .collect(),
        ),
        Node::Cmp(cmp) => Node::Cmp(Box::new(Cmp {
            left: instantiate_val(program, ctx, &cmp.left, joins),
            op: cmp.op,
            any: cmp.any,
            right: instantiate_val(program, ctx, &cmp.right, joins),
            email_guards: cmp.email_guards.clone(),
        })),
    }
}

fn instantiate_val(
    program: &Program,
    ctx: &RequestContext,
    val: &Val,
    joins: &mut Vec<JoinDef>,
) -> Val {
    match val {
        Val::Auth(path) => resolve_auth(program, ctx, path, joins),
        Val::Lower(inner) => Val::Lower(Box::new(instantiate_val(program, ctx, inner, joins))),
        Val::GeoDistance(args) => {
            let [a, b, c, d] = args.as_ref();
            Val::GeoDistance(Box::new([
                instantiate_val(program, ctx, a, joins),
                instantiate_val(program, ctx, b, joins),
                instantiate_val(program, ctx, c, joins),
                instantiate_val(program, ctx, d, joins),
            ]))
        }
        Val::Strftime {
            format,
            time,
            modifiers,
        } => Val::Strftime {
            format: format.clone(),
            time: time
                .as_ref()
                .map(|t| Box::new(instantiate_val(program, ctx, t, joins))),
            modifiers: modifiers.clone(),
        },
        other => other.clone(),
    }
}

fn node_has_auth(node: &Node) -> bool {
    match node {
        Node::And(items) | Node::Or(items) => items.iter().any(node_has_auth),
        Node::Cmp(cmp) => val_has_auth(&cmp.left) || val_has_auth(&cmp.right),
    }
}

fn val_has_auth(val: &Val) -> bool {
    match val {
        Val::Auth(_) => true,
        Val::Lower(inner) => val_has_auth(inner),
        Val::GeoDistance(args) => args.iter().any(val_has_auth),
        Val::Strftime { time, .. } => time.as_deref().is_some_and(val_has_auth),
        _ => false,
    }
}

/// The joins a value reads from (directly; ancestors are found through `JoinDef::parent`).
pub(crate) fn val_sources(val: &Val, out: &mut Vec<JoinId>) {
    let mut push = |src: Source| {
        if let Source::Join(id) = src {
            out.push(id);
        }
    };
    match val {
        Val::Column(c) | Val::Length(c) | Val::Json { column: c, .. } => push(c.src),
        Val::Changed { column, .. } => push(column.src),
        Val::Each(id) => out.push(*id),
        Val::Lower(inner) => val_sources(inner, out),
        Val::GeoDistance(args) => args.iter().for_each(|a| val_sources(a, out)),
        Val::Strftime {
            time: Some(time), ..
        } => val_sources(time, out),
        _ => {}
    }
}

/// Whether a value can take several values for one main row (it reads through a multi join).
pub(crate) fn val_is_multi(val: &Val, joins: &[JoinDef]) -> bool {
    let mut sources = Vec::new();
    val_sources(val, &mut sources);
    sources.into_iter().any(|mut id| {
        loop {
            let Some(join) = joins.get(id) else {
                return false;
            };
            if join.kind.is_multi() {
                return true;
            }
            match join.parent {
                Source::Join(parent) => id = parent,
                Source::Root => return false,
            }
        }
    })
}

/// Resolves an `@request.auth.*` path for this request's caller, adding any joins it needs
/// to `joins`. Unknown fields and guests give NULL, as in PocketBase.
pub(crate) fn resolve_auth(
    program: &Program,
    ctx: &RequestContext,
    path: &AuthPath,
    joins: &mut Vec<JoinDef>,
) -> Val {
    let Some(collection) = ctx.auth.collection() else {
        return Val::Null;
    };
    let mut checker = Checker::new(
        &program.schema,
        &program.root,
        Mode::Rule,
        std::mem::take(joins),
    );
    let value = checker.auth_path(collection, path).unwrap_or(Val::Null);
    *joins = checker.joins;
    value
}

#[derive(Clone, Copy)]
enum Side {
    Left,
    Right,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Left => "left",
            Side::Right => "right",
        }
    }
}

struct Checker<'a> {
    schema: &'a Arc<Schema>,
    root: &'a Arc<Collection>,
    mode: Mode,
    joins: Vec<JoinDef>,
    guards: Vec<(JoinId, Arc<Program>)>,
    /// Compiled list rules by collection id (`None`: no guard needed).
    guard_cache: HashMap<String, Option<Arc<Program>>>,
    /// `emailVisibility` requirements found while resolving the current comparison.
    email_guards: Vec<Source>,
}

/// A resolution failure before it is tied to an operand.
type Reason = String;

impl<'a> Checker<'a> {
    fn new(
        schema: &'a Arc<Schema>,
        root: &'a Arc<Collection>,
        mode: Mode,
        joins: Vec<JoinDef>,
    ) -> Self {
        Checker {
            schema,
            root,
            mode,
            joins,
            guards: Vec::new(),
            guard_cache: HashMap::new(),
            email_guards: Vec::new(),
        }
    }

    fn expr(&mut self, expr: &Expr) -> Result<Node, Error> {
        match expr {
            Expr::Compare(c) => self.comparison(c),
            Expr::And(items) => Ok(Node::And(
                items
                    .iter()
                    .map(|e| self.expr(e))
                    .collect::<Result<_, _>>()?,
            )),
            Expr::Or(items) => Ok(Node::Or(
                items
                    .iter()
                    .map(|e| self.expr(e))
                    .collect::<Result<_, _>>()?,
            )),
        }
    }

    fn comparison(&mut self, c: &Comparison) -> Result<Node, Error> {
        self.email_guards.clear();
        let left = self.operand(&c.left, Side::Left)?;
        let right = self.operand(&c.right, Side::Right)?;
        let mut email_guards = std::mem::take(&mut self.email_guards);
        email_guards.dedup();
        Ok(Node::Cmp(Box::new(Cmp {
            left,
            op: c.op.kind,
            any: c.op.any,
            right,
            email_guards,
        })))
    }

    fn operand(&mut self, operand: &Operand, side: Side) -> Result<Val, Error> {
        let fail = |kind: ErrorKind, reason: Reason, span: Span| {
            Error::new(
                kind,
                format!(
                    "invalid {} operand {:?} - {reason}",
                    side.name(),
                    operand.describe()
                ),
                Some(span),
            )
        };
        match operand {
            Operand::Number { value, .. } => Ok(Val::Number(*value)),
            Operand::Text { value, .. } => Ok(Val::Text(value.clone())),
            Operand::Ident { name, span } => self
                .identifier(name)
                .map_err(|(kind, reason)| fail(kind, reason, *span)),
            Operand::Call { name, args, span } => self
                .call(name, args)
                .map_err(|(kind, reason)| fail(kind, reason, *span)),
        }
    }

    /// A name, with PocketBase's fallback of `null`/`true`/`false` when nothing of that name
    /// resolves.
    fn identifier(&mut self, name: &str) -> Result<Val, (ErrorKind, Reason)> {
        match self.resolve_name(name) {
            Ok(value) => Ok(value),
            Err(err) => match name.to_ascii_lowercase().as_str() {
                "null" => Ok(Val::Null),
                "true" => Ok(Val::Flag(true)),
                "false" => Ok(Val::Flag(false)),
                _ => Err(err),
            },
        }
    }

    fn resolve_name(&mut self, name: &str) -> Result<Val, (ErrorKind, Reason)> {
        if let Some(rest) = name.strip_prefix("@request.") {
            return self.request(rest, name);
        }
        if let Some(rest) = name.strip_prefix("@collection.") {
            return self.collection_ref(rest, name);
        }
        if name.starts_with('@') {
            return Macro::parse(name).map(Val::Macro).ok_or_else(|| {
                (
                    ErrorKind::UnknownField,
                    format!("unknown identifier {name:?}"),
                )
            });
        }
        let segments = split_path(name, name)?;
        let root = self.root.clone();
        self.field_path(&root, Source::Root, &segments, None, 0)
    }

    /// Resolves `segments` against `collection`, whose row is `src`. A modifier is read off the
    /// last segment (as written) unless the caller gives one; segments after a json field are
    /// its path, modifier text and all (see [`json_path`]).
    fn field_path(
        &mut self,
        collection: &Arc<Collection>,
        src: Source,
        segments: &[&str],
        modifier: Option<Modifier>,
        hops: usize,
    ) -> Result<Val, (ErrorKind, Reason)> {
        let Some((&first, rest)) = segments.split_first() else {
            return Err((ErrorKind::UnknownField, "empty field path".into()));
        };
        let (first, modifier) = match modifier {
            None if rest.is_empty() => split_segment_modifier(first)?,
            _ => (first, modifier),
        };
        if let Some(field) = collection.field(first) {
            if field.hidden && self.mode == Mode::Filter {
                return Err((ErrorKind::HiddenField, format!("field {first:?} is hidden")));
            }
            let column = Column {
                src,
                name: field.name.clone(),
                ty: ColType::of(field),
            };
            return match &field.kind {
                FieldKind::Relation(options) if !rest.is_empty() => {
                    if hops >= MAX_HOPS {
                        return Err((
                            ErrorKind::Invalid,
                            format!("more than {MAX_HOPS} relation hops"),
                        ));
                    }
                    let target =
                        self.collection_by_id(&options.collection_id)
                            .ok_or_else(|| {
                                (
                                    ErrorKind::UnknownField,
                                    format!("missing relation target of {first:?}"),
                                )
                            })?;
                    let key = format!("{}.{}", self.join_key(src), field.name);
                    let join = self.add_join(
                        src,
                        key,
                        JoinKind::Relation {
                            field: field.name.clone(),
                            target: target.clone(),
                            multiple: field.is_multiple(),
                        },
                    );
                    self.guard(join, &target)?;
                    self.field_path(&target, Source::Join(join), rest, modifier, hops + 1)
                }
                FieldKind::Json(_) | FieldKind::GeoPoint(_) => {
                    let path = json_path(rest)?;
                    let value = Val::Json { column, path };
                    Ok(match modifier {
                        Some(Modifier::Lower) => Val::Lower(Box::new(value)),
                        _ => value,
                    })
                }
                _ if !rest.is_empty() => Err((
                    ErrorKind::UnknownField,
                    format!("field {first:?} has no sub-fields"),
                )),
                _ => {
                    if collection.is_auth()
                        && field.name == "email"
                        && matches!(field.kind, FieldKind::Email(_))
                        && self.mode == Mode::Filter
                    {
                        self.email_guards.push(src);
                    }
                    let multi_capable = matches!(
                        field.kind,
                        FieldKind::Select(_) | FieldKind::Relation(_) | FieldKind::File(_)
                    );
                    Ok(match modifier {
                        Some(Modifier::Each) if multi_capable => {
                            let key = format!("{}.{}:each", self.join_key(src), field.name);
                            let join = self.add_join(
                                src,
                                key,
                                JoinKind::Each {
                                    field: field.name.clone(),
                                    ty: column.ty,
                                },
                            );
                            Val::Each(join)
                        }
                        Some(Modifier::Length) if multi_capable => Val::Length(column),
                        Some(Modifier::Lower) => Val::Lower(Box::new(Val::Column(column))),
                        // PocketBase ignores the other modifiers on stored fields.
                        _ => Val::Column(column),
                    })
                }
            };
        }
        if let Some((collection_name, field_name)) = first.rsplit_once("_via_") {
            return self.back_relation(
                collection,
                src,
                collection_name,
                field_name,
                rest,
                modifier,
                hops,
            );
        }
        // PocketBase words a missing first segment of a longer path differently.
        if rest.is_empty() {
            Err((ErrorKind::UnknownField, format!("unknown field {first:?}")))
        } else {
            Err((
                ErrorKind::UnknownField,
                format!("failed to resolve field {first:?}"),
            ))
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn back_relation(
        &mut self,
        collection: &Arc<Collection>,
        src: Source,
        collection_name: &str,
        field_name: &str,
        rest: &[&str],
        modifier: Option<Modifier>,
        hops: usize,
    ) -> Result<Val, (ErrorKind, Reason)> {
        let unknown = || {
            (
                ErrorKind::UnknownField,
                format!("unknown field \"{collection_name}_via_{field_name}\""),
            )
        };
        if rest.is_empty() {
            return Err(unknown());
        }
        if hops >= MAX_HOPS {
            return Err((
                ErrorKind::Invalid,
                format!("more than {MAX_HOPS} relation hops"),
            ));
        }
        // PocketBase's wording for each way the back-relation can be missing.
        let target = self.collection(collection_name).ok_or_else(|| {
            (
                ErrorKind::UnknownField,
                format!(
                    "failed to load back relation field \"{collection_name}_via_{field_name}\" collection"
                ),
            )
        })?;
        let field = target.field(field_name).ok_or_else(|| {
            (
                ErrorKind::UnknownField,
                format!("missing back relation field {field_name:?}"),
            )
        })?;
        let FieldKind::Relation(options) = &field.kind else {
            return Err((
                ErrorKind::UnknownField,
                format!("invalid back relation field {field_name:?}"),
            ));
        };
        if options.collection_id != collection.id {
            return Err((
                ErrorKind::Invalid,
                format!("{field_name:?} of {collection_name:?} does not reference this collection"),
            ));
        }
        if field.hidden && self.mode == Mode::Filter {
            return Err((
                ErrorKind::HiddenField,
                format!("field {field_name:?} is hidden"),
            ));
        }
        let key = format!("{}.{}_via_{}", self.join_key(src), target.id, field.name);
        let join = self.add_join(
            src,
            key,
            JoinKind::BackRelation {
                field: field.name.clone(),
                target: target.clone(),
                field_multiple: field.is_multiple(),
                unique: has_unique_index(&target, &field.name),
            },
        );
        self.guard(join, &target)?;
        self.field_path(&target, Source::Join(join), rest, modifier, hops + 1)
    }

    /// `@collection.name[:alias].path`.
    fn collection_ref(&mut self, rest: &str, name: &str) -> Result<Val, (ErrorKind, Reason)> {
        let Some((head, path)) = rest.split_once('.') else {
            return Err((
                ErrorKind::UnknownField,
                format!("failed to resolve field {name:?}"),
            ));
        };
        let (collection_name, alias) = match head.split_once(':') {
            Some((collection_name, alias)) => (collection_name, Some(alias)),
            None => (head, None),
        };
        let target = self.collection(collection_name).ok_or_else(|| {
            (
                ErrorKind::UnknownField,
                format!("failed to load collection {head:?} from field path {name:?}"),
            )
        })?;
        let key = match alias {
            Some(alias) => format!("@collection:alias:{alias}"),
            None => format!("@collection:{}", target.id),
        };
        let join = self.add_join(
            Source::Root,
            key,
            JoinKind::Collection {
                target: target.clone(),
            },
        );
        let segments = split_path(path, name)?;
        self.field_path(&target, Source::Join(join), &segments, None, 0)
    }

    /// `@request.<rest>`.
    fn request(&mut self, rest: &str, name: &str) -> Result<Val, (ErrorKind, Reason)> {
        let unresolved = || {
            (
                ErrorKind::UnknownField,
                format!("failed to resolve field {name:?}"),
            )
        };
        let (path, modifier) = split_modifier(rest)?;
        let (head, tail) = match path.split_once('.') {
            Some((head, tail)) => (head, Some(tail)),
            None => (path, None),
        };
        let bad_modifier = |m: Modifier| {
            (
                ErrorKind::Invalid,
                format!("invalid modifier sequence {name:?} ({m:?})"),
            )
        };
        match (head, tail) {
            ("method", None) | ("context", None) => {
                if modifier.is_some() {
                    return Err(unresolved());
                }
                Ok(Val::Runtime(if head == "method" {
                    Runtime::Method
                } else {
                    Runtime::Context
                }))
            }
            ("headers" | "query", Some(key)) if !key.is_empty() => {
                let runtime = if head == "headers" {
                    Runtime::Header(key.to_owned())
                } else {
                    Runtime::Query(key.to_owned())
                };
                match modifier {
                    None => Ok(Val::Runtime(runtime)),
                    Some(Modifier::Isset) => Ok(Val::Isset(runtime)),
                    Some(Modifier::Lower) => Ok(Val::Lower(Box::new(Val::Runtime(runtime)))),
                    Some(m) => Err(bad_modifier(m)),
                }
            }
            ("body", Some(path)) if !path.is_empty() => self.body_path(path, modifier, name),
            ("auth", Some(path)) if !path.is_empty() => {
                let segments = split_path(path, name)?;
                let raw = rest
                    .strip_prefix("auth.")
                    .map(|raw| split_path(raw, name))
                    .transpose()?
                    .unwrap_or_default();
                Ok(Val::Auth(AuthPath {
                    segments: segments.into_iter().map(str::to_owned).collect(),
                    modifier,
                    raw: raw.into_iter().map(str::to_owned).collect(),
                }))
            }
            _ => Err(unresolved()),
        }
    }

    /// `@request.body.<key>[.<path>]`.
    fn body_path(
        &mut self,
        path: &str,
        modifier: Option<Modifier>,
        name: &str,
    ) -> Result<Val, (ErrorKind, Reason)> {
        let segments = split_path(path, name)?;
        let Some((&key, rest)) = segments.split_first() else {
            return Err((
                ErrorKind::UnknownField,
                format!("failed to resolve field {name:?}"),
            ));
        };
        let root = self.root.clone();
        let field = root.field(key);
        let runtime = Runtime::Body {
            key: key.to_owned(),
            ty: field.map(ColType::of),
        };
        let multi_capable = field.is_some_and(|f| {
            matches!(
                f.kind,
                FieldKind::Select(_) | FieldKind::Relation(_) | FieldKind::File(_)
            )
        });
        let no_multi = || {
            (
                ErrorKind::Invalid,
                format!("field {key:?} doesn't support multivalue operations"),
            )
        };
        if !rest.is_empty() {
            return Ok(match field.map(|f| &f.kind) {
                Some(FieldKind::Relation(options)) => {
                    let Some(target) = self.collection_by_id(&options.collection_id) else {
                        return Ok(Val::Null);
                    };
                    let multiple = field.is_some_and(Field::is_multiple);
                    let join = self.add_join(
                        Source::Root,
                        format!("@request.body.{key}"),
                        JoinKind::BoundRelation {
                            value: runtime,
                            target: target.clone(),
                            multiple,
                        },
                    );
                    // PocketBase accepts unknown fields behind a submitted relation (NULL).
                    self.field_path(&target, Source::Join(join), rest, modifier, 1)
                        .unwrap_or(Val::Null)
                }
                Some(FieldKind::Json(_) | FieldKind::GeoPoint(_)) => {
                    Val::RuntimePath(runtime, json_path(rest)?)
                }
                _ => Val::Null,
            });
        }
        match modifier {
            None => Ok(Val::Runtime(runtime)),
            Some(Modifier::Isset) => Ok(Val::Isset(runtime)),
            Some(Modifier::Lower) => Ok(Val::Lower(Box::new(Val::Runtime(runtime)))),
            Some(Modifier::Changed) => match field {
                Some(field) => Ok(Val::Changed {
                    key: key.to_owned(),
                    column: Column {
                        src: Source::Root,
                        name: field.name.clone(),
                        ty: ColType::of(field),
                    },
                }),
                None => Err((
                    ErrorKind::Invalid,
                    format!("invalid modifier sequence {name:?}"),
                )),
            },
            Some(Modifier::Length) if multi_capable => Ok(Val::RuntimeLength(runtime)),
            Some(Modifier::Each) if multi_capable => {
                let join = self.add_join(
                    Source::Root,
                    format!("@request.body.{key}:each"),
                    JoinKind::BoundEach { value: runtime },
                );
                Ok(Val::Each(join))
            }
            Some(Modifier::Length | Modifier::Each) => Err(no_multi()),
        }
    }

    /// `@request.auth.<path>` for the caller's `collection` (per request).
    fn auth_path(
        &mut self,
        collection: &Arc<Collection>,
        path: &AuthPath,
    ) -> Result<Val, (ErrorKind, Reason)> {
        let Some((first, rest)) = path.segments.split_first() else {
            return Ok(Val::Null);
        };
        let lowered = |value: Val| match path.modifier {
            Some(Modifier::Lower) => Val::Lower(Box::new(value)),
            _ => value,
        };
        if rest.is_empty() && (first == "collectionId" || first == "collectionName") {
            return Ok(lowered(Val::Runtime(if first == "collectionId" {
                Runtime::AuthCollectionId
            } else {
                Runtime::AuthCollectionName
            })));
        }
        let Some(field) = collection.field(first) else {
            return Ok(Val::Null);
        };
        let runtime = Runtime::AuthField {
            name: field.name.clone(),
            ty: ColType::of(field),
        };
        let multi_capable = matches!(
            field.kind,
            FieldKind::Select(_) | FieldKind::Relation(_) | FieldKind::File(_)
        );
        if !rest.is_empty() {
            let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
            return Ok(match &field.kind {
                FieldKind::Relation(options) => {
                    let Some(target) = self.collection_by_id(&options.collection_id) else {
                        return Ok(Val::Null);
                    };
                    let join = self.add_join(
                        Source::Root,
                        format!("@request.auth.{}", field.name),
                        JoinKind::BoundRelation {
                            value: runtime,
                            target: target.clone(),
                            multiple: field.is_multiple(),
                        },
                    );
                    self.field_path(&target, Source::Join(join), &rest, path.modifier, 1)
                        .unwrap_or(Val::Null)
                }
                // The sub-path as written: a modifier after it is part of its last key.
                FieldKind::Json(_) | FieldKind::GeoPoint(_) => {
                    let raw: Vec<&str> = path.raw.iter().skip(1).map(String::as_str).collect();
                    Val::RuntimePath(runtime, json_path(&raw)?)
                }
                _ => Val::Null,
            });
        }
        Ok(match path.modifier {
            Some(Modifier::Each) if multi_capable => {
                let join = self.add_join(
                    Source::Root,
                    format!("@request.auth.{}:each", field.name),
                    JoinKind::BoundEach { value: runtime },
                );
                Val::Each(join)
            }
            Some(Modifier::Length) if multi_capable => Val::RuntimeLength(runtime),
            _ => lowered(Val::Runtime(runtime)),
        })
    }

    fn call(&mut self, name: &str, args: &[Operand]) -> Result<Val, (ErrorKind, Reason)> {
        match name {
            "geoDistance" => {
                if args.len() != 4 {
                    return Err((
                        ErrorKind::Invalid,
                        format!("[geoDistance] expected 4 arguments, got {}", args.len()),
                    ));
                }
                let mut values = Vec::with_capacity(4);
                for (i, arg) in args.iter().enumerate() {
                    values.push(match arg {
                        Operand::Number { value, .. } => Val::Number(*value),
                        Operand::Ident { name, .. } => self.identifier(name)?,
                        _ => {
                            return Err((
                                ErrorKind::Invalid,
                                format!(
                                    "[geoDistance] argument {i} must be an identifier or number"
                                ),
                            ));
                        }
                    });
                }
                let values: [Val; 4] = values.try_into().map_err(|_| {
                    (
                        ErrorKind::Invalid,
                        "[geoDistance] expected 4 arguments".to_owned(),
                    )
                })?;
                Ok(Val::GeoDistance(Box::new(values)))
            }
            "strftime" => {
                let Some(Operand::Text { value: format, .. }) = args.first() else {
                    return Err((
                        ErrorKind::Invalid,
                        "[strftime] expects the first argument to be a format string".into(),
                    ));
                };
                let time = match args.get(1) {
                    None => None,
                    Some(Operand::Text { value, .. }) => Some(Box::new(Val::Text(value.clone()))),
                    Some(Operand::Number { value, .. }) => Some(Box::new(Val::Number(*value))),
                    Some(Operand::Ident { name, .. }) => Some(Box::new(self.identifier(name)?)),
                    Some(Operand::Call { .. }) => {
                        return Err((
                            ErrorKind::Invalid,
                            "[strftime] expects the second argument to be of a valid time-value type"
                                .into(),
                        ));
                    }
                };
                let mut modifiers = Vec::new();
                for arg in args.iter().skip(2) {
                    match arg {
                        Operand::Text { value, .. } => modifiers.push(value.clone()),
                        _ => {
                            return Err((
                                ErrorKind::Invalid,
                                "[strftime] modifiers must be text".into(),
                            ));
                        }
                    }
                }
                Ok(Val::Strftime {
                    format: format.clone(),
                    time,
                    modifiers,
                })
            }
            _ => Err((
                ErrorKind::UnknownField,
                format!("unknown function {name:?}"),
            )),
        }
    }

    /// Adds (or finds) the join identified by `key`.
    fn add_join(&mut self, parent: Source, key: String, kind: JoinKind) -> JoinId {
        if let Some(existing) = self.joins.iter().position(|j| j.key == key) {
            return existing;
        }
        self.joins.push(JoinDef { parent, kind, key });
        self.joins.len() - 1
    }

    fn join_key(&self, src: Source) -> String {
        match src {
            Source::Root => String::new(),
            Source::Join(id) => self
                .joins
                .get(id)
                .map_or_else(String::new, |j| j.key.clone()),
        }
    }

    /// For non-superuser filters: the related rows must pass their collection's list rule.
    fn guard(&mut self, join: JoinId, target: &Arc<Collection>) -> Result<(), (ErrorKind, Reason)> {
        if self.mode != Mode::Filter {
            return Ok(());
        }
        let program = match self.guard_cache.get(&target.id) {
            Some(cached) => cached.clone(),
            None => {
                let compiled = match target.list_rule.as_deref() {
                    None => {
                        return Err((
                            ErrorKind::HiddenField,
                            format!(
                                "collection {:?} is only listable by superusers",
                                target.name
                            ),
                        ));
                    }
                    Some(rule) if rule.trim().is_empty() => None,
                    Some(rule) => {
                        let expr = crate::parser::parse(rule).map_err(|e| {
                            (
                                ErrorKind::Invalid,
                                format!("list rule of {:?}: {e}", target.name),
                            )
                        })?;
                        let program =
                            check(self.schema, target, &expr, Mode::Rule).map_err(|e| {
                                (
                                    ErrorKind::Invalid,
                                    format!("list rule of {:?}: {e}", target.name),
                                )
                            })?;
                        Some(Arc::new(program))
                    }
                };
                self.guard_cache.insert(target.id.clone(), compiled.clone());
                compiled
            }
        };
        if let Some(program) = program
            && !self.guards.iter().any(|(id, _)| *id == join)
        {
            self.guards.push((join, program));
        }
        Ok(())
    }

    /// A collection by id or name (case-insensitive); the root wins, so that a collection
    /// being created or edited resolves references to itself.
    fn collection(&self, id_or_name: &str) -> Option<Arc<Collection>> {
        if self.root.id == id_or_name || self.root.name.eq_ignore_ascii_case(id_or_name) {
            return Some(self.root.clone());
        }
        self.schema.get(id_or_name).cloned()
    }

    fn collection_by_id(&self, id: &str) -> Option<Arc<Collection>> {
        if self.root.id == id {
            return Some(self.root.clone());
        }
        self.schema.get_by_id(id).cloned()
    }
}

/// Splits `name:modifier`. Only one modifier is allowed, and only at the end.
fn split_modifier(name: &str) -> Result<(&str, Option<Modifier>), (ErrorKind, Reason)> {
    let Some((path, modifier)) = name.split_once(':') else {
        return Ok((name, None));
    };
    let modifier = match known_modifier(modifier) {
        Some(modifier) => modifier,
        None if modifier.contains([':', '.']) => {
            return Err((
                ErrorKind::UnknownField,
                format!("failed to resolve field {name:?}"),
            ));
        }
        None => {
            return Err((ErrorKind::Invalid, format!("unknown modifier in {name:?}")));
        }
    };
    Ok((path, Some(modifier)))
}

/// The modifier `name` names, if any.
fn known_modifier(name: &str) -> Option<Modifier> {
    match name {
        "isset" => Some(Modifier::Isset),
        "changed" => Some(Modifier::Changed),
        "length" => Some(Modifier::Length),
        "each" => Some(Modifier::Each),
        "lower" => Some(Modifier::Lower),
        _ => None,
    }
}

fn split_path<'n>(path: &'n str, name: &str) -> Result<Vec<&'n str>, (ErrorKind, Reason)> {
    let segments: Vec<&str> = path.split('.').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err((
            ErrorKind::UnknownField,
            format!("failed to resolve field {name:?}"),
        ));
    }
    Ok(segments)
}

/// Splits `name:modifier` off one path segment, as PocketBase reads its last segment: a
/// segment with other than one `:` is a name as it is (and so unknown), a known modifier is
/// split off, any other is an error.
fn split_segment_modifier(segment: &str) -> Result<(&str, Option<Modifier>), (ErrorKind, Reason)> {
    let Some((name, modifier)) = segment.split_once(':') else {
        return Ok((segment, None));
    };
    if modifier.contains(':') {
        return Ok((segment, None));
    }
    let Some(modifier) = known_modifier(modifier) else {
        return Err((
            ErrorKind::Invalid,
            format!("unknown modifier in {segment:?}"),
        ));
    };
    Ok((name, Some(modifier)))
}

/// A json field's sub-path as PocketBase builds it (observed on 0.40.6): a segment of digits
/// that reads as a number is an array index; any other is a key keeping only its ASCII
/// letters, digits and `_` (so `s:lower` is the key `slower`: modifiers are never read after
/// a json field). A segment left empty makes a path SQLite refuses, an error.
fn json_path(segments: &[&str]) -> Result<Vec<PathSeg>, (ErrorKind, Reason)> {
    // An identifier ends with a letter, digit or `_` (PocketBase's lexer refuses `meta.a:`).
    if let Some(last) = segments.last()
        && last.ends_with(':')
    {
        return Err((
            ErrorKind::Invalid,
            format!("invalid json path segment {last:?}"),
        ));
    }
    segments
        .iter()
        .map(|segment| {
            if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
                // Go's `strconv.Atoi`: past its range, the digits are a key.
                if let Some(index) = segment
                    .parse::<i64>()
                    .ok()
                    .and_then(|i| usize::try_from(i).ok())
                {
                    return Ok(PathSeg::Index(index));
                }
            }
            let key: String = segment
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if key.is_empty() {
                return Err((
                    ErrorKind::Invalid,
                    format!("invalid json path segment {segment:?}"),
                ));
            }
            Ok(PathSeg::Key(key))
        })
        .collect()
}

/// Whether `collection` has a single-column unique index on `field`.
fn has_unique_index(collection: &Collection, field: &str) -> bool {
    collection.indexes.iter().any(|index| {
        let upper = index.to_ascii_uppercase();
        if !upper.trim_start().starts_with("CREATE UNIQUE INDEX") {
            return false;
        }
        let (Some(open), Some(close)) = (index.find('('), index.rfind(')')) else {
            return false;
        };
        if close <= open {
            return false;
        }
        let columns: Vec<String> = index[open + 1..close]
            .split(',')
            .map(|c| {
                c.split_whitespace()
                    .next()
                    .unwrap_or("")
                    .trim_matches(['`', '"', '[', ']'])
                    .to_owned()
            })
            .collect();
        columns.len() == 1 && columns[0] == field
    })
}

/// The value a record field holds as SQLite keeps it: the stored form every engine binds
/// (`domain::storage::stored_value`), then what the column's NUMERIC affinity makes of it
/// (number and json columns: whole reals and numeric text become numbers).
pub(crate) fn stored_value(value: &Value, ty: ColType) -> SqlVal {
    let bound = match domain::storage::stored_value(ty, value) {
        SqlValue::Null => SqlVal::Null,
        SqlValue::Int(i) => SqlVal::Int(i),
        SqlValue::Real(r) => SqlVal::Real(r),
        SqlValue::Text(t) => SqlVal::Text(t),
    };
    match (ty, bound) {
        (ColType::Number | ColType::Json, SqlVal::Real(r)) => number_value(r),
        (ColType::Number | ColType::Json, text @ SqlVal::Text(_)) => apply_numeric(text),
        (_, bound) => bound,
    }
}

/// A submitted value with no field to type it: strings as text, numbers as numbers,
/// booleans as 0/1, structures as JSON text.
pub(crate) fn raw_value(value: &Value) -> SqlVal {
    match value {
        Value::Null => SqlVal::Null,
        Value::Bool(b) => SqlVal::Int(i64::from(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => SqlVal::Int(i),
            None => SqlVal::Real(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => SqlVal::Text(s.clone()),
        other => SqlVal::Text(other.to_string()),
    }
}

/// What `json_extract` returns for a JSON value: scalars as SQL values, structures as text.
pub(crate) fn json_scalar(value: Option<&Value>) -> SqlVal {
    match value {
        None | Some(Value::Null) => SqlVal::Null,
        Some(Value::Bool(b)) => SqlVal::Int(i64::from(*b)),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) => SqlVal::Int(i),
            None => SqlVal::Real(n.as_f64().unwrap_or(0.0)),
        },
        Some(Value::String(s)) => SqlVal::Text(s.clone()),
        Some(other) => SqlVal::Text(other.to_string()),
    }
}

/// The raw JSON behind a runtime value, when it has one (body and auth fields).
pub(crate) fn runtime_json<'c>(runtime: &Runtime, ctx: &'c RequestContext) -> Option<&'c Value> {
    match runtime {
        Runtime::Body { key, .. } => ctx.body.as_ref()?.get(key),
        Runtime::AuthField { name, .. } => ctx.auth.record()?.get(name),
        _ => None,
    }
}

/// A runtime value as it is bound: typed by its field when known, NULL when absent.
pub(crate) fn runtime_value(runtime: &Runtime, ctx: &RequestContext) -> SqlVal {
    let text = |value: Option<&String>| value.map_or(SqlVal::Null, |v| SqlVal::Text(v.clone()));
    match runtime {
        Runtime::Method => SqlVal::Text(ctx.method.clone()),
        Runtime::Context => SqlVal::Text(ctx.context.clone()),
        Runtime::Header(name) => text(ctx.headers.get(name)),
        Runtime::Query(name) => text(ctx.query.get(name)),
        Runtime::Body { ty, .. } => match (runtime_json(runtime, ctx), ty) {
            (None, _) => SqlVal::Null,
            (Some(value), Some(ty)) => stored_value(value, *ty),
            (Some(value), None) => raw_value(value),
        },
        Runtime::AuthField { ty, .. } => match runtime_json(runtime, ctx) {
            None => SqlVal::Null,
            Some(value) => stored_value(value, *ty),
        },
        Runtime::AuthCollectionId => text(ctx.auth.collection().map(|c| &c.id)),
        Runtime::AuthCollectionName => text(ctx.auth.collection().map(|c| &c.name)),
    }
}

/// A runtime multi value as the JSON array text `json_each` reads.
pub(crate) fn runtime_array_text(runtime: &Runtime, ctx: &RequestContext) -> String {
    match runtime_json(runtime, ctx) {
        Some(Value::Array(items)) => Value::Array(items.clone()).to_string(),
        None | Some(Value::Null) => "[]".to_owned(),
        Some(Value::String(s)) if s.is_empty() => "[]".to_owned(),
        Some(other) => Value::Array(vec![other.clone()]).to_string(),
    }
}

/// Follows a JSON path.
pub(crate) fn json_at<'v>(value: &'v Value, path: &[PathSeg]) -> Option<&'v Value> {
    let mut current = value;
    for segment in path {
        current = match segment {
            PathSeg::Key(key) => current.as_object()?.get(key)?,
            PathSeg::Index(index) => current.as_array()?.get(*index)?,
        };
    }
    Some(current)
}

/// The items of a multi value as `json_each` yields them (a lone value is one item).
pub(crate) fn multi_items(value: Option<&Value>) -> Vec<SqlVal> {
    match value {
        Some(Value::Array(items)) => items.iter().map(|v| json_scalar(Some(v))).collect(),
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) if s.is_empty() => Vec::new(),
        Some(other) => vec![json_scalar(Some(other))],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_index_detection() {
        let mut c = Collection::scaffold(domain::CollectionType::Base, "extras");
        c.indexes = vec!["CREATE UNIQUE INDEX `idx_x` ON `extras` (`post`)".into()];
        assert!(has_unique_index(&c, "post"));
        assert!(!has_unique_index(&c, "other"));
        c.indexes = vec!["CREATE INDEX `idx_x` ON `extras` (`post`)".into()];
        assert!(!has_unique_index(&c, "post"));
        c.indexes = vec!["CREATE UNIQUE INDEX idx ON extras (post, kind)".into()];
        assert!(!has_unique_index(&c, "post"));
    }

    #[test]
    fn stored_values_are_the_bound_form_after_column_affinity() {
        use serde_json::json;
        let cases = [
            (json!(3.0), ColType::Number, SqlVal::Int(3)),
            (json!(2.5), ColType::Number, SqlVal::Real(2.5)),
            (
                json!(9_007_199_254_740_993_i64),
                ColType::Number,
                SqlVal::Int(9_007_199_254_740_993),
            ),
            (json!(" 7 "), ColType::Number, SqlVal::Int(7)),
            (json!(5), ColType::Json, SqlVal::Int(5)),
            (json!(1.5), ColType::Json, SqlVal::Real(1.5)),
            (json!("5"), ColType::Json, SqlVal::Text("\"5\"".into())),
            (Value::Null, ColType::Json, SqlVal::Null),
            (json!(5), ColType::Text, SqlVal::Text("5".into())),
            (json!(true), ColType::Bool, SqlVal::Int(1)),
            (json!("a"), ColType::Multi, SqlVal::Text("[\"a\"]".into())),
        ];
        for (value, ty, expected) in cases {
            assert_eq!(stored_value(&value, ty), expected, "{value} in {ty:?}");
        }
    }

    #[test]
    fn macros_use_pocketbase_format() {
        let at = Utc
            .with_ymd_and_hms(2024, 2, 10, 13, 14, 15)
            .single()
            .expect("valid");
        let ctx = RequestContext::new(domain::AuthContext::Guest).at(at);
        let text = |m: Macro| match m.value(&ctx) {
            SqlVal::Text(t) => t,
            other => panic!("{other:?}"),
        };
        assert_eq!(text(Macro::Now), "2024-02-10 13:14:15.000Z");
        assert_eq!(text(Macro::TodayEnd), "2024-02-10 23:59:59.999Z");
        assert_eq!(text(Macro::MonthEnd), "2024-02-29 23:59:59.999Z");
        assert_eq!(text(Macro::YearStart), "2024-01-01 00:00:00.000Z");
        assert_eq!(text(Macro::Yesterday), "2024-02-09 13:14:15.000Z");
        assert_eq!(Macro::Weekday.value(&ctx), SqlVal::Int(6));
    }
}
