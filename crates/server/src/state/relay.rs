//! Messages for a realtime client held by another node, carried by the database (several
//! nodes on PostgreSQL). A node that gets a request for a client it does not hold — the OAuth2
//! redirect for a waiting SDK, a subscription request that the balancer sent elsewhere than the
//! stream — leaves it in the store ([`Store::post_relay`](domain::Store::post_relay)) and
//! waits. Every node's hub reads new messages when woken (a `NOTIFY`, or its one-second look);
//! the node holding the client takes the message, once in the cluster, carries it out and,
//! for a request, leaves the answer. The sender stops waiting after [`RELAY_WAIT`] and removes
//! the message either way.
//!
//! Bounds: at most [`MAX_RELAY_WAITS`] requests of one node wait at once (past that they are
//! answered as for an unknown client at once), and a message is dropped from the database when
//! its sender stops waiting, so the table holds at most that many messages per node.

use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::AppState;

/// How long a relayed message stays deliverable and its sender waits.
pub const RELAY_WAIT: Duration = Duration::from_secs(5);
/// Requests of this node waiting for another node at once.
pub const MAX_RELAY_WAITS: usize = 64;
/// The relay topic of a subscription request (never a topic a client can hear: subscription
/// requests are carried out by the holding node, not delivered).
pub const SUBSCRIBE: &str = "@subscribe";

static RELAY_WAITS: Semaphore = Semaphore::const_new(MAX_RELAY_WAITS);

/// What the sender waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// A node took the message (it held the client).
    Taken,
    /// A node carried the request out and answered.
    Answered,
}

/// How a relayed message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Taken, or answered with this text.
    Done(Option<String>),
    /// No node took it in time, or this node cannot relay now.
    Nobody,
}

/// Whether `id` could be a realtime client id (some node's): 40 ASCII letters and digits.
pub fn plausible_client_id(id: &str) -> bool {
    id.len() == 40 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Leaves `data` on `topic` for the client `client_id` on whichever node holds it, and waits
/// for `until`. Only for a store shared by several nodes and a plausible client id.
pub async fn send(
    state: &AppState,
    client_id: &str,
    topic: &str,
    data: &str,
    until: Until,
) -> Outcome {
    let store = &state.store;
    if !store.shared() || !plausible_client_id(client_id) {
        return Outcome::Nobody;
    }
    let Ok(_waiting) = RELAY_WAITS.try_acquire() else {
        tracing::warn!("too many requests are waiting for another node's realtime client");
        return Outcome::Nobody;
    };
    let id = match store.post_relay(client_id, topic, data, RELAY_WAIT).await {
        Ok(id) => id,
        Err(error) => {
            tracing::warn!(%error, "cannot relay a message to another node");
            return Outcome::Nobody;
        }
    };
    let deadline = Instant::now() + RELAY_WAIT;
    let mut pause = Duration::from_millis(5);
    let mut outcome = Outcome::Nobody;
    while Instant::now() < deadline {
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
        let looked = match until {
            Until::Taken => store
                .relay_taken(id)
                .await
                .map(|taken| taken.then_some(None)),
            Until::Answered => store.relay_answer(id).await.map(|answer| answer.map(Some)),
        };
        match looked {
            Ok(Some(done)) => {
                outcome = Outcome::Done(done);
                break;
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%error, "cannot follow a relayed message");
                break;
            }
        }
    }
    if let Err(error) = store.forget_relay(id).await {
        tracing::debug!(%error, "cannot drop a relayed message");
    }
    outcome
}
