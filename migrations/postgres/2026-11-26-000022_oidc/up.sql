-- Sign-in with OpenID Connect providers (ACC-4). A link ties an account to
-- one provider's subject; it counts only once confirmed (at once when the
-- link is made while signed in or with the password, after the emailed link
-- otherwise). Only name and email come from the provider, and any token kept
-- is sealed (SEC-2).
CREATE TABLE oidc_links (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    subject TEXT NOT NULL,
    email TEXT,
    access_token TEXT,
    refresh_token TEXT,
    confirmed_at TIMESTAMP,
    last_used_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX oidc_links_subject ON oidc_links(provider, subject);
CREATE INDEX oidc_links_user ON oidc_links(user_id);

-- Sign-ins sent to a provider and not yet back: found by the hash of their
-- state, used once, and good for ten minutes.
CREATE TABLE oidc_pending (
    state_hash TEXT PRIMARY KEY NOT NULL,
    provider TEXT NOT NULL,
    nonce TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    purpose TEXT NOT NULL,
    user_id BIGINT REFERENCES users(id) ON DELETE CASCADE,
    remember BOOLEAN NOT NULL,
    next TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
