DROP INDEX forum_posts_thread;
CREATE INDEX forum_posts_thread ON forum_posts(thread_id, id);
