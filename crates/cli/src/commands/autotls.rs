//! Automatic TLS for `plinth serve DOMAIN… [--https=ADDR]`, as PocketBase does it with Go's
//! autocert: certificates come from an ACME CA (Let's Encrypt unless `PLINTH_ACME_DIRECTORY`
//! names another; `PLINTH_ACME_CA_FILE` adds a PEM root to trust for the CA's own API, for a
//! test CA such as pebble), one per domain, proven with the http-01 challenge answered by the
//! plain-HTTP listener, which redirects every other GET or HEAD to HTTPS (302, the port
//! dropped, as autocert does) and answers other methods `400 Use HTTPS`.
//!
//! Certificates are kept in `DATA_DIR/.autocert_cache/DOMAIN` as autocert keeps them (the
//! private key PEM, then the chain PEM), so a PocketBase cache is picked up and the reverse.
//! They are obtained in the background after the listeners are up (a handshake for a domain
//! without one yet fails, as with autocert while it obtains one) and renewed when the cached
//! file is older than [`RENEW_AFTER`] (certificates of Let's Encrypt last 90 days).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;

/// Let's Encrypt's production directory, autocert's default.
const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// A cached certificate older than this is renewed.
pub const RENEW_AFTER: Duration = Duration::from_secs(60 * 24 * 3600);

/// How often the renewal task looks at the certificates; a failed attempt is retried then.
const CHECK_EVERY: Duration = Duration::from_secs(3600);

/// The cache folder inside the data dir, named as PocketBase names it.
pub const CACHE_DIR: &str = ".autocert_cache";

/// The account file beside the certificates (Plinth's own; autocert's account is not reused).
const ACCOUNT_FILE: &str = "plinth_acme_account.json";

/// Certificates by domain, read by the TLS handshakes and filled by the ACME task.
#[derive(Debug, Default)]
struct Certificates(RwLock<HashMap<String, Arc<CertifiedKey>>>);

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name()?.to_ascii_lowercase();
        let certificates = self.0.read().unwrap_or_else(PoisonError::into_inner);
        certificates.get(&name).cloned()
    }
}

/// Pending http-01 answers: token → key authorization.
#[derive(Debug, Default)]
struct Challenges(RwLock<HashMap<String, String>>);

/// Automatic TLS for a set of domains.
#[derive(Clone)]
pub struct AutoTls {
    domains: Arc<Vec<String>>,
    cache: PathBuf,
    certificates: Arc<Certificates>,
    challenges: Arc<Challenges>,
}

impl AutoTls {
    /// Checks the domains and loads the cached certificates; nothing is requested yet.
    pub fn new(domains: &[String], data_dir: &Path) -> anyhow::Result<AutoTls> {
        if domains.is_empty() {
            anyhow::bail!(
                "--https needs at least one domain argument to obtain a certificate for \
                 (plinth serve example.com --https=…)"
            );
        }
        let mut names = Vec::new();
        for domain in domains {
            let name = domain.trim().trim_end_matches('.').to_ascii_lowercase();
            let valid = !name.is_empty()
                && name.len() <= 253
                && name.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !valid {
                anyhow::bail!("{domain:?} is not a domain name a certificate can be issued for");
            }
            names.push(name);
        }
        let cache = data_dir.join(CACHE_DIR);
        std::fs::create_dir_all(&cache)
            .with_context(|| format!("creating the certificate cache {}", cache.display()))?;
        let tls = AutoTls {
            domains: Arc::new(names),
            cache,
            certificates: Arc::default(),
            challenges: Arc::default(),
        };
        for domain in tls.domains.iter() {
            match load_cached(&tls.cache.join(domain)) {
                Ok(Some(key)) => tls.install(domain, key),
                Ok(None) => {}
                Err(error) => tracing::warn!(%domain, %error, "ignoring a cached certificate"),
            }
        }
        Ok(tls)
    }

    fn install(&self, domain: &str, key: Arc<CertifiedKey>) {
        self.certificates
            .0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(domain.to_owned(), key);
    }

    /// The TLS settings of the HTTPS listener (HTTP/1.1 only, as the server speaks).
    pub fn acceptor(&self) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .context("the TLS settings")?
        .with_no_client_auth()
        .with_cert_resolver(self.certificates.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }

    /// The plain-HTTP service: ACME challenges, else a redirect to HTTPS.
    pub fn http_router(&self) -> axum::Router {
        let challenges = self.challenges.clone();
        let domains = self.domains.clone();
        axum::Router::new().fallback(move |request: Request<Body>| {
            let challenges = challenges.clone();
            let domains = domains.clone();
            async move { answer_http(&challenges, &domains, request) }
        })
    }

    /// Obtains every missing certificate, then renews them as they age; runs until the
    /// process ends. Failures are logged and retried at the next check.
    pub fn spawn_manager(&self) {
        let tls = self.clone();
        tokio::spawn(async move {
            let mut account = None;
            loop {
                for domain in tls.domains.iter() {
                    if !tls.needs_certificate(domain) {
                        continue;
                    }
                    match tls.obtain(&mut account, domain).await {
                        Ok(()) => tracing::info!(%domain, "TLS certificate obtained"),
                        Err(error) => {
                            tracing::error!(%domain, error = %format!("{error:#}"), "obtaining a TLS certificate failed")
                        }
                    }
                }
                tokio::time::sleep(CHECK_EVERY).await;
            }
        });
    }

    fn needs_certificate(&self, domain: &str) -> bool {
        let held = self
            .certificates
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(domain);
        let age = std::fs::metadata(self.cache.join(domain))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok());
        !held || age.is_none_or(|age| age > RENEW_AFTER)
    }

    async fn obtain(&self, account: &mut Option<Account>, domain: &str) -> anyhow::Result<()> {
        let account = match account {
            Some(account) => account.clone(),
            None => {
                let fresh = self.account().await?;
                *account = Some(fresh.clone());
                fresh
            }
        };
        let identifiers = [Identifier::Dns(domain.to_owned())];
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .context("creating the ACME order")?;
        let mut tokens = Vec::new();
        {
            let mut authorizations = order.authorizations();
            while let Some(authorization) = authorizations.next().await {
                let mut authorization = authorization.context("reading an authorization")?;
                match &authorization.status {
                    AuthorizationStatus::Pending => {}
                    AuthorizationStatus::Valid => continue,
                    status => anyhow::bail!("the authorization is {status:?}"),
                }
                let mut challenge = authorization
                    .challenge(ChallengeType::Http01)
                    .context("the CA offers no http-01 challenge")?;
                let answer = challenge.key_authorization().as_str().to_owned();
                tokens.push(challenge.token.clone());
                self.challenges
                    .0
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(challenge.token.clone(), answer);
                challenge
                    .set_ready()
                    .await
                    .context("telling the CA the challenge is ready")?;
            }
        }
        let retry = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .timeout(Duration::from_secs(120));
        let status = order.poll_ready(&retry).await;
        {
            let mut pending = self
                .challenges
                .0
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            for token in &tokens {
                pending.remove(token);
            }
        }
        let status = status.context("waiting for the order")?;
        if status != OrderStatus::Ready {
            anyhow::bail!("the order is {status:?} (the challenge failed?)");
        }
        let key_pem = order.finalize().await.context("finalizing the order")?;
        let chain_pem = order
            .poll_certificate(&retry)
            .await
            .context("downloading the certificate")?;
        let cached = format!("{key_pem}{chain_pem}");
        let key = certified_key(cached.as_bytes())?;
        write_atomically(&self.cache.join(domain), cached.as_bytes())?;
        self.install(domain, key);
        Ok(())
    }

    /// The ACME account: the cached one, else a new one (then cached).
    async fn account(&self) -> anyhow::Result<Account> {
        let directory = std::env::var("PLINTH_ACME_DIRECTORY")
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| LETS_ENCRYPT.to_owned());
        let builder = match std::env::var_os("PLINTH_ACME_CA_FILE").filter(|v| !v.is_empty()) {
            Some(pem) => Account::builder_with_root(&pem).with_context(|| {
                format!("trusting PLINTH_ACME_CA_FILE={}", Path::new(&pem).display())
            })?,
            None => Account::builder().context("the ACME HTTP client")?,
        };
        let path = self.cache.join(ACCOUNT_FILE);
        let cached = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Cached>(&bytes).ok())
            .filter(|cached| cached.directory == directory);
        if let Some(cached) = cached {
            return builder
                .from_credentials(cached.credentials)
                .await
                .context("restoring the ACME account");
        }
        let (account, credentials) = builder
            .create(
                &NewAccount {
                    contact: &[],
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                directory.clone(),
                None,
            )
            .await
            .with_context(|| format!("creating an ACME account at {directory}"))?;
        let json = serde_json::to_vec(&Cached {
            directory,
            credentials,
        })?;
        write_atomically(&path, &json)?;
        Ok(account)
    }
}

/// The cached account, with the directory it belongs to.
#[derive(serde::Serialize, serde::Deserialize)]
struct Cached {
    directory: String,
    credentials: AccountCredentials,
}

/// Autocert's plain-HTTP answers.
fn answer_http(challenges: &Challenges, domains: &[String], request: Request<Body>) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let host = strip_port(host);
    if let Some(token) = request
        .uri()
        .path()
        .strip_prefix("/.well-known/acme-challenge/")
    {
        let known = domains.iter().any(|d| d.eq_ignore_ascii_case(host));
        let answer = challenges
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(token)
            .cloned();
        return match answer {
            Some(answer) if known => (
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                answer,
            )
                .into_response(),
            _ => (StatusCode::NOT_FOUND, "404 page not found\n").into_response(),
        };
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "Use HTTPS\n",
        )
            .into_response();
    }
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let target = format!("https://{host}{path}");
    let Ok(location) = HeaderValue::from_str(&target) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let mut response = StatusCode::FOUND.into_response();
    response.headers_mut().insert(header::LOCATION, location);
    response
}

/// `host[:port]` without the port (IPv6 brackets kept).
fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.ends_with(':') => {
            name
        }
        _ => host,
    }
}

/// A cached `key PEM + chain PEM` file, if there is one.
fn load_cached(path: &Path) -> anyhow::Result<Option<Arc<CertifiedKey>>> {
    match std::fs::read(path) {
        Ok(bytes) => certified_key(&bytes).map(Some),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// The signing key and chain held in one PEM text (any key format autocert writes).
fn certified_key(pem: &[u8]) -> anyhow::Result<Arc<CertifiedKey>> {
    let key = PrivateKeyDer::from_pem_slice(pem).context("no private key in the PEM")?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .context("reading the certificate chain")?;
    if chain.is_empty() {
        anyhow::bail!("no certificate in the PEM");
    }
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .context("loading the private key")?;
    Ok(Arc::new(CertifiedKey::new(chain, signing)))
}

/// Writes through a temporary file and a rename, readable by the owner only (it holds keys).
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let temporary = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(&temporary)
        .with_context(|| format!("writing {}", temporary.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_checked_before_anything_is_requested() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(AutoTls::new(&[], dir.path()).is_err(), "--https alone");
        for bad in ["exa mple.com", "a..b", "-", "x/y", ""] {
            assert!(
                AutoTls::new(&[bad.to_owned()], dir.path()).is_err(),
                "{bad}"
            );
        }
        let tls = AutoTls::new(&["Example.COM.".to_owned()], dir.path()).expect("valid");
        assert_eq!(tls.domains.as_slice(), ["example.com"]);
        assert!(dir.path().join(CACHE_DIR).is_dir());
        assert!(tls.needs_certificate("example.com"));
    }

    #[test]
    fn plain_http_answers_challenges_and_redirects_the_rest() {
        let challenges = Challenges::default();
        challenges
            .0
            .write()
            .expect("lock")
            .insert("tok".into(), "tok.thumb".into());
        let domains = vec!["example.com".to_owned()];
        let request = |method: Method, host: &str, path: &str| {
            Request::builder()
                .method(method)
                .uri(path)
                .header(header::HOST, host)
                .body(Body::empty())
                .expect("request")
        };
        let answer = answer_http(
            &challenges,
            &domains,
            request(
                Method::GET,
                "example.com:80",
                "/.well-known/acme-challenge/tok",
            ),
        );
        assert_eq!(answer.status(), StatusCode::OK);
        let other_host = answer_http(
            &challenges,
            &domains,
            request(
                Method::GET,
                "evil.example",
                "/.well-known/acme-challenge/tok",
            ),
        );
        assert_eq!(other_host.status(), StatusCode::NOT_FOUND);
        let redirect = answer_http(
            &challenges,
            &domains,
            request(Method::GET, "example.com:8080", "/api/health?x=1"),
        );
        assert_eq!(redirect.status(), StatusCode::FOUND);
        assert_eq!(
            redirect.headers()[header::LOCATION],
            "https://example.com/api/health?x=1"
        );
        let post = answer_http(
            &challenges,
            &domains,
            request(Method::POST, "example.com", "/api/x"),
        );
        assert_eq!(post.status(), StatusCode::BAD_REQUEST);
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
    }
}
