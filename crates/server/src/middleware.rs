//! The layers every response passes through: PocketBase's default headers and CORS (its
//! `--origins`), the body size limit, 404s in the JSON error shape (never 405) or the public
//! directory's files, and panics turned into a bare 500. A known path with the wrong method is
//! a 404 in PocketBase, not a 405: a GET or HEAD there reaches its static file handler like any
//! unknown path.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt as _;
use std::panic::AssertUnwindSafe;

use crate::chain::{Continue, Middleware, Then};
use crate::error::ApiError;
use crate::routing::{Routes, Table};

/// The API's routes with the common layers around them: the service the server serves.
/// Unmatched GETs and HEADs go to the public directory when one is configured
/// ([`crate::static_files`]).
///
/// One boxed future a request for all of it (the middlewares are [`chain`] middlewares, the
/// router is Plinth's own, [`crate::routing`]), plus the handler's own. From the outside in
/// ([`Outer`]): Go's redirect of a path that is not clean
/// ([`crate::static_files::unclean_redirect`]), the request log (`state`'s), the frame-options
/// strip for file responses, panics turned into a 500, CORS; then the route is matched and,
/// for every request whether it matched or not ([`Dispatch`]): the request metrics (labelled by
/// the route's template), PocketBase's default headers, `per_route` (the rate limiter and the
/// hooks), the body limit and the handler (or the fallback).
pub fn wrap<M: Middleware>(
    api: Routes,
    state: crate::state::SharedState,
    config: crate::state::ServerConfig,
    per_route: M,
) -> Api<M> {
    let origins = Arc::new(config.origins);
    let public = config
        .public_dir
        .map(|root| crate::static_files::PublicDir {
            root,
            index_fallback: config.index_fallback,
        });
    Api(Arc::new(ApiParts {
        outer: Outer { state, origins },
        table: api.build(),
        per_route,
        public,
        body_limit: DefaultBodyLimit::max(config.body_limit),
    }))
}

/// What [`wrap`] builds, shared by every connection's clone of the service.
struct ApiParts<M> {
    /// The outer middleware, with the state the rest reads too.
    outer: Outer,
    table: Table,
    per_route: M,
    public: Option<crate::static_files::PublicDir>,
    body_limit: DefaultBodyLimit,
}

impl<M> ApiParts<M> {
    /// Go's redirect of a subtree's root without its slash to the slash (`/app` to `/app/` for
    /// a hook's `routerAdd("GET", "/app/{path...}")`), which its router answers before anything
    /// of PocketBase's runs (observed on 0.40.6: no security headers, the query kept), unless a
    /// route matches the path as it is. The dashboard's `/_` is the same redirect, in
    /// [`crate::static_files::unclean_redirect`].
    fn subtree_redirect(&self, request: &Request<Body>) -> Option<Response> {
        let scripts = crate::scripts::of(&self.outer.state)?;
        let (method, path) = (request.method(), request.uri().path());
        if !scripts.subtree_redirect(method.as_str(), path) || self.table.matches(path) {
            return None;
        }
        Some(crate::static_files::temporary_redirect(
            &format!("{path}/"),
            request.uri().query(),
            method,
        ))
    }
}

/// See [`wrap`]: the API as a tower service, or by [`Api::answer`].
pub struct Api<M>(Arc<ApiParts<M>>);

impl<M: Middleware> Api<M> {
    /// The answer to `request`, as a future of its own type: a server that keeps each
    /// connection's request future in place (hyper does, in a box it allocates once a
    /// connection) spares the box, the moves into it and `Oneshot`'s state that the tower
    /// service's future costs every request: ~780 of a health check's instructions, the box
    /// being large enough to take mimalloc's slower path on every allocation.
    pub fn answer(&self, request: Request<Body>) -> impl Future<Output = Response> + Send + use<M> {
        match self.0.subtree_redirect(&request) {
            Some(redirect) => futures_util::future::Either::Left(std::future::ready(redirect)),
            None => futures_util::future::Either::Right(
                self.0.outer.handle(request, Dispatch(self.0.clone())),
            ),
        }
    }
}

impl<M> Clone for Api<M> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<M: Middleware> tower::Service<Request<Body>> for Api<M> {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        Box::pin(self.answer(request).map(Ok))
    }
}

/// Below [`Outer`]: the route matched, then the per-route middlewares and the handler.
struct Dispatch<M>(Arc<ApiParts<M>>);

impl<M: Middleware> Continue for Dispatch<M> {
    async fn run(self, mut request: Request<Body>) -> Response {
        let api = self.0;
        let head = request.method() == Method::HEAD;
        let found = api.table.find(&mut request);
        let inner = api.clone();
        let response = crate::metrics::track(
            api.table.metrics(found),
            request,
            Then(move |request| async move {
                let api = inner.clone();
                let handler = Then(move |request| async move {
                    let public = api.public.as_ref();
                    let state = api.outer.state.clone();
                    // The fallback (a 404, or a file from the public directory) in a box of its
                    // own: inline, its state (the file's) made every request's future 1.8 KiB
                    // larger, and that future is moved several times a request.
                    api.table
                        .run(found, request, state, api.body_limit, |request| {
                            Box::pin(fallback(public, request))
                        })
                        .await
                });
                default_headers(inner.per_route.handle(request, handler).await)
            }),
        )
        .await;
        if head {
            crate::routing::head_answer(response)
        } else {
            response
        }
    }
}

/// Around the whole router, in one middleware (one boxed future a request, where a layer each
/// boxed or wrapped the future again): the request log, the frame-options strip for file
/// responses, panics turned into a 500, and CORS, from the outside in.
#[derive(Clone)]
struct Outer {
    state: crate::state::SharedState,
    origins: Arc<Vec<String>>,
}

impl Middleware for Outer {
    fn handle<N: Continue>(
        &self,
        request: Request<Body>,
        next: N,
    ) -> impl Future<Output = Response> + Send + 'static + use<N> {
        // Before anything else, as Go's router does before PocketBase sees the request.
        if let Some(redirect) = crate::static_files::unclean_redirect(&request) {
            return futures_util::future::Either::Left(std::future::ready(redirect));
        }
        let origins = self.origins.clone();
        futures_util::future::Either::Right(crate::logs::layer(
            self.state.clone(),
            request,
            Then(move |request| async move {
                // `AssertUnwindSafe`, as for any catch of a handler's panic: the request's
                // own state is dropped with its future.
                let answer = AssertUnwindSafe(cors(origins, request, next))
                    .catch_unwind()
                    .await;
                crate::files::strip_frame_options(answer.unwrap_or_else(panic_response))
            }),
        ))
    }
}

/// PocketBase's default security headers, each unless the answer set its own. One step for
/// the four: as four layers, each was cloned and dropped around every request.
fn default_headers(mut response: Response) -> Response {
    const DEFAULTS: [(HeaderName, HeaderValue); 4] = [
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("SAMEORIGIN"),
        ),
        (
            header::X_XSS_PROTECTION,
            HeaderValue::from_static("1; mode=block"),
        ),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ];
    let headers = response.headers_mut();
    // Which of them the answer set: its few names compared, where a lookup by name hashes
    // the name and probes the map for each default (an `entry` each cost a health check
    // ~1,300 instructions for the four). Then an append each, without a lookup.
    let mut own = [false; 4];
    for name in headers.keys() {
        for (seen, (default, _)) in own.iter_mut().zip(&DEFAULTS) {
            *seen |= name == default;
        }
    }
    // No `reserve` ahead: a map's first allocation has room for 6 entries, which an answer with
    // its `Content-Type`, these four and `Vary` fills without growing (hyper writes the
    // `Content-Length` itself); growing it to make room ahead cost a health check ~630
    // instructions.
    for ((name, value), own) in DEFAULTS.into_iter().zip(own) {
        if !own {
            headers.append(name, value);
        }
    }
    response
}

/// The methods a preflight is told are allowed.
const ALLOW_METHODS: &str = "GET,HEAD,PUT,PATCH,POST,DELETE";

/// PocketBase's CORS: every response varies on `Origin`; an allowed origin (by `--origins`:
/// `*`, an exact origin, or a `scheme://*.domain` pattern) gets `Access-Control-Allow-Origin`
/// (`*` itself for the wildcard); every `OPTIONS` request is a preflight answered `204` here,
/// with the methods and the mirrored request headers when the origin is allowed, and never
/// reaches a route.
async fn cors<N: Continue>(origins: Arc<Vec<String>>, request: Request<Body>, next: N) -> Response {
    let preflight = request.method() == Method::OPTIONS;
    let [origin, requested_headers] = crate::extract::first_values(
        request.headers(),
        [&header::ORIGIN, &header::ACCESS_CONTROL_REQUEST_HEADERS],
    );
    let origin = origin
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_owned);
    let allowed = origin
        .as_deref()
        .and_then(|origin| allow_origin(&origins, origin));
    let requested_headers = requested_headers.filter(|v| !v.is_empty()).cloned();
    let mut response = if preflight {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    let Some(allowed) = allowed.and_then(|a| HeaderValue::from_str(&a).ok()) else {
        return response;
    };
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
    if preflight {
        headers.append(
            header::VARY,
            HeaderValue::from_static("Access-Control-Request-Method"),
        );
        headers.append(
            header::VARY,
            HeaderValue::from_static("Access-Control-Request-Headers"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOW_METHODS),
        );
        if let Some(requested) = requested_headers {
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested);
        }
    }
    response
}

/// The `Access-Control-Allow-Origin` value for `origin`, if `origins` allows it.
pub fn allow_origin(origins: &[String], origin: &str) -> Option<String> {
    origins.iter().find_map(|allowed| {
        if allowed == "*" {
            Some("*".to_owned())
        } else if allowed == origin || matches_subdomain(origin, allowed) {
            Some(origin.to_owned())
        } else {
            None
        }
    })
}

/// `https://*.example.com` allows `https://a.example.com` (same scheme, the labels before
/// the `*` matched from the right).
fn matches_subdomain(origin: &str, pattern: &str) -> bool {
    let (Some((origin_scheme, origin_host)), Some((pattern_scheme, pattern_host))) =
        (origin.split_once("://"), pattern.split_once("://"))
    else {
        return false;
    };
    if origin_scheme != pattern_scheme || origin_host.len() > 253 {
        return false;
    }
    let mut wanted = pattern_host.rsplit('.');
    for label in origin_host.rsplit('.') {
        match wanted.next() {
            Some("*") => return true,
            Some(expected) if expected == label => {}
            _ => return false,
        }
    }
    false
}

/// Unknown paths: GETs and HEADs go to the public directory (or answer PocketBase's static
/// handler's "File not found." when there is none).
async fn fallback(
    public: Option<&crate::static_files::PublicDir>,
    request: Request<Body>,
) -> Response {
    if request.method() == Method::GET || request.method() == Method::HEAD {
        match public {
            Some(public) => public.serve(&request.into_parts().0).await,
            None => ApiError::not_found_msg("File not found.").into_response(),
        }
    } else {
        ApiError::not_found().into_response()
    }
}

fn panic_response(_panic: Box<dyn Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    let mut response = ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong while processing your request.",
    )
    .into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Passes every request on unchanged.
    #[derive(Clone)]
    struct Nothing;

    impl Middleware for Nothing {
        fn handle<N: Continue>(
            &self,
            request: Request<Body>,
            next: N,
        ) -> impl Future<Output = Response> + Send + 'static + use<N> {
            next.run(request)
        }
    }

    #[tokio::test]
    async fn a_panicking_handler_is_a_json_500_and_the_service_goes_on() {
        use tower::ServiceExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn domain::Store> =
            store_sqlite::SqliteStore::open(dir.path(), Default::default()).expect("store");
        let config = crate::state::ServerConfig {
            origins: vec!["*".into()],
            ..crate::state::ServerConfig::default()
        };
        let state = crate::state::AppState::new(store, config.clone());
        let api = Routes::new()
            .route(
                "/boom",
                crate::routing::get(|| async {
                    if std::hint::black_box(true) {
                        panic!("a handler's bug");
                    }
                    "unreachable"
                }),
            )
            .route("/fine", crate::routing::get(|| async { "fine" }));
        let service = wrap(api, state.clone(), config, Nothing);
        let get = |path: &str| {
            Request::get(path)
                .header(header::ORIGIN, "https://app.example")
                .body(Body::empty())
                .expect("request")
        };

        let response = service.clone().oneshot(get("/boom")).await.expect("answer");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE),
            Some(&HeaderValue::from_static("application/json"))
        );
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(body["status"], 500);
        assert_eq!(
            body["message"],
            "Something went wrong while processing your request."
        );

        // The next request is served as usual, with its CORS and default headers.
        let response = service.oneshot(get("/fine")).await.expect("answer");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN),
            Some(&HeaderValue::from_static("*"))
        );
        assert_eq!(
            response.headers().get(header::X_FRAME_OPTIONS),
            Some(&HeaderValue::from_static("SAMEORIGIN"))
        );
    }

    #[tokio::test]
    async fn a_head_is_the_get_without_its_body_and_its_errors_have_no_length() {
        use tower::ServiceExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn domain::Store> =
            store_sqlite::SqliteStore::open(dir.path(), Default::default()).expect("store");
        let state = crate::state::AppState::new(store, crate::state::ServerConfig::default());
        let service = crate::service(state);
        let send = |method: Method, path: &str| {
            let request = Request::builder()
                .method(method)
                .uri(path)
                .body(Body::empty())
                .expect("request");
            service.clone().oneshot(request)
        };
        let body = |response: Response| async move {
            axum::body::to_bytes(response.into_body(), 1 << 16)
                .await
                .expect("body")
        };
        let length = |response: &Response| {
            response
                .headers()
                .get(header::CONTENT_LENGTH)
                .map(|v| v.to_str().unwrap_or_default().to_owned())
        };

        let get = send(Method::GET, "/api/health").await.expect("answer");
        let get_len = body(get).await.len();
        let head = send(Method::HEAD, "/api/health").await.expect("answer");
        assert_eq!(head.status(), StatusCode::OK);
        assert_eq!(length(&head), Some(get_len.to_string()));
        assert_eq!(
            head.headers().get(header::X_FRAME_OPTIONS),
            Some(&HeaderValue::from_static("SAMEORIGIN"))
        );
        assert!(body(head).await.is_empty());

        // Errors: no body and no length, as PocketBase's error handler answers a HEAD.
        for path in ["/api/collections/nope/records", "/api/collections", "/nope"] {
            let head = send(Method::HEAD, path).await.expect("answer");
            assert!(head.status().is_client_error(), "{path}: {}", head.status());
            assert_eq!(length(&head), None, "{path}");
            assert!(body(head).await.is_empty(), "{path}");
        }

        // `/_` is Go's redirect to the subtree, query kept, before the stack: no security
        // headers; a HEAD gets no body and no length, a GET Go's small HTML body.
        let head = send(Method::HEAD, "/_?x=1").await.expect("answer");
        assert_eq!(head.status(), StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(
            head.headers().get(header::LOCATION),
            Some(&HeaderValue::from_static("/_/?x=1"))
        );
        assert_eq!(length(&head), None);
        assert!(head.headers().get(header::X_FRAME_OPTIONS).is_none());
        assert!(body(head).await.is_empty());
        let get = send(Method::GET, "/_?x=1").await.expect("answer");
        assert_eq!(get.status(), StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(
            String::from_utf8_lossy(&body(get).await),
            "<a href=\"/_/?x=1\">Temporary Redirect</a>.\n\n"
        );
        // Other methods there are the API's 404, as for any unknown path.
        let post = send(Method::POST, "/_").await.expect("answer");
        assert_eq!(post.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn origins_match_exactly_by_wildcard_or_by_subdomain_pattern() {
        let list = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            allow_origin(&list(&["*"]), "https://a.example"),
            Some("*".into())
        );
        let some = list(&["https://a.example", "https://*.b.example"]);
        assert_eq!(
            allow_origin(&some, "https://a.example"),
            Some("https://a.example".into())
        );
        assert_eq!(allow_origin(&some, "https://c.example"), None);
        assert_eq!(allow_origin(&some, "http://a.example"), None);
        assert_eq!(
            allow_origin(&some, "https://x.b.example"),
            Some("https://x.b.example".into())
        );
        assert_eq!(allow_origin(&some, "https://b.example"), None);
        assert_eq!(allow_origin(&some, "http://x.b.example"), None);
        assert_eq!(allow_origin(&list(&[]), "https://a.example"), None);
    }
}
