//! Promise FRM-5: every uploaded image is re-encoded with all metadata removed
//! (EXIF, GPS location) before anyone else can download it.
//!
//! The inputs are real files built here: pixels encoded with the `image` crate,
//! then an EXIF block (with a GPS IFD and a camera make) or PNG text chunks
//! spliced in byte by byte, the way a phone or editor would write them. The
//! checks look at the raw output bytes and its container structure, not just at
//! what a decoder reports, because a decoder ignoring metadata proves nothing
//! about whether it was served.

use std::time::{Duration, Instant};

use image::codecs::gif::GifEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{DynamicImage, GenericImageView, ImageEncoder, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use lyceum::media::*;

pub(crate) const GPS_MARKER: &[u8] = b"GPSLatitudeSECRET";
pub(crate) const CAMERA_MARKER: &[u8] = b"Canon EOS SECRET";

// ---------------------------------------------------------------- builders

/// A smooth gradient: compresses like a photo rather than like flat colour.
fn photo(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| Rgb([(x * 255 / width) as u8, (y * 255 / height) as u8, 128]))
}

pub(crate) fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 90)
        .write_image(photo(width, height).as_raw(), width, height, image::ExtendedColorType::Rgb8)
        .expect("encode test jpeg");
    out
}

fn png_rgba(image: &RgbaImage) -> Vec<u8> {
    let mut out = Vec::new();
    PngEncoder::new(&mut out)
        .write_image(image.as_raw(), image.width(), image.height(), image::ExtendedColorType::Rgba8)
        .expect("encode test png");
    out
}

fn png_rgb(image: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    PngEncoder::new(&mut out)
        .write_image(image.as_raw(), image.width(), image.height(), image::ExtendedColorType::Rgb8)
        .expect("encode test png");
    out
}

/// A big-endian TIFF structure as found inside EXIF: IFD0 with Make,
/// Orientation and a pointer to a GPS IFD holding a latitude and a text tag.
pub(crate) fn exif_tiff(orientation: u16) -> Vec<u8> {
    fn entry(out: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: [u8; 4]) {
        out.extend_from_slice(&tag.to_be_bytes());
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&count.to_be_bytes());
        out.extend_from_slice(&value);
    }
    const ASCII: u16 = 2;
    const SHORT: u16 = 3;
    const LONG: u16 = 4;
    const RATIONAL: u16 = 5;
    let ifd_len = |entries: usize| 2 + 12 * entries + 4;

    let make: Vec<u8> = [CAMERA_MARKER, b"\0"].concat();
    let datum: Vec<u8> = [GPS_MARKER, b"\0"].concat();
    let latitude: Vec<u8> = [(51u32, 1u32), (30, 1), (1234, 100)]
        .iter()
        .flat_map(|(n, d)| [n.to_be_bytes(), d.to_be_bytes()])
        .flatten()
        .collect();

    let ifd0_at = 8;
    let make_at = ifd0_at + ifd_len(3);
    let gps_at = make_at + make.len() + make.len() % 2;
    let latitude_at = gps_at + ifd_len(3);
    let datum_at = latitude_at + latitude.len();
    let offset = |at: usize| u32::try_from(at).expect("small offset").to_be_bytes();

    let mut out = b"MM\0\x2a".to_vec();
    out.extend_from_slice(&offset(ifd0_at));
    out.extend_from_slice(&3u16.to_be_bytes());
    entry(&mut out, 0x010F, ASCII, make.len() as u32, offset(make_at)); // Make
    let [hi, lo] = orientation.to_be_bytes();
    entry(&mut out, 0x0112, SHORT, 1, [hi, lo, 0, 0]); // Orientation
    entry(&mut out, 0x8825, LONG, 1, offset(gps_at)); // GPSInfo IFD pointer
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&make);
    out.resize(gps_at, 0);
    out.extend_from_slice(&3u16.to_be_bytes());
    entry(&mut out, 0x0001, ASCII, 2, *b"N\0\0\0"); // GPSLatitudeRef
    entry(&mut out, 0x0002, RATIONAL, 3, offset(latitude_at)); // GPSLatitude
    entry(&mut out, 0x0012, ASCII, datum.len() as u32, offset(datum_at)); // GPSMapDatum
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&latitude);
    out.extend_from_slice(&datum);
    out
}

/// Inserts an APP1 "Exif" segment right after the SOI marker, where cameras put it.
pub(crate) fn with_exif_segment(jpeg: &[u8], tiff: &[u8]) -> Vec<u8> {
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "not a JPEG");
    let payload = [b"Exif\0\0".as_slice(), tiff].concat();
    let length = u16::try_from(payload.len() + 2).expect("segment fits");
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// CRC-32 (ISO-HDLC, as PNG uses), bit by bit: slow but obviously right.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(data.len()).expect("chunk fits").to_be_bytes().to_vec();
    let body = [kind.as_slice(), data].concat();
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
    out
}

/// Inserts chunks right after IHDR (signature 8 bytes + IHDR 25 bytes).
fn with_png_chunks(png: &[u8], chunks: &[Vec<u8>]) -> Vec<u8> {
    assert_eq!(&png[12..16], b"IHDR");
    let mut out = png[..33].to_vec();
    for chunk in chunks {
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&png[33..]);
    out
}

// ---------------------------------------------------------------- inspectors

pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The markers of the JPEG segments before the scan data (SOI excluded).
fn jpeg_header_markers(jpeg: &[u8]) -> Vec<u8> {
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "output is not a JPEG");
    let mut markers = Vec::new();
    let mut at = 2;
    while at + 4 <= jpeg.len() {
        assert_eq!(jpeg[at], 0xFF, "segment does not start with 0xFF at {at}");
        let marker = jpeg[at + 1];
        markers.push(marker);
        if marker == 0xDA {
            break; // start of scan: entropy-coded data follows
        }
        let length = usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
        at += 2 + length;
    }
    markers
}

fn png_chunk_types(png: &[u8]) -> Vec<String> {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "output is not a PNG");
    let mut kinds = Vec::new();
    let mut at = 8;
    while at + 8 <= png.len() {
        let length = u32::from_be_bytes(png[at..at + 4].try_into().expect("4 bytes")) as usize;
        kinds.push(String::from_utf8_lossy(&png[at + 4..at + 8]).into_owned());
        at += 12 + length;
    }
    kinds
}

/// What every re-encoded JPEG must look like: JFIF APP0 at most, no APPn
/// (1 = EXIF/XMP, 2 = ICC, 13 = Photoshop IPTC, …), no comments, nothing
/// identifying anywhere in the bytes.
fn assert_clean_jpeg(out: &ProcessedImage) {
    assert_eq!(out.content_type, "image/jpeg");
    assert_eq!(out.extension, "jpg");
    assert_eq!(image::guess_format(&out.bytes).expect("known format"), ImageFormat::Jpeg);
    for marker in jpeg_header_markers(&out.bytes) {
        assert!(!(0xE1..=0xEF).contains(&marker), "output has an APP{} segment", marker - 0xE0);
        assert_ne!(marker, 0xFE, "output has a COM segment");
    }
    assert_no_markers(&out.bytes);
}

/// What every re-encoded PNG must look like: only critical chunks.
fn assert_clean_png(out: &ProcessedImage) {
    assert_eq!(out.content_type, "image/png");
    assert_eq!(out.extension, "png");
    for kind in png_chunk_types(&out.bytes) {
        assert!(["IHDR", "PLTE", "IDAT", "IEND"].contains(&kind.as_str()), "output has a {kind} chunk");
    }
    assert_no_markers(&out.bytes);
}

fn assert_no_markers(bytes: &[u8]) {
    for needle in [b"Exif".as_slice(), b"GPS", b"SECRET", b"Canon", b"MM\0\x2a"] {
        assert!(!contains(bytes, needle), "output still contains {:?}", String::from_utf8_lossy(needle));
    }
}

fn decode(bytes: &[u8]) -> DynamicImage {
    image::load_from_memory(bytes).expect("output decodes")
}

// ---------------------------------------------------------------- FRM-5

#[test]
fn frm_5_uploaded_jpeg_loses_exif_and_gps() {
    let upload = with_exif_segment(&jpeg(640, 480), &exif_tiff(1));
    assert!(contains(&upload, b"Exif\0\0") && contains(&upload, GPS_MARKER) && contains(&upload, CAMERA_MARKER));
    assert_eq!(decode(&upload).dimensions(), (640, 480), "the doctored upload is still a valid JPEG");

    let out = reencode(&upload, 320).expect("reencode");

    assert_clean_jpeg(&out);
    assert_eq!((out.width, out.height), (320, 240));
    assert_eq!(decode(&out.bytes).dimensions(), (320, 240));
}

#[test]
fn frm_5_uploaded_png_loses_text_and_exif_chunks() {
    let pixels = RgbImage::from_fn(200, 100, |x, _| Rgb([x as u8, 10, 20]));
    let text = [b"Comment\0".as_slice(), GPS_MARKER, b" ", CAMERA_MARKER].concat();
    let upload = with_png_chunks(&png_rgb(&pixels), &[png_chunk(b"tEXt", &text), png_chunk(b"eXIf", &exif_tiff(1))]);
    assert!(contains(&upload, b"tEXt") && contains(&upload, b"eXIf") && contains(&upload, GPS_MARKER));
    assert_eq!(decode(&upload).dimensions(), (200, 100), "the doctored upload is still a valid PNG (CRCs right)");

    let out = reencode(&upload, 1000).expect("reencode");

    // No alpha in the source, so it becomes a JPEG; either way nothing survives.
    assert_clean_jpeg(&out);
    assert_eq!((out.width, out.height), (200, 100), "small images are not upscaled");
    assert_eq!(decode(&out.bytes).dimensions(), (200, 100));
}

#[test]
fn frm_5_alpha_png_with_metadata_stays_png_and_keeps_transparency() {
    let pixels = RgbaImage::from_fn(64, 48, |x, _| if x < 32 { Rgba([255, 0, 0, 255]) } else { Rgba([0, 0, 255, 0]) });
    let upload = with_png_chunks(
        &png_rgba(&pixels),
        &[png_chunk(b"tEXt", &[b"Author\0".as_slice(), CAMERA_MARKER].concat()), png_chunk(b"eXIf", &exif_tiff(1))],
    );

    let out = reencode(&upload, 2048).expect("reencode");

    assert_clean_png(&out);
    assert_eq!((out.width, out.height), (64, 48));
    let back = decode(&out.bytes).into_rgba8();
    assert_eq!(back.get_pixel(5, 5)[3], 255, "opaque half stays opaque");
    assert_eq!(back.get_pixel(60, 5)[3], 0, "transparent half stays transparent");
}

#[test]
fn frm_5_gif_comment_is_dropped() {
    let mut gif = Vec::new();
    {
        let frame = image::Frame::new(RgbaImage::from_pixel(30, 20, Rgba([0, 128, 0, 255])));
        GifEncoder::new(&mut gif).encode_frames([frame]).expect("encode gif");
    }
    // A comment extension (0x21 0xFE, sub-blocks, terminator) after the header,
    // logical screen descriptor and global colour table, where editors write them.
    let flags = gif[10];
    let header_end = 13 + if flags & 0x80 != 0 { 3 << ((flags & 7) + 1) } else { 0 };
    let mut upload = gif[..header_end].to_vec();
    let comment = [GPS_MARKER, b" ", CAMERA_MARKER].concat();
    upload.extend_from_slice(&[0x21, 0xFE, comment.len() as u8]);
    upload.extend_from_slice(&comment);
    upload.push(0);
    upload.extend_from_slice(&gif[header_end..]);
    assert!(contains(&upload, GPS_MARKER) && contains(&upload, CAMERA_MARKER));
    assert_eq!(decode(&upload).dimensions(), (30, 20));

    let out = reencode(&upload, 100).expect("reencode");

    assert_eq!((out.width, out.height), (30, 20));
    if out.content_type == "image/png" {
        assert_clean_png(&out);
    } else {
        assert_clean_jpeg(&out);
    }
}

#[test]
fn frm_5_data_after_the_jpeg_end_marker_is_dropped() {
    // Phones append a video ("motion photo") or vendor trailer after the end
    // marker; the photo is still valid and the trailer must not be served.
    let mut upload = with_exif_segment(&jpeg(120, 90), &exif_tiff(1));
    upload.extend_from_slice(b"\0\0\0\x18ftypmp42 trailer: ");
    upload.extend_from_slice(GPS_MARKER);

    let out = reencode(&upload, 1000).expect("reencode");

    assert_clean_jpeg(&out);
    assert_eq!((out.width, out.height), (120, 90));
    assert!(out.bytes.ends_with(&[0xFF, 0xD9]), "output ends at its own end marker");
}

#[test]
fn frm_5_exif_orientation_is_applied_before_the_exif_is_dropped() {
    // Orientation 6 = "rotate 90° clockwise to display": a portrait phone photo
    // stored landscape. Dropping the tag without rotating would show it sideways.
    let upload = with_exif_segment(&jpeg(80, 40), &exif_tiff(6));

    let out = reencode(&upload, 1000).expect("reencode");

    assert_clean_jpeg(&out);
    assert_eq!((out.width, out.height), (40, 80));
    assert_eq!(decode(&out.bytes).dimensions(), (40, 80));
}

#[test]
fn frm_5_oversized_image_is_downscaled_keeping_aspect_ratio() {
    let landscape = reencode(&jpeg(1200, 400), 300).expect("landscape");
    assert_eq!((landscape.width, landscape.height), (300, 100));
    assert_eq!(decode(&landscape.bytes).dimensions(), (300, 100));

    let portrait = reencode(&png_rgb(&photo(250, 1000)), 200).expect("portrait");
    assert_eq!((portrait.width, portrait.height), (50, 200));
    assert_eq!(decode(&portrait.bytes).dimensions(), (50, 200));
}

#[test]
fn frm_5_thumbnail_is_an_exact_centre_cropped_square() {
    // Red | green | blue thirds: a centre crop of the wide image is all green.
    let pixels = RgbImage::from_fn(300, 100, |x, _| match x / 100 {
        0 => Rgb([255, 0, 0]),
        1 => Rgb([0, 255, 0]),
        _ => Rgb([0, 0, 255]),
    });
    let upload = with_exif_segment(
        &{
            let mut out = Vec::new();
            JpegEncoder::new_with_quality(&mut out, 95)
                .write_image(pixels.as_raw(), 300, 100, image::ExtendedColorType::Rgb8)
                .expect("encode");
            out
        },
        &exif_tiff(1),
    );

    let thumb = thumbnail(&upload, 64).expect("thumbnail");

    assert_clean_jpeg(&thumb);
    assert_eq!((thumb.width, thumb.height), (64, 64));
    let back = decode(&thumb.bytes).into_rgb8();
    assert_eq!(back.dimensions(), (64, 64));
    for (x, y) in [(2, 32), (32, 32), (61, 32)] {
        let Rgb([r, g, b]) = *back.get_pixel(x, y);
        assert!(g > 200 && r < 60 && b < 60, "pixel ({x},{y}) = {:?} is not from the centre", [r, g, b]);
    }

    let small = thumbnail(&png_rgba(&RgbaImage::from_pixel(10, 30, Rgba([1, 2, 3, 128]))), 48).expect("small");
    assert_clean_png(&small);
    assert_eq!((small.width, small.height), (48, 48));
    assert_eq!(decode(&small.bytes).dimensions(), (48, 48));
}

#[test]
fn frm_5_text_file_is_refused_as_not_an_image() {
    let err = reencode(b"Dear diary, today I uploaded a text file named photo.jpg.\n", 100).expect_err("not an image");
    assert!(matches!(err, ImageError::Unsupported), "{err:?}");
    assert_eq!(err.to_string(), "That file is not a PNG, JPEG, GIF or WebP image.");

    assert!(matches!(reencode(&[], 100), Err(ImageError::Unsupported)));
    assert!(matches!(thumbnail(b"<svg xmlns='http://www.w3.org/2000/svg'/>", 100), Err(ImageError::Unsupported)));
    // A BMP is a real image, but not one we accept.
    assert!(matches!(reencode(b"BM\x3a\0\0\0\0\0\0\0\x36\0\0\0\x28\0\0\0", 100), Err(ImageError::Unsupported)));
}

#[test]
fn frm_5_truncated_files_are_errors_not_panics() {
    let whole = with_exif_segment(&jpeg(320, 240), &exif_tiff(1));
    for cut in [3, 20, whole.len() / 4, whole.len() / 2, whole.len() - 3] {
        let err = reencode(&whole[..cut], 100).expect_err(&format!("JPEG cut at {cut} of {}", whole.len()));
        assert!(matches!(err, ImageError::Corrupt(_) | ImageError::Unsupported), "cut at {cut}: {err:?}");
    }

    let mut gif = Vec::new();
    GifEncoder::new(&mut gif)
        .encode_frames([image::Frame::new(DynamicImage::ImageRgb8(photo(64, 64)).into_rgba8())])
        .expect("encode gif");
    let err = reencode(&gif[..gif.len() / 2], 100).expect_err("GIF cut in half");
    assert!(matches!(err, ImageError::Corrupt(_)), "{err:?}");

    let png = png_rgb(&photo(320, 240));
    for cut in [10, 40, png.len() / 2, png.len() - 5] {
        let err = reencode(&png[..cut], 100).expect_err(&format!("PNG cut at {cut} of {}", png.len()));
        assert!(matches!(err, ImageError::Corrupt(_) | ImageError::Unsupported), "cut at {cut}: {err:?}");
    }
}

#[test]
fn frm_5_png_decompression_bomb_is_refused_quickly() {
    // 100000×100000 RGBA would be 40 GB decoded; the file is under 100 bytes.
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]); // 8-bit RGBA, deflate, no interlace
    let mut bomb = b"\x89PNG\r\n\x1a\n".to_vec();
    bomb.extend_from_slice(&png_chunk(b"IHDR", &ihdr));
    bomb.extend_from_slice(&png_chunk(b"IDAT", &[0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]));
    bomb.extend_from_slice(&png_chunk(b"IEND", &[]));

    let started = Instant::now();
    let err = reencode(&bomb, 100).expect_err("bomb");
    assert!(matches!(err, ImageError::TooManyPixels), "{err:?}");
    assert!(thumbnail(&bomb, 100).is_err());
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
}

#[test]
fn frm_5_jpeg_claiming_huge_dimensions_is_refused_quickly() {
    // Rewrite the frame header (SOF0: FF C0, length, precision, height, width) of a
    // real small JPEG to claim 60000×60000 = 3.6 gigapixels.
    let mut bomb = jpeg(16, 16);
    let sof = bomb.windows(2).position(|w| w == [0xFF, 0xC0]).expect("SOF0");
    bomb[sof + 5..sof + 7].copy_from_slice(&60_000u16.to_be_bytes());
    bomb[sof + 7..sof + 9].copy_from_slice(&60_000u16.to_be_bytes());

    let started = Instant::now();
    let err = reencode(&bomb, 100).expect_err("bomb");
    assert!(matches!(err, ImageError::TooManyPixels), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
}

#[test]
fn frm_5_upload_over_the_size_limit_is_refused_before_decoding() {
    let mut huge = jpeg(8, 8);
    huge.resize(MAX_UPLOAD_BYTES + 1, 0);
    let err = reencode(&huge, 100).expect_err("too large");
    assert!(
        matches!(err, ImageError::TooLarge { size, max } if size == MAX_UPLOAD_BYTES + 1 && max == MAX_UPLOAD_BYTES)
    );
    assert!(err.to_string().contains("10 MB"), "{err}");
}
