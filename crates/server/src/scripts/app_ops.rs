//! The app services scripts reach beyond records and transactions: relation expansion
//! (`$app.expandRecord`), rule checks (`$app.canAccessRecord`), the records API's view of a
//! record (`$apis.enrichRecord`), auth tokens (`record.new…Token()`), mail
//! (`$app.newMailClient().send`, `$mails.sendRecord…`), and the `$security` helpers that need
//! more than the engine has (`randomStringByRegex`, `encrypt`, `decrypt`), and the realtime
//! clients of `$app.subscriptionsBroker()`.
//!
//! Each reuses the server's own code path (expand, access, token signing, mail templates),
//! so a script sees exactly what the HTTP API would produce.

use std::sync::Arc;

use base64::Engine as _;
use domain::{AuthContext, Collection, Record, Schema};
use hooks::{HostError, HostResult};
use lettre::Message;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use rules::{RequestContext, Rule};
use serde_json::{Map, Value, json};

use super::SharedTx;
use super::host::{AppHost, superuser};
use crate::access::{self, Question, SqlCheck};
use crate::auth::token::{self, Claims, TokenType};
use crate::settings::encryption;
use crate::state::SharedState;

/// The ops this module answers.
pub(crate) const OPS: &[&str] = &[
    "expandRecord",
    "canAccessRecord",
    "enrichRecord",
    "authToken",
    "sendMail",
    "sendRecordMail",
    "randomStringByRegex",
    "encrypt",
    "decrypt",
    "realtimeClients",
    "realtimeSend",
    "realtimeDiscard",
];

fn text<'a>(args: &'a Value, key: &str) -> &'a str {
    args.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Answers one of [`OPS`].
pub(crate) fn call(host: &AppHost, op: &str, args: Value, tx: Option<SharedTx>) -> HostResult {
    let schema = host.schema(&tx);
    match op {
        "expandRecord" => {
            let (collection, record) = record_of(&schema, &args["record"])?;
            let auth = superuser(&schema);
            let ctx = RequestContext::new(auth.clone());
            let mut outputs = [crate::response::record_json(&collection, &record, &auth)];
            let param = expand_param(&args);
            host.block(crate::records::expand_records_for(
                &host.state,
                &ctx,
                &collection,
                std::slice::from_ref(&record),
                &mut outputs,
                Some(&param),
            ))
            .map_err(api_to_host)?;
            Ok(expand_wire(outputs[0].get("expand")))
        }
        "canAccessRecord" => {
            let (collection, record) = record_of(&schema, &args["record"])?;
            let Some(rule_text) = args.get("rule").and_then(Value::as_str) else {
                return Ok(json!(false));
            };
            let rule = Rule::compile(&schema, &collection, Some(rule_text))
                .map_err(|e| HostError::go(e.to_string()))?;
            let ctx = request_context(&schema, &args);
            let stored = args["record"].get("isNew").and_then(Value::as_bool) != Some(true);
            let decision = host
                .block(access::decide(
                    host.state.store.as_ref(),
                    Question {
                        rule: &rule,
                        filter: None,
                        collection: &collection,
                        record: &record,
                        stored,
                    },
                    &ctx,
                    SqlCheck::Lenient,
                ))
                .map_err(super::host::store_error)?;
            Ok(json!(decision.allows()))
        }
        "enrichRecord" => {
            let (collection, record) = record_of(&schema, &args["record"])?;
            let ctx = request_context(&schema, &args);
            let param = expand_param(&args);
            let rendered = host
                .block(crate::records::render_for_script(
                    &host.state,
                    &ctx,
                    &collection,
                    record,
                    &param,
                ))
                .map_err(api_to_host)?;
            let expand = expand_wire(rendered.get("expand"));
            Ok(json!({ "json": rendered, "expand": expand }))
        }
        "authToken" => {
            let (collection, record) = record_of(&schema, &args["record"])?;
            let (kind, claims) = match text(&args, "kind") {
                "auth" => (
                    TokenType::Auth,
                    Claims {
                        refreshable: Some(true),
                        ..Claims::default()
                    },
                ),
                "verification" => (TokenType::Verification, email_claims(&record)),
                "passwordReset" => (TokenType::PasswordReset, email_claims(&record)),
                "file" => (TokenType::File, Claims::default()),
                other => return Err(HostError::go(format!("unknown token type {other:?}"))),
            };
            let token = token::sign(&collection, &record, kind, claims, None)
                .map_err(|e| HostError::go(e.to_string()))?;
            Ok(json!(token))
        }
        "sendMail" => {
            host.block(deliver(&host.state, args["message"].clone()))?;
            Ok(Value::Null)
        }
        "sendRecordMail" => send_record_mail(host, &schema, &args),
        "randomStringByRegex" => random_by_regex(text(&args, "pattern"))
            .map(Value::String)
            .map_err(HostError::go),
        "encrypt" => encrypt(text(&args, "data").as_bytes(), text(&args, "key"))
            .map(Value::String)
            .map_err(HostError::go),
        "decrypt" => decrypt(text(&args, "data"), text(&args, "key"))
            .map(Value::String)
            .map_err(HostError::go),
        "realtimeClients" => Ok(realtime_clients(host, &args)),
        "realtimeSend" => {
            let hub = &host.state.realtime;
            let sent = hub.message_any(
                text(&args, "clientId"),
                text(&args, "name"),
                text(&args, "data"),
            );
            Ok(json!(sent))
        }
        "realtimeDiscard" => {
            if let Some(client) = host.state.realtime.client(text(&args, "clientId")) {
                host.state.realtime.discard(&client);
            }
            Ok(Value::Null)
        }
        _ => Err(HostError::go(format!(
            "{op} is not supported by Plinth's hooks yet"
        ))),
    }
}

fn api_to_host(error: crate::error::ApiError) -> HostError {
    HostError::Api {
        status: error.status.as_u16(),
        message: error.message,
        data: error.data,
    }
}

/// The collection and values of a record a script passed (its `__export()` shape).
fn record_of(schema: &Schema, wire: &Value) -> Result<(Arc<Collection>, Record), HostError> {
    let collection = schema
        .get(text(wire, "collectionId"))
        .cloned()
        .ok_or_else(|| HostError::go("the record has no collection"))?;
    let data = wire
        .get("data")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    Ok((collection, Record::new(data)))
}

/// The `expand` list of the arguments as the query parameter's text.
fn expand_param(args: &Value) -> String {
    args.get("expand")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// A rendered `expand` object turned back into records the script can hold: each entry's
/// JSON becomes `{collectionId, data, expand}` (one record or a list, as rendered).
fn expand_wire(expand: Option<&Value>) -> Value {
    let Some(Value::Object(map)) = expand else {
        return json!({});
    };
    let one = |v: &Value| -> Value {
        let Some(object) = v.as_object() else {
            return Value::Null;
        };
        let mut data = object.clone();
        data.remove("collectionName");
        let nested = data.remove("expand");
        json!({
            "collectionId": object.get("collectionId").cloned().unwrap_or(Value::Null),
            "collectionName": object.get("collectionName").cloned().unwrap_or(Value::Null),
            "data": Value::Object(data),
            "expand": nested.map(|n| expand_wire(Some(&n))).unwrap_or(Value::Null),
        })
    };
    let out: Map<String, Value> = map
        .iter()
        .map(|(k, v)| {
            let wired = match v {
                Value::Array(list) => Value::Array(list.iter().map(one).collect()),
                other => one(other),
            };
            (k.clone(), wired)
        })
        .collect();
    Value::Object(out)
}

/// The rule context of a script's request info: its auth record (a guest without one) and,
/// when given, its method, headers, query and body.
fn request_context(schema: &Schema, args: &Value) -> RequestContext {
    let auth = match record_of(schema, &args["auth"]) {
        Ok((collection, record)) if args["auth"].is_object() => AuthContext::Record {
            collection,
            record: Arc::new(record),
            refreshable: false,
        },
        _ => AuthContext::Guest,
    };
    let info = &args["info"];
    let mut ctx = RequestContext::new(auth).with_method(match text(info, "method") {
        "" => "GET",
        m => m,
    });
    if let Some(headers) = info.get("headers").and_then(Value::as_object) {
        for (name, value) in headers {
            if let Some(value) = value.as_str() {
                ctx = ctx.with_header(name, value);
            }
        }
    }
    if let Some(query) = info.get("query").and_then(Value::as_object) {
        for (name, value) in query {
            if let Some(value) = value.as_str() {
                ctx = ctx.with_query(name, value);
            }
        }
    }
    if let Some(body) = info.get("body").and_then(Value::as_object) {
        ctx = ctx.with_body(body.clone());
    }
    if let Some(context) = info.get("context").and_then(Value::as_str)
        && !context.is_empty()
    {
        ctx = ctx.with_context(context);
    }
    ctx
}

fn email_claims(record: &Record) -> Claims {
    Claims {
        email: Some(record.text("email").to_owned()),
        ..Claims::default()
    }
}

fn mailbox(value: &Value) -> Result<Option<Mailbox>, HostError> {
    let address = text(value, "address");
    if address.is_empty() {
        return Ok(None);
    }
    let parsed = address
        .parse()
        .map_err(|_| HostError::go(format!("mail: invalid address {address:?}")))?;
    let name = text(value, "name");
    Ok(Some(Mailbox::new(
        (!name.is_empty()).then(|| name.to_owned()),
        parsed,
    )))
}

/// A `MailerMessage` as a MIME message: `from` defaults to the configured sender; the body
/// is HTML with its plain-text alternative (derived when `text` is empty), or plain text.
fn build_message(
    settings: &crate::state::settings::Settings,
    message: &Value,
) -> Result<Message, HostError> {
    let from = match mailbox(&message["from"])? {
        Some(from) => from,
        None => mailbox(&json!({
            "address": settings.meta.sender_address,
            "name": settings.meta.sender_name,
        }))?
        .ok_or_else(|| HostError::go("mail: no sender address"))?,
    };
    let mut builder = Message::builder()
        .from(from)
        .subject(text(message, "subject"));
    let mut recipients = 0;
    for (key, slot) in [("to", 0), ("cc", 1), ("bcc", 2)] {
        for entry in message[key].as_array().into_iter().flatten() {
            if let Some(mailbox) = mailbox(entry)? {
                recipients += 1;
                builder = match slot {
                    0 => builder.to(mailbox),
                    1 => builder.cc(mailbox),
                    _ => builder.bcc(mailbox),
                };
            }
        }
    }
    if recipients == 0 {
        return Err(HostError::go("mail: at least one recipient is required"));
    }
    if let Some(headers) = message["headers"].as_object() {
        for (name, value) in headers {
            let name = HeaderName::new_from_ascii(name.clone())
                .map_err(|_| HostError::go(format!("mail: invalid header name {name:?}")))?;
            let value = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            builder = builder.raw_header(HeaderValue::new(name, value));
        }
    }
    let html = text(message, "html");
    let plain = text(message, "text");
    let built = if html.is_empty() {
        builder.singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(plain.to_owned()),
        )
    } else {
        let plain = if plain.is_empty() {
            crate::mail::plain_text(html)
        } else {
            plain.to_owned()
        };
        builder.multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(plain),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(html.to_owned()),
                ),
        )
    };
    built.map_err(|e| HostError::go(format!("mail: {e}")))
}

/// `$mails.sendRecord…`: the auth flows' template for `kind`, with a fresh token (or the
/// given code), sent now; failures are thrown to the script.
fn send_record_mail(host: &AppHost, schema: &Schema, args: &Value) -> HostResult {
    let (collection, record) = record_of(schema, &args["record"])?;
    let options = collection
        .auth
        .as_ref()
        .ok_or_else(|| HostError::go(format!("{:?} is not an auth collection", collection.name)))?;
    let email = record.text("email").to_owned();
    let sign = |kind: TokenType, claims: Claims| {
        token::sign(&collection, &record, kind, claims, None)
            .map_err(|e| HostError::go(e.to_string()))
    };
    let (template, to, vars): (_, String, Vec<(&str, String)>) = match text(args, "kind") {
        "passwordReset" => (
            &options.reset_password_template,
            email,
            vec![(
                "TOKEN",
                sign(TokenType::PasswordReset, email_claims(&record))?,
            )],
        ),
        "verification" => (
            &options.verification_template,
            email,
            vec![(
                "TOKEN",
                sign(TokenType::Verification, email_claims(&record))?,
            )],
        ),
        "emailChange" => {
            let new_email = text(args, "newEmail").to_owned();
            let claims = Claims {
                email: Some(email),
                new_email: Some(new_email.clone()),
                ..Claims::default()
            };
            (
                &options.confirm_email_change_template,
                new_email,
                vec![("TOKEN", sign(TokenType::EmailChange, claims)?)],
            )
        }
        "otp" => (
            &options.otp.email_template,
            email,
            vec![
                ("OTP", text(args, "pass").to_owned()),
                ("OTP_ID", text(args, "otpId").to_owned()),
            ],
        ),
        "authAlert" => (
            &options.auth_alert.email_template,
            email,
            vec![("ALERT_INFO", text(args, "info").to_owned())],
        ),
        other => return Err(HostError::go(format!("unknown mail {other:?}"))),
    };
    let settings = host
        .block(crate::settings::current(&host.state))
        .map_err(|e| HostError::go(e.message))?;
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let rendered = crate::mail::render(template, &settings, Some(&record), &vars);
    host.block(deliver(
        &host.state,
        message_json(&settings, &to, &rendered),
    ))?;
    Ok(Value::Null)
}

/// The `MailerMessage` form of a rendered template from the configured sender to `to`.
pub(crate) fn message_json(
    settings: &crate::state::settings::Settings,
    to: &str,
    rendered: &crate::mail::Rendered,
) -> Value {
    json!({
        "from": {"address": settings.meta.sender_address, "name": settings.meta.sender_name},
        "to": [{"address": to, "name": ""}],
        "cc": [], "bcc": [],
        "subject": rendered.subject,
        "html": rendered.html,
        "text": "",
        "headers": {},
    })
}

const MAILER_SEND: &str = "onMailerSend";

/// Whether mail should go through [`deliver`] (an `onMailerSend` handler is registered).
pub(crate) fn mailer_hooked(state: &SharedState) -> bool {
    super::of(state).is_some_and(|s| s.registry().has(MAILER_SEND))
}

/// Sends a `MailerMessage` (JSON) with the current SMTP settings, through the
/// `onMailerSend` handlers when there are any: they may change `e.message`, and a chain
/// that ends without `e.next()` sends nothing and is no error, as in PocketBase.
pub(crate) async fn deliver(state: &SharedState, message: Value) -> Result<(), HostError> {
    let settings = Arc::new(
        crate::settings::current(state)
            .await
            .map_err(|e| HostError::go(e.message))?,
    );
    let Some(scripts) = super::of(state)
        .filter(|s| s.registry().has(MAILER_SEND))
        .cloned()
    else {
        return send_json(&settings, &message).await;
    };
    let links: Vec<Value> = scripts
        .registry()
        .handlers_for(MAILER_SEND, "", "")
        .into_iter()
        .map(|h| json!({ "h": h }))
        .collect();
    let handle = tokio::runtime::Handle::current();
    let core = Box::new(move |args: Value| -> HostResult {
        let message = args.get("message").cloned().unwrap_or(Value::Null);
        handle
            .block_on(send_json(&settings, &message))
            .map(|()| Value::Null)
    }) as super::host::Core;
    let host = Arc::new(AppHost::new(state.clone(), scripts.clone()).with_core(core));
    scripts
        .engine
        .call(
            "mailer",
            json!({ "links": links, "message": message }),
            host,
        )
        .await
        .map(|_| ())
        .map_err(|e| match e {
            hooks::HookError::Thrown { api: Some(api), .. } => HostError::Api {
                status: api.status,
                message: api.message,
                data: api.data,
            },
            other => HostError::go(other.to_string()),
        })
}

async fn send_json(
    settings: &crate::state::settings::Settings,
    message: &Value,
) -> Result<(), HostError> {
    let built = build_message(settings, message)?;
    crate::mail::send(settings, built)
        .await
        .map_err(|e| HostError::go(e.to_string()))
}

/// `$security.encrypt`: AES-256-GCM as PocketBase seals it (see [`encryption`], shared with the
/// settings at rest), with Go's error texts.
pub(crate) fn encrypt(data: &[u8], key: &str) -> Result<String, String> {
    encryption::encrypt(&go_key(key)?, data).map_err(|_| "cipher: sealing failed".to_owned())
}

/// The reverse of [`encrypt`]; a wrong key or altered text fails authentication.
pub(crate) fn decrypt(cipher: &str, key: &str) -> Result<String, String> {
    let key = go_key(key)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(cipher)
        .map_err(|e| match e {
            base64::DecodeError::InvalidByte(at, _) => {
                format!("illegal base64 data at input byte {at}")
            }
            other => format!("illegal base64 data: {other}"),
        })?;
    if bytes.len() < 12 {
        return Err("malformed ciphertext".to_owned());
    }
    let plain = encryption::decrypt_raw(&key, &bytes)
        .map_err(|_| "cipher: message authentication failed".to_owned())?;
    Ok(String::from_utf8_lossy(&plain).into_owned())
}

fn go_key(key: &str) -> Result<crate::state::EncryptionKey, String> {
    crate::state::EncryptionKey::from_text(key)
        .map_err(|_| format!("crypto/aes: invalid key size {}", key.len()))
}

/// Longest text [`random_by_regex`] makes.
const MAX_REGEX_OUTPUT: usize = 10_000;
/// How many extra repeats an open quantifier (`*`, `+`, `{n,}`) may add.
const OPEN_REPEAT: usize = 10;

/// One piece of a pattern.
#[derive(Debug, Clone)]
enum Node {
    /// Pick one character of the set (already resolved, negations included).
    Set(Vec<char>),
    /// Alternatives, each a sequence.
    Group(Vec<Vec<Node>>),
    Repeat(Box<Node>, usize, usize),
}

/// A random string matching `pattern`, for the common subset: literals, escapes (`\d`,
/// `\w`, `\s` and escaped punctuation), `.`, classes with ranges and negation, groups with
/// `|`, and the quantifiers `?`, `*`, `+`, `{n}`, `{n,}`, `{n,m}`. Anchors are refused, as
/// PocketBase refuses them; the result is bounded by [`MAX_REGEX_OUTPUT`].
pub(crate) fn random_by_regex(pattern: &str) -> Result<String, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut pos = 0;
    let alternatives = parse_alternatives(&chars, &mut pos)?;
    if pos != chars.len() {
        return Err(format!("error parsing regexp: unexpected ): `{pattern}`"));
    }
    let mut out = String::new();
    let mut rng = rand::rng();
    generate(&Node::Group(alternatives), &mut rng, &mut out)?;
    Ok(out)
}

fn printable() -> Vec<char> {
    (0x20u8..0x7f).map(char::from).collect()
}

fn class_of(c: char) -> Option<Vec<char>> {
    let digits: Vec<char> = ('0'..='9').collect();
    let word: Vec<char> = ('a'..='z')
        .chain('A'..='Z')
        .chain('0'..='9')
        .chain(['_'])
        .collect();
    let space = vec![' ', '\t', '\n', '\r', '\x0c', '\x0b'];
    let not = |set: Vec<char>| {
        printable()
            .into_iter()
            .filter(|c| !set.contains(c))
            .collect()
    };
    Some(match c {
        'd' => digits,
        'w' => word,
        's' => space,
        'D' => not(digits),
        'W' => not(word),
        'S' => not(space),
        _ => return None,
    })
}

fn escaped(c: char) -> char {
    match c {
        'n' => '\n',
        't' => '\t',
        'r' => '\r',
        other => other,
    }
}

fn parse_alternatives(chars: &[char], pos: &mut usize) -> Result<Vec<Vec<Node>>, String> {
    let mut alternatives = vec![Vec::new()];
    while *pos < chars.len() {
        let c = chars[*pos];
        let atom = match c {
            ')' => break,
            '|' => {
                *pos += 1;
                alternatives.push(Vec::new());
                continue;
            }
            // Go's operator numbers for the anchors, as PocketBase names them.
            '^' => return Err("unsupported pattern operator 9".to_owned()),
            '$' => return Err("unsupported pattern operator 10".to_owned()),
            '(' => {
                *pos += 1;
                // Non-capturing and named groups generate the same way.
                if chars.get(*pos) == Some(&'?') {
                    while *pos < chars.len() && chars[*pos] != ':' && chars[*pos] != '>' {
                        *pos += 1;
                    }
                    *pos += 1;
                }
                let inner = parse_alternatives(chars, pos)?;
                if chars.get(*pos) != Some(&')') {
                    return Err("error parsing regexp: missing closing )".to_owned());
                }
                *pos += 1;
                Node::Group(inner)
            }
            '[' => {
                *pos += 1;
                Node::Set(parse_class(chars, pos)?)
            }
            '.' => {
                *pos += 1;
                Node::Set(printable())
            }
            '\\' => {
                *pos += 1;
                let e = *chars
                    .get(*pos)
                    .ok_or("error parsing regexp: trailing backslash at end of expression")?;
                *pos += 1;
                match class_of(e) {
                    Some(set) => Node::Set(set),
                    None if e.is_ascii_alphanumeric() && !matches!(e, 'n' | 't' | 'r') => {
                        return Err(format!(
                            "error parsing regexp: invalid escape sequence: `\\{e}`"
                        ));
                    }
                    None => Node::Set(vec![escaped(e)]),
                }
            }
            '*' | '+' | '?' | '{' => {
                return Err(format!(
                    "error parsing regexp: missing argument to repetition operator: `{c}`"
                ));
            }
            literal => {
                *pos += 1;
                Node::Set(vec![literal])
            }
        };
        let atom = parse_quantifier(chars, pos, atom)?;
        if let Some(last) = alternatives.last_mut() {
            last.push(atom);
        }
    }
    Ok(alternatives)
}

fn parse_class(chars: &[char], pos: &mut usize) -> Result<Vec<char>, String> {
    let start = *pos;
    let negated = chars.get(*pos) == Some(&'^');
    if negated {
        *pos += 1;
    }
    let mut set: Vec<char> = Vec::new();
    let mut first = true;
    loop {
        let Some(&c) = chars.get(*pos) else {
            let text: String = chars[start.saturating_sub(1)..].iter().collect();
            return Err(format!("error parsing regexp: missing closing ]: `{text}`"));
        };
        if c == ']' && !first {
            *pos += 1;
            break;
        }
        first = false;
        *pos += 1;
        let low = if c == '\\' {
            let e = *chars
                .get(*pos)
                .ok_or("error parsing regexp: missing closing ]")?;
            *pos += 1;
            if let Some(class) = class_of(e) {
                set.extend(class);
                continue;
            }
            escaped(e)
        } else {
            c
        };
        if chars.get(*pos) == Some(&'-') && chars.get(*pos + 1).is_some_and(|n| *n != ']') {
            let mut high = chars[*pos + 1];
            *pos += 2;
            if high == '\\' {
                high = escaped(
                    *chars
                        .get(*pos)
                        .ok_or("error parsing regexp: missing closing ]")?,
                );
                *pos += 1;
            }
            if high < low {
                return Err(format!(
                    "error parsing regexp: invalid character class range: `{low}-{high}`"
                ));
            }
            set.extend(low..=high);
        } else {
            set.push(low);
        }
    }
    if negated {
        set = printable()
            .into_iter()
            .filter(|c| !set.contains(c))
            .collect();
    }
    if set.is_empty() {
        return Err("error parsing regexp: empty character class".to_owned());
    }
    Ok(set)
}

fn parse_quantifier(chars: &[char], pos: &mut usize, atom: Node) -> Result<Node, String> {
    let (min, max) = match chars.get(*pos) {
        Some('?') => (0, 1),
        Some('*') => (0, OPEN_REPEAT),
        Some('+') => (1, OPEN_REPEAT),
        Some('{') => {
            let close = chars[*pos..]
                .iter()
                .position(|c| *c == '}')
                .map(|i| *pos + i);
            let Some(close) = close else {
                return Ok(atom);
            };
            let inside: String = chars[*pos + 1..close].iter().collect();
            let number = |s: &str| -> Result<usize, String> {
                s.trim().parse::<usize>().map_err(|_| {
                    format!("error parsing regexp: invalid repeat count: `{{{inside}}}`")
                })
            };
            let (min, max) = match inside.split_once(',') {
                None => {
                    let n = number(&inside)?;
                    (n, n)
                }
                Some((a, "")) => {
                    let n = number(a)?;
                    (n, n + OPEN_REPEAT)
                }
                Some((a, b)) => (number(a)?, number(b)?),
            };
            if max < min || max > 1000 {
                return Err(format!(
                    "error parsing regexp: invalid repeat count: `{{{inside}}}`"
                ));
            }
            *pos = close;
            (min, max)
        }
        _ => return Ok(atom),
    };
    *pos += 1;
    // A lazy marker changes nothing for generation.
    if chars.get(*pos) == Some(&'?') {
        *pos += 1;
    }
    Ok(Node::Repeat(Box::new(atom), min, max))
}

fn generate(node: &Node, rng: &mut impl rand::Rng, out: &mut String) -> Result<(), String> {
    use rand::RngExt;
    if out.len() > MAX_REGEX_OUTPUT {
        return Err(format!(
            "the generated string would be longer than {MAX_REGEX_OUTPUT} characters"
        ));
    }
    match node {
        Node::Set(set) => {
            out.push(set[rng.random_range(0..set.len())]);
        }
        Node::Group(alternatives) => {
            let chosen = &alternatives[rng.random_range(0..alternatives.len())];
            for n in chosen {
                generate(n, rng, out)?;
            }
        }
        Node::Repeat(inner, min, max) => {
            let times = rng.random_range(*min..=*max);
            for _ in 0..times {
                generate(inner, rng, out)?;
            }
        }
    }
    Ok(())
}

/// The realtime clients connected to this node, as `$app.subscriptionsBroker()` shows them:
/// every one, the one named by `id`, or (with `count`) how many there are. Each is its id, its
/// subscriptions with their options, and its auth record (`null` for a guest).
fn realtime_clients(host: &AppHost, args: &Value) -> Value {
    let hub = &host.state.realtime;
    if args.get("count").and_then(Value::as_bool) == Some(true) {
        return json!(hub.client_count());
    }
    let clients = match args.get("id").and_then(Value::as_str) {
        Some(id) => hub.client(id).into_iter().collect(),
        None => hub.inner.clients(),
    };
    let pairs = |pairs: &[(String, String)]| -> Map<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect()
    };
    Value::Array(
        clients
            .iter()
            .filter(|client| !client.is_closed())
            .map(|client| {
                let subscriptions: Vec<Value> = client
                    .subscriptions()
                    .iter()
                    .map(|s| {
                        json!({
                            "name": &*s.raw,
                            "query": pairs(&s.query),
                            "headers": pairs(&s.headers),
                        })
                    })
                    .collect();
                let auth = match &*client.auth() {
                    AuthContext::Record {
                        collection, record, ..
                    } => super::host::wire(collection, record),
                    AuthContext::Guest => Value::Null,
                };
                json!({ "id": &*client.id, "subscriptions": subscriptions, "auth": auth })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_strings_match_their_pattern() {
        for pattern in [
            "[a-c]{5}",
            r"\d{4}",
            "[A-Z][a-z]{2,4}",
            "a|b",
            "x+",
            "(ab){2}",
            r"\w{3}-\w{3}",
            "[^a-z]{3}",
            "a*",
            r"[\d_]{2,}",
        ] {
            let anchored = regex::Regex::new(&format!("^(?:{pattern})$")).expect("pattern");
            for _ in 0..50 {
                let s = random_by_regex(pattern).expect(pattern);
                assert!(anchored.is_match(&s), "{pattern} gave {s:?}");
            }
        }
        assert_eq!(random_by_regex("(ab){2}").expect("works"), "abab");
        assert!(random_by_regex("^abc$").is_err());
        assert_eq!(
            random_by_regex("[a-").expect_err("fails"),
            "error parsing regexp: missing closing ]: `[a-`"
        );
        assert!(random_by_regex("a{5000}").is_err());
        assert!(random_by_regex("(a{1000}){1000}").is_err());
    }

    #[test]
    fn decrypts_what_pocketbase_encrypted() {
        let key = "abcdefghijklmnopqrstuvwxyz012345";
        // Sealed by PocketBase 0.40.6's `$security.encrypt("hello world", key)`.
        let sealed = "Rd7QtdfcR9hawWv+VghugZb7i+w1Zdg1Jw3MeB1dXTUD7JWB3RWw";
        assert_eq!(decrypt(sealed, key).expect("works"), "hello world");
        let ours = encrypt(b"hello world", key).expect("works");
        assert_eq!(ours.len(), sealed.len());
        assert_eq!(decrypt(&ours, key).expect("works"), "hello world");
        assert_eq!(
            decrypt(&ours, "abcdefghijklmnopqrstuvwxyz012346").expect_err("fails"),
            "cipher: message authentication failed"
        );
        assert_eq!(
            encrypt(b"x", "short").expect_err("fails"),
            "crypto/aes: invalid key size 5"
        );
        assert_eq!(
            decrypt("!!notb64", key).expect_err("fails"),
            "illegal base64 data at input byte 0"
        );
    }
}
