//! Hostile clients of the connection layer and of realtime: slow-loris headers, slow bodies,
//! idle keep-alive connections, more connections than the cap, more realtime clients than one
//! IP may hold, and one realtime client whose subscriptions are expensive to check.
//!
//! The timeouts are set small through the environment (`PLINTH_*`, the same settings as the
//! flags); each test asserts that the server ends the connection before a generous client-side
//! bound, never how long it took.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{NORMAL_TIMEOUT, assert_serving, spawn_capped, spawn_capped_with};
use crate::support::{Launch, TestApp, assert_error};

/// How long a test waits for the server to end a connection it should end after a second or
/// two: far past the configured timeout, far below "held forever".
const CLOSE_BOUND: Duration = Duration::from_secs(20);

fn launch(env: &[(&str, &str)]) -> Launch {
    Launch {
        env: env
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect(),
        ..Launch::default()
    }
}

async fn connect(app: &TestApp) -> TcpStream {
    let address = app.base.trim_start_matches("http://");
    TcpStream::connect(address).await.expect("connects")
}

/// Reads until the server closes the connection; returns what it sent, or `None` when the
/// connection was still open at `CLOSE_BOUND`.
async fn read_until_closed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let read_all = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    };
    tokio::time::timeout(CLOSE_BOUND, read_all).await.ok()?;
    Some(received)
}

#[tokio::test]
async fn a_partial_header_is_cut_off_at_the_header_timeout() {
    let mut app = spawn_capped_with(launch(&[("PLINTH_HEADER_TIMEOUT", "1")])).await;
    let mut loris = connect(&app).await;
    loris
        .write_all(b"GET /api/health HTTP/1.1\r\nHost: plinth\r\nX-Slow: ")
        .await
        .expect("writes");
    // Another client is served while the slow one holds its connection.
    assert_serving(&mut app, "during a slow-loris header").await;
    let received = read_until_closed(&mut loris)
        .await
        .expect("the server closes a connection whose header never completes");
    assert!(
        !String::from_utf8_lossy(&received).contains(" 200 "),
        "no answer to half a request: {}",
        String::from_utf8_lossy(&received)
    );
    assert_serving(&mut app, "after a slow-loris header").await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let mut app = spawn_capped_with(launch(&[("PLINTH_HEADER_TIMEOUT", "1")])).await;
    let mut idle = connect(&app).await;
    idle.write_all(b"GET /api/health HTTP/1.1\r\nHost: plinth\r\n\r\n")
        .await
        .expect("writes");
    let received = read_until_closed(&mut idle)
        .await
        .expect("the server closes a keep-alive connection that sends nothing more");
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    assert!(text.contains("API is healthy."), "{text}");
    assert_serving(&mut app, "after an idle keep-alive connection").await;
}

#[tokio::test]
async fn a_body_that_trickles_in_is_cut_off_at_the_body_timeout() {
    let mut app = spawn_capped_with(launch(&[("PLINTH_BODY_TIMEOUT", "1")])).await;
    let mut slow = connect(&app).await;
    slow.write_all(
        b"POST /api/collections/users/auth-with-password HTTP/1.1\r\nHost: plinth\r\n\
          Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"identity\":",
    )
    .await
    .expect("writes");
    assert_serving(&mut app, "during a slow body").await;
    // One byte every 300 ms: never idle for long, never done.
    let trickle = async {
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if slow.write_all(b" ").await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_BOUND, trickle).await;
    let received = read_until_closed(&mut slow)
        .await
        .expect("the server ends a request whose body does not arrive in time");
    let text = String::from_utf8_lossy(&received);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 4"),
        "a client error or nothing: {text}"
    );
    assert_serving(&mut app, "after a slow body").await;
}

#[tokio::test]
async fn a_client_still_sending_an_oversized_body_reads_its_413() {
    // The body is refused on its declared length, before a byte of it is read. A client that
    // sends all of it before reading (as Node's fetch does) must still get the answer: the
    // server keeps reading and dropping until the client is done, instead of resetting the
    // connection under it.
    let mut app = spawn_capped().await;
    let mut client = connect(&app).await;
    let size = 40usize << 20;
    let head = format!(
        "POST /api/collections/users/auth-with-password HTTP/1.1\r\nHost: plinth\r\n\
         Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
    );
    client
        .write_all(head.as_bytes())
        .await
        .expect("writes the head");
    let chunk = vec![b' '; 256 << 10];
    for sent in (0..size).step_by(chunk.len()) {
        client
            .write_all(&chunk[..chunk.len().min(size - sent)])
            .await
            .expect("the server takes the whole body without resetting the connection");
    }
    let received = read_until_closed(&mut client)
        .await
        .expect("the server closes the connection after its answer");
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    assert_serving(&mut app, "after an oversized body").await;
}

#[tokio::test]
async fn connections_past_the_cap_are_refused_with_a_503_until_others_close() {
    let mut app = spawn_capped_with(launch(&[("PLINTH_MAX_CONNECTIONS", "8")])).await;
    let mut held = Vec::new();
    for _ in 0..8 {
        let mut stream = connect(&app).await;
        // A full request each, so the server has certainly taken the connection.
        stream
            .write_all(b"GET /api/health HTTP/1.1\r\nHost: plinth\r\n\r\n")
            .await
            .expect("writes");
        let mut buffer = [0u8; 1024];
        let n = tokio::time::timeout(NORMAL_TIMEOUT, stream.read(&mut buffer))
            .await
            .expect("answered")
            .expect("reads");
        assert!(buffer[..n].starts_with(b"HTTP/1.1 200 "));
        held.push(stream);
    }
    for attempt in 0..3 {
        let response = reqwest::Client::new()
            .get(app.url("/api/health"))
            .timeout(NORMAL_TIMEOUT)
            .send()
            .await
            .unwrap_or_else(|error| panic!("attempt {attempt}: a clear refusal: {error}"));
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("JSON body");
        assert_error(
            status,
            &body,
            503,
            "Too many open connections; try again later.",
        );
    }
    drop(held);
    // Closed connections free their places as soon as the server sees them go.
    assert!(
        served_by_a_new_client(&app).await,
        "health is served once the held connections close"
    );
    assert_serving(&mut app, "after the connection cap").await;
}

/// Opens a connection and has one request answered on it, so the server has certainly taken
/// it; returns it open.
async fn held_connection(app: &TestApp) -> TcpStream {
    let mut stream = connect(app).await;
    stream
        .write_all(b"GET /api/health HTTP/1.1\r\nHost: plinth\r\n\r\n")
        .await
        .expect("writes");
    let mut buffer = [0u8; 1024];
    let n = tokio::time::timeout(NORMAL_TIMEOUT, stream.read(&mut buffer))
        .await
        .expect("answered")
        .expect("reads");
    assert!(buffer[..n].starts_with(b"HTTP/1.1 200 "));
    stream
}

#[tokio::test]
async fn connections_past_the_per_ip_cap_are_refused_with_a_429() {
    let mut app = spawn_capped_with(launch(&[
        ("PLINTH_MAX_CONNECTIONS_PER_IP", "4"),
        ("PLINTH_CAP_LOOPBACK_CONNECTIONS", "true"),
    ]))
    .await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(held_connection(&app).await);
    }
    let response = reqwest::Client::new()
        .get(app.url("/api/health"))
        .timeout(NORMAL_TIMEOUT)
        .send()
        .await
        .expect("a clear refusal");
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("JSON body");
    assert_error(
        status,
        &body,
        429,
        "Too many open connections from this address; try again later.",
    );
    // Another address is served meanwhile (all of 127.0.0.0/8 is loopback on Linux).
    let other = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().expect("ip"))
        .build()
        .expect("client");
    let response = other
        .get(app.url("/api/health"))
        .timeout(NORMAL_TIMEOUT)
        .send()
        .await
        .expect("served from another address");
    assert_eq!(response.status().as_u16(), 200);
    drop(held);
    assert!(
        served_by_a_new_client(&app).await,
        "health is served once the held connections close"
    );
    assert_serving(&mut app, "after the per-address connection cap").await;
}

#[tokio::test]
async fn a_client_that_stops_reading_loses_its_connection_at_the_write_timeout() {
    // Two places: the test's own keep-alive connection and the stalled stream.
    let mut app = spawn_capped_with(launch(&[
        ("PLINTH_WRITE_TIMEOUT", "1"),
        ("PLINTH_MAX_CONNECTIONS", "2"),
    ]))
    .await;
    let admin = app.admin_token().await;
    let (status, body) = app
        .post_json(
            "/api/collections",
            Some(&admin),
            json!({"name": "blobs", "type": "base", "listRule": "", "fields": [
                {"name": "blob", "type": "json", "maxSize": 2_000_000}
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // A stream read through a tiny receive window up to its client id, then never again.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("small window");
    let address = app
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("address");
    let mut stalled = socket.connect(address).await.expect("connects");
    stalled
        .write_all(b"GET /api/realtime HTTP/1.1\r\nHost: plinth\r\n\r\n")
        .await
        .expect("writes");
    let mut head = String::new();
    let mut buffer = [0u8; 1024];
    while !head.contains("\n\n") {
        let n = tokio::time::timeout(NORMAL_TIMEOUT, stalled.read(&mut buffer))
            .await
            .expect("PB_CONNECT in time")
            .expect("reads");
        assert!(n > 0, "stream open");
        head.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
    let client_id = head
        .split("\"clientId\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("client id")
        .to_owned();
    let (status, body) = app
        .post_json(
            "/api/realtime",
            None,
            json!({"clientId": client_id, "subscriptions": ["blobs/*"]}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    // 12 MB of events: far more than the socket buffers hold.
    let blob = "x".repeat(400_000);
    for _ in 0..30 {
        let (status, body) = app
            .post_json(
                "/api/collections/blobs/records",
                Some(&admin),
                json!({ "blob": blob }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    // A new client is refused while the stalled stream holds its place, and served once the
    // server has given up writing to it.
    assert!(
        served_by_a_new_client(&app).await,
        "the stalled connection is closed and its place freed"
    );
    drop(stalled);
    // Retried: the previous try's connection may still hold its place for a moment after its
    // answer arrived (the cap is two places, one of them the test's keep-alive connection).
    assert!(
        served_by_a_new_client(&app).await,
        "served after the stalled client left"
    );
    assert!(
        matches!(app.child.try_wait(), Ok(None)),
        "the server is still running"
    );
}

/// Whether a new client gets `/api/health` answered 200 within a few seconds of retries. Each
/// try asks the server to close its connection after answering, so the tries themselves do
/// not hold places under the connection cap.
async fn served_by_a_new_client(app: &TestApp) -> bool {
    for _ in 0..200 {
        let response = reqwest::Client::new()
            .get(app.url("/api/health"))
            .header("Connection", "close")
            .timeout(NORMAL_TIMEOUT)
            .send()
            .await;
        if response.is_ok_and(|r| r.status() == 200) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn oversized_request_heads_are_answered_431() {
    let mut app = spawn_capped().await;
    let many: String = (0..100).map(|n| format!("X-H{n}: a\r\n")).collect();
    let long = format!("X-Long: {}\r\n", "a".repeat(500 << 10));
    for (what, extra) in [("101 header lines", many), ("a 500 KiB header", long)] {
        let mut stream = connect(&app).await;
        let head = format!("GET /api/health HTTP/1.1\r\nHost: plinth\r\n{extra}\r\n");
        // The server may close before reading it all; the answer is what counts.
        let _ = stream.write_all(head.as_bytes()).await;
        let received = read_until_closed(&mut stream)
            .await
            .unwrap_or_else(|| panic!("{what}: the connection is closed"));
        let text = String::from_utf8_lossy(&received);
        assert!(
            text.starts_with("HTTP/1.1 431 "),
            "{what}: 431 Request Header Fields Too Large: {text}"
        );
    }
    assert_serving(&mut app, "after oversized request heads").await;
}

/// Opens `GET /api/realtime` and returns the response once `PB_CONNECT` arrived, with its
/// client id.
async fn open_stream(app: &TestApp) -> Result<(reqwest::Response, String), (u16, Value)> {
    open_stream_with(app, &[]).await
}

/// As `open_stream`, with extra request headers (a proxy's `X-Forwarded-For`, say).
async fn open_stream_with(
    app: &TestApp,
    headers: &[(&str, &str)],
) -> Result<(reqwest::Response, String), (u16, Value)> {
    let mut request = reqwest::Client::new()
        .get(app.url("/api/realtime"))
        .timeout(Duration::from_secs(120));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut response = request.send().await.expect("stream request");
    let status = response.status().as_u16();
    if status != 200 {
        return Err((status, response.json().await.unwrap_or(Value::Null)));
    }
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout(NORMAL_TIMEOUT, response.chunk())
            .await
            .expect("PB_CONNECT in time")
            .expect("reads")
            .expect("stream open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let id = text
        .strip_prefix("id:")
        .and_then(|rest| rest.split('\n').next())
        .expect("id line")
        .to_owned();
    Ok((response, id))
}

/// Reads SSE frames until one named `event` arrives; `None` when none did within `wait`.
async fn next_event(
    response: &mut reqwest::Response,
    buffer: &mut String,
    event: &str,
    wait: Duration,
) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let frame = buffer[..end].to_owned();
            buffer.drain(..end + 2);
            let mut name = "";
            let mut data = "";
            for line in frame.split('\n') {
                if let Some(rest) = line.strip_prefix("event:") {
                    name = rest;
                } else if let Some(rest) = line.strip_prefix("data:") {
                    data = rest;
                }
            }
            if name == event {
                return serde_json::from_str(data).ok();
            }
        }
        match tokio::time::timeout_at(deadline, response.chunk()).await {
            Ok(Ok(Some(chunk))) => buffer.push_str(&String::from_utf8_lossy(&chunk)),
            _ => return None,
        }
    }
}

#[tokio::test]
async fn realtime_clients_per_ip_are_capped() {
    let mut app = spawn_capped().await;
    let admin = app.admin_token().await;
    let (status, body) = app
        .patch_json(
            "/api/settings",
            Some(&admin),
            json!({"realtime": {"maxClientsPerIp": 2},
                   "trustedProxy": {"headers": ["X-Forwarded-For"], "useLeftmostIP": false}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // Loopback is exempt: behind a local proxy without `trustedProxy` it is every client.
    let mut local = Vec::new();
    for n in 0..3 {
        local.push(
            open_stream(&app)
                .await
                .unwrap_or_else(|e| panic!("loopback stream {n}: {e:?}")),
        );
    }
    let client = [("X-Forwarded-For", "203.0.113.9")];
    let first = open_stream_with(&app, &client).await.expect("first stream");
    let _second = open_stream_with(&app, &client)
        .await
        .expect("second stream");
    let (status, body) = open_stream_with(&app, &client)
        .await
        .expect_err("third stream refused");
    assert_error(
        status,
        &body,
        429,
        "Too many realtime connections from this address.",
    );
    assert_serving(&mut app, "with the realtime clients of one IP at the cap").await;
    drop(first);
    let mut reopened = false;
    for _ in 0..50 {
        if open_stream_with(&app, &client).await.is_ok() {
            reopened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reopened, "a closed stream frees its place");
}

#[tokio::test]
async fn subscription_topics_are_measured_in_bytes() {
    let mut app = spawn_capped().await;
    let (_stream, client_id) = open_stream(&app).await.expect("stream");
    // 2,000 characters, 4,000 bytes: PocketBase counts bytes.
    let (status, body) = app
        .post_json(
            "/api/realtime",
            None,
            json!({"clientId": client_id, "subscriptions": ["é".repeat(2000)]}),
        )
        .await;
    let data = assert_error(
        status,
        &body,
        400,
        "Something went wrong while processing your request.",
    );
    assert_eq!(
        data["subscriptions"]["0"]["code"], "validation_length_too_long",
        "{body}"
    );
    assert_serving(&mut app, "after an over-long topic").await;
}

/// `text` with everything but unreserved characters percent-encoded, as the SDKs send options.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// One guest subscribes 200 times with a distinct filter through a 3-hop self-relation over
/// rows with 50 links each (every check costs a join of 125,000 rows); another subscribes
/// with one filter through one hop (one database check per change), a third plainly. Creates
/// must still reach the plain and the moderate clients promptly while the heavy client's
/// checks run, the heavy client must get its own event in the end, and the server keep
/// serving.
#[tokio::test]
async fn an_expensive_realtime_client_does_not_hold_up_the_others() {
    let mut app = spawn_capped().await;
    let admin = app.admin_token().await;
    let (status, body) = app
        .post_json(
            "/api/collections",
            Some(&admin),
            json!({"name": "links", "type": "base", "listRule": "", "viewRule": "",
                   "createRule": "", "fields": [{"name": "label", "type": "text"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let links_id = body["id"].as_str().expect("id").to_owned();
    let (status, body) = app
        .patch_json(
            "/api/collections/links",
            Some(&admin),
            json!({"fields": [
                {"name": "label", "type": "text"},
                {"name": "links", "type": "relation", "collectionId": links_id,
                 "maxSelect": 100}
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut ids = Vec::new();
    for n in 0..60 {
        let (status, body) = app
            .post_json(
                "/api/collections/links/records",
                Some(&admin),
                json!({"label": format!("row{n}")}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        ids.push(body["id"].as_str().expect("id").to_owned());
    }
    for (n, id) in ids.iter().enumerate() {
        let targets: Vec<&String> = ids.iter().cycle().skip(n + 1).take(50).collect();
        let (status, body) = app
            .patch_json(
                &format!("/api/collections/links/records/{id}"),
                Some(&admin),
                json!({ "links": targets }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    let (mut heavy, heavy_id) = open_stream(&app).await.expect("heavy stream");
    let topics: Vec<String> = (0..200)
        .map(|n| {
            let options =
                json!({"query": {"filter": format!("links.links.links.label ?~ 'zz{n}'")}});
            format!("links/*?options={}", percent_encode(&options.to_string()))
        })
        .collect();
    let (status, body) = app
        .post_json(
            "/api/realtime",
            None,
            json!({"clientId": heavy_id, "subscriptions": topics}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (mut moderate, moderate_id) = open_stream(&app).await.expect("moderate stream");
    let options = json!({"query": {"filter": "links.label ?~ 'row'"}});
    let moderate_topic = format!("links/*?options={}", percent_encode(&options.to_string()));
    let (status, body) = app
        .post_json(
            "/api/realtime",
            None,
            json!({"clientId": moderate_id, "subscriptions": [&moderate_topic]}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (mut plain, plain_id) = open_stream(&app).await.expect("plain stream");
    let (status, body) = app
        .post_json(
            "/api/realtime",
            None,
            json!({"clientId": plain_id, "subscriptions": ["links/*"]}),
        )
        .await;
    assert_eq!(status, 204, "{body}");

    // Two creates, each linking 50 rows (so each check walks the whole graph): the second one's event cannot overtake the first change's work in a loop
    // that checks one client after another, whichever client comes first.
    for label in ["first", "second"] {
        let (status, body) = app
            .post_json(
                "/api/collections/links/records",
                Some(&admin),
                json!({"label": label, "links": &ids[..50]}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let mut buffer = String::new();
    let mut moderate_buffer = String::new();
    for label in ["first", "second"] {
        let event = next_event(&mut plain, &mut buffer, "links/*", NORMAL_TIMEOUT)
            .await
            .unwrap_or_else(|| panic!("the plain client receives the {label} create promptly"));
        assert_eq!(event["record"]["label"], label);
        // Its check needs the database, as the heavy client's do, and must not queue
        // behind all of them.
        let event = next_event(
            &mut moderate,
            &mut moderate_buffer,
            &moderate_topic,
            NORMAL_TIMEOUT,
        )
        .await
        .unwrap_or_else(|| panic!("the moderate client receives the {label} create promptly"));
        assert_eq!(event["record"]["label"], label);
        assert_serving(&mut app, "while an expensive client's checks run").await;
    }
    // The heavy client is not starved either: a row reachable in three hops from every row
    // is renamed to match one of its 200 filters, and that update's event must reach it
    // after its checks of the creates (which match nothing, or, checked after the rename,
    // the same filter).
    let (status, body) = app
        .patch_json(
            &format!("/api/collections/links/records/{}", ids[0]),
            Some(&admin),
            json!({"label": "zz7"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut heavy_buffer = String::new();
    let heard = wait_for_marker(
        &mut heavy,
        &mut heavy_buffer,
        &topics[7],
        "zz7",
        Duration::from_secs(300),
    )
    .await;
    assert_eq!(
        heard,
        Heard::Marker,
        "the heavy client receives its event in the end"
    );
    assert_serving(&mut app, "after an expensive realtime client").await;
}

/// What a realtime client saw while waiting for a marker event.
#[derive(Debug, PartialEq, Eq)]
enum Heard {
    /// The event whose record had the marker label arrived.
    Marker,
    /// The server ended the stream (a client dropped as too slow).
    Closed,
    /// Neither within the wait.
    Nothing,
}

/// Reads `event` frames until one whose record's `label` is `marker`, or the stream ends.
async fn wait_for_marker(
    response: &mut reqwest::Response,
    buffer: &mut String,
    event: &str,
    marker: &str,
    wait: Duration,
) -> Heard {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let frame = buffer[..end].to_owned();
            buffer.drain(..end + 2);
            let mut name = "";
            let mut data = "";
            for line in frame.split('\n') {
                if let Some(rest) = line.strip_prefix("event:") {
                    name = rest;
                } else if let Some(rest) = line.strip_prefix("data:") {
                    data = rest;
                }
            }
            // Only the small frames are parsed: the large ones are not the marker.
            if name == event && data.len() < 4096 {
                let value: Value = serde_json::from_str(data).expect("event JSON");
                if value["record"]["label"] == marker {
                    return Heard::Marker;
                }
            }
        }
        match tokio::time::timeout_at(deadline, response.chunk()).await {
            Ok(Ok(Some(chunk))) => buffer.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(Ok(None) | Err(_)) => return Heard::Closed,
            Err(_) => return Heard::Nothing,
        }
    }
}

/// A subscriber with `expand`, and 50 filters through a relation (each a database check over
/// the whole record), has every change decided in its backlog, slowly; a writer then updates a
/// record's JSON field with ~1 MiB arrays (each parses into tens of MB) several dozen times,
/// while the subscriber reads its stream as fast as it comes. Held by the backlog without a
/// byte bound, those changes would take the server past its address space; now the client is
/// served or dropped as too slow, and the server keeps serving.
#[tokio::test]
async fn large_changes_for_an_expand_subscriber_stay_within_the_backlog_budgets() {
    let mut app = spawn_capped().await;
    let admin = app.admin_token().await;
    let (status, body) = app
        .post_json(
            "/api/collections",
            Some(&admin),
            json!({"name": "owners", "type": "base", "listRule": "", "viewRule": "",
                   "createRule": "", "fields": [{"name": "label", "type": "text"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let owners_id = body["id"].as_str().expect("id").to_owned();
    let (status, body) = app
        .post_json(
            "/api/collections",
            Some(&admin),
            json!({"name": "docs", "type": "base", "listRule": "", "viewRule": "",
                   "createRule": "", "updateRule": "", "fields": [
                       {"name": "label", "type": "text"},
                       {"name": "owner", "type": "relation", "collectionId": owners_id,
                        "maxSelect": 1},
                       {"name": "blob", "type": "json", "maxSize": 2 << 20}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, owner) = app
        .post_json(
            "/api/collections/owners/records",
            None,
            json!({"label": "owner"}),
        )
        .await;
    assert_eq!(status, 200, "{owner}");
    let (status, doc) = app
        .post_json(
            "/api/collections/docs/records",
            None,
            json!({"label": "big", "owner": owner["id"]}),
        )
        .await;
    assert_eq!(status, 200, "{doc}");
    let doc_id = doc["id"].as_str().expect("id").to_owned();

    let (mut stream, client_id) = open_stream(&app).await.expect("stream");
    let options = json!({"expand": "owner"});
    let topic = format!("docs/*?options={}", percent_encode(&options.to_string()));
    let mut topics = vec![topic.clone()];
    topics.extend((0..50).map(|n| {
        let options = json!({"query": {"filter": format!("owner.label ?~ 'zz{n}'")}});
        format!("docs/*?options={}", percent_encode(&options.to_string()))
    }));
    let (status, body) = app
        .post_json(
            "/api/realtime",
            None,
            json!({"clientId": client_id, "subscriptions": topics}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let reader = tokio::spawn(async move {
        let mut buffer = String::new();
        wait_for_marker(
            &mut stream,
            &mut buffer,
            &topic,
            "marker",
            Duration::from_secs(300),
        )
        .await
    });

    // `[0,0,...]`: two bytes of text per JSON value.
    let blob = format!("[{}0]", "0,".repeat((1 << 20) / 2 - 1));
    let client = reqwest::Client::new();
    let url = app.url(&format!("/api/collections/docs/records/{doc_id}?fields=id"));
    for n in 0..48 {
        let body = format!("{{\"label\":\"big{n}\",\"blob\":{blob}}}");
        let response = client
            .patch(&url)
            .header("Content-Type", "application/json")
            .body(body)
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .unwrap_or_else(|error| panic!("update {n} answered: {error}"));
        assert_eq!(response.status().as_u16(), 200, "update {n}");
        if n % 16 == 15 {
            assert_serving(&mut app, "while large changes pile up for a subscriber").await;
        }
    }
    let (status, body) = app
        .post_json(
            "/api/collections/docs/records",
            None,
            json!({"label": "marker", "owner": owner["id"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let heard = reader.await.expect("reader");
    assert_ne!(
        heard,
        Heard::Nothing,
        "the subscriber is served its events or disconnected"
    );
    assert_serving(&mut app, "after large changes for an expand subscriber").await;
}
