//! JavaScript migrations on the real binary: `plinth migrate up|down|create|collections|
//! history-sync` with PocketBase's messages, `serve` applying pending files before it
//! listens (and refusing to start when one fails), and automigrate files that replay the
//! API's collection changes on a fresh database.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::support::{Launch, TestApp, plinth_bin, run_cli};

const COLLECTION: &str = r#"/// <reference path="../pb_data/types.d.ts" />
migrate((app) => {
  app.save(new Collection({
    name: "posts",
    type: "base",
    listRule: "",
    viewRule: "",
    fields: [{ name: "title", type: "text", required: true }],
  }));
}, (app) => {
  app.delete(app.findCollectionByNameOrId("posts"));
});
"#;

fn seed(title: &str) -> String {
    format!(
        r#"migrate((app) => {{
  const record = new Record(app.findCollectionByNameOrId("posts"));
  record.set("title", "{title}");
  app.save(record);
}});
"#
    )
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::create_dir_all(dir).expect("creates the folder");
    std::fs::write(dir.join(name), text).expect("writes");
}

/// `plinth migrate ARGS` with `answer` on stdin; (exit code, stdout, stderr).
fn migrate_with_stdin(data: &Path, args: &[&str], answer: &str) -> (i32, String, String) {
    use std::io::Write as _;
    let mut child = Command::new(plinth_bin())
        .arg("migrate")
        .args(args)
        .arg(format!("--dir={}", data.display()))
        .env("PLINTH_MIGRATIONS_DIR", data.join("pb_migrations"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("plinth runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(answer.as_bytes())
        .expect("answers");
    let output = child.wait_with_output().expect("finishes");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn migrate_up_then_serve_applies_the_rest_and_answers_the_api() {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("pb_migrations");
    write(&dir, "1_collection.js", COLLECTION);
    write(&dir, "2_seed.js", &seed("hello"));
    write(&dir, "notes.txt", "not a migration");

    let (code, out, err) = run_cli(data.path(), &["migrate", "up"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "Applied 1_collection.js\nApplied 2_seed.js\n");
    let (code, out, _) = run_cli(data.path(), &["migrate"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "No new migrations to apply.\n"),
        "up is the default"
    );

    // `superuser` does not apply migrations; `serve` applies the new one before listening.
    write(&dir, "3_seed.js", &seed("world"));
    let (code, _, err) = run_cli(
        data.path(),
        &["superuser", "upsert", "admin@example.com", "Passw0rd!123"],
    );
    assert_eq!(code, 0, "{err}");
    let app = TestApp::spawn_in(data);
    let (status, body) = app
        .get("/api/collections/posts/records?sort=title", None)
        .await;
    assert_eq!(status, 200, "{body}");
    let titles: Vec<&str> = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|r| r["title"].as_str())
        .collect();
    assert_eq!(titles, ["hello", "world"]);
}

#[tokio::test]
async fn a_failing_migration_stops_serve_and_keeps_nothing() {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("pb_migrations");
    write(&dir, "1_ok.js", COLLECTION);
    write(
        &dir,
        "2_throws.js",
        r#"migrate((app) => { throw new Error("boom in migration") })"#,
    );

    let output = Command::new(plinth_bin())
        .args(["serve", "--http=127.0.0.1:0"])
        .arg(format!("--dir={}", data.path().display()))
        .env("PLINTH_MIGRATIONS_DIR", &dir)
        .env("PLINTH_LOG", "warn")
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("failed to apply migration 2_throws.js: ")
            && stderr.contains("boom in migration"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&output.stdout).contains("Server started"));

    let (code, _, err) = run_cli(data.path(), &["migrate", "up"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("failed to apply migration 2_throws.js"),
        "{err}"
    );

    // Nothing of the first file was kept: once fixed, both apply.
    write(&dir, "2_throws.js", "migrate((app) => {})");
    let (code, out, err) = run_cli(data.path(), &["migrate", "up"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "Applied 1_ok.js\nApplied 2_throws.js\n");
}

#[tokio::test]
async fn create_down_and_history_sync_print_as_pocketbase() {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().join("pb_migrations");

    // A closed stdin cancels; "y" confirms.
    let (code, out, _) = run_cli(data.path(), &["migrate", "create", "Add stuff"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("Do you really want to create migration \""),
        "{out}"
    );
    assert!(
        out.ends_with("_add_stuff.js\"? (y/N) The command has been cancelled\n"),
        "{out}"
    );
    assert!(!dir.exists(), "nothing written");
    let (code, out, err) = migrate_with_stdin(data.path(), &["create", "AddStuffNow"], "y\n");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("(y/N) Successfully created file \""), "{out}");
    let files: Vec<String> = std::fs::read_dir(&dir)
        .expect("folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 1);
    let created = files[0].clone();
    assert!(
        created.ends_with("_add_stuff_now.js")
            && created.len() == "1234567890_add_stuff_now.js".len(),
        "{created}"
    );
    let (code, _, err) = run_cli(data.path(), &["migrate", "create"]);
    assert_eq!(code, 1);
    assert!(err.contains("missing migration file name"), "{err}");

    // The blank template runs, up and down.
    write(&dir, "0000000001_collection.js", COLLECTION);
    let (code, out, err) = run_cli(data.path(), &["migrate", "up"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!("Applied 0000000001_collection.js\nApplied {created}\n")
    );

    let (code, out, _) = run_cli(data.path(), &["migrate", "down", "2"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!(
            "\n{created}\n0000000001_collection.js\nDo you really want to revert the last 2 applied migration(s)? (y/N) The command has been cancelled\n"
        )
    );
    let (code, out, err) = migrate_with_stdin(data.path(), &["down"], "y\n");
    assert_eq!(code, 0, "{err}");
    assert!(
        out.ends_with(&format!("(y/N) Reverted {created}\n")),
        "{out}"
    );
    let (code, out, err) = run_cli(data.path(), &["migrate", "down", "-y"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.ends_with("Reverted 0000000001_collection.js\n"),
        "{out}"
    );
    let (code, out, _) = run_cli(data.path(), &["migrate", "down", "-y"]);
    assert_eq!(code, 0);
    assert!(out.ends_with("No migrations to revert.\n"), "{out}");

    // history-sync forgets the record of a deleted file, so it is not reverted later.
    let (code, _, err) = run_cli(data.path(), &["migrate", "up"]);
    assert_eq!(code, 0, "{err}");
    std::fs::remove_file(dir.join(&created)).expect("removes");
    let (code, out, _) = run_cli(data.path(), &["migrate", "history-sync"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "The _migrations table was synced with the available migrations.\n"
    );
    let (_, out, _) = run_cli(data.path(), &["migrate", "down", "5"]);
    assert_eq!(
        out,
        "\n0000000001_collection.js\nDo you really want to revert the last 5 applied migration(s)? (y/N) The command has been cancelled\n"
    );

    let (code, _, err) = run_cli(data.path(), &["migrate", "bogus"]);
    assert_eq!(code, 1);
    assert!(err.contains("unsupported command: \"bogus\""), "{err}");
}

#[tokio::test]
async fn automigrate_files_rebuild_the_schema_on_a_fresh_database() {
    let app = TestApp::spawn_launch(&Launch::default()).await;
    let token = app.admin_token().await;
    let dir = app.dir.path().join("pb_migrations");
    let (status, posts) = app
        .post_json(
            "/api/collections",
            Some(&token),
            json!({"name": "posts", "type": "base", "fields": [
                {"name": "title", "type": "text", "required": true},
                {"name": "n", "type": "number"}
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{posts}");
    let (status, body) = app
        .patch_json(
            "/api/collections/posts",
            Some(&token),
            json!({"listRule": "", "fields": [
                posts["fields"][0],
                posts["fields"][1],
                {"name": "flag", "type": "bool"}
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .post_json(
            "/api/collections",
            Some(&token),
            json!({"name": "tmp", "type": "base"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = app.delete("/api/collections/tmp", Some(&token)).await;
    assert_eq!(status, 204);
    let (status, final_posts) = app.get("/api/collections/posts", Some(&token)).await;
    assert_eq!(status, 200);

    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("automigrate wrote the folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let suffixes: Vec<&str> = files.iter().map(|f| &f[11..]).collect();
    assert_eq!(
        suffixes,
        [
            "created_posts.js",
            "updated_posts.js",
            "created_tmp.js",
            "deleted_tmp.js"
        ]
    );
    // They are recorded as applied here: nothing is pending.
    let (code, out, err) = run_cli(app.dir.path(), &["migrate", "up"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "No new migrations to apply.\n"),
        "{err}"
    );

    // A fresh database given the folder ends with the same collection.
    let fresh = tempfile::tempdir().expect("tempdir");
    let copy = fresh.path().join("pb_migrations");
    std::fs::create_dir_all(&copy).expect("creates");
    for file in &files {
        std::fs::copy(dir.join(file), copy.join(file)).expect("copies");
    }
    let (code, out, _) = run_cli(
        fresh.path(),
        &["superuser", "upsert", "admin@example.com", "Passw0rd!123"],
    );
    assert_eq!(code, 0, "{out}");
    let replica = TestApp::spawn_in(fresh);
    let token = replica.admin_token().await;
    let (status, replayed) = replica.get("/api/collections/posts", Some(&token)).await;
    assert_eq!(status, 200, "{replayed}");
    let strip = |mut v: serde_json::Value| {
        let object = v.as_object_mut().expect("object");
        object.remove("created");
        object.remove("updated");
        v
    };
    assert_eq!(strip(replayed), strip(final_posts));
    let (status, _) = replica.get("/api/collections/tmp", Some(&token)).await;
    assert_eq!(status, 404);

    // The snapshot command writes a migration that re-imports what exists.
    let (code, out, err) = run_cli(replica.dir.path(), &["migrate", "collections", "-y"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("Successfully created file \"") && out.contains("_collections_snapshot.js"),
        "{out}"
    );
}
