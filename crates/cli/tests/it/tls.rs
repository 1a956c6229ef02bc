//! Automatic TLS end to end: `plinth serve localhost --https=…` obtains a certificate from a
//! real ACME server (Debian's `pebble`, which `.ci/run` installs) through the http-01
//! challenge, which pebble validates by connecting to Plinth's plain-HTTP listener; then the
//! API answers over TLS with a certificate chaining to pebble's root, plain HTTP redirects to
//! HTTPS, and a restart without the CA serves the cached certificate.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

use crate::support;

/// Kills the child when the test ends, however it ends.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn pebble_binary() -> PathBuf {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("pebble"))
        .find(|path| path.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "the ACME test server `pebble` is not installed (Debian: `apt-get install -y \
             pebble`; .ci/run installs it): the automatic TLS test cannot run without it"
        )
    })
}

/// A CA and a certificate it signed for `localhost` and `127.0.0.1`, for pebble's own API.
fn pebble_api_certificate(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "plinth test CA");
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("params");
    let key = rcgen::KeyPair::generate().expect("key");
    let certificate = params.signed_by(&key, &issuer).expect("signed");
    let (ca_path, cert_path, key_path) = (
        dir.join("ca.pem"),
        dir.join("pebble-cert.pem"),
        dir.join("pebble-key.pem"),
    );
    std::fs::write(&ca_path, ca.pem()).expect("write");
    std::fs::write(&cert_path, certificate.pem()).expect("write");
    std::fs::write(&key_path, key.serialize_pem()).expect("write");
    (ca_path, cert_path, key_path)
}

/// Waits (bounded) until `address` accepts connections while `server` runs; false when it
/// never does or the server exits (another test's listener may hold the port: a connection
/// then succeeds though the server could not bind, so it must still be running afterwards).
fn serves(server: &mut Guard, address: SocketAddr) -> bool {
    for _ in 0..200 {
        if !matches!(server.0.try_wait(), Ok(None)) {
            return false;
        }
        if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
            std::thread::sleep(Duration::from_millis(200));
            return matches!(server.0.try_wait(), Ok(None));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn tls_connector(root_pem: &[u8]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(root_pem) {
        roots.add(certificate.expect("PEM")).expect("a root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// `GET path` over TLS to `address`, verifying the certificate for `name`; the raw answer.
async fn https_get(
    connector: &tokio_rustls::TlsConnector,
    address: SocketAddr,
    name: &str,
    path: &str,
) -> std::io::Result<String> {
    let tcp = tokio::net::TcpStream::connect(address).await?;
    let server_name = ServerName::try_from(name.to_owned()).expect("a name");
    let mut stream = connector.connect(server_name, tcp).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut answer = Vec::new();
    // A server closing without close_notify is an error to rustls; what was read counts.
    let _ = stream.read_to_end(&mut answer).await;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// Starts `plinth serve localhost` with TLS on `https` and plain HTTP on `http`.
fn start_plinth(dir: &Path, http: u16, https: u16, env: &[(&str, String)]) -> (Guard, String) {
    let (http, https) = (
        format!("--http=127.0.0.1:{http}"),
        format!("--https=127.0.0.1:{https}"),
    );
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (child, started) = support::serve_raw(dir, &["localhost", &http, &https], &env);
    (Guard(child), started)
}

/// The four ports of one try: pebble's ACME and management APIs, Plinth's HTTP and HTTPS.
struct Ports {
    acme: u16,
    management: u16,
    http: u16,
    https: u16,
}

/// Starts pebble on `ports` (validating challenges against Plinth's ports) and then Plinth
/// with pebble as its ACME directory; Plinth's start line (empty when it did not start), or
/// None when pebble did not listen (a port taken).
fn start_pebble_and_plinth(
    dir: &Path,
    pebble: &Path,
    ports: &Ports,
    ca: &Path,
    (cert, key): (&Path, &Path),
) -> Option<(Guard, Guard, String)> {
    let config = serde_json::json!({
        "pebble": {
            "listenAddress": format!("127.0.0.1:{}", ports.acme),
            "managementListenAddress": format!("127.0.0.1:{}", ports.management),
            "certificate": cert,
            "privateKey": key,
            // pebble validates http-01 by connecting to the domain on this port: Plinth's.
            "httpPort": ports.http,
            "tlsPort": ports.https,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false
        }
    });
    let config_path = dir.join("pebble.json");
    std::fs::write(&config_path, config.to_string()).expect("write");
    let mut pebble = Guard(
        Command::new(pebble)
            .arg("-config")
            .arg(&config_path)
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble starts"),
    );
    let acme: SocketAddr = format!("127.0.0.1:{}", ports.acme)
        .parse()
        .expect("address");
    let management: SocketAddr = format!("127.0.0.1:{}", ports.management)
        .parse()
        .expect("address");
    if !(serves(&mut pebble, acme) && serves(&mut pebble, management)) {
        return None;
    }
    let env = [
        (
            "PLINTH_ACME_DIRECTORY",
            format!("https://127.0.0.1:{}/dir", ports.acme),
        ),
        ("PLINTH_ACME_CA_FILE", ca.display().to_string()),
    ];
    let (plinth, started) = start_plinth(dir, ports.http, ports.https, &env);
    Some((pebble, plinth, started))
}

#[tokio::test]
async fn serve_with_a_domain_obtains_a_certificate_from_an_acme_server() {
    let pebble_bin = pebble_binary();
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, cert, key) = pebble_api_certificate(dir.path());
    let mut started = None;
    // Ports are picked free and then let go; another test may take one in between, so a
    // start that finds its port in use is tried again on new ones.
    for _ in 0..4 {
        let ports = Ports {
            acme: free_port(),
            management: free_port(),
            http: free_port(),
            https: free_port(),
        };
        // An account a failed try made lives only in that pebble.
        let _ = std::fs::remove_dir_all(dir.path().join("pb_data/.autocert_cache"));
        let before = support::served_stderr(dir.path()).len();
        let Some((pebble, plinth, line)) =
            start_pebble_and_plinth(dir.path(), &pebble_bin, &ports, &ca, (&cert, &key))
        else {
            continue;
        };
        if line == format!("Server started at https://127.0.0.1:{}", ports.https) {
            started = Some((pebble, plinth, ports));
            break;
        }
        let stderr = support::served_stderr(dir.path());
        let this_start = stderr.get(before..).unwrap_or_default();
        assert!(
            this_start.contains("Address already in use"),
            "Plinth did not start with TLS: {line:?}\n{this_start}"
        );
    }
    let (pebble, plinth, ports) = started.expect("a start on free ports within four tries");
    let (management_port, http_port, https_port) = (ports.management, ports.http, ports.https);

    // pebble's issuing root, from its management API (served with our CA's certificate).
    let management: SocketAddr = format!("127.0.0.1:{management_port}")
        .parse()
        .expect("address");
    let ca_pem = std::fs::read(&ca).expect("read");
    let answer = https_get(&tls_connector(&ca_pem), management, "localhost", "/roots/0")
        .await
        .expect("pebble's root");
    let root_pem = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .expect("a body");
    assert!(root_pem.contains("BEGIN CERTIFICATE"), "{answer}");
    let trusting_pebble = tls_connector(root_pem.as_bytes());

    // The certificate is obtained in the background: handshakes fail until it is there.
    let https: SocketAddr = format!("127.0.0.1:{https_port}").parse().expect("address");
    let mut health = String::new();
    for _ in 0..240 {
        match https_get(&trusting_pebble, https, "localhost", "/api/health").await {
            Ok(answer) if answer.starts_with("HTTP/1.1 200") => {
                health = answer;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
    assert!(
        health.contains("API is healthy."),
        "no TLS answer with a certificate from pebble: {health:?}"
    );
    let cached = dir.path().join("pb_data/.autocert_cache/localhost");
    let cached_pem = std::fs::read_to_string(&cached).expect("the certificate is cached");
    assert!(
        cached_pem.contains("PRIVATE KEY") && cached_pem.contains("BEGIN CERTIFICATE"),
        "{cached_pem}"
    );

    // Plain HTTP redirects to HTTPS (autocert's 302, without the port) and refuses writes.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let redirect = client
        .get(format!("http://127.0.0.1:{http_port}/api/health?x=1"))
        .header("Host", "localhost")
        .send()
        .await
        .expect("plain HTTP");
    assert_eq!(redirect.status(), 302);
    assert_eq!(
        redirect.headers()["location"],
        "https://localhost/api/health?x=1"
    );
    let write = client
        .post(format!(
            "http://127.0.0.1:{http_port}/api/collections/users/records"
        ))
        .header("Host", "localhost")
        .send()
        .await
        .expect("plain HTTP");
    assert_eq!(write.status(), 400);

    // Without the CA, a restart serves the cached certificate at once.
    drop(plinth);
    drop(pebble);
    let (plinth, started) = start_plinth(dir.path(), http_port, https_port, &[]);
    assert!(
        started.starts_with("Server started at https://"),
        "{started}"
    );
    let answer = https_get(&trusting_pebble, https, "localhost", "/api/health")
        .await
        .expect("TLS with the cached certificate");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // A realtime stream over TLS: hyper writes the head and PB_CONNECT, the stream's own
    // writer takes the TLS session from there (`server::handoff`) and, on a graceful stop,
    // ends the chunked body inside it.
    let tcp = tokio::net::TcpStream::connect(https)
        .await
        .expect("connects");
    let server_name = ServerName::try_from("localhost").expect("a name");
    let mut stream = trusting_pebble
        .connect(server_name, tcp)
        .await
        .expect("TLS handshake");
    stream
        .write_all(b"GET /api/realtime HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("request written");
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&received).contains("PB_CONNECT") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
            .await
            .expect("PB_CONNECT in time")
            .expect("reads");
        assert!(n > 0, "stream open");
        received.extend_from_slice(&buffer[..n]);
    }
    let pid = plinth.0.id().to_string();
    let stopped = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(stopped.success());
    // A server closing without close_notify would be an error here: the writer closes the
    // session properly.
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut received))
        .await
        .expect("the stream ends in time")
        .expect("a clean TLS close");
    let text = String::from_utf8_lossy(&received);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .expect("a head");
    assert!(
        body.ends_with("\r\n0\r\n\r\n"),
        "the body's last chunk: {text:?}"
    );
}

#[test]
fn https_without_a_domain_refuses_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, _, stderr) = support::run_cli(
        dir.path(),
        &["serve", "--http=127.0.0.1:0", "--https=127.0.0.1:0"],
    );
    assert_ne!(code, 0);
    assert!(stderr.contains("at least one domain"), "{stderr}");
    let (code, _, stderr) = support::run_cli(
        dir.path(),
        &[
            "serve",
            "not a domain",
            "--http=127.0.0.1:0",
            "--https=127.0.0.1:0",
        ],
    );
    assert_ne!(code, 0);
    assert!(stderr.contains("not a domain name"), "{stderr}");
}
