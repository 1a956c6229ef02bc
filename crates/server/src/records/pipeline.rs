//! The record write pipeline: the one door every record write goes through, whoever asks.
//!
//! Two ways in. The *request path* is what the records endpoints, batch items and OAuth2
//! sign-ups use: [`prepare`] (collection lookup, rules with the `@request` context,
//! modifiers, validation and the upload plan, all before anything is written), [`execute`]
//! (files stored, then every prepared write in one store transaction, then replaced files
//! removed) and [`respond`] (the record as the endpoint answers it). The batch API prepares
//! many writes and executes them together.
//!
//! The *system path* ([`system_create`], [`system_update`], [`system_delete`]) is the server
//! saving a record as a superuser would, without rules: the auth flows (verification,
//! password reset, email change, OTP-proven emails, OAuth2 links), the auth bookkeeping rows
//! and the superuser CLI. Values are validated against the fields, plain passwords hashed,
//! and the `tokenKey` rotated where PocketBase rotates it. JS hooks' `$app.save(record)` and
//! `$app.delete(record)` are meant to land here.
//!
//! Both end in [`commit`], the only function that sends [`WriteOp`]s to the store: model
//! hooks wrap it. Deleting an auth record takes its OAuth2 links, sign-in origins, OTPs and
//! MFA sessions with it in the same transaction (the store does it, as part of the cascade).
//!
//! Reads made while preparing (the current row of an update, the existence check of an
//! upsert) see committed data, plus the records created by earlier items of the same batch
//! (their would-be rows), so a batch can create a record and then change it. The change
//! itself is applied to the row as it is inside the transaction; deletes are guards checked
//! there too.

use std::sync::Arc;

use axum::http::{HeaderMap, Method};
use domain::field::FieldKind;
use domain::values::{self, ApplyContext, RecordInput};
use domain::{
    AuthContext, Collection, Record, RecordData, Store, StoreError, UpdateFn, WriteError, WriteOp,
    WriteResult,
};
use rules::{RequestContext, Rule};
use serde_json::{Map, Value};

use super::common::{
    Target, body_values, refuse_superusers_only, refuse_view, respond_with_record, target_for_read,
    target_for_write,
};
use super::query::QueryParams;
use super::write;
use crate::access::{self, Decision, Question, SqlCheck};
use crate::auth::password;
use crate::backups::Removal;
use crate::error::{ApiError, ApiResult};
use crate::files::upload::{self, UploadPlan, UploadedFile};
use crate::state::Argon2Params;
use crate::state::SharedState;

const CREATE_FAILED: &str = "Failed to create record.";
const UPDATE_FAILED: &str = "Failed to update record.";
const DELETE_FAILED: &str = "Failed to delete record.";

/// The request a write comes from, as rules see it.
#[derive(Clone, Copy)]
pub(crate) struct Meta<'a> {
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    /// `@request.context`: `default` for the endpoints, `batch` for batch items.
    pub context: &'static str,
}

impl Meta<'_> {
    fn context(
        &self,
        auth: &AuthContext,
        query: &[(String, String)],
        body: Option<Map<String, Value>>,
    ) -> RequestContext {
        access::request_context(auth, self.method, self.headers, query, body)
            .with_context(self.context)
    }
}

/// What a write asks for.
#[derive(Debug, Clone)]
pub(crate) enum Action {
    Create,
    Update(String),
    /// Update when a record with this id exists, else create.
    Upsert(String),
    Delete(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Create,
    Update,
    Delete,
}

/// One write, checked and ready to run.
pub(crate) struct Prepared {
    op: WriteOp,
    done: Done,
    /// An update's would-be row (the stored row with the submitted values applied), for
    /// request hooks to show.
    preview: Option<RecordData>,
}

/// A record an earlier item of the same batch creates, as later items see it.
pub(crate) struct Created {
    collection_id: String,
    record: Record,
}

impl Prepared {
    /// The collection and the values a create writes (for request hooks to show).
    pub(crate) fn create_data(&self) -> Option<(&Arc<Collection>, &RecordData)> {
        match &self.op {
            WriteOp::Create {
                collection, data, ..
            } => Some((collection, data)),
            _ => None,
        }
    }

    /// An update's collection, stored row and would-be row (for request hooks to show).
    pub(crate) fn update_data(&self) -> Option<(&Arc<Collection>, &RecordData, &RecordData)> {
        let WriteOp::Update {
            collection, known, ..
        } = &self.op
        else {
            return None;
        };
        let after = self
            .preview
            .as_ref()
            .or_else(|| known.as_ref().and_then(|known| known.data.as_ref()))?;
        Some((collection, &self.done.before.as_ref()?.data, after))
    }

    /// A delete's collection, record id and rule guard (to load the record it deletes).
    pub(crate) fn delete_target(
        &self,
    ) -> Option<(&Arc<Collection>, &str, Option<&domain::SqlFragment>)> {
        match &self.op {
            WriteOp::Delete {
                collection,
                id,
                guard,
            } => Some((collection, id.as_str(), guard.as_ref())),
            _ => None,
        }
    }

    /// Sets fields a request hook changed: into a create's values, or over an update's
    /// result (applied after the client's change, inside the transaction).
    pub(crate) fn override_fields(&mut self, changed: Map<String, Value>) {
        if changed.is_empty() {
            return;
        }
        match &mut self.op {
            WriteOp::Create { data, .. } => data.extend(changed),
            WriteOp::Update { apply, known, .. } => {
                // What `apply` gives on the row read before, kept alike.
                if let Some(data) = known.as_mut().and_then(|known| known.data.as_mut()) {
                    data.extend(changed.clone());
                }
                let mut inner =
                    std::mem::replace(apply, Box::new(|r: &Record| Ok(r.data.clone())) as UpdateFn);
                *apply = Box::new(move |current: &Record| {
                    let mut data = inner(current)?;
                    data.extend(changed.clone());
                    Ok(data)
                });
            }
            WriteOp::Delete { .. } => {}
        }
    }

    /// The record this write creates, for the items after it.
    pub(crate) fn created(&self) -> Option<Created> {
        match &self.op {
            WriteOp::Create {
                collection, data, ..
            } => Some(Created {
                collection_id: collection.id.clone(),
                record: Record::new(data.clone()),
            }),
            _ => None,
        }
    }
}

/// What is kept of a prepared write to answer it once executed.
pub(crate) struct Done {
    kind: Kind,
    /// Shared with an update's deferred guard (`KnownRow::guard`).
    ctx: Arc<RequestContext>,
    collection: Arc<Collection>,
    params: QueryParams,
    failed: &'static str,
    record_id: String,
    uploads: UploadPlan,
    /// The row before an update, to find the files it drops.
    before: Option<Arc<Record>>,
}

/// Prepares `action` on the collection named `collection`, as its endpoint would.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn prepare(
    state: &SharedState,
    action: Action,
    collection: &str,
    auth: &AuthContext,
    meta: Meta<'_>,
    raw_query: Option<&str>,
    body: Map<String, Value>,
    files: Vec<UploadedFile>,
    earlier: &[Created],
) -> ApiResult<Prepared> {
    let params = QueryParams::parse(raw_query);
    // The batch looks the collection up itself first, with the read wording of the 404.
    target_for_read(state, collection).await?;
    let action = match action {
        Action::Upsert(id) => {
            let target = target_for_write(state, collection).await?;
            let exists = !id.is_empty()
                && current_row(state, &target.collection, &id, earlier)
                    .await?
                    .is_some();
            if exists {
                Action::Update(id)
            } else {
                Action::Create
            }
        }
        other => other,
    };
    match action {
        Action::Create | Action::Upsert(_) => {
            let target = target_for_write(state, collection).await?;
            refuse_view(&target.collection)?;
            prepare_create(state, target, auth, meta, params, body, files).await
        }
        Action::Update(id) => {
            let target = target_for_write(state, collection).await?;
            refuse_view(&target.collection)?;
            prepare_update(state, target, id, auth, meta, params, body, files, earlier).await
        }
        Action::Delete(id) => {
            // Hook point: onRecordDeleteRequest.
            let target = target_for_read(state, collection).await?;
            refuse_view(&target.collection)?;
            let ctx = Arc::new(meta.context(auth, params.pairs(), None));
            let guard = access::sql_guard(&target.rules.delete, state.store.dialect(), &ctx)?;
            Ok(Prepared {
                op: WriteOp::Delete {
                    collection: target.collection.clone(),
                    id: id.clone(),
                    guard,
                },
                done: Done {
                    kind: Kind::Delete,
                    ctx,
                    collection: target.collection,
                    params,
                    failed: DELETE_FAILED,
                    record_id: id,
                    uploads: UploadPlan::default(),
                    before: None,
                },
                preview: None,
            })
        }
    }
}

/// The create endpoint's checks, in PocketBase's order (see `create.rs`).
pub(super) async fn prepare_create(
    state: &SharedState,
    target: Target,
    auth: &AuthContext,
    meta: Meta<'_>,
    params: QueryParams,
    mut body: Map<String, Value>,
    files: Vec<UploadedFile>,
) -> ApiResult<Prepared> {
    // Hook point: onRecordCreateRequest.
    let collection = &target.collection;
    refuse_superusers_only(&target.rules.create, auth)?;
    let uploads = upload::plan(collection, &mut body, files)
        .map_err(|errors| ApiError::validation(CREATE_FAILED, errors))?;
    let now = domain::time::now();
    // Applied to nothing: every field starts from its zero value, as on a blank record.
    let empty = Arc::new(Record::new(RecordData::new()));
    let heavy = is_heavy(&body);
    let body_read = reads_body(state, &target);
    let (body, mut input, (applied, apply_errors), body_seen) = would_be_row(
        collection, auth, body, &uploads, &empty, &now, true, heavy, body_read,
    )
    .await?;
    // The create's values are these, once validated: the rules read them first, as the
    // would-be row, and the two values set for the rules alone are put back afterwards.
    let mut would_be = Record::new(applied);
    let ctx = Arc::new(meta.context(auth, params.pairs(), body_seen));
    // A rule that reads other rows is decided in SQL against the would-be row (not stored),
    // so that it comes before any field error, as in PocketBase. Its id must be set for that.
    let given_id = would_be
        .data
        .get("id")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
        .then(|| {
            would_be
                .data
                .insert("id".into(), Value::String(domain::ids::new_record_id()))
        });
    // A manager (manageRule) may set `verified` and skip the old-password check; the rule
    // reads the record as submitted.
    let manager = match &target.rules.manage {
        _ if auth.is_superuser() => true,
        Some(manage) if collection.is_auth() => {
            passes(state, manage, collection, &would_be, false, &ctx).await?
        }
        _ => false,
    };
    let given_verified = collection
        .is_auth()
        .then(|| would_be.data.insert("verified".into(), Value::Bool(false)));
    // A rule SQL had to decide is decided now on the would-be row, then again (as the guard)
    // on the inserted row inside the write transaction, where the rows it reads cannot
    // change under it.
    let guard = match decide(
        state,
        &target.rules.create,
        collection,
        &would_be,
        false,
        &ctx,
    )
    .await?
    {
        Decision::Allow(guard) => guard,
        _ => return Err(ApiError::bad_request_msg(CREATE_FAILED)),
    };
    if collection.is_auth() {
        let errors = write::auth_form_errors(&body, &input, None, manager).await;
        if !errors.is_empty() {
            return Err(ApiError::validation(CREATE_FAILED, errors));
        }
    }
    let mut applied = would_be.data;
    for (key, given) in [("id", given_id), ("verified", given_verified)] {
        match given {
            Some(Some(value)) => {
                applied.insert(key.into(), value);
            }
            Some(None) => {
                applied.shift_remove(key);
            }
            None => {}
        }
    }
    // Hook point: onRecordValidate (the create's values, as validated next).
    let (built, returned) =
        validate_off_thread(collection, (applied, apply_errors), input, heavy).await?;
    input = returned;
    let mut data = built.map_err(|errors| ApiError::validation(CREATE_FAILED, errors))?;
    write::hash_passwords(state, &mut input).await?;
    write::store_hashes(&input, &mut data);
    let record_id = data
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    Ok(Prepared {
        op: WriteOp::Create {
            collection: collection.clone(),
            data,
            guard,
        },
        done: Done {
            kind: Kind::Create,
            ctx,
            collection: target.collection.clone(),
            params,
            failed: CREATE_FAILED,
            record_id,
            uploads,
            before: None,
        },
        preview: None,
    })
}

/// The update endpoint's checks (see `update.rs`).
#[allow(clippy::too_many_arguments)]
pub(super) async fn prepare_update(
    state: &SharedState,
    target: Target,
    id: String,
    auth: &AuthContext,
    meta: Meta<'_>,
    params: QueryParams,
    mut body: Map<String, Value>,
    files: Vec<UploadedFile>,
    earlier: &[Created],
) -> ApiResult<Prepared> {
    // Hook point: onRecordUpdateRequest.
    let collection = &target.collection;
    refuse_superusers_only(&target.rules.update, auth)?;
    let (current, stored) = current_row(state, collection, &id, earlier)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let (stored, mark) = match stored {
        Stored::Yes(mark) => (true, mark),
        Stored::No => (false, None),
    };
    let uploads = upload::plan(collection, &mut body, files)
        .map_err(|errors| ApiError::validation(UPDATE_FAILED, errors))?;
    let now = domain::time::now();
    let current = Arc::new(current);
    let heavy = is_heavy(&body);
    let body_read = reads_body(state, &target);
    let (body, input, applied, body_seen) = would_be_row(
        collection, auth, body, &uploads, &current, &now, false, heavy, body_read,
    )
    .await?;
    let ctx = Arc::new(meta.context(auth, params.pairs(), body_seen));
    let dialect = state.store.dialect();
    // A record created earlier in the same batch is not stored yet: its rules are checked
    // on its would-be row.
    let rule = &target.rules.update;
    let (mut guard, held_in_memory) =
        match decide(state, rule, collection, &current, stored, &ctx).await? {
            // Decided in SQL: that predicate is the guard.
            Decision::Allow(Some(predicate)) => (Some(predicate), false),
            Decision::Allow(None) => (None, true),
            _ => return Err(ApiError::not_found()),
        };
    let check = |rule| passes(state, rule, collection, &current, stored, &ctx);
    if collection.is_auth() {
        let manager = match &target.rules.manage {
            Some(manage) => check(manage).await?,
            None => auth.is_superuser(),
        };
        let errors = write::auth_form_errors(&body, &input, Some(&current), manager).await;
        if !errors.is_empty() {
            return Err(ApiError::validation(UPDATE_FAILED, errors));
        }
    }
    // Hook point: onRecordValidate (the update's values, as applied to `current` above and
    // validated next; built again in the transaction on the row as it is then).
    let (built, mut input) = validate_off_thread(collection, applied, input, heavy).await?;
    let preview = built.map_err(|errors| ApiError::validation(UPDATE_FAILED, errors))?;
    write::hash_passwords(state, &mut input).await?;
    // The new values on `current` are `preview` unless the transaction's `apply` adds to them
    // (password hashes, a new token key: auth collections only); the op then carries them
    // (and [`Prepared::update_data`] shows them from there).
    let carried = mark.is_some() && !collection.is_auth() && input.passwords().is_empty();
    let (data, preview) = if carried {
        (Some(preview), None)
    } else {
        (None, Some(preview))
    };
    // The rule held in memory on the row read under `mark`: while the row is unchanged it
    // holds, so its SQL is built only if the write has to take the long way. (A public rule,
    // or a superuser, has no guard at all.)
    let deferred: Option<domain::GuardFn> = match rule {
        Rule::Expr(compiled) if held_in_memory && !auth.is_superuser() => {
            if mark.is_some() {
                let (compiled, ctx) = (compiled.clone(), Arc::clone(&ctx));
                Some(Box::new(move || Some(compiled.to_sql(dialect, &ctx))))
            } else {
                guard = Some(compiled.to_sql(dialect, &ctx));
                None
            }
        }
        _ => None,
    };
    let known = mark.map(|mark| domain::KnownRow {
        record: Arc::clone(&current),
        mark,
        data,
        guard: deferred,
    });
    Ok(Prepared {
        op: WriteOp::Update {
            collection: collection.clone(),
            id: id.clone(),
            guard,
            apply: update_fn(collection.clone(), input, now),
            known,
        },
        done: Done {
            kind: Kind::Update,
            ctx,
            collection: target.collection.clone(),
            params,
            failed: UPDATE_FAILED,
            record_id: id,
            uploads,
            before: Some(current),
        },
        preview,
    })
}

/// Whether this write must build `@request.body`: a rule of the schema may read it (see
/// [`crate::state::rules_cache::RulesCache::reads_body`]) or an `onRecordEnrich` handler
/// applies to the collection (its request info carries it; the request hooks build their
/// own). Otherwise nothing reads it, and the copy of the body it takes is skipped.
fn reads_body(state: &SharedState, target: &Target) -> bool {
    super::hooks::enriched(state, &target.collection)
        || state.rules_cache.reads_body(&target.schema)
}

/// The CPU-bound half of preparing a write, off the async workers when the body is heavy:
/// the body read as changes, applied to `current` (an empty record on create, so every field
/// starts at its zero value) with the errors found while applying, and `@request.body` as
/// rules see it (when `body_read`).
/// Every step is linear in the body, which is bounded, but a large body is still tens of
/// milliseconds of work that must not stall other requests.
#[allow(clippy::too_many_arguments)]
async fn would_be_row(
    collection: &Arc<Collection>,
    auth: &AuthContext,
    body: Map<String, Value>,
    uploads: &UploadPlan,
    current: &Arc<Record>,
    now: &str,
    creating: bool,
    heavy: bool,
    body_read: bool,
) -> ApiResult<(
    Map<String, Value>,
    RecordInput,
    (RecordData, domain::ValidationErrors),
    Option<Map<String, Value>>,
)> {
    let (collection, auth, current, now) = (
        collection.clone(),
        auth.clone(),
        current.clone(),
        now.to_owned(),
    );
    let mut input = RecordInput::default();
    uploads.declare(&mut input);
    let declared = input;
    off_thread(heavy, move || {
        let mut input = write::parse_input(&collection, &body, &auth);
        input.merge_new_files(declared);
        let apply_ctx = ApplyContext {
            creating,
            now: &now,
        };
        let (would_be, errors) = values::apply(&collection, &current.data, &input, &apply_ctx);
        let body_seen = body_read.then(|| body_values(&collection, &body, &input, &would_be));
        (body, input, (would_be, errors), body_seen)
    })
    .await
}

/// [`values::validated`], off the async workers when the body is heavy; the input comes back
/// for the password hashing.
async fn validate_off_thread(
    collection: &Arc<Collection>,
    applied: (RecordData, domain::ValidationErrors),
    input: RecordInput,
    heavy: bool,
) -> ApiResult<(Result<RecordData, domain::ValidationErrors>, RecordInput)> {
    let collection = collection.clone();
    off_thread(heavy, move || {
        (values::validated(&collection, applied, &input), input)
    })
    .await
}

/// Values in a body past which preparing it is worth a blocking thread: below it the work
/// takes microseconds, less than the hop to a blocking thread and back.
const OFFLOAD_VALUES: usize = 4096;

/// Whether `body` holds more than [`OFFLOAD_VALUES`] values (long strings count one per KiB);
/// stops counting there, so the check itself stays cheap.
fn is_heavy(body: &Map<String, Value>) -> bool {
    let mut pending: Vec<&Value> = body.values().collect();
    let mut seen = 0usize;
    while let Some(value) = pending.pop() {
        seen += 1 + match value {
            Value::String(text) => text.len() / 1024,
            Value::Array(items) => {
                pending.extend(items);
                0
            }
            Value::Object(map) => {
                pending.extend(map.values());
                0
            }
            _ => 0,
        };
        if seen > OFFLOAD_VALUES {
            return true;
        }
    }
    false
}

/// Runs CPU-bound work on a blocking thread when it is `heavy`, in place otherwise.
async fn off_thread<T: Send + 'static>(
    heavy: bool,
    work: impl FnOnce() -> T + Send + 'static,
) -> ApiResult<T> {
    if !heavy {
        return Ok(work());
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(ApiError::internal)
}

/// The record `id` of `collection` as an update starts from: the stored row (`true`), or
/// the would-be row of a create earlier in the same batch (`false`).
/// The row an update or upsert works on: the stored one (with the mark of its read, if the
/// store gives one), else one created earlier in the same batch (not stored yet).
async fn current_row(
    state: &SharedState,
    collection: &Arc<Collection>,
    id: &str,
    earlier: &[Created],
) -> ApiResult<Option<(Record, Stored)>> {
    if let Some((record, mark)) = state
        .store
        .get_record_marked(collection.clone(), id)
        .await?
    {
        return Ok(Some((record, Stored::Yes(mark))));
    }
    Ok(earlier
        .iter()
        .rev()
        .find(|one| one.collection_id == collection.id && one.record.id() == id)
        .map(|one| (one.record.clone(), Stored::No)))
}

/// Whether [`current_row`]'s row is stored, and the mark of its read.
enum Stored {
    Yes(Option<domain::ReadMark>),
    No,
}

/// Stores the uploads, runs every prepared write in one transaction, and removes the files
/// the writes dropped once they are committed. A failure (with the index of the write that
/// failed) leaves neither rows nor new files behind.
pub(crate) async fn execute(
    state: &SharedState,
    prepared: Vec<Prepared>,
    deadline: Option<std::time::Instant>,
) -> Result<Vec<(Done, WriteResult)>, (usize, ApiError)> {
    let (ops, prepared): (Vec<WriteOp>, Vec<Done>) =
        prepared.into_iter().map(|p| (p.op, p.done)).unzip();
    let has_files = prepared.iter().any(|p| !p.uploads.is_empty())
        || prepared
            .iter()
            .any(|p| p.kind != Kind::Create && has_file_fields(&p.collection));
    let storage = if has_files {
        Some(
            crate::files::storage_for(state)
                .await
                .map_err(|error| (0, error))?,
        )
    } else {
        None
    };
    if let Some(storage) = &storage {
        for (index, one) in prepared.iter().enumerate() {
            if let Err(error) = one
                .uploads
                .store(storage, &one.collection.id, &one.record_id)
                .await
            {
                for earlier in &prepared[..index] {
                    earlier
                        .uploads
                        .discard(storage, &earlier.collection.id, &earlier.record_id)
                        .await;
                }
                return Err((index, ApiError::internal(error)));
            }
        }
    }
    let written = match crate::scripts::of(state) {
        Some(scripts) if crate::scripts::records::model_hooks_apply(scripts, &ops) => {
            crate::scripts::records::commit_with_hooks(state, scripts, ops, deadline, None).await
        }
        _ => commit(state.store.as_ref(), ops, deadline).await,
    };
    let results = match written {
        Ok(results) => results,
        Err(error) => {
            if let Some(storage) = &storage {
                for one in prepared.iter() {
                    one.uploads
                        .discard(storage, &one.collection.id, &one.record_id)
                        .await;
                }
            }
            let failed = prepared
                .get(error.index)
                .map_or(CREATE_FAILED, |p| p.failed);
            return Err((error.index, ApiError::from_store(error.error, failed)));
        }
    };
    let written: Vec<_> = prepared
        .iter()
        .zip(&results)
        .map(|(one, result)| {
            let before = one.before.as_ref().map(|record| &record.data);
            (one.collection.id.as_str(), before, result)
        })
        .collect();
    remove_dropped_files(state, storage, &written).await;
    settle_realtime(state).await;
    Ok(prepared.into_iter().zip(results).collect())
}

/// Holds a committed write's answer until realtime subscribers' messages for it (and for
/// every change before it) are prepared; see [`crate::state::hub::Hub::settle`].
async fn settle_realtime(state: &SharedState) {
    if state.realtime.client_count() == 0 {
        return;
    }
    if let Ok(seq) = state.store.last_change_seq().await {
        state.realtime.settle(seq).await;
    }
}

/// The only place record writes reach the store: every write of the request path and of the
/// system path is one call here, one transaction. `deadline` bounds the whole transaction
/// (the batch timeout).
pub(crate) async fn commit(
    store: &dyn Store,
    ops: Vec<WriteOp>,
    deadline: Option<std::time::Instant>,
) -> Result<Vec<WriteResult>, WriteError> {
    // Hook point: onRecordCreate / onRecordUpdate / onRecordDelete wrap each op here (a hook
    // may change or refuse it), and their onRecord…Execute runs the op inside the
    // transaction; the transaction's before-commit point comes after the last op.
    let written = match deadline {
        Some(deadline) => store.write_before(ops, deadline).await,
        None => store.write(ops).await,
    };
    // Hook point: after the commit, onRecordAfterCreateSuccess / …UpdateSuccess /
    // …DeleteSuccess once per op when `written` is `Ok`; onRecordAfterCreateError /
    // …UpdateError / …DeleteError when it is not.
    written
}

/// Removes the files committed writes no longer need: those an update dropped (given the row
/// before it), and those of a deleted record and of every record its cascade deleted. The
/// storage is opened here when the writes showed it is needed after all.
async fn remove_dropped_files(
    state: &SharedState,
    storage: Option<crate::state::storage::Storage>,
    written: &[(&str, Option<&RecordData>, &WriteResult)],
) {
    let schema = state.store.schema();
    let keeps_files = |collection_id: &str| {
        schema
            .get_by_id(collection_id)
            .is_some_and(|c| has_file_fields(c))
    };
    let needed = written
        .iter()
        .any(|(collection_id, _, result)| match result {
            WriteResult::Deleted { cascaded, .. } => {
                keeps_files(collection_id) || cascaded.iter().any(|(c, _)| keeps_files(c))
            }
            WriteResult::Updated(_) => keeps_files(collection_id),
            WriteResult::Created(_) => false,
        });
    let storage = match storage {
        None if needed => crate::files::storage_for(state).await.ok(),
        other => other,
    };
    let Some(storage) = &storage else {
        return;
    };
    // Through the backups' gate: a removal waits while a backup is copying the files.
    let backups = &state.backups;
    for (collection_id, before, result) in written {
        match result {
            WriteResult::Updated(record) => {
                if let (Some(before), Some(collection)) = (before, schema.get_by_id(collection_id))
                {
                    let names = upload::removed_files(collection, before, &record.data);
                    if !names.is_empty() {
                        let removal = Removal::Files {
                            collection_id: (*collection_id).to_owned(),
                            record_id: record.id().to_owned(),
                            names,
                        };
                        backups.remove_files(storage, removal).await;
                    }
                }
            }
            WriteResult::Deleted { record, cascaded } => {
                let removal = Removal::Record {
                    collection_id: (*collection_id).to_owned(),
                    record_id: record.id().to_owned(),
                };
                backups.remove_files(storage, removal).await;
                for (collection_id, id) in cascaded {
                    if keeps_files(collection_id) {
                        let removal = Removal::Record {
                            collection_id: collection_id.clone(),
                            record_id: id.clone(),
                        };
                        backups.remove_files(storage, removal).await;
                    }
                }
            }
            WriteResult::Created(_) => {}
        }
    }
}

fn has_file_fields(collection: &Collection) -> bool {
    collection
        .fields
        .iter()
        .any(|f| matches!(f.kind, domain::FieldKind::File(_)))
}

/// The answer body of one executed write: the record (with `expand`/`fields`), or `None`
/// for a delete.
pub(crate) async fn respond(
    state: &SharedState,
    prepared: &Done,
    result: WriteResult,
) -> ApiResult<Option<Value>> {
    match (prepared.kind, result) {
        (Kind::Delete, _) => Ok(None),
        (_, WriteResult::Created(record) | WriteResult::Updated(record)) => {
            // onRecordEnrich runs in `respond_with_record` (the record as this caller sees it).
            let axum::Json(value) = respond_with_record(
                state,
                &prepared.ctx,
                &prepared.collection,
                record,
                &prepared.params,
            )
            .await?;
            Ok(Some(value))
        }
        (_, WriteResult::Deleted { .. }) => Err(ApiError::internal(
            "the store reported a delete for a write",
        )),
    }
}

/// The change as a function of the current row (as in `update.rs`).
fn update_fn(collection: Arc<Collection>, input: RecordInput, now: String) -> UpdateFn {
    Box::new(move |record: &Record| {
        let ctx = ApplyContext {
            creating: false,
            now: &now,
        };
        let mut data = values::build(&collection, &record.data, &input, &ctx)
            .map_err(StoreError::Validation)?;
        let password_set = input.password("password").is_some_and(|p| !p.is_empty());
        rotate_token_key(&collection, record, &mut data, &input, password_set);
        Ok(data)
    })
}

/// As PocketBase does, an auth record whose password is set or whose email changes gets a
/// new `tokenKey` (revoking its tokens), unless the change sets the key itself.
fn rotate_token_key(
    collection: &Collection,
    before: &Record,
    data: &mut RecordData,
    input: &RecordInput,
    password_set: bool,
) {
    if !collection.is_auth() || input.touches("tokenKey") {
        return;
    }
    let email_changed = data.get("email") != before.data.get("email");
    if password_set || email_changed {
        data.insert(
            "tokenKey".into(),
            Value::String(domain::ids::random_alnum(50)),
        );
    }
}

/// `rule` for `record` in this request, through [`access::decide`]: a `stored` record is
/// looked up under the rule's predicate; one that is not stored (a would-be row) is offered in
/// place of the table.
async fn decide(
    state: &SharedState,
    rule: &Rule,
    collection: &Arc<Collection>,
    record: &Record,
    stored: bool,
    ctx: &RequestContext,
) -> ApiResult<Decision> {
    let question = Question {
        rule,
        filter: None,
        collection,
        record,
        stored,
    };
    Ok(access::decide(state.store.as_ref(), question, ctx, SqlCheck::Lenient).await?)
}

/// Whether `record` passes `rule` for this request (see [`decide`]).
async fn passes(
    state: &SharedState,
    rule: &Rule,
    collection: &Arc<Collection>,
    record: &Record,
    stored: bool,
    ctx: &RequestContext,
) -> ApiResult<bool> {
    Ok(decide(state, rule, collection, record, stored, ctx)
        .await?
        .allows())
}

/// The largest body a create or update of `collection` accepts: the server's limit plus,
/// as in PocketBase, `maxSize × maxSelect` of every file field.
pub(crate) fn body_limit(state: &SharedState, collection: &Collection) -> u64 {
    let files: u64 = collection
        .fields
        .iter()
        .filter_map(|f| match &f.kind {
            domain::FieldKind::File(o) => {
                let size = if o.max_size == 0 {
                    upload::DEFAULT_MAX_SIZE
                } else {
                    o.max_size
                };
                Some(size.saturating_mul(o.max_select.max(1)))
            }
            _ => None,
        })
        .fold(0, u64::saturating_add);
    (state.config.body_limit as u64).saturating_add(files)
}

/// Reads a record body and its file parts, with the errors of the records endpoints, cut
/// off at `limit` bytes (413).
pub(super) async fn read_body_with_files(
    request: axum::extract::Request,
    state: &SharedState,
    limit: u64,
) -> ApiResult<(Map<String, Value>, Vec<UploadedFile>)> {
    use std::sync::atomic::Ordering;
    let (request, exceeded) =
        crate::extract::limit_request(request, limit).map_err(|_| ApiError::too_large())?;
    crate::extract::parse_body_with_files(request, state)
        .await
        .map_err(|error| match error {
            _ if exceeded.load(Ordering::Relaxed) => ApiError::too_large(),
            crate::extract::BodyError::UnsupportedContentType => {
                ApiError::bad_request_msg("Unsupported Content-Type.")
            }
            crate::extract::BodyError::Malformed => {
                ApiError::bad_request().with_detail(crate::extract::BodyError::MALFORMED_DETAIL)
            }
            crate::extract::BodyError::TooLarge => ApiError::too_large(),
        })
}

/// Executes one prepared write and answers it as its endpoint does.
pub(super) async fn execute_one(
    state: &SharedState,
    prepared: Prepared,
) -> ApiResult<Option<Value>> {
    let (done, result) = execute_single(state, prepared).await?;
    respond(state, &done, result).await
}

/// [`execute`] for one prepared write: what it did, and the store's result.
async fn execute_single(state: &SharedState, prepared: Prepared) -> ApiResult<(Done, WriteResult)> {
    let mut results = execute(state, vec![prepared], None)
        .await
        .map_err(|(_, error)| error)?;
    results
        .pop()
        .ok_or_else(|| ApiError::internal("the store reported no result"))
}

/// [`execute_one`] as the create and update endpoints answer it: a record with nothing to add
/// or change ([`super::common::plain`]) is serialized straight from the stored record, as the
/// view endpoint does, without building its JSON object first.
pub(super) async fn execute_one_answer(
    state: &SharedState,
    prepared: Prepared,
    missing: &'static str,
) -> ApiResult<axum::response::Response> {
    let (done, result) = execute_single(state, prepared).await?;
    if let WriteResult::Created(record) | WriteResult::Updated(record) = &result
        && super::common::plain(state, &done.collection, &done.params)
    {
        let out = crate::response::RecordOut {
            collection: &done.collection,
            record,
            viewer: &done.ctx.auth,
            order: &crate::response::KeyOrder::of(&done.collection),
        };
        return Ok(super::common::json_answer(out.to_vec()));
    }
    match respond(state, &done, result).await? {
        Some(record) => Ok(axum::response::IntoResponse::into_response(axum::Json(
            record,
        ))),
        None => Err(ApiError::internal(missing)),
    }
}

/// Who the system path acts for: the store, how new password hashes are made and, when the
/// app runs, its state (for the files of deleted records).
#[derive(Clone, Copy)]
pub(crate) struct System<'a> {
    store: &'a dyn Store,
    argon2: Argon2Params,
    state: Option<&'a SharedState>,
    /// A script's open transaction the writes join (`$app.save` inside
    /// `runInTransaction` or a model hook); `None` writes in a transaction of their own.
    tx: Option<&'a crate::scripts::SharedTx>,
    /// Whether files the writes drop are removed after them (not inside a script's
    /// transaction, which may still roll back).
    remove_files: bool,
}

impl<'a> System<'a> {
    /// The running app's system path.
    pub(crate) fn of(state: &'a SharedState) -> Self {
        System {
            store: state.store.as_ref(),
            argon2: state.config.argon2,
            state: Some(state),
            tx: None,
            remove_files: true,
        }
    }

    /// A bare store (the superuser CLI, before any server runs): no files are removed.
    pub(crate) fn store_only(store: &'a dyn Store, argon2: Argon2Params) -> Self {
        System {
            store,
            argon2,
            state: None,
            tx: None,
            remove_files: false,
        }
    }

    /// The same system path, writing inside a script's open transaction.
    pub(crate) fn in_tx(mut self, tx: Option<&'a crate::scripts::SharedTx>) -> Self {
        self.tx = tx;
        if tx.is_some() {
            // Dropped files are kept rather than removed before a commit that may not come.
            self.remove_files = false;
        }
        self
    }

    /// Sends the ops through the one door, or into the joined transaction.
    async fn commit(&self, ops: Vec<WriteOp>) -> Result<Vec<WriteResult>, WriteError> {
        if let Some(state) = self.state
            && let Some(scripts) = crate::scripts::of(state)
            && crate::scripts::records::model_hooks_apply(scripts, &ops)
        {
            return crate::scripts::records::commit_with_hooks(state, scripts, ops, None, self.tx)
                .await;
        }
        match self.tx {
            None => {
                let written = commit(self.store, ops, None).await;
                if written.is_ok()
                    && let Some(state) = self.state
                {
                    settle_realtime(state).await;
                }
                written
            }
            Some(tx) => {
                let mut guard = tx.lock().await;
                match guard.as_mut() {
                    Some(open) => open.write(ops).await,
                    None => Err(WriteError {
                        index: 0,
                        error: StoreError::Internal("the transaction has ended".into()),
                    }),
                }
            }
        }
    }
}

/// A change the system path saves: values as a superuser would submit them (hidden fields
/// and modifiers included, plain passwords hashed here), plus stored forms set as they are.
#[derive(Debug, Clone, Default)]
pub(crate) struct SystemChange {
    values: Map<String, Value>,
    raw: Vec<(String, Value)>,
    keep_autodates: bool,
    keep_token_key: bool,
}

impl SystemChange {
    pub(crate) fn new() -> Self {
        SystemChange::default()
    }

    /// Sets `field` (or applies a modifier such as `field+`) as a superuser's body would.
    pub(crate) fn set(mut self, field: &str, value: impl Into<Value>) -> Self {
        self.values.insert(field.to_owned(), value.into());
        self
    }

    /// Stores `value` in `field` as it is, for values already in their stored form (a
    /// password hash made elsewhere); it is still validated with the record.
    pub(crate) fn set_raw(mut self, field: &str, value: impl Into<Value>) -> Self {
        self.raw.push((field.to_owned(), value.into()));
        self
    }

    /// Leaves the `updated`-style autodate fields as they are (a change nobody made by hand,
    /// such as a password rehash).
    pub(crate) fn keep_autodates(mut self) -> Self {
        self.keep_autodates = true;
        self
    }

    /// Keeps the `tokenKey` even though the password changes (a rehash of the same password).
    pub(crate) fn keep_token_key(mut self) -> Self {
        self.keep_token_key = true;
        self
    }

    /// Whether the change gives a new password (plain or hashed).
    fn sets_password(&self, input: &RecordInput) -> bool {
        input.password("password").is_some_and(|p| !p.is_empty())
            || self.raw.iter().any(|(field, _)| field == "password")
    }
}

/// The change's values read as a superuser's body, with their passwords hashed.
async fn system_input(
    system: System<'_>,
    collection: &Collection,
    change: &SystemChange,
) -> Result<RecordInput, StoreError> {
    let mut input = RecordInput::parse(
        collection,
        &change.values,
        &values::InputOptions {
            include_hidden: true,
            allow_hidden: &[],
        },
    );
    for entry in input.passwords_mut() {
        if entry.plain.is_empty() {
            continue;
        }
        let hash = password::hash_argon2(entry.plain.clone(), system.argon2)
            .await
            .map_err(|error| StoreError::Internal(error.to_string()))?;
        entry.hash = Some(hash);
    }
    Ok(input)
}

/// Creates a record of `collection` as a superuser would, without rules: the values are
/// validated against the fields (an auth record's `tokenKey` and the ids are generated,
/// autodates set). Field problems come back as [`StoreError::Validation`].
pub(crate) async fn system_create(
    system: System<'_>,
    collection: &Arc<Collection>,
    change: SystemChange,
) -> Result<Record, StoreError> {
    if collection.is_view() {
        return Err(StoreError::Schema("view collections are read-only".into()));
    }
    let input = system_input(system, collection, &change).await?;
    let mut start = values::blank_record(collection);
    start.extend(change.raw);
    let now = domain::time::now();
    let ctx = ApplyContext {
        creating: true,
        now: &now,
    };
    // Hook point: onRecordValidate.
    let data = values::build(collection, &start, &input, &ctx).map_err(StoreError::Validation)?;
    let op = WriteOp::Create {
        collection: collection.clone(),
        data,
        guard: None,
    };
    let results = system.commit(vec![op]).await.map_err(|error| error.error)?;
    match results.into_iter().next() {
        Some(WriteResult::Created(record)) => Ok(record),
        _ => Err(StoreError::Internal(
            "the store reported no created record".into(),
        )),
    }
}

/// Changes the record `id` of `collection` as a superuser would, without rules. The change is
/// applied (and the result validated) on the row as it is inside the write transaction;
/// `updated`-style autodates take the current time unless the change keeps them.
pub(crate) async fn system_update(
    system: System<'_>,
    collection: &Arc<Collection>,
    id: &str,
    change: SystemChange,
) -> Result<Record, StoreError> {
    let input = system_input(system, collection, &change).await?;
    let password_set = change.sets_password(&input);
    let touched: Vec<String> = collection
        .fields
        .iter()
        .filter(|f| matches!(&f.kind, FieldKind::Autodate(o) if o.on_update))
        .map(|f| f.name.clone())
        .collect();
    let now = domain::time::now();
    let updating = collection.clone();
    // The row the change applied to, to find the files it dropped.
    let before: Arc<std::sync::Mutex<Option<RecordData>>> = Arc::default();
    let keep_before =
        (system.remove_files && has_file_fields(collection)).then(|| Arc::clone(&before));
    let apply: UpdateFn = Box::new(move |current: &Record| {
        if let Some(slot) = &keep_before {
            *slot
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(current.data.clone());
        }
        let mut start = current.data.clone();
        start.extend(change.raw.clone());
        let ctx = ApplyContext {
            creating: false,
            now: &now,
        };
        // Hook point: onRecordValidate.
        let mut data =
            values::build(&updating, &start, &input, &ctx).map_err(StoreError::Validation)?;
        if change.keep_autodates {
            for name in &touched {
                if let Some(kept) = current.data.get(name) {
                    data.insert(name.clone(), kept.clone());
                }
            }
        }
        if !change.keep_token_key {
            rotate_token_key(&updating, current, &mut data, &input, password_set);
        }
        Ok(data)
    });
    let op = WriteOp::Update {
        collection: collection.clone(),
        id: id.to_owned(),
        guard: None,
        apply,
        known: None,
    };
    let results = system.commit(vec![op]).await.map_err(|error| error.error)?;
    let Some(result) = results.into_iter().next() else {
        return Err(StoreError::Internal(
            "the store reported no updated record".into(),
        ));
    };
    let before = before
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    if let (Some(state), Some(before), true) = (system.state, &before, system.remove_files) {
        remove_dropped_files(
            state,
            None,
            &[(collection.id.as_str(), Some(before), &result)],
        )
        .await;
    }
    match result {
        WriteResult::Updated(record) => Ok(record),
        _ => Err(StoreError::Internal(
            "the store reported no updated record".into(),
        )),
    }
}

/// Deletes the record `id` of `collection` as a superuser would, without rules: relation
/// cascades apply, an auth record's bookkeeping rows go in the same transaction, and (when
/// the app runs) the files of every deleted record are removed after the commit.
pub(crate) async fn system_delete(
    system: System<'_>,
    collection: &Arc<Collection>,
    id: &str,
) -> Result<Record, StoreError> {
    let op = WriteOp::Delete {
        collection: collection.clone(),
        id: id.to_owned(),
        guard: None,
    };
    let results = system.commit(vec![op]).await.map_err(|error| error.error)?;
    let Some(result) = results.into_iter().next() else {
        return Err(StoreError::Internal(
            "the store reported no deleted record".into(),
        ));
    };
    if let (Some(state), true) = (system.state, system.remove_files) {
        remove_dropped_files(state, None, &[(collection.id.as_str(), None, &result)]).await;
    }
    match result {
        WriteResult::Deleted { record, .. } => Ok(record),
        _ => Err(StoreError::Internal(
            "the store reported no deleted record".into(),
        )),
    }
}
