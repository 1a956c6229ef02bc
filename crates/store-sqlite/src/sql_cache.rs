//! SQL text that depends only on a collection's name and fields, kept per thread.
//!
//! A record write or read by id built its statement's text each time (every column name
//! quoted, a table name repeated per column), then handed it to rusqlite's statement cache,
//! which looks the text up. Building it was about 1,500 instructions a statement (callgrind):
//! on a view, one of the larger items left. The text is kept here by statement kind and the
//! collection's address, and checked against the collection before each use (its name, each
//! field's name and whether it is the key, in order), so a collection changed in place, or
//! another that came to live at the same address, gets its own text made anew.

use std::cell::RefCell;
use std::rc::Rc;

use domain::Collection;

/// The statements kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// `records::insert_sql`.
    Insert,
    /// `records::update_sql` over every field but the key.
    Update,
    /// `records::update_sql` with the rowid (`records::update_known`).
    UpdateAt,
    /// `SELECT <every field> FROM t WHERE t."id" = ?` (`records::load`, before any filter).
    LoadById,
    /// The same with the rowid last (`records::load_marked`).
    LoadMarked,
    /// `SELECT COUNT(*) FROM t WHERE "id" = ?` (a relation's target, one id).
    CountById,
    /// A relation's target, several ids (`records::check_relations`).
    CountByIds,
}

/// Texts kept per thread at most; past this all are dropped and made again as needed.
const MAX_KEPT: usize = 512;

struct Kept {
    /// The collection's name, then each field's name with whether it is the key.
    name: Box<str>,
    fields: Vec<(Box<str>, bool)>,
    sql: Rc<str>,
}

impl Kept {
    fn matches(&self, collection: &Collection) -> bool {
        *self.name == *collection.name
            && self.fields.len() == collection.fields.len()
            && self
                .fields
                .iter()
                .zip(&collection.fields)
                .all(|((name, key), field)| **name == *field.name && *key == field.is_primary_key())
    }
}

thread_local! {
    static KEPT: RefCell<foldhash::HashMap<(Kind, usize), Kept>> = RefCell::default();
}

/// The text of `kind` for `collection`: kept, or made by `make` and kept.
pub(crate) fn sql(kind: Kind, collection: &Collection, make: impl FnOnce() -> String) -> Rc<str> {
    let key = (kind, std::ptr::from_ref(collection) as usize);
    let kept = KEPT.with(|kept| {
        kept.try_borrow().ok().and_then(|kept| {
            kept.get(&key)
                .filter(|one| one.matches(collection))
                .map(|one| Rc::clone(&one.sql))
        })
    });
    if let Some(sql) = kept {
        return sql;
    }
    let sql: Rc<str> = Rc::from(make());
    KEPT.with(|kept| {
        if let Ok(mut kept) = kept.try_borrow_mut() {
            if kept.len() >= MAX_KEPT {
                kept.clear();
            }
            kept.insert(
                key,
                Kept {
                    name: collection.name.as_str().into(),
                    fields: collection
                        .fields
                        .iter()
                        .map(|f| (f.name.as_str().into(), f.is_primary_key()))
                        .collect(),
                    sql: Rc::clone(&sql),
                },
            );
        }
    });
    sql
}

#[cfg(test)]
mod tests {
    use domain::collection::CollectionType;
    use domain::field::{BasicOptions, Field, FieldKind};

    use super::*;

    #[test]
    fn kept_text_follows_the_collection_it_was_made_for() {
        let mut collection = Collection::scaffold(CollectionType::Base, "posts");
        collection.fields.push(Field::new(
            "title",
            FieldKind::Bool(BasicOptions::default()),
        ));
        let text = |c: &Collection| {
            let names: Vec<&str> = c.fields.iter().map(|f| f.name.as_str()).collect();
            format!("{} {}", c.name, names.join(","))
        };
        let made = std::cell::Cell::new(0);
        let get = |c: &Collection| {
            sql(Kind::Insert, c, || {
                made.set(made.get() + 1);
                text(c)
            })
        };
        assert_eq!(&*get(&collection), "posts id,title");
        assert_eq!(&*get(&collection), "posts id,title");
        assert_eq!(made.get(), 1, "the second call reuses the text");
        // Changed in place: a renamed field, then a renamed collection.
        collection.fields[1].name = "heading".into();
        assert_eq!(&*get(&collection), "posts id,heading");
        collection.name = "articles".into();
        assert_eq!(&*get(&collection), "articles id,heading");
        assert_eq!(made.get(), 3);
        // Another kind for the same collection is another text.
        let other = sql(Kind::Update, &collection, || "update".into());
        assert_eq!(&*other, "update");
    }
}
