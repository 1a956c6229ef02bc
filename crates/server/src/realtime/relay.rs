//! The realtime side of relays between nodes (see [`crate::state::relay`]): a subscription
//! request that reached a node without the client's stream is carried out by the node that
//! holds it, and every node delivers the messages left for its clients.

use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::http::StatusCode;
use domain::{AuthContext, Relay, Store};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::state::relay::{self, Outcome, Until};
use crate::state::{AppState, SharedState};

/// Most relayed messages read per look.
const RELAYS_PER_READ: usize = 100;

/// A subscription request for a client no node of this process holds: carried out by the node
/// that does, whose answer this is; PocketBase's 404 when no node holds it.
pub(super) async fn subscribe_elsewhere(
    state: &SharedState,
    client_id: &str,
    ip: Option<String>,
    auth: &AuthContext,
    subscriptions: Vec<String>,
    after: Option<u64>,
) -> ApiResult<StatusCode> {
    let missing = || ApiError::not_found_msg("Missing or invalid client id.");
    let who = match auth {
        AuthContext::Guest => Value::Null,
        AuthContext::Record {
            collection,
            record,
            refreshable,
        } => {
            json!({"collection": collection.id, "record": record.id(), "refreshable": refreshable})
        }
    };
    let request = json!({"ip": ip, "auth": who, "subscriptions": subscriptions, "after": after});
    let outcome = relay::send(
        state,
        client_id,
        relay::SUBSCRIBE,
        &request.to_string(),
        Until::Answered,
    )
    .await;
    let Outcome::Done(Some(answer)) = outcome else {
        return Err(missing());
    };
    let answer: Value = serde_json::from_str(&answer).map_err(ApiError::internal)?;
    let status = answer["status"]
        .as_u64()
        .and_then(|status| u16::try_from(status).ok())
        .and_then(|status| StatusCode::from_u16(status).ok())
        .ok_or_else(|| ApiError::internal("a relayed answer without a status"))?;
    if status == StatusCode::NO_CONTENT {
        return Ok(status);
    }
    let mut error = ApiError::new(status, answer["message"].as_str().unwrap_or_default());
    if answer["data"]
        .as_object()
        .is_some_and(|data| !data.is_empty())
    {
        error.data = answer["data"].clone();
    }
    Err(error)
}

/// With several nodes on one database: carries out what other nodes left for this node's
/// clients. Every node reads every message; the one holding the client takes it (once in the
/// cluster). Looks when woken and at least once a second, until the server is gone.
pub(super) async fn follow(state: Weak<AppState>, store: Arc<dyn Store>) {
    let mut after = 0;
    loop {
        let Some(app) = state.upgrade() else {
            return;
        };
        match store.relays_after(after, RELAYS_PER_READ).await {
            Ok(relays) => {
                for relay in relays {
                    after = after.max(relay.id);
                    take(&app, &store, relay).await;
                }
            }
            Err(error) => tracing::debug!(%error, "realtime: cannot read relays"),
        }
        drop(app);
        let _ = tokio::time::timeout(Duration::from_secs(1), store.wait_for_relays(after)).await;
    }
}

/// Takes and carries out one relayed message when this node holds its client.
async fn take(state: &SharedState, store: &Arc<dyn Store>, relay: Relay) {
    let Some(client) = state.realtime.client(&relay.client_id) else {
        return;
    };
    let subscribe = relay.topic == relay::SUBSCRIBE;
    if !subscribe && !client.has_subscription(&relay.topic) {
        return;
    }
    match store.take_relay(relay.id).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(error) => {
            tracing::warn!(%error, "realtime: cannot take a relayed message");
            return;
        }
    }
    if !subscribe {
        state
            .realtime
            .message_client(&relay.client_id, &relay.topic, &relay.data);
        return;
    }
    // A subscription request may wait for the database (a resume reads the change log): it
    // runs on its own, so messages for other clients are not held up behind it.
    let state = Arc::clone(state);
    let store = Arc::clone(store);
    tokio::spawn(async move {
        let answer = match subscribe_for(&state, &client, &relay.data).await {
            Ok(status) => json!({"status": status.as_u16()}),
            Err(error) => {
                json!({"status": error.status.as_u16(), "message": error.message, "data": error.data})
            }
        };
        if let Err(error) = store.answer_relay(relay.id, &answer.to_string()).await {
            tracing::warn!(%error, "realtime: cannot answer a relayed subscription");
        }
    });
}

/// Carries out a relayed subscription request for `client`, held here.
async fn subscribe_for(
    state: &SharedState,
    client: &Arc<crate::state::hub::Client>,
    request: &str,
) -> ApiResult<StatusCode> {
    let request: Value = serde_json::from_str(request).map_err(ApiError::internal)?;
    let auth = match &request["auth"] {
        Value::Object(who) => {
            let found = match (
                who.get("collection").and_then(Value::as_str),
                who.get("record").and_then(Value::as_str),
            ) {
                (Some(collection), Some(record)) => {
                    let collection = state.schema().get_by_id(collection).cloned();
                    match collection {
                        Some(collection) => state
                            .store
                            .get_record(Arc::clone(&collection), record, Vec::new())
                            .await?
                            .map(|record| (collection, record)),
                        None => None,
                    }
                }
                _ => None,
            };
            // An auth record deleted in the meantime leaves a guest, as its token would.
            match found {
                Some((collection, record)) => AuthContext::Record {
                    collection,
                    record: Arc::new(record),
                    refreshable: who
                        .get("refreshable")
                        .and_then(Value::as_bool)
                        .unwrap_or(true),
                },
                None => AuthContext::Guest,
            }
        }
        _ => AuthContext::Guest,
    };
    let ip = request["ip"].as_str().map(str::to_owned);
    let subscriptions = request["subscriptions"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let after = request["after"].as_u64();
    super::subscribe_held(state, client, ip, auth, subscriptions, after).await
}
