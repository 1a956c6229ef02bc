//! Hostile clients against file downloads: thumbnails of images whose headers claim huge
//! dimensions (a 40,000,000×1 strip, an 11000×11000 square) requested concurrently by
//! guests, and `Range` headers listing tens of thousands of ranges.

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{DynamicImage, ExtendedColorType, ImageEncoder, ImageFormat};
use serde_json::{Value, json};

use super::{NORMAL_TIMEOUT, assert_serving, spawn_capped};
use crate::files::send_multipart;
use crate::support::TestApp;

/// A collection `docs` anyone can view and write, with a file field that allows 10 MB
/// files and a few thumb sizes besides the default `100x100`.
async fn docs(app: &TestApp) {
    let token = app.admin_token().await;
    let (status, body) = app
        .post_json(
            "/api/collections",
            Some(&token),
            json!({
                "name": "docs", "type": "base",
                "listRule": "", "viewRule": "", "createRule": "",
                "fields": [{"name": "files", "type": "file", "maxSelect": 1,
                    "maxSize": 10_000_000, "thumbs": ["100x100f", "0x100", "100x100t"]}]
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// Uploads `bytes` as `name` (as a guest) and returns the file's download path.
async fn upload(app: &TestApp, name: &str, bytes: &[u8]) -> String {
    let (status, body) = send_multipart(
        app,
        reqwest::Method::POST,
        "/api/collections/docs/records",
        None,
        &[],
        &[("files", name, bytes)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let stored = body["files"].as_str().expect("stored name");
    format!(
        "/api/files/docs/{}/{stored}",
        body["id"].as_str().expect("id")
    )
}

/// A transparent RGBA PNG of any dimensions: tiny on disk, huge once decoded.
fn png(width: u32, height: u32) -> Vec<u8> {
    let pixels = DynamicImage::new_rgba8(width, height);
    let mut out = Vec::new();
    PngEncoder::new_with_quality(&mut out, CompressionType::Best, FilterType::NoFilter)
        .write_image(pixels.as_bytes(), width, height, ExtendedColorType::Rgba8)
        .expect("png encodes");
    out
}

/// Issue #11 items 1 and 2: a guest's thumb of a 40,000,000×1 PNG once aborted the process
/// (the resampler asked for ~64 GB), and concurrent first thumbs of an 11000×11000 PNG each
/// decoded ~480 MB. Every request now answers 200 with a thumb or the original, and the
/// server stays up under its cap, serving health while the thumbs are being made.
#[tokio::test]
async fn thumbs_of_huge_images_answer_and_the_server_stays_up() {
    let mut app = spawn_capped().await;
    docs(&app).await;
    let strip = png(40_000_000, 1);
    let square = png(11_000, 11_000);
    assert!(
        strip.len() < 1_000_000 && square.len() < 1_000_000,
        "{} and {} bytes",
        strip.len(),
        square.len()
    );
    let strip_path = upload(&app, "strip.png", &strip).await;
    let square_path = upload(&app, "square.png", &square).await;
    // An ordinary photo-sized image, thumbnailed under the same load, and the largest kind
    // still thumbnailed (49 megapixels, ~200 MB decoded).
    let photo = png(2_000, 1_500);
    let photo_path = upload(&app, "photo.png", &photo).await;
    let large = png(7_000, 7_000);
    let large_path = upload(&app, "large.png", &large).await;

    let mut requests = Vec::new();
    for round in 0..2 {
        for (path, original, is_photo) in [
            (&strip_path, &strip, false),
            (&square_path, &square, false),
            (&photo_path, &photo, true),
            (&large_path, &large, true),
        ] {
            for thumb in ["100x100", "100x100f", "0x100", "100x100t"] {
                let url = app.url(&format!("{path}?thumb={thumb}"));
                let client = app.client.clone();
                let original = original.clone();
                requests.push(tokio::spawn(async move {
                    let response = client.get(&url).send().await.expect("thumb answered");
                    let status = response.status().as_u16();
                    let body = response.bytes().await.expect("thumb body");
                    (round, thumb, status, body, is_photo, original)
                }));
            }
        }
    }
    // Health is served while the thumbnails are being made.
    let health = app
        .client
        .get(app.url("/api/health"))
        .timeout(NORMAL_TIMEOUT)
        .send()
        .await
        .expect("health served during thumbnails");
    assert_eq!(health.status().as_u16(), 200);
    for request in requests {
        let (round, thumb, status, body, is_photo, original) = request.await.expect("request task");
        assert_eq!(status, 200, "round {round}, thumb {thumb}");
        assert!(
            !is_photo || body[..] != original[..],
            "{thumb} of an ordinary photo is made"
        );
        if body[..] != original[..] {
            let image = image::load_from_memory_with_format(&body, ImageFormat::Png)
                .unwrap_or_else(|e| panic!("{thumb}: neither the original nor a PNG: {e}"));
            // Every size asked for has a side of 100 and keeps the other near it.
            let (w, h) = (image.width(), image.height());
            assert!(
                (w == 100 || h == 100) && w <= 200 && h <= 200,
                "{thumb}: {}x{}",
                image.width(),
                image.height()
            );
        }
    }
    assert_serving(&mut app, "after huge thumbnails").await;
}

/// A file of `len` bytes with a recognizable pattern.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

async fn ranged(app: &TestApp, path: &str, ranges: &str) -> (u16, String, Vec<u8>) {
    let response = app
        .client
        .get(app.url(path))
        .header("Range", format!("bytes={ranges}"))
        .send()
        .await
        .expect("range request answered");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (
        status,
        content_type,
        response.bytes().await.expect("body").to_vec(),
    )
}

/// Issue #11 item 8: each range of a `Range` header opened its own file, so 60,000 ranges
/// of `0-0` answered 500 (`Too many open files`). More than 200 ranges now get the whole
/// file, as PocketBase answers; up to 200 (overlapping or not) get one multipart answer.
#[tokio::test]
async fn range_headers_with_many_ranges_are_bounded() {
    let mut app = spawn_capped().await;
    docs(&app).await;
    let content = pattern(100_000);
    let path = upload(&app, "data.bin", &content).await;

    let many = vec!["0-0"; 60_000].join(",");
    let (status, _, body) = ranged(&app, &path, &many).await;
    assert_eq!(status, 200, "60,000 ranges: the whole file");
    assert_eq!(body, content);
    assert_serving(&mut app, "after 60,000 ranges").await;

    let overlapping = vec!["0-0"; 200].join(",");
    let (status, content_type, body) = ranged(&app, &path, &overlapping).await;
    assert_eq!(status, 206);
    assert!(content_type.starts_with("multipart/byteranges; boundary="));
    let text = String::from_utf8_lossy(&body);
    assert_eq!(text.matches("Content-Range: bytes 0-0/100000").count(), 200);

    let ascending: Vec<String> = (0..200)
        .map(|i| format!("{}-{}", i * 400, i * 400 + 9))
        .collect();
    let (status, _, body) = ranged(&app, &path, &ascending.join(",")).await;
    assert_eq!(status, 206);
    let text = String::from_utf8_lossy(&body);
    assert_eq!(text.matches("Content-Range: bytes ").count(), 200);
    let last = 199 * 400;
    let head = format!("Content-Range: bytes {last}-{}/100000", last + 9);
    let at = body
        .windows(head.len())
        .position(|w| w == head.as_bytes())
        .expect("last part");
    let part = &body[at + head.len()..];
    let start = part
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("part head ends")
        + 4;
    assert_eq!(&part[start..start + 10], &content[last..last + 10]);

    // Many concurrent downloads with many ranges each: still answered, still serving.
    let mut requests = Vec::new();
    for _ in 0..20 {
        let url = app.url(&path);
        let client = app.client.clone();
        let header = format!("bytes={}", vec!["0-0"; 200].join(","));
        requests.push(tokio::spawn(async move {
            client
                .get(&url)
                .header("Range", header)
                .send()
                .await
                .map(|r| r.status().as_u16())
        }));
    }
    for request in requests {
        assert_eq!(request.await.expect("task").expect("answered"), 206);
    }
    let (status, body) = app.get("/api/collections/docs/records", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["totalItems"], Value::from(1));
    assert_serving(&mut app, "after many ranged downloads").await;
}
