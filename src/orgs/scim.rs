//! A SCIM 2.0 service provider (RFC 7643, RFC 7644) at `/scim/v2`, through
//! which an organization's identity system provisions its staff (SHR-7).
//!
//! - Authenticated by one of the organization's API keys with the `scim`
//!   scope (`Authorization: Bearer lyk_…`); a key reaches only its own
//!   organization's users and groups (another's are 404, not 403).
//! - Users (core schema + the enterprise extension's department) and Groups:
//!   list with `filter` (`attr eq "value"` on userName, externalId,
//!   emails.value, displayName, id), `startIndex`/`count` pagination, create,
//!   read, replace, PATCH (add, replace, remove; with or without a path),
//!   delete. Every resource carries `meta.version` and an `ETag`; a stale
//!   `If-Match` is refused with 412.
//! - Errors are SCIM error documents with `scimType` where RFC 7644 names one;
//!   a request that fails changes nothing.

use rocket::data::{Data, ToByteUnit};
use rocket::http::{ContentType, Header, Status};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::response::{self, Responder, Response};
use rocket::{FromForm, State, delete, get, patch, post, put};
use serde_json::{Map, Value, json};

use super::{Group, OrgError, Staff, StaffInput};
use crate::config::Config;
use crate::consent::PartnerKind;
use crate::consent::partners::{self, KeyCheck, Partner};
use crate::db::schema::{org_groups, org_staff};
use crate::db::{Db, now};
use crate::web::AppError;

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
/// Largest page a list returns.
const MAX_COUNT: i64 = 200;

fn scim_json() -> ContentType {
    ContentType::new("application", "scim+json")
}

/// A SCIM answer: a status, a JSON document and, for a resource, its ETag.
#[derive(Debug)]
pub struct Scim {
    status: Status,
    body: Option<Value>,
    etag: Option<i64>,
}

impl Scim {
    fn ok(body: Value, version: Option<i64>) -> Scim {
        Scim { status: Status::Ok, body: Some(body), etag: version }
    }
    fn error(status: Status, scim_type: Option<&str>, detail: impl Into<String>) -> Scim {
        let mut body = json!({ "schemas": [ERROR], "status": status.code.to_string(), "detail": detail.into() });
        if let Some(t) = scim_type {
            body["scimType"] = json!(t);
        }
        Scim { status, body: Some(body), etag: None }
    }
    fn invalid(scim_type: &str, detail: impl Into<String>) -> Scim {
        Scim::error(Status::BadRequest, Some(scim_type), detail)
    }
}

impl<'r> Responder<'r, 'static> for Scim {
    fn respond_to(self, _req: &'r Request<'_>) -> response::Result<'static> {
        let mut res = Response::build();
        res.status(self.status);
        if let Some(v) = self.etag {
            res.header(Header::new("ETag", format!("W/\"{v}\"")));
        }
        if let Some(body) = self.body {
            let text = body.to_string();
            res.header(scim_json()).sized_body(text.len(), std::io::Cursor::new(text));
        }
        res.ok()
    }
}

type ScimResult = Result<Scim, Scim>;

impl From<AppError> for Scim {
    fn from(e: AppError) -> Scim {
        let status = e.status();
        if status.code < 500 {
            // The client's fault (a NUL in an id PostgreSQL cannot store).
            return Scim::error(status, None, e.public_detail());
        }
        tracing::error!(error = %e, "SCIM request failed");
        Scim::error(Status::InternalServerError, None, "The request could not be completed.")
    }
}

impl From<diesel::result::Error> for Scim {
    fn from(e: diesel::result::Error) -> Scim {
        AppError::from(e).into()
    }
}

impl From<OrgError> for Scim {
    fn from(e: OrgError) -> Scim {
        match e {
            OrgError::Conflict(m) => Scim::error(Status::Conflict, Some("uniqueness"), m),
            OrgError::Invalid(m) => Scim::invalid("invalidValue", m),
            OrgError::NotFound => Scim::error(Status::NotFound, None, "Resource not found."),
            OrgError::Stale => Scim::error(Status::PreconditionFailed, None, "The resource changed: read it again."),
            OrgError::Db(e) => AppError::from(e).into(),
        }
    }
}

/// The organization behind a request's bearer key, or the SCIM error to answer.
pub struct Caller(Result<Partner, (Status, &'static str)>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Caller {
    type Error = ();

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, ()> {
        let Some(presented) = req.headers().get_one("Authorization").and_then(|h| h.strip_prefix("Bearer ")) else {
            return Outcome::Success(Caller(Err((
                Status::Unauthorized,
                "Send the organization's SCIM key as a bearer token.",
            ))));
        };
        let Some(db) = req.rocket().state::<Db>() else { return Outcome::Error((Status::InternalServerError, ())) };
        let presented = presented.trim().to_string();
        let checked = db.run(move |conn| Ok::<_, AppError>(partners::authenticate(conn, &presented, now())?)).await;
        Outcome::Success(Caller(match checked {
            Ok(KeyCheck::Valid(partner, key)) if key.allows("scim") && partner.kind() == PartnerKind::Organization => {
                Ok(*partner)
            }
            Ok(KeyCheck::Valid(..)) => Err((Status::Forbidden, "This key may not provision users.")),
            Ok(_) => Err((Status::Unauthorized, "This key is not valid or was revoked.")),
            Err(e) => {
                tracing::error!(error = %e, "SCIM key check failed");
                return Outcome::Error((Status::InternalServerError, ()));
            }
        }))
    }
}

impl Caller {
    fn partner(self) -> Result<Partner, Scim> {
        self.0.map_err(|(status, detail)| Scim::error(status, None, detail))
    }
}

/// The `If-Match` version, if one was sent: `W/"3"`, `"3"` or `*`.
pub struct IfMatch(Option<i64>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for IfMatch {
    type Error = ();

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, ()> {
        let version = req.headers().get_one("If-Match").and_then(|v| {
            let v = v.trim().trim_start_matches("W/").trim_matches('"');
            // `*` matches any version; an unreadable tag matches none.
            if v == "*" { None } else { Some(v.parse::<i64>().unwrap_or(-1)) }
        });
        Outcome::Success(IfMatch(version))
    }
}

fn location(config: &Config, kind: &str, id: &str) -> String {
    format!("{}/scim/v2/{kind}/{id}", config.base_url())
}

fn meta(
    config: &Config,
    kind: &str,
    id: &str,
    created: chrono::NaiveDateTime,
    modified: chrono::NaiveDateTime,
    version: i64,
) -> Value {
    let time = |t: chrono::NaiveDateTime| t.and_utc().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    json!({
        "resourceType": if kind == "Users" { "User" } else { "Group" },
        "created": time(created), "lastModified": time(modified),
        "location": location(config, kind, id), "version": format!("W/\"{version}\""),
    })
}

fn user_json(config: &Config, s: &Staff) -> Value {
    let mut name = Map::new();
    if let Some(g) = &s.given_name {
        name.insert("givenName".into(), json!(g));
    }
    if let Some(f) = &s.family_name {
        name.insert("familyName".into(), json!(f));
    }
    let mut out = json!({
        "schemas": [USER, ENTERPRISE],
        "id": s.id,
        "userName": s.user_name,
        "name": name,
        "emails": [{ "value": s.work_email, "type": "work", "primary": true }],
        "active": s.active,
        "meta": meta(config, "Users", &s.id, s.created_at, s.updated_at, s.version),
    });
    for (key, value) in [("externalId", &s.external_id), ("displayName", &s.display_name), ("title", &s.title)] {
        if let Some(v) = value {
            out[key] = json!(v);
        }
    }
    out[ENTERPRISE] = match &s.department {
        Some(d) => json!({ "department": d }),
        None => json!({}),
    };
    out
}

fn group_json(config: &Config, g: &Group, members: &[(String, String)]) -> Value {
    let mut out = json!({
        "schemas": [GROUP],
        "id": g.id,
        "displayName": g.display_name,
        "members": members.iter().map(|(id, display)| json!({
            "value": id, "display": display, "$ref": location(config, "Users", id), "type": "User",
        })).collect::<Vec<_>>(),
        "meta": meta(config, "Groups", &g.id, g.created_at, g.updated_at, g.version),
    });
    if let Some(e) = &g.external_id {
        out["externalId"] = json!(e);
    }
    out
}

/// Looks an attribute up case-insensitively (SCIM attribute names are).
fn attr<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v.as_object()?.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
}

fn text(v: &Value, name: &str, max: usize) -> Result<Option<String>, Scim> {
    match attr(v, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= max && !s.chars().any(char::is_control) => {
            Ok(Some(s.trim().to_string()))
        }
        Some(_) => Err(Scim::invalid("invalidValue", format!("{name} must be a string of at most {max} characters"))),
    }
}

/// Reads a User resource as sent (POST, PUT, or a patched document).
fn parse_user(v: &Value) -> Result<StaffInput, Scim> {
    if !v.is_object() {
        return Err(Scim::invalid("invalidSyntax", "the body must be a JSON object"));
    }
    let user_name = text(v, "userName", 200)?.ok_or_else(|| Scim::invalid("invalidValue", "userName is required"))?;
    let name = attr(v, "name").cloned().unwrap_or(Value::Null);
    let emails = match attr(v, "emails") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list.clone(),
        Some(_) => return Err(Scim::invalid("invalidValue", "emails must be a list")),
    };
    let chosen = emails
        .iter()
        .find(|e| attr(e, "type").and_then(Value::as_str) == Some("work"))
        .or_else(|| emails.iter().find(|e| attr(e, "primary").and_then(Value::as_bool) == Some(true)))
        .or(emails.first());
    let raw_email = chosen
        .and_then(|e| attr(e, "value"))
        .and_then(Value::as_str)
        .ok_or_else(|| Scim::invalid("invalidValue", "a work email (emails[type eq \"work\"].value) is required"))?;
    let work_email = crate::accounts::domain::Email::parse(raw_email)
        .map_err(|e| Scim::invalid("invalidValue", format!("emails: {e}")))?
        .as_str()
        .to_string();
    let active = match attr(v, "active") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        // Some identity systems send booleans as strings.
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") => {
            s.eq_ignore_ascii_case("true")
        }
        Some(_) => return Err(Scim::invalid("invalidValue", "active must be true or false")),
    };
    let enterprise = attr(v, ENTERPRISE).cloned().unwrap_or(Value::Null);
    Ok(StaffInput {
        user_name,
        external_id: text(v, "externalId", 200)?,
        given_name: text(&name, "givenName", 100)?,
        family_name: text(&name, "familyName", 100)?,
        display_name: text(v, "displayName", 200)?,
        title: text(v, "title", 200)?,
        department: text(&enterprise, "department", 200)?,
        work_email,
        active,
    })
}

async fn read_json(data: Data<'_>) -> Result<Value, Scim> {
    let body = data
        .open(1.mebibytes())
        .into_string()
        .await
        .map_err(|_| Scim::invalid("invalidSyntax", "the body could not be read"))?;
    if !body.is_complete() {
        return Err(Scim::error(Status::PayloadTooLarge, Some("tooMany"), "the body is larger than 1 MiB"));
    }
    serde_json::from_str(&body).map_err(|e| Scim::invalid("invalidSyntax", format!("the body is not JSON: {e}")))
}

// ---- filters and pages ------------------------------------------------------

/// `attr eq "value"`: the filters identity systems send to find a resource.
#[derive(Debug, PartialEq, Eq)]
struct Filter {
    attr: String,
    value: String,
}

fn parse_filter(raw: &str, allowed: &[&str]) -> Result<Filter, Scim> {
    let re = regex::Regex::new(r#"^\s*([A-Za-z][\w.:]*)\s+(?i:eq)\s+"((?:[^"\\]|\\.)*)"\s*$"#).expect("filter pattern");
    let Some(c) = re.captures(raw) else {
        return Err(Scim::invalid("invalidFilter", format!("unsupported filter {raw:?}: use attribute eq \"value\"")));
    };
    let attr = c[1].to_string();
    let Some(known) = allowed.iter().find(|a| a.eq_ignore_ascii_case(&attr)) else {
        return Err(Scim::invalid(
            "invalidFilter",
            format!("filtering on {attr} is not supported; use one of {allowed:?}"),
        ));
    };
    let value = serde_json::from_str::<String>(&format!("\"{}\"", &c[2]))
        .map_err(|_| Scim::invalid("invalidFilter", "the filter's value is not a valid string"))?;
    Ok(Filter { attr: known.to_string(), value })
}

#[derive(FromForm)]
pub struct ListQuery {
    filter: Option<String>,
    #[field(name = "startIndex")]
    start_index: Option<String>,
    count: Option<String>,
}

impl ListQuery {
    /// (offset, count) from 1-based `startIndex` and `count` (RFC 7644 §3.4.2.4).
    fn page(&self) -> Result<(i64, i64), Scim> {
        let number = |raw: &Option<String>, name: &str, default: i64| match raw {
            None => Ok(default),
            Some(s) => {
                s.trim().parse::<i64>().map_err(|_| Scim::invalid("invalidValue", format!("{name} must be an integer")))
            }
        };
        let start = number(&self.start_index, "startIndex", 1)?.max(1);
        let count = number(&self.count, "count", 100)?.clamp(0, MAX_COUNT);
        Ok((start - 1, count))
    }
}

fn list_response(resources: Vec<Value>, total: i64, offset: i64) -> Scim {
    Scim::ok(
        json!({
            "schemas": [LIST], "totalResults": total, "startIndex": offset + 1,
            "itemsPerPage": resources.len(), "Resources": resources,
        }),
        None,
    )
}

// ---- discovery ----------------------------------------------------------------

#[get("/scim/v2/ServiceProviderConfig")]
pub fn service_provider_config(config: &State<Config>) -> Scim {
    Scim::ok(
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "documentationUri": format!("{}/docs/scim", config.base_url()),
            "patch": { "supported": true },
            "bulk": { "supported": false, "maxOperations": 0, "maxPayloadSize": 0 },
            "filter": { "supported": true, "maxResults": MAX_COUNT },
            "changePassword": { "supported": false },
            "sort": { "supported": false },
            "etag": { "supported": true },
            "authenticationSchemes": [{
                "type": "oauthbearertoken", "name": "Organization API key",
                "description": "An API key of the organization with the scim scope, sent as a bearer token.",
                "primary": true,
            }],
            "meta": { "resourceType": "ServiceProviderConfig", "location": format!("{}/scim/v2/ServiceProviderConfig", config.base_url()) },
        }),
        None,
    )
}

#[get("/scim/v2/ResourceTypes")]
pub fn resource_types(config: &State<Config>) -> Scim {
    let base = config.base_url();
    let types = vec![
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "User", "name": "User", "endpoint": "/Users", "schema": USER,
            "schemaExtensions": [{ "schema": ENTERPRISE, "required": false }],
            "meta": { "resourceType": "ResourceType", "location": format!("{base}/scim/v2/ResourceTypes/User") },
        }),
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "Group", "name": "Group", "endpoint": "/Groups", "schema": GROUP,
            "meta": { "resourceType": "ResourceType", "location": format!("{base}/scim/v2/ResourceTypes/Group") },
        }),
    ];
    list_response(types, 2, 0)
}

fn attribute(name: &str, kind: &str, required: bool, extra: Value) -> Value {
    let mut a = json!({
        "name": name, "type": kind, "multiValued": false, "required": required,
        "caseExact": false, "mutability": "readWrite", "returned": "default", "uniqueness": "none",
    });
    if let (Some(a), Value::Object(extra)) = (a.as_object_mut(), extra) {
        a.extend(extra);
    }
    a
}

#[get("/scim/v2/Schemas")]
pub fn schemas(config: &State<Config>) -> Scim {
    let base = config.base_url();
    let schema = |id: &str, name: &str, attributes: Vec<Value>| {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": id, "name": name, "attributes": attributes,
            "meta": { "resourceType": "Schema", "location": format!("{base}/scim/v2/Schemas/{id}") },
        })
    };
    let user = schema(
        USER,
        "User",
        vec![
            attribute("userName", "string", true, json!({ "uniqueness": "server" })),
            attribute(
                "name",
                "complex",
                false,
                json!({ "subAttributes": [
                    attribute("givenName", "string", false, json!({})),
                    attribute("familyName", "string", false, json!({})),
                ]}),
            ),
            attribute("displayName", "string", false, json!({})),
            attribute("title", "string", false, json!({})),
            attribute("active", "boolean", false, json!({})),
            attribute(
                "emails",
                "complex",
                true,
                json!({ "multiValued": true, "subAttributes": [
                    attribute("value", "string", true, json!({})),
                    attribute("type", "string", false, json!({ "canonicalValues": ["work"] })),
                    attribute("primary", "boolean", false, json!({})),
                ]}),
            ),
        ],
    );
    let enterprise = schema(ENTERPRISE, "EnterpriseUser", vec![attribute("department", "string", false, json!({}))]);
    let group = schema(
        GROUP,
        "Group",
        vec![
            attribute("displayName", "string", true, json!({})),
            attribute(
                "members",
                "complex",
                false,
                json!({ "multiValued": true, "subAttributes": [
                    attribute("value", "string", true, json!({ "mutability": "immutable" })),
                    attribute("display", "string", false, json!({ "mutability": "readOnly" })),
                ]}),
            ),
        ],
    );
    list_response(vec![user, enterprise, group], 3, 0)
}

// ---- users ----------------------------------------------------------------------

#[get("/scim/v2/Users?<q..>")]
pub async fn list_users(db: &State<Db>, config: &State<Config>, caller: Caller, q: ListQuery) -> ScimResult {
    use diesel::prelude::*;
    let partner = caller.partner()?;
    let (offset, count) = q.page()?;
    let filter = match &q.filter {
        Some(f) => Some(parse_filter(f, &["userName", "externalId", "emails.value", "id"])?),
        None => None,
    };
    let (total, rows) = db
        .run(move |conn| {
            let query = || {
                let mut query = org_staff::table
                    .filter(org_staff::partner_id.eq(partner.id))
                    .select(Staff::as_select())
                    .into_boxed();
                if let Some(f) = &filter {
                    query = match f.attr.as_str() {
                        "userName" => query.filter(org_staff::user_name_key.eq(f.value.to_lowercase())),
                        "externalId" => query.filter(org_staff::external_id.eq(f.value.clone())),
                        "emails.value" => query.filter(org_staff::work_email.eq(f.value.to_lowercase())),
                        _ => query.filter(org_staff::id.eq(f.value.clone())),
                    };
                }
                query
            };
            let total: i64 = query().count().get_result(conn)?;
            let rows = query()
                .order(org_staff::created_at.asc())
                .then_order_by(org_staff::id.asc())
                .offset(offset)
                .limit(count)
                .load(conn)?;
            Ok::<_, AppError>((total, rows))
        })
        .await?;
    Ok(list_response(rows.iter().map(|s| user_json(config, s)).collect(), total, offset))
}

#[post("/scim/v2/Users", data = "<data>")]
pub async fn create_user(db: &State<Db>, config: &State<Config>, caller: Caller, data: Data<'_>) -> ScimResult {
    let partner = caller.partner()?;
    let input = parse_user(&read_json(data).await?)?;
    let created = db.run(move |conn| Ok::<_, AppError>(super::create(conn, partner.id, &input, now()))).await??;
    let mut res = Scim::ok(user_json(config, &created), Some(created.version));
    res.status = Status::Created;
    Ok(res)
}

#[get("/scim/v2/Users/<id>")]
pub async fn get_user(db: &State<Db>, config: &State<Config>, caller: Caller, id: &str) -> ScimResult {
    let partner = caller.partner()?;
    let id = id.to_string();
    let found = db.run(move |conn| Ok::<_, AppError>(super::staff(conn, partner.id, &id))).await??;
    Ok(Scim::ok(user_json(config, &found), Some(found.version)))
}

#[put("/scim/v2/Users/<id>", data = "<data>")]
pub async fn replace_user(
    db: &State<Db>,
    config: &State<Config>,
    caller: Caller,
    if_match: IfMatch,
    id: &str,
    data: Data<'_>,
) -> ScimResult {
    let partner = caller.partner()?;
    let input = parse_user(&read_json(data).await?)?;
    let id = id.to_string();
    let saved = db
        .run(move |conn| Ok::<_, AppError>(super::replace(conn, partner.id, &id, &input, if_match.0, now())))
        .await??;
    Ok(Scim::ok(user_json(config, &saved), Some(saved.version)))
}

#[patch("/scim/v2/Users/<id>", data = "<data>")]
pub async fn patch_user(
    db: &State<Db>,
    config: &State<Config>,
    caller: Caller,
    if_match: IfMatch,
    id: &str,
    data: Data<'_>,
) -> ScimResult {
    let partner = caller.partner()?;
    let ops = operations(&read_json(data).await?)?;
    let (id, cfg) = (id.to_string(), config.inner().clone());
    let saved = db
        .run(move |conn| {
            let mut attempt = || -> Result<Staff, Scim> {
                let current = super::staff(conn, partner.id, &id)?;
                let input = patched(user_json(&cfg, &current), &ops, parse_user)?;
                Ok(super::replace(conn, partner.id, &id, &input, if_match.0.or(Some(current.version)), now())?)
            };
            Ok::<_, AppError>(attempt())
        })
        .await??;
    Ok(Scim::ok(user_json(config, &saved), Some(saved.version)))
}

#[delete("/scim/v2/Users/<id>")]
pub async fn delete_user(db: &State<Db>, caller: Caller, if_match: IfMatch, id: &str) -> ScimResult {
    let partner = caller.partner()?;
    let id = id.to_string();
    db.run(move |conn| Ok::<_, AppError>(super::delete(conn, partner.id, &id, if_match.0, now()))).await??;
    Ok(Scim { status: Status::NoContent, body: None, etag: None })
}

// ---- PATCH --------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Operation {
    op: String,
    path: Option<String>,
    value: Option<Value>,
}

fn operations(body: &Value) -> Result<Vec<Operation>, Scim> {
    let schemas_ok = attr(body, "schemas").and_then(Value::as_array).is_some_and(|s| s.iter().any(|v| v == PATCH_OP));
    if !schemas_ok {
        return Err(Scim::invalid("invalidSyntax", format!("a PATCH body names the schema {PATCH_OP}")));
    }
    let Some(Value::Array(list)) = attr(body, "Operations") else {
        return Err(Scim::invalid("invalidSyntax", "Operations must be a list"));
    };
    list.iter()
        .map(|o| {
            let op = attr(o, "op").and_then(Value::as_str).map(str::to_lowercase);
            let Some(op) = op.filter(|op| ["add", "replace", "remove"].contains(&op.as_str())) else {
                return Err(Scim::invalid("invalidSyntax", "each operation's op is add, replace or remove"));
            };
            let path = match attr(o, "path") {
                None | Some(Value::Null) => None,
                Some(Value::String(p)) => Some(p.clone()),
                Some(_) => return Err(Scim::invalid("invalidPath", "path must be a string")),
            };
            let value = attr(o, "value").cloned();
            if op != "remove" && value.is_none() {
                return Err(Scim::invalid("invalidValue", format!("{op} needs a value")));
            }
            if op == "remove" && path.is_none() {
                return Err(Scim::invalid("noTarget", "remove needs a path"));
            }
            Ok(Operation { op, path, value })
        })
        .collect()
}

/// Applies PATCH operations to a resource's document and reads the result as
/// a PUT body would be read: one set of rules for both.
fn patched<T>(mut doc: Value, ops: &[Operation], parse: fn(&Value) -> Result<T, Scim>) -> Result<T, Scim> {
    apply(&mut doc, ops)?;
    parse(&doc)
}

/// The key in `doc` that names `name` (case-insensitively), or `name` itself.
fn key_of(doc: &Map<String, Value>, name: &str) -> String {
    doc.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned().unwrap_or_else(|| name.to_string())
}

/// Applies the operations to a resource document, all or nothing (the
/// caller stores the result only when every operation applied).
fn apply(doc: &mut Value, ops: &[Operation]) -> Result<(), Scim> {
    for o in ops {
        let Some(path) = &o.path else {
            // No path: the value is an object of attributes to set.
            let Some(Value::Object(fields)) = &o.value else {
                return Err(Scim::invalid("invalidValue", "without a path, the value must be an object"));
            };
            for (name, value) in fields {
                set_path(doc, name, &o.op, Some(value))?;
            }
            continue;
        };
        set_path(doc, path, &o.op, o.value.as_ref())?;
    }
    Ok(())
}

fn set_path(doc: &mut Value, path: &str, op: &str, value: Option<&Value>) -> Result<(), Scim> {
    let Some(root) = doc.as_object_mut() else { return Err(Scim::invalid("invalidSyntax", "not an object")) };
    // `members[value eq "…"]` (groups) and `emails[type eq "work"].value` (users).
    let filtered =
        regex::Regex::new(r#"^(\w+)\[\s*(\w+)\s+(?i:eq)\s+"([^"]*)"\s*\](?:\.(\w+))?$"#).expect("path pattern");
    if let Some(c) = filtered.captures(path) {
        let (list, field, wanted, sub) =
            (c[1].to_string(), c[2].to_string(), c[3].to_string(), c.get(4).map(|m| m.as_str().to_string()));
        let key = key_of(root, &list);
        let Some(Value::Array(items)) = root.get_mut(&key) else {
            return Err(Scim::invalid("noTarget", format!("{list} has no such entry")));
        };
        let matches = |item: &Value| attr(item, &field).and_then(Value::as_str) == Some(wanted.as_str());
        match (op, sub) {
            ("remove", None) => items.retain(|i| !matches(i)),
            (_, Some(sub)) => {
                let Some(item) = items.iter_mut().find(|i| matches(i)) else {
                    return Err(Scim::invalid("noTarget", format!("{list} has no entry with {field} {wanted:?}")));
                };
                let Some(obj) = item.as_object_mut() else {
                    return Err(Scim::invalid("invalidPath", path.to_string()));
                };
                let k = key_of(obj, &sub);
                match (op, value) {
                    ("remove", _) => {
                        obj.remove(&k);
                    }
                    (_, Some(v)) => {
                        obj.insert(k, v.clone());
                    }
                    _ => return Err(Scim::invalid("invalidValue", "a value is needed")),
                }
            }
            _ => return Err(Scim::invalid("invalidPath", format!("{op} on {path} is not supported"))),
        }
        return Ok(());
    }
    // The enterprise extension's attributes carry its URN as a prefix.
    let (container, rest) = match path.strip_prefix(&format!("{ENTERPRISE}:")) {
        Some(rest) => (Some(ENTERPRISE.to_string()), rest.to_string()),
        None => (None, path.to_string()),
    };
    if !regex::Regex::new(r"^[A-Za-z]\w*(\.[A-Za-z]\w*)?$").expect("attr pattern").is_match(&rest) {
        return Err(Scim::invalid("invalidPath", format!("unsupported path {path:?}")));
    }
    let mut target = root;
    if let Some(c) = container {
        let k = key_of(target, &c);
        target = target
            .entry(k)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .ok_or_else(|| Scim::invalid("invalidPath", path.to_string()))?;
    }
    let parts: Vec<&str> = rest.split('.').collect();
    if parts.len() == 2 {
        let k = key_of(target, parts[0]);
        let entry = target.entry(k).or_insert_with(|| json!({}));
        target = entry
            .as_object_mut()
            .ok_or_else(|| Scim::invalid("invalidPath", format!("{} is not complex", parts[0])))?;
    }
    let last = parts[parts.len() - 1];
    let k = key_of(target, last);
    match (op, value) {
        ("remove", _) => {
            target.remove(&k);
        }
        // `add` to a multi-valued attribute appends.
        ("add", Some(Value::Array(new))) if matches!(target.get(&k), Some(Value::Array(_))) => {
            if let Some(Value::Array(existing)) = target.get_mut(&k) {
                for v in new {
                    if !existing.contains(v) {
                        existing.push(v.clone());
                    }
                }
            }
        }
        (_, Some(v)) => {
            target.insert(k, v.clone());
        }
        _ => return Err(Scim::invalid("invalidValue", "a value is needed")),
    }
    Ok(())
}

// ---- groups ---------------------------------------------------------------------------

fn parse_group(v: &Value) -> Result<super::GroupInput, Scim> {
    if !v.is_object() {
        return Err(Scim::invalid("invalidSyntax", "the body must be a JSON object"));
    }
    let name = text(v, "displayName", 200)?.ok_or_else(|| Scim::invalid("invalidValue", "displayName is required"))?;
    let members = match attr(v, "members") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .map(|m| {
                attr(m, "value")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| Scim::invalid("invalidValue", "each member needs a value (a user id)"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(Scim::invalid("invalidValue", "members must be a list")),
    };
    Ok(super::GroupInput { display_name: name, external_id: text(v, "externalId", 200)?, members })
}

async fn group_answer(db: &Db, config: &Config, group: Group, status: Status) -> ScimResult {
    let id = group.id.clone();
    let members = db.run(move |conn| Ok::<_, AppError>(super::members(conn, &id)?)).await?;
    let mut res = Scim::ok(group_json(config, &group, &members), Some(group.version));
    res.status = status;
    Ok(res)
}

#[get("/scim/v2/Groups?<q..>")]
pub async fn list_groups(db: &State<Db>, config: &State<Config>, caller: Caller, q: ListQuery) -> ScimResult {
    use diesel::prelude::*;
    let partner = caller.partner()?;
    let (offset, count) = q.page()?;
    let filter = match &q.filter {
        Some(f) => Some(parse_filter(f, &["displayName", "externalId", "id"])?),
        None => None,
    };
    let (total, rows) = db
        .run(move |conn| {
            let query = || {
                let mut query = org_groups::table
                    .filter(org_groups::partner_id.eq(partner.id))
                    .select(Group::as_select())
                    .into_boxed();
                if let Some(f) = &filter {
                    query = match f.attr.as_str() {
                        "displayName" => query.filter(org_groups::display_name.eq(f.value.clone())),
                        "externalId" => query.filter(org_groups::external_id.eq(f.value.clone())),
                        _ => query.filter(org_groups::id.eq(f.value.clone())),
                    };
                }
                query
            };
            let total: i64 = query().count().get_result(conn)?;
            let groups: Vec<Group> = query()
                .order(org_groups::created_at.asc())
                .then_order_by(org_groups::id.asc())
                .offset(offset)
                .limit(count)
                .load(conn)?;
            let mut rows = Vec::new();
            for g in groups {
                let members = super::members(conn, &g.id)?;
                rows.push((g, members));
            }
            Ok::<_, AppError>((total, rows))
        })
        .await?;
    Ok(list_response(rows.iter().map(|(g, m)| group_json(config, g, m)).collect(), total, offset))
}

#[post("/scim/v2/Groups", data = "<data>")]
pub async fn create_group(db: &State<Db>, config: &State<Config>, caller: Caller, data: Data<'_>) -> ScimResult {
    let partner = caller.partner()?;
    let input = parse_group(&read_json(data).await?)?;
    let saved =
        db.run(move |conn| Ok::<_, AppError>(super::save_group(conn, partner.id, None, &input, None, now()))).await??;
    group_answer(db, config, saved, Status::Created).await
}

#[get("/scim/v2/Groups/<id>")]
pub async fn get_group(db: &State<Db>, config: &State<Config>, caller: Caller, id: &str) -> ScimResult {
    let partner = caller.partner()?;
    let id = id.to_string();
    let found = db.run(move |conn| Ok::<_, AppError>(super::group(conn, partner.id, &id))).await??;
    group_answer(db, config, found, Status::Ok).await
}

#[put("/scim/v2/Groups/<id>", data = "<data>")]
pub async fn replace_group(
    db: &State<Db>,
    config: &State<Config>,
    caller: Caller,
    if_match: IfMatch,
    id: &str,
    data: Data<'_>,
) -> ScimResult {
    let partner = caller.partner()?;
    let input = parse_group(&read_json(data).await?)?;
    let id = id.to_string();
    let saved = db
        .run(move |conn| Ok::<_, AppError>(super::save_group(conn, partner.id, Some(&id), &input, if_match.0, now())))
        .await??;
    group_answer(db, config, saved, Status::Ok).await
}

#[patch("/scim/v2/Groups/<id>", data = "<data>")]
pub async fn patch_group(
    db: &State<Db>,
    config: &State<Config>,
    caller: Caller,
    if_match: IfMatch,
    id: &str,
    data: Data<'_>,
) -> ScimResult {
    let partner = caller.partner()?;
    let ops = operations(&read_json(data).await?)?;
    let (id, cfg) = (id.to_string(), config.inner().clone());
    let saved = db
        .run(move |conn| {
            let mut attempt = || -> Result<Group, Scim> {
                let current = super::group(conn, partner.id, &id)?;
                let members = super::members(conn, &id)?;
                let input = patched(group_json(&cfg, &current, &members), &ops, parse_group)?;
                let version = if_match.0.or(Some(current.version));
                Ok(super::save_group(conn, partner.id, Some(&id), &input, version, now())?)
            };
            Ok::<_, AppError>(attempt())
        })
        .await??;
    group_answer(db, config, saved, Status::Ok).await
}

#[delete("/scim/v2/Groups/<id>")]
pub async fn delete_group(db: &State<Db>, caller: Caller, if_match: IfMatch, id: &str) -> ScimResult {
    let partner = caller.partner()?;
    let id = id.to_string();
    db.run(move |conn| Ok::<_, AppError>(super::delete_group(conn, partner.id, &id, if_match.0))).await??;
    Ok(Scim { status: Status::NoContent, body: None, etag: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_attribute_eq_string_only() {
        let allowed = ["userName", "externalId"];
        assert_eq!(
            parse_filter(r#"userName eq "ada@example.org""#, &allowed).ok(),
            Some(Filter { attr: "userName".into(), value: "ada@example.org".into() })
        );
        assert_eq!(parse_filter(r#"USERNAME Eq "a\"b""#, &allowed).ok().map(|f| f.value), Some("a\"b".into()));
        for bad in [r#"userName co "a""#, r#"title eq "x""#, "userName eq", r#"userName eq "a" or externalId eq "b""#] {
            assert!(parse_filter(bad, &allowed).is_err(), "{bad}");
        }
    }

    #[test]
    fn patch_paths_set_sub_attributes_filtered_entries_and_extensions() {
        let mut doc = json!({ "userName": "a", "name": { "givenName": "A" }, "emails": [{ "type": "work", "value": "a@x.org" }] });
        let ops = vec![
            Operation { op: "replace".into(), path: Some("name.familyName".into()), value: Some(json!("B")) },
            Operation {
                op: "replace".into(),
                path: Some(r#"emails[type eq "work"].value"#.into()),
                value: Some(json!("b@x.org")),
            },
            Operation { op: "add".into(), path: Some(format!("{ENTERPRISE}:department")), value: Some(json!("Ops")) },
            Operation { op: "replace".into(), path: None, value: Some(json!({ "active": false })) },
        ];
        apply(&mut doc, &ops).unwrap();
        assert_eq!(doc["name"]["familyName"], "B");
        assert_eq!(doc["emails"][0]["value"], "b@x.org");
        assert_eq!(doc[ENTERPRISE]["department"], "Ops");
        assert_eq!(doc["active"], false);
        let bad = vec![Operation { op: "replace".into(), path: Some("a.b.c".into()), value: Some(json!(1)) }];
        assert!(apply(&mut doc, &bad).is_err());
    }
}
