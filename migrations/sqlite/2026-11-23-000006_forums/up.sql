-- Forums: site-wide categories (no run) and one forum per course run.
CREATE TABLE forums (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    slug TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    run_id BIGINT UNIQUE REFERENCES course_runs(id) ON DELETE CASCADE,
    -- Learners may post anonymously to peers (staff still see the author).
    allow_anonymous BOOLEAN NOT NULL,
    position INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE forum_threads (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    forum_id BIGINT NOT NULL REFERENCES forums(id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    pinned BOOLEAN NOT NULL,
    locked BOOLEAN NOT NULL,
    lock_reason TEXT,
    last_post_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX forum_threads_forum ON forum_threads(forum_id, last_post_at);

-- The opening post of a thread, its replies, and comments under a reply
-- (`parent_id`). Status: pending (first posts wait for a moderator),
-- visible, hidden (by a moderator), deleted.
CREATE TABLE forum_posts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    thread_id BIGINT NOT NULL REFERENCES forum_threads(id) ON DELETE CASCADE,
    parent_id BIGINT REFERENCES forum_posts(id) ON DELETE CASCADE,
    author_id BIGINT NOT NULL REFERENCES users(id),
    anonymous BOOLEAN NOT NULL,
    -- Set when the author's account was erased: shown as a former member.
    author_erased BOOLEAN NOT NULL,
    body TEXT NOT NULL,
    body_html TEXT NOT NULL,
    status TEXT NOT NULL,
    endorsed BOOLEAN NOT NULL,
    -- Seen by moderators only, for abuse and spam handling.
    ip TEXT,
    user_agent TEXT,
    created_at TIMESTAMP NOT NULL,
    edited_at TIMESTAMP
);
CREATE INDEX forum_posts_thread ON forum_posts(thread_id, id);
CREATE INDEX forum_posts_author ON forum_posts(author_id);
CREATE INDEX forum_posts_status ON forum_posts(status);

-- Earlier versions of edited posts, for moderators.
CREATE TABLE forum_post_edits (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    post_id BIGINT NOT NULL REFERENCES forum_posts(id) ON DELETE CASCADE,
    editor_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
    body TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE forum_votes (
    post_id BIGINT NOT NULL REFERENCES forum_posts(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (post_id, user_id)
);

-- Authors whose posts appear at once: a moderator approved one of theirs.
CREATE TABLE forum_trusted (
    user_id BIGINT PRIMARY KEY NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    approved_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
    approved_at TIMESTAMP NOT NULL
);

CREATE TABLE forum_reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    post_id BIGINT NOT NULL REFERENCES forum_posts(id) ON DELETE CASCADE,
    reporter_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    reason TEXT NOT NULL,
    status TEXT NOT NULL,
    decided_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
    decided_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (post_id, reporter_id)
);

CREATE TABLE forum_bans (
    forum_id BIGINT NOT NULL REFERENCES forums(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    reason TEXT NOT NULL,
    banned_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (forum_id, user_id)
);
