//! Partner pages in the browser: operator staff create partners, appoint
//! their admins, allocate sponsor seats, publish consent texts and record
//! legal disclosures; partner admins (and a member's admins, for its member
//! partner) manage API keys, profile fields, invitations, and read the
//! sponsor completion report, which is built from the gate alone.

use crate::accounts::service::TrailAccount;
use crate::web::trail::{Subject, Trail};
use chrono::{Duration, NaiveDate};
use diesel::prelude::*;
use rocket::http::{ContentType, Status};
use rocket::{FromForm, State, get, post};

use super::partners::{self, Partner, PartnerError};
use super::report;
use super::sharing::{self, LegalDisclosure};
use super::sponsors::{self, SponsorError};
use super::texts::{self, Audience};
use super::views::{
    AllocationItem, Checkbox, Choice, KeyItem, LegalPage, MemberItem, PartnerHead, PartnerItem, PartnerPage,
    PartnersPage, TextItem,
};
use super::{Categories, Category, PartnerKind, Purpose};
use crate::config::Config;
use crate::db::schema::members;
use crate::db::{Conn, Db, now};
use crate::kernel::SessionUser;
use crate::web::csrf::CsrfOnly;
use crate::web::format::{Day, Moment};
use crate::web::paging::PageRequest;
use crate::web::{AppError, AppResult, CsrfForm, CurrentUser, Flash, Page};

pub(crate) fn managed(conn: &mut Conn, user: &SessionUser, slug: &str) -> Result<Partner, AppError> {
    // Not revealing whether the partner exists.
    partners::managed(conn, user, slug)?.ok_or(AppError::NotFound)
}

pub(super) fn staff_only(user: &SessionUser) -> AppResult<()> {
    if user.is_staff() { Ok(()) } else { Err(AppError::Forbidden("Only operator staff can do this.".into())) }
}

fn partner_err(back: String, e: PartnerError) -> AppResult<Flash> {
    match e {
        PartnerError::Invalid(m) => Ok(Flash::error(back, m)),
        PartnerError::Db(d) => Err(d.into()),
    }
}

fn sponsor_err(back: String, e: SponsorError) -> AppResult<Flash> {
    match e {
        SponsorError::Db(d) => Err(d.into()),
        other => Ok(Flash::error(back, other.to_string())),
    }
}

/// Partners per page of `/partners`.
const PARTNERS_PAGE: i64 = 50;
/// Rows per page of a partner page's lists.
const ALLOCATIONS_PAGE: i64 = 20;
const DESTINATIONS_PAGE: i64 = 20;
const SENDS_PAGE: i64 = 20;
const DEAD_PAGE: i64 = 50;

#[get("/partners?<page>")]
pub async fn index(db: &State<Db>, user: CurrentUser, trail: Trail<'_>, page: Option<&str>) -> AppResult<Page> {
    // The partners' names and kinds.
    trail.nobody();
    let user = user.0;
    let paging = PageRequest::parse(page, PARTNERS_PAGE);
    let ctx = db
        .run(move |conn| {
            // A member's admins manage its member partner, created on first visit.
            for (role, scope) in &user.roles {
                if *role == crate::kernel::Role::MemberAdmin
                    && let Some(id) = scope.strip_prefix("member:").and_then(|s| s.parse::<i64>().ok())
                    && let Ok(m) = crate::learning::service::member(conn, id)
                {
                    partners::for_member(conn, &m)?;
                }
            }
            let list = partners::managed_by(conn, &user, paging.offset(), paging.fetch())?;
            let (list, nav) = paging.finish(list, |p| format!("/partners?page={p}"));
            // The member institutions, for staff adding a member's partner.
            let member_list: Vec<(String, String)> = if user.is_staff() {
                members::table.order(members::name).select((members::slug, members::name)).load(conn)?
            } else {
                Vec::new()
            };
            Ok::<_, AppError>(PartnersPage {
                partners: list
                    .into_iter()
                    .map(|p| PartnerItem { kind: p.kind().label(), slug: p.slug, name: p.name })
                    .collect(),
                nav,
                is_staff: user.is_staff(),
                kinds: PartnerKind::ALL.iter().map(|k| Choice { value: k.as_str(), label: k.label() }).collect(),
                members: member_list.into_iter().map(|(slug, name)| MemberItem { slug, name }).collect(),
            })
        })
        .await?;
    Ok(Page::view("consent/partners", "Partners", ctx))
}

#[derive(FromForm)]
pub struct CreatePartnerForm {
    #[field(default = String::new())]
    kind: String,
    #[field(default = String::new())]
    slug: String,
    #[field(default = String::new())]
    name: String,
    #[field(default = String::new())]
    contact_email: String,
    #[field(default = String::new())]
    member: String,
}

#[post("/partners", data = "<form>")]
pub async fn create(
    trail: Trail<'_>,
    db: &State<Db>,
    user: CurrentUser,
    form: CsrfForm<CreatePartnerForm>,
) -> AppResult<Flash> {
    trail.nobody();
    staff_only(&user)?;
    let f = form.form;
    let Some(kind) = PartnerKind::parse(&f.kind) else {
        return Ok(Flash::error("/partners", "Choose what kind of partner this is."));
    };
    db.run(move |conn| {
        let member_id = if kind == PartnerKind::Member {
            let id: Option<i64> =
                members::table.filter(members::slug.eq(f.member.trim())).select(members::id).first(conn).optional()?;
            match id {
                Some(id) => Some(id),
                None => return Ok(Flash::error("/partners", "Choose the member institution this partner stands for.")),
            }
        } else {
            None
        };
        match partners::create(conn, kind, f.slug.trim(), &f.name, member_id, &f.contact_email, now()) {
            Ok(p) => Ok(Flash::success(format!("/partners/{}", p.slug), format!("{} is now a partner.", p.name))),
            Err(e) => partner_err("/partners".into(), e),
        }
    })
    .await
}

/// Which page of each of a partner page's lists a request asks for
/// (`?allocations=`, `?destinations=`, `?sends=`, `?dead=`); a link to a
/// page of one list keeps the pages shown of the others. `?course=` finds
/// the course runs a member of staff allocates seats in.
#[derive(Debug, Clone)]
pub struct PartnerLists {
    allocations: PageRequest,
    destinations: PageRequest,
    sends: PageRequest,
    dead: PageRequest,
    course: String,
}

impl PartnerLists {
    pub fn parse(
        allocations: Option<&str>,
        destinations: Option<&str>,
        sends: Option<&str>,
        dead: Option<&str>,
    ) -> PartnerLists {
        PartnerLists {
            allocations: PageRequest::parse(allocations, ALLOCATIONS_PAGE),
            destinations: PageRequest::parse(destinations, DESTINATIONS_PAGE),
            sends: PageRequest::parse(sends, SENDS_PAGE),
            dead: PageRequest::parse(dead, DEAD_PAGE),
            course: String::new(),
        }
    }

    /// The runs to allocate seats in are those matching `course`.
    pub fn finding(mut self, course: Option<&str>) -> PartnerLists {
        self.course = course.unwrap_or_default().to_string();
        self
    }

    /// The first page of every list.
    pub fn first() -> PartnerLists {
        PartnerLists::parse(None, None, None, None)
    }

    /// The address of the partner page with page `page` of `list`.
    fn link(&self, slug: &str, list: &str, page: i64) -> String {
        let lists = [
            ("allocations", self.allocations),
            ("destinations", self.destinations),
            ("sends", self.sends),
            ("dead", self.dead),
        ];
        let query: Vec<String> = lists
            .iter()
            .map(|(name, req)| (name, if *name == list { page } else { req.page() }))
            .filter(|(_, p)| *p > 1)
            .map(|(name, p)| format!("{name}={p}"))
            .collect();
        if query.is_empty() { format!("/partners/{slug}") } else { format!("/partners/{slug}?{}", query.join("&")) }
    }
}

#[get("/partners/<slug>?<allocations>&<destinations>&<sends>&<dead>&<course>")]
#[allow(clippy::too_many_arguments)]
pub async fn show(
    db: &State<Db>,
    hooks: &State<super::hooks::ConsentHooks>,
    user: CurrentUser,
    trail: Trail<'_>,
    slug: &str,
    allocations: Option<&str>,
    destinations: Option<&str>,
    sends: Option<&str>,
    dead: Option<&str>,
    course: Option<&str>,
) -> AppResult<Page> {
    let slug = slug.to_string();
    let user = user.0;
    let lists = PartnerLists::parse(allocations, destinations, sends, dead).finding(course);
    let (buying, priced_runs) = (hooks.buying, hooks.priced_runs);
    let (title, view, partner_id) = db
        .run(move |conn| {
            let p = managed(conn, &user, &slug)?;
            let mut view = partner_context(conn, &user, &p, None, lists)?;
            // Sponsors buy seats through the payment provider, when there is one (CRT-1).
            if buying && p.kind() == PartnerKind::Sponsor {
                view.buy_runs = priced_runs(conn)?;
            }
            Ok::<_, AppError>((p.name, view, p.id))
        })
        .await?;
    // The partner's settings, keys, contact and pushes.
    trail.add(Subject::of_partner(partner_id));
    Ok(Page::view("consent/partner", title, view))
}

pub(super) fn partner_context(
    conn: &mut Conn,
    user: &SessionUser,
    p: &Partner,
    new_key: Option<String>,
    lists: PartnerLists,
) -> AppResult<PartnerPage> {
    let kind = p.kind();
    let keys = partners::keys(conn, p)?;
    let sponsor = kind == PartnerKind::Sponsor;
    let (a, d, s, x) = (lists.allocations, lists.destinations, lists.sends, lists.dead);
    let allocations = if sponsor { sponsors::allocations_page(conn, p, a.offset(), a.fetch())? } else { Vec::new() };
    let (allocations, allocations_nav) = a.finish(allocations, |n| lists.link(&p.slug, "allocations", n));
    let texts: Vec<TextItem> = Purpose::ALL
        .iter()
        .filter_map(|purpose| {
            texts::current(conn, p, *purpose, "en").ok().flatten().map(|t| TextItem {
                purpose: purpose.as_str(),
                label: purpose.label(),
                version: t.version,
                own: t.partner_id.is_some(),
                body: t.body,
            })
        })
        .collect();
    let requested = p.requested_profile();
    let pushes = p.record_purpose().is_some();
    let destinations = if pushes { super::push::destinations(conn, p, d.offset(), d.fetch())? } else { Vec::new() };
    let (destinations, destinations_nav) = d.finish(destinations, |n| lists.link(&p.slug, "destinations", n));
    let sends = if pushes { super::push::sends(conn, p, false, s.offset(), s.fetch())? } else { Vec::new() };
    let (sends, sends_nav) = s.finish(sends, |n| lists.link(&p.slug, "sends", n));
    let dead = if pushes { super::push::sends(conn, p, true, x.offset(), x.fetch())? } else { Vec::new() };
    let (dead, dead_nav) = x.finish(dead, |n| lists.link(&p.slug, "dead", n));
    Ok(PartnerPage {
        partner: PartnerHead {
            slug: p.slug.clone(),
            name: p.name.clone(),
            kind: kind.label(),
            contact_email: p.contact_email.clone(),
            member: p.member_id.is_some(),
            sponsor,
            organization: kind == PartnerKind::Organization,
            exam_body: kind == PartnerKind::ExamBody,
        },
        is_staff: user.is_staff(),
        new_key,
        new_secret: None,
        keys: keys
            .into_iter()
            .map(|k| KeyItem {
                id: k.id,
                name: k.name,
                prefix: k.prefix,
                scopes: k.scopes,
                created: Day::from(k.created_at),
                last_used: k.last_used_at.map(Moment),
                revoked: k.revoked_at.is_some(),
            })
            .collect(),
        // Reading scopes come ticked; provisioning staff (SCIM) is for organizations, and unticked.
        scopes: partners::SCOPES
            .iter()
            .filter(|s| partners::scope_fits(s, kind))
            .map(|s| Checkbox {
                value: s,
                checked: *s != "scim",
                label: match *s {
                    "scim" => "scim (provision staff at /scim/v2)",
                    "exams" => "exams (candidates and results at /api/v1/exams)",
                    s => s,
                },
            })
            .collect(),
        profile_fields: Category::PROFILE
            .iter()
            .map(|c| Checkbox { value: c.as_str(), label: c.label(), checked: requested.contains(*c) })
            .collect(),
        allocations: allocations
            .into_iter()
            .map(|(a, course, run, free)| AllocationItem {
                id: a.id,
                course,
                run,
                seats: a.seats,
                free,
                expires: Day::from(a.expires_at),
                note: a.note,
            })
            .collect(),
        allocations_nav,
        runs: if user.is_staff() {
            let action = format!("/partners/{}#allocate-h", p.slug);
            Some(crate::learning::service::run_choices(conn, &lists.course, &action, now())?)
        } else {
            None
        },
        buy_runs: Vec::new(),
        texts,
        purposes: Purpose::ALL.iter().map(|p| Choice { value: p.as_str(), label: p.label() }).collect(),
        pushes,
        destinations: destinations.into_iter().map(super::outbox::destination_item).collect(),
        destinations_nav,
        sends: sends.into_iter().map(super::outbox::send_item).collect(),
        sends_nav,
        dead: dead.into_iter().map(super::outbox::send_item).collect(),
        dead_nav,
    })
}

#[derive(FromForm)]
pub struct LoginForm {
    #[field(default = String::new())]
    login: String,
}

#[post("/partners/<slug>/admins", data = "<form>")]
pub async fn appoint(
    db: &State<Db>,
    user: CurrentUser,
    trail: Trail<'_>,
    slug: &str,
    form: CsrfForm<LoginForm>,
) -> AppResult<Flash> {
    trail.partner_page(slug);
    trail.account(db, &form.form.login).await;
    staff_only(&user)?;
    let slug = slug.to_string();
    let login = form.form.login.clone();
    db.run(move |conn| {
        let p = managed(conn, &user, &slug)?;
        let back = format!("/partners/{}", p.slug);
        let Some(target) = crate::accounts::service::find_for_login(conn, &login)? else {
            return Ok(Flash::error(back, "No account has that username or email."));
        };
        partners::appoint(conn, &p, target.id, user.id)?;
        Ok(Flash::success(back, format!("{} now acts for {}.", target.username, p.name)))
    })
    .await
}

#[derive(FromForm)]
pub struct KeyForm {
    #[field(default = String::new())]
    name: String,
    #[field(default = Vec::new())]
    scopes: Vec<String>,
}

#[post("/partners/<slug>/keys", data = "<form>")]
pub async fn create_key(
    db: &State<Db>,
    user: CurrentUser,
    trail: Trail<'_>,
    slug: &str,
    form: CsrfForm<KeyForm>,
) -> AppResult<rocket::Either<Page, Flash>> {
    trail.partner_page(slug);
    let slug = slug.to_string();
    let f = form.form;
    let user = user.0;
    db.run(move |conn| {
        let p = managed(conn, &user, &slug)?;
        let scopes: Vec<&str> = f.scopes.iter().map(String::as_str).collect();
        match partners::create_key(conn, &p, &f.name, &scopes, Some(user.id)) {
            // Shown once, on this response only; never stored in clear.
            Ok(key) => {
                let view = partner_context(conn, &user, &p, Some(key), PartnerLists::first())?;
                Ok(rocket::Either::Left(Page::view("consent/partner", p.name.clone(), view)))
            }
            Err(e) => partner_err(format!("/partners/{}", p.slug), e).map(rocket::Either::Right),
        }
    })
    .await
}

#[post("/partners/<slug>/keys/<id>/revoke", data = "<_form>")]
pub async fn revoke_key(
    db: &State<Db>,
    user: CurrentUser,
    trail: Trail<'_>,
    slug: &str,
    id: i64,
    _form: CsrfOnly,
) -> AppResult<Flash> {
    trail.partner_page(slug);
    let slug = slug.to_string();
    db.run(move |conn| {
        let p = managed(conn, &user, &slug)?;
        let back = format!("/partners/{}", p.slug);
        Ok(if partners::revoke_key(conn, &p, id)? {
            Flash::success(back, "The key is revoked; requests with it are refused from now on.")
        } else {
            Flash::error(back, "That key does not exist or is already revoked.")
        })
    })
    .await
}

#[derive(FromForm)]
pub struct FieldsForm {
    #[field(default = Vec::new())]
    fields: Vec<String>,
}

#[post("/partners/<slug>/fields", data = "<form>")]
pub async fn profile_fields(
    db: &State<Db>,
    user: CurrentUser,
    trail: Trail<'_>,
    slug: &str,
    form: CsrfForm<FieldsForm>,
) -> AppResult<Flash> {
    trail.partner_page(slug);
    let slug = slug.to_string();
    let fields = Categories::parse(&form.form.fields.join(","));
    db.run(move |conn| {
        let p = managed(conn, &user, &slug)?;
        let back = format!("/partners/{}", p.slug);
        if p.kind() != PartnerKind::Member {
            return Ok(Flash::error(back, "Only member institutions ask for profile fields at enrollment."));
        }
        partners::set_profile_fields(conn, &p, &fields)?;
        Ok(Flash::success(
            back,
            "Saved. New enrollments are asked for these fields; consents already given keep what they covered.",
        ))
    })
    .await
}

#[derive(FromForm)]
pub struct TextForm {
    #[field(default = String::new())]
    purpose: String,
    #[field(default = String::new())]
    body: String,
}

#[post("/partners/<slug>/texts", data = "<form>")]
pub async fn publish_text(
    db: &State<Db>,
    user: CurrentUser,
    trail: Trail<'_>,
    slug: &str,
    form: CsrfForm<TextForm>,
) -> AppResult<Flash> {
    trail.partner_page(slug);
    staff_only(&user)?;
    let slug = slug.to_string();
    let f = form.form;
    db.run(move |conn| {
        let p = managed(conn, &user, &slug)?;
        let back = format!("/partners/{}", p.slug);
        let Some(purpose) = Purpose::parse(&f.purpose) else {
            return Ok(Flash::error(back, "Choose the purpose this text asks consent for."));
        };
        let body = f.body.trim();
        if body.len() < 20 || body.len() > 5000 {
            return Ok(Flash::error(back, "A consent text is between 20 and 5,000 characters."));
        }
        let t = texts::publish(conn, Audience::Partner(&p), purpose, "en", body, Some(user.id), now())?;
        Ok(Flash::success(
            back,
            format!(
                "Version {} published. Consents given under earlier versions keep exactly what they covered.",
                t.version
            ),
        ))
    })
    .await
}

#[derive(FromForm)]
pub struct AllocationForm {
    run_id: Option<i64>,
    seats: Option<i32>,
    #[field(default = String::new())]
    expires: String,
    #[field(default = String::new())]
    note: String,
}

#[post("/partners/<slug>/allocations", data = "<form>")]
pub async fn allocate(
    db: &State<Db>,
    user: CurrentUser,
    trail: Trail<'_>,
    slug: &str,
    form: CsrfForm<AllocationForm>,
) -> AppResult<Flash> {
    trail.partner_page(slug);
    staff_only(&user)?;
    let slug = slug.to_string();
    let f = form.form;
    db.run(move |conn| {
        let p = managed(conn, &user, &slug)?;
        let back = format!("/partners/{}", p.slug);
        let (Some(run_id), Some(seats)) = (f.run_id, f.seats) else {
            return Ok(Flash::error(back, "Choose a course run and a number of seats."));
        };
        let expires = if f.expires.trim().is_empty() {
            now() + Duration::days(90)
        } else {
            match NaiveDate::parse_from_str(f.expires.trim(), "%Y-%m-%d") {
                Ok(d) => d.and_hms_opt(23, 59, 59).unwrap_or_default(),
                Err(_) => return Ok(Flash::error(back, "The expiry date must look like 2027-03-31.")),
            }
        };
        match sponsors::allocate(
            conn,
            &p,
            &sponsors::SeatRequest { run_id, seats, expires_at: expires, note: &f.note, by: Some(user.id) },
            now(),
        ) {
            Ok(a) => Ok(Flash::success(back, format!("{} seats allocated.", a.seats))),
            Err(e) => sponsor_err(back, e),
        }
    })
    .await
}

#[derive(FromForm)]
pub struct InviteForm {
    #[field(default = String::new())]
    emails: String,
}

#[post("/partners/<slug>/allocations/<id>/invite", data = "<form>")]
pub async fn invite(
    db: &State<Db>,
    user: CurrentUser,
    trail: Trail<'_>,
    slug: &str,
    id: i64,
    form: CsrfForm<InviteForm>,
) -> AppResult<Flash> {
    trail.partner_page(slug);
    let slug = slug.to_string();
    let emails: Vec<String> =
        form.form.emails.split([',', '\n', ';']).map(|e| e.trim().to_string()).filter(|e| !e.is_empty()).collect();
    db.run(move |conn| {
        let p = managed(conn, &user, &slug)?;
        let back = format!("/partners/{}", p.slug);
        let Some(a) = sponsors::allocation(conn, &p, id)? else { return Err(AppError::NotFound) };
        if emails.is_empty() {
            return Ok(Flash::error(back, "Enter at least one email address."));
        }
        let mut sent = 0;
        for email in &emails {
            if let Err(e) = sponsors::invite(conn, &p, &a, email, now()) {
                let msg = if sent > 0 { format!("{sent} invitation(s) sent; then: {e}") } else { e.to_string() };
                return sponsor_err(
                    back,
                    match e {
                        SponsorError::Db(d) => SponsorError::Db(d),
                        _ => SponsorError::Invalid(msg),
                    },
                );
            }
            sent += 1;
        }
        Ok(Flash::success(back, format!("{sent} invitation(s) sent.")))
    })
    .await
}

#[derive(FromForm, Default)]
pub struct ReportFilter {
    course: Option<String>,
    status: Option<String>,
    page: Option<usize>,
}

impl ReportFilter {
    fn as_filter(&self, paged: bool) -> report::Filter<'_> {
        report::Filter {
            course: self.course.as_deref(),
            status: self.status.as_deref(),
            page: paged.then(|| self.page.unwrap_or(1)),
        }
    }
}

#[get("/partners/<slug>/report?<filter..>")]
pub async fn report_page(
    db: &State<Db>,
    config: &State<Config>,
    user: CurrentUser,
    trail: Trail<'_>,
    slug: &str,
    filter: ReportFilter,
) -> AppResult<Page> {
    let slug = slug.to_string();
    let base = config.base_url();
    let (title, ctx, subject) = db
        .run(move |conn| {
            let p = managed(conn, &user, &slug)?;
            if p.kind() != PartnerKind::Sponsor {
                return Err(AppError::NotFound);
            }
            let export_id = format!("report-{}", uuid::Uuid::new_v4());
            let report = report::build(conn, &p, &export_id, &base, filter.as_filter(true), now())?;
            let mut ctx = report::context(&p, &report, filter.as_filter(true), now());
            // Exam results of the courses it funded, each under its own consent (SHR-3).
            ctx.exam_results = sharing::funded_results(conn, &p, &export_id, now())?;
            // Each learner shown is in their disclosure log under this export id.
            let subject = Subject::of_partner(p.id).item(format!("export {export_id} (completion report)"));
            Ok((format!("{}: completion report", p.name), ctx, subject))
        })
        .await?;
    trail.add(subject);
    Ok(Page::view("consent/report", title, ctx))
}

#[get("/partners/<slug>/report.csv?<filter..>")]
pub async fn report_csv(
    db: &State<Db>,
    config: &State<Config>,
    user: CurrentUser,
    trail: Trail<'_>,
    slug: &str,
    filter: ReportFilter,
) -> AppResult<(Status, (ContentType, String))> {
    let slug = slug.to_string();
    let base = config.base_url();
    let (csv, subject) = db
        .run(move |conn| {
            let p = managed(conn, &user, &slug)?;
            if p.kind() != PartnerKind::Sponsor {
                return Err(AppError::NotFound);
            }
            let export_id = format!("report-csv-{}", uuid::Uuid::new_v4());
            let csv = report::csv_download(conn, &p, &export_id, &base, filter.as_filter(false), now())?;
            Ok((csv, Subject::of_partner(p.id).item(format!("export {export_id} (completion report CSV)"))))
        })
        .await?;
    trail.add(subject);
    Ok((Status::Ok, (ContentType::CSV, csv)))
}

#[derive(FromForm)]
pub struct LegalForm {
    #[field(default = String::new())]
    login: String,
    #[field(default = String::new())]
    recipient: String,
    #[field(default = String::new())]
    legal_reference: String,
    #[field(default = String::new())]
    fields: String,
    #[field(default = String::new())]
    note: String,
}

#[get("/staff/legal-disclosures")]
pub fn legal_form(user: CurrentUser, trail: Trail<'_>) -> AppResult<Page> {
    staff_only(&user)?;
    // An empty form.
    trail.nobody();
    Ok(Page::view("consent/legal", "Record a legal disclosure", LegalPage {}))
}

#[post("/staff/legal-disclosures", data = "<form>")]
pub async fn record_legal(
    db: &State<Db>,
    user: CurrentUser,
    trail: Trail<'_>,
    form: CsrfForm<LegalForm>,
) -> AppResult<Flash> {
    staff_only(&user)?;
    let f = form.form;
    let back = "/staff/legal-disclosures".to_string();
    if [&f.recipient, &f.legal_reference, &f.fields].iter().any(|s| s.trim().is_empty()) {
        return Ok(Flash::error(back, "Recipient, legal reference and the fields disclosed are all required."));
    }
    let login = f.login.clone();
    let target = db
        .run(move |conn| Ok::<_, AppError>(crate::accounts::service::find_for_login(conn, login.trim())?.map(|t| t.id)))
        .await?;
    trail.users(target);
    db.run(move |conn| {
        let Some(target) = crate::accounts::service::find_for_login(conn, f.login.trim())? else {
            return Ok(Flash::error(back, "No account has that username or email."));
        };
        let fields: Vec<&str> = f.fields.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        sharing::record_legal(
            conn,
            &LegalDisclosure {
                user_id: target.id,
                partner_id: None,
                recipient: f.recipient.trim(),
                legal_reference: f.legal_reference.trim(),
                fields: &fields.join(","),
                note: f.note.trim(),
                recorded_by: user.id,
            },
            now(),
        )?;
        Ok(Flash::success(back, format!("Disclosure about {} recorded with its legal reference.", target.username)))
    })
    .await
}
