//! Thumbnails in PocketBase's size syntax (`WxH` centre crop, `WxHt` top crop, `WxHb` bottom
//! crop, `WxHf` fit inside, `0xH`/`Wx0` keep the ratio), made with the pure-Rust `image`
//! crate and encoded in the original's format (WebP ones as PNG, as PocketBase does).
//!
//! A small file can describe an enormous image (a 155 KB PNG of 40,000,000×1 pixels), and the
//! allocations that decoding and resampling make are not failures Rust can catch: they abort
//! the process. So nothing is allocated before [`plan`] has read the image's dimensions from
//! its header and priced every buffer the work will hold — the decoded image, the decoder's
//! own rows, the cropped region, the resampler's `f32` intermediate, the output and its
//! encoding — against fixed bounds. An image that does not fit is served as the original.
//! The fill modes crop the source region first and resample only that, so a thumb of a very
//! wide image never scales the whole image up to cover the box.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, imageops::FilterType};

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
pub const MAX_SIDE: u32 = 8192;
/// The most pixels a source image may have to be thumbnailed (50 megapixels: a large camera
/// photo). Larger ones are served as they are.
pub const MAX_SOURCE_PIXELS: u64 = 50_000_000;
/// The most pixels a thumbnail may have (4096×4096); the field's `thumbs` list may name
/// larger sizes, which are then served as the original.
pub const MAX_TARGET_PIXELS: u64 = 4096 * 4096;
/// The most bytes one generation may hold at its peak, as [`plan`] prices it.
pub const MAX_GENERATION_BYTES: u64 = 256 << 20;
/// The largest original file read into memory to make a thumbnail from.
pub const MAX_SOURCE_BYTES: u64 = 64 << 20;
/// Bytes per pixel of the resampler's intermediate image (four `f32` channels, whatever the
/// source's channels are).
const INTERMEDIATE_PIXEL_BYTES: u64 = 16;
/// Above this many bytes the resampler's first pass is not run on the full region: a cheap
/// box-filter shrink (which allocates only its output) brings the region down first.
const MAX_INTERMEDIATE_BYTES: u64 = 32 << 20;

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

/// A rectangle of the source image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// How a thumbnail will be made, and what it costs at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The source's dimensions.
    pub source: (u32, u32),
    /// Bytes per pixel of the decoded source.
    pub source_pixel_bytes: u64,
    /// The part of the source the thumbnail shows (the whole source unless a fill mode crops).
    pub region: Rect,
    /// A box-filter shrink of the region before resampling, when resampling the region
    /// directly would need a large intermediate.
    pub pre_shrink: Option<(u32, u32)>,
    /// The thumbnail's dimensions; `None` when the source is encoded again as it is (`f`
    /// mode of an image already inside the box).
    pub target: Option<(u32, u32)>,
    /// The most bytes the generation holds at once, the original file included.
    pub peak_bytes: u64,
}

/// Why a thumbnail is not made (the original is served instead).
#[derive(Debug, thiserror::Error)]
pub enum ThumbError {
    #[error("thumbnail: {0}")]
    Image(#[from] image::ImageError),
    #[error("thumbnail: the source has {0} pixels, more than {MAX_SOURCE_PIXELS}")]
    SourceTooLarge(u64),
    #[error("thumbnail: {0} pixels asked for, more than {MAX_TARGET_PIXELS}")]
    TargetTooLarge(u64),
    #[error("thumbnail: making it would hold {0} bytes, more than {MAX_GENERATION_BYTES}")]
    TooCostly(u64),
    #[error("thumbnail: the source is empty")]
    Empty,
}

fn decoder(
    source: &[u8],
    format: ImageFormat,
) -> Result<impl ImageDecoder + use<'_>, image::ImageError> {
    let mut reader = image::ImageReader::with_format(Cursor::new(source), format);
    let mut limits = image::Limits::default();
    // A second line behind the plan: decoders that honour it refuse larger allocations.
    limits.max_alloc = Some(MAX_GENERATION_BYTES);
    reader.limits(limits);
    reader.into_decoder()
}

/// Prices a thumbnail of `source` (the image file, or enough of its start to hold the
/// header) before anything large is allocated. Pure: reads only the header.
pub fn plan(source: &[u8], format: ImageFormat, size: ThumbSize) -> Result<Plan, ThumbError> {
    let decoder = decoder(source, format)?;
    let (width, height) = decoder.dimensions();
    let pixel_bytes = u64::from(decoder.color_type().bytes_per_pixel());
    plan_for(
        (width, height),
        pixel_bytes,
        format,
        source.len() as u64,
        size,
    )
}

/// [`plan`] from the header's facts: the dimensions, bytes per decoded pixel, the format and
/// the file's length.
pub fn plan_for(
    (width, height): (u32, u32),
    pixel_bytes: u64,
    format: ImageFormat,
    file_len: u64,
    size: ThumbSize,
) -> Result<Plan, ThumbError> {
    if width == 0 || height == 0 {
        return Err(ThumbError::Empty);
    }
    let (ow, oh) = (u64::from(width), u64::from(height));
    let source_pixels = ow * oh;
    if source_pixels > MAX_SOURCE_PIXELS {
        return Err(ThumbError::SourceTooLarge(source_pixels));
    }
    let decoded = source_pixels * pixel_bytes;
    // What the decoder holds besides its output: PNG keeps the current and previous row
    // (never wider than a decoded row); the others are priced at a second full frame (GIF and
    // WebP composite into a canvas, JPEG keeps its component planes).
    let decoder_extra = match format {
        ImageFormat::Png => 2 * ow * pixel_bytes,
        _ => decoded,
    };
    let full = Rect {
        x: 0,
        y: 0,
        width,
        height,
    };
    let (region, target) = geometry(width, height, size);
    let mut peak = file_len + decoded + decoder_extra;
    let Some((tw, th)) = target else {
        // Encoded again as it is: the encoder's output is at most about the raw size.
        peak += decoded;
        return finish(Plan {
            source: (width, height),
            source_pixel_bytes: pixel_bytes,
            region: full,
            pre_shrink: None,
            target: None,
            peak_bytes: peak,
        });
    };
    let target_pixels = u64::from(tw) * u64::from(th);
    if target_pixels > MAX_TARGET_PIXELS {
        return Err(ThumbError::TargetTooLarge(target_pixels));
    }
    if region != full {
        peak += u64::from(region.width) * u64::from(region.height) * pixel_bytes;
    }
    // The resampler's first pass makes a region-width × target-height `f32` image.
    let mut from = (region.width, region.height);
    let mut pre_shrink = None;
    if u64::from(from.0) * u64::from(th) * INTERMEDIATE_PIXEL_BYTES > MAX_INTERMEDIATE_BYTES {
        let shrunk = (
            from.0.min(tw.saturating_mul(2)),
            from.1.min(th.saturating_mul(2)),
        );
        if shrunk != from {
            peak += u64::from(shrunk.0) * u64::from(shrunk.1) * pixel_bytes;
            pre_shrink = Some(shrunk);
            from = shrunk;
        }
    }
    peak += u64::from(from.0) * u64::from(th) * INTERMEDIATE_PIXEL_BYTES;
    // The output, its RGB copy for JPEG, and the encoded bytes (at most about the raw size).
    peak += target_pixels * (2 * pixel_bytes + 3);
    finish(Plan {
        source: (width, height),
        source_pixel_bytes: pixel_bytes,
        region,
        pre_shrink,
        target: Some((tw, th)),
        peak_bytes: peak,
    })
}

fn finish(plan: Plan) -> Result<Plan, ThumbError> {
    if plan.peak_bytes > MAX_GENERATION_BYTES {
        return Err(ThumbError::TooCostly(plan.peak_bytes));
    }
    Ok(plan)
}

/// The region of a `width`×`height` source a thumb shows and the thumb's dimensions (`None`
/// when the source is kept as it is), in PocketBase's semantics.
fn geometry(width: u32, height: u32, size: ThumbSize) -> (Rect, Option<(u32, u32)>) {
    let full = Rect {
        x: 0,
        y: 0,
        width,
        height,
    };
    let (ow, oh) = (u64::from(width), u64::from(height));
    let side = |v: u64| v.clamp(1, u64::from(u32::MAX)) as u32;
    if size.width == 0 {
        let tw = side(ow * u64::from(size.height) / oh);
        return (full, Some((tw, size.height)));
    }
    if size.height == 0 {
        let th = side(oh * u64::from(size.width) / ow);
        return (full, Some((size.width, th)));
    }
    let (bw, bh) = (f64::from(size.width), f64::from(size.height));
    let (fw, fh) = (f64::from(width), f64::from(height));
    if size.mode == Mode::Fit {
        if width <= size.width && height <= size.height {
            return (full, None);
        }
        let ratio = f64::min(bw / fw, bh / fh);
        let tw = side((fw * ratio).round() as u64);
        let th = side((fh * ratio).round() as u64);
        return (full, Some((tw, th)));
    }
    // Fill: the box scaled back into the source is the region to cut, placed at the centre,
    // the top or the bottom; only that region is resampled.
    let scale = f64::max(bw / fw, bh / fh);
    let cw = side((bw / scale).round() as u64).min(width);
    let ch = side((bh / scale).round() as u64).min(height);
    let x = (width - cw) / 2;
    let y = match size.mode {
        Mode::Top => 0,
        Mode::Bottom => height - ch,
        _ => (height - ch) / 2,
    };
    (
        Rect {
            x,
            y,
            width: cw,
            height: ch,
        },
        Some((size.width, size.height)),
    )
}

/// Decodes `source`, resizes it to `size` and encodes it again as `format`, within the bounds
/// [`plan`] checks. CPU-bound: call it from a blocking task.
pub fn make(source: &[u8], format: ImageFormat, size: ThumbSize) -> Result<Vec<u8>, ThumbError> {
    let decoder = decoder(source, format)?;
    let pixel_bytes = u64::from(decoder.color_type().bytes_per_pixel());
    let plan = plan_for(
        decoder.dimensions(),
        pixel_bytes,
        format,
        source.len() as u64,
        size,
    )?;
    let original = DynamicImage::from_decoder(decoder)?;
    let thumb = render(original, &plan);
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

/// Carries out a plan on the decoded source.
fn render(original: DynamicImage, plan: &Plan) -> DynamicImage {
    let Some((tw, th)) = plan.target else {
        return original;
    };
    let region = plan.region;
    let mut image = if (region.width, region.height) == plan.source {
        original
    } else {
        let cropped = original.crop_imm(region.x, region.y, region.width, region.height);
        drop(original);
        cropped
    };
    if let Some((sw, sh)) = plan.pre_shrink {
        image = image.thumbnail_exact(sw, sh);
    }
    image.resize_exact(tw, th, FilterType::Lanczos3)
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

    /// A grey 8-bit PNG: a few dozen KB on disk whatever its dimensions.
    pub(crate) fn grey_png(width: u32, height: u32) -> Vec<u8> {
        let image = DynamicImage::new_luma8(width, height);
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
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
            ("400x400", (400, 400)),
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

    #[test]
    fn fill_modes_cut_the_region_at_the_centre_top_or_bottom() {
        let size = |text| ThumbSize::parse(text).unwrap();
        let (region, target) = geometry(200, 100, size("50x50"));
        assert_eq!(target, Some((50, 50)));
        assert_eq!(
            (region.x, region.y, region.width, region.height),
            (50, 0, 100, 100)
        );
        let (region, _) = geometry(100, 300, size("50x50t"));
        assert_eq!(
            (region.x, region.y, region.width, region.height),
            (0, 0, 100, 100)
        );
        let (region, _) = geometry(100, 300, size("50x50b"));
        assert_eq!(
            (region.x, region.y, region.width, region.height),
            (0, 200, 100, 100)
        );
        // An upscale covers the box with the whole (small) source.
        let (region, _) = geometry(10, 10, size("100x50"));
        assert_eq!((region.width, region.height), (10, 5));
    }

    /// Issue #11 item 1: a 40,000,000×1 PNG (a few dozen KB) once made the resampler
    /// allocate ~64 GB and abort the process. Every plan is priced within the bounds before
    /// anything is allocated, and the strip is thumbnailed from a 1×1 region.
    #[test]
    fn huge_dimensions_are_priced_before_anything_is_allocated() {
        let strip = grey_png(40_000_000, 1);
        assert!(strip.len() < 200_000, "{}", strip.len());
        for text in [
            "100x100", "100x100t", "100x100b", "100x100f", "0x100", "100x0",
        ] {
            let size = ThumbSize::parse(text).unwrap();
            match plan(&strip, ImageFormat::Png, size) {
                Ok(plan) => {
                    assert!(plan.peak_bytes <= MAX_GENERATION_BYTES, "{text}: {plan:?}");
                    let thumb = make(&strip, ImageFormat::Png, size).unwrap();
                    let (w, h) = dims(&thumb, ImageFormat::Png);
                    assert!(u64::from(w) * u64::from(h) <= MAX_TARGET_PIXELS, "{text}");
                }
                Err(error) => assert!(
                    make(&strip, ImageFormat::Png, size).is_err(),
                    "{text}: planned as {error} but made"
                ),
            }
        }
        let centre = plan(
            &strip,
            ImageFormat::Png,
            ThumbSize::parse("100x100").unwrap(),
        )
        .unwrap();
        assert_eq!((centre.region.width, centre.region.height), (1, 1));
        let fit = plan(
            &strip,
            ImageFormat::Png,
            ThumbSize::parse("100x100f").unwrap(),
        )
        .unwrap();
        assert_eq!(fit.target, Some((100, 1)));
        assert!(fit.pre_shrink.is_some(), "{fit:?}");
        // `0x100` keeps the ratio: 4,000,000,000×100 pixels are refused, not allocated.
        assert!(matches!(
            plan(&strip, ImageFormat::Png, ThumbSize::parse("0x100").unwrap()),
            Err(ThumbError::TargetTooLarge(_))
        ));
    }

    #[test]
    fn sources_and_costs_past_the_bounds_are_refused() {
        let size = ThumbSize::parse("100x100").unwrap();
        let big = plan_for((11_000, 11_000), 4, ImageFormat::Png, 500_000, size);
        assert!(matches!(big, Err(ThumbError::SourceTooLarge(_))), "{big:?}");
        let costly = plan_for((7000, 7000), 8, ImageFormat::Png, 500_000, size);
        assert!(
            matches!(costly, Err(ThumbError::TooCostly(_))),
            "{costly:?}"
        );
        let fine = plan_for((4000, 3000), 3, ImageFormat::Jpeg, 5_000_000, size).unwrap();
        assert!(fine.peak_bytes <= MAX_GENERATION_BYTES);
        assert!(matches!(
            plan_for((0, 10), 4, ImageFormat::Png, 10, size),
            Err(ThumbError::Empty)
        ));
        assert!(plan(b"\x89PNG\r\n\x1a\n", ImageFormat::Png, size).is_err());
    }
}
