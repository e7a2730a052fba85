-- Sign-in looks accounts up by email or lower(username); both need an index
-- (with one each, PostgreSQL combines them for the OR).
CREATE INDEX users_username_lower ON users (lower(username));
