//! The hub in-process: stream lifetimes, slow clients, and the fan-out over a real SQLite
//! store (auth dropped when the auth record goes away or rotates its token key).

use std::sync::Arc;
use std::time::Duration;

use domain::{AuthContext, Record, RecordData, Store, WriteOp};
use futures_util::StreamExt;
use serde_json::{Value, json};
use store_sqlite::SqliteStore;

use super::subscription::Subscription;
use super::{Hub, RealtimeConfig, client_stream};
use crate::state::{AppState, ServerConfig};

fn config(idle_ms: u64, max_ms: u64, buffer: usize) -> RealtimeConfig {
    RealtimeConfig {
        idle_timeout: Duration::from_millis(idle_ms),
        max_lifetime: Duration::from_millis(max_ms),
        client_buffer: buffer,
        ..RealtimeConfig::default()
    }
}

#[tokio::test]
async fn streams_close_when_idle() {
    let hub = Hub::new(config(150, 60_000, 8));
    let (client, receiver) = hub.connect(None);
    let id = client.id.clone();
    let mut stream = Box::pin(client_stream(hub.clone(), client, receiver));
    let first = stream
        .next()
        .await
        .expect("PB_CONNECT")
        .expect("infallible");
    assert_eq!(
        first,
        format!("id:{id}\nevent:PB_CONNECT\ndata:{{\"clientId\":\"{id}\"}}\n\n")
    );
    assert_eq!(hub.client_count(), 1);
    let started = tokio::time::Instant::now();
    let end = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("ends by itself");
    assert!(end.is_none());
    assert!(started.elapsed() >= Duration::from_millis(140));
    drop(stream);
    assert_eq!(hub.client_count(), 0, "the ended client is forgotten");
    assert!(hub.client(&id).is_none());
}

#[tokio::test]
async fn streams_close_at_their_maximum_lifetime_even_when_busy() {
    let hub = Hub::new(config(10_000, 300, 64));
    let (client, receiver) = hub.connect(None);
    let sender = Arc::clone(&client);
    let mut stream = Box::pin(client_stream(hub.clone(), client, receiver));
    let feeder = {
        let hub = hub.clone();
        tokio::spawn(async move {
            for n in 0..40 {
                hub.send(&sender, format!("frame {n}"));
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
    };
    let started = tokio::time::Instant::now();
    let mut received = 0;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
        received += 1;
    }
    let lived = started.elapsed();
    assert!(received > 2, "messages flowed: {received}");
    assert!(
        lived >= Duration::from_millis(250) && lived < Duration::from_millis(900),
        "{lived:?}"
    );
    feeder.abort();
}

#[tokio::test]
async fn a_slow_client_is_dropped_and_others_keep_receiving() {
    let hub = Hub::new(config(60_000, 60_000, 3));
    let (slow, slow_receiver) = hub.connect(None);
    let (fast, mut fast_receiver) = hub.connect(None);
    let mut slow_stream = Box::pin(client_stream(hub.clone(), Arc::clone(&slow), slow_receiver));
    // The fast client keeps up; the slow one never reads past its PB_CONNECT.
    assert!(fast_receiver.recv().await.is_some());
    for n in 0..10 {
        hub.send(&slow, format!("m{n}"));
        hub.send(&fast, format!("m{n}"));
        assert_eq!(
            fast_receiver.recv().await.as_deref(),
            Some(format!("m{n}").as_str())
        );
    }
    assert!(slow.is_closed());
    assert!(hub.client(&slow.id).is_none(), "dropped from the registry");
    assert!(hub.client(&fast.id).is_some());
    let end = tokio::time::timeout(Duration::from_secs(2), slow_stream.next())
        .await
        .expect("the slow stream ends at once");
    assert!(end.is_none());
}

#[tokio::test]
async fn shutdown_ends_every_stream() {
    let hub = Hub::new(config(60_000, 60_000, 8));
    let (client, receiver) = hub.connect(None);
    let mut stream = Box::pin(client_stream(hub.clone(), client, receiver));
    assert!(stream.next().await.is_some());
    hub.shutdown();
    let end = tokio::time::timeout(Duration::from_secs(2), stream.next())
        .await
        .expect("ends at once");
    assert!(end.is_none());
    assert_eq!(hub.client_count(), 0);
}

async fn wait_until(mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..100 {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

fn users_data(store: &dyn Store, email: &str) -> RecordData {
    let users = store.schema().get("users").cloned().expect("users");
    let mut data = RecordData::new();
    for field in &users.fields {
        data.insert(field.name.clone(), field.zero_value());
    }
    data.insert("id".into(), json!(domain::ids::new_record_id()));
    data.insert("email".into(), json!(email));
    data.insert("tokenKey".into(), json!(domain::ids::random_alnum(50)));
    data
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_falls_back_to_guest_when_the_record_changes_key_or_goes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> = SqliteStore::open(dir.path(), Default::default()).expect("opens");
    let state = AppState::new(Arc::clone(&store), ServerConfig::default());
    let users = store.schema().get("users").cloned().expect("users");
    let mut created = Vec::new();
    for email in ["a@example.com", "b@example.com"] {
        let results = store
            .write(vec![WriteOp::Create {
                collection: Arc::clone(&users),
                data: users_data(store.as_ref(), email),
                guard: None,
            }])
            .await
            .expect("created");
        created.push(results[0].record().clone());
    }
    let hub = state.realtime.clone();
    hub.ensure_started(&state).await;
    let as_user = |record: &Record| AuthContext::Record {
        collection: Arc::clone(&users),
        record: Box::new(record.clone()),
        refreshable: true,
    };
    let (a, _a_receiver) = hub.connect(None);
    a.set(as_user(&created[0]), vec![Subscription::parse("users/*")]);
    let (b, _b_receiver) = hub.connect(None);
    b.set(as_user(&created[1]), Vec::new());

    // A plain update keeps the auth, with the new values.
    let rename = |id: &str, changes: Value| WriteOp::Update {
        collection: Arc::clone(&users),
        id: id.to_owned(),
        guard: None,
        apply: Box::new(move |current: &Record| {
            let mut data = current.data.clone();
            if let Value::Object(changes) = changes {
                data.extend(changes);
            }
            Ok(data)
        }),
    };
    store
        .write(vec![rename(created[0].id(), json!({"name": "Ann"}))])
        .await
        .expect("updated");
    assert!(
        wait_until(|| a.auth().record().is_some_and(|r| r.text("name") == "Ann")).await,
        "auth record refreshed"
    );

    // A new token key drops A's auth; deleting B drops B's.
    store
        .write(vec![rename(
            created[0].id(),
            json!({"tokenKey": "rotated"}),
        )])
        .await
        .expect("rotated");
    store
        .write(vec![WriteOp::Delete {
            collection: Arc::clone(&users),
            id: created[1].id().to_owned(),
            guard: None,
        }])
        .await
        .expect("deleted");
    assert!(
        wait_until(|| a.auth().is_guest()).await,
        "rotated key → guest"
    );
    assert!(wait_until(|| b.auth().is_guest()).await, "deleted → guest");
    hub.shutdown();
}

#[tokio::test(flavor = "multi_thread")]
async fn subscriptions_must_come_from_the_stream_ip() {
    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use axum::http::{Request, StatusCode, header};
    use std::net::SocketAddr;
    use tower::ServiceExt;

    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> = SqliteStore::open(dir.path(), Default::default()).expect("opens");
    let state = AppState::new(store, ServerConfig::default());
    let router = crate::router(state.clone());
    let request = |method: &str, body: Body, ip: [u8; 4], port: u16| {
        let mut request = Request::builder()
            .method(method)
            .uri("/api/realtime")
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .expect("request");
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from((ip, port))));
        request
    };

    let response = router
        .clone()
        .oneshot(request("GET", Body::empty(), [10, 0, 0, 1], 4000))
        .await
        .expect("answers");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body().into_data_stream();
    let first = body.next().await.expect("a frame").expect("bytes");
    let first = String::from_utf8_lossy(&first).into_owned();
    let client_id = first
        .strip_prefix("id:")
        .and_then(|rest| rest.split('\n').next())
        .expect("id line")
        .to_owned();

    let subscribe = |ip: [u8; 4], port: u16| {
        let body = json!({"clientId": client_id, "subscriptions": ["users/*"]}).to_string();
        request("POST", Body::from(body), ip, port)
    };
    let response = router
        .clone()
        .oneshot(subscribe([10, 0, 0, 2], 4000))
        .await
        .expect("answers");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let bytes = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .expect("body");
    let error: Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(error["message"], "Invalid realtime client.");

    let response = router
        .clone()
        .oneshot(subscribe([10, 0, 0, 1], 4001))
        .await
        .expect("answers");
    assert_eq!(
        response.status(),
        StatusCode::NO_CONTENT,
        "same IP, other port"
    );
    state.realtime.shutdown();
    assert!(body.next().await.is_none(), "shutdown ends the stream");
}
