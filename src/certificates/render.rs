//! Certificates as documents (CRT-3), in the bundled DejaVu Serif fonts
//! (Bitstream Vera licence, in `assets/fonts`): a PNG drawn with the `image`
//! crate, and a one-page tagged PDF with the same lines as real text in the
//! embedded fonts, and the certificate's facts in its document information.

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
    for (is_bold, size, baseline, colour, text) in lines(c, verify_url) {
        centred(&mut img, if is_bold { &bold } else { &regular }, size, baseline, colour, &text);
    }
    img
}

pub fn png(c: &Certificate, verify_url: &str) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    picture(c, verify_url).write_to(&mut out, ImageFormat::Png).expect("encoding to memory");
    out.into_inner()
}

/// The lines of the certificate, top to bottom: bold or not, size in
/// picture pixels, baseline in picture pixels, colour, text. The picture and
/// the PDF set the same lines.
fn lines(c: &Certificate, verify_url: &str) -> Vec<(bool, f32, f32, Rgb<u8>, String)> {
    let mut lines = Vec::new();
    if c.revoked_at.is_some() {
        lines.push((true, 60.0, 120.0, Rgb([0xb4, 0x23, 0x18]), "REVOKED".to_string()));
    }
    lines.extend([
        (true, 40.0, 200.0, ACCENT, c.member_name.to_uppercase()),
        (true, 76.0, 330.0, INK, "Verified Certificate".to_string()),
        (false, 34.0, 430.0, MUTED, "This certifies that".to_string()),
        (true, 88.0, 560.0, INK, c.name_at_issue.clone()),
        (false, 34.0, 660.0, MUTED, "successfully completed the course".to_string()),
        (true, 58.0, 770.0, ACCENT, c.course_title.clone()),
        (false, 32.0, 850.0, MUTED, format!("offered by {} ({})", c.member_name, c.run_key)),
        (
            false,
            32.0,
            960.0,
            INK,
            format!("Issued {} · Grade {:.0} %", crate::web::format::day(c.issued_at.date()), c.grade_percent),
        ),
        (false, 26.0, 1080.0, MUTED, format!("Verification code {}", c.code)),
        (false, 24.0, 1125.0, MUTED, verify_url.to_string()),
    ]);
    lines
}

/// One embedded font of the PDF: the glyphs used and their widths, for the
/// width table and the text extraction map.
struct PdfFont<'a> {
    font: &'a FontRef<'static>,
    data: &'static [u8],
    base: &'static [u8],
    used: std::collections::BTreeMap<u16, (char, f32)>,
}

impl PdfFont<'_> {
    /// Width of `text` in points at `size` (the em size), without kerning, as the PDF sets it.
    fn width(&self, size: f32, text: &str) -> f32 {
        let upem = self.font.units_per_em().unwrap_or(1000.0);
        text.chars().map(|ch| self.font.h_advance_unscaled(self.font.glyph_id(ch))).sum::<f32>() / upem * size
    }

    /// The text as two-byte glyph ids (the `Identity-H` encoding), noting each glyph used.
    fn encode(&mut self, text: &str) -> Vec<u8> {
        let upem = self.font.units_per_em().unwrap_or(1000.0);
        let mut out = Vec::with_capacity(text.len() * 2);
        for ch in text.chars() {
            let id = self.font.glyph_id(ch);
            let width = self.font.h_advance_unscaled(id) / upem * 1000.0;
            self.used.entry(id.0).or_insert((ch, width));
            out.extend(id.0.to_be_bytes());
        }
        out
    }
}

/// A one-page A4 landscape PDF of the certificate, drawn as vector text in
/// the embedded DejaVu Serif fonts: the text can be selected, searched and
/// read aloud (a tagged PDF: each line is a paragraph of the structure tree,
/// the frames are artifacts, the language is English), and it prints sharp
/// at any size.
pub fn pdf(c: &Certificate, verify_url: &str) -> Vec<u8> {
    use pdf_writer::types::{CidFontType, FontFlags, StructRole, SystemInfo, UnicodeCmap};
    use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

    let (regular, bold) = fonts();
    let mut fonts = [
        PdfFont { font: &regular, data: REGULAR, base: b"DejaVuSerif", used: Default::default() },
        PdfFont { font: &bold, data: BOLD, base: b"DejaVuSerif-Bold", used: Default::default() },
    ];
    let (w, h) = (842.0_f32, 595.0_f32);
    let scale = w / WIDTH as f32;
    let rgb = |c: Rgb<u8>| (f32::from(c.0[0]) / 255.0, f32::from(c.0[1]) / 255.0, f32::from(c.0[2]) / 255.0);

    let mut content = Content::new();
    // The paper and the frames: decoration, not content, for a screen reader.
    content.begin_marked_content(Name(b"Artifact"));
    let (r, g, b) = rgb(PAPER);
    content.set_fill_rgb(r, g, b).rect(0.0, 0.0, w, h).fill_nonzero();
    let (r, g, b) = rgb(ACCENT);
    content.set_stroke_rgb(r, g, b);
    for (inset, thickness) in [(40.0, 10.0), (66.0, 2.0)] {
        let (i, t) = (inset * scale, thickness * scale);
        content.set_line_width(t).rect(i + t / 2.0, i + t / 2.0, w - 2.0 * i - t, h - 2.0 * i - t).stroke();
    }
    content.end_marked_content();

    let lines = lines(c, verify_url);
    for (mcid, (is_bold, size_px, baseline_px, colour, text)) in lines.iter().enumerate() {
        let font = &mut fonts[usize::from(*is_bold)];
        // The picture's size is the font's full height in pixels; PDF sizes are ems.
        let height_units = font.font.height_unscaled() / font.font.units_per_em().unwrap_or(1000.0);
        let mut size = size_px * scale / height_units;
        let max = (WIDTH as f32 - 260.0) * scale;
        while font.width(size, text) > max && size > 6.0 {
            size *= 0.92;
        }
        let x = (w - font.width(size, text)) / 2.0;
        let y = h - baseline_px * scale;
        let encoded = font.encode(text);
        let (r, g, b) = rgb(*colour);
        content.begin_marked_content_with_properties(Name(b"P")).properties().identify(mcid as i32);
        content
            .begin_text()
            .set_fill_rgb(r, g, b)
            .set_font(Name(if *is_bold { b"F2" } else { b"F1" }), size)
            .next_line(x, y)
            .show(Str(&encoded))
            .end_text();
        content.end_marked_content();
    }

    let mut next = 1;
    let mut alloc = || {
        let r = Ref::new(next);
        next += 1;
        r
    };
    let (catalog, tree, page, content_id, info, struct_root, document, parents) =
        (alloc(), alloc(), alloc(), alloc(), alloc(), alloc(), alloc(), alloc());
    let font_refs: Vec<[Ref; 5]> = (0..2).map(|_| [alloc(), alloc(), alloc(), alloc(), alloc()]).collect();
    let paragraphs: Vec<Ref> = lines.iter().map(|_| alloc()).collect();

    let mut pdf = Pdf::new();
    let mut cat = pdf.catalog(catalog);
    cat.pages(tree);
    cat.lang(TextStr("en"));
    cat.mark_info().marked(true);
    cat.pair(Name(b"StructTreeRoot"), struct_root);
    cat.finish();
    pdf.pages(tree).kids([page]).count(1);
    let mut p = pdf.page(page);
    p.media_box(Rect::new(0.0, 0.0, w, h));
    p.parent(tree);
    p.contents(content_id);
    p.struct_parents(0);
    let mut resources = p.resources();
    let mut font_dict = resources.fonts();
    font_dict.pair(Name(b"F1"), font_refs[0][0]);
    font_dict.pair(Name(b"F2"), font_refs[1][0]);
    font_dict.finish();
    resources.finish();
    p.finish();
    pdf.stream(content_id, &content.finish());

    // The structure tree: a document of paragraphs, one per line, in reading order.
    let mut root = pdf.indirect(struct_root).start::<pdf_writer::writers::StructTreeRoot>();
    root.child(document).parent_tree().nums().insert(0, parents);
    root.finish();
    let mut doc = pdf.struct_element(document);
    doc.kind(StructRole::Document).parent(struct_root);
    let mut children = doc.children();
    for p in &paragraphs {
        children.struct_element(*p);
    }
    children.finish();
    doc.finish();
    for (mcid, id) in paragraphs.iter().enumerate() {
        let mut para = pdf.struct_element(*id);
        para.kind(StructRole::P).parent(document).page(page);
        para.marked_content_child().marked_content_id(mcid as i32).page(page);
        para.finish();
    }
    pdf.indirect(parents).array().items(paragraphs.iter().copied());

    let system = SystemInfo { registry: Str(b"Adobe"), ordering: Str(b"Identity"), supplement: 0 };
    for (font, [type0, cid, descriptor, file, cmap]) in fonts.iter().zip(&font_refs) {
        let upem = font.font.units_per_em().unwrap_or(1000.0);
        let em = |v: f32| v / upem * 1000.0;
        pdf.type0_font(*type0)
            .base_font(Name(font.base))
            .encoding_predefined(Name(b"Identity-H"))
            .descendant_font(*cid)
            .to_unicode(*cmap);
        let mut cid_font = pdf.cid_font(*cid);
        cid_font.subtype(CidFontType::Type2).base_font(Name(font.base)).system_info(system);
        cid_font.font_descriptor(*descriptor).cid_to_gid_map_predefined(Name(b"Identity"));
        let mut widths = cid_font.widths();
        for (gid, (_, width)) in &font.used {
            widths.consecutive(*gid, [*width]);
        }
        widths.finish();
        cid_font.finish();
        pdf.font_descriptor(*descriptor)
            .name(Name(font.base))
            .flags(FontFlags::SERIF | FontFlags::SYMBOLIC)
            // DejaVu Serif's glyphs lie within this box (font units per 1000 em).
            .bbox(Rect::new(-400.0, -300.0, 1100.0, 1000.0))
            .italic_angle(0.0)
            .ascent(em(font.font.ascent_unscaled()))
            .descent(em(font.font.descent_unscaled()))
            .cap_height(em(font.font.ascent_unscaled() * 0.73))
            .stem_v(80.0)
            .font_file2(*file);
        let compressed = {
            use std::io::Write;
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            z.write_all(font.data).expect("compressing to memory");
            z.finish().expect("compressing to memory")
        };
        pdf.stream(*file, &compressed).filter(Filter::FlateDecode).pair(Name(b"Length1"), font.data.len() as i32);
        let mut map = UnicodeCmap::new(Name(b"Lyceum-UTF16"), system);
        for (gid, (ch, _)) in &font.used {
            map.pair(*gid, *ch);
        }
        pdf.cmap(*cmap, &map.finish()).system_info(system);
    }

    let title = format!("Verified certificate: {} - {}", c.course_title, c.name_at_issue);
    let subject = format!("Verification code {}, {verify_url}", c.code);
    pdf.document_info(info)
        .title(TextStr(&title))
        .author(TextStr(&c.member_name))
        .subject(TextStr(&subject))
        .creator(TextStr("Lyceum"));
    pdf.finish()
}
