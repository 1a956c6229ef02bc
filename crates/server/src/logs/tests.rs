//! Unit tests of the log entries and the writer's bound.

use super::entry::{TRUNCATED_KEY, bound_data, percent_decode};

#[test]
fn message_urls_are_percent_decoded() {
    assert_eq!(
        percent_decode("/api/collections/users/records?filter=bad%3D%3D"),
        "/api/collections/users/records?filter=bad=="
    );
    assert_eq!(percent_decode("/a%zz%4"), "/a%zz%4");
}

#[test]
fn data_over_the_bound_is_cut_and_marked() {
    let small = serde_json::json!({"a": "x"});
    assert_eq!(bound_data(small.clone(), 100), small);
    let big = serde_json::json!({"userAgent": "u".repeat(5000), "status": 200});
    let cut = bound_data(big, 1000);
    assert!(cut.to_string().len() <= 1000, "{}", cut.to_string().len());
    assert_eq!(cut[TRUNCATED_KEY], true);
    assert_eq!(cut["status"], 200);
    // 0 means PocketBase's default bound.
    let default = bound_data(serde_json::json!({"x": "y".repeat(20_000)}), 0);
    assert!(default.to_string().len() <= super::DEFAULT_MAX_DATA_SIZE);
}
