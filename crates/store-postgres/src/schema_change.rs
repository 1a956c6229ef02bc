//! Schema changes on PostgreSQL: collection create/update/delete/import as DDL plus
//! `_collections` rows, run by the caller inside one transaction (PostgreSQL's DDL is
//! transactional, so a refused change leaves nothing behind). A `SchemaChange` works on a
//! copy of the collection list and hands back the new `Schema` from `finish`, which the store
//! publishes only after the transaction commits.
//!
//! Tables change in place: fields are matched to the previous definition by id, so a renamed
//! field keeps its data (`RENAME COLUMN`, through temporary names so swaps work), a dropped
//! field loses its column, a new one is added with its default, and a field that moves between
//! one and several values changes type with a conversion. Before any table changes, every
//! view is dropped; `finish` (or the next view change) re-creates them from their queries in
//! creation order, and a view that no longer compiles refuses the whole change, naming it.

use std::collections::HashSet;

use domain::StoreError;
use domain::collection::{Collection, CollectionType, Schema};
use domain::field::{Field, FieldKind};
use domain::sql::quote_ident;

use crate::Conn;
use crate::ddl;
use crate::sql::{internal, schema_error};
use crate::system;
use crate::view::ViewPlan;

pub(crate) struct SchemaChange<'c> {
    conn: &'c Conn,
    collections: Vec<Collection>,
    /// Whether the views are dropped and must be re-created before the change ends.
    views_dropped: bool,
}

impl<'c> SchemaChange<'c> {
    pub(crate) fn new(conn: &'c Conn, schema: &Schema) -> Self {
        SchemaChange {
            conn,
            collections: schema.all().iter().map(|c| (**c).clone()).collect(),
            views_dropped: false,
        }
    }

    async fn exec(&self, sql: &str, what: &str) -> Result<(), StoreError> {
        self.conn
            .batch_execute(sql)
            .await
            .map_err(|e| schema_error(e, what))
    }

    /// Creates a collection's table (or view) and stores its definition. An empty id gets
    /// PocketBase's derived one; empty timestamps get now.
    pub(crate) async fn create(&mut self, mut collection: Collection) -> Result<(), StoreError> {
        if collection.id.is_empty() {
            collection.id = domain::ids::collection_id(collection.kind.as_str(), &collection.name);
        }
        if self.position(&collection.id).is_some() {
            return Err(StoreError::Schema(format!(
                "collection id {:?} is already in use",
                collection.id
            )));
        }
        self.check_name(&collection, None)?;
        let now = domain::time::now();
        if collection.created.is_empty() {
            collection.created = now.clone();
        }
        if collection.updated.is_empty() {
            collection.updated = now;
        }
        if collection.is_view() {
            // Every view is re-created in creation order, this one last.
            self.drop_views().await?;
            self.collections.push(collection);
            let result = self.restore_views().await;
            let collection = self.collections.pop().ok_or(StoreError::NotFound)?;
            result?;
            system::save_collection(self.conn, &collection).await?;
            self.collections.push(collection);
            return Ok(());
        }
        ddl::check_table_fields(&collection)?;
        let indexes = ddl::index_statements(&collection)?;
        let what = format!("collection {:?}", collection.name);
        self.exec(
            &ddl::create_table_sql(&collection.name, &collection.fields),
            &what,
        )
        .await?;
        for (name, sql) in indexes {
            self.exec(&sql, &format!("index {name:?}")).await?;
        }
        system::save_collection(self.conn, &collection).await?;
        self.collections.push(collection);
        Ok(())
    }

    /// Replaces a collection's definition and migrates its table or view.
    pub(crate) async fn update(&mut self, mut collection: Collection) -> Result<(), StoreError> {
        let position = self.position(&collection.id).ok_or(StoreError::NotFound)?;
        let old = self.collections[position].clone();
        if old.kind != collection.kind {
            return Err(StoreError::Schema(
                "the type of a collection cannot be changed".into(),
            ));
        }
        self.check_name(&collection, Some(position))?;
        if collection.created.is_empty() {
            collection.created = old.created.clone();
        }
        if collection.updated.is_empty() {
            collection.updated = domain::time::now();
        }
        if collection.is_view() {
            // Every view is re-created in creation order, this one with its new query.
            self.drop_views().await?;
            self.collections[position] = collection;
            self.restore_views().await?;
            let collection = self.collections[position].clone();
            return system::save_collection(self.conn, &collection).await;
        }
        self.migrate_table(&old, &collection).await?;
        system::save_collection(self.conn, &collection).await?;
        self.collections[position] = collection;
        Ok(())
    }

    /// Drops a collection, refused while other collections have relation fields to it.
    pub(crate) async fn delete(&mut self, id: &str) -> Result<(), StoreError> {
        let position = self.position(id).ok_or(StoreError::NotFound)?;
        if self.collections[position].system {
            return Err(StoreError::Schema(
                "system collections cannot be deleted".into(),
            ));
        }
        let referrers = referrers(&self.collections, id);
        if !referrers.is_empty() {
            return Err(StoreError::Schema(format!(
                "existing reference in {}",
                referrers.join(", ")
            )));
        }
        self.drop_collection(position).await
    }

    /// Creates or replaces every given collection (matched by id, or by name when the id is
    /// empty); with `delete_missing`, drops the non-system collections not listed.
    pub(crate) async fn import(
        &mut self,
        mut incoming: Vec<Collection>,
        delete_missing: bool,
    ) -> Result<(), StoreError> {
        for collection in &mut incoming {
            if collection.id.is_empty() {
                collection.id = self
                    .collections
                    .iter()
                    .find(|c| c.name.eq_ignore_ascii_case(&collection.name))
                    .map(|c| c.id.clone())
                    .unwrap_or_else(|| {
                        domain::ids::collection_id(collection.kind.as_str(), &collection.name)
                    });
            }
        }
        let incoming_ids: HashSet<String> = incoming.iter().map(|c| c.id.clone()).collect();
        if incoming_ids.len() != incoming.len() {
            return Err(StoreError::Schema(
                "the same collection id appears twice in the import".into(),
            ));
        }
        let doomed: Vec<String> = if delete_missing {
            self.collections
                .iter()
                .filter(|c| !c.system && !incoming_ids.contains(&c.id))
                .map(|c| c.id.clone())
                .collect()
        } else {
            Vec::new()
        };
        let remaining: Vec<Collection> = incoming
            .iter()
            .cloned()
            .chain(
                self.collections
                    .iter()
                    .filter(|c| !incoming_ids.contains(&c.id) && !doomed.contains(&c.id))
                    .cloned(),
            )
            .collect();
        for id in &doomed {
            let names = referrers(&remaining, id);
            if !names.is_empty() {
                let name = self
                    .collections
                    .iter()
                    .find(|c| &c.id == id)
                    .map(|c| c.name.clone());
                return Err(StoreError::Schema(format!(
                    "collection {:?} cannot be deleted: existing reference in {}",
                    name.unwrap_or_default(),
                    names.join(", ")
                )));
            }
        }
        self.drop_views().await?;
        for id in &doomed {
            if let Some(position) = self.position(id) {
                self.drop_collection(position).await?;
            }
        }
        let (views, tables): (Vec<Collection>, Vec<Collection>) =
            incoming.into_iter().partition(Collection::is_view);
        for collection in tables {
            if self.position(&collection.id).is_some() {
                self.update(collection).await?;
            } else {
                self.create(collection).await?;
            }
        }
        for collection in views {
            if self.position(&collection.id).is_some() {
                self.update(collection).await?;
            } else {
                self.create(collection).await?;
            }
        }
        Ok(())
    }

    /// Re-creates the views a table change dropped and returns the new schema. The caller
    /// commits, then publishes it.
    pub(crate) async fn finish(mut self) -> Result<Schema, StoreError> {
        self.restore_views().await?;
        Ok(Schema::new(self.collections))
    }

    fn position(&self, id: &str) -> Option<usize> {
        self.collections.iter().position(|c| c.id == id)
    }

    fn check_name(&self, collection: &Collection, except: Option<usize>) -> Result<(), StoreError> {
        if collection.name.is_empty() {
            return Err(StoreError::Schema("the collection name is required".into()));
        }
        if system::is_reserved_table(&collection.name) {
            return Err(StoreError::Schema(format!(
                "the collection name {:?} is reserved",
                collection.name
            )));
        }
        ddl::check_identifier("collection", &collection.name)?;
        let taken = self
            .collections
            .iter()
            .enumerate()
            .any(|(i, c)| Some(i) != except && c.name.eq_ignore_ascii_case(&collection.name));
        if taken {
            return Err(StoreError::Schema(format!(
                "the collection name {:?} is already in use",
                collection.name
            )));
        }
        Ok(())
    }

    /// Drops every view (once), so tables can change under them.
    async fn drop_views(&mut self) -> Result<(), StoreError> {
        if self.views_dropped {
            return Ok(());
        }
        // Newest first: a view may read an older one.
        for view in self.collections.iter().rev().filter(|c| c.is_view()) {
            self.conn
                .batch_execute(&format!("DROP VIEW IF EXISTS {}", quote_ident(&view.name)))
                .await
                .map_err(internal)?;
        }
        self.views_dropped = true;
        Ok(())
    }

    /// Re-creates the dropped views in creation order, from their queries, and works their
    /// fields out again. One that fails refuses the change, named in the message.
    async fn restore_views(&mut self) -> Result<(), StoreError> {
        if !self.views_dropped {
            return Ok(());
        }
        self.views_dropped = false;
        for position in 0..self.collections.len() {
            if !self.collections[position].is_view() {
                continue;
            }
            let mut view = self.collections[position].clone();
            let name = view.name.clone();
            self.create_view(&mut view).await.map_err(|error| {
                let detail = match error {
                    StoreError::Schema(detail) => detail,
                    other => other.to_string(),
                };
                StoreError::Schema(format!(
                    "the change would break view collection {name:?}: {detail}"
                ))
            })?;
            if view.fields != self.collections[position].fields {
                system::save_collection(self.conn, &view).await?;
            }
            self.collections[position] = view;
        }
        Ok(())
    }

    /// Creates the view object and sets the view's fields from its query.
    async fn create_view(&self, collection: &mut Collection) -> Result<(), StoreError> {
        ddl::parse_indexes(collection)?;
        let query = collection.view_query.clone().unwrap_or_default();
        let plan = ViewPlan::new(self.conn, &self.collections, &query).await?;
        self.exec(&plan.create_sql(&collection.name), "invalid view query")
            .await?;
        // Keep the ids the definition already gave its fields, so they stay stable.
        let mut fields = plan.fields;
        for field in &mut fields {
            if let Some(given) = collection
                .fields
                .iter()
                .find(|f| f.name == field.name && f.type_name() == field.type_name())
            {
                field.id.clone_from(&given.id);
            }
        }
        collection.fields = fields;
        Ok(())
    }

    async fn drop_collection(&mut self, position: usize) -> Result<(), StoreError> {
        if !self.collections[position].is_view() {
            self.drop_views().await?;
        }
        let collection = self.collections.remove(position);
        let kind = if collection.kind == CollectionType::View {
            "VIEW"
        } else {
            "TABLE"
        };
        self.conn
            .batch_execute(&format!(
                "DROP {kind} IF EXISTS {}",
                quote_ident(&collection.name)
            ))
            .await
            .map_err(internal)?;
        system::delete_collection_row(self.conn, &collection.id).await
    }

    /// Brings a table from `old` to `new`: rename, column changes, and re-created indexes.
    async fn migrate_table(
        &mut self,
        old: &Collection,
        new: &Collection,
    ) -> Result<(), StoreError> {
        ddl::check_table_fields(new)?;
        let indexes = ddl::index_statements(new)?;
        let sources: Vec<Option<Field>> = new
            .fields
            .iter()
            .map(|f| previous_field(old, f).cloned())
            .collect();
        for (field, source) in new.fields.iter().zip(&sources) {
            if let Some(source) = source
                && source.type_name() != field.type_name()
            {
                return Err(StoreError::Schema(format!(
                    "the type of field {:?} cannot be changed",
                    field.name
                )));
            }
        }
        let columns_change = old.fields.len() != new.fields.len()
            || new
                .fields
                .iter()
                .zip(&sources)
                .any(|(field, source)| match source {
                    Some(source) => {
                        source.name != field.name
                            || ddl::column_type(source) != ddl::column_type(field)
                    }
                    None => true,
                });
        let indexes_change = columns_change || old.indexes != new.indexes;
        if !columns_change && !indexes_change && old.name == new.name {
            return Ok(());
        }
        self.drop_views().await?;
        let what = format!("collection {:?}", new.name);
        if indexes_change {
            for sql in ddl::drop_index_statements(old) {
                self.exec(&sql, &what).await?;
            }
        }
        let table = quote_ident(&new.name);
        if old.name != new.name {
            self.exec(
                &format!("ALTER TABLE {} RENAME TO {table}", quote_ident(&old.name)),
                &format!("renaming collection to {:?}", new.name),
            )
            .await?;
        }
        if columns_change {
            // Dropped fields first, then renames through temporary names, then conversions
            // and new columns.
            for field in &old.fields {
                if !sources
                    .iter()
                    .flatten()
                    .any(|s| s.id == field.id && s.name == field.name)
                {
                    self.exec(
                        &format!(
                            "ALTER TABLE {table} DROP COLUMN {}",
                            quote_ident(&field.name)
                        ),
                        &what,
                    )
                    .await?;
                }
            }
            let renamed: Vec<(usize, &Field, &Field)> = new
                .fields
                .iter()
                .zip(&sources)
                .enumerate()
                .filter_map(|(i, (field, source))| {
                    source
                        .as_ref()
                        .filter(|s| s.name != field.name)
                        .map(|s| (i, s, field))
                })
                .collect();
            for (i, source, _) in &renamed {
                self.exec(
                    &format!(
                        "ALTER TABLE {table} RENAME COLUMN {} TO {}",
                        quote_ident(&source.name),
                        quote_ident(&format!("_plinth_tmp_{i}"))
                    ),
                    &what,
                )
                .await?;
            }
            for (i, _, field) in &renamed {
                self.exec(
                    &format!(
                        "ALTER TABLE {table} RENAME COLUMN {} TO {}",
                        quote_ident(&format!("_plinth_tmp_{i}")),
                        quote_ident(&field.name)
                    ),
                    &what,
                )
                .await?;
            }
            for (field, source) in new.fields.iter().zip(&sources) {
                match source {
                    Some(source) if ddl::column_type(source) != ddl::column_type(field) => {
                        for sql in convert_column(&new.name, source, field) {
                            self.exec(&sql, &what).await?;
                        }
                    }
                    Some(_) => {}
                    None => {
                        self.exec(
                            &format!(
                                "ALTER TABLE {table} ADD COLUMN {} {}",
                                quote_ident(&field.name),
                                ddl::column_type(field)
                            ),
                            &what,
                        )
                        .await?;
                    }
                }
            }
        }
        if indexes_change {
            for (name, sql) in indexes {
                self.exec(&sql, &format!("index {name:?}")).await?;
            }
        }
        Ok(())
    }
}

/// The previous definition of a field: same id (or, for a field without id, same name).
fn previous_field<'a>(old: &'a Collection, field: &Field) -> Option<&'a Field> {
    if field.id.is_empty() {
        old.fields.iter().find(|f| f.name == field.name)
    } else {
        old.fields.iter().find(|f| f.id == field.id)
    }
}

/// The statements that carry a column (already under `target`'s name) from `source`'s type to
/// `target`'s: between one value and several, a single value becomes a one-item list and a
/// list keeps its last item, as PocketBase does.
fn convert_column(table: &str, source: &Field, target: &Field) -> Vec<String> {
    let table = quote_ident(table);
    let column = quote_ident(&target.name);
    let json_like = |f: &Field| matches!(f.kind, FieldKind::Json(_) | FieldKind::GeoPoint(_));
    let using = if json_like(source) || json_like(target) {
        return Vec::new();
    } else if target.is_multiple() && !source.is_multiple() {
        format!(
            "CASE WHEN {column} IS NULL OR {column} = '' THEN '[]'::jsonb ELSE jsonb_build_array({column}) END"
        )
    } else if !target.is_multiple() && source.is_multiple() {
        format!(
            "COALESCE(CASE WHEN jsonb_typeof({column}) = 'array' THEN {column} ->> -1 ELSE {column} #>> '{{}}' END, '')"
        )
    } else {
        return Vec::new();
    };
    let declared = ddl::column_type(target);
    // `ALTER TYPE` cannot keep the old default (of the old type): drop it, convert, set it.
    let (ty, rest) = declared
        .split_once(" DEFAULT ")
        .map_or((declared, ""), |(ty, rest)| (ty, rest));
    let default = rest.trim_end_matches(" NOT NULL");
    let mut statements = vec![
        format!("ALTER TABLE {table} ALTER COLUMN {column} DROP DEFAULT"),
        format!("ALTER TABLE {table} ALTER COLUMN {column} TYPE {ty} USING {using}"),
    ];
    if !default.is_empty() {
        statements.push(format!(
            "ALTER TABLE {table} ALTER COLUMN {column} SET DEFAULT {default}"
        ));
    }
    statements
}

/// Names of the collections (other than `id` itself) with a relation field to `id`.
fn referrers(collections: &[Collection], id: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for collection in collections.iter().filter(|c| c.id != id) {
        let refers = collection
            .fields
            .iter()
            .any(|f| matches!(&f.kind, FieldKind::Relation(o) if o.collection_id == id));
        if refers && !names.contains(&collection.name) {
            names.push(collection.name.clone());
        }
    }
    names
}
