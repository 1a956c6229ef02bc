use crate::support::{ADMIN_EMAIL, ADMIN_PASSWORD, TestApp, run_cli};

#[test]
fn superuser_commands_behave_like_pocketbase() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (code, out, _) = run_cli(d, &["superuser", "create", "a@b.co", "Passw0rd!123"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("Successfully created new superuser \"a@b.co\""),
        "{out}"
    );

    let (code, _, err) = run_cli(d, &["superuser", "create", "a@b.co", "Passw0rd!123"]);
    assert_eq!(code, 1, "duplicate create must fail");
    assert!(err.contains("unique"), "{err}");

    let (code, _, err) = run_cli(d, &["superuser", "update", "x@b.co", "Passw0rd!123"]);
    assert_eq!(code, 1);
    assert!(err.contains("doesn't exist"), "{err}");

    let (code, _, err) = run_cli(d, &["superuser", "update", "a@b.co", "short"]);
    assert_eq!(code, 1);
    assert!(err.contains("at least 8"), "{err}");

    let (code, _, err) = run_cli(d, &["superuser", "upsert", "bad", "Passw0rd!123"]);
    assert_eq!(code, 1);
    assert!(err.contains("email"), "{err}");

    let (code, _, err) = run_cli(d, &["superuser", "delete", "a@b.co"]);
    assert_eq!(code, 1, "the last superuser cannot be deleted");
    assert!(err.contains("only existing superuser"), "{err}");

    let (code, out, _) = run_cli(d, &["superuser", "upsert", "c@b.co", "Passw0rd!123"]);
    assert_eq!(code, 0);
    assert!(out.contains("created"), "{out}");
    let (code, out, _) = run_cli(d, &["superuser", "upsert", "c@b.co", "An0ther-pass"]);
    assert_eq!(code, 0);
    assert!(out.contains("saved"), "{out}");
    let (code, out, _) = run_cli(d, &["superuser", "delete", "a@b.co"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn version_and_help() {
    let output = std::process::Command::new(crate::support::plinth_bin())
        .arg("--version")
        .output()
        .expect("runs");
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("plinth "));
    let output = std::process::Command::new(crate::support::plinth_bin())
        .arg("--help")
        .output()
        .expect("runs");
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(
        help.contains("serve") && help.contains("superuser"),
        "{help}"
    );
}

#[tokio::test]
async fn serve_without_superuser_says_how_to_create_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = TestApp::spawn_in(dir);
    assert!(
        app.startup_output.contains("No superuser exists yet")
            && app
                .startup_output
                .contains("plinth superuser upsert EMAIL PASSWORD"),
        "{}",
        app.startup_output
    );
    let (status, _) = app.get("/api/health", None).await;
    assert_eq!(status, 200);
    assert!(
        app.dir.path().join("data.db").exists(),
        "the data dir is initialized"
    );
    drop(app);
}

#[tokio::test]
async fn sigterm_finishes_cleanly_and_data_survives_restart() {
    let mut app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let (status, _) = app
        .post_json(
            "/api/collections",
            Some(&token),
            serde_json::json!({"name": "notes", "type": "base", "fields": [{"name": "text", "type": "text"}]}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, created) = app
        .post_json(
            "/api/collections/notes/records",
            Some(&token),
            serde_json::json!({"text": "kept"}),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(app.terminate(), 0, "SIGTERM must exit 0");

    let dir = std::mem::replace(&mut app.dir, tempfile::tempdir().expect("tempdir"));
    let app = TestApp::spawn_in(dir);
    let (status, body) = app
        .post_json(
            "/api/collections/_superusers/auth-with-password",
            None,
            serde_json::json!({"identity": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
        )
        .await;
    assert_eq!(status, 200);
    let token = body["token"].as_str().expect("token").to_owned();
    let id = created["id"].as_str().expect("id");
    let (status, record) = app
        .get(
            &format!("/api/collections/notes/records/{id}"),
            Some(&token),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(record["text"], "kept");
}

/// A stop lets the request being served finish (its answer arrives, then the connection
/// closes) and closes a keep-alive connection that sits idle, then exits 0.
#[tokio::test]
async fn sigterm_finishes_the_request_in_flight_and_closes_idle_connections() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let hooks = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        hooks.path().join("slow.pb.js"),
        r#"routerAdd("GET", "/slow", (e) => { sleep(1500); return e.json(200, { done: true }); });"#,
    )
    .expect("writes hooks");
    let mut app = TestApp::spawn_launch(&crate::support::Launch {
        args: vec![format!("--hooksDir={}", hooks.path().display())],
        ..Default::default()
    })
    .await;
    let address = app.base.trim_start_matches("http://").to_owned();

    // Kept alive after one answer, then idle.
    let mut idle = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connects");
    idle.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("writes");
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("API is healthy.") {
        let mut chunk = [0u8; 1024];
        let n = idle.read(&mut chunk).await.expect("reads");
        assert!(n > 0, "closed before its answer");
        seen.extend_from_slice(&chunk[..n]);
    }

    let slow = tokio::spawn(async move {
        let mut stream = tokio::net::TcpStream::connect(&address)
            .await
            .expect("connects");
        stream
            .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("writes");
        let mut answer = Vec::new();
        // To the end: the connection closes after the answer, as the server stops.
        stream.read_to_end(&mut answer).await.expect("reads");
        String::from_utf8_lossy(&answer).into_owned()
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let pid = app.child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());

    let answer = tokio::time::timeout(std::time::Duration::from_secs(10), slow)
        .await
        .expect("the slow answer comes and its connection closes")
        .expect("task");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#"{"done":true}"#), "{answer}");
    let mut rest = [0u8; 64];
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), idle.read(&mut rest))
        .await
        .expect("the idle connection is closed");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert_eq!(app.terminate(), 0, "the stop exits 0");
}
