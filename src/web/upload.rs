//! Uploads: reading a multipart file within a size bound, and storing an
//! uploaded image re-encoded (no metadata survives, FRM-5) in the blob store.

use std::sync::Arc;

use rocket::FromForm;
use rocket::fs::TempFile;

use crate::db::Db;
use crate::storage::{self, BlobStore};
use crate::web::{AppError, AppResult};

#[derive(FromForm)]
pub struct ImageUpload<'r> {
    #[field(default = String::new())]
    pub csrf_token: String,
    pub image: Option<TempFile<'r>>,
}

pub async fn read_upload(file: &TempFile<'_>, limit: usize) -> AppResult<Vec<u8>> {
    if file.len() as usize > limit {
        return Err(AppError::Unprocessable(format!("That file is larger than {} MB.", limit / (1024 * 1024))));
    }
    let mut bytes = Vec::new();
    let mut reader = file.open().await.map_err(|e| AppError::Internal(e.to_string()))?;
    tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut bytes)
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(bytes)
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
/// `Err` carries a message for the uploader.
pub async fn store_image(
    db: &Db,
    blobs: &Arc<dyn BlobStore>,
    upload: Option<&TempFile<'_>>,
    shape: ImageShape,
) -> AppResult<Result<String, String>> {
    let Some(upload) = upload else { return Ok(Err("Please choose an image file.".into())) };
    let bytes = read_upload(upload, crate::media::MAX_UPLOAD_BYTES).await?;
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
