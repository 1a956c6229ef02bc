//! The address of the connection a request came on.
//!
//! The server runs each request's future inside [`scope`], and [`of`] finds the address
//! there. A request built by hand (in tests, or an in-process request built from another)
//! carries it as axum's `ConnectInfo<SocketAddr>` extension instead, which [`of`] reads first.
//!
//! Why not the extension alone: the first extension a request gets allocates its extension
//! map, three allocations and their frees. That was about 450 of the ~19,000 instructions of
//! every request the server answers (callgrind, `GET /api/health`), where the scope costs a
//! thread-local swap each time the request's future is polled, about 40.
//!
//! The scope is the request's future's: code that runs elsewhere (a spawned task, a blocking
//! thread, the hooks' runtime) does not see it and must be handed the address.

use std::future::Future;
use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use axum::http::Extensions;

tokio::task_local! {
    static PEER: SocketAddr;
}

/// `future`, run with `peer` as the address [`of`] finds.
pub fn scope<F: Future>(peer: SocketAddr, future: F) -> impl Future<Output = F::Output> {
    PEER.scope(peer, future)
}

/// The peer of the request whose `extensions` these are: its `ConnectInfo`, else the
/// [`scope`]'s address; `None` outside both.
pub fn of(extensions: &Extensions) -> Option<SocketAddr> {
    match extensions.get::<ConnectInfo<SocketAddr>>() {
        Some(info) => Some(info.0),
        None => PEER.try_with(|peer| *peer).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_extension_wins_over_the_scope_and_neither_is_none() {
        let scoped: SocketAddr = "10.0.0.1:1000".parse().expect("address");
        let carried: SocketAddr = "10.0.0.2:2000".parse().expect("address");
        let empty = Extensions::new();
        let mut with_info = Extensions::new();
        with_info.insert(ConnectInfo(carried));

        assert_eq!(of(&empty), None);
        assert_eq!(of(&with_info), Some(carried));
        let (in_scope, carried_in_scope) =
            scope(scoped, async { (of(&empty), of(&with_info)) }).await;
        assert_eq!(in_scope, Some(scoped));
        assert_eq!(carried_in_scope, Some(carried));
        // A task spawned from the scope is outside it.
        let spawned = scope(scoped, async {
            tokio::spawn(async { of(&Extensions::new()) }).await
        })
        .await
        .expect("task");
        assert_eq!(spawned, None);
    }
}
