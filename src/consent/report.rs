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
//! The charts are written here rather than with a plotting crate: three
//! horizontal bar charts of at most eight bars need no scales or layout
//! engine, and they must carry what such a crate's SVG output does not
//! (`role="img"`, `<title>`, `<desc>`, a viewBox sized for a phone so
//! labels stay at least 12 px).

use std::collections::BTreeMap;

use chrono::{Datelike, Duration, NaiveDateTime};
use diesel::QueryResult;

use super::partners::Partner;
use super::sharing::{self, Figures, Want};
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

/// A report as the gate allows it right now, for one filter.
pub struct Report {
    /// Figures of every learner matching the filter: what the charts count.
    pub figures: Vec<Figures>,
    /// The learners shown, disclosed (SHR-5): one page, or all for the CSV.
    pub rows: Vec<Row>,
    /// The page shown (1-based) and how many there are.
    pub page: usize,
    pub pages: usize,
    /// Every course in the report, for the filter, by slug.
    pub courses: Vec<(String, String)>,
    /// Learners who share with the sponsor at all, whatever the filter.
    pub sharing: usize,
}

/// Which learners a report covers, and which page of them it shows
/// (`None`: all of them, as the CSV download does).
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter<'a> {
    pub course: Option<&'a str>,
    pub status: Option<&'a str>,
    pub page: Option<usize>,
}

impl Filter<'_> {
    fn matches(&self, f: &Figures) -> bool {
        self.course.is_none_or(|c| c.is_empty() || f.course_slug == c)
            && match self.status {
                Some("completed") => f.completed_at.is_some(),
                Some("in_progress") => f.completed_at.is_none(),
                _ => true,
            }
    }
}

/// Builds the report through the gate. Only the rows shown leave and get a
/// disclosure row; the charts count every matching learner, and show no
/// group smaller than [`K_ANONYMITY`].
pub fn build(
    conn: &mut Conn,
    partner: &Partner,
    export_id: &str,
    base: &str,
    filter: Filter<'_>,
    now: NaiveDateTime,
) -> QueryResult<Report> {
    let mut matching = Vec::new();
    let mut courses = Vec::new();
    let mut shown = (1, 1);
    let mut sharing = 0;
    let (figures, shared) =
        sharing::picked(conn, partner, Purpose::Sponsorship, Want::ALL, export_id, base, now, |all| {
            sharing = all.len();
            matching = (0..all.len()).filter(|i| filter.matches(&all[*i])).collect::<Vec<_>>();
            courses = all.iter().map(|f| (f.course_slug.clone(), f.course_title.clone())).collect();
            let mut keep = vec![false; all.len()];
            let range = match filter.page {
                Some(page) => {
                    let pages = matching.len().div_ceil(PAGE_SIZE).max(1);
                    let page = page.clamp(1, pages);
                    shown = (page, pages);
                    let start = (page - 1) * PAGE_SIZE;
                    start..(start + PAGE_SIZE).min(matching.len())
                }
                None => 0..matching.len(),
            };
            for i in &matching[range] {
                keep[*i] = true;
            }
            keep
        })?;
    courses.sort();
    courses.dedup();
    let mut figures: Vec<Option<Figures>> = figures.into_iter().map(Some).collect();
    let figures = matching.iter().filter_map(|i| figures[*i].take()).collect();
    let rows = shared
        .into_iter()
        .map(|s| Row {
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
        })
        .collect();
    Ok(Report { figures, rows, page: shown.0, pages: shown.1, courses, sharing })
}

/// A day in the CSV, for spreadsheets: "2026-12-07".
fn fmt(t: Option<NaiveDateTime>) -> String {
    t.map(|t| t.date().to_string()).unwrap_or_default()
}

pub fn csv(rows: &[Row]) -> Result<String, csv::Error> {
    let mut w = crate::web::csv::Writer::in_memory();
    w.write_record([
        "learner",
        "email",
        "course",
        "run",
        "enrolled_at",
        "last_activity_at",
        "progress_percent",
        "completed_at",
        "certificate",
    ])?;
    for r in rows {
        w.write_record([
            r.learner.as_str(),
            &r.email,
            &r.course,
            &r.run,
            &fmt(r.enrolled_at),
            &fmt(r.last_activity_at),
            &r.progress.map(|p| format!("{p:.1}")).unwrap_or_default(),
            &fmt(r.completed_at),
            r.certificate_url.as_deref().unwrap_or_default(),
        ])?;
    }
    let bytes = w.into_inner().map_err(csv::Error::from)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
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
pub fn context(partner: &Partner, report: &Report, filter: Filter<'_>, now: NaiveDateTime) -> ReportPage {
    let figures = &report.figures;
    let n = figures.len() as u64;
    let started = figures.iter().filter(|r| r.progress_percent.unwrap_or(0.0) > 0.0).count() as u64;
    let half = figures.iter().filter(|r| r.progress_percent.unwrap_or(0.0) >= 50.0).count() as u64;
    let done = figures.iter().filter(|r| r.completed_at.is_some()).count() as u64;
    // Exact counts: every learner counted is one the table lists (see the module's doc).
    let funnel = vec![
        ("Enrolled".to_string(), n),
        ("Started".to_string(), started),
        ("Half-way".to_string(), half),
        ("Completed".to_string(), done),
    ];
    let mut dist = [0u64; 5];
    for r in figures {
        let p = r.progress_percent.unwrap_or(0.0);
        let i = if p >= 100.0 { 4 } else { (p / 25.0).floor().clamp(0.0, 3.0) as usize };
        dist[i] += 1;
    }
    let distribution: Vec<(String, u64)> = ["0–24 %", "25–49 %", "50–74 %", "75–99 %", "100 %"]
        .iter()
        .zip(dist)
        .map(|(l, c)| (l.to_string(), c))
        .collect();
    let mut weeks: BTreeMap<String, u64> = BTreeMap::new();
    for w in 0..8 {
        let d = (now - Duration::weeks(w)).date();
        let monday = d - Duration::days(d.weekday().num_days_from_monday() as i64);
        weeks.insert(monday.format("%Y-%m-%d").to_string(), 0u64);
    }
    for r in figures {
        if let Some(c) = r.completed_at {
            let d = c.date();
            let monday = d - Duration::days(d.weekday().num_days_from_monday() as i64);
            if let Some(v) = weeks.get_mut(&monday.format("%Y-%m-%d").to_string()) {
                *v += 1;
            }
        }
    }
    let per_week: Vec<(String, u64)> = weeks
        .into_iter()
        .map(|(k, v)| {
            let day =
                chrono::NaiveDate::parse_from_str(&k, "%Y-%m-%d").map_or(k.clone(), |d| d.format("%-d %b").to_string());
            (format!("Week of {day}"), v)
        })
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
