//! Property test of the sharing gate over random interleavings of consent and learning events.
//!
//! Each case builds its own small world (two member institutions with a course each, a sponsor with seats in both
//! runs, four learners) and plays a random sequence of events through the same service calls the routes make:
//! enroll (with the member-sharing answer), redeem a sponsor code (grant or decline), withdraw on the Sharing page,
//! the restrict switch, progress, staff changing a member's profile fields, and partner exports walked page by page
//! through `sharing::next_page`. A plain model of what is live is kept alongside; at every export the gate's output
//! and the disclosure rows it wrote are checked against it.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use chrono::{Duration, NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use lyceum::accounts::SessionUser;
use lyceum::accounts::roles::Role;
use lyceum::consent::ledger::{self, Action, Entry, Evidence};
use lyceum::consent::partners::{self, Partner};
use lyceum::consent::sharing::{self, Basis, Request, Shared, Want};
use lyceum::consent::sponsors::{self, Decision, SeatRequest, SponsorError};
use lyceum::consent::{Categories, Category, PartnerKind, Purpose, member, run_scope, texts};
use lyceum::db::Conn;
use lyceum::db::schema::{consent_ledger, consents, enrollments, users};
use lyceum::learning::authoring::{self, RunInput};
use lyceum::learning::model::Course;
use lyceum::learning::service::{self as learning, LearningError, Track};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::common::TestApp;
use crate::on_both;

const LEARNERS: usize = 4;
/// Course `i` belongs to member `i`, whose partner is `partners[i]`.
const COURSES: usize = 2;
const UNITS: usize = 3;
/// Index of the sponsor in `World::partners`; it has seats in every course's run.
const SPONSOR: usize = COURSES;
const PARTNERS: usize = COURSES + 1;
const RUN_KEY: &str = "2026";
/// Sponsored seats per run: one per learner, and a spare for a learner who tries for a second seat.
const SEATS: i32 = LEARNERS as i32 + 1;

/// Unique names across cases (and shrink runs) in one database.
static CASE: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, Clone)]
enum Event {
    /// The enroll form (audit track) with the member-sharing answer; `None` leaves the question unanswered.
    /// Enrolling again answers again: this is how member sharing is granted or declined anew.
    Enroll { learner: usize, course: usize, share: Option<bool> },
    /// Redeeming a sponsor code for the course: grants or declines sponsorship (and maybe partner marketing).
    Redeem { learner: usize, course: usize, share: bool, marketing: bool },
    /// The Sharing page's withdraw button on one of the learner's live consents.
    Withdraw { learner: usize, pick: usize },
    /// The Sharing page's switch (RGT-3).
    Restrict { learner: usize, on: bool },
    /// Completing a unit; completing the last one also records a passing result.
    Progress { learner: usize, course: usize, unit: usize },
    /// Staff change which profile fields a member asks for (later answers only).
    Profile { course: usize, fields: [bool; 4] },
    /// A partner pulls for a purpose, page by page; `odd` picks another purpose than its own.
    Export { partner: usize, odd: Option<usize>, want: [bool; 3], limit: i64 },
}

fn event() -> impl Strategy<Value = Event> {
    let (l, c) = (0..LEARNERS, 0..COURSES);
    prop_oneof![
        4 => (l.clone(), c.clone(), prop::option::weighted(0.85, any::<bool>()))
            .prop_map(|(learner, course, share)| Event::Enroll { learner, course, share }),
        2 => (l.clone(), c.clone(), any::<bool>(), prop::bool::weighted(0.3))
            .prop_map(|(learner, course, share, marketing)| Event::Redeem { learner, course, share, marketing }),
        2 => (l.clone(), 0..6usize).prop_map(|(learner, pick)| Event::Withdraw { learner, pick }),
        2 => (l.clone(), any::<bool>()).prop_map(|(learner, on)| Event::Restrict { learner, on }),
        3 => (l, c.clone(), 0..UNITS).prop_map(|(learner, course, unit)| Event::Progress { learner, course, unit }),
        1 => (c, prop::array::uniform4(any::<bool>())).prop_map(|(course, fields)| Event::Profile { course, fields }),
        4 => (0..PARTNERS, prop::option::weighted(0.2, 0..3usize), prop::array::uniform3(any::<bool>()), 1i64..5)
            .prop_map(|(partner, odd, want, limit)| Event::Export { partner, odd, want, limit }),
    ]
}

/// Profile fields asked for by each member, which learners have a company, and the events.
type Case = ([[bool; 4]; COURSES], [bool; LEARNERS], Vec<Event>);

fn case() -> impl Strategy<Value = Case> {
    (
        prop::array::uniform2(prop::array::uniform4(any::<bool>())),
        prop::array::uniform4(any::<bool>()),
        prop::collection::vec(event(), 1..60),
    )
}

fn profile(fields: [bool; 4]) -> Categories {
    Categories::of(Category::PROFILE.into_iter().zip(fields).filter(|(_, on)| *on).map(|(c, _)| c))
}

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

fn operator() -> SessionUser {
    SessionUser {
        id: 0,
        username: "operator".into(),
        first_name: "Op".into(),
        last_name: "Erator".into(),
        email: String::new(),
        email_verified: true,
        roles: vec![(Role::Staff, String::new())],
    }
}

fn evidence(user_id: i64) -> Evidence {
    Evidence {
        method: "web_form",
        actor: "learner",
        actor_user_id: Some(user_id),
        actor_name: None,
        note: None,
        ip: Some("203.0.113.7".into()),
        user_agent: Some("proptest".into()),
    }
}

/// One case's fixtures.
struct World {
    n: usize,
    learners: Vec<SessionUser>,
    companies: Vec<Option<String>>,
    courses: Vec<Course>,
    member_slugs: Vec<String>,
    runs: Vec<i64>,
    units: Vec<Vec<i64>>,
    partners: Vec<Partner>,
    allocations: Vec<sponsors::Allocation>,
}

#[derive(Debug, Clone)]
struct Consent {
    live: bool,
    categories: Categories,
    ledger_id: i64,
}

/// (learner, partner, purpose, scope)
type ConsentKey = (usize, usize, Purpose, String);

/// What the test believes is true, kept apart from the database.
#[derive(Default)]
struct Model {
    consents: HashMap<ConsentKey, Consent>,
    restricted: HashSet<usize>,
    profile: Vec<Categories>,
    /// enrollment id -> (learner, course)
    enrollments: BTreeMap<i64, (usize, usize)>,
    /// (learner, course) sponsored by the sponsor.
    sponsored: HashSet<(usize, usize)>,
    done: HashMap<i64, BTreeSet<i64>>,
    passed: HashSet<i64>,
}

impl Model {
    fn enrollment_of(&self, learner: usize, course: usize) -> Option<i64> {
        self.enrollments.iter().find(|(_, v)| **v == (learner, course)).map(|(e, _)| *e)
    }

    fn live(&self, key: &ConsentKey) -> Option<&Consent> {
        self.consents.get(key).filter(|c| c.live)
    }

    /// What an export should yield: enrollment id -> (on consent?, categories).
    fn expected(&self, w: &World, partner: usize, purpose: Purpose, want: Want) -> BTreeMap<i64, (bool, Categories)> {
        let mut out = BTreeMap::new();
        for (&eid, &(li, ci)) in &self.enrollments {
            let concerned = match purpose {
                Purpose::MemberSharing => partner == ci,
                Purpose::Sponsorship => partner == SPONSOR && self.sponsored.contains(&(li, ci)),
                // This world has no organization staff and no exams (enrollments only).
                _ => false,
            };
            if !concerned || self.restricted.contains(&li) {
                continue;
            }
            let (consent, cats) = match self.live(&(li, partner, purpose, run_scope(w.runs[ci]))) {
                Some(c) => (true, c.categories.intersect(&purpose.ceiling())),
                None if purpose == Purpose::MemberSharing => (false, deidentified()),
                None => continue,
            };
            let yields = (want.enrollment && cats.contains(Category::Enrollment))
                || (want.progress && (cats.contains(Category::Activity) || cats.contains(Category::Progress)))
                || (want.result && (cats.contains(Category::Grades) || cats.contains(Category::Completion)));
            if yields {
                out.insert(eid, (consent, cats));
            }
        }
        out
    }
}

/// What a member may receive without consent, written out here rather than taken from the gate.
fn deidentified() -> Categories {
    use Category::*;
    Categories::of([Enrollment, Activity, Progress, Grades, Completion])
}

/// What member sharing asks for: the member's profile fields and the course records.
fn member_offer(profile: &Categories) -> Categories {
    let mut c = profile.clone();
    c.0.extend(deidentified().0);
    c
}

#[derive(Debug, Default)]
struct Stats {
    cases: usize,
    events: usize,
    enroll: usize,
    grant: usize,
    decline: usize,
    sponsor_grant: usize,
    sponsor_decline: usize,
    withdraw: usize,
    restrict: usize,
    lift: usize,
    progress: usize,
    profile: usize,
    export: usize,
    consent_records: usize,
    deidentified_records: usize,
    sponsor_records: usize,
    identified_records: usize,
}

fn setup(conn: &mut Conn, (profiles, companies, _): &Case) -> Result<(World, Model), TestCaseError> {
    let n = CASE.fetch_add(1, Ordering::SeqCst);
    let now = lyceum::db::now();
    let op = operator();
    let mut w = World {
        n,
        learners: Vec::new(),
        companies: Vec::new(),
        courses: Vec::new(),
        member_slugs: Vec::new(),
        runs: Vec::new(),
        units: Vec::new(),
        partners: Vec::new(),
        allocations: Vec::new(),
    };
    let mut model = Model::default();
    for (ci, fields) in profiles.iter().enumerate() {
        let slug = format!("pm{n}-{ci}");
        let m =
            authoring::create_member(conn, &op, &slug, &format!("Member {n}-{ci}"), "A member.", now).map_err(fail)?;
        let input = authoring::parse_course(
            &format!("pc{n}-{ci}"),
            &format!("Course {n}-{ci}"),
            "Learn it.",
            "All about it.",
            "computer-science",
            "en",
            "1 hour",
        )
        .map_err(fail)?;
        let c = authoring::create_course(conn, &op, &m, &input, now).map_err(fail)?;
        let run = RunInput {
            key: RUN_KEY.into(),
            starts_at: now - Duration::days(1),
            ends_at: None,
            enrollment_opens_at: None,
            enrollment_closes_at: None,
            pacing: "self".into(),
            access_days: None,
            pass_threshold: 60,
            audit: true,
            verified_price_cents: Some(4900),
            currency: "USD".into(),
        };
        authoring::add_run(conn, &c, &run, now).map_err(fail)?;
        authoring::add_section(conn, &c, "Basics").map_err(fail)?;
        let section = learning::outline(conn, c.id).map_err(fail)?[0].0.id;
        let mut units = Vec::new();
        for u in 0..UNITS {
            units.push(authoring::add_unit(conn, &c, section, &format!("Unit {u}")).map_err(fail)?);
        }
        authoring::set_published(conn, &c, true, now).map_err(fail)?;
        let c = learning::course_by_slug(conn, &c.slug).map_err(fail)?;
        w.runs.push(learning::runs(conn, c.id).map_err(fail)?[0].id);
        let p = partners::for_member(conn, &m).map_err(fail)?;
        let cats = profile(*fields);
        partners::set_profile_fields(conn, &p, &cats).map_err(fail)?;
        w.partners.push(partners::by_id(conn, p.id).map_err(fail)?);
        model.profile.push(cats);
        w.courses.push(c);
        w.member_slugs.push(slug);
        w.units.push(units);
    }
    let sponsor = partners::create(
        conn,
        PartnerKind::Sponsor,
        &format!("ps{n}"),
        &format!("Sponsor {n}"),
        None,
        "hr@s.example",
        now,
    )
    .map_err(fail)?;
    for &run_id in &w.runs {
        let seats = SeatRequest { run_id, seats: SEATS, expires_at: now + Duration::days(30), note: "", by: None };
        w.allocations.push(sponsors::allocate(conn, &sponsor, &seats, now).map_err(fail)?);
    }
    w.partners.push(sponsor);
    for (i, has_company) in companies.iter().enumerate() {
        let username = format!("pl{n}x{i}");
        let email = format!("{username}@example.org");
        let (first, last) = (format!("First{i}"), format!("Last{n}"));
        let company = has_company.then(|| format!("Company {n}-{i}"));
        let id: i64 = diesel::insert_into(users::table)
            .values((
                users::username.eq(&username),
                users::email.eq(&email),
                users::first_name.eq(&first),
                users::last_name.eq(&last),
                users::company.eq(&company),
                users::date_of_birth.eq(NaiveDate::from_ymd_opt(1990, 5, 17).expect("a date")),
                users::password_hash.eq("!"),
                users::status.eq("active"),
                users::email_verified_at.eq(Some(now)),
                users::terms_version.eq(lyceum::accounts::TERMS_VERSION),
                users::terms_accepted_at.eq(now),
                users::created_at.eq(now),
                users::updated_at.eq(now),
            ))
            .returning(users::id)
            .get_result(conn)
            .map_err(fail)?;
        w.learners.push(SessionUser {
            id,
            username,
            first_name: first,
            last_name: last,
            email,
            email_verified: true,
            roles: Vec::new(),
        });
        w.companies.push(company);
    }
    Ok((w, model))
}

/// The newest ledger row for one consent.
fn last_ledger_id(conn: &mut Conn, user_id: i64, partner_id: i64, purpose: Purpose, scope: &str) -> QueryResult<i64> {
    consent_ledger::table
        .filter(consent_ledger::user_id.eq(user_id))
        .filter(consent_ledger::partner_id.eq(Some(partner_id)))
        .filter(consent_ledger::purpose.eq(purpose.as_str()))
        .filter(consent_ledger::scope.eq(scope))
        .order(consent_ledger::id.desc())
        .select(consent_ledger::id)
        .first(conn)
}

fn apply(
    conn: &mut Conn,
    w: &mut World,
    model: &mut Model,
    stats: &mut Stats,
    event: &Event,
    now: NaiveDateTime,
) -> Result<(), TestCaseError> {
    match *event {
        Event::Enroll { learner, course, share } => {
            let user = w.learners[learner].clone();
            let c = w.courses[course].clone();
            let ev = evidence(user.id);
            // As the enroll route: enrollment and the sharing decision stand or fall together.
            let (eid, asks, decided) = conn
                .transaction::<_, LearningError, _>(|conn| {
                    let m = learning::member(conn, c.member_id)?;
                    let offer = member::offer(conn, &m)?;
                    let e = learning::enroll(conn, &user, &c, RUN_KEY, Track::Audit, now)?;
                    let mut decided = None;
                    if let (true, Some(share)) = (offer.asks_consent(), share) {
                        let text = offer.text.as_ref().map(|t| t.id);
                        member::decide(conn, user.id, &offer, e.run_id, (share, text), &ev, now)?
                            .map_err(LearningError::Invalid)?;
                        decided = Some(share);
                    }
                    Ok((e.id, offer.asks_consent(), decided))
                })
                .map_err(fail)?;
            prop_assert_eq!(
                asks,
                !model.profile[course].is_empty(),
                "consent is asked for exactly when profile fields are"
            );
            if let Some(prev) = model.enrollments.insert(eid, (learner, course)) {
                prop_assert_eq!(prev, (learner, course));
            }
            stats.enroll += 1;
            if let Some(share) = decided {
                let scope = run_scope(w.runs[course]);
                let ledger_id = last_ledger_id(conn, user.id, w.partners[course].id, Purpose::MemberSharing, &scope)
                    .map_err(fail)?;
                let categories = member_offer(&model.profile[course]);
                model.consents.insert(
                    (learner, course, Purpose::MemberSharing, scope),
                    Consent { live: share, categories, ledger_id },
                );
                if share { stats.grant += 1 } else { stats.decline += 1 }
            }
        }
        Event::Redeem { learner, course, share, marketing } => {
            let user = w.learners[learner].clone();
            let sponsor = w.partners[SPONSOR].clone();
            let code = sponsors::free_codes(conn, &w.allocations[course]).map_err(fail)?;
            let code =
                code.first().ok_or_else(|| fail("a free code is left (one seat per learner, and one spare)"))?.clone();
            let text = texts::current(conn, &sponsor, Purpose::Sponsorship, "en").map_err(fail)?;
            let mtext = texts::current(conn, &sponsor, Purpose::PartnerMarketing, "en").map_err(fail)?;
            let decision = Decision {
                share,
                marketing,
                text_id: text.ok_or_else(|| fail("a sponsorship text"))?.id,
                marketing_text_id: mtext.map(|t| t.id),
            };
            let outcome = sponsors::redeem(conn, &user, &code, &decision, &evidence(user.id), now);
            if model.sponsored.contains(&(learner, course)) {
                prop_assert!(
                    matches!(outcome, Err(SponsorError::Invalid(_))),
                    "a second seat is refused: {:?}",
                    outcome.err()
                );
                return Ok(());
            }
            outcome.map_err(fail)?;
            model.sponsored.insert((learner, course));
            let eid: i64 = enrollments::table
                .filter(enrollments::user_id.eq(user.id))
                .filter(enrollments::run_id.eq(w.runs[course]))
                .select(enrollments::id)
                .first(conn)
                .map_err(fail)?;
            model.enrollments.insert(eid, (learner, course));
            let scope = run_scope(w.runs[course]);
            let ledger_id = last_ledger_id(conn, user.id, sponsor.id, Purpose::Sponsorship, &scope).map_err(fail)?;
            model.consents.insert(
                (learner, SPONSOR, Purpose::Sponsorship, scope),
                Consent { live: share, categories: Purpose::Sponsorship.ceiling(), ledger_id },
            );
            if marketing {
                let ledger_id =
                    last_ledger_id(conn, user.id, sponsor.id, Purpose::PartnerMarketing, "all").map_err(fail)?;
                model.consents.insert(
                    (learner, SPONSOR, Purpose::PartnerMarketing, "all".into()),
                    Consent { live: true, categories: Purpose::PartnerMarketing.ceiling(), ledger_id },
                );
            }
            stats.enroll += 1;
            if share { stats.sponsor_grant += 1 } else { stats.sponsor_decline += 1 }
        }
        Event::Withdraw { learner, pick } => {
            let mut live: Vec<ConsentKey> =
                model.consents.iter().filter(|(k, c)| k.0 == learner && c.live).map(|(k, _)| k.clone()).collect();
            if live.is_empty() {
                return Ok(());
            }
            live.sort_by(|a, b| (a.1, a.2.as_str(), &a.3).cmp(&(b.1, b.2.as_str(), &b.3)));
            let key = live[pick % live.len()].clone();
            let user_id = w.learners[learner].id;
            let partner_id = w.partners[key.1].id;
            // The Sharing page's row for this consent, as the withdraw route reads it.
            let (status, cats): (String, String) = consents::table
                .filter(consents::user_id.eq(user_id))
                .filter(consents::partner_id.eq(partner_id))
                .filter(consents::purpose.eq(key.2.as_str()))
                .filter(consents::scope.eq(&key.3))
                .select((consents::status, consents::categories))
                .first(conn)
                .map_err(fail)?;
            prop_assert_eq!(status.as_str(), "granted", "the page shows the consent as in force");
            let categories = Categories::parse(&cats);
            let row = ledger::append(
                conn,
                Entry {
                    user_id,
                    partner_id: Some(partner_id),
                    purpose: key.2.as_str(),
                    scope: &key.3,
                    action: Action::Withdraw,
                    categories: &categories,
                    text: None,
                    evidence: &evidence(user_id),
                },
                now,
            )
            .map_err(fail)?;
            let c = model.consents.get_mut(&key).expect("a live consent");
            c.live = false;
            c.ledger_id = row.id;
            stats.withdraw += 1;
        }
        Event::Restrict { learner, on } => {
            let user_id = w.learners[learner].id;
            // As the restrict route: a switch to the state it is already in appends nothing.
            let already = ledger::is_restricted(conn, user_id).map_err(fail)?.is_some();
            prop_assert_eq!(already, model.restricted.contains(&learner));
            if already == on {
                return Ok(());
            }
            ledger::append(
                conn,
                Entry {
                    user_id,
                    partner_id: None,
                    purpose: ledger::ALL_SHARING,
                    scope: "all",
                    action: if on { Action::Restrict } else { Action::Lift },
                    categories: &Categories::default(),
                    text: None,
                    evidence: &evidence(user_id),
                },
                now,
            )
            .map_err(fail)?;
            if on {
                model.restricted.insert(learner);
                stats.restrict += 1;
            } else {
                model.restricted.remove(&learner);
                stats.lift += 1;
            }
        }
        Event::Progress { learner, course, unit } => {
            let Some(eid) = model.enrollment_of(learner, course) else { return Ok(()) };
            let c = w.courses[course].clone();
            let (e, _) = learning::active_enrollment(conn, w.learners[learner].id, c.id, now).map_err(fail)?;
            prop_assert_eq!(e.id, eid);
            let unit_id = w.units[course][unit];
            learning::complete_unit(conn, &e, &c, unit_id, now).map_err(fail)?;
            let done = model.done.entry(eid).or_default();
            done.insert(unit_id);
            if done.len() == UNITS && model.passed.insert(eid) {
                // Stands in for passing the final check: a grade, a pass and a completion date to leak or not.
                diesel::update(enrollments::table.find(eid))
                    .set((
                        enrollments::grade_percent.eq(87.5),
                        enrollments::passed.eq(true),
                        enrollments::completed_at.eq(Some(now)),
                    ))
                    .execute(conn)
                    .map_err(fail)?;
            }
            stats.progress += 1;
        }
        Event::Profile { course, fields } => {
            let cats = profile(fields);
            partners::set_profile_fields(conn, &w.partners[course], &cats).map_err(fail)?;
            w.partners[course] = partners::by_id(conn, w.partners[course].id).map_err(fail)?;
            model.profile[course] = cats;
            stats.profile += 1;
        }
        Event::Export { partner, odd, want, limit } => {
            let purpose = match odd {
                Some(i) => Purpose::ALL[i],
                None if partner == SPONSOR => Purpose::Sponsorship,
                None => Purpose::MemberSharing,
            };
            let want = Want { enrollment: want[0], progress: want[1], result: want[2] };
            stats.export += 1;
            let export_id = format!("prop-{}-{}", w.n, stats.export);
            let p = w.partners[partner].clone();
            let mut shared = Vec::new();
            let mut after = sharing::Position::START;
            for _ in 0..1000 {
                let req = Request {
                    partner: &p,
                    purpose,
                    want,
                    after,
                    limit,
                    export_id: &export_id,
                    base_url: "http://lyceum.test",
                };
                let page = sharing::next_page(conn, &req, now).map_err(fail)?;
                shared.extend(page.shared);
                match page.next_after {
                    Some(a) => {
                        prop_assert!(a > after, "the walk moves on");
                        after = a;
                    }
                    None => break,
                }
            }
            check_export(conn, w, model, stats, partner, purpose, want, &export_id, &shared)?;
        }
    }
    Ok(())
}

/// The disclosure-log name of each field a record carries a value in, and the category that covers it
/// (`None`: the per-partner pseudonym, which is no personal field).
fn carried(s: &Shared) -> Vec<(&'static str, Option<Category>)> {
    use Category::*;
    let l = &s.learner;
    let mut f = Vec::new();
    if l.pseudonymous {
        f.push(("learner.pseudonym", None));
    }
    // Not pseudonymous, the id itself is the username.
    if !l.pseudonymous || l.username.is_some() {
        f.push(("learner.username", Some(ProfileUsername)));
    }
    if l.name.is_some() {
        f.push(("learner.name", Some(ProfileName)));
    }
    if l.email.is_some() {
        f.push(("learner.email", Some(ProfileEmail)));
    }
    if l.company.is_some() {
        f.push(("learner.company", Some(ProfileCompany)));
    }
    if s.enrollment.is_some() {
        for name in ["enrollment.course", "enrollment.track", "enrollment.status", "enrollment.enrolled_at"] {
            f.push((name, Some(Enrollment)));
        }
    }
    if let Some(p) = &s.progress {
        if p.last_activity_at.is_some() {
            f.push(("progress.last_activity_at", Some(Activity)));
        }
        if p.units_completed.is_some() {
            f.push(("progress.units_completed", Some(Progress)));
        }
        if p.units_total.is_some() {
            f.push(("progress.units_total", Some(Progress)));
        }
        if p.progress_percent.is_some() {
            f.push(("progress.percent", Some(Progress)));
        }
    }
    if let Some(r) = &s.result {
        if r.grade_percent.is_some() {
            f.push(("result.grade_percent", Some(Grades)));
        }
        if r.passed.is_some() {
            f.push(("result.passed", Some(Grades)));
        }
        if r.graded_at.is_some() {
            f.push(("result.graded_at", Some(Grades)));
        }
        if r.final_at.is_some() {
            f.push(("result.final_at", Some(Grades)));
        }
        if r.completed_at.is_some() {
            f.push(("result.completed_at", Some(Completion)));
        }
    }
    f
}

/// The category a field named in a disclosure row belongs to; `Err` for a name this test does not know.
fn field_category(name: &str) -> Result<Option<Category>, TestCaseError> {
    use Category::*;
    Ok(Some(match name {
        "learner.pseudonym" => return Ok(None),
        "learner.username" => ProfileUsername,
        "learner.name" => ProfileName,
        "learner.email" => ProfileEmail,
        "learner.company" => ProfileCompany,
        "enrollment.course" | "enrollment.track" | "enrollment.status" | "enrollment.enrolled_at" => Enrollment,
        "progress.last_activity_at" => Activity,
        "progress.units_completed" | "progress.units_total" | "progress.percent" => Progress,
        "result.grade_percent" | "result.passed" | "result.graded_at" | "result.final_at" => Grades,
        "result.completed_at" => Completion,
        other => return Err(fail(format!("a disclosure names an unknown field {other:?}"))),
    }))
}

#[allow(clippy::too_many_arguments)]
fn check_export(
    conn: &mut Conn,
    w: &World,
    model: &Model,
    stats: &mut Stats,
    pi: usize,
    purpose: Purpose,
    want: Want,
    export_id: &str,
    shared: &[Shared],
) -> Result<(), TestCaseError> {
    let partner = &w.partners[pi];
    let mut seen: BTreeMap<i64, (bool, Categories)> = BTreeMap::new();
    let mut eids = Vec::with_capacity(shared.len());
    for s in shared {
        let cursor = s.records().next().map(|r| r.cursor().to_string());
        let Some(cursor) = cursor else { return Err(fail("a Shared with no record left the gate")) };
        prop_assert!(
            s.records().all(|r| r.cursor() == cursor && r.learner() == Some(&s.learner)),
            "one enrollment, one learner"
        );
        let eid = sharing::decode_cursor(&cursor).ok_or_else(|| fail("a cursor that does not decode"))?;
        eids.push(eid);
        // Only enrollments of this case exist for this case's partners.
        let Some(&(li, ci)) = model.enrollments.get(&eid) else {
            return Err(fail(format!("enrollment {eid} of another case left for {}", partner.name)));
        };
        let user = &w.learners[li];
        // promise: RGT-3 — a learner who restricted sharing yields nothing at all.
        prop_assert!(!model.restricted.contains(&li), "restricted learner {li} left in {export_id}");
        let concerned = match purpose {
            Purpose::MemberSharing => pi == ci,
            Purpose::Sponsorship => pi == SPONSOR && model.sponsored.contains(&(li, ci)),
            // This world has no organization staff and no exams (enrollments only).
            _ => false,
        };
        prop_assert!(concerned, "{purpose:?} for {} does not concern enrollment {eid}", partner.name);
        let key = (li, pi, purpose, run_scope(w.runs[ci]));
        // The most this record may carry, from the model alone.
        let allowed = match &s.basis {
            Basis::Consent { ledger_id } => {
                // promise: SHR-5 — no record leaves without a consent live at that instant.
                let Some(c) = model.live(&key) else {
                    return Err(fail(format!("learner {li} left for {} under no live consent: {key:?}", partner.name)));
                };
                prop_assert_eq!(*ledger_id, c.ledger_id, "the basis names the decision in force");
                stats.consent_records += 1;
                c.categories.intersect(&purpose.ceiling())
            }
            Basis::Processor => {
                return Err(fail(format!(
                    "{} got a processor record in a world without organization staff",
                    partner.name
                )));
            }
            Basis::Deidentified => {
                prop_assert!(purpose == Purpose::MemberSharing && partner.kind() == PartnerKind::Member);
                prop_assert!(model.live(&key).is_none(), "de-identified although a consent is live");
                let l = &s.learner;
                prop_assert!(l.pseudonymous && l.username.is_none() && l.name.is_none(), "{l:?}");
                prop_assert!(l.email.is_none() && l.company.is_none(), "{l:?}");
                stats.deidentified_records += 1;
                deidentified()
            }
        };
        // promise: SHR-2 — a sponsor never sees grades, and only consented learners.
        if pi == SPONSOR {
            prop_assert!(matches!(s.basis, Basis::Consent { .. }), "a sponsor saw a learner without consent");
            prop_assert!(s.result.as_ref().is_none_or(|r| r.grade_percent.is_none() && r.passed.is_none()));
            stats.sponsor_records += 1;
        }
        prop_assert!(s.categories.iter().all(|c| allowed.contains(c)), "{:?} exceeds {:?}", s.categories, allowed);
        // promise: SHR-5 — no field outside the consent's categories ever appears.
        for (field, cat) in carried(s) {
            prop_assert!(cat.is_none_or(|c| allowed.contains(c)), "{field} left without {cat:?} in {allowed:?}");
        }
        prop_assert!(s.enrollment.is_none() || want.enrollment, "an enrollment record nobody asked for");
        prop_assert!(s.progress.is_none() || want.progress, "a progress record nobody asked for");
        prop_assert!(s.result.is_none() || want.result, "a result record nobody asked for");
        // The values are this learner's and this enrollment's.
        let l = &s.learner;
        if l.pseudonymous && s.categories.iter().any(|c| c.is_identity()) {
            // Named without the username: a partner-wide id, never a run's code.
            prop_assert_eq!(&l.id, &partner.named_pseudonym(user.id));
        } else if l.pseudonymous {
            // A code of this run alone: nothing of another run, another
            // partner or an identified record carries it.
            prop_assert_eq!(&l.id, &partner.run_pseudonym(user.id, w.runs[ci]));
            prop_assert!(l.id != partner.pseudonym(user.id) && l.id != user.username);
            for (other, &run) in w.runs.iter().enumerate() {
                prop_assert!(other == ci || l.id != partner.run_pseudonym(user.id, run), "linkable across runs");
            }
        } else {
            prop_assert_eq!(&l.id, &user.username);
            stats.identified_records += 1;
        }
        if let Some(name) = &l.name {
            prop_assert_eq!(name, &format!("{} {}", user.first_name, user.last_name));
        }
        if let Some(email) = &l.email {
            prop_assert_eq!(email, &user.email);
        }
        if l.company.is_some() {
            prop_assert_eq!(&l.company, &w.companies[li]);
        }
        let course = s.records().next().map(|r| r.course().clone());
        let course = course.expect("a record");
        prop_assert_eq!(&course.id, &w.courses[ci].slug);
        prop_assert_eq!(&course.member, &w.member_slugs[ci]);
        if let Some(p) = &s.progress {
            let done = model.done.get(&eid).map_or(0, BTreeSet::len) as u32;
            prop_assert!(
                p.units_completed.is_none_or(|u| u == done),
                "units completed {:?} != {done}",
                p.units_completed
            );
            prop_assert!(p.units_total.is_none_or(|u| u == UNITS as u32));
        }
        if let Some(r) = &s.result {
            prop_assert!(r.completed_at.is_none() || model.passed.contains(&eid), "completed without completing");
        }
        seen.insert(eid, (matches!(s.basis, Basis::Consent { .. }), s.categories.clone()));
    }
    let unique: BTreeSet<i64> = eids.iter().copied().collect();
    prop_assert_eq!(unique.len(), eids.len(), "an enrollment was handed out twice in one walk");
    // The model agrees with the gate on what may leave (so the checks above are not vacuous).
    let expected = model.expected(w, pi, purpose, want);
    prop_assert_eq!(&seen, &expected, "{} {:?} {:?}", partner.name, purpose, want);
    for s in shared {
        let c = &s.categories;
        prop_assert_eq!(s.enrollment.is_some(), want.enrollment && c.contains(Category::Enrollment));
        prop_assert_eq!(
            s.progress.is_some(),
            want.progress && (c.contains(Category::Activity) || c.contains(Category::Progress))
        );
        prop_assert_eq!(
            s.result.is_some(),
            want.result && (c.contains(Category::Grades) || c.contains(Category::Completion))
        );
    }

    // promise: SHR-5 — every record that leaves has its disclosure row, and nothing else has one.
    let filter = lyceum::consent::manifests::Filter { export_id: Some(export_id), ..Default::default() };
    let rows: Vec<sharing::Disclosure> = lyceum::consent::manifests::expand(conn, &filter).map_err(fail)?;
    prop_assert_eq!(rows.len(), shared.len(), "one disclosure row per record handed out in {}", export_id);
    // The manifests count exactly what left: no more, no less, all delivered.
    let counted: Vec<i64> = lyceum::db::schema::manifests::table
        .filter(lyceum::db::schema::manifests::export_id.eq(export_id))
        .select(lyceum::db::schema::manifests::entries)
        .load(conn)
        .map_err(fail)?;
    prop_assert_eq!(counted.iter().sum::<i64>() as usize, shared.len(), "manifest counts in {}", export_id);
    prop_assert!(rows.iter().all(|r| r.delivered), "a page handed out is delivered");
    let mut by_key: HashMap<&str, &sharing::Disclosure> = HashMap::new();
    for r in &rows {
        prop_assert!(by_key.insert(r.record_key.as_str(), r).is_none(), "two rows for {}", r.record_key);
    }
    for (s, eid) in shared.iter().zip(&eids) {
        let (li, _) = model.enrollments[eid];
        let Some(row) = by_key.get(format!("enrollment:{eid}").as_str()) else {
            return Err(fail(format!("enrollment {eid} left in {export_id} without a disclosure row")));
        };
        prop_assert_eq!(row.user_id, w.learners[li].id);
        prop_assert_eq!(row.partner_id, Some(partner.id));
        prop_assert_eq!(&row.recipient, &partner.name);
        prop_assert_eq!(row.purpose.as_str(), purpose.as_str());
        match &s.basis {
            Basis::Consent { ledger_id } => {
                prop_assert_eq!(row.basis.as_str(), "consent");
                prop_assert_eq!(row.consent_ledger_id, Some(*ledger_id));
            }
            Basis::Deidentified => {
                prop_assert_eq!(row.basis.as_str(), "deidentified");
                prop_assert_eq!(row.consent_ledger_id, None);
            }
            Basis::Processor => {
                prop_assert_eq!(row.basis.as_str(), "processor");
                prop_assert_eq!(row.consent_ledger_id, None);
            }
        }
        let fields: HashSet<&str> = row.fields.split(',').collect();
        for (field, _) in carried(s) {
            prop_assert!(fields.contains(field), "{field} left but its disclosure row says {:?}", row.fields);
        }
        for field in &fields {
            let cat = field_category(field)?;
            prop_assert!(
                cat.is_none_or(|c| s.categories.contains(c)),
                "the row names {field} beyond {:?}",
                s.categories
            );
        }
    }
    Ok(())
}

fn property(conn: &mut Conn) -> Result<Stats, String> {
    let cases = match std::env::var("PROPTEST_CASES") {
        Ok(_) => Config::default().cases,
        Err(_) => 64,
    };
    let config = Config { cases, max_shrink_iters: 256, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let conn = RefCell::new(conn);
    let stats = RefCell::new(Stats::default());
    let started = Instant::now();
    let result = runner.run(&case(), |case| {
        let mut guard = conn.borrow_mut();
        let conn: &mut Conn = &mut guard;
        let (mut world, mut model) = setup(conn, &case)?;
        // Statistics count passing cases only, not shrink runs.
        let mut local = Stats::default();
        for e in &case.2 {
            apply(conn, &mut world, &mut model, &mut local, e, lyceum::db::now())?;
        }
        // A last look at everything each partner could pull, whatever the events were.
        for partner in 0..PARTNERS {
            let export = Event::Export { partner, odd: None, want: [true; 3], limit: 2 };
            apply(conn, &mut world, &mut model, &mut local, &export, lyceum::db::now())?;
        }
        let mut s = stats.borrow_mut();
        s.cases += 1;
        s.events += case.2.len();
        macro_rules! add {
            ($($f:ident),*) => { $(s.$f += local.$f;)* };
        }
        add!(
            enroll,
            grant,
            decline,
            sponsor_grant,
            sponsor_decline,
            withdraw,
            restrict,
            lift,
            progress,
            profile,
            export
        );
        add!(consent_records, deidentified_records, sponsor_records, identified_records);
        Ok(())
    });
    eprintln!("sharing_props: {:?} in {:.1?}", stats.borrow(), started.elapsed());
    result.map_err(|e| e.to_string())?;
    Ok(stats.into_inner())
}

async fn gate_never_leaks(app: TestApp) {
    let stats = app
        .db()
        .run(|conn| Ok::<_, lyceum::web::AppError>(property(conn)))
        .await
        .expect("database")
        .unwrap_or_else(|e| panic!("{e}"));
    // Every kind of event happened and exports yielded records on both bases: the property was exercised.
    let s = &stats;
    for (what, n) in [
        ("enrollments", s.enroll),
        ("member-sharing grants", s.grant),
        ("member-sharing declines", s.decline),
        ("sponsorship grants", s.sponsor_grant),
        ("sponsorship declines", s.sponsor_decline),
        ("withdrawals", s.withdraw),
        ("restrictions", s.restrict),
        ("lifted restrictions", s.lift),
        ("progress", s.progress),
        ("profile changes", s.profile),
        ("exports", s.export),
        ("records on consent", s.consent_records),
        ("de-identified records", s.deidentified_records),
        ("records for a sponsor", s.sponsor_records),
        ("identified records", s.identified_records),
    ] {
        assert!(n > 0, "no {what} in {} cases: {stats:?}", s.cases);
    }
}
on_both!(shr_5_rgt_3_gate_never_leaks_under_random_interleavings, gate_never_leaks);
