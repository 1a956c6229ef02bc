//! Fuzzes thumbnail planning and making on arbitrary image bytes: the first byte picks the
//! format, the next five the size (width, height, mode), the rest is the file. A plan must
//! stay within the bounds it promises (target pixels, peak bytes), and making a thumb of a
//! cheap plan must not panic, whatever the header claims.

#![no_main]

use image::ImageFormat;
use libfuzzer_sys::fuzz_target;
use server::files::thumbs::{self, MAX_GENERATION_BYTES, MAX_TARGET_PIXELS, ThumbSize};

fuzz_target!(|data: &[u8]| {
    if data.len() < 6 {
        return;
    }
    let format = match data[0] % 4 {
        0 => ImageFormat::Png,
        1 => ImageFormat::Jpeg,
        2 => ImageFormat::Gif,
        _ => ImageFormat::WebP,
    };
    let width = u16::from_le_bytes([data[1], data[2]]) % 9000;
    let height = u16::from_le_bytes([data[3], data[4]]) % 9000;
    let mode = ["", "t", "b", "f"][usize::from(data[5] % 4)];
    let Some(size) = ThumbSize::parse(&format!("{width}x{height}{mode}")) else {
        return;
    };
    let source = &data[6..];
    let Ok(plan) = thumbs::plan(source, format, size) else {
        return;
    };
    assert!(plan.peak_bytes <= MAX_GENERATION_BYTES, "{plan:?}");
    if let Some((w, h)) = plan.target {
        assert!(u64::from(w) * u64::from(h) <= MAX_TARGET_PIXELS, "{plan:?}");
    }
    // Make the cheap ones for real: decoders meet hostile bytes here.
    if plan.peak_bytes <= 16 << 20 {
        let _ = thumbs::make(source, format, size);
    }
});
