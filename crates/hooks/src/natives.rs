//! The few functions the JavaScript prelude cannot write itself: the bridge to the host,
//! hashing and signing (`$security`), reading files for `require`, the console, `sleep`,
//! environment variables and draining promise jobs. Everything else of the API surface is
//! JavaScript in `js/prelude.js`, over these.

use std::cell::RefCell;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::{digest, hmac};
use base64::Engine as _;
use rand::RngExt;
use rquickjs::{Ctx, Exception, Function, Object, Result as JsResult};
use serde_json::{Map, Value};

use crate::{EngineConfig, Host, HostError, Registry};

/// Files `require` may read are cut at this size.
const MAX_MODULE_BYTES: u64 = 16 * 1024 * 1024;

/// What the running invocation carries: its host and its deadline.
pub(crate) struct Current {
    pub host: Arc<dyn Host>,
    pub deadline: Instant,
    /// How many invocations are waiting on this one (0 for one the server started).
    pub depth: u32,
}

/// The nesting depth of the invocation running on this thread, if any.
pub(crate) fn current_depth() -> Option<u32> {
    with_current(|c| c.depth)
}

thread_local! {
    /// The invocation running on this engine thread, if any.
    pub(crate) static CURRENT: RefCell<Option<Current>> = const { RefCell::new(None) };
    /// The running invocation's deadline as the interrupt handler reads it; time spent in
    /// host calls is added to it, so the time bound counts the script's own work.
    pub(crate) static DEADLINE: RefCell<Option<std::rc::Rc<std::cell::Cell<Instant>>>> =
        const { RefCell::new(None) };
}

fn with_current<R>(f: impl FnOnce(&Current) -> R) -> Option<R> {
    CURRENT.with(|cell| cell.borrow().as_ref().map(f))
}

/// Installs the natives as globals of `ctx`.
pub(crate) fn install(
    ctx: &Ctx<'_>,
    registry: Arc<Registry>,
    config: &EngineConfig,
) -> JsResult<()> {
    let globals = ctx.globals();
    globals.set("__host", Function::new(ctx.clone(), host_call)?)?;
    let reg = registry.clone();
    globals.set(
        "__handlerSource",
        Function::new(ctx.clone(), move |index: usize| -> Option<String> {
            reg.handlers
                .get(index)
                .and_then(|h| serde_json::to_string(h).ok())
        })?,
    )?;
    globals.set("__readFile", Function::new(ctx.clone(), read_file)?)?;
    globals.set("__eval", Function::new(ctx.clone(), eval_script)?)?;
    globals.set(
        "__cwd",
        Function::new(ctx.clone(), || -> String {
            std::env::current_dir()
                .map(|d| d.to_string_lossy().into_owned())
                .unwrap_or_else(|_| ".".into())
        })?,
    )?;
    globals.set("__print", Function::new(ctx.clone(), print)?)?;
    globals.set("__sleep", Function::new(ctx.clone(), sleep)?)?;
    globals.set("__drainJobs", Function::new(ctx.clone(), drain_jobs)?)?;
    let allow = config.env_allow.clone();
    globals.set(
        "__getenv",
        Function::new(ctx.clone(), move |name: String| -> String {
            if let Some(allow) = &allow
                && !allow.iter().any(|a| a == &name)
            {
                return String::new();
            }
            std::env::var(&name).unwrap_or_default()
        })?,
    )?;
    let security = Object::new(ctx.clone())?;
    security.set("digest", Function::new(ctx.clone(), digest_hex)?)?;
    security.set("hmac", Function::new(ctx.clone(), hmac_hex)?)?;
    security.set("jwtSign", Function::new(ctx.clone(), jwt_sign)?)?;
    security.set("equal", Function::new(ctx.clone(), constant_time_equal)?)?;
    security.set("random", Function::new(ctx.clone(), random_string)?)?;
    security.set("b64", Function::new(ctx.clone(), base64_url)?)?;
    security.set("unb64", Function::new(ctx.clone(), unbase64_url)?)?;
    security.set("b64std", Function::new(ctx.clone(), base64_std)?)?;
    globals.set("__security", security)?;
    Ok(())
}

/// `__host(op, argsJson)`: the host's answer as `{"ok": value}` or `{"err": {...}}`; the
/// prelude turns the latter into the right JavaScript error.
fn host_call(ctx: Ctx<'_>, op: String, args: String) -> JsResult<String> {
    // QuickJS writes a lone surrogate as `\udXXX`, which JSON parsers refuse; the call then
    // fails loudly rather than going on with no arguments.
    let args: Value = serde_json::from_str(&args).map_err(|e| {
        Exception::throw_message(&ctx, &format!("the arguments are not valid JSON: {e}"))
    })?;
    let host = with_current(|c| c.host.clone());
    let Some(host) = host else {
        return Err(Exception::throw_internal(&ctx, "no app is available here"));
    };
    let started = Instant::now();
    let result = host.call(&op, args);
    DEADLINE.with(|d| {
        if let Some(deadline) = d.borrow().as_ref() {
            deadline.set(deadline.get() + started.elapsed());
        }
    });
    let answer = match result {
        Ok(value) => serde_json::json!({ "ok": value }),
        Err(HostError::Api {
            status,
            message,
            data,
        }) => {
            serde_json::json!({ "err": { "api": true, "status": status, "message": message, "data": data } })
        }
        Err(HostError::Go {
            message,
            status,
            data,
        }) => {
            serde_json::json!({ "err": { "api": false, "status": status, "message": message, "data": data } })
        }
    };
    Ok(answer.to_string())
}

/// `__eval(code, file)`: runs `code` as a script named `file` (so errors point there) and
/// answers its completion value.
fn eval_script<'js>(ctx: Ctx<'js>, code: String, file: String) -> JsResult<rquickjs::Value<'js>> {
    let mut options = rquickjs::context::EvalOptions::default();
    options.filename = Some(file);
    options.strict = false;
    ctx.eval_with_options(code, options)
}

fn read_file(ctx: Ctx<'_>, path: String) -> JsResult<String> {
    let fail = |e: std::io::Error| Exception::throw_message(&ctx, &format!("{path}: {e}"));
    let meta = std::fs::metadata(&path).map_err(fail)?;
    if meta.len() > MAX_MODULE_BYTES {
        return Err(Exception::throw_message(
            &ctx,
            &format!("{path}: larger than {MAX_MODULE_BYTES} bytes"),
        ));
    }
    std::fs::read_to_string(&path).map_err(fail)
}

/// `console.*`: one line on stderr with a date, as PocketBase prints it.
fn print(text: String) {
    let now = chrono_like_now();
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{now} {text}");
}

fn chrono_like_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}/{m:02}/{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `sleep(ms)`: blocks this engine thread, never past the invocation's deadline.
fn sleep(ms: f64) {
    if !ms.is_finite() || ms <= 0.0 {
        return;
    }
    let wanted = Duration::from_millis(ms.min(86_400_000.0) as u64);
    let left =
        with_current(|c| c.deadline.saturating_duration_since(Instant::now())).unwrap_or(wanted);
    std::thread::sleep(wanted.min(left));
}

/// Runs queued promise jobs (for `async` handlers) until none is left or the bound is hit.
fn drain_jobs(ctx: Ctx<'_>) -> bool {
    for _ in 0..1_000_000 {
        if !ctx.execute_pending_job() {
            return true;
        }
    }
    false
}

fn algorithm(name: &str) -> Option<&'static digest::Algorithm> {
    match name {
        "sha1" => Some(&digest::SHA1_FOR_LEGACY_USE_ONLY),
        "sha256" => Some(&digest::SHA256),
        "sha512" => Some(&digest::SHA512),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn digest_hex(ctx: Ctx<'_>, name: String, text: String) -> JsResult<String> {
    if name == "md5" {
        use md5::Digest;
        return Ok(hex(&md5::Md5::digest(text.as_bytes())));
    }
    let alg = algorithm(&name)
        .ok_or_else(|| Exception::throw_message(&ctx, &format!("unknown digest {name}")))?;
    Ok(hex(digest::digest(alg, text.as_bytes()).as_ref()))
}

fn hmac_hex(ctx: Ctx<'_>, name: String, text: String, key: String) -> JsResult<String> {
    let alg = match name.as_str() {
        "sha256" => hmac::HMAC_SHA256,
        "sha512" => hmac::HMAC_SHA512,
        _ => {
            return Err(Exception::throw_message(
                &ctx,
                &format!("unknown hmac {name}"),
            ));
        }
    };
    let key = hmac::Key::new(alg, key.as_bytes());
    Ok(hex(hmac::sign(&key, text.as_bytes()).as_ref()))
}

/// HMAC-SHA256 of raw text (a JWT's `header.payload`) as base64url, for `createJWT`.
fn jwt_sign(text: String, key: String) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(hmac::sign(&key, text.as_bytes()).as_ref())
}

fn constant_time_equal(a: String, b: String) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

fn random_string(length: f64, alphabet: String) -> String {
    let chars: Vec<char> = if alphabet.is_empty() {
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
            .chars()
            .collect()
    } else {
        alphabet.chars().collect()
    };
    let length = if length.is_finite() && length > 0.0 {
        length.min(1_000_000.0) as usize
    } else {
        0
    };
    let mut rng = rand::rng();
    (0..length)
        .map(|_| chars[rng.random_range(0..chars.len())])
        .collect()
}

fn base64_url(text: String) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text.as_bytes())
}

fn base64_std(text: String) -> String {
    base64::engine::general_purpose::STANDARD.encode(text.as_bytes())
}

fn unbase64_url(ctx: Ctx<'_>, text: String) -> JsResult<String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('=').as_bytes())
        .map_err(|e| Exception::throw_message(&ctx, &format!("illegal base64 data: {e}")))?;
    String::from_utf8(bytes)
        .map_err(|_| Exception::throw_message(&ctx, "decoded data is not UTF-8"))
}

/// A JSON object with its keys sorted (Go's maps marshal so).
#[allow(dead_code)]
pub(crate) fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), sorted(&map[k]));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_gregorian() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn hashes_match_known_answers() {
        assert_eq!(
            hex(digest::digest(&digest::SHA256, b"hello").as_ref()),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"key");
        assert_eq!(
            hex(hmac::sign(&key, b"hello").as_ref()),
            "9307b3b915efb5171ff14d8cb55fbcc798c6c0ef1456d66ded1a6aa723a58b7b"
        );
        assert_eq!(random_string(8.0, "ab".into()).len(), 8);
        assert!(
            random_string(8.0, "ab".into())
                .chars()
                .all(|c| c == 'a' || c == 'b')
        );
    }
}
