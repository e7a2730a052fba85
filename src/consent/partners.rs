//! Partners (member institutions, sponsors, exam bodies, organizations,
//! researchers), the people who act for them, and their API keys.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use sha2::{Digest, Sha256};

use super::{Categories, Category, PartnerKind, Purpose};
use crate::accounts::roles::{self, Role};
use crate::db::Conn;
use crate::db::schema::{partner_api_keys, partners};
use crate::kernel::SessionUser;
use crate::learning::model::Member;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = partners)]
pub struct Partner {
    pub id: i64,
    pub kind: String,
    pub slug: String,
    pub name: String,
    pub member_id: Option<i64>,
    pub contact_email: String,
    pub profile_fields: String,
    pub pseudonym_salt: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl Partner {
    pub fn kind(&self) -> PartnerKind {
        // Rows are only written through `create`, which takes a `PartnerKind`.
        PartnerKind::parse(&self.kind).unwrap_or(PartnerKind::Researcher)
    }

    /// The learner's pseudonym for this partner as records carried it
    /// before pseudonyms were scoped to a course run; erasure notices still
    /// name it, as partners may hold records under it.
    pub fn pseudonym(&self, user_id: i64) -> String {
        let digest = Sha256::digest(format!("{}:{user_id}", self.pseudonym_salt).as_bytes());
        format!("p-{}", &hex::encode(digest)[..24])
    }

    /// The code de-identified records of one course run carry for a learner:
    /// an HMAC under the partner's own secret salt of the run and the
    /// learner. The partner can follow a learner's progress within the run
    /// (what a course team needs), but cannot link two runs, nor link these
    /// records with records that name the learner (which carry the
    /// username), nor with other partners' records (another salt).
    pub fn run_pseudonym(&self, user_id: i64, run_id: i64) -> String {
        format!("d-{}", self.keyed(&format!("deidentified\0run:{run_id}\0learner:{user_id}")))
    }

    /// The id of records that name the learner (a name or an email under
    /// consent) without the username: stable for the partner, as the name
    /// links those records anyway, and never equal to a de-identified code.
    pub fn named_pseudonym(&self, user_id: i64) -> String {
        format!("n-{}", self.keyed(&format!("named\0learner:{user_id}")))
    }

    fn keyed(&self, message: &str) -> String {
        use hmac::{Hmac, Mac};
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(self.pseudonym_salt.as_bytes()).expect("HMAC takes any key length");
        mac.update(message.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..12])
    }

    /// Profile fields a member institution asks for at enrollment.
    pub fn requested_profile(&self) -> Categories {
        Categories::of(Categories::parse(&self.profile_fields).iter().filter(|c| c.is_identity()))
    }

    /// The purpose course records reach this partner under, in pulls and
    /// pushes; `None` for partners that get no course records.
    pub fn record_purpose(&self) -> Option<Purpose> {
        match self.kind() {
            PartnerKind::Member => Some(Purpose::MemberSharing),
            PartnerKind::Sponsor => Some(Purpose::Sponsorship),
            PartnerKind::Organization => Some(Purpose::StaffTraining),
            _ => None,
        }
    }

    pub fn scope(&self) -> String {
        format!("partner:{}", self.id)
    }

    /// Partner admins of this partner, and operator staff.
    pub fn managed_by(&self, user: &SessionUser) -> bool {
        user.is_staff()
            || user.has_role_in(Role::PartnerAdmin, &self.scope())
            || self.member_id.is_some_and(|m| user.has_role_in(Role::MemberAdmin, &format!("member:{m}")))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PartnerError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

pub use crate::kernel::slug::valid_slug;

pub fn create(
    conn: &mut Conn,
    kind: PartnerKind,
    slug: &str,
    name: &str,
    member_id: Option<i64>,
    contact_email: &str,
    now: NaiveDateTime,
) -> Result<Partner, PartnerError> {
    let name = name.trim();
    if !valid_slug(slug) {
        return Err(PartnerError::Invalid(
            "The short name must be 2–60 characters of lowercase letters, digits and hyphens.".into(),
        ));
    }
    if name.is_empty() || name.len() > 200 {
        return Err(PartnerError::Invalid("Please give the partner a name (at most 200 characters).".into()));
    }
    if !contact_email.contains('@') || contact_email.len() > 254 {
        return Err(PartnerError::Invalid("Please give a contact email address.".into()));
    }
    if (kind == PartnerKind::Member) != member_id.is_some() {
        return Err(PartnerError::Invalid("A member institution partner is linked to exactly one member.".into()));
    }
    let inserted = diesel::insert_into(partners::table)
        .values((
            partners::kind.eq(kind.as_str()),
            partners::slug.eq(slug),
            partners::name.eq(name),
            partners::member_id.eq(member_id),
            partners::contact_email.eq(contact_email.trim()),
            partners::profile_fields.eq(""),
            partners::pseudonym_salt.eq(crate::kernel::tokens::random_alphanumeric(32)),
            partners::created_at.eq(now),
            partners::updated_at.eq(now),
        ))
        .returning(partners::id)
        .get_result::<i64>(conn);
    match inserted {
        Ok(id) => Ok(by_id(conn, id)?),
        Err(e) if crate::db::is_unique_violation(&e) => {
            Err(PartnerError::Invalid("That short name or member already has a partner.".into()))
        }
        Err(e) => Err(e.into()),
    }
}

pub fn by_id(conn: &mut Conn, id: i64) -> QueryResult<Partner> {
    partners::table.find(id).select(Partner::as_select()).first(conn)
}

/// The partner `slug` names, when `user` may manage it; `None` both when
/// there is no such partner and when they may not (a page then answers 404
/// and reveals nothing).
pub fn managed(conn: &mut Conn, user: &crate::kernel::SessionUser, slug: &str) -> QueryResult<Option<Partner>> {
    Ok(by_slug(conn, slug)?.filter(|p| p.managed_by(user)))
}

pub fn by_slug(conn: &mut Conn, slug: &str) -> QueryResult<Option<Partner>> {
    partners::table.filter(partners::slug.eq(slug)).select(Partner::as_select()).first(conn).optional()
}

pub fn all(conn: &mut Conn) -> QueryResult<Vec<Partner>> {
    partners::table.order((partners::kind, partners::name)).select(Partner::as_select()).load(conn)
}

/// The partners a user acts for, `limit` of them from `offset` (staff
/// act for every partner, by kind and name; others by name).
pub fn managed_by(conn: &mut Conn, user: &SessionUser, offset: i64, limit: i64) -> QueryResult<Vec<Partner>> {
    if user.is_staff() {
        return partners::table
            .order((partners::kind, partners::name, partners::id))
            .limit(limit)
            .offset(offset)
            .select(Partner::as_select())
            .load(conn);
    }
    let ids: Vec<i64> = user
        .roles
        .iter()
        .filter(|(r, _)| *r == Role::PartnerAdmin)
        .filter_map(|(_, s)| s.strip_prefix("partner:")?.parse().ok())
        .collect();
    let members: Vec<i64> = user
        .roles
        .iter()
        .filter(|(r, _)| *r == Role::MemberAdmin)
        .filter_map(|(_, s)| s.strip_prefix("member:")?.parse().ok())
        .collect();
    partners::table
        .filter(partners::id.eq_any(ids).or(partners::member_id.eq_any(members)))
        .order((partners::name, partners::id))
        .limit(limit)
        .offset(offset)
        .select(Partner::as_select())
        .load(conn)
}

/// The member institution's partner, created on first need with the same
/// name and short name.
pub fn for_member(conn: &mut Conn, member: &Member) -> QueryResult<Partner> {
    if let Some(p) =
        partners::table.filter(partners::member_id.eq(member.id)).select(Partner::as_select()).first(conn).optional()?
    {
        return Ok(p);
    }
    let slug = format!("member-{}", member.slug);
    let contact = format!("privacy@{}.invalid", member.slug);
    match create(conn, PartnerKind::Member, &slug, &member.name, Some(member.id), &contact, crate::db::now()) {
        Ok(p) => Ok(p),
        // Created meanwhile by a concurrent request.
        Err(_) => partners::table.filter(partners::member_id.eq(member.id)).select(Partner::as_select()).first(conn),
    }
}

pub fn set_profile_fields(conn: &mut Conn, partner: &Partner, fields: &Categories) -> QueryResult<()> {
    let only_profile = Categories::of(fields.iter().filter(|c| c.is_identity()));
    diesel::update(partners::table.find(partner.id))
        .set((partners::profile_fields.eq(only_profile.to_string()), partners::updated_at.eq(crate::db::now())))
        .execute(conn)
        .map(|_| ())
}

pub fn appoint(conn: &mut Conn, partner: &Partner, user_id: i64, by: i64) -> QueryResult<()> {
    roles::grant(conn, user_id, Role::PartnerAdmin, &partner.scope(), Some(by))
}

// ---- API keys -------------------------------------------------------------

/// What a key may read.
/// Provisioning staff (SCIM) is for organizations, candidates and results
/// (exams) for exam bodies; the reading scopes are for everyone.
pub fn scope_fits(scope: &str, kind: super::PartnerKind) -> bool {
    match scope {
        "scim" => kind == super::PartnerKind::Organization,
        "exams" => kind == super::PartnerKind::ExamBody,
        _ => true,
    }
}

pub const SCOPES: [&str; 6] = ["enrollments", "progress", "results", "aggregates", "scim", "exams"];

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = partner_api_keys)]
pub struct ApiKey {
    pub id: i64,
    pub partner_id: i64,
    pub name: String,
    pub prefix: String,
    pub secret_hash: String,
    pub scopes: String,
    pub created_by: Option<i64>,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
}

impl ApiKey {
    pub fn allows(&self, scope: &str) -> bool {
        self.scopes.split(',').any(|s| s == scope)
    }
}

fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Creates a key and returns it in full, the only time it is ever shown;
/// only its SHA-256 is kept (the key is 40 random characters, so a fast hash
/// suffices).
pub fn create_key(
    conn: &mut Conn,
    partner: &Partner,
    name: &str,
    scopes: &[&str],
    by: Option<i64>,
) -> Result<String, PartnerError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(PartnerError::Invalid("Please name the key (at most 100 characters).".into()));
    }
    // Provisioning staff (SCIM) is for organizations only.
    let scopes: Vec<&str> =
        SCOPES.into_iter().filter(|s| scopes.contains(s) && scope_fits(s, partner.kind())).collect();
    if scopes.is_empty() {
        return Err(PartnerError::Invalid("Choose at least one thing the key may read.".into()));
    }
    let prefix = crate::kernel::tokens::random_alphanumeric(8).to_lowercase();
    let key = format!("lyk_{prefix}_{}", crate::kernel::tokens::random_alphanumeric(40));
    diesel::insert_into(partner_api_keys::table)
        .values((
            partner_api_keys::partner_id.eq(partner.id),
            partner_api_keys::name.eq(name),
            partner_api_keys::prefix.eq(&prefix),
            partner_api_keys::secret_hash.eq(key_hash(&key)),
            partner_api_keys::scopes.eq(scopes.join(",")),
            partner_api_keys::created_by.eq(by),
            partner_api_keys::created_at.eq(crate::db::now()),
        ))
        .execute(conn)?;
    Ok(key)
}

pub fn keys(conn: &mut Conn, partner: &Partner) -> QueryResult<Vec<ApiKey>> {
    partner_api_keys::table
        .filter(partner_api_keys::partner_id.eq(partner.id))
        .order(partner_api_keys::id.desc())
        .select(ApiKey::as_select())
        .load(conn)
}

pub fn revoke_key(conn: &mut Conn, partner: &Partner, key_id: i64) -> QueryResult<bool> {
    diesel::update(
        partner_api_keys::table
            .filter(partner_api_keys::id.eq(key_id))
            .filter(partner_api_keys::partner_id.eq(partner.id))
            .filter(partner_api_keys::revoked_at.is_null()),
    )
    .set(partner_api_keys::revoked_at.eq(crate::db::now()))
    .execute(conn)
    .map(|n| n == 1)
}

#[derive(Debug, PartialEq, Eq)]
pub enum KeyCheck {
    Valid(Box<Partner>, Box<ApiKey>),
    Unknown,
    Revoked,
}

/// Finds the partner behind a presented key, and records its use.
pub fn authenticate(conn: &mut Conn, presented: &str, now: NaiveDateTime) -> QueryResult<KeyCheck> {
    let Some(prefix) = presented.strip_prefix("lyk_").and_then(|r| r.split('_').next()) else {
        return Ok(KeyCheck::Unknown);
    };
    let Some(key) = partner_api_keys::table
        .filter(partner_api_keys::prefix.eq(prefix))
        .select(ApiKey::as_select())
        .first(conn)
        .optional()?
    else {
        return Ok(KeyCheck::Unknown);
    };
    let presented_hash = key_hash(presented);
    let same = presented_hash.len() == key.secret_hash.len()
        && presented_hash.bytes().zip(key.secret_hash.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    if !same {
        return Ok(KeyCheck::Unknown);
    }
    if key.revoked_at.is_some() {
        return Ok(KeyCheck::Revoked);
    }
    diesel::update(partner_api_keys::table.find(key.id)).set(partner_api_keys::last_used_at.eq(now)).execute(conn)?;
    let partner = by_id(conn, key.partner_id)?;
    Ok(KeyCheck::Valid(Box::new(partner), Box::new(key)))
}

impl PartialEq for Partner {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
impl Eq for Partner {}
impl PartialEq for ApiKey {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
impl Eq for ApiKey {}

/// Categories a member-sharing consent asks for: the member's chosen profile
/// fields plus enrollment, activity and performance in its own courses.
pub fn member_offer(partner: &Partner) -> Categories {
    let mut c = partner.requested_profile();
    c.0.extend([Category::Enrollment, Category::Activity, Category::Progress, Category::Grades, Category::Completion]);
    c
}

/// What a consent for `purpose` asks this partner may receive: the list
/// every consent form shows under its text, and what a grant records. The
/// texts never list fields themselves ("the details listed here").
pub fn offered(partner: &Partner, purpose: Purpose) -> Categories {
    match purpose {
        Purpose::MemberSharing => member_offer(partner),
        other => other.ceiling(),
    }
}
