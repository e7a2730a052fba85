//! Survey answers cannot be linked to the learners who gave them (CRS-6).
//!
//! Several learners answer; the test then reads the database as anyone who
//! holds a copy of it could, and tries every way it has to pair the readable
//! answers with the "who answered" rows: physical row order, hidden row ids
//! (SQLite `rowid`, PostgreSQL `ctid`), the transaction that wrote a row
//! (PostgreSQL `xmin`), every column (ids, times, to any precision), and the
//! order of the comments on the staff page. Each answer carries a comment
//! naming its author, so the test knows when a pairing is right.

use std::collections::{BTreeMap, HashMap};

use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text};
use lyceum::db::DbConnection;
use rocket::http::Status;

use crate::common::TestApp;
use crate::learning::seed_course;
use crate::on_both;
use crate::privacy::staff;
use crate::sharing::{as_user, run, user_id, verified};

/// The group size the site is configured with (the default), and the
/// released group from which comments show.
const GROUP: usize = 5;
const COMMENTS: usize = 10;
/// Learners who answer: four whole groups and two more.
const LEARNERS: usize = 22;

/// Columns that are the answer itself, not a way to order or join rows.
const CONTENT: [&str; 4] = ["rating", "difficulty", "recommend", "comment"];

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct Cell {
    #[diesel(sql_type = Nullable<Text>)]
    who: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    key: Option<String>,
}

fn load<T: QueryableByName<diesel::sqlite::Sqlite> + QueryableByName<diesel::pg::Pg> + 'static>(
    conn: &mut DbConnection,
    sql: &str,
) -> Vec<T> {
    match conn {
        DbConnection::Sqlite(c) => diesel::sql_query(sql).load(c),
        DbConnection::Pg(c) => diesel::sql_query(sql).load(c),
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The survey tables and, for each, its columns.
fn survey_tables(conn: &mut DbConnection) -> BTreeMap<String, Vec<String>> {
    let sqlite = matches!(conn, DbConnection::Sqlite(_));
    let tables: Vec<Name> = if sqlite {
        load(conn, "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'survey%'")
    } else {
        load(
            conn,
            "SELECT table_name::text AS name FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name LIKE 'survey%'",
        )
    };
    tables
        .into_iter()
        .map(|t| {
            let columns: Vec<Name> = if sqlite {
                load(conn, &format!("SELECT name FROM pragma_table_info('{}')", t.name))
            } else {
                load(
                    conn,
                    &format!(
                        "SELECT column_name::text AS name FROM information_schema.columns \
                         WHERE table_schema = current_schema() AND table_name = '{}'",
                        t.name
                    ),
                )
            };
            (t.name, columns.into_iter().map(|c| c.name).collect())
        })
        .collect()
}

/// One row as a reader sees it: whose it is (known to the test only) and
/// every key the reader could order or join by.
struct Row {
    who: i64,
    keys: BTreeMap<String, Option<String>>,
}

/// Whether a key is a position (row order, hidden row id): such keys pair
/// rows by rank, not by equal or nearby values.
fn positional(key: &str) -> bool {
    matches!(key, "scan" | "rowid" | "ctid")
}

/// Every row of `table` with every key: the scan position, the hidden row
/// id, the writing transaction, and each column in `columns`, read in one
/// query so that the scan order is one order.
fn rows(
    conn: &mut DbConnection,
    table: &str,
    who: &str,
    columns: &[String],
    author: &dyn Fn(&str) -> Option<i64>,
) -> Vec<Row> {
    let sqlite = matches!(conn, DbConnection::Sqlite(_));
    let text = |e: &str| if sqlite { format!("CAST({e} AS TEXT)") } else { format!("({e})::text") };
    let mut names: Vec<String> = if sqlite { vec!["rowid".into()] } else { vec!["ctid".into(), "xmin".into()] };
    names.extend(columns.iter().cloned());
    let key = names.iter().map(|n| format!("COALESCE({}, '~')", text(n))).collect::<Vec<_>>().join(" || '|' || ");
    let cells: Vec<Cell> = load(conn, &format!("SELECT {} AS who, {key} AS key FROM {table}", text(who)));
    cells
        .into_iter()
        .filter_map(|c| Some((c.who.as_deref().and_then(author)?, c.key.unwrap_or_default())))
        .enumerate()
        .map(|(i, (who, key))| {
            let mut keys: BTreeMap<String, Option<String>> = BTreeMap::new();
            keys.insert("scan".into(), Some(i.to_string()));
            for (name, v) in names.iter().zip(key.split('|')) {
                keys.insert(name.clone(), (v != "~").then(|| v.to_string()));
            }
            Row { who, keys }
        })
        .collect()
}

/// A key value made comparable: numbers as numbers, `(page,item)` as a
/// pair, times as microseconds, anything else as text.
#[derive(Clone, Debug, PartialEq, PartialOrd)]
enum Value {
    Number(Vec<i128>),
    Text(String),
}

fn time(s: &str) -> Option<i128> {
    let s = s.trim().trim_end_matches("+00").trim_end_matches('Z');
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(s, f).ok())
        .or_else(|| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)))
        .map(|t| i128::from(t.and_utc().timestamp_micros()))
}

fn value(s: &str) -> Value {
    if let Ok(n) = s.parse::<i128>() {
        return Value::Number(vec![n]);
    }
    if let Some(t) = time(s) {
        return Value::Number(vec![t]);
    }
    let inner = s.trim_start_matches('(').trim_end_matches(')');
    let parts: Vec<Option<i128>> = inner.split(',').map(|p| p.trim().parse().ok()).collect();
    if s.starts_with('(') && parts.iter().all(Option::is_some) {
        return Value::Number(parts.into_iter().flatten().collect());
    }
    Value::Text(s.to_string())
}

/// The rows sorted by `key` (ties keep the scan order), the authors in that order.
fn ranked(rows: &[Row], key: &str, descending: bool) -> Vec<i64> {
    let mut order: Vec<(Option<Value>, usize, i64)> =
        rows.iter().enumerate().map(|(i, r)| (r.keys[key].as_deref().map(value), i, r.who)).collect();
    order.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal).then(a.1.cmp(&b.1)));
    if descending {
        order.reverse();
    }
    order.into_iter().map(|(_, _, who)| who).collect()
}

/// Right pairings when the i-th answer is paired with the i-th "who answered"
/// row, aligned at the start or at the end.
fn pairing_hits(answers: &[i64], completions: &[i64]) -> usize {
    let n = answers.len().min(completions.len());
    let head = (0..n).filter(|&i| answers[i] == completions[i]).count();
    let (a, c) = (&answers[answers.len() - n..], &completions[completions.len() - n..]);
    let tail = (0..n).filter(|&i| a[i] == c[i]).count();
    head.max(tail)
}

/// One-to-one links by equal or nearest values: an answer whose nearest
/// "who answered" row is unique, and nearest to no other answer, is linked
/// to it. Returns the number of such links that are right.
fn nearest_hits(answers: &[Row], ka: &str, completions: &[Row], kc: &str, precision: i128) -> usize {
    let number = |v: &Option<String>| match v.as_deref().map(value) {
        Some(Value::Number(n)) if n.len() == 1 => Some(n[0].div_euclid(precision)),
        _ => None,
    };
    let texts = |v: &Option<String>| match v.as_deref().map(value) {
        Some(Value::Text(t)) => Some(t),
        _ => None,
    };
    let mut links: Vec<(i64, usize)> = Vec::new();
    for a in answers {
        let candidates: Vec<usize> = if let Some(x) = number(&a.keys[ka]) {
            let distances: Vec<Option<i128>> =
                completions.iter().map(|c| number(&c.keys[kc]).map(|y| (x - y).abs())).collect();
            let Some(best) = distances.iter().flatten().min().copied() else { continue };
            (0..completions.len()).filter(|&i| distances[i] == Some(best)).collect()
        } else if let Some(t) = texts(&a.keys[ka]) {
            (0..completions.len()).filter(|&i| texts(&completions[i].keys[kc]).as_ref() == Some(&t)).collect()
        } else {
            continue;
        };
        if let [only] = candidates[..] {
            links.push((a.who, only));
        }
    }
    let mut per_completion: HashMap<usize, usize> = HashMap::new();
    for (_, c) in &links {
        *per_completion.entry(*c).or_default() += 1;
    }
    links.iter().filter(|(who, c)| per_completion[c] == 1 && completions[*c].who == *who).count()
}

/// The staff page's section for the run, and the number of answers it shows.
async fn staff_view(app: &TestApp) -> (usize, String) {
    let (status, page) = app.get("/studio/courses/intro-python/survey").await;
    assert_eq!(status, Status::Ok);
    let section = regex::Regex::new(r#"(?s)<section[^>]*id="run-[^"]*">.*?</section>"#)
        .unwrap()
        .find(&page)
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| panic!("a section for the run: {page}"));
    let shown = regex::Regex::new(r"<strong>(\d+)</strong> answers")
        .unwrap()
        .captures(&section)
        .map_or(0, |c| c[1].parse().unwrap());
    (shown, section)
}

fn note(i: usize) -> String {
    format!("note-{i:02}")
}

async fn unlinkable(app: TestApp) {
    // promise: CRS-6 — individual answers stay confidential: they cannot be linked to who gave them.
    seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let grace = staff(&app).await;
    let mut learners = Vec::new();
    for i in 0..LEARNERS {
        let l = verified(&app, &format!("lin{i:02}")).await;
        as_user(&app, &l).await;
        crate::learning::enroll(&app, "intro-python").await;
        let id = user_id(&app, &l.username).await;
        learners.push((l, id));
    }
    let difficulty = ["easy", "right", "hard"];
    as_user(&app, &grace).await;
    let mut views = vec![staff_view(&app).await];
    for (i, (l, _)) in learners.iter().enumerate() {
        as_user(&app, l).await;
        let rating = (i % 5 + 1).to_string();
        let mut form = vec![("rating", rating.as_str()), ("difficulty", difficulty[i % 3])];
        if i % 2 == 0 {
            form.push(("recommend", "true"));
        }
        let comment = note(i);
        form.push(("comment", &comment));
        let res = app.post_form("/learn/intro-python/survey", &form).await;
        assert_eq!(res.headers().get_one("Location"), Some("/learn/intro-python"));
        if i == 0 {
            let (_, page) = app.get("/learn/intro-python").await;
            assert!(page.contains("Thank you! Your answers are anonymous."), "{page}");
        }
        as_user(&app, &grace).await;
        views.push(staff_view(&app).await);
    }
    // Nobody answers twice.
    as_user(&app, &learners[0].0).await;
    app.post_form("/learn/intro-python/survey", &[("rating", "1"), ("difficulty", "hard")]).await;
    let (_, page) = app.get("/learn/intro-python/survey").await;
    assert!(page.contains("You answered this survey already"), "{page}");

    // What staff read between two answers never gives one answer away: the
    // page changes only when the number shown grows by a whole group.
    for (i, pair) in views.windows(2).enumerate() {
        let ((before, old), (after, new)) = (&pair[0], &pair[1]);
        if before == after {
            assert_eq!(old, new, "answer {} changed the staff page without changing the number shown", i + 1);
        } else {
            assert!(
                after >= before && after - before >= GROUP,
                "answer {}: the number shown went {before} → {after}",
                i + 1
            );
        }
        // Comments only from a large enough group, and the page says when.
        if *after < COMMENTS {
            assert!(!new.contains("note-"), "a comment shown with {after} answers: {new}");
        }
        if (1..COMMENTS).contains(after) {
            assert!(new.contains(&format!("Comments appear once {COMMENTS} people have answered")), "{new}");
        }
    }
    let (shown, last) = views.last().unwrap().clone();
    assert!(shown > LEARNERS - GROUP, "answers are released once groups are complete: {shown} shown of {LEARNERS}");
    assert_eq!(last.matches("note-").count(), shown, "{last}");

    // The database, as a reader sees it.
    let by_note: HashMap<String, i64> = learners.iter().enumerate().map(|(i, (_, id))| (note(i), *id)).collect();
    let ids: Vec<i64> = learners.iter().map(|(_, id)| *id).collect();
    let mut conn = app.db().get().unwrap();
    let tables = survey_tables(&mut conn);
    let completions = tables.get("survey_completions").expect("who answered is recorded");
    let completion_keys: Vec<String> = completions.clone();
    let by_user = |s: &str| s.parse::<i64>().ok().filter(|id| ids.contains(id));
    let who_answered = rows(&mut conn, "survey_completions", "user_id", &completion_keys, &by_user);
    assert_eq!(who_answered.len(), LEARNERS);
    let by_comment = |s: &str| by_note.get(s).copied();
    let mut readable = 0;
    for (table, columns) in &tables {
        if table == "survey_completions" || !columns.iter().any(|c| c == "comment") {
            continue;
        }
        let keys: Vec<String> = columns.iter().filter(|c| !CONTENT.contains(&c.as_str())).cloned().collect();
        let answers = rows(&mut conn, table, "comment", &keys, &by_comment);
        readable += answers.len();
        if answers.is_empty() {
            continue;
        }
        let answer_keys: Vec<&String> = answers[0].keys.keys().collect();
        let completion_keys: Vec<&String> = who_answered[0].keys.keys().collect();
        for ka in &answer_keys {
            for kc in &completion_keys {
                // By rank: the i-th answer with the i-th "who answered". By
                // chance (answers shuffled within groups of 5) about one in
                // five pairs is right; three in four or more happens by chance
                // with odds under 2 in 100,000 for 20 answers.
                for descending in [false, true] {
                    let hits = pairing_hits(&ranked(&answers, ka, descending), &ranked(&who_answered, kc, false));
                    assert!(
                        hits * 4 < answers.len() * 3,
                        "{table}.{ka} ranked against survey_completions.{kc} links {hits} of {} answers",
                        answers.len()
                    );
                }
                // By equal or nearest value, at every precision: a value
                // shared one-to-one by an answer and its author is a link.
                if positional(ka) || positional(kc) {
                    continue;
                }
                for precision in [1, 1_000, 1_000_000, 60_000_000, 3_600_000_000, 86_400_000_000] {
                    let hits = nearest_hits(&answers, ka, &who_answered, kc, precision);
                    assert!(
                        hits < 2,
                        "{table}.{ka} matched to survey_completions.{kc} (precision {precision}) links {hits} answers"
                    );
                }
            }
        }
    }
    assert_eq!(readable, shown, "what staff see is what a reader of the database can read, no more");
    drop(conn);

    // The order of the comments on the staff page.
    let page_order: Vec<i64> =
        regex::Regex::new(r"note-\d\d").unwrap().find_iter(&last).map(|m| by_note[m.as_str()]).collect();
    let answered_order: Vec<i64> = ids.clone();
    let hits = pairing_hits(&page_order, &answered_order);
    assert!(hits * 4 < page_order.len() * 3, "the staff page's order links {hits} of {} comments", page_order.len());
    let hits = pairing_hits(&page_order.iter().rev().copied().collect::<Vec<_>>(), &answered_order);
    assert!(hits * 4 < page_order.len() * 3, "the staff page's reverse order links {hits} comments");
    assert_eq!(
        run(&app, |conn| lyceum::db::schema::survey_completions::table.count().get_result::<i64>(conn)).await,
        LEARNERS as i64
    );
}
on_both!(crs_6_survey_answers_cannot_be_linked_to_who_gave_them, unlinkable);

async fn configured_groups(app: TestApp) {
    // promise: CRS-6 — the group size and the comments' threshold are the configured ones, and pages say so.
    use lyceum::db::schema::{survey_pending, survey_responses};
    seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let grace = staff(&app).await;
    let mut learners = Vec::new();
    for i in 0..7 {
        let l = verified(&app, &format!("kim{i}")).await;
        as_user(&app, &l).await;
        crate::learning::enroll(&app, "intro-python").await;
        learners.push(l);
    }
    let (_, page) = app.get("/learn/intro-python/survey").await;
    assert!(page.contains("sealed until 3 learners have answered") && page.contains("whole groups of 3"), "{page}");
    assert!(page.contains("comments are shown to them once 6 people have answered"), "{page}");
    for (i, l) in learners.iter().enumerate() {
        as_user(&app, l).await;
        let comment = format!("secret-{i}");
        let res = app
            .post_form("/learn/intro-python/survey", &[("rating", "4"), ("difficulty", "easy"), ("comment", &comment)])
            .await;
        assert_eq!(res.headers().get_one("Location"), Some("/learn/intro-python"));
        // A waiting answer is sealed: the database holds no word of it.
        let waiting: Vec<String> =
            run(&app, |conn| survey_pending::table.select(survey_pending::answers).load::<String>(conn)).await;
        assert_eq!(waiting.len(), usize::from((i + 1) % 3 != 0));
        for w in &waiting {
            assert!(w.starts_with("env1:") && !w.contains("secret") && !w.contains("easy"), "{w}");
        }
        let released = run(&app, |conn| survey_responses::table.count().get_result::<i64>(conn)).await;
        assert_eq!(released, ((i + 1) / 3 * 3) as i64);
        as_user(&app, &grace).await;
        let (_, page) = app.get("/studio/courses/intro-python/survey").await;
        assert!(
            page.contains("in groups of 3") && page.contains("Comments appear once 6 people have answered"),
            "{page}"
        );
        match i + 1 {
            1 | 2 => assert!(page.contains("No results yet: they appear once 3 learners"), "{page}"),
            3..=5 => assert!(page.contains("<strong>3</strong> answers") && !page.contains("secret-"), "{page}"),
            _ => assert!(page.contains("<strong>6</strong> answers") && page.matches("secret-").count() == 6, "{page}"),
        }
    }
}
on_both!(
    crs_6_group_and_comment_thresholds_are_the_configured_ones,
    configured_groups,
    |c: &mut lyceum::config::Config| {
        c.survey_min_group = 3;
        c.survey_comments_min = 4;
    }
);

#[test]
fn a_survey_group_smaller_than_three_is_refused() {
    use rocket::figment::{
        Figment,
        providers::{Format, Toml},
    };
    let load = |toml: &str| lyceum::config::Config::from_figment(Figment::from(Toml::string(toml)));
    let err = load("survey_min_group = 2").expect_err("a group of two is refused");
    assert!(err.to_string().contains("LYCEUM_SURVEY_MIN_GROUP must be at least 3"), "{err}");
    let config = load("survey_min_group = 4\nsurvey_comments_min = 9").expect("config loads");
    let groups = lyceum::privacy::surveys::Groups::of(&config);
    assert_eq!((groups.size, groups.comments), (4, 12), "comments wait for whole groups");
    let groups = lyceum::privacy::surveys::Groups::of(&load("").expect("config loads"));
    assert_eq!((groups.size, groups.comments), (5, 10));
}

async fn migrated(app: TestApp) {
    // promise: CRS-6 — answers given before groups existed are stored again in random order, with new ids.
    seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let grace = staff(&app).await;
    let mut conn = app.db().get().unwrap();
    let sqlite = matches!(&mut *conn, DbConnection::Sqlite(_));
    let dir = if sqlite { "sqlite" } else { "postgres" };
    let path = format!("{}/migrations/{dir}/2026-12-06-000040_survey_groups", env!("CARGO_MANIFEST_DIR"));
    let sql = |name: &str| std::fs::read_to_string(format!("{path}/{name}")).expect("the migration");
    let batch = |conn: &mut DbConnection, sql: &str| match conn {
        DbConnection::Sqlite(c) => diesel::connection::SimpleConnection::batch_execute(c, sql),
        DbConnection::Pg(c) => diesel::connection::SimpleConnection::batch_execute(c, sql),
    };
    // The tables as they were, with answers written in the order learners answered.
    batch(&mut conn, &sql("down.sql")).unwrap();
    let run_id: i64 =
        lyceum::db::schema::course_runs::table.select(lyceum::db::schema::course_runs::id).first(&mut *conn).unwrap();
    let mut old_ids = Vec::new();
    for i in 0..20 {
        let id = uuid::Uuid::new_v4().simple().to_string();
        batch(
            &mut conn,
            &format!(
                "INSERT INTO survey_responses (id, run_id, rating, difficulty, recommend, comment) \
                 VALUES ('{id}', {run_id}, {}, 'right', {}, 'old-{i:02}')",
                i % 5 + 1,
                if i % 2 == 0 { "TRUE" } else { "FALSE" }
            ),
        )
        .unwrap();
        old_ids.push(id);
    }
    batch(&mut conn, &sql("up.sql")).unwrap();
    let order: HashMap<String, i64> = (0..20).map(|i| (format!("old-{i:02}"), i)).collect();
    let author = |s: &str| order.get(s).copied();
    let answers = rows(&mut conn, "survey_responses", "comment", &["id".to_string(), "run_id".to_string()], &author);
    assert_eq!(answers.len(), 20, "every answer is kept");
    let mut comments: Vec<i64> = answers.iter().map(|r| r.who).collect();
    comments.sort();
    assert_eq!(comments, (0..20).collect::<Vec<_>>());
    for r in &answers {
        assert!(!old_ids.contains(r.keys["id"].as_ref().unwrap()), "a new id");
    }
    let given: Vec<i64> = (0..20).collect();
    for key in answers[0].keys.keys() {
        let hits = pairing_hits(&ranked(&answers, key, false), &given);
        assert!(hits < 15, "after the migration, {key} still follows the order answers were given in ({hits} of 20)");
    }
    drop(conn);
    as_user(&app, &grace).await;
    let (_, page) = app.get("/studio/courses/intro-python/survey").await;
    assert!(page.contains("<strong>20</strong> answers") && page.matches("old-").count() == 20, "{page}");
}
on_both!(crs_6_answers_given_before_are_stored_again_in_random_order, migrated);

async fn results_page(app: TestApp) {
    // The results are counted in the database and the comments read a page at a time.
    use lyceum::db::schema::{course_runs, survey_responses};
    seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let grace = staff(&app).await;
    // 51 released answers (ten whole groups and one more answer than that
    // cannot happen by the form, but the page must not care): 51 comments.
    let run_key = run(&app, |conn| {
        let (run_id, key): (i64, String) =
            course_runs::table.select((course_runs::id, course_runs::run_key)).first(conn)?;
        for i in 0..51 {
            diesel::insert_into(survey_responses::table)
                .values((
                    survey_responses::id.eq(format!("{i:032}")),
                    survey_responses::run_id.eq(run_id),
                    survey_responses::rating.eq((i % 5 + 1) as i32),
                    survey_responses::difficulty.eq(["easy", "right", "hard"][i % 3]),
                    survey_responses::recommend.eq(i % 2 == 0),
                    survey_responses::comment.eq(Some(format!("paged-{i:02}."))),
                ))
                .execute(conn)?;
        }
        Ok::<_, diesel::result::Error>(key)
    })
    .await;
    as_user(&app, &grace).await;
    let (status, page) = app.get("/studio/courses/intro-python/survey").await;
    assert_eq!(status, Status::Ok);
    let page = page.replace("&#x3D;", "=").replace("&amp;", "&");
    assert!(
        page.contains("<strong>51</strong> answers · average rating <strong>3.0</strong> / 5 · 50% would recommend"),
        "{page}"
    );
    assert!(page.contains("Ratings 1 to 5: 11 · 10 · 10 · 10 · 10"), "{page}");
    assert!(page.contains("Too easy: 17 · About right: 17 · Too hard: 17"), "{page}");
    assert_eq!(page.matches("paged-").count(), 50, "a page of 50 comments");
    assert!(page.contains("paged-00.") && !page.contains("paged-50."), "in the order of their random ids");
    let next = format!("/studio/courses/intro-python/survey?run={run_key}&comments=2");
    assert!(page.contains(&format!(r#"rel="next" href="{next}""#)), "{page}");
    let (status, second) = app.get(&next).await;
    assert_eq!(status, Status::Ok);
    let second = second.replace("&#x3D;", "=").replace("&amp;", "&");
    assert_eq!(second.matches("paged-").count(), 1, "the rest");
    assert!(second.contains("paged-50.") && !second.contains(r#"rel="next""#));
    assert!(second.contains("<strong>51</strong> answers"), "the figures are of every answer");
    for junk in ["x", "0", "-3", "99999999999999999999"] {
        let (status, body) =
            app.get(&format!("/studio/courses/intro-python/survey?run={run_key}&comments={junk}")).await;
        assert_eq!((status, body.matches("paged-").count()), (Status::Ok, 50), "comments={junk}");
    }
}
on_both!(crs_6_survey_results_count_in_the_database_and_page_comments, results_page);
