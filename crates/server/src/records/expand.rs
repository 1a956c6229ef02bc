//! `expand`: relation fields (`author`), nested paths (`post.author`, cut at six levels)
//! and back-relations (`comments_via_post`) resolved into each record's `expand` object.
//!
//! Every path is checked before anything is fetched: a segment that names no relation, or a
//! related collection whose view rule is superusers-only, drops the whole path silently.
//! Related records are filtered by their collection's view rule for the caller. Each level
//! costs one query per requested relation (ids in batches), never one per record.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use domain::index::IndexDef;
use domain::values::string_list;
use domain::{
    AuthContext, Collection, Dialect, FieldKind, Record, RecordQuery, Schema, SqlFragment, SqlValue,
};
use rules::{RequestContext, RuleOutcome};
use serde_json::{Map, Value};

use super::common::reveal_managed_emails;
use crate::access;
use crate::error::ApiResult;
use crate::response::record_json;
use crate::state::SharedState;

/// Deepest expand path accepted.
const MAX_DEPTH: usize = 6;
/// Most records a back-relation lists for one record.
const MAX_BACK_RELATIONS: usize = 1000;
/// Ids per lookup query.
const ID_BATCH: usize = 500;
/// Page size of back-relation queries.
const BACK_PAGE: u64 = 1000;

/// Expands `records` (whose public JSON is `outputs`, index for index) along the paths of
/// the `expand` parameter, for a caller seen through a plain `GET` request (no headers, query
/// or body for the related collections' view rules). Prefer [`expand_records_for`] when the
/// request is at hand.
pub async fn expand_records(
    state: &SharedState,
    auth: &AuthContext,
    collection: &Arc<Collection>,
    records: &[Record],
    outputs: &mut [Value],
    param: Option<&str>,
) -> ApiResult<()> {
    let ctx = RequestContext::new(auth.clone());
    expand_records_for(state, &ctx, collection, records, outputs, param).await
}

/// [`expand_records`] with the request's own context: each related collection's view rule
/// sees the request's `@request.*` values.
pub async fn expand_records_for(
    state: &SharedState,
    ctx: &RequestContext,
    collection: &Arc<Collection>,
    records: &[Record],
    outputs: &mut [Value],
    param: Option<&str>,
) -> ApiResult<()> {
    let Some(param) = param else {
        return Ok(());
    };
    // Related records are fetched in PocketBase's `expand` request context.
    let expand_ctx = ctx.clone().with_context(rules::contexts::EXPAND);
    let ctx = &expand_ctx;
    let schema = state.schema();
    let dialect = state.store.dialect();
    // The view rule of every collection a path reaches, compiled once per schema snapshot.
    let view_rule = |target: &Arc<Collection>| -> ViewRule {
        let rules = access::collection_rules(state, &schema, target);
        match rules.view.outcome(dialect, ctx) {
            RuleOutcome::SuperusersOnly => ViewRule::Refused,
            RuleOutcome::Allow => ViewRule::Open,
            RuleOutcome::Filter(predicate) => ViewRule::Filter(predicate),
        }
    };
    let mut roots: Vec<Node> = Vec::new();
    for raw_path in param.split(',') {
        let path: String = raw_path.chars().filter(|c| !c.is_whitespace()).collect();
        if path.is_empty() {
            continue;
        }
        // Deeper paths are cut to the first six levels, as PocketBase does.
        let segments: Vec<&str> = path.split('.').take(MAX_DEPTH).collect();
        if let Some(steps) = resolve_path(&schema, collection, &segments, &view_rule) {
            insert_path(&mut roots, steps);
        }
    }
    if roots.is_empty() || records.is_empty() {
        return Ok(());
    }
    expand_level(state, ctx, records, outputs, &roots).await
}

/// One resolved step of a path, and the steps requested below it.
#[derive(Debug, Clone)]
struct Node {
    /// The key as requested (it names the entry in `expand`).
    key: String,
    target: Arc<Collection>,
    link: Link,
    /// The target's view rule for the caller (`None`: unrestricted).
    rule: Option<SqlFragment>,
    children: Vec<Node>,
}

#[derive(Debug, Clone)]
enum Link {
    /// A relation field of the parent holding target ids.
    Forward { field: String, multiple: bool },
    /// A relation field of the target holding parent ids.
    Back {
        field: String,
        field_multiple: bool,
        /// A unique index on the field: at most one record, shown as an object.
        single: bool,
    },
}

/// What a related collection's view rule means for the caller.
enum ViewRule {
    /// Superusers only: the path is dropped.
    Refused,
    Open,
    Filter(SqlFragment),
}

/// Resolves every segment, or `None` when any segment is not expandable for the caller.
fn resolve_path(
    schema: &Schema,
    root: &Arc<Collection>,
    segments: &[&str],
    view_rule: &dyn Fn(&Arc<Collection>) -> ViewRule,
) -> Option<Vec<Node>> {
    let mut current = root.clone();
    let mut steps = Vec::with_capacity(segments.len());
    for segment in segments {
        let (target, link) = resolve_segment(schema, &current, segment)?;
        let rule = match view_rule(&target) {
            ViewRule::Refused => return None,
            ViewRule::Open => None,
            ViewRule::Filter(predicate) => Some(predicate),
        };
        steps.push(Node {
            key: (*segment).to_owned(),
            target: target.clone(),
            link,
            rule,
            children: Vec::new(),
        });
        current = target;
    }
    Some(steps)
}

fn resolve_segment(
    schema: &Schema,
    parent: &Collection,
    segment: &str,
) -> Option<(Arc<Collection>, Link)> {
    if let Some(field) = parent.field(segment) {
        let FieldKind::Relation(options) = &field.kind else {
            return None;
        };
        let target = schema.get_by_id(&options.collection_id)?.clone();
        return Some((
            target,
            Link::Forward {
                field: field.name.clone(),
                multiple: field.is_multiple(),
            },
        ));
    }
    let (collection_name, field_name) = segment.split_once("_via_")?;
    let target = schema.get(collection_name)?.clone();
    let field = target.field(field_name)?;
    match &field.kind {
        FieldKind::Relation(options) if options.collection_id == parent.id => {}
        _ => return None,
    }
    let single = target.indexes.iter().any(|sql| {
        IndexDef::parse(sql).is_ok_and(|index| {
            index.condition.is_none()
                && index
                    .unique_columns()
                    .is_some_and(|columns| columns.len() == 1 && columns[0] == field.name)
        })
    });
    Some((
        target.clone(),
        Link::Back {
            field: field.name.clone(),
            field_multiple: field.is_multiple(),
            single,
        },
    ))
}

/// Merges a resolved path into the tree (paths sharing a prefix share its nodes).
fn insert_path(nodes: &mut Vec<Node>, steps: Vec<Node>) {
    let mut steps = steps.into_iter();
    let Some(first) = steps.next() else {
        return;
    };
    let position = match nodes.iter().position(|n| n.key == first.key) {
        Some(position) => position,
        None => {
            nodes.push(first);
            nodes.len() - 1
        }
    };
    insert_path(&mut nodes[position].children, steps.collect());
}

type LevelFuture<'a> = Pin<Box<dyn Future<Output = ApiResult<()>> + Send + 'a>>;

/// Expands one level for a set of records of the same collection, then recurses into the
/// related records once per distinct record.
fn expand_level<'a>(
    state: &'a SharedState,
    ctx: &'a RequestContext,
    records: &'a [Record],
    outputs: &'a mut [Value],
    nodes: &'a [Node],
) -> LevelFuture<'a> {
    Box::pin(async move {
        for output in outputs.iter_mut() {
            if let Some(object) = output.as_object_mut() {
                object
                    .entry("expand")
                    .or_insert_with(|| Value::Object(Map::new()));
            }
        }
        for node in nodes {
            let related = fetch_related(state, node, records).await?;
            let mut related_outputs: Vec<Value> = related
                .iter()
                .map(|record| record_json(&node.target, record, &ctx.auth))
                .collect();
            // Managers of an expanded auth record see its email, as on its own endpoints.
            reveal_managed_emails(state, ctx, &node.target, &related, &mut related_outputs).await?;
            if !node.children.is_empty() && !related.is_empty() {
                expand_level(state, ctx, &related, &mut related_outputs, &node.children).await?;
            }
            attach(node, records, outputs, &related, &related_outputs);
        }
        Ok(())
    })
}

/// Puts each record's related records under `expand.<key>`; nothing found adds no key.
fn attach(
    node: &Node,
    records: &[Record],
    outputs: &mut [Value],
    related: &[Record],
    related_outputs: &[Value],
) {
    let by_id: HashMap<&str, usize> = related
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id(), i))
        .collect();
    let mut referencing: HashMap<String, Vec<usize>> = HashMap::new();
    if let Link::Back { field, .. } = &node.link {
        for (i, record) in related.iter().enumerate() {
            for parent_id in string_list(record.get(field).unwrap_or(&Value::Null)) {
                referencing.entry(parent_id).or_default().push(i);
            }
        }
    }
    for (record, output) in records.iter().zip(outputs.iter_mut()) {
        let value = match &node.link {
            Link::Forward { field, multiple } => {
                let found: Vec<Value> = string_list(record.get(field).unwrap_or(&Value::Null))
                    .iter()
                    .filter_map(|id| by_id.get(id.as_str()))
                    .map(|i| related_outputs[*i].clone())
                    .collect();
                shape(found, *multiple)
            }
            Link::Back { single, .. } => {
                let found: Vec<Value> = referencing
                    .get(record.id())
                    .map(|indexes| {
                        indexes
                            .iter()
                            .take(MAX_BACK_RELATIONS)
                            .map(|i| related_outputs[*i].clone())
                            .collect()
                    })
                    .unwrap_or_default();
                shape(found, !single)
            }
        };
        if let (Some(value), Some(Value::Object(expand))) = (value, output.get_mut("expand")) {
            expand.insert(node.key.clone(), value);
        }
    }
}

fn shape(found: Vec<Value>, multiple: bool) -> Option<Value> {
    if found.is_empty() {
        None
    } else if multiple {
        Some(Value::Array(found))
    } else {
        found.into_iter().next()
    }
}

/// The distinct related records of every record in `records` that the caller may view.
async fn fetch_related(
    state: &SharedState,
    node: &Node,
    records: &[Record],
) -> ApiResult<Vec<Record>> {
    let dialect = state.store.dialect();
    let table = node.target.name.as_str();
    let mut found = Vec::new();
    match &node.link {
        Link::Forward { field, .. } => {
            let mut ids: Vec<String> = Vec::new();
            for record in records {
                for id in string_list(record.get(field).unwrap_or(&Value::Null)) {
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
            }
            for batch in ids.chunks(ID_BATCH) {
                let condition = in_list(dialect, SqlFragment::column(table, "id"), batch);
                let page = query(state, node, vec![condition], 1, batch.len() as u64).await?;
                found.extend(page);
            }
        }
        Link::Back {
            field,
            field_multiple,
            ..
        } => {
            let parent_ids: Vec<String> = records.iter().map(|r| r.id().to_owned()).collect();
            for batch in parent_ids.chunks(ID_BATCH) {
                let condition = if *field_multiple {
                    json_array_overlaps(dialect, table, field, batch)
                } else {
                    in_list(dialect, SqlFragment::column(table, field), batch)
                };
                let cap = batch.len() * MAX_BACK_RELATIONS;
                let mut page_number = 1;
                loop {
                    let page =
                        query(state, node, vec![condition.clone()], page_number, BACK_PAGE).await?;
                    let full = page.len() as u64 == BACK_PAGE;
                    found.extend(page);
                    if !full || found.len() >= cap {
                        break;
                    }
                    page_number += 1;
                }
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    found.retain(|record| seen.insert(record.id().to_owned()));
    Ok(found)
}

/// One page of the target collection under `filters` and the view rule.
async fn query(
    state: &SharedState,
    node: &Node,
    mut filters: Vec<SqlFragment>,
    page: u64,
    per_page: u64,
) -> ApiResult<Vec<Record>> {
    filters.extend(node.rule.clone());
    let result = state
        .store
        .list_records(RecordQuery {
            collection: node.target.clone(),
            filters,
            // The store's default order is insertion order, which PocketBase shows too.
            sort: Vec::new(),
            page,
            per_page,
            with_total: false,
        })
        .await?;
    Ok(result.items)
}

/// `column IN (…ids…)`, with the ids bound as one JSON array parameter.
pub(super) fn in_list(dialect: Dialect, column: SqlFragment, ids: &[String]) -> SqlFragment {
    let mut fragment = column;
    let list = SqlValue::Text(serde_json::to_string(ids).unwrap_or_else(|_| "[]".into()));
    match dialect {
        Dialect::Sqlite => fragment
            .push_sql(" IN (SELECT value FROM json_each(")
            .push_param(list)
            .push_sql(")"),
        Dialect::Postgres => fragment
            .push_sql(" IN (SELECT jsonb_array_elements_text(")
            .push_param(list)
            .push_sql("::jsonb)"),
    };
    fragment.push_sql(")");
    fragment
}

/// Whether a multiple relation column (a JSON array of ids) holds any of `ids`.
fn json_array_overlaps(dialect: Dialect, table: &str, field: &str, ids: &[String]) -> SqlFragment {
    let column = SqlFragment::column(table, field).sql;
    let element = SqlFragment::raw("rel.value");
    let mut fragment = match dialect {
        Dialect::Sqlite => SqlFragment::raw(format!(
            "EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid({column}) THEN {column} ELSE '[]' END) AS rel WHERE "
        )),
        Dialect::Postgres => SqlFragment::raw(format!(
            "EXISTS (SELECT 1 FROM jsonb_array_elements_text({column}::jsonb) AS rel(value) WHERE "
        )),
    };
    fragment.push_fragment(in_list(dialect, element, ids));
    fragment.push_sql(")");
    fragment
}

#[cfg(test)]
mod tests {
    use domain::collection::users_collection;
    use domain::field::{Field, RelationOptions};

    use super::*;

    fn schema() -> (Schema, Arc<Collection>) {
        let users = users_collection("");
        let mut posts = Collection::scaffold(domain::CollectionType::Base, "posts");
        posts.id = "pbc_posts".into();
        posts.view_rule = Some(String::new());
        posts.fields.push(Field::new(
            "author",
            FieldKind::Relation(RelationOptions {
                collection_id: users.id.clone(),
                max_select: 1,
                ..Default::default()
            }),
        ));
        let mut comments = Collection::scaffold(domain::CollectionType::Base, "comments");
        comments.id = "pbc_comments".into();
        comments.view_rule = Some(String::new());
        comments.fields.push(Field::new(
            "post",
            FieldKind::Relation(RelationOptions {
                collection_id: posts.id.clone(),
                max_select: 1,
                ..Default::default()
            }),
        ));
        comments.indexes = vec!["CREATE UNIQUE INDEX idx_post ON comments (post)".to_owned()];
        let schema = Schema::new(vec![users, posts, comments]);
        let posts = schema.get("posts").cloned().expect("posts exist");
        (schema, posts)
    }

    /// View rules as a guest sees them, without compiling: expressions filter.
    fn guest_rules(collection: &Arc<Collection>) -> ViewRule {
        match collection.view_rule.as_deref() {
            None => ViewRule::Refused,
            Some("") => ViewRule::Open,
            Some(_) => ViewRule::Filter(SqlFragment::raw("0")),
        }
    }

    #[test]
    fn paths_resolve_forward_and_back_relations() {
        let (schema, posts) = schema();
        let superuser_free = guest_rules;
        // Users' view rule is an expression: a filter for guests, not a refusal.
        let steps = resolve_path(&schema, &posts, &["author"], &superuser_free).expect("valid");
        assert!(matches!(
            &steps[0].link,
            Link::Forward {
                multiple: false,
                ..
            }
        ));
        assert!(steps[0].rule.is_some());
        let back = resolve_path(&schema, &posts, &["COMMENTS_via_post"], &superuser_free)
            .expect("valid back-relation");
        assert_eq!(back[0].key, "COMMENTS_via_post");
        assert!(matches!(&back[0].link, Link::Back { single: true, .. }));
        let nested = resolve_path(
            &schema,
            &posts,
            &["comments_via_post", "post", "author"],
            &superuser_free,
        );
        assert_eq!(nested.map(|s| s.len()), Some(3));
        for bad in [
            &["nope"][..],
            &["id"],
            &["author", "nope"],
            &["comments_via_nope"],
            &["nope_via_post"],
            &["comments_via_id"],
        ] {
            assert!(
                resolve_path(&schema, &posts, bad, &superuser_free).is_none(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn paths_sharing_a_prefix_share_nodes() {
        let (schema, posts) = schema();
        let guest = guest_rules;
        let mut roots = Vec::new();
        for path in [
            &["comments_via_post", "post"][..],
            &["comments_via_post"],
            &["author"],
        ] {
            insert_path(
                &mut roots,
                resolve_path(&schema, &posts, path, &guest).expect("valid"),
            );
        }
        assert_eq!(roots.len(), 2);
        assert_eq!(roots[0].children.len(), 1);
        assert_eq!(roots[0].children[0].key, "post");
    }

    #[test]
    fn id_lists_bind_one_json_parameter() {
        let ids = vec!["a".to_owned(), "b\"".to_owned()];
        let fragment = in_list(Dialect::Sqlite, SqlFragment::column("t", "id"), &ids);
        assert_eq!(
            fragment.sql,
            "\"t\".\"id\" IN (SELECT value FROM json_each(?))"
        );
        assert_eq!(
            fragment.params,
            vec![SqlValue::Text("[\"a\",\"b\\\"\"]".into())]
        );
        let overlap = json_array_overlaps(Dialect::Sqlite, "t", "likers", &ids);
        assert!(
            overlap.sql.starts_with(
                "EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid(\"t\".\"likers\")"
            )
        );
        assert!(
            overlap
                .sql
                .ends_with("rel.value IN (SELECT value FROM json_each(?)))")
        );
        assert_eq!(overlap.params.len(), 1);
    }
}
