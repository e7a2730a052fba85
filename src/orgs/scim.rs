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
    headers: Vec<Header<'static>>,
}

impl Scim {
    fn ok(body: Value, version: Option<i64>) -> Scim {
        Scim { status: Status::Ok, body: Some(body), etag: version, headers: Vec::new() }
    }
    fn no_content() -> Scim {
        Scim { status: Status::NoContent, body: None, etag: None, headers: Vec::new() }
    }
    /// 201 with the new resource's address in `Location` (RFC 7644 §3.3).
    fn created(mut self) -> Scim {
        self.status = Status::Created;
        if let Some(at) = self.body.as_ref().and_then(|b| b["meta"]["location"].as_str()) {
            self.headers.push(Header::new("Location", at.to_string()));
        }
        self
    }
    fn error(status: Status, scim_type: Option<&str>, detail: impl Into<String>) -> Scim {
        let mut body = json!({ "schemas": [ERROR], "status": status.code.to_string(), "detail": detail.into() });
        if let Some(t) = scim_type {
            body["scimType"] = json!(t);
        }
        Scim { status, body: Some(body), etag: None, headers: Vec::new() }
    }
    fn projected(mut self, p: &Projection) -> Scim {
        self.body = self.body.map(|b| p.apply(b));
        self
    }
    fn invalid(scim_type: &str, detail: impl Into<String>) -> Scim {
        Scim::error(Status::BadRequest, Some(scim_type), detail)
    }
}

impl<'r> Responder<'r, 'static> for Scim {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        let mut res = Response::build();
        res.status(self.status);
        for h in self.headers {
            res.header(h);
        }
        if self.status == Status::Unauthorized {
            res.header(crate::web::error::www_authenticate(req));
        }
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

/// Errors Rocket raises itself under `/scim/v2` (no such endpoint, a method
/// the endpoint does not take) as SCIM error documents (RFC 7644 §3.12).
#[rocket::catch(default)]
pub fn catcher(status: Status, req: &Request<'_>) -> Scim {
    if status == Status::NotFound {
        let allowed = crate::web::error::allowed_methods(req);
        if !allowed.is_empty() {
            let list = allowed.join(", ");
            let mut res = Scim::error(
                Status::MethodNotAllowed,
                None,
                format!("{} is not accepted here; use {list}.", req.method()),
            );
            res.headers.push(Header::new("Allow", list));
            return res;
        }
        return Scim::error(Status::NotFound, None, "There is no such SCIM endpoint.");
    }
    let detail = req.local_cache(crate::web::error::ErrorDetail::default).0.clone();
    Scim::error(status, None, detail.unwrap_or_else(|| status.reason_lossy().to_string()))
}

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
        "schemas": [USER],
        "id": s.id,
        "userName": s.user_name,
        // One work email is kept, without the `primary` flag a client sent:
        // answering a flag that was not stored would contradict the client.
        "emails": [{ "value": s.work_email, "type": "work" }],
        "active": s.active,
        "meta": meta(config, "Users", &s.id, s.created_at, s.updated_at, s.version),
    });
    for (key, value) in [("externalId", &s.external_id), ("displayName", &s.display_name), ("title", &s.title)] {
        if let Some(v) = value {
            out[key] = json!(v);
        }
    }
    // An attribute without a value is left out (RFC 7643 §2.5): an empty
    // `name` would read as a value that a `remove` failed to take away.
    if !name.is_empty() {
        out["name"] = Value::Object(name);
    }
    if let Some(d) = &s.department {
        out[ENTERPRISE] = json!({ "department": d });
        out["schemas"] = json!([USER, ENTERPRISE]);
    }
    out
}

fn group_json(config: &Config, g: &Group, members: &[(String, String)]) -> Value {
    let mut out = json!({
        "schemas": [GROUP],
        "id": g.id,
        "displayName": g.display_name,
        // No `display`: a member is named by its id and `$ref`; a display
        // name the client did not send reads back as a change it did not make.
        "members": members.iter().map(|(id, _)| json!({
            "value": id, "$ref": location(config, "Users", id), "type": "User",
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
    let attr = strip_core(&c[1]).to_string();
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

#[derive(FromForm, Default)]
pub struct ListQuery {
    filter: Option<String>,
    #[field(name = "startIndex")]
    start_index: Option<String>,
    count: Option<String>,
    attributes: Option<String>,
    #[field(name = "excludedAttributes")]
    excluded_attributes: Option<String>,
}

impl ListQuery {
    fn projection(&self) -> Projection {
        Projection { attributes: self.attributes.clone(), excluded_attributes: self.excluded_attributes.clone() }
    }

    /// A `SearchRequest` body (RFC 7644 §3.4.3) read as the same query.
    fn from_search(body: &Value) -> Result<ListQuery, Scim> {
        let names = |name: &str| -> Result<Option<String>, Scim> {
            match attr(body, name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|i| i.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .map(|v| Some(v.join(",")))
                    .ok_or_else(|| Scim::invalid("invalidValue", format!("{name} is a list of attribute names"))),
                Some(_) => Err(Scim::invalid("invalidValue", format!("{name} is a list of attribute names"))),
            }
        };
        let scalar = |name: &str| match attr(body, name) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => Some(v.to_string()),
        };
        let filter = match attr(body, "filter") {
            None | Some(Value::Null) => None,
            Some(Value::String(f)) => Some(f.clone()),
            Some(_) => return Err(Scim::invalid("invalidFilter", "filter must be a string")),
        };
        Ok(ListQuery {
            filter,
            start_index: scalar("startIndex"),
            count: scalar("count"),
            attributes: names("attributes")?,
            excluded_attributes: names("excludedAttributes")?,
        })
    }

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

/// `attributes` and `excludedAttributes` (RFC 7644 §3.4.2.5), comma-separated
/// attribute names, short (`name.givenName`) or fully qualified.
#[derive(FromForm, Default, Clone, Debug)]
pub struct Projection {
    attributes: Option<String>,
    #[field(name = "excludedAttributes")]
    excluded_attributes: Option<String>,
}

impl Projection {
    fn apply(&self, doc: Value) -> Value {
        let Value::Object(src) = doc else { return doc };
        let wanted = attr_paths(self.attributes.as_deref());
        let mut out = if wanted.is_empty() {
            src
        } else {
            // `id` is returned always; `schemas` and `meta` describe what is returned.
            let mut out = Map::new();
            for always in ["schemas", "id", "meta"] {
                if let Some(v) = src.get(always) {
                    out.insert(always.into(), v.clone());
                }
            }
            for keys in &wanted {
                copy_path(&src, &mut out, keys);
            }
            out
        };
        for keys in attr_paths(self.excluded_attributes.as_deref()) {
            remove_path(&mut out, &keys);
        }
        Value::Object(out)
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

/// `urn:ietf:params:scim:schemas:core:2.0:User:userName` is `userName`: a core
/// schema's attributes may be named with the schema's URN before them.
fn strip_core(path: &str) -> &str {
    for urn in [USER, GROUP] {
        if let Some(rest) = strip_prefix_ci(path, urn).and_then(|r| r.strip_prefix(':')) {
            return rest;
        }
    }
    path
}

/// An attribute path as the keys that lead to it in a resource document:
/// `name.givenName` → [name, givenName]; the enterprise extension's
/// `…:User:department` → [extension URN, department].
fn path_keys(path: &str) -> Vec<String> {
    let path = path.trim();
    if let Some(rest) = strip_prefix_ci(path, ENTERPRISE) {
        if rest.is_empty() {
            return vec![ENTERPRISE.to_string()];
        }
        if let Some(sub) = rest.strip_prefix(':') {
            return std::iter::once(ENTERPRISE.to_string()).chain(sub.split('.').map(str::to_string)).collect();
        }
    }
    strip_core(path).split('.').map(str::to_string).collect()
}

fn attr_paths(raw: Option<&str>) -> Vec<Vec<String>> {
    raw.unwrap_or_default().split(',').map(str::trim).filter(|p| !p.is_empty()).map(path_keys).collect()
}

fn copy_path(src: &Map<String, Value>, out: &mut Map<String, Value>, keys: &[String]) {
    let Some(first) = keys.first() else { return };
    let k = key_of(src, first);
    let Some(v) = src.get(&k) else { return };
    if keys.len() == 1 {
        out.insert(k, v.clone());
        return;
    }
    match v {
        Value::Object(inner) => {
            if let Value::Object(o) = out.entry(k).or_insert_with(|| json!({})) {
                copy_path(inner, o, &keys[1..]);
            }
        }
        // `emails.value`: that sub-attribute of every entry.
        Value::Array(items) => {
            let picked = items
                .iter()
                .filter_map(Value::as_object)
                .map(|item| {
                    let mut o = Map::new();
                    copy_path(item, &mut o, &keys[1..]);
                    Value::Object(o)
                })
                .collect();
            out.insert(k, Value::Array(picked));
        }
        _ => {}
    }
}

fn remove_path(doc: &mut Map<String, Value>, keys: &[String]) {
    let Some(first) = keys.first() else { return };
    let k = key_of(doc, first);
    if keys.len() == 1 {
        // `id` and `schemas` are returned always (RFC 7643 §3.1).
        if !["id", "schemas"].contains(&k.as_str()) {
            doc.remove(&k);
        }
        return;
    }
    match doc.get_mut(&k) {
        Some(Value::Object(o)) => remove_path(o, &keys[1..]),
        Some(Value::Array(items)) => {
            for item in items.iter_mut().filter_map(Value::as_object_mut) {
                remove_path(item, &keys[1..]);
            }
        }
        _ => {}
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
    let types = resource_type_list(&config.base_url());
    let total = types.len() as i64;
    list_response(types, total, 0)
}

#[get("/scim/v2/ResourceTypes/<id>")]
pub fn resource_type(config: &State<Config>, id: &str) -> Scim {
    one_of(resource_type_list(&config.base_url()), id, "resource type")
}

/// The entry of a discovery list with this `id` (RFC 7644 §4), or a 404.
fn one_of(list: Vec<Value>, id: &str, what: &str) -> Scim {
    match list.into_iter().find(|v| v["id"].as_str().is_some_and(|i| i.eq_ignore_ascii_case(id))) {
        Some(v) => Scim::ok(v, None),
        None => Scim::error(Status::NotFound, None, format!("There is no {what} {id:?}.")),
    }
}

fn resource_type_list(base: &str) -> Vec<Value> {
    vec![
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
    ]
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
    let all = schema_list(&config.base_url());
    let total = all.len() as i64;
    list_response(all, total, 0)
}

#[get("/scim/v2/Schemas/<id>")]
pub fn schema(config: &State<Config>, id: &str) -> Scim {
    one_of(schema_list(&config.base_url()), id, "schema")
}

fn schema_list(base: &str) -> Vec<Value> {
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
            // Required here: every account is either active or not, so a
            // `remove` of `active` is refused rather than read as either.
            attribute("active", "boolean", true, json!({})),
            attribute(
                "emails",
                "complex",
                true,
                json!({ "multiValued": true, "subAttributes": [
                    attribute("value", "string", true, json!({})),
                    attribute("type", "string", false, json!({ "canonicalValues": ["work"] })),
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
                    attribute(
                        "$ref",
                        "reference",
                        false,
                        json!({ "referenceTypes": ["User"], "mutability": "immutable" }),
                    ),
                    attribute(
                        "type",
                        "string",
                        false,
                        json!({ "canonicalValues": ["User"], "mutability": "immutable" }),
                    ),
                ]}),
            ),
        ],
    );
    vec![user, enterprise, group]
}

// ---- users ----------------------------------------------------------------------

const USER_FILTERS: &[&str] = &["userName", "externalId", "emails.value", "id"];
const GROUP_FILTERS: &[&str] = &["displayName", "externalId", "id"];

fn user_rows(
    conn: &mut crate::db::Conn,
    partner_id: i64,
    filter: Option<&Filter>,
    offset: i64,
    count: i64,
) -> Result<(i64, Vec<Staff>), AppError> {
    use diesel::prelude::*;
    let query = || {
        let mut query =
            org_staff::table.filter(org_staff::partner_id.eq(partner_id)).select(Staff::as_select()).into_boxed();
        if let Some(f) = filter {
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
    Ok((total, rows))
}

type GroupRow = (Group, Vec<(String, String)>);

fn group_rows(
    conn: &mut crate::db::Conn,
    partner_id: i64,
    filter: Option<&Filter>,
    offset: i64,
    count: i64,
) -> Result<(i64, Vec<GroupRow>), AppError> {
    use diesel::prelude::*;
    let query = || {
        let mut query =
            org_groups::table.filter(org_groups::partner_id.eq(partner_id)).select(Group::as_select()).into_boxed();
        if let Some(f) = filter {
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
    let ids: Vec<String> = groups.iter().map(|g| g.id.clone()).collect();
    let mut members = super::members_of(conn, &ids)?;
    let rows = groups
        .into_iter()
        .map(|g| {
            let m = members.remove(&g.id).unwrap_or_default();
            (g, m)
        })
        .collect();
    Ok((total, rows))
}

/// Lists or searches users, groups or both (the root `/.search`): users come
/// first, then groups, one page over the two.
async fn search(db: &Db, config: &Config, partner_id: i64, users: bool, groups: bool, q: ListQuery) -> ScimResult {
    let (offset, count) = q.page()?;
    let projection = q.projection();
    let pick = |wanted: bool, allowed: &[&str]| -> Option<Result<Option<Filter>, Scim>> {
        wanted.then(|| q.filter.as_deref().map(|f| parse_filter(f, allowed)).transpose())
    };
    // None: this type is not searched. A filter must make sense for at least
    // one of the types searched; the other then contributes nothing.
    let (u, g) = match (pick(users, USER_FILTERS), pick(groups, GROUP_FILTERS)) {
        (Some(Err(e)), None | Some(Err(_))) | (None, Some(Err(e))) => return Err(e),
        (Some(Err(_)), g) => (None, g.and_then(Result::ok)),
        (u, Some(Err(_))) => (u.and_then(Result::ok), None),
        (u, g) => (u.and_then(Result::ok), g.and_then(Result::ok)),
    };
    let (total, staff, teams) = db
        .run(move |conn| {
            let (mut total, mut skip, mut take) = (0, offset, count);
            let mut staff = Vec::new();
            if let Some(f) = &u {
                let (t, rows) = user_rows(conn, partner_id, f.as_ref(), skip, take)?;
                total += t;
                skip = (skip - t).max(0);
                take -= rows.len() as i64;
                staff = rows;
            }
            let mut teams = Vec::new();
            if let Some(f) = &g {
                let (t, rows) = group_rows(conn, partner_id, f.as_ref(), skip, take)?;
                total += t;
                teams = rows;
            }
            Ok::<_, AppError>((total, staff, teams))
        })
        .await?;
    let resources = staff
        .iter()
        .map(|s| user_json(config, s))
        .chain(teams.iter().map(|(g, m)| group_json(config, g, m)))
        .map(|doc| projection.apply(doc))
        .collect();
    Ok(list_response(resources, total, offset))
}

#[get("/scim/v2/Users?<q..>")]
pub async fn list_users(db: &State<Db>, config: &State<Config>, caller: Caller, q: ListQuery) -> ScimResult {
    let partner = caller.partner()?;
    search(db, config, partner.id, true, false, q).await
}

#[post("/scim/v2/Users/.search", data = "<data>")]
pub async fn search_users(db: &State<Db>, config: &State<Config>, caller: Caller, data: Data<'_>) -> ScimResult {
    let partner = caller.partner()?;
    let q = ListQuery::from_search(&read_json(data).await?)?;
    search(db, config, partner.id, true, false, q).await
}

#[post("/scim/v2/Groups/.search", data = "<data>")]
pub async fn search_groups(db: &State<Db>, config: &State<Config>, caller: Caller, data: Data<'_>) -> ScimResult {
    let partner = caller.partner()?;
    let q = ListQuery::from_search(&read_json(data).await?)?;
    search(db, config, partner.id, false, true, q).await
}

#[post("/scim/v2/.search", data = "<data>")]
pub async fn search_all(db: &State<Db>, config: &State<Config>, caller: Caller, data: Data<'_>) -> ScimResult {
    let partner = caller.partner()?;
    let q = ListQuery::from_search(&read_json(data).await?)?;
    search(db, config, partner.id, true, true, q).await
}

#[post("/scim/v2/Users?<p..>", data = "<data>")]
pub async fn create_user(
    db: &State<Db>,
    config: &State<Config>,
    caller: Caller,
    p: Projection,
    data: Data<'_>,
) -> ScimResult {
    let partner = caller.partner()?;
    let input = parse_user(&read_json(data).await?)?;
    let created = db.run(move |conn| Ok::<_, AppError>(super::create(conn, partner.id, &input, now()))).await??;
    Ok(Scim::ok(user_json(config, &created), Some(created.version)).created().projected(&p))
}

#[get("/scim/v2/Users/<id>?<p..>")]
pub async fn get_user(db: &State<Db>, config: &State<Config>, caller: Caller, id: &str, p: Projection) -> ScimResult {
    let partner = caller.partner()?;
    let id = id.to_string();
    let found = db.run(move |conn| Ok::<_, AppError>(super::staff(conn, partner.id, &id))).await??;
    Ok(Scim::ok(user_json(config, &found), Some(found.version)).projected(&p))
}

#[put("/scim/v2/Users/<id>?<p..>", data = "<data>")]
pub async fn replace_user(
    db: &State<Db>,
    config: &State<Config>,
    caller: Caller,
    if_match: IfMatch,
    id: &str,
    p: Projection,
    data: Data<'_>,
) -> ScimResult {
    let partner = caller.partner()?;
    let input = parse_user(&read_json(data).await?)?;
    let id = id.to_string();
    let saved = db
        .run(move |conn| Ok::<_, AppError>(super::replace(conn, partner.id, &id, &input, if_match.0, now())))
        .await??;
    Ok(Scim::ok(user_json(config, &saved), Some(saved.version)).projected(&p))
}

#[patch("/scim/v2/Users/<id>?<p..>", data = "<data>")]
pub async fn patch_user(
    db: &State<Db>,
    config: &State<Config>,
    caller: Caller,
    if_match: IfMatch,
    id: &str,
    p: Projection,
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
    Ok(Scim::ok(user_json(config, &saved), Some(saved.version)).projected(&p))
}

#[delete("/scim/v2/Users/<id>")]
pub async fn delete_user(db: &State<Db>, caller: Caller, if_match: IfMatch, id: &str) -> ScimResult {
    let partner = caller.partner()?;
    let id = id.to_string();
    db.run(move |conn| Ok::<_, AppError>(super::delete(conn, partner.id, &id, if_match.0, now()))).await??;
    Ok(Scim::no_content())
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

/// Whether a list entry is the one a `remove` names by value: the same
/// `value` (a member's id) or, for entries without one, the same entry.
fn same_entry(named: &Value, item: &Value) -> bool {
    match attr(named, "value") {
        Some(v) => attr(item, "value") == Some(v),
        None => named == item,
    }
}

fn set_path(doc: &mut Value, path: &str, op: &str, value: Option<&Value>) -> Result<(), Scim> {
    let Some(root) = doc.as_object_mut() else { return Err(Scim::invalid("invalidSyntax", "not an object")) };
    let path = strip_core(path.trim());
    // `members[value eq "…"]` (groups) and `emails[type eq "work"].value` (users).
    let filtered =
        regex::Regex::new(r#"^(\w+)\[\s*(\w+)\s+(?i:eq)\s+"([^"]*)"\s*\](?:\.(\w+))?$"#).expect("path pattern");
    if let Some(c) = filtered.captures(path) {
        let (list, field, wanted, sub) =
            (c[1].to_string(), c[2].to_string(), c[3].to_string(), c.get(4).map(|m| m.as_str().to_string()));
        let key = key_of(root, &list);
        if !matches!(root.get(&key), Some(Value::Array(_))) {
            // Nothing to remove from a list that has no entries; an add or
            // replace starts the list (RFC 7644 §3.5.2.3: replace acts as add).
            if op == "remove" {
                return Ok(());
            }
            root.insert(key.clone(), json!([]));
        }
        let Some(Value::Array(items)) = root.get_mut(&key) else {
            return Err(Scim::invalid("invalidPath", format!("{list} is not a list")));
        };
        let matches = |item: &Value| attr(item, &field).and_then(Value::as_str) == Some(wanted.as_str());
        match (op, sub, value) {
            ("remove", None, _) => items.retain(|i| !matches(i)),
            ("remove", Some(sub), _) => {
                for obj in items.iter_mut().filter(|i| matches(i)).filter_map(Value::as_object_mut) {
                    let k = key_of(obj, &sub);
                    obj.remove(&k);
                }
            }
            (_, Some(sub), Some(v)) => {
                // Microsoft Entra ID adds `emails[type eq "work"].value` to a
                // user who has no work email yet: the entry is made.
                if !items.iter().any(matches) {
                    items.push(json!({ field.clone(): wanted.clone() }));
                }
                for obj in items.iter_mut().filter(|i| matches(i)).filter_map(Value::as_object_mut) {
                    let k = key_of(obj, &sub);
                    obj.insert(k, v.clone());
                }
            }
            (_, None, Some(Value::Object(fields))) => {
                for obj in items.iter_mut().filter(|i| matches(i)).filter_map(Value::as_object_mut) {
                    for (name, v) in fields {
                        let k = key_of(obj, name);
                        obj.insert(k, v.clone());
                    }
                }
            }
            _ => return Err(Scim::invalid("invalidValue", format!("{op} on {path} needs a value"))),
        }
        return Ok(());
    }
    let keys = path_keys(path);
    let in_extension = keys.first().is_some_and(|k| k == ENTERPRISE);
    let plain = regex::Regex::new(r"^[A-Za-z$][\w$]*$").expect("attr pattern");
    let names = &keys[usize::from(in_extension)..];
    if names.len() > 2 || (names.is_empty() && !in_extension) || !names.iter().all(|k| plain.is_match(k)) {
        return Err(Scim::invalid("invalidPath", format!("unsupported path {path:?}")));
    }
    if op == "remove" && keys.len() == 1 && keys[0].eq_ignore_ascii_case("active") {
        // An account is active or not; there is no third state to remove to.
        return Err(Scim::invalid(
            "invalidValue",
            "active cannot be removed; replace it with false to deactivate the account",
        ));
    }
    let mut target = root;
    for name in &keys[..keys.len() - 1] {
        let k = key_of(target, name);
        target = target
            .entry(k)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .ok_or_else(|| Scim::invalid("invalidPath", format!("{name} is not complex")))?;
    }
    let k = key_of(target, &keys[keys.len() - 1]);
    match (op, value) {
        // Okta and Entra remove one member by naming it in `value`: only the
        // named entries go, never the whole list.
        ("remove", Some(named)) if matches!(target.get(&k), Some(Value::Array(_))) => {
            let named: Vec<Value> = match named {
                Value::Array(list) => list.clone(),
                one => vec![one.clone()],
            };
            if let Some(Value::Array(items)) = target.get_mut(&k) {
                items.retain(|i| !named.iter().any(|n| same_entry(n, i)));
            }
        }
        ("remove", _) => {
            target.remove(&k);
        }
        // `add` to a multi-valued attribute appends what is not there yet.
        ("add", Some(Value::Array(new))) if matches!(target.get(&k), Some(Value::Array(_))) => {
            if let Some(Value::Array(existing)) = target.get_mut(&k) {
                for v in new {
                    if !existing.iter().any(|e| same_entry(v, e)) {
                        existing.push(v.clone());
                    }
                }
            }
        }
        // `add` to a complex attribute sets the sub-attributes it names.
        ("add", Some(Value::Object(new))) if matches!(target.get(&k), Some(Value::Object(_))) => {
            if let Some(Value::Object(existing)) = target.get_mut(&k) {
                for (name, v) in new {
                    let sub = key_of(existing, name);
                    existing.insert(sub, v.clone());
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

async fn group_answer(db: &Db, config: &Config, group: Group, created: bool, p: &Projection) -> ScimResult {
    let id = group.id.clone();
    let members = db.run(move |conn| Ok::<_, AppError>(super::members(conn, &id)?)).await?;
    let res = Scim::ok(group_json(config, &group, &members), Some(group.version));
    Ok(if created { res.created() } else { res }.projected(p))
}

#[get("/scim/v2/Groups?<q..>")]
pub async fn list_groups(db: &State<Db>, config: &State<Config>, caller: Caller, q: ListQuery) -> ScimResult {
    let partner = caller.partner()?;
    search(db, config, partner.id, false, true, q).await
}

#[post("/scim/v2/Groups?<p..>", data = "<data>")]
pub async fn create_group(
    db: &State<Db>,
    config: &State<Config>,
    caller: Caller,
    p: Projection,
    data: Data<'_>,
) -> ScimResult {
    let partner = caller.partner()?;
    let input = parse_group(&read_json(data).await?)?;
    let saved =
        db.run(move |conn| Ok::<_, AppError>(super::save_group(conn, partner.id, None, &input, None, now()))).await??;
    group_answer(db, config, saved, true, &p).await
}

#[get("/scim/v2/Groups/<id>?<p..>")]
pub async fn get_group(db: &State<Db>, config: &State<Config>, caller: Caller, id: &str, p: Projection) -> ScimResult {
    let partner = caller.partner()?;
    let id = id.to_string();
    let found = db.run(move |conn| Ok::<_, AppError>(super::group(conn, partner.id, &id))).await??;
    group_answer(db, config, found, false, &p).await
}

#[put("/scim/v2/Groups/<id>?<p..>", data = "<data>")]
pub async fn replace_group(
    db: &State<Db>,
    config: &State<Config>,
    caller: Caller,
    if_match: IfMatch,
    id: &str,
    p: Projection,
    data: Data<'_>,
) -> ScimResult {
    let partner = caller.partner()?;
    let input = parse_group(&read_json(data).await?)?;
    let id = id.to_string();
    let saved = db
        .run(move |conn| Ok::<_, AppError>(super::save_group(conn, partner.id, Some(&id), &input, if_match.0, now())))
        .await??;
    group_answer(db, config, saved, false, &p).await
}

#[patch("/scim/v2/Groups/<id>?<p..>", data = "<data>")]
pub async fn patch_group(
    db: &State<Db>,
    config: &State<Config>,
    caller: Caller,
    if_match: IfMatch,
    id: &str,
    p: Projection,
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
    group_answer(db, config, saved, false, &p).await
}

#[delete("/scim/v2/Groups/<id>")]
pub async fn delete_group(db: &State<Db>, caller: Caller, if_match: IfMatch, id: &str) -> ScimResult {
    let partner = caller.partner()?;
    let id = id.to_string();
    db.run(move |conn| Ok::<_, AppError>(super::delete_group(conn, partner.id, &id, if_match.0))).await??;
    Ok(Scim::no_content())
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
