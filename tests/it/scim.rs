//! SCIM 2.0 provisioning of an organization's staff (SHR-7), driven the way an
//! identity system does: bearer key, JSON bodies, RFC 7644 shapes and codes.

use diesel::prelude::*;
use lyceum::consent::PartnerKind;
use lyceum::consent::partners;
use lyceum::db::schema::{sessions, users};
use rocket::http::{ContentType, Header, Status};
use serde_json::{Value, json};

use crate::common::TestApp;
use crate::on_both;
use crate::sharing::run;

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// An organization with a SCIM key: (partner id, key).
async fn organization(app: &TestApp, slug: &str) -> (i64, String) {
    let slug = slug.to_string();
    run(app, move |conn| {
        let now = lyceum::db::now();
        let org = partners::create(conn, PartnerKind::Organization, &slug, "Globex", None, "it@globex.example", now)
            .map_err(|e| e.to_string())?;
        let key = partners::create_key(conn, &org, "identity system", &["scim"], None).map_err(|e| e.to_string())?;
        Ok::<_, String>((org.id, key))
    })
    .await
}

struct Answer {
    status: Status,
    etag: Option<String>,
    content_type: Option<String>,
    location: Option<String>,
    allow: Option<String>,
    challenge: Option<String>,
    body: Value,
}

async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    key: &str,
    body: Option<Value>,
    if_match: Option<&str>,
) -> Answer {
    let mut req = match method {
        "GET" => app.client.get(path.to_string()),
        "POST" => app.client.post(path.to_string()),
        "PUT" => app.client.put(path.to_string()),
        "PATCH" => app.client.patch(path.to_string()),
        "DELETE" => app.client.delete(path.to_string()),
        other => panic!("{other}"),
    };
    if !key.is_empty() {
        req = req.header(Header::new("Authorization", format!("Bearer {key}")));
    }
    if let Some(tag) = if_match {
        req = req.header(Header::new("If-Match", tag.to_string()));
    }
    if let Some(b) = body {
        req = req.header(ContentType::new("application", "scim+json")).body(b.to_string());
    }
    let res = req.dispatch().await;
    let status = res.status();
    let etag = res.headers().get_one("ETag").map(str::to_string);
    let content_type = res.content_type().map(|c| c.to_string());
    let header = |name: &str| res.headers().get_one(name).map(str::to_string);
    let (location, allow, challenge) = (header("Location"), header("Allow"), header("WWW-Authenticate"));
    let text = res.into_string().await.unwrap_or_default();
    Answer {
        status,
        etag,
        content_type,
        location,
        allow,
        challenge,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

fn grace() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "userName": "Grace.Hopper@globex.example",
        "externalId": "00u1",
        "name": { "givenName": "Grace", "familyName": "Hopper" },
        "title": "Rear Admiral",
        "emails": [{ "value": "grace.hopper@globex.example", "type": "work", "primary": true }],
        "active": true,
        ENTERPRISE: { "department": "Navy" },
    })
}

fn assert_error(a: &Answer, status: Status, scim_type: Option<&str>) {
    assert_eq!(a.status, status, "{}", a.body);
    assert_eq!(a.body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error", "{}", a.body);
    assert_eq!(a.body["status"], status.code.to_string());
    if let Some(t) = scim_type {
        assert_eq!(a.body["scimType"], t, "{}", a.body);
    }
}

async fn users_endpoint(app: TestApp) {
    // promise: SHR-7 — an organization syncs its staff (names, job titles, work emails) over SCIM 2.0.
    let (org_id, key) = organization(&app, "globex").await;

    // Discovery.
    let spc = call(&app, "GET", "/scim/v2/ServiceProviderConfig", &key, None, None).await;
    assert_eq!(spc.status, Status::Ok);
    assert_eq!(spc.content_type.as_deref(), Some("application/scim+json"));
    assert_eq!(spc.body["patch"]["supported"], true);
    assert_eq!(spc.body["etag"]["supported"], true);
    let types = call(&app, "GET", "/scim/v2/ResourceTypes", &key, None, None).await;
    assert_eq!(types.body["totalResults"], 2);
    let schemas = call(&app, "GET", "/scim/v2/Schemas", &key, None, None).await;
    assert!(schemas.body["Resources"].as_array().unwrap().iter().any(|s| s["id"] == ENTERPRISE));

    // Create: 201 with the resource, its location and version.
    let created = call(&app, "POST", "/scim/v2/Users", &key, Some(grace()), None).await;
    assert_eq!(created.status, Status::Created, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(created.body["userName"], "Grace.Hopper@globex.example");
    assert_eq!(created.body["name"]["familyName"], "Hopper");
    assert_eq!(created.body["title"], "Rear Admiral");
    assert_eq!(created.body[ENTERPRISE]["department"], "Navy");
    assert_eq!(created.body["emails"][0]["value"], "grace.hopper@globex.example");
    assert_eq!(created.body["meta"]["resourceType"], "User");
    assert_eq!(created.body["meta"]["location"], format!("http://lyceum.test/scim/v2/Users/{id}"));
    assert_eq!(created.etag.as_deref(), Some("W/\"1\""));
    assert_eq!(created.body["meta"]["version"], "W/\"1\"");

    // The account holds only what was sent: no date of birth, phone or password.
    let (email, first, dob, phone, hash, status): (
        String,
        String,
        Option<chrono::NaiveDate>,
        Option<String>,
        String,
        String,
    ) = run(&app, |conn| {
        users::table
            .filter(users::email.eq("grace.hopper@globex.example"))
            .select((
                users::email,
                users::first_name,
                users::date_of_birth,
                users::phone,
                users::password_hash,
                users::status,
            ))
            .first(conn)
    })
    .await;
    assert_eq!((email.as_str(), first.as_str(), status.as_str()), ("grace.hopper@globex.example", "Grace", "active"));
    assert!(dob.is_none() && phone.is_none() && hash.is_empty());

    // A duplicate userName (case-insensitive) is a 409 uniqueness error.
    let mut dup = grace();
    dup["userName"] = json!("grace.hopper@GLOBEX.example");
    dup["emails"][0]["value"] = json!("other@globex.example");
    assert_error(
        &call(&app, "POST", "/scim/v2/Users", &key, Some(dup), None).await,
        Status::Conflict,
        Some("uniqueness"),
    );
    // Bad input: no userName, no email, not JSON.
    let mut no_name = grace();
    no_name.as_object_mut().unwrap().remove("userName");
    assert_error(
        &call(&app, "POST", "/scim/v2/Users", &key, Some(no_name), None).await,
        Status::BadRequest,
        Some("invalidValue"),
    );
    let mut no_email = grace();
    no_email["userName"] = json!("noemail");
    no_email.as_object_mut().unwrap().remove("emails");
    assert_error(
        &call(&app, "POST", "/scim/v2/Users", &key, Some(no_email), None).await,
        Status::BadRequest,
        Some("invalidValue"),
    );
    let res = app
        .client
        .post("/scim/v2/Users")
        .header(Header::new("Authorization", format!("Bearer {key}")))
        .header(ContentType::JSON)
        .body("{not json")
        .dispatch()
        .await;
    assert_eq!(res.status(), Status::BadRequest);
    assert!(res.into_string().await.unwrap().contains("invalidSyntax"));

    // Read, list, filter, paginate.
    let read = call(&app, "GET", &format!("/scim/v2/Users/{id}"), &key, None, None).await;
    assert_eq!(read.body["id"], id.as_str());
    let mut second = grace();
    second["userName"] = json!("ada@globex.example");
    second["externalId"] = json!("00u2");
    second["emails"][0]["value"] = json!("ada@globex.example");
    let ada = call(&app, "POST", "/scim/v2/Users", &key, Some(second), None).await;
    assert_eq!(ada.status, Status::Created);
    let ada_id = ada.body["id"].as_str().unwrap().to_string();
    let found = call(
        &app,
        "GET",
        "/scim/v2/Users?filter=userName%20eq%20%22GRACE.hopper%40globex.example%22",
        &key,
        None,
        None,
    )
    .await;
    assert_eq!(found.body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:ListResponse");
    assert_eq!(found.body["totalResults"], 1);
    assert_eq!(found.body["Resources"][0]["id"], id.as_str());
    let by_external = call(&app, "GET", "/scim/v2/Users?filter=externalId%20eq%20%2200u2%22", &key, None, None).await;
    assert_eq!(by_external.body["Resources"][0]["id"], ada_id.as_str());
    let none = call(&app, "GET", "/scim/v2/Users?filter=userName%20eq%20%22nobody%22", &key, None, None).await;
    assert_eq!((none.status, none.body["totalResults"].clone()), (Status::Ok, json!(0)));
    let page = call(&app, "GET", "/scim/v2/Users?startIndex=2&count=1", &key, None, None).await;
    assert_eq!(page.body["totalResults"], 2);
    assert_eq!(page.body["startIndex"], 2);
    assert_eq!(page.body["itemsPerPage"], 1);
    assert_eq!(page.body["Resources"][0]["id"], ada_id.as_str());
    // A malformed filter is a SCIM 400.
    for bad in ["userName%20co%20%22x%22", "title%20eq%20%22x%22", "userName%20eq"] {
        assert_error(
            &call(&app, "GET", &format!("/scim/v2/Users?filter={bad}"), &key, None, None).await,
            Status::BadRequest,
            Some("invalidFilter"),
        );
    }

    // Replace (PUT) with the current version, then a stale If-Match is 412.
    let mut changed = grace();
    changed["title"] = json!("Commodore");
    let put = call(&app, "PUT", &format!("/scim/v2/Users/{id}"), &key, Some(changed.clone()), Some("W/\"1\"")).await;
    assert_eq!(put.status, Status::Ok, "{}", put.body);
    assert_eq!(put.body["title"], "Commodore");
    assert_eq!(put.etag.as_deref(), Some("W/\"2\""));
    let stale = call(&app, "PUT", &format!("/scim/v2/Users/{id}"), &key, Some(changed), Some("W/\"1\"")).await;
    assert_error(&stale, Status::PreconditionFailed, None);

    // PATCH: a path, a filtered path, the extension; a bad op changes nothing.
    let patch = json!({ "schemas": [PATCH], "Operations": [
        { "op": "replace", "path": "name.givenName", "value": "Amazing Grace" },
        { "op": "replace", "path": "emails[type eq \"work\"].value", "value": "grace@globex.example" },
        { "op": "add", "path": format!("{ENTERPRISE}:department"), "value": "Computing" },
    ]});
    let patched = call(&app, "PATCH", &format!("/scim/v2/Users/{id}"), &key, Some(patch), None).await;
    assert_eq!(patched.status, Status::Ok, "{}", patched.body);
    assert_eq!(patched.body["name"]["givenName"], "Amazing Grace");
    assert_eq!(patched.body["emails"][0]["value"], "grace@globex.example");
    assert_eq!(patched.body[ENTERPRISE]["department"], "Computing");
    let first: String = run(&app, |conn| {
        users::table.filter(users::email.eq("grace.hopper@globex.example")).select(users::first_name).first(conn)
    })
    .await;
    assert_eq!(first, "Amazing Grace", "the account follows the organization's record");
    // The sign-in email moves only once the new address confirms it; the old one is told.
    let told = app.mailed_subjects("grace.hopper@globex.example").await;
    assert!(told.iter().any(|s| s.contains("change of your email")), "the old address is told: {told:?}");
    let confirm = app.mailed_link("grace@globex.example", "/account/email/confirm/").await.expect("a confirmation");
    app.get(&confirm).await;
    let moved: i64 =
        run(&app, |conn| users::table.filter(users::email.eq("grace@globex.example")).count().get_result(conn)).await;
    assert_eq!(moved, 1, "confirmed, the sign-in email follows the work email");
    let before = call(&app, "GET", &format!("/scim/v2/Users/{id}"), &key, None, None).await.body;
    for bad in [
        json!({ "schemas": [PATCH], "Operations": [{ "op": "replace", "path": "title", "value": "X" }, { "op": "explode", "path": "title" }] }),
        json!({ "schemas": [PATCH], "Operations": [{ "op": "replace", "path": "title", "value": "X" }, { "op": "replace", "path": "a.b.c", "value": 1 }] }),
        json!({ "schemas": [PATCH], "Operations": [{ "op": "replace", "path": "title", "value": "X" }, { "op": "remove", "path": "userName" }] }),
        json!({ "Operations": [] }),
    ] {
        let a = call(&app, "PATCH", &format!("/scim/v2/Users/{id}"), &key, Some(bad.clone()), None).await;
        assert_eq!(a.status, Status::BadRequest, "{bad}: {}", a.body);
        assert!(a.body["scimType"].is_string(), "{}", a.body);
    }
    assert_eq!(
        call(&app, "GET", &format!("/scim/v2/Users/{id}"), &key, None, None).await.body,
        before,
        "nothing changed"
    );

    // Another organization's key sees none of this: 404, not 403.
    let (_, other) = organization(&app, "initech").await;
    assert_error(&call(&app, "GET", &format!("/scim/v2/Users/{id}"), &other, None, None).await, Status::NotFound, None);
    let theirs = call(&app, "GET", "/scim/v2/Users", &other, None, None).await;
    assert_eq!(theirs.body["totalResults"], 0);
    assert_error(
        &call(&app, "DELETE", &format!("/scim/v2/Users/{id}"), &other, None, None).await,
        Status::NotFound,
        None,
    );
    // No key, a bad key, a key without the scim scope.
    let res = app.client.get("/scim/v2/Users").dispatch().await;
    assert_eq!(res.status(), Status::Unauthorized);
    assert_error(&call(&app, "GET", "/scim/v2/Users", "lyk_nope_nope", None, None).await, Status::Unauthorized, None);
    let reader = run(&app, move |conn| {
        let org = partners::by_id(conn, org_id)?;
        Ok::<_, diesel::result::Error>(partners::create_key(conn, &org, "reports", &["progress"], None).unwrap())
    })
    .await;
    assert_error(&call(&app, "GET", "/scim/v2/Users", &reader, None, None).await, Status::Forbidden, None);
    assert_error(&call(&app, "GET", "/scim/v2/Users/does-not-exist", &key, None, None).await, Status::NotFound, None);
    // An id holding a NUL, which PostgreSQL cannot store (SQLite can), is the
    // client's error on both backends: 400 or 404, never a 500.
    let nul = if app.pg.is_some() { Status::BadRequest } else { Status::NotFound };
    for (method, path) in
        [("GET", "/scim/v2/Users/a%00b"), ("DELETE", "/scim/v2/Users/a%00b"), ("GET", "/scim/v2/Groups/a%00b")]
    {
        assert_error(&call(&app, method, path, &key, None, None).await, nul, None);
    }

    // Deactivation ends the person's sessions at once and keeps them out.
    let user: i64 =
        run(&app, |conn| users::table.filter(users::email.eq("grace@globex.example")).select(users::id).first(conn))
            .await;
    run(&app, move |conn| {
        diesel::insert_into(sessions::table)
            .values((
                sessions::id.eq("scim-test-session"),
                sessions::user_id.eq(user),
                sessions::remember.eq(false),
                sessions::created_at.eq(lyceum::db::now()),
                sessions::last_seen_at.eq(lyceum::db::now()),
                sessions::expires_at.eq(lyceum::db::now() + chrono::Duration::days(1)),
            ))
            .execute(conn)
    })
    .await;
    let off = json!({ "schemas": [PATCH], "Operations": [{ "op": "replace", "value": { "active": false } }] });
    let a = call(&app, "PATCH", &format!("/scim/v2/Users/{id}"), &key, Some(off), None).await;
    assert_eq!((a.status, a.body["active"].clone()), (Status::Ok, json!(false)));
    let left: i64 =
        run(&app, move |conn| sessions::table.filter(sessions::user_id.eq(user)).count().get_result(conn)).await;
    assert_eq!(left, 0, "signed out everywhere at once");
    let status: String = run(&app, move |conn| users::table.find(user).select(users::status).first(conn)).await;
    assert_eq!(status, "deactivated");

    // Delete: 204, then 404; the account is switched off and its erasure starts.
    let gone = call(&app, "DELETE", &format!("/scim/v2/Users/{id}"), &key, None, None).await;
    assert_eq!(gone.status, Status::NoContent);
    assert_error(&call(&app, "GET", &format!("/scim/v2/Users/{id}"), &key, None, None).await, Status::NotFound, None);
    let erasures: i64 = run(&app, move |conn| {
        use lyceum::db::schema::erasures;
        erasures::table.filter(erasures::user_id.eq(user)).count().get_result(conn)
    })
    .await;
    assert_eq!(erasures, 1, "erased on the organization's word");
}
on_both!(shr_7_scim_users, users_endpoint);

async fn groups_endpoint(app: TestApp) {
    // promise: SHR-7 — groups of staff come over SCIM too.
    let (_, key) = organization(&app, "globex").await;
    let a = call(&app, "POST", "/scim/v2/Users", &key, Some(grace()), None).await;
    let grace_id = a.body["id"].as_str().unwrap().to_string();
    let mut second = grace();
    second["userName"] = json!("ada@globex.example");
    second["emails"][0]["value"] = json!("ada@globex.example");
    let ada_id =
        call(&app, "POST", "/scim/v2/Users", &key, Some(second), None).await.body["id"].as_str().unwrap().to_string();

    let g = call(
        &app,
        "POST",
        "/scim/v2/Groups",
        &key,
        Some(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Engineering", "externalId": "grp-1",
            "members": [{ "value": grace_id }],
        })),
        None,
    )
    .await;
    assert_eq!(g.status, Status::Created, "{}", g.body);
    let gid = g.body["id"].as_str().unwrap().to_string();
    assert_eq!(g.body["members"][0]["value"], grace_id.as_str());
    assert_eq!(g.body["meta"]["resourceType"], "Group");

    // Members added and removed by PATCH, as Entra ID and Okta do.
    let add = json!({ "schemas": [PATCH], "Operations": [{ "op": "add", "path": "members", "value": [{ "value": ada_id }] }] });
    let a = call(&app, "PATCH", &format!("/scim/v2/Groups/{gid}"), &key, Some(add), None).await;
    assert_eq!(a.status, Status::Ok, "{}", a.body);
    assert_eq!(a.body["members"].as_array().unwrap().len(), 2);
    let remove = json!({ "schemas": [PATCH], "Operations": [{ "op": "remove", "path": format!("members[value eq \"{grace_id}\"]") }] });
    let a = call(&app, "PATCH", &format!("/scim/v2/Groups/{gid}"), &key, Some(remove), None).await;
    assert_eq!(a.body["members"].as_array().unwrap().len(), 1);
    assert_eq!(a.body["members"][0]["value"], ada_id.as_str());
    let rename =
        json!({ "schemas": [PATCH], "Operations": [{ "op": "replace", "path": "displayName", "value": "R&D" }] });
    let a = call(&app, "PATCH", &format!("/scim/v2/Groups/{gid}"), &key, Some(rename), None).await;
    assert_eq!(a.body["displayName"], "R&D");
    assert_eq!(a.etag.as_deref(), Some("W/\"4\""));

    // Filter by displayName; a member from another organization is refused.
    let found = call(&app, "GET", "/scim/v2/Groups?filter=displayName%20eq%20%22R%26D%22", &key, None, None).await;
    assert_eq!(found.body["totalResults"], 1);
    let (_, other) = organization(&app, "initech").await;
    let theirs = call(
        &app,
        "POST",
        "/scim/v2/Users",
        &other,
        Some(json!({
            "userName": "x@initech.example", "emails": [{ "value": "x@initech.example", "type": "work" }],
        })),
        None,
    )
    .await;
    let stranger = theirs.body["id"].as_str().unwrap().to_string();
    let sneak = json!({ "schemas": [PATCH], "Operations": [{ "op": "add", "path": "members", "value": [{ "value": stranger }] }] });
    assert_error(
        &call(&app, "PATCH", &format!("/scim/v2/Groups/{gid}"), &key, Some(sneak), None).await,
        Status::BadRequest,
        Some("invalidValue"),
    );
    assert_error(
        &call(&app, "GET", &format!("/scim/v2/Groups/{gid}"), &other, None, None).await,
        Status::NotFound,
        None,
    );
    // PUT with a stale version; then DELETE.
    let put = call(
        &app,
        "PUT",
        &format!("/scim/v2/Groups/{gid}"),
        &key,
        Some(json!({ "displayName": "Old" })),
        Some("W/\"1\""),
    )
    .await;
    assert_error(&put, Status::PreconditionFailed, None);
    // Deleting a user takes them out of their groups.
    call(&app, "DELETE", &format!("/scim/v2/Users/{ada_id}"), &key, None, None).await;
    let a = call(&app, "GET", &format!("/scim/v2/Groups/{gid}"), &key, None, None).await;
    assert_eq!(a.body["members"].as_array().unwrap().len(), 0);
    assert_eq!(
        call(&app, "DELETE", &format!("/scim/v2/Groups/{gid}"), &key, None, None).await.status,
        Status::NoContent
    );
    assert_error(&call(&app, "GET", &format!("/scim/v2/Groups/{gid}"), &key, None, None).await, Status::NotFound, None);
}
on_both!(shr_7_scim_groups, groups_endpoint);

async fn processor_mode(app: TestApp) {
    // promise: SHR-7 — an organization sees its staff's course usage, on the recorded basis
    // "processor for the organization" (a disclosure row for each record), and staff see why.
    let (org_id, key) = organization(&app, "globex").await;
    crate::learning::seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let made = call(&app, "POST", "/scim/v2/Users", &key, Some(grace()), None).await;
    assert_eq!(made.status, Status::Created);
    let staff_id = made.body["id"].as_str().unwrap().to_string();

    // Grace sets a password by email (the account has none), signs in, accepts the policies, enrolls.
    let email = "grace.hopper@globex.example";
    app.post_form("/password/forgot", &[("email", email)]).await;
    let reset = app.mailed_link(email, "/password/reset/").await.expect("a reset link");
    let res = app.post_form(&reset, &[("password", crate::common::PASSWORD)]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let res = app.post_form("/signin", &[("login", email), ("password", crate::common::PASSWORD)]).await;
    if res.headers().get_one("Location") == Some("/policies/accept") {
        app.post_form("/policies/accept", &[("accept", "true")]).await;
    }
    assert!(app.signed_in_as().await.is_some(), "staff sign in once they set a password");
    let res = crate::learning::enroll(&app, "intro-python").await;
    assert_eq!(res.status(), Status::SeeOther);
    let (_, sharing) = app.get("/sharing").await;
    assert!(
        sharing.contains("Your employer") && sharing.contains("Globex") && sharing.contains("processor"),
        "{sharing}"
    );

    // Another learner in the same course is no business of the organization.
    let bob = crate::sharing::verified(&app, "bob").await;
    crate::sharing::as_user(&app, &bob).await;
    crate::learning::enroll(&app, "intro-python").await;
    let (_, sharing) = app.get("/sharing").await;
    assert!(!sharing.contains("Your employer"));

    let reader = run(&app, move |conn| {
        let org = partners::by_id(conn, org_id)?;
        Ok::<_, diesel::result::Error>(
            partners::create_key(conn, &org, "reports", &["enrollments", "progress"], None).unwrap(),
        )
    })
    .await;
    let (status, body) = crate::sharing::pull(&app, &reader, "/api/v1/exports/progress?format=jsonl").await;
    assert_eq!(status, Status::Ok, "{body}");
    let records = crate::sharing::lines(&body);
    assert_eq!(records.len(), 1, "only its own staff: {body}");
    assert!(body.contains(email) && !body.contains("bob@example.org"), "{body}");
    let (basis, purpose): (String, String) = run(&app, |conn| {
        let all = lyceum::consent::manifests::expand(conn, &Default::default())?;
        all.first().map(|d| (d.basis.clone(), d.purpose.clone())).ok_or(diesel::result::Error::NotFound)
    })
    .await;
    assert_eq!((basis.as_str(), purpose.as_str()), ("processor", "staff_training"));

    // Once the organization removes the person, nothing more reaches it.
    call(&app, "DELETE", &format!("/scim/v2/Users/{staff_id}"), &key, None, None).await;
    let (_, body) = crate::sharing::pull(&app, &reader, "/api/v1/exports/progress?format=jsonl").await;
    assert!(crate::sharing::lines(&body).is_empty(), "{body}");
}
on_both!(shr_7_organizations_see_their_staffs_training_as_processor, processor_mode);

/// Kim, with an account of her own, joins Globex's staff by invitation.
async fn kim_joins(app: &TestApp, org_id: i64) -> (crate::common::Learner, i64) {
    let kim = crate::sharing::verified(app, "kim").await;
    let invited = run(app, move |conn| {
        let org = partners::by_id(conn, org_id).map_err(|e| e.to_string())?;
        let email = lyceum::accounts::domain::Email::parse("kim@globex.example").map_err(|e| e.to_string())?;
        lyceum::orgs::invite(conn, &org, &email, org.id, lyceum::db::now()).map_err(|e| e.to_string())
    });
    invited.await;
    let link = app.mailed_link("kim@globex.example", "/orgs/join/").await.expect("an invitation");
    crate::sharing::as_user(app, &kim).await;
    let (_, page) = app.get(&link).await;
    assert!(page.contains("Your account stays yours"), "the join page says so");
    app.post_form(&link, &[]).await;
    let kim_id = crate::sharing::user_id(app, "kim").await;
    (kim, kim_id)
}

/// Kim's account as the site knows it: (email, status, erasures started).
async fn kims_account(app: &TestApp, kim_id: i64) -> (String, String, i64) {
    run(app, move |conn| {
        use lyceum::db::schema::erasures;
        let (email, status) = users::table.find(kim_id).select((users::email, users::status)).first(conn)?;
        let erasures = erasures::table.filter(erasures::user_id.eq(kim_id)).count().get_result(conn)?;
        Ok::<_, diesel::result::Error>((email, status, erasures))
    })
    .await
}

async fn personal_accounts(app: TestApp) {
    // An organization manages the membership of a person who joined with their own account, never the account.
    let (org_id, key) = organization(&app, "globex").await;
    let (kim, kim_id) = kim_joins(&app, org_id).await;
    let list = call(&app, "GET", "/scim/v2/Users", &key, None, None).await;
    let id = list.body["Resources"][0]["id"].as_str().unwrap().to_string();

    // The organization rewrites the email (PUT, then PATCH) and switches the person off.
    let mut takeover = grace();
    takeover["userName"] = json!("kim");
    takeover["emails"] = json!([{ "value": "mailbox@globex.example", "type": "work", "primary": true }]);
    takeover["active"] = json!(false);
    let put = call(&app, "PUT", &format!("/scim/v2/Users/{id}"), &key, Some(takeover), None).await;
    assert_eq!(put.status, Status::Ok, "{}", put.body);
    assert_eq!(put.body["emails"][0]["value"], "mailbox@globex.example", "the membership's work email");
    let patch = json!({ "schemas": [PATCH], "Operations": [
        { "op": "replace", "path": "emails[type eq \"work\"].value", "value": "other@globex.example" } ] });
    assert_eq!(call(&app, "PATCH", &format!("/scim/v2/Users/{id}"), &key, Some(patch), None).await.status, Status::Ok);
    assert_eq!(kims_account(&app, kim_id).await, (kim.email.clone(), "active".into(), 0), "the account is untouched");
    assert!(app.mailed_link("mailbox@globex.example", "/account/email/confirm/").await.is_none());
    assert!(app.mailed_link("other@globex.example", "/account/email/confirm/").await.is_none());
    assert_eq!(app.signed_in_as().await.as_deref(), Some("kim"), "still signed in");

    // A password reset asked for the organization's mailbox reaches nobody.
    app.sign_out().await;
    app.post_form("/password/forgot", &[("email", "mailbox@globex.example")]).await;
    assert!(app.mailed_link("mailbox@globex.example", "/password/reset/").await.is_none(), "no takeover by reset");

    // Deleting the member ends the membership only; Kim is told and keeps her account.
    let gone = call(&app, "DELETE", &format!("/scim/v2/Users/{id}"), &key, None, None).await;
    assert_eq!(gone.status, Status::NoContent);
    assert_eq!(kims_account(&app, kim_id).await, (kim.email.clone(), "active".into(), 0), "not erased");
    let told = app.mailed_subjects(&kim.email).await;
    assert!(told.iter().any(|s| s == "You are no longer on Globex's staff"), "Kim is told: {told:?}");
    crate::sharing::as_user(&app, &kim).await;
    assert_eq!(app.signed_in_as().await.as_deref(), Some("kim"), "she signs in as before");

    // Ending the contract does the same for a person who joined again.
    let n: i64 = run(&app, |conn| lyceum::db::schema::org_invitations::table.count().get_result(conn)).await;
    assert_eq!(n, 1);
    let (_, _) = kim_joins_again(&app, org_id, &kim).await;
    let ended =
        run(&app, move |conn| lyceum::orgs::end_contract(conn, org_id, lyceum::db::now()).map_err(|e| e.to_string()));
    assert_eq!(ended.await, 1);
    assert_eq!(
        kims_account(&app, kim_id).await,
        (kim.email.clone(), "active".into(), 0),
        "the contract's end erases no one's own account"
    );
}
on_both!(sec_an_organization_cannot_take_over_or_erase_a_personal_account, personal_accounts);

async fn kim_joins_again(app: &TestApp, org_id: i64, kim: &crate::common::Learner) -> (String, i64) {
    run(app, move |conn| {
        let org = partners::by_id(conn, org_id).map_err(|e| e.to_string())?;
        let email = lyceum::accounts::domain::Email::parse("kim2@globex.example").map_err(|e| e.to_string())?;
        lyceum::orgs::invite(conn, &org, &email, org.id, lyceum::db::now()).map_err(|e| e.to_string())
    })
    .await;
    let link = app.mailed_link("kim2@globex.example", "/orgs/join/").await.expect("an invitation");
    crate::sharing::as_user(app, kim).await;
    app.post_form(&link, &[]).await;
    let n: i64 = run(app, |conn| lyceum::db::schema::org_staff::table.count().get_result(conn)).await;
    (link, n)
}

const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

fn patch(ops: Value) -> Value {
    json!({ "schemas": [PATCH], "Operations": ops })
}

async fn conformance_defects(app: TestApp) {
    // promise: SHR-7 — the SCIM service passes an independent conformance checker (RFC 7643/7644).
    let (_, key) = organization(&app, "globex").await;

    // Discovery by id; an unknown one, or an unknown endpoint, is a SCIM 404.
    let schema = call(&app, "GET", &format!("/scim/v2/Schemas/{CORE_USER}"), &key, None, None).await;
    assert_eq!((schema.status, schema.body["id"].clone()), (Status::Ok, json!(CORE_USER)), "{}", schema.body);
    let group_schema =
        call(&app, "GET", "/scim/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:Group", &key, None, None).await;
    let members = &group_schema.body["attributes"].as_array().unwrap().iter().find(|a| a["name"] == "members").unwrap()
        ["subAttributes"];
    assert!(members.as_array().unwrap().iter().any(|a| a["name"] == "$ref" && a["referenceTypes"] == json!(["User"])));
    let user_type = call(&app, "GET", "/scim/v2/ResourceTypes/User", &key, None, None).await;
    assert_eq!((user_type.status, user_type.body["endpoint"].clone()), (Status::Ok, json!("/Users")));
    for unknown in ["/scim/v2/Schemas/urn:nope", "/scim/v2/ResourceTypes/Robot", "/scim/v2/Robots"] {
        let a = call(&app, "GET", unknown, &key, None, None).await;
        assert_error(&a, Status::NotFound, None);
        assert_eq!(a.content_type.as_deref(), Some("application/scim+json"), "{unknown}");
    }

    // 201 carries Location; members carry value, $ref and type.
    let created = call(&app, "POST", "/scim/v2/Users", &key, Some(grace()), None).await;
    assert_eq!(created.status, Status::Created, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(created.location.as_deref(), created.body["meta"]["location"].as_str());
    assert_eq!(created.location, Some(format!("http://lyceum.test/scim/v2/Users/{id}")));
    let mut second = grace();
    second["userName"] = json!("ada@globex.example");
    second["externalId"] = json!("00u2");
    second["emails"][0]["value"] = json!("ada@globex.example");
    let ada =
        call(&app, "POST", "/scim/v2/Users", &key, Some(second), None).await.body["id"].as_str().unwrap().to_string();
    let mut third = grace();
    third["userName"] = json!("kay@globex.example");
    third["externalId"] = json!("00u3");
    third["emails"][0]["value"] = json!("kay@globex.example");
    let kay =
        call(&app, "POST", "/scim/v2/Users", &key, Some(third), None).await.body["id"].as_str().unwrap().to_string();
    let group = call(
        &app,
        "POST",
        "/scim/v2/Groups",
        &key,
        Some(json!({ "displayName": "Engineering", "members": [{ "value": id }, { "value": ada }] })),
        None,
    )
    .await;
    assert_eq!(group.status, Status::Created, "{}", group.body);
    let gid = group.body["id"].as_str().unwrap().to_string();
    assert_eq!(group.location, Some(format!("http://lyceum.test/scim/v2/Groups/{gid}")));
    let member = group.body["members"].as_array().unwrap().iter().find(|m| m["value"] == id.as_str()).unwrap().clone();
    assert_eq!(member["$ref"], format!("http://lyceum.test/scim/v2/Users/{id}"));
    assert_eq!(member["type"], "User");

    // attributes and excludedAttributes, short or fully qualified, on reads, lists and searches.
    let only = call(&app, "GET", &format!("/scim/v2/Users/{id}?attributes=userName,name.familyName"), &key, None, None)
        .await
        .body;
    assert_eq!((only["id"].clone(), only["userName"].clone()), (json!(id), json!("Grace.Hopper@globex.example")));
    assert_eq!(only["name"], json!({ "familyName": "Hopper" }));
    assert!(only.get("title").is_none() && only.get("emails").is_none() && only.get(ENTERPRISE).is_none(), "{only}");
    let without = call(
        &app,
        "GET",
        &format!("/scim/v2/Users/{id}?excludedAttributes=name,{CORE_USER}:title,{ENTERPRISE}:department"),
        &key,
        None,
        None,
    )
    .await
    .body;
    assert!(without.get("name").is_none() && without.get("title").is_none(), "{without}");
    assert!(without[ENTERPRISE].get("department").is_none() && without["userName"].is_string(), "{without}");
    let qualified =
        call(&app, "GET", &format!("/scim/v2/Users?attributes={CORE_USER}:userName,{ENTERPRISE}"), &key, None, None)
            .await
            .body;
    assert_eq!(qualified["totalResults"], 3);
    assert_eq!(qualified["Resources"][0][ENTERPRISE]["department"], "Navy");
    assert!(qualified["Resources"][0].get("title").is_none(), "{qualified}");
    let found = call(
        &app,
        "POST",
        "/scim/v2/Users/.search",
        &key,
        Some(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "filter": format!("{CORE_USER}:userName eq \"ada@globex.example\""),
            "attributes": ["userName"], "startIndex": 1, "count": 10,
        })),
        None,
    )
    .await;
    assert_eq!(found.status, Status::Ok, "{}", found.body);
    assert_eq!(found.body["totalResults"], 1);
    assert_eq!(found.body["Resources"][0]["id"], ada.as_str());
    assert!(found.body["Resources"][0].get("emails").is_none());
    let groups = call(
        &app,
        "POST",
        "/scim/v2/Groups/.search",
        &key,
        Some(json!({ "excludedAttributes": ["members"], "filter": "displayName eq \"Engineering\"" })),
        None,
    )
    .await;
    assert_eq!(groups.body["totalResults"], 1, "{}", groups.body);
    assert!(groups.body["Resources"][0].get("members").is_none());
    let everything = call(&app, "POST", "/scim/v2/.search", &key, Some(json!({ "count": 3 })), None).await;
    assert_eq!(everything.body["totalResults"], 4, "three users and a group: {}", everything.body);
    let page2 = call(&app, "POST", "/scim/v2/.search", &key, Some(json!({ "startIndex": 4 })), None).await;
    assert_eq!(page2.body["Resources"][0]["id"], gid.as_str(), "{}", page2.body);
    assert_error(
        &call(&app, "POST", "/scim/v2/.search", &key, Some(json!({ "filter": "title eq \"x\"" })), None).await,
        Status::BadRequest,
        Some("invalidFilter"),
    );

    // Removing one member, the ways Okta and Entra ID send it, leaves the others.
    let gpath = format!("/scim/v2/Groups/{gid}");
    let add = patch(json!([{ "op": "Add", "path": "members", "value": [{ "value": kay }] }]));
    let a = call(&app, "PATCH", &gpath, &key, Some(add), None).await;
    assert_eq!(a.body["members"].as_array().map(Vec::len), Some(3), "{}", a.body);
    let okta = patch(json!([{ "op": "remove", "path": "members", "value": [{ "value": ada }] }]));
    let a = call(&app, "PATCH", &gpath, &key, Some(okta), None).await;
    assert_eq!(a.status, Status::Ok, "{}", a.body);
    let left: Vec<&str> = a.body["members"].as_array().unwrap().iter().map(|m| m["value"].as_str().unwrap()).collect();
    assert_eq!(left.len(), 2, "one member removed, not the group emptied: {}", a.body);
    assert!(left.contains(&id.as_str()) && left.contains(&kay.as_str()));
    let entra = patch(json!([{ "op": "Remove", "path": format!("members[value eq \"{kay}\"]") }]));
    let a = call(&app, "PATCH", &gpath, &key, Some(entra), None).await;
    assert_eq!(a.body["members"].as_array().map(Vec::len), Some(1), "{}", a.body);

    // Entra ID's user forms: capitalised ops, booleans as strings, a work email added by filter.
    let upath = format!("/scim/v2/Users/{id}");
    let off = patch(json!([{ "op": "Replace", "path": "active", "value": "False" }]));
    let a = call(&app, "PATCH", &upath, &key, Some(off), None).await;
    assert_eq!((a.status, a.body["active"].clone()), (Status::Ok, json!(false)), "{}", a.body);
    // Removing `active` is refused, and does not switch the account back on.
    let remove = patch(json!([{ "op": "remove", "path": "active" }]));
    assert_error(
        &call(&app, "PATCH", &upath, &key, Some(remove), None).await,
        Status::BadRequest,
        Some("invalidValue"),
    );
    assert_eq!(call(&app, "GET", &upath, &key, None, None).await.body["active"], false);
    let on = patch(json!([{ "op": "replace", "value": { "active": "True" } }]));
    assert_eq!(call(&app, "PATCH", &upath, &key, Some(on), None).await.body["active"], true);
    let kpath = format!("/scim/v2/Users/{kay}");
    let no_email = patch(json!([
        { "op": "Add", "path": "emails[type eq \"work\"].value", "value": "kay.k@globex.example" },
        { "op": "Add", "path": "emails[type eq \"home\"].value", "value": "kay@home.example" },
    ]));
    let a = call(&app, "PATCH", &kpath, &key, Some(no_email), None).await;
    assert_eq!(
        (a.status, a.body["emails"][0]["value"].clone()),
        (Status::Ok, json!("kay.k@globex.example")),
        "{}",
        a.body
    );

    // Fully qualified paths, the extension as a whole, and attributes Lyceum does not keep.
    let qualified = patch(json!([
        { "op": "replace", "path": format!("{CORE_USER}:title"), "value": "Commodore" },
        { "op": "replace", "path": ENTERPRISE, "value": { "department": "Computing" } },
        { "op": "add", "path": "nickName", "value": "Amazing" },
        { "op": "replace", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555 0100" },
        { "op": "add", "path": format!("{ENTERPRISE}:manager"), "value": { "value": ada } },
        { "op": "remove", "path": "addresses[type eq \"work\"]" },
    ]));
    let a = call(&app, "PATCH", &upath, &key, Some(qualified), None).await;
    assert_eq!(a.status, Status::Ok, "{}", a.body);
    assert_eq!(
        (a.body["title"].clone(), a.body[ENTERPRISE]["department"].clone()),
        (json!("Commodore"), json!("Computing"))
    );
    assert!(a.body.get("nickName").is_none() && a.body.get("phoneNumbers").is_none(), "kept only what Lyceum keeps");
    let gone = patch(json!([{ "op": "remove", "path": "name" }, { "op": "remove", "path": ENTERPRISE }]));
    let a = call(&app, "PATCH", &upath, &key, Some(gone), None).await;
    assert!(a.body.get("name").is_none() && a.body.get(ENTERPRISE).is_none(), "removed: {}", a.body);

    // A deleted user can be created again with the same userName, externalId and email.
    let mut ada_again = grace();
    ada_again["userName"] = json!("ada@globex.example");
    ada_again["externalId"] = json!("00u2");
    ada_again["emails"][0]["value"] = json!("ada@globex.example");
    assert_eq!(
        call(&app, "DELETE", &format!("/scim/v2/Users/{ada}"), &key, None, None).await.status,
        Status::NoContent
    );
    let again = call(&app, "POST", "/scim/v2/Users", &key, Some(ada_again), None).await;
    assert_eq!(again.status, Status::Created, "{}", again.body);
    assert_ne!(again.body["id"], ada.as_str());
    let holders: i64 =
        run(&app, |conn| users::table.filter(users::email.eq("ada@globex.example")).count().get_result(conn)).await;
    assert_eq!(holders, 1);

    // HTTP: a wrong method is 405 with Allow; every 401 carries a Bearer challenge.
    let wrong = call(&app, "PUT", "/scim/v2/Users", &key, Some(grace()), None).await;
    assert_error(&wrong, Status::MethodNotAllowed, None);
    assert_eq!(wrong.allow.as_deref(), Some("GET, POST"));
    let wrong = call(&app, "DELETE", "/scim/v2/ServiceProviderConfig", &key, None, None).await;
    assert_eq!((wrong.status, wrong.allow.as_deref()), (Status::MethodNotAllowed, Some("GET")));
    let anonymous = call(&app, "GET", "/scim/v2/Users", "", None, None).await;
    assert_error(&anonymous, Status::Unauthorized, None);
    assert_eq!(anonymous.challenge.as_deref(), Some(r#"Bearer realm="lyceum""#));
    let bad = call(&app, "GET", "/scim/v2/Users", "lyk_nope_nope", None, None).await;
    assert_error(&bad, Status::Unauthorized, None);
    assert!(
        bad.challenge.as_deref().is_some_and(|c| c.starts_with("Bearer ") && c.contains(r#"error="invalid_token""#))
    );
}
on_both!(shr_7_scim_conformance, conformance_defects);

/// Runs scim2-tester, an independent SCIM 2.0 conformance checker (PyPI,
/// pinned in tests/scim2-tester/requirements.txt), against the real site on a
/// port of its own and requires every one of its checks to pass.
/// `LYCEUM_TEST_SCIM_TESTER` names the Python that has it installed.
async fn conformance_checker_passes(database: Option<crate::common::postgres::TestDatabase>) {
    let Ok(python) = std::env::var("LYCEUM_TEST_SCIM_TESTER") else {
        crate::common::service_missing("The SCIM conformance checker (scim2-tester)", "LYCEUM_TEST_SCIM_TESTER");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = match &database {
        Some(db) => db.url.clone(),
        None => format!("sqlite://{}", dir.path().join("scim.db").display()),
    };
    let port = crate::browser::free_port();
    let mut config = crate::common::test_config(dir.path(), url);
    config.port = port;
    config.base_url = Some(format!("http://127.0.0.1:{port}"));
    let rocket = lyceum::build_rocket(config).unwrap();
    let db = rocket.state::<lyceum::db::Db>().unwrap().clone();
    let key = {
        let mut conn = db.get().unwrap();
        let org = partners::create(
            &mut conn,
            PartnerKind::Organization,
            "globex",
            "Globex",
            None,
            "it@globex.example",
            lyceum::db::now(),
        )
        .unwrap();
        partners::create_key(&mut conn, &org, "identity system", &["scim"], None).unwrap()
    };
    let server = tokio::spawn(rocket.launch());
    crate::browser::wait_for(&format!("127.0.0.1:{port}")).await;

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scim2-tester/check.py");
    let base = format!("http://127.0.0.1:{port}/scim/v2");
    let out = tokio::process::Command::new(&python)
        .arg(script)
        .arg(&base)
        .arg(&key)
        .output()
        .await
        .unwrap_or_else(|e| panic!("LYCEUM_TEST_SCIM_TESTER={python} could not be run: {e}"));
    server.abort();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the checker did not finish:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let results: Vec<Value> = stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let failed: Vec<&Value> = results.iter().filter(|r| r["passed"] != true).collect();
    let report: Vec<String> = failed
        .iter()
        .map(|r| format!("{} [{}] {}: {}\n    {}", r["status"], r["resource_type"], r["title"], r["reason"], r["data"]))
        .collect();
    eprintln!("scim2-tester: {} of {} checks passed", results.len() - failed.len(), results.len());
    assert!(results.len() > 50, "the checker ran too few checks:\n{stdout}");
    assert!(failed.is_empty(), "{} of {} checks failed:\n{}", failed.len(), results.len(), report.join("\n"));
}

mod shr_7_scim_passes_an_independent_conformance_checker {
    #[rocket::async_test]
    async fn sqlite() {
        super::conformance_checker_passes(None).await
    }
    #[rocket::async_test]
    async fn postgres() {
        if let Some(db) = crate::common::postgres::TestDatabase::create() {
            super::conformance_checker_passes(Some(db)).await
        }
    }
}
