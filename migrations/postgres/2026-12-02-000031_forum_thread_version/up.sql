-- A thread's version rises with every change to what its pages list, in the
-- same transaction as the change: a post added, edited, voted on, moderated,
-- moved or deleted, and its author's username or avatar. Thread pages keep
-- the posts they read under the version and read them again only when it
-- moved (src/forums/cache.rs). Triggers rather than application code, so
-- that no write path can forget it.
ALTER TABLE forum_threads ADD COLUMN version BIGINT NOT NULL DEFAULT 0;

CREATE FUNCTION forum_posts_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE forum_threads SET version = version + 1 WHERE id = OLD.thread_id;
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.thread_id <> OLD.thread_id) THEN
        UPDATE forum_threads SET version = version + 1 WHERE id = NEW.thread_id;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER forum_posts_version AFTER INSERT OR UPDATE OR DELETE ON forum_posts
FOR EACH ROW EXECUTE FUNCTION forum_posts_version();

CREATE FUNCTION forum_author_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE forum_threads SET version = version + 1
        WHERE id IN (SELECT thread_id FROM forum_posts WHERE author_id = OLD.user_id);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.user_id <> OLD.user_id) THEN
        UPDATE forum_threads SET version = version + 1
        WHERE id IN (SELECT thread_id FROM forum_posts WHERE author_id = NEW.user_id);
    END IF;
    RETURN NULL;
END $$;

-- Users name their key `id`, profiles `user_id`: one function each.
CREATE FUNCTION forum_username_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE forum_threads SET version = version + 1
    WHERE id IN (SELECT thread_id FROM forum_posts WHERE author_id = NEW.id);
    RETURN NULL;
END $$;

CREATE TRIGGER users_username_version AFTER UPDATE OF username ON users
FOR EACH ROW WHEN (OLD.username IS DISTINCT FROM NEW.username)
EXECUTE FUNCTION forum_username_version();

CREATE TRIGGER profiles_avatar_version_insert AFTER INSERT ON profiles
FOR EACH ROW WHEN (NEW.avatar_key IS NOT NULL)
EXECUTE FUNCTION forum_author_version();

CREATE TRIGGER profiles_avatar_version_update AFTER UPDATE OF avatar_key, user_id ON profiles
FOR EACH ROW WHEN (OLD.avatar_key IS DISTINCT FROM NEW.avatar_key OR OLD.user_id <> NEW.user_id)
EXECUTE FUNCTION forum_author_version();

CREATE TRIGGER profiles_avatar_version_delete AFTER DELETE ON profiles
FOR EACH ROW WHEN (OLD.avatar_key IS NOT NULL)
EXECUTE FUNCTION forum_author_version();

-- A viewer's own votes among a page's posts.
CREATE INDEX forum_votes_user ON forum_votes(user_id, post_id);
