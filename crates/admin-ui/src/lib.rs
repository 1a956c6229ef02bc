//! The dashboard's built files (`dist/`, built from `web/` by Vite and committed), embedded in
//! the binary so `cargo build` needs no Node. Release builds carry the bytes; debug builds read
//! `dist/` from disk, so a rebuilt bundle shows up without recompiling.
//!
//! The server knows nothing of the dashboard's internals: it asks this crate for a path under
//! `/_/` and serves what comes back.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

#[derive(rust_embed::RustEmbed)]
#[folder = "dist/"]
struct Dist;

/// One built file.
pub struct Asset {
    pub bytes: Cow<'static, [u8]>,
    /// The `Content-Type` to answer with.
    pub content_type: &'static str,
    /// Its name carries a content hash (`assets/index-3f9a….js`): cacheable forever.
    pub immutable: bool,
}

/// For working on the dashboard: a built `dist/` folder read from disk at every request
/// instead of the embedded one (`PLINTH_DASHBOARD_DIR`, read once).
fn override_dir() -> Option<&'static Path> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| std::env::var_os("PLINTH_DASHBOARD_DIR").map(PathBuf::from))
        .as_deref()
}

/// The file at `path` (relative to `/_/`, no leading slash); `""` is the page itself.
pub fn get(path: &str) -> Option<Asset> {
    let path = if path.is_empty() { "index.html" } else { path };
    // The bundle's own names only: no `..`, no hidden files, no absolute paths.
    if path
        .split('/')
        .any(|part| part.is_empty() || part.starts_with('.') || part.contains('\\'))
    {
        return None;
    }
    let bytes = match override_dir() {
        Some(dir) => Cow::Owned(std::fs::read(dir.join(path)).ok()?),
        None => Dist::get(path)?.data,
    };
    Some(Asset {
        bytes,
        content_type: content_type(path),
        immutable: path.starts_with("assets/"),
    })
}

fn content_type(path: &str) -> &'static str {
    let extension = path.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match extension {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_and_its_hashed_assets_are_embedded() {
        let page = get("").expect("index.html is embedded");
        assert_eq!(page.content_type, "text/html; charset=utf-8");
        assert!(!page.immutable);
        let html = String::from_utf8_lossy(&page.bytes).into_owned();
        // Every asset the page names is embedded and immutable.
        let mut named = 0;
        for part in html.split("/_/assets/").skip(1) {
            let name = part.split('"').next().unwrap_or("");
            let asset = get(&format!("assets/{name}")).expect("a named asset is embedded");
            assert!(asset.immutable);
            assert!(!asset.bytes.is_empty());
            named += 1;
        }
        assert!(
            named >= 2,
            "the page names its script and stylesheet: {html}"
        );
        assert!(get("missing.js").is_none());
        assert!(get("../Cargo.toml").is_none());
        assert!(get("assets/../../Cargo.toml").is_none());
        assert!(get("/etc/passwd").is_none());
    }
}
