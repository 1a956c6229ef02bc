//! The checks' shared vocabulary: a fresh store with shorthands for the port's calls, field
//! and collection builders, and predicates compiled by `rules` for the engine's dialect.

use std::sync::Arc;

use domain::collection::{Collection, CollectionType, SUPERUSERS_NAME};
use domain::field::{
    BasicOptions, DateOptions, Field, FieldKind, JsonOptions, NumberOptions, RelationOptions,
    TextOptions,
};
use domain::record::{Record, RecordData};
use domain::store::SortTerm;
use domain::{
    AuthContext, Dialect, RecordPage, RecordQuery, SqlFragment, Store, StoreError, UpdateFn,
    WriteError, WriteOp, WriteResult,
};
use serde_json::{Value, json};

use crate::{Engine, KnownDifference, OpenOptions, Opened};

/// A fresh store of the engine under test. Dropping it closes nothing explicitly: the
/// engine's own drop does (the store goes before what it needs kept alive).
pub(crate) struct Fixture {
    pub store: Arc<dyn Store>,
    pub dialect: Dialect,
    pub engine: &'static str,
    // Read by a check only while some engine declares a difference it tests (none today).
    #[allow(dead_code)]
    known_differences: Vec<KnownDifference>,
    _keep_alive: Box<dyn std::any::Any + Send + Sync>,
}

pub(crate) async fn open(engine: &Engine) -> Fixture {
    open_with(engine, OpenOptions::default()).await
}

pub(crate) async fn open_with(engine: &Engine, options: OpenOptions) -> Fixture {
    let Opened { store, keep_alive } = (engine.open)(options).await;
    assert_eq!(
        store.dialect(),
        engine.dialect,
        "{}: the store's dialect is the engine's",
        engine.name
    );
    Fixture {
        store,
        dialect: engine.dialect,
        engine: engine.name,
        known_differences: engine.known_differences.clone(),
        _keep_alive: keep_alive,
    }
}

impl Fixture {
    /// Whether the engine declared `difference` (then a check holds it to its current
    /// behaviour instead of the documented one). Unused while no engine declares one.
    #[allow(dead_code)]
    pub fn differs(&self, difference: KnownDifference) -> bool {
        self.known_differences.contains(&difference)
    }

    /// The collection `name` in the current schema snapshot.
    pub fn collection(&self, name: &str) -> Arc<Collection> {
        self.store
            .schema()
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("{}: collection {name} exists", self.engine))
    }

    pub async fn create_collection(&self, collection: Collection) -> Arc<Collection> {
        let name = collection.name.clone();
        let schema = self
            .store
            .create_collection(collection)
            .await
            .unwrap_or_else(|e| panic!("{}: collection {name} created: {e:?}", self.engine));
        schema
            .get(&name)
            .cloned()
            .unwrap_or_else(|| panic!("{}: the returned schema holds {name}", self.engine))
    }

    /// One create op with complete data (zero values, a fresh id, then `values`).
    pub fn create_op(&self, name: &str, values: Value) -> WriteOp {
        let collection = self.collection(name);
        let data = record_data(&collection, values);
        WriteOp::Create {
            collection,
            data,
            guard: None,
        }
    }

    pub fn update_op(&self, name: &str, id: &str, changes: Value) -> WriteOp {
        WriteOp::Update {
            collection: self.collection(name),
            id: id.to_owned(),
            guard: None,
            apply: merge(changes),
            known: None,
        }
    }

    pub fn delete_op(&self, name: &str, id: &str) -> WriteOp {
        WriteOp::Delete {
            collection: self.collection(name),
            id: id.to_owned(),
            guard: None,
        }
    }

    pub async fn write(&self, ops: Vec<WriteOp>) -> Result<Vec<WriteResult>, WriteError> {
        self.store.write(ops).await
    }

    pub async fn try_create(&self, name: &str, values: Value) -> Result<Record, StoreError> {
        let op = self.create_op(name, values);
        one(self.store.write(vec![op]).await)
    }

    pub async fn create(&self, name: &str, values: Value) -> Record {
        let shown = values.to_string();
        self.try_create(name, values)
            .await
            .unwrap_or_else(|e| panic!("{}: {name} {shown} created: {e:?}", self.engine))
    }

    pub async fn try_update(
        &self,
        name: &str,
        id: &str,
        changes: Value,
    ) -> Result<Record, StoreError> {
        let op = self.update_op(name, id, changes);
        one(self.store.write(vec![op]).await)
    }

    pub async fn update(&self, name: &str, id: &str, changes: Value) -> Record {
        self.try_update(name, id, changes)
            .await
            .unwrap_or_else(|e| panic!("{}: {name}/{id} updated: {e:?}", self.engine))
    }

    pub async fn try_delete(&self, name: &str, id: &str) -> Result<WriteResult, StoreError> {
        let op = self.delete_op(name, id);
        let mut results = self.store.write(vec![op]).await.map_err(|e| e.error)?;
        assert_eq!(results.len(), 1, "{}: one result per op", self.engine);
        Ok(results.remove(0))
    }

    pub async fn get(&self, name: &str, id: &str) -> Option<Record> {
        self.store
            .get_record(self.collection(name), id, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("{}: {name}/{id} read: {e:?}", self.engine))
    }

    /// A filter in the rules language, compiled for a superuser and emitted for the dialect.
    pub fn filter(&self, name: &str, text: &str) -> SqlFragment {
        let schema = self.store.schema();
        let collection = self.collection(name);
        let compiled = rules::compile_filter(&schema, &collection, text, &superuser(&self.store))
            .unwrap_or_else(|e| panic!("filter {text:?} compiles: {e:?}"))
            .unwrap_or_else(|| panic!("filter {text:?} is not empty"));
        compiled.to_sql(self.dialect, &context(&self.store))
    }

    /// A sort in the rules language: its terms and the filters that come with them.
    pub fn sort(&self, name: &str, text: &str) -> (Vec<SortTerm>, Vec<SqlFragment>) {
        let schema = self.store.schema();
        let collection = self.collection(name);
        let compiled = rules::compile_sort(&schema, &collection, text, &superuser(&self.store))
            .unwrap_or_else(|e| panic!("sort {text:?} compiles: {e:?}"));
        let sql = compiled.to_sql(self.dialect, &context(&self.store));
        (sql.terms, sql.filters)
    }

    /// A page of `name`: `filter` and `sort` in the rules language (empty for none).
    pub async fn query(
        &self,
        name: &str,
        filter: &str,
        sort: &str,
        page: u64,
        per_page: u64,
    ) -> RecordPage {
        let mut filters = Vec::new();
        if !filter.is_empty() {
            filters.push(self.filter(name, filter));
        }
        let mut terms = Vec::new();
        if !sort.is_empty() {
            let (sort_terms, sort_filters) = self.sort(name, sort);
            terms = sort_terms;
            filters.extend(sort_filters);
        }
        self.store
            .list_records(RecordQuery {
                collection: self.collection(name),
                filters,
                sort: terms,
                page,
                per_page,
                with_total: true,
            })
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "{}: {name} listed with {filter:?} / {sort:?}: {e:?}",
                    self.engine
                )
            })
    }

    /// Every record of `name` matching `filter`, ordered by `sort` (ids when empty).
    pub async fn list(&self, name: &str, filter: &str, sort: &str) -> Vec<Record> {
        let sort = if sort.is_empty() { "id" } else { sort };
        self.query(name, filter, sort, 1, 500).await.items
    }

    /// The `field` text of every record of `name` matching `filter`, sorted by that field.
    pub async fn texts(&self, name: &str, field: &str, filter: &str) -> Vec<String> {
        let mut texts: Vec<String> = self
            .list(name, filter, "")
            .await
            .iter()
            .map(|r| r.text(field).to_owned())
            .collect();
        texts.sort();
        texts
    }

    pub async fn count(&self, name: &str) -> usize {
        self.list(name, "", "").await.len()
    }

    pub async fn last_seq(&self) -> u64 {
        self.store
            .last_change_seq()
            .await
            .unwrap_or_else(|e| panic!("{}: last change seq read: {e:?}", self.engine))
    }

    /// Every change-log entry after `after`, read in as many rounds as the engine needs.
    pub async fn changes_since(&self, after: u64) -> Vec<domain::Change> {
        let mut out = Vec::new();
        let mut cursor = after;
        loop {
            let batch = self
                .store
                .changes_after(cursor, 100)
                .await
                .unwrap_or_else(|e| panic!("{}: changes read: {e:?}", self.engine));
            let Some(last) = batch.last() else {
                return out;
            };
            assert!(
                batch.iter().all(|c| c.seq > cursor),
                "{}: changes_after({cursor}) returned an entry at or before the cursor",
                self.engine
            );
            assert!(batch.len() <= 100, "{}: more than the limit", self.engine);
            cursor = last.seq;
            out.extend(batch);
        }
    }

    /// `(action, collection name, record id)` of every entry after `after`, in log order.
    pub async fn change_summary(&self, after: u64) -> Vec<(String, String, String)> {
        let schema = self.store.schema();
        self.changes_since(after)
            .await
            .into_iter()
            .map(|change| {
                let name = schema
                    .get_by_id(&change.collection_id)
                    .map(|c| c.name.clone())
                    .unwrap_or_else(|| change.collection_id.clone());
                (change.action.as_str().to_owned(), name, change.record_id)
            })
            .collect()
    }
}

/// The only result of a one-op write, as a record.
fn one(results: Result<Vec<WriteResult>, WriteError>) -> Result<Record, StoreError> {
    let mut results = results.map_err(|e| e.error)?;
    assert_eq!(results.len(), 1, "one result per op");
    Ok(results.remove(0).record().clone())
}

/// An [`UpdateFn`] that overlays `changes` on the current row.
pub(crate) fn merge(changes: Value) -> UpdateFn {
    Box::new(move |current: &Record| {
        let mut data = current.data.clone();
        if let Value::Object(changes) = changes.clone() {
            data.extend(changes);
        }
        Ok(data)
    })
}

/// A superuser caller, so filters read every field and relation without rules in the way.
pub(crate) fn superuser(store: &Arc<dyn Store>) -> AuthContext {
    let collection = store
        .schema()
        .get(SUPERUSERS_NAME)
        .cloned()
        .expect("every engine bootstraps _superusers");
    let mut data = RecordData::new();
    data.insert("id".into(), json!("superuser000001"));
    AuthContext::Record {
        collection,
        record: Arc::new(Record::new(data)),
        refreshable: true,
    }
}

pub(crate) fn context(store: &Arc<dyn Store>) -> rules::RequestContext {
    rules::RequestContext::new(superuser(store))
}

/// Complete record data: zero values, a fresh id, then `values`.
pub(crate) fn record_data(collection: &Collection, values: Value) -> RecordData {
    let mut data = RecordData::new();
    for field in &collection.fields {
        data.insert(field.name.clone(), field.zero_value());
    }
    data.insert("id".into(), json!(domain::ids::new_record_id()));
    if let Value::Object(values) = values {
        data.extend(values);
    }
    data
}

pub(crate) fn base(name: &str, fields: Vec<Field>) -> Collection {
    let mut collection = Collection::scaffold(CollectionType::Base, name);
    collection.id = domain::ids::collection_id("base", name);
    collection.fields.extend(fields);
    collection
}

pub(crate) fn view(name: &str, query: &str) -> Collection {
    let mut collection = Collection::scaffold(CollectionType::View, name);
    collection.id = domain::ids::collection_id("view", name);
    collection.view_query = Some(query.to_owned());
    collection
}

pub(crate) fn text(name: &str) -> Field {
    Field::new(name, FieldKind::Text(TextOptions::default()))
}

pub(crate) fn number(name: &str) -> Field {
    Field::new(name, FieldKind::Number(NumberOptions::default()))
}

pub(crate) fn boolean(name: &str) -> Field {
    Field::new(name, FieldKind::Bool(BasicOptions::default()))
}

pub(crate) fn json_field(name: &str) -> Field {
    Field::new(name, FieldKind::Json(JsonOptions::default()))
}

pub(crate) fn date(name: &str) -> Field {
    Field::new(name, FieldKind::Date(DateOptions::default()))
}

pub(crate) fn relation(
    name: &str,
    target: &str,
    max_select: u64,
    required: bool,
    cascade: bool,
) -> Field {
    Field::new(
        name,
        FieldKind::Relation(RelationOptions {
            collection_id: target.to_owned(),
            max_select,
            required,
            cascade_delete: cascade,
            ..Default::default()
        }),
    )
}

/// The `code` of `field`'s error when `error` is a validation error.
pub(crate) fn validation_code(error: &StoreError, field: &str) -> Option<String> {
    match error {
        StoreError::Validation(errors) => errors
            .as_map()
            .get(field)
            .and_then(|e| e.get("code"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        _ => None,
    }
}

/// A predicate that runs far longer than any check's timeout (a trillion steps), written in
/// SQL both engines speak.
pub(crate) fn slow_predicate() -> SqlFragment {
    SqlFragment::raw(
        "(WITH RECURSIVE c(x) AS (SELECT CAST(1 AS BIGINT) UNION ALL SELECT x + 1 FROM c \
         WHERE x < 1000000000000) SELECT count(*) FROM c) > 0",
    )
}
