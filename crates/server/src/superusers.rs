//! Superuser management used by the `plinth superuser …` commands: create, update, upsert
//! and delete accounts of the `_superusers` collection through the record write pipeline's
//! system path (validated, passwords hashed, token keys rotated as for any record).

use std::sync::Arc;

use domain::collection::SUPERUSERS_ID;
use domain::{Collection, Record, RecordQuery, Store, StoreError};

use crate::auth::password;
use crate::records::pipeline::{self, System, SystemChange};

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
    let change = SystemChange::new()
        .set("email", email)
        .set("password", plain_password)
        .set("verified", true);
    Ok(pipeline::system_create(system(store, cost), &collection, change).await?)
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
    // A new password rotates the token key, so old tokens stop working.
    let change = SystemChange::new().set("password", plain_password);
    Ok(pipeline::system_update(system(store, cost), &collection, existing.id(), change).await?)
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
    let argon2 = crate::state::Argon2Params::default();
    pipeline::system_delete(
        System::store_only(store, argon2),
        &collection,
        existing.id(),
    )
    .await?;
    Ok(())
}

/// The system path for the CLI, hashing new passwords with the argon2 cost matching the
/// bcrypt `cost` the command was given.
fn system(store: &dyn Store, cost: u32) -> System<'_> {
    System::store_only(store, crate::state::Argon2Params::for_bcrypt_cost(cost))
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
