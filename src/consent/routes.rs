//! Learner pages: the Sharing page (every consent with the text seen, every
//! disclosure, withdraw, restrict all sharing) and sponsor code redemption.

use crate::web::trail::Trail;
use std::collections::HashMap;

use diesel::prelude::*;
use rocket::{FromForm, State, get, post};

use super::hooks::{ConsentHooks, RestrictionCarriedOut};
use super::ledger::{self, Action, Entry, Evidence};
use super::sponsors::{self, Decision, SponsorError};
use super::texts;
use super::views::{
    ConsentItem, EmployerItem, HistoryItem, MarketingOffer, OnBehalf, ParentAskPage, ParentDonePage, ParentGonePage,
    RedeemCodePage, RedeemPage, SharingLookup, SharingPage, TextShown, WaitingItem,
};
use super::{Categories, Purpose};
use crate::db::schema::{consents, course_runs, courses, partners};
use crate::db::{Conn, Db, now};
use crate::web::format::{Day, Moment};
use crate::web::{AppError, AppResult, ClientInfo, CsrfForm, CurrentUser, Flash, Page};

fn labels(categories: &str) -> Vec<&'static str> {
    Categories::parse(categories).iter().map(|c| c.label()).collect()
}

/// Human description of a consent's scope.
fn scope_label(conn: &mut Conn, scope: &str) -> QueryResult<String> {
    if let Some(run_id) = scope.strip_prefix("run:").and_then(|s| s.parse::<i64>().ok()) {
        let found: Option<(String, String)> = course_runs::table
            .inner_join(courses::table)
            .filter(course_runs::id.eq(run_id))
            .select((courses::title, course_runs::run_key))
            .first(conn)
            .optional()?;
        return Ok(found.map_or_else(|| "A course".into(), |(t, k)| format!("{t} ({k})")));
    }
    // Exam consents cover one course, whichever session is booked.
    if let Some(course_id) = scope.strip_prefix("course:").and_then(|s| s.parse::<i64>().ok()) {
        let title: Option<String> = courses::table.find(course_id).select(courses::title).first(conn).optional()?;
        return Ok(title.map_or_else(|| "A course".into(), |t| format!("{t}, its exams")));
    }
    Ok("Everything".into())
}

/// The Sharing page of `user_id`, its forms posting under `base`.
fn sharing_context(conn: &mut Conn, user_id: i64, base: String) -> QueryResult<SharingPage> {
    let rows: Vec<(i64, String, String, String, String, i64, String)> = consents::table
        .inner_join(partners::table)
        .filter(consents::user_id.eq(user_id))
        .order(consents::updated_at.desc())
        .select((
            consents::id,
            partners::name,
            consents::purpose,
            consents::scope,
            consents::status,
            consents::ledger_id,
            consents::categories,
        ))
        .load(conn)?;
    let history = ledger::for_user(conn, user_id)?;
    let by_id: HashMap<i64, &ledger::LedgerRow> = history.iter().map(|r| (r.id, r)).collect();
    let mut items = Vec::new();
    for (id, partner, purpose, scope, status, ledger_id, cats) in rows {
        let row = by_id.get(&ledger_id);
        // The text of the decision that set this state (a withdrawal has
        // none; show the one the consent was given under).
        let text_row = history
            .iter()
            .filter(|r| r.id <= ledger_id && r.text_id.is_some())
            .find(|r| r.purpose == purpose && r.scope == scope && row.is_some_and(|x| x.partner_id == r.partner_id));
        let text = match text_row.and_then(|r| r.text_id) {
            Some(tid) => texts::by_id(conn, tid).optional()?,
            None => None,
        };
        items.push(ConsentItem {
            id,
            partner,
            purpose: Purpose::parse(&purpose).map_or(purpose.as_str(), |p| p.label()).to_string(),
            scope: scope_label(conn, &scope)?,
            granted: status == "granted",
            status,
            categories: labels(&cats),
            since: row.map(|r| Moment(r.created_at)),
            text: text.map(|t| TextShown { body: t.body, version: t.version, sha256: t.sha256 }),
        });
    }
    let waiting = super::parents::waiting(conn, user_id, now())?;
    let entries = super::log::entries_of(conn, user_id, LOG_ROWS)?;
    let shown_rows = entries.len();
    let decisions = super::log::decisions_of(conn, &history)?;
    let groups = super::log::group(&entries, &decisions);
    let restricted = ledger::is_restricted(conn, user_id)?;
    // Organizations that have this person as staff receive their training records as processor (SHR-7).
    let employers: Vec<String> = {
        use crate::db::schema::{org_staff, partners};
        org_staff::table
            .inner_join(partners::table.on(partners::id.eq(org_staff::partner_id)))
            .filter(org_staff::user_id.eq(user_id))
            .select(partners::name)
            .load(conn)?
    };
    let staff_training = Purpose::StaffTraining;
    // Every decision in the ledger, in the log's words (restrictions too).
    let partner_names: HashMap<i64, String> = decisions_partner_names(conn, &history)?;
    let decisions_in_words: Vec<String> = history
        .iter()
        .map(|r| {
            let partner = r.partner_id.and_then(|p| partner_names.get(&p)).cloned().unwrap_or_default();
            let sentence = super::log::decision_sentence(&super::log::Decision {
                partner: partner.clone(),
                purpose: r.purpose.clone(),
                course: None,
                action: r.action.clone(),
                actor: r.actor.clone(),
                categories: Categories::parse(&r.categories),
                at: r.created_at,
                note: r.note.clone(),
            });
            if partner.is_empty() {
                sentence
            } else {
                format!("{partner}, {}: {sentence}", super::log::purpose_label(&r.purpose).to_lowercase())
            }
        })
        .collect();
    Ok(SharingPage {
        base,
        on_behalf: None,
        employers: employers
            .into_iter()
            .map(|name| EmployerItem { name, what: staff_training.ceiling().iter().map(|c| c.label()).collect() })
            .collect(),
        waiting: waiting
            .into_iter()
            .map(|(partner, purpose, at)| WaitingItem {
                partner,
                purpose: Purpose::parse(&purpose).map_or(purpose.as_str(), |p| p.label()).to_string(),
                asked: Moment(at),
            })
            .collect(),
        consents: items,
        restricted: restricted.is_some(),
        restricted_since: restricted.map(Moment),
        log: groups,
        shared_anything: !entries.is_empty(),
        log_rows: LOG_ROWS,
        log_full: shown_rows as i64 >= LOG_ROWS,
        history: history
            .iter()
            .zip(decisions_in_words)
            .map(|(r, sentence)| HistoryItem {
                when: Moment(r.created_at),
                sentence,
                how: super::log::method_label(&r.method),
                partner: r.partner_id.is_some(),
                hash: r.row_hash[..16].to_string(),
            })
            .collect(),
    })
}

/// Disclosure rows the Sharing page reads (newest first).
const LOG_ROWS: i64 = 500;

fn decisions_partner_names(conn: &mut Conn, history: &[ledger::LedgerRow]) -> QueryResult<HashMap<i64, String>> {
    let ids: Vec<i64> = history.iter().filter_map(|r| r.partner_id).collect();
    Ok(partners::table
        .filter(partners::id.eq_any(ids))
        .select((partners::id, partners::name))
        .load::<(i64, String)>(conn)?
        .into_iter()
        .collect())
}

#[get("/sharing")]
pub async fn page(db: &State<Db>, user: CurrentUser) -> AppResult<Page> {
    let id = user.id;
    let view = db.run(move |conn| Ok::<_, AppError>(sharing_context(conn, id, "/sharing".into())?)).await?;
    Ok(Page::view("consent/sharing", "Sharing", view))
}

/// Withdraws one of `user_id`'s consents; the partner's name.
fn withdraw_in(conn: &mut Conn, user_id: i64, consent_id: i64, evidence: &Evidence) -> Result<String, AppError> {
    let found: Option<(Option<i64>, String, String, String, String, String)> = consents::table
        .inner_join(partners::table)
        .filter(consents::id.eq(consent_id))
        .filter(consents::user_id.eq(user_id))
        .select((
            consents::partner_id.nullable(),
            consents::purpose,
            consents::scope,
            consents::status,
            consents::categories,
            partners::name,
        ))
        .first(conn)
        .optional()?;
    let Some((partner_id, purpose, scope, status, cats, name)) = found else {
        return Err(AppError::NotFound);
    };
    if status != super::ConsentStatus::Granted {
        return Err(AppError::Unprocessable("This consent is not in force, so there is nothing to withdraw.".into()));
    }
    let categories = Categories::parse(&cats);
    ledger::append(
        conn,
        Entry {
            user_id,
            partner_id,
            purpose: &purpose,
            scope: &scope,
            action: Action::Withdraw,
            categories: &categories,
            text: None,
            evidence,
        },
        now(),
    )?;
    Ok(name)
}

/// Restricts (`on`) or lifts the restriction of all of `user_id`'s sharing;
/// false when it already was so (a repeated click records nothing). Each
/// change is also a data request (RGT-5), carried out at once: the learner's
/// own, or staff's for the learner with their note, recorded by `carried_out`
/// (privacy's).
fn restrict_in(
    conn: &mut Conn,
    carried_out: RestrictionCarriedOut,
    user_id: i64,
    on: bool,
    evidence: &Evidence,
) -> Result<bool, AppError> {
    crate::db::transaction(conn, |conn| {
        ledger::lock(conn)?;
        let already = ledger::is_restricted(conn, user_id)?.is_some();
        if already == on {
            return Ok(false);
        }
        let now = now();
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
                evidence,
            },
            now,
        )?;
        carried_out(conn, user_id, on, evidence, now)?;
        Ok(true)
    })
}

fn restrict_choice(value: &str) -> AppResult<bool> {
    match value {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(AppError::Unprocessable("Choose whether to restrict sharing (on) or not (off).".into())),
    }
}

#[post("/sharing/consents/<id>/withdraw", data = "<_form>")]
pub async fn withdraw(
    db: &State<Db>,
    user: CurrentUser,
    client: ClientInfo,
    id: i64,
    _form: crate::web::csrf::CsrfOnly,
) -> AppResult<Flash> {
    let user_id = user.id;
    let evidence = Evidence::learner_web(user_id, &client);
    let partner = db.run(move |conn| withdraw_in(conn, user_id, id, &evidence)).await?;
    Ok(Flash::success("/sharing", format!("Withdrawn. {partner} receives nothing new under this consent from now on.")))
}

#[derive(FromForm)]
pub struct RestrictForm {
    #[field(default = String::new())]
    restrict: String,
}

#[post("/sharing/restrict", data = "<form>")]
pub async fn restrict(
    db: &State<Db>,
    hooks: &State<ConsentHooks>,
    user: CurrentUser,
    client: ClientInfo,
    form: CsrfForm<RestrictForm>,
) -> AppResult<Flash> {
    let on = restrict_choice(&form.form.restrict)?;
    let user_id = user.id;
    let evidence = Evidence::learner_web(user_id, &client);
    let carried_out = hooks.restriction_carried_out;
    db.run(move |conn| restrict_in(conn, carried_out, user_id, on, &evidence)).await?;
    Ok(if on {
        Flash::success(
            "/sharing",
            "All sharing of your data is frozen. No partner receives anything about you until you lift this.",
        )
    } else {
        Flash::info("/sharing", "The restriction is lifted. Your consents apply again.")
    })
}

/// Operator staff act for a learner who asked by letter, phone or email:
/// the same withdrawal and restriction, recorded with the staff member as
/// actor and their note (why, and how the learner asked).
#[get("/staff/sharing?<login>")]
pub async fn staff_page(db: &State<Db>, user: CurrentUser, trail: Trail<'_>, login: Option<&str>) -> AppResult<Page> {
    if !user.is_staff() {
        return Err(AppError::Forbidden("Only operator staff can act for a learner.".into()));
    }
    let login = login.unwrap_or("").trim().to_string();
    let (page, shown) = db
        .run(move |conn| {
            let lookup = |login: Option<String>| {
                let not_found = login.is_some();
                Page::view("consent/sharing", "Sharing (staff)", SharingLookup { lookup: true, login, not_found })
            };
            if login.is_empty() {
                return Ok::<_, AppError>((lookup(None), None));
            }
            let Some(target) = crate::accounts::service::find_for_login(conn, &login)? else {
                return Ok((lookup(Some(login)), None));
            };
            let mut view = sharing_context(conn, target.id, format!("/staff/sharing/{}", target.id))?;
            view.on_behalf = Some(OnBehalf {
                name: format!("{} {}", target.first_name, target.last_name),
                username: target.username,
            });
            Ok((Page::view("consent/sharing", "Sharing (staff)", view), Some(target.id)))
        })
        .await?;
    // The learner looked up (nobody when the search found no one).
    trail.users(shown);
    Ok(page)
}

fn staff_evidence(user: &crate::kernel::SessionUser, client: &ClientInfo, note: &str) -> AppResult<Evidence> {
    let note = note.trim();
    if note.len() < 5 {
        return Err(AppError::Unprocessable(
            "Say in the note why you act for this learner and how they asked (at least 5 characters).".into(),
        ));
    }
    Ok(Evidence {
        method: "staff_entry",
        actor: "staff",
        actor_user_id: Some(user.id),
        actor_name: Some(user.username.clone()),
        note: Some(note.chars().take(1000).collect()),
        ip: client.ip.clone(),
        user_agent: client.user_agent.clone(),
    })
}

fn staff_back(conn: &mut Conn, user_id: i64) -> Result<String, AppError> {
    let username: String = crate::db::schema::users::table
        .find(user_id)
        .select(crate::db::schema::users::username)
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)?;
    Ok(format!("/staff/sharing?login={username}"))
}

#[derive(FromForm)]
pub struct NoteForm {
    #[field(default = String::new())]
    note: String,
    #[field(default = String::new())]
    restrict: String,
}

#[post("/staff/sharing/<user_id>/consents/<id>/withdraw", data = "<form>")]
pub async fn staff_withdraw(
    db: &State<Db>,
    user: CurrentUser,
    trail: Trail<'_>,
    client: ClientInfo,
    user_id: i64,
    id: i64,
    form: CsrfForm<NoteForm>,
) -> AppResult<Flash> {
    trail.user(user_id);
    if !user.is_staff() {
        return Err(AppError::Forbidden("Only operator staff can act for a learner.".into()));
    }
    let evidence = staff_evidence(&user, &client, &form.form.note)?;
    db.run(move |conn| {
        let back = staff_back(conn, user_id)?;
        let partner = withdraw_in(conn, user_id, id, &evidence)?;
        Ok(Flash::success(back, format!("Withdrawn for the learner. {partner} receives nothing new under it.")))
    })
    .await
}

#[allow(clippy::too_many_arguments)]
#[post("/staff/sharing/<user_id>/restrict", data = "<form>")]
pub async fn staff_restrict(
    db: &State<Db>,
    hooks: &State<ConsentHooks>,
    user: CurrentUser,
    trail: Trail<'_>,
    client: ClientInfo,
    user_id: i64,
    form: CsrfForm<NoteForm>,
) -> AppResult<Flash> {
    trail.user(user_id);
    if !user.is_staff() {
        return Err(AppError::Forbidden("Only operator staff can act for a learner.".into()));
    }
    let on = restrict_choice(&form.form.restrict)?;
    let evidence = staff_evidence(&user, &client, &form.form.note)?;
    let carried_out = hooks.restriction_carried_out;
    db.run(move |conn| {
        let back = staff_back(conn, user_id)?;
        restrict_in(conn, carried_out, user_id, on, &evidence)?;
        Ok(Flash::success(back, if on { "Sharing is frozen for the learner." } else { "The restriction is lifted." }))
    })
    .await
}

fn offer_context(conn: &mut Conn, code: &str) -> Result<RedeemPage, AppError> {
    let offer = match sponsors::offer(conn, code, now()) {
        Ok(o) => o,
        Err(SponsorError::Db(e)) => return Err(e.into()),
        Err(SponsorError::Learning(e)) => return Err(AppError::Internal(e.to_string())),
        Err(e) => return Err(AppError::Unprocessable(e.to_string())),
    };
    let text = texts::current(conn, &offer.partner, Purpose::Sponsorship, "en")?
        .ok_or_else(|| AppError::Internal("no sponsorship consent text".into()))?;
    let marketing = texts::current(conn, &offer.partner, Purpose::PartnerMarketing, "en")?;
    Ok(RedeemPage {
        shown: super::partners::offered(&offer.partner, Purpose::Sponsorship).labels(),
        not_shown: not_offered(&offer.partner, Purpose::Sponsorship),
        marketing: marketing.map(|t| MarketingOffer {
            text: t.body,
            text_id: t.id,
            shown: super::partners::offered(&offer.partner, Purpose::PartnerMarketing).labels(),
        }),
        code: offer.code.code,
        sponsor: offer.partner.name,
        course: offer.course.title,
        course_slug: offer.course.slug,
        run: offer.run.run_key,
        starts: Day::from(offer.run.starts_at),
        text: text.body,
        text_id: text.id,
        version: text.version,
    })
}

/// The course records a consent for `purpose` leaves out, in a sentence
/// ("your grades"), from the same categories as the list it shows.
fn not_offered(partner: &super::partners::Partner, purpose: Purpose) -> String {
    let offered = super::partners::offered(partner, purpose);
    Categories::of(super::Category::COURSE.iter().copied().filter(|c| !offered.contains(*c))).in_words()
}

#[derive(FromForm)]
pub struct CodeQuery {
    code: Option<String>,
}

#[get("/redeem?<q..>")]
pub async fn redeem_page(db: &State<Db>, _user: CurrentUser, q: CodeQuery) -> AppResult<Page> {
    let Some(code) = q.code.filter(|c| !c.trim().is_empty()) else {
        return Ok(Page::view(
            "consent/redeem_code",
            "Redeem a sponsored place",
            RedeemCodePage { error: None, code: None },
        ));
    };
    let ctx = db
        .run(move |conn| match offer_context(conn, &code) {
            Ok(view) => Ok(Page::view("consent/redeem", "A sponsored place", view)),
            Err(AppError::Unprocessable(m)) => Ok(Page::view(
                "consent/redeem_code",
                "Redeem a sponsored place",
                RedeemCodePage { error: Some(m), code: Some(code) },
            )
            .with_status(rocket::http::Status::UnprocessableEntity)),
            Err(e) => Err(e),
        })
        .await?;
    Ok(ctx)
}

#[derive(FromForm)]
pub struct RedeemForm {
    #[field(default = String::new())]
    code: String,
    #[field(default = String::new())]
    share: String,
    text_id: Option<i64>,
    #[field(default = false)]
    marketing: bool,
    marketing_text_id: Option<i64>,
}

#[post("/redeem", data = "<form>")]
pub async fn redeem(
    db: &State<Db>,
    user: CurrentUser,
    client: ClientInfo,
    form: CsrfForm<RedeemForm>,
) -> AppResult<Flash> {
    let f = &form.form;
    let share = match f.share.as_str() {
        "yes" => true,
        "no" => false,
        _ => {
            return Err(AppError::Unprocessable(
                "Please choose whether your sponsor may see your progress (yes or no).".into(),
            ));
        }
    };
    let Some(text_id) = f.text_id else {
        return Err(AppError::Unprocessable("The consent text is missing; please reload the page.".into()));
    };
    let decision = Decision { share, marketing: f.marketing, text_id, marketing_text_id: f.marketing_text_id };
    let code = f.code.clone();
    let back = format!("/redeem?code={}", crate::web::page::url_encode(&sponsors::normalise_code(&code)));
    let user = user.0;
    let outcome = db
        .run(move |conn| {
            let evidence = Evidence::learner_web(user.id, &client);
            Ok::<_, AppError>(sponsors::redeem(conn, &user, &code, &decision, &evidence, now()))
        })
        .await?;
    match outcome {
        Ok(course) => Ok(Flash::success(
            format!("/learn/{}", course.slug),
            format!("Your sponsored place in {} is confirmed. Welcome!", course.title),
        )),
        Err(SponsorError::Db(e)) => Err(e.into()),
        Err(SponsorError::Learning(crate::learning::service::LearningError::Db(e))) => Err(e.into()),
        Err(e) => Ok(Flash::error(back, e.to_string())),
    }
}

/// The page a parent reaches from the emailed link: what their child asked
/// to share, with whom, under which text; yes or no, signed with their name.
fn parent_context(req: super::parents::Request, token: &str) -> ParentAskPage {
    ParentAskPage {
        token: token.to_string(),
        purpose: Purpose::parse(&req.purpose).map_or(req.purpose.as_str(), |p| p.label()).to_string(),
        categories: req.categories.iter().map(|c| c.label()).collect(),
        learner: req.learner_first_name,
        partner: req.partner,
        text: TextShown { body: req.text.body, version: req.text.version, sha256: req.text.sha256 },
    }
}

fn parent_link_gone() -> Page {
    Page::view("consent/parent_sharing", "Link no longer works", ParentGonePage { gone: true })
        .with_status(rocket::http::Status::NotFound)
}

#[get("/parent-sharing/<token>")]
pub async fn parent_page(db: &State<Db>, token: &str) -> AppResult<Page> {
    let t = token.to_string();
    let req = db.run(move |conn| Ok::<_, AppError>(super::parents::open(conn, &t, now())?)).await?;
    Ok(match req {
        Some(req) => Page::view("consent/parent_sharing", "Your child asks to share data", parent_context(req, token)),
        None => parent_link_gone(),
    })
}

#[derive(FromForm)]
pub struct ParentDecision {
    #[field(default = String::new())]
    parent_name: String,
    #[field(default = String::new())]
    decision: String,
}

#[post("/parent-sharing/<token>", data = "<form>")]
pub async fn parent_decide(
    db: &State<Db>,
    token: &str,
    client: ClientInfo,
    form: CsrfForm<ParentDecision>,
) -> AppResult<Page> {
    let yes = match form.form.decision.as_str() {
        "yes" => true,
        "no" => false,
        _ => return Err(AppError::Unprocessable("Choose whether you agree (yes) or not (no).".into())),
    };
    let name = crate::accounts::domain::PersonName::parse(&form.form.parent_name, "full name")
        .map_err(AppError::Unprocessable)?;
    let t = token.to_string();
    let decided = db
        .run(move |conn| Ok::<_, AppError>(super::parents::decide(conn, &t, yes, name.as_str(), &client, now())?))
        .await?;
    let Some(req) = decided else { return Ok(parent_link_gone()) };
    let message = if yes {
        format!(
            "Thank you. {} may now receive what you agreed to. {} can withdraw it at any time.",
            req.partner, req.learner_first_name
        )
    } else {
        format!("Thank you. Nothing is shared with {} on this basis.", req.partner)
    };
    Ok(Page::view("consent/parent_sharing", "Decision recorded", ParentDonePage { done: message }))
}
