//! The one CSV writer of the site's own files (staff lists, sponsor reports,
//! gradebooks, the learner's data copy): every cell passes through
//! `partner_adapters::cell::spreadsheet_safe`, so a learner named
//! `=HYPERLINK(…)` cannot run a formula in the spreadsheet of whoever opens
//! the file. Area code writes CSV only through [`Writer`].

use std::io;

/// A `csv::Writer` whose records are spreadsheet-safe.
pub struct Writer<W: io::Write> {
    inner: csv::Writer<W>,
}

impl Writer<Vec<u8>> {
    /// A writer into memory, with the `csv` crate's defaults (RFC 4180, `\n`).
    pub fn in_memory() -> Self {
        Writer::new(csv::Writer::from_writer(Vec::new()))
    }
}

impl<W: io::Write> Writer<W> {
    pub fn new(inner: csv::Writer<W>) -> Self {
        Writer { inner }
    }

    pub fn write_record<I, T>(&mut self, record: I) -> csv::Result<()>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        let cells: Vec<T> = record.into_iter().collect();
        let safe: Vec<_> = cells.iter().map(|cell| partner_adapters::cell::spreadsheet_safe(cell.as_ref())).collect();
        self.inner.write_record(safe.iter().map(|cell| cell.as_bytes()))
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }

    /// The underlying writer, after the last flush.
    pub fn into_inner(self) -> io::Result<W> {
        self.inner.into_inner().map_err(|e| e.into_error())
    }
}

/// A CSV file's text, and the encoding it was read in when that was not UTF-8.
#[derive(Debug, PartialEq)]
pub struct Decoded {
    pub text: String,
    /// `Some("windows-1252")` when the file was converted.
    pub converted_from: Option<&'static str>,
}

/// The 1-based line of byte offset `at`.
fn line_of(bytes: &[u8], at: usize) -> usize {
    bytes[..at.min(bytes.len())].iter().filter(|b| **b == b'\n').count() + 1
}

/// Reads an uploaded CSV file's bytes by one rule: UTF-8 (with or without a
/// byte order mark); UTF-16 with a byte order mark; a file that is not UTF-8
/// and that `chardetng` takes for Windows-1252 (which Latin-1 files are read
/// as, as browsers do) is converted. Anything else is refused with the line
/// where the problem starts, and so is text that holds U+FFFD (text already
/// damaged by a wrong decoding) or NUL: nothing is stored with a character
/// silently replaced.
pub fn decode_upload(bytes: &[u8]) -> Result<Decoded, String> {
    const SAVE_AS: &str = "Save it as UTF-8 (in Excel: “CSV UTF-8”) and upload it again.";
    if let Some((encoding, bom)) = encoding_rs::Encoding::for_bom(bytes) {
        let body = &bytes[bom..];
        let Some(text) = encoding.decode_without_bom_handling_and_without_replacement(body) else {
            let (lossy, _) = encoding.decode_without_bom_handling(body);
            let line = lossy.split('\n').position(|l| l.contains('\u{FFFD}')).map_or(1, |i| i + 1);
            return Err(format!(
                "The file starts with a {} byte order mark, but line {line} is not {} text. {SAVE_AS}",
                encoding.name(),
                encoding.name()
            ));
        };
        let converted_from = (encoding != encoding_rs::UTF_8).then(|| encoding.name());
        return checked(text.into_owned(), converted_from);
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => checked(text.to_string(), None),
        Err(e) => {
            let line = line_of(bytes, e.valid_up_to());
            let mut detector = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
            detector.feed(bytes, true);
            let guess = detector.guess(None, chardetng::Utf8Detection::Deny);
            if guess != encoding_rs::WINDOWS_1252 {
                return Err(format!(
                    "The file is not UTF-8 text: line {line} has bytes that are not UTF-8 (the file looks like {}). {SAVE_AS}",
                    guess.name()
                ));
            }
            let (text, _) = encoding_rs::WINDOWS_1252.decode_without_bom_handling(bytes);
            checked(text.into_owned(), Some(encoding_rs::WINDOWS_1252.name()))
        }
    }
}

/// Refuses text holding U+FFFD or NUL, naming the line.
fn checked(text: String, converted_from: Option<&'static str>) -> Result<Decoded, String> {
    check_text(&text)?;
    Ok(Decoded { text, converted_from })
}

/// Refuses CSV text (pasted or decoded) that holds U+FFFD, the mark of text
/// damaged by a wrong decoding before it reached us, or NUL (a UTF-16 file
/// without its byte order mark), naming the line.
pub fn check_text(text: &str) -> Result<(), String> {
    for (i, line) in text.split('\n').enumerate() {
        if line.contains('\u{FFFD}') {
            return Err(format!(
                "Line {} holds the character “\u{FFFD}”, which stands for letters lost when the text was read in a \
                 wrong encoding before it reached us. Correct that line (or upload the original file) and try again.",
                i + 1
            ));
        }
        if line.contains('\0') {
            return Err(format!(
                "Line {} holds NUL characters: is the file UTF-16 without a byte order mark? Save it as UTF-8 (in \
                 Excel: “CSV UTF-8”) and upload it again.",
                i + 1
            ));
        }
    }
    Ok(())
}

/// The CSV text a form carried: the chosen file's, read by [`decode_upload`],
/// or else the pasted text (checked by [`check_text`]); `Err` is the
/// message for the uploader (no CSV, a file over the limit, its encoding).
pub fn form_text<L: crate::web::upload::UploadLimit>(
    pasted: &str,
    file: &crate::web::upload::Upload<L>,
) -> Result<Decoded, String> {
    use crate::web::upload::Upload;
    match file {
        Upload::Missing if pasted.trim().is_empty() => Err("Paste the CSV text or choose a CSV file.".into()),
        Upload::Missing => checked(pasted.to_string(), None),
        chosen => decode_upload(chosen.bytes()?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_with_and_without_bom_reads_as_is() {
        let plain = decode_upload("name\nZoé\n".as_bytes()).unwrap();
        assert_eq!(plain, Decoded { text: "name\nZoé\n".into(), converted_from: None });
        let bom = decode_upload(&[b"\xEF\xBB\xBF".as_slice(), "name\nZoé\n".as_bytes()].concat()).unwrap();
        assert_eq!(bom, plain);
    }

    #[test]
    fn utf16_with_bom_and_windows_1252_are_converted() {
        let mut le = vec![0xFF, 0xFE];
        le.extend("name\nZoé\n".encode_utf16().flat_map(u16::to_le_bytes));
        let mut be = vec![0xFE, 0xFF];
        be.extend("name\nZoé\n".encode_utf16().flat_map(u16::to_be_bytes));
        assert_eq!(decode_upload(&le).unwrap().text, "name\nZoé\n");
        assert_eq!(decode_upload(&le).unwrap().converted_from, Some("UTF-16LE"));
        assert_eq!(decode_upload(&be).unwrap().text, "name\nZoé\n");
        let latin1 = b"username,given_name\nzoe,Zo\xE9\nfrancois,Fran\xE7ois\n";
        let read = decode_upload(latin1).unwrap();
        assert_eq!(read.text, "username,given_name\nzoe,Zoé\nfrancois,François\n");
        assert_eq!(read.converted_from, Some("windows-1252"));
    }

    #[test]
    fn damaged_or_unknown_text_is_refused_with_its_line() {
        let e = decode_upload("name\nada\nZo\u{FFFD}\n".as_bytes()).unwrap_err();
        assert!(e.starts_with("Line 3 holds the character"), "{e}");
        let mut no_bom = Vec::new();
        no_bom.extend("name\nZoe\n".encode_utf16().flat_map(u16::to_le_bytes));
        assert!(decode_upload(&no_bom).unwrap_err().contains("UTF-16 without a byte order mark"));
        let mut bad16 = vec![0xFF, 0xFE];
        bad16.extend("a\nb\n".encode_utf16().flat_map(u16::to_le_bytes));
        bad16.extend([0x00, 0xD8, b'x', 0]);
        let e = decode_upload(&bad16).unwrap_err();
        assert!(e.contains("line 3 is not UTF-16LE"), "{e}");
        // Cyrillic in Windows-1251 is not taken for Western text.
        let cyrillic = "name\nПетров Иван Сергеевич\nСидорова Мария Александровна\n";
        let (bytes, _, _) = encoding_rs::WINDOWS_1251.encode(cyrillic);
        let e = decode_upload(&bytes).unwrap_err();
        assert!(e.contains("line 2 has bytes that are not UTF-8") && e.contains("windows-1251"), "{e}");
    }
}
