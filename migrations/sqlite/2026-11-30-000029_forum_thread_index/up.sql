-- A thread page filters a thread's posts by parent, status and author before
-- it reads them: with those columns in the index, only the posts shown are
-- read from the table, and the list of a thread's top-level posts (and the
-- vote counts of a page) never touch it.
DROP INDEX forum_posts_thread;
CREATE INDEX forum_posts_thread ON forum_posts(thread_id, id, parent_id, status, author_id);
