//! Hostile input thrown at every form: never a 500, never a panic, nothing lost.

use rocket::http::{ContentType, Status};

use crate::common::{TestApp, encode};
use crate::on_both;

const FIELDS: &[&str] = &[
    "first_name",
    "last_name",
    "username",
    "email",
    "password",
    "phone",
    "company",
    "date_of_birth",
    "parent_email",
    "accept_terms",
    "login",
    "remember",
    "next",
    "new_email",
    "current_password",
    "new_password",
    "parent_name",
    "confirm",
];

fn hostile_values() -> Vec<String> {
    vec![
        "x".repeat(20_000),
        "' OR 1=1; DROP TABLE users; --".into(),
        "<script>alert(1)</script>\"'><img src=x onerror=alert(1)>".into(),
        "\u{0000}\u{0007}\u{202e}nul and control".into(),
        "🦀🦀🦀 ünïcödé 漢字".into(),
        "".into(),
        "true".into(),
        "9999-99-99".into(),
        "-1".into(),
        "{{#each this}}{{/each}}".into(),
    ]
}

async fn every_form(app: TestApp) {
    let ada = app.sign_up("ada").await;
    app.sign_in(&ada, false).await;
    let token = app.csrf().await;
    let posts: Vec<String> = app
        .client
        .rocket()
        .routes()
        .filter(|r| r.method == rocket::http::Method::Post && !r.uri.path().contains("signout"))
        .map(|r| {
            regex::Regex::new("<[^>]+>").unwrap().replace_all(r.uri.path(), "x%27%20OR%20%271%27%3D%271").to_string()
        })
        .collect();
    for path in &posts {
        for value in hostile_values() {
            let mut fields: Vec<(&str, &str)> = vec![("csrf_token", &token)];
            fields.extend(FIELDS.iter().map(|f| (*f, value.as_str())));
            let res = app.post_raw(path, &encode(&fields)).await;
            assert!(res.status().code < 500, "POST {path} with {:.40}… gave {}", value, res.status());
        }
        // Invalid UTF-8 and broken encodings in the body.
        for raw in [
            format!("csrf_token={token}&first_name=%FF%FE&last_name=\u{fffd}"),
            format!("csrf_token={token}&first_name=%ZZ&&&==&last_name"),
        ] {
            let res = app.post_raw(path, &raw).await;
            assert!(res.status().code < 500, "POST {path} with broken encoding gave {}", res.status());
        }
        let bytes: Vec<u8> = [format!("csrf_token={token}&first_name=").into_bytes(), vec![0xff, 0xfe, 0xfd]].concat();
        let res = app.client.post(path.clone()).header(ContentType::Form).body(bytes).dispatch().await;
        assert!(res.status().code < 500, "POST {path} with invalid UTF-8 gave {}", res.status());
        let res = app.client.post(path.clone()).header(ContentType::JSON).body("{}").dispatch().await;
        assert!(res.status().code < 500, "POST {path} as JSON gave {}", res.status());
        let res = app
            .client
            .post(path.clone())
            .header(ContentType::Form)
            .body("a=".to_string() + &"b".repeat(200_000))
            .dispatch()
            .await;
        assert!(res.status().code < 500, "POST {path} oversized gave {}", res.status());
    }
    // Hostile GET paths and tokens.
    for path in [
        "/verify-email/%00",
        "/password/reset/..%2F..%2Fetc",
        "/parent-consent/'%20OR%201=1",
        "/outbox/../../etc/passwd",
        "/static/../Cargo.toml",
        "/staff/jobs?status=<script>",
    ] {
        let (status, _) = app.get(path).await;
        assert!(status.code < 500, "GET {path} gave {status}");
    }
    // The account survived all of it.
    assert_eq!(app.signed_in_as().await.as_deref(), Some("ada"));
    let res = app.sign_up_with("grace", &[("first_name", "<b>Grace</b>")]).await;
    assert_eq!(res.status(), Status::SeeOther);
}
on_both!(hostile_input_at_every_form_never_breaks_anything, every_form);

/// Every field name of the site's forms, separated by spaces.
const EVERY_FIELD: &str = "accept accept_terms access_days access_key_id action actor adjustments analytics anonymous audience \
    audit back bio block body bucket capacity changes circumstances code comment company confirm consent \
    contact_email count course course_id csv current_password date_of_birth deadline decision \
    description details difficulty due_on effort email email_tracking emails enabled endpoint ends_at \
    enrollment_closes_at enrollment_opens_at every_minutes expires fields filter first_name follow \
    format from goals id key kind language last_name legal_reference link list location locked login \
    markdown marketing marketing_email marketing_text_id material member message mode name needs \
    new_email new_password next note object_profiling outcome pacing page parent_email parent_id \
    parent_name pass_threshold password path phone pinned prefix published purpose quiz_toml rating \
    reason recipient recommend records reference region remember restrict result_text role run run_id \
    scopes seats secret session_id share share_result share_support since slug source staff_id \
    startIndex starts starts_at status subject subjects summary support_text_id target text_id time_zone \
    title to track transcript url username verified_price visibility";

/// Every page, asked for with made-up ids, slugs and query values by each
/// kind of account, and every form sent with a NUL character in each field
/// (PostgreSQL refuses to store one): a clear 4xx or a page, never a 500.
async fn every_page(app: TestApp) {
    let values =
        ["1", "0", "-1", "99999999999999999999", "intro-python", "%FF%FE", "x%27%20OR%20%271%27%3D%271", "%00"];
    let routes: Vec<(String, Vec<String>)> = app
        .client
        .rocket()
        .routes()
        .filter(|r| r.method == rocket::http::Method::Get && !r.uri.path().contains("signout"))
        .map(|r| {
            let query = r
                .uri
                .query()
                .map(|q| {
                    q.split('&')
                        .filter_map(|s| s.strip_prefix('<').and_then(|s| s.strip_suffix('>')))
                        .map(|s| s.trim_end_matches("..").to_string())
                        .collect()
                })
                .unwrap_or_default();
            (r.uri.path().to_string(), query)
        })
        .collect();
    let forms: Vec<String> = app
        .client
        .rocket()
        .routes()
        .filter(|r| r.method == rocket::http::Method::Post && !r.uri.path().contains("signout"))
        .map(|r| r.uri.path().to_string())
        .collect();
    let param = regex::Regex::new("<[^>]+>").unwrap();
    let accounts = lyceum::demo::accounts();
    let mut seen = std::collections::BTreeMap::new();
    let mut failed = Vec::new();
    for who in [None, Some(0), Some(1), Some(2)] {
        if let Some(i) = who {
            let a = &accounts[i];
            let l = crate::common::Learner {
                username: a.role.clone(),
                email: a.email.clone(),
                password: a.password.clone(),
            };
            app.sign_in(&l, false).await;
            assert!(app.signed_in_as().await.is_some(), "the demo account {} signs in", a.email);
        }
        for (path, query) in &routes {
            for value in values {
                let p = param.replace_all(path, value).to_string();
                let q: Vec<String> = query.iter().map(|k| format!("{k}={value}")).collect();
                let url = if q.is_empty() { p } else { format!("{p}?{}", q.join("&")) };
                let res = app.client.get(url.clone()).dispatch().await;
                if res.status().code >= 500 {
                    failed.push(format!("GET {url} as {who:?} gave {}", res.status()));
                }
                *seen.entry(res.status().code).or_insert(0) += 1;
            }
        }
        let token = app.csrf().await;
        for path in &forms {
            for (segment, value) in
                [("1", "1"), ("intro-python", "1"), ("1", "nul\u{0}here"), ("intro-python", "nul\u{0}here")]
            {
                let p = param.replace_all(path, segment).to_string();
                let mut fields: Vec<(&str, &str)> = vec![("csrf_token", &token)];
                fields.extend(EVERY_FIELD.split_whitespace().map(|f| (f, value)));
                let res = app.post_raw(&p, &encode(&fields)).await;
                if res.status().code >= 500 {
                    failed.push(format!("POST {p} with {value:?} in every field as {who:?} gave {}", res.status()));
                }
                *seen.entry(res.status().code).or_insert(0) += 1;
            }
        }
        app.sign_out().await;
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    assert!(seen.get(&200).copied().unwrap_or(0) > 500, "the walk reached the pages themselves: {seen:?}");
    if app.pg.is_some() {
        // PostgreSQL cannot store a NUL: the client hears why.
        let (status, page) = app.get("/courses?member=%00").await;
        assert_eq!(status, Status::BadRequest);
        assert!(page.contains("NUL character"), "{page}");
    }
}

on_both!(hostile_ids_and_query_values_on_every_page_never_break_anything, every_page, |c| c.demo = true);
