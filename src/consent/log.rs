//! The learner's disclosure log in plain words (SHR-5): what each partner
//! received, for what and in which course, as sentences ("Acme Corp received
//! your name, email address and progress in Climate Science 3 times, last on
//! 6 Dec 2026"), with the learner's decisions about that partner (a
//! withdrawal above all) told in the same words, and each disclosure one
//! click away.
//!
//! [`group`] works on plain [`Entry`] and [`Decision`] values, not on
//! queries: `entries_of` reads them from the disclosure manifests (a
//! manifest per delivered page or send, `super::manifests`).
//!
//! Every word shown for a code is defined here or on the categories
//! (`Category::label`, `Category::short_label`, [`super::FIELDS`]): the
//! page never shows a stored code.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{Categories, Category, Purpose, in_words};
use crate::db::Conn;
use crate::db::schema::{course_runs, courses, departures, enrollments, partners};

/// One disclosure, or `count` alike, as the log store holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Who received it (a partner's name, or the recipient of a legal disclosure).
    pub partner: String,
    /// The purpose's stored name (`sponsorship`, `legal_obligation`…).
    pub purpose: String,
    /// The course it concerned, when it concerned one.
    pub course: Option<String>,
    /// The fields, as disclosure rows name them.
    pub fields: Vec<String>,
    /// `consent`, `deidentified`, `processor`, `legal` or `departure`.
    pub basis: String,
    pub at: NaiveDateTime,
    pub count: u64,
    pub legal_reference: Option<String>,
    pub note: Option<String>,
    /// False for a send the partner never confirmed: told as attempted,
    /// never as shared.
    pub delivered: bool,
}

/// A decision of the learner's (or made for them) about one partner and purpose.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub partner: String,
    pub purpose: String,
    pub course: Option<String>,
    /// `grant`, `decline` or `withdraw`.
    pub action: String,
    /// `learner`, `parent` or `staff`.
    pub actor: String,
    pub categories: Categories,
    pub at: NaiveDateTime,
    pub note: Option<String>,
}

/// One line of a group's detail: a disclosure, or identical ones at one time.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Detail {
    pub when: String,
    pub what: String,
    pub basis: String,
    pub times: u64,
    /// "3 times" when it happened more than once at that time.
    pub repeated: Option<String>,
}

/// What one partner received for one purpose in one course, in words.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Group {
    pub partner: String,
    pub purpose: String,
    pub course: Option<String>,
    /// "Initech received your name … 3 times, last on 6 Dec 2026."; `None`
    /// when nothing was received (only decisions, or notices).
    pub received: Option<String>,
    /// Why: the purpose, and on what basis.
    pub why: String,
    /// Decisions and deletion notices, oldest first, each a sentence.
    pub events: Vec<String>,
    /// Every disclosure, newest first, identical ones collapsed.
    pub detail: Vec<Detail>,
    /// How many disclosures and notices the detail tells of.
    pub total: u64,
    #[serde(skip)]
    pub last: NaiveDateTime,
}

/// The day, for sentences: "6 Dec 2026".
pub fn day(t: NaiveDateTime) -> String {
    t.format("%-d %b %Y").to_string()
}

/// The time, for detail: "6 Dec 2026, 22:50 UTC".
pub fn time(t: NaiveDateTime) -> String {
    t.format("%-d %b %Y, %H:%M UTC").to_string()
}

fn times(n: u64) -> String {
    match n {
        1 => "once".into(),
        2 => "twice".into(),
        n => format!("{n} times"),
    }
}

/// What a purpose is, for the learner.
pub fn purpose_label(purpose: &str) -> &'static str {
    match Purpose::parse(purpose) {
        Some(p) => p.label(),
        None if purpose == "legal_obligation" => "A disclosure the law required",
        None if purpose == super::ledger::ALL_SHARING => "All sharing with partners",
        None => "Another purpose",
    }
}

/// On what a disclosure rested, for the learner.
pub fn basis_label(basis: &str) -> &'static str {
    match basis {
        "consent" => "with your consent",
        "deidentified" => "without your name or email: under a code made for this partner and course run alone",
        "processor" => "as your employer's processor, for the training records it is responsible for",
        "legal" => "because the law required it",
        "departure" => "a notice to delete what it held",
        _ => "on another basis",
    }
}

/// How a decision reached the platform, for the learner.
pub fn method_label(method: &str) -> &'static str {
    match method {
        "web_form" => "on this website",
        "api" => "through a partner's system",
        "email_link" => "through a link sent by email",
        "staff_entry" => "entered by our staff",
        _ => "another way",
    }
}

/// Who made a decision, as the subject of a sentence.
fn actor_label(actor: &str) -> &'static str {
    match actor {
        "parent" => "Your parent or guardian",
        "staff" => "Our staff, for you,",
        _ => "You",
    }
}

/// Why a partner was told to delete, from the departure's reason.
fn departure_reason(reason: &str) -> &'static str {
    match reason {
        "withdrawn" => "after you withdrew your consent",
        "restricted" => "after you restricted all sharing",
        "erased" => "after you asked for your account to be erased",
        "ended" => "as its time to keep them ended",
        "replaced" => "as newer records replace them",
        _ => "",
    }
}

/// The fields of disclosures in words: the categories they belong to, a
/// category named directly (as legal disclosures may), else the words staff
/// entered. The identifier every record carries is told by the basis.
pub fn fields_in_words<S: AsRef<str>>(fields: &[S]) -> String {
    let mut cats = BTreeSet::new();
    let mut other = Vec::new();
    for f in fields {
        let f = f.as_ref().trim();
        if let Some(c) = Category::of_field(f).or_else(|| Category::parse(f)) {
            cats.insert(c);
        } else if !f.is_empty() && !super::FIELDS.iter().any(|known| known.code == f) && !other.contains(&f) {
            other.push(f);
        }
    }
    let known = Categories(cats).in_words();
    let mut parts: Vec<String> = Vec::new();
    if !known.is_empty() {
        parts.push(known);
    }
    parts.extend(other.into_iter().map(str::to_string));
    if parts.is_empty() { "a code in place of your name".into() } else { in_words(&parts) }
}

/// A decision in words: "You withdrew your consent on 6 Dec 2026: Initech
/// receives nothing new under it."
pub fn decision_sentence(d: &Decision) -> String {
    let who = actor_label(&d.actor);
    let what = d.categories.in_words();
    let what = if what.is_empty() { String::new() } else { format!(" to share {what}") };
    let on = day(d.at);
    let note = d.note.as_deref().map(|n| format!(" (“{n}”)")).unwrap_or_default();
    match d.action.as_str() {
        "grant" => format!("{who} agreed{what} on {on}{note}."),
        "decline" => format!("{who} declined{what} on {on}{note}; {} receives nothing identifying you.", d.partner),
        "withdraw" => format!(
            "{who} withdrew your consent{what} on {on}{note}; {} receives nothing new about you under it from then on.",
            d.partner
        ),
        "restrict" => format!("{who} restricted all sharing on {on}{note}."),
        "lift" => format!("{who} lifted the restriction of sharing on {on}{note}."),
        _ => format!("{who} decided on {on}{note}."),
    }
}

/// Groups entries and decisions by partner, purpose and course, most
/// recent first.
pub fn group(entries: &[Entry], decisions: &[Decision]) -> Vec<Group> {
    type Key = (String, String, Option<String>);
    #[derive(Default)]
    struct Acc {
        received: u64,
        fields: Vec<String>,
        bases: BTreeSet<String>,
        last_received: Option<NaiveDateTime>,
        last: Option<NaiveDateTime>,
        events: Vec<(NaiveDateTime, String)>,
        detail: BTreeMap<(std::cmp::Reverse<NaiveDateTime>, String, String), u64>,
    }
    let mut groups: HashMap<Key, Acc> = HashMap::new();
    for e in entries {
        let acc = groups.entry((e.partner.clone(), e.purpose.clone(), e.course.clone())).or_default();
        acc.last = acc.last.max(Some(e.at));
        if e.basis == "departure" {
            let reason = e.note.as_deref().and_then(|n| n.rsplit_once('(')).map(|(_, r)| r.trim_end_matches(')'));
            let why = reason.map(departure_reason).filter(|r| !r.is_empty()).map(|r| format!(", {r}"));
            acc.events.push((
                e.at,
                format!(
                    "{} was told on {} to delete what it holds about you{}.",
                    e.partner,
                    day(e.at),
                    why.unwrap_or_default()
                ),
            ));
            let what = "Told to delete what it holds about you".to_string();
            *acc.detail.entry((std::cmp::Reverse(e.at), what, basis_label(&e.basis).to_string())).or_default() +=
                e.count;
            continue;
        }
        if !e.delivered {
            let what = fields_in_words(&e.fields);
            acc.events.push((
                e.at,
                format!(
                    "On {} we tried to send {} your {what}; it never arrived, so it was not shared.",
                    day(e.at),
                    e.partner
                ),
            ));
            let what = format!("Attempted, never arrived: {what}");
            *acc.detail.entry((std::cmp::Reverse(e.at), what, basis_label(&e.basis).to_string())).or_default() +=
                e.count;
            continue;
        }
        acc.received += e.count;
        acc.last_received = acc.last_received.max(Some(e.at));
        for f in &e.fields {
            if !acc.fields.contains(f) {
                acc.fields.push(f.clone());
            }
        }
        let mut basis = basis_label(&e.basis).to_string();
        if let Some(r) = &e.legal_reference {
            basis = format!("{basis} ({r})");
        }
        acc.bases.insert(basis.clone());
        let what = fields_in_words(&e.fields);
        let mut chars = what.chars();
        let what = chars.next().map(|c| c.to_uppercase().chain(chars).collect::<String>()).unwrap_or_default();
        let what = match &e.note {
            Some(n) if !n.is_empty() => format!("{what}. {n}"),
            _ => what,
        };
        *acc.detail.entry((std::cmp::Reverse(e.at), what, basis)).or_default() += e.count;
    }
    for d in decisions {
        let acc = groups.entry((d.partner.clone(), d.purpose.clone(), d.course.clone())).or_default();
        acc.last = acc.last.max(Some(d.at));
        acc.events.push((d.at, decision_sentence(d)));
    }
    let mut out: Vec<Group> = groups
        .into_iter()
        .map(|((partner, purpose, course), mut acc)| {
            acc.events.sort_by_key(|(at, _)| *at);
            let received = acc.last_received.map(|last| {
                let place = course.as_deref().map(|c| format!(" in {c}")).unwrap_or_default();
                format!(
                    "{partner} received {}{place} {}, last on {}.",
                    fields_in_words(&acc.fields),
                    times(acc.received),
                    day(last)
                )
            });
            let mut why = purpose_label(&purpose).to_string();
            if !acc.bases.is_empty() {
                why = format!("{why}, {}", in_words(&acc.bases.iter().collect::<Vec<_>>()));
            }
            let mut detail = Vec::new();
            for ((std::cmp::Reverse(at), what, basis), n) in acc.detail {
                detail.push(Detail { when: time(at), what, basis, times: n, repeated: None });
            }
            // Identical lines within the same minute read as one, with a count.
            detail.dedup_by(|next, kept| {
                let same = next.when == kept.when && next.what == kept.what && next.basis == kept.basis;
                if same {
                    kept.times += next.times;
                }
                same
            });
            for d in &mut detail {
                d.repeated = (d.times > 1).then(|| times(d.times));
            }
            let total = detail.iter().map(|d| d.times).sum();
            Group {
                partner,
                purpose,
                course,
                received,
                why,
                events: acc.events.into_iter().map(|(_, s)| s).collect(),
                detail,
                total,
                last: acc.last.unwrap_or_default(),
            }
        })
        .collect();
    out.sort_by(|a, b| b.last.cmp(&a.last).then_with(|| a.partner.cmp(&b.partner)));
    out
}

/// Course titles by record: enrollments, exam bookings and results,
/// departures. Keys that name no course map to nothing.
fn courses_of(conn: &mut Conn, keys: &[&str]) -> QueryResult<HashMap<String, String>> {
    use crate::db::schema::{exam_bookings, exam_results, exam_sessions};
    let ids = |prefix: &str| -> Vec<i64> {
        keys.iter().filter_map(|k| k.strip_prefix(prefix)?.parse().ok()).collect::<BTreeSet<_>>().into_iter().collect()
    };
    let mut out = HashMap::new();
    let rows: Vec<(i64, String)> = enrollments::table
        .inner_join(course_runs::table.inner_join(courses::table))
        .filter(enrollments::id.eq_any(ids("enrollment:")))
        .select((enrollments::id, courses::title))
        .load(conn)?;
    out.extend(rows.into_iter().map(|(id, t)| (format!("enrollment:{id}"), t)));
    let rows: Vec<(i64, String)> = departures::table
        .inner_join(course_runs::table.on(course_runs::id.eq(departures::run_id)))
        .inner_join(courses::table.on(courses::id.eq(course_runs::course_id)))
        .filter(departures::id.eq_any(ids("departure:")))
        .select((departures::id, courses::title))
        .load(conn)?;
    out.extend(rows.into_iter().map(|(id, t)| (format!("departure:{id}"), t)));
    let rows: Vec<(i64, String)> = exam_bookings::table
        .inner_join(exam_sessions::table.inner_join(courses::table))
        .filter(exam_bookings::id.eq_any(ids("exam_booking:")))
        .select((exam_bookings::id, courses::title))
        .load(conn)?;
    out.extend(rows.into_iter().map(|(id, t)| (format!("exam_booking:{id}"), t)));
    let rows: Vec<(i64, String)> = exam_results::table
        .inner_join(exam_bookings::table.inner_join(exam_sessions::table.inner_join(courses::table)))
        .filter(exam_results::id.eq_any(ids("exam_result:")))
        .select((exam_results::id, courses::title))
        .load(conn)?;
    out.extend(rows.into_iter().map(|(id, t)| (format!("exam_result:{id}"), t)));
    Ok(out)
}

/// The course a consent's scope covers (`run:…`, `course:…`).
fn course_of_scope(conn: &mut Conn, scope: &str) -> QueryResult<Option<String>> {
    if let Some(run_id) = scope.strip_prefix("run:").and_then(|s| s.parse::<i64>().ok()) {
        return course_runs::table
            .inner_join(courses::table)
            .filter(course_runs::id.eq(run_id))
            .select(courses::title)
            .first(conn)
            .optional();
    }
    if let Some(course_id) = scope.strip_prefix("course:").and_then(|s| s.parse::<i64>().ok()) {
        return courses::table.find(course_id).select(courses::title).first(conn).optional();
    }
    Ok(None)
}

/// The log entries of a learner's disclosures, read from the manifests, one
/// per record, newest first, at most `limit`.
pub fn entries_of(conn: &mut Conn, user_id: i64, limit: i64) -> QueryResult<Vec<Entry>> {
    let rows = super::sharing::disclosures_of(conn, user_id, limit)?;
    let keys: Vec<&str> = rows.iter().map(|d| d.record_key.as_str()).collect();
    let courses = courses_of(conn, &keys)?;
    Ok(rows
        .iter()
        .map(|d| Entry {
            partner: d.recipient.clone(),
            purpose: d.purpose.clone(),
            course: courses.get(&d.record_key).cloned(),
            fields: d.fields.split(',').map(str::to_string).filter(|f| !f.is_empty()).collect(),
            basis: d.basis.clone(),
            at: d.created_at,
            count: 1,
            legal_reference: d.legal_reference.clone(),
            note: d.note.clone(),
            delivered: d.delivered,
        })
        .collect())
}

/// A learner's decisions about partners, from their ledger rows.
pub fn decisions_of(conn: &mut Conn, history: &[super::ledger::LedgerRow]) -> QueryResult<Vec<Decision>> {
    let ids: Vec<i64> = history.iter().filter_map(|r| r.partner_id).collect();
    let names: HashMap<i64, String> = partners::table
        .filter(partners::id.eq_any(ids))
        .select((partners::id, partners::name))
        .load(conn)?
        .into_iter()
        .collect();
    let mut scopes: HashMap<String, Option<String>> = HashMap::new();
    let mut out = Vec::new();
    for r in history {
        let Some(partner) = r.partner_id.and_then(|p| names.get(&p)) else { continue };
        let course = match scopes.get(&r.scope) {
            Some(c) => c.clone(),
            None => {
                let c = course_of_scope(conn, &r.scope)?;
                scopes.insert(r.scope.clone(), c.clone());
                c
            }
        };
        out.push(Decision {
            partner: partner.clone(),
            purpose: r.purpose.clone(),
            course,
            action: r.action.clone(),
            actor: r.actor.clone(),
            categories: Categories::parse(&r.categories),
            at: r.created_at,
            note: r.note.clone(),
        });
    }
    Ok(out)
}

/// A learner's whole log in the page's words, as Markdown: the readable
/// copy in their data download (RGT-1).
pub fn as_markdown(conn: &mut Conn, user_id: i64) -> QueryResult<String> {
    let entries = entries_of(conn, user_id, 1_000_000)?;
    let history = super::ledger::for_user(conn, user_id)?;
    let decisions = decisions_of(conn, &history)?;
    let mut text = String::from(
        "# What was shared about you\n\nIn the words of your Sharing page: who received what about you, for what, \
         on what basis, and your decisions about each partner. Times are UTC.\n",
    );
    let groups = group(&entries, &decisions);
    if groups.is_empty() {
        text.push_str(
            "\nNothing about you has been shared with anyone, and you have made no decision about a partner.\n",
        );
    }
    for g in groups {
        let place = g.course.as_deref().map(|c| format!(", {c}")).unwrap_or_default();
        text.push_str(&format!("\n## {}{place}\n\n", g.partner));
        if let Some(r) = &g.received {
            text.push_str(&format!("{r}\n\n"));
        }
        text.push_str(&format!("Why: {}.\n", g.why));
        for e in &g.events {
            text.push_str(&format!("\n- {e}"));
        }
        if !g.events.is_empty() {
            text.push('\n');
        }
        if !g.detail.is_empty() {
            text.push_str("\nEach time:\n\n");
            for d in &g.detail {
                let n = d.repeated.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
                text.push_str(&format!("- {}: {}; {}{n}\n", d.when, d.what, d.basis));
            }
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: u32, m: u32) -> NaiveDateTime {
        chrono::NaiveDate::from_ymd_opt(2026, 12, 6).unwrap().and_hms_opt(h, m, 0).unwrap()
    }

    fn entry(fields: &str, basis: &str, t: NaiveDateTime) -> Entry {
        Entry {
            partner: "Acme Corp".into(),
            purpose: "sponsorship".into(),
            course: Some("Climate Science".into()),
            fields: fields.split(',').map(str::to_string).collect(),
            basis: basis.into(),
            at: t,
            count: 1,
            legal_reference: None,
            note: None,
            delivered: true,
        }
    }

    #[test]
    fn a_partner_and_purpose_read_as_one_sentence_with_identical_rows_collapsed() {
        let fields = "learner.pseudonym,learner.name,learner.email,progress.units_completed,progress.percent";
        let entries = vec![
            entry(fields, "consent", at(22, 50)),
            entry(fields, "consent", at(22, 50)),
            entry(fields, "consent", at(9, 5)),
        ];
        let groups = group(&entries, &[]);
        assert_eq!(groups.len(), 1);
        let g = &groups[0];
        assert_eq!(
            g.received.as_deref(),
            Some(
                "Acme Corp received your name, email address and progress in Climate Science 3 times, last on 6 Dec 2026."
            )
        );
        assert_eq!(g.why, "Progress reports for the sponsor who pays for your place, with your consent");
        assert_eq!(g.detail.len(), 2, "the two alike at 22:50 are one line: {:?}", g.detail);
        assert_eq!((g.detail[0].when.as_str(), g.detail[0].times), ("6 Dec 2026, 22:50 UTC", 2));
        assert_eq!(g.detail[0].what, "Your name, email address and progress");
        for text in [&g.why, g.received.as_ref().unwrap(), &g.detail[0].what, &g.detail[0].basis] {
            assert!(!text.contains("learner.") && !text.contains("progress."), "no stored code: {text}");
        }
    }

    #[test]
    fn a_withdrawal_reads_in_the_same_group_and_words() {
        let withdrawal = Decision {
            partner: "Acme Corp".into(),
            purpose: "sponsorship".into(),
            course: Some("Climate Science".into()),
            action: "withdraw".into(),
            actor: "learner".into(),
            categories: Categories::of([Category::ProfileName, Category::Progress]),
            at: at(23, 0),
            note: None,
        };
        let groups = group(&[entry("learner.name,progress.percent", "consent", at(22, 0))], &[withdrawal]);
        assert_eq!(groups.len(), 1);
        assert_eq!(
            groups[0].events,
            vec![
                "You withdrew your consent to share your name and progress on 6 Dec 2026; Acme Corp receives nothing new about you under it from then on."
            ]
        );
    }

    #[test]
    fn words_staff_entered_read_as_entered() {
        let mut e = entry("École file 12", "legal", at(8, 0));
        e.legal_reference = Some("Order 2026/1187".into());
        let g = &group(&[e], &[])[0];
        assert_eq!(g.detail[0].what, "École file 12");
        assert_eq!(g.detail[0].basis, "because the law required it (Order 2026/1187)");
    }

    #[test]
    fn codes_never_show() {
        assert_eq!(fields_in_words(&["learner.pseudonym", "progress.units_total"]), "your progress");
        assert_eq!(fields_in_words(&["learner.pseudonym"]), "a code in place of your name");
        assert_eq!(fields_in_words(&["profile.name", "Court file 12"]), "your name and Court file 12");
        assert!(basis_label("deidentified").contains("code"));
        assert_eq!(method_label("web_form"), "on this website");
    }
}
