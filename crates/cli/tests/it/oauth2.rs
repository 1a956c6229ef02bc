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
pub(crate) struct OidcProvider {
    base: String,
    child: Child,
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The provider's install dir, set up once per test process. Parallel tests (and parallel
/// test processes) never see a half-installed package or a half-written script: both are
/// made under another name and renamed into place.
fn install_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("plinth-oidc-provider-{OIDC_PROVIDER_VERSION}"));
        if !dir.join("node_modules/oidc-provider/package.json").exists() {
            let staging = dir.with_extension(format!("staging-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&staging);
            std::fs::create_dir_all(&staging).expect("creates the install dir");
            let status = Command::new("npm")
                .args([
                    "install",
                    "--no-audit",
                    "--no-fund",
                    "--loglevel=error",
                    "--prefix",
                ])
                .arg(&staging)
                .arg(format!("oidc-provider@{OIDC_PROVIDER_VERSION}"))
                .status()
                .expect("npm runs (Node.js and npm are needed for the OAuth2 tests)");
            assert!(status.success(), "npm install oidc-provider failed");
            // Another process may have finished first; its copy is as good as ours.
            if std::fs::rename(&staging, &dir).is_err() {
                let _ = std::fs::remove_dir_all(&staging);
            }
        }
        let script = dir.join(format!("provider-{}.tmp", std::process::id()));
        std::fs::write(&script, include_str!("oidc_provider.mjs"))
            .expect("writes the provider script");
        std::fs::rename(&script, dir.join("provider.mjs")).expect("moves the script in place");
        dir
    })
    .clone()
}

impl OidcProvider {
    pub(crate) fn start() -> OidcProvider {
        let dir = install_dir();
        let mut child = Command::new("node")
            .arg(dir.join("provider.mjs"))
            .args([CLIENT_ID, CLIENT_SECRET])
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).expect("reads");
        let Some(base) = line.trim().strip_prefix("OIDC ready ").map(str::to_owned) else {
            let _ = child.kill();
            let mut errors = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut stderr, &mut errors);
            }
            panic!("provider did not start: {line}{errors}");
        };
        if let Some(stderr) = child.stderr.take() {
            drain(BufReader::new(stderr));
        }
        drain(reader);
        OidcProvider { base, child }
    }
}

/// Reads a child's pipe to its end on a thread, so the child never blocks on a full pipe.
fn drain(mut reader: impl BufRead + Send + 'static) {
    std::thread::spawn(move || {
        let mut sink = String::new();
        while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
            sink.clear();
        }
    });
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
    oauth2_login_with(app, login, json!({})).await
}

/// A full sign-in at the provider, then `auth-with-oauth2` with `create_data`.
pub(crate) async fn oauth2_login_with(
    app: &TestApp,
    login: &str,
    create_data: Value,
) -> (u16, Value) {
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
               "redirectURL": REDIRECT, "createData": create_data}),
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
async fn oauth2_never_links_by_an_email_the_provider_did_not_verify() {
    let provider = OidcProvider::start();
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    enable_oidc(&app, &admin, &provider, json!({})).await;
    // The provider says the email is unverified: no link, even to a verified account.
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
    let refused =
        "An account with this email already exists; sign in to it first to link this provider.";
    let (status, body) = oauth2_login(&app, "unverified-dan").await;
    assert_error(status, &body, 400, refused);
    let (status, links) = app
        .get("/api/collections/_externalAuths/records", Some(&admin))
        .await;
    assert_eq!(status, 200, "{links}");
    assert_eq!(links["totalItems"], 0, "{links}");
    // The account's own password still works.
    let (status, body) = app
        .post_json(
            &format!("{USERS}/auth-with-password"),
            None,
            json!({"identity": "unverified-dan@oidc.test", "password": "danpass12"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// Account pre-hijacking (issue #11): someone registers the victim's address with a password
/// they know and leaves it unverified. When the provider proves the address belongs to the
/// person signing in, that person gets the account, and the registrant's password and
/// sessions stop working (PocketBase resets the password too).
#[tokio::test]
async fn oauth2_takes_an_unverified_account_back_from_whoever_registered_it() {
    let provider = OidcProvider::start();
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    enable_oidc(&app, &admin, &provider, json!({})).await;
    let (status, squatter) = app
        .post_json(
            &format!("{USERS}/records"),
            None,
            json!({"email": "bob@oidc.test", "password": "squatter1", "passwordConfirm": "squatter1"}),
        )
        .await;
    assert_eq!(status, 200, "{squatter}");
    assert_eq!(squatter["verified"], false);
    let login_path = format!("{USERS}/auth-with-password");
    let squatter_login = || {
        app.post_json(
            &login_path,
            None,
            json!({"identity": "bob@oidc.test", "password": "squatter1"}),
        )
    };
    let (status, session) = squatter_login().await;
    assert_eq!(status, 200, "{session}");
    let squatter_token = session["token"].as_str().expect("token").to_owned();
    // The registrant also links a provider account of their own while signed in.
    let entry = provider_entry(&app).await;
    let (code, _) = sign_in_at_provider(entry["authURL"].as_str().expect("url"), "mallory").await;
    let (status, body) = app
        .post_json(
            &format!("{USERS}/auth-with-oauth2"),
            Some(&squatter_token),
            json!({"provider": "oidc", "code": code, "codeVerifier": entry["codeVerifier"],
                   "redirectURL": REDIRECT}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["id"], squatter["id"], "linked to the caller");

    let (status, body) = oauth2_login(&app, "bob").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["id"], squatter["id"], "the existing account");
    assert_eq!(body["record"]["verified"], true);
    assert_eq!(body["meta"]["isNew"], false);

    let (status, body) = squatter_login().await;
    assert_error(status, &body, 400, "Failed to authenticate.");
    let (status, body) = app
        .post_json(
            &format!("{USERS}/auth-refresh"),
            Some(&squatter_token),
            json!({}),
        )
        .await;
    assert_error(
        status,
        &body,
        401,
        "The request requires valid record authorization token.",
    );
    // The owner signs in again through the link; the registrant's link is gone, so their
    // provider account now signs up on its own.
    let (status, body) = oauth2_login(&app, "bob").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["id"], squatter["id"]);
    let (status, body) = oauth2_login(&app, "mallory").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["meta"]["isNew"], true, "{body}");
    assert_ne!(body["record"]["id"], squatter["id"]);
}

/// Configures the `oidc` provider of `users` against `provider`, with rate limits off.
pub(crate) async fn enable_oidc(app: &TestApp, admin: &str, provider: &OidcProvider, extra: Value) {
    let (status, body) = app
        .patch_json(
            "/api/settings",
            Some(admin),
            json!({"rateLimits": {"enabled": false}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut patch = json!({"oauth2": {"enabled": true, "providers": [{
        "name": "oidc", "clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET,
        "authURL": format!("{}/auth", provider.base),
        "tokenURL": format!("{}/token", provider.base),
        "userInfoURL": format!("{}/me", provider.base)}]}});
    if let (Some(patch), Value::Object(extra)) = (patch.as_object_mut(), extra) {
        for (key, value) in extra {
            if key == "oauth2" {
                if let (Some(target), Value::Object(more)) =
                    (patch["oauth2"].as_object_mut(), value)
                {
                    target.extend(more);
                }
            } else {
                patch.insert(key, value);
            }
        }
    }
    let (status, body) = app.patch_json(USERS, Some(admin), patch).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn oauth2_sign_up_goes_through_the_create_rule_and_record_validation() {
    let provider = OidcProvider::start();
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    // As in PocketBase: the rule sees the submitted createData (plus the provider email and a
    // random password) in the "oauth2" context; the provider name is not mapped here.
    enable_oidc(
        &app,
        &admin,
        &provider,
        json!({"createRule": "@request.context = \"oauth2\" && @request.body.name != \"\" \
                               && @request.body.email != \"\" && @request.body.password != \"\"",
               "oauth2": {"mappedFields": {"name": ""}}}),
    )
    .await;
    let (status, body) = oauth2_login_with(&app, "ann", json!({})).await;
    let data = assert_error(status, &body, 400, "Failed to create record.");
    assert_eq!(data, json!({}));
    let (status, body) = oauth2_login_with(&app, "ann", json!({"name": "x".repeat(300)})).await;
    let data = assert_error(status, &body, 400, "Failed to create record.");
    assert_eq!(
        data["name"]["code"], "validation_max_text_constraint",
        "{data}"
    );
    let (status, body) = oauth2_login_with(
        &app,
        "ann",
        json!({"name": "Ann", "password": "annpass123"}),
    )
    .await;
    let data = assert_error(status, &body, 400, "Failed to create record.");
    assert_eq!(
        data["passwordConfirm"]["code"], "validation_required",
        "{data}"
    );
    let (status, body) = oauth2_login_with(&app, "ann", json!({"name": "Ann"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["name"], "Ann");
    assert_eq!(body["record"]["email"], "ann@oidc.test");
    assert_eq!(
        body["record"]["verified"], true,
        "the provider vouches for it"
    );
    assert_eq!(body["meta"]["isNew"], true);
    assert_eq!(body["meta"]["avatarUrl"], "", "the legacy key is there too");
    // Nothing was left behind by the refused attempts.
    let (status, list) = app.get(&format!("{USERS}/records"), Some(&admin)).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["totalItems"], 1, "{list}");
    // The same rule refuses an ordinary sign-up: its context is "default".
    let (status, body) = app
        .post_json(
            &format!("{USERS}/records"),
            None,
            json!({"email": "direct@example.com", "name": "Direct",
                   "password": "directpass1", "passwordConfirm": "directpass1"}),
        )
        .await;
    assert_error(status, &body, 400, "Failed to create record.");

    // With the name mapped, createData still wins over the provider's value.
    enable_oidc(
        &app,
        &admin,
        &provider,
        json!({"createRule": "", "oauth2": {"mappedFields": {"name": "name"}}}),
    )
    .await;
    let (status, body) = oauth2_login_with(&app, "ben", json!({"name": "Benjamin"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["name"], "Benjamin");
    // A createData email other than the provider's is taken, but not as verified.
    let (status, body) =
        oauth2_login_with(&app, "cleo", json!({"email": "other@example.com"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["email"], "other@example.com");
    assert_eq!(body["record"]["verified"], false);
    assert_eq!(
        body["record"]["name"], "User cleo",
        "mapped from the provider"
    );
}

const APPLE_CLIENT_ID: &str = "com.plinth.test";

/// The Apple stand-in (`apple_provider.mjs`, Node's standard library only) on a free port.
struct AppleProvider {
    base: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for AppleProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl AppleProvider {
    fn start() -> AppleProvider {
        let dir = tempfile::tempdir().expect("temp dir");
        let script = dir.path().join("apple_provider.mjs");
        std::fs::write(&script, include_str!("apple_provider.mjs")).expect("writes the script");
        let mut child = Command::new("node")
            .arg(&script)
            .arg(APPLE_CLIENT_ID)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node starts (Node.js is needed for the OAuth2 tests)");
        let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        reader.read_line(&mut line).expect("reads");
        let base = line
            .trim()
            .strip_prefix("APPLE ready ")
            .unwrap_or_else(|| panic!("provider did not start: {line}"))
            .to_owned();
        AppleProvider {
            base,
            child,
            _dir: dir,
        }
    }
}

#[tokio::test]
async fn apple_sign_in_trusts_only_id_tokens_signed_by_the_key_set() {
    let apple = AppleProvider::start();
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.patch_json(
        "/api/settings",
        Some(&admin),
        json!({"rateLimits": {"enabled": false}}),
    )
    .await;
    let (status, body) = app
        .patch_json(
            USERS,
            Some(&admin),
            json!({"oauth2": {"enabled": true, "providers": [{
                "name": "apple", "clientId": APPLE_CLIENT_ID, "clientSecret": "client-secret-jwt",
                "tokenURL": format!("{}/auth/token", apple.base),
                "userInfoURL": format!("{}/auth/keys", apple.base)}]}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let entry = provider_entry(&app).await;
    assert_eq!(entry["name"], "apple");
    assert_eq!(entry["displayName"], "Apple");
    let url = entry["authURL"].as_str().expect("authURL");
    // PocketBase's Apple URL: form_post (Apple posts the code back) and the name/email scopes.
    assert!(
        url.starts_with(
            "https://appleid.apple.com/auth/authorize?client_id=com.plinth.test&code_challenge="
        ),
        "{url}"
    );
    assert!(
        url.contains("&code_challenge_method=S256&response_mode=form_post&response_type=code&scope=name+email&state="),
        "{url}"
    );
    let sign_in = |code: String| {
        let app = &app;
        let verifier = entry["codeVerifier"].clone();
        async move {
            app.post_json(
                &format!("{USERS}/auth-with-oauth2"),
                None,
                json!({"provider": "apple", "code": code, "codeVerifier": verifier,
                       "redirectURL": REDIRECT}),
            )
            .await
        }
    };
    for kind in ["expired", "audience", "issuer", "forged", "none"] {
        let (status, body) = sign_in(format!("{kind}:mallory")).await;
        assert_eq!(status, 400, "{kind}: {body}");
        assert_eq!(body["message"], "Failed to fetch OAuth2 user.", "{kind}");
    }
    let (status, list) = app.get(&format!("{USERS}/records"), Some(&admin)).await;
    assert_eq!(status, 200);
    assert_eq!(list["totalItems"], 0, "no account from a bad token: {list}");

    let (status, body) = sign_in("ok:alice".into()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["email"], "alice@apple.test");
    assert_eq!(
        body["record"]["verified"], true,
        "Apple's \"true\" string counts as verified"
    );
    assert_eq!(body["meta"]["id"], "apple-alice");
    assert_eq!(body["meta"]["isNew"], true);
    assert_eq!(body["meta"]["accessToken"], "access-alice");
    assert_eq!(body["meta"]["refreshToken"], "refresh-alice");
    assert_eq!(body["meta"]["rawUser"]["iss"], "https://appleid.apple.com");
    assert_eq!(body["meta"]["rawUser"]["aud"], APPLE_CLIENT_ID);
    let id = body["record"]["id"].clone();
    let (status, body) = sign_in("ok:alice".into()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["id"], id, "the link finds the same record");
    assert_eq!(body["meta"]["isNew"], false);
}

/// A minimal realtime client: the SSE stream and its client id.
struct Sse {
    response: reqwest::Response,
    buffer: String,
    client_id: String,
}

impl Sse {
    async fn connect(app: &TestApp) -> Sse {
        let response = reqwest::Client::new()
            .get(app.url("/api/realtime"))
            .send()
            .await
            .expect("stream opens");
        assert_eq!(response.status(), 200);
        let mut sse = Sse {
            response,
            buffer: String::new(),
            client_id: String::new(),
        };
        let (event, data) = sse.next().await.expect("PB_CONNECT");
        assert_eq!(event, "PB_CONNECT");
        sse.client_id = data["clientId"].as_str().expect("client id").to_owned();
        sse
    }

    /// The next message's event and data, or `None` after two seconds of silence.
    async fn next(&mut self) -> Option<(String, Value)> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let raw = self.buffer[..end].to_owned();
                self.buffer.drain(..end + 2);
                let line = |prefix: &str| {
                    raw.split('\n')
                        .find_map(|l| l.strip_prefix(prefix))
                        .unwrap_or("")
                        .to_owned()
                };
                let data = serde_json::from_str(&line("data:")).expect("data is JSON");
                return Some((line("event:"), data));
            }
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                _ => return None,
            }
        }
    }
}

const SUCCESS_PAGE: &str = "../_/#/auth/oauth2-redirect-success";
const FAILURE_PAGE: &str = "../_/#/auth/oauth2-redirect-failure";

/// Sends the browser's request to the redirect endpoint: (status, Location).
async fn redirect(app: &TestApp, method: &str, query: &str, form: Option<&str>) -> (u16, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let url = app.url(&format!("/api/oauth2-redirect{query}"));
    let request = match form {
        Some(form) if method == "POST" => client
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_owned()),
        _ if method == "POST" => client.post(&url),
        _ => client.get(&url),
    };
    let response = request.send().await.expect("answers");
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (response.status().as_u16(), location)
}

#[tokio::test]
async fn oauth2_redirect_without_a_waiting_client_lands_on_the_failure_page() {
    let app = TestApp::spawn().await;
    assert_eq!(
        redirect(&app, "GET", "", None).await,
        (307, FAILURE_PAGE.to_owned())
    );
    assert_eq!(
        redirect(&app, "GET", "?state=nobody&code=abc", None).await,
        (307, FAILURE_PAGE.to_owned())
    );
    assert_eq!(
        redirect(&app, "POST", "", Some("state=nobody&code=abc")).await,
        (303, FAILURE_PAGE.to_owned()),
        "a form post (Apple) is answered with 303"
    );
    // A connected client that did not subscribe to @oauth2 is not told anything.
    let mut sse = Sse::connect(&app).await;
    let state = format!("?state={}&code=abc", sse.client_id);
    assert_eq!(
        redirect(&app, "GET", &state, None).await,
        (307, FAILURE_PAGE.to_owned())
    );
    assert_eq!(sse.next().await, None);
}

#[tokio::test]
async fn oauth2_redirect_relays_the_code_to_the_subscribed_client_once() {
    let app = TestApp::spawn().await;
    let mut sse = Sse::connect(&app).await;
    let (status, body) = app
        .post_json(
            "/api/realtime",
            None,
            json!({"clientId": sse.client_id, "subscriptions": ["@oauth2"]}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let id = sse.client_id.clone();
    let query = format!("?state={id}&code=abc123&extra=1");
    assert_eq!(
        redirect(&app, "GET", &query, None).await,
        (307, SUCCESS_PAGE.to_owned())
    );
    assert_eq!(
        sse.next().await,
        Some(("@oauth2".to_owned(), json!({"state": id, "code": "abc123"})))
    );
    // The subscription is used up: the same state relays nothing more.
    assert_eq!(
        redirect(&app, "GET", &query, None).await,
        (307, FAILURE_PAGE.to_owned())
    );
    assert_eq!(sse.next().await, None);

    // A provider error reaches the client (so the SDK stops waiting), the browser fails.
    app.post_json(
        "/api/realtime",
        None,
        json!({"clientId": id, "subscriptions": ["@oauth2"]}),
    )
    .await;
    let form = format!("state={id}&error=access_denied");
    assert_eq!(
        redirect(&app, "POST", "", Some(&form)).await,
        (303, FAILURE_PAGE.to_owned())
    );
    assert_eq!(
        sse.next().await,
        Some((
            "@oauth2".to_owned(),
            json!({"state": id, "code": "", "error": "access_denied"})
        ))
    );
}

/// `mappedFields.avatarURL`: the provider's picture is downloaded into the file field, as
/// PocketBase does, and served back like any upload.
#[tokio::test]
async fn oauth2_sign_up_stores_the_provider_picture() {
    let provider = OidcProvider::start();
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    enable_oidc(
        &app,
        &admin,
        &provider,
        json!({"oauth2": {"mappedFields": {"avatarURL": "avatar"}}}),
    )
    .await;
    let (status, body) = oauth2_login(&app, "pic-ada").await;
    assert_eq!(status, 200, "{body}");
    let picture = body["meta"]["avatarURL"].as_str().expect("avatarURL");
    assert!(picture.ends_with("/pictures/pic-ada.png"), "{picture}");
    let stored = body["record"]["avatar"]
        .as_str()
        .expect("avatar")
        .to_owned();
    assert!(
        stored.starts_with("pic_ada_") && stored.ends_with(".png"),
        "{stored}"
    );
    let id = body["record"]["id"].as_str().expect("id");
    let token = body["token"].as_str().expect("token");
    let served = reqwest::Client::new()
        .get(app.url(&format!("/api/files/users/{id}/{stored}")))
        .header("Authorization", token)
        .send()
        .await
        .expect("download");
    assert_eq!(served.status(), 200);
    let bytes = served.bytes().await.expect("bytes");
    assert!(bytes.starts_with(b"\x89PNG"), "a PNG was stored");

    // Without a picture the field stays empty.
    let (status, body) = oauth2_login(&app, "plain-bob").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["avatar"], "");
}

/// Deleting an auth record removes its OAuth2 links (and the other auth bookkeeping rows), as
/// PocketBase does, so the same provider identity can sign up again.
#[tokio::test]
async fn deleted_users_can_sign_up_again_with_the_same_provider_identity() {
    let provider = OidcProvider::start();
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    enable_oidc(&app, &admin, &provider, json!({})).await;
    let (status, first) = oauth2_login(&app, "returning").await;
    assert_eq!(status, 200, "{first}");
    let id = first["record"]["id"].as_str().expect("id").to_owned();
    // `recordRef='<id>'`, percent-encoded (ids are [a-z0-9]).
    let path = format!("/api/collections/_externalAuths/records?filter=recordRef%3D%27{id}%27");
    let (_, links) = app.get(&path, Some(&admin)).await;
    assert_eq!(links["totalItems"], 1, "{links}");
    let (status, _) = app
        .delete(&format!("{USERS}/records/{id}"), Some(&admin))
        .await;
    assert_eq!(status, 204);
    let (_, links) = app.get(&path, Some(&admin)).await;
    assert_eq!(
        links["totalItems"], 0,
        "the link went with the user: {links}"
    );
    let (status, again) = oauth2_login(&app, "returning").await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["meta"]["isNew"], true);
    assert_ne!(again["record"]["id"], first["record"]["id"]);
}
