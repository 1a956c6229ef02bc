//! `TestApp::spawn()`: the real binary on `127.0.0.1:0` with a temporary data dir, a superuser
//! already created, and small HTTP helpers.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "Passw0rd!123";

/// Path of the binary under test.
pub fn plinth_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_plinth"))
}

/// With `PLINTH_TEST_ENGINE=postgres` (and `PLINTH_TEST_PG`), the database of the data dir
/// `dir`: a fresh PostgreSQL database made on first use and remembered in `dir/.plinth-test-db`,
/// so every command and server of one test dir shares it. `None` runs on SQLite in the dir.
pub fn test_database(dir: &Path) -> Option<String> {
    if std::env::var("PLINTH_TEST_ENGINE").ok().as_deref() != Some("postgres") {
        return None;
    }
    let admin = std::env::var("PLINTH_TEST_PG").expect(
        "PLINTH_TEST_ENGINE=postgres needs PLINTH_TEST_PG (scripts/test-postgres.sh start)",
    );
    let marker = dir.join(".plinth-test-db");
    if let Ok(url) = std::fs::read_to_string(&marker) {
        return Some(url);
    }
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let name = format!(
        "plinth_e2e_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let status = Command::new("psql")
        .args([
            admin.as_str(),
            "-qc",
            &format!("CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C'"),
        ])
        .status()
        .expect("psql runs");
    assert!(status.success(), "creating the test database {name}");
    let (base, _) = admin.rsplit_once('/').expect("a URL with a database");
    let url = format!("{base}/{name}");
    std::fs::create_dir_all(dir).expect("test dir");
    std::fs::write(&marker, &url).expect("marker written");
    Some(url)
}

/// Drops the database [`test_database`] made for `dir`, if any.
fn drop_test_database(dir: &Path) {
    let (Ok(url), Ok(admin)) = (
        std::fs::read_to_string(dir.join(".plinth-test-db")),
        std::env::var("PLINTH_TEST_PG"),
    ) else {
        return;
    };
    if let Some((_, name)) = url.rsplit_once('/') {
        let _ = Command::new("psql")
            .args([
                admin.as_str(),
                "-qc",
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            ])
            .status();
    }
}

/// Runs `plinth ARGS --dir DIR` to completion and returns (exit code, stdout, stderr).
pub fn run_cli(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let mut command = Command::new(plinth_bin());
    if let Some(url) = test_database(dir) {
        command.env("PLINTH_DB", url);
    }
    let output = command
        .args(args)
        .arg(format!("--dir={}", dir.display()))
        .env("PLINTH_INSECURE_TEST_HASHING", "1")
        .env("PLINTH_MIGRATIONS_DIR", dir.join("pb_migrations"))
        .output()
        .expect("plinth runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// How a test server is started beyond the defaults.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// Address-space cap in bytes (`prlimit --as`): an allocation past it fails, and a Rust
    /// allocation failure aborts the process, so a test that exceeds it sees the server die.
    pub memory_cap: Option<u64>,
    /// Extra `serve` arguments.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

/// A running server.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    pub child: Child,
    /// What the server printed before it was ready (kept for debugging failed starts).
    pub startup_output: String,
}

/// `pb_hooks`, `pb_migrations` and `pb_public` default to folders beside the data dir (here: the shared
/// temp dir); unless a test names its own, they point inside the data dir, where none exist.
fn isolated_script_dirs(dir: &Path, args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    if !args.iter().any(|a| a.starts_with("--hooksDir")) {
        out.push(format!("--hooksDir={}", dir.join("pb_hooks").display()));
    }
    // So is `pb_public`: a stray `/tmp/pb_public` must not change what unknown paths answer.
    if !args.iter().any(|a| a.starts_with("--publicDir")) {
        out.push(format!("--publicDir={}", dir.join("pb_public").display()));
    }
    if !args.iter().any(|a| a.starts_with("--migrationsDir")) {
        out.push(format!(
            "--migrationsDir={}",
            dir.join("pb_migrations").display()
        ));
    }
    out
}

impl TestApp {
    /// Starts a server with the default superuser.
    pub async fn spawn() -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        let (code, _, stderr) = run_cli(
            dir.path(),
            &["superuser", "upsert", ADMIN_EMAIL, ADMIN_PASSWORD],
        );
        assert_eq!(code, 0, "superuser upsert failed: {stderr}");
        Self::spawn_in(dir)
    }

    /// Starts a server on an existing data dir.
    pub fn spawn_in(dir: tempfile::TempDir) -> TestApp {
        Self::spawn_with(dir, &Launch::default())
    }

    /// Starts a server with the default superuser and the given launch options.
    pub async fn spawn_launch(launch: &Launch) -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        let (code, _, stderr) = run_cli(
            dir.path(),
            &["superuser", "upsert", ADMIN_EMAIL, ADMIN_PASSWORD],
        );
        assert_eq!(code, 0, "superuser upsert failed: {stderr}");
        Self::spawn_with(dir, launch)
    }

    /// Starts a server on an existing data dir with the given launch options.
    pub fn spawn_with(dir: tempfile::TempDir, launch: &Launch) -> TestApp {
        let mut command = match launch.memory_cap {
            // `prlimit` execs the server, so the child's pid is the server's. glibc reserves
            // 64 MiB of address space per malloc arena; two arenas keep the cap about the
            // memory actually used.
            Some(bytes) => {
                let mut command = Command::new("prlimit");
                command
                    .arg(format!("--as={bytes}"))
                    .arg("--")
                    .arg(plinth_bin())
                    .env("MALLOC_ARENA_MAX", "2");
                command
            }
            None => Command::new(plinth_bin()),
        };
        command
            .args(["serve", "--http=127.0.0.1:0"])
            .arg(format!("--dir={}", dir.path().display()))
            .args(&launch.args)
            .args(isolated_script_dirs(dir.path(), &launch.args))
            .env("PLINTH_INSECURE_TEST_HASHING", "1")
            // The default `pb_migrations` beside a temp dir would be one folder in /tmp shared
            // by every test (automigrate writes there); each test keeps its own.
            .env("PLINTH_MIGRATIONS_DIR", dir.path().join("pb_migrations"))
            .env("PLINTH_LOG", "warn");
        if let Some(url) = test_database(dir.path()) {
            command.env("PLINTH_DB", url);
        }
        for (key, value) in &launch.env {
            command.env(key, value);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("plinth serve starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let mut reader = BufReader::new(stdout);
        let mut startup_output = String::new();
        let mut base = None;
        for _ in 0..20 {
            let mut line = String::new();
            if reader.read_line(&mut line).expect("reads stdout") == 0 {
                break;
            }
            startup_output.push_str(&line);
            if let Some(rest) = line.trim().strip_prefix("Server started at ") {
                base = Some(rest.to_owned());
                break;
            }
        }
        let base = base.unwrap_or_else(|| panic!("server did not start: {startup_output}"));
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        });
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        TestApp {
            base,
            client,
            dir,
            child,
            startup_output,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A superuser token.
    pub async fn admin_token(&self) -> String {
        let (status, body) = self
            .post_json(
                "/api/collections/_superusers/auth-with-password",
                None,
                json!({"identity": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
            )
            .await;
        assert_eq!(status, 200, "superuser login failed: {body}");
        body["token"].as_str().expect("token").to_owned()
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.header("Authorization", token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body read");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, token, None).await
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    pub async fn patch_json(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PATCH, path, token, Some(body))
            .await
    }

    /// A form-encoded POST (`body` is already encoded).
    pub async fn post_form(&self, path: &str, body: &str) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(path))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body.to_owned())
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body read");
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, value)
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.send(reqwest::Method::DELETE, path, token, None).await
    }

    /// Sends SIGTERM and waits for the exit code.
    pub fn terminate(&mut self) -> i32 {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..100 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code().unwrap_or(-1);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        -1
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        drop_test_database(self.dir.path());
    }
}

/// Asserts PocketBase's error shape and returns its `data`.
pub fn assert_error(status: u16, body: &Value, expected_status: u16, message: &str) -> Value {
    assert_eq!(status, expected_status, "unexpected status, body: {body}");
    assert_eq!(body["status"], expected_status, "body: {body}");
    assert_eq!(body["message"], message, "body: {body}");
    assert!(body["data"].is_object(), "data must be an object: {body}");
    body["data"].clone()
}

/// Where `serve_raw` puts the server's stderr: a file in the test's directory, appended to
/// by each start, so a server that stops before its start line can say why.
fn serve_stderr(dir: &Path) -> Stdio {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("serve.stderr"))
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

/// The stderr `serve_raw`'s servers wrote in `dir` so far.
pub fn served_stderr(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("serve.stderr")).unwrap_or_default()
}

/// Starts `plinth serve ARGS` on `dir` (data, hooks, migrations and public dirs inside it) and
/// returns the child and its "Server started at" line (empty when it never printed one).
pub fn serve_raw(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (std::process::Child, String) {
    let mut command = Command::new(plinth_bin());
    command
        .arg("serve")
        .args(args)
        .arg(format!("--dir={}", dir.join("pb_data").display()))
        .arg(format!("--hooksDir={}", dir.join("h").display()))
        .arg(format!("--migrationsDir={}", dir.join("m").display()))
        .arg(format!("--publicDir={}", dir.join("p").display()))
        .env("PLINTH_INSECURE_TEST_HASHING", "1")
        .env("PLINTH_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(serve_stderr(dir));
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("starts");
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    let mut started = String::new();
    for _ in 0..10 {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if line.starts_with("Server started at ") {
            started = line.trim().to_owned();
            break;
        }
    }
    // Keep reading: a closed pipe would fail the server's next console line.
    std::thread::spawn(move || {
        let mut sink = String::new();
        while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
            sink.clear();
        }
    });
    (child, started)
}
