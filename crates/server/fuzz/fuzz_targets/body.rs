//! Fuzzes request-body parsing as the records endpoints and the helper forms read bodies:
//! the first input byte picks the content type (JSON, form-encoded, multipart with a fixed
//! boundary, multipart with the boundary taken from the input, or an unknown type), the
//! rest is the body. The same functions the extractors call are used: `parse_plain_bytes`
//! for whole bodies and `parse_body_with_files` (axum's multipart reader, the part count,
//! `@jsonPayload` and file parts) on a real request. Refusals are fine; a panic, a stack
//! overflow, a hang or a parsed result past the JSON bounds is a bug.

#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::Request;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use server::extract::{BodyKind, parse_body_with_files, parse_plain_bytes};

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
    })
}

/// Nesting depth of a parsed value (iterative: the value may be deep).
fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 1usize)];
    while let Some((value, level)) = stack.pop() {
        deepest = deepest.max(level);
        match value {
            Value::Array(items) => stack.extend(items.iter().map(|v| (v, level + 1))),
            Value::Object(map) => stack.extend(map.values().map(|v| (v, level + 1))),
            _ => {}
        }
    }
    deepest
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let content_type = match kind % 5 {
        0 => "application/json".to_owned(),
        1 => "application/x-www-form-urlencoded".to_owned(),
        2 => "multipart/form-data; boundary=XB".to_owned(),
        3 => {
            // The boundary is the input up to the first newline.
            let end = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
            format!(
                "multipart/form-data; boundary={}",
                String::from_utf8_lossy(&rest[..end])
            )
        }
        _ => "text/plain".to_owned(),
    };
    if kind % 5 < 2 || kind % 5 == 4 {
        if let Ok(map) = parse_plain_bytes(BodyKind::of(&content_type), rest) {
            let value = Value::Object(map);
            assert!(depth(&value) <= domain::values::MAX_JSON_DEPTH + 1);
        }
        return;
    }
    let Ok(request) = Request::builder()
        .method("POST")
        .uri("/api/collections/posts/records")
        .header("content-type", content_type)
        .body(Body::from(rest.to_vec()))
    else {
        return;
    };
    let parsed = runtime().block_on(parse_body_with_files(request, &()));
    if let Ok((map, files)) = parsed {
        assert!(depth(&Value::Object(map)) <= domain::values::MAX_JSON_DEPTH + 2);
        assert!(files.len() <= server::extract::MAX_MULTIPART_PARTS);
    }
});
