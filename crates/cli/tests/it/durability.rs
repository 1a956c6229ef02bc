//! No acknowledged write is lost: the server is killed with SIGKILL in the middle of a
//! concurrent write load (creates and updates from many clients, so SQLite's group commit
//! shares transactions between them), started again on the same data, and every write it
//! acknowledged must be there. It runs with `--sync-full`, the mode whose promise also covers
//! power loss; a process kill alone would not lose a committed transaction under `NORMAL`
//! either (README, "Durability").

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{Launch, TestApp, test_database};

/// Acknowledged creates to reach before the kill.
const ACKNOWLEDGED: usize = 10_000;
/// Concurrent clients writing.
const CLIENTS: usize = 32;

fn launch() -> Launch {
    Launch {
        args: vec!["--sync-full".into()],
        ..Launch::default()
    }
}

/// What the server acknowledged: each record's id and the last `n` it confirmed.
type Acknowledged = Arc<Mutex<HashMap<String, i64>>>;

/// One client: creates a record, updates it once, and again with the next record, until the
/// server stops answering. Records what was acknowledged with a 200.
async fn client(
    client: reqwest::Client,
    base: String,
    worker: usize,
    acknowledged: Acknowledged,
    creates: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) {
    let records = format!("{base}/api/collections/events/records");
    for k in 0.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        // A client-chosen id: 15 characters of [a-z0-9].
        let id = format!("w{worker:03}{k:011}");
        let created = client
            .post(&records)
            .json(&json!({"id": id, "n": 0}))
            .send()
            .await;
        match created {
            Ok(response) if response.status() == 200 => {
                acknowledged.lock().expect("lock").insert(id.clone(), 0);
                creates.fetch_add(1, Ordering::Relaxed);
            }
            Ok(response) => panic!("create answered {}", response.status()),
            // The server is gone.
            Err(_) => return,
        }
        let updated = client
            .patch(format!("{records}/{id}"))
            .json(&json!({"n": 1}))
            .send()
            .await;
        match updated {
            Ok(response) if response.status() == 200 => {
                acknowledged.lock().expect("lock").insert(id, 1);
            }
            Ok(response) => panic!("update answered {}", response.status()),
            Err(_) => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_write_survives_a_kill_during_concurrent_writes() {
    let mut app = TestApp::spawn_launch(&launch()).await;
    let token = app.admin_token().await;
    let (status, body) = app
        .post_json(
            "/api/collections",
            Some(&token),
            json!({
                "name": "events",
                "type": "base",
                "fields": [{"name": "n", "type": "number"}],
                "createRule": "",
                "updateRule": "",
                "viewRule": "",
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let acknowledged: Acknowledged = Arc::default();
    let creates = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(CLIENTS)
        .build()
        .expect("client");
    let mut clients = Vec::new();
    for worker in 0..CLIENTS {
        clients.push(tokio::spawn(client(
            http.clone(),
            app.base.clone(),
            worker,
            Arc::clone(&acknowledged),
            Arc::clone(&creates),
            Arc::clone(&stop),
        )));
    }
    let started = Instant::now();
    while creates.load(Ordering::Relaxed) < ACKNOWLEDGED {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "only {} creates acknowledged in 5 minutes",
            creates.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // On SQLite, the load must have exercised group commit: some transaction held several
    // writes.
    let grouped = if test_database(app.dir.path()).is_none() {
        Some(largest_group(&app, &token).await)
    } else {
        None
    };

    // SIGKILL while the clients are still writing.
    app.child.kill().expect("killed");
    app.child.wait().expect("reaped");
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.expect("client task");
    }
    let acknowledged = std::mem::take(&mut *acknowledged.lock().expect("lock"));
    assert!(acknowledged.len() >= ACKNOWLEDGED);
    if let Some(grouped) = grouped {
        assert!(grouped > 1.0, "no transaction held more than one write");
    }

    // Start again on the same data and read everything back.
    let dir = std::mem::replace(&mut app.dir, tempfile::tempdir().expect("tempdir"));
    drop(app);
    let app = TestApp::spawn_with(dir, &launch());
    let token = app.admin_token().await;
    let mut stored: HashMap<String, i64> = HashMap::new();
    let mut total = None;
    for page in 1.. {
        let (status, body) = app
            .get(
                &format!(
                    "/api/collections/events/records?page={page}&perPage=1000&sort=id&fields=id,n"
                ),
                Some(&token),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        total.get_or_insert(body["totalItems"].as_u64().expect("total"));
        let items = body["items"].as_array().expect("items");
        for item in items {
            let id = item["id"].as_str().expect("id").to_owned();
            stored.insert(id, item["n"].as_i64().expect("n"));
        }
        if items.len() < 1000 {
            break;
        }
    }
    assert_eq!(total, Some(stored.len() as u64));
    let mut lost = Vec::new();
    for (id, n) in &acknowledged {
        match stored.get(id) {
            Some(value) if value >= n => {}
            other => lost.push(format!("{id}: acknowledged n={n}, stored {other:?}")),
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost, e.g. {:?}",
        lost.len(),
        acknowledged.len(),
        &lost[..lost.len().min(5)]
    );
    // At most one create per client was in flight when the server died.
    assert!(stored.len() <= acknowledged.len() + CLIENTS);
    // The data is whole: the restarted server still writes.
    let (status, body) = app
        .post_json("/api/collections/events/records", None, json!({"n": 2}))
        .await;
    assert_eq!(status, 200, "{body}");
}

/// The largest group commit so far, from the histogram's buckets on `/api/metrics`.
async fn largest_group(app: &TestApp, token: &str) -> f64 {
    // The exporter folds samples into buckets every few seconds.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _, text) = crate::metrics::page(app, token).await;
        assert_eq!(status, 200, "{text}");
        // Buckets are cumulative: the smallest bound holding every sample is an upper bound
        // on the largest group, the largest bound holding fewer is a lower one.
        let mut count = None;
        let mut below = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("plinth_store_group_commit_writes_bucket{le=\"") {
                let Some((bound, value)) = rest.split_once("\"} ") else {
                    continue;
                };
                let (Ok(value), Ok(bound)) = (value.parse::<f64>(), bound.parse::<f64>()) else {
                    continue;
                };
                below.push((bound, value));
            }
            if let Some(value) = line.strip_prefix("plinth_store_group_commit_writes_count ") {
                count = value.parse::<f64>().ok();
            }
        }
        if let Some(count) = count.filter(|count| *count > 0.0) {
            // Past the largest bound every sample is counted: the largest group exceeds that
            // bound, so report one more than it.
            let largest = below
                .iter()
                .filter(|(_, value)| *value < count)
                .map(|(bound, _)| bound + 1.0)
                .fold(1.0, f64::max);
            return largest;
        }
        assert!(
            Instant::now() < deadline,
            "no group commit figures on /api/metrics: {}",
            text.lines()
                .filter(|l| l.contains("group_commit"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
