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
