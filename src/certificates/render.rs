//! Certificates as pictures (CRT-3): a PNG drawn with the `image` crate and
//! the bundled DejaVu Serif fonts (Bitstream Vera licence, in
//! `assets/fonts`), and a one-page PDF carrying the same picture with the
//! certificate's facts in its document information.

use std::io::Cursor;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use image::{ImageFormat, Rgb, RgbImage};

use super::Certificate;

static REGULAR: &[u8] = include_bytes!("../../assets/fonts/DejaVuSerif.ttf");
static BOLD: &[u8] = include_bytes!("../../assets/fonts/DejaVuSerif-Bold.ttf");

/// A4 landscape at 150 dpi, roughly.
pub const WIDTH: u32 = 1754;
pub const HEIGHT: u32 = 1240;

const INK: Rgb<u8> = Rgb([0x1f, 0x29, 0x37]);
const ACCENT: Rgb<u8> = Rgb([0x1d, 0x4e, 0x89]);
const MUTED: Rgb<u8> = Rgb([0x55, 0x5f, 0x6d]);
const PAPER: Rgb<u8> = Rgb([0xfd, 0xfc, 0xf8]);

fn fonts() -> (FontRef<'static>, FontRef<'static>) {
    (
        FontRef::try_from_slice(REGULAR).expect("the bundled font parses"),
        FontRef::try_from_slice(BOLD).expect("the bundled font parses"),
    )
}

fn text_width(font: &FontRef<'_>, scale: PxScale, text: &str) -> f32 {
    let f = font.as_scaled(scale);
    let mut width = 0.0;
    let mut last = None;
    for c in text.chars() {
        let id = f.glyph_id(c);
        if let Some(prev) = last {
            width += f.kern(prev, id);
        }
        width += f.h_advance(id);
        last = Some(id);
    }
    width
}

/// Draws `text` centred on the page with its baseline at `y`, shrinking the
/// size until it fits the width available.
fn centred(img: &mut RgbImage, font: &FontRef<'_>, size: f32, y: f32, colour: Rgb<u8>, text: &str) {
    let max = WIDTH as f32 - 260.0;
    let mut scale = PxScale::from(size);
    let mut width = text_width(font, scale, text);
    while width > max && scale.y > 12.0 {
        scale = PxScale::from(scale.y * 0.92);
        width = text_width(font, scale, text);
    }
    let f = font.as_scaled(scale);
    let mut x = (WIDTH as f32 - width) / 2.0;
    let mut last = None;
    for c in text.chars() {
        let id = f.glyph_id(c);
        if let Some(prev) = last {
            x += f.kern(prev, id);
        }
        let glyph = id.with_scale_and_position(scale, ab_glyph::point(x, y));
        if let Some(outline) = font.outline_glyph(glyph) {
            let bounds = outline.px_bounds();
            outline.draw(|gx, gy, coverage| {
                let px = bounds.min.x as i64 + i64::from(gx);
                let py = bounds.min.y as i64 + i64::from(gy);
                if px < 0 || py < 0 || px >= i64::from(WIDTH) || py >= i64::from(HEIGHT) {
                    return;
                }
                let p = img.get_pixel_mut(px as u32, py as u32);
                for ch in 0..3 {
                    let under = f32::from(p.0[ch]);
                    p.0[ch] = (under + (f32::from(colour.0[ch]) - under) * coverage.clamp(0.0, 1.0)).round() as u8;
                }
            });
        }
        x += f.h_advance(id);
        last = Some(id);
    }
}

fn frame(img: &mut RgbImage, inset: u32, thickness: u32, colour: Rgb<u8>) {
    for t in 0..thickness {
        let (l, r) = (inset + t, WIDTH - 1 - inset - t);
        let (top, bottom) = (inset + t, HEIGHT - 1 - inset - t);
        for x in l..=r {
            img.put_pixel(x, top, colour);
            img.put_pixel(x, bottom, colour);
        }
        for y in top..=bottom {
            img.put_pixel(l, y, colour);
            img.put_pixel(r, y, colour);
        }
    }
}

/// The certificate drawn as pixels; `verify_url` is printed on it.
pub fn picture(c: &Certificate, verify_url: &str) -> RgbImage {
    let (regular, bold) = fonts();
    let mut img = RgbImage::from_pixel(WIDTH, HEIGHT, PAPER);
    frame(&mut img, 40, 10, ACCENT);
    frame(&mut img, 66, 2, ACCENT);
    centred(&mut img, &bold, 40.0, 200.0, ACCENT, &c.member_name.to_uppercase());
    centred(&mut img, &bold, 76.0, 330.0, INK, "Verified Certificate");
    centred(&mut img, &regular, 34.0, 430.0, MUTED, "This certifies that");
    centred(&mut img, &bold, 88.0, 560.0, INK, &c.name_at_issue);
    centred(&mut img, &regular, 34.0, 660.0, MUTED, "successfully completed the course");
    centred(&mut img, &bold, 58.0, 770.0, ACCENT, &c.course_title);
    centred(&mut img, &regular, 32.0, 850.0, MUTED, &format!("offered by {} ({})", c.member_name, c.run_key));
    centred(
        &mut img,
        &regular,
        32.0,
        960.0,
        INK,
        &format!("Issued {} · Grade {:.0} %", c.issued_at.format("%e %B %Y").to_string().trim(), c.grade_percent),
    );
    centred(&mut img, &regular, 26.0, 1080.0, MUTED, &format!("Verification code {}", c.code));
    centred(&mut img, &regular, 24.0, 1125.0, MUTED, verify_url);
    if c.revoked_at.is_some() {
        centred(&mut img, &bold, 60.0, 120.0, Rgb([0xb4, 0x23, 0x18]), "REVOKED");
    }
    img
}

pub fn png(c: &Certificate, verify_url: &str) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    picture(c, verify_url).write_to(&mut out, ImageFormat::Png).expect("encoding to memory");
    out.into_inner()
}

/// A one-page A4 landscape PDF with the picture, titled for the certificate.
pub fn pdf(c: &Certificate, verify_url: &str) -> Vec<u8> {
    use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref, TextStr};
    let picture = picture(c, verify_url);
    let mut jpeg = Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 92)
        .encode_image(&picture)
        .expect("encoding to memory");
    let jpeg = jpeg.into_inner();

    let (catalog, tree, page, image_id, content_id, info) =
        (Ref::new(1), Ref::new(2), Ref::new(3), Ref::new(4), Ref::new(5), Ref::new(6));
    let (w, h) = (842.0, 595.0);
    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree).kids([page]).count(1);
    let mut p = pdf.page(page);
    p.media_box(Rect::new(0.0, 0.0, w, h));
    p.parent(tree);
    p.contents(content_id);
    p.resources().x_objects().pair(Name(b"Cert"), image_id);
    p.finish();
    let mut xobject = pdf.image_xobject(image_id, &jpeg);
    xobject.filter(Filter::DctDecode);
    xobject.width(WIDTH as i32);
    xobject.height(HEIGHT as i32);
    xobject.color_space().device_rgb();
    xobject.bits_per_component(8);
    xobject.finish();
    let mut content = Content::new();
    content.save_state();
    content.transform([w, 0.0, 0.0, h, 0.0, 0.0]);
    content.x_object(Name(b"Cert"));
    content.restore_state();
    pdf.stream(content_id, &content.finish());
    let title = format!("Verified certificate: {} - {}", c.course_title, c.name_at_issue);
    let subject = format!("Verification code {}, {verify_url}", c.code);
    pdf.document_info(info)
        .title(TextStr(&title))
        .author(TextStr(&c.member_name))
        .subject(TextStr(&subject))
        .creator(TextStr("Lyceum"));
    pdf.finish()
}
