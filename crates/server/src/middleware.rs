//! The layers every response passes through: PocketBase's default headers and CORS, the body
//! size limit, 404s in the JSON error shape (never 405), and panics turned into a bare 500.

use std::any::Any;

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowHeaders, Any as AnyOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::error::ApiError;

/// Wraps the API router with the common layers.
pub fn wrap<L>(api: Router, body_limit: usize, scripts: L) -> Router
where
    L: tower::Layer<axum::routing::Route> + Clone + Send + Sync + 'static,
    L::Service: tower::Service<Request<Body>, Error = std::convert::Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    <L::Service as tower::Service<Request<Body>>>::Response: IntoResponse + 'static,
    <L::Service as tower::Service<Request<Body>>>::Future: Send + 'static,
{
    let cors = CorsLayer::new()
        .allow_origin(AnyOrigin)
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::PUT,
            Method::PATCH,
            Method::POST,
            Method::DELETE,
        ])
        .allow_headers(AllowHeaders::mirror_request());
    let fixed = |name: &'static str, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        )
    };
    api.fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        // Hook routes and middlewares see every request, unmatched ones included.
        .layer(scripts)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(fixed("x-content-type-options", "nosniff"))
        .layer(fixed("x-frame-options", "SAMEORIGIN"))
        .layer(fixed("x-xss-protection", "1; mode=block"))
        .layer(fixed("cross-origin-opener-policy", "same-origin"))
        .layer(cors)
        .layer(axum::middleware::from_fn(preflight_no_content))
        .layer(CatchPanicLayer::custom(panic_response))
}

/// CORS preflights answer 204 with no body, as PocketBase does.
async fn preflight_no_content(request: Request<Body>, next: axum::middleware::Next) -> Response {
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = next.run(request).await;
    if preflight && response.status() == StatusCode::OK {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    response
}

/// Unknown paths: GETs fall through to "files", as PocketBase's static handler answers.
async fn fallback(request: Request<Body>) -> Response {
    if request.method() == Method::GET || request.method() == Method::HEAD {
        ApiError::not_found_msg("File not found.").into_response()
    } else {
        ApiError::not_found().into_response()
    }
}

/// A known path with the wrong method is a 404 in PocketBase, not a 405. A GET or HEAD there
/// reaches PocketBase's static file handler like any unknown path, hence the same message.
async fn method_not_allowed(request: Request<Body>) -> Response {
    fallback(request).await
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
