//! Plinth's own router: the API's routes by path template and method, matched once per
//! request, with no tower service or boxed future between the middleware and the handler.
//!
//! axum's router did the same matching (with the same `matchit` tree, so the templates and
//! their precedence are unchanged) but paid for being general on every request: a route
//! wrapped as a boxed, cloned service, layered again for the per-route middleware, the
//! request's URI parameters and matched path as two `http` extensions, the route's future
//! state moved between nested futures. Replacing it took a health check from 24,400 to 21,100
//! instructions (callgrind; docs/benchmarks.md, session 34).
//!
//! Here a route's handler is any axum handler (its extractors are unchanged); the table keeps
//! each one as a function that answers axum's boxed handler future directly. A request's
//! route is found before the per-route middleware runs (the metrics label it by template, as
//! PocketBase's router also matches before its middlewares), its parameters are kept in one
//! extension for [`crate::extract::Path`], and the handler (or the fallback, for a path or
//! method no route has) runs at the bottom of the chain.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;

use axum::body::{Body, HttpBody as _};
use axum::extract::{DefaultBodyLimit, Request};
use axum::handler::Handler;
use axum::http::{HeaderValue, Method, header};
use axum::response::Response;
use tower::{Layer as _, Service as _};

use crate::state::SharedState;

/// The future an axum function handler answers (the handlers' own box).
pub type HandlerFuture = Pin<Box<dyn Future<Output = Response> + Send>>;

/// A route's handler, type-erased.
type BoxedHandler = Box<dyn Fn(Request, SharedState) -> HandlerFuture + Send + Sync>;

/// One method's handler at a route, with the body limit it asks for (when not the server's).
struct MethodEndpoint {
    handler: BoxedHandler,
    body_limit: Option<DefaultBodyLimit>,
}

/// The methods a route answers. A `HEAD` is answered by the `GET` handler, without the body.
#[derive(Default)]
pub struct MethodRoutes {
    get: Option<MethodEndpoint>,
    post: Option<MethodEndpoint>,
    put: Option<MethodEndpoint>,
    patch: Option<MethodEndpoint>,
    delete: Option<MethodEndpoint>,
}

fn endpoint<H, T>(handler: H) -> MethodEndpoint
where
    H: Handler<T, SharedState, Future = HandlerFuture>,
    T: 'static,
{
    MethodEndpoint {
        handler: Box::new(move |request, state| handler.clone().call(request, state)),
        body_limit: None,
    }
}

macro_rules! method_routes {
    ($($method:ident),*) => {
        $(
            #[doc = concat!("A route answering `", stringify!($method), "` with `handler`.")]
            pub fn $method<H, T>(handler: H) -> MethodRoutes
            where
                H: Handler<T, SharedState, Future = HandlerFuture>,
                T: 'static,
            {
                MethodRoutes::default().$method(handler)
            }
        )*

        impl MethodRoutes {
            $(
                #[doc = concat!("Also answers `", stringify!($method), "` with `handler`.")]
                pub fn $method<H, T>(mut self, handler: H) -> Self
                where
                    H: Handler<T, SharedState, Future = HandlerFuture>,
                    T: 'static,
                {
                    self.$method = Some(endpoint(handler));
                    self
                }
            )*

            /// Gives the methods routed so far `limit` as their body limit (axum's
            /// `DefaultBodyLimit`, read by its body extractors and Plinth's), in place of the
            /// server's.
            pub fn body_limit(mut self, limit: DefaultBodyLimit) -> Self {
                $(
                    if let Some(endpoint) = &mut self.$method {
                        endpoint.body_limit = Some(limit);
                    }
                )*
                self
            }

            fn merge(&mut self, other: MethodRoutes, template: &str) {
                $(
                    if let Some(endpoint) = other.$method {
                        assert!(
                            self.$method.is_none(),
                            "{} {template} is routed twice",
                            stringify!($method)
                        );
                        self.$method = Some(endpoint);
                    }
                )*
            }
        }
    };
}

method_routes!(get, post, put, patch, delete);

impl MethodRoutes {
    fn for_method(&self, method: &Method) -> Option<&MethodEndpoint> {
        match *method {
            Method::GET | Method::HEAD => self.get.as_ref(),
            Method::POST => self.post.as_ref(),
            Method::PATCH => self.patch.as_ref(),
            Method::DELETE => self.delete.as_ref(),
            Method::PUT => self.put.as_ref(),
            _ => None,
        }
    }
}

/// The API's routes, as the modules declare them (`route`, `merge`), before [`Routes::build`].
#[derive(Default)]
pub struct Routes {
    routes: Vec<(String, MethodRoutes)>,
}

impl Routes {
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes `template` (`/a/{param}/b`, `/a/{*rest}`: `matchit`'s syntax, as axum's) to
    /// `methods`. Routing a template twice merges the methods; routing one method twice is a
    /// programming error and panics at start.
    pub fn route(mut self, template: &str, methods: MethodRoutes) -> Self {
        match self.routes.iter_mut().find(|(known, _)| known == template) {
            Some((_, known)) => known.merge(methods, template),
            None => self.routes.push((template.to_owned(), methods)),
        }
        self
    }

    /// Adds every route of `other`.
    pub fn merge(mut self, other: Routes) -> Self {
        for (template, methods) in other.routes {
            self = self.route(&template, methods);
        }
        self
    }

    /// The table requests are matched against. Panics on a template `matchit` refuses or on
    /// two that conflict: both are programming errors, found at start.
    pub fn build(self) -> Table {
        let mut tree = matchit::Router::new();
        let mut endpoints = Vec::with_capacity(self.routes.len());
        for (index, (template, methods)) in self.routes.into_iter().enumerate() {
            if let Err(error) = tree.insert(template.clone(), index) {
                panic!("route {template}: {error}");
            }
            let metrics = crate::metrics::series(&template);
            endpoints.push(Endpoint {
                template,
                methods,
                metrics,
            });
        }
        Table { tree, endpoints }
    }
}

/// A route in the table.
struct Endpoint {
    template: String,
    methods: MethodRoutes,
    /// The route's request metrics, found once here rather than by label every request.
    metrics: std::sync::Arc<crate::metrics::RouteSeries>,
}

/// The routes, ready to match.
pub struct Table {
    tree: matchit::Router<usize>,
    endpoints: Vec<Endpoint>,
}

/// The path parameters of the route a request matched, decoded (bytes that are not UTF-8
/// replaced by U+FFFD), in the template's order: what [`crate::extract::Path`] reads.
#[derive(Clone, Debug, Default)]
pub struct RouteParams(pub Vec<String>);

/// What a request's path matched: a route, or none.
#[derive(Clone, Copy, Debug)]
pub struct Found(Option<usize>);

impl Table {
    /// Matches `request`'s path; the parameters, if any, go into its extensions.
    pub fn find(&self, request: &mut Request) -> Found {
        let (endpoint, params) = match self.tree.at(request.uri().path()) {
            Ok(matched) => {
                let params: Vec<String> = matched
                    .params
                    .iter()
                    .map(|(_, value)| crate::extract::path::decode_lossy(value))
                    .collect();
                (Some(*matched.value), params)
            }
            Err(_) => (None, Vec::new()),
        };
        if !params.is_empty() {
            request.extensions_mut().insert(RouteParams(params));
        }
        Found(endpoint)
    }

    /// Whether a route's template matches `path` (whatever the method).
    pub fn matches(&self, path: &str) -> bool {
        self.tree.at(path).is_ok()
    }

    /// The template of the route `found` names (whatever the request's method).
    pub fn template(&self, found: Found) -> Option<&str> {
        self.endpoint(found)
            .map(|endpoint| endpoint.template.as_str())
    }

    /// The request metrics of the route `found` names, or of the requests no route matched.
    pub fn metrics(&self, found: Found) -> &crate::metrics::RouteSeries {
        match self.endpoint(found) {
            Some(endpoint) => &endpoint.metrics,
            None => crate::metrics::unmatched(),
        }
    }

    fn endpoint(&self, found: Found) -> Option<&Endpoint> {
        found.0.and_then(|index| self.endpoints.get(index))
    }

    /// Runs the matched handler with `request`, or `fallback` when the path or the method has
    /// none. `default_limit` is the body limit of every route that names none of its own.
    ///
    /// A `HEAD`'s answer is shaped afterwards, for every answer alike ([`head_answer`]).
    pub async fn run<F, Fut>(
        &self,
        found: Found,
        mut request: Request,
        state: SharedState,
        default_limit: DefaultBodyLimit,
        fallback: F,
    ) -> Response
    where
        F: FnOnce(Request) -> Fut,
        Fut: Future<Output = Response>,
    {
        let endpoint = self
            .endpoint(found)
            .and_then(|endpoint| endpoint.methods.for_method(request.method()));
        // A request without a body (most GETs) has nothing to limit: the stamp, an extension
        // inserted (~180 instructions), is left off it.
        let body_ends = request.body().is_end_stream();
        match endpoint {
            Some(endpoint) => {
                if !body_ends {
                    request = stamp_limit(endpoint.body_limit.unwrap_or(default_limit), request);
                }
                (endpoint.handler)(request, state).await
            }
            None if body_ends => fallback(request).await,
            None => fallback(stamp_limit(default_limit, request)).await,
        }
    }
}

/// `request` with `limit` as its body limit: axum keeps the limit in a private extension its
/// layer inserts, so the layer does it, over a service that hands the request back.
fn stamp_limit(limit: DefaultBodyLimit, request: Request) -> Request {
    let mut stamp = limit.layer(tower::service_fn(|request: Request| {
        std::future::ready(Ok::<_, Infallible>(request))
    }));
    match stamp.call(request).into_inner() {
        Ok(request) => request,
        Err(never) => match never {},
    }
}

/// The answer to a `HEAD` request as PocketBase's (Go's) server sends it (observed on 0.40.6): no
/// body; a success keeps the `Content-Length` of the body it would have had (the `GET`'s), an
/// error (which PocketBase's error handler writes no body for on a `HEAD`), a redirect and a
/// `204` have none. Other answers get theirs from hyper, from the body's exact size.
pub fn head_answer(mut response: Response) -> Response {
    let status = response.status();
    if status.is_success() && status != axum::http::StatusCode::NO_CONTENT {
        set_content_length(&mut response);
    } else {
        response.headers_mut().remove(header::CONTENT_LENGTH);
    }
    *response.body_mut() = Body::empty();
    response
}

/// A `Content-Length` from the body's exact size, unless the answer has one.
fn set_content_length(response: &mut Response) {
    use axum::body::HttpBody as _;
    if response.headers().contains_key(header::CONTENT_LENGTH) {
        return;
    }
    if let Some(size) = response.body().size_hint().exact() {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> Table {
        async fn nothing() {}
        Routes::new()
            .route("/api/health", get(nothing))
            .route("/api/c/{collection}/r", get(nothing).post(nothing))
            .merge(Routes::new().route("/api/c/{collection}/r", patch(nothing)))
            .route("/_/{*path}", get(nothing))
            .route("/api/files/{collection}/{record}/{filename}", get(nothing))
            .build()
    }

    fn request(method: Method, path: &str) -> Request {
        let mut request = Request::new(Body::empty());
        *request.method_mut() = method;
        *request.uri_mut() = path.parse().unwrap_or_default();
        request
    }

    #[test]
    fn templates_and_parameters_are_found_and_decoded() {
        let table = routes();
        let mut req = request(Method::GET, "/api/c/us%65rs/r");
        let found = table.find(&mut req);
        assert_eq!(table.template(found), Some("/api/c/{collection}/r"));
        let params = req.extensions().get::<RouteParams>().map(|p| p.0.clone());
        assert_eq!(params, Some(vec!["users".to_owned()]));

        let mut req = request(Method::GET, "/api/c/%FF/r");
        table.find(&mut req);
        let params = req.extensions().get::<RouteParams>().map(|p| p.0.clone());
        assert_eq!(params, Some(vec!["\u{FFFD}".to_owned()]));

        let mut req = request(Method::GET, "/_/assets/a%20b.js");
        let found = table.find(&mut req);
        assert_eq!(table.template(found), Some("/_/{*path}"));
        let params = req.extensions().get::<RouteParams>().map(|p| p.0.clone());
        assert_eq!(params, Some(vec!["assets/a b.js".to_owned()]));

        let mut req = request(Method::GET, "/api/files/a/%FFb/c%2Fd");
        table.find(&mut req);
        let params = req.extensions().get::<RouteParams>().map(|p| p.0.clone());
        let expected = ["a", "\u{FFFD}b", "c/d"].map(str::to_owned).to_vec();
        assert_eq!(params, Some(expected));

        let mut req = request(Method::GET, "/api/health/");
        let found = table.find(&mut req);
        assert_eq!(table.template(found), None);
        assert!(req.extensions().get::<RouteParams>().is_none());
    }

    #[test]
    fn methods_pick_the_handler_and_head_is_get() {
        let table = routes();
        let route = |method: Method, path: &str| {
            let mut req = request(method.clone(), path);
            let found = table.find(&mut req);
            table
                .endpoint(found)
                .and_then(|endpoint| endpoint.methods.for_method(&method))
                .is_some()
        };
        assert!(route(Method::GET, "/api/health"));
        assert!(route(Method::HEAD, "/api/health"));
        assert!(!route(Method::POST, "/api/health"));
        assert!(route(Method::PATCH, "/api/c/x/r"));
        assert!(route(Method::POST, "/api/c/x/r"));
        assert!(!route(Method::DELETE, "/api/c/x/r"));
        assert!(!route(Method::OPTIONS, "/api/c/x/r"));
    }

    #[test]
    #[should_panic(expected = "routed twice")]
    fn a_method_routed_twice_is_refused_at_start() {
        async fn nothing() {}
        let _ = Routes::new()
            .route("/a", get(nothing))
            .route("/a", get(nothing));
    }
}
