//! The HTTP side of the metrics: one counter per (method, route template, status) and one
//! latency histogram per (method, route template), recorded by a layer around every route.
//! The template comes from the route the router matched, so `/api/collections/{collection}/records/{id}`
//! is one series however many records there are; what no route matched is `unmatched`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Instant;

use axum::extract::Request;
use axum::http::Method;
use axum::response::Response;

use super::BUCKETS;
use crate::chain::Continue;

/// The route label of a request no route matched.
pub const UNMATCHED: &str = "unmatched";

const REQUESTS: &str = "plinth_http_requests_total";
const DURATION: &str = "plinth_http_request_duration_seconds";

/// The request metrics of one request, into `series`, those of the route its path matched
/// ([`series`]; [`unmatched`] when none did): wraps every route (and the fallback) of the API
/// router, around the hooks, body limit and header layers (`middleware::wrap` puts it below
/// the route's match); the CORS, panic and request-log layers outside it are not timed.
pub async fn track<N: Continue>(series: &RouteSeries, request: Request, next: N) -> Response {
    let started = Instant::now();
    let method = method_index(request.method());
    let response = next.run(request).await;
    series.methods[method]
        .get_or_init(Default::default)
        .record(response.status().as_u16(), started.elapsed().as_nanos());
    response
}

/// The series of one route template, by method: kept here, in atomics, rather than in the
/// `metrics` recorder. Through the recorder, a request cost a lookup of its series by label
/// (~200 instructions even with the handles cached by route) and a histogram sample pushed into
/// a lock-free bucket under an epoch guard, then folded into buckets by the upkeep task (~300).
/// Here the router holds each route's series (the routes are found once, at start), and a
/// request adds to three counters and finds its status's. They are process-wide, as the
/// recorder is (see the module docs), so an app rebuilt in-process keeps counting.
#[derive(Default)]
pub struct RouteSeries {
    methods: [OnceLock<MethodSeries>; METHODS.len()],
}

/// One (route, method) pair's latency histogram and its answers by status.
#[derive(Default)]
struct MethodSeries {
    /// Answers that took at most `BUCKETS[i]` and more than the bound before: one bucket
    /// each, summed into Prometheus's cumulative buckets when the page is written.
    buckets: [AtomicU64; BUCKETS.len()],
    sum_nanos: AtomicU64,
    count: AtomicU64,
    /// The statuses answered (0 for a free slot), each with its count; the first few claim a
    /// slot, any more go to `more`.
    statuses: [(AtomicU32, AtomicU64); STATUS_SLOTS],
    more: Mutex<BTreeMap<u16, u64>>,
}

/// Statuses counted in slots per (route, method): a route answers a handful.
const STATUS_SLOTS: usize = 8;

impl MethodSeries {
    fn record(&self, status: u16, nanos: u128) {
        let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
        let seconds = nanos as f64 / 1e9;
        if let Some(bucket) = BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .and_then(|at| self.buckets.get(at))
        {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count_status(status);
        // Last, so that a page read after it sees the buckets it counts.
        self.count.fetch_add(1, Ordering::Release);
    }

    fn count_status(&self, status: u16) {
        let wanted = u32::from(status);
        for (slot, count) in &self.statuses {
            let mut seen = slot.load(Ordering::Acquire);
            if seen == 0 {
                seen = match slot.compare_exchange(0, wanted, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => wanted,
                    Err(now) => now,
                };
            }
            if seen == wanted {
                count.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        *self
            .more
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(status)
            .or_default() += 1;
    }

    /// (status, count) of every status answered.
    fn statuses(&self) -> Vec<(u16, u64)> {
        let mut out: Vec<(u16, u64)> = self
            .statuses
            .iter()
            .filter_map(|(slot, count)| {
                let status = u16::try_from(slot.load(Ordering::Acquire)).ok()?;
                (status != 0).then(|| (status, count.load(Ordering::Relaxed)))
            })
            .collect();
        let more = self.more.lock().unwrap_or_else(PoisonError::into_inner);
        out.extend(more.iter().map(|(status, count)| (*status, *count)));
        out
    }
}

/// Route templates with their series.
type Registered = Vec<(Arc<str>, Arc<RouteSeries>)>;

/// Every route's series, by template, in the order they were first asked for.
static ROUTES: LazyLock<RwLock<Registered>> = LazyLock::new(Default::default);

/// The series of the route with `template` (the router asks once per route, when it is
/// built); created on first use.
pub fn series(template: &str) -> Arc<RouteSeries> {
    if let Some((_, series)) = ROUTES
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .find(|(known, _)| &**known == template)
    {
        return series.clone();
    }
    let mut routes = ROUTES.write().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, series)) = routes.iter().find(|(known, _)| &**known == template) {
        return series.clone();
    }
    let series = Arc::new(RouteSeries::default());
    routes.push((Arc::from(template), series.clone()));
    series
}

/// The series of the requests no route matched.
pub fn unmatched() -> &'static RouteSeries {
    static UNMATCHED_SERIES: LazyLock<Arc<RouteSeries>> = LazyLock::new(|| series(UNMATCHED));
    &UNMATCHED_SERIES
}

/// Appends the two HTTP families to `page`, in the text format the recorder writes the
/// others in; a family without a request yet is left out, as the recorder leaves it out.
pub fn render(page: &mut String) {
    let routes: Vec<(Arc<str>, Arc<RouteSeries>)> = ROUTES
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let used: Vec<(&str, &str, &MethodSeries)> = routes
        .iter()
        .flat_map(|(route, series)| {
            METHODS
                .iter()
                .zip(&series.methods)
                .filter_map(move |(method, cell)| Some((*method, &**route, cell.get()?)))
        })
        .collect();
    if used.is_empty() {
        return;
    }
    if !page.is_empty() && !page.ends_with("\n\n") {
        page.push('\n');
    }
    let _ = writeln!(
        page,
        "# HELP {REQUESTS} HTTP requests answered, by method, route template and status.\n# TYPE {REQUESTS} counter"
    );
    for (method, route, series) in &used {
        let route = escape(route);
        for (status, count) in series.statuses() {
            let _ = writeln!(
                page,
                "{REQUESTS}{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {count}"
            );
        }
    }
    let _ = writeln!(
        page,
        "\n# HELP {DURATION} Time to answer an HTTP request (until the response head), by method and route template.\n# TYPE {DURATION} histogram"
    );
    for (method, route, series) in &used {
        let route = escape(route);
        let labels = format!("method=\"{method}\",route=\"{route}\"");
        // The count first: every bucket it covers was added before it.
        let count = series.count.load(Ordering::Acquire);
        let mut cumulative = 0u64;
        for (bound, bucket) in BUCKETS.iter().zip(&series.buckets) {
            cumulative = (cumulative + bucket.load(Ordering::Relaxed)).min(count);
            let _ = writeln!(
                page,
                "{DURATION}_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(page, "{DURATION}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let sum = series.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(page, "{DURATION}_sum{{{labels}}} {sum}");
        let _ = writeln!(page, "{DURATION}_count{{{labels}}} {count}");
    }
}

/// A label value as the text format writes it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The method labels, in [`method_index`]'s order: the usual few by name, anything else
/// `other` (methods are client input and must not grow the label set).
const METHODS: [&str; 8] = [
    "GET", "POST", "PATCH", "PUT", "DELETE", "HEAD", "OPTIONS", "other",
];

fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::POST => 1,
        Method::PATCH => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::HEAD => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the line of `page` that starts with `prefix`.
    fn line_value(page: &str, prefix: &str) -> Option<f64> {
        page.lines()
            .find_map(|line| line.strip_prefix(prefix)?.trim().parse().ok())
    }

    #[test]
    fn a_route_counts_each_status_and_its_latency_in_cumulative_buckets() {
        let route = "/test/metrics/{unit}";
        let series = series(route);
        assert!(
            Arc::ptr_eq(&series, &super::series(route)),
            "one per template"
        );
        let get = series.methods[method_index(&Method::GET)].get_or_init(Default::default);
        // More statuses than slots: the rest are counted too.
        for status in 200..200 + STATUS_SLOTS as u16 + 3 {
            get.record(status, 2_000_000); // 2 ms
        }
        get.record(200, 40_000_000_000); // 40 s: past the last bound
        let mut page = String::new();
        render(&mut page);

        let labels = format!("method=\"GET\",route=\"{route}\"");
        for status in 201..200 + STATUS_SLOTS as u16 + 3 {
            let line = format!("{REQUESTS}{{{labels},status=\"{status}\"}} ");
            assert_eq!(line_value(&page, &line), Some(1.0), "{status}: {page}");
        }
        let ok = format!("{REQUESTS}{{{labels},status=\"200\"}} ");
        assert_eq!(line_value(&page, &ok), Some(2.0), "{page}");
        let bucket = |le: &str| {
            line_value(
                &page,
                &format!("{DURATION}_bucket{{{labels},le=\"{le}\"}} "),
            )
        };
        assert_eq!(bucket("0.001"), Some(0.0));
        assert_eq!(bucket("0.0025"), Some(11.0));
        assert_eq!(bucket("30"), Some(11.0));
        assert_eq!(bucket("+Inf"), Some(12.0));
        let count = format!("{DURATION}_count{{{labels}}} ");
        assert_eq!(line_value(&page, &count), Some(12.0));
        let sum = line_value(&page, &format!("{DURATION}_sum{{{labels}}} ")).unwrap_or(0.0);
        assert!((sum - 40.022).abs() < 1e-9, "{sum}");
        assert_eq!(
            page.matches(&format!("# TYPE {REQUESTS} counter")).count(),
            1
        );
        assert_eq!(
            page.matches(&format!("# TYPE {DURATION} histogram"))
                .count(),
            1
        );
        // A method this route never answered has no series.
        assert!(!page.contains(&format!("method=\"PUT\",route=\"{route}\"")));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"/a"b\c"#), r#"/a\"b\\c"#);
        assert_eq!(escape("a\nb"), "a\\nb");
    }
}
