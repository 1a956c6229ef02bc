//! Superuser management used by the `plinth superuser …` commands: create, update, upsert
//! and delete accounts of the `_superusers` collection directly through the store.

use std::sync::Arc;

use domain::collection::SUPERUSERS_ID;
use domain::{Collection, Record, RecordData, RecordQuery, Store, StoreError, WriteOp};
use serde_json::Value;

use crate::auth::password;

/// Why a superuser command failed; the messages are shown to the operator as they are.
#[derive(Debug, thiserror::Error)]
pub enum SuperuserError {
    #[error("missing or invalid email address")]
    InvalidEmail,
    #[error("password: must be at least 8 character(s)")]
    PasswordTooShort,
    #[error("password: must be no more than 71 bytes")]
    PasswordTooLong,
    #[error("email: value must be unique (a superuser with email {0:?} already exists)")]
    Exists(String),
    #[error("superuser with email {0:?} doesn't exist")]
    Missing(String),
    #[error("you can't delete the only existing superuser")]
    LastSuperuser,
    #[error("the _superusers collection is missing from the database")]
    NoCollection,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Hash(#[from] password::PasswordError),
}

/// What `upsert` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    Created,
    Updated,
}

fn collection(store: &dyn Store) -> Result<Arc<Collection>, SuperuserError> {
    store
        .schema()
        .get_by_id(SUPERUSERS_ID)
        .cloned()
        .ok_or(SuperuserError::NoCollection)
}

/// Finds a superuser by exact email.
pub async fn find(store: &dyn Store, email: &str) -> Result<Option<Record>, SuperuserError> {
    let collection = collection(store)?;
    Ok(store.find_by_field(collection, "email", email).await?)
}

/// How many superusers exist.
pub async fn count(store: &dyn Store) -> Result<u64, SuperuserError> {
    let collection = collection(store)?;
    let page = store
        .list_records(RecordQuery {
            collection,
            filters: Vec::new(),
            sort: Vec::new(),
            page: 1,
            per_page: 1,
            with_total: true,
        })
        .await?;
    Ok(page.total.unwrap_or(0))
}

/// Creates a superuser; fails if the email is taken.
pub async fn create(
    store: &dyn Store,
    email: &str,
    plain_password: &str,
    cost: u32,
) -> Result<Record, SuperuserError> {
    check_input(email, plain_password)?;
    if find(store, email).await?.is_some() {
        return Err(SuperuserError::Exists(email.to_owned()));
    }
    let collection = collection(store)?;
    let hash = password::hash_argon2(
        plain_password.to_owned(),
        password::Argon2Params::for_bcrypt_cost(cost),
    )
    .await?;
    let now = domain::time::now();
    let mut data = RecordData::new();
    for field in &collection.fields {
        data.insert(field.name.clone(), field.zero_value());
    }
    data.insert("id".into(), Value::String(domain::ids::new_record_id()));
    data.insert("password".into(), Value::String(hash));
    data.insert(
        "tokenKey".into(),
        Value::String(domain::ids::random_alnum(50)),
    );
    data.insert("email".into(), Value::String(email.to_owned()));
    data.insert("verified".into(), Value::Bool(true));
    for name in ["created", "updated"] {
        if data.contains_key(name) {
            data.insert(name.into(), Value::String(now.clone()));
        }
    }
    let results = store
        .write(vec![WriteOp::Create {
            collection,
            data,
            guard: None,
        }])
        .await
        .map_err(|e| SuperuserError::Store(e.error))?;
    results
        .into_iter()
        .next()
        .map(|r| r.record().clone())
        .ok_or(SuperuserError::Store(StoreError::Internal(
            "no write result".into(),
        )))
}

/// Changes a superuser's password (rotating its token key, so old tokens stop working).
pub async fn update(
    store: &dyn Store,
    email: &str,
    plain_password: &str,
    cost: u32,
) -> Result<Record, SuperuserError> {
    check_input(email, plain_password)?;
    let Some(existing) = find(store, email).await? else {
        return Err(SuperuserError::Missing(email.to_owned()));
    };
    let collection = collection(store)?;
    let hash = password::hash_argon2(
        plain_password.to_owned(),
        password::Argon2Params::for_bcrypt_cost(cost),
    )
    .await?;
    let now = domain::time::now();
    let apply: domain::UpdateFn = Box::new(move |current: &Record| {
        let mut data = current.data.clone();
        data.insert("password".into(), Value::String(hash));
        data.insert(
            "tokenKey".into(),
            Value::String(domain::ids::random_alnum(50)),
        );
        if data.contains_key("updated") {
            data.insert("updated".into(), Value::String(now));
        }
        Ok(data)
    });
    let results = store
        .write(vec![WriteOp::Update {
            collection,
            id: existing.id().to_owned(),
            guard: None,
            apply,
        }])
        .await
        .map_err(|e| SuperuserError::Store(e.error))?;
    results
        .into_iter()
        .next()
        .map(|r| r.record().clone())
        .ok_or(SuperuserError::Store(StoreError::Internal(
            "no write result".into(),
        )))
}

/// Creates the superuser, or changes its password when the email exists.
pub async fn upsert(
    store: &dyn Store,
    email: &str,
    plain_password: &str,
    cost: u32,
) -> Result<Saved, SuperuserError> {
    check_input(email, plain_password)?;
    if find(store, email).await?.is_some() {
        update(store, email, plain_password, cost).await?;
        Ok(Saved::Updated)
    } else {
        create(store, email, plain_password, cost).await?;
        Ok(Saved::Created)
    }
}

/// Deletes a superuser; the last one cannot be deleted.
pub async fn delete(store: &dyn Store, email: &str) -> Result<(), SuperuserError> {
    if !valid_email(email) {
        return Err(SuperuserError::InvalidEmail);
    }
    let Some(existing) = find(store, email).await? else {
        return Err(SuperuserError::Missing(email.to_owned()));
    };
    if count(store).await? <= 1 {
        return Err(SuperuserError::LastSuperuser);
    }
    let collection = collection(store)?;
    store
        .write(vec![WriteOp::Delete {
            collection,
            id: existing.id().to_owned(),
            guard: None,
        }])
        .await
        .map_err(|e| SuperuserError::Store(e.error))?;
    Ok(())
}

fn check_input(email: &str, plain_password: &str) -> Result<(), SuperuserError> {
    if !valid_email(email) {
        return Err(SuperuserError::InvalidEmail);
    }
    if plain_password.chars().count() < 8 {
        return Err(SuperuserError::PasswordTooShort);
    }
    if plain_password.len() > 71 {
        return Err(SuperuserError::PasswordTooLong);
    }
    Ok(())
}

/// A pragmatic email check: one `@`, a non-empty local part, a dotted domain, no spaces.
pub fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(char::is_whitespace)
}
