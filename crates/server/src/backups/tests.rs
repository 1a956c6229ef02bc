//! Unit tests of the backups module: names, the zip checks at their bounds, a failed backup
//! leaving nothing behind, and the restore swap with its undo.

#![allow(clippy::unwrap_used)]

use std::io::{Cursor, Write};
use std::path::Path;

use super::archive::{self, ArchiveError, ZipLimits};
use super::*;

fn make_zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    for (name, bytes) in entries {
        zip.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
    out.into_inner()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn reason(error: ArchiveError) -> String {
    match error {
        ArchiveError::Invalid(reason) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn names_follow_pocketbase() {
    let at = chrono::DateTime::parse_from_rfc3339("2026-12-03T11:33:19Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    assert_eq!(
        default_name("Import Test App", "", at),
        "pb_backup_import_test_app_20261203113319.zip"
    );
    assert_eq!(
        default_name("Acme", AUTO_PREFIX, at),
        "@auto_pb_backup_acme_20261203113319.zip"
    );
    let long = "x".repeat(80);
    assert_eq!(
        default_name(&long, "", at),
        format!("pb_backup_{}_20261203113319.zip", "x".repeat(50))
    );
    assert!(name_error("ok_name-1.zip").is_none());
    let at_bound = format!("{}.zip", "a".repeat(MAX_NAME_LEN - 4));
    assert!(name_error(&at_bound).is_none());
    let over = format!("{}.zip", "a".repeat(MAX_NAME_LEN - 3));
    assert_eq!(
        name_error(&over).unwrap().code,
        "validation_length_out_of_range"
    );
    for bad in [
        "Bad.zip",
        "a b.zip",
        "a.tar",
        ".zip",
        "../x.zip",
        "a.zip.zip2",
    ] {
        assert_eq!(
            name_error(bad).unwrap().code,
            "validation_match_invalid",
            "{bad}"
        );
    }
}

#[test]
fn zip_entry_count_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let zip = write(
        dir.path(),
        "a.zip",
        &make_zip(&[("data.db", b"x"), ("storage/a", b"y")]),
    );
    let limits = ZipLimits {
        max_entries: 2,
        max_unpacked: 1 << 20,
    };
    assert_eq!(archive::check(&zip, limits).unwrap().files.len(), 2);
    let limits = ZipLimits {
        max_entries: 1,
        ..limits
    };
    assert!(reason(archive::check(&zip, limits).unwrap_err()).contains("entries"));
}

#[test]
fn zip_unpacked_size_is_bounded_even_when_entries_lie() {
    let dir = tempfile::tempdir().unwrap();
    let zip = write(
        dir.path(),
        "a.zip",
        &make_zip(&[("data.db", &[0u8; 1000]), ("storage/a", &[0u8; 24])]),
    );
    let exact = ZipLimits {
        max_entries: 10,
        max_unpacked: 1024,
    };
    assert_eq!(archive::check(&zip, exact).unwrap().unpacked, 1024);
    let under = ZipLimits {
        max_unpacked: 1023,
        ..exact
    };
    assert!(reason(archive::check(&zip, under).unwrap_err()).contains("more than 1023"));
    // Unpacking enforces the budget on the bytes actually written.
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let names = vec!["data.db".to_owned(), "storage/a".to_owned()];
    let error = archive::unpack(&zip, &names, &out, 1023).unwrap_err();
    assert!(reason(error).contains("more than 1023"));
    let out2 = dir.path().join("out2");
    std::fs::create_dir(&out2).unwrap();
    archive::unpack(&zip, &names, &out2, 1024).unwrap();
    assert_eq!(std::fs::read(out2.join("storage/a")).unwrap().len(), 24);
}

#[test]
fn hostile_entry_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "../x",
        "storage/../../x",
        "/etc/x",
        "storage//x",
        "storage/./x",
        "a\\b",
        "c:/x",
    ] {
        let zip = write(
            dir.path(),
            "h.zip",
            &make_zip(&[("data.db", b"x"), (name, b"y")]),
        );
        let error = archive::check(&zip, archive::DEFAULT_LIMITS).unwrap_err();
        assert!(reason(error).contains("plain relative path"), "{name}");
    }
    let zip = write(dir.path(), "n.zip", &make_zip(&[("other.txt", b"x")]));
    assert!(
        reason(archive::check(&zip, archive::DEFAULT_LIMITS).unwrap_err()).contains("no data.db")
    );
    let not_zip = write(dir.path(), "r.zip", b"PK\x03\x04 but nothing else");
    assert!(matches!(
        archive::check(&not_zip, archive::DEFAULT_LIMITS),
        Err(ArchiveError::NotZip)
    ));
}

#[test]
fn excluded_entries_are_not_restored() {
    let dir = tempfile::tempdir().unwrap();
    let zip = write(
        dir.path(),
        "e.zip",
        &make_zip(&[
            ("data.db", b"x"),
            ("data.db-wal", b"w"),
            ("backups/old.zip", b"z"),
            (".pb_temp_to_delete/x", b"t"),
            ("storage/c/r/f.txt", b"f"),
        ]),
    );
    let checked = archive::check(&zip, archive::DEFAULT_LIMITS).unwrap();
    assert_eq!(checked.files, ["data.db", "storage/c/r/f.txt"]);
}

#[test]
fn pack_writes_pocketbase_layout() {
    let data = tempfile::tempdir().unwrap();
    let snapshot = tempfile::tempdir().unwrap();
    write(snapshot.path(), "data.db", b"snapshot db");
    write(data.path(), "data.db", b"live db");
    write(data.path(), "data.db-wal", b"live wal");
    std::fs::create_dir_all(data.path().join("storage/col/rec")).unwrap();
    write(&data.path().join("storage/col/rec"), "f.txt", b"file");
    std::fs::create_dir_all(data.path().join("backups")).unwrap();
    write(&data.path().join("backups"), "old.zip", b"old");
    std::fs::create_dir_all(data.path().join(TEMP_DIR)).unwrap();
    write(&data.path().join(TEMP_DIR), "junk", b"junk");
    write(data.path(), "types.d.ts", b"types");
    let out_path = snapshot.path().join("out.zip");
    let out = std::fs::File::create(&out_path).unwrap();
    archive::pack(data.path(), snapshot.path(), &["data.db".to_owned()], out).unwrap();
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&out_path).unwrap()).unwrap();
    let names: Vec<String> = zip.file_names().map(|n| n.unwrap().into_owned()).collect();
    assert_eq!(names, ["data.db", "storage/col/rec/f.txt", "types.d.ts"]);
    let mut db = String::new();
    std::io::Read::read_to_string(&mut zip.by_name("data.db").unwrap(), &mut db).unwrap();
    assert_eq!(db, "snapshot db");
    let entry = zip.by_name("storage/col/rec/f.txt").unwrap();
    assert_eq!(entry.compression(), zip::CompressionMethod::Deflated);
    assert_eq!(entry.unix_mode().unwrap() & 0o777, 0o644);
}

#[test]
fn a_full_disk_fails_the_zip() {
    let data = tempfile::tempdir().unwrap();
    let snapshot = tempfile::tempdir().unwrap();
    write(snapshot.path(), "data.db", &vec![7u8; 256 << 10]);
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        return;
    };
    let error = archive::pack(data.path(), snapshot.path(), &["data.db".to_owned()], full);
    assert!(error.is_err(), "writing to a full device must fail");
}

async fn sqlite_state(dir: &Path) -> SharedState {
    let store =
        store_sqlite::SqliteStore::open(dir, store_sqlite::SqliteOptions::default()).unwrap();
    let config = crate::ServerConfig {
        bcrypt_cost: 4,
        storage_dir: Some(dir.join("storage")),
        data_dir: Some(dir.to_owned()),
        ..crate::ServerConfig::default()
    };
    crate::AppState::new(store, config)
}

#[tokio::test]
async fn a_failed_backup_leaves_no_file_and_no_scratch() {
    let dir = tempfile::tempdir().unwrap();
    let state = sqlite_state(dir.path()).await;
    // A place that cannot take the finished zip: the rename at the end fails.
    let place = Place::Local(dir.path().join("missing").join("backups"));
    let error = make_backup(&state, &place, "x.zip").await.unwrap_err();
    assert!(matches!(error, BackupError::Io(_)), "{error}");
    assert!(!dir.path().join("missing").exists());
    let scratch: Vec<_> = std::fs::read_dir(dir.path().join(TEMP_DIR))
        .unwrap()
        .collect();
    assert!(scratch.is_empty(), "scratch left: {scratch:?}");
    // And a good one lands whole.
    let good = dir.path().join("backups");
    std::fs::create_dir_all(&good).unwrap();
    make_backup(&state, &Place::Local(good.clone()), "y.zip")
        .await
        .unwrap();
    let checked = archive::check(&good.join("y.zip"), archive::DEFAULT_LIMITS).unwrap();
    assert_eq!(checked.files[0], "data.db");
}

#[test]
fn only_one_backup_or_restore_at_a_time() {
    let backups = Backups::default();
    assert!(backups.can_backup());
    let guard = backups.try_begin().unwrap();
    assert!(!backups.can_backup());
    assert!(backups.try_begin().is_none());
    drop(guard);
    assert!(backups.can_backup());
}

#[test]
fn the_swap_moves_data_and_undoes() {
    let data = tempfile::tempdir().unwrap();
    let staged = tempfile::tempdir().unwrap();
    write(data.path(), "data.db", b"old db");
    std::fs::create_dir_all(data.path().join("storage")).unwrap();
    write(&data.path().join("storage"), "old.txt", b"old");
    std::fs::create_dir_all(data.path().join("backups")).unwrap();
    write(&data.path().join("backups"), "keep.zip", b"zip");
    write(staged.path(), "data.db", b"new db");
    std::fs::create_dir_all(staged.path().join("storage")).unwrap();
    write(&staged.path().join("storage"), "new.txt", b"new");

    let mut swap = restore::swap_in(data.path(), staged.path()).unwrap();
    assert_eq!(
        std::fs::read(data.path().join("data.db")).unwrap(),
        b"new db"
    );
    assert!(data.path().join("storage/new.txt").exists());
    assert!(!data.path().join("storage/old.txt").exists());
    assert!(data.path().join("backups/keep.zip").exists());

    swap.undo().unwrap();
    assert_eq!(
        std::fs::read(data.path().join("data.db")).unwrap(),
        b"old db"
    );
    assert!(data.path().join("storage/old.txt").exists());
    assert!(staged.path().join("storage/new.txt").exists());
    assert!(data.path().join("backups/keep.zip").exists());
}

#[test]
fn settings_checks_match_pocketbase() {
    let mut settings = crate::state::settings::Backups::default();
    assert!(settings_errors(&settings).is_empty());
    settings.cron = "nope".into();
    settings.cron_max_keep = 0;
    let json = settings_errors(&settings).into_json();
    assert_eq!(json["cron"]["code"], "validation_invalid_cron");
    assert_eq!(json["cronMaxKeep"]["code"], "validation_required");
    settings.cron = "@daily".into();
    settings.cron_max_keep = 1;
    assert!(settings_errors(&settings).is_empty());
}

#[tokio::test]
async fn upload_size_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("u.zip");
    let chunks = || {
        futures_util::stream::iter(vec![
            Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"12345")),
            Ok(axum::body::Bytes::from_static(b"67890")),
        ])
    };
    receive(chunks(), &path, 10).await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"1234567890");
    let error = receive(chunks(), &path, 9).await.unwrap_err();
    assert_eq!(error.status, axum::http::StatusCode::BAD_REQUEST);
    assert_eq!(error.data["file"]["code"], "validation_file_size_limit");
    assert_eq!(error.data["file"]["params"]["maxSize"], 9);
}

#[tokio::test]
async fn backups_go_to_the_s3_bucket_when_enabled() {
    let Some(moto) = crate::files::tests::start_moto().await else {
        eprintln!("moto_server not available; S3 backups test skipped");
        return;
    };
    let endpoint = moto.endpoint();
    moto.create_bucket("plinth-backups").await;
    let dir = tempfile::tempdir().unwrap();
    let state = sqlite_state(dir.path()).await;
    state
        .store
        .set_param(
            "settings",
            serde_json::json!({"backups": {"s3": {
                "enabled": true, "bucket": "plinth-backups", "region": "us-east-1",
                "endpoint": endpoint, "accessKey": "test", "secret": "test",
                "forcePathStyle": true,
            }}}),
        )
        .await
        .unwrap();
    let place = place(&state).await.unwrap();
    assert!(matches!(place, Place::S3(_)));
    make_backup(&state, &place, "s3.zip").await.unwrap();
    let listed = list_place(&place).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key, "s3.zip");
    assert!(exists(&place, "s3.zip").await.unwrap());
    assert!(!dir.path().join(BACKUPS_DIR).join("s3.zip").exists());
    // What a restore downloads passes the checks.
    let Place::S3(storage) = &place else {
        unreachable!()
    };
    let scratch = Scratch::new(dir.path(), "t_").await.unwrap();
    let local = scratch.path.join("d.zip");
    storage.get_file("s3.zip", &local).await.unwrap();
    verify_zip(&state, &local, &scratch.path, true)
        .await
        .unwrap();
    drop(scratch);
    // Scheduled backups prune only their own kind in the bucket too.
    schedule::run_auto_backup(&state).await.unwrap();
    let keys: Vec<String> = list_place(&place)
        .await
        .unwrap()
        .into_iter()
        .map(|info| info.key)
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().any(|k| k.starts_with("@auto_pb_backup_acme_")));
}

#[test]
fn a_restore_that_will_not_open_is_rolled_back() {
    let data = tempfile::tempdir().unwrap();
    assert!(
        !restore::roll_back(data.path()).unwrap(),
        "nothing to put back"
    );
    let staged = tempfile::tempdir().unwrap();
    write(data.path(), "data.db", b"old db");
    std::fs::create_dir_all(data.path().join("backups")).unwrap();
    write(&data.path().join("backups"), "keep.zip", b"zip");
    write(staged.path(), "data.db", b"broken new db");
    restore::swap_in(data.path(), staged.path()).unwrap();
    assert_eq!(
        std::fs::read(data.path().join("data.db")).unwrap(),
        b"broken new db"
    );
    assert!(restore::roll_back(data.path()).unwrap());
    assert_eq!(
        std::fs::read(data.path().join("data.db")).unwrap(),
        b"old db"
    );
    assert!(data.path().join("backups/keep.zip").exists());
}

#[tokio::test]
async fn file_removals_wait_while_a_backup_runs() {
    use crate::state::storage::Storage;
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::local(dir.path()).expect("storage");
    let key = |name: &str| format!("c1/r1/{name}");
    for name in ["a.txt", "b.txt"] {
        storage
            .put(&key(name), axum::body::Bytes::from_static(b"x"))
            .await
            .expect("put");
    }
    storage
        .put("c1/r2/c.txt", axum::body::Bytes::from_static(b"x"))
        .await
        .expect("put");
    let backups = Backups::default();
    let busy = backups.try_begin().expect("free");
    backups
        .remove_files(
            &storage,
            Removal::Files {
                collection_id: "c1".into(),
                record_id: "r1".into(),
                names: vec!["a.txt".into()],
            },
        )
        .await;
    backups
        .remove_files(
            &storage,
            Removal::Record {
                collection_id: "c1".into(),
                record_id: "r2".into(),
            },
        )
        .await;
    // The backup may still be reading them: both wait.
    assert_eq!(backups.deferred_removals(), 2);
    assert!(storage.exists(&key("a.txt")).await.expect("head"));
    assert!(storage.exists("c1/r2/c.txt").await.expect("head"));
    drop(busy);
    assert_eq!(backups.deferred_removals(), 0);
    // Released: the queued removals run in the background.
    let mut gone = false;
    for _ in 0..200 {
        if !storage.exists(&key("a.txt")).await.expect("head")
            && !storage.exists("c1/r2/c.txt").await.expect("head")
        {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(gone, "the deferred removals ran once the backup ended");
    assert!(storage.exists(&key("b.txt")).await.expect("head"));
    // With no backup running a removal happens at once.
    backups
        .remove_files(
            &storage,
            Removal::Files {
                collection_id: "c1".into(),
                record_id: "r1".into(),
                names: vec!["b.txt".into()],
            },
        )
        .await;
    assert!(!storage.exists(&key("b.txt")).await.expect("head"));
}
