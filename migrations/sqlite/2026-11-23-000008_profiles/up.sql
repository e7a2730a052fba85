-- What other learners may see of a person besides the username (ACC-7):
-- limited shows the avatar only; full adds the bio and courses taken.
-- Real names and email addresses are never part of a profile.
CREATE TABLE profiles (
    user_id BIGINT PRIMARY KEY NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    bio TEXT NOT NULL,
    avatar_key TEXT,
    visibility TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
