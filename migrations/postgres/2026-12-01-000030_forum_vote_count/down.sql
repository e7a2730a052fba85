ALTER TABLE forum_posts DROP COLUMN vote_count;
