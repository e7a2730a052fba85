-- The last post a person has seen in a thread (unread markers), and the
-- threads they follow (an email for each new reply).
CREATE TABLE forum_reads (
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    thread_id BIGINT NOT NULL REFERENCES forum_threads(id) ON DELETE CASCADE,
    last_post_id BIGINT NOT NULL,
    PRIMARY KEY (user_id, thread_id)
);

CREATE TABLE forum_follows (
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    thread_id BIGINT NOT NULL REFERENCES forum_threads(id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, thread_id)
);
CREATE INDEX forum_follows_thread ON forum_follows(thread_id);
