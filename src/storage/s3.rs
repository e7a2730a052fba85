//! Blobs in an S3 bucket (AWS or any S3-compatible service), and the one
//! place S3 clients are configured (partner push destinations use it too).
//!
//! The `BlobStore` trait is synchronous because its callers run on the
//! blocking pool; each call here waits for the SDK's future on the current
//! runtime (`block_in_place`), or on a small runtime of its own when called
//! outside any (the CLI).

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;

use super::{BlobError, BlobStore, check_key};

/// A client for `endpoint` (path-style; AWS itself when `None`).
pub fn client(endpoint: Option<&str>, region: &str, access_key_id: &str, secret: &str) -> Client {
    use aws_sdk_s3::config::{
        BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    };
    let mut config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .credentials_provider(Credentials::new(access_key_id, secret, None, None, "lyceum"))
        // S3-compatible servers differ in checksum support; send what S3 requires.
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
    if let Some(endpoint) = endpoint {
        config = config.endpoint_url(endpoint).force_path_style(true);
    }
    Client::from_conf(config.build())
}

/// Where blobs go: bucket, key prefix and the client's settings.
#[derive(Debug, Clone)]
pub struct S3Settings {
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    pub prefix: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

pub struct S3Blobs {
    client: Client,
    bucket: String,
    prefix: String,
    /// For calls made outside any Tokio runtime, made on first need.
    own: std::sync::OnceLock<tokio::runtime::Runtime>,
}

impl S3Blobs {
    pub fn new(s: &S3Settings) -> S3Blobs {
        S3Blobs {
            client: client(s.endpoint.as_deref(), &s.region, &s.access_key_id, &s.secret_access_key),
            bucket: s.bucket.clone(),
            prefix: s.prefix.clone(),
            own: std::sync::OnceLock::new(),
        }
    }

    fn object(&self, key: &str) -> Result<String, BlobError> {
        check_key(key)?;
        Ok(format!("{}{}/{key}", self.prefix, &key[..2]))
    }

    fn wait<T>(&self, fut: impl std::future::Future<Output = Result<T, BlobError>>) -> Result<T, BlobError> {
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => tokio::task::block_in_place(|| handle.block_on(fut)),
            Err(_) => {
                if self.own.get().is_none() {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                    let _ = self.own.set(rt);
                }
                match self.own.get() {
                    Some(rt) => rt.block_on(fut),
                    None => Err(BlobError::Remote("no runtime for S3 calls".into())),
                }
            }
        }
    }
}

fn remote(what: &str, e: impl std::error::Error) -> BlobError {
    BlobError::Remote(format!("S3 {what}: {}", aws_sdk_s3::error::DisplayErrorContext(e)))
}

impl BlobStore for S3Blobs {
    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), BlobError> {
        let object = self.object(key)?;
        // Content-addressed: an object already there holds these very bytes.
        self.wait(async {
            match self.client.head_object().bucket(&self.bucket).key(&object).send().await {
                Ok(_) => return Ok(()),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {}
                Err(e) => return Err(remote("HeadObject", e)),
            }
            let body = ByteStream::from(bytes.to_vec());
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(&object)
                .body(body)
                .send()
                .await
                .map_err(|e| remote("PutObject", e))?;
            Ok(())
        })
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BlobError> {
        let object = self.object(key)?;
        self.wait(async {
            match self.client.get_object().bucket(&self.bucket).key(&object).send().await {
                Ok(out) => {
                    let bytes = out.body.collect().await.map_err(|e| remote("GetObject body", e))?;
                    Ok(Some(bytes.into_bytes().to_vec()))
                }
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
                Err(e) => Err(remote("GetObject", e)),
            }
        })
    }

    fn delete(&self, key: &str) -> Result<(), BlobError> {
        let object = self.object(key)?;
        self.wait(async {
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(&object)
                .send()
                .await
                .map_err(|e| remote("DeleteObject", e))?;
            Ok(())
        })
    }
}
