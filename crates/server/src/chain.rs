//! Middleware without axum's per-layer boxing.
//!
//! `axum::middleware::from_fn` is convenient but dear on a hot path: each layer clones the
//! whole stack below it, boxes that clone as a service, boxes its own future, and boxes the
//! inner service's future again when `Next::run` calls it. Under a health check that was 14
//! boxed futures, 6 boxed service clones and 77 allocations a request.
//!
//! Here a middleware is an async function over a [`Continue`]: what runs below it, kept as its
//! concrete type. Middlewares chain inside one future (the server's whole stack is one boxed
//! future a request, `middleware::wrap`, and the rate limiter below the hooks is a
//! [`Continue`] of its own), with no box between them at all.

use std::future::Future;

use axum::extract::Request;
use axum::response::Response;

/// What runs below a middleware. Consumed by the one call that runs it.
pub trait Continue: Send + 'static {
    /// Runs the rest of the stack with `request`.
    fn run(self, request: Request) -> impl Future<Output = Response> + Send;
}

/// A closure as a [`Continue`]: middlewares chained inside one async function.
pub struct Then<F>(pub F);

impl<F, Fut> Continue for Then<F>
where
    F: FnOnce(Request) -> Fut + Send + 'static,
    Fut: Future<Output = Response> + Send,
{
    fn run(self, request: Request) -> impl Future<Output = Response> + Send {
        (self.0)(request)
    }
}

/// A middleware: what it does around the rest of the stack.
pub trait Middleware: Clone + Send + Sync + 'static {
    /// Answers `request`, running `next` or not.
    fn handle<N: Continue>(
        &self,
        request: Request,
        next: N,
    ) -> impl Future<Output = Response> + Send + 'static + use<Self, N>;
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::body::Body;
    use axum::http::{HeaderValue, StatusCode};

    use super::*;

    /// Counts the requests it sees, tags the response with its name, and answers 418 itself
    /// when it is the one to stop (at a request to `/stop`).
    #[derive(Clone)]
    struct Tag(&'static str, Arc<AtomicUsize>, bool);

    impl Middleware for Tag {
        fn handle<N: Continue>(
            &self,
            request: Request,
            next: N,
        ) -> impl Future<Output = Response> + Send + 'static + use<N> {
            let this = self.clone();
            async move {
                this.1.fetch_add(1, Ordering::SeqCst);
                let mut response = if this.2 && request.uri().path() == "/stop" {
                    let mut stopped = Response::new(Body::empty());
                    *stopped.status_mut() = StatusCode::IM_A_TEAPOT;
                    stopped
                } else {
                    next.run(request).await
                };
                response
                    .headers_mut()
                    .append("x-seen", HeaderValue::from_static(this.0));
                response
            }
        }
    }

    #[tokio::test]
    async fn middlewares_run_outside_in_and_may_answer_without_the_rest() {
        let (outer, inner, handler) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let (outer_tag, inner_tag) = (
            Tag("outer", outer.clone(), false),
            Tag("inner", inner.clone(), true),
        );
        let run = |request: Request| {
            let (inner_tag, calls) = (inner_tag.clone(), handler.clone());
            outer_tag.handle(
                request,
                Then(move |request| async move {
                    let handler = Then(move |_request| async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        Response::new(Body::from("handled"))
                    });
                    inner_tag.handle(request, handler).await
                }),
            )
        };
        let seen = |response: &Response| {
            response
                .headers()
                .get_all("x-seen")
                .iter()
                .map(|v| v.to_str().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
        };

        let response = run(Request::new(Body::empty())).await;
        assert_eq!(response.status(), StatusCode::OK);
        // The inner middleware tags the answer first: it wraps the handler directly.
        assert_eq!(seen(&response), ["inner", "outer"]);

        let stop = Request::builder()
            .uri("/stop")
            .body(Body::empty())
            .unwrap_or_default();
        let response = run(stop).await;
        assert_eq!(response.status(), StatusCode::IM_A_TEAPOT);
        assert_eq!(seen(&response), ["inner", "outer"]);
        assert_eq!(outer.load(Ordering::SeqCst), 2);
        assert_eq!(inner.load(Ordering::SeqCst), 2);
        // The second request never reached the handler.
        assert_eq!(handler.load(Ordering::SeqCst), 1);
    }
}
