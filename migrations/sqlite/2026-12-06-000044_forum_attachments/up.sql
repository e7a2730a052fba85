-- Images attached to forum posts (FRM-5): re-encoded on upload, stored in
-- the blob store under `blob_key`, served only to those who may read the
-- post, and gone with the post (or with its text on an author's erasure).
CREATE TABLE forum_attachments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    post_id BIGINT NOT NULL REFERENCES forum_posts(id) ON DELETE CASCADE,
    blob_key TEXT NOT NULL,
    content_type TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    -- The author's description of the image, for people who cannot see it.
    alt TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX forum_attachments_post ON forum_attachments(post_id);
CREATE INDEX forum_attachments_blob ON forum_attachments(blob_key);
