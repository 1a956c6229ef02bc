//! Stored file names as PocketBase makes them: the original base name in snake_case (at most
//! 100 characters, padded with a random part when shorter than 3), `_`, ten random
//! `[a-z0-9]`, and the sanitized extension (detected from the content when missing). The
//! random part keeps names unguessable and unique; the sanitizing keeps them safe as path
//! segments and header values.

use rand::RngExt;

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// `len` random characters from `[a-z0-9]`.
pub fn random_suffix(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The stored name for an upload called `original` whose content sniffed as `mime`.
pub fn stored_name(original: &str, mime: &str) -> String {
    // Browsers may send a full client path; only its last segment is a name.
    let original = original.rsplit(['/', '\\']).next().unwrap_or(original);
    let (base, ext) = split_extension(original);
    let mut ext: String = ext
        .chars()
        .filter(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '*' | '-' | '+' | '=' | '#')
        })
        .collect();
    if ext.is_empty() || ext == "." {
        ext = super::mime::extension_for(mime).to_owned();
    }
    if ext.len() > 20 {
        ext = format!(".{}", &ext[ext.len() - 20..]);
    }
    let mut name = snake_case(base);
    if name.chars().count() < 3 {
        name.push_str(&random_suffix(10));
    } else if name.chars().count() > 100 {
        name = name.chars().take(100).collect();
    }
    format!("{name}_{}{ext}", random_suffix(10))
}

/// Splits off up to two extensions (`archive.tar.gz` → `archive` + `.tar.gz`), as PocketBase
/// does; a second level needs at least one character after its dot. A leading dot starts an
/// extension too (`.hidden` has an empty base).
fn split_extension(name: &str) -> (&str, &str) {
    let Some(last) = name.rfind('.') else {
        return (name, "");
    };
    let rest = &name[..last];
    match rest.rfind('.') {
        Some(second) if second + 1 < rest.len() => (&name[..second], &name[second..]),
        _ => (rest, &name[last..]),
    }
}

/// Words split at every character that is not an ASCII letter or digit (other letters are
/// dropped, as PocketBase drops them) and before each upper-case letter that follows a
/// lower-case one or a digit, lower-cased and joined with `_`.
pub fn snake_case(text: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    for chunk in text.split(|c: char| !c.is_ascii_alphanumeric()) {
        if chunk.is_empty() {
            continue;
        }
        let mut word = String::new();
        let mut previous: Option<char> = None;
        for c in chunk.chars() {
            if c.is_uppercase()
                && previous.is_some_and(|p| p.is_lowercase() || p.is_ascii_digit())
                && !word.is_empty()
            {
                words.push(std::mem::take(&mut word));
            }
            word.extend(c.to_lowercase());
            previous = Some(c);
        }
        if !word.is_empty() {
            words.push(word);
        }
    }
    words.join("_")
}

/// Whether `name` could be a stored file name (one safe path segment). Names read from a URL
/// are checked with this before they reach the storage.
pub fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && name.len() <= 255
}

/// Whether `name` has the shape [`stored_name`] gives every upload (as PocketBase does):
/// `<base>_<10 × [a-z0-9]>` with a base of `[a-z0-9_]` and an optional tail starting with a
/// dot made of extension characters. The orphan sweep deletes only names of this shape, so
/// that keys another program wrote next to Plinth's are never touched.
pub fn is_stored_name(name: &str) -> bool {
    if !is_safe_name(name) {
        return false;
    }
    let (stem, tail) = match name.find('.') {
        Some(dot) => name.split_at(dot),
        None => (name, ""),
    };
    let Some((base, random)) = stem.rsplit_once('_') else {
        return false;
    };
    let lower_alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    random.len() == 10
        && random.chars().all(lower_alnum)
        && !base.is_empty()
        && base.chars().all(|c| lower_alnum(c) || c == '_')
        && tail.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '*' | '-' | '+' | '=' | '#')
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn shape(name: &str) -> (String, String, String) {
        let (stem, ext) = split_extension(name);
        let (base, random) = stem.rsplit_once('_').unwrap();
        (base.to_owned(), random.to_owned(), ext.to_owned())
    }

    #[test]
    fn names_follow_pocketbase_shape() {
        let (base, random, ext) = shape(&stored_name("red.png", "image/png"));
        assert_eq!((base.as_str(), ext.as_str()), ("red", ".png"));
        assert_eq!(random.len(), 10);
        assert!(
            random
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );

        let (base, _, ext) = shape(&stored_name("My Holiday-PhotoFinal (1).JPG", "image/jpeg"));
        assert_eq!(base, "my_holiday_photo_final_1");
        assert_eq!(ext, ".JPG");

        let (base, _, ext) = shape(&stored_name("blob", "text/plain; charset=utf-8"));
        assert_eq!((base.as_str(), ext.as_str()), ("blob", ".txt"));

        let name = stored_name("../../etc/passwd", "text/plain; charset=utf-8");
        assert!(name.starts_with("passwd_") && is_safe_name(&name), "{name}");

        let long = "a".repeat(300) + ".txt";
        let (base, _, _) = shape(&stored_name(&long, "text/plain"));
        assert_eq!(base.len(), 100);

        // Names PocketBase 0.40.6 produced for the same uploads (random parts aside).
        for (original, base, ext) in [
            ("x.y.z.txt", "x_y", ".z.txt"),
            ("archive.tar.gz", "archive", ".tar.gz"),
            ("v1.2.3.txt", "v1_2", ".3.txt"),
            ("Ünïcödé Naïve.txt", "n_c_d_na_ve", ".txt"),
            ("CamelCaseHTTPServer.txt", "camel_case_httpserver", ".txt"),
            ("photo2Big.jpg", "photo2_big", ".jpg"),
            ("weird$%^&*().PnG", "weird", ".PnG"),
            ("noext", "noext", ".txt"),
            ("name.", "name", ".txt"),
            (
                "abc.verylongextensionnamethatexceeds20chars",
                "abc",
                ".methatexceeds20chars",
            ),
        ] {
            let name = stored_name(original, "text/plain; charset=utf-8");
            assert!(name.starts_with(&format!("{base}_")), "{original} → {name}");
            assert!(name.ends_with(ext), "{original} → {name}");
            assert_eq!(
                name.len(),
                base.len() + 11 + ext.len(),
                "{original} → {name}"
            );
        }
        // `.hidden` has no base: 10 random characters stand in for it.
        let name = stored_name(".hidden", "text/plain");
        assert_eq!(name.len(), 10 + 11 + ".hidden".len(), "{name}");

        // Too short: padded with 10 more random characters before the suffix.
        let name = stored_name("x.png", "image/png");
        assert_eq!(name.len(), 1 + 10 + 1 + 10 + 4, "{name}");
    }

    #[test]
    fn stored_names_are_recognized() {
        for original in [
            "red.png",
            "x.png",
            ".hidden",
            "archive.tar.gz",
            "noext",
            "My Holiday-PhotoFinal (1).JPG",
            "abc.verylongextensionnamethatexceeds20chars",
        ] {
            let name = stored_name(original, "text/plain");
            assert!(is_stored_name(&name), "{original} → {name}");
        }
        for foreign in [
            "backup.tar.gz",
            "red_abc.png",
            "Red_abcdefghij.png",
            "red_ABCDEFGHIJ.png",
            "_abcdefghij.png",
            "red_abcdefghij.png/x",
            "red_abcdefghij.p ng",
            "index.html",
        ] {
            assert!(!is_stored_name(foreign), "{foreign}");
        }
    }

    #[test]
    fn unsafe_names_are_refused() {
        assert!(!is_safe_name("../x"));
        assert!(!is_safe_name(".."));
        assert!(!is_safe_name(""));
        assert!(is_safe_name("red_abc.png"));
    }
}
