-- Each post keeps its number of upvotes, changed in the same transaction as
-- the vote itself, so a thread page reads the counts with its posts instead
-- of counting every vote of the page on each view.
ALTER TABLE forum_posts ADD COLUMN vote_count BIGINT NOT NULL DEFAULT 0;
UPDATE forum_posts SET vote_count = (SELECT COUNT(*) FROM forum_votes v WHERE v.post_id = forum_posts.id);
