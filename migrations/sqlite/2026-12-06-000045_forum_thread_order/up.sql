-- The forum index reads a page of threads in this order and stops when it is
-- full, instead of sorting every thread of the forum. The moderation queue
-- finds open reports by their status.
CREATE INDEX forum_threads_order ON forum_threads(forum_id, pinned, last_post_at);
CREATE INDEX forum_reports_open ON forum_reports(status, post_id);
