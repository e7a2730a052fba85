//! Outbound requests guarded (issue 26, item 8): with an empty allow-list a
//! partner destination at a loopback, private, link-local or metadata
//! address is refused when it is saved and again when it is sent, and a
//! redirect from an allowed host to a private one is not followed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use diesel::prelude::*;
use lyceum::consent::push::{self, NewDestination, Target};
use lyceum::db::schema::{jobs, partner_sends};
use lyceum::net::Outbound;
use partner_adapters::test_server::{Reply, serve};
use rocket::http::Status;

use crate::common::TestApp;
use crate::on_both;
use crate::push::{ada_shares_bob_declines, queue, state};
use crate::sharing::{as_user, run, verified};

/// A listener on 127.0.0.2 that counts the connections it accepts.
async fn counting_listener() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.2:0").await.expect("127.0.0.2 is a loopback address");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((_socket, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
        }
    });
    (url, count)
}

async fn job_error(app: &TestApp, send_id: i64) -> String {
    run(app, move |conn| {
        let job: Option<i64> = partner_sends::table.find(send_id).select(partner_sends::job_id).first(conn)?;
        jobs::table.find(job.unwrap_or(0)).select(jobs::last_error).first::<Option<String>>(conn)
    })
    .await
    .unwrap_or_default()
}

async fn private_destinations_refused(app: TestApp) {
    let partner = ada_shares_bob_declines(&app).await;
    let (url, log) = serve(|_, _| Reply::new(200, "{}")).await;
    let port = url.rsplit(':').next().expect("a port").to_string();

    // Saving: staff get the rule and the setting in a form error.
    let grace = verified(&app, "grace").await;
    run(&app, move |conn| lyceum::accounts::service::ensure_staff(conn, "grace@example.org", None, "Grace", "H")).await;
    as_user(&app, &grace).await;
    let private = [
        format!("{url}/hook"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.0.0.1/hook".to_string(),
        format!("http://localhost:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
    ];
    for endpoint in &private {
        for kind in ["webhook", "lrs"] {
            let res = app
                .post_form(
                    "/partners/member-northbridge/destinations",
                    &[
                        ("name", "Inside"),
                        ("kind", kind),
                        ("records", "all"),
                        ("format", if kind == "lrs" { "xapi" } else { "jsonl" }),
                        ("every_minutes", "60"),
                        ("endpoint", endpoint),
                        ("username", "key"),
                        ("secret", "s3cret"),
                    ],
                )
                .await;
            assert_eq!(res.status(), Status::SeeOther, "{kind} {endpoint}");
            let (_, page) = app.get("/partners/member-northbridge").await;
            assert!(page.contains("outbound_allow") && page.contains("private"), "{kind} {endpoint}: {page}");
        }
    }
    let s3 = NewDestination {
        name: "Bucket",
        target: Target::S3 {
            endpoint: Some("http://169.254.169.254".into()),
            region: "eu-west-1".into(),
            bucket: "records".into(),
            prefix: String::new(),
            access_key_id: "AKIA".into(),
        },
        record_kind: "enrollment",
        format: "csv",
        secret: "s3cret",
        every_minutes: 60,
        by: None,
    };
    let p = partner.clone();
    let outbound = app.client.rocket().state::<Outbound>().expect("outbound policy").clone();
    let refused = run(&app, move |conn| push::create(conn, &p, &s3, lyceum::db::now(), &outbound)).await;
    assert!(refused.is_err_and(|m| m.contains("outbound_allow")), "an S3 endpoint is checked too");

    // Sending: a destination saved while its address was allowed (or whose
    // name resolved elsewhere then) is refused again, and nothing leaves.
    let allowed = Outbound::new(&["127.0.0.0/8".into()]).expect("allow-list");
    for (i, endpoint) in [format!("{url}/hook"), format!("http://localhost:{port}/hook")].into_iter().enumerate() {
        let p = partner.clone();
        let allowed = allowed.clone();
        let dest = run(&app, move |conn| {
            let new = NewDestination {
                name: "Saved earlier",
                target: Target::Webhook { url: endpoint },
                record_kind: "all",
                format: "jsonl",
                secret: "s3cret",
                every_minutes: 60,
                by: None,
            };
            let d = push::create(conn, &p, &new, lyceum::db::now(), &allowed)?.expect("allowed then");
            push::set_enabled(conn, &p, d.id, false, lyceum::db::now())?;
            Ok::<_, diesel::result::Error>(d)
        })
        .await;
        let send_id = queue(&app, &dest, &format!("private-{i}")).await;
        app.run_jobs().await;
        let (send, status, attempts) = state(&app, send_id).await;
        assert!(send.delivered_at.is_none() && attempts >= 1 && status != "done", "{status}");
        let error = job_error(&app, send_id).await;
        assert!(error.contains("outbound_allow"), "a clear reason: {error}");
    }
    assert!(log.lock().unwrap().is_empty(), "the local listener received nothing");
}
on_both!(destinations_at_private_addresses_are_refused_at_save_and_at_send, private_destinations_refused, |c| c
    .outbound_allow
    .clear());

async fn redirects_rechecked(app: TestApp) {
    // The harness allows 127.0.0.1 only: 127.0.0.2 stands for a private host behind an allowed one.
    let (inside, connections) = counting_listener().await;
    let target = format!("{inside}/hook");
    let (url, log) = serve(move |_, _| Reply::new(307, "").header("Location", target.clone())).await;

    // A guarded client that follows redirects stops at the private one.
    let outbound = app.client.rocket().state::<Outbound>().expect("outbound policy").clone();
    let client = outbound.client_builder().build().expect("client");
    let err = client.get(format!("{url}/start")).send().await.expect_err("the redirect is refused");
    let mut chain = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(e) = source {
        chain.push_str(&format!(": {e}"));
        source = e.source();
    }
    assert!(chain.contains("outbound_allow"), "{chain}");

    // A webhook push whose receiver redirects fails and reaches nothing inside.
    let partner = ada_shares_bob_declines(&app).await;
    let dest =
        crate::push::destination(&app, &partner, Target::Webhook { url: format!("{url}/hook") }, "all", "jsonl").await;
    let send_id = queue(&app, &dest, "redirected").await;
    app.run_jobs().await;
    let (send, status, _) = state(&app, send_id).await;
    assert!(send.delivered_at.is_none() && status != "done");
    assert!(!log.lock().unwrap().is_empty(), "the allowed host was asked");
    assert_eq!(connections.load(Ordering::SeqCst), 0, "the private host was never reached");
}
on_both!(a_redirect_from_an_allowed_host_to_a_private_one_is_refused, redirects_rechecked);
