//! Identifiers in PocketBase's formats: 15-char record ids, 50-char token keys, collection
//! ids (`pbc_` + CRC32 of type and name) and field ids (type + CRC32 of name).

use rand::RngExt;

const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A random string of `len` characters drawn from `alphabet`.
pub fn random_from(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

/// A new record id: 15 chars of `[a-z0-9]`.
pub fn new_record_id() -> String {
    random_from(LOWER_ALNUM, 15)
}

/// Random `[a-z0-9]` text of `len` chars (file name suffixes, OTP ids).
pub fn random_lower_alnum(len: usize) -> String {
    random_from(LOWER_ALNUM, len)
}

/// Random `[A-Za-z0-9]` text of `len` chars (token keys, secrets, realtime client ids).
pub fn random_alnum(len: usize) -> String {
    random_from(ALNUM, len)
}

/// The id PocketBase gives a collection created through the API.
pub fn collection_id(collection_type: &str, name: &str) -> String {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(collection_type.as_bytes());
    hasher.update(name.as_bytes());
    format!("pbc_{}", hasher.finalize())
}

/// The id PocketBase gives a field: its type followed by the CRC32 of its name.
pub fn field_id(field_type: &str, name: &str) -> String {
    format!("{field_type}{}", crc32fast::hash(name.as_bytes()))
}

/// Generates text matching a simple autogenerate pattern of the form `[class]{n}` (possibly
/// repeated, with literal characters between), which covers every pattern PocketBase ships
/// (`[a-z0-9]{15}`, `[a-zA-Z0-9]{50}`). Returns `None` for patterns outside that subset.
pub fn generate_from_pattern(pattern: &str) -> Option<String> {
    // The default of every id field, on every create: no need to read it.
    if pattern == "[a-z0-9]{15}" {
        return Some(new_record_id());
    }
    let mut out = String::new();
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '[' => {
                let close = chars[i..].iter().position(|c| *c == ']')? + i;
                let alphabet = expand_class(&chars[i + 1..close])?;
                i = close + 1;
                let mut count = 1usize;
                if chars.get(i) == Some(&'{') {
                    let end = chars[i..].iter().position(|c| *c == '}')? + i;
                    let n: String = chars[i + 1..end].iter().collect();
                    count = n.trim().parse().ok()?;
                    i = end + 1;
                }
                out.push_str(&random_from(&alphabet, count));
            }
            '\\' if i + 1 < chars.len() => {
                out.push(chars[i + 1]);
                i += 2;
            }
            '^' | '$' if i == 0 || i == chars.len() - 1 => i += 1,
            c if c.is_alphanumeric() || c == '_' || c == '-' => {
                out.push(c);
                i += 1;
            }
            _ => return None,
        }
    }
    Some(out)
}

fn expand_class(class: &[char]) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut i = 0;
    while i < class.len() {
        if i + 2 < class.len() && class[i + 1] == '-' {
            let (start, end) = (class[i] as u32, class[i + 2] as u32);
            if start > end || end > 127 {
                return None;
            }
            bytes.extend((start..=end).map(|c| c as u8));
            i += 3;
        } else {
            if !class[i].is_ascii() {
                return None;
            }
            bytes.push(class[i] as u8);
            i += 1;
        }
    }
    (!bytes.is_empty()).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_pocketbase() {
        assert_eq!(collection_id("base", "posts"), "pbc_1125843985");
        assert_eq!(field_id("text", "id"), "text3208210256");
        assert_eq!(field_id("autodate", "created"), "autodate2990389176");
    }

    #[test]
    fn patterns_generate_matching_text() {
        let id = generate_from_pattern("[a-z0-9]{15}").expect("supported");
        assert_eq!(id.len(), 15);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
        let key = generate_from_pattern("[a-zA-Z0-9]{50}").expect("supported");
        assert_eq!(key.len(), 50);
        assert_eq!(
            generate_from_pattern("ab[0-9]{2}").map(|s| s.len()),
            Some(4)
        );
        assert_eq!(generate_from_pattern("(a|b)"), None);
    }
}
