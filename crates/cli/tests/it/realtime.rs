//! Realtime end to end: a real HTTP client reads the SSE stream of the real binary while
//! records are written through the API.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{TestApp, assert_error, run_cli};

/// One SSE message as received.
#[derive(Debug)]
pub(crate) struct Message {
    id: String,
    pub(crate) event: String,
    /// The `data` line exactly as sent.
    raw_data: String,
    pub(crate) data: Value,
}

/// A client reading `GET /api/realtime`.
pub(crate) struct Stream {
    response: reqwest::Response,
    buffer: String,
    client_id: String,
}

impl Stream {
    /// Connects and reads `PB_CONNECT`.
    pub(crate) async fn connect(app: &TestApp) -> Stream {
        Stream::connect_with(app, &[]).await
    }

    /// Connects with extra request headers and reads `PB_CONNECT`.
    async fn connect_with(app: &TestApp, headers: &[(&str, &str)]) -> Stream {
        Stream::open(app, "/api/realtime", headers).await.0
    }

    /// Connects asking for sequence numbers (`?seq=1`); returns the stream and the seq its
    /// `PB_CONNECT` carried.
    pub(crate) async fn connect_numbered(app: &TestApp) -> (Stream, u64) {
        let (stream, seq) = Stream::open(app, "/api/realtime?seq=1", &[]).await;
        (stream, seq.expect("PB_CONNECT carries a seq"))
    }

    async fn open(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> (Stream, Option<u64>) {
        let mut request = reqwest::Client::new().get(app.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("stream opens");
        assert_eq!(response.status(), 200);
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(header("content-type"), "text/event-stream");
        assert_eq!(header("cache-control"), "no-store");
        assert_eq!(header("x-accel-buffering"), "no");
        let mut stream = Stream {
            response,
            buffer: String::new(),
            client_id: String::new(),
        };
        let raw = stream
            .next_raw(Duration::from_secs(5))
            .await
            .expect("PB_CONNECT arrives");
        let id = raw
            .strip_prefix("id:")
            .and_then(|rest| rest.split('\n').next())
            .expect("id line first")
            .to_owned();
        assert_eq!(id.len(), 40, "{raw}");
        let numbered = path.contains("seq=1");
        let seq = if numbered {
            let data = raw
                .split_once("\ndata:")
                .map(|(_, data)| data)
                .expect("a data line");
            let data: Value = serde_json::from_str(data).expect("JSON data");
            assert_eq!(data["clientId"], id.as_str(), "{raw}");
            Some(data["seq"].as_u64().expect("a seq"))
        } else {
            assert_eq!(
                raw,
                format!("id:{id}\nevent:PB_CONNECT\ndata:{{\"clientId\":\"{id}\"}}"),
                "exact wire format"
            );
            None
        };
        stream.client_id = id;
        (stream, seq)
    }

    /// The next message's text (without the blank line), or `None` on timeout or end.
    async fn next_raw(&mut self, wait: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let message = self.buffer[..end].to_owned();
                self.buffer.drain(..end + 2);
                return Some(message);
            }
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                _ => return None,
            }
        }
    }

    pub(crate) async fn next(&mut self, wait: Duration) -> Option<Message> {
        let raw = self.next_raw(wait).await?;
        let mut message = Message {
            id: String::new(),
            event: String::new(),
            raw_data: String::new(),
            data: Value::Null,
        };
        for line in raw.split('\n') {
            if let Some(id) = line.strip_prefix("id:") {
                message.id = id.to_owned();
            } else if let Some(event) = line.strip_prefix("event:") {
                message.event = event.to_owned();
            } else if let Some(data) = line.strip_prefix("data:") {
                message.raw_data = data.to_owned();
                message.data = serde_json::from_str(data).expect("data is JSON");
            } else {
                panic!("unexpected line {line:?} in {raw:?}");
            }
        }
        assert_eq!(message.id, self.client_id, "every id line is the client id");
        Some(message)
    }

    /// Exactly `count` messages (each waited for generously), then nothing more for a while.
    async fn take(&mut self, count: usize) -> Vec<Message> {
        let mut messages = Vec::new();
        for n in 0..count {
            let message = self.next(LONG).await;
            assert!(
                message.is_some(),
                "message {n} of {count} missing: {messages:?}"
            );
            messages.extend(message);
        }
        let extra = self.next(SHORT).await;
        assert!(extra.is_none(), "unexpected extra message: {extra:?}");
        messages
    }

    /// The id `PB_CONNECT` gave this client.
    pub(crate) fn client_id(&self) -> &str {
        &self.client_id
    }

    pub(crate) async fn subscribe(
        &self,
        app: &TestApp,
        token: Option<&str>,
        topics: &[&str],
    ) -> (u16, Value) {
        app.post_json(
            "/api/realtime",
            token,
            json!({"clientId": self.client_id, "subscriptions": topics}),
        )
        .await
    }

    /// Subscribes, resuming after the change-log sequence `after`.
    pub(crate) async fn resume(
        &self,
        app: &TestApp,
        token: Option<&str>,
        topics: &[&str],
        after: Value,
    ) -> (u16, Value) {
        app.post_json(
            "/api/realtime",
            token,
            json!({"clientId": self.client_id, "subscriptions": topics, "after": after}),
        )
        .await
    }
}

const SHORT: Duration = Duration::from_millis(700);
const LONG: Duration = Duration::from_secs(5);

async fn create_collection(app: &TestApp, token: &str, body: Value) {
    let (status, body) = app.post_json("/api/collections", Some(token), body).await;
    assert_eq!(status, 200, "{body}");
}

/// `posts` with public rules, a hidden field and a unique title.
async fn public_posts(app: &TestApp, token: &str) {
    create_collection(
        app,
        token,
        json!({
            "name": "posts", "type": "base",
            "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
            "fields": [
                {"name": "title", "type": "text"},
                {"name": "secret", "type": "text", "hidden": true},
                {"name": "author", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1}
            ],
            "indexes": ["CREATE UNIQUE INDEX idx_posts_title ON posts (title)"]
        }),
    )
    .await;
}

/// Options as the JS SDK encodes them into a topic.
fn with_options(topic: &str, options: Value) -> String {
    let text = options.to_string();
    let mut encoded = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("{topic}?options={encoded}")
}

#[tokio::test]
async fn subscribe_requests_are_validated() {
    let app = TestApp::spawn().await;
    let stream = Stream::connect(&app).await;

    let (status, body) = app
        .post_json("/api/realtime", None, json!({"subscriptions": ["posts"]}))
        .await;
    let data = assert_error(
        status,
        &body,
        400,
        "Something went wrong while processing your request.",
    );
    assert_eq!(data["clientId"]["code"], "validation_required");

    let (status, body) = app
        .post_json(
            "/api/realtime",
            None,
            json!({"clientId": "nope", "subscriptions": ["posts"]}),
        )
        .await;
    assert_error(status, &body, 404, "Missing or invalid client id.");

    let long = "a".repeat(2501);
    let (status, body) = stream.subscribe(&app, None, &["ok", &long]).await;
    let data = assert_error(
        status,
        &body,
        400,
        "Something went wrong while processing your request.",
    );
    assert_eq!(
        data["subscriptions"]["1"]["code"],
        "validation_length_too_long"
    );
    assert_eq!(
        data["subscriptions"]["1"]["params"],
        json!({"max": 2500, "min": 0})
    );

    let many: Vec<&str> = vec!["a"; 1001];
    let (status, body) = stream.subscribe(&app, None, &many).await;
    let data = assert_error(
        status,
        &body,
        400,
        "Something went wrong while processing your request.",
    );
    assert_eq!(data["subscriptions"]["code"], "validation_length_too_long");

    let (status, body) = app
        .send(reqwest::Method::POST, "/api/realtime", None, None)
        .await;
    assert_eq!(status, 400, "{body}");

    let (status, body) = stream.subscribe(&app, None, &["posts/*", "@oauth2"]).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(body, Value::Null);
}

#[tokio::test]
async fn record_events_reach_every_matching_topic() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    public_posts(&app, &token).await;
    let (status, first) = app
        .post_json(
            "/api/collections/posts/records",
            None,
            json!({"title": "first", "secret": "s1"}),
        )
        .await;
    assert_eq!(status, 200, "{first}");
    let id = first["id"].as_str().expect("id").to_owned();

    let mut stream = Stream::connect(&app).await;
    let one = format!("posts/{id}");
    let fields = with_options("posts/*", json!({"query": {"fields": "id,title"}}));
    let (status, body) = stream
        .subscribe(&app, None, &["posts/*", "posts", &one, &fields, "other/*"])
        .await;
    assert_eq!(status, 204, "{body}");

    // An update reaches all four topics naming the record, one message each.
    let (status, body) = app
        .patch_json(
            &format!("/api/collections/posts/records/{id}"),
            None,
            json!({"title": "renamed"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let messages = stream.take(4).await;
    let events: Vec<&str> = messages.iter().map(|m| m.event.as_str()).collect();
    for topic in ["posts/*", "posts", one.as_str(), fields.as_str()] {
        assert!(events.contains(&topic), "{topic} missing from {events:?}");
    }
    for message in &messages {
        assert!(
            message.raw_data.starts_with("{\"record\":{")
                && message.raw_data.ends_with(",\"action\":\"update\"}"),
            "data order: {}",
            message.raw_data
        );
        if message.event == fields {
            assert_eq!(
                message.data["record"],
                json!({"id": id, "title": "renamed"})
            );
        } else {
            let record = &message.data["record"];
            assert_eq!(record["title"], "renamed");
            assert_eq!(record["collectionName"], "posts");
            assert!(record.get("secret").is_none(), "hidden from guests");
            assert!(record.get("expand").is_none(), "no expand unless asked");
        }
    }

    // A create reaches the collection topics only.
    let (status, second) = app
        .post_json(
            "/api/collections/posts/records",
            None,
            json!({"title": "second"}),
        )
        .await;
    assert_eq!(status, 200, "{second}");
    let messages = stream.take(3).await;
    let mut events: Vec<&str> = messages.iter().map(|m| m.event.as_str()).collect();
    events.sort_unstable();
    let mut expected = vec!["posts", "posts/*", fields.as_str()];
    expected.sort_unstable();
    assert_eq!(events, expected);
    assert!(messages.iter().all(|m| m.data["action"] == "create"));
    assert!(
        messages
            .iter()
            .all(|m| m.data["record"]["id"] == second["id"])
    );

    // A delete carries the last state.
    let (status, _) = app
        .delete(&format!("/api/collections/posts/records/{id}"), None)
        .await;
    assert_eq!(status, 204);
    let messages = stream.take(4).await;
    let plain = messages
        .iter()
        .find(|m| m.event == "posts/*")
        .expect("posts/* message");
    assert_eq!(plain.data["action"], "delete");
    assert_eq!(plain.data["record"]["title"], "renamed");

    // Unsubscribing everything stops the flow.
    let (status, _) = stream.subscribe(&app, None, &[]).await;
    assert_eq!(status, 204);
    app.post_json(
        "/api/collections/posts/records",
        None,
        json!({"title": "third"}),
    )
    .await;
    assert!(stream.next(SHORT).await.is_none());
}

#[tokio::test]
async fn rules_decide_who_hears_what() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    create_collection(
        &app,
        &token,
        json!({
            "name": "private", "type": "base",
            "fields": [
                {"name": "title", "type": "text"},
                {"name": "secret", "type": "text", "hidden": true}
            ]
        }),
    )
    .await;
    let mut guest = Stream::connect(&app).await;
    let mut admin = Stream::connect(&app).await;
    assert_ne!(guest.client_id, admin.client_id);
    let (status, _) = guest.subscribe(&app, None, &["private/*", "private"]).await;
    assert_eq!(status, 204);
    let (status, _) = admin.subscribe(&app, Some(&token), &["private/*"]).await;
    assert_eq!(status, 204);

    let (status, record) = app
        .post_json(
            "/api/collections/private/records",
            Some(&token),
            json!({"title": "t", "secret": "s"}),
        )
        .await;
    assert_eq!(status, 200, "{record}");
    let message = admin.next(LONG).await.expect("the superuser hears it");
    assert_eq!(message.event, "private/*");
    assert_eq!(
        message.data["record"]["secret"], "s",
        "hidden fields for superusers"
    );
    assert!(
        guest.next(SHORT).await.is_none(),
        "a null list rule keeps guests out"
    );

    // A one-record topic follows the view rule the same way.
    let id = record["id"].as_str().expect("id");
    let one = format!("private/{id}");
    let (status, _) = guest.subscribe(&app, None, &[&one]).await;
    assert_eq!(status, 204);
    app.patch_json(
        &format!("/api/collections/private/records/{id}"),
        Some(&token),
        json!({"title": "u"}),
    )
    .await;
    assert!(admin.next(LONG).await.is_some());
    assert!(guest.next(SHORT).await.is_none());

    // A subscription filter naming @request is ignored for non-superusers (nothing sent).
    let (status, _) = app
        .patch_json(
            "/api/collections/private",
            Some(&token),
            json!({"listRule": ""}),
        )
        .await;
    assert_eq!(status, 200);
    let sneaky = with_options(
        "private/*",
        json!({"query": {"filter": "@request.auth.id = ''"}}),
    );
    let (status, _) = guest.subscribe(&app, None, &[&sneaky, "private/*"]).await;
    assert_eq!(status, 204);
    app.post_json(
        "/api/collections/private/records",
        Some(&token),
        json!({"title": "v"}),
    )
    .await;
    let messages = guest.take(1).await;
    let events: Vec<&str> = messages.iter().map(|m| m.event.as_str()).collect();
    assert_eq!(events, ["private/*"]);
    assert!(messages[0].data["record"].get("secret").is_none());
}

#[tokio::test]
async fn rolled_back_writes_publish_nothing() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    public_posts(&app, &token).await;
    let mut stream = Stream::connect(&app).await;
    let (status, _) = stream.subscribe(&app, None, &["posts/*"]).await;
    assert_eq!(status, 204);

    let (status, _) = app
        .post_json(
            "/api/collections/posts/records",
            None,
            json!({"title": "one"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = app
        .post_json(
            "/api/collections/posts/records",
            None,
            json!({"title": "one"}),
        )
        .await;
    assert_eq!(status, 400, "unique violation: {body}");
    let (status, _) = app
        .post_json(
            "/api/collections/posts/records",
            None,
            json!({"title": "two"}),
        )
        .await;
    assert_eq!(status, 200);

    let titles: Vec<Value> = stream
        .take(2)
        .await
        .into_iter()
        .map(|m| m.data["record"]["title"].clone())
        .collect();
    assert_eq!(titles, [json!("one"), json!("two")]);
}

#[tokio::test]
async fn auth_is_bound_by_the_first_authenticated_subscription() {
    let app = TestApp::spawn().await;
    let first = app.admin_token().await;
    let (code, _, stderr) = run_cli(
        app.dir.path(),
        &["superuser", "upsert", "second@example.com", "Passw0rd!456"],
    );
    assert_eq!(code, 0, "{stderr}");
    let (status, body) = app
        .post_json(
            "/api/collections/_superusers/auth-with-password",
            None,
            json!({"identity": "second@example.com", "password": "Passw0rd!456"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let second = body["token"].as_str().expect("token").to_owned();
    assert_ne!(first, second);

    let stream = Stream::connect(&app).await;
    let (status, _) = stream.subscribe(&app, None, &["posts/*"]).await;
    assert_eq!(status, 204, "guest first");
    let (status, _) = stream.subscribe(&app, Some(&first), &["posts/*"]).await;
    assert_eq!(status, 204, "guest → superuser is an upgrade");
    let (status, _) = stream.subscribe(&app, Some(&first), &[]).await;
    assert_eq!(status, 204, "the same auth again");
    let forbidden = "The current and the previous request authorization don't match.";
    let (status, body) = stream.subscribe(&app, Some(&second), &["posts/*"]).await;
    assert_error(status, &body, 403, forbidden);
    let (status, body) = stream.subscribe(&app, None, &["posts/*"]).await;
    assert_error(status, &body, 403, forbidden);
    let (status, body) = stream.subscribe(&app, Some("garbage"), &[]).await;
    assert_error(status, &body, 403, forbidden);
}

#[tokio::test]
async fn reconnecting_gets_a_new_client_and_shutdown_ends_streams() {
    let mut app = TestApp::spawn().await;
    let token = app.admin_token().await;
    public_posts(&app, &token).await;
    let old = Stream::connect(&app).await;
    let old_id = old.client_id.clone();
    drop(old);

    // A dropped stream's client is forgotten once the server notices; a new one works.
    let mut stream = Stream::connect(&app).await;
    assert_ne!(stream.client_id, old_id);
    let (status, _) = stream.subscribe(&app, None, &["posts/*"]).await;
    assert_eq!(status, 204);
    app.post_json(
        "/api/collections/posts/records",
        None,
        json!({"title": "x"}),
    )
    .await;
    let message = stream.next(LONG).await.expect("event after reconnect");
    assert_eq!(message.data["action"], "create");

    // An open stream does not hold a graceful shutdown up.
    let started = std::time::Instant::now();
    assert_eq!(app.terminate(), 0);
    assert!(started.elapsed() < Duration::from_secs(4));
    assert!(stream.next(LONG).await.is_none(), "the stream ended");
}

#[tokio::test]
async fn expand_and_fields_options_follow_the_related_rules() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    create_collection(
        &app,
        &token,
        json!({"name": "vault", "type": "base", "fields": [{"name": "code", "type": "text"}]}),
    )
    .await;
    let (status, vault) = app
        .post_json(
            "/api/collections/vault/records",
            Some(&token),
            json!({"code": "1234"}),
        )
        .await;
    assert_eq!(status, 200, "{vault}");
    let (status, schema) = app.get("/api/collections/vault", Some(&token)).await;
    assert_eq!(status, 200);
    create_collection(
        &app,
        &token,
        json!({
            "name": "notes", "type": "base",
            "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
            "fields": [
                {"name": "title", "type": "text"},
                {"name": "vault", "type": "relation", "collectionId": schema["id"], "maxSelect": 1}
            ]
        }),
    )
    .await;
    let topic = with_options(
        "notes/*",
        json!({"query": {"expand": "vault", "fields": "title,expand.vault.code"}}),
    );
    let mut guest = Stream::connect(&app).await;
    let mut admin = Stream::connect(&app).await;
    assert_eq!(guest.subscribe(&app, None, &[&topic]).await.0, 204);
    assert_eq!(admin.subscribe(&app, Some(&token), &[&topic]).await.0, 204);

    let (status, body) = app
        .post_json(
            "/api/collections/notes/records",
            None,
            json!({"title": "n", "vault": vault["id"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let seen_by_admin = admin.take(1).await;
    assert_eq!(seen_by_admin[0].event, topic);
    assert_eq!(
        seen_by_admin[0].data["record"],
        json!({"title": "n", "expand": {"vault": {"code": "1234"}}})
    );
    let seen_by_guest = guest.take(1).await;
    let record = &seen_by_guest[0].data["record"];
    assert_eq!(record["title"], "n");
    assert!(
        record.pointer("/expand/vault").is_none(),
        "a superusers-only relation is never expanded for guests: {record}"
    );
}

/// Creates a user as the superuser and logs it in; returns (id, token).
async fn user(app: &TestApp, admin: &str, email: &str) -> (String, String) {
    let (status, body) = app
        .post_json(
            "/api/collections/users/records",
            Some(admin),
            json!({"email": email, "password": "user-pass-123", "passwordConfirm": "user-pass-123"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["id"].as_str().expect("id").to_owned();
    let (status, body) = app
        .post_json(
            "/api/collections/users/auth-with-password",
            None,
            json!({"identity": email, "password": "user-pass-123"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    (id, body["token"].as_str().expect("token").to_owned())
}

#[tokio::test]
async fn expression_rules_and_filters_are_checked_per_subscriber() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (alice_id, alice) = user(&app, &admin, "alice@example.com").await;
    let (_, bob) = user(&app, &admin, "bob@example.com").await;
    let owned = |name: &str, rule: &str| {
        json!({
            "name": name, "type": "base",
            "listRule": rule, "viewRule": rule,
            "fields": [
                {"name": "title", "type": "text"},
                {"name": "owner", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1}
            ]
        })
    };
    // Row-local: decided in memory on the change itself.
    create_collection(&app, &admin, owned("owned", "owner = @request.auth.id")).await;
    // A relation hop: decided by SQL on the row.
    create_collection(
        &app,
        &admin,
        owned("joined", "owner.email = @request.auth.email"),
    )
    .await;

    let not_skipped = with_options("owned/*", json!({"query": {"filter": "title != 'skip'"}}));
    let mut alice_stream = Stream::connect(&app).await;
    let mut bob_stream = Stream::connect(&app).await;
    let (status, body) = alice_stream
        .subscribe(&app, Some(&alice), &[&not_skipped, "joined/*"])
        .await;
    assert_eq!(status, 204, "{body}");
    let (status, _) = bob_stream
        .subscribe(&app, Some(&bob), &["owned/*", "joined/*"])
        .await;
    assert_eq!(status, 204);

    for title in ["mine", "skip"] {
        let (status, body) = app
            .post_json(
                "/api/collections/owned/records",
                Some(&admin),
                json!({"title": title, "owner": alice_id}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let seen = alice_stream.take(1).await;
    assert_eq!(seen[0].event, not_skipped);
    assert_eq!(seen[0].data["record"]["title"], "mine");
    let mine = seen[0].data["record"]["id"]
        .as_str()
        .expect("id")
        .to_owned();

    // A delete is checked against the last state, so the owner hears it.
    let (status, _) = app
        .delete(
            &format!("/api/collections/owned/records/{mine}"),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 204);
    let seen = alice_stream.take(1).await;
    assert_eq!(seen[0].data["action"], "delete");
    assert_eq!(seen[0].data["record"]["id"], mine);

    let (status, body) = app
        .post_json(
            "/api/collections/joined/records",
            Some(&admin),
            json!({"title": "joined", "owner": alice_id}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let seen = alice_stream.take(1).await;
    assert_eq!(seen[0].event, "joined/*");
    assert_eq!(seen[0].data["record"]["title"], "joined");

    assert!(
        bob_stream.next(SHORT).await.is_none(),
        "bob never hears alice's records"
    );
}

/// Posts a subscription request with extra headers; returns (status, body).
async fn subscribe_with(
    app: &TestApp,
    stream: &Stream,
    headers: &[(&str, &str)],
    topics: &[&str],
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(app.url("/api/realtime"))
        .json(&json!({"clientId": stream.client_id, "subscriptions": topics}));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn managers_see_emails_and_deletes_follow_relation_rules() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (boss_id, boss) = user(&app, &admin, "boss@example.com").await;
    let (_, plain) = user(&app, &admin, "plain@example.com").await;
    let (carl_id, _) = user(&app, &admin, "carl@example.com").await;
    let (status, body) = app
        .patch_json(
            &format!("/api/collections/users/records/{boss_id}"),
            Some(&admin),
            json!({"name": "boss"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .patch_json(
            "/api/collections/users",
            Some(&admin),
            json!({"listRule": "", "viewRule": "", "manageRule": "@request.auth.name = 'boss'"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut boss_stream = Stream::connect(&app).await;
    let mut plain_stream = Stream::connect(&app).await;
    let mut guest_stream = Stream::connect(&app).await;
    assert_eq!(
        boss_stream
            .subscribe(&app, Some(&boss), &["users/*"])
            .await
            .0,
        204
    );
    assert_eq!(
        plain_stream
            .subscribe(&app, Some(&plain), &["users/*"])
            .await
            .0,
        204
    );
    assert_eq!(
        guest_stream.subscribe(&app, None, &["users/*"]).await.0,
        204
    );

    // PocketBase shows a manager the email of an update and of a delete, with
    // emailVisibility off; nobody else sees it.
    let (status, body) = app
        .patch_json(
            &format!("/api/collections/users/records/{carl_id}"),
            Some(&admin),
            json!({"name": "carl"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = app
        .delete(
            &format!("/api/collections/users/records/{carl_id}"),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 204);
    let seen = boss_stream.take(2).await;
    assert_eq!(seen[0].data["action"], "update");
    assert_eq!(seen[0].data["record"]["email"], "carl@example.com");
    assert_eq!(seen[1].data["action"], "delete");
    assert_eq!(seen[1].data["record"]["email"], "carl@example.com");
    for stream in [&mut plain_stream, &mut guest_stream] {
        let seen = stream.take(2).await;
        for message in &seen {
            assert_eq!(message.data["record"]["name"], "carl");
            assert!(
                message.data["record"].get("email").is_none(),
                "{:?}",
                message.data
            );
        }
    }

    // Deletes under a rule that reads through a relation reach exactly those the last state
    // lets see them.
    create_collection(
        &app,
        &admin,
        json!({"name": "teams", "type": "base", "listRule": "", "viewRule": "",
               "fields": [{"name": "open", "type": "bool"}]}),
    )
    .await;
    let (_, teams) = app.get("/api/collections/teams", Some(&admin)).await;
    create_collection(
        &app,
        &admin,
        json!({"name": "posts", "type": "base",
               "listRule": "team.open = true || @request.auth.name = 'boss'", "viewRule": "",
               "fields": [{"name": "title", "type": "text"},
                          {"name": "team", "type": "relation", "collectionId": teams["id"], "maxSelect": 1}]}),
    )
    .await;
    let mut team_ids = Vec::new();
    for open in [true, false] {
        let (status, team) = app
            .post_json(
                "/api/collections/teams/records",
                Some(&admin),
                json!({"open": open}),
            )
            .await;
        assert_eq!(status, 200, "{team}");
        team_ids.push(team["id"].as_str().expect("id").to_owned());
    }
    let mut post_ids = Vec::new();
    for (title, team) in [("open", &team_ids[0]), ("closed", &team_ids[1])] {
        let (status, post) = app
            .post_json(
                "/api/collections/posts/records",
                Some(&admin),
                json!({"title": title, "team": team}),
            )
            .await;
        assert_eq!(status, 200, "{post}");
        post_ids.push(post["id"].as_str().expect("id").to_owned());
    }
    assert_eq!(
        boss_stream
            .subscribe(&app, Some(&boss), &["posts/*"])
            .await
            .0,
        204
    );
    assert_eq!(
        guest_stream.subscribe(&app, None, &["posts/*"]).await.0,
        204
    );
    for id in &post_ids {
        let (status, _) = app
            .delete(
                &format!("/api/collections/posts/records/{id}"),
                Some(&admin),
            )
            .await;
        assert_eq!(status, 204);
    }
    let seen = guest_stream.take(1).await;
    assert_eq!(seen[0].data["action"], "delete");
    assert_eq!(seen[0].data["record"]["title"], "open");
    let seen = boss_stream.take(2).await;
    let titles: Vec<&Value> = seen.iter().map(|m| &m.data["record"]["title"]).collect();
    assert_eq!(titles, [&json!("open"), &json!("closed")]);
}

#[tokio::test]
async fn new_passwords_and_token_secrets_drop_realtime_auth() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (first_id, first) = user(&app, &admin, "first@example.com").await;
    let (_, second) = user(&app, &admin, "second@example.com").await;
    create_collection(
        &app,
        &admin,
        json!({"name": "notes", "type": "base",
               "listRule": "@request.auth.id != ''", "viewRule": "@request.auth.id != ''",
               "fields": [{"name": "title", "type": "text"}]}),
    )
    .await;
    let mut first_stream = Stream::connect(&app).await;
    let mut second_stream = Stream::connect(&app).await;
    assert_eq!(
        first_stream
            .subscribe(&app, Some(&first), &["notes/*"])
            .await
            .0,
        204
    );
    assert_eq!(
        second_stream
            .subscribe(&app, Some(&second), &["notes/*"])
            .await
            .0,
        204
    );
    let note = |title: &'static str| {
        let app = &app;
        let admin = admin.clone();
        async move {
            let (status, body) = app
                .post_json(
                    "/api/collections/notes/records",
                    Some(&admin),
                    json!({"title": title}),
                )
                .await;
            assert_eq!(status, 200, "{body}");
        }
    };
    note("one").await;
    assert_eq!(first_stream.take(1).await[0].data["record"]["title"], "one");
    assert_eq!(
        second_stream.take(1).await[0].data["record"]["title"],
        "one"
    );

    // A new password rotates the token key: that client now sees what a guest sees.
    let (status, body) = app
        .patch_json(
            &format!("/api/collections/users/records/{first_id}"),
            Some(&admin),
            json!({"password": "other-pass-123", "passwordConfirm": "other-pass-123"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    note("two").await;
    assert_eq!(
        second_stream.take(1).await[0].data["record"]["title"],
        "two"
    );
    assert!(first_stream.next(SHORT).await.is_none(), "signed out");

    // A collection change that keeps the secret keeps the auth; a new secret drops it.
    let (status, body) = app
        .patch_json(
            "/api/collections/users",
            Some(&admin),
            json!({"listRule": "id != ''"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    note("three").await;
    assert_eq!(
        second_stream.take(1).await[0].data["record"]["title"],
        "three"
    );
    let secret = "s".repeat(50);
    let (status, body) = app
        .patch_json(
            "/api/collections/users",
            Some(&admin),
            json!({"authToken": {"secret": secret}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    note("four").await;
    assert!(
        second_stream.next(SHORT).await.is_none(),
        "signed out by the new secret"
    );
    assert!(first_stream.next(SHORT).await.is_none());
}

#[tokio::test]
async fn realtime_settings_apply_without_restart() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (status, settings) = app.get("/api/settings", Some(&admin)).await;
    assert_eq!(status, 200);
    assert_eq!(
        settings["realtime"],
        json!({
            "idleTimeout": 300, "maxLifetime": 1800,
            "clientQueueMessages": 512, "clientQueueBytes": 4194304,
            "changeLogMaxEntries": 10000, "changeLogMaxAge": 86400,
            "maxClients": 10000, "maxClientsPerIp": 1000
        })
    );
    let (status, body) = app
        .patch_json(
            "/api/settings",
            Some(&admin),
            json!({"realtime": {"idleTimeout": 0}}),
        )
        .await;
    let data = assert_error(
        status,
        &body,
        400,
        "An error occurred while saving the new settings.",
    );
    assert_eq!(
        data["realtime"]["idleTimeout"]["code"],
        "validation_required"
    );

    let mut stream = Stream::connect(&app).await;
    let (status, body) = app
        .patch_json(
            "/api/settings",
            Some(&admin),
            json!({"realtime": {"idleTimeout": 1}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["realtime"]["idleTimeout"], 1);
    assert_eq!(body["realtime"]["maxLifetime"], 1800, "other values kept");
    // A stream opened now closes after one idle second.
    let mut fresh = Stream::connect(&app).await;
    let started = std::time::Instant::now();
    assert!(fresh.next(Duration::from_secs(5)).await.is_none());
    let lived = started.elapsed();
    assert!(
        lived >= Duration::from_millis(900) && lived < Duration::from_secs(4),
        "{lived:?}"
    );
    // The stream opened before the change keeps running until it next wakes; a message
    // wakes it, and it too goes idle after one second.
    public_posts(&app, &admin).await;
    assert_eq!(stream.subscribe(&app, None, &["posts/*"]).await.0, 204);
    let (status, _) = app
        .post_json(
            "/api/collections/posts/records",
            None,
            json!({"title": "wake"}),
        )
        .await;
    assert_eq!(status, 200);
    assert!(stream.next(LONG).await.is_some());
    let started = std::time::Instant::now();
    assert!(stream.next(Duration::from_secs(5)).await.is_none());
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn behind_a_trusted_proxy_subscriptions_compare_forwarded_ips() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let forwarded = [("x-forwarded-for", "1.1.1.1, 9.9.9.9")];
    // Without a trusted proxy the header means nothing.
    let stream = Stream::connect_with(&app, &forwarded).await;
    let (status, _) = subscribe_with(
        &app,
        &stream,
        &[("x-forwarded-for", "2.2.2.2")],
        &["posts/*"],
    )
    .await;
    assert_eq!(status, 204);

    let (status, body) = app
        .patch_json(
            "/api/settings",
            Some(&admin),
            json!({"trustedProxy": {"headers": ["X-Forwarded-For"], "useLeftmostIP": false}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let stream = Stream::connect_with(&app, &forwarded).await;
    for (headers, expected) in [
        (&[("x-forwarded-for", "2.2.2.2")][..], 400),
        (&[][..], 400),
        (&[("x-forwarded-for", "3.3.3.3, 9.9.9.9")][..], 204),
    ] {
        let (status, body) = subscribe_with(&app, &stream, headers, &["posts/*"]).await;
        assert_eq!(status, expected, "{headers:?}: {body}");
        if expected == 400 {
            assert_eq!(body["message"], "Invalid realtime client.");
        }
    }
}

/// A numbered stream (a Plinth extension) resumes where an earlier stream left off: every
/// change after the given seq that its topics receive arrives once, in commit order, the missed
/// ones first, then the live ones; a point the log cannot serve is refused, not half served.
#[tokio::test]
async fn a_numbered_stream_resumes_after_the_last_seq_it_saw() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    public_posts(&app, &admin).await;
    let create = |title: &'static str| {
        let app = &app;
        async move {
            let (status, body) = app
                .post_json(
                    "/api/collections/posts/records",
                    None,
                    json!({"title": title}),
                )
                .await;
            assert_eq!(status, 200, "{body}");
        }
    };

    let (mut first, connected_at) = Stream::connect_numbered(&app).await;
    let (status, body) = first.subscribe(&app, None, &["posts"]).await;
    assert_eq!(status, 204, "{body}");
    create("one").await;
    let seen = first.take(1).await;
    let keys: Vec<&String> = seen[0].data.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["record", "action", "seq"], "seq comes last");
    let last_seen = seen[0].data["seq"].as_u64().expect("seq");
    assert!(last_seen > connected_at);
    // The first stream goes away; meanwhile three more changes commit (one the topic misses).
    drop(first);
    create("two").await;
    let (status, body) = app
        .post_json(
            "/api/collections",
            Some(&admin),
            json!({"name": "other", "type": "base", "createRule": "", "fields": [{"name": "title", "type": "text"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .post_json(
            "/api/collections/other/records",
            None,
            json!({"title": "elsewhere"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    create("three").await;

    let (mut second, _) = Stream::connect_numbered(&app).await;
    let (status, body) = second
        .resume(&app, None, &["posts"], json!(last_seen))
        .await;
    assert_eq!(status, 204, "{body}");
    create("four").await;
    let messages = second.take(3).await;
    let titles: Vec<&str> = messages
        .iter()
        .map(|m| m.data["record"]["title"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(titles, ["two", "three", "four"]);
    let seqs: Vec<u64> = messages
        .iter()
        .map(|m| m.data["seq"].as_u64().expect("seq"))
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(seqs[0] > last_seen);

    // A stream without `?seq=1` keeps PocketBase's exact message shape.
    let mut plain = Stream::connect(&app).await;
    let (status, body) = plain.resume(&app, None, &["posts"], json!(seqs[2])).await;
    assert_eq!(status, 204, "{body}");
    create("five").await;
    let plain_message = plain.take(1).await;
    assert!(plain_message[0].data.get("seq").is_none());
    assert!(
        plain_message[0]
            .raw_data
            .ends_with("\"action\":\"create\"}")
    );

    // Points the log cannot serve, and values that are no seq.
    let (mut third, _) = Stream::connect_numbered(&app).await;
    for bad in [json!(-1), json!("7"), json!(1.5)] {
        let (status, body) = third.resume(&app, None, &["posts"], bad.clone()).await;
        let data = assert_error(
            status,
            &body,
            400,
            "Something went wrong while processing your request.",
        );
        assert_eq!(data["after"]["code"], "validation_invalid_after", "{bad}");
    }
    let (status, body) = third
        .resume(&app, None, &["posts"], json!(seqs[2] + 1_000_000))
        .await;
    let data = assert_error(
        status,
        &body,
        400,
        "Something went wrong while processing your request.",
    );
    assert_eq!(data["after"]["code"], "validation_resume_unavailable");
    // A refused resume leaves the stream usable.
    let (status, body) = third.subscribe(&app, None, &["posts"]).await;
    assert_eq!(status, 204, "{body}");
    create("six").await;
    let six = third.take(1).await;
    assert_eq!(six[0].data["record"]["title"], "six");
    let six = six[0].data["seq"].as_u64().expect("seq");

    // At most `realtime.clientQueueMessages` missed changes are replayed; one more is refused.
    let (status, body) = app
        .patch_json(
            "/api/settings",
            Some(&admin),
            json!({"realtime": {"clientQueueMessages": 2}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    create("seven").await;
    create("eight").await;
    let (mut fourth, _) = Stream::connect_numbered(&app).await;
    let (status, body) = fourth.resume(&app, None, &["posts"], json!(six)).await;
    assert_eq!(status, 204, "two missed changes fit: {body}");
    let caught = fourth.take(2).await;
    let caught_up: Vec<Value> = caught
        .iter()
        .map(|m| m.data["record"]["title"].clone())
        .collect();
    assert_eq!(caught_up, [json!("seven"), json!("eight")]);
    let eight = caught[1].data["seq"].as_u64().expect("seq");
    create("nine").await;
    let (fifth, _) = Stream::connect_numbered(&app).await;
    let (status, body) = fifth.resume(&app, None, &["posts"], json!(six)).await;
    let data = assert_error(
        status,
        &body,
        400,
        "Something went wrong while processing your request.",
    );
    assert_eq!(data["after"]["code"], "validation_resume_too_far_behind");

    // And at most `realtime.clientQueueBytes` of them (one change always fits): with one byte,
    // one missed change resumes, two do not.
    let (status, body) = app
        .patch_json(
            "/api/settings",
            Some(&admin),
            json!({"realtime": {"clientQueueMessages": 512, "clientQueueBytes": 1}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (mut sixth, _) = Stream::connect_numbered(&app).await;
    let (status, body) = sixth.resume(&app, None, &["posts"], json!(eight)).await;
    assert_eq!(status, 204, "one missed change fits: {body}");
    assert_eq!(sixth.take(1).await[0].data["record"]["title"], "nine");
    let (seventh, _) = Stream::connect_numbered(&app).await;
    let (status, body) = seventh.resume(&app, None, &["posts"], json!(six)).await;
    let data = assert_error(
        status,
        &body,
        400,
        "Something went wrong while processing your request.",
    );
    assert_eq!(data["after"]["code"], "validation_resume_too_far_behind");
}

/// A raw `GET /api/realtime` over its own TCP connection, for tests of the wire itself.
struct RawStream {
    socket: tokio::net::TcpStream,
    received: Vec<u8>,
}

impl RawStream {
    async fn open(app: &TestApp, version: &str) -> RawStream {
        RawStream::send(
            app,
            &format!("GET /api/realtime HTTP/{version}\r\nHost: plinth\r\n\r\n"),
        )
        .await
    }

    /// Writes `requests` at once on a new connection and reads until `PB_CONNECT`.
    async fn send(app: &TestApp, requests: &str) -> RawStream {
        use tokio::io::AsyncWriteExt as _;
        let address = app.base.trim_start_matches("http://");
        let mut socket = tokio::net::TcpStream::connect(address)
            .await
            .expect("connects");
        socket
            .write_all(requests.as_bytes())
            .await
            .expect("requests written");
        let mut stream = RawStream {
            socket,
            received: Vec::new(),
        };
        while !String::from_utf8_lossy(&stream.received).contains("PB_CONNECT") {
            assert!(stream.read_some().await, "stream open");
        }
        stream
    }

    /// Reads what arrives within a few seconds; `false` at the end of the connection.
    async fn read_some(&mut self) -> bool {
        use tokio::io::AsyncReadExt as _;
        let mut buffer = [0u8; 4096];
        let n = tokio::time::timeout(LONG, self.socket.read(&mut buffer))
            .await
            .expect("the server writes or closes in time")
            .expect("reads");
        self.received.extend_from_slice(&buffer[..n]);
        n > 0
    }

    fn client_id(&self) -> String {
        let text = String::from_utf8_lossy(&self.received);
        text.split("\"clientId\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("a client id")
            .to_owned()
    }

    /// Everything until the server closed the connection: the head and the body.
    async fn read_to_close(mut self) -> (String, String) {
        while self.read_some().await {}
        let text = String::from_utf8(self.received).expect("text");
        let (head, body) = text.split_once("\r\n\r\n").expect("a head");
        (head.to_owned(), body.to_owned())
    }
}

/// Decodes a chunked body strictly: every chunk's size matches its data, and the body ends
/// with the last chunk and nothing after it.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").expect("a chunk size line");
        let size = usize::from_str_radix(size, 16).expect("a hex size");
        if size == 0 {
            assert_eq!(rest, "\r\n", "nothing after the last chunk");
            return out;
        }
        out.push_str(&rest[..size]);
        body = rest[size..]
            .strip_prefix("\r\n")
            .expect("CRLF after the data");
    }
}

#[tokio::test]
async fn streams_keep_their_http_framing_to_a_clean_end() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    public_posts(&app, &admin).await;
    // The server ends the streams once they are idle for two seconds.
    let (status, body) = app
        .patch_json(
            "/api/settings",
            Some(&admin),
            json!({"realtime": {"idleTimeout": 2}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let chunked = RawStream::open(&app, "1.1").await;
    let plain = RawStream::open(&app, "1.0").await;
    for stream in [&chunked, &plain] {
        let (status, body) = app
            .post_json(
                "/api/realtime",
                None,
                json!({"clientId": stream.client_id(), "subscriptions": ["posts/*"]}),
            )
            .await;
        assert_eq!(status, 204, "{body}");
    }
    // Several events at once, so some go out in one write.
    for n in 0..5 {
        let (status, body) = app
            .post_json(
                "/api/collections/posts/records",
                None,
                json!({"title": format!("framed {n}")}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (chunked_id, plain_id) = (chunked.client_id(), plain.client_id());
    let (head, body) = chunked.read_to_close().await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("\r\ntransfer-encoding: chunked"), "{head}");
    let events_11 = dechunk(&body);
    let (head, body) = plain.read_to_close().await;
    assert!(head.starts_with("HTTP/1.0 200 OK\r\n"), "{head}");
    assert!(!head.contains("transfer-encoding"), "{head}");
    for (id, events) in [(chunked_id, events_11), (plain_id, body)] {
        let messages: Vec<&str> = events
            .strip_suffix("\n\n")
            .expect("whole messages")
            .split("\n\n")
            .collect();
        assert_eq!(messages.len(), 6, "{events}");
        assert_eq!(
            messages[0],
            format!("id:{id}\nevent:PB_CONNECT\ndata:{{\"clientId\":\"{id}\"}}")
        );
        for (n, message) in messages[1..].iter().enumerate() {
            let data = message
                .strip_prefix(&format!("id:{id}\nevent:posts/*\ndata:"))
                .expect("an event for the subscription");
            let data: Value = serde_json::from_str(data).expect("JSON data");
            assert_eq!(data["action"], "create");
            assert_eq!(data["record"]["title"], format!("framed {n}"));
        }
    }
}

#[tokio::test]
async fn requests_pipelined_behind_a_stream_are_not_served() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    public_posts(&app, &admin).await;
    // A second stream and a create pipelined behind the first stream, in one write, with a
    // stray byte after them.
    let create = json!({"title": "pipelined"}).to_string();
    let requests = format!(
        "GET /api/realtime HTTP/1.1\r\nHost: plinth\r\n\r\n\
         GET /api/realtime HTTP/1.1\r\nHost: plinth\r\n\r\n\
         POST /api/collections/posts/records HTTP/1.1\r\nHost: plinth\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{create}x",
        create.len()
    );
    let mut stream = RawStream::send(&app, &requests).await;
    let (status, body) = app
        .post_json(
            "/api/realtime",
            None,
            json!({"clientId": stream.client_id(), "subscriptions": ["posts/*"]}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = app
        .post_json(
            "/api/collections/posts/records",
            None,
            json!({"title": "direct"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // The first stream goes on: its event arrives.
    while !String::from_utf8_lossy(&stream.received).contains("\"direct\"") {
        assert!(stream.read_some().await, "stream open");
    }
    let text = String::from_utf8_lossy(&stream.received).into_owned();
    assert_eq!(text.matches("PB_CONNECT").count(), 1, "one stream: {text}");
    assert!(!text.contains("pipelined"), "{text}");
    // The pipelined create never ran.
    let (status, body) = app.get("/api/collections/posts/records", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["totalItems"], 1, "{body}");
    assert_eq!(body["items"][0]["title"], "direct");
}
