//! Content types decided from a file's first bytes, as PocketBase validates `mimeTypes` by
//! sniffing rather than trusting the client, plus the extension fallback for text formats
//! that have no signature.

/// The MIME type of `bytes` (the whole file or its start); `name` only refines plain text.
pub fn sniff(bytes: &[u8], name: &str) -> &'static str {
    let starts = |sig: &[u8]| bytes.starts_with(sig);
    if starts(b"\x89PNG\r\n\x1a\n") {
        return "image/png";
    }
    if starts(b"\xff\xd8\xff") {
        return "image/jpeg";
    }
    if starts(b"GIF87a") || starts(b"GIF89a") {
        return "image/gif";
    }
    if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        return "image/webp";
    }
    if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WAVE" {
        return "audio/wav";
    }
    if starts(b"BM") && bytes.len() > 14 {
        return "image/bmp";
    }
    if starts(b"\x00\x00\x01\x00") {
        return "image/x-icon";
    }
    if starts(b"%PDF-") {
        return "application/pdf";
    }
    if starts(b"PK\x03\x04") {
        return "application/zip";
    }
    if starts(b"\x1f\x8b") {
        return "application/gzip";
    }
    if starts(b"ID3") || starts(b"\xff\xfb") {
        return "audio/mpeg";
    }
    if starts(b"OggS") {
        return "audio/ogg";
    }
    if starts(b"\x1a\x45\xdf\xa3") {
        return "video/webm";
    }
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        return match &bytes[8..12] {
            b"avif" => "image/avif",
            b"heic" | b"heix" => "image/heic",
            b"qt  " => "video/quicktime",
            _ => "video/mp4",
        };
    }
    if looks_like_text(bytes) {
        let lower_ext = name
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default();
        let head = String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).to_ascii_lowercase();
        let trimmed = head.trim_start();
        if trimmed.starts_with("<svg") || (trimmed.starts_with("<?xml") && head.contains("<svg")) {
            return "image/svg+xml";
        }
        if trimmed.starts_with("<!doctype html") || trimmed.starts_with("<html") {
            return "text/html; charset=utf-8";
        }
        return match lower_ext.as_str() {
            "json" => "application/json",
            "csv" => "text/csv",
            "css" => "text/css; charset=utf-8",
            "js" | "mjs" => "text/javascript; charset=utf-8",
            "xml" => "text/xml; charset=utf-8",
            "html" | "htm" => "text/html; charset=utf-8",
            "svg" => "image/svg+xml",
            _ => "text/plain; charset=utf-8",
        };
    }
    "application/octet-stream"
}

fn looks_like_text(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(1024)];
    // A multi-byte character cut at the sniffing window is still text.
    let valid = match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(error) => error.error_len().is_none(),
    };
    valid
        && !head
            .iter()
            .any(|b| matches!(b, 0..=8 | 11 | 14..=26 | 28..=31 | 127))
}

/// The extension for a sniffed type, for uploads whose names have none.
pub fn extension_for(mime: &str) -> &'static str {
    match mime.split(';').next().unwrap_or("").trim() {
        "image/png" => ".png",
        "image/jpeg" => ".jpg",
        "image/gif" => ".gif",
        "image/webp" => ".webp",
        "image/bmp" => ".bmp",
        "image/x-icon" => ".ico",
        "image/svg+xml" => ".svg",
        "image/avif" => ".avif",
        "image/heic" => ".heic",
        "application/pdf" => ".pdf",
        "application/zip" => ".zip",
        "application/gzip" => ".gz",
        "application/json" => ".json",
        "audio/mpeg" => ".mp3",
        "audio/ogg" => ".ogg",
        "audio/wav" => ".wav",
        "video/webm" => ".webm",
        "video/mp4" => ".mp4",
        "video/quicktime" => ".mov",
        "text/plain" => ".txt",
        "text/html" => ".html",
        "text/csv" => ".csv",
        "text/css" => ".css",
        "text/javascript" => ".js",
        "text/xml" => ".xml",
        _ => "",
    }
}

/// Whether PocketBase shows a file of this type inline rather than as an attachment.
pub fn is_inline(mime: &str) -> bool {
    let base = mime.split(';').next().unwrap_or("").trim();
    matches!(
        base,
        "image/png"
            | "image/jpg"
            | "image/jpeg"
            | "image/gif"
            | "image/webp"
            | "image/x-icon"
            | "image/bmp"
            | "video/webm"
            | "video/mp4"
            | "video/3gpp"
            | "video/quicktime"
            | "video/x-ms-wmv"
            | "audio/basic"
            | "audio/aiff"
            | "audio/mpeg"
            | "audio/midi"
            | "audio/mp3"
            | "audio/wave"
            | "audio/wav"
            | "audio/x-wav"
            | "audio/x-mpeg"
            | "audio/x-m4a"
            | "audio/aac"
            | "application/pdf"
            | "application/x-pdf"
    )
}

/// Whether `mime` is allowed by a field's `mimeTypes` list (empty = anything).
pub fn allowed(mime: &str, allowed: &[String]) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let base = mime.split(';').next().unwrap_or("").trim();
    allowed
        .iter()
        .any(|a| a.eq_ignore_ascii_case(base) || a.eq_ignore_ascii_case(mime))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_content_not_name() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n....", "x.txt"), "image/png");
        assert_eq!(sniff(b"hello", "x.png"), "text/plain; charset=utf-8");
        assert_eq!(sniff(b"{\"a\":1}", "x.json"), "application/json");
        assert_eq!(sniff(b"\x00\x01\x02\x03", "x"), "application/octet-stream");
        assert_eq!(sniff(b"<svg xmlns=''></svg>", "x"), "image/svg+xml");
        assert!(allowed("text/plain; charset=utf-8", &["text/plain".into()]));
        assert!(!allowed("image/png", &["image/jpeg".into()]));
        assert!(is_inline("image/png") && !is_inline("image/svg+xml"));
    }
}
