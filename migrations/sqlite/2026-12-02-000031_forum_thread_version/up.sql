-- A thread's version rises with every change to what its pages list, in the
-- same transaction as the change: a post added, edited, voted on, moderated,
-- moved or deleted, and its author's username or avatar. Thread pages keep
-- the posts they read under the version and read them again only when it
-- moved (src/forums/cache.rs). Triggers rather than application code, so
-- that no write path can forget it.
ALTER TABLE forum_threads ADD COLUMN version BIGINT NOT NULL DEFAULT 0;

CREATE TRIGGER forum_posts_version_insert AFTER INSERT ON forum_posts
BEGIN
    UPDATE forum_threads SET version = version + 1 WHERE id = NEW.thread_id;
END;

CREATE TRIGGER forum_posts_version_update AFTER UPDATE ON forum_posts
BEGIN
    UPDATE forum_threads SET version = version + 1 WHERE id IN (OLD.thread_id, NEW.thread_id);
END;

CREATE TRIGGER forum_posts_version_delete AFTER DELETE ON forum_posts
BEGIN
    UPDATE forum_threads SET version = version + 1 WHERE id = OLD.thread_id;
END;

CREATE TRIGGER users_username_version AFTER UPDATE OF username ON users
WHEN OLD.username IS NOT NEW.username
BEGIN
    UPDATE forum_threads SET version = version + 1
    WHERE id IN (SELECT thread_id FROM forum_posts WHERE author_id = NEW.id);
END;

CREATE TRIGGER profiles_avatar_version_insert AFTER INSERT ON profiles
WHEN NEW.avatar_key IS NOT NULL
BEGIN
    UPDATE forum_threads SET version = version + 1
    WHERE id IN (SELECT thread_id FROM forum_posts WHERE author_id = NEW.user_id);
END;

CREATE TRIGGER profiles_avatar_version_update AFTER UPDATE OF avatar_key, user_id ON profiles
WHEN OLD.avatar_key IS NOT NEW.avatar_key OR OLD.user_id IS NOT NEW.user_id
BEGIN
    UPDATE forum_threads SET version = version + 1
    WHERE id IN (SELECT thread_id FROM forum_posts WHERE author_id IN (OLD.user_id, NEW.user_id));
END;

CREATE TRIGGER profiles_avatar_version_delete AFTER DELETE ON profiles
WHEN OLD.avatar_key IS NOT NULL
BEGIN
    UPDATE forum_threads SET version = version + 1
    WHERE id IN (SELECT thread_id FROM forum_posts WHERE author_id = OLD.user_id);
END;

-- A viewer's own votes among a page's posts.
CREATE INDEX forum_votes_user ON forum_votes(user_id, post_id);
