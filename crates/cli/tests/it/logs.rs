//! Request logs end to end: requests appear in `/api/logs` in PocketBase's shape, filter and
//! stats work on `data.*`, the settings (`maxDays`, `minLevel`, `logIP`, `logAuthId`) apply,
//! and only superusers reach the API.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Launch, TestApp, assert_error};

/// Polls `GET /api/logs?filter=…` until it lists at least `count` entries (bounded).
async fn wait_for(app: &TestApp, token: &str, filter: &str, count: u64) -> Value {
    let path = format!("/api/logs?perPage=200&filter={}", encode(filter));
    for _ in 0..200 {
        let (status, body) = app.get(&path, Some(token)).await;
        assert_eq!(status, 200, "{body}");
        if body["totalItems"].as_u64().unwrap_or(0) >= count {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {count} log entries matched {filter}");
}

fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

async fn get_with_agent(app: &TestApp, path: &str, agent: &str, token: Option<&str>) -> u16 {
    let mut request = app
        .client
        .get(app.url(path))
        .header("User-Agent", agent)
        .header("Referer", "http://example.com/from");
    if let Some(token) = token {
        request = request.header("Authorization", token);
    }
    request.send().await.expect("sent").status().as_u16()
}

async fn set_logs(app: &TestApp, token: &str, logs: Value) {
    let (status, body) = app
        .patch_json("/api/settings", Some(token), json!({ "logs": logs }))
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn requests_are_logged_in_pocketbase_shape_and_can_be_filtered() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    assert_eq!(
        get_with_agent(&app, "/api/health", "agent-1", None).await,
        200
    );
    let bad_json = app
        .client
        .post(app.url("/api/collections/users/records"))
        .header("Content-Type", "application/json")
        .header("User-Agent", "agent-1")
        .body("{bad")
        .send()
        .await
        .expect("sent");
    assert_eq!(bad_json.status().as_u16(), 400);

    let body = wait_for(&app, &token, "data.userAgent = 'agent-1'", 2).await;
    let items = body["items"].as_array().expect("items");
    let health = &items[0];
    assert_eq!(health["message"], "GET /api/health");
    assert_eq!(health["level"], 0);
    assert_eq!(health["id"].as_str().map(str::len), Some(15));
    assert!(
        health["created"]
            .as_str()
            .is_some_and(|c| c.ends_with('Z') && c.len() == 24),
        "{health}"
    );
    let data = &health["data"];
    assert_eq!(data["type"], "request");
    assert_eq!(data["method"], "GET");
    assert_eq!(data["url"], "/api/health");
    assert_eq!(data["status"], 200);
    assert_eq!(data["auth"], "");
    assert_eq!(data["referer"], "http://example.com/from");
    assert_eq!(data["remoteIP"], "127.0.0.1");
    assert_eq!(data["userIP"], "127.0.0.1");
    assert!(
        data["execTime"].as_f64().is_some_and(|t| t >= 0.0),
        "{data}"
    );
    assert!(
        data.get("error").is_none() && data.get("authId").is_none(),
        "{data}"
    );

    let error = &items[1];
    assert_eq!(error["message"], "POST /api/collections/users/records");
    assert_eq!(error["level"], 8);
    assert_eq!(error["data"]["status"], 400);
    assert_eq!(
        error["data"]["error"],
        "Something went wrong while processing your request."
    );
    assert!(error["data"]["details"].is_string(), "{error}");

    // A filter on a json path and a sort on one.
    let only_errors = wait_for(
        &app,
        &token,
        "data.status >= 400 && data.userAgent = 'agent-1'",
        1,
    )
    .await;
    assert_eq!(only_errors["totalItems"], 1);
    let (status, sorted) = app
        .get(
            "/api/logs?sort=-data.status&perPage=1&skipTotal=1",
            Some(&token),
        )
        .await;
    assert_eq!(status, 200, "{sorted}");
    assert_eq!(sorted["items"][0]["data"]["status"], 400);
    assert_eq!(sorted["totalItems"], -1);

    // perPage is capped at 1000, and a filter at 3500 bytes, as in PocketBase.
    let (_, capped) = app
        .get("/api/logs?perPage=5000&fields=id", Some(&token))
        .await;
    assert_eq!(capped["perPage"], 1000, "{capped}");
    let at_bound = format!("id='{}'", "a".repeat(3500 - 5));
    let (status, body) = app
        .get(
            &format!("/api/logs?filter={}", encode(&at_bound)),
            Some(&token),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let past_bound = format!("id='{}'", "a".repeat(3500 - 4));
    let (status, body) = app
        .get(
            &format!("/api/logs?filter={}", encode(&past_bound)),
            Some(&token),
        )
        .await;
    assert_error(
        status,
        &body,
        400,
        "Something went wrong while processing your request.",
    );

    // One entry by id; an unknown id and a bad filter or sort answer as PocketBase.
    let id = health["id"].as_str().expect("id");
    let (status, one) = app.get(&format!("/api/logs/{id}"), Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(&one, health);
    let (status, body) = app.get("/api/logs/nope", Some(&token)).await;
    assert_error(status, &body, 404, "The requested resource wasn't found.");
    for bad in [
        "/api/logs?filter=bad%3D%3D",
        "/api/logs?filter=nope%3D1",
        "/api/logs?sort=nope",
    ] {
        let (status, body) = app.get(bad, Some(&token)).await;
        assert_error(
            status,
            &body,
            400,
            "Something went wrong while processing your request.",
        );
    }
    let (status, body) = app.get("/api/logs/stats?filter=%28", Some(&token)).await;
    assert_error(status, &body, 400, "Invalid filter format.");
    // Refused requests are logged with their cause; the logs API's own successes are not.
    let refused = wait_for(
        &app,
        &token,
        "message ~ '/api/logs' && data.status = 400",
        4,
    )
    .await;
    assert_eq!(refused["items"][0]["data"]["auth"], "_superusers");
    assert!(refused["items"][0]["data"]["details"].is_string());
    let (_, successes) = app
        .get(
            "/api/logs?filter=data.status%3D200%26%26message~'%2Fapi%2Flogs'",
            Some(&token),
        )
        .await;
    assert_eq!(successes["totalItems"], 0, "{successes}");

    // Nor is the realtime stream (PocketBase leaves it out too).
    let stream = app
        .client
        .get(app.url("/api/realtime?logmark=stream"))
        .send()
        .await
        .expect("stream opens");
    assert_eq!(stream.status().as_u16(), 200);
    drop(stream);
    get_with_agent(&app, "/api/health?after-stream", "agent-1", None).await;
    wait_for(&app, &token, "data.url = '/api/health?after-stream'", 1).await;
    let (_, streams) = app
        .get("/api/logs?filter=data.url~'logmark%3Dstream'", Some(&token))
        .await;
    assert_eq!(streams["totalItems"], 0, "{streams}");

    // Hourly stats count what the list counts.
    let (_, all) = app.get("/api/logs?perPage=1", Some(&token)).await;
    let (status, stats) = app.get("/api/logs/stats", Some(&token)).await;
    assert_eq!(status, 200, "{stats}");
    let buckets = stats.as_array().expect("buckets");
    let total: u64 = buckets
        .iter()
        .map(|b| b["total"].as_u64().unwrap_or(0))
        .sum();
    assert!(
        total >= all["totalItems"].as_u64().unwrap_or(0),
        "{stats} vs {all}"
    );
    assert!(
        buckets.iter().all(|b| b["date"]
            .as_str()
            .is_some_and(|d| d.ends_with(":00:00.000Z"))),
        "{stats}"
    );
    let (_, errors_only) = app
        .get("/api/logs/stats?filter=data.status%3E%3D400", Some(&token))
        .await;
    let error_total: u64 = errors_only
        .as_array()
        .expect("buckets")
        .iter()
        .map(|b| b["total"].as_u64().unwrap_or(0))
        .sum();
    assert!(error_total >= 5 && error_total < total, "{errors_only}");

    // Deleting every log.
    let (status, _) = app.delete("/api/logs", Some(&token)).await;
    assert_eq!(status, 204);
    let (_, after) = app.get("/api/logs", Some(&token)).await;
    assert_eq!(after["totalItems"], 0, "{after}");
    assert!(app.dir.path().join("auxiliary.db").exists());
}

#[tokio::test]
async fn only_superusers_read_or_delete_logs() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let (status, _) = app
        .post_json(
            "/api/collections/users/records",
            Some(&token),
            json!({"email": "u@example.com", "password": "Passw0rd!123", "passwordConfirm": "Passw0rd!123"}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, auth) = app
        .post_json(
            "/api/collections/users/auth-with-password",
            None,
            json!({"identity": "u@example.com", "password": "Passw0rd!123"}),
        )
        .await;
    let user = auth["token"].as_str().expect("user token").to_owned();
    for path in ["/api/logs", "/api/logs/stats", "/api/logs/abc"] {
        let (status, body) = app.get(path, None).await;
        assert_error(
            status,
            &body,
            401,
            "The request requires valid record authorization token.",
        );
        let (status, body) = app.get(path, Some(&user)).await;
        assert_error(
            status,
            &body,
            403,
            "The authorized record is not allowed to perform this action.",
        );
    }
    let (status, body) = app.delete("/api/logs", Some(&user)).await;
    assert_error(
        status,
        &body,
        403,
        "The authorized record is not allowed to perform this action.",
    );

    // The auth collection is recorded, and with `logAuthId` the record id too: whether the
    // handler resolved the token (records list) or not (health).
    set_logs(&app, &token, json!({"logAuthId": true})).await;
    let user_id = auth["record"]["id"].as_str().expect("id").to_owned();
    assert_eq!(
        get_with_agent(
            &app,
            "/api/collections/users/records",
            "as-user",
            Some(&user)
        )
        .await,
        200
    );
    assert_eq!(
        get_with_agent(&app, "/api/health", "as-user", Some(&user)).await,
        200
    );
    let body = wait_for(&app, &token, "data.userAgent = 'as-user'", 2).await;
    for item in body["items"].as_array().expect("items") {
        assert_eq!(item["data"]["auth"], "users", "{item}");
        assert_eq!(item["data"]["authId"], user_id.as_str(), "{item}");
    }
}

#[tokio::test]
async fn log_settings_apply() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;

    // maxDays = 0 turns logging off; entries are written in order, so once the later request
    // is listed the earlier one would be too.
    set_logs(&app, &token, json!({"maxDays": 0})).await;
    get_with_agent(&app, "/api/health", "while-off", None).await;
    set_logs(&app, &token, json!({"maxDays": 7})).await;
    get_with_agent(&app, "/api/health", "back-on", None).await;
    wait_for(&app, &token, "data.userAgent = 'back-on'", 1).await;
    let (_, off) = app
        .get(
            "/api/logs?filter=data.userAgent%3D'while-off'",
            Some(&token),
        )
        .await;
    assert_eq!(off["totalItems"], 0, "{off}");

    // minLevel 8 keeps only errors.
    set_logs(&app, &token, json!({"minLevel": 8})).await;
    get_with_agent(&app, "/api/health", "info-level", None).await;
    get_with_agent(&app, "/api/nope", "error-level", None).await;
    let errors = wait_for(&app, &token, "data.userAgent = 'error-level'", 1).await;
    assert_eq!(errors["items"][0]["level"], 8);
    assert_eq!(errors["items"][0]["message"], "GET /api/nope");
    let (_, info) = app
        .get(
            "/api/logs?filter=data.userAgent%3D'info-level'",
            Some(&token),
        )
        .await;
    assert_eq!(info["totalItems"], 0, "{info}");

    // logIP = false leaves the IPs out.
    set_logs(&app, &token, json!({"minLevel": 0, "logIP": false})).await;
    get_with_agent(&app, "/api/health", "no-ip", None).await;
    let body = wait_for(&app, &token, "data.userAgent = 'no-ip'", 1).await;
    let data = &body["items"][0]["data"];
    assert!(
        data.get("remoteIP").is_none() && data.get("userIP").is_none(),
        "{data}"
    );
    assert_eq!(data["status"], 200);

    // maxDataSize bounds `data`: a long user agent is cut and the entry marked.
    set_logs(&app, &token, json!({"logIP": true, "maxDataSize": 600})).await;
    let long_agent = format!("long-{}", "x".repeat(2000));
    get_with_agent(&app, "/api/health", &long_agent, None).await;
    let body = wait_for(&app, &token, "data.__pb_truncated__ = true", 1).await;
    let data = &body["items"][0]["data"];
    assert!(data.to_string().len() <= 600, "{data}");
    assert!(
        data["userAgent"]
            .as_str()
            .is_some_and(|a| a.starts_with("long-")),
        "{data}"
    );

    // The retention job is listed and runs.
    let (_, crons) = app.get("/api/crons", Some(&token)).await;
    assert!(
        crons
            .as_array()
            .expect("jobs")
            .contains(&json!({"id": "__pbLogsCleanup__", "expression": "0 */6 * * *"})),
        "{crons}"
    );
    let (status, _) = app
        .post_json("/api/crons/__pbLogsCleanup__", Some(&token), json!({}))
        .await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn a_hook_logger_writes_to_the_logs() {
    let hooks = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        hooks.path().join("main.pb.js"),
        r#"routerAdd("GET", "/logtest", (e) => {
  $app.logger().debug("below the default minLevel");
  $app.logger().info("hello from a hook", "k", 1, "s", "x");
  $app.logger().with("a", true).warn("warned", "odd");
  return e.json(200, {});
});"#,
    )
    .expect("hook written");
    let app = TestApp::spawn_launch(&Launch {
        args: vec![format!("--hooksDir={}", hooks.path().display())],
        ..Launch::default()
    })
    .await;
    let token = app.admin_token().await;
    let (status, _) = app.get("/logtest", None).await;
    assert_eq!(status, 200);
    // Entries are written in order: once the last is listed, the others were handled.
    let body = wait_for(&app, &token, "message = 'warned'", 1).await;
    let (_, hello) = app
        .get(
            "/api/logs?filter=message%3D'hello%20from%20a%20hook'",
            Some(&token),
        )
        .await;
    assert_eq!(hello["items"][0]["data"], json!({"k": 1, "s": "x"}));
    assert_eq!(hello["items"][0]["level"], 0);
    assert_eq!(
        body["items"][0]["data"],
        json!({"!BADKEY": "odd", "a": true})
    );
    assert_eq!(body["items"][0]["level"], 4);
    let (_, debug) = app.get("/api/logs?filter=level%3D-4", Some(&token)).await;
    assert_eq!(debug["totalItems"], 0, "{debug}");
}

/// `--dev` prints each request, and the cause of an error answer, on standard output.
#[tokio::test]
async fn dev_mode_prints_requests_and_the_cause_of_errors() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(crate::support::plinth_bin())
        .args(["serve", "--http=127.0.0.1:0", "--dev"])
        .arg(format!("--dir={}", dir.path().display()))
        .arg(format!(
            "--hooksDir={}",
            dir.path().join("pb_hooks").display()
        ))
        .arg(format!(
            "--migrationsDir={}",
            dir.path().join("pb_migrations").display()
        ))
        .env("PLINTH_INSECURE_TEST_HASHING", "1")
        .env("PLINTH_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let stdout = child.stdout.take().expect("stdout");
    // Killed however the test ends.
    struct Server(std::process::Child);
    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let server = Server(child);
    let (lines, received) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let next_line = || {
        received
            .recv_timeout(Duration::from_secs(20))
            .expect("a line in time")
    };
    let base = loop {
        let line = next_line();
        if let Some(rest) = line.trim().strip_prefix("Server started at ") {
            break rest.to_owned();
        }
    };
    let client = reqwest::Client::new();
    client
        .get(format!("{base}/api/health"))
        .send()
        .await
        .expect("sent");
    client
        .post(format!("{base}/api/collections/users/records"))
        .header("Content-Type", "application/json")
        .body("{bad json")
        .send()
        .await
        .expect("sent");
    let mut printed = Vec::new();
    while !printed
        .iter()
        .any(|l: &String| l.contains("not valid JSON"))
    {
        printed.push(next_line());
    }
    drop(server);
    let text = printed.join("\n");
    assert!(text.contains("GET /api/health 200"), "{text}");
    assert!(
        text.contains("POST /api/collections/users/records 400"),
        "{text}"
    );
    assert!(
        text.contains("Something went wrong while processing your request. (the request body is not valid JSON"),
        "{text}"
    );
}

#[tokio::test]
async fn static_file_successes_are_left_out_and_their_failures_logged() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    std::fs::create_dir_all(app.dir.path().join("pb_public")).expect("public dir");
    std::fs::write(app.dir.path().join("pb_public/hello.txt"), "hi").expect("file");
    for (path, status) in [
        ("/hello.txt?marker=static", 200),
        ("/_/?marker=static", 200),
        ("/_/assets/missing.js?marker=static", 404),
        ("/api/health?marker=static", 200),
    ] {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let got = client.get(app.url(path)).send().await.expect("sent");
        assert_eq!(got.status().as_u16(), status, "{path}");
    }
    // The health check and the missing dashboard file are logged; the two files served are not
    // (the writer is flushed by the time the later entry shows).
    let body = wait_for(&app, &token, "data.url ~ 'marker=static'", 2).await;
    let mut urls: Vec<&str> = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|item| item["data"]["url"].as_str())
        .collect();
    urls.sort_unstable();
    assert_eq!(
        urls,
        [
            "/_/assets/missing.js?marker=static",
            "/api/health?marker=static"
        ]
    );
}
