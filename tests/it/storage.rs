//! Blob storage in an S3 bucket: the site's files go to a real S3-compatible
//! server when configured, and are read back through the site's access checks.

use rocket::http::Status;
use sha2::{Digest, Sha256};

use crate::common::{TestApp, service_missing};
use crate::learning::{enroll, seed_course};
use crate::sharing::verified;

#[rocket::async_test]
async fn course_files_live_in_an_s3_bucket_when_configured() {
    let Ok(endpoint) = std::env::var("LYCEUM_TEST_S3_ENDPOINT") else {
        service_missing("An S3-compatible server", "LYCEUM_TEST_S3_ENDPOINT");
        return;
    };
    let s3 = lyceum::storage::s3::client(Some(&endpoint), "us-east-1", "test", "test");
    let bucket = format!("blobs-{}", uuid::Uuid::new_v4().simple());
    s3.create_bucket().bucket(&bucket).send().await.expect("bucket");
    let b = bucket.clone();
    let app = TestApp::sqlite_with(move |c| {
        c.blob_s3_bucket = Some(b);
        c.blob_s3_endpoint = Some(endpoint);
        c.blob_s3_prefix = "lyceum/".into();
        c.blob_s3_access_key_id = Some("test".into());
        c.blob_s3_secret_access_key = Some("test".into());
    })
    .await;
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;

    // The resource is in the bucket, content-addressed under the prefix, and not on local disk.
    let content = b"Cheat sheet: x = 1";
    let key = hex::encode(Sha256::digest(content));
    let object = format!("lyceum/{}/{key}", &key[..2]);
    let got = s3.get_object().bucket(&bucket).key(&object).send().await.expect("the object is in the bucket");
    assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), content);
    assert!(!app.config.data_dir.join("blobs").exists(), "nothing is written locally");

    // Downloads go through the site, for enrolled learners only.
    let path = format!("/learn/intro-python/files/{}", c.resource);
    let ada = verified(&app, "ada").await;
    app.sign_in(&ada, false).await;
    let (status, _) = app.get(&path).await;
    assert_eq!(status, Status::Forbidden);
    enroll(&app, &c.slug).await;
    let (status, body) = app.get(&path).await;
    assert_eq!(status, Status::Ok);
    assert_eq!(body.as_bytes(), content);

    // The store works on the blocking pool and outside any runtime alike.
    let blobs = lyceum::blob_store(&app.config);
    let data = b"another file".to_vec();
    let k = lyceum::storage::key_for(&data);
    let from_pool = blobs.clone();
    let (k2, d2) = (k.clone(), data.clone());
    let read = app
        .db()
        .run(move |_| {
            from_pool.put(&k2, &d2).map_err(|e| lyceum::web::AppError::Internal(e.to_string()))?;
            from_pool.get(&k2).map_err(|e| lyceum::web::AppError::Internal(e.to_string()))
        })
        .await
        .expect("blocking pool");
    assert_eq!(read.as_deref(), Some(data.as_slice()));
    let outside = std::thread::spawn(move || {
        let again = blobs.get(&k).unwrap();
        blobs.delete(&k).unwrap();
        let gone = blobs.get(&k).unwrap();
        let bad = blobs.get("../../etc/passwd").is_err();
        (again, gone, bad)
    })
    .join()
    .unwrap();
    assert_eq!(outside.0.as_deref(), Some(data.as_slice()));
    assert_eq!(outside.1, None, "deleted");
    assert!(outside.2, "keys are checked before any request");
}

#[test]
fn a_bucket_without_credentials_is_refused_at_start() {
    let config = lyceum::config::Config {
        blob_s3_bucket: Some("files".into()),
        blob_s3_access_key_id: None,
        blob_s3_secret_access_key: None,
        ..lyceum::config::Config::default()
    };
    if std::env::var("AWS_ACCESS_KEY_ID").is_err() {
        let err = config.blob_s3().expect_err("no credentials");
        assert!(err.to_string().contains("LYCEUM_BLOB_S3_ACCESS_KEY_ID"));
    }
}
