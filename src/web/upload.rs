//! Uploads: a multipart file field read within a size bound that says, when
//! the file is larger, which limit it passed; and storing an uploaded image
//! re-encoded (no metadata survives, FRM-5) in the blob store.
//!
//! Each kind of file has one limit ([`UploadLimit`]): images 10 MB (the
//! image path's own bound), CSV files 5 MB; areas add their own (course
//! packages 200 MB, the same as `lyceum course import`). A field over its
//! limit is [`Upload::TooLarge`], not missing, and the rest of the form still
//! arrives; a whole form over the `data-form` limit (the largest file plus
//! [`FORM_ALLOWANCE`]) is a 413 that names it.

use std::marker::PhantomData;
use std::sync::Arc;

use rocket::FromForm;
use rocket::data::ToByteUnit;
use rocket::form::{self, DataField, FromFormField, ValueField};

use crate::db::Db;
use crate::storage::{self, BlobStore};
use crate::web::{AppError, AppResult};

const MIB: u64 = 1024 * 1024;

/// One kind of uploaded file: its size limit and what it is called. A kind
/// larger than any before it raises `data-form` in `lib.rs` too.
pub trait UploadLimit: Send + Sync + 'static {
    /// The most bytes a file of this kind may have.
    const BYTES: u64;
    /// What it is called in a message: "image", "course package".
    const WHAT: &'static str;
    /// The article before it: "an", "a".
    const ARTICLE: &'static str = "a";
}

pub struct ImageLimit;
impl UploadLimit for ImageLimit {
    const BYTES: u64 = crate::media::MAX_UPLOAD_BYTES as u64;
    const WHAT: &'static str = "image";
    const ARTICLE: &'static str = "an";
}

pub struct CsvLimit;
impl UploadLimit for CsvLimit {
    const BYTES: u64 = 5 * MIB;
    const WHAT: &'static str = "CSV file";
}

/// What a whole multipart form may carry beyond its largest file (text
/// fields, a second image); `lib.rs` sets `data-form` to the largest kind's
/// limit plus this.
pub const FORM_ALLOWANCE: u64 = MIB;

/// A size in the words the site uses: "10 MB", "200 MB", "512 KB".
pub fn size_words(bytes: u64) -> String {
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MB", bytes / MIB)
    } else {
        format!("{} KB", bytes.div_ceil(1024))
    }
}

/// A file field of a multipart form: the file, or why there is none.
pub enum Upload<L: UploadLimit> {
    File {
        bytes: Vec<u8>,
        /// The name the browser sent, unsanitised: never a path to use.
        raw_name: Option<String>,
        kind: PhantomData<L>,
    },
    /// Larger than `L::BYTES`; nothing of it is kept.
    TooLarge,
    /// No file was chosen.
    Missing,
}

impl<L: UploadLimit> Upload<L> {
    /// The message for a file over the limit, naming the limit.
    pub fn too_large_message() -> String {
        format!(
            "That {} is larger than {}, the limit for {}s. Please choose a smaller one.",
            L::WHAT,
            size_words(L::BYTES),
            L::WHAT
        )
    }

    pub fn missing_message() -> String {
        format!("Please choose {} {} (at most {}).", L::ARTICLE, L::WHAT, size_words(L::BYTES))
    }

    /// The bytes, or the message for the uploader: missing or too large.
    pub fn bytes(&self) -> Result<&[u8], String> {
        match self {
            Upload::File { bytes, .. } => Ok(bytes),
            Upload::TooLarge => Err(Self::too_large_message()),
            Upload::Missing => Err(Self::missing_message()),
        }
    }

    /// As [`Upload::bytes`], with a missing file and a file over the limit
    /// as the errors a handler returns (422 and 413, page or problem document).
    pub fn required(&self) -> AppResult<&[u8]> {
        match self {
            Upload::TooLarge => Err(AppError::TooLarge(Self::too_large_message())),
            other => other.bytes().map_err(AppError::Unprocessable),
        }
    }

    pub fn is_chosen(&self) -> bool {
        !matches!(self, Upload::Missing)
    }

    pub fn raw_name(&self) -> Option<&str> {
        match self {
            Upload::File { raw_name, .. } => raw_name.as_deref(),
            _ => None,
        }
    }
}

#[rocket::async_trait]
impl<'v, L: UploadLimit> FromFormField<'v> for Upload<L> {
    fn default() -> Option<Self> {
        Some(Upload::Missing)
    }

    fn from_value(field: ValueField<'v>) -> form::Result<'v, Self> {
        let bytes = field.value.as_bytes();
        Ok(if bytes.is_empty() {
            Upload::Missing
        } else if bytes.len() as u64 > L::BYTES {
            Upload::TooLarge
        } else {
            Upload::File { bytes: bytes.to_vec(), raw_name: None, kind: PhantomData }
        })
    }

    async fn from_data(field: DataField<'v, '_>) -> form::Result<'v, Self> {
        let raw_name = field.file_name.map(|n| n.dangerous_unsafe_unsanitized_raw().as_str().to_string());
        let read = field.data.open(L::BYTES.bytes()).into_bytes().await?;
        if !read.is_complete() {
            return Ok(Upload::TooLarge);
        }
        let bytes = read.into_inner();
        // A file input left empty still sends a part, with no name and no bytes.
        if bytes.is_empty() && raw_name.as_deref().unwrap_or_default().is_empty() {
            return Ok(Upload::Missing);
        }
        Ok(Upload::File { bytes, raw_name, kind: PhantomData })
    }
}

#[derive(FromForm)]
pub struct ImageUpload {
    #[field(default = String::new())]
    pub csrf_token: String,
    pub image: Upload<ImageLimit>,
}

/// How an uploaded image is stored.
#[derive(Debug, Clone, Copy)]
pub enum ImageShape {
    /// Scaled down to fit this many pixels on its longer side.
    Fit(u32),
    /// A square thumbnail of this side, centre-cropped (avatars).
    Square(u32),
}

/// Re-encodes an uploaded image (no metadata survives, FRM-5) and stores it;
/// `Err` carries a message for the uploader (no file, a file over the
/// limit, not an image).
pub async fn store_image(
    db: &Db,
    blobs: &Arc<dyn BlobStore>,
    upload: &Upload<ImageLimit>,
    shape: ImageShape,
) -> AppResult<Result<String, String>> {
    let bytes = match upload.bytes() {
        Ok(b) => b.to_vec(),
        Err(message) => return Ok(Err(message)),
    };
    // Decoding and re-encoding is CPU work: off the async executor.
    let processed = tokio::task::spawn_blocking(move || match shape {
        ImageShape::Fit(max_side) => crate::media::reencode(&bytes, max_side),
        ImageShape::Square(side) => crate::media::thumbnail(&bytes, side),
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))?;
    let image = match processed {
        Ok(i) => i,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let blobs = blobs.clone();
    let key = db
        .run(move |conn| {
            storage::store(conn, blobs.as_ref(), &image.bytes, image.content_type)
                .map_err(|e| AppError::Internal(e.to_string()))
        })
        .await?;
    Ok(Ok(key))
}
