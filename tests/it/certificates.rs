//! Verified certificates: payment through a Stripe double (CRT-1), identity
//! checks (CRT-2), issuance as PNG and PDF (CRT-3), public verification and
//! the signed Open Badges credential (CRT-4), financial assistance (CRT-5),
//! and keeping certificates through erasure for their retention period (CRT-6).

use std::io::Read;

use diesel::prelude::*;
use lyceum::db::schema::{blob_files, certificates, enrollments, identity_checks, payment_events, payments};
use rocket::http::{ContentType, Header, Status};
use serde_json::Value;

use crate::common::{Learner, TestApp};
use crate::learning::{Seeded, multipart_files, seed_course};
use crate::privacy::{newest_mail, run_scheduled, staff};
use crate::sharing::{as_user, run, user_id, verified};
use crate::stripe;

/// Runs a body on both backends with the app pointed at a fresh Stripe double.
macro_rules! on_both_with_stripe {
    ($name:ident, $body:ident) => {
        mod $name {
            #[rocket::async_test]
            async fn sqlite() {
                let double = $crate::stripe::start(None).await;
                let app = $crate::common::TestApp::sqlite_with(|c| $crate::stripe::configure(c, &double.base)).await;
                super::$body(app, double).await
            }
            #[rocket::async_test]
            async fn postgres() {
                let double = $crate::stripe::start(None).await;
                if let Some(app) =
                    $crate::common::TestApp::postgres_with(|c| $crate::stripe::configure(c, &double.base)).await
                {
                    super::$body(app, double).await
                }
            }
        }
    };
}

/// The seeded course and a verified learner enrolled on its audit track.
async fn enrolled(app: &TestApp, name: &str) -> Learner {
    let l = verified(app, name).await;
    as_user(app, &l).await;
    let res = app.post_form("/courses/intro-python/enroll", &[("run", "2026"), ("track", "audit")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    l
}

async fn track(app: &TestApp, username: &str) -> String {
    let id = user_id(app, username).await;
    run(app, move |conn| enrollments::table.filter(enrollments::user_id.eq(id)).select(enrollments::track).first(conn))
        .await
}

async fn webhook(app: &TestApp, body: &str, signature: Option<&str>) -> (Status, String) {
    let mut req = app.client.post("/payments/stripe/webhook").header(ContentType::JSON).body(body);
    if let Some(s) = signature {
        req = req.header(Header::new("Stripe-Signature", s.to_string()));
    }
    let res = req.dispatch().await;
    (res.status(), res.into_string().await.unwrap_or_default())
}

fn outbox_to(app: &TestApp, to: &str) -> Vec<String> {
    lyceum::notify::read_outbox(&app.config.outbox_dir(), 1000)
        .into_iter()
        .filter(|m| m.to == to)
        .map(|m| m.subject)
        .collect()
}

async fn payment_checkout(app: TestApp, double: stripe::StripeDouble) {
    // promise: CRT-1 — bought through the processor, never a card number here; receipt emailed; webhooks signed and applied once.
    seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let ada = enrolled(&app, "ada").await;
    let (_, page) = app.get("/learn/intro-python").await;
    assert!(page.contains("action=\"/courses/intro-python/runs/2026/buy\""), "a buy button: {page}");

    // Browsers apply form-action to the redirect after the POST: the checkout's origin is allowed.
    let res = app.client.get("/learn/intro-python").dispatch().await;
    let csp = res.headers().get_one("Content-Security-Policy").unwrap().to_string();
    assert!(csp.contains(&format!("form-action 'self' {};", double.base)), "{csp}");
    let res = app.post_form("/courses/intro-python/runs/2026/buy", &[]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let location = res.headers().get_one("Location").unwrap().to_string();
    assert_eq!(location, format!("{}/pay/cs_test_1", double.base), "sent to the provider's page");
    // What Lyceum asked of Stripe: the run's price, the learner's email, our return addresses.
    let asked = double.log.lock().unwrap()[0].clone();
    assert_eq!(asked.header("Authorization"), Some(format!("Bearer {}", stripe::SECRET_KEY).as_str()));
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(&asked.body).into_owned().collect();
    assert_eq!(form["line_items[0][price_data][unit_amount]"], "4900");
    assert_eq!(form["line_items[0][price_data][currency]"], "usd");
    assert_eq!(form["customer_email"], ada.email);
    assert_eq!(form["success_url"], "http://lyceum.test/payments/return?checkout={CHECKOUT_SESSION_ID}");
    assert!(form.keys().all(|k| !k.contains("card")), "no card field is ever sent: {form:?}");
    let status: String = run(&app, |conn| payments::table.select(payments::status).first(conn)).await;
    assert_eq!(status, "pending");

    // The learner pays on Stripe's page; Stripe signs the event.
    let session = {
        let mut st = double.state.lock().unwrap();
        let s = st.sessions.get_mut("cs_test_1").unwrap();
        s.paid = true;
        s.clone()
    };
    let (body, signature) = stripe::event("evt_paid_1", "checkout.session.completed", stripe::session_object(&session));

    // Bad input: forged, unsigned, stale or malformed deliveries are refused and change nothing.
    let forged = signature.replace("v1=", "v1=00");
    assert_eq!(webhook(&app, &body, Some(&forged)).await.0, Status::BadRequest);
    assert_eq!(webhook(&app, &body, None).await.0, Status::BadRequest);
    let old = chrono::Utc::now().timestamp() - 3600;
    assert_eq!(webhook(&app, &body, Some(&stripe::sign(&body, old))).await.0, Status::BadRequest);
    let tampered = body.replace("4900", "100");
    assert_eq!(webhook(&app, &tampered, Some(&signature)).await.0, Status::BadRequest);
    let garbage = "{not json";
    assert_eq!(
        webhook(&app, garbage, Some(&stripe::sign(garbage, chrono::Utc::now().timestamp()))).await.0,
        Status::BadRequest
    );
    assert_eq!(track(&app, "ada").await, "audit");
    assert_eq!(run(&app, |conn| payment_events::table.count().get_result::<i64>(conn)).await, 0);

    let (status, answer) = webhook(&app, &body, Some(&signature)).await;
    assert_eq!(status, Status::Ok, "{answer}");
    assert!(answer.contains("\"applied\""), "{answer}");
    assert_eq!(track(&app, "ada").await, "verified");
    let (status, reference): (String, Option<String>) =
        run(&app, |conn| payments::table.select((payments::status, payments::payment_ref)).first(conn)).await;
    assert_eq!((status.as_str(), reference.as_deref()), ("paid", Some(session.payment_intent.as_str())));

    // The same event again (Stripe retries) changes nothing.
    let (status, answer) = webhook(&app, &body, Some(&signature)).await;
    assert_eq!(status, Status::Ok);
    assert!(answer.contains("\"duplicate\""), "{answer}");
    app.run_jobs().await;
    let receipts: Vec<String> =
        outbox_to(&app, &ada.email).into_iter().filter(|s| s == "Your receipt from Lyceum").collect();
    assert_eq!(receipts.len(), 1, "one receipt");
    let (_, text, _) = newest_mail(&app, &ada.email, "Your receipt from Lyceum").unwrap();
    assert!(text.contains("49.00 USD") && text.contains(&session.payment_intent), "{text}");
    assert!(text.contains("card details never reached us"));

    // A second learner returns from Stripe before the webhook: the return asks Stripe and fulfils once.
    let bob = enrolled(&app, "bob").await;
    let res = app.post_form("/courses/intro-python/runs/2026/buy", &[]).await;
    assert_eq!(res.headers().get_one("Location"), Some(format!("{}/pay/cs_test_2", double.base).as_str()));
    // Not paid yet: nothing happens.
    let res = app.client.get("/payments/return?checkout=cs_test_2").dispatch().await;
    assert_eq!(res.status(), Status::SeeOther);
    assert_eq!(track(&app, "bob").await, "audit");
    double.state.lock().unwrap().sessions.get_mut("cs_test_2").unwrap().paid = true;
    // Someone else cannot claim Bob's checkout.
    as_user(&app, &ada).await;
    assert_eq!(app.client.get("/payments/return?checkout=cs_test_2").dispatch().await.status(), Status::NotFound);
    as_user(&app, &bob).await;
    let res = app.client.get("/payments/return?checkout=cs_test_2").dispatch().await;
    assert_eq!(res.headers().get_one("Location"), Some("/learn/intro-python"));
    assert_eq!(track(&app, "bob").await, "verified");
    let (_, page) = app.get("/learn/intro-python").await;
    assert!(page.contains("Payment received") && page.contains("You are on the verified track"), "{page}");
    // Stripe's later webhook for the same checkout is harmless.
    let paid = double.session("cs_test_2");
    let (body, signature) = stripe::event("evt_paid_2", "checkout.session.completed", stripe::session_object(&paid));
    assert_eq!(webhook(&app, &body, Some(&signature)).await.0, Status::Ok);
    app.run_jobs().await;
    assert_eq!(outbox_to(&app, &bob.email).iter().filter(|s| *s == "Your receipt from Lyceum").count(), 1);
    // Already verified: buying again is refused before reaching Stripe.
    let res = app.post_form("/courses/intro-python/runs/2026/buy", &[]).await;
    assert_eq!(res.headers().get_one("Location"), Some("/courses/intro-python"));
    assert_eq!(double.state.lock().unwrap().sessions.len(), 2);

    // Staff refund Ada: through Stripe, and the track goes back to audit.
    let grace = staff(&app).await;
    as_user(&app, &grace).await;
    let ada_payment: i64 =
        run(&app, |conn| payments::table.order(payments::id.asc()).select(payments::id).first(conn)).await;
    let res = app.post_form(&format!("/staff/payments/{ada_payment}/refund"), &[]).await;
    assert_eq!(res.status(), Status::SeeOther);
    assert!(double.log.lock().unwrap().iter().any(|r| r.path == "/v1/refunds"));
    assert_eq!(track(&app, "ada").await, "audit");
    // Stripe's refund event afterwards changes nothing more.
    let refunded = double.session("cs_test_1");
    let (body, signature) = stripe::event("evt_refund_1", "charge.refunded", stripe::charge_refunded(&refunded));
    let (status, answer) = webhook(&app, &body, Some(&signature)).await;
    assert_eq!(status, Status::Ok);
    assert!(answer.contains("ignored"), "{answer}");
    // A refund event Lyceum hears about first downgrades Bob.
    let (body, signature) = stripe::event("evt_refund_2", "charge.refunded", stripe::charge_refunded(&paid));
    assert!(webhook(&app, &body, Some(&signature)).await.1.contains("applied"));
    assert_eq!(track(&app, "bob").await, "audit");
    let (_, page) = app.get("/staff/payments").await;
    assert!(page.contains("refunded") && page.contains("49.00 USD"), "{page}");
}
on_both_with_stripe!(crt_1_verified_track_is_bought_through_stripe_and_refunded, payment_checkout);

#[rocket::async_test]
async fn crt_1_without_stripe_keys_buying_is_hidden() {
    // promise: CRT-1 — without a processor nothing can be bought; the verified track comes through assistance.
    let app = TestApp::sqlite().await;
    seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    enrolled(&app, "ada").await;
    let (_, page) = app.get("/learn/intro-python").await;
    assert!(!page.contains("/runs/2026/buy"), "no buy button");
    assert!(page.contains("/courses/intro-python/assistance?run=2026"), "assistance is offered");
    let res = app.post_form("/courses/intro-python/runs/2026/buy", &[]).await;
    assert_eq!(res.headers().get_one("Location"), Some("/courses/intro-python"));
    assert_eq!(webhook(&app, "{}", Some("t=1,v1=00")).await.0, Status::NotFound);
    assert_eq!(run(&app, |conn| payments::table.count().get_result::<i64>(conn)).await, 0);
}

/// A JPEG carrying GPS coordinates and a camera name, as phones write them.
fn photo_with_gps() -> Vec<u8> {
    crate::media::with_exif_segment(&crate::media::jpeg(640, 400), &crate::media::exif_tiff(1))
}

async fn send_photos<'a>(
    app: &'a TestApp,
    id_photo: &[u8],
    face: &[u8],
) -> rocket::local::asynchronous::LocalResponse<'a> {
    let token = app.csrf().await;
    let (ct, body) = multipart_files(
        &[("csrf_token", &token)],
        &[("id_photo", "passport.jpg", id_photo), ("face_photo", "me.jpg", face)],
    );
    app.client.post("/account/verification").header(ct).body(body).dispatch().await
}

async fn check_of(app: &TestApp, username: &str) -> (i64, String, Option<String>, Option<String>) {
    let id = user_id(app, username).await;
    run(app, move |conn| {
        identity_checks::table
            .filter(identity_checks::user_id.eq(id))
            .order(identity_checks::id.desc())
            .select((
                identity_checks::id,
                identity_checks::status,
                identity_checks::id_photo_blob,
                identity_checks::face_photo_blob,
            ))
            .first(conn)
    })
    .await
}

/// The learner sends photos and a staff member approves them.
async fn verify_identity(app: &TestApp, learner: &Learner, reviewer: &Learner) {
    as_user(app, learner).await;
    assert_eq!(send_photos(app, &photo_with_gps(), &crate::media::jpeg(300, 300)).await.status(), Status::SeeOther);
    let (check, status, _, _) = check_of(app, &learner.username).await;
    assert_eq!(status, "pending");
    as_user(app, reviewer).await;
    let res = app.post_form(&format!("/staff/identity/{check}"), &[("decision", "approve")]).await;
    assert_eq!(res.headers().get_one("Location"), Some("/staff/identity"));
    as_user(app, learner).await;
}

async fn identity(app: TestApp) {
    // promise: CRT-2 — photo ID and face reviewed by staff; sealed at rest; deleted once decided.
    let ada = verified(&app, "ada").await;
    let grace = staff(&app).await;
    as_user(&app, &ada).await;
    // Bad input: a text file is not a photo; nothing is stored.
    let res = send_photos(&app, b"just some text", &crate::media::jpeg(50, 50)).await;
    assert_eq!(res.status(), Status::SeeOther);
    let (_, page) = app.get("/account/verification").await;
    assert!(page.contains("Photo of your ID: That file is not a PNG, JPEG"), "{page}");
    assert_eq!(run(&app, |conn| identity_checks::table.count().get_result::<i64>(conn)).await, 0);
    // The camera may be used on this page only.
    let res = app.client.get("/account/verification").dispatch().await;
    assert!(res.headers().get_one("Permissions-Policy").unwrap().contains("camera=(self)"));
    let res = app.client.get("/account/certificates").dispatch().await;
    assert!(res.headers().get_one("Permissions-Policy").unwrap().contains("camera=()"));

    let blobs_before = run(&app, |conn| blob_files::table.count().get_result::<i64>(conn)).await;
    let res = send_photos(&app, &photo_with_gps(), &crate::media::jpeg(300, 300)).await;
    assert_eq!(res.status(), Status::SeeOther);
    let (check, status, id_key, face_key) = check_of(&app, "ada").await;
    assert_eq!(status, "pending");
    let (id_key, face_key) = (id_key.unwrap(), face_key.unwrap());
    assert_eq!(run(&app, |conn| blob_files::table.count().get_result::<i64>(conn)).await, blobs_before + 2);
    // At rest: sealed, no image and no location in the stored bytes.
    let store = lyceum::blob_store(&app.config);
    let sealed = store.get(&id_key).unwrap().expect("stored");
    assert!(sealed.starts_with(b"env1:"), "sealed with a key id");
    assert!(!crate::media::contains(&sealed, b"\xFF\xD8\xFF") && !crate::media::contains(&sealed, b"JFIF"));
    assert!(!crate::media::contains(&sealed, crate::media::GPS_MARKER));
    // A second submission while one waits is refused.
    send_photos(&app, &photo_with_gps(), &crate::media::jpeg(300, 300)).await;
    let (_, page) = app.get("/account/verification").await;
    assert!(page.contains("already with our reviewers"), "{page}");
    // Learners cannot see the queue or the photos.
    assert_eq!(app.get(&format!("/staff/identity/{check}/id.img")).await.0, Status::Forbidden);

    as_user(&app, &grace).await;
    let (_, queue) = app.get("/staff/identity").await;
    assert!(queue.contains(&format!("/staff/identity/{check}")));
    let res = app.client.get(format!("/staff/identity/{check}/id.img")).dispatch().await;
    assert_eq!(res.status(), Status::Ok);
    assert_eq!(res.headers().get_one("Cache-Control"), Some("no-store"));
    let shown = res.into_bytes().await.unwrap();
    let img = image::load_from_memory(&shown).expect("the reviewer sees an image");
    assert_eq!((img.width(), img.height()), (640, 400));
    assert!(!crate::media::contains(&shown, crate::media::GPS_MARKER), "no location even for staff");
    assert!(!crate::media::contains(&shown, crate::media::CAMERA_MARKER));
    // Bad input: denying needs a reason; the photos stay until a decision is made.
    app.post_form(&format!("/staff/identity/{check}"), &[("decision", "deny")]).await;
    let (_, page) = app.get(&format!("/staff/identity/{check}")).await;
    assert!(page.contains("a reason is required"), "{page}");
    assert!(store.get(&id_key).unwrap().is_some());
    let res = app.post_form(&format!("/staff/identity/{check}"), &[("decision", "maybe")]).await;
    assert_eq!(res.status(), Status::SeeOther);

    app.post_form(
        &format!("/staff/identity/{check}"),
        &[("decision", "retry"), ("reason", "The ID photo is blurred.")],
    )
    .await;
    // Decided: both images are gone from the store and from the records.
    assert!(store.get(&id_key).unwrap().is_none() && store.get(&face_key).unwrap().is_none());
    assert_eq!(run(&app, |conn| blob_files::table.count().get_result::<i64>(conn)).await, blobs_before);
    let (_, status, a, b) = check_of(&app, "ada").await;
    assert_eq!((status.as_str(), a, b), ("retry", None, None));
    assert_eq!(app.get(&format!("/staff/identity/{check}/id.img")).await.0, Status::NotFound);
    app.run_jobs().await;
    let (_, text, _) = newest_mail(&app, &ada.email, "Please send new photos to verify your identity").unwrap();
    assert!(text.contains("The ID photo is blurred.") && text.contains("have been deleted"), "{text}");

    // Asked again, the learner sends new photos, which are approved for the configured time.
    verify_identity(&app, &ada, &grace).await;
    let (_, status, a, b) = check_of(&app, "ada").await;
    assert_eq!((status.as_str(), a, b), ("approved", None, None));
    let until: Option<chrono::NaiveDateTime> = run(&app, |conn| {
        identity_checks::table.order(identity_checks::id.desc()).select(identity_checks::valid_until).first(conn)
    })
    .await;
    let days = (until.unwrap() - lyceum::db::now()).num_days();
    assert!((364..=365).contains(&days), "valid for identity_valid_days: {days}");
    let (_, page) = app.get("/account/verification").await;
    assert!(page.contains("Your identity is verified until"), "{page}");
    let remaining = run(&app, |conn| {
        identity_checks::table
            .filter(identity_checks::id_photo_blob.is_not_null().or(identity_checks::face_photo_blob.is_not_null()))
            .count()
            .get_result::<i64>(conn)
    })
    .await;
    assert_eq!(remaining, 0, "no identity image outlives its decision");
}
crate::on_both!(crt_2_identity_photos_are_sealed_reviewed_and_deleted_once_decided, identity);

/// Ada on the verified track (granted by staff) with her identity verified.
pub(crate) async fn verified_learner(app: &TestApp) -> (Learner, Learner, Seeded) {
    let c = seed_course(app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let ada = enrolled(app, "ada").await;
    let grace = staff(app).await;
    as_user(app, &grace).await;
    let res = app
        .post_form("/staff/certificates/grant", &[("username", "ada"), ("course", "intro-python"), ("run", "2026")])
        .await;
    assert_eq!(res.status(), Status::SeeOther);
    assert_eq!(track(app, "ada").await, "verified");
    verify_identity(app, &ada, &grace).await;
    (ada, grace, c)
}

pub(crate) async fn code_of(app: &TestApp) -> String {
    run(app, |conn| certificates::table.select(certificates::code).first::<String>(conn)).await
}

fn jwt_part(token: &str, n: usize) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(n).expect("three parts");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn jwt_payload(token: &str) -> Value {
    jwt_part(token, 1)
}

fn jwt_header(token: &str) -> Value {
    jwt_part(token, 0)
}

/// Verifies a JWT with `jsonwebtoken` (aws-lc-rs underneath), a different
/// implementation than the signer's, against the published key set, as
/// strictly as Open Badges 3.0 asks: ES256, `sub`, `iss` and `nbf` required.
fn verify_with_jwks(token: &str, jwks: &Value, issuer: &str) -> Result<Value, jsonwebtoken::errors::Error> {
    verify_as(token, jwks, issuer, jsonwebtoken::Algorithm::ES256, &["iss", "nbf", "sub"])
}

fn verify_as(
    token: &str,
    jwks: &Value,
    issuer: &str,
    alg: jsonwebtoken::Algorithm,
    required: &[&str],
) -> Result<Value, jsonwebtoken::errors::Error> {
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks.clone()).expect("a JWKS");
    let header = jsonwebtoken::decode_header(token)?;
    let jwk = set.find(header.kid.as_deref().expect("kid")).expect("the key is published");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk)?;
    let mut validation = jsonwebtoken::Validation::new(alg);
    validation.required_spec_claims = required.iter().map(|c| c.to_string()).collect();
    validation.validate_exp = false;
    validation.validate_nbf = true;
    validation.set_issuer(&[issuer]);
    jsonwebtoken::decode::<Value>(token, &key, &validation).map(|d| d.claims)
}

fn status_bit(list_jwt: &str, index: usize) -> bool {
    use base64::Engine;
    let payload = jwt_payload(list_jwt);
    assert_eq!(payload["type"][1], "BitstringStatusListCredential");
    let encoded = payload["credentialSubject"]["encodedList"].as_str().unwrap();
    let gz = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded.strip_prefix('u').unwrap()).unwrap();
    let mut bits = Vec::new();
    flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut bits).unwrap();
    assert!(bits.len() >= 16 * 1024, "at least 131,072 entries");
    bits[index / 8] & (0x80 >> (index % 8)) != 0
}

async fn issue_and_verify(app: TestApp) {
    // promise: CRT-3 — certificate with name, course, member and date, as PNG and PDF.
    // promise: CRT-4 — public page, signed Open Badges 3.0 credential, revocation shown.
    let (ada, grace, c) = verified_learner(&app).await;
    assert_eq!(run(&app, |conn| certificates::table.count().get_result::<i64>(conn)).await, 0, "not passed yet");
    // Passing issues the certificate.
    app.post_form(&format!("/learn/intro-python/quiz/{}", c.quiz), &[("q0", "1"), ("q1", "3.5")]).await;
    let code = code_of(&app).await;
    app.run_jobs().await;
    let (_, text, _) = newest_mail(&app, &ada.email, "Your certificate for Introduction to Python").expect("emailed");
    assert!(text.contains(&format!("/certificates/{code}")));
    let (_, page) = app.get("/learn/intro-python").await;
    assert!(page.contains(&format!("/certificates/{code}")), "the course page links it");
    let (_, mine) = app.get("/account/certificates").await;
    assert!(mine.contains(&format!("/certificates/{code}/certificate.pdf")));
    let (_, dashboard) = app.get("/dashboard").await;
    assert!(dashboard.contains(&format!("/certificates/{code}/certificate.png")), "downloadable from the dashboard");

    // Anyone, signed out, can check it.
    app.sign_out().await;
    let (status, page) = app.get(&format!("/certificates/{code}")).await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("id=\"certificate-status\"") && page.contains("<strong>Valid.</strong>"), "{page}");
    for fact in ["Ada Lovelace", "Introduction to Python", "northbridge University", "2026"] {
        assert!(page.contains(fact), "{fact} on the page");
    }
    // Typed in lower case without dashes, it is found too.
    let typed = code.to_lowercase().replace('-', "");
    assert_eq!(app.get(&format!("/certificates/{typed}")).await.0, Status::Ok);
    // Bad input: an unknown or malformed code is a 404 page, not an error.
    let (status, page) = app.get("/certificates/AAAA-BBBB-CCCC-DDDD").await;
    assert_eq!(status, Status::NotFound);
    assert!(page.contains("<html") || page.contains("<!doctype"), "an HTML page");
    assert!(
        page.contains("No certificate on this site has the verification code <strong>AAAA-BBBB-CCCC-DDDD</strong>"),
        "the page names the code it looked up: {page}"
    );
    assert!(page.contains(r#"action="/certificates/find""#), "and offers to look up another");
    let (status, page) = app.get("/certificates/%3Cscript%3E").await;
    assert_eq!(status, Status::NotFound);
    assert!(page.contains("<strong>&lt;script&gt;</strong> is not a verification code"), "{page}");
    // The look-up form takes a code as people type it.
    let loose = code.to_lowercase().replace('-', " ");
    let res = app.client.get(format!("/certificates/find?code={}", loose.replace(' ', "+"))).dispatch().await;
    assert_eq!(res.headers().get_one("Location"), Some(format!("/certificates/{code}").as_str()));
    let (status, page) = app.get("/certificates/find?code=").await;
    assert_eq!(status, Status::NotFound);
    assert!(page.contains("Type the verification code printed on the certificate."));
    assert_eq!(app.get("/certificates/AAAA-BBBB-CCCC-DDDD/credential.jwt").await.0, Status::NotFound);

    // The picture and the PDF.
    let res = app.client.get(format!("/certificates/{code}/certificate.png")).dispatch().await;
    assert_eq!(res.content_type(), Some(ContentType::PNG));
    let png = res.into_bytes().await.unwrap();
    let img = image::load_from_memory(&png).unwrap();
    assert_eq!((img.width(), img.height()), (1754, 1240));
    let res = app.client.get(format!("/certificates/{code}/certificate.pdf")).dispatch().await;
    assert_eq!(res.content_type(), Some(ContentType::PDF));
    let pdf = res.into_bytes().await.unwrap();
    assert!(pdf.starts_with(b"%PDF-") && pdf.ends_with(b"%%EOF\n") || pdf.ends_with(b"%%EOF"));
    let text = String::from_utf8_lossy(&pdf);
    assert!(text.contains("Ada Lovelace") && text.contains(&code), "the facts in the document information");
    assert!(!text.contains("/DCTDecode"), "text, not a picture of text");
    pdf_is_a_real_document(&pdf, &["Verified Certificate", "Ada Lovelace", "Introduction to Python", &code]);

    // The signed credential verifies against the published keys, with another implementation.
    let (_, jwks) = app.get("/.well-known/jwks.json").await;
    let jwks: Value = serde_json::from_str(&jwks).unwrap();
    let res = app.client.get(format!("/certificates/{code}/credential.jwt")).dispatch().await;
    assert_eq!(res.content_type().map(|c| c.to_string()).as_deref(), Some("application/vc+jwt"));
    let token = res.into_string().await.unwrap();
    // The JOSE header: ES256 (an algorithm 1EdTech's validator accepts), a `kid`
    // that is an absolute URL of the key in the published set, nothing else.
    let header = jwt_header(&token);
    assert_eq!(header["alg"], "ES256", "{header}");
    let kid = header["kid"].as_str().expect("a kid");
    assert!(kid.starts_with("http://lyceum.test/.well-known/jwks.json#"), "a resolvable kid: {kid}");
    let mut names: Vec<&str> = header.as_object().unwrap().keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["alg", "kid", "typ"], "Open Badges allows no other JOSE header");
    assert_eq!(header["typ"], "JWT");
    let keys = jwks["keys"].as_array().unwrap();
    let signing = keys.iter().find(|k| k["kid"] == kid).expect("the kid is in the JWKS");
    assert_eq!((signing["kty"].as_str(), signing["crv"].as_str()), (Some("EC"), Some("P-256")));
    assert!(keys.iter().all(|k| k.get("d").is_none()), "no private part is published");
    let issuer = "http://lyceum.test/issuers/northbridge";
    let vc = verify_with_jwks(&token, &jwks, issuer).expect("the VC-JWT verifies");
    // `sub` is the subject's id, as the VC-JWT section of Open Badges 3.0 requires.
    let subject_id = vc["credentialSubject"]["id"].as_str().expect("the subject has an id");
    assert_eq!(vc["sub"], subject_id);
    assert!(url::Url::parse(subject_id).is_ok(), "a URI: {subject_id}");
    assert!(!subject_id.contains("ada"), "the subject id names no account: {subject_id}");
    // Open Badges 3.0 required properties.
    assert_eq!(vc["@context"][0], "https://www.w3.org/ns/credentials/v2");
    assert!(vc["@context"][1].as_str().unwrap().starts_with("https://purl.imsglobal.org/spec/ob/v3p0/context"));
    let types: Vec<&str> = vc["type"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(types.contains(&"VerifiableCredential") && types.contains(&"OpenBadgeCredential"));
    assert_eq!(vc["id"], format!("http://lyceum.test/certificates/{code}"));
    assert_eq!(vc["jti"], vc["id"]);
    assert_eq!(vc["issuer"]["id"], issuer);
    assert_eq!(vc["iss"], issuer);
    assert_eq!(vc["issuer"]["type"][0], "Profile");
    assert!(vc["issuer"]["name"].as_str().is_some());
    let valid_from = chrono::DateTime::parse_from_rfc3339(vc["validFrom"].as_str().unwrap()).expect("RFC 3339");
    assert_eq!(vc["nbf"].as_i64(), Some(valid_from.timestamp()));
    assert!(vc["name"].as_str().is_some());
    let subject = &vc["credentialSubject"];
    assert_eq!(subject["type"][0], "AchievementSubject");
    assert_eq!(subject["identifier"][0]["identityHash"], "Ada Lovelace");
    let achievement = &subject["achievement"];
    assert_eq!(achievement["type"][0], "Achievement");
    for required in ["id", "name", "description"] {
        assert!(achievement[required].as_str().is_some_and(|s| !s.is_empty()), "achievement.{required}");
    }
    assert!(achievement["criteria"]["narrative"].as_str().is_some());
    let entry = &vc["credentialStatus"];
    assert_eq!(entry["type"], "BitstringStatusListEntry");
    assert_eq!(entry["statusPurpose"], "revocation");
    let index: usize = entry["statusListIndex"].as_str().unwrap().parse().unwrap();
    assert_eq!(entry["statusListCredential"], "http://lyceum.test/credentials/status/revocation");
    // A changed credential does not verify.
    let mut parts: Vec<String> = token.split('.').map(String::from).collect();
    let forged = serde_json::to_vec(&{
        let mut p = jwt_payload(&token);
        p["credentialSubject"]["identifier"][0]["identityHash"] = "Mallory".into();
        p
    })
    .unwrap();
    use base64::Engine;
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged);
    assert!(verify_with_jwks(&parts.join("."), &jwks, issuer).is_err(), "a forged name is caught");
    // The issuer's profile.
    let (_, profile) = app.get("/issuers/northbridge").await;
    let profile: Value = serde_json::from_str(&profile).unwrap();
    assert_eq!((profile["id"].as_str(), profile["type"][0].as_str()), (Some(issuer), Some("Profile")));
    assert_eq!(app.get("/issuers/nobody").await.0, Status::NotFound);
    // Not revoked in the (signed) status list.
    let (_, list) = app.get("/credentials/status/revocation").await;
    verify_with_jwks(&list, &jwks, "http://lyceum.test").expect("the status list verifies");
    assert!(!status_bit(&list, index));

    // Staff revoke, with a reason.
    as_user(&app, &grace).await;
    let id: i64 = run(&app, |conn| certificates::table.select(certificates::id).first(conn)).await;
    app.post_form(&format!("/staff/certificates/{id}/revoke"), &[("reason", "")]).await;
    let (_, page) = app.get("/staff/certificates").await;
    assert!(page.contains("Give a reason"), "{page}");
    app.post_form(&format!("/staff/certificates/{id}/revoke"), &[("reason", "Plagiarised final project")]).await;
    app.sign_out().await;
    let (status, page) = app.get(&format!("/certificates/{code}")).await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("<strong>Revoked</strong>") && page.contains("Plagiarised final project"), "{page}");
    assert!(!page.contains("<strong>Valid.</strong>"));
    let (_, list) = app.get("/credentials/status/revocation").await;
    assert!(status_bit(&list, index), "the status list says revoked");
    let _ = ada;
}
crate::on_both!(crt_3_crt_4_certificate_is_issued_downloaded_verified_and_revoked, issue_and_verify);

async fn status_indexes(app: TestApp) {
    // promise: CRT-4 — status list indexes are drawn at random: a credential's index does not tell when it was issued.
    use lyceum::db::schema::course_runs;
    let (ada, _grace, c) = verified_learner(&app).await;
    as_user(&app, &ada).await;
    app.post_form(&format!("/learn/intro-python/quiz/{}", c.quiz), &[("q0", "1"), ("q1", "3.5")]).await;
    // Eight more runs of the course that Ada passed on the verified track.
    let ada_id = user_id(&app, "ada").await;
    let issued = run(&app, move |conn| {
        let now = lyceum::db::now();
        let course_id: i64 = course_runs::table.select(course_runs::course_id).first(conn)?;
        for year in 2027..2035 {
            let run_id: i64 = diesel::insert_into(course_runs::table)
                .values((
                    course_runs::course_id.eq(course_id),
                    course_runs::run_key.eq(year.to_string()),
                    course_runs::starts_at.eq(now),
                    course_runs::pacing.eq("self"),
                    course_runs::pass_threshold.eq(60),
                    course_runs::audit.eq(true),
                    course_runs::currency.eq("USD"),
                    course_runs::created_at.eq(now),
                    course_runs::updated_at.eq(now),
                ))
                .returning(course_runs::id)
                .get_result(conn)?;
            diesel::insert_into(enrollments::table)
                .values((
                    enrollments::user_id.eq(ada_id),
                    enrollments::run_id.eq(run_id),
                    enrollments::track.eq("verified"),
                    enrollments::status.eq("active"),
                    enrollments::enrolled_at.eq(now),
                    enrollments::grade_percent.eq(90.0),
                    enrollments::passed.eq(true),
                ))
                .execute(conn)?;
        }
        lyceum::certificates::issue_all_earned(conn, ada_id, now)
    })
    .await;
    assert_eq!(issued, 8);
    let indexes: Vec<i64> = run(&app, |conn| {
        certificates::table.order(certificates::id.asc()).select(certificates::status_index).load(conn)
    })
    .await;
    assert_eq!(indexes.len(), 9);
    let distinct: std::collections::BTreeSet<i64> = indexes.iter().copied().collect();
    assert_eq!(distinct.len(), 9, "one entry each: {indexes:?}");
    assert!(indexes.iter().all(|i| (0..131_072).contains(i)), "within the list's 131,072 entries: {indexes:?}");
    assert_ne!(indexes, (0..9).collect::<Vec<i64>>(), "not handed out in order");
    // Nine draws from 131,072 all below 4,096 happen once in 10^13 runs.
    assert!(indexes.iter().any(|&i| i >= 4096), "spread over the list: {indexes:?}");
    // The list still says which one is revoked.
    let last = *indexes.last().unwrap();
    run(&app, move |conn| {
        diesel::update(certificates::table.filter(certificates::status_index.eq(last)))
            .set((certificates::revoked_at.eq(lyceum::db::now()), certificates::revoked_reason.eq("test")))
            .execute(conn)
    })
    .await;
    let (_, list) = app.get("/credentials/status/revocation").await;
    let last = usize::try_from(last).unwrap();
    assert!(status_bit(&list, last), "the revoked one is set");
    assert!(indexes[..8].iter().all(|&i| !status_bit(&list, usize::try_from(i).unwrap())), "the others are not");
}
crate::on_both!(crt_4_status_list_indexes_do_not_reveal_issuance_order, status_indexes);

async fn unknown_credentials(app: TestApp) {
    // promise: CRT-4 — a verifier asking for a credential that does not exist gets an RFC 9457 problem; a browser, a page.
    seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    for path in [
        "/certificates/AAAA-BBBB-CCCC-DDDD/credential.jwt",
        "/certificates/AAAA-BBBB-CCCC-DDDD/credential.json",
        "/certificates/%3Cscript%3E/credential.jwt",
        "/issuers/nobody",
    ] {
        for accept in [None, Some("application/vc+jwt"), Some("*/*"), Some("application/json")] {
            let mut req = app.client.get(path);
            if let Some(a) = accept {
                req = req.header(Header::new("Accept", a));
            }
            let res = req.dispatch().await;
            assert_eq!(res.status(), Status::NotFound, "{path} {accept:?}");
            let content_type = res.content_type().map(|c| c.to_string());
            assert_eq!(content_type.as_deref(), Some("application/problem+json"), "{path} {accept:?}");
            let problem: Value = serde_json::from_str(&res.into_string().await.unwrap()).expect("JSON");
            assert_eq!(problem["status"], 404, "{problem}");
            assert!(problem["title"].as_str().is_some_and(|t| !t.is_empty()), "{problem}");
            assert!(problem["detail"].as_str().is_some_and(|d| d.contains("credential")), "{problem}");
        }
        let res = app.client.get(path).header(Header::new("Accept", browser)).dispatch().await;
        assert_eq!(res.status(), Status::NotFound);
        assert_eq!(res.content_type(), Some(ContentType::HTML), "a browser gets a page: {path}");
    }
    // The human verification page stays a page for a client that states no preference.
    let res = app.client.get("/certificates/AAAA-BBBB-CCCC-DDDD").dispatch().await;
    assert_eq!(res.content_type(), Some(ContentType::HTML));
}
crate::on_both!(crt_4_unknown_credentials_are_problem_documents_for_verifiers, unknown_credentials);

/// The site answers on a port of its own: the credential's `kid`, issuer and
/// status list URLs are then real addresses a verifier can fetch.
fn on_a_port(c: &mut lyceum::config::Config) {
    let port = crate::browser::free_port();
    c.port = port;
    c.base_url = Some(format!("http://127.0.0.1:{port}"));
}

async fn verified_by_others(app: TestApp) {
    // promise: CRT-4 — 1EdTech's Open Badges 3.0 schemas and a JWT library of another language accept the real credential.
    let Ok(python) = std::env::var("LYCEUM_TEST_PYTHON_VERIFIERS") else {
        crate::common::service_missing("Python with jsonschema and PyJWT", "LYCEUM_TEST_PYTHON_VERIFIERS");
        return;
    };
    let (ada, _grace, c) = verified_learner(&app).await;
    as_user(&app, &ada).await;
    app.post_form(&format!("/learn/intro-python/quiz/{}", c.quiz), &[("q0", "1"), ("q1", "3.5")]).await;
    let code = code_of(&app).await;
    // The real site over the same database, as a second instance would serve it.
    let data = tempfile::tempdir().unwrap();
    let mut config = app.config.clone();
    config.data_dir = data.path().to_path_buf();
    let site = config.base_url.clone().unwrap();
    let server = tokio::spawn(lyceum::build_rocket(config).unwrap().launch());
    crate::browser::wait_for(site.trim_start_matches("http://")).await;
    let url = format!("{site}/certificates/{code}/credential.jwt");
    let fetched = reqwest::get(&url).await.unwrap();
    assert_eq!(fetched.status(), reqwest::StatusCode::OK, "{url}");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tokio::process::Command::new(&python)
        .arg(root.join("tests/verifiers/openbadges.py"))
        .arg(&url)
        .arg(root.join("tests/fixtures/openbadges"))
        .kill_on_drop(true)
        .output()
        .await
        .expect("python runs");
    server.abort();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the Open Badges verifier refused the credential:\n{stderr}{stdout}");
    let report: Value = serde_json::from_str(stdout.trim()).expect("the verifier's report");
    assert_eq!(report["verified"], format!("{site}/certificates/{code}"));
}
crate::on_both!(
    crt_4_open_badges_verifiers_of_others_accept_the_credential,
    verified_by_others,
    crate::certificates::on_a_port
);

/// The Ed25519 seed a site configured before credentials moved to ES256.
const LEGACY_SEED: [u8; 32] = [7; 32];

/// A credential signed the way Lyceum signed them before ES256: EdDSA over
/// the configured seed, `kid` the first 8 bytes of the key's SHA-256 in hex.
fn legacy_token(payload: &Value) -> String {
    use base64::Engine;
    use ed25519_dalek::Signer;
    use sha2::Digest;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let key = ed25519_dalek::SigningKey::from_bytes(&LEGACY_SEED);
    let kid = hex::encode(&sha2::Sha256::digest(key.verifying_key().as_bytes())[..8]);
    let header = serde_json::json!({ "alg": "EdDSA", "typ": "JWT", "kid": kid });
    let input = format!("{}.{}", b64.encode(header.to_string()), b64.encode(payload.to_string()));
    let signature = key.sign(input.as_bytes());
    format!("{input}.{}", b64.encode(signature.to_bytes()))
}

async fn keys_old_and_new(app: TestApp) {
    // promise: CRT-4 — credentials signed before the move to ES256 still verify against the published keys.
    let (_, jwks) = app.get("/.well-known/jwks.json").await;
    let jwks: Value = serde_json::from_str(&jwks).unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "the signing key and the earlier one: {jwks}");
    assert_ne!(keys[0]["kid"], keys[1]["kid"], "distinct kids");
    let old = serde_json::json!({ "iss": "http://lyceum.test/issuers/northbridge", "nbf": 1_700_000_000, "name": "x" });
    let claims = verify_as(
        &legacy_token(&old),
        &jwks,
        "http://lyceum.test/issuers/northbridge",
        jsonwebtoken::Algorithm::EdDSA,
        &["iss", "nbf"],
    )
    .expect("an EdDSA credential from before still verifies");
    assert_eq!(claims["name"], "x");
    // The P-256 key comes from the same configured value: the same on every start.
    let again = TestApp::sqlite_with(legacy_seed).await;
    let (_, same) = again.get("/.well-known/jwks.json").await;
    assert_eq!(serde_json::from_str::<Value>(&same).unwrap(), jwks, "a stable key set");
}

fn legacy_seed(c: &mut lyceum::config::Config) {
    use base64::Engine;
    c.credential_key = Some(base64::engine::general_purpose::STANDARD.encode(LEGACY_SEED));
}
crate::on_both!(
    crt_4_credentials_signed_with_the_earlier_key_still_verify,
    keys_old_and_new,
    crate::certificates::legacy_seed
);

#[rocket::async_test]
async fn crt_4_the_signing_key_is_a_configured_p256_key_or_a_clear_error() {
    // promise: CRT-4 — an operator's P-256 key (PKCS#8, as openssl writes it) signs; anything else stops the start with a reason.
    use base64::Engine;
    use p256::pkcs8::{EncodePrivateKey, LineEnding};
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = p256::ecdsa::SigningKey::from_slice(&[9; 32]).unwrap();
    let point = key.verifying_key().to_sec1_point(false);
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (x, y) = (url.encode(point.x().unwrap()), url.encode(point.y().unwrap()));
    let der = b64.encode(key.to_pkcs8_der().unwrap().as_bytes());
    let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
    for configured in [der, pem] {
        let app = TestApp::sqlite_with(|c| c.credential_key = Some(configured.clone())).await;
        let (_, jwks) = app.get("/.well-known/jwks.json").await;
        let jwks: Value = serde_json::from_str(&jwks).unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 1, "no earlier key to keep: {jwks}");
        assert_eq!((jwks["keys"][0]["x"].as_str(), jwks["keys"][0]["y"].as_str()), (Some(&*x), Some(&*y)));
        assert_eq!(jwks["keys"][0]["alg"], "ES256");
    }
    // Bad input: not base64, the wrong length, another curve's key — a start-up error, never a panic.
    let dir = tempfile::tempdir().unwrap();
    for bad in ["not a key!", "AAEC", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"] {
        let mut config = crate::common::test_config(dir.path(), format!("sqlite://{}/x.db", dir.path().display()));
        config.credential_key = Some(bad.into());
        let err = lyceum::build_rocket(config).err().unwrap_or_else(|| panic!("{bad} is refused"));
        let message = err.to_string();
        assert!(message.contains("LYCEUM_CREDENTIAL_KEY") && message.contains("P-256"), "{message}");
    }
}

async fn assistance(app: TestApp) {
    // promise: CRT-5 — learners apply, staff decide, approval makes the certificate free.
    seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let ada = enrolled(&app, "ada").await;
    let (status, page) = app.get("/courses/intro-python/assistance?run=2026").await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("id=\"assistance-form\""));
    assert_eq!(app.get("/courses/intro-python/assistance?run=1999").await.0, Status::NotFound);
    // Bad input: too short answers come back with the words kept.
    let res = app
        .post_form(
            "/courses/intro-python/assistance?run=2026",
            &[("reason", "money"), ("circumstances", "I lost my job last spring and have no income."), ("goals", "")],
        )
        .await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    let page = res.into_string().await.unwrap();
    assert!(page.contains("I lost my job last spring") && page.contains("Tell us why you are applying"), "{page}");
    let answers = [
        ("reason", "I cannot afford the certificate fee right now."),
        ("circumstances", "I lost my job last spring and have no income."),
        ("goals", "A verified certificate would help me apply for junior developer roles."),
    ];
    let res = app.post_form("/courses/intro-python/assistance?run=2026", &answers).await;
    assert_eq!(res.status(), Status::SeeOther);
    app.post_form("/courses/intro-python/assistance?run=2026", &answers).await;
    let (_, page) = app.get("/courses/intro-python/assistance?run=2026").await;
    assert!(page.contains("already applied") || page.contains("Your application is pending"), "{page}");
    let (_, page) = app.get("/learn/intro-python").await;
    assert!(page.contains("Financial assistance: pending"), "{page}");

    let grace = staff(&app).await;
    as_user(&app, &grace).await;
    let (_, list) = app.get("/staff/assistance").await;
    assert!(list.contains("I lost my job last spring"));
    let app_id: i64 = run(&app, |conn| {
        lyceum::db::schema::assistance_applications::table
            .select(lyceum::db::schema::assistance_applications::id)
            .first(conn)
    })
    .await;
    // Declining needs a note.
    app.post_form(&format!("/staff/assistance/{app_id}"), &[("decision", "deny")]).await;
    let (_, list) = app.get("/staff/assistance").await;
    assert!(list.contains("Tell the learner why"), "{list}");
    app.post_form(&format!("/staff/assistance/{app_id}"), &[("decision", "approve"), ("note", "Good luck!")]).await;
    assert_eq!(track(&app, "ada").await, "verified", "the verified track, free");
    assert_eq!(run(&app, |conn| payments::table.count().get_result::<i64>(conn)).await, 0, "nothing paid");
    // Deciding twice is refused.
    app.post_form(&format!("/staff/assistance/{app_id}"), &[("decision", "deny"), ("note", "No")]).await;
    assert_eq!(track(&app, "ada").await, "verified");
    app.run_jobs().await;
    let (_, text, _) =
        newest_mail(&app, &ada.email, "Your financial assistance application for Introduction to Python").unwrap();
    assert!(text.contains("is approved") && text.contains("Good luck!"), "{text}");
}
crate::on_both!(crt_5_financial_assistance_makes_the_verified_track_free, assistance);

async fn kept_through_erasure(app: TestApp) {
    // promise: CRT-6 — certificates are kept 7 years (configurable) even after the account is erased.
    let (ada, _, c) = verified_learner(&app).await;
    app.post_form(&format!("/learn/intro-python/quiz/{}", c.quiz), &[("q0", "1"), ("q1", "3.5")]).await;
    let code = code_of(&app).await;
    let ada_id = user_id(&app, "ada").await;
    as_user(&app, &ada).await;
    let res = app.post_form("/account/privacy/delete", &[("password", &ada.password), ("confirm", "true")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    app.run_jobs().await;
    run(&app, |conn| {
        use lyceum::db::schema::erasures;
        diesel::update(erasures::table)
            .set(erasures::run_after.eq(lyceum::db::now() - chrono::Duration::minutes(1)))
            .execute(conn)
    })
    .await;
    run_scheduled(&app).await;
    let state: String =
        run(&app, |conn| lyceum::db::schema::erasures::table.select(lyceum::db::schema::erasures::state).first(conn))
            .await;
    assert_eq!(state, "done");
    // The certificate stands alone: still valid, still in her name, tied to no account.
    let (owner, name): (Option<i64>, String) =
        run(&app, |conn| certificates::table.select((certificates::user_id, certificates::name_at_issue)).first(conn))
            .await;
    assert_eq!((owner, name.as_str()), (None, "Ada Lovelace"));
    let (status, page) = app.get(&format!("/certificates/{code}")).await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("<strong>Valid.</strong>") && page.contains("Ada Lovelace"));
    // Her identity checks went with the account.
    let left = run(&app, move |conn| {
        identity_checks::table.filter(identity_checks::user_id.eq(ada_id)).count().get_result::<i64>(conn)
    })
    .await;
    assert_eq!(left, 0);

    // Retention: within the period the certificate stays; past it, it goes.
    let periods = |days| lyceum::privacy::retention::Periods {
        inactive_account_days: 0,
        inactive_warning_days: 0,
        course_record_days: 0,
        forum_post_days: 0,
        log_days: 0,
        certificate_days: days,
        proctoring_days: 0,
        exam_result_days: 0,
        page_view_days: 0,
        cookie_choice_days: 0,
        campaign_event_days: 0,
        support_request_days: 0,
    };
    assert_eq!(app.config.retention_certificate_days, 7 * 365 + 2, "seven years by default");
    let p = periods(app.config.retention_certificate_days);
    let outbox = app.config.outbox_dir();
    run(&app, move |conn| lyceum::privacy::retention::run(conn, &p, &outbox, lyceum::db::now(), false)).await;
    assert_eq!(app.get(&format!("/certificates/{code}")).await.0, Status::Ok);
    let p = periods(app.config.retention_certificate_days);
    let later = lyceum::db::now() + chrono::Duration::days(7 * 365 + 3);
    let outbox = app.config.outbox_dir();
    let lines = run(&app, move |conn| lyceum::privacy::retention::run(conn, &p, &outbox, later, true)).await;
    assert!(lines.iter().any(|l| l.category == "certificates" && l.count == 1), "{lines:?}");
    let outbox = app.config.outbox_dir();
    run(&app, move |conn| lyceum::privacy::retention::run(conn, &p, &outbox, later, false)).await;
    assert_eq!(app.get(&format!("/certificates/{code}")).await.0, Status::NotFound);
}
crate::on_both!(crt_6_certificates_outlive_erasure_for_their_retention_period, kept_through_erasure);

const PROCTOR_KEY: &str = "pk_lyceum_test";
const PROCTOR_SECRET: &str = "ps_lyceum_callback_secret";

fn proctor_signature(body: &str, t: i64) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(PROCTOR_SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

async fn callback(app: &TestApp, body: &str, signature: Option<String>) -> (Status, String) {
    let mut req = app.client.post("/proctoring/callback").header(ContentType::JSON).body(body);
    if let Some(s) = signature {
        req = req.header(Header::new("Proctoring-Signature", s));
    }
    let res = req.dispatch().await;
    (res.status(), res.into_string().await.unwrap_or_default())
}

async fn proctored_exam(app: TestApp, service: partner_adapters::test_server::Log) {
    // promise: CRT-7 — an exam can require a third-party proctoring session; only its reference and outcome are kept, for at most a year.
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let quiz = c.quiz;
    run(&app, move |conn| {
        use lyceum::db::schema::blocks;
        let data: String = blocks::table.find(quiz).select(blocks::data).first(conn)?;
        let mut v: Value = serde_json::from_str(&data).unwrap();
        v["proctored"] = true.into();
        diesel::update(blocks::table.find(quiz)).set(blocks::data.eq(v.to_string())).execute(conn)
    })
    .await;
    let ada = enrolled(&app, "ada").await;
    let unit: i64 = run(&app, move |conn| {
        use lyceum::db::schema::blocks;
        blocks::table.find(quiz).select(blocks::unit_id).first(conn)
    })
    .await;
    let (_, page) = app.get(&format!("/learn/intro-python/units/{unit}")).await;
    assert!(page.contains("Start the proctored session"), "{page}");
    assert!(!page.contains("Submit answers"), "no answers outside a session");
    // Bad input: answers sent anyway are refused and not recorded.
    let res = app.post_form(&format!("/learn/intro-python/quiz/{quiz}"), &[("q0", "1"), ("q1", "3.5")]).await;
    assert_eq!(res.status(), Status::Forbidden);
    assert_eq!(run(&app, |conn| lyceum::db::schema::quiz_attempts::table.count().get_result::<i64>(conn)).await, 0);

    let res = app.post_form(&format!("/learn/intro-python/exams/{quiz}/proctoring"), &[]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let next = res.headers().get_one("Location").unwrap().to_string();
    assert_eq!(next, format!("/learn/intro-python/exams/{quiz}/proctoring"));
    let (_, page) = app.get(&next).await;
    assert!(page.contains("href=\"https://proctor.example/launch/ps_77\""), "a link to the service: {page}");
    let asked = service.lock().unwrap()[0].clone();
    assert_eq!(asked.header("Authorization"), Some(format!("Bearer {PROCTOR_KEY}").as_str()));
    let sent = String::from_utf8(asked.body.clone()).unwrap();
    let sent: Value = serde_json::from_str(&sent).unwrap();
    assert!(sent["candidate"].as_str().unwrap().starts_with("c-"));
    assert_eq!(sent["callback_url"], "http://lyceum.test/proctoring/callback");
    for private in [ada.email.as_str(), "Ada", "Lovelace", "ada"] {
        assert!(!sent.to_string().contains(private), "the service gets a pseudonym, not {private}");
    }
    // In the session the exam takes answers.
    let (_, page) = app.get(&format!("/learn/intro-python/units/{unit}")).await;
    assert!(page.contains("Submit answers") && page.contains("Proctored session open"));
    app.post_form(&format!("/learn/intro-python/quiz/{quiz}"), &[("q0", "1"), ("q1", "3.5")]).await;
    let passed: bool = run(&app, |conn| enrollments::table.select(enrollments::passed).first(conn)).await;
    assert!(passed);

    // Bad input: unsigned, forged or unknown callbacks change nothing.
    let body = r#"{"session":"ps_77","outcome":"failed","detail":"A second person was in the room."}"#;
    let now = chrono::Utc::now().timestamp();
    assert_eq!(callback(&app, body, None).await.0, Status::BadRequest);
    assert_eq!(
        callback(&app, body, Some(proctor_signature(body, now).replace("v1=", "v1=ff"))).await.0,
        Status::BadRequest
    );
    assert_eq!(callback(&app, body, Some(proctor_signature(body, now - 3600))).await.0, Status::BadRequest);
    let odd = r#"{"session":"ps_77","outcome":"maybe"}"#;
    assert_eq!(callback(&app, odd, Some(proctor_signature(odd, now))).await.0, Status::BadRequest);
    let unknown = r#"{"session":"ps_nope","outcome":"failed"}"#;
    let (status, answer) = callback(&app, unknown, Some(proctor_signature(unknown, now))).await;
    assert_eq!(status, Status::Ok);
    assert!(answer.contains("\"applied\":false"));
    assert!(run(&app, |conn| enrollments::table.select(enrollments::passed).first::<bool>(conn)).await);

    // The service finds a violation: the exam's attempts score 0, the grade falls.
    let (status, answer) = callback(&app, body, Some(proctor_signature(body, now))).await;
    assert_eq!(status, Status::Ok);
    assert!(answer.contains("\"applied\":true"), "{answer}");
    let (grade, passed): (f64, bool) =
        run(&app, |conn| enrollments::table.select((enrollments::grade_percent, enrollments::passed)).first(conn))
            .await;
    assert_eq!((grade, passed), (0.0, false));
    // Applied once: a replay changes nothing.
    assert!(callback(&app, body, Some(proctor_signature(body, now))).await.1.contains("\"applied\":false"));
    let (_, page) = app.get(&format!("/learn/intro-python/units/{unit}")).await;
    assert!(page.contains("found a violation"), "{page}");
    // Only the reference and the outcome are kept.
    use lyceum::db::schema::proctoring_sessions;
    let kept: (String, String, Option<String>) = run(&app, |conn| {
        proctoring_sessions::table
            .select((proctoring_sessions::provider_ref, proctoring_sessions::status, proctoring_sessions::outcome))
            .first(conn)
    })
    .await;
    assert_eq!(kept, ("ps_77".into(), "failed".into(), Some("A second person was in the room.".into())));

    // References go after the configured year.
    assert_eq!(app.config.retention_proctoring_days, 365);
    let p = lyceum::privacy::retention::Periods {
        inactive_account_days: 0,
        inactive_warning_days: 0,
        course_record_days: 0,
        forum_post_days: 0,
        log_days: 0,
        certificate_days: 0,
        proctoring_days: app.config.retention_proctoring_days,
        exam_result_days: 0,
        page_view_days: 0,
        cookie_choice_days: 0,
        campaign_event_days: 0,
        support_request_days: 0,
    };
    let soon = lyceum::db::now() + chrono::Duration::days(300);
    let outbox = app.config.outbox_dir();
    run(&app, move |conn| lyceum::privacy::retention::run(conn, &p, &outbox, soon, false)).await;
    assert_eq!(run(&app, |conn| proctoring_sessions::table.count().get_result::<i64>(conn)).await, 1);
    let later = lyceum::db::now() + chrono::Duration::days(366);
    let outbox = app.config.outbox_dir();
    run(&app, move |conn| lyceum::privacy::retention::run(conn, &p, &outbox, later, false)).await;
    assert_eq!(run(&app, |conn| proctoring_sessions::table.count().get_result::<i64>(conn)).await, 0);
}

async fn proctoring_service() -> (String, partner_adapters::test_server::Log) {
    partner_adapters::test_server::serve(|_, req| {
        if req.method == "POST" && req.path == "/sessions" {
            partner_adapters::test_server::Reply::new(
                201,
                r#"{"id":"ps_77","launch_url":"https://proctor.example/launch/ps_77"}"#,
            )
        } else {
            partner_adapters::test_server::Reply::new(404, "{}")
        }
    })
    .await
}

fn configure_proctoring(c: &mut lyceum::config::Config, base: &str) {
    c.proctoring_url = Some(base.to_string());
    c.proctoring_key = Some(PROCTOR_KEY.into());
    c.proctoring_secret = Some(PROCTOR_SECRET.into());
}

mod crt_7_a_proctored_exam_keeps_only_the_session_reference_and_outcome {
    #[rocket::async_test]
    async fn sqlite() {
        let (base, log) = super::proctoring_service().await;
        let app = crate::common::TestApp::sqlite_with(|c| super::configure_proctoring(c, &base)).await;
        super::proctored_exam(app, log).await
    }
    #[rocket::async_test]
    async fn postgres() {
        let (base, log) = super::proctoring_service().await;
        if let Some(app) = crate::common::TestApp::postgres_with(|c| super::configure_proctoring(c, &base)).await {
            super::proctored_exam(app, log).await
        }
    }
}

#[rocket::async_test]
async fn crt_1_sponsors_buy_seats_through_the_same_provider() {
    // promise: CRT-1 — sponsors pay for seats through the processor too; seats appear once it confirms.
    use lyceum::consent::{PartnerKind, partners, sponsors};
    let double = stripe::start(None).await;
    let app = TestApp::sqlite_with(|c| stripe::configure(c, &double.base)).await;
    seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let run_id: i64 = run(&app, |conn| {
        lyceum::db::schema::course_runs::table.select(lyceum::db::schema::course_runs::id).first(conn)
    })
    .await;
    let sponsor = run(&app, |conn| {
        partners::create(conn, PartnerKind::Sponsor, "acme", "Acme Corp", None, "hr@acme.example", lyceum::db::now())
    })
    .await;
    let boss = verified(&app, "boss").await;
    let boss_id = user_id(&app, "boss").await;
    let s2 = sponsor.clone();
    run(&app, move |conn| partners::appoint(conn, &s2, boss_id, boss_id)).await;
    // Someone who does not manage the sponsor cannot buy for it.
    let eve = verified(&app, "eve").await;
    as_user(&app, &eve).await;
    let res = app.post_form("/partners/acme/seats/buy", &[("run_id", &run_id.to_string()), ("seats", "5")]).await;
    assert!(matches!(res.status(), Status::Forbidden | Status::NotFound), "{}", res.status());

    as_user(&app, &boss).await;
    let (_, page) = app.get("/partners/acme").await;
    assert!(page.contains("id=\"buy-seats\"") && page.contains("49.00 USD per seat"), "{page}");
    // Bad input: no seats.
    let res = app.post_form("/partners/acme/seats/buy", &[("run_id", &run_id.to_string()), ("seats", "0")]).await;
    assert_eq!(res.headers().get_one("Location"), Some("/partners/acme"));
    let (_, page) = app.get("/partners/acme").await;
    assert!(page.contains("between 1 and 1,000 seats"), "{page}");
    assert!(double.state.lock().unwrap().sessions.is_empty());

    let res = app.post_form("/partners/acme/seats/buy", &[("run_id", &run_id.to_string()), ("seats", "5")]).await;
    assert_eq!(res.headers().get_one("Location"), Some(format!("{}/pay/cs_test_1", double.base).as_str()));
    let session = double.session("cs_test_1");
    assert_eq!(session.amount, 5 * 4900, "five seats at the run's price");
    double.state.lock().unwrap().sessions.get_mut("cs_test_1").unwrap().paid = true;
    let res = app.client.get("/payments/return?checkout=cs_test_1").dispatch().await;
    assert_eq!(res.headers().get_one("Location"), Some("/partners/acme"));
    let allocations = run(&app, move |conn| sponsors::allocations(conn, &sponsor)).await;
    assert_eq!(allocations.len(), 1);
    assert_eq!(allocations[0].0.seats, 5);
    app.run_jobs().await;
    let (_, text, _) = newest_mail(&app, &boss.email, "Your receipt from Lyceum").expect("a receipt");
    assert!(text.contains("5 seat(s) in Introduction to Python") && text.contains("245.00 USD"), "{text}");
}

#[rocket::async_test]
async fn crt_1_the_webhook_and_the_return_racing_fulfil_a_checkout_once() {
    // promise: CRT-1 — the webhook and the learner's return may arrive together; the payment is applied once, without an error.
    use lyceum::certificates::payments::{self, CheckoutState, Fulfilled, NewPayment};
    let app = TestApp::sqlite().await;
    seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    enrolled(&app, "ada").await;
    let (user, run_id): (i64, i64) = (
        user_id(&app, "ada").await,
        run(&app, |conn| {
            lyceum::db::schema::course_runs::table.select(lyceum::db::schema::course_runs::id).first(conn)
        })
        .await,
    );
    let db = app.db();
    for i in 0..20 {
        let id = format!("cs_race_{i}");
        let checkout = id.clone();
        run(&app, move |conn| {
            let p = NewPayment {
                user_id: user,
                run_id,
                purpose: payments::purpose::VERIFIED,
                partner_id: None,
                quantity: 1,
                provider: "stripe",
                checkout_id: &checkout,
                amount_cents: 4900,
                currency: "USD",
            };
            payments::record_checkout(conn, &p, lyceum::db::now())
        })
        .await;
        let state = CheckoutState {
            paid: true,
            payment_ref: Some(format!("pi_{i}")),
            amount_cents: 4900,
            currency: "USD".into(),
        };
        let both = |id: String, state: CheckoutState| {
            let db = db.clone();
            async move {
                db.run(move |conn| {
                    payments::fulfil(conn, &id, &state, lyceum::db::now()).map_err(lyceum::db::DbError::from)
                })
                .await
            }
        };
        let (a, b) = tokio::join!(both(id.clone(), state.clone()), both(id, state));
        let outcomes = [a.expect("no error"), b.expect("no error")];
        assert_eq!(outcomes.iter().filter(|o| **o == Fulfilled::Now).count(), 1, "{outcomes:?}");
        assert_eq!(outcomes.iter().filter(|o| **o == Fulfilled::Already).count(), 1, "{outcomes:?}");
    }
}

async fn identity_photos_rotate(app: TestApp) {
    // promise: SEC-2 — identity photos waiting for review are re-sealed by key rotation like every sealed field.
    use base64::Engine;
    let ada = verified(&app, "ada").await;
    as_user(&app, &ada).await;
    send_photos(&app, &photo_with_gps(), &crate::media::jpeg(300, 300)).await;
    let (_, _, id_key, face_key) = check_of(&app, "ada").await;
    let (id_key, face_key) = (id_key.unwrap(), face_key.unwrap());
    let store = lyceum::blob_store(&app.config);
    let secret = app.config.resolve_secret().unwrap();
    let new_key = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    let both = lyceum::privacy::vault::Vault::new(
        Some(&format!("k2:{new_key},{}", lyceum::privacy::vault::derived_key_entry(&secret))),
        b"",
    )
    .unwrap();
    let blobs = store.clone();
    let changed = run(&app, move |conn| {
        lyceum::certificates::identity::rewrap_images(conn, blobs.as_ref(), &both).map_err(|e| e.to_string())
    })
    .await;
    assert_eq!(changed, 2);
    let (_, status, new_id, new_face) = check_of(&app, "ada").await;
    assert_eq!(status, "pending", "still waiting for its review");
    let (new_id, new_face) = (new_id.unwrap(), new_face.unwrap());
    assert!(new_id != id_key && new_face != face_key);
    assert!(store.get(&id_key).unwrap().is_none() && store.get(&face_key).unwrap().is_none(), "old copies gone");
    let only_new = lyceum::privacy::vault::Vault::new(Some(&format!("k2:{new_key}")), b"").unwrap();
    let sealed = store.get(&new_id).unwrap().unwrap();
    assert!(sealed.starts_with(b"env1:k2:"));
    let photo = only_new.open_bytes(lyceum::certificates::identity::ID_PHOTO, &sealed).unwrap();
    assert!(image::load_from_memory(&photo).is_ok(), "the photo opens under the new key alone");
}
crate::on_both!(sec_2_identity_photos_are_rewrapped_by_key_rotation, identity_photos_rotate);

/// Poppler (someone else's PDF reader) finds the lines as text in embedded
/// fonts, and a tagged document.
fn pdf_is_a_real_document(pdf: &[u8], lines: &[&str]) {
    let Ok(pdftotext) = std::env::var("LYCEUM_TEST_PDFTOTEXT") else {
        crate::common::service_missing("Poppler's pdftotext", "LYCEUM_TEST_PDFTOTEXT");
        return;
    };
    let tool = |name: &str| std::path::Path::new(&pdftotext).with_file_name(name);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("certificate.pdf");
    std::fs::write(&file, pdf).unwrap();
    let run = |program: std::path::PathBuf, args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new(&program).args(args).output().expect("poppler runs");
        assert!(out.status.success(), "{}: {}", program.display(), String::from_utf8_lossy(&out.stderr));
        assert!(out.stderr.is_empty(), "poppler complains: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let text = run(tool("pdftotext"), &[file.as_os_str(), std::ffi::OsStr::new("-")]);
    for line in lines {
        assert!(text.contains(line), "{line:?} is selectable text: {text}");
    }
    let fonts = run(tool("pdffonts"), &[file.as_os_str()]);
    let rows: Vec<&str> = fonts.lines().skip(2).collect();
    assert_eq!(rows.len(), 2, "{fonts}");
    assert!(
        rows.iter().all(|r| r.contains("DejaVuSerif") && r.contains("CID TrueType") && r.contains(" yes ")),
        "{fonts}"
    );
    let info = run(tool("pdfinfo"), &[file.as_os_str()]);
    assert!(info.lines().any(|l| l.starts_with("Tagged:") && l.ends_with("yes")), "{info}");
    assert!(info.lines().any(|l| l.starts_with("Page size:") && l.contains("842 x 595 pts")), "{info}");
}
