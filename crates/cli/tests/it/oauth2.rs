use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use crate::support::{TestApp, assert_error};

const OIDC_PROVIDER_VERSION: &str = "9.13.3";
const CLIENT_ID: &str = "plinth-test";
const CLIENT_SECRET: &str = "plinth-test-secret-123";
const REDIRECT: &str = "http://127.0.0.1:1/callback";
const USERS: &str = "/api/collections/users";

/// node-oidc-provider, installed from npm once per machine into the temp dir, running on a
/// free loopback port. Killed on drop.
struct OidcProvider {
    base: String,
    child: Child,
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn install_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("plinth-oidc-provider-{OIDC_PROVIDER_VERSION}"));
    if !dir.join("node_modules/oidc-provider/package.json").exists() {
        std::fs::create_dir_all(&dir).expect("creates the install dir");
        let status = Command::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                "--prefix",
            ])
            .arg(&dir)
            .arg(format!("oidc-provider@{OIDC_PROVIDER_VERSION}"))
            .status()
            .expect("npm runs (Node.js and npm are needed for the OAuth2 tests)");
        assert!(status.success(), "npm install oidc-provider failed");
    }
    std::fs::write(dir.join("provider.mjs"), include_str!("oidc_provider.mjs"))
        .expect("writes the provider script");
    dir
}

impl OidcProvider {
    fn start() -> OidcProvider {
        let dir = install_dir();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut child = Command::new("node")
            .arg(dir.join("provider.mjs"))
            .args([&port.to_string(), CLIENT_ID, CLIENT_SECRET])
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).expect("reads");
        assert!(
            line.starts_with("OIDC ready"),
            "provider did not start: {line}"
        );
        std::thread::spawn(move || {
            let mut sink = String::new();
            while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        });
        OidcProvider {
            base: format!("http://127.0.0.1:{port}"),
            child,
        }
    }
}

/// A browser stand-in: follows the provider's login and consent pages by hand, keeping
/// cookies, and returns the `code` and `state` the provider redirects back with.
async fn sign_in_at_provider(auth_url: &str, login: &str) -> (String, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let mut cookies: BTreeMap<String, String> = BTreeMap::new();
    let mut url = format!("{auth_url}{}", urlencode(REDIRECT));
    let steps: [Option<&str>; 5] = [
        None,
        Some("prompt=login"),
        None,
        Some("prompt=consent"),
        None,
    ];
    for form in steps {
        let cookie_header = cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let request = match form {
            None => client.get(&url),
            Some(prompt) => {
                let body = if prompt == "prompt=login" {
                    format!("{prompt}&login={login}&password=any")
                } else {
                    prompt.to_owned()
                };
                client
                    .post(&url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body)
            }
        };
        let response = request
            .header("cookie", cookie_header)
            .send()
            .await
            .expect("provider answers");
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().expect("ascii cookie");
            if let Some((pair, _)) = text.split_once(';').or(Some((text, "")))
                && let Some((name, value)) = pair.split_once('=')
            {
                cookies.insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
        assert!(
            response.status().is_redirection(),
            "step {form:?}: {}",
            response.status()
        );
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("location")
            .to_owned();
        url = if location.starts_with('/') {
            // Relative to the provider's origin (`http://host:port`).
            let origin: String = url.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
            format!("{origin}{location}")
        } else {
            location
        };
    }
    assert!(url.starts_with(REDIRECT), "ended at {url}");
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    let pairs: Vec<(String, String)> = query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let get = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    (get("code"), get("state"))
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The `oidc` entry of `auth-methods` (fresh state and PKCE pair each time).
async fn provider_entry(app: &TestApp) -> Value {
    let (status, methods) = app.get(&format!("{USERS}/auth-methods"), None).await;
    assert_eq!(status, 200, "{methods}");
    methods["oauth2"]["providers"][0].clone()
}

async fn oauth2_login(app: &TestApp, login: &str) -> (u16, Value) {
    let entry = provider_entry(app).await;
    let (code, state) =
        sign_in_at_provider(entry["authURL"].as_str().expect("authURL"), login).await;
    assert_eq!(
        state,
        entry["state"].as_str().expect("state"),
        "state round-trips"
    );
    app.post_json(
        &format!("{USERS}/auth-with-oauth2"),
        None,
        json!({"provider": "oidc", "code": code, "codeVerifier": entry["codeVerifier"],
               "redirectURL": REDIRECT, "createData": {"name": "ignored when mapped"}}),
    )
    .await
}

#[tokio::test]
async fn oauth2_code_flow_against_a_real_oidc_provider() {
    let provider = OidcProvider::start();
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (status, body) = app
        .patch_json(
            "/api/settings",
            Some(&admin),
            json!({"rateLimits": {"enabled": false}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .post_json(&format!("{USERS}/auth-with-oauth2"), None, json!({}))
        .await;
    assert_error(
        status,
        &body,
        403,
        "The collection is not configured to allow OAuth2 authentication.",
    );
    let (status, body) = app
        .patch_json(
            USERS,
            Some(&admin),
            json!({"oauth2": {"enabled": true, "providers": [{
                "name": "oidc", "clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET,
                "authURL": format!("{}/auth", provider.base),
                "tokenURL": format!("{}/token", provider.base),
                "userInfoURL": format!("{}/me", provider.base),
                "displayName": "Test OIDC", "pkce": true}]}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let entry = provider_entry(&app).await;
    assert_eq!(entry["name"], "oidc");
    assert_eq!(entry["displayName"], "Test OIDC");
    assert_eq!(entry["codeChallengeMethod"], "S256");
    assert!(
        entry["authURL"]
            .as_str()
            .expect("url")
            .ends_with("&redirect_uri=")
    );

    let (status, body) = oauth2_login(&app, "alice").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["email"], "alice@oidc.test");
    assert_eq!(body["record"]["verified"], true);
    assert_eq!(
        body["record"]["name"], "User alice",
        "mapped from the provider"
    );
    assert_eq!(body["meta"]["isNew"], true);
    assert_eq!(body["meta"]["id"], "alice");
    assert_eq!(body["meta"]["email"], "alice@oidc.test");
    assert!(
        body["meta"]["accessToken"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    let id = body["record"]["id"].clone();
    let (status, links) = app
        .get("/api/collections/_externalAuths/records", Some(&admin))
        .await;
    assert_eq!(status, 200, "{links}");
    assert_eq!(links["items"].as_array().map(Vec::len), Some(1), "{links}");
    assert_eq!(links["items"][0]["provider"], "oidc");
    assert_eq!(links["items"][0]["providerId"], "alice");
    assert_eq!(links["items"][0]["recordRef"], id);

    let (status, body) = oauth2_login(&app, "alice").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["id"], id, "the link finds the same record");
    assert_eq!(body["meta"]["isNew"], false);

    // A wrong PKCE verifier never gets a token.
    let entry = provider_entry(&app).await;
    let (code, _) = sign_in_at_provider(entry["authURL"].as_str().expect("url"), "carol").await;
    let (status, body) = app
        .post_json(
            &format!("{USERS}/auth-with-oauth2"),
            None,
            json!({"provider": "oidc", "code": code, "codeVerifier": "x".repeat(43),
                   "redirectURL": REDIRECT}),
        )
        .await;
    assert_error(status, &body, 400, "Failed to fetch OAuth2 token.");
    let (status, body) = app
        .post_json(
            &format!("{USERS}/auth-with-oauth2"),
            None,
            json!({"provider": "nope", "code": "x", "redirectURL": REDIRECT}),
        )
        .await;
    let data = assert_error(
        status,
        &body,
        400,
        "An error occurred while loading the submitted data.",
    );
    assert_eq!(data["provider"]["code"], "validation_invalid_provider");
}

#[tokio::test]
async fn oauth2_never_links_by_an_unverified_email() {
    let provider = OidcProvider::start();
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.patch_json(
        "/api/settings",
        Some(&admin),
        json!({"rateLimits": {"enabled": false}}),
    )
    .await;
    app.patch_json(
        USERS,
        Some(&admin),
        json!({"oauth2": {"enabled": true, "providers": [{
            "name": "oidc", "clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET,
            "authURL": format!("{}/auth", provider.base),
            "tokenURL": format!("{}/token", provider.base),
            "userInfoURL": format!("{}/me", provider.base)}]}}),
    )
    .await;
    // Someone registered the victim's address first, with a password they know.
    let (status, squatter) = app
        .post_json(
            &format!("{USERS}/records"),
            None,
            json!({"email": "bob@oidc.test", "password": "squatter1", "passwordConfirm": "squatter1"}),
        )
        .await;
    assert_eq!(status, 200, "{squatter}");
    let refused =
        "An account with this email already exists; sign in to it first to link this provider.";
    let (status, body) = oauth2_login(&app, "bob").await;
    assert_error(status, &body, 400, refused);
    // The provider says the email is unverified: no link to a verified account either.
    let (status, verified) = app
        .post_json(
            &format!("{USERS}/records"),
            None,
            json!({"email": "unverified-dan@oidc.test", "password": "danpass12",
                   "passwordConfirm": "danpass12"}),
        )
        .await;
    assert_eq!(status, 200, "{verified}");
    let id = verified["id"].as_str().expect("id");
    let (status, _) = app
        .patch_json(
            &format!("{USERS}/records/{id}"),
            Some(&admin),
            json!({"verified": true}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = oauth2_login(&app, "unverified-dan").await;
    assert_error(status, &body, 400, refused);
    // The squatter's password still signs in only to the squatter's own, unlinked account.
    let (status, body) = app
        .post_json(
            &format!("{USERS}/auth-with-password"),
            None,
            json!({"identity": "bob@oidc.test", "password": "squatter1"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["id"], squatter["id"]);
}
