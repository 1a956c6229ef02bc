//! Middleware without axum's per-layer boxing.
//!
//! `axum::middleware::from_fn` is convenient but dear on a hot path: each layer clones the
//! whole stack below it, boxes that clone as a service, boxes its own future, and boxes the
//! inner service's future again when `Next::run` calls it. Under a health check that was 14
//! boxed futures, 6 boxed service clones and 77 allocations a request.
//!
//! Here a middleware is an async function over a [`Continue`]: what runs below it, kept as its
//! concrete type. A [`Middleware`] becomes a tower layer with [`layer`]; its service clones the
//! layer below once and boxes one future a request. Several middlewares can also be chained
//! inside one async function (the rate limiter below the hooks is a [`Continue`] of its own),
//! with no box between them at all.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::Response;
use tower::{Service, ServiceExt as _};

/// What runs below a middleware. Consumed by the one call that runs it.
pub trait Continue: Send + 'static {
    /// Runs the rest of the stack with `request`.
    fn run(self, request: Request) -> impl Future<Output = Response> + Send;
}

/// The service below a middleware layer, as a [`Continue`].
pub struct Next<S>(S);

impl<S> Continue for Next<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
    S::Future: Send,
{
    async fn run(self, request: Request) -> Response {
        match self.0.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
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
    ) -> impl Future<Output = Response> + Send + 'static;
}

/// The tower layer of a [`Middleware`].
pub fn layer<M: Middleware>(middleware: M) -> MiddlewareLayer<M> {
    MiddlewareLayer(middleware)
}

/// See [`layer`].
#[derive(Clone)]
pub struct MiddlewareLayer<M>(M);

impl<M: Middleware, S> tower::Layer<S> for MiddlewareLayer<M> {
    type Service = MiddlewareService<M, S>;

    fn layer(&self, inner: S) -> Self::Service {
        MiddlewareService {
            middleware: self.0.clone(),
            inner,
        }
    }
}

/// A [`Middleware`] around the service `S`.
#[derive(Clone)]
pub struct MiddlewareService<M, S> {
    middleware: M,
    inner: S,
}

impl<M, S> Service<Request> for MiddlewareService<M, S>
where
    M: Middleware,
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The inner service is made ready where it runs (`Next::run`), on the clone taken here.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The clone stays for the next request; the service that was here runs this one.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let answer = self.middleware.handle(request, Next(inner));
        // `map`, not `async move { Ok(answer.await) }`: an async block would keep `answer`
        // twice (the captured value and the awaited one), doubling the box and the copy.
        Box::pin(futures_util::FutureExt::map(answer, Ok))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::body::Body;
    use axum::http::{HeaderValue, StatusCode};
    use tower::ServiceBuilder;

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
        ) -> impl Future<Output = Response> + Send + 'static {
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
    async fn layers_run_outside_in_and_may_answer_without_the_rest() {
        let (outer, inner, handler) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let calls = handler.clone();
        let service = ServiceBuilder::new()
            .layer(layer(Tag("outer", outer.clone(), false)))
            .layer(layer(Tag("inner", inner.clone(), true)))
            .service_fn(move |_request: Request| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Ok::<_, Infallible>(Response::new(Body::from("handled"))) }
            });
        let seen = |response: &Response| {
            response
                .headers()
                .get_all("x-seen")
                .iter()
                .map(|v| v.to_str().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
        };

        let response = service
            .clone()
            .oneshot(Request::new(Body::empty()))
            .await
            .unwrap_or_else(|never| match never {});
        assert_eq!(response.status(), StatusCode::OK);
        // The inner middleware tags the answer first: it wraps the handler directly.
        assert_eq!(seen(&response), ["inner", "outer"]);

        let stop = Request::builder()
            .uri("/stop")
            .body(Body::empty())
            .unwrap_or_default();
        let response = service
            .oneshot(stop)
            .await
            .unwrap_or_else(|never| match never {});
        assert_eq!(response.status(), StatusCode::IM_A_TEAPOT);
        assert_eq!(seen(&response), ["inner", "outer"]);
        assert_eq!(outer.load(Ordering::SeqCst), 2);
        assert_eq!(inner.load(Ordering::SeqCst), 2);
        // The second request never reached the handler.
        assert_eq!(handler.load(Ordering::SeqCst), 1);
    }
}
