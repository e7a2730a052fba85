-- Policies (COM-5): privacy policy, terms and cookie policy as versioned
-- documents; a material version must be accepted at the next sign-in.
CREATE TABLE policy_versions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    changes TEXT NOT NULL,
    material BOOLEAN NOT NULL,
    published_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
    published_at TIMESTAMP NOT NULL,
    UNIQUE (kind, version)
);

-- Every acceptance: which version, when, how.
CREATE TABLE policy_acceptances (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    policy_id BIGINT NOT NULL REFERENCES policy_versions(id) ON DELETE CASCADE,
    method TEXT NOT NULL,
    ip TEXT,
    user_agent TEXT,
    accepted_at TIMESTAMP NOT NULL,
    UNIQUE (user_id, policy_id)
);
