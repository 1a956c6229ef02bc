//! The rate limiters' buckets (the `rateLimits` settings); matching a request to a rule and
//! the middleware are the `settings::rate_limit` feature's.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::settings::RateLimitRule;

/// One limiter per distinct rule, each keyed by client; a count of checks (for the
/// periodic cleanup); and whether a local proxy has been seen (loopback no longer exempt).
///
/// Several nodes: the buckets are per node, so with N nodes behind a load balancer a client
/// gets up to N times the configured `maxRequests` per window (the effective cluster limit is
/// N × the configured one), and a local proxy seen by one node is unknown to the others.
/// Sharing buckets would need a shared counter store; nothing does that today.
#[derive(Default)]
pub struct Limiters(
    Mutex<HashMap<RuleKey, Arc<DefaultKeyedRateLimiter<String>>>>,
    std::sync::atomic::AtomicU64,
    std::sync::atomic::AtomicBool,
);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RuleKey {
    label: String,
    audience: String,
    duration: u64,
    max_requests: u64,
}

impl Limiters {
    /// Records that a loopback peer forwarded a client: from now on loopback is not exempt.
    /// Logs once.
    pub fn note_local_proxy(&self) {
        if !self.2.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(
                "a request from loopback carries a proxy header but no trustedProxy is \
                 configured: loopback is no longer exempt from rate limits, and every proxied \
                 client shares the proxy's bucket; set trustedProxy.headers in the settings to \
                 the header your proxy sets"
            );
        }
    }

    /// Whether a local proxy has been seen in front of this process.
    pub fn local_proxy_seen(&self) -> bool {
        self.2.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether `ip` is exempt by `excluded_ips`: never a loopback address once a local proxy
    /// has been seen (its clients all arrive from there).
    pub fn is_excluded(&self, ip: &str, excluded_ips: &[String]) -> bool {
        // The flag first: parsing the address is most of the check's cost, and only matters
        // once a local proxy has been seen.
        if self.local_proxy_seen()
            && ip
                .parse::<std::net::IpAddr>()
                .is_ok_and(|addr| addr.is_loopback())
        {
            return false;
        }
        excluded_ips.iter().any(|excluded| ip_matches(excluded, ip))
    }

    /// Counts a check; every few thousand, forgets clients whose buckets are full again, so
    /// memory follows the clients active within one window, not every IP ever seen.
    pub fn tick(&self) {
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

    pub fn for_rule(&self, rule: &RateLimitRule) -> Option<Arc<DefaultKeyedRateLimiter<String>>> {
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

/// Whether `ip` is `entry`, an IP or a CIDR subnet (`10.0.0.0/8`, `fe80::/10`) as PocketBase
/// accepts in `superuserIPs` and `rateLimits.excludedIPs`. An entry that is neither (saved
/// before the settings were checked for it) matches nothing but itself.
pub fn ip_matches(entry: &str, ip: &str) -> bool {
    // A plain IP matches only as itself; only a subnet is parsed (this runs per request).
    if entry == ip || !entry.contains('/') {
        return entry == ip;
    }
    let Some(IpOrSubnet::Subnet(network, bits)) = parse_ip_or_subnet(entry) else {
        return false;
    };
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return false;
    };
    match (network, ip) {
        (IpAddr::V4(network), IpAddr::V4(ip)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(network) & mask == u32::from(ip) & mask
        }
        (IpAddr::V6(network), IpAddr::V6(ip)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(network) & mask == u128::from(ip) & mask
        }
        _ => false,
    }
}

/// An entry of `superuserIPs` or `rateLimits.excludedIPs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpOrSubnet {
    Ip(IpAddr),
    /// A network and its prefix length (within the address family's bits).
    Subnet(IpAddr, u8),
}

/// `text` as an IP (`1.2.3.4`, `::1`) or a CIDR subnet (`10.0.0.0/8`); `None` for anything
/// else (spaces included), which the settings refuse.
pub fn parse_ip_or_subnet(text: &str) -> Option<IpOrSubnet> {
    let Some((address, bits)) = text.split_once('/') else {
        return text.parse().ok().map(IpOrSubnet::Ip);
    };
    let address: IpAddr = address.parse().ok()?;
    if bits.is_empty() || bits.len() > 3 || !bits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bits: u8 = bits.parse().ok()?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some(IpOrSubnet::Subnet(address, bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(label: &str) -> RateLimitRule {
        RateLimitRule {
            label: label.into(),
            audience: String::new(),
            duration: 10,
            max_requests: 2,
        }
    }

    #[test]
    fn limiter_allows_the_burst_then_refuses() {
        let limiters = Limiters::default();
        let limiter = limiters.for_rule(&rule("*:auth")).expect("limiter");
        let key = "127.0.0.1".to_owned();
        assert!(limiter.check_key(&key).is_ok());
        assert!(limiter.check_key(&key).is_ok());
        assert!(limiter.check_key(&key).is_err());
        assert!(limiter.check_key(&"10.0.0.1".to_owned()).is_ok());
    }

    #[test]
    fn loopback_stops_being_exempt_once_a_local_proxy_is_seen() {
        let limiters = Limiters::default();
        let excluded = vec![
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
            "10.1.1.1".to_owned(),
        ];
        assert!(limiters.is_excluded("127.0.0.1", &excluded));
        assert!(limiters.is_excluded("::1", &excluded));
        limiters.note_local_proxy();
        assert!(!limiters.is_excluded("127.0.0.1", &excluded));
        assert!(!limiters.is_excluded("::1", &excluded));
        assert!(
            limiters.is_excluded("10.1.1.1", &excluded),
            "others stay exempt"
        );
        assert!(!limiters.is_excluded("10.1.1.2", &excluded));
    }
}
