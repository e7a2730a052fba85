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
