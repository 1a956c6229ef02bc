//! JSON text written straight into a byte buffer, for answers that carry records: the bytes
//! `serde_json::to_vec` writes (compact, the same escapes, its number formatting), with
//! strings copied in runs. serde_json looks each string byte up in its escape table one at a
//! time, which was an eighth of a 20-record list page's instructions (callgrind); here each
//! 16 bytes are tested together by a loop the compiler turns into vector compares, and only
//! a block holding a byte to escape is walked byte by byte.

use serde_json::Value;

/// Bytes tested together for a character that needs escaping.
pub(crate) const BLOCK: usize = 16;

/// Whether JSON needs `byte` escaped inside a string: a control character, `"` or `\`
/// (serde_json escapes exactly these; `/`, DEL and non-ASCII stay as they are).
#[inline]
fn needs_escape(byte: u8) -> bool {
    (byte < 0x20) | (byte == b'"') | (byte == b'\\')
}

/// Whether any byte of a block needs escaping: a fixed-size loop without an early exit, which
/// the compiler unrolls into a few vector compares. (Also how `values::json_within_bounds`
/// crosses strings: a block without `"` or `\` is passed whole.)
#[inline]
pub(crate) fn block_needs_escape(block: &[u8; BLOCK]) -> bool {
    let mut any = 0u8;
    for &byte in block {
        any |= u8::from(needs_escape(byte));
    }
    any != 0
}

/// Appends `text` as a JSON string, quotes included.
pub fn push_str(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut copied = 0;
    let mut blocks = bytes.chunks_exact(BLOCK);
    let mut at = 0;
    for block in &mut blocks {
        if <&[u8; BLOCK]>::try_from(block).is_ok_and(block_needs_escape) {
            escape_in(out, bytes, &mut copied, at, block);
        }
        at += BLOCK;
    }
    // The last bytes, fewer than a block, tested as a block padded with a plain character.
    let rest = blocks.remainder();
    let mut last = [b' '; BLOCK];
    if let Some(head) = last.get_mut(..rest.len()) {
        head.copy_from_slice(rest);
    }
    if block_needs_escape(&last) {
        escape_in(out, bytes, &mut copied, at, rest);
    }
    out.extend_from_slice(bytes.get(copied..).unwrap_or_default());
    out.push(b'"');
}

/// Writes the escapes of `part` (the bytes of `bytes` from `at`), each after the run of
/// `bytes` before it that is not written yet (from `copied`).
fn escape_in(out: &mut Vec<u8>, bytes: &[u8], copied: &mut usize, at: usize, part: &[u8]) {
    for (k, &byte) in part.iter().enumerate() {
        if needs_escape(byte) {
            out.extend_from_slice(bytes.get(*copied..at + k).unwrap_or_default());
            push_escape(out, byte);
            *copied = at + k + 1;
        }
    }
}

/// The escape of one byte [`needs_escape`] picked, as serde_json writes it.
fn push_escape(out: &mut Vec<u8>, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let short = match byte {
        b'"' => b'"',
        b'\\' => b'\\',
        0x08 => b'b',
        0x0c => b'f',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        _ => {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0x0f)]);
            return;
        }
    };
    out.push(b'\\');
    out.push(short);
}

/// Appends `value` as compact JSON.
pub fn push_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => {
            // serde_json's own formatting (integers as they are, floats shortest round-trip);
            // writing to a Vec cannot fail.
            if serde_json::to_writer(&mut *out, number).is_err() {
                out.extend_from_slice(b"null");
            }
        }
        Value::String(text) => push_str(out, text),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_str(out, key);
                out.push(b':');
                push_value(out, item);
            }
            out.push(b'}');
        }
    }
}

/// `value` as compact JSON.
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    push_value(&mut out, value);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every byte 0..=127 alone, in runs around block edges and mixed with multi-byte text:
    /// the same bytes as serde_json.
    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        let mut cases: Vec<String> = (0u8..=127).map(|b| char::from(b).to_string()).collect();
        cases.push(String::new());
        cases.push("plain text that needs no escape at all, longer than a block".into());
        cases.push("é\u{2028}😀 \"quoted\" back\\slash /slash \u{7f}".into());
        for len in [15, 16, 17, 31, 32, 33, 47] {
            for at in [0, 1, len / 2, len - 1] {
                let mut text = "a".repeat(len);
                text.replace_range(at..=at, "\n");
                cases.push(text.clone());
                text.replace_range(at..=at, "\"");
                cases.push(format!("ü{text}\u{1}"));
            }
        }
        cases.push("\"\\\u{0}\u{1f}".repeat(40));
        for text in cases {
            let mut ours = Vec::new();
            push_str(&mut ours, &text);
            let theirs = serde_json::to_vec(&text).expect("serializes");
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&theirs),
                "{text:?}"
            );
        }
    }

    #[test]
    fn values_are_written_as_serde_json_writes_them() {
        let values = [
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(-1),
            json!(i64::MIN),
            json!(u64::MAX),
            json!(0.1),
            json!(-0.0),
            json!(1e300),
            json!(5e-324),
            json!(123456789.125),
            json!(2.0),
            json!([]),
            json!({}),
            json!([1, "two", [3.5, {"four": null}], {"a\nb": "c\"d"}]),
            json!({"id": "abc", "nested": {"deep": [true, false, {"x": [[]]}]}, "n": 42}),
        ];
        for value in values {
            assert_eq!(
                String::from_utf8(to_vec(&value)).expect("utf-8"),
                serde_json::to_string(&value).expect("serializes"),
                "{value}"
            );
        }
    }
}
