//! Migrations over a real SQLite store and the real JavaScript engine: order, the single
//! transaction, reverting, and automigrate files that replay (and undo) a change.

use std::path::Path;
use std::sync::Arc;

use domain::{Store, WriteOp};
use serde_json::{Value, json};

use super::*;
use crate::state::{AppState, ServerConfig};

struct Env {
    state: SharedState,
    scripts: Arc<Scripts>,
    dir: tempfile::TempDir,
    _data: tempfile::TempDir,
}

async fn env() -> Env {
    let data = tempfile::tempdir().expect("temp dir");
    let store = store_sqlite::SqliteStore::open(data.path(), Default::default()).expect("opens");
    let store: Arc<dyn Store> = store;
    let state = AppState::new(store, ServerConfig::default());
    let scripts = crate::scripts::start(hooks::EngineConfig::default())
        .await
        .expect("engine");
    let _ = state.scripts.set(scripts.clone());
    Env {
        state,
        scripts,
        dir: tempfile::tempdir().expect("temp dir"),
        _data: data,
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("writes");
}

async fn applied(state: &SharedState) -> Vec<String> {
    state
        .store
        .applied_migrations()
        .await
        .expect("lists")
        .into_iter()
        .map(|(f, _)| f)
        .collect()
}

const CREATE_THINGS: &str = r#"migrate((app) => {
  app.save(new Collection({ name: "things", type: "base", fields: [{ name: "title", type: "text" }] }));
}, (app) => {
  app.delete(app.findCollectionByNameOrId("things"));
})"#;

#[tokio::test(flavor = "multi_thread")]
async fn migrations_apply_in_string_order_once_and_skip_other_files() {
    let env = env().await;
    let dir = env.dir.path();
    // `10_…` sorts before `9_…`: it creates the collection the others write to, so any
    // other order fails.
    write(dir, "10_x.js", CREATE_THINGS);
    let seed = |title: &str| {
        format!(
            r#"migrate((app) => {{
  const r = new Record(app.findCollectionByNameOrId("things"));
  r.set("title", "{title}");
  app.save(r);
}})"#
        )
    };
    write(dir, "9_y.js", &seed("nine"));
    write(dir, "a_first.js", &seed("a"));
    write(dir, "c_ts.ts", &seed("c"));
    write(dir, "b_plain.js", "// no migrate call at all\n");
    write(dir, "notes.txt", "not a migration");

    let done = apply_pending(&env.state, &env.scripts, dir)
        .await
        .expect("applies");
    assert_eq!(done, ["10_x.js", "9_y.js", "a_first.js", "c_ts.ts"]);
    assert_eq!(
        applied(&env.state).await,
        done,
        "recorded in the order they ran"
    );
    let things = env.state.schema().get("things").cloned().expect("created");
    let page = env
        .state
        .store
        .list_records(domain::RecordQuery {
            collection: things,
            filters: Vec::new(),
            sort: Vec::new(),
            page: 1,
            per_page: 10,
            with_total: true,
        })
        .await
        .expect("lists");
    assert_eq!(page.total, Some(3));

    // A second run finds nothing new, even though every file's top level runs again.
    let again = apply_pending(&env.state, &env.scripts, dir)
        .await
        .expect("applies");
    assert!(again.is_empty(), "{again:?}");
    assert!(
        pending(env.state.store.as_ref(), dir)
            .await
            .expect("pending")
            .contains(&dir.join("b_plain.js"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_failing_file_rolls_back_every_pending_file() {
    let env = env().await;
    let dir = env.dir.path();
    write(dir, "1_ok.js", CREATE_THINGS);
    write(
        dir,
        "2_throws.js",
        r#"migrate((app) => { throw new Error("boom in migration") })"#,
    );

    let error = apply_pending(&env.state, &env.scripts, dir)
        .await
        .expect_err("fails");
    let text = error.to_string();
    assert!(
        text.starts_with("failed to apply migration 2_throws.js: ")
            && text.contains("boom in migration"),
        "{text}"
    );
    assert!(
        env.state.schema().get("things").is_none(),
        "the first file's collection is gone"
    );
    assert!(applied(&env.state).await.is_empty(), "no _migrations rows");

    // Fixed, the folder applies as a whole.
    write(dir, "2_throws.js", "migrate((app) => {})");
    let done = apply_pending(&env.state, &env.scripts, dir)
        .await
        .expect("applies");
    assert_eq!(done, ["1_ok.js", "2_throws.js"]);
    assert!(env.state.schema().get("things").is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn down_reverts_newest_first_and_a_missing_down_is_success() {
    let env = env().await;
    let dir = env.dir.path();
    write(dir, "1_a.js", CREATE_THINGS);
    write(dir, "2_b.js", "migrate((app) => {})");
    apply_pending(&env.state, &env.scripts, dir)
        .await
        .expect("applies");
    assert_eq!(
        last_applied(env.state.store.as_ref(), 5)
            .await
            .expect("lists"),
        ["2_b.js", "1_a.js"]
    );

    let reverted = revert(&env.state, &env.scripts, dir, 1)
        .await
        .expect("reverts");
    assert_eq!(reverted, ["2_b.js"]);
    assert_eq!(applied(&env.state).await, ["1_a.js"]);
    assert!(env.state.schema().get("things").is_some());

    let reverted = revert(&env.state, &env.scripts, dir, 3)
        .await
        .expect("reverts");
    assert_eq!(reverted, ["1_a.js"]);
    assert!(applied(&env.state).await.is_empty());
    assert!(env.state.schema().get("things").is_none(), "its down ran");

    // A throwing down keeps both the change and the row.
    write(
        dir,
        "3_c.js",
        r#"migrate(() => {}, () => { throw new Error("no way back") })"#,
    );
    apply_pending(&env.state, &env.scripts, dir)
        .await
        .expect("applies");
    let error = revert(&env.state, &env.scripts, dir, 1)
        .await
        .expect_err("fails");
    assert!(
        error
            .to_string()
            .starts_with("failed to revert migration 3_c.js: "),
        "{error}"
    );
    assert!(applied(&env.state).await.contains(&"3_c.js".to_owned()));
}

#[tokio::test(flavor = "multi_thread")]
async fn history_sync_forgets_rows_without_a_file() {
    let env = env().await;
    let dir = env.dir.path();
    write(dir, "1_a.js", "migrate(() => {})");
    write(dir, "2_b.js", "migrate(() => {})");
    apply_pending(&env.state, &env.scripts, dir)
        .await
        .expect("applies");
    std::fs::remove_file(dir.join("1_a.js")).expect("removes");
    assert_eq!(
        history_sync(env.state.store.as_ref(), dir)
            .await
            .expect("syncs"),
        1
    );
    assert_eq!(applied(&env.state).await, ["2_b.js"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn blank_template_and_snapshot_run_as_migrations() {
    let env = env().await;
    let dir = env.dir.path();
    write(dir, "1_blank.js", &blank_template());
    let snapshot = snapshot_template(env.state.schema().all());
    write(dir, "2_snapshot.js", &snapshot);
    let done = apply_pending(&env.state, &env.scripts, dir)
        .await
        .expect("applies");
    assert_eq!(done, ["1_blank.js", "2_snapshot.js"]);
    assert!(snapshot.contains("app.importCollections(snapshot, false)"));
    assert!(snapshot.contains("\"name\": \"users\""));
    assert!(
        !snapshot.contains("\"secret\""),
        "no token secrets in files"
    );
}

/// A definition as compared across databases (timestamps differ).
fn shape(state: &SharedState, name: &str) -> Option<Value> {
    state.schema().get(name).map(|c| definition(c))
}

#[tokio::test(flavor = "multi_thread")]
async fn automigrate_files_replay_and_undo_a_change_elsewhere() {
    let source = env().await;
    let dir = source.dir.path().to_path_buf();
    let _ = source.scripts.automigrate_dir.set(dir.clone());
    let body = |v: Value| v.as_object().cloned().expect("object");

    // Created, then updated (a field removed, one added, one changed, a rule set), then a
    // second collection created and deleted within the same second.
    let created = crate::collections::save_from_script(
        &source.state,
        None,
        body(json!({"name": "posts", "type": "base", "fields": [
            {"name": "title", "type": "text", "required": true},
            {"name": "n", "type": "number"},
            {"name": "keep", "type": "text"}
        ]})),
    )
    .await
    .expect("creates");
    let original = source.state.schema().get("posts").cloned().expect("posts");
    automigrate(&source.state, CollectionChange::Created(&original)).await;
    let fields = created["fields"].as_array().expect("fields").clone();
    let updated = crate::collections::save_from_script(
        &source.state,
        None,
        body(json!({"id": created["id"], "listRule": "", "fields": [
            fields[0],
            {"name": "flag", "type": "bool"},
            fields[3],
            {"id": fields[1]["id"], "name": "title", "type": "text", "required": false}
        ]})),
    )
    .await
    .expect("updates");
    assert_eq!(updated["listRule"], "");
    let new = source.state.schema().get("posts").cloned().expect("posts");
    automigrate(
        &source.state,
        CollectionChange::Updated {
            old: &original,
            new: &new,
        },
    )
    .await;
    // An update that changes nothing writes nothing.
    automigrate(
        &source.state,
        CollectionChange::Updated {
            old: &new,
            new: &new,
        },
    )
    .await;

    crate::collections::save_from_script(&source.state, None, body(json!({"name": "tmp"})))
        .await
        .expect("creates");
    let tmp = source.state.schema().get("tmp").cloned().expect("tmp");
    automigrate(&source.state, CollectionChange::Created(&tmp)).await;
    source
        .state
        .store
        .delete_collection(&tmp.id)
        .await
        .expect("deletes");
    automigrate(&source.state, CollectionChange::Deleted(&tmp)).await;

    let files: Vec<String> = hooks::migration_files(&dir)
        .iter()
        .map(|p| base_name(p))
        .collect();
    let suffixes: Vec<&str> = files.iter().map(|f| &f[11..]).collect();
    assert_eq!(
        suffixes,
        [
            "created_posts.js",
            "updated_posts.js",
            "created_tmp.js",
            "deleted_tmp.js"
        ],
        "one file per change, in the order of the changes: {files:?}"
    );
    assert_eq!(
        applied(&source.state).await,
        files,
        "recorded as applied at once"
    );

    // A fresh database replays them into the same schema.
    let target = env().await;
    let replayed = apply_pending(&target.state, &target.scripts, &dir)
        .await
        .expect("replays");
    assert_eq!(replayed, files);
    assert_eq!(shape(&target.state, "posts"), shape(&source.state, "posts"));
    assert!(target.state.schema().get("tmp").is_none());
    // Writing a record proves the replayed table has the new columns.
    let posts = target.state.schema().get("posts").cloned().expect("posts");
    let mut data = domain::RecordData::new();
    for field in &posts.fields {
        data.insert(field.name.clone(), field.zero_value());
    }
    data.insert("id".into(), json!("abcdefghijklmno"));
    data.insert("flag".into(), json!(true));
    target
        .state
        .store
        .write(vec![WriteOp::Create {
            collection: posts,
            data,
            guard: None,
        }])
        .await
        .expect("writes");

    // Reverting the delete, the create of tmp, and the update brings back the original.
    let reverted = revert(&target.state, &target.scripts, &dir, 3)
        .await
        .expect("reverts");
    assert_eq!(reverted.len(), 3);
    assert_eq!(shape(&target.state, "posts"), Some(definition(&original)));
}

#[test]
fn names_become_snake_case_as_in_pocketbase() {
    for (name, snake) in [
        ("Add stuff", "add_stuff"),
        ("AddStuffNow", "add_stuff_now"),
        ("  multiple   spaces ", "multiple_spaces"),
        ("a__b", "a_b"),
        ("123abc", "123abc"),
        ("Äpfel grün", "pfel_gr_n"),
        ("HTTPServer", "httpserver"),
        ("a.b/c", "a_b_c"),
        ("Foo-Bar baz!", "foo_bar_baz"),
        ("___", ""),
    ] {
        assert_eq!(snake_case(name), snake, "{name:?}");
    }
}
