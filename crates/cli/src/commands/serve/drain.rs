//! Graceful shutdown of the open connections: when the server stops, each is told to finish
//! the request it is serving and close, and [`Drain::shutdown`] waits until all have.
//!
//! hyper-util's `GracefulShutdown` does the same with a watch channel, whose `changed()` each
//! connection's future polled every time it was polled: ~150 instructions of every request's
//! ~19,000 (callgrind, `GET /api/health`). Here a connection's poll reads one flag and compares
//! its task's waker with the one it registered (once a connection, in the usual case); the
//! registry of wakers is only locked when a connection starts, ends, or moves to another task's
//! waker, and at the stop.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use hyper_util::server::graceful::GracefulConnection;
use tokio::sync::Notify;

/// The connections being served, to drain when the server stops. Its clones share them.
#[derive(Clone, Default)]
pub struct Drain {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    stopping: AtomicBool,
    next_id: AtomicU64,
    /// The waker of each watched connection's task, by the connection's id (a no-op waker
    /// until its first poll): a connection is here from [`Drain::watch`] until it ends.
    wakers: Mutex<HashMap<u64, Waker>>,
    /// Told when the last connection ends.
    ended: Notify,
}

impl Shared {
    fn wakers(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Waker>> {
        self.wakers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drain {
    /// `connection`, closed gracefully once [`Drain::shutdown`] is called (at once if it
    /// already was).
    pub fn watch<C: GracefulConnection>(&self, connection: C) -> Watched<C> {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        self.shared.wakers().insert(id, Waker::noop().clone());
        Watched {
            connection: Box::pin(connection),
            shared: self.shared.clone(),
            id,
            waker: None,
            told: false,
        }
    }

    /// Tells every watched connection to close once its in-flight request is answered, and
    /// waits until all have ended.
    pub async fn shutdown(&self) {
        self.shared.stopping.store(true, Ordering::Release);
        let wakers: Vec<Waker> = self.shared.wakers().values().cloned().collect();
        for waker in wakers {
            waker.wake();
        }
        loop {
            let ended = self.shared.ended.notified();
            let mut ended = std::pin::pin!(ended);
            // Registered before the check, so that an end in between is not missed.
            ended.as_mut().enable();
            if self.shared.wakers().is_empty() {
                return;
            }
            ended.await;
        }
    }
}

/// A watched connection: see [`Drain::watch`].
pub struct Watched<C> {
    connection: Pin<Box<C>>,
    shared: Arc<Shared>,
    id: u64,
    /// The waker registered for this connection, to tell whether the task's is the same.
    waker: Option<Waker>,
    /// Whether the connection was told to shut down.
    told: bool,
}

impl<C: GracefulConnection> Watched<C> {
    fn tell_if_stopping(&mut self) -> bool {
        if self.shared.stopping.load(Ordering::Acquire) {
            self.connection.as_mut().graceful_shutdown();
            self.told = true;
        }
        self.told
    }
}

impl<C: GracefulConnection> Future for Watched<C> {
    type Output = C::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if !this.told && !this.tell_if_stopping() {
            let same = this
                .waker
                .as_ref()
                .is_some_and(|waker| waker.will_wake(cx.waker()));
            if !same {
                let waker = cx.waker().clone();
                this.shared.wakers().insert(this.id, waker.clone());
                this.waker = Some(waker);
                // A stop between the first check and the registration woke the waker this
                // replaced: look again.
                this.tell_if_stopping();
            }
        }
        this.connection.as_mut().poll(cx)
    }
}

impl<C> Drop for Watched<C> {
    fn drop(&mut self) {
        let mut wakers = self.shared.wakers();
        wakers.remove(&self.id);
        if wakers.is_empty() {
            self.shared.ended.notify_waiters();
        }
    }
}
