//! Rate limiting by PocketBase's settings shape: rules labelled `<collection>:<tag>`,
//! `*:<tag>`, `<METHOD> <path>`, `<path>` (exact) or `<path>/` (prefix), each allowing
//! `maxRequests` per `duration` seconds per client IP. The first matching rule wins:
//! collection-specific, then `*:`, then exact path, then the longest prefix. Superusers and
//! `excludedIPs` are exempt. Requests without a known peer address (in-process tests) are not
//! limited, as there is nothing to key them by. The same layer enforces `superuserIPs`.
//!
//! A reverse proxy on the same host makes every client look like loopback, which the default
//! `excludedIPs` exempt. So when no `trustedProxy` is configured and a request from a
//! loopback peer carries a forwarding header (`X-Forwarded-For`, `X-Real-IP`, `Forwarded`),
//! it is treated as a proxied client: no loopback exemption, and its bucket is keyed by the
//! forwarded address (the proxy's own entry, the rightmost) rather than shared by every
//! client. A local test suite sends no such header and stays exempt. The header is not
//! trusted for anything else; per-account protection does not depend on it (see
//! `crate::auth::lockout`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::{RateLimitRule, Settings, TrustedProxy};
use crate::error::ApiError;
use crate::state::SharedState;

/// One limiter per distinct rule, each keyed by client.
#[derive(Default)]
pub struct Limiters(
    Mutex<HashMap<RuleKey, Arc<DefaultKeyedRateLimiter<String>>>>,
    std::sync::atomic::AtomicU64,
);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RuleKey {
    label: String,
    audience: String,
    duration: u64,
    max_requests: u64,
}

impl Limiters {
    /// Counts a check; every few thousand, forgets clients whose buckets are full again, so
    /// memory follows the clients active within one window, not every IP ever seen.
    fn tick(&self) {
        let count = self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if count % 4096 != 4095 {
            return;
        }
        let limiters: Vec<_> = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .values()
            .cloned()
            .collect();
        for limiter in limiters {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    fn for_rule(&self, rule: &RateLimitRule) -> Option<Arc<DefaultKeyedRateLimiter<String>>> {
        let key = RuleKey {
            label: rule.label.clone(),
            audience: rule.audience.clone(),
            duration: rule.duration,
            max_requests: rule.max_requests,
        };
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(limiter) = map.get(&key) {
            return Some(limiter.clone());
        }
        let burst = NonZeroU32::new(u32::try_from(rule.max_requests).unwrap_or(u32::MAX))?;
        let period = Duration::from_secs(rule.duration.max(1)) / burst.get();
        let quota = Quota::with_period(period.max(Duration::from_nanos(1)))?.allow_burst(burst);
        let limiter = Arc::new(RateLimiter::keyed(quota));
        // Settings changes leave old limiters behind; drop them all once the map grows.
        if map.len() > 256 {
            map.clear();
        }
        map.insert(key, limiter.clone());
        Some(limiter)
    }
}

/// The tags PocketBase gives a request (most specific first) and the collection it targets.
fn route_tags(method: &Method, path: &str) -> (Option<String>, Vec<&'static str>) {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["api", "collections", collection, rest @ ..] => {
            let tags: Vec<&'static str> = match (method, rest) {
                (&Method::GET, ["records"]) => vec!["list"],
                (&Method::POST, ["records"]) => vec!["create"],
                (&Method::GET, ["records", _]) => vec!["view"],
                (&Method::PATCH, ["records", _]) => vec!["update"],
                (&Method::DELETE, ["records", _]) => vec!["delete"],
                (&Method::GET, ["auth-methods"]) => vec!["listAuthMethods"],
                (&Method::POST, ["auth-refresh"]) => vec!["authRefresh"],
                (&Method::POST, ["auth-with-password"]) => vec!["authWithPassword", "auth"],
                (&Method::POST, ["auth-with-oauth2"]) => vec!["authWithOAuth2", "auth"],
                (&Method::POST, ["auth-with-otp"]) => vec!["authWithOTP", "auth"],
                (&Method::POST, ["request-otp"]) => vec!["requestOTP"],
                (&Method::POST, ["request-password-reset"]) => vec!["requestPasswordReset"],
                (&Method::POST, ["confirm-password-reset"]) => vec!["confirmPasswordReset"],
                (&Method::POST, ["request-verification"]) => vec!["requestVerification"],
                (&Method::POST, ["confirm-verification"]) => vec!["confirmVerification"],
                (&Method::POST, ["request-email-change"]) => vec!["requestEmailChange"],
                (&Method::POST, ["confirm-email-change"]) => vec!["confirmEmailChange"],
                _ => Vec::new(),
            };
            (Some((*collection).to_owned()), tags)
        }
        ["api", "files", collection, _, _] if method == Method::GET => {
            (Some((*collection).to_owned()), vec!["file"])
        }
        _ => (None, Vec::new()),
    }
}

/// The first rule that applies to this request and audience.
fn pick_rule<'a>(
    rules: &'a [RateLimitRule],
    method: &Method,
    path: &str,
    collection_names: &[String],
    tags: &[&str],
    authenticated: bool,
) -> Option<&'a RateLimitRule> {
    let audience_ok = |rule: &&RateLimitRule| match rule.audience.as_str() {
        "@guest" => !authenticated,
        "@auth" => authenticated,
        _ => true,
    };
    let by_label = |label: &str| {
        rules
            .iter()
            .filter(audience_ok)
            .find(|rule| rule.label == label)
    };
    for tag in tags {
        for name in collection_names {
            if let Some(rule) = by_label(&format!("{name}:{tag}")) {
                return Some(rule);
            }
        }
    }
    for tag in tags {
        if let Some(rule) = by_label(&format!("*:{tag}")) {
            return Some(rule);
        }
    }
    if let Some(rule) = by_label(&format!("{method} {path}")).or_else(|| by_label(path)) {
        return Some(rule);
    }
    rules
        .iter()
        .filter(audience_ok)
        .filter_map(|rule| {
            let (rule_method, prefix) = match rule.label.split_once(' ') {
                Some((m, p)) => (Some(m), p),
                None => (None, rule.label.as_str()),
            };
            let method_ok = rule_method.is_none_or(|m| m.eq_ignore_ascii_case(method.as_str()));
            (method_ok && prefix.ends_with('/') && path.starts_with(prefix))
                .then_some((prefix.len(), rule))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, rule)| rule)
}

/// The client IP: the trusted proxy header when configured, else the peer address.
pub fn client_ip(
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    proxy: &TrustedProxy,
) -> Option<String> {
    for name in &proxy.headers {
        if let Some(value) = headers.get(name.as_str()).and_then(|v| v.to_str().ok()) {
            let mut parts = value.split(',').map(str::trim).filter(|p| !p.is_empty());
            let picked = if proxy.use_leftmost_ip {
                parts.next()
            } else {
                parts.next_back()
            };
            if let Some(ip) = picked {
                return Some(ip.to_owned());
            }
        }
    }
    peer.map(|addr| addr.ip().to_string())
}

/// Headers a reverse proxy sets to name the client it forwards.
const FORWARDING_HEADERS: [&str; 3] = ["x-forwarded-for", "x-real-ip", "forwarded"];
/// Longest forwarded address kept as a bucket key (a header may be far longer).
const MAX_FORWARDED_KEY: usize = 64;

/// The client a loopback peer forwards, when no `trustedProxy` is configured: the rightmost
/// address of the first forwarding header present (the one a proxy that appends wrote), or
/// `"unknown"` when the header names none. `None` for a direct request.
pub fn forwarded_by_local_proxy(
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    proxy: &TrustedProxy,
) -> Option<String> {
    if !proxy.headers.is_empty() || !peer.is_some_and(|addr| addr.ip().is_loopback()) {
        return None;
    }
    let (name, value) = FORWARDING_HEADERS
        .iter()
        .find_map(|name| headers.get(*name).map(|value| (*name, value)))?;
    let text = String::from_utf8_lossy(value.as_bytes());
    let last = text
        .rsplit(',')
        .map(str::trim)
        .find(|part| !part.is_empty())
        .unwrap_or("unknown");
    // `Forwarded: for=1.2.3.4;proto=https` names the client in its `for` parameter.
    let client = if name == "forwarded" {
        last.split(';')
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(key, _)| key.trim().eq_ignore_ascii_case("for"))
            .map_or("unknown", |(_, value)| value.trim().trim_matches('"'))
    } else {
        last
    };
    let mut key: String = client.chars().take(MAX_FORWARDED_KEY).collect();
    if key.is_empty() {
        key = "unknown".into();
    }
    warn_unconfigured_proxy_once();
    Some(format!("forwarded:{key}"))
}

fn warn_unconfigured_proxy_once() {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(
            "requests from loopback carry proxy headers but no trustedProxy is configured: \
             rate limits key them by the forwarded address and do not exempt them; set \
             trustedProxy.headers in the settings to name your proxy's header"
        );
    }
}

/// Wraps the API routes with the limiter.
pub fn layer(api: axum::Router<SharedState>, state: SharedState) -> axum::Router<SharedState> {
    api.layer(axum::middleware::from_fn_with_state(state, limit))
}

/// The axum middleware.
pub async fn limit(
    State(state): State<SharedState>,
    request: Request<Body>,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let headers = request.headers().clone();
    match check(&state, peer, &method, &path, &headers).await {
        Some(response) => response,
        None => next.run(request).await,
    }
}

/// `Some(403)` when `superuserIPs` excludes a superuser request (or a superuser sign-in)
/// from this IP; `Some(429)` when the request is over its rule's limit.
async fn check(
    state: &SharedState,
    peer: Option<SocketAddr>,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Option<Response> {
    let settings: Arc<Settings> = super::current(state).await.ok()?;
    let limits = &settings.rate_limits;
    let limiting = limits.enabled && !limits.rules.is_empty() && peer.is_some();
    if !limiting && settings.superuser_ips.is_empty() {
        return None;
    }
    let ip = client_ip(headers, peer, &settings.trusted_proxy).unwrap_or_default();
    let (collection, tags) = route_tags(method, path);
    let target = collection.and_then(|ident| state.schema().get(&ident).cloned());
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            let v = v.trim();
            match v.get(..7) {
                Some(p) if p.eq_ignore_ascii_case("bearer ") => v[7..].trim().to_owned(),
                _ => v.to_owned(),
            }
        })
        .filter(|t| !t.is_empty());
    // Only a token claiming to be a superuser's (exempt, or IP-restricted) and rules with an
    // audience need the caller verified; other tokens are not looked up, so the limiter adds
    // no database read to ordinary requests.
    let claims = token
        .as_deref()
        .and_then(crate::auth::token::unverified_claims);
    let needs_verify = claims
        .as_ref()
        .is_some_and(|c| c.collection_id == domain::collection::SUPERUSERS_ID)
        || limits.rules.iter().any(|rule| !rule.audience.is_empty());
    let (is_superuser, authenticated) = match token {
        Some(token) if needs_verify => {
            let auth = crate::auth::token::resolve_auth_token(state, &token).await;
            (auth.is_superuser(), !auth.is_guest())
        }
        Some(_) => (false, claims.is_some()),
        None => (false, false),
    };
    if !settings.superuser_ips.is_empty()
        && (is_superuser || target.as_ref().is_some_and(|c| c.is_superusers()))
        && !settings.superuser_ips.iter().any(|allowed| allowed == &ip)
    {
        return Some(
            ApiError::forbidden("You are not allowed to perform this request.").into_response(),
        );
    }
    // A local reverse proxy's clients are not local: no loopback exemption, own buckets.
    let forwarded = forwarded_by_local_proxy(headers, peer, &settings.trusted_proxy);
    let excluded =
        forwarded.is_none() && limits.excluded_ips.iter().any(|excluded| excluded == &ip);
    if !limiting || is_superuser || ip.is_empty() || excluded {
        return None;
    }
    let key = forwarded.unwrap_or(ip);
    let collection_names: Vec<String> = target
        .map(|c| vec![c.name.clone(), c.id.clone()])
        .unwrap_or_default();
    let rule = pick_rule(
        &limits.rules,
        method,
        path,
        &collection_names,
        &tags,
        authenticated,
    )?;
    let limiter = state.limiters.for_rule(rule)?;
    state.limiters.tick();
    if limiter.check_key(&key).is_ok() {
        return None;
    }
    Some(ApiError::new(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests.").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(label: &str, audience: &str) -> RateLimitRule {
        RateLimitRule {
            label: label.into(),
            audience: audience.into(),
            duration: 10,
            max_requests: 2,
        }
    }

    #[test]
    fn picks_collection_then_wildcard_then_path_then_prefix() {
        let rules = vec![
            rule("/api/", ""),
            rule("*:auth", ""),
            rule("users:authWithPassword", ""),
            rule("POST /api/collections/posts/records", ""),
            rule("/api/collections/", "@auth"),
        ];
        let names = vec!["users".to_owned(), "_pb_users_auth_".to_owned()];
        let post = Method::POST;
        let (_, tags) = route_tags(&post, "/api/collections/users/auth-with-password");
        assert_eq!(tags, vec!["authWithPassword", "auth"]);
        let pick = |path: &str, names: &[String], tags: &[&str], authed| {
            pick_rule(&rules, &post, path, names, tags, authed).map(|r| r.label.clone())
        };
        assert_eq!(
            pick(
                "/api/collections/users/auth-with-password",
                &names,
                &tags,
                false
            )
            .as_deref(),
            Some("users:authWithPassword")
        );
        let (_, otp_tags) = route_tags(&post, "/api/collections/users/auth-with-otp");
        assert_eq!(
            pick(
                "/api/collections/users/auth-with-otp",
                &names,
                &otp_tags,
                false
            )
            .as_deref(),
            Some("*:auth")
        );
        assert_eq!(
            pick("/api/collections/posts/records", &[], &["create"], false).as_deref(),
            Some("POST /api/collections/posts/records")
        );
        assert_eq!(
            pick("/api/collections/x/y", &[], &[], true).as_deref(),
            Some("/api/collections/")
        );
        assert_eq!(
            pick("/api/collections/x/y", &[], &[], false).as_deref(),
            Some("/api/")
        );
        assert_eq!(pick("/other", &[], &[], false), None);
    }

    #[test]
    fn limiter_allows_the_burst_then_refuses() {
        let limiters = Limiters::default();
        let limiter = limiters.for_rule(&rule("*:auth", "")).expect("limiter");
        let key = "127.0.0.1".to_owned();
        assert!(limiter.check_key(&key).is_ok());
        assert!(limiter.check_key(&key).is_ok());
        assert!(limiter.check_key(&key).is_err());
        assert!(limiter.check_key(&"10.0.0.1".to_owned()).is_ok());
    }

    #[test]
    fn a_local_proxy_is_recognized_by_its_headers() {
        let loopback: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        let loopback6: SocketAddr = "[::1]:9".parse().expect("addr");
        let remote: SocketAddr = "203.0.113.5:9".parse().expect("addr");
        let unconfigured = TrustedProxy::default();
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, value.parse().expect("value"));
            }
            map
        };
        let key = |pairs: &[(&'static str, &str)], peer: SocketAddr, proxy: &TrustedProxy| {
            forwarded_by_local_proxy(&headers(pairs), Some(peer), proxy)
        };
        // A direct local request (a test suite, a health check) is not proxied.
        assert_eq!(key(&[], loopback, &unconfigured), None);
        assert_eq!(
            key(
                &[("x-forwarded-for", "1.1.1.1, 2.2.2.2")],
                loopback,
                &unconfigured
            )
            .as_deref(),
            Some("forwarded:2.2.2.2")
        );
        assert_eq!(
            key(&[("x-real-ip", "3.3.3.3")], loopback6, &unconfigured).as_deref(),
            Some("forwarded:3.3.3.3")
        );
        assert_eq!(
            key(
                &[(
                    "forwarded",
                    "for=9.9.9.9, for=\"[2001:db8::1]\";proto=https"
                )],
                loopback,
                &unconfigured
            )
            .as_deref(),
            Some("forwarded:[2001:db8::1]")
        );
        assert_eq!(
            key(&[("x-forwarded-for", " , ")], loopback, &unconfigured).as_deref(),
            Some("forwarded:unknown")
        );
        let long = "7".repeat(5000);
        assert_eq!(
            key(&[("x-forwarded-for", &long)], loopback, &unconfigured).map(|k| k.len()),
            Some("forwarded:".len() + MAX_FORWARDED_KEY)
        );
        // Not from loopback, or with a configured proxy: `client_ip` decides as before.
        assert_eq!(
            key(&[("x-forwarded-for", "1.1.1.1")], remote, &unconfigured),
            None
        );
        let configured = TrustedProxy {
            headers: vec!["X-Forwarded-For".into()],
            use_leftmost_ip: false,
        };
        assert_eq!(
            key(&[("x-forwarded-for", "1.1.1.1")], loopback, &configured),
            None
        );
    }

    #[test]
    fn client_ip_prefers_trusted_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "1.1.1.1, 2.2.2.2".parse().expect("value"),
        );
        let peer: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        let mut proxy = TrustedProxy::default();
        assert_eq!(
            client_ip(&headers, Some(peer), &proxy).as_deref(),
            Some("127.0.0.1")
        );
        proxy.headers = vec!["X-Forwarded-For".into()];
        assert_eq!(
            client_ip(&headers, Some(peer), &proxy).as_deref(),
            Some("2.2.2.2")
        );
        proxy.use_leftmost_ip = true;
        assert_eq!(
            client_ip(&headers, Some(peer), &proxy).as_deref(),
            Some("1.1.1.1")
        );
    }
}
