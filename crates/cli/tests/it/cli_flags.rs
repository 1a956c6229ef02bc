//! PocketBase's `serve` flags, each checked through the real binary: the public directory and
//! its single-page-app fallback (as PocketBase 0.40.6 answers, observed side by side), CORS
//! origins, the `:port` listen form, settings encrypted at rest, and the flags that refuse to
//! start rather than be ignored.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::support::{self, Launch, TestApp, assert_error, run_cli};

/// A public folder: `index.html`, a text file, a stylesheet, a folder with its own index, an
/// empty folder, and a secret file beside (not inside) the folder.
fn public_dir(root: &Path) -> std::path::PathBuf {
    let public = root.join("site");
    std::fs::create_dir_all(public.join("sub")).expect("mkdir");
    std::fs::create_dir_all(public.join("assets")).expect("mkdir");
    std::fs::create_dir_all(public.join("empty")).expect("mkdir");
    std::fs::write(public.join("index.html"), "<h1>index</h1>\n").expect("write");
    std::fs::write(public.join("hello.txt"), "hello\n").expect("write");
    std::fs::write(public.join("assets/app.css"), "body{}\n").expect("write");
    std::fs::write(public.join("sub/index.html"), "<p>sub</p>\n").expect("write");
    std::fs::write(root.join("secret.txt"), "SECRET\n").expect("write");
    public
}

async fn spawn_public(extra: &[&str]) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let public = public_dir(dir.path());
    let mut args = vec![format!("--publicDir={}", public.display())];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    TestApp::spawn_with(
        dir,
        &Launch {
            args,
            ..Launch::default()
        },
    )
}

/// A client that shows redirects instead of following them.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// `(status, headers, body)` of a GET sent byte for byte (reqwest would normalize `..` and
/// `%2e%2e` away before sending).
fn raw_get(app: &TestApp, path: &str) -> (u16, String, String) {
    raw_request(app, "GET", path, "")
}

/// `method path` as sent, byte for byte (an HTTP client would clean the path first), with
/// `headers` (each line ending in CRLF); answers the status, the lowercased head and the body.
fn raw_request(app: &TestApp, method: &str, path: &str, headers: &str) -> (u16, String, String) {
    let address = app.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("connects");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("writes");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("reads");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_owned())
}

#[tokio::test]
async fn the_public_dir_is_served_with_the_index_fallback() {
    let app = spawn_public(&[]).await;
    let client = no_redirects();
    let get = |path: &str| client.get(app.url(path)).send();

    let root = get("/").await.expect("get");
    assert_eq!(root.status(), 200);
    let headers = root.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["accept-ranges"], "bytes");
    assert!(headers.contains_key("last-modified"));
    assert_eq!(headers["x-frame-options"], "SAMEORIGIN");
    assert!(
        !headers.contains_key("cache-control"),
        "PocketBase sends none"
    );
    assert_eq!(root.text().await.expect("body"), "<h1>index</h1>\n");

    let css = get("/assets/app.css").await.expect("get");
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    let text = get("/hello.txt").await.expect("get");
    assert_eq!(text.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(text.text().await.expect("body"), "hello\n");

    // Canonical URLs, as PocketBase redirects them (301).
    for (path, location) in [
        ("/index.html", "/"),
        ("/sub", "/sub/"),
        ("/sub/index.html", "/sub/"),
        ("/hello.txt/", "/hello.txt"),
        ("/empty", "/empty/"),
    ] {
        let response = get(path).await.expect("get");
        assert_eq!(response.status(), 301, "{path}");
        assert_eq!(response.headers()["location"], location, "{path}");
    }
    let sub = get("/sub/").await.expect("get");
    assert_eq!(sub.text().await.expect("body"), "<p>sub</p>\n");

    // Missing paths answer the root index (a folder without one too); PocketBase has no
    // exception for /api/ here, only for the admin UI's /_/.
    for path in [
        "/missing",
        "/deep/app/route",
        "/assets/missing.css",
        "/empty/",
        "/api/nope",
    ] {
        let response = get(path).await.expect("get");
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            response.text().await.expect("body"),
            "<h1>index</h1>\n",
            "{path}"
        );
    }
    // `/_/` is the dashboard, never the public directory's fallback.
    let dashboard = get("/_/").await.expect("get");
    assert_eq!(dashboard.status(), 200);
    let page = dashboard.text().await.expect("body");
    assert!(page.contains("<div id=\"app\">"), "{page}");
    let (status, body) = app.get("/_/missing.js", None).await;
    assert_error(status, &body, 404, "File not found.");
    let (status, body) = app.post_json("/missing", None, json!({})).await;
    assert_error(status, &body, 404, "The requested resource wasn't found.");
    let (status, body) = app.get("/api/health", None).await;
    assert_eq!((status, &body["message"]), (200, &json!("API is healthy.")));

    // Ranges, HEAD and If-Modified-Since, as Go's file server answers them.
    let part = client
        .get(app.url("/hello.txt"))
        .header("Range", "bytes=1-2")
        .send()
        .await
        .expect("get");
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], "bytes 1-2/6");
    assert_eq!(part.text().await.expect("body"), "el");
    let head = client
        .head(app.url("/hello.txt"))
        .send()
        .await
        .expect("head");
    assert_eq!(head.headers()["content-length"], "6");
    let modified = head.headers()["last-modified"].clone();
    let cached = client
        .get(app.url("/hello.txt"))
        .header("If-Modified-Since", modified)
        .send()
        .await
        .expect("get");
    assert_eq!(cached.status(), 304);
}

#[tokio::test]
async fn paths_never_leave_the_public_dir() {
    let app = spawn_public(&[]).await;
    // Encoded climbs name no file: the SPA index answers, never the file beside the folder.
    for path in [
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/sub%2f..%2f..%2fsecret.txt",
        "/hello.txt%00",
    ] {
        let (status, _, body) = raw_get(&app, path);
        assert_eq!((status, body.as_str()), (200, "<h1>index</h1>\n"), "{path}");
    }
    // Raw `..`, `.` and `//` are cleaned by a 307 first, as Go's router does, and a `//host`
    // never becomes an off-site redirect.
    for (path, location) in [
        ("/../secret.txt", "/secret.txt"),
        ("/sub/../hello.txt", "/hello.txt"),
        ("//evil.example/x", "/evil.example/x"),
        ("/sub/./index.html?a=1", "/sub/index.html?a=1"),
    ] {
        let (status, head, _) = raw_get(&app, path);
        assert_eq!(status, 307, "{path}");
        assert!(
            head.contains(&format!("location: {location}\r\n")),
            "{path}: {head}"
        );
    }
    let (status, _, body) = raw_get(&app, "/secret.txt");
    assert_eq!((status, body.as_str()), (200, "<h1>index</h1>\n"));
}

/// Go's router redirects a path that is not clean before PocketBase sees the request, for
/// API routes and every method as for public files (observed on 0.40.6: `POST /api//batch`
/// is a 307 to `/api/batch`, with no CORS or security headers, even for a preflight).
#[tokio::test]
async fn unclean_paths_are_redirected_before_any_route_for_every_method() {
    let app = TestApp::spawn().await;
    let origin = "Origin: https://a.example\r\n";
    for (method, path, location) in [
        ("POST", "/api//batch?x=1", "/api/batch?x=1"),
        (
            "GET",
            "/api/collections//records",
            "/api/collections/records",
        ),
        (
            "PATCH",
            "/api/collections/users/./records/abc",
            "/api/collections/users/records/abc",
        ),
        (
            "DELETE",
            "/api/collections/x/../users/records/abc",
            "/api/collections/users/records/abc",
        ),
        ("OPTIONS", "//api/health", "/api/health"),
    ] {
        let (status, head, body) = raw_request(&app, method, path, origin);
        assert_eq!(status, 307, "{method} {path}: {head}");
        assert!(
            head.contains(&format!("location: {location}\r\n")),
            "{method} {path}: {head}"
        );
        for absent in ["access-control-allow-origin", "x-frame-options", "vary"] {
            assert!(!head.contains(absent), "{method} {path}: {head}");
        }
        if method == "GET" {
            assert!(
                head.contains("content-type: text/html; charset=utf-8"),
                "{head}"
            );
            assert!(body.contains("Temporary Redirect"), "{body}");
        } else {
            assert!(!head.contains("content-type"), "{method} {path}: {head}");
            assert_eq!(body, "", "{method} {path}");
        }
    }
    // The clean paths are served as ever.
    let (status, head, _) = raw_request(&app, "GET", "/api/health", origin);
    assert_eq!(status, 200, "{head}");
    let (status, _, body) = raw_request(&app, "POST", "/api/batch", "");
    assert!(
        body.contains("Batch requests are not allowed."),
        "{status} {body}"
    );
}

/// Targets as clients send them unencoded, which Go's server (so PocketBase) accepts and the
/// `http` crate refuses: `>`, `<` and `"` in a filter, `#` as part of the path. On a
/// connection's first request they are read as Go reads them (`server::request_line`).
#[tokio::test]
async fn raw_filter_characters_in_a_target_are_read_as_pocketbase_reads_them() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (status, body) = app
        .post_json(
            "/api/collections",
            Some(&admin),
            json!({"name": "posts", "type": "base", "listRule": "",
                   "fields": [{"name": "title", "type": "text"}, {"name": "n", "type": "number"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for (title, n) in [("a", 1), ("b", 2), ("c", 3)] {
        let (status, body) = app
            .post_json(
                "/api/collections/posts/records",
                Some(&admin),
                json!({"title": title, "n": n}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let titles = |path: &str| {
        let (status, head, body) = raw_request(&app, "GET", path, "");
        assert_eq!(status, 200, "{path}: {head}");
        let body: serde_json::Value = serde_json::from_str(&body).expect("json");
        body["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|item| item["title"].as_str().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    let list = "/api/collections/posts/records?sort=title&fields=title&filter=";
    assert_eq!(titles(&format!("{list}n>1")), ["b", "c"]);
    assert_eq!(titles(&format!("{list}n<2")), ["a"]);
    assert_eq!(titles(&format!("{list}title=\"b\"")), ["b"]);
    assert_eq!(titles(&format!("{list}n>=2%26%26title!=\"c\"")), ["b"]);
    // Go reads no fragment in a request target: `#…` is part of the path.
    let (status, _, body) = raw_request(&app, "GET", "/api/health#x", "");
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn without_the_index_fallback_missing_files_are_404s() {
    let app = spawn_public(&["--indexFallback=false"]).await;
    for path in ["/missing", "/empty/", "/api/nope"] {
        let (status, body) = app.get(path, None).await;
        assert_error(status, &body, 404, "File not found.");
    }
    let root = app.client.get(app.url("/")).send().await.expect("get");
    assert_eq!(root.text().await.expect("body"), "<h1>index</h1>\n");
}

#[tokio::test]
async fn cors_answers_only_the_configured_origins() {
    let app = TestApp::spawn_launch(&Launch {
        args: vec!["--origins=https://a.example,https://*.b.example".into()],
        ..Launch::default()
    })
    .await;
    let simple = |origin: &'static str| {
        app.client
            .get(app.url("/api/health"))
            .header("Origin", origin)
            .send()
    };
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/health"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "PATCH")
            .header("Access-Control-Request-Headers", "authorization,x-foo")
            .send()
    };
    for allowed in ["https://a.example", "https://x.b.example"] {
        let response = simple(allowed).await.expect("get");
        assert_eq!(response.headers()["access-control-allow-origin"], allowed);
        assert_eq!(response.headers()["vary"], "Origin");
        let response = preflight(allowed).await.expect("options");
        assert_eq!(response.status(), 204);
        let headers = response.headers();
        assert_eq!(headers["access-control-allow-origin"], allowed);
        assert_eq!(
            headers["access-control-allow-methods"],
            "GET,HEAD,PUT,PATCH,POST,DELETE"
        );
        assert_eq!(
            headers["access-control-allow-headers"],
            "authorization,x-foo"
        );
        let vary: Vec<_> = headers.get_all("vary").iter().collect();
        assert_eq!(
            vary,
            [
                "Origin",
                "Access-Control-Request-Method",
                "Access-Control-Request-Headers"
            ]
        );
    }
    // A wrong method is PocketBase's 404, without axum's `Allow` header.
    let wrong = app
        .client
        .delete(app.url("/api/health"))
        .send()
        .await
        .expect("delete");
    assert_eq!(wrong.status(), 404);
    assert!(!wrong.headers().contains_key("allow"));
    for refused in ["https://c.example", "http://a.example", "https://b.example"] {
        let response = simple(refused).await.expect("get");
        assert_eq!(response.status(), 200, "the request itself still runs");
        assert!(
            !response
                .headers()
                .contains_key("access-control-allow-origin")
        );
        let response = preflight(refused).await.expect("options");
        assert_eq!(response.status(), 204);
        assert!(
            !response
                .headers()
                .contains_key("access-control-allow-origin")
        );
        assert!(
            !response
                .headers()
                .contains_key("access-control-allow-methods")
        );
        assert_eq!(response.headers()["vary"], "Origin");
    }
}

#[tokio::test]
async fn an_empty_host_listens_on_every_interface() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, started) = support::serve_raw(dir.path(), &[&format!("--http=:{port}")], &[]);
    let answer = reqwest::get(format!("http://127.0.0.1:{port}/api/health")).await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(started.ends_with(&format!(":{port}")), "{started}");
    assert!(
        !started.contains("127.0.0.1"),
        "not loopback only: {started}"
    );
    assert_eq!(answer.expect("reachable over IPv4").status(), 200);
}

const KEY: &str = "0123456789abcdef0123456789abcdef";

/// The raw `settings` value stored in `_params`.
fn stored_settings(data_dir: &Path) -> String {
    let conn = rusqlite::Connection::open(data_dir.join("data.db")).expect("opens");
    conn.query_row(
        "SELECT value FROM _params WHERE id = 'settings'",
        [],
        |row| row.get(0),
    )
    .expect("a settings row")
}

#[tokio::test]
async fn settings_are_encrypted_at_rest_with_the_named_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("pb_data");
    let (code, _, stderr) = run_cli(
        &data,
        &[
            "superuser",
            "upsert",
            support::ADMIN_EMAIL,
            support::ADMIN_PASSWORD,
        ],
    );
    assert_eq!(code, 0, "{stderr}");

    // A plain start saves plain settings; the next start with a key re-saves them encrypted.
    let (mut child, started) = support::serve_raw(dir.path(), &["--http=127.0.0.1:0"], &[]);
    assert!(!started.is_empty(), "a plain start");
    let base = started.trim_start_matches("Server started at ").to_owned();
    let client = reqwest::Client::new();
    let login = client
        .post(format!(
            "{base}/api/collections/_superusers/auth-with-password"
        ))
        .json(&json!({"identity": support::ADMIN_EMAIL, "password": support::ADMIN_PASSWORD}))
        .send()
        .await
        .expect("login")
        .json::<serde_json::Value>()
        .await
        .expect("json");
    let token = login["token"].as_str().expect("token").to_owned();
    let saved = client
        .patch(format!("{base}/api/settings"))
        .header("Authorization", &token)
        .json(&json!({"meta": {"appName": "Sealed app"}}))
        .send()
        .await
        .expect("patch");
    assert_eq!(saved.status(), 200);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        stored_settings(&data).contains("Sealed app"),
        "plain so far"
    );

    let env = [("PLINTH_TEST_SETTINGS_KEY", KEY)];
    let (mut child, started) = support::serve_raw(
        dir.path(),
        &[
            "--http=127.0.0.1:0",
            "--encryptionEnv=PLINTH_TEST_SETTINGS_KEY",
        ],
        &env,
    );
    let base = started.trim_start_matches("Server started at ").to_owned();
    assert!(!base.is_empty(), "starts with the key");
    let read = client
        .get(format!("{base}/api/settings"))
        .header("Authorization", &token)
        .send()
        .await
        .expect("get")
        .json::<serde_json::Value>()
        .await
        .expect("json");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(read["meta"]["appName"], "Sealed app");
    let sealed = stored_settings(&data);
    assert!(
        !sealed.contains("Sealed app") && !sealed.starts_with('{'),
        "{sealed}"
    );
    // PocketBase's format: base64(nonce ‖ AES-256-GCM), opened with the key's bytes.
    let key = server::state::EncryptionKey::from_text(KEY).expect("key");
    let plain = server::settings::encryption::decrypt(&key, &sealed).expect("opens");
    let plain: serde_json::Value = serde_json::from_slice(&plain).expect("JSON");
    assert_eq!(plain["meta"]["appName"], "Sealed app");

    // Without the key, or with another one, the encrypted settings refuse to load.
    let (code, _, stderr) = run_cli(&data, &["serve", "--http=127.0.0.1:0"]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("encrypted") && stderr.contains("--encryptionEnv"),
        "{stderr}"
    );
    let output = Command::new(support::plinth_bin())
        .args([
            "serve",
            "--http=127.0.0.1:0",
            "--encryptionEnv=PLINTH_TEST_SETTINGS_KEY",
        ])
        .arg(format!("--dir={}", data.display()))
        .env("PLINTH_TEST_SETTINGS_KEY", "x".repeat(32))
        .output()
        .expect("runs");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("cannot be decrypted"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_missing_or_short_key_refuses_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, _, stderr) = run_cli(
        dir.path(),
        &[
            "serve",
            "--http=127.0.0.1:0",
            "--encryptionEnv=PLINTH_TEST_UNSET_KEY_VAR",
        ],
    );
    assert_ne!(code, 0);
    assert!(
        stderr.contains("PLINTH_TEST_UNSET_KEY_VAR") && stderr.contains("not set"),
        "{stderr}"
    );
    let output = Command::new(support::plinth_bin())
        .args([
            "serve",
            "--http=127.0.0.1:0",
            "--encryptionEnv=PLINTH_TEST_SHORT_KEY",
        ])
        .arg(format!("--dir={}", dir.path().display()))
        .env("PLINTH_TEST_SHORT_KEY", "short")
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("exactly 32"), "{stderr}");
}

#[test]
fn pocketbase_flags_are_listed_in_the_help() {
    let output = Command::new(support::plinth_bin())
        .args(["serve", "--help"])
        .output()
        .expect("runs");
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--http",
        "--https",
        "--origins",
        "--dir",
        "--dev",
        "--automigrate",
        "--encryptionEnv",
        "--hooksDir",
        "--hooksPool",
        "--hooksWatch",
        "--indexFallback",
        "--migrationsDir",
        "--publicDir",
        "--queryTimeout",
        "[DOMAINS]",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}
