//! Schema changes: collection create/update/delete/import as DDL plus `_collections` rows, run
//! by the caller inside one transaction. A `SchemaChange` works on a copy of the collection
//! list and hands back the new `Schema` from `finish`, which the store publishes only after
//! the transaction commits.
//!
//! Table updates rebuild the table (create, copy, drop, rename) whenever its columns change:
//! fields are matched to the previous definition by field id, so a renamed field keeps its
//! data, a dropped field loses its column and a new field starts at its column default. The
//! copy keeps rowids, so records keep their insertion order.

use std::collections::HashSet;

use domain::StoreError;
use domain::collection::{Collection, CollectionType, Schema};
use domain::field::{Field, FieldKind};
use domain::sql::quote_ident;
use rusqlite::Connection;

use crate::ddl::{self, schema_error};
use crate::system;
use crate::view::ViewPlan;

const REBUILD_TABLE: &str = "_plinth_rebuild_tmp";
const RENAME_TABLE: &str = "_plinth_rename_tmp";

pub(crate) struct SchemaChange<'c> {
    conn: &'c Connection,
    collections: Vec<Collection>,
}

impl<'c> SchemaChange<'c> {
    pub(crate) fn new(conn: &'c Connection, schema: &Schema) -> Self {
        SchemaChange {
            conn,
            collections: schema.all().iter().map(|c| (**c).clone()).collect(),
        }
    }

    /// Creates a collection's table (or view) and stores its definition. An empty id gets
    /// PocketBase's derived one; empty timestamps get now.
    pub(crate) fn create(&mut self, mut collection: Collection) -> Result<(), StoreError> {
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
            self.create_view(&mut collection)?;
        } else {
            ddl::check_table_fields(&collection)?;
            ddl::parse_indexes(&collection)?;
            self.conn
                .execute(
                    &ddl::create_table_sql(&collection.name, &collection.fields),
                    [],
                )
                .map_err(|e| schema_error(e, &format!("collection {:?}", collection.name)))?;
            ddl::create_indexes(self.conn, &collection)?;
        }
        system::save_collection(self.conn, &collection)?;
        self.collections.push(collection);
        Ok(())
    }

    /// Replaces a collection's definition and migrates its table or view.
    pub(crate) fn update(&mut self, mut collection: Collection) -> Result<(), StoreError> {
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
            self.conn
                .execute(
                    &format!("DROP VIEW IF EXISTS {}", quote_ident(&old.name)),
                    [],
                )
                .map_err(crate::internal)?;
            self.create_view(&mut collection)?;
        } else {
            self.migrate_table(&old, &collection)?;
        }
        system::save_collection(self.conn, &collection)?;
        self.collections[position] = collection;
        Ok(())
    }

    /// Drops a collection, refused while other collections have relation fields to it.
    /// The message ends with the referencing collection names: `… in comments, posts`.
    pub(crate) fn delete(&mut self, id: &str) -> Result<(), StoreError> {
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
        self.drop_collection(position)
    }

    /// Creates or replaces every given collection (matched by id, or by name when the id is
    /// empty); with `delete_missing`, drops the non-system collections not listed.
    pub(crate) fn import(
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
        // References are checked against the collections that remain after the import.
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

        // Views go first and come back last, so tables can be dropped, rebuilt and renamed
        // in any order in between.
        for view in self.collections.iter().filter(|c| c.is_view()) {
            self.conn
                .execute(
                    &format!("DROP VIEW IF EXISTS {}", quote_ident(&view.name)),
                    [],
                )
                .map_err(crate::internal)?;
        }
        for id in &doomed {
            if let Some(position) = self.position(id) {
                self.drop_collection(position)?;
            }
        }
        let (views, tables): (Vec<Collection>, Vec<Collection>) =
            incoming.into_iter().partition(Collection::is_view);
        for collection in tables.into_iter().chain(views) {
            if self.position(&collection.id).is_some() {
                self.update(collection)?;
            } else {
                self.create(collection)?;
            }
        }
        let untouched: Vec<usize> = (0..self.collections.len())
            .filter(|i| {
                let c = &self.collections[*i];
                c.is_view() && !incoming_ids.contains(&c.id)
            })
            .collect();
        for position in untouched {
            let mut view = self.collections[position].clone();
            self.create_view(&mut view)?;
            system::save_collection(self.conn, &view)?;
            self.collections[position] = view;
        }
        Ok(())
    }

    /// Checks that every view still compiles against the changed tables, and returns the new
    /// schema. The caller commits, then publishes it.
    pub(crate) fn finish(self) -> Result<Schema, StoreError> {
        for view in self.collections.iter().filter(|c| c.is_view()) {
            system::check_relation_compiles(self.conn, &view.name).map_err(|detail| {
                StoreError::Schema(format!(
                    "the change would break view collection {:?}: {detail}",
                    view.name
                ))
            })?;
        }
        let schema = Schema::new(self.collections);
        crate::counts::install(self.conn, &schema)?;
        Ok(schema)
    }

    fn position(&self, id: &str) -> Option<usize> {
        self.collections.iter().position(|c| c.id == id)
    }

    fn check_name(&self, collection: &Collection, except: Option<usize>) -> Result<(), StoreError> {
        if collection.name.is_empty() {
            return Err(StoreError::Schema("the collection name is required".into()));
        }
        if system::is_reserved_table(&collection.name)
            || collection.name.eq_ignore_ascii_case(REBUILD_TABLE)
            || collection.name.eq_ignore_ascii_case(RENAME_TABLE)
        {
            return Err(StoreError::Schema(format!(
                "the collection name {:?} is reserved",
                collection.name
            )));
        }
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

    /// Creates the view object and sets the view's fields from its query.
    fn create_view(&self, collection: &mut Collection) -> Result<(), StoreError> {
        ddl::parse_indexes(collection)?;
        let query = collection.view_query.clone().unwrap_or_default();
        if query.trim().is_empty() {
            return Err(StoreError::Schema(
                "invalid view query: the query is empty".into(),
            ));
        }
        let plan = ViewPlan::new(self.conn, &self.collections, &query)?;
        self.conn
            .execute(&plan.create_sql(&collection.name, &query), [])
            .map_err(|e| schema_error(e, "invalid view query"))?;
        // Keep the ids the definition already gave its fields (clone ids are random), so a
        // view's field ids stay stable across saves.
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

    fn drop_collection(&mut self, position: usize) -> Result<(), StoreError> {
        let collection = self.collections.remove(position);
        let kind = if collection.kind == CollectionType::View {
            "VIEW"
        } else {
            "TABLE"
        };
        self.conn
            .execute(
                &format!("DROP {kind} IF EXISTS {}", quote_ident(&collection.name)),
                [],
            )
            .map_err(crate::internal)?;
        system::delete_collection_row(self.conn, &collection.id)
    }

    /// Brings a table from `old` to `new`: rename, rebuild when the columns change, and
    /// re-create the indexes.
    fn migrate_table(&self, old: &Collection, new: &Collection) -> Result<(), StoreError> {
        ddl::check_table_fields(new)?;
        ddl::parse_indexes(new)?;
        let sources: Vec<Option<&Field>> =
            new.fields.iter().map(|f| previous_field(old, f)).collect();
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
        let unchanged_columns = old.fields.len() == new.fields.len()
            && new.fields.iter().zip(&sources).zip(&old.fields).all(
                |((field, source), at_same_place)| {
                    source.is_some_and(|s| std::ptr::eq(s, at_same_place))
                        && at_same_place.name == field.name
                        && ddl::column_type(at_same_place) == ddl::column_type(field)
                },
            );

        // Indexes travel with a renamed table; they are re-created only when they or the
        // columns change.
        let keep_indexes = unchanged_columns && old.indexes == new.indexes;
        if !keep_indexes {
            ddl::drop_indexes(self.conn, old)?;
        }
        if old.name != new.name {
            self.rename_table(&old.name, &new.name)?;
        }
        if !unchanged_columns {
            self.rebuild_table(&new.name, new, &sources)?;
        }
        if keep_indexes {
            Ok(())
        } else {
            ddl::create_indexes(self.conn, new)
        }
    }

    /// Renames through a temporary name (SQLite refuses a rename that only changes case),
    /// with SQLite's modern rename, which also rewrites views that read the table.
    fn rename_table(&self, from: &str, to: &str) -> Result<(), StoreError> {
        self.conn
            .pragma_update(None, "legacy_alter_table", false)
            .map_err(crate::internal)?;
        for (a, b) in [(from, RENAME_TABLE), (RENAME_TABLE, to)] {
            self.conn
                .execute(
                    &format!(
                        "ALTER TABLE {} RENAME TO {}",
                        quote_ident(a),
                        quote_ident(b)
                    ),
                    [],
                )
                .map_err(|e| schema_error(e, &format!("renaming collection to {to:?}")))?;
        }
        Ok(())
    }

    /// Copies `table` into a new table with `new`'s columns and swaps it in.
    fn rebuild_table(
        &self,
        table: &str,
        new: &Collection,
        sources: &[Option<&Field>],
    ) -> Result<(), StoreError> {
        let what = format!("collection {:?}", new.name);
        self.conn
            .execute(
                &format!("DROP TABLE IF EXISTS {}", quote_ident(REBUILD_TABLE)),
                [],
            )
            .map_err(crate::internal)?;
        self.conn
            .execute(&ddl::create_table_sql(REBUILD_TABLE, &new.fields), [])
            .map_err(|e| schema_error(e, &what))?;
        let mut targets = vec!["rowid".to_owned()];
        let mut values = vec!["rowid".to_owned()];
        for (field, source) in new.fields.iter().zip(sources) {
            if let Some(source) = source {
                targets.push(quote_ident(&field.name));
                values.push(convert_column(source, field));
            }
        }
        let copy = format!(
            "INSERT INTO {} ({}) SELECT {} FROM {}",
            quote_ident(REBUILD_TABLE),
            targets.join(", "),
            values.join(", "),
            quote_ident(table)
        );
        self.conn
            .execute(&copy, [])
            .map_err(|e| schema_error(e, &what))?;
        self.conn
            .execute(&format!("DROP TABLE {}", quote_ident(table)), [])
            .map_err(|e| schema_error(e, &what))?;
        // The legacy rename neither rewrites nor re-checks views, which still name `table`
        // and see the new table under that name once the rename is done.
        self.conn
            .pragma_update(None, "legacy_alter_table", true)
            .map_err(crate::internal)?;
        let renamed = self.conn.execute(
            &format!(
                "ALTER TABLE {} RENAME TO {}",
                quote_ident(REBUILD_TABLE),
                quote_ident(table)
            ),
            [],
        );
        self.conn
            .pragma_update(None, "legacy_alter_table", false)
            .map_err(crate::internal)?;
        renamed.map_err(|e| schema_error(e, &what))?;
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

/// The expression that carries `source`'s column into `target`'s: unchanged, except between
/// single and multiple values (a single value becomes a one-item list; a list keeps its last
/// item, as PocketBase does).
fn convert_column(source: &Field, target: &Field) -> String {
    let column = quote_ident(&source.name);
    let json_like = |f: &Field| matches!(f.kind, FieldKind::Json(_) | FieldKind::GeoPoint(_));
    if json_like(source) || json_like(target) || source.is_multiple() == target.is_multiple() {
        column
    } else if target.is_multiple() {
        format!(
            "CASE WHEN {column} IS NULL OR {column} = '' THEN '[]' ELSE json_array({column}) END"
        )
    } else {
        format!(
            "COALESCE(json_extract(CASE WHEN json_valid({column}) THEN {column} ELSE '[]' END, '$[#-1]'), '')"
        )
    }
}

/// Names of the collections (other than `id` itself) with a relation field to `id`, in
/// schema order.
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
