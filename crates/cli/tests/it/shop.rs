//! The shop example (`examples/shop/`) end to end: Plinth serves its JS migrations and hooks
//! (`--hooksDir`/`--migrationsDir`), and 200 concurrent orders for a stock of 10 must sell
//! exactly 10, never oversell, and refuse the rest with PocketBase's answer; the signed payment
//! callback must accept a good signature (idempotently) and refuse a bad one. It mirrors
//! `examples/shop/check.mjs`, which passes against PocketBase 0.40.6.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Instant;

use serde_json::{Value, json};

use crate::support::{Launch, TestApp, assert_error};

const STOCK: i64 = 10;
const ORDERS: usize = 200;
const USERS: usize = 20;
const PRICE: f64 = 2.5;
const SECRET: &str = "shop-test-webhook-secret-0123456789";

fn example_dir(sub: &str) -> String {
    let dir: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "..",
        "examples",
        "shop",
        sub,
    ]
    .iter()
    .collect();
    dir.display().to_string()
}

async fn shop_app() -> TestApp {
    TestApp::spawn_launch(&Launch {
        args: vec![
            format!("--hooksDir={}", example_dir("pb_hooks")),
            format!("--migrationsDir={}", example_dir("pb_migrations")),
            // A hook file that fails to load must stop the server, not be skipped.
            "--hooksWatch=false".to_owned(),
        ],
        env: vec![("SHOP_WEBHOOK_SECRET".to_owned(), SECRET.to_owned())],
        ..Launch::default()
    })
    .await
}

/// Creates a user and signs them in; returns (id, token).
async fn buyer(app: &TestApp, su: &str, n: usize) -> (String, String) {
    let email = format!("buyer{n}@example.com");
    let (status, rec) = app
        .post_json(
            "/api/collections/users/records",
            Some(su),
            json!({"email": email, "password": "buyer-pass-123", "passwordConfirm": "buyer-pass-123"}),
        )
        .await;
    assert_eq!(status, 200, "{rec}");
    let (status, auth) = app
        .post_json(
            "/api/collections/users/auth-with-password",
            None,
            json!({"identity": email, "password": "buyer-pass-123"}),
        )
        .await;
    assert_eq!(status, 200, "{auth}");
    (
        rec["id"].as_str().expect("id").to_owned(),
        auth["token"].as_str().expect("token").to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_orders_never_oversell() {
    let app = shop_app().await;
    let su = app.admin_token().await;
    let mut users = Vec::new();
    for n in 0..USERS {
        users.push(buyer(&app, &su, n).await);
    }
    let (status, product) = app
        .post_json(
            "/api/collections/products/records",
            Some(&su),
            json!({"name": "Rubber duck", "price": PRICE, "stock": STOCK}),
        )
        .await;
    assert_eq!(status, 200, "{product}");
    let product_id = product["id"].as_str().expect("id").to_owned();

    // The route's own refusals, before the rush.
    let order = json!({"product": product_id, "quantity": 1});
    let (status, body) = app.post_json("/api/shop/order", None, order.clone()).await;
    assert_error(
        status,
        &body,
        401,
        "The request requires valid record authorization token.",
    );
    let (status, body) = app
        .post_json("/api/shop/order", Some(&su), order.clone())
        .await;
    assert_error(
        status,
        &body,
        403,
        "The authorized record is not allowed to perform this action.",
    );
    let (status, body) = app
        .post_json(
            "/api/shop/order",
            Some(&users[0].1),
            json!({"product": product_id, "quantity": 0}),
        )
        .await;
    let data = assert_error(
        status,
        &body,
        400,
        "Quantity must be a whole number between 1 and 1000.",
    );
    assert_eq!(data["quantity"]["code"], "validation_invalid_quantity");
    let (status, body) = app
        .post_json(
            "/api/shop/order",
            Some(&users[0].1),
            json!({"product": "nosuchproduct00", "quantity": 1}),
        )
        .await;
    assert_error(status, &body, 404, "Product not found.");
    let (status, body) = app
        .post_json(
            "/api/shop/order",
            Some(&users[0].1),
            json!({"product": product_id, "quantity": STOCK + 1}),
        )
        .await;
    assert_error(status, &body, 400, &format!("Only {STOCK} left in stock."));

    // The rush: 200 orders of 1 at once, each user buying in parallel.
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..ORDERS {
        let client = app.client.clone();
        let url = app.url("/api/shop/order");
        let token = users[i % USERS].1.clone();
        let body = order.clone();
        tasks.spawn(async move {
            let response = client
                .post(url)
                .header("Authorization", token)
                .json(&body)
                .send()
                .await
                .expect("request sent");
            let status = response.status().as_u16();
            let value: Value = response.json().await.expect("JSON answer");
            (status, value)
        });
    }
    let mut results = Vec::new();
    while let Some(result) = tasks.join_next().await {
        results.push(result.expect("task"));
    }
    let elapsed = started.elapsed();
    let mut answers: BTreeMap<String, usize> = BTreeMap::new();
    for (status, body) in &results {
        let what = if *status == 200 {
            "ok".to_owned()
        } else {
            body["message"].as_str().unwrap_or("?").to_owned()
        };
        *answers.entry(format!("{status} {what}")).or_default() += 1;
    }
    eprintln!("{ORDERS} concurrent orders in {elapsed:?}: {answers:?}");

    let sold: Vec<&Value> = results
        .iter()
        .filter(|(status, _)| *status == 200)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(sold.len() as i64, STOCK, "answers: {answers:?}");
    for (status, body) in results.iter().filter(|(status, _)| *status != 200) {
        // PocketBase answers every refusal this way (no "busy" errors at this concurrency).
        assert_error(*status, body, 400, "Only 0 left in stock.");
        assert_eq!(body["data"], json!({}));
    }
    for order in &sold {
        assert_eq!(order["status"], "pending", "{order}");
        assert_eq!(order["quantity"], 1, "{order}");
        assert_eq!(order["total"], PRICE, "{order}");
        assert_eq!(order["product"], product_id.as_str(), "{order}");
        assert_eq!(order["paymentRef"], "", "{order}");
    }
    let ids: HashSet<&str> = sold.iter().map(|o| o["id"].as_str().expect("id")).collect();
    assert_eq!(ids.len() as i64, STOCK);

    let (status, after) = app
        .get(
            &format!("/api/collections/products/records/{product_id}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["stock"], 0, "the stock must end at 0: {after}");
    let filter = format!("product='{product_id}'");
    let (status, stored) = app
        .get(
            &format!(
                "/api/collections/orders/records?perPage=500&filter={}",
                encode(&filter)
            ),
            Some(&su),
        )
        .await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["totalItems"], STOCK, "{stored}");
    for item in stored["items"].as_array().expect("items") {
        assert!(ids.contains(item["id"].as_str().expect("id")), "{item}");
    }

    // Orders are visible to their owner only.
    let first = sold[0];
    let owner_id = first["user"].as_str().expect("user");
    let owner = users.iter().find(|(id, _)| id == owner_id).expect("owner");
    let stranger = users
        .iter()
        .find(|(id, _)| id != owner_id)
        .expect("stranger");
    let (status, own) = app
        .get(
            "/api/collections/orders/records?perPage=500",
            Some(&owner.1),
        )
        .await;
    assert_eq!(status, 200, "{own}");
    let own = own["items"].as_array().expect("items");
    assert!(!own.is_empty());
    assert!(own.iter().all(|o| o["user"] == owner_id), "{own:?}");
    let first_id = first["id"].as_str().expect("id");
    let (status, _) = app
        .get(
            &format!("/api/collections/orders/records/{first_id}"),
            Some(&stranger.1),
        )
        .await;
    assert_eq!(status, 404);
    let (status, guest) = app.get("/api/collections/orders/records", None).await;
    assert_eq!(status, 200);
    assert_eq!(guest["totalItems"], 0, "{guest}");

    // Direct creates through the records API are refused by the hook.
    let direct = json!({"user": owner.0, "product": product_id, "quantity": 1, "status": "paid"});
    for token in [owner.1.as_str(), su.as_str()] {
        let (status, body) = app
            .post_json(
                "/api/collections/orders/records",
                Some(token),
                direct.clone(),
            )
            .await;
        assert_error(
            status,
            &body,
            403,
            "Orders are placed through POST /api/shop/order.",
        );
    }
    let (status, body) = app
        .post_json(
            "/api/collections/orders/records",
            Some(&owner.1),
            json!({"user": stranger.0, "product": product_id, "quantity": 1, "status": "paid"}),
        )
        .await;
    assert_error(status, &body, 400, "Failed to create record.");
    let (status, stored) = app
        .get(
            &format!(
                "/api/collections/orders/records?perPage=1&filter={}",
                encode(&filter)
            ),
            Some(&su),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        stored["totalItems"], STOCK,
        "a refused create stored nothing"
    );

    // The payment callback.
    let raw = json!({"order": first_id, "paymentRef": "pay_0001"}).to_string();
    let (status, paid) = pay(&app, &raw, Some(&hs256_hex(SECRET, &raw))).await;
    assert_eq!(status, 200, "{paid}");
    assert_eq!(
        paid,
        json!({"id": first_id, "status": "paid", "paymentRef": "pay_0001", "alreadyPaid": false})
    );
    let (status, again) = pay(&app, &raw, Some(&hs256_hex(SECRET, &raw))).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["alreadyPaid"], true, "{again}");
    assert_eq!(again["paymentRef"], "pay_0001", "{again}");

    let second_id = sold[1]["id"].as_str().expect("id");
    let raw2 = json!({"order": second_id, "paymentRef": "pay_0002"}).to_string();
    let good2 = hs256_hex(SECRET, &raw2);
    let flipped = format!(
        "{}{}",
        if good2.starts_with('0') { '1' } else { '0' },
        &good2[1..]
    );
    let (status, body) = pay(&app, &raw2, Some(&flipped)).await;
    assert_error(status, &body, 401, "Invalid signature.");
    let (status, body) = pay(&app, &raw2, None).await;
    assert_error(status, &body, 401, "Invalid signature.");
    let tampered = raw2.replace("pay_0002", "pay_9999");
    let (status, body) = pay(&app, &tampered, Some(&good2)).await;
    assert_error(status, &body, 401, "Invalid signature.");
    let (status, second) = app
        .get(
            &format!("/api/collections/orders/records/{second_id}"),
            Some(&su),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        second["status"], "pending",
        "a bad signature changed nothing"
    );
    let (status, body) = pay(&app, &raw2, Some(&good2.to_uppercase())).await;
    assert_eq!(status, 200, "hex signatures are case-insensitive: {body}");

    let (status, viewed) = app
        .get(
            &format!("/api/collections/orders/records/{first_id}"),
            Some(&owner.1),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(viewed["status"], "paid");
    assert_eq!(viewed["paymentRef"], "pay_0001");
    let unknown = json!({"order": "nosuchorder0000", "paymentRef": "x"}).to_string();
    let (status, body) = pay(&app, &unknown, Some(&hs256_hex(SECRET, &unknown))).await;
    assert_error(status, &body, 404, "Order not found.");
}

async fn pay(app: &TestApp, raw: &str, signature: Option<&str>) -> (u16, Value) {
    let mut request = app
        .client
        .post(app.url("/api/shop/payment-callback"))
        .header("Content-Type", "application/json")
        .body(raw.to_owned());
    if let Some(signature) = signature {
        request = request.header("X-Shop-Signature", signature);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON answer"))
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// HMAC-SHA256 as lowercase hex (what `$security.hs256` returns), written out here so the
/// test needs no crypto dependency; checked against a known vector below.
fn hs256_hex(key: &str, message: &str) -> String {
    let mut key_block = [0u8; 64];
    if key.len() > 64 {
        key_block[..32].copy_from_slice(&sha256(key.as_bytes()));
    } else {
        key_block[..key.len()].copy_from_slice(key.as_bytes());
    }
    let mut inner: Vec<u8> = key_block.iter().map(|b| b ^ 0x36).collect();
    inner.extend_from_slice(message.as_bytes());
    let mut outer: Vec<u8> = key_block.iter().map(|b| b ^ 0x5c).collect();
    outer.extend_from_slice(&sha256(&inner));
    sha256(&outer).iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(data: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut padded = data.to_vec();
    padded.push(0x80);
    while padded.len() % 64 != 56 {
        padded.push(0);
    }
    padded.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for chunk in padded.chunks(64) {
        let mut w = [0u32; 64];
        for (i, word) in chunk.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (slot, v) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *slot = slot.wrapping_add(v);
        }
    }
    let mut out = [0u8; 32];
    for (i, v) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&v.to_be_bytes());
    }
    out
}

#[test]
fn hs256_matches_pocketbase() {
    // `$security.hs256("hello", "key")` and `$security.sha256("hello")` on PocketBase 0.40.6.
    assert_eq!(
        hs256_hex("key", "hello"),
        "9307b3b915efb5171ff14d8cb55fbcc798c6c0ef1456d66ded1a6aa723a58b7b"
    );
    let digest: String = sha256(b"hello")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        digest,
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
}
