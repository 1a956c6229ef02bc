//! Rate limiting by PocketBase's settings shape: rules labelled `<collection>:<tag>`,
//! `*:<tag>`, `<METHOD> <path>`, `<path>` (exact) or `<path>/` (prefix), each allowing
//! `maxRequests` per `duration` seconds per client IP. The first matching rule wins:
//! collection-specific, then `*:`, then exact path, then the longest prefix. Superusers and
//! `excludedIPs` are exempt. Requests without a known peer address (in-process tests) are not
//! limited, as there is nothing to key them by. The same layer enforces `superuserIPs`.
//!
//! A reverse proxy on the same host makes every client look like loopback, which the default
//! `excludedIPs` exempt. Without a configured `trustedProxy`, no header can be believed: a
//! proxy that sets only `X-Real-IP` passes the client's own `X-Forwarded-For` through, and
//! one configured with a bare `proxy_pass` adds none, so a client could rotate a header for a
//! fresh bucket per request, or leave it out to look local. So:
//!
//! - once a loopback peer has sent a forwarding header (`X-Forwarded-For`, `X-Real-IP`,
//!   `Forwarded`) while no `trustedProxy` is configured, a local proxy is known to be in
//!   front, and loopback is no longer exempt for the rest of the process's life, header or
//!   not (a warning is logged once, naming the fix: configure `trustedProxy`);
//! - such requests are keyed by the peer itself, the one thing the client cannot choose: every
//!   proxied client shares the loopback bucket. That is strict for a busy site, but it is safe
//!   (no client gains allowance by lying) and it is PocketBase's own keying; the accounts are
//!   protected on top by the per-identity lockout (`crate::state::lockouts`), and configuring
//!   `trustedProxy` gives every client its own bucket.
//!
//! A proxy that sends no header at all before the first one that does is indistinguishable
//! from a local tool; behind such a proxy, remove loopback from `excludedIPs`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::AuthContext;
use futures_util::future::BoxFuture;

use crate::chain::Continue;
use crate::error::ApiError;
use crate::state::SharedState;
use crate::state::settings::{RateLimitRule, Settings, TrustedProxy};

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
    peer.map(|addr| ip_text(addr.ip()))
}

/// An address as text, as `Display` writes it; IPv4 (every request's, on most servers)
/// without the formatting machinery, which cost more than the rest of the limiter's check.
fn ip_text(ip: std::net::IpAddr) -> String {
    let std::net::IpAddr::V4(v4) = ip else {
        return ip.to_string();
    };
    let mut text = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        if octet >= 100 {
            text.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            text.push(char::from(b'0' + octet / 10 % 10));
        }
        text.push(char::from(b'0' + octet % 10));
    }
    text
}

/// Headers a reverse proxy sets to name the client it forwards. As header names, not text:
/// a lookup by text parses the name first, which for these three was about 600 instructions
/// on every request from a loopback peer.
static FORWARDING_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("x-forwarded-for"),
    HeaderName::from_static("x-real-ip"),
    header::FORWARDED,
];

/// Whether a loopback peer forwards a client while no `trustedProxy` is configured: a local
/// reverse proxy is in front. Which client it forwards is not known (the header may be the
/// client's own).
pub fn forwarded_by_local_proxy(
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    proxy: &TrustedProxy,
) -> bool {
    // The request's names compared with the three, rather than three lookups, each of which
    // hashes its name and probes the map (~200 instructions for the three): a request has a
    // few headers, and at most hyper's cap.
    proxy.headers.is_empty()
        && peer.is_some_and(|addr| addr.ip().is_loopback())
        && headers.keys().any(|name| FORWARDING_HEADERS.contains(name))
}

/// How the limiter learns who is calling: supplied by the auth feature where the crate root
/// installs the layer, so that settings does not depend on auth.
#[derive(Clone, Copy)]
pub struct Callers {
    /// The collection id a token claims, read without checking its signature (no I/O).
    pub claimed_collection: fn(&SharedState, &str) -> Option<String>,
    /// The verified caller of a token (a guest when it does not verify); reads the store.
    pub resolve: for<'a> fn(&'a SharedState, &'a str) -> BoxFuture<'a, AuthContext>,
}

/// The limiter in a middleware chain: checks the request, then runs `next` unless the request
/// is refused.
pub struct Limit<N> {
    pub state: SharedState,
    pub callers: Callers,
    pub next: N,
}

impl<N: Continue> Continue for Limit<N> {
    async fn run(self, request: Request<Body>) -> Response {
        let refused = {
            let peer = crate::peer::of(request.extensions());
            // The request's parts are borrowed, not the request (its body is not `Sync`).
            let method = request.method();
            let path = request.uri().path();
            let headers = request.headers();
            check(&self.state, self.callers, peer, method, path, headers).await
        };
        match refused {
            Some(response) => response,
            None => self.next.run(request).await,
        }
    }
}

/// `Some(403)` when `superuserIPs` excludes a superuser request (or a superuser sign-in)
/// from this IP; `Some(429)` when the request is over its rule's limit.
async fn check(
    state: &SharedState,
    callers: Callers,
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
    // A local reverse proxy's clients are not local: once one is seen, loopback is not
    // exempt, and its clients share the peer's bucket (nothing else is theirs to choose).
    if forwarded_by_local_proxy(headers, peer, &settings.trusted_proxy) {
        state.limiters.note_local_proxy();
    }
    let unlimited =
        !limiting || ip.is_empty() || state.limiters.is_excluded(&ip, &limits.excluded_ips);
    // Exempt and with no superuser IP list to enforce: nothing below can refuse the request,
    // so its route and token are not looked at.
    if unlimited && settings.superuser_ips.is_empty() {
        return None;
    }
    let (collection, tags) = route_tags(method, path);
    let target = collection.and_then(|ident| state.schema().get(&ident).cloned());
    let token = crate::extract::header_token(headers).map(str::to_owned);
    // Only a token claiming to be a superuser's (exempt, or IP-restricted) and rules with an
    // audience need the caller verified; other tokens are not looked up, so the limiter adds
    // no database read to ordinary requests.
    let claimed = token
        .as_deref()
        .and_then(|token| (callers.claimed_collection)(state, token));
    let needs_verify = claimed
        .as_deref()
        .is_some_and(|collection| collection == domain::collection::SUPERUSERS_ID)
        || limits.rules.iter().any(|rule| !rule.audience.is_empty());
    let (is_superuser, authenticated) = match token {
        Some(token) if needs_verify => {
            let auth = (callers.resolve)(state, &token).await;
            (auth.is_superuser(), !auth.is_guest())
        }
        Some(_) => (false, claimed.is_some()),
        None => (false, false),
    };
    if !settings.superuser_ips.is_empty()
        && (is_superuser || target.as_ref().is_some_and(|c| c.is_superusers()))
        && !settings
            .superuser_ips
            .iter()
            .any(|allowed| crate::state::ip_matches(allowed, &ip))
    {
        return Some(
            ApiError::forbidden("You are not allowed to perform this request.").into_response(),
        );
    }
    if unlimited || is_superuser {
        return None;
    }
    let key = ip;
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

/// Whether `label` names what a rate-limit rule can limit, in the forms PocketBase accepts
/// (observed on 0.40.6): a path (`/api/`), a method and a path (`GET /api/`), a collection and
/// an action (`users:create`), any collection's action (`*:auth`), or a bare word. Words are
/// ASCII letters, digits and `_`; a path adds `/` and `-`.
pub fn valid_rule_label(label: &str) -> bool {
    fn word(text: &str) -> bool {
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    }
    fn path(text: &str) -> bool {
        text.starts_with('/')
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'/' | b'-'))
    }
    if let Some((method, rest)) = label.split_once(' ') {
        return word(method) && path(rest);
    }
    if let Some((collection, action)) = label.split_once(':') {
        return (collection == "*" || word(collection)) && word(action);
    }
    path(label) || word(label)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{ip_matches, parse_ip_or_subnet};

    #[test]
    fn ip_lists_take_ips_and_subnets_and_match_by_subnet() {
        for good in [
            "1.2.3.4",
            "::1",
            "10.0.0.0/8",
            "10.0.0.1/8",
            "fe80::/10",
            "0.0.0.0/0",
            "::/0",
        ] {
            assert!(parse_ip_or_subnet(good).is_some(), "{good}");
        }
        for bad in [
            "",
            "bad",
            " 1.2.3.4",
            "1.2.3.4/33",
            "::1/129",
            "1.2.3.4/",
            "1.2.3.4/a",
            "1.2.3.4/-1",
        ] {
            assert!(parse_ip_or_subnet(bad).is_none(), "{bad:?}");
        }
        assert!(ip_matches("10.0.0.0/8", "10.200.3.4"));
        assert!(!ip_matches("10.0.0.0/8", "11.0.0.1"));
        assert!(ip_matches("192.168.1.0/24", "192.168.1.255"));
        assert!(!ip_matches("192.168.1.0/24", "192.168.2.1"));
        assert!(ip_matches("0.0.0.0/0", "8.8.8.8"));
        assert!(ip_matches("fe80::/10", "fe80::1"));
        assert!(!ip_matches("fe80::/10", "::1"));
        assert!(!ip_matches("10.0.0.0/8", "::1"));
        assert!(ip_matches("127.0.0.1", "127.0.0.1"));
        assert!(!ip_matches("127.0.0.1", "127.0.0.2"));
        // An entry saved before the lists were checked matches only itself.
        assert!(!ip_matches("bad", "1.2.3.4"));
    }

    #[test]
    fn rule_labels_take_the_forms_pocketbase_accepts() {
        for good in [
            "GET /a/",
            "get /a",
            "/a-b_c/",
            "users:create",
            "*:create",
            "users",
            "/",
            "GET /",
            "*:auth",
            "_x:create",
            "GET",
            "OPTIONS /a",
        ] {
            assert!(valid_rule_label(good), "{good}");
        }
        for bad in [
            "/a.b",
            "*",
            "users:*",
            "/a b",
            "POST /a/{id}",
            "u-s:create",
            "PATCH  /a",
            "a:b:c",
            "/é",
            "/a/*",
            "",
        ] {
            assert!(!valid_rule_label(bad), "{bad:?}");
        }
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for text in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.40",
            "9.99.100.255",
            "255.255.255.255",
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:1.2.3.4",
        ] {
            let ip: std::net::IpAddr = text.parse().unwrap_or(std::net::IpAddr::from([0; 4]));
            assert_eq!(ip_text(ip), ip.to_string());
            assert_eq!(ip_text(ip), text);
        }
    }

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
    fn request_otp_has_its_own_default_rule() {
        let defaults = crate::state::settings::RateLimits::default();
        let post = Method::POST;
        let path = "/api/collections/users/request-otp";
        let (_, tags) = route_tags(&post, path);
        assert_eq!(
            tags,
            vec!["requestOTP"],
            "PocketBase's tag only, not `auth`"
        );
        let names = vec!["users".to_owned()];
        let picked = pick_rule(&defaults.rules, &post, path, &names, &tags, false)
            .map(|rule| (rule.label.as_str(), rule.duration, rule.max_requests));
        assert_eq!(picked, Some(("*:requestOTP", 60, 10)));
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
        let proxied = |pairs: &[(&'static str, &str)], peer: SocketAddr, proxy: &TrustedProxy| {
            forwarded_by_local_proxy(&headers(pairs), Some(peer), proxy)
        };
        // A direct local request (a test suite, a health check) is not proxied.
        assert!(!proxied(&[], loopback, &unconfigured));
        assert!(proxied(
            &[("x-forwarded-for", "1.1.1.1")],
            loopback,
            &unconfigured
        ));
        assert!(proxied(
            &[("x-real-ip", "3.3.3.3")],
            loopback6,
            &unconfigured
        ));
        assert!(proxied(
            &[("forwarded", "for=9.9.9.9")],
            loopback,
            &unconfigured
        ));
        // Not from loopback, or with a configured proxy: `client_ip` decides.
        assert!(!proxied(
            &[("x-forwarded-for", "1.1.1.1")],
            remote,
            &unconfigured
        ));
        let configured = TrustedProxy {
            headers: vec!["X-Forwarded-For".into()],
            use_leftmost_ip: false,
        };
        assert!(!proxied(
            &[("x-forwarded-for", "1.1.1.1")],
            loopback,
            &configured
        ));
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
