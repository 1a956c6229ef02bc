//! Evaluates a checked program against one record in memory, for the realtime hub and for
//! checks on a record the server already holds. It answers exactly what the emitted SQL would
//! answer on SQLite for the same row (same null handling, affinity, `LIKE`, multi-value
//! semantics), or [`Eval::NeedsSql`] when the expression reads other rows (relations,
//! back-relations, `@collection`, relation hops of `@request.*`) or uses `strftime`.

use std::collections::HashMap;
use std::sync::Arc;

use domain::{Collection, Record};
use serde_json::Value;

use crate::ast::OpKind;
use crate::check::{
    Cmp, ColType, Column, JoinDef, JoinId, JoinKind, Node, PathSeg, Program, Runtime, Source, Val,
    instantiate, json_at, json_scalar, multi_items, runtime_json, runtime_value, stored_value,
    val_is_multi, val_sources,
};
use crate::context::RequestContext;
use crate::value::{
    Affinity, Class, EqShape, Inexact, SqlVal, bound_like_pattern, compare, eq_shape, is_same,
    like, lower, value_class,
};

/// The in-memory answer for one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eval {
    Match,
    NoMatch,
    /// The expression needs other rows or SQL functions: ask the database.
    NeedsSql,
}

/// The most joined-row combinations evaluated before giving up to SQL.
const MAX_COMBINATIONS: usize = 10_000;

struct NeedsSql;

impl From<Inexact> for NeedsSql {
    fn from(_: Inexact) -> Self {
        NeedsSql
    }
}

type Outcome<T> = Result<T, NeedsSql>;

pub(crate) fn eval(program: &Program, record: &Record, ctx: &RequestContext) -> Eval {
    match try_eval(program, record, ctx) {
        Ok(true) => Eval::Match,
        Ok(false) => Eval::NoMatch,
        Err(NeedsSql) => Eval::NeedsSql,
    }
}

fn try_eval(program: &Program, record: &Record, ctx: &RequestContext) -> Outcome<bool> {
    let (node, joins) = instantiate(program, ctx);
    let row = Row {
        collection: &program.root,
        record,
    };
    let mut items: Vec<Vec<SqlVal>> = Vec::with_capacity(joins.len());
    for join in joins.iter() {
        items.push(join_items(join, &row, ctx)?);
    }
    let env = Env {
        row,
        ctx,
        joins: &joins,
        items: &items,
    };
    // Every combination of joined items is one row of PocketBase's LEFT JOIN; the record
    // matches when any of them satisfies the expression.
    let sizes: Vec<usize> = items.iter().map(|i| i.len().max(1)).collect();
    let total = sizes
        .iter()
        .try_fold(1usize, |acc, n| acc.checked_mul(*n))
        .filter(|n| *n <= MAX_COMBINATIONS)
        .ok_or(NeedsSql)?;
    let mut current: HashMap<JoinId, SqlVal> = HashMap::new();
    for combination in 0..total {
        let mut rest = combination;
        for (id, size) in sizes.iter().enumerate() {
            let index = rest % size;
            rest /= size;
            current.insert(id, item(&items[id], index));
        }
        if env.node(&node, &current)? == Some(true) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn item(items: &[SqlVal], index: usize) -> SqlVal {
    items.get(index).cloned().unwrap_or(SqlVal::Null)
}

/// The main row.
#[derive(Clone, Copy)]
struct Row<'a> {
    collection: &'a Arc<Collection>,
    record: &'a Record,
}

impl Row<'_> {
    /// Whether the JSON column `name` holds a structure whose text PostgreSQL would write
    /// differently (see [`same_text_on_every_engine`]): such a value is left to the database.
    fn json_text_differs(&self, name: &str, ty: ColType) -> bool {
        ty == ColType::Json
            && self
                .record
                .get(name)
                .is_some_and(|value| !same_text_on_every_engine(value))
    }

    /// A column as SQLite stores it (absent values take the field's zero value).
    fn stored(&self, name: &str, ty: ColType) -> SqlVal {
        match self.record.get(name) {
            Some(value) => stored_value(value, ty),
            None => match self.collection.field(name) {
                Some(field) => stored_value(&field.zero_value(), ty),
                None => SqlVal::Null,
            },
        }
    }
}

/// The rows a join yields for this record; joins into other tables need SQL.
fn join_items(join: &JoinDef, row: &Row<'_>, ctx: &RequestContext) -> Outcome<Vec<SqlVal>> {
    match (&join.kind, join.parent) {
        (JoinKind::Each { field, ty }, Source::Root) => sqlite_array_items(&row.stored(field, *ty)),
        (JoinKind::BoundEach { value }, _) => Ok(multi_items(runtime_json(value, ctx))),
        _ => Err(NeedsSql),
    }
}

/// What `json_each` yields for a stored value after PocketBase's array normalization: the
/// items of a JSON array, else the value itself as one item.
fn sqlite_array_items(stored: &SqlVal) -> Outcome<Vec<SqlVal>> {
    match parse_json(stored) {
        Some(Value::Array(items)) => items.iter().map(|v| exact_json_scalar(Some(v))).collect(),
        _ => Ok(vec![stored.clone()]),
    }
}

/// Whether PostgreSQL's `jsonb` writes a JSON value back as the text SQLite keeps for it, all
/// the way down: `jsonb` orders an object's keys its own way (shorter keys first) and writes a
/// number in plain decimals (`1e20` comes back as `100000000000000000000`). A scalar, an array
/// of such values and an object of at most one key are the same text on both engines.
///
/// The evaluator answers [`Eval::NeedsSql`] where a value that is not the same text on both
/// would be read as text, so the engine's own SQL decides: the in-memory answer is then the
/// same as the database's on either engine by construction, not by imitation.
pub(crate) fn same_text_on_every_engine(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.len() <= 1 && map.values().all(same_text_on_every_engine),
        Value::Array(items) => items.iter().all(same_text_on_every_engine),
        Value::Number(n) => n.is_i64() || n.is_u64() || !n.to_string().contains(['e', 'E']),
        _ => true,
    }
}

/// [`json_scalar`], for a structure only when its text is the same on every engine.
fn exact_json_scalar(value: Option<&Value>) -> Outcome<SqlVal> {
    match value {
        Some(structure @ (Value::Array(_) | Value::Object(_)))
            if !same_text_on_every_engine(structure) =>
        {
            Err(NeedsSql)
        }
        other => Ok(json_scalar(other)),
    }
}

/// `json_valid(x)` and the parsed document.
fn parse_json(stored: &SqlVal) -> Option<Value> {
    match stored {
        SqlVal::Null => None,
        SqlVal::Int(i) => Some(Value::from(*i)),
        SqlVal::Real(r) => serde_json::Number::from_f64(*r).map(Value::Number),
        SqlVal::Text(t) => serde_json::from_str(t).ok(),
    }
}

/// An evaluated operand, with what the emitter would have known about it.
#[derive(Debug, Clone)]
struct Operand {
    /// The value before `LOWER()` (the `~` pattern wrapping applies to it).
    raw: SqlVal,
    lowered: bool,
    affinity: Affinity,
    class: Class,
    json: bool,
    /// A bound value (as opposed to an SQL expression).
    bound: bool,
}

impl Operand {
    fn expr(value: SqlVal, affinity: Affinity) -> Self {
        Operand {
            raw: value,
            lowered: false,
            affinity,
            class: Class::Column,
            json: false,
            bound: false,
        }
    }

    fn bound(value: SqlVal) -> Self {
        Operand {
            class: value_class(&value),
            raw: value,
            lowered: false,
            affinity: Affinity::None,
            json: false,
            bound: true,
        }
    }

    fn value(&self) -> Result<SqlVal, Inexact> {
        if self.lowered {
            lower(&self.raw)
        } else {
            Ok(self.raw.clone())
        }
    }
}

struct Env<'a> {
    row: Row<'a>,
    ctx: &'a RequestContext,
    joins: &'a [JoinDef],
    items: &'a [Vec<SqlVal>],
}

impl Env<'_> {
    fn node(&self, node: &Node, current: &HashMap<JoinId, SqlVal>) -> Outcome<Option<bool>> {
        match node {
            Node::And(items) => {
                let mut result = Some(true);
                for item in items {
                    result = and3(result, self.node(item, current)?);
                    if result == Some(false) {
                        break;
                    }
                }
                Ok(result)
            }
            Node::Or(items) => {
                let mut result = Some(false);
                for item in items {
                    result = or3(result, self.node(item, current)?);
                    if result == Some(true) {
                        break;
                    }
                }
                Ok(result)
            }
            Node::Cmp(cmp) => self.comparison(cmp, current),
        }
    }

    fn comparison(&self, cmp: &Cmp, current: &HashMap<JoinId, SqlVal>) -> Outcome<Option<bool>> {
        let left = self.val(&cmp.left, current)?;
        let right = self.val(&cmp.right, current)?;
        let mut result = compare_operands(&left, cmp.op, &right)?;
        let multi = !cmp.any
            && (val_is_multi(&cmp.left, self.joins) || val_is_multi(&cmp.right, self.joins));
        if multi {
            result = and3(result, Some(self.every_item(cmp, current)?));
        }
        for guard in &cmp.email_guards {
            if *guard != Source::Root {
                return Err(NeedsSql);
            }
            let visible = self.row.stored("emailVisibility", ColType::Bool);
            result = and3(result, Some(visible == SqlVal::Int(1)));
        }
        Ok(result)
    }

    /// No combination of items of the multi-valued side(s) makes the comparison false.
    fn every_item(&self, cmp: &Cmp, current: &HashMap<JoinId, SqlVal>) -> Outcome<bool> {
        let lefts = self.operand_items(&cmp.left, current)?;
        let rights = self.operand_items(&cmp.right, current)?;
        for left in &lefts {
            for right in &rights {
                if compare_operands(left, cmp.op, right)? == Some(false) {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// The operand over a fresh copy of its joins (every item), or its current value when it
    /// is single-valued.
    fn operand_items(&self, val: &Val, current: &HashMap<JoinId, SqlVal>) -> Outcome<Vec<Operand>> {
        if !val_is_multi(val, self.joins) {
            return Ok(vec![self.val(val, current)?]);
        }
        let mut sources = Vec::new();
        val_sources(val, &mut sources);
        sources.sort_unstable();
        sources.dedup();
        let sizes: Vec<usize> = sources
            .iter()
            .map(|id| self.items.get(*id).map_or(1, |i| i.len().max(1)))
            .collect();
        let total = sizes
            .iter()
            .try_fold(1usize, |acc, n| acc.checked_mul(*n))
            .filter(|n| *n <= MAX_COMBINATIONS)
            .ok_or(NeedsSql)?;
        let mut fresh = current.clone();
        let mut out = Vec::with_capacity(total);
        for combination in 0..total {
            let mut rest = combination;
            for (id, size) in sources.iter().zip(&sizes) {
                let index = rest % size;
                rest /= size;
                let items = self.items.get(*id).map_or(&[][..], Vec::as_slice);
                fresh.insert(*id, item(items, index));
            }
            out.push(self.val(val, &fresh)?);
        }
        Ok(out)
    }

    fn column(&self, column: &Column) -> Outcome<(SqlVal, Affinity)> {
        if column.src != Source::Root {
            return Err(NeedsSql);
        }
        let affinity = match column.ty {
            ColType::Text => Affinity::Text,
            _ => Affinity::Numeric,
        };
        Ok((self.row.stored(&column.name, column.ty), affinity))
    }

    fn val(&self, val: &Val, current: &HashMap<JoinId, SqlVal>) -> Outcome<Operand> {
        let ctx = self.ctx;
        Ok(match val {
            Val::Null => Operand {
                class: Class::Empty,
                ..Operand::expr(SqlVal::Null, Affinity::None)
            },
            Val::Flag(b) => Operand {
                class: Class::NonEmpty,
                ..Operand::expr(SqlVal::Int(i64::from(*b)), Affinity::None)
            },
            Val::Number(n) => Operand::bound(SqlVal::Real(*n)),
            Val::Text(t) => Operand::bound(SqlVal::Text(t.clone())),
            Val::Macro(m) => Operand::bound(m.value(ctx)),
            Val::Runtime(runtime) => Operand::bound(runtime_value(runtime, ctx)),
            Val::RuntimePath(runtime, path) => Operand {
                json: true,
                ..Operand::bound(json_scalar(
                    runtime_json(runtime, ctx).and_then(|v| json_at(v, path)),
                ))
            },
            Val::RuntimeLength(runtime) => Operand::bound(SqlVal::Int(
                multi_items(runtime_json(runtime, ctx)).len() as i64,
            )),
            Val::Isset(runtime) => {
                let set = match runtime {
                    Runtime::Header(name) => ctx.headers.contains_key(name),
                    Runtime::Query(name) => ctx.query.contains_key(name),
                    Runtime::Body { key, .. } => {
                        ctx.body.as_ref().is_some_and(|b| b.contains_key(key))
                    }
                    _ => true,
                };
                Operand {
                    class: Class::NonEmpty,
                    ..Operand::expr(SqlVal::Int(i64::from(set)), Affinity::None)
                }
            }
            Val::Changed { key, column } => {
                let changed = match ctx.body.as_ref().and_then(|b| b.get(key)) {
                    None => false,
                    Some(_) => {
                        let submitted = runtime_value(
                            &Runtime::Body {
                                key: key.clone(),
                                ty: Some(column.ty),
                            },
                            ctx,
                        );
                        let (stored, affinity) = self.column(column)?;
                        if self.row.json_text_differs(&column.name, column.ty) {
                            return Err(NeedsSql);
                        }
                        !is_same(&submitted, Affinity::None, &stored, affinity)?
                    }
                };
                Operand {
                    json: true,
                    ..Operand::expr(SqlVal::Int(i64::from(changed)), Affinity::None)
                }
            }
            Val::Column(column) => {
                let (value, affinity) = self.column(column)?;
                if self.row.json_text_differs(&column.name, column.ty) {
                    return Err(NeedsSql);
                }
                Operand::expr(value, affinity)
            }
            Val::Json { column, path } => {
                let (stored, _) = self.column(column)?;
                Operand {
                    json: true,
                    ..Operand::expr(json_extract(&stored, path)?, Affinity::None)
                }
            }
            Val::Each(id) => Operand::expr(
                current.get(id).cloned().unwrap_or(SqlVal::Null),
                Affinity::Blob,
            ),
            Val::Length(column) => {
                let (stored, _) = self.column(column)?;
                Operand::expr(SqlVal::Int(sqlite_length(&stored)), Affinity::None)
            }
            Val::Lower(inner) => {
                let inner = self.val(inner, current)?;
                if inner.bound {
                    Operand {
                        lowered: true,
                        ..inner
                    }
                } else {
                    Operand {
                        json: inner.json,
                        ..Operand::expr(lower(&inner.value()?)?, Affinity::None)
                    }
                }
            }
            Val::GeoDistance(args) => {
                let mut numbers = [None; 4];
                for (slot, arg) in numbers.iter_mut().zip(args.iter()) {
                    *slot = math_arg(&self.val(arg, current)?.value()?);
                }
                let distance = match numbers {
                    [Some(lon_a), Some(lat_a), Some(lon_b), Some(lat_b)] => {
                        let cosine = lat_a.to_radians().cos()
                            * lat_b.to_radians().cos()
                            * (lon_b.to_radians() - lon_a.to_radians()).cos()
                            + lat_a.to_radians().sin() * lat_b.to_radians().sin();
                        SqlVal::Real(6371.0 * cosine.clamp(-1.0, 1.0).acos())
                    }
                    _ => SqlVal::Null,
                };
                Operand::expr(distance, Affinity::None)
            }
            Val::Strftime { .. } | Val::Auth(_) => return Err(NeedsSql),
        })
    }
}

/// A math function's argument: numbers, or text that looks like one; anything else is NULL.
fn math_arg(value: &SqlVal) -> Option<f64> {
    match crate::value::apply_numeric(value.clone()) {
        SqlVal::Int(i) => Some(i as f64),
        SqlVal::Real(r) => Some(r),
        _ => None,
    }
}

/// PocketBase's json path expression: `json_extract` when the stored text is JSON, else the
/// text itself wrapped as `{"pb": text}`.
fn json_extract(stored: &SqlVal, path: &[PathSeg]) -> Outcome<SqlVal> {
    Ok(match parse_json(stored) {
        Some(document) => exact_json_scalar(json_at(&document, path))?,
        None if path.is_empty() => match stored {
            SqlVal::Null => SqlVal::Null,
            other => other.clone(),
        },
        None => SqlVal::Null,
    })
}

/// `json_array_length` of PocketBase's normalization: arrays by length, empty text or NULL 0,
/// anything else 1.
fn sqlite_length(stored: &SqlVal) -> i64 {
    if let Some(Value::Array(items)) = parse_json(stored) {
        return items.len() as i64;
    }
    match stored {
        SqlVal::Null => 0,
        SqlVal::Text(t) if t.is_empty() => 0,
        _ => 1,
    }
}

fn and3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

fn or3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

/// The comparison as the emitter writes it, evaluated with SQLite's rules.
fn compare_operands(left: &Operand, op: OpKind, right: &Operand) -> Outcome<Option<bool>> {
    Ok(match op {
        OpKind::Eq | OpKind::Neq => equality(left, op == OpKind::Eq, right)?,
        OpKind::Like | OpKind::NotLike => {
            let pattern = if right.bound {
                let raw = bound_like_pattern(&right.raw);
                if right.lowered { lower(&raw)? } else { raw }
            } else {
                match right.value()?.to_text()? {
                    Some(text) => SqlVal::Text(format!("%{text}%")),
                    None => SqlVal::Null,
                }
            };
            let matched = like(&left.value()?, &pattern)?;
            if op == OpKind::NotLike {
                matched.map(|m| !m)
            } else {
                matched
            }
        }
        OpKind::Gt | OpKind::Gte | OpKind::Lt | OpKind::Lte => {
            let ordering = compare(
                &left.value()?,
                left.affinity,
                &right.value()?,
                right.affinity,
            )?;
            ordering.map(|ordering| match op {
                OpKind::Gt => ordering.is_gt(),
                OpKind::Gte => ordering.is_ge(),
                OpKind::Lt => ordering.is_lt(),
                _ => ordering.is_le(),
            })
        }
    })
}

fn equality(left: &Operand, equal: bool, right: &Operand) -> Outcome<Option<bool>> {
    let blank = || (SqlVal::Text(String::new()), Affinity::None);
    let eq = |l: &(SqlVal, Affinity), r: &(SqlVal, Affinity)| -> Outcome<Option<bool>> {
        Ok(if equal {
            compare(&l.0, l.1, &r.0, r.1)?.map(|o| o.is_eq())
        } else {
            Some(!is_same(&l.0, l.1, &r.0, r.1)?)
        })
    };
    let l = (left.value()?, left.affinity);
    let r = (right.value()?, right.affinity);
    Ok(
        match eq_shape(left.class, left.json, right.class, right.json) {
            EqShape::Is => {
                let same = is_same(&l.0, l.1, &r.0, r.1)?;
                Some(if equal { same } else { !same })
            }
            EqShape::BothEmpty => Some(equal),
            EqShape::Direct => {
                let l = if left.class == Class::Empty {
                    blank()
                } else {
                    l
                };
                let r = if right.class == Class::Empty {
                    blank()
                } else {
                    r
                };
                eq(&l, &r)?
            }
            EqShape::LeftEmpty | EqShape::RightEmpty => {
                let column = if left.class == Class::Empty { r } else { l };
                let is_null = column.0 == SqlVal::Null;
                let compared = if left.class == Class::Empty {
                    eq(&blank(), &column)?
                } else {
                    eq(&column, &blank())?
                };
                if equal {
                    or3(compared, Some(is_null))
                } else {
                    and3(compared, Some(!is_null))
                }
            }
            EqShape::Coalesce => {
                let coalesce = |v: (SqlVal, Affinity)| match v.0 {
                    SqlVal::Null => blank(),
                    other => (other, Affinity::None),
                };
                eq(&coalesce(l), &coalesce(r))?
            }
        },
    )
}
