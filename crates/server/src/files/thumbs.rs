//! Thumbnails in PocketBase's size syntax (`WxH` centre crop, `WxHt` top crop, `WxHb` bottom
//! crop, `WxHf` fit inside, `0xH`/`Wx0` keep the ratio), made with the pure-Rust `image`
//! crate and encoded in the original's format (WebP ones as PNG, as PocketBase does).

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, imageops::FilterType};

/// A parsed thumb size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThumbSize {
    pub width: u32,
    pub height: u32,
    pub mode: Mode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Center,
    Top,
    Bottom,
    Fit,
}

/// The largest side a thumbnail may ask for; keeps a forged size from allocating gigabytes.
const MAX_SIDE: u32 = 8192;

impl ThumbSize {
    /// `WxH[t|b|f]`; `None` when malformed or both sides are 0.
    pub fn parse(text: &str) -> Option<Self> {
        let (body, mode) = match text.as_bytes().last()? {
            b't' => (&text[..text.len() - 1], Mode::Top),
            b'b' => (&text[..text.len() - 1], Mode::Bottom),
            b'f' => (&text[..text.len() - 1], Mode::Fit),
            _ => (text, Mode::Center),
        };
        let (w, h) = body.split_once('x')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(w) || !digits(h) {
            return None;
        }
        let width: u32 = w.parse().ok()?;
        let height: u32 = h.parse().ok()?;
        if (width == 0 && height == 0) || width > MAX_SIDE || height > MAX_SIDE {
            return None;
        }
        Some(ThumbSize {
            width,
            height,
            mode,
        })
    }
}

/// The image formats thumbnails are made for, by the original's extension.
pub fn format_for(filename: &str) -> Option<ImageFormat> {
    let ext = filename.rsplit_once('.')?.1.to_ascii_lowercase();
    match ext.as_str() {
        "png" => Some(ImageFormat::Png),
        "jpg" | "jpeg" => Some(ImageFormat::Jpeg),
        "gif" => Some(ImageFormat::Gif),
        "webp" => Some(ImageFormat::WebP),
        _ => None,
    }
}

/// Why a thumbnail could not be made (the original is served instead).
#[derive(Debug, thiserror::Error)]
#[error("thumbnail: {0}")]
pub struct ThumbError(#[from] image::ImageError);

/// Decodes `source`, resizes it to `size` and encodes it again as `format`. CPU-bound: call
/// it from a blocking task.
pub fn make(source: &[u8], format: ImageFormat, size: ThumbSize) -> Result<Vec<u8>, ThumbError> {
    let mut reader = image::ImageReader::with_format(Cursor::new(source), format);
    reader.limits(image::Limits::default());
    let original = reader.decode()?;
    let thumb = resize(&original, size);
    // JPEG has no alpha channel; the encoder refuses RGBA input.
    let thumb = if format == ImageFormat::Jpeg {
        DynamicImage::ImageRgb8(thumb.to_rgb8())
    } else {
        thumb
    };
    // PocketBase writes WebP thumbnails as PNG (under the original's name); so do we.
    let encode_as = if format == ImageFormat::WebP {
        ImageFormat::Png
    } else {
        format
    };
    let mut out = Cursor::new(Vec::new());
    thumb.write_to(&mut out, encode_as)?;
    Ok(out.into_inner())
}

fn resize(image: &DynamicImage, size: ThumbSize) -> DynamicImage {
    let (ow, oh) = (image.width().max(1), image.height().max(1));
    let filter = FilterType::Lanczos3;
    if size.width == 0 {
        let width = ((ow as u64 * size.height as u64) / oh as u64).max(1) as u32;
        return image.resize_exact(width, size.height, filter);
    }
    if size.height == 0 {
        let height = ((oh as u64 * size.width as u64) / ow as u64).max(1) as u32;
        return image.resize_exact(size.width, height, filter);
    }
    match size.mode {
        Mode::Fit => {
            if ow <= size.width && oh <= size.height {
                image.clone()
            } else {
                image.resize(size.width, size.height, filter)
            }
        }
        Mode::Center => image.resize_to_fill(size.width, size.height, filter),
        Mode::Top | Mode::Bottom => {
            // Scale to cover the box, then cut the box from the top or bottom edge.
            let scale = f64::max(
                size.width as f64 / ow as f64,
                size.height as f64 / oh as f64,
            );
            let sw = ((ow as f64 * scale).round() as u32).max(size.width);
            let sh = ((oh as f64 * scale).round() as u32).max(size.height);
            let scaled = image.resize_exact(sw, sh, filter);
            let x = (sw - size.width) / 2;
            let y = if size.mode == Mode::Top {
                0
            } else {
                sh - size.height
            };
            scaled.crop_imm(x, y, size.width, size.height)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = DynamicImage::new_rgba8(width, height);
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    fn dims(bytes: &[u8], format: ImageFormat) -> (u32, u32) {
        let image = image::load_from_memory_with_format(bytes, format).unwrap();
        (image.width(), image.height())
    }

    #[test]
    fn sizes_parse_like_pocketbase() {
        assert_eq!(
            ThumbSize::parse("100x50t"),
            Some(ThumbSize {
                width: 100,
                height: 50,
                mode: Mode::Top
            })
        );
        assert_eq!(ThumbSize::parse("0x0"), None);
        assert_eq!(ThumbSize::parse("10x"), None);
        assert_eq!(ThumbSize::parse("axb"), None);
        assert_eq!(ThumbSize::parse("100x100z"), None);
        assert_eq!(ThumbSize::parse("99999x1"), None);
    }

    #[test]
    fn every_mode_gives_the_expected_dimensions() {
        let source = png(200, 100);
        let cases = [
            ("50x50", (50, 50)),
            ("50x50t", (50, 50)),
            ("50x50b", (50, 50)),
            ("50x50f", (50, 25)),
            ("0x20", (40, 20)),
            ("40x0", (40, 20)),
            ("400x400f", (200, 100)),
        ];
        for (text, expected) in cases {
            let size = ThumbSize::parse(text).unwrap();
            let thumb = make(&source, ImageFormat::Png, size).unwrap();
            assert_eq!(dims(&thumb, ImageFormat::Png), expected, "{text}");
        }
        let jpeg = make(
            &source,
            ImageFormat::Jpeg,
            ThumbSize::parse("10x10").unwrap(),
        );
        assert!(jpeg.is_err(), "a PNG is not decoded as JPEG");
        assert!(
            make(
                b"not an image",
                ImageFormat::Png,
                ThumbSize::parse("1x1").unwrap()
            )
            .is_err()
        );
    }
}
