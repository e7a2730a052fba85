//! The sponsor completion report: one row per consented learner and
//! sponsored run, built only from what the gate yields, with summary charts
//! drawn as server-side SVG. Chart groups smaller than `K_ANONYMITY` are
//! hidden (SHR-6).

use std::collections::BTreeMap;

use chrono::{Datelike, Duration, NaiveDateTime};
use diesel::QueryResult;
use serde_json::{Value, json};

use super::partners::Partner;
use super::sharing::{self, Figures, Want};
use crate::consent::Purpose;
use crate::db::Conn;

/// Smallest group an aggregate may show.
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
    let (figures, shared) =
        sharing::picked(conn, partner, Purpose::Sponsorship, Want::ALL, export_id, base, now, |all| {
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
        })
        .collect();
    Ok(Report { figures, rows, page: shown.0, pages: shown.1, courses })
}

fn fmt(t: Option<NaiveDateTime>) -> String {
    t.map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_default()
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
            "",
        ])?;
    }
    let bytes = w.into_inner().map_err(csv::Error::from)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// A horizontal bar chart as inline SVG. Suppressed bars show "fewer than 5".
pub fn bar_chart(title: &str, bars: &[(String, Option<u64>)]) -> String {
    let max = bars.iter().filter_map(|(_, v)| *v).max().unwrap_or(1).max(1) as f64;
    let row_h = 26;
    let height = 30 + bars.len() * row_h;
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let mut svg = format!(
        r#"<svg class="chart" role="img" aria-label="{t}" viewBox="0 0 520 {height}" width="100%" xmlns="http://www.w3.org/2000/svg"><title>{t}</title><text x="0" y="16" font-size="14" font-weight="600">{t}</text>"#,
        t = esc(title)
    );
    for (i, (label, value)) in bars.iter().enumerate() {
        let y = 28 + i * row_h;
        svg.push_str(&format!(r#"<text x="0" y="{}" font-size="12">{}</text>"#, y + 15, esc(label)));
        match value {
            Some(v) => {
                let w = ((*v as f64 / max) * 260.0).max(1.0);
                svg.push_str(&format!(
                    r##"<rect x="170" y="{y}" width="{w:.1}" height="18" fill="#3730a3"></rect><text x="{}" y="{}" font-size="12">{v}</text>"##,
                    175.0 + w,
                    y + 14
                ));
            }
            None => svg.push_str(&format!(
                r##"<text x="170" y="{}" font-size="12" fill="#6b7280">fewer than {K_ANONYMITY} (hidden)</text>"##,
                y + 14
            )),
        }
    }
    svg.push_str("</svg>");
    svg
}

pub fn context(partner: &Partner, report: &Report, filter: Filter<'_>, now: NaiveDateTime) -> Value {
    let figures = &report.figures;
    let n = figures.len() as u64;
    let started = figures.iter().filter(|r| r.progress_percent.unwrap_or(0.0) > 0.0).count() as u64;
    let half = figures.iter().filter(|r| r.progress_percent.unwrap_or(0.0) >= 50.0).count() as u64;
    let done = figures.iter().filter(|r| r.completed_at.is_some()).count() as u64;
    let funnel = vec![
        ("Enrolled".to_string(), suppress(n)),
        ("Started".to_string(), suppress(started)),
        ("Half-way".to_string(), suppress(half)),
        ("Completed".to_string(), suppress(done)),
    ];
    let mut dist = [0u64; 5];
    for r in figures {
        let p = r.progress_percent.unwrap_or(0.0);
        let i = if p >= 100.0 { 4 } else { (p / 25.0).floor().clamp(0.0, 3.0) as usize };
        dist[i] += 1;
    }
    let distribution: Vec<(String, Option<u64>)> = ["0–24 %", "25–49 %", "50–74 %", "75–99 %", "100 %"]
        .iter()
        .zip(dist)
        .map(|(l, c)| (l.to_string(), suppress(c)))
        .collect();
    let mut weeks: BTreeMap<String, u64> = BTreeMap::new();
    for w in 0..8 {
        let d = (now - Duration::weeks(w)).date();
        let monday = d - Duration::days(d.weekday().num_days_from_monday() as i64);
        weeks.insert(monday.format("%Y-%m-%d").to_string(), 0);
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
    let per_week: Vec<(String, Option<u64>)> =
        weeks.into_iter().map(|(k, v)| (format!("Week of {k}"), suppress(v))).collect();
    let (course, status) = (filter.course.unwrap_or(""), filter.status.unwrap_or(""));
    let query =
        format!("course={}&status={}", crate::web::page::url_encode(course), crate::web::page::url_encode(status));
    let page_link = |p: usize| format!("/partners/{}/report?{query}&page={p}", partner.slug);
    let first = (report.page - 1) * PAGE_SIZE;
    json!({
        "partner": { "slug": partner.slug, "name": partner.name },
        "rows": report.rows.iter().map(|r| json!({
            "learner": r.learner, "email": r.email, "course": r.course, "run": r.run,
            "enrolled_at": fmt(r.enrolled_at), "last_activity_at": fmt(r.last_activity_at),
            "progress": r.progress.map(|p| format!("{p:.0}")), "completed_at": fmt(r.completed_at),
        })).collect::<Vec<_>>(),
        "count": n,
        "shown_from": if report.rows.is_empty() { 0 } else { first + 1 },
        "shown_to": first + report.rows.len(),
        "page": report.page,
        "pages": report.pages,
        "previous": (report.page > 1).then(|| page_link(report.page - 1)),
        "next": (report.page < report.pages).then(|| page_link(report.page + 1)),
        "courses": report.courses.iter().map(|(s, t)| json!({ "slug": s, "title": t, "selected": course == s.as_str() })).collect::<Vec<_>>(),
        "status": status,
        "query": query,
        "funnel_svg": bar_chart("Completion funnel", &funnel),
        "distribution_svg": bar_chart("Progress distribution", &distribution),
        "weekly_svg": bar_chart("Completions per week", &per_week),
        "k": K_ANONYMITY,
    })
}
