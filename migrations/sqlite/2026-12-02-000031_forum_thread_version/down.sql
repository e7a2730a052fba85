DROP INDEX forum_votes_user;
DROP TRIGGER profiles_avatar_version_delete;
DROP TRIGGER profiles_avatar_version_update;
DROP TRIGGER profiles_avatar_version_insert;
DROP TRIGGER users_username_version;
DROP TRIGGER forum_posts_version_delete;
DROP TRIGGER forum_posts_version_update;
DROP TRIGGER forum_posts_version_insert;
ALTER TABLE forum_threads DROP COLUMN version;
