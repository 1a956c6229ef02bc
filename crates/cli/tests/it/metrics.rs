//! `GET /api/metrics` end to end: the page parses with the reference Prometheus text parser
//! (Python's `prometheus_client`), names follow Prometheus conventions, values move, and the
//! configured bearer secret opens it.

use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::{Launch, TestApp, assert_error};

const SECRET: &str = "scrape-me-please";

/// `GET /api/metrics` with `authorization`: status, content type and body.
pub(crate) async fn page(app: &TestApp, authorization: &str) -> (u16, String, String) {
    let response = app
        .client
        .get(app.url("/api/metrics"))
        .header("Authorization", authorization)
        .send()
        .await
        .expect("request sent");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, content_type, response.text().await.expect("body"))
}

/// Parses `text` with `prometheus_client`; returns `{family: {type, samples: [[name, labels,
/// value]...]}}`, or `None` when Python or the parser is not installed.
fn parse(text: &str) -> Option<Value> {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    out[family.name] = {"type": family.type, "samples": [[s.name, s.labels, s.value] for s in family.samples]}
print(json.dumps(out))
"#;
    let available = Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .status()
        .is_ok_and(|status| status.success());
    if !available {
        eprintln!(
            "SKIPPED the Prometheus parser check: python3 with prometheus_client is not installed (pip install prometheus_client)"
        );
        return None;
    }
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("page written");
    let output = child.wait_with_output().expect("parser finished");
    assert!(
        output.status.success(),
        "the Prometheus parser rejected the page: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(serde_json::from_slice(&output.stdout).expect("parser output"))
}

/// The sum of the samples named `sample` whose labels include `labels`.
fn sample(families: &Value, sample: &str, labels: &[(&str, &str)]) -> f64 {
    families
        .as_object()
        .expect("families")
        .values()
        .flat_map(|family| family["samples"].as_array().cloned().unwrap_or_default())
        .filter(|s| s[0] == sample)
        .filter(|s| labels.iter().all(|(k, v)| s[1][*k] == *v))
        .map(|s| s[2].as_f64().expect("value"))
        .sum()
}

#[tokio::test]
async fn the_page_parses_as_prometheus_text_and_its_values_move() {
    let launch = Launch {
        args: vec![format!("--metricsSecret={SECRET}")],
        ..Launch::default()
    };
    let app = TestApp::spawn_launch(&launch).await;
    let token = app.admin_token().await;

    let (status, _, body) = page(&app, "").await;
    let body: Value = serde_json::from_str(&body).expect("JSON error");
    assert_error(
        status,
        &body,
        401,
        "The request requires valid record authorization token.",
    );
    let (status, _, _) = page(&app, "Bearer not-the-secret").await;
    assert_eq!(status, 401);

    let (status, content_type, first) = page(&app, &format!("Bearer {SECRET}")).await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let Some(before) = parse(&first) else { return };

    for _ in 0..3 {
        assert_eq!(app.get("/api/health", None).await.0, 200);
    }
    assert_eq!(
        app.get(
            "/api/collections/users/records/nosuchrecord00",
            Some(&token)
        )
        .await
        .0,
        404
    );
    let (status, _, second) = page(&app, &token).await;
    assert_eq!(status, 200);
    let after = parse(&second).expect("parsed");

    let health = [
        ("method", "GET"),
        ("route", "/api/health"),
        ("status", "200"),
    ];
    assert_eq!(
        sample(&after, "plinth_http_requests_total", &health),
        sample(&before, "plinth_http_requests_total", &health) + 3.0,
        "{second}"
    );
    let record = [
        ("route", "/api/collections/{collection}/records/{id}"),
        ("status", "404"),
    ];
    assert_eq!(sample(&after, "plinth_http_requests_total", &record), 1.0);
    assert!(
        !second.contains("nosuchrecord00"),
        "raw paths never become labels"
    );
    assert!(
        sample(
            &after,
            "plinth_http_request_duration_seconds_count",
            &[("route", "/api/health")]
        ) >= 3.0
    );

    // Families and their types, named as Prometheus asks (`_total` counters, base units).
    let families = after.as_object().expect("families");
    for (name, kind) in [
        ("plinth_http_requests", "counter"),
        ("plinth_http_request_duration_seconds", "histogram"),
        ("plinth_store_job_seconds", "histogram"),
        ("plinth_backups", "counter"),
        ("plinth_realtime_clients", "gauge"),
        ("plinth_realtime_queued_messages", "gauge"),
        ("plinth_changelog_lag", "gauge"),
        ("plinth_store_queued_jobs", "gauge"),
        ("plinth_store_threads", "gauge"),
        ("plinth_logs_dropped", "counter"),
        ("plinth_backup_deferred_file_removals", "gauge"),
    ] {
        assert_eq!(
            families.get(name).map(|f| f["type"].clone()),
            Some(kind.into()),
            "{name}: {second}"
        );
    }
    assert_eq!(
        sample(&after, "plinth_store_threads", &[("queue", "writer")]),
        1.0
    );
    assert_eq!(
        sample(&after, "plinth_backups_total", &[("result", "success")]),
        0.0
    );
    assert!(
        sample(
            &after,
            "plinth_store_job_seconds_count",
            &[("lane", "writer")]
        ) >= 1.0
    );

    // A cron run by hand is counted once it finished.
    let (status, _) = app
        .send(
            reqwest::Method::POST,
            "/api/crons/__pbDBOptimize__",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let job = [("job", "__pbDBOptimize__"), ("result", "ok")];
    let mut counted = 0.0;
    for _ in 0..100 {
        let (_, _, text) = page(&app, &token).await;
        counted = sample(
            &parse(&text).expect("parsed"),
            "plinth_cron_runs_total",
            &job,
        );
        if counted >= 1.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(counted, 1.0);
}

#[tokio::test]
async fn hook_runs_are_counted_by_kind_and_result() {
    let hooks = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        hooks.path().join("main.pb.js"),
        r#"
routerAdd("GET", "/metrics-ok", (e) => e.json(200, { ok: true }));
routerAdd("GET", "/metrics-throw", (e) => { throw new Error("boom"); });
"#,
    )
    .expect("writes hooks");
    let app = TestApp::spawn_launch(&Launch {
        args: vec![format!("--hooksDir={}", hooks.path().display())],
        ..Launch::default()
    })
    .await;
    let token = app.admin_token().await;
    assert_eq!(app.get("/metrics-ok", None).await.0, 200);
    assert_eq!(app.get("/metrics-ok", None).await.0, 200);
    assert_eq!(app.get("/metrics-throw", None).await.0, 400);
    let (status, _, text) = page(&app, &token).await;
    assert_eq!(status, 200);
    let Some(families) = parse(&text) else { return };
    let runs = |result: &str| {
        sample(
            &families,
            "plinth_hook_runs_total",
            &[("kind", "route"), ("result", result)],
        )
    };
    assert_eq!(runs("ok"), 2.0, "{text}");
    assert_eq!(runs("error"), 1.0, "{text}");
    assert!(
        sample(
            &families,
            "plinth_hook_run_seconds_count",
            &[("kind", "route")]
        ) >= 3.0
    );
    assert_eq!(families["plinth_hook_runs"]["type"], "counter");
}

#[tokio::test]
async fn realtime_and_change_log_gauges_follow_the_app() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let gauge =
        |text: &str, name: &str| -> f64 { sample(&parse(text).expect("parsed"), name, &[]) };
    let (_, _, text) = page(&app, &token).await;
    if parse(&text).is_none() {
        return;
    }
    assert_eq!(gauge(&text, "plinth_realtime_clients"), 0.0);
    let last_before = gauge(&text, "plinth_changelog_last_seq");

    // An open SSE stream is a client (and starts the change-log fan-out).
    let stream = app
        .client
        .get(app.url("/api/realtime"))
        .send()
        .await
        .expect("stream opened");
    assert_eq!(stream.status().as_u16(), 200);
    let mut clients = 0.0;
    for _ in 0..100 {
        clients = gauge(&page(&app, &token).await.2, "plinth_realtime_clients");
        if clients == 1.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(clients, 1.0);

    let (status, body) = app
        .post_json(
            "/api/collections/users/records",
            Some(&token),
            serde_json::json!({"email": "g@example.com", "password": "Passw0rd!123", "passwordConfirm": "Passw0rd!123"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut text = String::new();
    for _ in 0..100 {
        text = page(&app, &token).await.2;
        if gauge(&text, "plinth_changelog_last_seq") > last_before
            && gauge(&text, "plinth_changelog_lag") == 0.0
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        gauge(&text, "plinth_changelog_last_seq"),
        last_before + 1.0,
        "{text}"
    );
    assert_eq!(
        gauge(&text, "plinth_changelog_lag"),
        0.0,
        "the fan-out caught up"
    );

    drop(stream);
    let mut clients = 1.0;
    for _ in 0..200 {
        clients = gauge(&page(&app, &token).await.2, "plinth_realtime_clients");
        if clients == 0.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(clients, 0.0, "a closed stream is no longer counted");
}
