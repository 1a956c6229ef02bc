//! Fuzzes query-string handling of the records endpoints: the input is a raw query string,
//! decoded as the handlers decode it (`QueryParams::parse`), then paging, the privileged
//! reference check of `filter`/`sort`, the `expand` paths and the `fields` filter applied to
//! a sample list envelope. Refusals are fine; a panic or a hang is a bug.

#![no_main]

use domain::AuthContext;
use libfuzzer_sys::fuzz_target;
use serde_json::json;
use server::records::expand::{MAX_DEPTH, parse_expand};
use server::records::query::{QueryParams, paging, refuse_privileged_references};
use server::response::apply_fields;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let params = QueryParams::parse(Some(raw));
    if let Ok(paging) = paging(&params) {
        assert!(paging.page >= 1);
        assert!((1..=server::records::query::MAX_PER_PAGE).contains(&paging.per_page));
    }
    let _ = refuse_privileged_references(
        params.text("filter"),
        params.text("sort"),
        &AuthContext::Guest,
    );
    for path in parse_expand(params.text("expand")) {
        assert!(!path.is_empty() && path.len() <= MAX_DEPTH);
    }
    let mut envelope = json!({
        "items": [{"id": "r1", "title": "<p>Hi <b>there</b></p>", "n": 2,
                   "expand": {"author": {"id": "u1", "name": "A"},
                              "tags": [{"id": "t1"}, {"id": "t2", "name": "x"}]}}],
        "page": 1, "perPage": 30, "totalItems": 1, "totalPages": 1
    });
    let _ = apply_fields(&mut envelope, params.text("fields"));
});
