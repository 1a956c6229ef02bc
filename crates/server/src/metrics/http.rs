//! The HTTP side of the metrics: one counter per (method, route template, status) and one
//! latency histogram per (method, route template), recorded by a layer around every route.
//! The template comes from the route the router matched, so `/api/collections/{collection}/records/{id}`
//! is one series however many records there are; what no route matched is `unmatched`.

use foldhash::HashMap;
use std::sync::{Arc, LazyLock, PoisonError, RwLock};
use std::time::Instant;

use axum::extract::Request;
use axum::http::Method;
use axum::response::Response;
use metrics::{Counter, Histogram};

use crate::chain::Continue;

/// The route label of a request no route matched.
pub const UNMATCHED: &str = "unmatched";

/// The request metrics of one request, labelled by `route`, the template of the route its path
/// matched (`None`: none did): wraps every route (and the fallback) of the API router, around
/// the hooks, body limit and header layers (`middleware::wrap` puts it below the route's
/// match); the CORS, panic and request-log layers outside it are not timed.
pub async fn track<N: Continue>(route: Option<&str>, request: Request, next: N) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let response = next.run(request).await;
    let route = route.unwrap_or(UNMATCHED);
    record(
        method,
        route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// The handles of one route's series: the latency histogram per method, the request counter
/// per (method, status).
#[derive(Default)]
struct RouteSeries {
    duration: HashMap<&'static str, Histogram>,
    requests: HashMap<(&'static str, u16), Counter>,
}

/// The handles already registered, by route template. Registering a series builds its key
/// (label strings, a hash, a lookup in the recorder's registry) each time: ten times a cached
/// handle's cost, on every request. The set is bounded as the recorder's own is: the route
/// templates, a few methods and the statuses answered.
static SERIES: LazyLock<RwLock<HashMap<Arc<str>, RouteSeries>>> = LazyLock::new(Default::default);

/// Counts one request of (`method`, `route`, `status`) that took `seconds`; the series are
/// registered on first use.
fn record(method: &'static str, route: &str, status: u16, seconds: f64) {
    {
        let known = SERIES.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(series) = known.get(route)
            && let (Some(requests), Some(duration)) = (
                series.requests.get(&(method, status)),
                series.duration.get(method),
            )
        {
            requests.increment(1);
            duration.record(seconds);
            return;
        }
    }
    let requests = metrics::counter!(
        "plinth_http_requests_total",
        "method" => method,
        "route" => route.to_owned(),
        "status" => status.to_string()
    );
    let duration = metrics::histogram!(
        "plinth_http_request_duration_seconds",
        "method" => method,
        "route" => route.to_owned()
    );
    requests.increment(1);
    duration.record(seconds);
    let mut known = SERIES.write().unwrap_or_else(PoisonError::into_inner);
    let series = known.entry(Arc::from(route)).or_default();
    series.requests.entry((method, status)).or_insert(requests);
    series.duration.entry(method).or_insert(duration);
}

/// The method as a label: the usual few by name, anything else `other` (methods are client
/// input and must not grow the label set).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
