//! Turning what the request path saw into a stored entry, in PocketBase's shape: `message`
//! `"<METHOD> <url, percent-decoded>"`, `data` with its keys in PocketBase's (alphabetical)
//! order, `level` 8 for any status ≥ 400 and 0 otherwise. Runs on the writer task.

use domain::LogEntry;
use serde_json::{Map, Value};

use super::{
    AppEntry, AuthSeen, DEFAULT_MAX_DATA_SIZE, LEVEL_ERROR, LEVEL_INFO, MAX_MESSAGE_CHARS, Pending,
    RequestEntry,
};
use crate::state::SharedState;
use crate::state::settings::Logs as LogSettings;

/// The key marking a `data` cut to `maxDataSize`.
pub const TRUNCATED_KEY: &str = "__pb_truncated__";

pub(super) async fn build(
    state: &SharedState,
    settings: &LogSettings,
    pending: Pending,
) -> LogEntry {
    let (created, level, message, data) = match pending {
        Pending::App(AppEntry {
            created,
            level,
            message,
            data,
        }) => (created, level, message, data),
        Pending::Request(request) => {
            let request = *request;
            let created = request.created;
            let level = if request.status >= 400 {
                LEVEL_ERROR
            } else {
                LEVEL_INFO
            };
            let message = format!("{} {}", request.method, percent_decode(&request.url));
            let data = request_data(state, request).await;
            (created, level, message, data)
        }
    };
    LogEntry {
        id: domain::ids::new_record_id(),
        created: domain::time::format(created),
        data: bound_data(data, settings.max_data_size),
        message: cap_chars(message, MAX_MESSAGE_CHARS),
        level,
    }
}

async fn request_data(state: &SharedState, request: RequestEntry) -> Value {
    let (auth, auth_id) = match &request.auth {
        AuthSeen::Guest => (String::new(), String::new()),
        AuthSeen::Known(collection, id) => (collection.clone(), id.clone()),
        AuthSeen::Token(header) => {
            let token = crate::extract::strip_bearer(header);
            if token.is_empty() {
                (String::new(), String::new())
            } else {
                match crate::auth::token::resolve_auth_token(state, token).await {
                    domain::AuthContext::Record {
                        collection, record, ..
                    } => (collection.name.clone(), record.id().to_owned()),
                    domain::AuthContext::Guest => (String::new(), String::new()),
                }
            }
        }
    };
    let remote_ip = request
        .remote_ip
        .map(|ip| ip.to_string())
        .unwrap_or_default();
    let user_ip = request
        .forwarded_ip
        .clone()
        .unwrap_or_else(|| remote_ip.clone());
    // Inserted in alphabetical order, the order PocketBase stores them in.
    let mut data = Map::new();
    data.insert("auth".into(), Value::String(auth));
    if request.log_auth_id && !auth_id.is_empty() {
        data.insert("authId".into(), Value::String(auth_id));
    }
    if let Some(error) = &request.error {
        data.insert("details".into(), error.details.clone());
        data.insert("error".into(), Value::String(error.message.clone()));
    }
    data.insert(
        "execTime".into(),
        serde_json::Number::from_f64(request.exec.as_secs_f64() * 1000.0)
            .map_or(Value::Null, Value::Number),
    );
    data.insert("method".into(), Value::String(request.method.to_string()));
    data.insert("referer".into(), Value::String(request.referer.clone()));
    if request.log_ip {
        data.insert("remoteIP".into(), Value::String(remote_ip));
    }
    data.insert("status".into(), Value::from(request.status));
    data.insert("type".into(), Value::String("request".into()));
    data.insert("url".into(), Value::String(request.url.clone()));
    data.insert(
        "userAgent".into(),
        Value::String(request.user_agent.clone()),
    );
    if request.log_ip {
        data.insert("userIP".into(), Value::String(user_ip));
    }
    Value::Object(data)
}

/// `data` within `maxDataSize` bytes once serialized (16 KiB when the setting is 0): when
/// larger, its longest texts are shortened until it fits and it is marked
/// `"__pb_truncated__": true`.
pub fn bound_data(data: Value, max_data_size: u64) -> Value {
    let limit = match usize::try_from(max_data_size) {
        Ok(0) | Err(_) => DEFAULT_MAX_DATA_SIZE,
        Ok(limit) => limit,
    };
    let size = data.to_string().len();
    if size <= limit {
        return data;
    }
    let Value::Object(mut map) = data else {
        return serde_json::json!({ TRUNCATED_KEY: true });
    };
    // Nested values (`details` objects) are flattened to text first, so they can be cut.
    for value in map.values_mut() {
        if value.is_object() || value.is_array() {
            *value = Value::String(value.to_string());
        }
    }
    map.insert(TRUNCATED_KEY.into(), Value::Bool(true));
    let mut excess = Value::Object(map.clone())
        .to_string()
        .len()
        .saturating_sub(limit);
    while excess > 0 {
        let Some((key, longest)) = map
            .iter()
            .filter_map(|(key, value)| value.as_str().map(|text| (key.clone(), text.len())))
            .max_by_key(|(_, len)| *len)
            .filter(|(_, len)| *len > 0)
        else {
            // Nothing left to shorten: keep the marker alone.
            return serde_json::json!({ TRUNCATED_KEY: true });
        };
        let keep = longest.saturating_sub(excess.max(longest / 2));
        if let Some(Value::String(text)) = map.get_mut(&key) {
            let mut cut = keep.min(text.len());
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        excess = Value::Object(map.clone())
            .to_string()
            .len()
            .saturating_sub(limit);
    }
    Value::Object(map)
}

fn cap_chars(text: String, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => text[..cut].to_owned(),
        None => text,
    }
}

/// `%XX` escapes decoded (invalid UTF-8 replaced), as PocketBase shows the url in `message`.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    if !bytes.contains(&b'%') {
        return text.to_owned();
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `--dev` console line of an entry (and the cause of an error answer).
pub(super) fn print(entry: &LogEntry) {
    let data = &entry.data;
    if data.get("type").and_then(Value::as_str) != Some("request") {
        println!(
            "{} [{}] {} {}",
            entry.created,
            level_name(entry.level),
            entry.message,
            data
        );
        return;
    }
    let status = data.get("status").and_then(Value::as_u64).unwrap_or(0);
    let exec = data.get("execTime").and_then(Value::as_f64).unwrap_or(0.0);
    println!("{} {} {status} {exec:.3}ms", entry.created, entry.message);
    if let Some(error) = data.get("error").and_then(Value::as_str) {
        match data.get("details") {
            Some(Value::Null) | None => println!("  └─ {error}"),
            Some(Value::String(details)) => println!("  └─ {error} ({details})"),
            Some(details) => println!("  └─ {error} {details}"),
        }
    }
}

fn level_name(level: i64) -> &'static str {
    match level {
        l if l >= LEVEL_ERROR => "ERROR",
        l if l >= super::LEVEL_WARN => "WARN",
        l if l >= LEVEL_INFO => "INFO",
        _ => "DEBUG",
    }
}
