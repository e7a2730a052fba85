//! Uploaded images: turning untrusted upload bytes into a clean, bounded image
//! that is safe to serve to other people.
//!
//! This module owns promise FRM-5: every uploaded image is decoded to pixels and
//! encoded again from those pixels alone, so nothing from the uploaded file
//! (EXIF with GPS location and camera serials, XMP, ICC profiles, PNG text
//! chunks, trailing bytes after the image) can survive into what we store and
//! serve. It is pure and synchronous (no HTTP, no database); callers run it on
//! the blocking pool because decoding and resizing are CPU-bound.
//!
//! Decoding is hardened against hostile files: the format is guessed from the
//! content (never the file name, which the uploader controls), only PNG, JPEG,
//! GIF and WebP are accepted, and the pixel count and decoder allocations are
//! capped before any pixel buffer is allocated, so a small file claiming to be
//! 100000×100000 is refused instead of exhausting memory.

pub mod files;

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::imageops::FilterType;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

/// The largest upload we look at, in bytes. Checked before any decoding so a
/// huge body costs us nothing beyond having received it.
pub const MAX_UPLOAD_BYTES: usize = 10 * 1024 * 1024;

/// The most pixels a decoded image may have (40 megapixels covers any phone or
/// consumer camera photo; anything larger is almost certainly a bomb).
pub const MAX_PIXELS: u64 = 40_000_000;

/// Upper bound on what the decoder may allocate, and on the decoded buffer
/// itself: 40 MP at 8 bytes a pixel (16-bit RGBA, the widest layout the enabled
/// formats produce) plus headroom for decoder working memory.
const MAX_DECODE_ALLOC: u64 = MAX_PIXELS * 8 + 64 * 1024 * 1024;

/// JPEG quality for re-encoded photos: visually indistinguishable from the
/// source at typical viewing sizes while keeping files small.
const JPEG_QUALITY: u8 = 85;

/// The resampling filter for downsizing: Catmull-Rom is sharp like Lanczos3 but
/// samples fewer source pixels, which matters for 40 MP inputs.
const RESIZE_FILTER: FilterType = FilterType::CatmullRom;

/// A re-encoded image ready to be stored and served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessedImage {
    pub bytes: Vec<u8>,
    /// `"image/png"` or `"image/jpeg"`.
    pub content_type: &'static str,
    /// `"png"` or `"jpg"`, without the dot.
    pub extension: &'static str,
    pub width: u32,
    pub height: u32,
}

/// Why an upload could not be turned into an image. The messages are written
/// for the person who uploaded the file.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("That file is too large ({size} bytes); images can be at most {} MB.", .max / (1024 * 1024))]
    TooLarge { size: usize, max: usize },
    #[error("That file is not a PNG, JPEG, GIF or WebP image.")]
    Unsupported,
    /// The detail is the decoder's own description, useful in logs.
    #[error("That image could not be read; the file may be damaged or incomplete ({0}).")]
    Corrupt(String),
    #[error("That image has too many pixels; images can be at most 40 megapixels.")]
    TooManyPixels,
    /// Encoding our own pixels failed: a server-side problem, not the uploader's.
    #[error("The image could not be processed ({0}); please try again later.")]
    Encode(String),
}

/// Decodes (guessing the format from content, never the file name), refuses
/// decompression bombs, applies the EXIF orientation, downsizes so neither side
/// exceeds `max_side` (keeping the aspect ratio; never upscales), and re-encodes:
/// PNG when the source has an alpha channel, else JPEG quality 85.
///
/// The output carries no metadata at all (no EXIF/XMP/ICC/text chunks) because
/// it is encoded from pixels. A `max_side` of 0 is treated as 1.
pub fn reencode(bytes: &[u8], max_side: u32) -> Result<ProcessedImage, ImageError> {
    let (image, orientation) = decode(bytes)?;
    let max_side = max_side.max(1);
    let mut image = if image.width() > max_side || image.height() > max_side {
        image.resize(max_side, max_side, RESIZE_FILTER)
    } else {
        image
    };
    // Rotating after resizing gives the same bounds (the box is square) and
    // avoids copying the full-size image.
    image.apply_orientation(orientation);
    encode(&image)
}

/// A square thumbnail of exactly `side`×`side` pixels: the image is scaled so
/// its shorter side fits, then the center is cropped. Same decoding limits and
/// encoding rules as [`reencode`]. A `side` of 0 is treated as 1.
pub fn thumbnail(bytes: &[u8], side: u32) -> Result<ProcessedImage, ImageError> {
    let (image, orientation) = decode(bytes)?;
    let side = side.max(1);
    let mut image = image.resize_to_fill(side, side, RESIZE_FILTER);
    image.apply_orientation(orientation);
    encode(&image)
}

/// Decodes untrusted bytes into an 8-bit image (`Rgba8` when the source has
/// alpha, `Luma8` for greyscale, `Rgb8` otherwise) and the EXIF orientation
/// that still has to be applied to it. Animated GIF and WebP yield their first
/// frame.
fn decode(bytes: &[u8]) -> Result<(DynamicImage, Orientation), ImageError> {
    if bytes.len() > MAX_UPLOAD_BYTES {
        return Err(ImageError::TooLarge { size: bytes.len(), max: MAX_UPLOAD_BYTES });
    }

    let mut reader =
        ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| ImageError::Corrupt(e.to_string()))?;
    // An explicit allow-list rather than "whatever the image crate can read":
    // Cargo unifies features across the dependency graph, so another crate could
    // switch on a decoder (TIFF, HDR, …) we have never reviewed for hostile input.
    match reader.format() {
        Some(ImageFormat::Jpeg) if !jpeg_reaches_end(bytes) => {
            return Err(ImageError::Corrupt("the JPEG data stops before its end marker".into()));
        }
        Some(ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Gif | ImageFormat::WebP) => {}
        _ => return Err(ImageError::Unsupported),
    }
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    reader.limits(limits.clone());

    // Building the decoder reads only the headers, so the claimed size can be
    // checked before the pixel buffer is allocated.
    let mut decoder = reader.into_decoder().map_err(from_decode_error)?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(ImageError::TooManyPixels);
    }
    // The output buffer comes out of the same budget as the decoder's working
    // memory (as `ImageReader::decode` does), so the two together stay bounded.
    limits.reserve(decoder.total_bytes()).map_err(from_decode_error)?;
    decoder.set_limits(limits).map_err(from_decode_error)?;
    // Stripping EXIF also strips the orientation tag, so it has to be baked
    // into the pixels or phone photos would show up sideways. A malformed EXIF
    // block is not worth rejecting the photo over: it is discarded anyway.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let decoded = DynamicImage::from_decoder(decoder).map_err(from_decode_error)?;

    // Normalise to 8 bits per channel straight away: both output encoders
    // want it, and resizing 8-bit pixels is cheaper than 16-bit or float.
    let color = decoded.color();
    let image = if color.has_alpha() {
        DynamicImage::ImageRgba8(decoded.into_rgba8())
    } else if color.has_color() {
        DynamicImage::ImageRgb8(decoded.into_rgb8())
    } else {
        DynamicImage::ImageLuma8(decoded.into_luma8())
    };
    Ok((image, orientation))
}

/// Encodes pixels into a fresh file. The encoders are given nothing but the
/// pixels (no ICC profile, no EXIF), which is what makes FRM-5 hold.
fn encode(image: &DynamicImage) -> Result<ProcessedImage, ImageError> {
    let mut bytes = Vec::new();
    let (content_type, extension) = if image.color().has_alpha() {
        image.write_with_encoder(PngEncoder::new(&mut bytes)).map_err(|e| ImageError::Encode(e.to_string()))?;
        ("image/png", "png")
    } else {
        image
            .write_with_encoder(JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY))
            .map_err(|e| ImageError::Encode(e.to_string()))?;
        ("image/jpeg", "jpg")
    };
    Ok(ProcessedImage { bytes, content_type, extension, width: image.width(), height: image.height() })
}

/// Whether a JPEG's segments lead to an end-of-image marker.
///
/// The JPEG decoder is lenient about truncation: it paints the missing rows grey
/// and reports success, so an upload cut off mid-transfer would be stored as a
/// half-grey photo. Segments with a length (including APP1, which may hold a
/// complete thumbnail JPEG with its own end marker) are skipped whole; in
/// entropy-coded data a 0xFF byte is always followed by 0x00 (stuffing) or a
/// restart marker, so the first other marker found there is real. Bytes after
/// the end marker (phone "motion photo" videos, for one) are allowed.
fn jpeg_reaches_end(bytes: &[u8]) -> bool {
    const EOI: u8 = 0xD9;
    let mut at = 2; // after SOI
    loop {
        // Find the next 0xFF: either padding before a marker or inside scan data.
        let Some(offset) = bytes.get(at..).and_then(|rest| rest.iter().position(|&b| b == 0xFF)) else {
            return false;
        };
        at += offset;
        // Any number of 0xFF fill bytes may precede a marker.
        while bytes.get(at + 1) == Some(&0xFF) {
            at += 1;
        }
        let Some(&marker) = bytes.get(at + 1) else {
            return false;
        };
        match marker {
            EOI => return true,
            // Byte stuffing, restart markers and TEM carry no length.
            0x00 | 0x01 | 0xD0..=0xD7 => at += 2,
            _ => {
                let Some(length) = bytes.get(at + 2..at + 4) else {
                    return false;
                };
                at += 2 + usize::from(u16::from_be_bytes([length[0], length[1]]));
            }
        }
    }
}

fn from_decode_error(error: image::ImageError) -> ImageError {
    match error {
        image::ImageError::Limits(_) => ImageError::TooManyPixels,
        image::ImageError::Unsupported(_) => ImageError::Unsupported,
        other => ImageError::Corrupt(other.to_string()),
    }
}

/// The format of a stored image that may be served as it is: its record
/// says PNG or JPEG (what [`reencode`] writes) and its bytes are that
/// format. `None` for anything else, which is then not served.
pub fn servable_image(content_type: &str, body: &[u8]) -> Option<ImageFormat> {
    let format = match content_type {
        "image/png" => ImageFormat::Png,
        "image/jpeg" => ImageFormat::Jpeg,
        _ => return None,
    };
    (image::guess_format(body).ok() == Some(format)).then_some(format)
}
