//! The hub in-process: stream lifetimes, slow clients (by count and by bytes), settings
//! applied to open streams, one-client messages, and the fan-out over a real SQLite store
//! (auth dropped when the auth record goes away or rotates its token key, or the collection's
//! token secret changes; events decided on the change's own record state).

use std::sync::Arc;
use std::time::Duration;

use domain::field::RelationOptions;
use domain::store::{Change, ChangeAction};
use domain::{AuthContext, Collection, CollectionType, Field, FieldKind, Record, RecordData};
use domain::{Store, WriteOp};
use futures_util::StreamExt;
use serde_json::{Value, json};
use store_sqlite::SqliteStore;

use super::client_stream;
use super::subscription::Subscription;
use crate::state::hub::{Client, Hub, RealtimeConfig, Refusal};
use crate::state::{AppState, ServerConfig};

/// A hub on its own (no state), expanding as the server's does.
fn hub_with(config: RealtimeConfig) -> Hub {
    Hub::new(config, crate::records::expand_for_realtime)
}

fn config(idle_ms: u64, max_ms: u64, buffer: usize) -> RealtimeConfig {
    RealtimeConfig {
        idle_timeout: Duration::from_millis(idle_ms),
        max_lifetime: Duration::from_millis(max_ms),
        client_buffer: buffer,
        ..RealtimeConfig::default()
    }
}

/// The `(event, data)` of every message waiting for `client`.
fn drain(client: &Client) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    while let Some(frame) = client.pop_frame() {
        let mut event = String::new();
        let mut data = Value::Null;
        for line in frame.trim_end().split('\n') {
            if let Some(rest) = line.strip_prefix("event:") {
                event = rest.to_owned();
            } else if let Some(rest) = line.strip_prefix("data:") {
                data = serde_json::from_str(rest).expect("json data");
            } else {
                assert_eq!(line, format!("id:{}", client.id), "{frame}");
            }
        }
        out.push((event, data));
    }
    out
}

#[tokio::test]
async fn streams_close_when_idle() {
    let hub = hub_with(config(150, 60_000, 8));
    let client = hub.connect(None).expect("connects");
    let id = client.id.to_string();
    let mut stream = Box::pin(client_stream(hub.clone(), client));
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
    let hub = hub_with(config(10_000, 300, 64));
    let client = hub.connect(None).expect("connects");
    let sender = Arc::clone(&client);
    let mut stream = Box::pin(client_stream(hub.clone(), client));
    let feeder = {
        let hub = hub.clone();
        tokio::spawn(async move {
            for n in 0..40 {
                hub.send(&sender, "e", &format!("frame {n}"));
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
    let hub = hub_with(config(60_000, 60_000, 3));
    let slow = hub.connect(None).expect("connects");
    let fast = hub.connect(None).expect("connects");
    let mut slow_stream = Box::pin(client_stream(hub.clone(), Arc::clone(&slow)));
    // The fast client keeps up; the slow one never reads past its PB_CONNECT.
    assert!(slow_stream.next().await.is_some());
    let mut slow_accepted = 0;
    for n in 0..10 {
        slow_accepted += usize::from(hub.send(&slow, "e", &format!("m{n}")));
        assert!(hub.send(&fast, "e", &format!("m{n}")));
        let frame = fast.pop_frame().expect("queued");
        assert!(
            frame.ends_with(&format!("event:e\ndata:m{n}\n\n")),
            "{frame}"
        );
    }
    assert_eq!(slow_accepted, 3, "the bound is three messages");
    assert!(slow.is_closed());
    assert_eq!(slow.queued(), (0, 0), "a dropped client's queue is freed");
    assert!(hub.client(&slow.id).is_none(), "dropped from the registry");
    assert!(hub.client(&fast.id).is_some());
    let end = tokio::time::timeout(Duration::from_secs(2), slow_stream.next())
        .await
        .expect("the slow stream ends at once");
    assert!(end.is_none());
}

#[tokio::test]
async fn a_client_holding_too_many_bytes_is_dropped() {
    let hub = hub_with(RealtimeConfig {
        client_buffer_bytes: 10_000,
        ..config(60_000, 60_000, 1000)
    });
    let client = hub.connect(None).expect("connects");
    let big = "x".repeat(4_000);
    // A message bigger than the whole bound is still accepted into an empty queue.
    let huge = "y".repeat(50_000);
    assert!(hub.send(&client, "e", &huge));
    assert!(client.pop_frame().is_some());
    assert_eq!(client.queued(), (0, 0));
    assert!(hub.send(&client, "e", &big));
    assert!(hub.send(&client, "e", &big));
    let (count, bytes) = client.queued();
    assert_eq!(count, 2);
    assert!(bytes > 8_000 && bytes < 10_000, "{bytes}");
    // A third would take it past 10,000 bytes: disconnected like a slow client.
    assert!(!hub.send(&client, "e", &big));
    assert!(client.is_closed());
    assert!(hub.client(&client.id).is_none());
    assert_eq!(client.queued(), (0, 0));
    // Small messages still flow to a client that keeps up.
    let other = hub.connect(None).expect("connects");
    for _ in 0..100 {
        assert!(hub.send(&other, "e", &big));
        assert!(other.pop_frame().is_some());
    }
    assert!(!other.is_closed());
}

#[tokio::test]
async fn settings_change_the_lifetimes_of_open_streams() {
    let hub = hub_with(config(60_000, 60_000, 8));
    let client = hub.connect(None).expect("connects");
    let mut stream = Box::pin(client_stream(hub.clone(), Arc::clone(&client)));
    assert!(stream.next().await.is_some());
    hub.apply_settings(&crate::state::settings::Realtime {
        idle_timeout: 1,
        ..Default::default()
    });
    assert_eq!(hub.config().idle_timeout, Duration::from_secs(1));
    // The stream sleeps until its old deadline; a message wakes it and the new one applies.
    assert!(hub.send(&client, "e", "wake"));
    assert!(stream.next().await.is_some());
    let started = tokio::time::Instant::now();
    let end = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("closes after the new idle timeout");
    assert!(end.is_none());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[tokio::test]
async fn message_client_reaches_only_a_subscribed_client() {
    let hub = hub_with(config(60_000, 60_000, 8));
    let waiting = hub.connect(None).expect("connects");
    waiting.set(
        AuthContext::Guest,
        vec![
            Subscription::parse("@oauth2"),
            Subscription::parse("posts/*"),
        ],
    );
    let other = hub.connect(None).expect("connects");
    other.set(AuthContext::Guest, vec![Subscription::parse("posts/*")]);

    assert!(hub.message_client(&waiting.id, "@oauth2", r#"{"code":"c","state":"s"}"#));
    assert_eq!(
        drain(&waiting),
        [("@oauth2".to_owned(), json!({"code": "c", "state": "s"}))]
    );
    // The subscription is used up (as PocketBase's OAuth2 redirect does); the others stay.
    assert!(!hub.message_client(&waiting.id, "@oauth2", "{}"));
    assert!(drain(&waiting).is_empty());
    assert_eq!(
        waiting
            .subscriptions()
            .iter()
            .map(|s| s.raw.to_string())
            .collect::<Vec<_>>(),
        ["posts/*"]
    );
    waiting.set(AuthContext::Guest, vec![Subscription::parse("@oauth2")]);
    assert!(
        !hub.message_client(&other.id, "@oauth2", "{}"),
        "not subscribed"
    );
    assert!(drain(&other).is_empty());
    assert!(!hub.message_client("nosuchclient", "@oauth2", "{}"));
    assert!(
        !hub.message_client(&waiting.id, "@oauth", "{}"),
        "topics match exactly"
    );
    hub.disconnect(&waiting.id);
    assert!(!hub.message_client(&waiting.id, "@oauth2", "{}"), "gone");
}

#[tokio::test]
async fn message_any_reaches_a_client_subscribed_or_not_until_it_is_discarded() {
    let hub = hub_with(config(60_000, 60_000, 8));
    let client = hub.connect(None).expect("connects");
    client.set(AuthContext::Guest, vec![Subscription::parse("news")]);
    assert!(hub.message_any(&client.id, "news", r#"{"n":1}"#));
    assert!(hub.message_any(&client.id, "elsewhere", "2"));
    assert_eq!(
        drain(&client),
        [
            ("news".to_owned(), json!({"n": 1})),
            ("elsewhere".to_owned(), json!(2))
        ]
    );
    // Unlike the OAuth2 relay, sending uses no subscription up.
    assert!(client.has_subscription("news"));
    assert!(!hub.message_any("nosuchclient", "news", "{}"));

    hub.discard(&client);
    assert!(client.is_closed());
    assert!(hub.client(&client.id).is_none());
    assert!(!hub.message_any(&client.id, "news", "{}"), "gone");
}

#[tokio::test]
async fn shutdown_ends_every_stream() {
    let hub = hub_with(config(60_000, 60_000, 8));
    let client = hub.connect(None).expect("connects");
    let mut stream = Box::pin(client_stream(hub.clone(), client));
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
        record: Arc::new(record.clone()),
        refreshable: true,
    };
    let a = hub.connect(None).expect("connects");
    a.set(as_user(&created[0]), vec![Subscription::parse("users/*")]);
    let b = hub.connect(None).expect("connects");
    b.set(as_user(&created[1]), Vec::new());

    // A plain update keeps the auth, with the new values.
    let rename = |id: &str, changes: Value| WriteOp::Update {
        collection: Arc::clone(&users),
        id: id.to_owned(),
        guard: None,
        apply: Box::new(move |current: &Record| {
            let mut data = current.data.clone();
            if let Value::Object(changes) = changes.clone() {
                data.extend(changes);
            }
            Ok(data)
        }),
        known: None,
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

#[tokio::test(flavor = "multi_thread")]
async fn behind_a_trusted_proxy_the_forwarded_ips_are_compared() {
    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use axum::http::{Request, StatusCode, header};
    use std::net::SocketAddr;
    use tower::ServiceExt;

    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> = SqliteStore::open(dir.path(), Default::default()).expect("opens");
    store
        .set_param(
            "settings",
            json!({"trustedProxy": {"headers": ["X-Forwarded-For"], "useLeftmostIP": false}}),
        )
        .await
        .expect("settings stored");
    let state = AppState::new(store, ServerConfig::default());
    let router = crate::router(state.clone());
    // Every request comes from the proxy at 10.0.0.1.
    let request = |method: &str, body: Body, forwarded: Option<&str>| {
        let mut builder = Request::builder()
            .method(method)
            .uri("/api/realtime")
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(forwarded) = forwarded {
            builder = builder.header("x-forwarded-for", forwarded);
        }
        let mut request = builder.body(body).expect("request");
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([10, 0, 0, 1], 4000))));
        request
    };
    let response = router
        .clone()
        .oneshot(request("GET", Body::empty(), Some("1.1.1.1, 9.9.9.9")))
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
    let subscribe = |forwarded: Option<&str>| {
        let body = json!({"clientId": client_id, "subscriptions": ["users/*"]}).to_string();
        request("POST", Body::from(body), forwarded)
    };
    // The rightmost forwarded address is the client (useLeftmostIP off), as in PocketBase.
    for (forwarded, expected) in [
        (Some("2.2.2.2"), StatusCode::BAD_REQUEST),
        (None, StatusCode::BAD_REQUEST),
        (Some("3.3.3.3, 9.9.9.9"), StatusCode::NO_CONTENT),
    ] {
        let response = router
            .clone()
            .oneshot(subscribe(forwarded))
            .await
            .expect("answers");
        assert_eq!(response.status(), expected, "{forwarded:?}");
    }
    state.realtime.shutdown();
}

fn text_field(name: &str) -> Field {
    Field::new(name, FieldKind::Text(Default::default()))
}

/// `teams(state)` and `posts(title, team)` whose list rule reads through the relation
/// (`team.state = "open"`: a check that needs SQL), with an open and a closed team and one
/// post stored in the closed team.
async fn relation_fixture(store: &Arc<dyn Store>) -> (Arc<Collection>, [String; 2], String) {
    let mut teams = Collection::scaffold(CollectionType::Base, "teams");
    teams.id = "pbc_teams".into();
    teams.fields.push(text_field("state"));
    teams.list_rule = Some(String::new());
    store.create_collection(teams).await.expect("teams");
    let mut posts = Collection::scaffold(CollectionType::Base, "posts");
    posts.id = "pbc_posts".into();
    posts.fields.push(text_field("title"));
    posts.fields.push(Field::new(
        "team",
        FieldKind::Relation(RelationOptions {
            collection_id: "pbc_teams".into(),
            max_select: 1,
            ..Default::default()
        }),
    ));
    posts.list_rule = Some("team.state = 'open'".into());
    posts.view_rule = Some("team.state = 'open' && title != 'hidden'".into());
    store.create_collection(posts).await.expect("posts");
    let schema = store.schema();
    let teams = schema.get("teams").cloned().expect("teams");
    let posts = schema.get("posts").cloned().expect("posts");
    let mut team_ids = Vec::new();
    for state in ["open", "closed"] {
        let data = row(&teams, json!({"state": state}));
        team_ids.push(data["id"].as_str().expect("id").to_owned());
        store
            .write(vec![WriteOp::Create {
                collection: Arc::clone(&teams),
                data,
                guard: None,
            }])
            .await
            .expect("team");
    }
    let post = row(&posts, json!({"title": "now", "team": team_ids[1]}));
    let post_id = post["id"].as_str().expect("id").to_owned();
    store
        .write(vec![WriteOp::Create {
            collection: Arc::clone(&posts),
            data: post,
            guard: None,
        }])
        .await
        .expect("post");
    let [open, closed] = <[String; 2]>::try_from(team_ids).expect("two teams");
    (posts, [open, closed], post_id)
}

fn row(collection: &Collection, values: Value) -> RecordData {
    let mut data = RecordData::new();
    for field in &collection.fields {
        data.insert(field.name.clone(), field.zero_value());
    }
    data.insert("id".into(), json!(domain::ids::new_record_id()));
    if let Value::Object(values) = values {
        data.extend(values);
    }
    data
}

fn change(collection: &Collection, action: ChangeAction, data: RecordData) -> Change {
    let record = Record::new(data);
    Change {
        seq: 1_000_000,
        collection_id: collection.id.clone(),
        record_id: record.id().to_owned(),
        action,
        record,
        created_ms: 0,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn events_are_decided_and_shown_as_of_their_change() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> = SqliteStore::open(dir.path(), Default::default()).expect("opens");
    let (posts, [open, closed], post_id) = relation_fixture(&store).await;
    let state = AppState::new(Arc::clone(&store), ServerConfig::default());
    let hub = state.realtime.clone();
    let list = hub.connect(None).expect("connects");
    list.set(AuthContext::Guest, vec![Subscription::parse("posts/*")]);
    let one = hub.connect(None).expect("connects");
    one.set(
        AuthContext::Guest,
        vec![Subscription::parse(&format!("posts/{post_id}"))],
    );

    // The stored row is in the closed team now, but this update put it in the open one: the
    // event is delivered, showing the record as it was then.
    let then = row(
        &posts,
        json!({"id": post_id, "title": "then", "team": open}),
    );
    hub.deliver_for_test(&state, &change(&posts, ChangeAction::Update, then))
        .await;
    let got = drain(&list);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, "posts/*");
    assert_eq!(got[0].1["action"], "update");
    assert_eq!(got[0].1["record"]["title"], "then");
    assert_eq!(got[0].1["record"]["team"], open.as_str());
    assert_eq!(drain(&one).len(), 1, "the view rule passes too");

    // And the other way round: a change into the closed team reaches no one, although…
    let closed_then = row(
        &posts,
        json!({"id": post_id, "title": "then", "team": closed}),
    );
    hub.deliver_for_test(&state, &change(&posts, ChangeAction::Update, closed_then))
        .await;
    assert!(drain(&list).is_empty());
    assert!(drain(&one).is_empty());
    // …the view rule's row-local part is decided on the change's state too.
    let hidden = row(
        &posts,
        json!({"id": post_id, "title": "hidden", "team": open}),
    );
    hub.deliver_for_test(&state, &change(&posts, ChangeAction::Update, hidden))
        .await;
    assert_eq!(drain(&list).len(), 1);
    assert!(
        drain(&one).is_empty(),
        "the view rule refuses title 'hidden'"
    );
    hub.shutdown();
}

#[tokio::test(flavor = "multi_thread")]
async fn deletes_are_checked_against_the_last_state() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> = SqliteStore::open(dir.path(), Default::default()).expect("opens");
    let (posts, [open, closed], _) = relation_fixture(&store).await;
    let state = AppState::new(Arc::clone(&store), ServerConfig::default());
    let hub = state.realtime.clone();
    hub.ensure_started(&state).await;
    let guest = hub.connect(None).expect("connects");
    guest.set(AuthContext::Guest, vec![Subscription::parse("posts/*")]);
    // A filter through the relation as well: only posts of the open team named "a".
    let filtered = hub.connect(None).expect("connects");
    filtered.set(
        AuthContext::Guest,
        vec![Subscription::parse(
            "posts/*?options=%7B%22query%22%3A%7B%22filter%22%3A%22team.state%20%3D%20'open'%20%26%26%20title%20%3D%20'a'%22%7D%7D",
        )],
    );
    let mut ids = Vec::new();
    for (title, team) in [("a", &open), ("b", &open), ("c", &closed)] {
        let data = row(&posts, json!({"title": title, "team": team}));
        ids.push(data["id"].as_str().expect("id").to_owned());
        store
            .write(vec![WriteOp::Create {
                collection: Arc::clone(&posts),
                data,
                guard: None,
            }])
            .await
            .expect("created");
    }
    assert!(
        wait_until(|| guest.queued().0 == 2).await,
        "creates in the open team arrive"
    );
    // The relation filter is decided in SQL, on the client's backlog worker: its event may
    // come after the guest's.
    assert!(
        wait_until(|| filtered.queued().0 == 1).await,
        "the filtered create arrives"
    );
    assert_eq!(drain(&guest).len(), 2);
    assert_eq!(drain(&filtered).len(), 1);
    for id in &ids {
        store
            .write(vec![WriteOp::Delete {
                collection: Arc::clone(&posts),
                id: id.clone(),
                guard: None,
            }])
            .await
            .expect("deleted");
    }
    assert!(wait_until(|| guest.queued().0 == 2).await);
    assert!(wait_until(|| filtered.queued().0 >= 1).await);
    // Give a wrongly delivered third event time to show up.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = drain(&guest);
    let titles: Vec<&str> = got
        .iter()
        .map(|(_, data)| data["record"]["title"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(titles, ["a", "b"], "{got:?}");
    assert!(got.iter().all(|(_, data)| data["action"] == "delete"));
    let got = drain(&filtered);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].1["record"]["title"], "a");
    hub.shutdown();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_token_secret_drops_the_auth_of_that_collection_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> = SqliteStore::open(dir.path(), Default::default()).expect("opens");
    let state = AppState::new(Arc::clone(&store), ServerConfig::default());
    let users = store.schema().get("users").cloned().expect("users");
    let results = store
        .write(vec![WriteOp::Create {
            collection: Arc::clone(&users),
            data: users_data(store.as_ref(), "a@example.com"),
            guard: None,
        }])
        .await
        .expect("created");
    let user = results[0].record().clone();
    let hub = state.realtime.clone();
    hub.ensure_started(&state).await;
    let as_user = AuthContext::Record {
        collection: Arc::clone(&users),
        record: Arc::new(user),
        refreshable: true,
    };
    let a = hub.connect(None).expect("connects");
    a.set(as_user.clone(), Vec::new());
    let b = hub.connect(None).expect("connects");
    b.set(as_user, Vec::new());

    // A change that keeps the secret (a rule) keeps the auth.
    let mut changed = (*users).clone();
    changed.list_rule = Some("id != ''".into());
    store.update_collection(changed).await.expect("updated");
    tokio::time::sleep(Duration::from_millis(300)).await;
    hub.deliver_for_test(
        &state,
        &change(&users, ChangeAction::Update, RecordData::new()),
    )
    .await;
    assert!(!a.auth().is_guest(), "same secret, still signed in");

    let mut rotated = (*store.schema().get("users").cloned().expect("users")).clone();
    if let Some(auth) = rotated.auth.as_mut() {
        auth.auth_token.secret = domain::ids::random_alnum(50);
    }
    store.update_collection(rotated).await.expect("rotated");
    // Delivering any change first drops the stale auth.
    hub.deliver_for_test(
        &state,
        &change(&users, ChangeAction::Update, RecordData::new()),
    )
    .await;
    assert!(a.auth().is_guest());
    assert!(b.auth().is_guest());
    hub.shutdown();
}

#[tokio::test(flavor = "multi_thread")]
async fn rules_through_a_self_relation_read_the_stored_rows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> = SqliteStore::open(dir.path(), Default::default()).expect("opens");
    let mut nodes = Collection::scaffold(CollectionType::Base, "nodes");
    nodes.id = "pbc_nodes".into();
    nodes.fields.push(text_field("title"));
    nodes.fields.push(Field::new(
        "parent",
        FieldKind::Relation(RelationOptions {
            collection_id: "pbc_nodes".into(),
            max_select: 1,
            ..Default::default()
        }),
    ));
    nodes.list_rule = Some("parent.title = 'root'".into());
    store.create_collection(nodes).await.expect("nodes");
    let nodes = store.schema().get("nodes").cloned().expect("nodes");
    let root = row(&nodes, json!({"title": "root"}));
    let root_id = root["id"].as_str().expect("id").to_owned();
    store
        .write(vec![WriteOp::Create {
            collection: Arc::clone(&nodes),
            data: root,
            guard: None,
        }])
        .await
        .expect("root");
    let state = AppState::new(Arc::clone(&store), ServerConfig::default());
    let hub = state.realtime.clone();
    let guest = hub.connect(None).expect("connects");
    guest.set(AuthContext::Guest, vec![Subscription::parse("nodes/*")]);
    let child = row(&nodes, json!({"title": "child", "parent": root_id}));
    hub.deliver_for_test(&state, &change(&nodes, ChangeAction::Create, child))
        .await;
    let got = drain(&guest);
    assert_eq!(got.len(), 1, "the parent is a stored row: {got:?}");
    assert_eq!(got[0].1["record"]["title"], "child");
    let orphan = row(
        &nodes,
        json!({"title": "orphan", "parent": "nosuchnode00000"}),
    );
    hub.deliver_for_test(&state, &change(&nodes, ChangeAction::Delete, orphan))
        .await;
    assert!(drain(&guest).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn changes_committed_before_a_subscription_are_not_its_events() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> = SqliteStore::open(dir.path(), Default::default()).expect("opens");
    let (posts, [open, _], _) = relation_fixture(&store).await;
    let state = AppState::new(Arc::clone(&store), ServerConfig::default());
    let hub = state.realtime.clone();
    let change = change(
        &posts,
        ChangeAction::Create,
        row(&posts, json!({"title": "a", "team": open})),
    );
    // Subscribed when the change had already committed (the hub had not read it yet).
    let late = hub.connect(None).expect("connects");
    let mut subscription = Subscription::parse("posts/*");
    subscription.since = change.seq;
    late.set(AuthContext::Guest, vec![subscription]);
    // Subscribed just before it.
    let early = hub.connect(None).expect("connects");
    let mut subscription = Subscription::parse("posts/*");
    subscription.since = change.seq - 1;
    early.set(AuthContext::Guest, vec![subscription]);

    hub.deliver_for_test(&state, &change).await;
    assert!(drain(&late).is_empty());
    let got = drain(&early);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].1["action"], "create");
    hub.shutdown();
}

#[test]
fn clients_are_capped_in_total_and_per_ip() {
    let hub = hub_with(RealtimeConfig {
        max_clients: 3,
        max_clients_per_ip: 2,
        ..RealtimeConfig::default()
    });
    let ip = |text: &str| Some(text.to_owned());
    let first = hub.connect(ip("10.0.0.1")).expect("first");
    hub.connect(ip("10.0.0.1"))
        .expect("second from the same IP");
    assert_eq!(
        hub.connect(ip("10.0.0.1")).err(),
        Some(Refusal::TooManyFromIp)
    );
    hub.connect(ip("10.0.0.2")).expect("another IP");
    assert_eq!(hub.connect(ip("10.0.0.3")).err(), Some(Refusal::Full));
    hub.disconnect(&first.id);
    hub.connect(ip("10.0.0.1"))
        .expect("a disconnected client frees its IP's place");
    assert_eq!(hub.client_count(), 3);
}

#[test]
fn exempt_clients_skip_the_per_ip_cap_but_not_the_total() {
    let hub = hub_with(RealtimeConfig {
        max_clients: 4,
        max_clients_per_ip: 2,
        ..RealtimeConfig::default()
    });
    let loopback = || Some("127.0.0.1".to_owned());
    let clients: Vec<_> = (0..3)
        .map(|n| {
            hub.connect_from(loopback(), false)
                .unwrap_or_else(|_| panic!("exempt client {n}"))
        })
        .collect();
    assert_eq!(
        hub.connect_from(Some("10.0.0.1".into()), true).map(|_| ()),
        Ok(())
    );
    assert_eq!(
        hub.connect_from(loopback(), false).err(),
        Some(Refusal::Full)
    );
    for client in &clients {
        hub.disconnect(&client.id);
    }
    assert_eq!(hub.client_count(), 1);
}

/// `nodes(label, links)`: a public self-relation of 60 rows, each linking the next 50, so a
/// check through `links.links.links` walks 125,000 joined rows. Returns the collection and
/// the row ids.
async fn link_graph(store: &Arc<dyn Store>) -> (Arc<Collection>, Vec<String>) {
    let mut nodes = Collection::scaffold(CollectionType::Base, "nodes");
    nodes.id = "pbc_nodes".into();
    nodes.fields.push(text_field("label"));
    nodes.fields.push(Field::new(
        "links",
        FieldKind::Relation(RelationOptions {
            collection_id: "pbc_nodes".into(),
            max_select: 100,
            ..Default::default()
        }),
    ));
    nodes.list_rule = Some(String::new());
    store.create_collection(nodes).await.expect("nodes");
    let nodes = store.schema().get("nodes").cloned().expect("nodes");
    let ids: Vec<String> = (0..60).map(|_| domain::ids::new_record_id()).collect();
    let creates = ids
        .iter()
        .enumerate()
        .map(|(n, id)| WriteOp::Create {
            collection: Arc::clone(&nodes),
            data: row(&nodes, json!({"id": id, "label": format!("row{n}")})),
            guard: None,
        })
        .collect();
    store.write(creates).await.expect("rows");
    let links = ids
        .iter()
        .enumerate()
        .map(|(n, id)| {
            let targets: Vec<String> = ids.iter().cycle().skip(n + 1).take(50).cloned().collect();
            WriteOp::Update {
                collection: Arc::clone(&nodes),
                id: id.clone(),
                guard: None,
                apply: Box::new(move |record: &Record| {
                    let mut data = record.data.clone();
                    data.insert("links".into(), json!(targets));
                    Ok(data)
                }),
                known: None,
            }
        })
        .collect();
    store.write(links).await.expect("links");
    (nodes, ids)
}

/// `options` for a subscription topic, percent-encoded.
fn with_options(topic: &str, options: &Value) -> String {
    let encoded: String =
        url::form_urlencoded::byte_serialize(options.to_string().as_bytes()).collect();
    format!("{topic}?options={encoded}")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expensive_client_does_not_hold_up_a_cheap_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> = SqliteStore::open(dir.path(), Default::default()).expect("opens");
    let (nodes, ids) = link_graph(&store).await;
    let state = AppState::new(Arc::clone(&store), ServerConfig::default());
    let hub = state.realtime.clone();
    let heavy = hub.connect(None).expect("connects");
    heavy.set(
        AuthContext::Guest,
        (0..200)
            .map(|n| {
                let filter = format!("links.links.links.label ?~ 'zz{n}'");
                Subscription::parse(&with_options(
                    "nodes/*",
                    &json!({"query": {"filter": filter}}),
                ))
            })
            .collect(),
    );
    let cheap = hub.connect(None).expect("connects");
    cheap.set(AuthContext::Guest, vec![Subscription::parse("nodes/*")]);
    let created = change(
        &nodes,
        ChangeAction::Create,
        row(&nodes, json!({"label": "new", "links": &ids[..50]})),
    );
    // 200 checks of a second or so each are queued behind the heavy client, not done here.
    tokio::time::timeout(
        Duration::from_secs(10),
        hub.deliver_without_waiting(&state, &created),
    )
    .await
    .expect("the fan-out does not wait for the heavy client's checks");
    let got = drain(&cheap);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].1["record"]["label"], "new");
    assert!(
        heavy.has_backlog(),
        "the heavy client's checks run in its backlog"
    );
    hub.shutdown();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_with_a_backlog_gets_its_events_in_log_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> = SqliteStore::open(dir.path(), Default::default()).expect("opens");
    let (posts, [open, _], _) = relation_fixture(&store).await;
    let teams = store.schema().get("teams").cloned().expect("teams");
    let state = AppState::new(Arc::clone(&store), ServerConfig::default());
    let hub = state.realtime.clone();
    let client = hub.connect(None).expect("connects");
    // posts' list rule reads the team (SQL); teams' is public (decided in memory).
    client.set(
        AuthContext::Guest,
        vec![
            Subscription::parse("posts/*"),
            Subscription::parse("teams/*"),
        ],
    );
    let post = change(
        &posts,
        ChangeAction::Create,
        row(&posts, json!({"title": "p", "team": open})),
    );
    let team = change(
        &teams,
        ChangeAction::Create,
        row(&teams, json!({"state": "t"})),
    );
    hub.deliver_without_waiting(&state, &post).await;
    hub.deliver_for_test(&state, &team).await;
    let events: Vec<String> = drain(&client).into_iter().map(|(event, _)| event).collect();
    assert_eq!(events, ["posts/*", "teams/*"]);
    hub.shutdown();
}

#[tokio::test(flavor = "current_thread")]
async fn a_client_too_far_behind_on_its_checks_is_dropped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> = SqliteStore::open(dir.path(), Default::default()).expect("opens");
    let (posts, [open, _], _) = relation_fixture(&store).await;
    let state = AppState::new(Arc::clone(&store), ServerConfig::default());
    let hub = state.realtime.clone();
    hub.apply_settings(&crate::state::settings::Realtime {
        client_queue_messages: 2,
        ..Default::default()
    });
    let behind = hub.connect(None).expect("connects");
    behind.set(AuthContext::Guest, vec![Subscription::parse("posts/*")]);
    // On one thread the worker cannot run before this test yields, so the backlog grows.
    for title in ["a", "b", "c"] {
        let post = change(
            &posts,
            ChangeAction::Create,
            row(&posts, json!({"title": title, "team": open})),
        );
        hub.deliver_without_waiting(&state, &post).await;
    }
    assert!(behind.is_closed(), "a third change past a backlog of two");
    assert!(hub.client(&behind.id).is_none());
    hub.shutdown();
}

#[tokio::test(flavor = "current_thread")]
async fn a_client_whose_backlog_holds_too_many_bytes_is_dropped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> = SqliteStore::open(dir.path(), Default::default()).expect("opens");
    let (posts, [open, _], _) = relation_fixture(&store).await;
    let state = AppState::new(Arc::clone(&store), ServerConfig::default());
    let hub = state.realtime.clone();
    hub.apply_settings(&crate::state::settings::Realtime {
        client_queue_bytes: 64 << 10,
        ..Default::default()
    });
    let behind = hub.connect(None).expect("connects");
    behind.set(AuthContext::Guest, vec![Subscription::parse("posts/*")]);
    let big = "x".repeat(40 << 10);
    // On one thread the worker cannot run before this test yields, so the backlog grows.
    let first = change(
        &posts,
        ChangeAction::Create,
        row(&posts, json!({"title": big, "team": open})),
    );
    hub.deliver_without_waiting(&state, &first).await;
    assert!(
        !behind.is_closed(),
        "one change always fits an empty backlog"
    );
    assert!(
        behind.backlog_bytes() > 40 << 10,
        "{}",
        behind.backlog_bytes()
    );
    assert_eq!(hub.backlogs_held(), behind.backlog_bytes());
    hub.deliver_without_waiting(&state, &first).await;
    assert!(
        behind.is_closed(),
        "a second 40 KiB change past a 64 KiB backlog"
    );
    assert!(hub.client(&behind.id).is_none());
    assert_eq!(
        hub.backlogs_held(),
        0,
        "a dropped client's backlog is let go"
    );
    hub.shutdown();
}

#[tokio::test(flavor = "current_thread")]
async fn all_backlogs_together_are_bounded_by_bytes_counting_a_shared_change_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> = SqliteStore::open(dir.path(), Default::default()).expect("opens");
    let (posts, [open, _], _) = relation_fixture(&store).await;
    let state = AppState::new(Arc::clone(&store), ServerConfig::default());
    let hub = state.realtime.clone();
    hub.set_backlog_budget(60 << 10);
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let client = hub.connect(None).expect("connects");
            client.set(AuthContext::Guest, vec![Subscription::parse("posts/*")]);
            client
        })
        .collect();
    let big = change(
        &posts,
        ChangeAction::Create,
        row(&posts, json!({"title": "x".repeat(40 << 10), "team": open})),
    );
    hub.deliver_without_waiting(&state, &big).await;
    assert!(
        clients.iter().all(|client| !client.is_closed()),
        "one change in two backlogs is held once"
    );
    let held = hub.backlogs_held();
    assert!((40 << 10..60 << 10).contains(&held), "{held}");
    hub.deliver_without_waiting(&state, &big).await;
    assert!(
        clients.iter().all(|client| client.is_closed()),
        "a second change would take the backlogs past their budget"
    );
    assert_eq!(hub.backlogs_held(), 0);
    hub.shutdown();
}

#[tokio::test(flavor = "current_thread")]
async fn a_client_with_many_subscriptions_is_decided_in_its_backlog() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> = SqliteStore::open(dir.path(), Default::default()).expect("opens");
    relation_fixture(&store).await;
    let teams = store.schema().get("teams").cloned().expect("teams");
    let state = AppState::new(Arc::clone(&store), ServerConfig::default());
    let hub = state.realtime.clone();
    let many = hub.connect(None).expect("connects");
    // Each filter is decided in memory, but there are more than the fan-out decides for one
    // client per change.
    let topics: Vec<String> = (0..20)
        .map(|n| {
            let filter = format!("state != 'zz{n}'");
            with_options("teams/*", &json!({"query": {"filter": filter}}))
        })
        .collect();
    many.set(
        AuthContext::Guest,
        topics
            .iter()
            .map(|topic| Subscription::parse(topic))
            .collect(),
    );
    let few = hub.connect(None).expect("connects");
    few.set(AuthContext::Guest, vec![Subscription::parse("teams/*")]);
    let team = change(
        &teams,
        ChangeAction::Create,
        row(&teams, json!({"state": "new"})),
    );
    hub.deliver_without_waiting(&state, &team).await;
    assert_eq!(drain(&few).len(), 1, "decided at once");
    assert!(drain(&many).is_empty(), "not yet: queued in its backlog");
    assert!(many.has_backlog());
    hub.deliver_for_test(
        &state,
        &change(&teams, ChangeAction::Delete, team.record.data.clone()),
    )
    .await;
    let events: Vec<String> = drain(&many).into_iter().map(|(event, _)| event).collect();
    let expected: Vec<String> = topics.iter().chain(&topics).cloned().collect();
    assert_eq!(
        events, expected,
        "every subscription, both changes, in order"
    );
    hub.shutdown();
}

/// Issue #11: the subscription body was parsed without the JSON bounds every other body
/// has, and up to the server-wide 32 MiB. Past [`super::MAX_SUBSCRIBE_BODY`] it is 413; a body
/// nested past the depth bound is PocketBase's generic 400, not a parse of it.
#[tokio::test]
async fn subscription_bodies_are_bounded() {
    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use axum::http::{Request, StatusCode, header};
    use std::net::SocketAddr;
    use tower::ServiceExt;

    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> = SqliteStore::open(dir.path(), Default::default()).expect("opens");
    let state = AppState::new(store, ServerConfig::default());
    let router = crate::router(state.clone());
    let post = |body: Vec<u8>| {
        let mut request = Request::builder()
            .method("POST")
            .uri("/api/realtime")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .expect("request");
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([10, 0, 0, 1], 4000))));
        request
    };
    let answer = |response: axum::response::Response| async move {
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        (
            status,
            serde_json::from_slice::<Value>(&bytes).expect("json"),
        )
    };

    let mut big = br#"{"clientId":"x","subscriptions":[""#.to_vec();
    big.resize(super::MAX_SUBSCRIBE_BODY + 1, b'a');
    big.extend_from_slice(br#""]}"#);
    let (status, body) = answer(router.clone().oneshot(post(big)).await.expect("answers")).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["status"], 413);

    let depth = domain::values::MAX_JSON_DEPTH + 1;
    let deep = format!(
        r#"{{"clientId":"x","subscriptions":[],"options":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let (status, body) = answer(
        router
            .clone()
            .oneshot(post(deep.into_bytes()))
            .await
            .expect("answers"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["status"], 400);
    assert!(body["data"].is_object());

    // Within the bounds, an unknown client is still the ordinary refusal.
    let (status, body) = answer(
        router
            .clone()
            .oneshot(post(
                json!({"clientId": "nobody", "subscriptions": ["users/*"]})
                    .to_string()
                    .into_bytes(),
            ))
            .await
            .expect("answers"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    state.realtime.shutdown();
}

#[tokio::test(flavor = "multi_thread")]
async fn settle_waits_until_a_deferred_change_is_rendered() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> = SqliteStore::open(dir.path(), Default::default()).expect("opens");
    let (posts, [open, _closed], _post) = relation_fixture(&store).await;
    let state = AppState::new(Arc::clone(&store), ServerConfig::default());
    let hub = state.realtime.clone();
    // The list rule reads through a relation: this client's decision needs the database.
    let client = hub.connect(None).expect("connects");
    client.set(AuthContext::Guest, vec![Subscription::parse("posts/*")]);
    let created = change(
        &posts,
        ChangeAction::Create,
        row(&posts, json!({"title": "new", "team": open})),
    );
    let places = hub.hold_checks_for_test(created.seq).await;
    hub.deliver_without_waiting(&state, &created).await;
    let settling = tokio::spawn({
        let hub = hub.clone();
        let seq = created.seq;
        async move { hub.settle(seq).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !settling.is_finished(),
        "a write's answer waits while its change's messages are not prepared"
    );
    assert!(drain(&client).is_empty());
    drop(places);
    settling.await.expect("settles");
    let got = drain(&client);
    assert_eq!(got.len(), 1, "prepared before the write answers: {got:?}");
    assert_eq!(got[0].1["record"]["title"], "new");
    // With the change prepared, a later write does not wait.
    hub.settle(created.seq).await;
    hub.shutdown();
}
