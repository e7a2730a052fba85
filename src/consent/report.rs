//! The sponsor completion report: one row per consented learner and
//! sponsored run, built only from what the gate yields, with summary charts
//! drawn as inline SVG on the server.
//!
//! Small counts (SHR-6). [`suppress`] hides a count under [`K_ANONYMITY`]
//! where an aggregate counts learners whose records the viewer may not read
//! one by one: the research aggregates (`api::aggregates`) count everyone,
//! so there a count of 1 would single a learner out. The report's charts
//! count exactly the learners its table lists for the same filter (across
//! its pages, and in the CSV): each under a live consent, with the very
//! figures the table shows. A chart there tells nothing the table does not,
//! so its counts are exact. It never counts a learner who declined or
//! withdrew (the gate yields nothing for them): a count beside the table
//! would otherwise reveal a decline, which is never shown (SHR-2). See
//! docs/PRIVACY.md, "Small counts".
//!
//! Cost. The charts' figures, the count and the course choices are counted
//! in the database under exactly the gate's rule for a sponsor
//! (`sharing::sponsored_tallies`; the gate's own code decides which of a
//! consent's categories yield a record and which figures it carries), and
//! the page's rows are chosen there in the gate's order
//! (`sharing::sponsored_page`). Only the page's rows are read through the
//! gate and disclosed, in the same snapshot as the figures, so a page costs
//! one grouped query and its 100 rows, not a walk over every learner. The
//! CSV walks the gate a page of candidates at a time.
//!
//! The charts are written here rather than with a plotting crate: three
//! horizontal bar charts of at most eight bars need no scales or layout
//! engine, and they must carry what such a crate's SVG output does not
//! (`role="img"`, `<title>`, `<desc>`, a viewBox sized for a phone so
//! labels stay at least 12 px).

use chrono::{Datelike, Duration, NaiveDateTime};
use diesel::QueryResult;

use super::partners::Partner;
use super::sharing::{self, Figures, Selection, Shared, Tally, Want};
use super::views::{CourseChoice, PartnerLink, ReportPage, ReportRow};
use crate::consent::Purpose;
use crate::db::Conn;
use crate::web::format::Day;

/// Smallest group an aggregate of learners the viewer cannot see one by one may show.
pub const K_ANONYMITY: u64 = 5;

/// A count as an aggregate may show it: `None` when the group is too small.
pub fn suppress(count: u64) -> Option<u64> {
    (count >= K_ANONYMITY).then_some(count)
}

#[derive(Debug, Clone)]
pub struct Row {
    pub learner: String,
    pub email: String,
    pub course: String,
    pub run: String,
    pub enrolled_at: Option<NaiveDateTime>,
    pub last_activity_at: Option<NaiveDateTime>,
    pub progress: Option<f64>,
    pub completed_at: Option<NaiveDateTime>,
    /// The code of the learner's certificate, when their consent covers it.
    pub certificate: Option<String>,
    /// Its public page.
    pub certificate_url: Option<String>,
}

/// Learners per page of the report's table.
pub const PAGE_SIZE: usize = 100;

/// Weeks the "Completions per week" chart shows, the current one last.
const WEEKS: usize = 8;

/// What the charts count, over every learner matching the filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub learners: u64,
    /// Progress above 0 %.
    pub started: u64,
    /// Progress of 50 % or more.
    pub half_way: u64,
    pub completed: u64,
    /// Learners by progress: 0–24 %, 25–49 %, 50–74 %, 75–99 %, 100 %.
    pub progress: [u64; 5],
    /// Completions in each of the last [`WEEKS`] weeks, oldest first.
    pub weeks: [u64; WEEKS],
}

impl Summary {
    /// Counts `learners` learners whose records carry these figures.
    fn add(&mut self, progress: Option<f64>, completed: bool, week: Option<usize>, learners: u64) {
        let p = progress.unwrap_or(0.0);
        self.learners += learners;
        if p > 0.0 {
            self.started += learners;
        }
        if p >= 50.0 {
            self.half_way += learners;
        }
        if completed {
            self.completed += learners;
        }
        let bucket = if p >= 100.0 { 4 } else { (p / 25.0).floor().clamp(0.0, 3.0) as usize };
        self.progress[bucket] += learners;
        if let Some(w) = week.filter(|w| *w < WEEKS) {
            self.weeks[w] += learners;
        }
    }
}

/// The Monday starting each of the chart's weeks, oldest first, and the
/// Monday after the last (midnight, UTC).
fn week_starts(now: NaiveDateTime) -> Vec<NaiveDateTime> {
    let d = now.date();
    let monday = d - Duration::days(d.weekday().num_days_from_monday() as i64);
    (0..=WEEKS as i64)
        .map(|i| (monday - Duration::weeks(WEEKS as i64 - 1 - i)).and_time(chrono::NaiveTime::MIN))
        .collect()
}

/// A report as the gate allows it right now, for one filter.
pub struct Report {
    /// What the charts count: every learner matching the filter.
    pub summary: Summary,
    /// The learners shown, disclosed (SHR-5): one page.
    pub rows: Vec<Row>,
    /// The page shown (1-based) and how many there are.
    pub page: usize,
    pub pages: usize,
    /// Every course in the report, for the filter, by slug.
    pub courses: Vec<(String, String)>,
    /// Learners who share with the sponsor at all, whatever the filter.
    pub sharing: usize,
    /// The Monday starting each week of the weekly chart, oldest first.
    pub weeks: Vec<NaiveDateTime>,
}

/// Which learners a report covers, and which page of them it shows (the
/// first when `None`; the CSV download lists them all).
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter<'a> {
    pub course: Option<&'a str>,
    pub status: Option<&'a str>,
    pub page: Option<usize>,
}

impl Filter<'_> {
    fn course(&self) -> Option<&str> {
        self.course.filter(|c| !c.is_empty())
    }

    fn status(&self) -> Option<bool> {
        match self.status {
            Some("completed") => Some(true),
            Some("in_progress") => Some(false),
            _ => None,
        }
    }

    fn matches(&self, f: &Figures) -> bool {
        self.course().is_none_or(|c| f.course_slug == c)
            && self.status().is_none_or(|done| f.completed_at.is_some() == done)
    }

    fn matches_tally(&self, t: &Tally) -> bool {
        self.course().is_none_or(|c| t.course_slug == c) && self.status().is_none_or(|done| t.completed == done)
    }
}

fn row_of(s: Shared, base: &str) -> Row {
    Row {
        learner: s.learner.name.clone().unwrap_or_else(|| s.learner.id.clone()),
        email: s.learner.email.clone().unwrap_or_default(),
        course: s.course.title.clone(),
        run: s.course.run.clone(),
        enrolled_at: s.enrollment.as_ref().map(|e| e.enrolled_at.naive_utc()),
        last_activity_at: s.progress.as_ref().and_then(|p| p.last_activity_at).map(|t| t.naive_utc()),
        progress: s.progress.as_ref().and_then(|p| p.progress_percent),
        completed_at: s.result.as_ref().and_then(|r| r.completed_at).map(|t| t.naive_utc()),
        certificate_url: s.certificate.as_ref().map(|c| format!("{}/certificates/{c}", base.trim_end_matches('/'))),
        certificate: s.certificate,
    }
}

/// Builds a page of the report. The charts' figures, the count of
/// matching learners and the course choices are counted in the database
/// by the gate's rule (`sharing::sponsored_tallies`); only the page's
/// learners are read through the gate, leave and get a disclosure row, all
/// in one snapshot, so the charts count exactly the learners the table
/// lists across its pages.
pub fn build(
    conn: &mut Conn,
    partner: &Partner,
    export_id: &str,
    base: &str,
    filter: Filter<'_>,
    now: NaiveDateTime,
) -> QueryResult<Report> {
    let weeks = week_starts(now);
    let select = |conn: &mut Conn| -> QueryResult<_> {
        let tallies = sharing::sponsored_tallies(conn, partner, &weeks)?;
        let mut summary = Summary::default();
        let mut courses = Vec::new();
        let mut shares = 0u64;
        let mut selection = Selection::default();
        let mut covering = Vec::new();
        let mut chosen_courses = Vec::new();
        for t in &tallies {
            shares += t.learners;
            courses.push((t.course_slug.clone(), t.course_title.clone()));
            selection.consents.push(t.consent.clone());
            // The consents under which a completed learner shows as completed
            // (read in the same snapshot as the page, so none is missed).
            if t.completed {
                covering.push(t.consent.clone());
            }
            if filter.course().is_some_and(|c| c == t.course_slug) {
                chosen_courses.push(t.course_id);
            }
            if filter.matches_tally(t) {
                summary.add(t.progress_percent, t.completed, t.week, t.learners);
            }
        }
        courses.sort();
        courses.dedup();
        for list in [&mut selection.consents, &mut covering] {
            list.sort();
            list.dedup();
        }
        chosen_courses.sort_unstable();
        chosen_courses.dedup();
        selection.courses = filter.course().map(|_| chosen_courses);
        selection.completed = filter.status().map(|done| (done, covering));
        let pages = (summary.learners as usize).div_ceil(PAGE_SIZE).max(1);
        let page = filter.page.unwrap_or(1).clamp(1, pages);
        let offset = ((page - 1) * PAGE_SIZE) as i64;
        let shown = sharing::sponsored_page(conn, partner, &selection, offset, PAGE_SIZE as i64)?;
        Ok(((summary, courses, shares as usize, page, pages), shown))
    };
    let ((summary, courses, sharing, page, pages), shared) =
        sharing::report_page(conn, partner, Purpose::Sponsorship, Want::ALL, export_id, base, now, select)?;
    let rows = shared.into_iter().map(|s| row_of(s, base)).collect();
    Ok(Report { summary, rows, page, pages, courses, sharing, weeks })
}

/// The CSV download: every learner matching the filter, walked through the
/// gate a page at a time, each record disclosed (SHR-5).
pub fn csv_download(
    conn: &mut Conn,
    partner: &Partner,
    export_id: &str,
    base: &str,
    filter: Filter<'_>,
    now: NaiveDateTime,
) -> Result<String, crate::web::AppError> {
    let mut w = CsvRows::new()?;
    let mut failed = None;
    sharing::picked_pages(
        conn,
        partner,
        Purpose::Sponsorship,
        Want::ALL,
        export_id,
        base,
        now,
        |f| filter.matches(f),
        |page| {
            for s in page {
                if let Err(e) = w.push(&row_of(s, base)) {
                    failed.get_or_insert(e);
                }
            }
            Ok(())
        },
    )?;
    if let Some(e) = failed {
        return Err(crate::web::AppError::Internal(e.to_string()));
    }
    w.finish().map_err(|e| crate::web::AppError::Internal(e.to_string()))
}

/// A day in the CSV, for spreadsheets: "2026-12-07".
fn fmt(t: Option<NaiveDateTime>) -> String {
    t.map(|t| t.date().to_string()).unwrap_or_default()
}

/// The CSV download's text, written row by row.
struct CsvRows(crate::web::csv::Writer<Vec<u8>>);

impl CsvRows {
    fn new() -> Result<CsvRows, crate::web::AppError> {
        let mut w = CsvRows(crate::web::csv::Writer::in_memory());
        w.0.write_record([
            "learner",
            "email",
            "course",
            "run",
            "enrolled_at",
            "last_activity_at",
            "progress_percent",
            "completed_at",
            "certificate",
        ])
        .map_err(|e| crate::web::AppError::Internal(e.to_string()))?;
        Ok(w)
    }

    fn push(&mut self, r: &Row) -> csv::Result<()> {
        self.0.write_record([
            r.learner.as_str(),
            &r.email,
            &r.course,
            &r.run,
            &fmt(r.enrolled_at),
            &fmt(r.last_activity_at),
            &r.progress.map(|p| format!("{p:.1}")).unwrap_or_default(),
            &fmt(r.completed_at),
            r.certificate_url.as_deref().unwrap_or_default(),
        ])
    }

    fn finish(self) -> Result<String, csv::Error> {
        let bytes = self.0.into_inner().map_err(csv::Error::from)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// The chart's width in SVG units: about a phone's content width, so a
/// 14-unit label is drawn at 12 px or more down to a 310 px wide column
/// (wider screens draw it larger, up to the CSS cap).
const CHART_WIDTH: usize = 360;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A horizontal bar chart as inline SVG: `role="img"`, its title, and a
/// description that reads every bar ("Enrolled: 12, Started: 9…"); the
/// page also gives the figures as a table.
pub fn bar_chart(id: &str, title: &str, bars: &[(String, u64)]) -> String {
    let max = bars.iter().map(|(_, v)| *v).max().unwrap_or(1).max(1) as f64;
    let (row_h, label_w, top) = (30, 130, 34);
    let bar_room = (CHART_WIDTH - label_w - 50) as f64;
    let height = top + bars.len() * row_h + 6;
    let desc = bars.iter().map(|(l, v)| format!("{l}: {v}")).collect::<Vec<_>>().join(", ");
    let mut svg = format!(
        r#"<svg class="chart" id="{id}" role="img" aria-labelledby="{id}-t {id}-d" viewBox="0 0 {CHART_WIDTH} {height}" xmlns="http://www.w3.org/2000/svg"><title id="{id}-t">{t}</title><desc id="{id}-d">{d}</desc><text x="0" y="20" font-size="16" font-weight="600" fill="currentColor">{t}</text>"#,
        t = esc(title),
        d = esc(&desc),
    );
    for (i, (label, value)) in bars.iter().enumerate() {
        let y = top + i * row_h;
        let w = if *value == 0 { 0.0 } else { ((*value as f64 / max) * bar_room).max(2.0) };
        svg.push_str(&format!(
            r#"<text x="0" y="{ty}" font-size="14" fill="currentColor">{label}</text><rect class="chart-bar" x="{label_w}" y="{y}" width="{w:.1}" height="20" rx="2"></rect><text x="{vx:.1}" y="{ty}" font-size="14" fill="currentColor">{value}</text>"#,
            ty = y + 15,
            label = esc(label),
            vx = label_w as f64 + w + 6.0,
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// A chart for the page: the SVG and the same figures as table rows.
#[derive(Debug, serde::Serialize)]
pub struct Chart {
    id: &'static str,
    title: &'static str,
    svg: String,
    rows: Vec<ChartRow>,
}

/// One bar of a chart, as a row of its table.
#[derive(Debug, serde::Serialize)]
pub struct ChartRow {
    label: String,
    count: u64,
}

fn chart(id: &'static str, title: &'static str, bars: Vec<(String, u64)>) -> Chart {
    let svg = bar_chart(id, title, &bars);
    Chart { id, title, svg, rows: bars.into_iter().map(|(label, count)| ChartRow { label, count }).collect() }
}

/// The report's page, without the exam results (which the caller reads
/// under their own consent).
pub fn context(partner: &Partner, report: &Report, filter: Filter<'_>, _now: NaiveDateTime) -> ReportPage {
    let summary = &report.summary;
    let n = summary.learners;
    // Exact counts: every learner counted is one the table lists (see the module's doc).
    let funnel = vec![
        ("Enrolled".to_string(), n),
        ("Started".to_string(), summary.started),
        ("Half-way".to_string(), summary.half_way),
        ("Completed".to_string(), summary.completed),
    ];
    let distribution: Vec<(String, u64)> = ["0–24 %", "25–49 %", "50–74 %", "75–99 %", "100 %"]
        .iter()
        .zip(summary.progress)
        .map(|(l, c)| (l.to_string(), c))
        .collect();
    let per_week: Vec<(String, u64)> = report
        .weeks
        .iter()
        .zip(summary.weeks)
        .map(|(monday, v)| (format!("Week of {}", monday.format("%-d %b")), v))
        .collect();
    let (course, status) = (filter.course.unwrap_or(""), filter.status.unwrap_or(""));
    let query =
        format!("course={}&status={}", crate::web::page::url_encode(course), crate::web::page::url_encode(status));
    let page_link = |p: usize| format!("/partners/{}/report?{query}&page={p}", partner.slug);
    let first = (report.page - 1) * PAGE_SIZE;
    ReportPage {
        partner: PartnerLink { slug: partner.slug.clone(), name: partner.name.clone() },
        rows: report
            .rows
            .iter()
            .map(|r| ReportRow {
                learner: r.learner.clone(),
                email: r.email.clone(),
                course: r.course.clone(),
                run: r.run.clone(),
                enrolled_at: r.enrolled_at.map(Day::from),
                last_activity_at: r.last_activity_at.map(Day::from),
                progress: r.progress.map(|p| format!("{p:.0}")),
                completed_at: r.completed_at.map(Day::from),
                certificate: r.certificate.clone(),
            })
            .collect(),
        anyone_shares: report.sharing > 0,
        count: n,
        shown_from: if report.rows.is_empty() { 0 } else { first + 1 },
        shown_to: first + report.rows.len(),
        page: report.page,
        pages: report.pages,
        previous: (report.page > 1).then(|| page_link(report.page - 1)),
        next: (report.page < report.pages).then(|| page_link(report.page + 1)),
        courses: report
            .courses
            .iter()
            .map(|(s, t)| CourseChoice { slug: s.clone(), title: t.clone(), selected: course == s.as_str() })
            .collect(),
        status: status.to_string(),
        query,
        charts: if n == 0 {
            Vec::new()
        } else {
            vec![
                chart("chart-funnel", "Completion funnel", funnel),
                chart("chart-progress", "Progress distribution", distribution),
                chart("chart-weekly", "Completions per week", per_week),
            ]
        },
        exam_results: Vec::new(),
    }
}
