//! Lists that page in the database. A list reads one page, plus one row to
//! know whether another follows, so it costs the same on page one of a
//! million rows as of ten, and no `COUNT(*)` runs over a large table.
//!
//! `?page=N` is 1-based; a value that is not a number, zero or negative is
//! the first page, and pages beyond [`MAX_PAGE`] are the last one allowed
//! (deep offsets cost a scan; a list that long wants a search instead).
//! Templates show the links with the `pages` partial:
//! `{{> pages nav=nav label="Payment pages"}}`. A list that counts its rows
//! anyway (the catalog says how many courses match) makes its links with
//! [`PageRequest::nav_of`], and the partial says "Page N of M".

use serde::Serialize;

/// The deepest page a list serves.
pub const MAX_PAGE: i64 = 10_000;

/// Which page of a list a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    page: i64,
    per_page: i64,
}

impl PageRequest {
    /// The page a raw `?page=` value asks for, `per_page` rows each.
    pub fn parse(raw: Option<&str>, per_page: i64) -> PageRequest {
        let page = raw.and_then(|p| p.trim().parse::<i64>().ok()).unwrap_or(1).clamp(1, MAX_PAGE);
        PageRequest { page, per_page: per_page.max(1) }
    }

    pub fn page(&self) -> i64 {
        self.page
    }

    /// Rows to skip.
    pub fn offset(&self) -> i64 {
        (self.page - 1) * self.per_page
    }

    /// Rows to read: a page and one more, which only says that a next page exists.
    pub fn fetch(&self) -> i64 {
        self.per_page + 1
    }

    /// Cuts rows read with [`fetch`](Self::fetch) to one page and says where
    /// its neighbours are; `link` makes the address of a page.
    pub fn finish<T>(&self, mut rows: Vec<T>, link: impl Fn(i64) -> String) -> (Vec<T>, PageNav) {
        let more = rows.len() as i64 > self.per_page;
        rows.truncate(self.per_page as usize);
        (rows, self.nav(more, link))
    }

    /// Rows in a page.
    pub fn per_page(&self) -> i64 {
        self.per_page
    }

    /// The links of this page, for a list that read its page itself (at
    /// most [`per_page`](Self::per_page) rows from [`offset`](Self::offset))
    /// and knows whether `more` follow.
    pub fn nav(&self, more: bool, link: impl Fn(i64) -> String) -> PageNav {
        PageNav {
            page: self.page,
            previous: (self.page > 1).then(|| link(self.page - 1)),
            next: (more && self.page < MAX_PAGE).then(|| link(self.page + 1)),
            of: None,
        }
    }

    /// How many pages `total` rows fill (one, when there are none).
    pub fn pages(&self, total: i64) -> i64 {
        ((total.max(0) + self.per_page - 1) / self.per_page).max(1)
    }

    /// Whether this page lies past the last of `total` rows' pages.
    pub fn past(&self, total: i64) -> bool {
        self.page > self.pages(total)
    }

    /// The links of this page of a list of `total` rows, which says how many
    /// pages there are. From a page past the end, "previous" is the last page.
    pub fn nav_of(&self, total: i64, link: impl Fn(i64) -> String) -> PageNav {
        let pages = self.pages(total).min(MAX_PAGE);
        PageNav {
            page: self.page,
            previous: (self.page > 1).then(|| link((self.page - 1).min(pages))),
            next: (self.page < pages).then(|| link(self.page + 1)),
            of: Some(pages),
        }
    }
}

/// The links between the pages of a list, for the `pages` partial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PageNav {
    pub page: i64,
    pub previous: Option<String>,
    pub next: Option<String>,
    /// How many pages there are, where the list counted its rows.
    pub of: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junk_and_extremes_ask_for_pages_that_exist() {
        for raw in [None, Some(""), Some("x"), Some("0"), Some("-3"), Some("1e9"), Some("99999999999999999999")] {
            assert_eq!(PageRequest::parse(raw, 10).page(), 1, "{raw:?}");
        }
        assert_eq!(PageRequest::parse(Some(" 3 "), 10).offset(), 20);
        assert_eq!(PageRequest::parse(Some("9223372036854775807"), 10).page(), MAX_PAGE);
    }

    #[test]
    fn one_row_more_than_a_page_means_a_next_page() {
        let req = PageRequest::parse(Some("2"), 3);
        let (rows, nav) = req.finish(vec![1, 2, 3, 4], |p| format!("?page={p}"));
        assert_eq!(rows, [1, 2, 3]);
        assert_eq!(nav, PageNav { page: 2, previous: Some("?page=1".into()), next: Some("?page=3".into()), of: None });
        let (rows, nav) = PageRequest::parse(None, 3).finish(vec![1, 2, 3], |p| format!("?page={p}"));
        assert_eq!((rows.len(), nav.previous, nav.next), (3, None, None));
    }

    #[test]
    fn a_counted_list_knows_its_last_page() {
        let link = |p| format!("?page={p}");
        let nav = PageRequest::parse(Some("2"), 24).nav_of(56, link);
        assert_eq!(
            nav,
            PageNav { page: 2, previous: Some("?page=1".into()), next: Some("?page=3".into()), of: Some(3) }
        );
        let last = PageRequest::parse(Some("3"), 24);
        assert_eq!((last.past(56), last.nav_of(56, link).next), (false, None));
        assert_eq!((last.past(48), last.nav_of(48, link).previous), (true, Some("?page=2".into())), "back to the last");
        let empty = PageRequest::parse(None, 24);
        assert_eq!((empty.pages(0), empty.past(0), empty.nav_of(0, link).of), (1, false, Some(1)));
        assert_eq!(PageRequest::parse(Some("9999"), 24).nav_of(24, link).previous, Some("?page=1".into()));
    }
}
