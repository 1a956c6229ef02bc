//! `expand`: relation fields (`author`), nested paths (`post.author`, cut at six levels)
//! and back-relations (`comments_via_post`) resolved into each record's `expand` object.
//!
//! Every path is checked before anything is fetched: a segment that names no relation, a
//! hidden relation field (for non-superusers: its value is hidden from them, so is what it
//! links to), or a related collection whose view rule is superusers-only, drops the whole
//! path silently. Related records are filtered by their collection's view rule for the
//! caller. Each level costs one query per requested relation (ids in batches), never one per
//! record.
//!
//! The work is bounded: paths are de-duplicated by what they resolve to (a back-relation's
//! collection name matches in any case, so `comments_via_post` and `COMMENTS_via_post` are
//! one path, keyed by the first spelling), at most [`MAX_EXPAND_PATHS`] distinct paths are
//! expanded, and the records and bytes an expansion adds to a response are counted
//! ([`MAX_EXPANDED_RECORDS`], [`MAX_EXPAND_BYTES`]) before each copy is made; past either,
//! the request is refused with a 400 rather than answered with an unbounded body.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use domain::index::IndexDef;
use domain::values::string_list;
use domain::{AuthContext, Collection, FieldKind, Record, RecordQuery, Schema, SqlFragment};
use rules::{RequestContext, RuleOutcome};
use serde_json::{Map, Value};

use super::common::reveal_managed_emails;
use crate::access;
use crate::error::{ApiError, ApiResult};
use crate::response::{KeyOrder, record_json_in};
use crate::state::SharedState;

/// Deepest expand path accepted.
pub const MAX_DEPTH: usize = 6;
/// Most distinct (resolved) paths one request may expand.
pub const MAX_EXPAND_PATHS: usize = 64;
/// Most related records an expansion may add to one response (each copy counts).
pub const MAX_EXPANDED_RECORDS: usize = 50_000;
/// Most bytes (serialized JSON) an expansion may add to one response (each copy counts).
pub const MAX_EXPAND_BYTES: usize = 32 << 20;
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

/// [`expand_records_for`] as the realtime hub takes it ([`crate::state::hub::ExpandRecords`]):
/// the crate root hands it to the hub, so realtime does not depend on records.
pub fn expand_for_realtime<'a>(
    state: &'a SharedState,
    ctx: &'a RequestContext,
    collection: &'a Arc<Collection>,
    records: &'a [Record],
    outputs: &'a mut [Value],
    expand: &'a str,
) -> Pin<Box<dyn Future<Output = ApiResult<()>> + Send + 'a>> {
    Box::pin(expand_records_for(
        state,
        ctx,
        collection,
        records,
        outputs,
        Some(expand),
    ))
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
    let paths = parse_expand(param);
    if paths.is_empty() || records.is_empty() {
        return Ok(());
    }
    // Related records are fetched in PocketBase's `expand` request context.
    let expand_ctx = ctx.clone().with_context(rules::contexts::EXPAND);
    let ctx = &expand_ctx;
    let roots = plan(state, ctx, collection, &paths)?;
    if roots.is_empty() {
        return Ok(());
    }
    let mut weights = vec![Weight::default(); outputs.len()];
    let mut budget = Budget::default();
    expand_level(
        state,
        ctx,
        records,
        outputs,
        &mut weights,
        &roots,
        &mut budget,
    )
    .await
}

/// Resolves `paths` into one tree of distinct paths the caller may expand, or the 400 for
/// too many of them.
fn plan(
    state: &SharedState,
    ctx: &RequestContext,
    collection: &Arc<Collection>,
    paths: &[Vec<String>],
) -> ApiResult<Vec<Node>> {
    let schema = state.schema();
    let dialect = state.store.dialect();
    // The view rule of every collection a path reaches, compiled once per schema snapshot
    // and emitted once per request.
    let emitted: std::cell::RefCell<HashMap<String, ViewRule>> = Default::default();
    let view_rule = |target: &Arc<Collection>| -> ViewRule {
        if let Some(known) = emitted.borrow().get(&target.id) {
            return known.clone();
        }
        let rules = access::collection_rules(state, &schema, target);
        let rule = match rules.view.outcome(dialect, ctx) {
            RuleOutcome::SuperusersOnly => ViewRule::Refused,
            RuleOutcome::Allow => ViewRule::Open,
            RuleOutcome::Filter(predicate) => ViewRule::Filter(predicate),
        };
        emitted.borrow_mut().insert(target.id.clone(), rule.clone());
        rule
    };
    let superuser = ctx.auth.is_superuser();
    let mut roots: Vec<Node> = Vec::new();
    let mut resolved: HashSet<Vec<String>> = HashSet::new();
    for segments in paths {
        let Some(steps) = resolve_path(&schema, collection, segments, superuser, &view_rule) else {
            continue;
        };
        let canonical: Vec<String> = steps.iter().map(|s| s.canonical.clone()).collect();
        if !resolved.insert(canonical) {
            continue;
        }
        if resolved.len() > MAX_EXPAND_PATHS {
            return Err(ApiError::bad_request_msg(&format!(
                "Too many expand paths (at most {MAX_EXPAND_PATHS})."
            )));
        }
        insert_path(&mut roots, steps);
    }
    Ok(roots)
}

/// The paths of an `expand` parameter: comma-separated, spaces removed and dots trimmed
/// from both ends of each path (as PocketBase does, observed on 0.40.6: `one.`, `.one` and
/// `o ne` expand `one`; a tab or a no-break space is kept, naming no field), empty entries
/// and repeats dropped, each cut to its first [`MAX_DEPTH`] segments (as PocketBase cuts
/// deeper paths). Pure, for the handlers and the fuzzer.
pub fn parse_expand(param: &str) -> Vec<Vec<String>> {
    let mut seen = HashSet::new();
    let mut paths = Vec::new();
    for raw_path in param.split(',') {
        let spaceless: String = raw_path.chars().filter(|c| *c != ' ').collect();
        let path = spaceless.trim_matches('.');
        if path.is_empty() {
            continue;
        }
        let segments: Vec<String> = path.split('.').take(MAX_DEPTH).map(str::to_owned).collect();
        if seen.insert(segments.clone()) {
            paths.push(segments);
        }
    }
    paths
}

/// What an expanded record costs a response: itself (serialized) and everything expanded
/// under it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Weight {
    records: usize,
    bytes: usize,
}

impl Weight {
    fn of(output: &Value) -> Self {
        Weight {
            records: 1,
            bytes: json_len(output),
        }
    }

    fn add(&mut self, other: Weight) {
        self.records = self.records.saturating_add(other.records);
        self.bytes = self.bytes.saturating_add(other.bytes);
    }
}

/// What one request's expansion has added so far; every copy of a related record is
/// charged before it is made.
#[derive(Debug, Default)]
struct Budget {
    used: Weight,
}

impl Budget {
    fn charge(&mut self, weight: Weight) -> ApiResult<()> {
        self.used.add(weight);
        self.check()
    }

    /// Whether `more` records could still fit.
    fn fits_records(&self, more: usize) -> ApiResult<()> {
        if self.used.records.saturating_add(more) > MAX_EXPANDED_RECORDS {
            return Err(too_much());
        }
        Ok(())
    }

    fn check(&self) -> ApiResult<()> {
        if self.used.records > MAX_EXPANDED_RECORDS || self.used.bytes > MAX_EXPAND_BYTES {
            return Err(too_much());
        }
        Ok(())
    }
}

fn too_much() -> ApiError {
    ApiError::bad_request_msg(
        "The expanded records are too many; expand fewer paths or ask for a smaller page.",
    )
}

/// The length of `value` serialized, without building the text.
fn json_len(value: &Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => counter.0,
        Err(_) => usize::MAX,
    }
}

/// One resolved step of a path, and the steps requested below it.
#[derive(Debug, Clone)]
struct Node {
    /// The key as requested (it names the entry in `expand`).
    key: String,
    /// What the key resolves to, whatever its spelling: the relation field's name, or the
    /// back-relation's collection id and field name.
    canonical: String,
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
        /// A unique index on the field: at most one record, shown as an object.
        single: bool,
    },
}

/// What a related collection's view rule means for the caller.
#[derive(Clone)]
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
    segments: &[String],
    superuser: bool,
    view_rule: &dyn Fn(&Arc<Collection>) -> ViewRule,
) -> Option<Vec<Node>> {
    let mut current = root.clone();
    let mut steps = Vec::with_capacity(segments.len());
    for segment in segments {
        let (target, link) = resolve_segment(schema, &current, segment, superuser)?;
        let rule = match view_rule(&target) {
            ViewRule::Refused => return None,
            ViewRule::Open => None,
            ViewRule::Filter(predicate) => Some(predicate),
        };
        let canonical = match &link {
            Link::Forward { field, .. } => field.clone(),
            Link::Back { field, .. } => format!("{}_via_{field}", target.id),
        };
        steps.push(Node {
            key: segment.clone(),
            canonical,
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
    superuser: bool,
) -> Option<(Arc<Collection>, Link)> {
    if let Some(field) = parent.field(segment) {
        let FieldKind::Relation(options) = &field.kind else {
            return None;
        };
        if field.hidden && !superuser {
            return None;
        }
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
    if field.hidden && !superuser {
        return None;
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
            single,
        },
    ))
}

/// Merges a resolved path into the tree (paths sharing a resolved prefix share its nodes,
/// named by the first spelling requested).
fn insert_path(nodes: &mut Vec<Node>, steps: Vec<Node>) {
    let mut steps = steps.into_iter();
    let Some(first) = steps.next() else {
        return;
    };
    let position = match nodes.iter().position(|n| n.canonical == first.canonical) {
        Some(position) => position,
        None => {
            nodes.push(first);
            nodes.len() - 1
        }
    };
    insert_path(&mut nodes[position].children, steps.collect());
}

type LevelFuture<'a> = Pin<Box<dyn Future<Output = ApiResult<()>> + Send + 'a>>;

/// Inserts `key` into `object`, whose keys are sorted byte by byte, where PocketBase's sorted
/// keys put it (a record's `expand`, and the keys of the expand map).
fn insert_sorted(object: &mut Map<String, Value>, key: String, value: Value) {
    let at = object
        .keys()
        .position(|existing| existing.as_bytes() > key.as_bytes())
        .unwrap_or(object.len());
    object.shift_insert(at, key, value);
}

/// Expands one level for a set of records of the same collection, then recurses into the
/// related records once per distinct record. `weights` (index for index with `outputs`)
/// grow by what is attached under each record.
fn expand_level<'a>(
    state: &'a SharedState,
    ctx: &'a RequestContext,
    records: &'a [Record],
    outputs: &'a mut [Value],
    weights: &'a mut [Weight],
    nodes: &'a [Node],
    budget: &'a mut Budget,
) -> LevelFuture<'a> {
    Box::pin(async move {
        for output in outputs.iter_mut() {
            if let Some(object) = output.as_object_mut()
                && !object.contains_key("expand")
            {
                insert_sorted(object, "expand".to_owned(), Value::Object(Map::new()));
            }
        }
        for node in nodes {
            let related = fetch_related(state, node, records, budget).await?;
            let order = KeyOrder::of(&node.target);
            let mut related_outputs: Vec<Value> = related
                .iter()
                .map(|record| record_json_in(&order, &node.target, record, &ctx.auth))
                .collect();
            // Managers of an expanded auth record see its email, as on its own endpoints.
            reveal_managed_emails(state, ctx, &node.target, &related, &mut related_outputs).await?;
            let mut related_weights: Vec<Weight> = related_outputs.iter().map(Weight::of).collect();
            if !node.children.is_empty() && !related.is_empty() {
                // The related records expanded here are templates: only their copies reach
                // the response, and `attach` below charges each copy with everything under
                // it. So the templates are checked against what is left of the budget
                // (they must fit too) but not charged to it, or every nested level would be
                // counted twice.
                let mut templates = Budget { used: budget.used };
                expand_level(
                    state,
                    ctx,
                    &related,
                    &mut related_outputs,
                    &mut related_weights,
                    &node.children,
                    &mut templates,
                )
                .await?;
            }
            attach(
                node,
                records,
                outputs,
                weights,
                &related,
                &related_outputs,
                &related_weights,
                budget,
            )?;
        }
        Ok(())
    })
}

/// Puts each record's related records under `expand.<key>`; nothing found adds no key.
/// Each copy is charged to `budget` before it is made.
#[allow(clippy::too_many_arguments)]
fn attach(
    node: &Node,
    records: &[Record],
    outputs: &mut [Value],
    weights: &mut [Weight],
    related: &[Record],
    related_outputs: &[Value],
    related_weights: &[Weight],
    budget: &mut Budget,
) -> ApiResult<()> {
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
    for ((record, output), weight) in records
        .iter()
        .zip(outputs.iter_mut())
        .zip(weights.iter_mut())
    {
        let (indexes, multiple): (Vec<usize>, bool) = match &node.link {
            Link::Forward { field, multiple } => (
                string_list(record.get(field).unwrap_or(&Value::Null))
                    .iter()
                    .filter_map(|id| by_id.get(id.as_str()).copied())
                    .collect(),
                *multiple,
            ),
            Link::Back { single, .. } => (
                referencing
                    .get(record.id())
                    .map(|indexes| indexes.iter().take(MAX_BACK_RELATIONS).copied().collect())
                    .unwrap_or_default(),
                !single,
            ),
        };
        let mut found = Vec::with_capacity(indexes.len());
        for i in indexes {
            budget.charge(related_weights[i])?;
            weight.add(related_weights[i]);
            found.push(related_outputs[i].clone());
        }
        if let (Some(value), Some(Value::Object(expand))) =
            (shape(found, multiple), output.get_mut("expand"))
        {
            insert_sorted(expand, node.key.clone(), value);
        }
    }
    Ok(())
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
    budget: &Budget,
) -> ApiResult<Vec<Record>> {
    let mut found = Vec::new();
    match &node.link {
        Link::Forward { field, .. } => {
            let mut seen: HashSet<String> = HashSet::new();
            let mut ids: Vec<String> = Vec::new();
            for record in records {
                for id in string_list(record.get(field).unwrap_or(&Value::Null)) {
                    if seen.insert(id.clone()) {
                        ids.push(id);
                    }
                }
            }
            // Every record fetched is attached at least once: more than the budget can take
            // is refused before it is read.
            budget.fits_records(ids.len())?;
            for batch in ids.chunks(ID_BATCH) {
                let condition = state.store.field_holds_any(&node.target, "id", batch);
                let page = query(state, node, vec![condition], 1, batch.len() as u64).await?;
                found.extend(page);
            }
        }
        Link::Back { field, .. } => {
            let parent_ids: Vec<String> = records.iter().map(|r| r.id().to_owned()).collect();
            for batch in parent_ids.chunks(ID_BATCH) {
                // A multiple field holds a list: the store finds the lists holding any id.
                let condition = state.store.field_holds_any(&node.target, field, batch);
                let cap = batch.len() * MAX_BACK_RELATIONS;
                let mut page_number = 1;
                loop {
                    let page =
                        query(state, node, vec![condition.clone()], page_number, BACK_PAGE).await?;
                    let full = page.len() as u64 == BACK_PAGE;
                    found.extend(page);
                    budget.fits_records(found.len())?;
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
            // No order: the plan's, as in PocketBase's own read of them (insertion order
            // for a table scan).
            sort: Vec::new(),
            page,
            per_page,
            with_total: false,
        })
        .await?;
    Ok(result.items)
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

    /// [`resolve_path`] for a guest.
    fn resolve(
        schema: &Schema,
        root: &Arc<Collection>,
        segments: &[&str],
        view_rule: &dyn Fn(&Arc<Collection>) -> ViewRule,
    ) -> Option<Vec<Node>> {
        let segments: Vec<String> = segments.iter().map(|s| (*s).to_owned()).collect();
        resolve_path(schema, root, &segments, false, view_rule)
    }

    #[test]
    fn paths_resolve_forward_and_back_relations() {
        let (schema, posts) = schema();
        let superuser_free = guest_rules;
        // Users' view rule is an expression: a filter for guests, not a refusal.
        let steps = resolve(&schema, &posts, &["author"], &superuser_free).expect("valid");
        assert!(matches!(
            &steps[0].link,
            Link::Forward {
                multiple: false,
                ..
            }
        ));
        assert!(steps[0].rule.is_some());
        let back = resolve(&schema, &posts, &["COMMENTS_via_post"], &superuser_free)
            .expect("valid back-relation");
        assert_eq!(back[0].key, "COMMENTS_via_post");
        assert!(matches!(&back[0].link, Link::Back { single: true, .. }));
        let nested = resolve(
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
                resolve(&schema, &posts, bad, &superuser_free).is_none(),
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
                resolve(&schema, &posts, path, &guest).expect("valid"),
            );
        }
        assert_eq!(roots.len(), 2);
        assert_eq!(roots[0].children.len(), 1);
        assert_eq!(roots[0].children[0].key, "post");
    }

    #[test]
    fn case_variants_of_a_back_relation_are_one_path() {
        let (schema, posts) = schema();
        let guest = guest_rules;
        let mut roots = Vec::new();
        let mut resolved = HashSet::new();
        for path in parse_expand("COMMENTS_via_post.post, comments_via_post.post,Comments_VIA_post")
        {
            let Some(steps) = resolve_path(&schema, &posts, &path, false, &guest) else {
                continue;
            };
            if resolved.insert(
                steps
                    .iter()
                    .map(|s| s.canonical.clone())
                    .collect::<Vec<_>>(),
            ) {
                insert_path(&mut roots, steps);
            }
        }
        assert_eq!(resolved.len(), 1, "one distinct path");
        assert_eq!(roots.len(), 1);
        assert_eq!(
            roots[0].key, "COMMENTS_via_post",
            "named by the first spelling"
        );
    }

    #[test]
    fn hidden_relations_expand_for_superusers_only() {
        let (schema, posts) = schema();
        let mut hidden = (*posts).clone();
        for field in &mut hidden.fields {
            if field.name == "author" {
                field.hidden = true;
            }
        }
        let hidden = Arc::new(hidden);
        let author = ["author".to_owned()];
        assert!(resolve_path(&schema, &hidden, &author, false, &guest_rules).is_none());
        assert!(resolve_path(&schema, &hidden, &author, true, &guest_rules).is_some());
        // A back-relation through a hidden field reveals the same link.
        let mut comments = (**schema.get("comments").expect("comments")).clone();
        for field in &mut comments.fields {
            if field.name == "post" {
                field.hidden = true;
            }
        }
        let schema = Schema::new(vec![
            (**schema.get("users").expect("users")).clone(),
            (*posts).clone(),
            comments,
        ]);
        let posts = schema.get("posts").cloned().expect("posts");
        let back = ["comments_via_post".to_owned()];
        assert!(resolve_path(&schema, &posts, &back, false, &guest_rules).is_none());
        assert!(resolve_path(&schema, &posts, &back, true, &guest_rules).is_some());
    }

    #[test]
    fn expand_parameters_parse_bounded() {
        assert_eq!(
            parse_expand(" a . b ,, a.b,c.d.e.f.g.h.i"),
            vec![
                vec!["a".to_owned(), "b".to_owned()],
                ["c", "d", "e", "f", "g", "h"].map(str::to_owned).to_vec(),
            ]
        );
        assert!(parse_expand("").is_empty());
        // Dots at either end go; a tab is not a space; a path of dots is no path.
        assert_eq!(
            parse_expand("one.,.one,..two..,one\t,...,a..b"),
            vec![
                vec!["one".to_owned()],
                vec!["two".to_owned()],
                vec!["one\t".to_owned()],
                vec!["a".to_owned(), String::new(), "b".to_owned()],
            ]
        );
        let mut budget = Budget::default();
        let big = Weight {
            records: 1,
            bytes: MAX_EXPAND_BYTES,
        };
        assert!(budget.charge(big).is_ok());
        assert!(budget.charge(Weight::of(&Value::Null)).is_err());
        assert_eq!(json_len(&serde_json::json!({"a": [1, "x"]})), 13);
    }
}
