//! Organizations (B2B customers) and their staff (SHR-7). An organization is a
//! partner of kind `organization`; its identity system provisions staff over
//! SCIM 2.0 (`scim`). The organization is the controller of its staff's
//! records and Lyceum its processor, so staff synced in hold only the fields
//! the organization sent: no date of birth, no phone, no password.
//!
//! Owns the `org_staff`, `org_groups` and `org_group_members` tables.

pub mod routes;
pub mod scim;
pub mod views;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::accounts::model::{AccountStatus, NewUser};
use crate::db::schema::{data_requests, org_group_members, org_groups, org_staff, users};
use crate::db::{Conn, is_unique_violation};

/// A staff member as the organization described them.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = org_staff)]
pub struct Staff {
    pub id: String,
    pub partner_id: i64,
    pub user_id: i64,
    pub user_name: String,
    pub external_id: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub display_name: Option<String>,
    pub title: Option<String>,
    pub department: Option<String>,
    pub work_email: String,
    pub active: bool,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// The organization created the account (processor mode). When false the
    /// person joined with their own account, which the organization never
    /// changes or ends: it manages the membership only.
    pub provisioned: bool,
}

/// What the organization sends for one person (already validated).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaffInput {
    pub user_name: String,
    pub external_id: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub display_name: Option<String>,
    pub title: Option<String>,
    pub department: Option<String>,
    pub work_email: String,
    pub active: bool,
}

/// The organization's fields of a staff record, written alike on insert and update.
#[derive(Insertable, AsChangeset)]
#[diesel(table_name = org_staff, treat_none_as_null = true)]
struct Fields<'a> {
    user_name: &'a str,
    user_name_key: String,
    external_id: Option<&'a str>,
    given_name: Option<&'a str>,
    family_name: Option<&'a str>,
    display_name: Option<&'a str>,
    title: Option<&'a str>,
    department: Option<&'a str>,
    work_email: &'a str,
    active: bool,
}

impl StaffInput {
    fn fields(&self) -> Fields<'_> {
        Fields {
            user_name: &self.user_name,
            user_name_key: self.user_name.to_lowercase(),
            external_id: self.external_id.as_deref(),
            given_name: self.given_name.as_deref(),
            family_name: self.family_name.as_deref(),
            display_name: self.display_name.as_deref(),
            title: self.title.as_deref(),
            department: self.department.as_deref(),
            work_email: &self.work_email,
            active: self.active,
        }
    }
}

/// Inserts a new staff record for `user_id` (version 1); returns its SCIM id.
/// `provisioned`: the organization created the account.
fn insert_record(
    conn: &mut Conn,
    partner_id: i64,
    user_id: i64,
    input: &StaffInput,
    provisioned: bool,
    now: NaiveDateTime,
) -> OrgResult<String> {
    let id = uuid::Uuid::new_v4().to_string();
    diesel::insert_into(org_staff::table)
        .values((
            input.fields(),
            org_staff::id.eq(&id),
            org_staff::partner_id.eq(partner_id),
            org_staff::user_id.eq(user_id),
            org_staff::provisioned.eq(provisioned),
            org_staff::version.eq(1),
            org_staff::created_at.eq(now),
            org_staff::updated_at.eq(now),
        ))
        .execute(conn)
        .map_err(|e| {
            if is_unique_violation(&e) { OrgError::Conflict("userName is already in use".into()) } else { e.into() }
        })?;
    Ok(id)
}

#[derive(Debug, thiserror::Error)]
pub enum OrgError {
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the resource does not exist")]
    NotFound,
    #[error("the resource changed since it was read")]
    Stale,
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

pub type OrgResult<T> = Result<T, OrgError>;

pub fn staff(conn: &mut Conn, partner_id: i64, id: &str) -> OrgResult<Staff> {
    org_staff::table
        .filter(org_staff::partner_id.eq(partner_id))
        .filter(org_staff::id.eq(id))
        .select(Staff::as_select())
        .first(conn)
        .optional()?
        .ok_or(OrgError::NotFound)
}

/// A staff member by their id or their user name (as the organization's
/// pages let an admin type it; user names compare without case).
pub fn staff_by_id_or_name(conn: &mut Conn, partner_id: i64, id_or_name: &str) -> OrgResult<Staff> {
    let id_or_name = id_or_name.trim();
    match staff(conn, partner_id, id_or_name) {
        Err(OrgError::NotFound) if !id_or_name.is_empty() => org_staff::table
            .filter(org_staff::partner_id.eq(partner_id))
            .filter(org_staff::user_name_key.eq(id_or_name.to_lowercase()))
            .select(Staff::as_select())
            .first(conn)
            .optional()?
            .ok_or(OrgError::NotFound),
        found => found,
    }
}

/// A username for the account, from the organization's userName: its part
/// before any `@`, cleaned to the username rules, made unique with a number.
fn free_username(conn: &mut Conn, user_name: &str) -> QueryResult<String> {
    let local = user_name.split('@').next().unwrap_or_default();
    let mut base: String = local
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c.to_ascii_lowercase() } else { '-' })
        .collect();
    base = base.trim_matches(|c: char| !c.is_ascii_alphanumeric()).chars().take(24).collect();
    if base.len() < 3 {
        base = format!("staff-{base}");
    }
    for n in 0..1000 {
        let candidate = if n == 0 { base.clone() } else { format!("{base}-{n}") };
        if !crate::accounts::service::username_taken(conn, &candidate)? {
            return Ok(candidate);
        }
    }
    Ok(format!("staff-{}", uuid::Uuid::new_v4().simple()))
}

fn check_unique(conn: &mut Conn, partner_id: i64, input: &StaffInput, except: Option<&str>) -> OrgResult<()> {
    let clash: Option<String> = org_staff::table
        .filter(org_staff::partner_id.eq(partner_id))
        .filter(org_staff::user_name_key.eq(input.user_name.to_lowercase()))
        .select(org_staff::id)
        .first(conn)
        .optional()?;
    if clash.is_some_and(|id| Some(id.as_str()) != except) {
        return Err(OrgError::Conflict(format!("userName {:?} is already in use", input.user_name)));
    }
    Ok(())
}

/// Provisions a staff member: their record and an account holding only what
/// was sent (no password: they sign in through their organization's identity
/// provider or set one by email).
pub fn create(conn: &mut Conn, partner_id: i64, input: &StaffInput, now: NaiveDateTime) -> OrgResult<Staff> {
    crate::db::transaction(conn, |conn| {
        check_unique(conn, partner_id, input, None)?;
        release_departing_account(conn, &input.work_email)?;
        let email_taken: i64 = users::table.filter(users::email.eq(&input.work_email)).count().get_result(conn)?;
        if email_taken > 0 {
            return Err(OrgError::Conflict(format!(
                "an account with the email {} exists already; invite that person instead",
                input.work_email
            )));
        }
        let username = free_username(conn, &input.user_name)?;
        let user_id: i64 = diesel::insert_into(users::table)
            .values(NewUser {
                username: &username,
                email: &input.work_email,
                first_name: input.given_name.as_deref().unwrap_or_default(),
                last_name: input.family_name.as_deref().unwrap_or_default(),
                phone: None,
                company: None,
                date_of_birth: None,
                password_hash: "",
                status: if input.active { AccountStatus::Active } else { AccountStatus::Deactivated }.as_str(),
                // The organization vouches for the work address it manages.
                email_verified_at: Some(now),
                // Terms and policies are accepted at the first sign-in (COM-5).
                terms_version: "",
                terms_accepted_at: now,
                created_at: now,
                updated_at: now,
            })
            .returning(users::id)
            .get_result(conn)
            .map_err(|e| {
                if is_unique_violation(&e) {
                    OrgError::Conflict("that account exists already".into())
                } else {
                    e.into()
                }
            })?;
        let id = insert_record(conn, partner_id, user_id, input, true, now)?;
        staff(conn, partner_id, &id)
    })
}

/// An account an organization deleted is switched off at once but erased by
/// the erasure steps later. Identity systems create the person again after a
/// DELETE (a re-hire, an undone removal), so until then the work address must
/// not keep the new account out: the departing account gives it up (the
/// address the erasure would retire it to anyway). Any other holder of the
/// address keeps it.
fn release_departing_account(conn: &mut Conn, email: &str) -> QueryResult<()> {
    use crate::db::schema::erasures;
    let holder: Option<(i64, String)> =
        users::table.filter(users::email.eq(email)).select((users::id, users::status)).first(conn).optional()?;
    let Some((user_id, state)) = holder else { return Ok(()) };
    if state != AccountStatus::Deactivated {
        return Ok(());
    }
    let erasing: i64 = erasures::table
        .filter(erasures::user_id.eq(user_id))
        .filter(erasures::finished_at.is_null())
        .count()
        .get_result(conn)?;
    let staff: i64 = org_staff::table.filter(org_staff::user_id.eq(user_id)).count().get_result(conn)?;
    if erasing > 0 && staff == 0 {
        diesel::update(users::table.find(user_id))
            .set(users::email.eq(format!("retired-{user_id}@erased.invalid")))
            .execute(conn)?;
    }
    Ok(())
}

/// Writes the organization's fields over the record and its account.
fn write(
    conn: &mut Conn,
    partner_id: i64,
    id: &str,
    input: &StaffInput,
    version: i64,
    now: NaiveDateTime,
) -> OrgResult<Staff> {
    diesel::update(org_staff::table.filter(org_staff::id.eq(id)))
        .set((input.fields(), org_staff::version.eq(version), org_staff::updated_at.eq(now)))
        .execute(conn)?;
    staff(conn, partner_id, id)
}

/// Replaces a staff member's fields (PUT, or a PATCH already applied).
///
/// For an account the organization created, its names and state follow the
/// record (a deactivation ends the person's sessions at once) and a new work
/// email becomes the sign-in email once that address confirms it, the old one
/// being told. For a person who joined with their own account, only the
/// membership changes: its fields, and whether it is active.
pub fn replace(
    conn: &mut Conn,
    partner_id: i64,
    id: &str,
    input: &StaffInput,
    if_match: Option<i64>,
    now: NaiveDateTime,
) -> OrgResult<Staff> {
    crate::db::transaction(conn, |conn| {
        let current = staff(conn, partner_id, id)?;
        if if_match.is_some_and(|v| v != current.version) {
            return Err(OrgError::Stale);
        }
        check_unique(conn, partner_id, input, Some(id))?;
        if current.provisioned {
            diesel::update(users::table.find(current.user_id))
                .set((
                    users::first_name.eq(input.given_name.as_deref().unwrap_or_default()),
                    users::last_name.eq(input.family_name.as_deref().unwrap_or_default()),
                    users::status
                        .eq(if input.active { AccountStatus::Active } else { AccountStatus::Deactivated }.as_str()),
                    users::updated_at.eq(now),
                ))
                .execute(conn)?;
            if !input.active {
                crate::accounts::sessions::end_others(conn, current.user_id, None)?;
            }
            if input.work_email != current.work_email {
                move_sign_in_email(conn, current.user_id, &input.work_email, now)?;
            }
        }
        write(conn, partner_id, id, input, current.version + 1, now)
    })
}

/// A provisioned account's sign-in email follows its work email only once
/// the new address confirms it; the old address is told (SEC: no path changes
/// a sign-in email silently).
fn move_sign_in_email(conn: &mut Conn, user_id: i64, new_email: &str, now: NaiveDateTime) -> OrgResult<()> {
    use crate::accounts::service::AccountError;
    let Some(user) = crate::accounts::service::find(conn, user_id)? else { return Ok(()) };
    if user.email.eq_ignore_ascii_case(new_email) {
        return Ok(());
    }
    let email = crate::accounts::domain::Email::parse(new_email).map_err(|e| OrgError::Invalid(e.to_string()))?;
    match crate::accounts::service::request_email_change(conn, &user, &email, now) {
        Ok(()) => Ok(()),
        Err(AccountError::EmailTaken) => {
            Err(OrgError::Conflict(format!("an account with the email {new_email} exists already")))
        }
        Err(e @ AccountError::UsernameTaken) => Err(OrgError::Invalid(e.to_string())),
        Err(AccountError::Db(e)) => Err(e.into()),
    }
}

/// Removes a staff member from the organization.
///
/// An account the organization created is switched off at once, signed out
/// everywhere, and erased by the usual erasure steps (RGT-2), on the
/// organization's word as controller. A person who joined with their own
/// account only leaves: the membership goes with the groups and training the
/// organization gave them (by cascade), the account stays theirs, and they are
/// told by email.
pub fn delete(conn: &mut Conn, partner_id: i64, id: &str, if_match: Option<i64>, now: NaiveDateTime) -> OrgResult<()> {
    let current = crate::db::transaction(conn, |conn| {
        let current = staff(conn, partner_id, id)?;
        if if_match.is_some_and(|v| v != current.version) {
            return Err(OrgError::Stale);
        }
        diesel::delete(org_staff::table.filter(org_staff::id.eq(id))).execute(conn)?;
        // The organization's training records of this person depart with them.
        crate::consent::departures::reconcile(
            conn,
            current.user_id,
            crate::consent::departures::Reason::Ended,
            false,
            now,
        )?;
        if current.provisioned {
            diesel::update(users::table.find(current.user_id))
                .set((users::status.eq(AccountStatus::Deactivated.as_str()), users::updated_at.eq(now)))
                .execute(conn)?;
            crate::accounts::sessions::end_others(conn, current.user_id, None)?;
        } else {
            membership_ended(conn, partner_id, current.user_id)?;
        }
        Ok(current)
    })?;
    if !current.provisioned {
        return Ok(());
    }
    let details = "Deleted by the person's organization (SCIM).";
    match crate::privacy::erasure::start(
        conn,
        current.user_id,
        crate::privacy::source::ORGANIZATION,
        details,
        now,
        false,
        now,
    ) {
        Ok(_) => Ok(()),
        // Already being erased: nothing more to do.
        Err(crate::privacy::PrivacyError::Invalid(_)) => Ok(()),
        Err(crate::privacy::PrivacyError::Db(e)) => Err(e.into()),
        Err(e) => Err(OrgError::Invalid(e.to_string())),
    }
}

/// Tells a person who joined with their own account that they left the
/// organization's staff, and that their account is unchanged.
fn membership_ended(conn: &mut Conn, partner_id: i64, user_id: i64) -> QueryResult<()> {
    use crate::db::schema::partners;
    let (email, first): (String, String) =
        users::table.find(user_id).select((users::email, users::first_name)).first(conn)?;
    let organization: String = partners::table.find(partner_id).select(partners::name).first(conn)?;
    crate::notify::enqueue_email(
        conn,
        &email,
        &format!("You are no longer on {organization}'s staff"),
        "org_membership_ended",
        serde_json::json!({ "first_name": first, "organization": organization }),
    )?;
    Ok(())
}

/// A group of staff, as the organization's identity system names it.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = org_groups)]
pub struct Group {
    pub id: String,
    pub partner_id: i64,
    pub display_name: String,
    pub external_id: Option<String>,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

pub fn group(conn: &mut Conn, partner_id: i64, id: &str) -> OrgResult<Group> {
    org_groups::table
        .filter(org_groups::partner_id.eq(partner_id))
        .filter(org_groups::id.eq(id))
        .select(Group::as_select())
        .first(conn)
        .optional()?
        .ok_or(OrgError::NotFound)
}

/// The members of a group: (staff id, display).
pub fn members(conn: &mut Conn, group_id: &str) -> QueryResult<Vec<(String, String)>> {
    Ok(members_of(conn, &[group_id.to_string()])?.remove(group_id).unwrap_or_default())
}

/// The members of each of `group_ids` in one query (a page of groups).
pub fn members_of(
    conn: &mut Conn,
    group_ids: &[String],
) -> QueryResult<std::collections::HashMap<String, Vec<(String, String)>>> {
    let rows: Vec<(String, String, String)> = org_group_members::table
        .inner_join(org_staff::table)
        .filter(org_group_members::group_id.eq_any(group_ids))
        .order(org_staff::user_name_key.asc())
        .select((org_group_members::group_id, org_staff::id, org_staff::user_name))
        .load(conn)?;
    let mut by_group: std::collections::HashMap<String, Vec<(String, String)>> = std::collections::HashMap::new();
    for (group, id, name) in rows {
        by_group.entry(group).or_default().push((id, name));
    }
    Ok(by_group)
}

/// A group as the organization sends it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupInput {
    pub display_name: String,
    pub external_id: Option<String>,
    /// Staff ids.
    pub members: Vec<String>,
}

/// Writes a group's name and members (a new group when `id` is None);
/// members must be this organization's staff.
pub fn save_group(
    conn: &mut Conn,
    partner_id: i64,
    id: Option<&str>,
    input: &GroupInput,
    if_match: Option<i64>,
    now: NaiveDateTime,
) -> OrgResult<Group> {
    let (display_name, external_id, member_ids) = (&input.display_name, &input.external_id, &input.members);
    crate::db::transaction(conn, |conn| {
        let known: i64 = org_staff::table
            .filter(org_staff::partner_id.eq(partner_id))
            .filter(org_staff::id.eq_any(member_ids.as_slice()))
            .count()
            .get_result(conn)?;
        let distinct: std::collections::BTreeSet<&String> = member_ids.iter().collect();
        if known as usize != distinct.len() {
            return Err(OrgError::Invalid("a member is not a user of this organization".into()));
        }
        let id = match id {
            Some(id) => {
                let current = group(conn, partner_id, id)?;
                if if_match.is_some_and(|v| v != current.version) {
                    return Err(OrgError::Stale);
                }
                diesel::update(org_groups::table.filter(org_groups::id.eq(id)))
                    .set((
                        org_groups::display_name.eq(display_name),
                        org_groups::external_id.eq(external_id),
                        org_groups::version.eq(current.version + 1),
                        org_groups::updated_at.eq(now),
                    ))
                    .execute(conn)?;
                diesel::delete(org_group_members::table.filter(org_group_members::group_id.eq(id))).execute(conn)?;
                id.to_string()
            }
            None => {
                let id = uuid::Uuid::new_v4().to_string();
                diesel::insert_into(org_groups::table)
                    .values((
                        org_groups::id.eq(&id),
                        org_groups::partner_id.eq(partner_id),
                        org_groups::display_name.eq(display_name),
                        org_groups::external_id.eq(external_id),
                        org_groups::version.eq(1),
                        org_groups::created_at.eq(now),
                        org_groups::updated_at.eq(now),
                    ))
                    .execute(conn)?;
                id
            }
        };
        for staff_id in distinct {
            diesel::insert_into(org_group_members::table)
                .values((org_group_members::group_id.eq(&id), org_group_members::staff_id.eq(staff_id)))
                .execute(conn)?;
        }
        group(conn, partner_id, &id)
    })
}

pub fn delete_group(conn: &mut Conn, partner_id: i64, id: &str, if_match: Option<i64>) -> OrgResult<()> {
    crate::db::transaction(conn, |conn| {
        let current = group(conn, partner_id, id)?;
        if if_match.is_some_and(|v| v != current.version) {
            return Err(OrgError::Stale);
        }
        diesel::delete(org_groups::table.filter(org_groups::id.eq(id))).execute(conn)?;
        Ok(())
    })
}

// ---- assigned training ---------------------------------------------------------

/// Whom an assignment is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Everyone,
    Group(String),
    Person(String),
}

impl Target {
    pub fn parse(raw: &str) -> Option<Target> {
        match raw.split_once(':') {
            _ if raw == "all" => Some(Target::Everyone),
            Some(("group", id)) if !id.is_empty() => Some(Target::Group(id.to_string())),
            Some(("staff", id)) if !id.is_empty() => Some(Target::Person(id.to_string())),
            _ => None,
        }
    }
}

/// Assigns a course run to staff with a due date, emails each person newly
/// assigned, and returns how many were. Deactivated staff are skipped; an
/// existing assignment keeps its date.
pub fn assign(
    conn: &mut Conn,
    partner: &crate::consent::partners::Partner,
    run_id: i64,
    target: &Target,
    due_on: chrono::NaiveDate,
    by: i64,
    now: NaiveDateTime,
) -> OrgResult<usize> {
    use crate::db::schema::{course_runs, courses, org_assignments};
    crate::db::transaction(conn, |conn| {
        let course: Option<(String, String, String)> = course_runs::table
            .inner_join(courses::table)
            .filter(course_runs::id.eq(run_id))
            .select((courses::title, courses::slug, course_runs::run_key))
            .first(conn)
            .optional()?;
        let Some((title, slug, _)) = course else { return Err(OrgError::Invalid("Choose a course.".into())) };
        let mut q = org_staff::table
            .filter(org_staff::partner_id.eq(partner.id))
            .filter(org_staff::active.eq(true))
            .select((org_staff::id, org_staff::user_id))
            .into_boxed();
        q = match target {
            Target::Everyone => q,
            Target::Person(id) => q.filter(org_staff::id.eq(id.clone())),
            Target::Group(id) => {
                group(conn, partner.id, id)?;
                q.filter(
                    org_staff::id.eq_any(
                        org_group_members::table
                            .filter(org_group_members::group_id.eq(id.clone()))
                            .select(org_group_members::staff_id),
                    ),
                )
            }
        };
        let people: Vec<(String, i64)> = q.load(conn)?;
        if people.is_empty() {
            return Err(OrgError::Invalid("Nobody active matches: choose another group or person.".into()));
        }
        let mut assigned = 0;
        for (staff_id, user_id) in people {
            let exists: i64 = org_assignments::table
                .filter(org_assignments::staff_id.eq(&staff_id))
                .filter(org_assignments::run_id.eq(run_id))
                .count()
                .get_result(conn)?;
            if exists > 0 {
                continue;
            }
            diesel::insert_into(org_assignments::table)
                .values((
                    org_assignments::partner_id.eq(partner.id),
                    org_assignments::staff_id.eq(&staff_id),
                    org_assignments::run_id.eq(run_id),
                    org_assignments::due_on.eq(due_on),
                    org_assignments::assigned_by.eq(by),
                    org_assignments::created_at.eq(now),
                ))
                .execute(conn)?;
            let (email, first): (String, String) =
                users::table.find(user_id).select((users::email, users::first_name)).first(conn)?;
            crate::notify::enqueue_email(
                conn,
                &email,
                &format!("{} asks you to take {title}", partner.name),
                "training_assigned",
                serde_json::json!({
                    "first_name": first, "organization": partner.name, "course": title,
                    "due": due_on.format("%e %B %Y").to_string().trim(), "path": format!("/courses/{slug}"),
                }),
            )?;
            assigned += 1;
        }
        Ok(assigned)
    })
}

/// Days before the due date a reminder goes out.
pub const REMIND_DAYS_BEFORE: i64 = 3;

/// Emails one reminder for each assignment due within `REMIND_DAYS_BEFORE`
/// days (or overdue) and not completed; returns how many went.
pub fn send_due_reminders(conn: &mut Conn, now: NaiveDateTime) -> QueryResult<usize> {
    use crate::db::schema::{course_runs, courses, enrollments, org_assignments, partners};
    let horizon = now.date() + chrono::Duration::days(REMIND_DAYS_BEFORE);
    let due: Vec<(i64, i64, i64, chrono::NaiveDate, String, String)> = org_assignments::table
        .inner_join(org_staff::table)
        .inner_join(course_runs::table.inner_join(courses::table))
        .filter(org_assignments::reminded_at.is_null())
        .filter(org_assignments::due_on.le(horizon))
        .filter(org_staff::active.eq(true))
        .select((
            org_assignments::id,
            org_staff::user_id,
            org_assignments::run_id,
            org_assignments::due_on,
            courses::title,
            courses::slug,
        ))
        .load(conn)?;
    let mut sent = 0;
    for (id, user_id, run_id, due_on, title, slug) in due {
        let done: i64 = enrollments::table
            .filter(enrollments::user_id.eq(user_id))
            .filter(enrollments::run_id.eq(run_id))
            .filter(enrollments::completed_at.is_not_null())
            .count()
            .get_result(conn)?;
        crate::db::transaction(conn, |conn| {
            diesel::update(org_assignments::table.find(id)).set(org_assignments::reminded_at.eq(now)).execute(conn)?;
            if done > 0 {
                return Ok::<_, diesel::result::Error>(());
            }
            let organization: String = org_assignments::table
                .inner_join(partners::table.on(partners::id.eq(org_assignments::partner_id)))
                .filter(org_assignments::id.eq(id))
                .select(partners::name)
                .first(conn)?;
            let (email, first): (String, String) =
                users::table.find(user_id).select((users::email, users::first_name)).first(conn)?;
            let overdue = due_on < now.date();
            crate::notify::enqueue_email(
                conn,
                &email,
                &format!("Reminder: {title} is due {}", if overdue { "already" } else { "soon" }),
                "training_reminder",
                serde_json::json!({
                    "first_name": first, "organization": organization, "course": title, "overdue": overdue,
                    "due": due_on.format("%e %B %Y").to_string().trim(), "path": format!("/courses/{slug}"),
                }),
            )?;
            sent += 1;
            Ok(())
        })?;
    }
    Ok(sent)
}

// ---- rights through the employer ---------------------------------------------------

/// Files a rights request for a staff member on the organization's behalf
/// (RGT-5): it enters the same tracked flow as a learner's own. An erasure
/// starts at once, on the organization's word as controller.
pub fn file_request(
    conn: &mut Conn,
    partner: &crate::consent::partners::Partner,
    staff_id: &str,
    kind: &str,
    details: &str,
    by: i64,
    now: NaiveDateTime,
) -> OrgResult<()> {
    use crate::privacy::{self, PrivacyError, kind as k, source};
    if !k::ALL.contains(&kind) {
        return Err(OrgError::Invalid("Choose what the request asks for.".into()));
    }
    let details = details.trim();
    if details.chars().count() < 5 || details.chars().count() > 2000 {
        return Err(OrgError::Invalid("Say what is asked, in 5 to 2000 characters.".into()));
    }
    let person = staff_by_id_or_name(conn, partner.id, staff_id)?;
    let details = format!("Filed by {} for {}: {details}", partner.name, person.user_name);
    if kind == k::ERASURE {
        return match privacy::erasure::start(conn, person.user_id, source::ORGANIZATION, &details, now, false, now) {
            Ok(_) => Ok(()),
            Err(PrivacyError::Invalid(m)) => Err(OrgError::Invalid(m)),
            Err(PrivacyError::Db(e)) => Err(e.into()),
            Err(e) => Err(OrgError::Invalid(e.to_string())),
        };
    }
    privacy::open_request(conn, Some(person.user_id), kind, source::ORGANIZATION, &details, Some(by), now)?;
    Ok(())
}

/// The requests filed for this organization's staff: (staff account, staff
/// user name, kind, status, received, due, done).
pub type FiledRequest = (Option<i64>, String, String, String, NaiveDateTime, NaiveDateTime, Option<NaiveDateTime>);

// The requests of an organization's staff are read with a subquery over its staff.
diesel::allow_tables_to_appear_in_same_query!(data_requests, org_staff);

/// A page of the requests filed for this organization's staff, the latest
/// received first: `limit` rows from `offset`.
pub fn filed_requests(conn: &mut Conn, partner_id: i64, offset: i64, limit: i64) -> QueryResult<Vec<FiledRequest>> {
    type Row = (Option<i64>, String, String, NaiveDateTime, NaiveDateTime, Option<NaiveDateTime>);
    let rows: Vec<Row> = data_requests::table
        .filter(data_requests::source.eq(crate::privacy::source::ORGANIZATION))
        .filter(data_requests::user_id.eq_any(
            org_staff::table.filter(org_staff::partner_id.eq(partner_id)).select(org_staff::user_id.nullable()),
        ))
        .order((data_requests::received_at.desc(), data_requests::id.desc()))
        .offset(offset)
        .limit(limit)
        .select((
            data_requests::user_id,
            data_requests::kind,
            data_requests::status,
            data_requests::received_at,
            data_requests::due_at,
            data_requests::done_at,
        ))
        .load(conn)?;
    let ids: Vec<i64> = rows.iter().filter_map(|r| r.0).collect();
    let staff: Vec<(i64, String)> = org_staff::table
        .filter(org_staff::partner_id.eq(partner_id))
        .filter(org_staff::user_id.eq_any(&ids))
        .select((org_staff::user_id, org_staff::user_name))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(u, kind, status, received, due, done)| {
            let name = staff.iter().find(|s| Some(s.0) == u).map(|s| s.1.clone()).unwrap_or_default();
            (u, name, kind, status, received, due, done)
        })
        .collect())
}

/// When the contract ends: every account the organization created is
/// switched off, signed out and erased; people who joined with their own
/// accounts leave the staff and keep them; the organization's groups and
/// assignments go. Returns how many people.
pub fn end_contract(conn: &mut Conn, partner_id: i64, now: NaiveDateTime) -> OrgResult<usize> {
    let ids: Vec<String> =
        org_staff::table.filter(org_staff::partner_id.eq(partner_id)).select(org_staff::id).load(conn)?;
    for id in &ids {
        delete(conn, partner_id, id, None, now)?;
    }
    diesel::delete(org_groups::table.filter(org_groups::partner_id.eq(partner_id))).execute(conn)?;
    Ok(ids.len())
}

// ---- invitations ------------------------------------------------------------------

/// Days an invitation link works.
pub const INVITATION_DAYS: i64 = 14;

/// Invites someone to join as staff: emails a single-use link; returns nothing
/// but the fact (the token lives only in the email).
pub fn invite(
    conn: &mut Conn,
    partner: &crate::consent::partners::Partner,
    email: &crate::accounts::domain::Email,
    by: i64,
    now: NaiveDateTime,
) -> QueryResult<()> {
    use crate::db::schema::org_invitations;
    let token = crate::kernel::tokens::random_token(32);
    crate::db::transaction(conn, |conn| {
        diesel::insert_into(org_invitations::table)
            .values((
                org_invitations::partner_id.eq(partner.id),
                org_invitations::email.eq(email.as_str()),
                org_invitations::token_hash.eq(crate::accounts::tokens::digest(&token)),
                org_invitations::invited_by.eq(by),
                org_invitations::created_at.eq(now),
            ))
            .execute(conn)?;
        crate::notify::enqueue_email(
            conn,
            email.as_str(),
            &format!("{} invites you to Lyceum", partner.name),
            "org_invitation",
            serde_json::json!({ "organization": partner.name, "path": format!("/orgs/join/{token}"), "days": INVITATION_DAYS }),
        )?;
        Ok(())
    })
}

/// An open invitation by its token: (id, partner id, email).
pub fn invitation(conn: &mut Conn, token: &str, now: NaiveDateTime) -> QueryResult<Option<(i64, i64, String)>> {
    use crate::db::schema::org_invitations;
    org_invitations::table
        .filter(org_invitations::token_hash.eq(crate::accounts::tokens::digest(token)))
        .filter(org_invitations::accepted_at.is_null())
        .filter(org_invitations::created_at.gt(now - chrono::Duration::days(INVITATION_DAYS)))
        .select((org_invitations::id, org_invitations::partner_id, org_invitations::email))
        .first(conn)
        .optional()
}

/// The signed-in person accepts: they become the organization's staff, with
/// the name on their account and the address the organization invited.
pub fn accept_invitation(conn: &mut Conn, token: &str, user_id: i64, now: NaiveDateTime) -> OrgResult<String> {
    use crate::db::schema::{org_invitations, partners};
    crate::db::transaction(conn, |conn| {
        let Some((id, partner_id, email)) = invitation(conn, token, now)? else { return Err(OrgError::NotFound) };
        let already: Option<i64> = org_staff::table
            .filter(org_staff::user_id.eq(user_id))
            .select(org_staff::partner_id)
            .first(conn)
            .optional()?;
        if let Some(p) = already {
            return Err(OrgError::Conflict(if p == partner_id {
                "You are on this organization's staff already.".into()
            } else {
                "Your account is on another organization's staff. Use another account for this one.".into()
            }));
        }
        let (username, first, last): (String, String, String) =
            users::table.find(user_id).select((users::username, users::first_name, users::last_name)).first(conn)?;
        let input = StaffInput {
            user_name: email.clone(),
            given_name: (!first.is_empty()).then_some(first),
            family_name: (!last.is_empty()).then_some(last),
            work_email: email,
            active: true,
            ..Default::default()
        };
        check_unique(conn, partner_id, &input, None)?;
        insert_record(conn, partner_id, user_id, &input, false, now)?;
        diesel::update(org_invitations::table.find(id))
            .set((org_invitations::accepted_at.eq(now), org_invitations::accepted_by.eq(user_id)))
            .execute(conn)?;
        let name: String = partners::table.find(partner_id).select(partners::name).first(conn)?;
        tracing::info!(user = %username, organization = %name, "joined an organization's staff");
        Ok(name)
    })
}

/// The area's pages and APIs, mounted at the site's root by `build_rocket`.
pub fn routes() -> Vec<rocket::Route> {
    rocket::routes![
        routes::dashboard,
        routes::dashboard_csv,
        routes::assign,
        routes::upload,
        routes::file_request,
        routes::end_contract,
        routes::invite,
        routes::invitation,
        routes::accept,
        scim::service_provider_config,
        scim::resource_types,
        scim::resource_type,
        scim::schemas,
        scim::schema,
        scim::search_users,
        scim::search_groups,
        scim::search_all,
        scim::list_users,
        scim::create_user,
        scim::get_user,
        scim::replace_user,
        scim::patch_user,
        scim::delete_user,
        scim::list_groups,
        scim::create_group,
        scim::get_group,
        scim::replace_group,
        scim::patch_group,
        scim::delete_group,
    ]
}
